//! Committed offsets of the groups of one partition of `__consumer_offsets`, kept durably in
//! that partition's internal log `__consumer_offsets-<p>` through the same storage engine as
//! topics: each commit is one batch of records keyed by (group, topic, partition), appended by
//! the log's owner thread and fsynced before the commit is answered (group commit). A null value
//! deletes. The log is replayed into memory when the partition is opened; the latest record for
//! a key wins. Old records are dropped by rewriting the live offsets and moving the log start
//! past everything older.
//!
//! A replicated offsets partition (`offsets.topic.replication.factor`, 3 on a cluster of three
//! or more) is a Raft group like any replicated partition, and its leader coordinates its
//! groups: a commit is answered once a majority has it. A replica that becomes leader first
//! waits until everything its predecessors wrote is committed, then replays the log up to the
//! high watermark (COORDINATOR_LOAD_IN_PROGRESS meanwhile, which clients retry); followers keep
//! nothing in memory.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use bytes::BytesMut;
use rill_log::Log;
use rill_protocol::ErrorCode;
use serde::{Deserialize, Serialize};

use super::OFFSETS_TOPIC;
use crate::error::BrokerError;
use crate::internal::{Replayed, StateLog, encode};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub(super) struct OffsetKey {
    pub(super) group: String,
    topic: String,
    partition: i32,
}

/// The key of a record of the offsets log: a committed offset (or its deletion), a
/// transactional producer's offset waiting for its transaction to end, or that end.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum RecordKey {
    Offset(OffsetKey),
    /// TxnOffsetCommit: visible once the producer's transaction commits.
    Pending {
        txn: i64,
        offset: OffsetKey,
    },
    /// The producer's transaction ended here (its marker): commit or abort what it left.
    TxnEnd {
        txn_end: i64,
    },
}

/// A committed offset and what came with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Committed {
    pub(crate) offset: i64,
    pub(crate) leader_epoch: i32,
    pub(crate) metadata: Option<String>,
    pub(crate) commit_ms: i64,
    /// When the commit asked for its own retention (OffsetCommit v2-4's `retention_time_ms`):
    /// the time it expires once the group has no members, instead of the broker's retention
    /// after the commit. Absent in logs written before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) expire_ms: Option<i64>,
}

impl Committed {
    /// Whether this offset has expired at `now_ms` in a group with no members, where offsets
    /// without an expiry of their own are kept `retention_ms` after their commit (KIP-211).
    fn expired(&self, now_ms: i64, retention_ms: i64) -> bool {
        match self.expire_ms {
            Some(at) => now_ms >= at,
            None => now_ms.saturating_sub(self.commit_ms) > retention_ms,
        }
    }
}

pub(super) type GroupOffsets = BTreeMap<(String, i32), Committed>;

/// What the offsets log holds: every group's live offsets, and the offsets transactional
/// producers committed in transactions not yet ended.
#[derive(Debug, Default)]
pub(crate) struct OffsetState {
    committed: HashMap<String, GroupOffsets>,
    pending: HashMap<i64, Vec<(OffsetKey, Committed)>>,
    /// Groups that commit in transactions (TxnOffsetCommit): exactly-once applications, whose
    /// consumers read committed records, so their lag is measured from the last stable
    /// offset.
    transactional: std::collections::HashSet<String>,
}

/// What a transaction end does with the producer's pending offsets.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct TxnEnd {
    commit: bool,
}

impl OffsetState {
    fn set(&mut self, key: OffsetKey, value: Option<Committed>) {
        let group = self.committed.entry(key.group).or_default();
        match value {
            Some(value) => {
                let _ = group.insert((key.topic, key.partition), value);
            }
            None => {
                let _ = group.remove(&(key.topic, key.partition));
            }
        }
    }

    fn end_txn(&mut self, producer_id: i64, commit: bool) {
        let Some(pending) = self.pending.remove(&producer_id) else {
            return;
        };
        if commit {
            for (key, value) in pending {
                self.set(key, Some(value));
            }
            self.committed.retain(|_, offsets| !offsets.is_empty());
        }
    }
}

impl Replayed for OffsetState {
    fn apply(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), String> {
        let key: RecordKey =
            serde_json::from_slice(key).map_err(|e| format!("an unreadable key: {e}"))?;
        let parse = |v: &[u8]| serde_json::from_slice::<Committed>(v).map_err(|e| e.to_string());
        match key {
            RecordKey::Offset(key) => {
                let value = value.map(parse).transpose()?;
                self.set(key, value);
            }
            RecordKey::Pending { txn, offset } => {
                let _ = self.transactional.insert(offset.group.clone());
                if let Some(value) = value.map(parse).transpose()? {
                    let pending = self.pending.entry(txn).or_default();
                    pending.retain(|(k, _)| *k != offset);
                    pending.push((offset, value));
                }
            }
            RecordKey::TxnEnd { txn_end } => {
                let end: TxnEnd = value
                    .map(serde_json::from_slice)
                    .transpose()
                    .map_err(|e| e.to_string())?
                    .ok_or("a transaction end without a value")?;
                self.end_txn(txn_end, end.commit);
            }
        }
        Ok(())
    }
}

/// The directory of partition `partition` of the offsets log.
pub(crate) fn log_dir(data_dir: &Path, partition: i32) -> PathBuf {
    crate::internal::log_dir(data_dir, OFFSETS_TOPIC, partition)
}

pub(super) use crate::internal::log_config;

/// Replays an offsets log: every group's live offsets.
pub(super) fn replay(log: &Log) -> Result<HashMap<String, GroupOffsets>, BrokerError> {
    let mut state: OffsetState = crate::internal::replay(log)?;
    state.committed.retain(|_, offsets| !offsets.is_empty());
    Ok(state.committed)
}

/// The records of `groups`' live offsets, in batches of at most 10,000.
pub(super) fn live_batches(
    groups: &HashMap<String, GroupOffsets>,
) -> Result<Vec<BytesMut>, ErrorCode> {
    let live: Vec<(OffsetKey, &Committed)> = groups
        .iter()
        .flat_map(|(group, offsets)| offsets.iter().map(|((t, p), v)| (key(group, t, *p), v)))
        .collect();
    live.chunks(10_000)
        .map(|chunk| encode(chunk.iter().map(|(k, v)| (k.clone(), Some(*v)))))
        .collect()
}

/// The committed offsets of the groups of one offsets partition, in memory and in its log.
pub(crate) type OffsetStore = StateLog<OffsetState>;

impl StateLog<OffsetState> {
    /// Whether this store's groups are coordinated here now (see [`StateLog::serving`]).
    pub(crate) fn coordinating(self: &std::sync::Arc<Self>) -> Result<(), ErrorCode> {
        self.serving().map(|_| ())
    }

    /// Stores offsets durably (fsynced), then makes them visible.
    pub(crate) async fn commit(
        &self,
        group: &str,
        offsets: Vec<(String, i32, Committed)>,
    ) -> Result<(), ErrorCode> {
        if offsets.is_empty() {
            return Ok(());
        }
        let batch = encode(
            offsets
                .iter()
                .map(|(topic, partition, c)| (key(group, topic, *partition), Some(c))),
        )?;
        self.write_then(batch, |state| {
            for (topic, partition, c) in offsets {
                state.set(key(group, &topic, partition), Some(c));
            }
        })
        .await
    }

    /// Stores the offsets a transactional producer commits in its transaction (TxnOffsetCommit):
    /// durable now, visible once the transaction commits.
    pub(crate) async fn commit_pending(
        &self,
        producer_id: i64,
        group: &str,
        offsets: Vec<(String, i32, Committed)>,
    ) -> Result<(), ErrorCode> {
        if offsets.is_empty() {
            return Ok(());
        }
        let records: Vec<(RecordKey, &Committed)> = offsets
            .iter()
            .map(|(topic, partition, c)| {
                let offset = key(group, topic, *partition);
                (
                    RecordKey::Pending {
                        txn: producer_id,
                        offset,
                    },
                    c,
                )
            })
            .collect();
        let batch = encode(records.into_iter().map(|(k, v)| (k, Some(v))))?;
        self.write_then(batch, |state| {
            let _ = state.transactional.insert(group.to_owned());
            let pending = state.pending.entry(producer_id).or_default();
            for (topic, partition, c) in offsets {
                let offset = key(group, &topic, partition);
                pending.retain(|(k, _)| *k != offset);
                pending.push((offset, c));
            }
        })
        .await
    }

    /// Ends a producer's transaction here (its marker): its pending offsets become committed
    /// (`commit`) or are dropped. Durable before it returns.
    pub(crate) async fn end_txn(&self, producer_id: i64, commit: bool) -> Result<(), ErrorCode> {
        let end = TxnEnd { commit };
        let batch = encode(std::iter::once((
            RecordKey::TxnEnd {
                txn_end: producer_id,
            },
            Some(&end),
        )))?;
        self.write_then(batch, |state| state.end_txn(producer_id, commit))
            .await
    }

    /// Whether a transaction not yet ended holds an offset of this group and partition
    /// (OffsetFetch's `require_stable`, KIP-447).
    pub(crate) fn unstable(&self, group: &str, topic: &str, partition: i32) -> bool {
        self.view(|state| {
            state
                .pending
                .values()
                .flatten()
                .any(|(k, _)| k.group == group && k.topic == topic && k.partition == partition)
        })
        .unwrap_or(false)
    }

    /// Deletes offsets durably: the given partitions, or all of the group's when `None`.
    pub(crate) async fn delete(
        &self,
        group: &str,
        partitions: Option<&[(String, i32)]>,
    ) -> Result<(), ErrorCode> {
        let doomed: Vec<(String, i32)> = match partitions {
            Some(list) => list.to_vec(),
            None => self
                .group_offsets(group)
                .into_iter()
                .map(|(k, _)| k)
                .collect(),
        };
        if doomed.is_empty() {
            return Ok(());
        }
        let batch = encode(
            doomed
                .iter()
                .map(|(t, p)| (key(group, t, *p), None::<&Committed>)),
        )?;
        self.write_then(batch, |state| {
            if let Some(entry) = state.committed.get_mut(group) {
                for k in &doomed {
                    let _ = entry.remove(k);
                }
                if entry.is_empty() {
                    let _ = state.committed.remove(group);
                }
            }
        })
        .await
    }

    pub(crate) fn fetch(&self, group: &str, topic: &str, partition: i32) -> Option<Committed> {
        self.view(|s| {
            s.committed
                .get(group)?
                .get(&(topic.to_owned(), partition))
                .cloned()
        })
        .flatten()
    }

    /// Every committed offset of a group, sorted by topic and partition.
    pub(crate) fn group_offsets(&self, group: &str) -> Vec<((String, i32), Committed)> {
        self.view(|s| {
            s.committed
                .get(group)
                .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        })
        .flatten()
        .unwrap_or_default()
    }

    /// Whether `group` has any committed offset.
    pub(crate) fn has_offsets(&self, group: &str) -> bool {
        self.view(|s| s.committed.get(group).is_some_and(|o| !o.is_empty()))
            .unwrap_or(false)
    }

    /// Whether `group` commits in transactions (its consumers read committed records).
    pub(crate) fn is_transactional(&self, group: &str) -> bool {
        self.view(|s| s.transactional.contains(group))
            .unwrap_or(false)
    }

    /// Every committed offset: (group, topic, partition, offset), sorted.
    pub(crate) fn all_committed(&self) -> Vec<(String, String, i32, i64)> {
        let mut all: Vec<_> = self
            .view(|s| {
                s.committed
                    .iter()
                    .flat_map(|(group, offsets)| {
                        offsets.iter().map(|((topic, partition), committed)| {
                            (group.clone(), topic.clone(), *partition, committed.offset)
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        all.sort();
        all
    }

    /// Groups that have committed offsets.
    pub(crate) fn groups(&self) -> Vec<String> {
        self.view(|s| {
            s.committed
                .iter()
                .filter(|(_, o)| !o.is_empty())
                .map(|(g, _)| g.clone())
                .collect()
        })
        .unwrap_or_default()
    }

    /// Deletes the offsets of `group` (which has no members) that expired at `now_ms`: those
    /// past their own expiry, and the others committed more than `retention_ms` ago.
    pub(crate) async fn expire(
        &self,
        group: &str,
        now_ms: i64,
        retention_ms: i64,
    ) -> Result<usize, ErrorCode> {
        let doomed: Vec<(String, i32)> = self
            .group_offsets(group)
            .into_iter()
            .filter(|(_, c)| c.expired(now_ms, retention_ms))
            .map(|(k, _)| k)
            .collect();
        self.delete(group, Some(&doomed)).await?;
        Ok(doomed.len())
    }

    /// Keeps the log from growing without bound: when it holds many more records than live
    /// offsets, writes the live ones again (and the pending ones of open transactions) and
    /// drops everything before them.
    pub(crate) async fn compact(&self) -> Result<(), ErrorCode> {
        let live: usize = self
            .view(|s| {
                s.committed.values().map(BTreeMap::len).sum::<usize>()
                    + s.pending.values().map(Vec::len).sum::<usize>()
            })
            .unwrap_or(0);
        let _ = self
            .rewrite(live, |s| {
                let mut batches = live_batches(&s.committed)?;
                for (txn, pending) in &s.pending {
                    let records = pending.iter().map(|(offset, c)| {
                        let key = RecordKey::Pending {
                            txn: *txn,
                            offset: offset.clone(),
                        };
                        (key, Some(c))
                    });
                    batches.push(encode(records)?);
                }
                Ok(batches)
            })
            .await?;
        Ok(())
    }
}

fn key(group: &str, topic: &str, partition: i32) -> OffsetKey {
    OffsetKey {
        group: group.to_owned(),
        topic: topic.to_owned(),
        partition,
    }
}

/// Writes `entries` (group, offset of its partition 0 of topic `t`, or `None` for a deletion)
/// to a raw offsets log in `dir`, one batch each, as Rill wrote `__consumer_offsets-0` before it
/// had partitions.
#[cfg(test)]
use crate::partition::now_ms;

#[cfg(test)]
pub(super) fn write_old_layout(
    dir: &Path,
    entries: &[(String, Option<i64>)],
) -> Result<(), Box<dyn std::error::Error>> {
    let mut log = Log::open(dir, log_config(), now_ms())?;
    for (group, offset) in entries {
        let value = offset.map(|offset| Committed {
            offset,
            leader_epoch: -1,
            metadata: None,
            commit_ms: now_ms(),
            expire_ms: None,
        });
        let mut batch =
            encode(std::iter::once((key(group, "t", 0), value.as_ref()))).map_err(|c| c.name())?;
        let _ = log.append(&mut batch, now_ms())?;
    }
    log.sync()?;
    log.close()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::Storage;
    use std::time::Duration;

    fn fsync() -> prometheus::Histogram {
        // Unregistered: any valid name will do.
        match prometheus::Histogram::with_opts(prometheus::HistogramOpts::new("fsync", "test")) {
            Ok(histogram) => histogram,
            Err(err) => panic!("a histogram named fsync: {err}"),
        }
    }

    fn committed(offset: i64, commit_ms: i64) -> Committed {
        Committed {
            offset,
            leader_epoch: -1,
            metadata: Some(format!("m{offset}")),
            commit_ms,
            expire_ms: None,
        }
    }

    #[tokio::test]
    async fn commits_survive_reopen_and_expire_by_age() -> Result<(), Box<dyn std::error::Error>> {
        let storage = Storage::start(1, 16, Duration::from_secs(3600), std::sync::Arc::default())?;
        let dir = tempfile::tempdir()?;
        let store = OffsetStore::open(log_dir(dir.path(), 0), 0, &storage, fsync(), None)?;
        store
            .commit(
                "g",
                vec![
                    ("t".to_owned(), 0, committed(5, 1_000)),
                    ("t".to_owned(), 1, committed(7, 9_000)),
                ],
            )
            .await
            .map_err(|c| c.name())?;
        store
            .commit("h", vec![("t".to_owned(), 0, committed(3, 1_000))])
            .await
            .map_err(|c| c.name())?;
        assert_eq!(store.fetch("g", "t", 0).map(|c| c.offset), Some(5));
        // Offsets committed more than the retention ago go; later ones stay.
        assert_eq!(
            store
                .expire("g", 6_000, 1_000)
                .await
                .map_err(|c| c.name())?,
            1
        );
        // An offset with its own expiry goes at that time, not the broker's retention after it.
        let own = Committed {
            expire_ms: Some(20_000),
            ..committed(9, 9_000)
        };
        store
            .commit("g", vec![("u".to_owned(), 0, own.clone())])
            .await
            .map_err(|c| c.name())?;
        assert_eq!(
            store
                .expire("g", 19_999, 1_000_000)
                .await
                .map_err(|c| c.name())?,
            0
        );
        assert_eq!(store.fetch("g", "u", 0), Some(own));
        assert_eq!(
            store
                .expire("g", 20_000, 1_000_000)
                .await
                .map_err(|c| c.name())?,
            1
        );
        assert_eq!(store.fetch("g", "u", 0), None);
        assert_eq!(store.fetch("g", "t", 0), None);
        assert_eq!(store.fetch("g", "t", 1), Some(committed(7, 9_000)));
        store.delete("h", None).await.map_err(|c| c.name())?;
        assert!(store.groups().iter().all(|g| g != "h"));
        tokio::task::spawn_blocking(move || store.close_blocking()).await?;

        // Reopened from the log: the same state, expiry and deletion included.
        let store = OffsetStore::open(log_dir(dir.path(), 0), 0, &storage, fsync(), None)?;
        assert_eq!(store.fetch("g", "t", 0), None);
        assert_eq!(store.fetch("g", "t", 1), Some(committed(7, 9_000)));
        assert_eq!(store.groups(), vec!["g".to_owned()]);
        tokio::task::spawn_blocking(move || store.close_blocking()).await?;
        Ok(())
    }

    #[tokio::test]
    async fn compaction_keeps_only_live_offsets() -> Result<(), Box<dyn std::error::Error>> {
        let storage = Storage::start(1, 16, Duration::from_secs(3600), std::sync::Arc::default())?;
        let dir = tempfile::tempdir()?;
        let store = OffsetStore::open(log_dir(dir.path(), 0), 0, &storage, fsync(), None)?;
        // Many commits of the same two partitions: far more records than live offsets.
        for i in 0..6_000 {
            store
                .commit(
                    "g",
                    vec![
                        ("t".to_owned(), 0, committed(i, 1)),
                        ("t".to_owned(), 1, committed(i + 1, 1)),
                    ],
                )
                .await
                .map_err(|c| c.name())?;
        }
        store.compact().await.map_err(|c| c.name())?;
        let offsets = store.log().offsets();
        assert_eq!(
            offsets.log_end - offsets.log_start,
            2,
            "only the live offsets remain"
        );
        tokio::task::spawn_blocking(move || store.close_blocking()).await?;
        let store = OffsetStore::open(log_dir(dir.path(), 0), 0, &storage, fsync(), None)?;
        assert_eq!(store.fetch("g", "t", 0).map(|c| c.offset), Some(5_999));
        assert_eq!(store.fetch("g", "t", 1).map(|c| c.offset), Some(6_000));
        tokio::task::spawn_blocking(move || store.close_blocking()).await?;
        Ok(())
    }
}
