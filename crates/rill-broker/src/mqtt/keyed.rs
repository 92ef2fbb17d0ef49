//! The MQTT front end's own state as keyed records of compacted topics under reserved names
//! (one partition each): the latest record of a key is its state, a null value deletes it.
//! Read back whole when the broker starts; the cleaner keeps each to a record per key.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rill_record::{Batches, DEFAULT_MAX_RECORDS_LEN};
use tokio::sync::watch;

use crate::broker::{Broker, Topic};

/// Whether a keyed topic has been read back since the broker started (or could not be): what
/// needs its state waits, a while, for it.
#[derive(Debug)]
pub(super) struct Loaded(watch::Sender<bool>);

impl Loaded {
    /// How long a client's packet waits for the state to be read back.
    const WAIT: Duration = Duration::from_secs(10);

    pub(super) fn new() -> Self {
        Self(watch::Sender::new(false))
    }

    pub(super) fn done(&self) {
        let _ = self.0.send_replace(true);
    }

    /// Waits (a while) until it is read back.
    pub(super) async fn wait(&self) {
        let mut loaded = self.0.subscribe();
        let _ = tokio::time::timeout(Self::WAIT, loaded.wait_for(|l| *l)).await;
    }
}

/// A key's latest record: its value (`None`: deleted), headers and offset.
pub(super) struct Latest {
    pub(super) value: Option<Bytes>,
    pub(super) headers: Vec<(Bytes, Option<Bytes>)>,
    pub(super) offset: i64,
}

/// The compacted topic `name`, created if it does not exist.
pub(super) async fn topic(broker: &Broker, name: &str) -> Result<Arc<Topic>, String> {
    if let Some(topic) = broker.topic(name) {
        return Ok(topic);
    }
    let configs = BTreeMap::from([("cleanup.policy".to_owned(), "compact".to_owned())]);
    match broker.create_reserved_topic(name, configs).await {
        Ok(topic) => Ok(topic),
        Err((_, why)) => broker.topic(name).ok_or(why),
    }
}

/// Every key's latest record in topic `name` (created if need be), which this broker must
/// lead.
pub(super) async fn read_back(
    broker: &Broker,
    name: &str,
) -> Result<HashMap<String, Latest>, String> {
    let topic = topic(broker, name).await?;
    let partition = topic
        .led(0)
        .map_err(|code| format!("{name} is not led here ({})", code.name()))?;
    let end = partition.offsets().high_watermark;
    let mut offset = partition.offsets().log_start;
    let mut found = HashMap::new();
    while offset < end {
        let bytes = partition
            .read(offset, 1 << 20)
            .await
            .map_err(|code| format!("reading {name}: {}", code.name()))?;
        if bytes.is_empty() {
            break;
        }
        for batch in Batches::new(&bytes) {
            let batch = batch.map_err(|e| format!("{name}: {e}"))?;
            let header = *batch.header();
            offset = offset.max(header.next_offset());
            if header.attributes.is_control() {
                continue;
            }
            let section = batch
                .records_section(DEFAULT_MAX_RECORDS_LEN)
                .map_err(|e| format!("{name}: {e}"))?;
            let records = rill_record::decode_records(&header, &section)
                .map_err(|e| format!("{name}: {e}"))?;
            for record in records {
                let Some(Ok(key)) = record.key.as_deref().map(std::str::from_utf8) else {
                    continue;
                };
                let latest = Latest {
                    value: record.value,
                    headers: record
                        .headers
                        .into_iter()
                        .map(|h| (h.key, h.value))
                        .collect(),
                    offset: record.offset,
                };
                let _ = found.insert(key.to_owned(), latest);
            }
        }
    }
    Ok(found)
}
