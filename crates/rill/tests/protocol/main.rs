//! The broker over raw Kafka requests, black-box: exact error codes, offsets, counts and bytes
//! for what clients rarely send (refused produces, fetch edge cases, DeleteRecords, admin APIs),
//! request ordering on one connection, and hostile array counts.

#[path = "../common/mod.rs"]
#[macro_use]
mod common;

use std::io::Write as _;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use bytes::{Bytes, BytesMut};

use common::{
    Broker, Conn, Reaction, Result, assert_healthy, call, connect, encode_request, frame_v1, ms,
    produce_request, reaction, read_frame, read_response, send_request, sized,
};
use rill_protocol::kafka_protocol::messages::alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use rill_protocol::kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsTopic,
};
use rill_protocol::kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use rill_protocol::kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use rill_protocol::kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use rill_protocol::kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use rill_protocol::kafka_protocol::messages::describe_configs_response::DescribeConfigsResourceResult;
use rill_protocol::kafka_protocol::messages::describe_topic_partitions_request::{
    Cursor, TopicRequest,
};
use rill_protocol::kafka_protocol::messages::describe_topic_partitions_response::DescribeTopicPartitionsResponse;
use rill_protocol::kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use rill_protocol::kafka_protocol::messages::fetch_response::PartitionData;
use rill_protocol::kafka_protocol::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsTopic,
};
use rill_protocol::kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use rill_protocol::kafka_protocol::messages::{
    AlterConfigsRequest, ApiVersionsRequest, BrokerId, CreatePartitionsRequest,
    CreateTopicsRequest, DeleteRecordsRequest, DescribeClusterRequest, DescribeConfigsRequest,
    DescribeGroupsRequest, DescribeTopicPartitionsRequest, FetchRequest, FetchResponse, GroupId,
    InitProducerIdRequest, ListOffsetsRequest, MetadataRequest, TopicName,
};
use rill_protocol::{ApiKey, Response, ResponseKind, StrBytes};
use rill_record::{Batch, BatchBuilder, Batches, RecordSpec};

// Kafka's error codes, as the tests expect them on the wire.
const NONE: i16 = 0;
const OFFSET_OUT_OF_RANGE: i16 = 1;
const CORRUPT_MESSAGE: i16 = 2;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const MESSAGE_TOO_LARGE: i16 = 10;
const INVALID_TOPIC_EXCEPTION: i16 = 17;
const INVALID_REQUIRED_ACKS: i16 = 21;
const TOPIC_ALREADY_EXISTS: i16 = 36;
const INVALID_PARTITIONS: i16 = 37;
const INVALID_REPLICATION_FACTOR: i16 = 38;
const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
const INVALID_CONFIG: i16 = 40;
const INVALID_REQUEST: i16 = 42;
const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
const INVALID_RECORD: i16 = 87;

/// ListOffsets timestamps.
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

/// DescribeConfigs resource types and config sources.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const SOURCE_TOPIC_CONFIG: i8 = 1;
const SOURCE_STATIC_BROKER_CONFIG: i8 = 4;
const SOURCE_DEFAULT_CONFIG: i8 = 5;

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_owned()))
}

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_owned())
}

/// One batch of records with these values, base offset 0, no producer id.
fn batch(values: &[&[u8]]) -> Result<Bytes> {
    let mut builder = BatchBuilder::new();
    for value in values {
        builder = builder.record(RecordSpec::new(1_700_000_000_000).value(value.to_vec()));
    }
    Ok(builder.build()?)
}

/// A batch of `records` records with `value_len`-byte values.
fn sized_batch(records: usize, value_len: usize) -> Result<Bytes> {
    let value = vec![b'v'; value_len];
    let values: Vec<&[u8]> = (0..records).map(|_| value.as_slice()).collect();
    batch(&values)
}

/// CreateTopics v7 for one topic; returns its result.
fn create(
    conn: &mut Conn,
    topic: &str,
    partitions: i32,
    replication_factor: i16,
    configs: &[(&str, &str)],
    validate_only: bool,
) -> Result<CreatableTopicResult> {
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
        .with_validate_only(validate_only)
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(name(topic))
                .with_num_partitions(partitions)
                .with_replication_factor(replication_factor)
                .with_configs(configs),
        ]);
    let response = ask!(conn, CreateTopics, 7, request);
    let result = response
        .topics
        .into_iter()
        .next()
        .context("no topic in the CreateTopics answer")?;
    ensure!(
        result.name.0.as_str() == topic,
        "CreateTopics answered for {:?}, asked for {topic:?}",
        result.name.0.as_str()
    );
    Ok(result)
}

fn create_ok(
    conn: &mut Conn,
    topic: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> Result<()> {
    let result = create(conn, topic, partitions, 1, configs, false)?;
    ensure!(
        result.error_code == NONE,
        "creating {topic}: error {} {:?}",
        result.error_code,
        result.error_message
    );
    Ok(())
}

/// A fetch of `(partition, offset, partition_max_bytes)` from one topic.
fn fetch_request(
    topic: &str,
    partitions: &[(i32, i64, i32)],
    max_wait_ms: i32,
    max_bytes: i32,
) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(max_bytes)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(name(topic))
                .with_partitions(
                    partitions
                        .iter()
                        .map(|&(partition, offset, max)| {
                            FetchPartition::default()
                                .with_partition(partition)
                                .with_fetch_offset(offset)
                                .with_partition_max_bytes(max)
                        })
                        .collect(),
                ),
        ])
}

/// Fetch (v12 unless `version` says otherwise) without waiting, everything under 1 MiB.
fn fetch(
    conn: &mut Conn,
    version: i16,
    topic: &str,
    partitions: &[(i32, i64, i32)],
    max_bytes: i32,
) -> Result<FetchResponse> {
    let response = ask!(
        conn,
        Fetch,
        version,
        fetch_request(topic, partitions, 0, max_bytes)
    );
    ensure!(
        response.error_code == NONE,
        "fetch answered top-level error {}",
        response.error_code
    );
    Ok(response)
}

/// Fetch v12 of one partition at `offset` with 1 MiB limits.
fn fetch_at(conn: &mut Conn, topic: &str, partition: i32, offset: i64) -> Result<PartitionData> {
    let response = fetch(conn, 12, topic, &[(partition, offset, 1 << 20)], 1 << 20)?;
    Ok(part(&response, partition)?.clone())
}

/// The answer for `partition` (of the only topic) in a fetch answer.
fn part(response: &FetchResponse, partition: i32) -> Result<&PartitionData> {
    response
        .responses
        .iter()
        .flat_map(|t| &t.partitions)
        .find(|p| p.partition_index == partition)
        .with_context(|| format!("no partition {partition} in the fetch answer"))
}

/// A stored batch as a fetch returned it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Got {
    base_offset: i64,
    count: i32,
    bytes: Bytes,
}

/// Splits fetched records into whole batches, each with a valid CRC; fails on a partial one.
fn batches(records: Option<&Bytes>) -> Result<Vec<Got>> {
    let Some(records) = records else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    let mut at = 0;
    for batch in Batches::new(records) {
        let batch = batch.context("a fetched batch does not parse")?;
        batch
            .verify_crc()
            .context("a fetched batch has a bad CRC")?;
        let len = batch.as_bytes().len();
        out.push(Got {
            base_offset: batch.header().base_offset,
            count: batch.header().records_count,
            bytes: records.slice(at..at + len),
        });
        at += len;
    }
    ensure!(
        at == records.len(),
        "{} bytes after the last whole batch of {}",
        records.len() - at,
        records.len()
    );
    Ok(out)
}

/// The stored form of a produced batch: the same bytes with the base offset assigned.
fn stored(produced: &Bytes, base_offset: i64) -> Bytes {
    let mut bytes = BytesMut::from(&produced[..]);
    bytes[..8].copy_from_slice(&base_offset.to_be_bytes());
    bytes.freeze()
}

/// Rewrites the CRC of a patched batch.
fn fix_crc(bytes: &mut [u8]) -> Result<()> {
    let crc = Batch::parse(bytes)?.compute_crc();
    bytes[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Produce

#[test]
fn refused_produces_get_exact_error_codes_and_write_nothing() -> Result<()> {
    let broker = Broker::start()?;
    let mut c = Conn::open(&broker)?;
    let topic = broker.topic("refusals");
    let small = broker.topic("small-messages");
    let missing = broker.topic("no-such-topic");
    create_ok(&mut c, &topic, 1, &[])?;
    create_ok(&mut c, &small, 1, &[("max.message.bytes", "1000")])?;

    let good = batch(&[b"a", b"b", b"c"])?;
    let mut flipped = good.to_vec();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x01;
    let mut magic_1 = good.to_vec();
    magic_1[16] = 1;
    let mut two = good.to_vec();
    two.extend_from_slice(&good);
    // recordsCount (bytes 57..61) says 4 while lastOffsetDelta says 2; the CRC is right.
    let mut count_4 = good.to_vec();
    count_4[57..61].copy_from_slice(&4_i32.to_be_bytes());
    fix_crc(&mut count_4)?;
    // lastOffsetDelta (bytes 23..27) says 1 while three records are counted; the CRC is right.
    let mut delta_1 = good.to_vec();
    delta_1[23..27].copy_from_slice(&1_i32.to_be_bytes());
    fix_crc(&mut delta_1)?;
    let big = sized_batch(1, 2000)?;
    let ResponseKind::InitProducerId(init) = call(
        &mut c.stream,
        ApiKey::InitProducerId,
        4,
        1,
        InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000),
    )?
    else {
        bail!("not an InitProducerId answer");
    };
    ensure!(
        init.error_code == NONE,
        "InitProducerId: {}",
        init.error_code
    );
    let transactional = BatchBuilder::new()
        .producer(init.producer_id.0, init.producer_epoch, 0)
        .transactional(true)
        .record(RecordSpec::new(1_700_000_000_000).value(b"t".to_vec()))
        .build()?;

    let cases: Vec<(&str, &str, i32, Bytes, i16)> = vec![
        (
            "unknown topic",
            &missing,
            0,
            good.clone(),
            UNKNOWN_TOPIC_OR_PARTITION,
        ),
        (
            "unknown partition",
            &topic,
            1,
            good.clone(),
            UNKNOWN_TOPIC_OR_PARTITION,
        ),
        (
            "negative partition",
            &topic,
            -1,
            good.clone(),
            UNKNOWN_TOPIC_OR_PARTITION,
        ),
        (
            "flipped record byte",
            &topic,
            0,
            flipped.into(),
            CORRUPT_MESSAGE,
        ),
        (
            "magic 1 in produce v3+",
            &topic,
            0,
            magic_1.into(),
            INVALID_RECORD,
        ),
        (
            "2 KB over max.message.bytes=1000",
            &small,
            0,
            big,
            MESSAGE_TOO_LARGE,
        ),
        ("two batches", &topic, 0, two.into(), INVALID_RECORD),
        (
            "recordsCount 4, lastOffsetDelta 2",
            &topic,
            0,
            count_4.into(),
            INVALID_RECORD,
        ),
        (
            "recordsCount 3, lastOffsetDelta 1",
            &topic,
            0,
            delta_1.into(),
            INVALID_RECORD,
        ),
        // A transactional batch in a produce request without a transactional id (Kafka's
        // answer: TRANSACTIONAL_ID_AUTHORIZATION_FAILED).
        (
            "transactional batch",
            &topic,
            0,
            transactional,
            rill_protocol::ErrorCode::TransactionalIdAuthorizationFailed.code(),
        ),
    ];
    for (what, to, partition, records, expected) in cases {
        let (code, base_offset) = c.produce(to, partition, records)?;
        ensure!(
            code == expected && base_offset == -1,
            "{what}: answered error {code} at base offset {base_offset}, expected error {expected} at -1"
        );
        ensure!(c.log_end(&topic, 0)? == 0, "{what}: {topic} grew");
        ensure!(c.log_end(&small, 0)? == 0, "{what}: {small} grew");
    }

    // acks=2 is refused for the whole request, whatever the batch.
    let response = ask!(
        &mut c,
        Produce,
        9,
        produce_request(&topic, 0, good.clone(), 2)
    );
    let answer = response
        .responses
        .first()
        .and_then(|t| t.partition_responses.first())
        .context("no partition in the acks=2 answer")?;
    ensure!(
        answer.error_code == INVALID_REQUIRED_ACKS,
        "acks=2 answered {}",
        answer.error_code
    );
    ensure!(c.log_end(&topic, 0)? == 0, "acks=2 wrote");

    // Produce does not create topics.
    let (code, _) = c.offset(&missing, 0, LATEST)?;
    ensure!(
        code == UNKNOWN_TOPIC_OR_PARTITION,
        "{missing} after a produce: ListOffsets error {code}"
    );

    // max.message.bytes counts the whole batch: exactly 1000 bytes is accepted, 1001 refused.
    let (at_limit, over_limit) = {
        let mut found = (None, None);
        for value_len in 800..1000 {
            let b = sized_batch(1, value_len)?;
            match b.len() {
                1000 => found.0 = Some(b),
                1001 => found.1 = Some(b),
                _ => {}
            }
        }
        (
            found.0.context("no 1000-byte batch")?,
            found.1.context("no 1001-byte batch")?,
        )
    };
    let (code, _) = c.produce(&small, 0, over_limit)?;
    ensure!(
        code == MESSAGE_TOO_LARGE,
        "a 1001-byte batch answered {code}"
    );
    ensure!(
        c.produce(&small, 0, at_limit)? == (NONE, 0),
        "a 1000-byte batch is refused"
    );
    ensure!(c.log_end(&small, 0)? == 1, "the 1000-byte batch is stored");

    // The batch every refusal was made from is fine as it is.
    ensure!(
        c.produce(&topic, 0, good)? == (NONE, 0),
        "the unpatched batch is refused"
    );
    ensure!(
        c.log_end(&topic, 0)? == 3,
        "three records after the good batch"
    );
    Ok(())
}

#[test]
fn an_acks_0_produce_gets_no_answer_and_is_written() -> Result<()> {
    let broker = Broker::start()?;
    let mut c = Conn::open(&broker)?;
    let topic = broker.topic("fire-and-forget");
    create_ok(&mut c, &topic, 1, &[])?;
    let records = batch(&[b"x", b"y"])?;
    send_request(
        &mut c.stream,
        ApiKey::Produce,
        9,
        100,
        produce_request(&topic, 0, records.clone(), 0),
    )?;
    send_request(
        &mut c.stream,
        ApiKey::ApiVersions,
        3,
        101,
        ApiVersionsRequest::default(),
    )?;
    let frame = read_frame(&mut c.stream)?;
    let id = frame.get(..4).context("short frame")?;
    ensure!(
        id == 101_i32.to_be_bytes(),
        "the first answer after an acks=0 produce is for correlation id {id:?}, not 101"
    );
    let answer = Response::decode(ApiKey::ApiVersions, 3, Bytes::from(frame))?;
    ensure!(
        matches!(&answer.body, ResponseKind::ApiVersions(v) if v.error_code == NONE),
        "ApiVersions answer {:?}",
        answer.body
    );
    ensure!(c.log_end(&topic, 0)? == 2, "the acks=0 records are stored");
    let got = fetch_at(&mut c, &topic, 0, 0)?;
    ensure!(
        batches(got.records.as_ref())?
            == vec![Got {
                base_offset: 0,
                count: 2,
                bytes: records
            }],
        "the stored batch differs from the one sent"
    );
    Ok(())
}

#[test]
fn a_refused_acks_0_produce_closes_the_connection() -> Result<()> {
    let broker = Broker::start()?;
    let mut c = Conn::open(&broker)?;
    let topic = broker.topic("fire-and-forget-refused");
    create_ok(&mut c, &topic, 1, &[])?;
    // Partition 7 does not exist: with acks=0 there is no answer to carry the error, so the
    // broker closes the connection, as Kafka does, for the producer to notice.
    send_request(
        &mut c.stream,
        ApiKey::Produce,
        9,
        200,
        produce_request(&topic, 7, batch(&[b"x"])?, 0),
    )?;
    let mut byte = [0u8; 1];
    let read = std::io::Read::read(&mut c.stream, &mut byte);
    ensure!(
        matches!(read, Ok(0)) || read.is_err(),
        "the connection stayed open after a refused acks=0 produce: {read:?}"
    );
    let mut fresh = Conn::open(&broker)?;
    ensure!(fresh.log_end(&topic, 0)? == 0, "nothing was written");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Ordering

#[test]
fn pipelined_requests_are_answered_in_the_order_sent() -> Result<()> {
    let broker = Broker::start()?;
    let mut c = Conn::open(&broker)?;
    let topic = broker.topic("ordering");
    create_ok(&mut c, &topic, 1, &[])?;
    let list_offsets = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(name(&topic))
                .with_partitions(vec![
                    ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(LATEST),
                ]),
        ]);
    let mut bytes = encode_request(
        ApiKey::Metadata,
        12,
        31,
        MetadataRequest::default().with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(name(&topic))),
        ])),
    )?;
    bytes.extend_from_slice(&encode_request(
        ApiKey::ApiVersions,
        3,
        32,
        ApiVersionsRequest::default(),
    )?);
    bytes.extend_from_slice(&encode_request(ApiKey::ListOffsets, 7, 33, list_offsets)?);
    c.stream.write_all(&bytes)?;
    let ResponseKind::Metadata(metadata) = read_response(&mut c.stream, ApiKey::Metadata, 12, 31)?
    else {
        bail!("not a Metadata answer");
    };
    ensure!(
        metadata.topics.len() == 1 && metadata.topics.iter().all(|t| t.error_code == NONE),
        "Metadata answer {metadata:?}"
    );
    let ResponseKind::ApiVersions(versions) =
        read_response(&mut c.stream, ApiKey::ApiVersions, 3, 32)?
    else {
        bail!("not an ApiVersions answer");
    };
    ensure!(versions.error_code == NONE, "ApiVersions {versions:?}");
    let ResponseKind::ListOffsets(offsets) =
        read_response(&mut c.stream, ApiKey::ListOffsets, 7, 33)?
    else {
        bail!("not a ListOffsets answer");
    };
    let offset = offsets
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .map(|p| (p.error_code, p.offset));
    ensure!(offset == Some((NONE, 0)), "ListOffsets {offsets:?}");

    // A slow request first (a 400 ms long poll on an empty partition): the quick one behind it
    // still waits its turn.
    let started = Instant::now();
    let mut bytes = encode_request(
        ApiKey::Fetch,
        12,
        41,
        fetch_request(&topic, &[(0, 0, 1 << 20)], 400, 1 << 20),
    )?;
    bytes.extend_from_slice(&encode_request(
        ApiKey::ApiVersions,
        3,
        42,
        ApiVersionsRequest::default(),
    )?);
    c.stream.write_all(&bytes)?;
    let ResponseKind::Fetch(empty) = read_response(&mut c.stream, ApiKey::Fetch, 12, 41)? else {
        bail!("not a Fetch answer");
    };
    let waited = started.elapsed();
    ensure!(
        waited >= ms(300) && batches(part(&empty, 0)?.records.as_ref())?.is_empty(),
        "the long poll on an empty partition answered after {waited:?}: {empty:?}"
    );
    let _ = read_response(&mut c.stream, ApiKey::ApiVersions, 3, 42)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Fetch

#[test]
fn a_long_poll_is_answered_as_soon_as_records_arrive() -> Result<()> {
    let broker = Broker::start()?;
    let mut waiter = Conn::open(&broker)?;
    let mut producer = Conn::open(&broker)?;
    let topic = broker.topic("long-poll");
    create_ok(&mut producer, &topic, 1, &[])?;
    let request = fetch_request(&topic, &[(0, 0, 1 << 20)], 10_000, 1 << 20);
    let started = Instant::now();
    send_request(&mut waiter.stream, ApiKey::Fetch, 12, 7, request)?;
    thread::sleep(ms(300));
    let records = batch(&[b"wake", b"up", b"now"])?;
    ensure!(
        producer.produce(&topic, 0, records.clone())? == (NONE, 0),
        "produce"
    );
    // The connection's read timeout (5 s) bounds the wait.
    let ResponseKind::Fetch(response) = read_response(&mut waiter.stream, ApiKey::Fetch, 12, 7)
        .context("no answer to the long poll within 5 s of the produce")?
    else {
        bail!("not a Fetch answer");
    };
    let elapsed = started.elapsed();
    ensure!(
        elapsed < Duration::from_secs(5),
        "the long poll answered after {elapsed:?}"
    );
    let answer = part(&response, 0)?;
    ensure!(
        answer.error_code == NONE && answer.high_watermark == 3,
        "long poll answer {answer:?}"
    );
    ensure!(
        batches(answer.records.as_ref())?
            == vec![Got {
                base_offset: 0,
                count: 3,
                bytes: records
            }],
        "the long poll did not return the produced batch: {answer:?}"
    );
    Ok(())
}

#[test]
fn fetch_returns_whole_batches_within_the_limits_and_refuses_bad_offsets() -> Result<()> {
    let broker = Broker::start()?;
    let mut c = Conn::open(&broker)?;
    let topic = broker.topic("fetching");
    create_ok(&mut c, &topic, 2, &[])?;
    // Partition 0: b0 = offsets 0..=4, b1 = 5..=7 (the larger). Partition 1: c0 = 0..=1.
    let b0 = sized_batch(5, 100)?;
    let b1 = sized_batch(3, 300)?;
    let c0 = sized_batch(2, 100)?;
    ensure!(b1.len() > c0.len(), "b1 must be larger than c0");
    ensure!(c.produce(&topic, 0, b0.clone())? == (NONE, 0), "b0");
    ensure!(c.produce(&topic, 0, b1.clone())? == (NONE, 5), "b1");
    ensure!(c.produce(&topic, 1, c0.clone())? == (NONE, 0), "c0");
    let (s0, s1, t0) = (stored(&b0, 0), stored(&b1, 5), stored(&c0, 0));
    let whole0 = Got {
        base_offset: 0,
        count: 5,
        bytes: s0.clone(),
    };
    let whole1 = Got {
        base_offset: 5,
        count: 3,
        bytes: s1.clone(),
    };
    let whole_c0 = Got {
        base_offset: 0,
        count: 2,
        bytes: t0.clone(),
    };
    let len = |b: &Bytes| i32::try_from(b.len()).unwrap_or(i32::MAX);

    // Offsets in the middle of a batch return that whole batch, then what follows.
    let at_2 = fetch_at(&mut c, &topic, 0, 2)?;
    ensure!(
        at_2.error_code == NONE
            && at_2.high_watermark == 8
            && at_2.last_stable_offset == 8
            && at_2.log_start_offset == 0,
        "fetch at 2: {at_2:?}"
    );
    ensure!(
        batches(at_2.records.as_ref())? == vec![whole0.clone(), whole1.clone()],
        "fetch at 2 returned {:?}",
        batches(at_2.records.as_ref())?
    );
    let at_6 = fetch_at(&mut c, &topic, 0, 6)?;
    ensure!(
        batches(at_6.records.as_ref())? == vec![whole1.clone()],
        "fetch at 6 returned {:?}",
        batches(at_6.records.as_ref())?
    );

    // partition_max_bytes smaller than the first batch: that whole batch, nothing more.
    for max in [1, 10, len(&s0) - 1, len(&s0), len(&s0) + len(&s1) - 1] {
        let response = fetch(&mut c, 12, &topic, &[(0, 0, max)], 1 << 20)?;
        ensure!(
            batches(part(&response, 0)?.records.as_ref())? == vec![whole0.clone()],
            "partition_max_bytes {max} returned {:?}",
            batches(part(&response, 0)?.records.as_ref())?
        );
    }
    let response = fetch(&mut c, 12, &topic, &[(0, 0, len(&s0) + len(&s1))], 1 << 20)?;
    ensure!(
        batches(part(&response, 0)?.records.as_ref())? == vec![whole0.clone(), whole1.clone()],
        "partition_max_bytes of both batches"
    );

    // Several partitions: the first gets one whole batch whatever max_bytes says; after it,
    // max_bytes holds.
    let both = [(0, 0, 1 << 20), (1, 0, 1 << 20)];
    for (max_bytes, want0, want1) in [
        (1, vec![whole0.clone()], vec![]),
        (len(&s0) + len(&t0) - 1, vec![whole0.clone()], vec![]),
        (
            len(&s0) + len(&t0),
            vec![whole0.clone()],
            vec![whole_c0.clone()],
        ),
        (
            len(&s0) + len(&s1) + len(&t0) - 1,
            vec![whole0.clone(), whole1.clone()],
            vec![],
        ),
        (
            len(&s0) + len(&s1) + len(&t0),
            vec![whole0.clone(), whole1.clone()],
            vec![whole_c0.clone()],
        ),
    ] {
        let response = fetch(&mut c, 12, &topic, &both, max_bytes)?;
        let (p0, p1) = (part(&response, 0)?, part(&response, 1)?);
        ensure!(
            p0.error_code == NONE && p1.error_code == NONE,
            "max_bytes {max_bytes}: errors {} {}",
            p0.error_code,
            p1.error_code
        );
        let (got0, got1) = (batches(p0.records.as_ref())?, batches(p1.records.as_ref())?);
        ensure!(
            got0 == want0 && got1 == want1,
            "max_bytes {max_bytes}: partition 0 got {:?}, partition 1 got {:?}",
            got0.iter().map(|g| g.base_offset).collect::<Vec<_>>(),
            got1.iter().map(|g| g.base_offset).collect::<Vec<_>>()
        );
    }
    // The first partition with data is the one that gets a batch regardless of max_bytes.
    let response = fetch(&mut c, 12, &topic, &[(0, 8, 1 << 20), (1, 0, 1 << 20)], 1)?;
    ensure!(
        batches(part(&response, 0)?.records.as_ref())?.is_empty()
            && batches(part(&response, 1)?.records.as_ref())? == vec![whole_c0.clone()],
        "an empty first partition: {response:?}"
    );

    // At the log end: nothing, no error. Past it, or negative: OFFSET_OUT_OF_RANGE.
    let at_end = fetch_at(&mut c, &topic, 0, 8)?;
    ensure!(
        at_end.error_code == NONE
            && batches(at_end.records.as_ref())?.is_empty()
            && at_end.high_watermark == 8,
        "fetch at the log end: {at_end:?}"
    );
    for offset in [9, 1000, -1] {
        let beyond = fetch_at(&mut c, &topic, 0, offset)?;
        ensure!(
            beyond.error_code == OFFSET_OUT_OF_RANGE
                && batches(beyond.records.as_ref())?.is_empty(),
            "fetch at {offset}: {beyond:?}"
        );
    }
    // An unknown partition or topic.
    let unknown = fetch_at(&mut c, &topic, 2, 0)?;
    ensure!(
        unknown.error_code == UNKNOWN_TOPIC_OR_PARTITION,
        "fetch of partition 2: {unknown:?}"
    );
    let unknown = fetch_at(&mut c, &broker.topic("no-such-topic"), 0, 0)?;
    ensure!(
        unknown.error_code == UNKNOWN_TOPIC_OR_PARTITION,
        "fetch of an unknown topic: {unknown:?}"
    );

    // Fetch sessions are declined: a new-session request (id 0, epoch 0) gets session id 0;
    // an existing session id is not found.
    let response = ask!(
        &mut c,
        Fetch,
        12,
        fetch_request(&topic, &[(0, 0, 1 << 20)], 0, 1 << 20).with_session_epoch(0)
    );
    ensure!(
        response.error_code == NONE
            && response.session_id == 0
            && batches(part(&response, 0)?.records.as_ref())?.len() == 2,
        "new-session fetch: error {} session {}",
        response.error_code,
        response.session_id
    );
    let response = ask!(
        &mut c,
        Fetch,
        12,
        fetch_request(&topic, &[(0, 0, 1 << 20)], 0, 1 << 20)
            .with_session_id(12345)
            .with_session_epoch(1)
    );
    ensure!(
        response.error_code == FETCH_SESSION_ID_NOT_FOUND && response.responses.is_empty(),
        "a fetch in session 12345: error {}, {} topics",
        response.error_code,
        response.responses.len()
    );

    // Fetch v4, the oldest served.
    let response = fetch(&mut c, 4, &topic, &[(0, 2, 1 << 20)], 1 << 20)?;
    let p0 = part(&response, 0)?;
    ensure!(
        p0.error_code == NONE
            && p0.high_watermark == 8
            && batches(p0.records.as_ref())? == vec![whole0, whole1],
        "fetch v4: {p0:?}"
    );
    let response = fetch(&mut c, 4, &topic, &[(0, 9, 1 << 20)], 1 << 20)?;
    ensure!(
        part(&response, 0)?.error_code == OFFSET_OUT_OF_RANGE,
        "fetch v4 past the end: {response:?}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// DeleteRecords

/// DeleteRecords v2 of one partition; returns (error code, low watermark).
fn delete_records(conn: &mut Conn, topic: &str, partition: i32, before: i64) -> Result<(i16, i64)> {
    let request = DeleteRecordsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![
            DeleteRecordsTopic::default()
                .with_name(name(topic))
                .with_partitions(vec![
                    DeleteRecordsPartition::default()
                        .with_partition_index(partition)
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

#[test]
fn delete_records_moves_the_log_start_durably() -> Result<()> {
    let mut broker = Broker::start()?;
    let mut c = Conn::open(&broker)?;
    let topic = broker.topic("deleting");
    create_ok(&mut c, &topic, 1, &[])?;
    // Five batches of two records: offsets 0..=9.
    for i in 0..5 {
        ensure!(
            c.produce(&topic, 0, batch(&[b"one", b"two"])?)? == (NONE, 2 * i),
            "batch {i}"
        );
    }

    ensure!(
        delete_records(&mut c, &topic, 0, 4)? == (NONE, 4),
        "delete before 4"
    );
    ensure!(
        c.earliest(&topic, 0)? == 4,
        "earliest after delete before 4"
    );
    ensure!(c.log_end(&topic, 0)? == 10, "latest after delete before 4");
    let at_3 = fetch_at(&mut c, &topic, 0, 3)?;
    ensure!(
        at_3.error_code == OFFSET_OUT_OF_RANGE,
        "fetch at 3 after delete before 4: {at_3:?}"
    );
    // (The fetch answer's log_start_offset right after a DeleteRecords is checked by
    // a_fetch_right_after_delete_records_reports_the_new_log_start; here it is checked after a
    // restart.)
    let at_4 = fetch_at(&mut c, &topic, 0, 4)?;
    let got = batches(at_4.records.as_ref())?;
    ensure!(
        at_4.error_code == NONE
            && at_4.high_watermark == 10
            && got.iter().map(|g| g.base_offset).collect::<Vec<_>>() == [4, 6, 8],
        "fetch at 4: {at_4:?}"
    );
    // An offset below the log start changes nothing.
    ensure!(
        delete_records(&mut c, &topic, 0, 2)? == (NONE, 4),
        "delete before 2 after 4"
    );
    ensure!(
        c.earliest(&topic, 0)? == 4,
        "earliest after delete before 2"
    );
    // Inside a batch: the log starts there, and a fetch there returns the batch holding it.
    ensure!(
        delete_records(&mut c, &topic, 0, 5)? == (NONE, 5),
        "delete before 5"
    );
    let at_4 = fetch_at(&mut c, &topic, 0, 4)?;
    ensure!(
        at_4.error_code == OFFSET_OUT_OF_RANGE,
        "fetch at 4 after delete before 5: {at_4:?}"
    );
    let at_5 = fetch_at(&mut c, &topic, 0, 5)?;
    let first = batches(at_5.records.as_ref())?
        .first()
        .map(|g| g.base_offset);
    ensure!(
        at_5.error_code == NONE && first == Some(4),
        "fetch at 5: {at_5:?}"
    );
    // Past the end, an unknown partition.
    ensure!(
        delete_records(&mut c, &topic, 0, 11)?.0 == OFFSET_OUT_OF_RANGE,
        "delete before 11"
    );
    ensure!(
        delete_records(&mut c, &topic, 1, 1)?.0 == UNKNOWN_TOPIC_OR_PARTITION,
        "delete on partition 1"
    );
    ensure!(
        c.earliest(&topic, 0)? == 5,
        "refused deletes changed nothing"
    );

    broker.restart()?;
    let mut c = Conn::open(&broker)?;
    ensure!(c.earliest(&topic, 0)? == 5, "earliest after a restart");
    ensure!(c.log_end(&topic, 0)? == 10, "latest after a restart");
    let at_4 = fetch_at(&mut c, &topic, 0, 4)?;
    ensure!(
        at_4.error_code == OFFSET_OUT_OF_RANGE && at_4.log_start_offset == 5,
        "fetch at 4 after a restart: {at_4:?}"
    );

    // -1: up to the high watermark.
    ensure!(
        delete_records(&mut c, &topic, 0, -1)? == (NONE, 10),
        "delete before -1"
    );
    ensure!(
        c.earliest(&topic, 0)? == 10,
        "earliest after delete before -1"
    );
    ensure!(c.log_end(&topic, 0)? == 10, "latest after delete before -1");
    let at_9 = fetch_at(&mut c, &topic, 0, 9)?;
    ensure!(
        at_9.error_code == OFFSET_OUT_OF_RANGE,
        "fetch at 9 after everything was deleted: {at_9:?}"
    );
    broker.restart()?;
    let mut c = Conn::open(&broker)?;
    ensure!(
        c.earliest(&topic, 0)? == 10 && c.log_end(&topic, 0)? == 10,
        "an emptied log after a restart"
    );
    ensure!(
        c.produce(&topic, 0, batch(&[b"next"])?)? == (NONE, 10),
        "produce after everything was deleted"
    );
    let at_10 = fetch_at(&mut c, &topic, 0, 10)?;
    ensure!(
        at_10.log_start_offset == 10
            && batches(at_10.records.as_ref())?
                .iter()
                .map(|g| g.base_offset)
                .collect::<Vec<_>>()
                == [10],
        "fetch at 10: {at_10:?}"
    );
    Ok(())
}

/// Once DeleteRecords has answered, every later request sees the new log start, as in Kafka.
/// A fetch pipelined right behind the DeleteRecords (while another client's acks=all produce
/// makes the partition owner fsync in the same round) must report it as log_start_offset.
#[test]
fn a_fetch_right_after_delete_records_reports_the_new_log_start() -> Result<()> {
    let broker = Broker::start()?;
    let mut c = Conn::open(&broker)?;
    let mut producer = Conn::open(&broker)?;
    let topic = broker.topic("delete-then-fetch");
    create_ok(&mut c, &topic, 1, &[])?;
    let values: Vec<&[u8]> = (0..200).map(|_| b"r".as_slice()).collect();
    ensure!(
        c.produce(&topic, 0, batch(&values)?)? == (NONE, 0),
        "produce"
    );
    let one = batch(&[b"more"])?;
    // Each round: another client's acks=all produce, and at the same moment a DeleteRecords
    // followed at once by a fetch at the new log start.
    let mut stale = Vec::new();
    for before in 1..=100 {
        send_request(
            &mut producer.stream,
            ApiKey::Produce,
            9,
            before,
            produce_request(&topic, 0, one.clone(), -1),
        )?;
        let delete = DeleteRecordsRequest::default()
            .with_timeout_ms(5000)
            .with_topics(vec![
                DeleteRecordsTopic::default()
                    .with_name(name(&topic))
                    .with_partitions(vec![
                        DeleteRecordsPartition::default()
                            .with_partition_index(0)
                            .with_offset(i64::from(before)),
                    ]),
            ]);
        let mut bytes = encode_request(ApiKey::DeleteRecords, 2, 1, delete)?;
        bytes.extend_from_slice(&encode_request(
            ApiKey::Fetch,
            12,
            2,
            fetch_request(&topic, &[(0, i64::from(before), 1 << 20)], 0, 1 << 20),
        )?);
        c.stream.write_all(&bytes)?;
        let ResponseKind::DeleteRecords(deleted) =
            read_response(&mut c.stream, ApiKey::DeleteRecords, 2, 1)?
        else {
            bail!("not a DeleteRecords answer");
        };
        let low = deleted
            .topics
            .first()
            .and_then(|t| t.partitions.first())
            .map(|p| (p.error_code, p.low_watermark));
        ensure!(
            low == Some((NONE, i64::from(before))),
            "delete before {before}: {low:?}"
        );
        let ResponseKind::Fetch(fetched) = read_response(&mut c.stream, ApiKey::Fetch, 12, 2)?
        else {
            bail!("not a Fetch answer");
        };
        let got = part(&fetched, 0)?;
        if got.error_code != NONE || got.log_start_offset != i64::from(before) {
            stale.push((before, got.error_code, got.log_start_offset));
        }
        let _ = read_response(&mut producer.stream, ApiKey::Produce, 9, before)?;
    }
    ensure!(
        stale.is_empty(),
        "{} of 100 fetches sent right behind a DeleteRecords answered a stale log start; \
         (delete before, fetch error, fetch log_start_offset): {:?}",
        stale.len(),
        stale.iter().take(5).collect::<Vec<_>>()
    );
    Ok(())
}

mod admin;
