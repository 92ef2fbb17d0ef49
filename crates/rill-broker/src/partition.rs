//! One owner per partition: a thread that holds the partition's [`Log`] and does all its disk
//! I/O, reached over a channel. Network tasks never touch the disk; a slow disk stalls only the
//! partitions on it, never a socket.
//!
//! The owner drains its queue in rounds: it appends every batch that arrived, then, if any of
//! them waits for durability (`acks=all`), fsyncs once for all of them (group commit) before it
//! answers them. Reads and offset lookups are answered as they come.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use rill_log::{AppendInfo, Log, LogConfig, LogError, TimestampOffset};
use rill_protocol::ErrorCode;
use rill_record::{BatchHeader, Batches, set_log_append_time};
use tokio::sync::{oneshot, watch};

use crate::idempotence::{
    PRODUCER_ID_EXPIRATION_MS, ProducerStates, Verdict, load_snapshot, write_snapshot,
};
use crate::metrics::TopicMetrics;

/// How many queued commands one round takes before it fsyncs and answers.
const MAX_ROUND: usize = 1024;
/// How often an idle owner wakes to run interval flushes.
const TICK: Duration = Duration::from_millis(100);

/// The offsets readers wait on, and the log's size, published by the owner after every change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Offsets {
    pub(crate) log_start: i64,
    /// The log end offset, which is also the high watermark (one replica).
    pub(crate) log_end: i64,
    /// Bytes in all segments (for metrics; it changes only when an offset does).
    pub(crate) size_bytes: u64,
}

/// What an owner thread counts: its topic's produce counters (`None` for the broker's internal
/// logs) and every fsync it does.
#[derive(Debug, Clone)]
pub(crate) struct OwnerMetrics {
    pub(crate) topic: Option<TopicMetrics>,
    pub(crate) fsync: prometheus::Histogram,
}

/// Which offset a ListOffsets query asks for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum OffsetQuery {
    Earliest,
    Latest,
    MaxTimestamp,
    Timestamp(i64),
}

type Reply<T> = oneshot::Sender<Result<T, ErrorCode>>;

#[derive(Debug)]
enum Command {
    Append {
        batch: BytesMut,
        durable: bool,
        /// Stamp the batch with the append time (the topic's `message.timestamp.type`).
        log_append_time: bool,
        reply: Reply<AppendInfo>,
    },
    Read {
        offset: i64,
        max_bytes: usize,
        reply: Reply<Bytes>,
    },
    ListOffset {
        query: OffsetQuery,
        reply: Reply<Option<TimestampOffset>>,
    },
    DeleteRecords {
        before: i64,
        reply: Reply<i64>,
    },
    Configure(LogConfig),
    /// Close cleanly; remove the log directory too when `delete`.
    Close {
        delete: bool,
    },
}

/// The handle the rest of the broker holds for a partition.
#[derive(Debug)]
pub(crate) struct Partition {
    pub(crate) index: i32,
    commands: mpsc::Sender<Command>,
    offsets: watch::Receiver<Offsets>,
    thread: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Partition {
    /// Opens (recovering) the log in `dir` and starts its owner thread.
    pub(crate) fn open(
        dir: std::path::PathBuf,
        index: i32,
        config: LogConfig,
        retention_check: Duration,
        metrics: OwnerMetrics,
    ) -> Result<Self, LogError> {
        let log = Log::open(&dir, config, now_ms())?;
        Self::start(log, index, retention_check, metrics)
    }

    /// Starts the owner thread of a log already open.
    pub(crate) fn start(
        log: Log,
        index: i32,
        retention_check: Duration,
        metrics: OwnerMetrics,
    ) -> Result<Self, LogError> {
        let dir = log.dir().to_path_buf();
        let producers = rebuild_producer_states(&log)?;
        let size = log.size_bytes();
        let (offsets_tx, offsets) = watch::channel(offsets_of(&log, size));
        let (commands, rx) = mpsc::channel();
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let thread = std::thread::Builder::new()
            .name(format!("rill-partition-{name}"))
            .spawn(move || {
                Owner {
                    segments: log.segment_count(),
                    log,
                    offsets: offsets_tx,
                    retention_check,
                    producers,
                    size,
                    metrics,
                }
                .run(&rx)
            })
            .map_err(|source| LogError::Io { path: dir, source })?;
        Ok(Self {
            index,
            commands,
            offsets,
            thread: std::sync::Mutex::new(Some(thread)),
        })
    }

    pub(crate) fn offsets(&self) -> Offsets {
        *self.offsets.borrow()
    }

    /// A receiver that wakes when new records arrive (for long-polling fetches).
    pub(crate) fn watch(&self) -> watch::Receiver<Offsets> {
        self.offsets.clone()
    }

    /// Hands a batch to the owner; the returned future resolves once it is appended (and
    /// fsynced, if `durable`). The hand-off happens before this returns, so batches from one
    /// connection reach the log in the order they were handed off. With `log_append_time` the
    /// owner stamps the batch with the time it appends it, which the answer carries.
    pub(crate) fn append(
        &self,
        batch: BytesMut,
        durable: bool,
        log_append_time: bool,
    ) -> impl Future<Output = Result<AppendInfo, ErrorCode>> + use<> {
        let (reply, rx) = oneshot::channel();
        let sent = self.commands.send(Command::Append {
            batch,
            durable,
            log_append_time,
            reply,
        });
        async move {
            sent.map_err(|_| ErrorCode::NotLeaderOrFollower)?;
            rx.await.map_err(|_| ErrorCode::NotLeaderOrFollower)?
        }
    }

    pub(crate) async fn read(&self, offset: i64, max_bytes: usize) -> Result<Bytes, ErrorCode> {
        self.ask(|reply| Command::Read {
            offset,
            max_bytes,
            reply,
        })
        .await
    }

    pub(crate) async fn list_offset(
        &self,
        query: OffsetQuery,
    ) -> Result<Option<TimestampOffset>, ErrorCode> {
        self.ask(|reply| Command::ListOffset { query, reply }).await
    }

    pub(crate) async fn delete_records(&self, before: i64) -> Result<i64, ErrorCode> {
        self.ask(|reply| Command::DeleteRecords { before, reply })
            .await
    }

    pub(crate) fn configure(&self, config: LogConfig) {
        let _ = self.commands.send(Command::Configure(config));
    }

    async fn ask<T>(&self, command: impl FnOnce(Reply<T>) -> Command) -> Result<T, ErrorCode> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(command(reply))
            .map_err(|_| ErrorCode::NotLeaderOrFollower)?;
        rx.await.map_err(|_| ErrorCode::NotLeaderOrFollower)?
    }

    /// Closes the log cleanly (or deletes it) and waits for the owner thread to finish.
    /// Blocking: call it from a blocking context.
    pub(crate) fn close_blocking(&self, delete: bool) {
        let _ = self.commands.send(Command::Close { delete });
        let thread = self.thread.lock().map(|mut t| t.take()).unwrap_or(None);
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

struct Owner {
    log: Log,
    offsets: watch::Sender<Offsets>,
    retention_check: Duration,
    /// What each idempotent producer last wrote here.
    producers: ProducerStates,
    /// Segment count after the last append, to notice rolls.
    segments: usize,
    /// The log's size in bytes, kept up to date here rather than summed over every segment at
    /// each publish.
    size: u64,
    metrics: OwnerMetrics,
}

impl Owner {
    fn run(mut self, rx: &mpsc::Receiver<Command>) {
        let mut last_retention = Instant::now();
        loop {
            let first = match rx.recv_timeout(TICK) {
                Ok(command) => command,
                Err(RecvTimeoutError::Timeout) => {
                    self.housekeeping(&mut last_retention);
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut waiting = Vec::new();
            let mut close = None;
            for command in std::iter::once(first).chain(rx.try_iter().take(MAX_ROUND)) {
                if let Command::Close { delete } = command {
                    close = Some(delete);
                    break;
                }
                self.handle(command, &mut waiting);
            }
            if !waiting.is_empty() {
                let synced = self.sync();
                for (reply, info) in waiting {
                    let _ = reply.send(synced.map(|()| info));
                }
            }
            self.publish();
            if let Some(delete) = close {
                self.close(delete);
                return;
            }
            self.housekeeping(&mut last_retention);
        }
        self.close(false);
    }

    fn handle(&mut self, command: Command, waiting: &mut Vec<(Reply<AppendInfo>, AppendInfo)>) {
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
                        waiting.push((reply, info));
                    } else {
                        let _ = reply.send(Ok(info));
                    }
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
                let log = &self.log;
                let result = match query {
                    OffsetQuery::Earliest => Ok(Some(TimestampOffset {
                        offset: log.log_start_offset(),
                        timestamp: -1,
                    })),
                    OffsetQuery::Latest => Ok(Some(TimestampOffset {
                        offset: log.log_end_offset(),
                        timestamp: -1,
                    })),
                    OffsetQuery::MaxTimestamp => log.max_timestamp(),
                    OffsetQuery::Timestamp(t) => log.offset_for_timestamp(t),
                };
                let _ = reply.send(result.map_err(|e| self.failed(&e)));
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
            Command::Close { .. } => {}
        }
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
        // A roll: snapshot the producer state there, so a restart replays at most a segment.
        let segments = self.log.segment_count();
        if segments != self.segments {
            self.segments = segments;
            self.snapshot();
        }
        Ok(info)
    }

    fn snapshot(&self) {
        let end = self.log.log_end_offset();
        if let Err(err) = write_snapshot(self.log.dir(), end, &self.producers) {
            tracing::warn!(%err, dir = %self.log.dir().display(), "writing the producer state snapshot");
        }
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

    /// One group commit: fsyncs everything appended so far, timing it if there was anything.
    fn sync(&mut self) -> Result<(), ErrorCode> {
        let due = self.log.flushed_offset() != self.log.log_end_offset();
        let started = Instant::now();
        let synced = self.log.sync();
        if due {
            self.metrics.fsync.observe(started.elapsed().as_secs_f64());
        }
        synced.map_err(|err| self.failed(&err))
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

    fn housekeeping(&mut self, last_retention: &mut Instant) {
        let flushed = self.log.flushed_offset();
        let started = Instant::now();
        let result = self.log.flush_if_due(now_ms());
        if self.log.flushed_offset() != flushed {
            self.metrics.fsync.observe(started.elapsed().as_secs_f64());
        }
        if let Err(err) = result {
            let _ = self.failed(&err);
        }
        if last_retention.elapsed() >= self.retention_check {
            *last_retention = Instant::now();
            let _ = self.producers.expire(
                now_ms(),
                PRODUCER_ID_EXPIRATION_MS,
                self.log.log_start_offset(),
            );
            match self.log.apply_retention(now_ms()) {
                Ok(deleted) if deleted.is_empty() => {}
                Ok(_) => {
                    self.size = self.log.size_bytes();
                    self.publish();
                }
                Err(err) => {
                    // Some segments may be gone before the failure.
                    self.size = self.log.size_bytes();
                    let _ = self.failed(&err);
                }
            }
        }
    }

    fn close(self, delete: bool) {
        let dir = self.log.dir().to_path_buf();
        if !delete {
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

/// The idempotent producers' state: the newest snapshot, then every batch after it.
fn rebuild_producer_states(log: &Log) -> Result<ProducerStates, LogError> {
    let end = log.log_end_offset();
    let (mut offset, mut states) = load_snapshot(log.dir(), end)
        .unwrap_or((log.log_start_offset(), ProducerStates::default()));
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
    Ok(states)
}

fn offsets_of(log: &Log, size_bytes: u64) -> Offsets {
    Offsets {
        log_start: log.log_start_offset(),
        log_end: log.log_end_offset(),
        size_bytes,
    }
}

/// Wall-clock milliseconds since the epoch, as Kafka timestamps are.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
