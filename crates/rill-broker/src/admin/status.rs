//! `/status`: the broker, its topics and its consumer groups as one JSON document, for a console
//! (the shape is documented in the README). Offsets and sizes are what the partition owners last
//! published; group members come from the group actors.

use std::collections::BTreeMap;

use serde::Serialize;

use super::AdminState;
use crate::broker::Broker;

#[derive(Debug, Serialize)]
pub(super) struct Status {
    broker: BrokerStatus,
    topics: Vec<TopicStatus>,
    groups: Vec<GroupStatus>,
}

#[derive(Debug, Serialize)]
struct BrokerStatus {
    node_id: i32,
    cluster_id: String,
    version: &'static str,
    uptime_seconds: u64,
    /// The Kafka listener's bound address.
    listener: String,
    /// `host:port` given to clients in Metadata.
    advertised: String,
}

#[derive(Debug, Serialize)]
struct TopicStatus {
    name: String,
    id: String,
    /// The topic's config overrides (defaults are not listed).
    configs: BTreeMap<String, String>,
    partitions: Vec<PartitionStatus>,
}

#[derive(Debug, Serialize)]
struct PartitionStatus {
    partition: i32,
    log_start_offset: i64,
    log_end_offset: i64,
    size_bytes: u64,
}

#[derive(Debug, Serialize)]
struct GroupStatus {
    group_id: String,
    /// Kafka's state name: `Empty`, `PreparingRebalance`, `CompletingRebalance`, `Stable`.
    state: &'static str,
    protocol_type: String,
    /// The chosen assignor while the group is Stable, `""` otherwise.
    protocol: String,
    members: Vec<MemberStatus>,
    offsets: Vec<OffsetStatus>,
}

#[derive(Debug, Serialize)]
struct MemberStatus {
    member_id: String,
    group_instance_id: Option<String>,
    client_id: String,
    host: String,
    /// Decoded for consumer groups; `null` for other protocols or an unreadable assignment.
    assignment: Option<Vec<Assigned>>,
}

#[derive(Debug, PartialEq, Eq, Serialize)]
struct Assigned {
    topic: String,
    partitions: Vec<i32>,
}

#[derive(Debug, Serialize)]
struct OffsetStatus {
    topic: String,
    partition: i32,
    committed_offset: i64,
    /// `null` when the partition does not exist (any more).
    log_end_offset: Option<i64>,
    /// Log end minus committed, at least 0; `null` without a log end.
    lag: Option<i64>,
}

pub(super) async fn build(state: &AdminState, broker: &Broker) -> Status {
    let (host, port) = (&broker.cluster.local().host, broker.cluster.local().port);
    let topics = broker
        .all_topics()
        .iter()
        .map(|topic| TopicStatus {
            name: topic.name.clone(),
            id: topic.id.to_string(),
            configs: topic.overrides.clone(),
            partitions: topic
                .held_partitions()
                .map(|p| {
                    let offsets = p.offsets();
                    PartitionStatus {
                        partition: p.index,
                        log_start_offset: offsets.log_start,
                        log_end_offset: offsets.log_end,
                        size_bytes: offsets.size_bytes,
                    }
                })
                .collect(),
        })
        .collect();
    let mut groups = Vec::new();
    for listing in broker.groups.list().await {
        let description = broker.groups.describe(&listing.group_id).await;
        let consumer = listing.protocol_type == "consumer";
        let members = description
            .as_ref()
            .map(|d| {
                d.members
                    .iter()
                    .map(|m| MemberStatus {
                        member_id: m.member_id.clone(),
                        group_instance_id: m.group_instance_id.clone(),
                        client_id: m.client_id.clone(),
                        host: m.client_host.clone(),
                        assignment: if consumer {
                            decode_assignment(&m.assignment)
                        } else {
                            None
                        },
                    })
                    .collect()
            })
            .unwrap_or_default();
        let offsets = broker
            .groups
            .group_offsets(&listing.group_id)
            .into_iter()
            .map(|((topic, partition), committed)| {
                let log_end = broker
                    .topic(&topic)
                    .and_then(|t| t.partition(partition).map(|p| p.offsets().high_watermark));
                OffsetStatus {
                    lag: log_end.map(|end| end.saturating_sub(committed.offset).max(0)),
                    log_end_offset: log_end,
                    committed_offset: committed.offset,
                    topic,
                    partition,
                }
            })
            .collect();
        groups.push(GroupStatus {
            state: listing.state.kafka_name(),
            protocol: description.map(|d| d.protocol).unwrap_or_default(),
            protocol_type: listing.protocol_type,
            group_id: listing.group_id,
            members,
            offsets,
        });
    }
    Status {
        broker: BrokerStatus {
            node_id: broker.config.node_id,
            cluster_id: broker.cluster_id.clone(),
            version: env!("CARGO_PKG_VERSION"),
            uptime_seconds: state.metrics.uptime().as_secs(),
            listener: state.listener.to_string(),
            advertised: format!("{host}:{port}"),
        },
        topics,
        groups,
    }
}

/// Decodes a `ConsumerProtocolAssignment` (any version: each starts with the same topic
/// list). The bytes come from a client, so every count is checked against the bytes left
/// rather than trusted for an allocation. Empty bytes are an empty assignment.
fn decode_assignment(bytes: &[u8]) -> Option<Vec<Assigned>> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let mut r = Reader(bytes);
    if r.i16()? < 0 {
        return None;
    }
    let topics = r.i32()?;
    let mut out = Vec::new();
    for _ in 0..topics.max(0) {
        let len = usize::try_from(r.i16()?).ok()?;
        let topic = std::str::from_utf8(r.take(len)?).ok()?.to_owned();
        let count = r.i32()?;
        let mut partitions = Vec::new();
        for _ in 0..count.max(0) {
            partitions.push(r.i32()?);
        }
        out.push(Assigned { topic, partitions });
    }
    Some(out)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }

    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assignment(version: i16, topics: &[(&str, &[i32])]) -> Vec<u8> {
        let mut out = version.to_be_bytes().to_vec();
        out.extend_from_slice(&(topics.len() as i32).to_be_bytes());
        for (topic, partitions) in topics {
            out.extend_from_slice(&(topic.len() as i16).to_be_bytes());
            out.extend_from_slice(topic.as_bytes());
            out.extend_from_slice(&(partitions.len() as i32).to_be_bytes());
            for p in *partitions {
                out.extend_from_slice(&p.to_be_bytes());
            }
        }
        out.extend_from_slice(&(-1_i32).to_be_bytes()); // null user data
        out
    }

    #[test]
    fn consumer_assignments_decode_and_truncations_do_not() {
        let bytes = assignment(1, &[("orders", &[0, 2]), ("audit", &[1])]);
        assert_eq!(
            decode_assignment(&bytes),
            Some(vec![
                Assigned {
                    topic: "orders".into(),
                    partitions: vec![0, 2]
                },
                Assigned {
                    topic: "audit".into(),
                    partitions: vec![1]
                },
            ])
        );
        assert_eq!(decode_assignment(&[]), Some(Vec::new()));
        // Cut anywhere inside the topic list: no answer, never a panic.
        for cut in 1..bytes.len() - 4 {
            assert_eq!(decode_assignment(&bytes[..cut]), None, "cut at {cut}");
        }
        // A count of two billion partitions in a few bytes is refused, not allocated.
        let mut huge = assignment(0, &[("t", &[])]);
        huge.truncate(2 + 4 + 2 + 1);
        huge.extend_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(decode_assignment(&huge), None);
    }
}
