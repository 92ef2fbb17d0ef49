//! DescribeConfigs and the alter APIs on BROKER resources: this broker's node id (its own
//! dynamic configs) or "" (the cluster-wide dynamic defaults).

use std::collections::BTreeMap;

use rill_protocol::ErrorCode;
use rill_protocol::StrBytes;
use rill_protocol::kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsSynonym,
};

use super::configs::{SOURCE_STATIC_BROKER, entry};
use super::create_topics::SOURCE_DEFAULT;
use crate::broker::Broker;
use crate::broker_config::{
    self, ConfigError, DynamicConfigs, Known, SOURCE_DYNAMIC_BROKER, SOURCE_DYNAMIC_DEFAULT,
};
use crate::topic_config::{ConfigType, TopicConfig};

/// Whether a BROKER resource name is this broker (`true`) or the cluster default (`false`);
/// another broker is Kafka's INVALID_REQUEST.
pub(super) fn per_broker(broker: &Broker, name: &str) -> Result<bool, ConfigError> {
    if name.is_empty() {
        return Ok(false);
    }
    let id: i32 = name.parse().map_err(|_| {
        (
            ErrorCode::InvalidRequest,
            format!("Broker id must be an integer, but it is: {name}"),
        )
    })?;
    if id == broker.config.node_id {
        Ok(true)
    } else {
        Err((
            ErrorCode::InvalidRequest,
            format!(
                "Unexpected broker id, expected {} or empty string, but received {name}",
                broker.config.node_id
            ),
        ))
    }
}

/// The `rill serve` settings that only a restart changes: `(name, value, type, doc)`.
fn static_only(broker: &Broker) -> Vec<(&'static str, String, ConfigType, &'static str)> {
    let c = &broker.config;
    let mut settings = vec![
        (
            "auto.create.topics.enable",
            c.auto_create_topics.to_string(),
            ConfigType::Boolean,
            "Create unknown topics on metadata requests.",
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
    ];
    if let Some(rack) = &c.rack {
        settings.push((
            "broker.rack",
            rack.clone(),
            ConfigType::String,
            "The rack (or zone) this broker is in.",
        ));
    }
    settings
}

/// Where one broker config's value may come from, most specific first.
struct Layers {
    node: Option<String>,
    cluster: Option<String>,
    static_value: Option<String>,
    default: Option<String>,
}

impl Layers {
    /// Each present layer as `(value, source)`, in Kafka's synonym order; the per-broker layer
    /// only for the per-broker resource.
    fn synonyms(&self, per_broker: bool) -> Vec<(String, i8)> {
        let mut out = Vec::with_capacity(4);
        if per_broker {
            out.extend(self.node.clone().map(|v| (v, SOURCE_DYNAMIC_BROKER)));
        }
        out.extend(self.cluster.clone().map(|v| (v, SOURCE_DYNAMIC_DEFAULT)));
        out.extend(self.static_value.clone().map(|v| (v, SOURCE_STATIC_BROKER)));
        out.extend(self.default.clone().map(|v| (v, SOURCE_DEFAULT)));
        out
    }
}

/// Every config of a BROKER resource, as Kafka describes it: for this broker, every config
/// with its effective value and source; for "", the cluster-wide dynamic defaults only.
#[expect(clippy::too_many_arguments, reason = "the request's describe flags")]
pub(super) fn describe(
    broker: &Broker,
    per_broker: bool,
    wanted: &dyn Fn(&str) -> bool,
    include_synonyms: bool,
    include_documentation: bool,
    version: i16,
    dynamic: &DynamicConfigs,
    statics: &TopicConfig,
) -> Vec<DescribeConfigsResourceResult> {
    let mut out = Vec::new();
    let mut push = |name: StrBytes, layers: Layers, kind, doc, read_only: bool| {
        let synonyms = layers.synonyms(per_broker);
        let Some((value, source)) = synonyms.first().cloned() else {
            return;
        };
        if !per_broker && source != SOURCE_DYNAMIC_DEFAULT {
            return;
        }
        let sensitive = broker_config::sensitive(&name);
        let hide = |v: String| (!sensitive).then(|| StrBytes::from_string(v));
        let mut e = entry(
            name.clone(),
            hide(value),
            source,
            read_only,
            kind,
            doc,
            version,
            include_documentation,
        )
        .with_is_sensitive(sensitive);
        if include_synonyms {
            e = e.with_synonyms(
                synonyms
                    .into_iter()
                    .map(|(v, source)| {
                        DescribeConfigsSynonym::default()
                            .with_name(name.clone())
                            .with_value(hide(v))
                            .with_source(source)
                    })
                    .collect(),
            );
        }
        out.push(e);
    };
    if per_broker {
        for (name, value, kind, doc) in static_only(broker) {
            if wanted(name) {
                let layers = Layers {
                    node: None,
                    cluster: None,
                    static_value: Some(value),
                    default: None,
                };
                push(StrBytes::from_static_str(name), layers, kind, doc, true);
            }
        }
    }
    for (name, kind, default, doc) in broker_config::all_known() {
        if !wanted(name) {
            continue;
        }
        let static_value = match broker_config::known(name) {
            Some(Known::Topic(def)) => statics.value_of(def.name).filter(|v| v != default),
            _ => None,
        };
        let layers = Layers {
            node: dynamic.node.get(name).cloned(),
            cluster: dynamic.cluster.get(name).cloned(),
            static_value,
            default: (!default.is_empty()).then(|| default.to_owned()),
        };
        push(StrBytes::from_static_str(name), layers, kind, doc, false);
    }
    // Names Kafka does not know are kept as they were set (Kafka allows custom configs).
    let mut unknown: BTreeMap<&str, ()> = BTreeMap::new();
    for name in dynamic.node.keys().chain(dynamic.cluster.keys()) {
        if broker_config::known(name).is_none() && wanted(name) {
            let _ = unknown.insert(name, ());
        }
    }
    for name in unknown.into_keys() {
        let layers = Layers {
            node: dynamic.node.get(name).cloned(),
            cluster: dynamic.cluster.get(name).cloned(),
            static_value: None,
            default: None,
        };
        push(
            StrBytes::from_string(name.to_owned()),
            layers,
            ConfigType::String,
            "",
            false,
        );
    }
    out
}

/// Applies `change` to a BROKER resource's dynamic configs and stores the result.
pub(super) async fn alter(
    broker: &Broker,
    name: &str,
    validate_only: bool,
    change: impl FnOnce(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, ConfigError>,
) -> Result<(), ConfigError> {
    let per_broker = per_broker(broker, name)?;
    let dynamic = broker.dynamic();
    let configs = change(dynamic.of(per_broker))?;
    broker
        .set_broker_configs(per_broker, configs, validate_only)
        .await
}
