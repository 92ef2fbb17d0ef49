//! SASL listeners: PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 with real clients (kcat and
//! confluent-kafka on librdkafka, kafka-python, sarama at its defaults, which speaks the v0
//! handshake and bare tokens for PLAIN and brings its own SCRAM client), over SASL_PLAINTEXT
//! and SASL_SSL (and sarama over SSL too); users managed with Kafka's APIs and kept in the
//! metadata log; and what the broker does with clients that do not authenticate: wrong
//! passwords, requests before authentication, a 100 MB token, a SCRAM exchange cut halfway, a
//! thousand connections that never authenticate, expired sessions.

#[macro_use]
mod common;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use common::{Broker, Certs, Conn, Reaction, Result, free_port, kcat, kcat_ok, run_py};
use rill_protocol::kafka_protocol::messages::{
    ApiVersionsRequest, MetadataRequest, SaslAuthenticateRequest, SaslHandshakeRequest,
};
use serde_json::{Value, json};

const ADMIN: (&str, &str) = ("admin", "admin-secret");
const MECHANISMS: [&str; 3] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

/// A broker with its PLAINTEXT listener (the harness's), a SASL_PLAINTEXT one and, with
/// `certs`, a SASL_SSL one; `admin` is its bootstrap user. Answers the SASL addresses.
fn start(certs: Option<&Certs>, extra: &[&str]) -> Result<(Broker, String, Option<String>)> {
    let sasl = format!("127.0.0.1:{}", free_port()?);
    let sasl_ssl = match certs {
        Some(_) => Some(format!("127.0.0.1:{}", free_port()?)),
        None => None,
    };
    let mut listen = format!("PLAINTEXT://{{listen}},SASL_PLAINTEXT://{sasl}");
    if let Some(addr) = &sasl_ssl {
        listen.push_str(&format!(",SASL_SSL://{addr}"));
    }
    let user = format!("{}:{}", ADMIN.0, ADMIN.1);
    let mut args: Vec<String> = vec!["--listen".into(), listen, "--bootstrap-user".into(), user];
    if let Some(certs) = certs {
        args.extend([
            "--ssl-keystore".into(),
            Certs::path(&certs.server),
            "--ssl-truststore".into(),
            Certs::path(&certs.ca),
        ]);
    }
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let broker = Broker::start_with(&args.iter().map(String::as_str).collect::<Vec<_>>())?;
    Ok((broker, sasl, sasl_ssl))
}

/// kcat's settings for SASL_PLAINTEXT with `mechanism` as `user`.
fn kcat_sasl(mechanism: &str, user: &str, password: &str) -> Vec<String> {
    [
        "security.protocol=SASL_PLAINTEXT".to_owned(),
        format!("sasl.mechanisms={mechanism}"),
        format!("sasl.username={user}"),
        format!("sasl.password={password}"),
    ]
    .into_iter()
    .flat_map(|s| ["-X".to_owned(), s])
    .collect()
}

/// kcat's settings for SASL_SSL with `mechanism` as `user`, trusting `certs`' CA.
fn kcat_sasl_ssl(certs: &Certs, mechanism: &str, user: &str, password: &str) -> Vec<String> {
    [
        "security.protocol=SASL_SSL".to_owned(),
        format!("ssl.ca.location={}", Certs::path(&certs.ca)),
        format!("sasl.mechanisms={mechanism}"),
        format!("sasl.username={user}"),
        format!("sasl.password={password}"),
    ]
    .into_iter()
    .flat_map(|s| ["-X".to_owned(), s])
    .collect()
}

fn kcat_with(addr: &str, settings: &[String], rest: &[&str], stdin: &[u8]) -> Result<String> {
    let mut args: Vec<&str> = vec!["-b", addr];
    args.extend(settings.iter().map(String::as_str));
    args.extend_from_slice(rest);
    kcat_ok(&args, stdin)
}

/// Whether `user` can read metadata through kcat with `mechanism`.
fn kcat_authenticates(addr: &str, mechanism: &str, user: &str, password: &str) -> Result<bool> {
    let mut args: Vec<String> = vec![
        "-b".into(),
        addr.into(),
        "-L".into(),
        "-m".into(),
        "5".into(),
    ];
    args.extend(kcat_sasl(mechanism, user, password));
    let out = kcat(&args.iter().map(String::as_str).collect::<Vec<_>>(), b"")?;
    Ok(out.status.success())
}

#[test]
fn kcat_produces_and_consumes_with_each_mechanism() -> Result<()> {
    let certs = Certs::make()?;
    let (broker, sasl, sasl_ssl) = start(Some(&certs), &[])?;
    let sasl_ssl = sasl_ssl.context("no SASL_SSL listener")?;
    let topic = broker.topic("kcat-sasl");
    for (i, mechanism) in MECHANISMS.iter().enumerate() {
        let settings = kcat_sasl(mechanism, ADMIN.0, ADMIN.1);
        let line = format!("record-{i}-{mechanism}\n");
        let _ = kcat_with(&sasl, &settings, &["-t", &topic, "-P"], line.as_bytes())?;
    }
    let settings = kcat_sasl("SCRAM-SHA-512", ADMIN.0, ADMIN.1);
    let out = kcat_with(
        &sasl,
        &settings,
        &["-t", &topic, "-C", "-e", "-f", "%o %s\n"],
        b"",
    )?;
    let want: String = MECHANISMS
        .iter()
        .enumerate()
        .map(|(i, m)| format!("{i} record-{i}-{m}\n"))
        .collect();
    ensure!(out == want, "consumed {out:?}");
    // The PLAINTEXT listener still serves without authentication.
    let plain = kcat_ok(
        &[
            "-b",
            &broker.bootstrap(),
            "-t",
            &topic,
            "-C",
            "-e",
            "-f",
            "%o\n",
        ],
        b"",
    )?;
    ensure!(plain == "0\n1\n2\n", "{plain:?}");

    // Over SASL_SSL: each mechanism produces a record and consumes all so far.
    let topic = broker.topic("kcat-sasl-ssl");
    let mut want = String::new();
    for (i, mechanism) in MECHANISMS.iter().enumerate() {
        let settings = kcat_sasl_ssl(&certs, mechanism, ADMIN.0, ADMIN.1);
        let line = format!("tls-{i}-{mechanism}\n");
        let _ = kcat_with(&sasl_ssl, &settings, &["-t", &topic, "-P"], line.as_bytes())?;
        want.push_str(&format!("{i} {line}"));
        let out = kcat_with(
            &sasl_ssl,
            &settings,
            &["-t", &topic, "-C", "-e", "-f", "%o %s\n"],
            b"",
        )?;
        ensure!(out == want, "{mechanism} over SASL_SSL consumed {out:?}");
    }
    Ok(())
}

/// Five records produced and consumed by `client` over SASL_PLAINTEXT and SASL_SSL with each
/// mechanism; `names` are the client's names for the protocol, mechanism, user, password and CA
/// settings.
fn python_clients(client: &str, names: [&str; 5]) -> Result<()> {
    let [protocol_key, mechanism_key, user_key, password_key, ca_key] = names;
    let certs = Certs::make()?;
    let (broker, sasl, sasl_ssl) = start(Some(&certs), &[])?;
    let sasl_ssl = sasl_ssl.context("no SASL_SSL listener")?;
    for (protocol, addr) in [("SASL_PLAINTEXT", &sasl), ("SASL_SSL", &sasl_ssl)] {
        for mechanism in MECHANISMS {
            let topic = broker.topic(&format!("{client}-{protocol}-{mechanism}").to_lowercase());
            let mut settings = vec![
                format!("{protocol_key}={protocol}"),
                format!("{mechanism_key}={mechanism}"),
                format!("{user_key}={}", ADMIN.0),
                format!("{password_key}={}", ADMIN.1),
            ];
            if protocol == "SASL_SSL" {
                settings.push(format!("{ca_key}={}", Certs::path(&certs.ca)));
            }
            common::python_round_trip(addr, &topic, client, &settings)?;
        }
    }
    Ok(())
}

#[test]
fn confluent_kafka_over_sasl_plaintext_and_sasl_ssl() -> Result<()> {
    python_clients(
        "confluent",
        [
            "security.protocol",
            "sasl.mechanisms",
            "sasl.username",
            "sasl.password",
            "ssl.ca.location",
        ],
    )
}

#[test]
fn kafka_python_over_sasl_plaintext_and_sasl_ssl() -> Result<()> {
    python_clients(
        "kafka-python",
        [
            "security_protocol",
            "sasl_mechanism",
            "sasl_plain_username",
            "sasl_plain_password",
            "ssl_cafile",
        ],
    )
}

#[test]
fn sarama_at_its_defaults_authenticates_with_plain() -> Result<()> {
    let bin = common::build_sarama(&["sync_producer", "partition_consumer"])?;
    let (broker, sasl, _) = start(None, &[])?;
    let topic = broker.topic("sarama-sasl");
    let auth = ["-sasl-user", ADMIN.0, "-sasl-password", ADMIN.1];
    let mut produce = std::process::Command::new(bin.path().join("sync_producer"));
    let _ = produce
        .args(["-brokers", &sasl, "-topic", &topic, "-n", "3"])
        .args(auth);
    let out = common::run(produce, b"", common::CLIENT_TIMEOUT)?;
    ensure!(
        out.status.success(),
        "sync_producer: {}{}",
        out.stdout_text(),
        out.stderr
    );
    let printed = out.stdout_text();
    let offsets: Vec<&str> = printed
        .lines()
        .filter_map(|l| l.rsplit_once("offset:").map(|(_, o)| o.trim()))
        .collect();
    ensure!(offsets == ["0", "1", "2"], "{}", out.stdout_text());
    let mut consume = std::process::Command::new(bin.path().join("partition_consumer"));
    let _ = consume
        .args([
            "-brokers", &sasl, "-topic", &topic, "-oldest", "-count", "3", "-timeout", "30s",
        ])
        .args(auth);
    let out = common::run(consume, b"", common::CLIENT_TIMEOUT)?;
    ensure!(
        out.status.success(),
        "partition_consumer: {}{}",
        out.stdout_text(),
        out.stderr
    );
    ensure!(
        out.stdout_text().matches("Hello World!").count() == 3,
        "{}",
        out.stdout_text()
    );
    // A wrong password: sarama gives up.
    let mut wrong = std::process::Command::new(bin.path().join("sync_producer"));
    let _ = wrong.args([
        "-brokers",
        &sasl,
        "-topic",
        &topic,
        "-sasl-user",
        ADMIN.0,
        "-sasl-password",
        "nope",
    ]);
    let out = common::run(wrong, b"", common::CLIENT_TIMEOUT)?;
    ensure!(
        !out.status.success(),
        "a wrong password produced: {}",
        out.stdout_text()
    );
    Ok(())
}

/// sarama's sync producer sends 3 messages to `topic` at `addr` with `security` (its flags for
/// TLS and SASL), and its partition consumer reads them back: offsets 0, 1, 2 and their values.
fn sarama_round_trip(
    bin: &std::path::Path,
    addr: &str,
    topic: &str,
    security: &[&str],
) -> Result<()> {
    let mut produce = std::process::Command::new(bin.join("sync_producer"));
    let _ = produce
        .args(["-brokers", addr, "-topic", topic, "-n", "3"])
        .args(security);
    let out = common::run(produce, b"", common::CLIENT_TIMEOUT)?;
    ensure!(
        out.status.success(),
        "sync_producer {security:?}: {}{}",
        out.stdout_text(),
        out.stderr
    );
    let want: String = (0..3).map(|o| format!("分区ID:0, offset:{o}\n")).collect();
    ensure!(
        out.stdout_text() == want,
        "sync_producer {security:?}: {}",
        out.stdout_text()
    );
    let mut consume = std::process::Command::new(bin.join("partition_consumer"));
    let _ = consume
        .args([
            "-brokers", addr, "-topic", topic, "-oldest", "-count", "3", "-timeout", "30s",
        ])
        .args(security);
    let out = common::run(consume, b"", common::CLIENT_TIMEOUT)?;
    ensure!(
        out.status.success(),
        "partition_consumer {security:?}: {}{}",
        out.stdout_text(),
        out.stderr
    );
    let want: String = (0..3)
        .map(|o| format!("Partition:0, Offset:{o}, key:, value:Hello World!\n"))
        .collect();
    ensure!(
        out.stdout_text() == want,
        "partition_consumer {security:?}: {}",
        out.stdout_text()
    );
    Ok(())
}

/// The SCRAM client the sarama programs use gives RFC 7677's example exchange, refuses a wrong
/// server signature and a server nonce that does not extend its own (its Go tests).
#[test]
fn sarama_programs_scram_client_passes_its_go_tests() -> Result<()> {
    let out = common::go_test_sarama(&["scram"])?;
    ensure!(out.starts_with("ok "), "{out}");
    Ok(())
}

/// sarama (its own SCRAM client, `interop/sarama/scram/`) over SSL, and over SASL_PLAINTEXT
/// and SASL_SSL with each mechanism, all at sarama's defaults otherwise (Kafka 0.8.2: PLAIN
/// with a v0 handshake and a bare token, SCRAM with a v1 handshake and SaslAuthenticate v0).
#[test]
fn sarama_over_ssl_and_with_each_mechanism_over_sasl_plaintext_and_sasl_ssl() -> Result<()> {
    let bin = common::build_sarama(&["sync_producer", "partition_consumer"])?;
    let certs = Certs::make()?;
    let ssl = format!("127.0.0.1:{}", free_port()?);
    let (broker, sasl, sasl_ssl) = start(Some(&certs), &["--ssl-listen", &ssl])?;
    let sasl_ssl = sasl_ssl.context("no SASL_SSL listener")?;
    let ca = Certs::path(&certs.ca);
    let tls = ["-tls-ca", ca.as_str()];
    sarama_round_trip(bin.path(), &ssl, &broker.topic("sarama-ssl"), &tls)?;
    for (protocol, addr) in [("SASL_PLAINTEXT", &sasl), ("SASL_SSL", &sasl_ssl)] {
        for mechanism in MECHANISMS {
            let topic = broker.topic(&format!("sarama-{protocol}-{mechanism}").to_lowercase());
            let mut security = vec![
                "-sasl-mechanism",
                mechanism,
                "-sasl-user",
                ADMIN.0,
                "-sasl-password",
                ADMIN.1,
            ];
            if protocol == "SASL_SSL" {
                security.extend(tls);
            }
            sarama_round_trip(bin.path(), addr, &topic, &security)
                .with_context(|| format!("{protocol} {mechanism}"))?;
        }
    }
    // A wrong SCRAM password: the broker refuses it (SASL_AUTHENTICATION_FAILED in
    // SaslAuthenticate) and sarama gives up without producing.
    for mechanism in ["SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let topic = broker.topic("sarama-wrong");
        let mut wrong = std::process::Command::new(bin.path().join("sync_producer"));
        let _ = wrong.args([
            "-brokers",
            &sasl,
            "-topic",
            &topic,
            "-verbose",
            "-sasl-mechanism",
            mechanism,
            "-sasl-user",
            ADMIN.0,
            "-sasl-password",
            "nope",
        ]);
        let out = common::run(wrong, b"", common::CLIENT_TIMEOUT)?;
        ensure!(
            !out.status.success() && !out.stdout_text().contains("offset:"),
            "{mechanism} with a wrong password produced: {}",
            out.stdout_text()
        );
        ensure!(
            out.stderr.contains("SASL Authentication failed"),
            "{mechanism}: {}",
            out.stderr
        );
    }
    Ok(())
}

/// SaslHandshake v1 for `mechanism` on a fresh connection to `addr`: the answer's error code.
fn handshake(conn: &mut Conn, mechanism: &str) -> Result<(i16, Vec<String>)> {
    let request = SaslHandshakeRequest::default().with_mechanism(mechanism.to_owned().into());
    let answer = ask!(conn, SaslHandshake, 1, request);
    Ok((
        answer.error_code,
        answer.mechanisms.iter().map(ToString::to_string).collect(),
    ))
}

fn authenticate(conn: &mut Conn, version: i16, token: &[u8]) -> Result<(i16, String, i64)> {
    let request = SaslAuthenticateRequest::default().with_auth_bytes(token.to_vec().into());
    let answer = ask!(conn, SaslAuthenticate, version, request);
    Ok((
        answer.error_code,
        common::message(answer.error_message.as_ref()),
        answer.session_lifetime_ms,
    ))
}

/// Sends a Metadata request on `conn`: whether the broker then closes the connection.
fn metadata_closes(conn: &mut Conn) -> Result<bool> {
    let id = conn.id();
    common::send_request(
        &mut conn.stream,
        rill_protocol::ApiKey::Metadata,
        12,
        id,
        MetadataRequest::default(),
    )?;
    closed(&mut conn.stream, Duration::from_secs(5))
}

fn closed(stream: &mut TcpStream, within: Duration) -> Result<bool> {
    Ok(common::reaction(stream, within)? == Reaction::Closed)
}

#[test]
fn wrong_passwords_and_unknown_mechanisms_are_refused_and_closed() -> Result<()> {
    let (_broker, sasl, _) = start(None, &["--sasl-enabled-mechanisms", "PLAIN,SCRAM-SHA-512"])?;
    // A wrong password: SASL_AUTHENTICATION_FAILED (58), then the connection closes.
    let mut conn = Conn::open_to(&sasl)?;
    ensure!(handshake(&mut conn, "PLAIN")?.0 == 0);
    let (code, message, _) = authenticate(&mut conn, 2, b"\0admin\0wrong")?;
    ensure!(code == 58, "code {code}: {message}");
    ensure!(
        message.contains("invalid username or password"),
        "{message}"
    );
    ensure!(
        closed(&mut conn.stream, Duration::from_secs(5))?,
        "left open"
    );
    // An unknown user gets the same answer.
    let mut conn = Conn::open_to(&sasl)?;
    ensure!(handshake(&mut conn, "PLAIN")?.0 == 0);
    let (code, other, _) = authenticate(&mut conn, 2, b"\0nobody\0wrong")?;
    ensure!(code == 58 && other == message, "code {code}: {other}");
    // A mechanism not enabled: UNSUPPORTED_SASL_MECHANISM (33) with the enabled list.
    let mut conn = Conn::open_to(&sasl)?;
    let (code, enabled) = handshake(&mut conn, "SCRAM-SHA-256")?;
    ensure!(code == 33, "code {code}");
    ensure!(enabled == ["PLAIN", "SCRAM-SHA-512"], "{enabled:?}");
    ensure!(
        closed(&mut conn.stream, Duration::from_secs(5))?,
        "left open"
    );
    // SaslAuthenticate before SaslHandshake: ILLEGAL_SASL_STATE (34), then closed.
    let mut conn = Conn::open_to(&sasl)?;
    let (code, _, _) = authenticate(&mut conn, 1, b"\0admin\0admin-secret")?;
    ensure!(code == 34, "code {code}");
    ensure!(
        closed(&mut conn.stream, Duration::from_secs(5))?,
        "left open"
    );
    // The right password: no error, and the session never ends (no connections.max.reauth.ms).
    let mut conn = Conn::open_to(&sasl)?;
    ensure!(handshake(&mut conn, "PLAIN")?.0 == 0);
    let (code, message, lifetime) = authenticate(&mut conn, 2, b"\0admin\0admin-secret")?;
    ensure!(
        code == 0 && lifetime == 0,
        "code {code} ({message}), lifetime {lifetime}"
    );
    let metadata = ask!(&mut conn, Metadata, 12, MetadataRequest::default());
    ensure!(metadata.brokers.len() == 1, "{metadata:?}");
    // kcat with a wrong password fails with the broker's reason.
    let mut args: Vec<String> = vec![
        "-b".into(),
        sasl.clone(),
        "-L".into(),
        "-m".into(),
        "5".into(),
    ];
    args.extend(kcat_sasl("SCRAM-SHA-512", ADMIN.0, "wrong"));
    let out = kcat(&args.iter().map(String::as_str).collect::<Vec<_>>(), b"")?;
    ensure!(!out.status.success());
    ensure!(
        out.stderr.contains("invalid username or password"),
        "{}",
        out.stderr
    );
    Ok(())
}

#[test]
fn only_api_versions_and_sasl_are_answered_before_authentication() -> Result<()> {
    let (_broker, sasl, _) = start(None, &[])?;
    let mut conn = Conn::open_to(&sasl)?;
    let versions = ask!(&mut conn, ApiVersions, 3, ApiVersionsRequest::default());
    let keys: Vec<i16> = versions.api_keys.iter().map(|k| k.api_key).collect();
    ensure!(keys.contains(&17) && keys.contains(&36), "{keys:?}");
    ensure!(
        metadata_closes(&mut conn)?,
        "a Metadata request before authentication was answered"
    );
    Ok(())
}

#[test]
fn hostile_unauthenticated_clients_are_closed_and_others_served() -> Result<()> {
    let (broker, sasl, _) = start(None, &["--sasl-authentication-timeout-ms", "2000"])?;
    let topic = broker.topic("hostile-sasl");
    // A 100 MB SASL token: the size alone closes the connection (512 KiB before authentication).
    let mut conn = Conn::open_to(&sasl)?;
    ensure!(handshake(&mut conn, "PLAIN")?.0 == 0);
    use std::io::Write as _;
    conn.stream.write_all(&100_000_000i32.to_be_bytes())?;
    conn.stream.write_all(&[0; 4096])?;
    ensure!(
        closed(&mut conn.stream, Duration::from_secs(5))?,
        "a 100 MB token was awaited"
    );
    // The same after a v0 handshake, where tokens are bare frames.
    let mut conn = Conn::open_to(&sasl)?;
    let request = SaslHandshakeRequest::default().with_mechanism("PLAIN".into());
    let answer = ask!(&mut conn, SaslHandshake, 0, request);
    ensure!(answer.error_code == 0);
    conn.stream.write_all(&100_000_000i32.to_be_bytes())?;
    ensure!(
        closed(&mut conn.stream, Duration::from_secs(5))?,
        "a 100 MB bare token was awaited"
    );

    // A SCRAM exchange cut halfway: client-first, then silence; closed at the deadline.
    let mut cut = Conn::open_to(&sasl)?;
    ensure!(handshake(&mut cut, "SCRAM-SHA-256")?.0 == 0);
    let (code, _, _) = authenticate(&mut cut, 2, b"n,,n=admin,r=abcdefghijklmnop")?;
    ensure!(code == 0, "client-first refused: {code}");

    // A thousand connections that only ask ApiVersions and never authenticate.
    let before = broker.rss_kib()?;
    let started = Instant::now();
    let mut idle = Vec::with_capacity(1000);
    for i in 0..1000 {
        let mut stream = TcpStream::connect(&sasl)?;
        stream.write_all(&common::encode_request(
            rill_protocol::ApiKey::ApiVersions,
            3,
            i,
            ApiVersionsRequest::default(),
        )?)?;
        idle.push(stream);
    }
    // Meanwhile an authenticated client produces and consumes.
    let settings = kcat_sasl("SCRAM-SHA-256", ADMIN.0, ADMIN.1);
    let _ = kcat_with(&sasl, &settings, &["-t", &topic, "-P"], b"a\nb\nc\n")?;
    let out = kcat_with(
        &sasl,
        &settings,
        &["-t", &topic, "-C", "-e", "-f", "%o %s\n"],
        b"",
    )?;
    ensure!(out == "0 a\n1 b\n2 c\n", "{out:?}");
    let during = broker.rss_kib()?;
    ensure!(
        during < before + 64 * 1024,
        "1,000 unauthenticated connections took {} KiB",
        during - before
    );
    // Every one of them is closed by the deadline (2 s after it connected), the cut one too.
    for stream in idle.iter_mut().chain([&mut cut.stream]) {
        let waited = started.elapsed();
        let left = Duration::from_secs(10).saturating_sub(waited);
        stream.set_read_timeout(Some(left.max(Duration::from_millis(100))))?;
        let mut buf = [0u8; 4096];
        loop {
            use std::io::Read as _;
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => continue, // the ApiVersions answer
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(e) => anyhow::bail!("an unauthenticated connection stayed open: {e}"),
            }
        }
    }
    ensure!(
        started.elapsed() < Duration::from_secs(10),
        "closing took {:?}",
        started.elapsed()
    );
    let out = kcat_with(
        &sasl,
        &settings,
        &["-t", &topic, "-C", "-e", "-f", "%o\n"],
        b"",
    )?;
    ensure!(out == "0\n1\n2\n", "{out:?}");
    Ok(())
}

fn scram_users(addr: &str, action: &[&str]) -> Result<Value> {
    let mut args = vec![addr.to_owned()];
    for s in [
        "security.protocol=SASL_PLAINTEXT".to_owned(),
        "sasl.mechanisms=SCRAM-SHA-512".to_owned(),
        format!("sasl.username={}", ADMIN.0),
        format!("sasl.password={}", ADMIN.1),
    ] {
        args.extend(["--set".to_owned(), s]);
    }
    args.extend(action.iter().map(|s| (*s).to_owned()));
    run_py("scram_users.py", &args, b"")
}

#[test]
fn users_are_managed_with_kafkas_apis_and_kept_in_the_metadata_log() -> Result<()> {
    let (mut broker, sasl, _) = start(None, &[])?;
    let added = scram_users(
        &sasl,
        &["upsert", "bob", "SCRAM-SHA-512", "8192", "bob-pw-1"],
    )?;
    ensure!(added == json!({ "bob": null }), "{added}");
    ensure!(kcat_authenticates(
        &sasl,
        "SCRAM-SHA-512",
        "bob",
        "bob-pw-1"
    )?);
    ensure!(kcat_authenticates(&sasl, "PLAIN", "bob", "bob-pw-1")?);
    ensure!(!kcat_authenticates(
        &sasl,
        "SCRAM-SHA-256",
        "bob",
        "bob-pw-1"
    )?);
    ensure!(!kcat_authenticates(
        &sasl,
        "SCRAM-SHA-512",
        "bob",
        "bob-pw-2"
    )?);
    let described = scram_users(&sasl, &["describe"])?;
    ensure!(
        described
            == json!({
                "admin": [["SCRAM-SHA-256", 4096], ["SCRAM-SHA-512", 4096]],
                "bob": [["SCRAM-SHA-512", 8192]],
            }),
        "{described}"
    );
    let unknown = scram_users(&sasl, &["describe", "carol"])?;
    ensure!(
        unknown == json!({ "carol": "RESOURCE_NOT_FOUND" }),
        "{unknown}"
    );
    let few = scram_users(&sasl, &["upsert", "carol", "SCRAM-SHA-256", "100", "x"])?;
    ensure!(
        few == json!({ "carol": "UNACCEPTABLE_CREDENTIAL" }),
        "{few}"
    );
    let missing = scram_users(&sasl, &["delete", "carol", "SCRAM-SHA-256"])?;
    ensure!(
        missing == json!({ "carol": "RESOURCE_NOT_FOUND" }),
        "{missing}"
    );

    // Kept across a restart, and only as salted keys: the password is nowhere on disk.
    broker.restart()?;
    ensure!(kcat_authenticates(
        &sasl,
        "SCRAM-SHA-512",
        "bob",
        "bob-pw-1"
    )?);
    let data = broker.data_dir().context("data dir")?.to_owned();
    for entry in walk(&data)? {
        let bytes = std::fs::read(&entry)?;
        for secret in [&b"bob-pw-1"[..], ADMIN.1.as_bytes()] {
            ensure!(
                !bytes.windows(secret.len()).any(|w| w == secret),
                "{} holds a password",
                entry.display()
            );
        }
    }
    // A new password replaces the old; deleting the credential locks bob out.
    let changed = scram_users(
        &sasl,
        &["upsert", "bob", "SCRAM-SHA-512", "4096", "bob-pw-2"],
    )?;
    ensure!(changed == json!({ "bob": null }), "{changed}");
    ensure!(!kcat_authenticates(
        &sasl,
        "SCRAM-SHA-512",
        "bob",
        "bob-pw-1"
    )?);
    ensure!(kcat_authenticates(
        &sasl,
        "SCRAM-SHA-512",
        "bob",
        "bob-pw-2"
    )?);
    let deleted = scram_users(&sasl, &["delete", "bob", "SCRAM-SHA-512"])?;
    ensure!(deleted == json!({ "bob": null }), "{deleted}");
    ensure!(!kcat_authenticates(
        &sasl,
        "SCRAM-SHA-512",
        "bob",
        "bob-pw-2"
    )?);
    ensure!(!kcat_authenticates(&sasl, "PLAIN", "bob", "bob-pw-2")?);
    let described = scram_users(&sasl, &["describe"])?;
    ensure!(described.get("bob").is_none(), "{described}");
    Ok(())
}

fn walk(dir: &std::path::Path) -> Result<Vec<std::path::PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            files.extend(walk(&path)?);
        } else {
            files.push(path);
        }
    }
    Ok(files)
}

#[test]
fn sessions_expire_and_clients_reauthenticate() -> Result<()> {
    let (broker, sasl, _) = start(None, &["--connections-max-reauth-ms", "1500"])?;
    // The session's lifetime is told to v1+ clients...
    let mut conn = Conn::open_to(&sasl)?;
    ensure!(handshake(&mut conn, "PLAIN")?.0 == 0);
    let (code, _, lifetime) = authenticate(&mut conn, 1, b"\0admin\0admin-secret")?;
    ensure!(
        code == 0 && (1000..=1500).contains(&lifetime),
        "{code} {lifetime}"
    );
    let _ = ask!(&mut conn, Metadata, 12, MetadataRequest::default());
    // ...who may authenticate again on the connection before or after it ends...
    std::thread::sleep(Duration::from_millis(1600));
    ensure!(handshake(&mut conn, "PLAIN")?.0 == 0);
    let (code, _, lifetime) = authenticate(&mut conn, 1, b"\0admin\0admin-secret")?;
    ensure!(code == 0 && lifetime > 1000, "{code} {lifetime}");
    let _ = ask!(&mut conn, Metadata, 12, MetadataRequest::default());
    // ...but not as someone else.
    let mut other = Conn::open_to(&sasl)?;
    ensure!(handshake(&mut other, "PLAIN")?.0 == 0);
    let _ = authenticate(&mut other, 1, b"\0admin\0admin-secret")?;
    ensure!(handshake(&mut other, "PLAIN")?.0 == 0);
    let (code, message, _) = authenticate(&mut other, 1, b"\0nobody\0x")?;
    ensure!(code == 58, "{code} {message}");
    // Any other request after the session ended closes the connection.
    std::thread::sleep(Duration::from_millis(1600));
    ensure!(metadata_closes(&mut conn)?, "an expired session was served");

    // librdkafka re-authenticates on its own (KIP-368): a producer sending for longer than
    // three session lifetimes delivers every record.
    let topic = broker.topic("reauth");
    let records: Vec<Value> = (0..10)
        .map(|i| json!({ "v": common::hex(format!("r{i}").as_bytes()), "p": 0 }))
        .collect();
    let mut args = vec![
        sasl.clone(),
        topic.clone(),
        "--client".into(),
        "confluent".into(),
    ];
    for s in [
        "security.protocol=SASL_PLAINTEXT".to_owned(),
        "sasl.mechanisms=SCRAM-SHA-256".to_owned(),
        format!("sasl.username={}", ADMIN.0),
        format!("sasl.password={}", ADMIN.1),
    ] {
        args.extend(["--set".to_owned(), s]);
    }
    args.extend(["--pause-ms".to_owned(), "500".to_owned()]);
    let produced = run_py(
        "produce.py",
        &args,
        serde_json::to_string(&records)?.as_bytes(),
    )?;
    ensure!(
        produced["delivered"] == json!((0..10).map(|i| json!([i, 0, i])).collect::<Vec<_>>()),
        "delivered {}",
        produced["delivered"]
    );
    Ok(())
}

#[test]
fn credentials_are_agreed_by_the_cluster() -> Result<()> {
    let voters = common::free_voters(3)?;
    let mut brokers = Vec::new();
    let mut sasl = Vec::new();
    for id in 1..=3 {
        let addr = format!("127.0.0.1:{}", free_port()?);
        let listen = format!("PLAINTEXT://{{listen}},SASL_PLAINTEXT://{addr}");
        let id = id.to_string();
        let mut args = vec![
            "--node-id",
            &id,
            "--controller-quorum-voters",
            &voters,
            "--listen",
            &listen,
        ];
        // Only node 1 is given the first user; the others learn it from the metadata log.
        let user = format!("{}:{}", ADMIN.0, ADMIN.1);
        if id == "1" {
            args.extend(["--bootstrap-user", &user]);
        }
        brokers.push(Broker::start_with(&args)?);
        sasl.push(addr);
    }
    let within = |what: &str, check: &dyn Fn() -> Result<bool>| -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !check()? {
            ensure!(Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    };
    within("the bootstrap user never reached node 3", &|| {
        kcat_authenticates(&sasl[2], "SCRAM-SHA-256", ADMIN.0, ADMIN.1)
    })?;
    let added = scram_users(
        &sasl[1],
        &["upsert", "bob", "SCRAM-SHA-256", "4096", "bob-pw"],
    )?;
    ensure!(added == json!({ "bob": null }), "{added}");
    within("bob, added through node 2, never reached node 1", &|| {
        kcat_authenticates(&sasl[0], "SCRAM-SHA-256", "bob", "bob-pw")
    })?;
    ensure!(kcat_authenticates(&sasl[2], "PLAIN", "bob", "bob-pw")?);
    drop(brokers);
    Ok(())
}
