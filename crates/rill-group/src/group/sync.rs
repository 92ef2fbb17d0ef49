//! SyncGroup: followers park until the leader's assignment arrives; a Stable group hands
//! out the stored assignment at once.

use std::time::Instant;

use super::{Group, Phase, reply_sync, sync_ok};
use crate::GroupError;
use crate::types::{Effect, RequestId, SyncRequest, SyncResponse};

impl Group {
    /// A SyncGroup request. Its answer is an [`Effect::Sync`] for `request`, in the returned
    /// effects or, for a member that syncs before the leader, in those of the call that
    /// brings the leader's assignment (or the rebalance that cancels it).
    pub fn sync(&mut self, now: Instant, request: RequestId, sync: SyncRequest) -> Vec<Effect> {
        let mut effects = Vec::new();
        self.advance(now, &mut effects);
        match self.validate_sync(now, &sync) {
            Err(error) => reply_sync(&mut effects, request, SyncResponse::from_error(error)),
            Ok(()) => self.handle_sync(now, request, sync, &mut effects),
        }
        self.advance(now, &mut effects);
        effects
    }

    /// Kafka's checks, in Kafka's order.
    fn validate_sync(&self, now: Instant, sync: &SyncRequest) -> Result<(), GroupError> {
        match self.phase {
            Phase::Empty => return Err(GroupError::UnknownMemberId),
            Phase::Dead => return Err(GroupError::CoordinatorNotAvailable),
            _ => {}
        }
        self.validate_live_member(now, &sync.member_id, sync.group_instance_id.as_deref())?;
        if sync.generation_id != self.generation_id {
            return Err(GroupError::IllegalGeneration);
        }
        let inconsistent = |asked: &Option<String>, ours: &Option<String>| matches!((asked, ours), (Some(asked), Some(ours)) if asked != ours);
        if inconsistent(&sync.protocol_type, &self.protocol_type)
            || inconsistent(&sync.protocol_name, &self.protocol_name)
        {
            return Err(GroupError::InconsistentGroupProtocol);
        }
        Ok(())
    }

    fn handle_sync(
        &mut self,
        now: Instant,
        request: RequestId,
        sync: SyncRequest,
        effects: &mut Vec<Effect>,
    ) {
        match self.phase {
            Phase::CompletingRebalance { .. } => {
                let Some(member) = self.members.iter_mut().find(|m| m.id == sync.member_id) else {
                    let response = SyncResponse::from_error(GroupError::UnknownMemberId);
                    return reply_sync(effects, request, response);
                };
                if let Some(superseded) = member.awaiting_sync.replace(request) {
                    // Kafka drops a superseded SyncGroup silently; we answer it.
                    let response = SyncResponse::from_error(GroupError::RebalanceInProgress);
                    reply_sync(effects, superseded, response);
                }
                self.clear_pending_sync(&sync.member_id);
                if self.is_leader(&sync.member_id) {
                    self.set_and_propagate_assignment(now, &sync.assignments, effects);
                    if let Phase::CompletingRebalance { sync_deadline } = self.phase {
                        self.phase = Phase::Stable { sync_deadline };
                    }
                }
            }
            Phase::Stable { .. } => {
                self.clear_pending_sync(&sync.member_id);
                let assignment = self
                    .member(&sync.member_id)
                    .map(|m| m.assignment.clone())
                    .unwrap_or_default();
                reply_sync(effects, request, sync_ok(self, assignment));
                if let Some(member) = self.member_mut(&sync.member_id) {
                    member.reschedule_heartbeat(now);
                }
            }
            Phase::PreparingRebalance { .. } => {
                let response = SyncResponse::from_error(GroupError::RebalanceInProgress);
                reply_sync(effects, request, response);
            }
            Phase::Empty | Phase::Dead => {
                let response = SyncResponse::from_error(GroupError::UnknownMemberId);
                reply_sync(effects, request, response);
            }
        }
    }

    /// The member has sent SyncGroup for this generation; once everyone has, the
    /// pending-sync timer is disarmed.
    fn clear_pending_sync(&mut self, member_id: &str) {
        if let Some(member) = self.member_mut(member_id) {
            member.pending_sync = false;
        }
        if self.members.iter().any(|m| m.pending_sync) {
            return;
        }
        if let Phase::CompletingRebalance { sync_deadline } | Phase::Stable { sync_deadline } =
            &mut self.phase
        {
            *sync_deadline = None;
        }
    }
}
