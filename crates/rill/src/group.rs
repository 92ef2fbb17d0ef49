//! `rill group`.

/// Placeholder until the subcommand lands.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    bootstrap: crate::cli::Bootstrap,
}

impl Args {
    pub(crate) fn run(self) -> anyhow::Result<()> {
        let _config = self.bootstrap.client_config();
        crate::cli::block_on(async {})?;
        anyhow::bail!("`rill group` is not built yet")
    }
}
