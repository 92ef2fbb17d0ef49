//! The layout of committed offsets on disk: `__consumer_offsets-<p>` for each of the
//! `offsets.topic.num.partitions` partitions, with each group in Kafka's partition for it; and
//! the move of a data directory written by an older Rill (every group in `__consumer_offsets-0`)
//! to that layout on its first start.
//!
//! The old layout is written here as the older Rill wrote it, through rill-log: one log in
//! `__consumer_offsets-0`, records keyed by the JSON `{group, topic, partition}` with the JSON
//! committed offset as value (null: deleted), in a copy of the data directory the single-node
//! Rill left (tests/fixtures/legacy-single-node, topic `orders`), so the metadata log is the old
//! one too.

mod common;

use std::path::Path;

use anyhow::{Context, bail, ensure};
use common::{Broker, Result, call, connect, run_py};
use rill_protocol::kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use rill_protocol::kafka_protocol::messages::{GroupId, OffsetFetchRequest};
use rill_protocol::{ApiKey, ResponseKind, StrBytes};
use rill_record::{BatchBuilder, RecordSpec};
use serde_json::json;

const PARTITIONS: i32 = 3;

/// The offset the fixture commits for group `g` on partition `p`.
fn offset_of(g: usize, p: i32) -> i64 {
    (g as i64 + 1) * 100 + i64::from(p)
}

fn groups() -> Vec<String> {
    let mut groups: Vec<String> = (0..18).map(|i| format!("layout-group-{i}")).collect();
    // Non-ASCII ids hash over UTF-16 units, as Java's String.hashCode does.
    groups.push("é-groupe".to_owned());
    groups.push("🦀-crab".to_owned());
    groups
}

/// Writes `__consumer_offsets-0` as Rill did before it had partitions: every group's offsets of
/// `topic`, each commit written twice (the older value first), and a group committed then
/// deleted.
fn write_old_layout(data_dir: &Path, topic: &str, groups: &[String]) -> Result<()> {
    let dir = data_dir.join("__consumer_offsets-0");
    let config = rill_log::LogConfig {
        retention_ms: -1,
        retention_bytes: -1,
        ..rill_log::LogConfig::default()
    };
    let mut log = rill_log::Log::open(&dir, config, 0)?;
    let mut append = |group: &str, partition: i32, offset: Option<i64>| -> Result<()> {
        let key = json!({"group": group, "topic": topic, "partition": partition});
        let mut record = RecordSpec::new(1_000).key(serde_json::to_vec(&key)?);
        if let Some(offset) = offset {
            let value = json!({
                "offset": offset,
                "leader_epoch": -1,
                "metadata": format!("{group}@{offset}"),
                "commit_ms": 1_000,
            });
            record = record.value(serde_json::to_vec(&value)?);
        }
        let batch = BatchBuilder::new().record(record).build()?;
        let _ = log.append(&mut batch.to_vec(), 1_000)?;
        Ok(())
    };
    for (g, group) in groups.iter().enumerate() {
        for p in 0..PARTITIONS {
            append(group, p, Some(offset_of(g, p) - 50))?;
            append(group, p, Some(offset_of(g, p)))?;
        }
    }
    append("layout-deleted", 0, Some(7))?;
    append("layout-deleted", 0, None)?;
    log.sync()?;
    log.close()?;
    Ok(())
}

/// Every group's committed offsets of `topic` by OffsetFetch v8 (all groups in one request):
/// (group, partition, offset, metadata).
fn fetch_all(broker: &Broker, groups: &[String]) -> Result<Vec<(String, i32, i64, String)>> {
    let mut stream = connect(broker)?;
    let request = OffsetFetchRequest::default().with_groups(
        groups
            .iter()
            .map(|g| {
                OffsetFetchRequestGroup::default()
                    .with_group_id(GroupId(StrBytes::from_string(g.clone())))
                    .with_topics(None)
            })
            .collect(),
    );
    let ResponseKind::OffsetFetch(fetched) = call(&mut stream, ApiKey::OffsetFetch, 8, 1, request)?
    else {
        bail!("not an OffsetFetch answer");
    };
    let mut out = Vec::new();
    for group in &fetched.groups {
        ensure!(
            group.error_code == 0,
            "OffsetFetch of {} answered {}",
            group.group_id.0,
            group.error_code
        );
        for topic in &group.topics {
            for p in &topic.partitions {
                out.push((
                    group.group_id.0.to_string(),
                    p.partition_index,
                    p.committed_offset,
                    p.metadata
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                ));
            }
        }
    }
    out.sort();
    Ok(out)
}

#[test]
fn an_old_single_offsets_log_moves_to_fifty_partitions() -> Result<()> {
    let mut broker = Broker::start()?;
    broker.stop()?;
    let data_dir = broker.data_dir().context("a local broker")?.to_path_buf();
    // Make the data directory one an older Rill left (the fixture: its metadata names topic
    // `orders` with 3 partitions), with the test's groups in its single offsets log.
    std::fs::remove_dir_all(&data_dir)?;
    common::copy_dir(&common::fixture("legacy-single-node"), &data_dir)?;
    std::fs::remove_dir_all(data_dir.join("__consumer_offsets-0"))?;
    let topic = "orders".to_owned();
    let groups = groups();
    write_old_layout(&data_dir, &topic, &groups)?;

    broker.restart()?;
    // The move happens while the broker opens its data directory, after its banner.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !broker.output_text().contains("moved committed offsets")
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    ensure!(
        broker.output_text().contains("moved committed offsets"),
        "no move logged:\n{}",
        broker.output_tail(20)
    );

    // Every committed offset, by OffsetFetch for all groups at once...
    let mut expected = Vec::new();
    for (g, group) in groups.iter().enumerate() {
        for p in 0..PARTITIONS {
            let offset = offset_of(g, p);
            expected.push((group.clone(), p, offset, format!("{group}@{offset}")));
        }
    }
    expected.sort();
    ensure!(
        fetch_all(&broker, &groups)? == expected,
        "OffsetFetch after the move"
    );
    // ... and a deleted one stays deleted.
    ensure!(fetch_all(&broker, &["layout-deleted".to_owned()])?.is_empty());

    // ... and by a client's committed() (confluent-kafka), group by group.
    let partitions: Vec<String> = (0..PARTITIONS).map(|p| format!("{topic}:{p}")).collect();
    for (g, group) in groups.iter().enumerate() {
        let mut args = vec![broker.bootstrap(), group.clone(), "committed".to_owned()];
        args.extend(partitions.iter().cloned());
        let out = run_py("standalone.py", &args, b"")?;
        for p in 0..PARTITIONS {
            let got = &out["committed"][format!("{topic}:{p}")]["offset"];
            ensure!(
                *got == json!(offset_of(g, p)),
                "committed() of {group} {topic}:{p}: {got}"
            );
        }
    }

    // The data directory now has the 50 logs of Kafka's default.
    for p in 0..50 {
        let dir = data_dir.join(format!("__consumer_offsets-{p}"));
        ensure!(dir.is_dir(), "{} is missing", dir.display());
    }
    ensure!(!data_dir.join("__consumer_offsets-50").exists());
    ensure!(
        std::fs::read_to_string(data_dir.join("__consumer_offsets-0/layout"))?.trim()
            == "partitions=50"
    );

    // Restarted again: nothing moves, nothing is lost.
    broker.restart()?;
    ensure!(
        fetch_all(&broker, &groups)? == expected,
        "OffsetFetch after a second restart"
    );
    broker.stop()?;
    Ok(())
}
