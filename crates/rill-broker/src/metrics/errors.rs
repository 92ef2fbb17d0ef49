//! Every error code in an answer: the one walk over each response type the broker sends, for
//! `rill_errors_total`.

use rill_protocol::ResponseKind;

/// Calls `count` with every non-zero error code in `body`: the top-level code and each
/// per-topic, per-partition, per-group, per-member and per-resource one. A field the answer's
/// version does not carry is left at zero by the handlers, so it is never counted.
pub(crate) fn for_each_error_code(body: &ResponseKind, mut count: impl FnMut(i16)) {
    let mut f = |code: i16| {
        if code != 0 {
            count(code);
        }
    };
    match body {
        ResponseKind::ApiVersions(r) => f(r.error_code),
        ResponseKind::Metadata(r) => {
            f(r.error_code);
            for t in &r.topics {
                f(t.error_code);
                t.partitions.iter().for_each(|p| f(p.error_code));
            }
        }
        ResponseKind::Produce(r) => {
            for t in &r.responses {
                t.partition_responses.iter().for_each(|p| f(p.error_code));
            }
        }
        ResponseKind::Fetch(r) => {
            f(r.error_code);
            for t in &r.responses {
                t.partitions.iter().for_each(|p| f(p.error_code));
            }
        }
        ResponseKind::ListOffsets(r) => {
            for t in &r.topics {
                t.partitions.iter().for_each(|p| f(p.error_code));
            }
        }
        ResponseKind::OffsetForLeaderEpoch(r) => {
            for t in &r.topics {
                t.partitions.iter().for_each(|p| f(p.error_code));
            }
        }
        ResponseKind::CreateTopics(r) => {
            for t in &r.topics {
                f(t.error_code);
                f(t.topic_config_error_code);
            }
        }
        ResponseKind::DeleteTopics(r) => r.responses.iter().for_each(|t| f(t.error_code)),
        ResponseKind::CreatePartitions(r) => r.results.iter().for_each(|t| f(t.error_code)),
        ResponseKind::ElectLeaders(r) => {
            f(r.error_code);
            for t in &r.replica_election_results {
                t.partition_result.iter().for_each(|p| f(p.error_code));
            }
        }
        ResponseKind::AlterPartitionReassignments(r) => {
            f(r.error_code);
            for t in &r.responses {
                t.partitions.iter().for_each(|p| f(p.error_code));
            }
        }
        ResponseKind::ListPartitionReassignments(r) => f(r.error_code),
        ResponseKind::DeleteRecords(r) => {
            for t in &r.topics {
                t.partitions.iter().for_each(|p| f(p.error_code));
            }
        }
        ResponseKind::DescribeConfigs(r) => r.results.iter().for_each(|c| f(c.error_code)),
        ResponseKind::AlterConfigs(r) => r.responses.iter().for_each(|c| f(c.error_code)),
        ResponseKind::IncrementalAlterConfigs(r) => {
            r.responses.iter().for_each(|c| f(c.error_code));
        }
        ResponseKind::DescribeCluster(r) => f(r.error_code),
        ResponseKind::DescribeLogDirs(r) => {
            f(r.error_code);
            r.results.iter().for_each(|d| f(d.error_code));
        }
        ResponseKind::DescribeTopicPartitions(r) => {
            for t in &r.topics {
                f(t.error_code);
                t.partitions.iter().for_each(|p| f(p.error_code));
            }
        }
        ResponseKind::FindCoordinator(r) => {
            f(r.error_code);
            r.coordinators.iter().for_each(|c| f(c.error_code));
        }
        ResponseKind::JoinGroup(r) => f(r.error_code),
        ResponseKind::SyncGroup(r) => f(r.error_code),
        ResponseKind::Heartbeat(r) => f(r.error_code),
        ResponseKind::LeaveGroup(r) => {
            f(r.error_code);
            r.members.iter().for_each(|m| f(m.error_code));
        }
        ResponseKind::ListGroups(r) => f(r.error_code),
        ResponseKind::DescribeGroups(r) => r.groups.iter().for_each(|g| f(g.error_code)),
        ResponseKind::DeleteGroups(r) => r.results.iter().for_each(|g| f(g.error_code)),
        ResponseKind::OffsetCommit(r) => {
            for t in &r.topics {
                t.partitions.iter().for_each(|p| f(p.error_code));
            }
        }
        ResponseKind::OffsetFetch(r) => {
            // v0-7 answer one group at the top level, v8+ a list of groups.
            f(r.error_code);
            for t in &r.topics {
                t.partitions.iter().for_each(|p| f(p.error_code));
            }
            for g in &r.groups {
                f(g.error_code);
                for t in &g.topics {
                    t.partitions.iter().for_each(|p| f(p.error_code));
                }
            }
        }
        ResponseKind::OffsetDelete(r) => {
            f(r.error_code);
            for t in &r.topics {
                t.partitions.iter().for_each(|p| f(p.error_code));
            }
        }
        ResponseKind::InitProducerId(r) => f(r.error_code),
        ResponseKind::CreateAcls(r) => r.results.iter().for_each(|c| f(c.error_code)),
        ResponseKind::DescribeAcls(r) => f(r.error_code),
        ResponseKind::DeleteAcls(r) => {
            for filter in &r.filter_results {
                f(filter.error_code);
                filter.matching_acls.iter().for_each(|a| f(a.error_code));
            }
        }
        ResponseKind::DescribeQuorum(r) => {
            f(r.error_code);
            for t in &r.topics {
                t.partitions.iter().for_each(|p| f(p.error_code));
            }
        }
        ResponseKind::SaslHandshake(r) => f(r.error_code),
        ResponseKind::SaslAuthenticate(r) => f(r.error_code),
        ResponseKind::DescribeUserScramCredentials(r) => {
            f(r.error_code);
            r.results.iter().for_each(|u| f(u.error_code));
        }
        ResponseKind::AlterUserScramCredentials(r) => {
            r.results.iter().for_each(|u| f(u.error_code));
        }
        ResponseKind::AddPartitionsToTxn(r) => {
            f(r.error_code);
            r.results_by_topic_v3_and_below
                .iter()
                .chain(
                    r.results_by_transaction
                        .iter()
                        .flat_map(|t| &t.topic_results),
                )
                .flat_map(|t| &t.results_by_partition)
                .for_each(|p| f(p.partition_error_code));
        }
        ResponseKind::AddOffsetsToTxn(r) => f(r.error_code),
        ResponseKind::EndTxn(r) => f(r.error_code),
        ResponseKind::TxnOffsetCommit(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| f(p.error_code)),
        ResponseKind::WriteTxnMarkers(r) => r
            .markers
            .iter()
            .flat_map(|m| &m.topics)
            .flat_map(|t| &t.partitions)
            .for_each(|p| f(p.error_code)),
        ResponseKind::DescribeTransactions(r) => {
            r.transaction_states.iter().for_each(|t| f(t.error_code));
        }
        ResponseKind::ListTransactions(r) => f(r.error_code),
        ResponseKind::DescribeProducers(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| f(p.error_code)),
        // The broker answers only the APIs above (rill_protocol::SUPPORTED); the test below
        // keeps the two lists together.
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use rill_protocol::kafka_protocol::messages::*;
    use rill_protocol::{ApiKey, SUPPORTED};

    use super::*;

    fn codes(body: &ResponseKind) -> Vec<i16> {
        let mut out = Vec::new();
        for_each_error_code(body, |code| out.push(code));
        out
    }

    /// One answer per served API, each carrying error codes 1, 2, ... where that response type
    /// has error fields (at every level it has them), and the codes it should report.
    fn samples() -> Vec<(ApiKey, ResponseKind, Vec<i16>)> {
        vec![
            (
                ApiKey::ApiVersions,
                ApiVersionsResponse::default().with_error_code(35).into(),
                vec![35],
            ),
            (
                ApiKey::Metadata,
                MetadataResponse::default()
                    .with_topics(vec![
                        metadata_response::MetadataResponseTopic::default()
                            .with_error_code(3)
                            .with_partitions(vec![
                                metadata_response::MetadataResponsePartition::default(),
                                metadata_response::MetadataResponsePartition::default()
                                    .with_error_code(5),
                            ]),
                        metadata_response::MetadataResponseTopic::default(),
                    ])
                    .into(),
                vec![3, 5],
            ),
            (
                ApiKey::Produce,
                ProduceResponse::default()
                    .with_responses(vec![
                        produce_response::TopicProduceResponse::default().with_partition_responses(
                            vec![
                                produce_response::PartitionProduceResponse::default()
                                    .with_error_code(3),
                                produce_response::PartitionProduceResponse::default(),
                                produce_response::PartitionProduceResponse::default()
                                    .with_error_code(10),
                            ],
                        ),
                    ])
                    .into(),
                vec![3, 10],
            ),
            (
                ApiKey::Fetch,
                FetchResponse::default()
                    .with_error_code(70)
                    .with_responses(vec![
                        fetch_response::FetchableTopicResponse::default().with_partitions(vec![
                            fetch_response::PartitionData::default().with_error_code(1),
                            fetch_response::PartitionData::default().with_error_code(3),
                        ]),
                    ])
                    .into(),
                vec![70, 1, 3],
            ),
            (
                ApiKey::ListOffsets,
                ListOffsetsResponse::default()
                    .with_topics(vec![
                        list_offsets_response::ListOffsetsTopicResponse::default().with_partitions(
                            vec![
                                list_offsets_response::ListOffsetsPartitionResponse::default()
                                    .with_error_code(3),
                            ],
                        ),
                    ])
                    .into(),
                vec![3],
            ),
            (
                ApiKey::OffsetForLeaderEpoch,
                OffsetForLeaderEpochResponse::default()
                    .with_topics(vec![
                        offset_for_leader_epoch_response::OffsetForLeaderTopicResult::default()
                            .with_partitions(vec![
                                offset_for_leader_epoch_response::EpochEndOffset::default()
                                    .with_error_code(74),
                            ]),
                    ])
                    .into(),
                vec![74],
            ),
            (
                ApiKey::CreateTopics,
                CreateTopicsResponse::default()
                    .with_topics(vec![
                        create_topics_response::CreatableTopicResult::default()
                            .with_error_code(36),
                        create_topics_response::CreatableTopicResult::default()
                            .with_topic_config_error_code(40),
                    ])
                    .into(),
                vec![36, 40],
            ),
            (
                ApiKey::DeleteTopics,
                DeleteTopicsResponse::default()
                    .with_responses(vec![
                        delete_topics_response::DeletableTopicResult::default().with_error_code(3),
                    ])
                    .into(),
                vec![3],
            ),
            (
                ApiKey::CreatePartitions,
                CreatePartitionsResponse::default()
                    .with_results(vec![
                        create_partitions_response::CreatePartitionsTopicResult::default()
                            .with_error_code(37),
                    ])
                    .into(),
                vec![37],
            ),
            (
                ApiKey::ElectLeaders,
                ElectLeadersResponse::default()
                    .with_error_code(31)
                    .with_replica_election_results(vec![
                        elect_leaders_response::ReplicaElectionResult::default()
                            .with_partition_result(vec![
                                elect_leaders_response::PartitionResult::default()
                                    .with_error_code(84),
                                elect_leaders_response::PartitionResult::default(),
                                elect_leaders_response::PartitionResult::default()
                                    .with_error_code(80),
                            ]),
                    ])
                    .into(),
                vec![31, 84, 80],
            ),
            (
                ApiKey::AlterPartitionReassignments,
                AlterPartitionReassignmentsResponse::default()
                    .with_responses(vec![
                        alter_partition_reassignments_response::ReassignableTopicResponse::default()
                            .with_partitions(vec![
                                alter_partition_reassignments_response::ReassignablePartitionResponse::default()
                                    .with_error_code(39),
                                alter_partition_reassignments_response::ReassignablePartitionResponse::default(),
                                alter_partition_reassignments_response::ReassignablePartitionResponse::default()
                                    .with_error_code(85),
                            ]),
                    ])
                    .into(),
                vec![39, 85],
            ),
            (
                ApiKey::ListPartitionReassignments,
                ListPartitionReassignmentsResponse::default()
                    .with_error_code(31)
                    .into(),
                vec![31],
            ),
            (
                ApiKey::DeleteRecords,
                DeleteRecordsResponse::default()
                    .with_topics(vec![
                        delete_records_response::DeleteRecordsTopicResult::default()
                            .with_partitions(vec![
                                delete_records_response::DeleteRecordsPartitionResult::default()
                                    .with_error_code(1),
                            ]),
                    ])
                    .into(),
                vec![1],
            ),
            (
                ApiKey::DescribeConfigs,
                DescribeConfigsResponse::default()
                    .with_results(vec![
                        describe_configs_response::DescribeConfigsResult::default()
                            .with_error_code(3),
                    ])
                    .into(),
                vec![3],
            ),
            (
                ApiKey::AlterConfigs,
                AlterConfigsResponse::default()
                    .with_responses(vec![
                        alter_configs_response::AlterConfigsResourceResponse::default()
                            .with_error_code(40),
                    ])
                    .into(),
                vec![40],
            ),
            (
                ApiKey::IncrementalAlterConfigs,
                IncrementalAlterConfigsResponse::default()
                    .with_responses(vec![
                        incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                            .with_error_code(40),
                    ])
                    .into(),
                vec![40],
            ),
            (
                ApiKey::DescribeCluster,
                DescribeClusterResponse::default().with_error_code(42).into(),
                vec![42],
            ),
            (
                ApiKey::DescribeLogDirs,
                DescribeLogDirsResponse::default()
                    .with_error_code(31)
                    .with_results(vec![
                        describe_log_dirs_response::DescribeLogDirsResult::default()
                            .with_error_code(56),
                        describe_log_dirs_response::DescribeLogDirsResult::default(),
                    ])
                    .into(),
                vec![31, 56],
            ),
            (
                ApiKey::DescribeTopicPartitions,
                DescribeTopicPartitionsResponse::default()
                    .with_topics(vec![
                        describe_topic_partitions_response::DescribeTopicPartitionsResponseTopic::default()
                            .with_error_code(3)
                            .with_partitions(vec![
                                describe_topic_partitions_response::DescribeTopicPartitionsResponsePartition::default()
                                    .with_error_code(6),
                            ]),
                    ])
                    .into(),
                vec![3, 6],
            ),
            (
                ApiKey::FindCoordinator,
                FindCoordinatorResponse::default()
                    .with_error_code(15)
                    .with_coordinators(vec![
                        find_coordinator_response::Coordinator::default().with_error_code(15),
                    ])
                    .into(),
                vec![15, 15],
            ),
            (
                ApiKey::JoinGroup,
                JoinGroupResponse::default().with_error_code(79).into(),
                vec![79],
            ),
            (
                ApiKey::SyncGroup,
                SyncGroupResponse::default().with_error_code(27).into(),
                vec![27],
            ),
            (
                ApiKey::Heartbeat,
                HeartbeatResponse::default().with_error_code(25).into(),
                vec![25],
            ),
            (
                ApiKey::LeaveGroup,
                LeaveGroupResponse::default()
                    .with_error_code(25)
                    .with_members(vec![
                        leave_group_response::MemberResponse::default().with_error_code(25),
                    ])
                    .into(),
                vec![25, 25],
            ),
            (
                ApiKey::ListGroups,
                ListGroupsResponse::default().with_error_code(15).into(),
                vec![15],
            ),
            (
                ApiKey::DescribeGroups,
                DescribeGroupsResponse::default()
                    .with_groups(vec![
                        describe_groups_response::DescribedGroup::default().with_error_code(69),
                    ])
                    .into(),
                vec![69],
            ),
            (
                ApiKey::DeleteGroups,
                DeleteGroupsResponse::default()
                    .with_results(vec![
                        delete_groups_response::DeletableGroupResult::default().with_error_code(68),
                    ])
                    .into(),
                vec![68],
            ),
            (
                ApiKey::OffsetCommit,
                OffsetCommitResponse::default()
                    .with_topics(vec![
                        offset_commit_response::OffsetCommitResponseTopic::default()
                            .with_partitions(vec![
                                offset_commit_response::OffsetCommitResponsePartition::default()
                                    .with_error_code(22),
                            ]),
                    ])
                    .into(),
                vec![22],
            ),
            (
                ApiKey::OffsetFetch,
                OffsetFetchResponse::default()
                    .with_error_code(16)
                    .with_topics(vec![
                        offset_fetch_response::OffsetFetchResponseTopic::default()
                            .with_partitions(vec![
                                offset_fetch_response::OffsetFetchResponsePartition::default()
                                    .with_error_code(3),
                            ]),
                    ])
                    .with_groups(vec![
                        offset_fetch_response::OffsetFetchResponseGroup::default()
                            .with_error_code(69)
                            .with_topics(vec![
                                offset_fetch_response::OffsetFetchResponseTopics::default()
                                    .with_partitions(vec![
                                        offset_fetch_response::OffsetFetchResponsePartitions::default()
                                            .with_error_code(3),
                                    ]),
                            ]),
                    ])
                    .into(),
                vec![16, 3, 69, 3],
            ),
            (
                ApiKey::OffsetDelete,
                OffsetDeleteResponse::default()
                    .with_error_code(69)
                    .with_topics(vec![
                        offset_delete_response::OffsetDeleteResponseTopic::default()
                            .with_partitions(vec![
                                offset_delete_response::OffsetDeleteResponsePartition::default()
                                    .with_error_code(86),
                            ]),
                    ])
                    .into(),
                vec![69, 86],
            ),
            (
                ApiKey::InitProducerId,
                InitProducerIdResponse::default().with_error_code(42).into(),
                vec![42],
            ),
            (
                ApiKey::CreateAcls,
                CreateAclsResponse::default()
                    .with_results(vec![
                        create_acls_response::AclCreationResult::default().with_error_code(31),
                    ])
                    .into(),
                vec![31],
            ),
            (
                ApiKey::DescribeAcls,
                DescribeAclsResponse::default().with_error_code(54).into(),
                vec![54],
            ),
            (
                ApiKey::DeleteAcls,
                DeleteAclsResponse::default()
                    .with_filter_results(vec![
                        delete_acls_response::DeleteAclsFilterResult::default()
                            .with_error_code(42)
                            .with_matching_acls(vec![
                                delete_acls_response::DeleteAclsMatchingAcl::default()
                                    .with_error_code(31),
                            ]),
                    ])
                    .into(),
                vec![42, 31],
            ),
            (
                ApiKey::DescribeQuorum,
                DescribeQuorumResponse::default()
                    .with_error_code(41)
                    .with_topics(vec![
                        describe_quorum_response::TopicData::default().with_partitions(vec![
                            describe_quorum_response::PartitionData::default()
                                .with_error_code(6),
                        ]),
                    ])
                    .into(),
                vec![41, 6],
            ),
            (
                ApiKey::SaslHandshake,
                SaslHandshakeResponse::default().with_error_code(33).into(),
                vec![33],
            ),
            (
                ApiKey::SaslAuthenticate,
                SaslAuthenticateResponse::default().with_error_code(58).into(),
                vec![58],
            ),
            (
                ApiKey::DescribeUserScramCredentials,
                DescribeUserScramCredentialsResponse::default()
                    .with_error_code(31)
                    .with_results(vec![
                        describe_user_scram_credentials_response::DescribeUserScramCredentialsResult::default()
                            .with_error_code(91),
                    ])
                    .into(),
                vec![31, 91],
            ),
            (
                ApiKey::AlterUserScramCredentials,
                AlterUserScramCredentialsResponse::default()
                    .with_results(vec![
                        alter_user_scram_credentials_response::AlterUserScramCredentialsResult::default()
                            .with_error_code(93),
                    ])
                    .into(),
                vec![93],
            ),
            (
                ApiKey::AddPartitionsToTxn,
                {
                    use add_partitions_to_txn_response::*;
                    let topic = |code| {
                        vec![AddPartitionsToTxnTopicResult::default().with_results_by_partition(
                            vec![
                                AddPartitionsToTxnPartitionResult::default()
                                    .with_partition_error_code(code),
                            ],
                        )]
                    };
                    AddPartitionsToTxnResponse::default()
                        .with_error_code(31)
                        .with_results_by_topic_v3_and_below(topic(48))
                        .with_results_by_transaction(vec![
                            AddPartitionsToTxnResult::default().with_topic_results(topic(51)),
                        ])
                        .into()
                },
                vec![31, 48, 51],
            ),
            (
                ApiKey::AddOffsetsToTxn,
                AddOffsetsToTxnResponse::default().with_error_code(49).into(),
                vec![49],
            ),
            (
                ApiKey::EndTxn,
                EndTxnResponse::default().with_error_code(90).into(),
                vec![90],
            ),
            (
                ApiKey::TxnOffsetCommit,
                TxnOffsetCommitResponse::default()
                    .with_topics(vec![
                        txn_offset_commit_response::TxnOffsetCommitResponseTopic::default()
                            .with_partitions(vec![
                                txn_offset_commit_response::TxnOffsetCommitResponsePartition::default()
                                    .with_error_code(16),
                            ]),
                    ])
                    .into(),
                vec![16],
            ),
            (
                ApiKey::WriteTxnMarkers,
                {
                    use write_txn_markers_response::*;
                    WriteTxnMarkersResponse::default()
                        .with_markers(vec![WritableTxnMarkerResult::default().with_topics(vec![
                            WritableTxnMarkerTopicResult::default().with_partitions(vec![
                                WritableTxnMarkerPartitionResult::default().with_error_code(47),
                            ]),
                        ])])
                        .into()
                },
                vec![47],
            ),
            (
                ApiKey::DescribeTransactions,
                DescribeTransactionsResponse::default()
                    .with_transaction_states(vec![
                        describe_transactions_response::TransactionState::default()
                            .with_error_code(105),
                    ])
                    .into(),
                vec![105],
            ),
            (
                ApiKey::ListTransactions,
                ListTransactionsResponse::default().with_error_code(15).into(),
                vec![15],
            ),
            (
                ApiKey::DescribeProducers,
                DescribeProducersResponse::default()
                    .with_topics(vec![describe_producers_response::TopicResponse::default()
                        .with_partitions(vec![
                            describe_producers_response::PartitionResponse::default()
                                .with_error_code(6),
                        ])])
                    .into(),
                vec![6],
            ),
        ]
    }

    #[test]
    fn every_error_field_of_every_served_answer_is_counted() {
        let samples = samples();
        for (key, body, expected) in &samples {
            assert_eq!(&codes(body), expected, "{key:?}");
        }
        // Every API the broker serves has a sample, so a new API cannot be forgotten here.
        for (key, _, _) in SUPPORTED {
            assert!(
                samples.iter().any(|(k, _, _)| k == key),
                "no error-code walk tested for {key:?}"
            );
        }
    }

    #[test]
    fn an_answer_without_errors_counts_nothing() {
        let ok: [ResponseKind; 3] = [
            ApiVersionsResponse::default().into(),
            ProduceResponse::default()
                .with_responses(vec![
                    produce_response::TopicProduceResponse::default().with_partition_responses(
                        vec![produce_response::PartitionProduceResponse::default()],
                    ),
                ])
                .into(),
            FetchResponse::default()
                .with_responses(vec![
                    fetch_response::FetchableTopicResponse::default()
                        .with_partitions(vec![fetch_response::PartitionData::default()]),
                ])
                .into(),
        ];
        for body in &ok {
            assert!(codes(body).is_empty(), "{body:?}");
        }
    }
}
