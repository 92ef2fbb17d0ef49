//! `DescribeLogDirs`: each broker's data directories and the partitions it holds in them, with
//! their sizes on disk. Every broker answers for itself only, so the question goes to each.

use std::collections::BTreeMap;

use rill_protocol::ErrorCode;
use rill_protocol::kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use rill_protocol::kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse};

use super::Admin;
use crate::error::{ClientError, Result};

/// One data directory of one broker, as [`Admin::describe_log_dirs`] reports it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct LogDirDescription {
    /// The broker's node id.
    pub broker: i32,
    /// The directory's absolute path on the broker.
    pub path: String,
    /// Why the broker could not describe the directory (`KAFKA_STORAGE_ERROR`: offline or
    /// unreadable); `None` when it could.
    pub error: Option<ErrorCode>,
    /// Bytes of the file system holding it; `None` when unknown (brokers before `DescribeLogDirs`
    /// v4, or one that could not ask).
    pub total_bytes: Option<i64>,
    /// Bytes of it still usable; `None` when unknown, as for `total_bytes`.
    pub usable_bytes: Option<i64>,
    /// The partitions held there (of those asked about), by topic then partition.
    pub replicas: Vec<ReplicaInfo>,
}

/// One partition's copy in a data directory.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ReplicaInfo {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// Bytes of its log segments.
    pub size_bytes: i64,
    /// How far its log end is behind the partition's high watermark (0 for the leader; -1:
    /// unknown).
    pub offset_lag: i64,
    /// Whether this is the future copy of a move between directories (`AlterReplicaLogDirs`).
    pub is_future: bool,
    /// A compacted partition's dirty ratio, as a Rill broker's log cleaner last saw it (a
    /// field of Rill's own; `None` from other brokers and for other partitions).
    pub dirty_ratio: Option<f64>,
}

impl Admin {
    /// The data directories of every live broker (or of `brokers`), with the partitions each
    /// holds there: all of them (`partitions` `None`), or those of `partitions` it holds (one it
    /// does not hold, or that does not exist, is simply not listed). One entry per broker and
    /// directory, by broker id. A broker that refuses the whole request fails the call (e.g.
    /// `CLUSTER_AUTHORIZATION_FAILED` without DESCRIBE on the cluster; brokers answering
    /// before v3 refuse with no directories instead). Retried within `operation_timeout`.
    ///
    /// ```no_run
    /// # async fn _demo(admin: &rill_client::Admin) -> Result<(), rill_client::ClientError> {
    /// for dir in admin.describe_log_dirs(None, Some(&[("orders", 0), ("orders", 1)])).await? {
    ///     for r in &dir.replicas {
    ///         println!("{} {} {}-{} {}", dir.broker, dir.path, r.topic, r.partition, r.size_bytes);
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn describe_log_dirs<S: AsRef<str> + Sync>(
        &self,
        brokers: Option<&[i32]>,
        partitions: Option<&[(S, i32)]>,
    ) -> Result<Vec<LogDirDescription>> {
        let ids: Vec<i32> = match brokers {
            Some(ids) => ids.to_vec(),
            None => self
                .describe_cluster()
                .await?
                .brokers
                .iter()
                .map(|b| b.id)
                .collect(),
        };
        let request = DescribeLogDirsRequest::default().with_topics(partitions.map(|partitions| {
            let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
            for (topic, partition) in partitions {
                by_topic.entry(topic.as_ref()).or_default().push(*partition);
            }
            by_topic
                .into_iter()
                .map(|(topic, partitions)| {
                    DescribableLogDirTopic::default()
                        .with_topic(super::topics::topic_name(topic))
                        .with_partitions(partitions)
                })
                .collect()
        }));
        let mut dirs = Vec::new();
        for id in ids {
            let response = self
                .retrying(|| {
                    let request = request.clone();
                    async move {
                        let connection = self.cluster.broker_connection(id).await?;
                        connection.request(request).await
                    }
                })
                .await?;
            dirs.extend(dirs_of(id, response)?);
        }
        Ok(dirs)
    }
}

/// One broker's answer as descriptions, sorted by path, topic and partition.
fn dirs_of(broker: i32, response: DescribeLogDirsResponse) -> Result<Vec<LogDirDescription>> {
    ClientError::check(response.error_code, || {
        format!("describe the log dirs of broker {broker}")
    })?;
    let known = |n: i64| (n >= 0).then_some(n);
    let mut dirs: Vec<LogDirDescription> = response
        .results
        .into_iter()
        .map(|d| {
            let mut replicas: Vec<ReplicaInfo> = d
                .topics
                .iter()
                .flat_map(|t| {
                    t.partitions.iter().map(|p| ReplicaInfo {
                        topic: t.name.0.to_string(),
                        partition: p.partition_index,
                        size_bytes: p.partition_size,
                        offset_lag: p.offset_lag,
                        is_future: p.is_future_key,
                        dirty_ratio: p
                            .unknown_tagged_fields
                            .get(&rill_protocol::DIRTY_RATIO_TAG)
                            .and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok())
                            .map(f64::from_be_bytes),
                    })
                })
                .collect();
            replicas.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
            LogDirDescription {
                broker,
                path: d.log_dir.to_string(),
                error: (d.error_code != 0).then(|| {
                    ErrorCode::from_code(d.error_code).unwrap_or(ErrorCode::UnknownServerError)
                }),
                total_bytes: known(d.total_bytes),
                usable_bytes: known(d.usable_bytes),
                replicas,
            }
        })
        .collect();
    dirs.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(dirs)
}
