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

/// Everything the broker needs to run.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Where partition logs and metadata live.
    pub data_dir: PathBuf,
    /// `host:port` given to clients in Metadata; `None` uses the listener's address.
    pub advertised: Option<(String, u16)>,
    /// This broker's id (Kafka's `node.id`).
    pub node_id: i32,
    /// Partitions of auto-created topics and of CreateTopics with `num_partitions = -1`.
    pub num_partitions: i32,
    /// Create unknown topics when a client asks for their metadata (`auto.create.topics.enable`).
    pub auto_create_topics: bool,
    /// Defaults for every partition log, overridden per topic.
    pub log: LogConfig,
    /// `message.max.bytes`: the largest batch a produce request may carry.
    pub max_message_bytes: i32,
    /// `socket.request.max.bytes`: larger frames close the connection.
    pub max_request_bytes: usize,
    /// What `acks=all` waits for.
    pub ack_durability: AckDurability,
    /// How often partitions apply retention.
    pub retention_check_interval: Duration,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("rill-data"),
            advertised: None,
            node_id: 0,
            num_partitions: DEFAULT_NUM_PARTITIONS,
            auto_create_topics: true,
            log: LogConfig {
                flush: FlushPolicy::Never,
                ..LogConfig::default()
            },
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            ack_durability: AckDurability::Fsync,
            retention_check_interval: DEFAULT_RETENTION_CHECK_INTERVAL,
        }
    }
}
