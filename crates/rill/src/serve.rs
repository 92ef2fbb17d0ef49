//! `rill serve`: run a broker.

mod settings;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use rill_broker::{AckDurability, BrokerConfig};
use rill_log::FlushPolicy;
use settings::Sources;

/// Run a broker. Every flag can also be set with the environment variable shown, or in a TOML
/// config file (`--config`) under Kafka's property name (`log.dirs`, `num.partitions`,
/// `log.retention.hours`, ...). A flag beats its environment variable, which beats the file;
/// `--print-config` shows the outcome and where each value came from.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  rill serve                                  # 127.0.0.1:9092, data in ./rill-data
  rill serve --data-dir /var/lib/rill --listen 0.0.0.0:9092 --advertise kafka.example:9092
  rill serve --config rill.toml --print-config   # show the effective settings and exit")]
pub(crate) struct Args {
    /// TOML config file; keys are Kafka's broker property names (see docs/rill.toml).
    #[arg(long, env = "RILL_CONFIG")]
    config: Option<PathBuf>,

    /// Print the effective settings, each with its source, as a config file, and exit.
    #[arg(long)]
    print_config: bool,

    /// Address to listen on for Kafka clients: ip:port (one PLAINTEXT listener), or Kafka's
    /// NAME://ip:port,... (listeners)
    #[arg(long, env = "RILL_LISTEN", default_value = "127.0.0.1:9092")]
    listen: settings::KafkaListeners,

    /// host:port to give clients in metadata (default: the listen address); with several
    /// listeners, NAME://host:port,... (advertised.listeners)
    #[arg(long, env = "RILL_ADVERTISE")]
    advertise: Option<String>,

    /// Address of a TLS listener named SSL, added to --listen (rill.ssl.listen)
    #[arg(long, env = "RILL_SSL_LISTEN")]
    ssl_listen: Option<SocketAddr>,

    /// Address of an MQTT 3.1.1 and 5.0 listener, e.g. 127.0.0.1:1883; off by default
    /// (rill.mqtt.listen)
    #[arg(long, env = "RILL_MQTT_LISTEN")]
    mqtt_listen: Option<SocketAddr>,

    /// Address of an MQTT listener over TLS (MQTTS, usually port 8883), with the SSL
    /// listeners' keystore (rill.mqtts.listen)
    #[arg(long, env = "RILL_MQTTS_LISTEN")]
    mqtts_listen: Option<SocketAddr>,

    /// Largest MQTT packet a client may send, bytes (rill.mqtt.max.packet.size)
    #[arg(long, env = "RILL_MQTT_MAX_PACKET_SIZE", default_value_t = 1 << 20)]
    mqtt_max_packet_size: u64,

    /// How long a new MQTT connection has to send CONNECT, ms (rill.mqtt.connect.timeout.ms)
    #[arg(long, env = "RILL_MQTT_CONNECT_TIMEOUT_MS", default_value_t = 10_000)]
    mqtt_connect_timeout_ms: u64,

    /// MQTT topic filters mapped to Kafka topics, FILTER=TOPIC,...; tried in order, and an
    /// MQTT topic none matches goes to the Kafka topic its first level names
    /// (rill.mqtt.topic.map)
    #[arg(long, env = "RILL_MQTT_TOPIC_MAP")]
    mqtt_topic_map: Option<String>,

    /// Each listener name's security protocol (listener.security.protocol.map)
    #[arg(
        long,
        env = "RILL_LISTENER_SECURITY_PROTOCOL_MAP",
        default_value = "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL"
    )]
    listener_security_protocol_map: String,

    /// PEM file with the TLS listeners' private key and certificate chain
    /// (ssl.keystore.location)
    #[arg(long, env = "RILL_SSL_KEYSTORE")]
    ssl_keystore: Option<String>,

    /// Format of --ssl-keystore; PEM is the one served (ssl.keystore.type)
    #[arg(long, env = "RILL_SSL_KEYSTORE_TYPE", default_value = "PEM")]
    ssl_keystore_type: String,

    /// PEM file with the CA certificates client certificates are checked against
    /// (ssl.truststore.location)
    #[arg(long, env = "RILL_SSL_TRUSTSTORE")]
    ssl_truststore: Option<String>,

    /// Format of --ssl-truststore; PEM is the one served (ssl.truststore.type)
    #[arg(long, env = "RILL_SSL_TRUSTSTORE_TYPE", default_value = "PEM")]
    ssl_truststore_type: String,

    /// Client certificates on TLS listeners: required, requested or none (ssl.client.auth)
    #[arg(long, env = "RILL_SSL_CLIENT_AUTH", default_value = "none")]
    ssl_client_auth: String,

    /// Turns ACLs on when not empty; Kafka's
    /// org.apache.kafka.metadata.authorizer.StandardAuthorizer is accepted (authorizer.class.name)
    #[arg(long, env = "RILL_AUTHORIZER_CLASS_NAME", default_value = "")]
    authorizer_class_name: String,

    /// Principals allowed everything, `User:name;User:other` (super.users)
    #[arg(long, env = "RILL_SUPER_USERS", default_value = "")]
    super_users: String,

    /// Let everyone at a resource that has no ACL at all (allow.everyone.if.no.acl.found)
    #[arg(long, env = "RILL_ALLOW_EVERYONE_IF_NO_ACL_FOUND", default_value_t = false, action = clap::ArgAction::Set)]
    allow_everyone_if_no_acl_found: bool,

    /// How often (ms) the keystore and truststore files are checked for changes; changed files
    /// are served to new connections, open ones keep theirs. SIGHUP reloads at once; 0 checks
    /// only then (rill.ssl.reload.interval.ms)
    #[arg(long, env = "RILL_SSL_RELOAD_INTERVAL_MS", default_value_t = 10_000)]
    ssl_reload_interval_ms: u64,

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

    /// The rack (or availability zone) clients are told this broker is in (broker.rack).
    #[arg(long, env = "RILL_RACK")]
    rack: Option<String>,

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

    /// Default min.insync.replicas of topics: above 1, acks=all produces are refused with
    /// NOT_ENOUGH_REPLICAS, since every partition has one replica (min.insync.replicas).
    #[arg(long, env = "RILL_MIN_INSYNC_REPLICAS", default_value_t = 1)]
    min_insync_replicas: i32,

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

    /// Partitions of the internal `__consumer_offsets` log, over which groups are spread by a
    /// hash of their id; a data directory keeps the count it was first written with
    /// (offsets.topic.num.partitions).
    #[arg(long, env = "RILL_OFFSETS_TOPIC_NUM_PARTITIONS", default_value_t = rill_broker::DEFAULT_OFFSETS_PARTITIONS)]
    offsets_topic_num_partitions: i32,

    /// Replicas of each partition of `__consumer_offsets` when it is created, capped at the
    /// cluster's size, so one node gets 1 (offsets.topic.replication.factor).
    #[arg(
        long,
        env = "RILL_OFFSETS_TOPIC_REPLICATION_FACTOR",
        default_value_t = 3
    )]
    offsets_topic_replication_factor: i32,

    /// Partitions of the internal `__transaction_state` log, over which transactional ids are
    /// spread by a hash of the id (transaction.state.log.num.partitions).
    #[arg(
        long,
        env = "RILL_TRANSACTION_STATE_LOG_NUM_PARTITIONS",
        default_value_t = 50
    )]
    transaction_state_log_num_partitions: i32,

    /// Replicas of each partition of `__transaction_state` when it is created, capped at the
    /// cluster's size (transaction.state.log.replication.factor).
    #[arg(
        long,
        env = "RILL_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        default_value_t = 3
    )]
    transaction_state_log_replication_factor: i32,

    /// The longest transaction timeout a producer may ask for, ms (transaction.max.timeout.ms).
    #[arg(
        long,
        env = "RILL_TRANSACTION_MAX_TIMEOUT_MS",
        default_value_t = 900_000
    )]
    transaction_max_timeout_ms: i32,

    /// The transaction protocol announced to clients (Kafka's `transaction.version` feature):
    /// 2 bumps the producer epoch at every transaction's end (KIP-890 part 2) for clients that
    /// support it; 0 keeps every client on the protocol before it. The same on every broker.
    #[arg(long, env = "RILL_TRANSACTION_VERSION", default_value_t = 2)]
    transaction_version: i16,

    /// Largest request frame, bytes; larger ones close the connection (socket.request.max.bytes).
    #[arg(long, env = "RILL_MAX_REQUEST_BYTES", default_value_t = rill_broker::DEFAULT_MAX_REQUEST_BYTES)]
    max_request_bytes: usize,

    /// Threads that run the partitions' owners and do their disk I/O; 0 is one per core
    /// (rill.storage.threads).
    #[arg(long, env = "RILL_STORAGE_THREADS", default_value_t = 0)]
    storage_threads: usize,

    /// Whether compacted topics are cleaned (log.cleaner.enable).
    #[arg(long, env = "RILL_LOG_CLEANER_ENABLE", default_value_t = true, action = clap::ArgAction::Set)]
    log_cleaner_enable: bool,

    /// Threads that clean compacted logs, one log each at a time (log.cleaner.threads).
    #[arg(long, env = "RILL_LOG_CLEANER_THREADS", default_value_t = 1)]
    log_cleaner_threads: usize,

    /// Bytes for the cleaner threads' key maps together; a log with more keys is cleaned in
    /// several passes (log.cleaner.dedupe.buffer.size).
    #[arg(long, env = "RILL_LOG_CLEANER_DEDUPE_BUFFER_SIZE", default_value_t = 128 << 20)]
    log_cleaner_dedupe_buffer_size: usize,

    /// Bytes per second the cleaner threads read and write together; 0 is no limit
    /// (log.cleaner.io.max.bytes.per.second).
    #[arg(
        long,
        env = "RILL_LOG_CLEANER_IO_MAX_BYTES_PER_SECOND",
        default_value_t = 0
    )]
    log_cleaner_io_max_bytes_per_second: u64,

    /// How long a cleaner thread sleeps when no log needs cleaning, ms (log.cleaner.backoff.ms).
    #[arg(long, env = "RILL_LOG_CLEANER_BACKOFF_MS", default_value_t = 15_000)]
    log_cleaner_backoff_ms: u64,

    /// Most segment files kept open at once, shared by all partitions; 0 is half the process's
    /// descriptor limit (rill.max.open.files).
    #[arg(long, env = "RILL_MAX_OPEN_FILES", default_value_t = 0)]
    max_open_files: usize,

    /// Most partitions this broker holds; creating more is refused with POLICY_VIOLATION
    /// (rill.max.partitions).
    #[arg(long, env = "RILL_MAX_PARTITIONS", default_value_t = rill_broker::DEFAULT_MAX_PARTITIONS)]
    max_partitions: usize,

    /// The metadata quorum's voters, `id@host:port,...` (controller.quorum.voters); each
    /// address is that node's controller listener. Empty: a cluster of this broker alone
    #[arg(long, env = "RILL_CONTROLLER_QUORUM_VOTERS", default_value = "")]
    controller_quorum_voters: String,

    /// Where this broker's controller listener binds, if not at its own address in
    /// --controller-quorum-voters (rill.controller.listen)
    #[arg(long, env = "RILL_CONTROLLER_LISTEN")]
    controller_listen: Option<settings::ControllerListen>,

    /// A broker not heard from by the quorum's leader for this long is fenced: its partitions
    /// have no leader until it returns, ms (broker.session.timeout.ms)
    #[arg(long, env = "RILL_BROKER_SESSION_TIMEOUT_MS", default_value_t = 9000)]
    broker_session_timeout_ms: u64,

    /// A follower that has not caught up with its leader for this long leaves the partition's
    /// in-sync replicas, ms (replica.lag.time.max.ms)
    #[arg(long, env = "RILL_REPLICA_LAG_TIME_MAX_MS", default_value_t = 30_000)]
    replica_lag_time_max_ms: u64,

    /// Bytes of metadata log entries after which the metadata image is snapshotted and the log
    /// compacted (metadata.log.max.record.bytes.between.snapshots)
    #[arg(long, env = "RILL_METADATA_SNAPSHOT_BYTES", default_value_t = 20 << 20)]
    metadata_log_max_record_bytes_between_snapshots: u64,

    /// SASL mechanisms SASL listeners offer, comma-separated: PLAIN, SCRAM-SHA-256,
    /// SCRAM-SHA-512 (sasl.enabled.mechanisms)
    #[arg(
        long,
        env = "RILL_SASL_ENABLED_MECHANISMS",
        default_value = "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512"
    )]
    sasl_enabled_mechanisms: String,

    /// A SASL session's lifetime, after which the client re-authenticates on its connection
    /// (KIP-368) or is disconnected; 0 for no limit, ms (connections.max.reauth.ms)
    #[arg(long, env = "RILL_CONNECTIONS_MAX_REAUTH_MS", default_value_t = 0)]
    connections_max_reauth_ms: u64,

    /// How long a client on a SASL listener has to authenticate before it is disconnected, ms
    /// (rill.sasl.authentication.timeout.ms)
    #[arg(
        long,
        env = "RILL_SASL_AUTHENTICATION_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    sasl_authentication_timeout_ms: u64,

    /// NAME:PASSWORD of a user to give SCRAM-SHA-256 and SCRAM-SHA-512 credentials at start (the
    /// first administrator: name it in super.users)
    #[arg(long, env = "RILL_BOOTSTRAP_USER", hide_env_values = true)]
    bootstrap_user: Option<rill_broker::BootstrapUser>,

    /// Address of the admin HTTP listener (/metrics, /health/live, /health/ready, /status), or
    /// `none` to run without it.
    #[arg(long, env = "RILL_ADMIN_LISTEN", default_value = "127.0.0.1:9644")]
    admin_listen: AdminListen,

    /// Serve the admin listener over HTTPS with the SSL listeners' keystore (and their
    /// ssl.client.auth), reloaded with them (rill.admin.tls)
    #[arg(long, env = "RILL_ADMIN_TLS", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    admin_tls: bool,

    /// Bearer token /status requires (Authorization: Bearer TOKEN; 401 without it); /metrics
    /// and /health stay open. Prefer the environment variable to the flag, which others can
    /// read in the process list (rill.admin.token)
    #[arg(long, env = "RILL_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<AdminToken>,
}

/// `--admin-token`: kept out of `--print-config` and debug output.
#[derive(Clone)]
struct AdminToken(String);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(hidden)")
    }
}

impl std::str::FromStr for AdminToken {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let token = text.trim();
        if token.is_empty() || token.contains(char::is_whitespace) {
            return Err("the admin token must be non-empty, without spaces".to_owned());
        }
        Ok(Self(token.to_owned()))
    }
}

impl settings::Value for Option<AdminToken> {
    fn from_text(text: &str, _: i64) -> Result<Self, String> {
        text.parse().map(Some)
    }
    fn to_toml(&self) -> Option<String> {
        self.as_ref().map(|_| "\"(hidden)\"".to_owned())
    }
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

impl settings::Value for AdminListen {
    fn from_text(text: &str, _: i64) -> Result<Self, String> {
        text.trim().parse()
    }
    fn to_toml(&self) -> Option<String> {
        Some(match self.0 {
            Some(addr) => format!("\"{addr}\""),
            None => "\"none\"".to_owned(),
        })
    }
}

/// One listener to bind: Kafka's, or MQTT's.
#[derive(Debug)]
struct KafkaListener {
    name: String,
    address: SocketAddr,
    /// Served over TLS (its security protocol is SSL or SASL_SSL).
    tls: bool,
    /// Clients authenticate with SASL (SASL_PLAINTEXT or SASL_SSL).
    sasl: bool,
    advertised: Option<(String, u16)>,
    protocol: rill_broker::Protocol,
}

/// `rill.mqtt.topic.map`: `FILTER=TOPIC,...`, each filter a valid MQTT topic filter (split at
/// its last `=`, as a Kafka topic name has none).
fn topic_map(text: &str) -> anyhow::Result<Vec<(String, String)>> {
    text.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let Some((filter, topic)) = entry.rsplit_once('=') else {
                anyhow::bail!("rill.mqtt.topic.map: '{entry}' is not FILTER=TOPIC");
            };
            let (filter, topic) = (filter.trim(), topic.trim());
            if filter.is_empty() || topic.is_empty() {
                anyhow::bail!("rill.mqtt.topic.map: '{entry}' is not FILTER=TOPIC");
            }
            Ok((filter.to_owned(), topic.to_owned()))
        })
        .collect()
}

/// The authorizer's settings: any class name turns ACLs on (Rill has one authorizer, Kafka's
/// StandardAuthorizer's rules); every super user must be `Type:name`.
fn authorizer_config(
    class_name: &str,
    super_users: &str,
    allow_everyone: bool,
) -> anyhow::Result<rill_broker::AuthorizerConfig> {
    let super_users: Vec<String> = super_users
        .split(';')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .collect();
    if let Some(bad) = super_users.iter().find(|u| {
        u.split_once(':')
            .is_none_or(|(t, n)| t.is_empty() || n.is_empty())
    }) {
        anyhow::bail!("super.users (--super-users): '{bad}' is not a principal like User:alice");
    }
    Ok(rill_broker::AuthorizerConfig {
        enabled: !class_name.trim().is_empty(),
        super_users,
        allow_everyone_if_no_acl_found: allow_everyone,
    })
}

/// The TLS listeners' keystore, truststore and `ssl.client.auth`.
#[derive(Debug)]
struct TlsFiles {
    keystore: Option<PathBuf>,
    truststore: Option<PathBuf>,
    client_auth: rill_broker::ClientAuth,
    /// How often the files are checked for changes; zero: only on SIGHUP.
    reload_interval: Duration,
}

/// The admin HTTP listener's address, and how it is guarded.
#[derive(Debug)]
struct AdminSettings {
    listen: Option<SocketAddr>,
    tls: bool,
    token: Option<AdminToken>,
}

/// Where the broker listens: Kafka clients, the TLS settings, then the admin HTTP listener.
type Listeners = (Vec<KafkaListener>, TlsFiles, AdminSettings);

impl Args {
    /// The broker's settings: each flag (or its environment variable) if given, else the config
    /// file's value, else the default. Returns the resolved sources too, for `--print-config`.
    fn config<'m>(
        &self,
        matches: &'m clap::ArgMatches,
    ) -> anyhow::Result<(Listeners, BrokerConfig, Sources<'m>)> {
        let mut s = Sources::new(matches, self.config.as_deref())?;
        let listen = s.get("listen", self.listen.clone(), &[("listeners", 1)])?;
        let advertise = s.get(
            "advertise",
            self.advertise.clone(),
            &[("advertised.listeners", 1)],
        )?;
        let ssl_listen = s.get("ssl_listen", self.ssl_listen, &[("rill.ssl.listen", 1)])?;
        let mqtt_listen = s.get("mqtt_listen", self.mqtt_listen, &[("rill.mqtt.listen", 1)])?;
        let mqtts_listen = s.get(
            "mqtts_listen",
            self.mqtts_listen,
            &[("rill.mqtts.listen", 1)],
        )?;
        let mqtt_max_packet_size = s.get(
            "mqtt_max_packet_size",
            self.mqtt_max_packet_size,
            &[("rill.mqtt.max.packet.size", 1)],
        )?;
        let mqtt_connect_timeout_ms = s.get(
            "mqtt_connect_timeout_ms",
            self.mqtt_connect_timeout_ms,
            &[("rill.mqtt.connect.timeout.ms", 1)],
        )?;
        let mqtt_topic_map = s.get(
            "mqtt_topic_map",
            self.mqtt_topic_map.clone(),
            &[("rill.mqtt.topic.map", 1)],
        )?;
        let protocol_map = s.get(
            "listener_security_protocol_map",
            self.listener_security_protocol_map.clone(),
            &[("listener.security.protocol.map", 1)],
        )?;
        let ssl_keystore = s.get(
            "ssl_keystore",
            self.ssl_keystore.clone(),
            &[("ssl.keystore.location", 1)],
        )?;
        let ssl_keystore_type = s.get(
            "ssl_keystore_type",
            self.ssl_keystore_type.clone(),
            &[("ssl.keystore.type", 1)],
        )?;
        let ssl_truststore = s.get(
            "ssl_truststore",
            self.ssl_truststore.clone(),
            &[("ssl.truststore.location", 1)],
        )?;
        let ssl_truststore_type = s.get(
            "ssl_truststore_type",
            self.ssl_truststore_type.clone(),
            &[("ssl.truststore.type", 1)],
        )?;
        let ssl_client_auth = s.get(
            "ssl_client_auth",
            self.ssl_client_auth.clone(),
            &[("ssl.client.auth", 1)],
        )?;
        let authorizer_class_name = s.get(
            "authorizer_class_name",
            self.authorizer_class_name.clone(),
            &[("authorizer.class.name", 1)],
        )?;
        let super_users = s.get(
            "super_users",
            self.super_users.clone(),
            &[("super.users", 1)],
        )?;
        let allow_everyone_if_no_acl_found = s.get(
            "allow_everyone_if_no_acl_found",
            self.allow_everyone_if_no_acl_found,
            &[("allow.everyone.if.no.acl.found", 1)],
        )?;
        let authorizer = authorizer_config(
            &authorizer_class_name,
            &super_users,
            allow_everyone_if_no_acl_found,
        )?;
        let ssl_reload_interval_ms = s.get(
            "ssl_reload_interval_ms",
            self.ssl_reload_interval_ms,
            &[("rill.ssl.reload.interval.ms", 1)],
        )?;
        let data_dir = s.get(
            "data_dir",
            self.data_dir.clone(),
            &[("log.dirs", 1), ("log.dir", 1)],
        )?;
        let node_id = s.get("node_id", self.node_id, &[("node.id", 1), ("broker.id", 1)])?;
        let rack = s.get("rack", self.rack.clone(), &[("broker.rack", 1)])?;
        if rack.as_deref().is_some_and(|r| r.trim().is_empty()) {
            anyhow::bail!("broker.rack (--rack) must not be empty when set");
        }
        let num_partitions = s.get(
            "num_partitions",
            self.num_partitions,
            &[("num.partitions", 1)],
        )?;
        let auto_create_topics = s.get(
            "auto_create_topics",
            self.auto_create_topics,
            &[("auto.create.topics.enable", 1)],
        )?;
        let segment_bytes = s.get(
            "segment_bytes",
            self.segment_bytes,
            &[("log.segment.bytes", 1)],
        )?;
        let segment_ms = s.get(
            "segment_ms",
            self.segment_ms,
            &[("log.roll.ms", 1), ("log.roll.hours", HOUR_MS)],
        )?;
        let retention_ms = s.get(
            "retention_ms",
            self.retention_ms,
            &[
                ("log.retention.ms", 1),
                ("log.retention.minutes", MINUTE_MS),
                ("log.retention.hours", HOUR_MS),
            ],
        )?;
        let retention_bytes = s.get(
            "retention_bytes",
            self.retention_bytes,
            &[("log.retention.bytes", 1)],
        )?;
        let retention_check_ms = s.get(
            "retention_check_ms",
            self.retention_check_ms,
            &[("log.retention.check.interval.ms", 1)],
        )?;
        let flush_messages = s.get(
            "flush_messages",
            self.flush_messages,
            &[("log.flush.interval.messages", 1)],
        )?;
        let flush_ms = s.get("flush_ms", self.flush_ms, &[("log.flush.interval.ms", 1)])?;
        let max_message_bytes = s.get(
            "max_message_bytes",
            self.max_message_bytes,
            &[("message.max.bytes", 1)],
        )?;
        let min_insync_replicas = s.get(
            "min_insync_replicas",
            self.min_insync_replicas,
            &[("min.insync.replicas", 1)],
        )?;
        let max_request_bytes = s.get(
            "max_request_bytes",
            self.max_request_bytes,
            &[("socket.request.max.bytes", 1)],
        )?;
        let group_initial_rebalance_delay_ms = s.get(
            "group_initial_rebalance_delay_ms",
            self.group_initial_rebalance_delay_ms,
            &[("group.initial.rebalance.delay.ms", 1)],
        )?;
        let group_min_session_timeout_ms = s.get(
            "group_min_session_timeout_ms",
            self.group_min_session_timeout_ms,
            &[("group.min.session.timeout.ms", 1)],
        )?;
        let group_max_session_timeout_ms = s.get(
            "group_max_session_timeout_ms",
            self.group_max_session_timeout_ms,
            &[("group.max.session.timeout.ms", 1)],
        )?;
        let offsets_retention_minutes = s.get(
            "offsets_retention_minutes",
            self.offsets_retention_minutes,
            &[("offsets.retention.minutes", 1)],
        )?;
        let offsets_topic_num_partitions = s.get(
            "offsets_topic_num_partitions",
            self.offsets_topic_num_partitions,
            &[("offsets.topic.num.partitions", 1)],
        )?;
        let offsets_topic_replication_factor = s.get(
            "offsets_topic_replication_factor",
            self.offsets_topic_replication_factor,
            &[("offsets.topic.replication.factor", 1)],
        )?;
        let transaction_state_log_num_partitions = s.get(
            "transaction_state_log_num_partitions",
            self.transaction_state_log_num_partitions,
            &[("transaction.state.log.num.partitions", 1)],
        )?;
        let transaction_state_log_replication_factor = s.get(
            "transaction_state_log_replication_factor",
            self.transaction_state_log_replication_factor,
            &[("transaction.state.log.replication.factor", 1)],
        )?;
        let transaction_max_timeout_ms = s.get(
            "transaction_max_timeout_ms",
            self.transaction_max_timeout_ms,
            &[("transaction.max.timeout.ms", 1)],
        )?;
        let transaction_version = s.get(
            "transaction_version",
            self.transaction_version,
            &[("transaction.version", 1)],
        )?;
        let ack_durability = s.get(
            "ack_durability",
            self.ack_durability.clone(),
            &[("rill.ack.durability", 1)],
        )?;
        let storage_threads = s.get(
            "storage_threads",
            self.storage_threads,
            &[("rill.storage.threads", 1)],
        )?;
        let log_cleaner_enable = s.get(
            "log_cleaner_enable",
            self.log_cleaner_enable,
            &[("log.cleaner.enable", 1)],
        )?;
        let log_cleaner_threads = s.get(
            "log_cleaner_threads",
            self.log_cleaner_threads,
            &[("log.cleaner.threads", 1)],
        )?;
        let log_cleaner_dedupe_buffer_size = s.get(
            "log_cleaner_dedupe_buffer_size",
            self.log_cleaner_dedupe_buffer_size,
            &[("log.cleaner.dedupe.buffer.size", 1)],
        )?;
        let log_cleaner_io_max_bytes_per_second = s.get(
            "log_cleaner_io_max_bytes_per_second",
            self.log_cleaner_io_max_bytes_per_second,
            &[("log.cleaner.io.max.bytes.per.second", 1)],
        )?;
        let log_cleaner_backoff_ms = s.get(
            "log_cleaner_backoff_ms",
            self.log_cleaner_backoff_ms,
            &[("log.cleaner.backoff.ms", 1)],
        )?;
        let max_open_files = s.get(
            "max_open_files",
            self.max_open_files,
            &[("rill.max.open.files", 1)],
        )?;
        let max_partitions = s.get(
            "max_partitions",
            self.max_partitions,
            &[("rill.max.partitions", 1)],
        )?;
        let voters = s.get(
            "controller_quorum_voters",
            self.controller_quorum_voters.clone(),
            &[("controller.quorum.voters", 1)],
        )?;
        let voters = rill_broker::Voters::parse(&voters).map_err(|why| anyhow::anyhow!(why))?;
        let controller_listen = s.get(
            "controller_listen",
            self.controller_listen.clone(),
            // Kafka's combined mode: `listeners = "PLAINTEXT://...,CONTROLLER://..."`.
            &[("rill.controller.listen", 1), ("listeners", 1)],
        )?;
        let broker_session_timeout_ms = s.get(
            "broker_session_timeout_ms",
            self.broker_session_timeout_ms,
            &[("broker.session.timeout.ms", 1)],
        )?;
        let replica_lag_time_max_ms = s.get(
            "replica_lag_time_max_ms",
            self.replica_lag_time_max_ms,
            &[("replica.lag.time.max.ms", 1)],
        )?;
        if broker_session_timeout_ms < 100 {
            anyhow::bail!(
                "broker.session.timeout.ms (--broker-session-timeout-ms) must be at least 100, \
                 got {broker_session_timeout_ms}"
            );
        }
        let metadata_snapshot_bytes = s.get(
            "metadata_log_max_record_bytes_between_snapshots",
            self.metadata_log_max_record_bytes_between_snapshots,
            &[("metadata.log.max.record.bytes.between.snapshots", 1)],
        )?;
        if metadata_snapshot_bytes < 1024 {
            anyhow::bail!(
                "metadata.log.max.record.bytes.between.snapshots must be at least 1024, got \
                 {metadata_snapshot_bytes}"
            );
        }
        if !voters.is_empty() && !voters.contains(node_id) {
            anyhow::bail!(
                "node.id (--node-id) {node_id} is not one of controller.quorum.voters ({voters})"
            );
        }
        let sasl_mechanisms = s.get(
            "sasl_enabled_mechanisms",
            self.sasl_enabled_mechanisms.clone(),
            &[("sasl.enabled.mechanisms", 1)],
        )?;
        let sasl_mechanisms = settings::sasl_mechanisms(&sasl_mechanisms)
            .map_err(|why| anyhow::anyhow!("sasl.enabled.mechanisms: {why}"))?;
        let max_reauth_ms = s.get(
            "connections_max_reauth_ms",
            self.connections_max_reauth_ms,
            &[("connections.max.reauth.ms", 1)],
        )?;
        let sasl_timeout_ms = s.get(
            "sasl_authentication_timeout_ms",
            self.sasl_authentication_timeout_ms,
            &[("rill.sasl.authentication.timeout.ms", 1)],
        )?;
        if sasl_timeout_ms < 1 {
            anyhow::bail!("rill.sasl.authentication.timeout.ms must be at least 1");
        }
        let admin_listen = s.get(
            "admin_listen",
            self.admin_listen,
            &[("rill.admin.listen", 1)],
        )?;
        let admin_tls = s.get("admin_tls", self.admin_tls, &[("rill.admin.tls", 1)])?;
        let admin_token = s.get(
            "admin_token",
            self.admin_token.clone(),
            &[("rill.admin.token", 1)],
        )?;
        s.check_unused()?;

        let flush = match (flush_messages, flush_ms) {
            (Some(_), Some(_)) => anyhow::bail!(
                "set one of log.flush.interval.messages (--flush-messages) and \
                 log.flush.interval.ms (--flush-ms), not both"
            ),
            (Some(0), _) => {
                anyhow::bail!("log.flush.interval.messages (--flush-messages) must be at least 1")
            }
            (Some(n), _) => FlushPolicy::Messages(n),
            (None, Some(0)) => FlushPolicy::EveryAppend,
            (None, Some(ms)) => FlushPolicy::Interval(Duration::from_millis(ms)),
            (None, None) => FlushPolicy::Never,
        };
        let mut listeners =
            kafka_listeners(listen, ssl_listen, &protocol_map, advertise.as_deref())?;
        for (name, address, tls) in [("MQTT", mqtt_listen, false), ("MQTTS", mqtts_listen, true)] {
            if let Some(address) = address {
                listeners.push(KafkaListener {
                    name: name.to_owned(),
                    address,
                    tls,
                    sasl: false,
                    advertised: None,
                    protocol: rill_broker::Protocol::Mqtt,
                });
            }
        }
        // MQTT's largest remaining length: 268,435,455.
        let max_packet_size = u32::try_from(mqtt_max_packet_size)
            .ok()
            .filter(|n| (2..=268_435_455).contains(n))
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "rill.mqtt.max.packet.size must be 2 to 268435455, got {mqtt_max_packet_size}"
                )
            })?;
        let mqtt = rill_broker::MqttConfig {
            max_packet_size,
            connect_timeout: Duration::from_millis(mqtt_connect_timeout_ms.max(1)),
            topic_map: mqtt_topic_map
                .as_deref()
                .map(topic_map)
                .transpose()?
                .unwrap_or_default(),
            ..rill_broker::MqttConfig::default()
        };
        for (key, kind) in [
            ("ssl.keystore.type", &ssl_keystore_type),
            ("ssl.truststore.type", &ssl_truststore_type),
        ] {
            if !kind.eq_ignore_ascii_case("PEM") {
                anyhow::bail!("{key} must be PEM (the one store format served), got '{kind}'");
            }
        }
        let client_auth = ssl_client_auth
            .parse::<rill_broker::ClientAuth>()
            .map_err(|why| anyhow::anyhow!("{why} (--ssl-client-auth)"))?;
        if admin_tls && ssl_keystore.is_none() {
            anyhow::bail!(
                "rill.admin.tls (--admin-tls) serves the SSL listeners' certificate: set \
                 ssl.keystore.location (--ssl-keystore)"
            );
        }
        if listeners.iter().any(|l| l.tls) && ssl_keystore.is_none() {
            anyhow::bail!(
                "an SSL listener needs ssl.keystore.location (--ssl-keystore): a PEM file with \
                 the private key and the certificate chain"
            );
        }
        let tls_files = TlsFiles {
            keystore: ssl_keystore.map(PathBuf::from),
            truststore: ssl_truststore.map(PathBuf::from),
            client_auth,
            reload_interval: Duration::from_millis(ssl_reload_interval_ms),
        };
        if num_partitions < 1 {
            anyhow::bail!(
                "num.partitions (--num-partitions) must be at least 1, got {num_partitions}"
            );
        }
        if min_insync_replicas < 1 {
            anyhow::bail!(
                "min.insync.replicas (--min-insync-replicas) must be at least 1, got \
                 {min_insync_replicas}"
            );
        }
        if offsets_topic_num_partitions < 1 {
            anyhow::bail!(
                "offsets.topic.num.partitions (--offsets-topic-num-partitions) must be at least 1, \
                 got {offsets_topic_num_partitions}"
            );
        }
        for (value, name, flag) in [
            (
                transaction_state_log_num_partitions,
                "transaction.state.log.num.partitions",
                "--transaction-state-log-num-partitions",
            ),
            (
                transaction_state_log_replication_factor,
                "transaction.state.log.replication.factor",
                "--transaction-state-log-replication-factor",
            ),
            (
                transaction_max_timeout_ms,
                "transaction.max.timeout.ms",
                "--transaction-max-timeout-ms",
            ),
        ] {
            if value < 1 {
                anyhow::bail!("{name} ({flag}) must be at least 1, got {value}");
            }
        }
        if !(0..=2).contains(&transaction_version) {
            anyhow::bail!(
                "transaction.version (--transaction-version) must be 0, 1 or 2, got \
                 {transaction_version}"
            );
        }
        if offsets_topic_replication_factor < 1 {
            anyhow::bail!(
                "offsets.topic.replication.factor (--offsets-topic-replication-factor) must be at \
                 least 1, got {offsets_topic_replication_factor}"
            );
        }
        let ack_durability = match ack_durability.as_str() {
            "fsync" => AckDurability::Fsync,
            "page-cache" => AckDurability::PageCache,
            other => anyhow::bail!(
                "rill.ack.durability (--ack-durability) must be fsync or page-cache, got '{other}'"
            ),
        };
        let defaults = BrokerConfig::default();
        let config = BrokerConfig {
            data_dir,
            node_id,
            rack,
            num_partitions,
            auto_create_topics,
            log: rill_log::LogConfig {
                segment_bytes,
                segment_ms,
                retention_ms,
                retention_bytes,
                flush,
                ..defaults.log.clone()
            },
            max_message_bytes,
            min_insync_replicas,
            max_request_bytes,
            ack_durability,
            retention_check_interval: Duration::from_millis(retention_check_ms.max(1)),
            group_initial_rebalance_delay: Duration::from_millis(group_initial_rebalance_delay_ms),
            group_session_timeout_range: (
                Duration::from_millis(group_min_session_timeout_ms),
                Duration::from_millis(group_max_session_timeout_ms),
            ),
            offsets_retention: Duration::from_secs(offsets_retention_minutes.saturating_mul(60)),
            offsets_partitions: offsets_topic_num_partitions,
            offsets_replication_factor: offsets_topic_replication_factor,
            transaction_partitions: transaction_state_log_num_partitions,
            transaction_replication_factor: transaction_state_log_replication_factor,
            transaction_max_timeout_ms,
            transaction_version,
            storage_threads,
            cleaner: rill_broker::CleanerConfig {
                enable: log_cleaner_enable,
                threads: log_cleaner_threads,
                dedupe_buffer_size: log_cleaner_dedupe_buffer_size,
                io_max_bytes_per_second: match log_cleaner_io_max_bytes_per_second {
                    0 => f64::INFINITY,
                    n => n as f64,
                },
                backoff: Duration::from_millis(log_cleaner_backoff_ms.max(1)),
            },
            max_open_files,
            max_partitions,
            voters,
            controller_listen: controller_listen.map(|c| c.0),
            broker_session_timeout: Duration::from_millis(broker_session_timeout_ms),
            replica_lag_time_max: Duration::from_millis(replica_lag_time_max_ms),
            metadata_snapshot_bytes,
            sasl: rill_broker::SaslConfig {
                mechanisms: sasl_mechanisms,
                max_reauth: (max_reauth_ms > 0).then(|| Duration::from_millis(max_reauth_ms)),
                timeout: Duration::from_millis(sasl_timeout_ms),
            },
            // Only from the flag or its environment variable: a password in a config file
            // would sit on disk in the clear.
            bootstrap_user: self.bootstrap_user.clone(),
            authorizer,
            mqtt,
            ..defaults
        };
        config.log.validate().context("invalid log settings")?;
        let admin = AdminSettings {
            listen: admin_listen.0,
            tls: admin_tls,
            token: admin_token,
        };
        Ok(((listeners, tls_files, admin), config, s))
    }

    pub(crate) fn run(self, matches: &clap::ArgMatches) -> anyhow::Result<()> {
        let ((listen, tls_files, admin_settings), config, sources) = self.config(matches)?;
        if self.print_config {
            let mut out = std::io::stdout().lock();
            return match out.write_all(sources.render().as_bytes()) {
                Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => {
                    Err(err).context("writing to stdout")
                }
                _ => Ok(()),
            };
        }
        drop(sources);
        // Each client connection is a file descriptor; the usual soft limit of 1024 would
        // refuse clients long before memory or CPU run out (Go's runtime raises it the same way).
        match rlimit::increase_nofile_limit(u64::MAX) {
            Ok(limit) => tracing::debug!(limit, "open file limit"),
            Err(err) => tracing::warn!(%err, "could not raise the open file limit"),
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("rill-net")
            // Blocking work (opening the data dir, topic changes) comes in short bursts; an idle
            // broker should not keep those threads (and their stacks and malloc arenas) around.
            .thread_keep_alive(Duration::from_secs(1))
            .build()
            .context("starting the runtime")?;
        runtime.block_on(async move {
            let shutdown = crate::cli::shutdown_signal();
            let tls = match (
                &tls_files.keystore,
                admin_settings.tls || listen.iter().any(|l| l.tls),
            ) {
                (Some(keystore), true) => Some(rill_broker::TlsConfig::from_pem(
                    keystore,
                    tls_files.truststore.as_deref(),
                    tls_files.client_auth,
                )?),
                _ => None,
            };
            if let Some(tls) = &tls {
                drop(tokio::spawn(reload_tls(
                    tls.clone(),
                    tls_files.reload_interval,
                )));
            }
            let mut listeners = Vec::with_capacity(listen.len());
            let mut locals = Vec::with_capacity(listen.len());
            for l in listen {
                let socket = tokio::net::TcpListener::bind(l.address)
                    .await
                    .with_context(|| format!("cannot listen on {} ({})", l.address, l.name))?;
                let security = match (l.tls, l.sasl) {
                    (false, false) => "",
                    (true, false) => " (TLS)",
                    (false, true) => " (SASL)",
                    (true, true) => " (SASL over TLS)",
                };
                locals.push((
                    l.name.clone(),
                    socket.local_addr().context("listener address")?,
                    security,
                ));
                listeners.push(rill_broker::Listener {
                    name: l.name,
                    socket,
                    tls: if l.tls { tls.clone() } else { None },
                    sasl: l.sasl,
                    advertised: l.advertised,
                    protocol: l.protocol,
                });
            }
            let admin = match admin_settings.listen {
                None => None,
                Some(addr) => Some(rill_broker::AdminListener {
                    socket: tokio::net::TcpListener::bind(addr)
                        .await
                        .with_context(|| format!("cannot listen for admin http on {addr}"))?,
                    tls: if admin_settings.tls {
                        tls.clone()
                    } else {
                        None
                    },
                    token: admin_settings.token.map(|t| t.0),
                }),
            };
            let admin_local = match &admin {
                None => None,
                Some(admin) => Some((
                    admin
                        .socket
                        .local_addr()
                        .context("admin listener address")?,
                    admin.tls.is_some(),
                )),
            };
            print_banner(&config, &locals, admin_local);
            rill_broker::run(config, listeners, admin, shutdown).await?;
            Ok(())
        })
    }
}

/// Reloads the TLS files on SIGHUP and, every `interval` (unless zero), when they changed. A
/// failed reload keeps the certificates served until then and logs why.
async fn reload_tls(tls: rill_broker::TlsConfig, interval: Duration) {
    use tokio::signal::unix::{SignalKind, signal};
    // Only SIGHUP is taken over here: SIGINT and SIGTERM still stop the broker
    // (`cli::shutdown_signal`).
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(hangup) => Some(hangup),
        Err(err) => {
            tracing::warn!(%err, "cannot listen for SIGHUP: TLS files reload only when they change");
            None
        }
    };
    // With no interval the timer is there but never selected.
    let mut every = tokio::time::interval(interval.max(Duration::from_millis(1)));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let _ = every.tick().await;
    loop {
        let forced = tokio::select! {
            Some(()) = async { hangup.as_mut()?.recv().await } => true,
            _ = every.tick(), if !interval.is_zero() => false,
            else => return,
        };
        let tls = tls.clone();
        let reloaded = tokio::task::spawn_blocking(move || {
            if forced {
                Some(tls.reload())
            } else {
                tls.reload_if_changed()
            }
        })
        .await;
        match reloaded {
            Ok(Some(Ok(()))) => tracing::info!(
                trigger = if forced { "SIGHUP" } else { "files changed" },
                "TLS keystore and truststore reloaded: new connections get them"
            ),
            Ok(Some(Err(err))) => tracing::error!(
                %err,
                "TLS reload failed: still serving the certificates loaded before"
            ),
            Ok(None) => {}
            Err(err) => tracing::error!(%err, "TLS reload failed"),
        }
    }
}

/// The Kafka listeners: `listeners` plus `rill.ssl.listen`'s SSL one, each with its security
/// protocol from `listener.security.protocol.map` and its `advertised.listeners` entry.
fn kafka_listeners(
    listen: settings::KafkaListeners,
    ssl_listen: Option<SocketAddr>,
    protocol_map: &str,
    advertise: Option<&str>,
) -> anyhow::Result<Vec<KafkaListener>> {
    let mut named = listen.0;
    if let Some(address) = ssl_listen {
        if named.iter().any(|(name, _)| name == "SSL") {
            anyhow::bail!(
                "listeners has an SSL listener already: drop rill.ssl.listen (--ssl-listen)"
            );
        }
        named.push(("SSL".to_owned(), address));
    }
    let map = settings::protocol_map(protocol_map)
        .map_err(|why| anyhow::anyhow!("listener.security.protocol.map: {why}"))?;
    let advertised = match advertise {
        None => Vec::new(),
        Some(text) => settings::advertised_listeners(text)
            .map_err(|why| anyhow::anyhow!("advertised.listeners (--advertise): {why}"))?,
    };
    let mut listeners = Vec::with_capacity(named.len());
    for (name, address) in named {
        let Some((_, protocol)) = map.iter().find(|(n, _)| *n == name) else {
            anyhow::bail!(
                "listeners: {name} has no security protocol in listener.security.protocol.map"
            );
        };
        let (tls, sasl) = match protocol.as_str() {
            "PLAINTEXT" => (false, false),
            "SSL" => (true, false),
            "SASL_PLAINTEXT" => (false, true),
            _ => (true, true),
        };
        listeners.push(KafkaListener {
            name,
            address,
            tls,
            sasl,
            advertised: None,
            protocol: rill_broker::Protocol::Kafka,
        });
    }
    for (i, (name, host, port)) in advertised.into_iter().enumerate() {
        let listener = match &name {
            None if i == 0 => listeners.first_mut(),
            None => anyhow::bail!(
                "advertised.listeners (--advertise): name each entry NAME://host:port when there \
                 are several"
            ),
            Some(name) => listeners.iter_mut().find(|l| l.name == *name),
        };
        let Some(listener) = listener else {
            anyhow::bail!(
                "advertised.listeners (--advertise) names {}, which is not in listeners",
                name.unwrap_or_default()
            );
        };
        listener.advertised = Some((host, port));
    }
    Ok(listeners)
}

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 3_600_000;

/// What a person needs to know at start: where, and what survives what.
fn print_banner(
    config: &BrokerConfig,
    listeners: &[(String, SocketAddr, &str)],
    admin: Option<(SocketAddr, bool)>,
) {
    let acks_all = match config.ack_durability {
        _ if config.min_insync_replicas > 1 => {
            "refused with NOT_ENOUGH_REPLICAS (min.insync.replicas > 1, one replica) on topics \
             that do not lower it"
        }
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
    // The first line names the first listener, as before named listeners.
    if let Some((_, local, _)) = listeners.first() {
        println!("rill {} listening on {local}", env!("CARGO_PKG_VERSION"));
    }
    if listeners.len() > 1 {
        for (name, local, security) in listeners {
            println!("  listener:    {name}://{local}{security}");
        }
    }
    match admin {
        Some((admin, false)) => println!("  admin http:  http://{admin}"),
        Some((admin, true)) => println!("  admin http:  https://{admin}"),
        None => println!("  admin http:  off (--admin-listen none)"),
    }
    println!("  data dir:    {}", config.data_dir.display());
    println!("  acks=all:    {acks_all}");
    println!("  acks=1:      answered after the write (survives a process crash)");
    println!("  flush:       {flush}");
    println!(
        "  storage:     {} threads, at most {} segment files open, {} partitions",
        config.storage_threads(),
        config.max_open_files(),
        config.max_partitions
    );
}
