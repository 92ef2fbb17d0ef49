//! Errors that stop the broker (as opposed to errors a client gets as a Kafka error code).

use std::path::PathBuf;

/// Why the broker could not start or had to stop.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// A partition or metadata log failed.
    #[error(transparent)]
    Log(#[from] rill_log::LogError),
    /// An I/O call outside the storage engine failed.
    #[error("i/o error on {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The listener failed.
    #[error("listener error: {0}")]
    Listen(#[source] std::io::Error),
    /// The stored metadata cannot be read.
    #[error("unreadable metadata: {0}")]
    Metadata(String),
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A bug: something the broker itself built could not be encoded.
    #[error("internal error: {0}")]
    Internal(String),
}
