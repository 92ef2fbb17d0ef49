//! ACLs: principals proved by TLS client certificates (made here with openssl) and checked by
//! the authorizer on every request, ACLs made and listed with confluent-kafka's and
//! kafka-python's admin clients, kcat, restarts and a 3-broker cluster.

#[macro_use]
mod common;

use std::time::Duration;

use anyhow::{Context, ensure};
use common::{
    Broker, Certs, Cluster, Result, kcat, kcat_ok, rill_fails, rill_ok, run_py, wait_until,
};
use serde_json::{Value, json};

const STANDARD: &str = "org.apache.kafka.metadata.authorizer.StandardAuthorizer";

/// An ACL for the admin steps of `acls.py`.
fn acl(
    kind: &str,
    name: &str,
    pattern: &str,
    principal: &str,
    operation: &str,
    permission: &str,
) -> Value {
    json!({"type": kind, "name": name, "pattern": pattern, "principal": principal, "host": "*",
           "operation": operation, "permission": permission})
}

/// A filter: `None` is ANY.
fn filter(kind: &str, name: Option<&str>, pattern: &str, principal: Option<&str>) -> Value {
    json!({"type": kind, "name": name, "pattern": pattern, "principal": principal,
           "host": null, "operation": "ANY", "permission": "ANY"})
}

fn admin(bootstrap: &str, client: &str, settings: &[String], steps: &Value) -> Result<Value> {
    let mut args = vec![
        bootstrap.to_owned(),
        "admin".to_owned(),
        "--client".to_owned(),
        client.to_owned(),
    ];
    for s in settings {
        args.extend(["--set".to_owned(), s.clone()]);
    }
    run_py("acls.py", &args, steps.to_string().as_bytes())
}

/// A broker with ACLs on, a PLAINTEXT listener whose anonymous clients are super users (the
/// tests' administrator) and an SSL listener that requires client certificates.
fn secured(certs: &Certs, extra: &[&str]) -> Result<(Broker, String)> {
    let mut args = vec![
        "--ssl-client-auth",
        "required",
        "--authorizer-class-name",
        STANDARD,
        "--super-users",
        "User:ANONYMOUS;User:CN=root",
    ];
    args.extend_from_slice(extra);
    certs.ssl_broker("127.0.0.1", &args)
}

/// librdkafka settings for a client with the certificate of `name` (subject `/CN=name`).
fn as_user(certs: &Certs, name: &str) -> Result<Vec<String>> {
    let (cert, key) = certs.client(name, &format!("/CN={name}"))?;
    Ok(vec![
        "security.protocol=SSL".to_owned(),
        format!("ssl.ca.location={}", Certs::path(&certs.ca)),
        format!("ssl.certificate.location={}", Certs::path(&cert)),
        format!("ssl.key.location={}", Certs::path(&key)),
    ])
}

fn probe(ssl: &str, topic: &str, group: &str, settings: &[String]) -> Result<Value> {
    let mut args = vec![
        ssl.to_owned(),
        "probe".to_owned(),
        topic.to_owned(),
        group.to_owned(),
    ];
    for s in settings {
        args.extend(["--set".to_owned(), s.clone()]);
    }
    run_py("acls.py", &args, b"")
}

fn seed(broker: &Broker, topic: &str) -> Result<()> {
    let _ = kcat_ok(
        &["-b", &broker.bootstrap(), "-t", topic, "-P", "-p", "0"],
        b"seed\n",
    )?;
    Ok(())
}

#[test]
fn the_acl_matrix_with_client_certificates() -> Result<()> {
    let certs = Certs::make()?;
    let (broker, ssl) = secured(&certs, &[])?;
    let b = broker.bootstrap();
    seed(&broker, "orders")?;
    seed(&broker, "secret")?;
    let created = admin(
        &b,
        "confluent",
        &[],
        &json!([{"op": "create", "acls": [
            // alice writes and reads orders, in groups starting g-alice.
            acl("TOPIC", "orders", "LITERAL", "User:CN=alice", "WRITE", "ALLOW"),
            acl("TOPIC", "orders", "LITERAL", "User:CN=alice", "READ", "ALLOW"),
            acl("GROUP", "g-alice", "PREFIXED", "User:CN=alice", "READ", "ALLOW"),
            // bob reads every topic starting ord, in group g-bob; a DENY of WRITE for him.
            acl("TOPIC", "ord", "PREFIXED", "User:CN=bob", "READ", "ALLOW"),
            acl("TOPIC", "orders", "LITERAL", "User:CN=bob", "WRITE", "DENY"),
            acl("GROUP", "g-bob", "LITERAL", "User:CN=bob", "READ", "ALLOW"),
            // carol may do ALL on orders but is denied READ: deny wins; she has no group.
            acl("TOPIC", "orders", "LITERAL", "User:CN=carol", "ALL", "ALLOW"),
            acl("TOPIC", "orders", "LITERAL", "User:CN=carol", "READ", "DENY"),
            acl("GROUP", "*", "LITERAL", "User:CN=carol", "READ", "ALLOW"),
        ]}]),
    )?;
    ensure!(created == json!([null]), "create: {created}");

    let alice = probe(&ssl, "orders", "g-alice-1", &as_user(&certs, "alice")?)?;
    ensure!(
        alice == json!({"topics": ["orders"], "produce": 1, "consume": "seed"}),
        "alice: {alice}"
    );
    let bob = probe(&ssl, "orders", "g-bob", &as_user(&certs, "bob")?)?;
    ensure!(
        bob == json!({"topics": ["orders"], "produce": "TOPIC_AUTHORIZATION_FAILED",
                      "consume": "seed"}),
        "bob: {bob}"
    );
    let carol = probe(&ssl, "orders", "g-carol", &as_user(&certs, "carol")?)?;
    ensure!(
        carol["topics"] == json!(["orders"]) && carol["produce"] == json!(2),
        "carol: {carol}"
    );
    ensure!(
        carol["consume"] == json!("TOPIC_AUTHORIZATION_FAILED"),
        "carol reads despite a DENY: {carol}"
    );
    // alice in a group she has no ACL for.
    let alice_elsewhere = probe(&ssl, "orders", "other", &as_user(&certs, "alice")?)?;
    ensure!(
        alice_elsewhere["consume"] == json!("GROUP_AUTHORIZATION_FAILED"),
        "alice in group other: {alice_elsewhere}"
    );
    // dave has no ACL: he sees no topic and may do nothing.
    let dave = probe(&ssl, "secret", "g-dave", &as_user(&certs, "dave")?)?;
    ensure!(
        dave["topics"] == json!([]) && dave["produce"] == json!("TOPIC_AUTHORIZATION_FAILED"),
        "dave: {dave}"
    );
    // A super user by certificate sees everything.
    let root = probe(&ssl, "secret", "any", &as_user(&certs, "root")?)?;
    ensure!(
        root == json!({"topics": ["orders", "secret"], "produce": 1, "consume": "seed"}),
        "root: {root}"
    );
    // Groups: each principal lists and describes only the groups it may describe (READ
    // implies DESCRIBE).
    let mut args = vec![
        ssl.clone(),
        "groups".to_owned(),
        "g-alice-1".to_owned(),
        "g-bob".to_owned(),
    ];
    for s in as_user(&certs, "alice")? {
        args.extend(["--set".to_owned(), s]);
    }
    let seen = run_py("acls.py", &args, b"")?;
    ensure!(
        seen == json!({"listed": ["g-alice-1"],
                       "described": {"g-alice-1": null, "g-bob": "GROUP_AUTHORIZATION_FAILED"}}),
        "alice's groups: {seen}"
    );
    // kcat as bob: orders readable, secret not.
    let mut x: Vec<String> = Vec::new();
    for s in as_user(&certs, "bob")? {
        x.extend(["-X".to_owned(), s]);
    }
    let mut consume = vec!["-b", &ssl, "-C", "-e", "-o", "beginning", "-f", "%o:%s\n"];
    consume.extend(x.iter().map(String::as_str));
    let mut orders = consume.clone();
    orders.extend(["-t", "orders", "-p", "0"]);
    let out = kcat_ok(&orders, b"")?;
    // alice (twice) and carol wrote; bob, dave and root (on secret) did not.
    ensure!(
        out == "0:seed\n1:value\n2:value\n3:value\n",
        "kcat as bob: {out:?}"
    );
    let mut secret = consume.clone();
    secret.extend(["-t", "secret", "-p", "0"]);
    let out = kcat(&secret, b"")?;
    ensure!(
        !out.status.success() && out.stderr.contains("authoriz"),
        "kcat as bob on secret: {out:?}"
    );
    Ok(())
}

#[test]
fn admin_clients_create_describe_and_delete_acls() -> Result<()> {
    let broker = Broker::start_with(&[
        "--authorizer-class-name",
        STANDARD,
        "--super-users",
        "User:ANONYMOUS",
    ])?;
    let b = broker.bootstrap();
    for client in ["confluent", "kafka-python"] {
        let reads = acl("TOPIC", "orders", "LITERAL", "User:alice", "READ", "ALLOW");
        let prefixed = acl("TOPIC", "ord", "PREFIXED", "User:bob", "WRITE", "DENY");
        let group = acl("GROUP", "billing", "LITERAL", "User:*", "READ", "ALLOW");
        let out = admin(
            &b,
            client,
            &[],
            &json!([
                {"op": "create", "acls": [reads, prefixed, group]},
                // MATCH: every ACL that applies to topic orders.
                {"op": "describe", "filter": filter("TOPIC", Some("orders"), "MATCH", None)},
                // ANY with a name: that exact name, whatever the pattern.
                {"op": "describe", "filter": filter("TOPIC", Some("ord"), "ANY", None)},
                {"op": "describe", "filter": filter("ANY", None, "ANY", Some("User:*"))},
                {"op": "delete", "filter": filter("TOPIC", None, "ANY", None)},
                {"op": "describe", "filter": filter("ANY", None, "ANY", None)},
                {"op": "delete", "filter": filter("ANY", None, "ANY", None)},
                {"op": "describe", "filter": filter("ANY", None, "ANY", None)},
            ]),
        )?;
        let row = |v: &Value| -> Value {
            json!([
                v["type"],
                v["name"],
                v["pattern"],
                v["principal"],
                v["host"],
                v["operation"],
                v["permission"]
            ])
        };
        let (r, p, g) = (
            row(&acl(
                "TOPIC",
                "orders",
                "LITERAL",
                "User:alice",
                "READ",
                "ALLOW",
            )),
            row(&acl(
                "TOPIC", "ord", "PREFIXED", "User:bob", "WRITE", "DENY",
            )),
            row(&acl(
                "GROUP", "billing", "LITERAL", "User:*", "READ", "ALLOW",
            )),
        );
        let expected = json!([
            null,
            [p.clone(), r.clone()],
            [p.clone()],
            [g.clone()],
            [p, r],
            [g.clone()],
            [g],
            []
        ]);
        ensure!(out == expected, "{client}: {out}\nexpected {expected}");
    }
    // A bad binding is refused (a principal without a type), as Kafka refuses it.
    let bad = admin(
        &b,
        "confluent",
        &[],
        &json!([{"op": "create", "acls": [
            acl("TOPIC", "t", "LITERAL", "alice", "READ", "ALLOW")]}]),
    )?;
    ensure!(bad == json!(["INVALID_REQUEST"]), "bad principal: {bad}");
    Ok(())
}

#[test]
fn without_an_authorizer_acl_requests_get_security_disabled() -> Result<()> {
    let broker = Broker::start()?;
    let steps = json!([
        {"op": "create", "acls": [acl("TOPIC", "t", "LITERAL", "User:a", "READ", "ALLOW")]},
        {"op": "describe", "filter": filter("ANY", None, "ANY", None)},
    ]);
    let out = admin(&broker.bootstrap(), "kafka-python", &[], &steps)?;
    ensure!(
        out == json!(["SecurityDisabledError", "SecurityDisabledError"]),
        "kafka-python: {out}"
    );
    // librdkafka 2.16 reports DescribeAcls' top-level error as an empty list.
    let out = admin(&broker.bootstrap(), "confluent", &[], &steps)?;
    ensure!(out[0] == json!("SECURITY_DISABLED"), "confluent: {out}");
    Ok(())
}

#[test]
fn allow_everyone_if_no_acl_found() -> Result<()> {
    for open in [true, false] {
        let broker = Broker::start_with(&[
            "--authorizer-class-name",
            STANDARD,
            "--allow-everyone-if-no-acl-found",
            &open.to_string(),
        ])?;
        let b = broker.bootstrap();
        let produce = kcat(&["-b", &b, "-t", "open", "-P", "-p", "0"], b"x\n")?;
        ensure!(
            produce.status.success() == open,
            "open={open}: produce to a topic without ACLs: {produce:?}"
        );
        // With no ACL on the cluster, anyone may add ACLs only when the broker is open.
        let out = admin(
            &b,
            "confluent",
            &[],
            &json!([{"op": "create", "acls": [
                acl("TOPIC", "closed", "LITERAL", "User:someone", "WRITE", "ALLOW")]}]),
        )?;
        let expected = if open {
            json!([null])
        } else {
            json!(["CLUSTER_AUTHORIZATION_FAILED"])
        };
        ensure!(out == expected, "open={open}: create: {out}");
        if open {
            let produce = kcat(&["-b", &b, "-t", "closed", "-P", "-p", "0"], b"x\n")?;
            ensure!(
                !produce.status.success(),
                "a topic with an ACL for someone else: {produce:?}"
            );
        }
    }
    Ok(())
}

#[test]
fn acls_survive_a_restart() -> Result<()> {
    let certs = Certs::make()?;
    let (mut broker, ssl) = secured(&certs, &[])?;
    seed(&broker, "kept")?;
    let out = admin(
        &broker.bootstrap(),
        "confluent",
        &[],
        &json!([{"op": "create", "acls": [
            acl("TOPIC", "kept", "LITERAL", "User:CN=erin", "READ", "ALLOW"),
            acl("GROUP", "g-erin", "LITERAL", "User:CN=erin", "READ", "ALLOW")]}]),
    )?;
    ensure!(out == json!([null]), "{out}");
    broker.restart()?;
    let listed = admin(
        &broker.bootstrap(),
        "confluent",
        &[],
        &json!([{"op": "describe", "filter": filter("ANY", None, "ANY", None)}]),
    )?;
    ensure!(
        listed
            .as_array()
            .and_then(|a| a.first())
            .and_then(Value::as_array)
            .map(Vec::len)
            == Some(2),
        "after restart: {listed}"
    );
    let erin = probe(&ssl, "kept", "g-erin", &as_user(&certs, "erin")?)?;
    ensure!(
        erin == json!({"topics": ["kept"], "produce": "TOPIC_AUTHORIZATION_FAILED",
                       "consume": "seed"}),
        "erin after restart: {erin}"
    );
    Ok(())
}

/// Topic names `kcat -L` lists through `addr`.
fn visible(addr: &str) -> Result<Vec<String>> {
    let out = kcat_ok(&["-b", addr, "-L", "-J", "-m", "10"], b"")?;
    let md: Value = serde_json::from_str(&out).with_context(|| out.clone())?;
    let mut names: Vec<String> = md["topics"]
        .as_array()
        .context("topics")?
        .iter()
        .filter(|t| t["err"].is_null() || t["err"] == json!("Success"))
        .filter_map(|t| t["topic"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    Ok(names)
}

#[test]
fn an_acl_made_through_one_broker_is_enforced_by_another() -> Result<()> {
    let cluster = Cluster::start(
        3,
        &[
            "--authorizer-class-name",
            STANDARD,
            "--allow-everyone-if-no-acl-found",
            "true",
        ],
    )?;
    let one = cluster.bootstrap_of(1)?;
    let three = cluster.bootstrap_of(3)?;
    for topic in ["shown", "hidden"] {
        let _ = kcat_ok(&["-b", &one, "-t", topic, "-P"], b"x\n")?;
    }
    wait_until("both topics on broker 3", Duration::from_secs(10), || {
        Ok((visible(&three)? == ["hidden", "shown"]).then_some(()))
    })?;
    let out = admin(
        &one,
        "confluent",
        &[],
        &json!([{"op": "create", "acls": [
            acl("TOPIC", "hid", "PREFIXED", "User:*", "ALL", "DENY")]}]),
    )?;
    ensure!(out == json!([null]), "{out}");
    wait_until("broker 3 hides the topic", Duration::from_secs(10), || {
        Ok((visible(&three)? == ["shown"]).then_some(()))
    })?;
    let produce = kcat(&["-b", &three, "-t", "hidden", "-P", "-p", "0"], b"y\n")?;
    ensure!(
        !produce.status.success(),
        "produce through broker 3: {produce:?}"
    );
    Ok(())
}

#[test]
fn the_rill_acl_cli_adds_lists_and_deletes() -> Result<()> {
    let broker = Broker::start_with(&[
        "--authorizer-class-name",
        STANDARD,
        "--super-users",
        "User:ANONYMOUS",
    ])?;
    let b = broker.bootstrap();
    let (out, _) = rill_ok(
        &b,
        &[
            "acl",
            "add",
            "--allow-principal",
            "User:alice",
            "--operation",
            "read",
            "--operation",
            "describe",
            "--topic",
            "orders",
            "--group",
            "billing",
        ],
        b"",
    )?;
    ensure!(out.starts_with("added 4 ACL(s)\n"), "{out}");
    let _ = rill_ok(
        &b,
        &[
            "acl",
            "add",
            "--deny-principal",
            "User:bob",
            "--operation",
            "write",
            "--topic",
            "eu-",
            "--resource-pattern-type",
            "prefixed",
        ],
        b"",
    )?;
    let (listed, _) = rill_ok(&b, &["acl", "list"], b"")?;
    let table = |rows: &[&str]| -> Vec<Vec<String>> {
        rows.iter()
            .map(|r| r.split_whitespace().map(str::to_owned).collect())
            .collect()
    };
    let header = "RESOURCE NAME PATTERN PRINCIPAL HOST OPERATION PERMISSION";
    ensure!(
        common::rows(&listed)
            == table(&[
                header,
                "TOPIC eu- PREFIXED User:bob * WRITE DENY",
                "TOPIC orders LITERAL User:alice * READ ALLOW",
                "TOPIC orders LITERAL User:alice * DESCRIBE ALLOW",
                "GROUP billing LITERAL User:alice * READ ALLOW",
                "GROUP billing LITERAL User:alice * DESCRIBE ALLOW",
            ]),
        "list:\n{listed}"
    );
    // MATCH: what applies to topic eu-orders.
    let (matched, _) = rill_ok(
        &b,
        &[
            "acl",
            "list",
            "--topic",
            "eu-orders",
            "--resource-pattern-type",
            "match",
        ],
        b"",
    )?;
    ensure!(
        common::rows(&matched) == table(&[header, "TOPIC eu- PREFIXED User:bob * WRITE DENY"]),
        "match:\n{matched}"
    );
    let (removed, _) = rill_ok(
        &b,
        &[
            "acl",
            "delete",
            "--principal",
            "User:alice",
            "--topic",
            "orders",
        ],
        b"",
    )?;
    ensure!(
        common::rows(&removed)
            == table(&[
                "removed 2 ACL(s)",
                header,
                "TOPIC orders LITERAL User:alice * READ ALLOW",
                "TOPIC orders LITERAL User:alice * DESCRIBE ALLOW",
            ]),
        "delete:\n{removed}"
    );
    let err = rill_fails(
        &b,
        &[
            "acl",
            "add",
            "--allow-principal",
            "alice",
            "--operation",
            "read",
            "--topic",
            "x",
        ],
        b"",
    )?;
    ensure!(
        err.contains("INVALID_REQUEST") && err.contains("'alice'"),
        "bad principal: {err}"
    );
    let err = rill_fails(&b, &["acl", "delete"], b"")?;
    ensure!(err.contains("say which ACLs to delete"), "{err}");
    Ok(())
}

fn ops(ssl: &str, topic: &str, settings: &[String]) -> Result<Value> {
    let mut args = vec![ssl.to_owned(), "ops".to_owned(), topic.to_owned()];
    for s in settings {
        args.extend(["--set".to_owned(), s.clone()]);
    }
    run_py("acls.py", &args, b"")
}

#[test]
fn each_admin_operation_needs_its_acl() -> Result<()> {
    let certs = Certs::make()?;
    let (broker, ssl) = secured(&certs, &[])?;
    let b = broker.bootstrap();
    let one = |op: &str| acl("TOPIC", "ops-", "PREFIXED", "User:CN=frank", op, "ALLOW");
    let out = admin(
        &b,
        "confluent",
        &[],
        &json!([{"op": "create", "acls": [
            one("CREATE"), one("ALTER_CONFIGS"), one("ALTER"), one("DELETE"), one("WRITE"),
            acl("TOPIC", "ops-", "PREFIXED", "User:CN=grace", "DESCRIBE", "ALLOW"),
            acl("CLUSTER", "kafka-cluster", "LITERAL", "User:CN=grace", "IDEMPOTENT_WRITE", "ALLOW"),
        ]}]),
    )?;
    ensure!(out == json!([null]), "{out}");
    // frank has every operation on ops-*: ALTER_CONFIGS implies DESCRIBE_CONFIGS, WRITE lets an
    // idempotent producer in (Kafka 3.x).
    let frank = ops(&ssl, "ops-frank", &as_user(&certs, "frank")?)?;
    ensure!(
        frank
            == json!({"create": null, "describe_configs": null, "alter_configs": null,
                      "create_partitions": null, "idempotent_produce": null, "delete": null}),
        "frank: {frank}"
    );
    // grace may only describe ops-* and write idempotently (no WRITE on the topic, though).
    let _ = kcat_ok(&["-b", &b, "-t", "ops-grace", "-P", "-p", "0"], b"x\n")?;
    let grace = ops(&ssl, "ops-grace", &as_user(&certs, "grace")?)?;
    let denied = "TOPIC_AUTHORIZATION_FAILED";
    ensure!(
        grace
            == json!({"create": denied, "describe_configs": denied, "alter_configs": denied,
                      "create_partitions": denied, "idempotent_produce": denied,
                      "delete": denied}),
        "grace: {grace}"
    );
    Ok(())
}

#[test]
fn authorized_operations_come_from_the_acls() -> Result<()> {
    use rill_protocol::StrBytes;
    use rill_protocol::kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use rill_protocol::kafka_protocol::messages::{
        DescribeClusterRequest, MetadataRequest, TopicName,
    };
    // Everyone may use what has no ACL (the cluster here), so anonymous may create ACLs.
    let broker = Broker::start_with(&[
        "--authorizer-class-name",
        STANDARD,
        "--allow-everyone-if-no-acl-found",
        "true",
    ])?;
    seed(&broker, "ops")?;
    let out = admin(
        &broker.bootstrap(),
        "confluent",
        &[],
        &json!([{"op": "create", "acls": [
            acl("TOPIC", "ops", "LITERAL", "User:ANONYMOUS", "READ", "ALLOW"),
            acl("TOPIC", "ops", "LITERAL", "User:ANONYMOUS", "ALTER_CONFIGS", "ALLOW")]}]),
    )?;
    ensure!(out == json!([null]), "{out}");
    let mut conn = common::Conn::open(&broker)?;
    let request = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default()
                .with_name(Some(TopicName(StrBytes::from_static_str("ops")))),
        ]))
        .with_allow_auto_topic_creation(false)
        .with_include_cluster_authorized_operations(true)
        .with_include_topic_authorized_operations(true);
    let response = ask!(&mut conn, Metadata, 10, request);
    let bits = |ops: &[i32]| ops.iter().fold(0, |set, op| set | (1 << op));
    // READ 3, DESCRIBE 8 (implied), DESCRIBE_CONFIGS 10 (implied), ALTER_CONFIGS 11.
    let topic: Vec<(i16, i32)> = response
        .topics
        .iter()
        .map(|t| (t.error_code, t.topic_authorized_operations))
        .collect();
    ensure!(topic == [(0, bits(&[3, 8, 10, 11]))], "topic: {topic:?}");
    // No ACL on the cluster: everything, as allow.everyone.if.no.acl.found says.
    let cluster = bits(&[5, 7, 8, 9, 10, 11, 12]);
    ensure!(
        response.cluster_authorized_operations == cluster,
        "cluster: {}",
        response.cluster_authorized_operations
    );
    let described = ask!(
        &mut conn,
        DescribeCluster,
        1,
        DescribeClusterRequest::default().with_include_cluster_authorized_operations(true)
    );
    ensure!(
        described.error_code == 0 && described.cluster_authorized_operations == cluster,
        "DescribeCluster: {described:?}"
    );
    Ok(())
}

#[test]
fn kafka_python_produces_only_with_its_acl() -> Result<()> {
    let certs = Certs::make()?;
    let (broker, ssl) = secured(&certs, &[])?;
    seed(&broker, "orders")?;
    let out = admin(
        &broker.bootstrap(),
        "kafka-python",
        &[],
        &json!([{"op": "create", "acls": [
            acl("TOPIC", "orders", "LITERAL", "User:CN=alice", "WRITE", "ALLOW")]}]),
    )?;
    ensure!(out == json!([null]), "{out}");
    let settings = |name: &str| -> Result<Vec<String>> {
        let (cert, key) = certs.client(name, &format!("/CN={name}"))?;
        let mut args = vec![
            ssl.clone(),
            "orders".to_owned(),
            "--client".to_owned(),
            "kafka-python".to_owned(),
        ];
        for s in [
            "security_protocol=SSL".to_owned(),
            format!("ssl_cafile={}", Certs::path(&certs.ca)),
            format!("ssl_certfile={}", Certs::path(&cert)),
            format!("ssl_keyfile={}", Certs::path(&key)),
        ] {
            args.extend(["--set".to_owned(), s]);
        }
        Ok(args)
    };
    let records = json!([{"v": common::hex(b"one"), "p": 0}, {"v": common::hex(b"two"), "p": 0}]);
    let alice = run_py(
        "produce.py",
        &settings("alice")?,
        records.to_string().as_bytes(),
    )?;
    ensure!(
        alice["delivered"] == json!([[0, 0, 1], [1, 0, 2]]),
        "alice: {alice}"
    );
    let err = common::run_py_failing(
        "produce.py",
        &settings("dave")?,
        records.to_string().as_bytes(),
    )?;
    ensure!(err.contains("TopicAuthorizationFailed"), "dave: {err}");
    Ok(())
}

#[test]
/// Broker 3 catches up from the leader's snapshot when the leader has compacted past what it
/// has, else from the leader's log: either way it enforces the ACLs made while it was down.
fn a_broker_restarted_behind_enforces_the_acls_made_meanwhile() -> Result<()> {
    let voters = common::free_voters(3)?;
    let mut brokers = common::quorum_brokers(
        &voters,
        &[1, 2, 3],
        &[
            "--broker-session-timeout-ms",
            "1500",
            "--metadata-log-max-record-bytes-between-snapshots",
            "1024",
            "--authorizer-class-name",
            STANDARD,
            "--allow-everyone-if-no-acl-found",
            "true",
        ],
    )?;
    let one = brokers[0].bootstrap();
    for topic in ["shown", "hidden"] {
        let _ = kcat_ok(&["-b", &one, "-t", topic, "-P"], b"x\n")?;
    }
    let three = brokers[2].bootstrap();
    wait_until("both topics on broker 3", Duration::from_secs(20), || {
        Ok((visible(&three)? == ["hidden", "shown"]).then_some(()))
    })?;
    brokers[2].kill9()?;
    let snapshots = |b: &Broker| {
        b.output_text()
            .matches("snapshotted the metadata image")
            .count()
    };
    let before = snapshots(&brokers[0]);
    // Enough ACLs that broker 1 compacts its log behind a snapshot meanwhile.
    let mut acls = vec![acl("TOPIC", "hidden", "LITERAL", "User:*", "ALL", "DENY")];
    acls.extend((0..40).map(|i| {
        acl(
            "TOPIC",
            &format!("other-{i}"),
            "LITERAL",
            "User:someone",
            "READ",
            "ALLOW",
        )
    }));
    let out = admin(
        &one,
        "confluent",
        &[],
        &json!([{"op": "create", "acls": acls}]),
    )?;
    ensure!(out == json!([null]), "{out}");
    wait_until(
        "broker 1 snapshots the ACLs",
        Duration::from_secs(20),
        || Ok((snapshots(&brokers[0]) > before).then_some(())),
    )?;
    brokers[2].restart()?;
    wait_until("broker 3 hides the topic", Duration::from_secs(30), || {
        Ok((visible(&three)? == ["shown"]).then_some(()))
    })?;
    for broker in &mut brokers {
        broker.stop()?;
    }
    Ok(())
}

/// DescribeTopicPartitions and Metadata hide what a principal may not describe: a raw client
/// (User:ANONYMOUS on the PLAINTEXT listener) denied DESCRIBE on one of two topics.
#[test]
fn describe_topic_partitions_and_metadata_hide_undescribable_topics() -> Result<()> {
    use rill_protocol::kafka_protocol::messages::{
        CreateAclsRequest, CreateTopicsRequest, DescribeTopicPartitionsRequest, MetadataRequest,
        TopicName, create_acls_request, create_topics_request, describe_topic_partitions_request,
    };
    let broker = Broker::start_with(&[
        "--authorizer-class-name",
        STANDARD,
        "--allow-everyone-if-no-acl-found",
        "true",
    ])?;
    let (seen, hidden) = (broker.topic("seen"), broker.topic("hidden"));
    let name = |n: &str| TopicName(n.to_owned().into());
    let mut conn = common::Conn::open(&broker)?;
    let topics = [&seen, &hidden]
        .iter()
        .map(|t| {
            create_topics_request::CreatableTopic::default()
                .with_name(name(t))
                .with_num_partitions(2)
                .with_replication_factor(-1)
        })
        .collect();
    let created = ask!(
        &mut conn,
        CreateTopics,
        7,
        CreateTopicsRequest::default()
            .with_topics(topics)
            .with_timeout_ms(10_000)
    );
    ensure!(
        created.topics.iter().all(|t| t.error_code == 0),
        "{created:?}"
    );
    // DENY User:ANONYMOUS DESCRIBE on the LITERAL topic `hidden` (types: 2 topic, 3 literal,
    // 8 describe, 2 deny).
    let deny = create_acls_request::AclCreation::default()
        .with_resource_type(2)
        .with_resource_name(hidden.clone().into())
        .with_resource_pattern_type(3)
        .with_principal("User:ANONYMOUS".into())
        .with_host("*".into())
        .with_operation(8)
        .with_permission_type(2);
    let made = ask!(
        &mut conn,
        CreateAcls,
        3,
        CreateAclsRequest::default().with_creations(vec![deny])
    );
    ensure!(made.results.iter().all(|r| r.error_code == 0), "{made:?}");

    let asked = [&seen, &hidden]
        .iter()
        .map(|t| describe_topic_partitions_request::TopicRequest::default().with_name(name(t)))
        .collect();
    let described = ask!(
        &mut conn,
        DescribeTopicPartitions,
        0,
        DescribeTopicPartitionsRequest::default()
            .with_topics(asked)
            .with_response_partition_limit(100)
    );
    let by_name = |n: &str| {
        described
            .topics
            .iter()
            .find(|t| t.name.as_ref().is_some_and(|x| x.0.as_str() == n))
    };
    let shown = by_name(&seen).context("seen not answered")?;
    ensure!(
        shown.error_code == 0 && shown.partitions.len() == 2,
        "{shown:?}"
    );
    let refused = by_name(&hidden).context("hidden not answered")?;
    // TOPIC_AUTHORIZATION_FAILED, and nothing about the topic.
    ensure!(refused.error_code == 29, "{refused:?}");
    ensure!(
        refused.partitions.is_empty() && refused.topic_id.is_nil(),
        "{refused:?}"
    );
    ensure!(described.topics.len() == 2, "{described:?}");

    // Every topic (a null list).
    let all = MetadataRequest::default().with_topics(None);
    let metadata = ask!(&mut conn, Metadata, 12, all);
    let listed: Vec<String> = metadata
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
        .collect();
    ensure!(
        listed.contains(&seen) && !listed.contains(&hidden),
        "{listed:?}"
    );
    Ok(())
}
