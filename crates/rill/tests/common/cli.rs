//! Running the `rill` client subcommands (`topic`, `produce`, `consume`, `group`) as a person
//! would, and reading their aligned tables.

use std::process::Command;

use anyhow::ensure;

use super::{CLIENT_TIMEOUT, Result, RunOutput, run};

/// A `rill` command for `bootstrap` (through `RILL_BOOTSTRAP`, so `args` stay as a person
/// types them), with no other `RILL_*` setting inherited from the environment.
pub fn rill_command(bootstrap: &str, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rill"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("RILL_") {
            let _ = command.env_remove(name);
        }
    }
    let _ = command.args(args).env("RILL_BOOTSTRAP", bootstrap);
    command
}

/// Runs `rill ARGS` with `stdin`, bounded by [`CLIENT_TIMEOUT`].
pub fn rill(bootstrap: &str, args: &[&str], stdin: &[u8]) -> Result<RunOutput> {
    run(rill_command(bootstrap, args), stdin, CLIENT_TIMEOUT)
}

/// Runs `rill ARGS`, which must succeed; returns its stdout (bytes that are not UTF-8 as
/// U+FFFD) and its stderr, for summaries.
pub fn rill_ok(bootstrap: &str, args: &[&str], stdin: &[u8]) -> Result<(String, String)> {
    let out = rill(bootstrap, args, stdin)?;
    ensure!(
        out.status.success(),
        "rill {args:?} failed ({}):\n{}",
        out.status,
        out.stderr
    );
    Ok((
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.stderr,
    ))
}

/// Runs `rill ARGS`, which must fail; returns its stderr.
pub fn rill_fails(bootstrap: &str, args: &[&str], stdin: &[u8]) -> Result<String> {
    let out = rill(bootstrap, args, stdin)?;
    ensure!(
        !out.status.success(),
        "rill {args:?} succeeded but should have failed; stdout:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    Ok(out.stderr)
}

/// The rows of an aligned table (or any text), each split into its whitespace-separated
/// cells.
pub fn rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(|line| line.split_whitespace().map(str::to_owned).collect())
        .collect()
}

/// The row of `text` whose first cells are `prefix`.
pub fn row_starting<'a>(text: &'a str, prefix: &[&str]) -> Option<Vec<&'a str>> {
    text.lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.len() >= prefix.len() && cells[..prefix.len()] == *prefix)
}
