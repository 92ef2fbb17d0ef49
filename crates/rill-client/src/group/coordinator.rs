//! The group requests, each sent to the group's coordinator over the member's own connection:
//! FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit and OffsetFetch.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rill_protocol::kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use rill_protocol::kafka_protocol::messages::leave_group_request::MemberIdentity;
use rill_protocol::kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use rill_protocol::kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use rill_protocol::kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use rill_protocol::kafka_protocol::messages::{
    FindCoordinatorRequest, GroupId, HeartbeatRequest, JoinGroupRequest, JoinGroupResponse,
    LeaveGroupRequest, OffsetCommitRequest, OffsetFetchRequest, SyncGroupRequest, TopicName,
};
use rill_protocol::{ApiKey, ErrorCode, StrBytes};
use tokio::sync::mpsc;

use crate::cluster::Cluster;
use crate::connection::{Connection, ConnectionConfig};
use crate::error::{ClientError, Result};

fn s(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_owned())
}

fn unexpected(conn: &Connection, api_key: ApiKey) -> ClientError {
    ClientError::UnexpectedResponse {
        addr: conn.addr().to_owned(),
        api_key,
    }
}

/// Who this member is in which generation: what every request after the join carries.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub(crate) group_id: String,
    pub(crate) member_id: String,
    pub(crate) instance_id: Option<String>,
    pub(crate) generation: i32,
}

/// Finds `group`'s coordinator and opens a connection of the member's own to it, whose
/// request timeout covers a JoinGroup held for the whole `rebalance_timeout` (as the Java
/// client does), so a slow rebalance is not taken for a dead broker.
pub(crate) async fn connect(
    cluster: &Cluster,
    group: &str,
    rebalance_timeout: Duration,
) -> Result<Arc<Connection>> {
    let conn = cluster.any_connection().await?;
    let version = conn.version_for(ApiKey::FindCoordinator)?;
    let context = || format!("find the coordinator of group '{group}'");
    let request = FindCoordinatorRequest::default().with_key_type(0);
    let request = if version >= 4 {
        request.with_coordinator_keys(vec![s(group)])
    } else {
        request.with_key(s(group))
    };
    let response = conn.request_at(request, version).await?;
    let (host, port) = if version >= 4 {
        let c = response
            .coordinators
            .iter()
            .find(|c| c.key.as_str() == group)
            .ok_or_else(|| unexpected(&conn, ApiKey::FindCoordinator))?;
        ClientError::check(c.error_code, context)?;
        (c.host.to_string(), c.port)
    } else {
        ClientError::check(response.error_code, context)?;
        (response.host.to_string(), response.port)
    };
    let mut config: ConnectionConfig = cluster.config().connection.clone();
    config.request_timeout = config
        .request_timeout
        .max(rebalance_timeout + Duration::from_secs(5));
    Ok(Arc::new(
        Connection::connect(&format!("{host}:{port}"), &config).await?,
    ))
}

/// The settings a JoinGroup carries.
pub(crate) struct JoinParams<'a> {
    pub(crate) session_timeout: Duration,
    pub(crate) rebalance_timeout: Duration,
    pub(crate) protocol: &'a str,
    pub(crate) metadata: Vec<u8>,
}

fn millis(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

/// One JoinGroup; the caller reads the error code (MEMBER_ID_REQUIRED is an answer, not a
/// failure).
pub(crate) async fn join(
    conn: &Connection,
    member: &Member,
    params: &JoinParams<'_>,
) -> Result<JoinGroupResponse> {
    let version = conn.version_for(ApiKey::JoinGroup)?;
    let mut request = JoinGroupRequest::default()
        .with_group_id(GroupId(s(&member.group_id)))
        .with_session_timeout_ms(millis(params.session_timeout))
        .with_rebalance_timeout_ms(millis(params.rebalance_timeout))
        .with_member_id(s(&member.member_id))
        .with_protocol_type(StrBytes::from_static_str("consumer"))
        .with_protocols(vec![
            JoinGroupRequestProtocol::default()
                .with_name(s(params.protocol))
                .with_metadata(Bytes::from(params.metadata.clone())),
        ]);
    if let Some(id) = &member.instance_id {
        if version < 5 {
            return Err(static_membership_unsupported(conn, ApiKey::JoinGroup));
        }
        request = request.with_group_instance_id(Some(s(id)));
    }
    conn.request_at(request, version).await
}

fn static_membership_unsupported(conn: &Connection, api_key: ApiKey) -> ClientError {
    ClientError::UnsupportedApi {
        addr: conn.addr().to_owned(),
        api_key,
        broker: conn.broker_range(api_key),
        client: None,
    }
}

/// SyncGroup: sends the leader's assignments (empty for a follower), returns this member's.
pub(crate) async fn sync(
    conn: &Connection,
    member: &Member,
    protocol: &str,
    assignments: Vec<(String, Vec<u8>)>,
) -> Result<Bytes> {
    let version = conn.version_for(ApiKey::SyncGroup)?;
    let mut request = SyncGroupRequest::default()
        .with_group_id(GroupId(s(&member.group_id)))
        .with_generation_id(member.generation)
        .with_member_id(s(&member.member_id))
        .with_assignments(
            assignments
                .into_iter()
                .map(|(id, bytes)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(StrBytes::from_string(id))
                        .with_assignment(Bytes::from(bytes))
                })
                .collect(),
        );
    if version >= 3 {
        request = request.with_group_instance_id(member.instance_id.as_deref().map(s));
    }
    if version >= 5 {
        request = request
            .with_protocol_type(Some(StrBytes::from_static_str("consumer")))
            .with_protocol_name(Some(s(protocol)));
    }
    let response = conn.request_at(request, version).await?;
    ClientError::check(response.error_code, || {
        format!("sync group '{}'", member.group_id)
    })?;
    Ok(response.assignment)
}

/// Heartbeats every `interval` until one fails, then reports why on `stop` and ends. Each
/// heartbeat may take at most `session_timeout`: past that the coordinator has given up on
/// this member anyway.
pub(crate) async fn heartbeat(
    conn: Arc<Connection>,
    member: Member,
    interval: Duration,
    session_timeout: Duration,
    stop: mpsc::Sender<ClientError>,
) {
    loop {
        tokio::time::sleep(interval).await;
        let result =
            match tokio::time::timeout(session_timeout, heartbeat_once(&conn, &member)).await {
                Ok(result) => result,
                Err(_elapsed) => Err(ClientError::Timeout {
                    what: format!("heartbeat to {}", conn.addr()),
                    after: session_timeout,
                }),
            };
        if let Err(err) = result {
            tracing::debug!(group = %member.group_id, %err, "heartbeat stopped");
            let _ = stop.send(err).await;
            return;
        }
    }
}

async fn heartbeat_once(conn: &Connection, member: &Member) -> Result<()> {
    let version = conn.version_for(ApiKey::Heartbeat)?;
    let mut request = HeartbeatRequest::default()
        .with_group_id(GroupId(s(&member.group_id)))
        .with_generation_id(member.generation)
        .with_member_id(s(&member.member_id));
    if version >= 3 {
        request = request.with_group_instance_id(member.instance_id.as_deref().map(s));
    }
    let response = conn.request_at(request, version).await?;
    ClientError::check(response.error_code, || {
        format!("heartbeat in group '{}'", member.group_id)
    })
}

/// LeaveGroup for this member.
pub(crate) async fn leave(conn: &Connection, member: &Member) -> Result<()> {
    let version = conn.version_for(ApiKey::LeaveGroup)?;
    let context = || format!("leave group '{}'", member.group_id);
    let request = LeaveGroupRequest::default().with_group_id(GroupId(s(&member.group_id)));
    if version >= 3 {
        let request = request.with_members(vec![
            MemberIdentity::default()
                .with_member_id(s(&member.member_id))
                .with_group_instance_id(member.instance_id.as_deref().map(s)),
        ]);
        let response = conn.request_at(request, version).await?;
        ClientError::check(response.error_code, context)?;
        for m in &response.members {
            ClientError::check(m.error_code, context)?;
        }
        Ok(())
    } else {
        let request = request.with_member_id(s(&member.member_id));
        let response = conn.request_at(request, version).await?;
        ClientError::check(response.error_code, context)
    }
}

/// OffsetCommit of `offsets` (topic → partition → next offset to read) in this generation.
pub(crate) async fn commit(
    conn: &Connection,
    member: &Member,
    offsets: &BTreeMap<String, BTreeMap<i32, i64>>,
) -> Result<()> {
    let version = conn.version_for(ApiKey::OffsetCommit)?;
    let mut request = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(&member.group_id)))
        .with_generation_id_or_member_epoch(member.generation)
        .with_member_id(s(&member.member_id))
        .with_topics(
            offsets
                .iter()
                .map(|(topic, partitions)| {
                    OffsetCommitRequestTopic::default()
                        .with_name(TopicName(s(topic)))
                        .with_partitions(
                            partitions
                                .iter()
                                .map(|(&p, &offset)| {
                                    OffsetCommitRequestPartition::default()
                                        .with_partition_index(p)
                                        .with_committed_offset(offset)
                                        .with_committed_metadata(Some(StrBytes::default()))
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
    if version >= 7 {
        request = request.with_group_instance_id(member.instance_id.as_deref().map(s));
    }
    let response = conn.request_at(request, version).await?;
    for t in &response.topics {
        for p in &t.partitions {
            ClientError::check(p.error_code, || {
                format!(
                    "commit the offset of group '{}' for topic '{}' partition {}",
                    member.group_id,
                    t.name.0.as_str(),
                    p.partition_index
                )
            })?;
        }
    }
    Ok(())
}

/// The committed offsets of `partitions` (topic → partitions); a partition with none is
/// missing from the answer.
pub(crate) async fn fetch_offsets(
    conn: &Connection,
    group: &str,
    partitions: &BTreeMap<String, Vec<i32>>,
) -> Result<HashMap<(String, i32), i64>> {
    let version = conn.version_for(ApiKey::OffsetFetch)?;
    let context = || format!("fetch the offsets of group '{group}'");
    let mut rows: Vec<(String, i32, i64, i16)> = Vec::new();
    if version >= 8 {
        let topics = partitions
            .iter()
            .map(|(t, ps)| {
                OffsetFetchRequestTopics::default()
                    .with_name(TopicName(s(t)))
                    .with_partition_indexes(ps.clone())
            })
            .collect();
        let request = OffsetFetchRequest::default().with_groups(vec![
            OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(s(group)))
                .with_topics(Some(topics)),
        ]);
        let response = conn.request_at(request, version).await?;
        let g = response
            .groups
            .iter()
            .find(|g| g.group_id.0.as_str() == group)
            .ok_or_else(|| unexpected(conn, ApiKey::OffsetFetch))?;
        ClientError::check(g.error_code, context)?;
        for t in &g.topics {
            for p in &t.partitions {
                rows.push((
                    t.name.0.to_string(),
                    p.partition_index,
                    p.committed_offset,
                    p.error_code,
                ));
            }
        }
    } else {
        let topics = partitions
            .iter()
            .map(|(t, ps)| {
                OffsetFetchRequestTopic::default()
                    .with_name(TopicName(s(t)))
                    .with_partition_indexes(ps.clone())
            })
            .collect();
        let request = OffsetFetchRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_topics(Some(topics));
        let response = conn.request_at(request, version).await?;
        if version >= 2 {
            ClientError::check(response.error_code, context)?;
        }
        for t in &response.topics {
            for p in &t.partitions {
                rows.push((
                    t.name.0.to_string(),
                    p.partition_index,
                    p.committed_offset,
                    p.error_code,
                ));
            }
        }
    }
    let mut out = HashMap::new();
    for (topic, partition, offset, code) in rows {
        ClientError::check(code, || {
            format!("fetch the offset of group '{group}' for topic '{topic}' partition {partition}")
        })?;
        if offset >= 0 {
            let _ = out.insert((topic, partition), offset);
        }
    }
    Ok(out)
}

/// Whether `err` means this member must join again: the group is rebalancing or has moved
/// on without it.
pub(crate) fn needs_rejoin(err: &ClientError) -> bool {
    matches!(
        err.code(),
        Some(
            ErrorCode::RebalanceInProgress
                | ErrorCode::IllegalGeneration
                | ErrorCode::UnknownMemberId
                | ErrorCode::FencedInstanceId
        )
    )
}

/// Whether `err` means the coordinator moved or is gone: find it again.
pub(crate) fn coordinator_lost(err: &ClientError) -> bool {
    match err.code() {
        Some(code) => matches!(
            code,
            ErrorCode::NotCoordinator
                | ErrorCode::CoordinatorNotAvailable
                | ErrorCode::CoordinatorLoadInProgress
        ),
        None => err.is_retriable(),
    }
}
