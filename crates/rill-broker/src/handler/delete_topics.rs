//! DeleteTopics, by name (and, from v6, by topic id).

use rill_protocol::ErrorCode;
use rill_protocol::kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use rill_protocol::kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse};

use crate::broker::Broker;

pub(crate) async fn handle(
    broker: &Broker,
    req: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    // v0-5 name topics in `topic_names`; v6 in `topics`, by name or by id.
    let targets: Vec<(Option<String>, uuid::Uuid)> = if version >= 6 {
        req.topics
            .into_iter()
            .map(|t| (t.name.map(|n| n.0.to_string()), t.topic_id))
            .collect()
    } else {
        req.topic_names
            .into_iter()
            .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil()))
            .collect()
    };
    let mut responses = Vec::with_capacity(targets.len());
    for (name, id) in targets {
        let name = name.or_else(|| broker.topic_by_id(id).map(|t| t.name.clone()));
        let result = DeletableTopicResult::default()
            .with_name(name.as_deref().map(super::topic_name))
            .with_topic_id(id);
        let outcome = match &name {
            Some(name) => broker.delete_topic(name).await,
            None => Err((ErrorCode::UnknownTopicId, format!("no topic has id {id}"))),
        };
        responses.push(match outcome {
            Ok(deleted_id) => result.with_topic_id(deleted_id),
            Err((code, message)) => result
                .with_error_code(code.code())
                .with_error_message(super::message(message)),
        });
    }
    DeleteTopicsResponse::default().with_responses(responses)
}
