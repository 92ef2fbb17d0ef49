//! Metadata: the cluster's brokers, and each topic's partitions with their leaders, as the
//! cluster view has them. Unknown topics are created when the broker and the request allow it
//! (`auto.create.topics.enable`).

use std::sync::Arc;

use rill_protocol::ErrorCode;
use rill_protocol::StrBytes;
use rill_protocol::kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use rill_protocol::kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse};

use crate::broker::{Broker, Topic, validate_topic_name};

pub(crate) async fn handle(
    broker: &Broker,
    listener: &str,
    req: MetadataRequest,
    version: i16,
) -> MetadataResponse {
    let wanted: Option<Vec<String>> = match req.topics {
        // v0 asks for every topic with an empty list; later versions with null.
        Some(topics) if !(version == 0 && topics.is_empty()) => Some(
            topics
                .into_iter()
                .map(|t| match (t.name, t.topic_id.is_nil()) {
                    (Some(name), _) => name.0.to_string(),
                    (None, false) => broker
                        .topic_by_id(t.topic_id)
                        .map(|topic| topic.name.clone())
                        .unwrap_or_default(),
                    (None, true) => String::new(),
                })
                .collect(),
        ),
        _ => None,
    };
    // Asked for from v8, for every topic answered, as Kafka; the cluster's set only up to v10
    // (later clients ask DescribeCluster).
    let topic_operations = super::authorized::if_asked(
        req.include_topic_authorized_operations,
        super::authorized::TOPIC,
    );
    let auto_create =
        broker.config.auto_create_topics && (version < 4 || req.allow_auto_topic_creation);
    let topics = match wanted {
        None => broker
            .all_topics()
            .iter()
            .map(|t| describe(broker, listener, t, topic_operations))
            .collect(),
        Some(names) => {
            let mut out = Vec::with_capacity(names.len());
            for name in names {
                out.push(match broker.topic(&name) {
                    Some(topic) => describe(broker, listener, &topic, topic_operations),
                    None => {
                        lookup_or_create(broker, listener, &name, auto_create, topic_operations)
                            .await
                    }
                });
            }
            out
        }
    };
    MetadataResponse::default()
        .with_brokers(
            broker
                .cluster
                .nodes()
                .iter()
                .filter_map(|node| {
                    let (host, port) = node.address(listener)?;
                    Some(
                        MetadataResponseBroker::default()
                            .with_node_id(BrokerId(node.id))
                            .with_host(StrBytes::from_string(host.to_owned()))
                            .with_port(i32::from(port))
                            .with_rack(node.rack.clone().map(StrBytes::from_string)),
                    )
                })
                .collect(),
        )
        .with_cluster_id(Some(StrBytes::from_string(broker.cluster_id.clone())))
        .with_controller_id(BrokerId(broker.cluster.controller()))
        .with_cluster_authorized_operations(super::authorized::if_asked(
            req.include_cluster_authorized_operations,
            super::authorized::CLUSTER,
        ))
        .with_topics(topics)
}

async fn lookup_or_create(
    broker: &Broker,
    listener: &str,
    name: &str,
    auto_create: bool,
    topic_operations: i32,
) -> MetadataResponseTopic {
    let failed = |code: ErrorCode| {
        MetadataResponseTopic::default()
            .with_error_code(code.code())
            .with_name(Some(super::topic_name(name)))
            .with_topic_authorized_operations(topic_operations)
    };
    if !auto_create {
        return failed(ErrorCode::UnknownTopicOrPartition);
    }
    if let Err((code, _)) = validate_topic_name(name) {
        return failed(code);
    }
    match broker.create_on_first_use(name).await {
        Ok(topic) => describe(broker, listener, &topic, topic_operations),
        Err((code, _)) => failed(code),
    }
}

/// A topic's partitions as a client of `listener` sees them: a leader without that listener is
/// no leader to it.
fn describe(
    broker: &Broker,
    listener: &str,
    topic: &Arc<Topic>,
    operations: i32,
) -> MetadataResponseTopic {
    let reachable = broker.cluster.reachable_on(listener);
    MetadataResponseTopic::default()
        .with_name(Some(super::topic_name(&topic.name)))
        .with_topic_id(topic.id)
        .with_topic_authorized_operations(operations)
        .with_partitions(
            (0..)
                .zip(broker.cluster.leaderships(topic))
                .map(|(index, led)| {
                    let (error, leader) = led.as_seen(&reachable);
                    MetadataResponsePartition::default()
                        .with_error_code(error.code())
                        .with_partition_index(index)
                        .with_leader_id(BrokerId(leader))
                        .with_leader_epoch(led.epoch)
                        .with_replica_nodes(led.replicas.into_iter().map(BrokerId).collect())
                        .with_isr_nodes(led.isr.into_iter().map(BrokerId).collect())
                        .with_offline_replicas(led.offline.into_iter().map(BrokerId).collect())
                })
                .collect(),
        )
}
