//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics; BROKER resources are
//! in `broker_configs.rs`.

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
use crate::broker_config::{self, DynamicConfigs};
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
    let dynamic = broker.dynamic();
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
                        topic_entries(&defaults, &dynamic, &topic.config, &topic.overrides)
                            .into_iter()
                            .filter(|(def, ..)| wanted(def.name))
                            .map(|(def, value, source)| {
                                let mut entry = entry(
                                    StrBytes::from_static_str(def.name),
                                    value.clone().map(StrBytes::from_string),
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
                                        &dynamic,
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
                RESOURCE_BROKER => {
                    match super::broker_configs::per_broker(broker, &resource.resource_name) {
                        Ok(per_broker) => result.with_configs(super::broker_configs::describe(
                            broker,
                            per_broker,
                            &wanted,
                            req.include_synonyms,
                            req.include_documentation,
                            version,
                            &dynamic,
                            &defaults,
                        )),
                        Err((code, message)) => result
                            .with_error_code(code.code())
                            .with_error_message(super::message(message)),
                    }
                }
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
/// a dynamic broker config (per-broker, then cluster default), a broker setting (`defaults` is
/// a topic with no overrides and no dynamic defaults) that differs from Kafka's default, or
/// Kafka's default.
pub(super) fn topic_entries(
    defaults: &TopicConfig,
    dynamic: &DynamicConfigs,
    config: &TopicConfig,
    overrides: &BTreeMap<String, String>,
) -> Vec<(&'static ConfigDef, Option<String>, i8)> {
    TOPIC_CONFIGS
        .iter()
        .map(|def| {
            let source = if overrides.contains_key(def.name) {
                SOURCE_TOPIC
            } else if let Some(source) = dynamic.topic_source(def) {
                source
            } else if defaults.value_of(def.name).as_deref() != Some(def.default) {
                SOURCE_STATIC_BROKER
            } else {
                SOURCE_DEFAULT
            };
            (def, config.value_of(def.name), source)
        })
        .collect()
}

/// Kafka's synonyms, most specific first: the topic's override, the dynamic broker configs
/// (per-broker, then cluster default), the broker setting (under its broker name) when it
/// differs from Kafka's default, and Kafka's default.
fn synonyms(
    defaults: &TopicConfig,
    dynamic: &DynamicConfigs,
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
    let mut out = Vec::with_capacity(5);
    if let Some(value) = overridden {
        out.push(synonym(def.name, value, SOURCE_TOPIC));
    }
    if broker_config::known(broker_name).is_some() {
        for (layer, source) in [
            (&dynamic.node, broker_config::SOURCE_DYNAMIC_BROKER),
            (&dynamic.cluster, broker_config::SOURCE_DYNAMIC_DEFAULT),
        ] {
            if let Some(value) = layer.get(broker_name) {
                out.push(synonym(broker_name, value.clone(), source));
            }
        }
    }
    if let Some(value) = defaults.value_of(def.name).filter(|v| v != def.default) {
        out.push(synonym(broker_name, value, SOURCE_STATIC_BROKER));
    }
    out.push(synonym(broker_name, def.default.to_owned(), SOURCE_DEFAULT));
    out
}

#[allow(clippy::too_many_arguments)]
pub(super) fn entry(
    name: StrBytes,
    value: Option<StrBytes>,
    source: i8,
    read_only: bool,
    kind: ConfigType,
    doc: &'static str,
    version: i16,
    include_documentation: bool,
) -> DescribeConfigsResourceResult {
    let mut entry = DescribeConfigsResourceResult::default()
        .with_name(name)
        .with_value(value)
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
        let on_broker = resource.resource_type == RESOURCE_BROKER;
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
                            let value = value.as_deref();
                            change_list(&mut overrides, name, op == OP_APPEND, value, on_broker)?;
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
/// override (or dynamic broker config) or else Kafka's default, appending only items not there
/// yet. Any other config is INVALID_REQUEST, as Kafka answers.
fn change_list(
    overrides: &mut BTreeMap<String, String>,
    name: String,
    append: bool,
    value: Option<&str>,
    on_broker: bool,
) -> Result<(), (ErrorCode, String)> {
    let verb = if append { "append" } else { "subtract" };
    let (kind, default) = if on_broker {
        broker_config::kind_and_default(&name).ok_or_else(|| {
            (
                ErrorCode::InvalidConfig,
                format!("Unknown config name: {name}"),
            )
        })?
    } else {
        find(&name)
            .map(|def| (def.kind, def.default))
            .ok_or_else(|| {
                (
                    ErrorCode::InvalidConfig,
                    format!("unknown topic config {name}"),
                )
            })?
    };
    if kind != ConfigType::List {
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
    let old = overrides.get(&name).map_or(default, String::as_str);
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

/// Computes a resource's new configs (a topic's overrides, a broker's dynamic configs) from
/// its current ones and stores them.
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
            return super::broker_configs::alter(broker, name, validate_only, change).await;
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
