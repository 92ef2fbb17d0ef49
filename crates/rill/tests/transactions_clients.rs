//! Transactions with the other clients, each at its defaults: kafka-python's transactional
//! producer and its read_committed / read_uncommitted consumers (commit and abort, fencing by a
//! second instance, a consume-transform-produce loop with `send_offsets_to_transaction`),
//! aiokafka's `transaction()` context, and kafkajs's `producer.transaction()`, against a real
//! `rill serve`. Offsets are exact: each transaction's records, then one marker per partition.

mod common;

use std::collections::BTreeMap;

use anyhow::{Context, ensure};
use common::{Broker, Result, create_topic, run_node, run_py};
use serde_json::{Value, json};

/// A record as the scripts print it: (partition, offset, value).
type Placed = (i64, i64, String);

/// (partition, offset, value) triples from `[[partition, offset, value], ...]`, failing on
/// anything else.
fn placed(list: &Value) -> Result<Vec<Placed>> {
    list.as_array()
        .with_context(|| format!("not a list of records: {list}"))?
        .iter()
        .map(|r| {
            let field = |i: usize| r.get(i).with_context(|| format!("record {r}"));
            Ok((
                field(0)?.as_i64().context("partition")?,
                field(1)?.as_i64().context("offset")?,
                field(2)?.as_str().context("value")?.to_owned(),
            ))
        })
        .collect()
}

/// Every partition at `offset`, as the scripts print end offsets: `{"0": 33, "1": 33}`.
fn at(partitions: i64, offset: i64) -> Value {
    let map: BTreeMap<String, i64> = (0..partitions).map(|p| (p.to_string(), offset)).collect();
    json!(map)
}

/// What commit-abort writes to each partition: `c1-P-I` at 0-9 (marker at 10), `a-P-I` at
/// 11-20 (marker 21), `c2-P-I` at 22-31 (marker 32). With `aborted`, the aborted records too.
fn commit_abort_records(partitions: i64, aborted: bool) -> Vec<Placed> {
    let mut want = Vec::new();
    for p in 0..partitions {
        for (prefix, base) in [("c1", 0), ("a", 11), ("c2", 22)] {
            if prefix == "a" && !aborted {
                continue;
            }
            want.extend((0..10).map(|i| (p, base + i, format!("{prefix}-{p}-{i}"))));
        }
    }
    want
}

/// The checks every client's commit-abort run must pass: what each isolation read, and the
/// end offsets (log end and last stable offset) after and while the aborted one was open.
fn check_commit_abort(out: &Value, partitions: i64, ends_known: bool) -> Result<()> {
    let committed = placed(&out["committed"])?;
    ensure!(
        committed == commit_abort_records(partitions, false),
        "read_committed saw {committed:?}"
    );
    let uncommitted = placed(&out["uncommitted"])?;
    ensure!(
        uncommitted == commit_abort_records(partitions, true),
        "read_uncommitted saw {uncommitted:?}"
    );
    // While the second transaction was open, read_committed's end was its first offset (the
    // last stable offset); read_uncommitted's the log end after its 10 records.
    ensure!(
        out["open_end"]["read_committed"] == at(partitions, 11),
        "read_committed end offsets while a transaction was open: {}",
        out["open_end"]
    );
    if ends_known {
        ensure!(
            out["open_end"]["read_uncommitted"] == at(partitions, 21),
            "read_uncommitted end offsets while a transaction was open: {}",
            out["open_end"]
        );
        let end =
            json!({ "read_committed": at(partitions, 33), "read_uncommitted": at(partitions, 33) });
        ensure!(out["end"] == end, "end offsets at the end: {}", out["end"]);
    }
    Ok(())
}

#[test]
fn kafka_python_commit_and_abort_as_each_isolation_sees_them() -> Result<()> {
    let broker = Broker::start()?;
    let topic = broker.topic("kp-commit-abort");
    create_topic(&broker, &topic, 2, &[])?;
    let out = run_py(
        "transactions_kafka_python.py",
        &[broker.bootstrap(), "commit-abort".into(), topic, "2".into()],
        b"",
    )?;
    check_commit_abort(&out, 2, true)
}

#[test]
fn kafka_python_a_second_instance_fences_the_first() -> Result<()> {
    let broker = Broker::start()?;
    let topic = broker.topic("kp-fence");
    create_topic(&broker, &topic, 1, &[])?;
    let out = run_py(
        "transactions_kafka_python.py",
        &[broker.bootstrap(), "fence".into(), topic],
        b"",
    )?;
    // The zombie's batch is refused as from an old epoch (KIP-890's check asks the
    // coordinator, which answers PRODUCER_FENCED, given to producers as INVALID_PRODUCER_EPOCH);
    // kafka-python then tries to bump its epoch, is refused as fenced, and is done for.
    ensure!(
        out["a_send"] == "InvalidProducerEpochError",
        "the fenced producer's send: {}",
        out["a_send"]
    );
    ensure!(
        out["a_commit"] != "ok",
        "the fenced producer committed: {out}"
    );
    ensure!(
        out["a_abort"]
            .as_str()
            .is_some_and(|e| e.contains("ProducerFencedError")),
        "the fenced producer's abort: {}",
        out["a_abort"]
    );
    // A's "zombie" at 0, the abort marker B's InitProducerId had written at 1, B's
    // "successor" at 2 and its commit marker at 3; "zombie-2" was never written.
    let committed = placed(&out["committed"])?;
    ensure!(
        committed == vec![(0, 2, "successor".to_owned())],
        "read_committed saw {committed:?}"
    );
    let uncommitted = placed(&out["uncommitted"])?;
    ensure!(
        uncommitted == vec![(0, 0, "zombie".to_owned()), (0, 2, "successor".to_owned())],
        "read_uncommitted saw {uncommitted:?}"
    );
    ensure!(
        out["end"] == json!({ "read_committed": at(1, 4), "read_uncommitted": at(1, 4) }),
        "end offsets: {}",
        out["end"]
    );
    Ok(())
}

#[test]
fn kafka_python_consume_transform_produce_copies_each_record_once() -> Result<()> {
    let broker = Broker::start()?;
    let (input, output) = (broker.topic("kp-eos-in"), broker.topic("kp-eos-out"));
    create_topic(&broker, &input, 1, &[])?;
    create_topic(&broker, &output, 1, &[])?;
    let count = 300_i64;
    let out = run_py(
        "transactions_kafka_python.py",
        &[
            broker.bootstrap(),
            "exactly-once".into(),
            input,
            output,
            broker.topic("kp-eos-group"),
            count.to_string(),
        ],
        b"",
    )?;
    let want: Vec<String> = (0..count).map(|i| format!("REC-{i}")).collect();
    let got: Vec<String> = out["output"]
        .as_array()
        .context("no output list")?
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    ensure!(got == want, "the output as read_committed: {got:?}");
    ensure!(
        out["committed_after_abort"].is_null(),
        "the aborted transaction's offsets were committed: {}",
        out["committed_after_abort"]
    );
    ensure!(
        out["committed_offset"].as_i64() == Some(count),
        "the group's committed offset: {}",
        out["committed_offset"]
    );
    // Every transaction's records, then its marker: the aborted first one (the input's first
    // `sizes[0]` records), then the committed ones in order.
    let sizes: Vec<i64> = out["sizes"]
        .as_array()
        .context("no sizes")?
        .iter()
        .filter_map(Value::as_i64)
        .collect();
    let (aborted, committed) = sizes.split_first().context("no transaction")?;
    ensure!(
        committed.iter().sum::<i64>() == count,
        "transaction sizes {sizes:?}"
    );
    let mut want_all = Vec::new();
    let mut offset = 0;
    let mut next = 0;
    for (i, size) in sizes.iter().enumerate() {
        let first = if i == 0 { 0 } else { next };
        want_all.extend((0..*size).map(|j| (0, offset + j, format!("REC-{}", first + j))));
        offset += size + 1;
        if i > 0 {
            next += size;
        }
    }
    ensure!(
        want_all.len() == usize::try_from(count + aborted)?,
        "expected layout {want_all:?}"
    );
    let uncommitted = placed(&out["uncommitted"])?;
    ensure!(
        uncommitted == want_all,
        "read_uncommitted saw {uncommitted:?} (transaction sizes {sizes:?})"
    );
    Ok(())
}

#[test]
fn aiokafka_commit_and_abort_as_each_isolation_sees_them() -> Result<()> {
    let broker = Broker::start()?;
    let topic = broker.topic("aio-commit-abort");
    create_topic(&broker, &topic, 2, &[])?;
    let out = run_py(
        "transactions_aiokafka.py",
        &[broker.bootstrap(), "commit-abort".into(), topic, "2".into()],
        b"",
    )?;
    check_commit_abort(&out, 2, true)
}

#[test]
fn kafkajs_commit_and_abort_as_each_isolation_sees_them() -> Result<()> {
    let broker = Broker::start()?;
    let topic = broker.topic("js-commit-abort");
    create_topic(&broker, &topic, 2, &[])?;
    let out = run_node(
        "transactions.js",
        &[broker.bootstrap(), "commit-abort".into(), topic, "2".into()],
    )?;
    check_commit_abort(&out, 2, false)
}
