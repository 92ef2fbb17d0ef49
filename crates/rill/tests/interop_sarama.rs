//! Interop with the seed's sarama programs (`interop/sarama/`, Go, sarama as Debian ships it):
//! a partition consumer reads what a sync and an async producer wrote, and every (partition,
//! offset) a producer was given comes back with the value it sent. Once at sarama's own default
//! config (Kafka 0.8.2: Produce v0 with magic 0 messages, Fetch v0, ListOffsets v0, Metadata
//! v0), once told Kafka 2.2.0 (Produce v3 with record batches v2, Fetch v4). And sarama at its
//! defaults reads confluent-kafka's batches of every codec, converted to magic 0 messages.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail, ensure};
use common::{Broker, Client, Rec, Result, RunOutput, create_topic, ms, produce, run};

const PROGRAMS: [&str; 3] = ["sync_producer", "async_producer", "partition_consumer"];
const PRODUCER_TIMEOUT: Duration = Duration::from_secs(30);
/// The consumer's own deadline; the harness waits a little longer before killing it.
const CONSUMER_DEADLINE: Duration = Duration::from_secs(40);

const SYNC_N: usize = 10;
const ASYNC_N: usize = 10;
const SYNC_VALUE: &str = "Hello World!";

/// The three programs, built once into a temporary directory.
#[derive(Debug)]
struct Programs {
    dir: tempfile::TempDir,
}

impl Programs {
    fn build() -> Result<Self> {
        let started = Instant::now();
        let dir = common::build_sarama(&PROGRAMS)?;
        eprintln!("go build of interop/sarama took {:?}", started.elapsed());
        Ok(Self { dir })
    }

    /// `version`: the programs' `-version` (`None`: sarama's own default).
    fn command(
        &self,
        program: &str,
        bootstrap: &str,
        topic: &str,
        version: Option<&str>,
    ) -> Command {
        let mut command = Command::new(self.dir.path().join(program));
        let _ = command.args(["-brokers", bootstrap, "-topic", topic, "-verbose"]);
        if let Some(version) = version {
            let _ = command.args(["-version", version]);
        }
        command
    }
}

/// One record as a producer reported it or the consumer printed it.
type Record = (i32, i64, String);

fn stdout_text(out: &RunOutput) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn describe(name: &str, out: &RunOutput) -> String {
    format!(
        "{name} exited with {}\n--- stdout ---\n{}--- stderr (sarama's log) ---\n{}",
        out.status,
        stdout_text(out),
        out.stderr
    )
}

/// `分区ID:<p>, offset:<o>`: the seed's sync producer line.
fn parse_sync_line(line: &str) -> Result<(i32, i64)> {
    let rest = line
        .strip_prefix("分区ID:")
        .with_context(|| format!("not a sync producer line: {line:?}"))?;
    let (partition, offset) = rest
        .split_once(", offset:")
        .with_context(|| format!("no offset in {line:?}"))?;
    Ok((partition.trim().parse()?, offset.trim().parse()?))
}

/// `success: partition=<p> offset=<o> value=<v>`.
fn parse_async_success(line: &str) -> Result<Record> {
    let rest = line
        .strip_prefix("success: partition=")
        .with_context(|| format!("not a success line: {line:?}"))?;
    let (partition, rest) = rest
        .split_once(" offset=")
        .with_context(|| format!("no offset in {line:?}"))?;
    let (offset, value) = rest
        .split_once(" value=")
        .with_context(|| format!("no value in {line:?}"))?;
    Ok((partition.parse()?, offset.parse()?, value.to_owned()))
}

/// `Partition:<p>, Offset:<o>, key:<k>, value:<v>`: the seed's consumer line.
fn parse_consumer_line(line: &str) -> Result<(Record, String)> {
    let rest = line
        .strip_prefix("Partition:")
        .with_context(|| format!("not a consumer line: {line:?}"))?;
    let (partition, rest) = rest
        .split_once(", Offset:")
        .with_context(|| format!("no offset in {line:?}"))?;
    let (offset, rest) = rest
        .split_once(", key:")
        .with_context(|| format!("no key in {line:?}"))?;
    let (key, value) = rest
        .split_once(", value:")
        .with_context(|| format!("no value in {line:?}"))?;
    Ok((
        (partition.parse()?, offset.parse()?, value.to_owned()),
        key.to_owned(),
    ))
}

#[test]
fn seed_sarama_programs_at_sarama_defaults_produce_and_consume() -> Result<()> {
    seed_sarama_programs_produce_and_consume(None)
}

#[test]
fn seed_sarama_programs_told_kafka_2_2_produce_and_consume() -> Result<()> {
    seed_sarama_programs_produce_and_consume(Some("2.2.0"))
}

fn seed_sarama_programs_produce_and_consume(version: Option<&str>) -> Result<()> {
    let started = Instant::now();
    let programs = Programs::build()?;
    let broker = Broker::start_with(&["--num-partitions", "3"])?;
    let bootstrap = broker.bootstrap();
    let topic = broker.topic("test0");

    // The consumer starts first and reads from the oldest offset, so it sees every record no
    // matter when its partition consumers get going. Listing the partitions auto-creates the
    // topic (3 partitions, from --num-partitions).
    let mut consumer = programs.command("partition_consumer", &bootstrap, &topic, version);
    let _ = consumer.args([
        "-oldest",
        "-count",
        &(SYNC_N + ASYNC_N).to_string(),
        "-timeout",
        &format!("{}s", CONSUMER_DEADLINE.as_secs()),
    ]);
    let consumer = thread::spawn(move || run(consumer, b"", CONSUMER_DEADLINE + ms(10_000)));

    let mut sync = programs.command("sync_producer", &bootstrap, &topic, version);
    let _ = sync.args(["-n", &SYNC_N.to_string()]);
    let sync = run(sync, b"", PRODUCER_TIMEOUT)?;
    ensure!(
        sync.status.success(),
        "{}",
        describe("sync_producer", &sync)
    );
    let sync_pairs = stdout_text(&sync)
        .lines()
        .map(parse_sync_line)
        .collect::<Result<Vec<_>>>()
        .with_context(|| describe("sync_producer", &sync))?;
    ensure!(
        sync_pairs.len() == SYNC_N,
        "sync_producer reported {} sends, not {SYNC_N}\n{}",
        sync_pairs.len(),
        describe("sync_producer", &sync)
    );

    let mut asynchronous = programs.command("async_producer", &bootstrap, &topic, version);
    let _ = asynchronous.args([
        "-n",
        &ASYNC_N.to_string(),
        "-interval",
        "10ms",
        "-timeout",
        "20s",
    ]);
    let asynchronous = run(asynchronous, b"", PRODUCER_TIMEOUT)?;
    let async_text = stdout_text(&asynchronous);
    ensure!(
        asynchronous.status.success()
            && async_text.lines().last() == Some(&format!("done successes={ASYNC_N} errors=0")),
        "{}",
        describe("async_producer", &asynchronous)
    );
    let async_records = async_text
        .lines()
        .filter(|line| line.starts_with("success: "))
        .map(parse_async_success)
        .collect::<Result<Vec<_>>>()?;
    ensure!(
        async_records.len() == ASYNC_N,
        "async_producer reported {} successes, not {ASYNC_N}\n{}",
        async_records.len(),
        describe("async_producer", &asynchronous)
    );
    for (p, o, value) in &async_records {
        ensure!(
            value.starts_with("async: "),
            "async_producer sent {value:?} to {p}@{o}, not `async: <n>`"
        );
    }

    // Every record the producers were told about, keyed by (partition, offset): no two sends
    // may have been given the same place.
    let mut produced: BTreeMap<(i32, i64), String> = BTreeMap::new();
    let sync_records = sync_pairs
        .iter()
        .map(|&(p, o)| (p, o, SYNC_VALUE.to_owned()));
    for (p, o, value) in sync_records.chain(async_records) {
        if let Some(previous) = produced.insert((p, o), value.clone()) {
            bail!(
                "two sends were acknowledged at partition {p} offset {o}: {previous:?} and {value:?}"
            );
        }
    }

    let consumer = consumer
        .join()
        .map_err(|_| anyhow!("the consumer thread panicked"))??;
    ensure!(
        consumer.status.success(),
        "{}",
        describe("partition_consumer", &consumer)
    );
    let consumed = stdout_text(&consumer)
        .lines()
        .map(parse_consumer_line)
        .collect::<Result<Vec<_>>>()
        .with_context(|| describe("partition_consumer", &consumer))?;
    ensure!(
        consumed.len() == SYNC_N + ASYNC_N,
        "partition_consumer printed {} records, not {}\n{}",
        consumed.len(),
        SYNC_N + ASYNC_N,
        describe("partition_consumer", &consumer)
    );

    // Per partition, the consumer sees offsets 0, 1, 2, ... in order (a fresh topic), and each
    // record is the one a producer was acknowledged for at that place.
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    for ((p, o, value), key) in &consumed {
        ensure!(key.is_empty(), "partition {p} offset {o} has key {key:?}");
        let expected = next.entry(*p).or_insert(0);
        ensure!(
            *o == *expected,
            "partition {p}: offset {o} where {expected} was next\n{}",
            describe("partition_consumer", &consumer)
        );
        *expected += 1;
        match produced.get(&(*p, *o)) {
            Some(sent) => ensure!(
                sent == value,
                "partition {p} offset {o}: consumed {value:?}, produced {sent:?}"
            ),
            None => {
                bail!("partition {p} offset {o} ({value:?}) was not acknowledged to a producer")
            }
        }
    }
    let consumed_places: BTreeSet<(i32, i64)> =
        consumed.iter().map(|((p, o, _), _)| (*p, *o)).collect();
    let produced_places: BTreeSet<(i32, i64)> = produced.keys().copied().collect();
    ensure!(
        consumed_places == produced_places,
        "consumed {consumed_places:?}, producers were acknowledged {produced_places:?}"
    );
    if broker.data_dir().is_some() {
        // --num-partitions 3: the consumer found three partitions. Which ones got records
        // depends on the random partitioner, but none may lie outside them.
        let listed = format!("partitions of {topic}: [0 1 2]");
        ensure!(
            consumer.stderr.lines().any(|line| line == listed),
            "partition_consumer did not print `{listed}`\n{}",
            describe("partition_consumer", &consumer)
        );
        ensure!(
            produced_places.iter().all(|(p, _)| (0..3).contains(p)),
            "partitions outside 0..3: {produced_places:?}"
        );
    }
    eprintln!(
        "seed sarama interop (version {version:?}) took {:?}",
        started.elapsed()
    );
    Ok(())
}

/// sarama at its defaults (Fetch v0, magic 0 messages) reads what confluent-kafka wrote as
/// record batches v2 with headers, uncompressed and with each codec (zstd and LZ4, which magic 0
/// cannot carry, come uncompressed; gzip and snappy as wrappers): every key and value, in offset
/// order.
#[test]
fn sarama_at_defaults_reads_confluent_batches_of_every_codec() -> Result<()> {
    let programs = Programs::build()?;
    let broker = Broker::start()?;
    let topic = broker.topic("sarama-codecs");
    create_topic(&broker, &topic, 1, &[])?;
    let mut expected = Vec::new();
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let records: Vec<Rec> = (0..40)
            .map(|i| Rec {
                headers: vec![("h".to_owned(), Some(b"1".to_vec()))],
                partition: Some(0),
                ..Rec::kv(
                    format!("{codec}-{i}"),
                    format!("{codec} value {i} {}", "x".repeat(i % 30)),
                )
            })
            .collect();
        for d in produce(
            &broker,
            Client::Confluent,
            &topic,
            &records,
            &["--compression", codec],
        )? {
            let r = records.get(d.index).context("delivery index")?;
            expected.push((
                d.offset,
                String::from_utf8(r.key.clone().unwrap_or_default())?,
                String::from_utf8(r.value.clone().unwrap_or_default())?,
            ));
        }
    }
    expected.sort();
    let mut consumer = programs.command("partition_consumer", &broker.bootstrap(), &topic, None);
    let _ = consumer.args([
        "-oldest",
        "-count",
        &expected.len().to_string(),
        "-timeout",
        "30s",
    ]);
    let out = run(consumer, b"", CONSUMER_DEADLINE)?;
    ensure!(
        out.status.success(),
        "{}",
        describe("partition_consumer", &out)
    );
    let consumed = stdout_text(&out)
        .lines()
        .map(|line| {
            let ((p, o, value), key) = parse_consumer_line(line)?;
            ensure!(p == 0, "partition {p}");
            Ok((o, key, value))
        })
        .collect::<Result<Vec<_>>>()
        .with_context(|| describe("partition_consumer", &out))?;
    ensure!(
        consumed == expected,
        "sarama read {} records, expected {}; first difference: {:?}",
        consumed.len(),
        expected.len(),
        consumed.iter().zip(&expected).find(|(a, b)| a != b)
    );
    Ok(())
}
