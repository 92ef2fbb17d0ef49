//! Kafka's wire protocol as Rill speaks it: framing, request headers, request and response
//! bodies, the version table and the error codes. No I/O, no async, no runtime: bytes in, typed
//! values out, and back. The broker and the client own the sockets.
//!
//! # Layout
//! A request travels **frame -> header -> body**:
//! - [`frame`]: [`split_frame`] takes one size-prefixed frame off a read buffer (`Ok(None)` means
//!   "read more"; sizes above the limit are refused before anything is allocated), and
//!   [`write_frame`] writes one.
//! - [`header`]: [`RequestHeader::decode`] reads api key, version and correlation id first and
//!   checks them against the version table, so an unknown key or version is a structured error
//!   that still carries the correlation id.
//! - [`request`]: [`Request::decode`] decodes the body into `kafka-protocol`'s generated types,
//!   wrapped in its [`RequestKind`] enum. Record batches stay opaque `Bytes` for `rill-record`.
//! - [`response`]: [`Response::encode`] writes the answer as a frame, with the response header
//!   version the API and version call for (always v0 for `ApiVersions`).
//! - [`versions`]: [`SUPPORTED`], the one table of APIs and versions Rill serves, and the
//!   `ApiVersions` answer built from it.
//! - [`ErrorCode`]: Kafka's numeric error codes; [`ProtocolError`]: what can go wrong here.
//!
//! ```
//! use bytes::BytesMut;
//! use rill_protocol::{split_frame, versions, ProtocolError, Request, RequestKind, Response};
//! use rill_protocol::DEFAULT_MAX_FRAME_SIZE;
//!
//! # fn main() -> Result<(), ProtocolError> {
//! // An ApiVersions v3 request as it arrives on a socket.
//! let mut read_buf = BytesMut::from(
//!     &[
//!         0, 0, 0, 25, // frame size
//!         0, 18, 0, 3, 0, 0, 0, 1, // api key 18 (ApiVersions), version 3, correlation id 1
//!         0, 4, b'd', b'e', b'm', b'o', 0, // client id "demo", no tagged fields
//!         5, b'r', b'i', b'l', b'l', 4, b'0', b'.', b'1', 0, // client software name and version
//!     ][..],
//! );
//! let Some(frame) = split_frame(&mut read_buf, DEFAULT_MAX_FRAME_SIZE)? else {
//!     unreachable!("the whole frame is in the buffer");
//! };
//! let request = Request::decode_frame(frame)?;
//! assert_eq!(request.header.correlation_id, 1);
//! let RequestKind::ApiVersions(body) = &request.body else {
//!     unreachable!("api key 18 is ApiVersions");
//! };
//! assert_eq!(body.client_software_name.as_str(), "rill");
//!
//! let mut write_buf = BytesMut::new();
//! Response::new(&request.header, versions::api_versions_response()).encode(&mut write_buf)?;
//! // ApiVersions answers use response header v0: the correlation id follows the size.
//! assert_eq!(write_buf[4..8], 1_i32.to_be_bytes());
//! # Ok(())
//! # }
//! ```
//!
//! # Known limitation
//! `kafka-protocol` 0.18 sizes a `Vec` from an array's element count before it reads any
//! element, so a short body that claims a huge array (four bytes can claim two billion topics)
//! asks for more memory than the machine has. With the system allocator that aborts the process;
//! the `rill` binary installs an allocator that reserves such blocks lazily, so the decoder fails
//! with an ordinary error instead (see `crates/rill/src/alloc.rs`). Other programs embedding this
//! crate need the same guard until the decoder bounds counts by the bytes left (an upstream fix).
#![doc(test(attr(deny(warnings))))]
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)
)]

mod error;
pub mod frame;
pub mod header;
pub mod legacy;
pub mod request;
pub mod response;
pub mod versions;

pub use error::{BoxError, ErrorCode, ProtocolError, UnknownErrorCode};
pub use frame::{DEFAULT_MAX_FRAME_SIZE, FrameError, SIZE_PREFIX_LEN, split_frame, write_frame};
pub use header::RequestHeader;
pub use legacy::LegacyFields;
pub use request::{Request, RequestKind};
pub use response::{Response, ResponseKind};
/// The tag of Rill's own field in a DescribeLogDirs partition (v2+): a compacted partition's
/// dirty ratio as the log cleaner last saw it, an 8-byte IEEE 754 double, big-endian. Kafka's
/// clients skip tags they do not know (KIP-482).
pub const DIRTY_RATIO_TAG: i32 = 0x7269_6c6c;

pub use versions::{
    SUPPORTED, TRANSACTION_VERSION, api_versions_response, supported, version_range, with_features,
};

/// The `kafka-protocol` crate, re-exported so users name message types at the version this crate
/// was built with (`rill_protocol::kafka_protocol::messages::ProduceRequest`).
pub use kafka_protocol;
pub use kafka_protocol::messages::ApiKey;
pub use kafka_protocol::protocol::StrBytes;
