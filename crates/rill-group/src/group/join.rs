//! JoinGroup: new dynamic members (with KIP-394's `MEMBER_ID_REQUIRED` round trip), new and
//! returning static members (KIP-345), and existing members rejoining in each state.

use std::time::Instant;

use super::{Group, JoinTimer, PendingMember, Phase, reply_join};
use crate::GroupError;
use crate::member::{Member, after};
use crate::types::{Effect, JoinRequest, JoinResponse, MemberId, RequestId};

impl Group {
    /// A JoinGroup request. Its answer is an [`Effect::Join`] for `request`, in the returned
    /// effects or in those of a later call (when the join phase completes). Other parked
    /// requests may be answered too.
    pub fn join(&mut self, now: Instant, request: RequestId, join: JoinRequest) -> Vec<Effect> {
        let mut effects = Vec::new();
        self.advance(now, &mut effects);
        self.handle_join(now, request, join, &mut effects);
        // A timer armed at `now` (a zero initial delay, say) fires right away.
        self.advance(now, &mut effects);
        effects
    }

    fn handle_join(
        &mut self,
        now: Instant,
        request: RequestId,
        join: JoinRequest,
        effects: &mut Vec<Effect>,
    ) {
        if join.session_timeout < self.config.min_session_timeout
            || join.session_timeout > self.config.max_session_timeout
        {
            let response =
                JoinResponse::from_error(GroupError::InvalidSessionTimeout, join.member_id);
            return reply_join(effects, request, response);
        }
        if !self.accept_joining_member(&join.member_id) {
            self.remove_member(&join.member_id, effects);
            let response = JoinResponse::from_error(GroupError::GroupMaxSizeReached, "");
            reply_join(effects, request, response);
            return self.maybe_complete_join_phase(now, effects);
        }
        if self.phase == Phase::Dead {
            let response =
                JoinResponse::from_error(GroupError::CoordinatorNotAvailable, join.member_id);
            return reply_join(effects, request, response);
        }
        if !self.supports_protocols(&join) {
            let response =
                JoinResponse::from_error(GroupError::InconsistentGroupProtocol, join.member_id);
            return reply_join(effects, request, response);
        }
        if join.member_id.is_empty() {
            self.join_new_member(now, request, join, effects);
        } else {
            self.join_existing_member(now, request, join, effects);
        }
    }

    /// Kafka's `acceptJoiningMember` for `group.max.size`. While PreparingRebalance the
    /// members that already rejoined are counted, so the last to rejoin are the ones left out.
    fn accept_joining_member(&self, member_id: &str) -> bool {
        let Some(max) = self.config.max_size else {
            return true;
        };
        match self.phase {
            Phase::Empty | Phase::Dead => true,
            Phase::PreparingRebalance { .. } => {
                self.member(member_id)
                    .is_some_and(|m| m.awaiting_join.is_some())
                    || self
                        .members
                        .iter()
                        .filter(|m| m.awaiting_join.is_some())
                        .count()
                        < max
            }
            Phase::CompletingRebalance { .. } | Phase::Stable { .. } => {
                self.member(member_id).is_some() || self.members.len() < max
            }
        }
    }

    /// The protocol type must match the group's and at least one protocol must be supported
    /// by every member (an Empty group takes anything non-empty).
    fn supports_protocols(&self, join: &JoinRequest) -> bool {
        if self.phase == Phase::Empty {
            return !join.protocol_type.is_empty() && !join.protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(join.protocol_type.as_str())
            && join
                .protocols
                .iter()
                .any(|p| self.members.iter().all(|m| m.supports(&p.name)))
    }

    fn join_new_member(
        &mut self,
        now: Instant,
        request: RequestId,
        join: JoinRequest,
        effects: &mut Vec<Effect>,
    ) {
        let prefix = join
            .group_instance_id
            .as_deref()
            .unwrap_or(join.client_id.as_str())
            .to_owned();
        let new_id = self.generate_member_id(&prefix);
        if let Some(instance) = join.group_instance_id.as_deref() {
            match self.static_member_id(instance).map(str::to_owned) {
                Some(old_id) => {
                    self.replace_static_member(now, request, join, old_id, new_id, effects)
                }
                None => self.add_member_and_rebalance(now, request, join, new_id, effects),
            }
        } else if join.require_known_member_id {
            self.pending.push(PendingMember {
                id: new_id.clone(),
                deadline: after(now, join.session_timeout),
            });
            let response = JoinResponse::from_error(GroupError::MemberIdRequired, new_id);
            reply_join(effects, request, response);
        } else {
            self.add_member_and_rebalance(now, request, join, new_id, effects);
        }
    }

    fn join_existing_member(
        &mut self,
        now: Instant,
        request: RequestId,
        join: JoinRequest,
        effects: &mut Vec<Effect>,
    ) {
        let member_id = join.member_id.clone();
        if self.is_pending(&member_id) {
            if join.group_instance_id.is_some() {
                // Kafka never hands a pending id to a static member and treats this as an
                // internal error.
                let response = JoinResponse::from_error(GroupError::UnknownServerError, member_id);
                return reply_join(effects, request, response);
            }
            return self.add_member_and_rebalance(now, request, join, member_id, effects);
        }
        if let Err(error) =
            self.validate_live_member(now, &member_id, join.group_instance_id.as_deref())
        {
            return reply_join(effects, request, JoinResponse::from_error(error, member_id));
        }
        let matches = self
            .member(&member_id)
            .is_some_and(|m| m.matches(&join.protocols));
        match self.phase {
            Phase::PreparingRebalance { .. } => {
                self.update_member_and_rebalance(now, request, join, effects);
            }
            // The member lost the join answer: give it the same one again.
            Phase::CompletingRebalance { .. } if matches => {
                let with_members = self.is_leader(&member_id);
                self.answer_with_current_generation(
                    now,
                    request,
                    &member_id,
                    with_members,
                    effects,
                );
            }
            // A follower with unchanged metadata just learns the current generation; the
            // leader rejoining forces a rebalance (how it reacts to topic metadata changes).
            Phase::Stable { .. } if matches && !self.is_leader(&member_id) => {
                self.answer_with_current_generation(now, request, &member_id, false, effects);
            }
            Phase::CompletingRebalance { .. } | Phase::Stable { .. } => {
                self.update_member_and_rebalance(now, request, join, effects);
            }
            Phase::Empty | Phase::Dead => {
                let response = JoinResponse::from_error(GroupError::UnknownMemberId, member_id);
                reply_join(effects, request, response);
            }
        }
    }

    fn answer_with_current_generation(
        &mut self,
        now: Instant,
        request: RequestId,
        member_id: &str,
        with_members: bool,
        effects: &mut Vec<Effect>,
    ) {
        let response = JoinResponse {
            error: None,
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: member_id.to_owned(),
            skip_assignment: false,
            members: if with_members {
                self.joined_members()
            } else {
                Vec::new()
            },
        };
        reply_join(effects, request, response);
        if let Some(member) = self.member_mut(member_id) {
            member.reschedule_heartbeat(now);
        }
    }

    /// A new member enters the group, parked until the join phase completes. Its parked
    /// request does not protect it from expiry: after `new_member_join_timeout` it is dropped.
    fn add_member_and_rebalance(
        &mut self,
        now: Instant,
        request: RequestId,
        join: JoinRequest,
        member_id: MemberId,
        effects: &mut Vec<Effect>,
    ) {
        if let Phase::PreparingRebalance {
            timer: JoinTimer::Initial {
                new_member_added, ..
            },
            ..
        } = &mut self.phase
        {
            *new_member_added = true;
        }
        if self.members.is_empty() {
            self.protocol_type = Some(join.protocol_type.clone());
        }
        if self.leader.is_none() {
            self.leader = Some(member_id.clone());
        }
        self.pending.retain(|p| p.id != member_id);
        let mut member = Member::new(member_id, join, request);
        member.heartbeat_deadline = Some(after(now, self.config.new_member_join_timeout));
        self.members.push(member);
        self.maybe_prepare_rebalance_or_complete_join(now, effects);
    }

    /// An existing member rejoins with (possibly) new protocols and timeouts.
    fn update_member_and_rebalance(
        &mut self,
        now: Instant,
        request: RequestId,
        join: JoinRequest,
        effects: &mut Vec<Effect>,
    ) {
        let Some(member) = self.members.iter_mut().find(|m| m.id == join.member_id) else {
            let response = JoinResponse::from_error(GroupError::UnknownMemberId, join.member_id);
            return reply_join(effects, request, response);
        };
        if let Some(superseded) = member.awaiting_join.replace(request) {
            // A second JoinGroup from the same member replaces the first; Kafka drops the
            // first silently, we answer it so no request is left hanging.
            let response =
                JoinResponse::from_error(GroupError::RebalanceInProgress, member.id.clone());
            reply_join(effects, superseded, response);
        }
        member.protocols = join.protocols;
        member.rebalance_timeout = join.rebalance_timeout;
        member.session_timeout = join.session_timeout;
        self.maybe_prepare_rebalance_or_complete_join(now, effects);
    }

    /// KIP-345: a static member rejoins with an empty member id. It takes over the old
    /// member's place under a new id; requests parked under the old id are fenced. A Stable
    /// group whose chosen protocol does not change answers at once with the current
    /// generation (the member then gets its old assignment from SyncGroup); otherwise the
    /// group rebalances.
    fn replace_static_member(
        &mut self,
        now: Instant,
        request: RequestId,
        join: JoinRequest,
        old_id: MemberId,
        new_id: MemberId,
        effects: &mut Vec<Effect>,
    ) {
        let old_leader = self.leader.clone().unwrap_or_default();
        let Some(member) = self.members.iter_mut().find(|m| m.id == old_id) else {
            let response = JoinResponse::from_error(GroupError::UnknownServerError, "");
            return reply_join(effects, request, response);
        };
        if let Some(fenced) = member.awaiting_join.take() {
            let response = JoinResponse::from_error(GroupError::FencedInstanceId, old_id.clone());
            reply_join(effects, fenced, response);
        }
        if let Some(fenced) = member.awaiting_sync.take() {
            effects.push(Effect::Sync {
                request: fenced,
                response: crate::types::SyncResponse::from_error(GroupError::FencedInstanceId),
            });
        }
        member.id = new_id.clone();
        member.is_new = false;
        member.protocols = join.protocols;
        member.rebalance_timeout = join.rebalance_timeout;
        member.session_timeout = join.session_timeout;
        member.awaiting_join = Some(request);
        member.reschedule_heartbeat(now);
        if self.leader.as_deref() == Some(old_id.as_str()) {
            self.leader = Some(new_id.clone());
        }

        match self.phase {
            Phase::Stable { .. } if self.select_protocol() == self.protocol_name => {
                let is_leader = self.is_leader(&new_id);
                let (leader, members, skip_assignment) = if join.supports_skip_assignment {
                    let members = if is_leader {
                        self.joined_members()
                    } else {
                        Vec::new()
                    };
                    (self.leader.clone().unwrap_or_default(), members, is_leader)
                } else {
                    // Older clients get the old leader id, so a rejoining leader does not
                    // think it must assign (a Stable group would not pass it on).
                    (old_leader, Vec::new(), false)
                };
                let response = JoinResponse {
                    error: None,
                    generation_id: self.generation_id,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol_name.clone(),
                    leader,
                    member_id: new_id.clone(),
                    skip_assignment,
                    members,
                };
                if let Some(member) = self.member_mut(&new_id) {
                    member.awaiting_join = None;
                }
                reply_join(effects, request, response);
            }
            Phase::Stable { .. } => self.maybe_prepare_rebalance_or_complete_join(now, effects),
            // The leader may already be assigning with the old id: start over.
            Phase::CompletingRebalance { .. } => self.prepare_rebalance(now, effects),
            Phase::PreparingRebalance { .. } => self.maybe_complete_join_phase(now, effects),
            Phase::Empty | Phase::Dead => {
                // Unreachable: an Empty or Dead group has no static members.
                if let Some(member) = self.member_mut(&new_id) {
                    member.awaiting_join = None;
                }
                let response = JoinResponse::from_error(GroupError::UnknownServerError, new_id);
                reply_join(effects, request, response);
            }
        }
    }
}
