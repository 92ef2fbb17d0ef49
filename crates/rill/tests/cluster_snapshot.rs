//! The metadata log is compacted behind snapshots of the image: a broker that was down while
//! the others compacted catches up from the leader's snapshot, and a broker restarts from its own
//! snapshot and the entries after it.

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use anyhow::ensure;
use common::{Broker, Conn, Result, rill, rill_ok, rows};
use rill_protocol::kafka_protocol::messages::DescribeClusterRequest;

fn wait_for(what: &str, mut ok: impl FnMut() -> Result<bool>) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ok().unwrap_or(false) {
        ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn topics(broker: &Broker) -> Result<usize> {
    let (out, _) = rill_ok(&broker.bootstrap(), &["topic", "list"], b"")?;
    Ok(rows(&out).len().saturating_sub(1))
}

#[test]
fn a_broker_behind_a_compacted_log_catches_up_from_the_snapshot() -> Result<()> {
    let voters = common::free_voters(3)?;
    let mut brokers = common::quorum_brokers(
        &voters,
        &[1, 2, 3],
        &[
            "--broker-session-timeout-ms",
            "1500",
            "--metadata-log-max-record-bytes-between-snapshots",
            "1024",
        ],
    )?;
    let one = brokers[0].bootstrap();
    wait_for("three live brokers", || {
        Ok(rill(&one, &["cluster", "status"], b"")?
            .stdout_text()
            .contains("3 live brokers"))
    })?;
    // One partition on each broker, one record in each.
    let _ = rill_ok(&one, &["topic", "create", "early", "-p", "3"], b"")?;
    for p in ["0", "1", "2"] {
        let _ = rill_ok(
            &one,
            &["produce", "early", "-p", p],
            format!("r{p}\n").as_bytes(),
        )?;
    }

    brokers[2].kill9()?;
    for i in 0..30 {
        let _ = rill_ok(
            &one,
            &["topic", "create", &format!("later-{i}"), "-p", "1"],
            b"",
        )?;
    }
    // Fenced once its session ran out: DescribeCluster v2 lists it as such when asked to.
    wait_for("node 3 fenced", || {
        let mut conn = Conn::open(&brokers[0])?;
        let with = ask!(
            &mut conn,
            DescribeCluster,
            2,
            DescribeClusterRequest::default().with_include_fenced_brokers(true)
        );
        let without = ask!(
            &mut conn,
            DescribeCluster,
            2,
            DescribeClusterRequest::default()
        );
        let fenced: Vec<(i32, bool)> = with
            .brokers
            .iter()
            .map(|b| (b.broker_id.0, b.is_fenced))
            .collect();
        let live: Vec<i32> = without.brokers.iter().map(|b| b.broker_id.0).collect();
        Ok(fenced == [(1, false), (2, false), (3, true)] && live == [1, 2])
    })?;
    ensure!(
        brokers[0]
            .output_text()
            .contains("snapshotted the metadata image"),
        "node 1 never compacted:\n{}",
        brokers[0].output_tail(20)
    );

    brokers[2].restart()?;
    wait_for("node 3 to see 31 topics", || Ok(topics(&brokers[2])? == 31))?;
    ensure!(
        brokers[2]
            .output_text()
            .contains("installed a snapshot of the metadata image"),
        "node 3 caught up without a snapshot:\n{}",
        brokers[2].output_tail(20)
    );
    // Its own partition of `early` is there and readable through it.
    let three = brokers[2].bootstrap();
    wait_for("early's records through node 3", || {
        let out = rill(
            &three,
            &[
                "consume",
                "early",
                "-o",
                "beginning",
                "-c",
                "3",
                "-f",
                "%s\n",
            ],
            b"",
        )?;
        let mut got: Vec<String> = out.stdout_text().lines().map(str::to_owned).collect();
        got.sort();
        Ok(got == ["r0", "r1", "r2"])
    })?;

    // Node 1 restarts from its own snapshot and the entries after it.
    brokers[0].restart()?;
    wait_for("node 1 to see 31 topics again", || {
        Ok(topics(&brokers[0])? == 31)
    })?;
    for broker in &mut brokers {
        broker.stop()?;
    }
    Ok(())
}
