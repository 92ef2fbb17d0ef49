//! `rill group reset-offsets`: move a group's committed offsets while it has no members.

use std::collections::BTreeMap;

use rill_client::{Admin, ErrorCode, OffsetSpec};

use super::group_error;
use crate::cli::{self, Explain as _, Table, topic_error};

/// Which partitions to reset and where to.
#[derive(Debug, clap::Args)]
#[command(
    group(clap::ArgGroup::new("which").required(true).args(["topics", "all_topics"])),
    group(clap::ArgGroup::new("to").required(true)
        .args(["to_earliest", "to_latest", "to_offset", "to_timestamp", "shift_by"])),
    after_help = "\
Examples:
  rill group reset-offsets billing --topic orders --to-earliest --dry-run
  rill group reset-offsets billing --topic orders:0,2 --to-offset 1000
  rill group reset-offsets billing --all-topics --to-timestamp 2024-05-01T12:00:00Z
  rill group reset-offsets billing --all-topics --shift-by -100

Offsets past either end of a partition are moved to that end.")]
pub(crate) struct Reset {
    /// The group.
    group: String,
    /// A topic to reset, all its partitions or `TOPIC:P,P,...` (repeatable).
    #[arg(long = "topic", env = "RILL_RESET_TOPIC", value_name = "TOPIC[:P,...]")]
    topics: Vec<String>,
    /// Every topic the group has committed offsets for.
    #[arg(long, env = "RILL_RESET_ALL_TOPICS")]
    all_topics: bool,
    /// To the first offset still in each partition.
    #[arg(long, env = "RILL_RESET_TO_EARLIEST")]
    to_earliest: bool,
    /// To the end of each partition (skip everything there now).
    #[arg(long, env = "RILL_RESET_TO_LATEST")]
    to_latest: bool,
    /// To this offset.
    #[arg(long, env = "RILL_RESET_TO_OFFSET", value_name = "N")]
    to_offset: Option<i64>,
    /// To the first record at or after this time (ms since the epoch or RFC 3339); the end
    /// where there is none.
    #[arg(
        long,
        env = "RILL_RESET_TO_TIMESTAMP",
        value_name = "TS",
        value_parser = cli::timestamp_ms
    )]
    to_timestamp: Option<i64>,
    /// Move each committed offset by N (negative: back).
    #[arg(
        long,
        env = "RILL_RESET_SHIFT_BY",
        value_name = "N",
        allow_negative_numbers = true
    )]
    shift_by: Option<i64>,
    /// Print the plan and change nothing.
    #[arg(long, env = "RILL_RESET_DRY_RUN")]
    dry_run: bool,
}

/// One partition's row of the plan.
#[derive(Debug)]
struct Move {
    topic: String,
    partition: i32,
    old: Option<i64>,
    new: i64,
}

impl Reset {
    pub(crate) async fn run(self, admin: &Admin) -> anyhow::Result<()> {
        let group = self.group.as_str();
        // Kafka moves the offsets of an inactive group only: a member would overwrite them.
        match admin.describe_group(group).await {
            Ok(description) if !description.members.is_empty() => anyhow::bail!(
                "group '{group}' has {} active member{} (state {}): stop {} first; offsets are \
                 only reset while a group has none",
                description.members.len(),
                if description.members.len() == 1 {
                    ""
                } else {
                    "s"
                },
                description.state,
                if description.members.len() == 1 {
                    "it"
                } else {
                    "them"
                },
            ),
            Ok(_) => {}
            // A group that does not exist yet starts with the new offsets.
            Err(err) if err.code() == Some(ErrorCode::GroupIdNotFound) => {}
            Err(err) => return Err(group_error(group, &err)),
        }
        let committed: BTreeMap<(String, i32), i64> = admin
            .group_offsets(group)
            .await
            .map_err(|err| group_error(group, &err))?
            .into_iter()
            .map(|c| ((c.topic, c.partition), c.offset))
            .collect();
        let partitions = self.partitions(admin, &committed).await?;
        anyhow::ensure!(
            !partitions.is_empty(),
            "group '{group}' has no committed offsets to reset (name topics with --topic)"
        );
        let plan = self.plan(admin, &committed, partitions).await?;

        let mut table = Table::new(["TOPIC", "PARTITION", "OLD", "NEW"]);
        for m in &plan {
            table.row(vec![
                m.topic.clone(),
                m.partition.to_string(),
                m.old.map_or_else(|| "-".to_owned(), |o| o.to_string()),
                m.new.to_string(),
            ]);
        }
        let mut text = table.render();
        if self.dry_run {
            text.push_str(&format!(
                "dry run: the offsets of group '{group}' were not changed\n"
            ));
            return cli::print(&text);
        }
        let offsets: Vec<(&str, i32, i64)> = plan
            .iter()
            .map(|m| (m.topic.as_str(), m.partition, m.new))
            .collect();
        let results = admin
            .alter_group_offsets(group, &offsets)
            .await
            .map_err(|err| group_error(group, &err))?;
        for result in results {
            result.map_err(|err| {
                if err.code() == Some(ErrorCode::UnknownMemberId) {
                    anyhow::anyhow!(
                        "group '{group}' gained active members meanwhile; stop them and try again"
                    )
                } else {
                    group_error(group, &err)
                }
            })?;
        }
        text.push_str(&format!("reset the offsets of group '{group}'\n"));
        cli::print(&text)
    }

    /// The partitions to reset, sorted.
    async fn partitions(
        &self,
        admin: &Admin,
        committed: &BTreeMap<(String, i32), i64>,
    ) -> anyhow::Result<Vec<(String, i32)>> {
        if self.all_topics {
            return Ok(committed.keys().cloned().collect());
        }
        let mut out = Vec::new();
        for spec in &self.topics {
            let (topic, wanted) = match spec.split_once(':') {
                None => (spec.as_str(), None),
                Some((topic, list)) => {
                    let parsed: Result<Vec<i32>, _> =
                        list.split(',').map(|p| p.trim().parse::<i32>()).collect();
                    let parsed = parsed.map_err(|_| {
                        anyhow::anyhow!("--topic expects TOPIC or TOPIC:P,P,..., got '{spec}'")
                    })?;
                    (topic, Some(parsed))
                }
            };
            let description = admin
                .describe_topic(topic)
                .await
                .map_err(|err| topic_error(topic, &err))?;
            let count = description.partitions.len();
            let all: Vec<i32> = description.partitions.iter().map(|p| p.partition).collect();
            for p in wanted.unwrap_or_else(|| all.clone()) {
                anyhow::ensure!(
                    all.contains(&p),
                    "topic '{topic}' has no partition {p} (it has {count})"
                );
                out.push((topic.to_owned(), p));
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Where each partition goes, clamped to the partition's log.
    async fn plan(
        &self,
        admin: &Admin,
        committed: &BTreeMap<(String, i32), i64>,
        partitions: Vec<(String, i32)>,
    ) -> anyhow::Result<Vec<Move>> {
        let asked: Vec<(&str, i32)> = partitions.iter().map(|(t, p)| (t.as_str(), *p)).collect();
        let starts = admin
            .list_offsets(&asked, OffsetSpec::Earliest)
            .await
            .explain()?;
        let ends = admin
            .list_offsets(&asked, OffsetSpec::Latest)
            .await
            .explain()?;
        let at_time = match self.to_timestamp {
            Some(t) => Some(
                admin
                    .list_offsets(&asked, OffsetSpec::Timestamp(t))
                    .await
                    .explain()?,
            ),
            None => None,
        };
        let mut plan = Vec::with_capacity(partitions.len());
        for (i, ((topic, partition), (start, end))) in partitions
            .into_iter()
            .zip(starts.into_iter().zip(ends))
            .enumerate()
        {
            let (start, end) = (start.explain()?.offset, end.explain()?.offset);
            let old = committed.get(&(topic.clone(), partition)).copied();
            let new = if self.to_earliest {
                start
            } else if self.to_latest {
                end
            } else if let Some(n) = self.to_offset {
                n
            } else if let Some(found) = at_time.as_ref().and_then(|r| r.get(i)) {
                match found {
                    Ok(listed) if listed.offset >= 0 => listed.offset,
                    Ok(_) => end,
                    Err(err) => anyhow::bail!(cli::explain(err)),
                }
            } else {
                let shift = self.shift_by.unwrap_or(0);
                let Some(old) = old else {
                    anyhow::bail!(
                        "group '{}' has no committed offset for topic '{topic}' partition \
                         {partition} to shift",
                        self.group
                    );
                };
                old.saturating_add(shift)
            };
            plan.push(Move {
                topic,
                partition,
                old,
                new: new.clamp(start, end.max(start)),
            });
        }
        Ok(plan)
    }
}
