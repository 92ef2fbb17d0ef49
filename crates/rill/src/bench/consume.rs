//! `rill bench consume`, and the readers `e2e` runs.
//!
//! One [`PartitionConsumer`] per partition, each drained by a task of its own that takes a
//! fetch's records at once ([`PartitionConsumer::next_chunk`]) and reads the clock once per
//! chunk: its records became available together. The tasks share a few atomics, touched once
//! per chunk: the count of records read (to stop after `--records`, or after what e2e's
//! producers had acknowledged), the warm-up left, and progress for the idle watchdog.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use rill_client::{Consumer, ConsumerConfig, ConsumerRecord, Offset, PartitionConsumer};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::args::{ConsumeArgs, Stop, Warmup, warmup_text};
use super::report::{Outcome, live};
use super::stats::{Recorder, SecondReport, Templates, Totals, WARM_BIT};
use super::{Clock, progress, setup};

pub(super) async fn run(args: ConsumeArgs) -> anyhow::Result<Outcome> {
    args.validate()?;
    let stop = args.length.stop(None)?;
    let admin = setup::connect(&args.bootstrap.client_config()?).await?;
    let topic = args.topic.clone();
    let partitions = setup::existing_partitions(&admin, &topic).await?;
    let mut config = ConsumerConfig::new(admin.cluster().config().clone());
    config.max_partition_fetch_bytes = args.fetch_size;
    let consumer = Consumer::with_cluster(config, Arc::clone(admin.cluster()))?;
    let from = if args.from == "end" {
        Offset::Newest
    } else {
        Offset::Oldest
    };
    // Where each partition starts and, when catching up, ends.
    let mut plan = Vec::with_capacity(partitions.len());
    for &partition in &partitions {
        let start = consumer
            .resolve_offset(&topic, partition, from)
            .await
            .with_context(|| format!("start offset of '{topic}' partition {partition}"))?;
        let end = match stop {
            Some(_) => None,
            None => Some(
                consumer
                    .resolve_offset(&topic, partition, Offset::Newest)
                    .await
                    .with_context(|| format!("end offset of '{topic}' partition {partition}"))?,
            ),
        };
        plan.push((partition, start, end));
    }
    let expected: i64 = plan
        .iter()
        .map(|&(_, start, end)| end.map_or(0, |end| (end - start).max(0)))
        .sum();
    if stop.is_none() && expected == 0 {
        bail!(
            "topic '{topic}' has no records from the {} to its end: nothing to catch up with \
             (--records or --duration wait for new ones)",
            args.from
        );
    }

    let templates = Templates::new()?;
    let (reports, series) = mpsc::unbounded_channel();
    let clock = Clock::start();
    let reporter = progress::spawn(clock, live(&args.output), series);
    let shared = Shared::new(match stop {
        Some(Stop::Records(n)) => n.saturating_add(match args.warmup {
            Some(Warmup::Records(w)) => w,
            _ => 0,
        }),
        _ => u64::MAX,
    });
    let readers = Readers {
        shared: Arc::clone(&shared),
        clock,
        templates: templates.clone(),
        reports: reports.clone(),
        latency: Latency::Age,
        warmup: args.warmup,
        counted: matches!(stop, Some(Stop::Records(_))),
    };
    drop(reports);
    let mut handles = Vec::with_capacity(plan.len());
    for (partition, start, end) in plan {
        if end.is_some_and(|end| start >= end) {
            continue;
        }
        let pc = consumer
            .consume_partition(&topic, partition, Offset::At(start))
            .await
            .with_context(|| format!("reading '{topic}' partition {partition}"))?;
        handles.push(readers.spawn(pc, end));
    }
    drop(readers);
    let warm_timer = shared.start_warmup(args.warmup, clock);
    let stop_timer = match stop {
        Some(Stop::Time(d)) => Some(shared.stop_after(d)),
        _ => None,
    };
    // A timed run may be quiet, except while it waits for warm-up records to arrive.
    let watchdog = match stop {
        Some(Stop::Time(_)) => matches!(args.warmup, Some(Warmup::Records(_)))
            .then(|| shared.watchdog(args.idle_timeout, true)),
        _ => Some(shared.watchdog(args.idle_timeout, false)),
    };

    let (mut totals, failure) = join_readers(handles, &shared, &templates).await?;
    for task in [warm_timer, stop_timer, watchdog].into_iter().flatten() {
        task.abort();
    }
    let series = reporter.await.context("the reporter failed")?;
    if let Some(err) = failure {
        return Err(err);
    }
    if shared.idle.load(Ordering::Relaxed) {
        let read = shared.read_so_far();
        let wanted = match stop {
            Some(Stop::Records(n)) => format!("of {n}"),
            Some(Stop::Time(_)) => "and the warm-up needs more".to_owned(),
            None => format!("of {expected}"),
        };
        bail!(
            "no record arrived for {}: read {read} {wanted}",
            humantime::format_duration(args.idle_timeout),
        );
    }
    // The measured part begins when the warm-up ends (or the run starts), not at a send.
    totals.first_ns = Some(shared.warm_end_ns().min(totals.last_ns));
    Ok(Outcome {
        mode: "consume",
        latency: "record age when read (now minus its timestamp, ms resolution)",
        topic,
        totals,
        series,
        settings: json!({
            "bootstrap": args.bootstrap.brokers.join(","),
            "from": args.from,
            "records": match stop { Some(Stop::Records(n)) => Some(n), _ => None },
            "duration_s": match stop { Some(Stop::Time(d)) => Some(d.as_secs_f64()), _ => None },
            "catch_up_records": stop.is_none().then_some(expected),
            "warmup": warmup_text(args.warmup),
            "partitions": partitions.len(),
            "fetch_size": args.fetch_size,
        }),
    })
}

/// What the reader tasks share, each touched once per chunk.
#[derive(Debug)]
pub(super) struct Shared {
    /// Records read by every reader (kept when `counted`).
    read: AtomicU64,
    /// Stop once `read` reaches this; `u64::MAX` while unknown.
    target: AtomicU64,
    /// Ends every reader.
    pub(super) stop: CancellationToken,
    /// Warm-up records still to read (`--warmup N` of consume).
    warm_left: AtomicU64,
    /// When the warm-up ended (ns since the start); `u64::MAX` until it has.
    warm_end: AtomicU64,
    /// Records seen, for the watchdog.
    progress: AtomicU64,
    /// The watchdog stopped the run.
    idle: AtomicBool,
}

impl Shared {
    pub(super) fn new(target: u64) -> Arc<Self> {
        Arc::new(Self {
            read: AtomicU64::new(0),
            target: AtomicU64::new(target),
            stop: CancellationToken::new(),
            warm_left: AtomicU64::new(0),
            warm_end: AtomicU64::new(u64::MAX),
            progress: AtomicU64::new(0),
            idle: AtomicBool::new(false),
        })
    }

    /// Sets the number of records to read (e2e: what the producers had acknowledged) and
    /// stops at once if they are all in.
    pub(super) fn set_target(&self, target: u64) {
        self.target.store(target, Ordering::SeqCst);
        if self.read.load(Ordering::SeqCst) >= target {
            self.stop.cancel();
        }
    }

    /// Records read so far, by every reader.
    pub(super) fn read_so_far(&self) -> u64 {
        self.progress.load(Ordering::Relaxed)
    }

    pub(super) fn idle(&self) -> bool {
        self.idle.load(Ordering::Relaxed)
    }

    fn warm_end_ns(&self) -> u64 {
        match self.warm_end.load(Ordering::Relaxed) {
            u64::MAX => 0,
            at => at,
        }
    }

    /// Consume's warm-up: by count (the readers end it) or time (a timer does).
    fn start_warmup(
        self: &Arc<Self>,
        warmup: Option<Warmup>,
        clock: Clock,
    ) -> Option<JoinHandle<()>> {
        match warmup {
            None => {
                self.warm_end.store(0, Ordering::Relaxed);
                None
            }
            Some(Warmup::Records(n)) => {
                self.warm_left.store(n, Ordering::Relaxed);
                if n == 0 {
                    self.warm_end.store(0, Ordering::Relaxed);
                }
                None
            }
            Some(Warmup::Time(d)) => {
                let shared = Arc::clone(self);
                Some(tokio::spawn(async move {
                    tokio::time::sleep(d).await;
                    shared.warm_end.store(clock.now_ns(), Ordering::Relaxed);
                }))
            }
        }
    }

    /// Stops the readers `d` after the warm-up ended.
    fn stop_after(self: &Arc<Self>, d: Duration) -> JoinHandle<()> {
        let shared = Arc::clone(self);
        tokio::spawn(async move {
            while shared.warm_end.load(Ordering::Relaxed) == u64::MAX {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            tokio::time::sleep(d).await;
            shared.stop.cancel();
        })
    }

    /// Stops the readers, marking the run idle, when nothing arrives for `limit` (only
    /// until the warm-up is over, with `warmup_only`).
    pub(super) fn watchdog(self: &Arc<Self>, limit: Duration, warmup_only: bool) -> JoinHandle<()> {
        let shared = Arc::clone(self);
        tokio::spawn(async move {
            let step = limit.min(Duration::from_millis(250));
            let mut seen = shared.progress.load(Ordering::Relaxed);
            let mut quiet = Duration::ZERO;
            loop {
                tokio::time::sleep(step).await;
                if warmup_only && shared.warm_end.load(Ordering::Relaxed) != u64::MAX {
                    return;
                }
                let now = shared.progress.load(Ordering::Relaxed);
                if now == seen {
                    quiet += step;
                    if quiet >= limit {
                        shared.idle.store(true, Ordering::Relaxed);
                        shared.stop.cancel();
                        return;
                    }
                } else {
                    (seen, quiet) = (now, Duration::ZERO);
                }
            }
        })
    }
}

/// What a record's latency is.
#[derive(Debug, Clone, Copy)]
pub(super) enum Latency {
    /// Now minus the record's timestamp (wall clock, milliseconds).
    Age,
    /// Now minus the send instant in the value's first 8 bytes (e2e).
    Stamp,
}

/// Waits for every reader: their totals merged, and the first reader's failure (which stops
/// the others).
pub(super) async fn join_readers(
    handles: Vec<JoinHandle<anyhow::Result<Totals>>>,
    shared: &Shared,
    templates: &Templates,
) -> anyhow::Result<(Totals, Option<anyhow::Error>)> {
    let mut totals = Totals::new(templates);
    let mut failure = None;
    for handle in handles {
        match handle.await.context("a reader task failed")? {
            Ok(part) => totals.merge(&part),
            Err(err) => {
                shared.stop.cancel();
                let _ = failure.get_or_insert(err);
            }
        }
    }
    Ok((totals, failure))
}

/// How the reader tasks are made.
#[derive(Debug)]
pub(super) struct Readers {
    pub(super) shared: Arc<Shared>,
    pub(super) clock: Clock,
    pub(super) templates: Templates,
    pub(super) reports: mpsc::UnboundedSender<SecondReport>,
    pub(super) latency: Latency,
    /// Consume's warm-up (e2e's is marked in each value).
    pub(super) warmup: Option<Warmup>,
    /// Count reads against the shared target.
    pub(super) counted: bool,
}

impl Readers {
    /// A task reading `pc` until the shared stop, or up to offset `end` (exclusive).
    pub(super) fn spawn(
        &self,
        pc: PartitionConsumer,
        end: Option<i64>,
    ) -> JoinHandle<anyhow::Result<Totals>> {
        let reader = Reader {
            shared: Arc::clone(&self.shared),
            clock: self.clock,
            recorder: Recorder::new(&self.templates, self.reports.clone()),
            latency: self.latency,
            warm_time: match self.warmup {
                Some(Warmup::Time(d)) => Some(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
                _ => None,
            },
            warm_records: matches!(self.warmup, Some(Warmup::Records(_))),
            counted: self.counted,
            end,
        };
        tokio::spawn(reader.run(pc))
    }
}

struct Reader {
    shared: Arc<Shared>,
    clock: Clock,
    recorder: Recorder,
    latency: Latency,
    warm_time: Option<u64>,
    /// Still taking from the shared warm-up count.
    warm_records: bool,
    counted: bool,
    end: Option<i64>,
}

impl Reader {
    async fn run(mut self, mut pc: PartitionConsumer) -> anyhow::Result<Totals> {
        let mut tick = tokio::time::interval(progress::TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            // The select below prefers records; a reader that always has one ready must
            // still notice the stop.
            if self.shared.stop.is_cancelled() {
                break;
            }
            let chunk = tokio::select! {
                biased;
                chunk = pc.next_chunk() => chunk,
                () = self.shared.stop.cancelled() => break,
                _ = tick.tick() => {
                    self.recorder.roll(self.clock.now_ns());
                    // Caught up with nothing more to read: the last offsets before the end
                    // hold a transaction marker, which no chunk brings.
                    if self.end.is_some_and(|end| pc.position() >= end) {
                        break;
                    }
                    continue;
                }
            };
            let chunk = match chunk {
                Some(Ok(chunk)) => chunk,
                Some(Err(err)) => {
                    return Err(err).with_context(|| {
                        format!("reading '{}' partition {}", pc.topic(), pc.partition())
                    });
                }
                None => bail!(
                    "the consumer of '{}' partition {} ended early",
                    pc.topic(),
                    pc.partition()
                ),
            };
            let now = self.clock.now_ns();
            let mut records = chunk.as_slice();
            let mut done = false;
            if let Some(end) = self.end {
                let keep = records.partition_point(|r| r.offset < end);
                records = records.get(..keep).unwrap_or_default();
                done = records.last().is_some_and(|r| r.offset + 1 >= end)
                    || keep < chunk.len()
                    || pc.position() >= end;
            }
            let n = records.len() as u64;
            let _ = self.shared.progress.fetch_add(n, Ordering::Relaxed);
            if self.counted {
                let before = self.shared.read.fetch_add(n, Ordering::SeqCst);
                let target = self.shared.target.load(Ordering::SeqCst);
                let take = target.saturating_sub(before).min(n);
                records = records.get(..take as usize).unwrap_or_default();
                if before + n >= target {
                    self.shared.stop.cancel();
                    done = true;
                }
            }
            self.measure(now, records);
            if done {
                break;
            }
        }
        Ok(self.recorder.finish())
    }

    fn measure(&mut self, now: u64, records: &[ConsumerRecord]) {
        match self.latency {
            Latency::Stamp => {
                for record in records {
                    let bytes = value_len(record);
                    let Some(stamp) = record
                        .value
                        .as_ref()
                        .and_then(|v| v.get(..8))
                        .and_then(|b| <[u8; 8]>::try_from(b).ok())
                        .map(u64::from_le_bytes)
                    else {
                        self.recorder.error(format_args!(
                            "record at offset {} of partition {} has no send instant: \
                             was the topic written by another producer too?",
                            record.offset, record.partition
                        ));
                        continue;
                    };
                    let sent = stamp & !WARM_BIT;
                    let latency = now.saturating_sub(sent);
                    let warm = stamp & WARM_BIT != 0;
                    self.recorder
                        .records(now, sent, bytes, 1, warm, std::iter::once(latency));
                }
            }
            Latency::Age => {
                let warm = self.warm_count(now, records.len() as u64) as usize;
                let (warm_part, measured) = records.split_at(warm.min(records.len()));
                let now_ms = wall_ms();
                for (part, warm) in [(warm_part, true), (measured, false)] {
                    if part.is_empty() {
                        continue;
                    }
                    let bytes = part.iter().map(value_len).sum();
                    // A timestamp from the future (clock skew) is age 0.
                    let ages = part.iter().map(|r| {
                        u64::try_from(now_ms.saturating_sub(r.timestamp))
                            .unwrap_or(0)
                            .saturating_mul(1_000_000)
                    });
                    self.recorder
                        .records(now, now, bytes, part.len() as u64, warm, ages);
                }
            }
        }
    }

    /// How many of `n` records read at `now` belong to consume's warm-up.
    fn warm_count(&mut self, now: u64, n: u64) -> u64 {
        if let Some(until) = self.warm_time {
            return if now < until { n } else { 0 };
        }
        if !self.warm_records {
            return 0;
        }
        let left = &self.shared.warm_left;
        match left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |l| {
            (l > 0).then(|| l.saturating_sub(n))
        }) {
            Ok(before) => {
                let taken = before.min(n);
                if taken == before {
                    // This chunk finished the warm-up.
                    self.shared.warm_end.store(now, Ordering::Relaxed);
                    self.warm_records = false;
                }
                taken
            }
            Err(_) => {
                self.warm_records = false;
                0
            }
        }
    }
}

fn value_len(record: &ConsumerRecord) -> u64 {
    record.value.as_ref().map_or(0, |v| v.len() as u64)
}

/// Milliseconds since the epoch, as record timestamps are.
fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
