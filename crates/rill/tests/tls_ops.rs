//! Running TLS: certificates reloaded without a restart (SIGHUP and the file poll), with real
//! clients trusting one CA or the other.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use common::{Broker, Certs, Result, free_port, kcat};

/// A broker with an SSL listener serving the keystore at `keystore`; `extra` adds flags.
fn start(keystore: &Path, extra: &[&str]) -> Result<(Broker, String)> {
    common::ssl_broker(keystore, None, "127.0.0.1", extra)
}

/// Whether kcat, trusting only `ca`, gets metadata over SSL from `ssl` (it checks the
/// server's certificate against it, librdkafka's default).
fn kcat_trusts(ssl: &str, ca: &Path) -> Result<bool> {
    let ca = format!("ssl.ca.location={}", Certs::path(ca));
    let out = kcat(
        &[
            "-b",
            ssl,
            "-L",
            "-J",
            "-m",
            "3",
            "-X",
            "security.protocol=SSL",
            "-X",
            &ca,
        ],
        b"",
    )?;
    let stdout = out.stdout_text();
    if out.status.success() {
        ensure!(
            stdout.contains(ssl),
            "metadata without the listener: {stdout}"
        );
    }
    Ok(out.status.success())
}

/// Replaces `path` with `contents` as operators (and cert-manager) do: a new file renamed
/// over the old one.
fn replace(path: &Path, contents: &[u8]) -> Result<()> {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

fn sighup(broker: &Broker) -> Result<()> {
    let pid = broker.pid().context("the broker's pid")?;
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()?;
    ensure!(status.success(), "kill -HUP {pid}");
    Ok(())
}

/// Waits (up to `limit`) until kcat trusting `ca` is served.
fn wait_trusted(ssl: &str, ca: &Path, limit: Duration) -> Result<Duration> {
    let started = Instant::now();
    loop {
        if kcat_trusts(ssl, ca)? {
            return Ok(started.elapsed());
        }
        ensure!(
            started.elapsed() < limit,
            "the certificate of {} was not served within {limit:?}",
            ca.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Starts with CA 1's certificate, replaces the keystore with CA 2's and lets `reload` make
/// the broker notice; then a broken keystore keeps CA 2's certificate served.
fn reload_scenario(extra: &[&str], reload: impl Fn(&Broker) -> Result<()>) -> Result<()> {
    let one = Certs::make()?;
    let two = Certs::make()?;
    let dir = tempfile::tempdir()?;
    let keystore = dir.path().join("keystore.pem");
    let _ = std::fs::copy(&one.server, &keystore)?;
    let (mut broker, ssl) = start(&keystore, extra)?;
    ensure!(
        kcat_trusts(&ssl, &one.ca)?,
        "CA 1's client refused at start"
    );
    ensure!(
        !kcat_trusts(&ssl, &two.ca)?,
        "CA 2's client served at start"
    );
    // A connection made with CA 1's certificate, open across the reload.
    let mut held = common::python_command(
        "tls_close.py",
        &[ssl.clone(), Certs::path(&one.ca), "hold".to_owned()],
    )?
    .stdin(std::process::Stdio::piped())
    .stdout(std::process::Stdio::piped())
    .spawn()?;
    let mut held_out = std::io::BufReader::new(held.stdout.take().context("stdout")?);
    let mut line = String::new();
    let _ = std::io::BufRead::read_line(&mut held_out, &mut line)?;
    ensure!(line.trim() == "ready", "tls_close.py hold: {line:?}");

    replace(&keystore, &std::fs::read(&two.server)?)?;
    reload(&broker)?;
    let _ = wait_trusted(&ssl, &two.ca, Duration::from_secs(15))?;
    ensure!(
        !kcat_trusts(&ssl, &one.ca)?,
        "CA 1's client still served after the reload"
    );
    // The open connection carries on.
    std::io::Write::write_all(held.stdin.as_mut().context("stdin")?, b"go\n")?;
    line.clear();
    let _ = std::io::BufRead::read_line(&mut held_out, &mut line)?;
    let _ = common::wait_timeout(&mut held, Duration::from_secs(10))?;
    let seen: serde_json::Value = serde_json::from_str(&line).context(line.clone())?;
    ensure!(
        seen["again"].as_u64() == seen["answered"].as_u64() && seen["again"].as_u64() > Some(8),
        "the connection open across the reload: {seen}"
    );

    // A keystore cut in half: the reload fails, CA 2's certificate stays.
    let whole = std::fs::read(&two.server)?;
    replace(&keystore, whole.get(..whole.len() / 2).context("half")?)?;
    reload(&broker)?;
    let started = Instant::now();
    while !broker.output_text().contains("TLS reload failed") {
        ensure!(
            started.elapsed() < Duration::from_secs(15),
            "no error logged for a broken keystore: {}",
            broker.output_tail(20)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    ensure!(
        kcat_trusts(&ssl, &two.ca)?,
        "a broken keystore stopped the old certificate"
    );
    let log = broker.output_text();
    let failures = log.matches("TLS reload failed").count();
    ensure!(
        failures == 1,
        "{failures} errors for one broken file: {log}"
    );
    ensure!(
        log.contains("keystore.pem"),
        "the error does not name the file: {log}"
    );
    common::assert_healthy(&mut broker)?;
    Ok(())
}

#[test]
fn sighup_serves_a_new_certificate_and_a_broken_one_keeps_the_old() -> Result<()> {
    // No poll: only the signal can make it reload.
    reload_scenario(&["--ssl-reload-interval-ms", "0"], sighup)
}

#[test]
fn the_poll_notices_a_changed_keystore_without_a_signal() -> Result<()> {
    reload_scenario(&["--ssl-reload-interval-ms", "300"], |_| Ok(()))
}

/// `curl` on the admin listener: the status code and the body.
fn curl(url: &str, extra: &[&str]) -> Result<(u16, String)> {
    let mut command = std::process::Command::new("curl");
    let _ = command
        .args(["-sS", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}"])
        .args(extra)
        .arg(url);
    let out = common::run(command, b"", Duration::from_secs(20))?;
    let text = out.stdout_text();
    let (body, code) = text.rsplit_once('\n').context("curl's status line")?;
    let code = code.trim().parse().unwrap_or(0);
    Ok((code, body.to_owned()))
}

#[test]
fn the_admin_listener_serves_https_and_status_needs_the_bearer_token() -> Result<()> {
    let certs = Certs::make()?;
    let ssl = format!("127.0.0.1:{}", free_port()?);
    let keystore = Certs::path(&certs.server);
    let broker = Broker::start_with_env(
        &[
            "--ssl-listen",
            &ssl,
            "--ssl-keystore",
            &keystore,
            "--admin-tls",
        ],
        &[("RILL_ADMIN_TOKEN", "s3cret-token")],
    )?;
    let admin = broker.admin_addr().context("no admin listener")?;
    let base = format!("https://{admin}");
    let ca = Certs::path(&certs.ca);
    let tls = ["--cacert", ca.as_str()];

    let started = Instant::now();
    while curl(&format!("{base}/health/ready"), &tls)?.0 != 200 {
        ensure!(started.elapsed() < Duration::from_secs(30), "never ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, metrics) = curl(&format!("{base}/metrics"), &tls)?;
    ensure!(code == 200, "/metrics over HTTPS: {code}");
    ensure!(metrics.contains("rill_build_info"), "{metrics}");

    let status = format!("{base}/status");
    let (code, body) = curl(&status, &tls)?;
    ensure!(code == 401, "/status without the token: {code} {body}");
    ensure!(body.contains("Bearer"), "{body}");
    for wrong in [
        "Bearer s3cret-toke",
        "Bearer s3cret-token2",
        "Basic s3cret-token",
    ] {
        let header = format!("Authorization: {wrong}");
        let (code, _) = curl(&status, &[&tls[..], &["-H", &header]].concat())?;
        ensure!(code == 401, "/status with {wrong:?}: {code}");
    }
    let (code, body) = curl(
        &status,
        &[&tls[..], &["-H", "Authorization: Bearer s3cret-token"]].concat(),
    )?;
    ensure!(code == 200, "/status with the token: {code} {body}");
    let json: serde_json::Value = serde_json::from_str(&body)?;
    ensure!(json["broker"]["node_id"] == 0, "{json}");

    // Not over plain HTTP, and not with a CA that did not sign the certificate.
    let (code, _) = curl(&format!("http://{admin}/metrics"), &[])?;
    ensure!(
        code != 200,
        "plain HTTP answered on the HTTPS admin listener"
    );
    let other = Certs::make()?;
    let (code, _) = curl(
        &format!("{base}/metrics"),
        &["--cacert", &Certs::path(&other.ca)],
    )?;
    ensure!(code == 0, "curl trusting another CA got {code}");
    // The token never shows in the effective settings.
    let out = common::run(
        {
            let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_rill"));
            let _ = c
                .args(["serve", "--print-config"])
                .env("RILL_ADMIN_TOKEN", "s3cret-token");
            c
        },
        b"",
        Duration::from_secs(20),
    )?;
    let printed = out.stdout_text();
    ensure!(
        printed.contains("rill.admin.token = \"(hidden)\"") && !printed.contains("s3cret"),
        "{printed}"
    );
    Ok(())
}

/// `tls_close.py`'s verdict on how the broker closed the connection.
fn tls_close(ssl: &str, ca: &Path, mode: &str) -> Result<serde_json::Value> {
    common::run_py(
        "tls_close.py",
        &[ssl.to_owned(), Certs::path(ca), mode.to_owned()],
        b"",
    )
}

#[test]
fn the_broker_closes_tls_connections_with_close_notify() -> Result<()> {
    let certs = Certs::make()?;
    let (mut broker, ssl) = start(&certs.server, &[])?;
    for mode in ["bad-frame", "unknown-api"] {
        let seen = tls_close(&ssl, &certs.ca, mode)?;
        ensure!(
            seen["close"] == "clean" && seen["answered"].as_u64() > Some(8),
            "{mode}: {seen}"
        );
    }
    // At shutdown: an idle client is closed cleanly too.
    let mut idle = common::python_command(
        "tls_close.py",
        &[ssl.clone(), Certs::path(&certs.ca), "idle".to_owned()],
    )?
    .stdout(std::process::Stdio::piped())
    .spawn()?;
    let mut out = std::io::BufReader::new(idle.stdout.take().context("stdout")?);
    let mut line = String::new();
    let _ = std::io::BufRead::read_line(&mut out, &mut line)?;
    ensure!(line.trim() == "ready", "tls_close.py: {line:?}");
    broker.stop()?;
    line.clear();
    let _ = std::io::BufRead::read_line(&mut out, &mut line)?;
    let _ = common::wait_timeout(&mut idle, Duration::from_secs(10))?;
    let seen: serde_json::Value = serde_json::from_str(&line).context(line.clone())?;
    ensure!(seen["close"] == "clean", "at shutdown: {seen}");
    Ok(())
}

/// Node 1 has a PLAINTEXT and an SSL listener, node 2 only PLAINTEXT. A client of node 1's SSL
/// listener must never be sent to node 2 (it would speak TLS to a plaintext port): node 2 is
/// left out of Metadata and DescribeCluster, its partitions answer LISTENER_NOT_FOUND with no
/// leader, and its groups have no coordinator for that client. PLAINTEXT clients see both.
#[test]
fn brokers_without_the_clients_listener_are_left_out() -> Result<()> {
    use common::{find_coordinator, free_voters, metadata_of, wait_until};
    let certs = Certs::make()?;
    let voters = free_voters(2)?;
    let ssl = format!("127.0.0.1:{}", free_port()?);
    let keystore = Certs::path(&certs.server);
    let cluster = ["--controller-quorum-voters", voters.as_str()];
    let one = Broker::start_with(
        &[
            &cluster[..],
            &[
                "--node-id",
                "1",
                "--ssl-listen",
                &ssl,
                "--ssl-keystore",
                &keystore,
            ],
        ]
        .concat(),
    )?;
    let two = Broker::start_with(&[&cluster[..], &["--node-id", "2"]].concat())?;
    let (plain1, plain2) = (one.bootstrap(), two.bootstrap());
    wait_until("both brokers live", Duration::from_secs(30), || {
        Ok((metadata_of(&plain1)?.brokers.len() == 2).then_some(()))
    })?;
    let topic = "spread";
    let _ = common::rill_ok(&plain1, &["topic", "create", topic, "-p", "4"], b"")?;
    let leaders = wait_until("leaders", Duration::from_secs(30), || {
        let leaders = metadata_of(&plain1)?.leaders(topic)?;
        Ok((leaders.len() == 4 && leaders.values().all(|l| *l > 0)).then_some(leaders))
    })?;
    ensure!(
        leaders.values().any(|l| *l == 1) && leaders.values().any(|l| *l == 2),
        "placed on one broker only: {leaders:?}"
    );
    // A group coordinated by each broker (asked over PLAINTEXT, which both have), once the
    // partitions of `__consumer_offsets` have elected their leaders.
    let groups = wait_until(
        "a group coordinated by each broker",
        Duration::from_secs(30),
        || {
            let mut groups = std::collections::BTreeMap::new();
            for i in 0..200 {
                let group = format!("g{i}");
                let (error, node) = find_coordinator(&plain1, &group)?;
                if error == 0 && !groups.contains_key(&node) {
                    let _ = groups.insert(node, group);
                }
                if groups.len() == 2 {
                    return Ok(Some(groups));
                }
            }
            Ok(None)
        },
    )?;
    let (g1, g2) = (
        groups.get(&1).context("a group of node 1")?,
        groups.get(&2).context("a group of node 2")?,
    );

    let ca = format!("ssl.ca.location={}", Certs::path(&certs.ca));
    let view = common::run_py(
        "listener_view.py",
        &[
            ssl.clone(),
            "--set".into(),
            "security.protocol=SSL".into(),
            "--set".into(),
            ca,
            "--group".into(),
            g1.clone(),
            "--group".into(),
            g2.clone(),
        ],
        b"",
    )?;
    let only_one = serde_json::json!({ "1": ssl });
    ensure!(view["metadata_brokers"] == only_one, "Metadata: {view}");
    ensure!(
        view["cluster_brokers"] == only_one,
        "DescribeCluster: {view}"
    );
    for (partition, leader) in &leaders {
        let seen = &view["topics"][topic][partition.to_string()];
        let want = if *leader == 1 {
            serde_json::json!({ "leader": 1, "error": null })
        } else {
            serde_json::json!({ "leader": -1, "error": "LISTENER_NOT_FOUND" })
        };
        ensure!(
            *seen == want,
            "partition {partition} led by {leader}: {seen}"
        );
    }
    ensure!(
        view["coordinators"][g1.as_str()] == format!("1 {ssl}"),
        "{view}"
    );
    ensure!(
        !view["coordinators"][g2.as_str()]
            .as_str()
            .unwrap_or_default()
            .starts_with('2'),
        "a group of node 2 got node 2 over SSL: {view}"
    );

    // Over PLAINTEXT, from either broker, both are there with their own addresses.
    let view = common::run_py("listener_view.py", std::slice::from_ref(&plain2), b"")?;
    ensure!(
        view["metadata_brokers"] == serde_json::json!({ "1": plain1, "2": plain2 })
            && view["cluster_brokers"] == view["metadata_brokers"],
        "{view}"
    );
    Ok(())
}

/// The start of a ClientHello: a handshake record header announcing 512 bytes, the
/// handshake header, the version and part of the random; the rest never comes.
const TRUNCATED_HELLO: [u8; 20] = [
    0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 0x11, 0x22, 0x33, 0x44, 0x55,
    0x66, 0x77, 0x88, 0x99,
];

/// Produces `n` records over SSL with kcat and reads them back: every one, in order.
fn kcat_round_trip(ssl: &str, ca: &Path, topic: &str, n: usize) -> Result<()> {
    let ca = format!("ssl.ca.location={}", Certs::path(ca));
    let x = ["-X", "security.protocol=SSL", "-X", &ca];
    let input: String = (0..n).map(|i| format!("record-{i}\n")).collect();
    let _ = common::kcat_ok(
        &[&["-b", ssl, "-t", topic, "-P", "-p", "0"][..], &x].concat(),
        input.as_bytes(),
    )?;
    let out = common::kcat_ok(
        &[
            &[
                "-b",
                ssl,
                "-t",
                topic,
                "-C",
                "-p",
                "0",
                "-e",
                "-o",
                "beginning",
            ][..],
            &["-f", "%o %s\n"],
            &x,
        ]
        .concat(),
        b"",
    )?;
    let want: String = (0..n).map(|i| format!("{i} record-{i}\n")).collect();
    ensure!(out == want, "consumed {out:?}");
    Ok(())
}

#[test]
fn garbage_before_and_after_the_handshake_closes_only_that_connection() -> Result<()> {
    let certs = Certs::make()?;
    let (mut broker, ssl) = start(&certs.server, &[])?;
    // Bytes that are no TLS record at all, then a record type that does not exist.
    for garbage in [&b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..], &[0x42; 300][..]] {
        let mut stream = common::connect_to(&ssl)?;
        std::io::Write::write_all(&mut stream, garbage)?;
        let mut closed = false;
        for _ in 0..4 {
            match common::reaction(&mut stream, Duration::from_secs(5))? {
                common::Reaction::Closed => {
                    closed = true;
                    break;
                }
                // A TLS alert record (content type 21), nothing else.
                common::Reaction::Answered(bytes) => {
                    ensure!(bytes.first() == Some(&21), "answered {bytes:?}");
                }
            }
        }
        ensure!(closed, "{garbage:?} did not close the connection");
    }
    // A frame of garbage after a good handshake: closed with close_notify.
    let seen = tls_close(&ssl, &certs.ca, "garbage")?;
    ensure!(seen["close"] == "clean", "garbage frame: {seen}");
    kcat_round_trip(&ssl, &certs.ca, "after-garbage", 10)?;
    common::assert_healthy(&mut broker)?;
    Ok(())
}

/// 500 clients that send the start of a ClientHello and then nothing: a real client produces
/// and consumes over SSL meanwhile, each is closed once the handshake timeout (10 s) runs
/// out, and the memory they held is bounded and given back.
#[test]
fn half_open_handshakes_time_out_without_hurting_others() -> Result<()> {
    const HALF_OPEN: usize = 500;
    let certs = Certs::make()?;
    let (mut broker, ssl) = start(&certs.server, &[])?;
    kcat_round_trip(&ssl, &certs.ca, "warm-up", 10)?;
    let before = broker.rss_kib()?;
    let opened = Instant::now();
    let mut half_open = Vec::with_capacity(HALF_OPEN);
    for _ in 0..HALF_OPEN {
        let mut stream = common::connect_to(&ssl)?;
        std::io::Write::write_all(&mut stream, &TRUNCATED_HELLO)?;
        half_open.push(stream);
    }
    kcat_round_trip(&ssl, &certs.ca, "beside-half-open", 1000)?;
    let during = broker.rss_kib()?;
    eprintln!(
        "RSS {before} KiB before, {during} KiB with {HALF_OPEN} half-open TLS handshakes \
         ({} bytes each)",
        during.saturating_sub(before) * 1024 / HALF_OPEN as u64
    );
    ensure!(
        during.saturating_sub(before) < 64 * 1024,
        "{HALF_OPEN} half-open handshakes took {} KiB",
        during - before
    );
    // Every one is closed by the handshake timeout, not before 10 s and not much after.
    for mut stream in half_open {
        let left = Duration::from_secs(20).saturating_sub(opened.elapsed());
        stream.set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
        let mut buf = [0u8; 64];
        match std::io::Read::read(&mut stream, &mut buf) {
            Ok(0) => {}
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => anyhow::bail!("a half-open handshake got {other:?}"),
        }
    }
    let closed = opened.elapsed();
    ensure!(
        closed >= Duration::from_secs(9) && closed < Duration::from_secs(20),
        "half-open handshakes closed after {closed:?}"
    );
    std::thread::sleep(Duration::from_millis(500));
    let after = broker.rss_kib()?;
    eprintln!("RSS {after} KiB once they were closed");
    ensure!(
        after < before + 16 * 1024,
        "RSS {before} KiB -> {after} KiB after the half-open handshakes closed"
    );
    kcat_round_trip(&ssl, &certs.ca, "after-half-open", 10)?;
    common::assert_healthy(&mut broker)?;
    Ok(())
}
