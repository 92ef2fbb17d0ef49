//! Partition reassignment (KIP-455): AlterPartitionReassignments moves replicated partitions to
//! other brokers (or cancels a move), ListPartitionReassignments shows the moves under way. Any
//! broker takes them. A move is put into the metadata log ([`Broker::reassign`]), judged there
//! against the agreed state, and answered once this broker shows it under way; the partition's
//! leader then changes its Raft group's membership step by step (new replicas copy the log as
//! learners, become voters, the old ones leave) while producers and consumers go on, and the
//! metadata shows the target replicas alone once the group has them.

use rill_protocol::ErrorCode;
use rill_protocol::kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use rill_protocol::kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use rill_protocol::kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
};

use crate::broker::{Broker, Topic};

pub(crate) async fn alter(
    broker: &Broker,
    req: AlterPartitionReassignmentsRequest,
    version: i16,
) -> AlterPartitionReassignmentsResponse {
    // v1 (KIP-860) may refuse a move that changes the replication factor.
    let keep_factor = version >= 1 && !req.allow_replication_factor_change;
    let mut responses = Vec::with_capacity(req.topics.len());
    for topic in req.topics {
        let name = topic.name.0.to_string();
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in topic.partitions {
            let target = p
                .replicas
                .map(|replicas| replicas.into_iter().map(|r| r.0).collect());
            let index = p.partition_index;
            let (code, message) = match broker.reassign(&name, index, target, keep_factor).await {
                Ok(()) => (ErrorCode::None, None),
                Err((code, why)) => (code, super::message(why)),
            };
            partitions.push(
                ReassignablePartitionResponse::default()
                    .with_partition_index(index)
                    .with_error_code(code.code())
                    .with_error_message(message),
            );
        }
        responses.push(
            ReassignableTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(version >= 1 && !keep_factor)
        .with_responses(responses)
}

/// The moves under way, of every partition or of those asked (partitions and topics that do
/// not exist, or are not moving, are left out, as Kafka does).
pub(crate) fn list(
    broker: &Broker,
    req: &ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    let mut asked: Vec<(std::sync::Arc<Topic>, Option<&[i32]>)> = match &req.topics {
        None => broker.all_topics().into_iter().map(|t| (t, None)).collect(),
        Some(topics) => topics
            .iter()
            .filter_map(|t| Some((broker.topic(&t.name.0)?, Some(&t.partition_indexes[..]))))
            .collect(),
    };
    asked.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    let ids = |list: &[i32]| list.iter().map(|r| BrokerId(*r)).collect::<Vec<_>>();
    let topics = asked
        .into_iter()
        .filter_map(|(topic, only)| {
            let partitions: Vec<_> = topic
                .placements
                .iter()
                .enumerate()
                .filter(|(_, p)| p.reassigning())
                .filter_map(|(i, p)| Some((i32::try_from(i).ok()?, p)))
                .filter(|(i, _)| only.is_none_or(|only| only.contains(i)))
                .map(|(i, p)| {
                    OngoingPartitionReassignment::default()
                        .with_partition_index(i)
                        .with_replicas(ids(&p.replicas))
                        .with_adding_replicas(ids(&p.adding))
                        .with_removing_replicas(ids(&p.removing))
                })
                .collect();
            (!partitions.is_empty()).then(|| {
                OngoingTopicReassignment::default()
                    .with_name(super::topic_name(&topic.name))
                    .with_partitions(partitions)
            })
        })
        .collect();
    ListPartitionReassignmentsResponse::default().with_topics(topics)
}
