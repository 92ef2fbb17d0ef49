//! `rill bench`: throughput and latency of any Kafka-compatible broker, measured with
//! `rill-client` (Kafka's `kafka-producer-perf-test.sh` and `kafka-consumer-perf-test.sh` in
//! one, plus an end-to-end mode).
//!
//! - `produce`: `--producers` async producers, each its own client; latency is send to
//!   acknowledgement per record.
//! - `consume`: one partition consumer per partition, catching up to the end offsets read at
//!   the start (or `--records`/`--duration`); latency is the record's age when read.
//! - `e2e`: producers and consumers in one process on one topic; latency is send to consume,
//!   the send instant carried in the first 8 bytes of each value.
//!
//! How the figures are kept honest and cheap:
//! - With `--rate`, records are sent on a schedule and latency counts from the *intended* send
//!   instant, so a stall that holds sends back is charged to every record it delayed
//!   (coordinated omission); the pacer's own timer lateness is not (see `produce.rs`).
//! - Every task that measures owns its histograms ([`stats::Recorder`]); once a second it
//!   hands the finished second to the reporter over a channel, and at the end its totals are
//!   merged. No lock is taken per record.
//! - Every record sent ends as a success or an error, both counted; any error makes the exit
//!   code non-zero after the summary is printed.
//!
//! Layout: `args.rs` (flags), `setup.rs` (reaching the cluster, the topic), `stats.rs`
//! (histograms, warm-up, per-second data), `progress.rs` (the live line and the time
//! series), `produce.rs`, `consume.rs`, `e2e.rs`, `report.rs` (summary and JSON), `plot.rs`.

mod args;
mod consume;
mod e2e;
mod plot;
mod produce;
mod progress;
mod report;
mod setup;
mod stats;

use std::time::Instant;

pub(crate) use args::Args;

/// The run's clock: nanoseconds since the instant the run started. Send instants travel as
/// these (in a record's tag or value), so they are plain `u64`s.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    base: Instant,
}

impl Clock {
    fn start() -> Self {
        Self {
            base: Instant::now(),
        }
    }

    /// Nanoseconds since the start.
    fn now_ns(self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// The instant `ns` nanoseconds after the start.
    fn at(self, ns: u64) -> Instant {
        self.base + std::time::Duration::from_nanos(ns)
    }
}

impl Args {
    pub(crate) fn run(self) -> anyhow::Result<()> {
        let output = self.output().clone();
        let outcome = crate::cli::block_on(async move {
            match self.mode {
                args::Mode::Produce(args) => produce::run(args).await,
                args::Mode::Consume(args) => consume::run(args).await,
                args::Mode::E2e(args) => e2e::run(args).await,
            }
        })??;
        report::finish(&output, &outcome)
    }
}
