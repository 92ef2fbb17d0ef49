//! The blocking façade from plain threads, with no runtime of the caller's: the producer sends
//! and closes, the admin client manages topics and reads offsets, the partition consumer and
//! the group consumer read back what the producer sent (the group member staying in its group
//! while the caller is idle for longer than the session timeout).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use common::Broker;
use rill_client::blocking::{Admin, Consumer, GroupConsumer, Producer};
use rill_client::{
    AdminConfig, ClientConfig, ConsumerRecord, ErrorCode, GroupConfig, NewTopic, Offset,
    OffsetSpec, ProducerConfig, ProducerRecord, StartOffset,
};

/// How long a test waits for a record that should come.
const WAIT: Duration = Duration::from_secs(30);

#[test]
fn blocking_producer_and_admin_work_without_a_runtime() -> Result<()> {
    let broker = Broker::start()?;
    let client = ClientConfig::new([broker.bootstrap()]);
    let admin = Admin::new(AdminConfig::new(client.clone()))?;
    let created = admin.create_topic(NewTopic::new("plain", 2))?;
    assert_eq!(created.num_partitions, Some(2));
    let err = admin
        .create_topic(NewTopic::new("plain", 2))
        .err()
        .and_then(|e| e.code());
    assert_eq!(err, Some(ErrorCode::TopicAlreadyExists));

    let producer = Producer::new(ProducerConfig::new(client))?;
    for i in 0..4 {
        let meta = producer.send(
            ProducerRecord::new("plain")
                .partition(1)
                .value(format!("{i}")),
        )?;
        assert_eq!((meta.partition, meta.offset), (1, i));
    }
    producer.flush();
    producer.close();

    let ends: Vec<(i32, i64)> = admin
        .topic_offsets("plain", OffsetSpec::Latest)?
        .iter()
        .map(|o| (o.partition, o.offset))
        .collect();
    assert_eq!(ends, [(0, 0), (1, 4)]);
    assert_eq!(admin.describe_topic("plain")?.partitions.len(), 2);
    admin.increase_partitions("plain", 3)?;
    assert_eq!(admin.describe_topic("plain")?.partitions.len(), 3);
    admin.delete_topic("plain")?;
    assert!(admin.list_topics()?.is_empty());
    Ok(())
}

#[test]
fn blocking_clients_can_be_shared_across_threads() -> Result<()> {
    let broker = Broker::start()?;
    let client = ClientConfig::new([broker.bootstrap()]);
    let admin = Admin::new(AdminConfig::new(client.clone()))?;
    let _ = admin.create_topic(NewTopic::new("shared", 1))?;
    let producer = Producer::new(ProducerConfig::new(client))?;
    std::thread::scope(|scope| {
        for t in 0..4 {
            let producer = &producer;
            let _ = scope.spawn(move || {
                for i in 0..5 {
                    let sent =
                        producer.send(ProducerRecord::new("shared").value(format!("{t}-{i}")));
                    assert!(sent.is_ok(), "{sent:?}");
                }
            });
        }
    });
    producer.close();
    let end = admin.topic_offsets("shared", OffsetSpec::Latest)?;
    assert_eq!(end.iter().map(|o| o.offset).sum::<i64>(), 20);
    Ok(())
}

/// Sends `per_partition` records to each of `partitions` partitions of `topic`, values
/// `{tag}{p}-{i}`, and returns them by partition.
fn produce(
    producer: &Producer,
    topic: &str,
    partitions: i32,
    per_partition: usize,
    tag: &str,
) -> Result<BTreeMap<i32, Vec<String>>> {
    let mut sent: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for i in 0..per_partition {
        for p in 0..partitions {
            let value = format!("{tag}{p}-{i}");
            let meta = producer.send(
                ProducerRecord::new(topic)
                    .partition(p)
                    .key(format!("k{i}"))
                    .value(value.clone()),
            )?;
            ensure!(meta.partition == p, "{meta:?}");
            sent.entry(p).or_default().push(value);
        }
    }
    Ok(sent)
}

fn value(record: &ConsumerRecord) -> Result<String> {
    let value = record.value.as_ref().context("null value")?;
    Ok(String::from_utf8(value.to_vec())?)
}

#[test]
fn blocking_partition_consumer_reads_back_what_the_blocking_producer_sent() -> Result<()> {
    let broker = Broker::start()?;
    let client = ClientConfig::new([broker.bootstrap()]);
    let admin = Admin::new(AdminConfig::new(client.clone()))?;
    let _ = admin.create_topic(NewTopic::new("pc", 3))?;
    let producer = Producer::new(ProducerConfig::new(client.clone()))?;
    let sent = produce(&producer, "pc", 3, 50, "v")?;

    let consumer = Consumer::new(client)?;
    assert_eq!(consumer.partitions("pc")?, [0, 1, 2]);
    assert_eq!(consumer.resolve_offset("pc", 1, Offset::Newest)?, 50);
    for (&p, values) in &sent {
        let mut pc = consumer.consume_partition("pc", p, Offset::Oldest)?;
        assert_eq!((pc.topic(), pc.partition()), ("pc", p));
        let mut read = Vec::new();
        for (i, record) in std::iter::from_fn(|| pc.next())
            .take(values.len())
            .enumerate()
        {
            let record = record?;
            ensure!(record.offset == i64::try_from(i)?, "{record:?}");
            ensure!(record.key.as_deref() == Some(format!("k{i}").as_bytes()));
            read.push(value(&record)?);
        }
        ensure!(&read == values, "partition {p}: {read:?}");
        assert_eq!(pc.high_watermark(), 50);
        // Nothing more: the wait ends with a timeout, and the consumer carries on.
        let idle = pc.next_timeout(Duration::from_millis(300));
        ensure!(
            matches!(idle, Some(Err(rill_client::ClientError::Timeout { .. }))),
            "{idle:?}"
        );
        let more = producer.send(ProducerRecord::new("pc").partition(p).value("late"))?;
        let record = pc
            .next_timeout(WAIT)
            .context("the consumer ended")?
            .context("the late record")?;
        ensure!(record.offset == more.offset && value(&record)? == "late");
        pc.close();
    }

    // A partition consumer outlives the consumer that started it (they share the runtime).
    let mut pc = consumer.consume_partition("pc", 0, Offset::At(10))?;
    drop(consumer);
    let record = pc.next().context("ended")??;
    ensure!(
        record.offset == 10 && value(&record)? == "v0-10",
        "{record:?}"
    );
    drop(pc);
    producer.close();
    Ok(())
}

#[test]
fn blocking_group_consumer_reads_everything_and_keeps_its_membership_while_idle() -> Result<()> {
    let broker = Broker::start_with(&["--group-initial-rebalance-delay-ms", "200"])?;
    let client = ClientConfig::new([broker.bootstrap()]);
    let admin = Admin::new(AdminConfig::new(client.clone()))?;
    let _ = admin.create_topic(NewTopic::new("gc", 4))?;
    let producer = Producer::new(ProducerConfig::new(client.clone()))?;
    let sent = produce(&producer, "gc", 4, 25, "a")?;

    let mut config = GroupConfig::new("blocking");
    config.start = StartOffset::Oldest;
    config.session_timeout = Duration::from_secs(6);
    config.heartbeat_interval = Duration::from_millis(500);
    config.auto_commit_interval = None;
    let mut group = GroupConsumer::new(client.clone(), config.clone())?;
    group.subscribe(&["gc"]);
    let mut read: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for _ in 0..100 {
        let record = group
            .next_timeout(WAIT)
            .context("the group consumer ended")??;
        read.entry(record.partition)
            .or_default()
            .push(value(&record)?);
        group.mark(&record);
    }
    ensure!(read == sent, "{read:?}");
    let mut assigned = group.assignment();
    assigned.sort();
    let expected: Vec<(String, i32)> = (0..4).map(|p| ("gc".to_owned(), p)).collect();
    assert_eq!(assigned, expected);
    group.commit()?;
    let offsets: Vec<(i32, i64)> = admin
        .group_offsets("blocking")?
        .iter()
        .map(|c| (c.partition, c.offset))
        .collect();
    assert_eq!(offsets, [(0, 25), (1, 25), (2, 25), (3, 25)]);

    // Idle for longer than the session timeout between two calls: the runtime's worker
    // keeps heartbeating, so the member is still in the same generation afterwards.
    let (member, generation) = (group.member_id().to_owned(), group.generation());
    std::thread::sleep(Duration::from_secs(8));
    let late = produce(&producer, "gc", 4, 1, "b")?;
    let mut read = BTreeMap::new();
    for _ in 0..4 {
        let record = group.next_timeout(WAIT).context("ended")??;
        let _ = read.insert(record.partition, vec![value(&record)?]);
        group.mark(&record);
    }
    ensure!(read == late, "{read:?}");
    assert_eq!(
        (group.member_id(), group.generation()),
        (member.as_str(), generation)
    );
    group.close()?;

    // A new member resumes after the committed offsets (close committed the late ones).
    let mut again = GroupConsumer::new(client, config)?;
    again.subscribe(&["gc"]);
    let _ = produce(&producer, "gc", 4, 1, "c")?;
    let mut values = Vec::new();
    for _ in 0..4 {
        values.push(value(&again.next_timeout(WAIT).context("ended")??)?);
    }
    values.sort();
    assert_eq!(values, ["c0-0", "c1-0", "c2-0", "c3-0"]);
    again.close()?;
    producer.close();
    Ok(())
}
