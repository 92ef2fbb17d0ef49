//! Broker settings, with Kafka's defaults where Kafka has one.

use std::path::PathBuf;
use std::time::Duration;

use rill_log::{FlushPolicy, LogConfig};

/// Kafka's `message.max.bytes` default: the largest record batch a produce may carry.
pub const DEFAULT_MAX_MESSAGE_BYTES: i32 = 1_048_588;
/// Kafka's `socket.request.max.bytes` default: the largest request frame, 100 MiB.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 100 * 1024 * 1024;
/// Kafka's `num.partitions` default: partitions of an auto-created topic.
pub const DEFAULT_NUM_PARTITIONS: i32 = 1;
/// Kafka's `offsets.topic.num.partitions` default.
pub const DEFAULT_OFFSETS_PARTITIONS: i32 = 50;

/// Kafka's `offsets.retention.minutes` default: seven days.
pub const DEFAULT_OFFSETS_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// `rill.max.partitions` default: partitions one broker may hold.
pub const DEFAULT_MAX_PARTITIONS: usize = 100_000;
/// Kafka's `log.retention.check.interval.ms` default: five minutes.
pub const DEFAULT_RETENTION_CHECK_INTERVAL: Duration = Duration::from_secs(300);

/// How the broker answers `acks=all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AckDurability {
    /// `acks=all` is answered once the batch is fsynced (one fsync covers every batch that
    /// arrived meanwhile). Acknowledged records survive power loss.
    #[default]
    Fsync,
    /// Kafka's own behaviour: `acks=all` is answered once the batch is in the page cache (with one
    /// replica, acks=all means acks=1). Acknowledged records survive a process crash, not a power
    /// loss; the flush policy decides when data reaches the disk.
    PageCache,
}

/// The log cleaner's settings (Kafka's `log.cleaner.*`), for compacted topics.
#[derive(Debug, Clone, PartialEq)]
pub struct CleanerConfig {
    /// `log.cleaner.enable`: whether compacted topics are cleaned at all.
    pub enable: bool,
    /// `log.cleaner.threads`: the threads that clean, one log each at a time.
    pub threads: usize,
    /// `log.cleaner.dedupe.buffer.size`: bytes for the key maps of all the threads together.
    pub dedupe_buffer_size: usize,
    /// `log.cleaner.io.max.bytes.per.second`: the bytes all the threads together read and
    /// write per second (infinite: no limit).
    pub io_max_bytes_per_second: f64,
    /// `log.cleaner.backoff.ms`: how long a thread sleeps when no log needs cleaning.
    pub backoff: Duration,
}

impl Default for CleanerConfig {
    /// Kafka's defaults.
    fn default() -> Self {
        Self {
            enable: true,
            threads: 1,
            dedupe_buffer_size: 128 << 20,
            io_max_bytes_per_second: f64::INFINITY,
            backoff: Duration::from_secs(15),
        }
    }
}

/// The MQTT listeners' settings (Rill's own: Kafka has no MQTT).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttConfig {
    /// The largest packet a client may send (its remaining length): a larger one closes the
    /// connection before any of it is buffered (5.0: DISCONNECT 0x95 first). Announced to 5.0
    /// clients in CONNACK.
    pub max_packet_size: u32,
    /// How long a new connection may take to send its CONNECT.
    pub connect_timeout: Duration,
    /// MQTT topic filters mapped to Kafka topics, tried in order; an MQTT topic no filter
    /// matches goes to the Kafka topic its first level names.
    pub topic_map: Vec<(String, String)>,
    /// The QoS 1 and 2 publishes a client may have unacknowledged (5.0 Receive Maximum; a 3.1.1
    /// client over it is read no further until some are acknowledged).
    pub receive_maximum: u16,
    /// The topic aliases a 5.0 client may set (Topic Alias Maximum).
    pub topic_alias_maximum: u16,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            max_packet_size: 1 << 20,
            connect_timeout: Duration::from_secs(10),
            topic_map: Vec::new(),
            receive_maximum: 256,
            topic_alias_maximum: 64,
        }
    }
}

/// Everything the broker needs to run.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Where partition logs and metadata live.
    pub data_dir: PathBuf,
    /// This broker's id (Kafka's `node.id`).
    pub node_id: i32,
    /// `broker.rack`: the rack (or zone) clients are told this broker is in.
    pub rack: Option<String>,
    /// Partitions of auto-created topics and of CreateTopics with `num_partitions = -1`.
    pub num_partitions: i32,
    /// Create unknown topics when a client asks for their metadata (`auto.create.topics.enable`).
    pub auto_create_topics: bool,
    /// Defaults for every partition log, overridden per topic.
    pub log: LogConfig,
    /// `message.max.bytes`: the largest batch a produce request may carry.
    pub max_message_bytes: i32,
    /// `min.insync.replicas`: the default of topics' own. Above 1, `acks=all` produces are refused
    /// with NOT_ENOUGH_REPLICAS, since every partition has one replica.
    pub min_insync_replicas: i32,
    /// `socket.request.max.bytes`: larger frames close the connection.
    pub max_request_bytes: usize,
    /// What `acks=all` waits for.
    pub ack_durability: AckDurability,
    /// How often partitions apply retention.
    pub retention_check_interval: Duration,
    /// `group.initial.rebalance.delay.ms`: how long the first rebalance of an empty group waits
    /// for more members.
    pub group_initial_rebalance_delay: Duration,
    /// `group.min.session.timeout.ms` and `group.max.session.timeout.ms`.
    pub group_session_timeout_range: (Duration, Duration),
    /// `offsets.retention.minutes`: how long the offsets of a group without members are kept.
    pub offsets_retention: Duration,
    /// How often expired offsets are removed and the offsets log is compacted.
    pub group_housekeeping_interval: Duration,
    /// `offsets.topic.num.partitions`: the partitions of `__consumer_offsets`, which spread the
    /// groups (by a hash of their id) over the brokers. A data directory keeps the count it was
    /// first written with.
    pub offsets_partitions: i32,
    /// `offsets.topic.replication.factor`: the replicas of each partition of
    /// `__consumer_offsets`, capped at the cluster's size (its voters, or the live brokers if
    /// more): 3 on a cluster of three or more, 1 on one node.
    pub offsets_replication_factor: i32,
    /// `transaction.state.log.num.partitions`: the partitions of `__transaction_state`, which
    /// spread the transactional ids (by a hash of the id) over the brokers.
    pub transaction_partitions: i32,
    /// `transaction.state.log.replication.factor`: the replicas of each partition of
    /// `__transaction_state`, capped as `offsets_replication_factor` is.
    pub transaction_replication_factor: i32,
    /// `transaction.max.timeout.ms`: the longest `transaction.timeout.ms` a producer may ask
    /// for (INVALID_TRANSACTION_TIMEOUT above it).
    pub transaction_max_timeout_ms: i32,
    /// `transaction.version`: the level of Kafka's transaction feature announced in
    /// ApiVersions (0 to 2); clients of level 2 bump the epoch at every transaction's end.
    pub transaction_version: i16,
    /// `rill.storage.threads`: the threads that run the partitions' owners; 0 is one per core.
    pub storage_threads: usize,
    /// The log cleaner (`log.cleaner.*`).
    pub cleaner: CleanerConfig,
    /// The MQTT listeners' settings.
    pub mqtt: MqttConfig,
    /// `rill.max.open.files`: the most segment files kept open at once; 0 is half the process's
    /// descriptor limit.
    pub max_open_files: usize,
    /// `rill.max.partitions`: the most partitions the broker holds; creating more is refused.
    pub max_partitions: usize,
    /// `controller.quorum.voters`: the metadata quorum's members; empty for a cluster of this
    /// broker alone.
    pub voters: crate::Voters,
    /// Where the controller listener (the quorum's traffic) binds; `None` uses this node's
    /// address in `voters`.
    pub controller_listen: Option<String>,
    /// `broker.session.timeout.ms`: a broker not heard from for this long is fenced and its
    /// partitions lose their leader until it returns.
    pub broker_session_timeout: Duration,
    /// `replica.lag.time.max.ms`: a follower not caught up with its leader for this long is
    /// out of the in-sync replicas.
    pub replica_lag_time_max: Duration,
    /// `metadata.log.max.record.bytes.between.snapshots`: bytes of metadata entries applied
    /// after which the image is snapshotted and the metadata log compacted.
    pub metadata_snapshot_bytes: u64,
    /// How SASL listeners authenticate.
    pub sasl: crate::SaslConfig,
    /// `--bootstrap-user`: a user given SCRAM credentials for this password at start.
    pub bootstrap_user: Option<crate::BootstrapUser>,
    /// `authorizer.class.name`, `super.users`, `allow.everyone.if.no.acl.found`: off by default.
    pub authorizer: crate::AuthorizerConfig,
}

impl BrokerConfig {
    /// The number of storage threads to start.
    pub fn storage_threads(&self) -> usize {
        match self.storage_threads {
            0 => std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            n => n,
        }
    }

    /// The address of the controller listener, when the quorum has other voters.
    pub fn controller_address(&self) -> Option<String> {
        if self.voters.len() < 2 && self.controller_listen.is_none() {
            return None;
        }
        self.controller_listen.clone().or_else(|| {
            self.voters
                .address(self.node_id)
                .map(|(host, port)| format!("{host}:{port}"))
        })
    }

    /// The cap of the segment descriptor cache.
    pub fn max_open_files(&self) -> usize {
        match self.max_open_files {
            0 => (crate::descriptor_limit() / 2).max(64),
            n => n,
        }
    }
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("rill-data"),
            node_id: 0,
            rack: None,
            num_partitions: DEFAULT_NUM_PARTITIONS,
            auto_create_topics: true,
            log: LogConfig {
                flush: FlushPolicy::Never,
                ..LogConfig::default()
            },
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            min_insync_replicas: 1,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            ack_durability: AckDurability::Fsync,
            retention_check_interval: DEFAULT_RETENTION_CHECK_INTERVAL,
            group_initial_rebalance_delay: Duration::from_secs(3),
            group_session_timeout_range: (Duration::from_secs(6), Duration::from_secs(30 * 60)),
            offsets_retention: DEFAULT_OFFSETS_RETENTION,
            group_housekeeping_interval: Duration::from_secs(600),
            offsets_partitions: DEFAULT_OFFSETS_PARTITIONS,
            offsets_replication_factor: 3,
            transaction_partitions: 50,
            transaction_replication_factor: 3,
            transaction_max_timeout_ms: 900_000,
            transaction_version: 2,
            storage_threads: 0,
            cleaner: CleanerConfig::default(),
            mqtt: MqttConfig::default(),
            max_open_files: 0,
            max_partitions: DEFAULT_MAX_PARTITIONS,
            voters: crate::Voters::default(),
            controller_listen: None,
            broker_session_timeout: Duration::from_secs(9),
            replica_lag_time_max: Duration::from_secs(30),
            metadata_snapshot_bytes: 20 << 20,
            sasl: crate::SaslConfig::default(),
            bootstrap_user: None,
            authorizer: crate::AuthorizerConfig::default(),
        }
    }
}
