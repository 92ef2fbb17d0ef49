//! A Raft member that comes back without its state (its data dir was wiped, or its partition
//! directory was lost) holds less than the leader's progress says it does. raft-rs treats that
//! as impossible: a heartbeat whose commit index is beyond the follower's log panics, and the
//! leader ignores the follower's rejections as stale while its progress stays in replicate
//! state. [`step`] wraps `RawNode::step` for both sides, for the metadata quorum and for
//! replicated partitions alike:
//!
//! - a follower clamps such a heartbeat's commit index to its last entry and marks its
//!   answer (`reject` on the heartbeat response, which raft-rs itself never sets);
//! - a leader that gets a marked answer forgets what that follower matched, probes it from
//!   the start and sends it an append at once, so the usual rejection walk (or a snapshot)
//!   brings it back.
//!
//! Whether such a member may vote before it has caught up is its owner's decision (it must
//! not: the entries it helped commit are gone); [`CatchingUp`] tells when it has.

use raft::eraftpb::{Message, MessageType};
use raft::{RawNode, StateRole, Storage};

/// A member back without its state, until it holds what its leader had committed: the largest
/// commit index a leader's append named. Its own commit index does not tell, since a follower
/// caps it at its last entry (after the first append it receives, it would already "reach"
/// it); a heartbeat names at most what the leader believes it holds, so it does not count.
#[derive(Debug, Default)]
pub(crate) struct CatchingUp {
    leader_commit: u64,
}

impl CatchingUp {
    /// Notes what a message from the leader says it has committed.
    pub(crate) fn note(&mut self, message: &Message) {
        if message.get_msg_type() == MessageType::MsgAppend {
            self.leader_commit = self.leader_commit.max(message.commit);
        }
    }

    /// Whether the log written here reaches everything a leader named committed.
    pub(crate) fn done<T: Storage>(&self, raw: &RawNode<T>) -> bool {
        raw.raft.leader_id != raft::INVALID_ID
            && self.leader_commit > 0
            && raw.raft.raft_log.persisted >= self.leader_commit
    }
}

/// Steps `message` into `raw`, with the guards above.
pub(crate) fn step<T: Storage>(raw: &mut RawNode<T>, mut message: Message) -> raft::Result<()> {
    let from = message.from;
    match message.get_msg_type() {
        MessageType::MsgHeartbeat => {
            let last = raw.raft.raft_log.last_index();
            if message.commit <= last || message.term < raw.raft.term {
                return raw.step(message);
            }
            tracing::warn!(
                leader = from,
                commit = message.commit,
                last,
                "the leader counts entries this member does not hold (its state was lost): \
                 asking it to send them again"
            );
            message.commit = last;
            raw.step(message)?;
            if let Some(answer) = raw
                .raft
                .msgs
                .iter_mut()
                .rev()
                .find(|m| m.to == from && m.get_msg_type() == MessageType::MsgHeartbeatResponse)
            {
                answer.reject = true;
            }
            Ok(())
        }
        MessageType::MsgHeartbeatResponse
            if message.reject && raw.raft.state == StateRole::Leader =>
        {
            if let Some(progress) = raw.raft.mut_prs().get_mut(from) {
                // What it matched is gone: probe from the start (the walk stops where its
                // log agrees, or a snapshot is sent).
                progress.matched = 0;
                progress.pending_snapshot = 0;
                progress.become_probe();
            }
            raw.step(message)?;
            raw.raft.send_append(from);
            Ok(())
        }
        _ => raw.step(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::eraftpb::ConfState;
    use raft::storage::MemStorage;

    type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

    fn node(id: u64) -> Result<RawNode<MemStorage>> {
        let storage = MemStorage::new_with_conf_state(ConfState::from((vec![1, 2, 3], vec![])));
        let config = raft::Config {
            id,
            ..raft::Config::default()
        };
        let logger = slog::Logger::root(crate::quorum::TracingDrain, slog::o!());
        Ok(RawNode::new(&config, storage, &logger)?)
    }

    /// Delivers every message until none is left (entries persisted at once).
    fn settle(nodes: &mut [RawNode<MemStorage>]) -> Result<()> {
        for _ in 0..100 {
            let mut sent = Vec::new();
            for n in nodes.iter_mut() {
                if !n.has_ready() {
                    continue;
                }
                let mut ready = n.ready();
                sent.extend(ready.take_messages());
                if !ready.snapshot().is_empty() {
                    let snapshot = ready.snapshot().clone();
                    n.mut_store().wl().apply_snapshot(snapshot)?;
                }
                n.mut_store().wl().append(ready.entries())?;
                if let Some(hard) = ready.hs() {
                    n.mut_store().wl().set_hardstate(hard.clone());
                }
                sent.extend(ready.take_persisted_messages());
                let mut light = n.advance(ready);
                if let Some(commit) = light.commit_index() {
                    n.mut_store().wl().mut_hard_state().set_commit(commit);
                }
                sent.extend(light.take_messages());
                n.advance_apply();
            }
            if sent.is_empty() {
                return Ok(());
            }
            for m in sent {
                let to = usize::try_from(m.to)? - 1;
                let _ = step(&mut nodes[to], m);
            }
        }
        Err("the nodes never settled".into())
    }

    #[test]
    fn a_member_back_without_its_state_catches_up_instead_of_panicking() -> Result<()> {
        let mut nodes = vec![node(1)?, node(2)?, node(3)?];
        nodes[0].campaign()?;
        settle(&mut nodes)?;
        for i in 0..5u8 {
            nodes[0].propose(Vec::new(), vec![i])?;
            settle(&mut nodes)?;
        }
        let last = nodes[0].raft.raft_log.last_index();
        assert_eq!(nodes[2].raft.raft_log.last_index(), last);

        // Node 3 loses everything; the leader's heartbeat names a commit it does not hold.
        nodes[2] = node(3)?;
        for _ in 0..3 {
            let _ = nodes[0].tick();
        }
        settle(&mut nodes)?;
        assert_eq!(nodes[2].raft.raft_log.last_index(), last);
        assert_eq!(nodes[2].raft.raft_log.committed, last);
        nodes[0].propose(Vec::new(), vec![9])?;
        settle(&mut nodes)?;
        assert_eq!(nodes[2].raft.raft_log.last_index(), last + 1);
        Ok(())
    }
}
