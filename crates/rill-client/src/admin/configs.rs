//! Configs: `DescribeConfigs` and `IncrementalAlterConfigs` for topics and brokers.

use std::fmt;

use rill_protocol::kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use rill_protocol::kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use rill_protocol::kafka_protocol::messages::{
    DescribeConfigsRequest, IncrementalAlterConfigsRequest,
};
use rill_protocol::{ApiKey, StrBytes};

use super::topics::single;
use super::{Admin, check, missing};
use crate::connection::Connection;
use crate::error::Result;

/// Something that has configs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConfigResource {
    /// A topic, by name (Kafka's resource type 2).
    Topic(String),
    /// A broker, by node id (resource type 4): its static and dynamic settings.
    Broker(i32),
}

impl ConfigResource {
    fn resource_type(&self) -> i8 {
        match self {
            Self::Topic(_) => 2,
            Self::Broker(_) => 4,
        }
    }

    fn resource_name(&self) -> String {
        match self {
            Self::Topic(name) => name.clone(),
            Self::Broker(id) => id.to_string(),
        }
    }

    fn matches(&self, resource_type: i8, resource_name: &str) -> bool {
        resource_type == self.resource_type() && resource_name == self.resource_name()
    }
}

impl fmt::Display for ConfigResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Topic(name) => write!(f, "topic '{name}'"),
            Self::Broker(id) => write!(f, "broker {id}"),
        }
    }
}

/// Where a config's value comes from (Kafka's `ConfigSource`, by its wire names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConfigSource {
    /// Not reported (brokers before `DescribeConfigs` v1), or a code this client does not know.
    Unknown,
    /// Set on the topic itself (`TOPIC_CONFIG`, 1).
    TopicConfig,
    /// Set dynamically for this broker (`DYNAMIC_BROKER_CONFIG`, 2).
    DynamicBrokerConfig,
    /// Set dynamically for every broker (`DYNAMIC_DEFAULT_BROKER_CONFIG`, 3).
    DynamicDefaultBrokerConfig,
    /// From the broker's start-up settings (`STATIC_BROKER_CONFIG`, 4).
    StaticBrokerConfig,
    /// The built-in default (`DEFAULT_CONFIG`, 5).
    DefaultConfig,
    /// A broker logger level (`DYNAMIC_BROKER_LOGGER_CONFIG`, 6).
    DynamicBrokerLoggerConfig,
    /// A client metrics subscription (`CLIENT_METRICS_CONFIG`, 7).
    ClientMetricsConfig,
    /// Set on a group (`GROUP_CONFIG`, 8).
    GroupConfig,
}

impl ConfigSource {
    /// The source for a wire code ([`ConfigSource::Unknown`] for codes this client does not
    /// know).
    ///
    /// ```no_run
    /// use rill_client::ConfigSource;
    /// assert_eq!(ConfigSource::from_code(1), ConfigSource::TopicConfig);
    /// ```
    pub fn from_code(code: i8) -> Self {
        match code {
            1 => Self::TopicConfig,
            2 => Self::DynamicBrokerConfig,
            3 => Self::DynamicDefaultBrokerConfig,
            4 => Self::StaticBrokerConfig,
            5 => Self::DefaultConfig,
            6 => Self::DynamicBrokerLoggerConfig,
            7 => Self::ClientMetricsConfig,
            8 => Self::GroupConfig,
            _ => Self::Unknown,
        }
    }
}

/// One config of a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfigEntry {
    /// Its name (`retention.ms`, ...).
    pub name: String,
    /// Its value; `None` when it has none or it is sensitive.
    pub value: Option<String>,
    /// Where the value comes from.
    pub source: ConfigSource,
    /// Whether it cannot be altered.
    pub read_only: bool,
    /// Whether its value is secret (and so not sent).
    pub sensitive: bool,
}

/// One change in an [`Admin::incremental_alter_configs`] call.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AlterConfigOp {
    /// Sets the config to `value` (`SET`, 0).
    Set {
        /// The config's name.
        name: String,
        /// Its new value.
        value: String,
    },
    /// Removes the override, so the default applies again (`DELETE`, 1).
    Delete {
        /// The config's name.
        name: String,
    },
}

impl AlterConfigOp {
    /// A `SET`.
    ///
    /// ```no_run
    /// use rill_client::AlterConfigOp;
    /// let op = AlterConfigOp::set("retention.ms", "3600000");
    /// # drop(op);
    /// ```
    pub fn set(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self::Set {
            name: name.into(),
            value: value.into(),
        }
    }

    /// A `DELETE`.
    ///
    /// ```no_run
    /// use rill_client::AlterConfigOp;
    /// let op = AlterConfigOp::delete("retention.ms");
    /// # drop(op);
    /// ```
    pub fn delete(name: impl Into<String>) -> Self {
        Self::Delete { name: name.into() }
    }

    fn to_wire(&self) -> AlterableConfig {
        let (name, operation, value) = match self {
            Self::Set { name, value } => (name, 0, Some(StrBytes::from_string(value.clone()))),
            Self::Delete { name } => (name, 1, None),
        };
        AlterableConfig::default()
            .with_name(StrBytes::from_string(name.clone()))
            .with_config_operation(operation)
            .with_value(value)
    }
}

impl Admin {
    /// Describes the configs of topics and brokers: every config with its value, source and
    /// whether it is read-only. One result per resource, in the order given
    /// (`UNKNOWN_TOPIC_OR_PARTITION` for a topic that does not exist).
    ///
    /// ```no_run
    /// # async fn _demo(admin: &rill_client::Admin) -> Result<(), rill_client::ClientError> {
    /// use rill_client::ConfigResource;
    /// let resources = [ConfigResource::Topic("events".into()), ConfigResource::Broker(0)];
    /// for (resource, configs) in resources.iter().zip(admin.describe_configs(&resources).await?) {
    ///     for entry in configs? {
    ///         println!("{resource}: {} = {:?} ({:?})", entry.name, entry.value, entry.source);
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn describe_configs(
        &self,
        resources: &[ConfigResource],
    ) -> Result<Vec<Result<Vec<ConfigEntry>>>> {
        let mut results = Vec::with_capacity(resources.len());
        for resource in resources {
            results.push(
                self.retrying(|| self.describe_one(resource))
                    .await
                    .and_then(|r| r),
            );
        }
        Ok(results)
    }

    /// One resource's configs: the outer error is the request's, the inner one the
    /// resource's.
    async fn describe_one(&self, resource: &ConfigResource) -> Result<Result<Vec<ConfigEntry>>> {
        let request = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(resource.resource_type())
                .with_resource_name(StrBytes::from_string(resource.resource_name()))
                .with_configuration_keys(None),
        ]);
        let response = self
            .connection_for(resource)
            .await?
            .request(request)
            .await?;
        let Some(result) = response
            .results
            .iter()
            .find(|r| resource.matches(r.resource_type, r.resource_name.as_str()))
        else {
            return Ok(Err(missing(ApiKey::DescribeConfigs, &resource.to_string())));
        };
        if let Err(err) = check(result.error_code, result.error_message.as_ref(), || {
            format!("describe configs of {resource}")
        }) {
            return Ok(Err(err));
        }
        Ok(Ok(result
            .configs
            .iter()
            .map(|c| ConfigEntry {
                name: c.name.to_string(),
                value: c.value.as_ref().map(ToString::to_string),
                source: ConfigSource::from_code(c.config_source),
                read_only: c.read_only,
                sensitive: c.is_sensitive,
            })
            .collect()))
    }

    /// The configs of one topic; an error names it.
    ///
    /// ```no_run
    /// # async fn _demo(admin: &rill_client::Admin) -> Result<(), rill_client::ClientError> {
    /// let configs = admin.describe_topic_configs("events").await?;
    /// let retention = configs.iter().find(|c| c.name == "retention.ms");
    /// println!("{:?}", retention.and_then(|c| c.value.as_deref()));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn describe_topic_configs(&self, topic: &str) -> Result<Vec<ConfigEntry>> {
        single(
            self.describe_configs(&[ConfigResource::Topic(topic.to_owned())])
                .await?,
        )
    }

    /// The configs of broker `node_id`.
    ///
    /// ```no_run
    /// # async fn _demo(admin: &rill_client::Admin) -> Result<(), rill_client::ClientError> {
    /// for entry in admin.describe_broker_configs(0).await? {
    ///     println!("{} = {:?}", entry.name, entry.value);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn describe_broker_configs(&self, node_id: i32) -> Result<Vec<ConfigEntry>> {
        single(
            self.describe_configs(&[ConfigResource::Broker(node_id)])
                .await?,
        )
    }

    /// Changes configs incrementally (`IncrementalAlterConfigs`, Kafka 2.3+): each resource's
    /// listed configs are set or deleted, the others are left alone. One result per resource,
    /// in the order given. With `validate_only` the broker checks and changes nothing.
    ///
    /// ```no_run
    /// # async fn _demo(admin: &rill_client::Admin) -> Result<(), rill_client::ClientError> {
    /// use rill_client::{AlterConfigOp, ConfigResource};
    /// let changes = [(
    ///     ConfigResource::Topic("events".into()),
    ///     vec![AlterConfigOp::set("retention.ms", "3600000"), AlterConfigOp::delete("segment.bytes")],
    /// )];
    /// for result in admin.incremental_alter_configs(&changes, false).await? {
    ///     result?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn incremental_alter_configs(
        &self,
        changes: &[(ConfigResource, Vec<AlterConfigOp>)],
        validate_only: bool,
    ) -> Result<Vec<Result<()>>> {
        let mut results = Vec::with_capacity(changes.len());
        for (resource, ops) in changes {
            let request = IncrementalAlterConfigsRequest::default()
                .with_validate_only(validate_only)
                .with_resources(vec![
                    AlterConfigsResource::default()
                        .with_resource_type(resource.resource_type())
                        .with_resource_name(StrBytes::from_string(resource.resource_name()))
                        .with_configs(ops.iter().map(AlterConfigOp::to_wire).collect()),
                ]);
            let response = self
                .connection_for(resource)
                .await?
                .request(request)
                .await?;
            results.push(
                match response
                    .responses
                    .iter()
                    .find(|r| resource.matches(r.resource_type, r.resource_name.as_str()))
                {
                    Some(r) => check(r.error_code, r.error_message.as_ref(), || {
                        format!("alter configs of {resource}")
                    }),
                    None => Err(missing(
                        ApiKey::IncrementalAlterConfigs,
                        &resource.to_string(),
                    )),
                },
            );
        }
        Ok(results)
    }

    /// Changes one topic's configs incrementally; an error names the topic.
    ///
    /// ```no_run
    /// # async fn _demo(admin: &rill_client::Admin) -> Result<(), rill_client::ClientError> {
    /// use rill_client::AlterConfigOp;
    /// admin.alter_topic_configs("events", &[AlterConfigOp::set("retention.ms", "3600000")]).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn alter_topic_configs(&self, topic: &str, ops: &[AlterConfigOp]) -> Result<()> {
        single(
            self.incremental_alter_configs(
                &[(ConfigResource::Topic(topic.to_owned()), ops.to_vec())],
                false,
            )
            .await?,
        )
    }

    /// Topic configs may be asked of any broker; a broker's only of that broker.
    async fn connection_for(
        &self,
        resource: &ConfigResource,
    ) -> Result<std::sync::Arc<Connection>> {
        match resource {
            ConfigResource::Topic(_) => self.any().await,
            ConfigResource::Broker(id) => self.cluster.broker_connection(*id).await,
        }
    }
}
