//! `rill bench` against the real broker: tiny produce, consume and e2e runs whose JSON
//! summaries must add up, whose records must really be in the log at the expected offsets,
//! and whose bad input must fail fast with one line. No assertion is about speed.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use common::{Broker, CLIENT_TIMEOUT, Result, RunOutput, connect, list_offset, log_end, run};
use serde_json::Value;

/// Runs `rill bench ARGS` (bounded by [`CLIENT_TIMEOUT`]).
fn bench(args: &[&str]) -> Result<RunOutput> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rill"));
    let _ = command.arg("bench").args(args).env_remove("RILL_BOOTSTRAP");
    run(command, b"", CLIENT_TIMEOUT)
}

/// Runs `rill bench MODE -b BROKER ARGS --json`, which must succeed; its summary.
fn bench_json(broker: &Broker, mode: &str, args: &[&str]) -> Result<Value> {
    let bootstrap = broker.bootstrap();
    let mut all = vec![mode, "-b", bootstrap.as_str()];
    all.extend_from_slice(args);
    all.push("--json");
    let out = bench(&all)?;
    ensure!(
        out.status.success(),
        "rill bench {all:?} failed ({}):\n{}",
        out.status,
        out.stderr
    );
    let summary: Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "rill bench {all:?} printed no JSON: {}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            out.stderr
        )
    })?;
    check_summary(&summary)?;
    Ok(summary)
}

/// What every successful summary satisfies: no errors, positive rates, ordered percentiles.
fn check_summary(s: &Value) -> Result<()> {
    ensure!(s["errors"] == 0, "errors in {s}");
    ensure!(s["first_error"].is_null(), "an error in {s}");
    for rate in ["seconds", "records_per_s", "mb_per_s"] {
        ensure!(num(s, rate)? > 0.0, "{rate} is not positive in {s}");
    }
    let l = &s["latency_ms"];
    let (p50, p90, p99, p999, max) = (
        num(l, "p50")?,
        num(l, "p90")?,
        num(l, "p99")?,
        num(l, "p99_9")?,
        num(l, "max")?,
    );
    ensure!(
        0.0 <= p50 && p50 <= p90 && p90 <= p99 && p99 <= p999 && p999 <= max,
        "percentiles out of order in {l}"
    );
    Ok(())
}

fn num(v: &Value, field: &str) -> Result<f64> {
    v[field]
        .as_f64()
        .with_context(|| format!("no number {field} in {v}"))
}

fn count(v: &Value, field: &str) -> Result<u64> {
    v[field]
        .as_u64()
        .with_context(|| format!("no count {field} in {v}"))
}

/// Per partition `(log start, log end)`, by ListOffsets over a raw connection.
fn offsets(broker: &Broker, topic: &str, partitions: i32) -> Result<Vec<(i64, i64)>> {
    let mut stream = connect(broker)?;
    (0..partitions)
        .map(|p| {
            let (code, start) = list_offset(&mut stream, topic, p, -2, 2 * p + 1)?;
            ensure!(
                code == 0,
                "ListOffsets earliest of {topic}/{p}: error {code}"
            );
            Ok((start, log_end(&mut stream, topic, p, 2 * p + 2)?))
        })
        .collect()
}

/// The records in `topic`: each partition must start at offset 0.
fn records_in(broker: &Broker, topic: &str, partitions: i32) -> Result<i64> {
    let offsets = offsets(broker, topic, partitions)?;
    ensure!(
        offsets.iter().all(|&(start, _)| start == 0),
        "log starts: {offsets:?}"
    );
    Ok(offsets.iter().map(|&(_, end)| end).sum())
}

/// A failed run: non-zero exit, one line on stderr starting `rill: error:`; returns it.
fn one_line_error(out: &RunOutput) -> Result<String> {
    ensure!(
        !out.status.success(),
        "succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let lines: Vec<&str> = out.stderr.lines().filter(|l| !l.is_empty()).collect();
    ensure!(
        lines.len() == 1 && lines[0].starts_with("rill: error: "),
        "expected one error line, got:\n{}",
        out.stderr
    );
    Ok(lines[0].to_owned())
}

#[test]
fn produce_writes_every_record_it_reports_and_consume_reads_them_back() -> Result<()> {
    let broker = Broker::start()?;
    let topic = broker.topic("bench-produce");
    let s = bench_json(
        &broker,
        "produce",
        &[
            "--topic",
            &topic,
            "--records",
            "2000",
            "--record-size",
            "100",
            "--partitions",
            "2",
            "--acks",
            "1",
        ],
    )?;
    assert_eq!(count(&s, "records")?, 2000);
    assert_eq!(count(&s, "bytes")?, 2000 * 100);
    assert_eq!(count(&s, "warmup_records")?, 0);
    assert_eq!(s["mode"], "produce");
    assert_eq!(s["settings"]["acks"], "1");
    assert_eq!(s["settings"]["partitions"], 2);
    assert_eq!(s["settings"]["idempotence"], false, "off without acks=all");
    assert_eq!(records_in(&broker, &topic, 2)?, 2000);

    // Consume catches up with exactly what is there, value bytes included.
    let c = bench_json(&broker, "consume", &["--topic", &topic])?;
    assert_eq!(count(&c, "records")?, 2000);
    assert_eq!(count(&c, "bytes")?, 2000 * 100);
    assert_eq!(c["settings"]["catch_up_records"], 2000);
    // And stops after --records.
    let c = bench_json(
        &broker,
        "consume",
        &["--topic", &topic, "--records", "1500"],
    )?;
    assert_eq!(count(&c, "records")?, 1500);
    assert_eq!(count(&c, "bytes")?, 1500 * 100);
    // Asked for more than will ever come: it gives up once nothing arrives for a while.
    let b = broker.bootstrap();
    let out = bench(&[
        "consume",
        "-b",
        &b,
        "--topic",
        &topic,
        "--records",
        "5000",
        "--idle-timeout",
        "1s",
    ])?;
    let line = one_line_error(&out)?;
    ensure!(
        line.contains("no record arrived for 1s: read 2000 of 5000"),
        "{line}"
    );
    Ok(())
}

#[test]
fn idempotent_compressed_producers_share_the_records_and_the_warmup() -> Result<()> {
    let broker = Broker::start()?;
    let topic = broker.topic("bench-shared");
    let s = bench_json(
        &broker,
        "produce",
        &[
            "--topic",
            &topic,
            "--records",
            "2001",
            "--warmup",
            "500",
            "--producers",
            "2",
            "--partitions",
            "3",
            "--compression",
            "zstd",
            "--record-size",
            "300",
            "--batch-size",
            "4096",
            "--linger",
            "1ms",
        ],
    )?;
    assert_eq!(count(&s, "records")?, 2001);
    assert_eq!(count(&s, "warmup_records")?, 500);
    assert_eq!(s["settings"]["acks"], "all");
    assert_eq!(s["settings"]["idempotence"], true, "on with acks=all");
    assert_eq!(records_in(&broker, &topic, 3)?, 2501);
    let c = bench_json(&broker, "consume", &["--topic", &topic])?;
    assert_eq!(count(&c, "records")?, 2501);
    assert_eq!(count(&c, "bytes")?, 2501 * 300);
    Ok(())
}

#[test]
fn transactional_produce_commits_every_transaction() -> Result<()> {
    let broker = Broker::start()?;
    let topic = broker.topic("bench-txn");
    let s = bench_json(
        &broker,
        "produce",
        &[
            "--topic",
            &topic,
            "--records",
            "45",
            "--record-size",
            "32",
            "--partitions",
            "1",
            "--transactional",
            "--transaction-size",
            "10",
        ],
    )?;
    assert_eq!(count(&s, "records")?, 45);
    assert_eq!(s["settings"]["transaction_size"], 10);
    assert_eq!(s["settings"]["idempotence"], true);
    // 45 records in 5 transactions, each ended by a commit marker (the last one lands just
    // after the commit returns): none was left open, or the readers below would stall.
    common::wait_until("the last commit marker", Duration::from_secs(10), || {
        Ok((records_in(&broker, &topic, 1)? == 50).then_some(()))
    })?;
    // Catching up stops at the end even though the last offset is a marker.
    let c = bench_json(&broker, "consume", &["--topic", &topic])?;
    assert_eq!(count(&c, "records")?, 45);
    let (stdout, _) = common::rill_ok(
        &broker.bootstrap(),
        &[
            "consume",
            &topic,
            "--from-beginning",
            "-e",
            "--isolation-level",
            "read_committed",
            "-f",
            "%o\\n",
        ],
        b"",
    )?;
    let offsets: Vec<i64> = stdout.lines().filter_map(|l| l.parse().ok()).collect();
    let want: Vec<i64> = (0..49).filter(|o| o % 11 != 10).collect();
    ensure!(offsets == want, "read_committed offsets {offsets:?}");

    // e2e's readers read committed records: each arrives once its transaction commits.
    let e = bench_json(
        &broker,
        "e2e",
        &[
            "--records",
            "30",
            "--record-size",
            "16",
            "--transactional",
            "--transaction-size",
            "7",
        ],
    )?;
    assert_eq!(count(&e, "records")?, 30);
    Ok(())
}

#[test]
fn e2e_reads_every_record_it_sent() -> Result<()> {
    let broker = Broker::start()?;
    let s = bench_json(
        &broker,
        "e2e",
        &[
            "--records",
            "2000",
            "--record-size",
            "64",
            "--partitions",
            "2",
        ],
    )?;
    assert_eq!(s["mode"], "e2e");
    assert_eq!(count(&s, "records")?, 2000);
    assert_eq!(count(&s, "bytes")?, 2000 * 64);
    let topic = s["topic"].as_str().context("no topic")?;
    ensure!(topic.starts_with("rill-bench-"), "topic {topic}");
    assert_eq!(records_in(&broker, topic, 2)?, 2000);
    Ok(())
}

#[test]
fn duration_ends_the_run_and_rate_paces_it() -> Result<()> {
    let broker = Broker::start()?;
    // The schedule, not the clock, decides what is sent: 400/s for 2 s is 800 records,
    // give or take the ones due at the edges.
    let s = bench_json(
        &broker,
        "produce",
        &["--duration", "2s", "--rate", "400", "--record-size", "50"],
    )?;
    let records = count(&s, "records")?;
    ensure!((700..=900).contains(&records), "{records} records");
    let topic = s["topic"].as_str().context("no topic")?;
    assert_eq!(records_in(&broker, topic, 1)?, i64::try_from(records)?);
    // Without a rate, --duration still ends it.
    let s = bench_json(
        &broker,
        "e2e",
        &["--duration", "1s", "--record-size", "16", "--acks", "1"],
    )?;
    ensure!(count(&s, "records")? > 0, "{s}");
    let topic = s["topic"].as_str().context("no topic")?;
    assert_eq!(
        records_in(&broker, topic, 1)?,
        i64::try_from(count(&s, "records")?)?
    );
    Ok(())
}

#[test]
fn acks_zero_sends_everything_unacknowledged() -> Result<()> {
    let broker = Broker::start()?;
    let topic = broker.topic("bench-acks0");
    let s = bench_json(
        &broker,
        "produce",
        &["--topic", &topic, "--records", "2000", "--acks", "0"],
    )?;
    assert_eq!(count(&s, "records")?, 2000);
    // Nothing answers acks=0: wait (bounded) for the broker to have appended it all.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n = records_in(&broker, &topic, 1)?;
        if n == 2000 {
            return Ok(());
        }
        ensure!(n < 2000, "{n} records in the log");
        if Instant::now() > deadline {
            bail!("only {n} of 2000 records in the log");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn plot_writes_an_svg_document() -> Result<()> {
    let broker = Broker::start()?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("bench.svg");
    let path_text = path.to_string_lossy().into_owned();
    let _ = bench_json(
        &broker,
        "e2e",
        &[
            "--records",
            "2000",
            "--record-size",
            "32",
            "--plot",
            &path_text,
        ],
    )?;
    check_svg(&path)
}

/// A well-formed SVG with both charts and a drawn line.
fn check_svg(path: &Path) -> Result<()> {
    let svg = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    ensure!(svg.starts_with("<svg") && svg.contains("xmlns=\"http://www.w3.org/2000/svg\""));
    ensure!(svg.trim_end().ends_with("</svg>"), "unterminated SVG");
    for text in [
        "throughput per second",
        "latency per second",
        "p50",
        "p99",
        "max",
    ] {
        ensure!(svg.contains(text), "no {text:?} in the plot");
    }
    ensure!(svg.contains("<polyline"), "no line drawn");
    // Every element closed: parse it as XML.
    let mut command = Command::new(common::python()?);
    let _ = command
        .args([
            "-c",
            "import sys, xml.etree.ElementTree as E; E.parse(sys.argv[1])",
        ])
        .arg(path);
    let out = run(command, b"", CLIENT_TIMEOUT)?;
    ensure!(out.status.success(), "not well-formed XML:\n{}", out.stderr);
    Ok(())
}

#[test]
fn bad_input_fails_with_one_line_and_no_hang() -> Result<()> {
    let broker = Broker::start()?;
    let b = broker.bootstrap();
    let cases: [(&[&str], &str); 10] = [
        (
            &["produce", "-b", &b, "--record-size", "0"],
            "--record-size 0",
        ),
        (
            &["produce", "-b", &b, "--records", "10", "--duration", "1s"],
            "--records and --duration",
        ),
        (&["e2e", "-b", &b, "--record-size", "4"], "at least 8"),
        (
            &["consume", "-b", &b, "--topic", "missing"],
            "'missing' does not exist",
        ),
        (
            &["consume", "-b", &b, "--topic", "missing", "--from", "end"],
            "--from end",
        ),
        (
            &["produce", "-b", &b, "--acks", "1", "--idempotence", "true"],
            "--idempotence true needs --acks all",
        ),
        (&["produce", "-b", &b, "--producers", "0"], "--producers 0"),
        (
            &["produce", "-b", &b, "--transaction-size", "5"],
            "--transaction-size needs --transactional",
        ),
        (
            &["produce", "-b", &b, "--transactional", "--acks", "1"],
            "--transactional needs --acks all",
        ),
        (
            &[
                "produce",
                "-b",
                &b,
                "--transactional",
                "--idempotence",
                "false",
            ],
            "--transactional needs idempotence",
        ),
    ];
    for (args, says) in cases {
        let line = one_line_error(&bench(args)?).with_context(|| format!("{args:?}"))?;
        ensure!(line.contains(says), "{args:?}: {line}");
    }
    // Nothing was created by asking.
    let mut stream = connect(&broker)?;
    let (code, _) = list_offset(&mut stream, "missing", 0, -1, 1)?;
    ensure!(
        code == 3,
        "ListOffsets of 'missing' answered {code}, not UNKNOWN_TOPIC"
    );

    // A topic that exists with another partition count is refused, not changed.
    let topic = broker.topic("bench-two");
    let _ = bench_json(
        &broker,
        "produce",
        &["--topic", &topic, "--records", "10", "--partitions", "2"],
    )?;
    let line = one_line_error(&bench(&[
        "produce",
        "-b",
        &b,
        "--topic",
        &topic,
        "--records",
        "10",
        "--partitions",
        "3",
    ])?)?;
    ensure!(line.contains("has 2 partitions"), "{line}");
    assert_eq!(records_in(&broker, &topic, 2)?, 10);

    // Nobody listening: the first request fails, at once, naming the address.
    let port = common::free_port()?;
    let nobody = format!("127.0.0.1:{port}");
    for mode in ["produce", "consume", "e2e"] {
        let out = bench(&[mode, "-b", &nobody, "--topic", "t", "--records", "10"])?;
        let line = one_line_error(&out)?;
        ensure!(
            line.contains("cannot reach the cluster") && line.contains(&nobody),
            "{mode}: {line}"
        );
    }
    Ok(())
}
