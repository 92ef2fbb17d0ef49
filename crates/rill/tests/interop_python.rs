//! Interop with Python's Kafka clients: confluent-kafka (librdkafka) and kafka-python (pure
//! Python), driving a real `rill serve`. Each test produces with one client and reads back with
//! the other, and asserts contents, order, offsets and counts.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::{Context, ensure};
use common::{
    Broker, Client, Consumption, Delivery, Rec, Result, check_offsets, consume, create_topic,
    noise, produce, run_py, run_py_failing, segment_bytes, show,
};
use serde_json::{Value, json};

/// Checks that `got` holds exactly `records`, each where its delivery report said, with
/// offsets contiguous from 0 per partition and each partition in produce order.
fn check_round_trip(records: &[Rec], deliveries: &[Delivery], got: &Consumption) -> Result<()> {
    check_offsets(got)?;
    ensure!(
        got.records.len() == records.len(),
        "read {} records, produced {}",
        got.records.len(),
        records.len()
    );
    let by_position: HashMap<(i32, i64), &common::Consumed> = got
        .records
        .iter()
        .map(|r| ((r.partition, r.offset), r))
        .collect();
    for d in deliveries {
        let sent = records.get(d.index).context("delivery index")?;
        let read = by_position.get(&(d.partition, d.offset)).with_context(|| {
            format!(
                "record {} acknowledged at {}/{} is missing",
                d.index, d.partition, d.offset
            )
        })?;
        ensure!(
            read.key == sent.key && read.value == sent.value,
            "record {} at {}/{}: read key {} value {}, produced key {} value {}",
            d.index,
            d.partition,
            d.offset,
            show(read.key.as_deref()),
            show(read.value.as_deref()),
            show(sent.key.as_deref()),
            show(sent.value.as_deref())
        );
        ensure!(
            read.headers == sent.headers,
            "record {} headers: read {:?}, produced {:?}",
            d.index,
            read.headers,
            sent.headers
        );
        if let Some(ts) = sent.timestamp {
            ensure!(
                read.timestamp == ts,
                "record {} timestamp {}",
                d.index,
                read.timestamp
            );
        }
        ensure!(
            read.timestamp_type.as_deref() == Some("create"),
            "record {} timestamp type {:?}",
            d.index,
            read.timestamp_type
        );
    }
    // Produce order is kept within each partition.
    let mut last: BTreeMap<i32, i64> = BTreeMap::new();
    for d in deliveries {
        if let Some(prev) = last.insert(d.partition, d.offset) {
            ensure!(
                d.offset > prev,
                "record {} got offset {} in partition {}, after {prev} for an earlier record",
                d.index,
                d.offset,
                d.partition
            );
        }
    }
    // Every value exactly once (deliveries are one per record, so this catches duplicates).
    let mut produced: Vec<&Option<Vec<u8>>> = records.iter().map(|r| &r.value).collect();
    let mut read: Vec<&Option<Vec<u8>>> = got.records.iter().map(|r| &r.value).collect();
    produced.sort();
    read.sort();
    ensure!(
        produced == read,
        "the values read differ from those produced"
    );
    Ok(())
}

/// Checks that the client's partitioner sent each key to one partition, and used them all.
fn check_key_affinity(got: &Consumption, partitions: i32) -> Result<()> {
    let mut home: HashMap<&Option<Vec<u8>>, i32> = HashMap::new();
    for r in &got.records {
        let p = *home.entry(&r.key).or_insert(r.partition);
        ensure!(
            p == r.partition,
            "key {} is in partitions {p} and {}",
            show(r.key.as_deref()),
            r.partition
        );
    }
    let used: BTreeSet<i32> = got.records.iter().map(|r| r.partition).collect();
    ensure!(
        used == (0..partitions).collect(),
        "records landed in partitions {used:?} of {partitions}"
    );
    Ok(())
}

fn keyed(count: usize, keys: usize) -> Vec<Rec> {
    (0..count)
        .map(|i| Rec::kv(format!("key-{}", i % keys), format!("value-{i}")))
        .collect()
}

fn bootstrap_args(broker: &Broker, rest: &[&str]) -> Vec<String> {
    std::iter::once(broker.bootstrap())
        .chain(rest.iter().map(|s| (*s).to_owned()))
        .collect()
}

/// Checks one topic's metadata entry as admin.py prints it: `partitions` partitions, each led
/// by node 0 with replicas and ISR [0], and this broker as node 0.
fn check_topic_metadata(md: &Value, broker: &Broker, partitions: usize) -> Result<()> {
    ensure!(
        md["brokers"] == json!({ "0": broker.bootstrap() }),
        "brokers {}; expected node 0 at {}",
        md["brokers"],
        broker.bootstrap()
    );
    let mut expected = serde_json::Map::new();
    for p in 0..partitions {
        let _ = expected.insert(
            p.to_string(),
            json!({"leader": 0, "replicas": [0], "isrs": [0]}),
        );
    }
    ensure!(
        md["topic"]["partitions"] == Value::Object(expected),
        "topic metadata {}; expected {partitions} partitions led by node 0",
        md["topic"]
    );
    Ok(())
}

#[test]
fn admin_creates_lists_grows_and_deletes_a_topic() -> Result<()> {
    let broker = Broker::start()?;
    let topic = broker.topic("admin-orders");
    let out = run_py(
        "admin.py",
        &bootstrap_args(&broker, &["scenario", &topic]),
        b"",
    )?;

    ensure!(
        out["validate_only"].is_null(),
        "validate-only create: {}",
        out["validate_only"]
    );
    ensure!(
        out["listed_after_validate_only"] == json!(false),
        "a validate-only create created the topic"
    );
    ensure!(out["create"].is_null(), "create: {}", out["create"]);
    check_topic_metadata(&out["after_create"], &broker, 3).context("after create")?;
    ensure!(
        out["create_again"] == json!("TOPIC_ALREADY_EXISTS"),
        "creating it again: {}",
        out["create_again"]
    );
    ensure!(
        out["create_partitions"].is_null(),
        "create_partitions to 5: {}",
        out["create_partitions"]
    );
    check_topic_metadata(&out["after_create_partitions"], &broker, 5)
        .context("after create_partitions")?;
    ensure!(out["delete"].is_null(), "delete: {}", out["delete"]);
    ensure!(
        out["listed_after_delete"] == json!(false),
        "the topic is still listed after delete"
    );
    Ok(())
}

#[test]
fn confluent_produces_10k_keyed_records_that_kafka_python_reads_back() -> Result<()> {
    let broker = Broker::start()?;
    let topic = broker.topic("keyed-10k");
    create_topic(&broker, &topic, 3, &[])?;
    let records = keyed(10_000, 100);
    let deliveries = produce(
        &broker,
        Client::Confluent,
        &topic,
        &records,
        &["--acks", "all"],
    )?;
    let got = consume(&broker, Client::KafkaPython, &topic, 3, records.len())?;
    check_round_trip(&records, &deliveries, &got)?;
    check_key_affinity(&got, 3)
}

#[test]
fn kafka_python_produces_keyed_records_that_confluent_reads_back() -> Result<()> {
    let broker = Broker::start()?;
    let topic = broker.topic("keyed-2k");
    create_topic(&broker, &topic, 3, &[])?;
    let records = keyed(2_000, 50);
    let deliveries = produce(
        &broker,
        Client::KafkaPython,
        &topic,
        &records,
        &["--acks", "all"],
    )?;
    let got = consume(&broker, Client::Confluent, &topic, 3, records.len())?;
    check_round_trip(&records, &deliveries, &got)?;
    check_key_affinity(&got, 3)
}

/// Idempotent producers (InitProducerId, then sequence numbers in every batch). kafka-python 3
/// is idempotent by default (KIP-679), so this is what a plain `KafkaProducer()` does; the
/// other tests switch it off to keep their failures about one thing.
/// Produces compressible records with `codec` from each client and reads them with the other.
/// The broker stores batches as sent, so the segments must be much smaller than the values.
#[test]
fn idempotent_producers_of_both_clients_round_trip() -> Result<()> {
    let broker = Broker::start()?;
    for (producer, consumer, setting) in [
        (
            Client::Confluent,
            Client::KafkaPython,
            "enable.idempotence=true",
        ),
        (
            Client::KafkaPython,
            Client::Confluent,
            "enable_idempotence=true",
        ),
    ] {
        let topic = broker.topic(&format!("idempotent-{}", producer.name()));
        create_topic(&broker, &topic, 3, &[])?;
        let records = keyed(1_000, 40);
        let deliveries = produce(
            &broker,
            producer,
            &topic,
            &records,
            &["--acks", "all", "--set", setting],
        )?;
        let got = consume(&broker, consumer, &topic, 3, records.len())?;
        check_round_trip(&records, &deliveries, &got).with_context(|| {
            format!("idempotent {} read by {}", producer.name(), consumer.name())
        })?;
        check_key_affinity(&got, 3)?;
    }
    Ok(())
}

fn codec_round_trip(codec: &str) -> Result<()> {
    let broker = Broker::start()?;
    let records: Vec<Rec> = (0..500)
        .map(|i| {
            let value = format!(
                "value-{i:05} {}",
                "the quick brown fox jumps over the lazy dog ".repeat(12)
            );
            Rec::kv(format!("key-{}", i % 10), value)
        })
        .collect();
    let raw: usize = records
        .iter()
        .filter_map(|r| r.value.as_ref())
        .map(Vec::len)
        .sum();
    for (producer, consumer) in [
        (Client::Confluent, Client::KafkaPython),
        (Client::KafkaPython, Client::Confluent),
    ] {
        let topic = broker.topic(&format!("codec-{codec}-{}", producer.name()));
        create_topic(&broker, &topic, 2, &[])?;
        let deliveries = produce(
            &broker,
            producer,
            &topic,
            &records,
            &["--compression", codec],
        )?;
        let got = consume(&broker, consumer, &topic, 2, records.len()).with_context(|| {
            format!(
                "{codec} from {} read by {}",
                producer.name(),
                consumer.name()
            )
        })?;
        check_round_trip(&records, &deliveries, &got).with_context(|| {
            format!(
                "{codec} from {} read by {}",
                producer.name(),
                consumer.name()
            )
        })?;
        if let Some(dir) = broker.data_dir() {
            let stored = segment_bytes(dir, &topic)?;
            ensure!(
                stored * 4 < u64::try_from(raw)?,
                "{codec} from {}: {stored} bytes of segments for {raw} bytes of values; \
                 were the batches stored compressed?",
                producer.name()
            );
        }
    }
    Ok(())
}

#[test]
fn gzip_batches_round_trip_between_clients() -> Result<()> {
    codec_round_trip("gzip")
}

#[test]
fn snappy_batches_round_trip_between_clients() -> Result<()> {
    codec_round_trip("snappy")
}

#[test]
fn lz4_batches_round_trip_between_clients() -> Result<()> {
    codec_round_trip("lz4")
}

#[test]
fn zstd_batches_round_trip_between_clients() -> Result<()> {
    codec_round_trip("zstd")
}

/// Records with every odd shape a client can send, all in partition 0, in this order.
/// kafka-python cannot send a header with a null value (its `send` insists on bytes), nor a
/// record with neither key nor value, so those two are confluent-kafka's only.
fn odd_records(producer: Client) -> Vec<Rec> {
    let confluent = producer == Client::Confluent;
    let on_p0 = |r: Rec| Rec {
        partition: Some(0),
        ..r
    };
    let mut records = vec![
        on_p0(Rec {
            headers: vec![
                ("trace-id".to_owned(), Some(b"abc-123".to_vec())),
                ("dup".to_owned(), Some(b"first".to_vec())),
                ("dup".to_owned(), Some(b"second".to_vec())),
                (
                    "null-value".to_owned(),
                    (!confluent).then(|| b"not null".to_vec()),
                ),
                ("empty-value".to_owned(), Some(Vec::new())),
                ("dup".to_owned(), Some(b"third".to_vec())),
            ],
            ..Rec::kv("with-headers", "has six headers")
        }),
        on_p0(Rec {
            key: None,
            value: Some(b"null key".to_vec()),
            ..Rec::default()
        }),
        on_p0(Rec {
            key: Some(b"tombstone".to_vec()),
            value: None,
            ..Rec::default()
        }),
        on_p0(Rec::kv("empty-value", "")),
        on_p0(Rec::kv("", "empty key")),
        on_p0(Rec::kv(noise(16, 1), noise(300, 2))),
        on_p0(Rec::kv("last", "after all the odd ones")),
    ];
    if confluent {
        let neither = on_p0(Rec {
            key: None,
            value: None,
            ..Rec::default()
        });
        records.insert(5, neither);
    }
    records
}

#[test]
fn headers_null_keys_tombstones_and_empty_values_round_trip() -> Result<()> {
    let broker = Broker::start()?;
    for (producer, consumers) in [
        (Client::Confluent, [Client::KafkaPython, Client::Confluent]),
        (
            Client::KafkaPython,
            [Client::Confluent, Client::KafkaPython],
        ),
    ] {
        let records = odd_records(producer);
        let topic = broker.topic(&format!("odd-{}", producer.name()));
        create_topic(&broker, &topic, 1, &[])?;
        let deliveries = produce(&broker, producer, &topic, &records, &[])?;
        let offsets: Vec<i64> = deliveries.iter().map(|d| d.offset).collect();
        ensure!(
            offsets == (0..i64::try_from(records.len())?).collect::<Vec<i64>>(),
            "offsets {offsets:?} from {}",
            producer.name()
        );
        for consumer in consumers {
            let got = consume(&broker, consumer, &topic, 1, records.len())?;
            check_round_trip(&records, &deliveries, &got)
                .with_context(|| format!("from {} read by {}", producer.name(), consumer.name()))?;
            // Same order as produced, field for field.
            for (i, (sent, read)) in records.iter().zip(&got.records).enumerate() {
                ensure!(
                    read.offset == i64::try_from(i)?
                        && read.key == sent.key
                        && read.value == sent.value
                        && read.headers == sent.headers,
                    "record {i} from {} read by {}: {read:?}",
                    producer.name(),
                    consumer.name()
                );
            }
        }
    }
    Ok(())
}

#[test]
fn a_one_megabyte_value_round_trips_byte_exact() -> Result<()> {
    let broker = Broker::start()?;
    let big = noise(1_000_000, 42);
    let records = [
        Rec::kv("before", "small"),
        Rec::kv("big", big.clone()),
        Rec::kv("after", "small again"),
    ];
    // librdkafka's own limit on one message (message.max.bytes) defaults to 1,000,000 bytes
    // in all; Kafka's broker default for a batch is 1,048,588.
    for (producer, options) in [
        (
            Client::Confluent,
            &["--set", "message.max.bytes=1048588"][..],
        ),
        (Client::KafkaPython, &[][..]),
    ] {
        let topic = broker.topic(&format!("big-{}", producer.name()));
        create_topic(&broker, &topic, 1, &[])?;
        let records: Vec<Rec> = records
            .iter()
            .map(|r| Rec {
                partition: Some(0),
                ..r.clone()
            })
            .collect();
        let deliveries = produce(&broker, producer, &topic, &records, options)?;
        for consumer in [Client::Confluent, Client::KafkaPython] {
            let got = consume(&broker, consumer, &topic, 1, records.len())?;
            check_round_trip(&records, &deliveries, &got)
                .with_context(|| format!("from {} read by {}", producer.name(), consumer.name()))?;
            let read = got.records.get(1).context("no second record")?;
            ensure!(
                read.offset == 1 && read.value.as_deref() == Some(&big[..]),
                "the 1,000,000-byte value came back as {} at offset {}",
                show(read.value.as_deref()),
                read.offset
            );
        }
    }
    Ok(())
}

const BASE_TS: i64 = 1_700_000_000_000;

fn offsets_for_times(broker: &Broker, topic: &str, partition: i32, times: &[i64]) -> Result<Value> {
    let mut args = vec![broker.bootstrap(), topic.to_owned(), partition.to_string()];
    args.extend(times.iter().map(i64::to_string));
    run_py("offsets.py", &args, b"")
}

/// Checks offsets.py's answer for both clients: `(timestamp, first offset at or after it)`.
fn check_times(out: &Value, expected: &[(i64, Option<i64>)]) -> Result<()> {
    for client in ["confluent", "kafka-python"] {
        for (ts, offset) in expected {
            ensure!(
                out[client][ts.to_string()] == json!(offset),
                "{client}: offsets_for_times({ts}) = {}, expected {offset:?} (all: {})",
                out[client][ts.to_string()],
                out[client]
            );
        }
    }
    Ok(())
}

#[test]
fn list_offsets_finds_offsets_by_timestamp_and_watermarks() -> Result<()> {
    let broker = Broker::start()?;
    let topic = broker.topic("by-time");
    create_topic(&broker, &topic, 2, &[])?;
    let records: Vec<Rec> = (0..5)
        .map(|i| Rec {
            partition: Some(0),
            timestamp: Some(BASE_TS + 1000 * i),
            ..Rec::kv(format!("k{i}"), format!("at +{}s", i))
        })
        .collect();
    let deliveries = produce(&broker, Client::Confluent, &topic, &records, &[])?;
    let got = consume(&broker, Client::KafkaPython, &topic, 2, records.len())?;
    check_round_trip(&records, &deliveries, &got)?;

    let expected = [
        (BASE_TS - 60_000, Some(0)),
        (BASE_TS - 1, Some(0)),
        (BASE_TS, Some(0)),
        (BASE_TS + 1, Some(1)),
        (BASE_TS + 1000, Some(1)),
        (BASE_TS + 2500, Some(3)),
        (BASE_TS + 3999, Some(4)),
        (BASE_TS + 4000, Some(4)),
        (BASE_TS + 4001, None),
    ];
    let times: Vec<i64> = expected.iter().map(|(t, _)| *t).collect();
    let out = offsets_for_times(&broker, &topic, 0, &times)?;
    ensure!(
        out["watermarks"] == json!([0, 5]),
        "watermarks {}",
        out["watermarks"]
    );
    check_times(&out, &expected)?;

    let empty = offsets_for_times(&broker, &topic, 1, &[BASE_TS])?;
    ensure!(
        empty["watermarks"] == json!([0, 0]),
        "empty partition watermarks {}",
        empty["watermarks"]
    );
    check_times(&empty, &[(BASE_TS, None)])
}

/// Kafka answers a time query with the first offset, in offset order, whose timestamp is at
/// or after the time, even when timestamps go backwards.
#[test]
fn list_offsets_by_timestamp_with_out_of_order_timestamps() -> Result<()> {
    let broker = Broker::start()?;
    let topic = broker.topic("by-time-unordered");
    create_topic(&broker, &topic, 1, &[])?;
    let stamps = [
        BASE_TS,
        BASE_TS + 3000,
        BASE_TS + 1000,
        BASE_TS + 2000,
        BASE_TS + 4000,
    ];
    let records: Vec<Rec> = stamps
        .iter()
        .enumerate()
        .map(|(i, ts)| Rec {
            partition: Some(0),
            timestamp: Some(*ts),
            ..Rec::kv(format!("k{i}"), format!("v{i}"))
        })
        .collect();
    let _ = produce(&broker, Client::Confluent, &topic, &records, &[])?;
    let expected = [
        (BASE_TS, Some(0)),
        (BASE_TS + 500, Some(1)),
        (BASE_TS + 1000, Some(1)),
        (BASE_TS + 2000, Some(1)),
        (BASE_TS + 3000, Some(1)),
        (BASE_TS + 3001, Some(4)),
        (BASE_TS + 4001, None),
    ];
    let times: Vec<i64> = expected.iter().map(|(t, _)| *t).collect();
    let out = offsets_for_times(&broker, &topic, 0, &times)?;
    ensure!(
        out["watermarks"] == json!([0, 5]),
        "watermarks {}",
        out["watermarks"]
    );
    check_times(&out, &expected)
}

#[test]
fn producing_to_a_new_topic_auto_creates_it_with_the_default_partition_count() -> Result<()> {
    let broker = Broker::start_with(&["--num-partitions", "4"])?;
    let topic = broker.topic("auto-created");
    let records = keyed(200, 20);
    let deliveries = produce(&broker, Client::Confluent, &topic, &records, &[])?;
    let out = run_py(
        "admin.py",
        &bootstrap_args(&broker, &["describe", &topic]),
        b"",
    )?;
    let partitions = out["partitions"].as_object().context("no partitions")?;
    ensure!(
        partitions.len() == 4,
        "auto-created with {} partitions",
        partitions.len()
    );
    let got = consume(&broker, Client::KafkaPython, &topic, 4, records.len())?;
    check_round_trip(&records, &deliveries, &got)?;
    check_key_affinity(&got, 4)
}

#[test]
fn with_auto_create_off_producing_to_a_missing_topic_fails_and_creates_nothing() -> Result<()> {
    let broker = Broker::start_with(&["--auto-create-topics", "false"])?;
    let topic = broker.topic("not-there");
    let args = vec![
        broker.bootstrap(),
        topic.clone(),
        "--client".to_owned(),
        "confluent".to_owned(),
        "--timeout".to_owned(),
        "3".to_owned(),
    ];
    let records = serde_json::to_vec(&json!([{ "k": null, "v": "00" }]))?;
    let _stderr = run_py_failing("produce.py", &args, &records)?;
    let out = run_py("admin.py", &bootstrap_args(&broker, &["metadata"]), b"")?;
    ensure!(
        out["topics"].get(&topic).is_none(),
        "the topic was created: {}",
        out["topics"]
    );
    Ok(())
}
