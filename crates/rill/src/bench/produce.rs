//! `rill bench produce`, and the producers `e2e` runs.
//!
//! Each of `--producers` producers is an [`AsyncProducer`] with a client of its own, fed by a
//! sending task and drained by a measuring task. Every record carries its send instant (and
//! whether it belongs to the warm-up) in its [`tag`](ProducerRecord::tag), which comes back
//! with its acknowledgement: latency is the acknowledgement instant minus that, with nothing
//! shared between tasks and no per-record allocation of the bench's own (the value is one
//! shared buffer). For `e2e` the value carries the same instant in its first 8 bytes.
//!
//! # Pacing (`--rate`)
//! Record `k` of the run is due `k / rate` seconds after the start, producers taking turns.
//! The sending task sleeps until a record is due, then sends every record that is due. Its
//! latency counts from when it was due, so time a send spent blocked (the producer's queue
//! full because the broker is slow) counts, for that record and for every record due
//! meanwhile: a stall cannot hide behind the records it kept from being sent. The one
//! exception is the sender's own oversleeping: tokio's timer wakes up to a millisecond late,
//! and a record due while it overslept counts from the wake-up, since the system under test
//! did not delay it.

use std::sync::Arc;

use anyhow::Context as _;
use bytes::{Bytes, BytesMut};
use rill_client::{AsyncProducer, ProducerConfig, ProducerRecord};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::args::{
    DEFAULT_DURATION, ProduceArgs, Stop, Warmup, acks_text, compression_text, warmup_text,
};
use super::report::{Outcome, live};
use super::stats::{Recorder, SecondReport, Templates, Totals, WARM_BIT};
use super::{Clock, progress, setup};

pub(super) async fn run(args: ProduceArgs) -> anyhow::Result<Outcome> {
    args.validate(false)?;
    let admin = setup::connect(&args.bootstrap.client_config()?).await?;
    let topic = args.topic.clone().unwrap_or_else(setup::fresh_topic);
    let partitions = setup::ensure_topic(&admin, &topic, args.producer.partitions).await?;
    let templates = Templates::new()?;
    let (reports, series) = mpsc::unbounded_channel();
    let clock = Clock::start();
    let reporter = progress::spawn(clock, live(&args.output), series);
    let fleet = Fleet::start(&args, &topic, clock, &templates, &reports, false).await?;
    drop(reports);
    let totals = fleet.finish(&templates).await?;
    let series = reporter.await.context("the reporter failed")?;
    Ok(Outcome {
        mode: "produce",
        latency: "send to acknowledgement",
        topic,
        totals,
        series,
        settings: settings(&args, partitions)?,
    })
}

/// The settings of a producing run, for the summary.
pub(super) fn settings(args: &ProduceArgs, partitions: i32) -> anyhow::Result<serde_json::Value> {
    let stop = stop(args)?;
    Ok(json!({
        "bootstrap": args.bootstrap.brokers.join(","),
        "record_size": args.load.record_size,
        "records": match stop { Stop::Records(n) => Some(n), Stop::Time(_) => None },
        "duration_s": match stop { Stop::Time(d) => Some(d.as_secs_f64()), Stop::Records(_) => None },
        "rate": args.load.rate,
        "warmup": warmup_text(args.load.warmup),
        "acks": acks_text(args.producer.acks),
        "compression": compression_text(args.producer.compression),
        "partitions": partitions,
        "producers": args.producer.producers,
        "batch_size": args.producer.batch_size,
        "linger_ms": args.producer.linger.as_secs_f64() * 1000.0,
        "idempotence": args.producer.idempotence()?,
        "transaction_size": args.producer.transaction_size()?,
    }))
}

fn stop(args: &ProduceArgs) -> anyhow::Result<Stop> {
    Ok(args
        .load
        .length
        .stop(Some(Stop::Time(DEFAULT_DURATION)))?
        .unwrap_or(Stop::Time(DEFAULT_DURATION)))
}

/// The running producers.
#[derive(Debug)]
pub(super) struct Fleet {
    senders: Vec<JoinHandle<anyhow::Result<()>>>,
    drains: Vec<JoinHandle<Totals>>,
}

impl Fleet {
    /// Starts the producers. With `e2e`, each value starts with its send instant, and the
    /// acknowledgements are only counted (the consumers measure).
    pub(super) async fn start(
        args: &ProduceArgs,
        topic: &str,
        clock: Clock,
        templates: &Templates,
        reports: &mpsc::UnboundedSender<SecondReport>,
        e2e: bool,
    ) -> anyhow::Result<Self> {
        let count = args.producer.producers;
        let stop = stop(args)?;
        let payload = payload(args.load.record_size);
        let mut config = ProducerConfig::new(args.bootstrap.client_config()?);
        config.acks = args.producer.acks;
        config.compression = args.producer.compression;
        config.batch_size = args.producer.batch_size;
        config.linger = args.producer.linger;
        config.enable_idempotence = args.producer.idempotence()?;
        config.max_request_size = config.max_request_size.max(args.load.record_size + 1024);
        let transaction_size = args.producer.transaction_size()?;
        let topic: Arc<str> = Arc::from(topic);
        let mut fleet = Self {
            senders: Vec::with_capacity(count),
            drains: Vec::with_capacity(count),
        };
        for index in 0..count {
            let mut config = config.clone();
            if transaction_size.is_some() {
                config.transactional_id = Some(format!("{topic}-txn-{index}"));
            }
            let producer =
                AsyncProducer::new(config).with_context(|| format!("starting producer {index}"))?;
            if transaction_size.is_some() {
                producer
                    .init_transactions()
                    .await
                    .with_context(|| format!("producer {index}: init_transactions"))?;
            }
            let plan = Plan {
                topic: Arc::clone(&topic),
                payload: payload.clone(),
                e2e,
                stop: share(stop, index, count),
                warmup: args.load.warmup.map(|w| match w {
                    Warmup::Records(n) => Warmup::Records(split(n, index, count)),
                    time => time,
                }),
                rate: args.load.rate,
                index: index as u64,
                producers: count as u64,
                transaction_size,
            };
            // e2e: the consumers report the seconds; the producers' go nowhere.
            let reports = if e2e {
                mpsc::unbounded_channel().0
            } else {
                reports.clone()
            };
            let recorder = Recorder::new(templates, reports);
            let record_size = args.load.record_size as u64;
            fleet.drains.push(tokio::spawn(drain(
                producer.successes().await,
                producer.errors().await,
                clock,
                recorder,
                record_size,
                !e2e,
            )));
            fleet
                .senders
                .push(tokio::spawn(send(producer, plan, clock)));
        }
        Ok(fleet)
    }

    /// Waits until every record has its outcome; the producers' totals merged.
    pub(super) async fn finish(self, templates: &Templates) -> anyhow::Result<Totals> {
        for sender in self.senders {
            sender.await.context("a producer task failed")??;
        }
        let mut totals = Totals::new(templates);
        for drain in self.drains {
            totals.merge(&drain.await.context("a producer's drain failed")?);
        }
        Ok(totals)
    }
}

/// What one producer sends.
struct Plan {
    topic: Arc<str>,
    payload: Bytes,
    e2e: bool,
    /// This producer's share of the run.
    stop: Stop,
    warmup: Option<Warmup>,
    /// Records per second of the whole run; 0 unpaced.
    rate: u64,
    index: u64,
    producers: u64,
    /// Records per transaction (`None`: no transactions).
    transaction_size: Option<u64>,
}

/// `n` split over `count` parts: part `index`'s share.
fn split(n: u64, index: usize, count: usize) -> u64 {
    let (index, count) = (index as u64, count as u64);
    n / count + u64::from(index < n % count)
}

fn share(stop: Stop, index: usize, count: usize) -> Stop {
    match stop {
        Stop::Records(n) => Stop::Records(split(n, index, count)),
        time => time,
    }
}

/// One value for every record: random capital letters, as Kafka's perf test sends, so that
/// compression has something to do without being trivial.
fn payload(size: usize) -> Bytes {
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    (0..size)
        .map(|_| rng.u8(b'A'..=b'Z'))
        .collect::<Vec<u8>>()
        .into()
}

/// The sending task: records on schedule (or as fast as the producer takes them) until the
/// plan's share is sent, then close, which waits for every outcome (and aborts a transaction
/// left open by a failure).
async fn send(producer: AsyncProducer, plan: Plan, clock: Clock) -> anyhow::Result<()> {
    let mut txn = plan
        .transaction_size
        .map(|size| Transactions { size, open: 0 });
    let mut result = send_all(&producer, &plan, clock, txn.as_mut()).await;
    if let (Ok(()), Some(txn)) = (&result, &mut txn) {
        result = txn.end(&producer).await;
    }
    producer.close().await;
    result
}

/// Where a transactional producer is in its transaction.
#[derive(Debug)]
struct Transactions {
    /// Records per transaction.
    size: u64,
    /// Records sent in the open transaction (0: none is open).
    open: u64,
}

impl Transactions {
    /// Opens a transaction if none is.
    async fn before_send(&mut self, producer: &AsyncProducer) -> anyhow::Result<()> {
        if self.open == 0 {
            producer
                .begin_transaction()
                .await
                .context("beginning a transaction")?;
        }
        Ok(())
    }

    /// Counts a record sent; commits once the transaction is full.
    async fn after_send(&mut self, producer: &AsyncProducer) -> anyhow::Result<()> {
        self.open += 1;
        if self.open >= self.size {
            self.end(producer).await?;
        }
        Ok(())
    }

    /// Commits the open transaction, if any.
    async fn end(&mut self, producer: &AsyncProducer) -> anyhow::Result<()> {
        if self.open > 0 {
            self.open = 0;
            producer
                .commit_transaction()
                .await
                .context("committing a transaction")?;
        }
        Ok(())
    }
}

async fn send_all(
    producer: &AsyncProducer,
    plan: &Plan,
    clock: Clock,
    mut txn: Option<&mut Transactions>,
) -> anyhow::Result<()> {
    let (warm_records, warm_until_ns) = match plan.warmup {
        None => (0, 0),
        Some(Warmup::Records(n)) => (n, 0),
        Some(Warmup::Time(d)) => (0, nanos(d)),
    };
    let mut arena = BytesMut::new();
    let mut sent = 0u64;
    let mut measured = 0u64;
    let mut measured_from = None;
    let mut woke = 0u64;
    loop {
        let due = if plan.rate == 0 {
            clock.now_ns()
        } else {
            // Slot `index + sent * producers` of the whole run.
            let slot = u128::from(plan.index) + u128::from(sent) * u128::from(plan.producers);
            u64::try_from(slot * 1_000_000_000 / u128::from(plan.rate)).unwrap_or(u64::MAX)
        };
        let warm = sent < warm_records || due < warm_until_ns;
        if !warm {
            let from = *measured_from.get_or_insert(due);
            let over = match plan.stop {
                Stop::Records(n) => measured >= n,
                Stop::Time(d) => due >= from.saturating_add(nanos(d)),
            };
            if over {
                return Ok(());
            }
            measured += 1;
        }
        let start = if plan.rate == 0 {
            due
        } else {
            if due > clock.now_ns() {
                tokio::time::sleep_until(clock.at(due).into()).await;
                woke = clock.now_ns();
            }
            due.max(woke)
        };
        let stamp = if warm { start | WARM_BIT } else { start };
        let value = if plan.e2e {
            stamped(&mut arena, &plan.payload, stamp)
        } else {
            plan.payload.clone()
        };
        if let Some(txn) = txn.as_deref_mut() {
            txn.before_send(producer).await?;
        }
        producer
            .send(ProducerRecord::new(&*plan.topic).value(value).tag(stamp))
            .await
            .context("sending")?;
        if let Some(txn) = txn.as_deref_mut() {
            txn.after_send(producer).await?;
        }
        sent += 1;
    }
}

/// Bytes allocated at once for e2e values, which are each written once.
const ARENA: usize = 1024 * 1024;

/// `payload` with its first 8 bytes replaced by `stamp` (little-endian), cut from a shared
/// arena so that a record costs a copy but rarely an allocation.
fn stamped(arena: &mut BytesMut, payload: &[u8], stamp: u64) -> Bytes {
    if arena.capacity() - arena.len() < payload.len() {
        *arena = BytesMut::with_capacity(ARENA.max(payload.len()));
    }
    arena.extend_from_slice(&stamp.to_le_bytes());
    arena.extend_from_slice(payload.get(8..).unwrap_or_default());
    arena.split().freeze()
}

/// The measuring task: every outcome of one producer, until its channels end.
async fn drain(
    successes: Option<mpsc::Receiver<rill_client::Delivered>>,
    errors: Option<mpsc::Receiver<rill_client::ProducerError>>,
    clock: Clock,
    mut recorder: Recorder,
    record_size: u64,
    latency: bool,
) -> Totals {
    let (Some(mut successes), Some(mut errors)) = (successes, errors) else {
        // Only a second call hands out `None`; this is the first.
        recorder.error("the producer's outcome channels were already taken");
        return recorder.finish();
    };
    let mut tick = tokio::time::interval(progress::TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut delivered = Vec::with_capacity(1024);
    let (mut successes_open, mut errors_open) = (true, true);
    while successes_open || errors_open {
        tokio::select! {
            biased;
            n = successes.recv_many(&mut delivered, 1024), if successes_open => {
                if n == 0 {
                    successes_open = false;
                    continue;
                }
                // Delivered together: one clock reading serves them all.
                let now = clock.now_ns();
                for d in delivered.drain(..) {
                    let warm = d.record.tag & WARM_BIT != 0;
                    let sent = d.record.tag & !WARM_BIT;
                    let latencies = latency.then(|| now.saturating_sub(sent));
                    recorder.records(now, sent, record_size, 1, warm, latencies.into_iter());
                }
            }
            error = errors.recv(), if errors_open => match error {
                Some(error) => recorder.error(anyhow::Error::new(error)),
                None => errors_open = false,
            },
            _ = tick.tick() => recorder.roll(clock.now_ns()),
        }
    }
    recorder.finish()
}

fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up() {
        let shares: Vec<u64> = (0..3).map(|i| split(10, i, 3)).collect();
        assert_eq!(shares, [4, 3, 3]);
        assert_eq!(split(2, 2, 3), 0);
    }

    #[test]
    fn stamped_values_start_with_the_stamp_and_keep_the_size() {
        let payload = payload(100);
        let mut arena = BytesMut::new();
        let a = stamped(&mut arena, &payload, 7);
        let b = stamped(&mut arena, &payload, 8 | WARM_BIT);
        assert_eq!(a.len(), 100);
        assert_eq!(a.get(..8), Some(&7u64.to_le_bytes()[..]));
        assert_eq!(b.get(..8), Some(&(8 | WARM_BIT).to_le_bytes()[..]));
        assert_eq!(a.get(8..), payload.get(8..));
    }
}
