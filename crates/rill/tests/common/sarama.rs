//! Building the seed's sarama programs (`interop/sarama/`, Go, sarama as Debian ships it).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail, ensure};

use super::{Result, RunOutput, run};

/// Where Debian's `golang-github-shopify-sarama-dev` puts sarama's source.
pub const DEBIAN_GOCODE: &str = "/usr/share/gocode";
pub const SARAMA_BUILD_TIMEOUT: Duration = Duration::from_secs(180);

/// `go <args>` in `interop/sarama/`, in GOPATH mode with Debian's sarama: its output, or why it
/// failed.
fn go(args: &[String]) -> Result<RunOutput> {
    let sarama = Path::new(DEBIAN_GOCODE).join("src/github.com/Shopify/sarama");
    ensure!(
        sarama.is_dir(),
        "{} is missing; run scripts/test (it installs golang-go and \
         golang-github-shopify-sarama-dev)",
        sarama.display()
    );
    let gopath = tempfile::Builder::new().prefix("rill-gopath-").tempdir()?;
    // Shared with interop_sarama.rs, in cargo's target directory: only the first build
    // compiles sarama.
    let gocache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go-build");
    let mut command = Command::new("go");
    let _ = command
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../interop/sarama"))
        .args(args)
        .env("GO111MODULE", "off")
        .env(
            "GOPATH",
            format!("{}:{DEBIAN_GOCODE}", gopath.path().display()),
        )
        .env("GOCACHE", &gocache)
        .env("GOFLAGS", "");
    let out = match run(command, b"", SARAMA_BUILD_TIMEOUT) {
        Err(err) if format!("{err:#}").contains("No such file") => {
            bail!("cannot run `go`; run scripts/test (it installs golang-go)")
        }
        other => other.with_context(|| format!("go {}", args.join(" ")))?,
    };
    ensure!(
        out.status.success(),
        "go {} failed ({}):\n{}{}",
        args.join(" "),
        out.status,
        out.stdout_text(),
        out.stderr
    );
    Ok(out)
}

/// Builds `programs` of `interop/sarama/` into a temporary directory. They may import the
/// packages beside them (`scram/`) by relative path, which GOPATH mode allows outside GOPATH.
pub fn build_sarama(programs: &[&str]) -> Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new().prefix("rill-sarama-").tempdir()?;
    let mut args = vec![
        "build".to_owned(),
        "-o".to_owned(),
        format!("{}/", dir.path().display()),
    ];
    args.extend(programs.iter().map(|p| format!("./{p}")));
    let _ = go(&args)?;
    Ok(dir)
}

/// Runs the Go tests of `packages` of `interop/sarama/` (e.g. `scram`): their output.
pub fn go_test_sarama(packages: &[&str]) -> Result<String> {
    let mut args = vec!["test".to_owned(), "-count=1".to_owned()];
    args.extend(packages.iter().map(|p| format!("./{p}")));
    Ok(go(&args)?.stdout_text())
}
