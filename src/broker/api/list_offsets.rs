//! ListOffsets: the earliest offset (-2, or -4 for "earliest local"), the latest (-1: the high
//! watermark), the offset of the largest timestamp (-3), or the first offset at or after a
//! timestamp.

use super::super::Broker;
use super::{Reply, decode, respond};
use crate::log::PartitionLog;
use crate::protocol::RequestFrame;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use std::sync::Arc;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;

/// `(offset, timestamp)` for one partition, or the error.
fn lookup(log: &PartitionLog, timestamp: i64) -> Result<(i64, i64), ResponseError> {
    let hw = log.visible_end_offset();
    let storage = |e: crate::log::ReadError| {
        tracing::warn!(error = %e, "offset lookup by time failed");
        ResponseError::KafkaStorageError
    };
    match timestamp {
        LATEST => Ok((hw, -1)),
        EARLIEST | EARLIEST_LOCAL => Ok((log.log_start_offset(), -1)),
        MAX_TIMESTAMP => Ok(log
            .offset_of_max_timestamp(hw)
            .map_err(storage)?
            .unwrap_or((-1, -1))),
        t if t >= 0 => Ok(log
            .offset_for_timestamp(t, hw)
            .map_err(storage)?
            .unwrap_or((-1, -1))),
        _ => Err(ResponseError::InvalidRequest),
    }
}

pub fn handle(broker: &Arc<Broker>, req: &RequestFrame) -> Reply {
    let r: ListOffsetsRequest = match decode(req) {
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
                    let resp = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1)
                        .with_leader_epoch(-1);
                    let result = broker
                        .leader_log(&t.name.0, p.partition_index, p.current_leader_epoch)
                        .and_then(|(log, epoch)| {
                            lookup(&log, p.timestamp).map(|(o, ts)| (o, ts, epoch))
                        });
                    match result {
                        // The leader epoch field exists from v4 on; the codec refuses it before.
                        Ok((offset, ts, epoch)) if req.api_version >= 4 => resp
                            .with_offset(offset)
                            .with_timestamp(ts)
                            .with_leader_epoch(epoch),
                        Ok((offset, ts, _)) => resp.with_offset(offset).with_timestamp(ts),
                        Err(e) => resp.with_error_code(e.code()),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    respond(req, &ListOffsetsResponse::default().with_topics(topics))
}
