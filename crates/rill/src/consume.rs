//! `rill consume`: print a topic's records (kcat -C, kafka-console-consumer.sh), from chosen
//! partitions and offsets, or as a member of a consumer group that commits what was printed.
//!
//! Records reach the printing loop over one channel, from a task per partition (without a
//! group) or from the group consumer's task. Output is buffered and flushed whenever the
//! channel is empty, so nothing waits in the buffer while the topic is idle; with a group,
//! each record is flushed before it is marked for commit, so what is committed was printed.

use std::collections::BTreeMap;
use std::sync::Arc;

use rill_client::{
    Admin, AdminConfig, ClientConfig, Cluster, Consumer, ConsumerConfig, ConsumerRecord,
    GroupConfig, GroupConsumer, GroupEvent, IsolationLevel, Offset, OffsetReset, OffsetSpec,
    StartOffset,
};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::cli::{self, Explain as _, explain, shutdown_signal, topic_error};

mod format;
mod output;

use format::{Fields, Printer};
use output::{flush, quiet_if_broken_pipe, stdout_closed};

/// Read records and print them, one a line.
///
/// Without --group, reads the chosen partitions (default: all) from --offset on. With
/// --group, joins the consumer group, reads the partitions it is given from the group's
/// committed offsets, and commits what it printed (at least every 5 s and on exit).
///
/// --json prints one object a line: {"topic", "partition", "offset", "timestamp" (ms since
/// the epoch), "key", "value", "headers": [{"key", "value"}]}. A key, value or header that is
/// UTF-8 is a JSON string, null is null, and other bytes are {"base64": "..."}.
///
/// --isolation-level read_committed prints only records outside transactions and those of
/// committed transactions, and waits at the first open transaction; transaction markers are
/// never printed.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  rill consume demo --from-beginning -e                 # everything there now, then exit
  rill consume demo -o -10 -f '%p:%o %k=%s\\n'           # the last 10 of each partition
  rill consume demo -p 0 -o 42 -c 1 -J                  # one record as JSON
  rill consume demo --timestamp 2024-05-01T12:00:00Z -e
  rill consume demo -g billing                          # as group 'billing', committing

--format placeholders: %t topic, %p partition, %o offset, %k key, %s value, %T timestamp
(ms), %h headers (k=v,k=v), %K/%S key/value length (-1 for null), %% a '%'; escapes \\n \\t
\\r \\\\.")]
pub(crate) struct Args {
    #[command(flatten)]
    bootstrap: cli::Bootstrap,

    /// The topic to read.
    topic: String,

    /// Where to start: `beginning`, `end` (the default without a group: only new records),
    /// `stored` (the group's committed offsets; the default with --group), an offset N, or
    /// -N for N records before the end of each partition. With --group, only beginning, end
    /// and stored, as the start for partitions the group has no committed offset for.
    #[arg(
        short = 'o',
        long,
        env = "RILL_OFFSET",
        allow_hyphen_values = true,
        value_parser = parse_start
    )]
    offset: Option<Start>,

    /// Start at the beginning (Kafka's console consumer flag; the same as --offset beginning).
    #[arg(long, env = "RILL_FROM_BEGINNING", conflicts_with_all = ["offset", "timestamp"])]
    from_beginning: bool,

    /// Start at the first record at or after this time: ms since the epoch or RFC 3339
    /// (2024-05-01T12:00:00Z); partitions with none start at their end.
    #[arg(
        long,
        env = "RILL_TIMESTAMP",
        value_parser = cli::timestamp_ms,
        conflicts_with_all = ["offset", "group"]
    )]
    timestamp: Option<i64>,

    /// Read only this partition (repeatable, or comma-separated; default all).
    #[arg(
        short = 'p',
        long = "partition",
        env = "RILL_PARTITION",
        value_delimiter = ',',
        conflicts_with = "group"
    )]
    partitions: Vec<i32>,

    /// Join consumer group G: share the partitions with its other members and commit what
    /// was printed.
    #[arg(short = 'g', long, env = "RILL_GROUP", value_name = "G")]
    group: Option<String>,

    /// Exit after printing N records.
    #[arg(short = 'c', long, env = "RILL_COUNT", value_name = "N")]
    count: Option<u64>,

    /// Exit once every partition read is at its end (its log end when it was assigned; with
    /// read_committed, its last stable offset).
    #[arg(short = 'e', long, env = "RILL_EXIT_AT_END")]
    exit_at_end: bool,

    /// read_uncommitted (the default: every record) or read_committed (only records of
    /// committed transactions and records outside transactions). The same as
    /// -X isolation.level=...; Kafka's console consumer flag.
    #[arg(long, env = "RILL_ISOLATION_LEVEL", value_name = "LEVEL")]
    isolation_level: Option<IsolationLevel>,

    /// How to print each record (see the placeholders below).
    #[arg(
        short = 'f',
        long,
        env = "RILL_FORMAT",
        default_value = "%s\\n",
        value_parser = Printer::format,
        conflicts_with = "json"
    )]
    format: Option<Printer>,

    /// Print each record as one JSON object a line.
    #[arg(short = 'J', long, env = "RILL_JSON")]
    json: bool,
}

/// A start position as --offset gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    Beginning,
    End,
    Stored,
    At(i64),
    BeforeEnd(i64),
}

fn parse_start(text: &str) -> Result<Start, String> {
    match text {
        "beginning" | "earliest" | "oldest" => Ok(Start::Beginning),
        "end" | "latest" | "newest" => Ok(Start::End),
        "stored" => Ok(Start::Stored),
        _ => match text.parse::<i64>() {
            Ok(n) if n >= 0 => Ok(Start::At(n)),
            Ok(n) => Ok(Start::BeforeEnd(n.saturating_neg())),
            Err(_) => Err(format!(
                "expects beginning, end, stored, an offset N or -N (N before the end), got '{text}'"
            )),
        },
    }
}

/// What reaches the printing loop.
#[derive(Debug)]
enum Item {
    /// A record; with a group, the sender to tell once it is printed (so it is marked).
    Record(ConsumerRecord, Option<oneshot::Sender<()>>),
    /// With --exit-at-end, a partition read up to its end (what lies before it and was not
    /// printed holds no record to print: transaction markers, aborted records).
    AtEnd(i32),
    /// A failure that ends the command.
    Failed(anyhow::Error),
}

/// Where each partition being read stands, for --exit-at-end.
#[derive(Debug, Default)]
struct Progress {
    /// partition → (next offset to print, log end when it was assigned).
    partitions: BTreeMap<i32, (i64, i64)>,
}

impl Progress {
    fn printed(&mut self, record: &ConsumerRecord) {
        if let Some((next, _)) = self.partitions.get_mut(&record.partition) {
            *next = (*next).max(record.offset + 1);
        }
    }

    fn at_end(&mut self, partition: i32) {
        if let Some((next, end)) = self.partitions.get_mut(&partition) {
            *next = (*next).max(*end);
        }
    }

    fn all_at_end(&self) -> bool {
        !self.partitions.is_empty() && self.partitions.values().all(|(next, end)| next >= end)
    }
}

impl Args {
    pub(crate) fn run(self) -> anyhow::Result<()> {
        cli::block_on(self.consume())?
    }

    async fn consume(mut self) -> anyhow::Result<()> {
        let printer = if self.json {
            Printer::Json
        } else {
            self.format
                .take()
                .map_or_else(|| Printer::format("%s\\n"), Ok)
                .map_err(|err| anyhow::anyhow!(err))?
        };
        let (config, own) = self
            .bootstrap
            .read_only_config_taking(&["isolation.level"])?;
        if self.isolation_level.is_none()
            && let Some((_, value)) = own.last()
        {
            let level = value
                .parse()
                .map_err(|why| anyhow::anyhow!("property 'isolation.level': {why}"))?;
            self.isolation_level = Some(level);
        }
        let cluster = self.bootstrap.connect(config.clone()).await?;
        let partitions = cluster
            .topic_metadata(&self.topic)
            .await
            .map_err(|err| topic_error(&self.topic, &err))?
            .partition_count();
        let admin = Admin::with_cluster(AdminConfig::new(config.clone()), Arc::clone(&cluster));
        let (tx, rx) = mpsc::channel(1024);
        match self.group.clone() {
            None => {
                let progress = self
                    .start_partitions(&cluster, &admin, partitions, tx)
                    .await?;
                self.print(rx, printer, progress, None, &admin).await
            }
            Some(group) => {
                let (events, stop, task) = self.start_group(config, &group, tx)?;
                let printed = self
                    .print(rx, printer, Progress::default(), Some(events), &admin)
                    .await;
                let _ = stop.send(());
                let closed = task
                    .await
                    .map_err(|err| anyhow::anyhow!("the group task failed: {err}"))?;
                printed?;
                closed.map_err(|err| anyhow::anyhow!("leaving group '{group}': {}", explain(&err)))
            }
        }
    }

    /// Starts a task per partition, each from its resolved start offset, and returns where
    /// each stands.
    async fn start_partitions(
        &self,
        cluster: &Arc<Cluster>,
        admin: &Admin,
        count: i32,
        tx: mpsc::Sender<Item>,
    ) -> anyhow::Result<Progress> {
        let topic = self.topic.as_str();
        let partitions: Vec<i32> = if self.partitions.is_empty() {
            (0..count).collect()
        } else {
            self.partitions.clone()
        };
        for &p in &partitions {
            anyhow::ensure!(
                (0..count).contains(&p),
                "topic '{topic}' has no partition {p} (it has {count}: 0 to {})",
                count - 1
            );
        }
        let asked: Vec<(&str, i32)> = partitions.iter().map(|&p| (topic, p)).collect();
        let starts = admin
            .list_offsets(&asked, OffsetSpec::Earliest)
            .await
            .explain()?;
        // Under read_committed the end is the last stable offset: records past it are not
        // readable yet.
        let ends = admin
            .list_offsets_isolated(&asked, OffsetSpec::Latest, self.isolation())
            .await
            .explain()?;
        let start = match (self.from_beginning, self.timestamp, self.offset) {
            (true, _, _) => Start::Beginning,
            (_, Some(_), _) => Start::End,
            (_, None, Some(start)) => start,
            (_, None, None) => Start::End,
        };
        anyhow::ensure!(
            start != Start::Stored,
            "--offset stored reads a group's committed offsets: name the group with --group"
        );
        let mut config = ConsumerConfig::new(cluster.config().clone());
        config.isolation_level = self.isolation();
        let consumer = Consumer::with_cluster(config, Arc::clone(cluster)).explain()?;
        let mut progress = Progress::default();
        for ((&p, first), end) in partitions.iter().zip(starts).zip(ends) {
            let (first, end) = (first.explain()?.offset, end.explain()?.offset);
            let from = match (self.timestamp, start) {
                (Some(t), _) => consumer
                    .resolve_offset(topic, p, Offset::Timestamp(t))
                    .await
                    .explain()?,
                (None, Start::Beginning) => first,
                (None, Start::BeforeEnd(n)) => end.saturating_sub(n).max(first),
                (None, Start::At(n)) => {
                    anyhow::ensure!(
                        (first..=end).contains(&n),
                        "offset {n} is out of range for topic '{topic}' partition {p}: it holds \
                         offsets {first} to {end} (the end is where the next record goes)"
                    );
                    n
                }
                (None, Start::End | Start::Stored) => end,
            };
            let pc = consumer
                .consume_partition(topic, p, Offset::At(from))
                .await
                .explain()?;
            let _ = progress.partitions.insert(p, (from, end));
            let tx = tx.clone();
            // With --exit-at-end, up to the end: the position gets there even when the last
            // offsets before it hold no record to print (a transaction marker).
            let until = if self.exit_at_end { end } else { i64::MAX };
            drop(tokio::spawn(async move {
                let mut pc = pc;
                while let Some(item) = pc.next_before(until).await {
                    let item = match item {
                        Ok(record) => Item::Record(record, None),
                        Err(err) => Item::Failed(anyhow::anyhow!(explain(&err))),
                    };
                    if tx.send(item).await.is_err() {
                        return;
                    }
                }
                let _ = tx.send(Item::AtEnd(p)).await;
            }));
        }
        Ok(progress)
    }

    /// Starts the group member in a task of its own (its `next` is never cancelled, so a
    /// join is never cut short); it marks each record once the printing loop says it was
    /// printed, and commits and leaves when `stop` fires or the loop goes away.
    #[allow(clippy::type_complexity)]
    fn start_group(
        &self,
        client: ClientConfig,
        group: &str,
        tx: mpsc::Sender<Item>,
    ) -> anyhow::Result<(
        broadcast::Receiver<GroupEvent>,
        oneshot::Sender<()>,
        tokio::task::JoinHandle<Result<(), rill_client::ClientError>>,
    )> {
        let start = match (self.from_beginning, self.offset) {
            (true, _) | (false, Some(Start::Beginning)) => StartOffset::Oldest,
            (false, None | Some(Start::End | Start::Stored)) => StartOffset::Newest,
            (false, Some(Start::At(_) | Start::BeforeEnd(_))) => anyhow::bail!(
                "with --group, --offset can be beginning, end or stored (where to start on \
                 partitions the group has no committed offset for); to move the group's \
                 offsets use `rill group reset-offsets`"
            ),
        };
        let mut consumer = ConsumerConfig::new(client);
        consumer.isolation_level = self.isolation();
        // A committed offset that retention has passed: go on as for no committed offset.
        consumer.offset_reset = match start {
            StartOffset::Oldest => OffsetReset::Earliest,
            _ => OffsetReset::Latest,
        };
        let mut config = GroupConfig::new(group);
        config.start = start;
        let mut member = GroupConsumer::new(consumer, config).explain()?;
        member.subscribe(&[self.topic.as_str()]);
        let events = member.events();
        let (stop_tx, mut stop) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            loop {
                let item = tokio::select! {
                    biased;
                    _ = &mut stop => break,
                    item = member.next() => item,
                };
                let record = match item {
                    None => break,
                    Some(Err(err)) => {
                        let _ = tx.send(Item::Failed(anyhow::anyhow!(explain(&err)))).await;
                        break;
                    }
                    Some(Ok(record)) => record,
                };
                let (printed_tx, printed) = oneshot::channel();
                if tx
                    .send(Item::Record(record.clone(), Some(printed_tx)))
                    .await
                    .is_err()
                {
                    break;
                }
                // Printed (the sender is used) or not (dropped): only then is it marked.
                match printed.await {
                    Ok(()) => member.mark(&record),
                    Err(_) => break,
                }
            }
            member.close().await
        });
        Ok((events, stop_tx, task))
    }

    /// The printing loop: until --count, --exit-at-end, a failure, Ctrl-C, SIGTERM, or a
    /// reader that went away (`| head`, which is not an error).
    async fn print(
        &self,
        mut rx: mpsc::Receiver<Item>,
        printer: Printer,
        mut progress: Progress,
        mut events: Option<broadcast::Receiver<GroupEvent>>,
        admin: &Admin,
    ) -> anyhow::Result<()> {
        let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout());
        let shutdown = shutdown_signal();
        tokio::pin!(shutdown);
        let closed = stdout_closed();
        tokio::pin!(closed);
        let mut printed = 0_u64;
        let done = |printed: u64, progress: &Progress| {
            self.count.is_some_and(|n| printed >= n) || (self.exit_at_end && progress.all_at_end())
        };
        while !done(printed, &progress) {
            // Nothing waits in the buffer while there is nothing more to print.
            if rx.is_empty() && flush(&mut out)?.is_none() {
                return Ok(());
            }
            let item = tokio::select! {
                biased;
                () = &mut shutdown => break,
                // The reader went away while nothing was being printed (`| head`).
                () = &mut closed => return Ok(()),
                event = recv_event(&mut events) => {
                    self.follow(event, &mut progress, admin).await?;
                    continue;
                }
                item = rx.recv() => item,
            };
            let Some(item) = item else { break };
            let (record, printed_tx) = match item {
                Item::Record(record, printed_tx) => (record, printed_tx),
                Item::AtEnd(partition) => {
                    progress.at_end(partition);
                    continue;
                }
                Item::Failed(err) => {
                    let _ = flush(&mut out)?;
                    return Err(err);
                }
            };
            // Records of a partition past its end with -e, or revoked from this member, were
            // not asked for.
            if self.exit_at_end
                && progress
                    .partitions
                    .get(&record.partition)
                    .is_some_and(|(next, end)| next >= end)
            {
                continue;
            }
            if let Err(err) = printer.write(&mut out, &Fields::from(&record)) {
                return quiet_if_broken_pipe(err);
            }
            if let Some(printed_tx) = printed_tx {
                // With a group, a record is marked for commit only once it is out.
                if flush(&mut out)?.is_none() {
                    return Ok(());
                }
                let _ = printed_tx.send(());
            }
            printed += 1;
            progress.printed(&record);
        }
        let _ = flush(&mut out)?;
        Ok(())
    }

    /// Follows the group member's assignment for --exit-at-end: a new partition starts at
    /// the group's committed offset (or where --offset says) and ends at its log end now.
    async fn follow(
        &self,
        event: GroupEvent,
        progress: &mut Progress,
        admin: &Admin,
    ) -> anyhow::Result<()> {
        let (GroupEvent::Assigned(added), Some(group)) = (&event, &self.group) else {
            if let GroupEvent::Revoked(gone) = event {
                for (_, p) in gone {
                    let _ = progress.partitions.remove(&p);
                }
            }
            return Ok(());
        };
        if !self.exit_at_end {
            return Ok(());
        }
        let committed = admin.group_offsets(group).await.explain()?;
        let asked: Vec<(&str, i32)> = added.iter().map(|(t, p)| (t.as_str(), *p)).collect();
        let ends = admin
            .list_offsets_isolated(&asked, OffsetSpec::Latest, self.isolation())
            .await
            .explain()?;
        let starts = admin
            .list_offsets(&asked, OffsetSpec::Earliest)
            .await
            .explain()?;
        for (((topic, p), end), first) in added.iter().zip(ends).zip(starts) {
            let end = end.explain()?.offset;
            let next = match committed
                .iter()
                .find(|c| &c.topic == topic && c.partition == *p)
            {
                Some(c) => c.offset,
                None if self.from_beginning || self.offset == Some(Start::Beginning) => {
                    first.explain()?.offset
                }
                None => end,
            };
            let _ = progress.partitions.insert(*p, (next, end));
        }
        Ok(())
    }
}

impl Args {
    /// --isolation-level, or -X isolation.level, or read_uncommitted.
    fn isolation(&self) -> IsolationLevel {
        self.isolation_level.unwrap_or_default()
    }
}

/// The next group event, or never without a group. A receiver that fell behind skips ahead.
async fn recv_event(events: &mut Option<broadcast::Receiver<GroupEvent>>) -> GroupEvent {
    let Some(receiver) = events else {
        return std::future::pending().await;
    };
    loop {
        match receiver.recv().await {
            Ok(event) => return event,
            Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => return std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Start, parse_start};

    #[test]
    fn start_offsets_parse_as_kcat_does() {
        assert_eq!(parse_start("beginning"), Ok(Start::Beginning));
        assert_eq!(parse_start("end"), Ok(Start::End));
        assert_eq!(parse_start("stored"), Ok(Start::Stored));
        assert_eq!(parse_start("42"), Ok(Start::At(42)));
        assert_eq!(parse_start("-10"), Ok(Start::BeforeEnd(10)));
        assert!(parse_start("middle").is_err());
    }
}
