//! Topics and partitions: `CreateTopics`, `DeleteTopics`, `CreatePartitions`, and `Metadata`
//! for listing and describing.

use rill_protocol::kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use rill_protocol::kafka_protocol::messages::create_topics_request::{
    CreatableTopic, CreatableTopicConfig,
};
use rill_protocol::kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use rill_protocol::kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use rill_protocol::kafka_protocol::messages::{
    CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest, MetadataRequest,
    MetadataResponse, TopicName,
};
use rill_protocol::{ApiKey, ErrorCode, StrBytes};

use super::configs::{ConfigEntry, ConfigSource};
use super::{Admin, check, missing};
use crate::error::{ClientError, Result};

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewTopic {
    /// The topic's name.
    pub name: String,
    /// Its partitions; `-1` takes the broker's `num.partitions`.
    pub num_partitions: i32,
    /// Copies of each partition; `-1` (the default) takes the broker's
    /// `default.replication.factor`. Rill keeps one copy and refuses more with
    /// `INVALID_REPLICATION_FACTOR`.
    pub replication_factor: i16,
    /// Topic configs that differ from the broker's defaults (`retention.ms`, ...), in order.
    pub configs: Vec<(String, String)>,
}

impl NewTopic {
    /// A topic with `num_partitions` partitions, the broker's replication factor and no config
    /// overrides.
    ///
    /// ```no_run
    /// use rill_client::NewTopic;
    /// let topic = NewTopic::new("events", 3)
    ///     .replication_factor(1)
    ///     .config("retention.ms", "86400000");
    /// # drop(topic);
    /// ```
    pub fn new(name: impl Into<String>, num_partitions: i32) -> Self {
        Self {
            name: name.into(),
            num_partitions,
            replication_factor: -1,
            configs: Vec::new(),
        }
    }

    /// Sets the replication factor.
    #[must_use]
    pub fn replication_factor(mut self, replication_factor: i16) -> Self {
        self.replication_factor = replication_factor;
        self
    }

    /// Adds a config override.
    #[must_use]
    pub fn config(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.configs.push((name.into(), value.into()));
        self
    }
}

/// What the broker reports about a topic it created (or, with `validate_only`, would create).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CreatedTopic {
    /// The topic's name.
    pub name: String,
    /// Its partition count (`None` from brokers before `CreateTopics` v5, Kafka 2.4).
    pub num_partitions: Option<i32>,
    /// Its replication factor (`None` before v5).
    pub replication_factor: Option<i16>,
    /// Its configs with their sources (empty before v5).
    pub configs: Vec<ConfigEntry>,
}

/// A topic as [`Admin::list_topics`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TopicListing {
    /// The topic's name.
    pub name: String,
    /// Whether it is one of Kafka's internal topics (`__consumer_offsets`, ...).
    pub internal: bool,
}

/// One partition of a [`TopicDescription`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartitionInfo {
    /// The partition index.
    pub partition: i32,
    /// The leader's node id; `None` while it has none.
    pub leader: Option<i32>,
    /// The leader epoch (`-1` if the broker did not say).
    pub leader_epoch: i32,
    /// Node ids of every replica, the preferred leader first.
    pub replicas: Vec<i32>,
    /// Node ids of the in-sync replicas.
    pub isr: Vec<i32>,
    /// Node ids of replicas on offline brokers.
    pub offline_replicas: Vec<i32>,
    /// The partition's error (`LEADER_NOT_AVAILABLE`, ...), if any.
    pub error: Option<ErrorCode>,
}

/// A topic as [`Admin::describe_topics`] describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TopicDescription {
    /// The topic's name.
    pub name: String,
    /// Whether it is one of Kafka's internal topics.
    pub internal: bool,
    /// Its topic id (a UUID's 16 bytes; Kafka shows it in URL-safe base64), from brokers that
    /// report one (`Metadata` v10+, Kafka 2.8); `None` otherwise.
    pub topic_id: Option<[u8; 16]>,
    /// Its partitions, sorted by index.
    pub partitions: Vec<PartitionInfo>,
}

pub(super) fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

pub(super) fn node_ids(ids: &[rill_protocol::kafka_protocol::messages::BrokerId]) -> Vec<i32> {
    ids.iter().map(|id| id.0).collect()
}

impl Admin {
    /// Creates topics. One result per topic, in the order given; an error names its topic
    /// (`TOPIC_ALREADY_EXISTS`, `INVALID_REPLICATION_FACTOR`, `INVALID_CONFIG`, ...). With
    /// `validate_only` the broker checks the request and creates nothing.
    ///
    /// ```no_run
    /// # async fn _demo(admin: &rill_client::Admin) -> Result<(), rill_client::ClientError> {
    /// use rill_client::NewTopic;
    /// let results = admin
    ///     .create_topics(&[NewTopic::new("a", 1), NewTopic::new("b", 4)], false)
    ///     .await?;
    /// for result in results {
    ///     match result {
    ///         Ok(created) => println!("created {}", created.name),
    ///         Err(err) => println!("{err}"),
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn create_topics(
        &self,
        topics: &[NewTopic],
        validate_only: bool,
    ) -> Result<Vec<Result<CreatedTopic>>> {
        let request = CreateTopicsRequest::default()
            .with_timeout_ms(self.timeout_ms())
            .with_validate_only(validate_only)
            .with_topics(
                topics
                    .iter()
                    .map(|t| {
                        CreatableTopic::default()
                            .with_name(topic_name(&t.name))
                            .with_num_partitions(t.num_partitions)
                            .with_replication_factor(t.replication_factor)
                            .with_configs(
                                t.configs
                                    .iter()
                                    .map(|(name, value)| {
                                        CreatableTopicConfig::default()
                                            .with_name(StrBytes::from_string(name.clone()))
                                            .with_value(Some(StrBytes::from_string(value.clone())))
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let conn = self.any().await?;
        let version = conn.version_for(ApiKey::CreateTopics)?;
        let response = conn.request_at(request, version).await?;
        if !validate_only {
            self.cluster.invalidate();
        }
        Ok(topics
            .iter()
            .map(|topic| {
                let context = || format!("create topic '{}'", topic.name);
                let result = response
                    .topics
                    .iter()
                    .find(|r| r.name.0.as_str() == topic.name)
                    .ok_or_else(|| {
                        missing(ApiKey::CreateTopics, &format!("topic '{}'", topic.name))
                    })?;
                check(result.error_code, result.error_message.as_ref(), context)?;
                let v5 = version >= 5;
                Ok(CreatedTopic {
                    name: topic.name.clone(),
                    num_partitions: v5.then_some(result.num_partitions),
                    replication_factor: v5.then_some(result.replication_factor),
                    configs: result
                        .configs
                        .iter()
                        .flatten()
                        .map(|c| ConfigEntry {
                            name: c.name.to_string(),
                            value: c.value.as_ref().map(ToString::to_string),
                            source: ConfigSource::from_code(c.config_source),
                            read_only: c.read_only,
                            sensitive: c.is_sensitive,
                        })
                        .collect(),
                })
            })
            .collect())
    }

    /// Creates one topic; an error names it.
    ///
    /// ```no_run
    /// # async fn _demo(admin: &rill_client::Admin) -> Result<(), rill_client::ClientError> {
    /// use rill_client::{ErrorCode, NewTopic};
    /// match admin.create_topic(NewTopic::new("events", 3)).await {
    ///     Ok(_) => println!("created"),
    ///     Err(err) if err.code() == Some(ErrorCode::TopicAlreadyExists) => println!("exists"),
    ///     Err(err) => return Err(err),
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn create_topic(&self, topic: NewTopic) -> Result<CreatedTopic> {
        single(
            self.create_topics(std::slice::from_ref(&topic), false)
                .await?,
        )
    }

    /// Deletes topics by name. One result per topic, in the order given
    /// (`UNKNOWN_TOPIC_OR_PARTITION` for one that does not exist).
    ///
    /// ```no_run
    /// # async fn _demo(admin: &rill_client::Admin) -> Result<(), rill_client::ClientError> {
    /// for result in admin.delete_topics(&["a", "b"]).await? {
    ///     result?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn delete_topics<S: AsRef<str> + Sync>(
        &self,
        names: &[S],
    ) -> Result<Vec<Result<()>>> {
        let conn = self.any().await?;
        let version = conn.version_for(ApiKey::DeleteTopics)?;
        let mut request = DeleteTopicsRequest::default().with_timeout_ms(self.timeout_ms());
        let names: Vec<&str> = names.iter().map(AsRef::as_ref).collect();
        if version >= 6 {
            request.topics = names
                .iter()
                .map(|n| DeleteTopicState::default().with_name(Some(topic_name(n))))
                .collect();
        } else {
            request.topic_names = names.iter().map(|n| topic_name(n)).collect();
        }
        let response = conn.request_at(request, version).await?;
        self.cluster.invalidate();
        Ok(names
            .iter()
            .map(|&name| {
                let result = response
                    .responses
                    .iter()
                    .find(|r| r.name.as_ref().is_some_and(|n| n.0.as_str() == name))
                    .ok_or_else(|| missing(ApiKey::DeleteTopics, &format!("topic '{name}'")))?;
                check(result.error_code, result.error_message.as_ref(), || {
                    format!("delete topic '{name}'")
                })
            })
            .collect())
    }

    /// Deletes one topic; an error names it.
    ///
    /// ```no_run
    /// # async fn _demo(admin: &rill_client::Admin) -> Result<(), rill_client::ClientError> {
    /// admin.delete_topic("events").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn delete_topic(&self, name: &str) -> Result<()> {
        single(self.delete_topics(&[name]).await?)
    }

    /// Every topic in the cluster, sorted by name, internal ones included (see
    /// [`TopicListing::internal`]).
    ///
    /// ```no_run
    /// # async fn _demo(admin: &rill_client::Admin) -> Result<(), rill_client::ClientError> {
    /// let user_topics: Vec<String> = admin
    ///     .list_topics()
    ///     .await?
    ///     .into_iter()
    ///     .filter(|t| !t.internal)
    ///     .map(|t| t.name)
    ///     .collect();
    /// # drop(user_topics);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn list_topics(&self) -> Result<Vec<TopicListing>> {
        let response = self.metadata(None).await?;
        let mut topics: Vec<TopicListing> = response
            .topics
            .iter()
            .filter(|t| t.error_code == 0)
            .filter_map(|t| {
                Some(TopicListing {
                    name: t.name.as_ref()?.0.to_string(),
                    internal: t.is_internal,
                })
            })
            .collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(topics)
    }

    /// Describes topics: partitions, leaders, replicas and in-sync replicas. One result per
    /// topic, in the order given (`UNKNOWN_TOPIC_OR_PARTITION` for one that does not exist;
    /// nothing is created).
    ///
    /// ```no_run
    /// # async fn _demo(admin: &rill_client::Admin) -> Result<(), rill_client::ClientError> {
    /// for topic in admin.describe_topics(&["events"]).await? {
    ///     let topic = topic?;
    ///     for p in &topic.partitions {
    ///         println!("{} {} leader {:?} isr {:?}", topic.name, p.partition, p.leader, p.isr);
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn describe_topics<S: AsRef<str> + Sync>(
        &self,
        names: &[S],
    ) -> Result<Vec<Result<TopicDescription>>> {
        let names: Vec<&str> = names.iter().map(AsRef::as_ref).collect();
        let response = self.metadata(Some(&names)).await?;
        Ok(names
            .iter()
            .map(|&name| {
                let topic = response
                    .topics
                    .iter()
                    .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == name))
                    .ok_or_else(|| missing(ApiKey::Metadata, &format!("topic '{name}'")))?;
                check(topic.error_code, None, || {
                    format!("describe topic '{name}'")
                })?;
                let mut partitions: Vec<PartitionInfo> = topic
                    .partitions
                    .iter()
                    .map(|p| PartitionInfo {
                        partition: p.partition_index,
                        leader: (p.leader_id.0 >= 0).then_some(p.leader_id.0),
                        leader_epoch: p.leader_epoch,
                        replicas: node_ids(&p.replica_nodes),
                        isr: node_ids(&p.isr_nodes),
                        offline_replicas: node_ids(&p.offline_replicas),
                        error: ErrorCode::from_code(p.error_code).filter(|c| !c.is_ok()),
                    })
                    .collect();
                partitions.sort_by_key(|p| p.partition);
                Ok(TopicDescription {
                    name: name.to_owned(),
                    internal: topic.is_internal,
                    topic_id: (!topic.topic_id.is_nil()).then(|| *topic.topic_id.as_bytes()),
                    partitions,
                })
            })
            .collect())
    }

    /// Describes one topic; an error names it.
    ///
    /// ```no_run
    /// # async fn _demo(admin: &rill_client::Admin) -> Result<(), rill_client::ClientError> {
    /// let topic = admin.describe_topic("events").await?;
    /// println!("{} partitions", topic.partitions.len());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn describe_topic(&self, name: &str) -> Result<TopicDescription> {
        single(self.describe_topics(&[name]).await?)
    }

    /// Raises topics' partition counts: each `(topic, total)` asks for `total` partitions in
    /// all (Kafka never removes partitions; a smaller or equal total is
    /// `INVALID_PARTITIONS`). One result per topic, in the order given. With
    /// `validate_only` nothing changes.
    ///
    /// Keyed records map to other partitions afterwards: the key hash is taken modulo the new
    /// count.
    ///
    /// ```no_run
    /// # async fn _demo(admin: &rill_client::Admin) -> Result<(), rill_client::ClientError> {
    /// for result in admin.create_partitions(&[("events", 6), ("audit", 2)], false).await? {
    ///     result?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn create_partitions<S: AsRef<str> + Sync>(
        &self,
        totals: &[(S, i32)],
        validate_only: bool,
    ) -> Result<Vec<Result<()>>> {
        let request = CreatePartitionsRequest::default()
            .with_timeout_ms(self.timeout_ms())
            .with_validate_only(validate_only)
            .with_topics(
                totals
                    .iter()
                    .map(|(name, count)| {
                        CreatePartitionsTopic::default()
                            .with_name(topic_name(name.as_ref()))
                            .with_count(*count)
                            .with_assignments(None)
                    })
                    .collect(),
            );
        let conn = self.any().await?;
        let response = conn.request(request).await?;
        if !validate_only {
            self.cluster.invalidate();
        }
        Ok(totals
            .iter()
            .map(|(name, count)| {
                let name = name.as_ref();
                let result = response
                    .results
                    .iter()
                    .find(|r| r.name.0.as_str() == name)
                    .ok_or_else(|| missing(ApiKey::CreatePartitions, &format!("topic '{name}'")))?;
                check(result.error_code, result.error_message.as_ref(), || {
                    format!("create partitions of topic '{name}' up to {count}")
                })
            })
            .collect())
    }

    /// Raises one topic's partition count to `total`; an error names the topic.
    ///
    /// ```no_run
    /// # async fn _demo(admin: &rill_client::Admin) -> Result<(), rill_client::ClientError> {
    /// admin.increase_partitions("events", 6).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn increase_partitions(&self, topic: &str, total: i32) -> Result<()> {
        single(self.create_partitions(&[(topic, total)], false).await?)
    }

    /// A `Metadata` answer for `topics` (`None`: all), never creating any.
    pub(super) async fn metadata(&self, topics: Option<&[&str]>) -> Result<MetadataResponse> {
        let request = MetadataRequest::default()
            .with_allow_auto_topic_creation(false)
            .with_topics(topics.map(|names| {
                names
                    .iter()
                    .map(|n| MetadataRequestTopic::default().with_name(Some(topic_name(n))))
                    .collect()
            }));
        self.retrying(|| {
            let request = request.clone();
            async move { self.any().await?.request(request).await }
        })
        .await
    }
}

/// The one result of a one-item batch.
pub(super) fn single<T>(results: Vec<Result<T>>) -> Result<T> {
    results.into_iter().next().unwrap_or_else(|| {
        Err(ClientError::Kafka {
            code: ErrorCode::UnknownServerError,
            context: "an admin call for one item returned no result".to_owned(),
        })
    })
}
