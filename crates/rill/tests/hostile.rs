//! Hostile input over raw TCP, no client library: garbage, absurd and negative sizes, truncated
//! frames, unknown API keys and versions. The broker may answer (as Kafka would) or close the
//! connection, but it must do one of them promptly, and it must keep serving everyone else.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use common::{
    Broker, Client, Reaction, Rec, Result, api_versions_v0, assert_healthy, connect, consume,
    finish_writing, frame_v1, hex, noise, parse_api_versions_v0, produce, reaction, read_frame,
    run_py, sized,
};
use serde_json::json;

/// How long the broker gets to answer or close after hostile input.
const REACT: Duration = Duration::from_secs(5);

/// Kafka's UNSUPPORTED_VERSION.
const UNSUPPORTED_VERSION: i16 = 35;

/// Sends `bytes` on a fresh connection, optionally half-closes, and returns what the broker did.
fn send(broker: &Broker, bytes: &[u8], half_close: bool) -> Result<(TcpStream, Reaction)> {
    let mut stream = connect(broker)?;
    // The broker may close before it has read everything; that is a fine reaction.
    let _ = stream.write_all(bytes);
    if half_close {
        finish_writing(&stream);
    }
    let seen = reaction(&mut stream, REACT)?;
    Ok((stream, seen))
}

/// Sends `bytes`, half-closes, and requires that the broker end the connection (after any
/// answer it chose to send).
fn send_expect_end(broker: &Broker, bytes: &[u8]) -> Result<()> {
    let (mut stream, mut seen) = send(broker, bytes, true)?;
    for _ in 0..100 {
        match seen {
            Reaction::Closed => return Ok(()),
            Reaction::Answered(_) => seen = reaction(&mut stream, REACT)?,
        }
    }
    bail!(
        "the broker kept sending after {} hostile bytes and EOF",
        bytes.len()
    )
}

/// Sends only `prefix` (a size the broker must refuse) and requires that it close the
/// connection without waiting for the rest.
fn send_expect_close(broker: &Broker, prefix: &[u8]) -> Result<()> {
    let (_, seen) = send(broker, prefix, false)?;
    ensure!(
        seen == Reaction::Closed,
        "after size prefix {} the broker answered {seen:?} instead of closing",
        hex(prefix)
    );
    Ok(())
}

#[test]
fn garbage_bytes_are_refused_and_the_broker_keeps_serving() -> Result<()> {
    let mut broker = Broker::start()?;
    // HTTP: its "GET " reads as a 1.1 GB size.
    send_expect_end(&broker, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")?;
    assert_healthy(&mut broker).context("after an HTTP request")?;
    // TLS ClientHello start.
    send_expect_end(
        &broker,
        &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03],
    )?;
    assert_healthy(&mut broker).context("after a TLS hello")?;
    // A well-sized frame full of noise (api key, version and all).
    send_expect_end(&broker, &sized(&noise(64, 7)))?;
    assert_healthy(&mut broker).context("after a noise frame")?;
    // A zero-length frame: not even a header.
    send_expect_end(&broker, &[0, 0, 0, 0])?;
    assert_healthy(&mut broker).context("after a zero-length frame")?;
    // A header cut short inside a frame whose size is honest.
    send_expect_end(&broker, &sized(&[0x00, 0x12, 0x00]))?;
    assert_healthy(&mut broker).context("after a three-byte frame")?;
    // 64 KiB of noise, size prefix included.
    send_expect_end(&broker, &noise(65_536, 11))?;
    assert_healthy(&mut broker).context("after 64 KiB of noise")?;
    // A good request, then garbage on the same connection: the answer comes first.
    let mut stream = connect(&broker)?;
    let mut bytes = frame_v1(18, 0, 4242, &[]);
    bytes.extend_from_slice(&sized(&noise(32, 3)));
    stream.write_all(&bytes)?;
    finish_writing(&stream);
    let frame = read_frame(&mut stream).context("the good request before the garbage")?;
    let (id, error, _) = parse_api_versions_v0(&frame)?;
    ensure!(
        id == 4242 && error == 0,
        "answer {id}/{error} to the good request"
    );
    assert_healthy(&mut broker).context("after a good request followed by garbage")
}

#[test]
fn an_oversized_length_prefix_closes_the_connection_without_waiting() -> Result<()> {
    let mut broker = Broker::start()?;
    send_expect_close(&broker, &0x7fff_ffff_i32.to_be_bytes())?;
    assert_healthy(&mut broker).context("after a 2 GiB size")?;
    // Just over the 100 MiB default limit (socket.request.max.bytes).
    send_expect_close(&broker, &(100 * 1024 * 1024 + 1_i32).to_be_bytes())?;
    assert_healthy(&mut broker).context("after a 100 MiB + 1 size")
}

#[test]
fn a_negative_length_prefix_closes_the_connection() -> Result<()> {
    let mut broker = Broker::start()?;
    for size in [-1_i32, i32::MIN, -4] {
        send_expect_close(&broker, &size.to_be_bytes()).with_context(|| format!("size {size}"))?;
        assert_healthy(&mut broker).with_context(|| format!("after size {size}"))?;
    }
    Ok(())
}

#[test]
fn a_truncated_frame_then_close_leaves_the_broker_healthy() -> Result<()> {
    let mut broker = Broker::start()?;
    // 10 of 100 promised bytes, then EOF.
    let mut bytes = 100_i32.to_be_bytes().to_vec();
    let frame = frame_v1(18, 0, 1, &[]);
    bytes.extend_from_slice(frame.get(4..14).context("short frame")?);
    send_expect_end(&broker, &bytes)?;
    assert_healthy(&mut broker).context("after a truncated frame and EOF")?;
    // Half a size prefix, then a full close (not just a half-close).
    {
        let mut stream = connect(&broker)?;
        stream.write_all(&[0, 0])?;
    }
    assert_healthy(&mut broker).context("after half a size prefix")?;
    // Many connections dropped mid-frame at once.
    for i in 0..50_u8 {
        let mut stream = connect(&broker)?;
        let frame = frame_v1(3, 1, i32::from(i), &(-1_i32).to_be_bytes());
        stream.write_all(frame.get(..usize::from(i % 12) + 1).unwrap_or_default())?;
    }
    assert_healthy(&mut broker).context("after 50 connections dropped mid-frame")
}

#[test]
fn an_unknown_api_key_is_answered_or_closed() -> Result<()> {
    let mut broker = Broker::start()?;
    for (key, version) in [(999_i16, 0_i16), (-1, 0), (i16::MAX, 3)] {
        let (mut stream, seen) = send(&broker, &frame_v1(key, version, 777, &[]), false)?;
        if let Reaction::Answered(bytes) = seen {
            // Kafka closes here; a broker that answers must answer this request.
            let mut all = bytes;
            while all.len() < 8 {
                match reaction(&mut stream, REACT)? {
                    Reaction::Answered(more) => all.extend(more),
                    Reaction::Closed => break,
                }
            }
            let id = all
                .get(4..8)
                .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            ensure!(
                id == Some(777),
                "answer to api key {key} has correlation id {id:?}: {}",
                hex(&all)
            );
        }
        assert_healthy(&mut broker).with_context(|| format!("after api key {key}"))?;
    }
    Ok(())
}

#[test]
fn api_versions_with_an_unsupported_version_gets_a_v0_answer_with_unsupported_version() -> Result<()>
{
    let mut broker = Broker::start()?;
    let mut stream = connect(&broker)?;
    // Request header v2 (what a v3+ ApiVersions uses): client id, then an empty tag section;
    // the body as v3 lays it out: compact client software name and version, empty tags.
    let mut request = Vec::new();
    request.extend_from_slice(&18_i16.to_be_bytes());
    request.extend_from_slice(&99_i16.to_be_bytes());
    request.extend_from_slice(&31337_i32.to_be_bytes());
    request.extend_from_slice(&7_i16.to_be_bytes());
    request.extend_from_slice(b"hostile");
    request.push(0);
    request.extend_from_slice(&[5, b'r', b'i', b'l', b'l', 4, b'9', b'.', b'9', 0]);
    stream.write_all(&sized(&request))?;

    let frame = read_frame(&mut stream).context("reading the answer to ApiVersions v99")?;
    // v0 framing: correlation id, int16 error, int32 count, count × (key, min, max), no more.
    let (id, error, apis) = parse_api_versions_v0(&frame)
        .with_context(|| format!("parsing the v0 answer {}", hex(&frame)))?;
    ensure!(id == 31337, "correlation id {id}");
    ensure!(
        error == UNSUPPORTED_VERSION,
        "error code {error}, expected 35"
    );
    ensure!(!apis.is_empty(), "empty api list");
    let api_versions = apis.iter().find(|(key, _, _)| *key == 18);
    ensure!(
        api_versions.is_some_and(|(_, min, max)| *min == 0 && *max >= 3),
        "ApiVersions range in the answer: {api_versions:?} (all: {apis:?})"
    );
    for (key, min, max) in &apis {
        ensure!(0 <= *min && min <= max, "api {key} has range {min}..={max}");
    }

    // The Java client retries on the same connection with a version from the list.
    let again =
        api_versions_v0(&mut stream, 31338).context("ApiVersions v0 on the same connection")?;
    ensure!(
        again == apis,
        "the v0 list differs from the one sent with the error"
    );
    assert_healthy(&mut broker)
}

/// Everything above on one broker, then a real client still produces and consumes.
#[test]
fn after_every_hostile_input_real_clients_still_work() -> Result<()> {
    let mut broker = Broker::start()?;
    send_expect_end(&broker, b"GET / HTTP/1.1\r\n\r\n")?;
    send_expect_close(&broker, &0x7fff_ffff_i32.to_be_bytes())?;
    send_expect_close(&broker, &(-1_i32).to_be_bytes())?;
    send_expect_end(&broker, &100_i32.to_be_bytes())?;
    let _ = send(&broker, &frame_v1(999, 0, 1, &[]), true)?;
    let _ = send(&broker, &frame_v1(18, 99, 2, &[0, 0, 0]), true)?;
    assert_healthy(&mut broker)?;

    let md = run_py(
        "admin.py",
        &[broker.bootstrap(), "metadata".to_owned()],
        b"",
    )?;
    ensure!(
        md["brokers"] == json!({ "0": broker.bootstrap() }),
        "list_topics brokers {}",
        md["brokers"]
    );
    let topic = broker.topic("after-hostile");
    let records: Vec<Rec> = (0..20)
        .map(|i| Rec::kv(format!("k{i}"), format!("v{i}")))
        .collect();
    let _ = produce(&broker, Client::Confluent, &topic, &records, &[])?;
    let got = consume(&broker, Client::KafkaPython, &topic, 1, records.len())?;
    let values: Vec<Option<Vec<u8>>> = got.records.iter().map(|r| r.value.clone()).collect();
    let sent: Vec<Option<Vec<u8>>> = records.iter().map(|r| r.value.clone()).collect();
    ensure!(
        values == sent,
        "read back {} records, not the 20 sent in order",
        values.len()
    );
    Ok(())
}
