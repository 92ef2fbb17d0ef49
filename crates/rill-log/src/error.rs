//! The one error type of the storage engine.

use std::io;
use std::path::PathBuf;

use rill_record::RecordError;

/// What can go wrong in a partition log. Every variant that touches the disk names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// An I/O call failed on `path`.
    #[error("i/o error on {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// Stored bytes fail their checks (length, magic, CRC, offsets) where no torn write can explain it.
    #[error("corrupt data in {} at position {position}: {source}", path.display())]
    Corrupt {
        /// The segment file.
        path: PathBuf,
        /// Byte position of the bad batch.
        position: u64,
        /// What the check found.
        #[source]
        source: Corruption,
    },
    /// An index file disagrees with its segment in a way rebuilding cannot mend.
    #[error("inconsistent segment {}: {reason}", path.display())]
    Inconsistent {
        /// The segment file.
        path: PathBuf,
        /// What disagrees.
        reason: String,
    },
    /// The offset asked for is below the log start or above the log end.
    #[error("offset {offset} is out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        /// The offset asked for.
        offset: i64,
        /// First offset still in the log.
        log_start_offset: i64,
        /// The offset the next record will get.
        log_end_offset: i64,
    },
    /// The bytes handed to `append` are not one well-formed batch.
    #[error("invalid batch: {source}")]
    InvalidBatch {
        /// What is wrong with it.
        #[from]
        source: RecordError,
    },
    /// A batch larger than a whole segment may hold.
    #[error("batch of {size} bytes exceeds segment.bytes ({max})")]
    BatchTooLarge {
        /// The batch's size.
        size: usize,
        /// The segment size limit.
        max: u64,
    },
    /// A flush failed earlier: the log accepts no more writes, since what is on disk is unknown.
    #[error("log {} refuses writes after a failed fsync", path.display())]
    Poisoned {
        /// The file whose fsync failed.
        path: PathBuf,
    },
    /// [`crate::Log::truncate_to`] was asked to cut the log inside a batch: a log holds whole
    /// batches only.
    #[error(
        "offset {offset} is inside the batch at offset {batch_base_offset}, not at a batch boundary"
    )]
    NotABatchBoundary {
        /// The offset asked for.
        offset: i64,
        /// The first offset of the batch holding it.
        batch_base_offset: i64,
    },
    /// [`crate::Log::add_aborted`] was given a transaction whose first offset is after its last.
    #[error(
        "aborted transaction starts at offset {first_offset}, after its last offset {last_offset}"
    )]
    InvalidAbortedTxn {
        /// The transaction's first offset.
        first_offset: i64,
        /// The offset of its ABORT marker.
        last_offset: i64,
    },
    /// An offset that can never be in a log.
    #[error("offset {offset} is negative")]
    NegativeOffset {
        /// The offset asked for.
        offset: i64,
    },
    /// A configuration value is out of its range.
    #[error("invalid log configuration: {0}")]
    InvalidConfig(String),
}

/// What is wrong with a stored batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Corruption {
    /// The batch's own checks fail (length, magic, CRC).
    #[error(transparent)]
    Batch(#[from] RecordError),
    /// The batch is well-formed but does not continue the offsets before it.
    #[error("batch starts at offset {found}, expected {expected}")]
    UnexpectedOffset {
        /// The offset the previous batch ends at, plus one.
        expected: i64,
        /// The batch's baseOffset.
        found: i64,
    },
}

/// Attaches a path to an I/O result, the context every storage error must carry.
pub(crate) trait IoContext<T> {
    fn at(self, path: &std::path::Path) -> Result<T, LogError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: &std::path::Path) -> Result<T, LogError> {
        self.map_err(|source| LogError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}
