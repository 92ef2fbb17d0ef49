//! rill-client and the `rill` CLI over TLS and SASL, through `-X key=value` and
//! `--command-config FILE` with Kafka's property names: produce and consume over SSL (with and
//! without a client certificate, with and without hostname checks), what a wrong CA, a wrong
//! host name or a bad property says, and (with a SASL broker) PLAIN and both SCRAMs, wrong
//! passwords and `rill user`.

mod common;

use anyhow::ensure;
use common::{Broker, Certs, Result, free_port, rill, rill_fails, rill_ok};

/// A broker with its PLAINTEXT listener and an SSL one at `ssl_host`; `extra` adds flags.
fn start_ssl(certs: &Certs, ssl_host: &str, extra: &[&str]) -> Result<(Broker, String)> {
    let ssl = format!("{ssl_host}:{}", free_port()?);
    let keystore = Certs::path(&certs.server);
    let truststore = Certs::path(&certs.ca);
    let mut args = vec![
        "--ssl-listen",
        &ssl,
        "--ssl-keystore",
        &keystore,
        "--ssl-truststore",
        &truststore,
    ];
    args.extend_from_slice(extra);
    let broker = Broker::start_with(&args)?;
    Ok((broker, ssl))
}

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
    let (broker, ssl) = start_ssl(&certs, "127.0.0.1", &[])?;
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
    let (_broker, ssl) = start_ssl(&certs, "127.0.0.2", &[])?;
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
    let (broker, ssl) = start_ssl(&certs, "127.0.0.1", &["--ssl-client-auth", "required"])?;
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
