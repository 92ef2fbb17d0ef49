//! Cooperative incremental rebalancing (KIP-429): the broker needs no special logic, but the
//! clients' immediate second join round must work.

use bytes::Bytes;

use super::{Harness, join_answer, rejoin, sync_answer, sync_request};
use crate::{GroupError, GroupState, JoinRequest, Protocol, SyncRequest};

/// `cooperative-sticky` with the partitions the client owns in its subscription metadata.
fn cooperative(member_id: &str, client: &str, owned: &str) -> JoinRequest {
    JoinRequest {
        protocols: vec![Protocol {
            name: "cooperative-sticky".into(),
            metadata: Bytes::from(format!("topic|owned={owned}")),
        }],
        ..rejoin(member_id, client)
    }
}

fn assign(leader: &str, generation: i32, assignments: &[(&str, &'static [u8])]) -> SyncRequest {
    SyncRequest {
        protocol_name: Some("cooperative-sticky".into()),
        assignments: assignments
            .iter()
            .map(|(id, a)| ((*id).to_owned(), Bytes::from_static(a)))
            .collect(),
        ..sync_request(leader, generation)
    }
}

#[test]
fn cooperative_two_round_rebalance() {
    let mut h = Harness::kafka_defaults();
    // Generation 1: a alone owns p0 and p1.
    let a = h.form(vec![cooperative("", "a", "")]).remove(0);
    let a_id = a.member_id.clone();
    let sa = h.sync_now(assign(&a_id, 1, &[(&a_id, b"p0,p1")]));
    assert_eq!(&sa.assignment[..], b"p0,p1");

    // b joins; a learns of the rebalance from its heartbeat and rejoins.
    let (rb, _) = h.join(cooperative("", "b", ""));
    assert_eq!(h.heartbeat(&a_id, 1), Err(GroupError::RebalanceInProgress));
    let (ra, effects) = h.join(cooperative(&a_id, "a", "p0,p1"));
    let (a2, b2) = (join_answer(&effects, ra), join_answer(&effects, rb));
    assert_eq!((a2.generation_id, b2.generation_id), (2, 2));
    let b_id = b2.member_id.clone();

    // Round one: a keeps p0 and revokes p1; b gets nothing yet.
    let (rb, _) = h.sync(sync_request(&b_id, 2));
    let (ra, effects) = h.sync(assign(&a_id, 2, &[(&a_id, b"p0"), (&b_id, b"")]));
    assert_eq!(&sync_answer(&effects, ra).assignment[..], b"p0");
    assert!(sync_answer(&effects, rb).assignment.is_empty());
    assert_eq!(h.group.state(), GroupState::Stable);

    // Round two, right away: a revoked a partition, so it rejoins at once; b learns of the
    // new round from its heartbeat and rejoins too.
    let (ra, effects) = h.join(cooperative(&a_id, "a", "p0"));
    assert!(effects.is_empty());
    assert_eq!(h.group.state(), GroupState::PreparingRebalance);
    assert_eq!(h.heartbeat(&b_id, 2), Err(GroupError::RebalanceInProgress));
    let (rb, effects) = h.join(cooperative(&b_id, "b", ""));
    let (a3, b3) = (join_answer(&effects, ra), join_answer(&effects, rb));
    assert_eq!((a3.generation_id, b3.generation_id), (3, 3));
    assert_eq!(a3.leader, a_id);
    assert_eq!(&a3.members[0].metadata[..], b"topic|owned=p0");

    let (rb, _) = h.sync(sync_request(&b_id, 3));
    let (ra, effects) = h.sync(assign(&a_id, 3, &[(&a_id, b"p0"), (&b_id, b"p1")]));
    assert_eq!(&sync_answer(&effects, ra).assignment[..], b"p0");
    assert_eq!(&sync_answer(&effects, rb).assignment[..], b"p1");
    assert_eq!(h.group.state(), GroupState::Stable);
    assert_eq!(h.group.generation_id(), 3);
    assert_eq!(h.heartbeat(&a_id, 3), Ok(()));
    assert_eq!(h.heartbeat(&b_id, 3), Ok(()));
}
