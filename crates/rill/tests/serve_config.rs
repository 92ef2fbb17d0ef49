//! `rill serve --config FILE` (Kafka's property names in TOML) and `--print-config`: the file is
//! applied, flags and environment beat it, and a bad file is a one-line error naming the file
//! and the key.

mod common;

use std::path::Path;
use std::process::Command;

use anyhow::{Context, ensure};
use common::{Broker, CLIENT_TIMEOUT, Result, kcat_ok, run, run_py};

fn rill() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rill"))
}

fn write_config(dir: &Path, text: &str) -> Result<String> {
    let path = dir.join("rill.toml");
    std::fs::write(&path, text)?;
    Ok(path.to_string_lossy().into_owned())
}

/// `rill serve ARGS --print-config` with `env` set: its stdout, after checking it exited 0.
fn print_config(args: &[&str], env: &[(&str, &str)]) -> Result<String> {
    let mut command = rill();
    let _ = command.arg("serve").args(args).arg("--print-config");
    for (name, value) in env {
        let _ = command.env(name, value);
    }
    let out = run(command, b"", CLIENT_TIMEOUT)?;
    ensure!(
        out.status.success(),
        "--print-config failed: {}",
        out.stderr
    );
    Ok(String::from_utf8(out.stdout)?)
}

/// The line of `--print-config` output for `key`.
fn line<'a>(printed: &'a str, key: &str) -> Result<&'a str> {
    printed
        .lines()
        .find(|l| l.starts_with(&format!("{key} = ")) || l.starts_with(&format!("# {key} ")))
        .with_context(|| format!("no line for {key} in:\n{printed}"))
}

/// `rill serve ARGS` must fail at once: its stderr, which must be one line.
fn serve_fails(args: &[&str]) -> Result<String> {
    let mut command = rill();
    let _ = command.arg("serve").args(args);
    let out = run(command, b"", CLIENT_TIMEOUT)?;
    ensure!(!out.status.success(), "rill serve {args:?} started");
    let stderr = out.stderr.trim().to_owned();
    ensure!(
        stderr.lines().count() == 1 && stderr.starts_with("rill: error: "),
        "not a one-line error: {stderr}"
    );
    Ok(stderr)
}

#[test]
fn print_config_shows_each_value_and_its_source() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let file = write_config(
        dir.path(),
        "log.dirs = \"/srv/rill\"\nnum.partitions = 2\n\n[log.retention]\nhours = 24\n\
         [log.segment]\nbytes = 5000000\n",
    )?;
    let printed = print_config(
        &["--config", &file, "--segment-bytes", "7000000"],
        &[("RILL_NUM_PARTITIONS", "4")],
    )?;
    ensure!(line(&printed, "log.dirs")?.contains("\"/srv/rill\""));
    ensure!(line(&printed, "log.dirs")?.contains(&format!("# file {file}")));
    // The environment beats the file, the flag beats both.
    ensure!(line(&printed, "num.partitions")?.contains("= 4 "));
    ensure!(line(&printed, "num.partitions")?.ends_with("# env RILL_NUM_PARTITIONS"));
    ensure!(line(&printed, "log.segment.bytes")?.contains("= 7000000 "));
    ensure!(line(&printed, "log.segment.bytes")?.ends_with("# flag --segment-bytes"));
    // Hours become the setting's milliseconds, and the line says so.
    let retention = line(&printed, "log.retention.ms")?;
    ensure!(retention.contains("= 86400000 "), "{retention}");
    ensure!(
        retention.contains("from log.retention.hours = 24"),
        "{retention}"
    );
    ensure!(line(&printed, "rill.ack.durability")?.ends_with("# default"));
    ensure!(line(&printed, "log.flush.interval.ms")?.starts_with("# log.flush.interval.ms unset"));

    // What it prints is itself a config file that gives the same settings.
    let again = write_config(dir.path(), &printed)?;
    let reprinted = print_config(&["--config", &again], &[])?;
    for key in [
        "log.dirs",
        "num.partitions",
        "log.segment.bytes",
        "log.retention.ms",
    ] {
        let value = |text: &str| -> Result<String> {
            let l = line(text, key)?;
            Ok(l.split('#').next().unwrap_or_default().trim().to_owned())
        };
        ensure!(
            value(&printed)? == value(&reprinted)?,
            "{key} differs when read back"
        );
    }
    Ok(())
}

/// Kafka's combined-mode `listeners`: the PLAINTEXT entry is the Kafka listener, the
/// CONTROLLER one the quorum's; SASL listeners and a name listed twice are refused.
#[test]
fn kafka_combined_mode_listeners_name_both_listeners() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let file = write_config(
        dir.path(),
        "node.id = 1
listeners = \"PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093\"
         controller.quorum.voters = \"1@127.0.0.1:19093,2@127.0.0.1:19094\"
",
    )?;
    let printed = print_config(&["--config", &file], &[])?;
    ensure!(
        line(&printed, "listeners")?.contains("\"127.0.0.1:19092\""),
        "{printed}"
    );
    let controller = line(&printed, "rill.controller.listen")?;
    ensure!(controller.contains("\"127.0.0.1:19093\""), "{controller}");
    let bad = write_config(
        dir.path(),
        "sasl.enabled.mechanisms = \"GSSAPI\"
",
    )?;
    let error = serve_fails(&["--config", &bad])?;
    ensure!(
        error.contains("sasl.enabled.mechanisms: GSSAPI is not served"),
        "{error}"
    );
    let two = write_config(
        dir.path(),
        "listeners = \"PLAINTEXT://127.0.0.1:1,PLAINTEXT://127.0.0.1:2\"
",
    )?;
    let error = serve_fails(&["--config", &two])?;
    ensure!(error.contains("PLAINTEXT twice"), "{error}");
    Ok(())
}

#[test]
fn the_shipped_example_config_is_valid_and_complete() -> Result<()> {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/rill.toml");
    let example = example.to_string_lossy().into_owned();
    let printed = print_config(&["--config", &example], &[])?;
    for l in printed.lines().skip(1) {
        // Every setting appears in the example, set or commented out.
        let key = l
            .trim_start_matches("# ")
            .split([' ', '='])
            .next()
            .unwrap_or_default();
        let text = std::fs::read_to_string(&example)?;
        ensure!(text.contains(key), "docs/rill.toml does not mention {key}");
        ensure!(
            l.starts_with('#') || l.contains("# file "),
            "{key} is not set in the example: {l}"
        );
    }
    Ok(())
}

#[test]
fn a_running_broker_applies_the_file() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let file = write_config(
        dir.path(),
        "num.partitions = 3\nlog.retention.minutes = 90\nlog.segment.bytes = 2000000\n",
    )?;
    let broker = Broker::start_with(&["--config", &file])?;
    let topic = broker.topic("from-config");
    // An auto-created topic gets num.partitions from the file.
    let _ = kcat_ok(&["-b", &broker.bootstrap(), "-P", "-t", &topic], b"one\n")?;
    let described = run_py(
        "admin.py",
        &[broker.bootstrap(), "describe".to_owned(), topic.clone()],
        b"",
    )?;
    let partitions = described["partitions"]
        .as_object()
        .map_or(0, serde_json::Map::len);
    ensure!(
        partitions == 3,
        "auto-created with {partitions} partitions: {described}"
    );
    // The topic's effective configs are the file's broker defaults.
    ensure!(
        described["configs"]["retention.ms"] == "5400000",
        "retention.ms: {}",
        described["configs"]["retention.ms"]
    );
    ensure!(
        described["configs"]["segment.bytes"] == "2000000",
        "segment.bytes: {}",
        described["configs"]["segment.bytes"]
    );
    Ok(())
}

#[test]
fn a_bad_config_file_is_a_one_line_error_naming_file_and_key() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let cases: &[(&str, &[&str])] = &[
        ("log.dirz = \"/x\"\n", &["log.dirz", "does not know"]),
        (
            "num.partitions = \"many\"\n",
            &["num.partitions", "whole number"],
        ),
        ("num.partitions = 0\n", &["num.partitions", "at least 1"]),
        ("log.dirs = \"/a,/b\"\n", &["log.dirs", "one directory"]),
        ("log.dirs = [\"/a\"]\n", &["log.dirs", "must be a string"]),
        (
            "listeners = \"SSL://nohost\"\n",
            &["listeners", "NAME://ip:port"],
        ),
        (
            "rill.ack.durability = \"sometimes\"\n",
            &["fsync or page-cache"],
        ),
        (
            "log.flush.interval.ms = 5\nlog.flush.interval.messages = 5\n",
            &["not both"],
        ),
        (
            "log.retention.hours = 9999999999999\n",
            &["log.retention.hours", "out of range"],
        ),
        ("num.partitions = \n", &["not valid TOML", "line 1"]),
        (
            "broker.rack = \" \"\n",
            &["broker.rack", "must not be empty"],
        ),
        ("rill.max.partitions = -5\n", &["rill.max.partitions"]),
        (
            "offsets.topic.num.partitions = 0\n",
            &["offsets.topic.num.partitions", "at least 1"],
        ),
        (
            "offsets.topic.replication.factor = 0\n",
            &["offsets.topic.replication.factor", "at least 1"],
        ),
        (
            "rill.storage.threads = \"two\"\n",
            &["rill.storage.threads"],
        ),
    ];
    for (text, needles) in cases {
        let file = write_config(dir.path(), text)?;
        // The flags override the file's listener and data dir, yet its bad values are refused.
        let data_dir = dir.path().join("data").to_string_lossy().into_owned();
        let stderr = serve_fails(&[
            "--config",
            &file,
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &data_dir,
        ])?;
        for needle in *needles {
            ensure!(
                stderr.contains(needle),
                "for {text:?}: {stderr:?} does not say {needle:?}"
            );
        }
    }
    let missing = dir.path().join("nope.toml");
    let stderr = serve_fails(&["--config", &missing.to_string_lossy()])?;
    ensure!(stderr.contains("nope.toml"), "{stderr}");
    Ok(())
}

#[test]
fn the_authorizer_is_configured_with_kafkas_keys() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let file = write_config(
        dir.path(),
        "authorizer.class.name = \"org.apache.kafka.metadata.authorizer.StandardAuthorizer\"\n\
         super.users = \"User:admin;User:CN=ops,O=Rill\"\nallow.everyone.if.no.acl.found = true\n",
    )?;
    let printed = print_config(&["--config", &file], &[])?;
    ensure!(
        line(&printed, "authorizer.class.name")?.contains("StandardAuthorizer"),
        "{printed}"
    );
    ensure!(line(&printed, "super.users")?.contains("User:admin;User:CN=ops,O=Rill"));
    ensure!(line(&printed, "allow.everyone.if.no.acl.found")?.contains("= true "));
    let err = serve_fails(&[
        "--authorizer-class-name",
        "x",
        "--super-users",
        "User:a;bob",
    ])?;
    ensure!(
        err.contains("super.users") && err.contains("'bob'"),
        "{err}"
    );
    Ok(())
}

#[test]
fn bad_mqtt_settings_are_one_line_errors() -> Result<()> {
    for (args, says) in [
        (
            &["--mqtt-max-packet-size", "1"][..],
            "rill.mqtt.max.packet.size must be 2 to 268435455",
        ),
        (
            &["--mqtt-max-packet-size", "300000000"][..],
            "rill.mqtt.max.packet.size must be 2 to 268435455",
        ),
        (
            &["--mqtt-topic-map", "fleet/+/gps"][..],
            "'fleet/+/gps' is not FILTER=TOPIC",
        ),
        (
            &["--mqtt-topic-map", "a/#=ok,=nofilter"][..],
            "'=nofilter' is not FILTER=TOPIC",
        ),
    ] {
        let error = serve_fails(args)?;
        ensure!(error.contains(says), "{args:?}: {error}");
    }
    // The map and the listener as a config file sees them.
    let printed = print_config(
        &[
            "--mqtt-listen",
            "127.0.0.1:1883",
            "--mqtt-topic-map",
            "fleet/+/gps=positions",
        ],
        &[],
    )?;
    ensure!(
        printed.contains("rill.mqtt.listen = \"127.0.0.1:1883\"")
            && printed.contains("rill.mqtt.topic.map = \"fleet/+/gps=positions\""),
        "{printed}"
    );
    Ok(())
}
