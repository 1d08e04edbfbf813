//! OffsetForLeaderEpoch (KIP-101, KIP-320): where a leader epoch ends in the leader's log.
//! Consumers ask it after a leader change (librdkafka from 2.1, the Java consumer) to check
//! that the position they hold was not cut by a truncation: the answer is the largest epoch at
//! most the one asked and the offset where it ends. Checked against `current_leader_epoch`
//! as Fetch is (FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH), answered by the leader only.

use super::super::Broker;
use super::{Reply, decode, respond};
use crate::log::PartitionLog;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use std::sync::Arc;

/// `(epoch, end offset)` of `requested` in the log of a leader in epoch `current`, as Kafka's
/// `LeaderEpochFileCache.endOffsetFor` answers with the leader's own epoch recorded at its
/// log end on election (runnel records an epoch with its first batch, so an epoch past the
/// cache is answered as that entry would be).
pub fn end_offset(log: &PartitionLog, requested: i32, current: i32) -> (i32, i64) {
    const UNDEFINED: (i32, i64) = (-1, -1);
    if requested < 0 {
        return UNDEFINED;
    }
    let log_end = log.log_end_offset();
    match log.latest_epoch() {
        Some(latest) if requested <= latest => log.end_offset_for_epoch(requested),
        latest => {
            if requested > current {
                UNDEFINED
            } else if requested == current {
                (current, log_end)
            } else {
                // Between the cache's latest epoch and the leader's own: the latest epoch ends
                // where the leader's began, at the log end; below an empty cache the epoch asked
                // ends there too.
                (latest.unwrap_or(requested), log_end)
            }
        }
    }
}

pub fn handle(broker: &Arc<Broker>, req: &crate::protocol::RequestFrame) -> Reply {
    let r: OffsetForLeaderEpochRequest = match decode(req) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    let topics = r
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let out = EpochEndOffset::default()
                        .with_partition(p.partition)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1);
                    match broker.leader_log(&t.topic.0, p.partition, p.current_leader_epoch) {
                        Ok((log, current)) => {
                            let (epoch, end) = end_offset(&log, p.leader_epoch, current);
                            out.with_leader_epoch(epoch).with_end_offset(end)
                        }
                        Err(e) => out.with_error_code(e.code()),
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic.clone())
                .with_partitions(partitions)
        })
        .collect();
    respond(
        req,
        &OffsetForLeaderEpochResponse::default().with_topics(topics),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::{Env, MemDisk, SharedRng};
    use crate::log::LogConfig;
    use crate::record::batch::{NewRecord, ProducerFields, encode_batch};
    use std::path::Path;

    fn records(n: usize) -> Vec<u8> {
        let r: Vec<NewRecord> = (0..n)
            .map(|_| NewRecord {
                timestamp: 5,
                value: Some(b"v".to_vec()),
                ..Default::default()
            })
            .collect();
        encode_batch(&r, ProducerFields::NONE)
    }

    /// Epoch 0 holds offsets 0..2, epoch 2 holds 2..5, and the leader now leads epoch 4
    /// without having written in it.
    #[tokio::test]
    async fn each_epoch_ends_where_the_next_one_starts_and_the_last_at_the_log_end() {
        let env = Env {
            disk: Arc::new(MemDisk::new()),
            net: Arc::new(crate::env::RealNetwork),
            clock: Arc::new(crate::env::clock::ManualClock::new(1_000)),
            rng: SharedRng::seeded(1),
            probe: Arc::new(crate::env::NoProbe),
        };
        let log = PartitionLog::open(&env, Path::new("/d/t-0"), LogConfig::default())
            .await
            .unwrap();
        log.append(&mut records(2), 0).unwrap();
        log.append(&mut records(3), 2).unwrap();
        let at = |epoch| end_offset(&log, epoch, 4);
        assert_eq!(at(0), (0, 2));
        // Epoch 1 was never written here: the largest epoch below it is 0, which ends at 2.
        assert_eq!(at(1), (0, 2));
        assert_eq!(at(2), (2, 5));
        // Epoch 3 neither: epoch 2 ended where the leader's own epoch began, the log end.
        assert_eq!(at(3), (2, 5));
        assert_eq!(at(4), (4, 5));
        assert_eq!(at(5), (-1, -1));
        assert_eq!(at(-1), (-1, -1));
    }
}
