//! Property tests: framing is independent of how bytes arrive, and header decoding never panics.
//!
//! Arbitrary *bodies* are deliberately not fed to the body decoder: see the crate docs' "Known
//! limitation" (kafka-protocol 0.18 pre-allocates arrays from the claimed element count).

#![expect(clippy::unwrap_used, reason = "a test fails by panicking")]

use bytes::{BufMut, BytesMut};
use proptest::prelude::*;
use rill_protocol::ProtocolError::{self, UnknownApiKey, UnsupportedVersion};
use rill_protocol::{RequestHeader, SUPPORTED, split_frame, supported};

proptest! {
    #[test]
    fn frames_survive_any_chunking(
        bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8),
        chunk in 1_usize..17,
    ) {
        let mut wire = Vec::new();
        for body in &bodies {
            wire.put_i32(body.len() as i32);
            wire.extend_from_slice(body);
        }
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for piece in wire.chunks(chunk) {
            buf.extend_from_slice(piece);
            while let Some(frame) = split_frame(&mut buf, 64).unwrap() {
                got.push(frame.to_vec());
            }
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(got, bodies);
    }

    #[test]
    fn header_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut frame = bytes::Bytes::from(bytes.clone());
        match RequestHeader::decode(&mut frame) {
            Ok(header) => prop_assert!(supported(header.api_key, header.api_version)),
            Err(ProtocolError::TruncatedHeader { have, .. }) => prop_assert!(have < 8),
            Err(err @ (UnknownApiKey { .. } | UnsupportedVersion { .. })) => {
                let sent = i32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
                prop_assert_eq!(err.correlation_id(), Some(sent));
            }
            Err(ProtocolError::Truncated { .. } | ProtocolError::Decode { .. }) => {
                prop_assert!(bytes.len() >= 8);
            }
            Err(err) => prop_assert!(false, "unexpected {:?}", err),
        }
    }

    #[test]
    fn header_round_trips(
        entry in proptest::sample::select(SUPPORTED),
        pick in any::<u16>(),
        correlation_id in any::<i32>(),
        client_id in proptest::option::of("[a-z0-9._-]{0,40}"),
    ) {
        let (api_key, min, max) = entry;
        let version = min + (pick % (max - min + 1) as u16) as i16;
        let mut header = RequestHeader::new(api_key, version, correlation_id);
        if let Some(id) = client_id {
            header = header.with_client_id(id);
        }
        let mut buf = BytesMut::new();
        header.encode(&mut buf).unwrap();
        buf.extend_from_slice(b"body");
        let mut frame = buf.freeze();
        prop_assert_eq!(RequestHeader::decode(&mut frame).unwrap(), header);
        prop_assert_eq!(&frame[..], b"body");
    }
}
