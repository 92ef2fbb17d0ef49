//! The `rill` command line.

use clap::Parser;

/// Rill: a Kafka-compatible event-streaming broker, client and command-line tool.
///
/// The broker (`rill serve`) and the client subcommands are on their way; this build carries the
/// storage engine (crate `rill-log`) and the record format (crate `rill-record`).
#[derive(Debug, Parser)]
#[command(name = "rill", version, about, long_about)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    Ok(())
}
