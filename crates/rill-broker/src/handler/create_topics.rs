//! CreateTopics (validate-only too): a replication factor up to the number of live brokers
//! (Kafka's default, 1, for -1), or a manual replica assignment on registered brokers.

use std::collections::BTreeMap;

use rill_protocol::ErrorCode;
use rill_protocol::StrBytes;
use rill_protocol::kafka_protocol::messages::create_topics_request::CreatableTopic;
use rill_protocol::kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use rill_protocol::kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};

use crate::assignment;
use crate::broker::{Broker, TopicError};
use crate::topic_config::TopicConfig;

/// The replication factor of a topic created without one (Kafka's
/// `default.replication.factor`).
const DEFAULT_REPLICATION_FACTOR: i16 = 1;

/// DescribeConfigs/CreateTopics config sources.
pub(crate) const SOURCE_TOPIC: i8 = 1;
pub(crate) const SOURCE_DEFAULT: i8 = 5;

pub(crate) async fn handle(
    broker: &Broker,
    req: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    let mut results = Vec::with_capacity(req.topics.len());
    for topic in req.topics {
        let name = topic.name.0.to_string();
        let result = CreatableTopicResult::default().with_name(topic.name.clone());
        let mut manual = None;
        let factor = match topic.replication_factor {
            -1 => DEFAULT_REPLICATION_FACTOR,
            n => n,
        };
        let (partitions, refused) = if topic.assignments.is_empty() {
            let partitions = match topic.num_partitions {
                -1 => broker.config.num_partitions,
                n => n,
            };
            let refused = (factor < 1).then(|| {
                (
                    ErrorCode::InvalidReplicationFactor,
                    "Replication factor must be larger than 0, or -1 to use the default value."
                        .to_owned(),
                )
            });
            (partitions, refused)
        } else {
            match manual_assignment(broker, &topic) {
                Ok(replicas) => {
                    let count = i32::try_from(replicas.len()).unwrap_or(i32::MAX);
                    manual = Some(replicas);
                    (count, None)
                }
                Err(err) => (-1, Some(err)),
            }
        };
        let mut overrides = BTreeMap::new();
        let mut null_config = None;
        for config in topic.configs {
            match config.value {
                Some(value) => {
                    let _ = overrides.insert(config.name.to_string(), value.to_string());
                }
                None => null_config = Some(config.name.to_string()),
            }
        }
        let refused = refused.or_else(|| {
            null_config.map(|name| {
                (
                    ErrorCode::InvalidConfig,
                    format!("config {name} has a null value"),
                )
            })
        });
        let outcome = match refused {
            Some(err) => Err(err),
            None => {
                broker
                    .create_topic(
                        &name,
                        partitions,
                        usize::try_from(factor).unwrap_or(1),
                        overrides,
                        req.validate_only,
                        manual,
                    )
                    .await
            }
        };
        results.push(match outcome {
            Ok(created) => {
                let configs = (version >= 5).then(|| {
                    let defaults = TopicConfig::resolve(&broker.config, &BTreeMap::new());
                    let dynamic = broker.dynamic();
                    super::configs::topic_entries(
                        &defaults,
                        &dynamic,
                        &created.config,
                        &created.overrides,
                    )
                    .into_iter()
                    .map(|(def, value, source)| {
                        CreatableTopicConfigs::default()
                            .with_name(StrBytes::from_static_str(def.name))
                            .with_value(value.map(StrBytes::from_string))
                            .with_config_source(source)
                    })
                    .collect()
                });
                let replicas = created.placements.first().map_or(factor, |p| {
                    i16::try_from(p.replicas.len()).unwrap_or(i16::MAX)
                });
                result
                    .with_topic_id(created.id)
                    .with_num_partitions(partitions)
                    .with_replication_factor(replicas)
                    .with_configs(configs)
            }
            Err((code, message)) => result
                .with_error_code(code.code())
                .with_error_message(super::message(message))
                .with_num_partitions(-1)
                .with_replication_factor(-1),
        });
    }
    CreateTopicsResponse::default().with_topics(results)
}

/// A manual replica assignment, checked as Kafka's controller checks it: `num_partitions` and
/// `replication_factor` must be -1 beside it (INVALID_REQUEST), and each partition from 0 up
/// named once, on registered brokers (INVALID_REPLICA_ASSIGNMENT). Each partition's replicas,
/// by partition index.
fn manual_assignment(broker: &Broker, topic: &CreatableTopic) -> Result<Vec<Vec<i32>>, TopicError> {
    if topic.replication_factor != -1 {
        return Err((
            ErrorCode::InvalidRequest,
            "A manual partition assignment was specified, but replication factor was not set \
             to -1."
                .to_owned(),
        ));
    }
    if topic.num_partitions != -1 {
        return Err((
            ErrorCode::InvalidRequest,
            "A manual partition assignment was specified, but numPartitions was not set to -1."
                .to_owned(),
        ));
    }
    let replicas: Vec<(i32, Vec<i32>)> = topic
        .assignments
        .iter()
        .map(|a| {
            (
                a.partition_index,
                a.broker_ids.iter().map(|b| b.0).collect(),
            )
        })
        .collect();
    let registered = broker.quorum.image().brokers.keys().copied().collect();
    let mut checked: Vec<(i32, &[i32])> =
        replicas.iter().map(|(p, r)| (*p, r.as_slice())).collect();
    let _ = assignment::check_topic(&checked, &registered)?;
    checked.sort_by_key(|(p, _)| *p);
    Ok(checked.into_iter().map(|(_, r)| r.to_vec()).collect())
}
