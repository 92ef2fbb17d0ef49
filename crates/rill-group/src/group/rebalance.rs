//! The rebalance transitions (PreparingRebalance → CompletingRebalance → Stable) and the
//! timers that drive them: join deadlines, the initial delayed join, pending-sync expiry,
//! heartbeat (session) expiry and pending-member expiry.
//!
//! Timers are plain deadlines in the state. [`Group::tick`] fires every timer due by `now`
//! in deadline order, each one at its own deadline, so a late tick behaves like an on-time
//! one.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{Group, JoinTimer, Phase, reply_join, reply_sync, sync_ok};
use crate::GroupError;
use crate::member::after;
use crate::types::{Effect, JoinResponse, MemberId, SyncResponse};

/// A timer that is due, found by [`Group::next_timer`].
#[derive(Debug)]
enum Timer {
    Join,
    Sync,
    Pending(MemberId),
    Heartbeat(MemberId),
}

/// Floor for re-arming the join timer when nobody but absent static members is left: the
/// re-check changes nothing until a request or a session expiry does, so a client's zero
/// rebalance timeout must not make one late [`Group::tick`] loop through millions of them.
const MIN_JOIN_RETRY: Duration = Duration::from_secs(1);

impl Group {
    /// Fires every timer due by `now`: expires sessions and pending members, completes
    /// delayed joins and rebalance timeouts, and expires members that never sent SyncGroup.
    pub fn tick(&mut self, now: Instant) -> Vec<Effect> {
        let mut effects = Vec::new();
        self.advance(now, &mut effects);
        effects
    }

    /// When [`tick`](Self::tick) next has work to do; `None` when no timer is armed (Dead or
    /// Empty without pending members).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.next_timer().map(|(at, _)| at)
    }

    pub(super) fn advance(&mut self, now: Instant, effects: &mut Vec<Effect>) {
        while let Some((at, timer)) = self.next_timer() {
            if at > now {
                break;
            }
            self.fire(at, timer, effects);
        }
    }

    /// The earliest armed timer. Ties go to the group's own timers, then pending members,
    /// then members in join order.
    fn next_timer(&self) -> Option<(Instant, Timer)> {
        let mut best = match self.phase {
            Phase::PreparingRebalance { deadline, .. } => Some((deadline, Timer::Join)),
            Phase::CompletingRebalance {
                sync_deadline: Some(deadline),
            }
            | Phase::Stable {
                sync_deadline: Some(deadline),
            } => Some((deadline, Timer::Sync)),
            Phase::Dead => return None,
            _ => None,
        };
        let earlier = |best: &Option<(Instant, Timer)>, at: Instant| {
            best.as_ref().is_none_or(|(current, _)| at < *current)
        };
        for pending in &self.pending {
            if earlier(&best, pending.deadline) {
                best = Some((pending.deadline, Timer::Pending(pending.id.clone())));
            }
        }
        for member in &self.members {
            if let Some(at) = member.heartbeat_deadline
                && earlier(&best, at)
            {
                best = Some((at, Timer::Heartbeat(member.id.clone())));
            }
        }
        best
    }

    /// Runs one timer as if at its deadline `at`. Each branch disarms or moves its timer
    /// past `at`, so [`advance`](Self::advance) always makes progress.
    fn fire(&mut self, at: Instant, timer: Timer, effects: &mut Vec<Effect>) {
        match timer {
            Timer::Join => self.fire_join(at, effects),
            Timer::Sync => self.expire_pending_sync(at, effects),
            Timer::Pending(id) => {
                self.pending.retain(|p| p.id != id);
                self.maybe_complete_join_phase(at, effects);
            }
            Timer::Heartbeat(id) => {
                let Some(member) = self.member_mut(&id) else {
                    return;
                };
                member.heartbeat_deadline = None;
                if !member.has_satisfied_heartbeat() {
                    self.remove_member(&id, effects);
                    self.after_removal(at, effects);
                }
            }
        }
    }

    fn fire_join(&mut self, at: Instant, effects: &mut Vec<Effect>) {
        let Phase::PreparingRebalance { timer, .. } = self.phase else {
            return;
        };
        match timer {
            JoinTimer::Initial {
                new_member_added: true,
                delay,
                remaining,
            } if !remaining.is_zero() => {
                // Kafka's InitialDelayedJoin: wait another delay, bounded by what is left of
                // the rebalance timeout.
                let next_delay = self.config.initial_rebalance_delay.min(remaining);
                self.phase = Phase::PreparingRebalance {
                    deadline: after(at, next_delay),
                    timer: JoinTimer::Initial {
                        new_member_added: false,
                        delay: next_delay,
                        remaining: remaining.saturating_sub(delay),
                    },
                };
            }
            _ => self.complete_join(at, effects),
        }
    }

    /// After members were removed: a Stable or CompletingRebalance group rebalances; a
    /// PreparingRebalance group may now have everyone it waits for.
    pub(super) fn after_removal(&mut self, now: Instant, effects: &mut Vec<Effect>) {
        match self.phase {
            Phase::Stable { .. } | Phase::CompletingRebalance { .. } => {
                self.maybe_prepare_rebalance_or_complete_join(now, effects);
            }
            Phase::PreparingRebalance { .. } => self.maybe_complete_join_phase(now, effects),
            Phase::Empty | Phase::Dead => {}
        }
    }

    pub(super) fn maybe_prepare_rebalance_or_complete_join(
        &mut self,
        now: Instant,
        effects: &mut Vec<Effect>,
    ) {
        match self.phase {
            Phase::Empty | Phase::Stable { .. } | Phase::CompletingRebalance { .. } => {
                self.prepare_rebalance(now, effects);
            }
            Phase::PreparingRebalance { .. } | Phase::Dead => {
                self.maybe_complete_join_phase(now, effects);
            }
        }
    }

    /// Starts a rebalance. Members parked in SyncGroup are told `REBALANCE_IN_PROGRESS`.
    pub(super) fn prepare_rebalance(&mut self, now: Instant, effects: &mut Vec<Effect>) {
        if matches!(self.phase, Phase::CompletingRebalance { .. }) {
            self.reset_and_propagate_assignment_error(
                now,
                GroupError::RebalanceInProgress,
                effects,
            );
        }
        for member in &mut self.members {
            member.pending_sync = false;
        }
        let rebalance_timeout = self.rebalance_timeout();
        if self.phase == Phase::Empty {
            let delay = self.config.initial_rebalance_delay;
            self.phase = Phase::PreparingRebalance {
                deadline: after(now, delay),
                timer: JoinTimer::Initial {
                    new_member_added: false,
                    delay,
                    remaining: rebalance_timeout.saturating_sub(delay),
                },
            };
        } else {
            self.phase = Phase::PreparingRebalance {
                deadline: after(now, rebalance_timeout),
                timer: JoinTimer::Rebalance,
            };
            if self.has_all_members_joined() {
                self.complete_join(now, effects);
            }
        }
    }

    /// Completes the join phase early once everyone is in, except in an initial rebalance,
    /// which always waits for its delay.
    pub(super) fn maybe_complete_join_phase(&mut self, now: Instant, effects: &mut Vec<Effect>) {
        if let Phase::PreparingRebalance {
            timer: JoinTimer::Rebalance,
            ..
        } = self.phase
            && self.has_all_members_joined()
        {
            self.complete_join(now, effects);
        }
    }

    /// Ends the join phase: dynamic members that did not rejoin are dropped (static ones
    /// stay, KIP-345), the generation advances and every parked JoinGroup is answered, the
    /// leader's with every member's metadata.
    pub(super) fn complete_join(&mut self, now: Instant, effects: &mut Vec<Effect>) {
        let stragglers: Vec<MemberId> = self
            .members
            .iter()
            .filter(|m| m.awaiting_join.is_none() && m.group_instance_id.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in &stragglers {
            self.remove_member(id, effects);
        }
        if !self.maybe_elect_new_joined_leader() && !self.members.is_empty() {
            // Only static members that have not rejoined are left: wait for them to rejoin
            // or for their sessions to expire.
            self.phase = Phase::PreparingRebalance {
                deadline: after(now, self.rebalance_timeout().max(MIN_JOIN_RETRY)),
                timer: JoinTimer::Rebalance,
            };
            return;
        }
        self.generation_id = self.generation_id.wrapping_add(1);
        if self.members.is_empty() {
            self.protocol_name = None;
            self.phase = Phase::Empty;
            return;
        }
        self.protocol_name = self.select_protocol();
        self.phase = Phase::CompletingRebalance {
            sync_deadline: Some(after(now, self.rebalance_timeout())),
        };
        let all_members = self.joined_members();
        let template = JoinResponse {
            error: None,
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: MemberId::new(),
            skip_assignment: false,
            members: Vec::new(),
        };
        for member in &mut self.members {
            if let Some(request) = member.awaiting_join.take() {
                let members = if template.leader == member.id {
                    all_members.clone()
                } else {
                    Vec::new()
                };
                let response = JoinResponse {
                    member_id: member.id.clone(),
                    members,
                    ..template.clone()
                };
                reply_join(effects, request, response);
            }
            member.reschedule_heartbeat(now);
            member.is_new = false;
            member.pending_sync = true;
        }
    }

    /// Keeps the leader if it rejoined, else promotes the first member that did. False if
    /// there is no leader or nobody rejoined.
    fn maybe_elect_new_joined_leader(&mut self) -> bool {
        let Some(leader) = self.leader.as_deref() else {
            return false;
        };
        if self
            .member(leader)
            .is_some_and(|m| m.awaiting_join.is_some())
        {
            return true;
        }
        match self.members.iter().find(|m| m.awaiting_join.is_some()) {
            Some(joined) => {
                self.leader = Some(joined.id.clone());
                true
            }
            None => false,
        }
    }

    /// Kafka's vote: among the protocols every member supports, each member votes for its
    /// most preferred one; the most votes wins (ties: the first voted for, in join order).
    pub(super) fn select_protocol(&self) -> Option<String> {
        let first = self.members.first()?;
        let candidates: Vec<&str> = first
            .protocols
            .iter()
            .map(|p| p.name.as_str())
            .filter(|name| self.members.iter().all(|m| m.supports(name)))
            .collect();
        let mut tally: Vec<(&str, usize)> = Vec::new();
        for vote in self.members.iter().filter_map(|m| m.vote(&candidates)) {
            match tally.iter_mut().find(|(name, _)| *name == vote) {
                Some((_, count)) => *count += 1,
                None => tally.push((vote, 1)),
            }
        }
        let mut winner: Option<(&str, usize)> = None;
        for (name, count) in tally {
            if winner.is_none_or(|(_, best)| count > best) {
                winner = Some((name, count));
            }
        }
        winner.map(|(name, _)| name.to_owned())
    }

    /// Members whose SyncGroup did not arrive within the rebalance timeout after the join
    /// phase are removed, and the group rebalances.
    fn expire_pending_sync(&mut self, now: Instant, effects: &mut Vec<Effect>) {
        match &mut self.phase {
            Phase::CompletingRebalance { sync_deadline } | Phase::Stable { sync_deadline } => {
                *sync_deadline = None;
            }
            _ => return,
        }
        let laggards: Vec<MemberId> = self
            .members
            .iter()
            .filter(|m| m.pending_sync)
            .map(|m| m.id.clone())
            .collect();
        if laggards.is_empty() {
            return;
        }
        for id in &laggards {
            self.remove_member(id, effects);
        }
        self.prepare_rebalance(now, effects);
    }

    /// The leader's assignment arrived: store it and answer every parked SyncGroup.
    pub(super) fn set_and_propagate_assignment(
        &mut self,
        now: Instant,
        assignments: &[(MemberId, Bytes)],
        effects: &mut Vec<Effect>,
    ) {
        for member in &mut self.members {
            member.assignment = assignments
                .iter()
                .rev()
                .find(|(id, _)| *id == member.id)
                .map(|(_, assignment)| assignment.clone())
                .unwrap_or_default();
        }
        let answers: Vec<_> = self
            .members
            .iter()
            .map(|m| sync_ok(self, m.assignment.clone()))
            .collect();
        for (member, response) in self.members.iter_mut().zip(answers) {
            if let Some(request) = member.awaiting_sync.take() {
                reply_sync(effects, request, response);
                member.reschedule_heartbeat(now);
            }
        }
    }

    fn reset_and_propagate_assignment_error(
        &mut self,
        now: Instant,
        error: GroupError,
        effects: &mut Vec<Effect>,
    ) {
        for member in &mut self.members {
            member.assignment = Bytes::new();
            if let Some(request) = member.awaiting_sync.take() {
                reply_sync(effects, request, SyncResponse::from_error(error));
                member.reschedule_heartbeat(now);
            }
        }
    }
}
