//! The exactly-once checker: a consume-transform-produce worker (librdkafka's transactional
//! API, `tests/interop/eos_worker.py`) copies an input topic to an output topic, committing the
//! input offsets in the same transactions, while the checker kills it with -9 at random moments
//! (a new worker with the same transactional id fences and replaces it) and kills the broker
//! with -9 too. At the end, a read_committed reader sees every input record exactly once in the
//! output, and nothing else (an aborted record delivered would show as a duplicate or a
//! stranger).
//!
//! `RILL_EOS_SECONDS` (default 25) sets how long the faults go on; CI runs the default, and
//! `docs/reliability.md` records a longer run.

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use common::{Broker, Client, Rec, Result, create_topic, produce, python_command, run_py};

const PARTITIONS: usize = 3;

/// A small deterministic generator, seeded from the clock (the seed is printed).
struct Dice(u64);

impl Dice {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n.max(1)
    }
}

fn spawn_worker(broker: &Broker, names: &[String; 3], log: &std::path::Path) -> Result<Child> {
    let [input, output, group] = names;
    python_command(
        "eos_worker.py",
        &[
            broker.bootstrap(),
            input.clone(),
            output.clone(),
            group.clone(),
            format!("{group}-txn"),
            "--seconds".into(),
            "300".into(),
        ],
    )?
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?,
    )
    .spawn()
    .context("starting eos_worker.py")
}

/// Every record of `topic` as `isolation` sees it: value -> how many times.
fn read(broker: &Broker, topic: &str, isolation: &str) -> Result<BTreeMap<String, usize>> {
    let out = run_py(
        "transactions.py",
        &[
            broker.bootstrap(),
            "read".into(),
            topic.into(),
            PARTITIONS.to_string(),
            isolation.into(),
        ],
        b"",
    )?;
    let mut seen = BTreeMap::new();
    for record in out["records"].as_array().context("no records")? {
        let value = record
            .get(2)
            .and_then(|v| v.as_str())
            .context("a record without a value")?;
        *seen.entry(value.to_owned()).or_insert(0) += 1;
    }
    Ok(seen)
}

#[test]
fn consume_transform_produce_is_exactly_once_through_kill_9() -> Result<()> {
    let seconds: u64 = std::env::var("RILL_EOS_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(25);
    let count: usize = std::env::var("RILL_EOS_RECORDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos() as u64;
    eprintln!("exactly-once checker: seed {seed}, {count} records, {seconds} s of faults");
    let mut dice = Dice(seed);

    let mut broker = Broker::start()?;
    let names = [
        broker.topic("eos-input"),
        broker.topic("eos-output"),
        broker.topic("eos-app"),
    ];
    create_topic(&broker, &names[0], 3, &[])?;
    create_topic(&broker, &names[1], 3, &[])?;
    let records: Vec<Rec> = (0..count)
        .map(|i| Rec::kv(format!("k{}", i % 97), format!("rec-{i}")))
        .collect();
    let _ = produce(
        &broker,
        Client::Confluent,
        &names[0],
        &records,
        &["--acks", "all"],
    )?;

    let scratch = tempfile::tempdir()?;
    let log = scratch.path().join("worker.stderr");
    let mut worker = spawn_worker(&broker, &names, &log)?;
    let (mut worker_kills, mut broker_kills, mut fatal_exits) = (0, 0, 0);
    let faults_end = Instant::now() + Duration::from_secs(seconds);
    let deadline = faults_end + Duration::from_secs(180);
    loop {
        ensure!(
            Instant::now() < deadline,
            "the worker did not finish: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        if let Some(status) = worker.try_wait()? {
            if status.success() {
                break;
            }
            fatal_exits += 1;
            worker = spawn_worker(&broker, &names, &log)?;
            continue;
        }
        thread::sleep(Duration::from_millis(200 + dice.below(1_500)));
        if Instant::now() >= faults_end {
            continue;
        }
        match dice.below(6) {
            0 => {
                broker.kill9()?;
                let _ = worker.kill();
                let _ = worker.wait();
                broker_kills += 1;
                broker.restart()?;
                worker = spawn_worker(&broker, &names, &log)?;
            }
            1..=3 => {
                let _ = worker.kill();
                let _ = worker.wait();
                worker_kills += 1;
                worker = spawn_worker(&broker, &names, &log)?;
            }
            _ => {}
        }
    }
    eprintln!(
        "worker killed {worker_kills} times, broker killed {broker_kills} times, worker exits on \
         fatal errors {fatal_exits}"
    );

    let committed = read(&broker, &names[1], "read_committed")?;
    let mut missing = Vec::new();
    for i in 0..count {
        match committed.get(&format!("out-rec-{i}")) {
            Some(1) => {}
            Some(n) => bail!("out-rec-{i} appears {n} times for a read_committed reader"),
            None => missing.push(i),
        }
    }
    ensure!(
        missing.is_empty(),
        "{} input records never reached the output, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    ensure!(
        committed.len() == count,
        "the output holds {} distinct records, {count} expected",
        committed.len()
    );
    let everything: usize = read(&broker, &names[1], "read_uncommitted")?.values().sum();
    eprintln!(
        "PASS: {count} input records exactly once; {} aborted output records were never \
         delivered to read_committed",
        everything - count
    );
    Ok(())
}
