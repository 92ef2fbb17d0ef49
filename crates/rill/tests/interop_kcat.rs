//! Interop with kcat (librdkafka's command-line client, as Debian ships it): metadata,
//! keyed produce and consume with exact output, and produce with each codec, stored with that
//! codec and read back by kcat and confluent-kafka.

mod common;

use std::collections::BTreeMap;

use anyhow::{Context, ensure};
use common::{
    Broker, Client, Result, check_offsets, consume, create_topic, kcat, kcat_ok, show,
    stored_batches,
};
use rill_record::Compression;
use serde_json::{Value, json};

#[test]
fn kcat_metadata_lists_the_topic_with_its_partitions_and_leader() -> Result<()> {
    let broker = Broker::start()?;
    let topic = broker.topic("kcat-meta");
    create_topic(&broker, &topic, 3, &[])?;
    let bootstrap = broker.bootstrap();

    let out = kcat_ok(&["-b", &bootstrap, "-L", "-J", "-m", "10"], b"")?;
    let md: Value = serde_json::from_str(&out).with_context(|| format!("kcat -L -J: {out}"))?;
    ensure!(
        md["brokers"] == json!([{ "id": 0, "name": bootstrap }]),
        "brokers {}",
        md["brokers"]
    );
    let entry = md["topics"]
        .as_array()
        .and_then(|topics| topics.iter().find(|t| t["topic"] == json!(topic)))
        .with_context(|| format!("{topic} not in kcat -L: {}", md["topics"]))?;
    ensure!(entry["error"].is_null(), "topic error {}", entry["error"]);
    let partitions = entry["partitions"].as_array().context("partitions")?;
    ensure!(partitions.len() == 3, "{} partitions", partitions.len());
    for (i, p) in partitions.iter().enumerate() {
        ensure!(
            p["partition"] == json!(i)
                && p["leader"] == json!(0)
                && p["replicas"] == json!([{ "id": 0 }])
                && p["isrs"] == json!([{ "id": 0 }]),
            "partition entry {p}"
        );
    }

    let text = kcat_ok(&["-b", &bootstrap, "-L", "-t", &topic, "-m", "10"], b"")?;
    ensure!(
        text.contains(&format!("topic \"{topic}\" with 3 partitions:"))
            && text.contains(&format!("broker 0 at {bootstrap}")),
        "kcat -L -t {topic}:\n{text}"
    );
    Ok(())
}

#[test]
fn kcat_produces_keyed_lines_and_consumes_them_exactly() -> Result<()> {
    let broker = Broker::start()?;
    let topic = broker.topic("kcat-lines");
    create_topic(&broker, &topic, 2, &[])?;
    let b = broker.bootstrap();
    let produce = |partition: &str, lines: &str| {
        kcat_ok(
            &[
                "-b", &b, "-t", &topic, "-P", "-K:", "-p", partition, "-m", "10",
            ],
            lines.as_bytes(),
        )
    };
    let _ = produce("0", "alpha:one\nbeta:two\ngamma:three:with:colons\n")?;
    let _ = produce("1", "delta:four\n")?;
    let _ = produce("0", "alpha:five\n")?;

    let format = "%k:%s:%p:%o\\n";
    let consume = |partition: Option<&str>| {
        let mut args = vec!["-b", &b, "-t", &topic, "-C", "-e", "-q", "-o", "beginning"];
        args.extend(["-f", format, "-m", "10"]);
        if let Some(p) = partition {
            args.extend(["-p", p]);
        }
        kcat_ok(&args, b"")
    };
    let p0 = consume(Some("0"))?;
    ensure!(
        p0 == "alpha:one:0:0\nbeta:two:0:1\ngamma:three:with:colons:0:2\nalpha:five:0:3\n",
        "kcat -C -p 0 printed:\n{p0}"
    );
    let p1 = consume(Some("1"))?;
    ensure!(p1 == "delta:four:1:0\n", "kcat -C -p 1 printed:\n{p1}");
    let mut all: Vec<&str> = Vec::new();
    let everything = consume(None)?;
    all.extend(everything.lines());
    all.sort_unstable();
    ensure!(
        all == [
            "alpha:five:0:3",
            "alpha:one:0:0",
            "beta:two:0:1",
            "delta:four:1:0",
            "gamma:three:with:colons:0:2"
        ],
        "kcat -C (all partitions) printed:\n{everything}"
    );

    // Without -p, librdkafka's partitioner keeps each key in one partition.
    let hashed = broker.topic("kcat-hashed");
    create_topic(&broker, &hashed, 3, &[])?;
    let lines: String = (0..60)
        .map(|i| format!("key-{}:value-{i}\n", i % 6))
        .collect();
    let _ = kcat_ok(
        &["-b", &b, "-t", &hashed, "-P", "-K:", "-m", "10"],
        lines.as_bytes(),
    )?;
    let out = kcat_ok(
        &[
            "-b",
            &b,
            "-t",
            &hashed,
            "-C",
            "-e",
            "-q",
            "-o",
            "beginning",
            "-f",
            format,
            "-m",
            "10",
        ],
        b"",
    )?;
    let mut home: BTreeMap<&str, &str> = BTreeMap::new();
    let mut values = Vec::new();
    for line in out.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        let [key, value, partition, _offset] = fields[..] else {
            anyhow::bail!("unexpected line {line:?}");
        };
        let first = *home.entry(key).or_insert(partition);
        ensure!(
            first == partition,
            "{key} in partitions {first} and {partition}"
        );
        values.push(value.to_owned());
    }
    values.sort_unstable();
    let mut expected: Vec<String> = (0..60).map(|i| format!("value-{i}")).collect();
    expected.sort_unstable();
    ensure!(
        values == expected,
        "kcat read back {} values:\n{out}",
        values.len()
    );
    Ok(())
}

/// kcat (librdkafka 2.0 from Debian) at its defaults produces batches with `codec`; they are
/// stored with that codec (batches are kept as sent), and kcat and confluent-kafka read back
/// exactly the records: keys, values, order, offsets.
///
/// librdkafka before 2.11.1 uses gzip, snappy or lz4 only if the broker advertises Produce v0
/// (KAFKA-18659), and otherwise quietly sends the batch uncompressed, saying so only on its
/// `msg` debug channel; Rill advertises Produce from v0, as Kafka 3.9 does.
fn kcat_codec(codec: &str) -> Result<()> {
    let broker = Broker::start()?;
    let topic = broker.topic(&format!("kcat-{codec}"));
    create_topic(&broker, &topic, 1, &[])?;
    let b = broker.bootstrap();
    let values: Vec<String> = (0..400)
        .map(|i| {
            format!(
                "value-{i:04} {}",
                "pack my box with five dozen liquor jugs ".repeat(10)
            )
        })
        .collect();
    let lines: String = values
        .iter()
        .enumerate()
        .map(|(i, v)| format!("key-{i}:{v}\n"))
        .collect();
    let produced = kcat(
        &[
            "-b", &b, "-t", &topic, "-P", "-K:", "-p", "0", "-z", codec, "-m", "10", "-d", "msg",
        ],
        lines.as_bytes(),
    )?;
    ensure!(
        produced.status.success(),
        "kcat -P -z {codec} failed ({}):\n{}",
        produced.status,
        produced.stderr
    );
    let declined: Vec<&str> = produced
        .stderr
        .lines()
        .filter(|line| line.contains("does not support compression"))
        .collect();
    ensure!(
        declined.is_empty(),
        "kcat's librdkafka declined to compress with {codec}: {declined:?}"
    );

    if let Some(dir) = broker.data_dir() {
        let expected = [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ]
        .into_iter()
        .find(|c| c.name() == codec)
        .with_context(|| format!("no codec named {codec}"))?;
        let batches = stored_batches(dir, &topic, 0)?;
        let mut next = 0;
        for header in &batches {
            ensure!(
                header.attributes.compression()? == expected,
                "kcat -z {codec}: a batch at offset {} is stored with attributes {:#x} \
                 ({:?})",
                header.base_offset,
                header.attributes.0,
                header.attributes.compression()
            );
            ensure!(
                header.base_offset == next,
                "batch at {} where {next} was next",
                header.base_offset
            );
            next = header.next_offset();
        }
        ensure!(
            next == i64::try_from(values.len())?,
            "{} batches hold {next} records, not {}",
            batches.len(),
            values.len()
        );
    }

    let got = consume(&broker, Client::Confluent, &topic, 1, values.len())?;
    check_offsets(&got)?;
    ensure!(
        got.records.len() == values.len(),
        "read {} records",
        got.records.len()
    );
    for (i, (record, value)) in got.records.iter().zip(&values).enumerate() {
        ensure!(
            record.key.as_deref() == Some(format!("key-{i}").as_bytes())
                && record.value.as_deref() == Some(value.as_bytes()),
            "record {i}: key {} value {}",
            show(record.key.as_deref()),
            show(record.value.as_deref())
        );
    }

    let read = kcat_ok(
        &[
            "-b",
            &b,
            "-t",
            &topic,
            "-C",
            "-e",
            "-q",
            "-o",
            "beginning",
            "-f",
            "%k:%s:%p:%o\\n",
            "-m",
            "10",
        ],
        b"",
    )?;
    let expected: String = values
        .iter()
        .enumerate()
        .map(|(i, v)| format!("key-{i}:{v}:0:{i}\n"))
        .collect();
    ensure!(
        read == expected,
        "kcat -C read back {} lines, expected {}; first: {:?}",
        read.lines().count(),
        values.len(),
        read.lines().next()
    );
    Ok(())
}

#[test]
fn kcat_gzip_batches_are_stored_with_their_codec_and_read_back_exactly() -> Result<()> {
    kcat_codec("gzip")
}

#[test]
fn kcat_snappy_batches_are_stored_with_their_codec_and_read_back_exactly() -> Result<()> {
    kcat_codec("snappy")
}

#[test]
fn kcat_lz4_batches_are_stored_with_their_codec_and_read_back_exactly() -> Result<()> {
    kcat_codec("lz4")
}

#[test]
fn kcat_zstd_batches_are_stored_with_their_codec_and_read_back_exactly() -> Result<()> {
    kcat_codec("zstd")
}
