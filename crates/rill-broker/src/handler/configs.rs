//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics (and a read-only view of
//! the broker's own settings).

use std::collections::BTreeMap;

use rill_protocol::ErrorCode;
use rill_protocol::StrBytes;
use rill_protocol::kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use rill_protocol::kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, alter_configs_response,
    incremental_alter_configs_response,
};

use super::create_topics::{SOURCE_DEFAULT, SOURCE_TOPIC};
use crate::broker::Broker;
use crate::topic_config::{ConfigDef, ConfigType, TOPIC_CONFIGS, TopicConfig, find, list_items};

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
pub(super) const SOURCE_STATIC_BROKER: i8 = 4;

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

pub(crate) fn describe(
    broker: &Broker,
    req: DescribeConfigsRequest,
    version: i16,
) -> DescribeConfigsResponse {
    let defaults = TopicConfig::resolve(&broker.config, &BTreeMap::new());
    let results = req
        .resources
        .into_iter()
        .map(|resource| {
            let keys: Option<Vec<String>> = resource
                .configuration_keys
                .map(|keys| keys.iter().map(ToString::to_string).collect());
            let wanted = |name: &str| keys.as_ref().is_none_or(|k| k.iter().any(|k| k == name));
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            match resource.resource_type {
                RESOURCE_TOPIC => match broker.topic(&resource.resource_name) {
                    Some(topic) => result.with_configs(
                        topic_entries(&defaults, &topic.config, &topic.overrides)
                            .into_iter()
                            .filter(|(def, ..)| wanted(def.name))
                            .map(|(def, value, source)| {
                                let mut entry = entry(
                                    def.name,
                                    value.clone(),
                                    source,
                                    false,
                                    def.kind,
                                    def.doc,
                                    version,
                                    req.include_documentation,
                                );
                                if req.include_synonyms {
                                    entry = entry.with_synonyms(synonyms(
                                        &defaults,
                                        def,
                                        value.filter(|_| source == SOURCE_TOPIC),
                                    ));
                                }
                                entry
                            })
                            .collect(),
                    ),
                    None => result
                        .with_error_code(ErrorCode::UnknownTopicOrPartition.code())
                        .with_error_message(super::message(format!(
                            "topic '{}' does not exist",
                            resource.resource_name
                        ))),
                },
                RESOURCE_BROKER => result.with_configs(
                    broker_configs(broker)
                        .into_iter()
                        .filter(|(name, ..)| wanted(name))
                        .map(|(name, value, kind, doc)| {
                            entry(
                                name,
                                Some(value),
                                SOURCE_STATIC_BROKER,
                                true,
                                kind,
                                doc,
                                version,
                                req.include_documentation,
                            )
                        })
                        .collect(),
                ),
                other => result
                    .with_error_code(ErrorCode::InvalidRequest.code())
                    .with_error_message(super::message(format!(
                        "resource type {other} is not supported"
                    ))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// Every topic config with its value and where the value comes from: the topic's override,
/// a broker setting (`defaults` is a topic with no overrides) that differs from Kafka's
/// default, or Kafka's default.
pub(super) fn topic_entries(
    defaults: &TopicConfig,
    config: &TopicConfig,
    overrides: &BTreeMap<String, String>,
) -> Vec<(&'static ConfigDef, Option<String>, i8)> {
    TOPIC_CONFIGS
        .iter()
        .map(|def| {
            let source = if overrides.contains_key(def.name) {
                SOURCE_TOPIC
            } else if defaults.value_of(def.name).as_deref() != Some(def.default) {
                SOURCE_STATIC_BROKER
            } else {
                SOURCE_DEFAULT
            };
            (def, config.value_of(def.name), source)
        })
        .collect()
}

/// Kafka's synonyms, most specific first: the topic's override, the broker setting (under its
/// broker name) when it differs from Kafka's default, and Kafka's default.
fn synonyms(
    defaults: &TopicConfig,
    def: &'static ConfigDef,
    overridden: Option<String>,
) -> Vec<DescribeConfigsSynonym> {
    let synonym = |name: &'static str, value: String, source: i8| {
        DescribeConfigsSynonym::default()
            .with_name(StrBytes::from_static_str(name))
            .with_value(Some(StrBytes::from_string(value)))
            .with_source(source)
    };
    let broker_name = if def.broker.is_empty() {
        def.name
    } else {
        def.broker
    };
    let mut out = Vec::with_capacity(3);
    if let Some(value) = overridden {
        out.push(synonym(def.name, value, SOURCE_TOPIC));
    }
    if let Some(value) = defaults.value_of(def.name).filter(|v| v != def.default) {
        out.push(synonym(broker_name, value, SOURCE_STATIC_BROKER));
    }
    out.push(synonym(broker_name, def.default.to_owned(), SOURCE_DEFAULT));
    out
}

#[allow(clippy::too_many_arguments)]
fn entry(
    name: &'static str,
    value: Option<String>,
    source: i8,
    read_only: bool,
    kind: ConfigType,
    doc: &'static str,
    version: i16,
    include_documentation: bool,
) -> DescribeConfigsResourceResult {
    let mut entry = DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_static_str(name))
        .with_value(value.map(StrBytes::from_string))
        .with_read_only(read_only)
        .with_config_source(source);
    if version >= 3 {
        entry = entry.with_config_type(kind as i8);
        if include_documentation {
            entry = entry.with_documentation(Some(StrBytes::from_static_str(doc)));
        }
    }
    entry
}

/// The broker settings a client may read (set at start, not alterable).
fn broker_configs(broker: &Broker) -> Vec<(&'static str, String, ConfigType, &'static str)> {
    let c = &broker.config;
    vec![
        (
            "auto.create.topics.enable",
            c.auto_create_topics.to_string(),
            ConfigType::String,
            "Create unknown topics on metadata requests.",
        ),
        (
            "log.retention.bytes",
            c.log.retention_bytes.to_string(),
            ConfigType::Long,
            "Default retention.bytes of topics.",
        ),
        (
            "log.retention.ms",
            c.log.retention_ms.to_string(),
            ConfigType::Long,
            "Default retention.ms of topics.",
        ),
        (
            "log.segment.bytes",
            c.log.segment_bytes.to_string(),
            ConfigType::Int,
            "Default segment.bytes of topics.",
        ),
        (
            "message.max.bytes",
            c.max_message_bytes.to_string(),
            ConfigType::Int,
            "Default max.message.bytes of topics.",
        ),
        (
            "min.insync.replicas",
            c.min_insync_replicas.to_string(),
            ConfigType::Int,
            "Default min.insync.replicas of topics.",
        ),
        (
            "num.partitions",
            c.num_partitions.to_string(),
            ConfigType::Int,
            "Partitions of auto-created topics.",
        ),
        (
            "socket.request.max.bytes",
            c.max_request_bytes.to_string(),
            ConfigType::Int,
            "The largest request accepted.",
        ),
    ]
}

pub(crate) async fn alter(broker: &Broker, req: AlterConfigsRequest) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(req.resources.len());
    for resource in req.resources {
        // AlterConfigs replaces the whole set: what is not listed returns to its default.
        let overrides = resource
            .configs
            .iter()
            .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
            .collect();
        let outcome = apply(
            broker,
            resource.resource_type,
            &resource.resource_name,
            req.validate_only,
            |_| Ok(overrides),
        )
        .await;
        let response = alter_configs_response::AlterConfigsResourceResponse::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name);
        responses.push(match outcome {
            Ok(()) => response,
            Err((code, message)) => response
                .with_error_code(code.code())
                .with_error_message(super::message(message)),
        });
    }
    AlterConfigsResponse::default().with_responses(responses)
}

pub(crate) async fn incremental_alter(
    broker: &Broker,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(req.resources.len());
    for resource in req.resources {
        let configs = resource.configs;
        let outcome = apply(
            broker,
            resource.resource_type,
            &resource.resource_name,
            req.validate_only,
            |current| {
                let mut overrides = current.clone();
                for config in &configs {
                    let name = config.name.to_string();
                    match (config.config_operation, &config.value) {
                        (OP_SET, Some(value)) => {
                            let _ = overrides.insert(name, value.to_string());
                        }
                        (OP_DELETE, _) => {
                            let _ = overrides.remove(&name);
                        }
                        (OP_SET, None) => {
                            return Err((
                                ErrorCode::InvalidRequest,
                                format!("SET of {name} needs a value"),
                            ));
                        }
                        (op @ (OP_APPEND | OP_SUBTRACT), value) => {
                            change_list(&mut overrides, name, op == OP_APPEND, value.as_deref())?;
                        }
                        (op, _) => {
                            return Err((
                                ErrorCode::InvalidRequest,
                                format!("config operation {op} on {name} is not supported"),
                            ));
                        }
                    }
                }
                Ok(overrides)
            },
        )
        .await;
        let response = incremental_alter_configs_response::AlterConfigsResourceResponse::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name);
        responses.push(match outcome {
            Ok(()) => response,
            Err((code, message)) => response
                .with_error_code(code.code())
                .with_error_message(super::message(message)),
        });
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

/// APPEND (or SUBTRACT) the items of `value` to (from) a list config, as Kafka does: from the
/// override or else Kafka's default, appending only items not there yet. Any other config is
/// INVALID_REQUEST, as Kafka answers.
fn change_list(
    overrides: &mut BTreeMap<String, String>,
    name: String,
    append: bool,
    value: Option<&str>,
) -> Result<(), (ErrorCode, String)> {
    let verb = if append { "append" } else { "subtract" };
    let def = find(&name).ok_or_else(|| {
        (
            ErrorCode::InvalidConfig,
            format!("unknown topic config {name}"),
        )
    })?;
    if def.kind != ConfigType::List {
        return Err((
            ErrorCode::InvalidRequest,
            format!("Config value {verb} is not allowed for config key: {name}"),
        ));
    }
    let value = value.ok_or_else(|| {
        (
            ErrorCode::InvalidRequest,
            format!("{} of {name} needs a value", verb.to_uppercase()),
        )
    })?;
    let old = overrides.get(&name).map_or(def.default, String::as_str);
    let mut items: Vec<String> = list_items(old).into_iter().map(str::to_owned).collect();
    let change = list_items(value);
    if append {
        for item in change {
            if !items.iter().any(|i| i == item) {
                items.push(item.to_owned());
            }
        }
    } else {
        items.retain(|i| !change.contains(&i.as_str()));
    }
    let _ = overrides.insert(name, items.join(","));
    Ok(())
}

/// Computes a topic's new overrides from its current ones and stores them.
async fn apply(
    broker: &Broker,
    resource_type: i8,
    name: &str,
    validate_only: bool,
    change: impl FnOnce(
        &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, (ErrorCode, String)>,
) -> Result<(), (ErrorCode, String)> {
    match resource_type {
        RESOURCE_TOPIC => {}
        RESOURCE_BROKER => {
            return Err((
                ErrorCode::InvalidRequest,
                "broker configs are set at start (flags, environment) and cannot be altered"
                    .to_owned(),
            ));
        }
        other => {
            return Err((
                ErrorCode::InvalidRequest,
                format!("resource type {other} is not supported"),
            ));
        }
    }
    let topic = broker.topic(name).ok_or_else(|| {
        (
            ErrorCode::UnknownTopicOrPartition,
            format!("topic '{name}' does not exist"),
        )
    })?;
    let overrides = change(&topic.overrides)?;
    broker
        .set_topic_configs(name, overrides, validate_only)
        .await
}
