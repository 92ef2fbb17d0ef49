//! The broker's shared state: its topics and their partition owners, and the metadata store.
//!
//! Lock rules: `topics` is a `std::sync::RwLock` held only to look up or swap an `Arc<Topic>`,
//! never across an `.await` or disk I/O. Topic changes (create, delete, add partitions, alter
//! configs) are serialized by the `admin` tokio mutex, which is held across the change's
//! awaits; their disk work runs in `spawn_blocking`. A `Topic` is immutable: a change builds a
//! new one and swaps it in.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use rill_protocol::ErrorCode;
use uuid::Uuid;

use crate::assignment;
use crate::broker_config::{self, DynamicConfigs};
use crate::cluster::{ClusterView, Node};
use crate::config::BrokerConfig;
use crate::error::BrokerError;
use crate::meta::{self, MetaStore, TopicRecord};
use crate::metrics::{Metrics, TopicMetrics};
use crate::partition::{OwnerMetrics, Partition, Storage};
use crate::topic_config::TopicConfig;

/// Kafka's limit on topic name length.
const MAX_TOPIC_NAME_LEN: usize = 249;

/// A topic and the owners of its partitions.
#[derive(Debug)]
pub(crate) struct Topic {
    pub(crate) name: String,
    pub(crate) id: Uuid,
    pub(crate) overrides: BTreeMap<String, String>,
    pub(crate) config: TopicConfig,
    pub(crate) partitions: Vec<Arc<Partition>>,
    /// Its throughput counters, resolved once when the topic is created or opened.
    pub(crate) metrics: TopicMetrics,
}

impl Topic {
    pub(crate) fn partition(&self, index: i32) -> Option<&Arc<Partition>> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.partitions.get(i))
    }

    fn record(&self) -> TopicRecord {
        TopicRecord {
            id: self.id,
            partitions: i32::try_from(self.partitions.len()).unwrap_or(i32::MAX),
            configs: self.overrides.clone(),
        }
    }
}

/// An error a client gets for a topic operation: the code and a message.
pub(crate) type TopicError = (ErrorCode, String);

/// Everything the handlers share.
#[derive(Debug)]
pub(crate) struct Broker {
    pub(crate) config: BrokerConfig,
    pub(crate) cluster_id: String,
    /// The cluster's brokers, leaders and coordinators, as handlers tell clients.
    pub(crate) cluster: ClusterView,
    topics: RwLock<HashMap<String, Arc<Topic>>>,
    /// Dynamic broker configs (changed only under `admin`).
    dynamic: RwLock<DynamicConfigs>,
    admin: tokio::sync::Mutex<()>,
    meta: Arc<Mutex<Option<MetaStore>>>,
    /// The next producer id to hand out, and the end of the block reserved in the metadata log.
    producer_ids: tokio::sync::Mutex<(i64, i64)>,
    /// Consumer groups and their committed offsets.
    pub(crate) groups: crate::group::Coordinator,
    /// Cancelled when the broker starts to shut down: long polls answer at once.
    pub(crate) stopping: tokio_util::sync::CancellationToken,
    /// This broker's metrics registry.
    pub(crate) metrics: Arc<Metrics>,
    /// The storage threads that own the partitions, and their descriptor cache.
    pub(crate) storage: Arc<Storage>,
}

impl Broker {
    /// Opens the data directory: the cluster id, the metadata log, and every topic's partitions.
    pub(crate) fn open(
        config: BrokerConfig,
        advertised: (String, u16),
        metrics: Arc<Metrics>,
    ) -> Result<Self, BrokerError> {
        let data_dir = &config.data_dir;
        std::fs::create_dir_all(data_dir).map_err(|source| BrokerError::Io {
            path: data_dir.clone(),
            source,
        })?;
        let cluster_id = meta::cluster_id(data_dir, config.node_id)?;
        let storage = Arc::new(
            Storage::start(
                config.storage_threads(),
                config.max_open_files(),
                config.retention_check_interval,
            )
            .map_err(|source| BrokerError::Io {
                path: data_dir.clone(),
                source,
            })?,
        );
        let (store, replayed) = MetaStore::open(data_dir)?;
        let producer_ids_from = replayed.producer_ids_from;
        remove_orphans(&config, &replayed)?;
        let groups = crate::group::Coordinator::open(
            data_dir,
            rill_group::GroupConfig {
                initial_rebalance_delay: config.group_initial_rebalance_delay,
                min_session_timeout: config.group_session_timeout_range.0,
                max_session_timeout: config.group_session_timeout_range.1,
                ..rill_group::GroupConfig::default()
            },
            config.offsets_retention,
            config.offsets_partitions,
            // A single broker hosts every partition of the offsets log.
            &(0..config.offsets_partitions).collect::<Vec<_>>(),
            &storage,
            metrics.fsync.clone(),
        )?;
        let mut replayed = replayed;
        let dynamic = DynamicConfigs {
            cluster: replayed.broker_configs.remove("").unwrap_or_default(),
            node: replayed
                .broker_configs
                .remove(&config.node_id.to_string())
                .unwrap_or_default(),
        };
        let defaults = dynamic.topic_defaults();
        let opener = Opener {
            config: &config,
            defaults: &defaults,
            metrics: &metrics,
            storage: &storage,
        };
        let specs = replayed
            .topics
            .into_iter()
            .map(|(name, record)| TopicSpec {
                name,
                id: record.id,
                overrides: record.configs,
                partitions: record.partitions,
                existing: Vec::new(),
            })
            .collect();
        let started = std::time::Instant::now();
        let opened = opener.open(specs, false)?;
        let partitions: usize = opened.iter().map(|t| t.partitions.len()).sum();
        tracing::info!(
            topics = opened.len(),
            partitions,
            elapsed_ms = started.elapsed().as_millis(),
            "opened partitions"
        );
        let topics: HashMap<_, _> = opened
            .into_iter()
            .map(|topic| (topic.name.clone(), Arc::new(topic)))
            .collect();
        let node_id = config.node_id;
        let rack = config.rack.clone();
        Ok(Self {
            config,
            cluster_id,
            cluster: ClusterView::single(Node {
                id: node_id,
                host: advertised.0,
                port: advertised.1,
                rack,
            }),
            topics: RwLock::new(topics),
            dynamic: RwLock::new(dynamic),
            admin: tokio::sync::Mutex::new(()),
            meta: Arc::new(Mutex::new(Some(store))),
            groups,
            producer_ids: tokio::sync::Mutex::new((producer_ids_from, producer_ids_from)),
            stopping: tokio_util::sync::CancellationToken::new(),
            metrics,
            storage,
        })
    }

    /// Partitions of every topic (the broker's internal logs not counted).
    fn partition_count(&self) -> usize {
        self.topics
            .read()
            .map(|t| t.values().map(|topic| topic.partitions.len()).sum())
            .unwrap_or(0)
    }

    /// Refuses a change that would take the broker past `rill.max.partitions`, as Kafka refuses
    /// a create over its per-request limit: POLICY_VIOLATION, before anything is made.
    fn check_partition_limit(&self, adding: usize) -> Result<(), TopicError> {
        let held = self.partition_count();
        let max = self.config.max_partitions;
        if held.saturating_add(adding) > max {
            return Err((
                ErrorCode::PolicyViolation,
                format!(
                    "adding {adding} partition(s) to the {held} this broker holds would exceed \
                     rill.max.partitions ({max})"
                ),
            ));
        }
        Ok(())
    }

    /// A copy of the dynamic broker configs.
    pub(crate) fn dynamic(&self) -> DynamicConfigs {
        self.dynamic.read().map(|d| d.clone()).unwrap_or_default()
    }

    /// A topic's effective configs: the broker's defaults (static and dynamic) with its
    /// overrides.
    pub(crate) fn resolve_topic(&self, overrides: &BTreeMap<String, String>) -> TopicConfig {
        TopicConfig::resolve_with(&self.config, &self.dynamic().topic_defaults(), overrides)
    }

    pub(crate) fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.read().ok()?.get(name).cloned()
    }

    /// Every topic, sorted by name.
    pub(crate) fn all_topics(&self) -> Vec<Arc<Topic>> {
        let mut all: Vec<_> = self
            .topics
            .read()
            .map(|t| t.values().cloned().collect())
            .unwrap_or_default();
        all.sort_by(|a: &Arc<Topic>, b| a.name.cmp(&b.name));
        all
    }

    pub(crate) fn topic_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.topics
            .read()
            .ok()?
            .values()
            .find(|t| t.id == id)
            .cloned()
    }

    fn install(&self, topic: Arc<Topic>) {
        if let Ok(mut topics) = self.topics.write() {
            let _ = topics.insert(topic.name.clone(), topic);
        }
    }

    /// Creates a topic (or only checks that it could be created).
    pub(crate) async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        overrides: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<Arc<Topic>, TopicError> {
        validate_topic_name(name)?;
        if partitions < 1 {
            return Err((
                ErrorCode::InvalidPartitions,
                format!("number of partitions must be at least 1, got {partitions}"),
            ));
        }
        TopicConfig::validate(&self.config, &overrides)
            .map_err(|m| (ErrorCode::InvalidConfig, m))?;
        let _admin = self.admin.lock().await;
        if self.topic(name).is_some() {
            return Err((
                ErrorCode::TopicAlreadyExists,
                format!("topic '{name}' already exists"),
            ));
        }
        self.check_partition_limit(usize::try_from(partitions).unwrap_or(usize::MAX))?;
        let id = Uuid::new_v4();
        if validate_only {
            return Ok(Arc::new(Topic {
                name: name.to_owned(),
                id,
                config: self.resolve_topic(&overrides),
                overrides,
                partitions: Vec::new(),
                // Not registered: a topic that is only validated must not appear in /metrics.
                metrics: self.metrics.unregistered_topic(),
            }));
        }
        let spec = TopicSpec {
            name: name.to_owned(),
            id,
            overrides,
            partitions,
            existing: Vec::new(),
        };
        let topic = self.open_and_record(spec).await?;
        self.install(topic.clone());
        tracing::info!(topic = name, partitions, %id, "created topic");
        Ok(topic)
    }

    /// Deletes a topic and its data.
    pub(crate) async fn delete_topic(&self, name: &str) -> Result<Uuid, TopicError> {
        let _admin = self.admin.lock().await;
        let topic = self.topic(name).ok_or_else(|| unknown_topic(name))?;
        if let Ok(mut topics) = self.topics.write() {
            let _ = topics.remove(name);
        }
        let name_owned = name.to_owned();
        let doomed = topic.clone();
        self.blocking(move |store| {
            store.put(&name_owned, None)?;
            Storage::close_all(doomed.partitions.iter().map(|p| &**p), true);
            Ok(())
        })
        .await?;
        self.metrics.remove_topic(name);
        tracing::info!(topic = name, "deleted topic");
        Ok(topic.id)
    }

    /// Raises a topic's partition count. `assignments`, when given, holds the new partitions'
    /// replicas, checked as Kafka checks them (one list per new partition, each naming only
    /// this broker, as many replicas as the topic has).
    pub(crate) async fn create_partitions(
        &self,
        name: &str,
        count: i32,
        assignments: Option<&[Vec<i32>]>,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        let _admin = self.admin.lock().await;
        let topic = self.topic(name).ok_or_else(|| unknown_topic(name))?;
        let current = i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX);
        if count == current {
            return Err((
                ErrorCode::InvalidPartitions,
                format!("Topic already has {current} partition(s)."),
            ));
        }
        if count < current {
            return Err((
                ErrorCode::InvalidPartitions,
                format!(
                    "The topic {name} currently has {current} partition(s); {count} would not be \
                     an increase."
                ),
            ));
        }
        if let Some(assignments) = assignments {
            let additional = count - current;
            if usize::try_from(additional).ok() != Some(assignments.len()) {
                return Err((
                    ErrorCode::InvalidReplicaAssignment,
                    format!(
                        "Attempted to add {additional} additional partition(s), but only {} \
                         assignment(s) were specified.",
                        assignments.len()
                    ),
                ));
            }
            for replicas in assignments {
                assignment::check_replicas(replicas, self.config.node_id, Some(1))?;
            }
        }
        self.check_partition_limit(usize::try_from(count - current).unwrap_or(usize::MAX))?;
        if validate_only {
            return Ok(());
        }
        let spec = TopicSpec {
            name: topic.name.clone(),
            id: topic.id,
            overrides: topic.overrides.clone(),
            partitions: count,
            existing: topic.partitions.clone(),
        };
        let grown = self.open_and_record(spec).await?;
        self.install(grown);
        tracing::info!(topic = name, partitions = count, "added partitions");
        Ok(())
    }

    /// Replaces a topic's config overrides (validated first) and applies them to its partitions.
    pub(crate) async fn set_topic_configs(
        &self,
        name: &str,
        overrides: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        TopicConfig::validate(&self.config, &overrides)
            .map_err(|m| (ErrorCode::InvalidConfig, m))?;
        let _admin = self.admin.lock().await;
        let topic = self.topic(name).ok_or_else(|| unknown_topic(name))?;
        if validate_only {
            return Ok(());
        }
        let changed = Arc::new(Topic {
            name: topic.name.clone(),
            id: topic.id,
            config: self.resolve_topic(&overrides),
            overrides,
            partitions: topic.partitions.clone(),
            metrics: topic.metrics.clone(),
        });
        let record = changed.record();
        let name_owned = name.to_owned();
        self.blocking(move |store| store.put(&name_owned, Some(&record)))
            .await?;
        for partition in &changed.partitions {
            partition.configure(changed.config.log_config());
        }
        self.install(changed);
        Ok(())
    }

    /// Replaces the dynamic configs of this broker (`per_broker`) or of the cluster default
    /// (checked first, as Kafka checks them), stores them durably, and hands every topic
    /// without its own override of a changed default its new configs, live.
    pub(crate) async fn set_broker_configs(
        &self,
        per_broker: bool,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        broker_config::validate(&configs, per_broker)?;
        let mut next = self.dynamic();
        *next.of_mut(per_broker) = configs.clone();
        TopicConfig::validate(&self.config, &next.topic_defaults())
            .map_err(|m| (ErrorCode::InvalidRequest, m))?;
        let _admin = self.admin.lock().await;
        if validate_only {
            return Ok(());
        }
        let resource = if per_broker {
            self.config.node_id.to_string()
        } else {
            String::new()
        };
        self.blocking(move |store| store.put_broker_configs(&resource, &configs))
            .await?;
        let next = match self.dynamic.write() {
            Ok(mut dynamic) => {
                *dynamic.of_mut(per_broker) = next.of(per_broker).clone();
                dynamic.clone()
            }
            Err(_) => return Err((ErrorCode::UnknownServerError, "lock poisoned".to_owned())),
        };
        let defaults = next.topic_defaults();
        for topic in self.all_topics() {
            let config = TopicConfig::resolve_with(&self.config, &defaults, &topic.overrides);
            if config == topic.config {
                continue;
            }
            for partition in &topic.partitions {
                partition.configure(config.log_config());
            }
            self.install(Arc::new(Topic {
                name: topic.name.clone(),
                id: topic.id,
                overrides: topic.overrides.clone(),
                config,
                partitions: topic.partitions.clone(),
                metrics: topic.metrics.clone(),
            }));
        }
        tracing::info!(per_broker, "changed dynamic broker configs");
        Ok(())
    }

    /// A producer id never handed out before, on this broker or before a restart: ids are
    /// reserved in blocks, each recorded durably in the metadata log before it is used.
    pub(crate) async fn allocate_producer_id(&self) -> Result<i64, TopicError> {
        const BLOCK: i64 = 1000;
        let mut ids = self.producer_ids.lock().await;
        if ids.0 >= ids.1 {
            let reserved_to = ids.1 + BLOCK;
            self.blocking(move |store| store.reserve_producer_ids(reserved_to))
                .await?;
            ids.1 = reserved_to;
        }
        let id = ids.0;
        ids.0 += 1;
        Ok(id)
    }

    /// Opens the new partitions of a topic being created or grown, then records it in the
    /// metadata log: all or nothing. If any partition or the record fails, the partitions just
    /// made are deleted again and the topic stays as it was.
    async fn open_and_record(&self, spec: TopicSpec) -> Result<Arc<Topic>, TopicError> {
        let config = self.config.clone();
        let defaults = self.dynamic().topic_defaults();
        let metrics = self.metrics.clone();
        let storage = self.storage.clone();
        let topic = self
            .blocking(move |store| {
                let opener = Opener {
                    config: &config,
                    defaults: &defaults,
                    metrics: &metrics,
                    storage: &storage,
                };
                let from = spec.existing.len();
                let mut opened = opener.open(vec![spec], true)?;
                let topic = opened
                    .pop()
                    .ok_or_else(|| BrokerError::Internal("no topic opened".into()))?;
                if let Err(err) = store.put(&topic.name, Some(&topic.record())) {
                    let new = topic.partitions.get(from..).unwrap_or_default();
                    Storage::close_all(new.iter().map(|p| &**p), true);
                    return Err(err);
                }
                Ok(topic)
            })
            .await?;
        Ok(Arc::new(topic))
    }

    /// Runs disk work for a topic change off the network threads, with the metadata store.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut MetaStore) -> Result<T, BrokerError> + Send + 'static,
    ) -> Result<T, TopicError> {
        let meta = self.meta.clone();
        let result = tokio::task::spawn_blocking(move || {
            let mut guard = meta
                .lock()
                .map_err(|_| BrokerError::Internal("metadata lock poisoned".into()))?;
            let store = guard
                .as_mut()
                .ok_or_else(|| BrokerError::Internal("the broker is shutting down".into()))?;
            work(store)
        })
        .await;
        match result {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => {
                tracing::error!(%err, "topic change failed");
                Err((ErrorCode::KafkaStorageError, err.to_string()))
            }
            Err(join) => Err((ErrorCode::UnknownServerError, join.to_string())),
        }
    }

    /// Closes every partition cleanly and the metadata log. Blocking.
    pub(crate) fn close_blocking(&self) {
        let topics: Vec<_> = self
            .topics
            .write()
            .map(|mut t| t.drain().map(|(_, topic)| topic).collect())
            .unwrap_or_default();
        Storage::close_all(
            topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| &**p)),
            false,
        );
        self.groups.close_blocking();
        let store = self.meta.lock().ok().and_then(|mut m| m.take());
        if let Some(store) = store {
            if let Err(err) = store.close() {
                tracing::error!(%err, "closing the metadata log");
            }
        }
        self.storage.stop();
    }
}

fn unknown_topic(name: &str) -> TopicError {
    (
        ErrorCode::UnknownTopicOrPartition,
        format!("topic '{name}' does not exist"),
    )
}

/// Kafka's topic name rules: 1 to 249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub(crate) fn validate_topic_name(name: &str) -> Result<(), TopicError> {
    let invalid = |why: &str| {
        Err((
            ErrorCode::InvalidTopicException,
            format!("topic name '{name}' {why}"),
        ))
    };
    if name.is_empty() {
        return invalid("is empty");
    }
    if name == "." || name == ".." {
        return invalid("cannot be '.' or '..'");
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return invalid("is longer than 249 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return invalid("may only contain ASCII letters, digits, '.', '_' and '-'");
    }
    if name.starts_with("__rill") || name == "__consumer_offsets" || name == "__transaction_state" {
        return invalid("is reserved for internal topics");
    }
    Ok(())
}

fn partition_dir(config: &BrokerConfig, topic: &str, index: i32) -> PathBuf {
    rill_log::dir::partition_dir(&config.data_dir, topic, index)
}

/// A topic to open: its partitions `existing.len()..partitions` are opened, the `existing`
/// ones kept.
struct TopicSpec {
    name: String,
    id: Uuid,
    overrides: BTreeMap<String, String>,
    partitions: i32,
    existing: Vec<Arc<Partition>>,
}

/// What opening a topic's partitions needs.
struct Opener<'a> {
    config: &'a BrokerConfig,
    defaults: &'a BTreeMap<String, String>,
    metrics: &'a Metrics,
    storage: &'a Storage,
}

impl Opener<'_> {
    /// Opens (creating, if new) partition `index` of a topic.
    fn open_partition(
        &self,
        spec: &TopicSpec,
        config: &TopicConfig,
        metrics: &TopicMetrics,
        index: i32,
    ) -> Result<Partition, BrokerError> {
        let dir = partition_dir(self.config, &spec.name, index);
        if meta::read_partition_topic_id(&dir).is_none() {
            meta::write_partition_metadata(&dir, spec.id)?;
        }
        let metrics = OwnerMetrics {
            topic: Some(metrics.clone()),
            fsync: self.metrics.fsync.clone(),
        };
        Ok(self
            .storage
            .open(dir, index, config.log_config(), metrics)?)
    }

    /// Opens the partitions of every topic in `specs`, all in parallel (recovery after a crash
    /// reads each active segment). When `creating`, a failure deletes every partition this call
    /// made, directories included, so that nothing half-made is left behind; at start-up it
    /// only closes them.
    fn open(&self, specs: Vec<TopicSpec>, creating: bool) -> Result<Vec<Topic>, BrokerError> {
        let configs: Vec<TopicConfig> = specs
            .iter()
            .map(|spec| TopicConfig::resolve_with(self.config, self.defaults, &spec.overrides))
            .collect();
        let topic_metrics: Vec<TopicMetrics> = specs
            .iter()
            .map(|spec| self.metrics.topic(&spec.name))
            .collect();
        let jobs: Vec<(&TopicSpec, &TopicConfig, &TopicMetrics, i32)> = specs
            .iter()
            .zip(&configs)
            .zip(&topic_metrics)
            .flat_map(|((spec, config), metrics)| {
                let from = i32::try_from(spec.existing.len()).unwrap_or(i32::MAX);
                (from..spec.partitions).map(move |index| (spec, config, metrics, index))
            })
            .collect();
        let opened = crate::partition::parallel(
            jobs,
            self.storage.threads() * 2,
            |(spec, config, metrics, index)| {
                let dir = partition_dir(self.config, &spec.name, index);
                let existed = dir.exists();
                self.open_partition(spec, config, metrics, index)
                    .map_err(|err| (err, (!existed && dir.is_dir()).then_some(dir)))
            },
        );
        let mut partitions = Vec::with_capacity(opened.len());
        let mut failure = None;
        for result in opened {
            match result {
                Ok(partition) => partitions.push(Arc::new(partition)),
                Err((err, made)) => {
                    if creating {
                        if let Some(dir) = made {
                            let _ = std::fs::remove_dir_all(&dir);
                        }
                    }
                    let _ = failure.get_or_insert(err);
                }
            }
        }
        if let Some(err) = failure {
            Storage::close_all(partitions.iter().map(|p| &**p), creating);
            return Err(err);
        }
        let mut partitions = partitions.into_iter();
        let mut topics = Vec::with_capacity(specs.len());
        for ((spec, config), metrics) in specs.into_iter().zip(configs).zip(topic_metrics) {
            let new = usize::try_from(spec.partitions)
                .unwrap_or(0)
                .saturating_sub(spec.existing.len());
            let mut all = spec.existing;
            all.extend(partitions.by_ref().take(new));
            topics.push(Topic {
                name: spec.name,
                id: spec.id,
                overrides: spec.overrides,
                config,
                partitions: all,
                metrics,
            });
        }
        Ok(topics)
    }
}

/// Removes partition directories left by a deletion that a crash interrupted: those of deleted
/// topics and those whose topic id is not their topic's current one.
fn remove_orphans(config: &BrokerConfig, replayed: &meta::Replayed) -> Result<(), BrokerError> {
    let entries = std::fs::read_dir(&config.data_dir).map_err(|source| BrokerError::Io {
        path: config.data_dir.clone(),
        source,
    })?;
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some((topic, index)) = name.rsplit_once('-') else {
            continue;
        };
        let internal = name == meta::METADATA_LOG || crate::group::is_offsets_log(name);
        if !path.is_dir() || index.parse::<u32>().is_err() || internal {
            continue;
        }
        let dir_id = meta::read_partition_topic_id(&path);
        let orphan = match replayed.topics.get(topic) {
            Some(record) => dir_id.is_some_and(|id| id != record.id),
            None => replayed.deleted.contains(topic),
        };
        if orphan {
            tracing::warn!(dir = %path.display(), "removing the data of a deleted topic");
            std::fs::remove_dir_all(&path).map_err(|source| BrokerError::Io { path, source })?;
        }
    }
    Ok(())
}
