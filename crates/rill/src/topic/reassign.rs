//! `rill topic reassign` and `rill topic reassignments`: move partitions' replicas to other
//! brokers, cancel a move, and show the moves under way (kafka-reassign-partitions.sh's
//! `--execute`, `--cancel` and `--list`).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use rill_client::{Admin, Reassignment};

use super::{join, plural};
use crate::cli::{self, Explain as _, Table, code_words, topic_error};

// `--partition` and one of `--replicas` or `--cancel` are checked in `moves`, not by clap: its
// error for a missing argument spans several lines.
#[derive(Debug, clap::Args)]
pub(super) struct Reassign {
    /// The topic.
    topic: String,
    /// The partition to move; several (`--partition 0,1`) all move to the same replicas.
    #[arg(
        long,
        visible_alias = "partitions",
        env = "RILL_TOPIC_REASSIGN_PARTITION",
        value_name = "N[,N...]",
        value_delimiter = ',',
        value_parser = non_negative("partition")
    )]
    partition: Vec<i32>,
    /// The brokers the partitions should end up on, their preferred leader first
    /// (`--replicas 2,3,4`). The move goes on in the background: the new replicas are added
    /// and catch up, then the old ones are removed.
    #[arg(
        long,
        env = "RILL_TOPIC_REPLICAS",
        value_name = "ID[,ID...]",
        value_delimiter = ',',
        value_parser = non_negative("broker id")
    )]
    replicas: Vec<i32>,
    /// Cancel the partitions' moves under way instead: they keep the replicas they had
    /// before.
    #[arg(long, env = "RILL_TOPIC_CANCEL", conflicts_with = "replicas")]
    cancel: bool,
}

#[derive(Debug, clap::Args)]
pub(super) struct Reassignments {
    /// Only this topic's partitions (every topic's if left out).
    topic: Option<String>,
}

/// A clap value parser for a number from 0 up; `what` names it in the error.
fn non_negative(what: &'static str) -> impl Fn(&str) -> Result<i32, String> + Clone {
    move |text| match text.trim().parse::<i32>() {
        Ok(n) if n >= 0 => Ok(n),
        _ => Err(format!(
            "expects a {what} (a number from 0 up), got '{text}'"
        )),
    }
}

/// The first value of `values` that is there twice.
fn first_repeated(values: &[i32]) -> Option<i32> {
    let mut seen = BTreeSet::new();
    values.iter().copied().find(|v| !seen.insert(*v))
}

/// What to ask for: one move (or cancellation) per partition, after the checks clap cannot
/// make.
pub(super) fn moves(args: &Reassign) -> anyhow::Result<Vec<Reassignment>> {
    if args.partition.is_empty() {
        anyhow::bail!("name the partition to move: --partition N");
    }
    if args.replicas.is_empty() && !args.cancel {
        anyhow::bail!("name the brokers to move to (--replicas 2,3,4), or --cancel the move");
    }
    if let Some(p) = first_repeated(&args.partition) {
        anyhow::bail!("partition {p} is named twice in --partition");
    }
    if let Some(id) = first_repeated(&args.replicas) {
        anyhow::bail!("broker {id} is named twice in --replicas");
    }
    Ok(args
        .partition
        .iter()
        .map(|&p| {
            if args.cancel {
                Reassignment::cancel(args.topic.as_str(), p)
            } else {
                Reassignment::new(args.topic.as_str(), p, args.replicas.clone())
            }
        })
        .collect())
}

pub(super) async fn reassign(admin: &Admin, args: Reassign) -> anyhow::Result<()> {
    let moves = moves(&args)?;
    let results = admin
        .alter_partition_reassignments(&moves)
        .await
        .explain()?;
    let mut text = String::new();
    let mut failed = Vec::new();
    for r in &results {
        let _ = write!(text, "{}-{}: ", r.topic, r.partition);
        match r.error {
            None if args.cancel => text.push_str("reassignment cancelled\n"),
            None => {
                let _ = writeln!(text, "reassigning to {:?}", args.replicas);
            }
            Some(code) => {
                failed.push(code);
                text.push_str(&code_words(code, r.message.as_deref()));
                text.push('\n');
            }
        }
    }
    cli::print(&text)?;
    match failed.first() {
        None => Ok(()),
        Some(code) => {
            let total = i32::try_from(results.len()).unwrap_or(i32::MAX);
            anyhow::bail!(
                "{code}: {} of {total} partition{} not {}",
                failed.len(),
                plural(total),
                if args.cancel {
                    "cancelled"
                } else {
                    "reassigned"
                }
            )
        }
    }
}

pub(super) async fn reassignments(admin: &Admin, args: Reassignments) -> anyhow::Result<()> {
    // A named topic is described first: a typo is an error, not an empty list.
    let only = match &args.topic {
        None => None,
        Some(topic) => {
            let described = admin
                .describe_topic(topic)
                .await
                .map_err(|err| topic_error(topic, &err))?;
            let partitions = described.partitions.iter().map(|p| p.partition).collect();
            Some(vec![(topic.clone(), partitions)])
        }
    };
    let ongoing = admin
        .list_partition_reassignments(only.as_deref())
        .await
        .explain()?;
    if ongoing.is_empty() {
        let text = match &args.topic {
            Some(topic) => format!("no partition of topic '{topic}' is being reassigned\n"),
            None => "no partition is being reassigned\n".to_owned(),
        };
        return cli::print(&text);
    }
    let mut table = Table::new(["TOPIC", "PARTITION", "REPLICAS", "ADDING", "REMOVING"]);
    let ids = |ids: &[i32]| {
        if ids.is_empty() {
            "-".to_owned()
        } else {
            join(ids)
        }
    };
    for r in &ongoing {
        table.row(vec![
            r.topic.clone(),
            r.partition.to_string(),
            ids(&r.replicas),
            ids(&r.adding_replicas),
            ids(&r.removing_replicas),
        ]);
    }
    cli::print(&table.render())
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::{Reassign, moves};

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        reassign: Reassign,
    }

    fn parse(args: &[&str]) -> Result<Reassign, String> {
        Cli::try_parse_from(std::iter::once("reassign").chain(args.iter().copied()))
            .map(|cli| cli.reassign)
            .map_err(|err| err.to_string())
    }

    /// The first line of clap's error for `args`.
    fn refused(args: &[&str]) -> String {
        match parse(args) {
            Ok(parsed) => panic!("{args:?} parsed: {parsed:?}"),
            Err(err) => err.lines().next().unwrap_or_default().to_owned(),
        }
    }

    #[test]
    fn moves_and_cancellations_are_asked_per_partition() {
        let args = parse(&["orders", "--partitions", "0,2", "--replicas", "2,3,4"])
            .unwrap_or_else(|e| panic!("{e}"));
        let asked = moves(&args).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(asked.len(), 2);
        assert_eq!((asked[1].topic.as_str(), asked[1].partition), ("orders", 2));
        assert_eq!(asked[1].replicas, Some(vec![2, 3, 4]));

        let args =
            parse(&["orders", "--partition", "1", "--cancel"]).unwrap_or_else(|e| panic!("{e}"));
        let asked = moves(&args).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(asked.len(), 1);
        assert_eq!(asked[0].replicas, None);
    }

    /// What `moves` says of `args`, which clap accepts.
    fn not_asked(args: &[&str]) -> String {
        let parsed = parse(args).unwrap_or_else(|e| panic!("{e}"));
        match moves(&parsed) {
            Ok(asked) => panic!("{args:?} asked {asked:?}"),
            Err(err) => err.to_string(),
        }
    }

    #[test]
    fn bad_input_is_one_line_naming_what_is_wrong() {
        assert_eq!(
            not_asked(&["orders", "--partition", "0"]),
            "name the brokers to move to (--replicas 2,3,4), or --cancel the move"
        );
        assert_eq!(
            not_asked(&["orders", "--replicas", "2"]),
            "name the partition to move: --partition N"
        );
        assert_eq!(
            not_asked(&["orders", "--partition", "0", "--replicas", "2,3,2"]),
            "broker 2 is named twice in --replicas"
        );
        assert_eq!(
            not_asked(&["orders", "--partition", "1,1", "--cancel"]),
            "partition 1 is named twice in --partition"
        );
        // clap's own errors: one line (then its usage lines).
        let first = refused(&["orders", "--partition", "0", "--replicas", "2,x"]);
        assert!(first.contains("expects a broker id"), "{first}");
        let first = refused(&["orders", "--partition", "0", "--replicas=2,-1"]);
        assert!(first.contains("got '-1'"), "{first}");
        let first = refused(&["orders", "--partition", "0", "--replicas", ""]);
        assert!(first.contains("expects a broker id"), "{first}");
        let first = refused(&["orders", "--partition", "0", "--replicas", "2", "--cancel"]);
        assert!(first.contains("cannot be used with"), "{first}");
        let first = refused(&["orders", "--partition", "one", "--cancel"]);
        assert!(first.contains("expects a partition"), "{first}");
    }
}
