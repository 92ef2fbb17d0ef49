//! Per-topic configuration: every Kafka topic config, validated as Kafka validates it; the ones
//! Rill honours turned into a partition's [`LogConfig`] and the produce path's rules.

mod defs;

use std::collections::BTreeMap;
use std::time::Duration;

use rill_log::{FlushPolicy, LogConfig};
use rill_record::{Compression, TimestampType};

use crate::config::BrokerConfig;
pub(crate) use defs::{
    Check, ConfigDef, ConfigType, LONG_MAX, TOPIC_CONFIGS, def, find, list_items,
};

/// `cleanup.policy`: which of Kafka's two policies a topic has (both, one, or, as Kafka 3.9
/// allows, neither).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CleanupPolicy {
    pub(crate) delete: bool,
    pub(crate) compact: bool,
}

/// What the log cleaner does with a compacted topic (`delete.retention.ms`,
/// `min.cleanable.dirty.ratio`, `min.compaction.lag.ms`, `max.compaction.lag.ms`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Compaction {
    /// How long a tombstone (or an empty transaction's marker) stays after the first cleaning
    /// that kept it (KIP-534's delete horizon).
    pub(crate) delete_retention_ms: i64,
    /// The dirty share of a log's sealed bytes above which it is cleaned.
    pub(crate) min_dirty_ratio: f64,
    /// A record younger than this is never cleaned.
    pub(crate) min_lag_ms: i64,
    /// A record older than this is cleaned whatever the dirty ratio.
    pub(crate) max_lag_ms: i64,
}

/// `compression.type` with its level: what a stored batch must be compressed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TopicCompression {
    /// Stored as the producer compressed it.
    Producer,
    /// Recompressed into this codec when it arrives in another one; `level` is the codec's
    /// (`None`: the codec's default).
    Codec {
        codec: Compression,
        level: Option<i32>,
    },
}

/// The effective value of every topic config Rill honours: broker defaults with the topic's
/// overrides. The others are only shown, from `overrides` or Kafka's default.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TopicConfig {
    /// The log settings as configured (see [`TopicConfig::log_config`] for what the log uses).
    pub(crate) log: LogConfig,
    pub(crate) max_message_bytes: i32,
    pub(crate) min_insync_replicas: i32,
    pub(crate) cleanup: CleanupPolicy,
    pub(crate) compaction: Compaction,
    pub(crate) compression: TopicCompression,
    pub(crate) timestamp_type: TimestampType,
    /// Whether Fetch v0-3 may have this topic's batches converted down to their message
    /// format (`message.downconversion.enable`); when not, they get UNSUPPORTED_VERSION.
    pub(crate) down_conversion: bool,
    timestamp_before_max_ms: i64,
    timestamp_after_max_ms: i64,
    timestamp_difference_max_ms: i64,
    gzip_level: i32,
    zstd_level: i32,
    overrides: BTreeMap<String, String>,
    /// The topic defaults set by dynamic broker configs, by topic config name.
    dynamic: BTreeMap<String, String>,
}

impl TopicConfig {
    /// Applies `overrides` (already validated) on the broker's static defaults.
    pub(crate) fn resolve(broker: &BrokerConfig, overrides: &BTreeMap<String, String>) -> Self {
        Self::resolve_with(broker, &BTreeMap::new(), overrides)
    }

    /// Applies `overrides` (already validated) on the broker's defaults: its static settings
    /// with `dynamic`, the topic defaults that dynamic broker configs set (by topic name).
    pub(crate) fn resolve_with(
        broker: &BrokerConfig,
        dynamic: &BTreeMap<String, String>,
        overrides: &BTreeMap<String, String>,
    ) -> Self {
        let mut config = Self::defaults(broker);
        // Validated on the way in; a value that no longer parses keeps the default.
        for (name, value) in dynamic.iter().chain(overrides) {
            let _ = config.apply(name, value);
        }
        config.finish();
        config.overrides = overrides.clone();
        config.dynamic = dynamic.clone();
        config
    }

    fn defaults(broker: &BrokerConfig) -> Self {
        Self {
            log: broker.log.clone(),
            max_message_bytes: broker.max_message_bytes,
            min_insync_replicas: broker.min_insync_replicas,
            cleanup: CleanupPolicy {
                delete: true,
                compact: false,
            },
            compaction: Compaction {
                delete_retention_ms: 86_400_000,
                min_dirty_ratio: 0.5,
                min_lag_ms: 0,
                max_lag_ms: i64::MAX,
            },
            compression: TopicCompression::Producer,
            timestamp_type: TimestampType::CreateTime,
            down_conversion: true,
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: i64::MAX,
            timestamp_difference_max_ms: i64::MAX,
            gzip_level: -1,
            zstd_level: 3,
            overrides: BTreeMap::new(),
            dynamic: BTreeMap::new(),
        }
    }

    /// Sets the honoured configs from `value`; the others only need [`ConfigDef::check`].
    fn apply(&mut self, name: &str, value: &str) -> Result<(), String> {
        let def = find(name).ok_or_else(|| format!("unknown topic config {name}"))?;
        def.check(value)?;
        let trimmed = value.trim();
        // `check` has parsed numbers already; 0 is never reached.
        let long = || trimmed.parse::<i64>().unwrap_or(0);
        let int = || i32::try_from(long()).unwrap_or(0);
        match name {
            "cleanup.policy" => {
                let items = list_items(value);
                self.cleanup = CleanupPolicy {
                    delete: items.contains(&"delete"),
                    compact: items.contains(&"compact"),
                };
            }
            "compression.type" => {
                self.compression = match trimmed {
                    "producer" => TopicCompression::Producer,
                    other => TopicCompression::Codec {
                        codec: match other {
                            "gzip" => Compression::Gzip,
                            "snappy" => Compression::Snappy,
                            "lz4" => Compression::Lz4,
                            "zstd" => Compression::Zstd,
                            _ => Compression::None,
                        },
                        level: None,
                    },
                };
            }
            "delete.retention.ms" => self.compaction.delete_retention_ms = long(),
            "min.cleanable.dirty.ratio" => {
                self.compaction.min_dirty_ratio = trimmed.parse::<f64>().unwrap_or(0.5);
            }
            "min.compaction.lag.ms" => self.compaction.min_lag_ms = long(),
            "max.compaction.lag.ms" => self.compaction.max_lag_ms = long(),
            "compression.gzip.level" => self.gzip_level = int(),
            "compression.zstd.level" => self.zstd_level = int(),
            "message.timestamp.type" => {
                self.timestamp_type = if trimmed == "LogAppendTime" {
                    TimestampType::LogAppendTime
                } else {
                    TimestampType::CreateTime
                };
            }
            "message.timestamp.before.max.ms" => self.timestamp_before_max_ms = long(),
            "message.timestamp.after.max.ms" => self.timestamp_after_max_ms = long(),
            "message.timestamp.difference.max.ms" => self.timestamp_difference_max_ms = long(),
            "min.insync.replicas" => self.min_insync_replicas = int(),
            "message.downconversion.enable" => {
                self.down_conversion = trimmed.eq_ignore_ascii_case("true");
            }
            "remote.storage.enable" if trimmed.eq_ignore_ascii_case("true") => {
                // Kafka's answer on a broker without remote.log.storage.system.enable.
                return Err(
                    "remote.storage.enable=true: tiered storage is not available on \
                            this broker, so a topic cannot keep its log in remote storage"
                        .to_owned(),
                );
            }
            "retention.ms" => self.log.retention_ms = long(),
            "retention.bytes" => self.log.retention_bytes = long(),
            "segment.ms" => self.log.segment_ms = long(),
            "segment.bytes" => self.log.segment_bytes = long().unsigned_abs(),
            // Kafka allows 0 (an entry for every batch); the log's sparse index wants at least 1.
            "index.interval.bytes" => {
                self.log.index_interval_bytes = u32::try_from(long().max(1)).unwrap_or(1);
            }
            "max.message.bytes" => self.max_message_bytes = int(),
            "flush.messages" => {
                let n = long();
                self.log.flush = match n {
                    i64::MAX => FlushPolicy::Never,
                    _ => FlushPolicy::Messages(n.unsigned_abs()),
                };
            }
            "flush.ms" => {
                let ms = long();
                self.log.flush = match ms {
                    i64::MAX => FlushPolicy::Never,
                    0 => FlushPolicy::EveryAppend,
                    _ => FlushPolicy::Interval(Duration::from_millis(ms.unsigned_abs())),
                };
            }
            _ => {}
        }
        Ok(())
    }

    /// Derives what depends on more than one config.
    fn finish(&mut self) {
        self.compression = match self.compression {
            TopicCompression::Codec { codec, .. } => TopicCompression::Codec {
                codec,
                level: match codec {
                    Compression::Gzip if self.gzip_level != -1 => Some(self.gzip_level),
                    Compression::Zstd => Some(self.zstd_level),
                    _ => None,
                },
            },
            TopicCompression::Producer => TopicCompression::Producer,
        };
    }

    /// Checks a set of overrides: every name known, every value in range.
    pub(crate) fn validate(
        broker: &BrokerConfig,
        overrides: &BTreeMap<String, String>,
    ) -> Result<(), String> {
        let mut config = Self::defaults(broker);
        for (name, value) in overrides {
            config.apply(name, value)?;
        }
        let lag = |name: &str, default: i64| {
            overrides
                .get(name)
                .and_then(|v| v.trim().parse::<i64>().ok())
                .unwrap_or(default)
        };
        let (min_lag, max_lag) = (
            lag("min.compaction.lag.ms", 0),
            lag("max.compaction.lag.ms", i64::MAX),
        );
        if min_lag > max_lag {
            return Err(format!(
                "conflicting configs: min.compaction.lag.ms ({min_lag}) is larger than \
                 max.compaction.lag.ms ({max_lag})"
            ));
        }
        config.log.validate().map_err(|err| err.to_string())
    }

    /// The settings the partition log runs with. A topic whose policy lacks `delete` keeps
    /// its segments whatever its retention says: Kafka never deletes the segments of a
    /// compact-only topic by time or size (its cleaner compacts them).
    pub(crate) fn log_config(&self) -> LogConfig {
        let mut log = self.log.clone();
        if !self.cleanup.delete {
            log.retention_ms = -1;
            log.retention_bytes = -1;
        }
        log
    }

    /// The oldest and newest CreateTime timestamps accepted at `now`, or `None` when any is
    /// (Kafka's rule: the deprecated difference bound applies where before/after are unset).
    pub(crate) fn timestamp_window(&self, now: i64) -> Option<(i64, i64)> {
        if self.timestamp_type == TimestampType::LogAppendTime {
            return None;
        }
        let pick = |bound: i64| match bound {
            i64::MAX => self.timestamp_difference_max_ms,
            bound => bound,
        };
        let (before, after) = (
            pick(self.timestamp_before_max_ms),
            pick(self.timestamp_after_max_ms),
        );
        (before != i64::MAX || after != i64::MAX)
            .then(|| (now.saturating_sub(before), now.saturating_add(after)))
    }

    /// The value Kafka would show for `name`: the topic's own, else the broker's default, else
    /// Kafka's.
    pub(crate) fn value_of(&self, name: &str) -> Option<String> {
        if let Some(value) = self.overrides.get(name).or_else(|| self.dynamic.get(name)) {
            return Some(value.clone());
        }
        let log = &self.log;
        Some(match name {
            "retention.ms" => log.retention_ms.to_string(),
            "retention.bytes" => log.retention_bytes.to_string(),
            "segment.ms" => log.segment_ms.to_string(),
            "segment.bytes" => log.segment_bytes.to_string(),
            "index.interval.bytes" => log.index_interval_bytes.to_string(),
            "max.message.bytes" => self.max_message_bytes.to_string(),
            "min.insync.replicas" => self.min_insync_replicas.to_string(),
            "flush.messages" => match log.flush {
                FlushPolicy::EveryAppend => "1".to_owned(),
                FlushPolicy::Messages(n) => n.to_string(),
                _ => i64::MAX.to_string(),
            },
            "flush.ms" => match log.flush {
                FlushPolicy::EveryAppend => "0".to_owned(),
                FlushPolicy::Interval(d) => d.as_millis().to_string(),
                _ => i64::MAX.to_string(),
            },
            other => find(other)?.default.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overrides(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn overrides_apply_and_bad_ones_are_refused() {
        let broker = BrokerConfig::default();
        let set = overrides(&[("retention.ms", "1000"), ("flush.messages", "10")]);
        assert!(TopicConfig::validate(&broker, &set).is_ok());
        let config = TopicConfig::resolve(&broker, &set);
        assert_eq!(config.log.retention_ms, 1000);
        assert_eq!(config.log.flush, FlushPolicy::Messages(10));
        assert_eq!(config.value_of("retention.ms").as_deref(), Some("1000"));
        assert_eq!(config.value_of("flush.messages").as_deref(), Some("10"));

        for (name, value) in [
            ("no.such.config", "1"),
            ("retention.ms", "soon"),
            ("retention.ms", "-5"),
            ("segment.bytes", "10"),
            ("cleanup.policy", "shrink"),
            ("max.message.bytes", "-1"),
            ("remote.storage.enable", "true"),
            ("min.insync.replicas", "0"),
        ] {
            let bad = overrides(&[(name, value)]);
            assert!(
                TopicConfig::validate(&broker, &bad).is_err(),
                "{name}={value}"
            );
        }
        let lags = overrides(&[
            ("min.compaction.lag.ms", "10"),
            ("max.compaction.lag.ms", "5"),
        ]);
        assert!(TopicConfig::validate(&broker, &lags).is_err());
    }

    #[test]
    fn every_config_has_a_value_and_defaults_come_from_the_broker() {
        let broker = BrokerConfig {
            min_insync_replicas: 2,
            ..BrokerConfig::default()
        };
        let config = TopicConfig::resolve(&broker, &BTreeMap::new());
        for def in TOPIC_CONFIGS {
            assert!(config.value_of(def.name).is_some(), "{}", def.name);
        }
        assert_eq!(config.value_of("min.insync.replicas").as_deref(), Some("2"));
        assert_eq!(config.value_of("cleanup.policy").as_deref(), Some("delete"));
        assert_eq!(
            config.value_of("message.format.version").as_deref(),
            Some("3.0-IV1")
        );
    }

    #[test]
    fn compact_only_topics_keep_everything() {
        let broker = BrokerConfig::default();
        let compact = TopicConfig::resolve(&broker, &overrides(&[("cleanup.policy", "compact")]));
        assert!(compact.cleanup.compact && !compact.cleanup.delete);
        assert_eq!(compact.log_config().retention_ms, -1);
        assert_eq!(compact.log_config().retention_bytes, -1);
        assert_eq!(
            compact.value_of("retention.ms").as_deref(),
            Some("604800000")
        );
        let both = TopicConfig::resolve(
            &broker,
            &overrides(&[("cleanup.policy", "delete,compact"), ("retention.ms", "5")]),
        );
        assert!(both.cleanup.compact && both.cleanup.delete);
        assert_eq!(both.log_config().retention_ms, 5);
    }

    #[test]
    fn compression_and_its_level() {
        let broker = BrokerConfig::default();
        let zstd = TopicConfig::resolve(
            &broker,
            &overrides(&[
                ("compression.type", "zstd"),
                ("compression.zstd.level", "7"),
            ]),
        );
        assert_eq!(
            zstd.compression,
            TopicCompression::Codec {
                codec: Compression::Zstd,
                level: Some(7)
            }
        );
        let none =
            TopicConfig::resolve(&broker, &overrides(&[("compression.type", "uncompressed")]));
        assert_eq!(
            none.compression,
            TopicCompression::Codec {
                codec: Compression::None,
                level: None
            }
        );
        let gzip = TopicConfig::resolve(&broker, &overrides(&[("compression.type", "gzip")]));
        assert_eq!(
            gzip.compression,
            TopicCompression::Codec {
                codec: Compression::Gzip,
                level: None
            }
        );
    }

    #[test]
    fn timestamp_window_follows_kafka_precedence() {
        let broker = BrokerConfig::default();
        let plain = TopicConfig::resolve(&broker, &BTreeMap::new());
        assert_eq!(plain.timestamp_window(1000), None);
        let difference = TopicConfig::resolve(
            &broker,
            &overrides(&[("message.timestamp.difference.max.ms", "100")]),
        );
        assert_eq!(difference.timestamp_window(1000), Some((900, 1100)));
        let both = TopicConfig::resolve(
            &broker,
            &overrides(&[
                ("message.timestamp.difference.max.ms", "100"),
                ("message.timestamp.after.max.ms", "5"),
            ]),
        );
        assert_eq!(both.timestamp_window(1000), Some((900, 1005)));
        let append = TopicConfig::resolve(
            &broker,
            &overrides(&[
                ("message.timestamp.type", "LogAppendTime"),
                ("message.timestamp.before.max.ms", "5"),
            ]),
        );
        assert_eq!(append.timestamp_window(1000), None);
    }
}
