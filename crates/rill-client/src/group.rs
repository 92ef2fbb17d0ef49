//! The group consumer (sarama's `ConsumerGroup`, Kafka's `KafkaConsumer.subscribe`): members of
//! a consumer group share the partitions of the topics they subscribe to, and commit how far
//! they have read so that a member taking a partition over resumes after it.
//!
//! # How it works
//! [`GroupConsumer::next`] drives everything, as `poll` does in the Java client: it finds the
//! group's coordinator, joins (JoinGroup, then SyncGroup; the leader runs the
//! [`Assignor`] over every member's subscription), reads the committed offsets of the
//! partitions it was given (OffsetFetch) and starts a [`PartitionConsumer`] on each: the
//! partition consumer's fetch-ahead task, reconnects and retries are reused as they are. A
//! background task heartbeats every [`GroupConfig::heartbeat_interval`]; when the coordinator
//! answers that the group is rebalancing (or has dropped this member), the next call of `next`
//! commits what is marked, gives up the partitions ([`GroupEvent::Revoked`]) and joins again.
//!
//! So a member must keep calling `next`: one that stops for longer than
//! [`GroupConfig::rebalance_timeout`] while the group rebalances is left out of the new
//! generation, and its partitions go to the others.
//!
//! # Offsets
//! [`GroupConsumer::mark`] records that a record is done (its offset + 1 is what gets
//! committed, Kafka's convention: the next offset to read). Marked offsets are committed every
//! [`GroupConfig::auto_commit_interval`], before giving partitions up, by
//! [`GroupConsumer::commit`] and by [`GroupConsumer::close`]. This is at-least-once: records
//! read but not yet committed when a member dies are read again by the next owner.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use rill_protocol::ErrorCode;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::cluster::Cluster;
use crate::connection::Connection;
use crate::consumer::{Consumer, ConsumerConfig, ConsumerRecord, Offset, PartitionConsumer};
use crate::error::{ClientError, Result};

mod assignor;
mod coordinator;
pub(crate) mod protocol;

use coordinator::Member;
use protocol::{Assignment, Subscription};

/// Default [`GroupConfig::session_timeout`]: 10 s. Kafka's `session.timeout.ms` defaults to
/// 45 s; 10 s notices a dead member sooner, at the cost of dropping members whose heartbeats
/// stall for that long (a long GC pause, an overloaded host).
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(10);
/// Default [`GroupConfig::rebalance_timeout`]: 60 s.
pub const DEFAULT_REBALANCE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default [`GroupConfig::heartbeat_interval`]: 3 s, Kafka's `heartbeat.interval.ms`.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(3);
/// Default [`GroupConfig::auto_commit_interval`]: 5 s, Kafka's `auto.commit.interval.ms`.
pub const DEFAULT_AUTO_COMMIT_INTERVAL: Duration = Duration::from_secs(5);

/// Records forwarded from the partition consumers and waiting for `next`.
const MERGE_QUEUE: usize = 256;
/// Wait before retrying a failed join; doubles up to [`JOIN_BACKOFF_MAX`].
const JOIN_BACKOFF: Duration = Duration::from_millis(100);
const JOIN_BACKOFF_MAX: Duration = Duration::from_secs(2);

/// How the group leader shares partitions out (Kafka's `partition.assignment.strategy`). Every
/// member of a group must offer the same one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Assignor {
    /// Kafka's `range` (the default): per topic, contiguous ranges of partitions to the
    /// members in member-id order, the first ones getting one more.
    #[default]
    Range,
    /// Kafka's `roundrobin`: every partition of every topic dealt in turn.
    RoundRobin,
    /// `cooperative-sticky`: members keep what they own across rebalances, and only the
    /// partitions that move are revoked (in a second rebalance round), so the others are read
    /// without a pause. A simple version: balanced by partition count, sticky to what each
    /// member owns, not to the history before that.
    CooperativeSticky,
}

impl Assignor {
    /// The protocol name in JoinGroup.
    pub fn name(self) -> &'static str {
        match self {
            Self::Range => "range",
            Self::RoundRobin => "roundrobin",
            Self::CooperativeSticky => "cooperative-sticky",
        }
    }

    fn cooperative(self) -> bool {
        self == Self::CooperativeSticky
    }
}

/// Where a member starts reading a partition the group has committed no offset for (Kafka's
/// `auto.offset.reset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartOffset {
    /// The oldest record still in the log (`earliest`).
    Oldest,
    /// The next record produced (`latest`, the default): nothing written before is read.
    #[default]
    Newest,
}

/// Group settings. Every field documents its default and what changing it risks.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct GroupConfig {
    /// The group's name (Kafka's `group.id`).
    pub group_id: String,
    /// How long the coordinator waits for a heartbeat before dropping the member (default
    /// [`DEFAULT_SESSION_TIMEOUT`]). The broker bounds it (`group.min.session.timeout.ms`,
    /// 6 s by default).
    pub session_timeout: Duration,
    /// How long the coordinator waits for every member to rejoin during a rebalance
    /// (default [`DEFAULT_REBALANCE_TIMEOUT`]; Kafka's `max.poll.interval.ms` plays this part
    /// and defaults to 5 minutes). A member that does not call `next` for this long during a
    /// rebalance is dropped.
    pub rebalance_timeout: Duration,
    /// Time between heartbeats (default [`DEFAULT_HEARTBEAT_INTERVAL`]); keep it well under a
    /// third of `session_timeout`. Shorter notices rebalances sooner.
    pub heartbeat_interval: Duration,
    /// How partitions are shared out (default [`Assignor::Range`]).
    pub assignor: Assignor,
    /// Commit the marked offsets this often (default `Some(`[`DEFAULT_AUTO_COMMIT_INTERVAL`]`)`,
    /// Kafka's `enable.auto.commit`); `None` commits only on [`GroupConsumer::commit`],
    /// before a rebalance and on close. Longer means more records read twice after a crash.
    pub auto_commit_interval: Option<Duration>,
    /// A static member id (Kafka's `group.instance.id`, KIP-345): a member that restarts
    /// with the same id within the session timeout gets its partitions back without a
    /// rebalance. A static member does not leave the group on close: its partitions move only
    /// once its session times out. Default `None`.
    pub group_instance_id: Option<String>,
    /// Where to start on a partition the group has no committed offset for (default
    /// [`StartOffset::Newest`]). A committed offset out of range is handled as the
    /// consumer config's `offset_reset` says.
    pub start: StartOffset,
}

impl GroupConfig {
    /// The defaults above for group `group_id`.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use rill_client::{Assignor, GroupConfig, StartOffset};
    /// let mut config = GroupConfig::new("group-1");
    /// config.assignor = Assignor::RoundRobin;
    /// config.start = StartOffset::Oldest;
    /// config.auto_commit_interval = Some(Duration::from_secs(1));
    /// # drop(config);
    /// ```
    pub fn new(group_id: impl Into<String>) -> Self {
        Self {
            group_id: group_id.into(),
            session_timeout: DEFAULT_SESSION_TIMEOUT,
            rebalance_timeout: DEFAULT_REBALANCE_TIMEOUT,
            heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
            assignor: Assignor::Range,
            auto_commit_interval: Some(DEFAULT_AUTO_COMMIT_INTERVAL),
            group_instance_id: None,
            start: StartOffset::Newest,
        }
    }
}

/// A change of this member's partitions, from [`GroupConsumer::events`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GroupEvent {
    /// These partitions are now this member's; their records follow.
    Assigned(Vec<(String, i32)>),
    /// These partitions are no longer this member's; their marked offsets were committed
    /// (if the coordinator still accepted them) first.
    Revoked(Vec<(String, i32)>),
}

/// Who is committing offsets for a group from inside a transaction (Kafka's
/// `ConsumerGroupMetadata`): what `send_offsets_to_transaction` passes on so that the group
/// coordinator refuses the offsets of a member it has since replaced (KIP-447). From
/// [`GroupConsumer::group_metadata`], or [`GroupMetadata::new`] (from a group id alone: no
/// such check).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupMetadata {
    /// The group.
    pub group_id: String,
    /// The member's generation, `-1` for none.
    pub generation_id: i32,
    /// The member's id, empty for none.
    pub member_id: String,
    /// The member's static id (`group.instance.id`), if any.
    pub group_instance_id: Option<String>,
}

impl GroupMetadata {
    /// Metadata naming only the group: the coordinator checks no member.
    ///
    /// ```
    /// let group = rill_client::GroupMetadata::new("billing");
    /// assert_eq!(group.generation_id, -1);
    /// ```
    pub fn new(group_id: impl Into<String>) -> Self {
        Self {
            group_id: group_id.into(),
            generation_id: -1,
            member_id: String::new(),
            group_instance_id: None,
        }
    }
}

impl From<&str> for GroupMetadata {
    /// [`GroupMetadata::new`].
    fn from(group_id: &str) -> Self {
        Self::new(group_id)
    }
}

impl From<String> for GroupMetadata {
    /// [`GroupMetadata::new`].
    fn from(group_id: String) -> Self {
        Self::new(group_id)
    }
}

/// One assigned partition: the task forwarding its partition consumer's records.
#[derive(Debug)]
struct Owned {
    id: u64,
    task: JoinHandle<()>,
}

type Tagged = (u64, Result<ConsumerRecord>);

/// A member of a consumer group (sarama's `ConsumerGroup`): reads the records of the
/// partitions the group gives it, commits marked offsets, follows rebalances.
///
/// ```no_run
/// use rill_client::{ClientConfig, GroupConfig, GroupConsumer};
///
/// # async fn _demo() -> Result<(), rill_client::ClientError> {
/// let mut group = GroupConsumer::new(ClientConfig::new(["127.0.0.1:9092"]), GroupConfig::new("group-1"))?;
/// group.subscribe(&["test0"]);
/// while let Some(record) = group.next().await {
///     let record = record?;
///     println!("{}@{}: {:?}", record.partition, record.offset, record.value);
///     group.mark(&record);
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct GroupConsumer {
    cluster: Arc<Cluster>,
    consumer: Consumer,
    config: GroupConfig,
    topics: Vec<String>,
    coordinator: Option<Arc<Connection>>,
    member: Member,
    /// Set when the next `next` must (re)join before reading.
    rejoin: bool,
    assigned: BTreeMap<(String, i32), Owned>,
    /// Forwarding task id → its partition, for the records in the queue.
    live: HashMap<u64, (String, i32)>,
    next_id: u64,
    marked: HashMap<(String, i32), i64>,
    committed: HashMap<(String, i32), i64>,
    tx: mpsc::Sender<Tagged>,
    rx: mpsc::Receiver<Tagged>,
    heartbeat: Option<JoinHandle<()>>,
    heartbeat_stop: mpsc::Receiver<ClientError>,
    next_commit: Option<Instant>,
    events: broadcast::Sender<GroupEvent>,
    join_failures: u32,
    closed: bool,
}

impl GroupConsumer {
    /// A group member on a new [`Cluster`]; takes a [`ConsumerConfig`] (fetch tuning) or,
    /// for the defaults, a [`ClientConfig`](crate::ClientConfig). Joins nothing until
    /// [`subscribe`](Self::subscribe) and the first [`next`](Self::next).
    ///
    /// ```no_run
    /// use rill_client::{ClientConfig, GroupConfig, GroupConsumer};
    /// # fn _demo() -> Result<(), rill_client::ClientError> {
    /// let group = GroupConsumer::new(ClientConfig::new(["127.0.0.1:9092"]), GroupConfig::new("g"))?;
    /// # drop(group);
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(consumer: impl Into<ConsumerConfig>, config: GroupConfig) -> Result<Self> {
        let consumer = consumer.into();
        let cluster = Arc::new(Cluster::new(consumer.client.clone()));
        if config.group_id.is_empty() {
            return Err(ClientError::Config("group_id must not be empty".to_owned()));
        }
        if config.heartbeat_interval >= config.session_timeout {
            return Err(ClientError::Config(format!(
                "heartbeat_interval ({:?}) must be below session_timeout ({:?})",
                config.heartbeat_interval, config.session_timeout
            )));
        }
        let consumer = Consumer::with_cluster(consumer, Arc::clone(&cluster))?;
        let (tx, rx) = mpsc::channel(MERGE_QUEUE);
        let (_, heartbeat_stop) = mpsc::channel(1);
        Ok(Self {
            cluster,
            consumer,
            member: Member {
                group_id: config.group_id.clone(),
                member_id: String::new(),
                instance_id: config.group_instance_id.clone(),
                generation: -1,
            },
            config,
            topics: Vec::new(),
            coordinator: None,
            rejoin: false,
            assigned: BTreeMap::new(),
            live: HashMap::new(),
            next_id: 0,
            marked: HashMap::new(),
            committed: HashMap::new(),
            tx,
            rx,
            heartbeat: None,
            heartbeat_stop,
            next_commit: None,
            events: broadcast::channel(64).0,
            join_failures: 0,
            closed: false,
        })
    }

    /// Subscribes to `topics` (replacing any earlier subscription); the next
    /// [`next`](Self::next) joins the group, or rejoins it with the new topics.
    ///
    /// ```no_run
    /// # fn _demo(group: &mut rill_client::GroupConsumer) {
    /// group.subscribe(&["orders", "audit"]);
    /// # }
    /// ```
    pub fn subscribe<S: AsRef<str>>(&mut self, topics: &[S]) {
        let mut topics: Vec<String> = topics.iter().map(|t| t.as_ref().to_owned()).collect();
        topics.sort();
        topics.dedup();
        self.topics = topics;
        self.rejoin = true;
    }

    /// A receiver of this member's rebalance events, from now on. The channel holds 64
    /// events; a receiver that falls further behind loses the oldest (and is told so).
    ///
    /// ```no_run
    /// # async fn _demo(group: &rill_client::GroupConsumer) {
    /// let mut events = group.events();
    /// tokio::spawn(async move {
    ///     while let Ok(event) = events.recv().await {
    ///         println!("{event:?}");
    ///     }
    /// });
    /// # }
    /// ```
    pub fn events(&self) -> broadcast::Receiver<GroupEvent> {
        self.events.subscribe()
    }

    /// The partitions this member reads now, sorted.
    ///
    /// ```no_run
    /// # fn _demo(group: &rill_client::GroupConsumer) {
    /// for (topic, partition) in group.assignment() {
    ///     println!("{topic}/{partition}");
    /// }
    /// # }
    /// ```
    pub fn assignment(&self) -> Vec<(String, i32)> {
        self.assigned.keys().cloned().collect()
    }

    /// The member id the coordinator gave this member (empty before the first join).
    pub fn member_id(&self) -> &str {
        &self.member.member_id
    }

    /// The group generation this member is in (`-1` before the first join).
    pub fn generation(&self) -> i32 {
        self.member.generation
    }

    /// This member as a transactional producer's `send_offsets_to_transaction` names it, so
    /// that offsets committed in a transaction are refused once the group has moved on
    /// without this member.
    ///
    /// ```no_run
    /// # async fn _demo(group: &rill_client::GroupConsumer, producer: &rill_client::Producer) -> Result<(), rill_client::ClientError> {
    /// producer.send_offsets_to_transaction(&[("input", 0, 42)], group.group_metadata()).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn group_metadata(&self) -> GroupMetadata {
        GroupMetadata {
            group_id: self.member.group_id.clone(),
            generation_id: self.member.generation,
            member_id: self.member.member_id.clone(),
            group_instance_id: self.member.instance_id.clone(),
        }
    }

    /// Marks `record` as done: its offset + 1 is committed at the next commit. Records of
    /// partitions this member no longer owns are ignored (another member owns them now).
    ///
    /// ```no_run
    /// # async fn _demo(group: &mut rill_client::GroupConsumer) {
    /// if let Some(Ok(record)) = group.next().await {
    ///     group.mark(&record);
    /// }
    /// # }
    /// ```
    pub fn mark(&mut self, record: &ConsumerRecord) {
        let key = (record.topic.to_string(), record.partition);
        if self.assigned.contains_key(&key) {
            let next = record.offset.saturating_add(1);
            let entry = self.marked.entry(key).or_insert(next);
            *entry = (*entry).max(next);
        }
    }

    /// Commits the marked offsets not committed yet, now. A commit refused because the group
    /// is rebalancing (or dropped this member) makes the next `next` rejoin.
    ///
    /// ```no_run
    /// # async fn _demo(group: &mut rill_client::GroupConsumer) -> Result<(), rill_client::ClientError> {
    /// group.commit().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn commit(&mut self) -> Result<()> {
        self.commit_where(|_| true).await
    }

    async fn commit_where(&mut self, keep: impl Fn(&(String, i32)) -> bool) -> Result<()> {
        let due: Vec<((String, i32), i64)> = self
            .marked
            .iter()
            .filter(|(k, v)| keep(k) && self.committed.get(*k) != Some(*v))
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        if due.is_empty() {
            return Ok(());
        }
        let conn = match &self.coordinator {
            Some(conn) if !conn.is_closed() => Arc::clone(conn),
            _ => {
                self.coordinator = None;
                self.rejoin = true;
                return Err(ClientError::Kafka {
                    code: ErrorCode::CoordinatorNotAvailable,
                    context: format!("commit offsets of group '{}'", self.config.group_id),
                });
            }
        };
        let mut offsets: BTreeMap<String, BTreeMap<i32, i64>> = BTreeMap::new();
        for ((topic, partition), offset) in &due {
            let _ = offsets
                .entry(topic.clone())
                .or_default()
                .insert(*partition, *offset);
        }
        match coordinator::commit(&conn, &self.member, &offsets).await {
            Ok(()) => {
                self.committed.extend(due);
                Ok(())
            }
            Err(err) => {
                self.note_error(&err);
                Err(err)
            }
        }
    }

    fn note_error(&mut self, err: &ClientError) {
        if coordinator::needs_rejoin(err) {
            self.rejoin = true;
        }
        if err.code() == Some(ErrorCode::UnknownMemberId) {
            self.member.member_id.clear();
        }
        if coordinator::coordinator_lost(err) {
            self.coordinator = None;
            self.rejoin = true;
        }
    }

    /// The next record of any assigned partition; an error the member cannot get past by
    /// itself (an unknown group protocol, a refused session timeout, a partition consumer that
    /// stopped); or `None` once closed. Joins and rebalances happen inside, so this waits
    /// through them; it also runs the auto-commit.
    ///
    /// Cancelling the future (in a `select!` or a timeout) loses no record; a join it was in
    /// the middle of starts over at the next call.
    ///
    /// ```no_run
    /// # async fn _demo(group: &mut rill_client::GroupConsumer) {
    /// while let Some(record) = group.next().await {
    ///     match record {
    ///         Ok(record) => println!("{}/{}@{}", record.topic, record.partition, record.offset),
    ///         Err(err) => eprintln!("group consumer: {err}"),
    ///     }
    /// }
    /// # }
    /// ```
    pub async fn next(&mut self) -> Option<Result<ConsumerRecord>> {
        loop {
            if self.closed {
                return None;
            }
            if self.topics.is_empty() {
                return Some(Err(ClientError::Config(
                    "subscribe to at least one topic before calling next".to_owned(),
                )));
            }
            if self.rejoin {
                if let Err(err) = self.join().await {
                    if err.is_retriable() || coordinator::needs_rejoin(&err) {
                        let wait = JOIN_BACKOFF
                            .saturating_mul(1 << self.join_failures.min(8))
                            .min(JOIN_BACKOFF_MAX);
                        self.join_failures = self.join_failures.saturating_add(1);
                        tracing::debug!(group = %self.config.group_id, %err, ?wait, "join failed; retrying");
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    return Some(Err(err));
                }
                self.join_failures = 0;
            }
            let commit_at = self.next_commit;
            tokio::select! {
                item = self.rx.recv() => {
                    // `self` keeps a sender, so the queue never ends.
                    let (id, item) = item?;
                    let Some(key) = self.live.get(&id).cloned() else { continue };
                    match item {
                        Ok(record) => return Some(Ok(record)),
                        Err(err) => {
                            // That partition consumer ended; the partition stays idle until
                            // the next rebalance.
                            let _ = self.live.remove(&id);
                            if let Some(owned) = self.assigned.get(&key) {
                                owned.task.abort();
                            }
                            return Some(Err(err));
                        }
                    }
                }
                Some(err) = self.heartbeat_stop.recv() => {
                    self.note_error(&err);
                    self.rejoin = true;
                }
                () = sleep_until_some(commit_at) => {
                    self.next_commit = self.config.auto_commit_interval.map(|i| Instant::now() + i);
                    if let Err(err) = self.commit().await {
                        tracing::debug!(group = %self.config.group_id, %err, "auto-commit failed");
                    }
                }
            }
        }
    }

    /// Joins (or rejoins) the group and starts reading what it was given.
    async fn join(&mut self) -> Result<()> {
        if let Some(task) = self.heartbeat.take() {
            task.abort();
        }
        let cooperative = self.config.assignor.cooperative();
        if !cooperative {
            self.revoke(|_| true).await;
        }
        loop {
            let conn = match &self.coordinator {
                Some(conn) if !conn.is_closed() => Arc::clone(conn),
                _ => {
                    let conn = coordinator::connect(
                        &self.cluster,
                        &self.config.group_id,
                        self.config.rebalance_timeout,
                    )
                    .await?;
                    self.coordinator = Some(Arc::clone(&conn));
                    conn
                }
            };
            let subscription = Subscription {
                topics: self.topics.clone(),
                owned: group_by_topic(self.assigned.keys().cloned())
                    .into_iter()
                    .collect(),
            };
            let params = coordinator::JoinParams {
                session_timeout: self.config.session_timeout,
                rebalance_timeout: self.config.rebalance_timeout,
                protocol: self.config.assignor.name(),
                metadata: protocol::encode_subscription(&subscription, i16::from(cooperative)),
            };
            let joined = coordinator::join(&conn, &self.member, &params).await;
            let response = match joined {
                Ok(response) => response,
                Err(err) => {
                    self.note_error(&err);
                    return Err(err);
                }
            };
            let code = ErrorCode::from_code(response.error_code);
            if code == Some(ErrorCode::MemberIdRequired) {
                // KIP-394: the coordinator names us; join again with that id.
                self.member.member_id = response.member_id.to_string();
                continue;
            }
            if let Err(err) = ClientError::check(response.error_code, || {
                format!("join group '{}'", self.config.group_id)
            }) {
                self.note_error(&err);
                return Err(err);
            }
            self.member.member_id = response.member_id.to_string();
            self.member.generation = response.generation_id;
            let protocol = response
                .protocol_name
                .as_ref()
                .map_or_else(|| self.config.assignor.name().to_owned(), |p| p.to_string());
            let assignments = if response.leader == response.member_id && !response.skip_assignment
            {
                self.assign(&response, &protocol).await?
            } else {
                Vec::new()
            };
            let bytes = match coordinator::sync(&conn, &self.member, &protocol, assignments).await {
                Ok(bytes) => bytes,
                Err(err) => {
                    self.note_error(&err);
                    return Err(err);
                }
            };
            let assignment = protocol::decode_assignment(&bytes).ok_or_else(|| {
                ClientError::UnexpectedResponse {
                    addr: conn.addr().to_owned(),
                    api_key: rill_protocol::ApiKey::SyncGroup,
                }
            })?;
            self.rejoin = false;
            let new: Vec<(String, i32)> = assignment
                .iter()
                .flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), *p)))
                .collect();
            if cooperative {
                let gone: Vec<(String, i32)> = self
                    .assigned
                    .keys()
                    .filter(|k| !new.contains(k))
                    .cloned()
                    .collect();
                if !gone.is_empty() {
                    self.revoke(|k| gone.contains(k)).await;
                    // The partitions just given up go to their new owners in a second round.
                    self.rejoin = true;
                }
            }
            let (tx, rx) = mpsc::channel(1);
            self.heartbeat_stop = rx;
            self.heartbeat = Some(tokio::spawn(coordinator::heartbeat(
                Arc::clone(&conn),
                self.member.clone(),
                self.config.heartbeat_interval,
                self.config.session_timeout,
                tx,
            )));
            let added: Vec<(String, i32)> = new
                .into_iter()
                .filter(|k| !self.assigned.contains_key(k))
                .collect();
            self.start(&conn, added).await?;
            if self.next_commit.is_none() {
                self.next_commit = self.config.auto_commit_interval.map(|i| Instant::now() + i);
            }
            return Ok(());
        }
    }

    /// The leader's part: every member's assignment, encoded.
    async fn assign(
        &self,
        response: &rill_protocol::kafka_protocol::messages::JoinGroupResponse,
        protocol: &str,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        let mut members = Vec::with_capacity(response.members.len());
        for m in &response.members {
            let subscription = protocol::decode_subscription(&m.metadata).unwrap_or_else(|| {
                tracing::warn!(member = %m.member_id.as_str(), "undecodable subscription; assigning it nothing");
                Subscription::default()
            });
            members.push(assignor::Member {
                sort_key: m
                    .group_instance_id
                    .as_ref()
                    .map_or_else(|| m.member_id.to_string(), |id| id.to_string()),
                member_id: m.member_id.to_string(),
                subscription,
            });
        }
        let mut topics: Vec<&String> = members
            .iter()
            .flat_map(|m| &m.subscription.topics)
            .collect();
        topics.sort();
        topics.dedup();
        let mut counts = HashMap::new();
        for topic in topics {
            match self.cluster.topic_metadata(topic).await {
                Ok(meta) => {
                    let _ = counts.insert(topic.clone(), meta.partition_count());
                }
                // A topic that does not exist (yet) has nothing to assign.
                Err(err) if err.code() == Some(ErrorCode::UnknownTopicOrPartition) => {}
                Err(err) => return Err(err),
            }
        }
        let plan = match protocol {
            "roundrobin" => assignor::round_robin(&members, &counts),
            "cooperative-sticky" => assignor::cooperative_sticky(&members, &counts),
            _ => assignor::range(&members, &counts),
        };
        tracing::debug!(group = %self.config.group_id, ?plan, "assigned");
        Ok(plan
            .into_iter()
            .map(|(member, a)| (member, protocol::encode_assignment(&a)))
            .collect())
    }

    /// Starts reading `added`: from the committed offsets, else from `start`.
    async fn start(&mut self, conn: &Connection, added: Vec<(String, i32)>) -> Result<()> {
        if added.is_empty() {
            return Ok(());
        }
        let wanted = group_by_topic(added.iter().cloned());
        let committed = coordinator::fetch_offsets(conn, &self.config.group_id, &wanted).await;
        let committed = match committed {
            Ok(committed) => committed,
            Err(err) => {
                self.note_error(&err);
                self.rejoin = true;
                return Err(err);
            }
        };
        for key in &added {
            let offset = match committed.get(key) {
                Some(&at) => Offset::At(at),
                None => match self.config.start {
                    StartOffset::Oldest => Offset::Oldest,
                    StartOffset::Newest => Offset::Newest,
                },
            };
            let pc = match self.consumer.consume_partition(&key.0, key.1, offset).await {
                Ok(pc) => pc,
                Err(err) => {
                    // Try the whole join again later rather than read a partial assignment.
                    self.rejoin = true;
                    return Err(err);
                }
            };
            if let Some(&at) = committed.get(key) {
                let _ = self.committed.insert(key.clone(), at);
            }
            self.own(key.clone(), pc);
        }
        let _ = self.events.send(GroupEvent::Assigned(added));
        Ok(())
    }

    fn own(&mut self, key: (String, i32), mut pc: PartitionConsumer) {
        let id = self.next_id;
        self.next_id += 1;
        let tx = self.tx.clone();
        let task = tokio::spawn(async move {
            while let Some(item) = pc.next().await {
                let end = item.is_err();
                if tx.send((id, item)).await.is_err() || end {
                    break;
                }
            }
        });
        let _ = self.live.insert(id, key.clone());
        if let Some(old) = self.assigned.insert(key, Owned { id, task }) {
            old.task.abort();
            let _ = self.live.remove(&old.id);
        }
    }

    /// Commits the marks of the partitions `which` selects (errors are logged: the group may
    /// have moved on already), stops reading them and reports them revoked.
    async fn revoke(&mut self, which: impl Fn(&(String, i32)) -> bool) {
        let gone: Vec<(String, i32)> = self.assigned.keys().filter(|k| which(k)).cloned().collect();
        if gone.is_empty() {
            return;
        }
        if let Err(err) = self.commit_where(&which).await {
            tracing::debug!(group = %self.config.group_id, %err, "commit before revoking failed");
        }
        for key in &gone {
            if let Some(owned) = self.assigned.remove(key) {
                owned.task.abort();
                let _ = self.live.remove(&owned.id);
            }
            let _ = self.marked.remove(key);
            let _ = self.committed.remove(key);
        }
        let _ = self.events.send(GroupEvent::Revoked(gone));
    }

    /// Commits the marked offsets, stops reading and leaves the group (a static member,
    /// with `group_instance_id`, stays until its session times out, as in Kafka), so that the
    /// others take its partitions over at once. Errors are returned after everything was
    /// tried.
    ///
    /// ```no_run
    /// # async fn _demo(group: rill_client::GroupConsumer) -> Result<(), rill_client::ClientError> {
    /// group.close().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn close(mut self) -> Result<()> {
        let committed = self.commit().await;
        if let Some(task) = self.heartbeat.take() {
            task.abort();
        }
        self.closed = true;
        let gone: Vec<(String, i32)> = self.assigned.keys().cloned().collect();
        for (_, owned) in std::mem::take(&mut self.assigned) {
            owned.task.abort();
        }
        if !gone.is_empty() {
            let _ = self.events.send(GroupEvent::Revoked(gone));
        }
        let left = match (&self.coordinator, &self.member.instance_id) {
            (Some(conn), None) if !self.member.member_id.is_empty() => {
                coordinator::leave(conn, &self.member).await
            }
            _ => Ok(()),
        };
        committed.and(left)
    }
}

impl Drop for GroupConsumer {
    fn drop(&mut self) {
        if let Some(task) = self.heartbeat.take() {
            task.abort();
        }
        for owned in self.assigned.values() {
            owned.task.abort();
        }
    }
}

fn group_by_topic(partitions: impl Iterator<Item = (String, i32)>) -> Assignment {
    let mut out = Assignment::new();
    for (topic, partition) in partitions {
        out.entry(topic).or_default().push(partition);
    }
    for ps in out.values_mut() {
        ps.sort_unstable();
    }
    out
}

async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
