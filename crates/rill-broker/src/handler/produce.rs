//! Produce: check each partition's batch without decompressing it, hand it to the partition's
//! owner, and answer once every append is done (and fsynced, for acks=all).

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rill_protocol::ErrorCode;
use rill_protocol::kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use rill_protocol::kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use rill_record::legacy::{MAGIC_V0, MAGIC_V1, magic_of, message_set_to_batch};
use rill_record::{
    Batch, BatchHeader, Compression, DEFAULT_MAX_RECORDS_LEN, MAGIC_V2, RecordError, TimestampType,
};

use crate::broker::{Broker, Topic};
use crate::config::AckDurability;
use crate::dispatch::Reply;
use crate::partition::Partition;
use crate::partition::now_ms;

mod records;

pub(crate) use records::Refusal;
use records::Rules;

/// A partition's outcome before the owner answers: an error found while checking, or the
/// pending append.
enum Pending<F> {
    Failed(Refusal),
    Appending(F),
}

fn failed<F>(code: ErrorCode, message: String) -> Pending<F> {
    Pending::Failed(Refusal::new(code, message))
}

/// How many replicas of a partition led here are in sync (one without replication).
pub(crate) fn in_sync(partition: &Partition) -> i32 {
    if partition.is_replicated() {
        i32::try_from(partition.offsets().in_sync.count_ones()).unwrap_or(i32::MAX)
    } else {
        1
    }
}

/// Produce v13 is the first to name topics by id (KIP-516) instead of by name.
const FIRST_TOPIC_ID_VERSION: i16 = 13;

pub(crate) async fn handle(broker: &Broker, req: ProduceRequest, version: i16) -> Reply {
    let acks = req.acks;
    let durable = acks == -1 && broker.config.ack_durability == AckDurability::Fsync;
    let transactional_id = req.transactional_id.as_ref().map(|id| id.0.to_string());
    let refuse_all = match acks {
        -1..=1 => None,
        _ => Some((
            ErrorCode::InvalidRequiredAcks,
            format!("acks must be -1, 0 or 1, got {acks}"),
        )),
    };

    // Hand every batch off first, in request order; then wait for the owners' answers.
    let mut pending = Vec::with_capacity(req.topic_data.len());
    for topic_data in req.topic_data {
        // From v13 topics are named by id only (KIP-516); an id no topic has is UNKNOWN_TOPIC_ID.
        let (topic, name, unknown) = if version >= FIRST_TOPIC_ID_VERSION {
            let topic = broker.topic_by_id(topic_data.topic_id);
            let name = topic
                .as_ref()
                .map_or_else(|| topic_data.topic_id.to_string(), |t| t.name.clone());
            (topic, name, ErrorCode::UnknownTopicId)
        } else {
            let name = topic_data.name.0.to_string();
            (
                broker.topic(&name),
                name,
                ErrorCode::UnknownTopicOrPartition,
            )
        };
        let mut partitions = Vec::with_capacity(topic_data.partition_data.len());
        for data in topic_data.partition_data {
            let outcome = match (&refuse_all, &topic) {
                (Some((code, message)), _) => failed(*code, message.clone()),
                (None, None) => failed(unknown, format!("topic '{name}' does not exist")),
                (None, Some(topic)) => match topic.led(data.index) {
                    Err(code) => failed(code, super::not_here(code, &name, data.index)),
                    // Kafka checks the in-sync replicas before it looks at the records.
                    Ok(partition)
                        if acks == -1 && in_sync(partition) < topic.config.min_insync_replicas =>
                    {
                        failed(
                            ErrorCode::NotEnoughReplicas,
                            format!(
                                "partition {name}-{} has {} in-sync replica(s), fewer than its \
                                 min.insync.replicas ({}), so acks=all cannot be met",
                                data.index,
                                in_sync(partition),
                                topic.config.min_insync_replicas
                            ),
                        )
                    }
                    Ok(partition) => {
                        let prepared = match prepare(topic, data.index, data.records, version).await
                        {
                            Ok((batch, header)) => {
                                let txn = transactional_id.as_deref();
                                let add = version >= 12;
                                verify(broker, txn, (topic, data.index), partition, &header, add)
                                    .await
                                    .map(|()| batch)
                            }
                            Err(refusal) => Err(refusal),
                        };
                        match prepared {
                            Ok(batch) => Pending::Appending(partition.append(
                                batch,
                                durable,
                                acks == -1,
                                topic.config.timestamp_type == TimestampType::LogAppendTime,
                            )),
                            Err(refusal) => Pending::Failed(refusal),
                        }
                    }
                },
            };
            partitions.push((data.index, outcome));
        }
        pending.push((topic_data.name, topic_data.topic_id, topic, partitions));
    }
    if acks == 0 {
        // No answer; but a refused batch closes the connection, as Kafka does, so that the
        // producer learns of it. The appends are awaited, as Kafka appends before it reads the
        // connection's next request: a ListOffsets or Fetch sent after an acks=0 produce sees
        // its records. (Failures inside the owner are logged there.)
        let mut refused = false;
        for (_, _, _, partitions) in pending {
            for (_, outcome) in partitions {
                match outcome {
                    Pending::Failed(..) => refused = true,
                    Pending::Appending(append) => {
                        let _ = append.await;
                    }
                }
            }
        }
        return if refused { Reply::Close } else { Reply::Silent };
    }

    let deadline = tokio::time::Instant::now()
        + Duration::from_millis(u64::try_from(req.timeout_ms).unwrap_or(0));
    let mut responses = Vec::with_capacity(pending.len());
    for (name, topic_id, topic, partitions) in pending {
        let mut out = Vec::with_capacity(partitions.len());
        for (index, outcome) in partitions {
            let response = PartitionProduceResponse::default().with_index(index);
            let result = match outcome {
                Pending::Failed(refusal) => Err(refusal),
                Pending::Appending(append) => {
                    match tokio::time::timeout_at(deadline, append).await {
                        Ok(Ok(info)) => Ok(info),
                        Ok(Err(code)) => Err(Refusal::new(
                            code,
                            format!("append failed: {}", code.name()),
                        )),
                        Err(_) => Err(Refusal::new(
                            ErrorCode::RequestTimedOut,
                            "the append did not complete within the request timeout".to_owned(),
                        )),
                    }
                }
            };
            let log_append_time = topic
                .as_ref()
                .is_some_and(|t| t.config.timestamp_type == TimestampType::LogAppendTime);
            out.push(match result {
                Ok(info) => response
                    .with_base_offset(info.base_offset)
                    .with_log_append_time_ms(if log_append_time {
                        info.log_append_time_ms
                    } else {
                        -1
                    })
                    .with_log_start_offset(
                        topic
                            .as_ref()
                            .and_then(|t| t.partition(index))
                            .map_or(-1, |p| p.offsets().log_start),
                    ),
                Err(Refusal {
                    code,
                    message,
                    records,
                }) => {
                    tracing::debug!(topic = %name.0, partition = index, error = code.name(), reason = %message, "produce refused");
                    response
                        .with_error_code(code.code())
                        .with_base_offset(-1)
                        .with_log_append_time_ms(-1)
                        .with_log_start_offset(-1)
                        .with_error_message(super::message(message))
                        .with_record_errors(
                            records
                                .into_iter()
                                .map(|(batch_index, message)| {
                                    BatchIndexAndErrorMessage::default()
                                        .with_batch_index(batch_index)
                                        .with_batch_index_error_message(super::message(message))
                                })
                                .collect(),
                        )
                }
            });
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(name)
                .with_topic_id(topic_id)
                .with_partition_responses(out),
        );
    }
    Reply::Answer(ProduceResponse::default().with_responses(responses).into())
}

/// A transactional batch that would open its producer's transaction in this partition is
/// appended only once the transaction coordinator confirms the partition is in that
/// transaction (KIP-890 part 1), so a late or stray batch cannot open a transaction nobody
/// will end. The owner hears of the confirmation before the append.
///
/// Produce v12+ comes from a client of transaction version 2 (KIP-890 part 2), which sends no
/// AddPartitionsToTxn: the coordinator adds the partition to the transaction instead.
async fn verify(
    broker: &Broker,
    transactional_id: Option<&str>,
    (topic, index): (&Topic, i32),
    partition: &Partition,
    header: &BatchHeader,
    add: bool,
) -> Result<(), Refusal> {
    if !header.attributes.is_transactional() {
        return Ok(());
    }
    // As Kafka: transactional records need a transactional id the producer may write with.
    let Some(transactional_id) = transactional_id else {
        return Err(Refusal::new(
            ErrorCode::TransactionalIdAuthorizationFailed,
            "a transactional batch in a produce request without a transactional id".to_owned(),
        ));
    };
    let (producer_id, producer_epoch) = (header.producer_id, header.producer_epoch);
    if partition.in_transaction(producer_id, producer_epoch) {
        return Ok(());
    }
    let caller = crate::txn::Caller {
        producer_id,
        producer_epoch,
    };
    let place = (topic.name.as_str(), index);
    match crate::txn::verify(broker, transactional_id, caller, place, add).await {
        Ok(()) => {
            partition.verified(producer_id, producer_epoch);
            Ok(())
        }
        Err(code) => {
            let client = match code {
                ErrorCode::ProducerFenced => ErrorCode::InvalidProducerEpoch,
                ErrorCode::InvalidProducerIdMapping => ErrorCode::InvalidTxnState,
                // The coordinator cannot answer now: a code every producer retries.
                // (CONCURRENT_TRANSACTIONS: the last transaction's markers are being written.)
                ErrorCode::NotCoordinator
                | ErrorCode::CoordinatorNotAvailable
                | ErrorCode::CoordinatorLoadInProgress
                | ErrorCode::ConcurrentTransactions
                | ErrorCode::RequestTimedOut => ErrorCode::NotEnoughReplicas,
                other => other,
            };
            Err(Refusal::new(
                client,
                match code {
                    ErrorCode::ProducerFenced => format!(
                        "producer {producer_id} at epoch {producer_epoch} of \
                         '{transactional_id}' is fenced by a newer instance"
                    ),
                    _ => format!(
                        "partition {}-{index} is not in the open transaction of \
                         '{transactional_id}' (producer {producer_id}, epoch {producer_epoch}): {}",
                        topic.name,
                        code.name()
                    ),
                },
            ))
        }
    }
}

/// Checks a partition's batch, then does what the topic's configs ask of its records (see
/// [`Rules`]), on a blocking thread when the batch is large. Returns the batch with its header
/// as checked (the rules change neither its producer nor its attributes).
pub(crate) async fn prepare(
    topic: &Topic,
    index: i32,
    records: Option<Bytes>,
    version: i16,
) -> Result<(BytesMut, BatchHeader), Refusal> {
    let max_message_bytes = topic.config.max_message_bytes;
    // Only an old client's message set costs more than a CRC pass to check: it is converted.
    let old_format = records
        .as_deref()
        .and_then(magic_of)
        .is_some_and(|m| m < MAGIC_V2);
    let work = if old_format {
        records.as_ref().map_or(0, Bytes::len)
    } else {
        0
    };
    let (batch, header) =
        super::cpu_bound(work, move || check(records, max_message_bytes, version))
            .await
            .unwrap_or_else(|| {
                Err((
                    ErrorCode::UnknownServerError,
                    "converting the message set failed".to_owned(),
                ))
            })
            .map_err(|(code, message)| Refusal::new(code, message))?;
    let rules = Rules::new(&topic.config, &header, now_ms());
    if rules.is_empty() {
        return Ok((batch, header));
    }
    let partition = format!("{}-{index}", topic.name);
    super::cpu_bound(batch.len(), move || rules.apply(batch, &partition))
        .await
        .unwrap_or_else(|| {
            Err(Refusal::new(
                ErrorCode::UnknownServerError,
                "checking the records failed".to_owned(),
            ))
        })
        .map(|batch| (batch, header))
}

/// Checks a partition's records: exactly one v2 batch, within the size limit, with a valid CRC
/// and consistent counts, from a producer kind this broker serves. Nothing is decompressed.
///
/// Produce v0-2 may carry a magic 0 or 1 message set instead (old clients): it is checked
/// message by message and converted to one v2 batch, which is then checked like any other.
/// From v3 on only v2 batches are allowed, and zstd only from v7, as Kafka rules. Returns the
/// batch with its parsed header.
fn check(
    records: Option<Bytes>,
    max_message_bytes: i32,
    version: i16,
) -> Result<(BytesMut, BatchHeader), (ErrorCode, String)> {
    let records = records.filter(|r| !r.is_empty()).ok_or_else(|| {
        (
            ErrorCode::InvalidRecord,
            "the produce request carries no records".to_owned(),
        )
    })?;
    if records.len() > usize::try_from(max_message_bytes).unwrap_or(0) {
        return Err((
            ErrorCode::MessageTooLarge,
            format!(
                "the record batch is {} bytes, more than max.message.bytes ({max_message_bytes})",
                records.len()
            ),
        ));
    }
    let records = match magic_of(&records) {
        Some(MAGIC_V0 | MAGIC_V1) if version < 3 => {
            message_set_to_batch(&records, DEFAULT_MAX_RECORDS_LEN).map_err(|err| {
                let code = match err {
                    RecordError::InvalidMessageSet { .. } | RecordError::EmptyBatch => {
                        ErrorCode::InvalidRecord
                    }
                    _ => ErrorCode::CorruptMessage,
                };
                (code, err.to_string())
            })?
        }
        Some(magic @ (MAGIC_V0 | MAGIC_V1)) => {
            return Err((
                ErrorCode::InvalidRecord,
                format!(
                    "produce v{version} carries record batches v2 only, not message format v{magic}"
                ),
            ));
        }
        _ => records,
    };
    let batch = Batch::parse(&records).map_err(|err| match err {
        RecordError::UnsupportedMagic { magic } => (
            ErrorCode::UnsupportedForMessageFormat,
            format!("message format v{magic} is not supported"),
        ),
        err => (ErrorCode::CorruptMessage, err.to_string()),
    })?;
    if version < 7 && batch.header().attributes.compression() == Ok(Compression::Zstd) {
        return Err((
            ErrorCode::UnsupportedCompressionType,
            format!("produce v{version} cannot carry zstd batches (v7 and later can)"),
        ));
    }
    if batch.as_bytes().len() != records.len() {
        return Err((
            ErrorCode::InvalidRecord,
            "a produce request must carry exactly one record batch per partition".to_owned(),
        ));
    }
    batch
        .verify_crc()
        .map_err(|err| (ErrorCode::CorruptMessage, err.to_string()))?;
    let header = *batch.header();
    check_header(&header)?;
    Ok((BytesMut::from(&records[..]), header))
}

fn check_header(header: &BatchHeader) -> Result<(), (ErrorCode, String)> {
    debug_assert_eq!(header.magic, MAGIC_V2);
    if header.records_count < 1
        || i64::from(header.last_offset_delta) != i64::from(header.records_count) - 1
    {
        return Err((
            ErrorCode::InvalidRecord,
            format!(
                "the batch counts {} records but its last offset delta is {}",
                header.records_count, header.last_offset_delta
            ),
        ));
    }
    if header.attributes.is_control() {
        return Err((
            ErrorCode::InvalidRecord,
            "control batches are written by the transaction coordinator, not produced".to_owned(),
        ));
    }
    Ok(())
}
