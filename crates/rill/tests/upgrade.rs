//! Upgrade in place: a data directory written by the single-node Rill before the metadata
//! quorum (tests/fixtures/legacy-single-node, see its README) starts under today's broker with
//! every topic, record, config override, dynamic broker config and committed offset it had,
//! and keeps them over more restarts.

#[macro_use]
mod common;

use anyhow::{Context, ensure};
use common::{Broker, Conn, Result, rill_ok, row_starting, rows, run_py};
use rill_protocol::StrBytes;
use rill_protocol::kafka_protocol::messages::DescribeConfigsRequest;
use rill_protocol::kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use serde_json::json;

/// Kafka's BROKER config resource type.
const BROKER: i8 = 4;

/// Starts a broker on a copy of the fixture.
fn upgraded() -> Result<Broker> {
    let mut broker = Broker::start()?;
    broker.stop()?;
    let data_dir = broker.data_dir().context("a local broker")?.to_path_buf();
    std::fs::remove_dir_all(&data_dir)?;
    common::copy_dir(&common::fixture("legacy-single-node"), &data_dir)?;
    broker.restart()?;
    Ok(broker)
}

/// What the fixture holds, and what must survive every restart.
fn check(broker: &Broker) -> Result<()> {
    let b = broker.bootstrap();
    let (topics, _) = rill_ok(&b, &["topic", "list"], b"")?;
    let names: Vec<String> = rows(&topics)
        .into_iter()
        .skip(1)
        .map(|r| r[0].clone())
        .collect();
    ensure!(names == ["configured", "orders"], "topics: {names:?}");

    // Every record, at its offset, in each partition.
    let (out, _) = rill_ok(
        &b,
        &[
            "consume",
            "orders",
            "-o",
            "beginning",
            "-c",
            "30",
            "-f",
            "%p %o %s\n",
        ],
        b"",
    )?;
    let mut got: Vec<String> = out.lines().map(str::to_owned).collect();
    got.sort();
    let mut want: Vec<String> = (0..3)
        .flat_map(|p| (1..=10).map(move |n| format!("{p} {} p{p}-{n}", n - 1)))
        .collect();
    want.sort();
    ensure!(got == want, "orders: {got:?}");

    // The topic override and the broker's dynamic config.
    let (described, _) = rill_ok(&b, &["topic", "describe", "configured"], b"")?;
    ensure!(
        row_starting(&described, &["*", "retention.ms"])
            .is_some_and(|r| r.get(2) == Some(&"3600000")),
        "configured's retention.ms:\n{described}"
    );
    let mut conn = Conn::open(broker)?;
    let request = DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(BROKER)
            .with_resource_name(StrBytes::from_static_str("0"))
            .with_configuration_keys(Some(vec![StrBytes::from_static_str("log.retention.ms")])),
    ]);
    let response = ask!(&mut conn, DescribeConfigs, 4, request);
    let value = response
        .results
        .first()
        .and_then(|r| r.configs.first())
        .and_then(|c| c.value.as_ref().map(ToString::to_string));
    ensure!(
        value.as_deref() == Some("86400000"),
        "broker 0's log.retention.ms: {value:?}"
    );

    // Group g1's committed offsets, as a client reads them.
    let partitions: Vec<String> = (0..3).map(|p| format!("orders:{p}")).collect();
    let mut args = vec![b.clone(), "g1".to_owned(), "committed".to_owned()];
    args.extend(partitions);
    let out = run_py("standalone.py", &args, b"")?;
    for p in 0..3 {
        let got = &out["committed"][format!("orders:{p}")]["offset"];
        ensure!(*got == json!(10), "g1 orders:{p}: {got}");
    }
    Ok(())
}

#[test]
fn a_single_node_data_dir_is_upgraded_in_place_and_stays_so() -> Result<()> {
    let mut broker = upgraded()?;
    check(&broker)?;
    // The same cluster id as the fixture's meta.properties, and the deleted topic stays gone.
    let fixture_id =
        std::fs::read_to_string(common::fixture("legacy-single-node/meta.properties"))?;
    let data_dir = broker.data_dir().context("a local broker")?.to_path_buf();
    let now_id = std::fs::read_to_string(data_dir.join("meta.properties"))?;
    ensure!(fixture_id == now_id, "meta.properties changed:\n{now_id}");
    ensure!(!data_dir.join("doomed-0").exists());

    // New records after the upgrade, then a clean restart and a kill -9: everything stays.
    let b = broker.bootstrap();
    let _ = rill_ok(&b, &["produce", "orders", "-p", "1"], b"after-upgrade\n")?;
    broker.restart()?;
    check_after(&broker)?;
    broker.kill9()?;
    broker.restart()?;
    check_after(&broker)?;
    broker.stop()?;
    Ok(())
}

fn check_after(broker: &Broker) -> Result<()> {
    let b = broker.bootstrap();
    let (out, _) = rill_ok(
        &b,
        &[
            "consume", "orders", "-p", "1", "-o", "10", "-c", "1", "-f", "%o %s\n",
        ],
        b"",
    )?;
    ensure!(
        out.trim() == "10 after-upgrade",
        "partition 1 from 10: {out}"
    );
    let (topics, _) = rill_ok(&b, &["topic", "list"], b"")?;
    ensure!(rows(&topics).len() == 3, "topics:\n{topics}");
    Ok(())
}
