//! `rill log-dirs`: each broker's data directories and the partitions held in them, with their
//! size on disk and lag (what kafka-log-dirs.sh --describe shows).

use std::fmt::Write as _;

use rill_client::{Admin, AdminConfig, LogDirDescription};

use crate::cli::{self, Explain as _, Table, topic_error};

/// Show each broker's data directories: the partitions held there, their size and lag.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  rill log-dirs                    # every partition on every broker
  rill log-dirs orders audit       # only these topics' partitions
  rill log-dirs --broker 1")]
pub(crate) struct Args {
    #[command(flatten)]
    bootstrap: cli::Bootstrap,

    /// Only these topics' partitions (default: every partition held on each broker).
    topics: Vec<String>,

    /// Ask only this broker (repeatable; default: every live broker).
    #[arg(
        long = "broker",
        value_name = "ID",
        env = "RILL_LOG_DIRS_BROKER",
        value_delimiter = ','
    )]
    only_brokers: Vec<i32>,
}

impl Args {
    pub(crate) fn run(self) -> anyhow::Result<()> {
        cli::block_on(async move {
            let config = self.bootstrap.read_only_config()?;
            let cluster = self.bootstrap.connect(config.clone()).await?;
            let admin = Admin::with_cluster(AdminConfig::new(config), cluster);
            describe(&admin, &self.topics, &self.only_brokers).await
        })?
    }
}

async fn describe(admin: &Admin, topics: &[String], brokers: &[i32]) -> anyhow::Result<()> {
    let partitions = if topics.is_empty() {
        None
    } else {
        // Every name is checked first: a typo fails the command instead of listing nothing.
        let mut partitions: Vec<(&str, i32)> = Vec::new();
        for (name, result) in topics
            .iter()
            .zip(admin.describe_topics(topics).await.explain()?)
        {
            let topic = result.map_err(|err| topic_error(name, &err))?;
            partitions.extend(
                topic
                    .partitions
                    .iter()
                    .map(|p| (name.as_str(), p.partition)),
            );
        }
        Some(partitions)
    };
    let brokers = (!brokers.is_empty()).then_some(brokers);
    let dirs = admin
        .describe_log_dirs(brokers, partitions.as_deref())
        .await
        .explain()?;
    cli::print(&render(&dirs))
}

/// A line per directory (broker, path, partitions and bytes held, the file system's size and
/// usable bytes when known, or its error), then one table of every partition.
fn render(dirs: &[LogDirDescription]) -> String {
    let mut text = String::new();
    let mut table = Table::new(["BROKER", "DIR", "TOPIC", "PARTITION", "SIZE", "LAG"]);
    for dir in dirs {
        let _ = write!(text, "broker {}  dir {}", dir.broker, dir.path);
        if let Some(code) = dir.error {
            let _ = writeln!(text, "  error {code}");
            continue;
        }
        let held: i64 = dir.replicas.iter().map(|r| r.size_bytes).sum();
        let _ = write!(
            text,
            "  {} partition{}, {held} bytes",
            dir.replicas.len(),
            if dir.replicas.len() == 1 { "" } else { "s" }
        );
        if let (Some(total), Some(usable)) = (dir.total_bytes, dir.usable_bytes) {
            let _ = write!(text, "  file system {total} bytes, {usable} usable");
        }
        text.push('\n');
        for r in &dir.replicas {
            table.row(vec![
                dir.broker.to_string(),
                dir.path.clone(),
                r.topic.clone(),
                r.partition.to_string(),
                r.size_bytes.to_string(),
                r.offset_lag.to_string(),
            ]);
        }
    }
    text.push('\n');
    text.push_str(&table.render());
    text
}
