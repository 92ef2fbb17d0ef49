//! Dynamic broker configs, as Kafka's `DynamicBrokerConfig` keeps them: set by AlterConfigs on
//! a BROKER resource, either for this broker (its node id) or for every broker (the cluster
//! default, resource name ""), stored in the metadata log, and layered over the `rill serve`
//! settings (per-broker over cluster default over static over Kafka's default).
//!
//! The broker synonyms of topic configs (`log.retention.ms`, `log.cleanup.policy`, ...) are
//! honoured: they are the defaults of every topic without an override of its own. The other
//! configs Kafka lets AlterConfigs change are checked, stored and reported, without effect.

use std::collections::BTreeMap;

use rill_protocol::ErrorCode;

use crate::topic_config::{Check, ConfigDef, ConfigType, LONG_MAX, TOPIC_CONFIGS, def};

/// DescribeConfigs' source of a per-broker dynamic config.
pub(crate) const SOURCE_DYNAMIC_BROKER: i8 = 2;
/// DescribeConfigs' source of a cluster-wide dynamic default.
pub(crate) const SOURCE_DYNAMIC_DEFAULT: i8 = 3;

/// An error a client gets: the code and a message.
pub(crate) type ConfigError = (ErrorCode, String);

const I32: i64 = i32::MAX as i64;
const I32_MAX: &str = "2147483647";
const NO_EFFECT_THREADS: &str = "Accepted without effect: Rill sizes its own threads.";
const NO_EFFECT_CLEANER: &str = "Accepted without effect: the log cleaner takes its settings from rill serve (--log-cleaner-*).";
const NO_EFFECT_SECURITY: &str = "Accepted without effect: Rill serves PLAINTEXT only.";
const NO_EFFECT_QUOTA: &str = "Accepted without effect: Rill has no quotas yet.";
const NO_EFFECT_REMOTE: &str = "Accepted without effect: no tiered storage.";

use Check::{Fraction, Range};
use ConfigType as T;

/// The broker configs Kafka 3.9 lets AlterConfigs change that are not topic defaults.
#[rustfmt::skip]
const OTHER_DYNAMIC: &[ConfigDef] = &[
    def("background.threads", T::Int, "10", Range(1, I32), "", NO_EFFECT_THREADS),
    def("num.io.threads", T::Int, "8", Range(1, I32), "", NO_EFFECT_THREADS),
    def("num.network.threads", T::Int, "3", Range(1, I32), "", NO_EFFECT_THREADS),
    def("num.recovery.threads.per.data.dir", T::Int, "1", Range(1, I32), "", NO_EFFECT_THREADS),
    def("num.replica.fetchers", T::Int, "1", Range(1, I32), "",
        "Accepted without effect: one replica, nothing to fetch."),
    def("log.cleaner.threads", T::Int, "1", Range(0, I32), "", NO_EFFECT_CLEANER),
    def("log.cleaner.backoff.ms", T::Long, "15000", Range(0, i64::MAX), "", NO_EFFECT_CLEANER),
    def("log.cleaner.dedupe.buffer.size", T::Long, "134217728", Range(i64::MIN, i64::MAX), "",
        NO_EFFECT_CLEANER),
    def("log.cleaner.io.buffer.size", T::Int, "524288", Range(0, I32), "", NO_EFFECT_CLEANER),
    def("log.cleaner.io.buffer.load.factor", T::Double, "0.9", Fraction(f64::MIN, f64::MAX), "",
        NO_EFFECT_CLEANER),
    def("log.cleaner.io.max.bytes.per.second", T::Double, "1.7976931348623157E308",
        Fraction(f64::MIN, f64::MAX), "", NO_EFFECT_CLEANER),
    def("max.connections", T::Int, I32_MAX, Range(0, I32), "", NO_EFFECT_QUOTA),
    def("max.connections.per.ip", T::Int, I32_MAX, Range(0, I32), "", NO_EFFECT_QUOTA),
    def("max.connections.per.ip.overrides", T::String, "", Check::Any, "", NO_EFFECT_QUOTA),
    def("max.connection.creation.rate", T::Int, I32_MAX, Range(0, I32), "", NO_EFFECT_QUOTA),
    def("leader.replication.throttled.rate", T::Long, LONG_MAX, Range(0, i64::MAX), "",
        "Accepted without effect: one replica, nothing to throttle."),
    def("follower.replication.throttled.rate", T::Long, LONG_MAX, Range(0, i64::MAX), "",
        "Accepted without effect: one replica, nothing to throttle."),
    def("replica.alter.log.dirs.io.max.bytes.per.second", T::Long, LONG_MAX, Range(0, i64::MAX),
        "", "Accepted without effect: one log directory."),
    def("metric.reporters", T::List, "", Check::Any, "",
        "Accepted without effect: Rill's metrics are on its admin listener."),
    def("producer.id.expiration.ms", T::Int, "86400000", Range(1, I32), "",
        "Accepted without effect: idempotent producers' state is kept with the log."),
    def("remote.log.index.file.cache.total.size.bytes", T::Long, "1073741824", Range(1, i64::MAX),
        "", NO_EFFECT_REMOTE),
    def("remote.log.manager.copy.max.bytes.per.second", T::Long, LONG_MAX, Range(1, i64::MAX), "",
        NO_EFFECT_REMOTE),
    def("remote.log.manager.fetch.max.bytes.per.second", T::Long, LONG_MAX, Range(1, i64::MAX), "",
        NO_EFFECT_REMOTE),
    def("remote.fetch.max.wait.ms", T::Int, "500", Range(1, I32), "", NO_EFFECT_REMOTE),
    // Kafka's per-broker listener configs: SSL and SASL.
    def("principal.builder.class", T::String, "org.apache.kafka.common.security.authenticator.DefaultKafkaPrincipalBuilder",
        Check::Any, "", NO_EFFECT_SECURITY),
    def("ssl.protocol", T::String, "TLSv1.3", Check::Any, "", NO_EFFECT_SECURITY),
    def("ssl.provider", T::String, "", Check::Any, "", NO_EFFECT_SECURITY),
    def("ssl.cipher.suites", T::List, "", Check::Any, "", NO_EFFECT_SECURITY),
    def("ssl.enabled.protocols", T::List, "TLSv1.2,TLSv1.3", Check::Any, "", NO_EFFECT_SECURITY),
    def("ssl.keymanager.algorithm", T::String, "SunX509", Check::Any, "", NO_EFFECT_SECURITY),
    def("ssl.trustmanager.algorithm", T::String, "PKIX", Check::Any, "", NO_EFFECT_SECURITY),
    def("ssl.secure.random.implementation", T::String, "", Check::Any, "", NO_EFFECT_SECURITY),
    def("ssl.client.auth", T::String, "none", Check::OneOf(&["required", "requested", "none"]),
        "", NO_EFFECT_SECURITY),
    def("ssl.engine.factory.class", T::String, "", Check::Any, "", NO_EFFECT_SECURITY),
    def("sasl.mechanism.inter.broker.protocol", T::String, "GSSAPI", Check::Any, "",
        NO_EFFECT_SECURITY),
    def("sasl.jaas.config", T::String, "", Check::Any, "", NO_EFFECT_SECURITY),
    def("sasl.enabled.mechanisms", T::List, "GSSAPI", Check::Any, "", NO_EFFECT_SECURITY),
    def("sasl.kerberos.service.name", T::String, "", Check::Any, "", NO_EFFECT_SECURITY),
    def("sasl.kerberos.kinit.cmd", T::String, "/usr/bin/kinit", Check::Any, "",
        NO_EFFECT_SECURITY),
    def("sasl.kerberos.ticket.renew.window.factor", T::Double, "0.8",
        Fraction(f64::MIN, f64::MAX), "", NO_EFFECT_SECURITY),
    def("sasl.kerberos.ticket.renew.jitter", T::Double, "0.05", Fraction(f64::MIN, f64::MAX), "",
        NO_EFFECT_SECURITY),
    def("sasl.kerberos.min.time.before.relogin", T::Long, "60000", Range(i64::MIN, i64::MAX), "",
        NO_EFFECT_SECURITY),
    def("sasl.kerberos.principal.to.local.rules", T::List, "DEFAULT", Check::Any, "",
        NO_EFFECT_SECURITY),
    def("sasl.login.refresh.window.factor", T::Double, "0.8", Fraction(0.5, 1.0), "",
        NO_EFFECT_SECURITY),
    def("sasl.login.refresh.window.jitter", T::Double, "0.05", Fraction(0.0, 0.25), "",
        NO_EFFECT_SECURITY),
    def("sasl.login.refresh.min.period.seconds", T::Int, "60", Range(0, 900), "",
        NO_EFFECT_SECURITY),
    def("sasl.login.refresh.buffer.seconds", T::Int, "300", Range(0, 3600), "",
        NO_EFFECT_SECURITY),
];

/// Of [`OTHER_DYNAMIC`], those Kafka sets per broker only (its listener's SSL and SASL).
fn per_broker_only(name: &str) -> bool {
    name.starts_with("ssl.") || name.starts_with("sasl.") || name == "principal.builder.class"
}

/// The hours and minutes forms of topic defaults, each with the topic config it gives and its
/// factor to milliseconds (the `.ms` form wins over minutes, which wins over hours, as in Kafka).
#[rustfmt::skip]
const UNIT_SYNONYMS: &[(ConfigDef, &str, i64)] = &[
    (def("log.retention.minutes", T::Int, "", Range(i32::MIN as i64, I32), "",
        "Default retention.ms of topics, in minutes, where log.retention.ms is not set."),
        "retention.ms", 60_000),
    (def("log.retention.hours", T::Int, "168", Range(i32::MIN as i64, I32), "",
        "Default retention.ms of topics, in hours, where neither .ms nor .minutes is set."),
        "retention.ms", 3_600_000),
    (def("log.roll.hours", T::Int, "168", Range(1, I32), "",
        "Default segment.ms of topics, in hours, where log.roll.ms is not set."),
        "segment.ms", 3_600_000),
    (def("log.roll.jitter.hours", T::Int, "0", Range(0, I32), "",
        "Accepted without effect: segments roll at segment.ms exactly."),
        "segment.jitter.ms", 3_600_000),
];

/// SSL stores Kafka changes only per listener (`listener.name.<listener>.<config>`).
const LISTENER_PREFIX_ONLY: &[&str] = &[
    "ssl.keystore.type",
    "ssl.keystore.location",
    "ssl.keystore.password",
    "ssl.keystore.key",
    "ssl.keystore.certificate.chain",
    "ssl.key.password",
    "ssl.truststore.type",
    "ssl.truststore.location",
    "ssl.truststore.password",
    "ssl.truststore.certificates",
];

/// Kafka broker configs that are not dynamically updatable (Kafka's `nonDynamicProps`), those
/// a client is likely to try, and the listener configs, which Kafka changes per broker but Rill
/// cannot change while it runs.
const READ_ONLY: &[&str] = &[
    "advertised.listeners",
    "auto.create.topics.enable",
    "auto.leader.rebalance.enable",
    "broker.id",
    "broker.rack",
    "controller.listener.names",
    "controller.quorum.bootstrap.servers",
    "controller.quorum.voters",
    "default.replication.factor",
    "delete.topic.enable",
    "group.initial.rebalance.delay.ms",
    "group.max.session.timeout.ms",
    "group.min.session.timeout.ms",
    "inter.broker.listener.name",
    "listener.security.protocol.map",
    "listeners",
    "log.dir",
    "log.dirs",
    "log.retention.check.interval.ms",
    "metadata.log.dir",
    "node.id",
    "num.partitions",
    "offsets.retention.minutes",
    "offsets.topic.num.partitions",
    "offsets.topic.replication.factor",
    "process.roles",
    "queued.max.requests",
    "replica.lag.time.max.ms",
    "security.inter.broker.protocol",
    "socket.receive.buffer.bytes",
    "socket.request.max.bytes",
    "socket.send.buffer.bytes",
    "transaction.state.log.min.isr",
    "transaction.state.log.replication.factor",
    "zookeeper.connect",
];

/// What Kafka knows of a broker config name.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Known {
    /// The broker synonym of this topic config.
    Topic(&'static ConfigDef),
    /// An hours or minutes form of a topic config's default.
    Unit(&'static ConfigDef),
    /// Dynamic, without effect in Rill.
    Other(&'static ConfigDef),
}

/// The definition of a dynamic broker config, if Kafka has one by that name.
pub(crate) fn known(name: &str) -> Option<Known> {
    if let Some(topic) = topic_synonym(name) {
        return Some(Known::Topic(topic));
    }
    if let Some((def, ..)) = UNIT_SYNONYMS.iter().find(|(d, ..)| d.name == name) {
        return Some(Known::Unit(def));
    }
    OTHER_DYNAMIC
        .iter()
        .find(|d| d.name == name)
        .map(Known::Other)
}

/// The topic config whose broker synonym is `name`.
fn topic_synonym(name: &str) -> Option<&'static ConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| {
        d.broker == name && !d.broker.is_empty() && !d.name.ends_with(".throttled.replicas")
    })
}

/// Every dynamic broker config Kafka knows, by broker name: type, Kafka's default, its doc.
pub(crate) fn all_known() -> Vec<(&'static str, ConfigType, &'static str, &'static str)> {
    let topics = TOPIC_CONFIGS
        .iter()
        .filter_map(|d| topic_synonym(d.broker).map(|_| (d.broker, d.kind, d.default, d.doc)));
    let units = UNIT_SYNONYMS
        .iter()
        .map(|(d, ..)| (d.name, d.kind, d.default, d.doc));
    let others = OTHER_DYNAMIC
        .iter()
        .map(|d| (d.name, d.kind, d.default, d.doc));
    topics.chain(units).chain(others).collect()
}

/// The type and Kafka's default of a broker config, for APPEND and SUBTRACT.
pub(crate) fn kind_and_default(name: &str) -> Option<(ConfigType, &'static str)> {
    Some(match known(name)? {
        Known::Topic(d) => (d.kind, d.default),
        Known::Unit(d) | Known::Other(d) => (d.kind, d.default),
    })
}

/// Whether DescribeConfigs hides the value (Kafka's PASSWORD type).
pub(crate) fn sensitive(name: &str) -> bool {
    name.ends_with(".password") || name.ends_with("sasl.jaas.config") || name.ends_with(".key")
}

fn set(names: &[&str]) -> String {
    format!("Set({})", names.join(", "))
}

/// Checks a resource's whole new set of dynamic configs as Kafka's broker does before it takes
/// them: nothing read-only, SSL stores only per listener, every known value of its type and in
/// range, and listener configs only per broker.
pub(crate) fn validate(
    configs: &BTreeMap<String, String>,
    per_broker: bool,
) -> Result<(), ConfigError> {
    let names = |pick: &dyn Fn(&str) -> bool| -> Vec<&str> {
        configs
            .keys()
            .map(String::as_str)
            .filter(|n| pick(n))
            .collect()
    };
    let read_only = names(&|n| READ_ONLY.contains(&n));
    if !read_only.is_empty() {
        return Err((
            ErrorCode::InvalidRequest,
            format!(
                "Cannot update these configs dynamically: {}",
                set(&read_only)
            ),
        ));
    }
    let unprefixed = names(&|n| LISTENER_PREFIX_ONLY.contains(&n));
    if !unprefixed.is_empty() {
        return Err((
            ErrorCode::InvalidRequest,
            format!(
                "These security configs can be dynamically updated only per-listener using the \
                 listener prefix: {}",
                set(&unprefixed)
            ),
        ));
    }
    for (name, value) in configs {
        let checked = match known(name) {
            Some(Known::Topic(d)) => d
                .check(value)
                .map_err(|m| m.replacen(&format!("for {}", d.name), &format!("for {name}"), 1)),
            Some(Known::Unit(d) | Known::Other(d)) => d.check(value),
            None => Ok(()),
        };
        // Kafka 3.9 answers a broker config that fails validation with INVALID_REQUEST, not
        // INVALID_CONFIG (its KAFKA-13609 says so and keeps it for compatibility); so does Rill.
        checked.map_err(|m| (ErrorCode::InvalidRequest, m))?;
    }
    if !per_broker {
        let listener = |n: &str| {
            n.strip_prefix("listener.name.")
                .and_then(|rest| rest.split_once('.'))
                .is_some_and(|(_, base)| {
                    base != "max.connections" && base != "max.connection.creation.rate"
                })
        };
        let only = names(&|n| per_broker_only(n) || listener(n));
        if !only.is_empty() {
            return Err((
                ErrorCode::InvalidRequest,
                format!(
                    "Cannot update these configs at default cluster level, broker id must be \
                     specified: {}",
                    set(&only)
                ),
            ));
        }
    }
    Ok(())
}

/// This broker's dynamic configs: its own and the cluster default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DynamicConfigs {
    pub(crate) cluster: BTreeMap<String, String>,
    pub(crate) node: BTreeMap<String, String>,
}

impl DynamicConfigs {
    /// The configs of the per-broker resource or of the cluster default.
    pub(crate) fn of(&self, per_broker: bool) -> &BTreeMap<String, String> {
        if per_broker {
            &self.node
        } else {
            &self.cluster
        }
    }

    pub(crate) fn of_mut(&mut self, per_broker: bool) -> &mut BTreeMap<String, String> {
        if per_broker {
            &mut self.node
        } else {
            &mut self.cluster
        }
    }

    /// The source (per-broker or cluster default) that sets a topic config's default, under
    /// its broker name or one of its hours/minutes forms.
    pub(crate) fn topic_source(&self, topic: &ConfigDef) -> Option<i8> {
        let sets = |layer: &BTreeMap<String, String>| {
            topic_synonym(topic.broker).is_some() && layer.contains_key(topic.broker)
                || UNIT_SYNONYMS
                    .iter()
                    .any(|(d, t, _)| *t == topic.name && layer.contains_key(d.name))
        };
        if sets(&self.node) {
            Some(SOURCE_DYNAMIC_BROKER)
        } else if sets(&self.cluster) {
            Some(SOURCE_DYNAMIC_DEFAULT)
        } else {
            None
        }
    }

    /// The topic defaults they set, by topic config name (validated when they were set).
    pub(crate) fn topic_defaults(&self) -> BTreeMap<String, String> {
        let mut merged = self.cluster.clone();
        merged.extend(self.node.iter().map(|(k, v)| (k.clone(), v.clone())));
        let mut out = BTreeMap::new();
        for (name, value) in &merged {
            if let Some(topic) = topic_synonym(name) {
                let _ = out.insert(topic.name.to_owned(), value.trim().to_owned());
            }
        }
        // Minutes before hours: the first form present wins where `.ms` is not set.
        for (def, topic, factor) in UNIT_SYNONYMS {
            let Some(value) = merged.get(def.name) else {
                continue;
            };
            if out.contains_key(*topic) {
                continue;
            }
            if let Ok(n) = value.trim().parse::<i64>() {
                let ms = if n < 0 { -1 } else { n.saturating_mul(*factor) };
                let _ = out.insert((*topic).to_owned(), ms.to_string());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn refusals_have_kafka_codes() {
        let code = |pairs, per_broker| validate(&map(pairs), per_broker).map_err(|e| e.0);
        assert_eq!(
            code(&[("log.dirs", "/x")], true),
            Err(ErrorCode::InvalidRequest)
        );
        assert_eq!(
            code(&[("ssl.keystore.location", "/x")], true),
            Err(ErrorCode::InvalidRequest)
        );
        assert_eq!(
            code(&[("sasl.kerberos.min.time.before.relogin", "58000")], false),
            Err(ErrorCode::InvalidRequest)
        );
        assert_eq!(
            code(&[("log.retention.ms", "soon")], false),
            Err(ErrorCode::InvalidRequest)
        );
        assert_eq!(
            code(&[("log.cleanup.policy", "delete,shrink")], true),
            Err(ErrorCode::InvalidRequest)
        );
        assert_eq!(code(&[("background.threads", "9")], false), Ok(()));
        assert_eq!(
            code(&[("sasl.kerberos.min.time.before.relogin", "58000")], true),
            Ok(())
        );
        assert_eq!(code(&[("custom.thing", "x")], false), Ok(()));
    }

    #[test]
    fn topic_defaults_layer_and_units() {
        let dynamic = DynamicConfigs {
            cluster: map(&[("log.retention.ms", "1000"), ("log.roll.hours", "2")]),
            node: map(&[
                ("log.retention.ms", "2000"),
                ("log.cleanup.policy", "compact"),
            ]),
        };
        let defaults = dynamic.topic_defaults();
        assert_eq!(
            defaults.get("retention.ms").map(String::as_str),
            Some("2000")
        );
        assert_eq!(
            defaults.get("segment.ms").map(String::as_str),
            Some("7200000")
        );
        assert_eq!(
            defaults.get("cleanup.policy").map(String::as_str),
            Some("compact")
        );
        let retention = crate::topic_config::find("retention.ms");
        assert_eq!(
            retention.and_then(|d| dynamic.topic_source(d)),
            Some(SOURCE_DYNAMIC_BROKER)
        );
        let segment = crate::topic_config::find("segment.ms");
        assert_eq!(
            segment.and_then(|d| dynamic.topic_source(d)),
            Some(SOURCE_DYNAMIC_DEFAULT)
        );
    }
}
