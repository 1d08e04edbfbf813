//! InitProducerId, for idempotent producers (transactions are not supported).
//!
//! A producer without an id gets a fresh one with epoch 0. A producer that re-initialises
//! with its id and epoch (v3+, KIP-360) gets the same id with the epoch bumped, so the
//! partitions fence its older epoch (INVALID_PRODUCER_EPOCH); when the epoch would overflow,
//! or the id was never issued, it gets a fresh id.

use super::super::Broker;
use super::super::producer_ids::ProducerIds;
use super::{Reply, decode, respond};
use crate::protocol::RequestFrame;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use std::sync::Arc;

pub async fn handle(broker: &Arc<Broker>, req: &RequestFrame) -> Reply {
    let r: InitProducerIdRequest = match decode(req) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    let failed = |e: ResponseError| {
        InitProducerIdResponse::default()
            .with_error_code(e.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    if r.transactional_id.is_some() {
        return respond(
            req,
            &failed(ResponseError::TransactionalIdAuthorizationFailed),
        );
    }
    let state = broker.metadata.state();
    let bump = r.producer_id.0 >= 0
        && r.producer_epoch >= 0
        && r.producer_epoch < i16::MAX - 1
        && ProducerIds::was_issued(&state, r.producer_id.0);
    let (id, epoch) = if bump {
        (r.producer_id.0, r.producer_epoch + 1)
    } else {
        match broker.producer_ids.next(broker).await {
            Ok(id) => (id, 0),
            Err(e) => {
                tracing::warn!(error = %e, "could not reserve producer ids");
                return respond(req, &failed(ResponseError::CoordinatorNotAvailable));
            }
        }
    };
    tracing::debug!(producer_id = id, epoch, client = ?req.client_id, "init producer id");
    respond(
        req,
        &InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(epoch),
    )
}
