//! OffsetCommit, OffsetFetch (one group or, from v8, several) and OffsetDelete.

use std::collections::BTreeSet;

use rill_protocol::StrBytes;
use rill_protocol::kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use rill_protocol::kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use rill_protocol::kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use rill_protocol::kafka_protocol::messages::{
    OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse,
    OffsetFetchRequest, OffsetFetchResponse,
};
use rill_protocol::{ErrorCode, LegacyFields};

use crate::broker::Broker;
use crate::group::Committed;
use crate::partition::now_ms;

/// Kafka's `offset.metadata.max.bytes` default.
const MAX_METADATA_BYTES: usize = 4096;

/// Commits offsets. Old versions keep their own rules: v0 names no generation or member (a
/// commit from outside any group generation); v1 may give each partition's commit time (`legacy`,
/// -1 for now), which is where its retention counts from; v2-4 may ask for a retention of their
/// own (`retention_time_ms`, -1 for the broker's): once the group has no members, the offset
/// expires that long after the commit instead of `offsets.retention.minutes` after it.
pub(crate) async fn commit(
    broker: &Broker,
    req: OffsetCommitRequest,
    version: i16,
    legacy: Option<LegacyFields>,
) -> OffsetCommitResponse {
    let group_id = req.group_id.0.to_string();
    let group_error = if group_id.is_empty() {
        Some(ErrorCode::InvalidGroupId)
    } else {
        broker
            .groups
            .validate_commit(
                &group_id,
                req.member_id.to_string(),
                req.generation_id_or_member_epoch,
                req.group_instance_id.as_ref().map(ToString::to_string),
            )
            .await
            .err()
            .map(|e| ErrorCode::from_code(e.kafka_code()).unwrap_or(ErrorCode::UnknownServerError))
    };
    let now = now_ms();
    let expire_ms = ((2..=4).contains(&version) && req.retention_time_ms >= 0)
        .then(|| now.saturating_add(req.retention_time_ms));
    let stamps = legacy.map(|l| l.commit_timestamps).unwrap_or_default();
    let commit_ms = |t: usize, p: usize| match stamps.get(t).and_then(|s| s.get(p)) {
        Some(&stamp) if stamp >= 0 => stamp,
        _ => now,
    };
    // Per partition: an error now, or an offset to store.
    let mut results: Vec<(usize, i32, Result<(), ErrorCode>)> = Vec::new();
    let mut to_store = Vec::new();
    for (t, topic) in req.topics.iter().enumerate() {
        let known = broker.topic(&topic.name.0);
        for (i, p) in topic.partitions.iter().enumerate() {
            let check = match group_error {
                Some(code) => Err(code),
                None if !known.as_ref().is_some_and(|k| k.exists(p.partition_index)) => {
                    Err(ErrorCode::UnknownTopicOrPartition)
                }
                None if p
                    .committed_metadata
                    .as_ref()
                    .is_some_and(|m| m.len() > MAX_METADATA_BYTES) =>
                {
                    Err(ErrorCode::OffsetMetadataTooLarge)
                }
                None => {
                    to_store.push((
                        topic.name.0.to_string(),
                        p.partition_index,
                        Committed {
                            offset: p.committed_offset,
                            leader_epoch: p.committed_leader_epoch,
                            metadata: p.committed_metadata.as_ref().map(ToString::to_string),
                            commit_ms: commit_ms(t, i),
                            expire_ms,
                        },
                    ));
                    Ok(())
                }
            };
            results.push((t, p.partition_index, check));
        }
    }
    let stored = broker.groups.commit(&group_id, to_store).await;
    let mut topics: Vec<OffsetCommitResponseTopic> = req
        .topics
        .iter()
        .map(|t| {
            OffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_topic_id(t.topic_id)
        })
        .collect();
    for (t, partition, check) in results {
        let error = match (check, stored) {
            (Err(code), _) | (Ok(()), Err(code)) => code.code(),
            (Ok(()), Ok(())) => 0,
        };
        if let Some(topic) = topics.get_mut(t) {
            topic.partitions.push(
                OffsetCommitResponsePartition::default()
                    .with_partition_index(partition)
                    .with_error_code(error),
            );
        }
    }
    OffsetCommitResponse::default().with_topics(topics)
}

/// The committed offset of one partition as OffsetFetch reports it: -1 and no error when none.
fn committed(
    broker: &Broker,
    group: &str,
    topic: &str,
    partition: i32,
) -> (i64, i32, Option<StrBytes>) {
    match broker.groups.fetch(group, topic, partition) {
        Some(c) => (
            c.offset,
            c.leader_epoch,
            Some(StrBytes::from_string(c.metadata.unwrap_or_default())),
        ),
        None => (-1, -1, Some(StrBytes::new())),
    }
}

/// (topic, partitions) asked for, or every committed one when `None`.
fn wanted(
    broker: &Broker,
    group: &str,
    topics: Option<Vec<(StrBytes, Vec<i32>)>>,
) -> Vec<(StrBytes, Vec<i32>)> {
    match topics {
        Some(topics) => topics,
        None => {
            let mut all: Vec<(StrBytes, Vec<i32>)> = Vec::new();
            for ((topic, partition), _) in broker.groups.group_offsets(group) {
                match all.last_mut() {
                    Some((name, parts)) if name.as_str() == topic => parts.push(partition),
                    _ => all.push((StrBytes::from_string(topic), vec![partition])),
                }
            }
            all
        }
    }
}

pub(crate) fn fetch(broker: &Broker, req: OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
    // KIP-447: a consumer that asks for stable offsets (v7+) is told to retry while a
    // transaction that committed an offset of the partition is still open.
    let stable = req.require_stable;
    let unstable =
        |group: &str, topic: &str, p: i32| stable && broker.groups.unstable(group, topic, p);
    let code = |group: &str, topic: &str, p: i32| {
        if unstable(group, topic, p) {
            ErrorCode::UnstableOffsetCommit.code()
        } else {
            0
        }
    };
    if version >= 8 {
        let groups = req
            .groups
            .into_iter()
            .map(|g| {
                if let Err(code) = broker.groups.check(&g.group_id.0) {
                    return OffsetFetchResponseGroup::default()
                        .with_group_id(g.group_id)
                        .with_error_code(code.code());
                }
                let topics = g.topics.map(|ts| {
                    ts.into_iter()
                        .map(|t| (t.name.0, t.partition_indexes))
                        .collect()
                });
                let topics = wanted(broker, &g.group_id.0, topics)
                    .into_iter()
                    .map(|(name, partitions)| {
                        OffsetFetchResponseTopics::default()
                            .with_name(super::topic_name(&name))
                            .with_partitions(
                                partitions
                                    .into_iter()
                                    .map(|p| {
                                        let (offset, epoch, metadata) =
                                            committed(broker, &g.group_id.0, &name, p);
                                        OffsetFetchResponsePartitions::default()
                                            .with_partition_index(p)
                                            .with_committed_offset(offset)
                                            .with_committed_leader_epoch(epoch)
                                            .with_metadata(metadata)
                                            .with_error_code(code(&g.group_id.0, &name, p))
                                    })
                                    .collect(),
                            )
                    })
                    .collect();
                OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id)
                    .with_topics(topics)
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let group = req.group_id.0.to_string();
    if let Err(code) = broker.groups.check(&group) {
        return not_coordinator(req, version, code);
    }
    let topics = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.0, t.partition_indexes))
            .collect()
    });
    let topics = wanted(broker, &group, topics)
        .into_iter()
        .map(|(name, partitions)| {
            OffsetFetchResponseTopic::default()
                .with_name(super::topic_name(&name))
                .with_partitions(
                    partitions
                        .into_iter()
                        .map(|p| {
                            let (offset, epoch, metadata) = committed(broker, &group, &name, p);
                            let partition = OffsetFetchResponsePartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(offset)
                                .with_metadata(metadata)
                                .with_error_code(code(&group, &name, p));
                            // The leader epoch exists from v5.
                            if version >= 5 {
                                partition.with_committed_leader_epoch(epoch)
                            } else {
                                partition
                            }
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetFetchResponse::default().with_topics(topics)
}

/// OffsetFetch v0-7 for a group not coordinated here (yet): NOT_COORDINATOR or
/// COORDINATOR_LOAD_IN_PROGRESS for the request (from v2) and for each partition asked about
/// (the only place v0-1 have for it).
fn not_coordinator(req: OffsetFetchRequest, version: i16, code: ErrorCode) -> OffsetFetchResponse {
    let code = code.code();
    let topics = req
        .topics
        .unwrap_or_default()
        .into_iter()
        .map(|t| {
            OffsetFetchResponseTopic::default()
                .with_name(t.name)
                .with_partitions(
                    t.partition_indexes
                        .into_iter()
                        .map(|p| {
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(-1)
                                .with_error_code(code)
                        })
                        .collect(),
                )
        })
        .collect();
    let response = OffsetFetchResponse::default().with_topics(topics);
    if version >= 2 {
        response.with_error_code(code)
    } else {
        response
    }
}

pub(crate) async fn delete(broker: &Broker, req: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let group = req.group_id.0.to_string();
    if let Err(code) = broker.groups.check(&group) {
        return OffsetDeleteResponse::default().with_error_code(code.code());
    }
    let description = broker.groups.describe(&group).await;
    let has_offsets = broker.groups.has_offsets(&group);
    if description.is_none() && !has_offsets {
        return OffsetDeleteResponse::default().with_error_code(ErrorCode::GroupIdNotFound.code());
    }
    // Offsets of topics that live members consume cannot be deleted (Kafka's rule).
    let subscribed: BTreeSet<String> = description
        .iter()
        .filter(|d| d.protocol_type == "consumer")
        .flat_map(|d| {
            d.members
                .iter()
                .flat_map(|m| subscription_topics(&m.metadata))
        })
        .collect();
    let mut doomed = Vec::new();
    let mut topics = Vec::with_capacity(req.topics.len());
    for topic in req.topics {
        let busy = subscribed.contains(topic.name.0.as_str());
        let partitions = topic
            .partitions
            .iter()
            .map(|p| {
                let response = OffsetDeleteResponsePartition::default()
                    .with_partition_index(p.partition_index);
                if busy {
                    response.with_error_code(ErrorCode::GroupSubscribedToTopic.code())
                } else {
                    doomed.push((topic.name.0.to_string(), p.partition_index));
                    response
                }
            })
            .collect();
        topics.push(
            OffsetDeleteResponseTopic::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    match broker.groups.delete_offsets(&group, &doomed).await {
        Ok(()) => OffsetDeleteResponse::default().with_topics(topics),
        Err(code) => OffsetDeleteResponse::default().with_error_code(code.code()),
    }
}

/// The topics in a consumer's subscription metadata (ConsumerProtocolSubscription: int16
/// version, then an array of topic names). Unreadable metadata subscribes to nothing.
fn subscription_topics(metadata: &[u8]) -> Vec<String> {
    let mut topics = Vec::new();
    let Some(count) = metadata.get(2..6) else {
        return topics;
    };
    let count = i32::from_be_bytes([count[0], count[1], count[2], count[3]]);
    let mut at = 6usize;
    for _ in 0..count.max(0) {
        let Some(len) = metadata.get(at..at + 2) else {
            break;
        };
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        let Some(name) = metadata.get(at + 2..at + 2 + len) else {
            break;
        };
        topics.push(String::from_utf8_lossy(name).into_owned());
        at += 2 + len;
    }
    topics
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_subscription_topics_and_survives_garbage() {
        let mut metadata = vec![0, 1, 0, 0, 0, 2];
        for name in ["orders", "payments"] {
            metadata.extend_from_slice(&(name.len() as u16).to_be_bytes());
            metadata.extend_from_slice(name.as_bytes());
        }
        metadata.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]); // user data: null
        assert_eq!(
            super::subscription_topics(&metadata),
            ["orders", "payments"]
        );
        assert!(super::subscription_topics(&[0, 1, 0x7f, 0xff, 0xff, 0xff, 0, 9]).is_empty());
        assert!(super::subscription_topics(&[]).is_empty());
    }
}
