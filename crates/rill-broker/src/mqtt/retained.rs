//! Retained messages: the last retained message of each MQTT topic, kept in a compacted topic
//! of its own (`__rill_mqtt_retained`, one partition: key the MQTT topic, value the payload,
//! a null value once the retained message is cleared) and in memory, where a new subscription
//! finds the ones its filters match. The topic is read back when the broker starts, so
//! retained messages survive restarts, and the cleaner keeps it to one record per MQTT topic.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use mqtt5_protocol::QoS;

use super::keyed;
use super::mapping::matches;
use super::publish::{self, Appending, Refused};
use crate::broker::Broker;

/// The compacted topic retained messages live in.
pub(super) const RETAINED_TOPIC: &str = "__rill_mqtt_retained";

/// The header that keeps a retained message's QoS.
const QOS_HEADER: &[u8] = b"mqtt.qos";

/// A retained message.
#[derive(Debug, Clone)]
pub(super) struct Retained {
    pub(super) payload: Bytes,
    pub(super) headers: Vec<(Bytes, Option<Bytes>)>,
    pub(super) qos: QoS,
    /// Its record's offset: a later record replaces it, an earlier one never does.
    offset: i64,
}

/// The retained messages, by MQTT topic.
#[derive(Debug)]
pub(super) struct Store {
    messages: RwLock<BTreeMap<String, Retained>>,
    /// Whether the topic has been read back (or could not be).
    loaded: keyed::Loaded,
}

impl Store {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Self {
            messages: RwLock::new(BTreeMap::new()),
            loaded: keyed::Loaded::new(),
        })
    }

    /// Reads the retained messages back from their topic (created, compacted, if it does not
    /// exist yet); then subscriptions may look at them.
    pub(super) async fn load(&self, broker: &Broker) {
        if let Err(why) = self.read_back(broker).await {
            tracing::warn!(%why, "MQTT retained messages are not available");
        }
        self.loaded.done();
    }

    async fn read_back(&self, broker: &Broker) -> Result<(), String> {
        let found = keyed::read_back(broker, RETAINED_TOPIC).await?;
        let Ok(mut messages) = self.messages.write() else {
            return Ok(());
        };
        for (topic, latest) in found {
            if let Some(payload) = latest.value {
                let retained = decode(payload, latest.headers.into_iter(), latest.offset);
                let _ = messages.insert(topic, retained);
            }
        }
        tracing::info!(count = messages.len(), "MQTT retained messages read back");
        Ok(())
    }

    /// Waits (a while) until the messages are read back.
    pub(super) async fn ready(&self) {
        self.loaded.wait().await;
    }

    /// The retained messages whose topics match `filter`, in topic order.
    pub(super) fn matching(&self, filter: &str) -> Vec<(String, Retained)> {
        self.messages.read().map_or_else(
            |_| Vec::new(),
            |messages| {
                messages
                    .iter()
                    .filter(|(topic, _)| matches(topic, filter))
                    .map(|(topic, retained)| (topic.clone(), retained.clone()))
                    .collect()
            },
        )
    }

    /// Retains `payload` (with `headers`, at `qos`) for MQTT topic `topic`, or clears what it
    /// retains when the payload is empty: appended to the topic, then kept in memory.
    pub(super) async fn retain(
        self: &Arc<Self>,
        broker: &Broker,
        topic: String,
        payload: Bytes,
        headers: &[(String, Bytes)],
        qos: QoS,
    ) -> Result<Appending, Refused> {
        let kafka = keyed::topic(broker, RETAINED_TOPIC)
            .await
            .map_err(|why| Refused::unavailable(format!("retained messages: {why}")))?;
        let mut record_headers: Vec<(Bytes, Option<Bytes>)> = headers
            .iter()
            .map(|(k, v)| (Bytes::from(k.clone().into_bytes()), Some(v.clone())))
            .collect();
        record_headers.push((
            Bytes::from_static(QOS_HEADER),
            Some(Bytes::from(vec![b'0' + qos as u8])),
        ));
        let value = (!payload.is_empty()).then_some(payload);
        let append = publish::append_record(
            broker,
            &kafka,
            0,
            topic.clone(),
            value.clone(),
            record_headers.clone(),
            true,
        )
        .await?;
        let store = self.clone();
        Ok(Box::pin(async move {
            let offset = append.await?;
            let retained = value.map(|payload| decode(payload, record_headers.into_iter(), offset));
            store.keep(topic, retained, offset);
            Ok(offset)
        }))
    }

    /// Keeps `retained` for `topic` (clears it for `None`), unless a later record already
    /// replaced it.
    fn keep(&self, topic: String, retained: Option<Retained>, offset: i64) {
        let Ok(mut messages) = self.messages.write() else {
            return;
        };
        if messages.get(&topic).is_some_and(|r| r.offset > offset) {
            return;
        }
        match retained {
            Some(retained) => {
                let _ = messages.insert(topic, retained);
            }
            None => {
                let _ = messages.remove(&topic);
            }
        }
    }
}

/// A retained message from its record: the QoS header taken out, the others kept.
fn decode(
    payload: Bytes,
    headers: impl Iterator<Item = (Bytes, Option<Bytes>)>,
    offset: i64,
) -> Retained {
    let mut qos = QoS::AtMostOnce;
    let headers = headers
        .filter(|(key, value)| {
            if key.as_ref() != QOS_HEADER {
                return true;
            }
            qos = match value.as_deref() {
                Some(b"1") => QoS::AtLeastOnce,
                Some(b"2") => QoS::ExactlyOnce,
                _ => QoS::AtMostOnce,
            };
            false
        })
        .collect();
    Retained {
        payload,
        headers,
        qos,
        offset,
    }
}
