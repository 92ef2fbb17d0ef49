//! Rill's storage engine: one [`Log`] per partition, in Kafka's on-disk layout.
//!
//! # Layout
//! - [`Log`] (`log.rs`): open and recover, append, read, timestamp lookups, roll, retention,
//!   truncation (`truncate_to`, `start_at`), group-commit `sync`, clean close, and the aborted
//!   transactions of read_committed fetches (`add_aborted`, `aborted_between`, `sync_txn_index`).
//! - `segment.rs`: one `.log` file of whole record batches with its `.index` and `.timeindex`,
//!   and a `.txnindex` once it holds a recorded ABORT marker.
//! - `index.rs`: the sparse offset and time indexes.
//! - [`AbortedTxn`] (`txn_index.rs`): the aborted-transaction index (Kafka's `.txnindex`), in
//!   memory and written entry by entry; only segments with aborted transactions have a file.
//! - [`cleaner`]: log compaction (Kafka's log cleaner), crash-safe swaps of cleaned segments.
//! - [`FileCache`] (`cache.rs`): the bounded set of open segment files many logs share.
//! - [`BlockingPool`] (`background.rs`): fixed thread pools for fsyncs; one, shared by every
//!   log, fsyncs sealed segments.
//! - [`FlushPolicy`] (`flush.rs`): when appends are fsynced, and what survives what.
//! - [`LogConfig`] (`config.rs`): Kafka's per-topic settings with Kafka's defaults.
//! - [`dir`]: file naming and directory fsync.
//!
//! # Invariants
//! - Synchronous: no async, no network. Callers give the log an owner (one thread at a time).
//! - Batches are stored verbatim; only `baseOffset` is rewritten (outside the CRC).
//! - Never returns a byte that failed its CRC: reads verify every batch they return, recovery
//!   cuts a torn or corrupt tail off the active segment, and corruption inside a sealed segment
//!   is an error naming the file and position.
//! - A failed fsync poisons the log: every later append and sync fails.
//! - A roll fsyncs the sealed segment on a small shared pool of threads; `sync` waits for it.
//! - Descriptors are bounded: only the files a [`FileCache`] holds are open, index files only
//!   while they are written. A log unchanged since a clean close needs no work to close again.
//! - Nothing read from disk can make it panic.
//!
//! ```no_run
//! use rill_log::{Log, LogConfig};
//! # fn demo(mut batch: Vec<u8>, now_ms: i64) -> Result<(), rill_log::LogError> {
//! let mut log = Log::open("data/orders-0", LogConfig::default(), now_ms)?;
//! let info = log.append(&mut batch, now_ms)?;
//! log.sync()?; // group commit: one fsync for everything appended so far
//! let bytes = log.read(info.base_offset, 1 << 20)?;
//! assert!(!bytes.is_empty());
//! log.close()?;
//! # Ok(()) }
//! # let _ = demo;
//! ```
#![doc(test(attr(deny(warnings))))]
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)
)]

mod background;
mod cache;
pub mod cleaner;
mod config;
pub mod dir;
mod error;
mod flush;
mod index;
mod log;
mod segment;
mod txn_index;

pub use background::BlockingPool;
pub use cache::FileCache;
pub use cleaner::{CleanRules, CleanStats, Cleaned, OffsetMap, Pass, SealedSegment, Throttle};
pub use config::{
    DEFAULT_INDEX_INTERVAL_BYTES, DEFAULT_RETENTION_BYTES, DEFAULT_RETENTION_MS,
    DEFAULT_SEGMENT_BYTES, DEFAULT_SEGMENT_MS, LogConfig,
};
pub use error::{Corruption, LogError};
pub use flush::FlushPolicy;
pub use log::{AppendInfo, Log, PendingSync, TimestampOffset};
pub use txn_index::AbortedTxn;
