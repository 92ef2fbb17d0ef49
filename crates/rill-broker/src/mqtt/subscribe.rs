//! Subscriptions: a connection's filters, and the readers that turn the records of the Kafka
//! topics those filters need into deliveries. One reader per partition per connection reads
//! committed records as a `read_committed` consumer would, from where the subscription began,
//! and hands every record some filter matches to the connection (a bounded channel: a slow
//! subscriber slows its readers, never the broker's memory).

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use mqtt5_protocol::QoS;
use rill_protocol::ErrorCode;
use rill_record::{Batches, DEFAULT_MAX_RECORDS_LEN};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::mapping::{Mapping, matches};
use crate::broker::Broker;
use crate::partition::Partition;

/// A record on its way to a subscriber.
#[derive(Debug)]
pub(super) struct Delivery {
    pub(super) topic: String,
    pub(super) payload: Bytes,
    pub(super) headers: Vec<(Bytes, Option<Bytes>)>,
    pub(super) qos: QoS,
    /// A retained message sent because of a new subscription.
    pub(super) retain: bool,
    /// The partition and offset of its record (`None` for a retained message).
    pub(super) source: Option<(Key, i64)>,
}

/// A partition: its topic and index.
pub(super) type Key = (String, i32);

/// What the readers send a connection, in order per partition.
#[derive(Debug)]
pub(super) enum Feed {
    /// A record some filter matches.
    Record(Delivery),
    /// Every record of the partition below the offset was sent before this (or matched no
    /// filter): a session's position there can move up to it once those are acknowledged.
    Scanned(Key, i64),
}

/// A connection's filters and the QoS granted to each.
pub(super) type Filters = Arc<Vec<(String, QoS)>>;

/// The highest QoS among the filters `topic` matches (`None`: none matches).
fn granted(filters: &[(String, QoS)], topic: &str) -> Option<QoS> {
    filters
        .iter()
        .filter(|(filter, _)| matches(topic, filter))
        .map(|(_, qos)| *qos)
        .max_by_key(|qos| *qos as u8)
}

/// How much one read asks a partition for.
const READ_BYTES: usize = 1 << 20;

/// Reads `partition` of Kafka topic `kafka` from `offset` for as long as the subscription
/// lasts (the task is aborted when no filter needs the topic any more, or the connection
/// ends), or until the partition goes away here.
async fn read(
    partition: Arc<Partition>,
    kafka: String,
    mapping: Arc<Mapping>,
    filters: watch::Receiver<Filters>,
    out: mpsc::Sender<Feed>,
    mut offset: i64,
) {
    let key: Key = (kafka.clone(), partition.index);
    let mut changes = partition.watch();
    loop {
        let (bytes, aborted) = match partition.read_committed(offset, READ_BYTES).await {
            Ok(read) => read,
            Err(ErrorCode::OffsetOutOfRange) => {
                // Records went (retention, DeleteRecords): go on from the log's start.
                offset = partition
                    .offsets()
                    .log_start
                    .max(offset.min(partition.offsets().high_watermark));
                if changes.changed().await.is_err() {
                    return;
                }
                continue;
            }
            Err(code) => {
                tracing::debug!(topic = %kafka, partition = partition.index, error = code.name(), "an MQTT subscription stops reading");
                return;
            }
        };
        if bytes.is_empty() {
            if changes.changed().await.is_err() {
                return;
            }
            continue;
        }
        for batch in Batches::new(&bytes) {
            let Ok(batch) = batch else {
                return;
            };
            let header = *batch.header();
            let next = header.next_offset();
            let skip = header.attributes.is_control()
                || header.attributes.is_transactional()
                    && aborted.iter().any(|t| {
                        t.producer_id == header.producer_id
                            && (t.first_offset..=t.last_offset).contains(&header.base_offset)
                    });
            if !skip {
                let Ok(section) = batch.records_section(DEFAULT_MAX_RECORDS_LEN) else {
                    return;
                };
                let Ok(records) = rill_record::decode_records(&header, &section) else {
                    return;
                };
                for record in records {
                    if record.offset < offset {
                        continue;
                    }
                    let topic = mapping.mqtt_topic(&kafka, record.key.as_deref());
                    let Some(qos) = granted(&filters.borrow(), topic) else {
                        continue;
                    };
                    let delivery = Delivery {
                        topic: topic.to_owned(),
                        payload: record.value.unwrap_or_default(),
                        headers: record
                            .headers
                            .into_iter()
                            .map(|h| (h.key, h.value))
                            .collect(),
                        qos,
                        retain: false,
                        source: Some((key.clone(), record.offset)),
                    };
                    if out.send(Feed::Record(delivery)).await.is_err() {
                        return;
                    }
                }
            }
            offset = offset.max(next);
        }
        if out.send(Feed::Scanned(key.clone(), offset)).await.is_err() {
            return;
        }
    }
}

/// The readers of one connection, by partition.
#[derive(Debug)]
pub(super) struct Readers {
    broker: Arc<Broker>,
    mapping: Arc<Mapping>,
    filters: watch::Sender<Filters>,
    out: mpsc::Sender<Feed>,
    running: HashMap<Key, JoinHandle<()>>,
    /// A resumed session's positions, taken by the readers as they start.
    resume: HashMap<Key, i64>,
    /// The partitions read at some point: one whose reader stopped starts again at its end.
    seen: std::collections::HashSet<Key>,
}

impl Readers {
    pub(super) fn new(broker: Arc<Broker>, mapping: Arc<Mapping>, out: mpsc::Sender<Feed>) -> Self {
        Self {
            broker,
            mapping,
            filters: watch::Sender::new(Arc::new(Vec::new())),
            out,
            running: HashMap::new(),
            resume: HashMap::new(),
            seen: std::collections::HashSet::new(),
        }
    }

    /// The connection's filters now.
    pub(super) fn filters(&self) -> Filters {
        self.filters.borrow().clone()
    }

    /// Replaces the filters, then starts the readers they need from the partitions' ends
    /// (what is published from now on) and stops the ones they no longer need.
    pub(super) fn set_filters(&mut self, filters: Vec<(String, QoS)>) {
        let _ = self.filters.send_replace(Arc::new(filters));
        self.refresh(false);
    }

    /// Resumes a session: its filters, read from its `positions`; a partition it has no
    /// position in was created after it last read, so it is read from its start.
    pub(super) fn resume(&mut self, filters: Vec<(String, QoS)>, positions: HashMap<Key, i64>) {
        self.resume = positions;
        let _ = self.filters.send_replace(Arc::new(filters));
        self.refresh(true);
        self.resume.clear();
    }

    /// Stops every reader (the connection is ending).
    pub(super) fn stop(&mut self) {
        for (_, task) in self.running.drain() {
            task.abort();
        }
    }

    /// Starts readers for the partitions the filters need that have none, and stops the rest.
    /// A new subscription's readers start at the partitions' ends; `from_start` is for the
    /// topics and partitions created since, every record of which is newer than the
    /// subscription.
    pub(super) fn refresh(&mut self, from_start: bool) {
        let filters = self.filters();
        let topics = self.broker.all_topics();
        let mut wanted = HashMap::new();
        for topic in &topics {
            if filters.iter().any(|(filter, _)| {
                !self
                    .mapping
                    .topics_for(filter, std::iter::once(topic.name.as_str()))
                    .is_empty()
            }) {
                for index in 0..topic.partition_count() {
                    if let Ok(partition) = topic.led(index) {
                        let _ = wanted.insert((topic.name.clone(), index), partition.clone());
                    }
                }
            }
        }
        self.running.retain(|key, task| {
            let keep = wanted.contains_key(key) && !task.is_finished();
            if !keep {
                task.abort();
            }
            keep
        });
        for (key, partition) in wanted {
            if self.running.contains_key(&key) {
                continue;
            }
            let offsets = partition.offsets();
            let offset = match self.resume.get(&key) {
                Some(&position) => position.clamp(offsets.log_start, offsets.high_watermark),
                None if from_start && !self.seen.contains(&key) => offsets.log_start,
                None => offsets.high_watermark,
            };
            let task = tokio::spawn(read(
                partition,
                key.0.clone(),
                self.mapping.clone(),
                self.filters.subscribe(),
                self.out.clone(),
                offset,
            ));
            let _ = self.seen.insert(key.clone());
            let _ = self.running.insert(key, task);
        }
    }

    /// Whether any filter is subscribed.
    pub(super) fn is_empty(&self) -> bool {
        self.filters.borrow().is_empty()
    }
}

impl Drop for Readers {
    fn drop(&mut self) {
        for task in self.running.values() {
            task.abort();
        }
    }
}
