//! A replicated partition: one raft-rs group per partition (Redpanda's model), whose log is the
//! partition's own `rill-log` (see `store.rs`). The Raft term is Kafka's leader epoch, and the
//! end of the last committed entry is the high watermark.
//!
//! The partition's owner drives the group from its storage thread, in the thread's rounds:
//! proposals and peers' messages are stepped in as they come; at the end of a round each
//! group's Ready is written (entries appended to the log, the hard state), every log of the
//! round is fsynced at once (group commit, as for single-replica partitions), and only then
//! are the messages that depend on the write sent (votes, append acknowledgements) and the
//! commit index applied. A produce with `acks=1` is answered once the leader has written its
//! batch; with `acks=all` once the batch is committed, that is durable on a majority.
//!
//! Reassignment (moving a partition to other brokers) changes the group's membership with
//! raft-rs's configuration changes, driven by the leader one step at a time toward the target
//! the metadata holds ([`Replica::reassign`]): the new replicas join as learners and copy the
//! log; once caught up they become voters; a leader that is to go hands leadership to a
//! replica that stays; then the old replicas are removed. Steps that change more than one
//! voter go through a joint configuration, which raft-rs leaves on its own. Every replica
//! applies a committed change as it applies the entry, and keeps the configuration in its
//! state file.

pub(crate) mod store;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use raft::eraftpb::{
    ConfChange, ConfChangeSingle, ConfChangeType, ConfChangeV2, ConfState, Entry, EntryType,
    Message, MessageType,
};
use raft::{RawNode, StateRole};
use rill_log::AppendInfo;
use rill_protocol::ErrorCode;
use rill_record::set_partition_leader_epoch;
use uuid::Uuid;

use self::store::{Appended, ReplicaStore};
use super::Reply;
use crate::error::BrokerError;
use crate::quorum::voters::raft_id;

/// One tick of a partition group's clock. Longer than the metadata quorum's: thousands of
/// groups tick on a few threads.
pub(crate) const TICK: Duration = Duration::from_millis(100);
/// Heartbeats every 3 ticks (300 ms); an election after 10-20 ticks (1-2 s) without one.
const HEARTBEAT_TICKS: usize = 3;
const ELECTION_TICKS: usize = 10;
/// How long a new group's preferred replica waits for the others to open it before it
/// campaigns (they open it when they apply the topic's creation, at about the same time).
const FIRST_CAMPAIGN: Duration = Duration::from_millis(150);

/// How recently a replica must have been caught up with the commit index for a reassignment to
/// promote it (a learner) or hand it leadership.
const CAUGHT_UP_RECENTLY: Duration = Duration::from_secs(1);

/// Where a partition group's messages for other brokers go: topic id, partition, message.
#[derive(Clone)]
pub(crate) struct Outbox(pub(crate) Arc<dyn Fn(Uuid, i32, Message) + Send + Sync>);

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Outbox")
    }
}

/// What a replica needs to know about its place.
#[derive(Clone)]
pub(crate) struct ReplicaSpec {
    pub(crate) topic_id: Uuid,
    pub(crate) partition: i32,
    pub(crate) node_id: i32,
    /// Every replica's node id, the preferred leader first.
    pub(crate) replicas: Vec<i32>,
    /// The group's voters when it began (its replicas before any reassignment): where a
    /// replica that starts without state (added by a reassignment, or after losing its data)
    /// starts from, before the leader's entries or snapshot bring it up to date.
    pub(crate) first: Vec<i32>,
    /// Whether a write is fsynced before it counts as persisted (`--ack-durability fsync`).
    pub(crate) fsync: bool,
    /// `replica.lag.time.max.ms`: a follower not caught up for this long is out of sync.
    pub(crate) lag_max: Duration,
    /// The group is being created now (its replicas start empty together); otherwise a
    /// replica found without state has lost its data and must catch up before it votes.
    pub(crate) fresh: bool,
    pub(crate) outbox: Outbox,
}

impl std::fmt::Debug for ReplicaSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaSpec")
            .field("topic_id", &self.topic_id)
            .field("partition", &self.partition)
            .field("replicas", &self.replicas)
            .finish_non_exhaustive()
    }
}

/// A produce waiting for its entry.
struct Waiter {
    index: u64,
    /// `acks=all`: wait for the commit; otherwise for the leader's own write.
    commit: bool,
    answer: Answer,
}

/// What a waiting request is answered with.
enum Answer {
    Append(Reply<AppendInfo>, AppendInfo),
    /// DeleteRecords: the new log start.
    Delete(Reply<i64>, i64),
}

impl Answer {
    fn ok(self) {
        match self {
            Answer::Append(reply, info) => {
                let _ = reply.send(Ok(info));
            }
            Answer::Delete(reply, start) => {
                let _ = reply.send(Ok(start));
            }
        }
    }

    fn err(self, code: ErrorCode) {
        match self {
            Answer::Append(reply, _) => {
                let _ = reply.send(Err(code));
            }
            Answer::Delete(reply, _) => {
                let _ = reply.send(Err(code));
            }
        }
    }
}

/// The context that marks a DeleteRecords entry (its data: the offset, big-endian): every
/// replica moves its log start there when the entry is committed.
const DELETE_RECORDS: &[u8] = b"rill.delete-records";

/// What a committed entry asks of the partition's owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Delete the records before this offset (DeleteRecords).
    DeleteBefore(i64),
}

/// What the second half of a Ready did.
#[derive(Debug, Default)]
pub(crate) struct Ended {
    /// The leadership changed.
    pub(crate) role_changed: bool,
    /// Committed entries to act on, in order.
    pub(crate) effects: Vec<Effect>,
}

/// A Ready being written, between the append and the fsync that makes it durable.
pub(crate) struct Writing {
    ready: raft::Ready,
    /// Whether the log needs an fsync before the messages go.
    pub(crate) needs_sync: bool,
}

pub(crate) struct Replica {
    raw: RawNode<ReplicaStore>,
    spec: ReplicaSpec,
    waiting: VecDeque<Waiter>,
    /// The offset after the last batch proposed here (not yet written, maybe).
    proposed_end: i64,
    /// The last index written to the log here.
    written: u64,
    high_watermark: i64,
    /// The term this replica leads in, while it does.
    leading: Option<u64>,
    /// Indices of the entries proposed here and not written yet: their producer state was
    /// recorded when they were proposed.
    own: VecDeque<u64>,
    /// While leading: when each member of the group (by raft id, learners included) was last
    /// seen caught up with the commit index. A new leader starts every voter at the time it
    /// took over (a full lag window, as Kafka keeps the ISR across a change of leader).
    caught_up: std::collections::HashMap<u64, Instant>,
    campaign_at: Option<Instant>,
    /// `acks=all` retries of batches already in the log here but not yet committed: each
    /// is answered (with the original's offsets) once the high watermark passes its last
    /// offset, as the original is.
    duplicates: Vec<(i64, Answer)>,
    /// This replica lost its data (its broker came back with an empty data dir): it neither
    /// votes nor campaigns until it has caught up with a leader's commit index, since the
    /// entries it may have helped commit are gone.
    recovering: bool,
    /// While recovering: how far the leader's log is committed.
    catching_up: crate::quorum::rejoin::CatchingUp,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica")
            .field("spec", &self.spec)
            .field("high_watermark", &self.high_watermark)
            .field("leading", &self.leading)
            .finish_non_exhaustive()
    }
}

impl Replica {
    pub(crate) fn new(store: ReplicaStore, spec: ReplicaSpec) -> Result<Self, BrokerError> {
        let applied = store.applied();
        let high_watermark = store
            .end_of(applied)
            .unwrap_or(store.log().log_start_offset());
        let fresh = raft::Storage::last_index(&store).unwrap_or(0) == 0 && applied == 0;
        let config = raft::Config {
            id: raft_id(spec.node_id),
            election_tick: ELECTION_TICKS,
            heartbeat_tick: HEARTBEAT_TICKS,
            pre_vote: true,
            check_quorum: true,
            applied,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            ..raft::Config::default()
        };
        config
            .validate()
            .map_err(|e| BrokerError::Internal(format!("raft config: {e}")))?;
        let logger = slog::Logger::root(crate::quorum::TracingDrain, slog::o!());
        let written = raft::Storage::last_index(&store).unwrap_or(0);
        let recovering = store.created() && !spec.fresh;
        let raw = RawNode::new(&config, store, &logger).map_err(|e| {
            BrokerError::Internal(format!(
                "starting partition {}'s replica: {e}",
                spec.partition
            ))
        })?;
        let preferred = spec.replicas.first() == Some(&spec.node_id);
        if recovering {
            tracing::warn!(
                topic_id = %spec.topic_id,
                partition = spec.partition,
                "a replica without its data: it catches up from the leader before it votes"
            );
        }
        Ok(Self {
            raw,
            waiting: VecDeque::new(),
            proposed_end: high_watermark,
            written,
            high_watermark,
            leading: None,
            own: VecDeque::new(),
            duplicates: Vec::new(),
            caught_up: std::collections::HashMap::new(),
            campaign_at: (fresh && preferred && spec.fresh)
                .then(|| Instant::now() + FIRST_CAMPAIGN),
            recovering,
            catching_up: crate::quorum::rejoin::CatchingUp::default(),
            spec,
        })
    }

    pub(crate) fn store(&self) -> &ReplicaStore {
        self.raw.store()
    }

    pub(crate) fn store_mut(&mut self) -> &mut ReplicaStore {
        self.raw.mut_store()
    }

    pub(crate) fn into_store(self) -> ReplicaStore {
        self.raw.raft.r.raft_log.store
    }

    pub(crate) fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    /// The term (leader epoch) this replica leads in, if it leads.
    pub(crate) fn leading(&self) -> Option<u64> {
        self.leading
    }

    /// Proposes a checked batch (its offsets assigned here, its leader epoch stamped with the
    /// term). The answer comes when the entry is written (`commit` false) or committed.
    pub(crate) fn propose(
        &mut self,
        batch: &mut [u8],
        base_offset: i64,
        commit: bool,
        reply: Reply<AppendInfo>,
        info: AppendInfo,
    ) -> Result<(), (Reply<AppendInfo>, ErrorCode)> {
        let Some(term) = self.leading else {
            return Err((reply, ErrorCode::NotLeaderOrFollower));
        };
        let epoch = i32::try_from(term).unwrap_or(i32::MAX);
        if rill_record::set_base_offset(batch, base_offset).is_err()
            || set_partition_leader_epoch(batch, epoch).is_err()
        {
            return Err((reply, ErrorCode::CorruptMessage));
        }
        if let Err(err) = self.raw.propose(Vec::new(), batch.to_vec()) {
            tracing::debug!(%err, "a proposal was refused");
            return Err((reply, ErrorCode::NotLeaderOrFollower));
        }
        let index = self.raw.raft.raft_log.last_index();
        self.proposed_end = info.last_offset + 1;
        self.own.push_back(index);
        self.waiting.push_back(Waiter {
            index,
            commit,
            answer: Answer::Append(reply, info),
        });
        Ok(())
    }

    /// Answers a retry of a batch this replica already has (an idempotent producer's
    /// duplicate, `info` the original's offsets): at once for `acks=1` or when the original is
    /// committed; for `acks=all` otherwise once it is, so that a retry is never acknowledged
    /// before the batch it repeats would be.
    pub(crate) fn answer_duplicate(
        &mut self,
        info: AppendInfo,
        commit: bool,
        reply: Reply<AppendInfo>,
    ) {
        if self.leading.is_none() {
            let _ = reply.send(Err(ErrorCode::NotLeaderOrFollower));
        } else if !commit || info.last_offset < self.high_watermark {
            let _ = reply.send(Ok(info));
        } else {
            self.duplicates
                .push((info.last_offset, Answer::Append(reply, info)));
        }
    }

    /// Proposes to move every replica's log start to `before` (DeleteRecords); the answer (the
    /// new log start) comes once the entry is committed.
    pub(crate) fn propose_delete(
        &mut self,
        before: i64,
        reply: Reply<i64>,
    ) -> Result<(), (Reply<i64>, ErrorCode)> {
        if self.leading.is_none() {
            return Err((reply, ErrorCode::NotLeaderOrFollower));
        }
        let log = self.store().log();
        if before < 0 || before > self.high_watermark {
            return Err((reply, ErrorCode::OffsetOutOfRange));
        }
        let start = before.max(log.log_start_offset());
        let data = before.to_be_bytes().to_vec();
        if let Err(err) = self.raw.propose(DELETE_RECORDS.to_vec(), data) {
            tracing::debug!(%err, "a DeleteRecords proposal was refused");
            return Err((reply, ErrorCode::NotLeaderOrFollower));
        }
        let index = self.raw.raft.raft_log.last_index();
        self.waiting.push_back(Waiter {
            index,
            commit: true,
            answer: Answer::Delete(reply, start),
        });
        Ok(())
    }

    /// Where the next proposed batch starts.
    pub(crate) fn next_offset(&self) -> i64 {
        let end = self.store().log().log_end_offset();
        if self.raw.raft.raft_log.unstable_entries().is_empty() {
            end
        } else {
            self.proposed_end.max(end)
        }
    }

    /// Hands leadership over to the replica on broker `to` (preferred leader election): only
    /// while this replica leads, and to another replica of the partition. raft-rs sends it
    /// `MsgTimeoutNow` once it has caught up, and it campaigns at once, at the next term.
    pub(crate) fn transfer_leader(&mut self, to: i32) {
        if self.leading.is_none() || to == self.spec.node_id || !self.spec.replicas.contains(&to) {
            return;
        }
        tracing::info!(
            topic_id = %self.spec.topic_id,
            partition = self.spec.partition,
            to,
            "handing partition leadership over"
        );
        self.raw.transfer_leader(raft_id(to));
    }

    /// The partition's replica list changed (a reassignment began, was replaced or ended):
    /// the in-sync bits follow the new positions. A replica new to the list is in sync once it
    /// has caught up, not before.
    pub(crate) fn set_replicas(&mut self, replicas: Vec<i32>) {
        self.spec.replicas = replicas;
    }

    /// Takes one step of moving the group's membership to `target` (node ids), while this
    /// replica leads; returns whether the group is there (its voters are the target, with no
    /// other learner and no joint configuration). Each step is one raft-rs configuration
    /// change, proposed only when none is pending:
    /// 1. leave a joint configuration left behind (raft-rs leaves on its own only when the
    ///    leader that entered it is still leading);
    /// 2. add a missing target replica as a learner (one at a time): it copies the log;
    /// 3. once every learner of the target is caught up with the commit index, promote them;
    /// 4. if this replica is not in the target, hand leadership to one that is and caught up;
    /// 5. remove the voters and learners not in the target.
    pub(crate) fn reassign(&mut self, target: &[i32]) -> bool {
        if self.leading.is_none() || target.is_empty() {
            return false;
        }
        let raft = &self.raw.raft;
        if raft.pending_conf_index > raft.raft_log.applied {
            return false;
        }
        let conf = raft.prs().conf().to_conf_state();
        let target: Vec<u64> = target.iter().map(|r| raft_id(*r)).collect();
        if !conf.voters_outgoing.is_empty() {
            return self.change_conf(Vec::new());
        }
        let committed = raft.raft_log.committed;
        // Caught up with the commit index now, or at a tick within the last second (under a
        // steady stream of writes a replica is often a batch or two behind when looked at).
        // A learner is never in a new leader's grace window; a voter in it may be chosen for
        // the hand-over while behind, and raft-rs then sends it what it lacks first.
        let now = Instant::now();
        let recently = |id: u64| {
            self.caught_up
                .get(&id)
                .is_some_and(|at| now.saturating_duration_since(*at) < CAUGHT_UP_RECENTLY)
        };
        let caught_up = |id: u64| {
            raft.prs()
                .get(id)
                .is_some_and(|p| p.matched >= committed || recently(id))
        };
        if let Some(missing) = target
            .iter()
            .find(|id| !conf.voters.contains(id) && !conf.learners.contains(id))
        {
            return self.change_conf(vec![single(ConfChangeType::AddLearnerNode, *missing)]);
        }
        let promote: Vec<u64> = conf
            .learners
            .iter()
            .copied()
            .filter(|id| target.contains(id))
            .collect();
        if !promote.is_empty() {
            if promote.iter().all(|id| caught_up(*id)) {
                let changes = promote
                    .into_iter()
                    .map(|id| single(ConfChangeType::AddNode, id))
                    .collect();
                return self.change_conf(changes);
            }
            return false;
        }
        let own = raft_id(self.spec.node_id);
        if !target.contains(&own) {
            if let Some(to) = target.iter().find(|id| caught_up(**id))
                && raft.lead_transferee.is_none()
            {
                tracing::info!(
                    topic_id = %self.spec.topic_id,
                    partition = self.spec.partition,
                    to,
                    "leaving the partition: handing leadership over first"
                );
                self.raw.transfer_leader(*to);
            }
            return false;
        }
        let remove: Vec<ConfChangeSingle> = conf
            .voters
            .iter()
            .chain(&conf.learners)
            .filter(|id| !target.contains(id))
            .map(|id| single(ConfChangeType::RemoveNode, *id))
            .collect();
        if remove.is_empty() {
            return true;
        }
        self.change_conf(remove)
    }

    /// Proposes a configuration change (none: leave the joint configuration); returns false,
    /// the group not being where it should yet.
    fn change_conf(&mut self, changes: Vec<ConfChangeSingle>) -> bool {
        let mut change = ConfChangeV2::default();
        change.set_changes(changes.into());
        tracing::info!(
            topic_id = %self.spec.topic_id,
            partition = self.spec.partition,
            change = ?change.get_changes(),
            "proposing a change of the partition's replicas"
        );
        if let Err(err) = self.raw.propose_conf_change(Vec::new(), change) {
            tracing::debug!(%err, "a configuration change was refused");
        }
        false
    }

    /// Applies a committed configuration change entry (once: the stored configuration may
    /// include it already, from a snapshot or before a restart).
    fn apply_conf_entry(&mut self, entry: &Entry) -> Result<(), BrokerError> {
        if entry.index <= self.store().conf_index() {
            return Ok(());
        }
        let parsed = match entry.get_entry_type() {
            EntryType::EntryConfChange => {
                <ConfChange as protobuf::Message>::parse_from_bytes(&entry.data).map(|cc| {
                    let mut v2 = ConfChangeV2::default();
                    v2.set_changes(vec![single(cc.get_change_type(), cc.node_id)].into());
                    v2
                })
            }
            EntryType::EntryConfChangeV2 => {
                <ConfChangeV2 as protobuf::Message>::parse_from_bytes(&entry.data)
            }
            EntryType::EntryNormal => return Ok(()),
        };
        let change = parsed.map_err(|e| {
            BrokerError::Internal(format!("configuration change {}: {e}", entry.index))
        })?;
        let conf: ConfState = self.raw.apply_conf_change(&change).map_err(|e| {
            BrokerError::Internal(format!("configuration change {}: {e}", entry.index))
        })?;
        tracing::info!(
            topic_id = %self.spec.topic_id,
            partition = self.spec.partition,
            voters = ?conf.voters,
            learners = ?conf.learners,
            outgoing = ?conf.voters_outgoing,
            "the partition's replicas changed"
        );
        self.raw.mut_store().set_conf(conf, entry.index)
    }

    pub(crate) fn step(&mut self, message: Message) {
        if self.recovering
            && matches!(
                message.get_msg_type(),
                MessageType::MsgRequestVote | MessageType::MsgRequestPreVote
            )
        {
            return;
        }
        if self.recovering {
            self.catching_up.note(&message);
        }
        if let Err(err) = crate::quorum::rejoin::step(&mut self.raw, message) {
            tracing::debug!(%err, partition = self.spec.partition, "raft message ignored");
        }
    }

    /// The in-sync replicas while this one leads: a bit per position in the replica list, set
    /// for those caught up with the commit index within `replica.lag.time.max.ms` (this one
    /// always). 0 on a follower.
    pub(crate) fn in_sync(&self) -> u32 {
        if self.leading.is_none() {
            return 0;
        }
        let now = Instant::now();
        self.spec
            .replicas
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                self.caught_up
                    .get(&raft_id(**r))
                    .is_some_and(|at| now.saturating_duration_since(*at) < self.spec.lag_max)
            })
            .fold(0, |mask, (k, _)| mask | (1 << (k % 32)))
    }

    /// Notes which followers are caught up with the commit index (while leading).
    fn track(&mut self, now: Instant) {
        if self.leading.is_none() {
            return;
        }
        let committed = self.raw.raft.raft_log.committed;
        let own = raft_id(self.spec.node_id);
        for (id, progress) in self.raw.raft.prs().iter() {
            if *id == own || progress.matched >= committed {
                let _ = self.caught_up.insert(*id, now);
            }
        }
    }

    pub(crate) fn tick(&mut self, now: Instant) {
        if self.recovering {
            // No election timeout: this replica must not campaign.
            return;
        }
        let _ = self.raw.tick();
        self.track(now);
        if self.campaign_at.is_some_and(|at| now >= at) {
            self.campaign_at = None;
            if self.raw.raft.leader_id == raft::INVALID_ID
                && let Err(err) = self.raw.campaign()
            {
                tracing::debug!(%err, "campaign");
            }
        }
    }

    pub(crate) fn has_ready(&self) -> bool {
        self.raw.has_ready()
    }

    fn send(&self, messages: Vec<Message>) {
        for message in messages {
            (self.spec.outbox.0)(self.spec.topic_id, self.spec.partition, message);
        }
    }

    /// The first half of a Ready: sends what a leader may send before its own write, appends
    /// the new entries to the log (not yet fsynced) and writes a new term or vote. Returns
    /// what was written (for the producer state), or `None` if there was nothing to do.
    pub(crate) fn begin_ready(&mut self) -> Result<Option<(Writing, Appended)>, BrokerError> {
        if !self.raw.has_ready() {
            return Ok(None);
        }
        let mut ready = self.raw.ready();
        self.send(ready.take_messages());
        let mut installed = false;
        if !ready.snapshot().is_empty() {
            // Behind the leader's log start: restart the log where the leader's starts.
            let snapshot = ready.snapshot().clone();
            self.raw.mut_store().install(&snapshot)?;
            self.written = snapshot.get_metadata().index;
            self.high_watermark = self.store().log().log_start_offset();
            installed = true;
            tracing::info!(
                topic_id = %self.spec.topic_id,
                partition = self.spec.partition,
                log_start = self.high_watermark,
                "behind the leader's log start: the log restarts there"
            );
        }
        let mut appended = self.raw.mut_store().append(ready.entries())?;
        appended.truncated |= installed;
        let own = &mut self.own;
        appended.batches.retain(|(index, _)| {
            while own.front().is_some_and(|i| i < index) {
                let _ = own.pop_front();
            }
            let mine = own.front() == Some(index);
            if mine {
                let _ = own.pop_front();
            }
            !mine
        });
        if let Some(last) = ready.entries().last() {
            self.written = last.index;
        }
        if let Some(hard) = ready.hs() {
            self.raw.mut_store().set_hard_state(hard)?;
        }
        let needs_sync = self.spec.fsync && !ready.entries().is_empty();
        // acks=1: the leader has written the batch.
        let written = self.written;
        let mut kept = VecDeque::with_capacity(self.waiting.len());
        for waiter in self.waiting.drain(..) {
            if !waiter.commit && waiter.index <= written {
                waiter.answer.ok();
            } else {
                kept.push_back(waiter);
            }
        }
        self.waiting = kept;
        Ok(Some((Writing { ready, needs_sync }, appended)))
    }

    /// The second half, once the log is durable: sends the messages that depended on the
    /// write, advances, and applies the commit index (the high watermark moves, `acks=all`
    /// produces are answered). Returns whether the leadership changed.
    pub(crate) fn end_ready(&mut self, writing: Writing) -> Result<Ended, BrokerError> {
        let mut ready = writing.ready;
        let mut ended = Ended::default();
        let committed = ready.take_committed_entries();
        let mut applied = committed.last().map(|e| e.index);
        self.take_committed(&committed, &mut ended)?;
        self.send(ready.take_persisted_messages());
        let mut light = self.raw.advance_append(ready);
        if let Some(commit) = light.commit_index() {
            self.raw.mut_store().set_commit(commit);
        }
        self.send(light.take_messages());
        let committed = light.take_committed_entries();
        if let Some(last) = committed.last() {
            applied = Some(last.index);
        }
        self.take_committed(&committed, &mut ended)?;
        if let Some(applied) = applied {
            self.apply(applied);
        }
        if self.recovering && self.catching_up.done(&self.raw) {
            self.recovering = false;
            tracing::info!(
                topic_id = %self.spec.topic_id,
                partition = self.spec.partition,
                "caught up with the leader: voting again"
            );
        }
        ended.role_changed = self.note_role();
        self.track(Instant::now());
        Ok(ended)
    }

    /// Committed entries: configuration changes are applied, what others ask of the owner is
    /// noted.
    fn take_committed(&mut self, entries: &[Entry], ended: &mut Ended) -> Result<(), BrokerError> {
        for entry in entries {
            if entry.get_entry_type() == EntryType::EntryNormal {
                ended.effects.extend(effect(entry));
            } else {
                self.apply_conf_entry(entry)?;
            }
        }
        Ok(())
    }

    fn apply(&mut self, applied: u64) {
        self.raw.advance_apply_to(applied);
        if let Some(end) = self.store().end_of(applied) {
            self.high_watermark = self.high_watermark.max(end);
        }
        while self.waiting.front().is_some_and(|w| w.index <= applied) {
            if let Some(waiter) = self.waiting.pop_front() {
                waiter.answer.ok();
            }
        }
        if !self.duplicates.is_empty() {
            let high_watermark = self.high_watermark;
            let (done, left): (Vec<_>, Vec<_>) = std::mem::take(&mut self.duplicates)
                .into_iter()
                .partition(|(last, _)| *last < high_watermark);
            self.duplicates = left;
            done.into_iter().for_each(|(_, answer)| answer.ok());
        }
    }

    /// Notices a change of leadership: a new leader starts proposing at its log end; a leader
    /// deposed fails what still waits (it may yet be committed by the next leader, as in Kafka,
    /// which is why producers retry and idempotent ones are deduplicated).
    pub(crate) fn note_role(&mut self) -> bool {
        let raft = &self.raw.raft;
        let now = (raft.state == StateRole::Leader).then_some(raft.term);
        if now == self.leading {
            return false;
        }
        self.own.clear();
        self.caught_up.clear();
        if self.leading.is_some() {
            for waiter in self.waiting.drain(..) {
                waiter.answer.err(ErrorCode::NotLeaderOrFollower);
            }
            for (_, answer) in self.duplicates.drain(..) {
                answer.err(ErrorCode::NotLeaderOrFollower);
            }
        }
        if let Some(term) = now {
            // A new leader gives every voter a full lag window, as Kafka keeps the ISR.
            let start = Instant::now();
            let conf = self.raw.raft.prs().conf().to_conf_state();
            for id in conf.voters.iter().chain(&conf.voters_outgoing) {
                let _ = self.caught_up.insert(*id, start);
            }
            tracing::info!(
                topic_id = %self.spec.topic_id,
                partition = self.spec.partition,
                term,
                "leading partition"
            );
        }
        self.leading = now;
        true
    }

    /// Fails every produce still waiting (the partition is closing or failed).
    pub(crate) fn fail_waiting(&mut self, code: ErrorCode) {
        for waiter in self.waiting.drain(..) {
            waiter.answer.err(code);
        }
        for (_, answer) in self.duplicates.drain(..) {
            answer.err(code);
        }
    }
}

fn single(change_type: ConfChangeType, node_id: u64) -> ConfChangeSingle {
    let mut change = ConfChangeSingle::default();
    change.set_change_type(change_type);
    change.node_id = node_id;
    change
}

/// What a committed entry asks of the owner, if anything.
fn effect(entry: &raft::eraftpb::Entry) -> Option<Effect> {
    if entry.context.as_ref() != DELETE_RECORDS {
        return None;
    }
    let bytes: [u8; 8] = entry.data.as_ref().try_into().ok()?;
    Some(Effect::DeleteBefore(i64::from_be_bytes(bytes)))
}
