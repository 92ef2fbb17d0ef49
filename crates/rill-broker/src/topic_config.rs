//! Per-topic configuration: the Kafka topic configs Rill honours, their defaults, validation,
//! and how they turn into a partition's [`LogConfig`].

use std::collections::BTreeMap;
use std::time::Duration;

use rill_log::{FlushPolicy, LogConfig};

use crate::config::BrokerConfig;

/// What kind of value a config holds (DescribeConfigs v3+ `config_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConfigType {
    String = 2,
    Int = 3,
    Long = 5,
}

/// A topic config Rill knows.
#[derive(Debug)]
pub(crate) struct ConfigDef {
    pub(crate) name: &'static str,
    pub(crate) kind: ConfigType,
    pub(crate) doc: &'static str,
}

/// Every topic config Rill accepts. Others are refused with INVALID_CONFIG rather than
/// silently ignored.
pub(crate) const TOPIC_CONFIGS: &[ConfigDef] = &[
    ConfigDef {
        name: "cleanup.policy",
        kind: ConfigType::String,
        doc: "Only \"delete\": Rill does not compact.",
    },
    ConfigDef {
        name: "compression.type",
        kind: ConfigType::String,
        doc: "Only \"producer\": batches are stored as the producer compressed them.",
    },
    ConfigDef {
        name: "flush.messages",
        kind: ConfigType::Long,
        doc: "Fsync after this many records; Long.MAX_VALUE leaves it to the OS.",
    },
    ConfigDef {
        name: "flush.ms",
        kind: ConfigType::Long,
        doc: "Fsync when the last fsync is older; Long.MAX_VALUE leaves it to the OS.",
    },
    ConfigDef {
        name: "index.interval.bytes",
        kind: ConfigType::Int,
        doc: "Log bytes between two sparse index entries.",
    },
    ConfigDef {
        name: "max.message.bytes",
        kind: ConfigType::Int,
        doc: "The largest record batch a produce may carry.",
    },
    ConfigDef {
        name: "message.timestamp.type",
        kind: ConfigType::String,
        doc: "Only \"CreateTime\".",
    },
    ConfigDef {
        name: "retention.bytes",
        kind: ConfigType::Long,
        doc: "Delete old segments while a partition is larger; -1 is unlimited.",
    },
    ConfigDef {
        name: "retention.ms",
        kind: ConfigType::Long,
        doc: "Delete segments whose newest record is older; -1 keeps forever.",
    },
    ConfigDef {
        name: "segment.bytes",
        kind: ConfigType::Int,
        doc: "Roll to a new segment at this size.",
    },
    ConfigDef {
        name: "segment.ms",
        kind: ConfigType::Long,
        doc: "Roll to a new segment when the active one is older.",
    },
];

/// The effective value of every topic config: broker defaults with the topic's overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TopicConfig {
    pub(crate) log: LogConfig,
    pub(crate) max_message_bytes: i32,
}

impl TopicConfig {
    /// Applies `overrides` (already validated) on the broker's defaults.
    pub(crate) fn resolve(broker: &BrokerConfig, overrides: &BTreeMap<String, String>) -> Self {
        let mut config = Self {
            log: broker.log.clone(),
            max_message_bytes: broker.max_message_bytes,
        };
        for (name, value) in overrides {
            // Validated on the way in; a value that no longer parses keeps the default.
            let _ = config.apply(name, value);
        }
        config
    }

    fn apply(&mut self, name: &str, value: &str) -> Result<(), String> {
        let long = || {
            value
                .parse::<i64>()
                .map_err(|_| format!("{name}: not a number: {value}"))
        };
        match name {
            "cleanup.policy" if value == "delete" => {}
            "compression.type" if value == "producer" => {}
            "message.timestamp.type" if value == "CreateTime" => {}
            "cleanup.policy" | "compression.type" | "message.timestamp.type" => {
                return Err(format!("{name}={value} is not supported by Rill"));
            }
            "retention.ms" => self.log.retention_ms = long()?,
            "retention.bytes" => self.log.retention_bytes = long()?,
            "segment.ms" => self.log.segment_ms = long()?,
            "segment.bytes" => {
                self.log.segment_bytes = u64::try_from(long()?)
                    .map_err(|_| format!("segment.bytes must be positive: {value}"))?;
            }
            "index.interval.bytes" => {
                self.log.index_interval_bytes = u32::try_from(long()?)
                    .map_err(|_| format!("index.interval.bytes out of range: {value}"))?;
            }
            "max.message.bytes" => {
                self.max_message_bytes = i32::try_from(long()?)
                    .ok()
                    .filter(|v| *v > 0)
                    .ok_or_else(|| format!("max.message.bytes out of range: {value}"))?;
            }
            "flush.messages" => {
                let n = long()?;
                self.log.flush = match n {
                    i64::MAX => FlushPolicy::Never,
                    1.. => FlushPolicy::Messages(n.unsigned_abs()),
                    _ => return Err(format!("flush.messages must be positive: {value}")),
                };
            }
            "flush.ms" => {
                let ms = long()?;
                self.log.flush = match ms {
                    i64::MAX => FlushPolicy::Never,
                    0 => FlushPolicy::EveryAppend,
                    1.. => FlushPolicy::Interval(Duration::from_millis(ms.unsigned_abs())),
                    _ => return Err(format!("flush.ms must not be negative: {value}")),
                };
            }
            _ => return Err(format!("unknown topic config {name}")),
        }
        Ok(())
    }

    /// Checks a set of overrides: every name known, every value in range.
    pub(crate) fn validate(
        broker: &BrokerConfig,
        overrides: &BTreeMap<String, String>,
    ) -> Result<(), String> {
        let mut config = Self::resolve(broker, &BTreeMap::new());
        for (name, value) in overrides {
            config.apply(name, value)?;
        }
        config.log.validate().map_err(|err| err.to_string())
    }

    /// The value Kafka would show for `name`.
    pub(crate) fn value_of(&self, name: &str) -> Option<String> {
        let log = &self.log;
        Some(match name {
            "cleanup.policy" => "delete".to_owned(),
            "compression.type" => "producer".to_owned(),
            "message.timestamp.type" => "CreateTime".to_owned(),
            "retention.ms" => log.retention_ms.to_string(),
            "retention.bytes" => log.retention_bytes.to_string(),
            "segment.ms" => log.segment_ms.to_string(),
            "segment.bytes" => log.segment_bytes.to_string(),
            "index.interval.bytes" => log.index_interval_bytes.to_string(),
            "max.message.bytes" => self.max_message_bytes.to_string(),
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
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_apply_and_bad_ones_are_refused() {
        let broker = BrokerConfig::default();
        let mut overrides = BTreeMap::new();
        let _ = overrides.insert("retention.ms".to_owned(), "1000".to_owned());
        let _ = overrides.insert("flush.messages".to_owned(), "10".to_owned());
        assert!(TopicConfig::validate(&broker, &overrides).is_ok());
        let config = TopicConfig::resolve(&broker, &overrides);
        assert_eq!(config.log.retention_ms, 1000);
        assert_eq!(config.log.flush, FlushPolicy::Messages(10));
        assert_eq!(config.value_of("retention.ms").as_deref(), Some("1000"));
        assert_eq!(config.value_of("flush.messages").as_deref(), Some("10"));

        for (name, value) in [
            ("no.such.config", "1"),
            ("retention.ms", "soon"),
            ("retention.ms", "-5"),
            ("segment.bytes", "10"),
            ("cleanup.policy", "compact"),
            ("max.message.bytes", "0"),
        ] {
            let bad = BTreeMap::from([(name.to_owned(), value.to_owned())]);
            assert!(
                TopicConfig::validate(&broker, &bad).is_err(),
                "{name}={value}"
            );
        }
    }
}
