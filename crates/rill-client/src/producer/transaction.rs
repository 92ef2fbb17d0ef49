//! The transactional producer's half of KIP-98, divided as the Java client's
//! `TransactionManager` divides it: [`Transactions`] is the sans-io state machine the sender
//! task drives (whether a record may join, which partitions the coordinator must hear of
//! before their first batch goes out, which coordinator call comes next and what its answer
//! means), and [`Coordinator`] makes the calls: FindCoordinator (key type 1), InitProducerId,
//! AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit (to the group's coordinator) and
//! EndTxn, each retried while the answer says so.
//!
//! ```text
//!  Uninitialized ──init──▶ Ready ──begin──▶ InTransaction ──commit/abort──▶ Ending
//!                            ▲                                                │
//!                            └──── records done, EndTxn answered (and, after ─┘
//!                                  an abort that lost a sequence, a new epoch)
//!  any state ── PRODUCER_FENCED, INVALID_PRODUCER_EPOCH, ... ──▶ Fatal
//! ```
//!
//! A transaction that lost a record (a batch, or a call to a coordinator, failed for good) can
//! only be aborted: `commit_transaction` and new sends return that error, and its unsent
//! records are dropped at once, as in the Java client. Calls to the coordinators go one at a
//! time, in the order they were asked for.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rill_protocol::kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use rill_protocol::kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use rill_protocol::kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, EndTxnRequest, FindCoordinatorRequest,
    GroupId, InitProducerIdRequest, ProducerId, TopicName, TransactionalId, TxnOffsetCommitRequest,
};
use rill_protocol::{ApiKey, ErrorCode, StrBytes};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::accumulator::TopicPartition;
use crate::cluster::Cluster;
use crate::connection::Connection;
use crate::error::{ClientError, Result};
use crate::group::GroupMetadata;

/// FindCoordinator's key type for a consumer group.
const GROUP_KEY: i8 = 0;
/// FindCoordinator's key type for a transactional id.
const TRANSACTION_KEY: i8 = 1;
/// Wait before retrying CONCURRENT_TRANSACTIONS (the coordinator is still completing the
/// previous transaction, which takes a marker per partition): shorter than `retry_backoff`,
/// as in the Java client.
const CONCURRENT_BACKOFF: Duration = Duration::from_millis(20);

/// What a caller asked of the transactional producer, in the order asked.
#[derive(Debug)]
pub(crate) enum Request {
    Init,
    Begin,
    SendOffsets {
        offsets: Vec<(String, i32, i64)>,
        group: GroupMetadata,
    },
    Commit,
    Abort,
}

/// A call to a coordinator that the sender makes for [`Transactions`]; at most one is in
/// flight, and its [`Answer`] comes back through [`Transactions::answer`].
#[derive(Debug)]
pub(crate) enum Call {
    /// InitProducerId: the producer id and a new epoch, which fences older instances.
    InitProducerId,
    /// AddPartitionsToTxn, before the first batch of each partition goes out.
    AddPartitions(Vec<TopicPartition>),
    /// AddOffsetsToTxn, then TxnOffsetCommit to the group's coordinator.
    SendOffsets {
        offsets: Vec<(String, i32, i64)>,
        group: GroupMetadata,
    },
    /// EndTxn.
    EndTxn { commit: bool },
}

/// The outcome of a [`Call`].
#[derive(Debug)]
pub(crate) enum Answer {
    ProducerId(Result<(i64, i16)>),
    PartitionsAdded(Vec<TopicPartition>, Result<()>),
    /// `added`: AddOffsetsToTxn succeeded, so the transaction is open at the coordinator
    /// whatever TxnOffsetCommit answered.
    OffsetsSent {
        added: bool,
        result: Result<()>,
    },
    Ended(Result<()>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Uninitialized,
    Ready,
    InTransaction,
    /// Committing or aborting: waiting for the records, then EndTxn.
    Ending {
        commit: bool,
    },
    Fatal,
}

/// Where a partition of the open transaction stands with the coordinator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Membership {
    /// A record for it arrived; the coordinator has not been told.
    Pending,
    /// In an AddPartitionsToTxn in flight.
    Adding,
    /// The coordinator has it: its batches may go out.
    Added,
}

/// The transaction state machine (see the [module docs](self)). No I/O: the sender asks it
/// what to do ([`poll`](Self::poll)) and tells it what happened.
#[derive(Debug)]
pub(crate) struct Transactions {
    transactional_id: String,
    state: State,
    producer: Option<(i64, i16)>,
    partitions: HashMap<TopicPartition, Membership>,
    /// The coordinator knows of the open transaction (a partition or offsets were added):
    /// ending it takes an EndTxn.
    started: bool,
    /// Why the open transaction can only be aborted.
    abortable: Option<ClientError>,
    /// Why the producer cannot go on.
    fatal: Option<ClientError>,
    /// A batch with a sequence number failed without a known outcome: sequences cannot be
    /// trusted any more, so the abort ends with a new epoch (InitProducerId again).
    reinit: bool,
    queue: VecDeque<(Request, oneshot::Sender<Result<()>>)>,
    /// The request under way and where its outcome goes.
    current: Option<oneshot::Sender<Result<()>>>,
    in_flight: bool,
}

impl Transactions {
    pub(crate) fn new(transactional_id: String) -> Self {
        Self {
            transactional_id,
            state: State::Uninitialized,
            producer: None,
            partitions: HashMap::new(),
            started: false,
            abortable: None,
            fatal: None,
            reinit: false,
            queue: VecDeque::new(),
            current: None,
            in_flight: false,
        }
    }

    /// Queues a caller's request; its outcome goes to `reply`.
    pub(crate) fn request(&mut self, request: Request, reply: oneshot::Sender<Result<()>>) {
        self.queue.push_back((request, reply));
    }

    /// The producer id and epoch, once initialized.
    pub(crate) fn producer(&self) -> Option<(i64, i16)> {
        self.producer
    }

    /// `Ok` if a record may join the transaction now, else what to fail it with.
    pub(crate) fn check_send(&self) -> Result<()> {
        match (self.state, &self.abortable, &self.fatal) {
            (_, _, Some(fatal)) => Err(fatal.clone()),
            (State::InTransaction, None, None) => Ok(()),
            (State::InTransaction, Some(cause), None) => Err(self.must_abort(cause)),
            (State::Ending { .. }, _, None) => {
                Err(self
                    .misuse("a commit or abort is under way: no record can join the transaction"))
            }
            _ => Err(self.misuse("send outside a transaction: call begin_transaction first")),
        }
    }

    /// A record for `tp` joined the transaction: the coordinator must hear of `tp` before
    /// its first batch goes out.
    pub(crate) fn joined(&mut self, tp: &TopicPartition) {
        if !self.partitions.contains_key(tp) {
            let _ = self.partitions.insert(tp.clone(), Membership::Pending);
        }
    }

    /// Whether the coordinator has `tp` in the transaction, so its batches may go out.
    pub(crate) fn may_send_to(&self, tp: &TopicPartition) -> bool {
        self.partitions.get(tp) == Some(&Membership::Added)
    }

    /// Records not sent yet are to be dropped (the transaction is being aborted, can only
    /// be aborted, or the producer cannot go on): the error to fail them with.
    pub(crate) fn dropping(&self) -> Option<ClientError> {
        if let Some(fatal) = &self.fatal {
            return Some(fatal.clone());
        }
        if let Some(cause) = &self.abortable {
            return Some(self.must_abort(cause));
        }
        (self.state == State::Ending { commit: false })
            .then(|| self.misuse("record dropped: its transaction was aborted"))
    }

    /// A commit or abort waits for the records: send them without waiting for `linger`.
    pub(crate) fn flushing(&self) -> bool {
        matches!(self.state, State::Ending { .. })
    }

    /// A record of the transaction failed with `err`: the transaction can only be aborted
    /// now, or, for a fencing or authorization error, the producer cannot go on.
    pub(crate) fn record_failed(&mut self, err: &ClientError) {
        if !matches!(self.state, State::InTransaction | State::Ending { .. }) {
            return;
        }
        if is_fatal(err) {
            self.set_fatal(err);
        } else if self.abortable.is_none() {
            self.abortable = Some(err.clone());
        }
    }

    /// A batch that carried a sequence number failed without a known outcome.
    pub(crate) fn sequence_lost(&mut self) {
        self.reinit = true;
    }

    /// Nothing asked is pending or under way.
    pub(crate) fn idle(&self) -> bool {
        self.queue.is_empty() && self.current.is_none() && !self.in_flight
    }

    /// The producer is closing: an open transaction is aborted first, as the Java client
    /// does, so that read_committed consumers need not wait for its timeout.
    pub(crate) fn close(&mut self) {
        let open = self.state == State::InTransaction
            || self.queue.iter().any(|(r, _)| matches!(r, Request::Begin));
        if open && self.fatal.is_none() {
            let (reply, _nobody) = oneshot::channel();
            self.queue.push_back((Request::Abort, reply));
        }
    }

    /// The next call to make, if any; requests that need none are answered on the way.
    /// `records_done`: every record handed to the producer has its outcome.
    pub(crate) fn poll(&mut self, records_done: bool) -> Option<Call> {
        if self.in_flight {
            return None;
        }
        loop {
            if let Some(fatal) = self.fatal.clone() {
                self.finish(Err(fatal.clone()));
                for (_, reply) in self.queue.drain(..) {
                    let _ = reply.send(Err(fatal.clone()));
                }
                return None;
            }
            // Partitions first: their batches wait for them, and a commit for the batches.
            if matches!(
                self.state,
                State::InTransaction | State::Ending { commit: true }
            ) && self.abortable.is_none()
            {
                let pending: Vec<TopicPartition> = self
                    .partitions
                    .iter()
                    .filter(|(_, m)| **m == Membership::Pending)
                    .map(|(tp, _)| tp.clone())
                    .collect();
                if !pending.is_empty() {
                    for tp in &pending {
                        let _ = self.partitions.insert(tp.clone(), Membership::Adding);
                    }
                    self.in_flight = true;
                    return Some(Call::AddPartitions(pending));
                }
            }
            if self.current.is_some() {
                return self.poll_ending(records_done);
            }
            let (request, reply) = self.queue.pop_front()?;
            match (request, self.state) {
                (Request::Init, State::Uninitialized) => {
                    self.current = Some(reply);
                    self.in_flight = true;
                    return Some(Call::InitProducerId);
                }
                (Request::Init, _) => {
                    let _ = reply.send(Err(self.misuse("init_transactions was already called")));
                }
                (Request::Begin, State::Ready) => {
                    self.state = State::InTransaction;
                    let _ = reply.send(Ok(()));
                }
                (Request::Begin, State::Uninitialized) => {
                    let _ = reply.send(Err(self.misuse("call init_transactions first")));
                }
                (Request::Begin, _) => {
                    let _ = reply.send(Err(self.misuse("a transaction is already open")));
                }
                (_, State::Uninitialized | State::Ready) => {
                    let _ = reply.send(Err(
                        self.misuse("no transaction is open: call begin_transaction first")
                    ));
                }
                (Request::SendOffsets { offsets, group }, State::InTransaction) => {
                    if let Some(cause) = &self.abortable {
                        let _ = reply.send(Err(self.must_abort(cause)));
                        continue;
                    }
                    self.current = Some(reply);
                    self.in_flight = true;
                    return Some(Call::SendOffsets { offsets, group });
                }
                (Request::Commit, State::InTransaction) => {
                    if let Some(cause) = &self.abortable {
                        let _ = reply.send(Err(self.must_abort(cause)));
                        continue;
                    }
                    self.state = State::Ending { commit: true };
                    self.current = Some(reply);
                }
                (Request::Abort, State::InTransaction) => {
                    self.state = State::Ending { commit: false };
                    self.current = Some(reply);
                }
                (Request::SendOffsets { .. } | Request::Commit | Request::Abort, _) => {
                    // Only a request queued behind a commit or abort of the same
                    // transaction gets here (the state is Ending; a Fatal one was answered
                    // above): it came too late.
                    let _ = reply.send(Err(
                        self.misuse("the transaction was already being committed or aborted")
                    ));
                }
            }
        }
    }

    /// The request under way is a commit or an abort (the others wait in flight): once the
    /// records are done, EndTxn if the coordinator knows of the transaction, a new epoch if
    /// sequences were lost, then the transaction is over.
    fn poll_ending(&mut self, records_done: bool) -> Option<Call> {
        let State::Ending { commit } = self.state else {
            return None;
        };
        if !records_done {
            return None;
        }
        if commit && let Some(cause) = &self.abortable {
            let err = self.must_abort(cause);
            self.state = State::InTransaction;
            self.finish(Err(err));
            return self.poll(records_done);
        }
        if self.started {
            self.in_flight = true;
            return Some(Call::EndTxn { commit });
        }
        if self.reinit {
            self.in_flight = true;
            return Some(Call::InitProducerId);
        }
        self.state = State::Ready;
        self.partitions.clear();
        self.abortable = None;
        self.finish(Ok(()));
        self.poll(records_done)
    }

    /// What the call in flight came to.
    pub(crate) fn answer(&mut self, answer: Answer) {
        self.in_flight = false;
        match answer {
            Answer::ProducerId(Ok(producer)) => {
                self.producer = Some(producer);
                self.reinit = false;
                if self.state == State::Uninitialized {
                    self.state = State::Ready;
                    self.finish(Ok(()));
                }
                // After an abort, `poll_ending` finishes it.
            }
            Answer::ProducerId(Err(err)) => {
                if is_fatal(&err) {
                    self.set_fatal(&err);
                    return;
                }
                if self.state != State::Uninitialized {
                    // The abort is done, but the new epoch it needed is not: without it the
                    // sequences cannot be trusted.
                    self.state = State::Uninitialized;
                    self.producer = None;
                    self.partitions.clear();
                    self.abortable = None;
                    let err = self.caused(
                        "the transaction was aborted but the producer needs a new epoch: call init_transactions",
                        err,
                    );
                    self.finish(Err(err));
                    return;
                }
                self.finish(Err(err));
            }
            Answer::PartitionsAdded(partitions, Ok(())) => {
                self.started = true;
                for tp in partitions {
                    if let Some(m) = self.partitions.get_mut(&tp) {
                        *m = Membership::Added;
                    }
                }
            }
            Answer::PartitionsAdded(_, Err(err)) => self.record_failed(&err),
            Answer::OffsetsSent { added, result } => {
                self.started |= added;
                if let Err(err) = &result {
                    self.record_failed(err);
                }
                let result = result.map_err(|err| self.explain(err));
                self.finish(result);
            }
            Answer::Ended(Ok(())) => {
                self.started = false;
                // `poll_ending` moves on: a new epoch if one is needed, then done.
            }
            Answer::Ended(Err(err)) => {
                if is_fatal(&err) {
                    self.set_fatal(&err);
                    return;
                }
                // Not over: a commit can now only be aborted; an abort can be tried again.
                self.state = State::InTransaction;
                if self.abortable.is_none() {
                    self.abortable = Some(err.clone());
                }
                self.finish(Err(err));
            }
        }
    }

    fn finish(&mut self, result: Result<()>) {
        if let Some(reply) = self.current.take() {
            let _ = reply.send(result);
        }
    }

    fn set_fatal(&mut self, err: &ClientError) {
        self.state = State::Fatal;
        self.partitions.clear();
        if self.fatal.is_none() {
            self.fatal = Some(self.explain(err.clone()));
        }
    }

    /// `err` as the caller should see it: a fatal one says so and what to do.
    fn explain(&self, err: ClientError) -> ClientError {
        if !is_fatal(&err) || err.is_fatal() {
            return err;
        }
        let message = match err.code() {
            Some(ErrorCode::TransactionalIdAuthorizationFailed) => {
                "not authorized to use this transactional id; close the producer"
            }
            Some(ErrorCode::ClusterAuthorizationFailed) => {
                "not authorized to produce idempotently; close the producer"
            }
            _ => {
                "fenced: a newer producer with the same transactional id has started; close this one"
            }
        };
        ClientError::Transaction {
            transactional_id: self.transactional_id.clone(),
            message: message.to_owned(),
            fatal: true,
            cause: Some(Arc::new(err)),
        }
    }

    fn misuse(&self, message: &str) -> ClientError {
        ClientError::Transaction {
            transactional_id: self.transactional_id.clone(),
            message: message.to_owned(),
            fatal: false,
            cause: None,
        }
    }

    fn caused(&self, message: &str, cause: ClientError) -> ClientError {
        ClientError::Transaction {
            transactional_id: self.transactional_id.clone(),
            message: message.to_owned(),
            fatal: false,
            cause: Some(Arc::new(cause)),
        }
    }

    fn must_abort(&self, cause: &ClientError) -> ClientError {
        // A record dropped by the abort that the first failure caused is no news.
        if let ClientError::Transaction { .. } = cause {
            return cause.clone();
        }
        self.caused(
            "part of the transaction failed: it can only be aborted",
            cause.clone(),
        )
    }
}

/// Whether `err` ends the producer: fenced by a newer instance (PRODUCER_FENCED, or
/// INVALID_PRODUCER_EPOCH from brokers before KIP-588), or not authorized.
fn is_fatal(err: &ClientError) -> bool {
    err.is_fatal()
        || matches!(
            err.code(),
            Some(
                ErrorCode::ProducerFenced
                    | ErrorCode::InvalidProducerEpoch
                    | ErrorCode::TransactionalIdAuthorizationFailed
                    | ErrorCode::ClusterAuthorizationFailed
                    | ErrorCode::InvalidProducerIdMapping
            )
        )
}

/// Whether a coordinator call may succeed if made again.
fn retriable(err: &ClientError) -> bool {
    err.is_retriable() || err.code() == Some(ErrorCode::ConcurrentTransactions)
}

/// Whether the coordinator should be looked up again before the next try.
fn coordinator_lost(err: &ClientError) -> bool {
    matches!(
        err.code(),
        Some(ErrorCode::NotCoordinator | ErrorCode::CoordinatorNotAvailable)
    ) || matches!(
        err,
        ClientError::Io { .. } | ClientError::ConnectionClosed { .. }
    )
}

fn s(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_owned())
}

/// Makes the calls of [`Call`], each retried (finding the coordinator again when it moved)
/// until it succeeds, fails for good, or `timeout` passes.
#[derive(Debug)]
pub(crate) struct Coordinator {
    cluster: Arc<Cluster>,
    transactional_id: String,
    transaction_timeout_ms: i32,
    retry_backoff: Duration,
    timeout: Duration,
    /// The transaction coordinator's address, once found.
    addr: Mutex<Option<String>>,
}

impl Coordinator {
    pub(crate) fn new(
        cluster: Arc<Cluster>,
        transactional_id: String,
        transaction_timeout: Duration,
        retry_backoff: Duration,
        timeout: Duration,
    ) -> Self {
        Self {
            cluster,
            transactional_id,
            transaction_timeout_ms: i32::try_from(transaction_timeout.as_millis())
                .unwrap_or(i32::MAX),
            retry_backoff,
            timeout,
            addr: Mutex::new(None),
        }
    }

    /// Makes `call` for the producer `producer` (known for every call but the first).
    pub(crate) async fn call(&self, call: Call, producer: Option<(i64, i16)>) -> Answer {
        let no_producer = || ClientError::Config("no producer id yet".to_owned());
        match call {
            Call::InitProducerId => Answer::ProducerId(
                self.retrying("init the producer id", || self.init_once())
                    .await,
            ),
            Call::AddPartitions(partitions) => {
                let result = match producer {
                    Some(producer) => {
                        self.retrying("add partitions to the transaction", || {
                            self.add_partitions_once(producer, &partitions)
                        })
                        .await
                    }
                    None => Err(no_producer()),
                };
                Answer::PartitionsAdded(partitions, result)
            }
            Call::SendOffsets { offsets, group } => {
                let Some(producer) = producer else {
                    return Answer::OffsetsSent {
                        added: false,
                        result: Err(no_producer()),
                    };
                };
                let added = self
                    .retrying("add the offsets of a group to the transaction", || {
                        self.add_offsets_once(producer, &group.group_id)
                    })
                    .await;
                if let Err(err) = added {
                    return Answer::OffsetsSent {
                        added: false,
                        result: Err(err),
                    };
                }
                let result = self
                    .retrying("commit offsets in the transaction", || {
                        self.commit_offsets_once(producer, &offsets, &group)
                    })
                    .await;
                Answer::OffsetsSent {
                    added: true,
                    result,
                }
            }
            Call::EndTxn { commit } => {
                let what = if commit {
                    "commit the transaction"
                } else {
                    "abort the transaction"
                };
                let result = match producer {
                    Some(producer) => {
                        self.retrying(what, || self.end_once(producer, commit))
                            .await
                    }
                    None => Err(no_producer()),
                };
                Answer::Ended(result)
            }
        }
    }

    async fn retrying<T, F, Fut>(&self, what: &str, mut attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let deadline = Instant::now() + self.timeout;
        loop {
            let err = match attempt().await {
                Ok(value) => return Ok(value),
                Err(err) => err,
            };
            if !retriable(&err) {
                return Err(err);
            }
            if coordinator_lost(&err) {
                self.cluster.invalidate();
                *self.addr.lock().unwrap_or_else(PoisonError::into_inner) = None;
            }
            let wait = if err.code() == Some(ErrorCode::ConcurrentTransactions) {
                self.retry_backoff.min(CONCURRENT_BACKOFF)
            } else {
                self.retry_backoff
            };
            if Instant::now() + wait >= deadline {
                return Err(ClientError::Timeout {
                    what: format!(
                        "{what} for transactional id '{}' (last: {err})",
                        self.transactional_id
                    ),
                    after: self.timeout,
                });
            }
            tracing::debug!(transactional_id = %self.transactional_id, %err, ?wait, "{what}: retrying");
            tokio::time::sleep(wait).await;
        }
    }

    /// The address of the coordinator of `key` (FindCoordinator, `key_type` 0 for a group,
    /// 1 for a transactional id).
    async fn find(&self, key_type: i8, key: &str) -> Result<String> {
        let conn = self.cluster.any_connection().await?;
        let version = conn.version_for(ApiKey::FindCoordinator)?;
        if version < 1 && key_type != GROUP_KEY {
            // v0 has no key type: it finds group coordinators only.
            return Err(ClientError::UnsupportedApi {
                addr: conn.addr().to_owned(),
                api_key: ApiKey::FindCoordinator,
                broker: conn.broker_range(ApiKey::FindCoordinator),
                client: Some((1, 6)),
            });
        }
        let request = FindCoordinatorRequest::default();
        let request = if version >= 1 {
            request.with_key_type(key_type)
        } else {
            request
        };
        let request = if version >= 4 {
            request.with_coordinator_keys(vec![s(key)])
        } else {
            request.with_key(s(key))
        };
        let response = conn.request_at(request, version).await?;
        let context = || {
            let kind = if key_type == GROUP_KEY {
                "group"
            } else {
                "transactional id"
            };
            format!("find the coordinator of {kind} '{key}'")
        };
        let (host, port) = if version >= 4 {
            let c = response
                .coordinators
                .iter()
                .find(|c| c.key.as_str() == key)
                .ok_or_else(|| unexpected(&conn, ApiKey::FindCoordinator))?;
            ClientError::check(c.error_code, context)?;
            (c.host.to_string(), c.port)
        } else {
            ClientError::check(response.error_code, context)?;
            (response.host.to_string(), response.port)
        };
        Ok(format!("{host}:{port}"))
    }

    /// The connection to the transaction coordinator, found once and kept until it moves.
    async fn coordinator(&self) -> Result<Arc<Connection>> {
        let known = self
            .addr
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let addr = match known {
            Some(addr) => addr,
            None => {
                let addr = self.find(TRANSACTION_KEY, &self.transactional_id).await?;
                *self.addr.lock().unwrap_or_else(PoisonError::into_inner) = Some(addr.clone());
                addr
            }
        };
        self.cluster.connection(&addr).await
    }

    fn id(&self) -> TransactionalId {
        TransactionalId(s(&self.transactional_id))
    }

    async fn init_once(&self) -> Result<(i64, i16)> {
        let conn = self.coordinator().await?;
        let request = InitProducerIdRequest::default()
            .with_transactional_id(Some(self.id()))
            .with_transaction_timeout_ms(self.transaction_timeout_ms)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        let response = conn.request(request).await?;
        ClientError::check(response.error_code, || {
            format!(
                "init producer id for transactional id '{}' at {}",
                self.transactional_id,
                conn.addr()
            )
        })?;
        Ok((response.producer_id.0, response.producer_epoch))
    }

    async fn add_partitions_once(
        &self,
        (producer_id, epoch): (i64, i16),
        partitions: &[TopicPartition],
    ) -> Result<()> {
        let conn = self.coordinator().await?;
        let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (topic, partition) in partitions {
            topics.entry(topic.as_str()).or_default().push(*partition);
        }
        let request = AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(self.id())
            .with_v3_and_below_producer_id(ProducerId(producer_id))
            .with_v3_and_below_producer_epoch(epoch)
            .with_v3_and_below_topics(
                topics
                    .into_iter()
                    .map(|(topic, partitions)| {
                        AddPartitionsToTxnTopic::default()
                            .with_name(TopicName(s(topic)))
                            .with_partitions(partitions)
                    })
                    .collect(),
            );
        let response = conn.request(request).await?;
        // Kafka adds all or none: the partitions at fault carry the reason, the others
        // OPERATION_NOT_ATTEMPTED.
        let mut not_attempted = None;
        for (topic, partition) in partitions {
            let code = response
                .results_by_topic_v3_and_below
                .iter()
                .filter(|t| t.name.0.as_str() == topic)
                .flat_map(|t| &t.results_by_partition)
                .find(|p| p.partition_index == *partition)
                .map(|p| p.partition_error_code)
                .ok_or_else(|| unexpected(&conn, ApiKey::AddPartitionsToTxn))?;
            let context = || {
                format!(
                    "add topic '{topic}' partition {partition} to transaction '{}'",
                    self.transactional_id
                )
            };
            if code == ErrorCode::OperationNotAttempted.code() {
                let _ = not_attempted.get_or_insert((code, context()));
                continue;
            }
            ClientError::check(code, context)?;
        }
        match not_attempted {
            Some((code, context)) => ClientError::check(code, || context),
            None => Ok(()),
        }
    }

    async fn add_offsets_once(&self, (producer_id, epoch): (i64, i16), group: &str) -> Result<()> {
        let conn = self.coordinator().await?;
        let request = AddOffsetsToTxnRequest::default()
            .with_transactional_id(self.id())
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(epoch)
            .with_group_id(GroupId(s(group)));
        let response = conn.request(request).await?;
        ClientError::check(response.error_code, || {
            format!(
                "add the offsets of group '{group}' to transaction '{}'",
                self.transactional_id
            )
        })
    }

    async fn commit_offsets_once(
        &self,
        (producer_id, epoch): (i64, i16),
        offsets: &[(String, i32, i64)],
        group: &GroupMetadata,
    ) -> Result<()> {
        let addr = self.find(GROUP_KEY, &group.group_id).await?;
        let conn = self.cluster.connection(&addr).await?;
        let version = conn.version_for(ApiKey::TxnOffsetCommit)?;
        let mut topics: BTreeMap<&str, Vec<(i32, i64)>> = BTreeMap::new();
        for (topic, partition, offset) in offsets {
            topics
                .entry(topic.as_str())
                .or_default()
                .push((*partition, *offset));
        }
        let mut request = TxnOffsetCommitRequest::default()
            .with_transactional_id(self.id())
            .with_group_id(GroupId(s(&group.group_id)))
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(epoch)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(topic, partitions)| {
                        TxnOffsetCommitRequestTopic::default()
                            .with_name(TopicName(s(topic)))
                            .with_partitions(
                                partitions
                                    .into_iter()
                                    .map(|(partition, offset)| {
                                        TxnOffsetCommitRequestPartition::default()
                                            .with_partition_index(partition)
                                            .with_committed_offset(offset)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        if version >= 3 {
            // KIP-447: the group coordinator refuses the offsets of a member it replaced.
            request = request
                .with_generation_id(group.generation_id)
                .with_member_id(s(&group.member_id))
                .with_group_instance_id(group.group_instance_id.as_deref().map(s));
        }
        let response = conn.request_at(request, version).await?;
        for t in &response.topics {
            for p in &t.partitions {
                ClientError::check(p.error_code, || {
                    format!(
                        "commit the offset of group '{}' for topic '{}' partition {} in transaction '{}'",
                        group.group_id, t.name.0, p.partition_index, self.transactional_id
                    )
                })?;
            }
        }
        Ok(())
    }

    async fn end_once(&self, (producer_id, epoch): (i64, i16), commit: bool) -> Result<()> {
        let conn = self.coordinator().await?;
        let request = EndTxnRequest::default()
            .with_transactional_id(self.id())
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(epoch)
            .with_committed(commit);
        let response = conn.request(request).await?;
        ClientError::check(response.error_code, || {
            format!(
                "{} transaction '{}' at {}",
                if commit { "commit" } else { "abort" },
                self.transactional_id,
                conn.addr()
            )
        })
    }
}

fn unexpected(conn: &Connection, api_key: ApiKey) -> ClientError {
    ClientError::UnexpectedResponse {
        addr: conn.addr().to_owned(),
        api_key,
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a test fails by panicking")]
mod tests {
    use super::*;

    fn tp(p: i32) -> TopicPartition {
        ("t".to_owned(), p)
    }

    /// Queues `request`; the receiver of its outcome.
    fn ask(txn: &mut Transactions, request: Request) -> oneshot::Receiver<Result<()>> {
        let (tx, rx) = oneshot::channel();
        txn.request(request, tx);
        rx
    }

    fn outcome(rx: &mut oneshot::Receiver<Result<()>>) -> Option<Result<()>> {
        rx.try_recv().ok()
    }

    fn kafka(code: ErrorCode) -> ClientError {
        ClientError::Kafka {
            code,
            context: "test".to_owned(),
        }
    }

    /// A state machine through init_transactions and begin_transaction.
    fn in_transaction() -> Transactions {
        let mut txn = Transactions::new("tx".to_owned());
        let mut init = ask(&mut txn, Request::Init);
        assert!(matches!(txn.poll(true), Some(Call::InitProducerId)));
        txn.answer(Answer::ProducerId(Ok((7, 0))));
        assert!(matches!(outcome(&mut init), Some(Ok(()))));
        let mut begin = ask(&mut txn, Request::Begin);
        assert!(txn.poll(true).is_none());
        assert!(matches!(outcome(&mut begin), Some(Ok(()))));
        txn
    }

    #[test]
    fn a_commit_adds_partitions_first_waits_for_records_then_ends() {
        let mut txn = in_transaction();
        assert!(txn.check_send().is_ok());
        txn.joined(&tp(0));
        txn.joined(&tp(1));
        assert!(!txn.may_send_to(&tp(0)));
        let Some(Call::AddPartitions(mut added)) = txn.poll(false) else {
            panic!("AddPartitionsToTxn first");
        };
        added.sort();
        assert_eq!(added, [tp(0), tp(1)]);
        assert!(txn.poll(false).is_none(), "one call at a time");
        txn.answer(Answer::PartitionsAdded(added, Ok(())));
        assert!(txn.may_send_to(&tp(0)) && txn.may_send_to(&tp(1)));
        let mut commit = ask(&mut txn, Request::Commit);
        assert!(txn.poll(false).is_none(), "records still out");
        assert!(txn.flushing());
        assert!(txn.check_send().is_err(), "no record joins a commit");
        assert!(matches!(
            txn.poll(true),
            Some(Call::EndTxn { commit: true })
        ));
        txn.answer(Answer::Ended(Ok(())));
        assert!(txn.poll(true).is_none());
        assert!(matches!(outcome(&mut commit), Some(Ok(()))));
        assert!(txn.idle());
        assert!(txn.check_send().is_err(), "outside a transaction again");
    }

    #[test]
    fn an_empty_transaction_ends_without_a_call() {
        let mut txn = in_transaction();
        let mut commit = ask(&mut txn, Request::Commit);
        assert!(txn.poll(true).is_none());
        assert!(matches!(outcome(&mut commit), Some(Ok(()))));
        let mut commit = ask(&mut txn, Request::Commit);
        assert!(txn.poll(true).is_none());
        let err = outcome(&mut commit).unwrap().unwrap_err();
        assert!(err.to_string().contains("no transaction is open"), "{err}");
    }

    #[test]
    fn a_failed_record_makes_the_commit_fail_and_the_abort_start_a_new_epoch() {
        let mut txn = in_transaction();
        txn.joined(&tp(0));
        let Some(Call::AddPartitions(added)) = txn.poll(false) else {
            panic!("AddPartitionsToTxn first");
        };
        txn.answer(Answer::PartitionsAdded(added, Ok(())));
        txn.record_failed(&kafka(ErrorCode::OutOfOrderSequenceNumber));
        txn.sequence_lost();
        assert!(txn.dropping().is_some(), "unsent records go");
        assert!(txn.check_send().is_err());
        let mut commit = ask(&mut txn, Request::Commit);
        assert!(txn.poll(true).is_none());
        let err = outcome(&mut commit).unwrap().unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::OutOfOrderSequenceNumber));
        assert!(!err.is_fatal());
        let mut abort = ask(&mut txn, Request::Abort);
        assert!(matches!(
            txn.poll(true),
            Some(Call::EndTxn { commit: false })
        ));
        txn.answer(Answer::Ended(Ok(())));
        assert!(matches!(txn.poll(true), Some(Call::InitProducerId)));
        txn.answer(Answer::ProducerId(Ok((7, 1))));
        assert!(txn.poll(true).is_none());
        assert!(matches!(outcome(&mut abort), Some(Ok(()))));
        assert_eq!(txn.producer(), Some((7, 1)));
        let mut begin = ask(&mut txn, Request::Begin);
        assert!(txn.poll(true).is_none());
        assert!(matches!(outcome(&mut begin), Some(Ok(()))));
        assert!(txn.check_send().is_ok(), "a new transaction is clean");
    }

    #[test]
    fn fencing_is_fatal_for_everything_after() {
        let mut txn = in_transaction();
        txn.joined(&tp(0));
        let Some(Call::AddPartitions(added)) = txn.poll(false) else {
            panic!("AddPartitionsToTxn first");
        };
        txn.answer(Answer::PartitionsAdded(added, Ok(())));
        let mut commit = ask(&mut txn, Request::Commit);
        assert!(matches!(
            txn.poll(true),
            Some(Call::EndTxn { commit: true })
        ));
        txn.answer(Answer::Ended(Err(kafka(ErrorCode::ProducerFenced))));
        assert!(txn.poll(true).is_none());
        let err = outcome(&mut commit).unwrap().unwrap_err();
        assert!(err.is_fatal(), "{err}");
        assert_eq!(err.code(), Some(ErrorCode::ProducerFenced));
        assert!(err.to_string().contains("fenced"), "{err}");
        assert!(txn.check_send().is_err_and(|e| e.is_fatal()));
        let mut begin = ask(&mut txn, Request::Begin);
        assert!(txn.poll(true).is_none());
        assert!(outcome(&mut begin).unwrap().is_err_and(|e| e.is_fatal()));
    }

    #[test]
    fn calls_out_of_turn_are_refused_and_change_nothing() {
        let mut txn = Transactions::new("tx".to_owned());
        let mut begin = ask(&mut txn, Request::Begin);
        assert!(txn.poll(true).is_none());
        let err = outcome(&mut begin).unwrap().unwrap_err();
        assert!(err.to_string().contains("init_transactions"), "{err}");
        let mut txn = in_transaction();
        let mut again = ask(&mut txn, Request::Begin);
        let mut init = ask(&mut txn, Request::Init);
        assert!(txn.poll(true).is_none());
        assert!(outcome(&mut again).unwrap().is_err());
        assert!(outcome(&mut init).unwrap().is_err());
        assert!(txn.check_send().is_ok(), "still in the transaction");
    }

    #[test]
    fn closing_aborts_an_open_transaction() {
        let mut txn = in_transaction();
        txn.close();
        assert!(!txn.idle());
        assert!(txn.poll(true).is_none(), "nothing started: no EndTxn");
        assert!(txn.idle());
        let mut txn = Transactions::new("tx".to_owned());
        txn.close();
        assert!(txn.idle(), "nothing to abort");
    }
}
