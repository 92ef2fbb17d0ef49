//! Responses: a body (one of `kafka-protocol`'s generated response types wrapped in
//! [`ResponseKind`]) plus what the answer needs from its request: api key, version and
//! correlation id.
//!
//! The response header is v0 (just the correlation id) for non-flexible versions and v1 (plus
//! tagged fields) for flexible ones, except that `ApiVersions` answers always use v0: a client
//! that sent a version the broker does not know must still be able to read the answer (KIP-511).

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseHeader as WireResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};

pub use kafka_protocol::messages::ResponseKind;

use crate::error::{ErrorCode, ProtocolError, decode_error};
use crate::frame::write_frame;
use crate::header::RequestHeader;
use crate::legacy;
use crate::versions::{api_versions_response, response_api_key};

/// A response, ready to encode (broker side) or just decoded (client side).
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// The API of the request being answered.
    pub api_key: ApiKey,
    /// The version of the request being answered; the body is encoded at this version.
    pub api_version: i16,
    /// The request's correlation id.
    pub correlation_id: i32,
    /// The body, e.g. `ResponseKind::Produce(ProduceResponse { .. })`.
    pub body: ResponseKind,
}

impl Response {
    /// The answer to the request with this header.
    pub fn new(request: &RequestHeader, body: impl Into<ResponseKind>) -> Self {
        Self {
            api_key: request.api_key,
            api_version: request.api_version,
            correlation_id: request.correlation_id,
            body: body.into(),
        }
    }

    /// The answer to an `ApiVersions` request whose version Rill does not support (KIP-511):
    /// a v0 `ApiVersionsResponse` with error `UNSUPPORTED_VERSION` and the full version table,
    /// from which the client picks a version both sides know and asks again.
    ///
    /// Use it when [`RequestHeader::decode`] returns
    /// [`ProtocolError::UnsupportedVersion`] with `api_key: ApiKey::ApiVersions`.
    pub fn unsupported_api_versions(correlation_id: i32) -> Self {
        Self {
            api_key: ApiKey::ApiVersions,
            api_version: 0,
            correlation_id,
            body: ResponseKind::ApiVersions(
                api_versions_response().with_error_code(ErrorCode::UnsupportedVersion.code()),
            ),
        }
    }

    /// The response header version (0 or 1) this response is written with.
    pub fn header_version(&self) -> i16 {
        self.api_key.response_header_version(self.api_version)
    }

    /// Appends this response to `dst` as a frame: size prefix, response header, body.
    ///
    /// The body must be of `api_key`'s API, one of [`SUPPORTED`](crate::SUPPORTED)
    /// ([`ProtocolError::MismatchedBody`] otherwise). Encoding fails with
    /// [`ProtocolError::Encode`] if the body sets a field that `api_version` does not have
    /// (`kafka-protocol` refuses rather than silently dropping it). On error `dst` is unchanged.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), ProtocolError> {
        let (api_key, api_version) = (self.api_key, self.api_version);
        if response_api_key(&self.body) != Some(api_key) {
            return Err(ProtocolError::MismatchedBody {
                api_key,
                what: "response body",
            });
        }
        // A fetch answer carries record batches: room for all of it at once, rather than
        // growing (and copying) the buffer step by step while the batches are written.
        if let ResponseKind::Fetch(body) = &self.body {
            dst.reserve(body.compute_size(api_version).unwrap_or(0) + 64);
        }
        write_frame(dst, |buf| {
            WireResponseHeader::default()
                .with_correlation_id(self.correlation_id)
                .encode(buf, self.header_version())
                .map_err(|err| {
                    ProtocolError::encode(api_key, api_version, "response header", err)
                })?;
            if legacy::is_legacy(api_key, api_version) {
                return legacy::encode_response(&self.body, api_key, api_version, buf);
            }
            self.body
                .encode(buf, api_version)
                .map_err(|err| ProtocolError::encode(api_key, api_version, "response body", err))
        })
    }

    /// Decodes a response frame (without its size prefix) to a request of `api_key` at
    /// `api_version` (client side: the client knows these from the correlation id).
    ///
    /// Leftover bytes after the body are [`ProtocolError::TrailingBytes`].
    pub fn decode(
        api_key: ApiKey,
        api_version: i16,
        mut frame: Bytes,
    ) -> Result<Self, ProtocolError> {
        let header_version = api_key.response_header_version(api_version);
        let header = WireResponseHeader::decode(&mut frame, header_version)
            .map_err(decode_error!(api_key, api_version, "response header"))?;
        let body = if legacy::is_legacy(api_key, api_version) {
            legacy::decode_response(api_key, api_version, &mut frame)?
        } else {
            ResponseKind::decode(api_key, &mut frame, api_version).map_err(decode_error!(
                api_key,
                api_version,
                "response body"
            ))?
        };
        if !frame.is_empty() {
            return Err(ProtocolError::TrailingBytes {
                api_key,
                api_version,
                what: "response body",
                trailing: frame.len(),
            });
        }
        Ok(Self {
            api_key,
            api_version,
            correlation_id: header.correlation_id,
            body,
        })
    }
}
