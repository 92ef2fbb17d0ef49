//! Producers: [`Producer`] (sarama's SyncProducer shape) and [`AsyncProducer`] (its
//! AsyncProducer shape), one batching core underneath.
//!
//! Records go to a background task that owns the per-partition accumulator (no locks: other
//! tasks talk to it over channels). It partitions each record, fills batches up to
//! `batch_size`, sends a batch once `linger` has passed (or it is full, or on `flush`), with
//! at most `max_in_flight` produce requests per broker connection, and retries retriable
//! failures after `retry_backoff` until `delivery_timeout`.
//!
//! **Every record ends in exactly one outcome**, a success with its offset or an error: none is
//! dropped, not by a retry, a timeout, a dead broker, [`Producer::flush`] or
//! [`Producer::close`].
//!
//! # Ordering
//! Within a partition, records are delivered in the order they were sent as long as nothing is
//! retried. With retries and `max_in_flight > 1`, a failed batch can be retried after a later
//! one succeeded, so records can reorder, unless idempotence is on: then every batch carries a
//! producer id and sequence number, the broker refuses gaps and recognises repeats, and the
//! producer retries in sequence order, so order is kept and nothing is written twice with
//! `max_in_flight` up to 5 (Kafka's limit for idempotence). `enable_idempotence` is on by
//! default, as in Kafka's Java client.
//!
//! # Transactions
//! With a [`ProducerConfig::transactional_id`], records are sent in transactions (KIP-98, the
//! Java client's API): [`Producer::init_transactions`] once, then for each transaction
//! [`Producer::begin_transaction`], sends, optionally
//! [`Producer::send_offsets_to_transaction`] (a consumer group's offsets, committed with
//! the records), and [`Producer::commit_transaction`] or [`Producer::abort_transaction`].
//! Consumers reading `read_committed` see a transaction's records only once it commits, and
//! never those of an aborted one.
//!
//! - The transaction coordinator is found with FindCoordinator (key type 1); InitProducerId
//!   gives the producer id and a new epoch, which fences every older instance with the same
//!   transactional id.
//! - Each partition is added to the transaction (AddPartitionsToTxn) before its first batch
//!   goes out; batches are marked transactional and carry sequence numbers as with
//!   idempotence.
//! - `commit_transaction` sends every record first (without waiting for `linger`) and
//!   fails, leaving the transaction to abort, if any record of it failed;
//!   `abort_transaction` drops the records not sent yet (each fails), waits for those in
//!   flight and aborts.
//! - Retriable answers (CONCURRENT_TRANSACTIONS, COORDINATOR_LOAD_IN_PROGRESS,
//!   NOT_COORDINATOR: the coordinator is found again) are retried for up to
//!   `delivery_timeout`. A fencing or authorization error (PRODUCER_FENCED,
//!   INVALID_PRODUCER_EPOCH, TRANSACTIONAL_ID_AUTHORIZATION_FAILED) is fatal
//!   ([`ClientError::is_fatal`]): every later call fails with it; close the producer.
//!
//! ```no_run
//! use rill_client::{ClientConfig, Producer, ProducerConfig, ProducerRecord};
//!
//! # async fn _demo() -> Result<(), rill_client::ClientError> {
//! let mut config = ProducerConfig::new(ClientConfig::new(["127.0.0.1:9092"]));
//! config.transactional_id = Some("billing-1".to_owned());
//! let producer = Producer::new(config)?;
//! producer.init_transactions().await?;
//! producer.begin_transaction().await?;
//! producer.send(ProducerRecord::new("invoices").value("a")).await?;
//! producer.send(ProducerRecord::new("ledger").value("b")).await?;
//! producer.commit_transaction().await?;
//! producer.close().await;
//! # Ok(())
//! # }
//! ```

use std::time::Duration;

use bytes::Bytes;
use rill_record::{Compression, Header, RecordSpec};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::cluster::{ClientConfig, Cluster};
use crate::error::{ClientError, Result};
use crate::group::GroupMetadata;

mod accumulator;
mod async_producer;
mod partitioner;
mod sender;
mod transaction;

pub use async_producer::{AsyncProducer, Delivered};
pub use partitioner::{Partitioner, murmur2, partition_for_key};

/// Default [`ProducerConfig::linger`]: 5 ms, librdkafka's `linger.ms` (the Java client has
/// used 5 ms since Kafka 4.0 too): a little latency buys much larger batches.
pub const DEFAULT_LINGER: Duration = Duration::from_millis(5);
/// Default [`ProducerConfig::batch_size`]: 16 KiB, Kafka's `batch.size`.
pub const DEFAULT_BATCH_SIZE: usize = 16 * 1024;
/// Default [`ProducerConfig::max_request_size`]: 1 MiB, Kafka's `max.request.size`.
pub const DEFAULT_MAX_REQUEST_SIZE: usize = 1024 * 1024;
/// Default [`ProducerConfig::delivery_timeout`]: 120 s, Kafka's `delivery.timeout.ms`.
pub const DEFAULT_DELIVERY_TIMEOUT: Duration = Duration::from_secs(120);
/// Default [`ProducerConfig::retry_backoff`]: 100 ms, Kafka's `retry.backoff.ms`.
pub const DEFAULT_RETRY_BACKOFF: Duration = Duration::from_millis(100);
/// Default [`ProducerConfig::max_in_flight`]: 5, Kafka's
/// `max.in.flight.requests.per.connection`.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 5;
/// Default [`ProducerConfig::channel_buffer`]: 256, sarama's `ChannelBufferSize`.
pub const DEFAULT_CHANNEL_BUFFER: usize = 256;
/// Default [`ProducerConfig::buffer_memory`]: 32 MiB, Kafka's `buffer.memory`.
pub const DEFAULT_BUFFER_MEMORY: usize = 32 * 1024 * 1024;
/// Default [`ProducerConfig::transaction_timeout`]: 60 s, Kafka's `transaction.timeout.ms`.
pub const DEFAULT_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(60);

/// Which acknowledgement the producer waits for (Kafka's `acks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Acks {
    /// No answer at all (`acks=0`): fastest, and a lost record goes unnoticed; the offset
    /// reported is `-1`. Not allowed with idempotence.
    None,
    /// The leader has written the batch (`acks=1`).
    Leader,
    /// Every in-sync replica has it (`acks=all`, `-1`); on Rill, after the fsync. The default.
    #[default]
    All,
}

impl Acks {
    /// The wire value: 0, 1 or -1.
    pub fn value(self) -> i16 {
        match self {
            Self::None => 0,
            Self::Leader => 1,
            Self::All => -1,
        }
    }
}

/// Producer settings. Every field documents its default and what changing it risks.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ProducerConfig {
    /// How to reach the cluster.
    pub client: ClientConfig,
    /// How long a batch waits for more records before it is sent (default [`DEFAULT_LINGER`]).
    /// Zero sends at once: lower latency, smaller batches, more requests.
    pub linger: Duration,
    /// Records per partition are batched up to this many bytes (default
    /// [`DEFAULT_BATCH_SIZE`]); a larger record gets a batch of its own.
    pub batch_size: usize,
    /// Largest produce request, and so largest record (default [`DEFAULT_MAX_REQUEST_SIZE`]);
    /// a larger record fails with [`ClientError::RecordTooLarge`] without being sent.
    pub max_request_size: usize,
    /// Codec for batches (default none). All four of Kafka's are supported.
    pub compression: Compression,
    /// What the broker must do before it answers (default [`Acks::All`]).
    pub acks: Acks,
    /// Sends per batch after the first (default unlimited: `delivery_timeout` bounds retries).
    pub retries: u32,
    /// Wait before retrying a failed batch (default [`DEFAULT_RETRY_BACKOFF`]).
    pub retry_backoff: Duration,
    /// Upper bound on the time from `send` to the outcome, retries included (default
    /// [`DEFAULT_DELIVERY_TIMEOUT`]). A record still undelivered then fails with
    /// [`ClientError::Timeout`].
    pub delivery_timeout: Duration,
    /// Produce requests in flight per broker connection (default [`DEFAULT_MAX_IN_FLIGHT`]).
    /// Above 1 without idempotence, a retry can reorder records; with idempotence it must be
    /// at most 5.
    pub max_in_flight: usize,
    /// Producer ids and sequence numbers so that retries write nothing twice and keep order
    /// (default `true`, as in Kafka's Java client). Requires `acks` = [`Acks::All`] and
    /// `max_in_flight` ≤ 5.
    pub enable_idempotence: bool,
    /// How partitions are chosen (default [`Partitioner::Default`]).
    pub partitioner: Partitioner,
    /// Capacity of the input queue and, for [`AsyncProducer`], of the successes and errors
    /// channels (default [`DEFAULT_CHANNEL_BUFFER`]).
    pub channel_buffer: usize,
    /// Most bytes of records the producer holds, batched or in flight, before it stops taking
    /// more (Kafka's `buffer.memory`; default [`DEFAULT_BUFFER_MEMORY`]). Then `send` waits
    /// for room, so a caller faster than the brokers is slowed down instead of growing memory
    /// and latency without bound.
    pub buffer_memory: usize,
    /// Makes the producer transactional (Kafka's `transactional.id`, default `None`): records
    /// are sent inside transactions (see the [module docs](self#transactions)), and a new
    /// producer with the same id fences this one. Requires `enable_idempotence`.
    pub transactional_id: Option<String>,
    /// How long the transaction coordinator lets a transaction stay open before it aborts it
    /// (Kafka's `transaction.timeout.ms`, default [`DEFAULT_TRANSACTION_TIMEOUT`]); the broker
    /// refuses more than its `transaction.max.timeout.ms`. Longer lets a stuck producer hold
    /// read_committed consumers back for longer.
    pub transaction_timeout: Duration,
}

impl ProducerConfig {
    /// The defaults above for this cluster.
    ///
    /// ```no_run
    /// use rill_client::{ClientConfig, Compression, ProducerConfig};
    /// let mut config = ProducerConfig::new(ClientConfig::new(["127.0.0.1:9092"]));
    /// config.compression = Compression::Zstd;
    /// # drop(config);
    /// ```
    pub fn new(client: ClientConfig) -> Self {
        Self {
            client,
            linger: DEFAULT_LINGER,
            batch_size: DEFAULT_BATCH_SIZE,
            max_request_size: DEFAULT_MAX_REQUEST_SIZE,
            compression: Compression::None,
            acks: Acks::All,
            retries: u32::MAX,
            retry_backoff: DEFAULT_RETRY_BACKOFF,
            delivery_timeout: DEFAULT_DELIVERY_TIMEOUT,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            enable_idempotence: true,
            partitioner: Partitioner::Default,
            channel_buffer: DEFAULT_CHANNEL_BUFFER,
            buffer_memory: DEFAULT_BUFFER_MEMORY,
            transactional_id: None,
            transaction_timeout: DEFAULT_TRANSACTION_TIMEOUT,
        }
    }

    fn validate(&self) -> Result<()> {
        if self.enable_idempotence && self.acks != Acks::All {
            return Err(ClientError::Config(
                "enable_idempotence requires acks = all".to_owned(),
            ));
        }
        if self.enable_idempotence && self.max_in_flight > 5 {
            return Err(ClientError::Config(
                "enable_idempotence requires max_in_flight <= 5".to_owned(),
            ));
        }
        if let Some(id) = &self.transactional_id {
            if id.is_empty() {
                return Err(ClientError::Config(
                    "transactional_id must not be empty".to_owned(),
                ));
            }
            if !self.enable_idempotence {
                return Err(ClientError::Config(
                    "transactional_id requires enable_idempotence".to_owned(),
                ));
            }
            if self.transaction_timeout.is_zero() {
                return Err(ClientError::Config(
                    "transaction_timeout must be above zero".to_owned(),
                ));
            }
        }
        if self.max_in_flight == 0 || self.channel_buffer == 0 || self.buffer_memory == 0 {
            return Err(ClientError::Config(
                "max_in_flight, channel_buffer and buffer_memory must be at least 1".to_owned(),
            ));
        }
        Ok(())
    }
}

/// A record to send.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProducerRecord {
    /// The topic.
    pub topic: String,
    /// The partition; `None` lets the [`Partitioner`] choose.
    pub partition: Option<i32>,
    /// The key; `None` is null.
    pub key: Option<Bytes>,
    /// The value; `None` is null (a tombstone).
    pub value: Option<Bytes>,
    /// Headers, in order.
    pub headers: Vec<Header>,
    /// Milliseconds since the epoch; `None` is the time of `send`.
    pub timestamp: Option<i64>,
    /// A value of the caller's, never sent: it comes back untouched with the record's
    /// outcome ([`Delivered::record`], [`ProducerError::record`]), as sarama's
    /// `ProducerMessage.Metadata` and librdkafka's per-message opaque do. Default 0. For
    /// example a send instant, to time each record's acknowledgement, or an index into the
    /// caller's own table.
    pub tag: u64,
}

impl ProducerRecord {
    /// A record for `topic` with null key and value, no headers, no partition or timestamp.
    ///
    /// ```no_run
    /// use rill_client::ProducerRecord;
    /// let record = ProducerRecord::new("events").key("k").value("v").header("h", "1");
    /// # drop(record);
    /// ```
    pub fn new(topic: impl Into<String>) -> Self {
        Self {
            topic: topic.into(),
            partition: None,
            key: None,
            value: None,
            headers: Vec::new(),
            timestamp: None,
            tag: 0,
        }
    }

    /// Sets the key.
    #[must_use]
    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sets the value.
    #[must_use]
    pub fn value(mut self, value: impl Into<Bytes>) -> Self {
        self.value = Some(value.into());
        self
    }

    /// Names the partition.
    #[must_use]
    pub fn partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Sets the timestamp (milliseconds since the epoch).
    #[must_use]
    pub fn timestamp(mut self, timestamp: i64) -> Self {
        self.timestamp = Some(timestamp);
        self
    }

    /// Sets the [`tag`](Self::tag): carried to the record's outcome, never sent.
    ///
    /// ```no_run
    /// use rill_client::ProducerRecord;
    /// let record = ProducerRecord::new("events").value("v").tag(42);
    /// assert_eq!(record.tag, 42);
    /// ```
    #[must_use]
    pub fn tag(mut self, tag: u64) -> Self {
        self.tag = tag;
        self
    }

    /// Appends a header.
    #[must_use]
    pub fn header(mut self, key: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        self.headers.push(Header::new(key, Some(value.into())));
        self
    }

    /// Estimated encoded size in a batch (the varint framing rounded up).
    fn estimated_size(&self) -> usize {
        let field = |b: Option<&Bytes>| 5 + b.map_or(0, Bytes::len);
        21 + field(self.key.as_ref())
            + field(self.value.as_ref())
            + self
                .headers
                .iter()
                .map(|h| 5 + h.key.len() + field(h.value.as_ref()))
                .sum::<usize>()
    }

    fn spec(&self, timestamp: i64) -> RecordSpec {
        RecordSpec {
            timestamp,
            key: self.key.clone(),
            value: self.value.clone(),
            headers: self.headers.clone(),
        }
    }
}

/// Where a record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordMetadata {
    /// The partition.
    pub partition: i32,
    /// Its offset (`-1` with [`Acks::None`]).
    pub offset: i64,
    /// Its timestamp: the producer's (CreateTime), or the broker's append time when the topic
    /// uses LogAppendTime.
    pub timestamp: i64,
}

/// A record that failed, with why; what [`AsyncProducer::errors`] yields.
#[derive(Debug, Clone, thiserror::Error)]
#[error("record for topic '{}' failed", record.topic)]
#[non_exhaustive]
pub struct ProducerError {
    /// The record, as it was sent.
    pub record: ProducerRecord,
    /// Why it failed.
    #[source]
    pub error: ClientError,
}

/// Where a record's outcome goes.
#[derive(Debug)]
pub(crate) enum Reply {
    Sync(oneshot::Sender<Result<RecordMetadata>>),
    Async {
        successes: mpsc::Sender<Delivered>,
        errors: mpsc::Sender<ProducerError>,
    },
}

/// A record inside the producer, with where its outcome goes.
#[derive(Debug)]
pub(crate) struct Pending {
    /// Order of arrival, for `flush`.
    pub(crate) id: u64,
    pub(crate) record: ProducerRecord,
    pub(crate) reply: Reply,
    pub(crate) enqueued: Instant,
    /// The record's timestamp, or the time it was handed over.
    pub(crate) timestamp: i64,
    pub(crate) size: usize,
}

impl Pending {
    /// Delivers the outcome. For the async producer this waits for room in the channel,
    /// which is why its caller must drain both channels.
    pub(crate) async fn complete(self, outcome: Result<RecordMetadata>) {
        match (self.reply, outcome) {
            (Reply::Sync(tx), outcome) => {
                let _ = tx.send(outcome);
            }
            (Reply::Async { successes, .. }, Ok(metadata)) => {
                let _ = successes
                    .send(Delivered {
                        record: self.record,
                        metadata,
                    })
                    .await;
            }
            (Reply::Async { errors, .. }, Err(error)) => {
                let _ = errors
                    .send(ProducerError {
                        record: self.record,
                        error,
                    })
                    .await;
            }
        }
    }
}

/// The sync producer: `send(record).await` returns where the record landed (sarama's
/// SyncProducer). Records sent concurrently from many tasks are batched together.
///
/// ```no_run
/// use rill_client::{ClientConfig, Producer, ProducerConfig, ProducerRecord};
///
/// # async fn _demo() -> Result<(), rill_client::ClientError> {
/// let producer = Producer::new(ProducerConfig::new(ClientConfig::new(["127.0.0.1:9092"])))?;
/// let meta = producer.send(ProducerRecord::new("events").value("hello")).await?;
/// println!("partition {} offset {}", meta.partition, meta.offset);
/// producer.close().await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Producer {
    handle: sender::Handle,
}

impl Producer {
    /// Starts a producer (and its background task) on a new [`Cluster`]. Must be called
    /// within a tokio runtime.
    ///
    /// ```no_run
    /// # use rill_client::{ClientConfig, Producer, ProducerConfig};
    /// # async fn _demo() -> Result<(), rill_client::ClientError> {
    /// let producer = Producer::new(ProducerConfig::new(ClientConfig::new(["127.0.0.1:9092"])))?;
    /// # drop(producer);
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(config: ProducerConfig) -> Result<Self> {
        let cluster = std::sync::Arc::new(Cluster::new(config.client.clone()));
        Self::with_cluster(config, cluster)
    }

    /// Starts a producer sharing `cluster`'s connections and metadata (`config.client` is
    /// ignored).
    ///
    /// ```no_run
    /// # use std::sync::Arc;
    /// # use rill_client::{ClientConfig, Cluster, Producer, ProducerConfig};
    /// # async fn _demo() -> Result<(), rill_client::ClientError> {
    /// let client = ClientConfig::new(["127.0.0.1:9092"]);
    /// let cluster = Arc::new(Cluster::new(client.clone()));
    /// let producer = Producer::with_cluster(ProducerConfig::new(client), cluster)?;
    /// # drop(producer);
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_cluster(config: ProducerConfig, cluster: std::sync::Arc<Cluster>) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            handle: sender::Handle::start(config, cluster),
        })
    }

    /// Sends one record and waits for its outcome: where it landed, or why it failed (after
    /// retries, within `delivery_timeout`).
    ///
    /// ```no_run
    /// # async fn _demo(producer: &rill_client::Producer) -> Result<(), rill_client::ClientError> {
    /// use rill_client::ProducerRecord;
    /// let meta = producer.send(ProducerRecord::new("events").key("k").value("v")).await?;
    /// println!("offset {}", meta.offset);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn send(&self, record: ProducerRecord) -> Result<RecordMetadata> {
        let (tx, rx) = oneshot::channel();
        self.handle.enqueue(record, Reply::Sync(tx)).await?;
        rx.await
            .unwrap_or_else(|_dropped| Err(ClientError::Closed("producer")))
    }

    /// Sends every record handed over so far without waiting for `linger`, and returns once
    /// each has its outcome.
    ///
    /// ```no_run
    /// # async fn _demo(producer: &rill_client::Producer) {
    /// producer.flush().await;
    /// # }
    /// ```
    pub async fn flush(&self) {
        self.handle.flush().await;
    }

    /// Flushes, then stops the background task. Records sent afterwards fail with
    /// [`ClientError::Closed`]. Other clones of this producer are closed too.
    ///
    /// ```no_run
    /// # async fn _demo(producer: rill_client::Producer) {
    /// producer.close().await;
    /// # }
    /// ```
    pub async fn close(&self) {
        self.handle.close().await;
    }

    /// The cluster this producer talks to.
    pub fn cluster(&self) -> &std::sync::Arc<Cluster> {
        self.handle.cluster()
    }

    /// Registers the [`transactional_id`](ProducerConfig::transactional_id) with its
    /// transaction coordinator (Kafka's `initTransactions`): gets the producer id and a new
    /// epoch, fencing every older producer with the same id, and waits until a transaction
    /// such a producer left open is aborted. Call it once, before the first transaction.
    /// Fails with [`ClientError::Config`] on a producer without a transactional id.
    ///
    /// ```no_run
    /// # async fn _demo(producer: &rill_client::Producer) -> Result<(), rill_client::ClientError> {
    /// producer.init_transactions().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn init_transactions(&self) -> Result<()> {
        self.handle.transaction(transaction::Request::Init).await
    }

    /// Opens a transaction: the records sent until
    /// [`commit_transaction`](Self::commit_transaction) or
    /// [`abort_transaction`](Self::abort_transaction) belong to it. A record sent outside a
    /// transaction fails with [`ClientError::Transaction`].
    ///
    /// ```no_run
    /// # async fn _demo(producer: &rill_client::Producer) -> Result<(), rill_client::ClientError> {
    /// producer.begin_transaction().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn begin_transaction(&self) -> Result<()> {
        self.handle.transaction(transaction::Request::Begin).await
    }

    /// Commits `offsets` (`(topic, partition, next offset to read)`) for a consumer group as
    /// part of the open transaction (Kafka's `sendOffsetsToTransaction`): AddOffsetsToTxn to
    /// the transaction coordinator, then TxnOffsetCommit to the group's coordinator. They
    /// become the group's committed offsets when the transaction commits, and never if it
    /// aborts: consume-transform-produce with each input record counted exactly once. Pass
    /// [`GroupConsumer::group_metadata`](crate::GroupConsumer::group_metadata), or just the
    /// group id.
    ///
    /// ```no_run
    /// # async fn _demo(producer: &rill_client::Producer) -> Result<(), rill_client::ClientError> {
    /// producer.send_offsets_to_transaction(&[("input", 0, 42)], "copier").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn send_offsets_to_transaction<S: AsRef<str>>(
        &self,
        offsets: &[(S, i32, i64)],
        group: impl Into<GroupMetadata>,
    ) -> Result<()> {
        let request = transaction::Request::SendOffsets {
            offsets: offsets
                .iter()
                .map(|(t, p, o)| (t.as_ref().to_owned(), *p, *o))
                .collect(),
            group: group.into(),
        };
        self.handle.transaction(request).await
    }

    /// Sends every record of the transaction (not waiting for `linger`), then commits it:
    /// read_committed consumers see its records, and the offsets sent with it become the
    /// group's. If a record of it failed, nothing is committed and the error says why: abort
    /// the transaction then (or close the producer if the error
    /// [`is_fatal`](ClientError::is_fatal)).
    ///
    /// ```no_run
    /// # async fn _demo(producer: &rill_client::Producer) -> Result<(), rill_client::ClientError> {
    /// if let Err(err) = producer.commit_transaction().await {
    ///     eprintln!("not committed: {err}");
    ///     producer.abort_transaction().await?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn commit_transaction(&self) -> Result<()> {
        self.handle.transaction(transaction::Request::Commit).await
    }

    /// Aborts the transaction: records not sent yet fail (with [`ClientError::Transaction`]),
    /// those in flight are waited for, and read_committed consumers never see any of its
    /// records; its offsets are not committed.
    ///
    /// ```no_run
    /// # async fn _demo(producer: &rill_client::Producer) -> Result<(), rill_client::ClientError> {
    /// producer.abort_transaction().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn abort_transaction(&self) -> Result<()> {
        self.handle.transaction(transaction::Request::Abort).await
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
