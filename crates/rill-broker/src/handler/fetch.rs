//! Fetch: whole stored batches, sent as they are. A long poll waits for new records (woken by
//! the partition owners, not by sleeping) until `min_bytes` are there or `max_wait_ms` passes.
//! Fetch sessions (KIP-227) are declined: every answer has session id 0, so clients send full
//! fetch requests.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use rill_protocol::ErrorCode;
use rill_protocol::kafka_protocol::messages::fetch_response::{
    FetchableTopicResponse, PartitionData,
};
use rill_protocol::kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse};
use tokio::sync::watch;

use crate::broker::{Broker, Topic};
use crate::partition::{Offsets, Partition};

/// Largest wait a client may ask for; longer ones are cut to this.
const MAX_WAIT: Duration = Duration::from_secs(30);

pub(crate) async fn handle(broker: &Broker, req: FetchRequest) -> FetchResponse {
    if req.session_id != 0 {
        return FetchResponse::default().with_error_code(ErrorCode::FetchSessionIdNotFound.code());
    }
    let wait = Duration::from_millis(u64::try_from(req.max_wait_ms).unwrap_or(0)).min(MAX_WAIT);
    let deadline = tokio::time::Instant::now() + wait;
    let max_bytes = usize::try_from(req.max_bytes).unwrap_or(0);
    let min_bytes = usize::try_from(req.min_bytes).unwrap_or(0);
    // Resolve the topics once; a topic deleted meanwhile keeps answering from its old handle.
    let wanted: Vec<(Option<Arc<Topic>>, _)> = req
        .topics
        .into_iter()
        .map(|t| (broker.topic(&t.topic.0), t))
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
                let response = PartitionData::default()
                    .with_partition_index(fp.partition)
                    .with_preferred_read_replica(BrokerId(-1));
                let Some(partition) = topic.as_ref().and_then(|t| t.partition(fp.partition)) else {
                    errors = true;
                    partitions.push(
                        response
                            .with_error_code(ErrorCode::UnknownTopicOrPartition.code())
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
                    .with_high_watermark(offsets.log_end)
                    .with_last_stable_offset(offsets.log_end)
                    .with_log_start_offset(offsets.log_start);
                let budget = usize::try_from(fp.partition_max_bytes)
                    .unwrap_or(0)
                    .min(max_bytes.saturating_sub(total));
                match read(partition, offsets, fp.fetch_offset, budget, total == 0).await {
                    Ok(records) => {
                        total += records.len();
                        partitions.push(response.with_records(Some(records)));
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
            return FetchResponse::default().with_responses(topics);
        }
        // Nothing (or not enough) yet: wait for any of the partitions to grow.
        tokio::select! {
            _ = tokio::time::timeout_at(deadline, any_changed(&mut watches)) => {}
            () = broker.stopping.cancelled() => {}
        }
    }
}

/// Reads from `offset` up to `budget` bytes. The first partition with data in a response gets at
/// least one whole batch even if it is larger than the budget (KIP-74); later ones only what fits.
async fn read(
    partition: &Partition,
    offsets: Offsets,
    offset: i64,
    budget: usize,
    first: bool,
) -> Result<Bytes, ErrorCode> {
    if offset < offsets.log_start || offset > offsets.log_end {
        return Err(ErrorCode::OffsetOutOfRange);
    }
    if offset == offsets.log_end || (budget == 0 && !first) {
        return Ok(Bytes::new());
    }
    let records = partition.read(offset, budget.max(1)).await?;
    if !first && records.len() > budget {
        return Ok(Bytes::new());
    }
    Ok(records)
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
