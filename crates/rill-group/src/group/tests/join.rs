//! JoinGroup: leaders, the initial delay, KIP-394, protocol election and join errors.

use std::time::Duration;

use super::{
    DELAY, Harness, SESSION, join_answer, join_request, protocols, rejoin, secs, sync_request,
};
use crate::{GroupConfig, GroupError, GroupState, JoinRequest};

#[test]
fn first_member_becomes_leader_and_gets_every_members_metadata() {
    let mut h = Harness::kafka_defaults();
    let (request, effects) = h.join(join_request("a"));
    assert!(
        effects.is_empty(),
        "the initial rebalance waits for its delay"
    );
    assert_eq!(h.group.state(), GroupState::PreparingRebalance);
    assert_eq!(h.group.next_deadline(), Some(h.now + DELAY));

    assert!(h.advance(DELAY - Duration::from_millis(1)).is_empty());
    let effects = h.advance(Duration::from_millis(1));
    let a = join_answer(&effects, request);
    assert_eq!(a.error, None);
    assert_eq!(a.generation_id, 1);
    assert!(a.member_id.starts_with("a-"), "{}", a.member_id);
    assert_eq!(a.leader, a.member_id);
    assert_eq!(a.protocol_type.as_deref(), Some("consumer"));
    assert_eq!(a.protocol_name.as_deref(), Some("range"));
    assert_eq!(a.members.len(), 1);
    assert_eq!(a.members[0].member_id, a.member_id);
    assert_eq!(&a.members[0].metadata[..], b"range:a");
    assert_eq!(h.group.state(), GroupState::CompletingRebalance);
}

#[test]
fn two_members_joining_during_the_initial_delay_land_in_one_generation() {
    let mut h = Harness::kafka_defaults();
    let (ra, _) = h.join(join_request("a"));
    assert!(h.advance(secs(1)).is_empty());
    let (rb, effects) = h.join(join_request("b"));
    assert!(effects.is_empty());
    // At 3 s a new member has arrived since the start: the delay is extended by 3 s.
    assert!(h.advance(secs(2)).is_empty());
    assert_eq!(h.group.state(), GroupState::PreparingRebalance);
    let effects = h.advance(secs(3));
    let (a, b) = (join_answer(&effects, ra), join_answer(&effects, rb));
    assert_eq!((a.generation_id, b.generation_id), (1, 1));
    assert_eq!(a.leader, a.member_id);
    assert_eq!(b.leader, a.member_id);
    assert_eq!(a.members.len(), 2, "the leader gets every member");
    assert!(b.members.is_empty(), "followers get no member list");
    assert_eq!(&a.members[1].metadata[..], b"range:b");
}

#[test]
fn the_initial_delay_is_extended_at_most_up_to_the_rebalance_timeout() {
    let config = GroupConfig {
        initial_rebalance_delay: secs(3),
        ..GroupConfig::default()
    };
    let mut h = Harness::new(config);
    let short = JoinRequest {
        rebalance_timeout: secs(5),
        ..join_request("a")
    };
    let (ra, _) = h.join(short);
    let _ = h.advance(secs(2));
    let _ = h.join(join_request("b"));
    // Extended at 3 s, but only by the 2 s left of a's 5 s rebalance timeout.
    assert!(h.advance(secs(1)).is_empty());
    assert_eq!(h.group.next_deadline(), Some(h.now + secs(2)));
    let _ = h.advance(secs(1));
    let (rc, _) = h.join(join_request("c"));
    let effects = h.advance(secs(1));
    assert_eq!(join_answer(&effects, ra).members.len(), 3);
    assert_eq!(join_answer(&effects, rc).generation_id, 1);
}

#[test]
fn a_zero_initial_delay_completes_the_join_within_the_call() {
    let mut h = Harness::new(GroupConfig {
        initial_rebalance_delay: Duration::ZERO,
        ..GroupConfig::default()
    });
    let a = h.join_now(join_request("a"));
    assert_eq!((a.error, a.generation_id), (None, 1));
}

#[test]
fn member_id_required_then_rejoin_with_the_given_id() {
    let mut h = Harness::kafka_defaults();
    let first = h.join_now(JoinRequest {
        require_known_member_id: true,
        ..join_request("a")
    });
    assert_eq!(first.error, Some(GroupError::MemberIdRequired));
    assert!(first.member_id.starts_with("a-"), "{}", first.member_id);
    assert_eq!(first.generation_id, -1);
    assert_eq!(h.group.state(), GroupState::Empty);
    assert!(!h.group.is_empty(), "a pending member counts");

    let joined = h.form(vec![JoinRequest {
        require_known_member_id: true,
        ..rejoin(&first.member_id, "a")
    }]);
    assert_eq!(joined[0].member_id, first.member_id);
    assert_eq!(joined[0].leader, first.member_id);
    assert_eq!(joined[0].generation_id, 1);
}

#[test]
fn a_pending_member_that_never_rejoins_expires_after_its_session_timeout() {
    let mut h = Harness::kafka_defaults();
    let first = h.join_now(JoinRequest {
        require_known_member_id: true,
        ..join_request("a")
    });
    assert_eq!(h.group.next_deadline(), Some(h.now + SESSION));
    let _ = h.advance(SESSION);
    assert!(h.group.is_empty());
    assert_eq!(h.group.next_deadline(), None);
    let late = h.join_now(rejoin(&first.member_id, "a"));
    assert_eq!(late.error, Some(GroupError::UnknownMemberId));
}

#[test]
fn a_pending_member_holds_the_join_phase_open_until_it_rejoins() {
    let mut h = Harness::kafka_defaults();
    let joined = h.stable_group(&["a", "b"]);
    let (a, b) = (&joined[0], &joined[1]);
    let (ra, _) = h.join(rejoin(&a.member_id, "a"));
    let c = h.join_now(JoinRequest {
        require_known_member_id: true,
        ..join_request("c")
    });
    assert_eq!(c.error, Some(GroupError::MemberIdRequired));
    let (rb, effects) = h.join(rejoin(&b.member_id, "b"));
    assert!(effects.is_empty(), "c is still pending");
    let (rc, effects) = h.join(rejoin(&c.member_id, "c"));
    for request in [ra, rb, rc] {
        assert_eq!(join_answer(&effects, request).generation_id, 2);
    }
    assert_eq!(join_answer(&effects, ra).members.len(), 3);
}

#[test]
fn the_protocol_is_elected_by_votes_among_those_every_member_supports() {
    let mut h = Harness::kafka_defaults();
    let joined = h.form(vec![
        JoinRequest {
            protocols: protocols("a", &["range", "roundrobin"]),
            ..join_request("a")
        },
        JoinRequest {
            protocols: protocols("b", &["roundrobin", "range"]),
            ..join_request("b")
        },
        JoinRequest {
            protocols: protocols("c", &["sticky", "range", "roundrobin"]),
            ..join_request("c")
        },
    ]);
    // sticky is not common; votes: range (a, c), roundrobin (b).
    assert_eq!(joined[0].protocol_name.as_deref(), Some("range"));
    assert_eq!(&joined[0].members[2].metadata[..], b"range:c");

    let mut h = Harness::kafka_defaults();
    let joined = h.form(vec![
        JoinRequest {
            protocols: protocols("a", &["sticky", "range"]),
            ..join_request("a")
        },
        JoinRequest {
            protocols: protocols("b", &["roundrobin", "sticky"]),
            ..join_request("b")
        },
        JoinRequest {
            protocols: protocols("c", &["roundrobin", "sticky"]),
            ..join_request("c")
        },
    ]);
    assert_eq!(joined[1].protocol_name.as_deref(), Some("sticky"));
}

#[test]
fn inconsistent_protocol_type_or_protocols_are_refused() {
    let mut h = Harness::kafka_defaults();
    let empty = h.join_now(JoinRequest {
        protocols: Vec::new(),
        ..join_request("x")
    });
    assert_eq!(empty.error, Some(GroupError::InconsistentGroupProtocol));

    let (ra, _) = h.join(JoinRequest {
        protocols: protocols("a", &["range", "roundrobin"]),
        ..join_request("a")
    });
    let other_type = h.join_now(JoinRequest {
        protocol_type: "connect".into(),
        ..join_request("b")
    });
    assert_eq!(
        other_type.error,
        Some(GroupError::InconsistentGroupProtocol)
    );
    assert_eq!(other_type.member_id, "");
    let disjoint = h.join_now(JoinRequest {
        protocols: protocols("c", &["sticky"]),
        ..join_request("c")
    });
    assert_eq!(disjoint.error, Some(GroupError::InconsistentGroupProtocol));

    let effects = h.advance(DELAY);
    let a = join_answer(&effects, ra);
    let changed = h.join_now(JoinRequest {
        protocol_type: "connect".into(),
        ..rejoin(&a.member_id, "a")
    });
    assert_eq!(changed.error, Some(GroupError::InconsistentGroupProtocol));
    assert_eq!(changed.member_id, a.member_id);
}

#[test]
fn session_timeouts_outside_the_configured_range_are_refused() {
    let mut h = Harness::kafka_defaults();
    for session in [secs(5), secs(30 * 60 + 1)] {
        let response = h.join_now(JoinRequest {
            session_timeout: session,
            ..join_request("a")
        });
        assert_eq!(response.error, Some(GroupError::InvalidSessionTimeout));
    }
    for session in [secs(6), secs(30 * 60)] {
        let (_, effects) = h.join(JoinRequest {
            session_timeout: session,
            ..join_request("a")
        });
        assert!(effects.is_empty(), "accepted and parked");
    }
    h.drain();
}

#[test]
fn an_unknown_member_id_is_refused() {
    let mut h = Harness::kafka_defaults();
    let response = h.join_now(rejoin("ghost", "a"));
    assert_eq!(response.error, Some(GroupError::UnknownMemberId));
    assert_eq!(response.member_id, "ghost");
}

#[test]
fn a_member_joining_mid_rebalance_lands_in_the_next_generation() {
    let mut h = Harness::kafka_defaults();
    let joined = h.stable_group(&["a", "b"]);
    let (a, b) = (&joined[0], &joined[1]);

    let (rc, effects) = h.join(join_request("c"));
    assert!(effects.is_empty());
    assert_eq!(h.group.state(), GroupState::PreparingRebalance);
    assert_eq!(
        h.heartbeat(&a.member_id, 1),
        Err(GroupError::RebalanceInProgress)
    );
    let (ra, effects) = h.join(rejoin(&a.member_id, "a"));
    assert!(effects.is_empty());
    let (rb, effects) = h.join(rejoin(&b.member_id, "b"));
    let c = join_answer(&effects, rc);
    assert_eq!(c.generation_id, 2);
    assert_eq!(c.leader, a.member_id, "the leader is kept");
    assert_eq!(join_answer(&effects, ra).members.len(), 3);
    assert_eq!(join_answer(&effects, rb).generation_id, 2);
}

#[test]
fn a_member_joining_while_completing_cancels_the_parked_syncs() {
    let mut h = Harness::kafka_defaults();
    let joined = h.form(vec![join_request("a"), join_request("b")]);
    let b = &joined[1];
    let (rb, effects) = h.sync(sync_request(&b.member_id, 1));
    assert!(effects.is_empty());
    let (_, effects) = h.join(join_request("c"));
    assert_eq!(
        super::sync_answer(&effects, rb).error,
        Some(GroupError::RebalanceInProgress)
    );
    assert_eq!(h.group.state(), GroupState::PreparingRebalance);
    h.drain();
}

#[test]
fn followers_rejoining_unchanged_get_the_current_generation_but_the_leader_rebalances() {
    let mut h = Harness::kafka_defaults();
    let joined = h.stable_group(&["a", "b"]);
    let (a, b) = (&joined[0], &joined[1]);
    let again = h.join_now(rejoin(&b.member_id, "b"));
    assert_eq!((again.error, again.generation_id), (None, 1));
    assert!(again.members.is_empty());
    assert_eq!(h.group.state(), GroupState::Stable);

    let (_, effects) = h.join(rejoin(&a.member_id, "a"));
    assert!(effects.is_empty());
    assert_eq!(h.group.state(), GroupState::PreparingRebalance);
    h.drain();
}

#[test]
fn a_lost_join_answer_is_given_again_while_completing() {
    let mut h = Harness::kafka_defaults();
    let joined = h.form(vec![join_request("a"), join_request("b")]);
    let again = h.join_now(rejoin(&joined[0].member_id, "a"));
    assert_eq!(again.generation_id, 1);
    assert_eq!(again.members.len(), 2, "the leader gets the members again");
    assert_eq!(h.group.state(), GroupState::CompletingRebalance);
}

#[test]
fn a_second_join_from_the_same_member_supersedes_the_first() {
    let mut h = Harness::kafka_defaults();
    let joined = h.stable_group(&["a", "b"]);
    let (first, _) = h.join(rejoin(&joined[0].member_id, "a"));
    let (second, effects) = h.join(rejoin(&joined[0].member_id, "a"));
    assert_eq!(
        join_answer(&effects, first).error,
        Some(GroupError::RebalanceInProgress)
    );
    assert!(h.is_outstanding(second));
    h.drain();
}

#[test]
fn group_max_size_refuses_members_beyond_it() {
    let mut h = Harness::new(GroupConfig {
        max_size: Some(2),
        ..GroupConfig::default()
    });
    let joined = h.stable_group(&["a", "b"]);
    let c = h.join_now(join_request("c"));
    assert_eq!(c.error, Some(GroupError::GroupMaxSizeReached));
    assert_eq!(c.member_id, "");
    assert_eq!(h.group.state(), GroupState::Stable);

    // While rebalancing, the members that rejoined count: a newcomer takes a straggler's place.
    let (ra, _) = h.join(rejoin(&joined[0].member_id, "a"));
    let (rc, _) = h.join(join_request("c"));
    let (rb, effects) = h.join(rejoin(&joined[1].member_id, "b"));
    assert_eq!(
        join_answer(&effects, rb).error,
        Some(GroupError::GroupMaxSizeReached)
    );
    // b is gone, so everyone left has rejoined.
    assert_eq!(join_answer(&effects, ra).members.len(), 2);
    assert_eq!(join_answer(&effects, rc).generation_id, 2);
}

#[test]
fn a_dead_group_answers_coordinator_not_available() {
    let mut h = Harness::kafka_defaults();
    assert_eq!(h.group.delete(), Ok(()));
    let response = h.join_now(join_request("a"));
    assert_eq!(response.error, Some(GroupError::CoordinatorNotAvailable));
}
