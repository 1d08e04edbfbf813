//! CreatePartitions: grow a topic's partition count.

use super::super::Broker;
use super::super::topics::{TopicError, create_partitions};
use super::{Reply, decode, respond, str_bytes};
use crate::protocol::RequestFrame;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use std::sync::Arc;

pub async fn handle(broker: &Arc<Broker>, req: &RequestFrame) -> Reply {
    let r: CreatePartitionsRequest = match decode(req) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    let node = broker.config.node_id;
    let mut results = Vec::with_capacity(r.topics.len());
    for t in r.topics {
        let name = t.name.0.to_string();
        let bad_assignment = t.assignments.as_ref().is_some_and(|a| {
            a.iter()
                .any(|a| a.broker_ids.is_empty() || a.broker_ids.iter().any(|b| b.0 != node))
        });
        let outcome = if bad_assignment {
            Err(TopicError::InvalidReplicaAssignment(format!(
                "this cluster has only broker {node}"
            )))
        } else {
            create_partitions(broker, &name, t.count, r.validate_only).await
        };
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
