//! Transactions (KIP-98): the transaction coordinator, its state in `__transaction_state`, and
//! the markers that end a transaction in each of its partitions.

mod coordinator;
pub(crate) mod markers;
pub(crate) mod state;

pub(crate) use coordinator::{TxnCoordinator, run};
pub(crate) use state::Caller;

/// The name of the internal topic that holds the transactional ids' state.
pub(crate) const TXN_TOPIC: &str = "__transaction_state";

/// The partition of `__transaction_state` that holds `transactional_id`: Kafka places ids as it
/// places groups, by Java's hash of the string.
pub(crate) fn txn_partition(transactional_id: &str, partitions: i32) -> i32 {
    crate::group::offsets_partition(transactional_id, partitions)
}

/// KIP-890's check, for a partition leader about to take the first transactional batch of a
/// producer's transaction: is the partition in that transaction? Asked of the coordinator,
/// here or on the broker that leads the transactional id's partition. With `add` (a client of
/// transaction version 2, KIP-890 part 2, which sends no AddPartitionsToTxn) the partition
/// joins the transaction instead, opening it if none is open.
pub(crate) async fn verify(
    broker: &crate::broker::Broker,
    transactional_id: &str,
    caller: Caller,
    (topic, partition): (&str, i32),
    add: bool,
) -> Result<(), rill_protocol::ErrorCode> {
    let here = check_here(broker, transactional_id, caller, (topic, partition), add).await;
    if here != Err(rill_protocol::ErrorCode::NotCoordinator) {
        return here;
    }
    let partitions = broker.cluster.internal_partitions(TXN_TOPIC);
    let coordinator = broker
        .cluster
        .internal_leader(TXN_TOPIC, txn_partition(transactional_id, partitions))
        .map_or(-1, |n| n.id);
    if coordinator < 0 || coordinator == broker.config.node_id {
        return here;
    }
    let call = crate::rpc::Call::Verify {
        transactional_id: transactional_id.to_owned(),
        producer_id: caller.producer_id,
        producer_epoch: caller.producer_epoch,
        topic: topic.to_owned(),
        partition,
        add,
    };
    broker.quorum.rpc.call(coordinator, call).await
}

/// [`verify`] at this broker's coordinator (NOT_COORDINATOR if the id is not coordinated here).
pub(crate) async fn check_here(
    broker: &crate::broker::Broker,
    transactional_id: &str,
    caller: Caller,
    (topic, partition): (&str, i32),
    add: bool,
) -> Result<(), rill_protocol::ErrorCode> {
    if add {
        let partitions = vec![(topic.to_owned(), partition)];
        broker
            .txns
            .add_partitions(transactional_id, caller, partitions, true)
            .await
    } else {
        broker
            .txns
            .verify(transactional_id, caller, topic, partition)
    }
}
