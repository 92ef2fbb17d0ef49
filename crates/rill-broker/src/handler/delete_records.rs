//! DeleteRecords: move partitions' log start offsets forward (-1 means the high watermark).

use rill_protocol::ErrorCode;
use rill_protocol::kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use rill_protocol::kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use crate::broker::Broker;

pub(crate) async fn handle(broker: &Broker, req: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    for topic_req in req.topics {
        let topic = broker.topic(&topic_req.name.0);
        let mut partitions = Vec::with_capacity(topic_req.partitions.len());
        for p in topic_req.partitions {
            let result = DeleteRecordsPartitionResult::default()
                .with_partition_index(p.partition_index)
                .with_low_watermark(-1);
            let partition = match topic.as_ref().map(|t| t.led(p.partition_index)) {
                Some(Ok(partition)) => partition,
                Some(Err(code)) => {
                    partitions.push(result.with_error_code(code.code()));
                    continue;
                }
                None => {
                    partitions
                        .push(result.with_error_code(ErrorCode::UnknownTopicOrPartition.code()));
                    continue;
                }
            };
            // Kafka deletes records only where the policy says delete: a compact-only topic
            // keeps them for its cleaner.
            if topic.as_ref().is_some_and(|t| !t.config.cleanup.delete) {
                partitions.push(result.with_error_code(ErrorCode::PolicyViolation.code()));
                continue;
            }
            let before = match p.offset {
                -1 => partition.offsets().high_watermark,
                offset => offset,
            };
            partitions.push(match partition.delete_records(before).await {
                Ok(low_watermark) => result.with_low_watermark(low_watermark),
                Err(code) => result.with_error_code(code.code()),
            });
        }
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(topic_req.name)
                .with_partitions(partitions),
        );
    }
    DeleteRecordsResponse::default().with_topics(topics)
}
