//! Group APIs over raw Kafka requests, for the batched forms that the client libraries in the
//! interop tests do not send: FindCoordinator with several keys (v4+), LeaveGroup with several
//! members (v3+), OffsetFetch for several groups (v8+), and ListGroups' state filter.

mod common;

use std::net::TcpStream;

use anyhow::{bail, ensure};
use common::{Broker, Result, call, connect, create_topic};
use rill_protocol::kafka_protocol::messages::leave_group_request::MemberIdentity;
use rill_protocol::kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use rill_protocol::kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use rill_protocol::kafka_protocol::messages::{
    FindCoordinatorRequest, GroupId, LeaveGroupRequest, ListGroupsRequest, OffsetCommitRequest,
    OffsetFetchRequest, TopicName,
};
use rill_protocol::{ApiKey, ErrorCode, RequestKind, ResponseKind, StrBytes};

/// A group's committed offsets as OffsetFetch returns them: (partition, offset, metadata).
type GroupOffsets = (String, Vec<(i32, i64, String)>);

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

struct Conn {
    stream: TcpStream,
    next: i32,
}

impl Conn {
    fn ask(
        &mut self,
        api: ApiKey,
        version: i16,
        body: impl Into<RequestKind>,
    ) -> Result<ResponseKind> {
        self.next += 1;
        call(&mut self.stream, api, version, self.next, body)
    }

    /// A standalone commit (generation -1, no member), as a consumer with manual assignment.
    fn commit(&mut self, group: &str, topic: &str, partition: i32, offset: i64) -> Result<()> {
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(text(group)))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![
                OffsetCommitRequestTopic::default()
                    .with_name(TopicName(text(topic)))
                    .with_partitions(vec![
                        OffsetCommitRequestPartition::default()
                            .with_partition_index(partition)
                            .with_committed_offset(offset)
                            .with_committed_metadata(Some(text(&format!("{group}@{offset}")))),
                    ]),
            ]);
        let ResponseKind::OffsetCommit(response) = self.ask(ApiKey::OffsetCommit, 8, request)?
        else {
            bail!("not an OffsetCommit answer");
        };
        let code = response
            .topics
            .first()
            .and_then(|t| t.partitions.first())
            .map(|p| p.error_code);
        ensure!(
            code == Some(0),
            "commit {group} {topic}/{partition} answered {code:?}"
        );
        Ok(())
    }
}

#[test]
fn batched_group_requests_are_answered_per_item() -> Result<()> {
    let broker = Broker::start()?;
    let topic = broker.topic("grouped");
    create_topic(&broker, &topic, 2, &[])?;
    let mut c = Conn {
        stream: connect(&broker)?,
        next: 0,
    };

    // FindCoordinator v4: one answer per key, all this broker; transaction keys are refused.
    let request = FindCoordinatorRequest::default()
        .with_key_type(0)
        .with_coordinator_keys(vec![text("alpha"), text("beta")]);
    let ResponseKind::FindCoordinator(found) = c.ask(ApiKey::FindCoordinator, 4, request)? else {
        bail!("not a FindCoordinator answer");
    };
    let keys: Vec<(String, i32, i32, i16)> = found
        .coordinators
        .iter()
        .map(|k| (k.key.to_string(), k.node_id.0, k.port, k.error_code))
        .collect();
    let port = i32::from(broker.port());
    ensure!(
        keys == vec![
            ("alpha".to_owned(), 0, port, 0),
            ("beta".to_owned(), 0, port, 0)
        ],
        "coordinators {keys:?}"
    );
    let request = FindCoordinatorRequest::default()
        .with_key_type(1)
        .with_coordinator_keys(vec![text("txn")]);
    let ResponseKind::FindCoordinator(txn) = c.ask(ApiKey::FindCoordinator, 4, request)? else {
        bail!("not a FindCoordinator answer");
    };
    let txn_keys: Vec<(String, i32, i32, i16)> = txn
        .coordinators
        .iter()
        .map(|k| (k.key.to_string(), k.node_id.0, k.port, k.error_code))
        .collect();
    ensure!(
        txn_keys == vec![("txn".to_owned(), 0, port, 0)],
        "a transaction coordinator key: {txn_keys:?}"
    );

    // OffsetFetch v8 for two groups at once, one with offsets on both partitions, one with none.
    c.commit("alpha", &topic, 0, 11)?;
    c.commit("alpha", &topic, 1, 22)?;
    c.commit("beta", &topic, 1, 5)?;
    let topics = || {
        Some(vec![
            OffsetFetchRequestTopics::default()
                .with_name(TopicName(text(&topic)))
                .with_partition_indexes(vec![0, 1]),
        ])
    };
    let request = OffsetFetchRequest::default().with_groups(vec![
        OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(text("alpha")))
            .with_topics(topics()),
        OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(text("beta")))
            .with_topics(topics()),
        OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(text("nobody")))
            .with_topics(None),
    ]);
    let ResponseKind::OffsetFetch(fetched) = c.ask(ApiKey::OffsetFetch, 8, request)? else {
        bail!("not an OffsetFetch answer");
    };
    let got: Vec<GroupOffsets> = fetched
        .groups
        .iter()
        .map(|g| {
            let partitions = g
                .topics
                .iter()
                .flat_map(|t| t.partitions.iter())
                .map(|p| {
                    let metadata = p
                        .metadata
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default();
                    (p.partition_index, p.committed_offset, metadata)
                })
                .collect();
            (g.group_id.0.to_string(), partitions)
        })
        .collect();
    ensure!(
        got == vec![
            (
                "alpha".to_owned(),
                vec![
                    (0, 11, "alpha@11".to_owned()),
                    (1, 22, "alpha@22".to_owned())
                ]
            ),
            (
                "beta".to_owned(),
                vec![(0, -1, String::new()), (1, 5, "beta@5".to_owned())]
            ),
            ("nobody".to_owned(), vec![]),
        ],
        "OffsetFetch v8: {got:?}"
    );

    // LeaveGroup v3 with several members: each gets its own answer.
    let request = LeaveGroupRequest::default()
        .with_group_id(GroupId(text("alpha")))
        .with_members(vec![
            MemberIdentity::default().with_member_id(text("ghost-1")),
            MemberIdentity::default()
                .with_member_id(text(""))
                .with_group_instance_id(Some(text("static-ghost"))),
        ]);
    let ResponseKind::LeaveGroup(left) = c.ask(ApiKey::LeaveGroup, 3, request)? else {
        bail!("not a LeaveGroup answer");
    };
    let members: Vec<(String, i16)> = left
        .members
        .iter()
        .map(|m| (m.member_id.to_string(), m.error_code))
        .collect();
    let unknown = ErrorCode::UnknownMemberId.code();
    ensure!(
        members == vec![("ghost-1".to_owned(), unknown), (String::new(), unknown)],
        "LeaveGroup v3: {members:?}"
    );

    // ListGroups v4 with a state filter: groups known only by their offsets are Empty.
    for (states, expected) in [
        (vec![text("Empty")], vec!["alpha", "beta"]),
        (vec![text("Stable")], vec![]),
        (vec![], vec!["alpha", "beta"]),
    ] {
        let request = ListGroupsRequest::default().with_states_filter(states.clone());
        let ResponseKind::ListGroups(listed) = c.ask(ApiKey::ListGroups, 4, request)? else {
            bail!("not a ListGroups answer");
        };
        let names: Vec<String> = listed
            .groups
            .iter()
            .map(|g| g.group_id.0.to_string())
            .collect();
        ensure!(names == expected, "ListGroups {states:?}: {names:?}");
    }
    Ok(())
}
