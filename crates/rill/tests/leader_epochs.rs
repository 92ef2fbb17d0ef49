//! Leader epochs (KIP-320): a broker that restarts leads its partitions again at a higher
//! epoch; a Fetch or ListOffsets naming an older epoch gets FENCED_LEADER_EPOCH, a newer one
//! UNKNOWN_LEADER_EPOCH, the current one (or none, -1, as older clients send) an answer.

#[macro_use]
mod common;

use anyhow::{Context, ensure};
use common::{Broker, Conn, Result, create_topic};
use rill_protocol::StrBytes;
use rill_protocol::kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use rill_protocol::kafka_protocol::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsTopic,
};
use rill_protocol::kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use rill_protocol::kafka_protocol::messages::{
    BrokerId, FetchRequest, ListOffsetsRequest, MetadataRequest, TopicName,
};

const FENCED_LEADER_EPOCH: i16 = 74;
const UNKNOWN_LEADER_EPOCH: i16 = 75;

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_owned()))
}

fn epoch_of(conn: &mut Conn, topic: &str) -> Result<i32> {
    let request = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(name(topic))),
    ]));
    let response = ask!(conn, Metadata, 12, request);
    response
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .map(|p| p.leader_epoch)
        .context("no partition in Metadata")
}

fn fetch_error(conn: &mut Conn, topic: &str, epoch: i32) -> Result<i16> {
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(name(topic))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_current_leader_epoch(epoch)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let response = ask!(conn, Fetch, 12, request);
    response
        .responses
        .first()
        .and_then(|t| t.partitions.first())
        .map(|p| p.error_code)
        .context("no partition in Fetch")
}

fn list_offsets_error(conn: &mut Conn, topic: &str, epoch: i32) -> Result<i16> {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(name(topic))
                .with_partitions(vec![
                    ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_current_leader_epoch(epoch)
                        .with_timestamp(-1),
                ]),
        ]);
    let response = ask!(conn, ListOffsets, 7, request);
    response
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .map(|p| p.error_code)
        .context("no partition in ListOffsets")
}

#[test]
fn stale_and_future_leader_epochs_are_refused_the_current_one_served() -> Result<()> {
    let mut broker = Broker::start()?;
    let topic = broker.topic("epochs");
    create_topic(&broker, &topic, 1, &[])?;
    let before = epoch_of(&mut Conn::open(&broker)?, &topic)?;
    broker.restart()?;
    let mut conn = Conn::open(&broker)?;
    let now = epoch_of(&mut conn, &topic)?;
    ensure!(
        now > before,
        "the epoch went from {before} to {now} over a restart"
    );
    for (epoch, want) in [
        (-1, 0),
        (now, 0),
        (before, FENCED_LEADER_EPOCH),
        (now + 1, UNKNOWN_LEADER_EPOCH),
    ] {
        let got = fetch_error(&mut conn, &topic, epoch)?;
        ensure!(
            got == want,
            "Fetch at epoch {epoch} (current {now}): error {got}, not {want}"
        );
        let got = list_offsets_error(&mut conn, &topic, epoch)?;
        ensure!(
            got == want,
            "ListOffsets at epoch {epoch} (current {now}): error {got}, not {want}"
        );
    }
    broker.stop()?;
    Ok(())
}
