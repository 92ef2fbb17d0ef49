//! The request versions Kafka 3.9 serves and Kafka 4 removed (KIP-896), over raw Kafka requests:
//! magic 0 and magic 1 message sets produced (Produce v0-2) and read back at old and current
//! Fetch versions, refused message sets appending nothing, magic 1 wrappers with wrong relative
//! offsets taken as Kafka takes them, ListOffsets v0's list of offsets, OffsetCommit v0-1 and
//! OffsetFetch v0, CreateTopics v0-1, DescribeConfigs v0, DeleteTopics v0, and the ranges
//! ApiVersions advertises.

#[macro_use]
mod common;

use std::io::Write as _;

use anyhow::{Context, bail, ensure};
use bytes::{BufMut as _, Bytes, BytesMut};

use common::{
    Broker, Conn, Result, Wire, api_versions_v0, connect, frame_v1, produce_request, read_frame,
};
use rill_protocol::kafka_protocol::messages::create_topics_request::{
    CreatableTopic, CreatableTopicConfig,
};
use rill_protocol::kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use rill_protocol::kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use rill_protocol::kafka_protocol::messages::fetch_response::PartitionData;
use rill_protocol::kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use rill_protocol::kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use rill_protocol::kafka_protocol::messages::{
    BrokerId, CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest, FetchRequest,
    GroupId, OffsetCommitRequest, OffsetFetchRequest, TopicName,
};
use rill_protocol::{
    ApiKey, LegacyFields, Request, RequestHeader, Response, ResponseKind, StrBytes,
};
use rill_record::legacy::{MAGIC_V0, MAGIC_V1, Message, parse_message_set, write_message};
use rill_record::{Batches, Compression, TimestampType, compress, decompress};

const NONE: i16 = 0;
const CORRUPT_MESSAGE: i16 = 2;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_RECORD: i16 = 87;

/// CreateTime of the magic 1 records.
const T: i64 = 1_700_000_000_000;

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_owned()))
}

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_owned())
}

/// Creates `topic` with one partition, with CreateTopics v0.
fn create_v0(conn: &mut Conn, topic: &str) -> Result<()> {
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(name(topic))
                .with_num_partitions(1)
                .with_replication_factor(1),
        ]);
    let response = ask!(conn, CreateTopics, 0, request);
    let result = response.topics.first().context("no topic answered")?;
    ensure!(
        result.error_code == NONE,
        "CreateTopics v0 of {topic}: error {}",
        result.error_code
    );
    Ok(())
}

/// A plain message.
fn plain(magic: i8, offset: i64, timestamp: i64, key: Option<&str>, value: &str) -> Message {
    Message {
        offset,
        magic,
        compression: Compression::None,
        timestamp_type: TimestampType::CreateTime,
        timestamp,
        key: key.map(|k| Bytes::from(k.to_owned())),
        value: Some(Bytes::from(value.to_owned())),
    }
}

/// A `codec` wrapper around `inner`, at `offset`.
fn wrapper(codec: Compression, offset: i64, inner: &[Message]) -> Result<Message> {
    let first = inner.first().context("an empty wrapper")?;
    Ok(Message {
        offset,
        magic: first.magic,
        compression: codec,
        timestamp_type: TimestampType::CreateTime,
        timestamp: inner.iter().map(|m| m.timestamp).max().unwrap_or(-1),
        key: None,
        value: Some(Bytes::from(compress(codec, &message_set(inner))?)),
    })
}

fn message_set(messages: &[Message]) -> Bytes {
    let mut out = BytesMut::new();
    for message in messages {
        write_message(&mut out, message);
    }
    out.freeze()
}

/// Produces `records` to partition 0 at `version` (acks=-1); returns (error code, base offset).
fn produce_at(conn: &mut Conn, version: i16, topic: &str, records: Bytes) -> Result<(i16, i64)> {
    let response = ask!(
        conn,
        Produce,
        version,
        produce_request(topic, 0, records, -1)
    );
    let answer = response
        .responses
        .first()
        .and_then(|t| t.partition_responses.first())
        .context("no partition in the produce answer")?;
    Ok((answer.error_code, answer.base_offset))
}

/// Fetch of partition 0 at `offset`, `version`, without waiting.
fn fetch_at(conn: &mut Conn, version: i16, topic: &str, offset: i64) -> Result<PartitionData> {
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(name(topic))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let response = ask!(conn, Fetch, version, request);
    let partition = response
        .responses
        .first()
        .and_then(|t| t.partitions.first())
        .context("no partition in the fetch answer")?
        .clone();
    ensure!(
        partition.error_code == NONE,
        "Fetch v{version} at {offset}: error {}",
        partition.error_code
    );
    Ok(partition)
}

/// A record as a reader sees it: (offset, timestamp, key, value).
type Seen = (i64, i64, Option<Bytes>, Option<Bytes>);

/// An old fetch's message set, wrappers opened, with absolute offsets; checks every message's
/// magic. Also returns the codec of each top-level message.
fn old_records(set: &Bytes, magic: i8) -> Result<(Vec<Seen>, Vec<Compression>)> {
    let mut out = Vec::new();
    let mut codecs = Vec::new();
    for message in parse_message_set(set)? {
        ensure!(
            message.magic == magic,
            "magic {} in a fetch of magic {magic}",
            message.magic
        );
        codecs.push(message.compression);
        if message.compression == Compression::None {
            out.push((
                message.offset,
                message.timestamp,
                message.key,
                message.value,
            ));
            continue;
        }
        let compressed = message.value.clone().unwrap_or_default();
        let inner = parse_message_set(&Bytes::from(decompress(
            message.compression,
            &compressed,
            1 << 20,
        )?))?;
        // Inside a magic 1 wrapper offsets are relative, the wrapper's is the last one's.
        let last = inner.last().map_or(0, |m| m.offset);
        for m in inner {
            let offset = match magic {
                MAGIC_V1 => message.offset - last + m.offset,
                _ => m.offset,
            };
            out.push((offset, m.timestamp, m.key, m.value));
        }
    }
    Ok((out, codecs))
}

/// A batch's base offset and codec.
type BatchCodec = (i64, Compression);

/// A v12 fetch's batches: the records, and each batch's (base offset, codec).
fn v2_records(records: &Bytes) -> Result<(Vec<Seen>, Vec<BatchCodec>)> {
    let mut out = Vec::new();
    let mut batches = Vec::new();
    for batch in Batches::new(records) {
        let batch = batch?;
        batch.verify_crc()?;
        let header = batch.header();
        batches.push((header.base_offset, header.attributes.compression()?));
        for r in batch.records()? {
            ensure!(r.headers.is_empty(), "headers at {}", r.offset);
            out.push((r.offset, r.timestamp, r.key, r.value));
        }
    }
    Ok((out, batches))
}

fn seen(offset: i64, timestamp: i64, key: Option<&str>, value: &str) -> Seen {
    (
        offset,
        timestamp,
        key.map(|k| Bytes::from(k.to_owned())),
        Some(Bytes::from(value.to_owned())),
    )
}

#[test]
fn old_message_sets_are_stored_as_batches_and_read_back_at_every_fetch_version() -> Result<()> {
    let broker = Broker::start()?;
    let mut conn = Conn::open(&broker)?;
    let topic = broker.topic("legacy-sets");
    create_v0(&mut conn, &topic)?;

    // Produce v0: three plain magic 0 messages (the offsets in a produced set mean nothing).
    let magic0 = message_set(&[
        plain(MAGIC_V0, 0, -1, Some("k0"), "zero"),
        plain(MAGIC_V0, 0, -1, None, "one"),
        plain(MAGIC_V0, 0, -1, Some("k2"), "two"),
    ]);
    let (code, base) = produce_at(&mut conn, 0, &topic, magic0)?;
    ensure!(
        (code, base) == (NONE, 0),
        "Produce v0: error {code}, base {base}"
    );

    // Produce v2: one gzip wrapper of three magic 1 messages, relative offsets 0, 1, 2.
    let inner = [
        plain(MAGIC_V1, 0, T + 20, Some("k3"), "three"),
        plain(MAGIC_V1, 1, T, Some("k4"), "four"),
        plain(MAGIC_V1, 2, T + 10, None, "five"),
    ];
    let gzip = message_set(&[wrapper(Compression::Gzip, 2, &inner)?]);
    let (code, base) = produce_at(&mut conn, 2, &topic, gzip)?;
    ensure!(
        (code, base) == (NONE, 3),
        "Produce v2: error {code}, base {base}"
    );
    ensure!(conn.log_end(&topic, 0)? == 6, "log end after two produces");

    // Magic 0 records have no timestamp: -1 wherever one is reported.
    let all = vec![
        seen(0, -1, Some("k0"), "zero"),
        seen(1, -1, None, "one"),
        seen(2, -1, Some("k2"), "two"),
        seen(3, T + 20, Some("k3"), "three"),
        seen(4, T, Some("k4"), "four"),
        seen(5, T + 10, None, "five"),
    ];
    let without_timestamps: Vec<Seen> = all
        .iter()
        .map(|(o, _, k, v)| (*o, -1, k.clone(), v.clone()))
        .collect();

    // Fetch v0: magic 0 messages; the gzip batch comes as a gzip wrapper.
    let p = fetch_at(&mut conn, 0, &topic, 0)?;
    ensure!(
        p.high_watermark == 6,
        "Fetch v0 high watermark {}",
        p.high_watermark
    );
    let (records, codecs) = old_records(&p.records.unwrap_or_default(), MAGIC_V0)?;
    ensure!(records == without_timestamps, "Fetch v0 read {records:?}");
    ensure!(
        codecs.last() == Some(&Compression::Gzip),
        "Fetch v0 codecs {codecs:?}"
    );

    // Fetch v2: magic 1 messages, with the timestamps.
    let p = fetch_at(&mut conn, 2, &topic, 0)?;
    let (records, codecs) = old_records(&p.records.unwrap_or_default(), MAGIC_V1)?;
    ensure!(records == all, "Fetch v2 read {records:?}");
    ensure!(
        codecs
            == [
                Compression::None,
                Compression::None,
                Compression::None,
                Compression::Gzip
            ],
        "Fetch v2 codecs {codecs:?}"
    );

    // Fetch v12: the stored v2 batches, one per produce, the codec kept.
    let p = fetch_at(&mut conn, 12, &topic, 0)?;
    let (records, batches) = v2_records(&p.records.unwrap_or_default())?;
    ensure!(records == all, "Fetch v12 read {records:?}");
    ensure!(
        batches == [(0, Compression::None), (3, Compression::Gzip)],
        "Fetch v12 batches {batches:?}"
    );

    // Fetch v1 from the middle of the gzip batch starts at that offset.
    let p = fetch_at(&mut conn, 1, &topic, 4)?;
    let (records, _) = old_records(&p.records.unwrap_or_default(), MAGIC_V0)?;
    ensure!(
        records == without_timestamps[4..],
        "Fetch v1 at 4 read {records:?}"
    );
    // Fetch v2 from the middle of the gzip batch: a magic 1 wrapper of the rest.
    let p = fetch_at(&mut conn, 2, &topic, 4)?;
    let (records, codecs) = old_records(&p.records.unwrap_or_default(), MAGIC_V1)?;
    ensure!(records == all[4..], "Fetch v2 at 4 read {records:?}");
    ensure!(
        codecs == [Compression::Gzip],
        "Fetch v2 at 4 codecs {codecs:?}"
    );
    // And Fetch v3 from the middle of the plain batch.
    let p = fetch_at(&mut conn, 3, &topic, 1)?;
    let (records, _) = old_records(&p.records.unwrap_or_default(), MAGIC_V1)?;
    ensure!(records == all[1..], "Fetch v3 at 1 read {records:?}");
    Ok(())
}

/// `frame` (a standard LZ4 frame) with the header checksum magic 0 writers put there: over the
/// magic number too (KAFKA-3160), as Kafka 0.8-0.9 and kafka-python write it for magic 0.
fn with_kafka_3160_checksum(mut frame: Vec<u8>) -> Result<Vec<u8>> {
    let flags = *frame.get(4).context("no LZ4 frame descriptor")?;
    let end = 6 + if flags & 0x08 != 0 { 8 } else { 0 } + if flags & 0x01 != 0 { 4 } else { 0 };
    let hash = twox_hash::XxHash32::oneshot(0, frame.get(..end).context("short frame")?);
    *frame.get_mut(end).context("short frame")? = hash.to_le_bytes()[1];
    Ok(frame)
}

#[test]
fn a_magic_0_lz4_wrapper_with_kafka_3160_framing_is_stored_as_lz4() -> Result<()> {
    let broker = Broker::start()?;
    let mut conn = Conn::open(&broker)?;
    let topic = broker.topic("legacy-lz4");
    create_v0(&mut conn, &topic)?;
    let inner = [
        plain(MAGIC_V0, 0, -1, Some("a"), "alpha"),
        plain(MAGIC_V0, 1, -1, None, "beta"),
    ];
    let standard = compress(Compression::Lz4, &message_set(&inner))?;
    let frame = with_kafka_3160_checksum(standard.clone())?;
    ensure!(frame != standard, "the two checksums happen to agree here");
    let lz4 = Message {
        value: Some(Bytes::from(frame)),
        ..wrapper(Compression::Lz4, 1, &inner)?
    };
    let (code, base) = produce_at(&mut conn, 0, &topic, message_set(&[lz4]))?;
    ensure!(
        (code, base) == (NONE, 0),
        "Produce v0: error {code}, base {base}"
    );

    let expected = vec![seen(0, -1, Some("a"), "alpha"), seen(1, -1, None, "beta")];
    let p = fetch_at(&mut conn, 12, &topic, 0)?;
    let (records, batches) = v2_records(&p.records.unwrap_or_default())?;
    ensure!(records == expected, "Fetch v12 read {records:?}");
    ensure!(batches == [(0, Compression::Lz4)], "batches {batches:?}");
    // Magic 0 readers get it uncompressed (their LZ4 framing was the broken one), magic 1
    // readers as an LZ4 wrapper.
    let p = fetch_at(&mut conn, 0, &topic, 0)?;
    let (records, codecs) = old_records(&p.records.unwrap_or_default(), MAGIC_V0)?;
    ensure!(records == expected, "Fetch v0 read {records:?}");
    ensure!(
        codecs == [Compression::None, Compression::None],
        "Fetch v0 codecs {codecs:?}"
    );
    let p = fetch_at(&mut conn, 2, &topic, 0)?;
    let (records, codecs) = old_records(&p.records.unwrap_or_default(), MAGIC_V1)?;
    ensure!(records == expected, "Fetch v2 read {records:?}");
    ensure!(codecs == [Compression::Lz4], "Fetch v2 codecs {codecs:?}");
    Ok(())
}

#[test]
fn refused_old_message_sets_append_nothing() -> Result<()> {
    let broker = Broker::start()?;
    let mut conn = Conn::open(&broker)?;
    let topic = broker.topic("legacy-refused");
    create_v0(&mut conn, &topic)?;
    let good = message_set(&[plain(MAGIC_V0, 0, -1, Some("k"), "kept")]);
    ensure!(produce_at(&mut conn, 0, &topic, good)? == (NONE, 0));

    // A bad CRC in the second message of a magic 0 set: CORRUPT_MESSAGE, and the first, whose
    // CRC is fine, is not appended either.
    let mut corrupt = BytesMut::from(
        &message_set(&[
            plain(MAGIC_V0, 0, -1, Some("a"), "fine"),
            plain(MAGIC_V0, 1, -1, Some("b"), "flipped"),
        ])[..],
    );
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0x20;
    // (what, produce version, records, expected error)
    let cases: [(&str, i16, Bytes, i16); 6] = [
        ("a bad CRC", 0, corrupt.freeze(), CORRUPT_MESSAGE),
        (
            "a bad CRC in a magic 1 set",
            2,
            {
                let mut set = BytesMut::from(&message_set(&[plain(MAGIC_V1, 0, T, None, "x")])[..]);
                let at = set.len() - 1;
                set[at] ^= 1;
                set.freeze()
            },
            CORRUPT_MESSAGE,
        ),
        (
            "a wrapper in a wrapper",
            2,
            message_set(&[wrapper(
                Compression::Gzip,
                1,
                &[
                    plain(MAGIC_V1, 0, T, None, "outer"),
                    wrapper(
                        Compression::Gzip,
                        1,
                        &[plain(MAGIC_V1, 0, T, None, "nested")],
                    )?,
                ],
            )?]),
            INVALID_RECORD,
        ),
        (
            "a magic 0 message in a magic 1 wrapper",
            2,
            message_set(&[wrapper(
                Compression::Gzip,
                0,
                &[
                    plain(MAGIC_V1, 0, T, None, "magic 1"),
                    plain(MAGIC_V0, 1, -1, None, "magic 0"),
                ],
            )?]),
            INVALID_RECORD,
        ),
        (
            // Kafka's one rule on relative offsets: a magic 1 wrapper's offset, unless 0, is
            // at least its last inner message's relative offset.
            "a magic 1 wrapper at offset 3 whose last relative offset is 5",
            2,
            message_set(&[wrapper(
                Compression::Gzip,
                3,
                &[
                    plain(MAGIC_V1, 4, T, None, "a"),
                    plain(MAGIC_V1, 5, T, None, "b"),
                ],
            )?]),
            INVALID_RECORD,
        ),
        (
            "a wrapper holding no messages",
            2,
            message_set(&[Message {
                offset: 0,
                magic: MAGIC_V1,
                compression: Compression::Gzip,
                timestamp_type: TimestampType::CreateTime,
                timestamp: T,
                key: None,
                value: Some(Bytes::from(compress(Compression::Gzip, &[])?)),
            }]),
            INVALID_RECORD,
        ),
    ];
    for (what, version, records, expected) in cases {
        let (code, _) = produce_at(&mut conn, version, &topic, records)?;
        ensure!(
            code == expected,
            "{what} (Produce v{version}): error {code}, expected {expected}"
        );
        ensure!(conn.log_end(&topic, 0)? == 1, "{what}: the log end moved");
    }
    let p = fetch_at(&mut conn, 12, &topic, 0)?;
    let (records, _) = v2_records(&p.records.unwrap_or_default())?;
    ensure!(
        records == [seen(0, -1, Some("k"), "kept")],
        "the log holds {records:?}"
    );
    Ok(())
}

/// Some old clients wrote the relative offsets inside magic 1 wrappers wrongly; Kafka takes such
/// wrappers (as long as the wrapper's offset is 0 or at least the last relative one) and assigns
/// offsets in the order of the messages, and so does Rill.
#[test]
fn wrong_relative_offsets_in_a_magic_1_wrapper_are_assigned_in_message_order() -> Result<()> {
    let broker = Broker::start()?;
    let mut conn = Conn::open(&broker)?;
    let topic = broker.topic("legacy-relative");
    create_v0(&mut conn, &topic)?;
    let mut expected = Vec::new();
    let mut next = 0;
    for (i, relative) in [[1, 0, 2], [0, 0, 0], [7, 8, 9]].into_iter().enumerate() {
        let values: Vec<String> = (0..3).map(|j| format!("set {i} message {j}")).collect();
        let inner: Vec<Message> = values
            .iter()
            .zip(relative)
            .map(|(value, offset)| plain(MAGIC_V1, offset, T + offset, None, value))
            .collect();
        let set = message_set(&[wrapper(Compression::Snappy, relative[2], &inner)?]);
        let (code, base) = produce_at(&mut conn, 2, &topic, set)?;
        ensure!(
            (code, base) == (NONE, next),
            "inner offsets {relative:?}: error {code}, base {base}"
        );
        for (value, offset) in values.iter().zip(relative) {
            expected.push(seen(next, T + offset, None, value));
            next += 1;
        }
    }
    let p = fetch_at(&mut conn, 12, &topic, 0)?;
    let (records, _) = v2_records(&p.records.unwrap_or_default())?;
    ensure!(records == expected, "Fetch v12 read {records:?}");
    let p = fetch_at(&mut conn, 3, &topic, 0)?;
    let (records, _) = old_records(&p.records.unwrap_or_default(), MAGIC_V1)?;
    ensure!(records == expected, "Fetch v3 read {records:?}");
    Ok(())
}

/// ListOffsets v0 (hand-built: v0 asks for up to N offsets and answers a list of them) for
/// partition 0 at `timestamp`; returns (error code, old_style_offsets).
fn list_offsets_v0(conn: &mut Conn, topic: &str, timestamp: i64) -> Result<(i16, Vec<i64>)> {
    let mut body = BytesMut::new();
    body.put_i32(-1); // replica id
    body.put_i32(1); // topics
    body.put_i16(i16::try_from(topic.len())?);
    body.put_slice(topic.as_bytes());
    body.put_i32(1); // partitions
    body.put_i32(0);
    body.put_i64(timestamp);
    body.put_i32(10); // max_num_offsets
    let id = conn.id();
    conn.stream.write_all(&frame_v1(2, 0, id, &body))?;
    let frame = read_frame(&mut conn.stream)?;
    let mut wire = Wire::new(&frame);
    ensure!(wire.i32()? == id, "correlation id");
    ensure!(wire.i32()? == 1, "one topic answered");
    ensure!(wire.string()?.as_deref() == Some(topic), "topic name");
    ensure!(wire.i32()? == 1, "one partition answered");
    ensure!(wire.i32()? == 0, "partition 0");
    let code = wire.i16()?;
    let count = wire.i32()?;
    ensure!((0..=10).contains(&count), "{count} offsets");
    let offsets = (0..count).map(|_| {
        let b = wire.take(8)?;
        Ok(i64::from_be_bytes(b.try_into()?))
    });
    let offsets = offsets.collect::<Result<Vec<i64>>>()?;
    ensure!(wire.remaining() == 0, "bytes after the answer");
    Ok((code, offsets))
}

#[test]
fn list_offsets_v0_answers_one_old_style_offset() -> Result<()> {
    let broker = Broker::start()?;
    let mut conn = Conn::open(&broker)?;
    let topic = broker.topic("legacy-offsets");
    create_v0(&mut conn, &topic)?;
    ensure!(list_offsets_v0(&mut conn, &topic, -1)? == (NONE, vec![0]));
    let set = message_set(&[
        plain(MAGIC_V1, 0, T, None, "a"),
        plain(MAGIC_V1, 1, T, None, "b"),
        plain(MAGIC_V1, 2, T, None, "c"),
    ]);
    ensure!(produce_at(&mut conn, 1, &topic, set)? == (NONE, 0));
    let latest = list_offsets_v0(&mut conn, &topic, -1)?;
    ensure!(latest == (NONE, vec![3]), "latest: {latest:?}");
    let earliest = list_offsets_v0(&mut conn, &topic, -2)?;
    ensure!(earliest == (NONE, vec![0]), "earliest: {earliest:?}");
    Ok(())
}

/// OffsetFetch of `partitions` of `topic` in `group` at `version`: (partition, offset, metadata).
fn offset_fetch(
    conn: &mut Conn,
    version: i16,
    group: &str,
    topic: &str,
    partitions: &[i32],
) -> Result<Vec<(i32, i64, Option<String>)>> {
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(text(group)))
        .with_topics(Some(vec![
            OffsetFetchRequestTopic::default()
                .with_name(name(topic))
                .with_partition_indexes(partitions.to_vec()),
        ]));
    let response = ask!(conn, OffsetFetch, version, request);
    ensure!(
        response.error_code == NONE,
        "OffsetFetch v{version}: error {}",
        response.error_code
    );
    let mut out = Vec::new();
    for t in &response.topics {
        for p in &t.partitions {
            ensure!(
                p.error_code == NONE,
                "OffsetFetch v{version} of {}: error {}",
                p.partition_index,
                p.error_code
            );
            out.push((
                p.partition_index,
                p.committed_offset,
                p.metadata.as_ref().map(ToString::to_string),
            ));
        }
    }
    out.sort();
    Ok(out)
}

#[test]
fn offset_commit_v0_and_v1_are_read_back_by_offset_fetch_v0_and_v1() -> Result<()> {
    let broker = Broker::start_with(&["--num-partitions", "3"])?;
    let mut conn = Conn::open(&broker)?;
    let topic = broker.topic("legacy-commits");
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(name(&topic))
                .with_num_partitions(3)
                .with_replication_factor(1),
        ]);
    let created = ask!(&mut conn, CreateTopics, 1, request);
    ensure!(
        created.topics.first().map(|t| t.error_code) == Some(NONE),
        "CreateTopics v1: {created:?}"
    );
    let group = broker.topic("legacy-group");
    let commit = |partition: i32, offset: i64, metadata: &str| {
        OffsetCommitRequestTopic::default()
            .with_name(name(&topic))
            .with_partitions(vec![
                OffsetCommitRequestPartition::default()
                    .with_partition_index(partition)
                    .with_committed_offset(offset)
                    .with_committed_metadata(Some(text(metadata))),
            ])
    };

    // v0: no generation, no member.
    let v0 = OffsetCommitRequest::default()
        .with_group_id(GroupId(text(&group)))
        .with_topics(vec![commit(0, 7, "by v0")]);
    let answer = ask!(&mut conn, OffsetCommit, 0, v0);
    let codes: Vec<i16> = answer
        .topics
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| p.error_code)
        .collect();
    ensure!(codes == [NONE], "OffsetCommit v0: {codes:?}");

    // v1: generation -1 and no member (a commit from outside any generation), and a commit
    // timestamp per partition (here: one given, one -1 for "now").
    let v1 = OffsetCommitRequest::default()
        .with_group_id(GroupId(text(&group)))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![commit(1, 11, "by v1"), commit(2, 13, "by v1, now")]);
    let now_ms = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis(),
    )?;
    let mut legacy = LegacyFields::default();
    legacy.commit_timestamps = vec![vec![now_ms], vec![-1]];
    let mut request = Request::new(
        RequestHeader::new(ApiKey::OffsetCommit, 1, 4242).with_client_id("rill-test"),
        v1,
    );
    request.legacy = Some(legacy);
    let mut frame = BytesMut::new();
    request.encode(&mut frame)?;
    conn.stream.write_all(&frame)?;
    let answer = Response::decode(
        ApiKey::OffsetCommit,
        1,
        Bytes::from(read_frame(&mut conn.stream)?),
    )?;
    ensure!(answer.correlation_id == 4242, "correlation id");
    let ResponseKind::OffsetCommit(answer) = answer.body else {
        bail!("not an OffsetCommit answer");
    };
    let codes: Vec<i16> = answer
        .topics
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| p.error_code)
        .collect();
    ensure!(codes == [NONE, NONE], "OffsetCommit v1: {codes:?}");

    let expected = vec![
        (0, 7, Some("by v0".to_owned())),
        (1, 11, Some("by v1".to_owned())),
        (2, 13, Some("by v1, now".to_owned())),
    ];
    for version in [0, 1] {
        let got = offset_fetch(&mut conn, version, &group, &topic, &[0, 1, 2])?;
        ensure!(got == expected, "OffsetFetch v{version}: {got:?}");
    }
    Ok(())
}

#[test]
fn api_versions_advertises_the_old_versions() -> Result<()> {
    let broker = Broker::start()?;
    let mut stream = connect(&broker)?;
    let apis = api_versions_v0(&mut stream, 1)?;
    let range = |key: i16| {
        apis.iter()
            .find(|(k, _, _)| *k == key)
            .map(|&(_, min, max)| (min, max))
    };
    ensure!(range(0) == Some((0, 13)), "Produce {:?}", range(0));
    ensure!(range(1) == Some((0, 18)), "Fetch {:?}", range(1));
    // ListOffsets, OffsetCommit, OffsetFetch, CreateTopics, DeleteTopics, DescribeConfigs.
    for key in [2, 8, 9, 19, 20, 32] {
        ensure!(
            range(key).is_some_and(|(min, _)| min == 0),
            "api key {key}: {:?}",
            range(key)
        );
    }
    Ok(())
}

/// CreateTopics v1 with a config, DescribeConfigs v0 (`is_default` instead of a config source;
/// read back here as DEFAULT_CONFIG or not), DeleteTopics v0.
#[test]
fn create_topics_v1_describe_configs_v0_and_delete_topics_v0() -> Result<()> {
    const SOURCE_DEFAULT_CONFIG: i8 = 5;
    let broker = Broker::start()?;
    let mut conn = Conn::open(&broker)?;
    let topic = broker.topic("legacy-admin");
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(name(&topic))
                .with_num_partitions(2)
                .with_replication_factor(1)
                .with_configs(vec![
                    CreatableTopicConfig::default()
                        .with_name(text("retention.ms"))
                        .with_value(Some(text("3600000"))),
                ]),
        ]);
    let created = ask!(&mut conn, CreateTopics, 1, request);
    ensure!(
        created.topics.first().map(|t| t.error_code) == Some(NONE),
        "CreateTopics v1: {created:?}"
    );

    let request = DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(text(&topic))
            .with_configuration_keys(Some(vec![text("retention.ms"), text("segment.bytes")])),
    ]);
    let described = ask!(&mut conn, DescribeConfigs, 0, request);
    let result = described.results.first().context("no resource answered")?;
    ensure!(result.error_code == NONE, "DescribeConfigs v0: {result:?}");
    let entry = |key: &str| {
        result
            .configs
            .iter()
            .find(|c| c.name.as_str() == key)
            .map(|c| {
                (
                    c.value.as_ref().map(ToString::to_string),
                    c.config_source == SOURCE_DEFAULT_CONFIG,
                )
            })
    };
    ensure!(
        entry("retention.ms") == Some((Some("3600000".to_owned()), false)),
        "retention.ms: {:?}",
        entry("retention.ms")
    );
    ensure!(
        entry("segment.bytes").is_some_and(|(value, default)| value.is_some() && default),
        "segment.bytes: {:?}",
        entry("segment.bytes")
    );

    let request = DeleteTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topic_names(vec![name(&topic)]);
    let deleted = ask!(&mut conn, DeleteTopics, 0, request);
    let codes: Vec<i16> = deleted.responses.iter().map(|r| r.error_code).collect();
    ensure!(codes == [NONE], "DeleteTopics v0: {codes:?}");
    let set = message_set(&[plain(MAGIC_V0, 0, -1, None, "too late")]);
    let (code, _) = produce_at(&mut conn, 0, &topic, set)?;
    ensure!(
        code == UNKNOWN_TOPIC_OR_PARTITION,
        "Produce v0 to the deleted topic: error {code}"
    );
    Ok(())
}
