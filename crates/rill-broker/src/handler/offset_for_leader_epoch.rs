//! OffsetForLeaderEpoch (KIP-101, KIP-320): where a leader epoch's records end on the leader, so
//! that a consumer that read records of that epoch (from another leader) can tell whether they
//! were truncated away after a change of leader. On a replicated partition the answer comes
//! from the leader's epoch cache: the largest epoch at or below the one asked for, and the
//! offset the next epoch starts at (the log end for the latest). Readers never see records
//! above the high watermark, so no consumer ever finds its position beyond the answer; the API
//! is served so that clients that validate positions (librdkafka, the Java client) can.
//! A partition with one replica answers its current epoch and log end for any epoch up to it.

use rill_protocol::ErrorCode;
use rill_protocol::kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use rill_protocol::kafka_protocol::messages::{
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse,
};

use crate::broker::Broker;

/// Kafka's UNDEFINED_EPOCH and UNDEFINED_EPOCH_OFFSET.
const UNDEFINED: (i32, i64) = (-1, -1);

pub(crate) async fn handle(
    broker: &Broker,
    req: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let topic = broker.topic(&t.topic.0);
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let answer = EpochEndOffset::default()
                .with_partition(p.partition)
                .with_leader_epoch(UNDEFINED.0)
                .with_end_offset(UNDEFINED.1);
            let Some(topic) = &topic else {
                partitions.push(answer.with_error_code(ErrorCode::UnknownTopicOrPartition.code()));
                continue;
            };
            let partition = match topic.led_at(p.partition, p.current_leader_epoch) {
                Ok(partition) => partition,
                Err(code) => {
                    partitions.push(answer.with_error_code(code.code()));
                    continue;
                }
            };
            let found =
                if partition.is_replicated() {
                    partition.end_for_epoch(p.leader_epoch).await
                } else {
                    let current = broker.cluster.leadership(topic, p.partition).epoch;
                    let end = partition.offsets().log_end;
                    Ok((p.leader_epoch <= current)
                        .then_some((current.min(p.leader_epoch.max(0)), end)))
                };
            partitions.push(match found {
                Ok(Some((epoch, end))) => answer.with_leader_epoch(epoch).with_end_offset(end),
                Ok(None) => answer,
                Err(code) => answer.with_error_code(code.code()),
            });
        }
        topics.push(
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions),
        );
    }
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
