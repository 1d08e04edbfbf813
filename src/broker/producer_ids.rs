//! Producer ids for idempotent producers: handed out from blocks reserved in the metadata log,
//! so an id is never handed out twice, across restarts too (a restart skips what was left of
//! the last block).

use crate::cluster::{ClusterState, MetadataError, MetadataLog, MetadataRecord};

/// Ids reserved per metadata record (Kafka's controller hands out blocks of 1000 as well).
pub const BLOCK: i64 = 1000;

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
    pub async fn next(&self, metadata: &MetadataLog) -> Result<i64, MetadataError> {
        let mut block = self.block.lock().await;
        if block.0 >= block.1 {
            let (state, start) = metadata
                .update(|s: &ClusterState| {
                    let start = s.next_producer_id.max(block.1);
                    Ok::<_, MetadataError>((
                        vec![MetadataRecord::ProducerIdsAllocated {
                            next: start + BLOCK,
                        }],
                        start,
                    ))
                })
                .await?;
            *block = (start, state.next_producer_id);
        }
        let id = block.0;
        block.0 += 1;
        Ok(id)
    }

    /// Whether `id` was ever handed out (by this broker or before a restart).
    pub fn was_issued(state: &ClusterState, id: i64) -> bool {
        id >= 0 && id < state.next_producer_id
    }
}
