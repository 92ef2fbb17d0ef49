//! `rill user add|list|delete`: users' SCRAM credentials (what kafka-configs.sh
//! `--entity-type users --alter --add-config SCRAM-SHA-256=[...]` does), over
//! AlterUserScramCredentials and DescribeUserScramCredentials. The password is salted here
//! (PBKDF2 over a fresh random salt); only the salt and the salted password are sent.

use std::io::Read as _;
use std::path::PathBuf;

use anyhow::Context as _;
use rill_client::{Admin, AdminConfig, ScramAlteration, ScramMechanism};

use crate::cli::{self, Explain as _, Table};

/// Add, list and delete users' SCRAM credentials.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    rill user add alice --password-file alice.pw\n  \
    printf 'secret' | rill user add bob --mechanism SCRAM-SHA-512 --iterations 8192\n  \
    rill user list\n  \
    rill user delete alice")]
pub(crate) struct Args {
    #[command(flatten)]
    bootstrap: cli::Bootstrap,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Add a user's SCRAM credentials, or replace them (the password from --password,
    /// --password-file or stdin).
    Add {
        /// The user name.
        name: String,
        /// The password (visible to other users of the machine: prefer --password-file or
        /// stdin).
        #[arg(long, conflicts_with = "password_file")]
        password: Option<String>,
        /// A file whose content is the password (one trailing newline is dropped).
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
        /// SCRAM-SHA-256, SCRAM-SHA-512 or both.
        #[arg(long, default_value = "both", value_parser = mechanisms)]
        mechanism: Mechanisms,
        /// PBKDF2 iterations (4096 to 16384, Kafka's bounds).
        #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(4096..=16384))]
        iterations: u32,
    },
    /// Every user with a SCRAM credential: its mechanisms and their iterations.
    #[command(visible_alias = "ls")]
    List,
    /// Delete a user's SCRAM credentials (every one it has unless --mechanism names them).
    #[command(visible_alias = "rm")]
    Delete {
        /// The user name.
        name: String,
        /// SCRAM-SHA-256, SCRAM-SHA-512 or both (default: those the user has).
        #[arg(long, value_parser = mechanisms)]
        mechanism: Option<Mechanisms>,
    },
}

/// The mechanisms a command applies to.
#[derive(Debug, Clone)]
struct Mechanisms(Vec<ScramMechanism>);

fn mechanisms(text: &str) -> Result<Mechanisms, String> {
    if text.eq_ignore_ascii_case("both") {
        return Ok(Mechanisms(ScramMechanism::ALL.to_vec()));
    }
    ScramMechanism::from_name(text)
        .map(|m| Mechanisms(vec![m]))
        .ok_or_else(|| format!("'{text}' is not SCRAM-SHA-256, SCRAM-SHA-512 or both"))
}

impl Args {
    pub(crate) fn run(self) -> anyhow::Result<()> {
        // The password is read before anything connects, so stdin is not left waiting.
        let password = match &self.command {
            Command::Add {
                password,
                password_file,
                ..
            } => Some(read_password(password.as_deref(), password_file.as_ref())?),
            _ => None,
        };
        cli::block_on(async move {
            let config = self.bootstrap.read_only_config()?;
            let cluster = self.bootstrap.connect(config.clone()).await?;
            let admin = Admin::with_cluster(AdminConfig::new(config), cluster);
            match self.command {
                Command::Add {
                    name,
                    mechanism,
                    iterations,
                    ..
                } => {
                    let password = password.unwrap_or_default();
                    let changes = mechanism
                        .0
                        .iter()
                        .map(|&mechanism| ScramAlteration::Upsert {
                            user: name.clone(),
                            mechanism,
                            iterations,
                            password: password.clone(),
                        })
                        .collect::<Vec<_>>();
                    alter(&admin, &name, &changes, "added").await
                }
                Command::Delete { name, mechanism } => {
                    let mechanism = match mechanism {
                        Some(named) => named,
                        None => held(&admin, &name).await?,
                    };
                    let changes = mechanism
                        .0
                        .iter()
                        .map(|&mechanism| ScramAlteration::Delete {
                            user: name.clone(),
                            mechanism,
                        })
                        .collect::<Vec<_>>();
                    alter(&admin, &name, &changes, "deleted").await
                }
                Command::List => list(&admin).await,
            }
        })?
    }
}

/// The password from the flag, the file, or stdin (in that order); one trailing newline is
/// dropped from a file or stdin; an empty password is refused.
fn read_password(flag: Option<&str>, file: Option<&PathBuf>) -> anyhow::Result<String> {
    let mut text = match (flag, file) {
        (Some(password), _) => password.to_owned(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .with_context(|| format!("--password-file {}", path.display()))?,
        (None, None) => {
            let mut text = String::new();
            let _ = std::io::stdin()
                .read_to_string(&mut text)
                .context("reading the password from stdin")?;
            text
        }
    };
    if text.ends_with('\n') {
        let _ = text.pop();
        if text.ends_with('\r') {
            let _ = text.pop();
        }
    }
    anyhow::ensure!(!text.is_empty(), "the password is empty");
    Ok(text)
}

async fn alter(
    admin: &Admin,
    name: &str,
    changes: &[ScramAlteration],
    done: &str,
) -> anyhow::Result<()> {
    let results = admin
        .alter_user_scram_credentials(changes)
        .await
        .explain()?;
    for (_, result) in results {
        result.explain()?;
    }
    let names: Vec<&str> = changes
        .iter()
        .map(|c| match c {
            ScramAlteration::Upsert { mechanism, .. }
            | ScramAlteration::Delete { mechanism, .. } => mechanism.name(),
        })
        .collect();
    cli::print(&format!(
        "{done} {} for user '{name}'\n",
        names.join(" and ")
    ))
}

/// The mechanisms `user` has a credential for (`RESOURCE_NOT_FOUND` when none).
async fn held(admin: &Admin, user: &str) -> anyhow::Result<Mechanisms> {
    let users = [user.to_owned()];
    let described = admin
        .describe_user_scram_credentials(Some(&users))
        .await
        .explain()?;
    let mut held = Vec::new();
    for (_, credentials) in described {
        held.extend(
            credentials
                .explain()?
                .into_iter()
                .filter_map(|c| c.mechanism),
        );
    }
    Ok(Mechanisms(held))
}

async fn list(admin: &Admin) -> anyhow::Result<()> {
    let mut users = admin
        .describe_user_scram_credentials(None)
        .await
        .explain()?;
    users.sort_by(|a, b| a.0.cmp(&b.0));
    let mut table = Table::new(["USER", "MECHANISM", "ITERATIONS"]);
    for (user, credentials) in users {
        for credential in credentials.explain()? {
            table.row(vec![
                user.clone(),
                credential
                    .mechanism
                    .map_or_else(|| "UNKNOWN".to_owned(), |m| m.name().to_owned()),
                credential.iterations.to_string(),
            ]);
        }
    }
    cli::print(&table.render())
}
