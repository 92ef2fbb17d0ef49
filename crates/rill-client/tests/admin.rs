//! The admin client against the real broker: topics, partitions, configs, offsets, and consumer
//! groups run by confluent-kafka.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use common::Broker;
use rill_client::{
    Admin, AdminConfig, AlterConfigOp, ClientConfig, ClientError, ConfigSource, ErrorCode,
    NewTopic, OffsetSpec, Producer, ProducerConfig, ProducerRecord,
};

fn admin(broker: &Broker) -> Admin {
    Admin::new(AdminConfig::new(ClientConfig::new([broker.bootstrap()])))
}

/// Asserts `result` is the Kafka error `code` and that its message names `name`.
fn assert_kafka_error<T: std::fmt::Debug>(
    result: &Result<T, ClientError>,
    code: ErrorCode,
    name: &str,
) {
    match result {
        Err(err) => {
            assert_eq!(err.code(), Some(code), "{err}");
            assert!(
                err.to_string().contains(name),
                "'{err}' does not name {name}"
            );
        }
        Ok(value) => panic!("expected {code}, got {value:?}"),
    }
}

async fn topic_names(admin: &Admin) -> Result<Vec<String>> {
    Ok(admin
        .list_topics()
        .await?
        .into_iter()
        .map(|t| t.name)
        .collect())
}

#[tokio::test]
async fn topics_are_created_listed_described_and_deleted() -> Result<()> {
    let broker = Broker::start()?;
    let admin = admin(&broker);

    let created = admin
        .create_topics(
            &[
                NewTopic::new("alpha", 3).config("retention.ms", "1000"),
                NewTopic::new("beta", 1).replication_factor(1),
            ],
            false,
        )
        .await?;
    assert_eq!(created.len(), 2);
    let alpha = created[0].as_ref().map_err(Clone::clone)?;
    assert_eq!(alpha.name, "alpha");
    assert_eq!(alpha.num_partitions, Some(3));
    assert_eq!(alpha.replication_factor, Some(1));
    let retention = alpha
        .configs
        .iter()
        .find(|c| c.name == "retention.ms")
        .context("created topic reports retention.ms")?;
    assert_eq!(retention.value.as_deref(), Some("1000"));
    assert_eq!(retention.source, ConfigSource::TopicConfig);
    assert_eq!(
        created[1].as_ref().map_err(Clone::clone)?.num_partitions,
        Some(1)
    );

    // validate_only checks and creates nothing.
    let _ = admin
        .create_topics(&[NewTopic::new("dry-run", 2)], true)
        .await?
        .remove(0)?;
    let names = topic_names(&admin).await?;
    assert_eq!(names, ["alpha", "beta"]);
    assert!(admin.list_topics().await?.iter().all(|t| !t.internal));

    let description = admin.describe_topic("alpha").await?;
    assert_eq!(description.name, "alpha");
    assert!(!description.internal);
    assert_eq!(
        description
            .partitions
            .iter()
            .map(|p| p.partition)
            .collect::<Vec<_>>(),
        [0, 1, 2]
    );
    for p in &description.partitions {
        assert_eq!(p.leader, Some(0));
        assert_eq!(p.replicas, [0]);
        assert_eq!(p.isr, [0]);
        assert_eq!(p.error, None);
    }

    // Describing a missing topic is an error naming it, and does not create it.
    let described = admin.describe_topics(&["beta", "missing"]).await?;
    assert_eq!(
        described[0]
            .as_ref()
            .map_err(Clone::clone)?
            .partitions
            .len(),
        1
    );
    assert_kafka_error(
        &described[1],
        ErrorCode::UnknownTopicOrPartition,
        "'missing'",
    );
    assert!(!topic_names(&admin).await?.contains(&"missing".to_owned()));

    let deleted = admin.delete_topics(&["beta", "missing"]).await?;
    assert!(deleted[0].is_ok(), "{:?}", deleted[0]);
    assert_kafka_error(&deleted[1], ErrorCode::UnknownTopicOrPartition, "'missing'");
    assert_eq!(topic_names(&admin).await?, ["alpha"]);
    admin.delete_topic("alpha").await?;
    assert!(topic_names(&admin).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn create_errors_name_the_topic() -> Result<()> {
    let broker = Broker::start()?;
    let admin = admin(&broker);
    let _ = admin.create_topic(NewTopic::new("dup", 1)).await?;
    assert_kafka_error(
        &admin.create_topic(NewTopic::new("dup", 1)).await,
        ErrorCode::TopicAlreadyExists,
        "'dup'",
    );
    assert_kafka_error(
        &admin
            .create_topic(NewTopic::new("triple", 1).replication_factor(3))
            .await,
        ErrorCode::InvalidReplicationFactor,
        "'triple'",
    );

    // One result per topic, in the order asked.
    let results = admin
        .create_topics(
            &[
                NewTopic::new("fresh", 2),
                NewTopic::new("dup", 1),
                NewTopic::new("rf", 1).replication_factor(2),
            ],
            false,
        )
        .await?;
    assert_eq!(results.len(), 3);
    assert!(results[0].is_ok(), "{:?}", results[0]);
    assert_kafka_error(&results[1], ErrorCode::TopicAlreadyExists, "'dup'");
    assert_kafka_error(&results[2], ErrorCode::InvalidReplicationFactor, "'rf'");
    assert_eq!(topic_names(&admin).await?, ["dup", "fresh"]);
    Ok(())
}

#[tokio::test]
async fn create_partitions_raises_the_count() -> Result<()> {
    let broker = Broker::start()?;
    let admin = admin(&broker);
    let _ = admin.create_topic(NewTopic::new("grow", 3)).await?;
    admin.increase_partitions("grow", 5).await?;
    let partitions = admin.describe_topic("grow").await?.partitions;
    assert_eq!(
        partitions.iter().map(|p| p.partition).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
    assert!(partitions.iter().all(|p| p.leader.is_some()));

    // validate_only changes nothing; shrinking and unknown topics are errors naming the topic.
    admin
        .create_partitions(&[("grow", 8)], true)
        .await?
        .remove(0)?;
    assert_eq!(admin.describe_topic("grow").await?.partitions.len(), 5);
    let shrink = admin.increase_partitions("grow", 2).await;
    assert!(shrink.is_err(), "{shrink:?}");
    assert!(format!("{:?}", shrink).contains("'grow'"));
    assert_kafka_error(
        &admin.increase_partitions("nowhere", 2).await,
        ErrorCode::UnknownTopicOrPartition,
        "'nowhere'",
    );
    // The new partitions are visible to ListOffsets through the metadata cache.
    assert_eq!(
        admin.topic_offsets("grow", OffsetSpec::Latest).await?.len(),
        5
    );
    Ok(())
}

#[tokio::test]
async fn configs_are_described_and_altered() -> Result<()> {
    let broker = Broker::start_with(&["--retention-ms", "86400000"])?;
    let admin = admin(&broker);
    let _ = admin.create_topic(NewTopic::new("cfg", 1)).await?;

    let retention = |configs: &[rill_client::ConfigEntry]| {
        configs
            .iter()
            .find(|c| c.name == "retention.ms")
            .cloned()
            .context("no retention.ms")
    };
    // The broker's --retention-ms gives the topic's value, as Kafka reports a server setting.
    let before = retention(&admin.describe_topic_configs("cfg").await?)?;
    assert_eq!(before.value.as_deref(), Some("86400000"));
    assert_eq!(before.source, ConfigSource::StaticBrokerConfig);
    assert!(!before.read_only);

    admin
        .alter_topic_configs("cfg", &[AlterConfigOp::set("retention.ms", "3600000")])
        .await?;
    let after = retention(&admin.describe_topic_configs("cfg").await?)?;
    assert_eq!(after.value.as_deref(), Some("3600000"));
    assert_eq!(after.source, ConfigSource::TopicConfig);

    // DELETE returns to the broker's value.
    admin
        .alter_topic_configs("cfg", &[AlterConfigOp::delete("retention.ms")])
        .await?;
    let reset = retention(&admin.describe_topic_configs("cfg").await?)?;
    assert_eq!(reset.value.as_deref(), Some("86400000"));
    assert_eq!(reset.source, ConfigSource::StaticBrokerConfig);

    // Broker configs: from the start-up flags; log.retention.ms can be changed at run time
    // (dynamic broker configs), num.partitions cannot.
    let broker_configs = admin.describe_broker_configs(0).await?;
    let named = |name: &str| {
        broker_configs
            .iter()
            .find(|c| c.name == name)
            .with_context(|| format!("no {name}"))
    };
    let log_retention = named("log.retention.ms")?;
    assert_eq!(log_retention.value.as_deref(), Some("86400000"));
    assert_eq!(log_retention.source, ConfigSource::StaticBrokerConfig);
    assert!(!log_retention.read_only);
    assert!(named("num.partitions")?.read_only);

    // Errors name the resource.
    assert_kafka_error(
        &admin.describe_topic_configs("absent").await,
        ErrorCode::UnknownTopicOrPartition,
        "'absent'",
    );
    let altered = admin
        .incremental_alter_configs(
            &[
                (
                    rill_client::ConfigResource::Topic("absent".into()),
                    vec![AlterConfigOp::set("retention.ms", "1")],
                ),
                (
                    rill_client::ConfigResource::Broker(0),
                    vec![AlterConfigOp::set("num.partitions", "3")],
                ),
            ],
            false,
        )
        .await?;
    assert_kafka_error(&altered[0], ErrorCode::UnknownTopicOrPartition, "'absent'");
    assert_kafka_error(&altered[1], ErrorCode::InvalidRequest, "num.partitions");
    Ok(())
}

#[tokio::test]
async fn list_offsets_earliest_latest_and_by_time() -> Result<()> {
    let broker = Broker::start()?;
    let admin = admin(&broker);
    let _ = admin.create_topic(NewTopic::new("offsets", 2)).await?;
    let producer = Producer::new(ProducerConfig::new(ClientConfig::new([broker.bootstrap()])))?;
    const BASE: i64 = 1_700_000_000_000;
    for i in 0..7 {
        let _ = producer
            .send(
                ProducerRecord::new("offsets")
                    .partition(0)
                    .value("x")
                    .timestamp(BASE + i * 1000),
            )
            .await?;
    }
    for _ in 0..3 {
        let _ = producer
            .send(
                ProducerRecord::new("offsets")
                    .partition(1)
                    .value("y")
                    .timestamp(BASE),
            )
            .await?;
    }
    producer.close().await;

    let both = [("offsets", 0), ("offsets", 1)];
    let offsets = |results: Vec<Result<rill_client::ListedOffset, ClientError>>| {
        results
            .into_iter()
            .map(|r| r.map(|o| (o.partition, o.offset)))
            .collect::<Result<Vec<_>, _>>()
    };
    assert_eq!(
        offsets(admin.list_offsets(&both, OffsetSpec::Earliest).await?)?,
        [(0, 0), (1, 0)]
    );
    assert_eq!(
        offsets(admin.list_offsets(&both, OffsetSpec::Latest).await?)?,
        [(0, 7), (1, 3)]
    );
    let by_time = admin
        .list_offsets(&[("offsets", 0)], OffsetSpec::Timestamp(BASE + 2500))
        .await?
        .remove(0)?;
    assert_eq!((by_time.offset, by_time.timestamp), (3, BASE + 3000));
    let too_late = admin
        .list_offsets(&[("offsets", 0)], OffsetSpec::Timestamp(BASE + 3_600_000))
        .await?
        .remove(0)?;
    assert_eq!(too_late.offset, -1);

    let all = admin.topic_offsets("offsets", OffsetSpec::Latest).await?;
    assert_eq!(all.iter().map(|o| o.offset).sum::<i64>(), 10);

    // Errors per partition, naming it.
    let results = admin
        .list_offsets(
            &[("offsets", 1), ("offsets", 9), ("ghost", 0)],
            OffsetSpec::Latest,
        )
        .await?;
    assert_eq!(results[0].as_ref().map_err(Clone::clone)?.offset, 3);
    assert_kafka_error(
        &results[1],
        ErrorCode::UnknownTopicOrPartition,
        "partition 9",
    );
    assert_kafka_error(&results[2], ErrorCode::UnknownTopicOrPartition, "'ghost'");
    assert!(!topic_names(&admin).await?.contains(&"ghost".to_owned()));
    Ok(())
}

/// A confluent-kafka consumer in GROUP that reads N records of TOPIC, commits offsets 3
/// (metadata "m0") and 5 for partitions 0 and 1, prints `ready`, and closes (leaving the group)
/// when its stdin closes.
const GROUP_MEMBER: &str = r#"
import sys, time
from confluent_kafka import Consumer, TopicPartition
bootstrap, topic, group, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
c = Consumer({
    "bootstrap.servers": bootstrap,
    "group.id": group,
    "client.id": "admin-test-member",
    "auto.offset.reset": "earliest",
    "enable.auto.commit": False,
    "partition.assignment.strategy": "range",
    "session.timeout.ms": 6000,
})
c.subscribe([topic])
seen, deadline = 0, time.time() + 30
while seen < n:
    if time.time() > deadline:
        sys.exit(f"read {seen} of {n} records")
    m = c.poll(0.5)
    if m is not None and m.error() is None:
        seen += 1
c.commit(offsets=[TopicPartition(topic, 0, 3, metadata="m0"), TopicPartition(topic, 1, 5)],
         asynchronous=False)
print("ready", flush=True)
sys.stdin.read()
c.close()
print("closed", flush=True)
"#;

fn python() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python")
}

/// The member process and its stdout lines.
struct Member {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Member {
    fn start(bootstrap: &str, topic: &str, group: &str, records: usize) -> Result<Self> {
        let mut child = Command::new(python())
            .arg("-c")
            .arg(GROUP_MEMBER)
            .args([bootstrap, topic, group, &records.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting the confluent-kafka group member")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, lines) = mpsc::channel();
        let _ = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Self { child, lines })
    }

    fn expect(&mut self, line: &str) -> Result<()> {
        match self.lines.recv_timeout(Duration::from_secs(60)) {
            Ok(got) if got == line => Ok(()),
            Ok(got) => bail!("member said {got:?}, expected {line:?}"),
            Err(_) => bail!(
                "member did not say {line:?} (exit: {:?})",
                self.child.try_wait()
            ),
        }
    }

    /// Closes stdin: the member closes its consumer, which leaves the group.
    fn close(&mut self) -> Result<()> {
        drop(self.child.stdin.take());
        self.expect("closed")?;
        let status = self.child.wait()?;
        ensure!(status.success(), "member exited with {status}");
        Ok(())
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn consumer_groups_are_listed_described_measured_and_deleted() -> Result<()> {
    let broker = Broker::start_with(&["--group-initial-rebalance-delay-ms", "0"])?;
    let admin = admin(&broker);
    let (topic, group) = ("grouped", "billing");
    let _ = admin.create_topic(NewTopic::new(topic, 2)).await?;
    let producer = Producer::new(ProducerConfig::new(ClientConfig::new([broker.bootstrap()])))?;
    for partition in 0..2 {
        for _ in 0..5 {
            let _ = producer
                .send(ProducerRecord::new(topic).partition(partition).value("v"))
                .await?;
        }
    }
    producer.close().await;

    let mut member = Member::start(&broker.bootstrap(), topic, group, 10)?;
    member.expect("ready")?;

    let listed = admin.list_groups().await?;
    let billing = listed
        .iter()
        .find(|g| g.group_id == group)
        .with_context(|| format!("{group} not in {listed:?}"))?;
    assert_eq!(billing.protocol_type, "consumer");
    assert_eq!(billing.state.as_deref(), Some("Stable"));
    assert!(
        admin
            .list_groups_in_states(&["stable"])
            .await?
            .iter()
            .any(|g| g.group_id == group)
    );
    assert!(
        admin
            .list_groups_in_states(&["Empty"])
            .await?
            .iter()
            .all(|g| g.group_id != group)
    );

    let description = admin.describe_group(group).await?;
    assert_eq!(description.state, "Stable");
    assert_eq!(description.protocol_type, "consumer");
    assert_eq!(description.protocol, "range");
    assert_eq!(description.members.len(), 1);
    let m = &description.members[0];
    assert_eq!(m.client_id, "admin-test-member");
    assert!(m.client_host.contains("127.0.0.1"), "{}", m.client_host);
    assert!(!m.assignment.is_empty());
    assert_eq!(
        m.assigned_partitions(),
        Some(vec![(topic.to_owned(), vec![0, 1])])
    );

    let committed = admin.group_offsets(group).await?;
    // confluent-kafka-python (2.16) commits a metadata string with its C terminator.
    let summary: Vec<_> = committed
        .iter()
        .map(|c| {
            let metadata = c.metadata.as_deref().map(|m| m.trim_end_matches('\0'));
            (c.topic.as_str(), c.partition, c.offset, metadata)
        })
        .collect();
    assert_eq!(summary, [(topic, 0, 3, Some("m0")), (topic, 1, 5, None)]);

    let lag = admin.group_lag(group).await?;
    let summary: Vec<_> = lag
        .iter()
        .map(|p| (p.topic.as_str(), p.partition, p.committed, p.end, p.lag))
        .collect();
    assert_eq!(
        summary,
        [
            (topic, 0, 3, Some(5), Some(2)),
            (topic, 1, 5, Some(5), Some(0))
        ]
    );

    // Offsets are not altered from outside while the group has members.
    let refused = admin.alter_group_offsets(group, &[(topic, 0, 1)]).await?;
    assert_kafka_error(&refused[0], ErrorCode::UnknownMemberId, "'billing'");
    assert_eq!(admin.group_offsets(group).await?[0].offset, 3);

    // A group with members cannot be deleted.
    assert_kafka_error(
        &admin.delete_group(group).await,
        ErrorCode::NonEmptyGroup,
        "'billing'",
    );

    member.close()?;
    let description = admin.describe_group(group).await?;
    assert_eq!(description.state, "Empty");
    assert!(description.members.is_empty());
    assert!(
        admin
            .list_groups_in_states(&["Empty"])
            .await?
            .iter()
            .any(|g| g.group_id == group)
    );

    let deleted = admin.delete_groups(&[group, "never-was"]).await?;
    assert!(deleted[0].is_ok(), "{:?}", deleted[0]);
    assert_kafka_error(&deleted[1], ErrorCode::GroupIdNotFound, "'never-was'");
    assert_kafka_error(
        &admin.describe_group(group).await,
        ErrorCode::GroupIdNotFound,
        "'billing'",
    );
    assert!(admin.group_offsets(group).await?.is_empty());
    assert!(
        admin
            .list_groups()
            .await?
            .iter()
            .all(|g| g.group_id != group)
    );
    Ok(())
}

#[tokio::test]
async fn group_offsets_are_altered_from_outside_and_topics_have_ids() -> Result<()> {
    let broker = Broker::start()?;
    let admin = admin(&broker);
    let _ = admin.create_topic(NewTopic::new("moved", 2)).await?;
    let described = admin.describe_topic("moved").await?;
    let id = described.topic_id.context("no topic id")?;
    assert_ne!(id, [0; 16]);

    // A group that does not exist yet is created with the offsets.
    let results = admin
        .alter_group_offsets("resetter", &[("moved", 1, 7), ("moved", 0, 4)])
        .await?;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let committed: Vec<_> = admin
        .group_offsets("resetter")
        .await?
        .into_iter()
        .map(|c| (c.topic, c.partition, c.offset))
        .collect();
    assert_eq!(
        committed,
        [("moved".to_owned(), 0, 4), ("moved".to_owned(), 1, 7)]
    );

    // Altered again: the new offsets replace the old ones.
    let results = admin
        .alter_group_offsets("resetter", &[("moved", 0, 0)])
        .await?;
    assert!(results[0].is_ok(), "{results:?}");
    assert_eq!(admin.group_offsets("resetter").await?[0].offset, 0);
    Ok(())
}
