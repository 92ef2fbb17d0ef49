//! The transaction APIs (KIP-98, KIP-664, KIP-890): AddPartitionsToTxn, AddOffsetsToTxn,
//! EndTxn and TxnOffsetCommit from transactional producers; WriteTxnMarkers, which a
//! coordinator sends to partition leaders; DescribeTransactions, ListTransactions and
//! DescribeProducers for operators. The state machine lives in `crate::txn`.

use rill_protocol::ErrorCode;
use rill_protocol::kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use rill_protocol::kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use rill_protocol::kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use rill_protocol::kafka_protocol::messages::describe_transactions_response::{
    TopicData, TransactionState,
};
use rill_protocol::kafka_protocol::messages::list_transactions_response::TransactionState as Listed;
use rill_protocol::kafka_protocol::messages::txn_offset_commit_request::TxnOffsetCommitRequestTopic;
use rill_protocol::kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use rill_protocol::kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use rill_protocol::kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, DescribeProducersRequest, DescribeProducersResponse,
    DescribeTransactionsRequest, DescribeTransactionsResponse, EndTxnRequest, EndTxnResponse,
    ListTransactionsRequest, ListTransactionsResponse, ProducerId, TopicName, TransactionalId,
    TxnOffsetCommitRequest, TxnOffsetCommitResponse, WriteTxnMarkersRequest,
    WriteTxnMarkersResponse,
};
use rill_protocol::kafka_protocol::protocol::StrBytes;
use rill_record::Marker;

use crate::broker::Broker;
use crate::group::{Committed, OFFSETS_TOPIC};
use crate::partition::now_ms;
use crate::txn::Caller;
use crate::txn::state::TxnState;

/// PRODUCER_FENCED (KIP-588) as a client of `version` understands it: clients older than
/// `first` know only INVALID_PRODUCER_EPOCH.
pub(crate) fn fenced_for(code: ErrorCode, version: i16, first: i16) -> ErrorCode {
    if code == ErrorCode::ProducerFenced && version < first {
        ErrorCode::InvalidProducerEpoch
    } else {
        code
    }
}

fn caller(producer_id: ProducerId, producer_epoch: i16) -> Caller {
    Caller {
        producer_id: producer_id.0,
        producer_epoch,
    }
}

/// The partitions of `topics` that do not exist here, as Kafka checks them before adding any.
fn unknown_partitions(broker: &Broker, topics: &[AddPartitionsToTxnTopic]) -> bool {
    topics.iter().any(|t| {
        broker
            .topic(&t.name.0)
            .is_none_or(|topic| t.partitions.iter().any(|p| !topic.exists(*p)))
    })
}

/// AddPartitionsToTxn's per-partition answer, each partition's code from `code`.
pub(crate) fn add_partitions_answer(
    topics: &[AddPartitionsToTxnTopic],
    code: impl Fn(&TopicName, i32) -> ErrorCode,
) -> Vec<AddPartitionsToTxnTopicResult> {
    topics
        .iter()
        .map(|t| {
            let results = t
                .partitions
                .iter()
                .map(|p| {
                    AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(*p)
                        .with_partition_error_code(code(&t.name, *p).code())
                })
                .collect();
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.name.clone())
                .with_results_by_partition(results)
        })
        .collect()
}

/// The per-partition answer: `code` everywhere, except UNKNOWN_TOPIC_OR_PARTITION for the
/// partitions that do not exist when some do not (the rest OPERATION_NOT_ATTEMPTED).
fn topic_results(
    broker: &Broker,
    topics: &[AddPartitionsToTxnTopic],
    code: Option<ErrorCode>,
) -> Vec<AddPartitionsToTxnTopicResult> {
    add_partitions_answer(topics, |name, p| match code {
        Some(code) => code,
        None if broker.topic(&name.0).is_some_and(|t| t.exists(p)) => {
            ErrorCode::OperationNotAttempted
        }
        None => ErrorCode::UnknownTopicOrPartition,
    })
}

/// TxnOffsetCommit's per-partition answer, each topic's code from `code`.
pub(crate) fn offset_commit_answer(
    topics: &[TxnOffsetCommitRequestTopic],
    code: impl Fn(&TopicName) -> ErrorCode,
) -> TxnOffsetCommitResponse {
    let topics = topics
        .iter()
        .map(|t| {
            let code = code(&t.name);
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code.code())
                })
                .collect();
            TxnOffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}

fn partitions_of(topics: &[AddPartitionsToTxnTopic]) -> Vec<(String, i32)> {
    topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.0.to_string(), *p)))
        .collect()
}

pub(crate) async fn add_partitions(
    broker: &Broker,
    req: AddPartitionsToTxnRequest,
    version: i16,
) -> AddPartitionsToTxnResponse {
    if version < 4 {
        let id = req.v3_and_below_transactional_id.0.to_string();
        let topics = req.v3_and_below_topics;
        let code = if unknown_partitions(broker, &topics) {
            None
        } else {
            let caller = caller(
                req.v3_and_below_producer_id,
                req.v3_and_below_producer_epoch,
            );
            let added = broker
                .txns
                .add_partitions(&id, caller, partitions_of(&topics), false)
                .await;
            Some(fenced_for(
                added.err().unwrap_or(ErrorCode::None),
                version,
                2,
            ))
        };
        return AddPartitionsToTxnResponse::default()
            .with_results_by_topic_v3_and_below(topic_results(broker, &topics, code));
    }
    // v4+ (KIP-890): batches of transactions from brokers; `verify_only` asks whether each
    // partition is in the producer's open transaction.
    let mut results = Vec::with_capacity(req.transactions.len());
    for txn in req.transactions {
        let id = txn.transactional_id.0.to_string();
        let caller = caller(txn.producer_id, txn.producer_epoch);
        let topic_results = if txn.verify_only {
            add_partitions_answer(&txn.topics, |name, p| {
                broker
                    .txns
                    .verify(&id, caller, &name.0, p)
                    .err()
                    .unwrap_or(ErrorCode::None)
            })
        } else if unknown_partitions(broker, &txn.topics) {
            topic_results(broker, &txn.topics, None)
        } else {
            let added = broker
                .txns
                .add_partitions(&id, caller, partitions_of(&txn.topics), false)
                .await;
            let code = added.err().unwrap_or(ErrorCode::None);
            topic_results(broker, &txn.topics, Some(code))
        };
        results.push(
            AddPartitionsToTxnResult::default()
                .with_transactional_id(txn.transactional_id)
                .with_topic_results(topic_results),
        );
    }
    AddPartitionsToTxnResponse::default().with_results_by_transaction(results)
}

pub(crate) async fn add_offsets(
    broker: &Broker,
    req: AddOffsetsToTxnRequest,
    version: i16,
) -> AddOffsetsToTxnResponse {
    let code = async {
        broker.offsets_topic_on_first_use().await;
        let partitions = broker.cluster.internal_partitions(OFFSETS_TOPIC);
        if partitions == 0 {
            return Err(ErrorCode::CoordinatorNotAvailable);
        }
        let partition = crate::group::offsets_partition(&req.group_id.0, partitions);
        broker
            .txns
            .add_partitions(
                &req.transactional_id.0,
                caller(req.producer_id, req.producer_epoch),
                vec![(OFFSETS_TOPIC.to_owned(), partition)],
                false,
            )
            .await
    }
    .await
    .err()
    .unwrap_or(ErrorCode::None);
    AddOffsetsToTxnResponse::default().with_error_code(fenced_for(code, version, 2).code())
}

/// EndTxn. v5+ comes from a client of transaction version 2 (KIP-890 part 2): the epoch is
/// bumped, and the answer carries the producer id and epoch to go on with (-1 on an error).
pub(crate) async fn end(broker: &Broker, req: EndTxnRequest, version: i16) -> EndTxnResponse {
    let tv2 = version >= 5;
    let ended = broker
        .txns
        .end(
            broker,
            &req.transactional_id.0,
            caller(req.producer_id, req.producer_epoch),
            req.committed,
            tv2,
        )
        .await;
    let (code, next) = match ended {
        Ok(next) => (ErrorCode::None, Some(next)),
        Err(code) => (fenced_for(code, version, 2), None),
    };
    EndTxnResponse::default()
        .with_error_code(code.code())
        .with_producer_id(ProducerId(next.map_or(-1, |n| n.producer_id)))
        .with_producer_epoch(next.map_or(-1, |n| n.producer_epoch))
}

/// TxnOffsetCommit, at the group's coordinator: the offsets are written now and become the
/// group's committed offsets when the producer's transaction commits. The group's partition
/// of `__consumer_offsets` must be in the producer's transaction (KIP-890 part 1, as
/// AddOffsetsToTxn put it there); from v5 (a client of transaction version 2, which sends no
/// AddOffsetsToTxn) this commit puts it there.
pub(crate) async fn offset_commit(
    broker: &Broker,
    req: TxnOffsetCommitRequest,
    version: i16,
) -> TxnOffsetCommitResponse {
    let group = req.group_id.0.to_string();
    if let Err(code) = in_transaction(broker, &req, version).await {
        return offset_commit_answer(&req.topics, |_| code);
    }
    let now = now_ms();
    let mut offsets = Vec::new();
    for topic in &req.topics {
        for p in &topic.partitions {
            let committed = Committed {
                offset: p.committed_offset,
                leader_epoch: p.committed_leader_epoch,
                metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                commit_ms: now,
                expire_ms: None,
            };
            offsets.push((topic.name.0.to_string(), p.partition_index, committed));
        }
    }
    let code = broker
        .groups
        .commit_pending(&group, req.producer_id.0, offsets)
        .await
        .err()
        .unwrap_or(ErrorCode::None);
    offset_commit_answer(&req.topics, |_| code)
}

/// Whether the group's partition of `__consumer_offsets` is in the transaction of a
/// TxnOffsetCommit (put there, from v5), as a code the committing client understands.
async fn in_transaction(
    broker: &Broker,
    req: &TxnOffsetCommitRequest,
    version: i16,
) -> Result<(), ErrorCode> {
    let partitions = broker.cluster.internal_partitions(OFFSETS_TOPIC);
    if partitions == 0 {
        // No offsets log yet: no group is coordinated here.
        return Err(ErrorCode::NotCoordinator);
    }
    let partition = crate::group::offsets_partition(&req.group_id.0, partitions);
    let caller = caller(req.producer_id, req.producer_epoch);
    let place = (OFFSETS_TOPIC, partition);
    let checked =
        crate::txn::verify(broker, &req.transactional_id.0, caller, place, version >= 5).await;
    checked.map_err(|code| match code {
        // The transaction coordinator cannot answer now: a code that makes the client retry
        // here (NOT_COORDINATOR would send it looking for another group coordinator).
        ErrorCode::NotCoordinator
        | ErrorCode::CoordinatorNotAvailable
        | ErrorCode::CoordinatorLoadInProgress
        | ErrorCode::ConcurrentTransactions
        | ErrorCode::RequestTimedOut => ErrorCode::CoordinatorLoadInProgress,
        ErrorCode::InvalidProducerIdMapping => ErrorCode::InvalidTxnState,
        other => fenced_for(other, version, 3),
    })
}

/// WriteTxnMarkers: writes each marker to the partitions named, which must be led here.
pub(crate) async fn write_markers(
    broker: &Broker,
    req: WriteTxnMarkersRequest,
) -> WriteTxnMarkersResponse {
    let mut markers = Vec::with_capacity(req.markers.len());
    for marker in req.markers {
        let written = Marker {
            commit: marker.transaction_result,
            coordinator_epoch: marker.coordinator_epoch,
        };
        let mut topics = Vec::with_capacity(marker.topics.len());
        for topic in marker.topics {
            let mut partitions = Vec::with_capacity(topic.partition_indexes.len());
            for p in topic.partition_indexes {
                let exists = if topic.name.0.as_str() == OFFSETS_TOPIC {
                    (0..broker.cluster.internal_partitions(OFFSETS_TOPIC)).contains(&p)
                } else {
                    broker.topic(&topic.name.0).is_some_and(|t| t.exists(p))
                };
                let code = if exists {
                    crate::txn::markers::write(
                        broker,
                        &topic.name.0,
                        p,
                        marker.producer_id.0,
                        marker.producer_epoch,
                        written,
                    )
                    .await
                    .err()
                    .unwrap_or(ErrorCode::None)
                } else {
                    ErrorCode::UnknownTopicOrPartition
                };
                partitions.push(
                    WritableTxnMarkerPartitionResult::default()
                        .with_partition_index(p)
                        .with_error_code(code.code()),
                );
            }
            topics.push(
                WritableTxnMarkerTopicResult::default()
                    .with_name(topic.name)
                    .with_partitions(partitions),
            );
        }
        markers.push(
            WritableTxnMarkerResult::default()
                .with_producer_id(marker.producer_id)
                .with_topics(topics),
        );
    }
    WriteTxnMarkersResponse::default().with_markers(markers)
}

pub(crate) fn describe(
    broker: &Broker,
    req: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let states = req
        .transactional_ids
        .into_iter()
        .map(|id| {
            let state = TransactionState::default().with_transactional_id(id.clone());
            match broker.txns.describe(&id.0) {
                Err(code) => state
                    .with_error_code(code.code())
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1)
                    .with_transaction_start_time_ms(-1),
                Ok(meta) => {
                    let mut topics: Vec<TopicData> = Vec::new();
                    for (topic, partition) in &meta.partitions {
                        match topics.last_mut() {
                            Some(last) if last.topic.0.as_str() == topic.as_str() => {
                                last.partitions.push(*partition);
                            }
                            _ => topics.push(
                                TopicData::default()
                                    .with_topic(TopicName(StrBytes::from_string(topic.clone())))
                                    .with_partitions(vec![*partition]),
                            ),
                        }
                    }
                    state
                        .with_transaction_state(StrBytes::from_static_str(meta.state.name()))
                        .with_transaction_timeout_ms(meta.timeout_ms)
                        .with_transaction_start_time_ms(meta.start_ms)
                        .with_producer_id(ProducerId(meta.producer_id))
                        .with_producer_epoch(meta.producer_epoch)
                        .with_topics(topics)
                }
            }
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

/// Kafka's transaction states, for ListTransactions' filter.
const STATES: &[&str] = &[
    "Empty",
    "Ongoing",
    "PrepareCommit",
    "PrepareAbort",
    "CompleteCommit",
    "CompleteAbort",
    "Dead",
    "PrepareEpochFence",
];

pub(crate) fn list(broker: &Broker, req: &ListTransactionsRequest) -> ListTransactionsResponse {
    // v2 (KIP-1152): only the ids matching a regular expression, whole.
    let pattern = match req.transactional_id_pattern.as_deref() {
        None | Some("") => None,
        Some(pattern) => match regex::Regex::new(&format!("^(?:{pattern})$")) {
            Ok(regex) => Some(regex),
            Err(_) => {
                return ListTransactionsResponse::default()
                    .with_error_code(ErrorCode::InvalidRegularExpression.code());
            }
        },
    };
    let unknown: Vec<StrBytes> = req
        .state_filters
        .iter()
        .filter(|s| !STATES.contains(&s.as_str()))
        .cloned()
        .collect();
    let now = now_ms();
    let states = broker
        .txns
        .list()
        .into_iter()
        .filter(|t| {
            let state = t.meta.state.name();
            let by_state = req.state_filters.is_empty()
                || req.state_filters.iter().any(|s| s.as_str() == state);
            let by_producer = req.producer_id_filters.is_empty()
                || req
                    .producer_id_filters
                    .iter()
                    .any(|p| p.0 == t.meta.producer_id);
            // KIP-994: only transactions running (open, or being ended) longer than this, ms.
            let running = t.meta.state == TxnState::Ongoing || t.meta.state.preparing();
            let by_duration = req.duration_filter < 0
                || (running && t.meta.start_ms >= 0 && now - t.meta.start_ms > req.duration_filter);
            let by_id = pattern
                .as_ref()
                .is_none_or(|p| p.is_match(&t.transactional_id));
            by_state && by_producer && by_duration && by_id
        })
        .map(|t| {
            Listed::default()
                .with_transactional_id(TransactionalId(StrBytes::from_string(t.transactional_id)))
                .with_producer_id(ProducerId(t.meta.producer_id))
                .with_transaction_state(StrBytes::from_static_str(t.meta.state.name()))
        })
        .collect();
    ListTransactionsResponse::default()
        .with_unknown_state_filters(unknown)
        .with_transaction_states(states)
}

pub(crate) async fn describe_producers(
    broker: &Broker,
    req: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let topic = broker.topic(&t.name.0);
        let mut partitions = Vec::with_capacity(t.partition_indexes.len());
        for p in t.partition_indexes {
            let answer = PartitionResponse::default().with_partition_index(p);
            let described = match &topic {
                None => Err(ErrorCode::UnknownTopicOrPartition),
                Some(topic) if !topic.exists(p) => Err(ErrorCode::UnknownTopicOrPartition),
                Some(topic) => match topic.led(p) {
                    Ok(partition) => partition.describe_producers().await,
                    Err(code) => Err(code),
                },
            };
            partitions.push(match described {
                Err(code) => answer.with_error_code(code.code()),
                Ok(producers) => answer.with_active_producers(
                    producers
                        .into_iter()
                        .map(|v| {
                            ProducerState::default()
                                .with_producer_id(ProducerId(v.producer_id))
                                .with_producer_epoch(i32::from(v.epoch))
                                .with_last_sequence(v.last_sequence)
                                .with_last_timestamp(v.last_timestamp)
                                .with_coordinator_epoch(v.coordinator_epoch)
                                .with_current_txn_start_offset(v.txn_start)
                        })
                        .collect(),
                ),
            });
        }
        topics.push(
            TopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    DescribeProducersResponse::default().with_topics(topics)
}
