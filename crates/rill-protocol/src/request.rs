//! Requests: a [`RequestHeader`] and a body, one of `kafka-protocol`'s generated request types
//! wrapped in its [`RequestKind`] enum (`RequestKind::Produce(ProduceRequest)`, ...).

use bytes::{Bytes, BytesMut};
pub use kafka_protocol::messages::RequestKind;
use kafka_protocol::protocol::Encodable as _;

use crate::error::{ProtocolError, decode_error};
use crate::frame::write_frame;
use crate::header::RequestHeader;
use crate::legacy::{self, LegacyFields};
use crate::versions::{request_api_key, supported};

/// A decoded request: its header and its body.
///
/// The body's variant always matches `header.api_key`, and `header.api_version` is in
/// [`SUPPORTED`](crate::SUPPORTED), when the request came from [`Request::decode`].
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The header: api key, version, correlation id, client id.
    pub header: RequestHeader,
    /// The body, e.g. `RequestKind::Produce(ProduceRequest { .. })`.
    pub body: RequestKind,
    /// What an old version's body carried that `body`'s type has no field for (OffsetCommit
    /// v1's commit timestamps); `None` for every current version.
    pub legacy: Option<LegacyFields>,
}

impl Request {
    /// Pairs a header with a body (for clients and tests; [`Request::encode`] checks they match).
    pub fn new(header: RequestHeader, body: impl Into<RequestKind>) -> Self {
        Self {
            header,
            body: body.into(),
            legacy: None,
        }
    }

    /// Decodes the body that followed `header` in its frame.
    ///
    /// `body` is the rest of the frame. Bytes left over after the message are ignored, as Kafka's
    /// broker ignores them: librdkafka's AdminClient sends Metadata v13 requests with three bytes
    /// after the body, and refusing them would cut such clients off. A body that
    /// ends early is [`ProtocolError::Truncated`]; other malformations are
    /// [`ProtocolError::Decode`]. A header whose version is outside the table (possible only for
    /// a hand-built header) is [`ProtocolError::UnsupportedVersion`].
    ///
    /// The versions Kafka 4 dropped and Kafka 3.9 still serves are translated into the current
    /// types (see [`legacy`](crate::legacy)); what they carry beyond those types is in
    /// [`Request::legacy`].
    ///
    /// Record batches inside Produce requests are not looked into here: they stay as `Bytes`
    /// (shared with the frame, not copied) for `rill-record`.
    pub fn decode(header: RequestHeader, mut body: Bytes) -> Result<Self, ProtocolError> {
        let RequestHeader {
            api_key,
            api_version,
            correlation_id,
            ..
        } = header;
        if !supported(api_key, api_version) {
            return Err(ProtocolError::UnsupportedVersion {
                api_key,
                api_version,
                correlation_id,
            });
        }
        if legacy::is_legacy(api_key, api_version) {
            let (body, legacy) = legacy::decode_request(api_key, api_version, &mut body)?;
            return Ok(Self {
                header,
                body,
                legacy,
            });
        }
        let kind = RequestKind::decode(api_key, &mut body, api_version).map_err(decode_error!(
            api_key,
            api_version,
            "request body"
        ))?;
        Ok(Self {
            header,
            body: kind,
            legacy: None,
        })
    }

    /// Decodes a whole request frame (header and body, without the size prefix), as returned by
    /// [`split_frame`](crate::split_frame).
    pub fn decode_frame(mut frame: Bytes) -> Result<Self, ProtocolError> {
        let header = RequestHeader::decode(&mut frame)?;
        Self::decode(header, frame)
    }

    /// Appends this request to `dst` as a frame: size prefix, header, body.
    ///
    /// The body must be of the header's API, and that API one of [`SUPPORTED`](crate::SUPPORTED)
    /// ([`ProtocolError::MismatchedBody`] otherwise); the version is not checked against the
    /// table, so a client can speak versions Rill does not serve. On error `dst` is unchanged.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), ProtocolError> {
        let RequestHeader {
            api_key,
            api_version,
            ..
        } = self.header;
        if request_api_key(&self.body) != Some(api_key) {
            return Err(ProtocolError::MismatchedBody {
                api_key,
                what: "request body",
            });
        }
        // A produce carries record batches: room for all of it at once, rather than growing
        // (and copying) the buffer step by step while the batches are written.
        if let RequestKind::Produce(body) = &self.body {
            dst.reserve(body.compute_size(api_version).unwrap_or(0) + 64);
        }
        write_frame(dst, |buf| {
            self.header.encode(buf)?;
            if legacy::is_legacy(api_key, api_version) {
                return legacy::encode_request(
                    &self.body,
                    self.legacy.as_ref(),
                    api_key,
                    api_version,
                    buf,
                );
            }
            self.body
                .encode(buf, api_version)
                .map_err(|err| ProtocolError::encode(api_key, api_version, "request body", err))
        })
    }
}
