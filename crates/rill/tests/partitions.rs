//! Cheap partitions (issue #12), black-box: thousands of partitions on a few storage threads and
//! a bounded cache of segment-file descriptors keep every acknowledged record, in order and at
//! its offset, through a graceful restart and a `kill -9`; `rill.max.partitions` refuses a
//! create that would exceed it, per topic and whole; and a topic create that fails half-way
//! leaves nothing behind.

#[macro_use]
mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use common::{Broker, Conn, Result, first_batch, message};
use rill_protocol::StrBytes;
use rill_protocol::kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use rill_protocol::kafka_protocol::messages::create_topics_request::CreatableTopic;
use rill_protocol::kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use rill_protocol::kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use rill_protocol::kafka_protocol::messages::produce_request::{
    PartitionProduceData, TopicProduceData,
};
use rill_protocol::kafka_protocol::messages::{
    BrokerId, CreatePartitionsRequest, CreateTopicsRequest, FetchRequest, ProduceRequest, TopicName,
};
use rill_record::{Batch, BatchBuilder, Batches, RecordSpec};

// Kafka's error codes, as the tests expect them on the wire.
const NONE: i16 = 0;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const POLICY_VIOLATION: i16 = 44;
const KAFKA_STORAGE_ERROR: i16 = 56;

/// The setting a refusal for too many partitions must name.
const MAX_PARTITIONS_KEY: &str = "rill.max.partitions";

// ---------------------------------------------------------------------------------------------
// Helpers

fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_owned()))
}

/// A raw connection whose reads wait up to a minute: creating thousands of partitions, or
/// producing with acks=all to a hundred of them in one request, may take longer than the
/// harness's 5 s on a slow disk.
fn patient_conn(broker: &Broker) -> Result<Conn> {
    let conn = Conn::open(broker)?;
    conn.stream
        .set_read_timeout(Some(Duration::from_secs(60)))?;
    conn.stream
        .set_write_timeout(Some(Duration::from_secs(60)))?;
    Ok(conn)
}

/// CreateTopics v7 of `(name, partitions)` topics in one request; one result per topic.
fn create_topics(conn: &mut Conn, topics: &[(&str, i32)]) -> Result<Vec<CreatableTopicResult>> {
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(60_000)
        .with_topics(
            topics
                .iter()
                .map(|(name, partitions)| {
                    CreatableTopic::default()
                        .with_name(topic_name(name))
                        .with_num_partitions(*partitions)
                        .with_replication_factor(1)
                })
                .collect(),
        );
    let response = ask!(conn, CreateTopics, 7, request);
    ensure!(
        response.topics.len() == topics.len(),
        "CreateTopics of {} topics answered for {}: {:?}",
        topics.len(),
        response.topics.len(),
        response.topics
    );
    Ok(response.topics)
}

/// The result for `topic` among CreateTopics results.
fn result_for<'a>(
    results: &'a [CreatableTopicResult],
    topic: &str,
) -> Result<&'a CreatableTopicResult> {
    results
        .iter()
        .find(|r| r.name.0.as_str() == topic)
        .with_context(|| format!("no result for {topic} in {results:?}"))
}

/// CreatePartitions v3 of one topic to `count`: (error code, error message).
fn grow(conn: &mut Conn, topic: &str, count: i32) -> Result<(i16, String)> {
    let request = CreatePartitionsRequest::default()
        .with_timeout_ms(60_000)
        .with_topics(vec![
            CreatePartitionsTopic::default()
                .with_name(topic_name(topic))
                .with_count(count)
                .with_assignments(None),
        ]);
    let response = ask!(conn, CreatePartitions, 3, request);
    let result = response
        .results
        .first()
        .context("no topic in the CreatePartitions answer")?;
    ensure!(
        result.name.0.as_str() == topic,
        "CreatePartitions answered for {:?}, asked for {topic}",
        result.name
    );
    Ok((result.error_code, message(result.error_message.as_ref())))
}

/// What the data directory holds for `topic`: the partition numbers of its `<topic>-<n>`
/// directories, sorted, and the names of any other `<topic>-<n>` entries (files).
fn on_disk(data_dir: &Path, topic: &str) -> Result<(Vec<i32>, Vec<String>)> {
    let prefix = format!("{topic}-");
    let mut dirs = Vec::new();
    let mut others = Vec::new();
    for entry in std::fs::read_dir(data_dir)
        .with_context(|| format!("listing the data directory {}", data_dir.display()))?
    {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(partition) = name
            .strip_prefix(&prefix)
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if entry.file_type()?.is_dir() {
            dirs.push(partition);
        } else {
            others.push(name);
        }
    }
    dirs.sort_unstable();
    others.sort();
    Ok((dirs, others))
}

/// Checks that the data directory holds exactly partitions `0..count` of `topic`, as
/// directories, and nothing else named after it.
fn expect_dirs(data_dir: &Path, topic: &str, count: i32) -> Result<()> {
    let (dirs, others) = on_disk(data_dir, topic)?;
    ensure!(
        dirs == (0..count).collect::<Vec<_>>() && others.is_empty(),
        "on disk for {topic}: directories for partitions {dirs:?} and other entries {others:?}, \
         expected directories for partitions 0..{count} only"
    );
    Ok(())
}

fn now_ms() -> Result<i64> {
    Ok(i64::try_from(
        SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis(),
    )?)
}

// ---------------------------------------------------------------------------------------------
// Thousands of partitions

const TOPICS: usize = 30;
const PARTITIONS: i32 = 100;
/// Batches produced to every partition before the first restart.
const ROUNDS: i64 = 8;
/// The descriptor cap the broker runs with.
const MAX_OPEN_FILES: usize = 64;
/// Descriptors beyond the cap: stdio, listeners, connections, the internal logs, epoll and
/// friends.
const FD_SLACK: usize = 64;
/// Threads beyond the count at start, before any partition existed.
const THREAD_SLACK: usize = 16;

/// The flags of every start of the many-partitions broker. Values of ~150 bytes make a batch of
/// 4 to 6 records about 1 KiB, so 2 KiB segments hold two batches and each partition ends up
/// with several sealed segments, whose files the descriptor cache must evict and reopen.
const MANY_FLAGS: [&str; 6] = [
    "--max-open-files",
    "64",
    "--storage-threads",
    "2",
    "--segment-bytes",
    "2048",
];

fn many_topic(t: usize) -> String {
    format!("many-{t:02}")
}

fn key(topic: &str, partition: i32, n: i64) -> String {
    format!("{topic}/{partition}/{n}")
}

fn value(topic: &str, partition: i32, n: i64) -> Result<String> {
    let pad = usize::try_from(100 + n % 7)?;
    Ok(format!(
        "record {n} of {topic} partition {partition} {}",
        "x".repeat(pad)
    ))
}

/// How many records every partition of every topic must hold; record `n` of each is
/// `(key(topic, partition, n), value(topic, partition, n))`.
#[derive(Debug)]
struct Expected {
    topics: Vec<String>,
    counts: Vec<Vec<i64>>,
}

impl Expected {
    fn new() -> Result<Self> {
        Ok(Self {
            topics: (0..TOPICS).map(many_topic).collect(),
            counts: vec![vec![0; usize::try_from(PARTITIONS)?]; TOPICS],
        })
    }

    fn total(&self) -> i64 {
        self.counts.iter().flatten().sum()
    }
}

/// Produces one batch to each partition that `which` picks, one Produce v9 request (acks=all)
/// per topic, and checks every partition's answer: no error, and the base offset is the count
/// the partition held. Batches of round `round` hold 4 to 6 records, varying by partition.
fn produce_round(
    conn: &mut Conn,
    expected: &mut Expected,
    round: i64,
    which: impl Fn(i32) -> bool,
) -> Result<()> {
    let timestamp = now_ms()?;
    for (topic, counts) in expected.topics.iter().zip(expected.counts.iter_mut()) {
        let mut data = Vec::new();
        let mut sizes = BTreeMap::new();
        for (partition, &count) in (0..PARTITIONS).zip(counts.iter()) {
            if !which(partition) {
                continue;
            }
            let records = 4 + (i64::from(partition) + round) % 3;
            let mut builder = BatchBuilder::new();
            for n in count..count + records {
                builder = builder.record(
                    RecordSpec::new(timestamp)
                        .key(key(topic, partition, n).into_bytes())
                        .value(value(topic, partition, n)?.into_bytes()),
                );
            }
            data.push(
                PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(builder.build()?)),
            );
            let _ = sizes.insert(partition, records);
        }
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(topic_name(topic))
                    .with_partition_data(data),
            ]);
        let response = ask!(conn, Produce, 9, request);
        let [answer] = response.responses.as_slice() else {
            bail!(
                "produce to {topic} answered for {} topics",
                response.responses.len()
            );
        };
        ensure!(
            answer.name.0.as_str() == topic.as_str(),
            "produce to {topic} answered for {:?}",
            answer.name
        );
        ensure!(
            answer.partition_responses.len() == sizes.len(),
            "produce to {} partitions of {topic} answered for {}",
            sizes.len(),
            answer.partition_responses.len()
        );
        for p in &answer.partition_responses {
            let records = sizes
                .remove(&p.index)
                .with_context(|| format!("an answer for {topic}/{} twice or unasked", p.index))?;
            let count = counts
                .get_mut(usize::try_from(p.index)?)
                .context("partition index")?;
            ensure!(
                p.error_code == NONE && p.base_offset == *count,
                "round {round}: produce to {topic}/{} answered error {} ({:?}) at base offset \
                 {}, expected no error at {count}",
                p.index,
                p.error_code,
                p.error_message,
                p.base_offset
            );
            *count += records;
        }
    }
    Ok(())
}

/// Checks one fetched partition's records from `*next` on, advancing `*next` past them.
fn check_fetched(
    topic: &str,
    partition: i32,
    records: &Bytes,
    next: &mut i64,
    count: i64,
) -> Result<()> {
    for batch in Batches::new(records) {
        let batch: Batch<'_> =
            batch.with_context(|| format!("a fetched batch of {topic}/{partition}"))?;
        batch
            .verify_crc()
            .with_context(|| format!("a fetched batch of {topic}/{partition} at {next}"))?;
        for record in batch.records()? {
            let n = *next;
            ensure!(
                n < count,
                "{topic}/{partition} holds a record at offset {} beyond the {count} produced",
                record.offset
            );
            let (want_key, want_value) = (key(topic, partition, n), value(topic, partition, n)?);
            ensure!(
                record.offset == n
                    && record.key.as_deref() == Some(want_key.as_bytes())
                    && record.value.as_deref() == Some(want_value.as_bytes()),
                "{topic}/{partition}: expected record {n} ({want_key}), read offset {} key {:?}",
                record.offset,
                record.key.as_deref().map(String::from_utf8_lossy)
            );
            *next += 1;
        }
    }
    Ok(())
}

/// Reads every partition of every topic from offset 0 with Fetch v12 (one request per topic,
/// repeated from where each partition stopped) and checks that it holds exactly the expected
/// records, in order, at their offsets, and that its high watermark is the expected count.
fn read_all(conn: &mut Conn, expected: &Expected, when: &str) -> Result<()> {
    for (topic, counts) in expected.topics.iter().zip(&expected.counts) {
        let mut next: Vec<i64> = vec![0; counts.len()];
        for attempt in 1.. {
            let pending: Vec<i32> = (0..PARTITIONS)
                .zip(next.iter().zip(counts))
                .filter(|(_, (next, count))| next < count)
                .map(|(p, _)| p)
                .collect();
            if pending.is_empty() {
                break;
            }
            ensure!(
                attempt <= 200,
                "{when}: {topic} partitions {pending:?} still unread after 200 fetches"
            );
            let mut partitions = Vec::new();
            for &p in &pending {
                let offset = *next.get(usize::try_from(p)?).context("partition index")?;
                partitions.push(
                    FetchPartition::default()
                        .with_partition(p)
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(1 << 20),
                );
            }
            let request = FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(0)
                .with_min_bytes(1)
                .with_max_bytes(32 << 20)
                .with_topics(vec![
                    FetchTopic::default()
                        .with_topic(topic_name(topic))
                        .with_partitions(partitions),
                ]);
            let response = ask!(conn, Fetch, 12, request);
            ensure!(
                response.error_code == NONE,
                "{when}: fetch of {topic} answered error {}",
                response.error_code
            );
            let mut progress = false;
            for answer in response.responses {
                ensure!(
                    answer.topic.0.as_str() == topic.as_str(),
                    "{when}: fetch of {topic} answered for {:?}",
                    answer.topic
                );
                for data in answer.partitions {
                    let p = data.partition_index;
                    let index = usize::try_from(p)?;
                    let (Some(next), Some(&count)) = (next.get_mut(index), counts.get(index))
                    else {
                        bail!("{when}: fetch of {topic} answered for partition {p}");
                    };
                    ensure!(
                        data.error_code == NONE && data.high_watermark == count,
                        "{when}: fetch of {topic}/{p} at {next} answered error {} with high \
                         watermark {}, expected no error and {count}",
                        data.error_code,
                        data.high_watermark
                    );
                    let before = *next;
                    if let Some(records) = &data.records {
                        check_fetched(topic, p, records, next, count)
                            .with_context(|| format!("{when}: reading {topic}/{p}"))?;
                    }
                    progress |= *next > before;
                }
            }
            ensure!(
                progress,
                "{when}: a fetch of {topic} partitions {pending:?} returned no new record"
            );
        }
    }
    Ok(())
}

/// Checks the thread and descriptor counts against bounds that do not grow with partitions.
fn check_bounded(broker: &Broker, threads_at_start: usize, when: &str) -> Result<()> {
    let threads = broker.threads()?;
    let fds = broker.open_fds()?;
    eprintln!("{when}: {threads} threads ({threads_at_start} at start), {fds} descriptors");
    // The runtime's workers scale with the cores, not with partitions.
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    ensure!(
        threads <= threads_at_start + THREAD_SLACK && threads < 64 + cores,
        "{when}: the broker runs {threads} threads, {threads_at_start} at start with no \
         partition (bound: at start + {THREAD_SLACK}, and under {})",
        64 + cores
    );
    ensure!(
        fds <= MAX_OPEN_FILES + FD_SLACK,
        "{when}: the broker holds {fds} descriptors open with --max-open-files \
         {MAX_OPEN_FILES} (bound: {})",
        MAX_OPEN_FILES + FD_SLACK
    );
    Ok(())
}

/// Restarts (after a stop or a kill) with the same flags and waits until it is ready.
/// Starts the stopped (or killed) broker again, reads every partition back and checks the
/// bounds once more.
fn read_after_restart(
    broker: &mut Broker,
    expected: &Expected,
    threads_at_start: usize,
    after: &str,
) -> Result<Conn> {
    let mut conn = start_again(broker, expected)?;
    read_all(&mut conn, expected, &format!("after {after}"))?;
    check_bounded(
        broker,
        threads_at_start,
        &format!("after reading everything after {after}"),
    )?;
    Ok(conn)
}

fn start_again(broker: &mut Broker, expected: &Expected) -> Result<Conn> {
    broker.restart()?;
    broker.wait_ready()?;
    let mut conn = patient_conn(broker)?;
    let topics = conn.topics()?;
    for topic in &expected.topics {
        ensure!(
            topics.get(topic) == Some(&usize::try_from(PARTITIONS)?),
            "after a restart {topic} has {:?} partitions, expected {PARTITIONS}",
            topics.get(topic)
        );
    }
    Ok(conn)
}

#[test]
fn thousands_of_partitions_survive_restarts_with_a_small_descriptor_cap() -> Result<()> {
    let started = Instant::now();
    let mut broker = Broker::start_with(&MANY_FLAGS)?;
    broker.wait_ready()?;
    let threads_at_start = broker.threads()?;
    let mut conn = patient_conn(&broker)?;
    let mut expected = Expected::new()?;

    let names: Vec<(&str, i32)> = expected
        .topics
        .iter()
        .map(|t| (t.as_str(), PARTITIONS))
        .collect();
    for result in create_topics(&mut conn, &names)? {
        ensure!(
            result.error_code == NONE && result.num_partitions == PARTITIONS,
            "creating {:?}: error {} ({:?}), {} partitions",
            result.name,
            result.error_code,
            result.error_message,
            result.num_partitions
        );
    }
    eprintln!(
        "created {} partitions at {:?}",
        names.len() * 100,
        started.elapsed()
    );

    for round in 0..ROUNDS {
        produce_round(&mut conn, &mut expected, round, |_| true)?;
    }
    eprintln!(
        "produced {} records at {:?}",
        expected.total(),
        started.elapsed()
    );
    check_bounded(&broker, threads_at_start, "after producing")?;
    read_all(&mut conn, &expected, "before any restart")?;
    check_bounded(&broker, threads_at_start, "after reading every partition")?;
    eprintln!("read everything at {:?}", started.elapsed());

    broker.stop()?;
    let mut conn = read_after_restart(
        &mut broker,
        &expected,
        threads_at_start,
        "a graceful restart",
    )?;

    // One more batch to every seventh partition, acknowledged just before the crash.
    produce_round(&mut conn, &mut expected, ROUNDS, |p| p % 7 == 3)?;
    broker.kill9()?;
    let _conn = read_after_restart(&mut broker, &expected, threads_at_start, "kill -9")?;
    eprintln!(
        "read all {} records after kill -9 at {:?}",
        expected.total(),
        started.elapsed()
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// rill.max.partitions

#[test]
fn creating_beyond_max_partitions_is_refused_whole() -> Result<()> {
    // Whether the two internal partitions count or not, 200 + 30 fits in 250 and 260 does not.
    let mut broker = Broker::start_with(&["--max-partitions", "250", "--num-partitions", "16"])?;
    broker.wait_ready()?;
    let data_dir = broker
        .data_dir()
        .context("no data directory")?
        .to_path_buf();
    let mut c = patient_conn(&broker)?;
    let refused =
        |code: i16, message: &str| code == POLICY_VIOLATION && message.contains(MAX_PARTITIONS_KEY);

    let results = create_topics(&mut c, &[("big", 200)])?;
    let big = result_for(&results, "big")?;
    ensure!(
        big.error_code == NONE && big.num_partitions == 200,
        "200 of 250 partitions: {big:?}"
    );

    // Kafka's semantics are per topic: the first fits, the second would exceed the limit.
    let results = create_topics(&mut c, &[("fits", 30), ("over", 30)])?;
    let fits = result_for(&results, "fits")?;
    ensure!(
        fits.error_code == NONE && fits.num_partitions == 30,
        "30 more partitions (230 of 250): {fits:?}"
    );
    let over = result_for(&results, "over")?;
    let message = message(over.error_message.as_ref());
    ensure!(
        refused(over.error_code, &message),
        "30 more partitions (260 of 250) answered error {} ({message:?}), expected \
         POLICY_VIOLATION ({POLICY_VIOLATION}) naming {MAX_PARTITIONS_KEY}",
        over.error_code
    );

    // CreatePartitions past the limit is refused the same way; within it, it grows.
    let (code, message) = grow(&mut c, "big", 250)?;
    ensure!(
        refused(code, &message),
        "CreatePartitions of big from 200 to 250 (280 of 250) answered {code} ({message:?})"
    );
    let (code, message) = grow(&mut c, "fits", 40)?;
    ensure!(
        code == NONE,
        "CreatePartitions of fits from 30 to 40 (240 of 250) answered {code} ({message:?})"
    );

    // Auto-creation at the broker's 16 partitions would make 256.
    let (code, partitions) = c.metadata_of("auto", true)?;
    ensure!(
        code == POLICY_VIOLATION && partitions == 0,
        "auto-creating 16 partitions (256 of 250): error {code}, {partitions} partitions"
    );
    // What was refused took none of the room: 2 more still fit.
    let results = create_topics(&mut c, &[("small", 2)])?;
    let small = result_for(&results, "small")?;
    ensure!(
        small.error_code == NONE && small.num_partitions == 2,
        "2 more partitions (242 of 250) after the refusals: {small:?}"
    );

    let want: BTreeMap<String, usize> = [("big", 200), ("fits", 40), ("small", 2)]
        .into_iter()
        .map(|(t, n)| (t.to_owned(), n))
        .collect();
    for when in ["before a restart", "after a restart"] {
        let topics = c.topics()?;
        ensure!(
            topics == want,
            "{when}: Metadata lists {topics:?}, expected {want:?}"
        );
        expect_dirs(&data_dir, "big", 200).context(when)?;
        expect_dirs(&data_dir, "fits", 40).context(when)?;
        expect_dirs(&data_dir, "small", 2).context(when)?;
        expect_dirs(&data_dir, "over", 0).context(when)?;
        expect_dirs(&data_dir, "auto", 0).context(when)?;
        if when == "before a restart" {
            broker.restart()?;
            broker.wait_ready()?;
            c = patient_conn(&broker)?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// A create that fails half-way

#[test]
fn a_create_that_fails_half_way_leaves_nothing_behind() -> Result<()> {
    let mut broker = Broker::start()?;
    broker.wait_ready()?;
    let data_dir = broker
        .data_dir()
        .context("no data directory")?
        .to_path_buf();
    let mut c = patient_conn(&broker)?;

    // A file where partition 37's directory must go.
    let blocker = data_dir.join("half-37");
    std::fs::write(&blocker, b"not a partition directory\n")?;
    let results = create_topics(&mut c, &[("half", 50)])?;
    let half = result_for(&results, "half")?;
    let message = message(half.error_message.as_ref());
    ensure!(
        half.error_code == KAFKA_STORAGE_ERROR && !message.trim().is_empty(),
        "creating half with half-37 a file answered error {} ({message:?}), expected \
         KAFKA_STORAGE_ERROR ({KAFKA_STORAGE_ERROR}) with the cause",
        half.error_code
    );
    ensure!(
        message.contains("37"),
        "the message does not name partition 37, whose directory failed: {message:?}"
    );

    let absent = |c: &mut Conn, when: &str| -> Result<()> {
        let topics = c.topics()?;
        ensure!(
            !topics.contains_key("half"),
            "{when}: Metadata lists half: {topics:?}"
        );
        let answer = c.metadata_of("half", false)?;
        ensure!(
            answer == (UNKNOWN_TOPIC_OR_PARTITION, 0),
            "{when}: Metadata of half answers (error, partitions) {answer:?}"
        );
        Ok(())
    };
    absent(&mut c, "after the failed create")?;
    let (dirs, others) = on_disk(&data_dir, "half")?;
    ensure!(
        dirs.is_empty() && others == ["half-37"],
        "after the failed create the data directory holds directories for half partitions \
         {dirs:?} and other entries {others:?}, expected only our file half-37"
    );
    ensure!(
        std::fs::read(&blocker)? == b"not a partition directory\n",
        "our file half-37 was changed"
    );
    std::fs::remove_file(&blocker)?;

    broker.restart()?;
    broker.wait_ready()?;
    let mut c = patient_conn(&broker)?;
    absent(&mut c, "after a restart")?;
    expect_dirs(&data_dir, "half", 0).context("after a restart")?;

    let results = create_topics(&mut c, &[("half", 50)])?;
    let half = result_for(&results, "half")?;
    ensure!(
        half.error_code == NONE && half.num_partitions == 50,
        "creating half again: {half:?}"
    );
    ensure!(
        c.topics()?.get("half") == Some(&50),
        "Metadata after creating half again: {:?}",
        c.topics()?
    );
    expect_dirs(&data_dir, "half", 50)?;

    let batch = BatchBuilder::new()
        .record(
            RecordSpec::new(now_ms()?)
                .key(b"k37".to_vec())
                .value(b"in partition 37".to_vec()),
        )
        .record(RecordSpec::new(now_ms()?).value(b"second".to_vec()))
        .build()?;
    let answer = c.produce("half", 37, batch)?;
    ensure!(answer == (NONE, 0), "produce to half/37: {answer:?}");
    let id = c.id();
    let fetched = first_batch(&mut c.stream, "half", 37, 0, id)?;
    let records = Batch::parse(&fetched)?.records()?;
    let got: Vec<(i64, Option<Bytes>, Option<Bytes>)> = records
        .into_iter()
        .map(|r| (r.offset, r.key, r.value))
        .collect();
    let want = vec![
        (
            0,
            Some(Bytes::from_static(b"k37")),
            Some(Bytes::from_static(b"in partition 37")),
        ),
        (1, None, Some(Bytes::from_static(b"second"))),
    ];
    ensure!(got == want, "half/37 holds {got:?}");
    ensure!(c.log_end("half", 37)? == 2, "log end of half/37");
    Ok(())
}
