//! The MQTT front end (`rill serve --mqtt-listen`), driven by real MQTT clients (mosquitto_pub
//! and paho-mqtt, in MQTT 3.1.1 and 5.0) and by hand-built packets over raw TCP, with what
//! reaches Kafka read back by confluent-kafka (and Kafka records produced by confluent-kafka read
//! by MQTT subscribers).
//!
//! Covered: the publish mapping (first topic level = Kafka topic, key = MQTT topic name, value
//! = payload, MQTT 5 user properties and content type as headers, CreateTime stamped by the
//! broker) at QoS 0, 1 and 2; per-device order and murmur2 partitioning; subscriptions with `+`
//! and `#` filters fed from Kafka; QoS 2 exactly once across a DUP retransmit; no PUBACKed
//! message lost to kill -9; and hostile input (wildcards in a topic name, oversized and
//! malformed lengths, no CONNECT, unsupported protocol levels, silence, invalid Kafka topic
//! names), after each of which the broker keeps serving everyone else; keep-alive; DISCONNECT;
//! and ended connections giving their sockets back; users and ACLs; 10,000 idle connections;
//! MQTT 5 topic aliases; a persistent session's QoS 2 packet id across kill -9; MQTTS.
//!
//! `scripts/test` installs the clients: mosquitto-clients (apt) and paho-mqtt (in the venv).

mod common;

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use common::mqtt::{Delivered, Mqtt, Script, delivered, mosquitto_pub, now_ms};
use common::{
    Client, Consumed, Rec, Result, check_offsets, consume, create_topic, hex, ms, produce, show,
    wait_timeout,
};
use serde_json::Value;

/// How long the broker gets to answer or close after a packet.
const REACT: Duration = Duration::from_secs(5);

/// MQTT 5 reason codes the tests expect.
const MALFORMED_PACKET: u8 = 0x81;
const TOPIC_NAME_INVALID: u8 = 0x90;
const PACKET_TOO_LARGE: u8 = 0x95;
/// MQTT 3.1.1's CONNACK return code "unacceptable protocol version".
const UNACCEPTABLE_PROTOCOL_VERSION: u8 = 0x01;

// ---------------------------------------------------------------------------------------------
// Harness: a broker with an MQTT listener, client processes.

/// The text of a record's key or value (which these tests always make UTF-8).
fn text(bytes: Option<&[u8]>) -> Result<String> {
    let bytes = bytes.context("null where text was expected")?;
    String::from_utf8(bytes.to_vec()).context("not UTF-8")
}

/// A record's (key, value) as text, for comparisons and messages.
fn key_value(r: &Consumed) -> Result<(String, String)> {
    Ok((text(r.key.as_deref())?, text(r.value.as_deref())?))
}

/// Header (name, value) pairs as text.
fn headers(r: &Consumed) -> Result<Vec<(String, String)>> {
    r.headers
        .iter()
        .map(|(name, value)| Ok((name.clone(), text(value.as_deref())?)))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Raw MQTT packets.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V311,
    V5,
}

/// MQTT's variable byte integer.
fn varint(mut n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let digit = u8::try_from(n % 128).unwrap_or(0);
        n /= 128;
        if n > 0 {
            out.push(digit | 0x80);
        } else {
            out.push(digit);
            return out;
        }
    }
}

/// A packet: the first byte, the remaining length, the rest.
fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    out.extend(varint(body.len()));
    out.extend_from_slice(body);
    out
}

/// A UTF-8 string (or binary data) with its two-byte length.
fn mqtt_str(s: &[u8]) -> Vec<u8> {
    let len = u16::try_from(s.len()).unwrap_or(u16::MAX);
    let mut out = len.to_be_bytes().to_vec();
    out.extend_from_slice(s);
    out
}

/// CONNECT with a clean session, protocol name `name` and level `level`; with level 5 the
/// packet has MQTT 5's (empty) property lists.
fn connect_packet(name: &str, level: u8, client_id: &str, keep_alive: u16) -> Vec<u8> {
    let mut body = mqtt_str(name.as_bytes());
    body.push(level);
    body.push(0x02); // clean session / clean start
    body.extend_from_slice(&keep_alive.to_be_bytes());
    if level == 5 {
        body.push(0); // no properties
    }
    body.extend(mqtt_str(client_id.as_bytes()));
    packet(0x10, &body)
}

fn connect_for(version: Version, client_id: &str, keep_alive: u16) -> Vec<u8> {
    match version {
        Version::V311 => connect_packet("MQTT", 4, client_id, keep_alive),
        Version::V5 => connect_packet("MQTT", 5, client_id, keep_alive),
    }
}

/// PUBLISH with no properties.
fn publish_packet(
    version: Version,
    topic: &str,
    qos: u8,
    packet_id: u16,
    dup: bool,
    payload: &[u8],
) -> Vec<u8> {
    let mut body = mqtt_str(topic.as_bytes());
    if qos > 0 {
        body.extend_from_slice(&packet_id.to_be_bytes());
    }
    if version == Version::V5 {
        body.push(0);
    }
    body.extend_from_slice(payload);
    packet(0x30 | (u8::from(dup) << 3) | (qos << 1), &body)
}

/// One packet as read: the first byte and the rest after the remaining length.
#[derive(Debug)]
struct Packet {
    first: u8,
    body: Vec<u8>,
}

impl Packet {
    fn kind(&self) -> u8 {
        self.first >> 4
    }

    fn bytes(&self) -> String {
        let mut all = vec![self.first];
        all.extend(varint(self.body.len()));
        all.extend_from_slice(&self.body);
        if all.len() > 64 {
            format!(
                "{}.. ({} bytes)",
                hex(all.get(..64).unwrap_or(&all)),
                all.len()
            )
        } else {
            hex(&all)
        }
    }

    /// The packet identifier of an acknowledgement (PUBACK, PUBREC, PUBREL, PUBCOMP).
    fn packet_id(&self) -> Result<u16> {
        match self.body.get(..2) {
            Some(&[hi, lo]) => Ok(u16::from_be_bytes([hi, lo])),
            _ => bail!("packet {} has no packet identifier", self.bytes()),
        }
    }

    /// The reason code of an MQTT 5 acknowledgement (0, success, when omitted).
    fn ack_reason(&self) -> u8 {
        self.body.get(2).copied().unwrap_or(0)
    }
}

/// Reads one packet; `None` if the broker closed the connection (EOF or reset). Fails if
/// nothing arrives within `timeout`.
fn read_packet(stream: &mut TcpStream, timeout: Duration) -> Result<Option<Packet>> {
    stream.set_read_timeout(Some(timeout))?;
    let mut first = [0u8; 1];
    match stream.read(&mut first) {
        Ok(0) => return Ok(None),
        Ok(_) => {}
        Err(err) if err.kind() == ErrorKind::ConnectionReset => return Ok(None),
        Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            bail!("neither a packet nor a close within {timeout:?}")
        }
        Err(err) => return Err(err.into()),
    }
    let mut len = 0usize;
    let mut shift = 0;
    loop {
        let mut byte = [0u8; 1];
        stream
            .read_exact(&mut byte)
            .context("reading a remaining length")?;
        len |= usize::from(byte[0] & 0x7f) << shift;
        if byte[0] & 0x80 == 0 {
            break;
        }
        shift += 7;
        ensure!(shift < 28, "the broker sent a malformed remaining length");
    }
    ensure!(len < 1 << 20, "the broker sent a {len}-byte packet");
    let mut body = vec![0u8; len];
    stream
        .read_exact(&mut body)
        .with_context(|| format!("reading a packet of type {}", first[0] >> 4))?;
    Ok(Some(Packet {
        first: first[0],
        body,
    }))
}

/// Reads one packet, which must be there.
fn expect_packet(stream: &mut TcpStream, what: &str) -> Result<Packet> {
    read_packet(stream, REACT)
        .with_context(|| format!("waiting for {what}"))?
        .with_context(|| format!("the broker closed the connection instead of sending {what}"))
}

/// Requires that the broker close the connection within `timeout`, sending nothing more.
fn expect_close(stream: &mut TcpStream, timeout: Duration, after: &str) -> Result<()> {
    match read_packet(stream, timeout).with_context(|| format!("after {after}"))? {
        None => Ok(()),
        Some(p) => bail!(
            "after {after} the broker sent {} instead of closing",
            p.bytes()
        ),
    }
}

/// Requires an MQTT 5 DISCONNECT with `reason`, then the close.
fn expect_disconnect(stream: &mut TcpStream, reason: u8, after: &str) -> Result<()> {
    let p = expect_packet(stream, &format!("DISCONNECT {reason:#04x} after {after}"))?;
    ensure!(
        p.first == 0xe0 && p.body.first() == Some(&reason),
        "after {after} expected DISCONNECT with reason {reason:#04x} (e0 .. {reason:02x}), got {}",
        p.bytes()
    );
    expect_close(stream, REACT, &format!("DISCONNECT {reason:#04x}"))
}

fn tcp(port: u16) -> Result<TcpStream> {
    let stream = TcpStream::connect(("127.0.0.1", port))
        .with_context(|| format!("connecting to the MQTT listener on port {port}"))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Opens a connection and completes CONNECT/CONNACK (success required).
fn session(port: u16, version: Version, client_id: &str, keep_alive: u16) -> Result<TcpStream> {
    let mut stream = tcp(port)?;
    stream.write_all(&connect_for(version, client_id, keep_alive))?;
    let p = expect_packet(&mut stream, "CONNACK")?;
    ensure!(
        p.first == 0x20 && p.body.get(1) == Some(&0),
        "{version:?} CONNECT for {client_id}: expected a successful CONNACK, got {}",
        p.bytes()
    );
    if version == Version::V311 {
        ensure!(p.body.len() == 2, "3.1.1 CONNACK {}", p.bytes());
    }
    Ok(stream)
}

/// Sends PINGREQ and requires PINGRESP.
fn ping(stream: &mut TcpStream, who: &str) -> Result<()> {
    stream
        .write_all(&[0xc0, 0x00])
        .with_context(|| format!("PINGREQ on {who}"))?;
    let p = expect_packet(stream, &format!("PINGRESP on {who}"))?;
    ensure!(
        p.first == 0xd0 && p.body.is_empty(),
        "PINGREQ on {who}: expected PINGRESP (d0 00), got {}",
        p.bytes()
    );
    Ok(())
}

/// Requires an acknowledgement of type `kind` (4 PUBACK, 5 PUBREC, 7 PUBCOMP) for `id`, with
/// a success reason code (below 0x80) in MQTT 5.
fn expect_ack(stream: &mut TcpStream, kind: u8, id: u16, what: &str) -> Result<Packet> {
    let name = match kind {
        4 => "PUBACK",
        5 => "PUBREC",
        7 => "PUBCOMP",
        _ => "ack",
    };
    let p = expect_packet(stream, &format!("{name} {id} for {what}"))?;
    ensure!(
        p.kind() == kind && p.first & 0x0f == 0 && p.packet_id()? == id,
        "{what}: expected {name} for packet id {id}, got {}",
        p.bytes()
    );
    ensure!(
        p.ack_reason() < 0x80,
        "{what}: {name} {id} carries failure reason {:#04x}: {}",
        p.ack_reason(),
        p.bytes()
    );
    Ok(p)
}

// ---------------------------------------------------------------------------------------------
// 1. mosquitto_pub -> Kafka

/// mosquitto_pub at QoS 0, 1 and 2, MQTT 3.1.1 and 5.0: each message becomes one record of the
/// Kafka topic named by the first topic level, key = MQTT topic, value = payload, in publish
/// order, with MQTT 5's user property and content type as headers and the broker's CreateTime.
#[test]
fn mosquitto_pub_at_every_qos_and_version_lands_in_kafka() -> Result<()> {
    let mqtt = Mqtt::start(&[])?;
    let mut expected: Vec<(String, String, Version)> = Vec::new();
    let mut room = 0;
    let started = now_ms()?;
    for version in [Version::V311, Version::V5] {
        for qos in [0u8, 1, 2] {
            room += 1;
            let topic = format!("sensors/room{room}/temp");
            let tag = match version {
                Version::V311 => "v311",
                Version::V5 => "v5",
            };
            let lines: Vec<String> = (0..3).map(|i| format!("{tag}-q{qos}-{i}")).collect();
            let qos_arg = qos.to_string();
            let mut args = vec![
                "-V",
                if version == Version::V5 {
                    "mqttv5"
                } else {
                    "mqttv311"
                },
                "-q",
                &qos_arg,
                "-t",
                &topic,
                "-l",
            ];
            if version == Version::V5 {
                args.extend([
                    "-D",
                    "publish",
                    "user-property",
                    "a",
                    "b",
                    "-D",
                    "publish",
                    "content-type",
                    "text/plain",
                ]);
            }
            let input = lines.iter().map(|l| format!("{l}\n")).collect::<String>();
            mosquitto_pub(mqtt.port, &args, input.as_bytes())?;
            for line in lines {
                expected.push((topic.clone(), line, version));
            }
            // A QoS 0 publisher does not wait for the append: let it land before the next
            // publisher connects, so that the log order is the publish order.
            let _ = consume(
                &mqtt.broker,
                Client::Confluent,
                "sensors",
                1,
                expected.len(),
            )?;
        }
    }
    let finished = now_ms()?;

    let got = consume(
        &mqtt.broker,
        Client::Confluent,
        "sensors",
        1,
        expected.len(),
    )?;
    check_offsets(&got)?;
    let seen: Vec<(String, String)> = got.records.iter().map(key_value).collect::<Result<_>>()?;
    let want: Vec<(String, String)> = expected
        .iter()
        .map(|(k, v, _)| (k.clone(), v.clone()))
        .collect();
    ensure!(
        seen == want,
        "Kafka topic `sensors` holds (key, value)\n{seen:?}\nexpected\n{want:?}"
    );
    for (r, (key, _, version)) in got.records.iter().zip(&expected) {
        let hs = headers(r)?;
        match version {
            Version::V311 => ensure!(
                hs.is_empty(),
                "3.1.1 record {key}@{} has headers {hs:?}",
                r.offset
            ),
            Version::V5 => {
                let user: Vec<_> = hs.iter().filter(|(n, _)| n != "content-type").collect();
                let content: Vec<_> = hs.iter().filter(|(n, _)| n == "content-type").collect();
                ensure!(
                    user == [&("a".to_owned(), "b".to_owned())]
                        && content == [&("content-type".to_owned(), "text/plain".to_owned())],
                    "5.0 record {key}@{}: headers {hs:?}, expected a=b and content-type=text/plain",
                    r.offset
                );
            }
        }
        ensure!(
            r.timestamp_type.as_deref() == Some("create")
                && (started - 50..=finished + 50).contains(&r.timestamp),
            "record {key}@{}: timestamp {} ({:?}), expected the broker's CreateTime within \
             [{started}, {finished}]",
            r.offset,
            r.timestamp,
            r.timestamp_type
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 2. paho publishers: per-device order, one partition per device

/// Two devices per protocol version (paho-mqtt 3.1.1 and 5.0, publishing at the same time)
/// send 200 numbered QoS 1 messages each with 20 in flight, to a Kafka topic created with 3
/// partitions: every message arrives once, each device's in order and all in the partition
/// murmur2(key) picks, as Kafka's default partitioner would.
#[test]
fn paho_publishers_keep_each_device_in_order_in_its_murmur2_partition() -> Result<()> {
    const N: usize = 200;
    let mqtt = Mqtt::start(&[])?;
    create_topic(&mqtt.broker, "plant", 3, &[])?;
    let scratch = tempfile::tempdir()?;
    let runs = [
        ("3.1.1", ["plant/line1/press", "plant/line2/drill"]),
        ("5", ["plant/line3/lathe", "plant/line4/mill"]),
    ];
    let mut scripts = Vec::new();
    for (version, devices) in &runs {
        let mut args = vec![
            "127.0.0.1".to_owned(),
            mqtt.port_arg(),
            "--version".to_owned(),
            (*version).to_owned(),
            "--count".to_owned(),
            N.to_string(),
            "--qos".to_owned(),
            "1".to_owned(),
            "--in-flight".to_owned(),
            "20".to_owned(),
        ];
        for device in devices {
            args.extend(["--topic".to_owned(), (*device).to_owned()]);
        }
        scripts.push(Script::spawn(
            "mqtt_publish.py",
            &args,
            scratch.path(),
            &format!("publish-{version}"),
        )?);
    }
    for script in scripts {
        let out = script.finish(Duration::from_secs(60))?;
        let acked = out.get("acked").and_then(Value::as_u64);
        ensure!(
            acked == Some(2 * N as u64),
            "publisher acknowledged {acked:?} of {}: {out}",
            2 * N
        );
    }

    let devices: Vec<&str> = runs.iter().flat_map(|(_, d)| d.iter().copied()).collect();
    let got = consume(
        &mqtt.broker,
        Client::Confluent,
        "plant",
        3,
        devices.len() * N,
    )?;
    check_offsets(&got)?;
    ensure!(
        got.records.len() == devices.len() * N,
        "Kafka topic `plant` holds {} records, expected {}",
        got.records.len(),
        devices.len() * N
    );
    let mut by_device: BTreeMap<String, Vec<(i32, String)>> = BTreeMap::new();
    for r in &got.records {
        let (key, value) = key_value(r)?;
        by_device.entry(key).or_default().push((r.partition, value));
    }
    ensure!(
        by_device.keys().map(String::as_str).eq({
            let mut sorted = devices.clone();
            sorted.sort_unstable();
            sorted
        }),
        "record keys {:?}, expected the device topics {devices:?}",
        by_device.keys().collect::<Vec<_>>()
    );
    for device in &devices {
        let records = by_device.get(*device).map(Vec::as_slice).unwrap_or(&[]);
        let want_partition = rill_record::partition_for_key(device.as_bytes(), 3);
        let partitions: Vec<i32> = records.iter().map(|(p, _)| *p).collect();
        ensure!(
            partitions.iter().all(|p| *p == want_partition),
            "{device}: records in partitions {:?}, expected all in murmur2 partition \
             {want_partition}",
            partitions.iter().collect::<std::collections::BTreeSet<_>>()
        );
        let values: Vec<&str> = records.iter().map(|(_, v)| v.as_str()).collect();
        let want: Vec<String> = (0..N).map(|n| format!("{device}#{n}")).collect();
        ensure!(
            values == want,
            "{device}: {} records, in order {:?}.., expected {N} in sequence",
            values.len(),
            values.iter().take(10).collect::<Vec<_>>()
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 3. Kafka producer -> MQTT subscribers

/// Subscribers on `sensors/+/temp` (paho 5.0, QoS 1), `sensors/#` (paho 3.1.1 at QoS 1, paho
/// 5.0 at QoS 0) and `#` (paho 5.0, QoS 1, which also covers the topic `meters`) get exactly
/// the Kafka records produced after their SUBACK whose MQTT topic matches, in order, at the QoS
/// they asked for; a record without a key, or whose key is not an MQTT topic of its Kafka
/// topic, arrives under the Kafka topic's name; headers come back to MQTT 5 subscribers as
/// user properties and `content-type` as the content type.
#[test]
fn kafka_records_reach_matching_mqtt_subscribers() -> Result<()> {
    let mqtt = Mqtt::start(&[])?;
    create_topic(&mqtt.broker, "sensors", 1, &[])?;
    create_topic(&mqtt.broker, "meters", 1, &[])?;
    let scratch = tempfile::tempdir()?;
    let subscribers = [
        ("plus-v5-q1", "5", "sensors/+/temp", 1u64, 2usize),
        ("hash-v311-q1", "3.1.1", "sensors/#", 1, 5),
        ("hash-v5-q0", "5", "sensors/#", 0, 5),
        ("all-v5-q1", "5", "#", 1, 7),
    ];
    let mut running = Vec::new();
    for (tag, version, filter, qos, count) in subscribers {
        let ready = scratch.path().join(format!("{tag}.ready"));
        let args = vec![
            "127.0.0.1".to_owned(),
            mqtt.port_arg(),
            "--version".to_owned(),
            version.to_owned(),
            "--filter".to_owned(),
            filter.to_owned(),
            "--qos".to_owned(),
            qos.to_string(),
            "--count".to_owned(),
            count.to_string(),
            "--linger".to_owned(),
            "1.5".to_owned(),
            "--ready".to_owned(),
            ready.to_string_lossy().into_owned(),
        ];
        let script = Script::spawn("mqtt_subscribe.py", &args, scratch.path(), tag)?;
        running.push((script, ready, tag, version, qos));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    for (script, ready, tag, _, _) in &mut running {
        while !ready.exists() {
            script.check_running()?;
            ensure!(
                Instant::now() < deadline,
                "subscriber {tag} got no SUBACK within 20 s:\n{}",
                script.stderr_text()
            );
            thread::sleep(ms(20));
        }
    }

    let mut with_headers = Rec::kv("sensors/a/temp", "21.5");
    with_headers.headers = vec![
        ("unit".to_owned(), Some(b"C".to_vec())),
        ("content-type".to_owned(), Some(b"text/plain".to_vec())),
    ];
    let no_key = Rec {
        value: Some(b"no-key".to_vec()),
        ..Rec::default()
    };
    let records = [
        with_headers,
        Rec::kv("sensors/b/humidity", "40"),
        no_key,
        Rec::kv("device-9", "foreign-key"),
        Rec::kv("sensors/c/temp", "19.0"),
    ];
    let meters = [
        Rec::kv("meters/m1/kwh", "7"),
        Rec {
            value: Some(b"meters-no-key".to_vec()),
            ..Rec::default()
        },
    ];
    // One at a time, so that the log order is the list order.
    for (topic, record) in records
        .iter()
        .map(|r| ("sensors", r))
        .chain(meters.iter().map(|r| ("meters", r)))
    {
        let _ = produce(
            &mqtt.broker,
            Client::Confluent,
            topic,
            std::slice::from_ref(record),
            &[],
        )?;
    }

    let unit = vec![("unit".to_owned(), "C".to_owned())];
    for (script, _, tag, version, qos) in running {
        let out = script.finish(Duration::from_secs(40))?;
        let granted = out.get("granted").cloned().unwrap_or(Value::Null);
        ensure!(
            granted == serde_json::json!([qos]),
            "subscriber {tag} asked for QoS {qos}, granted {granted}"
        );
        let v5 = version == "5";
        let d = |topic: &str, payload: &str, props: bool| Delivered {
            topic: topic.to_owned(),
            payload: payload.to_owned(),
            qos,
            user_properties: if props && v5 {
                unit.clone()
            } else {
                Vec::new()
            },
            content_type: (props && v5).then(|| "text/plain".to_owned()),
        };
        let sensors = vec![
            d("sensors/a/temp", "21.5", true),
            d("sensors/b/humidity", "40", false),
            d("sensors", "no-key", false),
            d("sensors", "foreign-key", false),
            d("sensors/c/temp", "19.0", false),
        ];
        let mut got = delivered(&out)?;
        let want = if tag.starts_with("plus") {
            vec![
                d("sensors/a/temp", "21.5", true),
                d("sensors/c/temp", "19.0", false),
            ]
        } else if tag.starts_with("all") {
            // `#` covers every Kafka topic; the order is defined within each topic only.
            let (meters_got, sensors_got): (Vec<_>, Vec<_>) = got
                .into_iter()
                .partition(|m| m.topic.split('/').next() == Some("meters"));
            let meters_want = vec![
                d("meters/m1/kwh", "7", false),
                d("meters", "meters-no-key", false),
            ];
            ensure!(
                meters_got == meters_want,
                "subscriber {tag} received from `meters`\n{meters_got:#?}\nexpected\n{meters_want:#?}"
            );
            got = sensors_got;
            sensors
        } else {
            sensors
        };
        ensure!(
            got == want,
            "subscriber {tag} received\n{got:#?}\nexpected\n{want:#?}"
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 4. QoS 2 exactly once across a retransmit

/// Over raw TCP, in MQTT 3.1.1 and 5.0: a QoS 2 PUBLISH with packet id 7, the same PUBLISH
/// again with DUP set before the PUBREL, then PUBREL: PUBREC for each PUBLISH, PUBCOMP for the
/// PUBREL, and the record is in Kafka once. Packet id 7 is then free again: a new PUBLISH with
/// it is a new message.
#[test]
fn qos2_retransmit_before_pubrel_is_written_once() -> Result<()> {
    let mqtt = Mqtt::start(&[])?;
    let mut want = Vec::new();
    for (version, device) in [(Version::V311, "dev311"), (Version::V5, "dev5")] {
        let topic = format!("sensors/{device}/qos2");
        let mut s = session(mqtt.port, version, &format!("qos2-{device}"), 0)?;
        let what = format!("{version:?} QoS 2 PUBLISH id 7");
        s.write_all(&publish_packet(version, &topic, 2, 7, false, b"once"))?;
        let _ = expect_ack(&mut s, 5, 7, &what)?;
        s.write_all(&publish_packet(version, &topic, 2, 7, true, b"once"))?;
        let _ = expect_ack(&mut s, 5, 7, &format!("{what} retransmitted with DUP"))?;
        s.write_all(&[0x62, 0x02, 0x00, 0x07])?;
        let _ = expect_ack(&mut s, 7, 7, &format!("PUBREL 7 ({version:?})"))?;
        want.push((topic.clone(), "once".to_owned()));

        s.write_all(&publish_packet(version, &topic, 2, 7, false, b"again"))?;
        let _ = expect_ack(&mut s, 5, 7, &format!("{what} reused after PUBCOMP"))?;
        s.write_all(&[0x62, 0x02, 0x00, 0x07])?;
        let _ = expect_ack(&mut s, 7, 7, &format!("second PUBREL 7 ({version:?})"))?;
        want.push((topic, "again".to_owned()));
        ping(&mut s, &format!("the {version:?} QoS 2 session"))?;
    }
    let got = consume(&mqtt.broker, Client::Confluent, "sensors", 1, want.len())?;
    check_offsets(&got)?;
    let seen: Vec<(String, String)> = got.records.iter().map(key_value).collect::<Result<_>>()?;
    ensure!(
        seen == want,
        "Kafka topic `sensors` holds\n{seen:?}\nexpected each QoS 2 message once:\n{want:?}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 5. kill -9 while publishing at QoS 1

/// The sequence numbers mqtt_crash_publisher.py saw PUBACKed (whole lines only: the last one
/// may be torn).
fn read_acked(path: &Path) -> Result<Vec<u64>> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .map(|l| {
            l.trim()
                .parse()
                .with_context(|| format!("bad ack line {l:?}"))
        })
        .collect()
}

/// A paho QoS 1 publisher (MQTT 5) publishes numbered messages continuously; the broker is
/// killed with SIGKILL mid-stream and restarted: every PUBACKed message is in Kafka, and the
/// log holds the messages in publish order with no gap or duplicate (0, 1, 2, ... up to at
/// least the last PUBACKed one).
#[test]
fn kill_9_while_publishing_at_qos1_loses_no_acknowledged_message() -> Result<()> {
    let mut mqtt = Mqtt::start(&[])?;
    let scratch = tempfile::tempdir()?;
    let mut publisher = Script::spawn(
        "mqtt_crash_publisher.py",
        &[
            "127.0.0.1".to_owned(),
            mqtt.port_arg(),
            "crash/dev1".to_owned(),
            "--version".to_owned(),
            "5".to_owned(),
            "--seconds".to_owned(),
            "30".to_owned(),
        ],
        scratch.path(),
        "crash",
    )?;
    let started = Instant::now();
    loop {
        thread::sleep(ms(50));
        let acked = read_acked(&publisher.stdout)?.len();
        if started.elapsed() >= Duration::from_secs(1) && acked >= 100 {
            break;
        }
        publisher.check_running()?;
        ensure!(
            started.elapsed() < Duration::from_secs(20),
            "only {acked} messages PUBACKed after 20 s:\n{}",
            publisher.stderr_text()
        );
    }
    mqtt.broker.kill9()?;
    // No PUBACK can arrive once the broker is dead; the publisher stops on the lost connection.
    if wait_timeout(&mut publisher.child, Duration::from_secs(5))?.is_none() {
        let _ = publisher.child.kill();
        let _ = publisher.child.wait();
    }
    let acked = read_acked(&publisher.stdout)?;
    let last = acked.iter().copied().max().context("no PUBACK at all")?;
    eprintln!(
        "{} messages PUBACKed before kill -9, the last {last}",
        acked.len()
    );

    mqtt.broker.restart()?;
    let got = consume(&mqtt.broker, Client::Confluent, "crash", 1, acked.len())?;
    check_offsets(&got)?;
    let mut values = Vec::new();
    for r in &got.records {
        let (key, value) = key_value(r)?;
        ensure!(
            key == "crash/dev1",
            "record at offset {} has key {key:?}",
            r.offset
        );
        values.push(
            value
                .parse::<u64>()
                .with_context(|| format!("record at offset {} holds {value:?}", r.offset))?,
        );
    }
    let stored: std::collections::HashSet<u64> = values.iter().copied().collect();
    let lost: Vec<u64> = acked
        .iter()
        .copied()
        .filter(|n| !stored.contains(n))
        .collect();
    ensure!(
        lost.is_empty(),
        "{} of {} PUBACKed messages missing after kill -9, e.g. {:?}",
        lost.len(),
        acked.len(),
        lost.iter().take(10).collect::<Vec<_>>()
    );
    let in_order = values
        .iter()
        .enumerate()
        .all(|(i, v)| u64::try_from(i).is_ok_and(|i| i == *v));
    ensure!(
        in_order,
        "the log holds {} messages not in sequence 0, 1, 2, ..: first {:?}",
        values.len(),
        values.iter().take(20).collect::<Vec<_>>()
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 6. Hostile input

/// Each hostile connection gets the answer the MQTT front end promises, then is closed; a
/// well-behaved session opened first keeps being served throughout (PINGREQ after each case),
/// and a mosquitto_pub QoS 1 publish afterwards reaches Kafka.
#[test]
fn hostile_mqtt_input_is_answered_and_closed_and_others_keep_being_served() -> Result<()> {
    let mqtt = Mqtt::start(&["--mqtt-connect-timeout-ms", "1000"])?;
    let port = mqtt.port;
    let mut bystander = session(port, Version::V5, "bystander", 0)?;

    // A 5.0 PUBLISH to a topic name with a wildcard: DISCONNECT 0x90.
    let mut s = session(port, Version::V5, "wildcard", 0)?;
    s.write_all(&publish_packet(Version::V5, "a/+", 0, 0, false, b"x"))?;
    expect_disconnect(&mut s, TOPIC_NAME_INVALID, "a 5.0 PUBLISH to a/+")?;
    ping(&mut bystander, "the bystander after a/+")?;

    // The same in 3.1.1 (QoS 1 to a/#): closed without a PUBACK.
    let mut s = session(port, Version::V311, "wildcard311", 0)?;
    s.write_all(&publish_packet(Version::V311, "a/#", 1, 1, false, b"x"))?;
    expect_close(&mut s, REACT, "a 3.1.1 PUBLISH to a/#")?;
    ping(&mut bystander, "the bystander after a/#")?;

    // A fixed header announcing 200 MiB: DISCONNECT 0x95 at once, without waiting for (or
    // buffering) the body, none of which is ever sent.
    let mut s = session(port, Version::V5, "huge", 0)?;
    let huge = [0x30, 0x80, 0x80, 0x80, 0x64];
    ensure!(
        huge[1..] == varint(200 << 20)[..],
        "200 MiB is not 80 80 80 64"
    );
    s.write_all(&huge)?;
    expect_disconnect(&mut s, PACKET_TOO_LARGE, "a PUBLISH header of 200 MiB")?;
    ping(&mut bystander, "the bystander after 200 MiB")?;

    // The same in 3.1.1: closed.
    let mut s = session(port, Version::V311, "huge311", 0)?;
    s.write_all(&huge)?;
    expect_close(&mut s, REACT, "a 3.1.1 PUBLISH header of 200 MiB")?;

    // A remaining length of ff ff ff ff (a fifth byte announced): malformed.
    let mut s = session(port, Version::V5, "varint", 0)?;
    s.write_all(&[0x30, 0xff, 0xff, 0xff, 0xff])?;
    expect_disconnect(
        &mut s,
        MALFORMED_PACKET,
        "remaining length ff ff ff ff (5.0)",
    )?;
    let mut s = session(port, Version::V311, "varint311", 0)?;
    s.write_all(&[0x30, 0xff, 0xff, 0xff, 0xff])?;
    expect_close(&mut s, REACT, "remaining length ff ff ff ff (3.1.1)")?;
    ping(&mut bystander, "the bystander after ff ff ff ff")?;

    // PUBLISH before any CONNECT: closed without an answer.
    let mut s = tcp(port)?;
    s.write_all(&publish_packet(
        Version::V311,
        "sensors/x",
        0,
        0,
        false,
        b"x",
    ))?;
    expect_close(&mut s, REACT, "a PUBLISH before CONNECT")?;

    // CONNECT with protocol level 9: CONNACK "unacceptable protocol version", then close.
    // The CONNACK of a level the broker does not speak is framed as 3.1.1's (20 02 00 01); a
    // 5.0-framed one with reason 0x84 would do as well, but this is what Rill sends.
    let mut s = tcp(port)?;
    s.write_all(&connect_packet("MQTT", 9, "level9", 0))?;
    let p = expect_packet(&mut s, "CONNACK for protocol level 9")?;
    ensure!(
        p.first == 0x20 && p.body == [0x00, UNACCEPTABLE_PROTOCOL_VERSION],
        "CONNECT level 9: expected CONNACK 20 02 00 01, got {}",
        p.bytes()
    );
    expect_close(&mut s, REACT, "the CONNACK refusing level 9")?;

    // CONNECT "MQIsdp" level 3 (MQTT 3.1) is not supported: 3.1.1's return code 0x01.
    let mut s = tcp(port)?;
    s.write_all(&connect_packet("MQIsdp", 3, "mqtt31", 0))?;
    let p = expect_packet(&mut s, "CONNACK for MQIsdp level 3")?;
    ensure!(
        p.first == 0x20 && p.body == [0x00, UNACCEPTABLE_PROTOCOL_VERSION],
        "CONNECT MQIsdp level 3: expected CONNACK 20 02 00 01, got {}",
        p.bytes()
    );
    expect_close(&mut s, REACT, "the CONNACK refusing MQIsdp")?;
    ping(&mut bystander, "the bystander after bad CONNECTs")?;

    // A connection that sends nothing: closed after the 1 s connect timeout.
    let mut s = tcp(port)?;
    let opened = Instant::now();
    expect_close(
        &mut s,
        Duration::from_secs(3),
        "1 s of silence before CONNECT",
    )?;
    let waited = opened.elapsed();
    ensure!(
        waited >= ms(900),
        "a silent connection was closed after {waited:?}, before the 1 s connect timeout"
    );

    // A first level that is not a valid Kafka topic name. 3.1.1: closed, no PUBACK.
    let mut s = session(port, Version::V311, "badname311", 0)?;
    s.write_all(&publish_packet(
        Version::V311,
        "bad$name/x",
        1,
        3,
        false,
        b"x",
    ))?;
    expect_close(&mut s, REACT, "a 3.1.1 QoS 1 PUBLISH to bad$name/x")?;
    // 5.0: PUBACK with reason 0x90, and the session goes on.
    let mut s = session(port, Version::V5, "badname5", 0)?;
    for (id, topic) in [(3u16, "bad$name/x"), (4, "/leading/slash")] {
        s.write_all(&publish_packet(Version::V5, topic, 1, id, false, b"x"))?;
        let p = expect_packet(&mut s, &format!("PUBACK {id} for {topic}"))?;
        ensure!(
            p.first == 0x40 && p.packet_id()? == id && p.ack_reason() == TOPIC_NAME_INVALID,
            "5.0 QoS 1 PUBLISH to {topic}: expected PUBACK {id} with reason 0x90, got {}",
            p.bytes()
        );
    }
    ping(&mut s, "the 5.0 session after invalid topic names")?;
    drop(s);

    ping(&mut bystander, "the bystander at the end")?;
    mosquitto_pub(
        port,
        &[
            "-V",
            "mqttv311",
            "-q",
            "1",
            "-t",
            "sensors/after/hostile",
            "-m",
            "still-serving",
        ],
        b"",
    )?;
    let got = consume(&mqtt.broker, Client::Confluent, "sensors", 1, 1)?;
    check_offsets(&got)?;
    let seen: Vec<(String, String)> = got.records.iter().map(key_value).collect::<Result<_>>()?;
    ensure!(
        seen == [(
            "sensors/after/hostile".to_owned(),
            "still-serving".to_owned()
        )],
        "after the hostile connections, Kafka topic `sensors` holds {seen:?}"
    );
    Ok(())
}

/// DISCONNECT (3.1.1; 5.0 both with the reason code omitted and with 0x00 normal
/// disconnection) ends the session cleanly: the broker closes the connection, sending nothing.
#[test]
fn disconnect_closes_the_connection() -> Result<()> {
    let mqtt = Mqtt::start(&[])?;
    let cases: [(Version, &[u8]); 3] = [
        (Version::V311, &[0xe0, 0x00]),
        (Version::V5, &[0xe0, 0x00]),
        (Version::V5, &[0xe0, 0x02, 0x00, 0x00]),
    ];
    for (i, (version, disconnect)) in cases.into_iter().enumerate() {
        let mut s = session(mqtt.port, version, &format!("disconnect-{i}"), 0)?;
        ping(&mut s, &format!("{version:?} session {i}"))?;
        s.write_all(disconnect)?;
        expect_close(
            &mut s,
            REACT,
            &format!(
                "{version:?} DISCONNECT {} (the client keeps its end open)",
                hex(disconnect)
            ),
        )?;
    }
    Ok(())
}

/// Connections that end (the client closing after DISCONNECT, or just closing) give their
/// socket back: after 50 of them the broker holds no more file descriptors than before.
#[test]
fn ended_connections_release_their_sockets() -> Result<()> {
    let mqtt = Mqtt::start(&[])?;
    let mut warm_up = session(mqtt.port, Version::V5, "warm-up", 0)?;
    ping(&mut warm_up, "the warm-up session")?;
    drop(warm_up);
    thread::sleep(ms(500));
    let before = mqtt.broker.open_fds()?;
    for i in 0..50 {
        let version = if i % 2 == 0 {
            Version::V311
        } else {
            Version::V5
        };
        let mut s = session(mqtt.port, version, &format!("churn-{i}"), 0)?;
        ping(&mut s, &format!("churn session {i}"))?;
        if i % 5 == 0 {
            s.write_all(&[0xe0, 0x00])?;
        }
        drop(s);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = mqtt.broker.open_fds()?;
        if now <= before + 5 {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "the broker held {before} file descriptors before 50 MQTT connections came and \
             went, and still holds {now} 5 s after they all closed"
        );
        thread::sleep(ms(100));
    }
}

/// Keep-alive: a session that sends PINGREQ within its keep-alive (1 s) stays open past it; once
/// it falls silent the broker closes it after one and a half keep-alive periods.
#[test]
fn keep_alive_is_enforced_at_one_and_a_half_times() -> Result<()> {
    let mqtt = Mqtt::start(&[])?;
    for version in [Version::V311, Version::V5] {
        let who = format!("the {version:?} session with keep-alive 1 s");
        let mut s = session(mqtt.port, version, &format!("keepalive-{version:?}"), 1)?;
        for _ in 0..6 {
            thread::sleep(ms(500));
            ping(&mut s, &who)?;
        }
        let silent = Instant::now();
        let after = format!("silence on {who}");
        match read_packet(&mut s, Duration::from_secs(4)).with_context(|| after.clone())? {
            None => {}
            // MQTT 5 lets the server say why: 0x8D, keep alive timeout.
            Some(p)
                if version == Version::V5 && p.first == 0xe0 && p.body.first() == Some(&0x8d) =>
            {
                expect_close(&mut s, REACT, "DISCONNECT 0x8d")?;
            }
            Some(p) => bail!(
                "after {after} the broker sent {} instead of closing",
                p.bytes()
            ),
        }
        let waited = silent.elapsed();
        ensure!(
            waited >= ms(1000),
            "{who} was closed {waited:?} after its last PINGREQ, before 1.5 keep-alives"
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Users and ACLs

/// A CONNECT with a user name and password.
fn connect_as(version: Version, client_id: &str, user: &str, password: &str) -> Vec<u8> {
    let mut body = mqtt_str(b"MQTT");
    body.push(if version == Version::V5 { 5 } else { 4 });
    // User name, password, clean session/start; keep-alive 60 s.
    body.extend_from_slice(&[0xc2, 0, 60]);
    if version == Version::V5 {
        body.push(0);
    }
    body.extend(mqtt_str(client_id.as_bytes()));
    body.extend(mqtt_str(user.as_bytes()));
    body.extend(mqtt_str(password.as_bytes()));
    packet(0x10, &body)
}

/// With users on the broker (`--bootstrap-user`), a client without a user name and password,
/// or with a wrong password, gets CONNACK "bad user name or password" (3.1.1: 0x04, 5.0: 0x86)
/// and is closed; the right password connects. With the authorizer on, a user without an ACL
/// gets PUBACK 0x87 (not authorized) and nothing is written; a super user publishes.
#[test]
fn users_and_acls_guard_the_mqtt_listener() -> Result<()> {
    let mqtt = Mqtt::start(&[
        "--bootstrap-user",
        "alice:alice-secret",
        "--authorizer-class-name",
        "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "--super-users",
        "User:ANONYMOUS;User:root",
    ])?;
    // Users come from the metadata log: wait until root's credentials are there too.
    let (_, _) = common::rill_ok(
        &mqtt.broker.bootstrap(),
        &["user", "add", "root", "--password", "root-secret"],
        b"",
    )?;
    for version in [Version::V311, Version::V5] {
        let refused = if version == Version::V5 { 0x86 } else { 0x04 };
        for (what, connect) in [
            ("no credentials", connect_for(version, "anon", 30)),
            (
                "a wrong password",
                connect_as(version, "bad", "alice", "nope"),
            ),
            (
                "an unknown user",
                connect_as(version, "who", "mallory", "x"),
            ),
        ] {
            let mut stream = tcp(mqtt.port)?;
            stream.write_all(&connect)?;
            let p = expect_packet(&mut stream, &format!("CONNACK for {what}"))?;
            ensure!(
                p.first == 0x20 && p.body.get(1) == Some(&refused),
                "{version:?} {what}: {}",
                p.bytes()
            );
            expect_close(&mut stream, REACT, &format!("{version:?} {what}"))?;
        }
        // alice may connect, but may not write without an ACL.
        let mut alice = tcp(mqtt.port)?;
        alice.write_all(&connect_as(version, "alice-dev", "alice", "alice-secret"))?;
        let p = expect_packet(&mut alice, "alice's CONNACK")?;
        ensure!(
            p.first == 0x20 && p.body.get(1) == Some(&0),
            "{}",
            p.bytes()
        );
        alice.write_all(&publish_packet(version, "orders/1", 1, 1, false, b"no"))?;
        if version == Version::V5 {
            let p = expect_packet(&mut alice, "alice's PUBACK")?;
            ensure!(p.kind() == 4 && p.ack_reason() == 0x87, "{}", p.bytes());
        } else {
            // 3.1.1 has no way to say no: the connection is closed.
            expect_close(&mut alice, REACT, "alice's 3.1.1 publish")?;
        }
        // root is a super user.
        let mut root = tcp(mqtt.port)?;
        root.write_all(&connect_as(version, "root-dev", "root", "root-secret"))?;
        let p = expect_packet(&mut root, "root's CONNACK")?;
        ensure!(
            p.first == 0x20 && p.body.get(1) == Some(&0),
            "{}",
            p.bytes()
        );
        root.write_all(&publish_packet(version, "orders/1", 1, 2, false, b"yes"))?;
        let _ = expect_ack(&mut root, 4, 2, "root's publish")?;
    }
    let got = consume(&mqtt.broker, Client::Confluent, "orders", 1, 2)?;
    let values: Vec<_> = got
        .records
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
        .collect();
    ensure!(values == ["yes", "yes"], "orders holds {values:?}");
    Ok(())
}

/// 10,000 idle MQTT connections (CONNECT, then nothing): every one is accepted and kept, the
/// broker's memory grows by a bounded amount per connection (measured at 5.3 KiB in release;
/// the bound here is loose, for debug builds), a client beside them is served, and their
/// sockets are given back when they close.
#[test]
fn ten_thousand_idle_connections_are_kept_cheaply() -> Result<()> {
    const IDLE: usize = 10_000;
    let mqtt = Mqtt::start(&[])?;
    let before = mqtt.broker.rss_kib()?;
    let mut idle = Vec::with_capacity(IDLE);
    for i in 0..IDLE {
        let stream = session(mqtt.port, Version::V311, &format!("idle-{i}"), 0)
            .with_context(|| format!("idle connection {i}"))?;
        idle.push(stream);
    }
    thread::sleep(Duration::from_secs(1));
    let after = mqtt.broker.rss_kib()?;
    let per_connection = after.saturating_sub(before) as f64 / IDLE as f64;
    ensure!(
        per_connection < 16.0,
        "{per_connection:.1} KiB per idle connection ({before} -> {after} KiB)"
    );
    // Everyone else is served: a publish, and a ping on the last idle connection.
    mosquitto_pub(mqtt.port, &["-q", "1", "-t", "busy/1", "-m", "served"], b"")?;
    let last = idle.last_mut().context("no idle connection")?;
    ping(last, "the last idle connection")?;
    let got = consume(&mqtt.broker, Client::Confluent, "busy", 1, 1)?;
    ensure!(got.records.len() == 1, "busy holds {:?}", got.records);
    // (The consumer made the offsets topic: its files count in both figures.)
    let with_idle = mqtt.broker.open_fds()?;
    drop(idle);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let fds = mqtt.broker.open_fds()?;
        if fds + IDLE <= with_idle + 20 {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "{fds} descriptors open 20 s after the idle connections closed ({with_idle} with them)"
        );
        thread::sleep(ms(100));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// MQTT 5 topic aliases, QoS 2 across a restart, MQTTS

/// A 5.0 PUBLISH at `qos` (1 or 2) with `properties` (already encoded).
fn publish_v5(
    topic: &str,
    qos: u8,
    packet_id: u16,
    dup: bool,
    properties: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let mut body = mqtt_str(topic.as_bytes());
    body.extend_from_slice(&packet_id.to_be_bytes());
    body.extend(varint(properties.len()));
    body.extend_from_slice(properties);
    body.extend_from_slice(payload);
    packet(0x30 | (u8::from(dup) << 3) | (qos << 1), &body)
}

/// A 5.0 client sets topic alias 1 with one PUBLISH and publishes through it with an empty
/// topic in the next: both are records of the aliased topic. Alias 0, or one over the Topic
/// Alias Maximum (64), ends the connection with DISCONNECT 0x94; one never set with 0x82.
#[test]
fn topic_aliases_stand_for_their_topics() -> Result<()> {
    let mqtt = Mqtt::start(&[])?;
    let mut stream = session(mqtt.port, Version::V5, "aliaser", 30)?;
    // Topic Alias (0x23) = 1.
    stream.write_all(&publish_v5(
        "alias/dev1",
        1,
        1,
        false,
        &[0x23, 0, 1],
        b"first",
    ))?;
    let _ = expect_ack(&mut stream, 4, 1, "the aliasing publish")?;
    stream.write_all(&publish_v5("", 1, 2, false, &[0x23, 0, 1], b"second"))?;
    let _ = expect_ack(&mut stream, 4, 2, "the aliased publish")?;
    let got = consume(&mqtt.broker, Client::Confluent, "alias", 1, 2)?;
    let records: Vec<_> = got
        .records
        .iter()
        .map(|r| (show(r.key.as_deref()), show(r.value.as_deref())))
        .collect();
    ensure!(
        records
            == [
                (show(Some(b"alias/dev1")), show(Some(b"first"))),
                (show(Some(b"alias/dev1")), show(Some(b"second"))),
            ],
        "alias holds {records:?}"
    );
    for (what, alias, reason) in [
        ("alias 0", 0u16, 0x94),
        ("alias 65", 65, 0x94),
        ("unset alias 7", 7, 0x82),
    ] {
        let mut stream = session(mqtt.port, Version::V5, "bad-alias", 30)?;
        let [hi, lo] = alias.to_be_bytes();
        stream.write_all(&publish_v5("", 1, 3, false, &[0x23, hi, lo], b"x"))?;
        expect_disconnect(&mut stream, reason, what)?;
    }
    Ok(())
}

/// A 5.0 CONNECT that keeps its session (clean start 0, session expiry 3600 s).
fn connect_keeping(client_id: &str) -> Vec<u8> {
    let mut body = mqtt_str(b"MQTT");
    // Level 5, no flags (clean start 0), keep-alive 30 s, Session Expiry Interval (0x11).
    body.extend_from_slice(&[5, 0x00, 0, 30, 5, 0x11, 0, 0, 0x0e, 0x10]);
    body.extend(mqtt_str(client_id.as_bytes()));
    packet(0x10, &body)
}

/// A QoS 2 PUBLISH of a persistent session is written once even when the device sends it
/// again after a kill -9 of the broker (before its PUBREL): the packet id is stored with the
/// session before PUBREC. The id is free again after PUBCOMP, across another restart.
#[test]
fn a_qos2_publish_is_written_once_across_a_broker_restart() -> Result<()> {
    let mut mqtt = Mqtt::start(&[])?;
    let open = |mqtt: &Mqtt, present: bool| -> Result<TcpStream> {
        let mut stream = tcp(mqtt.port)?;
        stream.write_all(&connect_keeping("qos2-dev"))?;
        let p = expect_packet(&mut stream, "CONNACK")?;
        ensure!(
            p.first == 0x20
                && p.body.first() == Some(&u8::from(present))
                && p.body.get(1) == Some(&0),
            "CONNACK (session present {present}): {}",
            p.bytes()
        );
        Ok(stream)
    };
    let mut stream = open(&mqtt, false)?;
    stream.write_all(&publish_v5("once/dev", 2, 9, false, &[], b"exactly"))?;
    let _ = expect_ack(&mut stream, 5, 9, "the first PUBLISH")?;
    drop(stream);
    mqtt.broker.kill9()?;
    mqtt.broker.restart()?;
    let mut stream = open(&mqtt, true)?;
    // Sent again, as a device does when its PUBREC may have been lost.
    stream.write_all(&publish_v5("once/dev", 2, 9, true, &[], b"exactly"))?;
    let _ = expect_ack(&mut stream, 5, 9, "the PUBLISH sent again")?;
    stream.write_all(&[0x62, 0x02, 0, 9])?;
    let _ = expect_ack(&mut stream, 7, 9, "PUBREL")?;
    drop(stream);
    mqtt.broker.restart()?;
    // Released: the id now names a new message.
    let mut stream = open(&mqtt, true)?;
    stream.write_all(&publish_v5("once/dev", 2, 9, false, &[], b"next"))?;
    let _ = expect_ack(&mut stream, 5, 9, "a new PUBLISH with id 9")?;
    let got = consume(&mqtt.broker, Client::Confluent, "once", 1, 2)?;
    let values: Vec<_> = got
        .records
        .iter()
        .map(|r| show(r.value.as_deref()))
        .collect();
    ensure!(
        values == [show(Some(b"exactly")), show(Some(b"next"))],
        "once holds {values:?}"
    );
    Ok(())
}

/// `--mqtts-listen`: mosquitto_pub over TLS, the broker's certificate checked against the
/// test CA, publishes a record a Kafka consumer reads.
#[test]
fn mqtts_carries_publishes_over_tls() -> Result<()> {
    let certs = common::Certs::make()?;
    let port = common::free_port()?;
    let listen = format!("127.0.0.1:{port}");
    let (broker, _) = certs.ssl_broker("127.0.0.1", &["--mqtts-listen", &listen])?;
    let ca = common::Certs::path(&certs.ca);
    let out = common::run(
        {
            let mut command = std::process::Command::new("mosquitto_pub");
            let _ = command
                .args(["-h", "127.0.0.1", "-p", &port.to_string(), "--cafile", &ca])
                .args(["-q", "1", "-t", "secure/dev", "-m", "over-tls"]);
            command
        },
        b"",
        Duration::from_secs(30),
    )?;
    ensure!(
        out.status.success(),
        "mosquitto_pub over TLS: {}",
        out.stderr
    );
    let got = consume(&broker, Client::Confluent, "secure", 1, 1)?;
    let values: Vec<_> = got
        .records
        .iter()
        .map(|r| show(r.value.as_deref()))
        .collect();
    ensure!(
        values == [show(Some(b"over-tls"))],
        "secure holds {values:?}"
    );
    Ok(())
}
