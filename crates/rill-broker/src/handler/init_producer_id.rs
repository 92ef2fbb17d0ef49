//! InitProducerId. Without a transactional id: a new producer id, epoch 0, every time (as Kafka
//! does; epoch bumps of idempotent producers are made by the client itself, KIP-360). With one:
//! the transaction coordinator's producer id for it and a new epoch, which fences every older
//! instance of the producer.

use rill_protocol::ErrorCode;
use rill_protocol::kafka_protocol::messages::{
    InitProducerIdRequest, InitProducerIdResponse, ProducerId,
};

use crate::broker::Broker;
use crate::txn::Caller;

pub(crate) async fn handle(
    broker: &Broker,
    req: InitProducerIdRequest,
    version: i16,
) -> InitProducerIdResponse {
    let refused = |code: ErrorCode| {
        InitProducerIdResponse::default()
            .with_error_code(code.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    let Some(transactional_id) = req.transactional_id.as_ref().map(|id| id.to_string()) else {
        return match broker.allocate_producer_id().await {
            Ok(id) => InitProducerIdResponse::default()
                .with_producer_id(ProducerId(id))
                .with_producer_epoch(0),
            Err((code, _)) => refused(code),
        };
    };
    // As Kafka: an empty transactional id is a malformed request, not "no transactional id".
    if transactional_id.is_empty() {
        return refused(ErrorCode::InvalidRequest);
    }
    let known = (req.producer_id.0 >= 0).then_some(Caller {
        producer_id: req.producer_id.0,
        producer_epoch: req.producer_epoch,
    });
    let initialized = broker
        .txns
        .init_producer(broker, &transactional_id, req.transaction_timeout_ms, known)
        .await;
    match initialized {
        Ok(caller) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(caller.producer_id))
            .with_producer_epoch(caller.producer_epoch),
        Err(code) => refused(super::transactions::fenced_for(code, version, 4)),
    }
}
