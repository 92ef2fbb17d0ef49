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
use super::publish::Who;
use crate::authorizer::Operation;
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

/// The lower of two QoS levels.
pub(super) fn min_qos(a: QoS, b: QoS) -> QoS {
    if (a as u8) <= (b as u8) { a } else { b }
}

/// The records (and marks) a connection's readers may have sent ahead of it.
pub(super) const FEED_CAPACITY: usize = 64;

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
                // Records went (retention, DeleteRecords): go on from the log's start at once;
                // an offset already inside the log waits for it to change.
                let offsets = partition.offsets();
                let inside = offset.clamp(offsets.log_start, offsets.high_watermark);
                if inside == offset && changes.changed().await.is_err() {
                    return;
                }
                offset = inside;
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
    /// Whose readers: a topic it may not READ is not read.
    who: Who,
    filters: watch::Sender<Filters>,
    /// The channel to the connection, made when first needed: a connection that never
    /// subscribes (a device that only publishes) never pays for one.
    out: Option<mpsc::Sender<Feed>>,
    /// Its receiving end, until the connection takes it.
    receiver: Option<mpsc::Receiver<Feed>>,
    running: HashMap<Key, JoinHandle<()>>,
    /// A resumed session's positions, taken by the readers as they start.
    resume: HashMap<Key, i64>,
    /// The partitions read at some point: one whose reader stopped starts again at its end.
    seen: std::collections::HashSet<Key>,
}

impl Readers {
    pub(super) fn new(broker: Arc<Broker>, mapping: Arc<Mapping>, who: Who) -> Self {
        Self {
            broker,
            mapping,
            who,
            filters: watch::Sender::new(Arc::new(Vec::new())),
            out: None,
            receiver: None,
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
        // The channel exists from the first subscription on (readers may start later).
        let _ = self.sender();
        let _ = self.filters.send_replace(Arc::new(filters));
        self.refresh(false);
    }

    /// Resumes a session: its filters, read from its `positions`; a partition it has no
    /// position in was created after it last read, so it is read from its start.
    pub(super) fn resume(&mut self, filters: Vec<(String, QoS)>, positions: HashMap<Key, i64>) {
        let _ = self.sender();
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
            if !self.who.may(&self.broker, Operation::Read, &topic.name) {
                continue;
            }
            if filters
                .iter()
                .any(|(filter, _)| self.mapping.reads(filter, &topic.name))
            {
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
                self.sender(),
                offset,
            ));
            let _ = self.seen.insert(key.clone());
            let _ = self.running.insert(key, task);
        }
    }

    /// The channel its readers send into (a shared subscription's dispatcher sends there too),
    /// made on first use.
    pub(super) fn sender(&mut self) -> mpsc::Sender<Feed> {
        self.out
            .get_or_insert_with(|| {
                let (out, receiver) = mpsc::channel(FEED_CAPACITY);
                self.receiver = Some(receiver);
                out
            })
            .clone()
    }

    /// The receiving end of [`Readers::sender`]'s channel, once it exists (taken once).
    pub(super) fn take_receiver(&mut self) -> Option<mpsc::Receiver<Feed>> {
        self.receiver.take()
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

/// A member of a shared subscription: its connection's number, channel and granted QoS.
#[derive(Debug, Clone)]
struct Member {
    number: u64,
    out: mpsc::Sender<Feed>,
    qos: QoS,
}

/// One shared subscription (`$share/<group>/<filter>`): one set of readers for the whole group,
/// each record delivered to one member, in turn (a member whose window is full is passed over
/// while another has room). It lasts while it has members.
#[derive(Debug)]
struct Share {
    members: Arc<std::sync::Mutex<Vec<Member>>>,
    task: JoinHandle<()>,
}

/// The broker's shared subscriptions, by their full filter.
#[derive(Debug, Default)]
pub(super) struct Shares {
    shares: std::sync::Mutex<HashMap<String, Share>>,
}

/// `$share/<group>/<filter>`'s group and filter, if it is a valid shared subscription.
pub(super) fn parse_share(filter: &str) -> Option<(&str, &str)> {
    let rest = filter.strip_prefix("$share/")?;
    let (group, filter) = rest.split_once('/')?;
    let valid_group = !group.is_empty() && !group.contains(['+', '#']);
    (valid_group && mqtt5_protocol::is_valid_topic_filter(filter)).then_some((group, filter))
}

impl Shares {
    /// Adds connection `number` to the shared subscription `name` (reading `filter`), which
    /// starts, from the partitions' ends, if it had no member.
    pub(super) fn join(
        &self,
        broker: &Arc<Broker>,
        mapping: &Arc<Mapping>,
        name: &str,
        filter: &str,
        member: (u64, mpsc::Sender<Feed>, QoS, Who),
    ) {
        let Ok(mut shares) = self.shares.lock() else {
            return;
        };
        let (number, out, qos, who) = member;
        let member = Member { number, out, qos };
        if let Some(share) = shares.get(name).filter(|s| !s.task.is_finished()) {
            if let Ok(mut members) = share.members.lock() {
                members.retain(|m| m.number != number);
                members.push(member);
            }
            return;
        }
        let members = Arc::new(std::sync::Mutex::new(vec![member]));
        // The group reads what its first member may read.
        let task = tokio::spawn(dispatch(
            broker.clone(),
            mapping.clone(),
            who,
            filter.to_owned(),
            members.clone(),
        ));
        let _ = shares.insert(name.to_owned(), Share { members, task });
    }

    /// Takes connection `number` out of the shared subscription `name`, which stops when it
    /// was the last member.
    pub(super) fn leave(&self, name: &str, number: u64) {
        let Ok(mut shares) = self.shares.lock() else {
            return;
        };
        let empty = shares.get(name).is_some_and(|share| {
            share.members.lock().map_or(true, |mut members| {
                members.retain(|m| m.number != number);
                members.is_empty()
            })
        });
        if empty && let Some(share) = shares.remove(name) {
            share.task.abort();
        }
    }
}

/// Reads a shared subscription's records and hands each to one member.
async fn dispatch(
    broker: Arc<Broker>,
    mapping: Arc<Mapping>,
    who: Who,
    filter: String,
    members: Arc<std::sync::Mutex<Vec<Member>>>,
) {
    let mut readers = Readers::new(broker, mapping, who);
    let _ = readers.sender();
    let Some(mut feed) = readers.take_receiver() else {
        return;
    };
    readers.set_filters(vec![(filter, QoS::ExactlyOnce)]);
    let mut refresh = tokio::time::interval(std::time::Duration::from_secs(1));
    let mut next = 0usize;
    loop {
        let feed = tokio::select! {
            _ = refresh.tick() => {
                readers.refresh(true);
                continue;
            }
            feed = feed.recv() => feed,
        };
        let Some(Feed::Record(mut delivery)) = feed else {
            continue;
        };
        // The shared subscription's position is its readers'; a member's own is not moved.
        delivery.source = None;
        loop {
            let chosen = {
                let Ok(members) = members.lock() else {
                    return;
                };
                if members.is_empty() {
                    return;
                }
                // The next member in turn with room, else the next in turn (waited for).
                let count = members.len();
                let start = next % count;
                next = next.wrapping_add(1);
                (0..count)
                    .map(|i| &members[(start + i) % count])
                    .find(|m| m.out.capacity() > 0)
                    .unwrap_or(&members[start])
                    .clone()
            };
            delivery.qos = min_qos(delivery.qos, chosen.qos);
            match chosen.out.send(Feed::Record(delivery)).await {
                Ok(()) => break,
                Err(mpsc::error::SendError(feed)) => {
                    // Gone: the next member gets it.
                    if let Ok(mut members) = members.lock() {
                        members.retain(|m| m.number != chosen.number);
                    }
                    let Feed::Record(back) = feed else {
                        break;
                    };
                    delivery = back;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_share;

    #[test]
    fn shared_subscriptions_name_a_group_and_a_filter() {
        assert_eq!(
            parse_share("$share/g1/sensors/#"),
            Some(("g1", "sensors/#"))
        );
        assert_eq!(parse_share("$share/g1/+"), Some(("g1", "+")));
        assert_eq!(parse_share("$share/g+/x"), None);
        assert_eq!(parse_share("$share//x"), None);
        assert_eq!(parse_share("$share/g1"), None);
        assert_eq!(parse_share("$share/g1/a/#/b"), None);
        assert_eq!(parse_share("sensors/#"), None);
    }
}
