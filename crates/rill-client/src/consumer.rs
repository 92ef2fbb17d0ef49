//! The partition consumer: [`Consumer`] lists partitions and resolves start offsets;
//! [`PartitionConsumer`] reads one partition from there on (sarama's `ConsumePartition` shape).
//!
//! Each [`PartitionConsumer`] owns a background task that fetches from the partition's leader
//! and feeds a bounded channel, so one Fetch is in flight while the caller works through the
//! records of the previous one. The task
//! - long-polls (`fetch_max_wait`, `fetch_min_bytes`), so an idle partition costs one request
//!   per `fetch_max_wait`, and a new record arrives as soon as the broker has it;
//! - decodes every codec (`rill-record` does the work) and drops the records below the
//!   requested offset that arrive because a fetch returns whole batches;
//! - skips control batches (transaction markers) and, under
//!   [`IsolationLevel::ReadCommitted`], stops at the last stable offset and drops the records
//!   of aborted transactions (the `aborted_transactions` of each Fetch answer);
//! - on `NOT_LEADER_OR_FOLLOWER`, a broken connection or any other retriable error, refreshes
//!   the metadata, backs off and fetches again from the same offset, so it keeps going across
//!   a leader change or a broker restart;
//! - on `OFFSET_OUT_OF_RANGE` follows [`ConsumerConfig::offset_reset`]: by default it yields
//!   the error and ends.
//!
//! # Connections
//! Each partition consumer fetches over a connection of its own, not the [`Cluster`]'s shared
//! one: a broker answers the requests of one connection strictly in order, so a long poll on a
//! shared connection would hold up every producer request and every other partition's fetch
//! behind it for up to `fetch_max_wait`. The cost is one TCP connection per consumed
//! partition. Metadata and `ListOffsets` requests use the cluster's shared connections.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use rill_protocol::kafka_protocol::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsTopic,
};
use rill_protocol::kafka_protocol::messages::{BrokerId, ListOffsetsRequest, TopicName};
use rill_protocol::{ErrorCode, StrBytes};
use rill_record::Header;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::cluster::{ClientConfig, Cluster};
use crate::error::{ClientError, Result};

mod fetcher;

/// Default [`ConsumerConfig::fetch_max_wait`]: 500 ms, Kafka's `fetch.max.wait.ms`.
pub const DEFAULT_FETCH_MAX_WAIT: Duration = Duration::from_millis(500);
/// Default [`ConsumerConfig::fetch_min_bytes`]: 1, Kafka's `fetch.min.bytes`.
pub const DEFAULT_FETCH_MIN_BYTES: usize = 1;
/// Default [`ConsumerConfig::max_partition_fetch_bytes`]: 1 MiB, Kafka's
/// `max.partition.fetch.bytes`.
pub const DEFAULT_MAX_PARTITION_FETCH_BYTES: usize = 1024 * 1024;
/// Default [`ConsumerConfig::retry_backoff`]: 100 ms, Kafka's `retry.backoff.ms`.
pub const DEFAULT_CONSUMER_RETRY_BACKOFF: Duration = Duration::from_millis(100);
/// Default [`ConsumerConfig::retry_backoff_max`]: 1 s, Kafka's `retry.backoff.max.ms`.
pub const DEFAULT_CONSUMER_RETRY_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// `ListOffsets` timestamp for the log end (the offset the next record will get).
const LATEST_TIMESTAMP: i64 = -1;
/// `ListOffsets` timestamp for the log start.
const EARLIEST_TIMESTAMP: i64 = -2;

/// Where a [`PartitionConsumer`] starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offset {
    /// The oldest record still in the log (sarama's `OffsetOldest`, Kafka's `earliest`).
    Oldest,
    /// The next record produced after the consumer starts (sarama's `OffsetNewest`, Kafka's
    /// `latest`).
    Newest,
    /// This offset. One past the log end (the offset the next record will get) or before the
    /// log start is out of range, and handled as [`ConsumerConfig::offset_reset`] says.
    At(i64),
    /// The first record whose timestamp (milliseconds since the epoch) is at or after this
    /// one; the log end when there is none yet.
    Timestamp(i64),
}

/// Which records a consumer reads (Kafka's `isolation.level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum IsolationLevel {
    /// Every record, those of open and aborted transactions too (`read_uncommitted`). The
    /// default, as in Kafka's Java client.
    #[default]
    ReadUncommitted,
    /// Records outside transactions and those of committed transactions, and none past the
    /// last stable offset, where the oldest transaction still open begins
    /// (`read_committed`). [`Offset::Newest`] is then the last stable offset.
    ReadCommitted,
}

impl IsolationLevel {
    /// The wire value: 0 read_uncommitted, 1 read_committed.
    pub fn value(self) -> i8 {
        match self {
            Self::ReadUncommitted => 0,
            Self::ReadCommitted => 1,
        }
    }

    /// Kafka's name: `read_uncommitted` or `read_committed`.
    pub fn name(self) -> &'static str {
        match self {
            Self::ReadUncommitted => "read_uncommitted",
            Self::ReadCommitted => "read_committed",
        }
    }
}

impl std::str::FromStr for IsolationLevel {
    type Err = String;

    /// Kafka's names, any case: `read_uncommitted` or `read_committed`.
    ///
    /// ```
    /// use rill_client::IsolationLevel;
    /// assert_eq!("read_committed".parse(), Ok(IsolationLevel::ReadCommitted));
    /// assert!("committed".parse::<IsolationLevel>().is_err());
    /// ```
    fn from_str(text: &str) -> Result<Self, String> {
        match text.to_ascii_lowercase().as_str() {
            "read_uncommitted" => Ok(Self::ReadUncommitted),
            "read_committed" => Ok(Self::ReadCommitted),
            _ => Err(format!(
                "'{text}' is not an isolation level (read_uncommitted, read_committed)"
            )),
        }
    }
}

/// What a [`PartitionConsumer`] does when its offset is out of range (Kafka's
/// `auto.offset.reset`): the offset was never written, or retention or `DeleteRecords`
/// removed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OffsetReset {
    /// Yield [`ClientError::Kafka`] with [`ErrorCode::OffsetOutOfRange`], then end (Kafka's
    /// `none`, sarama's behaviour). The default: nothing is skipped or read twice without the
    /// caller deciding so.
    #[default]
    Error,
    /// Continue from the oldest record in the log: may read records a second time.
    Earliest,
    /// Continue from the log end: skips whatever lies between.
    Latest,
}

/// Consumer settings. Every field documents its default and what changing it risks.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConsumerConfig {
    /// How to reach the cluster.
    pub client: ClientConfig,
    /// Longest the broker holds a Fetch while fewer than `fetch_min_bytes` are there (default
    /// [`DEFAULT_FETCH_MAX_WAIT`]). Longer means fewer requests on an idle partition; it must
    /// stay below the connection's `request_timeout`.
    pub fetch_max_wait: Duration,
    /// Bytes the broker waits for before answering a Fetch (default
    /// [`DEFAULT_FETCH_MIN_BYTES`]: answer as soon as there is anything). Larger means bigger,
    /// fewer answers and up to `fetch_max_wait` more latency.
    pub fetch_min_bytes: usize,
    /// Most record bytes one Fetch asks for (default [`DEFAULT_MAX_PARTITION_FETCH_BYTES`]).
    /// A batch larger than this still arrives whole (KIP-74), so it bounds memory per fetch
    /// only loosely; about three fetches' worth is held per partition consumer (the one being
    /// read, one queued, one in flight).
    pub max_partition_fetch_bytes: usize,
    /// What to do when the offset is out of range (default [`OffsetReset::Error`]).
    pub offset_reset: OffsetReset,
    /// First wait before retrying a failed fetch (default
    /// [`DEFAULT_CONSUMER_RETRY_BACKOFF`]); doubles with each failure in a row.
    pub retry_backoff: Duration,
    /// Longest wait between retries (default [`DEFAULT_CONSUMER_RETRY_BACKOFF_MAX`]). The
    /// consumer never gives up on a retriable error; a broker that stays down leaves `next`
    /// waiting.
    pub retry_backoff_max: Duration,
    /// Which records are read (default [`IsolationLevel::ReadUncommitted`], as in Kafka).
    /// [`IsolationLevel::ReadCommitted`] waits for open transactions to end before reading
    /// past their first record.
    pub isolation_level: IsolationLevel,
}

impl ConsumerConfig {
    /// The defaults above for this cluster.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use rill_client::{ClientConfig, ConsumerConfig, OffsetReset};
    /// let mut config = ConsumerConfig::new(ClientConfig::new(["127.0.0.1:9092"]));
    /// config.fetch_max_wait = Duration::from_millis(100);
    /// config.offset_reset = OffsetReset::Earliest;
    /// # drop(config);
    /// ```
    pub fn new(client: ClientConfig) -> Self {
        Self {
            client,
            fetch_max_wait: DEFAULT_FETCH_MAX_WAIT,
            fetch_min_bytes: DEFAULT_FETCH_MIN_BYTES,
            max_partition_fetch_bytes: DEFAULT_MAX_PARTITION_FETCH_BYTES,
            offset_reset: OffsetReset::Error,
            retry_backoff: DEFAULT_CONSUMER_RETRY_BACKOFF,
            retry_backoff_max: DEFAULT_CONSUMER_RETRY_BACKOFF_MAX,
            isolation_level: IsolationLevel::ReadUncommitted,
        }
    }

    fn validate(&self, client: &ClientConfig) -> Result<()> {
        if self.fetch_max_wait >= client.connection.request_timeout {
            return Err(ClientError::Config(format!(
                "fetch_max_wait ({:?}) must be below the request timeout ({:?})",
                self.fetch_max_wait, client.connection.request_timeout
            )));
        }
        if self.max_partition_fetch_bytes == 0 {
            return Err(ClientError::Config(
                "max_partition_fetch_bytes must be at least 1".to_owned(),
            ));
        }
        Ok(())
    }
}

impl From<ClientConfig> for ConsumerConfig {
    /// [`ConsumerConfig::new`].
    fn from(client: ClientConfig) -> Self {
        Self::new(client)
    }
}

/// A record read from a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsumerRecord {
    /// The topic (shared by every record of the partition consumer).
    pub topic: Arc<str>,
    /// The partition.
    pub partition: i32,
    /// The record's offset.
    pub offset: i64,
    /// The key; `None` is null, distinct from empty.
    pub key: Option<Bytes>,
    /// The value; `None` is null (a tombstone), distinct from empty.
    pub value: Option<Bytes>,
    /// Headers, in the order they were written.
    pub headers: Vec<Header>,
    /// Milliseconds since the epoch: the producer's (CreateTime) or the broker's append time
    /// when the topic uses LogAppendTime.
    pub timestamp: i64,
}

/// The consumer: partitions, start offsets, and a [`PartitionConsumer`] per partition
/// (sarama's `Consumer`). Cheap to clone; clones share the [`Cluster`].
///
/// ```no_run
/// use rill_client::{ClientConfig, Consumer, Offset};
///
/// # async fn _demo() -> Result<(), rill_client::ClientError> {
/// let consumer = Consumer::new(ClientConfig::new(["127.0.0.1:9092"]))?;
/// for partition in consumer.partitions("events").await? {
///     let mut pc = consumer.consume_partition("events", partition, Offset::Oldest).await?;
///     tokio::spawn(async move {
///         while let Some(Ok(record)) = pc.next().await {
///             println!("{}@{}: {:?}", record.partition, record.offset, record.value);
///         }
///     });
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Consumer {
    cluster: Arc<Cluster>,
    config: Arc<ConsumerConfig>,
}

impl Consumer {
    /// A consumer on a new [`Cluster`]; takes a [`ConsumerConfig`] or, for the defaults, a
    /// [`ClientConfig`]. Connects nothing yet.
    ///
    /// ```no_run
    /// use rill_client::{ClientConfig, Consumer, ConsumerConfig};
    /// # fn _demo() -> Result<(), rill_client::ClientError> {
    /// let consumer = Consumer::new(ClientConfig::new(["127.0.0.1:9092"]))?;
    /// let tuned = Consumer::new(ConsumerConfig::new(ClientConfig::new(["127.0.0.1:9092"])))?;
    /// # drop((consumer, tuned));
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(config: impl Into<ConsumerConfig>) -> Result<Self> {
        let config = config.into();
        let cluster = Arc::new(Cluster::new(config.client.clone()));
        Self::with_cluster(config, cluster)
    }

    /// A consumer sharing `cluster`'s metadata and connections (`config.client` is ignored:
    /// the cluster's own configuration applies).
    ///
    /// ```no_run
    /// use std::sync::Arc;
    /// use rill_client::{ClientConfig, Cluster, Consumer};
    /// # fn _demo() -> Result<(), rill_client::ClientError> {
    /// let client = ClientConfig::new(["127.0.0.1:9092"]);
    /// let cluster = Arc::new(Cluster::new(client.clone()));
    /// let consumer = Consumer::with_cluster(client, cluster)?;
    /// # drop(consumer);
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_cluster(config: impl Into<ConsumerConfig>, cluster: Arc<Cluster>) -> Result<Self> {
        let config = config.into();
        config.validate(cluster.config())?;
        Ok(Self {
            cluster,
            config: Arc::new(config),
        })
    }

    /// The cluster this consumer reads from.
    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// The partitions of `topic`, in order (sarama's `Partitions`).
    ///
    /// ```no_run
    /// # async fn _demo(consumer: &rill_client::Consumer) -> Result<(), rill_client::ClientError> {
    /// let partitions = consumer.partitions("test0").await?;
    /// println!("{partitions:?}");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn partitions(&self, topic: &str) -> Result<Vec<i32>> {
        let meta = self.cluster.topic_metadata(topic).await?;
        Ok(meta.partitions.iter().map(|p| p.partition).collect())
    }

    /// The offset `offset` stands for right now: [`Offset::At`] as it is, the others asked of
    /// the partition's leader with `ListOffsets` at the consumer's isolation level (so
    /// [`Offset::Newest`] is the last stable offset under read_committed), retried while the
    /// error is retriable, up to the request timeout.
    ///
    /// ```no_run
    /// # async fn _demo(consumer: &rill_client::Consumer) -> Result<(), rill_client::ClientError> {
    /// use rill_client::Offset;
    /// let end = consumer.resolve_offset("events", 0, Offset::Newest).await?;
    /// println!("the next record of partition 0 gets offset {end}");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn resolve_offset(&self, topic: &str, partition: i32, offset: Offset) -> Result<i64> {
        let deadline = Instant::now() + self.cluster.config().connection.request_timeout;
        let mut failures = 0;
        loop {
            let isolation = self.config.isolation_level;
            match resolve(&self.cluster, topic, partition, offset, isolation).await {
                Err(err) if err.is_retriable() && Instant::now() < deadline => {
                    if err.invalidates_metadata() {
                        self.cluster.invalidate();
                    }
                    tokio::time::sleep(backoff(&self.config, failures)).await;
                    failures += 1;
                }
                result => return result,
            }
        }
    }

    /// Starts reading `topic`/`partition` at `offset` (sarama's `ConsumePartition`). Fails if
    /// the topic has no such partition or the start offset cannot be found; every later
    /// problem arrives through [`PartitionConsumer::next`].
    ///
    /// ```no_run
    /// # async fn _demo(consumer: &rill_client::Consumer) -> Result<(), rill_client::ClientError> {
    /// use rill_client::Offset;
    /// let mut pc = consumer.consume_partition("events", 0, Offset::Newest).await?;
    /// while let Some(record) = pc.next().await {
    ///     let record = record?;
    ///     println!("offset {}", record.offset);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn consume_partition(
        &self,
        topic: &str,
        partition: i32,
        offset: Offset,
    ) -> Result<PartitionConsumer> {
        let meta = self.cluster.topic_metadata(topic).await?;
        if !meta.partitions.iter().any(|p| p.partition == partition) {
            return Err(ClientError::InvalidPartition {
                topic: topic.to_owned(),
                partition: Some(partition),
                partitions: meta.partition_count(),
            });
        }
        let start = self.resolve_offset(topic, partition, offset).await?;
        Ok(PartitionConsumer::start(
            Arc::clone(&self.cluster),
            Arc::clone(&self.config),
            topic,
            partition,
            start,
        ))
    }
}

/// One partition's records, in offset order, fetched ahead by a background task (sarama's
/// `PartitionConsumer`).
///
/// [`next`](Self::next) yields each record, or an error that ended the consumer (an offset
/// out of range, a corrupt batch, an error the broker will keep giving); after an error it
/// yields `None`. Retriable errors (leader changes, broken connections, a broker restart) are
/// retried inside and never show up here. Dropping it, or [`close`](Self::close), stops the
/// task.
///
/// ```no_run
/// use rill_client::{ClientConfig, Consumer, Offset};
///
/// # async fn _demo() -> Result<(), rill_client::ClientError> {
/// let consumer = Consumer::new(ClientConfig::new(["127.0.0.1:9092"]))?;
/// let mut pc = consumer.consume_partition("events", 0, Offset::Oldest).await?;
/// while let Some(record) = pc.next().await {
///     let record = record?;
///     println!("offset {} of {}", record.offset, pc.high_watermark());
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct PartitionConsumer {
    topic: Arc<str>,
    partition: i32,
    chunks: mpsc::Receiver<Result<Fetched>>,
    buffered: std::vec::IntoIter<ConsumerRecord>,
    /// The `next_offset` of the last [`Fetched`] taken from `chunks`.
    fetched_to: i64,
    high_watermark: Arc<AtomicI64>,
    task: JoinHandle<()>,
}

/// What the fetcher hands over after a Fetch: the records (none when it only skipped control
/// batches or aborted records) and the offset after everything it read.
#[derive(Debug)]
struct Fetched {
    records: Vec<ConsumerRecord>,
    next_offset: i64,
}

impl PartitionConsumer {
    fn start(
        cluster: Arc<Cluster>,
        config: Arc<ConsumerConfig>,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Self {
        let topic: Arc<str> = Arc::from(topic);
        // One decoded fetch waits here while the next is in flight: the fetch-ahead.
        let (tx, chunks) = mpsc::channel(1);
        let high_watermark = Arc::new(AtomicI64::new(-1));
        let task = tokio::spawn(
            fetcher::Fetcher::new(
                cluster,
                config,
                Arc::clone(&topic),
                partition,
                offset,
                Arc::clone(&high_watermark),
                tx,
            )
            .run(),
        );
        Self {
            topic,
            partition,
            chunks,
            buffered: Vec::new().into_iter(),
            fetched_to: offset,
            high_watermark,
            task,
        }
    }

    /// Takes the next fetch's records into the buffer: `Some(Err)` for an error that ended
    /// the consumer, `None` once it has ended. Cancel-safe: nothing is taken unless the
    /// receive completed.
    async fn receive(&mut self) -> Option<Result<()>> {
        match self.chunks.recv().await? {
            Ok(fetched) => {
                self.fetched_to = fetched.next_offset;
                self.buffered = fetched.records.into_iter();
                Some(Ok(()))
            }
            Err(err) => Some(Err(err)),
        }
    }

    /// The next record; an error that ended the consumer; or `None` once it has ended.
    /// Waits while the partition has nothing new.
    ///
    /// Cancel-safe: dropping the future (in a `select!`) loses no record.
    ///
    /// ```no_run
    /// # async fn _demo(pc: &mut rill_client::PartitionConsumer) {
    /// while let Some(record) = pc.next().await {
    ///     match record {
    ///         Ok(record) => println!("{}: {:?}", record.offset, record.value),
    ///         Err(err) => eprintln!("consumer stopped: {err}"),
    ///     }
    /// }
    /// # }
    /// ```
    pub async fn next(&mut self) -> Option<Result<ConsumerRecord>> {
        loop {
            if let Some(record) = self.buffered.next() {
                return Some(Ok(record));
            }
            if let Err(err) = self.receive().await? {
                return Some(Err(err));
            }
        }
    }

    /// The next record below offset `end`; an error that ended the consumer; or `None` once
    /// the [`position`](Self::position) has reached `end` (or the consumer has ended). Unlike
    /// waiting for the record at `end - 1`, this also ends when the last offsets below `end`
    /// hold no record to return: a transaction marker, or records of an aborted transaction
    /// under read_committed. Records at and after `end` stay for [`next`](Self::next).
    ///
    /// Cancel-safe: dropping the future (in a `select!`) loses no record.
    ///
    /// ```no_run
    /// # async fn _demo(consumer: &rill_client::Consumer) -> Result<(), rill_client::ClientError> {
    /// use rill_client::Offset;
    /// // Everything in partition 0 now, then stop.
    /// let end = consumer.resolve_offset("events", 0, Offset::Newest).await?;
    /// let mut pc = consumer.consume_partition("events", 0, Offset::Oldest).await?;
    /// while let Some(record) = pc.next_before(end).await {
    ///     println!("offset {}", record?.offset);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn next_before(&mut self, end: i64) -> Option<Result<ConsumerRecord>> {
        loop {
            if self.position() >= end {
                return None;
            }
            if let Some(record) = self.buffered.next() {
                return Some(Ok(record));
            }
            if let Err(err) = self.receive().await? {
                return Some(Err(err));
            }
        }
    }

    /// The offset of the next record [`next`](Self::next) can return: one past the last
    /// record returned, or further once the consumer has read past what holds no record for
    /// it (transaction markers, and aborted records under read_committed). Kafka's
    /// `position`: the offset to commit to resume after what was read.
    ///
    /// ```no_run
    /// # fn _demo(pc: &rill_client::PartitionConsumer) {
    /// println!("next offset {}", pc.position());
    /// # }
    /// ```
    pub fn position(&self) -> i64 {
        self.buffered
            .as_slice()
            .first()
            .map_or(self.fetched_to, |record| record.offset)
    }

    /// The records of one Fetch answer not yet returned, all at once (at least one); an error
    /// that ended the consumer; or `None` once it has ended. Waits while the partition has
    /// nothing new. Mixes freely with [`next`](Self::next): together they yield every record
    /// once, in offset order.
    ///
    /// For callers that work per fetch rather than per record (a benchmark reads the clock
    /// once per chunk: its records became available at the same instant).
    ///
    /// Cancel-safe: dropping the future (in a `select!`) loses no record.
    ///
    /// ```no_run
    /// # async fn _demo(pc: &mut rill_client::PartitionConsumer) -> Result<(), rill_client::ClientError> {
    /// while let Some(chunk) = pc.next_chunk().await {
    ///     let chunk = chunk?;
    ///     println!("{} records up to offset {:?}", chunk.len(), chunk.last().map(|r| r.offset));
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn next_chunk(&mut self) -> Option<Result<Vec<ConsumerRecord>>> {
        if self.buffered.len() > 0 {
            // Collecting a vector's own iterator reuses its allocation.
            return Some(Ok(std::mem::take(&mut self.buffered).collect()));
        }
        loop {
            if let Err(err) = self.receive().await? {
                return Some(Err(err));
            }
            if self.buffered.len() > 0 {
                return Some(Ok(std::mem::take(&mut self.buffered).collect()));
            }
        }
    }

    /// The partition's high watermark in the last Fetch answer (the offset the next record
    /// produced will get; sarama's `HighWaterMarkOffset`), or `-1` before the first answer.
    /// `high_watermark() - 1 - record.offset` is how far the consumer lags.
    ///
    /// ```no_run
    /// # fn _demo(pc: &rill_client::PartitionConsumer) {
    /// println!("high watermark {}", pc.high_watermark());
    /// # }
    /// ```
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.load(Ordering::Relaxed)
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The partition.
    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// Stops the background task and waits until it has (sarama's `Close`). Records already
    /// fetched but not yet returned are dropped. Dropping the consumer also stops the task,
    /// without waiting.
    ///
    /// ```no_run
    /// # async fn _demo(pc: rill_client::PartitionConsumer) {
    /// pc.close().await;
    /// # }
    /// ```
    pub async fn close(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

impl Drop for PartitionConsumer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The wait before retry number `failures + 1`.
fn backoff(config: &ConsumerConfig, failures: u32) -> Duration {
    config
        .retry_backoff
        .saturating_mul(1 << failures.min(16))
        .min(config.retry_backoff_max)
}

/// One attempt at [`Consumer::resolve_offset`].
async fn resolve(
    cluster: &Cluster,
    topic: &str,
    partition: i32,
    offset: Offset,
    isolation: IsolationLevel,
) -> Result<i64> {
    let list = |timestamp| list_offset(cluster, topic, partition, timestamp, isolation);
    match offset {
        Offset::At(at) if at < 0 => Err(ClientError::Config(format!(
            "offset {at} is negative; use Offset::Oldest or Offset::Newest"
        ))),
        Offset::At(at) => Ok(at),
        Offset::Oldest => list(EARLIEST_TIMESTAMP).await,
        Offset::Newest => list(LATEST_TIMESTAMP).await,
        Offset::Timestamp(t) if t < 0 => Err(ClientError::Config(format!(
            "timestamp {t} is negative; use Offset::Oldest or Offset::Newest"
        ))),
        Offset::Timestamp(t) => match list(t).await? {
            // No record at or after `t` yet: the next one produced will be the first.
            -1 => list(LATEST_TIMESTAMP).await,
            found => Ok(found),
        },
    }
}

/// Asks the leader of `topic`/`partition` for the offset of `timestamp` (or of the
/// earliest/latest marker) at `isolation` (latest is the last stable offset under
/// read_committed).
async fn list_offset(
    cluster: &Cluster,
    topic: &str,
    partition: i32,
    timestamp: i64,
    isolation: IsolationLevel,
) -> Result<i64> {
    let (_, conn) = cluster.leader_connection(topic, partition).await?;
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(isolation.value())
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                .with_partitions(vec![
                    ListOffsetsPartition::default()
                        .with_partition_index(partition)
                        .with_timestamp(timestamp),
                ]),
        ]);
    let response = conn.request(request).await?;
    let answer = response
        .topics
        .iter()
        .filter(|t| t.name.0.as_str() == topic)
        .flat_map(|t| &t.partitions)
        .find(|p| p.partition_index == partition)
        .ok_or_else(|| ClientError::UnexpectedResponse {
            addr: conn.addr().to_owned(),
            api_key: rill_protocol::ApiKey::ListOffsets,
        })?;
    ClientError::check(answer.error_code, || {
        format!("list offsets of topic '{topic}' partition {partition}")
    })?;
    Ok(answer.offset)
}

/// The reset target for `policy`, or the out-of-range error itself.
fn reset_target(policy: OffsetReset, context: impl FnOnce() -> String) -> Result<Offset> {
    match policy {
        OffsetReset::Earliest => Ok(Offset::Oldest),
        OffsetReset::Latest => Ok(Offset::Newest),
        OffsetReset::Error => Err(ClientError::Kafka {
            code: ErrorCode::OffsetOutOfRange,
            context: context(),
        }),
    }
}
