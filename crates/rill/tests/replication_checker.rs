//! The short form of the replication checker (`scripts/checker.py`, described in
//! `docs/reliability.md`): three brokers of this test's `rill`, a topic of three partitions at
//! replication factor [`RF`], an acks=all idempotent librdkafka producer and a consumer, and
//! three faults (kill -9 of a partition's leader, kill -9 of a follower, SIGSTOP of a leader
//! for longer than the broker session timeout). It passes when every acknowledged record is
//! read back exactly once at its acknowledged offset, no consumer saw an offset that later held
//! other data, and the replicas' logs are byte-identical below the high watermark. A second
//! run on four brokers moves partitions to other brokers (AlterPartitionReassignments), one
//! move with its leader killed in the middle. The
//! checker's own checks must fail on histories made wrong on purpose (`--self-test`).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use common::{Result, python, run};

/// The topic's replication factor. Partition replication (Raft per partition) turns this on:
/// until it lands the broker refuses a replication factor above 1, and this test fails at
/// topic creation. Set it to "1" to run the checker against a broker without replication.
const RF: &str = "3";

/// Bound on the whole checker run (about 20 s on two cores at RF 1; the checker gives up 10 s
/// before this on its own, cleaning up).
const LIMIT: Duration = Duration::from_secs(150);

/// `scripts/checker.py ARGS` with the venv's Python.
fn checker(args: &[&str]) -> Result<Command> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/checker.py");
    let mut command = Command::new(python()?);
    let _ = command.arg("-u").arg(script).args(args);
    Ok(command)
}

#[test]
fn checker_checks_fail_on_wrong_histories() -> Result<()> {
    let out = run(checker(&["--self-test"])?, b"", Duration::from_secs(60))?;
    let stdout = out.stdout_text();
    ensure!(
        out.status.success() && stdout.contains("self-test: PASS "),
        "checker.py --self-test ({}):\n{stdout}\n{}",
        out.status,
        out.stderr
    );
    Ok(())
}

/// Runs the checker on `brokers` brokers with `faults`, `rounds` of them, and checks it passes
/// with nothing lost, duplicated, moved or seen differently.
fn checker_passes(brokers: &str, faults: &str, rounds: &str) -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("rill-replication-checker-")
        .tempdir()?;
    let mut command = checker(&[])?;
    let _ = command
        .args(["--brokers", brokers, "--rf", RF, "--partitions", "3"])
        .args(["--faults", faults])
        .args(["--rounds", rounds, "--seconds-per-fault", "3"])
        .args(["--timeout", &(LIMIT.as_secs() - 10).to_string()])
        .arg("--rill")
        .arg(env!("CARGO_BIN_EXE_rill"))
        .arg("--dir")
        .arg(dir.path());
    let started = Instant::now();
    let out = run(command, b"", LIMIT)?;
    let stdout = out.stdout_text();
    eprintln!("checker ran {:?}:\n{stdout}", started.elapsed());
    let result = stdout
        .lines()
        .rfind(|line| line.starts_with("checker: "))
        .with_context(|| format!("no result line; stderr:\n{}", out.stderr))?;
    ensure!(
        out.status.success() && result.starts_with("checker: PASS "),
        "the checker did not pass ({}): {result}\nstderr:\n{}\nsummary: {}",
        out.status,
        out.stderr,
        std::fs::read_to_string(dir.path().join("checker-summary.json")).unwrap_or_default()
    );
    ensure!(
        result.contains(" 0 lost, 0 duplicated, 0 moved, 0 consumer conflicts, "),
        "a PASS line with anomalies: {result}"
    );
    Ok(())
}

#[test]
fn short_checker_run_passes() -> Result<()> {
    checker_passes("3", "kill-leader,kill-follower,pause-leader", "3")
}

/// Partitions moved to other brokers while the producer writes, one move with its leader
/// killed in the middle (four brokers, so that a partition of three replicas can move).
#[test]
fn short_checker_run_with_partition_moves_passes() -> Result<()> {
    checker_passes("4", "reassign,kill-leader", "4")
}
