//! Producer ids for idempotent producers: handed out from blocks the active controller reserves
//! in the metadata log (Kafka's AllocateProducerIds, KIP-730), so an id is never handed out
//! twice, by two brokers or across restarts (a restart skips what was left of its last block).

use super::Broker;
use super::controller::{CallError, Lifecycle, PRODUCER_ID_BLOCK};
use crate::cluster::ClusterState;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{AllocateProducerIdsRequest, BrokerId};

/// AllocateProducerIds' version spoken between runnel nodes.
pub const ALLOCATE_PRODUCER_IDS_VERSION: i16 = 0;

/// The block being handed out.
pub struct ProducerIds {
    /// `[next, end)` of the current block.
    block: tokio::sync::Mutex<(i64, i64)>,
}

impl Default for ProducerIds {
    fn default() -> Self {
        ProducerIds {
            block: tokio::sync::Mutex::new((0, 0)),
        }
    }
}

impl ProducerIds {
    /// A fresh producer id.
    pub async fn next(&self, broker: &Broker) -> Result<i64, CallError> {
        let mut block = self.block.lock().await;
        if block.0 >= block.1 {
            let start = allocate(broker).await?;
            *block = (start, start + PRODUCER_ID_BLOCK);
        }
        let id = block.0;
        block.0 += 1;
        Ok(id)
    }

    /// Whether `id` was ever handed out (by any broker, or before a restart).
    pub fn was_issued(state: &ClusterState, id: i64) -> bool {
        id >= 0 && id < state.next_producer_id
    }
}

/// Reserves a block with the active controller, as this broker's current registration.
async fn allocate(broker: &Broker) -> Result<i64, CallError> {
    let Lifecycle::Registered { epoch, .. } = *broker.lifecycle.borrow() else {
        return Err(CallError::Code(ResponseError::BrokerIdNotRegistered));
    };
    let id = broker.config.node_id;
    if broker.controller.is_active(broker) {
        return broker
            .controller
            .allocate_producer_ids(broker, id, epoch)
            .await;
    }
    let req = AllocateProducerIdsRequest::default()
        .with_broker_id(BrokerId(id))
        .with_broker_epoch(epoch);
    let resp = broker
        .controller
        .send_remote(broker, &req, ALLOCATE_PRODUCER_IDS_VERSION)
        .await?;
    match ResponseError::try_from_code(resp.error_code) {
        None if resp.producer_id_len > 0 && resp.producer_id_start.0 >= 0 => {
            Ok(resp.producer_id_start.0)
        }
        None => Err(CallError::Unreachable(format!(
            "the controller answered an empty producer id block ({}, {})",
            resp.producer_id_start.0, resp.producer_id_len
        ))),
        Some(c) => Err(CallError::Code(c)),
    }
}
