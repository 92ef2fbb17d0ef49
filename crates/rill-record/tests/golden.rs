//! Batches captured from real Kafka clients decode to what the clients were asked to send.
//!
//! The fixtures are the `records` field of ProduceRequests, captured as described in
//! `tests/fixtures/README.md`. Every record and header field is checked, as are the producer
//! fields librdkafka's idempotent producer filled in.

use bytes::Bytes;
use rill_record::{
    Attributes, Batch, BatchBuilder, Compression, Header, Record, RecordError, RecordSpec,
    TimestampType,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The CreateTime the capture script gave its first record.
const BASE_TS: i64 = 1_700_000_000_000;

fn hex(text: &str) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let text = text.trim();
    if !text.len().is_multiple_of(2) {
        return Err("odd number of hex digits".into());
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            let pair = text.get(i..i + 2).ok_or("bad hex")?;
            Ok(u8::from_str_radix(pair, 16)?)
        })
        .collect()
}

fn b(s: &'static str) -> Option<Bytes> {
    Some(Bytes::from_static(s.as_bytes()))
}

/// What the capture script sent with confluent-kafka, for every codec.
fn confluent_kafka_records() -> Vec<Record> {
    let long_value = format!("value-1 {}", "abc".repeat(40));
    vec![
        Record {
            offset: 0,
            timestamp: BASE_TS,
            offset_delta: 0,
            timestamp_delta: 0,
            key: b("key-0"),
            value: b("value-0"),
            headers: vec![Header::new("h1", b("v1")), Header::new("h-null", None)],
        },
        Record {
            offset: 1,
            timestamp: BASE_TS + 5,
            offset_delta: 1,
            timestamp_delta: 5,
            key: None,
            value: Some(Bytes::from(long_value)),
            headers: vec![],
        },
        Record {
            offset: 2,
            timestamp: BASE_TS - 3,
            offset_delta: 2,
            timestamp_delta: -3,
            key: b("key-2"),
            value: None,
            headers: vec![],
        },
        Record {
            offset: 3,
            timestamp: BASE_TS + 1_000,
            offset_delta: 3,
            timestamp_delta: 1_000,
            key: b(""),
            value: b(""),
            headers: vec![Header::new("", b(""))],
        },
    ]
}

/// Checks one confluent-kafka fixture; `producer_id` is what the broker handed out to it.
fn check_confluent_kafka(fixture: &str, codec: Compression, producer_id: i64) -> TestResult {
    let bytes = hex(fixture)?;
    let batch = Batch::parse(&bytes)?;
    assert_eq!(
        batch.as_bytes().len(),
        bytes.len(),
        "one batch, nothing after it"
    );
    batch.verify_crc()?;
    let h = batch.header();
    assert_eq!(h.base_offset, 0);
    assert_eq!(h.partition_leader_epoch, 0);
    assert_eq!(h.magic, 2);
    assert_eq!(
        h.attributes,
        Attributes::new(codec, TimestampType::CreateTime)
    );
    assert_eq!(h.last_offset_delta, 3);
    assert_eq!(h.base_timestamp, BASE_TS);
    assert_eq!(h.max_timestamp, BASE_TS + 1_000);
    assert_eq!(h.producer_id, producer_id);
    assert_eq!(h.producer_epoch, 0);
    assert_eq!(h.base_sequence, 0);
    assert_eq!(h.records_count, 4);
    assert_eq!(batch.records()?, confluent_kafka_records());
    Ok(())
}

#[test]
fn golden_confluent_kafka_none_v2_000() -> TestResult {
    check_confluent_kafka(
        include_str!("fixtures/confluent_kafka_none_v2_000.hex"),
        Compression::None,
        1,
    )
}

#[test]
fn golden_confluent_kafka_gzip_v2_000() -> TestResult {
    check_confluent_kafka(
        include_str!("fixtures/confluent_kafka_gzip_v2_000.hex"),
        Compression::Gzip,
        2,
    )
}

#[test]
fn golden_confluent_kafka_snappy_v2_000() -> TestResult {
    let fixture = include_str!("fixtures/confluent_kafka_snappy_v2_000.hex");
    // librdkafka sends one raw snappy block, not the xerial framing.
    let bytes = hex(fixture)?;
    assert_ne!(bytes.get(61), Some(&0x82));
    check_confluent_kafka(fixture, Compression::Snappy, 3)
}

#[test]
fn golden_confluent_kafka_lz4_v2_000() -> TestResult {
    check_confluent_kafka(
        include_str!("fixtures/confluent_kafka_lz4_v2_000.hex"),
        Compression::Lz4,
        4,
    )
}

#[test]
fn golden_confluent_kafka_zstd_v2_000() -> TestResult {
    check_confluent_kafka(
        include_str!("fixtures/confluent_kafka_zstd_v2_000.hex"),
        Compression::Zstd,
        5,
    )
}

#[test]
fn golden_kafka_python_snappy_v2_000() -> TestResult {
    let bytes = hex(include_str!("fixtures/kafka_python_snappy_v2_000.hex"))?;
    // kafka-python frames snappy the xerial way, as the Java client does.
    assert_eq!(bytes.get(61..69), Some(&b"\x82SNAPPY\0"[..]));
    let batch = Batch::parse(&bytes)?;
    batch.verify_crc()?;
    let h = batch.header();
    assert_eq!(h.base_offset, 0);
    assert_eq!(h.attributes.compression()?, Compression::Snappy);
    assert_eq!(h.attributes.timestamp_type(), TimestampType::CreateTime);
    assert_eq!(h.last_offset_delta, 1);
    assert_eq!((h.base_timestamp, h.max_timestamp), (BASE_TS, BASE_TS + 5));
    assert_eq!(
        (h.producer_id, h.producer_epoch, h.base_sequence),
        (6, 0, 0)
    );
    assert_eq!(h.records_count, 2);
    let mut expected = confluent_kafka_records();
    expected.truncate(2);
    if let Some(first) = expected.first_mut() {
        first.headers.truncate(1);
    }
    assert_eq!(batch.records()?, expected);
    Ok(())
}

/// Our builder, given what confluent-kafka was given, writes the very same bytes.
#[test]
fn builder_reproduces_confluent_kafka_none_v2_000() -> Result<(), Box<dyn std::error::Error>> {
    let golden = hex(include_str!("fixtures/confluent_kafka_none_v2_000.hex"))?;
    let mut builder = BatchBuilder::new()
        .partition_leader_epoch(0)
        .producer(1, 0, 0);
    for record in confluent_kafka_records() {
        let _ = builder.push(&RecordSpec::from(record));
    }
    let built = builder.build()?;
    assert_eq!(built.as_ref(), golden.as_slice());
    Ok(())
}

/// Decoding what we build with each codec gives back what confluent-kafka sent.
#[test]
fn builder_matches_confluent_kafka_records_for_every_codec() -> Result<(), RecordError> {
    for codec in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let mut builder = BatchBuilder::new().compression(codec);
        for record in confluent_kafka_records() {
            let _ = builder.push(&RecordSpec::from(record));
        }
        let built = builder.build()?;
        assert_eq!(
            Batch::parse(&built)?.records()?,
            confluent_kafka_records(),
            "{codec:?}"
        );
    }
    Ok(())
}
