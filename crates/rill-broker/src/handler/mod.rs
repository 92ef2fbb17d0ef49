//! One module per Kafka API.

pub(crate) mod acls;
pub(crate) mod broker_configs;
pub(crate) mod configs;
pub(crate) mod create_partitions;
pub(crate) mod create_topics;
pub(crate) mod delete_records;
pub(crate) mod delete_topics;
pub(crate) mod describe_cluster;
pub(crate) mod describe_log_dirs;
pub(crate) mod describe_quorum;
pub(crate) mod describe_topic_partitions;
pub(crate) mod elect_leaders;
pub(crate) mod fetch;
pub(crate) mod find_coordinator;
pub(crate) mod groups;
pub(crate) mod init_producer_id;
pub(crate) mod list_offsets;
pub(crate) mod metadata;
pub(crate) mod offset_for_leader_epoch;
pub(crate) mod offsets;
pub(crate) mod produce;
pub(crate) mod reassignments;
pub(crate) mod scram_credentials;
pub(crate) mod transactions;

use rill_protocol::StrBytes;
use rill_protocol::kafka_protocol::messages::TopicName;

/// Work on at least this many bytes of records (decompressing, checking, recompressing,
/// converting an old client's message set) runs on a blocking thread: gzip or zstd at this size
/// already takes longer than the hop, and a megabyte would hold up every connection on this async
/// worker for milliseconds. Below it the work is cheaper than the hop.
const OFFLOAD_BYTES: usize = 64 * 1024;

/// Runs CPU-bound `work` over `bytes` bytes of records: here when small, on a blocking thread
/// when large (see [`OFFLOAD_BYTES`]). `None` if that thread panicked.
pub(crate) async fn cpu_bound<T: Send + 'static>(
    bytes: usize,
    work: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    if bytes < OFFLOAD_BYTES {
        return Some(work());
    }
    tokio::task::spawn_blocking(work).await.ok()
}

/// A topic name for a response.
pub(crate) fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

/// Why a partition request cannot be served here, for the error message beside `code`.
pub(crate) fn not_here(code: rill_protocol::ErrorCode, topic: &str, partition: i32) -> String {
    match code {
        rill_protocol::ErrorCode::NotLeaderOrFollower => {
            format!("this broker does not lead partition {topic}-{partition}")
        }
        rill_protocol::ErrorCode::KafkaStorageError => {
            format!("the log of partition {topic}-{partition} could not be opened here")
        }
        _ => format!("topic '{topic}' has no partition {partition}"),
    }
}

/// An optional message for a response.
pub(crate) fn message(text: impl Into<String>) -> Option<StrBytes> {
    Some(StrBytes::from_string(text.into()))
}

/// What a principal may do to a resource, as Kafka answers `include_*_authorized_operations`:
/// a bit set of Kafka's `AclOperation` codes (bit `1 << code`). With no authorizer, Kafka
/// grants every operation that applies to the resource type, and so does Rill.
pub(crate) mod authorized {
    // Kafka's AclOperation codes (0 UNKNOWN, 1 ANY and 2 ALL are never in a set).
    const READ: u8 = 3;
    const WRITE: u8 = 4;
    const CREATE: u8 = 5;
    const DELETE: u8 = 6;
    const ALTER: u8 = 7;
    const DESCRIBE: u8 = 8;
    const CLUSTER_ACTION: u8 = 9;
    const DESCRIBE_CONFIGS: u8 = 10;
    const ALTER_CONFIGS: u8 = 11;
    const IDEMPOTENT_WRITE: u8 = 12;

    /// The answer when the request did not ask (Kafka's `-2147483648`).
    pub(crate) const NOT_REQUESTED: i32 = i32::MIN;

    const fn bits(operations: &[u8]) -> i32 {
        let mut set = 0;
        let mut i = 0;
        while i < operations.len() {
            set |= 1 << operations[i];
            i += 1;
        }
        set
    }

    /// A topic: read, write, create, delete, alter, describe, describe and alter configs.
    pub(crate) const TOPIC: i32 = bits(&[
        READ,
        WRITE,
        CREATE,
        DELETE,
        ALTER,
        DESCRIBE,
        DESCRIBE_CONFIGS,
        ALTER_CONFIGS,
    ]);
    /// The cluster: create, alter, describe, cluster action, describe and alter configs,
    /// idempotent write.
    pub(crate) const CLUSTER: i32 = bits(&[
        CREATE,
        ALTER,
        DESCRIBE,
        CLUSTER_ACTION,
        DESCRIBE_CONFIGS,
        ALTER_CONFIGS,
        IDEMPOTENT_WRITE,
    ]);
    /// A group: read, delete, describe, describe and alter configs (Kafka 4's set).
    pub(crate) const GROUP: i32 = bits(&[READ, DELETE, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS]);

    /// `set` when the request asked for it, else [`NOT_REQUESTED`].
    pub(crate) fn if_asked(asked: bool, set: i32) -> i32 {
        if asked { set } else { NOT_REQUESTED }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn the_sets_are_kafkas() {
            assert_eq!(TOPIC, 3576);
            assert_eq!(CLUSTER, 8096);
            assert_eq!(GROUP, 3400);
        }
    }
}
