//! The partition consumer against the real broker: start offsets (oldest, newest, an offset
//! inside a batch, a timestamp), every codec from this crate's producer and from
//! confluent-kafka, a 1 MiB record, out-of-range offsets, and a broker restart.

mod common;

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use common::Broker;
use rill_client::kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use rill_client::kafka_protocol::messages::{FetchRequest, TopicName};
use rill_client::{
    ClientConfig, ClientError, Compression, Consumer, ConsumerConfig, ConsumerRecord, ErrorCode,
    Header, Offset, OffsetReset, PartitionConsumer, Producer, ProducerConfig, ProducerRecord,
};
use rill_record::Batches;

/// How long a test waits for a record that should come.
const WAIT: Duration = Duration::from_secs(20);

fn client(broker: &Broker) -> ClientConfig {
    ClientConfig::new([broker.bootstrap()])
}

fn producer(broker: &Broker, compression: Compression) -> Result<Producer> {
    let mut config = ProducerConfig::new(client(broker));
    config.compression = compression;
    Ok(Producer::new(config)?)
}

/// Sends `records` concurrently, so that they share batches, and returns their offsets in
/// the order given.
async fn send_all(producer: &Producer, records: Vec<ProducerRecord>) -> Result<Vec<i64>> {
    let sends: Vec<_> = records
        .into_iter()
        .map(|record| {
            let producer = producer.clone();
            tokio::spawn(async move { producer.send(record).await })
        })
        .collect();
    let mut offsets = Vec::with_capacity(sends.len());
    for send in sends {
        offsets.push(send.await??.offset);
    }
    Ok(offsets)
}

/// The next `n` records, failing on an error item, the end, or a wait longer than [`WAIT`].
async fn take(pc: &mut PartitionConsumer, n: usize) -> Result<Vec<ConsumerRecord>> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        match tokio::time::timeout(WAIT, pc.next())
            .await
            .with_context(|| format!("waiting for record {} of {n}", out.len()))?
        {
            Some(record) => out.push(record?),
            None => bail!("the consumer ended after {} of {n} records", out.len()),
        }
    }
    Ok(out)
}

/// Fails if a record (or anything) arrives within `wait`.
async fn expect_nothing(pc: &mut PartitionConsumer, wait: Duration) -> Result<()> {
    if let Ok(item) = tokio::time::timeout(wait, pc.next()).await {
        bail!("expected nothing, got {item:?}");
    }
    Ok(())
}

/// Produces `n` records to partition 0 with confluent-kafka (librdkafka) and `codec`.
fn produce_confluent(broker: &Broker, topic: &str, codec: &str, n: usize) -> Result<()> {
    const SCRIPT: &str = r#"
import sys
from confluent_kafka import Producer
bootstrap, topic, codec, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
errors = []
def report(err, msg):
    if err is not None:
        errors.append(str(err))
p = Producer({"bootstrap.servers": bootstrap, "compression.type": codec, "linger.ms": 20,
              "acks": "all"})
for i in range(n):
    p.produce(topic, partition=0, key=f"ck{i}".encode(), value=(f"cv{i} " * 20).encode(),
              headers=[("h", str(i).encode())], timestamp=1_700_000_000_000 + i,
              on_delivery=report)
left = p.flush(30)
if left or errors:
    sys.exit(f"{left} undelivered, errors: {errors}")
"#;
    let _ = common::python(SCRIPT, &[&broker.bootstrap(), topic, codec, &n.to_string()])?;
    Ok(())
}

#[tokio::test]
async fn partitions_lists_every_partition_in_order() -> Result<()> {
    let broker = Broker::start_with(&["--num-partitions", "3"])?;
    let consumer = Consumer::new(client(&broker))?;
    assert_eq!(consumer.partitions("three").await?, vec![0, 1, 2]);
    let err = consumer
        .consume_partition("three", 3, Offset::Oldest)
        .await
        .err()
        .context("partition 3 of 3")?;
    assert!(
        matches!(err, ClientError::InvalidPartition { .. }),
        "{err:?}"
    );
    Ok(())
}

#[tokio::test]
async fn oldest_reads_every_record_in_order_with_identical_fields() -> Result<()> {
    let broker = Broker::start()?;
    let producer = producer(&broker, Compression::None)?;
    let mut records = Vec::new();
    for i in 0..300_i64 {
        let mut record = ProducerRecord::new("all")
            .partition(0)
            .timestamp(1_600_000_000_000 + i * 7);
        if i % 5 != 0 {
            record = record.key(format!("key-{i}"));
        }
        if i % 7 != 0 {
            record = record.value(format!("value-{i}-{}", "x".repeat(usize::try_from(i)?)));
        }
        if i % 3 == 0 {
            record = record.header("a", format!("{i}")).header("b", "");
            record.headers.push(Header::new("null", None));
        }
        records.push(record);
    }
    // Sent in waves so the log holds batches of many sizes.
    let mut offsets = Vec::new();
    for wave in records.chunks(37) {
        offsets.extend(send_all(&producer, wave.to_vec()).await?);
    }
    ensure!(offsets == (0..300).collect::<Vec<_>>(), "{offsets:?}");
    produce_confluent(&broker, "all", "none", 20)?;

    let consumer = Consumer::new(client(&broker))?;
    let mut pc = consumer.consume_partition("all", 0, Offset::Oldest).await?;
    assert_eq!((pc.topic(), pc.partition()), ("all", 0));
    let got = take(&mut pc, 320).await?;
    for (i, (sent, got)) in records.iter().zip(&got).enumerate() {
        assert_eq!(got.offset, i64::try_from(i)?);
        assert_eq!(&*got.topic, "all");
        assert_eq!(got.partition, 0);
        assert_eq!(got.key, sent.key, "key of {i}");
        assert_eq!(got.value, sent.value, "value of {i}");
        assert_eq!(got.headers, sent.headers, "headers of {i}");
        assert_eq!(Some(got.timestamp), sent.timestamp, "timestamp of {i}");
    }
    for (i, got) in got.iter().skip(300).enumerate() {
        assert_eq!(got.offset, 300 + i64::try_from(i)?);
        assert_eq!(got.key.as_deref(), Some(format!("ck{i}").as_bytes()));
        assert_eq!(
            got.value.as_deref(),
            Some(format!("cv{i} ").repeat(20).as_bytes())
        );
        assert_eq!(
            got.headers,
            vec![Header::new("h", Some(i.to_string().into()))]
        );
        assert_eq!(got.timestamp, 1_700_000_000_000 + i64::try_from(i)?);
    }
    assert_eq!(pc.high_watermark(), 320);
    expect_nothing(&mut pc, Duration::from_millis(700)).await?;
    tokio::time::timeout(WAIT, pc.close()).await?;
    producer.close().await;
    Ok(())
}

#[tokio::test]
async fn an_offset_inside_a_batch_starts_exactly_there() -> Result<()> {
    let broker = Broker::start()?;
    let mut config = ProducerConfig::new(client(&broker));
    // One batch: every send waits for the flush below.
    config.linger = Duration::from_secs(60);
    let producer = Producer::new(config)?;
    let sends: Vec<_> = (0..10)
        .map(|i| {
            let producer = producer.clone();
            tokio::spawn(async move {
                producer
                    .send(
                        ProducerRecord::new("mid")
                            .partition(0)
                            .value(format!("{i}")),
                    )
                    .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    producer.flush().await;
    for send in sends {
        let _ = send.await??;
    }

    // The premise: the log holds those ten records as one batch.
    let (_, conn) = producer.cluster().leader_connection("mid", 0).await?;
    let response = conn
        .request(
            FetchRequest::default()
                .with_max_bytes(1 << 20)
                .with_topics(vec![
                    FetchTopic::default()
                        .with_topic(TopicName("mid".to_owned().into()))
                        .with_partitions(vec![
                            FetchPartition::default()
                                .with_partition(0)
                                .with_partition_max_bytes(1 << 20),
                        ]),
                ]),
        )
        .await?;
    let bytes = response.responses[0].partitions[0]
        .records
        .clone()
        .unwrap_or_default();
    let headers: Vec<(i64, i32)> = Batches::new(&bytes)
        .map(|b| b.map(|b| (b.header().base_offset, b.header().records_count)))
        .collect::<Result<_, _>>()?;
    assert_eq!(headers, vec![(0, 10)]);

    let consumer = Consumer::new(client(&broker))?;
    for start in [0, 1, 5, 9] {
        let mut pc = consumer
            .consume_partition("mid", 0, Offset::At(start))
            .await?;
        let got = take(&mut pc, usize::try_from(10 - start)?).await?;
        let offsets: Vec<i64> = got.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, (start..10).collect::<Vec<_>>());
        assert_eq!(got[0].value.as_deref(), Some(start.to_string().as_bytes()));
    }
    // Chunks: the rest of the fetched batch at once, after records taken one by one.
    let mut pc = consumer.consume_partition("mid", 0, Offset::At(2)).await?;
    assert_eq!(take(&mut pc, 1).await?[0].offset, 2);
    let chunk = tokio::time::timeout(WAIT, pc.next_chunk())
        .await?
        .context("the consumer ended")??;
    let offsets: Vec<i64> = chunk.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, (3..10).collect::<Vec<_>>());
    // At the log end: nothing until something is produced.
    let mut pc = consumer.consume_partition("mid", 0, Offset::At(10)).await?;
    expect_nothing(&mut pc, Duration::from_millis(300)).await?;
    producer.close().await;
    let producer = self::producer(&broker, Compression::None)?;
    let meta = producer
        .send(ProducerRecord::new("mid").partition(0).value("10"))
        .await?;
    assert_eq!(meta.offset, 10);
    assert_eq!(take(&mut pc, 1).await?[0].offset, 10);
    producer.close().await;
    Ok(())
}

#[tokio::test]
async fn newest_reads_only_records_produced_afterwards() -> Result<()> {
    let broker = Broker::start()?;
    let producer = producer(&broker, Compression::None)?;
    for i in 0..5 {
        let _ = producer
            .send(
                ProducerRecord::new("new")
                    .partition(0)
                    .value(format!("old {i}")),
            )
            .await?;
    }
    let consumer = Consumer::new(client(&broker))?;
    let mut pc = consumer.consume_partition("new", 0, Offset::Newest).await?;
    expect_nothing(&mut pc, Duration::from_millis(700)).await?;
    assert_eq!(pc.high_watermark(), 5);
    for i in 0..3 {
        let _ = producer
            .send(
                ProducerRecord::new("new")
                    .partition(0)
                    .value(format!("new {i}")),
            )
            .await?;
    }
    let got = take(&mut pc, 3).await?;
    let values: Vec<_> = got.iter().map(|r| r.value.clone()).collect();
    assert_eq!(
        values,
        (0..3)
            .map(|i| Some(format!("new {i}").into()))
            .collect::<Vec<_>>()
    );
    assert_eq!(got[0].offset, 5);
    producer.close().await;
    Ok(())
}

#[tokio::test]
async fn a_timestamp_starts_at_the_first_record_at_or_after_it() -> Result<()> {
    let broker = Broker::start()?;
    let producer = producer(&broker, Compression::None)?;
    let records = (0..20)
        .map(|i| {
            ProducerRecord::new("time")
                .partition(0)
                .value(format!("{i}"))
                .timestamp(1_000_000 + i * 1000)
        })
        .collect();
    let _ = send_all(&producer, records).await?;
    let consumer = Consumer::new(client(&broker))?;
    for (t, first) in [
        (0, 0),
        (1_000_000, 0),
        (1_004_500, 5),
        (1_005_000, 5),
        (1_019_000, 19),
    ] {
        let mut pc = consumer
            .consume_partition("time", 0, Offset::Timestamp(t))
            .await?;
        let got = take(&mut pc, 1).await?;
        assert_eq!(got[0].offset, first, "timestamp {t}");
        assert!(got[0].timestamp >= t);
    }
    // Later than every record: starts at the log end.
    assert_eq!(
        consumer
            .resolve_offset("time", 0, Offset::Timestamp(2_000_000))
            .await?,
        20
    );
    assert_eq!(consumer.resolve_offset("time", 0, Offset::Oldest).await?, 0);
    producer.close().await;
    Ok(())
}

#[tokio::test]
async fn every_codec_decodes_from_this_producer_and_from_librdkafka() -> Result<()> {
    let broker = Broker::start()?;
    let consumer = Consumer::new(client(&broker))?;
    for codec in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let topic = format!("codec-{}", codec.name());
        let producer = producer(&broker, codec)?;
        let records = (0..50)
            .map(|i| {
                ProducerRecord::new(topic.clone())
                    .partition(0)
                    .key(format!("k{i}"))
                    .value(format!("value {i} {}", "abc".repeat(50)))
            })
            .collect();
        let _ = send_all(&producer, records).await?;
        producer.close().await;
        produce_confluent(&broker, &topic, codec.name(), 50)?;

        let mut pc = consumer
            .consume_partition(&topic, 0, Offset::Oldest)
            .await?;
        let got = take(&mut pc, 100).await?;
        for (i, r) in got.iter().enumerate() {
            assert_eq!(r.offset, i64::try_from(i)?, "{codec:?}");
            let (key, value) = if i < 50 {
                (format!("k{i}"), format!("value {i} {}", "abc".repeat(50)))
            } else {
                (format!("ck{}", i - 50), format!("cv{} ", i - 50).repeat(20))
            };
            assert_eq!(r.key.as_deref(), Some(key.as_bytes()), "{codec:?}");
            assert_eq!(r.value.as_deref(), Some(value.as_bytes()), "{codec:?}");
        }
    }
    Ok(())
}

#[tokio::test]
async fn a_one_mib_record_arrives_whole() -> Result<()> {
    let broker = Broker::start_with(&["--max-message-bytes", "4194304"])?;
    let mut config = ProducerConfig::new(client(&broker));
    config.max_request_size = 4 << 20;
    let producer = Producer::new(config)?;
    let big: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    let _ = producer
        .send(ProducerRecord::new("big").partition(0).value("small"))
        .await?;
    let _ = producer
        .send(ProducerRecord::new("big").partition(0).value(big.clone()))
        .await?;
    let _ = producer
        .send(ProducerRecord::new("big").partition(0).value("after"))
        .await?;
    // The big batch is larger than max_partition_fetch_bytes (1 MiB); it still arrives.
    let consumer = Consumer::new(client(&broker))?;
    let mut pc = consumer.consume_partition("big", 0, Offset::Oldest).await?;
    let got = take(&mut pc, 3).await?;
    assert_eq!(got[1].value.as_deref(), Some(&big[..]));
    assert_eq!(got[2].value.as_deref(), Some(&b"after"[..]));
    producer.close().await;
    Ok(())
}

#[tokio::test]
async fn an_offset_out_of_range_is_an_error_item_or_a_reset() -> Result<()> {
    let broker = Broker::start()?;
    let producer = producer(&broker, Compression::None)?;
    for i in 0..3 {
        let _ = producer
            .send(
                ProducerRecord::new("oor")
                    .partition(0)
                    .value(format!("{i}")),
            )
            .await?;
    }
    let consumer = Consumer::new(client(&broker))?;
    let mut pc = consumer
        .consume_partition("oor", 0, Offset::At(1000))
        .await?;
    let item = tokio::time::timeout(WAIT, pc.next())
        .await?
        .context("an error item")?;
    let err = item.err().context("an error, not a record")?;
    assert_eq!(err.code(), Some(ErrorCode::OffsetOutOfRange), "{err}");
    assert!(tokio::time::timeout(WAIT, pc.next()).await?.is_none());

    let mut config = ConsumerConfig::new(client(&broker));
    config.offset_reset = OffsetReset::Earliest;
    let earliest = Consumer::new(config)?;
    let mut pc = earliest
        .consume_partition("oor", 0, Offset::At(1000))
        .await?;
    assert_eq!(take(&mut pc, 3).await?[0].offset, 0);

    let mut config = ConsumerConfig::new(client(&broker));
    config.offset_reset = OffsetReset::Latest;
    let latest = Consumer::new(config)?;
    let mut pc = latest.consume_partition("oor", 0, Offset::At(1000)).await?;
    expect_nothing(&mut pc, Duration::from_millis(500)).await?;
    let _ = producer
        .send(ProducerRecord::new("oor").partition(0).value("3"))
        .await?;
    assert_eq!(take(&mut pc, 1).await?[0].offset, 3);

    let err = consumer
        .consume_partition("oor", 0, Offset::At(-5))
        .await
        .err()
        .context("a negative offset")?;
    assert!(matches!(err, ClientError::Config(_)), "{err:?}");
    producer.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consumer_keeps_going_across_a_broker_restart() -> Result<()> {
    let mut broker = Broker::start()?;
    let producer = producer(&broker, Compression::None)?;
    for i in 0..10 {
        let _ = producer
            .send(
                ProducerRecord::new("restart")
                    .partition(0)
                    .value(format!("{i}")),
            )
            .await?;
    }
    let consumer = Consumer::new(client(&broker))?;
    let mut pc = consumer
        .consume_partition("restart", 0, Offset::Oldest)
        .await?;
    let first = take(&mut pc, 10).await?;
    // Stop while the consumer's long poll is waiting, stay down a while, come back.
    tokio::task::block_in_place(|| -> Result<()> {
        broker.stop()?;
        std::thread::sleep(Duration::from_millis(1500));
        broker.restart()
    })?;
    for i in 10..20 {
        let _ = producer
            .send(
                ProducerRecord::new("restart")
                    .partition(0)
                    .value(format!("{i}")),
            )
            .await?;
    }
    let second = take(&mut pc, 10).await?;
    let offsets: Vec<i64> = first.iter().chain(&second).map(|r| r.offset).collect();
    assert_eq!(offsets, (0..20).collect::<Vec<_>>());
    let values: Vec<String> = second
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
        .collect();
    assert_eq!(values, (10..20).map(|i| i.to_string()).collect::<Vec<_>>());
    producer.close().await;
    Ok(())
}

#[tokio::test]
async fn dropping_or_closing_stops_the_background_task() -> Result<()> {
    let broker = Broker::start()?;
    let consumer = Consumer::new(client(&broker))?;
    let pc = consumer
        .consume_partition("idle", 0, Offset::Newest)
        .await?;
    // A long poll is in flight; close must not wait for it to end.
    tokio::time::sleep(Duration::from_millis(100)).await;
    tokio::time::timeout(Duration::from_millis(200), pc.close()).await?;
    let pc = consumer
        .consume_partition("idle", 0, Offset::Newest)
        .await?;
    drop(pc);
    Ok(())
}

#[test]
fn consumer_types_and_futures_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>(_: &T) {}
    send_sync::<Consumer>();
    send_sync::<PartitionConsumer>();
    send_sync::<ConsumerRecord>();
    #[allow(dead_code, clippy::let_underscore_future)]
    fn futures(consumer: &Consumer, pc: &mut PartitionConsumer) {
        send(&consumer.partitions("t"));
        send(&consumer.resolve_offset("t", 0, Offset::Oldest));
        send(&consumer.consume_partition("t", 0, Offset::Newest));
        send(&pc.next());
    }
}
