//! When the log asks the operating system to put appended bytes on stable storage.
//!
//! Whatever the policy, a *process* crash (kill -9, panic, OOM kill) loses nothing that `append`
//! returned: the bytes are in the kernel's page cache and recovery finds them. The policies differ
//! in what survives a *power loss or kernel crash*, when only what was fsynced survives.
//! [`crate::Log::sync`] is always available to make everything appended so far durable (group
//! commit: one fsync covers every batch appended since the previous one); a broker answering
//! `acks=all` calls it before it answers.

use std::time::Duration;

/// The flush policy of a log (Kafka's `flush.messages` / `flush.ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FlushPolicy {
    /// fsync inside every `append` call.
    ///
    /// Process crash: nothing appended is lost. Power loss: nothing appended is lost.
    /// Costs one fsync per batch; prefer [`FlushPolicy::Never`] plus explicit
    /// [`crate::Log::sync`] calls for group commit.
    EveryAppend,
    /// fsync once this many records have been appended since the last fsync.
    ///
    /// Process crash: nothing lost. Power loss: up to this many records (minus one) may be lost.
    Messages(u64),
    /// fsync when an append finds the last fsync older than this, and from
    /// [`crate::Log::flush_if_due`], which the owner calls on a timer.
    ///
    /// Process crash: nothing lost. Power loss: up to this interval of appends may be lost.
    Interval(Duration),
    /// Never fsync on its own; the OS writes pages back when it chooses (about 30 s on Linux),
    /// and callers flush with [`crate::Log::sync`] when they need durability (Kafka's default).
    ///
    /// Process crash: nothing lost. Power loss: whatever was not synced explicitly may be lost.
    #[default]
    Never,
}

impl FlushPolicy {
    /// Whether the appends since the last fsync call for one now.
    pub(crate) fn is_due(self, unflushed_records: u64, since_last_flush_ms: i64) -> bool {
        match self {
            Self::EveryAppend => unflushed_records > 0,
            Self::Messages(n) => unflushed_records >= n.max(1),
            Self::Interval(every) => {
                unflushed_records > 0
                    && u128::try_from(since_last_flush_ms).unwrap_or(0) >= every.as_millis()
            }
            Self::Never => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_rules() {
        assert!(FlushPolicy::EveryAppend.is_due(1, 0));
        assert!(!FlushPolicy::EveryAppend.is_due(0, 100));
        assert!(!FlushPolicy::Messages(10).is_due(9, 1_000));
        assert!(FlushPolicy::Messages(10).is_due(10, 0));
        let every_second = FlushPolicy::Interval(Duration::from_secs(1));
        assert!(!every_second.is_due(5, 999));
        assert!(every_second.is_due(5, 1_000));
        assert!(!every_second.is_due(0, 5_000));
        assert!(!FlushPolicy::Never.is_due(u64::MAX, i64::MAX));
    }
}
