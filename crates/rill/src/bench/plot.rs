//! `--plot FILE.svg`: throughput per second above, latency per second (p50, p99, max, on a
//! log scale so that a stall does not flatten the rest) below, on one time axis.

use std::path::Path;

use anyhow::{Context as _, anyhow};
use plotters::prelude::*;

use super::progress::{Point, Spread};
use super::report::Outcome;

const WIDTH: u32 = 1000;
const HEIGHT: u32 = 720;

/// Draws `outcome`'s time series into an SVG file at `path`.
pub(super) fn draw(path: &Path, outcome: &Outcome) -> anyhow::Result<()> {
    let svg = render(outcome)?;
    std::fs::write(path, svg).with_context(|| format!("writing the plot to {}", path.display()))
}

/// The SVG document.
fn render(outcome: &Outcome) -> anyhow::Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let title = format!(
            "rill bench {} - topic {} - {}",
            outcome.mode,
            outcome.topic,
            settings_line(outcome)
        );
        let root = root
            .titled(&title, ("sans-serif", 16))
            .map_err(plot_error)?;
        let (top, bottom) = root.split_vertically(HEIGHT / 2 - 20);
        throughput(&top, &outcome.series, outcome.totals.last_ns)?;
        latency(&bottom, &outcome.series, outcome.latency)?;
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

fn settings_line(outcome: &Outcome) -> String {
    let pick = [
        "record_size",
        "acks",
        "rate",
        "producers",
        "partitions",
        "compression",
    ];
    outcome
        .settings
        .as_object()
        .map(|m| {
            pick.iter()
                .filter_map(|k| m.get(*k).filter(|v| !v.is_null()).map(|v| (k, v)))
                .map(|(k, v)| match v.as_str() {
                    Some(text) => format!("{k}={text}"),
                    None => format!("{k}={v}"),
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// The end of the time axis: one past the last second.
fn x_end(series: &[Point]) -> f64 {
    series.last().map_or(1.0, |p| p.second as f64 + 1.0)
}

/// Records per second. The last second the run reached only part of is left out (its count
/// would read as a drop), unless it is the only one.
fn throughput<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    series: &[Point],
    end_ns: u64,
) -> anyhow::Result<()> {
    let x_end = x_end(series);
    let whole = series
        .iter()
        .take_while(|p| (p.second + 1).saturating_mul(1_000_000_000) <= end_ns)
        .count()
        .max(1)
        .min(series.len());
    let series = series.get(..whole).unwrap_or_default();
    let peak = series.iter().map(|p| p.records).max().unwrap_or(0).max(1) as f64;
    let mut chart = ChartBuilder::on(area)
        .caption("throughput per second", ("sans-serif", 14))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_end, 0.0..peak * 1.1)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("records/s")
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(plot_error)?;
    // Each second's count drawn at its middle.
    let points = series
        .iter()
        .map(|p| (p.second as f64 + 0.5, p.records as f64));
    let _ = chart
        .draw_series(LineSeries::new(points, BLUE.stroke_width(2)))
        .map_err(plot_error)?
        .label("records/s")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(plot_error)?;
    Ok(())
}

fn latency<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    series: &[Point],
    what: &str,
) -> anyhow::Result<()> {
    let with: Vec<(f64, Spread)> = series
        .iter()
        .filter_map(|p| p.latency_ms.map(|l| (p.second as f64 + 0.5, l)))
        .collect();
    // The log axis needs positive bounds; 1 µs is the histograms' resolution.
    let low = with
        .iter()
        .map(|(_, l)| l.p50)
        .fold(f64::INFINITY, f64::min);
    let low = if low.is_finite() {
        low.max(0.001)
    } else {
        0.001
    };
    let high = with
        .iter()
        .map(|(_, l)| l.max)
        .fold(0.0, f64::max)
        .max(low * 10.0);
    // Whole decades, so that the axis is labelled at 1, 10, 100...
    let low = 10f64.powf(low.log10().floor());
    let high = 10f64.powf(high.log10().ceil());
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!("latency per second, ms ({what})"),
            ("sans-serif", 14),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_end(series), (low..high).log_scale())
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("ms (log scale)")
        .y_label_formatter(&|v| format!("{v}"))
        .draw()
        .map_err(plot_error)?;
    let lines: [(&str, RGBColor, Pick); 3] = [
        ("p50", GREEN, |l| l.p50),
        ("p99", BLUE, |l| l.p99),
        ("max", RED, |l| l.max),
    ];
    for (name, color, pick) in lines {
        let points = with.iter().map(|(x, l)| (*x, pick(l).max(low)));
        let _ = chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(plot_error)?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(plot_error)?;
    Ok(())
}

/// Which percentile a line draws.
type Pick = fn(&Spread) -> f64;

fn plot_error(err: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("drawing the plot: {err}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::stats::{Templates, Totals};

    #[test]
    fn an_svg_with_both_charts() -> anyhow::Result<()> {
        let series = (0..5)
            .map(|s| Point {
                second: s,
                records: 1000 * (s + 1),
                bytes: 1_000_000,
                latency_ms: (s != 2).then_some(Spread {
                    p50: 1.0,
                    p99: 4.0,
                    max: 9.5,
                }),
            })
            .collect();
        let outcome = Outcome {
            mode: "produce",
            latency: "send to acknowledgement",
            topic: "t".to_owned(),
            totals: Totals::new(&Templates::new()?),
            series,
            settings: serde_json::json!({ "record_size": 1024, "acks": "1" }),
        };
        let svg = render(&outcome)?;
        assert!(
            svg.starts_with("<svg"),
            "{}",
            svg.get(..100).unwrap_or(&svg)
        );
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("throughput per second") && svg.contains("p99"));
        Ok(())
    }
}
