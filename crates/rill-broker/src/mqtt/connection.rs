//! One MQTT connection: its CONNECT, then every packet in order until it ends.
//!
//! Publishes are handed to their partitions' owners in the order they arrive and acknowledged
//! in that order once appended (PUBACK for QoS 1, PUBREC for QoS 2), as `acks=all` would be
//! answered. A QoS 2 publish is appended once: a retransmission of a packet id whose PUBREL
//! has not come is only acknowledged again. Deliveries come from the subscription's readers
//! through a bounded channel and are sent at the subscription's QoS; at most
//! [`MAX_INFLIGHT`] (or the client's Receive Maximum) wait for their acknowledgements.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;

use crate::connection::Transport;
use bytes::{Bytes, BytesMut};
use mqtt5_protocol::packet::MqttPacket;
use mqtt5_protocol::packet::connack::ConnAckPacket;
use mqtt5_protocol::packet::connect::ConnectPacket;
use mqtt5_protocol::packet::disconnect::DisconnectPacket;
use mqtt5_protocol::packet::puback::PubAckPacket;
use mqtt5_protocol::packet::pubcomp::PubCompPacket;
use mqtt5_protocol::packet::publish::PublishPacket;
use mqtt5_protocol::packet::pubrec::PubRecPacket;
use mqtt5_protocol::packet::pubrel::PubRelPacket;
use mqtt5_protocol::packet::suback::{SubAckPacket, SubAckReasonCode};
use mqtt5_protocol::packet::subscribe::SubscribePacket;
use mqtt5_protocol::packet::subscribe_options::RetainHandling;
use mqtt5_protocol::packet::unsuback::{UnsubAckPacket, UnsubAckReasonCode};
use mqtt5_protocol::packet::unsubscribe::UnsubscribePacket;
use mqtt5_protocol::{Packet, PropertyId, PropertyValue, QoS, ReasonCode};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep_until, timeout};
use tokio_util::sync::CancellationToken;

use super::Front;
use super::frame::{self, FrameError};
use super::mapping::valid_name;
use super::publish::{self, Appending, Message, Refused, Who};
use super::sessions::{self, NEVER, State};
use super::subscribe::{Delivery, Feed, Key, Readers, min_qos, parse_share};

/// The deliveries at QoS 1 and 2 a client may have unacknowledged, at most.
const MAX_INFLIGHT: usize = 64;

/// How often a connection with subscriptions looks for new topics and partitions.
const REFRESH_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The header a 5.0 publish's content type becomes.
const CONTENT_TYPE_HEADER: &str = "content-type";

/// The header that says when a 5.0 publish with a Message Expiry Interval expires (ms since the
/// epoch, as text): an expired record is not delivered to MQTT subscribers (Kafka consumers
/// still read it), and a delivered one carries what is left of the interval.
const EXPIRY_HEADER: &str = "mqtt-message-expiry";

/// How a connection ends.
enum End {
    /// The client sent DISCONNECT; `will` if it asked for its will to be published.
    Disconnected { will: bool },
    /// The connection broke, timed out or broke the protocol: the will is published.
    Lost,
    /// The broker is stopping, or another connection took the client id over.
    Closed,
}

/// A publish's answer, sent when its append (and every one before it) is done.
enum Answer {
    None,
    PubAck(u16),
    PubRec(u16),
    /// A PUBREL's, once a persistent session has stored that the id is released.
    PubComp(u16),
}

/// One entry of the queue of answers, in arrival order.
type Pending = (Answer, Appending);

/// A delivery waiting for the client's PUBACK (QoS 1) or PUBCOMP (2): the record it came from.
struct Inflight {
    source: Option<(Key, i64)>,
}

struct Connection<'a, S> {
    front: &'a Front,
    stream: S,
    peer: SocketAddr,
    input: BytesMut,
    output: BytesMut,
    version: u8,
    client_id: String,
    keep_alive: Option<std::time::Duration>,
    will: Option<(Message, QoS, bool)>,
    /// Topic aliases the client set (5.0).
    aliases: HashMap<u16, String>,
    /// QoS 2 packet ids appended (or being appended) whose PUBREL has not come.
    received: HashSet<u16>,
    pending: VecDeque<Pending>,
    /// Of `pending`, the QoS 1 and 2 ones (bounded by the Receive Maximum announced).
    pending_acks: usize,
    readers: Readers,
    deliveries: Option<mpsc::Receiver<Feed>>,
    /// Deliveries taken from the readers (or retained messages a new subscription gets) that
    /// wait for room in the in-flight window.
    backlog: VecDeque<Delivery>,
    /// Per partition read, the offset below which every record has been taken from its reader.
    scanned: HashMap<Key, i64>,
    /// The session's state if it outlives the connection.
    session: Option<State>,
    /// Whether the session was resumed or kept (CONNACK's session present).
    resumed: Option<State>,
    /// The positions last committed.
    committed: Vec<(String, i32, i64)>,
    /// Set once this connection has saved what it keeps (a connection taking its client id
    /// over waits for it).
    done: watch::Sender<bool>,
    inflight: HashMap<u16, Inflight>,
    inflight_max: usize,
    next_id: u16,
    /// Who the client is, for the authorizer.
    who: Who,
    /// The connection's number (its id among the members of shared subscriptions).
    number: u64,
    /// Its shared subscriptions (`$share/<group>/<filter>`) and the QoS granted.
    shared: Vec<(String, QoS)>,
}

/// Serves one connection: waits for its CONNECT, then runs it.
pub(super) async fn serve<S>(
    front: Arc<Front>,
    mut stream: S,
    peer: SocketAddr,
    stop: CancellationToken,
) where
    S: Transport,
{
    let max = usize::try_from(front.config.max_packet_size).unwrap_or(usize::MAX);
    let mut input = BytesMut::new();
    let connect = timeout(front.config.connect_timeout, async {
        loop {
            if let Some(refusal) = unsupported_level(&input) {
                return Err(refusal);
            }
            match frame::next(&mut input, max, 5) {
                Ok(Some(packet)) => return Ok(packet),
                Ok(None) => {}
                Err(err) => return Err(ConnectRefusal::of(&err)),
            }
            match fill(&mut stream, &mut input, max) {
                Ok(0) => return Err(ConnectRefusal::silent()),
                Ok(_) => {}
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                    if stream.readable().await.is_err() {
                        return Err(ConnectRefusal::silent());
                    }
                }
                Err(_) => return Err(ConnectRefusal::silent()),
            }
        }
    })
    .await;
    let connect = match connect {
        Ok(Ok(Packet::Connect(connect))) => connect,
        Ok(Ok(other)) => {
            tracing::debug!(%peer, packet = other.packet_type_name(), "MQTT connection closed: the first packet must be CONNECT");
            return;
        }
        Ok(Err(refused)) => {
            if let Some(answer) = refused.answer {
                let _ = stream.send(&answer).await;
            }
            tracing::debug!(%peer, reason = %refused.why, "MQTT connection refused");
            return;
        }
        Err(_elapsed) => {
            tracing::debug!(%peer, "MQTT connection closed: no CONNECT in time");
            return;
        }
    };
    let number = front.next_number();
    // The connection's task holds, while it waits, only what waiting needs: the rarer steps'
    // futures (accepting, handling a packet, finishing) are boxed while they run, so that an
    // idle connection's task stays small.
    let accepted = Box::pin(accept(&front, stream, peer, input, *connect, number)).await;
    let Some((mut connection, kicked)) = accepted else {
        return;
    };
    let end = connection.run(&stop, &kicked).await;
    front.leave(&connection.client_id, number);
    Box::pin(connection.finish(end)).await;
}

/// How long a connection waits for the one whose client id it takes over to store its session.
const TAKE_OVER_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// How often a persistent session's positions are committed while it is connected.
const COMMIT_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// A CONNECT's refusal before any session exists: what to answer (if anything), and why.
struct ConnectRefusal {
    answer: Option<Vec<u8>>,
    why: String,
}

impl ConnectRefusal {
    fn of(err: &FrameError) -> Self {
        Self {
            answer: None,
            why: err.to_string(),
        }
    }

    fn silent() -> Self {
        Self {
            answer: None,
            why: "the connection closed before its CONNECT".to_owned(),
        }
    }
}

/// A CONNECT whose protocol level this broker does not speak (only 4, 3.1.1, and 5), answered
/// with 3.1.1's "unacceptable protocol version" (the only CONNACK every version reads).
fn unsupported_level(input: &[u8]) -> Option<ConnectRefusal> {
    // The packet type, then the remaining length, then the protocol name and level.
    if input.first().map(|b| b >> 4) != Some(1) {
        return None;
    }
    let length_bytes = input.iter().skip(1).take(4).position(|b| b & 0x80 == 0)? + 1;
    let body = input.get(1 + length_bytes..)?;
    let name_len = usize::from(u16::from_be_bytes([*body.first()?, *body.get(1)?]));
    let level = *body.get(2 + name_len)?;
    let name = body.get(2..2 + name_len)?;
    if name == b"MQTT" && matches!(level, 4 | 5) {
        return None;
    }
    Some(ConnectRefusal {
        answer: Some(vec![0x20, 0x02, 0x00, 0x01]),
        why: format!(
            "protocol {} level {level} is not supported (MQTT 3.1.1 and 5.0 are)",
            String::from_utf8_lossy(name)
        ),
    })
}

/// Checks a CONNECT, answers it, and sets the connection up; `None` when it was refused.
async fn accept<S>(
    front: &Arc<Front>,
    stream: S,
    peer: SocketAddr,
    input: BytesMut,
    connect: ConnectPacket,
    number: u64,
) -> Option<(Connection<'_, S>, CancellationToken)>
where
    S: Transport,
{
    let version = connect.protocol_version;
    let mut output = BytesMut::new();
    let mut assigned = None;
    let client_id = if connect.client_id.is_empty() {
        if version == 4 && !connect.clean_start {
            // 3.1.1: a client with no id must ask for a clean session.
            let _ = ConnAckPacket::new_v311(false, ReasonCode::ClientIdentifierNotValid)
                .encode(&mut output);
            let mut stream = stream;
            let _ = stream.send(&output).await;
            return None;
        }
        let id = format!("rill-{number}");
        assigned = Some(id.clone());
        id
    } else {
        connect.client_id.clone()
    };
    // With users (SCRAM credentials) on the broker, a client names one and proves it.
    let who = Who {
        principal: match authenticate(front, &connect).await {
            Ok(principal) => principal,
            Err(why) => {
                tracing::debug!(%peer, client_id = %client_id, %why, "MQTT client refused");
                let ack = if version == 5 {
                    ConnAckPacket::new(false, ReasonCode::BadUsernameOrPassword)
                } else {
                    ConnAckPacket::new_v311(false, ReasonCode::BadUsernameOrPassword)
                };
                let _ = ack.encode(&mut output);
                let mut stream = stream;
                let _ = stream.send(&output).await;
                return None;
            }
        },
        ip: peer.ip().to_canonical(),
    };
    let (kicked, done, previous) = front.take_over(&client_id, number);
    if let Some(mut previous) = previous {
        // The connection that had this client id first stores what its session keeps.
        let _ = timeout(TAKE_OVER_WAIT, previous.wait_for(|d| *d)).await;
    }
    // The session: 3.1.1's clean session 0 keeps it forever, 5.0's clean start 0 resumes it
    // and its session expiry interval keeps it.
    let expiry = if version == 5 {
        connect
            .properties
            .get_session_expiry_interval()
            .unwrap_or(0)
    } else if connect.clean_start {
        0
    } else {
        NEVER
    };
    front.sessions.ready().await;
    let broker = &front.broker;
    let resumed = if connect.clean_start {
        if front.sessions.get(&client_id).is_some() {
            sessions::forget_positions(broker, &client_id).await;
            if let Err(refused) = front.sessions.save(broker, &client_id, None).await {
                tracing::warn!(%client_id, reason = %refused.message, "an MQTT session could not be ended");
            }
        }
        None
    } else {
        front.sessions.get(&client_id)
    };
    let session = (expiry > 0).then(|| State {
        filters: resumed
            .as_ref()
            .map(|s| s.filters.clone())
            .unwrap_or_default(),
        expiry_s: expiry,
        received: resumed
            .as_ref()
            .map(|s| s.received.clone())
            .unwrap_or_default(),
        disconnected_ms: None,
    });
    if session.is_some() && resumed.is_none() {
        // A new session starts with no positions (an expired one's may still be there).
        sessions::forget_positions(broker, &client_id).await;
    }
    if let Some(state) = &session
        && let Err(refused) = front
            .sessions
            .save(broker, &client_id, Some(state.clone()))
            .await
    {
        tracing::warn!(%client_id, reason = %refused.message, "an MQTT session could not be stored");
        let ack = if version == 5 {
            ConnAckPacket::new(false, ReasonCode::ServerUnavailable)
        } else {
            ConnAckPacket::new_v311(false, ReasonCode::ServerUnavailable)
        };
        let _ = ack.encode(&mut output);
        let mut stream = stream;
        let _ = stream.send(&output).await;
        let _ = done.send_replace(true);
        return None;
    }
    let session_present = resumed.is_some();
    let client_receive_max = connect
        .properties
        .get_receive_maximum()
        .map_or(MAX_INFLIGHT, usize::from);
    let ack = if version == 5 {
        let mut ack = ConnAckPacket::new(session_present, ReasonCode::Success)
            .with_receive_maximum(front.config.receive_maximum)
            .with_maximum_packet_size(front.config.max_packet_size)
            .with_topic_alias_maximum(front.config.topic_alias_maximum)
            .with_retain_available(true)
            .with_shared_subscription_available(true)
            .with_subscription_identifier_available(false)
            .with_wildcard_subscription_available(true);
        if let Some(id) = assigned {
            ack = ack.with_assigned_client_id(id);
        }
        ack
    } else {
        ConnAckPacket::new_v311(session_present, ReasonCode::Success)
    };
    let _ = ack.encode(&mut output);
    let will = connect.will.as_ref().map(|will| {
        let mut headers: Vec<(String, Bytes)> = will
            .properties
            .user_properties
            .iter()
            .map(|(k, v)| (k.clone(), Bytes::from(v.clone().into_bytes())))
            .collect();
        if let Some(content_type) = &will.properties.content_type {
            headers.push((
                CONTENT_TYPE_HEADER.to_owned(),
                Bytes::from(content_type.clone().into_bytes()),
            ));
        }
        let message = Message {
            topic: will.topic.clone(),
            payload: Bytes::from(will.payload.clone()),
            headers,
        };
        (message, will.qos, will.retain)
    });
    let keep_alive = (connect.keep_alive > 0)
        .then(|| std::time::Duration::from_millis(u64::from(connect.keep_alive) * 1500));
    tracing::debug!(%peer, client_id = %client_id, version, session_present, "MQTT client connected");
    let mut readers = Readers::new(front.broker.clone(), front.mapping.clone(), who.clone());
    let mut received = HashSet::new();
    let mut shared = Vec::new();
    if let Some(state) = &resumed {
        let (shares, filters): (Vec<_>, Vec<_>) = state
            .filters
            .iter()
            .map(|(f, q)| (f.clone(), QoS::from(*q)))
            .partition(|(f, _)| f.starts_with("$share/"));
        readers.resume(filters, sessions::positions(broker, &client_id));
        for (name, qos) in shares {
            if let Some((_, filter)) = parse_share(&name) {
                let member = (number, readers.sender(), qos, who.clone());
                front
                    .shares
                    .join(&front.broker, &front.mapping, &name, filter, member);
            }
            shared.push((name, qos));
        }
        received.extend(state.received.iter().copied());
    }
    let deliveries = readers.take_receiver();
    Some((
        Connection {
            front,
            stream,
            peer,
            input,
            output,
            version,
            client_id,
            keep_alive,
            will,
            aliases: HashMap::new(),
            received,
            pending: VecDeque::new(),
            pending_acks: 0,
            readers,
            deliveries,
            backlog: VecDeque::new(),
            scanned: HashMap::new(),
            session,
            resumed,
            committed: Vec::new(),
            done,
            inflight: HashMap::new(),
            inflight_max: client_receive_max.clamp(1, MAX_INFLIGHT),
            next_id: 1,
            who,
            number,
            shared,
        },
        kicked,
    ))
}

/// A protocol breach: the connection ends, a 5.0 client told why with `reason`.
struct Breach {
    reason: ReasonCode,
    why: String,
}

impl Breach {
    fn new(reason: ReasonCode, why: impl Into<String>) -> Self {
        Self {
            reason,
            why: why.into(),
        }
    }
}

/// Waits for the first pending answer's append.
fn first_done(
    pending: &mut VecDeque<Pending>,
) -> impl Future<Output = Option<(Answer, Result<i64, publish::Refused>)>> + '_ {
    poll_fn(move |cx| {
        let Some((_, append)) = pending.front_mut() else {
            return Poll::Pending;
        };
        match append.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(result) => {
                Poll::Ready(pending.pop_front().map(|(answer, _)| (answer, result)))
            }
        }
    })
}

impl<S> Connection<'_, S>
where
    S: Transport,
{
    fn max_packet(&self) -> usize {
        usize::try_from(self.front.config.max_packet_size).unwrap_or(usize::MAX)
    }

    async fn run(&mut self, stop: &CancellationToken, kicked: &CancellationToken) -> End {
        if self.flush().await.is_err() {
            return End::Lost;
        }
        let mut deadline = self.keep_alive.map(|k| Instant::now() + k);
        let mut drained = false;
        let mut commit = tokio::time::interval(COMMIT_EVERY);
        commit.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut refresh = tokio::time::interval(REFRESH_EVERY);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // What is already buffered goes first.
            match Box::pin(self.handle_buffered()).await {
                Ok(Some(end)) => return end,
                Ok(None) => {}
                Err(breach) => return self.breach(breach).await,
            }
            if self.flush().await.is_err() {
                return End::Lost;
            }
            let reading = self.pending.len() < usize::from(self.front.config.receive_maximum);
            while self.inflight.len() < self.inflight_max {
                let Some(delivery) = self.backlog.pop_front() else {
                    break;
                };
                self.deliver(delivery);
            }
            if !self.output.is_empty() && self.flush().await.is_err() {
                return End::Lost;
            }
            let delivering = self.inflight.len() < self.inflight_max && self.backlog.is_empty();
            let keep_alive = async {
                match deadline {
                    Some(at) => sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            if drained && self.input.is_empty() {
                // Nothing to read and nothing half-read: an idle connection holds no buffers.
                self.input = BytesMut::new();
                self.output = BytesMut::new();
            }
            tokio::select! {
                ready = self.stream.readable(), if reading => {
                    if ready.is_err() {
                        return End::Lost;
                    }
                    let max = self.max_packet();
                    match fill(&mut self.stream, &mut self.input, max) {
                        Ok(0) => return End::Lost,
                        Ok(_) => {
                            drained = false;
                            deadline = self.keep_alive.map(|k| Instant::now() + k);
                            // A packet over the maximum ends the connection before it is read.
                            if let Err(err) = frame::missing(&self.input, max) {
                                return self.breach(Breach::new(err.reason(), err.to_string())).await;
                            }
                        }
                        Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => drained = true,
                        Err(_) => return End::Lost,
                    }
                },
                done = first_done(&mut self.pending) => {
                    if let Some((answer, result)) = done
                        && let Err(breach) = self.answer(answer, result) {
                            return self.breach(breach).await;
                        }
                }
                Some(feed) = next_feed(&mut self.deliveries), if delivering => match feed {
                    Feed::Record(delivery) => self.deliver(delivery),
                    Feed::Scanned(key, offset) => {
                        let _ = self.scanned.insert(key, offset);
                    }
                },
                _ = refresh.tick(), if !self.readers.is_empty() => self.readers.refresh(true),
                _ = commit.tick(), if self.session.is_some() => Box::pin(self.commit_positions()).await,
                () = keep_alive => {
                    return self
                        .breach(Breach::new(ReasonCode::KeepAliveTimeout, "no packet within 1.5 times the keep-alive"))
                        .await;
                }
                () = kicked.cancelled() => {
                    self.disconnect(ReasonCode::SessionTakenOver).await;
                    return End::Closed;
                }
                () = stop.cancelled() => {
                    self.disconnect(ReasonCode::ServerShuttingDown).await;
                    return End::Closed;
                }
            }
        }
    }

    /// Handles every whole packet in the input buffer.
    async fn handle_buffered(&mut self) -> Result<Option<End>, Breach> {
        loop {
            if self.pending.len() >= usize::from(self.front.config.receive_maximum) {
                return Ok(None);
            }
            let max = self.max_packet();
            let packet = frame::next(&mut self.input, max, self.version)
                .map_err(|err| Breach::new(err.reason(), err.to_string()))?;
            let Some(packet) = packet else {
                return Ok(None);
            };
            if let Some(end) = self.handle(packet).await? {
                return Ok(Some(end));
            }
        }
    }

    async fn handle(&mut self, packet: Packet) -> Result<Option<End>, Breach> {
        match packet {
            Packet::Publish(publish) => self.publish(publish).await?,
            Packet::PubAck(ack) => {
                let _ = self.inflight.remove(&ack.packet_id);
            }
            Packet::PubRec(rec) => {
                if rec.reason_code.is_error() {
                    let _ = self.inflight.remove(&rec.packet_id);
                } else {
                    self.encode(&PubRelPacket::new(rec.packet_id));
                }
            }
            Packet::PubComp(comp) => {
                let _ = self.inflight.remove(&comp.packet_id);
            }
            Packet::PubRel(rel) => {
                let known = self.received.remove(&rel.packet_id);
                if known && self.session.is_some() {
                    // Released for good only once the session says so: a PUBCOMP lets the
                    // client use the id again.
                    let save = self.save_session();
                    self.pending
                        .push_back((Answer::PubComp(rel.packet_id), save));
                    return Ok(None);
                }
                let comp = if known || self.version == 4 {
                    PubCompPacket::new(rel.packet_id)
                } else {
                    PubCompPacket::new_with_reason(
                        rel.packet_id,
                        ReasonCode::PacketIdentifierNotFound,
                    )
                };
                self.encode(&comp);
            }
            Packet::Subscribe(subscribe) => self.subscribe(subscribe).await,
            Packet::Unsubscribe(unsubscribe) => self.unsubscribe(unsubscribe).await,
            Packet::PingReq => self.encode_raw(&[0xd0, 0x00]),
            Packet::Disconnect(disconnect) => {
                let will = disconnect.reason_code == ReasonCode::DisconnectWithWillMessage;
                // 5.0: the client may change its session's expiry as it leaves (not from 0).
                if let (Some(expiry), Some(session)) = (
                    disconnect.properties.get_session_expiry_interval(),
                    self.session.as_mut(),
                ) {
                    session.expiry_s = expiry;
                }
                return Ok(Some(End::Disconnected { will }));
            }
            Packet::Connect(_) => {
                return Err(Breach::new(ReasonCode::ProtocolError, "a second CONNECT"));
            }
            Packet::Auth(_) => {
                return Err(Breach::new(
                    ReasonCode::BadAuthenticationMethod,
                    "enhanced authentication (AUTH) is not supported",
                ));
            }
            other => {
                return Err(Breach::new(
                    ReasonCode::ProtocolError,
                    format!("a client does not send {}", other.packet_type_name()),
                ));
            }
        }
        Ok(None)
    }

    /// A PUBLISH: checked, handed off, and queued for its answer.
    async fn publish(&mut self, publish: PublishPacket) -> Result<(), Breach> {
        let topic = self.topic_of(&publish)?;
        let id = publish.packet_id.unwrap_or(0);
        let answer = match publish.qos {
            QoS::AtMostOnce => Answer::None,
            QoS::AtLeastOnce => Answer::PubAck(id),
            QoS::ExactlyOnce => Answer::PubRec(id),
        };
        if !matches!(answer, Answer::None) {
            self.pending_acks += 1;
            if self.version == 5
                && self.pending_acks > usize::from(self.front.config.receive_maximum)
            {
                return Err(Breach::new(
                    ReasonCode::ReceiveMaximumExceeded,
                    "more unacknowledged QoS 1 and 2 publishes than the Receive Maximum",
                ));
            }
        }
        if matches!(answer, Answer::PubRec(_)) && !self.received.insert(id) {
            // A retransmission: appended once already; only answered again.
            self.pending.push_back((answer, Box::pin(async { Ok(-1) })));
            return Ok(());
        }
        let message = Message {
            headers: headers_of(&publish.properties),
            topic,
            payload: publish.payload,
        };
        let mut append = send_in(self.front, &self.who, message, publish.qos, publish.retain).await;
        if publish.qos == QoS::ExactlyOnce && self.session.is_some() {
            // The packet id is stored with the session before PUBREC: a retransmission after
            // a restart is still recognised.
            let save = self.save_session();
            append = Box::pin(async move {
                let offset = append.await?;
                let _ = save.await?;
                Ok(offset)
            });
        }
        self.pending.push_back((answer, append));
        Ok(())
    }

    /// The session's state now, if it outlives the connection.
    fn state_now(&self) -> Option<State> {
        let session = self.session.as_ref()?;
        let mut received: Vec<u16> = self.received.iter().copied().collect();
        received.sort_unstable();
        Some(State {
            filters: self
                .readers
                .filters()
                .iter()
                .chain(&self.shared)
                .map(|(f, q)| (f.clone(), *q as u8))
                .collect(),
            expiry_s: session.expiry_s,
            received,
            disconnected_ms: None,
        })
    }

    /// Stores the session's state now (resolving at once when it is not persistent).
    fn save_session(&self) -> Appending {
        let Some(state) = self.state_now() else {
            return Box::pin(async { Ok(-1) });
        };
        let sessions = self.front.sessions.clone();
        let broker = self.front.broker.clone();
        let client_id = self.client_id.clone();
        Box::pin(async move {
            sessions.save(&broker, &client_id, Some(state)).await?;
            Ok(-1)
        })
    }

    /// Per partition read, the offset of the first record the client has not acknowledged
    /// (in flight or waiting), or the reader's position when there is none.
    fn positions(&self) -> Vec<(String, i32, i64)> {
        let mut positions: HashMap<&Key, i64> = self.scanned.iter().map(|(k, o)| (k, *o)).collect();
        let unacknowledged = self
            .inflight
            .values()
            .filter_map(|i| i.source.as_ref())
            .chain(self.backlog.iter().filter_map(|d| d.source.as_ref()));
        for (key, offset) in unacknowledged {
            if let Some(position) = positions.get_mut(key) {
                *position = (*position).min(*offset);
            }
        }
        let mut positions: Vec<_> = positions
            .into_iter()
            .map(|((topic, partition), offset)| (topic.clone(), *partition, offset))
            .collect();
        positions.sort();
        positions
    }

    /// Commits the session's positions if they moved.
    async fn commit_positions(&mut self) {
        let positions = self.positions();
        if positions != self.committed {
            sessions::commit_positions(&self.front.broker, &self.client_id, positions.clone())
                .await;
            self.committed = positions;
        }
    }

    /// The topic a PUBLISH names, through its topic alias if it has one.
    fn topic_of(&mut self, publish: &PublishPacket) -> Result<String, Breach> {
        let alias = publish.properties.get_topic_alias();
        if let Some(alias) = alias
            && (alias == 0 || alias > self.front.config.topic_alias_maximum)
        {
            return Err(Breach::new(
                ReasonCode::TopicAliasInvalid,
                format!(
                    "topic alias {alias} is outside 1..={}",
                    self.front.config.topic_alias_maximum
                ),
            ));
        }
        let topic = match (publish.topic_name.is_empty(), alias) {
            (false, Some(alias)) => {
                let _ = self.aliases.insert(alias, publish.topic_name.clone());
                publish.topic_name.clone()
            }
            (false, None) => publish.topic_name.clone(),
            (true, Some(alias)) => self.aliases.get(&alias).cloned().ok_or_else(|| {
                Breach::new(
                    ReasonCode::ProtocolError,
                    format!("topic alias {alias} was never set"),
                )
            })?,
            (true, None) => {
                return Err(Breach::new(
                    ReasonCode::ProtocolError,
                    "a PUBLISH with no topic",
                ));
            }
        };
        if !valid_name(&topic) {
            return Err(Breach::new(
                ReasonCode::TopicNameInvalid,
                format!("'{topic}' is not a topic name a client may publish to (wildcards?)"),
            ));
        }
        Ok(topic)
    }

    /// Sends a publish's answer, once its append is done.
    fn answer(&mut self, answer: Answer, result: Result<i64, Refused>) -> Result<(), Breach> {
        let (id, rec) = match answer {
            Answer::None => {
                if let Err(refused) = result {
                    tracing::debug!(peer = %self.peer, reason = %refused.message, "an MQTT QoS 0 publish was not appended");
                    if refused.reason == ReasonCode::TopicNameInvalid {
                        // Nothing else tells a QoS 0 publisher its topic cannot be.
                        return Err(Breach::new(refused.reason, refused.message));
                    }
                }
                return Ok(());
            }
            Answer::PubAck(id) => (id, false),
            Answer::PubRec(id) => (id, true),
            Answer::PubComp(id) => {
                if let Err(refused) = result {
                    // The release is not stored: the session cannot go on safely.
                    return Err(Breach::new(ReasonCode::UnspecifiedError, refused.message));
                }
                self.encode(&PubCompPacket::new(id));
                return Ok(());
            }
        };
        self.pending_acks = self.pending_acks.saturating_sub(1);
        match result {
            Ok(_) if rec => self.encode(&PubRecPacket::new(id)),
            Ok(_) => self.encode(&PubAckPacket::new(id)),
            Err(refused) => {
                if rec {
                    let _ = self.received.remove(&id);
                }
                if self.version == 4 {
                    // 3.1.1 cannot say no: the client will send it again on a new connection.
                    return Err(Breach::new(refused.reason, refused.message));
                }
                tracing::debug!(peer = %self.peer, reason = %refused.message, "an MQTT publish was refused");
                if rec {
                    self.encode(
                        &PubRecPacket::new_with_reason(id, refused.reason)
                            .with_reason_string(refused.message),
                    );
                } else {
                    self.encode(
                        &PubAckPacket::new_with_reason(id, refused.reason)
                            .with_reason_string(refused.message),
                    );
                }
            }
        }
        Ok(())
    }

    async fn subscribe(&mut self, subscribe: SubscribePacket) {
        self.front.retained.ready().await;
        let mut filters = self.readers.filters().as_ref().clone();
        let mut codes = Vec::with_capacity(subscribe.filters.len());
        for wanted in &subscribe.filters {
            let filter = &wanted.filter;
            let code = if filter.starts_with("$share/") {
                match parse_share(filter) {
                    None => SubAckReasonCode::TopicFilterInvalid,
                    Some((_, topics)) => {
                        let qos = wanted.options.qos;
                        let member = (self.number, self.readers.sender(), qos, self.who.clone());
                        if self.deliveries.is_none() {
                            self.deliveries = self.readers.take_receiver();
                        }
                        let front = self.front;
                        front
                            .shares
                            .join(&front.broker, &front.mapping, filter, topics, member);
                        self.shared.retain(|(f, _)| f != filter);
                        self.shared.push((filter.clone(), qos));
                        SubAckReasonCode::from_qos(qos)
                    }
                }
            } else if !mqtt5_protocol::is_valid_topic_filter(filter) {
                SubAckReasonCode::TopicFilterInvalid
            } else {
                let qos = wanted.options.qos;
                let new = match filters.iter_mut().find(|(f, _)| f == filter) {
                    Some(existing) => {
                        existing.1 = qos;
                        false
                    }
                    None => {
                        filters.push((filter.clone(), qos));
                        true
                    }
                };
                let send_retained = match wanted.options.retain_handling {
                    RetainHandling::SendAtSubscribe => true,
                    RetainHandling::SendAtSubscribeIfNew => new,
                    RetainHandling::DoNotSend => false,
                };
                if send_retained {
                    for (topic, retained) in self.front.retained.matching(filter) {
                        self.backlog.push_back(Delivery {
                            topic,
                            payload: retained.payload,
                            headers: retained.headers,
                            qos: min_qos(qos, retained.qos),
                            retain: true,
                            source: None,
                        });
                    }
                }
                SubAckReasonCode::from_qos(qos)
            };
            codes.push(if self.version == 4 && (code as u8) >= 0x80 {
                SubAckReasonCode::UnspecifiedError
            } else {
                code
            });
        }
        self.readers.set_filters(filters);
        if self.deliveries.is_none() {
            self.deliveries = self.readers.take_receiver();
        }
        self.store_filters().await;
        let mut ack = if self.version == 5 {
            SubAckPacket::new(subscribe.packet_id)
        } else {
            SubAckPacket::new_v311(subscribe.packet_id)
        };
        for code in codes {
            ack = ack.add_reason_code(code);
        }
        self.encode(&ack);
    }

    async fn unsubscribe(&mut self, unsubscribe: UnsubscribePacket) {
        let mut filters = self.readers.filters().as_ref().clone();
        let mut ack = if self.version == 5 {
            UnsubAckPacket::new(unsubscribe.packet_id)
        } else {
            UnsubAckPacket::new_v311(unsubscribe.packet_id)
        };
        for filter in &unsubscribe.filters {
            let before = filters.len() + self.shared.len();
            filters.retain(|(f, _)| f != filter);
            if self.shared.iter().any(|(f, _)| f == filter) {
                self.shared.retain(|(f, _)| f != filter);
                self.front.shares.leave(filter, self.number);
            }
            ack = ack.add_reason_code(if filters.len() + self.shared.len() < before {
                UnsubAckReasonCode::Success
            } else {
                UnsubAckReasonCode::NoSubscriptionExisted
            });
        }
        self.readers.set_filters(filters);
        if self.deliveries.is_none() {
            self.deliveries = self.readers.take_receiver();
        }
        self.store_filters().await;
        self.encode(&ack);
    }

    /// Stores a persistent session's filters before the SUBACK or UNSUBACK.
    async fn store_filters(&mut self) {
        if let Err(refused) = self.save_session().await {
            tracing::warn!(client_id = %self.client_id, reason = %refused.message, "an MQTT session's subscriptions could not be stored");
        }
    }

    /// Sends a record to the client at its subscription's QoS.
    fn deliver(&mut self, delivery: Delivery) {
        // A message past its expiry (5.0's Message Expiry Interval) is not delivered.
        let expires = delivery
            .headers
            .iter()
            .find(|(key, _)| key.as_ref() == EXPIRY_HEADER.as_bytes())
            .and_then(|(_, value)| {
                std::str::from_utf8(value.as_deref()?)
                    .ok()?
                    .parse::<i64>()
                    .ok()
            });
        let now = crate::partition::now_ms();
        if expires.is_some_and(|at| at <= now) {
            return;
        }
        let mut publish = if self.version == 5 {
            PublishPacket::new(delivery.topic, delivery.payload, delivery.qos)
        } else {
            PublishPacket::new_v311(delivery.topic, delivery.payload, delivery.qos)
        };
        if self.version == 5 {
            for (key, value) in delivery.headers {
                let (Ok(key), Some(Ok(value))) = (
                    String::from_utf8(key.to_vec()),
                    value.map(|v| String::from_utf8(v.to_vec())),
                ) else {
                    continue;
                };
                publish = if key == CONTENT_TYPE_HEADER {
                    publish.with_content_type(value)
                } else if key == EXPIRY_HEADER {
                    publish
                } else {
                    publish.with_user_property(key, value)
                };
            }
            if let Some(at) = expires {
                // What is left of it, in whole seconds, rounded up.
                let left = u32::try_from((at - now + 999) / 1000).unwrap_or(u32::MAX);
                publish = publish.with_message_expiry_interval(left.max(1));
            }
        }
        if delivery.retain {
            publish = publish.with_retain(true);
        }
        if delivery.qos != QoS::AtMostOnce {
            let id = self.free_id();
            publish = publish.with_packet_id(id);
            let inflight = Inflight {
                source: delivery.source,
            };
            let _ = self.inflight.insert(id, inflight);
        }
        self.encode(&publish);
    }

    /// A packet id no delivery in flight holds.
    fn free_id(&mut self) -> u16 {
        loop {
            let id = self.next_id;
            self.next_id = self.next_id.checked_add(1).unwrap_or(1);
            if !self.inflight.contains_key(&id) {
                return id;
            }
        }
    }

    fn encode(&mut self, packet: &impl MqttPacket) {
        if let Err(err) = packet.encode(&mut self.output) {
            tracing::warn!(peer = %self.peer, %err, "an MQTT packet could not be encoded");
        }
    }

    fn encode_raw(&mut self, bytes: &[u8]) {
        self.output.extend_from_slice(bytes);
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if self.output.is_empty() {
            return Ok(());
        }
        let result = self.stream.send(&self.output).await;
        self.output.clear();
        result
    }

    /// Tells a 5.0 client why the connection ends (3.1.1 has no way to), then ends it.
    async fn disconnect(&mut self, reason: ReasonCode) {
        if self.version == 5 {
            self.encode(&DisconnectPacket::new(reason));
        }
        let _ = self.flush().await;
        self.stream.close().await;
    }

    async fn breach(&mut self, breach: Breach) -> End {
        tracing::debug!(peer = %self.peer, client_id = %self.client_id, reason = %breach.why, "MQTT connection closed");
        self.disconnect(breach.reason).await;
        End::Lost
    }

    /// Ends the connection: the publishes already handed off are awaited (they are in the log
    /// either way), and the will is published unless the client disconnected cleanly.
    async fn finish(mut self, end: End) {
        while !self.pending.is_empty() {
            if let Some((_, Err(refused))) = first_done(&mut self.pending).await {
                tracing::debug!(peer = %self.peer, reason = %refused.message, "an MQTT publish was not appended");
            }
        }
        for (name, _) in &self.shared {
            self.front.shares.leave(name, self.number);
        }
        if self.session.is_some() || self.resumed.is_some() {
            // What the readers sent and the client did not get is delivered next time.
            self.readers.stop();
            while let Some(Ok(feed)) = self.deliveries.as_mut().map(mpsc::Receiver::try_recv) {
                match feed {
                    Feed::Record(delivery) => self.backlog.push_back(delivery),
                    Feed::Scanned(key, offset) => {
                        let _ = self.scanned.insert(key, offset);
                    }
                }
            }
        }
        let broker = &self.front.broker;
        if let Some(mut state) = self.state_now() {
            self.commit_positions().await;
            state.disconnected_ms = Some(crate::partition::now_ms());
            if let Err(refused) = self
                .front
                .sessions
                .save(broker, &self.client_id, Some(state))
                .await
            {
                tracing::warn!(client_id = %self.client_id, reason = %refused.message, "an MQTT session could not be stored");
            }
        } else if self.resumed.is_some() {
            // Resumed for this connection only (5.0, no session expiry): it ends with it.
            sessions::forget_positions(broker, &self.client_id).await;
            let _ = self
                .front
                .sessions
                .save(broker, &self.client_id, None)
                .await;
        }
        let _ = self.done.send_replace(true);
        let will = match end {
            End::Disconnected { will } => will,
            End::Lost => true,
            End::Closed => false,
        };
        if let (true, Some((message, qos, retain))) = (will, self.will.take()) {
            if !valid_name(&message.topic) {
                return;
            }
            if let Err(refused) = send_in(self.front, &self.who, message, qos, retain)
                .await
                .await
            {
                tracing::debug!(client_id = %self.client_id, reason = %refused.message, "an MQTT will was not appended");
            }
        }
    }
}

/// Hands `message` off (durable above QoS 0) and, when it is to be retained, retains it
/// too; the append resolves once both are done.
async fn send_in(front: &Front, who: &Who, message: Message, qos: QoS, retain: bool) -> Appending {
    let retained = if retain {
        Some(
            front
                .retained
                .retain(
                    &front.broker,
                    message.topic.clone(),
                    message.payload.clone(),
                    &message.headers,
                    qos,
                )
                .await,
        )
    } else {
        None
    };
    let durable = qos != QoS::AtMostOnce;
    let append = publish::hand_off(&front.broker, &front.mapping, who, message, durable).await;
    Box::pin(async move {
        let offset = append?.await?;
        if let Some(retained) = retained {
            let _ = retained?.await?;
        }
        Ok(offset)
    })
}

/// The principal a CONNECT proves: none needed while the broker has no users; with users, a
/// user name and its password (checked as SASL/PLAIN checks one).
async fn authenticate(front: &Front, connect: &ConnectPacket) -> Result<Option<String>, String> {
    let broker = &front.broker;
    if !crate::sasl::has_users(broker) {
        return Ok(None);
    }
    let (Some(user), Some(password)) = (&connect.username, &connect.password) else {
        return Err("no user name and password".to_owned());
    };
    let password = std::str::from_utf8(password).map_err(|_| "a password that is not UTF-8")?;
    if crate::sasl::check_password(broker, user, password).await {
        Ok(Some(format!("User:{user}")))
    } else {
        Err(format!("wrong password for user '{user}'"))
    }
}

/// The most a read asks the socket for, unless a packet it has begun needs more.
const READ_CHUNK: usize = 4096;

/// Reads what the socket has into `input` without waiting (`Ok(0)` at end of stream,
/// `WouldBlock` if nothing), with room for the whole packet once its fixed header is in.
fn fill<S: Transport>(stream: &mut S, input: &mut BytesMut, max: usize) -> std::io::Result<usize> {
    let wanted = frame::missing(input, max).unwrap_or(1).min(max);
    if input.capacity() - input.len() < wanted.min(READ_CHUNK) {
        input.reserve(wanted.max(READ_CHUNK));
    }
    stream.try_read_buf(input)
}

/// The next item from a connection's readers (never, while it has none).
async fn next_feed(feed: &mut Option<mpsc::Receiver<Feed>>) -> Option<Feed> {
    match feed {
        Some(feed) => feed.recv().await,
        None => std::future::pending().await,
    }
}

/// A 5.0 publish's user properties (in their order), then its content type and, if it has a
/// Message Expiry Interval, when it expires (ms since the epoch), as record headers.
fn headers_of(properties: &mqtt5_protocol::Properties) -> Vec<(String, Bytes)> {
    let mut headers: Vec<(String, Bytes)> = properties
        .get_all(PropertyId::UserProperty)
        .unwrap_or_default()
        .iter()
        .filter_map(|value| match value {
            PropertyValue::Utf8StringPair(key, value) => {
                Some((key.clone(), Bytes::from(value.clone().into_bytes())))
            }
            _ => None,
        })
        .collect();
    if let Some(content_type) = properties.get_content_type() {
        headers.push((
            CONTENT_TYPE_HEADER.to_owned(),
            Bytes::from(content_type.into_bytes()),
        ));
    }
    if let Some(seconds) = properties.get_message_expiry_interval() {
        let at = crate::partition::now_ms().saturating_add(i64::from(seconds) * 1000);
        headers.push((EXPIRY_HEADER.to_owned(), Bytes::from(at.to_string())));
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsupported_levels_are_answered_before_decoding() {
        // CONNECT, protocol "MQTT" level 9.
        let level9 = [
            0x10, 0x0c, 0x00, 0x04, b'M', b'Q', b'T', b'T', 9, 0x02, 0, 60, 0, 0,
        ];
        let refused = unsupported_level(&level9).map(|r| r.answer);
        assert_eq!(refused, Some(Some(vec![0x20, 0x02, 0x00, 0x01])));
        // MQTT 3.1's "MQIsdp" level 3.
        let v31 = [
            0x10, 0x0e, 0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 3, 0x02, 0, 60,
        ];
        assert!(unsupported_level(&v31).is_some());
        // 3.1.1 and 5.0 go on; so does a partial header.
        let v5 = [
            0x10, 0x0d, 0x00, 0x04, b'M', b'Q', b'T', b'T', 5, 0x02, 0, 60, 0,
        ];
        assert!(unsupported_level(&v5).is_none());
        assert!(unsupported_level(&[0x10, 0x0d, 0x00]).is_none());
    }
}
