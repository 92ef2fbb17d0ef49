//! The MQTT tests' harness: a broker with an MQTT listener, mosquitto_pub, client scripts
//! running in the background, and what mqtt_subscribe.py reports.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail, ensure};
use serde_json::Value;

use super::{Broker, Result, free_port, python_command, run, show, unhex, wait_timeout};

/// A broker with an MQTT listener on its own free loopback port.
pub struct Mqtt {
    pub broker: Broker,
    pub port: u16,
}

impl Mqtt {
    /// Starts `rill serve --mqtt-listen 127.0.0.1:PORT` with `extra` flags. A port that was
    /// free when picked may be taken before the broker binds it, so a few are tried.
    pub fn start(extra: &[&str]) -> Result<Self> {
        let mut last = None;
        for _ in 0..3 {
            let port = free_port()?;
            let listen = format!("127.0.0.1:{port}");
            let mut args = vec!["--mqtt-listen", listen.as_str()];
            args.extend_from_slice(extra);
            match Broker::start_with(&args) {
                Ok(broker) => return Ok(Self { broker, port }),
                Err(err) if format!("{err:#}").contains("in use") => last = Some(err),
                Err(err) => return Err(err),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("could not start the broker")))
    }

    pub fn port_arg(&self) -> String {
        self.port.to_string()
    }
}

pub fn now_ms() -> Result<i64> {
    Ok(i64::try_from(
        SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis(),
    )?)
}

/// Runs `mosquitto_pub -h 127.0.0.1 -p PORT ARGS` (with `stdin` for `-l`); fails with its
/// stderr unless it exits 0.
pub fn mosquitto_pub(port: u16, args: &[&str], stdin: &[u8]) -> Result<()> {
    let mut command = Command::new("mosquitto_pub");
    let _ = command
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args);
    let out = match run(command, stdin, Duration::from_secs(30)) {
        Err(err) if format!("{err:#}").contains("No such file") => {
            bail!(
                "mosquitto_pub is not installed: run scripts/test (it installs mosquitto-clients)"
            )
        }
        other => other?,
    };
    ensure!(
        out.status.success(),
        "mosquitto_pub {args:?} failed ({}):\n{}{}",
        out.status,
        out.stdout_text(),
        out.stderr
    );
    Ok(())
}

/// A client script running in the background, its stdout and stderr going to files.
pub struct Script {
    pub name: String,
    pub child: Child,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

impl Script {
    pub fn spawn(name: &str, args: &[String], dir: &Path, tag: &str) -> Result<Self> {
        let stdout = dir.join(format!("{tag}.stdout"));
        let stderr = dir.join(format!("{tag}.stderr"));
        let child = python_command(name, args)?
            .stdin(Stdio::null())
            .stdout(File::create(&stdout)?)
            .stderr(File::create(&stderr)?)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Self {
            name: format!("{name} ({tag})"),
            child,
            stdout,
            stderr,
        })
    }

    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Fails if the script has already exited (it should still be running).
    pub fn check_running(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} exited early with {status}:\n{}",
                self.name,
                self.stderr_text()
            );
        }
        Ok(())
    }

    /// Waits for the script to finish and returns the JSON document it printed.
    pub fn finish(mut self, timeout: Duration) -> Result<Value> {
        let Some(status) = wait_timeout(&mut self.child, timeout)? else {
            let _ = self.child.kill();
            let _ = self.child.wait();
            bail!(
                "{} did not finish within {timeout:?}; stderr:\n{}",
                self.name,
                self.stderr_text()
            );
        };
        ensure!(
            status.success(),
            "{} failed ({status}):\n{}",
            self.name,
            self.stderr_text()
        );
        let out = std::fs::read(&self.stdout)?;
        serde_json::from_slice(&out).with_context(|| {
            format!(
                "{} printed no JSON: {}",
                self.name,
                String::from_utf8_lossy(&out)
            )
        })
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A message as mqtt_subscribe.py reports it.
#[derive(Debug, PartialEq, Eq)]
pub struct Delivered {
    pub topic: String,
    pub payload: String,
    pub qos: u64,
    pub user_properties: Vec<(String, String)>,
    pub content_type: Option<String>,
}

pub fn delivered(out: &Value) -> Result<Vec<Delivered>> {
    let messages = out
        .get("messages")
        .and_then(Value::as_array)
        .with_context(|| format!("no messages in {out}"))?;
    messages
        .iter()
        .map(|m| {
            let field = |name: &str| {
                m.get(name)
                    .and_then(Value::as_str)
                    .with_context(|| format!("no {name} in {m}"))
            };
            let user_properties = m
                .get("user_properties")
                .and_then(Value::as_array)
                .context("user_properties")?
                .iter()
                .map(|pair| {
                    let get = |i: usize| {
                        pair.get(i)
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                            .context("user property")
                    };
                    Ok((get(0)?, get(1)?))
                })
                .collect::<Result<_>>()?;
            let payload = unhex(field("payload")?)?;
            Ok(Delivered {
                topic: field("topic")?.to_owned(),
                payload: String::from_utf8(payload.clone())
                    .unwrap_or_else(|_| show(Some(&payload))),
                qos: m.get("qos").and_then(Value::as_u64).context("qos")?,
                user_properties,
                content_type: m
                    .get("content_type")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            })
        })
        .collect()
}
