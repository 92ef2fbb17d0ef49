//! The producer's background task: it owns the accumulator, partitions records, sends ready
//! batches (at most `max_in_flight` requests per broker), and turns answers into outcomes,
//! retrying what may succeed later. Other tasks talk to it over channels only.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use rill_protocol::kafka_protocol::messages::produce_request::{
    PartitionProduceData, TopicProduceData,
};
use rill_protocol::kafka_protocol::messages::{
    InitProducerIdRequest, ProduceRequest, ProduceResponse, TopicName, TransactionalId,
};
use rill_protocol::{ErrorCode, StrBytes};
use rill_record::BatchBuilder;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::accumulator::{Accumulator, ProducerBatch, TopicPartition};
use super::partitioner::PartitionerState;
use super::transaction::{Answer, Coordinator, Request, Transactions};
use super::{Acks, Pending, ProducerConfig, ProducerRecord, RecordMetadata, Reply, now_ms};
use crate::cluster::{Cluster, TopicMetadata};
use crate::error::{ClientError, Result};

/// Most commands the sender loop takes from its channel per turn.
const RECV_CHUNK: usize = 1024;
/// The newest Produce version for transactional batches: v12 belongs to KIP-890 part 2
/// (partitions added implicitly), which clients use only once the broker announces
/// `transaction.version` 2; until then partitions are added with AddPartitionsToTxn.
const MAX_TRANSACTIONAL_PRODUCE_VERSION: i16 = 11;

enum Command {
    Send(Pending),
    Flush(oneshot::Sender<()>),
    Close(oneshot::Sender<()>),
    Transaction(Request, oneshot::Sender<Result<()>>),
}

enum Event {
    Metadata(String, Result<TopicMetadata>),
    ProducerId(Result<(i64, i16)>),
    Produced(i32, Vec<(ProducerBatch, Result<(i64, i64)>)>),
    Transaction(Answer),
}

/// The handle producers hold: the command channel into the task.
#[derive(Debug, Clone)]
pub(crate) struct Handle {
    commands: mpsc::Sender<Command>,
    cluster: Arc<Cluster>,
    transactional: bool,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Send(_) => "Send",
            Self::Flush(_) => "Flush",
            Self::Close(_) => "Close",
            Self::Transaction(..) => "Transaction",
        })
    }
}

impl Handle {
    pub(crate) fn start(config: ProducerConfig, cluster: Arc<Cluster>) -> Self {
        let (commands, rx) = mpsc::channel(config.channel_buffer);
        let (events_tx, events) = mpsc::unbounded_channel();
        let transactional = config.transactional_id.is_some();
        let coordinator = config.transactional_id.as_ref().map(|id| {
            Arc::new(Coordinator::new(
                Arc::clone(&cluster),
                id.clone(),
                config.transaction_timeout,
                config.retry_backoff,
                config.delivery_timeout,
            ))
        });
        let task = Sender {
            txn: config.transactional_id.clone().map(Transactions::new),
            coordinator,
            accumulator: Accumulator::new(config.batch_size, config.linger),
            partitioner: PartitionerState::new(config.partitioner),
            cluster: Arc::clone(&cluster),
            config,
            events_tx,
            waiting: HashMap::new(),
            fetching: HashSet::new(),
            metadata_retry: HashMap::new(),
            in_flight: HashMap::new(),
            outstanding: Outstanding::default(),
            buffered: 0,
            chunk_topic: None,
            flushes: Vec::new(),
            closing: None,
            next_id: 0,
            producer_id: None,
            fetching_pid: false,
            pid_retry_at: None,
            reset_pid: false,
            sequences: HashMap::new(),
            turns: HashMap::new(),
        };
        drop(tokio::spawn(task.run(rx, events)));
        Self {
            commands,
            cluster,
            transactional,
        }
    }

    pub(crate) fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    pub(crate) async fn enqueue(&self, record: ProducerRecord, reply: Reply) -> Result<()> {
        let size = record.estimated_size();
        let record_timestamp = record.timestamp.unwrap_or_else(now_ms);
        let pending = Pending {
            id: 0,
            record,
            reply,
            enqueued: Instant::now(),
            timestamp: record_timestamp,
            size,
        };
        self.commands
            .send(Command::Send(pending))
            .await
            .map_err(|_closed| ClientError::Closed("producer"))
    }

    pub(crate) async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    pub(crate) async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Close(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Hands a transaction request to the task, in line with the records sent before it,
    /// and waits for its outcome.
    pub(crate) async fn transaction(&self, request: Request) -> Result<()> {
        if !self.transactional {
            return Err(ClientError::Config(
                "transactions need a transactional_id in the ProducerConfig".to_owned(),
            ));
        }
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Transaction(request, tx))
            .await
            .map_err(|_closed| ClientError::Closed("producer"))?;
        rx.await
            .unwrap_or_else(|_dropped| Err(ClientError::Closed("producer")))
    }
}

struct Sender {
    config: ProducerConfig,
    cluster: Arc<Cluster>,
    accumulator: Accumulator,
    partitioner: PartitionerState,
    events_tx: mpsc::UnboundedSender<Event>,
    /// Records whose topic's metadata is being fetched.
    waiting: HashMap<String, Vec<Pending>>,
    fetching: HashSet<String>,
    metadata_retry: HashMap<String, Instant>,
    /// Produce requests in flight per broker.
    in_flight: HashMap<i32, usize>,
    /// Ids of records without an outcome yet.
    outstanding: Outstanding,
    /// Bytes of the records in the accumulator, queued or in flight: no command is taken
    /// while this is at `buffer_memory` (back-pressure to `send`).
    buffered: usize,
    /// The topic of the last record taken, valid for one chunk of commands: records in a
    /// chunk mostly go to one topic, and metadata may change between chunks.
    chunk_topic: Option<Arc<TopicMetadata>>,
    /// Flushes waiting for every record up to an id.
    flushes: Vec<(u64, oneshot::Sender<()>)>,
    closing: Option<oneshot::Sender<()>>,
    next_id: u64,
    producer_id: Option<(i64, i16)>,
    fetching_pid: bool,
    pid_retry_at: Option<Instant>,
    /// A sent batch failed for good: get a new producer id once nothing is in flight.
    reset_pid: bool,
    /// Next sequence per partition (idempotence).
    sequences: HashMap<TopicPartition, i32>,
    /// Per broker, the signal that the last produce request handed to a task is queued on
    /// the connection: the next one waits for it (see [`Turn`]).
    turns: HashMap<i32, oneshot::Receiver<()>>,
    /// The transaction state machine, with a `transactional_id`.
    txn: Option<Transactions>,
    /// Makes the transaction's calls to the coordinators, with a `transactional_id`.
    coordinator: Option<Arc<Coordinator>>,
}

/// A produce request's place in line on its broker's connection.
///
/// Requests are built and sent by tasks of their own, so that encoding and compressing run
/// beside the sender loop; but tasks run in any order, and the broker must receive a
/// partition's batches in the order the loop made them (it refuses an idempotent batch whose
/// sequence skips ahead, and without idempotence records would land out of order). So each
/// task waits until the previous request to the same broker is queued on the connection
/// (or has failed before that) and then queues its own, which releases the next.
#[derive(Debug)]
struct Turn {
    after: Option<oneshot::Receiver<()>>,
    /// Dropped once this request is queued (or will never be): the next may go.
    done: oneshot::Sender<()>,
}

impl Turn {
    async fn wait(&mut self) {
        if let Some(after) = self.after.take() {
            // Sent or dropped: either way the previous request is queued or gone.
            let _ = after.await;
        }
    }

    /// This request is queued: the next may go. (Dropping a turn does the same, for the
    /// paths that fail before queueing.)
    fn release(self) {
        let _ = self.done.send(());
    }
}

/// Ids of records without an outcome yet. Ids are handed out in order and outcomes mostly
/// arrive in order, so a window from the oldest open id does what a set would, in O(1).
#[derive(Debug, Default)]
struct Outstanding {
    /// The id of `done[0]`.
    first: u64,
    done: VecDeque<bool>,
    open: usize,
}

impl Outstanding {
    /// `id` is the next id handed out.
    fn insert(&mut self, id: u64) {
        debug_assert_eq!(id, self.first + self.done.len() as u64);
        self.done.push_back(false);
        self.open += 1;
    }

    fn remove(&mut self, id: u64) {
        let slot = id
            .checked_sub(self.first)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| self.done.get_mut(i));
        if let Some(slot) = slot.filter(|done| !**done) {
            *slot = true;
            self.open -= 1;
        }
        while self.done.front() == Some(&true) {
            let _ = self.done.pop_front();
            self.first += 1;
        }
    }

    fn is_empty(&self) -> bool {
        self.open == 0
    }

    /// The oldest id without an outcome.
    fn first(&self) -> Option<u64> {
        (self.open > 0).then_some(self.first)
    }
}

impl Sender {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut events: mpsc::UnboundedReceiver<Event>,
    ) {
        let mut accepting = true;
        // Commands are taken in chunks: the housekeeping of a turn of the loop (timeouts,
        // what is ready to send, the next timer) then costs once per chunk, not per record.
        let mut received = Vec::with_capacity(RECV_CHUNK);
        loop {
            self.step().await;
            if let Some(done) = self.finished() {
                let _ = done.send(());
                return;
            }
            let wakeup = self.next_wakeup();
            tokio::select! {
                n = commands.recv_many(&mut received, RECV_CHUNK), if accepting && self.buffered < self.config.buffer_memory => {
                    if n == 0 {
                        accepting = false;
                        let (done, _) = oneshot::channel();
                        self.closing = Some(done);
                        if let Some(txn) = &mut self.txn {
                            txn.close();
                        }
                    }
                    let mut closing = None;
                    self.chunk_topic = None;
                    for command in received.drain(..) {
                        match command {
                            Command::Send(pending) => self.accept(pending).await,
                            Command::Flush(done) => self.flushes.push((self.next_id, done)),
                            Command::Close(done) if closing.is_none() => closing = Some(done),
                            Command::Close(done) => self.flushes.push((self.next_id, done)),
                            Command::Transaction(request, reply) => self.transaction(request, reply),
                        }
                    }
                    if let Some(done) = closing {
                        // Refuse new records; what is queued in the channel is still taken.
                        commands.close();
                        while let Some(command) = commands.recv().await {
                            match command {
                                Command::Send(pending) => self.accept(pending).await,
                                Command::Flush(d) | Command::Close(d) => self.flushes.push((self.next_id, d)),
                                Command::Transaction(request, reply) => self.transaction(request, reply),
                            }
                        }
                        accepting = false;
                        self.closing = Some(done);
                        // An open transaction is aborted before the producer stops.
                        if let Some(txn) = &mut self.txn {
                            txn.close();
                        }
                    }
                },
                Some(event) = events.recv() => self.on_event(event).await,
                () = sleep_until(wakeup) => {}
            }
        }
    }

    fn transaction(&mut self, request: Request, reply: oneshot::Sender<Result<()>>) {
        match &mut self.txn {
            Some(txn) => txn.request(request, reply),
            None => {
                let _ = reply.send(Err(ClientError::Config(
                    "transactions need a transactional_id in the ProducerConfig".to_owned(),
                )));
            }
        }
    }

    fn finished(&mut self) -> Option<oneshot::Sender<()>> {
        let idle = self.outstanding.is_empty();
        if idle {
            for (_, done) in self.flushes.drain(..) {
                let _ = done.send(());
            }
        } else if let Some(first) = self.outstanding.first() {
            let (done, waiting): (Vec<_>, Vec<_>) =
                self.flushes.drain(..).partition(|(upto, _)| *upto <= first);
            self.flushes = waiting;
            for (_, tx) in done {
                let _ = tx.send(());
            }
        }
        let txn_idle = self.txn.as_ref().is_none_or(Transactions::idle);
        if idle && txn_idle {
            self.closing.take()
        } else {
            None
        }
    }

    fn next_wakeup(&self) -> Option<Instant> {
        // Batches can only go once the producer id is known: until then their linger
        // deadlines would wake the loop for nothing, over and over.
        let waiting_for_pid =
            self.config.enable_idempotence && (self.producer_id.is_none() || self.reset_pid);
        let mut at = if waiting_for_pid {
            None
        } else {
            // Batches of partitions the transaction coordinator has not added yet wait for
            // it, not for their linger.
            let txn = self.txn.as_ref();
            self.accumulator
                .next_wakeup(|tp| txn.is_none_or(|txn| txn.may_send_to(tp)))
        };
        let mut consider = |t: Option<Instant>| {
            at = match (at, t) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        };
        consider(self.metadata_retry.values().min().copied());
        consider(self.pid_retry_at);
        // Delivery timeouts are checked at least every 100 ms while records wait.
        if !self.outstanding.is_empty() {
            consider(Some(Instant::now() + std::time::Duration::from_millis(100)));
        }
        at
    }

    async fn accept(&mut self, mut pending: Pending) {
        pending.id = self.next_id;
        self.next_id += 1;
        self.outstanding.insert(pending.id);
        if let Some(Err(err)) = self.txn.as_ref().map(Transactions::check_send) {
            // Refused, not failed: the transaction (if any) is not harmed by it.
            self.outstanding.remove(pending.id);
            pending.complete(Err(err)).await;
            return;
        }
        if pending.size > self.config.max_request_size {
            let err = ClientError::RecordTooLarge {
                topic: pending.record.topic.clone(),
                size: pending.size,
                max: self.config.max_request_size,
            };
            self.complete(pending, Err(err)).await;
            return;
        }
        let topic = &pending.record.topic;
        let meta = match &self.chunk_topic {
            Some(meta) if meta.name == *topic => Some(Arc::clone(meta)),
            _ => {
                let meta = self
                    .cluster
                    .cached_topic_shared(topic)
                    .filter(|t| t.error.is_none());
                self.chunk_topic.clone_from(&meta);
                meta
            }
        };
        match meta {
            Some(meta) if !self.waiting.contains_key(topic) => self.place(&meta, pending).await,
            _ => {
                let topic = topic.clone();
                self.waiting.entry(topic.clone()).or_default().push(pending);
                self.fetch_metadata(topic);
            }
        }
    }

    fn fetch_metadata(&mut self, topic: String) {
        if self.metadata_retry.contains_key(&topic) || !self.fetching.insert(topic.clone()) {
            return;
        }
        let cluster = Arc::clone(&self.cluster);
        let events = self.events_tx.clone();
        drop(tokio::spawn(async move {
            let result = cluster.topic_metadata(&topic).await;
            let _ = events.send(Event::Metadata(topic, result));
        }));
    }

    /// Partitions a record and appends it.
    async fn place(&mut self, meta: &TopicMetadata, pending: Pending) {
        let count = meta.partition_count();
        let chosen = match pending.record.partition {
            Some(p) => Some(p),
            None => self
                .partitioner
                .choose(&meta.name, pending.record.key.as_deref(), count),
        };
        let partition = match chosen {
            Some(p) if (0..count).contains(&p) => p,
            other => {
                let err = ClientError::InvalidPartition {
                    topic: meta.name.clone(),
                    partition: other,
                    partitions: count,
                };
                self.complete(pending, Err(err)).await;
                return;
            }
        };
        let tp = (meta.name.clone(), partition);
        if let Some(txn) = &mut self.txn {
            txn.joined(&tp);
        }
        let now = pending.enqueued;
        self.buffered += pending.size;
        if self.accumulator.append(tp, pending, now) {
            self.partitioner.batch_closed(&meta.name, partition);
        }
    }

    async fn on_event(&mut self, event: Event) {
        match event {
            Event::Metadata(topic, result) => {
                let _ = self.fetching.remove(&topic);
                let records = self.waiting.remove(&topic).unwrap_or_default();
                match result {
                    Ok(meta) => {
                        for pending in records {
                            self.place(&meta, pending).await;
                        }
                    }
                    Err(err) if err.is_retriable() => {
                        tracing::debug!(%topic, %err, "metadata not ready; retrying");
                        let _ = self.waiting.insert(topic.clone(), records);
                        let _ = self
                            .metadata_retry
                            .insert(topic, Instant::now() + self.config.retry_backoff);
                    }
                    Err(err) => {
                        for pending in records {
                            self.complete(pending, Err(err.clone())).await;
                        }
                    }
                }
            }
            Event::ProducerId(result) => {
                self.fetching_pid = false;
                match result {
                    Ok(pid) => {
                        tracing::debug!(producer_id = pid.0, producer_epoch = pid.1, "producer id");
                        self.producer_id = Some(pid);
                        self.sequences.clear();
                        self.accumulator.reset_sequences();
                    }
                    Err(ClientError::UnsupportedApi { .. }) => {
                        // A broker without InitProducerId: as the Java client does when
                        // idempotence is on by default, produce without it.
                        tracing::warn!(
                            "the broker does not support idempotent producers; producing without idempotence"
                        );
                        self.config.enable_idempotence = false;
                    }
                    Err(err) => {
                        tracing::debug!(%err, "init producer id failed; retrying");
                        self.pid_retry_at = Some(Instant::now() + self.config.retry_backoff);
                    }
                }
            }
            Event::Produced(leader, results) => {
                if let Some(n) = self.in_flight.get_mut(&leader) {
                    *n = n.saturating_sub(1);
                }
                for (batch, result) in results {
                    self.on_produced(batch, result).await;
                }
            }
            Event::Transaction(answer) => {
                if let Some(txn) = &mut self.txn {
                    txn.answer(answer);
                    if txn.producer() != self.producer_id {
                        // A new producer id or epoch: sequences start again (nothing is
                        // queued or in flight then).
                        self.producer_id = txn.producer();
                        self.sequences.clear();
                        self.accumulator.reset_sequences();
                    }
                }
            }
        }
    }

    async fn on_produced(&mut self, mut batch: ProducerBatch, result: Result<(i64, i64)>) {
        let tp = batch.tp.clone();
        match result {
            Ok((base_offset, append_time)) => {
                self.accumulator.done(&tp, batch.base_sequence);
                self.buffered = self.buffered.saturating_sub(batch.size);
                for (i, pending) in batch.records.into_iter().enumerate() {
                    let offset = if base_offset < 0 {
                        -1
                    } else {
                        base_offset + i as i64
                    };
                    let timestamp = if append_time >= 0 {
                        append_time
                    } else {
                        pending.timestamp
                    };
                    let meta = RecordMetadata {
                        partition: tp.1,
                        offset,
                        timestamp,
                    };
                    self.complete(pending, Ok(meta)).await;
                }
            }
            Err(err) => {
                if err.invalidates_metadata() {
                    // The leader moved (NOT_LEADER_OR_FOLLOWER, ...): ask where it is now, as
                    // Kafka's producer does; the retry is sent from the cache, so a cache only
                    // marked stale would keep sending it to the old leader.
                    self.cluster.invalidate();
                    self.fetch_metadata(tp.0.clone());
                }
                let explained_gap = err.code() == Some(ErrorCode::OutOfOrderSequenceNumber)
                    && batch
                        .base_sequence
                        .is_some_and(|seq| self.accumulator.has_earlier(&tp, seq));
                // Idempotence gets past a forgotten producer id with a new one; a transaction
                // cannot, and is aborted instead.
                let unknown_pid =
                    self.txn.is_none() && err.code() == Some(ErrorCode::UnknownProducerId);
                let retriable = err.is_retriable() || explained_gap || unknown_pid;
                let expired = batch.oldest() + self.config.delivery_timeout <= Instant::now();
                if retriable && !expired && batch.attempts <= self.config.retries {
                    tracing::debug!(topic = %tp.0, partition = tp.1, %err, attempts = batch.attempts, "retrying batch");
                    if unknown_pid {
                        self.reset_pid = true;
                    }
                    let retry_at = Instant::now() + self.config.retry_backoff;
                    self.accumulator.requeue(batch, retry_at);
                    return;
                }
                self.accumulator.done(&tp, batch.base_sequence);
                self.buffered = self.buffered.saturating_sub(batch.size);
                if batch.base_sequence.is_some() {
                    // The broker may or may not have it: later sequences would be refused
                    // as a gap, so start again with a new producer id.
                    self.sequence_lost();
                }
                let err = if expired && retriable {
                    ClientError::Timeout {
                        what: format!("delivery to topic '{}' partition {} ({err})", tp.0, tp.1),
                        after: self.config.delivery_timeout,
                    }
                } else {
                    err
                };
                for pending in batch.records.drain(..) {
                    self.complete(pending, Err(err.clone())).await;
                }
            }
        }
    }

    async fn complete(&mut self, pending: Pending, outcome: Result<RecordMetadata>) {
        self.outstanding.remove(pending.id);
        if let (Some(txn), Err(err)) = (&mut self.txn, &outcome) {
            txn.record_failed(err);
        }
        pending.complete(outcome).await;
    }

    /// A batch that carried sequence numbers failed without a known outcome: the broker may
    /// or may not have it, so later sequences would be refused as a gap. An idempotent
    /// producer gets a new producer id once nothing is in flight; a transactional one a new
    /// epoch when its transaction is aborted.
    fn sequence_lost(&mut self) {
        match &mut self.txn {
            Some(txn) => txn.sequence_lost(),
            None => self.reset_pid = true,
        }
    }

    /// Fails the records not sent yet when the transaction says so (it is being aborted,
    /// can only be aborted, or the producer cannot go on), as the Java client does: sending
    /// them would only make more to abort.
    async fn drop_unsent(&mut self) {
        let Some(err) = self.txn.as_ref().and_then(Transactions::dropping) else {
            return;
        };
        for batch in self.accumulator.take_unsent() {
            self.buffered = self.buffered.saturating_sub(batch.size);
            for pending in batch.records {
                self.complete(pending, Err(err.clone())).await;
            }
        }
        let waiting: Vec<Pending> = self.waiting.drain().flat_map(|(_, p)| p).collect();
        for pending in waiting {
            self.complete(pending, Err(err.clone())).await;
        }
    }

    /// Starts the transaction's next call to a coordinator, if it has one.
    fn drive_transaction(&mut self) {
        let records_done = self.outstanding.is_empty();
        let (Some(txn), Some(coordinator)) = (&mut self.txn, &self.coordinator) else {
            return;
        };
        let Some(call) = txn.poll(records_done) else {
            return;
        };
        let producer = txn.producer();
        let coordinator = Arc::clone(coordinator);
        let events = self.events_tx.clone();
        drop(tokio::spawn(async move {
            let answer = coordinator.call(call, producer).await;
            let _ = events.send(Event::Transaction(answer));
        }));
    }

    /// Timeouts, producer id, and sending what is ready.
    async fn step(&mut self) {
        let now = Instant::now();
        self.expire(now).await;
        let due: Vec<String> = self
            .metadata_retry
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(t, _)| t.clone())
            .collect();
        for topic in due {
            let _ = self.metadata_retry.remove(&topic);
            self.fetch_metadata(topic);
        }
        if self.txn.is_some() {
            // The producer id comes from init_transactions, and records only from a
            // transaction, which has one.
            self.drop_unsent().await;
            self.drive_transaction();
        } else if self.config.enable_idempotence {
            if self.reset_pid && self.accumulator.in_flight() == 0 {
                self.reset_pid = false;
                self.producer_id = None;
            }
            if self.producer_id.is_none() {
                self.init_producer_id(now);
                return;
            }
            if self.reset_pid {
                return;
            }
        }
        self.send_ready(now);
    }

    async fn expire(&mut self, now: Instant) {
        let Some(older_than) = now.checked_sub(self.config.delivery_timeout) else {
            return;
        };
        let after = self.config.delivery_timeout;
        let timeout = move |topic: &str| ClientError::Timeout {
            what: format!("delivery to topic '{topic}'"),
            after,
        };
        for batch in self.accumulator.expire(older_than) {
            self.buffered = self.buffered.saturating_sub(batch.size);
            if batch.base_sequence.is_some() {
                self.sequence_lost();
            }
            let err = timeout(&batch.tp.0);
            for pending in batch.records {
                self.complete(pending, Err(err.clone())).await;
            }
        }
        let mut expired = Vec::new();
        for records in self.waiting.values_mut() {
            let (old, keep): (Vec<_>, Vec<_>) =
                records.drain(..).partition(|p| p.enqueued <= older_than);
            *records = keep;
            expired.extend(old);
        }
        for pending in expired {
            let err = timeout(&pending.record.topic);
            self.complete(pending, Err(err)).await;
        }
    }

    fn init_producer_id(&mut self, now: Instant) {
        if self.fetching_pid || self.pid_retry_at.is_some_and(|at| at > now) {
            return;
        }
        self.fetching_pid = true;
        self.pid_retry_at = None;
        let cluster = Arc::clone(&self.cluster);
        let events = self.events_tx.clone();
        drop(tokio::spawn(async move {
            let result = async {
                let conn = cluster.any_connection().await?;
                let response = conn
                    .request(
                        InitProducerIdRequest::default()
                            .with_transactional_id(None)
                            .with_transaction_timeout_ms(-1)
                            .with_producer_id((-1).into())
                            .with_producer_epoch(-1),
                    )
                    .await?;
                ClientError::check(response.error_code, || {
                    format!("init producer id at {}", conn.addr())
                })?;
                Ok((response.producer_id.0, response.producer_epoch))
            }
            .await;
            let _ = events.send(Event::ProducerId(result));
        }));
    }

    fn send_ready(&mut self, now: Instant) {
        // A full buffer sends what it holds without waiting for linger: nothing else frees it.
        let flush = !self.flushes.is_empty()
            || self.closing.is_some()
            || self.buffered >= self.config.buffer_memory
            || self.txn.as_ref().is_some_and(Transactions::flushing);
        let ready = self
            .accumulator
            .ready(now, flush, self.config.max_in_flight);
        // Group by leader; one request per leader, one batch per partition in it.
        let mut by_leader: HashMap<i32, Vec<TopicPartition>> = HashMap::new();
        for tp in ready {
            // A transaction's batches wait until the coordinator has their partition.
            if self.txn.as_ref().is_some_and(|txn| !txn.may_send_to(&tp)) {
                continue;
            }
            match self
                .cluster
                .cached_topic_shared(&tp.0)
                .and_then(|t| t.leader(tp.1))
            {
                Some(leader) => by_leader.entry(leader).or_default().push(tp),
                None => {
                    self.cluster.invalidate();
                    self.fetch_metadata(tp.0.clone());
                }
            }
        }
        for (leader, tps) in by_leader {
            let in_flight = self.in_flight.entry(leader).or_insert(0);
            if *in_flight >= self.config.max_in_flight {
                continue;
            }
            let mut batches = Vec::new();
            let mut size = 0;
            for tp in tps {
                if !batches.is_empty() && size >= self.config.max_request_size / 2 {
                    break;
                }
                if let Some(mut batch) = self.accumulator.take(&tp) {
                    self.partitioner.batch_closed(&tp.0, tp.1);
                    batch.attempts += 1;
                    if let Some((_, _)) = self.producer_id
                        && batch.base_sequence.is_none()
                    {
                        let next = self.sequences.entry(tp.clone()).or_insert(0);
                        batch.base_sequence = Some(*next);
                        let count = i32::try_from(batch.records.len()).unwrap_or(i32::MAX);
                        *next = next
                            .checked_add(count)
                            .unwrap_or(count - (i32::MAX - *next) - 1);
                    }
                    if let Some(sequence) = batch.base_sequence {
                        self.accumulator.sent(&tp, sequence);
                    }
                    size += batch.size;
                    batches.push(batch);
                }
            }
            if batches.is_empty() {
                continue;
            }
            *in_flight += 1;
            let (done, next) = oneshot::channel();
            let turn = Turn {
                after: self.turns.insert(leader, next),
                done,
            };
            let cluster = Arc::clone(&self.cluster);
            let events = self.events_tx.clone();
            let config = self.config.clone();
            let pid = self.producer_id;
            drop(tokio::spawn(async move {
                let results = produce(&cluster, &config, pid, leader, batches, turn).await;
                let _ = events.send(Event::Produced(leader, results));
            }));
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Sends one produce request with these batches to `leader`, in its [`Turn`]; every batch
/// comes back with its own result.
async fn produce(
    cluster: &Cluster,
    config: &ProducerConfig,
    pid: Option<(i64, i16)>,
    leader: i32,
    batches: Vec<ProducerBatch>,
    turn: Turn,
) -> Vec<(ProducerBatch, Result<(i64, i64)>)> {
    let mut built = Vec::with_capacity(batches.len());
    let mut good = Vec::with_capacity(batches.len());
    let mut out = Vec::new();
    for batch in batches {
        let mut builder = BatchBuilder::with_capacity(batch.size)
            .compression(config.compression)
            .transactional(config.transactional_id.is_some());
        if let (Some((id, epoch)), Some(seq)) = (pid, batch.base_sequence) {
            builder = builder.producer(id, epoch, seq);
        }
        for pending in &batch.records {
            let _ = builder.push(&pending.record.spec(pending.timestamp));
        }
        match builder.build() {
            Ok(bytes) => {
                built.push((batch.tp.clone(), bytes));
                good.push(batch);
            }
            Err(err) => {
                let err = ClientError::Record {
                    topic: batch.tp.0.clone(),
                    source: Arc::new(err),
                };
                out.push((batch, Err(err)));
            }
        }
    }
    if good.is_empty() {
        return out;
    }
    let result = send_request(cluster, config, leader, built, turn).await;
    for batch in good {
        let outcome = match &result {
            Ok(response) => partition_result(response, &batch.tp),
            Err(err) => Err(err.clone()),
        };
        out.push((batch, outcome));
    }
    out
}

async fn send_request(
    cluster: &Cluster,
    config: &ProducerConfig,
    leader: i32,
    built: Vec<(TopicPartition, bytes::Bytes)>,
    mut turn: Turn,
) -> Result<Option<ProduceResponse>> {
    let mut topics: Vec<TopicProduceData> = Vec::new();
    for ((topic, partition), records) in built {
        let data = PartitionProduceData::default()
            .with_index(partition)
            .with_records(Some(records));
        match topics.iter_mut().find(|t| t.name.0.as_str() == topic) {
            Some(t) => t.partition_data.push(data),
            None => topics.push(
                TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_string(topic)))
                    .with_partition_data(vec![data]),
            ),
        }
    }
    let timeout_ms =
        i32::try_from(config.client.connection.request_timeout.as_millis()).unwrap_or(i32::MAX);
    let request = ProduceRequest::default()
        .with_transactional_id(
            config
                .transactional_id
                .as_ref()
                .map(|id| TransactionalId(StrBytes::from_string(id.clone()))),
        )
        .with_acks(config.acks.value())
        .with_timeout_ms(timeout_ms)
        .with_topic_data(topics);
    turn.wait().await;
    let conn = cluster.broker_connection(leader).await?;
    let mut version = conn.version_for(rill_protocol::ApiKey::Produce)?;
    if config.transactional_id.is_some() {
        version = version.min(MAX_TRANSACTIONAL_PRODUCE_VERSION);
    }
    if config.acks == Acks::None {
        conn.send_oneway(request, version).await?;
        return Ok(None);
    }
    let queued = conn.queue_at(request, version).await?;
    // Queued: the next request to this broker may be queued behind it.
    turn.release();
    Ok(Some(conn.response(queued).await?))
}

/// The outcome for one partition: `(base offset, log append time)`.
fn partition_result(response: &Option<ProduceResponse>, tp: &TopicPartition) -> Result<(i64, i64)> {
    let Some(response) = response else {
        return Ok((-1, -1));
    };
    let found = response
        .responses
        .iter()
        .filter(|t| t.name.0.as_str() == tp.0)
        .flat_map(|t| t.partition_responses.iter())
        .find(|p| p.index == tp.1);
    let Some(p) = found else {
        return Err(ClientError::Kafka {
            code: ErrorCode::UnknownServerError,
            context: format!(
                "produce to topic '{}' partition {}: no answer for it",
                tp.0, tp.1
            ),
        });
    };
    ClientError::check(p.error_code, || {
        let message = p.error_message.as_ref().map_or("", |m| m.as_str());
        format!("produce to topic '{}' partition {} {message}", tp.0, tp.1)
    })?;
    Ok((p.base_offset, p.log_append_time_ms))
}

#[cfg(test)]
mod tests {
    use super::Outstanding;

    #[test]
    fn outstanding_tracks_the_oldest_open_id_whatever_the_completion_order() {
        let mut open = Outstanding::default();
        assert!(open.is_empty());
        assert_eq!(open.first(), None);
        for id in 0..5 {
            open.insert(id);
        }
        assert_eq!(open.first(), Some(0));
        open.remove(2);
        open.remove(2); // twice: no effect
        assert_eq!(open.first(), Some(0));
        open.remove(0);
        assert_eq!(open.first(), Some(1));
        open.remove(1);
        assert_eq!(open.first(), Some(3));
        open.remove(9); // never handed out: ignored
        open.remove(4);
        open.remove(3);
        assert!(open.is_empty());
        assert_eq!(open.first(), None);
        open.insert(5);
        assert_eq!(open.first(), Some(5));
    }
}
