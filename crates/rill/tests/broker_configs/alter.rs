use super::*;

/// A change to a BROKER resource, as [`incremental`] takes it.
type Change<'a> = (&'a str, i8, Option<&'a str>);

#[test]
fn refusals_have_kafka_codes_and_messages() -> Result<()> {
    let broker = Broker::start()?;
    let mut conn = Conn::open(&broker)?;
    let cases: &[(&str, Change<'_>, i16, &str)] = &[
        (
            "0",
            ("log.dirs", OP_SET, Some("/tmp/x")),
            INVALID_REQUEST,
            "Cannot update these configs dynamically: Set(log.dirs)",
        ),
        (
            "",
            ("node.id", OP_SET, Some("3")),
            INVALID_REQUEST,
            "Cannot update these configs dynamically",
        ),
        (
            "0",
            ("num.partitions", OP_SET, Some("3")),
            INVALID_REQUEST,
            "Cannot update these configs dynamically",
        ),
        (
            "0",
            ("ssl.keystore.location", OP_SET, Some("/k")),
            INVALID_REQUEST,
            "only per-listener",
        ),
        (
            "",
            (
                "sasl.kerberos.min.time.before.relogin",
                OP_SET,
                Some("58000"),
            ),
            INVALID_REQUEST,
            "broker id must be specified",
        ),
        (
            "",
            ("listener.name.plain.sasl.jaas.config", OP_SET, Some("x")),
            INVALID_REQUEST,
            "broker id must be specified",
        ),
        (
            "0",
            ("log.retention.ms", OP_SET, Some("soon")),
            INVALID_REQUEST,
            "log.retention.ms",
        ),
        (
            "",
            ("log.cleanup.policy", OP_SET, Some("delete,shrink")),
            INVALID_REQUEST,
            "shrink",
        ),
        (
            "0",
            ("background.threads", OP_SET, Some("0")),
            INVALID_REQUEST,
            "background.threads",
        ),
        (
            "0",
            ("log.segment.bytes", OP_SET, Some("10")),
            INVALID_REQUEST,
            "log.segment.bytes",
        ),
        (
            "0",
            ("background.threads", OP_APPEND, Some("1")),
            INVALID_REQUEST,
            "append is not allowed",
        ),
        (
            "0",
            ("no.such.config", OP_APPEND, Some("1")),
            INVALID_CONFIG,
            "Unknown config name",
        ),
        (
            "0",
            ("background.threads", OP_SET, None),
            INVALID_REQUEST,
            "background.threads",
        ),
        (
            "7",
            ("background.threads", OP_SET, Some("9")),
            INVALID_REQUEST,
            "Unexpected broker id, expected 0 or empty string, but received 7",
        ),
        (
            "zero",
            ("background.threads", OP_SET, Some("9")),
            INVALID_REQUEST,
            "Broker id must be an integer",
        ),
    ];
    for (name, change, want, words) in cases {
        let (code, message) = incremental(&mut conn, RESOURCE_BROKER, name, &[*change], false)?;
        ensure!(
            code == *want && message.contains(words),
            "{change:?} on {name:?}: {code} {message:?}, want {want} with {words:?}"
        );
    }
    // AlterConfigs answers the same.
    ensure!(alter_legacy(&mut conn, "0", &[("log.dirs", "/x")])? == INVALID_REQUEST);
    ensure!(alter_legacy(&mut conn, "", &[("log.retention.ms", "-5")])? == INVALID_REQUEST);
    // DescribeConfigs of another broker, as Kafka.
    ensure!(describe(&mut conn, RESOURCE_BROKER, "7")?.error_code == INVALID_REQUEST);

    // validate_only checks and changes nothing.
    let checked = incremental(
        &mut conn,
        RESOURCE_BROKER,
        "0",
        &[("log.retention.ms", OP_SET, Some("1234"))],
        true,
    )?;
    ensure!(checked.0 == NONE, "validate_only: {checked:?}");
    let bad = incremental(
        &mut conn,
        RESOURCE_BROKER,
        "0",
        &[("log.retention.ms", OP_SET, Some("x"))],
        true,
    )?;
    ensure!(
        bad.0 == INVALID_REQUEST,
        "validate_only of a bad value: {bad:?}"
    );
    ensure!(
        value(&mut conn, RESOURCE_BROKER, "0", "log.retention.ms")?
            == pair("604800000", SOURCE_DEFAULT)
    );
    // Nothing was stored by the refusals: the cluster default has no configs.
    ensure!(describe(&mut conn, RESOURCE_BROKER, "")?.configs.is_empty());

    // Names Kafka does not know are kept, as Kafka keeps custom configs; 0081's configs pass.
    set(
        &mut conn,
        "0",
        &[
            ("custom.plugin.setting", OP_SET, Some("x")),
            (
                "sasl.kerberos.min.time.before.relogin",
                OP_SET,
                Some("58000"),
            ),
            ("background.threads", OP_SET, Some("9")),
        ],
    )?;
    ensure!(
        value(&mut conn, RESOURCE_BROKER, "0", "custom.plugin.setting")?
            == pair("x", SOURCE_BROKER)
    );
    ensure!(
        value(&mut conn, RESOURCE_BROKER, "0", "background.threads")? == pair("9", SOURCE_BROKER)
    );
    set(&mut conn, "0", &[("background.threads", OP_DELETE, None)])?;
    ensure!(
        value(&mut conn, RESOURCE_BROKER, "0", "background.threads")? == pair("10", SOURCE_DEFAULT)
    );
    // Read-only settings stay described as such.
    let all = describe(&mut conn, RESOURCE_BROKER, "0")?;
    let partitions = all
        .configs
        .iter()
        .find(|e| e.name.as_str() == "num.partitions")
        .context("num.partitions")?;
    ensure!(partitions.read_only, "{partitions:?}");
    let threads = all
        .configs
        .iter()
        .find(|e| e.name.as_str() == "num.io.threads")
        .context("num.io.threads")?;
    ensure!(!threads.read_only, "{threads:?}");
    // A password is never shown.
    set(
        &mut conn,
        "0",
        &[(
            "listener.name.plain.ssl.keystore.password",
            OP_SET,
            Some("hunter2"),
        )],
    )?;
    let secret = describe(&mut conn, RESOURCE_BROKER, "0")?
        .configs
        .into_iter()
        .find(|e| e.name.as_str() == "listener.name.plain.ssl.keystore.password")
        .context("password entry")?;
    ensure!(secret.is_sensitive && secret.value.is_none(), "{secret:?}");
    Ok(())
}

#[test]
fn append_and_subtract_log_cleanup_policy() -> Result<()> {
    let broker = Broker::start()?;
    let mut conn = Conn::open(&broker)?;
    let topic = broker.topic("policy");
    create(&mut conn, &topic, &[])?;
    set(
        &mut conn,
        "0",
        &[("log.cleanup.policy", OP_APPEND, Some("compact"))],
    )?;
    ensure!(
        value(&mut conn, RESOURCE_BROKER, "0", "log.cleanup.policy")?
            == pair("delete,compact", SOURCE_BROKER)
    );
    ensure!(
        value(&mut conn, RESOURCE_TOPIC, &topic, "cleanup.policy")?
            == pair("delete,compact", SOURCE_BROKER)
    );
    set(
        &mut conn,
        "0",
        &[("log.cleanup.policy", OP_SUBTRACT, Some("delete"))],
    )?;
    ensure!(
        value(&mut conn, RESOURCE_TOPIC, &topic, "cleanup.policy")?
            == pair("compact", SOURCE_BROKER)
    );
    // Honoured: a compacted topic refuses a record without a key.
    let keyless = rill_record::BatchBuilder::new()
        .record(rill_record::RecordSpec::new(1).value("v".to_owned()))
        .build()?;
    let answer = ask!(
        &mut conn,
        Produce,
        9,
        produce_request(&topic, 0, keyless, 1)
    );
    let code = answer
        .responses
        .first()
        .and_then(|t| t.partition_responses.first())
        .map(|p| p.error_code);
    ensure!(
        code == Some(87),
        "keyless record on a compacted topic: {code:?}"
    );
    set(&mut conn, "0", &[("log.cleanup.policy", OP_DELETE, None)])?;
    ensure!(
        value(&mut conn, RESOURCE_TOPIC, &topic, "cleanup.policy")?
            == pair("delete", SOURCE_DEFAULT)
    );
    Ok(())
}
