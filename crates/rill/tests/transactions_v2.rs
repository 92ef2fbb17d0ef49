//! Transaction version 2 (KIP-890 part 2) over raw Kafka requests, as a Kafka 4 Java producer
//! speaks it once a broker announces `transaction.version` 2 (none of the clients installable
//! here does yet): ApiVersions carries the feature, Produce v12 and TxnOffsetCommit v5 add
//! their partitions to the transaction themselves (no AddPartitionsToTxn or AddOffsetsToTxn),
//! and every EndTxn v5 bumps the producer's epoch, which its markers carry and its answer
//! hands back, so a late batch of an ended transaction is fenced in every partition.

#[macro_use]
mod common;

use anyhow::{Context, ensure};
use common::txn::{
    INVALID_PRODUCER_EPOCH, INVALID_TXN_STATE, NONE, PRODUCER_FENCED, Producer, READ_COMMITTED,
    READ_UNCOMMITTED, aborted, coordinator, create, describe, end_v5, fetch, init_ok, latest, name,
    produce_at, settled, text, txn_batch, txn_id,
};
use common::{Broker, Conn, Result};
use rill_protocol::kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use rill_protocol::kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use rill_protocol::kafka_protocol::messages::{
    ApiVersionsRequest, GroupId, OffsetFetchRequest, ProducerId, TxnOffsetCommitRequest,
};
use rill_record::Batches;

/// Each batch of a partition from offset 0, read uncommitted: (base offset, producer epoch,
/// whether it is a marker).
fn epochs(conn: &mut Conn, topic: &str, partition: i32) -> Result<Vec<(i64, i16, bool)>> {
    let data = fetch(conn, topic, partition, 0, READ_UNCOMMITTED)?;
    let records = data.records.unwrap_or_default();
    let mut out = Vec::new();
    for batch in Batches::new(&records) {
        let header = *batch?.header();
        out.push((
            header.base_offset,
            header.producer_epoch,
            header.attributes.is_control(),
        ));
    }
    Ok(out)
}

/// TxnOffsetCommit at `version` of one offset for `group`, as a member of no generation: the
/// partition's error code.
fn commit_offset(
    conn: &mut Conn,
    version: i16,
    producer: &Producer,
    group: &str,
    (topic, partition, offset): (&str, i32, i64),
) -> Result<i16> {
    let request = TxnOffsetCommitRequest::default()
        .with_transactional_id(txn_id(&producer.id))
        .with_group_id(GroupId(text(group)))
        .with_producer_id(ProducerId(producer.pid))
        .with_producer_epoch(producer.epoch)
        .with_topics(vec![
            TxnOffsetCommitRequestTopic::default()
                .with_name(common::txn::topic_name(topic))
                .with_partitions(vec![
                    TxnOffsetCommitRequestPartition::default()
                        .with_partition_index(partition)
                        .with_committed_offset(offset),
                ]),
        ]);
    let answer = ask!(conn, TxnOffsetCommit, version, request);
    answer
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .map(|p| p.error_code)
        .context("no partition in the TxnOffsetCommit answer")
}

/// The committed offset of `group` for one partition (OffsetFetch v7), -1 if none.
fn committed(conn: &mut Conn, group: &str, topic: &str, partition: i32) -> Result<i64> {
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(text(group)))
        .with_topics(Some(vec![
            OffsetFetchRequestTopic::default()
                .with_name(common::txn::topic_name(topic))
                .with_partition_indexes(vec![partition]),
        ]));
    let answer = ask!(conn, OffsetFetch, 7, request);
    ensure!(
        answer.error_code == NONE,
        "OffsetFetch: {}",
        name(answer.error_code)
    );
    answer
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .map(|p| p.committed_offset)
        .context("no partition in the OffsetFetch answer")
}

#[test]
fn api_versions_announces_the_transaction_version() -> Result<()> {
    for (args, finalized) in [
        (&[][..], Some(2)),
        (&["--transaction-version", "0"][..], None),
    ] {
        let broker = Broker::start_with(args)?;
        let mut conn = Conn::open(&broker)?;
        let request = ApiVersionsRequest::default()
            .with_client_software_name(text("rill-test"))
            .with_client_software_version(text("1"));
        let answer = ask!(&mut conn, ApiVersions, 3, request);
        let supported: Vec<_> = answer
            .supported_features
            .iter()
            .map(|f| (f.name.to_string(), f.min_version, f.max_version))
            .collect();
        ensure!(
            supported == [("transaction.version".to_owned(), 0, 2)],
            "supported features {supported:?}"
        );
        let levels: Vec<_> = answer
            .finalized_features
            .iter()
            .map(|f| (f.name.to_string(), f.min_version_level, f.max_version_level))
            .collect();
        let want: Vec<_> = finalized
            .map(|l| ("transaction.version".to_owned(), l, l))
            .into_iter()
            .collect();
        ensure!(levels == want, "{args:?}: finalized features {levels:?}");
        ensure!(answer.finalized_features_epoch >= 0, "no features epoch");
    }
    Ok(())
}

#[test]
fn every_end_bumps_the_epoch_and_fences_the_ended_transaction() -> Result<()> {
    let broker = Broker::start()?;
    let mut conn = coordinator(&broker)?;
    let topic = "tv2";
    create(&mut conn, topic, 2)?;
    let first = init_ok(&mut conn, "tv2", 60_000)?;
    // Produce v12 with no AddPartitionsToTxn: the partitions join the transaction.
    for p in [0, 1] {
        let batch = txn_batch(&first, 0, &["a", "b"])?;
        let answer = produce_at(&mut conn, 12, Some(&first.id), (topic, p), batch)?;
        ensure!(answer == (NONE, 0), "a first batch to {p}: {answer:?}");
    }
    let open = describe(&mut conn, &first.id)?;
    ensure!(
        open.transaction_state.as_str() == "Ongoing"
            && open
                .topics
                .iter()
                .map(|t| t.partitions.len())
                .sum::<usize>()
                == 2,
        "after the batches: {open:?}"
    );
    // EndTxn v5 commits at the producer's epoch and hands back the next one.
    let (code, second) = end_v5(&mut conn, &first, true)?;
    ensure!(
        code == NONE && second.pid == first.pid && second.epoch == first.epoch + 1,
        "the commit: {} -> {second:?}",
        name(code)
    );
    let _ = settled(&mut conn, &first.id, "CompleteCommit")?;
    // Each partition: the data at the old epoch, the marker at the new one.
    for p in [0, 1] {
        let seen = epochs(&mut conn, topic, p)?;
        let want = vec![(0, first.epoch, false), (2, second.epoch, true)];
        ensure!(seen == want, "partition {p} holds {seen:?}");
    }
    // The commit's retry (at the epoch it was sent with) is answered again, with the new
    // epoch; an abort of it is refused; an older epoch is fenced.
    let (code, again) = end_v5(&mut conn, &first, true)?;
    ensure!(
        code == NONE && again.epoch == second.epoch,
        "the retried commit: {} {again:?}",
        name(code)
    );
    let (code, _) = end_v5(&mut conn, &first, false)?;
    ensure!(code == INVALID_TXN_STATE, "an abort of it: {}", name(code));
    let (code, _) = end_v5(&mut conn, &first.at(first.epoch - 1), true)?;
    ensure!(code == PRODUCER_FENCED, "an older epoch: {}", name(code));
    // A late batch of the ended transaction is fenced, and nothing is written.
    let late = txn_batch(&first, 2, &["late"])?;
    let (code, _) = produce_at(&mut conn, 12, Some(&first.id), (topic, 0), late)?;
    ensure!(
        code == INVALID_PRODUCER_EPOCH,
        "a late batch: {}",
        name(code)
    );
    ensure!(
        latest(&mut conn, topic, 0, READ_UNCOMMITTED)? == 3,
        "the late batch was written"
    );
    // The next transaction, at the new epoch from sequence 0, aborted.
    let batch = txn_batch(&second, 0, &["c"])?;
    let answer = produce_at(&mut conn, 12, Some(&second.id), (topic, 0), batch)?;
    ensure!(
        answer == (NONE, 3),
        "the next transaction's batch: {answer:?}"
    );
    let (code, third) = end_v5(&mut conn, &second, false)?;
    ensure!(
        code == NONE && third.epoch == second.epoch + 1,
        "the abort: {} -> {third:?}",
        name(code)
    );
    let _ = settled(&mut conn, &first.id, "CompleteAbort")?;
    ensure!(
        epochs(&mut conn, topic, 0)?[2..] == [(3, second.epoch, false), (4, third.epoch, true)],
        "the aborted transaction in partition 0"
    );
    let read = fetch(&mut conn, topic, 0, 0, READ_COMMITTED)?;
    ensure!(
        aborted(&read) == Some(vec![(first.pid, 3)]),
        "read_committed's aborted transactions: {:?}",
        aborted(&read)
    );
    // A client of the older protocol still goes on: EndTxn v3 knows nothing of the bump.
    let batch = txn_batch(&third, 0, &["d"])?;
    let answer = produce_at(&mut conn, 12, Some(&third.id), (topic, 1), batch)?;
    ensure!(
        answer == (NONE, 3),
        "the third transaction's batch: {answer:?}"
    );
    let code = common::txn::end(&mut conn, 3, &third, true)?;
    ensure!(code == NONE, "EndTxn v3: {}", name(code));
    let done = settled(&mut conn, &first.id, "CompleteCommit")?;
    ensure!(
        done.producer_epoch == third.epoch,
        "EndTxn v3 bumped the epoch: {done:?}"
    );
    Ok(())
}

#[test]
fn txn_offset_commit_v5_adds_the_group_to_the_transaction() -> Result<()> {
    let broker = Broker::start()?;
    let mut conn = coordinator(&broker)?;
    let topic = "tv2-offsets";
    create(&mut conn, topic, 1)?;
    let producer = init_ok(&mut conn, "tv2-offsets", 60_000)?;
    let batch = txn_batch(&producer, 0, &["out"])?;
    let answer = produce_at(&mut conn, 12, Some(&producer.id), (topic, 0), batch)?;
    ensure!(answer == (NONE, 0), "the output batch: {answer:?}");
    // The group's coordinator, as a client finds it first (this makes `__consumer_offsets`).
    let group = "tv2-group";
    common::wait_until("the group's coordinator", common::txn::SETTLE, || {
        let (code, node) = common::txn::find_coordinator(&mut conn, 0, group, 3)?;
        Ok((code == NONE && node >= 0).then_some(()))
    })?;
    // v4 needs AddOffsetsToTxn first (KIP-890 part 1 checks it); v5 adds the group itself.
    let code = commit_offset(&mut conn, 4, &producer, group, (topic, 0, 41))?;
    ensure!(
        code == INVALID_TXN_STATE,
        "TxnOffsetCommit v4 outside the transaction: {}",
        name(code)
    );
    let code = commit_offset(&mut conn, 5, &producer, group, (topic, 0, 42))?;
    ensure!(code == NONE, "TxnOffsetCommit v5: {}", name(code));
    let open = describe(&mut conn, &producer.id)?;
    ensure!(
        open.topics
            .iter()
            .any(|t| t.topic.as_str() == "__consumer_offsets"),
        "the group's offsets partition is not in the transaction: {open:?}"
    );
    ensure!(
        committed(&mut conn, group, topic, 0)? == -1,
        "the offset is visible before the commit"
    );
    let (code, next) = end_v5(&mut conn, &producer, true)?;
    ensure!(code == NONE, "the commit: {}", name(code));
    let _ = settled(&mut conn, &producer.id, "CompleteCommit")?;
    ensure!(
        committed(&mut conn, group, topic, 0)? == 42,
        "the committed offset"
    );
    // A fenced producer's offsets are refused.
    let code = commit_offset(&mut conn, 5, &producer, group, (topic, 0, 43))?;
    ensure!(
        code == PRODUCER_FENCED,
        "the old epoch's offsets: {}",
        name(code)
    );
    let code = commit_offset(&mut conn, 5, &next, group, (topic, 0, 43))?;
    ensure!(
        code == NONE,
        "the next transaction's offsets: {}",
        name(code)
    );
    Ok(())
}
