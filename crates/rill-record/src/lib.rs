//! Kafka's RecordBatch v2, shared by the wire, the disk and the client. No I/O, no async.
//!
//! # Layout
//! - [`batch`]: the 61-byte header ([`BatchHeader`]), a zero-copy view of one batch
//!   ([`Batch`]) with CRC-32C verification, an iterator over concatenated batches
//!   ([`Batches`]) and the in-place `baseOffset` rewrite a broker uses to assign offsets.
//!
//! ```
//! use rill_record::{Batch, RecordError};
//! # fn check(bytes: &[u8]) -> Result<i64, RecordError> {
//! let batch = Batch::parse(bytes)?;
//! batch.verify_crc()?;
//! Ok(batch.header().last_offset())
//! # }
//! # assert!(check(&[0u8; 3]).is_err());
//! ```
#![doc(test(attr(deny(warnings))))]
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used))]

pub mod batch;
mod error;

pub use batch::{
    Attributes, Batch, BatchHeader, Batches, Compression, TimestampType, HEADER_LEN,
    LOG_OVERHEAD, MAGIC_V2,
};
pub use error::RecordError;
