//! Records in and out of the client scripts (`tests/interop/*.py`), as Rust values, and the
//! checks every interop test makes on what comes back.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};

use super::{Broker, Result, run_py};

/// The two Python clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// confluent-kafka (librdkafka).
    Confluent,
    /// kafka-python (pure Python).
    KafkaPython,
}

impl Client {
    pub fn name(self) -> &'static str {
        match self {
            Client::Confluent => "confluent",
            Client::KafkaPython => "kafka-python",
        }
    }
}

/// A record to produce.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rec {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// `None`: the client's partitioner decides.
    pub partition: Option<i32>,
    /// CreateTime in ms; `None`: the client stamps it.
    pub timestamp: Option<i64>,
}

impl Rec {
    pub fn kv(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        Self {
            key: Some(key.into()),
            value: Some(value.into()),
            ..Self::default()
        }
    }

    fn to_json(&self) -> Value {
        let headers: Vec<Value> = self
            .headers
            .iter()
            .map(|(name, value)| json!([name, value.as_deref().map(hex)]))
            .collect();
        json!({
            "k": self.key.as_deref().map(hex),
            "v": self.value.as_deref().map(hex),
            "h": headers,
            "p": self.partition,
            "ts": self.timestamp,
        })
    }
}

/// Where the broker put one produced record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Delivery {
    /// Position in the produced list.
    pub index: usize,
    pub partition: i32,
    pub offset: i64,
}

/// A record as a client read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumed {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub timestamp: i64,
    /// `"create"`, `"log_append"` or `None`.
    pub timestamp_type: Option<String>,
}

/// What a consume run saw: the high watermarks it read up to, and the records.
#[derive(Debug, Clone)]
pub struct Consumption {
    pub end: BTreeMap<i32, i64>,
    pub records: Vec<Consumed>,
}

/// Produces `records` to `topic` with `client`; `options` go to produce.py (e.g.
/// `["--compression", "gzip"]`). Returns the deliveries sorted by index; every record must be
/// delivered.
pub fn produce(
    broker: &Broker,
    client: Client,
    topic: &str,
    records: &[Rec],
    options: &[&str],
) -> Result<Vec<Delivery>> {
    produce_to(&broker.bootstrap(), client, topic, records, options)
}

/// [`produce`] through a bootstrap list (e.g. one broker of a cluster).
pub fn produce_to(
    bootstrap: &str,
    client: Client,
    topic: &str,
    records: &[Rec],
    options: &[&str],
) -> Result<Vec<Delivery>> {
    let mut args = vec![
        bootstrap.to_owned(),
        topic.to_owned(),
        "--client".to_owned(),
        client.name().to_owned(),
    ];
    args.extend(options.iter().map(|o| (*o).to_owned()));
    let input: Vec<Value> = records.iter().map(Rec::to_json).collect();
    let out = run_py("produce.py", &args, &serde_json::to_vec(&input)?)?;
    let mut deliveries = Vec::new();
    for row in array(&out, "delivered")? {
        let row = row.as_array().context("delivery row")?;
        let field = |i: usize| {
            row.get(i)
                .and_then(Value::as_i64)
                .with_context(|| format!("delivery row {row:?}"))
        };
        deliveries.push(Delivery {
            index: usize::try_from(field(0)?)?,
            partition: i32::try_from(field(1)?)?,
            offset: field(2)?,
        });
    }
    deliveries.sort();
    ensure!(
        deliveries.len() == records.len()
            && deliveries.iter().enumerate().all(|(i, d)| d.index == i),
        "{} of {} records delivered",
        deliveries.len(),
        records.len()
    );
    Ok(deliveries)
}

/// Reads partitions `0..partitions` of `topic` from the beginning to the high watermarks, once
/// those add up to at least `min_records`.
pub fn consume(
    broker: &Broker,
    client: Client,
    topic: &str,
    partitions: i32,
    min_records: usize,
) -> Result<Consumption> {
    consume_with(broker, client, topic, partitions, min_records, &[])
}

/// [`consume`] with more options for consume.py (e.g. `["--api-version", "0.10"]`).
pub fn consume_with(
    broker: &Broker,
    client: Client,
    topic: &str,
    partitions: i32,
    min_records: usize,
    options: &[&str],
) -> Result<Consumption> {
    consume_from(
        &broker.bootstrap(),
        client,
        topic,
        partitions,
        min_records,
        options,
    )
}

/// [`consume_with`] through a bootstrap list (e.g. one broker of a cluster).
pub fn consume_from(
    bootstrap: &str,
    client: Client,
    topic: &str,
    partitions: i32,
    min_records: usize,
    options: &[&str],
) -> Result<Consumption> {
    let mut args = vec![
        bootstrap.to_owned(),
        topic.to_owned(),
        "--client".to_owned(),
        client.name().to_owned(),
        "--partitions".to_owned(),
        partitions.to_string(),
        "--min-records".to_owned(),
        min_records.to_string(),
    ];
    args.extend(options.iter().map(|o| (*o).to_owned()));
    let out = run_py("consume.py", &args, b"")?;
    let mut end = BTreeMap::new();
    for (p, o) in out
        .get("end")
        .and_then(Value::as_object)
        .context("no `end` in consume.py output")?
    {
        let _ = end.insert(p.parse()?, o.as_i64().context("watermark")?);
    }
    let mut records = Vec::new();
    for r in array(&out, "records")? {
        let headers = r
            .get("h")
            .and_then(Value::as_array)
            .context("headers")?
            .iter()
            .map(|h| -> Result<(String, Option<Vec<u8>>)> {
                let name = h.get(0).and_then(Value::as_str).context("header name")?;
                Ok((name.to_owned(), opt_hex(h.get(1))?))
            })
            .collect::<Result<_>>()?;
        records.push(Consumed {
            partition: i32::try_from(int(r, "p")?)?,
            offset: int(r, "o")?,
            key: opt_hex(r.get("k"))?,
            value: opt_hex(r.get("v"))?,
            headers,
            timestamp: int(r, "ts")?,
            timestamp_type: r.get("tstype").and_then(Value::as_str).map(str::to_owned),
        });
    }
    Ok(Consumption { end, records })
}

/// Creates a topic with confluent-kafka's AdminClient; `configs` like `"retention.ms=1000"`.
pub fn create_topic(broker: &Broker, topic: &str, partitions: i32, configs: &[&str]) -> Result<()> {
    let mut args = vec![
        broker.bootstrap(),
        "create".to_owned(),
        topic.to_owned(),
        partitions.to_string(),
    ];
    for config in configs {
        args.push("--config".to_owned());
        args.push((*config).to_owned());
    }
    let out = run_py("admin.py", &args, b"")?;
    ensure!(
        out.get("error") == Some(&Value::Null),
        "creating {topic}: {out}"
    );
    Ok(())
}

/// Checks what every consumer of a healthy log sees: per partition, offsets ascending and
/// contiguous from 0 up to the high watermark, and every record with a CreateTime timestamp.
pub fn check_offsets(consumption: &Consumption) -> Result<()> {
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    for r in &consumption.records {
        let expected = next.entry(r.partition).or_insert(0);
        ensure!(
            r.offset == *expected,
            "partition {} gave offset {} where {} was next",
            r.partition,
            r.offset,
            expected
        );
        *expected += 1;
    }
    for (p, end) in &consumption.end {
        let got = next.get(p).copied().unwrap_or(0);
        ensure!(
            got == *end,
            "partition {p}: read up to {got}, high watermark {end}"
        );
    }
    Ok(())
}

/// The total size of the segment files (`*.log`) of `topic` in the data directory, which
/// the design lays out as Kafka does (`<data-dir>/<topic>-<partition>/<base offset>.log`).
pub fn segment_bytes(data_dir: &Path, topic: &str) -> Result<u64> {
    let mut total = 0;
    let mut dirs = 0;
    for entry in std::fs::read_dir(data_dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(partition) = name.strip_prefix(topic).and_then(|s| s.strip_prefix('-')) else {
            continue;
        };
        if partition.is_empty() || !partition.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        dirs += 1;
        for file in std::fs::read_dir(entry.path())? {
            let file = file?;
            if file.path().extension().is_some_and(|e| e == "log") {
                total += file.metadata()?.len();
            }
        }
    }
    ensure!(
        dirs > 0,
        "no {topic}-<partition> directory in {}",
        data_dir.display()
    );
    Ok(total)
}

/// The headers of the batches stored for one partition of `topic`, in log order, read from its
/// segment files (`<data-dir>/<topic>-<partition>/*.log`), each CRC-checked.
pub fn stored_batches(
    data_dir: &Path,
    topic: &str,
    partition: i32,
) -> Result<Vec<rill_record::BatchHeader>> {
    let dir = data_dir.join(format!("{topic}-{partition}"));
    let mut segments: Vec<_> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    segments.retain(|path| path.extension().is_some_and(|e| e == "log"));
    // Named by base offset, zero-padded: name order is log order.
    segments.sort();
    let mut headers = Vec::new();
    for segment in segments {
        let bytes = std::fs::read(&segment)?;
        for batch in rill_record::Batches::new(&bytes) {
            let batch = batch.with_context(|| format!("a batch in {}", segment.display()))?;
            batch
                .verify_crc()
                .with_context(|| format!("a batch in {}", segment.display()))?;
            headers.push(*batch.header());
        }
    }
    Ok(headers)
}

fn array<'a>(value: &'a Value, key: &str) -> Result<&'a Vec<Value>> {
    value
        .get(key)
        .and_then(Value::as_array)
        .with_context(|| format!("no array `{key}` in {value}"))
}

fn int(value: &Value, key: &str) -> Result<i64> {
    value
        .get(key)
        .and_then(Value::as_i64)
        .with_context(|| format!("no integer `{key}` in {value}"))
}

fn opt_hex(value: Option<&Value>) -> Result<Option<Vec<u8>>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => unhex(s).map(Some),
        Some(other) => bail!("expected hex or null, got {other}"),
    }
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

pub fn unhex(text: &str) -> Result<Vec<u8>> {
    ensure!(text.len().is_multiple_of(2), "odd-length hex");
    (0..text.len())
        .step_by(2)
        .map(|i| {
            let pair = text.get(i..i + 2).context("hex")?;
            u8::from_str_radix(pair, 16).with_context(|| format!("bad hex {pair:?}"))
        })
        .collect()
}

/// Shows bytes for assertion messages: text when it is short UTF-8, else a length.
pub fn show(bytes: Option<&[u8]>) -> String {
    match bytes {
        None => "null".to_owned(),
        Some(b) if b.len() <= 64 => match std::str::from_utf8(b) {
            Ok(s) => format!("{s:?}"),
            Err(_) => format!("0x{}", hex(b)),
        },
        Some(b) => format!("<{} bytes>", b.len()),
    }
}

/// A deterministic, incompressible-looking byte string (xorshift), for byte-exact checks.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect()
}

/// The records group_consume.py printed (`{"p", "o", "v"}` each), by (partition, offset);
/// a place read twice is an error.
pub fn records_by_place(out: &Value) -> Result<BTreeMap<(i32, i64), String>> {
    let mut read = BTreeMap::new();
    for r in out["records"].as_array().context("records")? {
        let place = (
            i32::try_from(r["p"].as_i64().context("p")?)?,
            r["o"].as_i64().context("o")?,
        );
        let value = r["v"].as_str().context("v")?.to_owned();
        ensure!(read.insert(place, value).is_none(), "read {place:?} twice");
    }
    Ok(read)
}

/// Produces five records to partition 0 of `topic` with one Python client (`confluent` or
/// `kafka-python`) at `addr`, its `settings` passed as `--set`, then consumes them: every record
/// must come back at its offset.
pub fn python_round_trip(addr: &str, topic: &str, client: &str, settings: &[String]) -> Result<()> {
    let records: Vec<Value> = (0..5)
        .map(|i| json!({ "v": super::hex(format!("value-{i}").as_bytes()), "p": 0 }))
        .collect();
    let mut args = vec![
        addr.to_owned(),
        topic.to_owned(),
        "--client".to_owned(),
        client.to_owned(),
    ];
    for s in settings {
        args.extend(["--set".to_owned(), s.clone()]);
    }
    let produced = run_py(
        "produce.py",
        &args,
        serde_json::to_string(&records)?.as_bytes(),
    )?;
    let want: Vec<Value> = (0..5).map(|i| json!([i, 0, i])).collect();
    ensure!(
        produced["delivered"] == Value::from(want),
        "{client} {settings:?}: delivered {}",
        produced["delivered"]
    );
    args.extend(["--partitions".to_owned(), "1".to_owned()]);
    let consumed = run_py("consume.py", &args, b"")?;
    let got: Vec<(i64, String)> = consumed["records"]
        .as_array()
        .context("records")?
        .iter()
        .map(|r| {
            (
                r["o"].as_i64().unwrap_or(-1),
                r["v"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let want: Vec<(i64, String)> = (0..5)
        .map(|i| (i, super::hex(format!("value-{i}").as_bytes())))
        .collect();
    ensure!(got == want, "{client} {settings:?}: consumed {got:?}");
    Ok(())
}
