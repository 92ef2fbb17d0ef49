//! KIP-345 static membership.

use super::{
    Harness, REBALANCE, SESSION, assignment_for, join_answer, join_request, protocols, rejoin,
    secs, static_join, sync_request,
};
use crate::{GroupError, GroupState, JoinRequest, SyncRequest};

/// A Stable group of static `s1` (the leader, instance `i1`) and dynamic `b`.
fn static_leader_and_follower(h: &mut Harness) -> (String, String) {
    let joined = h.form(vec![static_join("s1", "i1"), join_request("b")]);
    let _ = h.stabilize(&joined);
    (joined[0].member_id.clone(), joined[1].member_id.clone())
}

#[test]
fn a_static_member_rejoining_a_stable_group_keeps_generation_and_assignment() {
    let mut h = Harness::kafka_defaults();
    let (old, _) = static_leader_and_follower(&mut h);
    assert!(old.starts_with("i1-"), "{old}");

    let new = h.join_now(static_join("s1", "i1"));
    assert_eq!(new.error, None);
    assert_ne!(new.member_id, old);
    assert_eq!(new.generation_id, 1, "no rebalance");
    assert_eq!(h.group.state(), GroupState::Stable);
    // KIP-814: the rejoining leader learns it leads but must not reassign.
    assert_eq!(new.leader, new.member_id);
    assert!(new.skip_assignment);
    assert_eq!(new.members.len(), 2);

    let sync = h.sync_now(SyncRequest {
        group_instance_id: Some("i1".into()),
        ..sync_request(&new.member_id, 1)
    });
    assert_eq!(sync.error, None);
    assert_eq!(sync.assignment, assignment_for(&old), "the old assignment");

    // The old incarnation is fenced.
    let fenced = h.group.heartbeat(h.now, &old, 1, Some("i1"));
    assert_eq!(fenced, Err(GroupError::FencedInstanceId));
    assert_eq!(h.heartbeat(&old, 1), Err(GroupError::UnknownMemberId));
    let fenced_sync = h.sync_now(SyncRequest {
        group_instance_id: Some("i1".into()),
        ..sync_request(&old, 1)
    });
    assert_eq!(fenced_sync.error, Some(GroupError::FencedInstanceId));
    assert_eq!(
        h.group.validate_offset_commit(&old, 1, Some("i1")),
        Err(GroupError::FencedInstanceId)
    );
    assert_eq!(
        h.group
            .validate_offset_commit(&new.member_id, 1, Some("i1")),
        Ok(())
    );
}

#[test]
fn clients_before_kip_814_get_the_old_leader_id_and_no_members() {
    let mut h = Harness::kafka_defaults();
    let (old, _) = static_leader_and_follower(&mut h);
    let new = h.join_now(JoinRequest {
        supports_skip_assignment: false,
        ..static_join("s1", "i1")
    });
    assert_eq!(new.leader, old);
    assert!(!new.skip_assignment);
    assert!(new.members.is_empty());
    assert_eq!(h.group.leader(), Some(new.member_id.as_str()));
}

#[test]
fn a_static_follower_rejoining_learns_the_current_leader() {
    let mut h = Harness::kafka_defaults();
    let joined = h.form(vec![join_request("a"), static_join("s2", "i2")]);
    let _ = h.stabilize(&joined);
    let new = h.join_now(static_join("s2", "i2"));
    assert_eq!(new.leader, joined[0].member_id);
    assert!(!new.skip_assignment && new.members.is_empty());
    assert_eq!(h.group.state(), GroupState::Stable);
}

#[test]
fn a_static_rejoin_that_changes_the_elected_protocol_rebalances() {
    let mut h = Harness::kafka_defaults();
    let joined = h.form(vec![
        JoinRequest {
            protocols: protocols("s1", &["range", "roundrobin"]),
            ..static_join("s1", "i1")
        },
        JoinRequest {
            protocols: protocols("b", &["roundrobin", "range"]),
            ..join_request("b")
        },
    ]);
    assert_eq!(
        joined[0].protocol_name.as_deref(),
        Some("range"),
        "tie: first vote"
    );
    let _ = h.stabilize(&joined);
    let (rs, effects) = h.join(JoinRequest {
        protocols: protocols("s1", &["roundrobin", "range"]),
        ..static_join("s1", "i1")
    });
    assert!(effects.is_empty());
    assert_eq!(h.group.state(), GroupState::PreparingRebalance);
    let (_, effects) = h.join(JoinRequest {
        protocols: protocols("b", &["roundrobin", "range"]),
        ..rejoin(&joined[1].member_id, "b")
    });
    let s1 = join_answer(&effects, rs);
    assert_eq!(s1.generation_id, 2);
    assert_eq!(s1.protocol_name.as_deref(), Some("roundrobin"));
}

#[test]
fn a_static_rejoin_fences_the_old_ids_parked_join() {
    let mut h = Harness::kafka_defaults();
    let joined = h.form(vec![
        join_request("a"),
        static_join("s2", "i2"),
        join_request("c"),
    ]);
    let _ = h.stabilize(&joined);
    let (ra, _) = h.join(rejoin(&joined[0].member_id, "a"));
    let (old, _) = h.join(JoinRequest {
        member_id: joined[1].member_id.clone(),
        ..static_join("s2", "i2")
    });
    assert!(h.is_outstanding(old), "parked until c rejoins");
    let (new, effects) = h.join(static_join("s2", "i2"));
    let fenced = join_answer(&effects, old);
    assert_eq!(fenced.error, Some(GroupError::FencedInstanceId));
    assert_eq!(fenced.member_id, joined[1].member_id);
    let (_, effects) = h.join(rejoin(&joined[2].member_id, "c"));
    let new = join_answer(&effects, new);
    assert_eq!(new.generation_id, 2);
    assert_ne!(new.member_id, joined[1].member_id);
    let members = join_answer(&effects, ra).members;
    assert!(members.iter().any(|m| m.member_id == new.member_id));
    assert_eq!(members.len(), 3);
}

#[test]
fn a_static_rejoin_while_completing_restarts_the_rebalance() {
    let mut h = Harness::kafka_defaults();
    let joined = h.form(vec![join_request("a"), static_join("s2", "i2")]);
    let (old_sync, _) = h.sync(SyncRequest {
        group_instance_id: Some("i2".into()),
        ..sync_request(&joined[1].member_id, 1)
    });
    let (_, effects) = h.join(static_join("s2", "i2"));
    assert_eq!(
        super::sync_answer(&effects, old_sync).error,
        Some(GroupError::FencedInstanceId)
    );
    assert_eq!(h.group.state(), GroupState::PreparingRebalance);
    h.drain();
}

#[test]
fn a_static_member_leaves_by_instance_id() {
    let mut h = Harness::kafka_defaults();
    let joined = h.form(vec![join_request("a"), static_join("s2", "i2")]);
    let _ = h.stabilize(&joined);
    let (results, _) = h.leave(&[("wrong", Some("i2")), ("", Some("i2")), ("", Some("i9"))]);
    assert_eq!(
        results,
        vec![
            Err(GroupError::FencedInstanceId),
            Ok(()),
            Err(GroupError::UnknownMemberId)
        ]
    );
    assert_eq!(h.group.state(), GroupState::PreparingRebalance);
    let (ra, effects) = h.join(rejoin(&joined[0].member_id, "a"));
    assert_eq!(join_answer(&effects, ra).members.len(), 1);
}

#[test]
fn static_members_that_do_not_rejoin_stay_until_their_session_expires() {
    let mut h = Harness::kafka_defaults();
    let joined = h.form(vec![join_request("a"), static_join("s2", "i2")]);
    let _ = h.stabilize(&joined);
    let (ra, _) = h.join(rejoin(&joined[0].member_id, "a"));
    // s2 heartbeats through the whole join phase without rejoining.
    let mut effects = Vec::new();
    for _ in 0..REBALANCE.as_secs() / 5 {
        assert_eq!(
            h.heartbeat(&joined[1].member_id, 1),
            Err(GroupError::RebalanceInProgress)
        );
        effects.extend(h.advance(secs(5)));
    }
    let a2 = join_answer(&effects, ra);
    assert_eq!(a2.generation_id, 2);
    assert_eq!(a2.members.len(), 2, "the static member is kept (KIP-345)");
    // Then s2 goes silent: session expiry removes static members too.
    let _ = h.sync(sync_request(&a2.member_id, 2));
    let _ = h.advance(SESSION / 2);
    assert_eq!(h.heartbeat(&a2.member_id, 2), Ok(()));
    let _ = h.advance(SESSION / 2);
    assert_eq!(h.group.state(), GroupState::PreparingRebalance);
    assert_eq!(
        h.group
            .heartbeat(h.now, &joined[1].member_id, 2, Some("i2")),
        Err(GroupError::UnknownMemberId)
    );
    h.drain();
}

#[test]
fn static_identity_checks_on_join() {
    let mut h = Harness::kafka_defaults();
    let joined = h.form(vec![join_request("a"), static_join("s2", "i2")]);
    let unknown_instance = h.join_now(JoinRequest {
        member_id: joined[0].member_id.clone(),
        ..static_join("a", "i9")
    });
    assert_eq!(unknown_instance.error, Some(GroupError::UnknownMemberId));
    let fenced = h.join_now(JoinRequest {
        member_id: joined[0].member_id.clone(),
        ..static_join("a", "i2")
    });
    assert_eq!(fenced.error, Some(GroupError::FencedInstanceId));
}
