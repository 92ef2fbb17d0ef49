//! The admin client: topics, partitions (their leaders and replicas' placement), configs,
//! offsets, consumer groups, users' SCRAM credentials and brokers' log dirs.
//!
//! [`Admin`] is a thin layer over a [`Cluster`]: each method builds one Kafka request, sends it
//! to the broker that must answer it and turns the answer into plain Rust values.
//!
//! - Topic changes (`CreateTopics`, `DeleteTopics`, `CreatePartitions`) and topic configs go to
//!   any broker: since Kafka 2.8 (KIP-590) every broker forwards them to the controller.
//! - `ElectLeaders` and partition reassignments (`AlterPartitionReassignments`,
//!   `ListPartitionReassignments`) go to any broker too.
//! - Broker configs and `DescribeLogDirs` go to that broker (each broker); `ListOffsets` to each partition's leader; group requests
//!   to the group's coordinator, found with `FindCoordinator`; `ListGroups` to every broker.
//!
//! # Errors
//! A failure of the whole call (no broker reachable, a broken connection) is the outer
//! `Err`. Where Kafka answers per item (per topic, per config resource, per partition, per
//! group), the batch methods return one `Result` per item **in the order asked**, and a failed
//! item is [`ClientError::Kafka`] whose `context` names the topic, partition or group (and adds
//! the broker's message when it sent one). Each batch method has a one-item form
//! ([`Admin::create_topic`] for [`Admin::create_topics`], ...) that folds the two together.
//!
//! # Retries
//! Reads (listing, describing, offsets) are retried after [`AdminConfig::retry_backoff`] until
//! [`AdminConfig::operation_timeout`] when the failure is transient: a broken connection, a
//! moved leader or coordinator, a coordinator still loading. Changes (create, delete, alter)
//! are sent once, because a change whose answer was lost may have happened: retrying a
//! `CreateTopics` could report `TOPIC_ALREADY_EXISTS` for a topic this very call created.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rill_protocol::{ErrorCode, StrBytes};
use tokio::time::Instant;

use crate::cluster::{ClientConfig, Cluster};
use crate::connection::Connection;
use crate::error::{ClientError, Result};

mod acls;
mod configs;
mod elect;
mod groups;
mod log_dirs;
mod offsets;
mod quorum;
mod reassign;
mod topics;
mod users;

pub use acls::{
    AclBinding, AclBindingFilter, AclOperation, AclPatternType, AclPermission, AclResourceType,
};
pub use configs::{AlterConfigOp, ConfigEntry, ConfigResource, ConfigSource};
pub use elect::{ElectionResult, ElectionType};
pub use groups::{CommittedOffset, GroupDescription, GroupListing, GroupMember, PartitionLag};
pub use log_dirs::{LogDirDescription, ReplicaInfo};
pub use offsets::{ListedOffset, OffsetSpec};
pub use quorum::{BrokerInfo, ClusterDescription, QuorumDescription, VoterState};
pub use reassign::{OngoingReassignment, Reassignment, ReassignmentResult};
pub use topics::{CreatedTopic, NewTopic, PartitionInfo, TopicDescription, TopicListing};
pub use users::{ScramAlteration, ScramCredentialInfo};

/// Default [`AdminConfig::operation_timeout`]: 30 s, Kafka's `request.timeout.ms`.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(30);
/// Default [`AdminConfig::retry_backoff`]: 100 ms, Kafka's `retry.backoff.ms`.
pub const DEFAULT_ADMIN_RETRY_BACKOFF: Duration = Duration::from_millis(100);

/// Admin client settings. Every field documents its default.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AdminConfig {
    /// How to reach the cluster.
    pub client: ClientConfig,
    /// How long the broker may take over a topic change (sent as the request's `timeout_ms`),
    /// and how long reads keep retrying transient failures (default
    /// [`DEFAULT_OPERATION_TIMEOUT`]). Each single request is also bounded by
    /// `client.connection.request_timeout`, which should not be shorter.
    pub operation_timeout: Duration,
    /// Wait between retries of a read (default [`DEFAULT_ADMIN_RETRY_BACKOFF`]).
    pub retry_backoff: Duration,
}

impl AdminConfig {
    /// The defaults above for this cluster.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use rill_client::{AdminConfig, ClientConfig};
    /// let mut config = AdminConfig::new(ClientConfig::new(["127.0.0.1:9092"]));
    /// config.operation_timeout = Duration::from_secs(10);
    /// # drop(config);
    /// ```
    pub fn new(client: ClientConfig) -> Self {
        Self {
            client,
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
            retry_backoff: DEFAULT_ADMIN_RETRY_BACKOFF,
        }
    }
}

/// The admin client (Kafka's `AdminClient`): create, describe and delete topics, partitions,
/// configs and consumer groups, and read offsets and lag.
///
/// Cheap to clone; clones share one [`Cluster`] (its connections and metadata). Unlike the
/// producers it starts no background task, so it can be built outside a runtime; its methods
/// need one (or use [`blocking::Admin`](crate::blocking::Admin)).
///
/// ```no_run
/// use rill_client::{Admin, AdminConfig, ClientConfig, NewTopic};
///
/// # async fn _demo() -> Result<(), rill_client::ClientError> {
/// let admin = Admin::new(AdminConfig::new(ClientConfig::new(["127.0.0.1:9092"])));
/// admin.create_topic(NewTopic::new("events", 3)).await?;
/// for topic in admin.list_topics().await? {
///     println!("{}", topic.name);
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Admin {
    cluster: Arc<Cluster>,
    config: Arc<AdminConfig>,
}

impl Admin {
    /// An admin client on a new [`Cluster`]; nothing is connected until the first call.
    /// Its metadata requests never create topics (`allow_auto_topic_creation` is turned off),
    /// so asking about a missing topic is `UNKNOWN_TOPIC_OR_PARTITION`, not a new topic.
    ///
    /// ```no_run
    /// # use rill_client::{Admin, AdminConfig, ClientConfig};
    /// let admin = Admin::new(AdminConfig::new(ClientConfig::new(["127.0.0.1:9092"])));
    /// # drop(admin);
    /// ```
    pub fn new(config: AdminConfig) -> Self {
        let mut client = config.client.clone();
        client.allow_auto_topic_creation = false;
        let cluster = Arc::new(Cluster::new(client));
        Self::with_cluster(config, cluster)
    }

    /// An admin client sharing `cluster`'s connections and metadata with producers or
    /// consumers (`config.client` is ignored). [`Admin::list_offsets`] and
    /// [`Admin::group_lag`] look leaders up through it, so with a cluster whose
    /// `allow_auto_topic_creation` is on they may create a topic they are asked about.
    ///
    /// ```no_run
    /// # use std::sync::Arc;
    /// # use rill_client::{Admin, AdminConfig, ClientConfig, Cluster};
    /// let client = ClientConfig::new(["127.0.0.1:9092"]);
    /// let cluster = Arc::new(Cluster::new(client.clone()));
    /// let admin = Admin::with_cluster(AdminConfig::new(client), cluster);
    /// # drop(admin);
    /// ```
    pub fn with_cluster(config: AdminConfig, cluster: Arc<Cluster>) -> Self {
        Self {
            cluster,
            config: Arc::new(config),
        }
    }

    /// The cluster this admin client talks to.
    ///
    /// ```no_run
    /// # fn _demo(admin: &rill_client::Admin) {
    /// println!("bootstrap {:?}", admin.cluster().config().bootstrap);
    /// # }
    /// ```
    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// The configuration this admin client was made with.
    ///
    /// ```no_run
    /// # fn _demo(admin: &rill_client::Admin) {
    /// println!("timeout {:?}", admin.config().operation_timeout);
    /// # }
    /// ```
    pub fn config(&self) -> &AdminConfig {
        &self.config
    }

    /// `operation_timeout` in milliseconds, as requests carry it.
    fn timeout_ms(&self) -> i32 {
        i32::try_from(self.config.operation_timeout.as_millis()).unwrap_or(i32::MAX)
    }

    /// Runs `op` until it succeeds, fails for good, or `operation_timeout` would pass before
    /// the next try.
    async fn retrying<T, F, Fut>(&self, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let deadline = Instant::now() + self.config.operation_timeout;
        loop {
            match op().await {
                Err(err)
                    if is_transient(&err)
                        && Instant::now() + self.config.retry_backoff < deadline =>
                {
                    tracing::debug!(%err, "admin request failed; retrying");
                    if err.invalidates_metadata() {
                        self.cluster.invalidate();
                    }
                    tokio::time::sleep(self.config.retry_backoff).await;
                }
                other => return other,
            }
        }
    }

    /// A connection to any broker (for requests any broker answers or forwards).
    async fn any(&self) -> Result<Arc<Connection>> {
        self.cluster.any_connection().await
    }
}

/// Whether a read is worth repeating: the failure says nothing about what was asked, only
/// about where or when it was asked. (`UNKNOWN_TOPIC_OR_PARTITION` is retriable for a
/// producer waiting on a new topic, but an admin asking about a missing topic wants to hear
/// so at once.)
fn is_transient(err: &ClientError) -> bool {
    match err {
        ClientError::Kafka { code, .. } => matches!(
            code,
            ErrorCode::NotLeaderOrFollower
                | ErrorCode::LeaderNotAvailable
                | ErrorCode::NotCoordinator
                | ErrorCode::CoordinatorNotAvailable
                | ErrorCode::CoordinatorLoadInProgress
                | ErrorCode::RequestTimedOut
        ),
        ClientError::Io { .. }
        | ClientError::ConnectionClosed { .. }
        | ClientError::NoBrokerAvailable { .. } => true,
        _ => false,
    }
}

/// `Ok(())` for no error; otherwise the code with `context`, plus the broker's message when it
/// sent one.
fn check(code: i16, message: Option<&StrBytes>, context: impl FnOnce() -> String) -> Result<()> {
    ClientError::check(code, || match message.filter(|m| !m.is_empty()) {
        Some(message) => format!("{} ({message})", context()),
        None => context(),
    })
}

/// The error for an item the broker left out of its answer: `what` names it (`"topic 'a'"`).
fn missing(api_key: rill_protocol::ApiKey, what: &str) -> ClientError {
    ClientError::Kafka {
        code: ErrorCode::UnknownServerError,
        context: format!("the {api_key:?} answer has no result for {what}"),
    }
}

/// `Some` unless the string is empty.
fn non_empty(s: &StrBytes) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}
