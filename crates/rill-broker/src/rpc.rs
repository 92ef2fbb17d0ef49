//! Calls between brokers that are not Raft messages: a transaction coordinator writing a marker
//! to a partition led by another broker, and a partition leader asking another broker's
//! coordinator whether a partition is in a producer's transaction (KIP-890). They travel over
//! the quorum's connections (`quorum/transport.rs`) as frames starting with [`RPC_FRAME`], so
//! they need no client credentials on the Kafka listeners and reach exactly the brokers of the
//! cluster. A call that gets no answer in time (its peer down, or the frame dropped) fails
//! with REQUEST_TIMED_OUT, and its caller retries as it would any retriable error.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::{BufMut as _, Bytes, BytesMut};
use rill_protocol::ErrorCode;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::broker::Broker;
use crate::txn::Caller;

/// The first byte of a call's frame (a metadata message starts with 1, a partition group's
/// with 2).
pub(crate) const RPC_FRAME: u8 = 3;

/// How long a call waits for its answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// What one broker asks another.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Call {
    /// Write a transaction marker to a partition led there.
    WriteMarker {
        topic: String,
        partition: i32,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
    },
    /// Is the partition in the producer's open transaction (its coordinator is there)? With
    /// `add`, make it so (transaction version 2).
    Verify {
        transactional_id: String,
        producer_id: i64,
        producer_epoch: i16,
        topic: String,
        partition: i32,
        #[serde(default)]
        add: bool,
    },
}

#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    id: u64,
    from: i32,
    /// A call, or the answer (an error code, 0 for none) to call `id` of the receiver.
    call: Option<Call>,
    answer: Option<i16>,
}

/// Sends a frame to a broker, by node id.
type Outbox = Box<dyn Fn(i32, Bytes) + Send + Sync>;

/// This broker's end of the calls.
pub(crate) struct Rpc {
    me: i32,
    next: AtomicU64,
    pending: Mutex<HashMap<u64, oneshot::Sender<i16>>>,
    out: OnceLock<Outbox>,
    calls: mpsc::UnboundedSender<(i32, u64, Call)>,
    inbox: Mutex<Option<mpsc::UnboundedReceiver<(i32, u64, Call)>>>,
}

impl std::fmt::Debug for Rpc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rpc")
            .field("me", &self.me)
            .finish_non_exhaustive()
    }
}

impl Rpc {
    pub(crate) fn new(me: i32) -> Arc<Self> {
        let (calls, inbox) = mpsc::unbounded_channel();
        Arc::new(Self {
            me,
            next: AtomicU64::new(1),
            pending: Mutex::new(HashMap::new()),
            out: OnceLock::new(),
            calls,
            inbox: Mutex::new(Some(inbox)),
        })
    }

    /// How frames leave (set once by the transport; a broker alone has none).
    pub(crate) fn connect(&self, send: Outbox) {
        let _ = self.out.set(send);
    }

    fn send(&self, to: i32, envelope: &Envelope) -> bool {
        let Some(out) = self.out.get() else {
            return false;
        };
        let Ok(json) = serde_json::to_vec(envelope) else {
            return false;
        };
        let mut frame = BytesMut::with_capacity(1 + json.len());
        frame.put_u8(RPC_FRAME);
        frame.put_slice(&json);
        out(to, frame.freeze());
        true
    }

    /// Asks broker `to`; its answer, or REQUEST_TIMED_OUT.
    pub(crate) async fn call(&self, to: i32, call: Call) -> Result<(), ErrorCode> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        if let Ok(mut pending) = self.pending.lock() {
            let _ = pending.insert(id, reply);
        }
        let envelope = Envelope {
            id,
            from: self.me,
            call: Some(call),
            answer: None,
        };
        let sent = self.send(to, &envelope);
        let answer = if sent {
            tokio::time::timeout(CALL_TIMEOUT, answer).await.ok()
        } else {
            None
        };
        if let Ok(mut pending) = self.pending.lock() {
            let _ = pending.remove(&id);
        }
        match answer {
            Some(Ok(0)) => Ok(()),
            Some(Ok(code)) => {
                Err(ErrorCode::from_code(code).unwrap_or(ErrorCode::UnknownServerError))
            }
            _ => Err(ErrorCode::RequestTimedOut),
        }
    }

    /// A frame from broker `from` (its first byte gone): an answer to one of our calls, or a
    /// call to serve.
    pub(crate) fn deliver(&self, from: i32, frame: &[u8]) {
        let Ok(envelope) = serde_json::from_slice::<Envelope>(frame) else {
            tracing::debug!(from, "an unreadable call between brokers");
            return;
        };
        if envelope.from != from {
            return;
        }
        match (envelope.call, envelope.answer) {
            (Some(call), _) => {
                let _ = self.calls.send((from, envelope.id, call));
            }
            (None, Some(code)) => {
                let waiting = self
                    .pending
                    .lock()
                    .ok()
                    .and_then(|mut p| p.remove(&envelope.id));
                if let Some(waiting) = waiting {
                    let _ = waiting.send(code);
                }
            }
            (None, None) => {}
        }
    }

    fn answer(&self, to: i32, id: u64, result: Result<(), ErrorCode>) {
        let code = result.err().unwrap_or(ErrorCode::None).code();
        let _ = self.send(
            to,
            &Envelope {
                id,
                from: self.me,
                call: None,
                answer: Some(code),
            },
        );
    }
}

/// Serves the calls other brokers make of this one, each on its own task, until the broker
/// stops.
pub(crate) async fn serve(broker: Arc<Broker>) {
    let Some(mut inbox) = broker
        .quorum
        .rpc
        .inbox
        .lock()
        .ok()
        .and_then(|mut i| i.take())
    else {
        return;
    };
    while let Some((from, id, call)) = inbox.recv().await {
        let broker = broker.clone();
        drop(tokio::spawn(async move {
            let result = match call {
                Call::WriteMarker {
                    topic,
                    partition,
                    producer_id,
                    producer_epoch,
                    commit,
                    coordinator_epoch,
                } => {
                    let marker = rill_record::Marker {
                        commit,
                        coordinator_epoch,
                    };
                    crate::txn::markers::write_here(
                        &broker,
                        &topic,
                        partition,
                        producer_id,
                        producer_epoch,
                        marker,
                    )
                    .await
                }
                Call::Verify {
                    transactional_id,
                    producer_id,
                    producer_epoch,
                    topic,
                    partition,
                    add,
                } => {
                    let caller = Caller {
                        producer_id,
                        producer_epoch,
                    };
                    let partition = (topic.as_str(), partition);
                    crate::txn::check_here(&broker, &transactional_id, caller, partition, add).await
                }
            };
            broker.quorum.rpc.answer(from, id, result);
        }));
    }
}
