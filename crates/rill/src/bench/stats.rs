//! What a measuring task keeps: its own histograms and counters ([`Recorder`]), handed to the
//! reporter a second at a time and merged with the other tasks' at the end ([`Totals`]).
//! Nothing here is shared between tasks, so recording a sample takes no lock.

use std::fmt::Display;

use anyhow::Context as _;
use hdrhistogram::Histogram;
use tokio::sync::mpsc;

/// Latencies are recorded in microseconds, from 1 µs up to a day; a larger value counts as a
/// day (a consumer reading week-old records sees their age clamped).
const HIGHEST_US: u64 = 24 * 3600 * 1_000_000;

/// Set in a send instant (a record's tag, the first bytes of an e2e value) when the record
/// belongs to the warm-up. Instants are nanoseconds since the run started, far below 2^63.
pub(super) const WARM_BIT: u64 = 1 << 63;

const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// Empty histograms to clone: 3 significant digits for the totals, 2 (1 %) for the
/// per-second ones, which are many and only drawn.
#[derive(Debug, Clone)]
pub(super) struct Templates {
    total: Histogram<u64>,
    second: Histogram<u64>,
}

impl Templates {
    pub(super) fn new() -> anyhow::Result<Self> {
        Ok(Self {
            total: Histogram::new_with_bounds(1, HIGHEST_US, 3).context("latency histogram")?,
            second: Histogram::new_with_bounds(1, HIGHEST_US, 2).context("latency histogram")?,
        })
    }

    pub(super) fn second(&self) -> Histogram<u64> {
        self.second.clone()
    }
}

/// One task's figures for one second of the run (by the instant a record was measured).
#[derive(Debug)]
pub(super) struct SecondReport {
    /// Seconds since the run started.
    pub(super) second: u64,
    pub(super) records: u64,
    pub(super) bytes: u64,
    /// Latencies in microseconds; empty when the mode measures none.
    pub(super) latency: Histogram<u64>,
}

/// A measuring task's own figures.
#[derive(Debug)]
pub(super) struct Recorder {
    templates: Templates,
    totals: Totals,
    current: SecondReport,
    reports: mpsc::UnboundedSender<SecondReport>,
}

impl Recorder {
    pub(super) fn new(templates: &Templates, reports: mpsc::UnboundedSender<SecondReport>) -> Self {
        Self {
            templates: templates.clone(),
            totals: Totals::new(templates),
            current: SecondReport {
                second: 0,
                records: 0,
                bytes: 0,
                latency: templates.second(),
            },
            reports,
        }
    }

    /// Records `count` records of `bytes` value bytes in all, measured at `now_ns`, each with
    /// its own latency from `latencies_ns`. `warm` records count in the per-second series
    /// only. `started_ns` is when the first of them was sent (the measured window opens at
    /// the earliest).
    pub(super) fn records(
        &mut self,
        now_ns: u64,
        started_ns: u64,
        bytes: u64,
        count: u64,
        warm: bool,
        latencies_ns: impl Iterator<Item = u64>,
    ) {
        self.roll(now_ns);
        self.current.records += count;
        self.current.bytes += bytes;
        if warm {
            self.totals.warmup_records += count;
            for latency in latencies_ns {
                self.current.latency.saturating_record(micros(latency));
            }
            return;
        }
        self.totals.records += count;
        self.totals.bytes += bytes;
        self.totals.first_ns = Some(
            self.totals
                .first_ns
                .map_or(started_ns, |f| f.min(started_ns)),
        );
        self.totals.last_ns = self.totals.last_ns.max(now_ns);
        for latency in latencies_ns {
            let us = micros(latency);
            self.current.latency.saturating_record(us);
            self.totals.latency.saturating_record(us);
        }
    }

    /// One record that failed (any record: warm-up or not).
    pub(super) fn error(&mut self, error: impl Display) {
        self.totals.errors += 1;
        if self.totals.first_error.is_none() {
            self.totals.first_error = Some(format!("{error:#}"));
        }
    }

    /// Hands the current second to the reporter if `now_ns` lies past it. Called on every
    /// sample and from a timer, so that a quiet second is reported too.
    pub(super) fn roll(&mut self, now_ns: u64) {
        let second = now_ns / NANOS_PER_SECOND;
        if second == self.current.second {
            return;
        }
        let fresh = SecondReport {
            second,
            records: 0,
            bytes: 0,
            latency: if self.current.latency.is_empty() {
                // Nothing recorded: keep the allocation.
                std::mem::replace(&mut self.current.latency, self.templates.second())
            } else {
                self.templates.second()
            },
        };
        let done = std::mem::replace(&mut self.current, fresh);
        if done.records > 0 {
            // The reporter is gone only when the run is over.
            let _ = self.reports.send(done);
        }
    }

    /// The totals, after handing over the last second.
    pub(super) fn finish(mut self) -> Totals {
        let done = std::mem::replace(
            &mut self.current,
            SecondReport {
                second: 0,
                records: 0,
                bytes: 0,
                latency: self.templates.second(),
            },
        );
        if done.records > 0 {
            let _ = self.reports.send(done);
        }
        self.totals
    }
}

/// Figures over the measured part of a run (warm-up excluded), one task's or merged.
#[derive(Debug, Clone)]
pub(super) struct Totals {
    pub(super) records: u64,
    pub(super) bytes: u64,
    pub(super) warmup_records: u64,
    pub(super) errors: u64,
    pub(super) first_error: Option<String>,
    /// When the measured part began: the earliest send of a measured record (for consume,
    /// set by the mode).
    pub(super) first_ns: Option<u64>,
    /// When the last measured record was acknowledged or read.
    pub(super) last_ns: u64,
    /// Latencies of measured records, in microseconds.
    pub(super) latency: Histogram<u64>,
}

impl Totals {
    pub(super) fn new(templates: &Templates) -> Self {
        Self {
            records: 0,
            bytes: 0,
            warmup_records: 0,
            errors: 0,
            first_error: None,
            first_ns: None,
            last_ns: 0,
            latency: templates.total.clone(),
        }
    }

    pub(super) fn merge(&mut self, other: &Self) {
        self.records += other.records;
        self.bytes += other.bytes;
        self.warmup_records += other.warmup_records;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error.clone_from(&other.first_error);
        }
        self.first_ns = match (self.first_ns, other.first_ns) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last_ns = self.last_ns.max(other.last_ns);
        // Same bounds on both sides, so adding cannot fail; a failure would only lose samples.
        let _ = self.latency.add(&other.latency);
    }

    /// Seconds from the first measured send (or the start of the measured part) to the last
    /// measured record.
    pub(super) fn seconds(&self) -> f64 {
        let first = self.first_ns.unwrap_or(self.last_ns);
        self.last_ns.saturating_sub(first) as f64 / NANOS_PER_SECOND as f64
    }
}

fn micros(ns: u64) -> u64 {
    ns / 1_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_records_stay_out_of_the_totals_but_in_the_seconds() -> anyhow::Result<()> {
        let templates = Templates::new()?;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut recorder = Recorder::new(&templates, tx);
        recorder.records(100, 0, 10, 1, true, [5_000].into_iter());
        recorder.records(
            NANOS_PER_SECOND + 5,
            NANOS_PER_SECOND,
            20,
            2,
            false,
            [1_000_000, 3_000_000].into_iter(),
        );
        recorder.error("boom");
        let totals = recorder.finish();
        assert_eq!(
            (totals.records, totals.bytes, totals.warmup_records),
            (2, 20, 1)
        );
        assert_eq!(
            (totals.errors, totals.first_error.as_deref()),
            (1, Some("boom"))
        );
        assert_eq!(totals.first_ns, Some(NANOS_PER_SECOND));
        assert_eq!(totals.latency.len(), 2);
        let first = rx.try_recv()?;
        assert_eq!(
            (first.second, first.records, first.latency.len()),
            (0, 1, 1)
        );
        let second = rx.try_recv()?;
        assert_eq!((second.second, second.records, second.bytes), (1, 2, 20));
        assert!(rx.try_recv().is_err());
        Ok(())
    }
}
