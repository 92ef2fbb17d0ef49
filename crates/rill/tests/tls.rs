//! TLS listeners: a broker with a PLAINTEXT and an SSL listener, certificates made here with
//! Debian's openssl (a CA, a server certificate for 127.0.0.1/localhost, a client certificate);
//! librdkafka (kcat, confluent-kafka) and kafka-python over SSL; Metadata naming the listener a
//! client came in on; client authentication; and what a TLS listener does with clients that do
//! not speak TLS.

mod common;

use std::io::Write as _;
use std::time::Duration;

use anyhow::{Context, ensure};
use common::Reaction;
use common::{Broker, Certs, Result, kcat, kcat_ok};
use serde_json::{Value, json};

/// A broker with its PLAINTEXT listener and an SSL one; `extra` adds flags.
fn start(certs: &Certs, extra: &[&str]) -> Result<(Broker, String)> {
    certs.ssl_broker("127.0.0.1", extra)
}

/// kcat's `-X` settings for SSL, with the client certificate if `with_cert`.
fn kcat_ssl(certs: &Certs, with_cert: bool) -> Vec<String> {
    let mut x = vec![
        "security.protocol=SSL".to_owned(),
        format!("ssl.ca.location={}", Certs::path(&certs.ca)),
    ];
    if with_cert {
        x.push(format!(
            "ssl.certificate.location={}",
            Certs::path(&certs.client_cert)
        ));
        x.push(format!(
            "ssl.key.location={}",
            Certs::path(&certs.client_key)
        ));
    }
    x.into_iter().flat_map(|s| ["-X".to_owned(), s]).collect()
}

fn kcat_metadata(bootstrap: &str, extra: &[String]) -> Result<Value> {
    let mut args: Vec<&str> = vec!["-b", bootstrap, "-L", "-J", "-m", "10"];
    args.extend(extra.iter().map(String::as_str));
    let out = kcat_ok(&args, b"")?;
    serde_json::from_str(&out).with_context(|| format!("kcat -L -J: {out}"))
}

#[test]
fn metadata_names_the_listener_the_client_came_in_on() -> Result<()> {
    let certs = Certs::make()?;
    let (broker, ssl) = start(&certs, &[])?;
    let plain = kcat_metadata(&broker.bootstrap(), &[])?;
    ensure!(
        plain["brokers"] == json!([{ "id": 0, "name": broker.bootstrap() }]),
        "over PLAINTEXT: {}",
        plain["brokers"]
    );
    let tls = kcat_metadata(&ssl, &kcat_ssl(&certs, false))?;
    ensure!(
        tls["brokers"] == json!([{ "id": 0, "name": ssl }]),
        "over SSL: {}",
        tls["brokers"]
    );
    Ok(())
}

#[test]
fn kcat_produces_and_consumes_over_ssl() -> Result<()> {
    let certs = Certs::make()?;
    let (broker, ssl) = start(&certs, &[])?;
    let topic = broker.topic("tls-kcat");
    let x = kcat_ssl(&certs, false);
    let mut produce: Vec<&str> = vec!["-b", &ssl, "-t", &topic, "-P", "-K", ":", "-p", "0"];
    produce.extend(x.iter().map(String::as_str));
    let _ = kcat_ok(&produce, b"k1:one\nk2:two\nk3:three\n")?;
    let mut consume: Vec<&str> = vec![
        "-b",
        &ssl,
        "-t",
        &topic,
        "-C",
        "-e",
        "-o",
        "beginning",
        "-f",
        "%o %k=%s\n",
    ];
    consume.extend(x.iter().map(String::as_str));
    let out = kcat_ok(&consume, b"")?;
    ensure!(
        out == "0 k1=one\n1 k2=two\n2 k3=three\n",
        "consumed {out:?}"
    );
    Ok(())
}

/// Produce and consume with one Python client over SSL: every record back at its offset.
fn python_round_trip(client: &str, settings: &[String]) -> Result<()> {
    let certs = Certs::make()?;
    let (broker, ssl) = start(&certs, &[])?;
    let topic = broker.topic(&format!("tls-{client}"));
    let settings: Vec<String> = settings
        .iter()
        .map(|s| s.replace("{ca}", &Certs::path(&certs.ca)))
        .collect();
    common::python_round_trip(&ssl, &topic, client, &settings)
}

#[test]
fn confluent_kafka_produces_and_consumes_over_ssl() -> Result<()> {
    python_round_trip(
        "confluent",
        &[
            "security.protocol=SSL".to_owned(),
            "ssl.ca.location={ca}".to_owned(),
        ],
    )
}

#[test]
fn kafka_python_produces_and_consumes_over_ssl() -> Result<()> {
    python_round_trip(
        "kafka-python",
        &[
            "security_protocol=SSL".to_owned(),
            "ssl_cafile={ca}".to_owned(),
        ],
    )
}

#[test]
fn required_client_auth_refuses_a_client_without_a_certificate() -> Result<()> {
    let certs = Certs::make()?;
    let (broker, ssl) = start(&certs, &["--ssl-client-auth", "required"])?;
    let mut args: Vec<String> = ["-b", &ssl, "-L", "-m", "5"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    args.extend(kcat_ssl(&certs, false));
    let refused = kcat(&args.iter().map(String::as_str).collect::<Vec<_>>(), b"")?;
    ensure!(
        !refused.status.success(),
        "a client without a certificate got metadata: {}",
        String::from_utf8_lossy(&refused.stdout)
    );
    let accepted = kcat_metadata(&ssl, &kcat_ssl(&certs, true))?;
    ensure!(
        accepted["brokers"] == json!([{ "id": 0, "name": ssl }]),
        "{}",
        accepted["brokers"]
    );
    // The plaintext listener does not ask.
    let _ = kcat_metadata(&broker.bootstrap(), &[])?;
    Ok(())
}

#[test]
fn plaintext_and_garbage_on_the_tls_port_close_only_that_connection() -> Result<()> {
    let certs = Certs::make()?;
    let (mut broker, ssl) = start(&certs, &[])?;
    // A Kafka request where a ClientHello should be.
    let mut plain = common::connect_to(&ssl)?;
    plain.write_all(&common::frame_v1(18, 0, 1, &[]))?;
    common::finish_writing(&plain);
    ensure!(
        closes(&mut plain)?,
        "a plaintext client on the TLS port was not closed"
    );
    // Garbage that starts like a TLS record, then stops.
    let mut garbage = common::connect_to(&ssl)?;
    garbage.write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 0xde, 0xad, 0xbe, 0xef, 0x00])?;
    garbage.write_all(&[0xff; 512])?;
    ensure!(
        closes(&mut garbage)?,
        "garbage did not close the connection"
    );
    // Others are served on both listeners meanwhile.
    let tls = kcat_metadata(&ssl, &kcat_ssl(&certs, false))?;
    ensure!(
        tls["brokers"] == json!([{ "id": 0, "name": ssl }]),
        "{}",
        tls["brokers"]
    );
    common::assert_healthy(&mut broker)?;
    Ok(())
}

/// Reads until the broker closes the connection (a TLS alert may come first).
fn closes(stream: &mut std::net::TcpStream) -> Result<bool> {
    for _ in 0..4 {
        match common::reaction(stream, Duration::from_secs(5))? {
            Reaction::Closed => return Ok(true),
            Reaction::Answered(bytes) => {
                // A TLS alert record (content type 21), not a Kafka answer.
                ensure!(bytes.first() == Some(&21), "answered {bytes:?}");
            }
        }
    }
    Ok(false)
}
