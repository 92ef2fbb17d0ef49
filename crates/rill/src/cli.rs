//! What the subcommands share: the `-b/--bootstrap` flag, the runtime, logging and how an error
//! is shown to a person.

use std::future::Future;

use anyhow::Context as _;

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
        visible_alias = "bootstrap-server"
    )]
    pub(crate) brokers: Vec<String>,
}

impl Bootstrap {
    /// A client configuration for these brokers.
    pub(crate) fn client_config(&self) -> rill_client::ClientConfig {
        let mut config = rill_client::ClientConfig::new(self.brokers.iter().cloned());
        config.connection.client_id = "rill-cli".to_owned();
        config
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
