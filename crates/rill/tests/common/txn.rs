//! Transactions over raw requests: a transactional producer's requests (InitProducerId,
//! AddPartitionsToTxn, transactional batches, EndTxn), the coordinator's WriteTxnMarkers, the
//! operators' DescribeTransactions and DescribeProducers, and the read side (ListOffsets and
//! Fetch at either isolation level, the batches and markers a fetch returned).

use std::time::Duration;

use anyhow::{Context, ensure};
use bytes::Bytes;
use rill_protocol::kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use rill_protocol::kafka_protocol::messages::create_topics_request::CreatableTopic;
use rill_protocol::kafka_protocol::messages::describe_producers_request::TopicRequest;
use rill_protocol::kafka_protocol::messages::describe_producers_response::ProducerState;
use rill_protocol::kafka_protocol::messages::describe_transactions_response::TransactionState;
use rill_protocol::kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use rill_protocol::kafka_protocol::messages::fetch_response::PartitionData;
use rill_protocol::kafka_protocol::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsTopic,
};
use rill_protocol::kafka_protocol::messages::produce_request::{
    PartitionProduceData, TopicProduceData,
};
use rill_protocol::kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use rill_protocol::kafka_protocol::messages::{
    AddPartitionsToTxnRequest, BrokerId, CreateTopicsRequest, DescribeProducersRequest,
    DescribeTransactionsRequest, EndTxnRequest, FetchRequest, FindCoordinatorRequest,
    InitProducerIdRequest, ListOffsetsRequest, ProduceRequest, ProducerId, TopicName,
    TransactionalId, WriteTxnMarkersRequest,
};
use rill_protocol::{ErrorCode, StrBytes};
use rill_record::{BatchBuilder, Batches, RecordSpec, parse_marker};

use super::{Broker, Conn, Result, wait_until};

// Kafka's error codes, as the tests expect them on the wire.
pub const NONE: i16 = ErrorCode::None.code();
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = ErrorCode::UnknownTopicOrPartition.code();
pub const INVALID_REQUEST: i16 = ErrorCode::InvalidRequest.code();
pub const INVALID_PRODUCER_EPOCH: i16 = ErrorCode::InvalidProducerEpoch.code();
pub const INVALID_TXN_STATE: i16 = ErrorCode::InvalidTxnState.code();
pub const INVALID_PRODUCER_ID_MAPPING: i16 = ErrorCode::InvalidProducerIdMapping.code();
pub const INVALID_TRANSACTION_TIMEOUT: i16 = ErrorCode::InvalidTransactionTimeout.code();
pub const CONCURRENT_TRANSACTIONS: i16 = ErrorCode::ConcurrentTransactions.code();
pub const OPERATION_NOT_ATTEMPTED: i16 = ErrorCode::OperationNotAttempted.code();
pub const INVALID_RECORD: i16 = ErrorCode::InvalidRecord.code();
pub const PRODUCER_FENCED: i16 = ErrorCode::ProducerFenced.code();
pub const TRANSACTIONAL_ID_NOT_FOUND: i16 = ErrorCode::TransactionalIdNotFound.code();

/// Kafka's `transaction.max.timeout.ms` default.
pub const MAX_TIMEOUT_MS: i32 = 900_000;
/// Fetch isolation levels.
pub const READ_UNCOMMITTED: i8 = 0;
pub const READ_COMMITTED: i8 = 1;
/// How long the coordinator may take to come up or to finish a transaction.
pub const SETTLE: Duration = Duration::from_secs(20);

/// A code's name, for failure messages.
pub fn name(code: i16) -> &'static str {
    ErrorCode::from_code(code).map_or("?", ErrorCode::name)
}

/// A protocol string.
pub fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_owned())
}

/// A topic's name in a request.
pub fn topic_name(topic: &str) -> TopicName {
    TopicName(text(topic))
}

/// A transactional id in a request.
pub fn txn_id(id: &str) -> TransactionalId {
    TransactionalId(text(id))
}

/// A producer as InitProducerId gave it to a transactional id.
#[derive(Debug, Clone)]
pub struct Producer {
    pub id: String,
    pub pid: i64,
    pub epoch: i16,
}

impl Producer {
    /// The same producer at another epoch (a stale or a future one).
    pub fn at(&self, epoch: i16) -> Self {
        Self {
            epoch,
            ..self.clone()
        }
    }
}

/// A connection to the broker, once its transaction coordinator is up (FindCoordinator key
/// type 1 creates `__transaction_state` on first use, as a client's first request does).
pub fn coordinator(broker: &Broker) -> Result<Conn> {
    let mut conn = Conn::open(broker)?;
    wait_until("a transaction coordinator", SETTLE, || {
        let (code, node) = find_coordinator(&mut conn, 1, "probe", 3)?;
        Ok((code == NONE && node >= 0).then_some(()))
    })?;
    Ok(conn)
}

/// FindCoordinator at `version` (1-3: one key): (error code, node id).
pub fn find_coordinator(
    conn: &mut Conn,
    key_type: i8,
    key: &str,
    version: i16,
) -> Result<(i16, i32)> {
    let request = FindCoordinatorRequest::default()
        .with_key(text(key))
        .with_key_type(key_type);
    let answer = ask!(conn, FindCoordinator, version, request);
    Ok((answer.error_code, answer.node_id.0))
}

/// InitProducerId v4: (error code, producer id, epoch).
pub fn init(conn: &mut Conn, id: Option<&str>, timeout_ms: i32) -> Result<(i16, i64, i16)> {
    let request = InitProducerIdRequest::default()
        .with_transactional_id(id.map(txn_id))
        .with_transaction_timeout_ms(timeout_ms);
    let answer = ask!(conn, InitProducerId, 4, request);
    Ok((
        answer.error_code,
        answer.producer_id.0,
        answer.producer_epoch,
    ))
}

/// Whether `code` says the coordinator cannot answer yet (its partition of
/// `__transaction_state` is still loading or electing): clients retry these.
pub fn coordinator_busy(code: i16) -> bool {
    [
        ErrorCode::CoordinatorLoadInProgress,
        ErrorCode::CoordinatorNotAvailable,
        ErrorCode::NotCoordinator,
    ]
    .iter()
    .any(|c| c.code() == code)
}

/// Asks `ask` again while the coordinator is busy: the first answer that is not that.
pub fn when_ready(mut ask: impl FnMut() -> Result<i16>) -> Result<i16> {
    wait_until("a coordinator's answer", SETTLE, || {
        let code = ask()?;
        Ok((!coordinator_busy(code)).then_some(code))
    })
}

/// InitProducerId for `id` until the coordinator takes it (clients retry the coordinator's
/// retriable codes and CONCURRENT_TRANSACTIONS).
pub fn init_ok(conn: &mut Conn, id: &str, timeout_ms: i32) -> Result<Producer> {
    wait_until(&format!("InitProducerId for {id}"), SETTLE, || {
        let (code, pid, epoch) = init(conn, Some(id), timeout_ms)?;
        if coordinator_busy(code) || code == CONCURRENT_TRANSACTIONS {
            return Ok(None);
        }
        ensure!(code == NONE, "InitProducerId for {id}: {}", name(code));
        Ok(Some(Producer {
            id: id.to_owned(),
            pid,
            epoch,
        }))
    })
}

/// AddPartitionsToTxn at a client's version (0-3): each partition's (topic, partition, code).
pub fn add_partitions(
    conn: &mut Conn,
    version: i16,
    producer: &Producer,
    topics: &[(&str, &[i32])],
) -> Result<Vec<(String, i32, i16)>> {
    let request = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(txn_id(&producer.id))
        .with_v3_and_below_producer_id(ProducerId(producer.pid))
        .with_v3_and_below_producer_epoch(producer.epoch)
        .with_v3_and_below_topics(
            topics
                .iter()
                .map(|(t, ps)| {
                    AddPartitionsToTxnTopic::default()
                        .with_name(topic_name(t))
                        .with_partitions(ps.to_vec())
                })
                .collect(),
        );
    let answer = ask!(conn, AddPartitionsToTxn, version, request);
    let mut out = Vec::new();
    for topic in answer.results_by_topic_v3_and_below {
        for p in topic.results_by_partition {
            out.push((
                topic.name.0.to_string(),
                p.partition_index,
                p.partition_error_code,
            ));
        }
    }
    out.sort();
    Ok(out)
}

/// AddPartitionsToTxn v3 of partitions of one topic; fails unless every one is added.
pub fn add_ok(conn: &mut Conn, producer: &Producer, topic: &str, partitions: &[i32]) -> Result<()> {
    let answer = add_partitions(conn, 3, producer, &[(topic, partitions)])?;
    ensure!(
        answer.iter().all(|(_, _, code)| *code == NONE) && answer.len() == partitions.len(),
        "AddPartitionsToTxn {topic} {partitions:?}: {answer:?}"
    );
    Ok(())
}

/// EndTxn at `version`: its error code.
pub fn end(conn: &mut Conn, version: i16, producer: &Producer, commit: bool) -> Result<i16> {
    let request = EndTxnRequest::default()
        .with_transactional_id(txn_id(&producer.id))
        .with_producer_id(ProducerId(producer.pid))
        .with_producer_epoch(producer.epoch)
        .with_committed(commit);
    Ok(ask!(conn, EndTxn, version, request).error_code)
}

/// EndTxn v5 (transaction version 2): its error code and the producer to go on with.
pub fn end_v5(conn: &mut Conn, producer: &Producer, commit: bool) -> Result<(i16, Producer)> {
    let request = EndTxnRequest::default()
        .with_transactional_id(txn_id(&producer.id))
        .with_producer_id(ProducerId(producer.pid))
        .with_producer_epoch(producer.epoch)
        .with_committed(commit);
    let answer = ask!(conn, EndTxn, 5, request);
    let next = Producer {
        id: producer.id.clone(),
        pid: answer.producer_id.0,
        epoch: answer.producer_epoch,
    };
    Ok((answer.error_code, next))
}

/// A transactional batch of `values` from `producer`, its first sequence `seq`.
pub fn txn_batch(producer: &Producer, seq: i32, values: &[&str]) -> Result<Bytes> {
    let builder =
        BatchBuilder::new()
            .transactional(true)
            .producer(producer.pid, producer.epoch, seq);
    with_values(builder, values)
}

/// A batch of `values` from no producer.
pub fn plain_batch(values: &[&str]) -> Result<Bytes> {
    with_values(BatchBuilder::new(), values)
}

/// The batch of `builder` with one record per value, each with CreateTime 1_700_000_000_000.
fn with_values(mut builder: BatchBuilder, values: &[&str]) -> Result<Bytes> {
    for value in values {
        builder =
            builder.record(RecordSpec::new(1_700_000_000_000).value(value.as_bytes().to_vec()));
    }
    Ok(builder.build()?)
}

/// Produce v9, acks=-1, with `transactional_id`: the partition's (error code, base offset).
pub fn produce(
    conn: &mut Conn,
    transactional_id: Option<&str>,
    topic: &str,
    partition: i32,
    records: Bytes,
) -> Result<(i16, i64)> {
    produce_at(conn, 9, transactional_id, (topic, partition), records)
}

/// Produce at `version` (3-12), acks=-1, with `transactional_id`: the partition's (error
/// code, base offset). v12 is a client of transaction version 2's.
pub fn produce_at(
    conn: &mut Conn,
    version: i16,
    transactional_id: Option<&str>,
    (topic, partition): (&str, i32),
    records: Bytes,
) -> Result<(i16, i64)> {
    let request = ProduceRequest::default()
        .with_transactional_id(transactional_id.map(txn_id))
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(topic_name(topic))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(records)),
                ]),
        ]);
    let answer = ask!(conn, Produce, version, request);
    let p = answer
        .responses
        .first()
        .and_then(|t| t.partition_responses.first())
        .context("no partition in the produce answer")?;
    Ok((p.error_code, p.base_offset))
}

/// CreateTopics v7 of a topic with `partitions` partitions; fails on an error.
pub fn create(conn: &mut Conn, topic: &str, partitions: i32) -> Result<()> {
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(topic_name(topic))
                .with_num_partitions(partitions)
                .with_replication_factor(1),
        ]);
    let answer = ask!(conn, CreateTopics, 7, request);
    let code = answer.topics.first().map(|t| t.error_code);
    ensure!(code == Some(NONE), "creating {topic}: {code:?}");
    Ok(())
}

/// ListOffsets v7 latest of one partition at `isolation`: the offset (fails on an error).
pub fn latest(conn: &mut Conn, topic: &str, partition: i32, isolation: i8) -> Result<i64> {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(isolation)
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![
                    ListOffsetsPartition::default()
                        .with_partition_index(partition)
                        .with_timestamp(-1),
                ]),
        ]);
    let answer = ask!(conn, ListOffsets, 7, request);
    let p = answer
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .context("no partition in the ListOffsets answer")?;
    ensure!(p.error_code == NONE, "ListOffsets: {}", name(p.error_code));
    Ok(p.offset)
}

/// Fetch v12 of one partition from `offset` at `isolation`, no waiting.
pub fn fetch(
    conn: &mut Conn,
    topic: &str,
    partition: i32,
    offset: i64,
    isolation: i8,
) -> Result<PartitionData> {
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_isolation_level(isolation)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(partition)
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let answer = ask!(conn, Fetch, 12, request);
    let data = answer
        .responses
        .into_iter()
        .next()
        .and_then(|t| t.partitions.into_iter().next())
        .context("no partition in the fetch answer")?;
    ensure!(data.error_code == NONE, "fetch: {}", name(data.error_code));
    Ok(data)
}

/// A fetched batch, as the tests compare them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub base: i64,
    pub last: i64,
    pub producer_id: i64,
    pub transactional: bool,
    /// The marker, for a control batch.
    pub marker: Option<bool>,
}

/// The batches of a fetch answer, in order.
pub fn batches(data: &PartitionData) -> Result<Vec<Seen>> {
    let records = data.records.clone().unwrap_or_default();
    let mut out = Vec::new();
    for batch in Batches::new(&records) {
        let batch = batch?;
        let header = batch.header();
        let marker = if header.attributes.is_control() {
            Some(parse_marker(&batch)?.context("a control batch with no marker")?)
        } else {
            None
        };
        out.push(Seen {
            base: header.base_offset,
            last: header.last_offset(),
            producer_id: header.producer_id,
            transactional: header.attributes.is_transactional(),
            marker: marker.map(|m| m.commit),
        });
    }
    Ok(out)
}

/// A data batch of `producer_id` at offsets `base..=last`.
pub fn data(base: i64, last: i64, producer_id: i64, transactional: bool) -> Seen {
    Seen {
        base,
        last,
        producer_id,
        transactional,
        marker: None,
    }
}

/// A marker of `producer_id` at `offset`.
pub fn marker(offset: i64, producer_id: i64, commit: bool) -> Seen {
    Seen {
        base: offset,
        last: offset,
        producer_id,
        transactional: true,
        marker: Some(commit),
    }
}

/// The aborted transactions of a read_committed fetch: (producer id, first offset).
pub fn aborted(data: &PartitionData) -> Option<Vec<(i64, i64)>> {
    data.aborted_transactions.as_ref().map(|list| {
        list.iter()
            .map(|t| (t.producer_id.0, t.first_offset))
            .collect()
    })
}

/// DescribeTransactions v0 of one transactional id.
pub fn describe(conn: &mut Conn, id: &str) -> Result<TransactionState> {
    let request = DescribeTransactionsRequest::default().with_transactional_ids(vec![txn_id(id)]);
    let answer = ask!(conn, DescribeTransactions, 0, request);
    answer
        .transaction_states
        .into_iter()
        .next()
        .context("no transaction in the DescribeTransactions answer")
}

/// Waits until the transaction of `id` is `state` (its markers written): its description.
pub fn settled(conn: &mut Conn, id: &str, state: &str) -> Result<TransactionState> {
    wait_until(&format!("{id} in state {state}"), SETTLE, || {
        let seen = describe(conn, id)?;
        Ok((seen.transaction_state.as_str() == state).then_some(seen))
    })
}

/// DescribeProducers v0 of one partition: its producers (fails on an error).
pub fn producers(conn: &mut Conn, topic: &str, partition: i32) -> Result<Vec<ProducerState>> {
    let request = DescribeProducersRequest::default().with_topics(vec![
        TopicRequest::default()
            .with_name(topic_name(topic))
            .with_partition_indexes(vec![partition]),
    ]);
    let answer = ask!(conn, DescribeProducers, 0, request);
    let p = answer
        .topics
        .into_iter()
        .next()
        .and_then(|t| t.partitions.into_iter().next())
        .context("no partition in the DescribeProducers answer")?;
    ensure!(
        p.error_code == NONE,
        "DescribeProducers: {}",
        name(p.error_code)
    );
    Ok(p.active_producers)
}

/// WriteTxnMarkers v1 for one partition: its error code.
pub fn write_marker(
    conn: &mut Conn,
    topic: &str,
    partition: i32,
    producer_id: i64,
    commit: bool,
) -> Result<i16> {
    let request = WriteTxnMarkersRequest::default().with_markers(vec![
        WritableTxnMarker::default()
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(0)
            .with_transaction_result(commit)
            .with_coordinator_epoch(0)
            .with_topics(vec![
                WritableTxnMarkerTopic::default()
                    .with_name(topic_name(topic))
                    .with_partition_indexes(vec![partition]),
            ]),
    ]);
    let answer = ask!(conn, WriteTxnMarkers, 1, request);
    answer
        .markers
        .first()
        .and_then(|m| m.topics.first())
        .and_then(|t| t.partitions.first())
        .map(|p| p.error_code)
        .context("no partition in the WriteTxnMarkers answer")
}
