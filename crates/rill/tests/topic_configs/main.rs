//! Kafka's topic configs against the real broker over raw requests: every name Kafka 3.9
//! documents is accepted, checked and described with its source, and the ones Rill honours
//! change what a produce does.

#[path = "../common/mod.rs"]
#[macro_use]
mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use common::{Broker, Conn, Result, first_batch, log_end, produce_request};
use rill_protocol::StrBytes;
use rill_protocol::kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use rill_protocol::kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use rill_protocol::kafka_protocol::messages::describe_configs_response::DescribeConfigsResourceResult;
use rill_protocol::kafka_protocol::messages::produce_response::PartitionProduceResponse;
use rill_protocol::kafka_protocol::messages::{
    DeleteRecordsRequest, DescribeConfigsRequest, TopicName,
};
use rill_record::{Batch, BatchBuilder, Compression, RecordSpec, TimestampType};

const NONE: i16 = 0;
const INVALID_CONFIG: i16 = 40;
const INVALID_REQUEST: i16 = 42;
const POLICY_VIOLATION: i16 = 44;
const NOT_ENOUGH_REPLICAS: i16 = 19;
const INVALID_TIMESTAMP: i16 = 32;
const INVALID_RECORD: i16 = 87;

const RESOURCE_TOPIC: i8 = 2;
const SOURCE_TOPIC_CONFIG: i8 = 1;
const SOURCE_STATIC_BROKER_CONFIG: i8 = 4;
const SOURCE_DEFAULT_CONFIG: i8 = 5;

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// Kafka 3.9's topic configs: (name, DescribeConfigs type, Kafka's default).
const KAFKA_TOPIC_CONFIGS: &[(&str, i8, &str)] = &[
    ("cleanup.policy", 7, "delete"),
    ("compression.gzip.level", 3, "-1"),
    ("compression.lz4.level", 3, "9"),
    ("compression.type", 2, "producer"),
    ("compression.zstd.level", 3, "3"),
    ("delete.retention.ms", 5, "86400000"),
    ("file.delete.delay.ms", 5, "60000"),
    ("flush.messages", 5, "9223372036854775807"),
    ("flush.ms", 5, "9223372036854775807"),
    ("follower.replication.throttled.replicas", 7, ""),
    ("index.interval.bytes", 3, "4096"),
    ("leader.replication.throttled.replicas", 7, ""),
    ("local.retention.bytes", 5, "-2"),
    ("local.retention.ms", 5, "-2"),
    ("max.compaction.lag.ms", 5, "9223372036854775807"),
    ("max.message.bytes", 3, "1048588"),
    ("message.downconversion.enable", 1, "true"),
    ("message.format.version", 2, "3.0-IV1"),
    ("message.timestamp.after.max.ms", 5, "9223372036854775807"),
    ("message.timestamp.before.max.ms", 5, "9223372036854775807"),
    (
        "message.timestamp.difference.max.ms",
        5,
        "9223372036854775807",
    ),
    ("message.timestamp.type", 2, "CreateTime"),
    ("min.cleanable.dirty.ratio", 6, "0.5"),
    ("min.compaction.lag.ms", 5, "0"),
    ("min.insync.replicas", 3, "1"),
    ("preallocate", 1, "false"),
    ("remote.log.copy.disable", 1, "false"),
    ("remote.log.delete.on.disable", 1, "false"),
    ("remote.storage.enable", 1, "false"),
    ("retention.bytes", 5, "-1"),
    ("retention.ms", 5, "604800000"),
    ("segment.bytes", 3, "1073741824"),
    ("segment.index.bytes", 3, "10485760"),
    ("segment.jitter.ms", 5, "0"),
    ("segment.ms", 5, "604800000"),
    ("unclean.leader.election.enable", 1, "false"),
];

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_owned())
}

/// CreateTopics v7 of one single-partition topic; returns its error code.
fn create(conn: &mut Conn, topic: &str, configs: &[(&str, &str)]) -> Result<i16> {
    conn.create_topic(topic, configs)
}

fn create_ok(conn: &mut Conn, topic: &str, configs: &[(&str, &str)]) -> Result<()> {
    let code = create(conn, topic, configs)?;
    ensure!(
        code == NONE,
        "creating {topic} with {configs:?}: error {code}"
    );
    Ok(())
}

/// Produce v9 of one batch to partition 0: the partition's answer.
fn produce(
    conn: &mut Conn,
    topic: &str,
    batch: Bytes,
    acks: i16,
) -> Result<PartitionProduceResponse> {
    let response = ask!(conn, Produce, 9, produce_request(topic, 0, batch, acks));
    response
        .responses
        .into_iter()
        .next()
        .and_then(|t| t.partition_responses.into_iter().next())
        .context("no partition in the produce answer")
}

/// The first stored batch at or after `offset` of partition 0.
fn fetch_batch(conn: &mut Conn, topic: &str, offset: i64) -> Result<Bytes> {
    let id = conn.id();
    first_batch(&mut conn.stream, topic, 0, offset, id)
}

fn now_ms() -> Result<i64> {
    Ok(i64::try_from(
        SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis(),
    )?)
}

/// DeleteRecords v2 of partition 0 below `before`: (error code, low watermark).
fn delete_records(conn: &mut Conn, topic: &str, before: i64) -> Result<(i16, i64)> {
    let request = DeleteRecordsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![
            DeleteRecordsTopic::default()
                .with_name(TopicName(text(topic)))
                .with_partitions(vec![
                    DeleteRecordsPartition::default()
                        .with_partition_index(0)
                        .with_offset(before),
                ]),
        ]);
    let response = ask!(conn, DeleteRecords, 2, request);
    response
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .map(|p| (p.error_code, p.low_watermark))
        .context("no partition in the DeleteRecords answer")
}

/// Partition 0's log end offset.
fn end(conn: &mut Conn, topic: &str) -> Result<i64> {
    let id = conn.id();
    log_end(&mut conn.stream, topic, 0, id)
}

/// One uncompressed batch of keyed records with these values, CreateTime `timestamp`.
fn batch(values: &[&str], timestamp: i64) -> Result<Bytes> {
    let mut builder = BatchBuilder::new();
    for (i, value) in values.iter().enumerate() {
        builder = builder.record(
            RecordSpec::new(timestamp)
                .key(format!("k{i}"))
                .value(value.to_string()),
        );
    }
    Ok(builder.build()?)
}

/// DescribeConfigs v4 of a topic, synonyms included: every entry.
fn describe(conn: &mut Conn, topic: &str) -> Result<Vec<DescribeConfigsResourceResult>> {
    let request = DescribeConfigsRequest::default()
        .with_include_synonyms(true)
        .with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(RESOURCE_TOPIC)
                .with_resource_name(text(topic))
                .with_configuration_keys(None),
        ]);
    let response = ask!(conn, DescribeConfigs, 4, request);
    let result = response
        .results
        .into_iter()
        .next()
        .context("no resource in the DescribeConfigs answer")?;
    ensure!(
        result.error_code == NONE,
        "DescribeConfigs {topic}: error {}",
        result.error_code
    );
    Ok(result.configs)
}

/// A topic config's (value, source).
fn config(conn: &mut Conn, topic: &str, key: &str) -> Result<(String, i8)> {
    let entry = describe(conn, topic)?
        .into_iter()
        .find(|e| e.name.as_str() == key)
        .with_context(|| format!("{key} missing from DescribeConfigs of {topic}"))?;
    Ok((
        entry.value.map(|v| v.to_string()).unwrap_or_default(),
        entry.config_source,
    ))
}

/// IncrementalAlterConfigs v1 of one topic: (name, operation, value). Returns the error code
/// and message.
fn alter(
    conn: &mut Conn,
    topic: &str,
    changes: &[(&str, i8, Option<&str>)],
) -> Result<(i16, String)> {
    conn.incremental_alter_configs(RESOURCE_TOPIC, topic, changes, false)
}

mod alter;
mod produce;
