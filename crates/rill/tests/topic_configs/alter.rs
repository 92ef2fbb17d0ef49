//! DescribeConfigs, CreateTopics and IncrementalAlterConfigs of every Kafka topic config.

use super::*;

#[test]
fn every_kafka_topic_config_is_described_with_its_type_default_and_source() -> Result<()> {
    let broker = Broker::start_with(&["--min-insync-replicas", "2"])?;
    let mut c = Conn::open(&broker)?;
    let topic = broker.topic("described");
    create_ok(&mut c, &topic, &[("preallocate", "true")])?;
    let entries = describe(&mut c, &topic)?;
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    let expected: Vec<&str> = KAFKA_TOPIC_CONFIGS.iter().map(|(n, ..)| *n).collect();
    ensure!(names == expected, "described {names:?}");
    for (name, kind, default) in KAFKA_TOPIC_CONFIGS {
        let entry = entries
            .iter()
            .find(|e| e.name.as_str() == *name)
            .context("missing")?;
        let value = entry.value.as_deref().unwrap_or_default();
        let (want_value, want_source) = match *name {
            "preallocate" => ("true", SOURCE_TOPIC_CONFIG),
            "min.insync.replicas" => ("2", SOURCE_STATIC_BROKER_CONFIG),
            _ => (*default, SOURCE_DEFAULT_CONFIG),
        };
        ensure!(
            value == want_value
                && entry.config_source == want_source
                && entry.config_type == *kind
                && !entry.read_only,
            "{name}: {entry:?}"
        );
    }
    // The broker setting appears as a synonym under its broker name, above Kafka's default.
    let min_isr = entries
        .iter()
        .find(|e| e.name.as_str() == "min.insync.replicas")
        .context("missing")?;
    let synonyms: Vec<(&str, &str, i8)> = min_isr
        .synonyms
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.value.as_deref().unwrap_or_default(),
                s.source,
            )
        })
        .collect();
    ensure!(
        synonyms
            == [
                ("min.insync.replicas", "2", SOURCE_STATIC_BROKER_CONFIG),
                ("min.insync.replicas", "1", SOURCE_DEFAULT_CONFIG),
            ],
        "min.insync.replicas synonyms: {synonyms:?}"
    );
    Ok(())
}

#[test]
fn kafka_values_are_accepted_and_bad_ones_refused_with_invalid_config() -> Result<()> {
    let broker = Broker::start()?;
    let mut c = Conn::open(&broker)?;
    let topic = broker.topic("checked");
    create_ok(
        &mut c,
        &topic,
        &[
            ("message.format.version", "0.10.0"),
            ("unclean.leader.election.enable", "true"),
            ("leader.replication.throttled.replicas", "0:0"),
        ],
    )?;
    for (name, value) in [
        ("message.format.version", "2.8"),
        ("message.format.version", "3.0-IV1"),
        ("min.cleanable.dirty.ratio", "0.25"),
        ("follower.replication.throttled.replicas", "*"),
        ("compression.zstd.level", "-5"),
        ("segment.jitter.ms", "100"),
        ("local.retention.ms", "-2"),
        ("cleanup.policy", "delete,compact"),
    ] {
        let (code, message) = alter(&mut c, &topic, &[(name, OP_SET, Some(value))])?;
        ensure!(code == NONE, "SET {name}={value}: {code} {message}");
        ensure!(
            config(&mut c, &topic, name)? == (value.to_owned(), SOURCE_TOPIC_CONFIG),
            "{name} after SET {value}"
        );
    }
    for (name, value) in [
        ("message.format.version", "9.9"),
        ("min.insync.replicas", "0"),
        ("min.cleanable.dirty.ratio", "2"),
        ("compression.type", "brotli"),
        ("compression.gzip.level", "10"),
        ("message.timestamp.type", "WallClock"),
        ("cleanup.policy", "compact,archive"),
        ("preallocate", "maybe"),
        ("leader.replication.throttled.replicas", "all"),
        ("remote.storage.enable", "true"),
        ("segment.index.bytes", "3"),
    ] {
        let (code, message) = alter(&mut c, &topic, &[(name, OP_SET, Some(value))])?;
        ensure!(
            code == INVALID_CONFIG && message.contains(name),
            "SET {name}={value}: {code} {message}"
        );
        let bad = broker.topic("refused");
        let code = create(&mut c, &bad, &[(name, value)])?;
        ensure!(
            code == INVALID_CONFIG,
            "CreateTopics {name}={value}: {code}"
        );
    }
    ensure!(
        config(&mut c, &topic, "message.format.version")?
            == ("3.0-IV1".to_owned(), SOURCE_TOPIC_CONFIG),
        "a refused value changed message.format.version"
    );
    let (code, _) = alter(
        &mut c,
        &topic,
        &[("message.format.version", OP_DELETE, None)],
    )?;
    ensure!(code == NONE, "DELETE: {code}");
    ensure!(
        config(&mut c, &topic, "message.format.version")?
            == ("3.0-IV1".to_owned(), SOURCE_DEFAULT_CONFIG),
        "message.format.version after DELETE"
    );
    Ok(())
}

#[test]
fn append_and_subtract_change_list_configs_only() -> Result<()> {
    let broker = Broker::start()?;
    let mut c = Conn::open(&broker)?;
    let topic = broker.topic("lists");
    create_ok(&mut c, &topic, &[])?;
    let policy = |c: &mut Conn| config(c, &topic, "cleanup.policy");

    // librdkafka's test 0011 appends compact to the default policy this way.
    let (code, message) = alter(
        &mut c,
        &topic,
        &[("cleanup.policy", OP_APPEND, Some("compact"))],
    )?;
    ensure!(code == NONE, "APPEND compact: {code} {message}");
    ensure!(
        policy(&mut c)? == ("delete,compact".to_owned(), SOURCE_TOPIC_CONFIG),
        "after APPEND: {:?}",
        policy(&mut c)?
    );
    // Appending what is there already changes nothing.
    let (code, _) = alter(
        &mut c,
        &topic,
        &[("cleanup.policy", OP_APPEND, Some("delete"))],
    )?;
    ensure!(code == NONE, "APPEND delete again: {code}");
    ensure!(
        policy(&mut c)? == ("delete,compact".to_owned(), SOURCE_TOPIC_CONFIG),
        "after a second APPEND: {:?}",
        policy(&mut c)?
    );
    let (code, _) = alter(
        &mut c,
        &topic,
        &[("cleanup.policy", OP_SUBTRACT, Some("delete"))],
    )?;
    ensure!(code == NONE, "SUBTRACT delete: {code}");
    ensure!(
        policy(&mut c)? == ("compact".to_owned(), SOURCE_TOPIC_CONFIG),
        "after SUBTRACT: {:?}",
        policy(&mut c)?
    );

    // The throttled-replicas lists, from their empty default; several operations in order.
    let (code, message) = alter(
        &mut c,
        &topic,
        &[
            (
                "leader.replication.throttled.replicas",
                OP_APPEND,
                Some("0:0,1:0"),
            ),
            (
                "leader.replication.throttled.replicas",
                OP_SUBTRACT,
                Some("0:0"),
            ),
            (
                "follower.replication.throttled.replicas",
                OP_APPEND,
                Some("2:0"),
            ),
        ],
    )?;
    ensure!(code == NONE, "throttled lists: {code} {message}");
    ensure!(
        config(&mut c, &topic, "leader.replication.throttled.replicas")?
            == ("1:0".to_owned(), SOURCE_TOPIC_CONFIG),
        "leader list"
    );
    ensure!(
        config(&mut c, &topic, "follower.replication.throttled.replicas")?
            == ("2:0".to_owned(), SOURCE_TOPIC_CONFIG),
        "follower list"
    );

    // Not a list: INVALID_REQUEST, as Kafka answers; a bad item: INVALID_CONFIG.
    for op in [OP_APPEND, OP_SUBTRACT] {
        let (code, message) = alter(&mut c, &topic, &[("retention.ms", op, Some("1000"))])?;
        ensure!(
            code == INVALID_REQUEST && message.contains("retention.ms"),
            "op {op} on retention.ms: {code} {message}"
        );
    }
    let (code, _) = alter(
        &mut c,
        &topic,
        &[("cleanup.policy", OP_APPEND, Some("archive"))],
    )?;
    ensure!(code == INVALID_CONFIG, "APPEND archive: {code}");
    let (code, _) = alter(&mut c, &topic, &[("no.such.list", OP_APPEND, Some("x"))])?;
    ensure!(
        code == INVALID_CONFIG,
        "APPEND to an unknown config: {code}"
    );
    ensure!(
        policy(&mut c)? == ("compact".to_owned(), SOURCE_TOPIC_CONFIG),
        "refused operations changed the policy: {:?}",
        policy(&mut c)?
    );
    Ok(())
}
