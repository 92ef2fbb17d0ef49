//! Golden bytes: request frames captured from real clients (see `fixtures/README.md`) decode to
//! the fields the client sent, and re-encode to the same bytes.

#![expect(clippy::unwrap_used, reason = "a test fails by panicking")]

use bytes::{Bytes, BytesMut};
use rill_protocol::{ApiKey, DEFAULT_MAX_FRAME_SIZE, Request, RequestKind, split_frame};

fn fixture(name: &str) -> Bytes {
    let path = format!("{}/tests/fixtures/{name}.hex", env!("CARGO_MANIFEST_DIR"));
    let hex = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{path}: {err}"));
    let hex = hex.trim();
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect::<Vec<_>>();
    Bytes::from(bytes)
}

/// Splits the one frame in the fixture, decodes it, and checks that re-encoding is byte-exact.
fn decode(name: &str) -> Request {
    let raw = fixture(name);
    let mut buf = BytesMut::from(&raw[..]);
    let frame = split_frame(&mut buf, DEFAULT_MAX_FRAME_SIZE)
        .unwrap()
        .unwrap();
    assert!(buf.is_empty(), "{name}: one frame, nothing after it");
    let request = Request::decode_frame(frame).unwrap_or_else(|err| panic!("{name}: {err:?}"));
    let mut again = BytesMut::new();
    request.encode(&mut again).unwrap();
    assert_eq!(&again[..], &raw[..], "{name}: re-encoding differs");
    request
}

fn check_header(request: &Request, api_key: ApiKey, version: i16, correlation_id: i32) {
    assert_eq!(request.header.api_key, api_key);
    assert_eq!(request.header.api_version, version);
    assert_eq!(request.header.correlation_id, correlation_id);
    assert_eq!(request.header.client_id.as_deref(), Some("rill-golden"));
}

#[test]
fn api_versions_request_v3_000() {
    let request = decode("api_versions_request_v3_000");
    check_header(&request, ApiKey::ApiVersions, 3, 1);
    let RequestKind::ApiVersions(body) = &request.body else {
        panic!("{request:?}")
    };
    assert_eq!(body.client_software_name.as_str(), "confluent-kafka-python");
    assert_eq!(
        body.client_software_version.as_str(),
        "2.16.1-rdkafka-2.16.0"
    );
}

#[test]
fn api_versions_request_v4_001() {
    let request = decode("api_versions_request_v4_001");
    check_header(&request, ApiKey::ApiVersions, 4, 1);
    let RequestKind::ApiVersions(body) = &request.body else {
        panic!("{request:?}")
    };
    assert_eq!(body.client_software_name.as_str(), "kafka-python");
    assert_eq!(body.client_software_version.as_str(), "3.0.12");
}

#[test]
fn metadata_request_v13_000() {
    let request = decode("metadata_request_v13_000");
    check_header(&request, ApiKey::Metadata, 13, 2);
    let RequestKind::Metadata(body) = &request.body else {
        panic!("{request:?}")
    };
    let topics = body.topics.as_ref().unwrap();
    assert_eq!(topics.len(), 1);
    assert_eq!(
        topics[0].name.as_ref().map(|n| n.0.as_str()),
        Some("golden")
    );
    assert!(topics[0].topic_id.is_nil());
    assert!(body.allow_auto_topic_creation);
    assert!(!body.include_topic_authorized_operations);
}

#[test]
fn metadata_request_v13_001() {
    // kafka-python's bootstrap request: no topics (an empty list, not null = "all topics").
    let request = decode("metadata_request_v13_001");
    check_header(&request, ApiKey::Metadata, 13, 2);
    let RequestKind::Metadata(body) = &request.body else {
        panic!("{request:?}")
    };
    assert_eq!(body.topics.as_deref().map(<[_]>::len), Some(0));
}

#[test]
fn init_producer_id_request_v4_001() {
    let request = decode("init_producer_id_request_v4_001");
    check_header(&request, ApiKey::InitProducerId, 4, 2);
    let RequestKind::InitProducerId(body) = &request.body else {
        panic!("{request:?}")
    };
    assert_eq!(body.transactional_id, None);
    assert_eq!(body.producer_id.0, -1);
    assert_eq!(body.producer_epoch, -1);
}

/// The one record batch of a captured Produce request: (producer id, record batch bytes).
fn produce_batch(request: &Request) -> Bytes {
    let RequestKind::Produce(body) = &request.body else {
        panic!("{request:?}")
    };
    assert_eq!(body.transactional_id, None);
    assert_eq!(body.acks, -1);
    assert_eq!(body.topic_data.len(), 1);
    let topic = &body.topic_data[0];
    assert_eq!(topic.name.0.as_str(), "golden");
    assert_eq!(topic.partition_data.len(), 1);
    assert_eq!(topic.partition_data[0].index, 0);
    topic.partition_data[0].records.clone().unwrap()
}

fn check_batch(batch: &[u8], producer_id: i64) {
    // RecordBatch v2: base offset (8), batch length (4) = the rest, leader epoch (4), magic (1).
    assert_eq!(
        i32::from_be_bytes(batch[8..12].try_into().unwrap()) as usize,
        batch.len() - 12
    );
    assert_eq!(batch[16], 2, "magic");
    assert_eq!(
        i64::from_be_bytes(batch[43..51].try_into().unwrap()),
        producer_id
    );
    assert!(batch.windows(10).any(|w| w == b"hello rill"));
}

#[test]
fn produce_request_v10_000() {
    let request = decode("produce_request_v10_000");
    check_header(&request, ApiKey::Produce, 10, 2);
    let RequestKind::Produce(body) = &request.body else {
        panic!()
    };
    assert_eq!(body.timeout_ms, 30_000);
    let batch = produce_batch(&request);
    assert_eq!(batch.len(), 79);
    check_batch(&batch, -1);
}

#[test]
fn produce_request_v9_001() {
    // Idempotent: the producer id is the one the capture's InitProducerId answer handed out.
    let request = decode("produce_request_v9_001");
    check_header(&request, ApiKey::Produce, 9, 3);
    let RequestKind::Produce(body) = &request.body else {
        panic!()
    };
    assert_eq!(body.timeout_ms, 3_000);
    let batch = produce_batch(&request);
    check_batch(&batch, 1000);
}
