//! The group consumer against the real broker: one member reads and commits everything; two
//! members split four partitions; a closing member hands its partitions over; a new member
//! resumes after the committed offsets; a group shared with a confluent-kafka member.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use common::Broker;
use rill_client::{
    Admin, AdminConfig, ClientConfig, ConsumerRecord, GroupConfig, GroupConsumer, GroupEvent,
    NewTopic, Producer, ProducerConfig, ProducerRecord, StartOffset,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(30);
const TOPIC: &str = "events";

async fn broker_with_topic() -> Result<(Broker, ClientConfig)> {
    let broker = Broker::start_with(&["--group-initial-rebalance-delay-ms", "200"])?;
    let client = ClientConfig::new([broker.bootstrap()]);
    let admin = Admin::new(AdminConfig::new(client.clone()));
    let _ = admin.create_topic(NewTopic::new(TOPIC, 4)).await?;
    Ok((broker, client))
}

fn group_config(group: &str) -> GroupConfig {
    let mut config = GroupConfig::new(group);
    config.start = StartOffset::Oldest;
    config.heartbeat_interval = Duration::from_millis(300);
    config.session_timeout = Duration::from_secs(6);
    config.rebalance_timeout = Duration::from_secs(10);
    config.auto_commit_interval = Some(Duration::from_millis(200));
    config
}

/// Produces `n` records to each of the four partitions, values `p-i`.
async fn produce(client: &ClientConfig, n: usize, tag: &str) -> Result<()> {
    let producer = Producer::new(ProducerConfig::new(client.clone()))?;
    for p in 0..4 {
        for i in 0..n {
            let _ = producer
                .send(
                    ProducerRecord::new(TOPIC)
                        .partition(p)
                        .value(format!("{tag}{p}-{i}")),
                )
                .await?;
        }
    }
    producer.close().await;
    Ok(())
}

/// A member running in a task of its own: every record it reads (and marks) goes to
/// `records`; dropping `stop` closes it.
struct Running {
    records: mpsc::UnboundedReceiver<ConsumerRecord>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: JoinHandle<Result<()>>,
    events: tokio::sync::broadcast::Receiver<GroupEvent>,
}

fn run(mut member: GroupConsumer) -> Running {
    let (tx, records) = mpsc::unbounded_channel();
    let (stop, mut stopped) = tokio::sync::oneshot::channel();
    let events = member.events();
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                item = member.next() => match item {
                    Some(Ok(record)) => {
                        member.mark(&record);
                        let _ = tx.send(record);
                    }
                    Some(Err(err)) => return Err(err.into()),
                    None => break,
                },
            }
        }
        member.close().await?;
        Ok(())
    });
    Running {
        records,
        stop: Some(stop),
        task,
        events,
    }
}

impl Running {
    async fn take(&mut self, n: usize) -> Result<Vec<ConsumerRecord>> {
        let mut out = Vec::new();
        while out.len() < n {
            match tokio::time::timeout(WAIT, self.records.recv()).await {
                Ok(Some(r)) => out.push(r),
                Ok(None) => bail!("member ended after {} of {n}", out.len()),
                Err(_) => bail!("waited for record {} of {n}", out.len()),
            }
        }
        Ok(out)
    }

    /// Waits until the member's assignment (from its events) is `want` partitions.
    async fn assigned(&mut self, owned: &mut BTreeSet<i32>, want: usize) -> Result<()> {
        let deadline = tokio::time::Instant::now() + WAIT;
        while owned.len() != want {
            let event = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .with_context(|| format!("waiting for {want} partitions, have {owned:?}"))??;
            match event {
                GroupEvent::Assigned(ps) => owned.extend(ps.into_iter().map(|(_, p)| p)),
                GroupEvent::Revoked(ps) => {
                    for (_, p) in ps {
                        let _ = owned.remove(&p);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    async fn close(mut self) -> Result<()> {
        drop(self.stop.take());
        self.task.await?
    }
}

fn values(records: &[ConsumerRecord]) -> BTreeSet<String> {
    records
        .iter()
        .filter_map(|r| r.value.as_ref())
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

fn expected(n: usize, tag: &str, partitions: impl IntoIterator<Item = i32>) -> BTreeSet<String> {
    partitions
        .into_iter()
        .flat_map(|p| (0..n).map(move |i| format!("{tag}{p}-{i}")))
        .collect()
}

async fn committed(client: &ClientConfig, group: &str) -> Result<Vec<(i32, i64)>> {
    let admin = Admin::new(AdminConfig::new(client.clone()));
    Ok(admin
        .group_offsets(group)
        .await?
        .into_iter()
        .map(|c| (c.partition, c.offset))
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_consume_everything_commit_and_let_a_new_member_resume() -> Result<()> {
    let (_broker, client) = broker_with_topic().await?;
    produce(&client, 5, "a").await?;
    let mut member = GroupConsumer::new(client.clone(), group_config("g1"))?;
    member.subscribe(&[TOPIC]);
    let mut running = run(member);
    let records = running.take(20).await?;
    ensure!(
        values(&records) == expected(5, "a", 0..4),
        "{:?}",
        values(&records)
    );
    running.close().await?;
    ensure!(
        committed(&client, "g1").await? == [(0, 5), (1, 5), (2, 5), (3, 5)],
        "committed {:?}",
        committed(&client, "g1").await?
    );

    // A new member resumes after the committed offsets: only the new records.
    produce(&client, 2, "b").await?;
    let mut member = GroupConsumer::new(client.clone(), group_config("g1"))?;
    member.subscribe(&[TOPIC]);
    let mut running = run(member);
    let records = running.take(8).await?;
    ensure!(
        values(&records) == expected(2, "b", 0..4),
        "{:?}",
        values(&records)
    );
    ensure!(
        tokio::time::timeout(Duration::from_secs(1), running.records.recv())
            .await
            .is_err(),
        "read a record twice"
    );
    running.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_split_partitions_and_hand_them_over_on_close() -> Result<()> {
    let (_broker, client) = broker_with_topic().await?;
    let mut a = GroupConsumer::new(client.clone(), group_config("g2"))?;
    a.subscribe(&[TOPIC]);
    let mut a = run(a);
    let mut a_owned = BTreeSet::new();
    a.assigned(&mut a_owned, 4).await?;

    let mut b = GroupConsumer::new(client.clone(), group_config("g2"))?;
    b.subscribe(&[TOPIC]);
    let mut b = run(b);
    let mut b_owned = BTreeSet::new();
    b.assigned(&mut b_owned, 2).await?;
    a.assigned(&mut a_owned, 2).await?;
    ensure!(a_owned.is_disjoint(&b_owned), "{a_owned:?} {b_owned:?}");

    produce(&client, 3, "c").await?;
    let (from_a, from_b) = (a.take(6).await?, b.take(6).await?);
    ensure!(from_a.iter().all(|r| a_owned.contains(&r.partition)));
    ensure!(from_b.iter().all(|r| b_owned.contains(&r.partition)));
    let mut all = values(&from_a);
    all.extend(values(&from_b));
    ensure!(all == expected(3, "c", 0..4), "{all:?}");

    // Closing b (it commits, then leaves) hands its partitions to a, which resumes after them.
    b.close().await?;
    a.assigned(&mut a_owned, 4).await?;
    produce(&client, 1, "d").await?;
    let records = a.take(4).await?;
    ensure!(
        values(&records) == expected(1, "d", 0..4),
        "{:?}",
        values(&records)
    );
    a.close().await?;
    Ok(())
}

/// A confluent-kafka member of GROUP on TOPIC: prints `assigned P,Q` after each assignment,
/// then runs until killed.
const CONFLUENT_MEMBER: &str = r#"
import sys
from confluent_kafka import Consumer
bootstrap, topic, group = sys.argv[1], sys.argv[2], sys.argv[3]
def on_assign(c, ps):
    print("assigned " + ",".join(str(p.partition) for p in ps), flush=True)
c = Consumer({
    "bootstrap.servers": bootstrap,
    "group.id": group,
    "auto.offset.reset": "earliest",
    "partition.assignment.strategy": "range",
    "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 500,
})
c.subscribe([topic], on_assign=on_assign)
while True:
    c.poll(0.2)
"#;

fn python() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python")
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_share_a_group_with_confluent_kafka_and_take_over_when_it_dies() -> Result<()> {
    let (broker, client) = broker_with_topic().await?;
    let mut ours = GroupConsumer::new(client.clone(), group_config("g3"))?;
    ours.subscribe(&[TOPIC]);
    let mut ours = run(ours);
    let mut owned = BTreeSet::new();
    ours.assigned(&mut owned, 4).await?;

    let mut child = Command::new(python())
        .arg("-c")
        .arg(CONFLUENT_MEMBER)
        .args([broker.bootstrap().as_str(), TOPIC, "g3"])
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the confluent-kafka member")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let child = Killed(child);
    let (tx, mut lines) = mpsc::unbounded_channel();
    let _ = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let theirs: BTreeSet<i32> = loop {
        let line = tokio::time::timeout(WAIT, lines.recv())
            .await
            .context("waiting for the confluent member's assignment")?
            .context("the confluent member ended")?;
        if let Some(ps) = line.strip_prefix("assigned ") {
            let ps: BTreeSet<i32> = ps.split(',').filter_map(|p| p.parse().ok()).collect();
            if !ps.is_empty() {
                break ps;
            }
        }
    };
    ours.assigned(&mut owned, 4 - theirs.len()).await?;
    ensure!(theirs.len() == 2, "confluent member got {theirs:?}");
    ensure!(owned.is_disjoint(&theirs), "{owned:?} {theirs:?}");
    ensure!(
        owned.union(&theirs).copied().collect::<Vec<_>>() == [0, 1, 2, 3],
        "gap: {owned:?} {theirs:?}"
    );

    // SIGKILL: no LeaveGroup; its partitions move once its 6 s session times out.
    drop(child);
    ours.assigned(&mut owned, 4).await?;
    produce(&client, 1, "e").await?;
    let records = ours.take(4).await?;
    ensure!(
        values(&records) == expected(1, "e", 0..4),
        "{:?}",
        values(&records)
    );
    ours.close().await?;
    Ok(())
}
