//! Per-log settings, named and defaulted as Kafka names and defaults them.

use crate::{FlushPolicy, LogError};

/// Kafka's `segment.bytes` default: 1 GiB.
pub const DEFAULT_SEGMENT_BYTES: u64 = 1 << 30;
/// Kafka's `segment.ms` default: 7 days.
pub const DEFAULT_SEGMENT_MS: i64 = 7 * 24 * 60 * 60 * 1000;
/// Kafka's `retention.ms` default: 7 days.
pub const DEFAULT_RETENTION_MS: i64 = 7 * 24 * 60 * 60 * 1000;
/// Kafka's `retention.bytes` default: unlimited.
pub const DEFAULT_RETENTION_BYTES: i64 = -1;
/// Kafka's `index.interval.bytes` default: an index entry every 4 KiB of log.
pub const DEFAULT_INDEX_INTERVAL_BYTES: u32 = 4096;

/// How one partition log rolls, indexes, retains and flushes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// `segment.bytes`: roll to a new segment before this size would be exceeded.
    /// At most `i32::MAX`, since index positions are 32-bit as in Kafka.
    pub segment_bytes: u64,
    /// `segment.ms`: roll a segment whose first append is older than this; -1 never.
    pub segment_ms: i64,
    /// `retention.ms`: delete sealed segments whose newest timestamp is older; -1 keeps forever.
    pub retention_ms: i64,
    /// `retention.bytes`: delete the oldest sealed segments while the log is larger; -1 unlimited.
    pub retention_bytes: i64,
    /// `index.interval.bytes`: log bytes between two sparse index entries.
    pub index_interval_bytes: u32,
    /// When appends are fsynced on their own (see [`FlushPolicy`]).
    pub flush: FlushPolicy,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            segment_ms: DEFAULT_SEGMENT_MS,
            retention_ms: DEFAULT_RETENTION_MS,
            retention_bytes: DEFAULT_RETENTION_BYTES,
            index_interval_bytes: DEFAULT_INDEX_INTERVAL_BYTES,
            flush: FlushPolicy::default(),
        }
    }
}

impl LogConfig {
    /// Checks every value against its range.
    pub fn validate(&self) -> Result<(), LogError> {
        let invalid = |what: String| Err(LogError::InvalidConfig(what));
        if self.segment_bytes < rill_record::HEADER_LEN as u64
            || self.segment_bytes > i32::MAX as u64
        {
            return invalid(format!(
                "segment.bytes must be between {} and {}, got {}",
                rill_record::HEADER_LEN,
                i32::MAX,
                self.segment_bytes
            ));
        }
        for (name, value) in [
            ("segment.ms", self.segment_ms),
            ("retention.ms", self.retention_ms),
            ("retention.bytes", self.retention_bytes),
        ] {
            if value < -1 {
                return invalid(format!(
                    "{name} must be -1 (unlimited) or >= 0, got {value}"
                ));
            }
        }
        if self.segment_ms == 0 {
            return invalid("segment.ms must be -1 or positive, got 0".to_owned());
        }
        if self.index_interval_bytes == 0 {
            return invalid("index.interval.bytes must be positive".to_owned());
        }
        Ok(())
    }
}
