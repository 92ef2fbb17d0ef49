//! Transactions written by rill-client's transactional producer, read by every reader we have:
//! librdkafka (confluent-kafka) at both isolation levels and `rill consume` with
//! `--isolation-level` and `-X isolation.level`, each of which must see exactly the committed
//! records (or all of them) at the offsets the producer was told, against a real `rill serve`.

mod common;

use std::time::Duration;

use anyhow::{Context as _, ensure};
use common::{Broker, Result, create_topic, rill_fails, rill_ok, run_py};
use rill_client::{
    ClientConfig, Consumer, ConsumerConfig, IsolationLevel, Offset, Producer, ProducerConfig,
    ProducerRecord,
};
use serde_json::Value;

/// `(partition, offset, value)`.
type Placed = (i32, i64, String);

/// Writes, over 2 partitions: 2 plain records, then transactions committed, aborted and
/// committed (10 records each, round robin), each followed by 2 plain records. Returns
/// `(committed, all)` as the producers were told they landed, sorted. Waits until no
/// transaction holds the last stable offset back (the markers land just after the commit
/// returns).
async fn write(bootstrap: &str, topic: &str) -> Result<(Vec<Placed>, Vec<Placed>)> {
    let client = ClientConfig::new([bootstrap]);
    let mut config = ProducerConfig::new(client.clone());
    config.transactional_id = Some(format!("{topic}-txn"));
    let producer = Producer::new(config)?;
    let plain = Producer::new(ProducerConfig::new(client.clone()))?;
    let send = |producer: &Producer, prefix: String| {
        let producer = producer.clone();
        let topic = topic.to_owned();
        async move {
            let mut placed = Vec::new();
            for i in 0..10 {
                let value = format!("{prefix}-{i}");
                let record = ProducerRecord::new(&topic)
                    .partition(i % 2)
                    .value(value.clone());
                let meta = producer.send(record).await?;
                placed.push((meta.partition, meta.offset, value));
                if prefix.starts_with("plain") && i == 1 {
                    break;
                }
            }
            anyhow::Ok(placed)
        }
    };
    producer.init_transactions().await?;
    let mut committed = send(&plain, "plain".to_owned()).await?;
    let mut all = committed.clone();
    for (prefix, commit) in [("c1", true), ("a", false), ("c2", true)] {
        producer.begin_transaction().await?;
        let placed = send(&producer, prefix.to_owned()).await?;
        all.extend(placed.iter().cloned());
        if commit {
            producer.commit_transaction().await?;
            committed.extend(placed);
        } else {
            producer.abort_transaction().await?;
        }
        let after = send(&plain, format!("plain-after-{prefix}")).await?;
        all.extend(after.iter().cloned());
        committed.extend(after);
    }
    producer.close().await;
    plain.close().await;
    committed.sort();
    all.sort();

    let ends = |isolation| {
        let client = client.clone();
        async move {
            let mut config = ConsumerConfig::new(client);
            config.isolation_level = isolation;
            let consumer = Consumer::new(config)?;
            let mut ends = Vec::new();
            for p in 0..2 {
                ends.push(consumer.resolve_offset(topic, p, Offset::Newest).await?);
            }
            anyhow::Ok(ends)
        }
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let stable = ends(IsolationLevel::ReadCommitted).await?;
        let log_end = ends(IsolationLevel::ReadUncommitted).await?;
        if stable == log_end {
            break;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "the last stable offsets stay at {stable:?}, the log ends at {log_end:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok((committed, all))
}

/// `[[partition, offset, value], ...]` as tuples, sorted.
fn placed(list: &Value) -> Vec<Placed> {
    let mut out: Vec<Placed> = list
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| {
                    let p = i32::try_from(r.get(0)?.as_i64()?).ok()?;
                    Some((p, r.get(1)?.as_i64()?, r.get(2)?.as_str()?.to_owned()))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// `rill consume` output printed with `-f '%p %o %s\n'`, sorted.
fn printed(text: &str) -> Result<Vec<Placed>> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut cells = line.splitn(3, ' ');
        let (Some(p), Some(o), Some(v)) = (cells.next(), cells.next(), cells.next()) else {
            anyhow::bail!("unexpected line {line:?}");
        };
        out.push((p.parse()?, o.parse()?, v.to_owned()));
    }
    out.sort();
    Ok(out)
}

#[test]
fn rill_client_transactions_as_librdkafka_and_rill_consume_read_them() -> Result<()> {
    let broker = Broker::start()?;
    let bootstrap = broker.bootstrap();
    let topic = broker.topic("txn-readers");
    create_topic(&broker, &topic, 2, &[])?;
    let runtime = tokio::runtime::Runtime::new()?;
    let (committed, all) = runtime.block_on(write(&bootstrap, &topic))?;
    ensure!(committed.len() == 28 && all.len() == 38, "{all:?}");

    for (isolation, want) in [("read_committed", &committed), ("read_uncommitted", &all)] {
        let out = run_py(
            "read_isolated.py",
            &[
                bootstrap.clone(),
                topic.clone(),
                "2".into(),
                isolation.into(),
            ],
            b"",
        )?;
        let seen = placed(&out["records"]);
        ensure!(
            &seen == want,
            "librdkafka {isolation} saw {seen:?}\nexpected {want:?}"
        );
    }

    let consume = |extra: &[&str]| -> Result<Vec<Placed>> {
        let mut args = vec![
            "consume",
            topic.as_str(),
            "--from-beginning",
            "-e",
            "-f",
            "%p %o %s\\n",
        ];
        args.extend_from_slice(extra);
        let (stdout, _) = rill_ok(&bootstrap, &args, b"")?;
        printed(&stdout).with_context(|| format!("rill consume {extra:?}"))
    };
    let seen = consume(&["--isolation-level", "read_committed"])?;
    ensure!(
        seen == committed,
        "rill consume read_committed saw {seen:?}"
    );
    let seen = consume(&["-X", "isolation.level=read_committed"])?;
    ensure!(
        seen == committed,
        "rill consume -X read_committed saw {seen:?}"
    );
    let seen = consume(&[])?;
    ensure!(seen == all, "rill consume (read_uncommitted) saw {seen:?}");
    let seen = consume(&["-p", "1", "--isolation-level", "read_uncommitted"])?;
    let partition_1: Vec<Placed> = all.iter().filter(|r| r.0 == 1).cloned().collect();
    ensure!(seen == partition_1, "rill consume -p 1 saw {seen:?}");

    let err = rill_fails(
        &bootstrap,
        &["consume", &topic, "--isolation-level", "committed"],
        b"",
    )?;
    ensure!(err.contains("read_committed"), "{err}");
    let err = rill_fails(
        &bootstrap,
        &["consume", &topic, "-e", "-X", "isolation.level=committed"],
        b"",
    )?;
    ensure!(err.contains("isolation.level"), "{err}");
    Ok(())
}
