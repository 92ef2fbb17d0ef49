//! kill -9 of the metadata quorum's leader while topics are being created through every
//! broker: once the cluster settles, every broker returns the same Metadata (brokers, topics,
//! partition counts, leaders, leader epochs), every topic whose CreateTopics succeeded exists
//! whole, and no topic exists that was never asked for. A topic whose CreateTopics failed or got
//! no answer may exist or not, but everywhere the same.

#[macro_use]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use common::{Broker, Conn, Result, scrape};
use rill_protocol::StrBytes;
use rill_protocol::kafka_protocol::messages::create_topics_request::CreatableTopic;
use rill_protocol::kafka_protocol::messages::{CreateTopicsRequest, MetadataRequest, TopicName};

const PARTITIONS: usize = 2;

/// A topic asked for, and what its CreateTopics said (see [`create`]).
type Outcome = (String, Option<bool>);

/// What a broker's Metadata says: broker ids, and per topic each partition's (leader, epoch).
type View = (BTreeSet<i32>, BTreeMap<String, Vec<(i32, i32)>>);

fn view(broker: &Broker) -> Result<View> {
    let mut conn = Conn::open(broker)?;
    let request = MetadataRequest::default()
        .with_topics(None)
        .with_allow_auto_topic_creation(false);
    let response = ask!(&mut conn, Metadata, 12, request);
    let brokers = response.brokers.iter().map(|b| b.node_id.0).collect();
    let mut topics = BTreeMap::new();
    for topic in response.topics {
        let name = topic.name.context("a topic without a name")?.0.to_string();
        let mut partitions: Vec<(i32, i32, i32)> = topic
            .partitions
            .iter()
            .map(|p| (p.partition_index, p.leader_id.0, p.leader_epoch))
            .collect();
        partitions.sort_unstable();
        let _ = topics.insert(
            name,
            partitions.into_iter().map(|(_, l, e)| (l, e)).collect(),
        );
    }
    Ok((brokers, topics))
}

/// One CreateTopics through `broker`: Some(true) created, Some(false) refused as existing,
/// None for anything else (no answer, another error).
fn create(bootstrap: &str, name: &str) -> Option<bool> {
    let mut conn = Conn::open_at(bootstrap).ok()?;
    let _ = conn.stream.set_read_timeout(Some(Duration::from_secs(15)));
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_string(name.to_owned())))
                .with_num_partitions(i32::try_from(PARTITIONS).ok()?)
                .with_replication_factor(1),
        ]);
    let answer = (|| -> Result<i16> {
        let response = ask!(&mut conn, CreateTopics, 7, request);
        Ok(response.topics.first().context("no result")?.error_code)
    })()
    .ok()?;
    match answer {
        0 => Some(true),
        36 => Some(false),
        _ => None,
    }
}

/// The broker that leads the quorum, once one does (an election may be under way).
fn quorum_leader(brokers: &[Broker]) -> Result<usize> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let leader = brokers.iter().position(|b| {
            scrape(b)
                .ok()
                .and_then(|s| s.get("rill_quorum", &[("field", "is_leader")]))
                == Some(1.0)
        });
        if let Some(leader) = leader {
            return Ok(leader);
        }
        ensure!(Instant::now() < deadline, "no quorum leader for 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn killing_the_quorum_leader_while_creating_topics_leaves_one_truth() -> Result<()> {
    let voters = common::free_voters(3)?;
    let mut brokers = common::quorum_brokers(
        &voters,
        &[1, 2, 3],
        &["--broker-session-timeout-ms", "1500"],
    )?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while view(&brokers[0]).map(|v| v.0.len()).unwrap_or(0) < 3 {
        ensure!(Instant::now() < deadline, "the cluster never formed");
        std::thread::sleep(Duration::from_millis(50));
    }

    // Creators: one per broker, each naming its topics after itself.
    let stop = Arc::new(AtomicBool::new(false));
    let outcomes: Arc<Mutex<Vec<Outcome>>> = Arc::default();
    let addresses: Vec<String> = brokers.iter().map(Broker::bootstrap).collect();
    let mut creators = Vec::new();
    for (k, target) in addresses.into_iter().enumerate() {
        let stop = stop.clone();
        let outcomes = outcomes.clone();
        creators.push(std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let name = format!("via-{k}-{i}");
                let outcome = create(&target, &name);
                if let Ok(mut all) = outcomes.lock() {
                    all.push((name, outcome));
                }
                if outcome.is_none() {
                    std::thread::sleep(Duration::from_millis(50));
                }
                i += 1;
            }
        }));
    }

    for round in 0..3 {
        std::thread::sleep(Duration::from_millis(300 + 150 * round));
        let leader = quorum_leader(&brokers)?;
        brokers[leader].kill9()?;
        std::thread::sleep(Duration::from_millis(400));
        brokers[leader].restart()?;
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    for creator in creators {
        let _ = creator.join();
    }

    // Settled: every broker returns the same Metadata, all three brokers live, every partition
    // led.
    let deadline = Instant::now() + Duration::from_secs(30);
    let settled = loop {
        let views: Vec<View> = brokers.iter().map(view).collect::<Result<_>>()?;
        let led = views[0]
            .1
            .values()
            .flatten()
            .all(|(leader, _)| *leader >= 0);
        if views[0].0.len() == 3 && led && views.iter().all(|v| *v == views[0]) {
            break views[0].clone();
        }
        ensure!(
            Instant::now() < deadline,
            "brokers disagree after 30 s:\n{views:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let outcomes = outcomes.lock().map(|o| o.clone()).unwrap_or_default();
    let asked: BTreeSet<&str> = outcomes.iter().map(|(n, _)| n.as_str()).collect();
    let confirmed: Vec<&str> = outcomes
        .iter()
        .filter(|(_, o)| *o == Some(true))
        .map(|(n, _)| n.as_str())
        .collect();
    ensure!(
        confirmed.len() >= 10,
        "only {} topics created",
        confirmed.len()
    );
    for name in &confirmed {
        let partitions = settled.1.get(*name).map(Vec::len);
        ensure!(
            partitions == Some(PARTITIONS),
            "{name} was created but has {partitions:?} partitions"
        );
    }
    for (name, partitions) in &settled.1 {
        ensure!(
            asked.contains(name.as_str()),
            "{name} exists but was never asked for"
        );
        ensure!(
            partitions.len() == PARTITIONS,
            "{name} has {} partitions",
            partitions.len()
        );
    }
    // The same names created through all three brokers at once: one create wins, and every
    // partition of the winner works (the losers' pre-opened directories are gone, not shared).
    let bootstraps: Vec<String> = brokers.iter().map(Broker::bootstrap).collect();
    for i in 0..5 {
        let name = format!("same-{i}");
        let racers: Vec<_> = bootstraps
            .iter()
            .cloned()
            .map(|b| {
                let name = name.clone();
                std::thread::spawn(move || create(&b, &name))
            })
            .collect();
        let won = racers
            .into_iter()
            .filter_map(|r| r.join().ok().flatten())
            .filter(|created| *created)
            .count();
        ensure!(won == 1, "{name}: {won} creates succeeded");
        for p in 0..PARTITIONS {
            let value = format!("{name}/{p}\n");
            let _ = common::rill_ok(
                &bootstraps[p % 3],
                &["produce", &name, "-p", &p.to_string()],
                value.as_bytes(),
            )?;
        }
        let (out, _) = common::rill_ok(
            &bootstraps[2],
            &[
                "consume",
                &name,
                "-o",
                "beginning",
                "-c",
                &PARTITIONS.to_string(),
                "-f",
                "%s\n",
            ],
            b"",
        )?;
        let mut got: Vec<&str> = out.lines().collect();
        got.sort_unstable();
        let want: Vec<String> = (0..PARTITIONS).map(|p| format!("{name}/{p}")).collect();
        ensure!(got == want, "{name} read back {got:?}");
    }
    for broker in &mut brokers {
        broker.stop()?;
    }
    Ok(())
}
