//! Idempotent producers: per partition, what each producer id last wrote, so that a retried
//! batch is written once and batches are written in the order sent.
//!
//! For every producer the state keeps its epoch and the sequence ranges and offsets of its last
//! five batches (Kafka's `max.in.flight.requests.per.connection` limit for idempotence). A batch
//! that repeats one of them is a retry: it is answered with the original offsets and not
//! written. Otherwise its first sequence must follow the last one written (sequences wrap from
//! `i32::MAX` to 0); a new epoch must start at sequence 0. The state is rebuilt from the log's
//! batch headers, starting from the latest snapshot, so a restart (clean or kill -9) keeps it.
//!
//! Transactions (KIP-98) add, per producer, the first offset of its transaction open here (the
//! partition's last stable offset is the smallest of them), the epoch of the coordinator that
//! wrote its last marker, and KIP-890's verification: a transactional batch that would open a
//! transaction here is written only once the coordinator has confirmed that the partition is in
//! the producer's open transaction, so a late batch can never open a transaction that no
//! marker will end.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

use rill_protocol::ErrorCode;
use rill_record::{BatchHeader, Marker};
use serde::{Deserialize, Serialize};

/// Batches remembered per producer (Kafka's `NUM_BATCHES_TO_RETAIN`).
const BATCHES_KEPT: usize = 5;
/// Kafka's `producer.id.expiration.ms` default: a day.
pub(crate) const PRODUCER_ID_EXPIRATION_MS: i64 = 24 * 60 * 60 * 1000;
/// Suffix of producer state snapshots in a partition directory (Kafka's).
const SNAPSHOT_SUFFIX: &str = "snapshot";

/// One batch a producer wrote: its sequence range and where it landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WrittenBatch {
    pub(crate) first_seq: i32,
    pub(crate) last_seq: i32,
    pub(crate) base_offset: i64,
    pub(crate) last_offset: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Producer {
    epoch: i16,
    batches: VecDeque<WrittenBatch>,
    /// Wall-clock time of its last append, for expiry.
    last_append_ms: i64,
    /// The first offset of its transaction open in this partition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    txn_first: Option<i64>,
    /// The offset of the last transaction marker written for it here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_marker: Option<i64>,
    /// The epoch of the coordinator that wrote that marker (-1 before any).
    #[serde(default = "minus_one")]
    coordinator_epoch: i32,
    /// The max timestamp of its last batch (DescribeProducers' `last_timestamp`).
    #[serde(default = "minus_one_ms")]
    last_timestamp: i64,
}

fn minus_one() -> i32 {
    -1
}

fn minus_one_ms() -> i64 {
    -1
}

impl Producer {
    fn new(epoch: i16, now_ms: i64) -> Self {
        Self {
            epoch,
            batches: VecDeque::new(),
            last_append_ms: now_ms,
            txn_first: None,
            last_marker: None,
            coordinator_epoch: -1,
            last_timestamp: -1,
        }
    }

    /// The last offset it wrote here, data or marker.
    fn last_offset(&self) -> Option<i64> {
        let data = self.batches.back().map(|b| b.last_offset);
        data.max(self.last_marker)
    }
}

/// A transaction that ended in this partition: its producer, its first offset here (the
/// marker's own offset when it wrote no data here), the marker's offset and its outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CompletedTxn {
    pub(crate) producer_id: i64,
    pub(crate) first_offset: i64,
    pub(crate) last_offset: i64,
    pub(crate) aborted: bool,
}

/// One producer's state in a partition, as DescribeProducers shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProducerView {
    pub(crate) producer_id: i64,
    pub(crate) epoch: i16,
    pub(crate) last_sequence: i32,
    pub(crate) last_timestamp: i64,
    pub(crate) coordinator_epoch: i32,
    /// The first offset of its open transaction here, -1 if none.
    pub(crate) txn_start: i64,
}

/// What to do with an incoming idempotent batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// New: write it.
    Append,
    /// A retry of a batch already written: answer with its offsets, write nothing.
    Duplicate(WrittenBatch),
    /// Refuse it with this error.
    Reject(ErrorCode),
    /// A transactional batch that would open a transaction here, before the coordinator has
    /// confirmed that the partition is in it (KIP-890): ask it, then try again.
    Unverified,
}

/// The idempotence state of one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ProducerStates {
    producers: BTreeMap<i64, Producer>,
    /// Per producer, the epoch at which its coordinator confirmed that this partition is in
    /// its open transaction; cleared by the marker that ends it. Not kept across restarts:
    /// a producer then asks again.
    #[serde(skip)]
    verified: BTreeMap<i64, i16>,
    /// Transactions ended by a marker that is not yet below the high watermark (a replicated
    /// partition's marker waiting for a majority): still unstable, and not yet in the aborted
    /// transaction index.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pending: Vec<CompletedTxn>,
    /// The transactions open here, as (first offset, producer id): derived from `producers`
    /// (rebuilt by [`Self::reindex`] when loaded), so that the oldest is found without a
    /// walk over every producer on each append.
    #[serde(skip)]
    open: BTreeSet<(i64, i64)>,
}

/// The sequence number of the batch's last record (Kafka's `incrementSequence`: wraps to 0).
pub(crate) fn last_sequence(header: &BatchHeader) -> i32 {
    next_sequence(header.base_sequence, header.last_offset_delta.max(0))
}

fn next_sequence(sequence: i32, increment: i32) -> i32 {
    if sequence > i32::MAX - increment {
        increment - (i32::MAX - sequence) - 1
    } else {
        sequence + increment
    }
}

impl ProducerStates {
    /// Decides what to do with a batch from an idempotent or transactional producer.
    pub(crate) fn check(&self, header: &BatchHeader) -> Verdict {
        let verdict = self.check_sequence(header);
        if verdict != Verdict::Append {
            return verdict;
        }
        let open = self.in_transaction(header.producer_id, header.producer_epoch);
        if header.attributes.is_transactional() {
            let verified = self.verified.get(&header.producer_id) == Some(&header.producer_epoch);
            if !open && !verified {
                return Verdict::Unverified;
            }
        } else if open {
            // Plain writes from a producer in the middle of a transaction here.
            return Verdict::Reject(ErrorCode::InvalidTxnState);
        }
        Verdict::Append
    }

    /// The sequence rules of idempotence.
    fn check_sequence(&self, header: &BatchHeader) -> Verdict {
        let first_seq = header.base_sequence;
        let last_seq = last_sequence(header);
        if first_seq < 0 || header.producer_epoch < 0 {
            return Verdict::Reject(ErrorCode::InvalidRecord);
        }
        let Some(producer) = self.producers.get(&header.producer_id) else {
            // Unknown here: a new producer starts at 0; anything else lost its state (its data
            // was deleted, or it never wrote here) and must reset.
            return if first_seq == 0 {
                Verdict::Append
            } else {
                Verdict::Reject(ErrorCode::UnknownProducerId)
            };
        };
        if header.producer_epoch < producer.epoch {
            return Verdict::Reject(ErrorCode::InvalidProducerEpoch);
        }
        if header.producer_epoch > producer.epoch {
            return if first_seq == 0 {
                Verdict::Append
            } else {
                Verdict::Reject(ErrorCode::OutOfOrderSequenceNumber)
            };
        }
        if let Some(written) = producer
            .batches
            .iter()
            .find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
        {
            return Verdict::Duplicate(*written);
        }
        match producer.batches.back() {
            Some(last) if first_seq == next_sequence(last.last_seq, 1) => Verdict::Append,
            None if first_seq == 0 => Verdict::Append,
            _ => Verdict::Reject(ErrorCode::OutOfOrderSequenceNumber),
        }
    }

    /// Records a batch written at `base_offset` (its header's offsets are the stored ones).
    pub(crate) fn record(&mut self, header: &BatchHeader, now_ms: i64) {
        let producer = self
            .producers
            .entry(header.producer_id)
            .or_insert_with(|| Producer::new(header.producer_epoch, now_ms));
        if header.producer_epoch != producer.epoch {
            producer.epoch = header.producer_epoch;
            producer.batches.clear();
        }
        if header.attributes.is_transactional() && producer.txn_first.is_none() {
            producer.txn_first = Some(header.base_offset);
            let _ = self.open.insert((header.base_offset, header.producer_id));
        }
        producer.last_timestamp = header.max_timestamp;
        if producer.batches.len() == BATCHES_KEPT {
            let _ = producer.batches.pop_front();
        }
        producer.batches.push_back(WrittenBatch {
            first_seq: header.base_sequence,
            last_seq: last_sequence(header),
            base_offset: header.base_offset,
            last_offset: header.last_offset(),
        });
        producer.last_append_ms = now_ms;
    }

    /// Forgets producers that have not written for `expiration_ms`, and those whose every
    /// remembered batch lies below `log_start` (retention or DeleteRecords removed them); never
    /// one with a transaction open here.
    pub(crate) fn expire(&mut self, now_ms: i64, expiration_ms: i64, log_start: i64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, p| {
            p.txn_first.is_some()
                || (now_ms - p.last_append_ms < expiration_ms
                    && p.last_offset().is_some_and(|last| last >= log_start))
        });
        let producers = &self.producers;
        self.verified.retain(|pid, _| producers.contains_key(pid));
        before - self.producers.len()
    }

    /// Whether the coordinator may write a marker for this producer at `epoch`: not from a
    /// past epoch of the producer (INVALID_PRODUCER_EPOCH) nor from a coordinator older than
    /// the one that wrote its last marker (TRANSACTION_COORDINATOR_FENCED).
    pub(crate) fn check_marker(
        &self,
        producer_id: i64,
        epoch: i16,
        coordinator_epoch: i32,
    ) -> Result<(), ErrorCode> {
        let Some(producer) = self.producers.get(&producer_id) else {
            return Ok(());
        };
        if epoch < producer.epoch {
            return Err(ErrorCode::InvalidProducerEpoch);
        }
        if coordinator_epoch < producer.coordinator_epoch {
            return Err(ErrorCode::TransactionCoordinatorFenced);
        }
        Ok(())
    }

    /// Records a marker written at `offset` for `header`'s producer: its transaction here ends.
    pub(crate) fn record_marker(
        &mut self,
        header: &BatchHeader,
        marker: Marker,
        offset: i64,
        now_ms: i64,
    ) -> CompletedTxn {
        let producer = self
            .producers
            .entry(header.producer_id)
            .or_insert_with(|| Producer::new(header.producer_epoch, now_ms));
        if header.producer_epoch != producer.epoch {
            // A marker at a bumped epoch (the coordinator fenced the producer): its next batch
            // starts at sequence 0.
            producer.epoch = header.producer_epoch;
            producer.batches.clear();
        }
        let first_offset = match producer.txn_first.take() {
            Some(first) => {
                let _ = self.open.remove(&(first, header.producer_id));
                first
            }
            None => offset,
        };
        producer.last_marker = Some(offset);
        producer.coordinator_epoch = marker.coordinator_epoch;
        producer.last_timestamp = header.max_timestamp;
        producer.last_append_ms = now_ms;
        let _ = self.verified.remove(&header.producer_id);
        let completed = CompletedTxn {
            producer_id: header.producer_id,
            first_offset,
            last_offset: offset,
            aborted: !marker.commit,
        };
        self.pending.push(completed);
        completed
    }

    /// Takes the ended transactions whose marker is below `high_watermark`: stable now.
    pub(crate) fn settle(&mut self, high_watermark: i64) -> Vec<CompletedTxn> {
        if self.pending.iter().all(|t| t.last_offset >= high_watermark) {
            return Vec::new();
        }
        let (settled, pending) = self
            .pending
            .drain(..)
            .partition(|t| t.last_offset < high_watermark);
        self.pending = pending;
        settled
    }

    /// Whether `producer_id` has a transaction open here at `epoch`.
    pub(crate) fn in_transaction(&self, producer_id: i64, epoch: i16) -> bool {
        self.producers
            .get(&producer_id)
            .is_some_and(|p| p.txn_first.is_some() && p.epoch == epoch)
    }

    /// The coordinator confirmed that this partition is in the open transaction of
    /// `producer_id` at `epoch` (KIP-890): its next transactional batch may open it here.
    pub(crate) fn verified(&mut self, producer_id: i64, epoch: i16) {
        let _ = self.verified.insert(producer_id, epoch);
    }

    /// The first offset of the oldest transaction open here: where the last stable offset
    /// stops.
    pub(crate) fn first_unstable(&self) -> Option<i64> {
        let open = self.open.first().map(|(first, _)| *first);
        let ended = self.pending.iter().map(|t| t.first_offset).min();
        match (open, ended) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The producers with a transaction open here, with their epochs.
    pub(crate) fn open_transactions(&self) -> impl Iterator<Item = (i64, i16)> + '_ {
        self.open.iter().filter_map(|(_, pid)| {
            let producer = self.producers.get(pid)?;
            Some((*pid, producer.epoch))
        })
    }

    /// Rebuilds the derived index of open transactions (after a snapshot is read).
    fn reindex(&mut self) {
        self.open = self
            .producers
            .iter()
            .filter_map(|(pid, p)| Some((p.txn_first?, *pid)))
            .collect();
    }

    /// Every producer with state here, as DescribeProducers shows them.
    pub(crate) fn describe(&self) -> Vec<ProducerView> {
        self.producers
            .iter()
            .map(|(id, p)| ProducerView {
                producer_id: *id,
                epoch: p.epoch,
                last_sequence: p.batches.back().map_or(-1, |b| b.last_seq),
                last_timestamp: p.last_timestamp,
                coordinator_epoch: p.coordinator_epoch,
                txn_start: p.txn_first.unwrap_or(-1),
            })
            .collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.producers.len()
    }

    /// The base offset of each producer's last batch here: a log cleaner keeps these (empty
    /// if need be), so that the state can be rebuilt from the log.
    pub(crate) fn last_batches(&self) -> std::collections::HashSet<i64> {
        self.producers
            .values()
            .filter_map(|p| p.batches.back().map(|b| b.base_offset))
            .collect()
    }
}

/// A snapshot: the state as of `offset` (everything below it is accounted for).
#[derive(Debug, Serialize, Deserialize)]
struct Snapshot {
    offset: i64,
    state: ProducerStates,
}

fn snapshot_path(dir: &Path, offset: i64) -> PathBuf {
    rill_log::dir::segment_file(dir, offset, SNAPSHOT_SUFFIX)
}

fn snapshots(dir: &Path) -> Vec<(i64, PathBuf)> {
    let mut found: Vec<(i64, PathBuf)> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name();
                    let offset =
                        rill_log::dir::parse_segment_name(name.to_str()?, SNAPSHOT_SUFFIX)?;
                    Some((offset, e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort_by_key(|(offset, _)| *offset);
    found
}

/// Loads the newest readable snapshot at or below `log_end`. Snapshots beyond it describe data
/// a crash took away and are deleted, so that they can never be mistaken for later data.
pub(crate) fn load_snapshot(dir: &Path, log_end: i64) -> Option<(i64, ProducerStates)> {
    let mut newest = None;
    for (offset, path) in snapshots(dir) {
        if offset > log_end {
            tracing::warn!(path = %path.display(), log_end, "removing a producer snapshot beyond the log end");
            let _ = std::fs::remove_file(&path);
            continue;
        }
        match std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Snapshot>(&bytes).ok())
        {
            Some(mut snapshot) if snapshot.offset == offset => {
                snapshot.state.reindex();
                newest = Some((offset, snapshot.state));
            }
            _ => tracing::warn!(path = %path.display(), "ignoring an unreadable producer snapshot"),
        }
    }
    newest
}

/// Writes a snapshot of `state` as of `offset` (through a temporary file, so a snapshot is
/// whole or absent), and removes all but the two newest.
pub(crate) fn write_snapshot(
    dir: &Path,
    offset: i64,
    state: &ProducerStates,
) -> std::io::Result<()> {
    let snapshot = Snapshot {
        offset,
        state: state.clone(),
    };
    let bytes = serde_json::to_vec(&snapshot).map_err(std::io::Error::other)?;
    let path = snapshot_path(dir, offset);
    let tmp = path.with_extension("snapshot.tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    let all = snapshots(dir);
    for (_, old) in all.iter().take(all.len().saturating_sub(2)) {
        let _ = std::fs::remove_file(old);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(pid: i64, epoch: i16, first_seq: i32, records: i32, base_offset: i64) -> BatchHeader {
        BatchHeader {
            base_offset,
            batch_length: 49,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: rill_record::Attributes(0),
            last_offset_delta: records - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: first_seq,
            records_count: records,
        }
    }

    #[test]
    fn in_order_batches_append_and_retries_are_duplicates() {
        let mut state = ProducerStates::default();
        let first = header(7, 0, 0, 5, 100);
        assert_eq!(state.check(&first), Verdict::Append);
        state.record(&first, 0);
        let second = header(7, 0, 5, 3, 105);
        assert_eq!(state.check(&second), Verdict::Append);
        state.record(&second, 0);
        // The same batches again: their original offsets, no write.
        assert_eq!(
            state.check(&header(7, 0, 0, 5, -1)),
            Verdict::Duplicate(WrittenBatch {
                first_seq: 0,
                last_seq: 4,
                base_offset: 100,
                last_offset: 104
            })
        );
        assert!(
            matches!(state.check(&header(7, 0, 5, 3, -1)), Verdict::Duplicate(b) if b.base_offset == 105)
        );
    }

    #[test]
    fn gaps_and_stale_epochs_are_refused() {
        let mut state = ProducerStates::default();
        state.record(&header(7, 3, 0, 5, 0), 0);
        // A gap.
        assert_eq!(
            state.check(&header(7, 3, 6, 1, 0)),
            Verdict::Reject(ErrorCode::OutOfOrderSequenceNumber)
        );
        // An overlap that is not an exact retry.
        assert_eq!(
            state.check(&header(7, 3, 2, 5, 0)),
            Verdict::Reject(ErrorCode::OutOfOrderSequenceNumber)
        );
        // An older epoch.
        assert_eq!(
            state.check(&header(7, 2, 5, 1, 0)),
            Verdict::Reject(ErrorCode::InvalidProducerEpoch)
        );
        // An unknown producer that does not start at 0.
        assert_eq!(
            state.check(&header(8, 0, 9, 1, 0)),
            Verdict::Reject(ErrorCode::UnknownProducerId)
        );
    }

    #[test]
    fn an_epoch_bump_restarts_the_sequence() {
        let mut state = ProducerStates::default();
        state.record(&header(7, 0, 0, 10, 0), 0);
        assert_eq!(
            state.check(&header(7, 1, 10, 1, 0)),
            Verdict::Reject(ErrorCode::OutOfOrderSequenceNumber)
        );
        assert_eq!(state.check(&header(7, 1, 0, 1, 0)), Verdict::Append);
        state.record(&header(7, 1, 0, 1, 10), 0);
        // The old epoch is fenced now, even for a retry of its batch.
        assert_eq!(
            state.check(&header(7, 0, 0, 10, 0)),
            Verdict::Reject(ErrorCode::InvalidProducerEpoch)
        );
    }

    #[test]
    fn sequences_wrap_at_i32_max() {
        let mut state = ProducerStates::default();
        let near_end = i32::MAX - 2;
        state.record(&header(7, 0, 0, 1, 0), 0);
        // Pretend the producer got here legitimately.
        if let Some(last) = state
            .producers
            .get_mut(&7)
            .and_then(|p| p.batches.back_mut())
        {
            last.last_seq = near_end - 1;
        }
        let wrapping = header(7, 0, near_end, 5, 1);
        assert_eq!(last_sequence(&wrapping), 1);
        assert_eq!(state.check(&wrapping), Verdict::Append);
        state.record(&wrapping, 0);
        assert_eq!(state.check(&header(7, 0, 2, 1, 6)), Verdict::Append);
        assert!(matches!(
            state.check(&header(7, 0, near_end, 5, -1)),
            Verdict::Duplicate(_)
        ));
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let mut state = ProducerStates::default();
        for i in 0..7 {
            state.record(&header(7, 0, i, 1, i64::from(i)), 0);
        }
        assert!(matches!(
            state.check(&header(7, 0, 2, 1, -1)),
            Verdict::Duplicate(_)
        ));
        assert_eq!(
            state.check(&header(7, 0, 1, 1, -1)),
            Verdict::Reject(ErrorCode::OutOfOrderSequenceNumber)
        );
    }

    #[test]
    fn expiry_by_time_and_by_log_start() {
        let mut state = ProducerStates::default();
        state.record(&header(1, 0, 0, 1, 10), 1_000);
        state.record(&header(2, 0, 0, 1, 20), 5_000);
        assert_eq!(state.expire(6_000, 4_500, 0), 1);
        assert_eq!(state.len(), 1);
        assert_eq!(state.expire(6_000, 100_000, 21), 1);
        assert_eq!(state.len(), 0);
    }

    fn transactional(pid: i64, first_seq: i32, base_offset: i64) -> BatchHeader {
        BatchHeader {
            attributes: rill_record::Attributes(0).with_transactional(true),
            ..header(pid, 0, first_seq, 1, base_offset)
        }
    }

    #[test]
    fn the_oldest_open_transaction_bounds_the_stable_offset() -> std::io::Result<()> {
        let mut state = ProducerStates::default();
        state.record(&header(1, 0, 0, 1, 0), 0);
        assert_eq!(
            state.first_unstable(),
            None,
            "plain idempotent data is stable"
        );
        state.record(&transactional(2, 0, 1), 0);
        state.record(&transactional(3, 0, 2), 0);
        state.record(&transactional(2, 1, 3), 0);
        assert_eq!(state.first_unstable(), Some(1));
        assert_eq!(
            state.open_transactions().collect::<Vec<_>>(),
            vec![(2, 0), (3, 0)]
        );
        // The first ends; its marker is not yet committed, so it still holds the offset.
        let abort = Marker {
            commit: false,
            coordinator_epoch: 0,
        };
        let ended = state.record_marker(&transactional(2, -1, 4), abort, 4, 0);
        assert_eq!((ended.first_offset, ended.aborted), (1, true));
        assert_eq!(state.first_unstable(), Some(1));
        assert_eq!(state.open_transactions().collect::<Vec<_>>(), vec![(3, 0)]);
        assert_eq!(state.settle(5).len(), 1);
        assert_eq!(state.first_unstable(), Some(2));
        // A snapshot keeps the open one; the index is rebuilt when it is read.
        let dir = tempfile::tempdir()?;
        write_snapshot(dir.path(), 5, &state)?;
        let (_, loaded) = load_snapshot(dir.path(), 5).ok_or(std::io::ErrorKind::NotFound)?;
        assert_eq!(loaded.first_unstable(), Some(2));
        assert!(loaded.in_transaction(3, 0));
        Ok(())
    }

    #[test]
    fn snapshots_round_trip_and_stale_ones_are_dropped() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let mut state = ProducerStates::default();
        state.record(&header(7, 1, 0, 4, 0), 0);
        write_snapshot(dir.path(), 4, &state)?;
        state.record(&header(7, 1, 4, 4, 4), 0);
        write_snapshot(dir.path(), 8, &state)?;
        write_snapshot(dir.path(), 9, &state)?;
        assert_eq!(
            snapshots(dir.path()).len(),
            2,
            "older snapshots are removed"
        );
        assert_eq!(
            load_snapshot(dir.path(), 9).map(|(o, s)| (o, s.len())),
            Some((9, 1))
        );
        // After a crash took the log back to offset 8, the snapshot at 9 is stale and removed.
        assert_eq!(load_snapshot(dir.path(), 8).map(|(o, _)| o), Some(8));
        assert_eq!(snapshots(dir.path()).len(), 1);
        std::fs::write(snapshot_path(dir.path(), 8), b"garbage")?;
        assert!(load_snapshot(dir.path(), 8).is_none());
        Ok(())
    }
}
