//! CreatePartitions: grow a topic's partition count.

use super::super::Broker;
use super::super::topics::create_partitions;
use super::{Reply, decode, respond, str_bytes};
use crate::protocol::RequestFrame;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use std::sync::Arc;

pub async fn handle(broker: &Arc<Broker>, req: &RequestFrame, forwarded: bool) -> Reply {
    let r: CreatePartitionsRequest = match decode(req) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    let mut results = Vec::with_capacity(r.topics.len());
    for t in r.topics {
        let name = t.name.0.to_string();
        let assignments: Vec<Vec<i32>> = t
            .assignments
            .iter()
            .flatten()
            .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
            .collect();
        let outcome = create_partitions(
            broker,
            &name,
            t.count,
            &assignments,
            r.validate_only,
            forwarded,
        )
        .await;
        let base = CreatePartitionsTopicResult::default().with_name(t.name);
        results.push(match outcome {
            Ok(_) => base,
            Err(e) => base
                .with_error_code(e.code().code())
                .with_error_message(Some(str_bytes(e.to_string()))),
        });
    }
    respond(
        req,
        &CreatePartitionsResponse::default().with_results(results),
    )
}
