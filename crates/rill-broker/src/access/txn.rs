//! The authorization rules of the transaction APIs (Kafka's table): a transactional producer
//! needs WRITE on its transactional id, WRITE on the topics it adds, READ on the group and its
//! topics for offsets; WriteTxnMarkers and the batched AddPartitionsToTxn (v4+) are for
//! brokers (CLUSTER_ACTION); operators need DESCRIBE on transactional ids and READ on topics.

use rill_protocol::ErrorCode;
use rill_protocol::kafka_protocol::messages::{self as m, RequestKind};

use super::{CLUSTER_DENIED, GROUP_DENIED, Gate, Op, Patch, R, TOPIC_DENIED};
use crate::authorizer::Access;
use crate::handler::transactions::{add_partitions_answer, offset_commit_answer};

const TXN_DENIED: ErrorCode = ErrorCode::TransactionalIdAuthorizationFailed;

/// Whether `body` is a transaction API's request, which [`gate`] decides.
pub(super) fn is_txn(body: &RequestKind) -> bool {
    matches!(
        body,
        RequestKind::AddPartitionsToTxn(_)
            | RequestKind::AddOffsetsToTxn(_)
            | RequestKind::EndTxn(_)
            | RequestKind::TxnOffsetCommit(_)
            | RequestKind::WriteTxnMarkers(_)
            | RequestKind::DescribeTransactions(_)
            | RequestKind::ListTransactions(_)
            | RequestKind::DescribeProducers(_)
    )
}

/// The gate of a transaction API ([`is_txn`]).
pub(super) fn gate(access: &Access<'_>, body: RequestKind, version: i16) -> Gate {
    let txn = |id: &str| access.allowed(Op::Write, R::TransactionalId, id);
    match body {
        RequestKind::AddPartitionsToTxn(req) => {
            if version >= 4 {
                if access.on_cluster(Op::ClusterAction) {
                    return Gate::Run(RequestKind::AddPartitionsToTxn(req), Patch::Nothing);
                }
                return Gate::Answer(
                    m::AddPartitionsToTxnResponse::default()
                        .with_error_code(CLUSTER_DENIED.code())
                        .into(),
                );
            }
            let id_ok = txn(&req.v3_and_below_transactional_id.0);
            let topic_ok = |t: &m::TopicName| access.allowed(Op::Write, R::Topic, &t.0);
            if id_ok && req.v3_and_below_topics.iter().all(|t| topic_ok(&t.name)) {
                return Gate::Run(RequestKind::AddPartitionsToTxn(req), Patch::Nothing);
            }
            let topics = add_partitions_answer(&req.v3_and_below_topics, |name, _| {
                match (id_ok, topic_ok(name)) {
                    (false, _) => TXN_DENIED,
                    (true, false) => TOPIC_DENIED,
                    (true, true) => ErrorCode::OperationNotAttempted,
                }
            });
            Gate::Answer(
                m::AddPartitionsToTxnResponse::default()
                    .with_results_by_topic_v3_and_below(topics)
                    .into(),
            )
        }
        RequestKind::AddOffsetsToTxn(req) => {
            let code = if !txn(&req.transactional_id.0) {
                TXN_DENIED
            } else if !access.allowed(Op::Read, R::Group, &req.group_id.0) {
                GROUP_DENIED
            } else {
                return Gate::Run(RequestKind::AddOffsetsToTxn(req), Patch::Nothing);
            };
            Gate::Answer(
                m::AddOffsetsToTxnResponse::default()
                    .with_error_code(code.code())
                    .into(),
            )
        }
        RequestKind::EndTxn(req) => {
            if txn(&req.transactional_id.0) {
                return Gate::Run(RequestKind::EndTxn(req), Patch::Nothing);
            }
            Gate::Answer(
                m::EndTxnResponse::default()
                    .with_error_code(TXN_DENIED.code())
                    .into(),
            )
        }
        RequestKind::TxnOffsetCommit(req) => {
            let whole = if !txn(&req.transactional_id.0) {
                Some(TXN_DENIED)
            } else if !access.allowed(Op::Read, R::Group, &req.group_id.0) {
                Some(GROUP_DENIED)
            } else {
                None
            };
            let topic_ok = |t: &m::TopicName| access.allowed(Op::Read, R::Topic, &t.0);
            if whole.is_none() && req.topics.iter().all(|t| topic_ok(&t.name)) {
                return Gate::Run(RequestKind::TxnOffsetCommit(req), Patch::Nothing);
            }
            let answer = offset_commit_answer(&req.topics, |name| {
                whole.unwrap_or(if topic_ok(name) {
                    ErrorCode::OperationNotAttempted
                } else {
                    TOPIC_DENIED
                })
            });
            Gate::Answer(answer.into())
        }
        RequestKind::WriteTxnMarkers(req) => {
            if access.on_cluster(Op::ClusterAction) {
                return Gate::Run(RequestKind::WriteTxnMarkers(req), Patch::Nothing);
            }
            use m::write_txn_markers_response::{
                WritableTxnMarkerPartitionResult, WritableTxnMarkerResult,
                WritableTxnMarkerTopicResult,
            };
            let markers = req
                .markers
                .iter()
                .map(|marker| {
                    let topics = marker
                        .topics
                        .iter()
                        .map(|t| {
                            let partitions = t
                                .partition_indexes
                                .iter()
                                .map(|p| {
                                    WritableTxnMarkerPartitionResult::default()
                                        .with_partition_index(*p)
                                        .with_error_code(CLUSTER_DENIED.code())
                                })
                                .collect();
                            WritableTxnMarkerTopicResult::default()
                                .with_name(t.name.clone())
                                .with_partitions(partitions)
                        })
                        .collect();
                    WritableTxnMarkerResult::default()
                        .with_producer_id(marker.producer_id)
                        .with_topics(topics)
                })
                .collect();
            Gate::Answer(
                m::WriteTxnMarkersResponse::default()
                    .with_markers(markers)
                    .into(),
            )
        }
        RequestKind::DescribeTransactions(mut req) => {
            let mut refused = Vec::new();
            req.transactional_ids.retain(|id| {
                let ok = access.allowed(Op::Describe, R::TransactionalId, &id.0);
                if !ok {
                    refused.push(id.clone());
                }
                ok
            });
            Gate::Run(
                RequestKind::DescribeTransactions(req),
                Patch::Transactions(refused),
            )
        }
        RequestKind::ListTransactions(req) => {
            Gate::Run(RequestKind::ListTransactions(req), Patch::ListTransactions)
        }
        RequestKind::DescribeProducers(mut req) => {
            let mut refused = Vec::new();
            req.topics.retain(|t| {
                let ok = access.allowed(Op::Read, R::Topic, &t.name.0);
                if !ok {
                    refused.push((t.name.clone(), t.partition_indexes.clone()));
                }
                ok
            });
            Gate::Run(
                RequestKind::DescribeProducers(req),
                Patch::Producers(refused),
            )
        }
        other => {
            tracing::error!(request = ?other, "not a transaction API");
            Gate::Close
        }
    }
}
