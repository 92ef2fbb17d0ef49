//! CreatePartitions: raise a topic's partition count (validate-only too).

use rill_protocol::ErrorCode;
use rill_protocol::kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use rill_protocol::kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

use crate::broker::Broker;

pub(crate) async fn handle(
    broker: &Broker,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut results = Vec::with_capacity(req.topics.len());
    for topic in req.topics {
        let result = CreatePartitionsTopicResult::default().with_name(topic.name.clone());
        let outcome = if topic.assignments.is_some_and(|a| !a.is_empty()) {
            Err((
                ErrorCode::InvalidReplicaAssignment,
                "manual replica assignment is not supported".to_owned(),
            ))
        } else {
            broker
                .create_partitions(&topic.name.0, topic.count, req.validate_only)
                .await
        };
        results.push(match outcome {
            Ok(()) => result,
            Err((code, message)) => result
                .with_error_code(code.code())
                .with_error_message(super::message(message)),
        });
    }
    CreatePartitionsResponse::default().with_results(results)
}
