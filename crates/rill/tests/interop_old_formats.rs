//! The message formats before record batches, with real clients: kafka-python told it talks to
//! Kafka 0.10 (Produce v2 with magic 1 messages, Fetch v2, ListOffsets v0) or 0.9 (Produce v1
//! with magic 0 messages, Fetch v1), against confluent-kafka at librdkafka's defaults (record
//! batches v2) on the other side. The broker stores v2 batches only: old message sets are
//! converted when appended (keeping the codec) and converted back for old fetches.

mod common;

use std::collections::HashMap;

use anyhow::{Context, ensure};
use common::{
    Broker, Client, Consumed, Consumption, Delivery, Rec, Result, check_offsets, consume,
    consume_with, create_topic, produce, show, stored_batches,
};
use rill_record::Compression;

const PARTITIONS: i32 = 3;
/// CreateTime of the first record; the others follow, not in order.
const BASE_TS: i64 = 1_700_000_000_000;

/// `count` records over the partitions, round robin, each with a CreateTime of its own (not
/// increasing), every seventh with a null key; `headers` adds two headers to each.
fn records(tag: &str, count: usize, headers: bool) -> Result<Vec<Rec>> {
    (0..count)
        .map(|i| {
            let n = i64::try_from(i)?;
            Ok(Rec {
                key: (i % 7 != 3).then(|| format!("key-{i}").into_bytes()),
                value: Some(format!("{tag}-{i:03} {}", "old formats ".repeat(i % 5)).into_bytes()),
                headers: if headers {
                    vec![
                        ("trace".to_owned(), Some(format!("t-{i}").into_bytes())),
                        ("empty".to_owned(), None),
                    ]
                } else {
                    Vec::new()
                },
                partition: Some(i32::try_from(i)? % PARTITIONS),
                timestamp: Some(BASE_TS + n * 1000 - (n % 3) * 7),
            })
        })
        .collect()
}

/// How the reader is expected to see timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stamps {
    /// The producer's CreateTime, as given.
    AsGiven,
    /// No timestamp (message format v0): -1, as Kafka's Java client reports it.
    Missing,
}

/// `got` holds exactly `records` where `deliveries` put them, offsets contiguous from 0 per
/// partition up to the watermarks; keys and values byte-exact; no headers (old formats have
/// none); timestamps as `stamps` says.
fn check_exact(
    records: &[Rec],
    deliveries: &[Delivery],
    got: &Consumption,
    stamps: Stamps,
    reader: &str,
) -> Result<()> {
    check_offsets(got).with_context(|| reader.to_owned())?;
    ensure!(
        got.records.len() == records.len() && deliveries.len() == records.len(),
        "{reader} read {} records; {} were produced",
        got.records.len(),
        records.len()
    );
    let read: HashMap<(i32, i64), &Consumed> = got
        .records
        .iter()
        .map(|r| ((r.partition, r.offset), r))
        .collect();
    for d in deliveries {
        let sent = records.get(d.index).context("delivery index")?;
        let r = read.get(&(d.partition, d.offset)).with_context(|| {
            format!(
                "{reader}: record {} acknowledged at {}/{} is missing",
                d.index, d.partition, d.offset
            )
        })?;
        ensure!(
            r.key == sent.key && r.value == sent.value,
            "{reader}: {}/{}: key {} value {}, produced key {} value {}",
            d.partition,
            d.offset,
            show(r.key.as_deref()),
            show(r.value.as_deref()),
            show(sent.key.as_deref()),
            show(sent.value.as_deref())
        );
        ensure!(
            r.headers.is_empty(),
            "{reader}: {}/{} has headers {:?}",
            d.partition,
            d.offset,
            r.headers
        );
        match stamps {
            Stamps::AsGiven => {
                let given = sent.timestamp.context("no timestamp sent")?;
                ensure!(
                    r.timestamp == given && r.timestamp_type.as_deref() == Some("create"),
                    "{reader}: {}/{} has timestamp {} ({:?}), produced CreateTime {given}",
                    d.partition,
                    d.offset,
                    r.timestamp,
                    r.timestamp_type
                );
            }
            // A reader of v2 batches sees CreateTime -1 (Kafka stores magic 0 records so); a
            // reader of magic 0 messages sees no timestamp type either.
            Stamps::Missing => ensure!(
                r.timestamp == -1,
                "{reader}: {}/{} has timestamp {} ({:?}), expected none (-1)",
                d.partition,
                d.offset,
                r.timestamp,
                r.timestamp_type
            ),
        }
    }
    Ok(())
}

/// Every batch stored for `topic` has `codec` (the codec of the producer's wrappers).
fn check_stored_codec(broker: &Broker, topic: &str, codec: Compression) -> Result<()> {
    let Some(dir) = broker.data_dir() else {
        return Ok(());
    };
    for partition in 0..PARTITIONS {
        for header in stored_batches(dir, topic, partition)? {
            ensure!(
                header.attributes.compression()? == codec,
                "{topic}/{partition}: the batch at {} is stored with {:?}, expected {codec:?}",
                header.base_offset,
                header.attributes.compression()
            );
        }
    }
    Ok(())
}

fn codec_named(name: &str) -> Result<Compression> {
    [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ]
    .into_iter()
    .find(|c| c.name() == name)
    .with_context(|| format!("no codec named {name}"))
}

/// kafka-python told Kafka 0.10 produces magic 1 messages (`codec`: plain, or wrapped); they are
/// stored as v2 batches with that codec, and confluent-kafka reads them exactly, with the
/// producer's timestamps.
fn kafka_python_0_10_to_confluent(codec: &str) -> Result<()> {
    let broker = Broker::start()?;
    let topic = broker.topic(&format!("magic1-{codec}"));
    create_topic(&broker, &topic, PARTITIONS, &[])?;
    let sent = records(&format!("kp010-{codec}"), 60, false)?;
    let deliveries = produce(
        &broker,
        Client::KafkaPython,
        &topic,
        &sent,
        &["--api-version", "0.10", "--compression", codec],
    )?;
    check_stored_codec(&broker, &topic, codec_named(codec)?)?;
    let got = consume(&broker, Client::Confluent, &topic, PARTITIONS, sent.len())?;
    check_exact(&sent, &deliveries, &got, Stamps::AsGiven, "confluent-kafka")
}

#[test]
fn kafka_python_0_10_plain_messages_are_read_by_confluent() -> Result<()> {
    kafka_python_0_10_to_confluent("none")
}

#[test]
fn kafka_python_0_10_gzip_wrappers_are_read_by_confluent() -> Result<()> {
    kafka_python_0_10_to_confluent("gzip")
}

#[test]
fn kafka_python_0_10_snappy_wrappers_are_read_by_confluent() -> Result<()> {
    kafka_python_0_10_to_confluent("snappy")
}

#[test]
fn kafka_python_0_10_lz4_wrappers_are_read_by_confluent() -> Result<()> {
    kafka_python_0_10_to_confluent("lz4")
}

/// confluent-kafka writes v2 batches with headers, uncompressed and with each codec (zstd, which
/// the old formats cannot carry, included); kafka-python told Kafka 0.10 (Fetch v2, magic 1)
/// reads keys, values, offsets and timestamps exactly and no headers, and told 0.9 (Fetch v1,
/// magic 0) the same without timestamps.
#[test]
fn confluent_batches_with_headers_are_read_by_kafka_python_0_10_and_0_9() -> Result<()> {
    let broker = Broker::start()?;
    let topic = broker.topic("v2-to-old");
    create_topic(&broker, &topic, PARTITIONS, &[])?;
    let mut sent = Vec::new();
    let mut deliveries = Vec::new();
    for codec in ["none", "zstd", "gzip", "snappy", "lz4"] {
        let batch = records(&format!("confluent-{codec}"), 30, true)?;
        for d in produce(
            &broker,
            Client::Confluent,
            &topic,
            &batch,
            &["--compression", codec],
        )? {
            deliveries.push(Delivery {
                index: d.index + sent.len(),
                ..d
            });
        }
        sent.extend(batch);
    }
    for (version, stamps) in [("0.10", Stamps::AsGiven), ("0.9", Stamps::Missing)] {
        let got = consume_with(
            &broker,
            Client::KafkaPython,
            &topic,
            PARTITIONS,
            sent.len(),
            &["--api-version", version],
        )?;
        check_exact(
            &sent,
            &deliveries,
            &got,
            stamps,
            &format!("kafka-python {version}"),
        )?;
    }
    Ok(())
}

/// kafka-python told Kafka 0.9 produces magic 0 messages (no timestamps; plain, then in gzip and
/// snappy wrappers, whose inner offsets are absolute); confluent-kafka reads them exactly, with
/// no timestamp (-1).
#[test]
fn kafka_python_0_9_magic_0_messages_are_read_by_confluent() -> Result<()> {
    let broker = Broker::start()?;
    let topic = broker.topic("magic0");
    create_topic(&broker, &topic, PARTITIONS, &[])?;
    let mut sent = Vec::new();
    let mut deliveries = Vec::new();
    // Not lz4: kafka-python writes magic 0's LZ4 framing only with the xxhash module, which the
    // test venv does not have (protocol_legacy.rs sends such a frame by hand).
    for codec in ["none", "gzip", "snappy"] {
        let batch: Vec<Rec> = records(&format!("kp09-{codec}"), 30, false)?
            .into_iter()
            .map(|r| Rec {
                timestamp: None,
                ..r
            })
            .collect();
        for d in produce(
            &broker,
            Client::KafkaPython,
            &topic,
            &batch,
            &["--api-version", "0.9", "--compression", codec],
        )? {
            deliveries.push(Delivery {
                index: d.index + sent.len(),
                ..d
            });
        }
        sent.extend(batch);
    }
    if let Some(dir) = broker.data_dir() {
        // Each produce's batches in turn, with its codec, in every partition.
        for partition in 0..PARTITIONS {
            let mut codecs: Vec<Compression> = stored_batches(dir, &topic, partition)?
                .iter()
                .map(|h| h.attributes.compression())
                .collect::<std::result::Result<_, _>>()?;
            codecs.dedup();
            ensure!(
                codecs == [Compression::None, Compression::Gzip, Compression::Snappy],
                "{topic}/{partition}: stored codecs {codecs:?}"
            );
        }
    }
    let got = consume(&broker, Client::Confluent, &topic, PARTITIONS, sent.len())?;
    check_exact(&sent, &deliveries, &got, Stamps::Missing, "confluent-kafka")
}
