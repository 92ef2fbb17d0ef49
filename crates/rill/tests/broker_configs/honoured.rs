use super::*;

use common::run_py;

/// What a topic without an override and one with its own `retention.ms` report, and the
/// broker's per-broker and cluster-default resources.
fn check_retention(conn: &mut Conn, plain: &str, own: &str) -> Result<()> {
    let (value, source, synonyms) =
        config(conn, RESOURCE_TOPIC, plain, "retention.ms")?.context("retention.ms")?;
    let name = "log.retention.ms".to_owned();
    ensure!(
        (value.as_str(), source) == ("7200000", SOURCE_BROKER)
            && synonyms
                == [
                    (name.clone(), "7200000".to_owned(), SOURCE_BROKER),
                    (name.clone(), "3600000".to_owned(), SOURCE_CLUSTER),
                    (name.clone(), "86400000".to_owned(), SOURCE_STATIC),
                    (name.clone(), "604800000".to_owned(), SOURCE_DEFAULT),
                ],
        "{plain}: {value} {source} {synonyms:?}"
    );
    ensure!(value_of(conn, own)? == pair("5000", SOURCE_TOPIC));
    let (value, source, synonyms) =
        config(conn, RESOURCE_BROKER, "0", "log.retention.ms")?.context("broker")?;
    ensure!(
        (value.as_str(), source, synonyms.len()) == ("7200000", SOURCE_BROKER, 4),
        "broker 0: {value} {source} {synonyms:?}"
    );
    let (value, source, synonyms) =
        config(conn, RESOURCE_BROKER, "", "log.retention.ms")?.context("default")?;
    ensure!(
        (value.as_str(), source) == ("3600000", SOURCE_CLUSTER)
            && synonyms.first().map(|s| s.2) == Some(SOURCE_CLUSTER)
            && synonyms.iter().all(|s| s.2 != SOURCE_BROKER),
        "cluster default: {value} {source} {synonyms:?}"
    );
    Ok(())
}

fn value_of(conn: &mut Conn, topic: &str) -> Result<(String, i8)> {
    value(conn, RESOURCE_TOPIC, topic, "retention.ms")
}

#[test]
fn retention_defaults_layer_and_survive_restart_and_kill9() -> Result<()> {
    let mut broker = Broker::start_with(&["--retention-ms", "86400000"])?;
    let mut conn = Conn::open(&broker)?;
    let plain = broker.topic("plain");
    let own = broker.topic("own");
    create(&mut conn, &plain, &[])?;
    create(&mut conn, &own, &[("retention.ms", "5000")])?;
    ensure!(value_of(&mut conn, &plain)? == pair("86400000", SOURCE_STATIC));

    // Cluster-wide first (AlterConfigs replaces the resource's set), then this broker.
    ensure!(alter_legacy(&mut conn, "", &[("log.retention.ms", "3600000")])? == NONE);
    ensure!(value_of(&mut conn, &plain)? == pair("3600000", SOURCE_CLUSTER));
    ensure!(value_of(&mut conn, &own)? == pair("5000", SOURCE_TOPIC));
    set(
        &mut conn,
        "0",
        &[("log.retention.ms", OP_SET, Some("7200000"))],
    )?;
    check_retention(&mut conn, &plain, &own)?;
    // A topic created now starts from the same defaults.
    let later = broker.topic("later");
    create(&mut conn, &later, &[])?;
    ensure!(value_of(&mut conn, &later)? == pair("7200000", SOURCE_BROKER));

    broker.restart()?;
    let mut conn = Conn::open(&broker)?;
    check_retention(&mut conn, &plain, &own)?;
    broker.kill9()?;
    broker.restart()?;
    let mut conn = Conn::open(&broker)?;
    check_retention(&mut conn, &plain, &own)?;

    // Deleting the per-broker value falls back to the cluster default, live.
    set(&mut conn, "0", &[("log.retention.ms", OP_DELETE, None)])?;
    ensure!(value_of(&mut conn, &plain)? == pair("3600000", SOURCE_CLUSTER));
    // AlterConfigs with an empty set clears the cluster default.
    ensure!(alter_legacy(&mut conn, "", &[])? == NONE);
    ensure!(value_of(&mut conn, &plain)? == pair("86400000", SOURCE_STATIC));
    Ok(())
}

#[test]
fn message_max_bytes_takes_effect_live() -> Result<()> {
    let broker = Broker::start()?;
    let mut conn = Conn::open(&broker)?;
    let topic = broker.topic("small");
    create(&mut conn, &topic, &[])?;
    let big = rill_record::BatchBuilder::new()
        .record(
            rill_record::RecordSpec::new(1)
                .key("k".to_owned())
                .value("v".repeat(500)),
        )
        .build()?;
    let produce = |conn: &mut Conn| -> Result<Option<i16>> {
        let answer = ask!(conn, Produce, 9, produce_request(&topic, 0, big.clone(), 1));
        Ok(answer
            .responses
            .first()
            .and_then(|t| t.partition_responses.first())
            .map(|p| p.error_code))
    };
    ensure!(produce(&mut conn)? == Some(NONE));
    set(&mut conn, "", &[("message.max.bytes", OP_SET, Some("200"))])?;
    ensure!(
        value(&mut conn, RESOURCE_TOPIC, &topic, "max.message.bytes")?
            == pair("200", SOURCE_CLUSTER)
    );
    let code = produce(&mut conn)?;
    ensure!(
        code == Some(10),
        "a 500-byte batch over message.max.bytes=200: {code:?}"
    );
    Ok(())
}

#[test]
fn confluent_kafka_admin_client_alters_broker_configs() -> Result<()> {
    let broker = Broker::start()?;
    let mut conn = Conn::open(&broker)?;
    let topic = broker.topic("admin");
    create(&mut conn, &topic, &[])?;
    let out = run_py(
        "broker_configs.py",
        &[broker.bootstrap(), topic.clone()],
        b"",
    )?;
    ensure!(
        out["alter"].is_null()
            && out["incremental"].is_null()
            && out["incremental_delete"].is_null(),
        "{out}"
    );
    ensure!(
        out["broker"]["sasl.kerberos.min.time.before.relogin"]
            == serde_json::json!(["58000", SOURCE_BROKER]),
        "{out}"
    );
    ensure!(
        out["broker"]["log.retention.ms"] == serde_json::json!(["3600000", SOURCE_BROKER]),
        "{out}"
    );
    ensure!(
        out["broker"]["log.cleanup.policy"] == serde_json::json!(["delete,compact", SOURCE_BROKER]),
        "{out}"
    );
    ensure!(
        out["broker"]["background.threads"] == serde_json::json!(["10", SOURCE_DEFAULT]),
        "{out}"
    );
    ensure!(
        out["topic"]["retention.ms"] == serde_json::json!(["3600000", SOURCE_BROKER]),
        "{out}"
    );
    ensure!(out["bad"] == "INVALID_REQUEST", "{out}");
    Ok(())
}
