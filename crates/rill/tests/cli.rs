//! The `rill` client subcommands (`topic`, `produce`, `consume`, `group`) run as a person runs
//! them, against the real broker, with confluent-kafka and kcat on the other side.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, ensure};
use common::*;
use serde_json::Value;

fn kill_int(pid: u32) -> Result<()> {
    let status = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()?;
    ensure!(status.success(), "kill -INT {pid} failed");
    Ok(())
}

/// Polls `check` every 100 ms for up to 20 s.
fn eventually(what: &str, mut check: impl FnMut() -> Result<bool>) -> Result<()> {
    for _ in 0..200 {
        if check()? {
            return Ok(());
        }
        std::thread::sleep(ms(100));
    }
    anyhow::bail!("{what} did not happen within 20 s")
}

// ---------------------------------------------------------------------------------------
// rill topic

#[test]
fn topics_are_created_listed_described_altered_and_deleted() -> Result<()> {
    let broker = Broker::start_with(&["--num-partitions", "2"])?;
    let b = broker.bootstrap();

    let (out, _) = rill_ok(
        &b,
        &[
            "topic",
            "create",
            "orders",
            "-p",
            "3",
            "-c",
            "retention.ms=86400000",
        ],
        b"",
    )?;
    assert_eq!(out, "created topic 'orders' with 3 partitions\n");
    // Without -p: the broker's num.partitions.
    let (out, _) = rill_ok(&b, &["topic", "create", "plain"], b"")?;
    assert_eq!(out, "created topic 'plain' with 2 partitions\n");

    let (out, _) = rill_ok(&b, &["topic", "list"], b"")?;
    assert_eq!(
        rows(&out),
        [["TOPIC", "PARTITIONS"], ["orders", "3"], ["plain", "2"]]
    );

    let _ = kcat_ok(&["-b", &b, "-P", "-t", "orders", "-p", "1"], b"a\nb\n")?;
    let (out, _) = rill_ok(&b, &["topic", "describe", "orders"], b"")?;
    let first = rows(&out).remove(0);
    assert_eq!(
        (first[0].as_str(), first[4].as_str(), first[5].as_str()),
        ("topic", "partitions", "3"),
        "{out}"
    );
    assert_eq!(first[2], "id");
    assert_eq!(first[3].len(), 22, "a topic id in Kafka's base64: {out}");
    for (p, end) in [("0", "0"), ("1", "2"), ("2", "0")] {
        assert_eq!(
            row_starting(&out, &[p]),
            Some(vec![p, "0", "0", "0", "0", end]),
            "partition {p}: leader, replicas, isr, log start, log end in\n{out}"
        );
    }
    assert_eq!(
        row_starting(&out, &["*", "retention.ms"]),
        Some(vec!["*", "retention.ms", "86400000", "topic"]),
        "{out}"
    );
    assert_eq!(
        row_starting(&out, &["segment.bytes"]),
        Some(vec!["segment.bytes", "1073741824", "default"]),
        "{out}"
    );

    let (out, _) = rill_ok(
        &b,
        &[
            "topic",
            "alter",
            "orders",
            "--partitions",
            "5",
            "--config",
            "segment.bytes=1048576",
            "--delete-config",
            "retention.ms",
        ],
        b"",
    )?;
    assert_eq!(
        out,
        "altered topic 'orders': partitions 3 -> 5, set segment.bytes=1048576, removed retention.ms\n"
    );
    let (out, _) = rill_ok(&b, &["topic", "describe", "orders"], b"")?;
    assert_eq!(rows(&out)[0][5], "5");
    assert!(row_starting(&out, &["4", "0"]).is_some(), "{out}");
    assert_eq!(
        row_starting(&out, &["*", "segment.bytes"]),
        Some(vec!["*", "segment.bytes", "1048576", "topic"])
    );
    assert_eq!(
        row_starting(&out, &["retention.ms"]),
        Some(vec!["retention.ms", "604800000", "default"])
    );

    let (out, _) = rill_ok(&b, &["topic", "delete", "orders"], b"")?;
    assert_eq!(out, "deleted topic 'orders'\n");
    let (out, _) = rill_ok(&b, &["topic", "list"], b"")?;
    assert_eq!(rows(&out), [["TOPIC", "PARTITIONS"], ["plain", "2"]]);
    Ok(())
}

#[test]
fn topic_errors_name_the_topic_and_explain_the_kafka_error() -> Result<()> {
    let broker = Broker::start()?;
    let b = broker.bootstrap();
    let _ = rill_ok(&b, &["topic", "create", "t", "-p", "2"], b"")?;

    let err = rill_fails(&b, &["topic", "create", "t"], b"")?;
    assert!(
        err.contains("TOPIC_ALREADY_EXISTS: a topic with this name already exists"),
        "{err}"
    );
    let err = rill_fails(&b, &["topic", "alter", "t", "--partitions", "1"], b"")?;
    assert!(err.starts_with("rill: error: "), "{err}");
    assert!(
        err.contains("INVALID_PARTITIONS: the partition count is not allowed"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    let err = rill_fails(&b, &["topic", "create", "u", "-c", "retention.ms"], b"")?;
    assert!(err.contains("expects k=v, got 'retention.ms'"), "{err}");

    // Asking about a topic that does not exist says so, and does not create it.
    for args in [
        &["topic", "describe", "ghost"][..],
        &["topic", "alter", "ghost", "--partitions", "4"],
        &["topic", "delete", "ghost"],
        &["consume", "ghost", "-e"],
    ] {
        let err = rill_fails(&b, args, b"")?;
        assert_eq!(
            err, "rill: error: topic 'ghost' does not exist\n",
            "{args:?}"
        );
    }
    let (out, _) = rill_ok(&b, &["topic", "list"], b"")?;
    assert_eq!(rows(&out), [["TOPIC", "PARTITIONS"], ["t", "2"]]);
    Ok(())
}

#[test]
fn no_broker_is_reported_with_the_address_and_why() -> Result<()> {
    // Nothing listens on a port that was free a moment ago.
    let addr = format!("127.0.0.1:{}", free_port()?);
    for args in [
        &["topic", "list"][..],
        &["produce", "t"],
        &["consume", "t"],
        &["group", "list"],
    ] {
        // Bounded well below the library's retry loops: a hang fails the test.
        let out = run(rill_command(&addr, args), b"x\n", Duration::from_secs(15))?;
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(
            out.stderr,
            format!("rill: error: no broker answered at {addr} (connection refused)\n"),
            "{args:?}"
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// rill produce

#[test]
fn produce_sends_lines_with_keys_headers_and_partition_in_order() -> Result<()> {
    let broker = Broker::start()?;
    let b = broker.bootstrap();
    let _ = rill_ok(&b, &["topic", "create", "lines", "-p", "3"], b"")?;
    let input =
        b"user-1:clicked\nuser-2:left:early\nno separator\n:empty key\n\nlast without newline";
    let (_, err) = rill_ok(
        &b,
        &[
            "produce",
            "lines",
            "-K",
            ":",
            "-H",
            "source=test",
            "-H",
            "run=7",
            "-p",
            "1",
        ],
        input,
    )?;
    assert_eq!(err, "produced 6 records to topic 'lines'\n");

    let got = consume(&broker, Client::Confluent, "lines", 3, 6)?;
    check_offsets(&got)?;
    type Row<'a> = (i32, i64, Option<&'a [u8]>, Option<&'a [u8]>);
    let summary: Vec<Row<'_>> = got
        .records
        .iter()
        .map(|r| (r.partition, r.offset, r.key.as_deref(), r.value.as_deref()))
        .collect();
    let expected: [Row<'_>; 6] = [
        (1, 0, Some(b"user-1"), Some(b"clicked")),
        (1, 1, Some(b"user-2"), Some(b"left:early")),
        (1, 2, None, Some(b"no separator")),
        (1, 3, Some(b""), Some(b"empty key")),
        (1, 4, None, Some(b"")),
        (1, 5, None, Some(b"last without newline")),
    ];
    assert_eq!(summary, expected);
    for r in &got.records {
        assert_eq!(
            r.headers,
            [
                ("source".to_owned(), Some(b"test".to_vec())),
                ("run".to_owned(), Some(b"7".to_vec()))
            ]
        );
    }
    Ok(())
}

#[test]
fn produce_streams_a_file_with_every_codec() -> Result<()> {
    let broker = Broker::start()?;
    let b = broker.bootstrap();
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("lines.txt");
    let lines: Vec<String> = (0..3000)
        .map(|i| format!("record {i:05} with a repetitive payload payload payload payload"))
        .collect();
    std::fs::write(&path, lines.join("\n") + "\n")?;
    let file = path.to_string_lossy().into_owned();

    let mut sizes = BTreeMap::new();
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("file-{codec}");
        let (out, err) = rill_ok(&b, &["produce", &topic, "-f", &file, "-z", codec], b"")?;
        assert_eq!(out, "", "people's output only on stderr");
        assert_eq!(err, format!("produced 3000 records to topic '{topic}'\n"));
        // Read back by kcat, in order.
        let read = kcat_ok(&["-b", &b, "-C", "-t", &topic, "-e", "-q"], b"")?;
        assert_eq!(read.lines().collect::<Vec<_>>(), lines, "{codec}");
        let _ = sizes.insert(
            codec,
            segment_bytes(broker.data_dir().context("data dir")?, &topic)?,
        );
    }
    for codec in ["gzip", "snappy", "lz4", "zstd"] {
        assert!(
            sizes[codec] * 2 < sizes["none"],
            "{codec} batches are compressed: {sizes:?}"
        );
    }
    Ok(())
}

#[test]
fn produce_errors_name_the_topic() -> Result<()> {
    let broker = Broker::start_with(&[
        "--auto-create-topics",
        "false",
        "--max-message-bytes",
        "2000",
    ])?;
    let b = broker.bootstrap();
    let err = rill_fails(&b, &["produce", "missing"], b"x\n")?;
    assert!(err.contains("topic 'missing' does not exist"), "{err}");

    let _ = rill_ok(&b, &["topic", "create", "small", "-p", "2"], b"")?;
    let err = rill_fails(&b, &["produce", "small", "-p", "2"], b"x\n")?;
    assert_eq!(
        err,
        "rill: error: topic 'small' has no partition 2 (it has 2: 0 to 1)\n"
    );

    // A record larger than the broker takes: every record is accounted for, and the Kafka
    // error is named and explained.
    let _ = rill_ok(&b, &["produce", "small", "-p", "0"], b"ok\n")?;
    let big = "y".repeat(5000);
    let err = rill_fails(
        &b,
        &["produce", "small", "-p", "0"],
        format!("{big}\n").as_bytes(),
    )?;
    assert!(
        err.contains("produced 0 of 1 record to topic 'small'; 1 failed"),
        "{err}"
    );
    assert!(err.contains("producing to topic 'small'"), "{err}");
    assert!(
        err.contains("MESSAGE_TOO_LARGE: a record batch is larger than"),
        "{err}"
    );
    let read = kcat_ok(&["-b", &b, "-C", "-t", "small", "-p", "0", "-e", "-q"], b"")?;
    assert_eq!(read, "ok\n");

    let err = rill_fails(&b, &["produce", "small", "--acks", "2"], b"")?;
    assert!(err.contains("expects 0, 1, all or -1, got '2'"), "{err}");
    Ok(())
}

// ---------------------------------------------------------------------------------------
// rill consume

/// Two partitions written by confluent-kafka: keys, headers, fixed timestamps, one binary
/// value.
fn written_by_confluent(broker: &Broker, topic: &str) -> Result<()> {
    create_topic(broker, topic, 2, &[])?;
    let mut records = Vec::new();
    for i in 0..6_i64 {
        let mut r = Rec::kv(format!("k{i}"), format!("v{i}"));
        r.partition = Some(i32::from(i >= 3));
        r.timestamp = Some(1_700_000_000_000 + i * 1000);
        r.headers = vec![("h".to_owned(), Some(format!("{i}").into_bytes()))];
        records.push(r);
    }
    records.push(Rec {
        value: Some(vec![0xff, 0x00, 0x41]),
        partition: Some(1),
        timestamp: Some(1_700_000_010_000),
        ..Rec::default()
    });
    let _ = produce(broker, Client::Confluent, topic, &records, &[])?;
    Ok(())
}

fn sorted_lines(text: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort_unstable();
    lines
}

#[test]
fn consume_prints_with_formats_and_json_from_any_start() -> Result<()> {
    let broker = Broker::start()?;
    let b = broker.bootstrap();
    written_by_confluent(&broker, "c")?;

    let fmt = "%t %p %o %k=%s %T [%h] %K %S\\n";
    let (out, _) = rill_ok(
        &b,
        &["consume", "c", "--from-beginning", "-e", "-f", fmt],
        b"",
    )?;
    let mut expected: Vec<String> = (0..6_i64)
        .map(|i| {
            format!(
                "c {} {} k{i}=v{i} {} [h={i}] 2 2",
                i32::from(i >= 3),
                i % 3,
                1_700_000_000_000 + i * 1000
            )
        })
        .collect();
    expected.push("c 1 3 =\u{fffd}\u{0}A 1700000010000 [] -1 3".to_owned());
    let printed = String::from_utf8_lossy(out.as_bytes()).into_owned();
    let mut printed: Vec<&str> = printed.lines().collect();
    printed.sort_unstable();
    expected.sort_unstable();
    assert_eq!(printed, expected);
    // Within a partition, in offset order.
    let (out, _) = rill_ok(
        &b,
        &[
            "consume",
            "c",
            "-p",
            "1",
            "-o",
            "beginning",
            "-e",
            "-f",
            "%o\\n",
        ],
        b"",
    )?;
    assert_eq!(out, "0\n1\n2\n3\n");

    // JSON: one object a line; bytes that are not UTF-8 as base64.
    let (out, _) = rill_ok(&b, &["consume", "c", "-p", "1", "-o", "2", "-e", "-J"], b"")?;
    let objects: Vec<Value> = out
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(objects.len(), 2, "{out}");
    assert_eq!(
        objects[0],
        serde_json::json!({"topic": "c", "partition": 1, "offset": 2, "timestamp": 1_700_000_005_000_i64,
            "key": "k5", "value": "v5", "headers": [{"key": "h", "value": "5"}]})
    );
    assert_eq!(objects[1]["key"], Value::Null);
    assert_eq!(objects[1]["value"], serde_json::json!({"base64": "/wBB"}));

    // -N: the last N of each partition.
    let (out, _) = rill_ok(
        &b,
        &["consume", "c", "-o", "-1", "-e", "-f", "%p:%o\\n"],
        b"",
    )?;
    assert_eq!(sorted_lines(&out), ["0:2", "1:3"]);
    // --timestamp (RFC 3339 or ms): the first record at or after it (1700000004000, so
    // partition 1 from offset 1, and nothing of partition 0, whose records are older).
    let (out, _) = rill_ok(
        &b,
        &[
            "consume",
            "c",
            "--timestamp",
            "2023-11-14T22:13:24Z",
            "-e",
            "-f",
            "%p:%o\\n",
        ],
        b"",
    )?;
    assert_eq!(sorted_lines(&out), ["1:1", "1:2", "1:3"]);
    let (out, _) = rill_ok(
        &b,
        &[
            "consume",
            "c",
            "--timestamp",
            "1700000001000",
            "-e",
            "-f",
            "%s\\n",
            "-p",
            "0",
        ],
        b"",
    )?;
    assert_eq!(out, "v1\nv2\n");
    // -c: exactly that many.
    let (out, _) = rill_ok(
        &b,
        &["consume", "c", "--from-beginning", "-c", "3", "-p", "0"],
        b"",
    )?;
    assert_eq!(out, "v0\nv1\nv2\n");
    // Nothing new at the end: -e exits at once.
    let (out, _) = rill_ok(&b, &["consume", "c", "-e"], b"")?;
    assert_eq!(out, "");

    let err = rill_fails(&b, &["consume", "c", "-p", "0", "-o", "9"], b"")?;
    assert!(
        err.contains("offset 9 is out of range for topic 'c' partition 0"),
        "{err}"
    );
    let err = rill_fails(&b, &["consume", "c", "-p", "7"], b"")?;
    assert!(err.contains("topic 'c' has no partition 7"), "{err}");
    let err = rill_fails(&b, &["consume", "c", "-f", "%x"], b"")?;
    assert!(err.contains("unknown placeholder '%x'"), "{err}");
    Ok(())
}

#[test]
fn consume_ends_quietly_when_its_reader_goes_away() -> Result<()> {
    let broker = Broker::start()?;
    let b = broker.bootstrap();
    let _ = rill_ok(&b, &["produce", "p"], b"one\ntwo\nthree\n")?;
    // No -e: it would wait for more records forever, but the reader (`| head -1`) leaves.
    let mut child = rill_command(&b, &["consume", "p", "--from-beginning"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdout = BufReader::new(child.stdout.take().context("stdout")?);
    let mut line = String::new();
    let _ = stdout.read_line(&mut line)?;
    assert_eq!(line, "one\n");
    drop(stdout);
    let status = wait_timeout(&mut child, Duration::from_secs(20))?;
    let status = match status {
        Some(status) => status,
        None => {
            let _ = child.kill();
            anyhow::bail!("rill consume kept running after its reader left");
        }
    };
    assert!(status.success(), "{status}");
    Ok(())
}

// ---------------------------------------------------------------------------------------
// rill consume --group and rill group

#[test]
fn a_group_commits_what_it_printed_and_is_described_reset_and_deleted() -> Result<()> {
    let broker = Broker::start_with(&["--group-initial-rebalance-delay-ms", "0"])?;
    let b = broker.bootstrap();
    let _ = rill_ok(&b, &["topic", "create", "g", "-p", "2"], b"")?;
    for p in ["0", "1"] {
        let _ = rill_ok(&b, &["produce", "g", "-p", p], b"a\nb\nc\nd\ne\n")?;
    }

    let (out, _) = rill_ok(
        &b,
        &[
            "consume",
            "g",
            "-g",
            "billing",
            "--from-beginning",
            "-c",
            "7",
            "-f",
            "%p\\n",
        ],
        b"",
    )?;
    let mut printed = [0_i64; 2];
    for line in out.lines() {
        printed[line.parse::<usize>()?] += 1;
    }
    assert_eq!(printed.iter().sum::<i64>(), 7, "{out}");

    let (out, _) = rill_ok(&b, &["group", "list"], b"")?;
    assert_eq!(
        row_starting(&out, &["billing"]),
        Some(vec!["billing", "Empty", "consumer"])
    );
    let (out, _) = rill_ok(&b, &["group", "describe", "billing"], b"")?;
    assert!(out.starts_with("group 'billing'  state Empty"), "{out}");
    for (p, count) in printed.iter().enumerate() {
        let (committed, lag) = (count.to_string(), (5 - count).to_string());
        assert_eq!(
            row_starting(&out, &["g", &p.to_string()]),
            Some(vec!["g", &p.to_string(), &committed, "5", &lag, "-"]),
            "{out}"
        );
    }

    // A dry run prints the plan and changes nothing.
    let before = rill_ok(&b, &["group", "describe", "billing"], b"")?.0;
    let (out, _) = rill_ok(
        &b,
        &[
            "group",
            "reset-offsets",
            "billing",
            "--topic",
            "g",
            "--to-earliest",
            "--dry-run",
        ],
        b"",
    )?;
    assert_eq!(
        row_starting(&out, &["g", "0"]),
        Some(vec!["g", "0", &printed[0].to_string(), "0"])
    );
    assert_eq!(
        row_starting(&out, &["g", "1"]),
        Some(vec!["g", "1", &printed[1].to_string(), "0"])
    );
    assert!(out.contains("dry run"), "{out}");
    assert_eq!(
        rill_ok(&b, &["group", "describe", "billing"], b"")?.0,
        before
    );
    // Executed: the group is 5 behind on each partition.
    let (out, _) = rill_ok(
        &b,
        &[
            "group",
            "reset-offsets",
            "billing",
            "--all-topics",
            "--to-earliest",
        ],
        b"",
    )?;
    assert!(
        out.contains("reset the offsets of group 'billing'"),
        "{out}"
    );
    let (out, _) = rill_ok(&b, &["group", "describe", "billing"], b"")?;
    assert_eq!(
        row_starting(&out, &["g", "0"]),
        Some(vec!["g", "0", "0", "5", "5", "-"])
    );
    assert_eq!(
        row_starting(&out, &["g", "1"]),
        Some(vec!["g", "1", "0", "5", "5", "-"])
    );
    let (out, _) = rill_ok(
        &b,
        &[
            "group",
            "reset-offsets",
            "billing",
            "--topic",
            "g:1",
            "--shift-by",
            "3",
        ],
        b"",
    )?;
    assert_eq!(
        row_starting(&out, &["g", "1"]),
        Some(vec!["g", "1", "0", "3"])
    );

    // An active member: it reads from the committed offsets (8 records), and meanwhile the
    // group can be neither reset nor deleted.
    let mut member = rill_command(&b, &["consume", "g", "-g", "billing", "-f", "%p:%o\\n"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let (tx, lines) = mpsc::channel();
    let stdout = member.stdout.take().context("stdout")?;
    let _reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    while seen.len() < 7 {
        seen.push(
            lines
                .recv_timeout(Duration::from_secs(30))
                .context("the member printed too little")?,
        );
    }
    seen.sort();
    assert_eq!(seen, ["0:0", "0:1", "0:2", "0:3", "0:4", "1:3", "1:4"]);
    let err = rill_fails(
        &b,
        &[
            "group",
            "reset-offsets",
            "billing",
            "--all-topics",
            "--to-latest",
        ],
        b"",
    )?;
    assert!(err.contains("group 'billing' has 1 active member"), "{err}");
    let err = rill_fails(&b, &["group", "delete", "billing"], b"")?;
    assert!(
        err.contains("NON_EMPTY_GROUP: the group still has active members"),
        "{err}"
    );
    let (out, _) = rill_ok(&b, &["group", "describe", "billing"], b"")?;
    assert!(
        out.contains("state Stable") && out.contains("members 1"),
        "{out}"
    );
    let member_row = rows(&out)
        .into_iter()
        .find(|cells| cells.get(1).is_some_and(|c| c == "rill-cli"))
        .context("no member row")?;
    assert_eq!(member_row[2..], ["/127.0.0.1", "g:0,1"], "{out}");

    // Ctrl-C: the member commits what it printed and leaves.
    kill_int(member.id())?;
    let status = wait_timeout(&mut member, Duration::from_secs(20))?
        .context("the member did not exit on SIGINT")?;
    assert!(status.success(), "{status}");
    let (out, _) = rill_ok(&b, &["group", "describe", "billing"], b"")?;
    assert!(out.contains("state Empty"), "{out}");
    assert_eq!(
        row_starting(&out, &["g", "0"]),
        Some(vec!["g", "0", "5", "5", "0", "-"])
    );
    assert_eq!(
        row_starting(&out, &["g", "1"]),
        Some(vec!["g", "1", "5", "5", "0", "-"])
    );

    let (out, _) = rill_ok(&b, &["group", "delete", "billing"], b"")?;
    assert_eq!(out, "deleted group 'billing'\n");
    let err = rill_fails(&b, &["group", "describe", "billing"], b"")?;
    assert_eq!(err, "rill: error: group 'billing' does not exist\n");
    let (out, _) = rill_ok(&b, &["group", "list"], b"")?;
    assert!(row_starting(&out, &["billing"]).is_none(), "{out}");
    Ok(())
}

#[test]
fn a_group_consume_with_exit_at_end_reads_what_is_left() -> Result<()> {
    let broker = Broker::start_with(&["--group-initial-rebalance-delay-ms", "0"])?;
    let b = broker.bootstrap();
    let _ = rill_ok(&b, &["topic", "create", "e", "-p", "2"], b"")?;
    let _ = rill_ok(&b, &["produce", "e", "-p", "0"], b"1\n2\n3\n")?;
    let _ = rill_ok(
        &b,
        &[
            "group",
            "reset-offsets",
            "readers",
            "--topic",
            "e",
            "--to-offset",
            "1",
        ],
        b"",
    )?;
    // Partition 0 from its committed offset 1; partition 1 (empty) is at its end already.
    let (out, _) = rill_ok(&b, &["consume", "e", "-g", "readers", "-e"], b"")?;
    assert_eq!(out, "2\n3\n");
    eventually("the group is empty again", || {
        let (out, _) = rill_ok(&b, &["group", "describe", "readers"], b"")?;
        Ok(out.contains("state Empty"))
    })?;
    let (out, _) = rill_ok(&b, &["group", "describe", "readers"], b"")?;
    assert_eq!(
        row_starting(&out, &["e", "0"]),
        Some(vec!["e", "0", "3", "3", "0", "-"])
    );
    Ok(())
}
