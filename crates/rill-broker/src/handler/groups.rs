//! The classic group membership APIs: JoinGroup, SyncGroup, Heartbeat, LeaveGroup, and the
//! group admin APIs ListGroups, DescribeGroups, DeleteGroups.

use std::time::Duration;

use rill_group::{GroupError, GroupState, JoinRequest, Protocol, SyncRequest};
use rill_protocol::ErrorCode;
use rill_protocol::StrBytes;
use rill_protocol::kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use rill_protocol::kafka_protocol::messages::describe_groups_response::{
    DescribedGroup, DescribedGroupMember,
};
use rill_protocol::kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use rill_protocol::kafka_protocol::messages::leave_group_response::MemberResponse;
use rill_protocol::kafka_protocol::messages::list_groups_response::ListedGroup;
use rill_protocol::kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse,
    LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, SyncGroupRequest,
    SyncGroupResponse,
};

use crate::broker::Broker;
use crate::dispatch::Context;

fn text(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

fn opt_string(s: Option<&StrBytes>) -> Option<String> {
    s.map(ToString::to_string)
}

fn ms(value: i32) -> Duration {
    Duration::from_millis(u64::try_from(value).unwrap_or(0))
}

fn code(error: Option<GroupError>) -> i16 {
    error.map_or(0, GroupError::kafka_code)
}

pub(crate) async fn join(
    broker: &Broker,
    ctx: &Context<'_>,
    req: JoinGroupRequest,
    version: i16,
) -> JoinGroupResponse {
    if req.group_id.0.is_empty() {
        return JoinGroupResponse::default()
            .with_error_code(ErrorCode::InvalidGroupId.code())
            .with_generation_id(-1)
            .with_member_id(req.member_id)
            .with_protocol_name((version < 7).then(StrBytes::new));
    }
    let session_timeout = ms(req.session_timeout_ms);
    let join = JoinRequest {
        member_id: req.member_id.to_string(),
        group_instance_id: opt_string(req.group_instance_id.as_ref()),
        client_id: ctx.client_id.clone(),
        client_host: format!("/{}", ctx.peer.ip()),
        session_timeout,
        // JoinGroup v0 has no rebalance timeout: Kafka uses the session timeout.
        rebalance_timeout: if version == 0 {
            session_timeout
        } else {
            ms(req.rebalance_timeout_ms)
        },
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .into_iter()
            .map(|p| Protocol {
                name: p.name.to_string(),
                metadata: p.metadata,
            })
            .collect(),
        // KIP-394: from v4, a new member first gets its id back with MEMBER_ID_REQUIRED.
        require_known_member_id: version >= 4,
        supports_skip_assignment: version >= 9,
        reason: opt_string(req.reason.as_ref()),
    };
    let response = broker.groups.join(&req.group_id.0, join).await;
    JoinGroupResponse::default()
        .with_error_code(code(response.error))
        .with_generation_id(response.generation_id)
        .with_protocol_type(response.protocol_type.map(text))
        .with_protocol_name(
            response
                .protocol_name
                .map(text)
                .or_else(|| (version < 7).then(StrBytes::new)),
        )
        .with_leader(text(response.leader))
        .with_skip_assignment(version >= 9 && response.skip_assignment)
        .with_member_id(text(response.member_id))
        .with_members(
            response
                .members
                .into_iter()
                .map(|m| {
                    JoinGroupResponseMember::default()
                        .with_member_id(text(m.member_id))
                        .with_group_instance_id(m.group_instance_id.map(text))
                        .with_metadata(m.metadata)
                })
                .collect(),
        )
}

pub(crate) async fn sync(broker: &Broker, req: SyncGroupRequest) -> SyncGroupResponse {
    let sync = SyncRequest {
        member_id: req.member_id.to_string(),
        generation_id: req.generation_id,
        group_instance_id: opt_string(req.group_instance_id.as_ref()),
        protocol_type: opt_string(req.protocol_type.as_ref()),
        protocol_name: opt_string(req.protocol_name.as_ref()),
        assignments: req
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    };
    let response = broker.groups.sync(&req.group_id.0, sync).await;
    SyncGroupResponse::default()
        .with_error_code(code(response.error))
        .with_protocol_type(response.protocol_type.map(text))
        .with_protocol_name(response.protocol_name.map(text))
        .with_assignment(response.assignment)
}

pub(crate) async fn heartbeat(broker: &Broker, req: HeartbeatRequest) -> HeartbeatResponse {
    let result = broker
        .groups
        .heartbeat(
            &req.group_id.0,
            req.member_id.to_string(),
            req.generation_id,
            opt_string(req.group_instance_id.as_ref()),
        )
        .await;
    HeartbeatResponse::default().with_error_code(code(result.err()))
}

pub(crate) async fn leave(
    broker: &Broker,
    req: LeaveGroupRequest,
    version: i16,
) -> LeaveGroupResponse {
    // v0-2 name one member; v3+ a batch of members by id and/or instance id.
    let members: Vec<(String, Option<String>)> = if version >= 3 {
        req.members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    opt_string(m.group_instance_id.as_ref()),
                )
            })
            .collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    let results = broker.groups.leave(&req.group_id.0, members.clone()).await;
    if version < 3 {
        let error = results.into_iter().next().and_then(Result::err);
        return LeaveGroupResponse::default().with_error_code(code(error));
    }
    LeaveGroupResponse::default().with_members(
        members
            .into_iter()
            .zip(results)
            .map(|((member_id, instance_id), result)| {
                MemberResponse::default()
                    .with_member_id(text(member_id))
                    .with_group_instance_id(instance_id.map(text))
                    .with_error_code(code(result.err()))
            })
            .collect(),
    )
}

pub(crate) async fn list(broker: &Broker, req: ListGroupsRequest) -> ListGroupsResponse {
    let states: Vec<String> = req.states_filter.iter().map(|s| s.to_lowercase()).collect();
    let types: Vec<String> = req.types_filter.iter().map(|s| s.to_lowercase()).collect();
    let groups = broker
        .groups
        .list()
        .await
        .into_iter()
        .filter(|g| states.is_empty() || states.contains(&g.state.kafka_name().to_lowercase()))
        .filter(|_| types.is_empty() || types.iter().any(|t| t == "classic"))
        .map(|g| {
            ListedGroup::default()
                .with_group_id(GroupId(text(g.group_id)))
                .with_protocol_type(text(g.protocol_type))
                .with_group_state(StrBytes::from_static_str(g.state.kafka_name()))
                .with_group_type(StrBytes::from_static_str("classic"))
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

pub(crate) async fn describe(
    broker: &Broker,
    req: DescribeGroupsRequest,
    version: i16,
) -> DescribeGroupsResponse {
    let mut groups = Vec::with_capacity(req.groups.len());
    // From v3; Kafka answers it for every group asked about, known or not.
    let operations =
        super::authorized::if_asked(req.include_authorized_operations, super::authorized::GROUP);
    for group_id in req.groups {
        let described = DescribedGroup::default()
            .with_group_id(group_id.clone())
            .with_authorized_operations(operations);
        if let Err(code) = broker.groups.check(&group_id.0) {
            // Kafka's answer for a group coordinated elsewhere: no state, NOT_COORDINATOR (or
            // COORDINATOR_LOAD_IN_PROGRESS while its offsets load).
            groups.push(described.with_error_code(code.code()));
            continue;
        }
        let has_offsets = broker.groups.has_offsets(&group_id.0);
        groups.push(match broker.groups.describe(&group_id.0).await {
            Some(d) if d.state != GroupState::Dead => described
                .with_group_state(StrBytes::from_static_str(d.state.kafka_name()))
                .with_protocol_type(text(d.protocol_type))
                .with_protocol_data(text(d.protocol))
                .with_members(
                    d.members
                        .into_iter()
                        .map(|m| {
                            DescribedGroupMember::default()
                                .with_member_id(text(m.member_id))
                                .with_group_instance_id(m.group_instance_id.map(text))
                                .with_client_id(text(m.client_id))
                                .with_client_host(text(m.client_host))
                                .with_member_metadata(m.metadata)
                                .with_member_assignment(m.assignment)
                        })
                        .collect(),
                ),
            // A group known only by its committed offsets is Empty.
            _ if has_offsets => described
                .with_group_state(StrBytes::from_static_str(GroupState::Empty.kafka_name()))
                .with_protocol_type(StrBytes::from_static_str("consumer")),
            // Unknown: Kafka answers Dead, and from v6 GROUP_ID_NOT_FOUND.
            _ => {
                let described = described
                    .with_group_state(StrBytes::from_static_str(GroupState::Dead.kafka_name()));
                if version >= 6 {
                    described
                        .with_error_code(ErrorCode::GroupIdNotFound.code())
                        .with_error_message(super::message(format!(
                            "group '{}' does not exist",
                            group_id.0
                        )))
                } else {
                    described
                }
            }
        });
    }
    DescribeGroupsResponse::default().with_groups(groups)
}

pub(crate) async fn delete(broker: &Broker, req: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(req.groups_names.len());
    for group_id in req.groups_names {
        let result = broker.groups.delete_group(&group_id.0).await;
        results.push(
            DeletableGroupResult::default()
                .with_group_id(group_id)
                .with_error_code(result.err().map_or(0, ErrorCode::code)),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}
