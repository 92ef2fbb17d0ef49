//! Log compaction on a replicated partition: three real brokers, each replica cleaning its own
//! log. Every replica keeps every batch (its Raft entries are its batches, one each), so the
//! logs stay a Raft log that a leader change, a follower catching up and a reader of the new
//! leader all find whole.

#[macro_use]
mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, ensure};
use common::{
    Client, Cluster, Rec, Result, consume_from, log_bytes, placements, produce_to, rill_ok,
    wait_until,
};
use rill_record::Batches;

/// How long a cluster may take to elect, clean or catch up.
const SETTLE: Duration = Duration::from_secs(60);

/// A record as stored: offset, key, value.
type Stored = (i64, String, String);

/// The batches broker `k` stores for partition 0, and the Raft entries they stand for (a
/// span batch stands for the emptied batches the cleaner merged into it).
fn batch_count(cluster: &Cluster, k: i32, topic: &str) -> Result<(usize, u64)> {
    let bytes = log_bytes(&cluster.data_dir(k), topic, 0)?;
    let mut counts = (0, 0);
    for batch in Batches::new(&bytes) {
        counts.0 += 1;
        counts.1 += rill_log::cleaner::span_entries(batch?.header());
    }
    Ok(counts)
}

/// What broker `k` stores for partition 0: every record (offset, key, value), and whether the
/// offsets run on from batch to batch (a Raft log walk needs that).
fn stored(cluster: &Cluster, k: i32, topic: &str) -> Result<(Vec<Stored>, bool)> {
    let bytes = log_bytes(&cluster.data_dir(k), topic, 0)?;
    let mut records = Vec::new();
    let mut next = None;
    let mut contiguous = true;
    for batch in Batches::new(&bytes) {
        let batch = batch?;
        let header = batch.header();
        if next.is_some_and(|n| n != header.base_offset) {
            contiguous = false;
        }
        next = Some(header.next_offset());
        for r in batch.records()? {
            let text =
                |b: Option<&[u8]>| String::from_utf8_lossy(b.unwrap_or_default()).into_owned();
            records.push((r.offset, text(r.key.as_deref()), text(r.value.as_deref())));
        }
    }
    Ok((records, contiguous))
}

/// The latest record of each key, in offset order.
fn latest(all: &[Stored]) -> Vec<Stored> {
    let mut last = BTreeMap::new();
    for r in all {
        let _ = last.insert(r.1.clone(), r.clone());
    }
    let mut out: Vec<_> = last.into_values().collect();
    out.sort_by_key(|r| r.0);
    out
}

fn workload(tag: &str, keys: usize, versions: usize) -> Vec<Rec> {
    let mut records = Vec::new();
    for v in 0..versions {
        for k in 0..keys {
            records.push(Rec {
                partition: Some(0),
                ..Rec::kv(format!("key-{k}"), format!("{tag}-{k}-{v}"))
            });
        }
    }
    records
}

#[test]
fn every_replica_cleans_its_log_and_a_new_leader_serves_the_latest_values() -> Result<()> {
    let mut cluster = Cluster::start(
        3,
        &[
            "--broker-session-timeout-ms",
            "1500",
            "--log-cleaner-backoff-ms",
            "100",
        ],
    )?;
    let topic = "replicated-table";
    let _ = rill_ok(
        cluster.bootstrap(),
        &[
            "topic",
            "create",
            topic,
            "-p",
            "1",
            "-r",
            "3",
            "-c",
            "cleanup.policy=compact",
            "-c",
            "segment.bytes=1048576",
            "-c",
            "segment.ms=300",
            "-c",
            "min.cleanable.dirty.ratio=0.01",
        ],
        b"",
    )?;
    let first = workload("first", 20, 50);
    let delivered = produce_to(
        cluster.bootstrap(),
        Client::Confluent,
        topic,
        &first,
        // One version of every key a batch, so that whole batches are superseded.
        &["--acks", "all", "--set", "batch.num.messages=20"],
    )?;
    ensure!(
        delivered.len() == first.len(),
        "delivered {}",
        delivered.len()
    );
    let all: Vec<Stored> = delivered
        .iter()
        .map(|d| {
            let r = &first[d.index];
            let text = |b: &Option<Vec<u8>>| {
                String::from_utf8_lossy(b.as_deref().unwrap_or_default()).into_owned()
            };
            (d.offset, text(&r.key), text(&r.value))
        })
        .collect();
    let want = latest(&all);
    // Each replica cleans its own log down to the latest value of each key, and keeps its
    // offsets running on from batch to batch; runs of emptied batches became span batches
    // (fewer batches than Raft entries).
    for k in cluster.ids() {
        wait_until(&format!("broker {k} to clean"), SETTLE, || {
            let (records, contiguous) = stored(&cluster, k, topic)?;
            ensure!(contiguous, "broker {k}: offsets jump between batches");
            let (batches, entries) = batch_count(&cluster, k, topic)?;
            Ok((records == want && batches < usize::try_from(entries)?).then_some(()))
        })?;
    }
    // The leader dies; another takes over and serves the same latest values, then takes more.
    let leader = placements(cluster.bootstrap(), topic)?
        .get(&0)
        .map(|p| p.leader)
        .context("no leader")?;
    cluster.kill(leader)?;
    let survivors: Vec<i32> = cluster.ids().filter(|k| *k != leader).collect();
    let bootstrap = survivors
        .iter()
        .map(|k| cluster.bootstrap_of(*k))
        .collect::<Result<Vec<_>>>()?
        .join(",");
    let read = consume_from(&bootstrap, Client::KafkaPython, topic, 1, 1, &[])?;
    let read: Vec<Stored> = read
        .records
        .iter()
        .map(|r| {
            let text = |b: &Option<Vec<u8>>| {
                String::from_utf8_lossy(b.as_deref().unwrap_or_default()).into_owned()
            };
            (r.offset, text(&r.key), text(&r.value))
        })
        .collect();
    ensure!(read == want, "the new leader serves {} records", read.len());
    let second = workload("second", 20, 2);
    let delivered = produce_to(
        &bootstrap,
        Client::Confluent,
        topic,
        &second,
        &["--acks", "all"],
    )?;
    ensure!(
        delivered.len() == second.len(),
        "delivered {}",
        delivered.len()
    );
    // The old leader comes back, catches up through the cleaned log, and ends up with the
    // same latest values as the others.
    cluster.start_node(leader)?;
    let mut everything = all.clone();
    for d in &delivered {
        let r = &second[d.index];
        let text = |b: &Option<Vec<u8>>| {
            String::from_utf8_lossy(b.as_deref().unwrap_or_default()).into_owned()
        };
        everything.push((d.offset, text(&r.key), text(&r.value)));
    }
    let want = latest(&everything);
    for k in cluster.ids() {
        wait_until(
            &format!("broker {k} to hold the latest values"),
            SETTLE,
            || {
                let (records, contiguous) = stored(&cluster, k, topic)?;
                ensure!(contiguous, "broker {k}: offsets jump between batches");
                Ok((records == want).then_some(()))
            },
        )?;
    }
    // A follower that lost its data copies the cleaned log from the leader, span batches
    // and all, and ends up holding the same latest values.
    let leader = placements(cluster.bootstrap(), topic)?
        .get(&0)
        .map(|p| p.leader)
        .context("no leader")?;
    let wiped = cluster
        .ids()
        .find(|k| *k != leader)
        .context("no follower")?;
    cluster.kill(wiped)?;
    std::fs::remove_dir_all(cluster.data_dir(wiped))?;
    std::fs::create_dir_all(cluster.data_dir(wiped))?;
    cluster.start_node(wiped)?;
    wait_until(&format!("wiped broker {wiped} to catch up"), SETTLE, || {
        let (records, contiguous) = stored(&cluster, wiped, topic).unwrap_or_default();
        ensure!(contiguous, "broker {wiped}: offsets jump between batches");
        Ok((records == want).then_some(()))
    })?;
    cluster.stop()
}
