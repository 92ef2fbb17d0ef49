//! Restart and crash: what a client wrote survives a graceful stop, and every record the broker
//! acknowledged with acks=all survives `kill -9`.

mod common;

use std::collections::HashMap;
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use common::{
    Broker, Client, Consumed, Rec, Result, check_offsets, consume, create_topic, ms, produce,
    python_command, run_py, show, wait_timeout,
};
use serde_json::json;

fn describe(broker: &Broker, topic: &str) -> Result<serde_json::Value> {
    run_py(
        "admin.py",
        &[broker.bootstrap(), "describe".to_owned(), topic.to_owned()],
        b"",
    )
}

#[test]
fn a_graceful_restart_keeps_records_offsets_and_topic_config() -> Result<()> {
    let mut broker = Broker::start()?;
    let topic = broker.topic("survivor");
    create_topic(&broker, &topic, 3, &["retention.ms=123456789"])?;
    let records: Vec<Rec> = (0..600)
        .map(|i| Rec {
            headers: vec![("n".to_owned(), Some(i.to_string().into_bytes()))],
            ..Rec::kv(format!("key-{}", i % 30), format!("value-{i}"))
        })
        .collect();
    let deliveries = produce(&broker, Client::Confluent, &topic, &records, &[])?;
    let before = consume(&broker, Client::KafkaPython, &topic, 3, records.len())?;
    check_offsets(&before)?;
    ensure!(
        before.records.len() == records.len(),
        "read {} before restart",
        before.records.len()
    );
    let at: HashMap<(i32, i64), &Consumed> = before
        .records
        .iter()
        .map(|r| ((r.partition, r.offset), r))
        .collect();
    for d in &deliveries {
        let (sent, read) = (records.get(d.index), at.get(&(d.partition, d.offset)));
        ensure!(
            sent.zip(read)
                .is_some_and(|(s, r)| s.value == r.value && s.headers == r.headers),
            "record {} acknowledged at {}/{} reads back as {read:?}",
            d.index,
            d.partition,
            d.offset
        );
    }
    let described = describe(&broker, &topic)?;
    ensure!(
        described["configs"]["retention.ms"] == json!("123456789"),
        "retention.ms before restart: {}",
        described["configs"]["retention.ms"]
    );

    broker.stop()?;
    broker.restart()?;

    let after = consume(&broker, Client::Confluent, &topic, 3, records.len())?;
    check_offsets(&after)?;
    let key = |r: &Consumed| (r.partition, r.offset);
    let mut before_sorted = before.records.clone();
    let mut after_sorted = after.records.clone();
    before_sorted.sort_by_key(key);
    after_sorted.sort_by_key(key);
    ensure!(
        before.end == after.end,
        "high watermarks {:?} before restart, {:?} after",
        before.end,
        after.end
    );
    for (b, a) in before_sorted.iter().zip(&after_sorted) {
        ensure!(
            b == a,
            "at {}/{}: before restart {b:?}, after {a:?}",
            b.partition,
            b.offset
        );
    }
    ensure!(
        before_sorted.len() == after_sorted.len(),
        "record count changed"
    );

    let described = describe(&broker, &topic)?;
    let partitions = described["partitions"].as_object().context("partitions")?;
    ensure!(
        partitions.len() == 3,
        "{} partitions after restart",
        partitions.len()
    );
    ensure!(
        described["configs"]["retention.ms"] == json!("123456789"),
        "retention.ms after restart: {}",
        described["configs"]["retention.ms"]
    );

    // Offsets go on where they stopped.
    let more: Vec<Rec> = (0..30)
        .map(|i| Rec::kv(format!("key-{i}"), format!("more-{i}")))
        .collect();
    let more_deliveries = produce(&broker, Client::Confluent, &topic, &more, &[])?;
    let mut next = after.end.clone();
    for d in &more_deliveries {
        let expected = next.entry(d.partition).or_insert(0);
        ensure!(
            d.offset == *expected,
            "after restart, record {} went to {}/{}, expected offset {expected}",
            d.index,
            d.partition,
            d.offset
        );
        *expected += 1;
    }
    let all = consume(
        &broker,
        Client::Confluent,
        &topic,
        3,
        records.len() + more.len(),
    )?;
    check_offsets(&all)?;
    ensure!(
        all.records.len() == records.len() + more.len(),
        "read {}",
        all.records.len()
    );
    Ok(())
}

/// One acknowledged record from crash_producer.py's log.
#[derive(Debug)]
struct Ack {
    partition: i32,
    offset: i64,
    value: String,
}

fn read_acks(path: &std::path::Path) -> Result<Vec<Ack>> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut acks = Vec::new();
    // Only whole lines: the last one may be torn if the producer was killed mid-write.
    for line in text.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
        let mut fields = line.split_whitespace();
        let (Some(p), Some(o), Some(v), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            bail!("bad ack line {line:?}");
        };
        acks.push(Ack {
            partition: p.parse()?,
            offset: o.parse()?,
            value: v.to_owned(),
        });
    }
    Ok(acks)
}

#[test]
fn kill_9_while_producing_with_acks_all_loses_no_acknowledged_record() -> Result<()> {
    let mut broker = Broker::start()?;
    let topic = broker.topic("crash");
    create_topic(&broker, &topic, 3, &[])?;
    let scratch = tempfile::tempdir()?;
    let log = scratch.path().join("acks.log");
    let producer_stderr = scratch.path().join("producer.stderr");

    let mut producer = python_command(
        "crash_producer.py",
        &[
            broker.bootstrap(),
            topic.clone(),
            log.to_string_lossy().into_owned(),
            "--seconds".to_owned(),
            "20".to_owned(),
        ],
    )?
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(&producer_stderr)?)
    .spawn()
    .context("starting crash_producer.py")?;

    // Let it get going: at least a second, and some acknowledgements.
    let started = Instant::now();
    loop {
        thread::sleep(ms(50));
        let acked = read_acks(&log)?.len();
        if started.elapsed() >= Duration::from_secs(1) && acked >= 100 {
            break;
        }
        if let Some(status) = producer.try_wait()? {
            bail!(
                "crash_producer.py exited early with {status}:\n{}",
                std::fs::read_to_string(&producer_stderr).unwrap_or_default()
            );
        }
        ensure!(
            started.elapsed() < Duration::from_secs(15),
            "only {acked} records acknowledged after 15 s"
        );
    }
    broker.kill9()?;
    // The producer can learn of no acknowledgement once the broker is dead; stop it.
    thread::sleep(ms(200));
    let _ = producer.kill();
    let _ = wait_timeout(&mut producer, Duration::from_secs(5))?;
    let acks = read_acks(&log)?;
    ensure!(
        acks.len() >= 100,
        "only {} acknowledged records",
        acks.len()
    );
    eprintln!("{} records acknowledged before kill -9", acks.len());

    broker.restart()?;
    let got = consume(&broker, Client::Confluent, &topic, 3, acks.len())?;
    check_offsets(&got)?;
    let stored: HashMap<(i32, i64), &Consumed> = got
        .records
        .iter()
        .map(|r| ((r.partition, r.offset), r))
        .collect();
    let mut lost = Vec::new();
    for ack in &acks {
        match stored.get(&(ack.partition, ack.offset)) {
            Some(r) if r.value.as_deref() == Some(ack.value.as_bytes()) => {}
            Some(r) => lost.push(format!(
                "{} acknowledged at {}/{} but that offset holds {}",
                ack.value,
                ack.partition,
                ack.offset,
                show(r.value.as_deref())
            )),
            None => lost.push(format!(
                "{} acknowledged at {}/{} is missing",
                ack.value, ack.partition, ack.offset
            )),
        }
    }
    ensure!(
        lost.is_empty(),
        "{} of {} acknowledged records lost after kill -9, e.g. {:?}",
        lost.len(),
        acks.len(),
        lost.iter().take(5).collect::<Vec<_>>()
    );
    Ok(())
}
