//! The broker's shared state: its topics as the metadata quorum agreed them, the owners of
//! the partitions this broker holds, and the changes it proposes.
//!
//! Changes go one way: a handler validates a change, proposes it to the quorum and waits;
//! every broker applies the committed change to its image (`quorum/`), and this broker's
//! reconciler task brings its topics in line ([`Broker::reconcile`]): it opens the partitions
//! placed here, closes and deletes those of deleted topics, and swaps in new [`Topic`]s with
//! their leaders and epochs. A handler answers once the reconciler has caught up with its
//! change, so a client that creates a topic can produce to it at once.
//!
//! A create opens the partitions placed on this broker before proposing (and deletes them if
//! the proposal fails), so a disk that refuses them leaves no topic behind; the reconciler
//! takes them over.
//!
//! Lock rules: `topics` is a `std::sync::RwLock` held only to look up or swap an `Arc<Topic>`,
//! never across an `.await` or disk I/O; so is the quorum's image. The quorum orders changes;
//! this broker only keeps two changes of one topic's partitions from opening the same
//! directories at once (`changing`), and one `__consumer_offsets` creation at a time. No lock is
//! held while a proposal waits, so a change stuck on a lost leader holds up no other. Only the
//! reconciler installs topics. A `Topic` is immutable: a change builds a new one and swaps it in.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rill_protocol::ErrorCode;
use tokio::sync::watch;
use uuid::Uuid;

use crate::assignment;
use crate::broker_config::{self, DynamicConfigs};
use crate::cluster::ClusterView;
use crate::config::{AckDurability, BrokerConfig};
use crate::error::BrokerError;
use crate::group::OFFSETS_TOPIC;
use crate::meta;
use crate::metrics::{Metrics, TopicMetrics};
use crate::partition::{Offsets, Outbox, OwnerMetrics, Partition, ReplicaSpec, Storage};
use crate::quorum::Quorum;
use crate::quorum::image::{Change, Command, ElectedLeader, Image, PartitionImage, TopicImage};
use crate::quorum::node::Applied;
use crate::topic_config::TopicConfig;
use crate::txn::TXN_TOPIC;

/// Kafka's limit on topic name length.
const MAX_TOPIC_NAME_LEN: usize = 249;
/// How long a handler waits for this broker to act on its committed change.
const CATCH_UP: Duration = Duration::from_secs(30);
/// How often this broker tells the cluster which replicated partitions it leads.
pub(crate) const ANNOUNCE_INTERVAL: Duration = Duration::from_millis(100);
/// How long CreateTopics waits for a new replicated topic's partitions to elect leaders.
const FIRST_ELECTION: Duration = Duration::from_secs(10);

/// A topic, its partitions' places in the cluster, and the owners of those held here.
#[derive(Debug)]
pub(crate) struct Topic {
    pub(crate) name: String,
    pub(crate) id: Uuid,
    pub(crate) overrides: BTreeMap<String, String>,
    pub(crate) config: TopicConfig,
    /// Every partition's replicas, leader and leader epoch.
    pub(crate) placements: Vec<PartitionImage>,
    /// The owners of the partitions this broker holds, by index (`None` for the others).
    pub(crate) held: Vec<Option<Arc<Partition>>>,
    /// This broker's node id.
    node: i32,
    /// Its throughput counters, resolved once when the topic is created or opened.
    pub(crate) metrics: TopicMetrics,
}

impl Topic {
    pub(crate) fn partition_count(&self) -> i32 {
        i32::try_from(self.placements.len()).unwrap_or(i32::MAX)
    }

    /// Whether the topic has partition `index` (on any broker).
    pub(crate) fn exists(&self, index: i32) -> bool {
        (0..self.partition_count()).contains(&index)
    }

    /// Partition `index` if this broker holds it, led here or not.
    pub(crate) fn partition(&self, index: i32) -> Option<&Arc<Partition>> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.held.get(i))
            .and_then(Option::as_ref)
    }

    /// Partition `index` if this broker leads it; otherwise the error its client gets:
    /// UNKNOWN_TOPIC_OR_PARTITION for no such partition, NOT_LEADER_OR_FOLLOWER when another
    /// broker (or none) leads it, KAFKA_STORAGE_ERROR when it is led here but its log could not
    /// be opened.
    pub(crate) fn led(&self, index: i32) -> Result<&Arc<Partition>, ErrorCode> {
        self.led_with_epoch(index).map(|(partition, _)| partition)
    }

    /// [`Topic::led`], with the leader epoch it is led at. A replicated partition is led here
    /// when this broker's replica is its group's leader (the metadata learns it a moment
    /// later); a partition with one replica when the metadata says so.
    fn led_with_epoch(&self, index: i32) -> Result<(&Arc<Partition>, i32), ErrorCode> {
        let placement = usize::try_from(index)
            .ok()
            .and_then(|i| self.placements.get(i))
            .ok_or(ErrorCode::UnknownTopicOrPartition)?;
        if placement.replicas.len() > 1 {
            let partition = self
                .partition(index)
                .ok_or(ErrorCode::NotLeaderOrFollower)?;
            return match partition.offsets().leading {
                Some(epoch) => Ok((partition, epoch)),
                None => Err(ErrorCode::NotLeaderOrFollower),
            };
        }
        if placement.leader != self.node {
            return Err(ErrorCode::NotLeaderOrFollower);
        }
        let partition = self.partition(index).ok_or(ErrorCode::KafkaStorageError)?;
        Ok((partition, placement.epoch))
    }

    /// [`Topic::led`], checked against the leader epoch the client knows (`-1`: none, as
    /// clients before KIP-320 send): FENCED_LEADER_EPOCH if it is older than this broker's,
    /// UNKNOWN_LEADER_EPOCH if newer (this broker has not caught up yet). Either way the
    /// client refreshes its metadata and asks again, so no client reads from a leadership it
    /// has not seen.
    pub(crate) fn led_at(&self, index: i32, epoch: i32) -> Result<&Arc<Partition>, ErrorCode> {
        let (partition, current) = self.led_with_epoch(index)?;
        match epoch {
            e if e < 0 || e == current => Ok(partition),
            e if e < current => Err(ErrorCode::FencedLeaderEpoch),
            _ => Err(ErrorCode::UnknownLeaderEpoch),
        }
    }

    /// The partitions held here.
    pub(crate) fn held_partitions(&self) -> impl Iterator<Item = &Arc<Partition>> {
        self.held.iter().flatten()
    }

    /// The same topic with other placements, configs or owners.
    fn with(
        &self,
        placements: Vec<PartitionImage>,
        held: Vec<Option<Arc<Partition>>>,
        overrides: BTreeMap<String, String>,
        config: TopicConfig,
    ) -> Self {
        Self {
            name: self.name.clone(),
            id: self.id,
            overrides,
            config,
            placements,
            held,
            node: self.node,
            metrics: self.metrics.clone(),
        }
    }
}

/// A topic being changed on this broker, until dropped.
struct Changing<'a> {
    set: &'a Mutex<BTreeSet<String>>,
    name: String,
}

impl Drop for Changing<'_> {
    fn drop(&mut self) {
        if let Ok(mut set) = self.set.lock() {
            let _ = set.remove(&self.name);
        }
    }
}

/// A leadership this broker announced: epoch, in-sync replicas (a bit per replica) and when.
type Announced = (i32, u32, std::time::Instant);

/// Partitions just opened, with their indices.
type Opened = Vec<(i32, Arc<Partition>)>;

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
    /// Dynamic broker configs, as the quorum agreed them.
    dynamic: RwLock<DynamicConfigs>,
    /// Topics whose partitions a change on this broker is opening.
    changing: Mutex<BTreeSet<String>>,
    /// One creation of an internal topic at a time.
    internal_creation: tokio::sync::Mutex<()>,
    /// Held while partitions are opened for a topic, by a change here (with its check that the
    /// topic is still as it saw it) or by the reconciler: so the reconciler never opens a
    /// directory a change is opening, and a change never opens one the reconciler has.
    opening: tokio::sync::Mutex<()>,
    /// This broker's member of the metadata quorum.
    pub(crate) quorum: Quorum,
    /// The next producer id to hand out, and the end of the block the quorum gave this broker.
    producer_ids: tokio::sync::Mutex<(i64, i64)>,
    /// Consumer groups and their committed offsets.
    pub(crate) groups: crate::group::Coordinator,
    /// Transactional ids and their transactions.
    pub(crate) txns: crate::txn::TxnCoordinator,
    /// The log cleaner's state (its threads start with the broker's tasks).
    pub(crate) cleaner: crate::cleaner::Cleaner,
    /// Cancelled when the broker starts to shut down: long polls answer at once.
    pub(crate) stopping: tokio_util::sync::CancellationToken,
    /// This broker's metrics registry.
    pub(crate) metrics: Arc<Metrics>,
    /// The storage threads that own the partitions, and their descriptor cache.
    pub(crate) storage: Arc<Storage>,
    /// Partitions opened by a change in flight on this broker, by topic id, for the reconciler.
    pending: Mutex<HashMap<Uuid, (String, Opened)>>,
    /// The last metadata index this broker has acted on.
    reconciled: watch::Sender<u64>,
    /// The leaderships last announced, and when, so one in flight is not repeated at once.
    announced: Mutex<HashMap<(Uuid, i32), Announced>>,
    /// The ACLs as the quorum agreed them, indexed for decisions.
    pub(crate) authorizer: crate::authorizer::Authorizer,
}

impl Broker {
    /// Opens the data directory's partitions as the quorum's image places them. Blocking.
    pub(crate) fn open(
        config: BrokerConfig,
        cluster_id: String,
        cluster: ClusterView,
        quorum: Quorum,
        metrics: Arc<Metrics>,
    ) -> Result<Self, BrokerError> {
        let data_dir = &config.data_dir;
        let storage = Arc::new(
            Storage::start(
                config.storage_threads(),
                config.max_open_files(),
                config.retention_check_interval,
                quorum.router.clone(),
            )
            .map_err(|source| BrokerError::Io {
                path: data_dir.clone(),
                source,
            })?,
        );
        let (image, applied) = {
            let image = quorum.image();
            (image.clone(), quorum.status().applied)
        };
        remove_orphans(&config, &image)?;
        let mut image = image;
        let offsets = image.topics.remove(OFFSETS_TOPIC);
        let outbox = quorum.partition_outbox.clone();
        let (offsets_count, offsets_here) = match &offsets {
            Some(topic) => (
                i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX),
                internal_held_here(&config, &outbox, OFFSETS_TOPIC, topic, false),
            ),
            None => (config.offsets_partitions, Vec::new()),
        };
        let txn_topic = image.topics.remove(TXN_TOPIC);
        let (txn_count, txn_here) = match &txn_topic {
            Some(topic) => (
                i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX),
                internal_held_here(&config, &outbox, TXN_TOPIC, topic, false),
            ),
            None => (config.transaction_partitions, Vec::new()),
        };
        let txns = crate::txn::TxnCoordinator::open(
            data_dir,
            txn_count,
            txn_here,
            &storage,
            metrics.fsync.clone(),
            config.transaction_max_timeout_ms,
            metrics.transactions_ended.clone(),
        )?;
        let groups = crate::group::Coordinator::open(
            data_dir,
            rill_group::GroupConfig {
                initial_rebalance_delay: config.group_initial_rebalance_delay,
                min_session_timeout: config.group_session_timeout_range.0,
                max_session_timeout: config.group_session_timeout_range.1,
                ..rill_group::GroupConfig::default()
            },
            config.offsets_retention,
            offsets_count,
            offsets_here,
            &storage,
            metrics.fsync.clone(),
        )?;
        let dynamic = dynamic_of(&image, config.node_id);
        let defaults = dynamic.topic_defaults();
        let opener = Opener {
            config: &config,
            defaults: &defaults,
            metrics: &metrics,
            storage: &storage,
            outbox: &outbox,
        };
        let node = config.node_id;
        let specs: Vec<TopicSpec> = image
            .topics
            .iter()
            .map(|(name, topic)| TopicSpec::held_here(name, topic, node))
            .collect();
        let started = std::time::Instant::now();
        let mut opened = opener.open(&specs, false)?.into_iter();
        let mut topics = HashMap::new();
        let mut count = 0;
        for (name, topic) in image.topics {
            let held = opened.next().unwrap_or_default();
            count += held.len();
            let built = build_topic(&opener, name, topic, node, held);
            let _ = topics.insert(built.name.clone(), Arc::new(built));
        }
        tracing::info!(
            topics = topics.len(),
            partitions = count,
            elapsed_ms = started.elapsed().as_millis(),
            "opened partitions"
        );
        cluster.update(&quorum.image());
        cluster.update_internal(
            OFFSETS_TOPIC,
            offsets.map(|t| t.partitions).unwrap_or_default(),
        );
        cluster.update_internal(
            TXN_TOPIC,
            txn_topic.map(|t| t.partitions).unwrap_or_default(),
        );
        let (reconciled, _) = watch::channel(applied);
        let authorizer = crate::authorizer::Authorizer::new(&config.authorizer, &image.acls);
        let config_cleaner = config.cleaner.clone();
        Ok(Self {
            config,
            cluster_id,
            cluster,
            topics: RwLock::new(topics),
            dynamic: RwLock::new(dynamic),
            changing: Mutex::new(BTreeSet::new()),
            internal_creation: tokio::sync::Mutex::new(()),
            opening: tokio::sync::Mutex::new(()),
            quorum,
            groups,
            txns,
            cleaner: crate::cleaner::Cleaner::new(config_cleaner, metrics.cleaner.clone()),
            producer_ids: tokio::sync::Mutex::new((0, 0)),
            stopping: tokio_util::sync::CancellationToken::new(),
            metrics,
            storage,
            pending: Mutex::new(HashMap::new()),
            reconciled,
            announced: Mutex::new(HashMap::new()),
            authorizer,
        })
    }

    /// Partitions of every topic held here (the broker's internal logs not counted).
    fn partition_count(&self) -> usize {
        self.topics
            .read()
            .map(|t| {
                t.values()
                    .map(|topic| topic.held_partitions().count())
                    .sum()
            })
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

    /// The brokers registered in the cluster (fenced ones too).
    fn registered(&self) -> BTreeSet<i32> {
        self.quorum.image().brokers.keys().copied().collect()
    }

    /// `partitions` new partitions of `factor` replicas spread over the live brokers
    /// (INVALID_REPLICATION_FACTOR if there are fewer).
    fn spread(&self, partitions: usize, factor: usize) -> Result<Vec<Vec<i32>>, TopicError> {
        let live: Vec<(i32, Option<String>)> = {
            let image = self.quorum.image();
            image
                .brokers
                .iter()
                .filter(|(_, b)| !b.fenced)
                .map(|(id, b)| (*id, b.rack.clone()))
                .collect()
        };
        if live.is_empty() {
            return Err((
                ErrorCode::BrokerNotAvailable,
                "no live broker to place partitions on".to_owned(),
            ));
        }
        let start =
            usize::try_from(Uuid::new_v4().as_u64_pair().0 % live.len() as u64).unwrap_or(0);
        if factor > live.len() {
            return Err((
                ErrorCode::InvalidReplicationFactor,
                format!(
                    "Unable to replicate the partition {factor} time(s): The target replication \
                     factor of {factor} cannot be reached because only {} broker(s) are \
                     registered.",
                    live.len()
                ),
            ));
        }
        Ok(assignment::spread(&live, partitions, factor, start))
    }

    /// Creates a topic (or only checks that it could be created), on `manual` replicas if
    /// given, else spread over the live brokers.
    pub(crate) async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        factor: usize,
        overrides: BTreeMap<String, String>,
        validate_only: bool,
        manual: Option<Vec<Vec<i32>>>,
    ) -> Result<Arc<Topic>, TopicError> {
        validate_topic_name(name)?;
        self.create_named_topic(name, partitions, factor, overrides, validate_only, manual)
            .await
    }

    /// Creates a topic a client uses before it exists (auto.create.topics.enable), with the
    /// broker's defaults; one created by someone else meanwhile is that one.
    pub(crate) async fn create_on_first_use(&self, name: &str) -> Result<Arc<Topic>, TopicError> {
        let created = self
            .create_topic(
                name,
                self.config.num_partitions,
                1,
                BTreeMap::new(),
                false,
                None,
            )
            .await;
        match created {
            Err((ErrorCode::TopicAlreadyExists, why)) => self
                .topic(name)
                .ok_or((ErrorCode::UnknownTopicOrPartition, why)),
            other => other,
        }
    }

    /// Creates a topic the broker itself keeps under a reserved name (`__rill_*`), as an
    /// ordinary topic with `overrides`; one partition, the default replication.
    pub(crate) async fn create_reserved_topic(
        &self,
        name: &str,
        overrides: BTreeMap<String, String>,
    ) -> Result<Arc<Topic>, TopicError> {
        self.create_named_topic(name, 1, 1, overrides, false, None)
            .await
    }

    /// [`Broker::create_topic`] once the name is checked.
    async fn create_named_topic(
        &self,
        name: &str,
        partitions: i32,
        factor: usize,
        overrides: BTreeMap<String, String>,
        validate_only: bool,
        manual: Option<Vec<Vec<i32>>>,
    ) -> Result<Arc<Topic>, TopicError> {
        if partitions < 1 {
            return Err((
                ErrorCode::InvalidPartitions,
                format!("number of partitions must be at least 1, got {partitions}"),
            ));
        }
        TopicConfig::validate(&self.config, &overrides)
            .map_err(|m| (ErrorCode::InvalidConfig, m))?;
        let _changing = self.changing(name).await?;
        if self.topic(name).is_some() {
            return Err((
                ErrorCode::TopicAlreadyExists,
                format!("topic '{name}' already exists"),
            ));
        }
        let count = usize::try_from(partitions).unwrap_or(usize::MAX);
        let placed = match manual {
            Some(replicas) => replicas,
            None => self.spread(count, factor)?,
        };
        let here = self.indices_here(&placed, 0);
        self.check_partition_limit(here.len())?;
        let id = Uuid::new_v4();
        if validate_only {
            return Ok(Arc::new(Topic {
                name: name.to_owned(),
                id,
                config: self.resolve_topic(&overrides),
                overrides,
                placements: Vec::new(),
                held: Vec::new(),
                node: self.config.node_id,
                // Not registered: a topic that is only validated must not appear in /metrics.
                metrics: self.metrics.unregistered_topic(),
            }));
        }
        let spec = TopicSpec {
            name: name.to_owned(),
            id,
            overrides: overrides.clone(),
            indices: here,
            replicated: replicated(&placed, 0),
        };
        let command = Command::CreateTopic {
            name: name.to_owned(),
            id,
            configs: overrides,
            assignment: placed,
        };
        let unchanged = || match self.topic(name) {
            Some(_) => Err((
                ErrorCode::TopicAlreadyExists,
                format!("topic '{name}' already exists"),
            )),
            None => Ok(()),
        };
        self.open_and_propose(spec, command, unchanged).await?;
        tracing::info!(topic = name, partitions, %id, "created topic");
        self.first_leaders(name).await;
        self.topic(name).ok_or_else(|| unknown_topic(name))
    }

    /// Waits (a while) until every replicated partition of a new topic has a leader, so that
    /// a client can produce as soon as CreateTopics answers, as with one replica.
    async fn first_leaders(&self, name: &str) {
        let deadline = tokio::time::Instant::now() + FIRST_ELECTION;
        loop {
            let waiting = self.topic(name).is_some_and(|t| {
                t.placements
                    .iter()
                    .any(|p| p.replicas.len() > 1 && p.leader == -1)
            });
            if !waiting || tokio::time::Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Proposes the leaderships of the replicated partitions led here that the metadata does
    /// not show yet (see [`Command::ElectedLeaders`]).
    pub(crate) async fn announce_leaders(&self) {
        let node = self.config.node_id;
        let now = std::time::Instant::now();
        let mut leaders = Vec::new();
        let mut masks = Vec::new();
        // The metadata counts a fenced broker out of sync whatever this leader saw of it.
        let live: Vec<i32> = self.cluster.nodes().iter().map(|n| n.id).collect();
        // The topics, and `__consumer_offsets`, whose partitions the group coordinator holds.
        // Per topic: its name, id, placements and what its partitions held here publish.
        type Held = (String, Uuid, Vec<PartitionImage>, Vec<Option<Offsets>>);
        let mut held: Vec<Held> = self
            .all_topics()
            .iter()
            .map(|topic| {
                let offsets = (0..topic.placements.len())
                    .map(|i| {
                        let index = i32::try_from(i).unwrap_or(i32::MAX);
                        topic.partition(index).map(|p| p.offsets())
                    })
                    .collect();
                let name = topic.name.clone();
                (name, topic.id, topic.placements.clone(), offsets)
            })
            .collect();
        for name in [OFFSETS_TOPIC, TXN_TOPIC] {
            if let Some(agreed) = self.quorum.image().topics.get(name) {
                let offsets = (0..agreed.partitions.len())
                    .map(|i| self.internal_offsets(name, i32::try_from(i).unwrap_or(i32::MAX)))
                    .collect();
                held.push((
                    name.to_owned(),
                    agreed.id,
                    agreed.partitions.clone(),
                    offsets,
                ));
            }
        }
        for (name, id, placements, offsets) in held {
            for (index, (placement, offsets)) in placements.iter().zip(offsets).enumerate() {
                if placement.replicas.len() < 2 {
                    continue;
                }
                let index = i32::try_from(index).unwrap_or(i32::MAX);
                let Some(offsets) = offsets else {
                    continue;
                };
                let Some(epoch) = offsets.leading else {
                    continue;
                };
                let isr: Vec<i32> = placement
                    .replicas
                    .iter()
                    .enumerate()
                    .filter(|(k, r)| offsets.in_sync & (1 << (k % 32)) != 0 && live.contains(r))
                    .map(|(_, r)| *r)
                    .collect();
                if placement.leader == node && placement.epoch == epoch && placement.isr == isr {
                    continue;
                }
                let key = (id, index);
                let recent = self.announced.lock().ok().is_some_and(|announced| {
                    announced.get(&key).is_some_and(|(e, mask, at)| {
                        *e == epoch
                            && *mask == offsets.in_sync
                            && now - *at < Duration::from_secs(2)
                    })
                });
                if recent {
                    continue;
                }
                leaders.push(ElectedLeader {
                    topic: name.clone(),
                    id,
                    partition: index,
                    leader: node,
                    epoch,
                    isr,
                });
                masks.push(offsets.in_sync);
            }
        }
        if leaders.is_empty() {
            return;
        }
        if let Ok(mut announced) = self.announced.lock() {
            announced.retain(|_, (_, _, at)| now - *at < Duration::from_secs(10));
            for (leader, mask) in leaders.iter().zip(&masks) {
                let _ = announced.insert((leader.id, leader.partition), (leader.epoch, *mask, now));
            }
        }
        if let Err((code, why)) = self
            .quorum
            .propose(Command::ElectedLeaders { leaders })
            .await
        {
            tracing::debug!(error = code.name(), %why, "announcing partition leaders");
        }
    }

    /// Repairs the replicated partitions held here whose data failed its checks
    /// ([`Offsets::corrupt`]): each is closed, its directory moved to `<data dir>/corrupt/`
    /// (kept for inspection, never served), and reopened empty, as a replica that lost its
    /// data: it votes for no one until it has caught up from the leader, which sends it the
    /// log again.
    pub(crate) async fn repair_corrupt(&self) {
        let corrupt: Vec<(String, Uuid, i32)> = self
            .all_topics()
            .iter()
            .flat_map(|t| {
                t.held_partitions()
                    .filter(|p| p.offsets().corrupt)
                    .map(|p| (t.name.clone(), t.id, p.index))
                    .collect::<Vec<_>>()
            })
            .collect();
        for (name, id, index) in corrupt {
            if let Err(err) = self.repair(&name, id, index).await {
                tracing::error!(topic = name, partition = index, %err, "repairing a corrupt replica");
            }
        }
        let corrupt_internal = [
            (OFFSETS_TOPIC, self.groups.hosting().corrupt()),
            (TXN_TOPIC, self.txns.hosting().corrupt()),
        ];
        for (name, partitions) in corrupt_internal {
            for partition in partitions {
                if let Err(err) = self.repair_internal(name, partition).await {
                    tracing::error!(topic = name, partition, %err, "repairing a corrupt replica");
                }
            }
        }
    }

    /// The published offsets of a partition of an internal topic held here.
    fn internal_offsets(&self, name: &str, partition: i32) -> Option<Offsets> {
        match name {
            OFFSETS_TOPIC => self.groups.hosting().offsets_of(partition),
            TXN_TOPIC => self.txns.hosting().offsets_of(partition),
            _ => None,
        }
    }

    /// Opens a partition of an internal topic placed here (a replica, if replicated).
    async fn host_internal(
        &self,
        name: &str,
        partition: i32,
        replica: Option<ReplicaSpec>,
    ) -> Result<(), BrokerError> {
        match name {
            OFFSETS_TOPIC => self.groups.hosting().host(partition, replica).await,
            TXN_TOPIC => self.txns.hosting().host(partition, replica).await,
            _ => Ok(()),
        }
    }

    /// [`Broker::repair_corrupt`] for a partition of an internal topic.
    async fn repair_internal(&self, name: &'static str, partition: i32) -> Result<(), BrokerError> {
        let Some(agreed) = self.quorum.image().topics.get(name).cloned() else {
            return Ok(());
        };
        let outbox = &self.quorum.partition_outbox;
        let Some((_, replica)) = internal_held_here(&self.config, outbox, name, &agreed, false)
            .into_iter()
            .find(|(p, _)| *p == partition)
        else {
            return Ok(());
        };
        match name {
            OFFSETS_TOPIC => self.groups.release(partition).await,
            _ => self.txns.hosting().release(partition).await,
        }
        let dir = crate::internal::log_dir(&self.config.data_dir, name, partition);
        let data_dir = self.config.data_dir.clone();
        tokio::task::spawn_blocking(move || quarantine(&data_dir, &dir))
            .await
            .map_err(|e| BrokerError::Internal(e.to_string()))??;
        self.metrics.replica_repairs.inc();
        self.host_internal(name, partition, replica).await
    }

    async fn repair(&self, name: &str, id: Uuid, index: i32) -> Result<(), BrokerError> {
        let _opening = self.opening.lock().await;
        let Some(topic) = self.topic(name).filter(|t| t.id == id) else {
            return Ok(());
        };
        let Some(old) = topic
            .partition(index)
            .filter(|p| p.offsets().corrupt)
            .cloned()
        else {
            return Ok(());
        };
        let Some(group) = usize::try_from(index)
            .ok()
            .and_then(|i| topic.placements.get(i))
            .map(Group::of)
        else {
            return Ok(());
        };
        self.hold(&topic, index, None);
        let dir = partition_dir(&self.config, name, index);
        let data_dir = self.config.data_dir.clone();
        tokio::task::spawn_blocking(move || {
            old.close_blocking(false);
            quarantine(&data_dir, &dir)
        })
        .await
        .map_err(|e| BrokerError::Internal(e.to_string()))??;
        self.metrics.replica_repairs.inc();
        let spec = TopicSpec {
            name: name.to_owned(),
            id,
            overrides: topic.overrides.clone(),
            indices: vec![index],
            replicated: BTreeMap::from([(index, group)]),
        };
        let (_, partition) = self
            .open_blocking(spec, false)
            .await
            .map_err(|(_, message)| BrokerError::Internal(message))?
            .pop()
            .ok_or_else(|| BrokerError::Internal("the replica did not reopen".to_owned()))?;
        if let Some(current) = self.topic(name).filter(|t| t.id == id) {
            self.hold(&current, index, Some(partition));
        }
        Ok(())
    }

    /// Replaces `topic` with a copy that holds `partition` (or nothing) as partition `index`.
    fn hold(&self, topic: &Topic, index: i32, partition: Option<Arc<Partition>>) {
        let mut held = topic.held.clone();
        if let Some(slot) = usize::try_from(index).ok().and_then(|i| held.get_mut(i)) {
            *slot = partition;
        }
        let placements = topic.placements.clone();
        let changed = topic.with(
            placements,
            held,
            topic.overrides.clone(),
            topic.config.clone(),
        );
        if let Ok(mut topics) = self.topics.write() {
            let _ = topics.insert(changed.name.clone(), Arc::new(changed));
        }
    }

    /// Asks the cluster to make partition `partition`'s first replica its leader
    /// ([`Command::PreferLeader`], judged against the agreed state); the broker whose replica
    /// leads hands over. Returns the leader epoch it was asked at once the request is in the
    /// metadata log, not once the leader changed; ELECTION_NOT_NEEDED and
    /// PREFERRED_LEADER_NOT_AVAILABLE come back as errors.
    pub(crate) async fn prefer_leader(
        &self,
        topic: &Topic,
        partition: i32,
    ) -> Result<i32, TopicError> {
        let command = Command::PreferLeader {
            topic: topic.name.clone(),
            id: topic.id,
            partition,
        };
        let (_, epoch) = self.quorum.propose(command).await?;
        Ok(i32::try_from(epoch).unwrap_or(i32::MAX))
    }

    /// A committed [`Command::PreferLeader`]: if this broker's replica leads the partition at
    /// the epoch it was asked at, it hands leadership over to `to`. A replayed one (its epoch
    /// long gone) or one for a partition led elsewhere changes nothing.
    fn hand_over(&self, name: &str, id: Uuid, partition: i32, to: i32, epoch: i32) {
        if name == OFFSETS_TOPIC {
            self.groups.hosting().hand_over(partition, to, epoch);
            return;
        }
        if name == TXN_TOPIC {
            self.txns.hosting().hand_over(partition, to, epoch);
            return;
        }
        let Some(topic) = self.topic(name).filter(|t| t.id == id) else {
            return;
        };
        if let Some(held) = topic.partition(partition)
            && held.offsets().leading == Some(epoch)
        {
            held.transfer_leader(to);
        }
    }

    /// Moves the partitions led here that are being reassigned one step on (see
    /// [`crate::partition::replica::Replica::reassign`]), and tells the cluster of those whose
    /// group now has exactly its target replicas ([`Command::Reassigned`]).
    pub(crate) async fn drive_reassignments(&self) {
        for topic in self.all_topics() {
            for (i, placement) in topic.placements.iter().enumerate() {
                if !placement.reassigning() {
                    continue;
                }
                let index = i32::try_from(i).unwrap_or(i32::MAX);
                let Some(partition) = topic.partition(index) else {
                    continue;
                };
                if partition.offsets().leading.is_none() {
                    continue;
                }
                let target = placement.target();
                if partition.reassign(target.clone()).await != Ok(true) {
                    continue;
                }
                let command = Command::Reassigned {
                    topic: topic.name.clone(),
                    id: topic.id,
                    partition: index,
                    replicas: target,
                };
                match self.quorum.propose(command).await {
                    Ok(_) => {
                        tracing::info!(topic = topic.name, partition = index, "reassignment done")
                    }
                    Err((code, why)) => {
                        tracing::debug!(error = code.name(), %why, "ending a reassignment");
                    }
                }
            }
        }
    }

    /// AlterPartitionReassignments for one partition (see [`Command::Reassign`]): answered
    /// once this broker shows the move under way (or cancelled), not once it is done.
    pub(crate) async fn reassign(
        &self,
        topic: &str,
        partition: i32,
        target: Option<Vec<i32>>,
        keep_factor: bool,
    ) -> Result<(), TopicError> {
        if topic == OFFSETS_TOPIC || topic == TXN_TOPIC {
            return Err((
                ErrorCode::InvalidReplicaAssignment,
                format!("the replicas of {topic} are not moved"),
            ));
        }
        let found = self.topic(topic).ok_or_else(|| unknown_topic(topic))?;
        let command = Command::Reassign {
            topic: topic.to_owned(),
            id: found.id,
            partition,
            target,
            keep_factor,
        };
        let _ = self.change(command).await?;
        Ok(())
    }

    /// Marks `name` as being changed here until the guard drops, first waiting for a change of
    /// the same topic already under way here (both would open its new partitions'
    /// directories).
    async fn changing(&self, name: &str) -> Result<Changing<'_>, TopicError> {
        let deadline = tokio::time::Instant::now() + CATCH_UP;
        loop {
            let inserted = self
                .changing
                .lock()
                .map_err(|_| (ErrorCode::UnknownServerError, "lock poisoned".to_owned()))?
                .insert(name.to_owned());
            if inserted {
                return Ok(Changing {
                    set: &self.changing,
                    name: name.to_owned(),
                });
            }
            if tokio::time::Instant::now() >= deadline {
                return Err((
                    ErrorCode::RequestTimedOut,
                    format!("another change of topic '{name}' on this broker did not finish"),
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The indices (from `first`) of the partitions in `placed` that land on this broker.
    fn indices_here(&self, placed: &[Vec<i32>], first: usize) -> Vec<i32> {
        placed
            .iter()
            .enumerate()
            .filter(|(_, replicas)| replicas.contains(&self.config.node_id))
            .filter_map(|(i, _)| i32::try_from(first + i).ok())
            .collect()
    }

    /// Deletes a topic and, on every broker, its data.
    pub(crate) async fn delete_topic(&self, name: &str) -> Result<Uuid, TopicError> {
        let topic = self.topic(name).ok_or_else(|| unknown_topic(name))?;
        let command = Command::DeleteTopic {
            name: name.to_owned(),
            id: topic.id,
        };
        let _ = self.change(command).await?;
        tracing::info!(topic = name, "deleted topic");
        Ok(topic.id)
    }

    /// Raises a topic's partition count. `assignments`, when given, holds the new partitions'
    /// replicas, checked as Kafka checks them (one list per new partition, each naming one
    /// registered broker).
    pub(crate) async fn create_partitions(
        &self,
        name: &str,
        count: i32,
        assignments: Option<&[Vec<i32>]>,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        let _changing = self.changing(name).await?;
        let topic = self.topic(name).ok_or_else(|| unknown_topic(name))?;
        let current = topic.partition_count();
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
        let additional = usize::try_from(count - current).unwrap_or(0);
        let factor = topic.placements.first().map_or(1, |p| p.replicas.len());
        let placed = match assignments {
            Some(assignments) => {
                if additional != assignments.len() {
                    return Err((
                        ErrorCode::InvalidReplicaAssignment,
                        format!(
                            "Attempted to add {additional} additional partition(s), but only {} \
                             assignment(s) were specified.",
                            assignments.len()
                        ),
                    ));
                }
                let registered = self.registered();
                for replicas in assignments {
                    assignment::check_replicas(replicas, &registered, Some(factor))?;
                }
                assignments.to_vec()
            }
            None => self.spread(additional, factor)?,
        };
        let from = topic.placements.len();
        let here = self.indices_here(&placed, from);
        self.check_partition_limit(here.len())?;
        if validate_only {
            return Ok(());
        }
        let spec = TopicSpec {
            name: topic.name.clone(),
            id: topic.id,
            overrides: topic.overrides.clone(),
            indices: here,
            replicated: replicated(&placed, from),
        };
        let command = Command::CreatePartitions {
            name: topic.name.clone(),
            id: topic.id,
            from,
            assignment: placed,
        };
        let unchanged = || match self.topic(name) {
            Some(t) if t.id == topic.id && t.placements.len() == from => Ok(()),
            _ => Err((
                ErrorCode::InvalidPartitions,
                format!("topic '{name}' changed meanwhile"),
            )),
        };
        self.open_and_propose(spec, command, unchanged).await?;
        tracing::info!(topic = name, partitions = count, "added partitions");
        Ok(())
    }

    /// Replaces a topic's config overrides (validated first); every broker applies them to its
    /// partitions.
    pub(crate) async fn set_topic_configs(
        &self,
        name: &str,
        overrides: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        TopicConfig::validate(&self.config, &overrides)
            .map_err(|m| (ErrorCode::InvalidConfig, m))?;
        let topic = self.topic(name).ok_or_else(|| unknown_topic(name))?;
        if validate_only {
            return Ok(());
        }
        let command = Command::SetTopicConfigs {
            name: name.to_owned(),
            id: topic.id,
            configs: overrides,
        };
        self.change(command).await.map(|_| ())
    }

    /// Replaces the dynamic configs of this broker (`per_broker`) or of the cluster default
    /// (checked first, as Kafka checks them); every broker hands the topics without their own
    /// override of a changed default their new configs, live.
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
        if validate_only {
            return Ok(());
        }
        let resource = if per_broker {
            self.config.node_id.to_string()
        } else {
            String::new()
        };
        let _ = self
            .change(Command::SetBrokerConfigs { resource, configs })
            .await?;
        tracing::info!(per_broker, "changed dynamic broker configs");
        Ok(())
    }

    /// A producer id never handed out before by any broker of the cluster, before a restart
    /// included: the quorum gives each broker blocks of ids.
    pub(crate) async fn allocate_producer_id(&self) -> Result<i64, TopicError> {
        const BLOCK: i64 = 1000;
        let mut ids = self.producer_ids.lock().await;
        if ids.0 >= ids.1 {
            let (_, first) = self
                .quorum
                .propose(Command::AllocateProducerIds { count: BLOCK })
                .await?;
            *ids = (first, first + BLOCK);
        }
        let id = ids.0;
        ids.0 += 1;
        Ok(id)
    }

    /// Adds ACLs through the quorum; every broker enforces them once it has applied them.
    pub(crate) async fn create_acls(
        &self,
        acls: Vec<crate::authorizer::AclBinding>,
    ) -> Result<(), TopicError> {
        self.change(Command::CreateAcls { acls }).await.map(|_| ())
    }

    /// Removes the ACLs each filter matches when the quorum applies it: those, per filter.
    pub(crate) async fn delete_acls(
        &self,
        filters: Vec<crate::authorizer::AclFilter>,
    ) -> Result<Vec<Vec<crate::authorizer::AclBinding>>, TopicError> {
        let (index, _, removed) = self
            .quorum
            .propose_acls(Command::DeleteAcls { filters })
            .await?;
        self.caught_up(index).await?;
        Ok(removed)
    }

    /// Creates `__consumer_offsets` if the cluster has none yet: `offsets.topic.num.partitions`
    /// partitions spread over the live brokers, as Kafka creates it on first use, each with
    /// `offsets.topic.replication.factor` replicas, capped at the cluster's size (its voters,
    /// or its live brokers if more). Until that many brokers are live, COORDINATOR_NOT_AVAILABLE
    /// (clients retry), so a cluster still starting does not get an offsets topic with fewer
    /// replicas than it will have brokers.
    pub(crate) async fn ensure_offsets_topic(&self) -> Result<(), TopicError> {
        let (count, factor) = (
            self.config.offsets_partitions,
            self.config.offsets_replication_factor,
        );
        self.ensure_internal_topic(OFFSETS_TOPIC, count, factor)
            .await
    }

    /// Creates `__transaction_state` if it does not exist yet, as
    /// [`Broker::ensure_offsets_topic`] creates `__consumer_offsets` (with
    /// `transaction.state.log.num.partitions` and `transaction.state.log.replication.factor`).
    pub(crate) async fn ensure_txn_topic(&self) -> Result<(), TopicError> {
        let (count, factor) = (
            self.config.transaction_partitions,
            self.config.transaction_replication_factor,
        );
        self.ensure_internal_topic(TXN_TOPIC, count, factor).await
    }

    async fn ensure_internal_topic(
        &self,
        name: &'static str,
        count: i32,
        factor: i32,
    ) -> Result<(), TopicError> {
        if self.cluster.internal_partitions(name) > 0 {
            return Ok(());
        }
        let _creating = self.internal_creation.lock().await;
        if self.quorum.image().topics.contains_key(name) {
            return Ok(());
        }
        let count = usize::try_from(count).unwrap_or(1);
        let live = self.cluster.nodes().len();
        let wanted = usize::try_from(factor)
            .unwrap_or(1)
            .clamp(1, self.config.voters.len().max(live).max(1));
        if live < wanted {
            return Err((
                ErrorCode::CoordinatorNotAvailable,
                format!(
                    "{name} needs {wanted} live brokers for its replicas, {live} are registered"
                ),
            ));
        }
        let command = Command::CreateTopic {
            name: name.to_owned(),
            id: Uuid::new_v4(),
            configs: BTreeMap::new(),
            assignment: self.spread(count, wanted)?,
        };
        match self.change(command).await {
            Ok(_) | Err((ErrorCode::TopicAlreadyExists, _)) => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// [`Broker::ensure_offsets_topic`] for a request that needs the offsets topic: a failure
    /// is logged (quietly while the cluster waits for brokers) and the request answers
    /// COORDINATOR_NOT_AVAILABLE or NOT_COORDINATOR, which clients retry.
    pub(crate) async fn offsets_topic_on_first_use(&self) {
        Self::on_first_use(OFFSETS_TOPIC, self.ensure_offsets_topic().await);
    }

    /// [`Broker::offsets_topic_on_first_use`] for `__transaction_state`.
    pub(crate) async fn txn_topic_on_first_use(&self) {
        Self::on_first_use(TXN_TOPIC, self.ensure_txn_topic().await);
    }

    fn on_first_use(name: &str, created: Result<(), TopicError>) {
        match created {
            Ok(()) => {}
            Err((ErrorCode::CoordinatorNotAvailable, message)) => {
                tracing::debug!(%message, "waiting to create {name}");
            }
            Err((code, message)) => {
                tracing::warn!(error = code.name(), %message, "creating {name}");
            }
        }
    }

    /// Adds, replaces and removes SCRAM credentials (checked by the caller) in the metadata log.
    pub(crate) async fn alter_scram_credentials(
        &self,
        upsert: Vec<(String, String, crate::sasl::scram::Credential)>,
        delete: Vec<(String, String)>,
    ) -> Result<(), TopicError> {
        self.change(Command::AlterScramCredentials { upsert, delete })
            .await
            .map(|_| ())
    }

    /// Makes sure `--bootstrap-user` has both SCRAM credentials for its password.
    pub(crate) async fn ensure_bootstrap_user(&self) -> Result<(), TopicError> {
        let Some(user) = self.config.bootstrap_user.clone() else {
            return Ok(());
        };
        let image = self.quorum.image().clone();
        let name = user.name.clone();
        let upsert = tokio::task::spawn_blocking(move || {
            crate::sasl::bootstrap_credentials(&image, &user.name, &user.password)
        })
        .await
        .map_err(|e| (ErrorCode::UnknownServerError, e.to_string()))?;
        if upsert.is_empty() {
            return Ok(());
        }
        self.alter_scram_credentials(upsert, Vec::new()).await?;
        tracing::info!(user = %name, "gave the bootstrap user SCRAM-SHA-256 and SCRAM-SHA-512 credentials");
        Ok(())
    }

    /// Proposes a change and waits until this broker has acted on it.
    async fn change(&self, command: Command) -> Result<i64, TopicError> {
        let (index, value) = self.quorum.propose(command).await?;
        self.caught_up(index).await?;
        Ok(value)
    }

    /// Waits until the reconciler has acted on metadata index `index`.
    async fn caught_up(&self, index: u64) -> Result<(), TopicError> {
        let mut reconciled = self.reconciled.subscribe();
        match tokio::time::timeout(CATCH_UP, reconciled.wait_for(|at| *at >= index)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err((
                ErrorCode::RequestTimedOut,
                "the change was agreed but this broker has not applied it yet".to_owned(),
            )),
        }
    }

    /// Opens the partitions of `spec` placed here (if the topic is still as `unchanged` wants
    /// it), then proposes `command`: all or nothing. If the proposal fails, the partitions just
    /// made are deleted again, unless the reconciler already took them (another broker's
    /// topic of the same name won).
    async fn open_and_propose(
        &self,
        spec: TopicSpec,
        command: Command,
        unchanged: impl Fn() -> Result<(), TopicError>,
    ) -> Result<(), TopicError> {
        let id = spec.id;
        let name = spec.name.clone();
        {
            let _opening = self.opening.lock().await;
            unchanged()?;
            let opened = self.open_blocking(spec, true).await?;
            if let Ok(mut pending) = self.pending.lock() {
                pending
                    .entry(id)
                    .or_insert_with(|| (name, Vec::new()))
                    .1
                    .extend(opened);
            }
        }
        match self.quorum.propose(command).await {
            Ok((index, _)) => self.caught_up(index).await,
            Err(err) => {
                let made = self
                    .pending
                    .lock()
                    .ok()
                    .and_then(|mut pending| pending.remove(&id))
                    .map(|(_, opened)| opened)
                    .unwrap_or_default();
                let _ = tokio::task::spawn_blocking(move || {
                    Storage::close_all(made.iter().map(|(_, p)| &**p), true);
                })
                .await;
                Err(err)
            }
        }
    }

    /// Opens (creating) the partitions of `spec` off the network threads.
    async fn open_blocking(&self, spec: TopicSpec, creating: bool) -> Result<Opened, TopicError> {
        if spec.indices.is_empty() {
            return Ok(Vec::new());
        }
        let config = self.config.clone();
        let defaults = self.dynamic().topic_defaults();
        let metrics = self.metrics.clone();
        let storage = self.storage.clone();
        let outbox = self.quorum.partition_outbox.clone();
        let result = tokio::task::spawn_blocking(move || {
            let opener = Opener {
                config: &config,
                defaults: &defaults,
                metrics: &metrics,
                storage: &storage,
                outbox: &outbox,
            };
            opener.open(&[spec], creating)
        })
        .await;
        match result {
            Ok(Ok(mut opened)) => Ok(opened.pop().unwrap_or_default()),
            Ok(Err(err)) => {
                tracing::error!(%err, "opening partitions failed");
                Err((ErrorCode::KafkaStorageError, err.to_string()))
            }
            Err(join) => Err((ErrorCode::UnknownServerError, join.to_string())),
        }
    }

    /// Brings this broker in line with what the quorum applied. Run by one task only.
    pub(crate) async fn reconcile(&self, applied: Applied) {
        let mut names = BTreeSet::new();
        let mut deleted = Vec::new();
        let mut configs = false;
        let mut brokers = false;
        let mut acls = false;
        let mut handovers = Vec::new();
        for change in applied.changes {
            match change {
                Change::Acls => acls = true,
                Change::PreferLeader {
                    topic,
                    id,
                    partition,
                    to,
                    epoch,
                } => handovers.push((topic, id, partition, to, epoch)),
                Change::Topic(name) => {
                    let _ = names.insert(name);
                }
                Change::TopicDeleted(name, id) => deleted.push((name, id)),
                Change::BrokerConfigs => configs = true,
                Change::Brokers | Change::Cluster => brokers = true,
            }
        }
        if brokers {
            self.cluster.update(&self.quorum.image());
        }
        if acls {
            // Built from a copy, so the image's lock is not held while the index is made.
            let bindings = self.quorum.image().acls.clone();
            self.authorizer.rebuild(&bindings);
        }
        for (name, id) in deleted {
            self.remove_topic(&name, id).await;
        }
        if configs {
            let dynamic = dynamic_of(&self.quorum.image(), self.config.node_id);
            if let Ok(mut current) = self.dynamic.write() {
                *current = dynamic;
            }
            // Every topic may resolve differently now.
            names.extend(self.all_topics().iter().map(|t| t.name.clone()));
        }
        for name in [OFFSETS_TOPIC, TXN_TOPIC] {
            if names.remove(name) {
                self.sync_internal_topic(name).await;
            }
        }
        for name in names {
            let agreed = self.quorum.image().topics.get(&name).cloned();
            if let Some(agreed) = agreed {
                self.sync_topic(name, agreed).await;
            }
        }
        for (topic, id, partition, to, epoch) in handovers {
            self.hand_over(&topic, id, partition, to, epoch);
        }
        if applied.index > 0 {
            let _ = self.reconciled.send_if_modified(|at| {
                let newer = applied.index > *at;
                if newer {
                    *at = applied.index;
                }
                newer
            });
        }
    }

    /// Hosts the partitions of an internal topic placed here (their groups or transactional
    /// ids), and tells the cluster view where the others are.
    async fn sync_internal_topic(&self, name: &'static str) {
        let Some(agreed) = self.quorum.image().topics.get(name).cloned() else {
            return;
        };
        let outbox = &self.quorum.partition_outbox;
        for (partition, replica) in internal_held_here(&self.config, outbox, name, &agreed, true) {
            if let Err(err) = self.host_internal(name, partition, replica).await {
                tracing::error!(topic = name, partition, %err, "cannot open a partition of an internal topic");
            }
        }
        match name {
            OFFSETS_TOPIC => self.groups.hosting().load_led(),
            _ => self.txns.hosting().load_led(),
        }
        self.cluster.update_internal(name, agreed.partitions);
    }

    /// Removes a deleted topic and its partitions' data.
    async fn remove_topic(&self, name: &str, id: Uuid) {
        let removed = match self.topics.write() {
            Ok(mut topics) if topics.get(name).is_some_and(|t| t.id == id) => topics.remove(name),
            _ => None,
        };
        let Some(topic) = removed else {
            return;
        };
        let _ = tokio::task::spawn_blocking(move || {
            Storage::close_all(topic.held_partitions().map(|p| &**p), true);
        })
        .await;
        self.metrics.remove_topic(name);
    }

    /// Makes this broker's topic `name` what the quorum agreed: its placements and configs, its
    /// partitions placed here open.
    async fn sync_topic(&self, name: String, agreed: TopicImage) {
        let _opening = self.opening.lock().await;
        let current = self.topic(&name);
        if let Some(old) = current.as_ref().filter(|t| t.id != agreed.id) {
            // Replaced by a topic of the same name: the old one's data goes.
            self.remove_topic(&name, old.id).await;
        }
        let current = current.filter(|t| t.id == agreed.id);
        let node = self.config.node_id;
        let mut held: Vec<Option<Arc<Partition>>> =
            current.as_ref().map(|t| t.held.clone()).unwrap_or_default();
        held.resize(agreed.partitions.len(), None);
        let (mut pending, losers) = match self.pending.lock() {
            Ok(mut pending) => {
                // A change of this broker that made the same topic name under another id lost
                // the race to another broker's: its partitions' directories are this topic's
                // now, so they go before this topic's are opened (its proposal then fails).
                let losers: Vec<Uuid> = pending
                    .iter()
                    .filter(|(id, (n, _))| **id != agreed.id && *n == name)
                    .map(|(id, _)| *id)
                    .collect();
                let losers: Opened = losers
                    .iter()
                    .filter_map(|id| pending.remove(id))
                    .flat_map(|(_, opened)| opened)
                    .collect();
                let ours = pending
                    .remove(&agreed.id)
                    .map(|(_, o)| o)
                    .unwrap_or_default();
                (ours, losers)
            }
            Err(_) => (Vec::new(), Vec::new()),
        };
        if !losers.is_empty() {
            let _ = tokio::task::spawn_blocking(move || {
                Storage::close_all(losers.iter().map(|(_, p)| &**p), true);
            })
            .await;
        }
        let mut missing = Vec::new();
        let mut joining = Vec::new();
        let mut moved_away = Vec::new();
        for (i, placement) in agreed.partitions.iter().enumerate() {
            let here = placement.replicas.contains(&node);
            if !here {
                // A finished reassignment moved it off this broker.
                moved_away.extend(held[i].take());
                continue;
            }
            if held[i].is_some() {
                continue;
            }
            let index = i32::try_from(i).unwrap_or(i32::MAX);
            match pending.iter().position(|(p, _)| *p == index) {
                Some(at) => held[i] = Some(pending.swap_remove(at).1),
                // Added by a reassignment: a replica joining a group that has data.
                None if placement.adding.contains(&node) => joining.push(index),
                None => missing.push(index),
            }
        }
        for (indices, fresh) in [(missing, true), (joining, false)] {
            if indices.is_empty() {
                continue;
            }
            let spec = TopicSpec {
                name: name.clone(),
                id: agreed.id,
                overrides: agreed.configs.clone(),
                indices,
                replicated: groups_of(&agreed.partitions),
            };
            match self.open_blocking(spec, fresh).await {
                Ok(opened) => {
                    for (index, partition) in opened {
                        if let Some(slot) =
                            usize::try_from(index).ok().and_then(|i| held.get_mut(i))
                        {
                            *slot = Some(partition);
                        }
                    }
                }
                Err((_, message)) => {
                    tracing::error!(topic = name, %message, "cannot open partitions placed here");
                }
            }
        }
        let config = self.resolve_topic(&agreed.configs);
        let topic = match &current {
            Some(current) => {
                if current.config != config {
                    for partition in held.iter().flatten() {
                        partition.configure(config.log_config());
                    }
                }
                // A reassignment changed replica lists: the replicas' in-sync bits follow.
                for (i, placement) in agreed.partitions.iter().enumerate() {
                    let before = current.placements.get(i).map(|p| &p.replicas);
                    if before != Some(&placement.replicas)
                        && placement.replicas.len() > 1
                        && let Some(partition) = held.get(i).and_then(Option::as_ref)
                    {
                        partition.set_replicas(placement.replicas.clone());
                    }
                }
                current.with(agreed.partitions, held, agreed.configs, config)
            }
            None => Topic {
                metrics: self.metrics.topic(&name),
                name: name.clone(),
                id: agreed.id,
                overrides: agreed.configs,
                config,
                placements: agreed.partitions,
                held,
                node,
            },
        };
        if let Ok(mut topics) = self.topics.write() {
            let _ = topics.insert(name.clone(), Arc::new(topic));
        }
        if !moved_away.is_empty() {
            for partition in &moved_away {
                tracing::info!(
                    topic = name,
                    partition = partition.index,
                    "reassigned to other brokers: deleting the replica here"
                );
            }
            let _ = tokio::task::spawn_blocking(move || {
                Storage::close_all(moved_away.iter().map(|p| &**p), true);
            })
            .await;
        }
    }

    /// Closes every partition cleanly and stops the quorum. Blocking.
    pub(crate) fn close_blocking(&self) {
        let topics: Vec<_> = self
            .topics
            .write()
            .map(|mut t| t.drain().map(|(_, topic)| topic).collect())
            .unwrap_or_default();
        Storage::close_all(
            topics
                .iter()
                .flat_map(|t| t.held_partitions().map(|p| &**p)),
            false,
        );
        self.groups.close_blocking();
        self.txns.hosting().close_blocking();
        self.quorum.stop();
        self.storage.stop();
    }
}

/// The dynamic configs the image holds for this broker and the cluster.
fn dynamic_of(image: &Image, node_id: i32) -> DynamicConfigs {
    DynamicConfigs {
        cluster: image.broker_configs.get("").cloned().unwrap_or_default(),
        node: image
            .broker_configs
            .get(&node_id.to_string())
            .cloned()
            .unwrap_or_default(),
    }
}

/// A topic as the image has it, with the owners opened for it.
fn build_topic(
    opener: &Opener<'_>,
    name: String,
    agreed: TopicImage,
    node: i32,
    opened: Vec<(i32, Arc<Partition>)>,
) -> Topic {
    let mut held = vec![None; agreed.partitions.len()];
    for (index, partition) in opened {
        if let Some(slot) = usize::try_from(index).ok().and_then(|i| held.get_mut(i)) {
            *slot = Some(partition);
        }
    }
    Topic {
        config: TopicConfig::resolve_with(opener.config, opener.defaults, &agreed.configs),
        metrics: opener.metrics.topic(&name),
        name,
        id: agreed.id,
        overrides: agreed.configs,
        placements: agreed.partitions,
        held,
        node,
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

/// Partitions of a topic to open.
struct TopicSpec {
    name: String,
    id: Uuid,
    overrides: BTreeMap<String, String>,
    indices: Vec<i32>,
    /// The groups of those of `indices` that have more than one replica.
    replicated: BTreeMap<i32, Group>,
}

/// A replicated partition's replicas, and its Raft group's first voters.
#[derive(Debug, Clone)]
struct Group {
    replicas: Vec<i32>,
    first: Vec<i32>,
}

impl Group {
    fn of(placement: &PartitionImage) -> Self {
        Self {
            replicas: placement.replicas.clone(),
            first: placement.first_replicas().to_vec(),
        }
    }
}

/// Moves a corrupt replica's directory `dir` to `<data dir>/corrupt/<its name>-<ms>`, kept for
/// inspection and never read again. Blocking.
fn quarantine(data_dir: &std::path::Path, dir: &std::path::Path) -> Result<(), BrokerError> {
    let corrupt_dir = data_dir.join("corrupt");
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("partition");
    let kept = corrupt_dir.join(format!("{name}-{}", crate::partition::now_ms()));
    let io = |path: &std::path::Path, source| BrokerError::Io {
        path: path.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(&corrupt_dir).map_err(|e| io(&corrupt_dir, e))?;
    std::fs::rename(dir, &kept).map_err(|e| io(dir, e))?;
    rill_log::dir::fsync_dir(&corrupt_dir)?;
    rill_log::dir::fsync_dir(data_dir)?;
    tracing::warn!(
        dir = %dir.display(),
        kept = %kept.display(),
        "quarantined a corrupt replica: it starts empty and catches up from the leader"
    );
    Ok(())
}

/// What a replica of partition `index` of topic `topic_id` needs to join its Raft group.
/// Kafka's replica list order (the preferred leader first) is the replica's order.
fn replica_spec(
    config: &BrokerConfig,
    outbox: &Outbox,
    topic_id: Uuid,
    index: i32,
    group: &Group,
    fresh: bool,
) -> ReplicaSpec {
    ReplicaSpec {
        topic_id,
        partition: index,
        node_id: config.node_id,
        replicas: group.replicas.clone(),
        first: group.first.clone(),
        fsync: config.ack_durability == AckDurability::Fsync,
        lag_max: config.replica_lag_time_max,
        fresh,
        outbox: outbox.clone(),
    }
}

/// The partitions of internal topic `name` placed on this broker, with a replica spec for
/// those with more than one replica (`fresh`: opened as the topic is created).
fn internal_held_here(
    config: &BrokerConfig,
    outbox: &Outbox,
    name: &str,
    topic: &TopicImage,
    fresh: bool,
) -> Vec<(i32, Option<ReplicaSpec>)> {
    let spec = TopicSpec::held_here(name, topic, config.node_id);
    spec.indices
        .iter()
        .map(|index| {
            let replica = spec
                .replicated
                .get(index)
                .map(|group| replica_spec(config, outbox, spec.id, *index, group, fresh));
            (*index, replica)
        })
        .collect()
}

/// The groups of the new partitions of `placed` (numbered from `first`) that have more than
/// one replica.
fn replicated(placed: &[Vec<i32>], first: usize) -> BTreeMap<i32, Group> {
    placed
        .iter()
        .enumerate()
        .filter(|(_, replicas)| replicas.len() > 1)
        .filter_map(|(i, replicas)| {
            let group = Group {
                replicas: replicas.clone(),
                first: replicas.clone(),
            };
            Some((i32::try_from(first + i).ok()?, group))
        })
        .collect()
}

/// The groups of an agreed topic's partitions that have more than one replica.
fn groups_of(partitions: &[PartitionImage]) -> BTreeMap<i32, Group> {
    partitions
        .iter()
        .enumerate()
        .filter(|(_, p)| p.replicas.len() > 1)
        .filter_map(|(i, p)| Some((i32::try_from(i).ok()?, Group::of(p))))
        .collect()
}

impl TopicSpec {
    /// The partitions of an agreed topic that this broker holds.
    fn held_here(name: &str, topic: &TopicImage, node: i32) -> Self {
        let indices = topic
            .partitions
            .iter()
            .enumerate()
            .filter(|(_, p)| p.replicas.contains(&node))
            .filter_map(|(i, _)| i32::try_from(i).ok())
            .collect();
        Self {
            name: name.to_owned(),
            id: topic.id,
            overrides: topic.configs.clone(),
            indices,
            replicated: groups_of(&topic.partitions),
        }
    }
}

/// What opening a topic's partitions needs.
struct Opener<'a> {
    config: &'a BrokerConfig,
    defaults: &'a BTreeMap<String, String>,
    metrics: &'a Metrics,
    storage: &'a Storage,
    /// Where replicated partitions send their messages for other brokers.
    outbox: &'a Outbox,
}

impl Opener<'_> {
    /// Opens (creating, if new) partition `index` of a topic.
    fn open_partition(
        &self,
        spec: &TopicSpec,
        config: &TopicConfig,
        metrics: &TopicMetrics,
        index: i32,
        creating: bool,
    ) -> Result<Partition, BrokerError> {
        let dir = partition_dir(self.config, &spec.name, index);
        if meta::read_partition_topic_id(&dir).is_none() {
            meta::write_partition_metadata(&dir, spec.id)?;
        }
        let metrics = OwnerMetrics {
            topic: Some(metrics.clone()),
            fsync: self.metrics.fsync.clone(),
        };
        if let Some(group) = spec.replicated.get(&index) {
            let replica = replica_spec(self.config, self.outbox, spec.id, index, group, creating);
            return self
                .storage
                .open_replica(dir, index, config.log_config(), metrics, replica);
        }
        Ok(self
            .storage
            .open(dir, index, config.log_config(), metrics)?)
    }

    /// Opens the partitions of every spec, all in parallel (recovery after a crash reads each
    /// active segment): for each spec, its (index, owner) pairs. When `creating`, a failure
    /// deletes every partition this call made, directories included, so that nothing half-made
    /// is left behind; at start-up it only closes them.
    fn open(&self, specs: &[TopicSpec], creating: bool) -> Result<Vec<Opened>, BrokerError> {
        let configs: Vec<TopicConfig> = specs
            .iter()
            .map(|spec| TopicConfig::resolve_with(self.config, self.defaults, &spec.overrides))
            .collect();
        let topic_metrics: Vec<TopicMetrics> = specs
            .iter()
            .map(|spec| self.metrics.topic(&spec.name))
            .collect();
        let jobs: Vec<(usize, &TopicSpec, &TopicConfig, &TopicMetrics, i32)> = specs
            .iter()
            .zip(&configs)
            .zip(&topic_metrics)
            .enumerate()
            .flat_map(|(at, ((spec, config), metrics))| {
                spec.indices
                    .iter()
                    .map(move |index| (at, spec, config, metrics, *index))
            })
            .collect();
        let opened = crate::partition::parallel(
            jobs,
            self.storage.threads() * 2,
            |(at, spec, config, metrics, index)| {
                let dir = partition_dir(self.config, &spec.name, index);
                let existed = dir.exists();
                self.open_partition(spec, config, metrics, index, creating)
                    .map(|partition| (at, index, Arc::new(partition)))
                    .map_err(|err| (err, (!existed && dir.is_dir()).then_some(dir)))
            },
        );
        let mut partitions = Vec::with_capacity(opened.len());
        let mut failure = None;
        for result in opened {
            match result {
                Ok(partition) => partitions.push(partition),
                Err((err, made)) => {
                    if creating && let Some(dir) = made {
                        let _ = std::fs::remove_dir_all(&dir);
                    }
                    let _ = failure.get_or_insert(err);
                }
            }
        }
        if let Some(err) = failure {
            Storage::close_all(partitions.iter().map(|(_, _, p)| &**p), creating);
            return Err(err);
        }
        let mut by_spec: Vec<Vec<(i32, Arc<Partition>)>> =
            specs.iter().map(|_| Vec::new()).collect();
        for (at, index, partition) in partitions {
            if let Some(list) = by_spec.get_mut(at) {
                list.push((index, partition));
            }
        }
        Ok(by_spec)
    }
}

/// Removes partition directories left by a deletion that a crash interrupted: those whose
/// topic id is not the id of their topic in the image (deleted, or deleted and created again),
/// and the replicas of replicated partitions that a reassignment moved off this broker while
/// it was down (their group has the data; this broker is no longer in it).
fn remove_orphans(config: &BrokerConfig, image: &Image) -> Result<(), BrokerError> {
    let entries = std::fs::read_dir(&config.data_dir).map_err(|source| BrokerError::Io {
        path: config.data_dir.clone(),
        source,
    })?;
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name.ends_with(crate::partition::DELETING_SUFFIX) && path.is_dir() {
            tracing::warn!(dir = %path.display(), "removing a partition a crash left half-deleted");
            std::fs::remove_dir_all(&path).map_err(|source| BrokerError::Io { path, source })?;
            continue;
        }
        let Some((topic, index)) = name.rsplit_once('-') else {
            continue;
        };
        let internal =
            name == meta::METADATA_LOG || crate::group::is_offsets_log(name) || topic == TXN_TOPIC;
        if !path.is_dir() || index.parse::<u32>().is_err() || internal {
            continue;
        }
        let Some(dir_id) = meta::read_partition_topic_id(&path) else {
            continue;
        };
        let Some(agreed) = image.topics.get(topic).filter(|t| t.id == dir_id) else {
            tracing::warn!(dir = %path.display(), "removing the data of a deleted topic");
            std::fs::remove_dir_all(&path).map_err(|source| BrokerError::Io { path, source })?;
            continue;
        };
        let moved_away = index
            .parse::<usize>()
            .ok()
            .and_then(|i| agreed.partitions.get(i))
            .is_some_and(|p| p.replicas.len() > 1 && !p.replicas.contains(&config.node_id));
        if moved_away {
            tracing::warn!(
                dir = %path.display(),
                "removing a replica reassigned to other brokers while this one was down"
            );
            std::fs::remove_dir_all(&path).map_err(|source| BrokerError::Io { path, source })?;
        }
    }
    Ok(())
}
