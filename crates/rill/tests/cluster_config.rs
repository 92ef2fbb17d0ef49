//! A broker whose cluster settings disagree with the cluster's refuses to join, with a one-line
//! error naming the conflict, and leaves the cluster as it was: other voters, a data directory of
//! another cluster, a node id a live broker holds, voters changed since the data directory was
//! made, and a node id that is not a voter.

mod common;

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, ensure};
use common::{Broker, Result, free_port, rill_ok, run};

/// Two live voters (nodes 1 and 2) of a three-voter quorum whose third is absent.
struct Pair {
    voters: String,
    brokers: Vec<Broker>,
    third: u16,
}

impl Pair {
    fn start() -> Result<Self> {
        let voters = common::free_voters(3)?;
        let brokers = common::quorum_brokers(&voters, &[1, 2], &[])?;
        let third = voters
            .rsplit_once(':')
            .and_then(|(_, port)| port.parse().ok())
            .context("the third voter's port")?;
        let pair = Self {
            voters,
            brokers,
            third,
        };
        pair.wait_for_quorum()?;
        Ok(pair)
    }

    /// Waits until a topic can be created: the two voters have a leader.
    fn wait_for_quorum(&self) -> Result<()> {
        let b = self.brokers[0].bootstrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let (out, _) = rill_ok(&b, &["cluster", "status"], b"").unwrap_or_default();
            if out.contains("2 live brokers") {
                return Ok(());
            }
            ensure!(
                std::time::Instant::now() < deadline,
                "no quorum of nodes 1 and 2:\n{out}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Runs `rill serve` with `args` (a fresh data dir unless given) and expects it to exit with
/// an error within 30 s: its last stderr line.
fn refused(args: &[&str]) -> Result<String> {
    let dir = tempfile::tempdir()?;
    let data_dir = dir.path().join("data");
    let mut command = Command::new(env!("CARGO_BIN_EXE_rill"));
    let _ = command.arg("serve").args([
        "--listen",
        &format!("127.0.0.1:{}", free_port()?),
        "--admin-listen",
        "none",
    ]);
    if !args.contains(&"--data-dir") {
        let _ = command.arg("--data-dir").arg(&data_dir);
    }
    let _ = command.args(args);
    let out = run(command, b"", Duration::from_secs(30))?;
    ensure!(
        !out.status.success(),
        "rill serve {args:?} started:\n{}",
        out.stderr
    );
    let last = out.stderr.lines().last().unwrap_or_default().to_owned();
    ensure!(
        last.starts_with("rill: error: "),
        "last line: {last}\n{}",
        out.stderr
    );
    Ok(last)
}

#[test]
fn conflicting_brokers_are_refused_and_the_cluster_goes_on() -> Result<()> {
    let pair = Pair::start()?;
    let third = format!("127.0.0.1:{}", pair.third);

    // Other voters: node 3 names another address for itself.
    let other = pair
        .voters
        .replace(&third, &format!("127.0.0.1:{}", free_port()?));
    let line = refused(&["--node-id", "3", "--controller-quorum-voters", &other])?;
    ensure!(line.contains("controller.quorum.voters differ"), "{line}");

    // A data directory of another cluster.
    let foreign = tempfile::tempdir()?;
    std::fs::write(
        foreign.path().join("meta.properties"),
        "version=1\ncluster.id=0123456789abcdef0123456789abcdef\nnode.id=3\n",
    )?;
    let foreign_dir = foreign.path().to_str().context("utf-8 path")?;
    let line = refused(&[
        "--node-id",
        "3",
        "--controller-quorum-voters",
        &pair.voters,
        "--data-dir",
        foreign_dir,
    ])?;
    ensure!(
        line.contains("cluster ids differ") && line.contains("0123456789abcdef0123456789abcdef"),
        "{line}"
    );

    // A second process as node 2, with a controller listener of its own.
    let line = refused(&[
        "--node-id",
        "2",
        "--controller-quorum-voters",
        &pair.voters,
        "--controller-listen",
        &format!("127.0.0.1:{}", free_port()?),
    ])?;
    ensure!(line.contains("node id 2 is already in use"), "{line}");
    // ... or at node 2's own address.
    let line = refused(&["--node-id", "2", "--controller-quorum-voters", &pair.voters])?;
    ensure!(line.contains("node 2's controller listener"), "{line}");

    // A node id that is not a voter.
    let line = refused(&["--node-id", "7", "--controller-quorum-voters", &pair.voters])?;
    ensure!(
        line.contains("not one of controller.quorum.voters"),
        "{line}"
    );

    // The two voters went on: they still agree and take changes.
    let b = pair.brokers[1].bootstrap();
    let _ = rill_ok(&b, &["topic", "create", "still-fine", "-p", "2"], b"")?;
    // Node 1 applies the change a moment after node 2 answered it.
    let one = pair.brokers[0].bootstrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (out, _) = rill_ok(&one, &["topic", "list"], b"")?;
        if out.contains("still-fine") {
            break;
        }
        ensure!(std::time::Instant::now() < deadline, "node 1 lists:\n{out}");
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

#[test]
fn voters_changed_since_the_data_dir_was_made_are_refused() -> Result<()> {
    // A one-node cluster (no voters: node 0 alone) ...
    let mut broker = Broker::start()?;
    broker.stop()?;
    let data_dir = broker.data_dir().context("a local broker")?.to_path_buf();
    let data_dir = data_dir.to_str().context("utf-8 path")?;
    // ... restarted as node 0 of three.
    let voters = format!(
        "0@127.0.0.1:{},1@127.0.0.1:{},2@127.0.0.1:{}",
        free_port()?,
        free_port()?,
        free_port()?
    );
    let line = refused(&[
        "--node-id",
        "0",
        "--controller-quorum-voters",
        &voters,
        "--data-dir",
        data_dir,
    ])?;
    ensure!(
        line.contains("names nodes 0,1,2") && line.contains("is nodes 0"),
        "{line}"
    );
    // It still starts as it was made.
    broker.restart()?;
    let _ = rill_ok(
        &broker.bootstrap(),
        &["topic", "create", "alone", "-p", "1"],
        b"",
    )?;
    broker.stop()?;
    Ok(())
}
