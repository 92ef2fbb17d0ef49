//! The broker's metrics, in one Prometheus registry per broker instance (not a process global:
//! tests and programs embedding the library run several brokers in one process).
//!
//! Hot-path rule: the produce, fetch and connection paths only do atomic adds. Every handle they
//! touch is resolved once: per API when the broker starts ([`Metrics::api`], an array indexed by
//! api key), per topic when the topic is created or opened ([`TopicMetrics`], kept on
//! `broker::Topic`), per (API, error) the first time that error is sent. Per-partition and
//! per-group values are not updated at all; [`collector`] reads them when `/metrics` is scraped.

pub(crate) mod collector;
mod errors;

use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use rill_protocol::{ApiKey, ErrorCode, ResponseKind, SUPPORTED};
use rill_record::Batches;

pub(crate) use errors::for_each_error_code;

/// Latency buckets in seconds, 50 µs to 10 s in 1-2.5-5 steps: a produce to the page cache
/// lands in the lowest ones, an fsync or a long poll in the highest.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];

/// Error counters of one API are indexed by `code - LOWEST_ERROR_CODE` (Kafka's codes are
/// contiguous from -1, UNKNOWN_SERVER_ERROR).
const LOWEST_ERROR_CODE: i16 = -1;

/// Every metric of one broker, and the registry `/metrics` reads.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    /// Indexed by api key; `None` for the APIs this broker does not serve.
    apis: Box<[Option<ApiMetrics>]>,
    topic_bytes_in: IntCounterVec,
    topic_records_in: IntCounterVec,
    topic_bytes_out: IntCounterVec,
    topic_records_out: IntCounterVec,
    /// Every fsync a partition owner does (group commit, flush policy, interval flushes).
    pub(crate) fsync: Histogram,
    connections: IntGauge,
    connections_accepted: IntCounter,
    /// Replicas found corrupt, quarantined and reopened to be repaired from the leader.
    pub(crate) replica_repairs: IntCounter,
    /// Transactions the coordinator here ended, by result.
    pub(crate) transactions_ended: IntCounterVec,
    /// The log cleaner's counters.
    pub(crate) cleaner: crate::cleaner::CleanerMetrics,
    /// Counters in no registry, for a topic that is only validated, never created.
    unregistered: TopicMetrics,
    started: Instant,
}

/// One API's request counter, latency histogram and error counters.
#[derive(Debug)]
pub(crate) struct ApiMetrics {
    requests: IntCounter,
    duration: Histogram,
    name: String,
    errors: IntCounterVec,
    /// Resolved on first use, indexed by `code - LOWEST_ERROR_CODE`.
    error_counters: Box<[OnceLock<IntCounter>]>,
}

impl ApiMetrics {
    /// One request handled, `started` when its frame was read.
    pub(crate) fn finished(&self, started: Instant) {
        self.requests.inc();
        self.duration.observe(started.elapsed().as_secs_f64());
    }

    /// Counts every non-zero error code in an answer about to be sent.
    pub(crate) fn count_errors(&self, body: &ResponseKind) {
        for_each_error_code(body, |code| self.error(code).inc());
    }

    fn error(&self, code: i16) -> IntCounter {
        let slot = usize::try_from(i32::from(code) - i32::from(LOWEST_ERROR_CODE))
            .ok()
            .and_then(|i| self.error_counters.get(i));
        let resolve = || {
            let name = ErrorCode::from_code(code).map_or("UNKNOWN_ERROR_CODE", ErrorCode::name);
            self.errors.with_label_values(&[self.name.as_str(), name])
        };
        match slot {
            Some(slot) => slot.get_or_init(resolve).clone(),
            // A code outside Kafka's table: never sent by this broker, but counted if it were.
            None => resolve(),
        }
    }
}

/// A topic's throughput counters, resolved once per topic.
#[derive(Debug, Clone)]
pub(crate) struct TopicMetrics {
    bytes_in: IntCounter,
    records_in: IntCounter,
    bytes_out: IntCounter,
    records_out: IntCounter,
}

impl TopicMetrics {
    /// A batch of `records` records and `bytes` bytes was appended.
    pub(crate) fn appended(&self, bytes: usize, records: i32) {
        self.bytes_in.inc_by(bytes as u64);
        self.records_in.inc_by(u64::from(records.unsigned_abs()));
    }

    /// A fetch returns these stored batches: their bytes, and the records their headers count
    /// (nothing is decompressed).
    pub(crate) fn fetched(&self, batches: &[u8]) {
        if batches.is_empty() {
            return;
        }
        self.bytes_out.inc_by(batches.len() as u64);
        let records: u64 = Batches::new(batches)
            .map_while(Result::ok)
            .map(|batch| u64::from(batch.header().records_count.unsigned_abs()))
            .sum();
        self.records_out.inc_by(records);
    }
}

/// Counts a connection as open until dropped.
#[derive(Debug)]
pub(crate) struct ConnectionGuard(IntGauge);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Metrics {
    /// Creates and registers every metric. Fails only if a name or label set is invalid (a bug).
    pub(crate) fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("rill_requests_total", "Kafka requests handled, by API"),
            &["api"],
        )?;
        let durations = HistogramVec::new(
            HistogramOpts::new(
                "rill_request_duration_seconds",
                "Time from reading a Kafka request to writing its answer, by API",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["api"],
        )?;
        let errors = IntCounterVec::new(
            Opts::new(
                "rill_errors_total",
                "Non-zero error codes in the answers sent, by API and Kafka error name",
            ),
            &["api", "error"],
        )?;
        let topic_counter =
            |name: &str, help: &str| IntCounterVec::new(Opts::new(name, help), &["topic"]);
        let topic_bytes_in = topic_counter(
            "rill_topic_bytes_in_total",
            "Bytes of record batches appended by produce requests",
        )?;
        let topic_records_in = topic_counter(
            "rill_topic_records_in_total",
            "Records appended by produce requests (the batch headers' counts)",
        )?;
        let topic_bytes_out = topic_counter(
            "rill_topic_bytes_out_total",
            "Bytes of record batches returned by fetch requests",
        )?;
        let topic_records_out = topic_counter(
            "rill_topic_records_out_total",
            "Records returned by fetch requests (the batch headers' counts)",
        )?;
        let fsync = Histogram::with_opts(
            HistogramOpts::new(
                "rill_fsync_duration_seconds",
                "Duration of the partition logs' fsyncs (group commits and flushes)",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
        )?;
        let unregistered = {
            let vec = topic_counter("rill_unregistered_total", "not exported")?;
            let counter = vec.with_label_values(&[""]);
            TopicMetrics {
                bytes_in: counter.clone(),
                records_in: counter.clone(),
                bytes_out: counter.clone(),
                records_out: counter,
            }
        };
        let connections = IntGauge::new("rill_connections", "Kafka client connections open now")?;
        let connections_accepted = IntCounter::new(
            "rill_connections_accepted_total",
            "Kafka client connections accepted",
        )?;
        let replica_repairs = IntCounter::new(
            "rill_replica_repairs_total",
            "Partition replicas whose data failed its checks, quarantined and repaired from the leader",
        )?;
        let transactions_ended = IntCounterVec::new(
            Opts::new(
                "rill_transactions_ended_total",
                "Transactions this broker's coordinator ended, by result: committed, aborted \
                 (by the producer), timed_out (aborted past transaction.timeout.ms) and fenced \
                 (aborted by a new instance of the producer)",
            ),
            &["result"],
        )?;
        let build_info = IntGaugeVec::new(
            Opts::new(
                "rill_build_info",
                "Always 1; the version of the running broker",
            ),
            &["version"],
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        let start_time = prometheus::Gauge::new(
            "rill_start_time_seconds",
            "When the broker started, in seconds since the Unix epoch",
        )?;
        start_time.set(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
        );

        for collector in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(durations.clone()),
            Box::new(errors.clone()),
            Box::new(topic_bytes_in.clone()),
            Box::new(topic_records_in.clone()),
            Box::new(topic_bytes_out.clone()),
            Box::new(topic_records_out.clone()),
            Box::new(fsync.clone()),
            Box::new(connections.clone()),
            Box::new(connections_accepted.clone()),
            Box::new(replica_repairs.clone()),
            Box::new(transactions_ended.clone()),
            Box::new(build_info),
            Box::new(start_time),
        ] {
            registry.register(collector)?;
        }
        let cleaner = crate::cleaner::CleanerMetrics::new()?;
        for collector in cleaner.collectors() {
            registry.register(collector)?;
        }

        let slots = ErrorCode::ALL
            .iter()
            .map(|code| usize::try_from(code.code() - LOWEST_ERROR_CODE + 1).unwrap_or(0))
            .max()
            .unwrap_or(0);
        let max_key = SUPPORTED
            .iter()
            .map(|(key, _, _)| *key as usize)
            .max()
            .unwrap_or(0);
        let mut apis: Vec<Option<ApiMetrics>> = (0..=max_key).map(|_| None).collect();
        for (key, _, _) in SUPPORTED {
            // `Produce`, `Fetch`, ...: Kafka's own names for its APIs.
            let name = format!("{key:?}");
            if let Some(slot) = apis.get_mut(*key as usize) {
                *slot = Some(ApiMetrics {
                    requests: requests.with_label_values(&[name.as_str()]),
                    duration: durations.with_label_values(&[name.as_str()]),
                    errors: errors.clone(),
                    error_counters: (0..slots).map(|_| OnceLock::new()).collect(),
                    name,
                });
            }
        }
        Ok(Self {
            registry,
            apis: apis.into_boxed_slice(),
            topic_bytes_in,
            topic_records_in,
            topic_bytes_out,
            topic_records_out,
            fsync,
            connections,
            connections_accepted,
            replica_repairs,
            transactions_ended,
            cleaner,
            unregistered,
            started: Instant::now(),
        })
    }

    /// The metrics of one API (`None` only for an API the broker does not serve).
    pub(crate) fn api(&self, key: ApiKey) -> Option<&ApiMetrics> {
        self.apis.get(key as usize)?.as_ref()
    }

    /// The counters of a topic, created at zero if the topic has none yet.
    pub(crate) fn topic(&self, name: &str) -> TopicMetrics {
        TopicMetrics {
            bytes_in: self.topic_bytes_in.with_label_values(&[name]),
            records_in: self.topic_records_in.with_label_values(&[name]),
            bytes_out: self.topic_bytes_out.with_label_values(&[name]),
            records_out: self.topic_records_out.with_label_values(&[name]),
        }
    }

    /// Counters that go nowhere, for a topic that is only validated.
    pub(crate) fn unregistered_topic(&self) -> TopicMetrics {
        self.unregistered.clone()
    }

    /// Drops a deleted topic's series, so that it disappears from `/metrics`.
    pub(crate) fn remove_topic(&self, name: &str) {
        for vec in [
            &self.topic_bytes_in,
            &self.topic_records_in,
            &self.topic_bytes_out,
            &self.topic_records_out,
        ] {
            let _ = vec.remove_label_values(&[name]);
        }
    }

    /// A connection was accepted; it counts as open until the guard is dropped.
    pub(crate) fn connection_opened(&self) -> ConnectionGuard {
        self.connections_accepted.inc();
        self.connections.inc();
        ConnectionGuard(self.connections.clone())
    }

    /// Adds a collector read at scrape time.
    pub(crate) fn register(
        &self,
        collector: Box<dyn prometheus::core::Collector>,
    ) -> Result<(), prometheus::Error> {
        self.registry.register(collector)
    }

    /// How long this broker has been running.
    pub(crate) fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Everything in the registry, in the Prometheus text exposition format.
    pub(crate) fn encode(&self) -> Result<String, prometheus::Error> {
        let mut text = String::new();
        TextEncoder::new().encode_utf8(&self.registry.gather(), &mut text)?;
        Ok(text)
    }

    /// The content type of [`Metrics::encode`]'s output.
    pub(crate) fn content_type() -> &'static str {
        prometheus::TEXT_FORMAT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn every_served_api_has_counters_and_errors_are_labelled_by_kafka_name() -> TestResult {
        let metrics = Metrics::new()?;
        for (key, _, _) in SUPPORTED {
            assert!(metrics.api(*key).is_some(), "{key:?}");
        }
        let produce = metrics.api(ApiKey::Produce).ok_or("no Produce metrics")?;
        produce.finished(Instant::now());
        let body = ResponseKind::Heartbeat(
            rill_protocol::kafka_protocol::messages::HeartbeatResponse::default()
                .with_error_code(ErrorCode::RebalanceInProgress.code()),
        );
        produce.count_errors(&body);
        produce.count_errors(&body);
        let text = metrics.encode()?;
        assert!(
            text.contains("rill_requests_total{api=\"Produce\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("rill_errors_total{api=\"Produce\",error=\"REBALANCE_IN_PROGRESS\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("rill_request_duration_seconds_count{api=\"Produce\"} 1\n"));
        Ok(())
    }

    #[test]
    fn fetched_counts_records_from_batch_headers() -> TestResult {
        let metrics = Metrics::new()?;
        let topic = metrics.topic("t");
        let mut bytes = Vec::new();
        for count in [3, 5] {
            let mut builder = rill_record::BatchBuilder::new();
            for i in 0..count {
                builder = builder.record(rill_record::RecordSpec::new(0).value(format!("v{i}")));
            }
            bytes.extend_from_slice(&builder.build()?);
        }
        topic.fetched(&bytes);
        topic.appended(100, 7);
        let text = metrics.encode()?;
        assert!(
            text.contains("rill_topic_records_out_total{topic=\"t\"} 8\n"),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "rill_topic_bytes_out_total{{topic=\"t\"}} {}\n",
                bytes.len()
            )),
            "{text}"
        );
        assert!(
            text.contains("rill_topic_records_in_total{topic=\"t\"} 7\n"),
            "{text}"
        );
        metrics.remove_topic("t");
        let text = metrics.encode()?;
        assert!(!text.contains("topic=\"t\""), "{text}");
        Ok(())
    }
}
