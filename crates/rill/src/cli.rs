//! What the subcommands share: the `-b/--bootstrap` flag and the first connection, the
//! runtime, logging, value parsers, aligned tables, stdout that tolerates a closed pipe, and
//! how an error is shown to a person.

use std::future::Future;
use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use rill_client::kafka_protocol::messages::MetadataRequest;
use rill_client::{ClientConfig, ClientError, Cluster};

mod errors;
mod properties;
mod table;

pub(crate) use errors::{Explain, code_words, explain, topic_error};
pub(crate) use table::Table;

/// How long the CLI waits for a TCP connect plus the `ApiVersions` exchange before it calls a
/// broker unreachable. Short, so that a wrong address is reported in seconds, not after the
/// library's 10 s default (and then retries).
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the client subcommands find the cluster.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Bootstrap {
    /// Broker(s) to ask first, `host:port[,host:port...]` (Kafka's bootstrap.servers; kcat's -b).
    #[arg(
        short = 'b',
        long = "bootstrap",
        env = "RILL_BOOTSTRAP",
        default_value = "127.0.0.1:9092",
        value_delimiter = ',',
        visible_alias = "bootstrap-server",
        global = true
    )]
    pub(crate) brokers: Vec<String>,

    /// Client properties from a Java-properties file, as Kafka's tools take them:
    /// security.protocol, ssl.*, sasl.* (see -X).
    #[arg(long = "command-config", value_name = "FILE", global = true)]
    pub(crate) command_config: Option<std::path::PathBuf>,

    /// A client property, KEY=VALUE, repeatable (kcat's -X); beats --command-config:
    /// security.protocol (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL), ssl.ca.location,
    /// ssl.certificate.location, ssl.key.location, ssl.keystore.location,
    /// ssl.endpoint.identification.algorithm, sasl.mechanism, sasl.username, sasl.password,
    /// sasl.jaas.config, client.id; for `rill consume`, isolation.level.
    #[arg(
        short = 'X',
        value_name = "KEY=VALUE",
        value_parser = key_value,
        global = true
    )]
    pub(crate) properties: Vec<(String, String)>,
}

impl Bootstrap {
    /// A client configuration for these brokers, with the CLI's short connect timeout. Its
    /// metadata requests may create topics (the broker's `auto.create.topics.enable`), as a
    /// Kafka producer's do; commands that only read use [`Bootstrap::read_only_config`].
    pub(crate) fn client_config(&self) -> anyhow::Result<ClientConfig> {
        Ok(self.client_config_taking(&[])?.0)
    }

    /// [`Bootstrap::client_config`], taking the properties named in `own` (a command's own,
    /// such as `rill consume`'s isolation.level) out of -X and --command-config rather than
    /// refusing them: their values, the last of each key winning.
    pub(crate) fn client_config_taking(
        &self,
        own: &[&str],
    ) -> anyhow::Result<(ClientConfig, Vec<(String, String)>)> {
        let mut config = ClientConfig::new(self.brokers.iter().cloned());
        config.connection.client_id = "rill-cli".to_owned();
        config.connection.connect_timeout = CONNECT_TIMEOUT;
        let mut props = match &self.command_config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("--command-config {}", path.display()))?;
                properties::parse(&text)
                    .map_err(|why| anyhow::anyhow!("--command-config {}: {why}", path.display()))?
            }
            None => Vec::new(),
        };
        props.extend(self.properties.iter().cloned());
        // client.id is the one property outside security taken here; the rest are TLS and SASL.
        if let Some(pos) = props.iter().rposition(|(k, _)| k == "client.id") {
            config.connection.client_id = props[pos].1.clone();
        }
        props.retain(|(k, _)| k != "client.id");
        let (taken, props): (Vec<_>, Vec<_>) = props
            .into_iter()
            .partition(|(k, _)| own.contains(&k.as_str()));
        config.connection.security = rill_client::Security::from_properties(props)
            .map_err(|err| anyhow::anyhow!("{}", explain(&err)))?;
        Ok((config, taken))
    }

    /// [`Bootstrap::client_config`] whose metadata requests never create a topic, so that
    /// asking about a missing topic says so instead of creating it.
    pub(crate) fn read_only_config(&self) -> anyhow::Result<ClientConfig> {
        Ok(self.read_only_config_taking(&[])?.0)
    }

    /// [`Bootstrap::read_only_config`], taking the properties named in `own` as
    /// [`Bootstrap::client_config_taking`] does.
    pub(crate) fn read_only_config_taking(
        &self,
        own: &[&str],
    ) -> anyhow::Result<(ClientConfig, Vec<(String, String)>)> {
        let (mut config, taken) = self.client_config_taking(own)?;
        config.allow_auto_topic_creation = false;
        Ok((config, taken))
    }

    /// A [`Cluster`] on `config` with a connection to the first bootstrap broker that answers,
    /// or, when none does, the error a person can act on: `no broker answered at
    /// 127.0.0.1:9092 (connection refused)`. Done once up front so that a wrong address fails
    /// within [`CONNECT_TIMEOUT`] instead of inside the clients' retry loops.
    pub(crate) async fn connect(&self, config: ClientConfig) -> anyhow::Result<Arc<Cluster>> {
        let cluster = Arc::new(Cluster::new(config));
        let mut failures = Vec::new();
        for addr in &self.brokers {
            match cluster.connection(addr).await {
                Ok(conn) => {
                    // A listener that wants SASL answers ApiVersions, then closes a client
                    // that skips authentication: one small request finds that out now rather
                    // than after the clients' retries.
                    let probe = MetadataRequest::default().with_topics(Some(Vec::new()));
                    match conn.request(probe).await {
                        Err(err @ ClientError::ConnectionClosed { .. }) => {
                            anyhow::bail!("{}", explain(&err))
                        }
                        _ => return Ok(cluster),
                    }
                }
                // The broker answered, and refused us: retrying elsewhere will not help.
                Err(err @ (ClientError::Authentication { .. } | ClientError::Config(_))) => {
                    anyhow::bail!("{}", explain(&err))
                }
                Err(err) => {
                    tracing::debug!(%addr, %err, "bootstrap broker did not answer");
                    failures.push(format!("{addr} ({})", why_unreachable(&err)));
                }
            }
        }
        anyhow::bail!("no broker answered at {}", failures.join(", "))
    }
}

/// Why a connection attempt failed, in a few words: `connection refused`, `no answer within
/// 5s`.
fn why_unreachable(err: &ClientError) -> String {
    match err {
        ClientError::Io { source, .. } => match source.kind() {
            std::io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
            std::io::ErrorKind::TimedOut => "timed out".to_owned(),
            std::io::ErrorKind::ConnectionReset => "connection reset".to_owned(),
            // rustls reports a refused certificate or a broken handshake as invalid data.
            std::io::ErrorKind::InvalidData => format!("TLS handshake failed: {source}"),
            _ => source.to_string(),
        },
        ClientError::Timeout { after, .. } => format!("no answer within {after:?}"),
        other => explain(other),
    }
}

/// Runs `work` to completion on a multi-threaded runtime of its own.
pub(crate) fn block_on<F: Future>(work: F) -> anyhow::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    Ok(runtime.block_on(work))
}

/// Installs the tracing subscriber on stderr. `RILL_LOG` overrides the level (`info` for the
/// broker, `warn` for the client subcommands, whose output is their stdout).
pub(crate) fn install_logging(format: &str, command: &super::Command) {
    let default = match command {
        super::Command::Serve(_) => "info",
        _ => "warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("RILL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .init();
    } else {
        builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
}

/// Prints an error on one line, with its causes: `rill: error: what: why: root cause`.
pub(crate) fn report(err: &anyhow::Error) {
    eprintln!("rill: error: {err:#}");
}

/// Writes `text` to stdout and flushes it. A reader that went away (`rill topic list | head
/// -1`) is not an error: there is nobody left to tell.
pub(crate) fn print(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(err).context("writing to stdout")
        }
        _ => Ok(()),
    }
}

/// Parses `k=v` (`--config`, `--header`): the key is what comes before the first `=` and must
/// not be empty; the value may be.
pub(crate) fn key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expects k=v, got '{text}'")),
    }
}

/// Parses a point in time: milliseconds since the epoch (`1714560000000`) or an RFC 3339
/// time with its offset (`2024-05-01T12:00:00Z`, `2024-05-01T14:00:00+02:00`).
pub(crate) fn timestamp_ms(text: &str) -> Result<i64, String> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse()
            .map_err(|_| format!("timestamp '{text}' is too large"));
    }
    text.parse::<jiff::Timestamp>()
        .map(jiff::Timestamp::as_millisecond)
        .map_err(|_| {
            format!(
                "expects milliseconds since the epoch or an RFC 3339 time \
                 (2024-05-01T12:00:00Z), got '{text}'"
            )
        })
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM: how `rill serve` and `rill consume` are stopped.
pub(crate) fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    // Registered now, not at the first poll: a signal that comes while the broker is still
    // starting (joining its cluster) must stop it cleanly, not kill it.
    let terminate = signal(SignalKind::terminate());
    let interrupt = signal(SignalKind::interrupt());
    async move {
        let wait = |registered: std::io::Result<tokio::signal::unix::Signal>,
                    name: &'static str| async move {
            match registered {
                Ok(mut signal) => {
                    let _ = signal.recv().await;
                }
                Err(err) => {
                    tracing::warn!(%err, "cannot listen for {name}");
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::select! {
            () = wait(interrupt, "SIGINT") => {}
            () = wait(terminate, "SIGTERM") => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{key_value, timestamp_ms};

    #[test]
    fn key_values_split_at_the_first_equals_sign() {
        assert_eq!(
            key_value("retention.ms=1000"),
            Ok(("retention.ms".into(), "1000".into()))
        );
        assert_eq!(key_value("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert_eq!(key_value("empty="), Ok(("empty".into(), String::new())));
        assert_eq!(key_value("x"), Err("expects k=v, got 'x'".into()));
        assert!(key_value("=v").is_err());
    }

    #[test]
    fn timestamps_are_millis_or_rfc3339() {
        assert_eq!(timestamp_ms("1714564800000"), Ok(1_714_564_800_000));
        assert_eq!(timestamp_ms("2024-05-01T12:00:00Z"), Ok(1_714_564_800_000));
        assert_eq!(
            timestamp_ms("2024-05-01T14:00:00.5+02:00"),
            Ok(1_714_564_800_500)
        );
        assert!(timestamp_ms("yesterday").is_err());
        assert!(timestamp_ms("-5").is_err());
        assert!(timestamp_ms("").is_err());
    }
}
