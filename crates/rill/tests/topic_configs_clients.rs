//! Topic configs as librdkafka (confluent-kafka) sees them, against the real broker: topics
//! created with AdminClient, records produced and consumed with the clients' defaults.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, ensure};
use common::{
    Broker, Client, Rec, Result, connect, consume, create_topic, first_batch, produce,
    run_py_failing,
};
use rill_record::{Batch, Compression};

fn now_ms() -> Result<i64> {
    Ok(i64::try_from(
        SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis(),
    )?)
}

#[test]
fn log_append_time_is_what_a_librdkafka_consumer_reads() -> Result<()> {
    let broker = Broker::start()?;
    let topic = broker.topic("append-time");
    create_topic(
        &broker,
        &topic,
        1,
        &["message.timestamp.type=LogAppendTime"],
    )?;
    // CreateTime timestamps far in the past, so that a stamped batch cannot be mistaken.
    let records: Vec<Rec> = (0..5)
        .map(|i| Rec {
            timestamp: Some(1_000_000 + i),
            ..Rec::kv(format!("k{i}"), format!("v{i}"))
        })
        .collect();
    let before = now_ms()?;
    let _ = produce(&broker, Client::Confluent, &topic, &records, &[])?;
    let after = now_ms()?;
    let got = consume(&broker, Client::Confluent, &topic, 1, records.len())?;
    ensure!(got.records.len() == records.len(), "read {:?}", got.records);
    for (sent, read) in records.iter().zip(&got.records) {
        ensure!(
            read.key == sent.key && read.value == sent.value,
            "record {} changed: {read:?}",
            read.offset
        );
        ensure!(
            read.timestamp_type.as_deref() == Some("log_append")
                && (before..=after).contains(&read.timestamp),
            "record {}: {:?} {} not a LogAppendTime in [{before}, {after}]",
            read.offset,
            read.timestamp_type,
            read.timestamp
        );
    }

    // A CreateTime topic keeps the producer's timestamps.
    let plain = broker.topic("create-time");
    create_topic(&broker, &plain, 1, &[])?;
    let _ = produce(&broker, Client::Confluent, &plain, &records, &[])?;
    let got = consume(&broker, Client::Confluent, &plain, 1, records.len())?;
    let first = got.records.first().context("nothing read")?;
    ensure!(
        first.timestamp_type.as_deref() == Some("create") && first.timestamp == 1_000_000,
        "CreateTime topic: {first:?}"
    );
    Ok(())
}

/// The codec of the first batch stored in partition 0 of `topic`, read over a raw fetch.
fn stored_codec(broker: &Broker, topic: &str) -> Result<Compression> {
    let mut stream = connect(broker)?;
    let batch = first_batch(&mut stream, topic, 0, 0, 1)?;
    let view = Batch::parse(&batch)?;
    view.verify_crc()?;
    Ok(view.header().attributes.compression()?)
}

#[test]
fn compression_type_recompresses_what_librdkafka_sends() -> Result<()> {
    let broker = Broker::start()?;
    let records: Vec<Rec> = (0..20)
        .map(|i| {
            let mut rec = Rec::kv(format!("key-{i}"), format!("value {i} ").repeat(40));
            rec.headers = vec![("trace".to_owned(), Some(format!("t{i}").into_bytes()))];
            rec
        })
        .collect();
    for (config, producer_codec, stored) in [
        ("gzip", "none", Compression::Gzip),
        ("uncompressed", "zstd", Compression::None),
        ("producer", "lz4", Compression::Lz4),
    ] {
        let topic = broker.topic(&format!("codec-{config}"));
        create_topic(&broker, &topic, 1, &[&format!("compression.type={config}")])?;
        let _ = produce(
            &broker,
            Client::Confluent,
            &topic,
            &records,
            &["--compression", producer_codec],
        )?;
        let codec = stored_codec(&broker, &topic)?;
        ensure!(
            codec == stored,
            "compression.type={config}, producer {producer_codec}: stored as {codec:?}"
        );
        let got = consume(&broker, Client::Confluent, &topic, 1, records.len())?;
        ensure!(
            got.records.len() == records.len(),
            "{config}: read {}",
            got.records.len()
        );
        for (sent, read) in records.iter().zip(&got.records) {
            ensure!(
                read.key == sent.key && read.value == sent.value && read.headers == sent.headers,
                "{config}: record {} read back as {read:?}",
                read.offset
            );
        }
    }
    Ok(())
}

#[test]
fn a_librdkafka_producer_gets_invalid_record_for_a_keyless_record_on_a_compacted_topic()
-> Result<()> {
    let broker = Broker::start()?;
    let topic = broker.topic("compact");
    create_topic(&broker, &topic, 1, &["cleanup.policy=compact"])?;
    let args = vec![
        broker.bootstrap(),
        topic.clone(),
        "--client".to_owned(),
        "confluent".to_owned(),
        "--timeout".to_owned(),
        "10".to_owned(),
    ];
    // produce.py takes keys and values in hex; the key is null.
    let input = serde_json::json!([{"k": null, "v": common::hex(b"no key")}]);
    let stderr = run_py_failing("produce.py", &args, &serde_json::to_vec(&input)?)?;
    ensure!(
        stderr.contains("INVALID_RECORD"),
        "produce.py said: {stderr}"
    );
    let _ = produce(
        &broker,
        Client::Confluent,
        &topic,
        &[Rec::kv("k", "keyed")],
        &[],
    )?;
    let got = consume(&broker, Client::Confluent, &topic, 1, 1)?;
    let first = got.records.first().context("nothing read")?;
    ensure!(
        got.records.len() == 1
            && first.offset == 0
            && first.key.as_deref() == Some(b"k".as_slice()),
        "read {:?}",
        got.records
    );
    Ok(())
}
