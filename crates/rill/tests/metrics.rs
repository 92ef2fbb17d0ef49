//! The admin HTTP listener: `/metrics` moving exactly with what real clients do, the health
//! endpoints, `/status`, HTTP errors, hostile HTTP clients, `--admin-listen none`, a busy admin
//! port, and the connection and request spans in JSON logs.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use common::{
    Broker, Client, HttpResponse, Rec, Result, Scrape, api_versions_v0, assert_healthy, call,
    connect, consume, create_topic, http_call, http_get, http_raw, ms, parse_metrics,
    parse_response, produce, produce_one, run, run_py, scrape, segment_bytes,
};
use rill_protocol::kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use rill_protocol::kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use rill_protocol::kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use rill_protocol::kafka_protocol::messages::{
    BrokerId, DeleteTopicsRequest, FetchRequest, GroupId, JoinGroupRequest, SyncGroupRequest,
    TopicName,
};
use rill_protocol::{ApiKey, ErrorCode, ResponseKind, StrBytes};
use rill_record::{BatchBuilder, RecordSpec};
use serde_json::Value;

const UNKNOWN: &str = "UNKNOWN_TOPIC_OR_PARTITION";

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

/// Scrapes until `check` accepts the scrape (bounded), for values that settle asynchronously
/// (a closed connection is noticed by the broker a moment after the client closes it).
fn scrape_until(broker: &Broker, what: &str, check: impl Fn(&Scrape) -> bool) -> Result<Scrape> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = scrape(broker)?;
        if check(&now) {
            return Ok(now);
        }
        if Instant::now() > deadline {
            bail!("{what} never happened; last scrape:\n{:#?}", now.samples);
        }
        std::thread::sleep(ms(20));
    }
}

fn batch(values: &[&str]) -> Result<Bytes> {
    let mut builder = BatchBuilder::new();
    for v in values {
        builder = builder.record(RecordSpec::new(1_700_000_000_000).value(v.to_string()));
    }
    Ok(builder.build()?)
}

/// Fetch v12 of partition 0 of `topic` from offset 0; returns the partition's error code.
fn fetch_error(stream: &mut TcpStream, topic: &str, correlation_id: i32) -> Result<i16> {
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(TopicName(text(topic)))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let ResponseKind::Fetch(response) = call(stream, ApiKey::Fetch, 12, correlation_id, request)?
    else {
        bail!("not a fetch answer");
    };
    response
        .responses
        .first()
        .and_then(|t| t.partitions.first())
        .map(|p| p.error_code)
        .context("no partition in the fetch answer")
}

fn status(broker: &Broker) -> Result<Value> {
    let response = http_get(broker, "/status")?;
    ensure!(
        response.status == 200,
        "/status answered {}: {}",
        response.status,
        String::from_utf8_lossy(&response.body)
    );
    ensure!(
        response.header("content-type") == Some("application/json"),
        "/status content type {:?}",
        response.header("content-type")
    );
    Ok(serde_json::from_slice(&response.body)?)
}

fn find<'a>(list: &'a Value, key: &str, value: &str) -> Result<&'a Value> {
    list.as_array()
        .context("not a list")?
        .iter()
        .find(|item| item.get(key).and_then(Value::as_str) == Some(value))
        .with_context(|| format!("no {key} = {value} in {list}"))
}

#[test]
fn metrics_follow_produce_consume_commits_errors_and_connections() -> Result<()> {
    let broker = Broker::start()?;
    broker.wait_ready()?;
    let topic = "orders";
    create_topic(&broker, topic, 1, &[])?;
    let before = scrape(&broker)?;
    let t = [("topic", topic)];
    let tp = [("topic", topic), ("partition", "0")];
    let produce_api = [("api", "Produce")];
    ensure!(before.get("rill_partition_log_end_offset", &tp) == Some(0.0));
    ensure!(before.get("rill_topic_records_in_total", &t) == Some(0.0));

    // N records with acks=all (produce.py's default), fsynced before they are acknowledged.
    let n = 40;
    let records: Vec<Rec> = (0..n)
        .map(|i| Rec::kv(format!("k{i}"), format!("value-{i}")))
        .collect();
    let _ = produce(&broker, Client::Confluent, topic, &records, &[])?;
    let after = scrape(&broker)?;
    let delta = |name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels) - before.value(name, labels)
    };
    ensure!(
        delta("rill_topic_records_in_total", &t) == f64::from(n),
        "records in moved by {}",
        delta("rill_topic_records_in_total", &t)
    );
    let bytes_in = after.value("rill_topic_bytes_in_total", &t);
    let size = after.value("rill_partition_size_bytes", &tp);
    let on_disk = segment_bytes(broker.data_dir().context("data dir")?, topic)?;
    // Nothing but those batches was written: the counter, the published size and the segment
    // files agree to the byte.
    ensure!(
        bytes_in > 0.0 && bytes_in == size && size == on_disk as f64,
        "bytes in {bytes_in}, partition size {size}, segment files {on_disk}"
    );
    ensure!(after.get("rill_partition_log_end_offset", &tp) == Some(f64::from(n)));
    ensure!(after.get("rill_partition_log_start_offset", &tp) == Some(0.0));
    let produces = delta("rill_requests_total", &produce_api);
    ensure!(produces >= 1.0, "Produce requests moved by {produces}");
    ensure!(
        delta("rill_request_duration_seconds_count", &produce_api) == produces,
        "the Produce latency histogram counted {} of {produces} requests",
        delta("rill_request_duration_seconds_count", &produce_api)
    );
    ensure!(
        delta("rill_fsync_duration_seconds_count", &[]) >= 1.0,
        "no fsync counted for an acks=all produce"
    );
    ensure!(delta("rill_connections_accepted_total", &[]) >= 1.0);

    // Consume them all.
    let consumed = consume(&broker, Client::Confluent, topic, 1, n as usize)?;
    ensure!(
        consumed.records.len() == n as usize,
        "consumed {}",
        consumed.records.len()
    );
    let read = scrape(&broker)?;
    let records_out = read.value("rill_topic_records_out_total", &t);
    ensure!(records_out >= f64::from(n), "records out {records_out}");
    ensure!(
        read.value("rill_topic_bytes_out_total", &t) >= bytes_in,
        "bytes out {} < bytes in {bytes_in}",
        read.value("rill_topic_bytes_out_total", &t)
    );

    // A group commits offset K of N: its lag is N - K.
    let k = 15;
    let out = run_py(
        "standalone.py",
        &[
            broker.bootstrap(),
            "lagging".to_owned(),
            "commit".to_owned(),
            format!("{topic}:0:{k}"),
        ],
        b"",
    )?;
    ensure!(out.get("committed").is_some(), "standalone.py: {out}");
    let committed = scrape(&broker)?;
    let gtp = [("group", "lagging"), ("topic", topic), ("partition", "0")];
    ensure!(
        committed.get("rill_group_committed_offset", &gtp) == Some(f64::from(k))
            && committed.get("rill_group_lag", &gtp) == Some(f64::from(n - k)),
        "committed {:?}, lag {:?}",
        committed.get("rill_group_committed_offset", &gtp),
        committed.get("rill_group_lag", &gtp)
    );

    // /status says the same.
    let doc = status(&broker)?;
    let orders = find(&doc["topics"], "name", topic)?;
    let partition = &orders["partitions"][0];
    ensure!(
        partition["partition"] == 0
            && partition["log_start_offset"] == 0
            && partition["log_end_offset"] == n
            && partition["size_bytes"].as_f64() == Some(size),
        "status partition {partition}"
    );
    let group = find(&doc["groups"], "group_id", "lagging")?;
    ensure!(group["state"] == "Empty", "group {group}");
    let offsets = &group["offsets"][0];
    ensure!(
        offsets["topic"] == topic
            && offsets["partition"] == 0
            && offsets["committed_offset"] == k
            && offsets["log_end_offset"] == n
            && offsets["lag"] == n - k,
        "status offsets {offsets}"
    );

    // Errors: a produce to a partition that does not exist, a fetch of an unknown topic.
    let mut stream = connect(&broker)?;
    let before_errors = scrape(&broker)?;
    let (code, _) = produce_one(&mut stream, topic, 7, batch(&["x"])?, 1)?;
    ensure!(
        code == ErrorCode::UnknownTopicOrPartition.code(),
        "produce answered {code}"
    );
    let code = fetch_error(&mut stream, "no-such-topic", 2)?;
    ensure!(
        code == ErrorCode::UnknownTopicOrPartition.code(),
        "fetch answered {code}"
    );
    let errors = scrape(&broker)?;
    for api in ["Produce", "Fetch"] {
        let labels = [("api", api), ("error", UNKNOWN)];
        let moved = errors.value("rill_errors_total", &labels)
            - before_errors.value("rill_errors_total", &labels);
        ensure!(moved == 1.0, "{api} {UNKNOWN} errors moved by {moved}");
    }
    // Every family has series by now.
    for (family, kind) in [
        ("rill_requests_total", "counter"),
        ("rill_request_duration_seconds", "histogram"),
        ("rill_errors_total", "counter"),
        ("rill_topic_bytes_in_total", "counter"),
        ("rill_topic_records_in_total", "counter"),
        ("rill_topic_bytes_out_total", "counter"),
        ("rill_topic_records_out_total", "counter"),
        ("rill_partition_log_end_offset", "gauge"),
        ("rill_partition_log_start_offset", "gauge"),
        ("rill_partition_size_bytes", "gauge"),
        ("rill_group_lag", "gauge"),
        ("rill_group_committed_offset", "gauge"),
        ("rill_connections", "gauge"),
        ("rill_connections_accepted_total", "counter"),
        ("rill_fsync_duration_seconds", "histogram"),
        ("rill_storage_open_files", "gauge"),
        ("rill_storage_file_opens_total", "counter"),
        ("rill_quorum", "gauge"),
        ("rill_build_info", "gauge"),
        ("rill_start_time_seconds", "gauge"),
    ] {
        ensure!(
            errors.type_of(family) == Some(kind),
            "# TYPE of {family}: {:?}, expected {kind}",
            errors.type_of(family)
        );
    }
    // The partitions' segment files are held by the descriptor cache, within its cap.
    let open_files = errors.value("rill_storage_open_files", &[]);
    ensure!(
        (1.0..=10_000.0).contains(&open_files),
        "rill_storage_open_files: {open_files}"
    );
    // A one-node cluster: node 0 leads the quorum of itself, having applied all it committed.
    let quorum = |field: &str| errors.value("rill_quorum", &[("field", field)]);
    ensure!(
        quorum("leader") == 0.0
            && quorum("is_leader") == 1.0
            && quorum("voters") == 1.0
            && quorum("term") >= 1.0
            && quorum("commit_index") >= 2.0
            && quorum("apply_lag") == 0.0,
        "rill_quorum: {:?}",
        errors.all("rill_quorum")
    );
    ensure!(
        before.get("rill_build_info", &[("version", env!("CARGO_PKG_VERSION"))]) == Some(1.0),
        "build info: {:?}",
        before.all("rill_build_info")
    );
    drop(stream);

    // Connections: once the clients are gone none is open; two raw ones are two.
    let idle = scrape_until(&broker, "every connection closed", |s| {
        s.get("rill_connections", &[]) == Some(0.0)
    })?;
    let mut one = connect(&broker)?;
    let mut two = connect(&broker)?;
    let _ = api_versions_v0(&mut one, 1)?;
    let _ = api_versions_v0(&mut two, 1)?;
    let open = scrape(&broker)?;
    ensure!(
        open.get("rill_connections", &[]) == Some(2.0),
        "connections {:?}",
        open.get("rill_connections", &[])
    );
    ensure!(
        open.value("rill_connections_accepted_total", &[])
            - idle.value("rill_connections_accepted_total", &[])
            == 2.0
    );
    drop(one);
    let _ = scrape_until(&broker, "one connection closed", |s| {
        s.get("rill_connections", &[]) == Some(1.0)
    })?;

    // A deleted topic's series are gone at the next scrape.
    let request = DeleteTopicsRequest::default()
        .with_topic_names(vec![TopicName(text(topic))])
        .with_timeout_ms(5000);
    let ResponseKind::DeleteTopics(deleted) = call(&mut two, ApiKey::DeleteTopics, 4, 2, request)?
    else {
        bail!("not a DeleteTopics answer");
    };
    ensure!(deleted.responses.first().map(|r| r.error_code) == Some(0));
    let gone = scrape(&broker)?;
    let left: Vec<_> = gone
        .samples
        .iter()
        .filter(|s| s.labels.get("topic").is_some_and(|v| v == topic))
        .filter(|s| !s.name.starts_with("rill_group_"))
        .collect();
    ensure!(left.is_empty(), "series of a deleted topic: {left:?}");
    // The group still has its committed offset, but no lag without a log end.
    ensure!(
        gone.get("rill_group_committed_offset", &gtp) == Some(f64::from(k))
            && gone.get("rill_group_lag", &gtp).is_none()
    );
    Ok(())
}

/// Joins `group` as its only member (JoinGroup v5, SyncGroup v3) and hands itself partitions 0
/// and 1 of `topic`; the connection keeps the member alive.
fn join_alone(stream: &mut TcpStream, group: &str, topic: &str) -> Result<String> {
    let subscription = {
        let mut out = 0_i16.to_be_bytes().to_vec();
        out.extend_from_slice(&1_i32.to_be_bytes());
        out.extend_from_slice(&i16::try_from(topic.len())?.to_be_bytes());
        out.extend_from_slice(topic.as_bytes());
        out.extend_from_slice(&(-1_i32).to_be_bytes());
        out
    };
    let mut member_id = String::new();
    let joined = loop {
        let request = JoinGroupRequest::default()
            .with_group_id(GroupId(text(group)))
            .with_session_timeout_ms(30_000)
            .with_rebalance_timeout_ms(30_000)
            .with_member_id(text(&member_id))
            .with_protocol_type(text("consumer"))
            .with_protocols(vec![
                JoinGroupRequestProtocol::default()
                    .with_name(text("range"))
                    .with_metadata(Bytes::from(subscription.clone())),
            ]);
        let ResponseKind::JoinGroup(joined) = call(stream, ApiKey::JoinGroup, 5, 10, request)?
        else {
            bail!("not a JoinGroup answer");
        };
        if joined.error_code == ErrorCode::MemberIdRequired.code() && member_id.is_empty() {
            member_id = joined.member_id.to_string();
            continue;
        }
        ensure!(
            joined.error_code == 0,
            "JoinGroup answered {}",
            joined.error_code
        );
        break joined;
    };
    ensure!(
        joined.leader == joined.member_id,
        "not the leader: {joined:?}"
    );
    let assignment = {
        let mut out = 0_i16.to_be_bytes().to_vec();
        out.extend_from_slice(&1_i32.to_be_bytes());
        out.extend_from_slice(&i16::try_from(topic.len())?.to_be_bytes());
        out.extend_from_slice(topic.as_bytes());
        out.extend_from_slice(&2_i32.to_be_bytes());
        out.extend_from_slice(&0_i32.to_be_bytes());
        out.extend_from_slice(&1_i32.to_be_bytes());
        out.extend_from_slice(&(-1_i32).to_be_bytes());
        out
    };
    let request = SyncGroupRequest::default()
        .with_group_id(GroupId(text(group)))
        .with_generation_id(joined.generation_id)
        .with_member_id(joined.member_id.clone())
        .with_assignments(vec![
            SyncGroupRequestAssignment::default()
                .with_member_id(joined.member_id.clone())
                .with_assignment(Bytes::from(assignment)),
        ]);
    let ResponseKind::SyncGroup(synced) = call(stream, ApiKey::SyncGroup, 3, 11, request)? else {
        bail!("not a SyncGroup answer");
    };
    ensure!(
        synced.error_code == 0,
        "SyncGroup answered {}",
        synced.error_code
    );
    Ok(joined.member_id.to_string())
}

#[test]
fn health_status_members_and_http_errors() -> Result<()> {
    let broker = Broker::start_with(&["--group-initial-rebalance-delay-ms", "0"])?;
    broker.wait_ready()?;
    for (path, body) in [("/health/live", "live\n"), ("/health/ready", "ready\n")] {
        let response = http_get(&broker, path)?;
        ensure!(
            response.status == 200 && response.text()? == body,
            "{path}: {} {:?}",
            response.status,
            response.text()
        );
    }
    create_topic(&broker, "events", 2, &["retention.ms=3600000"])?;
    let mut member = connect(&broker)?;
    let member_id = join_alone(&mut member, "watchers", "events")?;

    let doc = status(&broker)?;
    let b = &doc["broker"];
    let bootstrap = broker.bootstrap();
    ensure!(
        b["node_id"] == 0
            && b["version"] == env!("CARGO_PKG_VERSION")
            && b["listener"] == bootstrap.as_str()
            && b["advertised"] == bootstrap.as_str()
            && b["cluster_id"].as_str().is_some_and(|id| !id.is_empty())
            && b["uptime_seconds"].is_u64(),
        "broker {b}"
    );
    let events = find(&doc["topics"], "name", "events")?;
    ensure!(
        events["configs"]["retention.ms"] == "3600000"
            && events["id"].as_str().is_some_and(|id| id.len() == 36)
            && events["partitions"].as_array().map(Vec::len) == Some(2)
            && events["partitions"][1]["partition"] == 1,
        "topic {events}"
    );
    let group = find(&doc["groups"], "group_id", "watchers")?;
    ensure!(
        group["state"] == "Stable"
            && group["protocol_type"] == "consumer"
            && group["protocol"] == "range",
        "group {group}"
    );
    let m = &group["members"][0];
    ensure!(
        m["member_id"] == member_id.as_str()
            && m["client_id"] == "rill-test"
            && m["host"].as_str().is_some_and(|h| h.contains("127.0.0.1"))
            && m["assignment"] == serde_json::json!([{"topic": "events", "partitions": [0, 1]}]),
        "member {m}"
    );

    // 404 for unknown paths (whatever the method), 405 for other methods on known ones.
    for (method, path) in [("GET", "/"), ("GET", "/metrics/x"), ("POST", "/nope")] {
        let response = http_call(&broker, method, path)?;
        ensure!(
            response.status == 404,
            "{method} {path}: {}",
            response.status
        );
    }
    for path in ["/metrics", "/health/live", "/health/ready", "/status"] {
        for method in ["POST", "PUT", "DELETE"] {
            let response = http_call(&broker, method, path)?;
            ensure!(
                response.status == 405 && response.header("allow") == Some("GET, HEAD"),
                "{method} {path}: {} {:?}",
                response.status,
                response.headers
            );
        }
    }
    // A query string does not change the route.
    ensure!(http_get(&broker, "/health/live?verbose=1")?.status == 200);
    drop(member);
    Ok(())
}

/// Writes `bytes` (ignoring a server that closes first) and reads what comes back.
fn send_hostile(addr: std::net::SocketAddr, bytes: &[u8]) -> Result<Vec<u8>> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(15)))?;
    stream.set_write_timeout(Some(Duration::from_secs(15)))?;
    let _ = stream.write_all(bytes);
    let _ = stream.shutdown(Shutdown::Write);
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    Ok(out)
}

fn status_of(raw: &[u8]) -> Option<u16> {
    parse_response(raw).ok().map(|r: HttpResponse| r.status)
}

#[test]
fn hostile_http_clients_do_not_hurt_the_broker() -> Result<()> {
    let mut broker = Broker::start()?;
    broker.wait_ready()?;
    let addr = broker.admin_addr().context("no admin listener")?;

    // Garbage, a request line without a version, an HTTP/2 preface: 400 or a close.
    for garbage in [
        &b"\x00\x01\x02\xff\xfe garbage\r\n\r\n"[..],
        b"GET /metrics\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
    ] {
        let answer = send_hostile(addr, garbage)?;
        ensure!(
            answer.is_empty() || status_of(&answer).is_some_and(|s| (400..500).contains(&s)),
            "{garbage:?} got {:?}",
            String::from_utf8_lossy(&answer)
        );
    }
    // A 1 MiB header: refused (431) or cut off, never buffered whole.
    let mut huge = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Huge: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 1 << 20));
    huge.extend_from_slice(b"\r\n\r\n");
    let answer = send_hostile(addr, &huge)?;
    ensure!(
        answer.is_empty() || status_of(&answer) == Some(431),
        "huge header got {:?}",
        String::from_utf8_lossy(&answer[..answer.len().min(200)])
    );
    // Half a request, then a disconnect.
    {
        let mut half = TcpStream::connect(addr)?;
        half.write_all(b"GET /metr")?;
    }
    // A client that sends half a request and stalls does not block the others.
    let mut stalled = TcpStream::connect(addr)?;
    stalled.write_all(b"GET /status HTTP/1.1\r\nHost: x\r\n")?;
    ensure!(http_get(&broker, "/health/live")?.status == 200);
    // Many idle connections at once: beyond the cap they are closed, and once they are gone
    // the listener answers again.
    let idle: Vec<TcpStream> = (0..100)
        .filter_map(|_| TcpStream::connect(addr).ok())
        .collect();
    drop(idle);
    drop(stalled);
    let deadline = Instant::now() + Duration::from_secs(10);
    while http_get(&broker, "/health/live").map(|r| r.status).ok() != Some(200) {
        ensure!(Instant::now() < deadline, "admin http never answered again");
        std::thread::sleep(ms(20));
    }
    // Pipelined requests on one connection are answered in order.
    let raw = http_raw(
        addr,
        b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )?;
    let text = String::from_utf8_lossy(&raw);
    ensure!(
        text.starts_with("HTTP/1.1 200") && text.contains("HTTP/1.1 404"),
        "pipelined: {text}"
    );

    // The broker still serves Kafka and HTTP.
    assert_healthy(&mut broker)?;
    let metrics = scrape(&broker)?;
    ensure!(metrics.get("rill_build_info", &[("version", env!("CARGO_PKG_VERSION"))]) == Some(1.0));
    ensure!(http_get(&broker, "/health/ready")?.status == 200);
    Ok(())
}

#[test]
fn admin_listen_none_runs_without_it_and_a_restart_finds_the_new_port() -> Result<()> {
    let mut off = Broker::start_with(&["--admin-listen", "none"])?;
    ensure!(
        off.admin_addr().is_none(),
        "admin at {:?}",
        off.admin_addr()
    );
    ensure!(
        off.output_text().contains("admin http:  off"),
        "{}",
        off.output_tail(10)
    );
    assert_healthy(&mut off)?;
    off.stop()?;

    // A restart binds a new port 0 and the harness re-reads it; the offsets survive.
    let mut broker = Broker::start()?;
    create_topic(&broker, "kept", 1, &[])?;
    let mut stream = connect(&broker)?;
    let (code, _) = produce_one(&mut stream, "kept", 0, batch(&["a", "b", "c"])?, 1)?;
    ensure!(code == 0, "produce to kept answered {code}");
    drop(stream);
    let first = broker.admin_addr();
    broker.restart()?;
    ensure!(
        broker.admin_addr().is_some(),
        "no admin address after the restart"
    );
    broker.wait_ready()?;
    let restarted = scrape(&broker)?;
    ensure!(
        restarted.get(
            "rill_partition_log_end_offset",
            &[("topic", "kept"), ("partition", "0")]
        ) == Some(3.0),
        "after a restart (admin was {first:?}, now {:?}): {:?}",
        broker.admin_addr(),
        restarted.all("rill_partition_log_end_offset")
    );
    // Counters start again at zero with the process.
    ensure!(restarted.get("rill_topic_records_in_total", &[("topic", "kept")]) == Some(0.0));
    Ok(())
}

#[test]
fn a_busy_admin_port_fails_start_up_naming_the_address() -> Result<()> {
    let taken = TcpListener::bind("127.0.0.1:0")?;
    let busy = taken.local_addr()?;
    let data = tempfile::tempdir()?;
    let mut command = Command::new(env!("CARGO_BIN_EXE_rill"));
    let _ = command.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        &data.path().to_string_lossy(),
        "--admin-listen",
        &busy.to_string(),
    ]);
    let out = run(command, b"", Duration::from_secs(20))?;
    ensure!(
        !out.status.success(),
        "rill serve started on a busy admin port"
    );
    let expected = format!("rill: error: cannot listen for admin http on {busy}");
    ensure!(
        out.stderr
            .lines()
            .any(|l| l.starts_with(&expected) && l.contains("in use")),
        "stderr: {}",
        out.stderr
    );
    ensure!(
        !String::from_utf8_lossy(&out.stdout).contains("listening on"),
        "the banner was printed before the failure"
    );

    // A value that is neither an address nor `none` is refused by the flag parser.
    let mut command = Command::new(env!("CARGO_BIN_EXE_rill"));
    let _ = command.args(["serve", "--admin-listen", "localhost"]);
    let out = run(command, b"", Duration::from_secs(20))?;
    ensure!(
        !out.status.success()
            && out.stderr.contains("--admin-listen")
            && out.stderr.contains("none"),
        "stderr: {}",
        out.stderr
    );
    drop(taken);
    Ok(())
}

#[test]
fn json_logs_carry_the_connection_and_request_spans() -> Result<()> {
    let broker = Broker::start_with_env(
        &["--log-format", "json"],
        &[("RILL_LOG", "rill_broker=debug")],
    )?;
    let mut stream = connect(&broker)?;
    let peer = stream.local_addr()?.to_string();
    // A produce to a topic that does not exist is refused with a debug event in the request.
    let (code, _) = produce_one(&mut stream, "absent", 0, batch(&["x"])?, 4242)?;
    ensure!(code == ErrorCode::UnknownTopicOrPartition.code());
    let deadline = Instant::now() + Duration::from_secs(10);
    let event: Value = loop {
        let found = broker.output_text().lines().find_map(|line| {
            let json = line.strip_prefix("[err] ")?;
            let value: Value = serde_json::from_str(json).ok()?;
            (value["fields"]["message"] == "produce refused").then_some(value)
        });
        if let Some(event) = found {
            break event;
        }
        ensure!(
            Instant::now() < deadline,
            "no `produce refused` event\n{}",
            broker.output_tail(40)
        );
        std::thread::sleep(ms(20));
    };
    // The event's own fields do not collide with its message (a JSON object with two
    // `message` keys loses one).
    ensure!(
        event["level"] == "DEBUG"
            && event["fields"]["error"] == UNKNOWN
            && event["fields"]["reason"] == "topic 'absent' does not exist",
        "event {event}"
    );
    let spans = event["spans"].as_array().context("no spans")?;
    let connection = find(&event["spans"], "name", "connection")?;
    ensure!(
        connection["peer"] == peer.as_str(),
        "connection span {connection}"
    );
    let request = find(&event["spans"], "name", "request")?;
    ensure!(
        request["api_key"] == "Produce"
            && request["api_version"] == 9
            && request["correlation_id"] == 4242,
        "request span {request}"
    );
    ensure!(spans.len() == 2, "spans {spans:?}");
    Ok(())
}

#[test]
fn the_test_parser_reads_labels_escapes_and_histograms() -> Result<()> {
    let text = "# HELP a_total help\n# TYPE a_total counter\n\
                a_total{x=\"1\",y=\"q\\\"\\\\\\n,}\"} 3\n\
                # TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 0.5\nh_count 2\n\
                # TYPE g gauge\ng 1e3 1700000000\n";
    let scrape = parse_metrics(text)?;
    ensure!(scrape.get("a_total", &[("x", "1"), ("y", "q\"\\\n,}")]) == Some(3.0));
    ensure!(scrape.get("h_count", &[]) == Some(2.0));
    ensure!(scrape.get("g", &[]) == Some(1000.0));
    ensure!(parse_metrics("undeclared 1\n").is_err());
    ensure!(parse_metrics("# TYPE c counter\nc 1\n").is_err());
    ensure!(parse_metrics("# TYPE g gauge\ng{x=\"1} 1\n").is_err());
    Ok(())
}
