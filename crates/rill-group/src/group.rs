//! [`Group`]: one consumer group's membership state, its accessors and the requests that
//! answer at once (Heartbeat, LeaveGroup, OffsetCommit checks, DescribeGroups, DeleteGroups).
//!
//! JoinGroup lives in `join`, SyncGroup in `sync`, and the rebalance transitions and timers
//! in `rebalance`.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::GroupError;
use crate::member::{IdGenerator, Member};
use crate::types::{
    Effect, GroupConfig, GroupDescription, GroupState, JoinResponse, JoinedMember,
    MemberDescription, MemberId, RequestId, SyncResponse,
};

mod join;
mod rebalance;
mod sync;

#[cfg(test)]
mod tests;

/// Which timer drives a PreparingRebalance phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JoinTimer {
    /// The rebalance started from Empty (Kafka's `InitialDelayedJoin`): it never completes
    /// early, and is extended while new members keep arriving.
    Initial {
        new_member_added: bool,
        delay: Duration,
        remaining: Duration,
    },
    /// Any other rebalance: completes as soon as every member rejoined, or at the deadline
    /// without the stragglers.
    Rebalance,
}

/// The group state together with the timers that only exist in that state.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Empty,
    PreparingRebalance {
        deadline: Instant,
        timer: JoinTimer,
    },
    /// `sync_deadline`: members that have not sent SyncGroup by then are removed.
    CompletingRebalance {
        sync_deadline: Option<Instant>,
    },
    Stable {
        sync_deadline: Option<Instant>,
    },
    Dead,
}

/// A member that got `MEMBER_ID_REQUIRED` and has not rejoined yet (KIP-394).
#[derive(Debug, Clone)]
struct PendingMember {
    id: MemberId,
    deadline: Instant,
}

/// One classic consumer group: Kafka's `ClassicGroup` plus the parts of its
/// `GroupMetadataManager` that drive it, with the clock passed in.
///
/// Requests go in through [`join`](Self::join), [`sync`](Self::sync),
/// [`heartbeat`](Self::heartbeat), [`leave`](Self::leave) and
/// [`offset_commit`](Self::offset_commit); time goes in through [`tick`](Self::tick), which
/// the owner calls when [`next_deadline`](Self::next_deadline) has passed (and, to be exact,
/// before feeding any request). JoinGroup and SyncGroup answers come back as [`Effect`]s,
/// possibly from a later call.
#[derive(Debug)]
pub struct Group {
    group_id: String,
    config: GroupConfig,
    phase: Phase,
    generation_id: i32,
    protocol_type: Option<String>,
    protocol_name: Option<String>,
    leader: Option<MemberId>,
    /// In the order they joined; the first is the leader's fallback.
    members: Vec<Member>,
    pending: Vec<PendingMember>,
    ids: IdGenerator,
}

impl Group {
    /// A new, Empty group at generation 0.
    pub fn new(group_id: impl Into<String>, config: GroupConfig) -> Self {
        let group_id = group_id.into();
        let ids = IdGenerator::new(&group_id);
        Self {
            group_id,
            config,
            phase: Phase::Empty,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: Vec::new(),
            pending: Vec::new(),
            ids,
        }
    }

    /// The group's id.
    pub fn group_id(&self) -> &str {
        &self.group_id
    }

    /// The group's state.
    pub fn state(&self) -> GroupState {
        match self.phase {
            Phase::Empty => GroupState::Empty,
            Phase::PreparingRebalance { .. } => GroupState::PreparingRebalance,
            Phase::CompletingRebalance { .. } => GroupState::CompletingRebalance,
            Phase::Stable { .. } => GroupState::Stable,
            Phase::Dead => GroupState::Dead,
        }
    }

    /// No members and no members pending a member id.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.pending.is_empty()
    }

    /// The current generation (0 before the first rebalance completes).
    pub fn generation_id(&self) -> i32 {
        self.generation_id
    }

    /// The protocol type of the first member that joined, kept while the group is Empty.
    pub fn protocol_type(&self) -> Option<&str> {
        self.protocol_type.as_deref()
    }

    /// The protocol chosen for the current generation.
    pub fn protocol_name(&self) -> Option<&str> {
        self.protocol_name.as_deref()
    }

    /// The leader's member id.
    pub fn leader(&self) -> Option<&str> {
        self.leader.as_deref()
    }

    /// The group as DescribeGroups shows it (metadata only while Stable, as in Kafka).
    pub fn describe(&self) -> GroupDescription {
        let protocol = match (&self.phase, &self.protocol_name) {
            (Phase::Stable { .. }, Some(name)) => Some(name.as_str()),
            _ => None,
        };
        GroupDescription {
            state: self.state(),
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            protocol: protocol.unwrap_or_default().to_owned(),
            members: self
                .members
                .iter()
                .map(|m| MemberDescription {
                    member_id: m.id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: protocol.map(|p| m.metadata(p)).unwrap_or_default(),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// DeleteGroups: only an Empty group can be deleted (`NON_EMPTY_GROUP` otherwise; a Dead
    /// group gives `GROUP_ID_NOT_FOUND`). The group becomes Dead; the broker drops it.
    pub fn delete(&mut self) -> Result<(), GroupError> {
        match self.phase {
            Phase::Empty => {
                self.pending.clear();
                self.phase = Phase::Dead;
                Ok(())
            }
            Phase::Dead => Err(GroupError::GroupIdNotFound),
            _ => Err(GroupError::NonEmptyGroup),
        }
    }

    /// The broker stops coordinating this group (shutdown or loss of the coordinator role):
    /// every parked JoinGroup and SyncGroup is answered `NOT_COORDINATOR`, as Kafka does on
    /// unload, and the group becomes Dead.
    pub fn unload(&mut self) -> Vec<Effect> {
        let mut effects = Vec::new();
        for member in &mut self.members {
            if let Some(request) = member.awaiting_join.take() {
                effects.push(Effect::Join {
                    request,
                    response: JoinResponse::from_error(GroupError::NotCoordinator, &member.id),
                });
            }
            if let Some(request) = member.awaiting_sync.take() {
                effects.push(Effect::Sync {
                    request,
                    response: SyncResponse::from_error(GroupError::NotCoordinator),
                });
            }
            member.heartbeat_deadline = None;
            member.pending_sync = false;
        }
        self.pending.clear();
        self.phase = Phase::Dead;
        effects
    }

    /// A Heartbeat request.
    ///
    /// Errors as Kafka's: `COORDINATOR_NOT_AVAILABLE` (Dead), `FENCED_INSTANCE_ID`,
    /// `UNKNOWN_MEMBER_ID` (also for a member whose session has lapsed but has not been
    /// expired by [`tick`](Self::tick) yet), `ILLEGAL_GENERATION`, then
    /// `REBALANCE_IN_PROGRESS` while PreparingRebalance. A heartbeat in CompletingRebalance
    /// or Stable succeeds. Every accepted heartbeat restarts the session timer, including the
    /// one answered `REBALANCE_IN_PROGRESS`.
    pub fn heartbeat(
        &mut self,
        now: Instant,
        member_id: &str,
        generation_id: i32,
        group_instance_id: Option<&str>,
    ) -> Result<(), GroupError> {
        if self.phase == Phase::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        self.validate_live_member(now, member_id, group_instance_id)?;
        if generation_id != self.generation_id {
            return Err(GroupError::IllegalGeneration);
        }
        let result = match self.phase {
            Phase::PreparingRebalance { .. } => Err(GroupError::RebalanceInProgress),
            Phase::CompletingRebalance { .. } | Phase::Stable { .. } => Ok(()),
            Phase::Empty | Phase::Dead => return Err(GroupError::UnknownMemberId),
        };
        if let Some(member) = self.member_mut(member_id) {
            member.reschedule_heartbeat(now);
        }
        result
    }

    /// A LeaveGroup request (v3+ leaves several members at once). Each entry is a member id,
    /// or `""` plus a group instance id to remove a static member administratively. Returns
    /// one result per entry, in order, and the effects of the rebalance this may complete.
    pub fn leave(
        &mut self,
        now: Instant,
        members: &[(MemberId, Option<String>)],
    ) -> (Vec<Result<(), GroupError>>, Vec<Effect>) {
        let mut effects = Vec::new();
        self.advance(now, &mut effects);
        if self.phase == Phase::Dead {
            let results = members
                .iter()
                .map(|_| Err(GroupError::CoordinatorNotAvailable))
                .collect();
            return (results, effects);
        }
        let mut results = Vec::with_capacity(members.len());
        for (member_id, group_instance_id) in members {
            let result = if member_id.is_empty() {
                match group_instance_id
                    .as_deref()
                    .and_then(|instance| self.static_member_id(instance))
                {
                    Some(id) => {
                        let id = id.to_owned();
                        self.remove_member(&id, &mut effects);
                        Ok(())
                    }
                    None => Err(GroupError::UnknownMemberId),
                }
            } else if self.is_pending(member_id) {
                self.pending.retain(|p| p.id != *member_id);
                Ok(())
            } else {
                self.validate_member(member_id, group_instance_id.as_deref())
                    .map(|()| self.remove_member(member_id, &mut effects))
            };
            results.push(result);
        }
        if results.iter().any(Result::is_ok) {
            self.after_removal(now, &mut effects);
        }
        self.advance(now, &mut effects);
        (results, effects)
    }

    /// OffsetCommit's membership check, Kafka's `ClassicGroup.validateOffsetCommit`:
    /// generation -1 on an Empty group is always allowed (standalone consumers, admin
    /// tools); otherwise a member id, instance id or generation must match the group's, an
    /// anonymous commit is only allowed while Empty, and a member of the current generation
    /// gets `REBALANCE_IN_PROGRESS` while CompletingRebalance.
    pub fn validate_offset_commit(
        &self,
        member_id: &str,
        generation_id: i32,
        group_instance_id: Option<&str>,
    ) -> Result<(), GroupError> {
        if self.phase == Phase::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        if generation_id < 0 && self.phase == Phase::Empty {
            return Ok(());
        }
        if generation_id >= 0 || !member_id.is_empty() || group_instance_id.is_some() {
            self.validate_member(member_id, group_instance_id)?;
            if generation_id != self.generation_id {
                return Err(GroupError::IllegalGeneration);
            }
        } else if self.phase != Phase::Empty {
            return Err(GroupError::UnknownMemberId);
        }
        if matches!(self.phase, Phase::CompletingRebalance { .. }) {
            return Err(GroupError::RebalanceInProgress);
        }
        Ok(())
    }

    /// What the OffsetCommit handler calls: [`validate_offset_commit`](Self::validate_offset_commit),
    /// and on success, as in Kafka, the commit keeps the member's session alive while the
    /// group is Stable or PreparingRebalance.
    pub fn offset_commit(
        &mut self,
        now: Instant,
        member_id: &str,
        generation_id: i32,
        group_instance_id: Option<&str>,
    ) -> Result<(), GroupError> {
        self.validate_offset_commit(member_id, generation_id, group_instance_id)?;
        if let Some(member) = self.members.iter_mut().find(|m| m.id == member_id) {
            if member.is_expired(now) {
                return Err(GroupError::UnknownMemberId);
            }
            if matches!(
                self.phase,
                Phase::Stable { .. } | Phase::PreparingRebalance { .. }
            ) {
                member.reschedule_heartbeat(now);
            }
        }
        Ok(())
    }

    fn member(&self, member_id: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.id == member_id)
    }

    fn member_mut(&mut self, member_id: &str) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| m.id == member_id)
    }

    fn is_pending(&self, member_id: &str) -> bool {
        self.pending.iter().any(|p| p.id == member_id)
    }

    fn is_leader(&self, member_id: &str) -> bool {
        self.leader.as_deref() == Some(member_id)
    }

    fn static_member_id(&self, group_instance_id: &str) -> Option<&str> {
        self.members
            .iter()
            .find(|m| m.group_instance_id.as_deref() == Some(group_instance_id))
            .map(|m| m.id.as_str())
    }

    /// Kafka's `validateMember`: a given instance id must map to this member id
    /// (`FENCED_INSTANCE_ID` if it maps to another, `UNKNOWN_MEMBER_ID` if to none), and the
    /// member id must be in the group.
    fn validate_member(
        &self,
        member_id: &str,
        group_instance_id: Option<&str>,
    ) -> Result<(), GroupError> {
        if let Some(instance) = group_instance_id {
            match self.static_member_id(instance) {
                None => return Err(GroupError::UnknownMemberId),
                Some(current) if current != member_id => {
                    return Err(GroupError::FencedInstanceId);
                }
                Some(_) => {}
            }
        }
        if self.member(member_id).is_none() {
            return Err(GroupError::UnknownMemberId);
        }
        Ok(())
    }

    /// [`validate_member`](Self::validate_member), and a member whose session lapsed at or
    /// before `now` counts as gone even if no tick has removed it yet.
    fn validate_live_member(
        &self,
        now: Instant,
        member_id: &str,
        group_instance_id: Option<&str>,
    ) -> Result<(), GroupError> {
        self.validate_member(member_id, group_instance_id)?;
        match self.member(member_id) {
            Some(member) if !member.is_expired(now) => Ok(()),
            _ => Err(GroupError::UnknownMemberId),
        }
    }

    /// The longest rebalance timeout among the members.
    fn rebalance_timeout(&self) -> Duration {
        self.members
            .iter()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default()
    }

    fn has_all_members_joined(&self) -> bool {
        self.pending.is_empty() && self.members.iter().all(|m| m.awaiting_join.is_some())
    }

    /// Every member with its metadata for the chosen protocol: the leader's JoinGroup answer.
    fn joined_members(&self) -> Vec<JoinedMember> {
        let protocol = self.protocol_name.as_deref().unwrap_or_default();
        self.members
            .iter()
            .map(|m| JoinedMember {
                member_id: m.id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                metadata: m.metadata(protocol),
            })
            .collect()
    }

    /// Removes a member (or pending member). A parked JoinGroup is answered
    /// `UNKNOWN_MEMBER_ID` with an empty member id, as Kafka does, so a live client rejoins
    /// from scratch; a parked SyncGroup likewise. The leader passes to the oldest member.
    fn remove_member(&mut self, member_id: &str, effects: &mut Vec<Effect>) {
        self.pending.retain(|p| p.id != member_id);
        let Some(index) = self.members.iter().position(|m| m.id == member_id) else {
            return;
        };
        let member = self.members.remove(index);
        if let Some(request) = member.awaiting_join {
            effects.push(Effect::Join {
                request,
                response: JoinResponse::from_error(GroupError::UnknownMemberId, ""),
            });
        }
        if let Some(request) = member.awaiting_sync {
            effects.push(Effect::Sync {
                request,
                response: SyncResponse::from_error(GroupError::UnknownMemberId),
            });
        }
        if self.is_leader(member_id) {
            self.leader = self.members.first().map(|m| m.id.clone());
        }
    }

    fn generate_member_id(&mut self, prefix: &str) -> MemberId {
        loop {
            let id = self.ids.next(prefix);
            if self.member(&id).is_none() && !self.is_pending(&id) {
                return id;
            }
        }
    }
}

fn reply_join(effects: &mut Vec<Effect>, request: RequestId, response: JoinResponse) {
    effects.push(Effect::Join { request, response });
}

fn reply_sync(effects: &mut Vec<Effect>, request: RequestId, response: SyncResponse) {
    effects.push(Effect::Sync { request, response });
}

fn sync_ok(group: &Group, assignment: Bytes) -> SyncResponse {
    SyncResponse {
        error: None,
        protocol_type: group.protocol_type.clone(),
        protocol_name: group.protocol_name.clone(),
        assignment,
    }
}
