//! [`AsyncProducer`]: sarama's AsyncProducer shape on the same core as [`Producer`](super::Producer).

use std::sync::Arc;

use tokio::sync::{Mutex, mpsc};

use super::transaction::Request;
use super::{ProducerConfig, ProducerError, ProducerRecord, RecordMetadata, Reply, sender};
use crate::cluster::Cluster;
use crate::error::{ClientError, Result};
use crate::group::GroupMetadata;

/// A delivered record and where it landed; what [`AsyncProducer::successes`] yields.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Delivered {
    /// The record, as it was sent.
    pub record: ProducerRecord,
    /// Where it landed.
    pub metadata: RecordMetadata,
}

/// The async producer: hand records in with [`AsyncProducer::send`], take outcomes from
/// [`AsyncProducer::successes`] and [`AsyncProducer::errors`] (sarama's AsyncProducer, with
/// `Return.Successes` on). Each record comes back exactly once, on one of the two.
///
/// **Drain both channels.** As in sarama, outcomes wait for room in a channel of
/// `channel_buffer` entries; when one is full the producer stops delivering and, soon after,
/// stops accepting records.
///
/// ```no_run
/// use rill_client::{AsyncProducer, ClientConfig, ProducerConfig, ProducerRecord};
///
/// # async fn _demo() -> Result<(), rill_client::ClientError> {
/// let producer = AsyncProducer::new(ProducerConfig::new(ClientConfig::new(["127.0.0.1:9092"])))?;
/// let mut successes = producer.successes().await.expect("first call");
/// let mut errors = producer.errors().await.expect("first call");
/// producer.send(ProducerRecord::new("events").value("hello")).await?;
/// tokio::select! {
///     Some(ok) = successes.recv() => println!("offset {}", ok.metadata.offset),
///     Some(err) = errors.recv() => println!("failed: {}", err.error),
/// }
/// producer.close().await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct AsyncProducer {
    handle: sender::Handle,
    /// Taken on close, so that the channels end after the last outcome.
    senders: std::sync::Mutex<Option<(mpsc::Sender<Delivered>, mpsc::Sender<ProducerError>)>>,
    successes: Mutex<Option<mpsc::Receiver<Delivered>>>,
    errors: Mutex<Option<mpsc::Receiver<ProducerError>>>,
}

impl AsyncProducer {
    /// Starts an async producer on a new [`Cluster`]. Must be called within a tokio runtime.
    ///
    /// ```no_run
    /// # use rill_client::{AsyncProducer, ClientConfig, ProducerConfig};
    /// # async fn _demo() -> Result<(), rill_client::ClientError> {
    /// let producer = AsyncProducer::new(ProducerConfig::new(ClientConfig::new(["127.0.0.1:9092"])))?;
    /// # drop(producer);
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(config: ProducerConfig) -> Result<Self> {
        let cluster = Arc::new(Cluster::new(config.client.clone()));
        Self::with_cluster(config, cluster)
    }

    /// Starts an async producer sharing `cluster` (`config.client` is ignored).
    ///
    /// ```no_run
    /// # use std::sync::Arc;
    /// # use rill_client::{AsyncProducer, ClientConfig, Cluster, ProducerConfig};
    /// # async fn _demo() -> Result<(), rill_client::ClientError> {
    /// let client = ClientConfig::new(["127.0.0.1:9092"]);
    /// let cluster = Arc::new(Cluster::new(client.clone()));
    /// let producer = AsyncProducer::with_cluster(ProducerConfig::new(client), cluster)?;
    /// # drop(producer);
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_cluster(config: ProducerConfig, cluster: Arc<Cluster>) -> Result<Self> {
        config.validate()?;
        let (successes_tx, successes) = mpsc::channel(config.channel_buffer);
        let (errors_tx, errors) = mpsc::channel(config.channel_buffer);
        Ok(Self {
            handle: sender::Handle::start(config, cluster),
            senders: std::sync::Mutex::new(Some((successes_tx, errors_tx))),
            successes: Mutex::new(Some(successes)),
            errors: Mutex::new(Some(errors)),
        })
    }

    /// Hands a record to the producer (sarama's `Input() <- msg`). Waits only while the input
    /// queue is full. Its outcome arrives on [`successes`](Self::successes) or
    /// [`errors`](Self::errors). After [`close`](Self::close) it fails with
    /// [`ClientError::Closed`] and the record is not taken.
    ///
    /// ```no_run
    /// # async fn _demo(producer: &rill_client::AsyncProducer) -> Result<(), rill_client::ClientError> {
    /// producer.send(rill_client::ProducerRecord::new("events").value("v")).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn send(&self, record: ProducerRecord) -> Result<()> {
        let senders = self
            .senders
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let Some((successes, errors)) = senders else {
            return Err(ClientError::Closed("async producer"));
        };
        self.handle
            .enqueue(record, Reply::Async { successes, errors })
            .await
    }

    /// The receiver of delivered records; `None` after the first call (there is one).
    /// It ends once the producer is closed and every outcome has been delivered.
    ///
    /// ```no_run
    /// # async fn _demo(producer: &rill_client::AsyncProducer) {
    /// let mut successes = producer.successes().await.expect("first call");
    /// while let Some(ok) = successes.recv().await {
    ///     println!("{} at {}", ok.record.topic, ok.metadata.offset);
    /// }
    /// # }
    /// ```
    pub async fn successes(&self) -> Option<mpsc::Receiver<Delivered>> {
        self.successes.lock().await.take()
    }

    /// The receiver of failed records; `None` after the first call (there is one).
    ///
    /// ```no_run
    /// # async fn _demo(producer: &rill_client::AsyncProducer) {
    /// let mut errors = producer.errors().await.expect("first call");
    /// while let Some(err) = errors.recv().await {
    ///     eprintln!("{}: {}", err.record.topic, err.error);
    /// }
    /// # }
    /// ```
    pub async fn errors(&self) -> Option<mpsc::Receiver<ProducerError>> {
        self.errors.lock().await.take()
    }

    /// Sends everything handed over so far and returns once each record's outcome is in a
    /// channel (keep draining them meanwhile).
    ///
    /// ```no_run
    /// # async fn _demo(producer: &rill_client::AsyncProducer) {
    /// producer.flush().await;
    /// # }
    /// ```
    pub async fn flush(&self) {
        self.handle.flush().await;
    }

    /// [`Producer::init_transactions`](super::Producer::init_transactions): registers the
    /// transactional id, fencing older producers with it.
    ///
    /// ```no_run
    /// # async fn _demo(producer: &rill_client::AsyncProducer) -> Result<(), rill_client::ClientError> {
    /// producer.init_transactions().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn init_transactions(&self) -> Result<()> {
        self.handle.transaction(Request::Init).await
    }

    /// [`Producer::begin_transaction`](super::Producer::begin_transaction): the records
    /// handed over until the commit or abort belong to the transaction.
    ///
    /// ```no_run
    /// # async fn _demo(producer: &rill_client::AsyncProducer) -> Result<(), rill_client::ClientError> {
    /// producer.begin_transaction().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn begin_transaction(&self) -> Result<()> {
        self.handle.transaction(Request::Begin).await
    }

    /// [`Producer::send_offsets_to_transaction`](super::Producer::send_offsets_to_transaction):
    /// a group's offsets, committed if the transaction is.
    ///
    /// ```no_run
    /// # async fn _demo(producer: &rill_client::AsyncProducer) -> Result<(), rill_client::ClientError> {
    /// producer.send_offsets_to_transaction(&[("input", 0, 42)], "copier").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn send_offsets_to_transaction<S: AsRef<str>>(
        &self,
        offsets: &[(S, i32, i64)],
        group: impl Into<GroupMetadata>,
    ) -> Result<()> {
        let request = Request::SendOffsets {
            offsets: offsets
                .iter()
                .map(|(t, p, o)| (t.as_ref().to_owned(), *p, *o))
                .collect(),
            group: group.into(),
        };
        self.handle.transaction(request).await
    }

    /// [`Producer::commit_transaction`](super::Producer::commit_transaction): sends every
    /// record handed over, then commits. Each record's outcome still arrives on its channel
    /// (keep draining them meanwhile); the commit fails if any of them failed.
    ///
    /// ```no_run
    /// # async fn _demo(producer: &rill_client::AsyncProducer) -> Result<(), rill_client::ClientError> {
    /// producer.commit_transaction().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn commit_transaction(&self) -> Result<()> {
        self.handle.transaction(Request::Commit).await
    }

    /// [`Producer::abort_transaction`](super::Producer::abort_transaction): records not sent
    /// yet arrive on [`errors`](Self::errors); nothing of the transaction is visible to
    /// read_committed consumers.
    ///
    /// ```no_run
    /// # async fn _demo(producer: &rill_client::AsyncProducer) -> Result<(), rill_client::ClientError> {
    /// producer.abort_transaction().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn abort_transaction(&self) -> Result<()> {
        self.handle.transaction(Request::Abort).await
    }

    /// Flushes and stops the producer; the channels end after the last outcome (sarama's
    /// `AsyncClose`, awaited).
    ///
    /// ```no_run
    /// # async fn _demo(producer: rill_client::AsyncProducer) {
    /// producer.close().await;
    /// # }
    /// ```
    pub async fn close(&self) {
        drop(
            self.senders
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take(),
        );
        self.handle.close().await;
    }
}
