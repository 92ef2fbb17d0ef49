//! Kafka's topic configs against the real broker over raw requests: every name Kafka 3.9
//! documents is accepted, checked and described with its source, and the ones Rill honours
//! change what a produce does.

mod common;

use std::net::TcpStream;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use common::{Broker, Result, call, connect, log_end, produce_request};
use rill_protocol::kafka_protocol::messages::create_topics_request::{
    CreatableTopic, CreatableTopicConfig,
};
use rill_protocol::kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use rill_protocol::kafka_protocol::messages::describe_configs_response::DescribeConfigsResourceResult;
use rill_protocol::kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use rill_protocol::kafka_protocol::messages::incremental_alter_configs_request as incremental;
use rill_protocol::kafka_protocol::messages::produce_response::PartitionProduceResponse;
use rill_protocol::kafka_protocol::messages::{
    BrokerId, CreateTopicsRequest, DescribeConfigsRequest, FetchRequest,
    IncrementalAlterConfigsRequest, TopicName,
};
use rill_protocol::{ApiKey, ResponseKind, StrBytes};
use rill_record::{Batch, BatchBuilder, RecordSpec, TimestampType};

const NONE: i16 = 0;
const INVALID_CONFIG: i16 = 40;
const INVALID_REQUEST: i16 = 42;
const NOT_ENOUGH_REPLICAS: i16 = 19;

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

/// A raw connection that numbers its requests.
struct Conn {
    stream: TcpStream,
    next_id: i32,
}

impl Conn {
    fn open(broker: &Broker) -> Result<Self> {
        Ok(Self {
            stream: connect(broker)?,
            next_id: 1,
        })
    }

    fn id(&mut self) -> i32 {
        self.next_id += 1;
        self.next_id
    }
}

/// Sends one request on a [`Conn`] and unwraps the answer of the same API.
macro_rules! ask {
    ($conn:expr, $api:ident, $version:expr, $body:expr) => {{
        let conn: &mut Conn = $conn;
        let id = conn.id();
        match call(&mut conn.stream, ApiKey::$api, $version, id, $body)? {
            ResponseKind::$api(response) => response,
            other => bail!("expected a {} answer, got {other:?}", stringify!($api)),
        }
    }};
}

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_owned())
}

/// CreateTopics v7 of one single-partition topic; returns its error code.
fn create(conn: &mut Conn, topic: &str, configs: &[(&str, &str)]) -> Result<i16> {
    let configs = configs
        .iter()
        .map(|(k, v)| {
            CreatableTopicConfig::default()
                .with_name(text(k))
                .with_value(Some(text(v)))
        })
        .collect();
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(TopicName(text(topic)))
                .with_num_partitions(1)
                .with_replication_factor(1)
                .with_configs(configs),
        ]);
    let response = ask!(conn, CreateTopics, 7, request);
    response
        .topics
        .first()
        .map(|t| t.error_code)
        .context("no topic in the CreateTopics answer")
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

/// The first stored batch at or after `offset` of partition 0, as Fetch v12 returns it.
fn fetch_batch(conn: &mut Conn, topic: &str, offset: i64) -> Result<Bytes> {
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(TopicName(text(topic)))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let response = ask!(conn, Fetch, 12, request);
    let partition = response
        .responses
        .into_iter()
        .next()
        .and_then(|t| t.partitions.into_iter().next())
        .context("no partition in the fetch answer")?;
    ensure!(
        partition.error_code == NONE,
        "fetch: error {}",
        partition.error_code
    );
    let records = partition.records.context("no records fetched")?;
    let len = Batch::parse(&records)?.as_bytes().len();
    Ok(records.slice(..len))
}

fn now_ms() -> Result<i64> {
    Ok(i64::try_from(
        SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis(),
    )?)
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
    let configs = changes
        .iter()
        .map(|(k, op, v)| {
            incremental::AlterableConfig::default()
                .with_name(text(k))
                .with_config_operation(*op)
                .with_value(v.map(text))
        })
        .collect();
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        incremental::AlterConfigsResource::default()
            .with_resource_type(RESOURCE_TOPIC)
            .with_resource_name(text(topic))
            .with_configs(configs),
    ]);
    let response = ask!(conn, IncrementalAlterConfigs, 1, request);
    let result = response
        .responses
        .first()
        .context("no resource in the IncrementalAlterConfigs answer")?;
    Ok((
        result.error_code,
        result
            .error_message
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
    ))
}

#[test]
fn every_kafka_topic_config_is_described_with_its_type_default_and_source() -> Result<()> {
    let broker = Broker::start_with(&["--min-insync-replicas", "2"])?;
    let mut c = Conn::open(&broker)?;
    let topic = broker.topic("described");
    create_ok(&mut c, &topic, &[("preallocate", "true")])?;
    let entries = describe(&mut c, &topic)?;
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    let expected: Vec<&str> = KAFKA_TOPIC_CONFIGS.iter().map(|(n, ..)| *n).collect();
    ensure!(names == expected, "described {names:?}");
    for (name, kind, default) in KAFKA_TOPIC_CONFIGS {
        let entry = entries
            .iter()
            .find(|e| e.name.as_str() == *name)
            .context("missing")?;
        let value = entry.value.as_deref().unwrap_or_default();
        let (want_value, want_source) = match *name {
            "preallocate" => ("true", SOURCE_TOPIC_CONFIG),
            "min.insync.replicas" => ("2", SOURCE_STATIC_BROKER_CONFIG),
            _ => (*default, SOURCE_DEFAULT_CONFIG),
        };
        ensure!(
            value == want_value
                && entry.config_source == want_source
                && entry.config_type == *kind
                && !entry.read_only,
            "{name}: {entry:?}"
        );
    }
    // The broker setting appears as a synonym under its broker name, above Kafka's default.
    let min_isr = entries
        .iter()
        .find(|e| e.name.as_str() == "min.insync.replicas")
        .context("missing")?;
    let synonyms: Vec<(&str, &str, i8)> = min_isr
        .synonyms
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.value.as_deref().unwrap_or_default(),
                s.source,
            )
        })
        .collect();
    ensure!(
        synonyms
            == [
                ("min.insync.replicas", "2", SOURCE_STATIC_BROKER_CONFIG),
                ("min.insync.replicas", "1", SOURCE_DEFAULT_CONFIG),
            ],
        "min.insync.replicas synonyms: {synonyms:?}"
    );
    Ok(())
}

#[test]
fn kafka_values_are_accepted_and_bad_ones_refused_with_invalid_config() -> Result<()> {
    let broker = Broker::start()?;
    let mut c = Conn::open(&broker)?;
    let topic = broker.topic("checked");
    create_ok(
        &mut c,
        &topic,
        &[
            ("message.format.version", "0.10.0"),
            ("unclean.leader.election.enable", "true"),
            ("leader.replication.throttled.replicas", "0:0"),
        ],
    )?;
    for (name, value) in [
        ("message.format.version", "2.8"),
        ("message.format.version", "3.0-IV1"),
        ("min.cleanable.dirty.ratio", "0.25"),
        ("follower.replication.throttled.replicas", "*"),
        ("compression.zstd.level", "-5"),
        ("segment.jitter.ms", "100"),
        ("local.retention.ms", "-2"),
        ("cleanup.policy", "delete,compact"),
    ] {
        let (code, message) = alter(&mut c, &topic, &[(name, OP_SET, Some(value))])?;
        ensure!(code == NONE, "SET {name}={value}: {code} {message}");
        ensure!(
            config(&mut c, &topic, name)? == (value.to_owned(), SOURCE_TOPIC_CONFIG),
            "{name} after SET {value}"
        );
    }
    for (name, value) in [
        ("message.format.version", "9.9"),
        ("min.insync.replicas", "0"),
        ("min.cleanable.dirty.ratio", "2"),
        ("compression.type", "brotli"),
        ("compression.gzip.level", "10"),
        ("message.timestamp.type", "WallClock"),
        ("cleanup.policy", "compact,archive"),
        ("preallocate", "maybe"),
        ("leader.replication.throttled.replicas", "all"),
        ("remote.storage.enable", "true"),
        ("segment.index.bytes", "3"),
    ] {
        let (code, message) = alter(&mut c, &topic, &[(name, OP_SET, Some(value))])?;
        ensure!(
            code == INVALID_CONFIG && message.contains(name),
            "SET {name}={value}: {code} {message}"
        );
        let bad = broker.topic("refused");
        let code = create(&mut c, &bad, &[(name, value)])?;
        ensure!(
            code == INVALID_CONFIG,
            "CreateTopics {name}={value}: {code}"
        );
    }
    ensure!(
        config(&mut c, &topic, "message.format.version")?
            == ("3.0-IV1".to_owned(), SOURCE_TOPIC_CONFIG),
        "a refused value changed message.format.version"
    );
    let (code, _) = alter(
        &mut c,
        &topic,
        &[("message.format.version", OP_DELETE, None)],
    )?;
    ensure!(code == NONE, "DELETE: {code}");
    ensure!(
        config(&mut c, &topic, "message.format.version")?
            == ("3.0-IV1".to_owned(), SOURCE_DEFAULT_CONFIG),
        "message.format.version after DELETE"
    );
    Ok(())
}

#[test]
fn append_and_subtract_change_list_configs_only() -> Result<()> {
    let broker = Broker::start()?;
    let mut c = Conn::open(&broker)?;
    let topic = broker.topic("lists");
    create_ok(&mut c, &topic, &[])?;
    let policy = |c: &mut Conn| config(c, &topic, "cleanup.policy");

    // librdkafka's test 0011 appends compact to the default policy this way.
    let (code, message) = alter(
        &mut c,
        &topic,
        &[("cleanup.policy", OP_APPEND, Some("compact"))],
    )?;
    ensure!(code == NONE, "APPEND compact: {code} {message}");
    ensure!(
        policy(&mut c)? == ("delete,compact".to_owned(), SOURCE_TOPIC_CONFIG),
        "after APPEND: {:?}",
        policy(&mut c)?
    );
    // Appending what is there already changes nothing.
    let (code, _) = alter(
        &mut c,
        &topic,
        &[("cleanup.policy", OP_APPEND, Some("delete"))],
    )?;
    ensure!(code == NONE, "APPEND delete again: {code}");
    ensure!(
        policy(&mut c)? == ("delete,compact".to_owned(), SOURCE_TOPIC_CONFIG),
        "after a second APPEND: {:?}",
        policy(&mut c)?
    );
    let (code, _) = alter(
        &mut c,
        &topic,
        &[("cleanup.policy", OP_SUBTRACT, Some("delete"))],
    )?;
    ensure!(code == NONE, "SUBTRACT delete: {code}");
    ensure!(
        policy(&mut c)? == ("compact".to_owned(), SOURCE_TOPIC_CONFIG),
        "after SUBTRACT: {:?}",
        policy(&mut c)?
    );

    // The throttled-replicas lists, from their empty default; several operations in order.
    let (code, message) = alter(
        &mut c,
        &topic,
        &[
            (
                "leader.replication.throttled.replicas",
                OP_APPEND,
                Some("0:0,1:0"),
            ),
            (
                "leader.replication.throttled.replicas",
                OP_SUBTRACT,
                Some("0:0"),
            ),
            (
                "follower.replication.throttled.replicas",
                OP_APPEND,
                Some("2:0"),
            ),
        ],
    )?;
    ensure!(code == NONE, "throttled lists: {code} {message}");
    ensure!(
        config(&mut c, &topic, "leader.replication.throttled.replicas")?
            == ("1:0".to_owned(), SOURCE_TOPIC_CONFIG),
        "leader list"
    );
    ensure!(
        config(&mut c, &topic, "follower.replication.throttled.replicas")?
            == ("2:0".to_owned(), SOURCE_TOPIC_CONFIG),
        "follower list"
    );

    // Not a list: INVALID_REQUEST, as Kafka answers; a bad item: INVALID_CONFIG.
    for op in [OP_APPEND, OP_SUBTRACT] {
        let (code, message) = alter(&mut c, &topic, &[("retention.ms", op, Some("1000"))])?;
        ensure!(
            code == INVALID_REQUEST && message.contains("retention.ms"),
            "op {op} on retention.ms: {code} {message}"
        );
    }
    let (code, _) = alter(
        &mut c,
        &topic,
        &[("cleanup.policy", OP_APPEND, Some("archive"))],
    )?;
    ensure!(code == INVALID_CONFIG, "APPEND archive: {code}");
    let (code, _) = alter(&mut c, &topic, &[("no.such.list", OP_APPEND, Some("x"))])?;
    ensure!(
        code == INVALID_CONFIG,
        "APPEND to an unknown config: {code}"
    );
    ensure!(
        policy(&mut c)? == ("compact".to_owned(), SOURCE_TOPIC_CONFIG),
        "refused operations changed the policy: {:?}",
        policy(&mut c)?
    );
    Ok(())
}

#[test]
fn min_insync_replicas_above_one_refuses_acks_all_only() -> Result<()> {
    let broker = Broker::start_with(&["--min-insync-replicas", "2"])?;
    let mut c = Conn::open(&broker)?;
    let from_broker = broker.topic("isr-broker");
    let own = broker.topic("isr-topic");
    let relaxed = broker.topic("isr-relaxed");
    create_ok(&mut c, &from_broker, &[])?;
    create_ok(&mut c, &own, &[("min.insync.replicas", "3")])?;
    create_ok(&mut c, &relaxed, &[("min.insync.replicas", "1")])?;
    for topic in [&from_broker, &own] {
        let answer = produce(&mut c, topic, batch(&["refused"], 1_700_000_000_000)?, -1)?;
        ensure!(
            answer.error_code == NOT_ENOUGH_REPLICAS && answer.base_offset == -1,
            "acks=all to {topic}: {answer:?}"
        );
        ensure!(
            end(&mut c, topic)? == 0,
            "a refused batch was appended to {topic}"
        );
        let answer = produce(&mut c, topic, batch(&["a", "b"], 1_700_000_000_000)?, 1)?;
        ensure!(
            answer.error_code == NONE && answer.base_offset == 0,
            "acks=1 to {topic}: {answer:?}"
        );
        ensure!(end(&mut c, topic)? == 2, "acks=1 to {topic} appended");
    }
    let answer = produce(&mut c, &relaxed, batch(&["ok"], 1_700_000_000_000)?, -1)?;
    ensure!(
        answer.error_code == NONE,
        "acks=all with min.insync.replicas=1: {answer:?}"
    );
    Ok(())
}

#[test]
fn log_append_time_stamps_the_stored_batch_and_the_answer() -> Result<()> {
    let broker = Broker::start()?;
    let mut c = Conn::open(&broker)?;
    let topic = broker.topic("stamped");
    create_ok(
        &mut c,
        &topic,
        &[("message.timestamp.type", "LogAppendTime")],
    )?;
    let before = now_ms()?;
    let answer = produce(&mut c, &topic, batch(&["a", "b"], 1_000)?, -1)?;
    let after = now_ms()?;
    ensure!(answer.error_code == NONE, "produce: {answer:?}");
    let stamped = answer.log_append_time_ms;
    ensure!(
        (before..=after).contains(&stamped),
        "log_append_time_ms {stamped} not in [{before}, {after}]"
    );
    let stored = fetch_batch(&mut c, &topic, 0)?;
    let view = Batch::parse(&stored)?;
    view.verify_crc()?;
    ensure!(
        view.header().attributes.timestamp_type() == TimestampType::LogAppendTime
            && view.header().max_timestamp == stamped,
        "stored header: {:?}",
        view.header()
    );
    let timestamps: Vec<i64> = view.records()?.iter().map(|r| r.timestamp).collect();
    ensure!(
        timestamps == [stamped, stamped],
        "records read {timestamps:?}"
    );

    // Back to CreateTime: no stamp, and the answer says so with -1.
    let (code, _) = alter(
        &mut c,
        &topic,
        &[("message.timestamp.type", OP_DELETE, None)],
    )?;
    ensure!(code == NONE, "DELETE message.timestamp.type: {code}");
    let answer = produce(&mut c, &topic, batch(&["c"], 1_000)?, -1)?;
    ensure!(
        answer.error_code == NONE && answer.log_append_time_ms == -1,
        "CreateTime produce: {answer:?}"
    );
    let stored = fetch_batch(&mut c, &topic, 2)?;
    let header = *Batch::parse(&stored)?.header();
    ensure!(
        header.attributes.timestamp_type() == TimestampType::CreateTime
            && header.max_timestamp == 1_000,
        "CreateTime batch: {header:?}"
    );
    Ok(())
}
