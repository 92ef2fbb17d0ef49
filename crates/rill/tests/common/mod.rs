//! The black-box harness: runs the real `rill` binary on a free loopback port with a fresh data
//! directory, and drives it with real third-party clients (the Python scripts in
//! `tests/interop/`, kcat) or raw TCP.
//!
//! Every test starts its own [`Broker`], so tests run in parallel, and every wait is bounded so
//! that a broken broker fails a test instead of hanging it. `scripts/test` installs what the
//! clients need (a venv at `.venv/` with confluent-kafka and kafka-python, kafkajs under
//! `.node/`, and kcat).
//!
//! For debugging the tests themselves against another Kafka-compatible broker, set
//! `RILL_TEST_EXTERNAL_BOOTSTRAP=host:port`: nothing is spawned, and the tests that stop,
//! restart or kill the broker, or look at its data directory, fail.
#![allow(dead_code, unreachable_pub, unused_macros)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow, bail, ensure};
use serde_json::Value;

pub use anyhow::Result;

/// Sends one request on a [`Conn`] and unwraps the answer of the same API (a test file that
/// wants it declares `#[macro_use] mod common;`).
macro_rules! ask {
    ($conn:expr, $api:ident, $version:expr, $body:expr) => {{
        let conn: &mut $crate::common::Conn = $conn;
        let id = conn.id();
        match $crate::common::call(
            &mut conn.stream,
            ::rill_protocol::ApiKey::$api,
            $version,
            id,
            $body,
        )? {
            ::rill_protocol::ResponseKind::$api(response) => response,
            other => ::anyhow::bail!("expected a {} answer, got {other:?}", stringify!($api)),
        }
    }};
}

mod admin;
mod certs;
mod cli;
mod clients;
mod cluster;
pub mod mqtt;
mod sarama;
pub mod txn;
mod wire;

// Each test binary uses a different part of the harness.
#[allow(unused_imports)]
pub use admin::*;
#[allow(unused_imports)]
pub use certs::*;
#[allow(unused_imports)]
pub use cli::*;
#[allow(unused_imports)]
pub use clients::*;
#[allow(unused_imports)]
pub use cluster::*;
#[allow(unused_imports)]
pub use sarama::*;
#[allow(unused_imports)]
pub use wire::*;

/// How long the broker gets to print its `listening on` line.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a graceful stop (SIGTERM) may take.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on one client script or kcat run; the scripts have their own, shorter deadlines.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

const EXTERNAL_ENV: &str = "RILL_TEST_EXTERNAL_BOOTSTRAP";
const PYTHON_ENV: &str = "RILL_TEST_PYTHON";

/// Lines the broker wrote, both streams interleaved in arrival order.
type Lines = Arc<Mutex<Vec<String>>>;

/// What the start-up banner has said so far.
#[derive(Debug, Default)]
struct Banner {
    /// The `listening on` line arrived.
    listening: AtomicBool,
    /// The `admin http:` line arrived: `Some(None)` when the admin listener is off.
    admin: Mutex<Option<Option<SocketAddr>>>,
}

impl Banner {
    fn admin(&self) -> Option<Option<SocketAddr>> {
        *lock(&self.admin)
    }
}

/// One `rill serve` process (or, with `RILL_TEST_EXTERNAL_BOOTSTRAP`, someone else's broker).
#[derive(Debug)]
pub struct Broker {
    port: u16,
    host: String,
    data_dir: Option<tempfile::TempDir>,
    args: Vec<String>,
    /// Extra environment for the broker process (e.g. `RILL_LOG`).
    env: Vec<(String, String)>,
    child: Option<Child>,
    output: Lines,
    starts: u32,
    /// The admin HTTP listener's address, as the last start's banner gave it.
    admin: Option<SocketAddr>,
}

impl Broker {
    /// Starts `rill serve` with the default settings.
    pub fn start() -> Result<Self> {
        Self::start_with(&[])
    }

    /// Starts `rill serve` with extra flags (e.g. `["--num-partitions", "3"]`).
    pub fn start_with(extra_args: &[&str]) -> Result<Self> {
        Self::start_with_env(extra_args, &[])
    }

    /// Starts `rill serve` with extra flags and environment variables (e.g. `RILL_LOG`).
    pub fn start_with_env(extra_args: &[&str], env: &[(&str, &str)]) -> Result<Self> {
        if let Ok(bootstrap) = std::env::var(EXTERNAL_ENV) {
            let (host, port) = bootstrap
                .rsplit_once(':')
                .with_context(|| format!("{EXTERNAL_ENV} must be host:port, not {bootstrap}"))?;
            return Ok(Self {
                port: port
                    .parse()
                    .with_context(|| format!("port in {bootstrap}"))?,
                host: host.to_owned(),
                data_dir: None,
                args: Vec::new(),
                env: Vec::new(),
                child: None,
                output: Lines::default(),
                starts: 0,
                admin: None,
            });
        }
        let args: Vec<String> = extra_args.iter().map(|a| (*a).to_owned()).collect();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        // The port is free when we read it but not reserved, so another process may take it
        // before the broker binds; try a few ports before blaming the broker.
        let mut last_err = None;
        for _ in 0..3 {
            let data_dir = tempfile::Builder::new().prefix("rill-test-").tempdir()?;
            let mut broker = Self {
                port: free_port()?,
                host: "127.0.0.1".to_owned(),
                data_dir: Some(data_dir),
                args: args.clone(),
                env: env.clone(),
                child: None,
                output: Lines::default(),
                starts: 0,
                admin: None,
            };
            match broker.spawn() {
                Ok(()) => return Ok(broker),
                Err(err) if broker.output_text().contains("in use") => last_err = Some(err),
                Err(err) => return Err(err),
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow!("could not start the broker")))
    }

    /// `127.0.0.1:PORT`, for clients.
    pub fn bootstrap(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The admin HTTP listener (`/metrics`, `/health/*`, `/status`) of the running broker, as
    /// its banner gave it; `None` with `--admin-listen none` or for an external broker. Every
    /// broker the harness starts gets `--admin-listen 127.0.0.1:0` unless the test passes its
    /// own, so a restart may bring a new port.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin
    }

    /// The broker's data directory (`None` for an external broker).
    pub fn data_dir(&self) -> Option<&Path> {
        self.data_dir.as_ref().map(tempfile::TempDir::path)
    }

    /// A topic name for this test. Unchanged for a broker of our own; made unique for an
    /// external broker, which outlives test runs and is shared by tests.
    pub fn topic(&self, name: &str) -> String {
        if self.data_dir.is_some() {
            return name.to_owned();
        }
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        format!(
            "{name}-{}-{nanos}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// Whether the broker process is still running.
    pub fn is_running(&mut self) -> Result<bool> {
        match self.child.as_mut() {
            None => Ok(self.data_dir.is_none()),
            Some(child) => Ok(child.try_wait()?.is_none()),
        }
    }

    /// The process id of the running broker.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The broker process's thread count, `Threads:` in `/proc/PID/status` (Linux only).
    pub fn threads(&self) -> Result<usize> {
        let pid = self.pid().context("the broker is not running")?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("reading /proc/{pid}/status"))?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("Threads:"))
            .with_context(|| format!("no Threads: line in /proc/{pid}/status"))?
            .trim()
            .parse()
            .with_context(|| format!("the Threads: line of /proc/{pid}/status"))
    }

    /// How many descriptors the broker process holds open: the entries of `/proc/PID/fd`
    /// (Linux only).
    pub fn open_fds(&self) -> Result<usize> {
        let pid = self.pid().context("the broker is not running")?;
        let dir = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .with_context(|| format!("listing /proc/{pid}/fd"))?;
        Ok(dir.count())
    }

    /// The broker's resident memory (VmRSS), in KiB.
    pub fn rss_kib(&self) -> Result<u64> {
        let pid = self.pid().context("the broker is not running")?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("reading /proc/{pid}/status"))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .context("no VmRSS in /proc/PID/status")
    }

    /// SIGTERM, then waits for the process and checks that it exited 0.
    pub fn stop(&mut self) -> Result<()> {
        let mut child = self.take_child("stop")?;
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .context("running kill -TERM")?;
        ensure!(
            status.success(),
            "kill -TERM {} failed: {status}",
            child.id()
        );
        let exit = wait_timeout(&mut child, STOP_TIMEOUT)?;
        match exit {
            Some(exit) if exit.success() => Ok(()),
            Some(exit) => bail!(
                "rill exited with {exit} after SIGTERM (expected 0)\n{}",
                self.output_tail(40)
            ),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "rill did not exit within {STOP_TIMEOUT:?} of SIGTERM\n{}",
                    self.output_tail(40)
                )
            }
        }
    }

    /// Sets (or with `None` removes) an environment variable for the broker's next start.
    pub fn set_env(&mut self, key: &str, value: Option<&str>) {
        self.env.retain(|(k, _)| k != key);
        if let Some(value) = value {
            self.env.push((key.to_owned(), value.to_owned()));
        }
    }

    /// Waits up to `timeout` for the broker process to exit on its own (a crash): whether it
    /// did. The process is then reaped, so that [`Self::restart`] starts a new one.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<bool> {
        let Some(child) = self.child.as_mut() else {
            return Ok(true);
        };
        let exited = wait_timeout(child, timeout)?.is_some();
        if exited {
            self.child = None;
        }
        Ok(exited)
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill9(&mut self) -> Result<()> {
        let mut child = self.take_child("kill -9")?;
        child.kill().context("sending SIGKILL")?;
        let _ = child.wait()?;
        Ok(())
    }

    /// Starts the broker again on the same port and data directory, stopping it gracefully
    /// first if it is still running.
    pub fn restart(&mut self) -> Result<()> {
        if self.child.is_some() {
            self.stop()?;
        }
        ensure!(
            self.data_dir.is_some(),
            "cannot restart an external broker ({EXTERNAL_ENV})"
        );
        self.spawn()
    }

    /// The broker's stdout and stderr so far, for failure messages.
    pub fn output_text(&self) -> String {
        lock(&self.output).join("\n")
    }

    /// The last `n` lines the broker wrote, labelled, for failure messages.
    pub fn output_tail(&self, n: usize) -> String {
        let lines = lock(&self.output);
        let start = lines.len().saturating_sub(n);
        let mut text = format!(
            "--- rill output (last {} of {} lines) ---\n",
            lines.len() - start,
            lines.len()
        );
        for line in lines.iter().skip(start) {
            text.push_str(line);
            text.push('\n');
        }
        text
    }

    fn take_child(&mut self, what: &str) -> Result<Child> {
        self.child.take().with_context(|| {
            if self.data_dir.is_none() {
                format!("cannot {what} an external broker ({EXTERNAL_ENV})")
            } else {
                format!("cannot {what}: the broker is not running")
            }
        })
    }

    fn spawn(&mut self) -> Result<()> {
        let data_dir = self
            .data_dir()
            .context("no data directory")?
            .to_string_lossy()
            .into_owned();
        let listen = self.bootstrap();
        self.starts += 1;
        self.admin = None;
        lock(&self.output).push(format!("=== start {} of rill serve ===", self.starts));
        // Parallel tests must never meet on the default admin port.
        let own_admin = self
            .args
            .iter()
            .any(|a| a == "--admin-listen" || a.starts_with("--admin-listen="));
        let admin_args: &[&str] = if own_admin {
            &[]
        } else {
            &["--admin-listen", "127.0.0.1:0"]
        };
        // Flags may name the broker's own address as `{listen}` (in a `--listen` with several
        // listeners, whose first is the one the harness talks to).
        let args: Vec<String> = self
            .args
            .iter()
            .map(|a| a.replace("{listen}", &listen))
            .collect();
        let own_listen: &[&str] = if self.args.iter().any(|a| a.contains("{listen}")) {
            &[]
        } else {
            &["--listen", &listen]
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_rill"))
            .arg("serve")
            .args(own_listen)
            .args(["--data-dir", &data_dir])
            .args(admin_args)
            .args(&args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawning the rill binary")?;
        let banner = Arc::new(Banner::default());
        let needle = format!("listening on {listen}");
        if let Some(stdout) = child.stdout.take() {
            collect_lines(stdout, "out", Arc::clone(&self.output), &needle, &banner);
        }
        if let Some(stderr) = child.stderr.take() {
            collect_lines(stderr, "err", Arc::clone(&self.output), &needle, &banner);
        }
        self.child = Some(child);
        let started = Instant::now();
        loop {
            // The admin line follows `listening on` in the same banner.
            if banner.listening.load(Ordering::Acquire)
                && let Some(admin) = banner.admin()
            {
                self.admin = admin;
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                self.child = None;
                // Let the reader threads drain what the process wrote before it died.
                thread::sleep(Duration::from_millis(100));
                bail!(
                    "rill serve --listen {listen} exited with {status} before it was ready\n{}",
                    self.output_tail(60)
                );
            }
            thread::sleep(ms(10));
            if started.elapsed() > START_TIMEOUT {
                if let Some(mut child) = self.child.take() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
                bail!(
                    "rill serve --listen {listen} did not print `{needle}` and its \
                     `admin http:` line within {START_TIMEOUT:?}\n{}",
                    self.output_tail(60)
                );
            }
            thread::sleep(ms(10));
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if self.starts > 0 {
            // Shown by libtest only when the test fails (it captures the test thread's output).
            eprintln!("{}", self.output_tail(80));
        }
    }
}

fn collect_lines(
    stream: impl Read + Send + 'static,
    label: &'static str,
    output: Lines,
    needle: &str,
    banner: &Arc<Banner>,
) {
    let needle = needle.to_owned();
    let banner = Arc::clone(banner);
    let _ = thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if line.contains(&needle) {
                banner.listening.store(true, Ordering::Release);
            }
            // The banner is on stdout: `  admin http:  http(s)://ADDR` or `... off (...)`.
            if let Some(admin) = line
                .strip_prefix("  admin http:")
                .filter(|_| label == "out")
            {
                let admin = admin.trim();
                let addr = admin
                    .strip_prefix("http://")
                    .or_else(|| admin.strip_prefix("https://"))
                    .and_then(|a| a.parse().ok());
                *lock(&banner.admin) = Some(addr);
            }
            lock(&output).push(format!("[{label}] {line}"));
        }
    });
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A loopback port nobody listened on a moment ago.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Waits for `child` up to `timeout`; `None` if it is still running.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        thread::sleep(ms(10));
    }
}

/// What a bounded command run produced.
#[derive(Debug)]
pub struct RunOutput {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl RunOutput {
    /// Standard output as text (lossy).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// Runs `command` with `stdin` fed to it, killing it after `timeout`.
pub fn run(mut command: Command, stdin: &[u8], timeout: Duration) -> Result<RunOutput> {
    let what = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawning {what}"))?;
    let input = stdin.to_vec();
    let mut child_stdin = child.stdin.take();
    let writer = thread::spawn(move || {
        if let Some(pipe) = child_stdin.as_mut() {
            // The child may exit without reading everything; its exit status tells.
            let _ = pipe.write_all(&input);
        }
    });
    let stdout = read_all_in_background(child.stdout.take());
    let stderr = read_all_in_background(child.stderr.take());
    let status = match wait_timeout(&mut child, timeout)? {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = String::from_utf8_lossy(&join_bytes(stderr)).into_owned();
            bail!("{what} did not finish within {timeout:?}; stderr:\n{stderr}");
        }
    };
    let _ = writer.join();
    Ok(RunOutput {
        status,
        stdout: join_bytes(stdout),
        stderr: String::from_utf8_lossy(&join_bytes(stderr)).into_owned(),
    })
}

fn read_all_in_background(
    stream: Option<impl Read + Send + 'static>,
) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut stream) = stream {
            let _ = stream.read_to_end(&mut buf);
        }
        buf
    })
}

fn join_bytes(handle: thread::JoinHandle<Vec<u8>>) -> Vec<u8> {
    handle.join().unwrap_or_default()
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The venv's interpreter (`<repo>/.venv/bin/python`) or `RILL_TEST_PYTHON`.
pub fn python() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(PYTHON_ENV) {
        return Ok(PathBuf::from(path));
    }
    let path = repo_root().join(".venv/bin/python");
    ensure!(
        path.exists(),
        "{} is missing: run scripts/test (it creates the venv with the Kafka clients) or set {PYTHON_ENV}",
        path.display()
    );
    Ok(path)
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop")
        .join(name)
}

/// A command running `tests/interop/<name>` with the venv's Python.
pub fn python_command(name: &str, args: &[String]) -> Result<Command> {
    let mut command = Command::new(python()?);
    let _ = command.arg("-u").arg(script(name)).args(args);
    Ok(command)
}

/// Runs a client script, which prints one JSON document; fails with its stderr if it fails.
pub fn run_py(name: &str, args: &[String], stdin: &[u8]) -> Result<Value> {
    json_of(
        name,
        args,
        run(python_command(name, args)?, stdin, CLIENT_TIMEOUT)?,
    )
}

/// What a client script that ran printed (one JSON document); fails with its stderr if it
/// failed.
fn json_of(name: &str, args: &[String], out: RunOutput) -> Result<Value> {
    ensure!(
        out.status.success(),
        "{name} {args:?} failed ({}):\n{}",
        out.status,
        out.stderr
    );
    serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "{name} printed no JSON: {}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            out.stderr
        )
    })
}

/// Runs a client script that is expected to fail; returns its stderr.
pub fn run_py_failing(name: &str, args: &[String], stdin: &[u8]) -> Result<String> {
    let out = run(python_command(name, args)?, stdin, CLIENT_TIMEOUT)?;
    ensure!(
        !out.status.success(),
        "{name} {args:?} succeeded but should have failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    Ok(out.stderr)
}

/// A command running the kafkajs script `tests/interop/<name>` with `node` from PATH; the
/// script finds kafkajs under `<repo>/.node/` (where `scripts/test` installs it).
pub fn node_command(name: &str, args: &[String]) -> Command {
    let mut command = Command::new("node");
    let _ = command.arg(script(name)).args(args);
    command
}

/// Runs a kafkajs script, which prints one JSON document; fails with its stderr if it fails.
pub fn run_node(name: &str, args: &[String]) -> Result<Value> {
    json_of(
        name,
        args,
        run(node_command(name, args), b"", CLIENT_TIMEOUT)?,
    )
}

/// `kcat` from PATH; fails with a pointer to `scripts/test` if it is missing.
pub fn kcat(args: &[&str], stdin: &[u8]) -> Result<RunOutput> {
    let mut command = Command::new("kcat");
    let _ = command.args(args);
    match run(command, stdin, CLIENT_TIMEOUT) {
        Err(err) if format!("{err:#}").contains("No such file") => {
            bail!("kcat is not installed: run scripts/test (it installs kcat)")
        }
        other => other,
    }
}

/// Like [`kcat`], but fails unless kcat exits 0; returns stdout as text.
pub fn kcat_ok(args: &[&str], stdin: &[u8]) -> Result<String> {
    let out = kcat(args, stdin)?;
    ensure!(
        out.status.success(),
        "kcat {args:?} failed ({}):\n{}",
        out.status,
        out.stderr
    );
    String::from_utf8(out.stdout).context("kcat output is not UTF-8")
}

/// A fixture under `tests/fixtures/`.
#[allow(dead_code)]
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Copies a directory tree (files and directories only).
#[allow(dead_code)]
pub fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            let _ = std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}
