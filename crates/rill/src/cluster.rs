//! `rill cluster status`: the cluster's brokers and its metadata quorum (what
//! kafka-metadata-quorum.sh and kafka-cluster.sh show).

use std::fmt::Write as _;

use rill_client::{Admin, AdminConfig, QuorumDescription};

use crate::cli::{self, Explain as _, Table};

/// Show the cluster: its brokers and its metadata quorum.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  rill cluster status -b 127.0.0.1:9092")]
pub(crate) struct Args {
    #[command(flatten)]
    bootstrap: cli::Bootstrap,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// The cluster id, every voter of the metadata quorum with its role (leader or voter),
    /// whether it is a live broker, its address, how far its metadata log is, and when the
    /// leader last heard from it.
    #[command(visible_alias = "describe")]
    Status,
}

impl Args {
    pub(crate) fn run(self) -> anyhow::Result<()> {
        cli::block_on(async move {
            let config = self.bootstrap.read_only_config()?;
            let cluster = self.bootstrap.connect(config.clone()).await?;
            let admin = Admin::with_cluster(AdminConfig::new(config), cluster);
            match self.command {
                Command::Status => status(&admin).await,
            }
        })?
    }
}

async fn status(admin: &Admin) -> anyhow::Result<()> {
    let cluster = admin.describe_cluster().await.explain()?;
    let quorum = admin.describe_quorum().await.explain()?;
    let mut text = format!(
        "cluster {}  {} live broker{}\nmetadata quorum: leader {} at epoch {}, {} voter{}, \
         committed offset {}\n\n",
        cluster.cluster_id.as_deref().unwrap_or("?"),
        cluster.brokers.len(),
        if cluster.brokers.len() == 1 { "" } else { "s" },
        quorum.leader,
        quorum.epoch,
        quorum.voters.len(),
        if quorum.voters.len() == 1 { "" } else { "s" },
        quorum.high_watermark,
    );
    let now = jiff::Timestamp::now().as_millisecond();
    let mut table = Table::new([
        "NODE",
        "ROLE",
        "BROKER",
        "ADDRESS",
        "METADATA OFFSET",
        "LAG",
        "LAST CONTACT",
    ]);
    for row in rows(&quorum, &cluster.brokers, now) {
        table.row(row);
    }
    let _ = write!(text, "{}", table.render());
    cli::print(&text)
}

/// One row per voter, then one per live broker that is not a voter.
fn rows(
    quorum: &QuorumDescription,
    brokers: &[rill_client::BrokerInfo],
    now_ms: i64,
) -> Vec<Vec<String>> {
    let address = |id: i32| {
        brokers
            .iter()
            .find(|b| b.id == id)
            .map_or_else(|| "-".to_owned(), |b| format!("{}:{}", b.host, b.port))
    };
    let live = |id: i32| brokers.iter().any(|b| b.id == id);
    let mut rows: Vec<Vec<String>> = quorum
        .voters
        .iter()
        .map(|v| {
            let role = if v.id == quorum.leader {
                "leader"
            } else {
                "voter"
            };
            let lag = if v.log_end_offset < 0 {
                "?".to_owned()
            } else {
                (quorum.high_watermark - v.log_end_offset)
                    .max(0)
                    .to_string()
            };
            let contact = if v.id == quorum.leader {
                "-".to_owned()
            } else if v.last_fetch_ms < 0 {
                "never".to_owned()
            } else {
                format!("{} ms ago", (now_ms - v.last_fetch_ms).max(0))
            };
            vec![
                v.id.to_string(),
                role.to_owned(),
                if live(v.id) { "live" } else { "fenced" }.to_owned(),
                address(v.id),
                if v.log_end_offset < 0 {
                    "?".to_owned()
                } else {
                    v.log_end_offset.to_string()
                },
                lag,
                contact,
            ]
        })
        .collect();
    for broker in brokers {
        if quorum.voters.iter().all(|v| v.id != broker.id) {
            rows.push(vec![
                broker.id.to_string(),
                "broker".to_owned(),
                "live".to_owned(),
                format!("{}:{}", broker.host, broker.port),
                "-".to_owned(),
                "-".to_owned(),
                "-".to_owned(),
            ]);
        }
    }
    rows
}
