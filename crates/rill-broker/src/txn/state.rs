//! A transactional id's state as the transaction coordinator keeps it in `__transaction_state`,
//! and the rules of its state machine (Kafka's `TransactionMetadata`): no I/O here.
//!
//! ```text
//! Empty ──AddPartitions──▶ Ongoing ──EndTxn(commit)──▶ PrepareCommit ──markers──▶ CompleteCommit
//!   ▲                        │  └──EndTxn(abort), timeout, fencing──▶ PrepareAbort ──▶ CompleteAbort
//!   └──InitProducerId (epoch + 1)◀──────────────────────────────────────────────────────┘
//! ```
//!
//! Transaction version 2 (KIP-890 part 2, clients that send EndTxn v5) bumps the producer's
//! epoch at every EndTxn: the markers carry the new epoch, so a late batch of the ended
//! transaction is fenced in every partition, and the EndTxn answer hands the new epoch to the
//! producer. When the epoch runs out, the transaction ends with a new producer id at epoch 0.

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
    /// The last transaction was begun or ended by a client of transaction version 2: its
    /// EndTxn bumped the epoch (a retry of it comes at the epoch before).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) tv2: bool,
    /// The producer id the producer takes once the prepared transaction completes, when its
    /// epoch ran out; -1 if none.
    #[serde(default = "no_producer", skip_serializing_if = "is_none")]
    pub(crate) next_producer_id: i64,
    /// The producer id before the last such change, so that a retried EndTxn of the old id
    /// is still recognised; -1 if none.
    #[serde(default = "no_producer", skip_serializing_if = "is_none")]
    pub(crate) previous_producer_id: i64,
}

fn no_producer() -> i64 {
    -1
}

#[expect(clippy::trivially_copy_pass_by_ref, reason = "serde's signature")]
fn is_none(producer_id: &i64) -> bool {
    *producer_id < 0
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
            tv2: false,
            next_producer_id: -1,
            previous_producer_id: -1,
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

    /// Adds partitions to the transaction (opening it): whether anything changed. `tv2` says
    /// the partitions come from a client of transaction version 2 (added implicitly by its
    /// produce or offset commit).
    pub(crate) fn add(
        &mut self,
        partitions: impl IntoIterator<Item = (String, i32)>,
        now_ms: i64,
        tv2: bool,
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
                self.tv2 = tv2;
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

    /// Whether an EndTxn of transaction version 2 from `caller` speaks for this producer
    /// (Kafka's rules). In a transaction begun or ended by such a client, the current epoch
    /// ends an open transaction, and the epoch before it (the one the EndTxn bumped) is a
    /// retry of the last EndTxn, as is the old producer id's last epoch after a change of id.
    /// Otherwise the current epoch only. INVALID_PRODUCER_ID_MAPPING for another producer id,
    /// PRODUCER_FENCED for another epoch.
    pub(crate) fn check_end(&self, caller: Caller) -> Result<(), ErrorCode> {
        let retry_after_new_id = self.tv2
            && caller.producer_id == self.previous_producer_id
            && caller.producer_epoch == i16::MAX - 1
            && self.producer_epoch == 0;
        if caller.producer_id != self.producer_id && !retry_after_new_id {
            return Err(ErrorCode::InvalidProducerIdMapping);
        }
        let retry =
            self.tv2 && i32::from(caller.producer_epoch) + 1 == i32::from(self.producer_epoch);
        let current = caller.producer_epoch == self.producer_epoch;
        let valid = match self.state {
            _ if !self.tv2 => current,
            TxnState::Empty | TxnState::Ongoing => current,
            TxnState::PrepareCommit | TxnState::PrepareAbort => retry,
            TxnState::CompleteCommit | TxnState::CompleteAbort => retry || retry_after_new_id,
        };
        if valid {
            Ok(())
        } else {
            Err(ErrorCode::ProducerFenced)
        }
    }

    /// EndTxn of transaction version 2: as [`Self::end`], and a transaction that ends bumps
    /// the epoch (its markers carry the new one). `next_producer_id` is the producer id to
    /// move to when the epoch has run out ([`Self::exhausted`]), -1 otherwise.
    pub(crate) fn end_v2(
        &mut self,
        commit: bool,
        now_ms: i64,
        next_producer_id: i64,
    ) -> Result<bool, ErrorCode> {
        let ended = self.end(commit, now_ms)?;
        if ended {
            self.tv2 = true;
            self.bump();
            self.next_producer_id = next_producer_id;
        }
        Ok(ended)
    }

    /// The producer id and epoch a client of transaction version 2 uses after its EndTxn.
    pub(crate) fn next_caller(&self) -> Caller {
        if self.next_producer_id >= 0 {
            Caller {
                producer_id: self.next_producer_id,
                producer_epoch: 0,
            }
        } else {
            Caller {
                producer_id: self.producer_id,
                producer_epoch: self.producer_epoch,
            }
        }
    }

    /// Its markers are all written: the transaction is complete.
    pub(crate) fn complete(&mut self, now_ms: i64) {
        self.state = match self.state {
            TxnState::PrepareCommit => TxnState::CompleteCommit,
            TxnState::PrepareAbort => TxnState::CompleteAbort,
            other => other,
        };
        if self.next_producer_id >= 0 {
            // The epoch ran out: the producer goes on with its new id.
            self.previous_producer_id = self.producer_id;
            self.producer_id = self.next_producer_id;
            self.producer_epoch = 0;
            self.last_producer_epoch = -1;
            self.next_producer_id = -1;
        }
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
        assert_eq!(meta.add([("t".to_owned(), 0)], 10, false), Ok(true));
        assert_eq!(meta.state, TxnState::Ongoing);
        assert_eq!(meta.start_ms, 10);
        // The same partition again: nothing to write.
        assert_eq!(meta.add([("t".to_owned(), 0)], 11, false), Ok(false));
        assert_eq!(meta.end(true, 12), Ok(true));
        assert_eq!(meta.state, TxnState::PrepareCommit);
        assert_eq!(
            meta.add([("t".to_owned(), 1)], 13, false),
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
        assert_eq!(meta.add([("u".to_owned(), 2)], 20, false), Ok(true));
        assert_eq!(meta.partitions.len(), 1);
        assert_eq!(meta.start_ms, 20);
    }

    #[test]
    fn an_empty_transaction_cannot_end_and_timeouts_count_from_the_start() {
        let mut meta = TxnMeta::new(7, 1_000, 0);
        assert_eq!(meta.end(false, 1), Err(ErrorCode::InvalidTxnState));
        assert!(!meta.expired(1_000_000));
        let _ = meta.add([("t".to_owned(), 0)], 100, false);
        assert!(!meta.expired(1_100));
        assert!(meta.expired(1_101));
        meta.bump();
        assert_eq!((meta.producer_epoch, meta.last_producer_epoch), (1, 0));
    }

    #[test]
    fn transaction_version_2_bumps_the_epoch_at_every_end() {
        let mut meta = TxnMeta::new(7, 60_000, 0);
        meta.producer_epoch = 3;
        assert_eq!(meta.add([("t".to_owned(), 0)], 1, true), Ok(true));
        assert_eq!(meta.check_end(caller(7, 3)), Ok(()));
        assert_eq!(meta.end_v2(true, 2, -1), Ok(true));
        // The markers and the producer's next transaction use epoch 4.
        assert_eq!((meta.producer_epoch, meta.last_producer_epoch), (4, 3));
        assert_eq!(meta.next_caller().producer_epoch, 4);
        // A retry while the markers are written: the epoch before the bump.
        assert_eq!(meta.check_end(caller(7, 3)), Ok(()));
        assert_eq!(
            meta.end_v2(true, 3, -1),
            Err(ErrorCode::ConcurrentTransactions)
        );
        assert_eq!(meta.check_end(caller(7, 4)), Err(ErrorCode::ProducerFenced));
        meta.complete(4);
        // A retry after: answered again, with the new epoch; an older epoch is fenced.
        assert_eq!(meta.check_end(caller(7, 3)), Ok(()));
        assert_eq!(meta.end_v2(true, 5, -1), Ok(false));
        assert_eq!(meta.check_end(caller(7, 2)), Err(ErrorCode::ProducerFenced));
        assert_eq!(meta.check(caller(7, 3)), Err(ErrorCode::ProducerFenced));
        // The next transaction, at the new epoch.
        assert_eq!(meta.add([("t".to_owned(), 1)], 6, true), Ok(true));
        assert_eq!(meta.check_end(caller(7, 4)), Ok(()));
        assert_eq!(meta.check_end(caller(7, 3)), Err(ErrorCode::ProducerFenced));
    }

    #[test]
    fn an_exhausted_epoch_moves_to_a_new_producer_id() {
        let mut meta = TxnMeta::new(7, 60_000, 0);
        meta.producer_epoch = i16::MAX - 1;
        assert!(meta.exhausted());
        let _ = meta.add([("t".to_owned(), 0)], 1, true);
        assert_eq!(meta.end_v2(false, 2, 9), Ok(true));
        // The markers carry the last epoch of the old id; the producer goes on with the new.
        assert_eq!((meta.producer_id, meta.producer_epoch), (7, i16::MAX));
        assert_eq!(
            (
                meta.next_caller().producer_id,
                meta.next_caller().producer_epoch
            ),
            (9, 0)
        );
        meta.complete(3);
        assert_eq!((meta.producer_id, meta.producer_epoch), (9, 0));
        assert_eq!(meta.next_producer_id, -1);
        // The old id's retry is still recognised, and answered with the new id.
        assert_eq!(meta.check_end(caller(7, i16::MAX - 1)), Ok(()));
        assert_eq!(meta.end_v2(false, 4, -1), Ok(false));
        assert_eq!(meta.next_caller().producer_id, 9);
        assert_eq!(
            meta.check_end(caller(8, 0)),
            Err(ErrorCode::InvalidProducerIdMapping)
        );
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
