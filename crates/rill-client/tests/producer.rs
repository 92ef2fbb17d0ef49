//! The producers against the real broker: offsets, read-back, codecs, async outcomes, flush and
//! close, idempotence and a broker restart.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Result, bail, ensure};
use common::Broker;
use rill_client::kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use rill_client::kafka_protocol::messages::{FetchRequest, TopicName};
use rill_client::{
    AsyncProducer, ClientConfig, Compression, Delivered, Producer, ProducerConfig, ProducerError,
    ProducerRecord,
};
use rill_record::{Batches, Record};

fn config(broker: &Broker) -> ProducerConfig {
    ProducerConfig::new(ClientConfig::new([broker.bootstrap()]))
}

/// Collects every outcome of an async producer until its channels end (after close):
/// `(successes, errors)`.
async fn drain(
    producer: &AsyncProducer,
) -> Result<tokio::task::JoinHandle<(Vec<Delivered>, Vec<ProducerError>)>> {
    let mut successes = producer
        .successes()
        .await
        .ok_or_else(|| anyhow::anyhow!("successes taken"))?;
    let mut errors = producer
        .errors()
        .await
        .ok_or_else(|| anyhow::anyhow!("errors taken"))?;
    Ok(tokio::spawn(async move {
        let (mut ok, mut bad) = (Vec::new(), Vec::new());
        loop {
            tokio::select! {
                Some(s) = successes.recv() => ok.push(s),
                Some(e) = errors.recv() => bad.push(e),
                else => break,
            }
        }
        (ok, bad)
    }))
}

/// The stored batches of `topic`/`partition` from `offset` on, by one raw Fetch.
async fn fetch_raw(
    producer: &Producer,
    topic: &str,
    partition: i32,
    offset: i64,
) -> Result<bytes::Bytes> {
    let (_, conn) = producer
        .cluster()
        .leader_connection(topic, partition)
        .await?;
    let request = FetchRequest::default()
        .with_max_wait_ms(100)
        .with_max_bytes(1 << 24)
        .with_replica_id((-1).into())
        .with_session_epoch(-1)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(TopicName(topic.to_owned().into()))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(partition)
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(1 << 24),
                ]),
        ]);
    let response = conn.request(request).await?;
    let data = &response.responses[0].partitions[0];
    ensure!(data.error_code == 0, "fetch error {}", data.error_code);
    Ok(data.records.clone().unwrap_or_default())
}

/// Every record of `topic`/`partition` from offset 0, by raw Fetch.
async fn read_all(producer: &Producer, topic: &str, partition: i32) -> Result<Vec<Record>> {
    let mut out = Vec::new();
    loop {
        let bytes = fetch_raw(producer, topic, partition, out.len() as i64).await?;
        let before = out.len();
        for batch in Batches::new(&bytes) {
            for record in batch?.records()? {
                if record.offset as usize == out.len() {
                    out.push(record);
                }
            }
        }
        if out.len() == before {
            return Ok(out);
        }
    }
}

#[tokio::test]
async fn sync_send_returns_consecutive_offsets_and_records_read_back() -> Result<()> {
    let broker = Broker::start_with(&["--num-partitions", "2"])?;
    let producer = Producer::new(config(&broker))?;
    for partition in 0..2 {
        for i in 0..3 {
            let meta = producer
                .send(
                    ProducerRecord::new("sync")
                        .partition(partition)
                        .key(format!("k{i}"))
                        .value(format!("v{i}"))
                        .header("h", format!("{i}"))
                        .timestamp(1_700_000_000_000 + i),
                )
                .await?;
            assert_eq!((meta.partition, meta.offset), (partition, i));
            assert_eq!(meta.timestamp, 1_700_000_000_000 + i);
        }
    }
    for partition in 0..2 {
        let records = read_all(&producer, "sync", partition).await?;
        assert_eq!(records.len(), 3);
        for (i, r) in records.iter().enumerate() {
            assert_eq!(r.key.as_deref(), Some(format!("k{i}").as_bytes()));
            assert_eq!(r.value.as_deref(), Some(format!("v{i}").as_bytes()));
            assert_eq!(r.headers[0].key.as_ref(), b"h");
            assert_eq!(
                r.headers[0].value.as_deref(),
                Some(format!("{i}").as_bytes())
            );
            assert_eq!(r.timestamp, 1_700_000_000_000 + i as i64);
        }
    }
    producer.close().await;
    assert!(producer.send(ProducerRecord::new("sync")).await.is_err());
    Ok(())
}

#[tokio::test]
async fn every_codec_round_trips() -> Result<()> {
    let broker = Broker::start()?;
    for codec in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let mut config = config(&broker);
        config.compression = codec;
        let producer = Producer::new(config)?;
        let topic = format!("codec-{}", codec.name());
        let mut sends = Vec::new();
        for i in 0..20 {
            let p = producer.clone();
            let record =
                ProducerRecord::new(topic.clone()).value(format!("value {i} {}", "x".repeat(100)));
            sends.push(tokio::spawn(async move { p.send(record).await }));
        }
        let mut offsets = Vec::new();
        for s in sends {
            offsets.push(s.await??.offset);
        }
        offsets.sort();
        assert_eq!(offsets, (0..20).collect::<Vec<_>>(), "{codec:?}");
        let records = read_all(&producer, &topic, 0).await?;
        assert_eq!(records.len(), 20, "{codec:?}");
        producer.close().await;
    }
    Ok(())
}

#[tokio::test]
async fn async_producer_accounts_for_every_record() -> Result<()> {
    let broker = Broker::start_with(&["--num-partitions", "3"])?;
    let producer = AsyncProducer::new(config(&broker))?;
    let drain = drain(&producer).await?;
    let n = 500;
    for i in 0..n {
        producer
            .send(
                ProducerRecord::new("async")
                    .key(format!("{i}"))
                    .value("v")
                    .tag(i as u64),
            )
            .await?;
    }
    for i in 0..5 {
        producer
            .send(
                ProducerRecord::new("bad/topic name!")
                    .value(format!("{i}"))
                    .tag(1_000 + i),
            )
            .await?;
    }
    producer.close().await;
    drop(producer);
    let (ok, bad) = tokio::time::timeout(Duration::from_secs(30), drain).await??;
    assert_eq!(ok.len(), n);
    assert_eq!(bad.len(), 5, "{bad:?}");
    assert!(bad.iter().all(|e| e.record.topic == "bad/topic name!"));
    // Each outcome carries its record's tag back, untouched.
    for s in &ok {
        let key = s.record.key.as_deref().unwrap_or_default();
        assert_eq!(key, s.record.tag.to_string().as_bytes(), "tag of {s:?}");
    }
    let mut bad_tags: Vec<u64> = bad.iter().map(|e| e.record.tag).collect();
    bad_tags.sort_unstable();
    assert_eq!(bad_tags, (1_000..1_005).collect::<Vec<_>>());
    let mut per_partition: HashMap<i32, Vec<i64>> = HashMap::new();
    for s in &ok {
        per_partition
            .entry(s.metadata.partition)
            .or_default()
            .push(s.metadata.offset);
    }
    for offsets in per_partition.values_mut() {
        offsets.sort();
        assert_eq!(*offsets, (0..offsets.len() as i64).collect::<Vec<_>>());
    }
    Ok(())
}

#[tokio::test]
async fn flush_completes_every_record_sent_before_it() -> Result<()> {
    let broker = Broker::start()?;
    let mut config = config(&broker);
    config.linger = Duration::from_secs(60);
    let producer = Producer::new(config)?;
    let mut sends = Vec::new();
    for i in 0..50 {
        let p = producer.clone();
        sends.push(tokio::spawn(async move {
            p.send(ProducerRecord::new("flush").value(format!("{i}")))
                .await
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    tokio::time::timeout(Duration::from_secs(10), producer.flush()).await?;
    let mut offsets = Vec::new();
    for s in sends {
        offsets.push(s.await??.offset);
    }
    offsets.sort();
    assert_eq!(offsets, (0..50).collect::<Vec<_>>());
    producer.close().await;
    Ok(())
}

/// `buffer_memory` bounds what the producer holds: with room for four 1 KiB records, a caller
/// sending 400 is held back by `send` until batches are acknowledged, and a full buffer is sent
/// at once rather than after a minute of linger. So the records arrive in order, in batches of
/// at most five (with the default buffer they would wait in one batch for the linger or the
/// flush).
#[tokio::test]
async fn a_full_buffer_holds_send_back_and_sends_without_waiting_for_linger() -> Result<()> {
    let broker = Broker::start()?;
    let mut config = config(&broker);
    config.linger = Duration::from_secs(60);
    config.batch_size = 1 << 20;
    config.buffer_memory = 4 * 1024;
    config.channel_buffer = 1;
    let producer = Producer::new(config)?;
    // The topic's metadata first: records waiting for it are not in the buffer yet.
    let warm = ProducerRecord::new("bounded").partition(0).value("warm");
    let flushed = producer.clone();
    let first = tokio::spawn(async move { flushed.send(warm).await });
    while !first.is_finished() {
        // A flush that overtook the send has nothing to wait for: flush again.
        tokio::time::timeout(Duration::from_secs(30), producer.flush()).await?;
        tokio::task::yield_now().await;
    }
    assert_eq!(first.await??.offset, 0);

    let value = vec![b'v'; 1000];
    let mut sends = Vec::new();
    for i in 0..400 {
        let record = ProducerRecord::new("bounded")
            .partition(0)
            .key(format!("{i}"))
            .value(value.clone());
        let p = producer.clone();
        sends.push(tokio::spawn(async move { p.send(record).await }));
        // Let each send reach the producer before the next, so offsets follow i.
        tokio::task::yield_now().await;
    }
    // The last few records fit the buffer and would wait out the linger: flush sends them
    // (its command gets through once the full buffer has drained).
    tokio::time::timeout(Duration::from_secs(30), producer.flush()).await?;
    let mut offsets = Vec::new();
    for s in sends {
        offsets.push(
            tokio::time::timeout(Duration::from_secs(30), s)
                .await???
                .offset,
        );
    }
    assert_eq!(offsets, (1..=400).collect::<Vec<_>>());

    let bytes = fetch_raw(&producer, "bounded", 0, 1).await?;
    let mut keys = Vec::new();
    for batch in Batches::new(&bytes) {
        let records = batch?.records()?;
        assert!(records.len() <= 5, "a batch of {} records", records.len());
        keys.extend(records.into_iter().map(|r| r.key));
    }
    let expected: Vec<_> = (0..400)
        .map(|i| Some(bytes::Bytes::from(i.to_string())))
        .collect();
    assert_eq!(keys, expected);
    producer.close().await;
    Ok(())
}

#[tokio::test]
async fn idempotent_producer_survives_a_broker_restart_without_duplicates() -> Result<()> {
    let mut broker = Broker::start()?;
    let mut config = config(&broker);
    config.retry_backoff = Duration::from_millis(50);
    config.delivery_timeout = Duration::from_secs(30);
    let producer = AsyncProducer::new(config)?;
    let drain = drain(&producer).await?;
    let n = 2000;
    for i in 0..n {
        producer
            .send(
                ProducerRecord::new("idem")
                    .partition(0)
                    .value(format!("{i}")),
            )
            .await?;
        if i == n / 2 {
            broker.restart()?;
        }
        if i % 100 == 0 {
            tokio::task::yield_now().await;
        }
    }
    producer.close().await;
    drop(producer);
    let (ok, bad) = tokio::time::timeout(Duration::from_secs(60), drain).await??;
    assert_eq!(
        ok.len() + bad.len(),
        n,
        "every record has exactly one outcome"
    );
    assert!(
        bad.is_empty(),
        "{:?}",
        bad.first().map(|e| e.error.to_string())
    );
    let reader = Producer::new(ProducerConfig::new(ClientConfig::new([broker.bootstrap()])))?;
    let records = read_all(&reader, "idem", 0).await?;
    let values: Vec<String> = records
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
        .collect();
    let expected: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    if values != expected {
        bail!(
            "{} records in the log, first difference at {:?}",
            values.len(),
            values.iter().zip(&expected).position(|(a, b)| a != b)
        );
    }
    for s in &ok {
        let i: usize =
            String::from_utf8_lossy(s.record.value.as_deref().unwrap_or_default()).parse()?;
        assert_eq!(s.metadata.offset, i as i64);
    }
    Ok(())
}

/// Produce requests are built by tasks of their own; on a multi-threaded runtime those run in
/// any order, yet the broker must receive each partition's batches in the order they were
/// made: an idempotent batch that skips ahead is refused (OUT_OF_ORDER_SEQUENCE_NUMBER), and
/// without idempotence records would land out of order. Small batches and no linger keep
/// several requests in flight at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_flight_reach_the_broker_in_order() -> Result<()> {
    let broker = Broker::start()?;
    for idempotence in [true, false] {
        let topic = format!("in-order-{idempotence}");
        let mut config = config(&broker);
        config.enable_idempotence = idempotence;
        config.acks = rill_client::Acks::All;
        config.batch_size = 512;
        config.linger = Duration::ZERO;
        let producer = AsyncProducer::new(config)?;
        let drain = drain(&producer).await?;
        let n: u64 = 20_000;
        for i in 0..n {
            producer
                .send(
                    ProducerRecord::new(topic.as_str())
                        .partition(0)
                        .value(format!("{i:08}"))
                        .tag(i),
                )
                .await?;
        }
        producer.close().await;
        drop(producer);
        let (ok, bad) = tokio::time::timeout(Duration::from_secs(60), drain).await??;
        ensure!(
            bad.is_empty(),
            "idempotence {idempotence}: {} records failed, the first: {:?}",
            bad.len(),
            bad.first().map(|e| e.error.to_string())
        );
        // Each record's offset is its place in the sending order.
        let misplaced = ok
            .iter()
            .filter(|s| s.metadata.offset != s.record.tag as i64)
            .count();
        ensure!(
            ok.len() as u64 == n && misplaced == 0,
            "idempotence {idempotence}: {} delivered, {misplaced} not at the offset of their \
             place in the sending order",
            ok.len()
        );
    }
    Ok(())
}
