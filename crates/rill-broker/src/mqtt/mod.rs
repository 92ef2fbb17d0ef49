//! MQTT 3.1.1 and 5.0: devices publish into Kafka topics and subscribe to them, through the
//! same partition owners as Kafka's clients (a front end, not a second storage path).
//!
//! - `frame.rs`: splitting a connection's bytes into packets (the codec crate,
//!   `mqtt5-protocol`, decodes and encodes them).
//! - `connection.rs`: one task per connection: CONNECT, keep-alive, publishes (QoS 0, 1, 2,
//!   acknowledged once appended as `acks=all` would be), subscriptions, will.
//! - `mapping.rs`: MQTT topics to Kafka topics and back.
//! - `publish.rs`: a publish as a one-record produce.
//! - `subscribe.rs`: the readers that deliver a subscription's records.

mod connection;
mod frame;
mod mapping;
mod publish;
mod retained;
mod subscribe;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

use crate::broker::Broker;
use crate::config::MqttConfig;
use mapping::Mapping;

/// What every MQTT connection of a broker shares.
#[derive(Debug)]
pub(crate) struct Front {
    broker: Arc<Broker>,
    config: MqttConfig,
    mapping: Arc<Mapping>,
    retained: Arc<retained::Store>,
    /// The connected clients by client id, each with the token that ends its connection when
    /// another connection takes its id over.
    clients: Mutex<HashMap<String, (u64, CancellationToken)>>,
    /// Numbers connections (and the client ids the broker assigns).
    next: AtomicU64,
}

impl Front {
    /// The front end of `broker`'s MQTT listeners; its retained messages are read back in
    /// the background.
    pub(crate) fn start(broker: Arc<Broker>) -> Arc<Self> {
        let config = broker.config.mqtt.clone();
        let front = Arc::new(Self {
            mapping: Arc::new(Mapping::new(config.topic_map.clone())),
            retained: retained::Store::new(),
            broker,
            config,
            clients: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
        });
        let loading = front.clone();
        drop(tokio::spawn(async move {
            loading.retained.load(&loading.broker).await;
        }));
        front
    }

    /// How long a new connection has to send its CONNECT.
    pub(crate) fn connect_timeout(&self) -> std::time::Duration {
        self.config.connect_timeout
    }

    fn next_number(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// Registers connection `number` as client `id`, ending the connection that had it (MQTT:
    /// the server disconnects the existing client). Returns the token that ends this one.
    fn take_over(&self, id: &str, number: u64) -> CancellationToken {
        let token = CancellationToken::new();
        if let Ok(mut clients) = self.clients.lock()
            && let Some((_, old)) = clients.insert(id.to_owned(), (number, token.clone()))
        {
            old.cancel();
        }
        token
    }

    /// Forgets client `id` if connection `number` still holds it.
    fn leave(&self, id: &str, number: u64) {
        if let Ok(mut clients) = self.clients.lock()
            && clients.get(id).is_some_and(|(n, _)| *n == number)
        {
            let _ = clients.remove(id);
        }
    }
}

/// Serves one MQTT client on `stream` until it disconnects, breaks the protocol, or `stop`.
pub(crate) async fn serve<S>(
    front: Arc<Front>,
    stream: S,
    peer: SocketAddr,
    stop: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    connection::serve(front, stream, peer, stop).await;
}
