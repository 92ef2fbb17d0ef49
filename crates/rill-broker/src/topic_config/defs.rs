//! The table of Kafka 3.9's topic configs: each name with its type, Kafka's default, the values
//! Kafka accepts and the broker setting that gives its default, and the checks that enforce
//! those ranges the way Kafka's `ConfigDef` parses them.

/// What kind of value a config holds (DescribeConfigs v3+ `config_type`, Kafka's numbering).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Long = 5,
    Double = 6,
    List = 7,
}

/// The values a config accepts.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Check {
    /// A whole number in `min..=max` (an `Int` must also fit 32 bits).
    Range(i64, i64),
    /// `-1` (the codec's default) or `1..=9`.
    GzipLevel,
    Boolean,
    /// A number in `min..=max`.
    Fraction(f64, f64),
    /// One of these, exactly (Kafka's `ValidString` is case-sensitive).
    OneOf(&'static [&'static str]),
    /// A comma-separated list, each item one of these.
    ListOf(&'static [&'static str]),
    /// `partition:broker` pairs, or `*`.
    Replicas,
    /// A Kafka release, as `message.format.version` takes it.
    FormatVersion,
    /// Any value (a broker config Rill only stores).
    Any,
}

/// A topic config Kafka documents.
#[derive(Debug)]
pub(crate) struct ConfigDef {
    pub(crate) name: &'static str,
    pub(crate) kind: ConfigType,
    /// Kafka's default, as DescribeConfigs shows it.
    pub(crate) default: &'static str,
    pub(crate) check: Check,
    /// The broker setting that gives the topic's default (Kafka's "server default property").
    pub(crate) broker: &'static str,
    pub(crate) doc: &'static str,
}

pub(crate) const LONG_MAX: &str = "9223372036854775807";
const I32: i64 = i32::MAX as i64;

pub(crate) const fn def(
    name: &'static str,
    kind: ConfigType,
    default: &'static str,
    check: Check,
    broker: &'static str,
    doc: &'static str,
) -> ConfigDef {
    ConfigDef {
        name,
        kind,
        default,
        check,
        broker,
        doc,
    }
}

use Check::{Boolean, Fraction, OneOf, Range};
use ConfigType as T;

/// Every topic config of Kafka 3.9, in Kafka's (alphabetical) order. Others are refused with
/// INVALID_CONFIG. Which of them Rill honours is said in README.md.
#[rustfmt::skip]
pub(crate) const TOPIC_CONFIGS: &[ConfigDef] = &[
    def("cleanup.policy", T::List, "delete", Check::ListOf(&["compact", "delete"]),
        "log.cleanup.policy",
        "delete: retention removes old segments; compact: the log cleaner keeps the latest record of each key (records need a key)."),
    def("compression.gzip.level", T::Int, "-1", Check::GzipLevel, "compression.gzip.level",
        "The gzip level batches are recompressed with when compression.type is gzip."),
    def("compression.lz4.level", T::Int, "9", Range(1, 17), "compression.lz4.level",
        "Accepted without effect: Rill's lz4 codec has one level."),
    def("compression.type", T::String, "producer",
        OneOf(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]), "compression.type",
        "The codec batches are stored in; producer keeps the producer's."),
    def("compression.zstd.level", T::Int, "3", Range(-131_072, 22), "compression.zstd.level",
        "The zstd level batches are recompressed with when compression.type is zstd."),
    def("delete.retention.ms", T::Long, "86400000", Range(0, i64::MAX),
        "log.cleaner.delete.retention.ms",
        "How long the cleaner keeps a tombstone after the first pass that kept it (KIP-534)."),
    def("file.delete.delay.ms", T::Long, "60000", Range(0, i64::MAX),
        "log.segment.delete.delay.ms", "Accepted without effect: segments are deleted at once."),
    def("flush.messages", T::Long, LONG_MAX, Range(1, i64::MAX), "log.flush.interval.messages",
        "Fsync after this many records; Long.MAX_VALUE leaves it to the OS."),
    def("flush.ms", T::Long, LONG_MAX, Range(0, i64::MAX), "log.flush.interval.ms",
        "Fsync when the last fsync is older; Long.MAX_VALUE leaves it to the OS."),
    def("follower.replication.throttled.replicas", T::List, "", Check::Replicas,
        "follower.replication.throttled.replicas",
        "Accepted without effect: one replica, nothing to throttle."),
    def("index.interval.bytes", T::Int, "4096", Range(0, I32), "log.index.interval.bytes",
        "Log bytes between two sparse index entries."),
    def("leader.replication.throttled.replicas", T::List, "", Check::Replicas,
        "leader.replication.throttled.replicas",
        "Accepted without effect: one replica, nothing to throttle."),
    def("local.retention.bytes", T::Long, "-2", Range(-2, i64::MAX), "log.local.retention.bytes",
        "Accepted without effect: no tiered storage."),
    def("local.retention.ms", T::Long, "-2", Range(-2, i64::MAX), "log.local.retention.ms",
        "Accepted without effect: no tiered storage."),
    def("max.compaction.lag.ms", T::Long, LONG_MAX, Range(1, i64::MAX),
        "log.cleaner.max.compaction.lag.ms",
        "A record older than this is compacted whatever the dirty ratio."),
    def("max.message.bytes", T::Int, "1048588", Range(0, I32), "message.max.bytes",
        "The largest record batch a produce may carry."),
    def("message.downconversion.enable", T::Boolean, "true", Boolean,
        "log.message.downconversion.enable",
        "Accepted without effect: only record batches v2 are served, never down-converted."),
    def("message.format.version", T::String, "3.0-IV1", Check::FormatVersion,
        "log.message.format.version",
        "Deprecated; accepted without effect, as Kafka 3.x ignores it for v2 batches."),
    def("message.timestamp.after.max.ms", T::Long, LONG_MAX, Range(0, i64::MAX),
        "log.message.timestamp.after.max.ms",
        "How far in the future a CreateTime timestamp may be; further is INVALID_TIMESTAMP."),
    def("message.timestamp.before.max.ms", T::Long, LONG_MAX, Range(0, i64::MAX),
        "log.message.timestamp.before.max.ms",
        "How far in the past a CreateTime timestamp may be; further is INVALID_TIMESTAMP."),
    def("message.timestamp.difference.max.ms", T::Long, LONG_MAX, Range(0, i64::MAX),
        "log.message.timestamp.difference.max.ms",
        "Deprecated: both bounds at once, where before/after.max.ms are not set."),
    def("message.timestamp.type", T::String, "CreateTime", OneOf(&["CreateTime", "LogAppendTime"]),
        "log.message.timestamp.type",
        "LogAppendTime: the broker stamps each batch with the time it appends it."),
    def("min.cleanable.dirty.ratio", T::Double, "0.5", Fraction(0.0, 1.0),
        "log.cleaner.min.cleanable.ratio",
        "The dirty share of a compacted log's sealed bytes above which the cleaner cleans it."),
    def("min.compaction.lag.ms", T::Long, "0", Range(0, i64::MAX),
        "log.cleaner.min.compaction.lag.ms",
        "A record younger than this is never compacted."),
    def("min.insync.replicas", T::Int, "1", Range(1, I32), "min.insync.replicas",
        "Above 1, acks=all produces fail with NOT_ENOUGH_REPLICAS: Rill has one replica."),
    def("preallocate", T::Boolean, "false", Boolean, "log.preallocate",
        "Accepted without effect: segments grow as they are written."),
    def("remote.log.copy.disable", T::Boolean, "false", Boolean, "",
        "Accepted without effect: no tiered storage."),
    def("remote.log.delete.on.disable", T::Boolean, "false", Boolean, "",
        "Accepted without effect: no tiered storage."),
    def("remote.storage.enable", T::Boolean, "false", Boolean, "",
        "Only false: this broker has no tiered storage."),
    def("retention.bytes", T::Long, "-1", Range(-1, i64::MAX), "log.retention.bytes",
        "Delete old segments while a partition is larger; -1 is unlimited."),
    def("retention.ms", T::Long, "604800000", Range(-1, i64::MAX), "log.retention.ms",
        "Delete segments whose newest record is older; -1 keeps forever."),
    def("segment.bytes", T::Int, "1073741824", Range(14, I32), "log.segment.bytes",
        "Roll to a new segment at this size."),
    def("segment.index.bytes", T::Int, "10485760", Range(4, I32), "log.index.size.max.bytes",
        "Accepted without effect: indexes are sized by the segment."),
    def("segment.jitter.ms", T::Long, "0", Range(0, i64::MAX), "log.roll.jitter.ms",
        "Accepted without effect: segments roll at segment.ms exactly."),
    def("segment.ms", T::Long, "604800000", Range(1, i64::MAX), "log.roll.ms",
        "Roll to a new segment when the active one is older."),
    def("unclean.leader.election.enable", T::Boolean, "false", Boolean,
        "unclean.leader.election.enable", "Accepted without effect: one replica, no election."),
];

/// The definition of `name`, if Kafka has such a topic config.
pub(crate) fn find(name: &str) -> Option<&'static ConfigDef> {
    TOPIC_CONFIGS.iter().find(|def| def.name == name)
}

/// The items of a list value, as Kafka's `ConfigDef` splits them: on commas, each trimmed; an
/// empty (or blank) value is the empty list.
pub(crate) fn list_items(value: &str) -> Vec<&str> {
    let value = value.trim();
    if value.is_empty() {
        Vec::new()
    } else {
        value.split(',').map(str::trim).collect()
    }
}

impl ConfigDef {
    /// Checks `value` against the config's type and range, as Kafka would.
    pub(crate) fn check(&self, value: &str) -> Result<(), String> {
        let name = self.name;
        let trimmed = value.trim();
        let number = || {
            trimmed
                .parse::<i64>()
                .ok()
                .filter(|n| self.kind != ConfigType::Int || i32::try_from(*n).is_ok())
                .ok_or_else(|| {
                    let kind = if self.kind == ConfigType::Int {
                        "an int"
                    } else {
                        "a long"
                    };
                    format!("invalid value {value} for {name}: expected {kind}")
                })
        };
        match self.check {
            Range(min, max) => {
                let n = number()?;
                if n < min || n > max {
                    let upper = if max == i64::MAX || max == I32 {
                        "...".to_owned()
                    } else {
                        max.to_string()
                    };
                    return Err(format!(
                        "invalid value {value} for {name}: must be in [{min},...,{upper}]"
                    ));
                }
            }
            Check::GzipLevel => {
                let n = number()?;
                if !(n == -1 || (1..=9).contains(&n)) {
                    return Err(format!(
                        "invalid value {value} for {name}: must be in [1,...,9] or -1"
                    ));
                }
            }
            Boolean => {
                if !(trimmed.eq_ignore_ascii_case("true") || trimmed.eq_ignore_ascii_case("false"))
                {
                    return Err(format!(
                        "invalid value {value} for {name}: expected true or false"
                    ));
                }
            }
            Fraction(min, max) => {
                let x = trimmed
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite())
                    .ok_or_else(|| {
                        format!("invalid value {value} for {name}: expected a number")
                    })?;
                if x < min || x > max {
                    return Err(format!(
                        "invalid value {value} for {name}: must be in [{min},...,{max}]"
                    ));
                }
            }
            OneOf(valid) => {
                if !valid.contains(&trimmed) {
                    return Err(format!(
                        "invalid value {value} for {name}: must be one of {}",
                        valid.join(", ")
                    ));
                }
            }
            Check::ListOf(valid) => {
                if let Some(bad) = list_items(value).into_iter().find(|i| !valid.contains(i)) {
                    return Err(format!(
                        "invalid value {value} for {name}: '{bad}' is not one of {}",
                        valid.join(", ")
                    ));
                }
            }
            Check::Replicas => {
                let items = list_items(value);
                let pair = |item: &str| {
                    item.is_empty()
                        || item.split_once(':').is_some_and(|(p, b)| {
                            [p, b]
                                .iter()
                                .all(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()))
                        })
                };
                if !(trimmed == "*" || items.iter().all(|item| pair(item))) {
                    return Err(format!(
                        "invalid value {value} for {name}: must be * or a list of \
                         partition:broker pairs (such as 0:1,1:1)"
                    ));
                }
            }
            Check::FormatVersion => {
                if !is_format_version(trimmed) {
                    return Err(format!(
                        "invalid value {value} for {name}: not a Kafka version \
                         (such as 2.8, 0.10.0 or 3.0-IV1)"
                    ));
                }
            }
            Check::Any => {}
        }
        Ok(())
    }
}

/// Kafka 3.9's versions (`MetadataVersion`) with their internal versions; the short form of
/// each (`2.8`, `0.10.0`) names its latest.
const FORMAT_VERSIONS: &[&str] = &[
    "0.8.0",
    "0.8.1",
    "0.8.2",
    "0.9.0",
    "0.10.0-IV0",
    "0.10.0-IV1",
    "0.10.1-IV0",
    "0.10.1-IV1",
    "0.10.1-IV2",
    "0.10.2-IV0",
    "0.11.0-IV0",
    "0.11.0-IV1",
    "0.11.0-IV2",
    "1.0-IV0",
    "1.1-IV0",
    "2.0-IV0",
    "2.0-IV1",
    "2.1-IV0",
    "2.1-IV1",
    "2.1-IV2",
    "2.2-IV0",
    "2.2-IV1",
    "2.3-IV0",
    "2.3-IV1",
    "2.4-IV0",
    "2.4-IV1",
    "2.5-IV0",
    "2.6-IV0",
    "2.7-IV0",
    "2.7-IV1",
    "2.7-IV2",
    "2.8-IV0",
    "2.8-IV1",
    "3.0-IV0",
    "3.0-IV1",
    "3.1-IV0",
    "3.2-IV0",
    "3.3-IV0",
    "3.3-IV1",
    "3.3-IV2",
    "3.3-IV3",
    "3.4-IV0",
    "3.5-IV0",
    "3.5-IV1",
    "3.5-IV2",
    "3.6-IV0",
    "3.6-IV1",
    "3.6-IV2",
    "3.7-IV0",
    "3.7-IV1",
    "3.7-IV2",
    "3.7-IV3",
    "3.7-IV4",
    "3.8-IV0",
    "3.9-IV0",
];

/// Whether Kafka 3.9 parses `text` as a version: a listed one, its short form, or a longer
/// release number of one (`2.8.1` is `2.8`, `0.10.0.1` is `0.10.0`).
fn is_format_version(text: &str) -> bool {
    let parts: Vec<&str> = text.split('.').collect();
    let significant = if text.starts_with("0.") { 3 } else { 2 };
    let key = if parts.len() <= significant {
        text.to_owned()
    } else {
        parts.get(..significant).unwrap_or_default().join(".")
    };
    FORMAT_VERSIONS
        .iter()
        .any(|v| *v == key || v.split_once("-IV").is_some_and(|(short, _)| short == key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, value: &str) -> Result<(), String> {
        find(name).ok_or("unknown")?.check(value)
    }

    #[test]
    fn the_table_is_sorted_and_complete() {
        let names: Vec<&str> = TOPIC_CONFIGS.iter().map(|d| d.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
        assert_eq!(names.len(), 36);
        for def in TOPIC_CONFIGS {
            assert_eq!(def.check(def.default), Ok(()), "{}'s default", def.name);
        }
    }

    #[test]
    fn values_are_checked_as_kafka_parses_them() {
        for (name, value) in [
            ("cleanup.policy", "compact"),
            ("cleanup.policy", "delete, compact"),
            ("cleanup.policy", "compact,delete"),
            ("compression.gzip.level", "-1"),
            ("compression.gzip.level", "9"),
            ("compression.zstd.level", "-131072"),
            ("min.insync.replicas", " 2 "),
            ("min.cleanable.dirty.ratio", "0.01"),
            ("preallocate", "TRUE"),
            ("leader.replication.throttled.replicas", "0:1, 1:1"),
            ("follower.replication.throttled.replicas", "*"),
            ("message.format.version", "0.10.0"),
            ("message.format.version", "2.8"),
            ("message.format.version", "2.8.1"),
            ("message.format.version", "3.0-IV1"),
            ("message.format.version", "0.8.2"),
            ("local.retention.ms", "-2"),
            ("max.message.bytes", "0"),
        ] {
            assert_eq!(check(name, value), Ok(()), "{name}={value}");
        }
        for (name, value) in [
            ("cleanup.policy", "compact,shrink"),
            ("compression.type", "brotli"),
            ("compression.type", "GZIP"),
            ("compression.gzip.level", "0"),
            ("compression.lz4.level", "18"),
            ("compression.zstd.level", "23"),
            ("min.insync.replicas", "0"),
            ("min.insync.replicas", "3000000000"),
            ("min.cleanable.dirty.ratio", "1.5"),
            ("min.cleanable.dirty.ratio", "NaN"),
            ("preallocate", "yes"),
            ("leader.replication.throttled.replicas", "0-1"),
            ("message.format.version", "4.0"),
            ("message.format.version", "banana"),
            ("message.timestamp.type", "logappendtime"),
            ("local.retention.ms", "-3"),
            ("segment.ms", "0"),
            ("retention.ms", "soon"),
        ] {
            assert!(check(name, value).is_err(), "{name}={value}");
        }
    }
}
