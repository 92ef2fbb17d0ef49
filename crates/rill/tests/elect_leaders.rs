//! ElectLeaders (preferred leader election) on three real brokers: a replicated partition whose
//! preferred replica (its first) was killed and came back is led by another replica; asking any
//! broker for a preferred election (raw, with the `rill` CLI, with kafka-python) hands the
//! leadership back, at a higher epoch, with every acknowledged record still there. Asking again
//! is ELECTION_NOT_NEEDED; a preferred replica that is down is PREFERRED_LEADER_NOT_AVAILABLE;
//! unknown partitions are UNKNOWN_TOPIC_OR_PARTITION; an UNCLEAN election and a partition with one
//! replica are ELECTION_NOT_NEEDED; with no partitions named, every partition is elected.

#[macro_use]
mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::ensure;
use common::{
    Client, Cluster, Conn, Placement, Rec, Result, placements, produce_to, read_all, rill_ok,
    run_py, wait_until,
};
use rill_protocol::StrBytes;
use rill_protocol::kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use rill_protocol::kafka_protocol::messages::{ElectLeadersRequest, TopicName};

/// Bound on anything the cluster should settle within (elections, catching up).
const SETTLE: Duration = Duration::from_secs(20);
const TOPIC: &str = "orders";
const PARTITIONS: i32 = 3;

/// An ElectLeaders answer: the top-level code and each (topic, partition)'s.
type Answer = (i16, BTreeMap<(String, i32), i16>);

/// Raw ElectLeaders at `version` to broker `addr`: `asked` None is every partition (null).
fn elect(
    addr: &str,
    version: i16,
    election_type: i8,
    asked: Option<&[(&str, i32)]>,
    timeout_ms: i32,
) -> Result<Answer> {
    let mut conn = Conn::open_to(addr)?;
    let topics = asked.map(|asked| {
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (t, p) in asked {
            by_topic.entry(t).or_default().push(*p);
        }
        by_topic
            .into_iter()
            .map(|(t, partitions)| {
                TopicPartitions::default()
                    .with_topic(TopicName(StrBytes::from_string(t.to_owned())))
                    .with_partitions(partitions)
            })
            .collect()
    });
    let request = ElectLeadersRequest::default()
        .with_election_type(election_type)
        .with_topic_partitions(topics)
        .with_timeout_ms(timeout_ms);
    let response = ask!(&mut conn, ElectLeaders, version, request);
    let mut codes = BTreeMap::new();
    for t in response.replica_election_results {
        for p in t.partition_result {
            if let Some(m) = &p.error_message {
                eprintln!("{addr}: {}-{}: {m}", t.topic.0, p.partition_id);
            }
            let _ = codes.insert((t.topic.0.to_string(), p.partition_id), p.error_code);
        }
    }
    Ok((response.error_code, codes))
}

/// The answer expected: top-level NONE and these codes.
fn answer(codes: &[(&str, i32, i16)]) -> Answer {
    let codes = codes
        .iter()
        .map(|(t, p, c)| (((*t).to_owned(), *p), *c))
        .collect();
    (0, codes)
}

/// Waits until every partition of TOPIC has a leader and every replica in sync.
fn settled(addr: &str) -> Result<BTreeMap<i32, Placement>> {
    wait_until(
        "a leader and a full ISR for every partition",
        SETTLE,
        || {
            let seen = placements(addr, TOPIC)?;
            Ok(
                (seen.len() == 3 && seen.values().all(|p| p.leader >= 0 && p.isr.len() == 3))
                    .then_some(seen),
            )
        },
    )
}

/// Kills broker `k`, waits until the others lead without it, and starts it again: every
/// partition `k` led is led by another replica afterwards. Returns the placements then.
fn bounce(cluster: &mut Cluster, k: i32) -> Result<BTreeMap<i32, Placement>> {
    cluster.kill(k)?;
    let other = cluster.bootstrap_of(if k == 1 { 2 } else { 1 })?;
    wait_until("the killed broker fenced and not leading", SETTLE, || {
        let seen = placements(&other, TOPIC)?;
        Ok(seen
            .values()
            .all(|p| p.leader >= 0 && p.leader != k && !p.isr.contains(&k))
            .then_some(()))
    })?;
    cluster.start_node(k)?;
    settled(&other)
}

/// `count` records spread round robin over the partitions, values `TAG-i`.
fn spread(tag: &str, count: usize) -> Vec<Rec> {
    (0..count)
        .map(|i| Rec {
            partition: Some(i32::try_from(i).unwrap_or(0) % PARTITIONS),
            ..Rec::kv(format!("key-{i}"), format!("{tag}-{i}"))
        })
        .collect()
}

/// Produces with acks=all and records what was acknowledged where.
fn produce(
    bootstrap: &str,
    tag: &str,
    count: usize,
    acked: &mut BTreeMap<(i32, i64), String>,
) -> Result<()> {
    let delivered = produce_to(
        bootstrap,
        Client::Confluent,
        TOPIC,
        &spread(tag, count),
        &["--acks", "all"],
    )?;
    ensure!(
        delivered.len() == count,
        "{} of {count} delivered",
        delivered.len()
    );
    for d in delivered {
        ensure!(
            acked
                .insert((d.partition, d.offset), format!("{tag}-{}", d.index))
                .is_none(),
            "offset {} of partition {} acknowledged twice",
            d.offset,
            d.partition
        );
    }
    Ok(())
}

#[test]
fn preferred_leader_election_hands_leadership_back_to_the_first_replica() -> Result<()> {
    let mut cluster = Cluster::start(3, &["--broker-session-timeout-ms", "1500"])?;
    let _ = rill_ok(
        cluster.bootstrap(),
        &["topic", "create", TOPIC, "-p", "3", "-r", "3"],
        b"",
    )?;
    let _ = rill_ok(
        cluster.bootstrap(),
        &["topic", "create", "single", "-p", "1", "-r", "1"],
        b"",
    )?;
    let first = cluster.bootstrap_of(1)?;
    let _ = settled(&first)?;
    // Whatever the first elections gave, every partition is led by its preferred replica
    // once every partition was asked for (null: those not needing it are left out).
    let (code, _) = elect(&first, 2, 0, None, 15_000)?;
    ensure!(code == 0, "top-level {code}");
    let start = settled(&first)?;
    for (p, placement) in &start {
        ensure!(
            placement.replicas.first() == Some(&placement.leader),
            "partition {p}: {placement:?}"
        );
    }
    let preferred = |p: i32| start[&p].replicas[0];
    ensure!(elect(&first, 2, 0, None, 15_000)? == answer(&[]));

    let mut acked = BTreeMap::new();
    produce(cluster.bootstrap(), "first", 150, &mut acked)?;

    // Partition 0's preferred replica killed: while it is down, it cannot be elected.
    let p0 = preferred(0);
    cluster.kill(p0)?;
    let other = cluster.bootstrap_of(if p0 == 1 { 2 } else { 1 })?;
    wait_until(
        "partition 0 led without its preferred replica",
        SETTLE,
        || {
            let seen = placements(&other, TOPIC)?;
            Ok(
                (seen[&0].leader >= 0 && seen[&0].leader != p0 && !seen[&0].isr.contains(&p0))
                    .then_some(()),
            )
        },
    )?;
    let got = elect(&other, 2, 0, Some(&[(TOPIC, 0)]), 2_000)?;
    ensure!(
        got == answer(&[(TOPIC, 0, 80)]),
        "PREFERRED_LEADER_NOT_AVAILABLE while it is down: {got:?}"
    );
    let survivors = cluster
        .ids()
        .filter(|k| *k != p0)
        .map(|k| cluster.bootstrap_of(k))
        .collect::<Result<Vec<_>>>()?
        .join(",");
    produce(&survivors, "second", 150, &mut acked)?;
    cluster.start_node(p0)?;
    let before = settled(&other)?;
    ensure!(before[&0].leader != p0, "partition 0: {:?}", before[&0]);

    // Raw ElectLeaders v2, to the preferred replica's broker (it does not lead): NONE, then the
    // metadata names it at a higher epoch.
    let at_p0 = cluster.bootstrap_of(p0)?;
    let got = elect(&at_p0, 2, 0, Some(&[(TOPIC, 0)]), 4_000)?;
    ensure!(
        got == answer(&[(TOPIC, 0, 0)]),
        "preferred election of partition 0: {got:?}"
    );
    let after = placements(&other, TOPIC)?;
    ensure!(
        after[&0].leader == p0 && after[&0].epoch > before[&0].epoch,
        "partition 0 before {:?}, after {:?}",
        before[&0],
        after[&0]
    );
    // Again: not needed (v0 and v1 too, v0 answering with no top-level code).
    for version in 0..=2 {
        ensure!(
            elect(&other, version, 0, Some(&[(TOPIC, 0)]), 15_000)? == answer(&[(TOPIC, 0, 84)]),
            "second election at v{version}"
        );
    }
    // Unknown partitions, UNCLEAN, one replica.
    ensure!(
        elect(
            &other,
            2,
            0,
            Some(&[("nope", 0), (TOPIC, 7), ("single", 0)]),
            15_000
        )? == answer(&[("nope", 0, 3), (TOPIC, 7, 3), ("single", 0, 84)])
    );
    ensure!(
        elect(&other, 2, 1, Some(&[(TOPIC, 0), (TOPIC, 1)]), 15_000)?
            == answer(&[(TOPIC, 0, 84), (TOPIC, 1, 84)]),
        "UNCLEAN is never needed while a leader is there"
    );
    // The new leader takes writes.
    produce(cluster.bootstrap(), "third", 150, &mut acked)?;

    // The CLI, for partition 1.
    let p1 = preferred(1);
    let before = bounce(&mut cluster, p1)?;
    ensure!(before[&1].leader != p1, "partition 1: {:?}", before[&1]);
    let (out, _) = rill_ok(
        cluster.bootstrap(),
        &["topic", "elect-leaders", TOPIC, "1"],
        b"",
    )?;
    ensure!(
        common::rows(&out)
            .iter()
            .any(|r| r == &[TOPIC, "1", "elected"]),
        "{out}"
    );
    let after = placements(&other, TOPIC)?;
    ensure!(
        after[&1].leader == p1 && after[&1].epoch > before[&1].epoch,
        "partition 1 before {:?}, after {:?}",
        before[&1],
        after[&1]
    );
    let (out, _) = rill_ok(cluster.bootstrap(), &["topic", "elect-leaders", TOPIC], b"")?;
    ensure!(
        (0..PARTITIONS).all(|p| common::rows(&out)
            .iter()
            .any(|r| r == &[TOPIC, &p.to_string(), "not", "needed"])),
        "{out}"
    );

    // kafka-python's KafkaAdminClient.elect_leaders, for partition 2.
    let p2 = preferred(2);
    let before = bounce(&mut cluster, p2)?;
    ensure!(before[&2].leader != p2, "partition 2: {:?}", before[&2]);
    let asked = format!("{{\"{TOPIC}\": [2]}}");
    let answered = run_py(
        "elect.py",
        &[
            cluster.bootstrap().to_owned(),
            "0".to_owned(),
            "--partitions".to_owned(),
            asked,
        ],
        b"",
    )?;
    ensure!(
        answered == serde_json::json!({"error": 0, "results": {"orders-2": 0}}),
        "{answered}"
    );
    let after = placements(&other, TOPIC)?;
    ensure!(
        after[&2].leader == p2 && after[&2].epoch > before[&2].epoch,
        "partition 2 before {:?}, after {:?}",
        before[&2],
        after[&2]
    );

    // Every partition at once (null): only the one that needed it is answered.
    let before = bounce(&mut cluster, p0)?;
    ensure!(before[&0].leader != p0, "partition 0: {:?}", before[&0]);
    ensure!(elect(&other, 2, 0, None, 15_000)? == answer(&[(TOPIC, 0, 0)]));
    let after = placements(&other, TOPIC)?;
    for p in 0..PARTITIONS {
        ensure!(
            after[&p].leader == preferred(p),
            "partition {p}: {:?}",
            after[&p]
        );
    }

    // Every acknowledged record is still there, at its offset.
    let read = read_all(cluster.bootstrap(), TOPIC, PARTITIONS, acked.len())?;
    ensure!(
        read == acked,
        "read {} records, {} acknowledged",
        read.len(),
        acked.len()
    );
    cluster.stop()
}
