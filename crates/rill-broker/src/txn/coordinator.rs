//! The transaction coordinator of the transactional ids whose partition of
//! `__transaction_state` this broker leads (Kafka places them as groups are placed, by a hash of
//! the id). Each id's state changes one request at a time (a lock per id), and every change is
//! durable in the partition's log before it is answered.
//!
//! Ending a transaction is two steps, as in Kafka: EndTxn writes PrepareCommit or PrepareAbort
//! and is answered; then the markers are written to every partition of the transaction (by the
//! task [`run`], from the broker's side), and only then CompleteCommit or CompleteAbort. The
//! same task aborts transactions past their timeout (fencing their producer with a new epoch)
//! and finishes those a previous leader prepared, so a transaction always ends after a restart
//! or a failover, never hangs.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rill_protocol::ErrorCode;
use rill_record::Marker;
use tokio::sync::mpsc;

use super::TXN_TOPIC;
use super::state::{Caller, TxnKey, TxnLog, TxnMeta, TxnState};
use crate::broker::Broker;
use crate::error::BrokerError;
use crate::internal::{Hosted, StateLog, encode};
use crate::partition::{ReplicaSpec, Storage, now_ms};

/// How often open transactions are checked against their timeouts, and prepared ones
/// without a writer looked for (Kafka's
/// `transaction.abort.timed.out.transaction.cleanup.interval.ms` is 10 s).
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// How long a marker waits before it is tried again.
const MARKER_RETRY: Duration = Duration::from_millis(100);

/// Every this many sweeps, idle transactional ids expire and the logs are rewritten.
const HOUSEKEEPING_SWEEPS: u64 = 60;

/// Kafka's `transactional.id.expiration.ms`: a transactional id with no transaction open and
/// no request for a week is forgotten.
const ID_EXPIRATION_MS: i64 = 7 * 24 * 60 * 60 * 1000;

/// A transactional id's state as DescribeTransactions shows it.
#[derive(Debug, Clone)]
pub(crate) struct TxnView {
    pub(crate) transactional_id: String,
    pub(crate) meta: TxnMeta,
}

/// The transaction coordinator.
#[derive(Debug)]
pub(crate) struct TxnCoordinator {
    stores: Hosted<TxnLog>,
    /// `transaction.max.timeout.ms`.
    max_timeout_ms: i32,
    /// One change at a time per transactional id.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The transactions whose markers are being written now.
    completing: Mutex<HashSet<String>>,
    /// Transactions to complete, for [`run`].
    jobs: mpsc::UnboundedSender<String>,
    /// Sweeps so far.
    sweeps: std::sync::atomic::AtomicU64,
    /// Transactions ended here, by result.
    ended: prometheus::IntCounterVec,
    jobs_rx: Mutex<Option<mpsc::UnboundedReceiver<String>>>,
}

type Store = Arc<StateLog<TxnLog>>;

impl TxnCoordinator {
    /// Opens the partitions `local` of `__transaction_state` (of `partitions`). Blocking.
    pub(crate) fn open(
        data_dir: &Path,
        partitions: i32,
        local: Vec<(i32, Option<ReplicaSpec>)>,
        storage: &Arc<Storage>,
        fsync: prometheus::Histogram,
        max_timeout_ms: i32,
        ended: prometheus::IntCounterVec,
    ) -> Result<Self, BrokerError> {
        let stores = Hosted::open(TXN_TOPIC, data_dir, partitions, local, storage, fsync)?;
        let (jobs, jobs_rx) = mpsc::unbounded_channel();
        Ok(Self {
            stores,
            max_timeout_ms,
            locks: Mutex::new(HashMap::new()),
            completing: Mutex::new(HashSet::new()),
            jobs,
            sweeps: std::sync::atomic::AtomicU64::new(0),
            ended,
            jobs_rx: Mutex::new(Some(jobs_rx)),
        })
    }

    /// The hosted partitions of `__transaction_state`.
    pub(crate) fn hosting(&self) -> &Hosted<TxnLog> {
        &self.stores
    }

    /// The store of `transactional_id` and the coordinator epoch, if coordinated here:
    /// NOT_COORDINATOR or COORDINATOR_LOAD_IN_PROGRESS otherwise (clients retry).
    fn store(&self, transactional_id: &str) -> Result<(Store, i32), ErrorCode> {
        let partition = super::txn_partition(transactional_id, self.stores.partitions());
        let store = self
            .stores
            .get(partition)
            .ok_or(ErrorCode::NotCoordinator)?;
        let epoch = store.serving()?;
        Ok((store, epoch))
    }

    fn lock(&self, transactional_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let Ok(mut locks) = self.locks.lock() else {
            return Arc::default();
        };
        if locks.len() > 10_000 {
            locks.retain(|_, lock| Arc::strong_count(lock) > 1);
        }
        locks
            .entry(transactional_id.to_owned())
            .or_default()
            .clone()
    }

    fn meta(store: &Store, transactional_id: &str) -> Option<TxnMeta> {
        store.view(|log| log.txns.get(transactional_id).cloned())?
    }

    /// Writes a transactional id's new state, then keeps it in memory.
    async fn save(store: &Store, transactional_id: &str, meta: TxnMeta) -> Result<(), ErrorCode> {
        let key = TxnKey {
            transactional_id: transactional_id.to_owned(),
        };
        let batch = encode(std::iter::once((key, Some(&meta))))?;
        store
            .write_then(batch, |log| {
                let _ = log.txns.insert(transactional_id.to_owned(), meta);
            })
            .await
    }

    /// InitProducerId for a transactional id: its producer id and a new epoch, which fences
    /// every older instance. A transaction still open is aborted first (the caller hears
    /// CONCURRENT_TRANSACTIONS and retries). With `known` (KIP-360), only the current producer
    /// (or one retrying the last bump) may ask.
    pub(crate) async fn init_producer(
        &self,
        broker: &Broker,
        transactional_id: &str,
        timeout_ms: i32,
        known: Option<Caller>,
    ) -> Result<Caller, ErrorCode> {
        if timeout_ms <= 0 || timeout_ms > self.max_timeout_ms {
            return Err(ErrorCode::InvalidTransactionTimeout);
        }
        let (store, _) = self.store(transactional_id)?;
        let lock = self.lock(transactional_id);
        let _held = lock.lock().await;
        let now = now_ms();
        let Some(mut meta) = Self::meta(&store, transactional_id) else {
            if known.is_some_and(|k| k.producer_id >= 0) {
                return Err(ErrorCode::InvalidProducerIdMapping);
            }
            let meta = new_producer(broker, timeout_ms, now).await?;
            let producer_id = meta.producer_id;
            Self::save(&store, transactional_id, meta).await?;
            return Ok(Caller {
                producer_id,
                producer_epoch: 0,
            });
        };
        if let Some(known) = known.filter(|k| k.producer_id >= 0) {
            if known.producer_id != meta.producer_id {
                return Err(ErrorCode::ProducerFenced);
            }
            let retry = known.producer_epoch == meta.last_producer_epoch
                && meta.state != TxnState::Ongoing
                && !meta.state.preparing();
            if retry {
                return Ok(Caller {
                    producer_id: meta.producer_id,
                    producer_epoch: meta.producer_epoch,
                });
            }
            if known.producer_epoch != meta.producer_epoch {
                return Err(ErrorCode::ProducerFenced);
            }
        }
        match meta.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                self.complete_later(transactional_id);
                return Err(ErrorCode::ConcurrentTransactions);
            }
            TxnState::Ongoing => {
                // Fence the producer that opened it, abort, and let the caller come back.
                meta.bump();
                let _ = meta.end(false, now);
                Self::save(&store, transactional_id, meta).await?;
                self.ended.with_label_values(&["fenced"]).inc();
                self.complete_later(transactional_id);
                return Err(ErrorCode::ConcurrentTransactions);
            }
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {}
        }
        if meta.exhausted() {
            meta = new_producer(broker, timeout_ms, now).await?;
        } else {
            meta.bump();
            meta.timeout_ms = timeout_ms;
            meta.state = TxnState::Empty;
            meta.partitions = BTreeSet::new();
            meta.start_ms = -1;
            meta.update_ms = now;
        }
        let caller = Caller {
            producer_id: meta.producer_id,
            producer_epoch: meta.producer_epoch,
        };
        Self::save(&store, transactional_id, meta).await?;
        Ok(caller)
    }

    /// AddPartitionsToTxn and AddOffsetsToTxn: the partitions join the producer's transaction,
    /// which opens if it was not. `tv2`: added implicitly, by the produce or offset commit of
    /// a client of transaction version 2.
    pub(crate) async fn add_partitions(
        &self,
        transactional_id: &str,
        caller: Caller,
        partitions: Vec<(String, i32)>,
        tv2: bool,
    ) -> Result<(), ErrorCode> {
        let added = self.change(transactional_id, caller, |meta| {
            meta.add(partitions, now_ms(), tv2)
        });
        added.await.map(|_| ())
    }

    /// Changes the transaction of the caller's transactional id under its lock; `change` says
    /// whether there is anything to write, which is then written. Whether it was.
    async fn change(
        &self,
        transactional_id: &str,
        caller: Caller,
        change: impl FnOnce(&mut TxnMeta) -> Result<bool, ErrorCode>,
    ) -> Result<bool, ErrorCode> {
        let (store, _) = self.store(transactional_id)?;
        let lock = self.lock(transactional_id);
        let _held = lock.lock().await;
        let mut meta =
            Self::meta(&store, transactional_id).ok_or(ErrorCode::InvalidProducerIdMapping)?;
        meta.check(caller)?;
        let changed = change(&mut meta)?;
        if changed {
            Self::save(&store, transactional_id, meta).await?;
        }
        Ok(changed)
    }

    /// KIP-890's check for a partition leader: is this partition in the producer's open
    /// transaction? INVALID_TXN_STATE if not; PRODUCER_FENCED for another epoch.
    pub(crate) fn verify(
        &self,
        transactional_id: &str,
        caller: Caller,
        topic: &str,
        partition: i32,
    ) -> Result<(), ErrorCode> {
        let (store, _) = self.store(transactional_id)?;
        let meta =
            Self::meta(&store, transactional_id).ok_or(ErrorCode::InvalidProducerIdMapping)?;
        meta.check(caller)?;
        let listed = meta
            .partitions
            .iter()
            .any(|(t, p)| t == topic && *p == partition);
        if meta.state == TxnState::Ongoing && listed {
            Ok(())
        } else {
            Err(ErrorCode::InvalidTxnState)
        }
    }

    /// EndTxn: PrepareCommit or PrepareAbort is written and answered; the markers follow.
    /// With `tv2` (EndTxn v5+, KIP-890 part 2) the epoch is bumped as the transaction ends.
    /// The producer id and epoch the producer goes on with.
    pub(crate) async fn end(
        &self,
        broker: &Broker,
        transactional_id: &str,
        caller: Caller,
        commit: bool,
        tv2: bool,
    ) -> Result<Caller, ErrorCode> {
        let (store, _) = self.store(transactional_id)?;
        let lock = self.lock(transactional_id);
        let _held = lock.lock().await;
        let mut meta =
            Self::meta(&store, transactional_id).ok_or(ErrorCode::InvalidProducerIdMapping)?;
        let now = now_ms();
        let ended = if tv2 {
            meta.check_end(caller)?;
            let next_producer_id = if meta.state == TxnState::Ongoing && meta.exhausted() {
                new_producer(broker, meta.timeout_ms, now)
                    .await?
                    .producer_id
            } else {
                -1
            };
            meta.end_v2(commit, now, next_producer_id)?
        } else {
            meta.check(caller)?;
            meta.end(commit, now)?
        };
        let next = meta.next_caller();
        if ended {
            Self::save(&store, transactional_id, meta).await?;
            let result = if commit { "committed" } else { "aborted" };
            self.ended.with_label_values(&[result]).inc();
            self.complete_later(transactional_id);
        }
        Ok(next)
    }

    /// Every transactional id coordinated here, with its state.
    pub(crate) fn list(&self) -> Vec<TxnView> {
        let mut all = Vec::new();
        for (_, store) in self.stores.all() {
            if store.serving().is_err() {
                continue;
            }
            let txns = store.view(|log| {
                log.txns
                    .iter()
                    .map(|(id, meta)| TxnView {
                        transactional_id: id.clone(),
                        meta: meta.clone(),
                    })
                    .collect::<Vec<_>>()
            });
            all.extend(txns.unwrap_or_default());
        }
        all.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        all
    }

    /// One transactional id's state (DescribeTransactions): TRANSACTIONAL_ID_NOT_FOUND if none.
    pub(crate) fn describe(&self, transactional_id: &str) -> Result<TxnMeta, ErrorCode> {
        let (store, _) = self.store(transactional_id)?;
        Self::meta(&store, transactional_id).ok_or(ErrorCode::TransactionalIdNotFound)
    }

    fn complete_later(&self, transactional_id: &str) {
        let _ = self.jobs.send(transactional_id.to_owned());
    }

    /// Aborts the open transactions past their timeout, fencing their producer with a new
    /// epoch (as Kafka does), and queues the prepared ones nobody is completing.
    async fn sweep(&self) {
        let now = now_ms();
        let sweeps = self
            .sweeps
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if sweeps % HOUSEKEEPING_SWEEPS == HOUSEKEEPING_SWEEPS - 1 {
            self.housekeeping(now).await;
        }
        for (_, store) in self.stores.all() {
            if store.serving().is_err() {
                continue;
            }
            let due: Vec<(String, bool)> = store
                .view(|log| {
                    log.txns
                        .iter()
                        .filter(|(_, m)| m.expired(now) || m.state.preparing())
                        .map(|(id, m)| (id.clone(), m.state.preparing()))
                        .collect()
                })
                .unwrap_or_default();
            for (transactional_id, prepared) in due {
                if prepared {
                    let busy = self
                        .completing
                        .lock()
                        .is_ok_and(|c| c.contains(&transactional_id));
                    if !busy {
                        self.complete_later(&transactional_id);
                    }
                    continue;
                }
                if let Err(code) = self.abort_expired(&store, &transactional_id).await {
                    tracing::debug!(
                        transactional_id,
                        error = code.name(),
                        "aborting an expired transaction"
                    );
                }
            }
        }
    }

    /// Forgets the transactional ids idle for `transactional.id.expiration.ms` (a tombstone
    /// each), and rewrites a log that holds many more records than live ids.
    async fn housekeeping(&self, now: i64) {
        for (_, store) in self.stores.all() {
            if store.serving().is_err() {
                continue;
            }
            let idle: Vec<String> = store
                .view(|log| {
                    log.txns
                        .iter()
                        .filter(|(_, m)| {
                            !m.state.preparing()
                                && m.state != TxnState::Ongoing
                                && now.saturating_sub(m.update_ms) > ID_EXPIRATION_MS
                        })
                        .map(|(id, _)| id.clone())
                        .collect()
                })
                .unwrap_or_default();
            for transactional_id in idle {
                let lock = self.lock(&transactional_id);
                let _held = lock.lock().await;
                let key = TxnKey {
                    transactional_id: transactional_id.clone(),
                };
                let Ok(batch) = encode(std::iter::once((key, None::<&TxnMeta>))) else {
                    continue;
                };
                let removed = store
                    .write_then(batch, |log| log.txns.remove(&transactional_id))
                    .await;
                if removed.is_ok() {
                    tracing::info!(transactional_id, "forgot an expired transactional id");
                }
            }
            let live = store.view(|log| log.txns.len()).unwrap_or(0);
            let rewritten = store
                .rewrite(live, |log| {
                    let all: Vec<(TxnKey, &TxnMeta)> = log
                        .txns
                        .iter()
                        .map(|(id, meta)| {
                            let key = TxnKey {
                                transactional_id: id.clone(),
                            };
                            (key, meta)
                        })
                        .collect();
                    all.chunks(10_000)
                        .map(|chunk| encode(chunk.iter().map(|(k, m)| (k.clone(), Some(*m)))))
                        .collect()
                })
                .await;
            if let Err(code) = rewritten {
                tracing::warn!(error = code.name(), "rewriting a transaction state log");
            }
        }
    }

    async fn abort_expired(&self, store: &Store, transactional_id: &str) -> Result<(), ErrorCode> {
        let lock = self.lock(transactional_id);
        let _held = lock.lock().await;
        let now = now_ms();
        let Some(mut meta) = Self::meta(store, transactional_id).filter(|m| m.expired(now)) else {
            return Ok(());
        };
        tracing::info!(
            transactional_id,
            producer_id = meta.producer_id,
            timeout_ms = meta.timeout_ms,
            "aborting a transaction past its timeout"
        );
        meta.bump();
        let _ = meta.end(false, now)?;
        Self::save(store, transactional_id, meta).await?;
        self.ended.with_label_values(&["timed_out"]).inc();
        self.complete_later(transactional_id);
        Ok(())
    }

    /// Writes the markers of a prepared transaction, then completes it. Gives up (for the
    /// next sweep) when this broker no longer coordinates it.
    async fn complete(&self, broker: &Broker, transactional_id: &str) {
        loop {
            let Ok((store, coordinator_epoch)) = self.store(transactional_id) else {
                return;
            };
            let Some(meta) = Self::meta(&store, transactional_id) else {
                return;
            };
            if !meta.state.preparing() {
                return;
            }
            let marker = Marker {
                commit: meta.state == TxnState::PrepareCommit,
                coordinator_epoch,
            };
            let mut left = Vec::new();
            for (topic, partition) in &meta.partitions {
                let written = super::markers::write(
                    broker,
                    topic,
                    *partition,
                    meta.producer_id,
                    meta.producer_epoch,
                    marker,
                )
                .await;
                if let Err(code) = written {
                    tracing::debug!(
                        transactional_id,
                        topic,
                        partition,
                        error = code.name(),
                        "a transaction marker waits to be written"
                    );
                    left.push((topic.clone(), *partition));
                }
            }
            if left.is_empty() {
                let lock = self.lock(transactional_id);
                let _held = lock.lock().await;
                let Some(mut meta) =
                    Self::meta(&store, transactional_id).filter(|m| m.state.preparing())
                else {
                    return;
                };
                meta.complete(now_ms());
                match Self::save(&store, transactional_id, meta).await {
                    Ok(()) => return,
                    Err(code) => {
                        tracing::debug!(
                            transactional_id,
                            error = code.name(),
                            "completing a transaction"
                        );
                    }
                }
            }
            tokio::time::sleep(MARKER_RETRY).await;
        }
    }
}

/// A transactional id's state with a new producer id, at epoch 0.
async fn new_producer(broker: &Broker, timeout_ms: i32, now: i64) -> Result<TxnMeta, ErrorCode> {
    let producer_id = broker
        .allocate_producer_id()
        .await
        .map_err(|(code, _)| code)?;
    Ok(TxnMeta::new(producer_id, timeout_ms, now))
}

/// The coordinator's task: completes prepared transactions (each on its own task) and sweeps
/// for expired ones, until the broker stops.
pub(crate) async fn run(broker: Arc<Broker>) {
    let Some(mut jobs) = broker.txns.jobs_rx.lock().ok().and_then(|mut rx| rx.take()) else {
        return;
    };
    let mut sweep = tokio::time::interval(SWEEP_INTERVAL);
    loop {
        tokio::select! {
            job = jobs.recv() => {
                let Some(transactional_id) = job else { return };
                let fresh = broker
                    .txns
                    .completing
                    .lock()
                    .is_ok_and(|mut c| c.insert(transactional_id.clone()));
                if !fresh {
                    continue;
                }
                let broker = broker.clone();
                drop(tokio::spawn(async move {
                    broker.txns.complete(&broker, &transactional_id).await;
                    if let Ok(mut completing) = broker.txns.completing.lock() {
                        let _ = completing.remove(&transactional_id);
                    }
                }));
            }
            _ = sweep.tick() => broker.txns.sweep().await,
            () = broker.stopping.cancelled() => return,
        }
    }
}
