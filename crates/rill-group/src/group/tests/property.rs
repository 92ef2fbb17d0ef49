//! Property: whatever clients do and however time passes, every JoinGroup and SyncGroup
//! request is answered exactly once, timers never lag behind the clock, and the group's
//! invariants hold after every call.
//!
//! Four simulated clients (two dynamic, two static) act on what the group told them, like
//! real ones: they rejoin with the member id they were given, sync with the generation
//! they joined, assign as leader, and start over when told their id is unknown.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use proptest::prelude::*;

use super::{Harness, join_request, protocols, secs};
use crate::{Effect, GroupError, JoinRequest, MemberId, RequestId, SyncRequest};

const CLIENTS: usize = 4;

#[derive(Debug, Clone)]
enum Op {
    Join {
        client: usize,
        restart: bool,
        require_known: bool,
        protocols: u8,
        bad_session: bool,
    },
    Sync {
        client: usize,
        stale: bool,
    },
    Heartbeat {
        client: usize,
    },
    Commit {
        client: usize,
    },
    Leave {
        client: usize,
        by_instance: bool,
    },
    Tick {
        millis: u64,
    },
    Delete,
    Unload,
}

fn op() -> impl Strategy<Value = Op> {
    // Mostly short ticks (sessions are 6-9 s) so groups get to Stable; Delete and Unload are
    // rare because they end the group's story.
    let protocols = prop_oneof![6 => 0..3u8, 1 => Just(3u8)];
    prop_oneof![
        120 => (
            0..CLIENTS,
            prop::bool::weighted(0.15),
            any::<bool>(),
            protocols,
            prop::bool::weighted(0.05),
        )
            .prop_map(|(client, restart, require_known, protocols, bad_session)| Op::Join {
                client,
                restart,
                require_known,
                protocols,
                bad_session,
            }),
        120 => (0..CLIENTS, prop::bool::weighted(0.1))
            .prop_map(|(client, stale)| Op::Sync { client, stale }),
        80 => (0..CLIENTS).prop_map(|client| Op::Heartbeat { client }),
        20 => (0..CLIENTS).prop_map(|client| Op::Commit { client }),
        20 => (0..CLIENTS, any::<bool>())
            .prop_map(|(client, by_instance)| Op::Leave { client, by_instance }),
        120 => (0..4_000u64).prop_map(|millis| Op::Tick { millis }),
        15 => (0..40_000u64).prop_map(|millis| Op::Tick { millis }),
        1 => Just(Op::Delete),
        1 => Just(Op::Unload),
    ]
}

/// What a client knows.
#[derive(Debug, Clone, Default)]
struct Client {
    member_id: MemberId,
    generation: i32,
    /// The members to assign, when this client was told it leads.
    members: Vec<MemberId>,
}

struct Sim {
    h: Harness,
    clients: Vec<Client>,
    asked_by: BTreeMap<RequestId, usize>,
}

impl Sim {
    fn instance(client: usize) -> Option<String> {
        (client >= 2).then(|| format!("instance-{client}"))
    }

    fn client(&self, client: usize) -> Client {
        self.clients.get(client).cloned().unwrap_or_default()
    }

    fn client_mut(&mut self, client: usize) -> &mut Client {
        match self.clients.get_mut(client) {
            Some(c) => c,
            None => panic!("no client {client}"),
        }
    }

    /// Applies answers the way a real client would.
    fn learn(&mut self, effects: &[Effect]) {
        for effect in effects {
            let Some(&client) = self.asked_by.get(&effect.request()) else {
                panic!("answer to a request nobody asked: {effect:?}");
            };
            let Effect::Join { response, .. } = effect else {
                continue;
            };
            let c = self.client_mut(client);
            match response.error {
                None => {
                    c.member_id.clone_from(&response.member_id);
                    c.generation = response.generation_id;
                    c.members = response
                        .members
                        .iter()
                        .map(|m| m.member_id.clone())
                        .collect();
                }
                Some(GroupError::MemberIdRequired) => c.member_id.clone_from(&response.member_id),
                Some(GroupError::UnknownMemberId | GroupError::FencedInstanceId) => {
                    *c = Client::default();
                }
                Some(_) => {}
            }
        }
    }

    fn apply(&mut self, op: Op) {
        let now = self.h.now;
        match op {
            Op::Join {
                client,
                restart,
                require_known,
                protocols: which,
                bad_session,
            } => {
                let name = format!("c{client}");
                let c = self.client(client);
                let names: &[&str] = match which {
                    0 => &["range"],
                    1 => &["range", "roundrobin"],
                    2 => &["roundrobin", "range"],
                    _ => &["sticky"],
                };
                let join = JoinRequest {
                    member_id: if restart {
                        MemberId::new()
                    } else {
                        c.member_id
                    },
                    group_instance_id: Self::instance(client),
                    session_timeout: if bad_session {
                        secs(1)
                    } else {
                        secs(6 + client as u64)
                    },
                    rebalance_timeout: secs(6 + 5 * client as u64),
                    protocols: protocols(&name, names),
                    require_known_member_id: require_known,
                    ..join_request(&name)
                };
                let (request, effects) = self.h.join(join);
                let _ = self.asked_by.insert(request, client);
                self.learn(&effects);
            }
            Op::Sync { client, stale } => {
                let c = self.client(client);
                let assignments = c
                    .members
                    .iter()
                    .map(|m| (m.clone(), Bytes::from(format!("{m}@{}", c.generation))))
                    .collect();
                let sync = SyncRequest {
                    member_id: c.member_id,
                    generation_id: c.generation - i32::from(stale),
                    group_instance_id: Self::instance(client),
                    protocol_type: Some("consumer".into()),
                    protocol_name: None,
                    assignments,
                };
                let (request, effects) = self.h.sync(sync);
                let _ = self.asked_by.insert(request, client);
                self.learn(&effects);
            }
            Op::Heartbeat { client } => {
                let c = self.client(client);
                let instance = Self::instance(client);
                let result =
                    self.h
                        .group
                        .heartbeat(now, &c.member_id, c.generation, instance.as_deref());
                if matches!(
                    result,
                    Err(GroupError::UnknownMemberId | GroupError::FencedInstanceId)
                ) {
                    *self.client_mut(client) = Client::default();
                }
            }
            Op::Commit { client } => {
                let c = self.client(client);
                let instance = Self::instance(client);
                let _ = self.h.group.offset_commit(
                    now,
                    &c.member_id,
                    c.generation,
                    instance.as_deref(),
                );
            }
            Op::Leave {
                client,
                by_instance,
            } => {
                let c = self.client(client);
                let instance = Self::instance(client);
                let member = if by_instance && instance.is_some() {
                    ""
                } else {
                    c.member_id.as_str()
                };
                let (results, effects) = self.h.leave(&[(member, instance.as_deref())]);
                assert_eq!(results.len(), 1);
                self.learn(&effects);
            }
            Op::Tick { millis } => {
                let effects = self.h.advance(Duration::from_millis(millis));
                self.learn(&effects);
            }
            Op::Delete => {
                let empty = self.h.group.state() == crate::GroupState::Empty;
                assert_eq!(self.h.group.delete().is_ok(), empty);
            }
            Op::Unload => {
                let effects = self.h.group.unload();
                // Unload answers outside the harness; account for them here.
                for effect in &effects {
                    assert!(self.h.outstanding.remove(&effect.request()), "{effect:?}");
                }
            }
        }
        self.h.group.check_invariants();
        if let Some(deadline) = self.h.group.next_deadline() {
            assert!(deadline > self.h.now, "a due timer was left unfired");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn every_request_is_answered_exactly_once(ops in prop::collection::vec(op(), 1..150)) {
        let mut sim = Sim {
            h: Harness::kafka_defaults(),
            clients: vec![Client::default(); CLIENTS],
            asked_by: BTreeMap::new(),
        };
        for op in ops {
            sim.apply(op);
        }
        sim.h.drain();
    }
}
