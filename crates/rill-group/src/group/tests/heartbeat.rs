//! Heartbeat in each state, OffsetCommit validation, DescribeGroups, DeleteGroups, unload.

use super::{Harness, SESSION, join_answer, join_request, rejoin, secs, static_join, sync_request};
use crate::{Effect, GroupError, GroupState};

#[test]
fn heartbeat_errors_in_each_state() {
    let mut h = Harness::kafka_defaults();
    // Empty.
    assert_eq!(h.heartbeat("ghost", 0), Err(GroupError::UnknownMemberId));

    // PreparingRebalance (the initial one): the member has no id to heartbeat with yet.
    let (ra, _) = h.join(join_request("a"));
    assert_eq!(h.heartbeat("ghost", 0), Err(GroupError::UnknownMemberId));

    // CompletingRebalance: heartbeats after the join answer are normal heartbeats.
    let effects = h.advance(secs(3));
    let a = join_answer(&effects, ra);
    assert_eq!(h.group.state(), GroupState::CompletingRebalance);
    assert_eq!(h.heartbeat(&a.member_id, 1), Ok(()));
    assert_eq!(
        h.heartbeat(&a.member_id, 0),
        Err(GroupError::IllegalGeneration)
    );
    assert_eq!(h.heartbeat("ghost", 1), Err(GroupError::UnknownMemberId));

    // Stable.
    let _ = h.stabilize(std::slice::from_ref(&a));
    assert_eq!(h.heartbeat(&a.member_id, 1), Ok(()));
    assert_eq!(
        h.heartbeat(&a.member_id, 2),
        Err(GroupError::IllegalGeneration)
    );

    // PreparingRebalance: a known member of the current generation must rejoin.
    let (rb, _) = h.join(join_request("b"));
    assert_eq!(
        h.heartbeat(&a.member_id, 1),
        Err(GroupError::RebalanceInProgress)
    );
    assert_eq!(
        h.heartbeat(&a.member_id, 0),
        Err(GroupError::IllegalGeneration)
    );
    let (_, effects) = h.join(rejoin(&a.member_id, "a"));
    assert_eq!(join_answer(&effects, rb).generation_id, 2);

    // Dead.
    let _ = h.group.unload();
    assert_eq!(
        h.heartbeat(&a.member_id, 2),
        Err(GroupError::CoordinatorNotAvailable)
    );
}

#[test]
fn heartbeat_checks_the_instance_id_before_the_generation() {
    let mut h = Harness::kafka_defaults();
    let joined = h.form(vec![static_join("s", "i1"), static_join("t", "i2")]);
    let (s, t) = (&joined[0].member_id, &joined[1].member_id);
    assert_eq!(
        h.group.heartbeat(h.now, s, 99, Some("i2")),
        Err(GroupError::FencedInstanceId)
    );
    assert_eq!(
        h.group.heartbeat(h.now, s, 99, Some("i9")),
        Err(GroupError::UnknownMemberId)
    );
    assert_eq!(
        h.group.heartbeat(h.now, t, 99, Some("i2")),
        Err(GroupError::IllegalGeneration)
    );
    assert_eq!(h.group.heartbeat(h.now, t, 1, Some("i2")), Ok(()));
}

#[test]
fn offset_commit_validation() {
    let mut h = Harness::kafka_defaults();
    let g = |h: &Harness, member: &str, generation: i32| {
        h.group.validate_offset_commit(member, generation, None)
    };
    // Empty: standalone consumers commit with generation -1.
    assert_eq!(g(&h, "", -1), Ok(()));
    assert_eq!(g(&h, "anyone", -1), Ok(()));
    assert_eq!(g(&h, "", 0), Err(GroupError::UnknownMemberId));

    let joined = h.form(vec![join_request("a"), join_request("b")]);
    let a = &joined[0].member_id;
    // CompletingRebalance: a valid member must wait for its assignment.
    assert_eq!(g(&h, a, 1), Err(GroupError::RebalanceInProgress));
    assert_eq!(g(&h, "", -1), Err(GroupError::UnknownMemberId));

    let _ = h.stabilize(&joined);
    assert_eq!(g(&h, a, 1), Ok(()));
    assert_eq!(g(&h, a, 0), Err(GroupError::IllegalGeneration));
    assert_eq!(g(&h, "ghost", 1), Err(GroupError::UnknownMemberId));
    assert_eq!(
        g(&h, "", -1),
        Err(GroupError::UnknownMemberId),
        "members only"
    );

    // PreparingRebalance: commits of the current generation are still allowed.
    let _ = h.join(join_request("c"));
    assert_eq!(g(&h, a, 1), Ok(()));

    let _ = h.group.unload();
    assert_eq!(g(&h, a, 1), Err(GroupError::CoordinatorNotAvailable));
}

#[test]
fn offset_commits_keep_the_session_alive() {
    let mut h = Harness::kafka_defaults();
    let joined = h.stable_group(&["a"]);
    let a = &joined[0].member_id;
    for _ in 0..5 {
        let _ = h.advance(SESSION / 2);
        assert_eq!(h.group.offset_commit(h.now, a, 1, None), Ok(()));
    }
    assert_eq!(h.group.state(), GroupState::Stable);
    let _ = h.advance(SESSION);
    assert_eq!(
        h.group.offset_commit(h.now, a, 1, None),
        Err(GroupError::UnknownMemberId)
    );
}

#[test]
fn describe_shows_metadata_only_while_stable() {
    let mut h = Harness::kafka_defaults();
    let joined = h.form(vec![join_request("a")]);
    let described = h.group.describe();
    assert_eq!(described.state, GroupState::CompletingRebalance);
    assert_eq!(
        (
            described.protocol_type.as_str(),
            described.protocol.as_str()
        ),
        ("consumer", "")
    );
    assert!(described.members[0].metadata.is_empty());
    assert_eq!(described.members[0].client_id, "a");

    let _ = h.stabilize(&joined);
    let described = h.group.describe();
    assert_eq!(described.state.kafka_name(), "Stable");
    assert_eq!(described.protocol, "range");
    assert_eq!(&described.members[0].metadata[..], b"range:a");
}

#[test]
fn only_an_empty_group_can_be_deleted() {
    let mut h = Harness::kafka_defaults();
    let joined = h.stable_group(&["a"]);
    assert_eq!(h.group.delete(), Err(GroupError::NonEmptyGroup));
    let _ = h.leave(&[(&joined[0].member_id, None)]);
    assert_eq!(h.group.state(), GroupState::Empty);
    assert_eq!(h.group.delete(), Ok(()));
    assert_eq!(h.group.state(), GroupState::Dead);
    assert_eq!(h.group.delete(), Err(GroupError::GroupIdNotFound));
    assert_eq!(h.group.next_deadline(), None);
}

#[test]
fn unload_answers_every_parked_request_with_not_coordinator() {
    let mut h = Harness::kafka_defaults();
    let joined = h.form(vec![join_request("a"), join_request("b")]);
    let (rb, _) = h.sync(sync_request(&joined[1].member_id, 1));
    let effects = h.group.unload();
    assert!(matches!(
        effects.as_slice(),
        [Effect::Sync { request, response }]
            if *request == rb && response.error == Some(GroupError::NotCoordinator)
    ));

    let mut h = Harness::kafka_defaults();
    let (ra, _) = h.join(join_request("a"));
    let effects = h.group.unload();
    assert!(matches!(
        effects.as_slice(),
        [Effect::Join { request, response }]
            if *request == ra && response.error == Some(GroupError::NotCoordinator)
    ));
    assert_eq!(h.group.state(), GroupState::Dead);
}
