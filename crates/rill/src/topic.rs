//! `rill topic`: create, list, describe, alter and delete topics (kafka-topics.sh and the
//! topic half of kafka-configs.sh), elect their partitions' leaders and move their replicas.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use base64::Engine as _;
use rill_client::{
    Admin, AdminConfig, AlterConfigOp, ConfigEntry, ConfigSource, ElectionType, NewTopic,
    OffsetSpec, TopicDescription,
};

use crate::cli::{self, Explain as _, Table, topic_error};

mod reassign;

/// Create, list, describe, alter and delete topics, and move their partitions.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  rill topic create orders -p 6 -c retention.ms=86400000
  rill topic list
  rill topic describe orders
  rill topic alter orders --partitions 12 --config retention.ms=3600000 --delete-config segment.bytes
  rill topic elect-leaders orders 0
  rill topic reassign orders --partition 0 --replicas 2,3,4
  rill topic reassignments
  rill topic delete orders")]
pub(crate) struct Args {
    #[command(flatten)]
    bootstrap: cli::Bootstrap,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Create a topic.
    #[command(after_help = "\
Examples:
  rill topic create orders                      # the broker's default partition count
  rill topic create orders -p 6 -c retention.ms=86400000 -c segment.bytes=104857600")]
    Create(Create),
    /// List topics: name and partition count (internal topics with --all).
    List(List),
    /// Describe topics: id, partitions (leader, replicas, in-sync replicas, log start and end
    /// offsets) and configs with where each value comes from (overrides marked `*`).
    #[command(after_help = "Example:\n  rill topic describe orders audit")]
    Describe(Describe),
    /// Add partitions, or set or remove config overrides.
    #[command(after_help = "\
Examples:
  rill topic alter orders --partitions 12
  rill topic alter orders --config retention.ms=3600000 --delete-config segment.bytes")]
    Alter(Alter),
    /// Delete topics and all their records.
    #[command(after_help = "Example:\n  rill topic delete orders audit")]
    Delete(Delete),
    /// Move replicated partitions' leadership back to their preferred (first) replicas
    /// (kafka-leader-election.sh): of one partition, of every partition of a topic, or of every
    /// partition of every topic.
    #[command(after_help = "\
Examples:
  rill topic elect-leaders                      # every partition that needs it
  rill topic elect-leaders orders               # every partition of orders
  rill topic elect-leaders orders 0")]
    ElectLeaders(ElectLeaders),
    /// Move partitions to other brokers (kafka-reassign-partitions.sh), or cancel a move under
    /// way. Only replicated partitions (of topics created with a replication factor above 1)
    /// can move.
    #[command(after_help = "\
Examples:
  rill topic reassign orders --partition 0 --replicas 2,3,4
  rill topic reassign orders --partitions 0,1 --replicas 1,2,3
  rill topic reassign orders --partition 0 --cancel")]
    Reassign(reassign::Reassign),
    /// Show the partition moves under way: each partition's replicas while it moves, those
    /// being added and those being removed.
    #[command(after_help = "\
Examples:
  rill topic reassignments                      # every topic's
  rill topic reassignments orders")]
    Reassignments(reassign::Reassignments),
}

#[derive(Debug, clap::Args)]
struct Create {
    /// The topic's name.
    name: String,
    /// Partition count; -1 (the default) takes the broker's num.partitions.
    #[arg(
        short = 'p',
        long,
        env = "RILL_TOPIC_PARTITIONS",
        default_value_t = -1,
        allow_negative_numbers = true
    )]
    partitions: i32,
    /// Copies of each partition; -1 (the default) takes the broker's default (a Rill broker
    /// keeps exactly one).
    #[arg(
        short = 'r',
        long,
        env = "RILL_TOPIC_REPLICATION_FACTOR",
        default_value_t = -1,
        allow_negative_numbers = true
    )]
    replication_factor: i16,
    /// A topic config, `name=value` (repeatable), e.g. `-c retention.ms=86400000`.
    #[arg(
        short = 'c',
        long = "config",
        env = "RILL_TOPIC_CONFIG",
        value_name = "K=V",
        value_parser = cli::key_value,
        value_delimiter = ';'
    )]
    configs: Vec<(String, String)>,
}

#[derive(Debug, clap::Args)]
struct List {
    /// Also list internal topics (`__consumer_offsets`, ...).
    #[arg(long, env = "RILL_TOPIC_ALL")]
    all: bool,
}

#[derive(Debug, clap::Args)]
struct Describe {
    /// The topics to describe.
    #[arg(required = true)]
    names: Vec<String>,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("change").required(true).multiple(true)
    .args(["partitions", "configs", "delete_configs"])))]
struct Alter {
    /// The topic to change.
    name: String,
    /// The new partition count, larger than the current one (partitions are never removed;
    /// keys map to other partitions afterwards).
    #[arg(short = 'p', long, env = "RILL_TOPIC_PARTITIONS")]
    partitions: Option<i32>,
    /// Set a config override, `name=value` (repeatable).
    #[arg(
        short = 'c',
        long = "config",
        env = "RILL_TOPIC_CONFIG",
        value_name = "K=V",
        value_parser = cli::key_value,
        value_delimiter = ';'
    )]
    configs: Vec<(String, String)>,
    /// Remove a config override, so the broker's default applies again (repeatable).
    #[arg(
        long = "delete-config",
        env = "RILL_TOPIC_DELETE_CONFIG",
        value_name = "K",
        value_delimiter = ';'
    )]
    delete_configs: Vec<String>,
}

#[derive(Debug, clap::Args)]
struct ElectLeaders {
    /// The topic (every topic if left out).
    topic: Option<String>,
    /// The partition (every partition of the topic if left out).
    partition: Option<i32>,
    /// Ask for an unclean election instead (never needed with Raft-replicated partitions).
    #[arg(long, env = "RILL_TOPIC_UNCLEAN")]
    unclean: bool,
}

#[derive(Debug, clap::Args)]
struct Delete {
    /// The topics to delete.
    #[arg(required = true)]
    names: Vec<String>,
}

impl Args {
    pub(crate) fn run(self) -> anyhow::Result<()> {
        // Input that needs no broker to judge is refused before connecting.
        if let Command::Reassign(args) = &self.command {
            let _ = reassign::moves(args)?;
        }
        cli::block_on(async move {
            let config = self.bootstrap.read_only_config()?;
            let cluster = self.bootstrap.connect(config.clone()).await?;
            let admin = Admin::with_cluster(AdminConfig::new(config), cluster);
            match self.command {
                Command::Create(args) => create(&admin, args).await,
                Command::List(args) => list(&admin, &args).await,
                Command::Describe(args) => describe(&admin, &args.names).await,
                Command::Alter(args) => alter(&admin, args).await,
                Command::Delete(args) => delete(&admin, &args.names).await,
                Command::ElectLeaders(args) => elect_leaders(&admin, args).await,
                Command::Reassign(args) => reassign::reassign(&admin, args).await,
                Command::Reassignments(args) => reassign::reassignments(&admin, args).await,
            }
        })?
    }
}

async fn create(admin: &Admin, args: Create) -> anyhow::Result<()> {
    let mut topic = NewTopic::new(args.name.as_str(), args.partitions)
        .replication_factor(args.replication_factor);
    for (name, value) in args.configs {
        topic = topic.config(name, value);
    }
    let created = admin.create_topic(topic).await.explain()?;
    let mut text = format!("created topic '{}'", args.name);
    if let Some(partitions) = created.num_partitions {
        let _ = write!(text, " with {partitions} partition{}", plural(partitions));
    }
    text.push('\n');
    cli::print(&text)
}

async fn list(admin: &Admin, args: &List) -> anyhow::Result<()> {
    let names: Vec<String> = admin
        .list_topics()
        .await
        .explain()?
        .into_iter()
        .filter(|t| args.all || !t.internal)
        .map(|t| t.name)
        .collect();
    let mut table = Table::new(["TOPIC", "PARTITIONS"]);
    if !names.is_empty() {
        // A topic deleted between the two requests is simply not listed.
        for topic in admin
            .describe_topics(&names)
            .await
            .explain()?
            .into_iter()
            .flatten()
        {
            table.row(vec![topic.name, topic.partitions.len().to_string()]);
        }
    }
    cli::print(&table.render())
}

async fn describe(admin: &Admin, names: &[String]) -> anyhow::Result<()> {
    // Every name is checked before anything is printed: a typo fails the whole command.
    let mut topics = Vec::with_capacity(names.len());
    for (name, result) in names
        .iter()
        .zip(admin.describe_topics(names).await.explain()?)
    {
        topics.push(result.map_err(|err| topic_error(name, &err))?);
    }
    let mut text = String::new();
    for (i, topic) in topics.iter().enumerate() {
        if i > 0 {
            text.push('\n');
        }
        describe_one(admin, topic, &mut text).await?;
    }
    cli::print(&text)
}

async fn describe_one(
    admin: &Admin,
    topic: &TopicDescription,
    text: &mut String,
) -> anyhow::Result<()> {
    let partitions: Vec<(&str, i32)> = topic
        .partitions
        .iter()
        .map(|p| (topic.name.as_str(), p.partition))
        .collect();
    let starts = admin
        .list_offsets(&partitions, OffsetSpec::Earliest)
        .await
        .explain()?;
    let ends = admin
        .list_offsets(&partitions, OffsetSpec::Latest)
        .await
        .explain()?;
    let configs = admin
        .describe_topic_configs(&topic.name)
        .await
        .map_err(|err| topic_error(&topic.name, &err))?;

    let id = topic.topic_id.map_or_else(
        || "-".to_owned(),
        |id| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id),
    );
    let replication = topic.partitions.first().map_or(0, |p| p.replicas.len());
    let policy = configs
        .iter()
        .find(|c| c.name == "cleanup.policy")
        .and_then(|c| c.value.clone())
        .unwrap_or_else(|| "delete".to_owned());
    let _ = writeln!(
        text,
        "topic '{}'  id {id}  partitions {}  replication factor {replication}  cleanup {policy}{}",
        topic.name,
        topic.partitions.len(),
        if topic.internal { "  (internal)" } else { "" },
    );
    text.push('\n');
    // A compacted topic's dirty ratio per partition, from its leader's log cleaner.
    let dirty = if policy.contains("compact") {
        dirty_ratios(admin, topic).await
    } else {
        None
    };
    let mut columns = vec![
        "PARTITION",
        "LEADER",
        "REPLICAS",
        "ISR",
        "LOG-START",
        "LOG-END",
    ];
    if dirty.is_some() {
        columns.push("DIRTY");
    }
    let mut table = Table::with_header(&columns);
    for ((p, start), end) in topic.partitions.iter().zip(starts).zip(ends) {
        let offset = |r: Result<rill_client::ListedOffset, _>| {
            r.map_or_else(|_| "?".to_owned(), |o| o.offset.to_string())
        };
        let mut leader = p
            .leader
            .map_or_else(|| "none".to_owned(), |l| l.to_string());
        if let Some(code) = p.error {
            let _ = write!(leader, " ({code})");
        }
        let mut row = vec![
            p.partition.to_string(),
            leader,
            join(&p.replicas),
            join(&p.isr),
            offset(start),
            offset(end),
        ];
        if let Some(dirty) = &dirty {
            row.push(
                dirty
                    .get(&p.partition)
                    .map_or_else(|| "-".to_owned(), |r| format!("{:.0}%", r * 100.0)),
            );
        }
        table.row(row);
    }
    text.push_str(&table.render());
    text.push('\n');
    text.push_str(&config_table(configs).render());
    Ok(())
}

/// The dirty ratio of each partition of a compacted topic, as its leader's log cleaner last
/// saw it (DescribeLogDirs, a field of Rill's own); `None` when the brokers do not say.
async fn dirty_ratios(admin: &Admin, topic: &TopicDescription) -> Option<BTreeMap<i32, f64>> {
    let mut leaders: Vec<i32> = topic.partitions.iter().filter_map(|p| p.leader).collect();
    leaders.sort_unstable();
    leaders.dedup();
    let partitions: Vec<(&str, i32)> = topic
        .partitions
        .iter()
        .map(|p| (topic.name.as_str(), p.partition))
        .collect();
    let dirs = admin
        .describe_log_dirs(Some(&leaders), Some(&partitions))
        .await
        .ok()?;
    let leader_of: BTreeMap<i32, i32> = topic
        .partitions
        .iter()
        .filter_map(|p| Some((p.partition, p.leader?)))
        .collect();
    let ratios: BTreeMap<i32, f64> = dirs
        .iter()
        .flat_map(|d| d.replicas.iter().map(move |r| (d.broker, r)))
        .filter(|(broker, r)| leader_of.get(&r.partition) == Some(broker))
        .filter_map(|(_, r)| Some((r.partition, r.dirty_ratio?)))
        .collect();
    (!ratios.is_empty()).then_some(ratios)
}

/// The configs, sorted by name, overrides (set on the topic) marked `*` in the first column.
fn config_table(mut configs: Vec<ConfigEntry>) -> Table {
    configs.sort_by(|a, b| a.name.cmp(&b.name));
    let mut table = Table::new(["", "CONFIG", "VALUE", "SOURCE"]);
    for c in configs {
        let overridden = c.source == ConfigSource::TopicConfig;
        let value = match (&c.value, c.sensitive) {
            (_, true) => "(sensitive)".to_owned(),
            (Some(value), false) => value.clone(),
            (None, false) => "(none)".to_owned(),
        };
        table.row(vec![
            if overridden { "*" } else { "" }.to_owned(),
            c.name,
            value,
            source_name(c.source).to_owned(),
        ]);
    }
    table
}

/// A config source as Kafka names it.
fn source_name(source: ConfigSource) -> &'static str {
    match source {
        ConfigSource::TopicConfig => "topic",
        ConfigSource::DynamicBrokerConfig => "broker (dynamic)",
        ConfigSource::DynamicDefaultBrokerConfig => "all brokers (dynamic)",
        ConfigSource::StaticBrokerConfig => "broker",
        ConfigSource::DefaultConfig => "default",
        ConfigSource::DynamicBrokerLoggerConfig => "broker logger",
        ConfigSource::ClientMetricsConfig => "client metrics",
        ConfigSource::GroupConfig => "group",
        _ => "unknown",
    }
}

async fn alter(admin: &Admin, args: Alter) -> anyhow::Result<()> {
    let name = args.name.as_str();
    // Checked first so that a missing topic is named as such, and for the old count.
    let before = admin
        .describe_topic(name)
        .await
        .map_err(|err| topic_error(name, &err))?;
    let mut done = Vec::new();
    if let Some(total) = args.partitions {
        admin.increase_partitions(name, total).await.explain()?;
        done.push(format!("partitions {} -> {total}", before.partitions.len()));
    }
    let mut ops = Vec::new();
    for (key, value) in args.configs {
        done.push(format!("set {key}={value}"));
        ops.push(AlterConfigOp::set(key, value));
    }
    for key in args.delete_configs {
        done.push(format!("removed {key}"));
        ops.push(AlterConfigOp::delete(key));
    }
    if !ops.is_empty() {
        admin.alter_topic_configs(name, &ops).await.explain()?;
    }
    cli::print(&format!("altered topic '{name}': {}\n", done.join(", ")))
}

async fn delete(admin: &Admin, names: &[String]) -> anyhow::Result<()> {
    let mut text = String::new();
    let mut failures = Vec::new();
    for (name, result) in names
        .iter()
        .zip(admin.delete_topics(names).await.explain()?)
    {
        match result {
            Ok(()) => {
                let _ = writeln!(text, "deleted topic '{name}'");
            }
            Err(err) => failures.push(topic_error(name, &err)),
        }
    }
    cli::print(&text)?;
    first_of(failures)
}

async fn elect_leaders(admin: &Admin, args: ElectLeaders) -> anyhow::Result<()> {
    let election = if args.unclean {
        ElectionType::Unclean
    } else {
        ElectionType::Preferred
    };
    let partitions: Option<Vec<(String, i32)>> = match (&args.topic, args.partition) {
        (None, _) => None,
        (Some(topic), Some(partition)) => Some(vec![(topic.clone(), partition)]),
        (Some(topic), None) => {
            let described = admin
                .describe_topic(topic)
                .await
                .map_err(|err| topic_error(topic, &err))?;
            Some(
                described
                    .partitions
                    .iter()
                    .map(|p| (topic.clone(), p.partition))
                    .collect(),
            )
        }
    };
    let results = admin
        .elect_leaders(election, partitions.as_deref())
        .await
        .explain()?;
    let mut table = Table::new(["TOPIC", "PARTITION", "RESULT"]);
    let mut failed = None;
    for r in &results {
        let outcome = match (r.error, &r.message) {
            (None, _) => "elected".to_owned(),
            (Some(rill_client::ErrorCode::ElectionNotNeeded), _) => "not needed".to_owned(),
            (Some(code), message) => {
                let _ = failed.get_or_insert(code);
                match message {
                    Some(m) => format!("{} ({m})", code.name()),
                    None => code.name().to_owned(),
                }
            }
        };
        table.row(vec![r.topic.clone(), r.partition.to_string(), outcome]);
    }
    cli::print(&table.render())?;
    match failed {
        Some(code) => anyhow::bail!("{}: some elections did not happen", code.name()),
        None => Ok(()),
    }
}

/// `Ok` when `failures` is empty; otherwise the first (the others are printed on stderr).
pub(crate) fn first_of(failures: Vec<anyhow::Error>) -> anyhow::Result<()> {
    let mut failures = failures.into_iter();
    match failures.next() {
        None => Ok(()),
        Some(first) => {
            for other in failures {
                cli::report(&other);
            }
            Err(first)
        }
    }
}

fn join(ids: &[i32]) -> String {
    ids.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn plural(n: i32) -> &'static str {
    if n == 1 { "" } else { "s" }
}
