//! The `rill` command line: a thin layer over the library crates.
//!
//! Each subcommand is an `Args` struct with a `run()` in its own module. The client subcommands
//! (`topic`, `produce`, `consume`, `group`, `bench`, `cluster`, `user`, `acl`, `log-dirs`) are
//! built on `rill-client` and share [`cli::Bootstrap`].

mod acl;
mod alloc;
mod bench;
mod cli;
mod cluster;
mod consume;
mod group;
mod log_dirs;
mod produce;
mod serve;
mod topic;
mod user;

#[global_allocator]
static ALLOCATOR: alloc::Allocator = alloc::Allocator;

use clap::{Parser, Subcommand};

/// Rill: a Kafka-compatible event-streaming broker, client and command-line tool.
///
/// One binary, no ZooKeeper, no JVM, no configuration needed: `rill serve` starts a broker that
/// any Kafka client can talk to; the other subcommands are clients for any Kafka-compatible
/// broker (kcat, kafka-topics.sh, kafka-consumer-groups.sh and the perf-test tools in one).
#[derive(Debug, Parser)]
#[command(name = "rill", version, about, long_about)]
struct Cli {
    /// Log format on stderr: `text` for people, `json` for log collectors (one object a line).
    #[arg(
        long,
        global = true,
        env = "RILL_LOG_FORMAT",
        default_value = "text",
        value_parser = ["text", "json"]
    )]
    log_format: String,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a broker (Kafka protocol on --listen, data in --data-dir).
    Serve(Box<serve::Args>),
    /// Create, list, describe, alter and delete topics, and move their partitions.
    Topic(topic::Args),
    /// Write records read line by line from stdin or a file.
    Produce(produce::Args),
    /// Read records and print them, one a line.
    Consume(consume::Args),
    /// List, describe, reset and delete consumer groups.
    Group(group::Args),
    /// Measure throughput and latency: produce, consume, or end to end.
    Bench(bench::Args),
    /// Show the cluster: its brokers and its metadata quorum.
    Cluster(cluster::Args),
    /// Add, list and delete users' SCRAM credentials.
    User(user::Args),
    /// Add, list and delete ACLs.
    Acl(acl::Args),
    /// Show each broker's data directories: the partitions held there, their size and lag.
    LogDirs(log_dirs::Args),
}

fn main() -> std::process::ExitCode {
    // The matches are kept: `serve` asks them where each value came from (flag, environment or
    // default) to layer its config file under them.
    let matches = <Cli as clap::CommandFactory>::command().get_matches();
    let cli = match <Cli as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(err) => err.exit(),
    };
    cli::install_logging(&cli.log_format, &cli.command);
    let result = match cli.command {
        Command::Serve(args) => match matches.subcommand_matches("serve") {
            Some(serve) => args.run(serve),
            None => Err(anyhow::anyhow!("internal: no matches for serve")),
        },
        Command::Topic(args) => args.run(),
        Command::Produce(args) => args.run(),
        Command::Consume(args) => args.run(),
        Command::Group(args) => args.run(),
        Command::Bench(args) => args.run(),
        Command::Cluster(args) => args.run(),
        Command::User(args) => args.run(),
        Command::Acl(args) => args.run(),
        Command::LogDirs(args) => args.run(),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            cli::report(&err);
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    /// clap checks a subcommand's flags only when it runs; this checks them all (two flags of
    /// one subcommand with the same name panic at run time otherwise).
    #[test]
    fn every_subcommand_is_well_formed() {
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}
