//! DescribeQuorum: the metadata quorum's leader, term (as leader epoch), commit index (as high
//! watermark) and each voter's replicated log end and last contact. Asked of its partition
//! `__cluster_metadata-0` (Kafka's name) or `__rill_metadata-0`.
//!
//! Only the quorum's leader knows how far each voter is; another broker answers
//! NOT_LEADER_OR_FOLLOWER with the leader's id and epoch, so the client can ask it (Kafka's
//! brokers forward the request instead).

use rill_protocol::kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use rill_protocol::kafka_protocol::messages::{
    BrokerId, DescribeQuorumRequest, DescribeQuorumResponse,
};
use rill_protocol::{ErrorCode, StrBytes};

use crate::broker::Broker;
use crate::partition::now_ms;

/// The names the metadata log answers to.
const NAMES: [&str; 2] = ["__cluster_metadata", "__rill_metadata"];

pub(crate) fn handle(
    broker: &Broker,
    req: &DescribeQuorumRequest,
    version: i16,
) -> DescribeQuorumResponse {
    let status = broker.quorum.status();
    let voters = &broker.quorum.voters;
    let me = broker.config.node_id;
    let topics = req
        .topics
        .iter()
        .map(|topic| {
            let known = NAMES.contains(&topic.topic_name.0.as_str());
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let answer = PartitionData::default()
                        .with_partition_index(p.partition_index)
                        .with_leader_id(BrokerId(status.leader))
                        .with_leader_epoch(i32::try_from(status.term).unwrap_or(i32::MAX))
                        .with_high_watermark(i64::try_from(status.commit).unwrap_or(-1));
                    let refuse = |code: ErrorCode, why: String| {
                        let answer = answer.clone().with_error_code(code.code());
                        if version >= 2 {
                            answer.with_error_message(super::message(why))
                        } else {
                            answer
                        }
                    };
                    if !known || p.partition_index != 0 {
                        return refuse(
                            ErrorCode::UnknownTopicOrPartition,
                            "the metadata log is __cluster_metadata-0".into(),
                        );
                    }
                    if status.role != "leader" {
                        return refuse(
                            ErrorCode::NotLeaderOrFollower,
                            format!("ask node {}, the quorum's leader", status.leader),
                        );
                    }
                    let now = now_ms();
                    let last = i64::try_from(status.last_index).unwrap_or(-1);
                    let current_voters = voters
                        .ids()
                        .map(|id| {
                            let (end, contact) = if id == me {
                                (last, now)
                            } else {
                                let end = status
                                    .matched
                                    .get(&id)
                                    .map_or(-1, |m| i64::try_from(*m).unwrap_or(-1));
                                (end, status.last_contact_ms.get(&id).copied().unwrap_or(-1))
                            };
                            ReplicaState::default()
                                .with_replica_id(BrokerId(id))
                                .with_log_end_offset(end)
                                .with_last_fetch_timestamp(contact)
                                .with_last_caught_up_timestamp(if end == last {
                                    contact
                                } else {
                                    -1
                                })
                        })
                        .collect();
                    answer.with_current_voters(current_voters)
                })
                .collect();
            TopicData::default()
                .with_topic_name(topic.topic_name.clone())
                .with_partitions(partitions)
        })
        .collect();
    let nodes = if version >= 2 {
        voters
            .ids()
            .filter_map(|id| {
                let (host, port) = voters.address(id).filter(|(_, port)| *port != 0)?;
                Some(
                    Node::default()
                        .with_node_id(BrokerId(id))
                        .with_listeners(vec![
                            Listener::default()
                                .with_name(StrBytes::from_static_str("CONTROLLER"))
                                .with_host(StrBytes::from_string(host.to_owned()))
                                .with_port(port),
                        ]),
                )
            })
            .collect()
    } else {
        Vec::new()
    };
    DescribeQuorumResponse::default()
        .with_topics(topics)
        .with_nodes(nodes)
}
