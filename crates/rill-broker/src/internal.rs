//! The broker's internal state logs: `__consumer_offsets` (committed offsets) and
//! `__transaction_state` (transactions), one log per partition through the same storage
//! engine as topics. Each record is a JSON key and value (a null value deletes); the state a
//! partition's coordinator serves is its log replayed in memory.
//!
//! A partition with one replica is replayed when it opens. A replicated one is a Raft group
//! like any replicated partition, and only its leader serves: a replica that becomes leader
//! first waits until everything its predecessors wrote is committed, then replays its log up to
//! the high watermark (COORDINATOR_LOAD_IN_PROGRESS meanwhile, which clients retry); followers
//! keep nothing in memory. A write is answered once it is fsynced and, replicated, held by a
//! majority.
//!
//! [`Hosted`] is the set of one internal topic's partitions held on this broker.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rill_log::{Log, LogConfig};
use rill_protocol::ErrorCode;
use rill_record::{BatchBuilder, Batches, RecordSpec};
use serde::Serialize;

use crate::error::BrokerError;
use crate::partition::{Offsets, OwnerMetrics, Partition, ReplicaSpec, Storage, now_ms, parallel};

/// How long a write waits (Kafka's `offsets.commit.timeout.ms`); past it the client hears
/// COORDINATOR_NOT_AVAILABLE and retries.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a new leader waits for its predecessors' writes to commit before it gives up
/// loading (and tries again on the next request).
const LOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// The state a log replays into.
pub(crate) trait Replayed: Default + Send + 'static {
    /// Applies one record: its key and value (`None` deletes).
    fn apply(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), String>;
}

/// The settings of every internal log: no retention (their state expires by its own rules).
pub(crate) fn log_config() -> LogConfig {
    LogConfig {
        segment_bytes: 64 << 20,
        retention_ms: -1,
        retention_bytes: -1,
        ..LogConfig::default()
    }
}

/// Replays a whole log into a new state.
pub(crate) fn replay<S: Replayed>(log: &Log) -> Result<S, BrokerError> {
    let mut state = S::default();
    let mut offset = log.log_start_offset();
    let corrupt = |what: String| BrokerError::Metadata(format!("{}: {what}", log.dir().display()));
    while offset < log.log_end_offset() {
        let bytes = log.read(offset, 1 << 20)?;
        offset = apply(&bytes, offset, &mut state).map_err(corrupt)?;
    }
    Ok(state)
}

/// Applies the batches read at `offset` to `state`: the offset after the last one.
fn apply<S: Replayed>(bytes: &[u8], offset: i64, state: &mut S) -> Result<i64, String> {
    let mut next = offset;
    for batch in Batches::new(bytes) {
        let batch = batch.map_err(|e| e.to_string())?;
        next = batch.header().next_offset();
        for record in batch.records().map_err(|e| e.to_string())? {
            let key = record.key.as_deref().ok_or("a record without a key")?;
            state.apply(key, record.value.as_deref())?;
        }
    }
    if next <= offset {
        return Err(format!("no readable batch at offset {offset}"));
    }
    Ok(next)
}

/// What an internal partition's write failing means to a coordinator's client, as Kafka's
/// coordinators translate it: look for the coordinator again, retry later, or too large.
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

/// One batch of JSON records: each a key and a value or, with `None`, a deletion.
pub(crate) fn encode<'a, K: Serialize + 'a, V: Serialize + 'a>(
    entries: impl Iterator<Item = (K, Option<&'a V>)>,
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
        tracing::error!(%err, "encoding an internal log's records");
        ErrorCode::UnknownServerError
    })?;
    Ok(BytesMut::from(&batch[..]))
}

fn json(value: &impl Serialize) -> Result<Bytes, ErrorCode> {
    serde_json::to_vec(value).map(Bytes::from).map_err(|err| {
        tracing::error!(%err, "encoding an internal log's records");
        ErrorCode::UnknownServerError
    })
}

/// One partition of an internal topic: its log, and its state in memory.
#[derive(Debug)]
pub(crate) struct StateLog<S> {
    log: Partition,
    state: Mutex<Loaded<S>>,
    /// Held shared by each write until the state in memory has it, and exclusively by a
    /// rewrite of the live state, so a rewrite never misses a write in between.
    rewriting: tokio::sync::RwLock<()>,
}

/// What is in memory: on a replicated partition, only while this replica leads.
#[derive(Debug, Default)]
struct Loaded<S> {
    /// The leader epoch the state was loaded at (`None` with one replica: loaded at open,
    /// always current).
    epoch: Option<i32>,
    /// The leader epoch a load is under way for.
    loading: Option<i32>,
    state: S,
}

impl<S: Replayed + std::fmt::Debug> StateLog<S> {
    /// Replays the log in `dir`, then hands it to an owner thread for appends. Blocking.
    /// With `replica`, the partition is replicated: this replica joins its Raft group, and
    /// loads the state only when it leads.
    pub(crate) fn open(
        dir: PathBuf,
        partition: i32,
        storage: &Storage,
        fsync: prometheus::Histogram,
        replica: Option<ReplicaSpec>,
    ) -> Result<Self, BrokerError> {
        // Its writes are fsynced like any acks=all produce, so they count in the fsync
        // histogram; its bytes are not a topic's.
        let metrics = OwnerMetrics { topic: None, fsync };
        if let Some(spec) = replica {
            let log = storage.open_replica(dir, partition, log_config(), metrics, spec)?;
            return Ok(Self {
                log,
                state: Mutex::default(),
                rewriting: tokio::sync::RwLock::new(()),
            });
        }
        let log = Log::open_cached(&dir, log_config(), now_ms(), storage.cache())?;
        let state = replay(&log)?;
        let log = storage.adopt(log, partition, metrics)?;
        Ok(Self {
            log,
            state: Mutex::new(Loaded {
                state,
                ..Loaded::default()
            }),
            rewriting: tokio::sync::RwLock::new(()),
        })
    }

    /// Whether this partition's state is served here now: always with one replica (epoch 0);
    /// on a replicated partition, NOT_COORDINATOR unless this replica leads, and
    /// COORDINATOR_LOAD_IN_PROGRESS until the state of its leadership is loaded (which this
    /// starts). The leader epoch it serves at.
    pub(crate) fn serving(self: &Arc<Self>) -> Result<i32, ErrorCode> {
        if !self.log.is_replicated() {
            return Ok(0);
        }
        let epoch = self
            .log
            .offsets()
            .leading
            .ok_or(ErrorCode::NotCoordinator)?;
        let mut loaded = self
            .state
            .lock()
            .map_err(|_| ErrorCode::CoordinatorNotAvailable)?;
        if loaded.epoch == Some(epoch) {
            return Ok(epoch);
        }
        if loaded.loading != Some(epoch) {
            loaded.loading = Some(epoch);
            loaded.epoch = None;
            loaded.state = S::default();
            let this = self.clone();
            drop(tokio::spawn(async move {
                let result = tokio::time::timeout(LOAD_TIMEOUT, this.load(epoch)).await;
                let result = result.unwrap_or(Err(ErrorCode::RequestTimedOut));
                if let Ok(mut loaded) = this.state.lock()
                    && loaded.loading == Some(epoch)
                {
                    loaded.loading = None;
                    if let Ok(state) = result {
                        loaded.epoch = Some(epoch);
                        loaded.state = state;
                    }
                }
            }));
        }
        Err(ErrorCode::CoordinatorLoadInProgress)
    }

    /// The state of a replicated partition this replica leads at `epoch`: once everything
    /// its log held when it was elected is committed (which it is as soon as the new leader's
    /// first entry is), its log replayed to the high watermark.
    async fn load(&self, epoch: i32) -> Result<S, ErrorCode> {
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
        let mut state = S::default();
        let mut offset = self.log.offsets().log_start;
        while offset < end {
            let bytes = self.log.read(offset, 1 << 20).await?;
            offset = apply(&bytes, offset, &mut state).map_err(|why| {
                tracing::error!(partition = self.log.index, %why, "an unreadable internal log");
                ErrorCode::CoordinatorNotAvailable
            })?;
        }
        tracing::info!(
            partition = self.log.index,
            epoch,
            elapsed_ms = started.elapsed().as_millis(),
            records = end - self.log.offsets().log_start,
            "loaded the state of an internal partition led here"
        );
        Ok(state)
    }

    /// Appends a batch of records as a coordinator's write must be (see [`StateLog::write`]),
    /// then applies `update` to the state in memory.
    pub(crate) async fn write_then<T>(
        &self,
        batch: BytesMut,
        update: impl FnOnce(&mut S) -> T,
    ) -> Result<T, ErrorCode> {
        let _writing = self.rewriting.read().await;
        self.write(batch).await?;
        self.update(update)
            .ok_or(ErrorCode::CoordinatorNotAvailable)
    }

    /// Keeps the log from growing without bound: when it holds many more records than the
    /// `live` ones of the state, writes those again (`batches` of them) and drops everything
    /// before them. Whether it did.
    pub(crate) async fn rewrite(
        &self,
        live: usize,
        batches: impl FnOnce(&S) -> Result<Vec<BytesMut>, ErrorCode>,
    ) -> Result<bool, ErrorCode> {
        let offsets = self.log.offsets();
        let stored = usize::try_from(offsets.log_end - offsets.log_start).unwrap_or(0);
        if stored <= 4 * live + 10_000 {
            return Ok(false);
        }
        let _rewriting = self.rewriting.write().await;
        let batches = self
            .view(batches)
            .ok_or(ErrorCode::CoordinatorNotAvailable)??;
        let before = self.log.offsets().log_end;
        for batch in batches {
            self.write(batch).await?;
        }
        let _ = self.log.delete_records(before).await?;
        tracing::info!(
            partition = self.log.index,
            dropped = stored,
            kept = live,
            "rewrote the live records of an internal log"
        );
        Ok(true)
    }

    /// Appends a batch of records as a coordinator's write must be: fsynced, and on a
    /// replicated partition held by a majority; errors as a coordinator's client understands
    /// them.
    async fn write(&self, batch: BytesMut) -> Result<(), ErrorCode> {
        let append = self.log.append(batch, true, true, false);
        match tokio::time::timeout(WRITE_TIMEOUT, append).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(code)) => Err(to_client(code)),
            Err(_) => Err(ErrorCode::CoordinatorNotAvailable),
        }
    }

    /// The partition that owns the log.
    pub(crate) fn log(&self) -> &Partition {
        &self.log
    }

    /// Reads the state in memory.
    pub(crate) fn view<T>(&self, f: impl FnOnce(&S) -> T) -> Option<T> {
        self.state.lock().ok().map(|loaded| f(&loaded.state))
    }

    /// Changes the state in memory.
    pub(crate) fn update<T>(&self, f: impl FnOnce(&mut S) -> T) -> Option<T> {
        self.state
            .lock()
            .ok()
            .map(|mut loaded| f(&mut loaded.state))
    }

    /// Closes the log cleanly. Blocking.
    pub(crate) fn close_blocking(&self) {
        self.log.close_blocking(false);
    }
}

/// The partitions of one internal topic held on this broker, by partition.
#[derive(Debug)]
pub(crate) struct Hosted<S> {
    /// The topic's name, for directories and logs.
    topic: &'static str,
    stores: RwLock<HashMap<i32, Arc<StateLog<S>>>>,
    /// The topic's partition count.
    partitions: i32,
    data_dir: PathBuf,
    storage: Arc<Storage>,
    fsync: prometheus::Histogram,
}

/// The directory of partition `partition` of internal topic `topic`.
pub(crate) fn log_dir(data_dir: &Path, topic: &str, partition: i32) -> PathBuf {
    data_dir.join(format!("{topic}-{partition}"))
}

impl<S: Replayed + std::fmt::Debug + Sync> Hosted<S> {
    /// Opens the partitions `local` of `topic` (of `partitions`), each with its replica spec if
    /// replicated. Blocking.
    pub(crate) fn open(
        topic: &'static str,
        data_dir: &Path,
        partitions: i32,
        local: Vec<(i32, Option<ReplicaSpec>)>,
        storage: &Arc<Storage>,
        fsync: prometheus::Histogram,
    ) -> Result<Self, BrokerError> {
        let started = std::time::Instant::now();
        let local: Vec<(i32, Option<ReplicaSpec>)> = local
            .into_iter()
            .filter(|(p, _)| (0..partitions).contains(p))
            .collect();
        let indices: Vec<i32> = local.iter().map(|(p, _)| *p).collect();
        let opened = parallel(local, storage.threads(), |(p, replica)| {
            StateLog::open(
                log_dir(data_dir, topic, p),
                p,
                storage,
                fsync.clone(),
                replica,
            )
        });
        let mut stores = HashMap::with_capacity(opened.len());
        let mut failed = None;
        for (p, store) in indices.into_iter().zip(opened) {
            match store {
                Ok(store) => {
                    let _ = stores.insert(p, Arc::new(store));
                }
                Err(err) => failed = failed.or(Some(err)),
            }
        }
        if let Some(err) = failed {
            Storage::close_all(stores.values().map(|s| s.log()), false);
            return Err(err);
        }
        if !stores.is_empty() {
            tracing::info!(
                topic,
                partitions,
                hosted = stores.len(),
                elapsed_ms = started.elapsed().as_millis(),
                "opened an internal topic's partitions"
            );
        }
        Ok(Self {
            topic,
            stores: RwLock::new(stores),
            partitions,
            data_dir: data_dir.to_path_buf(),
            storage: storage.clone(),
            fsync,
        })
    }

    /// The topic's partition count.
    pub(crate) fn partitions(&self) -> i32 {
        self.partitions
    }

    /// The store of `partition` if hosted here, whether or not it serves.
    pub(crate) fn get(&self, partition: i32) -> Option<Arc<StateLog<S>>> {
        self.stores.read().ok()?.get(&partition).cloned()
    }

    /// Every hosted store, by partition.
    pub(crate) fn all(&self) -> Vec<(i32, Arc<StateLog<S>>)> {
        self.stores
            .read()
            .map(|s| s.iter().map(|(p, s)| (*p, s.clone())).collect())
            .unwrap_or_default()
    }

    /// Starts loading the state of every replicated partition that now leads here, so the
    /// first requests find it ready.
    pub(crate) fn load_led(&self) {
        for (_, store) in self.all() {
            let _ = store.serving();
        }
    }

    /// The hosted partitions whose replica found its data corrupt.
    pub(crate) fn corrupt(&self) -> Vec<i32> {
        self.all()
            .into_iter()
            .filter(|(_, store)| store.log().offsets().corrupt)
            .map(|(p, _)| p)
            .collect()
    }

    /// The published offsets of a hosted partition (its leadership, for the metadata).
    pub(crate) fn offsets_of(&self, partition: i32) -> Option<Offsets> {
        self.get(partition).map(|s| s.log().offsets())
    }

    /// Asks a hosted replicated partition to hand its leadership to broker `to` if it leads
    /// at `epoch` (ElectLeaders).
    pub(crate) fn hand_over(&self, partition: i32, to: i32, epoch: i32) {
        if let Some(store) = self.get(partition)
            && store.log().offsets().leading == Some(epoch)
        {
            store.log().transfer_leader(to);
        }
    }

    /// Opens one more partition (a replica of it, with `replica`).
    pub(crate) async fn host(
        &self,
        partition: i32,
        replica: Option<ReplicaSpec>,
    ) -> Result<(), BrokerError> {
        if !(0..self.partitions).contains(&partition) {
            return Err(BrokerError::Config(format!(
                "{} partition {partition} is not in 0..{}",
                self.topic, self.partitions
            )));
        }
        if self.stores.read().is_ok_and(|s| s.contains_key(&partition)) {
            return Ok(());
        }
        let dir = log_dir(&self.data_dir, self.topic, partition);
        let (storage, fsync) = (self.storage.clone(), self.fsync.clone());
        let store = tokio::task::spawn_blocking(move || {
            StateLog::open(dir, partition, &storage, fsync, replica)
        })
        .await
        .map_err(|err| BrokerError::Internal(format!("opening {}: {err}", self.topic)))??;
        let store = Arc::new(store);
        let raced = match self.stores.write() {
            Ok(mut stores) => match stores.get(&partition) {
                // Hosted meanwhile by another call: keep that one.
                Some(_) => true,
                None => stores.insert(partition, store.clone()).is_some(),
            },
            Err(_) => true,
        };
        if raced {
            tokio::task::spawn_blocking(move || store.close_blocking())
                .await
                .map_err(|err| BrokerError::Internal(format!("closing {}: {err}", self.topic)))?;
        }
        Ok(())
    }

    /// Takes a partition out of the hosted ones and closes its log cleanly.
    pub(crate) async fn release(&self, partition: i32) {
        let store = self
            .stores
            .write()
            .ok()
            .and_then(|mut s| s.remove(&partition));
        if let Some(store) = store
            && let Err(err) = tokio::task::spawn_blocking(move || store.close_blocking()).await
        {
            tracing::error!(%err, topic = self.topic, partition, "closing an internal partition");
        }
    }

    /// Closes every hosted partition cleanly. Blocking.
    pub(crate) fn close_blocking(&self) {
        let stores: Vec<Arc<StateLog<S>>> = self.all().into_iter().map(|(_, s)| s).collect();
        Storage::close_all(stores.iter().map(|s| s.log()), false);
    }
}
