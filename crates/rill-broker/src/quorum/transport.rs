//! The quorum's network: one TCP connection from each voter to each other voter's controller
//! listener, carrying raft-rs messages one way as length-prefixed frames: the metadata
//! quorum's, and those of the replicated partitions' groups (each frame then starts with
//! [`PARTITION_FRAME`], the topic id and the partition), which go to the partition's owner
//! through the [`Router`].
//!
//! Messages are encoded by `codec.rs`, never parsed with protobuf. A connection opens with a
//! hello (node id, incarnation, voters, cluster id) that the
//! receiver checks before it reads anything else: a broker whose `controller.quorum.voters` or
//! cluster id disagrees, or a second live process with a node id already connected, is refused
//! with a one-line reason, and never reaches the Raft node. Messages are dropped while a peer is
//! unreachable (Raft resends what matters).

use std::collections::HashMap;
use std::sync::mpsc::Sender as InputSender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf as _, BufMut as _, Bytes, BytesMut};
use raft::eraftpb::Message;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::node::Input;
use super::voters::{Voters, raft_id};
use crate::partition::Router;

/// The largest frame accepted: a batch of metadata entries or a snapshot.
const MAX_FRAME: usize = 64 << 20;
/// Messages queued for one peer before new ones are dropped.
const QUEUE: usize = 16384;
/// The first byte of a frame for a partition's group (a metadata message starts with its
/// codec's version byte, 1).
const PARTITION_FRAME: u8 = 2;

/// Who is connecting, checked by the receiver.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Hello {
    pub(crate) node_id: i32,
    pub(crate) incarnation: Uuid,
    pub(crate) voters: String,
    pub(crate) cluster_id: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Answer {
    refused: Option<String>,
    /// The refusal is for a node id another live process holds: fatal even from one peer.
    #[serde(default)]
    duplicate: bool,
}

/// Why a hello is refused.
#[derive(Debug)]
struct Refusal {
    why: String,
    duplicate: bool,
}

impl Refusal {
    fn config(why: String) -> Self {
        Self {
            why,
            duplicate: false,
        }
    }
}

/// Where frames other than the metadata quorum's go: the partitions' groups, and the calls
/// between brokers.
pub(crate) struct Delivery {
    pub(crate) router: Arc<Router>,
    pub(crate) rpc: Arc<crate::rpc::Rpc>,
}

/// The cluster id as this broker knows it (none until the quorum named it).
pub(crate) type KnownClusterId = Arc<Mutex<Option<String>>>;

/// The running transport: its tasks, stopped when it is dropped.
#[derive(Debug)]
pub(crate) struct Transport {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Transport {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Starts the acceptor on `listener` and a sender for each other voter; returns the function
/// that queues a message for its peer.
pub(crate) fn start(
    runtime: &tokio::runtime::Handle,
    listener: TcpListener,
    me: Hello,
    voters: &Voters,
    inputs: InputSender<Input>,
    cluster_id: KnownClusterId,
    delivery: Delivery,
) -> (Transport, super::node::Outbox, crate::partition::Outbox) {
    let Delivery { router, rpc } = delivery;
    let mut tasks = Vec::new();
    let mut queues = HashMap::new();
    let live = Arc::new(Mutex::new(HashMap::new()));
    tasks.push(runtime.spawn(accept(
        listener,
        me.clone(),
        inputs.clone(),
        cluster_id.clone(),
        live,
        router,
        rpc.clone(),
    )));
    for peer in voters.ids().filter(|id| *id != me.node_id) {
        let Some((host, port)) = voters.address(peer) else {
            continue;
        };
        let (tx, rx) = mpsc::channel(QUEUE);
        let _ = queues.insert(raft_id(peer), tx);
        let address = format!("{host}:{port}");
        tasks.push(runtime.spawn(send_to(
            peer,
            address,
            me.clone(),
            rx,
            inputs.clone(),
            cluster_id.clone(),
        )));
    }
    let queues = Arc::new(queues);
    let meta_queues = queues.clone();
    let rpc_queues = queues.clone();
    rpc.connect(Box::new(move |to: i32, frame: Bytes| {
        if let Some(queue) = rpc_queues.get(&raft_id(to)) {
            let _ = queue.try_send(frame);
        }
    }));
    let outbox = Box::new(move |message: Message| {
        if let Some(queue) = meta_queues.get(&message.to) {
            // Full: the peer is slow or away; Raft will send again.
            let _ = queue.try_send(super::codec::encode(&message));
        }
    });
    let partitions = crate::partition::Outbox(Arc::new(
        move |topic: Uuid, partition: i32, message: Message| {
            if let Some(queue) = queues.get(&message.to) {
                let _ = queue.try_send(encode_partition(topic, partition, &message));
            }
        },
    ));
    (Transport { tasks }, outbox, partitions)
}

/// A partition group's message as a frame: [`PARTITION_FRAME`], topic id, partition, message.
fn encode_partition(topic: Uuid, partition: i32, message: &Message) -> Bytes {
    let encoded = super::codec::encode(message);
    let mut frame = BytesMut::with_capacity(21 + encoded.len());
    frame.put_u8(PARTITION_FRAME);
    frame.put_slice(topic.as_bytes());
    frame.put_i32(partition);
    frame.put_slice(&encoded);
    frame.freeze()
}

/// The topic id, partition and message of a partition frame (its first byte gone).
fn decode_partition(mut frame: Bytes) -> Result<(Uuid, i32, Message), super::codec::DecodeError> {
    if frame.len() < 20 {
        return Err(super::codec::DecodeError::Short);
    }
    let mut id = [0u8; 16];
    frame.copy_to_slice(&mut id);
    let partition = frame.get_i32();
    Ok((
        Uuid::from_bytes(id),
        partition,
        super::codec::decode(frame)?,
    ))
}

async fn read_frame(
    stream: &mut (impl tokio::io::AsyncRead + Unpin),
    max: usize,
) -> std::io::Result<Vec<u8>> {
    let len = stream.read_u32().await? as usize;
    if len > max {
        return Err(std::io::Error::other(format!("a {len}-byte frame")));
    }
    let mut buf = vec![0u8; len];
    let _ = stream.read_exact(&mut buf).await?;
    Ok(buf)
}

async fn write_frame(stream: &mut TcpStream, bytes: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(bytes.len()).map_err(std::io::Error::other)?;
    stream.write_u32(len).await?;
    stream.write_all(bytes).await
}

/// Last frame received from each node id's inbound connection, and its incarnation.
type Live = Arc<Mutex<HashMap<i32, (Uuid, Instant)>>>;

async fn accept(
    listener: TcpListener,
    me: Hello,
    inputs: InputSender<Input>,
    cluster_id: KnownClusterId,
    live: Live,
    router: Arc<Router>,
    rpc: Arc<crate::rpc::Rpc>,
) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let me = me.clone();
        let inputs = inputs.clone();
        let cluster_id = cluster_id.clone();
        let live = live.clone();
        let router = router.clone();
        let rpc = rpc.clone();
        drop(tokio::spawn(async move {
            let links = Links {
                inputs: &inputs,
                router: &router,
                rpc: &rpc,
            };
            if let Err(err) = receive(stream, &me, &cluster_id, &live, links).await {
                tracing::debug!(%peer, %err, "quorum connection closed");
            }
        }));
    }
}

/// Checks a hello against this broker's view; the reason to refuse it, if any.
fn check(me: &Hello, hello: &Hello, known: Option<&str>, live: &Live) -> Option<Refusal> {
    if hello.voters != me.voters {
        return Some(Refusal::config(format!(
            "controller.quorum.voters differ: node {} has '{}', node {} has '{}'",
            me.node_id, me.voters, hello.node_id, hello.voters
        )));
    }
    if hello.node_id == me.node_id {
        return Some(Refusal {
            why: format!(
                "node id {} is already in use by the live broker at its controller address",
                me.node_id
            ),
            duplicate: true,
        });
    }
    if let (Some(ours), Some(theirs)) = (known, hello.cluster_id.as_deref())
        && ours != theirs
    {
        return Some(Refusal::config(format!(
            "cluster ids differ: node {} is in cluster {ours}, node {}'s data dir is of \
                 cluster {theirs}",
            me.node_id, hello.node_id
        )));
    }
    let live = live.lock().ok()?;
    let (incarnation, at) = live.get(&hello.node_id)?;
    (*incarnation != hello.incarnation && at.elapsed() < Duration::from_secs(1)).then(|| Refusal {
        why: format!(
            "node id {} is already in use by another live broker",
            hello.node_id
        ),
        duplicate: true,
    })
}

/// Where a peer's frames go: the metadata quorum, the partitions' groups, the calls.
struct Links<'a> {
    inputs: &'a InputSender<Input>,
    router: &'a Router,
    rpc: &'a crate::rpc::Rpc,
}

async fn receive(
    mut stream: TcpStream,
    me: &Hello,
    cluster_id: &KnownClusterId,
    live: &Live,
    links: Links<'_>,
) -> std::io::Result<()> {
    let Links {
        inputs,
        router,
        rpc,
    } = links;
    let hello = tokio::time::timeout(Duration::from_secs(5), read_frame(&mut stream, 64 << 10))
        .await
        .map_err(std::io::Error::other)??;
    let hello: Hello = serde_json::from_slice(&hello).map_err(std::io::Error::other)?;
    let known = cluster_id.lock().ok().and_then(|c| c.clone());
    let refused = check(me, &hello, known.as_deref(), live);
    let answer = serde_json::to_vec(&Answer {
        refused: refused.as_ref().map(|r| r.why.clone()),
        duplicate: refused.as_ref().is_some_and(|r| r.duplicate),
    })
    .map_err(std::io::Error::other)?;
    write_frame(&mut stream, &answer).await?;
    if let Some(refusal) = refused {
        tracing::warn!(node = hello.node_id, why = %refusal.why, "refused a broker");
        return Ok(());
    }
    let from = raft_id(hello.node_id);
    // Buffered: a peer's frames come in bursts (one flush of every group's heartbeats), read
    // with one system call rather than two a frame.
    let mut stream = tokio::io::BufReader::with_capacity(64 << 10, stream);
    loop {
        let frame = read_frame(&mut stream, MAX_FRAME).await?;
        if let Ok(mut live) = live.lock() {
            let _ = live.insert(hello.node_id, (hello.incarnation, Instant::now()));
        }
        let mut frame = Bytes::from(frame);
        if frame.first() == Some(&crate::rpc::RPC_FRAME) {
            rpc.deliver(hello.node_id, frame.get(1..).unwrap_or_default());
            continue;
        }
        if frame.first() == Some(&PARTITION_FRAME) {
            frame.advance(1);
            let (topic, partition, message) =
                decode_partition(frame).map_err(std::io::Error::other)?;
            if message.from == from && message.to == raft_id(me.node_id) {
                router.deliver(topic, partition, message);
            }
            continue;
        }
        let message = super::codec::decode(frame).map_err(std::io::Error::other)?;
        if message.from != from || message.to != raft_id(me.node_id) {
            continue;
        }
        if inputs.send(Input::Peer(message)).is_err() {
            return Ok(());
        }
    }
}

async fn send_to(
    peer: i32,
    address: String,
    me: Hello,
    mut queue: mpsc::Receiver<Bytes>,
    inputs: InputSender<Input>,
    cluster_id: KnownClusterId,
) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let mut hello = me.clone();
        hello.cluster_id = cluster_id.lock().ok().and_then(|c| c.clone());
        match connect(&address, &hello).await {
            Ok(Ok(stream)) => {
                backoff = Duration::from_millis(50);
                if inputs.send(Input::Accepted { by: peer }).is_err() {
                    return;
                }
                if let Err(err) = pump(stream, &mut queue).await {
                    tracing::debug!(peer, %err, "quorum connection lost");
                }
                if queue.is_closed() {
                    return;
                }
            }
            Ok(Err(Refusal { why, duplicate })) => {
                let refused = Input::Refused {
                    by: peer,
                    why,
                    duplicate,
                };
                if inputs.send(refused).is_err() {
                    return;
                }
                backoff = Duration::from_secs(1);
            }
            Err(err) => {
                tracing::trace!(peer, %err, "cannot reach a voter");
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
        // Drop what queued up meanwhile: it is stale, and Raft sends again.
        while queue.try_recv().is_ok() {}
        tokio::time::sleep(backoff).await;
    }
}

/// Connects and says hello: the stream, or the peer's reason to refuse.
async fn connect(address: &str, hello: &Hello) -> std::io::Result<Result<TcpStream, Refusal>> {
    let mut stream = tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(address))
        .await
        .map_err(std::io::Error::other)??;
    stream.set_nodelay(true)?;
    let bytes = serde_json::to_vec(hello).map_err(std::io::Error::other)?;
    write_frame(&mut stream, &bytes).await?;
    let answer = tokio::time::timeout(Duration::from_secs(5), read_frame(&mut stream, 64 << 10))
        .await
        .map_err(std::io::Error::other)??;
    let answer: Answer = serde_json::from_slice(&answer).map_err(std::io::Error::other)?;
    Ok(match answer.refused {
        Some(why) => Err(Refusal {
            why,
            duplicate: answer.duplicate,
        }),
        None => Ok(stream),
    })
}

async fn pump(stream: TcpStream, queue: &mut mpsc::Receiver<Bytes>) -> std::io::Result<()> {
    let (mut reader, writer) = stream.into_split();
    let mut writer = BufWriter::new(writer);
    let mut closed = [0u8; 1];
    loop {
        let message = tokio::select! {
            message = queue.recv() => message,
            // The receiver never writes after its answer: a read returning means it closed.
            _ = reader.read(&mut closed) => return Err(std::io::Error::other("closed by the peer")),
        };
        let Some(message) = message else {
            return Ok(());
        };
        let mut next = Some(message);
        while let Some(bytes) = next {
            let len = u32::try_from(bytes.len()).map_err(std::io::Error::other)?;
            writer.write_u32(len).await?;
            writer.write_all(&bytes).await?;
            next = queue.try_recv().ok();
        }
        writer.flush().await?;
    }
}
