//! Throughput of the client: produce N records of S bytes as fast as possible with the
//! [`AsyncProducer`], or consume N records from offset 0 of every partition with one
//! [`PartitionConsumer`](rill_client::PartitionConsumer) each. Prints one JSON line:
//!
//! ```text
//! {"client":"rill-client","op":"produce","records":N,"record_size":S,"seconds":..,"records_per_s":..,"mb_per_s":..}
//! ```
//!
//! `mb_per_s` counts value bytes only (N × S), in MB of 10^6 bytes. `scripts/perf_confluent.py`
//! does the same with librdkafka and `scripts/bench-client.sh` runs both side by side
//! (docs/benchmarks.md).
//!
//! ```text
//! cargo run --release -p rill-client --example perf -- create --bootstrap B --topic T [--partitions P]
//! cargo run --release -p rill-client --example perf -- produce --bootstrap B --topic T --records N \
//!     --record-size S [--acks 0|1|all] [--linger-ms L] [--batch-size B] [--idempotence true|false]
//! cargo run --release -p rill-client --example perf -- consume --bootstrap B --topic T --records N \
//!     --record-size S [--fetch-bytes B]
//! ```
//!
//! Defaults: acks=1, linger 5 ms, batch size 1 MiB, no idempotence (it needs acks=all),
//! fetch 1 MiB per partition; keyless records (sticky partitioning).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use rill_client::{
    Acks, Admin, AdminConfig, AsyncProducer, ClientConfig, Consumer, ConsumerConfig, NewTopic,
    Offset, ProducerConfig, ProducerRecord,
};

struct Args {
    op: String,
    flags: HashMap<String, String>,
}

impl Args {
    fn parse() -> anyhow::Result<Self> {
        let mut args = std::env::args().skip(1);
        let op = args
            .next()
            .context("usage: perf create|produce|consume --bootstrap B --topic T ...")?;
        let mut flags = HashMap::new();
        while let Some(flag) = args.next() {
            let Some(name) = flag.strip_prefix("--") else {
                bail!("unexpected argument {flag:?}");
            };
            let value = args
                .next()
                .with_context(|| format!("{flag} needs a value"))?;
            let _previous = flags.insert(name.to_owned(), value);
        }
        Ok(Self { op, flags })
    }

    fn get(&self, name: &str) -> anyhow::Result<&str> {
        self.flags
            .get(name)
            .map(String::as_str)
            .with_context(|| format!("--{name} is required"))
    }

    fn num<T: std::str::FromStr>(&self, name: &str, default: Option<T>) -> anyhow::Result<T>
    where
        T::Err: std::error::Error + Send + Sync + 'static,
    {
        match (self.flags.get(name), default) {
            (Some(v), _) => v.parse().with_context(|| format!("--{name} {v}")),
            (None, Some(d)) => Ok(d),
            (None, None) => bail!("--{name} is required"),
        }
    }
}

fn report(op: &str, records: u64, record_size: usize, elapsed: Duration) {
    let seconds = elapsed.as_secs_f64();
    #[allow(clippy::cast_precision_loss)]
    let (rps, mbps) = (
        records as f64 / seconds,
        (records as f64 * record_size as f64) / seconds / 1e6,
    );
    println!(
        "{{\"client\":\"rill-client\",\"op\":\"{op}\",\"records\":{records},\"record_size\":{record_size},\
         \"seconds\":{seconds:.3},\"records_per_s\":{rps:.0},\"mb_per_s\":{mbps:.2}}}"
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse()?;
    let client = ClientConfig::new([args.get("bootstrap")?.to_owned()]);
    let topic = args.get("topic")?.to_owned();
    match args.op.as_str() {
        "create" => {
            let admin = Admin::new(AdminConfig::new(client));
            let _created = admin
                .create_topic(NewTopic::new(topic, args.num("partitions", Some(4))?))
                .await?;
            Ok(())
        }
        "produce" => produce(&args, client, topic).await,
        "consume" => consume(&args, client, topic).await,
        other => bail!("unknown operation {other:?}: create, produce or consume"),
    }
}

async fn produce(args: &Args, client: ClientConfig, topic: String) -> anyhow::Result<()> {
    let records: u64 = args.num("records", None)?;
    let record_size: usize = args.num("record-size", None)?;
    let mut config = ProducerConfig::new(client);
    config.acks = match args.flags.get("acks").map_or("1", String::as_str) {
        "0" => Acks::None,
        "1" => Acks::Leader,
        "all" | "-1" => Acks::All,
        other => bail!("--acks {other}: 0, 1 or all"),
    };
    config.linger = Duration::from_millis(args.num("linger-ms", Some(5))?);
    config.batch_size = args.num("batch-size", Some(1024 * 1024))?;
    config.enable_idempotence = args.num("idempotence", Some(false))?;
    let producer = AsyncProducer::new(config)?;
    let mut successes = producer.successes().await.context("successes taken")?;
    let mut errors = producer.errors().await.context("errors taken")?;
    // Both channels drained by one task, as the producer requires.
    let drain = tokio::spawn(async move {
        let (mut ok, mut failed, mut first_error) = (0u64, 0u64, None);
        loop {
            tokio::select! {
                Some(_) = successes.recv() => ok += 1,
                Some(err) = errors.recv() => {
                    failed += 1;
                    if first_error.is_none() {
                        first_error = Some(err.error.to_string());
                    }
                }
                else => break,
            }
        }
        (ok, failed, first_error)
    });

    // One shared buffer: handing a record over copies no value bytes (librdkafka copies each
    // value once into its own buffer; both then encode it into a batch).
    let value = Bytes::from(vec![b'x'; record_size]);
    let start = Instant::now();
    for _ in 0..records {
        producer
            .send(ProducerRecord::new(topic.as_str()).value(value.clone()))
            .await?;
    }
    producer.close().await;
    let (ok, failed, first_error) = drain.await?;
    let elapsed = start.elapsed();
    if failed > 0 || ok != records {
        bail!(
            "{ok} delivered, {failed} failed of {records}; first error: {}",
            first_error.unwrap_or_default()
        );
    }
    report("produce", records, record_size, elapsed);
    Ok(())
}

async fn consume(args: &Args, client: ClientConfig, topic: String) -> anyhow::Result<()> {
    let records: u64 = args.num("records", None)?;
    let record_size: usize = args.num("record-size", None)?;
    let mut config = ConsumerConfig::new(client);
    config.max_partition_fetch_bytes = args.num("fetch-bytes", Some(1024 * 1024))?;
    let consumer = Consumer::new(config)?;
    let partitions = consumer.partitions(&topic).await?;
    // Where each partition ends now: each reader stops at its end (not timed).
    let mut ends = Vec::new();
    for &p in &partitions {
        ends.push(consumer.resolve_offset(&topic, p, Offset::Newest).await?);
    }
    let total: i64 = ends.iter().sum();
    if u64::try_from(total)? != records {
        bail!("{topic} holds {total} records, expected {records}");
    }

    let start = Instant::now();
    let mut readers = Vec::new();
    for (&p, &end) in partitions.iter().zip(&ends) {
        if end == 0 {
            continue;
        }
        let mut pc = consumer.consume_partition(&topic, p, Offset::At(0)).await?;
        readers.push(tokio::spawn(async move {
            let (mut count, mut bytes) = (0u64, 0usize);
            while let Some(record) = pc.next().await {
                let record = record?;
                count += 1;
                bytes += record.value.as_ref().map_or(0, Bytes::len);
                if record.offset + 1 >= end {
                    break;
                }
            }
            anyhow::Ok((count, bytes))
        }));
    }
    let (mut count, mut bytes) = (0u64, 0usize);
    for reader in readers {
        let (c, b) = reader.await??;
        count += c;
        bytes += b;
    }
    let elapsed = start.elapsed();
    if count != records || bytes != usize::try_from(records)? * record_size {
        bail!("read {count} records, {bytes} value bytes; expected {records} of {record_size} B");
    }
    report("consume", records, record_size, elapsed);
    Ok(())
}
