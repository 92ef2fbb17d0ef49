//! `ListOffsets`: a partition's earliest and latest offsets, or the offset at a time.

use std::collections::BTreeMap;

use rill_protocol::ErrorCode;
use rill_protocol::kafka_protocol::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsTopic,
};
use rill_protocol::kafka_protocol::messages::{ListOffsetsRequest, TopicName};
use rill_protocol::{ApiKey, StrBytes};
use tokio::time::Instant;

use super::{Admin, check, is_transient, missing};
use crate::consumer::IsolationLevel;
use crate::error::{ClientError, Result};

/// Which offset [`Admin::list_offsets`] asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OffsetSpec {
    /// The log start offset: the first record still kept.
    Earliest,
    /// The log end offset (the high watermark): the offset the next record will get, so the
    /// number of records ever written when nothing was deleted.
    Latest,
    /// The first offset whose record timestamp is at or after this many milliseconds since the
    /// epoch; the answer's offset is `-1` when there is none.
    Timestamp(i64),
}

impl OffsetSpec {
    /// The `timestamp` field of the request: -2 earliest, -1 latest, or the time.
    fn wire(self) -> i64 {
        match self {
            Self::Earliest => -2,
            Self::Latest => -1,
            Self::Timestamp(t) => t,
        }
    }
}

/// One partition's answer to [`Admin::list_offsets`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListedOffset {
    /// The partition.
    pub partition: i32,
    /// The offset asked for (`-1`: no record at or after the timestamp).
    pub offset: i64,
    /// The timestamp of the record at `offset` for [`OffsetSpec::Timestamp`]; `-1` otherwise
    /// or when unknown.
    pub timestamp: i64,
    /// The leader epoch of that record, if the broker said (`ListOffsets` v4+).
    pub leader_epoch: Option<i32>,
}

impl Admin {
    /// Lists one offset per `(topic, partition)` from each partition's leader: earliest,
    /// latest, or the first at a time (read-uncommitted). One result per partition, in the order
    /// given; an error names the topic and partition (`UNKNOWN_TOPIC_OR_PARTITION` for one
    /// that does not exist). Moved leaders are retried within `operation_timeout`.
    ///
    /// ```no_run
    /// # async fn _demo(admin: &rill_client::Admin) -> Result<(), rill_client::ClientError> {
    /// use rill_client::OffsetSpec;
    /// let partitions = [("events", 0), ("events", 1)];
    /// for result in admin.list_offsets(&partitions, OffsetSpec::Latest).await? {
    ///     let listed = result?;
    ///     println!("partition {} ends at {}", listed.partition, listed.offset);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn list_offsets<S: AsRef<str> + Sync>(
        &self,
        partitions: &[(S, i32)],
        spec: OffsetSpec,
    ) -> Result<Vec<Result<ListedOffset>>> {
        self.list_offsets_isolated(partitions, spec, IsolationLevel::ReadUncommitted)
            .await
    }

    /// [`list_offsets`](Self::list_offsets) as a consumer at `isolation` sees them (Kafka's
    /// `ListOffsetsOptions.isolationLevel`): under [`IsolationLevel::ReadCommitted`],
    /// [`OffsetSpec::Latest`] is the last stable offset, where the oldest open transaction
    /// begins, rather than the high watermark.
    ///
    /// ```no_run
    /// # async fn _demo(admin: &rill_client::Admin) -> Result<(), rill_client::ClientError> {
    /// use rill_client::{IsolationLevel, OffsetSpec};
    /// let stable = admin
    ///     .list_offsets_isolated(&[("events", 0)], OffsetSpec::Latest, IsolationLevel::ReadCommitted)
    ///     .await?;
    /// println!("{:?}", stable[0]);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn list_offsets_isolated<S: AsRef<str> + Sync>(
        &self,
        partitions: &[(S, i32)],
        spec: OffsetSpec,
        isolation: IsolationLevel,
    ) -> Result<Vec<Result<ListedOffset>>> {
        let asked: Vec<(&str, i32)> = partitions.iter().map(|(t, p)| (t.as_ref(), *p)).collect();
        let mut results: Vec<Option<Result<ListedOffset>>> = vec![None; asked.len()];
        let deadline = Instant::now() + self.config.operation_timeout;
        loop {
            let pending: Vec<usize> = (0..asked.len())
                .filter(|&i| results.get(i).is_some_and(Option::is_none))
                .collect();
            if pending.is_empty() {
                break;
            }
            let round = self
                .list_offsets_round(&asked, &pending, spec, isolation)
                .await;
            let retry_allowed = Instant::now() + self.config.retry_backoff < deadline;
            let mut retrying = false;
            for (i, result) in round {
                match result {
                    Err(err) if retry_allowed && is_transient(&err) => {
                        tracing::debug!(%err, "list offsets failed; retrying");
                        retrying = true;
                    }
                    other => {
                        if let Some(slot) = results.get_mut(i) {
                            *slot = Some(other);
                        }
                    }
                }
            }
            if retrying {
                self.cluster.invalidate();
                tokio::time::sleep(self.config.retry_backoff).await;
            }
        }
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(missing(ApiKey::ListOffsets, "a partition"))))
            .collect())
    }

    /// One try at the `pending` partitions: each one's result, by index into `asked`.
    async fn list_offsets_round(
        &self,
        asked: &[(&str, i32)],
        pending: &[usize],
        spec: OffsetSpec,
        isolation: IsolationLevel,
    ) -> Vec<(usize, Result<ListedOffset>)> {
        let mut out = Vec::with_capacity(pending.len());
        // Group by leader: one request per broker.
        let mut by_leader: BTreeMap<i32, Vec<usize>> = BTreeMap::new();
        for &i in pending {
            let Some(&(topic, partition)) = asked.get(i) else {
                continue;
            };
            match self.leader_of(topic, partition).await {
                Ok(leader) => by_leader.entry(leader).or_default().push(i),
                Err(err) => out.push((i, Err(err))),
            }
        }
        for (leader, indexes) in by_leader {
            let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
            for &i in &indexes {
                if let Some(&(topic, partition)) = asked.get(i) {
                    topics.entry(topic).or_default().push(partition);
                }
            }
            let request = ListOffsetsRequest::default()
                .with_replica_id((-1).into())
                .with_isolation_level(isolation.value())
                .with_timeout_ms(self.timeout_ms())
                .with_topics(
                    topics
                        .iter()
                        .map(|(topic, partitions)| {
                            ListOffsetsTopic::default()
                                .with_name(TopicName(StrBytes::from_string((*topic).to_owned())))
                                .with_partitions(
                                    partitions
                                        .iter()
                                        .map(|&p| {
                                            ListOffsetsPartition::default()
                                                .with_partition_index(p)
                                                .with_timestamp(spec.wire())
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                );
            let response = match self.cluster.broker_connection(leader).await {
                Ok(conn) => conn
                    .request(request)
                    .await
                    .map(|response| (response, conn.version_for(ApiKey::ListOffsets))),
                Err(err) => Err(err),
            };
            for i in indexes {
                let Some(&(topic, partition)) = asked.get(i) else {
                    continue;
                };
                let result = match &response {
                    Err(err) => Err(err.clone()),
                    Ok((response, version)) => response
                        .topics
                        .iter()
                        .filter(|t| t.name.0.as_str() == topic)
                        .flat_map(|t| &t.partitions)
                        .find(|p| p.partition_index == partition)
                        .ok_or_else(|| {
                            missing(
                                ApiKey::ListOffsets,
                                &format!("topic '{topic}' partition {partition}"),
                            )
                        })
                        .and_then(|p| {
                            check(p.error_code, None, || {
                                format!("list offsets of topic '{topic}' partition {partition}")
                            })?;
                            let with_epoch = version.as_ref().is_ok_and(|&v| v >= 4);
                            Ok(ListedOffset {
                                partition,
                                offset: p.offset,
                                timestamp: p.timestamp,
                                leader_epoch: (with_epoch && p.leader_epoch >= 0)
                                    .then_some(p.leader_epoch),
                            })
                        }),
                };
                out.push((i, result));
            }
        }
        out
    }

    /// The leader of `topic`/`partition` from the metadata cache: `UNKNOWN_TOPIC_OR_PARTITION`
    /// at once for a partition the topic does not have, `LEADER_NOT_AVAILABLE` (transient)
    /// for one without a leader.
    async fn leader_of(&self, topic: &str, partition: i32) -> Result<i32> {
        let meta = self.cluster.topic_metadata(topic).await?;
        let context = || format!("list offsets of topic '{topic}' partition {partition}");
        let p = meta
            .partitions
            .iter()
            .find(|p| p.partition == partition)
            .ok_or_else(|| ClientError::Kafka {
                code: ErrorCode::UnknownTopicOrPartition,
                context: context(),
            })?;
        if p.leader < 0 {
            return Err(ClientError::Kafka {
                code: ErrorCode::LeaderNotAvailable,
                context: context(),
            });
        }
        Ok(p.leader)
    }

    /// One offset for every partition of `topic`, sorted by partition; the first partition
    /// error fails the call.
    ///
    /// ```no_run
    /// # async fn _demo(admin: &rill_client::Admin) -> Result<(), rill_client::ClientError> {
    /// use rill_client::OffsetSpec;
    /// let end: i64 = admin
    ///     .topic_offsets("events", OffsetSpec::Latest)
    ///     .await?
    ///     .iter()
    ///     .map(|o| o.offset)
    ///     .sum();
    /// println!("{end} records written");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn topic_offsets(&self, topic: &str, spec: OffsetSpec) -> Result<Vec<ListedOffset>> {
        let description = self.describe_topic(topic).await?;
        let partitions: Vec<(&str, i32)> = description
            .partitions
            .iter()
            .map(|p| (topic, p.partition))
            .collect();
        self.list_offsets(&partitions, spec)
            .await?
            .into_iter()
            .collect()
    }
}
