//! `rill produce`: one record per line of stdin or a file, in line order, every one
//! acknowledged before the command exits (kcat -P, kafka-console-producer.sh).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rill_client::{
    Acks, AsyncProducer, Cluster, Compression, ErrorCode, ProducerConfig, ProducerRecord,
};
use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader};

use crate::cli::{self, Explain as _, explain, topic_error};

/// How long `rill produce` waits for a topic it just had auto-created to get a leader.
const TOPIC_READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Write records read line by line from stdin or a file.
///
/// Each line is one record (the newline is not part of it; an empty line is an empty record).
/// Records go out in line order and keep it within each partition. The command exits once
/// every record is acknowledged (unless --acks 0), with a summary on stderr; any delivery
/// error makes it exit non-zero naming the topic and the Kafka error. The topic is created if
/// the broker creates topics on first use (as Kafka producers do).
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  printf 'hello\\nworld\\n' | rill produce demo
  printf 'user-1:clicked\\nuser-2:left\\n' | rill produce demo -K :     # keys before ':'
  rill produce demo -f events.txt -z zstd -H source=import -H run=7
  rill produce demo -p 0 --acks 1 < lines.txt")]
pub(crate) struct Args {
    #[command(flatten)]
    bootstrap: cli::Bootstrap,

    /// The topic to write to.
    topic: String,

    /// Read lines from this file instead of stdin (a progress bar shows on a terminal).
    #[arg(short = 'f', long, env = "RILL_PRODUCE_FILE")]
    file: Option<PathBuf>,

    /// Split each line at the first SEP: the part before is the key, the rest the value
    /// (kcat's -K). A line without SEP has no key.
    #[arg(
        short = 'K',
        long,
        env = "RILL_KEY_SEPARATOR",
        value_name = "SEP",
        value_parser = clap::builder::NonEmptyStringValueParser::new()
    )]
    key_separator: Option<String>,

    /// Add a header `name=value` to every record (repeatable, kept in order).
    #[arg(
        short = 'H',
        long = "header",
        env = "RILL_HEADER",
        value_name = "K=V",
        value_parser = cli::key_value
    )]
    headers: Vec<(String, String)>,

    /// Write every record to this partition (default: by key hash; keyless records spread
    /// over the partitions).
    #[arg(short = 'p', long, env = "RILL_PARTITION")]
    partition: Option<i32>,

    /// Compress record batches with this codec.
    #[arg(
        short = 'z',
        long,
        env = "RILL_COMPRESSION",
        value_enum,
        default_value_t = Codec::None
    )]
    compression: Codec,

    /// What the broker must do before it answers: 0 (no answer: fastest, losses unnoticed),
    /// 1 (the leader wrote it), all or -1 (every in-sync replica has it; on Rill, fsynced).
    #[arg(
        long,
        env = "RILL_ACKS",
        default_value = "all",
        value_parser = parse_acks,
        allow_hyphen_values = true
    )]
    acks: Acks,
}

/// The codecs of `-z/--compression`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Codec {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl From<Codec> for Compression {
    fn from(codec: Codec) -> Self {
        match codec {
            Codec::None => Compression::None,
            Codec::Gzip => Compression::Gzip,
            Codec::Snappy => Compression::Snappy,
            Codec::Lz4 => Compression::Lz4,
            Codec::Zstd => Compression::Zstd,
        }
    }
}

fn parse_acks(text: &str) -> Result<Acks, String> {
    match text {
        "0" => Ok(Acks::None),
        "1" => Ok(Acks::Leader),
        "all" | "-1" => Ok(Acks::All),
        _ => Err(format!("expects 0, 1, all or -1, got '{text}'")),
    }
}

/// What the outcome collector saw.
#[derive(Debug, Default)]
struct Outcomes {
    delivered: u64,
    failed: u64,
    first_error: Option<String>,
}

impl Args {
    pub(crate) fn run(self) -> anyhow::Result<()> {
        cli::block_on(self.produce())?
    }

    async fn produce(self) -> anyhow::Result<()> {
        let (input, size) = self.open_input().await?;
        let client = self.bootstrap.client_config()?;
        let cluster = self.bootstrap.connect(client.clone()).await?;
        self.check_topic(&cluster).await?;

        let mut config = ProducerConfig::new(client);
        config.acks = self.acks;
        config.compression = self.compression.into();
        // Idempotence (Kafka's default) keeps the lines in order across retries, and writes a
        // retried batch once, but needs acks=all; without it, one request in flight keeps the
        // order.
        config.enable_idempotence = self.acks == Acks::All;
        if !config.enable_idempotence {
            config.max_in_flight = 1;
        }
        let producer = AsyncProducer::with_cluster(config, Arc::clone(&cluster)).explain()?;
        let failed = Arc::new(AtomicBool::new(false));
        let collector = tokio::spawn(collect(&producer, Arc::clone(&failed)).await?);

        let progress = progress_bar(size);
        let sent = self.send_lines(&producer, input, &progress, &failed).await;
        progress.finish_and_clear();
        // Waits for the outcome of every record handed over.
        producer.close().await;
        let outcomes = collector.await.context("the outcome collector failed")?;
        let sent = sent?;

        let topic = &self.topic;
        let noun = |n: u64| if n == 1 { "record" } else { "records" };
        if let Some(error) = outcomes.first_error {
            eprintln!(
                "produced {} of {sent} {} to topic '{topic}'; {} failed",
                outcomes.delivered,
                noun(sent),
                outcomes.failed
            );
            anyhow::bail!("producing to topic '{topic}': {error}");
        }
        if self.acks == Acks::None {
            eprintln!(
                "sent {sent} {} to topic '{topic}' (acks=0: not acknowledged)",
                noun(sent)
            );
        } else {
            eprintln!(
                "produced {} {} to topic '{topic}'",
                outcomes.delivered,
                noun(sent)
            );
        }
        Ok(())
    }

    /// The input and, for a file, its size (for the progress bar).
    async fn open_input(&self) -> anyhow::Result<(Box<dyn AsyncRead + Unpin + Send>, Option<u64>)> {
        match &self.file {
            None => Ok((Box::new(tokio::io::stdin()), None)),
            Some(path) => {
                let file = tokio::fs::File::open(path)
                    .await
                    .with_context(|| format!("opening {}", path.display()))?;
                let size = file.metadata().await.ok().map(|m| m.len());
                Ok((Box::new(file), size))
            }
        }
    }

    /// Fails early, with words a person can act on, when the topic cannot be written: it
    /// does not exist (and the broker does not create topics on first use), or has no such
    /// partition. Otherwise each record would fail only after the producer's retries.
    async fn check_topic(&self, cluster: &Cluster) -> anyhow::Result<()> {
        let topic = &self.topic;
        let deadline = tokio::time::Instant::now() + TOPIC_READY_TIMEOUT;
        let meta = loop {
            match cluster.topic_metadata(topic).await {
                Ok(meta) if meta.partitions.iter().all(|p| p.leader >= 0) => break meta,
                // A topic created just now may need a moment for its leaders.
                Ok(_) if tokio::time::Instant::now() < deadline => {}
                Err(err)
                    if err.code() == Some(ErrorCode::LeaderNotAvailable)
                        && tokio::time::Instant::now() < deadline => {}
                Ok(meta) => break meta,
                Err(err) => {
                    return Err(if err.code() == Some(ErrorCode::UnknownTopicOrPartition) {
                        anyhow::anyhow!(
                            "topic '{topic}' does not exist (and the broker does not create \
                             topics on first use: create it with `rill topic create {topic}`)"
                        )
                    } else {
                        topic_error(topic, &err)
                    });
                }
            }
            cluster.invalidate();
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        if let Some(partition) = self.partition {
            let count = meta.partition_count();
            anyhow::ensure!(
                (0..count).contains(&partition),
                "topic '{topic}' has no partition {partition} (it has {count}: 0 to {})",
                count - 1
            );
        }
        Ok(())
    }

    /// Reads the input line by line and hands each line to the producer, stopping early once
    /// a record has failed. Returns how many records were handed over.
    async fn send_lines(
        &self,
        producer: &AsyncProducer,
        input: Box<dyn AsyncRead + Unpin + Send>,
        progress: &ProgressBar,
        failed: &AtomicBool,
    ) -> anyhow::Result<u64> {
        let what = self
            .file
            .as_ref()
            .map_or_else(|| "stdin".to_owned(), |p| p.display().to_string());
        let mut reader = BufReader::with_capacity(256 * 1024, input);
        let separator = self.key_separator.as_deref().map(str::as_bytes);
        let headers: Vec<(Bytes, Bytes)> = self
            .headers
            .iter()
            .map(|(k, v)| (Bytes::from(k.clone()), Bytes::from(v.clone())))
            .collect();
        let mut line = Vec::with_capacity(1024);
        let mut sent = 0_u64;
        while !failed.load(Ordering::Relaxed) {
            line.clear();
            let read = reader
                .read_until(b'\n', &mut line)
                .await
                .with_context(|| format!("reading {what}"))?;
            if read == 0 {
                break;
            }
            progress.inc(read as u64);
            if line.last() == Some(&b'\n') {
                let _ = line.pop();
            }
            let mut record = ProducerRecord::new(self.topic.as_str());
            match separator.and_then(|sep| split_at(&line, sep)) {
                Some((key, value)) => {
                    record = record
                        .key(Bytes::copy_from_slice(key))
                        .value(Bytes::copy_from_slice(value));
                }
                None => record = record.value(Bytes::copy_from_slice(&line)),
            }
            if let Some(partition) = self.partition {
                record = record.partition(partition);
            }
            for (key, value) in &headers {
                record = record.header(key.clone(), value.clone());
            }
            producer
                .send(record)
                .await
                .map_err(|err| anyhow::anyhow!(explain(&err)))?;
            sent += 1;
        }
        Ok(sent)
    }
}

/// Splits `line` at the first `separator`: (before, after).
fn split_at<'a>(line: &'a [u8], separator: &[u8]) -> Option<(&'a [u8], &'a [u8])> {
    let at = line
        .windows(separator.len())
        .position(|window| window == separator)?;
    Some((line.get(..at)?, line.get(at + separator.len()..)?))
}

/// The task that drains both outcome channels (the producer stalls if one fills up), counting
/// successes and keeping the first error; it ends once the producer is closed.
async fn collect(
    producer: &AsyncProducer,
    failed: Arc<AtomicBool>,
) -> anyhow::Result<impl std::future::Future<Output = Outcomes> + use<>> {
    let mut successes = producer
        .successes()
        .await
        .context("the producer's successes were taken")?;
    let mut errors = producer
        .errors()
        .await
        .context("the producer's errors were taken")?;
    Ok(async move {
        let mut outcomes = Outcomes::default();
        let (mut successes_open, mut errors_open) = (true, true);
        while successes_open || errors_open {
            tokio::select! {
                delivered = successes.recv(), if successes_open => match delivered {
                    Some(_) => outcomes.delivered += 1,
                    None => successes_open = false,
                },
                error = errors.recv(), if errors_open => match error {
                    Some(error) => {
                        outcomes.failed += 1;
                        failed.store(true, Ordering::Relaxed);
                        if outcomes.first_error.is_none() {
                            outcomes.first_error = Some(explain(&error.error));
                        }
                    }
                    None => errors_open = false,
                },
            }
        }
        outcomes
    })
}

/// A progress bar of bytes read out of `size`, on stderr, hidden unless stderr is a terminal
/// (and for stdin, whose size is unknown).
fn progress_bar(size: Option<u64>) -> ProgressBar {
    let Some(size) = size else {
        return ProgressBar::hidden();
    };
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(size), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)")
    {
        bar.set_style(style);
    }
    bar
}

#[cfg(test)]
mod tests {
    use super::split_at;

    #[test]
    fn lines_split_at_the_first_separator() {
        assert_eq!(split_at(b"k:v:w", b":"), Some((&b"k"[..], &b"v:w"[..])));
        assert_eq!(split_at(b"k::v", b"::"), Some((&b"k"[..], &b"v"[..])));
        assert_eq!(split_at(b":v", b":"), Some((&b""[..], &b"v"[..])));
        assert_eq!(split_at(b"no key", b":"), None);
        assert_eq!(split_at(b"", b":"), None);
    }
}
