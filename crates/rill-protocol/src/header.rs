//! Request headers (v1, and v2 with tagged fields for flexible versions) and the response header
//! version rule.
//!
//! Every request header starts with the same eight bytes: api key, api version, correlation id.
//! [`RequestHeader::decode`] reads those first and checks them against the version table before
//! reading anything that depends on them, so an unknown api key or an unsupported version still
//! yields the correlation id the broker needs to answer (or log) it.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader as WireRequestHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::error::{ProtocolError, decode_error};
use crate::versions::supported;

/// Length of the fixed part of every request header: api key (2), api version (2), correlation
/// id (4).
pub const FIXED_HEADER_LEN: usize = 8;

/// A decoded request header.
///
/// The wire format is v1 (`client_id` as a nullable string) for non-flexible versions of an API
/// and v2 (v1 plus tagged fields) for flexible ones; [`RequestHeader::header_version`] says which.
/// Unknown tagged fields in a v2 header are skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHeader {
    /// Which API this request is for.
    pub api_key: ApiKey,
    /// The version of that API the body is encoded in.
    pub api_version: i16,
    /// Chosen by the client; echoed in the response so the client can match the two.
    pub correlation_id: i32,
    /// The client's self-chosen id, if it sent one.
    pub client_id: Option<StrBytes>,
}

impl RequestHeader {
    /// A header without a client id.
    pub fn new(api_key: ApiKey, api_version: i16, correlation_id: i32) -> Self {
        Self {
            api_key,
            api_version,
            correlation_id,
            client_id: None,
        }
    }

    /// Sets the client id.
    #[must_use]
    pub fn with_client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(StrBytes::from_string(client_id.into()));
        self
    }

    /// The request header version (1 or 2) used by this API version.
    pub fn header_version(&self) -> i16 {
        self.api_key.request_header_version(self.api_version)
    }

    /// The response header version (0 or 1) the answer to this request uses. `ApiVersions`
    /// answers always use v0, so that a client can read the answer whatever version it sent.
    pub fn response_header_version(&self) -> i16 {
        self.api_key.response_header_version(self.api_version)
    }

    /// Decodes the header at the front of `frame` (a frame from
    /// [`split_frame`](crate::split_frame), without its size prefix) and leaves `frame` holding
    /// just the body.
    ///
    /// The api key and version are checked against [`SUPPORTED`](crate::SUPPORTED) before the
    /// rest of the header is read:
    /// - fewer than [`FIXED_HEADER_LEN`] bytes: [`ProtocolError::TruncatedHeader`];
    /// - an api key Kafka does not define: [`ProtocolError::UnknownApiKey`], with the
    ///   correlation id;
    /// - a version Rill does not serve: [`ProtocolError::UnsupportedVersion`] with the
    ///   correlation id (for `ApiVersions`, answer with
    ///   [`Response::unsupported_api_versions`](crate::Response::unsupported_api_versions));
    /// - a malformed client id or tagged-field section: [`ProtocolError::Truncated`] or
    ///   [`ProtocolError::Decode`].
    ///
    /// On error, how much of `frame` was consumed is unspecified.
    pub fn decode(frame: &mut Bytes) -> Result<Self, ProtocolError> {
        let Some(&[k0, k1, v0, v1, c0, c1, c2, c3]) = frame.get(..FIXED_HEADER_LEN) else {
            return Err(ProtocolError::TruncatedHeader {
                need: FIXED_HEADER_LEN,
                have: frame.len(),
            });
        };
        let raw_api_key = i16::from_be_bytes([k0, k1]);
        let api_version = i16::from_be_bytes([v0, v1]);
        let correlation_id = i32::from_be_bytes([c0, c1, c2, c3]);
        let Ok(api_key) = ApiKey::try_from(raw_api_key) else {
            return Err(ProtocolError::UnknownApiKey {
                api_key: raw_api_key,
                api_version,
                correlation_id,
            });
        };
        if !supported(api_key, api_version) {
            return Err(ProtocolError::UnsupportedVersion {
                api_key,
                api_version,
                correlation_id,
            });
        }
        let header_version = api_key.request_header_version(api_version);
        let wire = WireRequestHeader::decode(frame, header_version).map_err(decode_error!(
            api_key,
            api_version,
            "request header"
        ))?;
        Ok(Self {
            api_key,
            api_version,
            correlation_id,
            client_id: wire.client_id,
        })
    }

    /// Appends this header, in the header version its API version calls for, to `dst`.
    ///
    /// This does not consult the version table: a client may speak versions Rill does not serve.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), ProtocolError> {
        let wire = WireRequestHeader::default()
            .with_request_api_key(self.api_key as i16)
            .with_request_api_version(self.api_version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(self.client_id.clone());
        wire.encode(dst, self.header_version()).map_err(|err| {
            ProtocolError::encode(self.api_key, self.api_version, "request header", err)
        })
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a test fails by panicking")]
mod tests {
    use super::*;

    fn encoded(header: &RequestHeader, body: &[u8]) -> Bytes {
        let mut buf = BytesMut::new();
        header.encode(&mut buf).unwrap();
        buf.extend_from_slice(body);
        buf.freeze()
    }

    #[test]
    fn v1_and_v2_round_trip_and_leave_the_body() {
        // Metadata v8 is the last non-flexible version (header v1), v9 the first flexible (v2).
        for (version, header_version) in [(8, 1), (9, 2)] {
            let header = RequestHeader::new(ApiKey::Metadata, version, 42).with_client_id("rill");
            assert_eq!(header.header_version(), header_version);
            let mut frame = encoded(&header, b"body");
            assert_eq!(RequestHeader::decode(&mut frame).unwrap(), header);
            assert_eq!(&frame[..], b"body");
        }
    }

    #[test]
    fn null_client_id() {
        let header = RequestHeader::new(ApiKey::ApiVersions, 0, 7);
        let mut frame = encoded(&header, b"");
        assert_eq!(RequestHeader::decode(&mut frame).unwrap().client_id, None);
    }

    #[test]
    fn unknown_api_key_carries_correlation_id() {
        let mut frame = Bytes::from_static(&[0x7f, 0x00, 0x00, 0x03, 0x00, 0x00, 0x01, 0x02, 0xff]);
        let err = RequestHeader::decode(&mut frame).unwrap_err();
        assert!(
            matches!(
                err,
                ProtocolError::UnknownApiKey {
                    api_key: 0x7f00,
                    api_version: 3,
                    correlation_id: 0x0102
                }
            ),
            "{err:?}"
        );
        assert_eq!(err.correlation_id(), Some(0x0102));
    }

    #[test]
    fn unsupported_version_carries_correlation_id_without_reading_further() {
        // ApiVersions v99 from a future client: the rest of its header may be any shape.
        let mut frame = Bytes::from_static(&[0, 18, 0, 99, 0, 0, 0, 5, 0xde, 0xad]);
        let err = RequestHeader::decode(&mut frame).unwrap_err();
        assert!(
            matches!(
                err,
                ProtocolError::UnsupportedVersion {
                    api_key: ApiKey::ApiVersions,
                    api_version: 99,
                    correlation_id: 5
                }
            ),
            "{err:?}"
        );
        // A known API that Rill does not serve at all.
        let mut frame = Bytes::from_static(&[0, 38, 0, 1, 0, 0, 0, 6, 0, 0]);
        assert!(matches!(
            RequestHeader::decode(&mut frame),
            Err(ProtocolError::UnsupportedVersion {
                api_key: ApiKey::CreateDelegationToken,
                correlation_id: 6,
                ..
            })
        ));
        // Negative versions are unsupported, not a panic.
        let mut frame = Bytes::from_static(&[0, 3, 0xff, 0xff, 0, 0, 0, 7]);
        assert_eq!(
            RequestHeader::decode(&mut frame)
                .unwrap_err()
                .correlation_id(),
            Some(7)
        );
    }

    #[test]
    fn truncated_at_every_byte_is_an_error() {
        for (version, api_key) in [
            (9, ApiKey::Metadata),
            (3, ApiKey::ApiVersions),
            (1, ApiKey::Metadata),
        ] {
            let header = RequestHeader::new(api_key, version, 1).with_client_id("client-1");
            let full = encoded(&header, b"");
            for cut in 0..full.len() {
                let mut frame = full.slice(..cut);
                let err = RequestHeader::decode(&mut frame).unwrap_err();
                if cut < FIXED_HEADER_LEN {
                    assert!(
                        matches!(err, ProtocolError::TruncatedHeader { .. }),
                        "{err:?}"
                    );
                } else {
                    assert!(
                        matches!(err, ProtocolError::Truncated { .. }),
                        "cut {cut}: {err:?}"
                    );
                }
            }
        }
    }
}
