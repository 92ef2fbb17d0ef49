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
use common::{
    Broker, Client, Cluster, Rec, Result, create_topic, produce_to, python_command, rill_ok, run_py,
};

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

/// What the checker runs against: one broker or a cluster, which it can crash.
trait Target {
    fn bootstrap(&self) -> String;
    /// Kills a broker with -9 and starts it again; the worker (killed too) is restarted by the
    /// caller.
    fn crash(&mut self, dice: &mut Dice) -> Result<()>;
}

impl Target for Broker {
    fn bootstrap(&self) -> String {
        Broker::bootstrap(self)
    }

    fn crash(&mut self, _: &mut Dice) -> Result<()> {
        self.kill9()?;
        self.restart()
    }
}

impl Target for Cluster {
    fn bootstrap(&self) -> String {
        Cluster::bootstrap(self).to_owned()
    }

    fn crash(&mut self, dice: &mut Dice) -> Result<()> {
        let k = i32::try_from(dice.below(3))? + 1;
        self.kill(k)?;
        self.start_node(k)
    }
}

fn spawn_worker(bootstrap: &str, names: &[String; 3], log: &std::path::Path) -> Result<Child> {
    let [input, output, group] = names;
    python_command(
        "eos_worker.py",
        &[
            bootstrap.to_owned(),
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
fn read(bootstrap: &str, topic: &str, isolation: &str) -> Result<BTreeMap<String, usize>> {
    let out = run_py(
        "transactions.py",
        &[
            bootstrap.to_owned(),
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

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Copies `count` records from `names[0]` to `names[1]` with the worker while killing it, and
/// the target's brokers, for `seconds`; then checks the output.
fn check(target: &mut dyn Target, names: &[String; 3], count: usize, seconds: u64) -> Result<()> {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos() as u64;
    eprintln!("exactly-once checker: seed {seed}, {count} records, {seconds} s of faults");
    let mut dice = Dice(seed);
    let records: Vec<Rec> = (0..count)
        .map(|i| Rec::kv(format!("k{}", i % 97), format!("rec-{i}")))
        .collect();
    let _ = produce_to(
        &target.bootstrap(),
        Client::Confluent,
        &names[0],
        &records,
        &["--acks", "all"],
    )?;

    let scratch = tempfile::tempdir()?;
    let log = scratch.path().join("worker.stderr");
    let mut worker = spawn_worker(&target.bootstrap(), names, &log)?;
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
            worker = spawn_worker(&target.bootstrap(), names, &log)?;
            continue;
        }
        thread::sleep(Duration::from_millis(200 + dice.below(1_500)));
        if Instant::now() >= faults_end {
            continue;
        }
        match dice.below(6) {
            0 => {
                let _ = worker.kill();
                let _ = worker.wait();
                target.crash(&mut dice)?;
                broker_kills += 1;
                worker = spawn_worker(&target.bootstrap(), names, &log)?;
            }
            1..=3 => {
                let _ = worker.kill();
                let _ = worker.wait();
                worker_kills += 1;
                worker = spawn_worker(&target.bootstrap(), names, &log)?;
            }
            _ => {}
        }
    }
    eprintln!(
        "worker killed {worker_kills} times, brokers killed {broker_kills} times, worker exits \
         on fatal errors {fatal_exits}"
    );

    let bootstrap = target.bootstrap();
    let committed = read(&bootstrap, &names[1], "read_committed")?;
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
    let everything: usize = read(&bootstrap, &names[1], "read_uncommitted")?
        .values()
        .sum();
    eprintln!(
        "PASS: {count} input records exactly once; {} aborted output records were never \
         delivered to read_committed",
        everything - count
    );
    Ok(())
}

#[test]
fn consume_transform_produce_is_exactly_once_through_kill_9() -> Result<()> {
    let seconds = setting("RILL_EOS_SECONDS", 25);
    let count = usize::try_from(setting("RILL_EOS_RECORDS", 20_000))?;
    let mut broker = Broker::start()?;
    let names = [
        broker.topic("eos-input"),
        broker.topic("eos-output"),
        broker.topic("eos-app"),
    ];
    create_topic(&broker, &names[0], 3, &[])?;
    create_topic(&broker, &names[1], 3, &[])?;
    check(&mut broker, &names, count, seconds)
}

/// The same on three brokers with every partition (the topics', `__consumer_offsets`' and
/// `__transaction_state`'s) replicated three times: a broker killed may be the coordinator
/// of the transactional id or of the group, or a partition's leader.
#[test]
fn exactly_once_on_three_brokers_through_kill_9() -> Result<()> {
    let seconds = setting("RILL_EOS_SECONDS", 25);
    let count = usize::try_from(setting("RILL_EOS_RECORDS", 20_000))?;
    let mut cluster = Cluster::start(3, &[])?;
    let names = [
        "eos-input".to_owned(),
        "eos-output".to_owned(),
        "eos-app".to_owned(),
    ];
    for topic in &names[..2] {
        let _ = rill_ok(
            cluster.bootstrap(),
            &["topic", "create", topic, "-p", "3", "-r", "3"],
            b"",
        )?;
    }
    check(&mut cluster, &names, count, seconds)
}
