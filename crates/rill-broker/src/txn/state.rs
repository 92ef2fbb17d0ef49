//! A transactional id's state as the transaction coordinator keeps it in `__transaction_state`,
//! and the rules of its state machine (Kafka's `TransactionMetadata`): no I/O here.
//!
//! ```text
//! Empty ──AddPartitions──▶ Ongoing ──EndTxn(commit)──▶ PrepareCommit ──markers──▶ CompleteCommit
//!   ▲                        │  └──EndTxn(abort), timeout, fencing──▶ PrepareAbort ──▶ CompleteAbort
//!   └──InitProducerId (epoch + 1)◀──────────────────────────────────────────────────────┘
//! ```

use std::collections::{BTreeSet, HashMap};

use rill_protocol::ErrorCode;
use serde::{Deserialize, Serialize};

use crate::internal::Replayed;

/// Where a transaction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
}

impl TxnState {
    /// Kafka's name for it (DescribeTransactions, ListTransactions' filter).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::Ongoing => "Ongoing",
            Self::PrepareCommit => "PrepareCommit",
            Self::PrepareAbort => "PrepareAbort",
            Self::CompleteCommit => "CompleteCommit",
            Self::CompleteAbort => "CompleteAbort",
        }
    }

    /// Whether its markers are being written.
    pub(crate) fn preparing(self) -> bool {
        matches!(self, Self::PrepareCommit | Self::PrepareAbort)
    }
}

/// A transactional id's producer and its transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TxnMeta {
    pub(crate) producer_id: i64,
    pub(crate) producer_epoch: i16,
    /// The epoch before the last bump, so a producer retrying an InitProducerId whose answer
    /// it lost (KIP-360) gets the same answer; -1 if none.
    pub(crate) last_producer_epoch: i16,
    pub(crate) timeout_ms: i32,
    pub(crate) state: TxnState,
    /// The partitions of the transaction: topics', and `__consumer_offsets`' for offsets.
    pub(crate) partitions: BTreeSet<(String, i32)>,
    /// When the last transaction started (its first partition), -1 before the first.
    pub(crate) start_ms: i64,
    pub(crate) update_ms: i64,
}

/// A request's view of the producer it comes from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caller {
    pub(crate) producer_id: i64,
    pub(crate) producer_epoch: i16,
}

impl TxnMeta {
    /// A new transactional id's state.
    pub(crate) fn new(producer_id: i64, timeout_ms: i32, now_ms: i64) -> Self {
        Self {
            producer_id,
            producer_epoch: 0,
            last_producer_epoch: -1,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            start_ms: -1,
            update_ms: now_ms,
        }
    }

    /// Whether a request from `caller` speaks for the current producer: another producer id
    /// is INVALID_PRODUCER_ID_MAPPING, another epoch PRODUCER_FENCED.
    pub(crate) fn check(&self, caller: Caller) -> Result<(), ErrorCode> {
        if caller.producer_id != self.producer_id {
            return Err(ErrorCode::InvalidProducerIdMapping);
        }
        if caller.producer_epoch != self.producer_epoch {
            return Err(ErrorCode::ProducerFenced);
        }
        Ok(())
    }

    /// The next epoch of the producer (fencing the current one).
    pub(crate) fn bump(&mut self) {
        self.last_producer_epoch = self.producer_epoch;
        self.producer_epoch = self.producer_epoch.saturating_add(1);
    }

    /// The epoch can no longer be bumped: the producer needs a new id.
    pub(crate) fn exhausted(&self) -> bool {
        self.producer_epoch >= i16::MAX - 1
    }

    /// Adds partitions to the transaction (opening it): whether anything changed.
    pub(crate) fn add(
        &mut self,
        partitions: impl IntoIterator<Item = (String, i32)>,
        now_ms: i64,
    ) -> Result<bool, ErrorCode> {
        let opened = match self.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                return Err(ErrorCode::ConcurrentTransactions);
            }
            TxnState::Ongoing => false,
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                self.state = TxnState::Ongoing;
                self.partitions.clear();
                self.start_ms = now_ms;
                true
            }
        };
        let before = self.partitions.len();
        self.partitions.extend(partitions);
        self.update_ms = now_ms;
        Ok(opened || self.partitions.len() != before)
    }

    /// EndTxn: what the transaction moves to. `Ok(false)` when it is already where the
    /// request asks (a retry): nothing to write.
    pub(crate) fn end(&mut self, commit: bool, now_ms: i64) -> Result<bool, ErrorCode> {
        match (self.state, commit) {
            (TxnState::Ongoing, _) => {
                self.state = if commit {
                    TxnState::PrepareCommit
                } else {
                    TxnState::PrepareAbort
                };
                self.update_ms = now_ms;
                Ok(true)
            }
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => Ok(false),
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                Err(ErrorCode::ConcurrentTransactions)
            }
            _ => Err(ErrorCode::InvalidTxnState),
        }
    }

    /// Its markers are all written: the transaction is complete.
    pub(crate) fn complete(&mut self, now_ms: i64) {
        self.state = match self.state {
            TxnState::PrepareCommit => TxnState::CompleteCommit,
            TxnState::PrepareAbort => TxnState::CompleteAbort,
            other => other,
        };
        // The start time stays: DescribeTransactions shows the last transaction's.
        self.partitions.clear();
        self.update_ms = now_ms;
    }

    /// Whether an open transaction has outlived its timeout at `now_ms`.
    pub(crate) fn expired(&self, now_ms: i64) -> bool {
        self.state == TxnState::Ongoing
            && self.start_ms >= 0
            && now_ms.saturating_sub(self.start_ms) > i64::from(self.timeout_ms)
    }
}

/// The key of a record of `__transaction_state`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TxnKey {
    pub(crate) transactional_id: String,
}

/// What a partition of `__transaction_state` holds: each transactional id's latest state.
#[derive(Debug, Default)]
pub(crate) struct TxnLog {
    pub(crate) txns: HashMap<String, TxnMeta>,
}

impl Replayed for TxnLog {
    fn apply(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), String> {
        let key: TxnKey =
            serde_json::from_slice(key).map_err(|e| format!("an unreadable key: {e}"))?;
        match value {
            Some(value) => {
                let meta = serde_json::from_slice(value).map_err(|e| e.to_string())?;
                let _ = self.txns.insert(key.transactional_id, meta);
            }
            None => {
                let _ = self.txns.remove(&key.transactional_id);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(producer_id: i64, producer_epoch: i16) -> Caller {
        Caller {
            producer_id,
            producer_epoch,
        }
    }

    #[test]
    fn a_transaction_goes_round() {
        let mut meta = TxnMeta::new(7, 60_000, 0);
        assert_eq!(meta.check(caller(7, 0)), Ok(()));
        assert_eq!(
            meta.check(caller(8, 0)),
            Err(ErrorCode::InvalidProducerIdMapping)
        );
        assert_eq!(meta.check(caller(7, 1)), Err(ErrorCode::ProducerFenced));
        assert_eq!(meta.add([("t".to_owned(), 0)], 10), Ok(true));
        assert_eq!(meta.state, TxnState::Ongoing);
        assert_eq!(meta.start_ms, 10);
        // The same partition again: nothing to write.
        assert_eq!(meta.add([("t".to_owned(), 0)], 11), Ok(false));
        assert_eq!(meta.end(true, 12), Ok(true));
        assert_eq!(meta.state, TxnState::PrepareCommit);
        assert_eq!(
            meta.add([("t".to_owned(), 1)], 13),
            Err(ErrorCode::ConcurrentTransactions)
        );
        assert_eq!(meta.end(true, 13), Err(ErrorCode::ConcurrentTransactions));
        assert_eq!(meta.end(false, 13), Err(ErrorCode::InvalidTxnState));
        meta.complete(14);
        assert_eq!(meta.state, TxnState::CompleteCommit);
        assert!(meta.partitions.is_empty());
        // A retried commit is answered again; an abort of it is refused.
        assert_eq!(meta.end(true, 15), Ok(false));
        assert_eq!(meta.end(false, 15), Err(ErrorCode::InvalidTxnState));
        // The next transaction starts fresh.
        assert_eq!(meta.add([("u".to_owned(), 2)], 20), Ok(true));
        assert_eq!(meta.partitions.len(), 1);
        assert_eq!(meta.start_ms, 20);
    }

    #[test]
    fn an_empty_transaction_cannot_end_and_timeouts_count_from_the_start() {
        let mut meta = TxnMeta::new(7, 1_000, 0);
        assert_eq!(meta.end(false, 1), Err(ErrorCode::InvalidTxnState));
        assert!(!meta.expired(1_000_000));
        let _ = meta.add([("t".to_owned(), 0)], 100);
        assert!(!meta.expired(1_100));
        assert!(meta.expired(1_101));
        meta.bump();
        assert_eq!((meta.producer_epoch, meta.last_producer_epoch), (1, 0));
    }

    #[test]
    fn the_log_replays_the_latest_state() {
        let mut log = TxnLog::default();
        let key = br#"{"transactional_id":"a"}"#;
        let meta = TxnMeta::new(7, 1_000, 0);
        let value = serde_json::to_vec(&meta).unwrap_or_default();
        assert_eq!(log.apply(key, Some(&value)), Ok(()));
        assert_eq!(log.txns.get("a"), Some(&meta));
        assert_eq!(log.apply(key, None), Ok(()));
        assert!(log.txns.is_empty());
        assert!(log.apply(b"nope", None).is_err());
    }
}
