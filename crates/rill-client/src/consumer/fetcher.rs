//! A partition consumer's background task: fetch from the leader, decode, hand the records to
//! the channel, fetch again. It owns its connection and its offset; nothing is shared with the
//! [`PartitionConsumer`](super::PartitionConsumer) but the channel and the high watermark.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use bytes::Bytes;
use rill_protocol::kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use rill_protocol::kafka_protocol::messages::fetch_response::PartitionData;
use rill_protocol::kafka_protocol::messages::{BrokerId, FetchRequest, TopicName};
use rill_protocol::{ApiKey, ErrorCode, StrBytes};
use rill_record::{Batches, RecordError};
use tokio::sync::mpsc;

use super::{ConsumerConfig, ConsumerRecord, backoff, reset_target, resolve};
use crate::cluster::Cluster;
use crate::connection::Connection;
use crate::error::{ClientError, Result};

pub(super) struct Fetcher {
    cluster: Arc<Cluster>,
    config: Arc<ConsumerConfig>,
    topic: Arc<str>,
    topic_name: TopicName,
    partition: i32,
    /// The offset of the next record to hand over.
    offset: i64,
    /// Bytes asked for: `max_partition_fetch_bytes`, doubled while a broker without KIP-74
    /// sends only part of a batch larger than that.
    fetch_size: usize,
    conn: Option<Arc<Connection>>,
    high_watermark: Arc<AtomicI64>,
    tx: mpsc::Sender<Result<Vec<ConsumerRecord>>>,
}

impl Fetcher {
    pub(super) fn new(
        cluster: Arc<Cluster>,
        config: Arc<ConsumerConfig>,
        topic: Arc<str>,
        partition: i32,
        offset: i64,
        high_watermark: Arc<AtomicI64>,
        tx: mpsc::Sender<Result<Vec<ConsumerRecord>>>,
    ) -> Self {
        Self {
            topic_name: TopicName(StrBytes::from_string(topic.to_string())),
            fetch_size: config.max_partition_fetch_bytes,
            cluster,
            config,
            topic,
            partition,
            offset,
            conn: None,
            high_watermark,
            tx,
        }
    }

    /// Runs until the receiver is gone (the task is also aborted then) or an error ends it.
    pub(super) async fn run(mut self) {
        let mut failures = 0u32;
        loop {
            match self.fetch().await {
                Ok(records) => {
                    failures = 0;
                    if !records.is_empty() && self.tx.send(Ok(records)).await.is_err() {
                        return;
                    }
                }
                Err(err) if err.is_retriable() => {
                    let wait = backoff(&self.config, failures);
                    failures = failures.saturating_add(1);
                    tracing::debug!(
                        topic = %self.topic,
                        partition = self.partition,
                        offset = self.offset,
                        %err,
                        ?wait,
                        "fetch failed; retrying"
                    );
                    if err.invalidates_metadata() {
                        self.cluster.invalidate();
                        self.conn = None;
                    }
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = self.tx.closed() => return,
                    }
                }
                Err(err) => {
                    tracing::debug!(
                        topic = %self.topic,
                        partition = self.partition,
                        offset = self.offset,
                        %err,
                        "partition consumer stopped"
                    );
                    let _ = self.tx.send(Err(err)).await;
                    return;
                }
            }
        }
    }

    /// The connection to the partition's leader: the one we have if the leader has not moved
    /// and it is open, else a new one.
    async fn connection(&mut self) -> Result<Arc<Connection>> {
        let meta = self.cluster.topic_metadata(&self.topic).await?;
        let leader = meta
            .leader(self.partition)
            .ok_or_else(|| ClientError::Kafka {
                code: ErrorCode::LeaderNotAvailable,
                context: self.context(),
            })?;
        // Not in the metadata: an error that invalidates it, so the retry refreshes it.
        let addr =
            self.cluster
                .broker_addr(leader)
                .ok_or_else(|| ClientError::NoBrokerAvailable {
                    tried: vec![format!("node {leader}: not in the metadata")],
                })?;
        if let Some(conn) = &self.conn {
            if !conn.is_closed() && conn.addr() == addr {
                return Ok(Arc::clone(conn));
            }
        }
        self.conn = None;
        let conn = Arc::new(Connection::connect(&addr, &self.cluster.config().connection).await?);
        self.conn = Some(Arc::clone(&conn));
        Ok(conn)
    }

    /// One Fetch: the records at and after `offset` it returned (possibly none), with
    /// `offset` moved past them.
    async fn fetch(&mut self) -> Result<Vec<ConsumerRecord>> {
        let conn = self.connection().await?;
        let max_bytes = i32::try_from(self.fetch_size).unwrap_or(i32::MAX);
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(
                i32::try_from(self.config.fetch_max_wait.as_millis()).unwrap_or(i32::MAX),
            )
            .with_min_bytes(i32::try_from(self.config.fetch_min_bytes).unwrap_or(i32::MAX))
            .with_max_bytes(max_bytes)
            .with_isolation_level(0)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(self.topic_name.clone())
                    .with_partitions(vec![
                        FetchPartition::default()
                            .with_partition(self.partition)
                            .with_fetch_offset(self.offset)
                            .with_partition_max_bytes(max_bytes),
                    ]),
            ]);
        let response = conn.request(request).await?;
        ClientError::check(response.error_code, || self.context())?;
        let data = response
            .responses
            .into_iter()
            .filter(|t| t.topic.0.as_str() == &*self.topic)
            .flat_map(|t| t.partitions)
            .find(|p| p.partition_index == self.partition)
            .ok_or_else(|| ClientError::UnexpectedResponse {
                addr: conn.addr().to_owned(),
                api_key: ApiKey::Fetch,
            })?;
        self.on_partition(data).await
    }

    async fn on_partition(&mut self, data: PartitionData) -> Result<Vec<ConsumerRecord>> {
        if data.error_code == ErrorCode::OffsetOutOfRange.code() {
            let target = reset_target(self.config.offset_reset, || {
                format!(
                    "{} at offset {} (log start {}, high watermark {})",
                    self.context(),
                    self.offset,
                    data.log_start_offset,
                    data.high_watermark
                )
            })?;
            let offset = resolve(&self.cluster, &self.topic, self.partition, target).await?;
            tracing::info!(
                topic = %self.topic,
                partition = self.partition,
                from = self.offset,
                to = offset,
                "offset out of range; reset"
            );
            self.offset = offset;
            return Ok(Vec::new());
        }
        ClientError::check(data.error_code, || self.context())?;
        if data.high_watermark >= 0 {
            self.high_watermark
                .store(data.high_watermark, Ordering::Relaxed);
        }
        self.decode(data.records.unwrap_or_default())
    }

    /// The records at and after `offset` in `bytes`, moving `offset` past every whole batch.
    fn decode(&mut self, bytes: Bytes) -> Result<Vec<ConsumerRecord>> {
        let record_error = |source| ClientError::Record {
            topic: self.topic.to_string(),
            source: Arc::new(source),
        };
        let mut out = Vec::new();
        let mut whole = 0usize;
        for batch in Batches::new(&bytes) {
            let batch = match batch {
                Ok(batch) => batch,
                // The broker cut the last batch at the size limit; the next fetch starts there.
                Err(RecordError::Truncated { .. }) => break,
                // Hand over what came before the bad batch first; the next fetch starts at it
                // and reports it.
                Err(_) if !out.is_empty() => break,
                Err(err) => return Err(record_error(err)),
            };
            whole += 1;
            let header = batch.header();
            if header.next_offset() <= self.offset {
                continue;
            }
            // Control batches (transaction markers) hold no user records.
            if !header.attributes.is_control() {
                let records = match batch.records() {
                    Ok(records) => records,
                    Err(_) if !out.is_empty() => break,
                    Err(err) => return Err(record_error(err)),
                };
                // A fetch returns whole batches: skip what precedes the offset asked for.
                out.extend(
                    records
                        .into_iter()
                        .filter(|record| record.offset >= self.offset)
                        .map(|record| ConsumerRecord {
                            topic: Arc::clone(&self.topic),
                            partition: self.partition,
                            offset: record.offset,
                            key: record.key,
                            value: record.value,
                            headers: record.headers,
                            timestamp: record.timestamp,
                        }),
                );
            }
            self.offset = header.next_offset();
        }
        if whole == 0 && !bytes.is_empty() {
            // Only part of one batch: a broker without KIP-74 and a batch larger than we asked
            // for. Ask for more, up to the largest response the connection accepts.
            let limit = self.cluster.config().connection.max_response_size;
            if self.fetch_size >= limit {
                return Err(ClientError::RecordTooLarge {
                    topic: self.topic.to_string(),
                    size: bytes.len(),
                    max: limit,
                });
            }
            self.fetch_size = self.fetch_size.saturating_mul(2).min(limit);
        } else if whole > 0 {
            self.fetch_size = self.config.max_partition_fetch_bytes;
        }
        Ok(out)
    }

    fn context(&self) -> String {
        format!(
            "fetch from topic '{}' partition {}",
            self.topic, self.partition
        )
    }
}
