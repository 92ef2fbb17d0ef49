//! The client's view of the cluster: brokers, topics and partition leaders from `Metadata`,
//! and one lazily opened, reused [`Connection`] per broker.
//!
//! The metadata cache is refreshed when a caller reports that it is stale (a
//! `NOT_LEADER_OR_FOLLOWER`, `UNKNOWN_TOPIC_OR_PARTITION` or `LEADER_NOT_AVAILABLE` answer, or a
//! broken connection: see [`Cluster::invalidate`]) and, at the latest, when it is older than
//! [`ClientConfig::metadata_max_age`] at the next lookup. A broker whose connection failed is
//! reconnected after an exponential backoff ([`ClientConfig::reconnect_backoff`] doubling up to
//! [`ClientConfig::reconnect_backoff_max`]).
//!
//! Lock rules: the cache is behind a `std::sync::Mutex` held only for lookups and merges, never
//! across an await; each broker's connection slot has a tokio mutex held across the connect, so
//! that concurrent callers open one connection, not several.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rill_protocol::ErrorCode;
use rill_protocol::StrBytes;
use rill_protocol::kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use rill_protocol::kafka_protocol::messages::{MetadataRequest, MetadataResponse, TopicName};
use tokio::time::Instant;

use crate::connection::{Connection, ConnectionConfig};
use crate::error::{ClientError, Result};

/// Default for [`ClientConfig::metadata_max_age`]: 5 minutes, Kafka's `metadata.max.age.ms`.
pub const DEFAULT_METADATA_MAX_AGE: Duration = Duration::from_secs(300);
/// Default for [`ClientConfig::reconnect_backoff`]: 50 ms, Kafka's `reconnect.backoff.ms`.
pub const DEFAULT_RECONNECT_BACKOFF: Duration = Duration::from_millis(50);
/// Default for [`ClientConfig::reconnect_backoff_max`]: 1 s, Kafka's
/// `reconnect.backoff.max.ms`.
pub const DEFAULT_RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// How to reach the cluster; shared by every producer and (later) consumer of a [`Cluster`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// `host:port` of one or more brokers to ask for metadata first (Kafka's
    /// `bootstrap.servers`). After the first answer the brokers it lists are used.
    pub bootstrap: Vec<String>,
    /// Client id, timeouts and limits of each connection.
    pub connection: ConnectionConfig,
    /// Metadata older than this is refreshed at the next lookup (default
    /// [`DEFAULT_METADATA_MAX_AGE`]), so new partitions and moved leaders are noticed even
    /// without an error.
    pub metadata_max_age: Duration,
    /// Wait before reconnecting to a broker whose connection failed (default
    /// [`DEFAULT_RECONNECT_BACKOFF`]); doubles with each failure in a row.
    pub reconnect_backoff: Duration,
    /// Upper bound of the reconnect wait (default [`DEFAULT_RECONNECT_BACKOFF_MAX`]).
    pub reconnect_backoff_max: Duration,
    /// Ask the broker to create topics that do not exist when their metadata is requested
    /// (default `true`, as Kafka's producer does; the broker's `auto.create.topics.enable`
    /// still decides).
    pub allow_auto_topic_creation: bool,
}

impl ClientConfig {
    /// The defaults above with these bootstrap brokers.
    ///
    /// ```no_run
    /// use rill_client::ClientConfig;
    /// let config = ClientConfig::new(["127.0.0.1:9092"]);
    /// # drop(config);
    /// ```
    pub fn new<S: Into<String>>(bootstrap: impl IntoIterator<Item = S>) -> Self {
        Self {
            bootstrap: bootstrap.into_iter().map(Into::into).collect(),
            connection: ConnectionConfig::default(),
            metadata_max_age: DEFAULT_METADATA_MAX_AGE,
            reconnect_backoff: DEFAULT_RECONNECT_BACKOFF,
            reconnect_backoff_max: DEFAULT_RECONNECT_BACKOFF_MAX,
            allow_auto_topic_creation: true,
        }
    }
}

/// One partition as the last metadata answer described it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartitionMetadata {
    /// The partition index.
    pub partition: i32,
    /// The leader's node id (`-1`: none right now).
    pub leader: i32,
    /// The leader epoch.
    pub leader_epoch: i32,
    /// The partition's error (`LEADER_NOT_AVAILABLE`, ...) or `NONE`.
    pub error: Option<ErrorCode>,
}

/// One topic as the last metadata answer described it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TopicMetadata {
    /// The topic's name.
    pub name: String,
    /// The topic-level error (`UNKNOWN_TOPIC_OR_PARTITION`, `INVALID_TOPIC_EXCEPTION`, ...), or
    /// `None` when the topic is usable.
    pub error: Option<ErrorCode>,
    /// Its partitions, sorted by index.
    pub partitions: Vec<PartitionMetadata>,
}

impl TopicMetadata {
    /// How many partitions the topic has.
    pub fn partition_count(&self) -> i32 {
        i32::try_from(self.partitions.len()).unwrap_or(i32::MAX)
    }

    /// The leader of `partition`, if it has one.
    pub fn leader(&self, partition: i32) -> Option<i32> {
        self.partitions
            .iter()
            .find(|p| p.partition == partition)
            .map(|p| p.leader)
            .filter(|&leader| leader >= 0)
    }
}

#[derive(Debug, Default)]
struct Cache {
    brokers: HashMap<i32, String>,
    /// Shared: the producer looks a topic up for every record it takes.
    topics: HashMap<String, Arc<TopicMetadata>>,
    refreshed_at: Option<Instant>,
    stale: bool,
}

/// A broker's connection, opened on first use and reopened (after a backoff) once it fails.
#[derive(Debug, Default)]
struct Slot {
    conn: Option<Arc<Connection>>,
    failures: u32,
    retry_at: Option<Instant>,
}

/// The cluster: metadata cache plus one connection per broker. Share it behind an `Arc`;
/// producers (and later consumers and admin clients) built on the same `Cluster` share its
/// connections and metadata.
///
/// ```no_run
/// use rill_client::{ClientConfig, Cluster};
///
/// # async fn _demo() -> Result<(), rill_client::ClientError> {
/// let cluster = Cluster::new(ClientConfig::new(["127.0.0.1:9092"]));
/// let topic = cluster.topic_metadata("events").await?;
/// println!("{} partitions", topic.partition_count());
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Cluster {
    config: ClientConfig,
    cache: Mutex<Cache>,
    slots: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Slot>>>>,
    /// One metadata refresh at a time; callers that queued behind it reuse its answer.
    refresh: tokio::sync::Mutex<()>,
}

impl Cluster {
    /// A cluster handle; nothing is connected until the first request.
    ///
    /// ```no_run
    /// # use rill_client::{ClientConfig, Cluster};
    /// let cluster = std::sync::Arc::new(Cluster::new(ClientConfig::new(["127.0.0.1:9092"])));
    /// # drop(cluster);
    /// ```
    pub fn new(config: ClientConfig) -> Self {
        Self {
            config,
            cache: Mutex::default(),
            slots: Mutex::default(),
            refresh: tokio::sync::Mutex::new(()),
        }
    }

    /// The configuration this cluster was made with.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    fn cache(&self) -> MutexGuard<'_, Cache> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Marks the metadata stale: the next lookup refreshes it. Call it after an error for
    /// which [`ClientError::invalidates_metadata`] is true.
    pub fn invalidate(&self) {
        self.cache().stale = true;
    }

    /// The address of broker `node_id`, if the metadata lists it.
    pub fn broker_addr(&self, node_id: i32) -> Option<String> {
        self.cache().brokers.get(&node_id).cloned()
    }

    /// The cached metadata of `topic`, however old, without asking anyone.
    pub fn cached_topic(&self, topic: &str) -> Option<TopicMetadata> {
        self.cached_topic_shared(topic).map(|t| (*t).clone())
    }

    /// [`Cluster::cached_topic`] without copying it.
    pub(crate) fn cached_topic_shared(&self, topic: &str) -> Option<Arc<TopicMetadata>> {
        self.cache().topics.get(topic).cloned()
    }

    /// The metadata of `topic`: from the cache when it is fresh (younger than
    /// `metadata_max_age`, not invalidated) and describes the topic without error, otherwise
    /// after a refresh. A topic-level error in the answer is returned as
    /// [`ClientError::Kafka`].
    ///
    /// ```no_run
    /// # async fn _demo(cluster: &rill_client::Cluster) -> Result<(), rill_client::ClientError> {
    /// let topic = cluster.topic_metadata("events").await?;
    /// assert!(topic.partition_count() > 0);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn topic_metadata(&self, topic: &str) -> Result<TopicMetadata> {
        if let Some(meta) = self.fresh(topic) {
            return Ok(meta);
        }
        self.refresh_metadata(&[topic.to_owned()]).await?;
        let meta = self.cached_topic(topic).ok_or_else(|| ClientError::Kafka {
            code: ErrorCode::UnknownTopicOrPartition,
            context: format!("metadata for topic '{topic}'"),
        })?;
        if let Some(code) = meta.error {
            return Err(ClientError::Kafka {
                code,
                context: format!("metadata for topic '{topic}'"),
            });
        }
        Ok(meta)
    }

    fn fresh(&self, topic: &str) -> Option<TopicMetadata> {
        let cache = self.cache();
        let young = cache
            .refreshed_at
            .is_some_and(|at| at.elapsed() < self.config.metadata_max_age);
        if cache.stale || !young {
            return None;
        }
        cache
            .topics
            .get(topic)
            .filter(|t| t.error.is_none() && t.partitions.iter().all(|p| p.leader >= 0))
            .map(|t| (**t).clone())
    }

    /// Asks a broker for the metadata of `topics` plus every topic already cached, and
    /// replaces the cache with the answer.
    ///
    /// ```no_run
    /// # async fn _demo(cluster: &rill_client::Cluster) -> Result<(), rill_client::ClientError> {
    /// cluster.refresh_metadata(&["events".to_owned()]).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn refresh_metadata(&self, topics: &[String]) -> Result<()> {
        let started = Instant::now();
        let _guard = self.refresh.lock().await;
        {
            // Someone refreshed while we queued: their answer covers us if it has our topics.
            let cache = self.cache();
            if !cache.stale
                && cache.refreshed_at.is_some_and(|at| at >= started)
                && topics.iter().all(|t| cache.topics.contains_key(t))
            {
                return Ok(());
            }
        }
        let mut wanted: HashSet<String> = self.cache().topics.keys().cloned().collect();
        wanted.extend(topics.iter().cloned());
        let request = MetadataRequest::default()
            .with_topics(Some(
                wanted
                    .into_iter()
                    .map(|name| {
                        MetadataRequestTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string(name))))
                    })
                    .collect(),
            ))
            .with_allow_auto_topic_creation(self.config.allow_auto_topic_creation);
        let response = self.any_broker_request(request).await?;
        self.merge(response);
        Ok(())
    }

    fn merge(&self, response: MetadataResponse) {
        let mut cache = self.cache();
        cache.brokers = response
            .brokers
            .iter()
            .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
            .collect();
        for topic in response.topics {
            let Some(name) = topic.name else { continue };
            let name = name.0.to_string();
            let mut partitions: Vec<PartitionMetadata> = topic
                .partitions
                .iter()
                .map(|p| PartitionMetadata {
                    partition: p.partition_index,
                    leader: p.leader_id.0,
                    leader_epoch: p.leader_epoch,
                    error: ErrorCode::from_code(p.error_code).filter(|c| !c.is_ok()),
                })
                .collect();
            partitions.sort_by_key(|p| p.partition);
            let error = match ErrorCode::from_code(topic.error_code) {
                Some(ErrorCode::None) => None,
                Some(code) => Some(code),
                None => Some(ErrorCode::UnknownServerError),
            };
            let _ = cache.topics.insert(
                name.clone(),
                Arc::new(TopicMetadata {
                    name,
                    error,
                    partitions,
                }),
            );
        }
        cache.refreshed_at = Some(Instant::now());
        cache.stale = false;
    }

    /// A connection to any broker that answers: known brokers first, then the bootstrap list
    /// (for requests any broker can serve, like `InitProducerId` without a transaction).
    ///
    /// ```no_run
    /// # async fn _demo(cluster: &rill_client::Cluster) -> Result<(), rill_client::ClientError> {
    /// let conn = cluster.any_connection().await?;
    /// # drop(conn);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn any_connection(&self) -> Result<Arc<Connection>> {
        let mut tried = Vec::new();
        for addr in self.candidates() {
            match self.connection(&addr).await {
                Ok(conn) => return Ok(conn),
                Err(err) => tried.push(format!("{addr}: {}", err.with_causes())),
            }
        }
        Err(ClientError::NoBrokerAvailable { tried })
    }

    fn candidates(&self) -> Vec<String> {
        let mut addrs: Vec<String> = self.cache().brokers.values().cloned().collect();
        addrs.sort();
        for addr in &self.config.bootstrap {
            if !addrs.contains(addr) {
                addrs.push(addr.clone());
            }
        }
        addrs
    }

    /// Sends a request to whichever broker answers first: known brokers, then the bootstrap
    /// list. Fails with [`ClientError::NoBrokerAvailable`] naming every address tried.
    async fn any_broker_request(&self, request: MetadataRequest) -> Result<MetadataResponse> {
        let addrs = self.candidates();
        let mut tried = Vec::with_capacity(addrs.len());
        for addr in addrs {
            let result = match self.connection(&addr).await {
                Ok(conn) => conn.request(request.clone()).await,
                Err(err) => Err(err),
            };
            match result {
                Ok(response) => return Ok(response),
                Err(err) => {
                    tracing::debug!(%addr, %err, "metadata request failed");
                    tried.push(format!("{addr}: {}", err.with_causes()));
                }
            }
        }
        Err(ClientError::NoBrokerAvailable { tried })
    }

    /// The connection to the leader of `topic`/`partition`, with the leader's node id.
    ///
    /// ```no_run
    /// # async fn _demo(cluster: &rill_client::Cluster) -> Result<(), rill_client::ClientError> {
    /// let (leader, conn) = cluster.leader_connection("events", 0).await?;
    /// println!("leader {leader} at {}", conn.addr());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn leader_connection(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<(i32, Arc<Connection>)> {
        let meta = self.topic_metadata(topic).await?;
        let leader = meta.leader(partition).ok_or_else(|| ClientError::Kafka {
            code: ErrorCode::LeaderNotAvailable,
            context: format!("topic '{topic}' partition {partition}"),
        })?;
        Ok((leader, self.broker_connection(leader).await?))
    }

    /// The connection to broker `node_id` (opened if needed).
    ///
    /// ```no_run
    /// # async fn _demo(cluster: &rill_client::Cluster) -> Result<(), rill_client::ClientError> {
    /// let conn = cluster.broker_connection(0).await?;
    /// # drop(conn);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn broker_connection(&self, node_id: i32) -> Result<Arc<Connection>> {
        let addr = match self.broker_addr(node_id) {
            Some(addr) => addr,
            None => {
                self.refresh_metadata(&[]).await?;
                self.broker_addr(node_id)
                    .ok_or_else(|| ClientError::NoBrokerAvailable {
                        tried: vec![format!("node {node_id}: not in the metadata")],
                    })?
            }
        };
        self.connection(&addr).await
    }

    /// The connection to `addr`: the open one, or a new one once the reconnect backoff after
    /// the last failure has passed (this waits for it).
    ///
    /// ```no_run
    /// # async fn _demo(cluster: &rill_client::Cluster) -> Result<(), rill_client::ClientError> {
    /// let conn = cluster.connection("127.0.0.1:9092").await?;
    /// # drop(conn);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connection(&self, addr: &str) -> Result<Arc<Connection>> {
        let slot = Arc::clone(
            self.slots
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .entry(addr.to_owned())
                .or_default(),
        );
        let mut slot = slot.lock().await;
        if let Some(conn) = &slot.conn {
            if !conn.is_closed() {
                return Ok(Arc::clone(conn));
            }
            // A SASL session near its end is replaced at once; a failed connection after the
            // backoff.
            if !conn.is_expired() {
                self.note_failure(&mut slot);
            }
            slot.conn = None;
        }
        if let Some(at) = slot.retry_at {
            tokio::time::sleep_until(at).await;
        }
        match Connection::connect(addr, &self.config.connection).await {
            Ok(conn) => {
                let conn = Arc::new(conn);
                slot.conn = Some(Arc::clone(&conn));
                slot.failures = 0;
                slot.retry_at = None;
                Ok(conn)
            }
            Err(err) => {
                self.note_failure(&mut slot);
                Err(err)
            }
        }
    }

    fn note_failure(&self, slot: &mut Slot) {
        let shift = slot.failures.min(16);
        slot.failures = slot.failures.saturating_add(1);
        let backoff = self
            .config
            .reconnect_backoff
            .saturating_mul(1 << shift)
            .min(self.config.reconnect_backoff_max);
        slot.retry_at = Some(Instant::now() + backoff);
    }
}
