//! The reporter: merges the measuring tasks' seconds into one time series (for `--plot`) and,
//! on a terminal, prints a progress line on stderr once a second.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::Clock;
use super::stats::SecondReport;

/// How long after a second ends it is printed: the tasks hand over a finished second on
/// their next sample or timer tick (every [`TICK`]), so a little later all have.
const GRACE: Duration = Duration::from_millis(400);

/// How often a measuring task without samples checks whether its second is over.
pub(super) const TICK: Duration = Duration::from_millis(200);

/// One second of the run, all tasks together.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Point {
    /// Seconds since the run started (this point covers `second..second + 1`).
    pub(super) second: u64,
    pub(super) records: u64,
    pub(super) bytes: u64,
    /// Latency percentiles; `None` without samples.
    pub(super) latency_ms: Option<Spread>,
}

/// A second's latency percentiles, in ms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Spread {
    pub(super) p50: f64,
    pub(super) p99: f64,
    pub(super) max: f64,
}

struct Pending {
    records: u64,
    bytes: u64,
    latency: Histogram<u64>,
}

/// Starts the reporter. It ends, returning the series, once every sender is dropped.
pub(super) fn spawn(
    clock: Clock,
    live: bool,
    mut reports: mpsc::UnboundedReceiver<SecondReport>,
) -> JoinHandle<Vec<Point>> {
    tokio::spawn(async move {
        let mut pending: BTreeMap<u64, Pending> = BTreeMap::new();
        let mut done: Vec<Point> = Vec::new();
        let mut total = 0u64;
        let mut next = 0u64;
        loop {
            let due = clock.at((next + 1) * 1_000_000_000) + GRACE;
            tokio::select! {
                report = reports.recv() => match report {
                    Some(report) => merge(&mut pending, &mut done, report),
                    None => break,
                },
                () = tokio::time::sleep_until(due.into()) => {
                    let point = finalize(&mut pending, next);
                    total += point.records;
                    if live {
                        show(&point, total);
                    }
                    done.push(point);
                    next += 1;
                }
            }
        }
        // The rest, up to the last second anyone reported.
        let last = pending.keys().next_back().copied();
        if let Some(last) = last {
            for second in next..=last {
                done.push(finalize(&mut pending, second));
            }
        }
        if live {
            eprintln!();
        }
        // Trailing quiet seconds (the reporter ran past the last record) say nothing.
        while done.last().is_some_and(|p| p.records == 0) {
            let _ = done.pop();
        }
        done
    })
}

/// Adds a task's second: to the pending one, or to a point already shown (late: count and
/// bytes, and the max if it grew; its percentiles stay as shown).
fn merge(pending: &mut BTreeMap<u64, Pending>, done: &mut [Point], report: SecondReport) {
    if let Some(point) = done.iter_mut().find(|p| p.second == report.second) {
        point.records += report.records;
        point.bytes += report.bytes;
        if !report.latency.is_empty() {
            let max = ms(report.latency.max());
            point.latency_ms = Some(match point.latency_ms {
                Some(shown) => Spread {
                    max: shown.max.max(max),
                    ..shown
                },
                None => percentiles(&report.latency),
            });
        }
        return;
    }
    match pending.entry(report.second) {
        std::collections::btree_map::Entry::Vacant(slot) => {
            let _ = slot.insert(Pending {
                records: report.records,
                bytes: report.bytes,
                latency: report.latency,
            });
        }
        std::collections::btree_map::Entry::Occupied(mut slot) => {
            let p = slot.get_mut();
            p.records += report.records;
            p.bytes += report.bytes;
            // Same bounds everywhere: cannot fail.
            let _ = p.latency.add(&report.latency);
        }
    }
}

fn finalize(pending: &mut BTreeMap<u64, Pending>, second: u64) -> Point {
    match pending.remove(&second) {
        Some(p) => Point {
            second,
            records: p.records,
            bytes: p.bytes,
            latency_ms: (!p.latency.is_empty()).then(|| percentiles(&p.latency)),
        },
        None => Point {
            second,
            records: 0,
            bytes: 0,
            latency_ms: None,
        },
    }
}

fn percentiles(h: &Histogram<u64>) -> Spread {
    Spread {
        p50: ms(h.value_at_quantile(0.5)),
        p99: ms(h.value_at_quantile(0.99)),
        max: ms(h.max()),
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// `\r  12 s   185,234 records/s   189.7 MB/s   total 2,210,000   p99 4.12 ms`
fn show(point: &Point, total: u64) {
    let p99 = point
        .latency_ms
        .map_or_else(|| "-".to_owned(), |l| format!("{:.2} ms", l.p99));
    let line = format!(
        "\r{:>5} s  {:>11} records/s  {:>8.1} MB/s  total {:>13}  p99 {:<12}",
        point.second + 1,
        thousands(point.records),
        point.bytes as f64 / 1e6,
        thousands(total),
        p99,
    );
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(line.as_bytes());
    let _ = err.flush();
}

/// `1234567` as `1,234,567`.
pub(super) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
