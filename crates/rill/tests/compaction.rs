//! Log compaction against the real broker: compacted topics written and read by real clients
//! (confluent-kafka and kafka-python, every codec), the cleaner stopped by kill -9 at each of
//! its steps, and the hostile cases (only tombstones, a 1 MiB key, one key for everything, a
//! topic deleted while it is cleaned). The log is read back over raw fetches too, to see
//! exactly what is stored.

#[macro_use]
mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, ensure};
use common::txn::{READ_UNCOMMITTED, fetch};
use common::{
    Broker, Client, Conn, Rec, Result, consume_with, create_topic, produce, scrape, wait_until,
};
use rill_protocol::kafka_protocol::messages::DeleteTopicsRequest;
use rill_record::Batches;

/// A record as stored: (offset, key, value; `None` for a tombstone).
type Stored = (i64, String, Option<String>);

/// Cleaner settings that make a test quick: a pass as soon as anything is dirty.
const FAST_CLEANER: &[&str] = &["--log-cleaner-backoff-ms", "100"];

/// A compacted topic with segments that roll by age too, so that everything produced is soon
/// in sealed segments the cleaner may clean. (Segments of 1 MiB: a batch larger than a segment
/// is refused, as Kafka refuses it, and librdkafka's batches may reach 1 MB.)
fn compacted(broker: &Broker, topic: &str, extra: &[&str]) -> Result<()> {
    let mut configs = vec![
        "cleanup.policy=compact",
        "segment.bytes=1048576",
        "segment.ms=300",
        "min.cleanable.dirty.ratio=0.01",
    ];
    configs.extend_from_slice(extra);
    create_topic(broker, topic, 1, &configs)
}

/// A key or value as the tests compare them: text, and long ones shortened (a failure message
/// must not print a MiB).
fn text(bytes: Option<&[u8]>) -> Option<String> {
    bytes.map(|b| {
        if b.len() > 64 {
            format!(
                "{}... ({} bytes)",
                String::from_utf8_lossy(&b[..16]),
                b.len()
            )
        } else {
            String::from_utf8_lossy(b).into_owned()
        }
    })
}

/// Every record of partition 0, read with raw fetches up to the high watermark.
fn stored(conn: &mut Conn, topic: &str) -> Result<Vec<Stored>> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let data = fetch(conn, topic, 0, offset, READ_UNCOMMITTED)?;
        let records = data.records.clone().unwrap_or_default();
        let mut advanced = false;
        for batch in Batches::new(&records) {
            let batch = batch?;
            for r in batch.records()? {
                out.push((
                    r.offset,
                    text(r.key.as_deref()).unwrap_or_default(),
                    text(r.value.as_deref()),
                ));
            }
            offset = batch.header().next_offset();
            advanced = true;
        }
        if !advanced || offset >= data.high_watermark {
            return Ok(out);
        }
    }
}

/// The latest record of each key among `all`, in offset order (tombstones kept unless
/// `drop_tombstones`).
fn latest(all: &[Stored], drop_tombstones: bool) -> Vec<Stored> {
    let mut last: BTreeMap<&str, &Stored> = BTreeMap::new();
    for record in all {
        let _ = last.insert(&record.1, record);
    }
    let mut out: Vec<Stored> = last
        .into_values()
        .filter(|(_, _, value)| !(drop_tombstones && value.is_none()))
        .cloned()
        .collect();
    out.sort_by_key(|r| r.0);
    out
}

/// Waits until the stored log is `want`.
fn cleaned_to(conn: &mut Conn, topic: &str, want: &[Stored]) -> Result<()> {
    let mut seen = Vec::new();
    let done = wait_until("the cleaner", Duration::from_secs(60), || {
        seen = stored(conn, topic)?;
        Ok((seen == want).then_some(()))
    });
    done.with_context(|| {
        format!(
            "stored {} records, want {}: first stored {:?}",
            seen.len(),
            want.len(),
            seen.first()
        )
    })
}

/// `keys` keys x `versions` versions, then a tombstone for each of the first `tombstones`
/// keys, then one record of a key never repeated (the log's last).
fn workload(keys: usize, versions: usize, tombstones: usize) -> Vec<Rec> {
    let mut records = Vec::new();
    for v in 0..versions {
        for k in 0..keys {
            records.push(Rec::kv(format!("key-{k}"), format!("value-{k}-{v}")));
        }
    }
    for k in 0..tombstones {
        records.push(Rec {
            key: Some(format!("key-{k}").into_bytes()),
            value: None,
            ..Rec::default()
        });
    }
    records.push(Rec::kv("last", "the end"));
    records
}

/// What a producer wrote, as it should be stored before cleaning: one partition, in order.
fn written(records: &[Rec], first_offset: i64) -> Vec<Stored> {
    records
        .iter()
        .zip(first_offset..)
        .map(|(r, offset)| {
            (
                offset,
                text(r.key.as_deref()).unwrap_or_default(),
                text(r.value.as_deref()),
            )
        })
        .collect()
}

/// What a client consumer read, as stored records.
fn read_by(broker: &Broker, client: Client, topic: &str, options: &[&str]) -> Result<Vec<Stored>> {
    let got = consume_with(broker, client, topic, 1, 1, options)?;
    Ok(got
        .records
        .iter()
        .map(|r| {
            (
                r.offset,
                text(r.key.as_deref()).unwrap_or_default(),
                text(r.value.as_deref()),
            )
        })
        .collect())
}

#[test]
fn clients_read_the_latest_value_of_each_key_at_its_offset() -> Result<()> {
    let broker = Broker::start_with(FAST_CLEANER)?;
    let mut conn = Conn::open(&broker)?;
    for client in [Client::Confluent, Client::KafkaPython] {
        let topic = broker.topic(&format!("table-{}", client.name()));
        compacted(&broker, &topic, &["delete.retention.ms=600000"])?;
        let records = workload(20, 200, 5);
        let delivered = produce(&broker, client, &topic, &records, &[])?;
        ensure!(
            delivered.len() == records.len(),
            "{}: delivered {}",
            client.name(),
            delivered.len()
        );
        let all = written(&records, 0);
        let want = latest(&all, false);
        cleaned_to(&mut conn, &topic, &want)?;
        // A fresh consumer of each client reads exactly that: each live key's latest value and
        // the tombstones (delete.retention.ms has not passed), at their original offsets.
        for reader in [Client::Confluent, Client::KafkaPython] {
            let read = read_by(&broker, reader, &topic, &[])?;
            ensure!(
                read == want,
                "{} read {} records after {} produced: {:?}",
                reader.name(),
                read.len(),
                client.name(),
                read.iter().take(3).collect::<Vec<_>>()
            );
        }
        // A consumer positioned inside a removed range gets the next record kept.
        let removed = (0..)
            .find(|o| !want.iter().any(|r| r.0 == *o))
            .context("nothing removed")?;
        let next = want
            .iter()
            .find(|r| r.0 > removed)
            .context("nothing after")?;
        for reader in [Client::Confluent, Client::KafkaPython] {
            let read = read_by(&broker, reader, &topic, &["--offset", &removed.to_string()])?;
            ensure!(
                read.first() == Some(next),
                "{} from removed offset {removed}: {:?}",
                reader.name(),
                read.first()
            );
        }
    }
    // The cleaner's work shows in /metrics.
    let metrics = scrape(&broker)?;
    ensure!(
        metrics.value("rill_cleaner_runs_total", &[("result", "done")]) >= 1.0
            && metrics.value("rill_cleaner_records_removed_total", &[]) > 0.0
            && metrics.value("rill_cleaner_bytes_read_total", &[]) > 0.0,
        "cleaner counters: {:?}",
        metrics.all("rill_cleaner_runs_total")
    );
    let topic = broker.topic("table-confluent");
    let since = metrics
        .get(
            "rill_cleaner_seconds_since_last_clean",
            &[("topic", topic.as_str()), ("partition", "0")],
        )
        .context("no seconds since the last clean")?;
    ensure!(
        (0.0..60.0).contains(&since),
        "seconds since the last clean: {since}"
    );
    ensure!(
        metrics
            .get(
                "rill_cleaner_dirty_ratio",
                &[("topic", topic.as_str()), ("partition", "0")]
            )
            .is_some(),
        "no dirty ratio"
    );
    // `rill topic describe` shows the policy and each partition's dirty ratio.
    let (out, _) = common::rill_ok(&broker.bootstrap(), &["topic", "describe", &topic], b"")?;
    let dirty_column = out
        .lines()
        .any(|l| l.contains("LOG-END") && l.trim_end().ends_with("DIRTY"));
    let partition_row = out
        .lines()
        .find(|l| l.trim_start().starts_with("0 "))
        .is_some_and(|l| l.trim_end().ends_with('%'));
    ensure!(
        out.contains("cleanup compact") && dirty_column && partition_row,
        "rill topic describe:\n{out}"
    );
    Ok(())
}

#[test]
fn every_codec_is_cleaned_and_recompressed() -> Result<()> {
    let broker = Broker::start_with(FAST_CLEANER)?;
    let mut conn = Conn::open(&broker)?;
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = broker.topic(&format!("codec-{codec}"));
        compacted(&broker, &topic, &[])?;
        let records = workload(10, 30, 2);
        let _ = produce(
            &broker,
            Client::Confluent,
            &topic,
            &records,
            &["--compression", codec],
        )?;
        let want = latest(&written(&records, 0), false);
        cleaned_to(&mut conn, &topic, &want)?;
        let read = read_by(&broker, Client::Confluent, &topic, &[])?;
        ensure!(
            read == want,
            "{codec}: read {:?}",
            read.iter().take(3).collect::<Vec<_>>()
        );
    }
    Ok(())
}

#[test]
fn tombstones_go_after_delete_retention() -> Result<()> {
    let broker = Broker::start_with(FAST_CLEANER)?;
    let mut conn = Conn::open(&broker)?;
    let topic = broker.topic("tombstones");
    compacted(&broker, &topic, &["delete.retention.ms=8000"])?;
    // CreateTime timestamps of our own, to check that marking a batch with its delete
    // horizon (which rewrites its base timestamp) leaves every record's timestamp as it was.
    let records: Vec<Rec> = workload(10, 20, 4)
        .into_iter()
        .enumerate()
        .map(|(i, r)| Rec {
            timestamp: Some(1_700_000_000_000 + i64::try_from(i).unwrap_or(0) * 7),
            ..r
        })
        .collect();
    let _ = produce(&broker, Client::KafkaPython, &topic, &records, &[])?;
    let all = written(&records, 0);
    // First the latest of each key with the tombstones (their batches now marked with a
    // horizon 8 s away), then, past it, without.
    let with_tombstones = latest(&all, false);
    cleaned_to(&mut conn, &topic, &with_tombstones)?;
    for reader in [Client::Confluent, Client::KafkaPython] {
        let got = consume_with(&broker, reader, &topic, 1, 1, &[])?;
        for r in &got.records {
            let sent = usize::try_from(r.offset)
                .ok()
                .and_then(|i| records.get(i))
                .and_then(|s| s.timestamp);
            ensure!(
                sent == Some(r.timestamp),
                "{}: offset {} read with timestamp {}, sent {sent:?}",
                reader.name(),
                r.offset,
                r.timestamp
            );
        }
    }
    cleaned_to(&mut conn, &topic, &latest(&all, true))?;
    let read = read_by(&broker, Client::Confluent, &topic, &[])?;
    ensure!(read == latest(&all, true), "after the horizon: {read:?}");
    Ok(())
}

#[test]
fn a_crash_at_each_cleaner_step_loses_nothing() -> Result<()> {
    for step in ["cleaned", "swap", "deleted", "indexes-renamed"] {
        let mut broker = Broker::start_with_env(FAST_CLEANER, &[("RILL_CLEANER_FAULT", step)])?;
        let topic = broker.topic("crash");
        compacted(&broker, &topic, &[])?;
        let records = workload(20, 50, 3);
        let _ = produce(&broker, Client::Confluent, &topic, &records, &[])?;
        let all = written(&records, 0);
        // The first pass stops the broker at the fault point, as kill -9 would.
        ensure!(
            broker.wait_exit(Duration::from_secs(60))?,
            "{step}: the broker did not stop at the fault point\n{}",
            broker.output_tail(30)
        );
        broker.set_env("RILL_CLEANER_FAULT", None);
        broker.restart()?;
        let mut conn = Conn::open(&broker)?;
        // Right after the restart the log is whole: every latest record is there, and each
        // record is one that was written, at its offset (the old segments or the new ones).
        let now = stored(&mut conn, &topic)?;
        for record in &latest(&all, false) {
            ensure!(now.contains(record), "{step}: lost {record:?}");
        }
        for record in &now {
            ensure!(
                all.contains(record),
                "{step}: a record never written: {record:?}"
            );
        }
        // And the cleaner finishes the job, leaving no file of a pass behind (a later pass may
        // be writing one for a moment).
        cleaned_to(&mut conn, &topic, &latest(&all, false))?;
        let dir = broker
            .data_dir()
            .context("no data dir")?
            .join(format!("{topic}-0"));
        wait_until("no cleaning files left", Duration::from_secs(20), || {
            let leftovers: Vec<String> = std::fs::read_dir(&dir)?
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.ends_with(".cleaned") || n.ends_with(".swap"))
                .collect();
            Ok(leftovers.is_empty().then_some(()))
        })
        .context(step)?;
    }
    Ok(())
}

#[test]
fn hostile_logs_are_cleaned_and_the_broker_keeps_serving() -> Result<()> {
    let mut broker = Broker::start_with(FAST_CLEANER)?;
    let mut conn = Conn::open(&broker)?;
    // Only tombstones: each key's last one stays (until its horizon).
    let topic = broker.topic("only-tombstones");
    compacted(&broker, &topic, &["delete.retention.ms=600000"])?;
    let records: Vec<Rec> = (0..300)
        .map(|i| Rec {
            key: Some(format!("gone-{}", i % 7).into_bytes()),
            value: None,
            ..Rec::default()
        })
        .chain(std::iter::once(Rec::kv("last", "x")))
        .collect();
    let _ = produce(&broker, Client::Confluent, &topic, &records, &[])?;
    cleaned_to(&mut conn, &topic, &latest(&written(&records, 0), false))?;

    // Every record with the same key: one is left.
    let topic = broker.topic("one-key");
    compacted(&broker, &topic, &[])?;
    let records: Vec<Rec> = (0..500).map(|i| Rec::kv("same", format!("v{i}"))).collect();
    let _ = produce(&broker, Client::Confluent, &topic, &records, &[])?;
    let want = vec![(499, "same".to_owned(), Some("v499".to_owned()))];
    cleaned_to(&mut conn, &topic, &want)?;

    // A 1 MiB key, in versions.
    let topic = broker.topic("big-key");
    compacted(
        &broker,
        &topic,
        &["max.message.bytes=4000000", "segment.bytes=8000000"],
    )?;
    let big = "k".repeat(1 << 20);
    let records: Vec<Rec> = (0..4)
        .map(|i| Rec::kv(big.clone(), format!("v{i}")))
        .chain(std::iter::once(Rec::kv("small", "x")))
        .collect();
    let _ = produce(
        &broker,
        Client::Confluent,
        &topic,
        &records,
        &["--set", "message.max.bytes=4000000"],
    )?;
    cleaned_to(&mut conn, &topic, &latest(&written(&records, 0), false))?;

    // A topic deleted while the cleaner works on it: the deletion succeeds and nothing of it
    // is left on disk.
    let topic = broker.topic("deleted-while-cleaned");
    compacted(&broker, &topic, &[])?;
    let records = workload(50, 100, 0);
    let _ = produce(&broker, Client::Confluent, &topic, &records, &[])?;
    let request = DeleteTopicsRequest::default()
        .with_topic_names(vec![common::txn::topic_name(&topic)])
        .with_timeout_ms(10_000);
    let answer = ask!(&mut conn, DeleteTopics, 4, request);
    let code = answer.responses.first().map(|r| r.error_code);
    ensure!(code == Some(0), "deleting {topic}: {code:?}");
    let data = broker.data_dir().context("no data dir")?.to_path_buf();
    wait_until(
        "the deleted topic's files to go",
        Duration::from_secs(20),
        || {
            let left: Vec<_> = std::fs::read_dir(&data)?
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.starts_with(&topic))
                .collect();
            Ok(left.is_empty().then_some(()))
        },
    )?;
    common::assert_healthy(&mut broker)?;
    Ok(())
}

#[test]
fn an_idempotent_producers_last_batch_stays_empty_and_clients_read_past_it() -> Result<()> {
    let broker = Broker::start_with(FAST_CLEANER)?;
    let mut conn = Conn::open(&broker)?;
    let topic = broker.topic("producer-state");
    compacted(&broker, &topic, &[])?;
    // An idempotent producer writes every key; another writes them all again.
    let first = workload(10, 5, 0);
    let _ = produce(
        &broker,
        Client::Confluent,
        &topic,
        &first,
        &["--set", "enable.idempotence=true"],
    )?;
    let second = workload(10, 1, 0);
    let _ = produce(&broker, Client::Confluent, &topic, &second, &[])?;
    let mut all = written(&first, 0);
    all.extend(written(&second, i64::try_from(first.len())?));
    let want = latest(&all, false);
    cleaned_to(&mut conn, &topic, &want)?;
    // The idempotent producer's last batch is still there, empty, so that its sequence
    // survives a rebuild of the producer state from the log.
    let data = fetch(&mut conn, &topic, 0, 0, READ_UNCOMMITTED)?;
    let records = data.records.unwrap_or_default();
    let empty = Batches::new(&records)
        .filter_map(|b| b.ok().map(|b| *b.header()))
        .filter(|h| h.records_count == 0)
        .collect::<Vec<_>>();
    ensure!(
        empty.len() == 1 && empty.iter().all(|h| h.producer_id >= 0),
        "empty batches: {empty:?}"
    );
    for reader in [Client::Confluent, Client::KafkaPython] {
        let read = read_by(&broker, reader, &topic, &[])?;
        ensure!(read == want, "{} read {read:?}", reader.name());
    }
    Ok(())
}

#[test]
fn aborted_transactions_records_are_cleaned_away() -> Result<()> {
    let broker = Broker::start_with(FAST_CLEANER)?;
    let mut conn = Conn::open(&broker)?;
    let topic = broker.topic("transactional-table");
    compacted(&broker, &topic, &[])?;
    let out = common::run_py(
        "transactions.py",
        &[broker.bootstrap(), "keyed".to_owned(), topic.clone()],
        b"",
    )?;
    ensure!(out.get("done").is_some(), "transactions.py: {out}");
    // librdkafka's layout: c1's 10 records and marker (0-10), a's (11-21), c2's (22-32).
    let c1 = (0..10).map(|i| (i, format!("k{i}"), Some(format!("c1-{i}"))));
    let c2 = (5..15).map(|i| (i + 17, format!("k{i}"), Some(format!("c2-{i}"))));
    let all: Vec<Stored> = c1.chain(c2).collect();
    let want = latest(&all, false);
    // Stored: the committed latest values and nothing of the aborted transaction (its
    // records go; markers have no key and are not records this test compares).
    let mut seen = Vec::new();
    let done = wait_until("the aborted records to go", Duration::from_secs(60), || {
        seen = stored(&mut conn, &topic)?
            .into_iter()
            .filter(|(_, key, _)| key.starts_with('k'))
            .collect();
        Ok((seen == want).then_some(()))
    });
    done.with_context(|| format!("stored {seen:?}"))?;
    // A read_committed consumer reads the same.
    let out = common::run_py(
        "transactions.py",
        &[
            broker.bootstrap(),
            "read".to_owned(),
            topic.clone(),
            "1".to_owned(),
            "read_committed".to_owned(),
        ],
        b"",
    )?;
    let values: Vec<String> = out["records"]
        .as_array()
        .context("no records")?
        .iter()
        .filter_map(|r| r.get(2)?.as_str().map(str::to_owned))
        .collect();
    let expected: Vec<String> = want.iter().filter_map(|r| r.2.clone()).collect();
    ensure!(values == expected, "read_committed: {values:?}");
    Ok(())
}

#[test]
fn a_topic_switched_to_compact_and_back_is_cleaned_only_while_compacted() -> Result<()> {
    let broker = Broker::start_with(FAST_CLEANER)?;
    let mut conn = Conn::open(&broker)?;
    let topic = broker.topic("switched");
    create_topic(
        &broker,
        &topic,
        1,
        &[
            "segment.bytes=1048576",
            "segment.ms=300",
            "min.cleanable.dirty.ratio=0.01",
        ],
    )?;
    let records = workload(10, 20, 0);
    let _ = produce(&broker, Client::Confluent, &topic, &records, &[])?;
    let all = written(&records, 0);
    // A delete topic keeps every record, however old its segments get.
    std::thread::sleep(Duration::from_secs(2));
    ensure!(
        stored(&mut conn, &topic)? == all,
        "a delete topic was cleaned"
    );
    // Switched to compact, live: cleaned.
    let alter = |policy: &str| {
        common::rill_ok(
            &broker.bootstrap(),
            &[
                "topic",
                "alter",
                &topic,
                "-c",
                &format!("cleanup.policy={policy}"),
            ],
            b"",
        )
    };
    let _ = alter("compact")?;
    let want = latest(&all, false);
    cleaned_to(&mut conn, &topic, &want)?;
    // And back to delete: new records are no longer cleaned away.
    let _ = alter("delete")?;
    let more = workload(10, 5, 0);
    let _ = produce(&broker, Client::Confluent, &topic, &more, &[])?;
    let mut expected = want.clone();
    expected.extend(written(&more, i64::try_from(records.len())?));
    std::thread::sleep(Duration::from_secs(2));
    ensure!(
        stored(&mut conn, &topic)? == expected,
        "a topic switched back to delete was cleaned"
    );
    Ok(())
}

#[test]
fn old_clients_read_a_cleaned_log_through_down_conversion() -> Result<()> {
    let broker = Broker::start_with(FAST_CLEANER)?;
    let mut conn = Conn::open(&broker)?;
    let topic = broker.topic("old-readers");
    // Small segments, each soon ending with a batch whose records all went (kept empty, so
    // that the segment still ends where the next starts).
    compacted(&broker, &topic, &["segment.bytes=16384"])?;
    let records = workload(10, 100, 2);
    let _ = produce(
        &broker,
        Client::Confluent,
        &topic,
        &records,
        &["--set", "batch.num.messages=10"],
    )?;
    let want = latest(&written(&records, 0), false);
    cleaned_to(&mut conn, &topic, &want)?;
    // kafka-python told the broker is 0.10 fetches with Fetch v2 (magic 1 message sets): the
    // cleaned batches are converted down, and the empty ones must not stall it.
    let read = read_by(
        &broker,
        Client::KafkaPython,
        &topic,
        &["--api-version", "0.10"],
    )?;
    ensure!(
        read == want,
        "kafka-python at 0.10 read {} records",
        read.len()
    );
    Ok(())
}
