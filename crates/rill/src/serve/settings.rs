//! Where each `rill serve` setting comes from: its flag, its `RILL_*` environment variable, the
//! TOML config file (`--config`, keyed by Kafka's own property names where Kafka has one), or its
//! default, in that order. [`Sources`] resolves one setting at a time and remembers the answer
//! for `--print-config`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::parser::ValueSource;

/// A config file key and what one unit of it is worth in the setting's unit (for example
/// `log.retention.hours` is 3,600,000 of the setting's milliseconds).
pub(super) type Key = (&'static str, i64);

/// A setting's value as text: read from the config file, shown by `--print-config`.
pub(super) trait Value: Sized {
    /// Parses the config file's text, multiplying numbers by `scale`.
    fn from_text(text: &str, scale: i64) -> Result<Self, String>;
    /// The value as TOML, or `None` when unset.
    fn to_toml(&self) -> Option<String>;
}

macro_rules! integer_value {
    ($($t:ty),*) => {$(
        impl Value for $t {
            fn from_text(text: &str, scale: i64) -> Result<Self, String> {
                let n: i64 = text
                    .trim()
                    .parse()
                    .map_err(|_| format!("expected a whole number, got '{text}'"))?;
                // -1 means "no limit" whatever the unit (`log.retention.hours = -1`).
                let n = if n == -1 { Some(-1) } else { n.checked_mul(scale) };
                n.and_then(|n| <$t>::try_from(n).ok())
                    .ok_or_else(|| format!("{text} is out of range"))
            }
            fn to_toml(&self) -> Option<String> {
                Some(self.to_string())
            }
        }
    )*};
}
integer_value!(i16, i32, i64, u64, usize);

impl Value for bool {
    fn from_text(text: &str, _: i64) -> Result<Self, String> {
        match text.trim() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(format!("expected true or false, got '{text}'")),
        }
    }
    fn to_toml(&self) -> Option<String> {
        Some(self.to_string())
    }
}

impl Value for String {
    fn from_text(text: &str, _: i64) -> Result<Self, String> {
        Ok(text.to_owned())
    }
    fn to_toml(&self) -> Option<String> {
        Some(quote(self))
    }
}

impl Value for PathBuf {
    fn from_text(text: &str, _: i64) -> Result<Self, String> {
        let dirs: Vec<&str> = text.split(',').map(str::trim).collect();
        match dirs.as_slice() {
            [dir] if !dir.is_empty() => Ok(PathBuf::from(dir)),
            [_] => Err("the directory is empty".to_owned()),
            _ => Err(format!(
                "Rill keeps its data in one directory, but this lists {}",
                dirs.len()
            )),
        }
    }
    fn to_toml(&self) -> Option<String> {
        Some(quote(&self.display().to_string()))
    }
}

impl Value for SocketAddr {
    fn from_text(text: &str, _: i64) -> Result<Self, String> {
        text.trim()
            .parse()
            .map_err(|_| format!("expected ip:port, got '{text}'"))
    }
    fn to_toml(&self) -> Option<String> {
        Some(quote(&self.to_string()))
    }
}

/// Kafka's `listeners`: `NAME://ip:port` entries (a bare `ip:port` is `PLAINTEXT://ip:port`),
/// in order, without the `CONTROLLER://` one (the quorum's, read by `rill.controller.listen`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct KafkaListeners(pub(super) Vec<(String, SocketAddr)>);

impl std::str::FromStr for KafkaListeners {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut listeners: Vec<(String, SocketAddr)> = Vec::new();
        for item in text.split(',').map(str::trim) {
            let (name, address) = match item.split_once("://") {
                None => ("PLAINTEXT".to_owned(), item),
                Some((name, address)) => (name.to_ascii_uppercase(), address),
            };
            if name == "CONTROLLER" {
                continue;
            }
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("'{item}' is not NAME://ip:port"));
            }
            let address: SocketAddr = address
                .parse()
                .map_err(|_| format!("expected NAME://ip:port, got '{item}'"))?;
            if listeners.iter().any(|(n, _)| *n == name) {
                return Err(format!("'{text}' names listener {name} twice"));
            }
            listeners.push((name, address));
        }
        if listeners.is_empty() {
            return Err(format!("'{text}' names no Kafka listener"));
        }
        Ok(Self(listeners))
    }
}

impl Value for KafkaListeners {
    fn from_text(text: &str, _: i64) -> Result<Self, String> {
        text.parse()
    }
    fn to_toml(&self) -> Option<String> {
        Some(quote(&match self.0.as_slice() {
            [(name, address)] if name == "PLAINTEXT" => address.to_string(),
            all => all
                .iter()
                .map(|(name, address)| format!("{name}://{address}"))
                .collect::<Vec<_>>()
                .join(","),
        }))
    }
}

/// Kafka's `listener.security.protocol.map`: listener name to security protocol.
pub(super) fn protocol_map(text: &str) -> Result<Vec<(String, String)>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            let (name, protocol) = item
                .split_once(':')
                .ok_or_else(|| format!("expected NAME:PROTOCOL, got '{item}'"))?;
            let protocol = protocol.trim().to_ascii_uppercase();
            match protocol.as_str() {
                "PLAINTEXT" | "SSL" | "SASL_PLAINTEXT" | "SASL_SSL" => {
                    Ok((name.trim().to_ascii_uppercase(), protocol))
                }
                _ => Err(format!(
                    "{protocol} is not a security protocol (PLAINTEXT, SSL, SASL_PLAINTEXT, \
                     SASL_SSL)"
                )),
            }
        })
        .collect()
}

/// Kafka's `advertised.listeners`: `NAME://host:port` entries; a bare `host:port` is the first
/// listener's.
pub(super) fn advertised_listeners(
    text: &str,
) -> Result<Vec<(Option<String>, String, u16)>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        // Kafka's combined mode may list the controller's; clients are not told of it.
        .filter(|item| !item.to_ascii_uppercase().starts_with("CONTROLLER://"))
        .map(|item| {
            let (name, address) = match item.split_once("://") {
                None => (None, item),
                Some((name, address)) => (Some(name.to_ascii_uppercase()), address),
            };
            let (host, port) = address
                .rsplit_once(':')
                .ok_or_else(|| format!("expected host:port, got '{item}'"))?;
            let port = port.parse().map_err(|_| format!("bad port in '{item}'"))?;
            Ok((name, host.to_owned(), port))
        })
        .collect()
}

impl<T: Value> Value for Option<T> {
    fn from_text(text: &str, scale: i64) -> Result<Self, String> {
        T::from_text(text, scale).map(Some)
    }
    fn to_toml(&self) -> Option<String> {
        self.as_ref().and_then(T::to_toml)
    }
}

/// The `CONTROLLER://` address in a Kafka `listeners` list, if it has one.
pub(super) fn controller_address(text: &str) -> Option<&str> {
    text.split(',').map(str::trim).find_map(|item| {
        item.split_once("://")
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("CONTROLLER"))
            .map(|(_, address)| address)
    })
}

/// Where the controller listener binds: `rill.controller.listen` (an address) or the
/// `CONTROLLER://` entry of Kafka's `listeners`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ControllerListen(pub(super) String);

impl std::str::FromStr for ControllerListen {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Self(text.trim().to_owned()))
    }
}

impl Value for Option<ControllerListen> {
    fn from_text(text: &str, _: i64) -> Result<Self, String> {
        if text.contains("://") {
            return Ok(controller_address(text).map(|a| ControllerListen(a.to_owned())));
        }
        Ok(Some(ControllerListen(text.trim().to_owned())))
    }
    fn to_toml(&self) -> Option<String> {
        self.as_ref().map(|c| quote(&c.0))
    }
}

fn quote(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(quoted, "\\u{:04X}", u32::from(c));
            }
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// A parsed config file: every key flattened to Kafka's dotted form (`log.dirs = "x"` and
/// `[log] dirs = "x"` are the same key), each value as text.
#[derive(Debug)]
struct ConfigFile {
    path: PathBuf,
    values: BTreeMap<String, String>,
}

impl ConfigFile {
    fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        let table: toml::Table = text.parse().map_err(|err: toml::de::Error| {
            let at = err.span().map_or(String::new(), |span| {
                let before = text.get(..span.start).unwrap_or_default();
                let line = before.matches('\n').count() + 1;
                let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                format!(" at line {line}, column {column}")
            });
            anyhow::anyhow!(
                "config file {} is not valid TOML{at}: {}",
                path.display(),
                err.message().trim()
            )
        })?;
        let mut values = BTreeMap::new();
        flatten("", &table, &mut values)
            .with_context(|| format!("in config file {}", path.display()))?;
        Ok(Self {
            path: path.to_owned(),
            values,
        })
    }
}

fn flatten(
    prefix: &str,
    table: &toml::Table,
    out: &mut BTreeMap<String, String>,
) -> anyhow::Result<()> {
    for (name, value) in table {
        let key = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        let text = match value {
            toml::Value::Table(inner) => {
                flatten(&key, inner, out)?;
                continue;
            }
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(n) => n.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            _ => bail!("{key} must be a string, a whole number or true/false"),
        };
        let _ = out.insert(key, text);
    }
    Ok(())
}

/// One resolved setting, for `--print-config`.
#[derive(Debug)]
struct Resolved {
    key: &'static str,
    value: Option<String>,
    source: String,
}

/// Resolves settings against the command line, the environment and the config file.
#[derive(Debug)]
pub(super) struct Sources<'a> {
    matches: &'a clap::ArgMatches,
    file: Option<ConfigFile>,
    used: BTreeSet<String>,
    resolved: Vec<Resolved>,
}

impl<'a> Sources<'a> {
    pub(super) fn new(matches: &'a clap::ArgMatches, file: Option<&Path>) -> anyhow::Result<Self> {
        Ok(Self {
            matches,
            file: file.map(ConfigFile::read).transpose()?,
            used: BTreeSet::new(),
            resolved: Vec::new(),
        })
    }

    /// The value of the setting behind the flag with id `id` (clap's field name), whose parsed
    /// flag-or-default value is `parsed`, read from the config file under `keys` (the first
    /// listed wins when several are present, as Kafka's `ms` beats `minutes` beats `hours`).
    pub(super) fn get<T: Value>(
        &mut self,
        id: &'static str,
        parsed: T,
        keys: &[Key],
    ) -> anyhow::Result<T> {
        let primary = keys.first().map_or(id, |(key, _)| *key);
        // The file's value is parsed even when a flag overrides it: a bad line in a config file
        // is an error now, not when someone drops the flag.
        let mut from_file = None;
        if let Some(file) = &self.file {
            for (key, scale) in keys {
                let Some(text) = file.values.get(*key) else {
                    continue;
                };
                let _ = self.used.insert((*key).to_owned());
                let value = T::from_text(text, *scale)
                    .map_err(|why| anyhow::anyhow!("{key} in {}: {why}", file.path.display()))?;
                if from_file.is_none() {
                    let from = if *key == primary {
                        String::new()
                    } else {
                        format!(", from {key} = {text}")
                    };
                    from_file = Some((value, format!("file {}{from}", file.path.display())));
                }
            }
        }
        let (value, source) = match self.matches.value_source(id) {
            Some(ValueSource::CommandLine) => (parsed, format!("flag --{}", id.replace('_', "-"))),
            Some(ValueSource::EnvVariable) => (parsed, format!("env RILL_{}", id.to_uppercase())),
            _ => from_file.unwrap_or_else(|| (parsed, "default".to_owned())),
        };
        self.show(primary, &value, source);
        Ok(value)
    }

    fn show<T: Value>(&mut self, key: &'static str, value: &T, source: String) {
        self.resolved.push(Resolved {
            key,
            value: value.to_toml(),
            source,
        });
    }

    /// Fails on a config file key that no setting read: a misspelt or unsupported setting must
    /// not be silently ignored.
    pub(super) fn check_unused(&self) -> anyhow::Result<()> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let unknown: Vec<&str> = file
            .values
            .keys()
            .filter(|key| !self.used.contains(*key))
            .map(String::as_str)
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        bail!(
            "config file {} has settings Rill does not know: {} (`rill serve --print-config` \
             lists those it knows)",
            file.path.display(),
            unknown.join(", ")
        )
    }

    /// The effective settings as a config file, each with where it came from.
    pub(super) fn render(&self) -> String {
        let mut out = String::from(
            "# rill serve: effective settings (flag > RILL_* environment > config file > default)\n",
        );
        let width = self
            .resolved
            .iter()
            .map(|r| r.key.len() + r.value.as_ref().map_or(9, String::len) + 3)
            .max()
            .unwrap_or(0);
        for r in &self.resolved {
            let line = match &r.value {
                Some(value) => format!("{} = {value}", r.key),
                None => format!("# {} unset", r.key),
            };
            let _ = writeln!(out, "{line:<width$}  # {}", r.source);
        }
        out
    }
}

/// Kafka's `sasl.enabled.mechanisms`: a comma-separated list of the mechanisms Rill serves.
pub(super) fn sasl_mechanisms(text: &str) -> Result<Vec<String>, String> {
    let mut mechanisms: Vec<String> = Vec::new();
    for name in text.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        let name = name.to_ascii_uppercase();
        if !rill_broker::MECHANISMS.contains(&name.as_str()) {
            return Err(format!(
                "{name} is not served (PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 are)"
            ));
        }
        if !mechanisms.contains(&name) {
            mechanisms.push(name);
        }
    }
    if mechanisms.is_empty() {
        return Err("name at least one mechanism".to_owned());
    }
    Ok(mechanisms)
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a test fails by panicking")]
mod tests {
    use super::*;

    #[test]
    fn numbers_scale_and_refuse_overflow() {
        assert_eq!(i64::from_text("168", 3_600_000), Ok(604_800_000));
        assert!(i32::from_text("3000000", 1000).is_err());
        assert!(u64::from_text("-1", 1).is_err());
        assert_eq!(i64::from_text("-1", 3_600_000), Ok(-1));
        assert!(i64::from_text("12x", 1).is_err());
    }

    #[test]
    fn listeners_take_kafka_form() {
        let one = KafkaListeners::from_text("PLAINTEXT://127.0.0.1:9092", 1).unwrap();
        assert_eq!(one, KafkaListeners::from_text("127.0.0.1:9092", 1).unwrap());
        assert_eq!(one.to_toml().unwrap(), "\"127.0.0.1:9092\"");
        let two = KafkaListeners::from_text(
            "PLAINTEXT://127.0.0.1:9092, ssl://0.0.0.0:9093,CONTROLLER://127.0.0.1:9094",
            1,
        )
        .unwrap();
        assert_eq!(two.0.len(), 2);
        assert_eq!(
            two.to_toml().unwrap(),
            "\"PLAINTEXT://127.0.0.1:9092,SSL://0.0.0.0:9093\""
        );
        assert!(KafkaListeners::from_text("127.0.0.1:1,127.0.0.1:2", 1).is_err());
        assert!(KafkaListeners::from_text("CONTROLLER://127.0.0.1:1", 1).is_err());
        assert!(KafkaListeners::from_text("A B://127.0.0.1:1", 1).is_err());
    }

    #[test]
    fn protocol_map_and_advertised_listeners() {
        assert_eq!(
            protocol_map("internal:plaintext, EXTERNAL:SSL").unwrap(),
            vec![
                ("INTERNAL".to_owned(), "PLAINTEXT".to_owned()),
                ("EXTERNAL".to_owned(), "SSL".to_owned())
            ]
        );
        assert!(protocol_map("A:TLS").is_err());
        assert_eq!(
            advertised_listeners("SSL://kafka.example:9093,h:1").unwrap(),
            vec![
                (Some("SSL".to_owned()), "kafka.example".to_owned(), 9093),
                (None, "h".to_owned(), 1)
            ]
        );
        assert!(advertised_listeners("h").is_err());
    }

    #[test]
    fn one_data_dir() {
        assert_eq!(PathBuf::from_text(" /d ", 1), Ok(PathBuf::from("/d")));
        assert!(PathBuf::from_text("/a,/b", 1).is_err());
    }

    #[test]
    fn nested_tables_flatten_to_dotted_keys() {
        let table: toml::Table = "num.partitions = 3\n[log]\ndirs = \"/x\"\nretention.hours = 1"
            .parse()
            .unwrap();
        let mut out = BTreeMap::new();
        flatten("", &table, &mut out).unwrap();
        assert_eq!(out.get("log.dirs").map(String::as_str), Some("/x"));
        assert_eq!(
            out.get("log.retention.hours").map(String::as_str),
            Some("1")
        );
        assert_eq!(out.get("num.partitions").map(String::as_str), Some("3"));
    }

    #[test]
    fn quotes_are_valid_toml() {
        let text = format!("k = {}", quote("a\"b\\c\u{1}"));
        let table: toml::Table = text.parse().unwrap();
        assert_eq!(table["k"].as_str(), Some("a\"b\\c\u{1}"));
    }
}
