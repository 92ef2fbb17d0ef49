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
mod keyed;
mod mapping;
mod publish;
mod retained;
mod sessions;
mod subscribe;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::broker::Broker;
use crate::config::MqttConfig;
use mapping::Mapping;

/// How often expired sessions are looked for.
const EXPIRE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// A connected client.
#[derive(Debug)]
struct Client {
    /// Its connection's number.
    number: u64,
    /// Ends its connection.
    kick: CancellationToken,
    /// Set once its connection has stored what its session keeps.
    done: watch::Receiver<bool>,
}

/// What every MQTT connection of a broker shares.
#[derive(Debug)]
pub(crate) struct Front {
    broker: Arc<Broker>,
    config: MqttConfig,
    mapping: Arc<Mapping>,
    retained: Arc<retained::Store>,
    sessions: Arc<sessions::Sessions>,
    shares: subscribe::Shares,
    /// The connected clients by client id, each with the token that ends its connection when
    /// another connection takes its id over.
    clients: Mutex<HashMap<String, Client>>,
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
            sessions: sessions::Sessions::new(),
            shares: subscribe::Shares::default(),
            broker,
            config,
            clients: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
        });
        let loading = front.clone();
        drop(tokio::spawn(async move {
            loading.retained.load(&loading.broker).await;
            loading.sessions.load(&loading.broker).await;
            // Expired sessions go, with their positions.
            let mut every = tokio::time::interval(EXPIRE_EVERY);
            loop {
                let _ = every.tick().await;
                loading.sessions.expire(&loading.broker).await;
            }
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
    /// Returns the token that ends this one, the flag it sets once it has stored what its
    /// session keeps, and the previous connection's flag, to wait for before reading the
    /// session.
    fn take_over(
        &self,
        id: &str,
        number: u64,
    ) -> (
        CancellationToken,
        watch::Sender<bool>,
        Option<watch::Receiver<bool>>,
    ) {
        let token = CancellationToken::new();
        let done = watch::Sender::new(false);
        let client = Client {
            number,
            kick: token.clone(),
            done: done.subscribe(),
        };
        let previous = self.clients.lock().ok().and_then(|mut clients| {
            clients.insert(id.to_owned(), client).map(|old| {
                old.kick.cancel();
                old.done
            })
        });
        (token, done, previous)
    }

    /// Forgets client `id` if connection `number` still holds it.
    fn leave(&self, id: &str, number: u64) {
        if let Ok(mut clients) = self.clients.lock()
            && clients.get(id).is_some_and(|c| c.number == number)
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
    S: crate::connection::Transport,
{
    connection::serve(front, stream, peer, stop).await;
}
