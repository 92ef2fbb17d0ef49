//! The configs that change what a produce does: min.insync.replicas, the timestamp type and
//! window, cleanup.policy and compression.type.

use super::*;

#[test]
fn min_insync_replicas_above_one_refuses_acks_all_only() -> Result<()> {
    let broker = Broker::start_with(&["--min-insync-replicas", "2"])?;
    let mut c = Conn::open(&broker)?;
    let from_broker = broker.topic("isr-broker");
    let own = broker.topic("isr-topic");
    let relaxed = broker.topic("isr-relaxed");
    create_ok(&mut c, &from_broker, &[])?;
    create_ok(&mut c, &own, &[("min.insync.replicas", "3")])?;
    create_ok(&mut c, &relaxed, &[("min.insync.replicas", "1")])?;
    for topic in [&from_broker, &own] {
        let answer = produce(&mut c, topic, batch(&["refused"], 1_700_000_000_000)?, -1)?;
        ensure!(
            answer.error_code == NOT_ENOUGH_REPLICAS && answer.base_offset == -1,
            "acks=all to {topic}: {answer:?}"
        );
        ensure!(
            end(&mut c, topic)? == 0,
            "a refused batch was appended to {topic}"
        );
        let answer = produce(&mut c, topic, batch(&["a", "b"], 1_700_000_000_000)?, 1)?;
        ensure!(
            answer.error_code == NONE && answer.base_offset == 0,
            "acks=1 to {topic}: {answer:?}"
        );
        ensure!(end(&mut c, topic)? == 2, "acks=1 to {topic} appended");
    }
    ensure!(
        broker
            .output_text()
            .contains("acks=all:    refused with NOT_ENOUGH_REPLICAS"),
        "the start-up banner does not say acks=all is refused: {}",
        broker.output_text()
    );
    let answer = produce(&mut c, &relaxed, batch(&["ok"], 1_700_000_000_000)?, -1)?;
    ensure!(
        answer.error_code == NONE,
        "acks=all with min.insync.replicas=1: {answer:?}"
    );
    Ok(())
}

#[test]
fn log_append_time_stamps_the_stored_batch_and_the_answer() -> Result<()> {
    let broker = Broker::start()?;
    let mut c = Conn::open(&broker)?;
    let topic = broker.topic("stamped");
    create_ok(
        &mut c,
        &topic,
        &[("message.timestamp.type", "LogAppendTime")],
    )?;
    let before = now_ms()?;
    let answer = produce(&mut c, &topic, batch(&["a", "b"], 1_000)?, -1)?;
    let after = now_ms()?;
    ensure!(answer.error_code == NONE, "produce: {answer:?}");
    let stamped = answer.log_append_time_ms;
    ensure!(
        (before..=after).contains(&stamped),
        "log_append_time_ms {stamped} not in [{before}, {after}]"
    );
    let stored = fetch_batch(&mut c, &topic, 0)?;
    let view = Batch::parse(&stored)?;
    view.verify_crc()?;
    ensure!(
        view.header().attributes.timestamp_type() == TimestampType::LogAppendTime
            && view.header().max_timestamp == stamped,
        "stored header: {:?}",
        view.header()
    );
    let timestamps: Vec<i64> = view.records()?.iter().map(|r| r.timestamp).collect();
    ensure!(
        timestamps == [stamped, stamped],
        "records read {timestamps:?}"
    );

    // Back to CreateTime: no stamp, and the answer says so with -1.
    let (code, _) = alter(
        &mut c,
        &topic,
        &[("message.timestamp.type", OP_DELETE, None)],
    )?;
    ensure!(code == NONE, "DELETE message.timestamp.type: {code}");
    let answer = produce(&mut c, &topic, batch(&["c"], 1_000)?, -1)?;
    ensure!(
        answer.error_code == NONE && answer.log_append_time_ms == -1,
        "CreateTime produce: {answer:?}"
    );
    let stored = fetch_batch(&mut c, &topic, 2)?;
    let header = *Batch::parse(&stored)?.header();
    ensure!(
        header.attributes.timestamp_type() == TimestampType::CreateTime
            && header.max_timestamp == 1_000,
        "CreateTime batch: {header:?}"
    );
    Ok(())
}

#[test]
fn compacted_topics_refuse_keyless_records_with_record_errors() -> Result<()> {
    let broker = Broker::start()?;
    let mut c = Conn::open(&broker)?;
    let topic = broker.topic("compacted");
    create_ok(&mut c, &topic, &[("cleanup.policy", "compact")])?;
    let mixed = BatchBuilder::new()
        .compression(Compression::Snappy)
        .record(RecordSpec::new(1_000).key("k").value("keyed"))
        .record(RecordSpec::new(1_000).value("keyless"))
        .build()?;
    let answer = produce(&mut c, &topic, mixed, -1)?;
    let errors: Vec<(i32, String)> = answer
        .record_errors
        .iter()
        .map(|e| {
            let message = e.batch_index_error_message.as_deref().unwrap_or_default();
            (e.batch_index, message.to_owned())
        })
        .collect();
    ensure!(
        answer.error_code == INVALID_RECORD
            && answer.base_offset == -1
            && errors.len() == 1
            && errors.first().is_some_and(|(i, m)| *i == 1
                && m.contains("without key")
                && m.contains(&format!("{topic}-0")))
            && answer
                .error_message
                .as_deref()
                .is_some_and(|m| m.contains("without key")),
        "keyless record: {answer:?}"
    );
    ensure!(
        end(&mut c, &topic)? == 0,
        "part of a refused batch was appended"
    );
    let answer = produce(&mut c, &topic, batch(&["a", "b"], 1_000)?, -1)?;
    ensure!(
        answer.error_code == NONE && answer.base_offset == 0 && answer.record_errors.is_empty(),
        "keyed records: {answer:?}"
    );
    // delete,compact checks keys too; plain delete does not.
    let (code, _) = alter(
        &mut c,
        &topic,
        &[("cleanup.policy", OP_APPEND, Some("delete"))],
    )?;
    ensure!(code == NONE, "APPEND delete: {code}");
    let keyless = BatchBuilder::new()
        .record(RecordSpec::new(1_000).value("v"))
        .build()?;
    let answer = produce(&mut c, &topic, keyless.clone(), -1)?;
    ensure!(
        answer.error_code == INVALID_RECORD,
        "delete,compact: {answer:?}"
    );
    let (code, _) = alter(
        &mut c,
        &topic,
        &[("cleanup.policy", OP_SUBTRACT, Some("compact"))],
    )?;
    ensure!(code == NONE, "SUBTRACT compact: {code}");
    let answer = produce(&mut c, &topic, keyless, -1)?;
    ensure!(answer.error_code == NONE, "delete only: {answer:?}");
    Ok(())
}

#[test]
fn create_time_outside_the_topic_window_is_invalid_timestamp() -> Result<()> {
    let broker = Broker::start()?;
    let mut c = Conn::open(&broker)?;
    let topic = broker.topic("window");
    create_ok(
        &mut c,
        &topic,
        &[
            ("message.timestamp.before.max.ms", "3600000"),
            ("message.timestamp.after.max.ms", "3600000"),
        ],
    )?;
    let now = now_ms()?;
    for (what, ts) in [
        ("a day old", now - 86_400_000),
        ("a day ahead", now + 86_400_000),
    ] {
        let answer = produce(&mut c, &topic, batch(&["x"], ts)?, -1)?;
        ensure!(
            answer.error_code == INVALID_TIMESTAMP
                && answer.record_errors.first().map(|e| e.batch_index) == Some(0),
            "{what}: {answer:?}"
        );
    }
    ensure!(end(&mut c, &topic)? == 0, "a refused batch was appended");
    let answer = produce(&mut c, &topic, batch(&["x"], now)?, -1)?;
    ensure!(answer.error_code == NONE, "now: {answer:?}");
    // The deprecated difference bound applies where before/after are not set.
    let other = broker.topic("difference");
    create_ok(
        &mut c,
        &other,
        &[("message.timestamp.difference.max.ms", "3600000")],
    )?;
    let answer = produce(&mut c, &other, batch(&["x"], now - 86_400_000)?, -1)?;
    ensure!(
        answer.error_code == INVALID_TIMESTAMP,
        "difference: {answer:?}"
    );
    // LogAppendTime topics take any producer timestamp.
    let (code, _) = alter(
        &mut c,
        &other,
        &[("message.timestamp.type", OP_SET, Some("LogAppendTime"))],
    )?;
    ensure!(code == NONE, "SET LogAppendTime: {code}");
    let answer = produce(&mut c, &other, batch(&["x"], 5)?, -1)?;
    ensure!(answer.error_code == NONE, "LogAppendTime: {answer:?}");
    Ok(())
}

#[test]
fn compression_type_decides_the_stored_codec() -> Result<()> {
    let broker = Broker::start()?;
    let mut c = Conn::open(&broker)?;
    let make = |codec: Compression| -> Result<Bytes> {
        Ok(BatchBuilder::new()
            .compression(codec)
            .record(
                RecordSpec::new(1_000)
                    .key("k")
                    .value("v".repeat(500))
                    .header("h", "x"),
            )
            .record(RecordSpec::new(1_001).value("w"))
            .build()?)
    };
    for (config, sent, stored) in [
        ("gzip", Compression::None, Compression::Gzip),
        ("zstd", Compression::Lz4, Compression::Zstd),
        ("snappy", Compression::Gzip, Compression::Snappy),
        ("lz4", Compression::Snappy, Compression::Lz4),
        ("uncompressed", Compression::Zstd, Compression::None),
        ("producer", Compression::Lz4, Compression::Lz4),
        ("gzip", Compression::Gzip, Compression::Gzip),
    ] {
        let topic = broker.topic(&format!("codec-{config}-{}", sent.name()));
        create_ok(&mut c, &topic, &[("compression.type", config)])?;
        let original = make(sent)?;
        let answer = produce(&mut c, &topic, original.clone(), -1)?;
        ensure!(
            answer.error_code == NONE,
            "{config} <- {sent:?}: {answer:?}"
        );
        let fetched = fetch_batch(&mut c, &topic, 0)?;
        let view = Batch::parse(&fetched)?;
        view.verify_crc()?;
        ensure!(
            view.header().attributes.compression()? == stored,
            "{config} <- {sent:?}: stored as {:?}",
            view.header().attributes.compression()
        );
        ensure!(
            view.records()? == Batch::parse(&original)?.records()?,
            "{config} <- {sent:?}: the records changed"
        );
        if sent == stored {
            // Kept as the producer sent it: the very bytes (the base offset is 0 in both).
            ensure!(
                fetched == original,
                "{config} <- {sent:?}: the batch was rewritten"
            );
        }
    }

    // A batch past the size recompressed on a blocking thread, with gzip's level honoured.
    let topic = broker.topic("codec-large");
    create_ok(
        &mut c,
        &topic,
        &[
            ("compression.type", "gzip"),
            ("compression.gzip.level", "1"),
        ],
    )?;
    let mut large = BatchBuilder::new();
    for i in 0..100 {
        large = large.record(
            RecordSpec::new(1_000)
                .key(format!("k{i}"))
                .value(format!("{i:04}").repeat(500)),
        );
    }
    let large = large.build()?;
    ensure!(
        large.len() > 150_000,
        "the large batch is {} bytes",
        large.len()
    );
    let answer = produce(&mut c, &topic, large.clone(), -1)?;
    ensure!(answer.error_code == NONE, "large batch: {answer:?}");
    let stored = fetch_batch(&mut c, &topic, 0)?;
    let view = Batch::parse(&stored)?;
    ensure!(
        view.header().attributes.compression()? == Compression::Gzip
            && stored.len() < large.len() / 4
            && view.records()? == Batch::parse(&large)?.records()?,
        "large batch stored as {:?}, {} bytes",
        view.header().attributes.compression(),
        stored.len()
    );

    // An idempotent producer's batch keeps its producer id, epoch and sequence, and a retry
    // of it, recompressed again, is still recognised as a duplicate.
    let topic = broker.topic("codec-idempotent");
    create_ok(&mut c, &topic, &[("compression.type", "zstd")])?;
    let idempotent = BatchBuilder::new()
        .producer(4000, 0, 0)
        .record(RecordSpec::new(1_000).key("k").value("once"))
        .build()?;
    for attempt in 0..2 {
        let answer = produce(&mut c, &topic, idempotent.clone(), -1)?;
        ensure!(
            answer.error_code == NONE && answer.base_offset == 0,
            "attempt {attempt}: {answer:?}"
        );
    }
    ensure!(end(&mut c, &topic)? == 1, "the retry was written twice");
    let stored = fetch_batch(&mut c, &topic, 0)?;
    let header = *Batch::parse(&stored)?.header();
    ensure!(
        header.attributes.compression()? == Compression::Zstd
            && (
                header.producer_id,
                header.producer_epoch,
                header.base_sequence
            ) == (4000, 0, 0),
        "stored header: {header:?}"
    );
    Ok(())
}

#[test]
fn retention_never_deletes_a_compact_only_topic() -> Result<()> {
    let broker = Broker::start_with(&["--retention-check-ms", "20"])?;
    let mut c = Conn::open(&broker)?;
    // Tiny segments and retention, so that every sealed segment is due at once.
    let settings = [("segment.bytes", "200"), ("retention.ms", "1")];
    let compact = broker.topic("kept");
    let deleted = broker.topic("trimmed");
    let mut compact_settings = settings.to_vec();
    compact_settings.push(("cleanup.policy", "compact"));
    create_ok(&mut c, &compact, &compact_settings)?;
    create_ok(&mut c, &deleted, &settings)?;
    for i in 0..10 {
        for topic in [&compact, &deleted] {
            let answer = produce(&mut c, topic, batch(&[&format!("value {i}")], 1_000)?, 1)?;
            ensure!(answer.error_code == NONE, "produce to {topic}: {answer:?}");
        }
    }
    // Wait until retention has trimmed the delete topic, then give the other owner a few more
    // rounds: a compact-only topic must still start at 0.
    let earliest = |c: &mut Conn, topic: &str| -> Result<i64> {
        let id = c.id();
        let (code, offset) = common::list_offset(&mut c.stream, topic, 0, -2, id)?;
        ensure!(code == NONE, "ListOffsets earliest {topic}: {code}");
        Ok(offset)
    };
    let trimmed = |c: &mut Conn, topic: &str| -> Result<()> {
        // Bounded only so that a broken broker fails the test rather than hanging it.
        for _ in 0..1500 {
            if earliest(c, topic)? > 0 {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        bail!("retention never trimmed {topic}")
    };
    trimmed(&mut c, &deleted)?;
    std::thread::sleep(std::time::Duration::from_millis(300));
    ensure!(
        earliest(&mut c, &compact)? == 0 && end(&mut c, &compact)? == 10,
        "the compact-only topic lost records to retention"
    );
    // DeleteRecords is refused too, as Kafka refuses it without delete in the policy.
    let (code, _) = delete_records(&mut c, &compact, 5)?;
    ensure!(
        code == POLICY_VIOLATION,
        "DeleteRecords on compact-only: {code}"
    );
    ensure!(
        earliest(&mut c, &compact)? == 0,
        "DeleteRecords moved the start"
    );
    // Adding delete to the policy lets retention work again.
    let (code, _) = alter(
        &mut c,
        &compact,
        &[("cleanup.policy", OP_APPEND, Some("delete"))],
    )?;
    ensure!(code == NONE, "APPEND delete: {code}");
    trimmed(&mut c, &compact)?;
    let (code, low) = delete_records(&mut c, &compact, 10)?;
    ensure!(
        code == NONE && low == 10,
        "DeleteRecords on compact,delete: {code} {low}"
    );
    Ok(())
}
