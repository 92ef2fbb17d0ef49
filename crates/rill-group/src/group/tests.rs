//! Unit tests for [`Group`], driven with fabricated instants (no sleeping).
//!
//! Every test goes through [`Harness`], which checks after each call that every effect
//! answers a request that was asked and not yet answered, and that the group's internal
//! invariants hold.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{Group, Phase};
use crate::GroupError;
use crate::types::{
    Effect, GroupConfig, JoinRequest, JoinResponse, MemberId, Protocol, RequestId, SyncRequest,
    SyncResponse,
};

mod cooperative;
mod heartbeat;
mod join;
mod leave;
mod property;
mod rebalance;
mod static_member;
mod sync;

pub(super) const SESSION: Duration = Duration::from_secs(10);
pub(super) const REBALANCE: Duration = Duration::from_secs(30);
pub(super) const DELAY: Duration = Duration::from_secs(3);

pub(super) fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Protocols with metadata `"{name}:{client}"`, so tests can tell whose metadata is whose.
pub(super) fn protocols(client: &str, names: &[&str]) -> Vec<Protocol> {
    names
        .iter()
        .map(|name| Protocol {
            name: (*name).to_owned(),
            metadata: Bytes::from(format!("{name}:{client}")),
        })
        .collect()
}

/// A first JoinGroup from `client` (empty member id, `range`, v9 semantics without KIP-394).
pub(super) fn join_request(client: &str) -> JoinRequest {
    JoinRequest {
        member_id: MemberId::new(),
        group_instance_id: None,
        client_id: client.to_owned(),
        client_host: format!("/10.0.0.1:{client}"),
        session_timeout: SESSION,
        rebalance_timeout: REBALANCE,
        protocol_type: "consumer".to_owned(),
        protocols: protocols(client, &["range"]),
        require_known_member_id: false,
        supports_skip_assignment: true,
        reason: None,
    }
}

/// `client` rejoining as `member_id` with its original protocols.
pub(super) fn rejoin(member_id: &str, client: &str) -> JoinRequest {
    JoinRequest {
        member_id: member_id.to_owned(),
        ..join_request(client)
    }
}

pub(super) fn static_join(client: &str, instance: &str) -> JoinRequest {
    JoinRequest {
        group_instance_id: Some(instance.to_owned()),
        ..join_request(client)
    }
}

pub(super) fn sync_request(member_id: &str, generation_id: i32) -> SyncRequest {
    SyncRequest {
        member_id: member_id.to_owned(),
        generation_id,
        group_instance_id: None,
        protocol_type: Some("consumer".to_owned()),
        protocol_name: None,
        assignments: Vec::new(),
    }
}

/// What the tests' leaders assign: `"{member_id}:assigned"`.
pub(super) fn assignment_for(member_id: &str) -> Bytes {
    Bytes::from(format!("{member_id}:assigned"))
}

pub(super) fn find_join(effects: &[Effect], request: RequestId) -> Option<&JoinResponse> {
    effects.iter().find_map(|effect| match effect {
        Effect::Join {
            request: r,
            response,
        } if *r == request => Some(response),
        _ => None,
    })
}

pub(super) fn find_sync(effects: &[Effect], request: RequestId) -> Option<&SyncResponse> {
    effects.iter().find_map(|effect| match effect {
        Effect::Sync {
            request: r,
            response,
        } if *r == request => Some(response),
        _ => None,
    })
}

#[track_caller]
pub(super) fn join_answer(effects: &[Effect], request: RequestId) -> JoinResponse {
    match find_join(effects, request) {
        Some(response) => response.clone(),
        None => panic!("no join answer for request {request} in {effects:#?}"),
    }
}

#[track_caller]
pub(super) fn sync_answer(effects: &[Effect], request: RequestId) -> SyncResponse {
    match find_sync(effects, request) {
        Some(response) => response.clone(),
        None => panic!("no sync answer for request {request} in {effects:#?}"),
    }
}

/// A group plus a fake clock plus the exactly-once bookkeeping.
pub(super) struct Harness {
    pub(super) group: Group,
    pub(super) now: Instant,
    next_request: RequestId,
    outstanding: BTreeSet<RequestId>,
}

impl Harness {
    pub(super) fn new(config: GroupConfig) -> Self {
        Self {
            group: Group::new("group", config),
            now: Instant::now(),
            next_request: 1,
            outstanding: BTreeSet::new(),
        }
    }

    /// Kafka's defaults (3 s initial delay).
    pub(super) fn kafka_defaults() -> Self {
        Self::new(GroupConfig::default())
    }

    #[track_caller]
    fn settle(&mut self, effects: Vec<Effect>) -> Vec<Effect> {
        for effect in &effects {
            assert!(
                self.outstanding.remove(&effect.request()),
                "answer to a request that is not outstanding: {effect:#?}"
            );
        }
        self.group.check_invariants();
        effects
    }

    fn request_id(&mut self) -> RequestId {
        let id = self.next_request;
        self.next_request += 1;
        let _ = self.outstanding.insert(id);
        id
    }

    #[track_caller]
    pub(super) fn advance(&mut self, by: Duration) -> Vec<Effect> {
        self.now += by;
        let effects = self.group.tick(self.now);
        self.settle(effects)
    }

    #[track_caller]
    pub(super) fn join(&mut self, join: JoinRequest) -> (RequestId, Vec<Effect>) {
        let request = self.request_id();
        let effects = self.group.join(self.now, request, join);
        (request, self.settle(effects))
    }

    /// A join that must be answered at once.
    #[track_caller]
    pub(super) fn join_now(&mut self, join: JoinRequest) -> JoinResponse {
        let (request, effects) = self.join(join);
        join_answer(&effects, request)
    }

    #[track_caller]
    pub(super) fn sync(&mut self, sync: SyncRequest) -> (RequestId, Vec<Effect>) {
        let request = self.request_id();
        let effects = self.group.sync(self.now, request, sync);
        (request, self.settle(effects))
    }

    /// A sync that must be answered at once.
    #[track_caller]
    pub(super) fn sync_now(&mut self, sync: SyncRequest) -> SyncResponse {
        let (request, effects) = self.sync(sync);
        sync_answer(&effects, request)
    }

    pub(super) fn heartbeat(
        &mut self,
        member_id: &str,
        generation_id: i32,
    ) -> Result<(), GroupError> {
        let result = self
            .group
            .heartbeat(self.now, member_id, generation_id, None);
        self.group.check_invariants();
        result
    }

    #[track_caller]
    pub(super) fn leave(
        &mut self,
        members: &[(&str, Option<&str>)],
    ) -> (Vec<Result<(), GroupError>>, Vec<Effect>) {
        let members: Vec<(MemberId, Option<String>)> = members
            .iter()
            .map(|(id, instance)| ((*id).to_owned(), instance.map(str::to_owned)))
            .collect();
        let (results, effects) = self.group.leave(self.now, &members);
        (results, self.settle(effects))
    }

    pub(super) fn is_outstanding(&self, request: RequestId) -> bool {
        self.outstanding.contains(&request)
    }

    /// Joins every request at the current instant and advances the clock one second at a
    /// time until all are answered; returns the answers in request order.
    #[track_caller]
    pub(super) fn form(&mut self, joins: Vec<JoinRequest>) -> Vec<JoinResponse> {
        let mut requests = Vec::new();
        let mut effects = Vec::new();
        for join in joins {
            let (request, new) = self.join(join);
            requests.push(request);
            effects.extend(new);
        }
        for _ in 0..120 {
            if requests.iter().all(|r| find_join(&effects, *r).is_some()) {
                break;
            }
            effects.extend(self.advance(secs(1)));
        }
        requests.iter().map(|r| join_answer(&effects, *r)).collect()
    }

    /// Followers sync first (parked), then the leader with `assignment_for` every member;
    /// returns the sync answers in the order of `joined`.
    #[track_caller]
    pub(super) fn stabilize(&mut self, joined: &[JoinResponse]) -> Vec<SyncResponse> {
        let mut requests = Vec::new();
        let mut effects = Vec::new();
        let leader = joined.iter().find(|j| j.leader == j.member_id);
        for response in joined.iter().filter(|j| j.leader != j.member_id) {
            let (request, new) =
                self.sync(sync_request(&response.member_id, response.generation_id));
            assert!(
                new.is_empty(),
                "a follower's sync must wait for the leader: {new:#?}"
            );
            requests.push((response.member_id.clone(), request));
        }
        if let Some(leader) = leader {
            let mut sync = sync_request(&leader.member_id, leader.generation_id);
            sync.assignments = leader
                .members
                .iter()
                .map(|m| (m.member_id.clone(), assignment_for(&m.member_id)))
                .collect();
            let (request, new) = self.sync(sync);
            requests.push((leader.member_id.clone(), request));
            effects.extend(new);
        }
        joined
            .iter()
            .map(|j| {
                let request = requests
                    .iter()
                    .find(|(id, _)| *id == j.member_id)
                    .map(|(_, r)| *r)
                    .unwrap_or_default();
                sync_answer(&effects, request)
            })
            .collect()
    }

    /// A Stable group of `clients` (joined together in the initial rebalance).
    #[track_caller]
    pub(super) fn stable_group(&mut self, clients: &[&str]) -> Vec<JoinResponse> {
        let joined = self.form(clients.iter().map(|c| join_request(c)).collect());
        let _ = self.stabilize(&joined);
        assert_eq!(self.group.state(), crate::GroupState::Stable);
        joined
    }

    /// Ends a test: with time running on, every request gets its answer.
    #[track_caller]
    pub(super) fn drain(&mut self) {
        for _ in 0..100 {
            if self.outstanding.is_empty() {
                return;
            }
            let _ = self.advance(secs(60));
        }
        panic!("requests never answered: {:?}", self.outstanding);
    }
}

impl Group {
    /// Invariants that hold between calls.
    #[track_caller]
    pub(super) fn check_invariants(&self) {
        let ids: BTreeSet<&str> = self.members.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids.len(), self.members.len(), "duplicate member ids");
        let instances: Vec<&str> = self
            .members
            .iter()
            .filter_map(|m| m.group_instance_id.as_deref())
            .collect();
        let unique: BTreeSet<&str> = instances.iter().copied().collect();
        assert_eq!(unique.len(), instances.len(), "duplicate instance ids");
        assert!(self.pending.iter().all(|p| !ids.contains(p.id.as_str())));
        match &self.leader {
            Some(leader) => assert!(
                ids.contains(leader.as_str()),
                "leader {leader} not a member"
            ),
            None => assert!(self.members.is_empty(), "members but no leader"),
        }
        let preparing = matches!(self.phase, Phase::PreparingRebalance { .. });
        let completing = matches!(self.phase, Phase::CompletingRebalance { .. });
        let synced = completing || matches!(self.phase, Phase::Stable { .. });
        for member in &self.members {
            assert!(
                member.awaiting_join.is_none() || preparing,
                "{member:?} in {:?}",
                self.phase
            );
            assert!(
                member.awaiting_sync.is_none() || completing,
                "{member:?} in {:?}",
                self.phase
            );
            assert!(
                !member.pending_sync || synced,
                "{member:?} in {:?}",
                self.phase
            );
            let dead = self.phase == Phase::Dead;
            assert!(
                !member.is_new || preparing || dead,
                "{member:?} in {:?}",
                self.phase
            );
        }
        match self.phase {
            Phase::Empty => assert!(self.members.is_empty()),
            Phase::CompletingRebalance { .. } | Phase::Stable { .. } => {
                assert!(!self.members.is_empty());
                let protocol = self.protocol_name.as_deref().unwrap_or_default();
                assert!(
                    self.members.iter().all(|m| m.supports(protocol)),
                    "{protocol}"
                );
            }
            Phase::PreparingRebalance { .. } | Phase::Dead => {}
        }
    }
}
