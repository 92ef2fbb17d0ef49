//! Replicated partitions (one Raft group per partition) on three real brokers: a topic created
//! with replication factor 3 has three replicas of every partition, elects a leader for each,
//! and keeps byte-identical logs on every broker; a produce with `acks=all` is answered once a
//! majority has the records; the leader killed with SIGKILL, another replica leads at a higher
//! epoch, every acknowledged record is still there at its offset, and the killed broker, back,
//! catches up to the same bytes. A replication factor above the brokers is refused.
//! A leader whose data fails its CRC refuses to serve it, quarantines it and is repaired from
//! the new leader. `__consumer_offsets` is replicated too: a group's committed offsets survive the kill of its
//! coordinator, and the group resumes from them through another broker.

#[macro_use]
mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, ensure};
use common::{
    Acked, Client, Cluster, Conn, Rec, Result, call, committed_of, connect_to, delete_before,
    find_coordinator, group_consume, log_bytes, log_end, placements, produce_acked,
    produce_request, produce_to, read_all, read_response, rill, rill_ok, send_request, wait_until,
};
use rill_protocol::StrBytes;
use rill_protocol::kafka_protocol::messages::InitProducerIdRequest;
use rill_protocol::kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use rill_protocol::kafka_protocol::messages::{OffsetForLeaderEpochRequest, TopicName};
use rill_protocol::{ApiKey, ResponseKind};
use rill_record::Batches;

/// Bound on anything the cluster should settle within (elections, catching up).
const SETTLE: Duration = Duration::from_secs(20);

/// OffsetForLeaderEpoch v4 for partition 0 of `topic`: (error, epoch, end offset).
fn epoch_end(addr: &str, topic: &str, current: i32, epoch: i32) -> Result<(i16, i32, i64)> {
    epoch_end_at(addr, topic, current, epoch, 4)
}

/// [`epoch_end`] at `version` (v0-1 carry no current epoch, v0 answers no epoch).
fn epoch_end_at(
    addr: &str,
    topic: &str,
    current: i32,
    epoch: i32,
    version: i16,
) -> Result<(i16, i32, i64)> {
    let mut conn = Conn::open_to(addr)?;
    let request = OffsetForLeaderEpochRequest::default()
        .with_replica_id((-1).into())
        .with_topics(vec![
            OffsetForLeaderTopic::default()
                .with_topic(TopicName(StrBytes::from_string(topic.to_owned())))
                .with_partitions(vec![
                    OffsetForLeaderPartition::default()
                        .with_partition(0)
                        .with_current_leader_epoch(current)
                        .with_leader_epoch(epoch),
                ]),
        ]);
    let response = ask!(&mut conn, OffsetForLeaderEpoch, version, request);
    let p = response
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .context("no partition in the answer")?;
    Ok((p.error_code, p.leader_epoch, p.end_offset))
}

/// `count` records spread round robin over `partitions`, values `TAG-i`.
fn spread(tag: &str, count: usize, partitions: i32) -> Vec<Rec> {
    (0..count)
        .map(|i| Rec {
            partition: Some(i32::try_from(i).unwrap_or(0) % partitions),
            ..Rec::kv(format!("key-{i}"), format!("{tag}-{i}"))
        })
        .collect()
}

/// Waits until every partition of `topic` has a leader and all three replicas in sync; their
/// placements.
fn settled(cluster: &Cluster, topic: &str) -> Result<BTreeMap<i32, common::Placement>> {
    wait_until(
        "a leader and three in sync for every partition",
        SETTLE,
        || {
            let seen = placements(cluster.bootstrap(), topic)?;
            let all = !seen.is_empty() && seen.values().all(|p| p.leader > 0 && p.isr.len() == 3);
            Ok(all.then_some(seen))
        },
    )
}

/// The leader of partition 0 of `topic`, once [`settled`].
fn leader_of_0(cluster: &Cluster, topic: &str) -> Result<i32> {
    settled(cluster, topic)?
        .get(&0)
        .map(|p| p.leader)
        .context("no partition 0")
}

/// Waits until every broker in `brokers` holds the same bytes for every partition, with at
/// least `min_len` bytes in each.
fn identical(cluster: &Cluster, brokers: &[i32], topic: &str, partitions: i32) -> Result<()> {
    wait_until("every replica holding the same bytes", SETTLE, || {
        for p in 0..partitions {
            let logs = brokers
                .iter()
                .map(|k| log_bytes(&cluster.data_dir(*k), topic, p))
                .collect::<Result<Vec<_>>>()?;
            let first = logs.first().context("no broker")?;
            ensure!(!first.is_empty(), "partition {p} is empty");
            for (k, log) in brokers.iter().zip(&logs) {
                ensure!(
                    log == first,
                    "partition {p}: broker {k} holds {} bytes, broker {} {}",
                    log.len(),
                    brokers[0],
                    first.len()
                );
            }
        }
        Ok(Some(()))
    })
}

#[test]
fn an_rf3_topic_keeps_every_acknowledged_record_through_a_leader_kill() -> Result<()> {
    let mut cluster = Cluster::start(3, &["--broker-session-timeout-ms", "1500"])?;
    let topic = "orders";
    let partitions = 3;

    // More replicas than brokers: refused, as Kafka does.
    let refused = rill(
        cluster.bootstrap(),
        &["topic", "create", "too-many", "-r", "4"],
        b"",
    )?;
    ensure!(!refused.status.success(), "RF 4 on 3 brokers was accepted");
    ensure!(
        refused.stderr.contains("INVALID_REPLICATION_FACTOR"),
        "{}",
        refused.stderr
    );

    let _ = rill_ok(
        cluster.bootstrap(),
        &["topic", "create", topic, "-p", "3", "-r", "3"],
        b"",
    )?;
    let before = settled(&cluster, topic)?;
    for (p, placement) in &before {
        let mut replicas = placement.replicas.clone();
        replicas.sort_unstable();
        ensure!(replicas == [1, 2, 3], "partition {p}: {placement:?}");
        ensure!(placement.epoch >= 1, "partition {p}: {placement:?}");
    }

    // acks=all through every broker's bootstrap: offsets from 0, in order, per partition.
    let first = spread("first", 300, partitions);
    let mut acked = produce_acked(cluster.bootstrap(), topic, "first", &first, &[])?;
    for p in 0..partitions {
        let offsets: Vec<i64> = acked
            .keys()
            .filter(|(q, _)| *q == p)
            .map(|(_, o)| *o)
            .collect();
        ensure!(
            offsets == (0..100).collect::<Vec<_>>(),
            "partition {p}: {offsets:?}"
        );
    }
    ensure!(read_all(cluster.bootstrap(), topic, partitions, 300)? == acked);
    identical(&cluster, &[1, 2, 3], topic, partitions)?;

    // Kill partition 0's leader; the others elect a new one at a higher epoch and go on.
    let victim = before[&0].leader;
    cluster.kill(victim)?;
    let survivors: Vec<i32> = cluster.ids().filter(|k| *k != victim).collect();
    let bootstrap = survivors
        .iter()
        .map(|k| cluster.bootstrap_of(*k))
        .collect::<Result<Vec<_>>>()?
        .join(",");
    let second = spread("second", 300, partitions);
    for ((partition, offset), value) in produce_acked(&bootstrap, topic, "second", &second, &[])? {
        ensure!(
            acked.insert((partition, offset), value).is_none(),
            "offset {offset} of partition {partition} acknowledged twice"
        );
    }
    let after = placements(&bootstrap, topic)?;
    ensure!(
        after[&0].leader != victim && after[&0].epoch > before[&0].epoch,
        "partition 0 before {:?}, after {:?}",
        before[&0],
        after[&0]
    );
    ensure!(read_all(&bootstrap, topic, partitions, 600)? == acked);
    identical(&cluster, &survivors, topic, partitions)?;

    // OffsetForLeaderEpoch on the new leader: the old epoch's records end where the new
    // epoch's start (offset 100), the new one's at the log end; a stale current epoch is fenced.
    let leader = cluster.bootstrap_of(after[&0].leader)?;
    let (old, new) = (before[&0].epoch, after[&0].epoch);
    ensure!(epoch_end(&leader, topic, new, old)? == (0, old, 100));
    ensure!(epoch_end(&leader, topic, new, new)? == (0, new, 200));
    ensure!(
        epoch_end(&leader, topic, old, old)?.0 == 74,
        "FENCED_LEADER_EPOCH"
    );

    // Back with its data: it follows, catches up, and holds the same bytes.
    cluster.start_node(victim)?;
    identical(&cluster, &[1, 2, 3], topic, partitions)?;
    let _ = settled(&cluster, topic)?;
    ensure!(read_all(cluster.bootstrap(), topic, partitions, 600)? == acked);
    cluster.stop()
}

/// The batches of partition 0 on broker `k` that hold offsets at or above `from`, by base
/// offset.
fn batches_from(cluster: &Cluster, k: i32, topic: &str, from: i64) -> Result<Vec<(i64, Vec<u8>)>> {
    let bytes = log_bytes(&cluster.data_dir(k), topic, 0)?;
    let mut out = Vec::new();
    for batch in Batches::new(&bytes) {
        let batch = batch?;
        if batch.header().next_offset() > from {
            out.push((batch.header().base_offset, batch.as_bytes().to_vec()));
        }
    }
    Ok(out)
}

/// DeleteRecords on a replicated partition is an entry of its log: every replica moves its
/// log start, so the next leader starts where the last one did. A broker back with an empty
/// data dir is behind every log start: its replica restarts its log at the leader's start (a
/// Raft snapshot that carries no records), takes the rest as ordinary entries, and holds the
/// same batches as the others.
#[test]
fn delete_records_holds_across_leaders_and_a_wiped_broker_catches_up() -> Result<()> {
    let mut cluster = Cluster::start(3, &["--broker-session-timeout-ms", "1500"])?;
    let topic = "events";
    let _ = rill_ok(
        cluster.bootstrap(),
        &["topic", "create", topic, "-p", "1", "-r", "3"],
        b"",
    )?;
    let records = spread("e", 200, 1);
    let _ = produce_to(
        cluster.bootstrap(),
        Client::Confluent,
        topic,
        &records,
        &["--acks", "all"],
    )?;
    let leader = leader_of_0(&cluster, topic)?;
    ensure!(delete_before(&cluster.bootstrap_of(leader)?, topic, 50)? == (0, 50));
    // Beyond the high watermark: refused.
    ensure!(delete_before(&cluster.bootstrap_of(leader)?, topic, 201)?.0 == 1);

    // A new leader starts at 50 too.
    cluster.kill(leader)?;
    let survivors: Vec<i32> = cluster.ids().filter(|k| *k != leader).collect();
    let bootstrap = survivors
        .iter()
        .map(|k| cluster.bootstrap_of(*k))
        .collect::<Result<Vec<_>>>()?
        .join(",");
    let read = read_all(&bootstrap, topic, 1, 150)?;
    let offsets: Vec<i64> = read.keys().map(|(_, o)| *o).collect();
    ensure!(offsets == (50..200).collect::<Vec<_>>(), "{offsets:?}");
    cluster.start_node(leader)?;

    // A follower loses its whole data dir.
    let now = placements(cluster.bootstrap(), topic)?;
    let wiped = cluster
        .ids()
        .find(|k| *k != now[&0].leader)
        .context("a follower")?;
    cluster.kill(wiped)?;
    std::fs::remove_dir_all(cluster.data_dir(wiped))?;
    std::fs::create_dir_all(cluster.data_dir(wiped))?;
    cluster.start_node(wiped)?;
    let others: Vec<i32> = cluster.ids().filter(|k| *k != wiped).collect();
    wait_until("the wiped broker holding the same batches", SETTLE, || {
        let want = batches_from(&cluster, others[0], topic, 50)?;
        let got = batches_from(&cluster, wiped, topic, 50).unwrap_or_default();
        ensure!(want == batches_from(&cluster, others[1], topic, 50)?);
        ensure!(
            got == want,
            "broker {wiped} holds {} batches from 50, broker {} {}",
            got.len(),
            others[0],
            want.len()
        );
        Ok(Some(()))
    })
    .with_context(|| cluster.logs_tail(60))?;
    cluster.stop()
}

/// The end of each partition `acked` reaches: where a group that read them all commits.
fn ends(acked: &Acked) -> BTreeMap<i32, i64> {
    let mut ends = BTreeMap::new();
    for (partition, offset) in acked.keys() {
        let end = ends.entry(*partition).or_insert(0);
        *end = (*end).max(offset + 1);
    }
    ends
}

#[test]
fn committed_offsets_survive_the_kill_of_the_group_coordinator() -> Result<()> {
    let mut cluster = Cluster::start(
        3,
        &[
            "--broker-session-timeout-ms",
            "1500",
            "--group-initial-rebalance-delay-ms",
            "200",
        ],
    )?;
    let (topic, group) = ("ledger", "auditors");
    let _ = rill_ok(
        cluster.bootstrap(),
        &["topic", "create", topic, "-p", "3", "-r", "3"],
        b"",
    )?;
    let first = produce_acked(
        cluster.bootstrap(),
        topic,
        "first",
        &spread("first", 60, 3),
        &[],
    )?;

    // The offsets topic is made on the group's first FindCoordinator: 50 partitions, each a
    // Raft group on all three brokers (offsets.topic.replication.factor 3). Rill does not list
    // it in Metadata, so its replicas are looked for on disk.
    let coordinator = wait_until("a coordinator for the group", SETTLE, || {
        let (error, node) = find_coordinator(&cluster.bootstrap_of(1)?, group)?;
        Ok((error == 0).then_some(node))
    })?;
    wait_until(
        "a replica of every offsets partition on every broker",
        SETTLE,
        || {
            for k in cluster.ids() {
                for p in 0..50 {
                    let state = cluster
                        .data_dir(k)
                        .join(format!("__consumer_offsets-{p}"))
                        .join("replica-state");
                    ensure!(
                        state.is_file(),
                        "no replica of __consumer_offsets-{p} on broker {k}"
                    );
                }
            }
            Ok(Some(()))
        },
    )?;

    group_consume(cluster.bootstrap(), topic, group, &first)?;
    let committed = committed_of(cluster.bootstrap(), group, topic)?;
    ensure!(committed == ends(&first), "committed {committed:?}");

    // SIGKILL the coordinator: another replica of the group's offsets partition leads it,
    // coordinates the group, and has every committed offset.
    cluster.kill(coordinator)?;
    let survivor = cluster
        .ids()
        .find(|k| *k != coordinator)
        .context("a survivor")?;
    let bootstrap = cluster.bootstrap_of(survivor)?;
    let next = wait_until("another coordinator", SETTLE, || {
        let (error, node) = find_coordinator(&bootstrap, group)?;
        Ok((error == 0 && node != coordinator).then_some(node))
    })?;
    ensure!(next != coordinator);
    let committed = wait_until(
        "the committed offsets from the new coordinator",
        SETTLE,
        || committed_of(&bootstrap, group, topic).map(Some),
    )?;
    ensure!(
        committed == ends(&first),
        "after the coordinator's kill: committed {committed:?}, expected {:?}",
        ends(&first)
    );

    // The group resumes where it committed: it reads only the new records, and commits again.
    let second = produce_acked(&bootstrap, topic, "second", &spread("second", 30, 3), &[])?;
    group_consume(&bootstrap, topic, group, &second)
        .context("the group resuming through the new coordinator")?;
    let mut all = first;
    all.extend(second);
    let committed = committed_of(&bootstrap, group, topic)?;
    ensure!(committed == ends(&all), "committed {committed:?}");
    Ok(())
}

#[test]
fn a_corrupt_replica_serves_nothing_and_is_repaired_from_the_leader() -> Result<()> {
    let cluster = Cluster::start(3, &["--broker-session-timeout-ms", "1500"])?;
    let topic = "ledger";
    let _ = rill_ok(
        cluster.bootstrap(),
        &["topic", "create", topic, "-p", "1", "-r", "3"],
        b"",
    )?;
    let acked = produce_acked(
        cluster.bootstrap(),
        topic,
        "rec",
        &spread("rec", 200, 1),
        &[],
    )?;
    identical(&cluster, &[1, 2, 3], topic, 1)?;
    let leader = leader_of_0(&cluster, topic)?;

    // Flip a byte inside the first batch's records on the leader's disk: its CRC fails.
    let segment = cluster
        .data_dir(leader)
        .join(format!("{topic}-0"))
        .join("00000000000000000000.log");
    let mut bytes = std::fs::read(&segment)?;
    let first_batch = usize::try_from(u32::from_be_bytes(
        bytes.get(8..12).context("a batch header")?.try_into()?,
    ))? + 12;
    ensure!(first_batch > 80, "the first batch is {first_batch} bytes");
    let flipped = bytes.get_mut(75).context("byte 75")?;
    *flipped ^= 0xff;
    std::fs::write(&segment, &bytes)?;

    // A reader gets every acknowledged record anyway: the leader refuses the bad bytes, and
    // another replica leads.
    let read = read_all(cluster.bootstrap(), topic, 1, acked.len())?;
    ensure!(
        read == acked,
        "read {} records, acknowledged {}",
        read.len(),
        acked.len()
    );
    let after = placements(cluster.bootstrap(), topic)?;
    ensure!(
        after.get(&0).is_some_and(|p| p.leader != leader),
        "{after:?}: broker {leader} still leads"
    );

    // The corrupt replica was quarantined (kept aside, counted) and copied again from the
    // leader: every broker holds the same bytes once more.
    identical(&cluster, &[1, 2, 3], topic, 1)?;
    let kept: Vec<String> = std::fs::read_dir(cluster.data_dir(leader).join("corrupt"))?
        .filter_map(std::result::Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    ensure!(
        kept.len() == 1 && kept.iter().all(|k| k.starts_with("ledger-0-")),
        "quarantined: {kept:?}"
    );
    let repairs = cluster
        .scrape(leader)?
        .value("rill_replica_repairs_total", &[]);
    ensure!((repairs - 1.0).abs() < f64::EPSILON, "{repairs} repairs");
    ensure!(
        cluster.log(leader).contains("fails its checks"),
        "the broker's log does not report the corruption"
    );
    let read = read_all(cluster.bootstrap(), topic, 1, acked.len())?;
    ensure!(
        read == acked,
        "after the repair: read {} records",
        read.len()
    );
    Ok(())
}

/// SIGSTOP (`stop`) or SIGCONT of broker `k`.
fn pause(cluster: &Cluster, k: i32, stop: bool) -> Result<()> {
    let pid = std::fs::read_to_string(cluster.dir().join(format!("node-{k}.pid")))?;
    let signal = if stop { "-STOP" } else { "-CONT" };
    let status = std::process::Command::new("kill")
        .args([signal, pid.trim()])
        .status()?;
    ensure!(status.success(), "kill {signal} {pid}");
    Ok(())
}

/// A Produce v9 answer's (error code, base offset) for the one partition it names.
fn produce_answer(response: ResponseKind) -> Result<(i16, i64)> {
    let ResponseKind::Produce(response) = response else {
        anyhow::bail!("not a Produce answer");
    };
    let p = response
        .responses
        .first()
        .and_then(|t| t.partition_responses.first())
        .context("no partition in the answer")?;
    Ok((p.error_code, p.base_offset))
}

#[test]
fn an_idempotent_retry_is_acknowledged_only_once_its_batch_is_committed() -> Result<()> {
    let cluster = Cluster::start(3, &[])?;
    let topic = "retried";
    let _ = rill_ok(
        cluster.bootstrap(),
        &["topic", "create", topic, "-p", "1", "-r", "3"],
        b"",
    )?;
    let leader = leader_of_0(&cluster, topic)?;
    let address = cluster.bootstrap_of(leader)?;
    let mut first = connect_to(&address)?;
    let mut retry = connect_to(&address)?;
    let ResponseKind::InitProducerId(init) = call(
        &mut first,
        ApiKey::InitProducerId,
        4,
        1,
        InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000),
    )?
    else {
        anyhow::bail!("not an InitProducerId answer");
    };
    let records = rill_record::BatchBuilder::new()
        .producer(init.producer_id.0, init.producer_epoch, 0)
        .record(rill_record::RecordSpec::new(1_700_000_000_000).value(b"once".to_vec()))
        .build()?;

    // Both followers stopped: the leader writes the batch but cannot commit it. The same batch
    // again (an idempotent producer's retry) must not be acknowledged before the original is.
    let followers: Vec<i32> = cluster.ids().filter(|k| *k != leader).collect();
    for k in &followers {
        pause(&cluster, *k, true)?;
    }
    let request = || produce_request(topic, 0, records.clone(), -1);
    send_request(&mut first, ApiKey::Produce, 9, 2, request())?;
    std::thread::sleep(Duration::from_millis(300));
    send_request(&mut retry, ApiKey::Produce, 9, 3, request())?;
    retry.set_read_timeout(Some(Duration::from_millis(1500)))?;
    let early = read_response(&mut retry, ApiKey::Produce, 9, 3);
    for k in &followers {
        pause(&cluster, *k, false)?;
    }
    if let Ok(answer) = early {
        let (error, offset) = produce_answer(answer)?;
        ensure!(
            error != 0,
            "the retry was acknowledged at offset {offset} while no follower could have the batch"
        );
    } else {
        // Still waiting: it is answered once the followers are back.
        retry.set_read_timeout(Some(Duration::from_secs(15)))?;
        let _ = produce_answer(read_response(&mut retry, ApiKey::Produce, 9, 3)?)?;
    }
    first.set_read_timeout(Some(Duration::from_secs(15)))?;
    let _ = produce_answer(read_response(&mut first, ApiKey::Produce, 9, 2)?)?;

    // Whatever those answers were, one more retry through the leader of the moment succeeds,
    // at offset 0, and the log holds the batch once.
    let (error, offset) = wait_until("the retry acknowledged", SETTLE, || {
        let seen = placements(cluster.bootstrap(), topic)?;
        let Some(now) = seen.get(&0).filter(|p| p.leader > 0).map(|p| p.leader) else {
            return Ok(None);
        };
        let mut stream = connect_to(&cluster.bootstrap_of(now)?)?;
        let answer = produce_answer(call(&mut stream, ApiKey::Produce, 9, 4, request())?)?;
        Ok((answer.0 == 0).then_some(answer))
    })?;
    ensure!(error == 0 && offset == 0, "({error}, {offset})");
    let now = placements(cluster.bootstrap(), topic)?
        .get(&0)
        .map(|p| p.leader)
        .context("a leader")?;
    let mut stream = connect_to(&cluster.bootstrap_of(now)?)?;
    let end = log_end(&mut stream, topic, 0, 5)?;
    ensure!(
        end == 1,
        "the log ends at {end}: the batch was written more than once"
    );
    Ok(())
}
