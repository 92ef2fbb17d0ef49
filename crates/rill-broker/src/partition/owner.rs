//! One partition's owner: its log, its idempotent producers' state and the offsets it
//! publishes. A state machine run by a storage thread; it never blocks on anything but its own
//! disk I/O.

use std::time::{Duration, Instant};

use rill_log::{AppendInfo, Log, LogError, PendingSync, TimestampOffset};
use rill_protocol::ErrorCode;
use rill_record::{BatchHeader, Batches, set_log_append_time};
use tokio::sync::watch;

use super::{Command, Offsets, OwnerMetrics, Reply, TimeQuery, now_ms};
use crate::idempotence::{
    PRODUCER_ID_EXPIRATION_MS, ProducerStates, Verdict, load_snapshot, write_snapshot,
};

/// An `acks=all` append waiting for its partition's fsync at the end of the round.
pub(super) type Waiting = (Reply<AppendInfo>, AppendInfo);

pub(super) struct Owner {
    log: Log,
    offsets: watch::Sender<Offsets>,
    /// What each idempotent producer last wrote here.
    producers: ProducerStates,
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
}

impl std::fmt::Debug for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Owner")
            .field("dir", &self.log.dir())
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
        let (producers, snapshot_at) = rebuild_producer_states(&log)?;
        let size = log.size_bytes();
        let (offsets, rx) = watch::channel(offsets_of(&log, size));
        let owner = Self {
            segments: log.segment_count(),
            log,
            offsets,
            producers,
            size,
            metrics,
            next_retention_ms: now_ms().saturating_add(millis(retention_check)),
            snapshot_at,
            scheduled: None,
            closing: false,
        };
        Ok((owner, rx))
    }

    /// When this owner next has time-based work: the log's own deadline or retention.
    pub(super) fn next_deadline(&self) -> i64 {
        self.log
            .next_deadline_ms()
            .map_or(self.next_retention_ms, |at| at.min(self.next_retention_ms))
    }

    /// Handles one command; an `acks=all` append comes back to wait for the round's fsync.
    pub(super) fn handle(&mut self, command: Command) -> Option<Waiting> {
        match command {
            Command::Append {
                mut batch,
                durable,
                log_append_time,
                reply,
            } => match self.append(&mut batch, log_append_time) {
                Ok(info) => {
                    // Publish the new end before anything else is answered: a read later in
                    // this round returns these records, and the client's next fetch must find
                    // its offset inside the published range. (Like Kafka with one replica, the
                    // high watermark is the log end; acks=all waits for the fsync, readers
                    // don't.)
                    self.publish();
                    if durable {
                        return Some((reply, info));
                    }
                    let _ = reply.send(Ok(info));
                }
                Err(code) => {
                    let _ = reply.send(Err(code));
                }
            },
            Command::Read {
                offset,
                max_bytes,
                reply,
            } => {
                let result = self
                    .log
                    .read(offset, max_bytes)
                    .map_err(|e| self.failed(&e));
                let _ = reply.send(result);
            }
            Command::ListOffset { query, reply } => {
                let _ = reply.send(self.list_offset(query));
            }
            Command::DeleteRecords { before, reply } => {
                let result = self
                    .log
                    .delete_records_before(before)
                    .map_err(|e| self.failed(&e));
                self.size = self.log.size_bytes();
                let _ = self.producers.expire(
                    now_ms(),
                    PRODUCER_ID_EXPIRATION_MS,
                    self.log.log_start_offset(),
                );
                // Publish the new start before answering, as appends publish the new end.
                self.publish();
                let _ = reply.send(result);
            }
            Command::Configure(config) => {
                if let Err(err) = self.log.set_config(config) {
                    tracing::error!(%err, dir = %self.log.dir().display(), "refused log config");
                }
            }
        }
        None
    }

    fn list_offset(&self, query: TimeQuery) -> Result<Option<TimestampOffset>, ErrorCode> {
        let found = match query {
            TimeQuery::Max => self.log.max_timestamp(),
            TimeQuery::AtOrAfter(t) => self.log.offset_for_timestamp(t),
        };
        found.map_err(|e| self.failed(&e))
    }

    /// Appends a batch, first checking an idempotent producer's sequence: a retry of a batch
    /// already written gets its original offsets and writes nothing.
    fn append(&mut self, batch: &mut [u8], log_append_time: bool) -> Result<AppendInfo, ErrorCode> {
        let now = now_ms();
        let header = BatchHeader::parse(batch).map_err(|_| ErrorCode::CorruptMessage)?;
        if header.has_producer_id() {
            match self.producers.check(&header) {
                Verdict::Append => {}
                Verdict::Duplicate(written) => {
                    return Ok(AppendInfo {
                        base_offset: written.base_offset,
                        last_offset: written.last_offset,
                        log_append_time_ms: now,
                    });
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
        let flushed = self.log.flushed_offset();
        let started = Instant::now();
        let appended = self.log.append(batch, now);
        if self.log.flushed_offset() != flushed {
            // The flush policy fsynced within the append; the write itself is small beside it.
            self.metrics.fsync.observe(started.elapsed().as_secs_f64());
        }
        let info = match appended {
            Ok(info) => info,
            Err(err) => {
                // Whatever the failure, the size is what the segments say.
                self.size = self.log.size_bytes();
                return Err(self.failed(&err));
            }
        };
        // Stored verbatim, so the log grew by exactly the batch.
        self.size += batch.len() as u64;
        if let Some(topic) = &self.metrics.topic {
            topic.appended(batch.len(), header.records_count);
        }
        if header.has_producer_id() {
            let stored = BatchHeader {
                base_offset: info.base_offset,
                ..header
            };
            self.producers.record(&stored, now);
        }
        self.snapshot_if_rolled();
        Ok(info)
    }

    /// After a roll, snapshots the producer state there, so a restart replays at most a segment.
    fn snapshot_if_rolled(&mut self) {
        let segments = self.log.segment_count();
        if segments != self.segments {
            self.segments = segments;
            self.snapshot();
        }
    }

    fn snapshot(&mut self) {
        let end = self.log.log_end_offset();
        match write_snapshot(self.log.dir(), end, &self.producers) {
            Ok(()) => self.snapshot_at = Some(end),
            Err(err) => {
                tracing::warn!(%err, dir = %self.log.dir().display(), "writing the producer state snapshot");
            }
        }
    }

    /// Whether closing should snapshot the producer state, so that the next open need not
    /// replay the log: not if a snapshot at the log end is already there, nor if the log is
    /// empty and no producer has state (there is nothing to replay).
    fn snapshot_due(&self) -> bool {
        let end = self.log.log_end_offset();
        let empty = end == self.log.log_start_offset() && self.producers.len() == 0;
        self.snapshot_at != Some(end) && !empty
    }

    /// Maps a storage error to the code the client gets, logging what a person must look at.
    fn failed(&self, err: &LogError) -> ErrorCode {
        match err {
            LogError::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
            LogError::InvalidBatch { .. } => ErrorCode::CorruptMessage,
            LogError::BatchTooLarge { .. } => ErrorCode::RecordListTooLarge,
            _ => {
                tracing::error!(%err, dir = %self.log.dir().display(), "partition storage error");
                ErrorCode::KafkaStorageError
            }
        }
    }

    /// The fsync a group commit needs, if anything appended is not yet durable; it may run on
    /// another thread, beside other partitions' fsyncs, and comes back to [`Owner::end_sync`].
    pub(super) fn begin_sync(&mut self) -> Result<Option<PendingSync>, ErrorCode> {
        self.log.begin_sync().map_err(|err| self.failed(&err))
    }

    /// Completes a group commit with the fsync's outcome and how long it took.
    pub(super) fn end_sync(
        &mut self,
        pending: PendingSync,
        result: Result<(), LogError>,
        took: Duration,
    ) -> Result<(), ErrorCode> {
        self.metrics.fsync.observe(took.as_secs_f64());
        self.log
            .finish_sync(pending, result)
            .map_err(|err| self.failed(&err))
    }

    fn publish(&self) {
        debug_assert_eq!(self.size, self.log.size_bytes(), "tracked log size drifted");
        let now = offsets_of(&self.log, self.size);
        let _ = self.offsets.send_if_modified(|offsets| {
            let changed = *offsets != now;
            *offsets = now;
            changed
        });
    }

    /// The time-based work due at `now`: the log's interval flush and roll by age, then, when
    /// its time has come, retention and producer id expiry.
    pub(super) fn housekeeping(&mut self, now: i64, retention_check: Duration) {
        let flushed = self.log.flushed_offset();
        let started = Instant::now();
        let result = self.log.tick(now);
        if self.log.flushed_offset() != flushed {
            self.metrics.fsync.observe(started.elapsed().as_secs_f64());
        }
        if let Err(err) = result {
            let _ = self.failed(&err);
        }
        self.snapshot_if_rolled();
        if now >= self.next_retention_ms {
            self.next_retention_ms = now.saturating_add(millis(retention_check));
            let _ =
                self.producers
                    .expire(now, PRODUCER_ID_EXPIRATION_MS, self.log.log_start_offset());
            match self.log.apply_retention(now) {
                Ok(deleted) if deleted.is_empty() => {}
                Ok(_) => {
                    self.size = self.log.size_bytes();
                    self.publish();
                }
                Err(err) => {
                    // Some segments may be gone before the failure.
                    self.size = self.log.size_bytes();
                    self.publish();
                    let _ = self.failed(&err);
                }
            }
        }
    }

    pub(super) fn close(mut self, delete: bool) {
        let dir = self.log.dir().to_path_buf();
        if !delete && self.snapshot_due() {
            self.snapshot();
        }
        if let Err(err) = self.log.close() {
            tracing::error!(%err, dir = %dir.display(), "closing partition log");
        }
        if delete {
            if let Err(err) = std::fs::remove_dir_all(&dir) {
                tracing::error!(%err, dir = %dir.display(), "deleting partition log");
            }
        }
    }
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
            if header.has_producer_id() {
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

fn offsets_of(log: &Log, size_bytes: u64) -> Offsets {
    Offsets {
        log_start: log.log_start_offset(),
        log_end: log.log_end_offset(),
        size_bytes,
    }
}
