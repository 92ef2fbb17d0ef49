//! The one place requests are authorized, before their handler runs (Kafka's "Operations and
//! Resources on Protocols" table). With the authorizer on, [`gate`] takes each resource out of
//! the request that the principal may not touch, the handler answers for the rest, and
//! [`Patch::apply`] puts the refused ones back into the answer with Kafka's error where Kafka
//! places it (per topic or partition, per group, per resource), or filters what a principal
//! may not see (Metadata, ListGroups). A request refused as a whole is answered here and never
//! reaches its handler. Handlers know nothing of ACLs.

use std::borrow::Cow;

use rill_protocol::ErrorCode;
use rill_protocol::kafka_protocol::messages::{
    self as m, GroupId, RequestKind, ResponseKind, TopicName,
};
use rill_protocol::kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use crate::authorizer::{Access, Operation, ResourceType};
use crate::broker::Broker;

mod patch;
mod txn;

use patch::commit_topic;

use Operation as Op;
use ResourceType as R;

const TOPIC_DENIED: ErrorCode = ErrorCode::TopicAuthorizationFailed;
const GROUP_DENIED: ErrorCode = ErrorCode::GroupAuthorizationFailed;
const CLUSTER_DENIED: ErrorCode = ErrorCode::ClusterAuthorizationFailed;

/// Kafka's operations on each resource type, for `authorized_operations`.
const TOPIC_OPS: &[Op] = &[
    Op::Read,
    Op::Write,
    Op::Create,
    Op::Delete,
    Op::Alter,
    Op::Describe,
    Op::DescribeConfigs,
    Op::AlterConfigs,
];
const CLUSTER_OPS: &[Op] = &[
    Op::Create,
    Op::Alter,
    Op::Describe,
    Op::ClusterAction,
    Op::DescribeConfigs,
    Op::AlterConfigs,
    Op::IdempotentWrite,
];
const GROUP_OPS: &[Op] = &[
    Op::Read,
    Op::Delete,
    Op::Describe,
    Op::DescribeConfigs,
    Op::AlterConfigs,
];

/// What the gate decided for one request.
pub(crate) enum Gate {
    /// Run the handler on this (possibly trimmed) request, then patch its answer.
    Run(RequestKind, Patch),
    /// Refused as a whole: this is the answer.
    Answer(ResponseKind),
    /// No rule for this API (a bug): close the connection.
    Close,
}

/// What to put into (or take out of) the handler's answer.
#[derive(Default)]
pub(crate) enum Patch {
    #[default]
    Nothing,
    /// Topics (name, id, partitions) refused in a per-partition answer.
    Partitions(Vec<(TopicName, Uuid, Vec<i32>)>),
    /// Produce's refused topics; with acks=0 the connection is closed, as Kafka tells such a
    /// producer of a failure.
    Produce(Vec<(TopicName, Uuid, Vec<i32>)>, bool),
    Metadata {
        /// Names asked for (`None`: every topic) and refused, with the error for each.
        refused: Vec<(TopicName, ErrorCode)>,
        topic_ops: bool,
        cluster_ops: bool,
    },
    /// Topic results to add with TOPIC_AUTHORIZATION_FAILED (CreateTopics, DeleteTopics,
    /// CreatePartitions).
    Topics(Vec<(TopicName, Uuid)>),
    /// Groups refused (DescribeGroups, DeleteGroups), and whether to compute DescribeGroups'
    /// authorized operations.
    Groups(Vec<GroupId>, bool),
    /// ListGroups for a principal without DESCRIBE on the cluster: only its groups.
    ListGroups,
    /// FindCoordinator v4+ keys refused.
    Coordinators(Vec<StrBytes>, ErrorCode),
    /// OffsetFetch: refused topics (explicit) or a filter (all topics), per group.
    OffsetFetch {
        refused: Vec<(TopicName, Vec<i32>)>,
        all: bool,
    },
    /// Config resources refused: (type, name, error).
    Configs(Vec<(i8, StrBytes, ErrorCode)>),
    DescribeCluster,
    DescribeTopicPartitions(Vec<TopicName>),
    /// DescribeTransactions: the transactional ids refused.
    Transactions(Vec<m::TransactionalId>),
    /// ListTransactions: only the transactional ids the principal may describe.
    ListTransactions,
    /// DescribeProducers: the topics (and partitions) refused.
    Producers(Vec<(TopicName, Vec<i32>)>),
}

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

/// A topic's name, by name or (when the request names it by id) through this broker's topics;
/// borrowed in the usual case, so a produce or fetch by name allocates nothing here.
fn topic_name<'a>(broker: &Broker, name: &'a str, id: Uuid) -> Option<Cow<'a, str>> {
    if !name.is_empty() || id.is_nil() {
        return Some(Cow::Borrowed(name));
    }
    broker.topic_by_id(id).map(|t| Cow::Owned(t.name.clone()))
}

/// Config resource types: 2 topic, 4 broker, 8 broker logger.
fn config_resource(
    access: &Access<'_>,
    op: Op,
    resource_type: i8,
    name: &str,
) -> Option<ErrorCode> {
    match resource_type {
        2 if !access.allowed(op, R::Topic, name) => Some(TOPIC_DENIED),
        4 | 8 if !access.on_cluster(op) => Some(CLUSTER_DENIED),
        _ => None,
    }
}

/// Decides `body` for this principal.
#[expect(
    clippy::too_many_lines,
    reason = "one arm per API, each a few lines: the table in one place"
)]
pub(crate) fn gate(broker: &Broker, access: &Access<'_>, body: RequestKind, version: i16) -> Gate {
    let group = |id: &GroupId, op: Op| access.allowed(op, R::Group, &id.0);
    match body {
        // Never authorized: a client needs them before it has (or proves) an identity.
        RequestKind::ApiVersions(_)
        | RequestKind::SaslHandshake(_)
        | RequestKind::SaslAuthenticate(_) => Gate::Run(body, Patch::Nothing),
        RequestKind::Produce(mut req) => {
            let txn_denied = req
                .transactional_id
                .as_ref()
                .is_some_and(|t| !access.allowed(Op::Write, R::TransactionalId, &t.0));
            let mut refused = Vec::new();
            req.topic_data.retain(|t| {
                let name = topic_name(broker, &t.name.0, t.topic_id);
                let ok =
                    !txn_denied && name.is_none_or(|n| access.allowed(Op::Write, R::Topic, &n));
                if !ok {
                    let partitions = t.partition_data.iter().map(|p| p.index).collect();
                    refused.push((t.name.clone(), t.topic_id, partitions));
                }
                ok
            });
            let silent = req.acks == 0;
            Gate::Run(RequestKind::Produce(req), Patch::Produce(refused, silent))
        }
        RequestKind::Fetch(mut req) => {
            let follower = req.replica_id.0 >= 0 || req.replica_state.replica_id.0 >= 0;
            let cluster_ok = !follower || access.on_cluster(Op::ClusterAction);
            let mut refused = Vec::new();
            req.topics.retain(|t| {
                let name = topic_name(broker, &t.topic.0, t.topic_id);
                let ok = cluster_ok && name.is_none_or(|n| access.allowed(Op::Read, R::Topic, &n));
                if !ok {
                    let partitions = t.partitions.iter().map(|p| p.partition).collect();
                    refused.push((t.topic.clone(), t.topic_id, partitions));
                }
                ok
            });
            Gate::Run(RequestKind::Fetch(req), Patch::Partitions(refused))
        }
        RequestKind::ListOffsets(mut req) => {
            let mut refused = Vec::new();
            req.topics.retain(|t| {
                let ok = access.allowed(Op::Describe, R::Topic, &t.name.0);
                if !ok {
                    let partitions = t.partitions.iter().map(|p| p.partition_index).collect();
                    refused.push((t.name.clone(), Uuid::nil(), partitions));
                }
                ok
            });
            Gate::Run(RequestKind::ListOffsets(req), Patch::Partitions(refused))
        }
        RequestKind::OffsetForLeaderEpoch(mut req) => {
            let mut refused = Vec::new();
            req.topics.retain(|t| {
                let ok = access.allowed(Op::Describe, R::Topic, &t.topic.0);
                if !ok {
                    let partitions = t.partitions.iter().map(|p| p.partition).collect();
                    refused.push((t.topic.clone(), Uuid::nil(), partitions));
                }
                ok
            });
            Gate::Run(
                RequestKind::OffsetForLeaderEpoch(req),
                Patch::Partitions(refused),
            )
        }
        RequestKind::DeleteRecords(mut req) => {
            let mut refused = Vec::new();
            req.topics.retain(|t| {
                let ok = access.allowed(Op::Delete, R::Topic, &t.name.0);
                if !ok {
                    let partitions = t.partitions.iter().map(|p| p.partition_index).collect();
                    refused.push((t.name.clone(), Uuid::nil(), partitions));
                }
                ok
            });
            Gate::Run(RequestKind::DeleteRecords(req), Patch::Partitions(refused))
        }
        RequestKind::Metadata(mut req) => {
            let auto_create =
                broker.config.auto_create_topics && (version < 4 || req.allow_auto_topic_creation);
            let may_create_any = access.on_cluster(Op::Create);
            let mut refused = Vec::new();
            if let Some(topics) = &mut req.topics {
                topics.retain(|t| {
                    let Some(name) = t.name.as_ref().map(|n| n.0.to_string()).or_else(|| {
                        broker
                            .topic_by_id(t.topic_id)
                            .map(|topic| topic.name.clone())
                    }) else {
                        return true;
                    };
                    // Not to be described, or to be auto-created without CREATE: refused
                    // (an unknown topic stays unknown to a principal who may not create it).
                    let refuse = !access.allowed(Op::Describe, R::Topic, &name)
                        || (auto_create
                            && broker.topic(&name).is_none()
                            && !may_create_any
                            && !access.allowed(Op::Create, R::Topic, &name));
                    if refuse {
                        refused.push((TopicName(text(&name)), TOPIC_DENIED));
                    }
                    !refuse
                });
            }
            let patch = Patch::Metadata {
                refused,
                topic_ops: req.include_topic_authorized_operations,
                cluster_ops: req.include_cluster_authorized_operations,
            };
            Gate::Run(RequestKind::Metadata(req), patch)
        }
        RequestKind::DescribeTopicPartitions(mut req) => {
            let mut refused = Vec::new();
            req.topics.retain(|t| {
                let ok = access.allowed(Op::Describe, R::Topic, &t.name.0);
                if !ok {
                    refused.push(t.name.clone());
                }
                ok
            });
            let patch = Patch::DescribeTopicPartitions(refused);
            Gate::Run(RequestKind::DescribeTopicPartitions(req), patch)
        }
        RequestKind::CreateTopics(mut req) => {
            let cluster = access.on_cluster(Op::Create);
            let mut refused = Vec::new();
            req.topics.retain(|t| {
                let ok = cluster || access.allowed(Op::Create, R::Topic, &t.name.0);
                if !ok {
                    refused.push((t.name.clone(), Uuid::nil()));
                }
                ok
            });
            Gate::Run(RequestKind::CreateTopics(req), Patch::Topics(refused))
        }
        RequestKind::DeleteTopics(mut req) => {
            let mut refused = Vec::new();
            req.topic_names.retain(|n| {
                let ok = access.allowed(Op::Delete, R::Topic, &n.0);
                if !ok {
                    refused.push((n.clone(), Uuid::nil()));
                }
                ok
            });
            req.topics.retain(|t| {
                let by_name = t.name.as_ref().map_or("", |n| &n.0);
                let name = topic_name(broker, by_name, t.topic_id);
                let ok = name.is_none_or(|n| access.allowed(Op::Delete, R::Topic, &n));
                if !ok {
                    refused.push((t.name.clone().unwrap_or_default(), t.topic_id));
                }
                ok
            });
            Gate::Run(RequestKind::DeleteTopics(req), Patch::Topics(refused))
        }
        RequestKind::CreatePartitions(mut req) => {
            let mut refused = Vec::new();
            req.topics.retain(|t| {
                let ok = access.allowed(Op::Alter, R::Topic, &t.name.0);
                if !ok {
                    refused.push((t.name.clone(), Uuid::nil()));
                }
                ok
            });
            Gate::Run(RequestKind::CreatePartitions(req), Patch::Topics(refused))
        }
        RequestKind::DescribeConfigs(mut req) => {
            let mut refused = Vec::new();
            req.resources.retain(|r| {
                let e = config_resource(
                    access,
                    Op::DescribeConfigs,
                    r.resource_type,
                    &r.resource_name,
                );
                if let Some(code) = e {
                    refused.push((r.resource_type, r.resource_name.clone(), code));
                }
                e.is_none()
            });
            Gate::Run(RequestKind::DescribeConfigs(req), Patch::Configs(refused))
        }
        RequestKind::AlterConfigs(mut req) => {
            let mut refused = Vec::new();
            req.resources.retain(|r| {
                let e =
                    config_resource(access, Op::AlterConfigs, r.resource_type, &r.resource_name);
                if let Some(code) = e {
                    refused.push((r.resource_type, r.resource_name.clone(), code));
                }
                e.is_none()
            });
            Gate::Run(RequestKind::AlterConfigs(req), Patch::Configs(refused))
        }
        RequestKind::IncrementalAlterConfigs(mut req) => {
            let mut refused = Vec::new();
            req.resources.retain(|r| {
                let e =
                    config_resource(access, Op::AlterConfigs, r.resource_type, &r.resource_name);
                if let Some(code) = e {
                    refused.push((r.resource_type, r.resource_name.clone(), code));
                }
                e.is_none()
            });
            Gate::Run(
                RequestKind::IncrementalAlterConfigs(req),
                Patch::Configs(refused),
            )
        }
        RequestKind::DescribeCluster(req) => {
            if access.on_cluster(Op::Describe) {
                Gate::Run(RequestKind::DescribeCluster(req), Patch::DescribeCluster)
            } else {
                Gate::Answer(
                    m::DescribeClusterResponse::default()
                        .with_error_code(CLUSTER_DENIED.code())
                        .into(),
                )
            }
        }
        // Kafka asks DESCRIBE on the cluster and answers a refusal with no dirs: from v3 with
        // CLUSTER_AUTHORIZATION_FAILED at the top, before v3 (no top-level code) empty.
        RequestKind::DescribeLogDirs(req) => {
            if access.on_cluster(Op::Describe) {
                Gate::Run(RequestKind::DescribeLogDirs(req), Patch::Nothing)
            } else {
                let code = if version >= 3 {
                    CLUSTER_DENIED.code()
                } else {
                    0
                };
                Gate::Answer(
                    m::DescribeLogDirsResponse::default()
                        .with_error_code(code)
                        .into(),
                )
            }
        }
        RequestKind::DescribeQuorum(req) => {
            if access.on_cluster(Op::Describe) {
                Gate::Run(RequestKind::DescribeQuorum(req), Patch::Nothing)
            } else {
                Gate::Answer(
                    m::DescribeQuorumResponse::default()
                        .with_error_code(CLUSTER_DENIED.code())
                        .into(),
                )
            }
        }
        // Kafka asks ALTER on the cluster to move partitions, DESCRIBE to list the moves; a
        // refusal is the top-level CLUSTER_AUTHORIZATION_FAILED.
        RequestKind::AlterPartitionReassignments(req) => {
            if access.on_cluster(Op::Alter) {
                Gate::Run(
                    RequestKind::AlterPartitionReassignments(req),
                    Patch::Nothing,
                )
            } else {
                Gate::Answer(
                    m::AlterPartitionReassignmentsResponse::default()
                        .with_error_code(CLUSTER_DENIED.code())
                        .with_error_message(crate::handler::message(
                            "moving partitions needs ALTER on the cluster",
                        ))
                        .into(),
                )
            }
        }
        RequestKind::ListPartitionReassignments(req) => {
            if access.on_cluster(Op::Describe) {
                Gate::Run(RequestKind::ListPartitionReassignments(req), Patch::Nothing)
            } else {
                Gate::Answer(
                    m::ListPartitionReassignmentsResponse::default()
                        .with_error_code(CLUSTER_DENIED.code())
                        .with_error_message(crate::handler::message(
                            "listing partition moves needs DESCRIBE on the cluster",
                        ))
                        .into(),
                )
            }
        }
        // Kafka asks ALTER on the cluster; a refusal names every partition asked with
        // CLUSTER_AUTHORIZATION_FAILED, and from v1 (which has one) the top-level code too.
        RequestKind::ElectLeaders(req) => {
            if access.on_cluster(Op::Alter) {
                Gate::Run(RequestKind::ElectLeaders(req), Patch::Nothing)
            } else {
                use m::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
                let results = req
                    .topic_partitions
                    .unwrap_or_default()
                    .into_iter()
                    .map(|t| {
                        let partitions = t
                            .partitions
                            .iter()
                            .map(|p| {
                                PartitionResult::default()
                                    .with_partition_id(*p)
                                    .with_error_code(CLUSTER_DENIED.code())
                            })
                            .collect();
                        ReplicaElectionResult::default()
                            .with_topic(t.topic)
                            .with_partition_result(partitions)
                    })
                    .collect();
                let code = if version >= 1 {
                    CLUSTER_DENIED.code()
                } else {
                    0
                };
                Gate::Answer(
                    m::ElectLeadersResponse::default()
                        .with_error_code(code)
                        .with_replica_election_results(results)
                        .into(),
                )
            }
        }
        RequestKind::CreateAcls(req) => {
            if access.on_cluster(Op::Alter) {
                Gate::Run(RequestKind::CreateAcls(req), Patch::Nothing)
            } else {
                let results = req
                    .creations
                    .iter()
                    .map(|_| {
                        m::create_acls_response::AclCreationResult::default()
                            .with_error_code(CLUSTER_DENIED.code())
                    })
                    .collect();
                Gate::Answer(
                    m::CreateAclsResponse::default()
                        .with_results(results)
                        .into(),
                )
            }
        }
        RequestKind::DeleteAcls(req) => {
            if access.on_cluster(Op::Alter) {
                Gate::Run(RequestKind::DeleteAcls(req), Patch::Nothing)
            } else {
                let results = req
                    .filters
                    .iter()
                    .map(|_| {
                        m::delete_acls_response::DeleteAclsFilterResult::default()
                            .with_error_code(CLUSTER_DENIED.code())
                    })
                    .collect();
                let answer = m::DeleteAclsResponse::default().with_filter_results(results);
                Gate::Answer(answer.into())
            }
        }
        RequestKind::DescribeUserScramCredentials(req) => {
            if access.on_cluster(Op::Describe) {
                Gate::Run(
                    RequestKind::DescribeUserScramCredentials(req),
                    Patch::Nothing,
                )
            } else {
                Gate::Answer(
                    m::DescribeUserScramCredentialsResponse::default()
                        .with_error_code(CLUSTER_DENIED.code())
                        .into(),
                )
            }
        }
        RequestKind::AlterUserScramCredentials(req) => {
            if access.on_cluster(Op::Alter) {
                Gate::Run(RequestKind::AlterUserScramCredentials(req), Patch::Nothing)
            } else {
                // One answer per user named, as the handler gives.
                let mut users: Vec<StrBytes> = Vec::new();
                let named = req.deletions.iter().map(|d| &d.name);
                for name in named.chain(req.upsertions.iter().map(|u| &u.name)) {
                    if !users.contains(name) {
                        users.push(name.clone());
                    }
                }
                let results = users
                    .into_iter()
                    .map(|user| {
                        m::alter_user_scram_credentials_response::AlterUserScramCredentialsResult::default()
                            .with_user(user)
                            .with_error_code(CLUSTER_DENIED.code())
                    })
                    .collect();
                Gate::Answer(
                    m::AlterUserScramCredentialsResponse::default()
                        .with_results(results)
                        .into(),
                )
            }
        }
        RequestKind::DescribeAcls(req) => {
            if access.on_cluster(Op::Describe) {
                Gate::Run(RequestKind::DescribeAcls(req), Patch::Nothing)
            } else {
                Gate::Answer(
                    m::DescribeAclsResponse::default()
                        .with_error_code(CLUSTER_DENIED.code())
                        .into(),
                )
            }
        }
        RequestKind::InitProducerId(req) => {
            let code = match &req.transactional_id {
                Some(id) if !access.allowed(Op::Write, R::TransactionalId, &id.0) => {
                    Some(ErrorCode::TransactionalIdAuthorizationFailed)
                }
                None if !access.may_write_idempotently() => Some(CLUSTER_DENIED),
                _ => None,
            };
            match code {
                None => Gate::Run(RequestKind::InitProducerId(req), Patch::Nothing),
                Some(code) => Gate::Answer(
                    m::InitProducerIdResponse::default()
                        .with_error_code(code.code())
                        .with_producer_id(m::ProducerId(-1))
                        .with_producer_epoch(-1)
                        .into(),
                ),
            }
        }
        RequestKind::FindCoordinator(mut req) => {
            let (resource, code) = match req.key_type {
                1 => (
                    R::TransactionalId,
                    ErrorCode::TransactionalIdAuthorizationFailed,
                ),
                _ => (R::Group, GROUP_DENIED),
            };
            if version < 4 {
                if access.allowed(Op::Describe, resource, &req.key) {
                    return Gate::Run(RequestKind::FindCoordinator(req), Patch::Nothing);
                }
                return Gate::Answer(
                    m::FindCoordinatorResponse::default()
                        .with_error_code(code.code())
                        .with_node_id(m::BrokerId(-1))
                        .with_port(-1)
                        .into(),
                );
            }
            let mut refused = Vec::new();
            req.coordinator_keys.retain(|k| {
                let ok = access.allowed(Op::Describe, resource, k);
                if !ok {
                    refused.push(k.clone());
                }
                ok
            });
            Gate::Run(
                RequestKind::FindCoordinator(req),
                Patch::Coordinators(refused, code),
            )
        }
        RequestKind::JoinGroup(req) => {
            if group(&req.group_id, Op::Read) {
                return Gate::Run(RequestKind::JoinGroup(req), Patch::Nothing);
            }
            Gate::Answer(
                m::JoinGroupResponse::default()
                    .with_error_code(GROUP_DENIED.code())
                    .with_generation_id(-1)
                    .into(),
            )
        }
        RequestKind::SyncGroup(req) => {
            if group(&req.group_id, Op::Read) {
                return Gate::Run(RequestKind::SyncGroup(req), Patch::Nothing);
            }
            Gate::Answer(
                m::SyncGroupResponse::default()
                    .with_error_code(GROUP_DENIED.code())
                    .into(),
            )
        }
        RequestKind::Heartbeat(req) => {
            if group(&req.group_id, Op::Read) {
                return Gate::Run(RequestKind::Heartbeat(req), Patch::Nothing);
            }
            Gate::Answer(
                m::HeartbeatResponse::default()
                    .with_error_code(GROUP_DENIED.code())
                    .into(),
            )
        }
        RequestKind::LeaveGroup(req) => {
            if group(&req.group_id, Op::Read) {
                return Gate::Run(RequestKind::LeaveGroup(req), Patch::Nothing);
            }
            Gate::Answer(
                m::LeaveGroupResponse::default()
                    .with_error_code(GROUP_DENIED.code())
                    .into(),
            )
        }
        RequestKind::OffsetCommit(mut req) => {
            if !group(&req.group_id, Op::Read) {
                let topics = req
                    .topics
                    .iter()
                    .map(|t| {
                        let partitions = t.partitions.iter().map(|p| p.partition_index).collect();
                        commit_topic(t.name.clone(), t.topic_id, partitions, GROUP_DENIED)
                    })
                    .collect();
                return Gate::Answer(
                    m::OffsetCommitResponse::default()
                        .with_topics(topics)
                        .into(),
                );
            }
            let mut refused = Vec::new();
            req.topics.retain(|t| {
                let name = topic_name(broker, &t.name.0, t.topic_id);
                let ok = name.is_none_or(|n| access.allowed(Op::Read, R::Topic, &n));
                if !ok {
                    let partitions = t.partitions.iter().map(|p| p.partition_index).collect();
                    refused.push((t.name.clone(), t.topic_id, partitions));
                }
                ok
            });
            Gate::Run(RequestKind::OffsetCommit(req), Patch::Partitions(refused))
        }
        RequestKind::OffsetFetch(mut req) => {
            // Kafka asks DESCRIBE on the group (which READ implies). One group up to v7, several
            // from v8; one group refused refuses the request (a client asks for its own group).
            let groups_ok = if version < 8 {
                group(&req.group_id, Op::Describe)
            } else {
                req.groups.iter().all(|g| group(&g.group_id, Op::Describe))
            };
            if !groups_ok {
                let answer = m::OffsetFetchResponse::default().with_error_code(GROUP_DENIED.code());
                let groups = req
                    .groups
                    .iter()
                    .map(|g| {
                        m::offset_fetch_response::OffsetFetchResponseGroup::default()
                            .with_group_id(g.group_id.clone())
                            .with_error_code(GROUP_DENIED.code())
                    })
                    .collect();
                return Gate::Answer(answer.with_groups(groups).into());
            }
            let mut refused = Vec::new();
            let mut all = false;
            if let Some(topics) = &mut req.topics {
                topics.retain(|t| {
                    let ok = access.allowed(Op::Describe, R::Topic, &t.name.0);
                    if !ok {
                        refused.push((t.name.clone(), t.partition_indexes.clone()));
                    }
                    ok
                });
            } else if version < 8 {
                all = true;
            }
            for g in &mut req.groups {
                match &mut g.topics {
                    Some(topics) => topics.retain(|t| {
                        let ok = access.allowed(Op::Describe, R::Topic, &t.name.0);
                        if !ok {
                            refused.push((t.name.clone(), t.partition_indexes.clone()));
                        }
                        ok
                    }),
                    None => all = true,
                }
            }
            Gate::Run(
                RequestKind::OffsetFetch(req),
                Patch::OffsetFetch { refused, all },
            )
        }
        RequestKind::OffsetDelete(mut req) => {
            if !group(&req.group_id, Op::Delete) {
                return Gate::Answer(
                    m::OffsetDeleteResponse::default()
                        .with_error_code(GROUP_DENIED.code())
                        .into(),
                );
            }
            let mut refused = Vec::new();
            req.topics.retain(|t| {
                let ok = access.allowed(Op::Read, R::Topic, &t.name.0);
                if !ok {
                    let partitions = t.partitions.iter().map(|p| p.partition_index).collect();
                    refused.push((t.name.clone(), Uuid::nil(), partitions));
                }
                ok
            });
            Gate::Run(RequestKind::OffsetDelete(req), Patch::Partitions(refused))
        }
        RequestKind::DescribeGroups(mut req) => {
            let mut refused = Vec::new();
            req.groups.retain(|g| {
                let ok = group(g, Op::Describe);
                if !ok {
                    refused.push(g.clone());
                }
                ok
            });
            let ops = req.include_authorized_operations;
            Gate::Run(
                RequestKind::DescribeGroups(req),
                Patch::Groups(refused, ops),
            )
        }
        RequestKind::DeleteGroups(mut req) => {
            let mut refused = Vec::new();
            req.groups_names.retain(|g| {
                let ok = group(g, Op::Delete);
                if !ok {
                    refused.push(g.clone());
                }
                ok
            });
            Gate::Run(
                RequestKind::DeleteGroups(req),
                Patch::Groups(refused, false),
            )
        }
        RequestKind::ListGroups(req) => {
            let patch = if access.on_cluster(Op::Describe) {
                Patch::Nothing
            } else {
                Patch::ListGroups
            };
            Gate::Run(RequestKind::ListGroups(req), patch)
        }
        // An API added to the version table without a row here is never let through.
        other if txn::is_txn(&other) => txn::gate(access, other, version),
        other => {
            tracing::error!(request = ?other, "no authorization rule for an advertised API");
            Gate::Close
        }
    }
}
