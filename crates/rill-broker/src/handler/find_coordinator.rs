//! FindCoordinator: for each group (v0-3 one key, v4+ a batch of keys), the leader of its
//! partition of `__consumer_offsets` as the cluster view names it; for each transactional id
//! (key type 1), the leader of its partition of `__transaction_state`.

use rill_protocol::ErrorCode;
use rill_protocol::StrBytes;
use rill_protocol::kafka_protocol::messages::find_coordinator_response::Coordinator;
use rill_protocol::kafka_protocol::messages::{
    BrokerId, FindCoordinatorRequest, FindCoordinatorResponse,
};

use crate::broker::Broker;
use crate::group::OFFSETS_TOPIC;
use crate::txn::TXN_TOPIC;

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

pub(crate) async fn handle(
    broker: &Broker,
    listener: &str,
    req: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    // The internal topic is created on first use, as Kafka creates it: spread over the
    // brokers live by then.
    let (error, topic) = match req.key_type {
        KEY_TYPE_GROUP => {
            broker.offsets_topic_on_first_use().await;
            (None, OFFSETS_TOPIC)
        }
        KEY_TYPE_TRANSACTION => {
            broker.txn_topic_on_first_use().await;
            (None, TXN_TOPIC)
        }
        _ => (Some(ErrorCode::InvalidRequest), OFFSETS_TOPIC),
    };
    if version >= 4 {
        let coordinators = req
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let c = Coordinator::default().with_key(key);
                match error {
                    Some(code) => c
                        .with_node_id(BrokerId(-1))
                        .with_port(-1)
                        .with_error_code(code.code())
                        .with_error_message(super::message("unknown coordinator key type")),
                    None => match coordinator(broker, listener, topic, &c.key) {
                        Some((node, (host, port))) => c
                            .with_node_id(BrokerId(node))
                            .with_host(StrBytes::from_string(host))
                            .with_port(i32::from(port)),
                        None => c
                            .with_node_id(BrokerId(-1))
                            .with_port(-1)
                            .with_error_code(ErrorCode::CoordinatorNotAvailable.code()),
                    },
                }
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    match error {
        Some(code) => FindCoordinatorResponse::default()
            .with_error_code(code.code())
            .with_node_id(BrokerId(-1))
            .with_port(-1)
            .with_error_message(
                (version >= 1).then(|| StrBytes::from_static_str("unknown coordinator key type")),
            ),
        None => match coordinator(broker, listener, topic, &req.key) {
            Some((node, (host, port))) => FindCoordinatorResponse::default()
                .with_node_id(BrokerId(node))
                .with_host(StrBytes::from_string(host))
                .with_port(i32::from(port)),
            None => FindCoordinatorResponse::default()
                .with_error_code(ErrorCode::CoordinatorNotAvailable.code())
                .with_node_id(BrokerId(-1))
                .with_port(-1),
        },
    }
}

/// The coordinator of a group or transactional id (the leader of its partition of the
/// internal `topic`, as Kafka places them): its id and its address on `listener`. `None` while
/// there is none, or if it has no such listener (COORDINATOR_NOT_AVAILABLE, as Kafka answers).
fn coordinator(
    broker: &Broker,
    listener: &str,
    topic: &str,
    key: &str,
) -> Option<(i32, (String, u16))> {
    let partitions = broker.cluster.internal_partitions(topic);
    if partitions == 0 {
        return None;
    }
    let partition = crate::group::offsets_partition(key, partitions);
    let node = broker.cluster.internal_leader(topic, partition)?;
    let (host, port) = node.address(listener)?;
    Some((node.id, (host.to_owned(), port)))
}
