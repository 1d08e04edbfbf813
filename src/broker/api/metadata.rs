//! Metadata: brokers, the cluster id, and the topics asked for (auto-creating missing ones when
//! `auto.create.topics.enable` and the request allow it).

use super::super::topics::{TopicError, ensure_topic};
use super::super::{Broker, LEADER_EPOCH};
use super::{Reply, decode, respond, str_bytes};
use crate::cluster::TopicMeta;
use crate::protocol::RequestFrame;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use std::sync::Arc;

/// The response entry for an existing topic.
pub fn topic_entry(broker: &Broker, t: &TopicMeta) -> MetadataResponseTopic {
    let node = BrokerId(broker.config.node_id);
    let partitions = (0..t.partitions)
        .map(|p| {
            MetadataResponsePartition::default()
                .with_partition_index(p)
                .with_leader_id(node)
                .with_leader_epoch(LEADER_EPOCH)
                .with_replica_nodes(vec![node])
                .with_isr_nodes(vec![node])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(t.name.clone()))))
        .with_topic_id(t.id)
        // As Kafka marks it: clients leave it out of regex subscriptions and listings.
        .with_is_internal(t.name == crate::group::OFFSETS_TOPIC)
        .with_partitions(partitions)
}

fn error_entry(name: Option<&str>, id: uuid::Uuid, code: ResponseError) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(code.code())
        .with_name(name.map(|n| TopicName(str_bytes(n))))
        .with_topic_id(id)
}

pub async fn handle(broker: &Arc<Broker>, req: &RequestFrame) -> Reply {
    let r: MetadataRequest = match decode(req) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    // v0: an empty list means all topics; v1+: null means all, empty means none. Before v4
    // there is no flag and auto-creation is allowed.
    let allow_auto_create = req.api_version < 4 || r.allow_auto_topic_creation;
    let all = match &r.topics {
        None => true,
        Some(t) => t.is_empty() && req.api_version == 0,
    };
    let mut topics = Vec::new();
    if all {
        let state = broker.metadata.state();
        topics.extend(state.topics.values().map(|t| topic_entry(broker, t)));
    } else {
        for wanted in r.topics.unwrap_or_default() {
            let name = match wanted.name {
                Some(n) => n.0.to_string(),
                None => match broker.metadata.state().topic_by_id(wanted.topic_id) {
                    Some(t) => t.name.clone(),
                    None => {
                        topics.push(error_entry(
                            None,
                            wanted.topic_id,
                            ResponseError::UnknownTopicId,
                        ));
                        continue;
                    }
                },
            };
            let entry = match ensure_topic(broker, &name, allow_auto_create).await {
                Ok(Some(t)) => topic_entry(broker, &t),
                Ok(None) => error_entry(
                    Some(&name),
                    uuid::Uuid::nil(),
                    ResponseError::UnknownTopicOrPartition,
                ),
                Err(e @ TopicError::InvalidName(_)) => {
                    error_entry(Some(&name), uuid::Uuid::nil(), e.code())
                }
                Err(e) => {
                    tracing::warn!(topic = %name, error = %e, "auto-creating a topic failed");
                    error_entry(Some(&name), uuid::Uuid::nil(), e.code())
                }
            };
            topics.push(entry);
        }
    }
    let (host, port) = broker.advertised();
    let node = BrokerId(broker.config.node_id);
    let resp = MetadataResponse::default()
        .with_brokers(vec![
            MetadataResponseBroker::default()
                .with_node_id(node)
                .with_host(str_bytes(host))
                .with_port(port),
        ])
        .with_cluster_id(broker.metadata.state().cluster_id.clone().map(str_bytes))
        .with_controller_id(node)
        .with_topics(topics);
    respond(req, &resp)
}
