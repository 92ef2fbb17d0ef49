//! The summary: text for people or one JSON object for scripts on stdout, the plot if asked
//! for, and a non-zero exit when any record failed.

use std::io::IsTerminal as _;

use anyhow::bail;
use serde::Serialize;

use super::args::Output;
use super::plot;
use super::progress::{Point, thousands};
use super::stats::Totals;

/// What a run produced.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(super) mode: &'static str,
    /// What latency means in this mode.
    pub(super) latency: &'static str,
    pub(super) topic: String,
    pub(super) totals: Totals,
    pub(super) series: Vec<Point>,
    pub(super) settings: serde_json::Value,
}

/// Whether the progress line is shown: on a terminal, without `--json`.
pub(super) fn live(output: &Output) -> bool {
    !output.json && std::io::stderr().is_terminal()
}

/// The summary as printed with `--json`.
#[derive(Debug, Serialize)]
struct Summary<'a> {
    mode: &'a str,
    topic: &'a str,
    /// Measured records (warm-up excluded).
    records: u64,
    warmup_records: u64,
    errors: u64,
    first_error: Option<&'a str>,
    /// Value bytes of the measured records.
    bytes: u64,
    seconds: f64,
    records_per_s: f64,
    /// Value bytes per second, in MB of 10^6 bytes.
    mb_per_s: f64,
    latency: &'a str,
    /// `None` when no measured record has a latency.
    latency_ms: Option<Latency>,
    settings: &'a serde_json::Value,
}

#[derive(Debug, Serialize)]
struct Latency {
    p50: f64,
    p90: f64,
    p99: f64,
    p99_9: f64,
    max: f64,
    mean: f64,
}

fn summary(outcome: &Outcome) -> Summary<'_> {
    let t = &outcome.totals;
    let seconds = t.seconds();
    let per_second = |x: u64| {
        if seconds > 0.0 {
            x as f64 / seconds
        } else {
            0.0
        }
    };
    let ms = |us: u64| us as f64 / 1000.0;
    Summary {
        mode: outcome.mode,
        topic: &outcome.topic,
        records: t.records,
        warmup_records: t.warmup_records,
        errors: t.errors,
        first_error: t.first_error.as_deref(),
        bytes: t.bytes,
        seconds,
        records_per_s: per_second(t.records),
        mb_per_s: per_second(t.bytes) / 1e6,
        latency: outcome.latency,
        latency_ms: (!t.latency.is_empty()).then(|| Latency {
            p50: ms(t.latency.value_at_quantile(0.5)),
            p90: ms(t.latency.value_at_quantile(0.9)),
            p99: ms(t.latency.value_at_quantile(0.99)),
            p99_9: ms(t.latency.value_at_quantile(0.999)),
            max: ms(t.latency.max()),
            mean: t.latency.mean() / 1000.0,
        }),
        settings: &outcome.settings,
    }
}

/// Prints the summary, writes the plot, and fails if any record did.
pub(super) fn finish(output: &Output, outcome: &Outcome) -> anyhow::Result<()> {
    let s = summary(outcome);
    if output.json {
        println!("{}", serde_json::to_string(&s)?);
    } else {
        print!("{}", text(&s));
    }
    if let Some(path) = &output.plot {
        plot::draw(path, outcome)?;
    }
    if s.errors > 0 {
        bail!(
            "{} of {} records failed; the first: {}",
            s.errors,
            s.records + s.warmup_records + s.errors,
            s.first_error.unwrap_or("?")
        );
    }
    Ok(())
}

fn text(s: &Summary<'_>) -> String {
    let mut out = format!(
        "{} '{}': {} records in {:.3} s",
        s.mode,
        s.topic,
        thousands(s.records),
        s.seconds
    );
    if s.warmup_records > 0 {
        out.push_str(&format!(
            " (after {} warm-up records)",
            thousands(s.warmup_records)
        ));
    }
    out.push('\n');
    out.push_str(&format!(
        "  throughput  {} records/s, {:.1} MB/s (value bytes, MB = 10^6 bytes)\n",
        thousands(s.records_per_s.round() as u64),
        s.mb_per_s
    ));
    match &s.latency_ms {
        Some(l) => out.push_str(&format!(
            "  latency ms  p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}  ({})\n",
            l.p50, l.p90, l.p99, l.p99_9, l.max, s.latency
        )),
        None => out.push_str("  latency     none measured\n"),
    }
    out.push_str(&format!("  errors      {}", s.errors));
    if let Some(first) = s.first_error {
        out.push_str(&format!(" (first: {first})"));
    }
    out.push('\n');
    let settings = s
        .settings
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| match v.as_str() {
                    Some(text) => format!("{k}={text}"),
                    None => format!("{k}={v}"),
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    out.push_str(&format!("  settings    {settings}\n"));
    out
}
