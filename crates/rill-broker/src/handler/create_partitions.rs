//! CreatePartitions: raise a topic's partition count (validate-only too), with or without a
//! manual replica assignment (which may name this broker only).

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
        // Null is "place them"; a list (even empty) must give every new partition's replicas.
        let assignments: Option<Vec<Vec<i32>>> = topic.assignments.map(|list| {
            list.iter()
                .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
                .collect()
        });
        let outcome = broker
            .create_partitions(
                &topic.name.0,
                topic.count,
                assignments.as_deref(),
                req.validate_only,
            )
            .await;
        results.push(match outcome {
            Ok(()) => result,
            Err((code, message)) => result
                .with_error_code(code.code())
                .with_error_message(super::message(message)),
        });
    }
    CreatePartitionsResponse::default().with_results(results)
}
