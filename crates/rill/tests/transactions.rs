//! Transactions with real clients at their defaults: librdkafka's transactional API through
//! confluent-kafka (commit and abort seen by read_committed and read_uncommitted consumers, a
//! producer fenced by a second instance, a transaction aborted by its timeout, a
//! consume-transform-produce loop), against a real `rill serve`; and on three brokers, where
//! the coordinator writes markers to, and is asked by, partitions led by other brokers.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::ensure;
use common::{Broker, Cluster, Result, create_topic, rill_ok, run_py, scrape, wait_until};
use serde_json::Value;

fn values(list: &Value) -> Vec<String> {
    list.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// (offset, value) pairs from `[[offset, value], ...]`.
fn records(list: &Value) -> Vec<(i64, String)> {
    list.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| Some((r.get(0)?.as_i64()?, r.get(1)?.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

fn named(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}-{i}")).collect()
}

#[test]
fn committed_and_aborted_transactions_as_each_isolation_sees_them() -> Result<()> {
    let broker = Broker::start()?;
    let topic = broker.topic("txn-commit-abort");
    create_topic(&broker, &topic, 1, &[])?;
    let out = run_py(
        "transactions.py",
        &[broker.bootstrap(), "commit-abort".into(), topic],
        b"",
    )?;
    let committed = records(&out["committed"]);
    let uncommitted = records(&out["uncommitted"]);
    // Each transaction takes its 10 records and a marker: offsets 0-9, 11-20, 22-31.
    let want_committed: Vec<(i64, String)> = (0..10)
        .map(|i| (i, format!("c1-{i}")))
        .chain((0..10).map(|i| (22 + i, format!("c2-{i}"))))
        .collect();
    ensure!(
        committed == want_committed,
        "read_committed saw {committed:?}"
    );
    let want_all: Vec<(i64, String)> = (0..10)
        .map(|i| (i, format!("c1-{i}")))
        .chain((0..10).map(|i| (11 + i, format!("a-{i}"))))
        .chain((0..10).map(|i| (22 + i, format!("c2-{i}"))))
        .collect();
    ensure!(
        uncommitted == want_all,
        "read_uncommitted saw {uncommitted:?}"
    );
    // The coordinator counts what it ended; its one transactional id rests in CompleteCommit.
    let metrics = scrape(&broker)?;
    let ended =
        |result: &str| metrics.value("rill_transactions_ended_total", &[("result", result)]);
    ensure!(
        (ended("committed"), ended("aborted")) == (2.0, 1.0),
        "rill_transactions_ended_total: committed {}, aborted {}",
        ended("committed"),
        ended("aborted")
    );
    ensure!(
        metrics.value("rill_transactions", &[("state", "CompleteCommit")]) == 1.0,
        "rill_transactions: {:?}",
        metrics.all("rill_transactions")
    );
    Ok(())
}

#[test]
fn a_second_instance_fences_the_first() -> Result<()> {
    let broker = Broker::start()?;
    let topic = broker.topic("txn-fence");
    create_topic(&broker, &topic, 1, &[])?;
    let out = run_py(
        "transactions.py",
        &[broker.bootstrap(), "fence".into(), topic],
        b"",
    )?;
    ensure!(
        out["a_commit"]["fatal"] == Value::Bool(true),
        "the fenced producer's commit: {}",
        out["a_commit"]
    );
    ensure!(
        values(&out["committed"]) == vec!["successor".to_owned()],
        "read_committed saw {}",
        out["committed"]
    );
    Ok(())
}

#[test]
fn a_transaction_past_its_timeout_is_aborted() -> Result<()> {
    let broker = Broker::start()?;
    let topic = broker.topic("txn-timeout");
    create_topic(&broker, &topic, 1, &[])?;
    let out = run_py(
        "transactions.py",
        &[broker.bootstrap(), "timeout".into(), topic],
        b"",
    )?;
    ensure!(
        out["commit"] != Value::String("ok".into()),
        "the expired transaction committed: {out}"
    );
    ensure!(
        values(&out["committed"]) == vec!["after".to_owned()],
        "read_committed saw {}",
        out["committed"]
    );
    let metrics = scrape(&broker)?;
    ensure!(
        metrics.value("rill_transactions_ended_total", &[("result", "timed_out")]) == 1.0,
        "rill_transactions_ended_total: {:?}",
        metrics.all("rill_transactions_ended_total")
    );
    Ok(())
}

#[test]
fn consume_transform_produce_copies_each_record_once() -> Result<()> {
    let broker = Broker::start()?;
    let (input, output) = (broker.topic("eos-in"), broker.topic("eos-out"));
    create_topic(&broker, &input, 1, &[])?;
    create_topic(&broker, &output, 1, &[])?;
    let count = 300;
    let out = run_py(
        "transactions.py",
        &[
            broker.bootstrap(),
            "exactly-once".into(),
            input,
            output,
            broker.topic("eos-group"),
            count.to_string(),
        ],
        b"",
    )?;
    let want: Vec<String> = named("REC", count);
    ensure!(
        values(&out["output"]) == want,
        "the output as read_committed: {}",
        out["output"]
    );
    ensure!(
        out["committed_offset"].as_i64() == Some(i64::try_from(count)?),
        "the group's committed offset: {}",
        out["committed_offset"]
    );
    Ok(())
}

/// (partition, offset, value) triples from `[[partition, offset, value], ...]`.
fn placed(list: &Value) -> Vec<(i64, i64, String)> {
    list.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| {
                    let value = r.get(2)?.as_str()?.to_owned();
                    Some((r.get(0)?.as_i64()?, r.get(1)?.as_i64()?, value))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Three brokers, a replicated topic whose three partitions are led by all three: every
/// transaction spans partitions led away from its coordinator, so its markers and its
/// partitions' KIP-890 checks cross brokers.
#[test]
fn transactions_across_three_brokers() -> Result<()> {
    let cluster = Cluster::start(3, &[])?;
    let topic = "txn-spread";
    let _ = rill_ok(
        cluster.bootstrap(),
        &["topic", "create", topic, "-p", "3", "-r", "3"],
        b"",
    )?;
    wait_until(
        "the partitions led by all three brokers",
        Duration::from_secs(20),
        || {
            let leaders = cluster.metadata(1)?.leaders(topic)?;
            let distinct: BTreeSet<i32> = leaders.values().copied().collect();
            Ok((distinct.len() == 3 && !distinct.contains(&-1)).then_some(()))
        },
    )?;
    let out = run_py(
        "transactions.py",
        &[
            cluster.bootstrap_of(1)?,
            "spread".into(),
            topic.into(),
            "3".into(),
        ],
        b"",
    )?;
    // Transaction t writes t<t>-<i> to partition i % 3 at offset 11 t + i / 3 (ten records
    // and one marker per partition per transaction); the 2nd and 5th were aborted.
    let expected = |t: i64| (0..30).map(move |i| (i % 3, 11 * t + i / 3, format!("t{t}-{i}")));
    let mut want: Vec<(i64, i64, String)> = [0, 2, 3, 5].into_iter().flat_map(expected).collect();
    let mut got = placed(&out["committed"]);
    want.sort();
    got.sort();
    ensure!(got == want, "read_committed saw {got:?}");
    let mut everything: Vec<(i64, i64, String)> = (0..6).flat_map(expected).collect();
    let mut uncommitted = placed(&out["uncommitted"]);
    everything.sort();
    uncommitted.sort();
    ensure!(
        uncommitted == everything,
        "read_uncommitted saw {uncommitted:?}"
    );
    Ok(())
}

/// `rill group describe` counts a group's lag to the high watermark, or with
/// `--isolation-level read_committed` to the last stable offset: an open transaction's records
/// are not lag for a consumer that cannot read them yet.
#[test]
fn group_lag_as_each_isolation_counts_it() -> Result<()> {
    let broker = Broker::start()?;
    let topic = broker.topic("txn-lag");
    create_topic(&broker, &topic, 1, &[])?;
    let bootstrap = broker.bootstrap();
    let _ = rill_ok(&bootstrap, &["produce", &topic, "-p", "0"], b"a\nb\nc\n")?;
    let group = broker.topic("txn-lag-group");
    let _ = rill_ok(
        &bootstrap,
        &[
            "group",
            "reset-offsets",
            &group,
            "--topic",
            &topic,
            "--to-offset",
            "3",
        ],
        b"",
    )?;
    let out = run_py(
        "transactions.py",
        &[
            bootstrap.clone(),
            "leave-open".into(),
            topic.clone(),
            "2".into(),
        ],
        b"",
    )?;
    ensure!(out["left_open"] == 2, "{out}");
    // TOPIC PARTITION COMMITTED LOG-END LAG MEMBER
    let row = |isolation: Option<&str>| -> Result<Vec<String>> {
        let mut args = vec!["group", "describe", group.as_str()];
        if let Some(level) = isolation {
            args.extend(["--isolation-level", level]);
        }
        let (stdout, _) = rill_ok(&bootstrap, &args, b"")?;
        let line = stdout
            .lines()
            .find(|l| l.starts_with(topic.as_str()))
            .unwrap_or_default();
        Ok(line.split_whitespace().map(str::to_owned).collect())
    };
    let uncommitted = row(None)?;
    ensure!(
        uncommitted.get(2..5) == Some(&["3".to_owned(), "5".to_owned(), "2".to_owned()][..]),
        "read_uncommitted lag: {uncommitted:?}"
    );
    let committed = row(Some("read_committed"))?;
    ensure!(
        committed.get(2..5) == Some(&["3".to_owned(), "3".to_owned(), "0".to_owned()][..]),
        "read_committed lag: {committed:?}"
    );
    Ok(())
}
