//! A cluster of real `rill serve` processes on loopback, started and stopped through
//! `scripts/cluster.sh` (so the script other tools drive is tested too), with the test's own
//! `rill` binary (`RILL_BIN`) and a temporary directory.
//!
//! Every wait is bounded: the script waits at most [`CLUSTER_TIMEOUT`] for readiness, and the
//! conditions tests wait for go through [`wait_until`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use rill_protocol::StrBytes;
use rill_protocol::kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use rill_protocol::kafka_protocol::messages::{
    DeleteRecordsRequest, FindCoordinatorRequest, MetadataRequest, TopicName,
};

use super::{
    CLIENT_TIMEOUT, Client, Conn, Rec, Result, Scrape, consume_from, http_raw, ms, parse_metrics,
    parse_response, produce_to, run,
};

/// How long `cluster.sh` waits for the brokers (seconds), as `RILL_CLUSTER_TIMEOUT`.
pub const CLUSTER_TIMEOUT: Duration = Duration::from_secs(30);

/// One partition as a broker's Metadata shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionView {
    pub error: i16,
    pub leader: i32,
    pub epoch: i32,
}

/// A broker's Metadata v12 answer for all topics, in comparable form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataView {
    /// Node id to `host:port`.
    pub brokers: BTreeMap<i32, String>,
    /// Topic to (error code, partitions by index).
    pub topics: BTreeMap<String, (i16, BTreeMap<i32, PartitionView>)>,
}

impl MetadataView {
    /// The partitions of `topic`; fails if it is not listed or carries an error.
    pub fn partitions(&self, topic: &str) -> Result<&BTreeMap<i32, PartitionView>> {
        let (error, partitions) = self
            .topics
            .get(topic)
            .with_context(|| format!("{topic} is not in Metadata: {self:?}"))?;
        ensure!(*error == 0, "Metadata lists {topic} with error {error}");
        Ok(partitions)
    }

    /// The leader of each partition of `topic`.
    pub fn leaders(&self, topic: &str) -> Result<BTreeMap<i32, i32>> {
        Ok(self
            .partitions(topic)?
            .iter()
            .map(|(p, view)| (*p, view.leader))
            .collect())
    }
}

/// A partition as Metadata v12 shows it: leader, epoch, replicas, in-sync replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub leader: i32,
    pub epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// What broker `addr` (`host:port`, or the first of a list) says of `topic`'s partitions.
pub fn placements(addr: &str, topic: &str) -> Result<BTreeMap<i32, Placement>> {
    let addr = addr.split(',').next().unwrap_or(addr);
    let mut conn = Conn::open_to(addr)?;
    let request = MetadataRequest::default()
        .with_topics(None)
        .with_allow_auto_topic_creation(false);
    let response = ask!(&mut conn, Metadata, 12, request);
    let found = response
        .topics
        .into_iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
        .with_context(|| format!("{topic} is not in {addr}'s Metadata"))?;
    let mut out = BTreeMap::new();
    for p in found.partitions {
        ensure!(p.error_code == 0 || p.error_code == 5, "partition {p:?}");
        let mut isr: Vec<i32> = p.isr_nodes.iter().map(|n| n.0).collect();
        isr.sort_unstable();
        let _ = out.insert(
            p.partition_index,
            Placement {
                leader: p.leader_id.0,
                epoch: p.leader_epoch,
                replicas: p.replica_nodes.iter().map(|n| n.0).collect(),
                isr,
            },
        );
    }
    Ok(out)
}

/// The values read from `topic` by (partition, offset), with kafka-python.
pub fn read_all(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    at_least: usize,
) -> Result<BTreeMap<(i32, i64), String>> {
    let consumed = consume_from(
        bootstrap,
        Client::KafkaPython,
        topic,
        partitions,
        at_least,
        &[],
    )?;
    let mut read = BTreeMap::new();
    for r in consumed.records {
        let value = String::from_utf8(r.value.context("a record without a value")?)?;
        ensure!(
            read.insert((r.partition, r.offset), value).is_none(),
            "offset {} of partition {} read twice",
            r.offset,
            r.partition
        );
    }
    Ok(read)
}

/// Metadata v12 of every topic from the broker at `addr` (`host:port`).
pub fn metadata_of(addr: &str) -> Result<MetadataView> {
    let mut conn = Conn::open_to(addr)?;
    let request = MetadataRequest::default()
        .with_topics(None)
        .with_allow_auto_topic_creation(false);
    let response = (|| -> Result<_> { Ok(ask!(&mut conn, Metadata, 12, request)) })()
        .with_context(|| format!("Metadata of {addr}"))?;
    let brokers = response
        .brokers
        .iter()
        .map(|b| (b.node_id.0, format!("{}:{}", b.host, b.port)))
        .collect();
    let mut topics = BTreeMap::new();
    for topic in response.topics {
        let name = topic.name.context("a topic without a name in Metadata")?;
        let partitions = topic
            .partitions
            .iter()
            .map(|p| {
                (
                    p.partition_index,
                    PartitionView {
                        error: p.error_code,
                        leader: p.leader_id.0,
                        epoch: p.leader_epoch,
                    },
                )
            })
            .collect();
        let _ = topics.insert(name.0.to_string(), (topic.error_code, partitions));
    }
    Ok(MetadataView { brokers, topics })
}

/// FindCoordinator v3 for group `group` asked of the broker at `addr`: (error code, node id).
pub fn find_coordinator(addr: &str, group: &str) -> Result<(i16, i32)> {
    let mut conn = Conn::open_to(addr)?;
    let request = FindCoordinatorRequest::default()
        .with_key(StrBytes::from_string(group.to_owned()))
        .with_key_type(0);
    let response = (|| -> Result<_> { Ok(ask!(&mut conn, FindCoordinator, 3, request)) })()
        .with_context(|| format!("FindCoordinator of {addr}"))?;
    Ok((response.error_code, response.node_id.0))
}

/// Calls `check` every 50 ms until it returns `Some`, for at most `timeout`; the error names
/// `what` and the last failure.
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let started = Instant::now();
    loop {
        let last = match check() {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => "not yet".to_owned(),
            Err(err) => format!("{err:#}"),
        };
        if started.elapsed() >= timeout {
            bail!("{what}: not within {timeout:?} (last: {last})");
        }
        thread::sleep(ms(50));
    }
}

/// Brokers 1..=N started by `scripts/cluster.sh` in a temporary directory.
#[derive(Debug)]
pub struct Cluster {
    dir: tempfile::TempDir,
    nodes: usize,
    extra_args: String,
    bootstrap: String,
    stopped: bool,
}

impl Cluster {
    /// Starts `n` brokers, each with `extra_args` (e.g. `["--broker-session-timeout-ms",
    /// "1500"]`), and waits until every one lists all `n` in Metadata.
    pub fn start(n: usize, extra_args: &[&str]) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("rill-cluster-").tempdir()?;
        let mut cluster = Self {
            dir,
            nodes: n,
            extra_args: extra_args.join(" "),
            bootstrap: String::new(),
            stopped: false,
        };
        let started = Instant::now();
        let stdout = cluster.script(&["start", &n.to_string()])?;
        cluster.bootstrap = stdout
            .lines()
            .last()
            .context("cluster.sh start printed nothing")?
            .to_owned();
        eprintln!(
            "{n} brokers up in {:?}: {}",
            started.elapsed(),
            cluster.bootstrap
        );
        Ok(cluster)
    }

    /// Every broker's Kafka address, comma-separated, as `cluster.sh start` printed it.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// The number of brokers.
    pub fn nodes(&self) -> usize {
        self.nodes
    }

    /// The node ids, 1..=N.
    pub fn ids(&self) -> std::ops::RangeInclusive<i32> {
        1..=i32::try_from(self.nodes).unwrap_or(i32::MAX)
    }

    /// Broker `k`'s Kafka listener, `127.0.0.1:PORT`: a bootstrap list of one broker.
    pub fn bootstrap_of(&self, k: i32) -> Result<String> {
        Ok(format!("127.0.0.1:{}", self.setting(k, "KAFKA_PORT")?))
    }

    /// Broker `k`'s admin HTTP listener.
    pub fn admin_of(&self, k: i32) -> Result<SocketAddr> {
        Ok(format!("127.0.0.1:{}", self.setting(k, "ADMIN_PORT")?).parse()?)
    }

    /// The directory the script keeps the cluster in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Broker `k`'s data directory.
    pub fn data_dir(&self, k: i32) -> PathBuf {
        self.dir().join(format!("node-{k}"))
    }

    /// Broker `k`'s log so far.
    pub fn log(&self, k: i32) -> String {
        std::fs::read_to_string(self.dir().join(format!("node-{k}.log"))).unwrap_or_default()
    }

    /// Metadata of every topic, as broker `k` answers it.
    pub fn metadata(&self, k: i32) -> Result<MetadataView> {
        metadata_of(&self.bootstrap_of(k)?)
    }

    /// A scrape of broker `k`'s `/metrics`.
    pub fn scrape(&self, k: i32) -> Result<Scrape> {
        let addr = self.admin_of(k)?;
        let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        let response = parse_response(&http_raw(addr, request.as_bytes())?)?;
        ensure!(
            response.status == 200,
            "/metrics of broker {k} answered {}",
            response.status
        );
        parse_metrics(response.text()?)
    }

    /// The metadata quorum's leader as broker `k` sees it (`rill_quorum{field="leader"}`).
    pub fn quorum_leader_seen_by(&self, k: i32) -> Result<i32> {
        let leader = self
            .scrape(k)?
            .get("rill_quorum", &[("field", "leader")])
            .with_context(|| format!("no rill_quorum{{field=\"leader\"}} on broker {k}"))?;
        Ok(leader as i32)
    }

    /// Whether broker `k` says it leads the quorum (`rill_quorum{field="is_leader"}` = 1).
    pub fn is_quorum_leader(&self, k: i32) -> Result<bool> {
        let is_leader = self
            .scrape(k)?
            .get("rill_quorum", &[("field", "is_leader")])
            .with_context(|| format!("no rill_quorum{{field=\"is_leader\"}} on broker {k}"))?;
        Ok(is_leader == 1.0)
    }

    /// SIGKILL of broker `k` (`cluster.sh kill`).
    pub fn kill(&mut self, k: i32) -> Result<()> {
        let _ = self.script(&["kill", &k.to_string()])?;
        Ok(())
    }

    /// Starts broker `k` again with its settings and waits until it has rejoined
    /// (`cluster.sh start-node`).
    pub fn start_node(&mut self, k: i32) -> Result<()> {
        let _ = self.script(&["start-node", &k.to_string()])?;
        Ok(())
    }

    /// SIGTERM to every broker; fails if one had to be killed.
    pub fn stop(&mut self) -> Result<()> {
        self.stopped = true;
        let _ = self.script(&["stop"])?;
        Ok(())
    }

    /// The last `n` lines of every broker's log, labelled, for failure messages.
    pub fn logs_tail(&self, n: usize) -> String {
        let mut text = String::new();
        for k in self.ids() {
            let log = self.log(k);
            let lines: Vec<&str> = log.lines().collect();
            let start = lines.len().saturating_sub(n);
            text.push_str(&format!(
                "--- broker {k} log (last {} of {} lines) ---\n",
                lines.len() - start,
                lines.len()
            ));
            for line in &lines[start..] {
                text.push_str(line);
                text.push('\n');
            }
        }
        text
    }

    /// SIGKILL to any broker still running after a failed stop, so no test leaves one behind.
    fn kill_leftovers(&self) {
        for k in self.ids() {
            let Ok(pid) = std::fs::read_to_string(self.dir().join(format!("node-{k}.pid"))) else {
                continue;
            };
            let pid = pid.trim();
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains("serve") {
                eprintln!("broker {k} (pid {pid}) still runs: SIGKILL");
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
    }

    fn setting(&self, k: i32, name: &str) -> Result<String> {
        let path = self.dir().join(format!("node-{k}.env"));
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix('='))
            .map(str::to_owned)
            .with_context(|| format!("no {name} in {}", path.display()))
    }

    /// Runs `cluster.sh COMMAND ARGS DIR`; returns its stdout, or fails with its stderr and
    /// the brokers' logs.
    fn script(&self, args: &[&str]) -> Result<String> {
        let mut command = Command::new("bash");
        let _ = command
            .arg(script_path())
            .args(args)
            .arg(self.dir())
            .env("RILL_BIN", env!("CARGO_BIN_EXE_rill"))
            .env("RILL_CLUSTER_ARGS", &self.extra_args)
            .env(
                "RILL_CLUSTER_TIMEOUT",
                CLUSTER_TIMEOUT.as_secs().to_string(),
            )
            .env("RUST_BACKTRACE", "1");
        let out = run(command, b"", CLIENT_TIMEOUT)?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        ensure!(
            out.status.success(),
            "cluster.sh {args:?} failed ({}):\n{}{}\n{}",
            out.status,
            stdout,
            out.stderr,
            self.logs_tail(30)
        );
        Ok(stdout)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if !self.stopped
            && let Err(err) = self.script(&["stop"])
        {
            eprintln!("stopping the cluster: {err:#}");
        }
        self.kill_leftovers();
        // Shown by libtest only when the test fails.
        eprintln!("{}", self.logs_tail(60));
    }
}

fn script_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/cluster.sh")
}

/// `controller.quorum.voters` for node ids 1..=n on free loopback ports.
pub fn free_voters(n: usize) -> Result<String> {
    let mut voters = Vec::with_capacity(n);
    for id in 1..=n {
        voters.push(format!("{id}@127.0.0.1:{}", super::free_port()?));
    }
    Ok(voters.join(","))
}

/// Harness brokers (each can be killed, restarted and its output read) for node ids `ids` of
/// the quorum `voters`, with `extra` flags.
pub fn quorum_brokers(voters: &str, ids: &[usize], extra: &[&str]) -> Result<Vec<super::Broker>> {
    ids.iter()
        .map(|id| {
            let id = id.to_string();
            let mut args = vec![
                "--node-id",
                id.as_str(),
                "--controller-quorum-voters",
                voters,
            ];
            args.extend_from_slice(extra);
            super::Broker::start_with(&args)
        })
        .collect()
}

/// confluent-kafka as the only member of `group` (group_consume.py) reads exactly `expected`
/// through `bootstrap`, then commits.
pub fn group_consume(
    bootstrap: &str,
    topic: &str,
    group: &str,
    expected: &BTreeMap<(i32, i64), String>,
) -> Result<()> {
    let count = expected.len().to_string();
    let out = super::run_py(
        "group_consume.py",
        &[
            bootstrap.to_owned(),
            topic.to_owned(),
            group.to_owned(),
            "--client".to_owned(),
            "confluent".to_owned(),
            "--count".to_owned(),
            count,
        ],
        b"",
    )?;
    let read = super::records_by_place(&out)?;
    ensure!(
        &read == expected,
        "read {} records, expected {}: {:?}",
        read.len(),
        expected.len(),
        read.keys().collect::<Vec<_>>()
    );
    Ok(())
}

/// The group's committed offsets of `topic`, asked through `bootstrap` (groups.py).
pub fn committed_of(bootstrap: &str, group: &str, topic: &str) -> Result<BTreeMap<i32, i64>> {
    let out = super::run_py(
        "groups.py",
        &[bootstrap.to_owned(), "offsets".to_owned(), group.to_owned()],
        b"",
    )?;
    ensure!(out["error"].is_null(), "groups.py offsets: {out}");
    let mut committed = BTreeMap::new();
    if let Some(partitions) = out["offsets"][topic].as_object() {
        for (p, entry) in partitions {
            let _ = committed.insert(p.parse()?, entry["offset"].as_i64().context("offset")?);
        }
    }
    Ok(committed)
}

/// The bytes of a partition's segments on one broker, in order.
pub fn log_bytes(data_dir: &Path, topic: &str, partition: i32) -> Result<Vec<u8>> {
    let dir = data_dir.join(format!("{topic}-{partition}"));
    let mut segments: Vec<_> = std::fs::read_dir(&dir)
        .with_context(|| dir.display().to_string())?
        .filter_map(std::result::Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    segments.sort();
    let mut bytes = Vec::new();
    for segment in segments {
        bytes.extend(std::fs::read(&segment)?);
    }
    Ok(bytes)
}

/// DeleteRecords v2 for partition 0 of `topic` through `addr` (`host:port`, or the first of a
/// list): (error, low watermark).
pub fn delete_before(addr: &str, topic: &str, before: i64) -> Result<(i16, i64)> {
    let addr = addr.split(',').next().unwrap_or(addr);
    let mut conn = Conn::open_to(addr)?;
    let request = DeleteRecordsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![
            DeleteRecordsTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                .with_partitions(vec![
                    DeleteRecordsPartition::default()
                        .with_partition_index(0)
                        .with_offset(before),
                ]),
        ]);
    let response = ask!(&mut conn, DeleteRecords, 2, request);
    let p = response
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .context("no partition in the answer")?;
    Ok((p.error_code, p.low_watermark))
}

/// Acknowledged records: each one's value by (partition, offset).
pub type Acked = BTreeMap<(i32, i64), String>;

/// Produces `records` with confluent-kafka at `acks=all` through `bootstrap`, with the
/// producer options `options` (see produce.py); each acknowledged record's value by
/// (partition, offset), valued `TAG-i` for the `i`-th record.
pub fn produce_acked(
    bootstrap: &str,
    topic: &str,
    tag: &str,
    records: &[Rec],
    options: &[&str],
) -> Result<Acked> {
    let mut all = vec!["--acks", "all"];
    all.extend(options);
    let delivered = produce_to(bootstrap, Client::Confluent, topic, records, &all)?;
    ensure!(
        delivered.len() == records.len(),
        "{} of {} acknowledged",
        delivered.len(),
        records.len()
    );
    let acked: Acked = delivered
        .iter()
        .map(|d| ((d.partition, d.offset), format!("{tag}-{}", d.index)))
        .collect();
    ensure!(
        acked.len() == delivered.len(),
        "an offset acknowledged twice"
    );
    Ok(acked)
}
