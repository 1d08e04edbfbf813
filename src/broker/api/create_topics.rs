//! CreateTopics.

use super::super::Broker;
use super::super::topics::{NewTopic, TopicError, create_topic};
use super::describe_configs::entry_to_create_config;
use super::{Reply, decode, respond, str_bytes};
use crate::protocol::RequestFrame;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

pub async fn handle(broker: &Arc<Broker>, req: &RequestFrame, forwarded: bool) -> Reply {
    let r: CreateTopicsRequest = match decode(req) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    let mut seen = BTreeSet::new();
    let duplicates: BTreeSet<String> = r
        .topics
        .iter()
        .filter(|t| !seen.insert(t.name.0.to_string()))
        .map(|t| t.name.0.to_string())
        .collect();
    let mut results = Vec::with_capacity(r.topics.len());
    for t in r.topics {
        let name = t.name.0.to_string();
        let base = CreatableTopicResult::default()
            .with_name(t.name.clone())
            .with_num_partitions(-1)
            .with_replication_factor(-1);
        if duplicates.contains(&name) {
            results.push(
                base.with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(Some(str_bytes(format!(
                        "topic '{name}' appears more than once in the request"
                    )))),
            );
            continue;
        }
        let mut configs = BTreeMap::new();
        let mut null_config = None;
        for c in &t.configs {
            match &c.value {
                Some(v) => {
                    configs.insert(c.name.to_string(), v.to_string());
                }
                None => null_config = Some(c.name.to_string()),
            }
        }
        let new = NewTopic {
            name: name.clone(),
            partitions: t.num_partitions,
            replication_factor: t.replication_factor,
            assignments: t
                .assignments
                .iter()
                .map(|a| {
                    (
                        a.partition_index,
                        a.broker_ids.iter().map(|b| b.0).collect(),
                    )
                })
                .collect(),
            configs,
        };
        let outcome = match null_config {
            Some(key) => Err(TopicError::InvalidConfig(format!(
                "config '{key}' has a null value"
            ))),
            None => create_topic(broker, new, r.validate_only, forwarded).await,
        };
        results.push(match outcome {
            Ok(meta) => {
                let configs = broker
                    .effective_config()
                    .describe_topic(&meta.configs, None)
                    .into_iter()
                    .map(entry_to_create_config)
                    .collect();
                base.with_topic_id(meta.id)
                    .with_num_partitions(meta.partitions)
                    .with_replication_factor(meta.replication_factor)
                    .with_configs(Some(configs))
            }
            Err(e) => base
                .with_error_code(e.code().code())
                .with_error_message(Some(str_bytes(e.to_string()))),
        });
    }
    respond(req, &CreateTopicsResponse::default().with_topics(results))
}
