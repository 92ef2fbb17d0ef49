//! Interop with confluent-kafka (librdkafka) both ways, against the real broker: records this
//! crate's [`Producer`] writes are read back identical by confluent-kafka, and records
//! confluent-kafka writes are read back identical by [`PartitionConsumer`] (keys, null keys,
//! values, null values, headers in order with duplicate keys and a null value, explicit
//! CreateTime timestamps), uncompressed and with zstd; and keyed records land on the same
//! partition from both clients.
//!
//! A group shared by a `GroupConsumer` and a confluent-kafka member is in `group_consumer.rs`
//! (`should_share_a_group_with_confluent_kafka_and_take_over_when_it_dies`).
//!
//! Records cross the process boundary as text, one per line: fields separated by a space,
//! each byte string `=HEX` or `~` for null, headers `KEYHEX:VALUE` joined by `,` (or `-`).
//!
//! [`PartitionConsumer`]: rill_client::PartitionConsumer

mod common;

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;
use common::Broker;
use rill_client::{
    Admin, AdminConfig, ClientConfig, Compression, Consumer, Header, NewTopic, Offset, Producer,
    ProducerConfig, ProducerRecord,
};

const WAIT: Duration = Duration::from_secs(20);

/// One record, as both clients should see it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rec {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    timestamp: i64,
}

fn hex(bytes: Option<&[u8]>) -> String {
    match bytes {
        None => "~".to_owned(),
        Some(bytes) => {
            let mut out = String::from("=");
            for b in bytes {
                out.push_str(&format!("{b:02x}"));
            }
            out
        }
    }
}

fn unhex(field: &str) -> Result<Option<Vec<u8>>> {
    if field == "~" {
        return Ok(None);
    }
    let digits = field.strip_prefix('=').context("neither =HEX nor ~")?;
    ensure!(digits.len() % 2 == 0, "odd hex {digits}");
    let bytes = (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16))
        .collect::<Result<Vec<u8>, _>>()?;
    Ok(Some(bytes))
}

impl Rec {
    /// `KEY VALUE TIMESTAMP HEADERS`.
    fn line(&self) -> String {
        let headers = if self.headers.is_empty() {
            "-".to_owned()
        } else {
            self.headers
                .iter()
                .map(|(k, v)| format!("{}:{}", &hex(Some(k))[1..], hex(v.as_deref())))
                .collect::<Vec<_>>()
                .join(",")
        };
        format!(
            "{} {} {} {headers}",
            hex(self.key.as_deref()),
            hex(self.value.as_deref()),
            self.timestamp
        )
    }

    fn parse(fields: &[&str]) -> Result<Self> {
        let [key, value, timestamp, headers] = fields else {
            bail!("expected 4 fields, got {fields:?}");
        };
        let headers = if *headers == "-" {
            Vec::new()
        } else {
            headers
                .split(',')
                .map(|h| {
                    let (k, v) = h.split_once(':').context("header without ':'")?;
                    Ok((unhex(&format!("={k}"))?.unwrap_or_default(), unhex(v)?))
                })
                .collect::<Result<_>>()?
        };
        Ok(Self {
            key: unhex(key)?,
            value: unhex(value)?,
            headers,
            timestamp: timestamp.parse()?,
        })
    }

    fn to_producer_record(&self, topic: &str) -> ProducerRecord {
        let mut record = ProducerRecord::new(topic)
            .partition(0)
            .timestamp(self.timestamp);
        record.key = self.key.clone().map(Bytes::from);
        record.value = self.value.clone().map(Bytes::from);
        record.headers = self
            .headers
            .iter()
            .map(|(k, v)| Header::new(k.clone(), v.clone().map(Bytes::from)))
            .collect();
        record
    }
}

/// Every shape of record: null and empty keys and values, non-ASCII and long bytes, no
/// headers, duplicate header keys in a set order, a null and an empty header value.
fn records() -> Vec<Rec> {
    (0..60_i64)
        .map(|i| {
            let key = match i % 5 {
                0 => None,
                1 => Some(Vec::new()),
                2 => Some(format!("ключ-{i}").into_bytes()),
                _ => Some(format!("key-{i}").into_bytes()),
            };
            let value = match i % 7 {
                0 => None,
                1 => Some(Vec::new()),
                2 => Some(vec![0, 0xff, 0x80, u8::try_from(i).unwrap_or(0)]),
                _ => Some(
                    format!(
                        "value-{i}-{}",
                        "x".repeat(usize::try_from(i * 13).unwrap_or(0))
                    )
                    .into_bytes(),
                ),
            };
            let headers = match i % 4 {
                0 => Vec::new(),
                1 => vec![(b"h".to_vec(), Some(format!("{i}").into_bytes()))],
                2 => vec![
                    (b"dup".to_vec(), Some(b"first".to_vec())),
                    (b"other".to_vec(), Some(Vec::new())),
                    (b"dup".to_vec(), Some(b"second".to_vec())),
                    (b"nul".to_vec(), None),
                ],
                _ => vec![
                    (b"nul".to_vec(), None),
                    ("zé".as_bytes().to_vec(), Some(vec![1, 2, 3])),
                ],
            };
            Rec {
                key,
                value,
                headers,
                timestamp: 1_700_000_000_000 + i * 1_000,
            }
        })
        .collect()
}

fn python(script: &str, args: &[&str]) -> Result<String> {
    common::python(script, args)
}

/// Reads `n` records of partition 0 with confluent-kafka; prints `OFFSET TSTYPE` and a
/// record line each (`TSTYPE` 1 is CreateTime).
const CONFLUENT_READ: &str = r#"
import sys
from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING
bootstrap, topic, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
def h(b):
    return "~" if b is None else "=" + b.hex()
c = Consumer({"bootstrap.servers": bootstrap, "group.id": "interop-reader",
              "enable.auto.commit": False})
c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
got = 0
idle = 0
while got < n:
    m = c.poll(1.0)
    if m is None:
        idle += 1
        if idle > 20:
            sys.exit(f"only {got} of {n} records")
        continue
    if m.error():
        sys.exit(str(m.error()))
    tstype, ts = m.timestamp()
    hs = m.headers()
    hs = "-" if not hs else ",".join(k.encode().hex() + ":" + h(v) for k, v in hs)
    print(m.offset(), tstype, h(m.key()), h(m.value()), ts, hs)
    got += 1
c.close()
"#;

/// Produces the record lines of the file (see the module docs) to partition 0 with confluent-kafka.
const CONFLUENT_WRITE: &str = r#"
import sys
from confluent_kafka import Producer
bootstrap, topic, codec, path = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
def b(f):
    return None if f == "~" else bytes.fromhex(f[1:])
errors = []
def report(err, msg):
    if err is not None:
        errors.append(str(err))
p = Producer({"bootstrap.servers": bootstrap, "compression.type": codec, "linger.ms": 50,
              "acks": "all", "enable.idempotence": True})
for line in open(path):
    key, value, ts, hs = line.split()
    headers = [] if hs == "-" else [
        (bytes.fromhex(k).decode(), b(v)) for k, v in (x.split(":") for x in hs.split(","))]
    p.produce(topic, partition=0, key=b(key), value=b(value), headers=headers,
              timestamp=int(ts), on_delivery=report)
left = p.flush(30)
if left or errors:
    sys.exit(f"{left} undelivered, errors: {errors}")
"#;

#[tokio::test]
async fn confluent_kafka_reads_what_rill_produces_identically() -> Result<()> {
    let broker = Broker::start()?;
    let expected = records();
    for (compression, name) in [(Compression::None, "none"), (Compression::Zstd, "zstd")] {
        let topic = format!("to-confluent-{name}");
        let mut config = ProducerConfig::new(ClientConfig::new([broker.bootstrap()]));
        config.compression = compression;
        config.linger = Duration::from_millis(20);
        let producer = Producer::new(config)?;
        // Sent concurrently so that they share (compressed) batches; spawned in order on this
        // current-thread runtime, so they are appended in order.
        let sends: Vec<_> = expected
            .iter()
            .map(|rec| {
                let producer = producer.clone();
                let record = rec.to_producer_record(&topic);
                tokio::spawn(async move { producer.send(record).await })
            })
            .collect();
        for (i, send) in sends.into_iter().enumerate() {
            let meta = send.await??;
            ensure!(
                meta.offset == i64::try_from(i)?,
                "{name}: record {i} at {meta:?}"
            );
        }
        producer.close().await;

        let n = expected.len().to_string();
        let out = tokio::task::spawn_blocking({
            let args = [broker.bootstrap(), topic.clone(), n];
            move || python(CONFLUENT_READ, &[&args[0], &args[1], &args[2]])
        })
        .await??;
        let lines: Vec<&str> = out.lines().collect();
        ensure!(lines.len() == expected.len(), "{name}: {out}");
        for (i, (line, want)) in lines.iter().zip(&expected).enumerate() {
            let fields: Vec<&str> = line.split(' ').collect();
            ensure!(fields.len() == 6, "{line}");
            ensure!(fields[0] == i.to_string(), "{name}: offset in {line}");
            // confluent_kafka.TIMESTAMP_CREATE_TIME
            ensure!(fields[1] == "1", "{name}: timestamp type in {line}");
            let got = Rec::parse(&fields[2..])?;
            ensure!(
                &got == want,
                "{name} record {i}:\n got {got:?}\nwant {want:?}"
            );
        }
    }
    Ok(())
}

#[tokio::test]
async fn rill_reads_what_confluent_kafka_produces_identically() -> Result<()> {
    let broker = Broker::start()?;
    let expected = records();
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("records.txt");
    let text: String = expected.iter().map(|r| r.line() + "\n").collect();
    std::fs::write(&path, text)?;
    let path = path.to_str().context("temp path is not UTF-8")?.to_owned();
    let consumer = Consumer::new(ClientConfig::new([broker.bootstrap()]))?;
    for codec in ["none", "zstd"] {
        let topic = format!("from-confluent-{codec}");
        create_topic_async(&broker, &topic, 1).await?;
        let _ = tokio::task::spawn_blocking({
            let args = [
                broker.bootstrap(),
                topic.clone(),
                codec.to_owned(),
                path.clone(),
            ];
            move || python(CONFLUENT_WRITE, &[&args[0], &args[1], &args[2], &args[3]])
        })
        .await??;
        let mut pc = consumer
            .consume_partition(&topic, 0, Offset::Oldest)
            .await?;
        for (i, want) in expected.iter().enumerate() {
            let record = tokio::time::timeout(WAIT, pc.next())
                .await
                .with_context(|| format!("{codec}: waiting for record {i}"))?
                .context("the consumer ended")??;
            ensure!(record.offset == i64::try_from(i)?, "{record:?}");
            let got = Rec {
                key: record.key.map(|b| b.to_vec()),
                value: record.value.map(|b| b.to_vec()),
                headers: record
                    .headers
                    .into_iter()
                    .map(|h| (h.key.to_vec(), h.value.map(|v| v.to_vec())))
                    .collect(),
                timestamp: record.timestamp,
            };
            ensure!(
                &got == want,
                "{codec} record {i}:\n got {got:?}\nwant {want:?}"
            );
        }
        pc.close().await;
    }
    Ok(())
}

async fn create_topic_async(broker: &Broker, topic: &str, partitions: i32) -> Result<()> {
    let admin = Admin::new(AdminConfig::new(ClientConfig::new([broker.bootstrap()])));
    let _ = admin.create_topic(NewTopic::new(topic, partitions)).await?;
    Ok(())
}

/// Produces one record per key (hex, one per line of the file) with confluent-kafka's
/// `partitioner`; prints `KEYHEX PARTITION` per delivery.
const CONFLUENT_PARTITION: &str = r#"
import sys
from confluent_kafka import Producer
bootstrap, topic, partitioner, path = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
out, errors = [], []
def report(err, msg):
    if err is not None:
        errors.append(str(err))
    else:
        out.append(f"{msg.key().hex()} {msg.partition()}")
p = Producer({"bootstrap.servers": bootstrap, "partitioner": partitioner, "linger.ms": 20})
for line in open(path):
    p.produce(topic, key=bytes.fromhex(line.strip()), value=b"v", on_delivery=report)
left = p.flush(30)
if left or errors:
    sys.exit(f"{left} undelivered, errors: {errors}")
print("\n".join(out))
"#;

/// librdkafka's *default* partitioner is `consistent_random` (CRC32 of the key), which puts
/// keys elsewhere than the Java client and this crate (murmur2); a mixed fleet must set
/// `partitioner=murmur2_random` on its librdkafka producers. The test sets it, and checks
/// that the default really differs, so that the setting is known to matter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_land_on_the_same_partition_as_with_librdkafka_murmur2_random() -> Result<()> {
    let broker = Broker::start()?;
    let mut keys: Vec<Vec<u8>> = Vec::new();
    for i in 0..200_usize {
        keys.push(match i % 4 {
            0 => format!("user-{i}").into_bytes(),
            1 => format!("{i}-{}", "long-key-".repeat(i % 50 + 10)).into_bytes(),
            2 => format!("ключ-{i}-ü-日本").into_bytes(),
            _ => (0..(i % 13 + 1))
                .map(|j| u8::try_from((i * 31 + j * 7) % 256).unwrap_or(0))
                .chain([0xff, 0x80])
                .collect(),
        });
    }
    keys.sort();
    keys.dedup();
    ensure!(keys.len() == 200, "keys not distinct");
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("keys.txt");
    let text: String = keys
        .iter()
        .map(|k| hex(Some(k))[1..].to_owned() + "\n")
        .collect();
    std::fs::write(&path, text)?;
    let path = path.to_str().context("temp path is not UTF-8")?.to_owned();

    let confluent = |topic: &str, partitioner: &str| -> Result<Vec<(Vec<u8>, i32)>> {
        let out = python(
            CONFLUENT_PARTITION,
            &[&broker.bootstrap(), topic, partitioner, &path],
        )?;
        let mut placed = out
            .lines()
            .map(|line| {
                let (key, partition) = line.split_once(' ').context("no space")?;
                Ok((
                    unhex(&format!("={key}"))?.unwrap_or_default(),
                    partition.parse()?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        placed.sort();
        Ok(placed)
    };

    create_topic_async(&broker, "keys-rill", 6).await?;
    create_topic_async(&broker, "keys-murmur2", 6).await?;
    create_topic_async(&broker, "keys-default", 6).await?;
    let producer = Producer::new(ProducerConfig::new(ClientConfig::new([broker.bootstrap()])))?;
    let mut ours = Vec::new();
    for key in &keys {
        let meta = producer
            .send(ProducerRecord::new("keys-rill").key(key.clone()).value("v"))
            .await?;
        ours.push((key.clone(), meta.partition));
    }
    producer.close().await;
    let used: std::collections::BTreeSet<i32> = ours.iter().map(|(_, p)| *p).collect();
    ensure!(used.len() == 6, "200 keys on partitions {used:?} only");

    let theirs = tokio::task::block_in_place(|| confluent("keys-murmur2", "murmur2_random"))?;
    ensure!(theirs.len() == keys.len(), "{} deliveries", theirs.len());
    let differ: Vec<_> = ours.iter().zip(&theirs).filter(|(a, b)| a != b).collect();
    ensure!(differ.is_empty(), "(rill, librdkafka) differ: {differ:?}");

    let default = tokio::task::block_in_place(|| confluent("keys-default", "consistent_random"))?;
    let same = ours.iter().zip(&default).filter(|(a, b)| a == b).count();
    ensure!(
        same < keys.len() / 2,
        "consistent_random agreed with murmur2 on {same} of {} keys",
        keys.len()
    );
    Ok(())
}
