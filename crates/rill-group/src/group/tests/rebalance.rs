//! Timers: session expiry, rebalance timeout, the new-member join timeout and deadlines.

use std::time::Duration;

use super::{Harness, REBALANCE, SESSION, join_answer, join_request, rejoin, secs};
use crate::{GroupConfig, GroupError, GroupState, JoinRequest};

#[test]
fn a_member_that_stops_heartbeating_is_removed_and_the_others_rebalance() {
    let mut h = Harness::kafka_defaults();
    let joined = h.stable_group(&["a", "b"]);
    let (a, b) = (&joined[0], &joined[1]);
    // a heartbeats every 3 s; b has gone silent.
    for _ in 0..3 {
        let _ = h.advance(secs(3));
        assert_eq!(h.heartbeat(&a.member_id, 1), Ok(()));
    }
    assert_eq!(h.group.state(), GroupState::Stable);
    let _ = h.advance(secs(3));
    assert_eq!(h.group.state(), GroupState::PreparingRebalance, "b expired");
    assert_eq!(
        h.heartbeat(&b.member_id, 1),
        Err(GroupError::UnknownMemberId)
    );
    assert_eq!(
        h.heartbeat(&a.member_id, 1),
        Err(GroupError::RebalanceInProgress)
    );

    let (ra, effects) = h.join(rejoin(&a.member_id, "a"));
    let a2 = join_answer(&effects, ra);
    assert_eq!(a2.generation_id, 2);
    assert_eq!(a2.members.len(), 1);
}

#[test]
fn heartbeats_keep_a_member_alive_past_its_session_timeout() {
    let mut h = Harness::kafka_defaults();
    let joined = h.stable_group(&["a"]);
    for _ in 0..20 {
        let _ = h.advance(SESSION / 2);
        assert_eq!(h.heartbeat(&joined[0].member_id, 1), Ok(()));
    }
    assert_eq!(h.group.state(), GroupState::Stable);
}

#[test]
fn a_lapsed_session_counts_even_before_the_tick_that_expires_it() {
    let mut h = Harness::kafka_defaults();
    let joined = h.stable_group(&["a"]);
    h.now += SESSION;
    let result = h.group.heartbeat(h.now, &joined[0].member_id, 1, None);
    assert_eq!(result, Err(GroupError::UnknownMemberId));
}

#[test]
fn a_member_that_does_not_rejoin_within_the_rebalance_timeout_is_dropped() {
    let mut h = Harness::kafka_defaults();
    let joined = h.stable_group(&["a", "b"]);
    let (a, b) = (&joined[0], &joined[1]);
    let (ra, _) = h.join(rejoin(&a.member_id, "a"));
    // b keeps heartbeating (its heartbeats say REBALANCE_IN_PROGRESS) but never rejoins.
    let mut effects = Vec::new();
    for _ in 0..REBALANCE.as_secs() / 5 - 1 {
        effects.extend(h.advance(secs(5)));
        assert_eq!(
            h.heartbeat(&b.member_id, 1),
            Err(GroupError::RebalanceInProgress)
        );
    }
    assert!(effects.is_empty());
    let effects = h.advance(secs(5));
    let a2 = join_answer(&effects, ra);
    assert_eq!(a2.generation_id, 2);
    assert_eq!(a2.members.len(), 1);
    assert_eq!(
        h.heartbeat(&b.member_id, 1),
        Err(GroupError::UnknownMemberId)
    );
}

#[test]
fn the_rebalance_timeout_is_the_longest_among_the_members() {
    let mut h = Harness::kafka_defaults();
    let joined = h.form(vec![
        join_request("a"),
        JoinRequest {
            rebalance_timeout: secs(100),
            ..join_request("b")
        },
    ]);
    let _ = h.stabilize(&joined);
    let _ = h.join(rejoin(&joined[0].member_id, "a"));
    // b stays alive but does not rejoin: the join phase lasts b's 100 s.
    for _ in 0..19 {
        let _ = h.advance(secs(5));
        assert_eq!(
            h.heartbeat(&joined[1].member_id, 1),
            Err(GroupError::RebalanceInProgress)
        );
    }
    assert_eq!(h.group.state(), GroupState::PreparingRebalance);
    let _ = h.advance(secs(5));
    assert_eq!(h.group.state(), GroupState::CompletingRebalance);
}

#[test]
fn a_new_member_parked_for_longer_than_the_new_member_timeout_is_dropped() {
    let mut h = Harness::new(GroupConfig {
        new_member_join_timeout: secs(60),
        ..GroupConfig::default()
    });
    let joined = h.form(vec![JoinRequest {
        rebalance_timeout: secs(600),
        ..join_request("a")
    }]);
    let _ = h.stabilize(&joined);
    let (rb, _) = h.join(join_request("b"));
    // a stays alive through heartbeats but never rejoins, so the join phase lasts 600 s.
    let mut effects = Vec::new();
    for _ in 0..12 {
        let _ = h.heartbeat(&joined[0].member_id, 1);
        effects.extend(h.advance(secs(5)));
    }
    let b = join_answer(&effects, rb);
    assert_eq!(b.error, Some(GroupError::UnknownMemberId));
    assert_eq!(b.member_id, "", "the client starts over with a fresh id");
    assert_eq!(h.group.state(), GroupState::PreparingRebalance);
    // a goes silent too: its session ends the rebalance with nobody left.
    let _ = h.advance(secs(600));
    assert_eq!(h.group.state(), GroupState::Empty);
}

#[test]
fn when_every_member_is_gone_the_group_becomes_empty_at_the_next_generation() {
    let mut h = Harness::kafka_defaults();
    let _ = h.stable_group(&["a"]);
    let _ = h.advance(SESSION);
    assert_eq!(h.group.state(), GroupState::Empty);
    assert_eq!(h.group.generation_id(), 2);
    assert_eq!(
        h.group.protocol_type(),
        Some("consumer"),
        "kept while Empty"
    );
    assert_eq!(h.group.next_deadline(), None);
    assert!(h.group.is_empty());
}

#[test]
fn a_late_tick_fires_each_timer_at_its_own_deadline() {
    let mut h = Harness::kafka_defaults();
    let (ra, _) = h.join(join_request("a"));
    // One tick long after everything: the join completes at 3 s, the member's session then
    // runs from 3 s and expires at 13 s, and the group ends Empty.
    let effects = h.advance(secs(3600));
    assert_eq!(join_answer(&effects, ra).generation_id, 1);
    assert_eq!(h.group.state(), GroupState::Empty);
    assert_eq!(h.group.generation_id(), 2);
}

#[test]
fn next_deadline_tracks_the_earliest_timer() {
    let mut h = Harness::kafka_defaults();
    assert_eq!(h.group.next_deadline(), None);
    let _ = h.join(join_request("a"));
    assert_eq!(h.group.next_deadline(), Some(h.now + secs(3)));
    let _ = h.advance(secs(3));
    // CompletingRebalance: the session (10 s) comes before the sync deadline (30 s).
    assert_eq!(h.group.next_deadline(), Some(h.now + SESSION));
    let _ = h.advance(Duration::from_millis(500));
    h.drain();
}
