//! An MQTT publish as a Kafka produce: one record, keyed by the MQTT topic, handed to the
//! owner of the partition Kafka's default partitioner picks for that key, under the same
//! checks and durability as a produce request's batch.

use std::future::Future;
use std::pin::Pin;

use bytes::{Bytes, BytesMut};
use mqtt5_protocol::ReasonCode;
use rill_protocol::ErrorCode;
use rill_record::{BatchBuilder, RecordSpec, TimestampType};

use super::mapping::Mapping;
use crate::authorizer::{Operation, ResourceType};
use crate::broker::{Broker, Topic, validate_topic_name};
use crate::config::AckDurability;
use crate::handler::produce::{in_sync, prepare};
use crate::partition::now_ms;

/// A message to append: its MQTT topic, payload and record headers (5.0's user properties
/// and content type).
#[derive(Debug, Clone)]
pub(super) struct Message {
    pub(super) topic: String,
    pub(super) payload: Bytes,
    pub(super) headers: Vec<(String, Bytes)>,
}

/// Who publishes or reads: the principal (`User:<name>`, `None`: anonymous) and the address
/// the authorizer judges, as for a Kafka client.
#[derive(Debug, Clone)]
pub(super) struct Who {
    pub(super) principal: Option<String>,
    pub(super) ip: std::net::IpAddr,
}

impl Who {
    /// Whether it may do `operation` on Kafka topic `topic` (always, with the authorizer off).
    pub(super) fn may(&self, broker: &Broker, operation: Operation, topic: &str) -> bool {
        broker
            .authorizer
            .session(self.principal.as_deref(), self.ip)
            .allowed(operation, ResourceType::Topic, topic)
    }

    /// Whether it may create Kafka topic `topic` (CREATE on the cluster or on the topic).
    fn may_create(&self, broker: &Broker, topic: &str) -> bool {
        let access = broker
            .authorizer
            .session(self.principal.as_deref(), self.ip);
        access.on_cluster(Operation::Create)
            || access.allowed(Operation::Create, ResourceType::Topic, topic)
    }
}

/// Why a message was not appended: the reason code a 5.0 client is told, and why.
#[derive(Debug, Clone)]
pub(super) struct Refused {
    pub(super) reason: ReasonCode,
    pub(super) message: String,
}

impl Refused {
    fn new(reason: ReasonCode, message: String) -> Self {
        Self { reason, message }
    }

    /// A part of the broker MQTT needs is not there.
    pub(super) fn unavailable(message: String) -> Self {
        Self::new(ReasonCode::UnspecifiedError, message)
    }

    /// A Kafka error met on the way, told as MQTT's implementation-specific error.
    fn kafka(code: ErrorCode, message: String) -> Self {
        Self::new(
            ReasonCode::ImplementationSpecificError,
            format!("{}: {message}", code.name()),
        )
    }
}

/// The append under way, resolving once the record is in the log (fsynced and replicated as
/// `acks=all` would be, for a durable one) with its offset.
pub(super) type Appending = Pin<Box<dyn Future<Output = Result<i64, Refused>> + Send>>;

/// The Kafka topic of `message`, auto-created if it does not exist and topics may be.
async fn topic_of(
    broker: &Broker,
    mapping: &Mapping,
    who: &Who,
    message: &Message,
) -> Result<std::sync::Arc<Topic>, Refused> {
    let name = mapping.kafka_topic(&message.topic);
    validate_topic_name(name).map_err(|(_, why)| {
        Refused::new(
            ReasonCode::TopicNameInvalid,
            format!(
                "MQTT topic '{}' maps to Kafka topic '{name}', but {why}",
                message.topic
            ),
        )
    })?;
    if !who.may(broker, Operation::Write, name) {
        return Err(Refused::new(
            ReasonCode::NotAuthorized,
            format!("not allowed to write to Kafka topic '{name}'"),
        ));
    }
    if let Some(topic) = broker.topic(name) {
        return Ok(topic);
    }
    if !who.may_create(broker, name) {
        return Err(Refused::new(
            ReasonCode::NotAuthorized,
            format!("Kafka topic '{name}' does not exist, and creating it is not allowed"),
        ));
    }
    if !broker.config.auto_create_topics {
        return Err(Refused::new(
            ReasonCode::TopicNameInvalid,
            format!("Kafka topic '{name}' does not exist and topics are not created on first use"),
        ));
    }
    broker
        .create_on_first_use(name)
        .await
        .map_err(|(code, why)| Refused::kafka(code, why))
}

/// Checks `message` and hands it to its partition's owner, in the order of the calls; the
/// returned future resolves once it is appended. `durable` (QoS 1 and 2) appends as
/// `acks=all` does: fsynced (unless the broker acknowledges from the page cache) and, on a
/// replicated partition, on a majority of its replicas.
pub(super) async fn hand_off(
    broker: &Broker,
    mapping: &Mapping,
    who: &Who,
    message: Message,
    durable: bool,
) -> Result<Appending, Refused> {
    let topic = topic_of(broker, mapping, who, &message).await?;
    let index = rill_record::partition_for_key(message.topic.as_bytes(), topic.partition_count());
    let headers = message
        .headers
        .into_iter()
        .map(|(name, value)| (Bytes::from(name.into_bytes()), Some(value)))
        .collect();
    append_record(
        broker,
        &topic,
        index,
        message.topic,
        Some(message.payload),
        headers,
        durable,
    )
    .await
}

/// Checks one record (key `key`, value `value`, `headers`) as the produce path checks a
/// batch, and hands it to the owner of `topic`'s partition `index`, led here.
pub(super) async fn append_record(
    broker: &Broker,
    topic: &Topic,
    index: i32,
    key: String,
    value: Option<Bytes>,
    headers: Vec<(Bytes, Option<Bytes>)>,
    durable: bool,
) -> Result<Appending, Refused> {
    let partition = topic.led(index).map_err(|code| {
        Refused::kafka(
            code,
            format!(
                "partition {}-{index} is not led by this broker; connect to its leader",
                topic.name
            ),
        )
    })?;
    if durable && in_sync(partition) < topic.config.min_insync_replicas {
        return Err(Refused::kafka(
            ErrorCode::NotEnoughReplicas,
            format!(
                "partition {}-{index} has fewer in-sync replicas than its min.insync.replicas",
                topic.name
            ),
        ));
    }
    let mut record = RecordSpec::new(now_ms()).key(Bytes::from(key.into_bytes()));
    if let Some(value) = value {
        record = record.value(value);
    }
    for (name, value) in headers {
        record = match value {
            Some(value) => record.header(name, value),
            None => record.null_header(name),
        };
    }
    let batch = BatchBuilder::new()
        .record(record)
        .build()
        .map_err(|e| Refused::kafka(ErrorCode::UnknownServerError, e.to_string()))?;
    // The produce path's checks, as for a current client's batch.
    let (batch, _header): (BytesMut, _) = prepare(topic, index, Some(batch), PRODUCE_VERSION)
        .await
        .map_err(|refusal| Refused::kafka(refusal.code, refusal.message))?;
    let fsync = durable && broker.config.ack_durability == AckDurability::Fsync;
    let log_append_time = topic.config.timestamp_type == TimestampType::LogAppendTime;
    let append = partition.append(batch, fsync, durable, log_append_time);
    Ok(Box::pin(async move {
        append
            .await
            .map(|info| info.base_offset)
            .map_err(|code| Refused::kafka(code, "the append failed".to_owned()))
    }))
}

/// The produce version whose rules a publish's batch is checked under (any current one).
const PRODUCE_VERSION: i16 = 11;
