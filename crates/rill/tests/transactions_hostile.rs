//! Transactions over raw Kafka requests, as no well-behaved client sends them: EndTxn and
//! AddPartitionsToTxn from strangers and from fenced epochs, out-of-range timeouts, batches
//! outside their transaction, control batches from a client, WriteTxnMarkers for partitions in
//! no transaction, a transaction its client abandoned. Each answer is the exact Kafka error code
//! a client understands, nothing refused is appended, and the broker keeps serving. The read
//! side is checked on the wire too: a read_committed Fetch's last stable offset and aborted
//! transactions, and a read_uncommitted one's control batches. The last tests pin where Rill
//! still answers otherwise than Kafka (ignored until the broker is fixed).

#[macro_use]
mod common;

use std::io::Write as _;

use anyhow::ensure;

use common::txn::{
    CONCURRENT_TRANSACTIONS, INVALID_PRODUCER_EPOCH, INVALID_PRODUCER_ID_MAPPING, INVALID_RECORD,
    INVALID_REQUEST, INVALID_TRANSACTION_TIMEOUT, INVALID_TXN_STATE, MAX_TIMEOUT_MS, NONE,
    OPERATION_NOT_ATTEMPTED, PRODUCER_FENCED, Producer, READ_COMMITTED, READ_UNCOMMITTED, SETTLE,
    TRANSACTIONAL_ID_NOT_FOUND, UNKNOWN_TOPIC_OR_PARTITION, aborted, add_ok, add_partitions,
    batches, coordinator, create, data, describe, end, fetch, find_coordinator, init, init_ok,
    latest, marker, name, plain_batch, produce, producers, settled, text, txn_batch, txn_id,
    when_ready, write_marker,
};
use common::{Broker, Conn, Result, assert_healthy, encode_request, read_response, wait_until};
use rill_protocol::kafka_protocol::messages::{
    AddOffsetsToTxnRequest, EndTxnRequest, FindCoordinatorRequest, GroupId,
    ListTransactionsRequest, ProducerId,
};
use rill_protocol::{ApiKey, ResponseKind};
use rill_record::{Marker, marker_batch};

/// The broker still serves: a fresh connection gets ApiVersions and Metadata answered, and a
/// whole transaction (InitProducerId, AddPartitionsToTxn, a batch, EndTxn) commits in `topic`.
fn still_serving(broker: &mut Broker, topic: &str, partition: i32) -> Result<()> {
    assert_healthy(broker)?;
    let mut conn = coordinator(broker)?;
    let producer = init_ok(
        &mut conn,
        &format!("healthy-{}", uuid::Uuid::new_v4()),
        60_000,
    )?;
    add_ok(&mut conn, &producer, topic, &[partition])?;
    let before = latest(&mut conn, topic, partition, READ_UNCOMMITTED)?;
    let batch = txn_batch(&producer, 0, &["healthy"])?;
    let (code, offset) = produce(&mut conn, Some(&producer.id), topic, partition, batch)?;
    ensure!(
        (code, offset) == (NONE, before),
        "a healthy transaction's batch: {} at {offset}",
        name(code)
    );
    let code = end(&mut conn, 3, &producer, true)?;
    ensure!(
        code == NONE,
        "a healthy transaction's commit: {}",
        name(code)
    );
    let _ = settled(&mut conn, &producer.id, "CompleteCommit")?;
    Ok(())
}

#[test]
fn end_txn_from_strangers_and_old_epochs_is_refused() -> Result<()> {
    let mut broker = Broker::start()?;
    let mut conn = coordinator(&broker)?;
    let topic = "strangers";
    create(&mut conn, topic, 1)?;

    // An id the coordinator never saw.
    let ghost = Producer {
        id: "never-initialized".to_owned(),
        pid: 4242,
        epoch: 0,
    };
    for version in [0, 1, 3, 4] {
        let code = when_ready(|| end(&mut conn, version, &ghost, true))?;
        ensure!(
            code == INVALID_PRODUCER_ID_MAPPING,
            "EndTxn v{version} for an unknown id: {}",
            name(code)
        );
    }

    // Nor can an unknown id open a transaction.
    let answer = add_partitions(&mut conn, 3, &ghost, &[(topic, &[0])])?;
    ensure!(
        answer == vec![(topic.to_owned(), 0, INVALID_PRODUCER_ID_MAPPING)],
        "AddPartitionsToTxn for an unknown id: {answer:?}"
    );
    let request = AddOffsetsToTxnRequest::default()
        .with_transactional_id(txn_id(&ghost.id))
        .with_producer_id(ProducerId(ghost.pid))
        .with_producer_epoch(ghost.epoch)
        .with_group_id(GroupId(text("strangers-group")));
    let code = ask!(&mut conn, AddOffsetsToTxn, 3, request).error_code;
    ensure!(
        code == INVALID_PRODUCER_ID_MAPPING,
        "AddOffsetsToTxn for an unknown id: {}",
        name(code)
    );

    let a = init_ok(&mut conn, "stranger-a", 60_000)?;
    let b = init_ok(&mut conn, "stranger-b", 60_000)?;
    ensure!(a.pid != b.pid, "two ids share producer id {}", a.pid);
    // A's id with B's producer id.
    let mixed = Producer {
        pid: b.pid,
        ..a.clone()
    };
    let code = end(&mut conn, 3, &mixed, true)?;
    ensure!(
        code == INVALID_PRODUCER_ID_MAPPING,
        "EndTxn with another id's producer: {}",
        name(code)
    );

    // No transaction open: nothing to end, either way.
    for commit in [true, false] {
        let code = end(&mut conn, 3, &a, commit)?;
        ensure!(
            code == INVALID_TXN_STATE,
            "EndTxn (commit {commit}) with no transaction open: {}",
            name(code)
        );
    }

    // A second InitProducerId bumps the epoch: the first one is fenced, at every version as
    // that version's clients know it (KIP-588: PRODUCER_FENCED from EndTxn v2).
    let a1 = init_ok(&mut conn, "stranger-a", 60_000)?;
    ensure!(
        (a1.pid, a1.epoch) == (a.pid, a.epoch + 1),
        "the second InitProducerId gave {a1:?} after {a:?}"
    );
    for (version, want) in [
        (0, INVALID_PRODUCER_EPOCH),
        (1, INVALID_PRODUCER_EPOCH),
        (2, PRODUCER_FENCED),
        (3, PRODUCER_FENCED),
        (4, PRODUCER_FENCED),
    ] {
        let code = end(&mut conn, version, &a, true)?;
        ensure!(
            code == want,
            "EndTxn v{version} from the old epoch: {}, expected {}",
            name(code),
            name(want)
        );
    }
    // An epoch the coordinator never gave is no better.
    let code = end(&mut conn, 3, &a1.at(a1.epoch + 5), true)?;
    ensure!(
        code == PRODUCER_FENCED,
        "EndTxn from a future epoch: {}",
        name(code)
    );
    // None of this opened or ended anything.
    let state = describe(&mut conn, "stranger-a")?;
    ensure!(
        state.error_code == NONE
            && state.transaction_state.as_str() == "Empty"
            && state.producer_epoch == a1.epoch,
        "stranger-a after the refusals: {state:?}"
    );
    ensure!(
        latest(&mut conn, topic, 0, READ_UNCOMMITTED)? == 0,
        "a refused EndTxn wrote a marker"
    );
    still_serving(&mut broker, topic, 0)
}

#[test]
fn a_commit_while_markers_are_written_is_concurrent_then_done() -> Result<()> {
    let mut broker = Broker::start()?;
    let mut conn = coordinator(&broker)?;
    let topic = "concurrent";
    create(&mut conn, topic, 4)?;
    let producer = init_ok(&mut conn, "concurrent", 60_000)?;
    let partitions = [0, 1, 2, 3];
    add_ok(&mut conn, &producer, topic, &partitions)?;
    for p in partitions {
        let batch = txn_batch(&producer, 0, &["x", "y"])?;
        let answer = produce(&mut conn, Some(&producer.id), topic, p, batch)?;
        ensure!(answer == (NONE, 0), "batch to {p}: {answer:?}");
    }
    // The commit and, right behind it on the same connection, its retry and an abort: the
    // coordinator answers the retry CONCURRENT_TRANSACTIONS while the markers are being
    // written (PrepareCommit) and NONE once they are (CompleteCommit); the abort is refused
    // either way.
    let mut pipelined = Vec::new();
    let mut ids = Vec::new();
    for commit in [true, true, false] {
        let id = conn.id();
        let request = EndTxnRequest::default()
            .with_transactional_id(txn_id(&producer.id))
            .with_producer_id(ProducerId(producer.pid))
            .with_producer_epoch(producer.epoch)
            .with_committed(commit);
        pipelined.extend_from_slice(&encode_request(ApiKey::EndTxn, 3, id, request)?);
        ids.push(id);
    }
    conn.stream.write_all(&pipelined)?;
    let mut codes = Vec::new();
    for id in ids {
        match read_response(&mut conn.stream, ApiKey::EndTxn, 3, id)? {
            ResponseKind::EndTxn(answer) => codes.push(answer.error_code),
            other => anyhow::bail!("not an EndTxn answer: {other:?}"),
        }
    }
    ensure!(
        codes.first() == Some(&NONE)
            && codes
                .get(1)
                .is_some_and(|c| [NONE, CONCURRENT_TRANSACTIONS].contains(c))
            && codes.get(2) == Some(&INVALID_TXN_STATE),
        "commit, commit again, abort: {:?}",
        codes.iter().map(|c| name(*c)).collect::<Vec<_>>()
    );
    // A retry succeeds once the markers are written.
    wait_until("the retried commit", SETTLE, || {
        let code = end(&mut conn, 3, &producer, true)?;
        ensure!(
            [NONE, CONCURRENT_TRANSACTIONS].contains(&code),
            "a retried commit: {}",
            name(code)
        );
        Ok((code == NONE).then_some(()))
    })?;
    let state = describe(&mut conn, &producer.id)?;
    ensure!(
        state.transaction_state.as_str() == "CompleteCommit" && state.topics.is_empty(),
        "after the commit: {state:?}"
    );
    // One marker a partition, not one per EndTxn.
    for p in partitions {
        let seen = batches(&fetch(&mut conn, topic, p, 0, READ_UNCOMMITTED)?)?;
        let want = vec![
            data(0, 1, producer.pid, true),
            marker(2, producer.pid, true),
        ];
        ensure!(seen == want, "partition {p} holds {seen:?}");
    }
    still_serving(&mut broker, topic, 0)
}

#[test]
fn init_producer_id_refuses_timeouts_out_of_range() -> Result<()> {
    let mut broker = Broker::start()?;
    let mut conn = coordinator(&broker)?;
    for timeout in [MAX_TIMEOUT_MS + 1, i32::MAX, 0, -1, i32::MIN] {
        let answer = init(&mut conn, Some("bad-timeout"), timeout)?;
        ensure!(
            answer == (INVALID_TRANSACTION_TIMEOUT, -1, -1),
            "InitProducerId with transaction_timeout_ms {timeout}: {} {answer:?}",
            name(answer.0)
        );
    }
    // Refused, so never created.
    let code = when_ready(|| Ok(describe(&mut conn, "bad-timeout")?.error_code))?;
    ensure!(
        code == TRANSACTIONAL_ID_NOT_FOUND,
        "DescribeTransactions of the refused id: {}",
        name(code)
    );
    // The maximum itself is allowed, and so is any timeout without a transactional id (it
    // means nothing there).
    let producer = init_ok(&mut conn, "bad-timeout", MAX_TIMEOUT_MS)?;
    let state = describe(&mut conn, "bad-timeout")?;
    ensure!(
        state.transaction_timeout_ms == MAX_TIMEOUT_MS && state.producer_id.0 == producer.pid,
        "after the maximum timeout: {state:?}"
    );
    let (code, pid, epoch) = init(&mut conn, None, -1)?;
    ensure!(
        code == NONE && pid >= 0 && epoch == 0,
        "InitProducerId without a transactional id, timeout -1: {} {pid}/{epoch}",
        name(code)
    );
    // An empty transactional id is a malformed request.
    let answer = init(&mut conn, Some(""), 60_000)?;
    ensure!(
        answer.0 == INVALID_REQUEST,
        "InitProducerId with an empty transactional id: {}",
        name(answer.0)
    );
    let topic = "timeouts";
    create(&mut conn, topic, 1)?;
    still_serving(&mut broker, topic, 0)
}

#[test]
fn a_transactional_batch_needs_its_partition_in_the_transaction() -> Result<()> {
    let mut broker = Broker::start()?;
    let mut conn = coordinator(&broker)?;
    let topic = "outside";
    create(&mut conn, topic, 2)?;
    let producer = init_ok(&mut conn, "outside", 60_000)?;
    let id = Some(producer.id.as_str());

    // No transaction open at all.
    let (code, _) = produce(&mut conn, id, topic, 0, txn_batch(&producer, 0, &["a"])?)?;
    ensure!(
        code == INVALID_TXN_STATE,
        "a batch before AddPartitionsToTxn: {}",
        name(code)
    );
    // A transaction open, but on partition 1 only.
    add_ok(&mut conn, &producer, topic, &[1])?;
    let (code, _) = produce(&mut conn, id, topic, 0, txn_batch(&producer, 0, &["a"])?)?;
    ensure!(
        code == INVALID_TXN_STATE,
        "a batch to a partition outside the transaction: {}",
        name(code)
    );
    ensure!(
        latest(&mut conn, topic, 0, READ_UNCOMMITTED)? == 0,
        "a refused batch was appended"
    );

    // Added: taken, and the next batch of the producer there too.
    add_ok(&mut conn, &producer, topic, &[0])?;
    let answer = produce(
        &mut conn,
        id,
        topic,
        0,
        txn_batch(&producer, 0, &["a", "b"])?,
    )?;
    ensure!(
        answer == (NONE, 0),
        "a batch after AddPartitionsToTxn: {answer:?}"
    );
    let answer = produce(&mut conn, id, topic, 0, txn_batch(&producer, 2, &["c"])?)?;
    ensure!(answer == (NONE, 2), "the next batch: {answer:?}");

    // A transactional batch with no transactional id in the request: Kafka's answer.
    let (code, _) = produce(&mut conn, None, topic, 0, txn_batch(&producer, 3, &["d"])?)?;
    ensure!(
        code == rill_protocol::ErrorCode::TransactionalIdAuthorizationFailed.code(),
        "a transactional batch without a transactional id: {}",
        name(code)
    );
    // Control batches are the coordinator's to write: refused with or without an id.
    let forged = marker_batch(
        producer.pid,
        producer.epoch,
        Marker {
            commit: true,
            coordinator_epoch: 0,
        },
        1_700_000_000_000,
    )?;
    for with_id in [id, None] {
        let (code, _) = produce(&mut conn, with_id, topic, 0, forged.clone())?;
        ensure!(
            code == INVALID_RECORD,
            "a control batch from a client (transactional id {with_id:?}): {}",
            name(code)
        );
    }
    ensure!(
        latest(&mut conn, topic, 0, READ_UNCOMMITTED)? == 3,
        "only the two accepted batches are in the log"
    );
    // Still open: nothing readable under read_committed yet.
    let open = fetch(&mut conn, topic, 0, 0, READ_COMMITTED)?;
    ensure!(
        open.last_stable_offset == 0 && open.high_watermark == 3 && batches(&open)?.is_empty(),
        "read_committed while open: LSO {}, HW {}",
        open.last_stable_offset,
        open.high_watermark
    );

    let code = end(&mut conn, 3, &producer, true)?;
    ensure!(code == NONE, "commit: {}", name(code));
    let _ = settled(&mut conn, &producer.id, "CompleteCommit")?;
    let done = fetch(&mut conn, topic, 0, 0, READ_COMMITTED)?;
    let want = vec![
        data(0, 1, producer.pid, true),
        data(2, 2, producer.pid, true),
        marker(3, producer.pid, true),
    ];
    ensure!(
        batches(&done)? == want && done.last_stable_offset == 4 && aborted(&done) == Some(vec![]),
        "read_committed after the commit: {:?}, LSO {}, aborted {:?}",
        batches(&done)?,
        done.last_stable_offset,
        aborted(&done)
    );
    // Partition 1 was in the transaction too (empty): it got its marker.
    let one = batches(&fetch(&mut conn, topic, 1, 0, READ_UNCOMMITTED)?)?;
    ensure!(
        one == vec![marker(0, producer.pid, true)],
        "partition 1: {one:?}"
    );
    still_serving(&mut broker, topic, 0)
}

#[test]
fn write_txn_markers_for_partitions_in_no_transaction() -> Result<()> {
    let mut broker = Broker::start()?;
    let mut conn = coordinator(&broker)?;
    let topic = "unmarked";
    create(&mut conn, topic, 1)?;
    let (code, _) = produce(&mut conn, None, topic, 0, plain_batch(&["p0", "p1", "p2"])?)?;
    ensure!(code == NONE, "plain produce: {}", name(code));

    // A marker of a producer that never wrote here: written, as Kafka writes it.
    let code = write_marker(&mut conn, topic, 0, 777_777, true)?;
    ensure!(
        code == NONE,
        "a commit marker in no transaction: {}",
        name(code)
    );
    let code = write_marker(&mut conn, topic, 0, 888_888, false)?;
    ensure!(
        code == NONE,
        "an abort marker in no transaction: {}",
        name(code)
    );
    let committed = fetch(&mut conn, topic, 0, 0, READ_COMMITTED)?;
    ensure!(
        committed.high_watermark == 5 && committed.last_stable_offset == 5,
        "after two stray markers: HW {}, LSO {}",
        committed.high_watermark,
        committed.last_stable_offset
    );
    let want = vec![
        data(0, 2, -1, false),
        marker(3, 777_777, true),
        marker(4, 888_888, false),
    ];
    let seen = batches(&committed)?;
    ensure!(seen == want, "read_committed sees {seen:?}");
    // The stray abort ended a transaction of nothing: it starts (and ends) at its marker, so
    // it hides no record.
    ensure!(
        aborted(&committed) == Some(vec![(888_888, 4)]),
        "aborted transactions: {:?}",
        aborted(&committed)
    );

    // Where no partition is, nothing is written.
    let code = write_marker(&mut conn, "no-such-topic", 0, 777_777, true)?;
    ensure!(
        code == UNKNOWN_TOPIC_OR_PARTITION,
        "a marker for an unknown topic: {}",
        name(code)
    );
    let code = write_marker(&mut conn, topic, 7, 777_777, true)?;
    ensure!(
        code == UNKNOWN_TOPIC_OR_PARTITION,
        "a marker for an unknown partition: {}",
        name(code)
    );
    ensure!(
        latest(&mut conn, topic, 0, READ_UNCOMMITTED)? == 5,
        "the refused markers wrote something"
    );
    still_serving(&mut broker, topic, 0)
}

#[test]
fn add_partitions_naming_an_unknown_topic_adds_nothing() -> Result<()> {
    let mut broker = Broker::start()?;
    let mut conn = coordinator(&broker)?;
    let topic = "known";
    create(&mut conn, topic, 2)?;
    let producer = init_ok(&mut conn, "unknown-topic", 60_000)?;
    for version in [0, 1, 2, 3] {
        let answer = add_partitions(
            &mut conn,
            version,
            &producer,
            &[(topic, &[0, 1]), ("no-such-topic", &[0])],
        )?;
        let want = vec![
            (topic.to_owned(), 0, OPERATION_NOT_ATTEMPTED),
            (topic.to_owned(), 1, OPERATION_NOT_ATTEMPTED),
            ("no-such-topic".to_owned(), 0, UNKNOWN_TOPIC_OR_PARTITION),
        ];
        ensure!(answer == want, "AddPartitionsToTxn v{version}: {answer:?}");
    }
    // A partition the topic does not have is unknown the same way.
    let answer = add_partitions(&mut conn, 3, &producer, &[(topic, &[0, 9])])?;
    let want = vec![
        (topic.to_owned(), 0, OPERATION_NOT_ATTEMPTED),
        (topic.to_owned(), 9, UNKNOWN_TOPIC_OR_PARTITION),
    ];
    ensure!(answer == want, "a partition out of range: {answer:?}");
    let state = describe(&mut conn, &producer.id)?;
    ensure!(
        state.transaction_state.as_str() == "Empty" && state.topics.is_empty(),
        "the refused requests opened a transaction: {state:?}"
    );
    still_serving(&mut broker, topic, 1)
}

#[test]
fn requests_from_an_old_epoch_are_fenced() -> Result<()> {
    let mut broker = Broker::start()?;
    let mut conn = coordinator(&broker)?;
    let topic = "epochs";
    create(&mut conn, topic, 2)?;
    let old = init_ok(&mut conn, "epochs", 60_000)?;
    add_ok(&mut conn, &old, topic, &[0])?;
    let answer = produce(
        &mut conn,
        Some(&old.id),
        topic,
        0,
        txn_batch(&old, 0, &["z"])?,
    )?;
    ensure!(
        answer == (NONE, 0),
        "the first instance's batch: {answer:?}"
    );

    // A second instance: its first InitProducerId aborts the open transaction with a bumped
    // epoch and asks it to retry; the retry bumps again.
    let (code, _, _) = init(&mut conn, Some("epochs"), 60_000)?;
    ensure!(
        code == CONCURRENT_TRANSACTIONS,
        "InitProducerId while a transaction is open: {}",
        name(code)
    );
    let new = init_ok(&mut conn, "epochs", 60_000)?;
    ensure!(
        (new.pid, new.epoch) == (old.pid, old.epoch + 2),
        "the second instance got {new:?} after {old:?}"
    );
    // The abort is complete and the new epoch has no transaction yet.
    let state = describe(&mut conn, "epochs")?;
    ensure!(
        state.transaction_state.as_str() == "Empty" && state.producer_epoch == new.epoch,
        "after the fencing: {state:?}"
    );

    // Everything from the first instance is refused, each as its version's clients know it.
    for (version, want) in [
        (1, INVALID_PRODUCER_EPOCH),
        (2, PRODUCER_FENCED),
        (3, PRODUCER_FENCED),
    ] {
        let answer = add_partitions(&mut conn, version, &old, &[(topic, &[1])])?;
        ensure!(
            answer == vec![(topic.to_owned(), 1, want)],
            "AddPartitionsToTxn v{version} from the old epoch: {answer:?}"
        );
        let code = end(&mut conn, version, &old, true)?;
        ensure!(
            code == want,
            "EndTxn v{version} from the old epoch: {}",
            name(code)
        );
        let request = AddOffsetsToTxnRequest::default()
            .with_transactional_id(txn_id(&old.id))
            .with_producer_id(ProducerId(old.pid))
            .with_producer_epoch(old.epoch)
            .with_group_id(GroupId(text("epochs-group")));
        let code = ask!(&mut conn, AddOffsetsToTxn, version, request).error_code;
        ensure!(
            code == want,
            "AddOffsetsToTxn v{version} from the old epoch: {}",
            name(code)
        );
    }
    // Its batches too, where its transaction was (the marker moved the partition's epoch on)
    // and where it never was (the coordinator says fenced): INVALID_PRODUCER_EPOCH, which
    // producers take as fencing.
    for p in [0, 1] {
        let (code, _) = produce(
            &mut conn,
            Some(&old.id),
            topic,
            p,
            txn_batch(&old, 1, &["z"])?,
        )?;
        ensure!(
            code == INVALID_PRODUCER_EPOCH,
            "a batch from the old epoch to partition {p}: {}",
            name(code)
        );
    }
    // Partition 0: the zombie's record and the abort marker at the bumped epoch; 1: nothing.
    let seen = batches(&fetch(&mut conn, topic, 0, 0, READ_UNCOMMITTED)?)?;
    ensure!(
        seen == vec![data(0, 0, old.pid, true), marker(1, old.pid, false)],
        "partition 0 holds {seen:?}"
    );
    ensure!(
        latest(&mut conn, topic, 1, READ_UNCOMMITTED)? == 0,
        "partition 1 took a fenced batch"
    );
    // The new instance works.
    add_ok(&mut conn, &new, topic, &[0])?;
    let answer = produce(
        &mut conn,
        Some(&new.id),
        topic,
        0,
        txn_batch(&new, 0, &["ok"])?,
    )?;
    ensure!(answer == (NONE, 2), "the new instance's batch: {answer:?}");
    let code = end(&mut conn, 3, &new, true)?;
    ensure!(code == NONE, "the new instance's commit: {}", name(code));
    still_serving(&mut broker, topic, 1)
}

#[test]
fn a_transaction_its_client_abandoned_is_aborted_at_its_timeout() -> Result<()> {
    let mut broker = Broker::start()?;
    let mut conn = coordinator(&broker)?;
    let topic = "abandoned";
    create(&mut conn, topic, 1)?;
    let dead = init_ok(&mut conn, "abandoned", 2000)?;
    add_ok(&mut conn, &dead, topic, &[0])?;
    let batch = txn_batch(&dead, 0, &["a", "b", "c"])?;
    let answer = produce(&mut conn, Some(&dead.id), topic, 0, batch)?;
    ensure!(
        answer == (NONE, 0),
        "the abandoned transaction's batch: {answer:?}"
    );
    // Someone else writes after it; read_committed may not pass the open transaction.
    let answer = produce(&mut conn, None, topic, 0, plain_batch(&["later"])?)?;
    ensure!(answer == (NONE, 3), "a plain batch: {answer:?}");
    let open = fetch(&mut conn, topic, 0, 0, READ_COMMITTED)?;
    ensure!(
        open.last_stable_offset == 0 && open.high_watermark == 4 && batches(&open)?.is_empty(),
        "read_committed while open: LSO {}, HW {}, {:?}",
        open.last_stable_offset,
        open.high_watermark,
        batches(&open)?
    );
    let listed = producers(&mut conn, topic, 0)?;
    let mine = listed.iter().find(|p| p.producer_id.0 == dead.pid);
    ensure!(
        mine.is_some_and(|p| p.current_txn_start_offset == 0
            && p.producer_epoch == i32::from(dead.epoch)
            && p.last_sequence == 2),
        "DescribeProducers while open: {listed:?}"
    );
    ensure!(
        latest(&mut conn, topic, 0, READ_COMMITTED)? == 0,
        "ListOffsets latest under read_committed while open"
    );

    // The client is gone. Within its timeout (2 s) and the coordinator's next sweep, the
    // transaction is aborted with a bumped epoch.
    let state = settled(&mut conn, &dead.id, "CompleteAbort")?;
    ensure!(
        state.producer_id.0 == dead.pid
            && state.producer_epoch == dead.epoch + 1
            && state.topics.is_empty()
            && state.transaction_timeout_ms == 2000,
        "DescribeTransactions after the timeout: {state:?}"
    );
    let done = wait_until("the last stable offset past the abort", SETTLE, || {
        let seen = fetch(&mut conn, topic, 0, 0, READ_COMMITTED)?;
        Ok((seen.last_stable_offset == 5).then_some(seen))
    })?;
    let seen = batches(&done)?;
    let want = vec![
        data(0, 2, dead.pid, true),
        data(3, 3, -1, false),
        marker(4, dead.pid, false),
    ];
    ensure!(
        seen == want && done.high_watermark == 5,
        "read_committed after the abort: {seen:?}, HW {}",
        done.high_watermark
    );
    ensure!(
        aborted(&done) == Some(vec![(dead.pid, 0)]),
        "aborted transactions: {:?}",
        aborted(&done)
    );
    // Fetched from inside it (its range ends at its marker, 4), it is still listed, as Kafka
    // lists every aborted transaction overlapping what it returns; from its marker on, none.
    let inside = fetch(&mut conn, topic, 0, 3, READ_COMMITTED)?;
    ensure!(
        aborted(&inside) == Some(vec![(dead.pid, 0)]),
        "aborted transactions from offset 3: {:?}",
        aborted(&inside)
    );
    // read_uncommitted: every batch, the marker included.
    let all = fetch(&mut conn, topic, 0, 0, READ_UNCOMMITTED)?;
    ensure!(
        batches(&all)? == want,
        "read_uncommitted: {:?}",
        batches(&all)?
    );

    let listed = producers(&mut conn, topic, 0)?;
    let mine = listed.iter().find(|p| p.producer_id.0 == dead.pid);
    ensure!(
        mine.is_some_and(|p| p.current_txn_start_offset == -1
            && p.producer_epoch == i32::from(dead.epoch + 1)
            && p.last_sequence == -1),
        "DescribeProducers after the abort: {listed:?}"
    );
    let request = ListTransactionsRequest::default().with_duration_filter(-1);
    let answer = ask!(&mut conn, ListTransactions, 1, request);
    ensure!(
        answer.error_code == NONE
            && answer.transaction_states.iter().any(|t| {
                t.transactional_id.0.as_str() == dead.id
                    && t.producer_id.0 == dead.pid
                    && t.transaction_state.as_str() == "CompleteAbort"
            }),
        "ListTransactions: {answer:?}"
    );
    let request = ListTransactionsRequest::default()
        .with_duration_filter(-1)
        .with_state_filters(vec![text("Ongoing"), text("Bogus")]);
    let answer = ask!(&mut conn, ListTransactions, 1, request);
    ensure!(
        answer
            .transaction_states
            .iter()
            .all(|t| t.transactional_id.0.as_str() != dead.id)
            && answer.unknown_state_filters == vec![text("Bogus")],
        "ListTransactions of Ongoing and Bogus: {answer:?}"
    );
    // The dead client, should it come back, is fenced.
    let (code, _) = produce(
        &mut conn,
        Some(&dead.id),
        topic,
        0,
        txn_batch(&dead, 3, &["d"])?,
    )?;
    ensure!(
        code == INVALID_PRODUCER_EPOCH,
        "the abandoned producer's next batch: {}",
        name(code)
    );
    still_serving(&mut broker, topic, 0)
}

#[test]
fn read_committed_fetches_on_the_wire() -> Result<()> {
    let mut broker = Broker::start()?;
    let mut conn = coordinator(&broker)?;
    let topic = "wire";
    create(&mut conn, topic, 1)?;
    let producer = init_ok(&mut conn, "wire", 60_000)?;
    let pid = producer.pid;
    let id = Some("wire");
    // Committed at 0-1 (marker 2), aborted at 3-4 (marker 5), open at 6-7.
    for (values, commit) in [(["c0", "c1"], Some(true)), (["a0", "a1"], Some(false))] {
        add_ok(&mut conn, &producer, topic, &[0])?;
        let seq = if commit == Some(true) { 0 } else { 2 };
        let (code, _) = produce(&mut conn, id, topic, 0, txn_batch(&producer, seq, &values)?)?;
        ensure!(code == NONE, "batch {values:?}: {}", name(code));
        let code = end(&mut conn, 3, &producer, commit == Some(true))?;
        ensure!(code == NONE, "ending {values:?}: {}", name(code));
        let want = if commit == Some(true) {
            "CompleteCommit"
        } else {
            "CompleteAbort"
        };
        let _ = settled(&mut conn, &producer.id, want)?;
    }
    add_ok(&mut conn, &producer, topic, &[0])?;
    let answer = produce(
        &mut conn,
        id,
        topic,
        0,
        txn_batch(&producer, 4, &["o0", "o1"])?,
    )?;
    ensure!(
        answer == (NONE, 6),
        "the open transaction's batch: {answer:?}"
    );

    let committed = fetch(&mut conn, topic, 0, 0, READ_COMMITTED)?;
    let below_lso = vec![
        data(0, 1, pid, true),
        marker(2, pid, true),
        data(3, 4, pid, true),
        marker(5, pid, false),
    ];
    ensure!(
        committed.high_watermark == 8 && committed.last_stable_offset == 6,
        "read_committed: HW {}, LSO {}",
        committed.high_watermark,
        committed.last_stable_offset
    );
    ensure!(
        batches(&committed)? == below_lso && aborted(&committed) == Some(vec![(pid, 3)]),
        "read_committed: {:?}, aborted {:?}",
        batches(&committed)?,
        aborted(&committed)
    );
    let uncommitted = fetch(&mut conn, topic, 0, 0, READ_UNCOMMITTED)?;
    let mut everything = below_lso.clone();
    everything.push(data(6, 7, pid, true));
    ensure!(
        uncommitted.last_stable_offset == 6 && batches(&uncommitted)? == everything,
        "read_uncommitted: LSO {}, {:?}",
        uncommitted.last_stable_offset,
        batches(&uncommitted)?
    );
    let ends = (
        latest(&mut conn, topic, 0, READ_COMMITTED)?,
        latest(&mut conn, topic, 0, READ_UNCOMMITTED)?,
    );
    ensure!(
        ends == (6, 8),
        "ListOffsets latest (committed, uncommitted): {ends:?}"
    );

    let code = end(&mut conn, 3, &producer, true)?;
    ensure!(code == NONE, "the last commit: {}", name(code));
    let _ = settled(&mut conn, &producer.id, "CompleteCommit")?;
    let done = fetch(&mut conn, topic, 0, 0, READ_COMMITTED)?;
    everything.push(marker(8, pid, true));
    ensure!(
        done.high_watermark == 9
            && done.last_stable_offset == 9
            && batches(&done)? == everything
            && aborted(&done) == Some(vec![(pid, 3)]),
        "read_committed at the end: HW {}, LSO {}, {:?}, aborted {:?}",
        done.high_watermark,
        done.last_stable_offset,
        batches(&done)?,
        aborted(&done)
    );
    still_serving(&mut broker, topic, 0)
}

#[test]
fn find_coordinator_of_a_transactional_id_and_of_an_unknown_key_type() -> Result<()> {
    let mut broker = Broker::start()?;
    let mut conn = coordinator(&broker)?;
    for version in [1, 2, 3] {
        let (code, node) = find_coordinator(&mut conn, 1, "some-transaction", version)?;
        ensure!(
            (code, node) == (NONE, 0),
            "FindCoordinator v{version} of a transactional id: {} node {node}",
            name(code)
        );
        let (code, node) = find_coordinator(&mut conn, 7, "some-transaction", version)?;
        ensure!(
            (code, node) == (INVALID_REQUEST, -1),
            "FindCoordinator v{version} with key type 7: {} node {node}",
            name(code)
        );
    }
    // v4+: a batch of keys, each answered.
    for (key_type, want) in [(1, NONE), (7, INVALID_REQUEST)] {
        let request = FindCoordinatorRequest::default()
            .with_key_type(key_type)
            .with_coordinator_keys(vec![text("t1"), text("t2")]);
        let answer = ask!(&mut conn, FindCoordinator, 4, request);
        let seen: Vec<(String, i16, i32, i32)> = answer
            .coordinators
            .iter()
            .map(|c| (c.key.to_string(), c.error_code, c.node_id.0, c.port))
            .collect();
        let port = i32::from(broker.port());
        let want: Vec<(String, i16, i32, i32)> = ["t1", "t2"]
            .iter()
            .map(|k| match want {
                NONE => ((*k).to_owned(), NONE, 0, port),
                code => ((*k).to_owned(), code, -1, -1),
            })
            .collect();
        ensure!(
            seen == want,
            "FindCoordinator v4 key type {key_type}: {seen:?}"
        );
    }
    let topic = "after-find";
    create(&mut conn, topic, 1)?;
    still_serving(&mut broker, topic, 0)
}

/// Kafka answers a read_uncommitted fetch with a null aborted transaction list (the client
/// reads none; only read_committed answers carry one, empty or not).
#[test]
fn a_read_uncommitted_fetch_carries_no_aborted_transactions() -> Result<()> {
    let broker = Broker::start()?;
    let mut conn = coordinator(&broker)?;
    let topic = "null-aborted";
    create(&mut conn, topic, 1)?;
    let producer = init_ok(&mut conn, "null-aborted", 60_000)?;
    add_ok(&mut conn, &producer, topic, &[0])?;
    let batch = txn_batch(&producer, 0, &["a"])?;
    let answer = produce(&mut conn, Some(&producer.id), topic, 0, batch)?;
    ensure!(answer == (NONE, 0), "batch: {answer:?}");
    let code = end(&mut conn, 3, &producer, false)?;
    ensure!(code == NONE, "abort: {}", name(code));
    let _ = settled(&mut conn, &producer.id, "CompleteAbort")?;
    let committed = fetch(&mut conn, topic, 0, 0, READ_COMMITTED)?;
    ensure!(
        aborted(&committed) == Some(vec![(producer.pid, 0)]),
        "read_committed: aborted {:?}",
        aborted(&committed)
    );
    for offset in [0, 2] {
        let uncommitted = fetch(&mut conn, topic, 0, offset, READ_UNCOMMITTED)?;
        ensure!(
            aborted(&uncommitted).is_none(),
            "read_uncommitted from {offset}: aborted {:?}",
            aborted(&uncommitted)
        );
    }
    Ok(())
}

/// ListTransactions v2 (KIP-1152) names a regular expression the transactional ids must match.
#[test]
fn list_transactions_filters_by_transactional_id_pattern() -> Result<()> {
    let broker = Broker::start()?;
    let mut conn = coordinator(&broker)?;
    let a = init_ok(&mut conn, "pattern-a", 60_000)?;
    let _ = init_ok(&mut conn, "pattern-b", 60_000)?;
    let request = ListTransactionsRequest::default()
        .with_duration_filter(-1)
        .with_transactional_id_pattern(Some(text("pattern-a.*")));
    let answer = ask!(&mut conn, ListTransactions, 2, request);
    let listed: Vec<(String, i64)> = answer
        .transaction_states
        .iter()
        .map(|t| (t.transactional_id.0.to_string(), t.producer_id.0))
        .collect();
    ensure!(
        answer.error_code == NONE && listed == vec![(a.id.clone(), a.pid)],
        "ListTransactions v2 of pattern-a.*: {} {listed:?}",
        name(answer.error_code)
    );
    Ok(())
}

/// DescribeProducers' `last_timestamp` is the producer's last batch's max timestamp, as Kafka
/// keeps it (and expires producers by it), not the time the broker appended it.
#[test]
fn describe_producers_shows_the_last_batch_timestamp() -> Result<()> {
    let broker = Broker::start()?;
    let mut conn = coordinator(&broker)?;
    let topic = "last-timestamp";
    create(&mut conn, topic, 1)?;
    let producer = init_ok(&mut conn, "last-timestamp", 60_000)?;
    add_ok(&mut conn, &producer, topic, &[0])?;
    // Every record of txn_batch carries CreateTime 1_700_000_000_000.
    let batch = txn_batch(&producer, 0, &["a", "b"])?;
    let answer = produce(&mut conn, Some(&producer.id), topic, 0, batch)?;
    ensure!(answer == (NONE, 0), "batch: {answer:?}");
    let listed = producers(&mut conn, topic, 0)?;
    ensure!(
        listed.iter().any(|p| p.producer_id.0 == producer.pid
            && p.last_sequence == 1
            && p.last_timestamp == 1_700_000_000_000),
        "DescribeProducers: {listed:?}"
    );
    Ok(())
}

/// Kafka keeps a completed transaction's start time (DescribeTransactions shows when the last
/// transaction started); only a new transaction replaces it.
#[test]
fn describe_transactions_keeps_a_completed_transaction_s_start_time() -> Result<()> {
    let broker = Broker::start()?;
    let mut conn = coordinator(&broker)?;
    let topic = "start-time";
    create(&mut conn, topic, 1)?;
    let producer = init_ok(&mut conn, "start-time", 60_000)?;
    add_ok(&mut conn, &producer, topic, &[0])?;
    let open = describe(&mut conn, &producer.id)?;
    ensure!(
        open.transaction_state.as_str() == "Ongoing" && open.transaction_start_time_ms > 0,
        "while open: {open:?}"
    );
    let code = end(&mut conn, 3, &producer, true)?;
    ensure!(code == NONE, "commit: {}", name(code));
    let done = settled(&mut conn, &producer.id, "CompleteCommit")?;
    ensure!(
        done.transaction_start_time_ms == open.transaction_start_time_ms,
        "after the commit: start {} (was {})",
        done.transaction_start_time_ms,
        open.transaction_start_time_ms
    );
    Ok(())
}

/// A marker for a partition of `__consumer_offsets` that does not exist is as unknown as any
/// other partition that does not exist; NOT_LEADER_OR_FOLLOWER would have the sender retry it
/// forever.
#[test]
fn write_txn_markers_for_a_consumer_offsets_partition_that_does_not_exist() -> Result<()> {
    let broker = Broker::start()?;
    let mut conn = Conn::open(&broker)?;
    // Partition 50 is beyond the 50 of offsets.topic.num.partitions, created or not.
    for partition in [50, 999] {
        let code = write_marker(&mut conn, "__consumer_offsets", partition, 5, true)?;
        ensure!(
            code == UNKNOWN_TOPIC_OR_PARTITION,
            "a marker for __consumer_offsets-{partition}: {}",
            name(code)
        );
    }
    Ok(())
}
