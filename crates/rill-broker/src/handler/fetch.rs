//! Fetch: whole stored batches, sent as they are. A long poll waits for new records (woken by
//! the partition owners, not by sleeping) until `min_bytes` are there or `max_wait_ms` passes.
//! Fetch sessions (KIP-227) are declined: every answer has session id 0, so clients send full
//! fetch requests. A read_committed fetch (v4+) stops at the last stable offset and lists the
//! aborted transactions overlapping what it returns, so the client drops their records.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use rill_protocol::ErrorCode;
use rill_protocol::kafka_protocol::messages::fetch_request::FetchTopic;
use rill_protocol::kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use rill_protocol::kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, ProducerId};
use rill_record::DEFAULT_MAX_RECORDS_LEN;
use rill_record::legacy::{MAGIC_V0, MAGIC_V1, batches_to_message_set};
use tokio::sync::watch;

use crate::broker::{Broker, Topic};
use crate::partition::{Offsets, Partition};

/// Largest wait a client may ask for; longer ones are cut to this.
const MAX_WAIT: Duration = Duration::from_secs(30);

pub(crate) async fn handle(broker: &Broker, req: FetchRequest, version: i16) -> FetchResponse {
    if req.session_id != 0 {
        return FetchResponse::default().with_error_code(ErrorCode::FetchSessionIdNotFound.code());
    }
    let wait = Duration::from_millis(u64::try_from(req.max_wait_ms).unwrap_or(0)).min(MAX_WAIT);
    let deadline = tokio::time::Instant::now() + wait;
    let max_bytes = usize::try_from(req.max_bytes).unwrap_or(0);
    let min_bytes = usize::try_from(req.min_bytes).unwrap_or(0);
    let committed = req.isolation_level == 1;
    // Resolve the topics once; a topic deleted meanwhile keeps answering from its old handle.
    // From v13 topics are named by id only; an id no topic has is UNKNOWN_TOPIC_ID.
    let by_id = version >= FIRST_TOPIC_ID_VERSION;
    let unknown = if by_id {
        ErrorCode::UnknownTopicId
    } else {
        ErrorCode::UnknownTopicOrPartition
    };
    let wanted: Vec<(Option<Arc<Topic>>, _)> = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = if by_id {
                broker.topic_by_id(t.topic_id)
            } else {
                broker.topic(&t.topic.0)
            };
            (topic, t)
        })
        .collect();

    loop {
        // Mark the offsets seen before reading, so an append after the read still wakes us.
        let mut watches: Vec<watch::Receiver<Offsets>> = Vec::new();
        let mut total = 0usize;
        let mut errors = false;
        let mut topics = Vec::with_capacity(wanted.len());
        for (topic, fetch_topic) in &wanted {
            let mut partitions = Vec::with_capacity(fetch_topic.partitions.len());
            for fp in &fetch_topic.partitions {
                // aborted_transactions is null but for read_committed answers, as Kafka sends it.
                let response = PartitionData::default()
                    .with_partition_index(fp.partition)
                    .with_preferred_read_replica(BrokerId(-1))
                    .with_aborted_transactions(None);
                let led = topic
                    .as_ref()
                    .map(|t| t.led_at(fp.partition, fp.current_leader_epoch));
                let Some(Ok(partition)) = led else {
                    let code = match led {
                        Some(Err(code)) => code,
                        _ => unknown,
                    };
                    errors = true;
                    partitions.push(
                        response
                            .with_error_code(code.code())
                            .with_high_watermark(-1)
                            .with_last_stable_offset(-1)
                            .with_log_start_offset(-1),
                    );
                    continue;
                };
                let mut rx = partition.watch();
                let offsets = *rx.borrow_and_update();
                watches.push(rx);
                let response = response
                    .with_high_watermark(offsets.high_watermark)
                    .with_last_stable_offset(offsets.last_stable)
                    .with_log_start_offset(offsets.log_start);
                let budget = usize::try_from(fp.partition_max_bytes)
                    .unwrap_or(0)
                    .min(max_bytes.saturating_sub(total));
                let read = Read {
                    offset: fp.fetch_offset,
                    budget,
                    first: total == 0,
                    committed,
                };
                match read.run(partition, offsets).await {
                    Ok((records, aborted)) => {
                        total += records.len();
                        let response = response.with_records(Some(records));
                        partitions.push(match aborted {
                            Some(aborted) => response.with_aborted_transactions(Some(aborted)),
                            None => response,
                        });
                    }
                    Err(code) => {
                        errors = true;
                        partitions.push(response.with_error_code(code.code()));
                    }
                }
            }
            topics.push(
                FetchableTopicResponse::default()
                    .with_topic(fetch_topic.topic.clone())
                    .with_topic_id(fetch_topic.topic_id)
                    .with_partitions(partitions),
            );
        }
        let now = tokio::time::Instant::now();
        let done = errors || total >= min_bytes.max(1) || watches.is_empty();
        if done || now >= deadline || broker.stopping.is_cancelled() {
            for ((topic, _), response) in wanted.iter().zip(&topics) {
                if let Some(topic) = topic {
                    for partition in &response.partitions {
                        topic
                            .metrics
                            .fetched(partition.records.as_deref().unwrap_or_default());
                    }
                }
            }
            if version < FIRST_V2_VERSION {
                topics = convert_down(&wanted, topics, version, total).await;
            }
            return FetchResponse::default().with_responses(topics);
        }
        // Nothing (or not enough) yet: wait for any of the partitions to grow.
        tokio::select! {
            _ = tokio::time::timeout_at(deadline, any_changed(&mut watches)) => {}
            () = broker.stopping.cancelled() => {}
        }
    }
}

/// Fetch v13 is the first to name topics by id (KIP-516) instead of by name.
const FIRST_TOPIC_ID_VERSION: i16 = 13;

/// Fetch v4 is the first to carry record batches v2; v0-3 carry message sets.
const FIRST_V2_VERSION: i16 = 4;

/// Converts the stored batches of an answer to Fetch v0-3 (`total` bytes of them) into the
/// message sets that version carries: magic 0 for v0-1, magic 1 for v2-3, off the async workers
/// when large. The cost falls on old clients alone.
async fn convert_down(
    wanted: &[(Option<Arc<Topic>>, FetchTopic)],
    mut topics: Vec<FetchableTopicResponse>,
    version: i16,
    total: usize,
) -> Vec<FetchableTopicResponse> {
    let magic = if version < 2 { MAGIC_V0 } else { MAGIC_V1 };
    // Per topic: where each partition's fetch started, and whether the topic allows it.
    let plans: Vec<(Vec<(i32, i64)>, bool)> = wanted
        .iter()
        .map(|(topic, fetch_topic)| {
            let starts = fetch_topic
                .partitions
                .iter()
                .map(|p| (p.partition, p.fetch_offset))
                .collect();
            (
                starts,
                topic.as_ref().is_none_or(|t| t.config.down_conversion),
            )
        })
        .collect();
    // Kept to answer UNKNOWN_SERVER_ERROR should the conversion's thread panic: stored v2
    // batches must never reach a client of the old formats.
    let mut failed = topics.clone();
    for partition in failed.iter_mut().flat_map(|t| &mut t.partitions) {
        partition.records = Some(Bytes::new());
        partition.error_code = ErrorCode::UnknownServerError.code();
    }
    super::cpu_bound(total, move || {
        for (response, (starts, allowed)) in topics.iter_mut().zip(&plans) {
            for partition in &mut response.partitions {
                convert_partition(partition, magic, starts, *allowed, &response.topic.0);
            }
        }
        topics
    })
    .await
    .unwrap_or(failed)
}

/// One partition of [`convert_down`]: a batch that cannot be converted makes its answer
/// CORRUPT_MESSAGE; a topic with `message.downconversion.enable=false` (not `allowed`) answers
/// UNSUPPORTED_VERSION instead, as Kafka does.
fn convert_partition(
    partition: &mut PartitionData,
    magic: i8,
    starts: &[(i32, i64)],
    allowed: bool,
    topic: &str,
) {
    if !allowed && partition.error_code == 0 {
        partition.records = Some(Bytes::new());
        partition.error_code = ErrorCode::UnsupportedVersion.code();
        return;
    }
    let Some(stored) = partition.records.as_ref().filter(|r| !r.is_empty()) else {
        return;
    };
    let from = starts
        .iter()
        .find(|(index, _)| *index == partition.partition_index)
        .map_or(0, |(_, offset)| *offset);
    match batches_to_message_set(stored, magic, from, DEFAULT_MAX_RECORDS_LEN) {
        Ok(set) => partition.records = Some(set),
        Err(err) => {
            tracing::warn!(topic, partition = partition.partition_index, %err, "converting stored batches for an old fetch");
            partition.records = Some(Bytes::new());
            partition.error_code = ErrorCode::CorruptMessage.code();
        }
    }
}

/// One partition's read.
struct Read {
    offset: i64,
    /// Bytes it may return. The first partition with data in a response gets at least one
    /// whole batch even if it is larger (KIP-74); later ones only what fits.
    budget: usize,
    first: bool,
    /// read_committed: up to the last stable offset, with the aborted transactions.
    committed: bool,
}

impl Read {
    async fn run(
        &self,
        partition: &Partition,
        offsets: Offsets,
    ) -> Result<(Bytes, Option<Vec<AbortedTransaction>>), ErrorCode> {
        let Self {
            offset,
            budget,
            first,
            committed,
        } = *self;
        if offset < offsets.log_start || offset > offsets.log_end {
            return Err(ErrorCode::OffsetOutOfRange);
        }
        // Between the high watermark (the last stable offset for read_committed) and the log
        // end: records not committed (or not decided) yet, nothing to read.
        let end = if committed {
            offsets.last_stable
        } else {
            offsets.high_watermark
        };
        let none = Ok((Bytes::new(), committed.then(Vec::new)));
        if offset >= end || (budget == 0 && !first) {
            return none;
        }
        let (records, aborted) = if committed {
            let (records, aborted) = partition.read_committed(offset, budget.max(1)).await?;
            let aborted = aborted
                .into_iter()
                .map(|txn| {
                    AbortedTransaction::default()
                        .with_producer_id(ProducerId(txn.producer_id))
                        .with_first_offset(txn.first_offset)
                })
                .collect();
            (records, Some(aborted))
        } else {
            (partition.read(offset, budget.max(1)).await?, None)
        };
        if !first && records.len() > budget {
            return none;
        }
        Ok((records, aborted))
    }
}

/// Resolves when any of the receivers sees a new value (or its partition goes away).
async fn any_changed(watches: &mut [watch::Receiver<Offsets>]) {
    let mut waits: Vec<Pin<Box<dyn Future<Output = _> + Send + '_>>> = watches
        .iter_mut()
        .map(|rx| Box::pin(rx.changed()) as Pin<Box<dyn Future<Output = _> + Send + '_>>)
        .collect();
    std::future::poll_fn(|cx| {
        for wait in &mut waits {
            if wait.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
        }
        Poll::Pending
    })
    .await;
}
