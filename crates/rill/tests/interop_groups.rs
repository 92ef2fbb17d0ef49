//! Consumer groups with real clients against a real `rill serve`: the seed's sarama consumer
//! group (Go, told Kafka 2.1.0, so it commits with OffsetCommit v1) and a confluent-kafka
//! consumer resuming after its commits, confluent-kafka members sharing partitions and surviving
//! a SIGKILL, kafka-python and aiokafka group consumers, a standalone (assign-only) consumer,
//! committed offsets across a restart and a kill -9, and confluent-kafka's AdminClient on groups.
//!
//! Every test starts its own broker. Most pass `--group-initial-rebalance-delay-ms 200`: Kafka's
//! default of 3 s (the first rebalance of an empty group waits that long for more members) only
//! slows a test that starts its members at once; the sarama test and the offsets tests keep it.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail, ensure};
use common::{
    Broker, Client, Delivery, Rec, Result, build_sarama, create_topic, ms, produce, python_command,
    run, run_py, run_py_failing, wait_timeout,
};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Long-lived client processes whose output is read while they run.

/// A client process whose stdout and stderr lines are collected as they come. Dropping it
/// kills the process.
#[derive(Debug)]
struct Proc {
    name: String,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    out: Arc<Mutex<Vec<String>>>,
    err: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    fn spawn(name: &str, mut command: Command) -> Result<Self> {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {name}: {command:?}"))?;
        Ok(Self {
            name: name.to_owned(),
            stdin: child.stdin.take(),
            out: collect_lines(child.stdout.take()),
            err: collect_lines(child.stderr.take()),
            child: Some(child),
        })
    }

    /// The whole lines it has written to stdout so far.
    fn lines(&self) -> Vec<String> {
        lock(&self.out).clone()
    }

    fn is_running(&mut self) -> Result<bool> {
        match self.child.as_mut() {
            Some(child) => Ok(child.try_wait()?.is_none()),
            None => Ok(false),
        }
    }

    /// Fails if the process has exited (it should be running).
    fn check_running(&mut self) -> Result<()> {
        if !self.is_running()? {
            thread::sleep(ms(100)); // let the readers drain what it wrote last
            bail!("{} exited early\n{}", self.name, self.describe());
        }
        Ok(())
    }

    /// SIGKILL: no chance to leave a group or commit.
    fn kill9(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child
                .kill()
                .with_context(|| format!("killing {}", self.name))?;
            let _ = child.wait()?;
        }
        // The readers see end of file once the pipes close; give them a moment.
        thread::sleep(ms(100));
        Ok(())
    }

    /// Closes its stdin (the Python members take that as "close cleanly") and waits for it.
    fn finish(&mut self, timeout: Duration) -> Result<ExitStatus> {
        drop(self.stdin.take());
        self.wait(timeout)
    }

    /// Waits for it to exit by itself.
    fn wait(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let mut child = self
            .child
            .take()
            .with_context(|| format!("{} is not running", self.name))?;
        let status = wait_timeout(&mut child, timeout)?;
        thread::sleep(ms(100));
        match status {
            Some(status) => Ok(status),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "{} did not exit within {timeout:?}\n{}",
                    self.name,
                    self.describe()
                )
            }
        }
    }

    /// Its output so far, for failure messages.
    fn describe(&self) -> String {
        let tail = |lines: &[String]| -> String {
            let start = lines.len().saturating_sub(60);
            let mut text = String::new();
            if start > 0 {
                text.push_str(&format!("... ({start} lines left out)\n"));
            }
            for line in lines.iter().skip(start) {
                text.push_str(line);
                text.push('\n');
            }
            text
        };
        format!(
            "--- {} stdout ---\n{}--- {} stderr ---\n{}",
            self.name,
            tail(&lock(&self.out)),
            self.name,
            tail(&lock(&self.err))
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Collects whole lines (ending in a newline) in the background; a fragment left by a process
/// killed mid-write is dropped.
fn collect_lines(stream: Option<impl Read + Send + 'static>) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    let _ = thread::spawn(move || {
        let Some(stream) = stream else { return };
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) if buf.ends_with(b"\n") => {
                    let line = String::from_utf8_lossy(&buf[..buf.len() - 1]).into_owned();
                    lock(&sink).push(line);
                }
                Ok(_) => break,
            }
        }
    });
    lines
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Calls `probe` every 50 ms until it returns `Some`, or `timeout` passes (`None`).
fn poll_until<T>(
    timeout: Duration,
    mut probe: impl FnMut() -> Result<Option<T>>,
) -> Result<Option<T>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = probe()? {
            return Ok(Some(found));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        thread::sleep(ms(50));
    }
}

fn bootstrap_args(broker: &Broker, rest: &[&str]) -> Vec<String> {
    std::iter::once(broker.bootstrap())
        .chain(rest.iter().map(|s| (*s).to_owned()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// groups.py: confluent-kafka's AdminClient (and kafka-python's, for OffsetDelete).

fn groups_py(broker: &Broker, rest: &[&str]) -> Result<Value> {
    run_py("groups.py", &bootstrap_args(broker, rest), b"")
}

/// Committed offsets of `group` as (topic, partition) -> (offset, metadata).
type Committed = BTreeMap<(String, i32), (i64, Option<String>)>;

fn committed_offsets(broker: &Broker, group: &str) -> Result<Committed> {
    let out = groups_py(broker, &["offsets", group])?;
    ensure!(
        out["error"].is_null(),
        "list_consumer_group_offsets({group}): {out}"
    );
    let mut committed = Committed::new();
    for (topic, partitions) in out["offsets"].as_object().context("offsets")? {
        for (partition, entry) in partitions.as_object().context("partitions")? {
            let _ = committed.insert(
                (topic.clone(), partition.parse()?),
                (
                    entry["offset"].as_i64().context("offset")?,
                    entry["metadata"].as_str().map(str::to_owned),
                ),
            );
        }
    }
    Ok(committed)
}

/// The committed offsets of `group` on `topic` only, by partition.
fn committed_on(broker: &Broker, group: &str, topic: &str) -> Result<BTreeMap<i32, i64>> {
    Ok(committed_offsets(broker, group)?
        .into_iter()
        .filter(|((t, _), _)| t == topic)
        .map(|((_, p), (offset, _))| (p, offset))
        .collect())
}

fn end_offsets(broker: &Broker, topic: &str, partitions: i32) -> Result<BTreeMap<i32, i64>> {
    let out = groups_py(broker, &["end", topic, &partitions.to_string()])?;
    let mut end = BTreeMap::new();
    for (p, o) in out["end"].as_object().context("end")? {
        let _ = end.insert(p.parse()?, o.as_i64().context("end offset")?);
    }
    ensure!(
        end.len() == usize::try_from(partitions)?,
        "end offsets {end:?}"
    );
    Ok(end)
}

fn describe_group(broker: &Broker, group: &str) -> Result<Value> {
    let out = groups_py(broker, &["describe", group])?;
    ensure!(
        out["error"].is_null(),
        "describe_consumer_groups({group}): {out}"
    );
    Ok(out)
}

/// Groups listed (with an optional state filter): id -> state.
fn list_groups(broker: &Broker, states: &[&str]) -> Result<BTreeMap<String, String>> {
    let mut rest = vec!["list"];
    for state in states {
        rest.extend(["--state", state]);
    }
    let out = groups_py(broker, &rest)?;
    ensure!(out["error"].is_null(), "list_consumer_groups: {out}");
    let mut groups = BTreeMap::new();
    for (id, group) in out["groups"].as_object().context("groups")? {
        let _ = groups.insert(
            id.clone(),
            group["state"].as_str().context("state")?.to_owned(),
        );
    }
    Ok(groups)
}

/// Records for `partitions` partitions, round robin, values `<tag>-<i>`.
fn spread(tag: &str, count: usize, partitions: i32) -> Result<Vec<Rec>> {
    (0..count)
        .map(|i| {
            Ok(Rec {
                partition: Some(i32::try_from(i)? % partitions),
                ..Rec::kv(format!("key-{i}"), format!("{tag}-{i}"))
            })
        })
        .collect()
}

/// (partition, offset) -> value of what was produced.
fn placed(records: &[Rec], deliveries: &[Delivery]) -> Result<BTreeMap<(i32, i64), String>> {
    let mut out = BTreeMap::new();
    for d in deliveries {
        let rec = records.get(d.index).context("delivery index")?;
        let value = String::from_utf8(rec.value.clone().unwrap_or_default())?;
        if out.insert((d.partition, d.offset), value).is_some() {
            bail!("two records acknowledged at {}/{}", d.partition, d.offset);
        }
    }
    Ok(out)
}

/// Per partition, one past the highest offset in `places`.
fn ends_of(places: &BTreeMap<(i32, i64), String>) -> BTreeMap<i32, i64> {
    let mut end = BTreeMap::new();
    for (p, o) in places.keys() {
        let e = end.entry(*p).or_insert(0);
        *e = (*e).max(o + 1);
    }
    end
}

// ---------------------------------------------------------------------------------------------
// The seed's consumer group (sarama).

fn sarama_command(bin: &Path, program: &str, broker: &Broker, topic: &str) -> Command {
    let mut command = Command::new(bin.join(program));
    let bootstrap = broker.bootstrap();
    let _ = command.args(["-brokers", &bootstrap, "-topic", topic]);
    command
}

/// Runs the seed's sync producer for `n` messages; returns the (partition, offset) of each.
fn sarama_sync_produce(
    bin: &Path,
    broker: &Broker,
    topic: &str,
    n: usize,
) -> Result<Vec<(i32, i64)>> {
    let mut command = sarama_command(bin, "sync_producer", broker, topic);
    let _ = command.args(["-n", &n.to_string()]);
    let out = run(command, b"", Duration::from_secs(30))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure!(
        out.status.success(),
        "sync_producer failed ({}):\n{stdout}\n{}",
        out.status,
        out.stderr
    );
    let sent = stdout
        .lines()
        .map(|line| -> Result<(i32, i64)> {
            let rest = line
                .strip_prefix("分区ID:")
                .with_context(|| format!("not a sync producer line: {line:?}"))?;
            let (p, o) = rest
                .split_once(", offset:")
                .with_context(|| format!("no offset in {line:?}"))?;
            Ok((p.trim().parse()?, o.trim().parse()?))
        })
        .collect::<Result<Vec<_>>>()?;
    ensure!(
        sent.len() == n,
        "sync_producer reported {} sends of {n}",
        sent.len()
    );
    Ok(sent)
}

/// `Partition:<p>, Offset:<o>, key:<k>, value:<v>`: the seed's consumer line.
fn parse_consumer_line(line: &str) -> Result<(i32, i64, String)> {
    let rest = line
        .strip_prefix("Partition:")
        .with_context(|| format!("not a consumer line: {line:?}"))?;
    let (p, rest) = rest
        .split_once(", Offset:")
        .with_context(|| format!("no offset in {line:?}"))?;
    let (o, rest) = rest
        .split_once(", key:")
        .with_context(|| format!("no key in {line:?}"))?;
    let (_key, value) = rest
        .split_once(", value:")
        .with_context(|| format!("no value in {line:?}"))?;
    Ok((p.parse()?, o.parse()?, value.to_owned()))
}

/// Checks that the consumer printed exactly the records at `places`, each once, with the
/// seed's value.
fn check_sarama_consumed(
    lines: &[String],
    places: &BTreeSet<(i32, i64)>,
    what: &str,
) -> Result<()> {
    let consumed = lines
        .iter()
        .map(|l| parse_consumer_line(l))
        .collect::<Result<Vec<_>>>()?;
    let mut seen = BTreeSet::new();
    for (p, o, value) in &consumed {
        ensure!(
            value == "Hello World!",
            "{what}: {p}/{o} has value {value:?}"
        );
        ensure!(seen.insert((*p, *o)), "{what}: {p}/{o} consumed twice");
    }
    ensure!(
        &seen == places,
        "{what}: consumed {seen:?}, expected exactly {places:?}"
    );
    Ok(())
}

/// The seed's consumer group: it commits what it marked every second, so a member that is
/// killed more than a second after its last message has committed everything; after a broker
/// restart the group goes on exactly after the committed offsets, from any start position.
#[test]
fn seed_sarama_consumer_group_commits_every_second_and_resumes_after_a_restart() -> Result<()> {
    let started = Instant::now();
    let bin = build_sarama(&["consumer_group", "sync_producer"])?;
    let bin = bin.path();
    // Kafka's default initial rebalance delay (3 s): the seed's programs with stock settings.
    let mut broker = Broker::start_with(&["--num-partitions", "3"])?;
    let topic = broker.topic("test0");
    let group = broker.topic("group-1");

    // First run: from the oldest offset, so it sees every record whenever its session starts.
    let mut first = sarama_command(bin, "consumer_group", &broker, &topic);
    let _ = first.args(["-group", &group, "-oldest", "-timeout", "40s"]);
    let mut first = Proc::spawn("consumer_group (first run)", first)?;
    // The seed's producer picks partitions at random. Every partition gets a record here, so
    // that every one has a committed offset to resume from: one without would start at the
    // newest offset (the seed's default) and rightly skip the second run's records.
    let mut sent: BTreeSet<(i32, i64)> = BTreeSet::new();
    let mut produced = 0;
    for _ in 0..10 {
        let batch = sarama_sync_produce(bin, &broker, &topic, 12)?;
        produced += batch.len();
        sent.extend(batch);
        if (0..3).all(|p| sent.iter().any(|(q, _)| *q == p)) {
            break;
        }
    }
    ensure!(
        (0..3).all(|p| sent.iter().any(|(q, _)| *q == p)),
        "the sync producer left a partition empty in {produced} records"
    );
    ensure!(
        sent.len() == produced,
        "sync_producer reused a place: {sent:?}"
    );
    let n = sent.len();
    let got = poll_until(Duration::from_secs(30), || {
        first.check_running()?;
        let lines = first.lines();
        Ok((lines.len() >= n).then_some(lines))
    })?
    .with_context(|| {
        format!(
            "the first run did not print {n} records\n{}",
            first.describe()
        )
    })?;
    // More than two commit intervals, then a crash: the interval commits must have stored
    // everything marked (Close would commit too, and is not given the chance).
    thread::sleep(ms(2500));
    first.kill9()?;
    check_sarama_consumed(&first.lines(), &sent, "first run").with_context(|| first.describe())?;
    ensure!(got.len() == n, "first run: {got:?}");

    let end = end_offsets(&broker, &topic, 3)?;
    let expected: BTreeMap<i32, i64> = end
        .iter()
        .filter(|(_, e)| **e > 0)
        .map(|(p, e)| (*p, *e))
        .collect();
    let committed = committed_on(&broker, &group, &topic)?;
    ensure!(
        committed == expected,
        "after the first run (killed 2.5 s after its last record) the group committed \
         {committed:?}; the log ends are {end:?}\n{}",
        first.describe()
    );

    broker.restart()?;
    let committed = committed_on(&broker, &group, &topic)?;
    ensure!(
        committed == expected,
        "after a restart the group has {committed:?}, before it had {expected:?}"
    );

    // Second run, from the seed's default (the newest offset where nothing is committed):
    // exactly the records produced since, none of the old ones.
    const M: usize = 8;
    let more: BTreeSet<(i32, i64)> = sarama_sync_produce(bin, &broker, &topic, M)?
        .into_iter()
        .collect();
    let mut second = sarama_command(bin, "consumer_group", &broker, &topic);
    let _ = second.args([
        "-group",
        &group,
        "-count",
        &M.to_string(),
        "-timeout",
        "30s",
    ]);
    let mut second = Proc::spawn("consumer_group (second run)", second)?;
    let status = second.wait(Duration::from_secs(40))?;
    ensure!(
        status.success(),
        "second run exited with {status}\n{}",
        second.describe()
    );
    check_sarama_consumed(&second.lines(), &more, "second run")
        .with_context(|| second.describe())?;

    // It stopped cleanly, which commits one last time: the group is at the log ends again.
    let end = end_offsets(&broker, &topic, 3)?;
    let expected: BTreeMap<i32, i64> = end
        .iter()
        .filter(|(_, e)| **e > 0)
        .map(|(p, e)| (*p, *e))
        .collect();
    let committed = committed_on(&broker, &group, &topic)?;
    ensure!(
        committed == expected,
        "after the second run the group committed {committed:?}; the log ends are {end:?}\n{}",
        second.describe()
    );
    eprintln!("sarama consumer group test took {:?}", started.elapsed());
    Ok(())
}

/// sarama's ConsumerGroup at Kafka 2.1.0 with its default `Retention` commits with OffsetCommit
/// v1 (a commit timestamp per partition); a confluent-kafka consumer at librdkafka's defaults
/// that joins the same group afterwards starts exactly at those offsets: nothing read twice,
/// nothing skipped.
#[test]
fn sarama_offset_commit_v1_is_where_a_confluent_consumer_of_the_group_resumes() -> Result<()> {
    const PARTITIONS: i32 = 3;
    const TOTAL: usize = 30;
    const TAKEN: usize = 13;
    let bin = build_sarama(&["consumer_group"])?;
    let broker = Broker::start_with(&["--group-initial-rebalance-delay-ms", "200"])?;
    let topic = broker.topic("handover");
    let group = broker.topic("handover-readers");
    create_topic(&broker, &topic, PARTITIONS, &[])?;
    let records = spread("handover", TOTAL, PARTITIONS)?;
    let places = placed(
        &records,
        &produce(&broker, Client::Confluent, &topic, &records, &[])?,
    )?;

    let mut sarama = sarama_command(bin.path(), "consumer_group", &broker, &topic);
    let _ = sarama.args([
        "-group",
        &group,
        "-oldest",
        "-count",
        &TAKEN.to_string(),
        "-timeout",
        "30s",
    ]);
    let mut sarama = Proc::spawn("consumer_group", sarama)?;
    let status = sarama.wait(Duration::from_secs(40))?;
    ensure!(
        status.success(),
        "consumer_group exited with {status}\n{}",
        sarama.describe()
    );
    let taken = sarama
        .lines()
        .iter()
        .map(|l| parse_consumer_line(l))
        .collect::<Result<Vec<_>>>()
        .with_context(|| sarama.describe())?;
    ensure!(
        taken.len() == TAKEN,
        "consumer_group printed {} records, not {TAKEN}\n{}",
        taken.len(),
        sarama.describe()
    );
    // Per partition sarama reads from offset 0 in order, and marks what it prints: its last
    // commit (when the session ends) is one past the last record it printed there.
    let mut marked: BTreeMap<i32, i64> = BTreeMap::new();
    for (p, o, value) in &taken {
        let next = marked.entry(*p).or_insert(0);
        ensure!(*o == *next, "sarama read {p}/{o} where {next} was next");
        ensure!(
            places.get(&(*p, *o)) == Some(value),
            "sarama read {value:?} at {p}/{o}, produced {:?}",
            places.get(&(*p, *o))
        );
        *next += 1;
    }
    let committed = committed_on(&broker, &group, &topic)?;
    ensure!(
        committed == marked,
        "sarama's OffsetCommit v1 left {committed:?}; it had read up to {marked:?}\n{}",
        sarama.describe()
    );

    let rest: BTreeMap<(i32, i64), String> = places
        .iter()
        .filter(|((p, o), _)| *o >= marked.get(p).copied().unwrap_or(0))
        .map(|(place, value)| (*place, value.clone()))
        .collect();
    ensure!(rest.len() == TOTAL - TAKEN, "{} records left", rest.len());
    group_consume(&broker, "confluent", &topic, &group, &rest, PARTITIONS)
        .context("confluent-kafka after sarama")?;
    let end = end_offsets(&broker, &topic, PARTITIONS)?;
    let committed = committed_on(&broker, &group, &topic)?;
    ensure!(
        committed == end,
        "after confluent-kafka the group committed {committed:?}; the log ends are {end:?}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// confluent-kafka members (group_member.py).

/// One group_member.py process and what it reported.
#[derive(Debug)]
struct Member {
    proc: Proc,
    name: String,
}

impl Member {
    fn start(
        broker: &Broker,
        topic: &str,
        group: &str,
        name: &str,
        assignor: &str,
    ) -> Result<Self> {
        let command = python_command(
            "group_member.py",
            &bootstrap_args(
                broker,
                &[
                    topic,
                    group,
                    "--assignor",
                    assignor,
                    "--name",
                    name,
                    "--seconds",
                    "90",
                ],
            ),
        )?;
        Ok(Self {
            proc: Proc::spawn(name, command)?,
            name: name.to_owned(),
        })
    }

    fn events(&self) -> Result<Vec<Value>> {
        self.proc
            .lines()
            .iter()
            .map(|line| {
                serde_json::from_str(line)
                    .with_context(|| format!("{}: bad line {line:?}", self.name))
            })
            .collect()
    }

    /// Its current assignment: the one after its last rebalance callback.
    fn assignment(&self) -> Result<BTreeSet<i32>> {
        let events = self.events()?;
        let last = events.iter().rev().find(|e| e.get("assignment").is_some());
        match last {
            None => Ok(BTreeSet::new()),
            Some(e) => partition_set(&e["assignment"]),
        }
    }

    /// (partition, offset, value) of every record it read, in order.
    fn records(&self) -> Result<Vec<(i32, i64, String)>> {
        let mut out = Vec::new();
        for e in self.events()? {
            if e["e"] == "record" {
                out.push((
                    i32::try_from(e["p"].as_i64().context("p")?)?,
                    e["o"].as_i64().context("o")?,
                    e["v"].as_str().unwrap_or_default().to_owned(),
                ));
            }
        }
        Ok(out)
    }

    /// Per partition, the highest offset whose commit the broker acknowledged to it.
    fn committed(&self) -> Result<BTreeMap<i32, i64>> {
        let mut out = BTreeMap::new();
        for e in self.events()? {
            if e["e"] == "committed" {
                let p = i32::try_from(e["p"].as_i64().context("p")?)?;
                let o = e["o"].as_i64().context("o")?;
                let entry = out.entry(p).or_insert(o);
                *entry = (*entry).max(o);
            }
        }
        Ok(out)
    }

    /// Events of one kind, e.g. "revoked" or "commit_failed".
    fn count(&self, kind: &str) -> Result<usize> {
        Ok(self.events()?.iter().filter(|e| e["e"] == kind).count())
    }

    fn describe(&self) -> String {
        self.proc.describe()
    }
}

fn partition_set(value: &Value) -> Result<BTreeSet<i32>> {
    value
        .as_array()
        .context("a partition list")?
        .iter()
        .map(|p| Ok(i32::try_from(p.as_i64().context("partition")?)?))
        .collect()
}

fn describe_all(members: &[&Member]) -> String {
    members
        .iter()
        .map(|m| m.describe())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Waits until the members' assignments are disjoint, cover partitions `0..partitions`, and
/// give each member `each` partitions; returns them.
fn wait_for_split(
    members: &mut [&mut Member],
    partitions: i32,
    each: usize,
    timeout: Duration,
) -> Result<Vec<BTreeSet<i32>>> {
    let found = poll_until(timeout, || {
        let mut all = Vec::new();
        for m in members.iter_mut() {
            m.proc.check_running()?;
            all.push(m.assignment()?);
        }
        let union: BTreeSet<i32> = all.iter().flatten().copied().collect();
        let total: usize = all.iter().map(BTreeSet::len).sum();
        let split = all.iter().all(|a| a.len() == each)
            && total == union.len()
            && union == (0..partitions).collect();
        Ok(split.then_some(all))
    })?;
    found.with_context(|| {
        let views: Vec<&Member> = members.iter().map(|m| &**m).collect();
        format!(
            "the members did not split {partitions} partitions {each} each within {timeout:?}\n{}",
            describe_all(&views)
        )
    })
}

/// Waits until every place in `wanted` was read by one of `members`.
fn wait_for_records(
    members: &mut [&mut Member],
    wanted: &BTreeMap<(i32, i64), String>,
    timeout: Duration,
) -> Result<()> {
    let found = poll_until(timeout, || {
        let mut seen = BTreeSet::new();
        for m in members.iter_mut() {
            m.proc.check_running()?;
            seen.extend(m.records()?.into_iter().map(|(p, o, _)| (p, o)));
        }
        Ok(wanted.keys().all(|k| seen.contains(k)).then_some(()))
    })?;
    found.with_context(|| {
        let views: Vec<&Member> = members.iter().map(|m| &**m).collect();
        format!(
            "not all {} records were read within {timeout:?}\n{}",
            wanted.len(),
            describe_all(&views)
        )
    })
}

/// Three confluent-kafka members split six partitions two each; one is killed with SIGKILL
/// (no LeaveGroup); after its session times out the other two take its partitions over. Every
/// record produced before, during and after is read at least once, and a record is read twice
/// only where the killed member had read it but its commit had not been acknowledged.
fn three_members_survive_a_sigkill(assignor: &str) -> Result<()> {
    const PARTITIONS: i32 = 6;
    let started = Instant::now();
    let broker = Broker::start_with(&["--group-initial-rebalance-delay-ms", "500"])?;
    let topic = broker.topic("shared");
    let group = broker.topic(&format!("members-{assignor}"));
    create_topic(&broker, &topic, PARTITIONS, &[])?;

    let mut m0 = Member::start(&broker, &topic, &group, "member-0", assignor)?;
    let mut m1 = Member::start(&broker, &topic, &group, "member-1", assignor)?;
    let mut m2 = Member::start(&broker, &topic, &group, "member-2", assignor)?;
    let initial = wait_for_split(
        &mut [&mut m0, &mut m1, &mut m2],
        PARTITIONS,
        2,
        Duration::from_secs(30),
    )?;
    // Events after this point are what the test looks at for revocations.
    let stable_at: Vec<usize> = [&m0, &m1, &m2]
        .iter()
        .map(|m| m.proc.lines().len())
        .collect();

    let mut produced = BTreeMap::new();
    let first = spread("before", 120, PARTITIONS)?;
    let deliveries = produce(&broker, Client::Confluent, &topic, &first, &[])?;
    let before = placed(&first, &deliveries)?;
    wait_for_records(
        &mut [&mut m0, &mut m1, &mut m2],
        &before,
        Duration::from_secs(20),
    )?;
    produced.extend(before);
    // So far, each record read exactly once, by the member that owns its partition.
    for (m, owned) in [&m0, &m1, &m2].iter().zip(&initial) {
        for (p, o, _) in m.records()? {
            ensure!(
                owned.contains(&p),
                "{} read {p}/{o} but owns {owned:?}\n{}",
                m.name,
                m.describe()
            );
        }
    }

    // Produce while member-0 dies: it is killed once it has read some of this batch.
    let during = spread("during", 240, PARTITIONS)?;
    let victim_had = m0.records()?.len();
    let (deliveries, victim_partitions, victim_committed, killed_at) = thread::scope(|s| {
        let producer = s.spawn(|| produce(&broker, Client::Confluent, &topic, &during, &[]));
        let _ = poll_until(Duration::from_secs(10), || {
            Ok((m0.records()?.len() >= victim_had + 10).then_some(()))
        })?;
        m0.proc.kill9()?;
        let killed_at = Instant::now();
        let deliveries = producer
            .join()
            .map_err(|_| anyhow!("the producer thread panicked"))??;
        Ok::<_, anyhow::Error>((deliveries, m0.assignment()?, m0.committed()?, killed_at))
    })?;
    produced.extend(placed(&during, &deliveries)?);
    let after = spread("after", 60, PARTITIONS)?;
    let deliveries = produce(&broker, Client::Confluent, &topic, &after, &[])?;
    produced.extend(placed(&after, &deliveries)?);

    // The survivors take member-0's partitions over once its session (6 s) has expired.
    let survivors_split = wait_for_split(
        &mut [&mut m1, &mut m2],
        PARTITIONS,
        3,
        Duration::from_secs(30),
    )
    .with_context(|| m0.describe())?;
    let takeover = killed_at.elapsed();
    // member-0 sent no LeaveGroup: only its session timeout (6 s, counted from its last
    // heartbeat, at most 0.5 s before the kill) frees its partitions, not its closed socket.
    ensure!(
        takeover >= Duration::from_secs(5),
        "the survivors took member-0's partitions over {takeover:?} after the kill, before its \
         session timed out"
    );
    let found = poll_until(Duration::from_secs(20), || {
        let mut seen = BTreeSet::new();
        for m in [&m0, &m1, &m2] {
            seen.extend(m.records()?.into_iter().map(|(p, o, _)| (p, o)));
        }
        Ok(produced.keys().all(|k| seen.contains(k)).then_some(()))
    })?;
    ensure!(
        found.is_some(),
        "not every record was read within 20 s of the takeover\n{}",
        describe_all(&[&m0, &m1, &m2])
    );

    // Every record at least once, with the value produced there; twice only in member-0's
    // uncommitted window.
    let mut reads: BTreeMap<(i32, i64), Vec<&str>> = BTreeMap::new();
    let all_records = [m0.records()?, m1.records()?, m2.records()?];
    for (name, records) in ["member-0", "member-1", "member-2"]
        .iter()
        .zip(&all_records)
    {
        for (p, o, v) in records {
            let sent = produced
                .get(&(*p, *o))
                .with_context(|| format!("{name} read {p}/{o}, which nobody produced"))?;
            ensure!(
                sent == v,
                "{name} read {v:?} at {p}/{o}, where {sent:?} was produced"
            );
            reads.entry((*p, *o)).or_default().push(name);
        }
    }
    let mut duplicates = 0;
    for ((p, o), readers) in &reads {
        if readers.len() == 1 {
            continue;
        }
        duplicates += 1;
        let window_start = victim_committed.get(p).copied().unwrap_or(0);
        ensure!(
            victim_partitions.contains(p)
                && *o >= window_start
                && readers.contains(&"member-0")
                && readers.len() == 2,
            "{p}/{o} was read by {readers:?}; member-0 owned {victim_partitions:?} when killed and \
             had commits acknowledged up to {victim_committed:?}\n{}",
            describe_all(&[&m0, &m1, &m2])
        );
    }
    let missing: Vec<&(i32, i64)> = produced.keys().filter(|k| !reads.contains_key(k)).collect();
    ensure!(missing.is_empty(), "never read: {missing:?}");

    // The survivors' commits all went through, and with cooperative-sticky they kept their
    // own partitions throughout: only member-0's moved.
    for m in [&m1, &m2] {
        ensure!(
            m.count("commit_failed")? == 0,
            "{} had failed commits\n{}",
            m.name,
            m.describe()
        );
    }
    if assignor == "cooperative-sticky" {
        for (i, m) in [&m1, &m2].iter().enumerate() {
            let own = initial.get(i + 1).context("initial assignment")?;
            let now = survivors_split.get(i).context("final assignment")?;
            ensure!(
                own.is_subset(now),
                "{} had {own:?} and now has {now:?}: cooperative-sticky moved its partitions",
                m.name
            );
            let revoked_after_stable = m
                .events()?
                .iter()
                .skip(stable_at.get(i + 1).copied().unwrap_or(0))
                .filter(|e| e["e"] == "revoked" || e["e"] == "lost")
                .count();
            ensure!(
                revoked_after_stable == 0,
                "{} had partitions revoked after the group was stable\n{}",
                m.name,
                m.describe()
            );
        }
    }

    // They leave cleanly; everything read was committed.
    for m in [&mut m1, &mut m2] {
        let status = m.proc.finish(Duration::from_secs(20))?;
        ensure!(
            status.success(),
            "{} exited with {status}\n{}",
            m.name,
            m.describe()
        );
    }
    let end = end_offsets(&broker, &topic, PARTITIONS)?;
    ensure!(end == ends_of(&produced), "log ends {end:?}");
    let committed = committed_on(&broker, &group, &topic)?;
    ensure!(
        committed == end,
        "committed {committed:?}, log ends {end:?}\n{}",
        describe_all(&[&m1, &m2])
    );
    let described = describe_group(&broker, &group)?;
    ensure!(
        described["state"] == "EMPTY" && described["members"] == json!([]),
        "after every member left: {described}"
    );
    eprintln!(
        "{assignor}: {} records, {duplicates} read twice, takeover {takeover:?} after the \
         kill, {:?} in all",
        produced.len(),
        started.elapsed()
    );
    Ok(())
}

#[test]
fn three_range_members_split_six_partitions_and_survive_a_sigkill() -> Result<()> {
    three_members_survive_a_sigkill("range")
}

#[test]
fn three_cooperative_sticky_members_split_six_partitions_and_survive_a_sigkill() -> Result<()> {
    three_members_survive_a_sigkill("cooperative-sticky")
}

// ---------------------------------------------------------------------------------------------
// kafka-python and aiokafka group consumers (group_consume.py).

/// Produces `records` with `producer` ("kafka-python" through produce.py, "aiokafka" through
/// aio_produce.py); both non-idempotent, acks=all.
fn produce_with(
    broker: &Broker,
    producer: &str,
    topic: &str,
    records: &[Rec],
) -> Result<Vec<Delivery>> {
    if producer == "kafka-python" {
        return produce(broker, Client::KafkaPython, topic, records, &[]);
    }
    let input: Vec<Value> = records
        .iter()
        .map(|r| {
            json!({
                "k": r.key.as_deref().map(common::hex),
                "v": r.value.as_deref().map(common::hex),
                "p": r.partition,
            })
        })
        .collect();
    let out = run_py(
        "aio_produce.py",
        &bootstrap_args(broker, &[topic]),
        &serde_json::to_vec(&input)?,
    )?;
    let mut deliveries = Vec::new();
    for row in out["delivered"].as_array().context("delivered")? {
        deliveries.push(Delivery {
            index: usize::try_from(row[0].as_i64().context("index")?)?,
            partition: i32::try_from(row[1].as_i64().context("partition")?)?,
            offset: row[2].as_i64().context("offset")?,
        });
    }
    deliveries.sort();
    ensure!(
        deliveries.len() == records.len()
            && deliveries.iter().enumerate().all(|(i, d)| d.index == i),
        "aiokafka delivered {} of {} records",
        deliveries.len(),
        records.len()
    );
    Ok(deliveries)
}

/// Runs group_consume.py for exactly `count` records; checks it read exactly `expected`, each
/// once, and was assigned every partition.
fn group_consume(
    broker: &Broker,
    client: &str,
    topic: &str,
    group: &str,
    expected: &BTreeMap<(i32, i64), String>,
    partitions: i32,
) -> Result<()> {
    let count = expected.len().to_string();
    let out = run_py(
        "group_consume.py",
        &bootstrap_args(
            broker,
            &[topic, group, "--client", client, "--count", &count],
        ),
        b"",
    )?;
    ensure!(
        partition_set(&out["assignment"])? == (0..partitions).collect(),
        "{client}: assignment {}",
        out["assignment"]
    );
    let read = common::records_by_place(&out).with_context(|| client.to_owned())?;
    ensure!(
        &read == expected,
        "{client} read {} records, expected {}: {:?}",
        read.len(),
        expected.len(),
        read.keys().collect::<Vec<_>>()
    );
    Ok(())
}

/// A kafka-python or aiokafka group consumer reads what the same client produced, exactly;
/// its commit leaves the group at the log ends; the next run of the group reads only what
/// came since.
fn python_group_consumer(client: &str) -> Result<()> {
    const PARTITIONS: i32 = 3;
    let broker = Broker::start_with(&["--group-initial-rebalance-delay-ms", "200"])?;
    let topic = broker.topic(&format!("{client}-group"));
    let group = broker.topic(&format!("{client}-readers"));
    create_topic(&broker, &topic, PARTITIONS, &[])?;

    let first = spread("first", 90, PARTITIONS)?;
    let first_places = placed(&first, &produce_with(&broker, client, &topic, &first)?)?;
    group_consume(&broker, client, &topic, &group, &first_places, PARTITIONS)
        .context("first run")?;
    let end = end_offsets(&broker, &topic, PARTITIONS)?;
    ensure!(end == ends_of(&first_places), "log ends {end:?}");
    let committed = committed_on(&broker, &group, &topic)?;
    ensure!(
        committed == end,
        "{client} committed {committed:?}; the log ends are {end:?}"
    );

    let second = spread("second", 30, PARTITIONS)?;
    let second_places = placed(&second, &produce_with(&broker, client, &topic, &second)?)?;
    group_consume(&broker, client, &topic, &group, &second_places, PARTITIONS)
        .context("second run")?;
    let end = end_offsets(&broker, &topic, PARTITIONS)?;
    let committed = committed_on(&broker, &group, &topic)?;
    ensure!(
        committed == end,
        "after the second run {client} committed {committed:?}; the log ends are {end:?}"
    );
    Ok(())
}

#[test]
fn kafka_python_group_consumer_reads_exactly_commits_and_resumes() -> Result<()> {
    python_group_consumer("kafka-python")
}

#[test]
fn aiokafka_group_consumer_reads_exactly_commits_and_resumes() -> Result<()> {
    python_group_consumer("aiokafka")
}

// ---------------------------------------------------------------------------------------------
// Committed offsets: durable, with their metadata (standalone.py).

fn standalone(broker: &Broker, group: &str, rest: &[&str]) -> Result<Value> {
    let mut args = vec![broker.bootstrap(), group.to_owned()];
    args.extend(rest.iter().map(|s| (*s).to_owned()));
    run_py("standalone.py", &args, b"")
}

/// `committed()` as standalone.py prints it: "topic:p" -> (offset, metadata).
fn committed_json(out: &Value) -> Result<BTreeMap<String, (i64, Option<String>)>> {
    let mut map = BTreeMap::new();
    for (place, entry) in out["committed"].as_object().context("committed")? {
        let _ = map.insert(
            place.clone(),
            (
                entry["offset"].as_i64().context("offset")?,
                entry["metadata"].as_str().map(str::to_owned),
            ),
        );
    }
    Ok(map)
}

/// Offsets committed with metadata strings read back the same from the committing consumer,
/// from a new consumer, from the AdminClient, after a graceful restart and after a kill -9;
/// and a kill -9 in the middle of a stream of synchronous commits loses none that the broker
/// acknowledged.
#[test]
fn committed_offsets_and_metadata_survive_a_restart_and_a_kill_9() -> Result<()> {
    let mut broker = Broker::start()?;
    let topic = broker.topic("committed");
    let group = broker.topic("durable");
    create_topic(&broker, &topic, 3, &[])?;

    let p0 = format!("{topic}:0");
    let p1 = format!("{topic}:1");
    let p2 = format!("{topic}:2");
    let metadata_2 = "colons: a:b, unicode: ünï¢ødé, and spaces";
    let expected: BTreeMap<String, (i64, Option<String>)> = [
        (p0.clone(), (5, Some("checkpoint-zero".to_owned()))),
        (p1.clone(), (7, None)),
        (p2.clone(), (42, Some(metadata_2.to_owned()))),
    ]
    .into_iter()
    .collect();
    let out = standalone(
        &broker,
        &group,
        &[
            "commit",
            &format!("{p0}:5:checkpoint-zero"),
            &format!("{p1}:7"),
            &format!("{p2}:42:{metadata_2}"),
        ],
    )?;
    ensure!(
        committed_json(&out)? == expected,
        "read back by the committing consumer: {out}"
    );
    let check = |broker: &Broker, when: &str| -> Result<()> {
        let out = standalone(broker, &group, &["committed", &p0, &p1, &p2])?;
        ensure!(
            committed_json(&out)? == expected,
            "{when}: a new consumer reads {out}, expected {expected:?}"
        );
        let admin: BTreeMap<String, (i64, Option<String>)> = committed_offsets(broker, &group)?
            .into_iter()
            .map(|((t, p), v)| (format!("{t}:{p}"), v))
            .collect();
        ensure!(
            admin == expected,
            "{when}: the AdminClient reads {admin:?}, expected {expected:?}"
        );
        Ok(())
    };
    check(&broker, "before any restart")?;
    broker.restart()?;
    check(&broker, "after a graceful restart")?;

    // A stream of synchronous commits (offset n to partition n % 3, metadata "commit-n"),
    // and kill -9 in the middle of it.
    let loop_group = broker.topic("crash-loop");
    let committer = python_command(
        "standalone.py",
        &bootstrap_args(
            &broker,
            &[&loop_group, "commit-loop", &topic, "3", "--seconds", "30"],
        ),
    )?;
    let mut committer = Proc::spawn("standalone.py commit-loop", committer)?;
    let started = Instant::now();
    let enough = poll_until(Duration::from_secs(20), || {
        committer.check_running()?;
        Ok(
            (started.elapsed() >= Duration::from_secs(1) && committer.lines().len() >= 100)
                .then_some(()),
        )
    })?;
    ensure!(
        enough.is_some(),
        "fewer than 100 commits acknowledged in 20 s\n{}",
        committer.describe()
    );
    broker.kill9()?;
    thread::sleep(ms(200));
    committer.kill9()?;
    let acked = committer.lines();
    let mut last_acked: BTreeMap<i32, i64> = BTreeMap::new();
    let mut highest = 0;
    for line in &acked {
        let (p, n) = line
            .split_once(' ')
            .with_context(|| format!("bad commit-loop line {line:?}"))?;
        let (p, n): (i32, i64) = (p.parse()?, n.parse()?);
        let _ = last_acked.insert(p, n);
        highest = highest.max(n);
    }
    eprintln!("{} commits acknowledged before kill -9", acked.len());

    broker.restart()?;
    check(&broker, "after kill -9")?;
    let committed = committed_offsets(&broker, &loop_group)?;
    for p in 0..3 {
        let acked = last_acked
            .get(&p)
            .copied()
            .context("a partition never committed")?;
        let (offset, metadata) = committed
            .get(&(topic.clone(), p))
            .cloned()
            .with_context(|| format!("partition {p}: no committed offset after kill -9"))?;
        // The commit in flight at the kill (offset highest + 1) may or may not have stuck.
        let in_flight = highest + 1;
        ensure!(
            offset == acked || (offset == in_flight && in_flight % 3 == i64::from(p)),
            "partition {p}: committed {offset} after kill -9; the last acknowledged commit was \
             {acked} (the one in flight, {in_flight})"
        );
        ensure!(
            metadata.as_deref() == Some(format!("commit-{offset}").as_str()),
            "partition {p}: offset {offset} with metadata {metadata:?}"
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// A standalone consumer (assign, no subscribe).

/// A consumer that assigns itself partitions and never joins the group commits with
/// generation -1 (Kafka accepts that for a group without members), reads its offsets back,
/// and a second such consumer resumes from them.
#[test]
fn a_standalone_consumer_commits_reads_back_and_resumes_from_its_offsets() -> Result<()> {
    let broker = Broker::start()?;
    let topic = broker.topic("assigned");
    let group = broker.topic("standalone");
    create_topic(&broker, &topic, 2, &[])?;

    let first = spread("first", 20, 2)?;
    let first_places = placed(
        &first,
        &produce(&broker, Client::Confluent, &topic, &first, &[])?,
    )?;
    let check =
        |out: &Value, expected: &BTreeMap<(i32, i64), String>, committed: Value| -> Result<()> {
            let mut read = BTreeMap::new();
            for r in out["records"].as_array().context("records")? {
                let place = (
                    i32::try_from(r["p"].as_i64().context("p")?)?,
                    r["o"].as_i64().context("o")?,
                );
                ensure!(
                    read.insert(place, r["v"].as_str().context("v")?.to_owned())
                        .is_none(),
                    "read {place:?} twice"
                );
            }
            ensure!(&read == expected, "read {read:?}");
            ensure!(
                out["committed"] == committed,
                "committed {}",
                out["committed"]
            );
            Ok(())
        };
    let out = standalone(&broker, &group, &["consume", &topic, "2", "--count", "20"])?;
    check(&out, &first_places, json!({"0": 10, "1": 10})).context("first consumer")?;
    ensure!(
        committed_on(&broker, &group, &topic)? == [(0, 10), (1, 10)].into_iter().collect(),
        "the AdminClient does not see the standalone commit"
    );
    let described = describe_group(&broker, &group)?;
    ensure!(
        described["state"] == "EMPTY" && described["members"] == json!([]),
        "a group with only standalone commits: {described}"
    );

    let second = spread("second", 6, 2)?;
    let second_places = placed(
        &second,
        &produce(&broker, Client::Confluent, &topic, &second, &[])?,
    )?;
    let out = standalone(&broker, &group, &["consume", &topic, "2", "--count", "6"])?;
    check(&out, &second_places, json!({"0": 13, "1": 13})).context("second consumer")?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// confluent-kafka's AdminClient on groups.

/// ListGroups (with a state filter), DescribeGroups, OffsetFetch for lag, OffsetDelete and
/// DeleteGroups through the AdminClients, on a group with members and then without.
#[test]
fn admin_client_lists_describes_and_deletes_groups_and_offsets() -> Result<()> {
    const PARTITIONS: i32 = 4;
    let broker = Broker::start_with(&["--group-initial-rebalance-delay-ms", "200"])?;
    let topic = broker.topic("watched");
    let group = broker.topic("admin-group");
    create_topic(&broker, &topic, PARTITIONS, &[])?;
    let first = spread("first", 40, PARTITIONS)?;
    let first_places = placed(
        &first,
        &produce(&broker, Client::Confluent, &topic, &first, &[])?,
    )?;

    let mut m0 = Member::start(&broker, &topic, &group, "admin-member-0", "range")?;
    let mut m1 = Member::start(&broker, &topic, &group, "admin-member-1", "range")?;
    let split = wait_for_split(
        &mut [&mut m0, &mut m1],
        PARTITIONS,
        2,
        Duration::from_secs(20),
    )?;
    wait_for_records(
        &mut [&mut m0, &mut m1],
        &first_places,
        Duration::from_secs(20),
    )?;
    // Each member commits after every record; wait for the last acknowledgements.
    let all_committed = poll_until(Duration::from_secs(10), || {
        let mut committed = m0.committed()?;
        committed.extend(m1.committed()?);
        Ok((committed == ends_of(&first_places)).then_some(()))
    })?;
    ensure!(all_committed.is_some(), "{}", describe_all(&[&m0, &m1]));

    // With members: Stable.
    let listed = list_groups(&broker, &[])?;
    ensure!(
        listed.get(&group).map(String::as_str) == Some("STABLE"),
        "list_consumer_groups: {listed:?}"
    );
    ensure!(
        list_groups(&broker, &["STABLE"])?.contains_key(&group),
        "not listed with states={{STABLE}}"
    );
    ensure!(
        !list_groups(&broker, &["EMPTY"])?.contains_key(&group),
        "listed with states={{EMPTY}} while it has members"
    );
    let described = describe_group(&broker, &group)?;
    ensure!(
        described["state"] == "STABLE"
            && described["assignor"] == "range"
            && described["simple"] == json!(false),
        "describe_consumer_groups: {described}"
    );
    let members = described["members"].as_array().context("members")?;
    ensure!(members.len() == 2, "members: {described}");
    for (member, (own, name)) in members
        .iter()
        .zip(split.iter().zip(["admin-member-0", "admin-member-1"]))
    {
        let assigned: BTreeSet<i32> = member["assignment"]
            .as_array()
            .context("assignment")?
            .iter()
            .map(|tp| {
                ensure!(tp[0] == json!(topic), "assignment {tp}");
                Ok(i32::try_from(tp[1].as_i64().context("partition")?)?)
            })
            .collect::<Result<_>>()?;
        ensure!(
            member["client_id"] == name
                && &assigned == own
                && member["host"].as_str().is_some_and(|h| !h.is_empty())
                && member["member_id"]
                    .as_str()
                    .is_some_and(|id| !id.is_empty()),
            "described member {member}; {name} reports {own:?}"
        );
    }
    let deleted = groups_py(&broker, &["delete", &group])?;
    ensure!(
        deleted["error"] == "NON_EMPTY_GROUP",
        "deleting a group with members: {deleted}"
    );
    let p0 = format!("{topic}:0");
    let deleted = groups_py(&broker, &["delete-offsets", &group, &p0])?;
    ensure!(
        deleted["error"].is_null() && deleted["partitions"][&p0] == "GROUP_SUBSCRIBED_TO_TOPIC",
        "deleting the offsets of a topic the members consume: {deleted}"
    );
    // A standalone commit (generation -1, no member id) is refused while the group has
    // members.
    let refused = run_py_failing(
        "standalone.py",
        &bootstrap_args(&broker, &[&group, "commit", &format!("{p0}:1")]),
        b"",
    )?;
    ensure!(
        refused.contains("UNKNOWN_MEMBER_ID"),
        "a standalone commit to a group with members failed with {refused:?}; Kafka answers \
         UNKNOWN_MEMBER_ID"
    );

    // The members leave: Empty, and the offsets stay.
    for m in [&mut m0, &mut m1] {
        let status = m.proc.finish(Duration::from_secs(20))?;
        ensure!(
            status.success(),
            "{} exited with {status}\n{}",
            m.name,
            m.describe()
        );
    }
    let described = describe_group(&broker, &group)?;
    ensure!(
        described["state"] == "EMPTY" && described["members"] == json!([]),
        "after the members left: {described}"
    );
    ensure!(
        list_groups(&broker, &["EMPTY"])?
            .get(&group)
            .map(String::as_str)
            == Some("EMPTY"),
        "not listed with states={{EMPTY}} after the members left"
    );
    ensure!(
        !list_groups(&broker, &["STABLE"])?.contains_key(&group),
        "listed with states={{STABLE}} after the members left"
    );

    // Lag: 1, 2, 3, 4 records produced since, on partitions 0..3.
    let more: Vec<Rec> = (0..PARTITIONS)
        .flat_map(|p| {
            (0..=p).map(move |i| Rec {
                partition: Some(p),
                ..Rec::kv(format!("lag-{p}"), format!("lag-{p}-{i}"))
            })
        })
        .collect();
    let _ = produce(&broker, Client::Confluent, &topic, &more, &[])?;
    let end = end_offsets(&broker, &topic, PARTITIONS)?;
    let committed = committed_on(&broker, &group, &topic)?;
    let lag: BTreeMap<i32, i64> = end
        .iter()
        .map(|(p, e)| (*p, e - committed.get(p).copied().unwrap_or(0)))
        .collect();
    ensure!(
        lag == (0..PARTITIONS).map(|p| (p, i64::from(p) + 1)).collect(),
        "lag {lag:?} (log ends {end:?}, committed {committed:?})"
    );

    // OffsetDelete on the empty group: only partition 0's offset goes.
    let deleted = groups_py(&broker, &["delete-offsets", &group, &p0])?;
    ensure!(
        deleted["error"].is_null() && deleted["partitions"][&p0].is_null(),
        "deleting partition 0's offset: {deleted}"
    );
    let committed = committed_on(&broker, &group, &topic)?;
    ensure!(
        committed == (1..PARTITIONS).map(|p| (p, 10)).collect(),
        "after deleting partition 0's offset: {committed:?}"
    );

    // DeleteGroups on the empty group: it and all its offsets go.
    let deleted = groups_py(&broker, &["delete", &group])?;
    ensure!(
        deleted["error"].is_null(),
        "deleting the empty group: {deleted}"
    );
    ensure!(
        committed_offsets(&broker, &group)?.is_empty(),
        "offsets left after the group was deleted"
    );
    ensure!(
        !list_groups(&broker, &[])?.contains_key(&group),
        "listed after it was deleted"
    );
    let deleted = groups_py(&broker, &["delete", &group])?;
    ensure!(
        deleted["error"] == "GROUP_ID_NOT_FOUND",
        "deleting it again: {deleted}"
    );
    Ok(())
}
