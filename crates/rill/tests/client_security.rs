//! rill-client and the `rill` CLI over TLS and SASL, through `-X key=value` and
//! `--command-config FILE` with Kafka's property names: produce and consume over SSL (with and
//! without a client certificate, with and without hostname checks), what a wrong CA, a wrong
//! host name or a bad property says, and (with a SASL broker) PLAIN and both SCRAMs, wrong
//! passwords and `rill user`.

mod common;

use anyhow::ensure;
use common::{Broker, Certs, Result, free_port, rill, rill_fails, rill_ok};

/// `-X` arguments for each `key=value`.
fn x(props: &[String]) -> Vec<&str> {
    props.iter().flat_map(|p| ["-X", p.as_str()]).collect()
}

/// `rill ARGS` (then `-X`s) on `bootstrap`, which must succeed: its stdout and stderr.
fn rill_x(
    bootstrap: &str,
    args: &[&str],
    props: &[String],
    stdin: &[u8],
) -> Result<(String, String)> {
    let mut all = args.to_vec();
    all.extend(x(props));
    rill_ok(bootstrap, &all, stdin)
}

/// Produces three keyed lines to `topic` and reads them back, checking keys, values,
/// partition and offsets, both with `props`.
fn produce_and_consume(bootstrap: &str, topic: &str, props: &[String]) -> Result<()> {
    let (_, err) = rill_x(
        bootstrap,
        &["produce", topic, "-K", ":", "-p", "0"],
        props,
        b"k1:one\nk2:two\nk3:three\n",
    )?;
    ensure!(
        err == format!("produced 3 records to topic '{topic}'\n"),
        "produce said: {err}"
    );
    let (out, _) = rill_x(
        bootstrap,
        &[
            "consume",
            topic,
            "--from-beginning",
            "-e",
            "-f",
            "%p %o %k=%s\\n",
        ],
        props,
        b"",
    )?;
    ensure!(
        out == "0 0 k1=one\n0 1 k2=two\n0 2 k3=three\n",
        "consumed:\n{out}"
    );
    Ok(())
}

// TLS

#[test]
fn cli_produces_and_consumes_over_ssl_with_x_and_command_config() -> Result<()> {
    let certs = Certs::make()?;
    let (broker, ssl) = certs.ssl_broker("127.0.0.1", &[])?;
    let props = vec![
        "security.protocol=SSL".to_owned(),
        format!("ssl.ca.location={}", Certs::path(&certs.ca)),
    ];
    produce_and_consume(&ssl, &broker.topic("tls"), &props)?;

    // The same through a properties file, as Kafka's tools take it (truststore spelling).
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("client.properties");
    std::fs::write(
        &file,
        format!(
            "# Kafka's names\nsecurity.protocol = SSL\nssl.truststore.type=PEM\n\
             ssl.truststore.location={}\n",
            Certs::path(&certs.ca)
        ),
    )?;
    let topic = broker.topic("tls-file");
    let config = vec![format!("--command-config={}", Certs::path(&file))];
    let args = |rest: &[&'static str]| -> Vec<String> {
        rest.iter()
            .map(|s| (*s).to_owned())
            .chain(config.clone())
            .collect()
    };
    let produce = args(&["produce", "-K", ":"]);
    let mut produce: Vec<&str> = produce.iter().map(String::as_str).collect();
    produce.insert(1, &topic);
    let (_, err) = rill_ok(&ssl, &produce, b"a:1\nb:2\n")?;
    ensure!(err.starts_with("produced 2 records"), "{err}");
    let (out, _) = rill_ok(
        &ssl,
        &["topic", "describe", &topic, config[0].as_str()],
        b"",
    )?;
    ensure!(out.contains(&topic), "describe over SSL:\n{out}");
    // Plaintext on the TLS port, and TLS on the plaintext port, fail in one line.
    let err = rill_fails(&ssl, &["topic", "list"], b"")?;
    ensure!(
        err.lines().count() == 1 && err.starts_with("rill: error: "),
        "{err}"
    );
    let err = rill_fails(
        &broker.bootstrap(),
        &["topic", "list", config[0].as_str()],
        b"",
    )?;
    ensure!(
        err.lines().count() == 1 && err.starts_with("rill: error: "),
        "{err}"
    );
    Ok(())
}

#[test]
fn ssl_checks_the_ca_and_the_host_name_unless_told_not_to() -> Result<()> {
    let certs = Certs::make()?;
    // The certificate names 127.0.0.1 and localhost, not 127.0.0.2.
    let (_broker, ssl) = certs.ssl_broker("127.0.0.2", &[])?;
    let ca = format!("ssl.ca.location={}", Certs::path(&certs.ca));
    let props = vec!["security.protocol=SSL".to_owned(), ca.clone()];
    let mut args = vec!["topic", "list"];
    args.extend(x(&props));
    let err = rill_fails(&ssl, &args, b"")?;
    ensure!(
        err.lines().count() == 1
            && err.contains("TLS handshake failed: invalid peer certificate: certificate not valid for name \"127.0.0.2\""),
        "a wrong host name: {err}"
    );

    let props = vec![
        "security.protocol=SSL".to_owned(),
        ca,
        "ssl.endpoint.identification.algorithm=".to_owned(),
    ];
    let (out, _) = rill_x(&ssl, &["cluster", "status"], &props, b"")?;
    ensure!(
        out.contains("live broker"),
        "without host name checks:\n{out}"
    );

    // Another CA: the chain is checked even without host name checks.
    let other = Certs::make()?;
    let props = vec![
        "security.protocol=SSL".to_owned(),
        format!("ssl.ca.location={}", Certs::path(&other.ca)),
        "ssl.endpoint.identification.algorithm=".to_owned(),
    ];
    let mut args = vec!["topic", "list"];
    args.extend(x(&props));
    let err = rill_fails(&ssl, &args, b"")?;
    ensure!(
        err.lines().count() == 1
            // Both CAs are called "Rill test CA": the other one's signature does not match.
            && err.contains("TLS handshake failed: invalid peer certificate: BadSignature"),
        "another CA: {err}"
    );
    Ok(())
}

#[test]
fn ssl_client_certificates_from_two_files_or_one_keystore() -> Result<()> {
    let certs = Certs::make()?;
    let (broker, ssl) = certs.ssl_broker("127.0.0.1", &["--ssl-client-auth", "required"])?;
    let ca = format!("ssl.ca.location={}", Certs::path(&certs.ca));
    let two_files = vec![
        "security.protocol=SSL".to_owned(),
        ca.clone(),
        format!(
            "ssl.certificate.location={}",
            Certs::path(&certs.client_cert)
        ),
        format!("ssl.key.location={}", Certs::path(&certs.client_key)),
    ];
    produce_and_consume(&ssl, &broker.topic("mtls"), &two_files)?;

    let dir = tempfile::tempdir()?;
    let keystore = dir.path().join("client-keystore.pem");
    let mut pem = std::fs::read(&certs.client_key)?;
    pem.extend(std::fs::read(&certs.client_cert)?);
    std::fs::write(&keystore, pem)?;
    let one_file = vec![
        "security.protocol=SSL".to_owned(),
        ca.clone(),
        "ssl.keystore.type=PEM".to_owned(),
        format!("ssl.keystore.location={}", Certs::path(&keystore)),
    ];
    produce_and_consume(&ssl, &broker.topic("mtls-keystore"), &one_file)?;

    // No certificate: the broker refuses the handshake.
    let mut args = vec!["topic", "list"];
    let without = vec!["security.protocol=SSL".to_owned(), ca];
    args.extend(x(&without));
    let err = rill_fails(&ssl, &args, b"")?;
    ensure!(err.lines().count() == 1, "{err}");
    Ok(())
}

#[test]
fn bad_properties_are_one_line_errors_naming_the_property() -> Result<()> {
    // Nothing listens: every one of these must fail before connecting.
    let nowhere = format!("127.0.0.1:{}", free_port()?);
    let cases: &[(&[&str], &str)] = &[
        (
            &["-X", "security.protocol=TLS"],
            "property 'security.protocol'",
        ),
        (
            &["-X", "bootstrap.servers=x"],
            "unknown property 'bootstrap.servers'",
        ),
        (
            &["-X", "sasl.username=a"],
            "property 'sasl.username': not used with security.protocol=PLAINTEXT",
        ),
        (
            &[
                "-X",
                "security.protocol=SSL",
                "-X",
                "ssl.ca.location=/nonexistent/ca.pem",
            ],
            "property 'ssl.ca.location': /nonexistent/ca.pem",
        ),
        (
            &[
                "-X",
                "security.protocol=SASL_PLAINTEXT",
                "-X",
                "sasl.mechanism=GSSAPI",
            ],
            "property 'sasl.mechanism'",
        ),
        (
            &[
                "-X",
                "security.protocol=SASL_PLAINTEXT",
                "-X",
                "sasl.username=a",
            ],
            "property 'sasl.password': required with SASL_PLAINTEXT",
        ),
        (
            &[
                "-X",
                "security.protocol=SASL_PLAINTEXT",
                "-X",
                "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=\"a\";",
            ],
            "property 'sasl.jaas.config'",
        ),
        (
            &["--command-config", "/nonexistent/client.properties"],
            "--command-config /nonexistent/client.properties",
        ),
    ];
    for (flags, expected) in cases {
        for command in [
            &["topic", "list"][..],
            &["consume", "t", "-e"],
            &["user", "list"],
        ] {
            let mut args = command.to_vec();
            args.extend_from_slice(flags);
            let out = rill(&nowhere, &args, b"")?;
            ensure!(!out.status.success(), "{args:?} succeeded");
            let err = out.stderr.trim_end();
            ensure!(
                err.lines().count() == 1 && err.contains(expected),
                "{args:?}: expected one line with {expected:?}, got:\n{err}"
            );
        }
    }
    // A -X without '=' is refused by the argument parser, naming the flag.
    let err = rill_fails(&nowhere, &["topic", "list", "-X", "novalue"], b"")?;
    ensure!(
        err.starts_with("error: invalid value 'novalue' for '-X <KEY=VALUE>': expects k=v"),
        "{err}"
    );
    Ok(())
}

// SASL

const ADMIN: &str = "admin";
const ADMIN_PASSWORD: &str = "admin-secret";

/// A broker with SASL_PLAINTEXT and SASL_SSL listeners (besides its PLAINTEXT one) and the
/// user `admin`; `extra` adds flags: `(broker, sasl_plaintext, sasl_ssl)`.
fn start_sasl(certs: &Certs, extra: &[&str]) -> Result<(Broker, String, String)> {
    let sasl_plain = format!("127.0.0.1:{}", free_port()?);
    let sasl_ssl = format!("127.0.0.1:{}", free_port()?);
    let listen =
        format!("PLAINTEXT://{{listen}},SASL_PLAINTEXT://{sasl_plain},SASL_SSL://{sasl_ssl}");
    let keystore = Certs::path(&certs.server);
    let user = format!("{ADMIN}:{ADMIN_PASSWORD}");
    let mut args = vec![
        "--listen",
        &listen,
        "--ssl-keystore",
        &keystore,
        "--bootstrap-user",
        &user,
    ];
    args.extend_from_slice(extra);
    let broker = Broker::start_with(&args)?;
    Ok((broker, sasl_plain, sasl_ssl))
}

/// The `-X` properties for SASL over `protocol` with `mechanism` as `user`.
fn sasl_props(protocol: &str, mechanism: &str, user: &str, password: &str) -> Vec<String> {
    vec![
        format!("security.protocol={protocol}"),
        format!("sasl.mechanism={mechanism}"),
        format!("sasl.username={user}"),
        format!("sasl.password={password}"),
    ]
}

const MECHANISMS: [&str; 3] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

#[test]
fn cli_produces_and_consumes_over_sasl_plaintext_and_sasl_ssl_with_every_mechanism() -> Result<()> {
    let certs = Certs::make()?;
    let (_broker, sasl_plain, sasl_ssl) = start_sasl(&certs, &[])?;
    let ca = format!("ssl.ca.location={}", Certs::path(&certs.ca));
    for mechanism in MECHANISMS {
        let props = sasl_props("SASL_PLAINTEXT", mechanism, ADMIN, ADMIN_PASSWORD);
        produce_and_consume(&sasl_plain, &format!("sasl-{mechanism}"), &props)?;
        let mut props = sasl_props("SASL_SSL", mechanism, ADMIN, ADMIN_PASSWORD);
        props.push(ca.clone());
        produce_and_consume(&sasl_ssl, &format!("sasl-ssl-{mechanism}"), &props)?;
    }
    // Kafka's JAAS form, from a properties file, over SASL_SSL.
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("admin.properties");
    std::fs::write(
        &file,
        format!(
            "security.protocol=SASL_SSL\n{ca}\nsasl.mechanism=SCRAM-SHA-512\n\
             sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \\\n\
             \x20   username=\"{ADMIN}\" password=\"{ADMIN_PASSWORD}\";\n"
        ),
    )?;
    let config = format!("--command-config={}", Certs::path(&file));
    let (out, _) = rill_ok(&sasl_ssl, &["cluster", "status", &config], b"")?;
    ensure!(out.contains("1 live broker"), "{out}");
    // A group member: the coordinator's connection authenticates too, and commits stick.
    let consume = [
        "consume",
        "sasl-ssl-SCRAM-SHA-512",
        "-g",
        "g1",
        "--from-beginning",
        "-e",
        "-f",
        "%o %k=%s\\n",
        &config,
    ];
    let (out, _) = rill_ok(&sasl_ssl, &consume, b"")?;
    ensure!(
        out == "0 k1=one\n1 k2=two\n2 k3=three\n",
        "group consume:\n{out}"
    );
    let (out, _) = rill_ok(&sasl_ssl, &consume, b"")?;
    ensure!(
        out.is_empty(),
        "the group's second read starts after its commits:\n{out}"
    );
    Ok(())
}

#[test]
fn rill_client_outlives_its_sasl_sessions() -> Result<()> {
    use rill_client::blocking::Producer;
    use rill_client::{ClientConfig, ProducerConfig, ProducerRecord, Security};

    let certs = Certs::make()?;
    let (broker, sasl_plain, _) = start_sasl(&certs, &["--connections-max-reauth-ms", "1500"])?;
    let mut client = ClientConfig::new([sasl_plain.clone()]);
    client.connection.security = Security::from_properties([
        ("security.protocol", "SASL_PLAINTEXT"),
        ("sasl.mechanism", "SCRAM-SHA-256"),
        ("sasl.username", ADMIN),
        ("sasl.password", ADMIN_PASSWORD),
    ])?;
    let producer = Producer::new(ProducerConfig::new(client))?;
    // Sends across four session lifetimes: each connection is replaced before its session
    // ends, so none is refused.
    let mut offsets = Vec::new();
    for i in 0..6 {
        let record = ProducerRecord::new("reauth")
            .partition(0)
            .value(format!("r{i}"));
        offsets.push(producer.send(record)?.offset);
        std::thread::sleep(std::time::Duration::from_millis(1000));
    }
    producer.close();
    ensure!(offsets == [0, 1, 2, 3, 4, 5], "offsets {offsets:?}");
    // Not one request reached the broker after its session ended (it would have closed the
    // connection, and the producer retried on a new one).
    let log = broker.output_text();
    ensure!(
        !log.contains("the SASL session expired"),
        "a request came after its session ended:\n{log}"
    );
    let props = sasl_props("SASL_PLAINTEXT", "PLAIN", ADMIN, ADMIN_PASSWORD);
    let (out, _) = rill_x(
        &sasl_plain,
        &[
            "consume",
            "reauth",
            "--from-beginning",
            "-e",
            "-f",
            "%o %s\\n",
        ],
        &props,
        b"",
    )?;
    ensure!(out == "0 r0\n1 r1\n2 r2\n3 r3\n4 r4\n5 r5\n", "{out}");
    Ok(())
}

#[test]
fn a_wrong_password_or_a_wrong_listener_is_one_line() -> Result<()> {
    let certs = Certs::make()?;
    let (broker, sasl_plain, _) = start_sasl(&certs, &[])?;
    for mechanism in MECHANISMS {
        let props = sasl_props("SASL_PLAINTEXT", mechanism, ADMIN, "wrong");
        let mut args = vec!["topic", "list"];
        args.extend(x(&props));
        let err = rill_fails(&sasl_plain, &args, b"")?;
        ensure!(
            err.lines().count() == 1
                && err.starts_with(&format!("rill: error: SASL authentication with {sasl_plain} failed: SASL_AUTHENTICATION_FAILED")),
            "{mechanism} with a wrong password: {err}"
        );
        // An unknown user, the same.
        let props = sasl_props("SASL_PLAINTEXT", mechanism, "nobody", "x");
        let mut args = vec!["topic", "list"];
        args.extend(x(&props));
        let err = rill_fails(&sasl_plain, &args, b"")?;
        ensure!(
            err.lines().count() == 1 && err.contains("SASL_AUTHENTICATION_FAILED"),
            "{mechanism} as an unknown user: {err}"
        );
    }
    // A mechanism the broker does not enable: its code and what it offers.
    let (_limited, limited, _) = start_sasl(
        &certs,
        &["--sasl-enabled-mechanisms", "PLAIN,SCRAM-SHA-512"],
    )?;
    let props = sasl_props("SASL_PLAINTEXT", "SCRAM-SHA-256", ADMIN, ADMIN_PASSWORD);
    let mut args = vec!["topic", "list"];
    args.extend(x(&props));
    let err = rill_fails(&limited, &args, b"")?;
    ensure!(
        err == format!(
            "rill: error: SASL authentication with {limited} failed: UNSUPPORTED_SASL_MECHANISM: \
             the broker does not enable SCRAM-SHA-256 (it offers PLAIN, SCRAM-SHA-512)\n"
        ),
        "{err}"
    );
    // SASL against the PLAINTEXT listener.
    let props = sasl_props("SASL_PLAINTEXT", "PLAIN", ADMIN, ADMIN_PASSWORD);
    let mut args = vec!["topic", "list"];
    args.extend(x(&props));
    let err = rill_fails(&broker.bootstrap(), &args, b"")?;
    ensure!(
        err == format!(
            "rill: error: SASL authentication with {} failed: ILLEGAL_SASL_STATE: the broker \
             refused the SASL handshake: is this listener SASL_PLAINTEXT or SASL_SSL?\n",
            broker.bootstrap()
        ),
        "SASL on the PLAINTEXT listener: {err}"
    );
    // No SASL on the SASL listener: the broker closes the connection after ApiVersions.
    let err = rill_fails(&sasl_plain, &["topic", "list"], b"")?;
    ensure!(
        err.lines().count() == 1 && err.contains("see -X security.protocol"),
        "no SASL on the SASL listener: {err}"
    );
    Ok(())
}

/// `kcat -L` as `user` with SCRAM `mechanism` over SASL_PLAINTEXT: whether it authenticated.
fn kcat_scram(bootstrap: &str, mechanism: &str, user: &str, password: &str) -> Result<bool> {
    let props = [
        "security.protocol=SASL_PLAINTEXT".to_owned(),
        format!("sasl.mechanisms={mechanism}"),
        format!("sasl.username={user}"),
        format!("sasl.password={password}"),
    ];
    let mut args = vec!["-b", bootstrap, "-L", "-m", "5"];
    args.extend(x(&props));
    let out = common::kcat(&args, b"")?;
    Ok(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 brokers"))
}

#[test]
fn rill_user_add_list_delete_round_trip_with_kcat() -> Result<()> {
    let certs = Certs::make()?;
    let (_broker, sasl_plain, _) = start_sasl(&certs, &[])?;
    let admin = sasl_props("SASL_PLAINTEXT", "SCRAM-SHA-256", ADMIN, ADMIN_PASSWORD);
    let dir = tempfile::tempdir()?;
    let password_file = dir.path().join("carol.pw");
    std::fs::write(&password_file, "carol's secret\n")?;
    let pw_file = Certs::path(&password_file);

    let (out, _) = rill_x(
        &sasl_plain,
        &["user", "add", "carol", "--password-file", &pw_file],
        &admin,
        b"",
    )?;
    ensure!(
        out == "added SCRAM-SHA-256 and SCRAM-SHA-512 for user 'carol'\n",
        "{out}"
    );
    let (out, _) = rill_x(
        &sasl_plain,
        &[
            "user",
            "add",
            "dave",
            "--mechanism",
            "SCRAM-SHA-512",
            "--iterations",
            "8192",
        ],
        &admin,
        b"dave's secret\n",
    )?;
    ensure!(out == "added SCRAM-SHA-512 for user 'dave'\n", "{out}");
    let (out, _) = rill_x(&sasl_plain, &["user", "list"], &admin, b"")?;
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    ensure!(
        rows == [
            vec!["USER", "MECHANISM", "ITERATIONS"],
            vec!["admin", "SCRAM-SHA-256", "4096"],
            vec!["admin", "SCRAM-SHA-512", "4096"],
            vec!["carol", "SCRAM-SHA-256", "4096"],
            vec!["carol", "SCRAM-SHA-512", "4096"],
            vec!["dave", "SCRAM-SHA-512", "8192"],
        ],
        "user list:\n{out}"
    );

    // A user added here logs in with kcat (librdkafka's SCRAM) and with rill-client.
    ensure!(
        kcat_scram(&sasl_plain, "SCRAM-SHA-256", "carol", "carol's secret")?,
        "kcat as carol"
    );
    ensure!(
        !kcat_scram(&sasl_plain, "SCRAM-SHA-256", "carol", "wrong")?,
        "kcat with a wrong password"
    );
    ensure!(
        kcat_scram(&sasl_plain, "SCRAM-SHA-512", "dave", "dave's secret")?,
        "kcat as dave"
    );
    ensure!(
        !kcat_scram(&sasl_plain, "SCRAM-SHA-256", "dave", "dave's secret")?,
        "dave has no SHA-256"
    );
    let carol = sasl_props("SASL_PLAINTEXT", "SCRAM-SHA-512", "carol", "carol's secret");
    let (out, _) = rill_x(&sasl_plain, &["cluster", "status"], &carol, b"")?;
    ensure!(out.contains("1 live broker"), "{out}");

    // One mechanism deleted: that one is refused, the other still works.
    let (out, _) = rill_x(
        &sasl_plain,
        &["user", "delete", "carol", "--mechanism", "SCRAM-SHA-256"],
        &admin,
        b"",
    )?;
    ensure!(out == "deleted SCRAM-SHA-256 for user 'carol'\n", "{out}");
    ensure!(
        !kcat_scram(&sasl_plain, "SCRAM-SHA-256", "carol", "carol's secret")?,
        "deleted SHA-256"
    );
    ensure!(
        kcat_scram(&sasl_plain, "SCRAM-SHA-512", "carol", "carol's secret")?,
        "kept SHA-512"
    );
    // Without --mechanism: those the user still has.
    let (out, _) = rill_x(&sasl_plain, &["user", "delete", "carol"], &admin, b"")?;
    ensure!(out == "deleted SCRAM-SHA-512 for user 'carol'\n", "{out}");
    ensure!(
        !kcat_scram(&sasl_plain, "SCRAM-SHA-512", "carol", "carol's secret")?,
        "deleted carol"
    );
    let mut args = vec!["topic", "list"];
    args.extend(x(&carol));
    let err = rill_fails(&sasl_plain, &args, b"")?;
    ensure!(
        err.contains("SASL_AUTHENTICATION_FAILED"),
        "carol after delete: {err}"
    );

    // Errors in one line: deleting what is not there, an empty password.
    let mut args = vec!["user", "delete", "nobody"];
    args.extend(x(&admin));
    let err = rill_fails(&sasl_plain, &args, b"")?;
    ensure!(
        err.lines().count() == 1
            && err.contains("user 'nobody'")
            && err.contains("RESOURCE_NOT_FOUND"),
        "{err}"
    );
    let mut args = vec!["user", "add", "erin"];
    args.extend(x(&admin));
    let err = rill_fails(&sasl_plain, &args, b"\n")?;
    ensure!(err == "rill: error: the password is empty\n", "{err}");
    let (out, _) = rill_x(&sasl_plain, &["user", "list"], &admin, b"")?;
    ensure!(
        !out.contains("carol") && !out.contains("erin") && out.contains("dave"),
        "{out}"
    );
    Ok(())
}

#[test]
fn rill_bench_produces_and_consumes_over_sasl_ssl() -> Result<()> {
    let certs = Certs::make()?;
    let (_broker, _, sasl_ssl) = start_sasl(&certs, &[])?;
    let mut props = sasl_props("SASL_SSL", "SCRAM-SHA-512", ADMIN, ADMIN_PASSWORD);
    props.push(format!("ssl.ca.location={}", Certs::path(&certs.ca)));
    let summary = |args: &[&str]| -> Result<serde_json::Value> {
        let mut all = vec!["bench"];
        all.extend_from_slice(args);
        all.push("--json");
        let (out, _) = rill_x(&sasl_ssl, &all, &props, b"")?;
        let value: serde_json::Value = serde_json::from_str(&out)?;
        ensure!(value["errors"] == 0, "{value}");
        Ok(value)
    };
    let produced = summary(&[
        "produce",
        "--topic",
        "bench",
        "--records",
        "500",
        "--record-size",
        "100",
        "--partitions",
        "2",
    ])?;
    ensure!(produced["records"] == 500, "{produced}");
    let consumed = summary(&["consume", "--topic", "bench"])?;
    ensure!(consumed["records"] == 500, "{consumed}");
    Ok(())
}
