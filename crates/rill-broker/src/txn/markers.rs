//! Writing a transaction's markers: the coordinator ends the transaction in each of its
//! partitions. A topic's partition gets a control batch through its owner (an `acks=all`
//! append, fenced by the producer's epoch and the coordinator's); a partition of
//! `__consumer_offsets` ends the producer's pending offsets (commits or drops them).

use rill_protocol::ErrorCode;
use rill_record::Marker;

use crate::broker::Broker;
use crate::group::OFFSETS_TOPIC;

/// Writes one marker on this broker, which must lead the partition (NOT_LEADER_OR_FOLLOWER
/// otherwise, and the coordinator tries again). A partition that no longer exists needs none.
pub(crate) async fn write(
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
