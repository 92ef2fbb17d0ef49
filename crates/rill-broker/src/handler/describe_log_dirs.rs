//! DescribeLogDirs: the broker's one data directory (`log_dir` is its absolute path) with the
//! size and lag of each partition held here and, from v4, its file system's total and usable
//! bytes. Only partitions held here are reported, as Kafka does: a topic or partition asked for
//! that this broker does not hold is left out, and so is a topic with none to report.
//! `__consumer_offsets` (the group coordinator's logs) is not reported.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use rill_protocol::ErrorCode;
use rill_protocol::StrBytes;
use rill_protocol::kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use rill_protocol::kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use rill_protocol::kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse};

use crate::broker::{Broker, Topic};

pub(crate) async fn handle(
    broker: &Broker,
    req: DescribeLogDirsRequest,
) -> DescribeLogDirsResponse {
    let configured = broker.config.data_dir.clone();
    let dir = std::path::absolute(&configured).unwrap_or(configured);
    // The probe touches the disk (a hung mount would hold the task), so not on this worker.
    let probe = dir.clone();
    let space = tokio::task::spawn_blocking(move || space_of(&probe))
        .await
        .unwrap_or_else(|err| Err(std::io::Error::other(err.to_string())));
    let log_dir = StrBytes::from_string(dir.to_string_lossy().into_owned());
    let result = match space {
        Ok((total, usable)) => DescribeLogDirsResult::default()
            .with_log_dir(log_dir)
            .with_topics(topics(broker, req.topics.as_deref()))
            .with_total_bytes(total)
            .with_usable_bytes(usable),
        Err(err) => {
            tracing::warn!(dir = %dir.display(), %err, "cannot describe the data dir");
            DescribeLogDirsResult::default()
                .with_log_dir(log_dir)
                .with_error_code(ErrorCode::KafkaStorageError.code())
        }
    };
    DescribeLogDirsResponse::default().with_results(vec![result])
}

/// The partitions to report, by topic name and index: every one held here (`asked` null), or
/// those asked for that are held here, each once.
fn topics(broker: &Broker, asked: Option<&[DescribableLogDirTopic]>) -> Vec<DescribeLogDirsTopic> {
    let Some(asked) = asked else {
        return broker
            .all_topics()
            .iter()
            .filter_map(|topic| {
                let indices = topic.held_partitions().map(|p| p.index).collect();
                described(broker, topic, &indices)
            })
            .collect();
    };
    let mut wanted: BTreeMap<&str, BTreeSet<i32>> = BTreeMap::new();
    for t in asked {
        wanted
            .entry(t.topic.0.as_str())
            .or_default()
            .extend(t.partitions.iter().copied());
    }
    wanted
        .into_iter()
        .filter_map(|(name, indices)| described(broker, &*broker.topic(name)?, &indices))
        .collect()
}

/// A compacted partition's dirty ratio, as the log cleaner last saw it.
fn dirty_ratio(broker: &Broker, topic: &Topic, index: i32) -> Option<f64> {
    if !topic.config.cleanup.compact {
        return None;
    }
    broker.cleaner.dirty_ratio(&(topic.name.clone(), index))
}

/// `topic` with those of `indices` held here, in index order; `None` if it has none.
fn described(
    broker: &Broker,
    topic: &Topic,
    indices: &BTreeSet<i32>,
) -> Option<DescribeLogDirsTopic> {
    let partitions: Vec<DescribeLogDirsPartition> = indices
        .iter()
        .filter_map(|&index| {
            let offsets = topic.partition(index)?.offsets();
            let mut described = DescribeLogDirsPartition::default()
                .with_partition_index(index)
                .with_partition_size(i64::try_from(offsets.size_bytes).unwrap_or(i64::MAX))
                // Kafka's lag of the log end behind the high watermark: 0 for a leader.
                // Replication sets a follower's here.
                .with_offset_lag(0)
                .with_is_future_key(false);
            if let Some(ratio) = dirty_ratio(broker, topic, index) {
                // A field of Rill's own, in a tag Kafka's clients skip (tagged fields, v2+).
                let _ = described.unknown_tagged_fields.insert(
                    rill_protocol::DIRTY_RATIO_TAG,
                    bytes::Bytes::copy_from_slice(&ratio.to_be_bytes()),
                );
            }
            Some(described)
        })
        .collect();
    (!partitions.is_empty()).then(|| {
        DescribeLogDirsTopic::default()
            .with_name(super::topic_name(&topic.name))
            .with_partitions(partitions)
    })
}

/// The file system's total and usable (unprivileged) bytes under `dir`, as Java's `FileStore`
/// reports them; an error if the dir cannot be read, which Kafka reports as an offline dir.
fn space_of(dir: &Path) -> std::io::Result<(i64, i64)> {
    drop(std::fs::read_dir(dir)?);
    let (blocks, available, fragment) = statvfs(dir)?;
    let bytes = |n: u64| i64::try_from(n.saturating_mul(fragment)).unwrap_or(i64::MAX);
    Ok((bytes(blocks), bytes(available)))
}

/// `statvfs(2)`: (blocks, blocks available to unprivileged users, fragment size).
#[expect(unsafe_code, reason = "libc has no safe statvfs")]
#[allow(
    clippy::useless_conversion,
    reason = "the fields are u64 here, narrower on 32-bit targets"
)]
fn statvfs(dir: &Path) -> std::io::Result<(u64, u64, u64)> {
    use std::os::unix::ffi::OsStrExt as _;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|err| std::io::Error::new(std::io::ErrorKind::InvalidInput, err))?;
    let mut out = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is NUL-terminated and outlives the call; `out` is valid for writing one
    // `statvfs`.
    if unsafe { libc::statvfs(path.as_ptr(), out.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it filled `out`.
    let s = unsafe { out.assume_init() };
    Ok((
        u64::from(s.f_blocks),
        u64::from(s.f_bavail),
        u64::from(s.f_frsize),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn space_of_a_dir_is_positive_and_usable_within_total() {
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let (total, usable) = space_of(&dir).unwrap_or((-1, -1));
        assert!(total > 0, "{total}");
        assert!((0..=total).contains(&usable), "{usable} of {total}");
    }

    #[test]
    fn a_missing_dir_is_an_error() {
        assert!(space_of(Path::new("/nonexistent/rill-data")).is_err());
    }
}
