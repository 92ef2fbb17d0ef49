//! A small harness: runs the real `rill` binary on a free loopback port with a temporary data
//! directory, and can stop and restart it on the same port and directory.
//!
//! The binary is `RILL_BIN`, or `target/debug/rill` under the workspace root, built once with
//! `cargo build -p rill` when missing (it is another package's binary, so cargo does not build
//! it for these tests).
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, bail};

const START_TIMEOUT: Duration = Duration::from_secs(20);

fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .map_or_else(|| manifest.clone(), PathBuf::from)
}

fn rill_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("RILL_BIN") {
        return PathBuf::from(bin);
    }
    let root = workspace_root();
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let bin = target.join("debug").join("rill");
    static BUILD: Once = Once::new();
    BUILD.call_once(|| {
        if !bin.exists() {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let status = Command::new(cargo)
                .args(["build", "-p", "rill"])
                .current_dir(&root)
                .status();
            assert!(
                status.is_ok_and(|s| s.success()),
                "cargo build -p rill failed"
            );
        }
    });
    bin
}

/// One `rill serve` child process.
#[derive(Debug)]
pub struct Broker {
    port: u16,
    data_dir: tempfile::TempDir,
    extra: Vec<String>,
    child: Option<Child>,
}

impl Broker {
    /// Starts `rill serve` with default settings.
    pub fn start() -> Result<Self> {
        Self::start_with(&[])
    }

    /// Starts `rill serve` with extra flags.
    pub fn start_with(extra: &[&str]) -> Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut broker = Self {
            port,
            data_dir: tempfile::Builder::new().prefix("rill-client-").tempdir()?,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            child: None,
        };
        broker.spawn()?;
        Ok(broker)
    }

    /// `127.0.0.1:PORT`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) -> Result<()> {
        let mut child = Command::new(rill_bin())
            .arg("serve")
            .arg("--listen")
            .arg(self.bootstrap())
            .arg("--data-dir")
            .arg(self.data_dir.path())
            // Parallel tests must not meet on the default admin port, and these need none.
            .args(["--admin-listen", "none"])
            .args(&self.extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting rill serve")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, rx) = mpsc::channel();
        let _ = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.contains("listening on") {
                    let _ = tx.send(());
                }
            }
        });
        self.child = Some(child);
        if rx.recv_timeout(START_TIMEOUT).is_err() {
            self.kill();
            bail!("rill serve did not print `listening on` within {START_TIMEOUT:?}");
        }
        Ok(())
    }

    /// Stops the broker (SIGTERM, then SIGKILL if it lingers).
    pub fn stop(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()?;
            for _ in 0..100 {
                if child.try_wait()?.is_some() {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        Ok(())
    }

    /// Starts it again on the same port and data directory.
    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        self.spawn()
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs a Python snippet with the project's venv (`.venv/bin/python`), returning stdout.
pub fn python(script: &str, args: &[&str]) -> Result<String> {
    let python = workspace_root().join(".venv/bin/python");
    let out = Command::new(&python)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    if !out.status.success() {
        bail!(
            "python failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}
