//! InitProducerId for idempotent producers: a new producer id, epoch 0, every time (as Kafka
//! does when there is no transactional id; epoch bumps of idempotent producers are made by the
//! client itself, KIP-360). Transactional ids are refused until transactions are served.

use rill_protocol::ErrorCode;
use rill_protocol::kafka_protocol::messages::{
    InitProducerIdRequest, InitProducerIdResponse, ProducerId,
};

use crate::broker::Broker;

pub(crate) async fn handle(broker: &Broker, req: InitProducerIdRequest) -> InitProducerIdResponse {
    let refused = |code: ErrorCode| {
        InitProducerIdResponse::default()
            .with_error_code(code.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    // As Kafka: an empty transactional id is a malformed request, not "no transactional id".
    if req
        .transactional_id
        .as_ref()
        .is_some_and(|id| id.is_empty())
    {
        return refused(ErrorCode::InvalidRequest);
    }
    if req.transactional_id.is_some() {
        tracing::debug!("refusing a transactional InitProducerId: transactions are not served yet");
        return refused(ErrorCode::TransactionalIdAuthorizationFailed);
    }
    match broker.allocate_producer_id().await {
        Ok(id) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err((code, _)) => refused(code),
    }
}
