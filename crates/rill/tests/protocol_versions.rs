//! Produce and Fetch at both ends of their ranges. Produce v13 and Fetch v13-18 name topics by id
//! (KIP-516): the id Metadata gives writes and reads the topic, an id no topic has is
//! UNKNOWN_TOPIC_ID, and a deleted topic's id stays unknown after the name is reused. v0-3 get batches converted down to the old message format,
//! unless the topic says `message.downconversion.enable=false`: then UNSUPPORTED_VERSION.

mod common;

use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use common::{Broker, Result, call, connect, produce_one};
use rill_protocol::kafka_protocol::messages::create_topics_request::{
    CreatableTopic, CreatableTopicConfig,
};
use rill_protocol::kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use rill_protocol::kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use rill_protocol::kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use rill_protocol::kafka_protocol::messages::produce_request::{
    PartitionProduceData, TopicProduceData,
};
use rill_protocol::kafka_protocol::messages::{
    BrokerId, CreateTopicsRequest, DeleteTopicsRequest, FetchRequest, MetadataRequest,
    ProduceRequest, TopicName,
};
use rill_protocol::{ApiKey, ResponseKind, StrBytes};
use rill_record::{Batch, BatchBuilder, Batches, RecordSpec};
use uuid::Uuid;

const UNSUPPORTED_VERSION: i16 = 35;
const UNKNOWN_TOPIC_ID: i16 = 100;

fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_owned()))
}

/// The topic's id as Metadata v12 reports it (creating the topic if it is missing).
fn topic_id(stream: &mut std::net::TcpStream, topic: &str, id: i32) -> Result<Uuid> {
    let request = MetadataRequest::default()
        .with_allow_auto_topic_creation(true)
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic_name(topic))),
        ]));
    let ResponseKind::Metadata(response) = call(stream, ApiKey::Metadata, 12, id, request)? else {
        bail!("not a metadata answer");
    };
    let found = response.topics.first().context("no topic in metadata")?;
    ensure!(found.error_code == 0, "metadata error {}", found.error_code);
    Ok(found.topic_id)
}

/// Fetch at `version` of partition 0 from offset 0 of the topic with `id`: (error, values).
fn fetch_by_id(
    stream: &mut std::net::TcpStream,
    version: i16,
    topic_id: Uuid,
    id: i32,
) -> Result<(i16, Vec<Bytes>)> {
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_bytes(1 << 20)
        .with_min_bytes(1)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic_id(topic_id)
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let ResponseKind::Fetch(response) = call(stream, ApiKey::Fetch, version, id, request)? else {
        bail!("not a fetch answer");
    };
    ensure!(
        response.error_code == 0,
        "top-level error {}",
        response.error_code
    );
    let topic = response
        .responses
        .first()
        .context("no topic in the fetch answer")?;
    ensure!(topic.topic_id == topic_id, "answer for another topic id");
    let partition = topic.partitions.first().context("no partition")?;
    let mut values = Vec::new();
    for batch in Batches::new(partition.records.as_deref().unwrap_or_default()) {
        let batch: Batch<'_> = batch?;
        values.extend(batch.records()?.into_iter().filter_map(|r| r.value));
    }
    Ok((partition.error_code, values))
}

#[test]
fn fetch_by_topic_id_reads_the_topic_and_refuses_unknown_ids() -> Result<()> {
    let broker = Broker::start()?;
    let mut stream = connect(&broker)?;
    let topic = broker.topic("by-id");
    let batch = BatchBuilder::new()
        .record(RecordSpec::new(1).value("a"))
        .record(RecordSpec::new(2).value("b"))
        .build()?;
    let id = topic_id(&mut stream, &topic, 1)?;
    ensure!(!id.is_nil(), "a topic id");
    let (code, _) = produce_one(&mut stream, &topic, 0, batch, 2)?;
    ensure!(code == 0, "produce error {code}");

    for (n, version) in (13..=18).enumerate() {
        let (code, values) = fetch_by_id(&mut stream, version, id, 10 + n as i32)?;
        ensure!(code == 0, "v{version}: error {code}");
        ensure!(
            values == [Bytes::from("a"), Bytes::from("b")],
            "v{version}: {values:?}"
        );
        let (code, values) = fetch_by_id(&mut stream, version, Uuid::new_v4(), 20 + n as i32)?;
        ensure!(
            code == UNKNOWN_TOPIC_ID,
            "v{version} unknown id: error {code}"
        );
        ensure!(values.is_empty(), "v{version}: records for an unknown id");
    }

    // Deleted and created again under the same name: the old id is unknown, the new one reads.
    let delete = DeleteTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![DeleteTopicState::default().with_topic_id(id)]);
    let ResponseKind::DeleteTopics(deleted) =
        call(&mut stream, ApiKey::DeleteTopics, 6, 30, delete)?
    else {
        bail!("not a delete topics answer");
    };
    ensure!(
        deleted.responses.first().map(|r| r.error_code) == Some(0),
        "delete failed: {deleted:?}"
    );
    let new_id = topic_id(&mut stream, &topic, 31)?;
    let again = BatchBuilder::new()
        .record(RecordSpec::new(3).value("c"))
        .build()?;
    let (code, _) = produce_one(&mut stream, &topic, 0, again, 32)?;
    ensure!(code == 0, "produce after re-create: error {code}");
    ensure!(new_id != id, "a new topic gets a new id");
    let (code, _) = fetch_by_id(&mut stream, 17, id, 33)?;
    ensure!(
        code == UNKNOWN_TOPIC_ID,
        "old id after delete: error {code}"
    );
    let (code, values) = fetch_by_id(&mut stream, 17, new_id, 34)?;
    ensure!(
        code == 0 && values == [Bytes::from("c")],
        "new id: {code} {values:?}"
    );
    Ok(())
}

/// Fetch at `version` (below 13: by name) of partition 0 from offset 0: (error, records bytes).
fn fetch_by_name(
    stream: &mut std::net::TcpStream,
    version: i16,
    topic: &str,
    id: i32,
) -> Result<(i16, Bytes)> {
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_bytes(1 << 20)
        .with_min_bytes(1)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let ResponseKind::Fetch(response) = call(stream, ApiKey::Fetch, version, id, request)? else {
        bail!("not a fetch answer");
    };
    let partition = response
        .responses
        .first()
        .and_then(|t| t.partitions.first())
        .context("no partition in the fetch answer")?;
    Ok((
        partition.error_code,
        partition.records.clone().unwrap_or_default(),
    ))
}

#[test]
fn a_topic_without_down_conversion_refuses_old_fetches_only() -> Result<()> {
    let broker = Broker::start()?;
    let mut stream = connect(&broker)?;
    let topic = broker.topic("no-down-conversion");
    let create = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(topic_name(&topic))
                .with_num_partitions(1)
                .with_replication_factor(1)
                .with_configs(vec![
                    CreatableTopicConfig::default()
                        .with_name(StrBytes::from_static_str("message.downconversion.enable"))
                        .with_value(Some(StrBytes::from_static_str("false"))),
                ]),
        ]);
    let ResponseKind::CreateTopics(created) =
        call(&mut stream, ApiKey::CreateTopics, 7, 1, create)?
    else {
        bail!("not a create topics answer");
    };
    ensure!(
        created.topics.first().map(|t| t.error_code) == Some(0),
        "create failed: {created:?}"
    );
    let batch = BatchBuilder::new()
        .record(RecordSpec::new(1).value("v2 only"))
        .build()?;
    let (code, _) = produce_one(&mut stream, &topic, 0, batch, 2)?;
    ensure!(code == 0, "produce error {code}");
    for version in 0..=3 {
        let (code, records) = fetch_by_name(&mut stream, version, &topic, 10 + i32::from(version))?;
        ensure!(
            code == UNSUPPORTED_VERSION && records.is_empty(),
            "Fetch v{version}: error {code}, {} bytes",
            records.len()
        );
    }
    let (code, records) = fetch_by_name(&mut stream, 4, &topic, 20)?;
    ensure!(code == 0, "Fetch v4: error {code}");
    let values: Vec<Bytes> = Batch::parse(&records)?
        .records()?
        .into_iter()
        .filter_map(|r| r.value)
        .collect();
    ensure!(
        values == [Bytes::from("v2 only")],
        "Fetch v4 read {values:?}"
    );
    Ok(())
}

/// Produce v13 of `records` to partition 0 of the topic with `topic_id`: (error, base offset).
fn produce_by_id(
    stream: &mut std::net::TcpStream,
    topic_id: Uuid,
    records: Bytes,
    id: i32,
) -> Result<(i16, i64)> {
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_topic_id(topic_id)
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(records)),
                ]),
        ]);
    let ResponseKind::Produce(response) = call(stream, ApiKey::Produce, 13, id, request)? else {
        bail!("not a produce answer");
    };
    let topic = response
        .responses
        .first()
        .context("no topic in the produce answer")?;
    ensure!(topic.topic_id == topic_id, "answer for another topic id");
    let partition = topic.partition_responses.first().context("no partition")?;
    Ok((partition.error_code, partition.base_offset))
}

#[test]
fn produce_v13_writes_by_topic_id_and_refuses_unknown_ids() -> Result<()> {
    let broker = Broker::start()?;
    let mut stream = connect(&broker)?;
    let topic = broker.topic("produce-by-id");
    let id = topic_id(&mut stream, &topic, 1)?;
    let batch = |value: &'static str| {
        BatchBuilder::new()
            .record(RecordSpec::new(1).value(value))
            .build()
    };
    ensure!(produce_by_id(&mut stream, id, batch("one")?, 2)? == (0, 0));
    ensure!(produce_by_id(&mut stream, id, batch("two")?, 3)? == (0, 1));
    let (code, _) = produce_by_id(&mut stream, Uuid::new_v4(), batch("lost")?, 4)?;
    ensure!(code == UNKNOWN_TOPIC_ID, "unknown id: error {code}");
    let (code, values) = fetch_by_id(&mut stream, 17, id, 5)?;
    ensure!(
        code == 0 && values == [Bytes::from("one"), Bytes::from("two")],
        "read back: {code} {values:?}"
    );
    Ok(())
}
