//! The client families of the single-broker interop tests, once each against three brokers
//! (`scripts/cluster.sh`), each at its defaults and given ONE broker to bootstrap from:
//! librdkafka (confluent-kafka, kcat), kafka-python, aiokafka, sarama and rill-client (the
//! `rill` CLI). Each produces to a topic whose partitions are led by all three brokers and reads
//! everything back through another broker: every record once, at the place its producer was
//! told, offsets contiguous from 0 and the producer's order in each partition.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, ensure};
use common::{
    Client, Cluster, MetadataView, Rec, Result, RunOutput, build_sarama, check_offsets,
    consume_from, kcat_ok, produce_to, rill_ok, run, run_py, wait_until,
};
use serde_json::{Value, json};

const PARTITIONS: i32 = 6;
const SETTLE: Duration = Duration::from_secs(20);

/// (partition, offset) -> value.
type Places = BTreeMap<(i32, i64), String>;

/// Three brokers and a topic of [`PARTITIONS`] partitions created through broker `via`, led
/// by all three (checked), with every broker agreeing on its leaders.
fn cluster_with_topic(topic: &str, via: i32) -> Result<(Cluster, MetadataView)> {
    let cluster = Cluster::start(3, &["--group-initial-rebalance-delay-ms", "200"])?;
    let _ = rill_ok(
        &cluster.bootstrap_of(via)?,
        &["topic", "create", topic, "-p", &PARTITIONS.to_string()],
        b"",
    )?;
    let view = wait_until("all brokers agreeing on the topic", SETTLE, || {
        let views = cluster
            .ids()
            .map(|k| cluster.metadata(k))
            .collect::<Result<Vec<_>>>()?;
        let first = views[0].clone();
        let leaders = first.leaders(topic)?;
        Ok((views.iter().all(|v| *v == first)
            && leaders.len() == usize::try_from(PARTITIONS)?
            && leaders.values().all(|l| *l > 0))
        .then_some(first))
    })?;
    let leaders: BTreeSet<i32> = view.leaders(topic)?.values().copied().collect();
    ensure!(
        leaders == cluster.ids().collect(),
        "{topic} is not led by all three brokers: {:?}",
        view.leaders(topic)?
    );
    Ok((cluster, view))
}

/// `value-<i>` for i in 0..count, keyed `key-<i>`, partition left to the client.
fn numbered(count: usize) -> Vec<Rec> {
    (0..count)
        .map(|i| Rec::kv(format!("key-{i}"), format!("value-{i}")))
        .collect()
}

/// Checks what was read against what was produced: the same places and values; offsets from
/// 0 without a gap in each partition; and each partition in the producer's order (the numbers
/// in `value-<n>` ascend, as they were sent); and records in partitions led by each of the
/// three brokers.
fn check_read(view: &MetadataView, topic: &str, produced: &Places, read: &Places) -> Result<()> {
    ensure!(
        read == produced,
        "read {} records, produced {}; read {read:?}\nproduced {produced:?}",
        read.len(),
        produced.len()
    );
    let mut per_partition: BTreeMap<i32, Vec<(i64, &String)>> = BTreeMap::new();
    for ((p, o), v) in read {
        per_partition.entry(*p).or_default().push((*o, v));
    }
    for (p, records) in &per_partition {
        for (i, (o, _)) in records.iter().enumerate() {
            ensure!(
                *o == i64::try_from(i)?,
                "{topic}/{p}: offsets {:?}",
                records.iter().map(|r| r.0).collect::<Vec<_>>()
            );
        }
        let numbers: Vec<u64> = records
            .iter()
            .filter_map(|(_, v)| v.rsplit('-').next()?.parse().ok())
            .collect();
        ensure!(
            numbers.len() < 2 || numbers.windows(2).all(|w| w[0] < w[1]),
            "{topic}/{p} is not in the order produced: {numbers:?}"
        );
    }
    let leaders = view.leaders(topic)?;
    let used: BTreeSet<i32> = per_partition
        .keys()
        .filter_map(|p| leaders.get(p).copied())
        .collect();
    ensure!(
        used.len() == 3,
        "the records reached partitions led by {used:?} only ({:?})",
        per_partition.keys().collect::<Vec<_>>()
    );
    Ok(())
}

fn python_client_round_trip(client: Client) -> Result<()> {
    let topic = "interop";
    let (cluster, view) = cluster_with_topic(topic, 3)?;
    let records = numbered(120);
    let deliveries = produce_to(&cluster.bootstrap_of(1)?, client, topic, &records, &[])?;
    let mut produced = Places::new();
    for d in &deliveries {
        let _ = produced.insert((d.partition, d.offset), format!("value-{}", d.index));
    }
    let consumption = consume_from(
        &cluster.bootstrap_of(2)?,
        client,
        topic,
        PARTITIONS,
        records.len(),
        &[],
    )?;
    check_offsets(&consumption)?;
    let read: Places = consumption
        .records
        .iter()
        .map(|r| {
            (
                (r.partition, r.offset),
                String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned(),
            )
        })
        .collect();
    check_read(&view, topic, &produced, &read)
}

#[test]
fn confluent_kafka_through_one_broker_of_three() -> Result<()> {
    python_client_round_trip(Client::Confluent)
}

#[test]
fn kafka_python_through_one_broker_of_three() -> Result<()> {
    python_client_round_trip(Client::KafkaPython)
}

#[test]
fn kcat_through_one_broker_of_three() -> Result<()> {
    let topic = "interop-kcat";
    let (cluster, view) = cluster_with_topic(topic, 2)?;
    let lines: String = (0..120).map(|i| format!("key-{i}:value-{i}\n")).collect();
    let _ = kcat_ok(
        &["-b", &cluster.bootstrap_of(3)?, "-P", "-t", topic, "-K:"],
        lines.as_bytes(),
    )?;
    let out = kcat_ok(
        &[
            "-b",
            &cluster.bootstrap_of(1)?,
            "-C",
            "-t",
            topic,
            "-e",
            "-f",
            "%p %o %k %s\\n",
        ],
        b"",
    )?;
    let mut read = Places::new();
    for line in out.lines() {
        let cells: Vec<&str> = line.split(' ').collect();
        ensure!(cells.len() == 4, "kcat line {line:?}");
        let n = cells[3].trim_start_matches("value-");
        ensure!(
            cells[2] == format!("key-{n}"),
            "key and value apart: {line:?}"
        );
        ensure!(
            read.insert((cells[0].parse()?, cells[1].parse()?), cells[3].to_owned())
                .is_none(),
            "read twice: {line:?}"
        );
    }
    // kcat does not report where each record went: every value once is what it produced.
    let values: BTreeSet<&String> = read.values().collect();
    ensure!(
        values.len() == 120 && read.len() == 120,
        "kcat read {} records ({} distinct values)",
        read.len(),
        values.len()
    );
    check_read(&view, topic, &read, &read)
}

#[test]
fn aiokafka_through_one_broker_of_three() -> Result<()> {
    let topic = "interop-aiokafka";
    let (cluster, view) = cluster_with_topic(topic, 1)?;
    let input: Vec<Value> = (0..120)
        .map(|i| {
            json!({"k": common::hex(format!("key-{i}").as_bytes()),
                        "v": common::hex(format!("value-{i}").as_bytes())})
        })
        .collect();
    let out = run_py(
        "aio_produce.py",
        &[cluster.bootstrap_of(2)?, topic.to_owned()],
        &serde_json::to_vec(&input)?,
    )?;
    let mut produced = Places::new();
    for row in out["delivered"].as_array().context("delivered")? {
        let _ = produced.insert(
            (
                i32::try_from(row[1].as_i64().context("partition")?)?,
                row[2].as_i64().context("offset")?,
            ),
            format!("value-{}", row[0].as_i64().context("index")?),
        );
    }
    ensure!(
        produced.len() == 120,
        "aiokafka delivered {}",
        produced.len()
    );
    // aiokafka reads as the only member of a group (group_consume.py), through broker 3.
    let out = run_py(
        "group_consume.py",
        &[
            cluster.bootstrap_of(3)?,
            topic.to_owned(),
            "aio-readers".to_owned(),
            "--client".to_owned(),
            "aiokafka".to_owned(),
            "--count".to_owned(),
            "120".to_owned(),
        ],
        b"",
    )?;
    let read = common::records_by_place(&out)?;
    check_read(&view, topic, &produced, &read)
}

#[test]
fn rill_client_through_one_broker_of_three() -> Result<()> {
    let topic = "interop-rill";
    let (cluster, view) = cluster_with_topic(topic, 2)?;
    let lines: String = (0..120).map(|i| format!("key-{i}:value-{i}\n")).collect();
    let _ = rill_ok(
        &cluster.bootstrap_of(1)?,
        &["produce", topic, "-K", ":"],
        lines.as_bytes(),
    )?;
    let read = rill_json_read(
        &cluster.bootstrap_of(3)?,
        &["consume", topic, "--from-beginning"],
    )?;
    check_read(&view, topic, &read, &read)?;
    ensure!(read.len() == 120, "rill consume read {}", read.len());

    // As a group (from the beginning where it has no committed offset; the end is the
    // default, as Kafka's), through broker 2; its committed offsets, asked through broker 1,
    // are the log ends.
    let grouped = rill_json_read(
        &cluster.bootstrap_of(2)?,
        &["consume", topic, "-g", "rill-readers", "--from-beginning"],
    )?;
    ensure!(grouped == read, "the group read {grouped:?}");
    let (described, _) = rill_ok(
        &cluster.bootstrap_of(1)?,
        &["group", "describe", "rill-readers"],
        b"",
    )?;
    let mut ends: BTreeMap<i32, i64> = BTreeMap::new();
    for (p, o) in read.keys() {
        let end = ends.entry(*p).or_insert(0);
        *end = (*end).max(o + 1);
    }
    for (p, end) in &ends {
        let row = common::row_starting(&described, &[topic, &p.to_string()])
            .with_context(|| format!("no row for {topic}/{p} in:\n{described}"))?;
        ensure!(
            row.get(2) == Some(&end.to_string().as_str()),
            "{topic}/{p} committed {row:?}, log end {end}:\n{described}"
        );
    }
    Ok(())
}

/// `rill ARGS -e -J` through `bootstrap`, each record's place and value.
fn rill_json_read(bootstrap: &str, args: &[&str]) -> Result<Places> {
    let mut args = args.to_vec();
    args.extend(["-e", "-J"]);
    let (stdout, _) = rill_ok(bootstrap, &args, b"")?;
    let mut read = Places::new();
    for line in stdout.lines() {
        let record: Value = serde_json::from_str(line).with_context(|| format!("line {line}"))?;
        let place = (
            i32::try_from(record["partition"].as_i64().context("partition")?)?,
            record["offset"].as_i64().context("offset")?,
        );
        let value = record["value"].as_str().context("value")?.to_owned();
        ensure!(read.insert(place, value).is_none(), "read {place:?} twice");
    }
    Ok(read)
}

#[test]
fn sarama_through_one_broker_of_three() -> Result<()> {
    let bin = build_sarama(&["sync_producer", "async_producer", "partition_consumer"])?;
    let topic = "interop-sarama";
    let (cluster, view) = cluster_with_topic(topic, 1)?;
    let sarama = |program: &str, bootstrap: &str, args: &[&str]| -> Result<RunOutput> {
        let mut command = Command::new(bin.path().join(program));
        let _ = command
            .args(["-brokers", bootstrap, "-topic", topic])
            .args(args);
        let out = run(command, b"", Duration::from_secs(60))?;
        ensure!(
            out.status.success(),
            "{program} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            out.stderr
        );
        Ok(out)
    };
    // At sarama's defaults (Kafka 0.8.2: Metadata v0, Produce v0), through broker 2: a sync
    // producer's 20 `Hello World!` and an async producer's 40 `async: <n>`.
    let mut produced: Vec<(i32, i64, String)> = Vec::new();
    let out = sarama("sync_producer", &cluster.bootstrap_of(2)?, &["-n", "20"])?;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let rest = line
            .strip_prefix("分区ID:")
            .with_context(|| format!("line {line:?}"))?;
        let (p, o) = rest.split_once(", offset:").context("offset")?;
        produced.push((
            p.trim().parse()?,
            o.trim().parse()?,
            "Hello World!".to_owned(),
        ));
    }
    let out = sarama(
        "async_producer",
        &cluster.bootstrap_of(2)?,
        &["-n", "40", "-interval", "5ms", "-timeout", "30s"],
    )?;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(rest) = line.strip_prefix("success: partition=") else {
            continue;
        };
        let (p, rest) = rest.split_once(" offset=").context("offset")?;
        let (o, v) = rest.split_once(" value=").context("value")?;
        produced.push((p.parse()?, o.parse()?, v.to_owned()));
    }
    ensure!(produced.len() == 60, "sarama produced {}", produced.len());
    let produced: Places = produced.into_iter().map(|(p, o, v)| ((p, o), v)).collect();
    ensure!(produced.len() == 60, "two sends given one place");

    // sarama's partition consumer, from the oldest offset, through broker 3.
    let out = sarama(
        "partition_consumer",
        &cluster.bootstrap_of(3)?,
        &["-oldest", "-count", "60", "-timeout", "40s"],
    )?;
    let mut read = Places::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let rest = line
            .strip_prefix("Partition:")
            .with_context(|| format!("line {line:?}"))?;
        let (p, rest) = rest.split_once(", Offset:").context("offset")?;
        let (o, rest) = rest.split_once(", key:").context("key")?;
        let (_, v) = rest.split_once(", value:").context("value")?;
        ensure!(
            read.insert((p.parse()?, o.parse()?), v.to_owned())
                .is_none(),
            "read twice: {line}"
        );
    }
    // The values carry no sequence number sarama chose, so the order check is the offsets:
    // every record read back at the place its producer was told.
    ensure!(
        read == produced,
        "sarama read {read:?}\nproduced {produced:?}"
    );
    let renumbered: Places = read
        .keys()
        .map(|(p, o)| ((*p, *o), format!("v-{o}")))
        .collect();
    check_read(&view, topic, &renumbered, &renumbered)
}
