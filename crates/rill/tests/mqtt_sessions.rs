//! What the MQTT front end keeps beyond a connection, driven by paho-mqtt and mosquitto's
//! clients against a real `rill serve --mqtt-listen`, across kill -9: persistent sessions
//! (their subscriptions, what they missed, their positions as a consumer group's offsets),
//! retained messages, and last wills; and shared subscriptions, whose members come and go.

mod common;

use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use anyhow::{Context, ensure};
use common::mqtt::{Mqtt, Script, delivered, mosquitto_pub};
use common::{Client, Result, consume, rill_ok, row_starting};
use serde_json::Value;

/// Runs mqtt_subscribe.py to completion: `count` messages on `filter`, as client `client_id`
/// with a persistent session; `resume` subscribes to nothing (the session's subscriptions
/// deliver).
fn subscribe(
    mqtt: &Mqtt,
    version: &str,
    filter: &str,
    count: usize,
    client_id: Option<&str>,
    resume: bool,
) -> Result<Value> {
    subscribe_with(mqtt, version, filter, count, client_id, resume, &[])
}

/// [`subscribe`] with more options for mqtt_subscribe.py.
fn subscribe_with(
    mqtt: &Mqtt,
    version: &str,
    filter: &str,
    count: usize,
    client_id: Option<&str>,
    resume: bool,
    options: &[&str],
) -> Result<Value> {
    let scratch = tempfile::tempdir()?;
    let mut args = vec![
        "127.0.0.1".to_owned(),
        mqtt.port_arg(),
        "--version".to_owned(),
        version.to_owned(),
        "--filter".to_owned(),
        filter.to_owned(),
        "--qos".to_owned(),
        "1".to_owned(),
        "--count".to_owned(),
        count.to_string(),
        "--linger".to_owned(),
        "1".to_owned(),
    ];
    if let Some(id) = client_id {
        args.extend([
            "--client-id".to_owned(),
            id.to_owned(),
            "--persistent".to_owned(),
        ]);
    }
    if resume {
        args.push("--resume".to_owned());
    }
    args.extend(options.iter().map(|o| (*o).to_owned()));
    Script::spawn("mqtt_subscribe.py", &args, scratch.path(), "sub")?
        .finish(Duration::from_secs(40))
}

/// A key or value as text (`null` for none).
fn text(bytes: Option<&[u8]>) -> String {
    bytes.map_or_else(
        || "null".to_owned(),
        |b| String::from_utf8_lossy(b).into_owned(),
    )
}

fn session_present(out: &Value) -> Result<bool> {
    out.get("session_present")
        .and_then(Value::as_bool)
        .with_context(|| format!("no session_present in {out}"))
}

fn payloads(out: &Value) -> Result<Vec<String>> {
    Ok(delivered(out)?.into_iter().map(|d| d.payload).collect())
}

/// A persistent session (3.1.1's clean session 0, 5.0's clean start 0 with a session expiry)
/// that subscribes and leaves gets, when it comes back, every record published meanwhile, in
/// order and once, even with a kill -9 of the broker in between, without subscribing again;
/// its position is the consumer group `mqtt:<client id>`'s committed offset, with no lag
/// once it has read everything; a clean session with the same id ends it.
#[test]
fn a_persistent_session_gets_what_it_missed_across_kill_9() -> Result<()> {
    for version in ["3.1.1", "5"] {
        let mut mqtt = Mqtt::start(&[])?;
        let id = format!("keeper-{}", version.replace('.', ""));
        let first = subscribe(&mqtt, version, "sensors/+/t", 0, Some(&id), false)?;
        ensure!(
            !session_present(&first)?,
            "{version}: a new session was present: {first}"
        );
        for i in 1..=3 {
            mosquitto_pub(
                mqtt.port,
                &["-q", "1", "-t", "sensors/a/t", "-m", &format!("m{i}")],
                b"",
            )?;
        }
        // Not for the session's filter: never delivered.
        mosquitto_pub(
            mqtt.port,
            &["-q", "1", "-t", "sensors/a/u", "-m", "other"],
            b"",
        )?;
        mqtt.broker.kill9()?;
        mqtt.broker.restart()?;
        mosquitto_pub(
            mqtt.port,
            &["-q", "1", "-t", "sensors/b/t", "-m", "m4"],
            b"",
        )?;
        let back = subscribe(&mqtt, version, "unused", 4, Some(&id), true)?;
        ensure!(
            session_present(&back)?,
            "{version}: the session was not resumed: {back}"
        );
        let got = delivered(&back)?;
        ensure!(
            payloads(&back)? == ["m1", "m2", "m3", "m4"],
            "{version}: the resumed session got {got:?}"
        );
        ensure!(
            got.iter().map(|d| d.topic.as_str()).collect::<Vec<_>>()
                == ["sensors/a/t", "sensors/a/t", "sensors/a/t", "sensors/b/t"]
                && got.iter().all(|d| d.qos == 1),
            "{version}: {got:?}"
        );
        // Its position: the group's committed offset, at the log end.
        let (described, _) = rill_ok(
            &mqtt.broker.bootstrap(),
            &["group", "describe", &format!("mqtt:{id}")],
            b"",
        )?;
        let row = row_starting(&described, &["sensors", "0"])
            .with_context(|| format!("{version}: no sensors row in\n{described}"))?;
        ensure!(
            row.get(2..5) == Some(&["5", "5", "0"][..]),
            "{version}: committed, log end, lag: {row:?} in\n{described}"
        );
        // A clean session ends it: nothing is kept, nothing is delivered next time.
        let clean = subscribe(&mqtt, version, "sensors/#", 0, None, false)?;
        ensure!(!session_present(&clean)?, "{clean}");
        let ended = Command::new("mosquitto_sub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &mqtt.port_arg(),
                "-i",
                &id,
                "-t",
                "x",
                "-W",
                "1",
            ])
            .args(if version == "5" {
                &["-V", "mqttv5"][..]
            } else {
                &[][..]
            })
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        // -W exits with a timeout status (27) once the second has passed.
        ensure!(ended.code() == Some(27), "mosquitto_sub: {ended}");
        let after = subscribe(&mqtt, version, "unused", 0, Some(&id), true)?;
        ensure!(
            !session_present(&after)? && payloads(&after)?.is_empty(),
            "{version}: the cleaned session came back: {after}"
        );
    }
    Ok(())
}

/// Retained messages come to a new subscription (flagged retained, in topic order) after a
/// kill -9 of the broker, an empty retained payload clears one, and every retained publish is
/// a record of its Kafka topic too.
#[test]
fn retained_messages_survive_kill_9_and_an_empty_payload_clears_one() -> Result<()> {
    let mut mqtt = Mqtt::start(&[])?;
    for (topic, value) in [
        ("sensors/b/t", "22"),
        ("sensors/a/t", "21"),
        ("meters/m1", "7"),
    ] {
        mosquitto_pub(mqtt.port, &["-q", "1", "-r", "-t", topic, "-m", value], b"")?;
    }
    mqtt.broker.kill9()?;
    mqtt.broker.restart()?;
    for version in ["3.1.1", "5"] {
        let out = subscribe(&mqtt, version, "sensors/#", 2, None, false)?;
        let got = delivered(&out)?;
        ensure!(
            got.iter()
                .map(|d| (d.topic.as_str(), d.payload.as_str()))
                .collect::<Vec<_>>()
                == [("sensors/a/t", "21"), ("sensors/b/t", "22")],
            "{version}: retained {got:?}"
        );
        let flags: Vec<_> = out["messages"]
            .as_array()
            .context("messages")?
            .iter()
            .map(|m| m["retain"].as_bool())
            .collect();
        ensure!(
            flags == [Some(true), Some(true)],
            "{version}: retain flags {flags:?}"
        );
    }
    mosquitto_pub(
        mqtt.port,
        &["-q", "1", "-r", "-t", "sensors/a/t", "-n"],
        b"",
    )?;
    let out = subscribe(&mqtt, "5", "sensors/#", 1, None, false)?;
    ensure!(
        payloads(&out)? == ["22"],
        "after clearing sensors/a/t: {out}"
    );
    let records = consume(&mqtt.broker, Client::Confluent, "sensors", 1, 3)?;
    let values: Vec<_> = records
        .records
        .iter()
        .map(|r| text(r.value.as_deref()))
        .collect();
    ensure!(values == ["22", "21", ""], "sensors holds {values:?}");
    Ok(())
}

/// A client that goes without DISCONNECT has its will published (a record of its Kafka
/// topic); one that disconnects cleanly does not.
#[test]
fn a_will_is_published_only_when_the_connection_is_lost() -> Result<()> {
    let mqtt = Mqtt::start(&[])?;
    let mut lost = Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &mqtt.port_arg(),
            "-i",
            "lost",
            "-t",
            "x",
        ])
        .args([
            "--will-topic",
            "status/lost",
            "--will-payload",
            "gone",
            "--will-qos",
            "1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    thread::sleep(Duration::from_secs(1));
    // Cleanly: no will.
    mosquitto_pub(
        mqtt.port,
        &[
            "-q",
            "1",
            "-t",
            "status/clean",
            "-m",
            "here",
            "--will-topic",
            "status/clean",
            "--will-payload",
            "never",
        ],
        b"",
    )?;
    lost.kill()?;
    let _ = lost.wait()?;
    let records = consume(&mqtt.broker, Client::Confluent, "status", 1, 2)?;
    let got: Vec<_> = records
        .records
        .iter()
        .map(|r| (text(r.key.as_deref()), text(r.value.as_deref())))
        .collect();
    let want = [
        ("status/clean".to_owned(), "here".to_owned()),
        ("status/lost".to_owned(), "gone".to_owned()),
    ];
    ensure!(got == want, "status holds {got:?}");
    Ok(())
}

/// A shared subscription (`$share/<group>/<filter>`, 3.1.1 and 5.0 members) delivers each
/// record to exactly one of its members, while an ordinary subscription to the same filter
/// gets every record.
#[test]
fn a_shared_subscription_gives_each_record_to_one_member() -> Result<()> {
    let mqtt = Mqtt::start(&[])?;
    let scratch = tempfile::tempdir()?;
    let members = [
        ("member-v5", "5", "$share/workers/sensors/#", 2usize),
        ("member-v311", "3.1.1", "$share/workers/sensors/#", 2),
        ("everything", "5", "sensors/#", 6),
    ];
    let mut running = Vec::new();
    for (tag, version, filter, count) in members {
        let ready = scratch.path().join(format!("{tag}.ready"));
        let args: Vec<String> = [
            "127.0.0.1",
            &mqtt.port_arg(),
            "--version",
            version,
            "--filter",
            filter,
            "--qos",
            "1",
            "--count",
            &count.to_string(),
            "--linger",
            "2",
            "--ready",
            &ready.to_string_lossy(),
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        running.push((
            Script::spawn("mqtt_subscribe.py", &args, scratch.path(), tag)?,
            ready,
        ));
    }
    for (script, ready) in &mut running {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !ready.exists() {
            script.check_running()?;
            ensure!(
                std::time::Instant::now() < deadline,
                "no SUBACK for {}",
                script.name
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
    let sent: Vec<String> = (1..=6).map(|i| format!("m{i}")).collect();
    for value in &sent {
        mosquitto_pub(
            mqtt.port,
            &["-q", "1", "-t", "sensors/a/t", "-m", value],
            b"",
        )?;
    }
    let mut got = Vec::new();
    for (script, _) in running {
        got.push(payloads(&script.finish(Duration::from_secs(40))?)?);
    }
    let (everything, shared) = (got.pop().context("three subscribers")?, got);
    ensure!(
        everything == sent,
        "the ordinary subscription got {everything:?}"
    );
    ensure!(
        shared.iter().all(|member| !member.is_empty()),
        "a member got nothing: {shared:?}"
    );
    let mut union: Vec<String> = shared.concat();
    union.sort();
    ensure!(union == sent, "the members got {shared:?} between them");
    Ok(())
}

/// A message whose MQTT 5 Message Expiry Interval has passed is not delivered: not as a
/// retained message to a new subscription, nor to a persistent session that comes back;
/// one still in its interval is. Kafka consumers read them all.
#[test]
fn expired_messages_are_not_delivered() -> Result<()> {
    let mqtt = Mqtt::start(&[])?;
    let expiring = |topic: &str, value: &str, seconds: &str, retain: bool| -> Result<()> {
        let mut args = vec!["-V", "mqttv5", "-q", "1", "-t", topic, "-m", value];
        if retain {
            args.push("-r");
        }
        if !seconds.is_empty() {
            args.extend(["-D", "publish", "message-expiry-interval", seconds]);
        }
        mosquitto_pub(mqtt.port, &args, b"")
    };
    // A persistent session that leaves.
    let _ = subscribe(&mqtt, "5", "sensors/#", 0, Some("offline"), false)?;
    expiring("sensors/a/t", "short", "1", true)?;
    expiring("sensors/b/t", "long", "600", true)?;
    expiring("sensors/c/t", "forever", "", true)?;
    thread::sleep(Duration::from_millis(2500));
    let retained = subscribe(&mqtt, "5", "sensors/#", 2, None, false)?;
    ensure!(
        payloads(&retained)? == ["long", "forever"],
        "retained after expiry: {retained}"
    );
    let back = subscribe(&mqtt, "5", "unused", 2, Some("offline"), true)?;
    ensure!(
        payloads(&back)? == ["long", "forever"],
        "the session got {back}"
    );
    let records = consume(&mqtt.broker, Client::Confluent, "sensors", 1, 3)?;
    ensure!(
        records.records.len() == 3,
        "sensors holds {:?}",
        records.records
    );
    Ok(())
}

/// A 5.0 session with a Session Expiry Interval of 1 s is gone 2 s after its connection: the
/// client comes back to no session and gets nothing of what was published meanwhile; one of
/// an hour is still there.
#[test]
fn a_session_ends_when_its_expiry_interval_has_passed() -> Result<()> {
    let mqtt = Mqtt::start(&[])?;
    for (id, expiry) in [("brief", "1"), ("lasting", "3600")] {
        let options = ["--session-expiry", expiry];
        let _ = subscribe_with(&mqtt, "5", "sensors/#", 0, Some(id), false, &options)?;
    }
    mosquitto_pub(
        mqtt.port,
        &["-q", "1", "-t", "sensors/a/t", "-m", "meanwhile"],
        b"",
    )?;
    thread::sleep(Duration::from_millis(2500));
    let brief = subscribe(&mqtt, "5", "unused", 0, Some("brief"), true)?;
    ensure!(
        !session_present(&brief)? && payloads(&brief)?.is_empty(),
        "the expired session came back: {brief}"
    );
    let lasting = subscribe(&mqtt, "5", "unused", 1, Some("lasting"), true)?;
    ensure!(
        session_present(&lasting)? && payloads(&lasting)? == ["meanwhile"],
        "the lasting session: {lasting}"
    );
    Ok(())
}
