//! A partition consumer's background task: fetch from the leader, decode, hand the records to
//! the channel, fetch again. It owns its connection and its offset; nothing is shared with the
//! [`PartitionConsumer`](super::PartitionConsumer) but the channel and the high watermark.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use bytes::Bytes;
use rill_protocol::kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use rill_protocol::kafka_protocol::messages::fetch_response::{AbortedTransaction, PartitionData};
use rill_protocol::kafka_protocol::messages::{BrokerId, FetchRequest, TopicName};
use rill_protocol::{ApiKey, ErrorCode, StrBytes};
use rill_record::{BatchHeader, Batches, Marker, RecordError, parse_marker};
use tokio::sync::mpsc;

use super::{
    ConsumerConfig, ConsumerRecord, Fetched, IsolationLevel, backoff, reset_target, resolve,
};
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
    tx: mpsc::Sender<Result<Fetched>>,
}

impl Fetcher {
    pub(super) fn new(
        cluster: Arc<Cluster>,
        config: Arc<ConsumerConfig>,
        topic: Arc<str>,
        partition: i32,
        offset: i64,
        high_watermark: Arc<AtomicI64>,
        tx: mpsc::Sender<Result<Fetched>>,
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
            let before = self.offset;
            match self.fetch().await {
                Ok(records) => {
                    failures = 0;
                    // Moving past batches without records to return (markers, aborted
                    // records) is news too: it moves the consumer's position.
                    if records.is_empty() && self.offset == before {
                        continue;
                    }
                    let fetched = Fetched {
                        records,
                        next_offset: self.offset,
                    };
                    if self.tx.send(Ok(fetched)).await.is_err() {
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
        if let Some(conn) = &self.conn
            && !conn.is_closed()
            && conn.addr() == addr
        {
            return Ok(Arc::clone(conn));
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
            .with_isolation_level(self.config.isolation_level.value())
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
            let isolation = self.config.isolation_level;
            let offset = resolve(
                &self.cluster,
                &self.topic,
                self.partition,
                target,
                isolation,
            )
            .await?;
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
        // Only a read_committed Fetch lists aborted transactions; a broker that lists them
        // anyway is not asked to hide anything.
        let aborted = match self.config.isolation_level {
            IsolationLevel::ReadCommitted => data.aborted_transactions.unwrap_or_default(),
            _ => Vec::new(),
        };
        self.decode(data.records.unwrap_or_default(), Aborted::new(&aborted))
    }

    /// The records at and after `offset` in `bytes`, without those `aborted` drops, moving
    /// `offset` past every whole batch.
    fn decode(&mut self, bytes: Bytes, mut aborted: Aborted) -> Result<Vec<ConsumerRecord>> {
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
            let marker = if header.attributes.is_control() {
                match parse_marker(&batch) {
                    Ok(marker) => marker,
                    Err(_) if !out.is_empty() => break,
                    Err(err) => return Err(record_error(err)),
                }
            } else {
                None
            };
            // Before the offset check: a transaction that began in a batch already read can
            // end in this one.
            let dropped = aborted.drops(header, marker);
            if header.next_offset() <= self.offset {
                continue;
            }
            // Control batches (transaction markers) hold no user records.
            if !header.attributes.is_control() && !dropped {
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

/// Kafka's read_committed filter over the batches of one Fetch answer (the Java client's, as
/// KIP-98 describes it): an aborted transaction `(producer, first offset)` drops that
/// producer's transactional batches from its first offset up to its ABORT marker.
#[derive(Debug, Default)]
struct Aborted {
    /// `(first offset, producer id)` of the listed transactions not reached yet, the lowest
    /// first offset last.
    ahead: Vec<(i64, i64)>,
    /// Producers inside an aborted transaction at the current batch.
    open: HashSet<i64>,
}

impl Aborted {
    fn new(list: &[AbortedTransaction]) -> Self {
        let mut ahead: Vec<(i64, i64)> = list
            .iter()
            .map(|t| (t.first_offset, t.producer_id.0))
            .collect();
        ahead.sort_unstable_by(|a, b| b.cmp(a));
        Self {
            ahead,
            open: HashSet::new(),
        }
    }

    /// Whether the records of this batch are to be dropped; called for every batch in
    /// offset order, `marker` being what a control batch says.
    fn drops(&mut self, header: &BatchHeader, marker: Option<Marker>) -> bool {
        if header.attributes.is_control() {
            if marker.is_some_and(|m| !m.commit) {
                let _ = self.open.remove(&header.producer_id);
            }
            return true;
        }
        if !header.attributes.is_transactional() {
            return false;
        }
        while let Some(&(first, producer)) = self.ahead.last() {
            if first > header.last_offset() {
                break;
            }
            let _ = self.open.insert(producer);
            let _ = self.ahead.pop();
        }
        self.open.contains(&header.producer_id)
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a test fails by panicking")]
mod tests {
    use rill_protocol::kafka_protocol::messages::ProducerId;
    use rill_record::{Batch, BatchBuilder, RecordSpec, marker_batch};

    use super::*;

    /// A transactional batch of `count` records of `producer` at `base`.
    fn data(producer: i64, base: i64, count: i32) -> Bytes {
        let mut builder = BatchBuilder::new()
            .transactional(producer >= 0)
            .producer(producer, 0, 0)
            .base_offset(base);
        for i in 0..count {
            let _ = builder.push(&RecordSpec::new(0).value(format!("{producer}-{i}")));
        }
        builder.build().unwrap()
    }

    fn marker(producer: i64, base: i64, commit: bool) -> Bytes {
        let marker = Marker {
            commit,
            coordinator_epoch: 0,
        };
        let bytes = marker_batch(producer, 0, marker, 0).unwrap();
        let mut bytes = bytes.to_vec();
        rill_record::set_base_offset(&mut bytes, base).unwrap();
        Bytes::from(bytes)
    }

    /// The offsets `Aborted` keeps, from batches at offsets as given.
    fn kept(batches: &[Bytes], aborted: &[(i64, i64)]) -> Vec<i64> {
        let list: Vec<AbortedTransaction> = aborted
            .iter()
            .map(|&(producer, first)| {
                AbortedTransaction::default()
                    .with_producer_id(ProducerId(producer))
                    .with_first_offset(first)
            })
            .collect();
        let mut filter = Aborted::new(&list);
        let mut out = Vec::new();
        for bytes in batches {
            let batch = Batch::parse(bytes).unwrap();
            let header = batch.header();
            let marker = if header.attributes.is_control() {
                parse_marker(&batch).unwrap()
            } else {
                None
            };
            if !filter.drops(header, marker) {
                out.extend(header.base_offset..header.next_offset());
            }
        }
        out
    }

    #[test]
    fn aborted_transactions_are_dropped_up_to_their_marker_only() {
        // Producer 7 aborts 0-1 and commits 5-6; producer 8 commits 2-3 in between, and a
        // non-transactional batch sits at 8.
        let batches = [
            data(7, 0, 2),
            data(8, 2, 2),
            marker(7, 4, false),
            data(7, 5, 2),
            marker(8, 7, true),
            data(-1, 8, 1),
            marker(7, 9, true),
        ];
        assert_eq!(kept(&batches, &[(7, 0)]), [2, 3, 5, 6, 8]);
        // read_uncommitted (nothing listed): everything but the markers.
        assert_eq!(kept(&batches, &[]), [0, 1, 2, 3, 5, 6, 8]);
    }

    #[test]
    fn a_listed_transaction_starts_at_its_first_offset_not_before() {
        // Producer 7 commits 0-1, then aborts 3-4: only the second is listed.
        let batches = [
            data(7, 0, 2),
            marker(7, 2, true),
            data(7, 3, 2),
            marker(7, 5, false),
        ];
        assert_eq!(kept(&batches, &[(7, 3)]), [0, 1]);
    }
}
