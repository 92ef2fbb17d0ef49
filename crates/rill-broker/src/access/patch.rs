//! Putting refused items back into a handler's answer, and taking out what may not be seen.

use rill_protocol::ErrorCode;
use rill_protocol::kafka_protocol::messages::{self as m, ResponseKind, TopicName};
use uuid::Uuid;

use super::{CLUSTER_OPS, GROUP_DENIED, GROUP_OPS, Op, Patch, R, TOPIC_DENIED, TOPIC_OPS};
use crate::authorizer::Access;
use crate::dispatch::Reply;

/// An OffsetCommit topic whose every partition failed with `code`.
pub(super) fn commit_topic(
    name: TopicName,
    id: Uuid,
    partitions: Vec<i32>,
    code: ErrorCode,
) -> m::offset_commit_response::OffsetCommitResponseTopic {
    use m::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
    OffsetCommitResponseTopic::default()
        .with_name(name)
        .with_topic_id(id)
        .with_partitions(
            partitions
                .into_iter()
                .map(|p| {
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p)
                        .with_error_code(code.code())
                })
                .collect(),
        )
}

impl Patch {
    /// Puts the refused resources back into `reply`, or takes out what may not be seen.
    #[expect(
        clippy::too_many_lines,
        reason = "one arm per answer shape, each a few lines"
    )]
    pub(crate) fn apply(self, access: &Access<'_>, reply: Reply) -> Reply {
        let Reply::Answer(mut answer) = reply else {
            return match (self, reply) {
                (Patch::Produce(refused, true), _) if !refused.is_empty() => Reply::Close,
                (_, reply) => reply,
            };
        };
        let denied = TOPIC_DENIED.code();
        match (self, &mut answer) {
            (Patch::Nothing, _) => {}
            (Patch::Produce(refused, silent), ResponseKind::Produce(r)) => {
                use m::produce_response::{PartitionProduceResponse, TopicProduceResponse};
                if silent && !refused.is_empty() {
                    return Reply::Close;
                }
                for (name, id, partitions) in refused {
                    let partitions = partitions
                        .into_iter()
                        .map(|p| {
                            PartitionProduceResponse::default()
                                .with_index(p)
                                .with_error_code(denied)
                                .with_base_offset(-1)
                                .with_log_append_time_ms(-1)
                                .with_log_start_offset(-1)
                        })
                        .collect();
                    r.responses.push(
                        TopicProduceResponse::default()
                            .with_name(name)
                            .with_topic_id(id)
                            .with_partition_responses(partitions),
                    );
                }
            }
            (Patch::Partitions(refused), ResponseKind::Fetch(r)) => {
                use m::fetch_response::{FetchableTopicResponse, PartitionData};
                for (name, id, partitions) in refused {
                    let partitions = partitions
                        .into_iter()
                        .map(|p| {
                            PartitionData::default()
                                .with_partition_index(p)
                                .with_error_code(denied)
                                .with_high_watermark(-1)
                                .with_last_stable_offset(-1)
                                .with_log_start_offset(-1)
                        })
                        .collect();
                    r.responses.push(
                        FetchableTopicResponse::default()
                            .with_topic(name)
                            .with_topic_id(id)
                            .with_partitions(partitions),
                    );
                }
            }
            (Patch::Partitions(refused), ResponseKind::ListOffsets(r)) => {
                use m::list_offsets_response::{
                    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
                };
                for (name, _, partitions) in refused {
                    let partitions = partitions
                        .into_iter()
                        .map(|p| {
                            ListOffsetsPartitionResponse::default()
                                .with_partition_index(p)
                                .with_error_code(denied)
                                .with_timestamp(-1)
                                .with_offset(-1)
                        })
                        .collect();
                    r.topics.push(
                        ListOffsetsTopicResponse::default()
                            .with_name(name)
                            .with_partitions(partitions),
                    );
                }
            }
            (Patch::Partitions(refused), ResponseKind::OffsetForLeaderEpoch(r)) => {
                use m::offset_for_leader_epoch_response::{
                    EpochEndOffset, OffsetForLeaderTopicResult,
                };
                for (name, _, partitions) in refused {
                    let partitions = partitions
                        .into_iter()
                        .map(|p| {
                            EpochEndOffset::default()
                                .with_partition(p)
                                .with_error_code(denied)
                                .with_leader_epoch(-1)
                                .with_end_offset(-1)
                        })
                        .collect();
                    r.topics.push(
                        OffsetForLeaderTopicResult::default()
                            .with_topic(name)
                            .with_partitions(partitions),
                    );
                }
            }
            (Patch::Partitions(refused), ResponseKind::DeleteRecords(r)) => {
                use m::delete_records_response::{
                    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
                };
                for (name, _, partitions) in refused {
                    let partitions = partitions
                        .into_iter()
                        .map(|p| {
                            DeleteRecordsPartitionResult::default()
                                .with_partition_index(p)
                                .with_error_code(denied)
                                .with_low_watermark(-1)
                        })
                        .collect();
                    r.topics.push(
                        DeleteRecordsTopicResult::default()
                            .with_name(name)
                            .with_partitions(partitions),
                    );
                }
            }
            (Patch::Partitions(refused), ResponseKind::OffsetCommit(r)) => {
                for (name, id, partitions) in refused {
                    r.topics
                        .push(commit_topic(name, id, partitions, TOPIC_DENIED));
                }
            }
            (Patch::Partitions(refused), ResponseKind::OffsetDelete(r)) => {
                use m::offset_delete_response::{
                    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
                };
                for (name, _, partitions) in refused {
                    let partitions = partitions
                        .into_iter()
                        .map(|p| {
                            OffsetDeleteResponsePartition::default()
                                .with_partition_index(p)
                                .with_error_code(denied)
                        })
                        .collect();
                    r.topics.push(
                        OffsetDeleteResponseTopic::default()
                            .with_name(name)
                            .with_partitions(partitions),
                    );
                }
            }
            (
                Patch::Metadata {
                    refused,
                    topic_ops,
                    cluster_ops,
                },
                ResponseKind::Metadata(r),
            ) => {
                use m::metadata_response::MetadataResponseTopic;
                // Topics listed (all of them, or auto-created) only when they may be described.
                r.topics.retain(|t| {
                    t.name
                        .as_ref()
                        .is_none_or(|n| access.allowed(Op::Describe, R::Topic, &n.0))
                });
                if topic_ops {
                    for t in &mut r.topics {
                        if let Some(name) = &t.name {
                            t.topic_authorized_operations =
                                access.operations(R::Topic, &name.0, TOPIC_OPS);
                        }
                    }
                }
                if cluster_ops {
                    r.cluster_authorized_operations =
                        access.operations(R::Cluster, "kafka-cluster", CLUSTER_OPS);
                }
                for (name, code) in refused {
                    r.topics.push(
                        MetadataResponseTopic::default()
                            .with_name(Some(name))
                            .with_error_code(code.code())
                            .with_topic_authorized_operations(i32::MIN),
                    );
                }
            }
            (Patch::DescribeTopicPartitions(refused), ResponseKind::DescribeTopicPartitions(r)) => {
                use m::describe_topic_partitions_response::DescribeTopicPartitionsResponseTopic;
                r.topics.retain(|t| {
                    t.name
                        .as_ref()
                        .is_none_or(|n| access.allowed(Op::Describe, R::Topic, &n.0))
                });
                for t in &mut r.topics {
                    if let (Some(name), true) = (&t.name, t.topic_authorized_operations != i32::MIN)
                    {
                        t.topic_authorized_operations =
                            access.operations(R::Topic, &name.0, TOPIC_OPS);
                    }
                }
                for name in refused {
                    r.topics.push(
                        DescribeTopicPartitionsResponseTopic::default()
                            .with_name(Some(name))
                            .with_error_code(denied)
                            .with_topic_authorized_operations(i32::MIN),
                    );
                }
            }
            (Patch::Topics(refused), ResponseKind::CreateTopics(r)) => {
                use m::create_topics_response::CreatableTopicResult;
                for (name, _) in refused {
                    r.topics.push(
                        CreatableTopicResult::default()
                            .with_name(name)
                            .with_error_code(denied)
                            .with_num_partitions(-1)
                            .with_replication_factor(-1),
                    );
                }
            }
            (Patch::Topics(refused), ResponseKind::DeleteTopics(r)) => {
                use m::delete_topics_response::DeletableTopicResult;
                for (name, id) in refused {
                    let name = (!name.0.is_empty()).then_some(name);
                    r.responses.push(
                        DeletableTopicResult::default()
                            .with_name(name)
                            .with_topic_id(id)
                            .with_error_code(denied),
                    );
                }
            }
            (Patch::Topics(refused), ResponseKind::CreatePartitions(r)) => {
                use m::create_partitions_response::CreatePartitionsTopicResult;
                for (name, _) in refused {
                    r.results.push(
                        CreatePartitionsTopicResult::default()
                            .with_name(name)
                            .with_error_code(denied),
                    );
                }
            }
            (Patch::Configs(refused), ResponseKind::DescribeConfigs(r)) => {
                use m::describe_configs_response::DescribeConfigsResult;
                for (resource_type, name, code) in refused {
                    r.results.push(
                        DescribeConfigsResult::default()
                            .with_resource_type(resource_type)
                            .with_resource_name(name)
                            .with_error_code(code.code()),
                    );
                }
            }
            (Patch::Configs(refused), ResponseKind::AlterConfigs(r)) => {
                use m::alter_configs_response::AlterConfigsResourceResponse;
                for (resource_type, name, code) in refused {
                    r.responses.push(
                        AlterConfigsResourceResponse::default()
                            .with_resource_type(resource_type)
                            .with_resource_name(name)
                            .with_error_code(code.code()),
                    );
                }
            }
            (Patch::Configs(refused), ResponseKind::IncrementalAlterConfigs(r)) => {
                use m::incremental_alter_configs_response::AlterConfigsResourceResponse;
                for (resource_type, name, code) in refused {
                    r.responses.push(
                        AlterConfigsResourceResponse::default()
                            .with_resource_type(resource_type)
                            .with_resource_name(name)
                            .with_error_code(code.code()),
                    );
                }
            }
            (Patch::DescribeCluster, ResponseKind::DescribeCluster(r)) => {
                if r.cluster_authorized_operations != i32::MIN {
                    r.cluster_authorized_operations =
                        access.operations(R::Cluster, "kafka-cluster", CLUSTER_OPS);
                }
            }
            (Patch::Groups(refused, ops), ResponseKind::DescribeGroups(r)) => {
                use m::describe_groups_response::DescribedGroup;
                if ops {
                    for g in &mut r.groups {
                        g.authorized_operations =
                            access.operations(R::Group, &g.group_id.0, GROUP_OPS);
                    }
                }
                for id in refused {
                    r.groups.push(
                        DescribedGroup::default()
                            .with_group_id(id)
                            .with_error_code(GROUP_DENIED.code())
                            .with_authorized_operations(i32::MIN),
                    );
                }
            }
            (Patch::Groups(refused, _), ResponseKind::DeleteGroups(r)) => {
                use m::delete_groups_response::DeletableGroupResult;
                for id in refused {
                    r.results.push(
                        DeletableGroupResult::default()
                            .with_group_id(id)
                            .with_error_code(GROUP_DENIED.code()),
                    );
                }
            }
            (Patch::ListGroups, ResponseKind::ListGroups(r)) => {
                r.groups
                    .retain(|g| access.allowed(Op::Describe, R::Group, &g.group_id.0));
            }
            (Patch::Coordinators(refused, code), ResponseKind::FindCoordinator(r)) => {
                use m::find_coordinator_response::Coordinator;
                for key in refused {
                    r.coordinators.push(
                        Coordinator::default()
                            .with_key(key)
                            .with_node_id(m::BrokerId(-1))
                            .with_port(-1)
                            .with_error_code(code.code()),
                    );
                }
            }
            (Patch::OffsetFetch { refused, all }, ResponseKind::OffsetFetch(r)) => {
                use m::offset_fetch_response::{
                    OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
                    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
                };
                let seen = |name: &TopicName| access.allowed(Op::Describe, R::Topic, &name.0);
                if all {
                    r.topics.retain(|t| seen(&t.name));
                    for g in &mut r.groups {
                        g.topics.retain(|t| seen(&t.name));
                    }
                }
                for (name, partitions) in refused {
                    if r.groups.is_empty() {
                        let partitions = partitions
                            .iter()
                            .map(|p| {
                                OffsetFetchResponsePartition::default()
                                    .with_partition_index(*p)
                                    .with_committed_offset(-1)
                                    .with_committed_leader_epoch(-1)
                                    .with_error_code(denied)
                            })
                            .collect();
                        r.topics.push(
                            OffsetFetchResponseTopic::default()
                                .with_name(name)
                                .with_partitions(partitions),
                        );
                    } else if let Some(g) = r.groups.first_mut() {
                        let partitions = partitions
                            .iter()
                            .map(|p| {
                                OffsetFetchResponsePartitions::default()
                                    .with_partition_index(*p)
                                    .with_committed_offset(-1)
                                    .with_committed_leader_epoch(-1)
                                    .with_error_code(denied)
                            })
                            .collect();
                        g.topics.push(
                            OffsetFetchResponseTopics::default()
                                .with_name(name)
                                .with_partitions(partitions),
                        );
                    }
                }
            }
            (Patch::Transactions(refused), ResponseKind::DescribeTransactions(r)) => {
                use m::describe_transactions_response::TransactionState;
                for id in refused {
                    r.transaction_states.push(
                        TransactionState::default()
                            .with_transactional_id(id)
                            .with_error_code(ErrorCode::TransactionalIdAuthorizationFailed.code())
                            .with_producer_id(m::ProducerId(-1))
                            .with_producer_epoch(-1)
                            .with_transaction_start_time_ms(-1),
                    );
                }
            }
            (Patch::ListTransactions, ResponseKind::ListTransactions(r)) => {
                r.transaction_states.retain(|t| {
                    access.allowed(Op::Describe, R::TransactionalId, &t.transactional_id.0)
                });
            }
            (Patch::Producers(refused), ResponseKind::DescribeProducers(r)) => {
                use m::describe_producers_response::{PartitionResponse, TopicResponse};
                for (name, partitions) in refused {
                    let partitions = partitions
                        .into_iter()
                        .map(|p| {
                            PartitionResponse::default()
                                .with_partition_index(p)
                                .with_error_code(denied)
                        })
                        .collect();
                    r.topics.push(
                        TopicResponse::default()
                            .with_name(name)
                            .with_partitions(partitions),
                    );
                }
            }
            (_, _) => tracing::error!("an answer the authorization patch does not fit"),
        }
        Reply::Answer(answer)
    }
}
