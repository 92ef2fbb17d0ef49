//! The thread that runs this broker's replica of the metadata quorum: raft-rs's `RawNode`,
//! driven by ticks, peers' messages and proposals, through the Ready loop below.
//!
//! The Ready loop's order is raft-rs's (its `RawNode` docs): messages a leader may send before
//! its own write, then the snapshot, the committed entries, the new entries and the hard state,
//! one fsync, and only then the messages that depend on what was written (votes, append acks).
//! Committed entries are applied to the [`Image`] in order and reported to the broker.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use raft::eraftpb::{EntryType, Message, MessageType};
use raft::{RawNode, StateRole};
use rill_protocol::ErrorCode;
use tokio::sync::{mpsc, oneshot, watch};

use super::image::{Change, Command, Image, Outcome, Proposal};
use super::store::QuorumStore;
use super::voters::{node_id, raft_id};
use crate::authorizer::AclBinding;
use crate::broker::TopicError;
use crate::error::BrokerError;

/// One tick of Raft's logical clock.
pub(crate) const TICK: Duration = Duration::from_millis(50);
/// Heartbeats every 2 ticks (100 ms); an election after 10-20 ticks (0.5-1 s) without one.
const HEARTBEAT_TICKS: usize = 2;
const ELECTION_TICKS: usize = 10;

/// A proposal's answer: the index it applied at, its outcome's value, and the ACLs a
/// DeleteAcls removed (per filter).
pub(crate) type Reply = oneshot::Sender<Result<(u64, i64, Vec<Vec<AclBinding>>), TopicError>>;

/// What the node thread is told.
#[derive(Debug)]
pub(crate) enum Input {
    /// A message from a peer.
    Peer(Message),
    /// A change to agree on.
    Propose(Command, Reply),
    /// A peer refused this broker for a reason that will not pass (its configuration, or its
    /// node id held by another live broker: `duplicate`).
    Refused {
        by: i32,
        why: String,
        duplicate: bool,
    },
    /// A peer accepted this broker's hello (any refusal by it is over).
    Accepted {
        by: i32,
    },
    Stop,
}

/// Committed entries applied up to `index`, and what they changed.
#[derive(Debug)]
pub(crate) struct Applied {
    pub(crate) index: u64,
    pub(crate) changes: Vec<Change>,
}

/// How this replica stands, for `/metrics`, DescribeQuorum and `rill cluster status`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Status {
    pub(crate) term: u64,
    /// The quorum's leader's node id, -1 when none is known.
    pub(crate) leader: i32,
    pub(crate) role: &'static str,
    pub(crate) commit: u64,
    pub(crate) applied: u64,
    pub(crate) last_index: u64,
    /// When each other voter was last heard from (ms since the epoch).
    pub(crate) last_contact_ms: HashMap<i32, i64>,
    /// Each voter's replicated log end, as the leader knows it.
    pub(crate) matched: HashMap<i32, u64>,
    /// Why the quorum stopped, if it did.
    pub(crate) failed: Option<String>,
}

/// What the node thread shares with the broker.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) image: RwLock<Image>,
    pub(crate) status: Mutex<Status>,
    /// The last applied index.
    pub(crate) applied: watch::Sender<u64>,
}

/// Where the node thread sends messages for peers.
pub(crate) type Outbox = Box<dyn Fn(Message) + Send>;

/// Settings of the node thread.
#[derive(Debug, Clone)]
pub(crate) struct NodeConfig {
    pub(crate) node_id: i32,
    /// Distinguishes this process's proposals from every other's.
    pub(crate) origin: u64,
    /// The other voters.
    pub(crate) peers: Vec<i32>,
    /// A broker not heard from for this long is fenced.
    pub(crate) session_timeout: Duration,
    /// How long a proposal may wait to be committed.
    pub(crate) proposal_timeout: Duration,
    /// The cluster id this broker proposes if the cluster has none yet.
    pub(crate) cluster_id: String,
    /// Bytes of entries applied after which the image is snapshotted and the log compacted
    /// (Kafka's `metadata.log.max.record.bytes.between.snapshots`).
    pub(crate) snapshot_bytes: u64,
    /// The store was made empty by this process in a cluster of several voters: either the
    /// cluster is new, or this voter lost its state. Until it has caught up with a leader it
    /// grants no vote to a candidate with history (see [`Node::recovering`]).
    pub(crate) recovering: bool,
}

pub(crate) struct Node {
    raw: RawNode<QuorumStore>,
    config: NodeConfig,
    seq: u64,
    /// Proposals waiting to be applied: deadline, answer, and the entry (proposed again to a
    /// new leader, since the old one may have died with it).
    waiters: HashMap<u64, (Instant, Reply, Vec<u8>)>,
    /// The leader proposals were last sent to.
    leader: u64,
    shared: Arc<Shared>,
    outbox: Outbox,
    changes: mpsc::UnboundedSender<Applied>,
    heard: HashMap<i32, (Instant, i64)>,
    /// Fence or unfence proposals in flight, by broker, to not repeat them every tick.
    pending: HashMap<i32, Instant>,
    led_in_term: u64,
    /// The last index applied to the image, and the entry bytes applied since the snapshot.
    applied: u64,
    since_snapshot: u64,
    init_proposed_in_term: u64,
    /// Refusals by peer, with when they started and whether for a duplicate node id.
    refused: HashMap<i32, (Instant, String, bool)>,
    /// Started empty among other voters and not yet caught up with a leader's commit index:
    /// a candidate whose log has entries gets no vote from it, since the entries this voter
    /// may have helped commit before it lost its state are gone (a brand-new cluster's first
    /// candidates have none, so it still elects).
    recovering: bool,
    /// While recovering: how far the leader's log is committed.
    catching_up: super::rejoin::CatchingUp,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Node {
    pub(crate) fn new(
        store: QuorumStore,
        config: NodeConfig,
        shared: Arc<Shared>,
        outbox: Outbox,
        changes: mpsc::UnboundedSender<Applied>,
    ) -> Result<Self, BrokerError> {
        let applied = store.snapshot_ref().get_metadata().index;
        let raft_config = raft::Config {
            id: raft_id(config.node_id),
            election_tick: ELECTION_TICKS,
            heartbeat_tick: HEARTBEAT_TICKS,
            pre_vote: true,
            check_quorum: true,
            applied,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            ..raft::Config::default()
        };
        raft_config
            .validate()
            .map_err(|e| BrokerError::Internal(format!("raft config: {e}")))?;
        let logger = slog::Logger::root(super::TracingDrain, slog::o!());
        let mut raw = RawNode::new(&raft_config, store, &logger)
            .map_err(|e| BrokerError::Metadata(format!("starting the metadata quorum: {e}")))?;
        if config.peers.is_empty() {
            // Alone: no one to wait for, lead at once.
            raw.campaign()
                .map_err(|e| BrokerError::Internal(format!("campaign: {e}")))?;
        }
        let recovering = config.recovering;
        Ok(Self {
            raw,
            config,
            seq: 0,
            waiters: HashMap::new(),
            leader: raft::INVALID_ID,
            applied,
            since_snapshot: 0,
            shared,
            outbox,
            changes,
            heard: HashMap::new(),
            pending: HashMap::new(),
            led_in_term: 0,
            init_proposed_in_term: 0,
            refused: HashMap::new(),
            recovering,
            catching_up: super::rejoin::CatchingUp::default(),
        })
    }

    /// Runs until told to stop, or until the store fails (then the broker stops too).
    pub(crate) fn run(mut self, inputs: &Receiver<Input>) {
        let mut next_tick = Instant::now() + TICK;
        let result = loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            match inputs.recv_timeout(wait) {
                Ok(input) => {
                    if !self.handle(input) {
                        break Ok(());
                    }
                    let mut stop = false;
                    while let Ok(input) = inputs.try_recv() {
                        if !self.handle(input) {
                            stop = true;
                            break;
                        }
                    }
                    if stop {
                        break Ok(());
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break Ok(()),
            }
            let now = Instant::now();
            if now >= next_tick {
                let _ = self.raw.tick();
                next_tick = (next_tick + TICK).max(now);
                self.on_tick(now);
            }
            if let Err(err) = self.ready() {
                break Err(err.to_string());
            }
            self.follow_leader();
            if self.raw.raft.state == StateRole::Leader && self.led_in_term != self.raw.raft.term {
                self.lead(Instant::now());
            }
            if let Err(err) = self.ready() {
                break Err(err.to_string());
            }
            self.publish();
            if let Some(why) = self.refusal() {
                break Err(why);
            }
        };
        if let Err(why) = result {
            tracing::error!(error = %why, "the metadata quorum stopped");
            if let Ok(mut status) = self.shared.status.lock() {
                status.failed = Some(why);
            }
        }
        for (_, (_, reply, _)) in self.waiters.drain() {
            let _ = reply.send(Err((
                ErrorCode::NotController,
                "the broker is shutting down".into(),
            )));
        }
        let _ = self.changes.send(Applied {
            index: 0,
            changes: vec![Change::Cluster],
        });
    }

    /// Handles one input; false to stop.
    fn handle(&mut self, input: Input) -> bool {
        match input {
            Input::Peer(message) => {
                let from = node_id(message.from);
                let _ = self
                    .heard
                    .insert(from, (Instant::now(), crate::partition::now_ms()));
                let _ = self.refused.remove(&from);
                let vote = matches!(
                    message.get_msg_type(),
                    MessageType::MsgRequestVote | MessageType::MsgRequestPreVote
                );
                if self.recovering && vote && (message.index > 0 || message.log_term > 0) {
                    tracing::debug!(from, "no vote while catching up");
                    return true;
                }
                if self.recovering {
                    self.catching_up.note(&message);
                }
                if let Err(err) = super::rejoin::step(&mut self.raw, message) {
                    tracing::debug!(%err, from, "raft message ignored");
                }
            }
            Input::Propose(command, reply) => self.propose(command, Some(reply)),
            Input::Refused { by, why, duplicate } => {
                let _ = self
                    .refused
                    .entry(by)
                    .or_insert((Instant::now(), why, duplicate));
            }
            Input::Accepted { by } => {
                let _ = self.refused.remove(&by);
            }
            Input::Stop => return false,
        }
        true
    }

    /// A reason to stop: refused for a while by a majority of the other voters (this broker's
    /// configuration disagrees with the cluster's), or by any one because another live broker
    /// holds its node id.
    fn refusal(&self) -> Option<String> {
        let lasting: Vec<(&String, bool)> = self
            .refused
            .values()
            .filter(|(since, _, _)| since.elapsed() > Duration::from_secs(2))
            .map(|(_, why, duplicate)| (why, *duplicate))
            .collect();
        if let Some((why, _)) = lasting.iter().find(|(_, duplicate)| *duplicate) {
            return Some((*why).clone());
        }
        let others = self.config.peers.len();
        (others > 0 && lasting.len() * 2 > others).then(|| lasting[0].0.clone())
    }

    fn propose(&mut self, command: Command, reply: Option<Reply>) {
        let refuse = |reply: Option<Reply>, why: String| {
            if let Some(reply) = reply {
                let _ = reply.send(Err((ErrorCode::NotController, why)));
            }
        };
        if self.raw.raft.leader_id == raft::INVALID_ID {
            return refuse(
                reply,
                "the metadata quorum has no leader this broker can reach, so the cluster's \
                 metadata cannot change now"
                    .into(),
            );
        }
        self.seq += 1;
        let proposal = Proposal {
            origin: self.config.origin,
            seq: self.seq,
            command,
        };
        let data = match serde_json::to_vec(&proposal) {
            Ok(data) => data,
            Err(err) => return refuse(reply, err.to_string()),
        };
        match self.raw.propose(Vec::new(), data.clone()) {
            Ok(()) => {
                if let Some(reply) = reply {
                    let deadline = Instant::now() + self.config.proposal_timeout;
                    let _ = self.waiters.insert(self.seq, (deadline, reply, data));
                }
            }
            Err(err) => refuse(
                reply,
                format!("the metadata quorum refused the change: {err}"),
            ),
        }
    }

    /// When a new leader is known, proposes again what is still waiting: a proposal forwarded
    /// to a leader that died (or lost its majority) before replicating it is gone. Applying one
    /// twice is harmless (a command that already applied fails or changes nothing the second
    /// time, and its proposer took the first outcome).
    fn follow_leader(&mut self) {
        if self.recovering && self.catching_up.done(&self.raw) {
            self.recovering = false;
            tracing::info!("the metadata log caught up with the leader's: voting again");
        }
        let leader = self.raw.raft.leader_id;
        if leader == self.leader || leader == raft::INVALID_ID {
            return;
        }
        self.leader = leader;
        let mut pending: Vec<(u64, Vec<u8>)> = self
            .waiters
            .iter()
            .map(|(seq, (_, _, data))| (*seq, data.clone()))
            .collect();
        pending.sort_unstable_by_key(|(seq, _)| *seq);
        for (seq, data) in pending {
            if let Err(err) = self.raw.propose(Vec::new(), data) {
                tracing::debug!(seq, %err, "proposing again to the new leader failed");
            }
        }
    }

    fn on_tick(&mut self, now: Instant) {
        let expired: Vec<u64> = self
            .waiters
            .iter()
            .filter(|(_, (deadline, _, _))| *deadline <= now)
            .map(|(seq, _)| *seq)
            .collect();
        for seq in expired {
            if let Some((_, reply, _)) = self.waiters.remove(&seq) {
                let _ = reply.send(Err((
                    ErrorCode::RequestTimedOut,
                    "the metadata change was not committed in time: the quorum may have lost \
                     its majority"
                        .into(),
                )));
            }
        }
        self.lead(now);
    }

    /// What the quorum's leader does besides Raft: name the cluster if it has no id yet, and
    /// fence and unfence brokers by when it last heard from them. Run every tick, and at once
    /// when this broker becomes the leader (so a new cluster is named without waiting a tick).
    fn lead(&mut self, now: Instant) {
        if self.raw.raft.state != StateRole::Leader {
            return;
        }
        let term = self.raw.raft.term;
        if self.led_in_term != term {
            // A new leader gives every broker a full session before fencing it.
            self.led_in_term = term;
            self.pending.clear();
            for &peer in &self.config.peers {
                let _ = self.heard.insert(peer, (now, crate::partition::now_ms()));
            }
        }
        let (needs_id, proposals) = {
            let Ok(image) = self.shared.image.read() else {
                return;
            };
            let mut proposals = Vec::new();
            for (&id, broker) in &image.brokers {
                let heard = if id == self.config.node_id {
                    Some(now)
                } else {
                    self.heard.get(&id).map(|(at, _)| *at)
                };
                let silent = heard.is_none_or(|at| now - at > self.config.session_timeout);
                let incarnation = broker.incarnation;
                if !broker.fenced && silent {
                    proposals.push((id, Command::FenceBroker { id, incarnation }));
                } else if broker.fenced && !silent {
                    proposals.push((id, Command::UnfenceBroker { id, incarnation }));
                }
            }
            (image.cluster_id.is_none(), proposals)
        };
        if needs_id && self.init_proposed_in_term != term {
            self.init_proposed_in_term = term;
            let cluster_id = self.config.cluster_id.clone();
            self.propose(Command::InitCluster { cluster_id }, None);
        }
        for (id, command) in proposals {
            let due = self
                .pending
                .get(&id)
                .is_none_or(|at| now - *at > self.config.session_timeout);
            if due {
                tracing::info!(broker = id, change = ?command, "broker session change");
                let _ = self.pending.insert(id, now);
                self.propose(command, None);
            }
        }
    }

    fn send(&self, messages: Vec<Message>) {
        for message in messages {
            (self.outbox)(message);
        }
    }

    fn ready(&mut self) -> Result<(), BrokerError> {
        if !self.raw.has_ready() {
            return Ok(());
        }
        let mut ready = self.raw.ready();
        self.send(ready.take_messages());
        if !ready.snapshot().is_empty() {
            let snapshot = ready.snapshot().clone();
            let image: Image = serde_json::from_slice(&snapshot.data)
                .map_err(|e| BrokerError::Metadata(format!("a snapshot from the leader: {e}")))?;
            let index = snapshot.get_metadata().index;
            self.raw.mut_store().apply_snapshot(snapshot)?;
            // Everything may have changed: every topic of the new image, and the deletion of
            // every topic it no longer has.
            let mut changes = vec![
                Change::Cluster,
                Change::Brokers,
                Change::BrokerConfigs,
                Change::Acls,
            ];
            if let Ok(mut current) = self.shared.image.write() {
                for (name, topic) in &current.topics {
                    if image.topics.get(name).is_none_or(|t| t.id != topic.id) {
                        changes.push(Change::TopicDeleted(name.clone(), topic.id));
                    }
                }
                changes.extend(image.topics.keys().cloned().map(Change::Topic));
                *current = image;
            }
            self.applied = index;
            self.since_snapshot = 0;
            tracing::info!(
                index,
                "installed a snapshot of the metadata image from the leader"
            );
            self.report(index, changes);
        }
        let committed = ready.take_committed_entries();
        self.apply(committed);
        self.raw.mut_store().append(ready.entries())?;
        if let Some(hard) = ready.hs() {
            self.raw.mut_store().set_hard_state(hard.clone());
        }
        self.raw.mut_store().sync()?;
        self.send(ready.take_persisted_messages());
        let mut light = self.raw.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.raw.mut_store().set_commit(commit);
            self.raw.mut_store().sync()?;
        }
        self.send(light.take_messages());
        let committed = light.take_committed_entries();
        self.apply(committed);
        self.raw.advance_apply();
        self.maybe_snapshot()
    }

    /// Snapshots the image and compacts the log once enough has been applied since the last
    /// snapshot. The image is exactly the applied index's: both change only in `apply`.
    fn maybe_snapshot(&mut self) -> Result<(), BrokerError> {
        if self.since_snapshot < self.config.snapshot_bytes {
            return Ok(());
        }
        let index = self.applied;
        let term = raft::Storage::term(self.raw.store(), index)
            .map_err(|e| BrokerError::Metadata(format!("the term of entry {index}: {e}")))?;
        let image = {
            let image = self
                .shared
                .image
                .read()
                .map_err(|_| BrokerError::Internal("image lock poisoned".into()))?;
            serde_json::to_vec(&*image).map_err(|e| BrokerError::Internal(e.to_string()))?
        };
        let bytes = image.len();
        self.raw.mut_store().compact(index, term, image)?;
        self.since_snapshot = 0;
        tracing::info!(index, term, bytes, "snapshotted the metadata image");
        Ok(())
    }

    fn apply(&mut self, entries: Vec<raft::eraftpb::Entry>) {
        let Some(last) = entries.last().map(|e| e.index) else {
            return;
        };
        let mut changes = Vec::new();
        let mut outcomes: Vec<(u64, u64, Outcome, Vec<Vec<AclBinding>>)> = Vec::new();
        self.applied = last;
        self.since_snapshot += entries.iter().map(|e| e.data.len() as u64).sum::<u64>();
        if let Ok(mut image) = self.shared.image.write() {
            for entry in entries {
                if entry.data.is_empty() || entry.get_entry_type() != EntryType::EntryNormal {
                    continue;
                }
                match serde_json::from_slice::<Proposal>(&entry.data) {
                    Ok(proposal) => {
                        let outcome = image.apply(proposal.command, &mut changes);
                        let removed = std::mem::take(&mut image.removed_acls);
                        if proposal.origin == self.config.origin {
                            outcomes.push((proposal.seq, entry.index, outcome, removed));
                        }
                    }
                    Err(err) => {
                        tracing::error!(index = entry.index, %err, "an unreadable metadata entry");
                    }
                }
            }
        }
        for (seq, index, outcome, removed) in outcomes {
            if let Some((_, reply, _)) = self.waiters.remove(&seq) {
                let _ = reply.send(outcome.map(|value| (index, value, removed)));
            }
        }
        self.report(last, changes);
    }

    fn report(&mut self, index: u64, changes: Vec<Change>) {
        if let Ok(mut status) = self.shared.status.lock() {
            status.applied = index;
        }
        let _ = self.changes.send(Applied { index, changes });
        let _ = self.shared.applied.send(index);
    }

    fn publish(&self) {
        let raft = &self.raw.raft;
        let Ok(mut status) = self.shared.status.lock() else {
            return;
        };
        status.term = raft.term;
        status.leader = if raft.leader_id == raft::INVALID_ID {
            -1
        } else {
            node_id(raft.leader_id)
        };
        status.role = match raft.state {
            StateRole::Leader => "leader",
            StateRole::Follower => "follower",
            StateRole::Candidate => "candidate",
            StateRole::PreCandidate => "pre-candidate",
        };
        status.commit = raft.raft_log.committed;
        status.last_index = raft.raft_log.last_index();
        status.last_contact_ms = self.heard.iter().map(|(id, (_, ms))| (*id, *ms)).collect();
        status.matched = if raft.state == StateRole::Leader {
            raft.prs()
                .iter()
                .map(|(id, progress)| (node_id(*id), progress.matched))
                .collect()
        } else {
            HashMap::new()
        };
    }
}
