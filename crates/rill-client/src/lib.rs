//! A pure-Rust async Kafka client on tokio, for Rill and any Kafka-compatible broker.
//!
//! # Layout
//! - [`Connection`]: one TCP connection to one broker; requests pipelined by correlation id,
//!   API versions negotiated on connect (`ApiVersions`, KIP-511), per-request timeout.
//! - [`Cluster`]: bootstrap, the metadata cache (brokers, topics, partition leaders) and one
//!   reused connection per broker, reconnected with backoff.
//! - [`producer`]: [`Producer`] (sarama's SyncProducer shape: `send(record).await` returns
//!   where the record landed) and [`AsyncProducer`] (sarama's AsyncProducer shape: an input
//!   and `successes()`/`errors()` receivers), both on one batching core with `linger`,
//!   `batch_size`, compression, retries, `max_in_flight`, idempotence and transactions.
//! - [`consumer`]: [`Consumer`] (partitions, start offsets) and [`PartitionConsumer`]
//!   (sarama's `ConsumePartition` shape: one partition's records from an [`Offset`] on,
//!   fetched ahead by a background task, across leader changes and broker restarts), reading
//!   uncommitted or only committed records ([`IsolationLevel`]).
//! - [`group`]: [`GroupConsumer`] (sarama's `ConsumerGroup` shape): a consumer-group member
//!   sharing partitions with the group's other members, committing marked offsets.
//! - [`admin`]: [`Admin`] (topics, partitions, configs, offsets, groups, committed offsets
//!   and lag, leader elections and partition reassignments).
//! - [`blocking`]: the same producer, admin and consumers for code without a runtime, each
//!   over a runtime of its own.
//! - [`security`]: TLS (rustls) and SASL (PLAIN, SCRAM-SHA-256/512) for every connection,
//!   from code or Kafka's client properties ([`Security::from_properties`]).
//! - [`ClientError`]: the one error type.
//!
//! Wire formats come from `rill-protocol` (framing, headers, message bodies) and
//! `rill-record` (record batches and codecs); this crate owns the sockets and the tasks.
//!
//! ```no_run
//! use rill_client::{ClientConfig, Producer, ProducerConfig, ProducerRecord};
//!
//! # async fn _demo() -> Result<(), rill_client::ClientError> {
//! let producer = Producer::new(ProducerConfig::new(ClientConfig::new(["127.0.0.1:9092"])))?;
//! let meta = producer
//!     .send(ProducerRecord::new("events").key("user-1").value("hello"))
//!     .await?;
//! println!("partition {} offset {}", meta.partition, meta.offset);
//! producer.close().await;
//! # Ok(())
//! # }
//! ```
#![doc(test(attr(deny(warnings))))]
#![warn(missing_docs)]

pub mod admin;
mod api;
pub mod blocking;
mod cluster;
mod connection;
pub mod consumer;
mod error;
pub mod group;
pub mod producer;
pub mod security;

pub use admin::{
    AclBinding, AclBindingFilter, AclOperation, AclPatternType, AclPermission, AclResourceType,
    Admin, AdminConfig, AlterConfigOp, BrokerInfo, ClusterDescription, CommittedOffset,
    ConfigEntry, ConfigResource, ConfigSource, CreatedTopic, ElectionResult, ElectionType,
    GroupDescription, GroupListing, GroupMember, ListedOffset, LogDirDescription, NewTopic,
    OffsetSpec, OngoingReassignment, PartitionInfo, PartitionLag, QuorumDescription, Reassignment,
    ReassignmentResult, ReplicaInfo, ScramAlteration, ScramCredentialInfo, TopicDescription,
    TopicListing, VoterState,
};
pub use api::{ApiRequest, CLIENT_VERSIONS, client_range};
pub use cluster::{
    ClientConfig, Cluster, DEFAULT_METADATA_MAX_AGE, DEFAULT_RECONNECT_BACKOFF,
    DEFAULT_RECONNECT_BACKOFF_MAX, PartitionMetadata, TopicMetadata,
};
pub use connection::{
    CLIENT_SOFTWARE_NAME, CLIENT_SOFTWARE_VERSION, Connection, ConnectionConfig,
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_RESPONSE_SIZE, DEFAULT_REQUEST_TIMEOUT,
};
pub use consumer::{
    Consumer, ConsumerConfig, ConsumerRecord, IsolationLevel, Offset, OffsetReset,
    PartitionConsumer,
};
pub use error::{ClientError, Result};
pub use group::{Assignor, GroupConfig, GroupConsumer, GroupEvent, GroupMetadata, StartOffset};
pub use producer::{
    Acks, AsyncProducer, DEFAULT_BUFFER_MEMORY, DEFAULT_TRANSACTION_TIMEOUT, Delivered,
    Partitioner, Producer, ProducerConfig, ProducerError, ProducerRecord, RecordMetadata,
};
pub use rill_protocol::{ApiKey, ErrorCode, kafka_protocol};
pub use rill_record::{Compression, Header};
pub use security::{Sasl, SaslMechanism, ScramMechanism, Security, SecurityProtocol, Tls};
