//! ListOffsets: earliest, latest, max timestamp, or the first offset at or after a timestamp.

use rill_protocol::ErrorCode;
use rill_protocol::kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use rill_protocol::kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use crate::broker::Broker;
use crate::partition::OffsetQuery;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
/// KIP-405's earliest local and earliest pending-upload offsets: with no tiered storage, the
/// earliest offset.
const EARLIEST_LOCAL: i64 = -4;
const EARLIEST_PENDING_UPLOAD: i64 = -5;

pub(crate) async fn handle(
    broker: &Broker,
    req: ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    let read_committed = req.isolation_level == 1;
    let mut topics = Vec::with_capacity(req.topics.len());
    for topic_req in req.topics {
        let topic = broker.topic(&topic_req.name.0);
        let mut partitions = Vec::with_capacity(topic_req.partitions.len());
        for p in topic_req.partitions {
            // leader_epoch exists from v4; an older answer must leave it at its default.
            let leader_epoch = match &topic {
                Some(topic) if version >= 4 => {
                    broker.cluster.leadership(topic, p.partition_index).epoch
                }
                _ => -1,
            };
            let response = ListOffsetsPartitionResponse::default()
                .with_partition_index(p.partition_index)
                .with_timestamp(-1)
                .with_offset(-1)
                .with_leader_epoch(leader_epoch);
            let led = topic
                .as_ref()
                .map(|t| t.led_at(p.partition_index, p.current_leader_epoch));
            let (partition, response) = match led {
                // A replicated partition's own term is newer than the metadata's, which learns
                // a new leader a moment after its group elects it.
                Some(Ok(partition)) => match partition.offsets().leading {
                    Some(epoch) if version >= 4 => (partition, response.with_leader_epoch(epoch)),
                    _ => (partition, response),
                },
                Some(Err(code)) => {
                    partitions.push(response.with_error_code(code.code()));
                    continue;
                }
                None => {
                    partitions
                        .push(response.with_error_code(ErrorCode::UnknownTopicOrPartition.code()));
                    continue;
                }
            };
            let query = match p.timestamp {
                // read_committed readers see up to the last stable offset.
                LATEST if read_committed => OffsetQuery::LastStable,
                LATEST => OffsetQuery::Latest,
                EARLIEST | EARLIEST_LOCAL | EARLIEST_PENDING_UPLOAD => OffsetQuery::Earliest,
                MAX_TIMESTAMP => OffsetQuery::MaxTimestamp,
                t if t >= 0 => OffsetQuery::Timestamp(t),
                t => {
                    tracing::debug!(timestamp = t, "unknown ListOffsets timestamp");
                    partitions.push(response.with_error_code(ErrorCode::InvalidRequest.code()));
                    continue;
                }
            };
            partitions.push(match partition.list_offset(query).await {
                Ok(Some(found)) => response
                    .with_offset(found.offset)
                    .with_timestamp(found.timestamp),
                Ok(None) => response,
                Err(code) => response.with_error_code(code.code()),
            });
        }
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(topic_req.name)
                .with_partitions(partitions),
        );
    }
    ListOffsetsResponse::default().with_topics(topics)
}
