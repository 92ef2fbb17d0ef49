//! DescribeTopicPartitions (KIP-966): topics' partitions, paged by a partition limit and a cursor.

use rill_protocol::ErrorCode;
use rill_protocol::kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use rill_protocol::kafka_protocol::messages::{
    BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse,
};

use crate::broker::Broker;

pub(crate) fn handle(
    broker: &Broker,
    listener: &str,
    req: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    // There is no flag to ask for them: Kafka answers every topic's authorized operations.
    let operations = super::authorized::TOPIC;
    let mut names: Vec<String> = if req.topics.is_empty() {
        broker.all_topics().iter().map(|t| t.name.clone()).collect()
    } else {
        req.topics.iter().map(|t| t.name.0.to_string()).collect()
    };
    names.sort();
    let (start_topic, start_partition) = req.cursor.as_ref().map_or((String::new(), 0), |c| {
        (c.topic_name.0.to_string(), c.partition_index)
    });
    let mut budget = usize::try_from(req.response_partition_limit.max(1)).unwrap_or(usize::MAX);
    let mut topics = Vec::new();
    let mut next_cursor = None;
    for name in names.into_iter().filter(|n| *n >= start_topic) {
        let Some(topic) = broker.topic(&name) else {
            topics.push(
                DescribeTopicPartitionsResponseTopic::default()
                    .with_error_code(ErrorCode::UnknownTopicOrPartition.code())
                    .with_name(Some(super::topic_name(&name)))
                    .with_topic_authorized_operations(operations),
            );
            continue;
        };
        if budget == 0 {
            next_cursor = Some(Cursor::default().with_topic_name(super::topic_name(&name)));
            break;
        }
        let first = if name == start_topic {
            start_partition
        } else {
            0
        };
        let mut partitions = Vec::new();
        let leaderships = broker.cluster.leaderships(&topic);
        let reachable = broker.cluster.reachable_on(listener);
        for (index, led) in (0..)
            .zip(leaderships)
            .skip(usize::try_from(first.max(0)).unwrap_or(0))
        {
            if budget == 0 {
                next_cursor = Some(
                    Cursor::default()
                        .with_topic_name(super::topic_name(&name))
                        .with_partition_index(index),
                );
                break;
            }
            budget -= 1;
            let (error, leader) = led.as_seen(&reachable);
            partitions.push(
                DescribeTopicPartitionsResponsePartition::default()
                    .with_error_code(error.code())
                    .with_partition_index(index)
                    .with_offline_replicas(led.offline.into_iter().map(BrokerId).collect())
                    .with_leader_id(BrokerId(leader))
                    .with_leader_epoch(led.epoch)
                    .with_replica_nodes(led.replicas.into_iter().map(BrokerId).collect())
                    .with_isr_nodes(led.isr.into_iter().map(BrokerId).collect())
                    .with_eligible_leader_replicas(Some(Vec::new()))
                    .with_last_known_elr(Some(Vec::new())),
            );
        }
        topics.push(
            DescribeTopicPartitionsResponseTopic::default()
                .with_name(Some(super::topic_name(&name)))
                .with_topic_id(topic.id)
                .with_topic_authorized_operations(operations)
                .with_partitions(partitions),
        );
        if next_cursor.is_some() {
            break;
        }
    }
    DescribeTopicPartitionsResponse::default()
        .with_topics(topics)
        .with_next_cursor(next_cursor)
}
