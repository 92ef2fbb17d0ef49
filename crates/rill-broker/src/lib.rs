//! Rill's broker: the Kafka wire protocol on tokio, wired to the storage engine.
//!
//! # Layout
//! - [`run`]: the whole broker as a library function over bound listeners (Kafka's, each
//!   plaintext or TLS, and the optional admin HTTP one) and a shutdown future; `rill serve` and
//!   the tests call it.
//! - `connection.rs`: one task per client connection; requests answered in order; generic over
//!   the byte stream (TCP, or TLS over it: `tls.rs`).
//! - `dispatch.rs` and `handler/`: one handler per Kafka API.
//! - `broker.rs`: topics and their partitions; topic changes; `meta.rs`: the metadata log.
//! - `partition/`: one owner per partition holding its `rill_log::Log`, reached over a channel:
//!   state machines run by a few storage threads (`storage.rs`), with one deadline heap per
//!   thread for time-based work, group commit for `acks=all`, and a shared, bounded cache of
//!   open segment files.
//! - `metrics/`: the broker's Prometheus registry (one per broker), the per-API, per-topic
//!   and fsync metrics, the error-code walk over answers, and the collector that reads
//!   partitions and groups at scrape time.
//! - `admin/`: the admin HTTP listener (`/metrics`, `/health/live`, `/health/ready`, `/status`).
//! - [`BrokerConfig`]: settings with Kafka's defaults.
//!
//! # Concurrency (the seed's model)
//! tokio's multi-threaded runtime runs the network: an acceptor task and a task per connection
//! (M:N on the worker threads, with work stealing). Every disk access happens on a storage
//! thread (which runs the owners of its share of the partitions, M:N as well) or in
//! `spawn_blocking`, never on a network worker, so a slow disk never stalls a socket. State is shared by message passing to owners; the few locks are never held across an
//! `.await` (see `broker.rs`).
#![doc(test(attr(deny(warnings))))]
#![warn(missing_docs)]

mod access;
mod admin;
mod assignment;
mod authorizer;
mod broker;
mod broker_config;
mod cleaner;
mod cluster;
mod config;
mod connection;
mod dispatch;
mod error;
mod group;
mod handler;
mod idempotence;
mod internal;
mod meta;
mod metrics;
mod mqtt;
mod partition;
mod quorum;
mod rpc;
mod sasl;
mod tls;
mod topic_config;
mod txn;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use authorizer::AuthorizerConfig;
pub use config::{
    AckDurability, BrokerConfig, CleanerConfig, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_MAX_PARTITIONS,
    DEFAULT_MAX_REQUEST_BYTES, DEFAULT_NUM_PARTITIONS, DEFAULT_OFFSETS_PARTITIONS,
    DEFAULT_OFFSETS_RETENTION, DEFAULT_RETENTION_CHECK_INTERVAL, MqttConfig,
};
pub use error::BrokerError;
pub use quorum::Voters;
pub use sasl::{BootstrapUser, MECHANISMS, SaslConfig};
pub use tls::{ClientAuth, TlsConfig};

/// A bound Kafka listener: its name (`PLAINTEXT`, `SSL`, or any name the
/// `listener.security.protocol.map` gives a protocol), its socket, its TLS settings (`None`:
/// plaintext) and the `host:port` clients are told to reach it at (`None`: its own address).
#[derive(Debug)]
pub struct Listener {
    /// The listener's name; Metadata answers a client with the brokers' addresses on the
    /// listener of the same name.
    pub name: String,
    /// The bound socket.
    pub socket: TcpListener,
    /// TLS, or `None` for plaintext.
    pub tls: Option<TlsConfig>,
    /// Whether clients authenticate with SASL (SASL_PLAINTEXT, SASL_SSL).
    pub sasl: bool,
    /// `advertised.listeners`' entry for it.
    pub advertised: Option<(String, u16)>,
    /// The protocol it speaks.
    pub protocol: Protocol,
}

/// What a listener's clients speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// Kafka's protocol.
    #[default]
    Kafka,
    /// MQTT 3.1.1 and 5.0 (`--mqtt-listen`): never advertised to Kafka clients.
    Mqtt,
}

impl Listener {
    /// A plaintext listener named `PLAINTEXT`, advertised at its own address.
    pub fn plaintext(socket: TcpListener) -> Self {
        Self {
            name: "PLAINTEXT".to_owned(),
            socket,
            tls: None,
            sasl: false,
            advertised: None,
            protocol: Protocol::Kafka,
        }
    }
}

/// The process's limit on open descriptors, first raised to its hard limit (as Go's runtime
/// does at start): the default descriptor cap is half of it, the rest left for sockets.
pub fn descriptor_limit() -> usize {
    static LIMIT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *LIMIT.get_or_init(|| {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        #[expect(unsafe_code, reason = "libc has no safe getrlimit/setrlimit")]
        // SAFETY: `limit` is a valid, writable rlimit for the whole call.
        let got = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit) };
        if got != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            #[expect(unsafe_code, reason = "libc has no safe getrlimit/setrlimit")]
            // SAFETY: `raised` is a valid rlimit, read by the call.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const raised) } == 0 {
                limit = raised;
            }
        }
        usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX)
    })
}

/// The admin HTTP listener (`/metrics`, `/health/*`, `/status`) and how it is guarded.
#[derive(Debug)]
pub struct AdminListener {
    /// The bound socket.
    pub socket: TcpListener,
    /// HTTPS with these TLS settings (the SSL listeners'), or `None` for plain HTTP.
    pub tls: Option<TlsConfig>,
    /// `/status` answers only `Authorization: Bearer <token>` (401 otherwise); `/metrics` and
    /// `/health/*` stay open.
    pub token: Option<String>,
}

/// Runs the broker on `listeners` (at least one; the first one's address is the broker's
/// address in images from before named listeners) until `shutdown` resolves, then stops
/// accepting, lets every connection finish the request it is handling, and closes every log
/// cleanly (fsynced).
///
/// `admin`, if given, serves `/metrics`, `/health/live`, `/health/ready` and `/status` over
/// HTTP from the start: live answers while the data directory is being opened (recovering
/// every partition), which happens before the first Kafka accept; ready answers 200 from the
/// first accept until shutdown begins.
pub async fn run(
    config: BrokerConfig,
    listeners: Vec<Listener>,
    admin: Option<AdminListener>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), BrokerError> {
    let (mqtt_listeners, listeners): (Vec<_>, Vec<_>) = listeners
        .into_iter()
        .partition(|l| l.protocol == Protocol::Mqtt);
    let mut addresses = Vec::with_capacity(listeners.len());
    for listener in &listeners {
        let local = listener.socket.local_addr().map_err(BrokerError::Listen)?;
        let (host, port) = listener
            .advertised
            .clone()
            .unwrap_or_else(|| (local.ip().to_string(), local.port()));
        addresses.push((
            local,
            quorum::image::ListenerAddress {
                name: listener.name.clone(),
                host,
                port,
            },
        ));
    }
    let Some((local, _)) = addresses.first().cloned() else {
        return Err(BrokerError::Config("the broker has no listener".to_owned()));
    };
    let advertised: Vec<_> = addresses.into_iter().map(|(_, a)| a).collect();
    let internal =
        |what: &str, err: prometheus::Error| BrokerError::Internal(format!("{what}: {err}"));
    let metrics = Arc::new(metrics::Metrics::new().map_err(|e| internal("metrics", e))?);
    let admin_state = Arc::new(admin::AdminState::new(
        metrics.clone(),
        local,
        admin.as_ref().and_then(|a| a.token.as_deref()),
    ));
    let admin_stop = CancellationToken::new();
    // Stops the admin listener however `run` returns, a failed start included.
    let _admin_stop_guard = admin_stop.clone().drop_guard();
    let admin_task = admin
        .map(|admin| tokio::spawn(admin::serve(admin, admin_state.clone(), admin_stop.clone())));

    tokio::pin!(shutdown);
    let Some((broker, applied)) =
        join_cluster(config, advertised, metrics.clone(), &mut shutdown).await?
    else {
        return Ok(());
    };
    let broker = Arc::new(broker);
    // The quorum stopping on its own (a failed disk, a refused configuration) stops the broker.
    let failed = CancellationToken::new();
    let reconciler = tokio::spawn(reconcile(broker.clone(), applied, failed.clone()));
    let collector = metrics::collector::BrokerCollector::new(Arc::downgrade(&broker))
        .map_err(|e| internal("metrics", e))?;
    metrics
        .register(Box::new(collector))
        .map_err(|e| internal("metrics", e))?;
    if let Err((code, why)) = broker.ensure_bootstrap_user().await {
        tracing::error!(error = code.name(), %why, "could not store the bootstrap user's credentials");
    }
    tracing::info!(listener = %local, cluster_id = %broker.cluster_id, "ready");
    admin_state.ready(broker.clone());

    let stop = CancellationToken::new();
    let connections = TaskTracker::new();
    let housekeeping = {
        let broker = broker.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(broker.config.group_housekeeping_interval);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let _ = every.tick().await;
            loop {
                let _ = every.tick().await;
                broker.groups.housekeeping().await;
            }
        })
    };
    let announcer = tokio::spawn(announce_leaders(broker.clone()));
    let transactions = tokio::spawn(txn::run(broker.clone()));
    cleaner::start(&broker);
    let calls = tokio::spawn(rpc::serve(broker.clone()));
    let stop_accepting = CancellationToken::new();
    let acceptors: Vec<_> = listeners
        .into_iter()
        .map(|listener| {
            tokio::spawn(accept(
                listener,
                broker.clone(),
                connections.clone(),
                stop.clone(),
                stop_accepting.clone(),
            ))
        })
        .collect();
    let mqtt_front = (!mqtt_listeners.is_empty()).then(|| mqtt::Front::start(broker.clone()));
    let mqtt_acceptors: Vec<_> = mqtt_listeners
        .into_iter()
        .zip(std::iter::repeat_with(|| mqtt_front.clone()).flatten())
        .map(|(listener, front)| {
            tokio::spawn(accept_mqtt(
                listener,
                front,
                connections.clone(),
                stop.clone(),
                stop_accepting.clone(),
            ))
        })
        .collect();
    tokio::select! {
        () = &mut shutdown => {}
        () = failed.cancelled() => {}
    }
    tracing::info!("shutting down");
    admin_state.stopping();
    stop_accepting.cancel();
    for acceptor in acceptors.into_iter().chain(mqtt_acceptors) {
        // Each drops its listener as it returns.
        let _ = acceptor.await;
    }
    housekeeping.abort();
    announcer.abort();
    transactions.abort();
    calls.abort();
    reconciler.abort();
    broker.stopping.cancel();
    stop.cancel();
    let _ = connections.close();
    connections.wait().await;
    let closing = broker.clone();
    tokio::task::spawn_blocking(move || closing.close_blocking())
        .await
        .map_err(|e| BrokerError::Internal(e.to_string()))?;
    admin_stop.cancel();
    if let Some(task) = admin_task {
        let _ = task.await;
    }
    tracing::info!("stopped");
    match broker.quorum.status().failed {
        Some(why) => Err(BrokerError::Config(why)),
        None => Ok(()),
    }
}

/// Accepts `listener`'s clients until `stop_accepting`, a task for each; a TLS client's
/// handshake happens in its own task.
async fn accept(
    listener: Listener,
    broker: Arc<broker::Broker>,
    connections: TaskTracker,
    stop: CancellationToken,
    stop_accepting: CancellationToken,
) {
    let name: Arc<str> = Arc::from(listener.name.as_str());
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.socket.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: keep serving the others.
                    tracing::warn!(%err, listener = %name, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stop_accepting.cancelled() => return,
        };
        let open = broker.metrics.connection_opened();
        // Detached: the tracker waits for it at shutdown.
        match &listener.tls {
            None => drop(connections.spawn(connection::serve_plain(
                broker.clone(),
                stream,
                peer,
                connection::Session::new(name.clone(), listener.sasl, &broker.config.sasl),
                stop.clone(),
                open,
            ))),
            Some(tls) => drop(connections.spawn(connection::serve_tls(
                broker.clone(),
                stream,
                peer,
                tls.acceptor(),
                connection::Session::new(name.clone(), listener.sasl, &broker.config.sasl),
                stop.clone(),
                open,
            ))),
        }
    }
}

/// Accepts an MQTT listener's clients until `stop_accepting`, a task for each (the TLS
/// handshake, on an MQTTS listener, inside it).
async fn accept_mqtt(
    listener: Listener,
    front: Arc<mqtt::Front>,
    connections: TaskTracker,
    stop: CancellationToken,
    stop_accepting: CancellationToken,
) {
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.socket.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(%err, listener = %listener.name, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stop_accepting.cancelled() => return,
        };
        let _ = stream.set_nodelay(true);
        let front = front.clone();
        let stop = stop.clone();
        match &listener.tls {
            None => drop(connections.spawn(mqtt::serve(front, stream, peer, stop))),
            Some(tls) => {
                let acceptor = tls.acceptor();
                drop(connections.spawn(async move {
                    // The handshake counts against the time a client has to send CONNECT.
                    let handshake = acceptor.accept(stream);
                    match tokio::time::timeout(front.connect_timeout(), handshake).await {
                        Ok(Ok(stream)) => mqtt::serve(front, stream, peer, stop).await,
                        Ok(Err(err)) => tracing::debug!(%peer, %err, "MQTTS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "MQTTS handshake timed out"),
                    }
                }));
            }
        }
    }
}

/// Starts this broker's member of the metadata quorum, registers the broker, checks the
/// cluster id and opens the partitions placed here: the broker, and the stream of applied
/// metadata changes. `None` if `shutdown` came first.
async fn join_cluster(
    config: BrokerConfig,
    advertised: Vec<quorum::image::ListenerAddress>,
    metrics: Arc<metrics::Metrics>,
    shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
) -> Result<
    Option<(
        broker::Broker,
        tokio::sync::mpsc::UnboundedReceiver<quorum::node::Applied>,
    )>,
    BrokerError,
> {
    let data_dir = config.data_dir.clone();
    std::fs::create_dir_all(&data_dir).map_err(|source| BrokerError::Io {
        path: data_dir.clone(),
        source,
    })?;
    let node_id = config.node_id;
    let Some(first) = advertised.first().cloned() else {
        return Err(BrokerError::Config("the broker has no listener".to_owned()));
    };
    // One PLAINTEXT listener registers as before named listeners: its address alone. Any
    // other single listener is registered by name, so clients of a listener it lacks are
    // never sent to it.
    let listeners = if advertised.len() > 1 || first.name != cluster::UNNAMED_LISTENER {
        advertised
    } else {
        Vec::new()
    };
    let controller = match config.controller_address() {
        Some(address) => Some(TcpListener::bind(&address).await.map_err(|e| {
            BrokerError::Config(format!(
                "cannot bind node {node_id}'s controller listener {address} ({e}): is another \
                 broker running as node {node_id}?"
            ))
        })?),
        None => None,
    };
    let quorum_config = quorum::QuorumConfig {
        node_id,
        voters: config.voters.clone(),
        session_timeout: config.broker_session_timeout,
        proposal_timeout: std::time::Duration::from_secs(10),
        offsets_partitions: config.offsets_partitions,
        snapshot_bytes: config.metadata_snapshot_bytes,
    };
    let incarnation = uuid::Uuid::new_v4();
    let runtime = tokio::runtime::Handle::current();
    let dir = data_dir.clone();
    let (quorum, applied) = tokio::task::spawn_blocking(move || {
        quorum::Quorum::start(&dir, &quorum_config, incarnation, controller, &runtime)
    })
    .await
    .map_err(|e| BrokerError::Internal(e.to_string()))??;
    let register = quorum::image::Command::RegisterBroker {
        id: node_id,
        incarnation,
        host: first.host.clone(),
        port: first.port,
        rack: config.rack.clone(),
        listeners: listeners.clone(),
    };
    let mut waited = std::time::Instant::now();
    let mut applied_index = quorum.applied();
    let cluster_id = loop {
        if let Some(why) = quorum.status().failed {
            quorum.stop();
            return Err(BrokerError::Config(why));
        }
        let registered = quorum
            .image()
            .brokers
            .get(&node_id)
            .is_some_and(|b| b.incarnation == incarnation);
        let named = quorum.image().cluster_id.clone();
        if let (true, Some(id)) = (registered, named) {
            break id;
        }
        if !registered
            && let Err((_, why)) = quorum.propose(register.clone()).await
            && waited.elapsed() > std::time::Duration::from_secs(5)
        {
            tracing::info!(%why, "waiting for the metadata quorum");
            waited = std::time::Instant::now();
        }
        // Until something applies (or a while, to propose again).
        tokio::select! {
            _ = tokio::time::timeout(std::time::Duration::from_millis(100), applied_index.changed()) => {}
            () = shutdown.as_mut() => {
                quorum.stop();
                return Ok(None);
            }
        }
    };
    meta::claim_cluster_id(&data_dir, node_id, &cluster_id)?;
    quorum.set_cluster_id(&cluster_id);
    let rack = config.rack.clone();
    let local = cluster::Node {
        id: node_id,
        host: first.host,
        port: first.port,
        rack,
        listeners,
    };
    let broker = tokio::task::spawn_blocking(move || {
        broker::Broker::open(
            config,
            cluster_id,
            cluster::ClusterView::new(local),
            quorum,
            metrics,
        )
    })
    .await
    .map_err(|e| BrokerError::Internal(e.to_string()))??;
    Ok(Some((broker, applied)))
}

/// Tells the cluster, through the metadata quorum, which replicated partitions this broker's
/// replicas lead (and at which epoch), soon after their groups elect them.
async fn announce_leaders(broker: Arc<broker::Broker>) {
    let mut every = tokio::time::interval(broker::ANNOUNCE_INTERVAL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let _ = every.tick().await;
        broker.announce_leaders().await;
        broker.repair_corrupt().await;
        broker.drive_reassignments().await;
    }
}

/// Hands every applied metadata change to the broker, in order; cancels `failed` if the quorum
/// stops on its own.
async fn reconcile(
    broker: Arc<broker::Broker>,
    mut applied: tokio::sync::mpsc::UnboundedReceiver<quorum::node::Applied>,
    failed: CancellationToken,
) {
    while let Some(change) = applied.recv().await {
        broker.reconcile(change).await;
        if broker.quorum.status().failed.is_some() {
            break;
        }
    }
    if !broker.stopping.is_cancelled() {
        tracing::error!("the metadata quorum stopped: stopping the broker");
        failed.cancel();
    }
}
