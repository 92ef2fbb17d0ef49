//! Sample request bodies for every supported API, filled in enough that nested arrays, nullable
//! fields and tagged-field sections all appear on the wire.

#![allow(dead_code)]

use bytes::Bytes;
use rill_protocol::kafka_protocol::messages::{
    AlterConfigsRequest, ApiVersionsRequest, BrokerId, CreatePartitionsRequest,
    CreateTopicsRequest, DeleteGroupsRequest, DeleteRecordsRequest, DeleteTopicsRequest,
    DescribeClusterRequest, DescribeConfigsRequest, DescribeGroupsRequest, DescribeQuorumRequest,
    DescribeTopicPartitionsRequest, FetchRequest, FindCoordinatorRequest, GroupId,
    HeartbeatRequest, IncrementalAlterConfigsRequest, InitProducerIdRequest, JoinGroupRequest,
    LeaveGroupRequest, ListGroupsRequest, ListOffsetsRequest, MetadataRequest, OffsetCommitRequest,
    OffsetDeleteRequest, OffsetFetchRequest, ProduceRequest, ProducerId, SyncGroupRequest,
    TopicName, TransactionalId, alter_configs_request, create_partitions_request,
    create_topics_request, delete_records_request, delete_topics_request, describe_configs_request,
    describe_quorum_request, describe_topic_partitions_request, fetch_request,
    incremental_alter_configs_request, join_group_request, leave_group_request,
    list_offsets_request, metadata_request, offset_commit_request, offset_delete_request,
    offset_fetch_request, produce_request, sync_group_request,
};
use rill_protocol::kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, ListPartitionReassignmentsRequest,
    alter_partition_reassignments_request, list_partition_reassignments_request,
};
use rill_protocol::kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest,
    DescribeUserScramCredentialsRequest, SaslAuthenticateRequest, SaslHandshakeRequest,
    alter_user_scram_credentials_request, create_acls_request, delete_acls_request,
    describe_user_scram_credentials_request,
};
use rill_protocol::kafka_protocol::messages::{DescribeLogDirsRequest, describe_log_dirs_request};
use rill_protocol::kafka_protocol::messages::{ElectLeadersRequest, elect_leaders_request};
use rill_protocol::kafka_protocol::messages::{
    OffsetForLeaderEpochRequest, offset_for_leader_epoch_request,
};
use rill_protocol::kafka_protocol::protocol::Decodable;
use rill_protocol::{ApiKey, RequestKind, StrBytes};

pub(crate) fn s(text: &'static str) -> StrBytes {
    StrBytes::from_static_str(text)
}

pub(crate) fn topic(name: &'static str) -> TopicName {
    TopicName(s(name))
}

pub(crate) fn group(name: &'static str) -> GroupId {
    GroupId(s(name))
}

/// A Metadata v10 request topic on the wire: topic id, null name, no tagged fields. Decoding it
/// is how these tests get a non-nil topic id without naming the `uuid` crate.
const TOPIC_WIRE: [u8; 18] = [
    0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a,
    0, 0,
];

macro_rules! topic_id {
    () => {
        metadata_request::MetadataRequestTopic::decode(&mut Bytes::from_static(&TOPIC_WIRE), 10)
            .unwrap()
            .topic_id
    };
}

/// A request body of `api_key` that encodes at `v`, with every array non-empty.
pub(crate) fn sample(api_key: ApiKey, v: i16) -> RequestKind {
    match api_key {
        ApiKey::ApiVersions => ApiVersionsRequest::default()
            .with_client_software_name(if v >= 3 { s("rill-test") } else { s("") })
            .with_client_software_version(if v >= 3 { s("0.1.0") } else { s("") })
            .into(),
        ApiKey::Metadata => MetadataRequest::default()
            .with_topics(Some(vec![
                metadata_request::MetadataRequestTopic::default()
                    .with_name(Some(topic("orders")))
                    .with_topic_id(if v >= 10 {
                        topic_id!()
                    } else {
                        Default::default()
                    }),
            ]))
            .with_allow_auto_topic_creation(true)
            .with_include_topic_authorized_operations(v >= 8)
            .into(),
        ApiKey::Produce => ProduceRequest::default()
            .with_transactional_id(if v >= 3 {
                Some(TransactionalId(s("txn-1")))
            } else {
                None
            })
            .with_acks(-1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![
                produce_request::TopicProduceData::default()
                    .with_name(if v <= 12 {
                        topic("orders")
                    } else {
                        Default::default()
                    })
                    .with_topic_id(if v >= 13 {
                        topic_id!()
                    } else {
                        Default::default()
                    })
                    .with_partition_data(vec![
                        produce_request::PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(Bytes::from_static(b"opaque record batch bytes"))),
                        produce_request::PartitionProduceData::default().with_index(1),
                    ]),
            ])
            .into(),
        ApiKey::Fetch => FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(500)
            .with_min_bytes(1)
            .with_max_bytes(if v >= 3 { 52_428_800 } else { 0x7fff_ffff })
            .with_isolation_level(if v >= 4 { 1 } else { 0 })
            .with_session_epoch(-1)
            .with_topics(vec![
                fetch_request::FetchTopic::default()
                    .with_topic(if v <= 12 {
                        topic("orders")
                    } else {
                        Default::default()
                    })
                    .with_topic_id(if v >= 13 {
                        topic_id!()
                    } else {
                        Default::default()
                    })
                    .with_partitions(vec![
                        fetch_request::FetchPartition::default()
                            .with_partition(3)
                            .with_current_leader_epoch(if v >= 9 { 7 } else { -1 })
                            .with_fetch_offset(1234)
                            .with_log_start_offset(if v >= 5 { 0 } else { -1 })
                            .with_partition_max_bytes(1_048_576),
                    ]),
            ])
            .with_forgotten_topics_data(if v >= 7 {
                vec![
                    fetch_request::ForgottenTopic::default()
                        .with_topic(if v <= 12 {
                            topic("old")
                        } else {
                            Default::default()
                        })
                        .with_topic_id(if v >= 13 {
                            topic_id!()
                        } else {
                            Default::default()
                        })
                        .with_partitions(vec![0, 1]),
                ]
            } else {
                vec![]
            })
            .with_rack_id(if v >= 11 { s("rack-a") } else { s("") })
            .into(),
        ApiKey::ListOffsets => ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_isolation_level(if v >= 2 { 1 } else { 0 })
            .with_topics(vec![
                list_offsets_request::ListOffsetsTopic::default()
                    .with_name(topic("orders"))
                    .with_partitions(vec![
                        list_offsets_request::ListOffsetsPartition::default()
                            .with_partition_index(0)
                            .with_current_leader_epoch(if v >= 4 { 2 } else { -1 })
                            .with_timestamp(-1),
                    ]),
            ])
            .with_timeout_ms(if v >= 10 { 5_000 } else { 0 })
            .into(),
        ApiKey::CreateTopics => CreateTopicsRequest::default()
            .with_topics(vec![
                create_topics_request::CreatableTopic::default()
                    .with_name(topic("orders"))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1)
                    .with_assignments(vec![
                        create_topics_request::CreatableReplicaAssignment::default()
                            .with_partition_index(0)
                            .with_broker_ids(vec![BrokerId(1)]),
                    ])
                    .with_configs(vec![
                        create_topics_request::CreatableTopicConfig::default()
                            .with_name(s("cleanup.policy"))
                            .with_value(Some(s("compact"))),
                    ]),
            ])
            .with_timeout_ms(60_000)
            .with_validate_only(v >= 1)
            .into(),
        ApiKey::DeleteTopics => DeleteTopicsRequest::default()
            .with_topic_names(if v <= 5 {
                vec![topic("orders")]
            } else {
                vec![]
            })
            .with_topics(if v >= 6 {
                vec![
                    delete_topics_request::DeleteTopicState::default()
                        .with_name(Some(topic("orders")))
                        .with_topic_id(topic_id!()),
                ]
            } else {
                vec![]
            })
            .with_timeout_ms(30_000)
            .into(),
        ApiKey::CreatePartitions => CreatePartitionsRequest::default()
            .with_topics(vec![
                create_partitions_request::CreatePartitionsTopic::default()
                    .with_name(topic("orders"))
                    .with_count(6)
                    .with_assignments(Some(vec![
                        create_partitions_request::CreatePartitionsAssignment::default()
                            .with_broker_ids(vec![BrokerId(1), BrokerId(2)]),
                    ])),
            ])
            .with_timeout_ms(30_000)
            .with_validate_only(false)
            .into(),
        ApiKey::DescribeConfigs => DescribeConfigsRequest::default()
            .with_resources(vec![
                describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s("orders"))
                    .with_configuration_keys(Some(vec![s("retention.ms")])),
            ])
            .with_include_synonyms(v >= 1)
            .with_include_documentation(v >= 3)
            .into(),
        ApiKey::AlterConfigs => AlterConfigsRequest::default()
            .with_resources(vec![
                alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s("orders"))
                    .with_configs(vec![
                        alter_configs_request::AlterableConfig::default()
                            .with_name(s("retention.ms"))
                            .with_value(Some(s("1000"))),
                    ]),
            ])
            .with_validate_only(true)
            .into(),
        // v0 carries no election type (always PREFERRED).
        ApiKey::ElectLeaders => ElectLeadersRequest::default()
            .with_election_type(if v >= 1 { 1 } else { 0 })
            .with_topic_partitions(Some(vec![
                elect_leaders_request::TopicPartitions::default()
                    .with_topic(topic("orders"))
                    .with_partitions(vec![0, 2]),
            ]))
            .with_timeout_ms(30_000)
            .into(),
        // A move and a cancellation (null replicas); v1 adds the replication factor flag.
        ApiKey::AlterPartitionReassignments => AlterPartitionReassignmentsRequest::default()
            .with_timeout_ms(60_000)
            .with_allow_replication_factor_change(v < 1)
            .with_topics(vec![
                alter_partition_reassignments_request::ReassignableTopic::default()
                    .with_name(topic("orders"))
                    .with_partitions(vec![
                        alter_partition_reassignments_request::ReassignablePartition::default()
                            .with_partition_index(0)
                            .with_replicas(Some(vec![BrokerId(2), BrokerId(3), BrokerId(4)])),
                        alter_partition_reassignments_request::ReassignablePartition::default()
                            .with_partition_index(1)
                            .with_replicas(None),
                    ]),
            ])
            .into(),
        ApiKey::ListPartitionReassignments => ListPartitionReassignmentsRequest::default()
            .with_timeout_ms(60_000)
            .with_topics(Some(vec![
                list_partition_reassignments_request::ListPartitionReassignmentsTopics::default()
                    .with_name(topic("orders"))
                    .with_partition_indexes(vec![0, 1]),
            ]))
            .into(),
        ApiKey::IncrementalAlterConfigs => IncrementalAlterConfigsRequest::default()
            .with_resources(vec![
                incremental_alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s("orders"))
                    .with_configs(vec![
                        incremental_alter_configs_request::AlterableConfig::default()
                            .with_name(s("retention.ms"))
                            .with_config_operation(0)
                            .with_value(None),
                    ]),
            ])
            .into(),
        ApiKey::DeleteRecords => DeleteRecordsRequest::default()
            .with_topics(vec![
                delete_records_request::DeleteRecordsTopic::default()
                    .with_name(topic("orders"))
                    .with_partitions(vec![
                        delete_records_request::DeleteRecordsPartition::default()
                            .with_partition_index(0)
                            .with_offset(100),
                    ]),
            ])
            .with_timeout_ms(30_000)
            .into(),
        ApiKey::DescribeQuorum => DescribeQuorumRequest::default()
            .with_topics(vec![
                describe_quorum_request::TopicData::default()
                    .with_topic_name(topic("__cluster_metadata"))
                    .with_partitions(vec![
                        describe_quorum_request::PartitionData::default().with_partition_index(0),
                    ]),
            ])
            .into(),
        // replica_id from v3 (its default before: -2), current_leader_epoch from v2.
        ApiKey::OffsetForLeaderEpoch => OffsetForLeaderEpochRequest::default()
            .with_replica_id((if v >= 3 { -1 } else { -2 }).into())
            .with_topics(vec![
                offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
                    .with_topic(topic("orders"))
                    .with_partitions(vec![
                        offset_for_leader_epoch_request::OffsetForLeaderPartition::default()
                            .with_partition(1)
                            .with_current_leader_epoch(if v >= 2 { 4 } else { -1 })
                            .with_leader_epoch(3),
                    ]),
            ])
            .into(),
        ApiKey::DescribeCluster => DescribeClusterRequest::default()
            .with_include_cluster_authorized_operations(true)
            .with_endpoint_type(1)
            .with_include_fenced_brokers(v >= 2)
            .into(),
        ApiKey::DescribeTopicPartitions => DescribeTopicPartitionsRequest::default()
            .with_topics(vec![
                describe_topic_partitions_request::TopicRequest::default()
                    .with_name(topic("orders")),
            ])
            .with_response_partition_limit(2000)
            .with_cursor(Some(
                describe_topic_partitions_request::Cursor::default()
                    .with_topic_name(topic("orders"))
                    .with_partition_index(4),
            ))
            .into(),
        ApiKey::InitProducerId => InitProducerIdRequest::default()
            .with_transactional_id(if v >= 3 {
                Some(TransactionalId(s("txn-1")))
            } else {
                None
            })
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(if v >= 3 { 17 } else { -1 }))
            .with_producer_epoch(if v >= 3 { 2 } else { -1 })
            .into(),
        ApiKey::FindCoordinator => FindCoordinatorRequest::default()
            .with_key(if v <= 3 { s("group-1") } else { s("") })
            .with_key_type(0)
            .with_coordinator_keys(if v >= 4 {
                vec![s("group-1"), s("group-2")]
            } else {
                vec![]
            })
            .into(),
        ApiKey::JoinGroup => JoinGroupRequest::default()
            .with_group_id(group("group-1"))
            .with_session_timeout_ms(45_000)
            .with_rebalance_timeout_ms(if v >= 1 { 300_000 } else { -1 })
            .with_member_id(s(""))
            .with_group_instance_id(if v >= 5 { Some(s("instance-1")) } else { None })
            .with_protocol_type(s("consumer"))
            .with_protocols(vec![
                join_group_request::JoinGroupRequestProtocol::default()
                    .with_name(s("range"))
                    .with_metadata(Bytes::from_static(&[
                        0, 1, 0, 0, 0, 1, 0, 6, b'o', b'r', b'd', b'e', b'r', b's',
                    ])),
            ])
            .with_reason(if v >= 8 { Some(s("rebalance")) } else { None })
            .into(),
        ApiKey::SyncGroup => SyncGroupRequest::default()
            .with_group_id(group("group-1"))
            .with_generation_id(3)
            .with_member_id(s("member-1"))
            .with_group_instance_id(if v >= 3 { Some(s("instance-1")) } else { None })
            .with_protocol_type(if v >= 5 { Some(s("consumer")) } else { None })
            .with_protocol_name(if v >= 5 { Some(s("range")) } else { None })
            .with_assignments(vec![
                sync_group_request::SyncGroupRequestAssignment::default()
                    .with_member_id(s("member-1"))
                    .with_assignment(Bytes::from_static(&[0, 1, 0, 0, 0, 0])),
            ])
            .into(),
        ApiKey::Heartbeat => HeartbeatRequest::default()
            .with_group_id(group("group-1"))
            .with_generation_id(3)
            .with_member_id(s("member-1"))
            .with_group_instance_id(if v >= 3 { Some(s("instance-1")) } else { None })
            .into(),
        ApiKey::LeaveGroup => LeaveGroupRequest::default()
            .with_group_id(group("group-1"))
            .with_member_id(if v <= 2 { s("member-1") } else { s("") })
            .with_members(if v >= 3 {
                vec![
                    leave_group_request::MemberIdentity::default()
                        .with_member_id(s("member-1"))
                        .with_group_instance_id(Some(s("instance-1")))
                        .with_reason(if v >= 5 { Some(s("shutdown")) } else { None }),
                ]
            } else {
                vec![]
            })
            .into(),
        ApiKey::OffsetCommit => OffsetCommitRequest::default()
            .with_group_id(group("group-1"))
            .with_generation_id_or_member_epoch(if v >= 1 { 3 } else { -1 })
            .with_member_id(if v >= 1 { s("member-1") } else { s("") })
            .with_group_instance_id(if v >= 7 { Some(s("instance-1")) } else { None })
            .with_retention_time_ms(if (2..=4).contains(&v) { 86_400_000 } else { -1 })
            .with_topics(vec![
                offset_commit_request::OffsetCommitRequestTopic::default()
                    .with_name(topic("orders"))
                    .with_partitions(vec![
                        offset_commit_request::OffsetCommitRequestPartition::default()
                            .with_partition_index(0)
                            .with_committed_offset(42)
                            .with_committed_leader_epoch(if v >= 6 { 1 } else { -1 })
                            .with_committed_metadata(Some(s("meta"))),
                    ]),
            ])
            .into(),
        ApiKey::OffsetFetch => OffsetFetchRequest::default()
            .with_group_id(if v <= 7 {
                group("group-1")
            } else {
                Default::default()
            })
            .with_topics(if v <= 7 {
                Some(vec![
                    offset_fetch_request::OffsetFetchRequestTopic::default()
                        .with_name(topic("orders"))
                        .with_partition_indexes(vec![0, 1]),
                ])
            } else {
                Some(vec![])
            })
            .with_groups(if v >= 8 {
                vec![
                    offset_fetch_request::OffsetFetchRequestGroup::default()
                        .with_group_id(group("group-1"))
                        .with_member_id(if v >= 9 { Some(s("member-1")) } else { None })
                        .with_member_epoch(if v >= 9 { 5 } else { -1 })
                        .with_topics(Some(vec![
                            offset_fetch_request::OffsetFetchRequestTopics::default()
                                .with_name(topic("orders"))
                                .with_partition_indexes(vec![0, 1]),
                        ])),
                ]
            } else {
                vec![]
            })
            .with_require_stable(v >= 7)
            .into(),
        ApiKey::ListGroups => ListGroupsRequest::default()
            .with_states_filter(if v >= 4 { vec![s("Stable")] } else { vec![] })
            .with_types_filter(if v >= 5 { vec![s("classic")] } else { vec![] })
            .into(),
        ApiKey::DescribeGroups => DescribeGroupsRequest::default()
            .with_groups(vec![group("group-1"), group("group-2")])
            .with_include_authorized_operations(v >= 3)
            .into(),
        ApiKey::DeleteGroups => DeleteGroupsRequest::default()
            .with_groups_names(vec![group("group-1")])
            .into(),
        ApiKey::OffsetDelete => OffsetDeleteRequest::default()
            .with_group_id(group("group-1"))
            .with_topics(vec![
                offset_delete_request::OffsetDeleteRequestTopic::default()
                    .with_name(topic("orders"))
                    .with_partitions(vec![
                        offset_delete_request::OffsetDeleteRequestPartition::default()
                            .with_partition_index(0),
                    ]),
            ])
            .into(),
        ApiKey::SaslHandshake => SaslHandshakeRequest::default()
            .with_mechanism(s("SCRAM-SHA-512"))
            .into(),
        ApiKey::SaslAuthenticate => SaslAuthenticateRequest::default()
            .with_auth_bytes(Bytes::from_static(b"n,,n=alice,r=nonce"))
            .into(),
        ApiKey::DescribeUserScramCredentials => DescribeUserScramCredentialsRequest::default()
            .with_users(Some(vec![
                describe_user_scram_credentials_request::UserName::default().with_name(s("alice")),
            ]))
            .into(),
        ApiKey::AlterUserScramCredentials => AlterUserScramCredentialsRequest::default()
            .with_deletions(vec![
                alter_user_scram_credentials_request::ScramCredentialDeletion::default()
                    .with_name(s("bob"))
                    .with_mechanism(1),
            ])
            .with_upsertions(vec![
                alter_user_scram_credentials_request::ScramCredentialUpsertion::default()
                    .with_name(s("alice"))
                    .with_mechanism(2)
                    .with_iterations(8192)
                    .with_salt(Bytes::from_static(b"salt"))
                    .with_salted_password(Bytes::from_static(&[7; 64])),
            ])
            .into(),
        ApiKey::DescribeAcls => DescribeAclsRequest::default()
            .with_resource_type_filter(2)
            .with_resource_name_filter(Some(s("orders")))
            // v0 has no pattern type: LITERAL (3) is implied.
            .with_pattern_type_filter(if v >= 1 { 2 } else { 3 })
            .with_principal_filter(Some(s("User:alice")))
            .with_host_filter(None)
            .with_operation(1)
            .with_permission_type(3)
            .into(),
        ApiKey::CreateAcls => CreateAclsRequest::default()
            .with_creations(vec![
                create_acls_request::AclCreation::default()
                    .with_resource_type(2)
                    .with_resource_name(s("orders"))
                    .with_resource_pattern_type(if v >= 1 { 4 } else { 3 })
                    .with_principal(s("User:alice"))
                    .with_host(s("*"))
                    .with_operation(3)
                    .with_permission_type(3),
            ])
            .into(),
        ApiKey::DeleteAcls => DeleteAclsRequest::default()
            .with_filters(vec![
                delete_acls_request::DeleteAclsFilter::default()
                    .with_resource_type_filter(3)
                    .with_resource_name_filter(None)
                    .with_pattern_type_filter(if v >= 1 { 1 } else { 3 })
                    .with_principal_filter(Some(s("User:bob")))
                    .with_host_filter(Some(s("10.0.0.1")))
                    .with_operation(8)
                    .with_permission_type(2),
            ])
            .into(),
        ApiKey::DescribeLogDirs => DescribeLogDirsRequest::default()
            .with_topics(Some(vec![
                describe_log_dirs_request::DescribableLogDirTopic::default()
                    .with_topic(topic("orders"))
                    .with_partitions(vec![0, 3]),
            ]))
            .into(),
        // v4+ is the batched form of KIP-890; v0-3 one transaction.
        ApiKey::AddPartitionsToTxn => {
            use rill_protocol::kafka_protocol::messages::add_partitions_to_txn_request::*;
            let topics = vec![
                AddPartitionsToTxnTopic::default()
                    .with_name(topic("orders"))
                    .with_partitions(vec![0, 2]),
            ];
            let req = rill_protocol::kafka_protocol::messages::AddPartitionsToTxnRequest::default();
            if v >= 4 {
                req.with_transactions(vec![
                    AddPartitionsToTxnTransaction::default()
                        .with_transactional_id(TransactionalId(s("txn-1")))
                        .with_producer_id(ProducerId(17))
                        .with_producer_epoch(2)
                        .with_verify_only(true)
                        .with_topics(topics),
                ])
                .into()
            } else {
                req.with_v3_and_below_transactional_id(TransactionalId(s("txn-1")))
                    .with_v3_and_below_producer_id(ProducerId(17))
                    .with_v3_and_below_producer_epoch(2)
                    .with_v3_and_below_topics(topics)
                    .into()
            }
        }
        ApiKey::AddOffsetsToTxn => {
            rill_protocol::kafka_protocol::messages::AddOffsetsToTxnRequest::default()
                .with_transactional_id(TransactionalId(s("txn-1")))
                .with_producer_id(ProducerId(17))
                .with_producer_epoch(2)
                .with_group_id(rill_protocol::kafka_protocol::messages::GroupId(s("g")))
                .into()
        }
        ApiKey::EndTxn => rill_protocol::kafka_protocol::messages::EndTxnRequest::default()
            .with_transactional_id(TransactionalId(s("txn-1")))
            .with_producer_id(ProducerId(17))
            .with_producer_epoch(2)
            .with_committed(true)
            .into(),
        ApiKey::WriteTxnMarkers => {
            use rill_protocol::kafka_protocol::messages::write_txn_markers_request::*;
            rill_protocol::kafka_protocol::messages::WriteTxnMarkersRequest::default()
                .with_markers(vec![
                    WritableTxnMarker::default()
                        .with_producer_id(ProducerId(17))
                        .with_producer_epoch(2)
                        .with_transaction_result(true)
                        .with_coordinator_epoch(3)
                        .with_topics(vec![
                            WritableTxnMarkerTopic::default()
                                .with_name(topic("orders"))
                                .with_partition_indexes(vec![1]),
                        ]),
                ])
                .into()
        }
        // The group's generation and member from v3 (KIP-447).
        ApiKey::TxnOffsetCommit => {
            use rill_protocol::kafka_protocol::messages::txn_offset_commit_request::*;
            let req = rill_protocol::kafka_protocol::messages::TxnOffsetCommitRequest::default()
                .with_transactional_id(TransactionalId(s("txn-1")))
                .with_group_id(rill_protocol::kafka_protocol::messages::GroupId(s("g")))
                .with_producer_id(ProducerId(17))
                .with_producer_epoch(2)
                .with_topics(vec![
                    TxnOffsetCommitRequestTopic::default()
                        .with_name(topic("orders"))
                        .with_partitions(vec![
                            TxnOffsetCommitRequestPartition::default()
                                .with_partition_index(0)
                                .with_committed_offset(42)
                                .with_committed_leader_epoch(if v >= 2 { 3 } else { -1 })
                                .with_committed_metadata(Some(s("m"))),
                        ]),
                ]);
            if v >= 3 {
                req.with_generation_id(5)
                    .with_member_id(s("member-1"))
                    .with_group_instance_id(Some(s("instance-1")))
                    .into()
            } else {
                req.into()
            }
        }
        ApiKey::DescribeProducers => {
            use rill_protocol::kafka_protocol::messages::describe_producers_request::*;
            rill_protocol::kafka_protocol::messages::DescribeProducersRequest::default()
                .with_topics(vec![
                    TopicRequest::default()
                        .with_name(topic("orders"))
                        .with_partition_indexes(vec![0, 1]),
                ])
                .into()
        }
        ApiKey::DescribeTransactions => {
            rill_protocol::kafka_protocol::messages::DescribeTransactionsRequest::default()
                .with_transactional_ids(vec![TransactionalId(s("txn-1"))])
                .into()
        }
        // v1 adds the duration filter (KIP-994), v2 the id pattern (KIP-1152).
        ApiKey::ListTransactions => {
            let req = rill_protocol::kafka_protocol::messages::ListTransactionsRequest::default()
                .with_state_filters(vec![s("Ongoing")])
                .with_producer_id_filters(vec![ProducerId(17)]);
            let req = if v >= 1 {
                req.with_duration_filter(60_000)
            } else {
                req
            };
            if v >= 2 {
                req.with_transactional_id_pattern(Some(s("txn-.*"))).into()
            } else {
                req.into()
            }
        }
        other => panic!("no sample for {other:?}"),
    }
}
