//! The transactional producer and read_committed consumers against the real broker: commits
//! and aborts as each isolation level sees them, an open transaction holding read_committed
//! readers at the last stable offset, an abort dropping what was not sent, fencing by a
//! second instance, a group's offsets committed with (and only with) a transaction, and a
//! group member copying its input exactly once.

mod common;

use std::time::Duration;

use anyhow::{Result, ensure};
use common::Broker;
use rill_client::{
    Admin, AdminConfig, AsyncProducer, ClientConfig, ClientError, Consumer, ConsumerConfig,
    ErrorCode, GroupConfig, GroupConsumer, IsolationLevel, Offset, OffsetSpec, Producer,
    ProducerConfig, ProducerRecord, StartOffset,
};

fn client(broker: &Broker) -> ClientConfig {
    ClientConfig::new([broker.bootstrap()])
}

fn transactional(broker: &Broker, id: &str) -> ProducerConfig {
    let mut config = ProducerConfig::new(client(broker));
    config.transactional_id = Some(id.to_owned());
    config
}

/// `(partition, offset, value)` of a record.
type Placed = (i32, i64, String);

/// Sends `count` records named `prefix-i`, round robin over `partitions`, waiting for each:
/// where they landed.
async fn send(
    producer: &Producer,
    topic: &str,
    prefix: &str,
    count: i32,
    partitions: i32,
) -> Result<Vec<Placed>> {
    let mut placed = Vec::new();
    for i in 0..count {
        let value = format!("{prefix}-{i}");
        let meta = producer
            .send(
                ProducerRecord::new(topic)
                    .partition(i % partitions)
                    .value(value.clone()),
            )
            .await?;
        placed.push((meta.partition, meta.offset, value));
    }
    Ok(placed)
}

/// The offset `Offset::Newest` stands for at `isolation`.
async fn end_of(
    broker: &Broker,
    topic: &str,
    partition: i32,
    isolation: IsolationLevel,
) -> Result<i64> {
    let mut config = ConsumerConfig::new(client(broker));
    config.isolation_level = isolation;
    Ok(Consumer::new(config)?
        .resolve_offset(topic, partition, Offset::Newest)
        .await?)
}

/// Every record of `topic` a consumer at `isolation` reads, up to the log end, sorted by
/// partition and offset. Every transaction must have ended: as the coordinator writes the
/// markers just after it answers EndTxn, this first waits (up to 10 s) for the last stable
/// offset to reach the log end.
async fn read(broker: &Broker, topic: &str, isolation: IsolationLevel) -> Result<Vec<Placed>> {
    let mut config = ConsumerConfig::new(client(broker));
    config.isolation_level = isolation;
    let consumer = Consumer::new(config)?;
    let mut out = Vec::new();
    for partition in consumer.partitions(topic).await? {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let end = loop {
            let stable = end_of(broker, topic, partition, IsolationLevel::ReadCommitted).await?;
            let log_end = end_of(broker, topic, partition, IsolationLevel::ReadUncommitted).await?;
            if stable == log_end {
                break log_end;
            }
            ensure!(
                tokio::time::Instant::now() < deadline,
                "partition {partition}: the last stable offset stays at {stable}, the log end is {log_end}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let mut pc = consumer
            .consume_partition(topic, partition, Offset::Oldest)
            .await?;
        while let Some(record) =
            tokio::time::timeout(Duration::from_secs(20), pc.next_before(end)).await?
        {
            let record = record?;
            let value = String::from_utf8_lossy(record.value.as_deref().unwrap_or_default());
            out.push((record.partition, record.offset, value.into_owned()));
        }
        ensure!(
            pc.position() == end,
            "partition {partition}: position {} after reading up to {end}",
            pc.position()
        );
    }
    out.sort();
    Ok(out)
}

#[tokio::test]
async fn committed_and_aborted_transactions_as_each_isolation_sees_them() -> Result<()> {
    let broker = Broker::start_with(&["--num-partitions", "2"])?;
    let topic = "txn";
    let producer = Producer::new(transactional(&broker, "txn-commit-abort"))?;
    producer.init_transactions().await?;
    // A record outside any transaction, before and between them.
    let plain = Producer::new(ProducerConfig::new(client(&broker)))?;
    let mut committed = send(&plain, topic, "plain", 2, 2).await?;
    let mut all = committed.clone();
    for (prefix, commit) in [("c1", true), ("a", false), ("c2", true)] {
        producer.begin_transaction().await?;
        let placed = send(&producer, topic, prefix, 10, 2).await?;
        all.extend(placed.iter().cloned());
        if commit {
            producer.commit_transaction().await?;
            committed.extend(placed);
        } else {
            producer.abort_transaction().await?;
        }
        let between = send(&plain, topic, &format!("after-{prefix}"), 2, 2).await?;
        all.extend(between.iter().cloned());
        committed.extend(between);
    }
    committed.sort();
    all.sort();
    // Each transaction left a marker in each partition: offsets have gaps.
    ensure!(
        all.iter().any(|(p, o, _)| *p == 0 && *o > 12),
        "expected markers among the offsets: {all:?}"
    );
    let read_committed = read(&broker, topic, IsolationLevel::ReadCommitted).await?;
    ensure!(
        read_committed == committed,
        "read_committed saw {read_committed:?}\nexpected {committed:?}"
    );
    let read_uncommitted = read(&broker, topic, IsolationLevel::ReadUncommitted).await?;
    ensure!(
        read_uncommitted == all,
        "read_uncommitted saw {read_uncommitted:?}\nexpected {all:?}"
    );
    producer.close().await;
    plain.close().await;
    Ok(())
}

#[tokio::test]
async fn an_open_transaction_holds_read_committed_readers_at_its_first_offset() -> Result<()> {
    let broker = Broker::start_with(&["--num-partitions", "1"])?;
    let topic = "open";
    let plain = Producer::new(ProducerConfig::new(client(&broker)))?;
    let _ = send(&plain, topic, "before", 3, 1).await?;
    let producer = Producer::new(transactional(&broker, "txn-open"))?;
    producer.init_transactions().await?;
    producer.begin_transaction().await?;
    let open = send(&producer, topic, "open", 4, 1).await?;
    // A record after the open transaction's first: not readable committed until it ends.
    let _ = send(&plain, topic, "later", 1, 1).await?;

    let admin = Admin::new(AdminConfig::new(client(&broker)));
    let listed = |isolation| {
        let admin = &admin;
        async move {
            let offsets = admin
                .list_offsets_isolated(&[(topic, 0)], OffsetSpec::Latest, isolation)
                .await?;
            let offset = offsets
                .into_iter()
                .next()
                .ok_or_else(|| anyhow::anyhow!("no answer"))??
                .offset;
            anyhow::Ok(offset)
        }
    };
    ensure!(listed(IsolationLevel::ReadCommitted).await? == 3, "LSO");
    ensure!(listed(IsolationLevel::ReadUncommitted).await? == 8, "HW");

    let mut config = ConsumerConfig::new(client(&broker));
    config.isolation_level = IsolationLevel::ReadCommitted;
    config.fetch_max_wait = Duration::from_millis(100);
    let consumer = Consumer::new(config)?;
    let mut pc = consumer.consume_partition(topic, 0, Offset::Oldest).await?;
    for expected in 0..3 {
        let record = pc.next().await.ok_or_else(|| anyhow::anyhow!("ended"))??;
        ensure!(record.offset == expected);
    }
    let waited = tokio::time::timeout(Duration::from_millis(700), pc.next()).await;
    ensure!(
        waited.is_err(),
        "read past the open transaction: {waited:?}"
    );
    producer.commit_transaction().await?;
    for (_, offset, value) in open {
        let record = pc.next().await.ok_or_else(|| anyhow::anyhow!("ended"))??;
        ensure!(record.offset == offset && record.value.as_deref() == Some(value.as_bytes()));
    }
    let record = pc.next().await.ok_or_else(|| anyhow::anyhow!("ended"))??;
    ensure!(record.value.as_deref() == Some(&b"later-0"[..]));
    // Past the commit marker, at the log end.
    ensure!(listed(IsolationLevel::ReadCommitted).await? == 9);
    ensure!(pc.next_before(9).await.is_none() && pc.position() == 9);
    producer.close().await;
    plain.close().await;
    Ok(())
}

#[tokio::test]
async fn an_abort_drops_what_was_not_sent_and_sends_outside_a_transaction_fail() -> Result<()> {
    let broker = Broker::start_with(&["--num-partitions", "1"])?;
    let topic = "dropped";
    let mut config = transactional(&broker, "txn-dropped");
    // Nothing goes out before the abort.
    config.linger = Duration::from_secs(30);
    let producer = AsyncProducer::new(config)?;
    let mut successes = producer
        .successes()
        .await
        .ok_or_else(|| anyhow::anyhow!("taken"))?;
    let mut errors = producer
        .errors()
        .await
        .ok_or_else(|| anyhow::anyhow!("taken"))?;

    producer
        .send(ProducerRecord::new(topic).value("too early"))
        .await?;
    let refused = errors
        .recv()
        .await
        .ok_or_else(|| anyhow::anyhow!("ended"))?;
    ensure!(
        matches!(refused.error, ClientError::Transaction { fatal: false, .. }),
        "{}",
        refused.error
    );
    ensure!(
        producer.begin_transaction().await.is_err(),
        "begin before init_transactions"
    );

    producer.init_transactions().await?;
    producer.begin_transaction().await?;
    for i in 0..5 {
        producer
            .send(ProducerRecord::new(topic).value(format!("v{i}")))
            .await?;
    }
    producer.abort_transaction().await?;
    for _ in 0..5 {
        let failed = errors
            .recv()
            .await
            .ok_or_else(|| anyhow::anyhow!("ended"))?;
        ensure!(
            failed.error.to_string().contains("aborted"),
            "{}",
            failed.error
        );
    }
    ensure!(successes.try_recv().is_err(), "nothing was delivered");
    // The producer goes on with the next transaction.
    producer.begin_transaction().await?;
    producer
        .send(ProducerRecord::new(topic).value("kept"))
        .await?;
    producer.commit_transaction().await?;
    let delivered = successes
        .recv()
        .await
        .ok_or_else(|| anyhow::anyhow!("ended"))?;
    ensure!(delivered.record.value.as_deref() == Some(&b"kept"[..]));
    ensure!(
        producer.commit_transaction().await.is_err(),
        "a commit with no transaction open"
    );
    producer.close().await;
    let read = read(&broker, topic, IsolationLevel::ReadCommitted).await?;
    ensure!(
        read.iter().map(|(_, _, v)| v.as_str()).collect::<Vec<_>>() == ["kept"],
        "{read:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_second_instance_fences_the_first() -> Result<()> {
    let broker = Broker::start_with(&["--num-partitions", "1"])?;
    let topic = "fenced";
    let first = Producer::new(transactional(&broker, "txn-fence"))?;
    first.init_transactions().await?;
    first.begin_transaction().await?;
    let _ = send(&first, topic, "zombie", 1, 1).await?;

    // The second instance's init aborts the first's open transaction and fences it.
    let second = Producer::new(transactional(&broker, "txn-fence"))?;
    second.init_transactions().await?;
    second.begin_transaction().await?;
    let _ = send(&second, topic, "successor", 1, 1).await?;
    second.commit_transaction().await?;

    let err = match first.commit_transaction().await {
        Ok(()) => anyhow::bail!("the fenced producer committed"),
        Err(err) => err,
    };
    ensure!(err.is_fatal(), "not fatal: {err}");
    ensure!(
        matches!(
            err.code(),
            Some(ErrorCode::ProducerFenced | ErrorCode::InvalidProducerEpoch)
        ),
        "{}",
        err.with_causes()
    );
    ensure!(err.to_string().contains("fenced"), "{err}");
    // Fatal from then on.
    let again = first.begin_transaction().await;
    ensure!(again.is_err_and(|e| e.is_fatal()));
    let send_after = first
        .send(ProducerRecord::new(topic).value("zombie-2"))
        .await;
    ensure!(send_after.is_err_and(|e| e.is_fatal()));
    first.close().await;

    let read = read(&broker, topic, IsolationLevel::ReadCommitted).await?;
    let values: Vec<&str> = read.iter().map(|(_, _, v)| v.as_str()).collect();
    ensure!(values == ["successor-0"], "read_committed saw {values:?}");
    second.close().await;
    Ok(())
}

#[tokio::test]
async fn offsets_sent_to_a_transaction_are_committed_only_with_it() -> Result<()> {
    let broker = Broker::start_with(&["--num-partitions", "1"])?;
    let (input, output, group) = ("input", "output", "copier");
    let plain = Producer::new(ProducerConfig::new(client(&broker)))?;
    let _ = send(&plain, input, "in", 10, 1).await?;
    let admin = Admin::new(AdminConfig::new(client(&broker)));
    let committed = || async {
        let offsets = admin.group_offsets(group).await?;
        anyhow::Ok(
            offsets
                .iter()
                .find(|c| c.topic == input && c.partition == 0)
                .map(|c| c.offset),
        )
    };
    ensure!(committed().await?.is_none());
    // The coordinator answers EndTxn once the outcome is durable and writes the markers (the
    // one in the group's offsets log included) right after: the offsets show up soon after
    // the commit returns, as in Kafka.
    let eventually = |want: Option<i64>| async move {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let got = committed().await?;
            if got == want || tokio::time::Instant::now() > deadline {
                return anyhow::Ok(got);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };

    let producer = Producer::new(transactional(&broker, "txn-offsets"))?;
    producer.init_transactions().await?;
    producer.begin_transaction().await?;
    let _ = send(&producer, output, "out", 5, 1).await?;
    producer
        .send_offsets_to_transaction(&[(input, 0, 5)], group)
        .await?;
    let pending = committed().await?;
    ensure!(pending.is_none(), "visible before the commit: {pending:?}");
    producer.commit_transaction().await?;
    let after = eventually(Some(5)).await?;
    ensure!(after == Some(5), "after the commit: {after:?}");

    // Aborted: the group keeps the offset it had.
    producer.begin_transaction().await?;
    let _ = send(&producer, output, "out-aborted", 5, 1).await?;
    producer
        .send_offsets_to_transaction(&[(input, 0, 10)], group)
        .await?;
    producer.abort_transaction().await?;
    // Give the abort's marker time to land, as the commit's did.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = committed().await?;
    ensure!(after == Some(5), "after the abort: {after:?}");

    // Offsets alone (no record) are a transaction too.
    producer.begin_transaction().await?;
    producer
        .send_offsets_to_transaction(&[(input, 0, 10)], group)
        .await?;
    producer.commit_transaction().await?;
    let after = eventually(Some(10)).await?;
    ensure!(after == Some(10), "offsets-only transaction: {after:?}");

    let read = read(&broker, output, IsolationLevel::ReadCommitted).await?;
    ensure!(read.len() == 5, "read_committed saw {read:?}");
    producer.close().await;
    plain.close().await;
    Ok(())
}

#[tokio::test]
async fn a_group_member_copies_its_input_exactly_once() -> Result<()> {
    let broker = Broker::start_with(&[
        "--num-partitions",
        "1",
        "--group-initial-rebalance-delay-ms",
        "100",
    ])?;
    let (input, output, group_id) = ("eos-in", "eos-out", "eos");
    let plain = Producer::new(ProducerConfig::new(client(&broker)))?;
    let _ = send(&plain, input, "rec", 20, 1).await?;

    let mut config = GroupConfig::new(group_id);
    config.start = StartOffset::Oldest;
    config.auto_commit_interval = None;
    let mut consumer = ConsumerConfig::new(client(&broker));
    consumer.isolation_level = IsolationLevel::ReadCommitted;
    let mut group = GroupConsumer::new(consumer, config)?;
    group.subscribe(&[input]);
    let producer = Producer::new(transactional(&broker, "txn-eos"))?;
    producer.init_transactions().await?;
    let mut copied = 0;
    while copied < 20 {
        producer.begin_transaction().await?;
        // Five records a transaction, with the offsets after them.
        let mut next = 0;
        for _ in 0..5 {
            let record = tokio::time::timeout(Duration::from_secs(30), group.next())
                .await?
                .ok_or_else(|| anyhow::anyhow!("the group consumer ended"))??;
            let value = record.value.unwrap_or_default().to_ascii_uppercase();
            let _ = producer
                .send(ProducerRecord::new(output).value(value))
                .await?;
            next = record.offset + 1;
        }
        // KIP-447: the offsets name this member and its generation.
        producer
            .send_offsets_to_transaction(&[(input, 0, next)], group.group_metadata())
            .await?;
        producer.commit_transaction().await?;
        copied += 5;
    }
    producer.close().await;
    group.close().await?;
    let out = read(&broker, output, IsolationLevel::ReadCommitted).await?;
    let values: Vec<String> = out.into_iter().map(|(_, _, v)| v).collect();
    let want: Vec<String> = (0..20).map(|i| format!("REC-{i}")).collect();
    ensure!(values == want, "copied {values:?}");
    let admin = Admin::new(AdminConfig::new(client(&broker)));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let offsets = admin.group_offsets(group_id).await?;
        let at = offsets.iter().find(|c| c.topic == input).map(|c| c.offset);
        if at == Some(20) {
            break;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "committed offset {at:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    plain.close().await;
    Ok(())
}

#[tokio::test]
async fn transaction_calls_need_a_transactional_id() -> Result<()> {
    let broker = Broker::start()?;
    let producer = Producer::new(ProducerConfig::new(client(&broker)))?;
    let err = producer.begin_transaction().await;
    ensure!(matches!(err, Err(ClientError::Config(_))), "{err:?}");
    let mut config = transactional(&broker, "x");
    config.enable_idempotence = false;
    ensure!(Producer::new(config).is_err());
    producer.close().await;
    Ok(())
}
