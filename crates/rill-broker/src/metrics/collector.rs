//! Metrics read at scrape time from the broker's state: per partition its offsets and size (as
//! the owners last published them), per group and partition its committed offset and lag, and
//! the storage's descriptor cache. Nothing on the produce or fetch path updates them, and a deleted topic or group is
//! simply not there at the next scrape.

use std::sync::Weak;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{GaugeVec, IntCounterVec, IntGaugeVec, Opts};

use crate::broker::Broker;

/// Reads the broker's partitions and groups when `/metrics` is scraped.
#[derive(Debug)]
pub(crate) struct BrokerCollector {
    /// Weak: the broker holds the registry that holds this collector.
    broker: Weak<Broker>,
    /// Templates: their descriptions are this collector's; each scrape fills fresh copies.
    templates: Families,
}

#[derive(Debug)]
struct Families {
    log_end: IntGaugeVec,
    log_start: IntGaugeVec,
    size: IntGaugeVec,
    committed: IntGaugeVec,
    lag: IntGaugeVec,
    open_files: IntGaugeVec,
    file_opens: IntCounterVec,
    quorum: IntGaugeVec,
    transactions: IntGaugeVec,
    dirty_ratio: GaugeVec,
    since_clean: IntGaugeVec,
}

impl Families {
    fn new() -> Result<Self, prometheus::Error> {
        let partition = |name: &str, help: &str| {
            IntGaugeVec::new(Opts::new(name, help), &["topic", "partition"])
        };
        let group = |name: &str, help: &str| {
            IntGaugeVec::new(Opts::new(name, help), &["group", "topic", "partition"])
        };
        Ok(Self {
            log_end: partition(
                "rill_partition_log_end_offset",
                "The offset the next record appended to the partition will get",
            )?,
            log_start: partition(
                "rill_partition_log_start_offset",
                "The first offset still in the partition's log",
            )?,
            size: partition(
                "rill_partition_size_bytes",
                "Bytes in all of the partition's segments",
            )?,
            committed: group(
                "rill_group_committed_offset",
                "The offset a consumer group committed for a partition",
            )?,
            lag: group(
                "rill_group_lag",
                "High watermark (last stable offset for a group that commits in transactions) \
                 minus the group's committed offset (at least 0)",
            )?,
            open_files: IntGaugeVec::new(
                Opts::new(
                    "rill_storage_open_files",
                    "Segment files the descriptor cache holds open (at most rill.max.open.files)",
                ),
                &[],
            )?,
            file_opens: IntCounterVec::new(
                Opts::new(
                    "rill_storage_file_opens_total",
                    "Times the descriptor cache opened a segment file it did not hold (misses)",
                ),
                &[],
            )?,
            quorum: IntGaugeVec::new(
                Opts::new(
                    "rill_quorum",
                    "The metadata quorum as this broker sees it: term, commit_index, \
                     applied_index, apply_lag (commit minus applied), leader (node id, -1 for \
                     none), voters, and is_leader (1 on the quorum's leader)",
                ),
                &["field"],
            )?,
            dirty_ratio: GaugeVec::new(
                Opts::new(
                    "rill_cleaner_dirty_ratio",
                    "A compacted partition's dirty share of the sealed bytes old enough to clean, \
                     as the log cleaner last saw it",
                ),
                &["topic", "partition"],
            )?,
            since_clean: partition(
                "rill_cleaner_seconds_since_last_clean",
                "Seconds since the log cleaner last finished a pass over a compacted partition \
                 (-1: never since the broker started)",
            )?,
            transactions: IntGaugeVec::new(
                Opts::new(
                    "rill_transactions",
                    "Transactional ids this broker coordinates, by the state of their \
                     transaction (Ongoing, PrepareCommit, ... as DescribeTransactions names it)",
                ),
                &["state"],
            )?,
        })
    }

    fn all(&self) -> [&dyn Collector; 11] {
        [
            &self.log_end,
            &self.log_start,
            &self.size,
            &self.committed,
            &self.lag,
            &self.open_files,
            &self.file_opens,
            &self.quorum,
            &self.transactions,
            &self.dirty_ratio,
            &self.since_clean,
        ]
    }
}

impl BrokerCollector {
    pub(crate) fn new(broker: Weak<Broker>) -> Result<Self, prometheus::Error> {
        Ok(Self {
            broker,
            templates: Families::new()?,
        })
    }
}

impl Collector for BrokerCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.templates
            .all()
            .into_iter()
            .flat_map(|family| family.desc())
            .collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let Some(broker) = self.broker.upgrade() else {
            return Vec::new();
        };
        let Ok(out) = Families::new() else {
            return Vec::new();
        };
        for topic in broker.all_topics() {
            for partition in topic.held_partitions() {
                let index = partition.index.to_string();
                let labels = [topic.name.as_str(), index.as_str()];
                let offsets = partition.offsets();
                out.log_end.with_label_values(&labels).set(offsets.log_end);
                out.log_start
                    .with_label_values(&labels)
                    .set(offsets.log_start);
                out.size
                    .with_label_values(&labels)
                    .set(i64::try_from(offsets.size_bytes).unwrap_or(i64::MAX));
            }
        }
        let now = crate::partition::now_ms();
        for ((topic, partition), state) in broker.cleaner.states() {
            if broker
                .topic(&topic)
                .is_none_or(|t| t.partition(partition).is_none())
            {
                continue;
            }
            let index = partition.to_string();
            let labels = [topic.as_str(), index.as_str()];
            out.dirty_ratio
                .with_label_values(&labels)
                .set(state.dirty_ratio);
            let since = if state.last_clean_ms > 0 {
                now.saturating_sub(state.last_clean_ms) / 1000
            } else {
                -1
            };
            out.since_clean.with_label_values(&labels).set(since);
        }
        for (group, topic, partition, committed) in broker.groups.all_committed() {
            let index = partition.to_string();
            let labels = [group.as_str(), topic.as_str(), index.as_str()];
            out.committed.with_label_values(&labels).set(committed);
            // A group that commits in transactions reads committed records: its end is the
            // last stable offset.
            let stable = broker.groups.is_transactional(&group);
            let log_end = broker.topic(&topic).and_then(|t| {
                let offsets = t.partition(partition)?.offsets();
                Some(if stable {
                    offsets.last_stable
                } else {
                    offsets.high_watermark
                })
            });
            // No lag for a partition that does not exist (any more): there is no log end.
            if let Some(log_end) = log_end {
                out.lag
                    .with_label_values(&labels)
                    .set(log_end.saturating_sub(committed).max(0));
            }
        }
        let cache = broker.storage.cache();
        out.open_files
            .with_label_values(&[] as &[&str])
            .set(i64::try_from(cache.open_files()).unwrap_or(i64::MAX));
        out.file_opens
            .with_label_values(&[] as &[&str])
            .inc_by(cache.opens());
        let status = broker.quorum.status();
        let as_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        for (field, value) in [
            ("term", as_i64(status.term)),
            ("commit_index", as_i64(status.commit)),
            ("applied_index", as_i64(status.applied)),
            (
                "apply_lag",
                as_i64(status.commit.saturating_sub(status.applied)),
            ),
            ("leader", i64::from(status.leader)),
            (
                "voters",
                i64::try_from(broker.quorum.voters.len()).unwrap_or(0),
            ),
            ("is_leader", i64::from(status.role == "leader")),
        ] {
            out.quorum.with_label_values(&[field]).set(value);
        }
        let mut states: std::collections::BTreeMap<&str, i64> = std::collections::BTreeMap::new();
        for txn in broker.txns.list() {
            *states.entry(txn.meta.state.name()).or_insert(0) += 1;
        }
        for (state, count) in states {
            out.transactions.with_label_values(&[state]).set(count);
        }
        out.all()
            .into_iter()
            .flat_map(|family| family.collect())
            .collect()
    }
}
