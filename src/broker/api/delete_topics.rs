//! DeleteTopics, by name (all versions) or by topic id (v6).

use super::super::Broker;
use super::super::topics::delete_topic;
use super::{Reply, decode, respond, str_bytes};
use crate::protocol::RequestFrame;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use std::sync::Arc;

pub async fn handle(broker: &Arc<Broker>, req: &RequestFrame, forwarded: bool) -> Reply {
    let r: DeleteTopicsRequest = match decode(req) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    // v0-5 name topics in `topic_names`; v6 in `topics`, each by name or by id.
    let mut wanted: Vec<(Option<String>, uuid::Uuid)> = r
        .topic_names
        .iter()
        .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil()))
        .collect();
    wanted.extend(
        r.topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id)),
    );
    let mut results = Vec::with_capacity(wanted.len());
    for (name, id) in wanted {
        let name = match name {
            Some(n) => n,
            None => match broker.metadata.state().topic_by_id(id) {
                Some(t) => t.name.clone(),
                None => {
                    results.push(
                        DeletableTopicResult::default()
                            .with_topic_id(id)
                            .with_error_code(ResponseError::UnknownTopicId.code()),
                    );
                    continue;
                }
            },
        };
        let base =
            DeletableTopicResult::default().with_name(Some(TopicName(str_bytes(name.clone()))));
        results.push(match delete_topic(broker, &name, forwarded).await {
            Ok(meta) => base.with_topic_id(meta.id),
            Err(e) => base
                .with_topic_id(id)
                .with_error_code(e.code().code())
                .with_error_message(Some(str_bytes(e.to_string()))),
        });
    }
    respond(
        req,
        &DeleteTopicsResponse::default().with_responses(results),
    )
}
