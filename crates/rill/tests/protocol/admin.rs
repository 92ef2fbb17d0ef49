//! ListOffsets, DescribeCluster, authorized operations, DescribeTopicPartitions, topic configs,
//! CreateTopics and manual replica assignments, and a hostile Metadata request.

use super::*;

// ---------------------------------------------------------------------------------------------
// ListOffsets

/// ListOffsets v7 of one partition at `timestamp`: (error code, offset, timestamp).
fn offset_and_time(
    conn: &mut Conn,
    topic: &str,
    partition: i32,
    timestamp: i64,
) -> Result<(i16, i64, i64)> {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(name(topic))
                .with_partitions(vec![
                    ListOffsetsPartition::default()
                        .with_partition_index(partition)
                        .with_timestamp(timestamp),
                ]),
        ]);
    let response = ask!(conn, ListOffsets, 7, request);
    response
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .map(|p| (p.error_code, p.offset, p.timestamp))
        .context("no partition in the ListOffsets answer")
}

/// One batch of records stamped `timestamps`.
fn stamped_batch(timestamps: &[i64]) -> Result<Bytes> {
    let mut builder = BatchBuilder::new();
    for &t in timestamps {
        builder = builder.record(RecordSpec::new(t).value(b"Message".to_vec()));
    }
    Ok(builder.build()?)
}

#[test]
fn list_offsets_max_timestamp_is_the_record_with_the_largest_timestamp() -> Result<()> {
    let broker = Broker::start()?;
    let mut c = Conn::open(&broker)?;
    let topic = broker.topic("max-timestamp");
    create_ok(&mut c, &topic, 1, &[])?;
    // Empty: no record, so Kafka's -1 and -1.
    ensure!(
        offset_and_time(&mut c, &topic, 0, MAX_TIMESTAMP)? == (NONE, -1, -1),
        "an empty partition"
    );
    // librdkafka's 0081 (KAFKA-16310): 100, 400, 250 in one batch is offset 1, at 400.
    let base = 10_000_000;
    let (code, _) = c.produce(
        &topic,
        0,
        stamped_batch(&[base + 100, base + 400, base + 250])?,
    )?;
    ensure!(code == NONE, "produce: {code}");
    let got = offset_and_time(&mut c, &topic, 0, MAX_TIMESTAMP)?;
    ensure!(got == (NONE, 1, base + 400), "max timestamp: {got:?}");
    // The other specs of that test, on the same records.
    for (spec, offset) in [
        (EARLIEST, 0),
        (LATEST, 3),
        (base + 50, 0),
        (base + 300, 1),
        (base + 150, 1),
    ] {
        let (code, got, _) = offset_and_time(&mut c, &topic, 0, spec)?;
        ensure!(
            (code, got) == (NONE, offset),
            "ListOffsets {spec}: ({code}, {got}), expected offset {offset}"
        );
    }
    // A later batch with the same largest timestamp does not move it (the earliest wins, as
    // in Kafka); a larger one does, at its own record.
    let (code, _) = c.produce(&topic, 0, stamped_batch(&[base + 400, base + 10])?)?;
    ensure!(code == NONE, "produce: {code}");
    let got = offset_and_time(&mut c, &topic, 0, MAX_TIMESTAMP)?;
    ensure!(got == (NONE, 1, base + 400), "after a tie: {got:?}");
    let (code, _) = c.produce(&topic, 0, stamped_batch(&[base, base + 900, base + 5])?)?;
    ensure!(code == NONE, "produce: {code}");
    let got = offset_and_time(&mut c, &topic, 0, MAX_TIMESTAMP)?;
    ensure!(got == (NONE, 6, base + 900), "after a larger one: {got:?}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// DescribeCluster, DescribeTopicPartitions

#[test]
fn describe_cluster_shows_one_broker_and_a_stable_cluster_id() -> Result<()> {
    let mut broker = Broker::start_with(&["--rack", "eu-west-1a"])?;
    let describe = |broker: &Broker| -> Result<String> {
        let mut c = Conn::open(broker)?;
        let response = ask!(
            &mut c,
            DescribeCluster,
            1,
            DescribeClusterRequest::default().with_endpoint_type(1)
        );
        ensure!(
            response.error_code == NONE
                && !response.cluster_id.is_empty()
                && response.controller_id == BrokerId(0)
                && response.endpoint_type == 1,
            "DescribeCluster {response:?}"
        );
        let brokers: Vec<(i32, String, Option<String>)> = response
            .brokers
            .iter()
            .map(|b| {
                (
                    b.broker_id.0,
                    format!("{}:{}", b.host, b.port),
                    b.rack.as_ref().map(ToString::to_string),
                )
            })
            .collect();
        ensure!(
            brokers == [(0, broker.bootstrap(), Some("eu-west-1a".to_owned()))],
            "brokers {brokers:?}, expected node 0 at {} in rack eu-west-1a",
            broker.bootstrap()
        );
        // Metadata (v1 and later carry the rack) says the same.
        let metadata = ask!(&mut c, Metadata, 12, MetadataRequest::default());
        let racks: Vec<Option<String>> = metadata
            .brokers
            .iter()
            .map(|b| b.rack.as_ref().map(ToString::to_string))
            .collect();
        ensure!(
            racks == [Some("eu-west-1a".to_owned())],
            "Metadata brokers' racks {racks:?}"
        );
        // And DescribeConfigs of the broker shows it, read-only, from the broker's settings.
        let (code, entries) =
            describe_configs(&mut c, RESOURCE_BROKER, "0", Some(&["broker.rack"]))?;
        let rack = entries.first().map(|e| {
            (
                e.value.as_ref().map(ToString::to_string),
                e.read_only,
                e.config_source,
            )
        });
        ensure!(
            code == NONE
                && rack
                    == Some((
                        Some("eu-west-1a".to_owned()),
                        true,
                        SOURCE_STATIC_BROKER_CONFIG
                    )),
            "broker.rack in DescribeConfigs: error {code}, {rack:?}"
        );
        Ok(response.cluster_id.to_string())
    };
    let before = describe(&broker)?;
    broker.restart()?;
    let after = describe(&broker)?;
    ensure!(
        before == after,
        "the cluster id changed across a restart: {before} then {after}"
    );
    Ok(())
}

/// Kafka's authorized-operations bit sets with no authorizer (bit `1 << AclOperation code`),
/// and its answer when they were not asked for.
const TOPIC_OPERATIONS: i32 = 1 << 3 // READ
    | 1 << 4 // WRITE
    | 1 << 5 // CREATE
    | 1 << 6 // DELETE
    | 1 << 7 // ALTER
    | 1 << 8 // DESCRIBE
    | 1 << 10 // DESCRIBE_CONFIGS
    | 1 << 11; // ALTER_CONFIGS
const CLUSTER_OPERATIONS: i32 = 1 << 5 // CREATE
    | 1 << 7 // ALTER
    | 1 << 8 // DESCRIBE
    | 1 << 9 // CLUSTER_ACTION
    | 1 << 10 // DESCRIBE_CONFIGS
    | 1 << 11 // ALTER_CONFIGS
    | 1 << 12; // IDEMPOTENT_WRITE
const GROUP_OPERATIONS: i32 = 1 << 3 // READ
    | 1 << 6 // DELETE
    | 1 << 8 // DESCRIBE
    | 1 << 10 // DESCRIBE_CONFIGS
    | 1 << 11; // ALTER_CONFIGS
const NOT_REQUESTED: i32 = i32::MIN;

#[test]
fn authorized_operations_are_answered_only_when_asked() -> Result<()> {
    let broker = Broker::start()?;
    let mut c = Conn::open(&broker)?;
    let topic = broker.topic("authorized");
    create_ok(&mut c, &topic, 1, &[])?;

    for (asked, want) in [(false, NOT_REQUESTED), (true, CLUSTER_OPERATIONS)] {
        let response = ask!(
            &mut c,
            DescribeCluster,
            1,
            DescribeClusterRequest::default().with_include_cluster_authorized_operations(asked)
        );
        ensure!(
            response.cluster_authorized_operations == want,
            "DescribeCluster asked={asked}: {}",
            response.cluster_authorized_operations
        );
    }

    // Metadata v10 has both flags; v12 only the topic's.
    for (version, cluster, topics) in [(10, true, true), (10, false, false), (12, false, true)] {
        let response = ask!(
            &mut c,
            Metadata,
            version,
            MetadataRequest::default()
                .with_topics(Some(vec![
                    MetadataRequestTopic::default().with_name(Some(name(&topic))),
                ]))
                .with_allow_auto_topic_creation(false)
                .with_include_cluster_authorized_operations(cluster)
                .with_include_topic_authorized_operations(topics)
        );
        let want_cluster = if cluster {
            CLUSTER_OPERATIONS
        } else {
            NOT_REQUESTED
        };
        let want_topic = if topics {
            TOPIC_OPERATIONS
        } else {
            NOT_REQUESTED
        };
        let got: Vec<(i16, i32)> = response
            .topics
            .iter()
            .map(|t| (t.error_code, t.topic_authorized_operations))
            .collect();
        ensure!(
            response.cluster_authorized_operations == want_cluster && got == [(NONE, want_topic)],
            "Metadata v{version} cluster={cluster} topics={topics}: cluster {}, topics {got:?}",
            response.cluster_authorized_operations
        );
    }

    // DescribeTopicPartitions has no flag: Kafka always answers them.
    let (_, response) = describe_partitions(&mut c, &[&topic], 10, None)?;
    let got: Vec<i32> = response
        .topics
        .iter()
        .map(|t| t.topic_authorized_operations)
        .collect();
    ensure!(
        got == [TOPIC_OPERATIONS],
        "DescribeTopicPartitions: {got:?}"
    );

    // DescribeGroups v3+: for every group asked about, known or not.
    for (asked, want) in [(false, NOT_REQUESTED), (true, GROUP_OPERATIONS)] {
        let response = ask!(
            &mut c,
            DescribeGroups,
            5,
            DescribeGroupsRequest::default()
                .with_groups(vec![GroupId(text("no-such-group"))])
                .with_include_authorized_operations(asked)
        );
        let got: Vec<i32> = response
            .groups
            .iter()
            .map(|g| g.authorized_operations)
            .collect();
        ensure!(got == [want], "DescribeGroups asked={asked}: {got:?}");
    }
    Ok(())
}

/// One DescribeTopicPartitions page: ((topic, partition) listed, next cursor).
type Page = (Vec<(String, i32)>, Option<(String, i32)>);

fn describe_partitions(
    conn: &mut Conn,
    topics: &[&str],
    limit: i32,
    cursor: Option<&(String, i32)>,
) -> Result<(Page, DescribeTopicPartitionsResponse)> {
    let request = DescribeTopicPartitionsRequest::default()
        .with_topics(
            topics
                .iter()
                .map(|t| TopicRequest::default().with_name(name(t)))
                .collect(),
        )
        .with_response_partition_limit(limit)
        .with_cursor(cursor.map(|(t, p)| {
            Cursor::default()
                .with_topic_name(name(t))
                .with_partition_index(*p)
        }));
    let response = ask!(conn, DescribeTopicPartitions, 0, request);
    let mut listed = Vec::new();
    for topic in &response.topics {
        let topic_name = topic
            .name
            .as_ref()
            .map(|n| n.0.to_string())
            .unwrap_or_default();
        ensure!(
            topic.error_code == NONE,
            "{topic_name}: error {}",
            topic.error_code
        );
        for p in &topic.partitions {
            ensure!(
                p.error_code == NONE
                    && p.leader_id == BrokerId(0)
                    && p.replica_nodes == [BrokerId(0)]
                    && p.isr_nodes == [BrokerId(0)],
                "{topic_name}/{}: {p:?}",
                p.partition_index
            );
            listed.push((topic_name.clone(), p.partition_index));
        }
    }
    let next = response
        .next_cursor
        .as_ref()
        .map(|c| (c.topic_name.0.to_string(), c.partition_index));
    Ok(((listed, next), response))
}

#[test]
fn describe_topic_partitions_pages_with_the_cursor() -> Result<()> {
    let broker = Broker::start()?;
    let mut c = Conn::open(&broker)?;
    let (a, b) = (broker.topic("paged-a"), broker.topic("paged-b"));
    create_ok(&mut c, &a, 5, &[])?;
    create_ok(&mut c, &b, 1, &[])?;
    let at = |t: &str, p: i32| (t.to_owned(), p);

    // One topic, two partitions a page.
    let ((page, next), first) = describe_partitions(&mut c, &[&a], 2, None)?;
    ensure!(
        page == [at(&a, 0), at(&a, 1)] && next == Some(at(&a, 2)),
        "page 1: {page:?} then {next:?}"
    );
    let topic_id = first.topics.first().map(|t| t.topic_id).unwrap_or_default();
    ensure!(!topic_id.is_nil(), "no topic id");
    let ((page, next), second) = describe_partitions(&mut c, &[&a], 2, next.as_ref())?;
    ensure!(
        page == [at(&a, 2), at(&a, 3)] && next == Some(at(&a, 4)),
        "page 2: {page:?} then {next:?}"
    );
    ensure!(
        second.topics.first().map(|t| t.topic_id) == Some(topic_id),
        "the topic id changed between pages"
    );
    let ((page, next), _) = describe_partitions(&mut c, &[&a], 2, next.as_ref())?;
    ensure!(
        page == [at(&a, 4)] && next.is_none(),
        "page 3: {page:?} then {next:?}"
    );
    // All five at once: no cursor.
    let ((page, next), _) = describe_partitions(&mut c, &[&a], 5, None)?;
    ensure!(
        page.len() == 5 && next.is_none(),
        "limit 5: {page:?} then {next:?}"
    );

    // Two topics: a page may end inside one topic and the next go on into the other.
    let mut seen = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let ((page, next), _) = describe_partitions(&mut c, &[&b, &a], 2, cursor.as_ref())?;
        ensure!(page.len() <= 2, "a page of {} partitions", page.len());
        seen.extend(page);
        pages += 1;
        ensure!(pages <= 5, "more than 5 pages for 6 partitions");
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let all: Vec<_> = (0..5).map(|p| at(&a, p)).chain([at(&b, 0)]).collect();
    ensure!(
        seen == all && pages == 3,
        "two topics paged as {seen:?} in {pages} pages"
    );

    // An unknown topic.
    let missing = broker.topic("paged-missing");
    let response = ask!(
        &mut c,
        DescribeTopicPartitions,
        0,
        DescribeTopicPartitionsRequest::default()
            .with_topics(vec![TopicRequest::default().with_name(name(&missing))])
    );
    let topic = response.topics.first().context("no topic in the answer")?;
    ensure!(
        topic.error_code == UNKNOWN_TOPIC_OR_PARTITION && topic.partitions.is_empty(),
        "unknown topic: {topic:?}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Configs

/// DescribeConfigs v4 of one resource: (error code, its entries).
fn describe_configs(
    conn: &mut Conn,
    resource_type: i8,
    resource: &str,
    keys: Option<&[&str]>,
) -> Result<(i16, Vec<DescribeConfigsResourceResult>)> {
    let request = DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(text(resource))
            .with_configuration_keys(keys.map(|k| k.iter().map(|k| text(k)).collect())),
    ]);
    let response = ask!(conn, DescribeConfigs, 4, request);
    let result = response
        .results
        .into_iter()
        .next()
        .context("no resource in the DescribeConfigs answer")?;
    Ok((result.error_code, result.configs))
}

/// A topic config's (value, source).
fn topic_config(conn: &mut Conn, topic: &str, key: &str) -> Result<(String, i8)> {
    let (code, entries) = describe_configs(conn, RESOURCE_TOPIC, topic, Some(&[key]))?;
    ensure!(code == NONE, "DescribeConfigs {topic}: error {code}");
    ensure!(entries.len() == 1, "{} entries for {key}", entries.len());
    let entry = entries
        .into_iter()
        .find(|e| e.name.as_str() == key)
        .with_context(|| format!("{key} missing from DescribeConfigs of {topic}"))?;
    Ok((
        entry.value.map(|v| v.to_string()).unwrap_or_default(),
        entry.config_source,
    ))
}

/// IncrementalAlterConfigs v1 of one topic; `None` values are DELETEs. Returns the error code.
fn incremental_alter(
    conn: &mut Conn,
    topic: &str,
    changes: &[(&str, Option<&str>)],
    validate_only: bool,
) -> Result<i16> {
    // SET (0) a value, DELETE (1) a None.
    let changes: Vec<(&str, i8, Option<&str>)> = changes
        .iter()
        .map(|(k, v)| (*k, if v.is_some() { 0 } else { 1 }, *v))
        .collect();
    Ok(conn
        .incremental_alter_configs(RESOURCE_TOPIC, topic, &changes, validate_only)?
        .0)
}

#[test]
fn topic_configs_are_set_deleted_replaced_and_kept() -> Result<()> {
    let mut broker = Broker::start_with(&["--num-partitions", "3"])?;
    let mut c = Conn::open(&broker)?;
    let topic = broker.topic("configured");
    create_ok(&mut c, &topic, 1, &[])?;

    // The broker's own settings, read-only.
    let (code, entries) = describe_configs(&mut c, RESOURCE_BROKER, "0", None)?;
    ensure!(code == NONE, "DescribeConfigs of broker 0: error {code}");
    let setting = |name: &str| {
        entries
            .iter()
            .find(|e| e.name.as_str() == name)
            .with_context(|| format!("{name} missing from the broker's configs"))
    };
    let num_partitions = setting("num.partitions")?;
    ensure!(
        num_partitions.value.as_deref() == Some("3")
            && num_partitions.read_only
            && num_partitions.config_source == SOURCE_STATIC_BROKER_CONFIG,
        "num.partitions: {num_partitions:?}"
    );
    let default_retention = setting("log.retention.ms")?
        .value
        .as_ref()
        .map(ToString::to_string)
        .context("no log.retention.ms value")?;
    ensure!(
        default_retention == "604800000",
        "log.retention.ms is {default_retention}, Kafka's default is 604800000"
    );
    let default = (default_retention.clone(), SOURCE_DEFAULT_CONFIG);

    ensure!(
        topic_config(&mut c, &topic, "retention.ms")? == default,
        "retention.ms before any change"
    );
    ensure!(
        incremental_alter(&mut c, &topic, &[("retention.ms", Some("3600000"))], false)? == NONE,
        "SET retention.ms"
    );
    let set = ("3600000".to_owned(), SOURCE_TOPIC_CONFIG);
    ensure!(
        topic_config(&mut c, &topic, "retention.ms")? == set,
        "retention.ms after SET: {:?}",
        topic_config(&mut c, &topic, "retention.ms")?
    );

    // Refused or validate-only changes change nothing.
    let code = incremental_alter(&mut c, &topic, &[("no.such.config", Some("1"))], false)?;
    ensure!(code == INVALID_CONFIG, "unknown config answered {code}");
    let code = incremental_alter(
        &mut c,
        &topic,
        &[("retention.ms", Some("1")), ("no.such.config", Some("1"))],
        false,
    )?;
    ensure!(
        code == INVALID_CONFIG,
        "a known and an unknown config answered {code}"
    );
    ensure!(
        topic_config(&mut c, &topic, "retention.ms")? == set,
        "a refused change changed retention.ms"
    );
    let code = incremental_alter(&mut c, &topic, &[("retention.ms", Some("1"))], true)?;
    ensure!(code == NONE, "validate-only SET answered {code}");
    ensure!(
        topic_config(&mut c, &topic, "retention.ms")? == set,
        "a validate-only change changed retention.ms"
    );

    // DELETE returns to the default.
    ensure!(
        incremental_alter(&mut c, &topic, &[("retention.ms", None)], false)? == NONE,
        "DELETE retention.ms"
    );
    ensure!(
        topic_config(&mut c, &topic, "retention.ms")? == default,
        "retention.ms after DELETE"
    );

    // AlterConfigs replaces the whole set.
    ensure!(
        incremental_alter(&mut c, &topic, &[("retention.ms", Some("3600000"))], false)? == NONE,
        "SET retention.ms again"
    );
    let request = AlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(RESOURCE_TOPIC)
            .with_resource_name(text(&topic))
            .with_configs(vec![
                AlterableConfig::default()
                    .with_name(text("retention.bytes"))
                    .with_value(Some(text("12345"))),
            ]),
    ]);
    let response = ask!(&mut c, AlterConfigs, 2, request);
    let code = response.responses.first().map(|r| r.error_code);
    ensure!(code == Some(NONE), "AlterConfigs answered {code:?}");
    let bytes = ("12345".to_owned(), SOURCE_TOPIC_CONFIG);
    ensure!(
        topic_config(&mut c, &topic, "retention.bytes")? == bytes,
        "retention.bytes after AlterConfigs"
    );
    ensure!(
        topic_config(&mut c, &topic, "retention.ms")? == default,
        "retention.ms was not reset by AlterConfigs"
    );

    broker.restart()?;
    let mut c = Conn::open(&broker)?;
    ensure!(
        topic_config(&mut c, &topic, "retention.bytes")? == bytes,
        "retention.bytes after a restart"
    );
    ensure!(
        topic_config(&mut c, &topic, "retention.ms")? == default,
        "retention.ms after a restart"
    );
    let (code, _) = describe_configs(&mut c, RESOURCE_TOPIC, &broker.topic("no-such-topic"), None)?;
    ensure!(
        code == UNKNOWN_TOPIC_OR_PARTITION,
        "DescribeConfigs of an unknown topic: {code}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// CreateTopics, CreatePartitions

/// The partition count DescribeTopicPartitions shows for `topic`.
fn partition_count(conn: &mut Conn, topic: &str) -> Result<usize> {
    let ((page, next), _) = describe_partitions(conn, &[topic], 1000, None)?;
    ensure!(next.is_none(), "a cursor after 1000 partitions");
    Ok(page.len())
}

/// Every topic Metadata v12 lists.
fn topic_names(conn: &mut Conn) -> Result<Vec<String>> {
    let response = ask!(
        conn,
        Metadata,
        12,
        MetadataRequest::default()
            .with_topics(None)
            .with_allow_auto_topic_creation(false)
    );
    let mut names: Vec<String> = response
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
        .collect();
    names.sort();
    Ok(names)
}

/// (what, name, partitions, replication factor, configs, expected error code).
type Refusal<'a> = (&'a str, &'a str, i32, i16, &'a [(&'a str, &'a str)], i16);

#[test]
fn create_topics_refuses_what_it_cannot_serve_and_defaults_the_partition_count() -> Result<()> {
    let broker = Broker::start_with(&["--num-partitions", "4"])?;
    let mut c = Conn::open(&broker)?;
    let long_249 = "a".repeat(249);
    let long_250 = "a".repeat(250);
    let refused: [Refusal<'_>; 10] = [
        (
            "replication factor 3",
            "rf3",
            1,
            3,
            &[],
            INVALID_REPLICATION_FACTOR,
        ),
        ("0 partitions", "zero", 0, 1, &[], INVALID_PARTITIONS),
        ("-2 partitions", "minus-two", -2, 1, &[], INVALID_PARTITIONS),
        ("a slash", "bad/name", 1, 1, &[], INVALID_TOPIC_EXCEPTION),
        ("..", "..", 1, 1, &[], INVALID_TOPIC_EXCEPTION),
        (".", ".", 1, 1, &[], INVALID_TOPIC_EXCEPTION),
        ("an empty name", "", 1, 1, &[], INVALID_TOPIC_EXCEPTION),
        (
            "250 characters",
            &long_250,
            1,
            1,
            &[],
            INVALID_TOPIC_EXCEPTION,
        ),
        (
            "an unknown config",
            "unknown-config",
            1,
            1,
            &[("no.such.config", "1")],
            INVALID_CONFIG,
        ),
        (
            "a bad config value",
            "bad-value",
            1,
            1,
            &[("retention.ms", "soon")],
            INVALID_CONFIG,
        ),
    ];
    for (what, topic, partitions, rf, configs, expected) in refused {
        let result = create(&mut c, topic, partitions, rf, configs, false)?;
        ensure!(
            result.error_code == expected,
            "{what}: answered {} ({:?}), expected {expected}",
            result.error_code,
            result.error_message
        );
    }
    ensure!(
        topic_names(&mut c)?.is_empty(),
        "refused topics exist: {:?}",
        topic_names(&mut c)?
    );

    // A config with a null value is refused, as Kafka refuses it.
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(name("null-config"))
                .with_num_partitions(1)
                .with_replication_factor(1)
                .with_configs(vec![
                    CreatableTopicConfig::default()
                        .with_name(text("retention.ms"))
                        .with_value(None),
                ]),
        ]);
    let response = ask!(&mut c, CreateTopics, 7, request);
    ensure!(
        response.topics.first().map(|t| t.error_code) == Some(INVALID_CONFIG),
        "a null config value: {:?}",
        response.topics
    );
    ensure!(
        topic_names(&mut c)?.is_empty(),
        "a topic with a null config was created"
    );

    // validate_only creates nothing.
    let result = create(&mut c, "checked", 2, 1, &[], true)?;
    ensure!(
        result.error_code == NONE && result.num_partitions == 2,
        "validate-only: {result:?}"
    );
    ensure!(
        topic_names(&mut c)?.is_empty(),
        "validate-only created a topic"
    );

    // num_partitions -1 and replication factor -1: the broker's defaults.
    let defaulted = broker.topic("defaulted");
    let result = create(&mut c, &defaulted, -1, -1, &[], false)?;
    ensure!(
        result.error_code == NONE && result.num_partitions == 4 && result.replication_factor == 1,
        "num_partitions -1: {result:?}"
    );
    ensure!(
        partition_count(&mut c, &defaulted)? == 4,
        "{defaulted} has {} partitions, not the broker's 4",
        partition_count(&mut c, &defaulted)?
    );
    ensure!(
        create(&mut c, &defaulted, 1, 1, &[], false)?.error_code == TOPIC_ALREADY_EXISTS,
        "creating {defaulted} twice"
    );
    // 249 characters is the longest name.
    let result = create(&mut c, &long_249, 1, 1, &[], false)?;
    ensure!(
        result.error_code == NONE,
        "a 249-character name: {result:?}"
    );
    let mut want = vec![defaulted.clone(), long_249];
    want.sort();
    ensure!(
        topic_names(&mut c)? == want,
        "topics {:?}",
        topic_names(&mut c)?
    );

    // CreatePartitions only grows.
    let grow = |c: &mut Conn, count: i32| -> Result<i16> {
        let response = ask!(
            c,
            CreatePartitions,
            3,
            CreatePartitionsRequest::default()
                .with_timeout_ms(5000)
                .with_topics(vec![
                    CreatePartitionsTopic::default()
                        .with_name(name(&defaulted))
                        .with_count(count)
                        .with_assignments(None),
                ])
        );
        response
            .results
            .first()
            .map(|r| r.error_code)
            .context("no topic in the CreatePartitions answer")
    };
    for count in [2, 4] {
        let code = grow(&mut c, count)?;
        ensure!(
            code == INVALID_PARTITIONS,
            "CreatePartitions to {count} of 4 answered {code}"
        );
    }
    ensure!(partition_count(&mut c, &defaulted)? == 4, "shrunk");
    ensure!(grow(&mut c, 6)? == NONE, "CreatePartitions to 6");
    ensure!(partition_count(&mut c, &defaulted)? == 6, "not grown to 6");
    Ok(())
}

/// CreateTopics v7 of one topic with a manual replica assignment `(partition, brokers)`.
fn create_assigned(
    conn: &mut Conn,
    topic: &str,
    partitions: i32,
    replication_factor: i16,
    assignment: &[(i32, &[i32])],
    validate_only: bool,
) -> Result<CreatableTopicResult> {
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_validate_only(validate_only)
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(name(topic))
                .with_num_partitions(partitions)
                .with_replication_factor(replication_factor)
                .with_assignments(
                    assignment
                        .iter()
                        .map(|(p, brokers)| {
                            CreatableReplicaAssignment::default()
                                .with_partition_index(*p)
                                .with_broker_ids(brokers.iter().copied().map(BrokerId).collect())
                        })
                        .collect(),
                ),
        ]);
    let response = ask!(conn, CreateTopics, 7, request);
    response
        .topics
        .into_iter()
        .next()
        .context("no topic in the CreateTopics answer")
}

/// CreatePartitions v3 of one topic to `count`, with the new partitions' replicas if given:
/// the error code.
fn grow_assigned(
    conn: &mut Conn,
    topic: &str,
    count: i32,
    assignment: Option<&[&[i32]]>,
    validate_only: bool,
) -> Result<i16> {
    let request = CreatePartitionsRequest::default()
        .with_timeout_ms(5000)
        .with_validate_only(validate_only)
        .with_topics(vec![
            CreatePartitionsTopic::default()
                .with_name(name(topic))
                .with_count(count)
                .with_assignments(assignment.map(|lists| {
                    lists
                        .iter()
                        .map(|brokers| {
                            CreatePartitionsAssignment::default()
                                .with_broker_ids(brokers.iter().copied().map(BrokerId).collect())
                        })
                        .collect()
                })),
        ]);
    let response = ask!(conn, CreatePartitions, 3, request);
    response
        .results
        .first()
        .map(|r| r.error_code)
        .context("no topic in the CreatePartitions answer")
}

#[test]
fn manual_replica_assignments_may_name_this_broker_only() -> Result<()> {
    let broker = Broker::start()?;
    let mut c = Conn::open(&broker)?;
    let me: &[i32] = &[0];
    // (what, partitions, replication factor, assignment, expected code)
    type Case<'a> = (&'a str, i32, i16, &'a [(i32, &'a [i32])], i16);
    let refused: [Case<'_>; 9] = [
        (
            "a replication factor beside it",
            -1,
            1,
            &[(0, me)],
            INVALID_REQUEST,
        ),
        (
            "a partition count beside it",
            1,
            -1,
            &[(0, me)],
            INVALID_REQUEST,
        ),
        (
            "an unknown broker",
            -1,
            -1,
            &[(0, &[1])],
            INVALID_REPLICA_ASSIGNMENT,
        ),
        (
            "two brokers",
            -1,
            -1,
            &[(0, &[0, 1])],
            INVALID_REPLICA_ASSIGNMENT,
        ),
        (
            "the broker twice",
            -1,
            -1,
            &[(0, &[0, 0])],
            INVALID_REPLICA_ASSIGNMENT,
        ),
        (
            "no replicas",
            -1,
            -1,
            &[(0, &[])],
            INVALID_REPLICA_ASSIGNMENT,
        ),
        (
            "a partition twice",
            -1,
            -1,
            &[(0, me), (0, me)],
            INVALID_REPLICA_ASSIGNMENT,
        ),
        (
            "a gap",
            -1,
            -1,
            &[(0, me), (2, me)],
            INVALID_REPLICA_ASSIGNMENT,
        ),
        ("not from 0", -1, -1, &[(1, me)], INVALID_REPLICA_ASSIGNMENT),
    ];
    for (what, partitions, rf, assignment, expected) in refused {
        let topic = broker.topic("assigned-refused");
        let result = create_assigned(&mut c, &topic, partitions, rf, assignment, false)?;
        ensure!(
            result.error_code == expected,
            "{what}: answered {} ({:?}), expected {expected}",
            result.error_code,
            result.error_message
        );
    }
    ensure!(topic_names(&mut c)?.is_empty(), "a refused topic exists");

    // Validate-only checks and creates nothing; then the same assignment, in any order.
    let topic = broker.topic("assigned");
    let assignment: &[(i32, &[i32])] = &[(2, me), (0, me), (1, me)];
    let result = create_assigned(&mut c, &topic, -1, -1, assignment, true)?;
    ensure!(
        (
            result.error_code,
            result.num_partitions,
            result.replication_factor
        ) == (NONE, 3, 1),
        "validate-only: {result:?}"
    );
    ensure!(topic_names(&mut c)?.is_empty(), "validate-only created it");
    let result = create_assigned(&mut c, &topic, -1, -1, assignment, false)?;
    ensure!(
        (
            result.error_code,
            result.num_partitions,
            result.replication_factor
        ) == (NONE, 3, 1),
        "created: {result:?}"
    );
    ensure!(partition_count(&mut c, &topic)? == 3, "not 3 partitions");

    // CreatePartitions: one list per new partition, one replica, this broker.
    // (what, count, assignment, expected code)
    type Growth<'a> = (&'a str, i32, Option<&'a [&'a [i32]]>, i16);
    let grown: [Growth<'_>; 7] = [
        ("the same count", 3, Some(&[]), INVALID_PARTITIONS),
        ("fewer", 2, Some(&[]), INVALID_PARTITIONS),
        (
            "an empty list for 2 new",
            5,
            Some(&[]),
            INVALID_REPLICA_ASSIGNMENT,
        ),
        (
            "1 list for 2 new",
            5,
            Some(&[me]),
            INVALID_REPLICA_ASSIGNMENT,
        ),
        (
            "an unknown broker",
            5,
            Some(&[me, &[7]]),
            INVALID_REPLICA_ASSIGNMENT,
        ),
        (
            "two replicas",
            5,
            Some(&[me, &[0, 0]]),
            INVALID_REPLICA_ASSIGNMENT,
        ),
        (
            "no replicas",
            5,
            Some(&[me, &[]]),
            INVALID_REPLICA_ASSIGNMENT,
        ),
    ];
    for (what, count, assignment, expected) in grown {
        let code = grow_assigned(&mut c, &topic, count, assignment, false)?;
        ensure!(
            code == expected,
            "{what}: answered {code}, expected {expected}"
        );
    }
    ensure!(
        grow_assigned(&mut c, &topic, 5, Some(&[me, me]), true)? == NONE,
        "validate-only growth"
    );
    ensure!(
        partition_count(&mut c, &topic)? == 3,
        "validate-only grew it"
    );
    ensure!(
        grow_assigned(&mut c, &topic, 5, Some(&[me, me]), false)? == NONE,
        "growth to 5"
    );
    ensure!(partition_count(&mut c, &topic)? == 5, "not grown to 5");
    ensure!(
        grow_assigned(&mut c, &topic, 6, None, false)? == NONE,
        "growth to 6 with no assignment"
    );
    ensure!(partition_count(&mut c, &topic)? == 6, "not grown to 6");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Hostile array counts

/// A request header v2 (flexible: client id, then empty tagged fields) and `body`, sized.
fn frame_v2(api_key: i16, version: i16, correlation_id: i32, body: &[u8]) -> Vec<u8> {
    let client_id = b"rill-hostile";
    let mut msg = Vec::new();
    msg.extend_from_slice(&api_key.to_be_bytes());
    msg.extend_from_slice(&version.to_be_bytes());
    msg.extend_from_slice(&correlation_id.to_be_bytes());
    msg.extend_from_slice(&i16::try_from(client_id.len()).unwrap_or(0).to_be_bytes());
    msg.extend_from_slice(client_id);
    msg.push(0); // no tagged fields
    msg.extend_from_slice(body);
    sized(&msg)
}

#[test]
fn a_metadata_request_claiming_billions_of_topics_does_not_take_the_broker_down() -> Result<()> {
    let mut broker = Broker::start()?;
    let attacks = [
        // Metadata v1: topics = an array of 2^31-1 names, and nothing after the count.
        (
            "v1, 2^31-1 topics",
            frame_v1(3, 1, 9001, &[0x7f, 0xff, 0xff, 0xff]),
        ),
        // Metadata v12: a compact array whose varint length is 2^32-1 (2^32-2 topics).
        (
            "v12, 2^32-2 topics",
            frame_v2(3, 12, 9002, &[0xff, 0xff, 0xff, 0xff, 0x0f]),
        ),
        // Metadata v12: 2^31-2 topics, then the rest of the body.
        (
            "v12, 2^31-2 topics and the flags",
            frame_v2(3, 12, 9003, &[0xff, 0xff, 0xff, 0xff, 0x07, 0, 0, 0]),
        ),
    ];
    for (what, bytes) in attacks {
        let mut stream = connect(&broker)?;
        // The broker may close before it has read everything; that is a fine reaction.
        let _ = stream.write_all(&bytes);
        match reaction(&mut stream, Duration::from_secs(5)).with_context(|| what.to_owned())? {
            Reaction::Closed | Reaction::Answered(_) => {}
        }
        assert_healthy(&mut broker).with_context(|| format!("after {what}"))?;
        let mut c = Conn::open(&broker)?;
        let topic = broker.topic("after-attack");
        let response = ask!(
            &mut c,
            Metadata,
            12,
            MetadataRequest::default()
                .with_topics(Some(vec![
                    MetadataRequestTopic::default().with_name(Some(name(&topic))),
                ]))
                .with_allow_auto_topic_creation(false)
        );
        ensure!(
            response.brokers.len() == 1 && response.topics.len() == 1,
            "Metadata v12 after {what}: {response:?}"
        );
    }
    Ok(())
}
