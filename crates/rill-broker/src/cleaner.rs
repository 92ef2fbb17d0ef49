//! The log cleaner: threads of their own (`log.cleaner.threads`) that compact the logs of
//! topics whose `cleanup.policy` includes `compact`, off the produce path.
//!
//! Each thread picks the dirtiest log (its dirty share of sealed bytes at least the topic's
//! `min.cleanable.dirty.ratio`, or a dirty record older than `max.compaction.lag.ms`, or a
//! tombstone past `delete.retention.ms`), asks the partition's owner what it may clean (the
//! sealed segments below the last stable offset, older than `min.compaction.lag.ms`), builds
//! the key map and writes each cleaned segment beside the old ones (`rill_log::cleaner`), then
//! has the owner swap each one in. Reads go through one throttle shared by the threads
//! (`log.cleaner.io.max.bytes.per.second`); the key maps share `log.cleaner.dedupe.buffer.size`.
//! Every replica of a replicated partition cleans its own log, keeping every batch (empty if
//! need be), since its Raft entries are its batches.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus::{IntCounter, IntCounterVec, Opts};
use rill_log::cleaner::{build_map, clean_group, groups};
use rill_log::{CleanRules, OffsetMap, Pass, SealedSegment, Throttle};
use rill_protocol::ErrorCode;

use crate::broker::{Broker, Topic};
use crate::config::CleanerConfig;
use crate::partition::{CleanPlan, Partition, now_ms};

/// How often a sleeping thread checks whether the broker is stopping.
const STOP_CHECK: Duration = Duration::from_millis(100);

/// What the cleaner knows of one log, for `/metrics` and its own choices.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LogState {
    /// Dirty bytes over sealed bytes (those old enough to clean), at the last look.
    pub(crate) dirty_ratio: f64,
    /// When a pass last finished here (ms), 0 if never.
    pub(crate) last_clean_ms: i64,
    /// When the oldest tombstone the last pass kept may go (ms), if it kept one.
    pub(crate) tombstones_due_ms: Option<i64>,
}

/// The counters of every pass.
#[derive(Debug, Clone)]
pub(crate) struct CleanerMetrics {
    pub(crate) runs: IntCounterVec,
    pub(crate) bytes_read: IntCounter,
    pub(crate) bytes_written: IntCounter,
    pub(crate) records_removed: IntCounter,
}

impl CleanerMetrics {
    pub(crate) fn new() -> Result<Self, prometheus::Error> {
        Ok(Self {
            runs: IntCounterVec::new(
                Opts::new(
                    "rill_cleaner_runs_total",
                    "Log cleaner passes, by how they ended (done, aborted, failed)",
                ),
                &["result"],
            )?,
            bytes_read: IntCounter::new(
                "rill_cleaner_bytes_read_total",
                "Bytes the log cleaner read from segments it cleaned",
            )?,
            bytes_written: IntCounter::new(
                "rill_cleaner_bytes_written_total",
                "Bytes of cleaned segments the log cleaner wrote",
            )?,
            records_removed: IntCounter::new(
                "rill_cleaner_records_removed_total",
                "Records the log cleaner removed (superseded, keyless, aborted, expired \
                 tombstones)",
            )?,
        })
    }

    pub(crate) fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![
            Box::new(self.runs.clone()),
            Box::new(self.bytes_read.clone()),
            Box::new(self.bytes_written.clone()),
            Box::new(self.records_removed.clone()),
        ]
    }
}

/// The cleaner's shared state.
#[derive(Debug)]
pub(crate) struct Cleaner {
    config: CleanerConfig,
    throttle: Throttle,
    /// Per log (topic, partition).
    logs: Mutex<HashMap<(String, i32), LogState>>,
    /// The logs a thread is cleaning now.
    busy: Mutex<HashSet<(String, i32)>>,
    pub(crate) metrics: CleanerMetrics,
}

impl Cleaner {
    pub(crate) fn new(config: CleanerConfig, metrics: CleanerMetrics) -> Self {
        Self {
            throttle: Throttle::new(config.io_max_bytes_per_second),
            config,
            logs: Mutex::new(HashMap::new()),
            busy: Mutex::new(HashSet::new()),
            metrics,
        }
    }

    /// What the cleaner knows of each log, for `/metrics`.
    pub(crate) fn states(&self) -> Vec<((String, i32), LogState)> {
        self.logs
            .lock()
            .map(|logs| logs.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default()
    }

    fn update(&self, key: &(String, i32), change: impl FnOnce(&mut LogState)) {
        if let Ok(mut logs) = self.logs.lock() {
            change(logs.entry(key.clone()).or_default());
        }
    }

    /// One log's dirty ratio as the cleaner last saw it; `None` if it has not looked yet.
    pub(crate) fn dirty_ratio(&self, key: &(String, i32)) -> Option<f64> {
        let logs = self.logs.lock().ok()?;
        logs.get(key).map(|s| s.dirty_ratio)
    }

    fn state(&self, key: &(String, i32)) -> LogState {
        self.logs
            .lock()
            .ok()
            .and_then(|logs| logs.get(key).copied())
            .unwrap_or_default()
    }
}

/// Starts the cleaner's threads, which run until the broker stops.
pub(crate) fn start(broker: &Arc<Broker>) {
    let config = &broker.cleaner.config;
    if !config.enable {
        return;
    }
    for n in 0..config.threads {
        let broker = broker.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("rill-cleaner-{n}"))
            .spawn(move || run(&broker));
        if let Err(err) = spawned {
            tracing::error!(%err, "starting a log cleaner thread");
        }
    }
}

/// Moves the calling thread (Linux schedules threads, not processes) to `SCHED_IDLE`: a pass
/// is CPU-bound (it hashes every key) and takes only the CPU the storage and network threads
/// leave, which any of them gets back the moment it wakes, so produce and fetch latency beside
/// a pass stay close to what they are without it. A nice value is not enough: a niced thread
/// still holds a core until its slice ends.
#[cfg(target_os = "linux")]
fn lower_priority() {
    let param = libc::sched_param { sched_priority: 0 };
    #[expect(unsafe_code, reason = "libc has no safe sched_setscheduler")]
    // SAFETY: `param` lives across the call, which only reads it; pid 0 is the calling thread.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    if rc != 0 {
        tracing::debug!(err = %std::io::Error::last_os_error(), "lowering the cleaner's priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

fn run(broker: &Broker) {
    lower_priority();
    let cleaner = &broker.cleaner;
    let budget = cleaner.config.dedupe_buffer_size / cleaner.config.threads.max(1);
    while !broker.stopping.is_cancelled() {
        match pick(broker) {
            Some(job) => {
                let key = job.key.clone();
                let result = clean(broker, &job, budget);
                if let Ok(mut busy) = cleaner.busy.lock() {
                    let _ = busy.remove(&key);
                }
                let label = match result {
                    Ok(true) => "done",
                    Ok(false) => "aborted",
                    Err(err) => {
                        tracing::warn!(topic = key.0, partition = key.1, %err, "a log cleaning pass failed");
                        "failed"
                    }
                };
                cleaner.metrics.runs.with_label_values(&[label]).inc();
            }
            None => {
                let mut slept = Duration::ZERO;
                while slept < cleaner.config.backoff && !broker.stopping.is_cancelled() {
                    std::thread::sleep(STOP_CHECK);
                    slept += STOP_CHECK;
                }
            }
        }
    }
}

/// One log to clean, and what its owner said may be cleaned.
struct Job {
    key: (String, i32),
    partition: Arc<Partition>,
    topic: Arc<Topic>,
    plan: CleanPlan,
    /// The segments old enough to clean (`min.compaction.lag.ms`).
    cleanable: Vec<SealedSegment>,
}

/// The dirtiest log that needs cleaning, marked busy.
fn pick(broker: &Broker) -> Option<Job> {
    let cleaner = &broker.cleaner;
    let now = now_ms();
    let mut best: Option<(f64, Job)> = None;
    for topic in broker.all_topics() {
        if !topic.config.cleanup.compact {
            continue;
        }
        let compaction = topic.config.compaction;
        for partition in &topic.held {
            let Some(partition) = partition else { continue };
            let key = (topic.name.clone(), partition.index);
            if cleaner.busy.lock().is_ok_and(|b| b.contains(&key)) {
                continue;
            }
            let Ok(plan) = partition.clean_plan_blocking() else {
                continue;
            };
            let newest = now.saturating_sub(compaction.min_lag_ms);
            let cleanable: Vec<SealedSegment> = plan
                .segments
                .iter()
                .take_while(|s| s.max_timestamp <= newest)
                .copied()
                .collect();
            let (mut clean, mut dirty) = (0u64, 0u64);
            let mut oldest_dirty = i64::MAX;
            for segment in &cleanable {
                if segment.next_offset <= plan.cleaned_to {
                    clean += segment.size;
                } else {
                    dirty += segment.size;
                    oldest_dirty = oldest_dirty.min(segment.max_timestamp);
                }
            }
            let ratio = if clean + dirty == 0 {
                0.0
            } else {
                dirty as f64 / (clean + dirty) as f64
            };
            let state = cleaner.state(&key);
            cleaner.update(&key, |s| s.dirty_ratio = ratio);
            let overdue = dirty > 0
                && compaction.max_lag_ms < i64::MAX
                && oldest_dirty < now.saturating_sub(compaction.max_lag_ms);
            let tombstones_due = state.tombstones_due_ms.is_some_and(|due| due <= now);
            let wanted = (dirty > 0 && ratio >= compaction.min_dirty_ratio) || overdue;
            if !(wanted || tombstones_due) || cleanable.is_empty() {
                continue;
            }
            // Overdue logs and expired tombstones first, then the dirtiest.
            let score = if overdue || tombstones_due {
                2.0 + ratio
            } else {
                ratio
            };
            if best.as_ref().is_none_or(|(b, _)| score > *b) {
                best = Some((
                    score,
                    Job {
                        key,
                        partition: partition.clone(),
                        topic: topic.clone(),
                        plan,
                        cleanable,
                    },
                ));
            }
        }
    }
    let (_, job) = best?;
    let fresh = cleaner
        .busy
        .lock()
        .is_ok_and(|mut busy| busy.insert(job.key.clone()));
    fresh.then_some(job)
}

/// One pass over a log: `Ok(false)` when it stopped early (the log changed under it, or the
/// broker is stopping).
fn clean(broker: &Broker, job: &Job, budget: usize) -> Result<bool, String> {
    let cleaner = &broker.cleaner;
    let plan = &job.plan;
    let compaction = job.topic.config.compaction;
    let now = now_ms();
    // Counted as they go (a pass may take minutes): what was read (the throttle sees every
    // read), written and removed since the last update.
    let mut read_so_far = cleaner.throttle.total();
    let mut counted = rill_log::CleanStats::default();
    let count = |pass: &Pass, read_so_far: &mut u64, counted: &mut rill_log::CleanStats| {
        let total = cleaner.throttle.total();
        cleaner
            .metrics
            .bytes_read
            .inc_by(total.saturating_sub(*read_so_far));
        *read_so_far = total;
        let stats = pass.stats;
        cleaner
            .metrics
            .bytes_written
            .inc_by(stats.bytes_written.saturating_sub(counted.bytes_written));
        cleaner.metrics.records_removed.inc_by(
            stats
                .records_dropped
                .saturating_sub(counted.records_dropped),
        );
        *counted = stats;
    };
    let mut map = OffsetMap::with_budget(budget);
    let built = build_map(
        &plan.dir,
        &job.cleanable,
        plan.cleaned_to,
        &plan.aborted,
        &mut map,
        &cleaner.throttle,
    );
    let mut pass = Pass::default();
    count(&pass, &mut read_so_far, &mut counted);
    let map_end = built.map_err(|e| e.to_string())?;
    let rules = CleanRules {
        now_ms: now,
        delete_retention_ms: compaction.delete_retention_ms,
        map_end,
        retain: plan.retain.clone(),
        aborted: plan.aborted.clone(),
        keep_every_batch: plan.keep_every_batch,
        span_breaks: plan.span_breaks.clone(),
        index_interval: plan.index_interval,
    };
    let in_pass: Vec<SealedSegment> = job
        .cleanable
        .iter()
        .filter(|s| s.base_offset < map_end)
        .copied()
        .collect();
    let mut completed = true;
    for group in groups(&in_pass, plan.segment_bytes) {
        if broker.stopping.is_cancelled() {
            completed = false;
            break;
        }
        let cleaning = clean_group(
            &plan.dir,
            &group,
            &map,
            &rules,
            &cleaner.throttle,
            &mut pass,
        );
        count(&pass, &mut read_so_far, &mut counted);
        let cleaned = match cleaning {
            Ok(Some(cleaned)) => cleaned,
            Ok(None) => continue,
            Err(err) => {
                if let Some(first) = group.first() {
                    let _ = rill_log::cleaner::discard_at(&plan.dir, first.base_offset);
                }
                return Err(err.to_string());
            }
        };
        match job.partition.swap_cleaned_blocking(cleaned) {
            Ok(true) => {}
            Ok(false) | Err(_) => {
                completed = false;
                break;
            }
        }
    }
    let stats = pass.stats;
    if !completed {
        return Ok(false);
    }
    match job.partition.cleaned_to_blocking(map_end) {
        Ok(()) => {}
        Err(ErrorCode::NotLeaderOrFollower) => return Ok(false),
        Err(code) => return Err(code.name().to_owned()),
    }
    let tombstones_due = (stats.next_horizon_ms < i64::MAX).then_some(stats.next_horizon_ms);
    cleaner.update(&job.key, |s| {
        s.last_clean_ms = now_ms();
        s.tombstones_due_ms = tombstones_due;
    });
    tracing::debug!(
        topic = job.key.0,
        partition = job.key.1,
        map_end,
        keys = map.len(),
        read = stats.bytes_read,
        written = stats.bytes_written,
        removed = stats.records_dropped,
        "cleaned a log"
    );
    Ok(true)
}
