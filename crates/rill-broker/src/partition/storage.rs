//! The storage threads: a small, fixed set of OS threads, each running the owners of the
//! partitions given to it (goroutines on an M). Each thread has one queue for all its
//! partitions, works in rounds, and sleeps until a message comes or its earliest deadline
//! falls due; an idle partition costs no wake-ups at all.
//!
//! One round: take what is queued (up to [`MAX_ROUND`] messages), let each partition's owner
//! handle its commands (appends are written and published at once), then start an fsync for
//! every partition with `acks=all` batches waiting and none in flight (group commit: one covers
//! all of them). The fsyncs run side by side on a small fixed pool (the disk merges concurrent
//! flushes) while the thread goes on appending; each comes back through the thread's queue, and
//! its batches are answered then. Last, the housekeeping whose deadline has come runs.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rill_log::{FileCache, Log, LogConfig, LogError, PendingSync};
use rill_protocol::ErrorCode;

use super::owner::{Owner, Waiting};
use super::{Command, OwnerMetrics, Partition, now_ms};

/// How many queued messages one round takes before it fsyncs and answers.
const MAX_ROUND: usize = 1024;
/// How long housekeeping that failed (a roll on a full disk, a flush of a poisoned log) waits
/// before it is tried again, rather than spinning on a deadline that stays in the past.
const RETRY_MS: i64 = 5_000;
/// Threads that run fsyncs side by side. On this project's test machine six fsyncs take a
/// quarter of the time at once that they take one after another.
const SYNC_THREADS: usize = 8;

/// What a storage thread is sent.
#[derive(Debug)]
pub(super) enum Message {
    /// A partition to own from now on.
    Adopt {
        id: u64,
        owner: Box<Owner>,
    },
    Command {
        id: u64,
        command: Command,
    },
    /// Close (or delete) a partition's log; `done` hears when it is.
    Close {
        id: u64,
        delete: bool,
        done: Option<mpsc::Sender<()>>,
    },
    /// An fsync handed to the pool is done.
    Synced(Box<SyncDone>),
    /// Close every partition left and end the thread.
    Stop,
}

/// The storage threads and the descriptor cache their logs share.
#[derive(Debug)]
pub(crate) struct Storage {
    queues: Vec<mpsc::Sender<Message>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    cache: Arc<FileCache>,
    retention_check: Duration,
    next_queue: AtomicUsize,
    next_id: AtomicU64,
    stopped: AtomicBool,
}

impl Storage {
    /// Starts `threads` storage threads (at least one) whose logs keep at most `max_open_files`
    /// segment files open.
    pub(crate) fn start(
        threads: usize,
        max_open_files: usize,
        retention_check: Duration,
    ) -> std::io::Result<Self> {
        let mut queues = Vec::new();
        let mut handles = Vec::new();
        let (syncs, sync_threads) = SyncPool::start()?;
        for i in 0..threads.max(1) {
            let (tx, rx) = mpsc::channel();
            let shard = Shard {
                owners: HashMap::new(),
                deadlines: BinaryHeap::new(),
                retention_check,
                syncs: syncs.clone(),
                queue: tx.clone(),
                in_flight: 0,
            };
            handles.push(
                std::thread::Builder::new()
                    .name(format!("rill-storage-{i}"))
                    .spawn(move || shard.run(&rx))?,
            );
            queues.push(tx);
        }
        // The fsync threads end once the storage threads (which hold the pool) have: joined last.
        drop(syncs);
        handles.extend(sync_threads);
        Ok(Self {
            queues,
            threads: Mutex::new(handles),
            cache: FileCache::new(max_open_files),
            retention_check,
            next_queue: AtomicUsize::new(0),
            next_id: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
        })
    }

    /// How many storage threads there are.
    pub(crate) fn threads(&self) -> usize {
        self.queues.len()
    }

    /// The descriptor cache every partition log shares.
    pub(crate) fn cache(&self) -> &Arc<FileCache> {
        &self.cache
    }

    /// Opens (recovering) the log in `dir` and gives it an owner.
    pub(crate) fn open(
        &self,
        dir: PathBuf,
        index: i32,
        config: LogConfig,
        metrics: OwnerMetrics,
    ) -> Result<Partition, LogError> {
        let log = Log::open_cached(dir, config, now_ms(), &self.cache)?;
        self.adopt(log, index, metrics)
    }

    /// Gives an open log an owner on one of the storage threads (taken in turn).
    pub(crate) fn adopt(
        &self,
        log: Log,
        index: i32,
        metrics: OwnerMetrics,
    ) -> Result<Partition, LogError> {
        let (owner, offsets) = Owner::new(log, metrics, self.retention_check)?;
        let turn = self.next_queue.fetch_add(1, Ordering::Relaxed);
        let queue = self
            .queues
            .get(turn % self.queues.len().max(1))
            .cloned()
            .ok_or_else(|| LogError::InvalidConfig("no storage threads".to_owned()))?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let owner = Box::new(owner);
        queue
            .send(Message::Adopt { id, owner })
            .map_err(|_| LogError::InvalidConfig("the storage threads have stopped".to_owned()))?;
        Ok(Partition {
            index,
            id,
            queue,
            offsets,
            closed: AtomicBool::new(false),
        })
    }

    /// Closes (or deletes) many partitions at once: every storage thread works on its share
    /// while this waits for all of them. Blocking.
    pub(crate) fn close_all<'a>(partitions: impl IntoIterator<Item = &'a Partition>, delete: bool) {
        let (done, closed) = mpsc::channel();
        let mut asked = 0usize;
        for partition in partitions {
            if !partition.closed.load(Ordering::Acquire) {
                partition.start_close(delete, Some(done.clone()));
                asked += 1;
            }
        }
        drop(done);
        for _ in 0..asked {
            if closed.recv().is_err() {
                // A storage thread is gone; what it owned was closed when it stopped.
                break;
            }
        }
    }

    /// Stops the storage threads (closing whatever partitions are left) and waits for them.
    pub(crate) fn stop(&self) {
        if self.stopped.swap(true, Ordering::AcqRel) {
            return;
        }
        for queue in &self.queues {
            let _ = queue.send(Message::Stop);
        }
        let threads = self.threads.lock().map(|mut t| std::mem::take(&mut *t));
        for thread in threads.unwrap_or_default() {
            let _ = thread.join();
        }
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One storage thread's state.
struct Shard {
    owners: HashMap<u64, Owner>,
    /// (deadline in ms since the epoch, owner id), earliest first; entries whose owner has
    /// since scheduled another deadline (or gone) are skipped when they come up.
    deadlines: BinaryHeap<Reverse<(i64, u64)>>,
    retention_check: Duration,
    syncs: SyncPool,
    /// This thread's own queue, where finished fsyncs come back.
    queue: mpsc::Sender<Message>,
    /// fsyncs handed to the pool and not yet back.
    in_flight: usize,
}

/// What one round collects before it starts fsyncs and closes.
#[derive(Default)]
struct Round {
    /// Partitions with `acks=all` batches waiting for an fsync.
    needs_sync: Vec<u64>,
    touched: Vec<u64>,
    closes: Vec<(u64, bool, Option<mpsc::Sender<()>>)>,
}

impl Shard {
    fn run(mut self, rx: &mpsc::Receiver<Message>) {
        loop {
            let first = match self.until_next_deadline() {
                None => match rx.recv() {
                    Ok(message) => message,
                    Err(_) => break,
                },
                Some(wait) => match rx.recv_timeout(wait) {
                    Ok(message) => message,
                    Err(RecvTimeoutError::Timeout) => {
                        self.run_due();
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                },
            };
            let mut round = Round::default();
            let mut stop = false;
            for message in std::iter::once(first).chain(rx.try_iter().take(MAX_ROUND)) {
                if let Message::Stop = message {
                    stop = true;
                    break;
                }
                self.handle(message, &mut round);
            }
            self.finish(round);
            if stop {
                break;
            }
            self.run_due();
        }
        // Every fsync in flight comes back and is answered before the logs close.
        while self.in_flight > 0 {
            match rx.recv() {
                Ok(Message::Synced(done)) => self.synced(*done, &mut Round::default()),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        for (_, owner) in self.owners.drain() {
            owner.close(false);
        }
    }

    fn handle(&mut self, message: Message, round: &mut Round) {
        match message {
            Message::Adopt { id, owner } => {
                let _ = self.owners.insert(id, *owner);
                self.schedule(id, i64::MIN);
            }
            Message::Command { id, command } => {
                // A command for a partition gone or going is dropped: its caller hears
                // NOT_LEADER_OR_FOLLOWER.
                let Some(owner) = self.owners.get_mut(&id).filter(|o| !o.closing) else {
                    return;
                };
                if let Some(waiting) = owner.handle(command) {
                    owner.waiting.push(waiting);
                    round.needs_sync.push(id);
                }
                round.touched.push(id);
            }
            Message::Synced(done) => self.synced(*done, round),
            Message::Close { id, delete, done } => {
                if let Some(owner) = self.owners.get_mut(&id) {
                    owner.closing = true;
                }
                round.closes.push((id, delete, done));
            }
            Message::Stop => {}
        }
    }

    /// An fsync is back: its batches are answered, and batches that arrived meanwhile get the
    /// next one.
    fn synced(&mut self, done: SyncDone, round: &mut Round) {
        self.in_flight = self.in_flight.saturating_sub(1);
        let SyncDone {
            id,
            pending,
            result,
            took,
            waiters,
        } = done;
        let outcome = match self.owners.get_mut(&id) {
            Some(owner) => {
                owner.syncing = false;
                if !owner.waiting.is_empty() {
                    round.needs_sync.push(id);
                }
                owner.end_sync(pending, result, took)
            }
            // Closed meanwhile (the close fsynced again); the fsync's own outcome stands.
            None => result.map_err(|_| ErrorCode::KafkaStorageError),
        };
        answer(waiters, outcome);
    }

    /// The end of a round: an fsync for each partition with `acks=all` batches waiting and none
    /// in flight (group commit: one fsync for all of them), handed to the pool so that this
    /// thread goes on appending meanwhile; then the closes.
    fn finish(&mut self, round: Round) {
        let mut needs_sync = round.needs_sync;
        needs_sync.sort_unstable();
        needs_sync.dedup();
        for id in needs_sync {
            let Some(owner) = self.owners.get_mut(&id) else {
                continue;
            };
            if owner.syncing || owner.waiting.is_empty() {
                continue;
            }
            let waiters = std::mem::take(&mut owner.waiting);
            match owner.begin_sync() {
                Ok(Some(pending)) => {
                    owner.syncing = true;
                    self.in_flight += 1;
                    self.syncs.run(SyncJob {
                        id,
                        pending,
                        waiters,
                        done: self.queue.clone(),
                    });
                }
                Ok(None) => answer(waiters, Ok(())),
                Err(code) => answer(waiters, Err(code)),
            }
        }
        let mut touched = round.touched;
        touched.sort_unstable();
        touched.dedup();
        for id in touched {
            self.schedule(id, i64::MIN);
        }
        for (id, delete, done) in round.closes {
            if let Some(mut owner) = self.owners.remove(&id) {
                // Batches not yet in an fsync: the close's own fsync is theirs.
                let waiters = std::mem::take(&mut owner.waiting);
                let synced = owner.sync_now();
                answer(waiters, synced);
                owner.close(delete);
            }
            if let Some(done) = done {
                let _ = done.send(());
            }
        }
    }

    /// Makes sure the owner's next deadline (but not before `not_before`) is in the heap.
    fn schedule(&mut self, id: u64, not_before: i64) {
        let Some(owner) = self.owners.get_mut(&id) else {
            return;
        };
        let next = owner.next_deadline().max(not_before);
        if owner.scheduled.is_some_and(|at| at <= next) {
            // An earlier wake-up is already due; it schedules the next one when it comes.
            return;
        }
        owner.scheduled = Some(next);
        self.deadlines.push(Reverse((next, id)));
    }

    fn until_next_deadline(&self) -> Option<Duration> {
        let Reverse((at, _)) = self.deadlines.peek()?;
        let wait = at.saturating_sub(now_ms()).max(0);
        Some(Duration::from_millis(u64::try_from(wait).unwrap_or(0)))
    }

    /// Runs the housekeeping of every owner whose deadline has come.
    fn run_due(&mut self) {
        let now = now_ms();
        while let Some(&Reverse((at, id))) = self.deadlines.peek() {
            if at > now {
                break;
            }
            let _ = self.deadlines.pop();
            let Some(owner) = self.owners.get_mut(&id) else {
                continue;
            };
            if owner.scheduled != Some(at) {
                continue;
            }
            owner.scheduled = None;
            owner.housekeeping(now, self.retention_check);
            // Work still due right after it ran has failed: retry it later, not at once.
            let not_before = if owner.next_deadline() <= now {
                now.saturating_add(RETRY_MS)
            } else {
                i64::MIN
            };
            self.schedule(id, not_before);
        }
    }
}

/// An fsync done, for the partition `id`: its outcome, how long it took, and the batches it
/// makes durable.
pub(super) struct SyncDone {
    id: u64,
    pending: PendingSync,
    result: Result<(), LogError>,
    took: Duration,
    waiters: Vec<Waiting>,
}

impl std::fmt::Debug for SyncDone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncDone")
            .field("id", &self.id)
            .field("result", &self.result)
            .finish_non_exhaustive()
    }
}

struct SyncJob {
    id: u64,
    pending: PendingSync,
    waiters: Vec<Waiting>,
    /// The storage thread's queue, where the fsync comes back.
    done: mpsc::Sender<Message>,
}

impl SyncJob {
    fn run(self) {
        let started = Instant::now();
        let result = self.pending.run();
        let done = SyncDone {
            id: self.id,
            pending: self.pending,
            result,
            took: started.elapsed(),
            waiters: self.waiters,
        };
        // A storage thread that is gone has closed its logs already.
        let _ = self.done.send(Message::Synced(Box::new(done)));
    }
}

/// The fixed pool that runs fsyncs of many partitions side by side, while the storage threads
/// go on appending.
#[derive(Clone)]
struct SyncPool {
    jobs: mpsc::Sender<SyncJob>,
}

impl SyncPool {
    fn start() -> std::io::Result<(Self, Vec<JoinHandle<()>>)> {
        let (jobs, rx) = mpsc::channel::<SyncJob>();
        let rx = Arc::new(Mutex::new(rx));
        let mut threads = Vec::new();
        for i in 0..SYNC_THREADS {
            let rx = rx.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("rill-fsync-{i}"))
                    .spawn(move || {
                        loop {
                            let job = match rx.lock() {
                                Ok(rx) => rx.recv(),
                                Err(_) => return,
                            };
                            let Ok(job) = job else { return };
                            job.run();
                        }
                    })?,
            );
        }
        Ok((Self { jobs }, threads))
    }

    /// Runs the fsync on the pool (or here, if the pool is gone).
    fn run(&self, job: SyncJob) {
        if let Err(mpsc::SendError(job)) = self.jobs.send(job) {
            job.run();
        }
    }
}

/// Answers `acks=all` batches with their fsync's outcome.
fn answer(waiters: Vec<Waiting>, outcome: Result<(), ErrorCode>) {
    for (reply, info) in waiters {
        let _ = reply.send(outcome.map(|()| info));
    }
}

/// Runs `work` on every item with up to `workers` scoped threads, answers in the items' order.
/// For blocking work done many times at once, such as opening thousands of partition logs.
pub(crate) fn parallel<T: Send, R: Send>(
    items: Vec<T>,
    workers: usize,
    work: impl Fn(T) -> R + Sync,
) -> Vec<R> {
    let count = items.len();
    let workers = workers.clamp(1, count.max(1));
    if workers == 1 {
        return items.into_iter().map(work).collect();
    }
    let queue = Mutex::new(items.into_iter().enumerate());
    let results = Mutex::new(Vec::with_capacity(count));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let _ = scope.spawn(|| {
                loop {
                    let next = queue.lock().ok().and_then(|mut q| q.next());
                    let Some((i, item)) = next else { break };
                    let result = work(item);
                    if let Ok(mut results) = results.lock() {
                        results.push((i, result));
                    }
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_default();
    results.sort_unstable_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use rill_record::{BatchBuilder, RecordSpec};

    fn metrics() -> OwnerMetrics {
        // Unregistered: any valid name will do.
        match prometheus::Histogram::with_opts(prometheus::HistogramOpts::new("fsync", "test")) {
            Ok(fsync) => OwnerMetrics { topic: None, fsync },
            Err(err) => panic!("a histogram named fsync: {err}"),
        }
    }

    fn batch(value: u8) -> Result<BytesMut, rill_record::RecordError> {
        let mut builder = BatchBuilder::new();
        let _ = builder.push(&RecordSpec {
            value: Some(bytes::Bytes::from(vec![value])),
            ..RecordSpec::new(now_ms())
        });
        Ok(BytesMut::from(builder.build()?.as_ref()))
    }

    fn log_files(dir: &std::path::Path) -> std::io::Result<usize> {
        Ok(std::fs::read_dir(dir)?
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
            .count())
    }

    /// Many partitions on one storage thread, each written with acks=all in the same rounds,
    /// read back; then an idle one rolls by age and loses its old segment to retention with no
    /// append to wake it: the deadline heap does the work.
    #[tokio::test]
    async fn one_thread_serves_many_partitions_and_their_deadlines()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let storage = Storage::start(1, 4, Duration::from_millis(50))?;
        let config = LogConfig {
            segment_ms: 200,
            retention_ms: 0,
            ..LogConfig::default()
        };
        let mut partitions = Vec::new();
        for i in 0..20 {
            let dir = dir.path().join(format!("t-{i}"));
            partitions.push(storage.open(dir, i, config.clone(), metrics())?);
        }
        for round in 0..3u8 {
            let appends: Vec<_> = partitions
                .iter()
                .map(|p| batch(round).map(|b| p.append(b, true, false)))
                .collect::<Result<_, _>>()?;
            for (append, p) in appends.into_iter().zip(&partitions) {
                let info = append.await.map_err(|c| c.name())?;
                assert_eq!(info.base_offset, i64::from(round), "partition {}", p.index);
            }
        }
        for p in &partitions {
            assert_eq!(p.offsets().log_end, 3);
            let bytes = p.read(0, 1 << 20).await.map_err(|c| c.name())?;
            let offsets: Vec<i64> = rill_record::Batches::new(&bytes)
                .map(|b| b.map(|b| b.header().base_offset))
                .collect::<Result<_, _>>()?;
            assert_eq!(offsets, vec![0, 1, 2]);
        }
        assert!(storage.cache().open_files() <= 4);
        // Idle from now on: within a few deadlines every partition rolls (segment.ms) and
        // retention (retention.ms = 0) deletes the old segment.
        let first = partitions.first().ok_or("no partition")?;
        let mut watch = first.watch();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while first.offsets().log_start < 3 {
            tokio::time::timeout_at(deadline, watch.changed()).await??;
        }
        assert_eq!(log_files(&dir.path().join("t-0"))?, 1);
        assert_eq!(
            first.offsets().log_end,
            3,
            "nothing lost but the deleted segment"
        );
        Storage::close_all(partitions.iter(), false);
        storage.stop();
        Ok(())
    }
}
