//! Writing a transaction's markers: the coordinator ends the transaction in each of its
//! partitions. A topic's partition gets a control batch through its owner (an `acks=all`
//! append, fenced by the producer's epoch and the coordinator's); a partition of
//! `__consumer_offsets` ends the producer's pending offsets (commits or drops them). A
//! partition led by another broker gets the marker through a call to it (`crate::rpc`).

use rill_protocol::ErrorCode;
use rill_record::Marker;

use crate::broker::Broker;
use crate::group::OFFSETS_TOPIC;
use crate::rpc::Call;

/// Writes one marker, here or on the broker that leads the partition. A partition that no
/// longer exists needs none.
pub(crate) async fn write(
    broker: &Broker,
    topic: &str,
    partition: i32,
    producer_id: i64,
    producer_epoch: i16,
    marker: Marker,
) -> Result<(), ErrorCode> {
    let here = write_here(
        broker,
        topic,
        partition,
        producer_id,
        producer_epoch,
        marker,
    )
    .await;
    if here != Err(ErrorCode::NotLeaderOrFollower) {
        return here;
    }
    let leader = if topic == OFFSETS_TOPIC {
        broker
            .cluster
            .internal_leader(OFFSETS_TOPIC, partition)
            .map_or(-1, |n| n.id)
    } else {
        broker
            .topic(topic)
            .map_or(-1, |t| broker.cluster.leadership(&t, partition).leader)
    };
    if leader < 0 || leader == broker.config.node_id {
        return here;
    }
    let call = Call::WriteMarker {
        topic: topic.to_owned(),
        partition,
        producer_id,
        producer_epoch,
        commit: marker.commit,
        coordinator_epoch: marker.coordinator_epoch,
    };
    broker.quorum.rpc.call(leader, call).await
}

/// Writes one marker on this broker, which must lead the partition (NOT_LEADER_OR_FOLLOWER
/// otherwise).
pub(crate) async fn write_here(
    broker: &Broker,
    topic: &str,
    partition: i32,
    producer_id: i64,
    producer_epoch: i16,
    marker: Marker,
) -> Result<(), ErrorCode> {
    if topic == OFFSETS_TOPIC {
        let store = broker
            .groups
            .partition_store(partition)
            .ok_or(ErrorCode::NotLeaderOrFollower)?;
        store
            .coordinating()
            .map_err(|_| ErrorCode::NotLeaderOrFollower)?;
        return store.end_txn(producer_id, marker.commit).await;
    }
    let Some(found) = broker.topic(topic) else {
        return Ok(());
    };
    if !found.exists(partition) {
        return Ok(());
    }
    let led = found.led(partition)?;
    match led.write_marker(producer_id, producer_epoch, marker).await {
        Ok(_) => Ok(()),
        Err(code @ (ErrorCode::InvalidProducerEpoch | ErrorCode::TransactionCoordinatorFenced)) => {
            // A newer producer epoch or coordinator has written here since: this marker is
            // stale and must not be written; the transaction is over here.
            tracing::warn!(
                topic,
                partition,
                producer_id,
                producer_epoch,
                error = code.name(),
                "a stale transaction marker was refused"
            );
            Ok(())
        }
        Err(code) => Err(code),
    }
}
