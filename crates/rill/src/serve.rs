//! `rill serve`: run a broker.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use rill_broker::{AckDurability, BrokerConfig};
use rill_log::FlushPolicy;

/// Run a broker. Every flag can also be set with the environment variable shown.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Address to listen on for Kafka clients.
    #[arg(long, env = "RILL_LISTEN", default_value = "127.0.0.1:9092")]
    listen: SocketAddr,

    /// host:port to give clients in metadata (default: the listen address).
    #[arg(long, env = "RILL_ADVERTISE")]
    advertise: Option<String>,

    /// Directory for partition logs and metadata (Kafka's log.dirs).
    #[arg(
        long,
        env = "RILL_DATA_DIR",
        default_value = "rill-data",
        visible_alias = "log-dirs"
    )]
    data_dir: PathBuf,

    /// This broker's id (Kafka's node.id).
    #[arg(long, env = "RILL_NODE_ID", default_value_t = 0)]
    node_id: i32,

    /// Partitions of auto-created topics (Kafka's num.partitions).
    #[arg(long, env = "RILL_NUM_PARTITIONS", default_value_t = rill_broker::DEFAULT_NUM_PARTITIONS)]
    num_partitions: i32,

    /// Create unknown topics when a client asks for their metadata (auto.create.topics.enable).
    #[arg(long, env = "RILL_AUTO_CREATE_TOPICS", default_value_t = true, action = clap::ArgAction::Set)]
    auto_create_topics: bool,

    /// Default segment size in bytes (log.segment.bytes).
    #[arg(long, env = "RILL_SEGMENT_BYTES", default_value_t = rill_log::DEFAULT_SEGMENT_BYTES)]
    segment_bytes: u64,

    /// Default segment age before a roll, ms (log.roll.ms).
    #[arg(long, env = "RILL_SEGMENT_MS", default_value_t = rill_log::DEFAULT_SEGMENT_MS)]
    segment_ms: i64,

    /// Default retention by age, ms; -1 keeps forever (log.retention.ms).
    #[arg(long, env = "RILL_RETENTION_MS", default_value_t = rill_log::DEFAULT_RETENTION_MS, allow_negative_numbers = true)]
    retention_ms: i64,

    /// Default retention by size per partition, bytes; -1 unlimited (log.retention.bytes).
    #[arg(long, env = "RILL_RETENTION_BYTES", default_value_t = rill_log::DEFAULT_RETENTION_BYTES, allow_negative_numbers = true)]
    retention_bytes: i64,

    /// How often partitions apply retention, ms (log.retention.check.interval.ms).
    #[arg(long, env = "RILL_RETENTION_CHECK_MS", default_value_t = 300_000)]
    retention_check_ms: u64,

    /// Fsync after this many records (log.flush.interval.messages). Default: only when needed
    /// for acks=all and at shutdown.
    #[arg(long, env = "RILL_FLUSH_MESSAGES", conflicts_with = "flush_ms")]
    flush_messages: Option<u64>,

    /// Fsync when the last one is older than this, ms; 0 fsyncs every batch
    /// (log.flush.interval.ms).
    #[arg(long, env = "RILL_FLUSH_MS")]
    flush_ms: Option<u64>,

    /// What acks=all waits for: `fsync` (durable, the default) or `page-cache` (Kafka's
    /// behaviour: survives a process crash, not a power loss).
    #[arg(long, env = "RILL_ACK_DURABILITY", default_value = "fsync", value_parser = ["fsync", "page-cache"])]
    ack_durability: String,

    /// Largest record batch a produce may carry, bytes (message.max.bytes).
    #[arg(long, env = "RILL_MAX_MESSAGE_BYTES", default_value_t = rill_broker::DEFAULT_MAX_MESSAGE_BYTES)]
    max_message_bytes: i32,

    /// How long the first rebalance of an empty group waits for more members, ms
    /// (group.initial.rebalance.delay.ms).
    #[arg(
        long,
        env = "RILL_GROUP_INITIAL_REBALANCE_DELAY_MS",
        default_value_t = 3000
    )]
    group_initial_rebalance_delay_ms: u64,

    /// Shortest session timeout a group member may ask for, ms (group.min.session.timeout.ms).
    #[arg(
        long,
        env = "RILL_GROUP_MIN_SESSION_TIMEOUT_MS",
        default_value_t = 6000
    )]
    group_min_session_timeout_ms: u64,

    /// Longest session timeout a group member may ask for, ms (group.max.session.timeout.ms).
    #[arg(
        long,
        env = "RILL_GROUP_MAX_SESSION_TIMEOUT_MS",
        default_value_t = 1_800_000
    )]
    group_max_session_timeout_ms: u64,

    /// How long the committed offsets of a group without members are kept, minutes
    /// (offsets.retention.minutes).
    #[arg(long, env = "RILL_OFFSETS_RETENTION_MINUTES", default_value_t = 10_080)]
    offsets_retention_minutes: u64,

    /// Largest request frame, bytes; larger ones close the connection (socket.request.max.bytes).
    #[arg(long, env = "RILL_MAX_REQUEST_BYTES", default_value_t = rill_broker::DEFAULT_MAX_REQUEST_BYTES)]
    max_request_bytes: usize,

    /// Address of the admin HTTP listener (/metrics, /health/live, /health/ready, /status), or
    /// `none` to run without it.
    #[arg(long, env = "RILL_ADMIN_LISTEN", default_value = "127.0.0.1:9644")]
    admin_listen: AdminListen,
}

/// `--admin-listen`: an address, or `none`.
#[derive(Debug, Clone, Copy)]
struct AdminListen(Option<SocketAddr>);

impl std::str::FromStr for AdminListen {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.eq_ignore_ascii_case("none") {
            return Ok(Self(None));
        }
        text.parse().map(|addr| Self(Some(addr))).map_err(|_| {
            format!("expected host:port (an IP address and a port) or `none`, got {text:?}")
        })
    }
}

impl Args {
    fn config(&self) -> anyhow::Result<BrokerConfig> {
        let flush = match (self.flush_messages, self.flush_ms) {
            (Some(0), _) => anyhow::bail!("--flush-messages must be at least 1"),
            (Some(n), _) => FlushPolicy::Messages(n),
            (None, Some(0)) => FlushPolicy::EveryAppend,
            (None, Some(ms)) => FlushPolicy::Interval(Duration::from_millis(ms)),
            (None, None) => FlushPolicy::Never,
        };
        let advertised = match &self.advertise {
            None => None,
            Some(text) => {
                let (host, port) = text
                    .rsplit_once(':')
                    .with_context(|| format!("--advertise must be host:port, got {text}"))?;
                let port = port
                    .parse()
                    .with_context(|| format!("--advertise has a bad port: {text}"))?;
                Some((host.to_owned(), port))
            }
        };
        if self.num_partitions < 1 {
            anyhow::bail!("--num-partitions must be at least 1");
        }
        let defaults = BrokerConfig::default();
        let config = BrokerConfig {
            data_dir: self.data_dir.clone(),
            advertised,
            node_id: self.node_id,
            num_partitions: self.num_partitions,
            auto_create_topics: self.auto_create_topics,
            log: rill_log::LogConfig {
                segment_bytes: self.segment_bytes,
                segment_ms: self.segment_ms,
                retention_ms: self.retention_ms,
                retention_bytes: self.retention_bytes,
                flush,
                ..defaults.log.clone()
            },
            max_message_bytes: self.max_message_bytes,
            max_request_bytes: self.max_request_bytes,
            ack_durability: match self.ack_durability.as_str() {
                "page-cache" => AckDurability::PageCache,
                _ => AckDurability::Fsync,
            },
            retention_check_interval: Duration::from_millis(self.retention_check_ms.max(1)),
            group_initial_rebalance_delay: Duration::from_millis(
                self.group_initial_rebalance_delay_ms,
            ),
            group_session_timeout_range: (
                Duration::from_millis(self.group_min_session_timeout_ms),
                Duration::from_millis(self.group_max_session_timeout_ms),
            ),
            offsets_retention: Duration::from_secs(
                self.offsets_retention_minutes.saturating_mul(60),
            ),
            ..defaults
        };
        config.log.validate().context("invalid log settings")?;
        Ok(config)
    }

    pub(crate) fn run(self) -> anyhow::Result<()> {
        let config = self.config()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("rill-net")
            .build()
            .context("starting the runtime")?;
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind(self.listen)
                .await
                .with_context(|| format!("cannot listen on {}", self.listen))?;
            let local = listener.local_addr().context("listener address")?;
            let admin = match self.admin_listen.0 {
                None => None,
                Some(addr) => Some(
                    tokio::net::TcpListener::bind(addr)
                        .await
                        .with_context(|| format!("cannot listen for admin http on {addr}"))?,
                ),
            };
            let admin_local = match &admin {
                None => None,
                Some(admin) => Some(admin.local_addr().context("admin listener address")?),
            };
            print_banner(&config, local, admin_local);
            rill_broker::run(config, listener, admin, shutdown_signal()).await?;
            Ok(())
        })
    }
}

/// What a person needs to know at start: where, and what survives what.
fn print_banner(config: &BrokerConfig, local: SocketAddr, admin: Option<SocketAddr>) {
    let acks_all = match config.ack_durability {
        AckDurability::Fsync => "answered after fsync (survives power loss)",
        AckDurability::PageCache => {
            "answered from the page cache (survives a process crash, NOT a power loss)"
        }
    };
    let flush = match config.log.flush {
        FlushPolicy::EveryAppend => "fsync every batch".to_owned(),
        FlushPolicy::Messages(n) => format!("fsync every {n} records"),
        FlushPolicy::Interval(d) => format!("fsync every {} ms", d.as_millis()),
        FlushPolicy::Never => {
            "fsync for acks=all and at shutdown; otherwise the OS decides".to_owned()
        }
    };
    println!("rill {} listening on {local}", env!("CARGO_PKG_VERSION"));
    match admin {
        Some(admin) => println!("  admin http:  http://{admin}"),
        None => println!("  admin http:  off (--admin-listen none)"),
    }
    println!("  data dir:    {}", config.data_dir.display());
    println!("  acks=all:    {acks_all}");
    println!("  acks=1:      answered after the write (survives a process crash)");
    println!("  flush:       {flush}");
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
