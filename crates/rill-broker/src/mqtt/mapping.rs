//! Where an MQTT topic's messages live in Kafka's topics, and back.
//!
//! A message published to MQTT topic `T` is a record of the Kafka topic the first matching
//! filter of the map names, else of the Kafka topic `T`'s first level names
//! (`sensors/room1/temp` → `sensors`), keyed by `T` itself, so one device's messages stay in
//! order in one partition. Going back, a record's MQTT topic is its key when the key is an
//! MQTT topic that maps to the record's Kafka topic; any other record (a Kafka producer's,
//! without such a key) is under the Kafka topic's own name.

/// Whether MQTT topic `topic` matches filter `filter` (`+` one level, `#` the rest, parent
/// included; a `$` topic matches no filter that starts with a wildcard). No allocation: this
/// runs for every record a subscription reads.
pub(super) fn matches(topic: &str, filter: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut levels = topic.split('/');
    let mut patterns = filter.split('/');
    loop {
        match (patterns.next(), levels.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(pattern), Some(level)) if pattern == level => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// The MQTT → Kafka topic map.
#[derive(Debug, Clone, Default)]
pub(super) struct Mapping {
    /// `(MQTT filter, Kafka topic)`, tried in order.
    rules: Vec<(String, String)>,
}

impl Mapping {
    pub(super) fn new(rules: Vec<(String, String)>) -> Self {
        Self { rules }
    }

    /// The Kafka topic of MQTT topic `topic` (not checked as a Kafka topic name).
    pub(super) fn kafka_topic<'a>(&'a self, topic: &'a str) -> &'a str {
        self.rules
            .iter()
            .find(|(filter, _)| matches(topic, filter))
            .map_or_else(|| first_level(topic), |(_, kafka)| kafka.as_str())
    }

    /// The MQTT topic of a record of Kafka topic `kafka` with key `key`.
    pub(super) fn mqtt_topic<'a>(&self, kafka: &'a str, key: Option<&'a [u8]>) -> &'a str {
        key.and_then(|k| std::str::from_utf8(k).ok())
            .filter(|k| valid_name(k) && self.kafka_topic(k) == kafka)
            .unwrap_or(kafka)
    }

    /// Whether a subscription to `filter` may need Kafka topic `kafka`: the topics its
    /// messages can be under map to it, or it is named by a filter that can overlap.
    fn may_hold(&self, filter: &str, kafka: &str) -> bool {
        let first = first_level(filter);
        if first == "+" || first == "#" {
            return true;
        }
        // Its own name (a Kafka producer's records), or messages under that first level.
        if first == kafka && self.kafka_topic(first) == kafka
            || self.kafka_topic(filter_prefix(filter)) == kafka
        {
            return true;
        }
        self.rules.iter().any(|(rule, topic)| {
            topic == kafka && {
                let rule_first = first_level(rule);
                rule_first == first || rule_first == "+" || rule_first == "#"
            }
        })
    }

    /// Whether a subscription to `filter` reads Kafka topic `kafka` (internal ones never).
    pub(super) fn reads(&self, filter: &str, kafka: &str) -> bool {
        !kafka.starts_with("__") && self.may_hold(filter, kafka)
    }
}

/// A topic's first level (`sensors` of `sensors/room1/temp`).
fn first_level(topic: &str) -> &str {
    topic.split('/').next().unwrap_or(topic)
}

/// A filter's levels before its first wildcard, without the `/` before it: a topic that
/// matches the filter starts with it.
fn filter_prefix(filter: &str) -> &str {
    let end = filter.find(['+', '#']).unwrap_or(filter.len());
    filter[..end].trim_end_matches('/')
}

/// Whether `topic` is a topic name a client may publish to: not empty, no wildcard, no NUL.
pub(super) fn valid_name(topic: &str) -> bool {
    !topic.is_empty() && !topic.contains(['+', '#', '\0'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_match_as_mqtt_says() {
        assert!(matches("sensors/room1/temp", "sensors/+/temp"));
        assert!(matches("sensors/room1/temp", "sensors/#"));
        assert!(matches("sensors", "sensors/#"));
        assert!(matches("sensors/room1/temp", "#"));
        assert!(matches("sensors/room1/temp", "+/+/+"));
        assert!(!matches("sensors/room1/temp", "sensors/+"));
        assert!(!matches("sensors/room1", "sensors/+/temp"));
        assert!(!matches("$SYS/x", "#"));
        assert!(matches("$SYS/x", "$SYS/#"));
        assert!(matches("/a", "+/a"));
        assert!(!matches("a", "a/+"));
    }

    #[test]
    fn the_first_level_names_the_kafka_topic_unless_the_map_says() {
        let map = Mapping::new(vec![("fleet/+/gps".to_owned(), "positions".to_owned())]);
        assert_eq!(map.kafka_topic("sensors/room1/temp"), "sensors");
        assert_eq!(map.kafka_topic("sensors"), "sensors");
        assert_eq!(map.kafka_topic("/x"), "");
        assert_eq!(map.kafka_topic("fleet/7/gps"), "positions");
        assert_eq!(map.kafka_topic("fleet/7/fuel"), "fleet");
        // Back: keys that map to the topic are MQTT topics; anything else is the topic's name.
        assert_eq!(
            map.mqtt_topic("sensors", Some(b"sensors/a/temp")),
            "sensors/a/temp"
        );
        assert_eq!(map.mqtt_topic("sensors", Some(b"other/a")), "sensors");
        assert_eq!(map.mqtt_topic("sensors", None), "sensors");
        assert_eq!(map.mqtt_topic("sensors", Some(b"\xff")), "sensors");
        assert_eq!(
            map.mqtt_topic("positions", Some(b"fleet/7/gps")),
            "fleet/7/gps"
        );
        // Which topics a filter reads.
        let all = [
            "sensors",
            "positions",
            "fleet",
            "other",
            "__consumer_offsets",
        ];
        let topics =
            |f: &str| -> Vec<&str> { all.iter().copied().filter(|t| map.reads(f, t)).collect() };
        assert_eq!(topics("sensors/+/temp"), vec!["sensors"]);
        assert_eq!(topics("fleet/#"), vec!["positions", "fleet"]);
        assert_eq!(topics("#"), vec!["sensors", "positions", "fleet", "other"]);
        assert_eq!(topics("nothing/here"), Vec::<&str>::new());
    }
}
