//! Building the seed's sarama programs (`interop/sarama/`, Go, sarama as Debian ships it).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail, ensure};

use super::{Result, run};

/// Where Debian's `golang-github-shopify-sarama-dev` puts sarama's source.
pub const DEBIAN_GOCODE: &str = "/usr/share/gocode";
pub const SARAMA_BUILD_TIMEOUT: Duration = Duration::from_secs(180);

/// Builds `programs` of `interop/sarama/` into a temporary directory.
pub fn build_sarama(programs: &[&str]) -> Result<tempfile::TempDir> {
    let sarama = Path::new(DEBIAN_GOCODE).join("src/github.com/Shopify/sarama");
    ensure!(
        sarama.is_dir(),
        "{} is missing; run scripts/test (it installs golang-go and \
         golang-github-shopify-sarama-dev)",
        sarama.display()
    );
    let dir = tempfile::Builder::new().prefix("rill-sarama-").tempdir()?;
    let gopath = dir.path().join("gopath");
    // Shared with interop_sarama.rs, in cargo's target directory: only the first build
    // compiles sarama.
    let gocache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go-build");
    let mut command = Command::new("go");
    let _ = command
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../interop/sarama"))
        .arg("build")
        .arg("-o")
        .arg(format!("{}/", dir.path().display()))
        .args(programs.iter().map(|p| format!("./{p}")))
        .env("GO111MODULE", "off")
        .env("GOPATH", format!("{}:{DEBIAN_GOCODE}", gopath.display()))
        .env("GOCACHE", &gocache)
        .env("GOFLAGS", "");
    let out = match run(command, b"", SARAMA_BUILD_TIMEOUT) {
        Err(err) if format!("{err:#}").contains("No such file") => {
            bail!("cannot run `go`; run scripts/test (it installs golang-go)")
        }
        other => other.context("go build of interop/sarama")?,
    };
    ensure!(
        out.status.success(),
        "go build of interop/sarama failed ({}):\n{}",
        out.status,
        out.stderr
    );
    Ok(dir)
}
