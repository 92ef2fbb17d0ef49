//! Kafka's RecordBatch v2, shared by the wire, the disk and the client. No I/O, no async.
//!
//! # Layout
//! - [`batch`]: the 61-byte header ([`BatchHeader`]), a zero-copy view of one batch
//!   ([`Batch`]) with CRC-32C verification, an iterator over concatenated batches
//!   ([`Batches`]) and the in-place `baseOffset` rewrite a broker uses to assign offsets.
//! - [`record`]: the records inside a batch ([`Record`], [`Header`]) and
//!   [`Batch::records`], which decompresses and decodes them.
//! - [`builder`]: [`BatchBuilder`], which encodes [`RecordSpec`]s into a complete batch.
//! - [`compression`]: gzip, snappy (xerial and raw), LZ4 frame and zstd, with decompression
//!   bounded by a caller-given size.
//! - [`varint`]: the zigzag varints and varlongs records are made of.
//! - [`legacy`]: the magic 0 and 1 message sets of old clients, converted to and from batches.
//!
//! ```
//! use rill_record::{Batch, BatchBuilder, Compression, RecordError, RecordSpec};
//! # fn check(bytes: &[u8]) -> Result<i64, RecordError> {
//! let batch = Batch::parse(bytes)?;
//! batch.verify_crc()?;
//! Ok(batch.header().last_offset())
//! # }
//! # fn main() -> Result<(), RecordError> {
//! # assert!(check(&[0u8; 3]).is_err());
//! let bytes = BatchBuilder::new()
//!     .compression(Compression::Gzip)
//!     .record(RecordSpec::new(1_700_000_000_000).key("k").value("v"))
//!     .build()?;
//! assert_eq!(check(&bytes)?, 0);
//! let records = Batch::parse(&bytes)?.records()?;
//! assert_eq!(records[0].value.as_deref(), Some(&b"v"[..]));
//! # Ok(())
//! # }
//! ```
#![doc(test(attr(deny(warnings))))]
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)
)]

pub mod batch;
pub mod builder;
pub mod compression;
pub mod control;
mod error;
pub mod legacy;
mod partition;
pub mod record;
pub mod varint;

pub use batch::{
    Attributes, Batch, BatchHeader, Batches, Compression, HEADER_LEN, LOG_OVERHEAD, MAGIC_V2,
    TimestampType,
};
pub use batch::{set_base_offset, set_log_append_time, set_partition_leader_epoch};
pub use builder::{BatchBuilder, Filtered, RecordSpec, empty_batch, filter, rebuild};
pub use compression::{compress, compress_into, compress_into_level, decompress};
pub use control::{Marker, marker_batch, parse_marker};
pub use error::RecordError;
pub use partition::{murmur2, partition_for_key};
pub use record::{DEFAULT_MAX_RECORDS_LEN, DecodeOptions, Header, Record, decode_records};
