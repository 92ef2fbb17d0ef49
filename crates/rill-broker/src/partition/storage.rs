//! The storage threads: a small, fixed set of OS threads, each running the owners of the
//! partitions given to it (goroutines on an M). Each thread has one queue for all its
//! partitions, works in rounds, and sleeps until a message comes or its earliest deadline
//! falls due; an idle partition costs no wake-ups at all.
//!
//! One round: take what is queued (up to [`MAX_ROUND`] messages), let each partition's owner
//! handle its commands (appends are written and published at once), then fsync every partition
//! with an `acks=all` batch waiting, once each and all at the same time (on a small fixed pool:
//! the disk merges concurrent flushes), and answer those batches; then run the housekeeping
//! whose deadline has come.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rill_log::{BlockingPool, FileCache, Log, LogConfig, LogError, PendingSync};
use rill_protocol::ErrorCode;
use uuid::Uuid;

use super::owner::{Owner, Waiting};
use super::replica::{self, ReplicaSpec, Writing};
use super::{Command, OwnerMetrics, Partition, now_ms};
use crate::error::BrokerError;

/// How many queued messages one round takes before it fsyncs and answers.
const MAX_ROUND: usize = 1024;
/// How long housekeeping that failed (a roll on a full disk, a flush of a poisoned log) waits
/// before it is tried again, rather than spinning on a deadline that stays in the past.
const RETRY_MS: i64 = 5_000;
/// Threads that run a round's fsyncs side by side. On this project's test machine six fsyncs
/// take a quarter of the time at once that they take one after another.
const SYNC_THREADS: usize = 8;

/// What a storage thread is sent.
#[derive(Debug)]
pub(super) enum Message {
    /// A partition to own from now on.
    Adopt {
        id: u64,
        owner: Box<Owner>,
        /// A replicated partition's owner, which ticks.
        replicated: bool,
    },
    Command {
        id: u64,
        command: Command,
    },
    /// A peer's Raft message for a replicated partition.
    Raft {
        id: u64,
        message: raft::eraftpb::Message,
    },
    /// Close (or delete) a partition's log; `done` hears when it is.
    Close {
        id: u64,
        delete: bool,
        done: Option<mpsc::Sender<()>>,
    },
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
    router: Arc<Router>,
}

/// Where peers' Raft messages for the replicated partitions held here go: to their owner on
/// its storage thread, by topic id and partition. Messages for a partition not held (yet, or
/// any more) are dropped; Raft sends again.
#[derive(Debug, Default)]
pub(crate) struct Router {
    routes: RwLock<HashMap<(Uuid, i32), Route>>,
}

/// A replicated partition's storage thread queue and owner id.
type Route = (mpsc::Sender<Message>, u64);

impl Router {
    pub(crate) fn deliver(&self, topic: Uuid, partition: i32, message: raft::eraftpb::Message) {
        let route = self
            .routes
            .read()
            .ok()
            .and_then(|routes| routes.get(&(topic, partition)).cloned());
        if let Some((queue, id)) = route {
            let _ = queue.send(Message::Raft { id, message });
        }
    }

    fn add(&self, key: (Uuid, i32), queue: mpsc::Sender<Message>, id: u64) {
        if let Ok(mut routes) = self.routes.write() {
            let _ = routes.insert(key, (queue, id));
        }
    }

    /// Forgets the route of owner `id` (not a newer owner's of the same partition).
    pub(super) fn remove(&self, key: (Uuid, i32), id: u64) {
        if let Ok(mut routes) = self.routes.write()
            && routes.get(&key).is_some_and(|(_, owner)| *owner == id)
        {
            let _ = routes.remove(&key);
        }
    }
}

impl Storage {
    /// Starts `threads` storage threads (at least one) whose logs keep at most `max_open_files`
    /// segment files open.
    pub(crate) fn start(
        threads: usize,
        max_open_files: usize,
        retention_check: Duration,
        router: Arc<Router>,
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
                replicas: BTreeSet::new(),
                next_tick: Instant::now(),
                unready: BTreeSet::new(),
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
            router,
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

    /// Opens (recovering) a replicated partition's log in `dir` and gives it an owner that
    /// runs its replica of the partition's Raft group.
    pub(crate) fn open_replica(
        &self,
        dir: PathBuf,
        index: i32,
        config: LogConfig,
        metrics: OwnerMetrics,
        spec: ReplicaSpec,
    ) -> Result<Partition, BrokerError> {
        let log = Log::open_cached(dir, config, now_ms(), &self.cache)?;
        let key = (spec.topic_id, spec.partition);
        let (owner, offsets) = Owner::replica(log, spec, metrics, self.retention_check)?;
        Ok(self.hand_over(owner, offsets, index, Some(key))?)
    }

    /// Gives an open log an owner on one of the storage threads (taken in turn).
    pub(crate) fn adopt(
        &self,
        log: Log,
        index: i32,
        metrics: OwnerMetrics,
    ) -> Result<Partition, LogError> {
        let (owner, offsets) = Owner::new(log, metrics, self.retention_check)?;
        self.hand_over(owner, offsets, index, None)
    }

    fn hand_over(
        &self,
        owner: Owner,
        offsets: tokio::sync::watch::Receiver<super::Offsets>,
        index: i32,
        route: Option<(Uuid, i32)>,
    ) -> Result<Partition, LogError> {
        let turn = self.next_queue.fetch_add(1, Ordering::Relaxed);
        let queue = self
            .queues
            .get(turn % self.queues.len().max(1))
            .cloned()
            .ok_or_else(|| LogError::InvalidConfig("no storage threads".to_owned()))?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let open_txns = owner.open_txns();
        let owner = Box::new(owner);
        queue
            .send(Message::Adopt {
                id,
                owner,
                replicated: route.is_some(),
            })
            .map_err(|_| LogError::InvalidConfig("the storage threads have stopped".to_owned()))?;
        if let Some(key) = route {
            self.router.add(key, queue.clone(), id);
        }
        Ok(Partition {
            index,
            id,
            queue,
            offsets,
            closed: AtomicBool::new(false),
            route: route.map(|key| (self.router.clone(), key)),
            open_txns,
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
    /// The replicated partitions' owners, which tick.
    replicas: BTreeSet<u64>,
    next_tick: Instant,
    /// Replicas with a Ready to handle in the next round.
    unready: BTreeSet<u64>,
}

/// What one round collects before it fsyncs and answers.
#[derive(Default)]
struct Round {
    waiting: Vec<(u64, Waiting)>,
    touched: Vec<u64>,
    closes: Vec<(u64, bool, Option<mpsc::Sender<()>>)>,
}

impl Shard {
    fn run(mut self, rx: &mpsc::Receiver<Message>) {
        loop {
            let wait = self.until_next_deadline();
            let wait = if self.unready.is_empty() {
                wait
            } else {
                Some(Duration::ZERO)
            };
            let first = match wait {
                None => match rx.recv() {
                    Ok(message) => Some(message),
                    Err(_) => break,
                },
                Some(wait) => match rx.recv_timeout(wait) {
                    Ok(message) => Some(message),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => break,
                },
            };
            let mut round = Round::default();
            self.tick_replicas(&mut round);
            round.touched.extend(std::mem::take(&mut self.unready));
            let Some(first) = first else {
                self.finish(round);
                self.run_due();
                continue;
            };
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
        for (_, owner) in self.owners.drain() {
            owner.close(false);
        }
    }

    fn handle(&mut self, message: Message, round: &mut Round) {
        match message {
            Message::Adopt {
                id,
                owner,
                replicated,
            } => {
                let _ = self.owners.insert(id, *owner);
                if replicated {
                    let _ = self.replicas.insert(id);
                    round.touched.push(id);
                }
                self.schedule(id, i64::MIN);
            }
            Message::Raft { id, message } => {
                if let Some(replica) = self.owners.get_mut(&id).and_then(Owner::replica_mut) {
                    replica.step(message);
                    round.touched.push(id);
                }
            }
            Message::Command { id, command } => {
                // A command for a partition gone or going is dropped: its caller hears
                // NOT_LEADER_OR_FOLLOWER.
                let Some(owner) = self.owners.get_mut(&id).filter(|o| !o.closing) else {
                    return;
                };
                if let Some(waiting) = owner.handle(command) {
                    round.waiting.push((id, waiting));
                }
                round.touched.push(id);
            }
            Message::Close { id, delete, done } => {
                if let Some(owner) = self.owners.get_mut(&id) {
                    owner.closing = true;
                }
                round.closes.push((id, delete, done));
            }
            Message::Stop => {}
        }
    }

    /// The end of a round: one fsync per partition with `acks=all` batches waiting (group
    /// commit, batched across the thread's partitions), their answers, then the closes.
    fn finish(&mut self, round: Round) {
        let mut outcome: HashMap<u64, Result<(), ErrorCode>> = HashMap::new();
        let mut asked = HashSet::new();
        let mut syncs = Vec::new();
        let mut touched = round.touched;
        touched.sort_unstable();
        touched.dedup();
        // Replicas write their Ready first, so their fsyncs join this round's.
        let mut writings: Vec<(u64, Writing)> = Vec::new();
        for id in &touched {
            if !self.replicas.contains(id) {
                continue;
            }
            let Some(owner) = self.owners.get_mut(id) else {
                continue;
            };
            if let Some(writing) = owner.begin_ready() {
                if writing.needs_sync && asked.insert(*id) {
                    match owner.begin_sync() {
                        Ok(Some(pending)) => syncs.push((*id, pending)),
                        Ok(None) => {
                            let _ = outcome.insert(*id, Ok(()));
                        }
                        Err(code) => {
                            let _ = outcome.insert(*id, Err(code));
                        }
                    }
                }
                writings.push((*id, writing));
            }
        }
        for (id, _) in &round.waiting {
            if !asked.insert(*id) {
                continue;
            }
            let begun = self
                .owners
                .get_mut(id)
                .map_or(Err(ErrorCode::NotLeaderOrFollower), Owner::begin_sync);
            match begun {
                Ok(Some(pending)) => syncs.push((*id, pending)),
                Ok(None) => {
                    let _ = outcome.insert(*id, Ok(()));
                }
                Err(code) => {
                    let _ = outcome.insert(*id, Err(code));
                }
            }
        }
        for (id, pending, result, took) in self.syncs.run_all(syncs) {
            let ended = self
                .owners
                .get_mut(&id)
                .map_or(Err(ErrorCode::NotLeaderOrFollower), |owner| {
                    owner.end_sync(pending, result, took)
                });
            let _ = outcome.insert(id, ended);
        }
        for (id, writing) in writings {
            let synced = if writing.needs_sync {
                outcome
                    .get(&id)
                    .copied()
                    .unwrap_or(Err(ErrorCode::KafkaStorageError))
            } else {
                Ok(())
            };
            if let Some(owner) = self.owners.get_mut(&id) {
                owner.end_ready(writing, synced);
                if owner.replica_mut().is_some_and(|r| r.has_ready()) {
                    let _ = self.unready.insert(id);
                }
            }
        }
        for (id, (reply, info)) in round.waiting {
            // No outcome only if an fsync thread died with the fsync: not known durable.
            let result = outcome
                .get(&id)
                .copied()
                .unwrap_or(Err(ErrorCode::KafkaStorageError));
            let _ = reply.send(result.map(|()| info));
        }
        for id in touched {
            self.schedule(id, i64::MIN);
        }
        for (id, delete, done) in round.closes {
            let _ = self.replicas.remove(&id);
            let _ = self.unready.remove(&id);
            if let Some(owner) = self.owners.remove(&id) {
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
        let tick = (!self.replicas.is_empty())
            .then(|| self.next_tick.saturating_duration_since(Instant::now()));
        let Some(Reverse((at, _))) = self.deadlines.peek() else {
            return tick;
        };
        let wait = at.saturating_sub(now_ms()).max(0);
        let wait = Duration::from_millis(u64::try_from(wait).unwrap_or(0));
        Some(tick.map_or(wait, |tick| tick.min(wait)))
    }

    /// Ticks every replica's Raft clock once its tick is due; they take part in the round.
    fn tick_replicas(&mut self, round: &mut Round) {
        let now = Instant::now();
        if self.replicas.is_empty() || now < self.next_tick {
            return;
        }
        self.next_tick = (self.next_tick + replica::TICK).max(now);
        for id in &self.replicas {
            if let Some(replica) = self.owners.get_mut(id).and_then(Owner::replica_mut) {
                replica.tick(now);
                round.touched.push(*id);
            }
        }
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

/// An fsync done, for the partition `id`: its outcome and how long it took.
type SyncDone = (u64, PendingSync, Result<(), LogError>, Duration);

/// The fixed pool that runs a round's fsyncs side by side.
#[derive(Clone)]
struct SyncPool(BlockingPool);

impl SyncPool {
    fn start() -> std::io::Result<(Self, Vec<JoinHandle<()>>)> {
        let (pool, threads) = BlockingPool::start("rill-fsync", SYNC_THREADS)?;
        Ok((Self(pool), threads))
    }

    /// Runs every fsync, at the same time, and returns them all done: one on this thread, the
    /// others on the pool.
    fn run_all(&self, syncs: Vec<(u64, PendingSync)>) -> Vec<SyncDone> {
        let mut syncs = syncs.into_iter();
        let here = syncs.next();
        let (tx, rx) = mpsc::channel();
        let mut sent = 0usize;
        for (id, pending) in syncs {
            let tx = tx.clone();
            self.0.run(move || {
                let _ = tx.send(fsync(id, pending));
            });
            sent += 1;
        }
        drop(tx);
        let mut done: Vec<SyncDone> = here
            .map(|(id, pending)| fsync(id, pending))
            .into_iter()
            .collect();
        done.extend(rx.iter().take(sent));
        done
    }
}

fn fsync(id: u64, pending: PendingSync) -> SyncDone {
    let started = Instant::now();
    let result = pending.run();
    (id, pending, result, started.elapsed())
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
        let storage = Storage::start(1, 4, Duration::from_millis(50), Arc::default())?;
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
                .map(|p| batch(round).map(|b| p.append(b, true, true, false)))
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
