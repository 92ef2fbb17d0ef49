//! SyncGroup: deferred follower syncs, stored assignments, validation and pending-sync
//! expiry.

use bytes::Bytes;

use super::{
    Harness, REBALANCE, assignment_for, join_answer, join_request, rejoin, secs, sync_answer,
    sync_request,
};
use crate::{GroupError, GroupState, SyncRequest};

#[test]
fn a_sync_before_the_leader_is_deferred_then_answered_with_the_leaders_assignment() {
    let mut h = Harness::kafka_defaults();
    let joined = h.form(vec![join_request("a"), join_request("b")]);
    let (a, b) = (&joined[0], &joined[1]);
    let (rb, effects) = h.sync(sync_request(&b.member_id, 1));
    assert!(effects.is_empty(), "b waits for the leader");
    assert_eq!(h.group.state(), GroupState::CompletingRebalance);

    let (ra, effects) = h.sync(SyncRequest {
        assignments: vec![
            (a.member_id.clone(), Bytes::from_static(b"p0")),
            (b.member_id.clone(), Bytes::from_static(b"p1")),
        ],
        protocol_name: Some("range".into()),
        ..sync_request(&a.member_id, 1)
    });
    let (sa, sb) = (sync_answer(&effects, ra), sync_answer(&effects, rb));
    assert_eq!((sa.error, &sa.assignment[..]), (None, &b"p0"[..]));
    assert_eq!((sb.error, &sb.assignment[..]), (None, &b"p1"[..]));
    assert_eq!(sb.protocol_type.as_deref(), Some("consumer"));
    assert_eq!(sb.protocol_name.as_deref(), Some("range"));
    assert_eq!(h.group.state(), GroupState::Stable);

    let description = h.group.describe();
    assert_eq!(description.protocol, "range");
    assert_eq!(&description.members[1].assignment[..], b"p1");
    assert_eq!(&description.members[1].metadata[..], b"range:b");
}

#[test]
fn members_the_leader_left_out_get_an_empty_assignment() {
    let mut h = Harness::kafka_defaults();
    let joined = h.form(vec![join_request("a"), join_request("b")]);
    let (rb, _) = h.sync(sync_request(&joined[1].member_id, 1));
    let (_, effects) = h.sync(SyncRequest {
        assignments: vec![(
            joined[0].member_id.clone(),
            assignment_for(&joined[0].member_id),
        )],
        ..sync_request(&joined[0].member_id, 1)
    });
    let sb = sync_answer(&effects, rb);
    assert_eq!(sb.error, None);
    assert!(sb.assignment.is_empty());
}

#[test]
fn a_stable_group_hands_out_the_stored_assignment() {
    let mut h = Harness::kafka_defaults();
    let joined = h.stable_group(&["a", "b"]);
    let again = h.sync_now(sync_request(&joined[1].member_id, 1));
    assert_eq!(again.error, None);
    assert_eq!(again.assignment, assignment_for(&joined[1].member_id));
}

#[test]
fn sync_errors_as_kafka_returns_them() {
    let mut h = Harness::kafka_defaults();
    assert_eq!(
        h.sync_now(sync_request("ghost", 0)).error,
        Some(GroupError::UnknownMemberId),
        "an Empty group knows no member"
    );
    let joined = h.stable_group(&["a", "b"]);
    let a = &joined[0];
    assert_eq!(
        h.sync_now(sync_request("ghost", 1)).error,
        Some(GroupError::UnknownMemberId)
    );
    assert_eq!(
        h.sync_now(sync_request(&a.member_id, 7)).error,
        Some(GroupError::IllegalGeneration)
    );
    let wrong_name = SyncRequest {
        protocol_name: Some("roundrobin".into()),
        ..sync_request(&a.member_id, 1)
    };
    assert_eq!(
        h.sync_now(wrong_name).error,
        Some(GroupError::InconsistentGroupProtocol)
    );
    let wrong_type = SyncRequest {
        protocol_type: Some("connect".into()),
        ..sync_request(&a.member_id, 1)
    };
    assert_eq!(
        h.sync_now(wrong_type).error,
        Some(GroupError::InconsistentGroupProtocol)
    );

    let _ = h.join(join_request("c"));
    assert_eq!(
        h.sync_now(sync_request(&a.member_id, 1)).error,
        Some(GroupError::RebalanceInProgress)
    );
    h.drain();
}

#[test]
fn a_leader_that_never_syncs_is_removed_and_the_parked_syncs_are_cancelled() {
    let mut h = Harness::kafka_defaults();
    let joined = h.form(vec![join_request("a"), join_request("b")]);
    let (a, b) = (&joined[0], &joined[1]);
    let (rb, _) = h.sync(sync_request(&b.member_id, 1));
    // The leader keeps heartbeating but never sends SyncGroup.
    let mut effects = Vec::new();
    for _ in 0..REBALANCE.as_secs() / 5 {
        assert_eq!(h.heartbeat(&a.member_id, 1), Ok(()));
        effects.extend(h.advance(secs(5)));
    }
    assert_eq!(
        sync_answer(&effects, rb).error,
        Some(GroupError::RebalanceInProgress)
    );
    assert_eq!(
        h.heartbeat(&a.member_id, 1),
        Err(GroupError::UnknownMemberId)
    );
    assert_eq!(h.group.state(), GroupState::PreparingRebalance);

    let (rb, effects) = h.join(rejoin(&b.member_id, "b"));
    let b2 = join_answer(&effects, rb);
    assert_eq!(b2.generation_id, 2);
    assert_eq!(b2.leader, b.member_id, "b takes over as leader");
}

#[test]
fn a_second_sync_from_the_same_member_supersedes_the_first() {
    let mut h = Harness::kafka_defaults();
    let joined = h.form(vec![join_request("a"), join_request("b")]);
    let (first, _) = h.sync(sync_request(&joined[1].member_id, 1));
    let (second, effects) = h.sync(sync_request(&joined[1].member_id, 1));
    assert_eq!(
        sync_answer(&effects, first).error,
        Some(GroupError::RebalanceInProgress)
    );
    assert!(h.is_outstanding(second));
    let _ = h.stabilize(&joined[..1]);
    assert!(!h.is_outstanding(second));
}
