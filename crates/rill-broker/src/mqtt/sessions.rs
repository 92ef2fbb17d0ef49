//! Persistent sessions (MQTT 3.1.1's clean session 0, 5.0's clean start 0 with a session
//! expiry): what outlives a connection, and the broker.
//!
//! - A session's state (its filters, its expiry, the QoS 2 packet ids received and not yet
//!   released) is a JSON record of the compacted topic `__rill_mqtt_sessions`, keyed by client
//!   id, written (fsynced) before the packet that changed it is answered.
//! - Its positions in the partitions it reads are committed offsets of the consumer group
//!   `mqtt:<client id>` (so `rill group describe` shows a session's lag): the offset of the
//!   first record not yet acknowledged by the client, so that whatever was in flight when the
//!   connection (or the broker) went is delivered again.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::keyed;
use super::publish::{self, Refused};
use crate::broker::Broker;
use crate::group::Committed;
use crate::partition::now_ms;

/// The compacted topic sessions live in.
pub(super) const SESSIONS_TOPIC: &str = "__rill_mqtt_sessions";

/// A session's expiry that never comes (3.1.1's persistent sessions; 5.0's 0xFFFFFFFF).
pub(super) const NEVER: u32 = u32::MAX;

/// What a session keeps between connections.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(super) struct State {
    /// The filters and the QoS granted to each.
    pub(super) filters: Vec<(String, u8)>,
    /// Seconds it outlives its connection ([`NEVER`]: forever).
    pub(super) expiry_s: u32,
    /// QoS 2 packet ids appended whose PUBREL has not come.
    pub(super) received: Vec<u16>,
    /// When its connection ended (`None` while connected).
    pub(super) disconnected_ms: Option<i64>,
}

impl State {
    /// Whether it has expired by `now`.
    pub(super) fn expired(&self, now: i64) -> bool {
        match self.disconnected_ms {
            None => false,
            Some(_) if self.expiry_s == NEVER => false,
            Some(at) => now.saturating_sub(at) > i64::from(self.expiry_s) * 1000,
        }
    }
}

/// The consumer group holding a session's positions.
pub(super) fn group_id(client_id: &str) -> String {
    format!("mqtt:{client_id}")
}

/// The sessions, by client id.
#[derive(Debug)]
pub(super) struct Sessions {
    states: RwLock<HashMap<String, State>>,
    loaded: keyed::Loaded,
}

impl Sessions {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Self {
            states: RwLock::new(HashMap::new()),
            loaded: keyed::Loaded::new(),
        })
    }

    /// Reads the sessions back from their topic; then clients may connect to them.
    pub(super) async fn load(&self, broker: &Broker) {
        match keyed::read_back(broker, SESSIONS_TOPIC).await {
            Ok(found) => {
                if let Ok(mut states) = self.states.write() {
                    for (client_id, latest) in found {
                        let state = latest
                            .value
                            .and_then(|v| serde_json::from_slice::<State>(&v).ok());
                        if let Some(mut state) = state {
                            // A session connected when the broker stopped was disconnected then.
                            let _ = state.disconnected_ms.get_or_insert_with(now_ms);
                            let _ = states.insert(client_id, state);
                        }
                    }
                    tracing::info!(count = states.len(), "MQTT sessions read back");
                }
            }
            Err(why) => tracing::warn!(%why, "MQTT persistent sessions are not available"),
        }
        self.loaded.done();
    }

    /// Waits (a while) until the sessions are read back.
    pub(super) async fn ready(&self) {
        self.loaded.wait().await;
    }

    /// The session of `client_id`, unless it has expired.
    pub(super) fn get(&self, client_id: &str) -> Option<State> {
        let states = self.states.read().ok()?;
        states
            .get(client_id)
            .filter(|s| !s.expired(now_ms()))
            .cloned()
    }

    /// Stores `state` for `client_id` (`None` deletes the session), durably, then keeps it.
    pub(super) async fn save(
        &self,
        broker: &Broker,
        client_id: &str,
        state: Option<State>,
    ) -> Result<(), Refused> {
        let topic = keyed::topic(broker, SESSIONS_TOPIC)
            .await
            .map_err(|why| Refused::unavailable(format!("sessions: {why}")))?;
        let value = match &state {
            Some(state) => {
                Some(Bytes::from(serde_json::to_vec(state).map_err(|e| {
                    Refused::unavailable(format!("encoding the session: {e}"))
                })?))
            }
            None => None,
        };
        let append = publish::append_record(
            broker,
            &topic,
            0,
            client_id.to_owned(),
            value,
            Vec::new(),
            true,
        )
        .await?;
        let _ = append.await?;
        if let Ok(mut states) = self.states.write() {
            match state {
                Some(state) => {
                    let _ = states.insert(client_id.to_owned(), state);
                }
                None => {
                    let _ = states.remove(client_id);
                }
            }
        }
        Ok(())
    }

    /// Deletes the sessions that expired, with their positions.
    pub(super) async fn expire(&self, broker: &Broker) {
        let now = now_ms();
        let expired: Vec<String> = self.states.read().map_or_else(
            |_| Vec::new(),
            |states| {
                states
                    .iter()
                    .filter(|(_, s)| s.expired(now))
                    .map(|(id, _)| id.clone())
                    .collect()
            },
        );
        for client_id in expired {
            forget_positions(broker, &client_id).await;
            if let Err(refused) = self.save(broker, &client_id, None).await {
                tracing::debug!(%client_id, reason = %refused.message, "an expired MQTT session stays for now");
            }
        }
    }
}

/// The committed positions of `client_id`'s session, by partition.
pub(super) fn positions(broker: &Broker, client_id: &str) -> HashMap<(String, i32), i64> {
    broker
        .groups
        .group_offsets(&group_id(client_id))
        .into_iter()
        .map(|(key, committed)| (key, committed.offset))
        .collect()
}

/// Commits `client_id`'s session positions.
pub(super) async fn commit_positions(
    broker: &Broker,
    client_id: &str,
    positions: Vec<(String, i32, i64)>,
) {
    if positions.is_empty() {
        return;
    }
    broker.offsets_topic_on_first_use().await;
    let now = now_ms();
    let offsets = positions
        .into_iter()
        .map(|(topic, partition, offset)| {
            (
                topic,
                partition,
                Committed {
                    offset,
                    leader_epoch: -1,
                    metadata: None,
                    commit_ms: now,
                    expire_ms: None,
                },
            )
        })
        .collect();
    if let Err(code) = broker.groups.commit(&group_id(client_id), offsets).await {
        tracing::debug!(%client_id, error = code.name(), "an MQTT session's positions were not committed");
    }
}

/// Deletes `client_id`'s session positions.
pub(super) async fn forget_positions(broker: &Broker, client_id: &str) {
    let group = group_id(client_id);
    if broker.groups.has_offsets(&group) {
        let _ = broker.groups.delete_group(&group).await;
    }
}
