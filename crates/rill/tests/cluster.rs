//! Three brokers in one metadata quorum (`scripts/cluster.sh`): topics created through any
//! broker are spread over all of them; clients given one broker find the rest; the quorum's
//! leader is killed and the cluster goes on (new topics, produce to the partitions still
//! led); its partitions lose their leader after the session timeout; when it comes back it
//! leads them again at a higher leader epoch with its data intact, and every broker answers
//! the same Metadata. A consumer group commits through one broker and resumes through
//! another.

#[macro_use]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use common::{
    Client, Cluster, Conn, MetadataView, Rec, Result, committed_of, consume_from, find_coordinator,
    group_consume, produce_to, rill_ok, wait_until,
};
use rill_record::{BatchBuilder, RecordSpec};
use serde_json::Value;

/// Short, so that fencing shows within the test; the brokers heartbeat well inside it.
const SESSION_TIMEOUT_MS: &str = "1500";
/// Bound on anything the cluster should settle within (elections, fencing, rejoining).
const SETTLE: Duration = Duration::from_secs(20);
/// Kafka's LEADER_NOT_AVAILABLE.
const LEADER_NOT_AVAILABLE: i16 = 5;
/// Kafka's NOT_LEADER_OR_FOLLOWER.
const NOT_LEADER_OR_FOLLOWER: i16 = 6;

fn start_cluster() -> Result<Cluster> {
    Cluster::start(
        3,
        &[
            "--broker-session-timeout-ms",
            SESSION_TIMEOUT_MS,
            "--group-initial-rebalance-delay-ms",
            "200",
        ],
    )
}

/// `rill topic create TOPIC -p PARTITIONS` through `bootstrap`.
fn create(bootstrap: &str, topic: &str, partitions: i32) -> Result<()> {
    let _ = rill_ok(
        bootstrap,
        &["topic", "create", topic, "-p", &partitions.to_string()],
        b"",
    )?;
    Ok(())
}

/// Waits until every broker in `brokers` answers the same Metadata, which lists `topics` with
/// a leader for every partition; returns it.
fn agreed(cluster: &Cluster, brokers: &[i32], topics: &[&str]) -> Result<MetadataView> {
    wait_until("every broker answering the same Metadata", SETTLE, || {
        let views = brokers
            .iter()
            .map(|k| cluster.metadata(*k))
            .collect::<Result<Vec<_>>>()?;
        let first = views.first().context("no broker")?;
        for (k, view) in brokers.iter().zip(&views) {
            ensure!(
                view == first,
                "broker {k} answers {view:?}, broker {} {first:?}",
                brokers[0]
            );
        }
        for topic in topics {
            for (p, view) in first.partitions(topic)? {
                ensure!(
                    view.error == 0 && view.leader >= 0,
                    "{topic}/{p} has no leader: {view:?}"
                );
            }
        }
        Ok(Some(first.clone()))
    })
}

/// `count` records spread round robin over `partitions`, values `TAG-i`.
fn spread(tag: &str, count: usize, partitions: &[i32]) -> Vec<Rec> {
    (0..count)
        .map(|i| Rec {
            partition: Some(partitions[i % partitions.len()]),
            ..Rec::kv(format!("key-{i}"), format!("{tag}-{i}"))
        })
        .collect()
}

/// Produces with confluent-kafka through `bootstrap`; returns (partition, offset) -> value.
fn produce_placed(
    bootstrap: &str,
    topic: &str,
    records: &[Rec],
) -> Result<BTreeMap<(i32, i64), String>> {
    let deliveries = produce_to(bootstrap, Client::Confluent, topic, records, &[])?;
    let mut placed = BTreeMap::new();
    for d in deliveries {
        let value = records[d.index].value.clone().unwrap_or_default();
        ensure!(
            placed
                .insert((d.partition, d.offset), String::from_utf8(value)?)
                .is_none(),
            "two records acknowledged at {}/{}",
            d.partition,
            d.offset
        );
    }
    Ok(placed)
}

/// Every record of `topic` read with `rill consume --from-beginning -e -J` through
/// `bootstrap`, checking offsets are contiguous from 0 in each partition: (partition, offset)
/// -> value.
fn rill_read_all(bootstrap: &str, topic: &str) -> Result<BTreeMap<(i32, i64), String>> {
    let (stdout, _) = rill_ok(
        bootstrap,
        &["consume", topic, "--from-beginning", "-e", "-J"],
        b"",
    )?;
    let mut read = BTreeMap::new();
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    for line in stdout.lines() {
        let record: Value = serde_json::from_str(line).with_context(|| format!("line {line}"))?;
        let partition = i32::try_from(record["partition"].as_i64().context("partition")?)?;
        let offset = record["offset"].as_i64().context("offset")?;
        let expected = next.entry(partition).or_insert(0);
        ensure!(
            offset == *expected,
            "{topic}/{partition}: offset {offset} where {expected} was next"
        );
        *expected += 1;
        let value = record["value"].as_str().context("value")?.to_owned();
        let _ = read.insert((partition, offset), value);
    }
    Ok(read)
}

/// The metadata quorum's leader: every broker names the same one, and it says so itself.
fn quorum_leader(cluster: &Cluster) -> Result<i32> {
    wait_until("one quorum leader named by all", SETTLE, || {
        let named = cluster
            .ids()
            .map(|k| cluster.quorum_leader_seen_by(k))
            .collect::<Result<BTreeSet<_>>>()?;
        match named.iter().next() {
            Some(&l) if named.len() == 1 && l > 0 && cluster.is_quorum_leader(l)? => Ok(Some(l)),
            _ => Ok(None),
        }
    })
}

/// The partitions of `topic` in `view` led by `node`.
fn led_by(view: &MetadataView, topic: &str, node: i32) -> Result<Vec<i32>> {
    Ok(view
        .leaders(topic)?
        .into_iter()
        .filter(|(_, leader)| *leader == node)
        .map(|(p, _)| p)
        .collect())
}

#[test]
fn three_brokers_lose_the_quorum_leader_and_take_it_back() -> Result<()> {
    let test_started = Instant::now();
    let mut cluster = start_cluster()?;
    let all: Vec<i32> = cluster.ids().collect();

    // Topics created through three different brokers.
    create(&cluster.bootstrap_of(1)?, "orders", 6)?;
    create(&cluster.bootstrap_of(2)?, "payments", 3)?;
    create(&cluster.bootstrap_of(3)?, "audit", 4)?;
    let before = agreed(&cluster, &all, &["orders", "payments", "audit"])?;
    let addresses: BTreeMap<i32, String> = all
        .iter()
        .map(|k| Ok((*k, cluster.bootstrap_of(*k)?)))
        .collect::<Result<_>>()?;
    ensure!(before.brokers == addresses, "brokers {:?}", before.brokers);
    for (topic, partitions) in [("orders", 6), ("payments", 3), ("audit", 4)] {
        let leaders = before.leaders(topic)?;
        ensure!(leaders.len() == partitions, "{topic}: {leaders:?}");
        let distinct: BTreeSet<i32> = leaders.values().copied().collect();
        ensure!(
            distinct == all.iter().copied().collect(),
            "{topic} is not spread over all three brokers: {leaders:?}"
        );
    }

    // A broker that does not lead a partition refuses its Produce and ListOffsets.
    for (p, leader) in before.leaders("orders")? {
        let other = all
            .iter()
            .copied()
            .find(|k| *k != leader)
            .context("another")?;
        let mut conn = Conn::open_to(&cluster.bootstrap_of(other)?)?;
        let batch = BatchBuilder::new()
            .record(RecordSpec::new(1_700_000_000_000).value(b"misdirected".to_vec()))
            .build()?;
        let (code, _) = conn.produce("orders", p, batch)?;
        ensure!(
            code == NOT_LEADER_OR_FOLLOWER,
            "Produce to orders/{p} on broker {other} (leader {leader}): error {code}"
        );
        let (code, _) = conn.offset("orders", p, -1)?;
        ensure!(
            code == NOT_LEADER_OR_FOLLOWER,
            "ListOffsets of orders/{p} on broker {other} (leader {leader}): error {code}"
        );
    }

    // confluent-kafka produces through broker 1 only; rill consume reads through broker 2 only.
    let partitions: Vec<i32> = (0..6).collect();
    let first = spread("first", 120, &partitions);
    let mut orders = produce_placed(&cluster.bootstrap_of(1)?, "orders", &first)?;
    ensure!(
        orders.len() == 120 && orders.keys().filter(|(p, _)| *p == 0).count() == 20,
        "placed {orders:?}"
    );
    // Each partition got its records in the order produced, at offsets 0..20.
    for p in &partitions {
        let values: Vec<&String> = orders.range((*p, 0)..(*p + 1, 0)).map(|(_, v)| v).collect();
        let expected: Vec<String> = (0..20).map(|i| format!("first-{}", i * 6 + p)).collect();
        ensure!(
            values
                .iter()
                .map(|v| v.as_str())
                .eq(expected.iter().map(String::as_str)),
            "orders/{p}: {values:?}"
        );
    }
    let read = rill_read_all(&cluster.bootstrap_of(2)?, "orders")?;
    ensure!(read == orders, "read through broker 2: {read:?}");

    // rill produce through broker 3, confluent-kafka reads through broker 1.
    let lines: String = (0..30).map(|i| format!("k{i}:payment-{i}\n")).collect();
    let _ = rill_ok(
        &cluster.bootstrap_of(3)?,
        &["produce", "payments", "-K", ":"],
        lines.as_bytes(),
    )?;
    let payments = consume_from(
        &cluster.bootstrap_of(1)?,
        Client::Confluent,
        "payments",
        3,
        30,
        &[],
    )?;
    common::check_offsets(&payments)?;
    let mut values: Vec<String> = payments
        .records
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
        .collect();
    // Per partition in the order produced (the number after `payment-` ascends).
    for p in 0..3 {
        let numbers: Vec<u32> = payments
            .records
            .iter()
            .filter(|r| r.partition == p)
            .map(|r| {
                let value =
                    String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned();
                value["payment-".len()..].parse().unwrap_or(u32::MAX)
            })
            .collect();
        ensure!(
            numbers.windows(2).all(|w| w[0] < w[1]),
            "payments/{p} out of order: {numbers:?}"
        );
    }
    values.sort();
    let mut expected: Vec<String> = (0..30).map(|i| format!("payment-{i}")).collect();
    expected.sort();
    ensure!(values == expected, "payments read {values:?}");

    // The quorum's leader: every broker names the same one, and it says so itself.
    let leader = quorum_leader(&cluster)?;
    let survivors: Vec<i32> = all.iter().copied().filter(|k| *k != leader).collect();
    let led_before = led_by(&before, "orders", leader)?;
    ensure!(
        !led_before.is_empty(),
        "broker {leader} leads no orders partition"
    );
    eprintln!("quorum leader: broker {leader}, leading orders partitions {led_before:?}");

    cluster.kill(leader)?;
    let killed_at = Instant::now();

    // A survivor creates a topic once the other two have elected a leader.
    let survivor = cluster.bootstrap_of(survivors[0])?;
    wait_until("CreateTopics through a survivor", SETTLE, || {
        match create(&survivor, "after-kill", 4) {
            Ok(()) => Ok(Some(())),
            // An earlier try went through, but its answer did not.
            Err(err) if format!("{err:#}").contains("already exists") => Ok(Some(())),
            Err(err) => Err(err),
        }
    })?;
    eprintln!(
        "after killing the quorum leader, CreateTopics succeeded through broker {} after {:?}",
        survivors[0],
        killed_at.elapsed()
    );

    // After the session timeout the dead broker's partitions have no leader, on every survivor.
    wait_until(
        "the killed broker's partitions losing their leader",
        SETTLE,
        || {
            for k in &survivors {
                let view = cluster.metadata(*k)?;
                ensure!(
                    !view.brokers.contains_key(&leader),
                    "broker {k} still lists broker {leader}: {:?}",
                    view.brokers
                );
                let (_, parts) = view.topics.get("orders").context("orders")?;
                for p in &led_before {
                    let part = parts.get(p).context("partition")?;
                    ensure!(
                        part.leader == -1 || part.error == LEADER_NOT_AVAILABLE,
                        "broker {k}: orders/{p} is {part:?}"
                    );
                }
            }
            Ok(Some(()))
        },
    )?;
    eprintln!(
        "broker {leader}'s partitions showed no leader {:?} after the kill",
        killed_at.elapsed()
    );
    // after-kill may have been placed on the killed broker too, if it was created before the
    // broker's session ran out (Kafka's controller places on every unfenced broker): those
    // partitions have no leader until it returns; the others are led by the survivors.
    let during = agreed(&cluster, &survivors, &[])?;
    let after_kill_leaders = during.leaders("after-kill")?;
    ensure!(
        after_kill_leaders
            .values()
            .all(|l| *l == -1 || survivors.contains(l)),
        "after-kill is led by {after_kill_leaders:?}, expected the survivors {survivors:?} or none"
    );
    let after_kill_live: Vec<i32> = after_kill_leaders
        .iter()
        .filter(|(_, l)| **l >= 0)
        .map(|(p, _)| *p)
        .collect();
    ensure!(
        !after_kill_live.is_empty(),
        "after-kill has no led partition"
    );

    // The partitions still led keep taking records, through one survivor.
    let live: Vec<i32> = partitions
        .iter()
        .copied()
        .filter(|p| !led_before.contains(p))
        .collect();
    let second = spread("second", 40, &live);
    orders.extend(produce_placed(&survivor, "orders", &second)?);
    let after_kill = produce_placed(&survivor, "after-kill", &spread("ak", 20, &after_kill_live))?;

    // The killed broker comes back and leads its partitions again, at a higher epoch.
    let restart = Instant::now();
    cluster.start_node(leader)?;
    eprintln!("broker {leader} rejoined in {:?}", restart.elapsed());
    let topics = ["orders", "payments", "audit", "after-kill"];
    let after = agreed(&cluster, &all, &topics)?;
    eprintln!(
        "every broker answered the same Metadata {:?} after the restart",
        restart.elapsed()
    );
    ensure!(
        after.brokers.keys().copied().collect::<Vec<_>>() == all,
        "brokers after the restart: {:?}",
        after.brokers
    );
    for topic in ["orders", "payments", "audit"] {
        let (was, is) = (before.partitions(topic)?, after.partitions(topic)?);
        ensure!(was.len() == is.len(), "{topic}: {was:?} then {is:?}");
        for (p, old) in was {
            let new = is[p];
            ensure!(
                new.leader == old.leader,
                "{topic}/{p} was led by {}, now by {}",
                old.leader,
                new.leader
            );
            if old.leader == leader {
                ensure!(
                    new.epoch > old.epoch,
                    "{topic}/{p}: leader epoch {} before the kill, {} after",
                    old.epoch,
                    new.epoch
                );
            }
        }
    }

    // Everything is readable through the restarted broker alone: the old data it kept and what
    // the others took while it was down.
    let bootstrap = cluster.bootstrap_of(leader)?;
    let read = rill_read_all(&bootstrap, "orders")?;
    ensure!(
        read == orders,
        "orders read through broker {leader}: {} records, expected {}",
        read.len(),
        orders.len()
    );
    let read = rill_read_all(&bootstrap, "after-kill")?;
    ensure!(read == after_kill, "after-kill read {read:?}");

    cluster.stop()?;
    eprintln!("test took {:?}", test_started.elapsed());
    Ok(())
}

/// Bound on a metadata change through a survivor after the quorum's leader dies: the session
/// timeout, an election (raft-rs's default election ticks), and a few retries.
const FAILOVER: Duration = Duration::from_secs(5);

/// A topic created through a survivor right after the quorum's leader is killed is there
/// within a few seconds (the client retrying what is refused), not after the 10 s proposal
/// timeout.
#[test]
fn a_topic_is_created_promptly_after_the_quorum_leader_dies() -> Result<()> {
    let mut cluster = start_cluster()?;
    let leader = quorum_leader(&cluster)?;
    let survivor = cluster.ids().find(|k| *k != leader).context("a survivor")?;
    let bootstrap = cluster.bootstrap_of(survivor)?;
    cluster.kill(leader)?;
    let killed_at = Instant::now();
    let mut attempts = Vec::new();
    wait_until("CreateTopics through a survivor", FAILOVER, || {
        let started = Instant::now();
        let result = create(&bootstrap, "prompt", 2);
        attempts.push((
            started.elapsed(),
            result.as_ref().err().map(|e| format!("{e:#}")),
        ));
        match result {
            Ok(()) => Ok(Some(())),
            Err(err) if format!("{err:#}").contains("already exists") => Ok(Some(())),
            Err(err) => Err(err),
        }
    })
    .with_context(|| format!("attempts (duration, error): {attempts:?}"))?;
    let took = killed_at.elapsed();
    ensure!(
        took < FAILOVER,
        "created {took:?} after the kill; attempts (duration, error): {attempts:?}"
    );
    Ok(())
}

#[test]
fn a_consumer_group_commits_through_one_broker_and_resumes_through_another() -> Result<()> {
    let cluster = start_cluster()?;
    let all: Vec<i32> = cluster.ids().collect();
    create(&cluster.bootstrap_of(2)?, "events", 6)?;
    let _ = agreed(&cluster, &all, &["events"])?;
    let group = "billing";

    // Every broker names the same coordinator (the offsets topic may still be being placed).
    let coordinator = wait_until("one coordinator named by every broker", SETTLE, || {
        let mut named = BTreeSet::new();
        for k in &all {
            let (error, node) = find_coordinator(&cluster.bootstrap_of(*k)?, group)?;
            if error != 0 {
                return Ok(None);
            }
            let _ = named.insert(node);
        }
        Ok((named.len() == 1).then(|| named.first().copied()).flatten())
    })?;
    ensure!(all.contains(&coordinator), "coordinator {coordinator}");
    // Run the group through a broker that is not the coordinator.
    let other = all
        .iter()
        .copied()
        .find(|k| *k != coordinator)
        .context("a second broker")?;
    let third = all
        .iter()
        .copied()
        .find(|k| *k != coordinator && *k != other)
        .context("a third broker")?;

    let partitions: Vec<i32> = (0..6).collect();
    let first = produce_placed(
        &cluster.bootstrap_of(1)?,
        "events",
        &spread("first", 60, &partitions),
    )?;
    group_consume(&cluster.bootstrap_of(other)?, "events", group, &first)
        .context("first member, through a broker that does not coordinate the group")?;
    let committed = committed_of(&cluster.bootstrap_of(third)?, group, "events")?;
    let ends: BTreeMap<i32, i64> = partitions.iter().map(|p| (*p, 10)).collect();
    ensure!(
        committed == ends,
        "committed {committed:?}, log ends {ends:?}"
    );

    let second = produce_placed(
        &cluster.bootstrap_of(3)?,
        "events",
        &spread("second", 30, &partitions),
    )?;
    group_consume(&cluster.bootstrap_of(third)?, "events", group, &second)
        .context("second member, resuming through another broker")?;
    let committed = committed_of(&cluster.bootstrap_of(coordinator)?, group, "events")?;
    let ends: BTreeMap<i32, i64> = partitions.iter().map(|p| (*p, 15)).collect();
    ensure!(
        committed == ends,
        "committed {committed:?}, log ends {ends:?}"
    );
    Ok(())
}
