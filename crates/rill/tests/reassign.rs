//! Partition reassignment (AlterPartitionReassignments / ListPartitionReassignments, KIP-455) on
//! four real brokers. A replicated partition is moved off its leader onto the broker that had no
//! replica while a producer with `acks=all` keeps writing: the move is listed while under way,
//! ends with exactly the target replicas in Metadata (all in sync), the new replica holds the
//! same bytes as the others, the old one's directory is gone, and every acknowledged record is
//! read back at its offset. A move to a broker that is down waits, is listed, and cancelled goes
//! back to the replicas the partition had. Bad moves get Kafka's error codes. After
//! DeleteRecords moved the log start, the replica added starts there (a Raft snapshot); a
//! replica moved away while its broker was down is deleted when the broker comes back.

#[macro_use]
mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, ensure};
use common::{Acked, Cluster, Conn, Placement, Rec, Result, delete_before, log_bytes, placements};
use common::{metadata_of, produce_acked, read_all, rill_ok, run_node, run_py, wait_until};
use rill_protocol::StrBytes;
use rill_protocol::kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use rill_protocol::kafka_protocol::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsTopic,
};
use rill_protocol::kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
use rill_protocol::kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, BrokerId, ListOffsetsRequest,
    ListPartitionReassignmentsRequest, TopicName,
};
use rill_record::Batches;

/// Bound on a move (copying a few thousand records, two configuration changes).
const SETTLE: Duration = Duration::from_secs(30);

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_owned()))
}

/// Raw AlterPartitionReassignments at `version` for one partition (`target` None cancels):
/// the top-level code and the partition's.
fn alter(
    addr: &str,
    version: i16,
    topic: &str,
    partition: i32,
    target: Option<&[i32]>,
    allow_factor_change: bool,
) -> Result<(i16, i16)> {
    let mut conn = Conn::open_to(addr)?;
    let request = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(30_000)
        .with_allow_replication_factor_change(allow_factor_change)
        .with_topics(vec![
            ReassignableTopic::default()
                .with_name(name(topic))
                .with_partitions(vec![
                    ReassignablePartition::default()
                        .with_partition_index(partition)
                        .with_replicas(target.map(|t| t.iter().map(|r| BrokerId(*r)).collect())),
                ]),
        ]);
    let response = ask!(&mut conn, AlterPartitionReassignments, version, request);
    let code = response
        .responses
        .first()
        .and_then(|t| t.partitions.first())
        .map_or(-1, |p| p.error_code);
    Ok((response.error_code, code))
}

/// ListOffsets v7 (latest) of partition 0 from broker `addr`: (error, offset, leader epoch).
fn latest(addr: &str, topic: &str) -> Result<(i16, i64, i32)> {
    let mut conn = Conn::open_to(addr)?;
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(name(topic))
                .with_partitions(vec![
                    ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(-1),
                ]),
        ]);
    let response = ask!(&mut conn, ListOffsets, 7, request);
    let p = response
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .context("no partition in ListOffsets")?;
    Ok((p.error_code, p.offset, p.leader_epoch))
}

/// An ongoing move as ListPartitionReassignments shows it: replicas, adding, removing.
type Ongoing = (Vec<i32>, Vec<i32>, Vec<i32>);

/// Raw ListPartitionReassignments: every move under way (`topic` None) or those of `topic`'s
/// partition 0, by (topic, partition).
fn list(addr: &str, topic: Option<&str>) -> Result<BTreeMap<(String, i32), Ongoing>> {
    let addr = addr.split(',').next().unwrap_or(addr);
    let mut conn = Conn::open_to(addr)?;
    let topics = topic.map(|t| {
        vec![
            ListPartitionReassignmentsTopics::default()
                .with_name(name(t))
                .with_partition_indexes(vec![0]),
        ]
    });
    let request = ListPartitionReassignmentsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(topics);
    let response = ask!(&mut conn, ListPartitionReassignments, 0, request);
    ensure!(response.error_code == 0, "{response:?}");
    let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<_>>();
    Ok(response
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                let ongoing = (
                    ids(&p.replicas),
                    ids(&p.adding_replicas),
                    ids(&p.removing_replicas),
                );
                ((t.name.0.to_string(), p.partition_index), ongoing)
            })
        })
        .collect())
}

/// Partition 0 of `topic` once it has a leader and every replica in sync.
fn settled(cluster: &Cluster, topic: &str) -> Result<Placement> {
    wait_until("a leader and every replica in sync", SETTLE, || {
        let seen = placements(cluster.bootstrap(), topic)?;
        Ok(seen
            .get(&0)
            .filter(|p| p.leader > 0 && p.isr.len() == p.replicas.len())
            .cloned())
    })
}

/// Produces `records(tag, count)` with confluent-kafka at `acks=all`, idempotent (a retry
/// across a change of leader is written once), with the producer options `options`.
fn produce_idempotent(
    bootstrap: &str,
    topic: &str,
    tag: &str,
    count: usize,
    options: &[&str],
) -> Result<Acked> {
    let mut all = vec!["--set", "enable.idempotence=true"];
    all.extend(options);
    produce_acked(bootstrap, topic, tag, &records(tag, count), &all)
}

/// Four brokers and a topic `topic` of one partition on three of them, settled: the cluster,
/// the partition's placement and the broker without a replica.
fn four_brokers_with(topic: &str) -> Result<(Cluster, Placement, i32)> {
    let cluster = Cluster::start(4, &["--broker-session-timeout-ms", "1500"])?;
    let _ = rill_ok(
        cluster.bootstrap(),
        &["topic", "create", topic, "-p", "1", "-r", "3"],
        b"",
    )?;
    let placed = settled(&cluster, topic)?;
    let outsider = cluster
        .ids()
        .find(|k| !placed.replicas.contains(k))
        .context("every broker holds a replica")?;
    Ok((cluster, placed, outsider))
}

/// `count` records for partition 0, valued `TAG-i`.
fn records(tag: &str, count: usize) -> Vec<Rec> {
    (0..count)
        .map(|i| Rec {
            partition: Some(0),
            ..Rec::kv(format!("key-{i}"), format!("{tag}-{i}"))
        })
        .collect()
}

#[test]
fn a_partition_moves_off_its_leader_while_producing_and_keeps_every_record() -> Result<()> {
    let topic = "moving";
    let (mut cluster, before, outsider) = four_brokers_with(topic)?;
    let leader = before.leader;
    let mut acked = produce_idempotent(cluster.bootstrap(), topic, "before", 2000, &[])?;

    // A producer keeps writing through the whole move: a record at a time, 5 ms apart (a few
    // seconds in all; the move takes well under one).
    let producer = {
        let bootstrap = cluster.bootstrap().to_owned();
        std::thread::spawn(move || {
            produce_idempotent(&bootstrap, topic, "during", 800, &["--pause-ms", "5"])
        })
    };
    // And rill-client (`rill bench produce`, acks=all, idempotent): 1,000 records a second for
    // 6 s. It must follow the leader to its new broker.
    let bench = {
        let bootstrap = cluster.bootstrap().to_owned();
        std::thread::spawn(move || {
            rill_ok(
                &bootstrap,
                &[
                    "bench",
                    "produce",
                    "--topic",
                    topic,
                    "--records",
                    "6000",
                    "--rate",
                    "1000",
                ],
                b"",
            )
        })
    };
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        !producer.is_finished(),
        "the producer was done before the move began"
    );

    // Off the leader, onto the broker without a replica; the preferred leader is the new one.
    let target: Vec<i32> = std::iter::once(outsider)
        .chain(before.replicas.iter().copied().filter(|r| *r != leader))
        .collect();
    let any = cluster.bootstrap_of(outsider)?;
    assert_eq!(alter(&any, 1, topic, 0, Some(&target), false)?, (0, 0));
    // Listed while under way (unless it is already done): the target, then the leaving one.
    let listed = list(cluster.bootstrap(), Some(topic))?;
    if let Some((replicas, adding, removing)) = listed.get(&(topic.to_owned(), 0)) {
        let mut expected = target.clone();
        expected.push(leader);
        assert_eq!(replicas, &expected);
        assert_eq!((adding, removing), (&vec![outsider], &vec![leader]));
    }
    let after = wait_until("the move to end", SETTLE, || {
        let seen = placements(cluster.bootstrap(), topic)?;
        let done = seen
            .get(&0)
            .filter(|p| p.replicas == target && p.isr.len() == 3 && target.contains(&p.leader))
            .cloned();
        Ok(done.filter(|_| list(cluster.bootstrap(), None).is_ok_and(|l| l.is_empty())))
    })
    .with_context(|| cluster.logs_tail(80))?;
    assert!(after.epoch > before.epoch, "{before:?} -> {after:?}");
    assert!(
        !producer.is_finished(),
        "the producer was done before the move ended"
    );
    let during = producer
        .join()
        .map_err(|_| anyhow::anyhow!("the producer thread panicked"))??;
    let (benched, _) = bench
        .join()
        .map_err(|_| anyhow::anyhow!("the bench thread panicked"))??;
    assert!(benched.contains("6,000 records"), "{benched}");
    acked.extend(during);
    // The new replica, killed and back, rejoins the group it was added to (its configuration
    // comes back from its state file).
    cluster.kill(outsider)?;
    acked.extend(produce_idempotent(
        cluster.bootstrap(),
        topic,
        "without",
        300,
        &[],
    )?);
    cluster.start_node(outsider)?;
    let back = settled(&cluster, topic)?;
    assert_eq!(back.replicas, target);
    acked.extend(produce_idempotent(
        cluster.bootstrap(),
        topic,
        "after",
        500,
        &[],
    )?);
    // The leader answers ListOffsets with its own term as the leader epoch.
    let now = settled(&cluster, topic)?;
    let (error, end, epoch) = latest(&cluster.bootstrap_of(now.leader)?, topic)?;
    // Every record is one of confluent-kafka's or one of the 6,000 of `rill bench`.
    let written = acked.len() + 6000;
    assert_eq!((error, end, epoch), (0, written as i64, now.epoch));

    // Every acknowledged record, at its offset, from the new replicas.
    let read = read_all(cluster.bootstrap(), topic, 1, written)?;
    for (at, value) in &acked {
        assert_eq!(read.get(at), Some(value), "record at {at:?}");
    }
    assert_eq!(read.len(), written, "records nobody acknowledged");
    // The new replica holds the same bytes as the others; the old one is gone.
    wait_until("the new replica to hold the same log", SETTLE, || {
        let logs = target
            .iter()
            .map(|k| log_bytes(&cluster.data_dir(*k), topic, 0))
            .collect::<Result<Vec<_>>>()?;
        Ok(logs.windows(2).all(|w| w[0] == w[1]).then_some(()))
    })?;
    wait_until("the old replica's directory to go", SETTLE, || {
        Ok((!cluster.data_dir(leader).join(format!("{topic}-0")).exists()).then_some(()))
    })?;
    Ok(())
}

#[test]
fn a_move_to_a_broker_that_is_down_waits_and_a_cancel_goes_back() -> Result<()> {
    let topic = "stuck";
    let (mut cluster, before, outsider) = four_brokers_with(topic)?;
    let _ = rill_ok(
        cluster.bootstrap(),
        &["topic", "create", "single", "-p", "1", "-r", "1"],
        b"",
    )?;
    let addr = cluster.bootstrap_of(before.replicas[0])?;

    // Bad moves: Kafka's codes, nothing changed.
    let others = &before.replicas[1..];
    let replace_first = [outsider, others[0], others[1]];
    for (topic, partition, target, version, allow, expected) in [
        (topic, 0, None, 0, true, 85),
        ("nope", 0, Some(&replace_first[..]), 0, true, 3),
        (topic, 4, Some(&replace_first[..]), 0, true, 3),
        (topic, 0, Some(&[99, others[0], others[1]][..]), 0, true, 39),
        (
            topic,
            0,
            Some(&[others[0], others[0], others[1]][..]),
            0,
            true,
            39,
        ),
        (topic, 0, Some(&[others[0]][..]), 0, true, 39),
        (topic, 0, Some(&[outsider, others[0]][..]), 1, false, 38),
        ("single", 0, Some(&replace_first[..]), 1, true, 39),
    ] {
        let answer = alter(&addr, version, topic, partition, target, allow)?;
        assert_eq!(answer, (0, expected), "{topic}-{partition} to {target:?}");
    }
    assert!(list(&addr, None)?.is_empty());

    // The outsider is down: its replica can never catch up, so the move waits.
    cluster.kill(outsider)?;
    let acked = produce_idempotent(cluster.bootstrap(), topic, "a", 300, &[])?;
    assert_eq!(
        alter(&addr, 0, topic, 0, Some(&replace_first), true)?,
        (0, 0)
    );
    std::thread::sleep(Duration::from_secs(2));
    let listed = list(&addr, Some(topic))?;
    let mut expected = replace_first.to_vec();
    expected.push(before.replicas[0]);
    assert_eq!(
        listed.get(&(topic.to_owned(), 0)),
        Some(&(expected, vec![outsider], vec![before.replicas[0]]))
    );
    // Listed as a replica, never in sync: it has caught up with nothing.
    let during = placements(&addr, topic)?;
    let p0 = during.get(&0).context("no partition 0")?;
    assert!(
        p0.replicas.contains(&outsider) && !p0.isr.contains(&outsider),
        "{p0:?}"
    );
    // Records still go in and come out meanwhile.
    let more = produce_idempotent(cluster.bootstrap(), topic, "b", 300, &[])?;

    // Cancelled: back to the replicas it had, in their order.
    assert_eq!(alter(&addr, 0, topic, 0, None, true)?, (0, 0));
    wait_until("the cancelled move to end", SETTLE, || {
        let seen = placements(&addr, topic)?;
        let back = seen.get(&0).is_some_and(|p| p.replicas == before.replicas);
        Ok((back && list(&addr, None)?.is_empty()).then_some(()))
    })
    .with_context(|| cluster.logs_tail(80))?;
    cluster.start_node(outsider)?;
    let after = settled(&cluster, topic)?;
    assert_eq!(after.replicas, before.replicas);
    let read = read_all(cluster.bootstrap(), topic, 1, acked.len() + more.len())?;
    for (at, value) in acked.iter().chain(&more) {
        assert_eq!(read.get(at), Some(value), "record at {at:?}");
    }
    // Nothing of the partition was left on the broker it never reached.
    assert!(
        !cluster
            .data_dir(outsider)
            .join(format!("{topic}-0"))
            .exists()
    );
    Ok(())
}

/// The batches of partition 0 on broker `k`: (base offset, bytes).
fn batches(cluster: &Cluster, k: i32, topic: &str) -> Result<Vec<(i64, Vec<u8>)>> {
    let bytes = log_bytes(&cluster.data_dir(k), topic, 0)?;
    let mut out = Vec::new();
    for batch in Batches::new(&bytes) {
        let batch = batch?;
        out.push((batch.header().base_offset, batch.as_bytes().to_vec()));
    }
    Ok(out)
}

/// The log start moved (DeleteRecords), so the replica added starts where the leader's log
/// starts (a Raft snapshot that carries the group's configuration, no records) and holds the
/// same batches from there. A replica moved away while its broker was down is deleted when the
/// broker comes back.
#[test]
fn a_move_after_delete_records_and_a_replica_moved_away_while_down() -> Result<()> {
    let topic = "away";
    let (mut cluster, before, outsider) = four_brokers_with(topic)?;
    let victim = *before
        .replicas
        .iter()
        .find(|r| **r != before.leader)
        .context("one replica")?;
    // A batch per record, so that the log start moves past whole batches.
    let acked = produce_idempotent(cluster.bootstrap(), topic, "a", 200, &["--pause-ms", "1"])?;
    let addr = cluster.bootstrap_of(before.leader)?;
    assert_eq!(delete_before(&addr, topic, 100)?, (0, 100));

    cluster.kill(victim)?;
    let target: Vec<i32> = before
        .replicas
        .iter()
        .map(|r| if *r == victim { outsider } else { *r })
        .collect();
    assert_eq!(alter(&addr, 0, topic, 0, Some(&target), true)?, (0, 0));
    wait_until("the move to end", SETTLE, || {
        let seen = placements(&addr, topic)?;
        let done = seen
            .get(&0)
            .is_some_and(|p| p.replicas == target && p.isr.len() == 3);
        Ok(done.then_some(()))
    })
    .with_context(|| cluster.logs_tail(80))?;
    let more = produce_idempotent(cluster.bootstrap(), topic, "b", 300, &[])?;

    // The new replica's log starts at the batch holding the log start, and its batches are the
    // leader's from there.
    let theirs = batches(&cluster, before.leader, topic)?;
    wait_until(
        "the new replica to hold the leader's batches",
        SETTLE,
        || {
            let ours = batches(&cluster, outsider, topic)?;
            let first = ours.first().map_or(-1, |b| b.0);
            let from: Vec<_> = theirs.iter().filter(|b| b.0 >= first).cloned().collect();
            Ok((first == 100 && ours == from && ours.len() > 1).then_some(()))
        },
    )
    .with_context(|| cluster.logs_tail(80))?;

    // Back, the broker moved away from deletes its replica.
    assert!(cluster.data_dir(victim).join(format!("{topic}-0")).exists());
    cluster.start_node(victim)?;
    wait_until("the stray replica to go", SETTLE, || {
        Ok((!cluster.data_dir(victim).join(format!("{topic}-0")).exists()).then_some(()))
    })?;
    let kept: Acked = acked
        .into_iter()
        .filter(|((_, offset), _)| *offset >= 100)
        .chain(more)
        .collect();
    let read = read_all(cluster.bootstrap(), topic, 1, kept.len())?;
    assert_eq!(read, kept);
    Ok(())
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| (*a).to_owned()).collect()
}

/// The moves a client script listed: (topic-partition, replicas, adding, removing).
fn listed_by(out: &serde_json::Value) -> Result<Vec<(String, Ongoing)>> {
    ensure!(out["error"] == 0, "{out}");
    let ids = |v: &serde_json::Value| -> Vec<i32> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|n| n.as_i64())
                    .map(|n| n as i32)
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(out["reassignments"]
        .as_array()
        .context("no reassignments")?
        .iter()
        .map(|m| {
            let at = format!("{}-{}", m["topic"].as_str().unwrap_or("?"), m["partition"]);
            (
                at,
                (ids(&m["replicas"]), ids(&m["adding"]), ids(&m["removing"])),
            )
        })
        .collect())
}

/// Real clients at their defaults drive the same APIs: kafka-python's and kafkajs's admin
/// clients move and list, the `rill` CLI moves, lists and cancels.
#[test]
fn kafka_python_kafkajs_and_the_cli_move_list_and_cancel() -> Result<()> {
    let topic = "clients";
    let (mut cluster, before, outsider) = four_brokers_with(topic)?;
    let up = cluster.bootstrap_of(before.leader)?;
    let leaving = before.replicas[2];
    let target = [outsider, before.replicas[0], before.replicas[1]];
    let joined = |ids: &[i32]| ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",");

    // kafka-python: a bad move is INVALID_REPLICA_ASSIGNMENT; with the outsider down, a good
    // one is accepted and stays under way, as every client lists it.
    let bad = run_py(
        "reassign.py",
        &strings(&[&up, "alter", topic, "0", "99,1,2"]),
        b"",
    )?;
    assert_eq!(bad["results"][format!("{topic}-0")], 39, "{bad}");
    cluster.kill(outsider)?;
    // Until its session expires the broker is still listed, and kafka-python may pick it to
    // ask for metadata, as it would with Kafka.
    wait_until("the killed broker to leave Metadata", SETTLE, || {
        Ok((!metadata_of(&up)?.brokers.contains_key(&outsider)).then_some(()))
    })?;
    let moved = run_py(
        "reassign.py",
        &strings(&[&up, "alter", topic, "0", &joined(&target)]),
        b"",
    )?;
    assert_eq!(moved["error"], 0, "{moved}");
    assert_eq!(moved["results"][format!("{topic}-0")], 0, "{moved}");
    let mut replicas = target.to_vec();
    replicas.push(leaving);
    let expected = vec![(
        format!("{topic}-0"),
        (replicas.clone(), vec![outsider], vec![leaving]),
    )];
    let by_python = run_py("reassign.py", &strings(&[&up, "list"]), b"")?;
    assert_eq!(listed_by(&by_python)?, expected);
    let by_kafkajs = run_node("reassign.js", &strings(&[&up, "list", topic, "0"]))?;
    assert_eq!(listed_by(&by_kafkajs)?, expected);
    let (table, _) = rill_ok(&up, &["topic", "reassignments", topic], b"")?;
    let row = table
        .lines()
        .find(|l| l.starts_with(topic))
        .with_context(|| format!("no row in {table}"))?;
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cells,
        [
            topic,
            "0",
            &joined(&replicas),
            &outsider.to_string(),
            &leaving.to_string()
        ],
        "{table}"
    );

    // The CLI cancels: back to the replicas it had.
    let (cancelled, _) = rill_ok(
        &up,
        &["topic", "reassign", topic, "--partition", "0", "--cancel"],
        b"",
    )?;
    assert!(cancelled.contains("cancelled"), "{cancelled}");
    wait_until("the cancelled move to end", SETTLE, || {
        let seen = placements(&up, topic)?;
        Ok((seen.get(&0).is_some_and(|p| p.replicas == before.replicas)).then_some(()))
    })?;
    let (none, _) = rill_ok(&up, &["topic", "reassignments"], b"")?;
    assert!(none.contains("no partition"), "{none}");

    // kafkajs moves it for real once the outsider is back.
    cluster.start_node(outsider)?;
    let by_kafkajs = run_node(
        "reassign.js",
        &strings(&[&up, "alter", topic, "0", &joined(&target)]),
    )?;
    assert_eq!(
        by_kafkajs["results"][format!("{topic}-0")],
        0,
        "{by_kafkajs}"
    );
    wait_until("the move to end", SETTLE, || {
        let seen = placements(&up, topic)?;
        let done = seen
            .get(&0)
            .is_some_and(|p| p.replicas == target && p.isr.len() == 3);
        Ok(done.then_some(()))
    })
    .with_context(|| cluster.logs_tail(60))?;
    let acked = produce_idempotent(cluster.bootstrap(), topic, "moved", 200, &[])?;
    let read = read_all(cluster.bootstrap(), topic, 1, acked.len())?;
    assert_eq!(read, acked);
    Ok(())
}
