//! One partition's owner: its log, its idempotent producers' state and the offsets it
//! publishes. A state machine run by a storage thread; it never blocks on anything but its own
//! disk I/O.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rill_log::{AbortedTxn, AppendInfo, Log, LogError, PendingSync, TimestampOffset};
use rill_protocol::ErrorCode;
use rill_record::{Batch, BatchHeader, Batches, Marker, parse_marker, set_log_append_time};
use tokio::sync::watch;

use super::replica::store::ReplicaStore;
use super::replica::{Effect, Replica, ReplicaSpec, Writing};
use super::{Command, Offsets, OwnerMetrics, Reply, TimeQuery, now_ms};
use crate::error::BrokerError;
use crate::idempotence::{
    PRODUCER_ID_EXPIRATION_MS, ProducerStates, Verdict, load_snapshot, write_snapshot,
};

/// The producers with a transaction open in a partition, and their epochs: published by its
/// owner, read by the produce path to know when a transactional batch needs the coordinator's
/// confirmation first (KIP-890).
pub(crate) type OpenTxns = Arc<RwLock<HashMap<i64, i16>>>;

/// An `acks=all` append waiting for its partition's fsync at the end of the round.
pub(super) type Waiting = (Reply<AppendInfo>, AppendInfo);

/// The log an owner holds: alone, or as the Raft log of a replicated partition.
#[expect(
    clippy::large_enum_variant,
    reason = "the single-replica log, the common case, stays inline"
)]
enum Held {
    Plain(Log),
    Replica(Box<Replica>),
}

pub(super) struct Owner {
    held: Held,
    offsets: watch::Sender<Offsets>,
    /// What each idempotent producer last wrote here, and the transactions open here.
    producers: ProducerStates,
    /// The open transactions, as the produce path sees them.
    open_txns: OpenTxns,
    /// Segment count after the last append, to notice rolls.
    segments: usize,
    /// The log's size in bytes, kept up to date here rather than summed over every segment at
    /// each publish.
    size: u64,
    metrics: OwnerMetrics,
    /// When retention and producer id expiry run next (ms since the epoch).
    next_retention_ms: i64,
    /// The offset of the newest producer state snapshot on disk.
    snapshot_at: Option<i64>,
    /// The deadline its storage thread has scheduled for it, if any.
    pub(super) scheduled: Option<i64>,
    /// A close has been asked for: later commands are refused.
    pub(super) closing: bool,
    /// A replica whose storage failed: it takes part in nothing more.
    failed: bool,
}

impl std::fmt::Debug for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Owner")
            .field("dir", &self.log().dir())
            .field("offsets", &*self.offsets.borrow())
            .finish_non_exhaustive()
    }
}

impl Owner {
    /// Takes over an open log: rebuilds the producer state (from the newest snapshot on) and
    /// returns the owner with the receiver of its published offsets.
    pub(super) fn new(
        log: Log,
        metrics: OwnerMetrics,
        retention_check: Duration,
    ) -> Result<(Self, watch::Receiver<Offsets>), LogError> {
        Self::holding(Held::Plain(log), metrics, retention_check)
    }

    /// Takes over a replicated partition's log as the Raft log of its replica.
    pub(super) fn replica(
        log: Log,
        spec: ReplicaSpec,
        metrics: OwnerMetrics,
        retention_check: Duration,
    ) -> Result<(Self, watch::Receiver<Offsets>), BrokerError> {
        let voters: Vec<u64> = spec
            .first
            .iter()
            .map(|r| crate::quorum::voters::raft_id(*r))
            .collect();
        let store = ReplicaStore::open(log, &voters)?;
        let replica = Replica::new(store, spec)?;
        Ok(Self::holding(
            Held::Replica(Box::new(replica)),
            metrics,
            retention_check,
        )?)
    }

    fn holding(
        held: Held,
        metrics: OwnerMetrics,
        retention_check: Duration,
    ) -> Result<(Self, watch::Receiver<Offsets>), LogError> {
        let log = match &held {
            Held::Plain(log) => log,
            Held::Replica(replica) => replica.store().log(),
        };
        let (producers, snapshot_at) = rebuild_producer_states(log)?;
        let size = log.size_bytes();
        let segments = log.segment_count();
        let (offsets, rx) = watch::channel(offsets_of(&held, size));
        let mut owner = Self {
            segments,
            held,
            offsets,
            producers,
            open_txns: OpenTxns::default(),
            size,
            metrics,
            next_retention_ms: now_ms().saturating_add(millis(retention_check)),
            snapshot_at,
            scheduled: None,
            closing: false,
            failed: false,
        };
        owner.settle_transactions();
        owner.transactions_changed();
        owner.publish();
        Ok((owner, rx))
    }

    /// The open transactions this owner publishes.
    pub(super) fn open_txns(&self) -> OpenTxns {
        self.open_txns.clone()
    }

    fn log(&self) -> &Log {
        match &self.held {
            Held::Plain(log) => log,
            Held::Replica(replica) => replica.store().log(),
        }
    }

    fn log_mut(&mut self) -> &mut Log {
        match &mut self.held {
            Held::Plain(log) => log,
            Held::Replica(replica) => replica.store_mut().log_mut(),
        }
    }

    /// The replica, for a replicated partition still working.
    pub(super) fn replica_mut(&mut self) -> Option<&mut Replica> {
        let corrupt = matches!(&self.held, Held::Replica(r) if r.store().corrupt());
        if corrupt && !self.failed {
            self.corrupted(&"a batch read for a follower fails its checks");
        }
        match &mut self.held {
            Held::Replica(replica) if !self.failed => Some(replica),
            _ => None,
        }
    }

    /// When this owner next has time-based work: the log's own deadline or retention.
    pub(super) fn next_deadline(&self) -> i64 {
        self.log()
            .next_deadline_ms()
            .map_or(self.next_retention_ms, |at| at.min(self.next_retention_ms))
    }

    /// Handles one command; an `acks=all` append comes back to wait for the round's fsync.
    pub(super) fn handle(&mut self, command: Command) -> Option<Waiting> {
        match command {
            Command::Append {
                mut batch,
                durable,
                acks_all,
                log_append_time,
                reply,
            } => {
                if matches!(self.held, Held::Replica(_)) {
                    self.propose(&mut batch, acks_all, log_append_time, reply);
                    return None;
                }
                match self.append(&mut batch, log_append_time) {
                    Ok(info) => {
                        // Publish the new end before anything else is answered: a read later
                        // in this round returns these records, and the client's next fetch
                        // must find its offset inside the published range. (Like Kafka with one
                        // replica, the high watermark is the log end; acks=all waits for the
                        // fsync, readers don't.)
                        self.publish();
                        if durable {
                            return Some((reply, info));
                        }
                        let _ = reply.send(Ok(info));
                    }
                    Err(code) => {
                        let _ = reply.send(Err(code));
                    }
                }
            }
            Command::Read {
                offset,
                max_bytes,
                reply,
            } => {
                let read = self.read(offset, max_bytes);
                let _ = reply.send(read);
            }
            Command::ListOffset { query, reply } => {
                let _ = reply.send(self.list_offset(query));
            }
            Command::DeleteRecords { before, reply } => {
                if let Held::Replica(replica) = &mut self.held {
                    // Replicated: every replica moves its log start when the entry commits.
                    if self.failed {
                        let _ = reply.send(Err(ErrorCode::NotLeaderOrFollower));
                    } else if let Err((reply, code)) = replica.propose_delete(before, reply) {
                        let _ = reply.send(Err(code));
                    }
                    return None;
                }
                let result = self
                    .log_mut()
                    .delete_records_before(before)
                    .map_err(|e| self.failed(&e));
                self.after_deletion();
                let _ = reply.send(result);
            }
            Command::EpochEnd { epoch, reply } => {
                let found = match &self.held {
                    Held::Replica(replica) if replica.leading().is_some() => {
                        let term = u64::try_from(epoch).unwrap_or(0);
                        Ok(replica
                            .store()
                            .end_for_term(term)
                            .map(|(term, end)| (i32::try_from(term).unwrap_or(i32::MAX), end)))
                    }
                    _ => Err(ErrorCode::NotLeaderOrFollower),
                };
                let _ = reply.send(found);
            }
            Command::TransferLeader { to } => {
                if let Some(replica) = self.replica_mut() {
                    replica.transfer_leader(to);
                }
            }
            Command::SetReplicas(replicas) => {
                if let Some(replica) = self.replica_mut() {
                    replica.set_replicas(replicas);
                }
            }
            Command::Reassign { target, reply } => {
                let done = match self.replica_mut() {
                    Some(replica) if replica.leading().is_some() => Ok(replica.reassign(&target)),
                    _ => Err(ErrorCode::NotLeaderOrFollower),
                };
                let _ = reply.send(done);
            }
            Command::WriteMarker {
                producer_id,
                producer_epoch,
                marker,
                reply,
            } => {
                let batch =
                    rill_record::marker_batch(producer_id, producer_epoch, marker, now_ms());
                let Ok(batch) = batch else {
                    let _ = reply.send(Err(ErrorCode::UnknownServerError));
                    return None;
                };
                return self.handle(Command::Append {
                    batch: bytes::BytesMut::from(&batch[..]),
                    durable: true,
                    acks_all: true,
                    log_append_time: false,
                    reply,
                });
            }
            Command::Verified {
                producer_id,
                producer_epoch,
            } => self.producers.verified(producer_id, producer_epoch),
            Command::ReadCommitted {
                offset,
                max_bytes,
                reply,
            } => {
                let read = self.read(offset, max_bytes).map(|bytes| {
                    let stable = self.offsets.borrow().last_stable;
                    let bytes = below(bytes, stable);
                    let end = Batches::new(&bytes)
                        .map_while(Result::ok)
                        .last()
                        .map_or(offset, |b| b.header().next_offset());
                    let aborted = if end > offset {
                        self.log().aborted_between(offset, end)
                    } else {
                        Vec::new()
                    };
                    (bytes, aborted)
                });
                let _ = reply.send(read);
            }
            Command::DescribeProducers { reply } => {
                let leading = match &self.held {
                    Held::Plain(_) => true,
                    Held::Replica(replica) => replica.leading().is_some() && !self.failed,
                };
                let answer = if leading {
                    Ok(self.producers.describe())
                } else {
                    Err(ErrorCode::NotLeaderOrFollower)
                };
                let _ = reply.send(answer);
            }
            Command::Configure(config) => {
                if let Err(err) = self.log_mut().set_config(config) {
                    tracing::error!(%err, dir = %self.log().dir().display(), "refused log config");
                }
            }
            Command::CleanPlan { reply } => {
                let _ = reply.send(self.clean_plan());
            }
            Command::SwapCleaned { cleaned, reply } => {
                let _ = reply.send(self.swap_cleaned(&cleaned));
            }
            Command::CleanedTo { offset, reply } => {
                let done = self.log_mut().set_cleaned_to(offset);
                let _ = reply.send(done.map_err(|err| self.failed(&err)));
            }
        }
        None
    }

    /// What the log cleaner may clean: the sealed segments below the last stable offset (so
    /// below the high watermark too), never a failed log.
    fn clean_plan(&self) -> Result<super::CleanPlan, ErrorCode> {
        if self.failed || self.closing {
            return Err(ErrorCode::KafkaStorageError);
        }
        let high_watermark = match &self.held {
            Held::Plain(log) => log.log_end_offset(),
            Held::Replica(replica) => replica.high_watermark(),
        };
        let bound = self.last_stable(high_watermark);
        let log = self.log();
        let segments: Vec<_> = log
            .sealed_segments()
            .into_iter()
            .take_while(|s| s.next_offset <= bound)
            .collect();
        let end = segments
            .last()
            .map_or(log.log_start_offset(), |s| s.next_offset);
        Ok(super::CleanPlan {
            dir: log.dir().to_path_buf(),
            aborted: log.aborted_between(log.log_start_offset(), end),
            segments,
            cleaned_to: log.cleaned_to(),
            retain: self.producers.last_batches(),
            keep_every_batch: matches!(self.held, Held::Replica(_)),
            span_breaks: match &self.held {
                Held::Plain(_) => std::collections::HashSet::new(),
                Held::Replica(replica) => replica.store().record_less_offsets(),
            },
            index_interval: log.config().index_interval_bytes,
            segment_bytes: log.config().segment_bytes,
        })
    }

    /// Swaps in a segment the log cleaner wrote; its size is published.
    fn swap_cleaned(&mut self, cleaned: &rill_log::Cleaned) -> Result<bool, ErrorCode> {
        if self.failed || self.closing {
            let _ = rill_log::cleaner::discard(self.log().dir(), cleaned);
            return Err(ErrorCode::KafkaStorageError);
        }
        let swapped = self.log_mut().swap_cleaned(cleaned);
        // A replicated log's Raft entries in the new segment are counted anew (spans); if
        // they no longer add up, this replica's data is wrong: it is repaired from the leader.
        if let (Ok(true), Held::Replica(replica)) = (&swapped, &mut self.held) {
            let recounted = replica
                .store_mut()
                .cleaned(cleaned.base_offset, cleaned.next_offset);
            if let Err(err) = recounted {
                replica.store().mark_corrupt();
                self.corrupted(&err);
                return Err(ErrorCode::KafkaStorageError);
            }
        }
        match swapped {
            Ok(swapped) => {
                self.size = self.log().size_bytes();
                self.segments = self.log().segment_count();
                self.publish();
                Ok(swapped)
            }
            Err(err) => Err(self.failed(&err)),
        }
    }

    /// After segments or records were deleted from the start: the size, the producers whose
    /// last batches went, the replica's first entry, and the new start published.
    fn after_deletion(&mut self) {
        self.size = self.log().size_bytes();
        let start = self.log().log_start_offset();
        let _ = self
            .producers
            .expire(now_ms(), PRODUCER_ID_EXPIRATION_MS, start);
        if let Held::Replica(replica) = &mut self.held
            && let Err(err) = replica.store_mut().forget_below_log_start()
        {
            tracing::error!(%err, "writing the replica state after a deletion");
        }
        self.publish();
    }

    /// Reads from `offset`: on a replica, only what is committed (below the high watermark),
    /// and only while it leads.
    fn read(&mut self, offset: i64, max_bytes: usize) -> Result<bytes::Bytes, ErrorCode> {
        let Held::Replica(replica) = &self.held else {
            return self
                .log()
                .read(offset, max_bytes)
                .map_err(|e| self.failed(&e));
        };
        if replica.leading().is_none() || self.failed {
            return Err(ErrorCode::NotLeaderOrFollower);
        }
        let high_watermark = replica.high_watermark();
        if offset >= high_watermark && offset <= self.log().log_end_offset() {
            return Ok(bytes::Bytes::new());
        }
        match self.log().read(offset, max_bytes) {
            Ok(bytes) => Ok(below(bytes, high_watermark)),
            Err(err @ LogError::Corrupt { .. }) => {
                replica.store().mark_corrupt();
                self.corrupted(&err);
                Err(ErrorCode::NotLeaderOrFollower)
            }
            Err(err) => Err(self.failed(&err)),
        }
    }

    /// A replica's data failed its checks: it stops serving and taking part in its group
    /// (another replica leads), and publishes that it is corrupt, so the broker quarantines
    /// its directory and reopens it empty, to be repaired from the leader.
    fn corrupted(&mut self, err: &dyn std::fmt::Display) {
        tracing::error!(
            %err,
            dir = %self.log().dir().display(),
            "a replica's data fails its checks: it serves nothing more and is repaired from the leader"
        );
        self.failed = true;
        if let Held::Replica(replica) = &mut self.held {
            replica.fail_waiting(ErrorCode::NotLeaderOrFollower);
        }
        self.publish();
    }

    fn list_offset(&self, query: TimeQuery) -> Result<Option<TimestampOffset>, ErrorCode> {
        let found = match query {
            TimeQuery::Max => self.log().max_timestamp(),
            TimeQuery::AtOrAfter(t) => self.log().offset_for_timestamp(t),
        };
        found.map_err(|e| self.failed(&e))
    }

    /// Appends a batch, first checking an idempotent producer's sequence: a retry of a batch
    /// already written gets its original offsets and writes nothing.
    fn append(&mut self, batch: &mut [u8], log_append_time: bool) -> Result<AppendInfo, ErrorCode> {
        let now = now_ms();
        let header = self.check_batch(batch, log_append_time, now)?;
        let header = match header {
            Ok(header) => header,
            Err(duplicate) => return Ok(duplicate),
        };
        let flushed = self.log().flushed_offset();
        let started = Instant::now();
        let appended = self.log_mut().append(batch, now);
        if self.log().flushed_offset() != flushed {
            // The flush policy fsynced within the append; the write itself is small beside it.
            self.metrics.fsync.observe(started.elapsed().as_secs_f64());
        }
        let info = match appended {
            Ok(info) => info,
            Err(err) => {
                // Whatever the failure, the size is what the segments say.
                self.size = self.log().size_bytes();
                return Err(self.failed(&err));
            }
        };
        // Stored verbatim, so the log grew by exactly the batch.
        self.size += batch.len() as u64;
        self.appended(&header, info.base_offset, batch, now);
        self.snapshot_if_rolled();
        Ok(info)
    }

    /// Checks a batch before it is written: an idempotent producer's sequence (a duplicate
    /// gets its original offsets: `Ok(Err(info))`), and stamps the append time if the topic
    /// asks for it.
    fn check_batch(
        &self,
        batch: &mut [u8],
        log_append_time: bool,
        now: i64,
    ) -> Result<Result<BatchHeader, AppendInfo>, ErrorCode> {
        let header = BatchHeader::parse(batch).map_err(|_| ErrorCode::CorruptMessage)?;
        if header.attributes.is_control() {
            // Only this owner builds control batches: a marker from the coordinator.
            let marker = marker_in(batch).ok_or(ErrorCode::CorruptMessage)?;
            self.producers.check_marker(
                header.producer_id,
                header.producer_epoch,
                marker.coordinator_epoch,
            )?;
            return Ok(Ok(header));
        }
        if header.has_producer_id() {
            match self.producers.check(&header) {
                Verdict::Append => {}
                // The partition is not in the producer's transaction as far as this replica
                // knows: a batch that comes after the transaction it belonged to ended.
                Verdict::Unverified => return Err(ErrorCode::InvalidTxnState),
                Verdict::Duplicate(written) => {
                    return Ok(Err(AppendInfo {
                        base_offset: written.base_offset,
                        last_offset: written.last_offset,
                        log_append_time_ms: now,
                    }));
                }
                Verdict::Reject(code) => return Err(code),
            }
        }
        if log_append_time {
            // Here, where `now` is the time the log records for this batch, so that the batch,
            // the time index and the answer agree. Rewriting 10 header bytes and one CRC-32C
            // pass over the batch is cheap beside the write itself.
            set_log_append_time(batch, now).map_err(|_| ErrorCode::CorruptMessage)?;
        }
        Ok(Ok(header))
    }

    /// Counts a batch taken at `base_offset` and records its producer's state.
    fn appended(&mut self, header: &BatchHeader, base_offset: i64, batch: &[u8], now: i64) {
        if let Some(topic) = &self.metrics.topic
            && !header.attributes.is_control()
        {
            topic.appended(batch.len(), header.records_count);
        }
        if header.has_producer_id() {
            let stored = BatchHeader {
                base_offset,
                ..*header
            };
            // Only a control batch's records are read (a marker's one record): data batches
            // are never decoded on the append path.
            let marker = header
                .attributes
                .is_control()
                .then(|| marker_in(batch))
                .flatten();
            self.record(&stored, marker, now);
        }
    }

    /// Records a batch of an idempotent or transactional producer (with its marker, for a
    /// control batch) in the producer state, and what it changes about open transactions.
    fn record(&mut self, header: &BatchHeader, marker: Option<Marker>, now: i64) {
        if header.attributes.is_control() {
            let Some(marker) = marker else {
                return;
            };
            let _ = self
                .producers
                .record_marker(header, marker, header.base_offset, now);
            self.settle_transactions();
            if let Ok(mut shared) = self.open_txns.write() {
                let _ = shared.remove(&header.producer_id);
            }
        } else {
            let opens = header.attributes.is_transactional()
                && !self
                    .producers
                    .in_transaction(header.producer_id, header.producer_epoch);
            self.producers.record(header, now);
            if opens && let Ok(mut shared) = self.open_txns.write() {
                let _ = shared.insert(header.producer_id, header.producer_epoch);
            }
        }
    }

    /// Moves the ended transactions whose markers are now below the high watermark into the
    /// log's aborted transaction index (aborts) and out of the unstable ones.
    fn settle_transactions(&mut self) {
        let high_watermark = match &self.held {
            Held::Plain(log) => log.log_end_offset(),
            Held::Replica(replica) => replica.high_watermark(),
        };
        let settled = self.producers.settle(high_watermark);
        if settled.is_empty() {
            return;
        }
        let stable = self.last_stable(high_watermark);
        for txn in settled.iter().filter(|t| t.aborted) {
            let aborted = AbortedTxn {
                producer_id: txn.producer_id,
                first_offset: txn.first_offset,
                last_offset: txn.last_offset,
                last_stable_offset: stable,
            };
            if let Err(err) = self.log_mut().add_aborted(aborted) {
                let _ = self.failed(&err);
            }
        }
    }

    /// The last stable offset: the high watermark, or the first offset of the oldest
    /// transaction still open (or ended by a marker not yet committed), if lower.
    fn last_stable(&self, high_watermark: i64) -> i64 {
        self.producers
            .first_unstable()
            .map_or(high_watermark, |first| first.min(high_watermark))
    }

    /// Publishes the open transactions to the produce path, all anew (after the producer
    /// states are loaded or rebuilt; appends change the shared map in place).
    fn transactions_changed(&self) {
        let open: HashMap<i64, i16> = self.producers.open_transactions().collect();
        if let Ok(mut shared) = self.open_txns.write() {
            *shared = open;
        }
    }

    /// A replicated partition's append: checked as a single replica's is, given its offsets,
    /// and proposed to the group. The answer comes from the replica once written (`acks=1`)
    /// or committed (`acks=all`).
    fn propose(
        &mut self,
        batch: &mut [u8],
        acks_all: bool,
        log_append_time: bool,
        reply: Reply<AppendInfo>,
    ) {
        let now = now_ms();
        let leading = matches!(&self.held, Held::Replica(r) if r.leading().is_some());
        if !leading || self.failed {
            let _ = reply.send(Err(ErrorCode::NotLeaderOrFollower));
            return;
        }
        let header = match self.check_batch(batch, log_append_time, now) {
            Ok(Ok(header)) => header,
            Ok(Err(duplicate)) => {
                if let Held::Replica(replica) = &mut self.held {
                    replica.answer_duplicate(duplicate, acks_all, reply);
                }
                return;
            }
            Err(code) => {
                let _ = reply.send(Err(code));
                return;
            }
        };
        let Held::Replica(replica) = &mut self.held else {
            return;
        };
        let base_offset = replica.next_offset();
        let info = AppendInfo {
            base_offset,
            last_offset: base_offset + i64::from(header.last_offset_delta),
            log_append_time_ms: now,
        };
        match replica.propose(batch, base_offset, acks_all, reply, info) {
            Ok(()) => self.appended(&header, base_offset, batch, now),
            Err((reply, code)) => {
                let _ = reply.send(Err(code));
            }
        }
    }

    /// The first half of a replica's Ready (see [`Replica::begin_ready`]): what it wrote is
    /// taken into the producer state and the size; `None` if there was nothing to write.
    pub(super) fn begin_ready(&mut self) -> Option<Writing> {
        let replica = self.replica_mut()?;
        match replica.begin_ready() {
            Ok(None) => None,
            Ok(Some((writing, appended))) => {
                let now = now_ms();
                if appended.truncated {
                    self.rebuild_producers();
                }
                // The replica wrote its own proposals and, on a follower, the leader's.
                self.size = self.log().size_bytes();
                for (_, header) in &appended.batches {
                    if header.has_producer_id() {
                        let marker = if header.attributes.is_control() {
                            self.read_marker(header.base_offset)
                        } else {
                            None
                        };
                        self.record(header, marker, now);
                    }
                }
                self.snapshot_if_rolled();
                Some(writing)
            }
            Err(err) => {
                self.fail(&err);
                None
            }
        }
    }

    /// The second half, after the round's fsync of this log.
    pub(super) fn end_ready(&mut self, writing: Writing, synced: Result<(), ErrorCode>) {
        if let Err(code) = synced {
            tracing::error!(dir = %self.log().dir().display(), code = code.name(), "a replica's log could not be made durable");
            self.failed = true;
            if let Held::Replica(replica) = &mut self.held {
                replica.fail_waiting(code);
            }
            self.publish();
            return;
        }
        let Some(replica) = self.replica_mut() else {
            return;
        };
        match replica.end_ready(writing) {
            Ok(ended) => {
                for effect in ended.effects {
                    match effect {
                        Effect::DeleteBefore(offset) => {
                            if let Err(err) = self.log_mut().delete_records_before(offset) {
                                let _ = self.failed(&err);
                            }
                            self.after_deletion();
                        }
                    }
                }
                if ended.role_changed {
                    // Whatever was proposed here and never written is gone; what was
                    // written stays in the log, which the state is rebuilt from.
                    self.rebuild_producers();
                }
            }
            Err(err) => self.fail(&err),
        }
        self.settle_transactions();
        self.publish();
    }

    fn fail(&mut self, err: &BrokerError) {
        tracing::error!(%err, dir = %self.log().dir().display(), "partition replica failed");
        self.failed = true;
        if let Held::Replica(replica) = &mut self.held {
            replica.fail_waiting(ErrorCode::KafkaStorageError);
        }
        self.publish();
    }

    fn rebuild_producers(&mut self) {
        match rebuild_producer_states(self.log()) {
            Ok((producers, _)) => {
                self.producers = producers;
                self.settle_transactions();
                self.transactions_changed();
            }
            Err(err) => {
                let _ = self.failed(&err);
            }
        }
    }

    /// The marker of the control batch at `offset`, read back from the log (a follower's
    /// entries come as headers).
    fn read_marker(&self, offset: i64) -> Option<Marker> {
        let bytes = self.log().read(offset, 1024).ok()?;
        marker_in(&bytes)
    }

    /// After a roll, snapshots the producer state there, so a restart replays at most a segment.
    fn snapshot_if_rolled(&mut self) {
        let segments = self.log().segment_count();
        if segments != self.segments {
            self.segments = segments;
            self.snapshot();
        }
    }

    fn snapshot(&mut self) {
        // The aborted transactions the snapshot counts as indexed must be durable first.
        if let Err(err) = self.log_mut().sync_txn_index() {
            let _ = self.failed(&err);
            return;
        }
        let end = self.log().log_end_offset();
        match write_snapshot(self.log().dir(), end, &self.producers) {
            Ok(()) => self.snapshot_at = Some(end),
            Err(err) => {
                tracing::warn!(%err, dir = %self.log().dir().display(), "writing the producer state snapshot");
            }
        }
    }

    /// Whether closing should snapshot the producer state, so that the next open need not
    /// replay the log: not if a snapshot at the log end is already there, nor if the log is
    /// empty and no producer has state (there is nothing to replay).
    fn snapshot_due(&self) -> bool {
        let end = self.log().log_end_offset();
        let empty = end == self.log().log_start_offset() && self.producers.len() == 0;
        self.snapshot_at != Some(end) && !empty
    }

    /// Maps a storage error to the code the client gets, logging what a person must look at.
    fn failed(&self, err: &LogError) -> ErrorCode {
        match err {
            LogError::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
            LogError::InvalidBatch { .. } => ErrorCode::CorruptMessage,
            LogError::BatchTooLarge { .. } => ErrorCode::RecordListTooLarge,
            _ => {
                tracing::error!(%err, dir = %self.log().dir().display(), "partition storage error");
                ErrorCode::KafkaStorageError
            }
        }
    }

    /// The fsync a group commit needs, if anything appended is not yet durable; it may run on
    /// another thread, beside other partitions' fsyncs, and comes back to [`Owner::end_sync`].
    pub(super) fn begin_sync(&mut self) -> Result<Option<PendingSync>, ErrorCode> {
        self.log_mut().begin_sync().map_err(|err| self.failed(&err))
    }

    /// Completes a group commit with the fsync's outcome and how long it took.
    pub(super) fn end_sync(
        &mut self,
        pending: PendingSync,
        result: Result<(), LogError>,
        took: Duration,
    ) -> Result<(), ErrorCode> {
        self.metrics.fsync.observe(took.as_secs_f64());
        self.log_mut()
            .finish_sync(pending, result)
            .map_err(|err| self.failed(&err))
    }

    fn publish(&self) {
        debug_assert_eq!(
            self.size,
            self.log().size_bytes(),
            "tracked log size drifted"
        );
        let mut now = offsets_of(&self.held, self.size);
        now.last_stable = self.last_stable(now.high_watermark);
        if self.failed {
            now.leading = None;
            now.in_sync = 0;
        }
        let _ = self.offsets.send_if_modified(|offsets| {
            let changed = *offsets != now;
            *offsets = now;
            changed
        });
    }

    /// The time-based work due at `now`: the log's interval flush and roll by age, then, when
    /// its time has come, retention and producer id expiry.
    pub(super) fn housekeeping(&mut self, now: i64, retention_check: Duration) {
        let flushed = self.log().flushed_offset();
        let started = Instant::now();
        let result = self.log_mut().tick(now);
        if self.log().flushed_offset() != flushed {
            self.metrics.fsync.observe(started.elapsed().as_secs_f64());
        }
        if let Err(err) = result {
            let _ = self.failed(&err);
        }
        self.snapshot_if_rolled();
        if now >= self.next_retention_ms {
            self.next_retention_ms = now.saturating_add(millis(retention_check));
            let start = self.log().log_start_offset();
            let _ = self.producers.expire(now, PRODUCER_ID_EXPIRATION_MS, start);
            match self.log_mut().apply_retention(now) {
                Ok(deleted) if deleted.is_empty() => {}
                Ok(_) => self.after_deletion(),
                Err(err) => {
                    // Some segments may be gone before the failure.
                    self.after_deletion();
                    let _ = self.failed(&err);
                }
            }
        }
    }

    pub(super) fn close(mut self, delete: bool) {
        let dir = self.log().dir().to_path_buf();
        if !delete && self.snapshot_due() {
            self.snapshot();
        }
        let log = match self.held {
            Held::Plain(log) => log,
            Held::Replica(mut replica) => {
                replica.fail_waiting(ErrorCode::NotLeaderOrFollower);
                let mut store = replica.into_store();
                if !delete && let Err(err) = store.write() {
                    tracing::error!(%err, dir = %dir.display(), "writing the replica state");
                }
                store.into_log()
            }
        };
        if let Err(err) = log.close() {
            tracing::error!(%err, dir = %dir.display(), "closing partition log");
        }
        if delete {
            // Renamed first, so that nothing else (a log cleaner's thread writing a cleaned
            // segment) can add a file while the directory is removed; a crash in between
            // leaves a `.deleting` directory, which the next start removes.
            let mut doomed = dir.clone().into_os_string();
            doomed.push(DELETING_SUFFIX);
            let doomed = std::path::PathBuf::from(doomed);
            let removed =
                std::fs::rename(&dir, &doomed).and_then(|()| std::fs::remove_dir_all(&doomed));
            if let Err(err) = removed {
                tracing::error!(%err, dir = %dir.display(), "deleting partition log");
            }
        }
    }
}

/// The suffix of a partition directory being deleted.
pub(crate) const DELETING_SUFFIX: &str = ".deleting";

/// The whole batches of `bytes` that end at or below `high_watermark`.
fn below(bytes: bytes::Bytes, high_watermark: i64) -> bytes::Bytes {
    let mut keep = 0usize;
    for batch in Batches::new(&bytes) {
        let Ok(batch) = batch else { break };
        if batch.header().next_offset() > high_watermark {
            break;
        }
        keep += batch.as_bytes().len();
    }
    bytes.slice(..keep)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The idempotent producers' state: the newest snapshot, then every batch after it. Returns the
/// snapshot's offset too, if there was one.
fn rebuild_producer_states(log: &Log) -> Result<(ProducerStates, Option<i64>), LogError> {
    let end = log.log_end_offset();
    let loaded = load_snapshot(log.dir(), end);
    let snapshot_at = loaded.as_ref().map(|(offset, _)| *offset);
    let (mut offset, mut states) =
        loaded.unwrap_or((log.log_start_offset(), ProducerStates::default()));
    offset = offset.max(log.log_start_offset());
    let now = now_ms();
    while offset < end {
        let bytes = log.read(offset, 1 << 20)?;
        let before = offset;
        for batch in Batches::new(&bytes) {
            let Ok(batch) = batch else { break };
            let header = batch.header();
            if header.attributes.is_control() {
                if let Ok(Some(marker)) = parse_marker(&batch) {
                    let _ = states.record_marker(header, marker, header.base_offset, now);
                }
            } else if header.has_producer_id() {
                states.record(header, now);
            }
            offset = header.next_offset();
        }
        if offset == before {
            break;
        }
    }
    let _ = states.expire(now, PRODUCER_ID_EXPIRATION_MS, log.log_start_offset());
    if states.len() > 0 {
        tracing::debug!(dir = %log.dir().display(), producers = states.len(), "producer state rebuilt");
    }
    Ok((states, snapshot_at))
}

/// The marker of the control batch at the start of `bytes`.
fn marker_in(bytes: &[u8]) -> Option<Marker> {
    parse_marker(&Batch::parse(bytes).ok()?).ok()?
}

fn offsets_of(held: &Held, size_bytes: u64) -> Offsets {
    match held {
        Held::Plain(log) => Offsets {
            log_start: log.log_start_offset(),
            high_watermark: log.log_end_offset(),
            last_stable: log.log_end_offset(),
            log_end: log.log_end_offset(),
            size_bytes,
            leading: None,
            in_sync: 0,
            corrupt: false,
        },
        Held::Replica(replica) => {
            let log = replica.store().log();
            Offsets {
                log_start: log.log_start_offset(),
                high_watermark: replica.high_watermark(),
                last_stable: replica.high_watermark(),
                log_end: log.log_end_offset(),
                size_bytes,
                leading: replica
                    .leading()
                    .map(|term| i32::try_from(term).unwrap_or(i32::MAX)),
                in_sync: replica.in_sync(),
                corrupt: replica.store().corrupt(),
            }
        }
    }
}
