//! FindCoordinator: for each group (v0-3 one key, v4+ a batch of keys), the leader of its
//! partition of `__consumer_offsets` as the cluster view names it.
//! Transaction coordinators are not offered until transactions are.

use rill_protocol::ErrorCode;
use rill_protocol::StrBytes;
use rill_protocol::kafka_protocol::messages::find_coordinator_response::Coordinator;
use rill_protocol::kafka_protocol::messages::{
    BrokerId, FindCoordinatorRequest, FindCoordinatorResponse,
};

use crate::broker::Broker;

const KEY_TYPE_GROUP: i8 = 0;

pub(crate) async fn handle(
    broker: &Broker,
    listener: &str,
    req: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let error = (req.key_type != KEY_TYPE_GROUP).then_some(ErrorCode::CoordinatorNotAvailable);
    if error.is_none() {
        // Created on first use, as Kafka creates it: spread over the brokers live by then.
        broker.offsets_topic_on_first_use().await;
    }
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
                        .with_error_message(super::message("transactions are not supported yet")),
                    None => match coordinator(broker, listener, &c.key) {
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
                (version >= 1)
                    .then(|| StrBytes::from_static_str("transactions are not supported yet")),
            ),
        None => match coordinator(broker, listener, &req.key) {
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

/// The coordinator of a group (the leader of its partition of `__consumer_offsets`, as Kafka
/// places groups on partitions): its id and its address on `listener`. `None` while there is
/// none, or if it has no such listener (COORDINATOR_NOT_AVAILABLE, as Kafka answers).
fn coordinator(broker: &Broker, listener: &str, group: &str) -> Option<(i32, (String, u16))> {
    let partitions = broker.cluster.offsets_partitions();
    if partitions == 0 {
        return None;
    }
    let partition = crate::group::offsets_partition(group, partitions);
    let node = broker.cluster.offsets_partition_leader(partition)?;
    let (host, port) = node.address(listener)?;
    Some((node.id, (host.to_owned(), port)))
}
