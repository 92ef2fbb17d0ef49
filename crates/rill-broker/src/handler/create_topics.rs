//! CreateTopics (validate-only too). One replica, so a replication factor above 1 is refused.

use std::collections::BTreeMap;

use rill_protocol::ErrorCode;
use rill_protocol::StrBytes;
use rill_protocol::kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use rill_protocol::kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};

use crate::broker::Broker;
use crate::topic_config::TopicConfig;

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
        let partitions = match topic.num_partitions {
            -1 => broker.config.num_partitions,
            n => n,
        };
        let refused = if !topic.assignments.is_empty() {
            Some((
                ErrorCode::InvalidRequest,
                "manual replica assignment is not supported".to_owned(),
            ))
        } else if !(topic.replication_factor == -1 || topic.replication_factor == 1) {
            Some((
                ErrorCode::InvalidReplicationFactor,
                format!(
                    "replication factor {} is larger than the 1 broker available",
                    topic.replication_factor
                ),
            ))
        } else {
            None
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
                    .create_topic(&name, partitions, overrides, req.validate_only)
                    .await
            }
        };
        results.push(match outcome {
            Ok(created) => {
                let configs = (version >= 5).then(|| {
                    let defaults = TopicConfig::resolve(&broker.config, &BTreeMap::new());
                    super::configs::topic_entries(&defaults, &created.config, &created.overrides)
                        .into_iter()
                        .map(|(def, value, source)| {
                            CreatableTopicConfigs::default()
                                .with_name(StrBytes::from_static_str(def.name))
                                .with_value(value.map(StrBytes::from_string))
                                .with_config_source(source)
                        })
                        .collect()
                });
                result
                    .with_topic_id(created.id)
                    .with_num_partitions(partitions)
                    .with_replication_factor(1)
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
