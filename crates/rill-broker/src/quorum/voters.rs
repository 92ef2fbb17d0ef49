//! `controller.quorum.voters`: the metadata quorum's members, `id@host:port,...` as Kafka
//! writes it.

use std::collections::BTreeMap;
use std::fmt;

/// Node ids with the address of each one's controller listener.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Voters(BTreeMap<i32, (String, u16)>);

impl Voters {
    /// Parses `1@host:port,2@host:port`; an empty string is no voters (a one-node cluster of
    /// the broker itself).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut voters = BTreeMap::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let bad = || format!("controller.quorum.voters: '{item}' is not id@host:port");
            let (id, address) = item.split_once('@').ok_or_else(bad)?;
            let id: i32 = id.trim().parse().map_err(|_| bad())?;
            if id < 0 {
                return Err(format!(
                    "controller.quorum.voters: node id {id} is negative"
                ));
            }
            let (host, port) = address.rsplit_once(':').ok_or_else(bad)?;
            let port: u16 = port.parse().map_err(|_| bad())?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            if host.is_empty() || port == 0 {
                return Err(bad());
            }
            if voters.insert(id, (host.to_owned(), port)).is_some() {
                return Err(format!(
                    "controller.quorum.voters: node id {id} is listed twice"
                ));
            }
        }
        Ok(Self(voters))
    }

    /// One voter: `id`, with no address (a single-node cluster needs none).
    pub(crate) fn alone(id: i32) -> Self {
        Self(BTreeMap::from([(id, (String::new(), 0))]))
    }

    /// Whether no voter is named.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn ids(&self) -> impl Iterator<Item = i32> + '_ {
        self.0.keys().copied()
    }

    /// Whether node `id` is a voter.
    pub fn contains(&self, id: i32) -> bool {
        self.0.contains_key(&id)
    }

    /// Node `id`'s controller listener.
    pub fn address(&self, id: i32) -> Option<(&str, u16)> {
        self.0.get(&id).map(|(h, p)| (h.as_str(), *p))
    }

    /// How many voters there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl fmt::Display for Voters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (id, (host, port)) in &self.0 {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{id}@{host}:{port}")?;
        }
        Ok(())
    }
}

/// Raft counts ids from 1 (0 is "none"); Kafka's node ids start at 0.
pub(crate) fn raft_id(node_id: i32) -> u64 {
    u64::try_from(node_id).unwrap_or(0) + 1
}

/// The node id of a Raft id.
pub(crate) fn node_id(raft_id: u64) -> i32 {
    i32::try_from(raft_id).unwrap_or(0) - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kafka_form_and_refuses_bad_items() {
        let voters = Voters::parse("2@127.0.0.1:9094, 1@localhost:9093").unwrap_or_default();
        assert_eq!(voters.ids().collect::<Vec<_>>(), [1, 2]);
        assert_eq!(voters.address(1), Some(("localhost", 9093)));
        assert_eq!(voters.to_string(), "1@localhost:9093,2@127.0.0.1:9094");
        for bad in [
            "1@host",
            "x@h:1",
            "1@h:0",
            "1@:5",
            "1@h:1,1@h:2",
            "-1@h:1",
            "1h:1",
        ] {
            assert!(Voters::parse(bad).is_err(), "{bad}");
        }
        assert!(Voters::parse("").is_ok_and(|v| v.is_empty()));
        assert_eq!(node_id(raft_id(0)), 0);
    }
}
