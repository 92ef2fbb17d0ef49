//! Every supported request type: round trip at every supported version, and truncation at every
//! byte of a valid encoding is an error (never a panic).

#![expect(clippy::unwrap_used, reason = "a test fails by panicking")]

mod common;

use bytes::{Bytes, BytesMut};
use rill_protocol::{
    DEFAULT_MAX_FRAME_SIZE, ProtocolError, Request, RequestHeader, SUPPORTED, split_frame,
};

use common::sample;

fn all_versions() -> impl Iterator<Item = (rill_protocol::ApiKey, i16)> {
    SUPPORTED
        .iter()
        .flat_map(|&(key, min, max)| (min..=max).map(move |v| (key, v)))
}

/// The frame contents (header and body, no size prefix) of the sample request.
fn encoded(key: rill_protocol::ApiKey, v: i16) -> (Request, Bytes) {
    let header = RequestHeader::new(key, v, 0x0102_0304).with_client_id("rill-test");
    let request = Request::new(header, sample(key, v));
    let mut buf = BytesMut::new();
    request
        .encode(&mut buf)
        .unwrap_or_else(|err| panic!("{key:?} v{v}: {err:?}"));
    let frame = split_frame(&mut buf, DEFAULT_MAX_FRAME_SIZE)
        .unwrap()
        .unwrap();
    assert!(buf.is_empty());
    (request, frame)
}

#[test]
fn round_trip_every_supported_version() {
    for (key, v) in all_versions() {
        let (request, frame) = encoded(key, v);
        let decoded = Request::decode_frame(frame.clone())
            .unwrap_or_else(|err| panic!("{key:?} v{v}: {err:?}"));
        assert_eq!(decoded.header, request.header, "{key:?} v{v}");
        // Fields a version does not carry are dropped on the wire, so compare re-encodings.
        let mut again = BytesMut::new();
        decoded.encode(&mut again).unwrap();
        assert_eq!(&again[4..], &frame[..], "{key:?} v{v}");
    }
}

#[test]
fn round_trip_keeps_the_fields_at_min_and_max() {
    for &(key, min, max) in SUPPORTED {
        for v in [min, max] {
            let (request, frame) = encoded(key, v);
            let decoded = Request::decode_frame(frame).unwrap();
            // The samples set only fields each version carries, so the bodies compare equal.
            assert_eq!(decoded, request, "{key:?} v{v}");
        }
    }
}

#[test]
fn truncated_at_every_byte_is_an_error() {
    for (key, v) in all_versions() {
        let (_, frame) = encoded(key, v);
        for cut in 0..frame.len() {
            match Request::decode_frame(frame.slice(..cut)) {
                Err(ProtocolError::TruncatedHeader { .. } | ProtocolError::Truncated { .. }) => {}
                other => panic!("{key:?} v{v} cut at {cut} of {}: {other:?}", frame.len()),
            }
        }
    }
}

#[test]
fn trailing_bytes_are_ignored_as_kafka_ignores_them() {
    for &(key, min, max) in SUPPORTED {
        for v in [min, max] {
            let (_, frame) = encoded(key, v);
            let exact = Request::decode_frame(frame.clone()).unwrap();
            let mut longer = BytesMut::from(&frame[..]);
            longer.extend_from_slice(&[1, 0, 0]);
            let decoded = Request::decode_frame(longer.freeze()).unwrap();
            assert_eq!(decoded.body, exact.body, "{key:?} v{v}");
        }
    }
}

/// The request librdkafka 2.16's AdminClient sends for `list_topics()`: Metadata v13 for all
/// topics, with three bytes after the body. It must decode.
#[test]
fn librdkafka_admin_metadata_v13_with_trailing_bytes() {
    let frame = bytes::Bytes::from_static(b"\0\x03\0\r\0\0\0\x04\0\x07rdkafka\0\0\0\0\0\x01\0\0");
    let request = Request::decode_frame(frame).unwrap();
    assert_eq!(request.header.correlation_id, 4);
    let rill_protocol::RequestKind::Metadata(body) = request.body else {
        panic!("not a metadata request")
    };
    assert_eq!(body.topics, None);
}

#[test]
fn body_of_another_api_is_refused_on_encode() {
    let header = RequestHeader::new(rill_protocol::ApiKey::Produce, 9, 1);
    let request = Request::new(header, sample(rill_protocol::ApiKey::Metadata, 9));
    let mut buf = BytesMut::from(&b"x"[..]);
    assert!(matches!(
        request.encode(&mut buf),
        Err(ProtocolError::MismatchedBody { .. })
    ));
    assert_eq!(&buf[..], b"x");
}

#[test]
fn hand_built_header_with_unsupported_version_is_refused() {
    let header = RequestHeader::new(rill_protocol::ApiKey::Produce, 14, 9);
    assert!(matches!(
        Request::decode(header, Bytes::new()),
        Err(ProtocolError::UnsupportedVersion {
            api_version: 14,
            correlation_id: 9,
            ..
        })
    ));
}
