//! LeaveGroup.

use super::{Harness, join_answer, join_request, rejoin, sync_answer, sync_request};
use crate::{GroupError, GroupState, JoinRequest};

#[test]
fn a_leave_completes_the_join_the_others_were_waiting_for() {
    let mut h = Harness::kafka_defaults();
    let joined = h.stable_group(&["a", "b"]);
    let (ra, effects) = h.join(rejoin(&joined[0].member_id, "a"));
    assert!(effects.is_empty(), "waiting for b to rejoin");
    let (results, effects) = h.leave(&[(&joined[1].member_id, None)]);
    assert_eq!(results, vec![Ok(())]);
    let a = join_answer(&effects, ra);
    assert_eq!((a.generation_id, a.members.len()), (2, 1));
}

#[test]
fn a_stable_group_rebalances_when_a_member_leaves() {
    let mut h = Harness::kafka_defaults();
    let joined = h.stable_group(&["a", "b"]);
    let (results, effects) = h.leave(&[(&joined[0].member_id, None)]);
    assert_eq!(results, vec![Ok(())]);
    assert!(effects.is_empty());
    assert_eq!(h.group.state(), GroupState::PreparingRebalance);
    assert_eq!(
        h.group.leader(),
        Some(joined[1].member_id.as_str()),
        "leadership passes on"
    );
    let (rb, effects) = h.join(rejoin(&joined[1].member_id, "b"));
    assert_eq!(join_answer(&effects, rb).leader, joined[1].member_id);
}

#[test]
fn the_last_member_leaving_empties_the_group() {
    let mut h = Harness::kafka_defaults();
    let joined = h.stable_group(&["a"]);
    let (results, _) = h.leave(&[(&joined[0].member_id, None)]);
    assert_eq!(results, vec![Ok(())]);
    assert_eq!(h.group.state(), GroupState::Empty);
    assert_eq!(h.group.generation_id(), 2);
    assert!(h.group.is_empty());
}

#[test]
fn leave_answers_one_result_per_member_in_order() {
    let mut h = Harness::kafka_defaults();
    let joined = h.stable_group(&["a", "b", "c"]);
    let (results, _) = h.leave(&[
        ("ghost", None),
        (&joined[1].member_id, None),
        (&joined[1].member_id, None),
        ("", None),
        (&joined[2].member_id, None),
    ]);
    assert_eq!(
        results,
        vec![
            Err(GroupError::UnknownMemberId),
            Ok(()),
            Err(GroupError::UnknownMemberId),
            Err(GroupError::UnknownMemberId),
            Ok(()),
        ]
    );
    assert_eq!(h.group.describe().members.len(), 1);
}

#[test]
fn a_pending_member_can_leave() {
    let mut h = Harness::kafka_defaults();
    let pending = h.join_now(JoinRequest {
        require_known_member_id: true,
        ..join_request("a")
    });
    let (results, _) = h.leave(&[(&pending.member_id, None)]);
    assert_eq!(results, vec![Ok(())]);
    assert!(h.group.is_empty());
    assert_eq!(h.group.next_deadline(), None);
}

#[test]
fn leaving_while_parked_in_sync_answers_every_parked_sync() {
    let mut h = Harness::kafka_defaults();
    let joined = h.form(vec![
        join_request("a"),
        join_request("b"),
        join_request("c"),
    ]);
    let (rb, _) = h.sync(sync_request(&joined[1].member_id, 1));
    let (rc, _) = h.sync(sync_request(&joined[2].member_id, 1));
    let (results, effects) = h.leave(&[(&joined[1].member_id, None)]);
    assert_eq!(results, vec![Ok(())]);
    assert_eq!(
        sync_answer(&effects, rb).error,
        Some(GroupError::UnknownMemberId)
    );
    assert_eq!(
        sync_answer(&effects, rc).error,
        Some(GroupError::RebalanceInProgress)
    );
    h.drain();
}

#[test]
fn a_dead_group_refuses_leaves() {
    let mut h = Harness::kafka_defaults();
    let _ = h.group.unload();
    let (results, _) = h.leave(&[("a", None), ("", Some("i"))]);
    assert_eq!(
        results,
        vec![
            Err(GroupError::CoordinatorNotAvailable),
            Err(GroupError::CoordinatorNotAvailable)
        ]
    );
}
