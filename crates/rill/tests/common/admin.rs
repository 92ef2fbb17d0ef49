//! The broker's admin HTTP listener from the outside: a minimal HTTP/1.1 client over std
//! `TcpStream`, and a parser for the Prometheus text exposition format.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context, bail, ensure};

use super::{Broker, Result};

/// An HTTP answer.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names in lower case.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn text(&self) -> Result<&str> {
        std::str::from_utf8(&self.body).context("the body is not UTF-8")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

impl Broker {
    /// Waits (bounded) until `/health/ready` answers 200: the banner comes before the data
    /// directory is opened, readiness after.
    pub fn wait_ready(&self) -> Result<()> {
        let deadline = std::time::Instant::now() + super::START_TIMEOUT;
        loop {
            let status = http_get(self, "/health/ready")?.status;
            if status == 200 {
                return Ok(());
            }
            ensure!(
                std::time::Instant::now() < deadline,
                "/health/ready still answers {status} after {:?}\n{}",
                super::START_TIMEOUT,
                self.output_tail(40)
            );
            std::thread::sleep(super::ms(10));
        }
    }
}

/// `GET path` on the broker's admin listener.
pub fn http_get(broker: &Broker, path: &str) -> Result<HttpResponse> {
    http_call(broker, "GET", path)
}

/// One request with `method` (and no body), on a fresh connection that the request closes.
pub fn http_call(broker: &Broker, method: &str, path: &str) -> Result<HttpResponse> {
    let addr = broker
        .admin_addr()
        .context("the broker has no admin listener")?;
    let request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let raw = http_raw(addr, request.as_bytes())?;
    parse_response(&raw).with_context(|| {
        format!(
            "{method} {path}: unreadable answer {:?}",
            String::from_utf8_lossy(&raw)
        )
    })
}

/// Writes `bytes` to `addr` and reads until the server closes the connection (bounded).
pub fn http_raw(addr: SocketAddr, bytes: &[u8]) -> Result<Vec<u8>> {
    let mut stream =
        TcpStream::connect(addr).with_context(|| format!("connecting to admin http {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(bytes)?;
    let mut raw = Vec::new();
    let _ = stream
        .read_to_end(&mut raw)
        .with_context(|| format!("reading the answer from {addr}"))?;
    Ok(raw)
}

/// Parses one HTTP/1.1 response (status line, headers, a body of `content-length` bytes).
pub fn parse_response(raw: &[u8]) -> Result<HttpResponse> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no end of the head")?;
    let head = std::str::from_utf8(&raw[..split]).context("head is not UTF-8")?;
    let body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().context("no status line")?;
    let mut parts = status_line.splitn(3, ' ');
    ensure!(
        parts.next() == Some("HTTP/1.1"),
        "status line {status_line:?}"
    );
    let status = parts
        .next()
        .context("no status code")?
        .parse()
        .context("status code")?;
    let mut headers = BTreeMap::new();
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .with_context(|| format!("header line {line:?}"))?;
        let _ = headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    if let Some(length) = headers.get("content-length") {
        let length: usize = length.parse().context("content-length")?;
        ensure!(
            length == body.len(),
            "content-length {length}, body {} bytes",
            body.len()
        );
    }
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

/// One sample of a scrape: `name{labels} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed `/metrics` answer.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    /// `# TYPE` of each metric family.
    pub types: BTreeMap<String, String>,
    pub samples: Vec<Sample>,
}

impl Scrape {
    /// The value of the one sample named `name` with exactly these labels.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels == want)
            .map(|s| s.value)
    }

    /// Like [`Scrape::get`], but 0 for a series that is not there (yet).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or(0.0)
    }

    /// Every sample named `name`.
    pub fn all(&self, name: &str) -> Vec<&Sample> {
        self.samples.iter().filter(|s| s.name == name).collect()
    }

    /// The `# TYPE` of a family.
    pub fn type_of(&self, family: &str) -> Option<&str> {
        self.types.get(family).map(String::as_str)
    }
}

/// Scrapes `/metrics`: checks the status and the content type, and parses the text format.
pub fn scrape(broker: &Broker) -> Result<Scrape> {
    let response = http_get(broker, "/metrics")?;
    ensure!(
        response.status == 200,
        "/metrics answered {}",
        response.status
    );
    let content_type = response.header("content-type").unwrap_or_default();
    ensure!(
        content_type.starts_with("text/plain") && content_type.contains("version=0.0.4"),
        "/metrics content type {content_type:?}"
    );
    parse_metrics(response.text()?)
}

/// Parses the Prometheus text exposition format (version 0.0.4): `# HELP` and `# TYPE` lines,
/// and samples `name{label="value",...} value [timestamp]` with escaped label values. Every
/// sample must belong to a family declared by a `# TYPE` line before it.
pub fn parse_metrics(text: &str) -> Result<Scrape> {
    let mut scrape = Scrape::default();
    for (number, line) in text.lines().enumerate() {
        let context = || format!("line {}: {line:?}", number + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.trim_start().splitn(3, ' ');
            if words.next() == Some("TYPE") {
                let family = words.next().with_context(context)?;
                let kind = words.next().with_context(context)?;
                ensure!(
                    matches!(
                        kind,
                        "counter" | "gauge" | "histogram" | "summary" | "untyped"
                    ),
                    "unknown type {kind:?} ({})",
                    context()
                );
                let _ = scrape.types.insert(family.to_owned(), kind.to_owned());
            }
            continue;
        }
        let sample = parse_sample(line).with_context(context)?;
        let family = family_of(&sample.name, &scrape.types)
            .with_context(|| format!("no # TYPE line for {} ({})", sample.name, context()))?;
        if scrape.type_of(family) == Some("counter") {
            ensure!(
                sample.name.ends_with("_total"),
                "counter without _total: {}",
                sample.name
            );
        }
        scrape.samples.push(sample);
    }
    Ok(scrape)
}

/// The declared family a sample belongs to (a histogram's `_bucket`, `_sum` and `_count`
/// belong to the histogram).
fn family_of<'a>(name: &'a str, types: &BTreeMap<String, String>) -> Option<&'a str> {
    if types.contains_key(name) {
        return Some(name);
    }
    ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
        let family = name.strip_suffix(suffix)?;
        matches!(
            types.get(family).map(String::as_str),
            Some("histogram" | "summary")
        )
        .then_some(family)
    })
}

fn parse_sample(line: &str) -> Result<Sample> {
    let name_end = line.find(['{', ' ']).context("no value")?;
    let name = &line[..name_end];
    ensure!(
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            && !name.starts_with(|c: char| c.is_ascii_digit()),
        "bad metric name {name:?}"
    );
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(after) = rest.strip_prefix('{') {
        rest = parse_labels(after, &mut labels)?;
    }
    let mut fields = rest.split_whitespace();
    let value = fields.next().context("no value")?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().with_context(|| format!("value {v:?}"))?,
    };
    if let Some(timestamp) = fields.next() {
        let _: i64 = timestamp.parse().context("timestamp")?;
    }
    ensure!(fields.next().is_none(), "trailing fields");
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Parses `name="value",...}` (after the `{`); returns what follows the `}`.
fn parse_labels<'a>(mut rest: &'a str, labels: &mut BTreeMap<String, String>) -> Result<&'a str> {
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Ok(after);
        }
        let (label, after) = rest.split_once('=').context("label without =")?;
        ensure!(
            !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "bad label name {label:?}"
        );
        let quoted = after.strip_prefix('"').context("label value not quoted")?;
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        let end = loop {
            match chars.next().context("unterminated label value")? {
                (i, '"') => break i,
                (_, '\\') => match chars.next().context("dangling escape")?.1 {
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    'n' => value.push('\n'),
                    other => bail!("unknown escape \\{other}"),
                },
                (_, c) => value.push(c),
            }
        };
        ensure!(
            labels.insert(label.to_owned(), value).is_none(),
            "label {label} twice"
        );
        rest = &quoted[end + 1..];
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else {
            ensure!(rest.starts_with('}'), "expected , or }} after a label");
        }
    }
}
