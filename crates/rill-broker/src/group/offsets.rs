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
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rill_log::{Log, LogConfig};
use rill_protocol::ErrorCode;
use rill_record::{BatchBuilder, Batches, RecordSpec};
use serde::{Deserialize, Serialize};

use super::OFFSETS_TOPIC;
use crate::error::BrokerError;
use crate::partition::{OwnerMetrics, Partition, ReplicaSpec, Storage, now_ms};

/// How long a commit waits for its write (Kafka's `offsets.commit.timeout.ms`); past it the
/// client hears COORDINATOR_NOT_AVAILABLE and retries.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a new leader waits for its predecessors' writes to commit before it gives up
/// loading (and tries again on the next request).
const LOAD_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub(super) struct OffsetKey {
    pub(super) group: String,
    topic: String,
    partition: i32,
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

/// The directory of partition `partition` of the offsets log.
pub(crate) fn log_dir(data_dir: &Path, partition: i32) -> PathBuf {
    data_dir.join(format!("{OFFSETS_TOPIC}-{partition}"))
}

/// The settings of every offsets log: no retention (offsets expire by their own rules).
pub(super) fn log_config() -> LogConfig {
    LogConfig {
        segment_bytes: 64 << 20,
        retention_ms: -1,
        retention_bytes: -1,
        ..LogConfig::default()
    }
}

/// Replays an offsets log: every group's live offsets.
pub(super) fn replay(log: &Log) -> Result<HashMap<String, GroupOffsets>, BrokerError> {
    let mut committed: HashMap<String, GroupOffsets> = HashMap::new();
    let mut offset = log.log_start_offset();
    let corrupt = |what: String| BrokerError::Metadata(format!("{}: {what}", log.dir().display()));
    while offset < log.log_end_offset() {
        let bytes = log.read(offset, 1 << 20)?;
        offset = apply(&bytes, offset, &mut committed).map_err(corrupt)?;
    }
    committed.retain(|_, offsets| !offsets.is_empty());
    Ok(committed)
}

/// Applies the batches read at `offset` to `committed`: the offset after the last one.
fn apply(
    bytes: &[u8],
    offset: i64,
    committed: &mut HashMap<String, GroupOffsets>,
) -> Result<i64, String> {
    let mut next = offset;
    for batch in Batches::new(bytes) {
        let batch = batch.map_err(|e| e.to_string())?;
        next = batch.header().next_offset();
        for record in batch.records().map_err(|e| e.to_string())? {
            let key: OffsetKey = record
                .key
                .as_deref()
                .and_then(|k| serde_json::from_slice(k).ok())
                .ok_or("a record without a readable key")?;
            let group = committed.entry(key.group).or_default();
            match record.value {
                Some(value) => {
                    let value = serde_json::from_slice(&value).map_err(|e| e.to_string())?;
                    let _ = group.insert((key.topic, key.partition), value);
                }
                None => {
                    let _ = group.remove(&(key.topic, key.partition));
                }
            }
        }
    }
    if next <= offset {
        return Err(format!("no readable batch at offset {offset}"));
    }
    Ok(next)
}

/// What an offsets partition's write failing means to a group client, as Kafka's coordinator
/// translates it: look for the coordinator again, retry later, or a commit too large.
fn to_client(code: ErrorCode) -> ErrorCode {
    match code {
        ErrorCode::NotLeaderOrFollower | ErrorCode::KafkaStorageError => ErrorCode::NotCoordinator,
        ErrorCode::NotEnoughReplicas
        | ErrorCode::NotEnoughReplicasAfterAppend
        | ErrorCode::RequestTimedOut
        | ErrorCode::UnknownTopicOrPartition => ErrorCode::CoordinatorNotAvailable,
        ErrorCode::MessageTooLarge | ErrorCode::RecordListTooLarge => {
            ErrorCode::InvalidCommitOffsetSize
        }
        other => other,
    }
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
#[derive(Debug)]
pub(crate) struct OffsetStore {
    log: Partition,
    state: Mutex<State>,
}

/// What is in memory: on a replicated partition, only while this replica leads.
#[derive(Debug, Default)]
struct State {
    /// The leader epoch the offsets were loaded at (`None` with one replica: loaded at open,
    /// always current).
    epoch: Option<i32>,
    /// The leader epoch a load is under way for.
    loading: Option<i32>,
    committed: HashMap<String, GroupOffsets>,
}

impl OffsetStore {
    /// Replays partition `partition` of the offsets log, then hands it to an owner thread for
    /// appends. Blocking.
    /// With `replica`, the partition is replicated: this replica joins its Raft group, and
    /// loads the offsets only when it leads.
    pub(crate) fn open(
        data_dir: &Path,
        partition: i32,
        storage: &Storage,
        fsync: prometheus::Histogram,
        replica: Option<ReplicaSpec>,
    ) -> Result<Self, BrokerError> {
        let dir = log_dir(data_dir, partition);
        // Its commits are fsynced like any acks=all produce, so they count in the fsync
        // histogram; its bytes are not a topic's.
        let metrics = OwnerMetrics { topic: None, fsync };
        if let Some(spec) = replica {
            let log = storage.open_replica(dir, partition, log_config(), metrics, spec)?;
            return Ok(Self {
                log,
                state: Mutex::default(),
            });
        }
        let log = Log::open_cached(&dir, log_config(), now_ms(), storage.cache())?;
        let committed = replay(&log)?;
        let log = storage.adopt(log, partition, metrics)?;
        Ok(Self {
            log,
            state: Mutex::new(State {
                committed,
                ..State::default()
            }),
        })
    }

    /// Whether this store's groups are coordinated here now: always with one replica; on a
    /// replicated partition, NOT_COORDINATOR unless this replica leads, and
    /// COORDINATOR_LOAD_IN_PROGRESS until the offsets of its leadership are loaded (which
    /// this starts).
    pub(crate) fn coordinating(self: &Arc<Self>) -> Result<(), ErrorCode> {
        if !self.log.is_replicated() {
            return Ok(());
        }
        let epoch = self
            .log
            .offsets()
            .leading
            .ok_or(ErrorCode::NotCoordinator)?;
        let mut state = self
            .state
            .lock()
            .map_err(|_| ErrorCode::CoordinatorNotAvailable)?;
        if state.epoch == Some(epoch) {
            return Ok(());
        }
        if state.loading != Some(epoch) {
            state.loading = Some(epoch);
            state.epoch = None;
            state.committed = HashMap::new();
            let store = self.clone();
            drop(tokio::spawn(async move {
                let loaded = tokio::time::timeout(LOAD_TIMEOUT, store.load(epoch)).await;
                let result = loaded.unwrap_or(Err(ErrorCode::RequestTimedOut));
                if let Ok(mut state) = store.state.lock() {
                    if state.loading == Some(epoch) {
                        state.loading = None;
                        if let Ok(committed) = result {
                            state.epoch = Some(epoch);
                            state.committed = committed;
                        }
                    }
                }
            }));
        }
        Err(ErrorCode::CoordinatorLoadInProgress)
    }

    /// The offsets of a replicated partition this replica leads at `epoch`: once everything
    /// its log held when it was elected is committed (which it is as soon as the new leader's
    /// first entry is), its log replayed to the high watermark.
    async fn load(&self, epoch: i32) -> Result<HashMap<String, GroupOffsets>, ErrorCode> {
        let started = std::time::Instant::now();
        let mut watch = self.log.watch();
        let target = watch.borrow().log_end;
        let end = loop {
            let offsets = *watch.borrow_and_update();
            if offsets.leading != Some(epoch) {
                return Err(ErrorCode::NotCoordinator);
            }
            if offsets.high_watermark >= target {
                break offsets.high_watermark;
            }
            watch
                .changed()
                .await
                .map_err(|_| ErrorCode::NotCoordinator)?;
        };
        let mut committed = HashMap::new();
        let mut offset = self.log.offsets().log_start;
        while offset < end {
            let bytes = self.log.read(offset, 1 << 20).await?;
            offset = apply(&bytes, offset, &mut committed).map_err(|why| {
                tracing::error!(partition = self.log.index, %why, "an unreadable offsets log");
                ErrorCode::CoordinatorNotAvailable
            })?;
        }
        committed.retain(|_, offsets| !offsets.is_empty());
        if !committed.is_empty() {
            tracing::info!(
                partition = self.log.index,
                epoch,
                groups = committed.len(),
                elapsed_ms = started.elapsed().as_millis(),
                "loaded the committed offsets of a partition led here"
            );
        }
        Ok(committed)
    }

    /// Appends a batch of offset records as a commit must be: fsynced, and on a replicated
    /// partition held by a majority; errors as a group client understands them.
    async fn write(&self, batch: BytesMut) -> Result<(), ErrorCode> {
        let append = self.log.append(batch, true, true, false);
        match tokio::time::timeout(COMMIT_TIMEOUT, append).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(code)) => Err(to_client(code)),
            Err(_) => Err(ErrorCode::CoordinatorNotAvailable),
        }
    }

    /// The partition that owns the log.
    pub(super) fn log(&self) -> &Partition {
        &self.log
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
        self.write(batch).await?;
        self.update(|committed| {
            let entry = committed.entry(group.to_owned()).or_default();
            for (topic, partition, c) in offsets {
                let _ = entry.insert((topic, partition), c);
            }
        });
        Ok(())
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
        let batch = encode(doomed.iter().map(|(t, p)| (key(group, t, *p), None)))?;
        self.write(batch).await?;
        self.update(|committed| {
            if let Some(entry) = committed.get_mut(group) {
                for k in &doomed {
                    let _ = entry.remove(k);
                }
                if entry.is_empty() {
                    let _ = committed.remove(group);
                }
            }
        });
        Ok(())
    }

    /// Reads the offsets in memory.
    fn view<T>(&self, f: impl FnOnce(&HashMap<String, GroupOffsets>) -> T) -> Option<T> {
        self.state.lock().ok().map(|state| f(&state.committed))
    }

    /// Changes the offsets in memory.
    fn update(&self, f: impl FnOnce(&mut HashMap<String, GroupOffsets>)) {
        if let Ok(mut state) = self.state.lock() {
            f(&mut state.committed);
        }
    }

    pub(crate) fn fetch(&self, group: &str, topic: &str, partition: i32) -> Option<Committed> {
        self.view(|c| c.get(group)?.get(&(topic.to_owned(), partition)).cloned())
            .flatten()
    }

    /// Every committed offset of a group, sorted by topic and partition.
    pub(crate) fn group_offsets(&self, group: &str) -> Vec<((String, i32), Committed)> {
        self.view(|c| {
            c.get(group)
                .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        })
        .flatten()
        .unwrap_or_default()
    }

    /// Whether `group` has any committed offset.
    pub(crate) fn has_offsets(&self, group: &str) -> bool {
        self.view(|c| c.get(group).is_some_and(|o| !o.is_empty()))
            .unwrap_or(false)
    }

    /// Every committed offset: (group, topic, partition, offset), sorted.
    pub(crate) fn all_committed(&self) -> Vec<(String, String, i32, i64)> {
        let mut all: Vec<_> = self
            .view(|c| {
                c.iter()
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
        self.view(|c| c.keys().cloned().collect())
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
    /// offsets, writes the live ones again and drops everything before them.
    pub(crate) async fn compact(&self) -> Result<(), ErrorCode> {
        let live: usize = self
            .view(|c| c.values().map(BTreeMap::len).sum())
            .unwrap_or(0);
        let offsets = self.log.offsets();
        let stored = usize::try_from(offsets.log_end - offsets.log_start).unwrap_or(0);
        if stored <= 4 * live + 10_000 {
            return Ok(());
        }
        let Some(batches) = self.view(live_batches) else {
            return Ok(());
        };
        let batches = batches?;
        let before = offsets.log_end;
        for batch in batches {
            self.write(batch).await?;
        }
        let _ = self.log.delete_records(before).await?;
        tracing::info!(
            dropped = stored,
            kept = live,
            "rewrote the committed offsets log"
        );
        Ok(())
    }

    /// Closes the offsets log cleanly. Blocking.
    pub(crate) fn close_blocking(&self) {
        self.log.close_blocking(false);
    }
}

fn key(group: &str, topic: &str, partition: i32) -> OffsetKey {
    OffsetKey {
        group: group.to_owned(),
        topic: topic.to_owned(),
        partition,
    }
}

fn encode<'a>(
    entries: impl Iterator<Item = (OffsetKey, Option<&'a Committed>)>,
) -> Result<BytesMut, ErrorCode> {
    let now = now_ms();
    let mut builder = BatchBuilder::new();
    for (key, value) in entries {
        let mut record = RecordSpec::new(now).key(json(&key)?);
        if let Some(value) = value {
            record = record.value(json(value)?);
        }
        builder = builder.record(record);
    }
    let batch = builder.build().map_err(|err| {
        tracing::error!(%err, "encoding committed offsets");
        ErrorCode::UnknownServerError
    })?;
    Ok(BytesMut::from(&batch[..]))
}

fn json(value: &impl Serialize) -> Result<Bytes, ErrorCode> {
    serde_json::to_vec(value).map(Bytes::from).map_err(|err| {
        tracing::error!(%err, "encoding committed offsets");
        ErrorCode::UnknownServerError
    })
}

/// Writes `entries` (group, offset of its partition 0 of topic `t`, or `None` for a deletion)
/// to a raw offsets log in `dir`, one batch each, as Rill wrote `__consumer_offsets-0` before it
/// had partitions.
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
        let store = OffsetStore::open(dir.path(), 0, &storage, fsync(), None)?;
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
        let store = OffsetStore::open(dir.path(), 0, &storage, fsync(), None)?;
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
        let store = OffsetStore::open(dir.path(), 0, &storage, fsync(), None)?;
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
        let offsets = store.log.offsets();
        assert_eq!(
            offsets.log_end - offsets.log_start,
            2,
            "only the live offsets remain"
        );
        tokio::task::spawn_blocking(move || store.close_blocking()).await?;
        let store = OffsetStore::open(dir.path(), 0, &storage, fsync(), None)?;
        assert_eq!(store.fetch("g", "t", 0).map(|c| c.offset), Some(5_999));
        assert_eq!(store.fetch("g", "t", 1).map(|c| c.offset), Some(6_000));
        tokio::task::spawn_blocking(move || store.close_blocking()).await?;
        Ok(())
    }
}
