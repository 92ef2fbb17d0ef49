//! Idempotent producers: a retried batch is written once, a gap is refused, and librdkafka's
//! idempotent producer loses and duplicates nothing while the broker restarts and is killed.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use bytes::Bytes;

use common::{
    Broker, Client, Result, call, check_offsets, connect, consume, create_topic, log_end, ms,
    produce_one, python_command, wait_timeout,
};
use rill_protocol::kafka_protocol::messages::InitProducerIdRequest;
use rill_protocol::{ApiKey, ErrorCode, ResponseKind};
use rill_record::{BatchBuilder, RecordSpec};

fn batch(producer_id: i64, epoch: i16, first_seq: i32, values: &[&str]) -> Result<Bytes> {
    let mut builder = BatchBuilder::new().producer(producer_id, epoch, first_seq);
    for value in values {
        builder =
            builder.record(RecordSpec::new(1_700_000_000_000).value(value.as_bytes().to_vec()));
    }
    Ok(builder.build()?)
}

/// Produces `records` (one batch) to partition 0 and returns (error code, base offset).
fn produce(
    stream: &mut std::net::TcpStream,
    topic: &str,
    records: Bytes,
    corr: i32,
) -> Result<(i16, i64)> {
    produce_one(stream, topic, 0, records, corr)
}

#[test]
fn a_replayed_batch_gets_its_original_offsets_and_the_log_does_not_grow() -> Result<()> {
    let broker = Broker::start()?;
    let topic = broker.topic("replay");
    create_topic(&broker, &topic, 1, &[])?;
    let mut stream = connect(&broker)?;
    let ResponseKind::InitProducerId(init) = call(
        &mut stream,
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
        init.error_code == 0,
        "InitProducerId failed: {}",
        init.error_code
    );
    let (pid, epoch) = (init.producer_id.0, init.producer_epoch);
    ensure!(pid >= 0 && epoch == 0, "producer id {pid} epoch {epoch}");

    let first = batch(pid, epoch, 0, &["a", "b", "c"])?;
    let second = batch(pid, epoch, 3, &["d", "e"])?;
    ensure!(
        produce(&mut stream, &topic, first.clone(), 2)? == (0, 0),
        "first batch"
    );
    ensure!(
        produce(&mut stream, &topic, second.clone(), 3)? == (0, 3),
        "second batch"
    );
    ensure!(
        log_end(&mut stream, &topic, 0, 4)? == 5,
        "five records written"
    );

    // The same batches again, as a producer retrying after a lost answer would send them.
    ensure!(
        produce(&mut stream, &topic, first, 5)? == (0, 0),
        "replayed first batch"
    );
    ensure!(
        produce(&mut stream, &topic, second, 6)? == (0, 3),
        "replayed second batch"
    );
    ensure!(
        log_end(&mut stream, &topic, 0, 7)? == 5,
        "the log did not grow"
    );

    // A gap in the sequence, and a stale epoch after a bump, are refused and write nothing.
    let (code, _) = produce(&mut stream, &topic, batch(pid, epoch, 9, &["x"])?, 8)?;
    ensure!(
        code == ErrorCode::OutOfOrderSequenceNumber.code(),
        "gap answered {code}"
    );
    let (code, offset) = produce(&mut stream, &topic, batch(pid, epoch + 1, 0, &["f"])?, 9)?;
    ensure!(
        (code, offset) == (0, 5),
        "epoch bump answered {code} at {offset}"
    );
    let (code, _) = produce(&mut stream, &topic, batch(pid, epoch, 5, &["y"])?, 10)?;
    ensure!(
        code == ErrorCode::InvalidProducerEpoch.code(),
        "stale epoch answered {code}"
    );
    ensure!(
        log_end(&mut stream, &topic, 0, 11)? == 6,
        "only the bumped batch was written"
    );

    // A second InitProducerId gets a different producer id.
    let ResponseKind::InitProducerId(again) = call(
        &mut stream,
        ApiKey::InitProducerId,
        4,
        12,
        InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000),
    )?
    else {
        bail!("not an InitProducerId answer");
    };
    ensure!(again.producer_id.0 != pid, "producer ids are unique");
    Ok(())
}

#[derive(Debug)]
struct Ack {
    partition: i32,
    offset: i64,
    n: u64,
}

fn read_acks(path: &std::path::Path) -> Result<Vec<Ack>> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut acks = Vec::new();
    for line in text.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
        let mut fields = line.split_whitespace();
        let (Some(p), Some(o), Some(v)) = (fields.next(), fields.next(), fields.next()) else {
            bail!("bad ack line {line:?}");
        };
        let n = v
            .strip_prefix("value-")
            .context("value without its number")?;
        acks.push(Ack {
            partition: p.parse()?,
            offset: o.parse()?,
            n: n.parse()?,
        });
    }
    Ok(acks)
}

/// Waits until at least `count` acknowledgements are logged (or the producer ends).
fn wait_for_acks(
    log: &std::path::Path,
    count: usize,
    producer: &mut std::process::Child,
) -> Result<()> {
    let started = Instant::now();
    while read_acks(log)?.len() < count {
        ensure!(
            producer.try_wait()?.is_none(),
            "the producer ended before {count} acks"
        );
        ensure!(
            started.elapsed() < Duration::from_secs(30),
            "fewer than {count} acks after 30 s"
        );
        thread::sleep(ms(20));
    }
    Ok(())
}

#[test]
fn librdkafka_idempotent_producer_survives_restart_and_kill_9_without_loss_or_duplicates()
-> Result<()> {
    const COUNT: usize = 100_000;
    let mut broker = Broker::start()?;
    let topic = broker.topic("exactly-once");
    create_topic(&broker, &topic, 3, &[])?;
    let scratch = tempfile::tempdir()?;
    let log = scratch.path().join("acks.log");
    let stderr = scratch.path().join("producer.stderr");
    let mut producer = python_command(
        "idempotent_producer.py",
        &[
            broker.bootstrap(),
            topic.clone(),
            log.to_string_lossy().into_owned(),
            "--count".to_owned(),
            COUNT.to_string(),
            "--rate".to_owned(),
            "25000".to_owned(),
            "--seconds".to_owned(),
            "60".to_owned(),
        ],
    )?
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(std::fs::File::create(&stderr)?)
    .spawn()
    .context("starting idempotent_producer.py")?;

    // Mid-stream: a graceful restart, then a kill -9 and a start on the same data.
    wait_for_acks(&log, COUNT / 5, &mut producer)?;
    broker.restart()?;
    wait_for_acks(&log, COUNT / 2, &mut producer)?;
    broker.kill9()?;
    thread::sleep(ms(300));
    broker.restart()?;

    let status = wait_timeout(&mut producer, Duration::from_secs(90))?;
    let mut summary = String::new();
    if let Some(mut out) = producer.stdout.take() {
        let _ = std::io::Read::read_to_string(&mut out, &mut summary);
    }
    ensure!(
        status.is_some_and(|s| s.success()),
        "the producer failed ({status:?}): {summary}\n{}",
        std::fs::read_to_string(&stderr).unwrap_or_default()
    );
    let acks = read_acks(&log)?;
    ensure!(
        acks.len() == COUNT,
        "{} of {COUNT} acknowledged: {summary}",
        acks.len()
    );

    let got = consume(&broker, Client::Confluent, &topic, 3, COUNT)?;
    check_offsets(&got)?;
    // Exactly once: every value appears once in the whole topic.
    let mut seen: HashMap<u64, (i32, i64)> = HashMap::new();
    let mut per_partition: BTreeMap<i32, Vec<u64>> = BTreeMap::new();
    for record in &got.records {
        let value = record.value.as_deref().unwrap_or_default();
        let n: u64 = std::str::from_utf8(value)?
            .strip_prefix("value-")
            .context("foreign value")?
            .parse()?;
        if let Some(first) = seen.insert(n, (record.partition, record.offset)) {
            bail!(
                "value-{n} is stored twice: at {first:?} and {}/{}",
                record.partition,
                record.offset
            );
        }
        per_partition.entry(record.partition).or_default().push(n);
    }
    ensure!(
        seen.len() == COUNT,
        "{} distinct records stored, {COUNT} sent",
        seen.len()
    );
    // Every acknowledged record is at its acknowledged offset.
    for ack in &acks {
        ensure!(
            seen.get(&ack.n) == Some(&(ack.partition, ack.offset)),
            "value-{} acknowledged at {}/{} but stored at {:?}",
            ack.n,
            ack.partition,
            ack.offset,
            seen.get(&ack.n)
        );
    }
    // In the order sent, per partition.
    for (partition, ns) in &per_partition {
        ensure!(
            ns.windows(2).all(|w| w[0] < w[1]),
            "partition {partition} is out of order"
        );
    }
    Ok(())
}
