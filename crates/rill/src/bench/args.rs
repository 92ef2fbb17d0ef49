//! The flags of `rill bench produce|consume|e2e`, each also an environment variable
//! `RILL_BENCH_...`, and what they are checked for before anything is sent.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, ensure};
use rill_client::{Acks, Compression};

use crate::cli::Bootstrap;

/// Measure throughput and latency: produce, consume, or end to end.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    pub(super) mode: Mode,
}

impl Args {
    pub(super) fn output(&self) -> &Output {
        match &self.mode {
            Mode::Produce(args) => &args.output,
            Mode::E2e(args) => &args.produce.output,
            Mode::Consume(args) => &args.output,
        }
    }
}

#[derive(Debug, clap::Subcommand)]
pub(super) enum Mode {
    /// Write records as fast as possible (or at --rate); latency is send to acknowledgement.
    Produce(ProduceArgs),
    /// Read a topic (by default everything up to its end when the run starts); latency is
    /// each record's age when read (now minus its timestamp, millisecond resolution).
    Consume(ConsumeArgs),
    /// Produce and consume one topic in one process; latency is send to consume.
    E2e(E2eArgs),
}

/// Flags of `produce` and `e2e`.
#[derive(Debug, clap::Args)]
pub(crate) struct ProduceArgs {
    #[command(flatten)]
    pub(super) bootstrap: Bootstrap,

    /// Topic to write. Default: a new topic `rill-bench-<random>`. A topic that does not exist
    /// is created with --partitions partitions (the broker's default when not given).
    #[arg(long, env = "RILL_BENCH_TOPIC")]
    pub(super) topic: Option<String>,

    #[command(flatten)]
    pub(super) load: Load,

    #[command(flatten)]
    pub(super) producer: ProducerFlags,

    #[command(flatten)]
    pub(super) output: Output,
}

/// Flags of `e2e`: those of `produce` and the consumers'.
#[derive(Debug, clap::Args)]
pub(crate) struct E2eArgs {
    #[command(flatten)]
    pub(super) produce: ProduceArgs,

    /// Most bytes one fetch asks of each partition (Kafka's max.partition.fetch.bytes).
    #[arg(
        long,
        env = "RILL_BENCH_FETCH_SIZE",
        default_value_t = 1024 * 1024,
        value_name = "BYTES"
    )]
    pub(super) fetch_size: usize,

    /// Give up when records are still missing and none arrives for this long (e.g. `10s`).
    #[arg(long, env = "RILL_BENCH_IDLE_TIMEOUT", default_value = "10s", value_parser = duration)]
    pub(super) idle_timeout: Duration,
}

/// How much to send, how big, how fast.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Load {
    /// Bytes of each record's value (keys are null). e2e needs at least 8: the value starts
    /// with the send instant.
    #[arg(
        long,
        env = "RILL_BENCH_RECORD_SIZE",
        default_value_t = 1024,
        value_name = "BYTES"
    )]
    pub(super) record_size: usize,

    #[command(flatten)]
    pub(super) length: Length,

    /// Target records per second across all producers; 0 sends as fast as possible. Records
    /// then leave on a fixed schedule, and latency counts from when each was due, so that a
    /// stall is charged to every record it held back (no coordinated omission).
    #[arg(
        long,
        env = "RILL_BENCH_RATE",
        default_value_t = 0,
        value_name = "RECORDS_PER_S"
    )]
    pub(super) rate: u64,

    /// Left out of every figure, before the measured part: a number of records (`50000`,
    /// across all producers) or a time (`5s`). Not counted in --records or --duration.
    #[arg(long, env = "RILL_BENCH_WARMUP", value_parser = warmup, value_name = "RECORDS|TIME")]
    pub(super) warmup: Option<Warmup>,
}

/// How long a run is: one of --records and --duration.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Length {
    /// Records to measure (all producers together). Exclusive with --duration; with neither,
    /// a run lasts 10 s.
    #[arg(long, env = "RILL_BENCH_RECORDS", value_name = "N")]
    pub(super) records: Option<u64>,

    /// How long to measure (`30s`, `2m`, `1h`). Exclusive with --records.
    #[arg(long, env = "RILL_BENCH_DURATION", value_parser = duration, value_name = "TIME")]
    pub(super) duration: Option<Duration>,
}

/// The default run length: long enough to see a trend, short enough to try things out.
pub(super) const DEFAULT_DURATION: Duration = Duration::from_secs(10);

/// What ends a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    /// After this many measured records.
    Records(u64),
    /// After this long measured.
    Time(Duration),
}

impl Length {
    /// The stop condition; `default` when neither flag is given (`None`: catch up).
    pub(super) fn stop(&self, default: Option<Stop>) -> anyhow::Result<Option<Stop>> {
        match (self.records, self.duration) {
            (Some(_), Some(_)) => {
                bail!("--records and --duration both given: a run stops on one of them")
            }
            (Some(0), None) => bail!("--records 0: measure at least one record"),
            (Some(n), None) => Ok(Some(Stop::Records(n))),
            (None, Some(d)) if d.is_zero() => bail!("--duration 0: measure for some time"),
            (None, Some(d)) => Ok(Some(Stop::Time(d))),
            (None, None) => Ok(default),
        }
    }
}

/// The warm-up: records or time left out of the figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Warmup {
    /// The first this many records.
    Records(u64),
    /// The first this long.
    Time(Duration),
}

/// Producer settings.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ProducerFlags {
    /// Acknowledgement to wait for: 0 (none), 1 (the leader wrote it) or all (-1: every
    /// in-sync replica; on Rill, after the fsync). Default all, as Kafka's producer.
    #[arg(long, env = "RILL_BENCH_ACKS", default_value = "all", value_parser = acks)]
    pub(super) acks: Acks,

    /// Batch codec: none, gzip, snappy, lz4 or zstd. Values are random capital letters (as in
    /// Kafka's perf test), so they compress about as well as text.
    #[arg(long, env = "RILL_BENCH_COMPRESSION", default_value = "none", value_parser = compression)]
    pub(super) compression: Compression,

    /// Partitions of the topic if it has to be created (default: the broker's). If the topic
    /// exists with another count, the run is refused rather than the topic changed.
    #[arg(long, env = "RILL_BENCH_PARTITIONS", value_name = "N")]
    pub(super) partitions: Option<i32>,

    /// Producer instances, each its own client and connections, sharing --rate and --records.
    #[arg(
        long,
        env = "RILL_BENCH_PRODUCERS",
        default_value_t = 1,
        value_name = "N"
    )]
    pub(super) producers: usize,

    /// Bytes per partition batched into one record batch (Kafka's batch.size). Default 1 MiB
    /// (librdkafka's batch.size is about that; the Java client's 16 KiB caps throughput on
    /// large records).
    #[arg(
        long,
        env = "RILL_BENCH_BATCH_SIZE",
        default_value_t = 1024 * 1024,
        value_name = "BYTES"
    )]
    pub(super) batch_size: usize,

    /// How long a batch waits for more records (Kafka's linger.ms), e.g. `5ms`, `0`.
    #[arg(long, env = "RILL_BENCH_LINGER", default_value = "5ms", value_parser = duration)]
    pub(super) linger: Duration,

    /// Idempotent producers (`true`/`false`). Default as Kafka's producer: on with acks=all,
    /// off otherwise (idempotence needs acks=all).
    #[arg(long, env = "RILL_BENCH_IDEMPOTENCE", value_name = "BOOL")]
    pub(super) idempotence: Option<bool>,

    /// Send in transactions: each producer gets a transactional id of its own
    /// (`<topic>-txn-<n>`) and commits every --transaction-size records it sends (and the
    /// rest at the end). Needs --acks all and idempotence. Throughput and latency count
    /// records when acknowledged, as without transactions; the time spent committing is part
    /// of the run. With e2e, the readers read committed records only, so latency includes
    /// the wait for the commit.
    #[arg(long, env = "RILL_BENCH_TRANSACTIONAL")]
    pub(super) transactional: bool,

    /// Records per transaction, counted per producer, with --transactional (default 1000).
    #[arg(long, env = "RILL_BENCH_TRANSACTION_SIZE", value_name = "N")]
    pub(super) transaction_size: Option<u64>,
}

/// Default --transaction-size.
pub(super) const DEFAULT_TRANSACTION_SIZE: u64 = 1000;

impl ProducerFlags {
    /// Whether the producers are idempotent, after checking --idempotence against --acks.
    pub(super) fn idempotence(&self) -> anyhow::Result<bool> {
        match self.idempotence {
            Some(true) if self.acks != Acks::All => {
                bail!("--idempotence true needs --acks all")
            }
            Some(false) if self.transactional => {
                bail!("--transactional needs idempotence: drop --idempotence false")
            }
            Some(on) => Ok(on),
            None => Ok(self.acks == Acks::All),
        }
    }

    /// Records per transaction when --transactional, after checking the flags together.
    pub(super) fn transaction_size(&self) -> anyhow::Result<Option<u64>> {
        match (self.transactional, self.transaction_size) {
            (false, None) => Ok(None),
            (false, Some(_)) => bail!("--transaction-size needs --transactional"),
            (true, _) if self.acks != Acks::All => bail!("--transactional needs --acks all"),
            (true, Some(0)) => bail!("--transaction-size 0: a transaction needs a record"),
            (true, size) => Ok(Some(size.unwrap_or(DEFAULT_TRANSACTION_SIZE))),
        }
    }
}

/// Flags of `consume`.
#[derive(Debug, clap::Args)]
pub(crate) struct ConsumeArgs {
    #[command(flatten)]
    pub(super) bootstrap: Bootstrap,

    /// Topic to read; it must exist.
    #[arg(long, env = "RILL_BENCH_TOPIC")]
    pub(super) topic: String,

    /// Where each partition starts: `beginning` (its oldest record) or `end` (records
    /// produced after the start).
    #[arg(
        long,
        env = "RILL_BENCH_FROM",
        default_value = "beginning",
        value_parser = ["beginning", "end"]
    )]
    pub(super) from: String,

    #[command(flatten)]
    pub(super) length: Length,

    /// Left out of every figure, before the measured part: a number of records or a time.
    #[arg(long, env = "RILL_BENCH_WARMUP", value_parser = warmup, value_name = "RECORDS|TIME")]
    pub(super) warmup: Option<Warmup>,

    /// Most bytes one fetch asks of each partition (Kafka's max.partition.fetch.bytes).
    #[arg(
        long,
        env = "RILL_BENCH_FETCH_SIZE",
        default_value_t = 1024 * 1024,
        value_name = "BYTES"
    )]
    pub(super) fetch_size: usize,

    /// Give up when no record arrives for this long while more are expected (e.g. `10s`).
    #[arg(long, env = "RILL_BENCH_IDLE_TIMEOUT", default_value = "10s", value_parser = duration)]
    pub(super) idle_timeout: Duration,

    #[command(flatten)]
    pub(super) output: Output,
}

/// Where the results go.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Output {
    /// Print the summary as one JSON object (figures and settings) for scripts, and no
    /// progress line.
    #[arg(long, env = "RILL_BENCH_JSON")]
    pub(crate) json: bool,

    /// Also draw throughput and latency per second into this SVG file.
    #[arg(long, env = "RILL_BENCH_PLOT", value_name = "FILE.svg")]
    pub(crate) plot: Option<PathBuf>,
}

impl ProduceArgs {
    /// Checks what clap cannot: sizes, counts and combinations.
    pub(super) fn validate(&self, e2e: bool) -> anyhow::Result<()> {
        let min = if e2e { 8 } else { 1 };
        ensure!(
            self.load.record_size >= min,
            "--record-size {}: {}",
            self.load.record_size,
            if e2e {
                "e2e needs at least 8 bytes (the value starts with the send instant)"
            } else {
                "records need at least 1 byte"
            }
        );
        ensure!(
            self.producer.producers >= 1,
            "--producers 0: at least one producer is needed"
        );
        ensure!(
            self.producer.batch_size >= 1,
            "--batch-size 0: batches need room for a record"
        );
        if let Some(p) = self.producer.partitions {
            ensure!(p >= 1, "--partitions {p}: a topic needs at least one");
        }
        if let Some(topic) = &self.topic {
            ensure!(!topic.is_empty(), "--topic is empty");
        }
        let _ = self.producer.idempotence()?;
        let _ = self.producer.transaction_size()?;
        let _ = self.load.length.stop(None)?;
        Ok(())
    }
}

impl E2eArgs {
    pub(super) fn validate(&self) -> anyhow::Result<()> {
        self.produce.validate(true)?;
        ensure!(
            self.fetch_size >= 1,
            "--fetch-size 0: a fetch needs room for a record"
        );
        Ok(())
    }
}

impl ConsumeArgs {
    pub(super) fn validate(&self) -> anyhow::Result<()> {
        ensure!(!self.topic.is_empty(), "--topic is empty");
        ensure!(
            self.fetch_size >= 1,
            "--fetch-size 0: a fetch needs room for a record"
        );
        if self.length.stop(None)?.is_none() && self.from == "end" {
            bail!(
                "--from end with neither --records nor --duration: there is nothing to catch up with"
            );
        }
        Ok(())
    }
}

/// `0`, `1`, `all` or `-1`.
fn acks(value: &str) -> Result<Acks, String> {
    match value {
        "0" => Ok(Acks::None),
        "1" => Ok(Acks::Leader),
        "all" | "-1" => Ok(Acks::All),
        other => Err(format!("{other:?} is not 0, 1, all or -1")),
    }
}

fn compression(value: &str) -> Result<Compression, String> {
    match value {
        "none" => Ok(Compression::None),
        "gzip" => Ok(Compression::Gzip),
        "snappy" => Ok(Compression::Snappy),
        "lz4" => Ok(Compression::Lz4),
        "zstd" => Ok(Compression::Zstd),
        other => Err(format!("{other:?} is not none, gzip, snappy, lz4 or zstd")),
    }
}

/// A humantime duration (`5ms`, `30s`, `2m`); a bare `0` is zero.
fn duration(value: &str) -> Result<Duration, String> {
    if value == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(value)
        .map_err(|err| format!("{value:?}: {err} (e.g. 500ms, 30s, 2m)"))
}

/// A record count (digits only) or a duration.
fn warmup(value: &str) -> Result<Warmup, String> {
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return value
            .parse()
            .map(Warmup::Records)
            .map_err(|err| format!("{value:?}: {err}"));
    }
    duration(value).map(Warmup::Time)
}

/// How a [`Warmup`] reads in the summary.
pub(super) fn warmup_text(warmup: Option<Warmup>) -> serde_json::Value {
    match warmup {
        None => serde_json::Value::Null,
        Some(Warmup::Records(n)) => serde_json::json!({ "records": n }),
        Some(Warmup::Time(d)) => serde_json::json!({ "seconds": d.as_secs_f64() }),
    }
}

/// `--acks` as Kafka writes it.
pub(super) fn acks_text(acks: Acks) -> &'static str {
    match acks {
        Acks::None => "0",
        Acks::Leader => "1",
        _ => "all",
    }
}

/// `--compression` as given.
pub(super) fn compression_text(compression: Compression) -> &'static str {
    match compression {
        Compression::Gzip => "gzip",
        Compression::Snappy => "snappy",
        Compression::Lz4 => "lz4",
        Compression::Zstd => "zstd",
        _ => "none",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_is_records_or_time() {
        assert_eq!(warmup("5000"), Ok(Warmup::Records(5000)));
        assert_eq!(warmup("5s"), Ok(Warmup::Time(Duration::from_secs(5))));
        assert!(warmup("five").is_err());
    }

    #[test]
    fn durations_take_units_and_a_bare_zero() {
        assert_eq!(duration("0"), Ok(Duration::ZERO));
        assert_eq!(duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(duration("10").is_err(), "a bare number has no unit");
    }

    #[test]
    fn length_is_one_of_records_and_duration() {
        let both = Length {
            records: Some(1),
            duration: Some(Duration::from_secs(1)),
        };
        assert!(both.stop(None).is_err());
        let none = Length {
            records: None,
            duration: None,
        };
        assert_eq!(none.stop(None).ok(), Some(None));
    }
}
