//! The `rill` command line: a thin layer over the library crates.

mod alloc;
mod serve;

#[global_allocator]
static ALLOCATOR: alloc::Allocator = alloc::Allocator;

use clap::{Parser, Subcommand};

/// Rill: a Kafka-compatible event-streaming broker, client and command-line tool.
///
/// One binary, no ZooKeeper, no JVM, no configuration needed: `rill serve` starts a broker that
/// any Kafka client can talk to.
#[derive(Debug, Parser)]
#[command(name = "rill", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a broker (Kafka protocol on --listen, data in --data-dir).
    Serve(serve::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RILL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match cli.command {
        Command::Serve(args) => args.run(),
    }
}
