//! `rill group`: list, describe, reset the offsets of and delete consumer groups
//! (kafka-consumer-groups.sh).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use rill_client::{
    Admin, AdminConfig, ClientError, ErrorCode, GroupDescription, IsolationLevel, OffsetSpec,
};

use crate::cli::{self, Explain as _, Table, explain};

mod reset;

/// List, describe, reset and delete consumer groups.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  rill group list
  rill group describe billing
  rill group reset-offsets billing --topic orders --to-earliest --dry-run
  rill group reset-offsets billing --all-topics --shift-by -100
  rill group delete billing")]
pub(crate) struct Args {
    #[command(flatten)]
    bootstrap: cli::Bootstrap,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// List groups: id, state and protocol type.
    List,
    /// Describe groups: state, members and their partitions, and per partition the committed
    /// offset, the log end offset and the lag (how many records the group is behind).
    #[command(after_help = "Example:\n  rill group describe billing audit")]
    Describe(Describe),
    /// Move a group's committed offsets (only while the group has no active members). Prints
    /// the plan (partition, old offset, new offset), then commits it unless --dry-run.
    ResetOffsets(reset::Reset),
    /// Delete groups and their committed offsets (only groups without active members).
    #[command(after_help = "Example:\n  rill group delete billing audit")]
    Delete(Delete),
}

#[derive(Debug, clap::Args)]
struct Describe {
    /// The groups to describe.
    #[arg(required = true)]
    groups: Vec<String>,
    /// How the groups' consumers read: read_uncommitted (the default) counts lag to the high
    /// watermark; read_committed (exactly-once applications) to the last stable offset, as
    /// far as their consumers can read.
    #[arg(long, env = "RILL_ISOLATION_LEVEL", value_name = "LEVEL")]
    isolation_level: Option<IsolationLevel>,
}

#[derive(Debug, clap::Args)]
struct Delete {
    /// The groups to delete.
    #[arg(required = true)]
    groups: Vec<String>,
}

impl Args {
    pub(crate) fn run(self) -> anyhow::Result<()> {
        cli::block_on(async move {
            let config = self.bootstrap.read_only_config()?;
            let cluster = self.bootstrap.connect(config.clone()).await?;
            let admin = Admin::with_cluster(AdminConfig::new(config), cluster);
            match self.command {
                Command::List => list(&admin).await,
                Command::Describe(args) => {
                    let isolation = args.isolation_level.unwrap_or_default();
                    describe(&admin, &args.groups, isolation).await
                }
                Command::ResetOffsets(args) => args.run(&admin).await,
                Command::Delete(args) => delete(&admin, &args.groups).await,
            }
        })?
    }
}

/// A client error for `group`: `group 'x' does not exist` when that is what it says,
/// otherwise explained.
pub(crate) fn group_error(group: &str, err: &ClientError) -> anyhow::Error {
    if err.code() == Some(ErrorCode::GroupIdNotFound) {
        anyhow::anyhow!("group '{group}' does not exist")
    } else {
        anyhow::anyhow!(explain(err))
    }
}

async fn list(admin: &Admin) -> anyhow::Result<()> {
    let mut table = Table::new(["GROUP", "STATE", "PROTOCOL-TYPE"]);
    for group in admin.list_groups().await.explain()? {
        table.row(vec![
            group.group_id,
            group.state.unwrap_or_else(|| "-".to_owned()),
            dash_if_empty(group.protocol_type),
        ]);
    }
    cli::print(&table.render())
}

async fn describe(
    admin: &Admin,
    groups: &[String],
    isolation: IsolationLevel,
) -> anyhow::Result<()> {
    // Every group is checked before anything is printed.
    let mut described = Vec::with_capacity(groups.len());
    for (group, result) in groups
        .iter()
        .zip(admin.describe_groups(groups).await.explain()?)
    {
        described.push(result.map_err(|err| group_error(group, &err))?);
    }
    let mut text = String::new();
    for (i, group) in described.iter().enumerate() {
        if i > 0 {
            text.push('\n');
        }
        describe_one(admin, group, isolation, &mut text).await?;
    }
    cli::print(&text)
}

async fn describe_one(
    admin: &Admin,
    group: &GroupDescription,
    isolation: IsolationLevel,
    text: &mut String,
) -> anyhow::Result<()> {
    let protocol = match (group.protocol_type.as_str(), group.protocol.as_str()) {
        ("", _) => "-".to_owned(),
        (kind, "") => kind.to_owned(),
        (kind, assignor) => format!("{kind} ({assignor})"),
    };
    let _ = writeln!(
        text,
        "group '{}'  state {}  protocol {protocol}  members {}",
        group.group_id,
        group.state,
        group.members.len()
    );

    // (topic, partition) → (committed offset, owning member's id).
    type Row<'a> = (Option<i64>, Option<&'a str>);
    let mut partitions: BTreeMap<(String, i32), Row<'_>> = BTreeMap::new();
    if !group.members.is_empty() {
        let mut members = Table::new(["MEMBER", "CLIENT-ID", "HOST", "PARTITIONS"]);
        for m in &group.members {
            let assigned = m.assigned_partitions().unwrap_or_default();
            let mut shown = Vec::new();
            for (topic, ps) in &assigned {
                let list: Vec<String> = ps.iter().map(ToString::to_string).collect();
                shown.push(format!("{topic}:{}", list.join(",")));
                for &p in ps {
                    partitions.entry((topic.clone(), p)).or_default().1 = Some(&m.member_id);
                }
            }
            members.row(vec![
                m.member_id.clone(),
                dash_if_empty(m.client_id.clone()),
                dash_if_empty(m.client_host.clone()),
                if shown.is_empty() {
                    "-".to_owned()
                } else {
                    shown.join(" ")
                },
            ]);
        }
        text.push('\n');
        text.push_str(&members.render());
    }

    let committed = admin
        .group_offsets(&group.group_id)
        .await
        .map_err(|err| group_error(&group.group_id, &err))?;
    for c in committed {
        partitions.entry((c.topic, c.partition)).or_default().0 = Some(c.offset);
    }
    text.push('\n');
    if partitions.is_empty() {
        text.push_str("no committed offsets and no assigned partitions\n");
        return Ok(());
    }
    let asked: Vec<(&str, i32)> = partitions.keys().map(|(t, p)| (t.as_str(), *p)).collect();
    let ends = admin
        .list_offsets_isolated(&asked, OffsetSpec::Latest, isolation)
        .await
        .explain()?;
    let mut table = Table::new([
        "TOPIC",
        "PARTITION",
        "COMMITTED",
        "LOG-END",
        "LAG",
        "MEMBER",
    ]);
    for (((topic, p), (committed, member)), end) in partitions.iter().zip(ends) {
        // A partition of a deleted topic has no end any more.
        let end = end.ok().map(|e| e.offset);
        let lag = match (committed, end) {
            (Some(c), Some(e)) => (e - c).max(0).to_string(),
            _ => "-".to_owned(),
        };
        table.row(vec![
            topic.clone(),
            p.to_string(),
            committed.map_or_else(|| "-".to_owned(), |c| c.to_string()),
            end.map_or_else(|| "-".to_owned(), |e| e.to_string()),
            lag,
            member.unwrap_or("-").to_owned(),
        ]);
    }
    text.push_str(&table.render());
    Ok(())
}

async fn delete(admin: &Admin, groups: &[String]) -> anyhow::Result<()> {
    let mut text = String::new();
    let mut failures = Vec::new();
    for (group, result) in groups
        .iter()
        .zip(admin.delete_groups(groups).await.explain()?)
    {
        match result {
            Ok(()) => {
                let _ = writeln!(text, "deleted group '{group}'");
            }
            Err(err) => failures.push(group_error(group, &err)),
        }
    }
    cli::print(&text)?;
    crate::topic::first_of(failures)
}

fn dash_if_empty(text: String) -> String {
    if text.is_empty() {
        "-".to_owned()
    } else {
        text
    }
}
