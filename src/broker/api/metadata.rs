//! Metadata: brokers, the cluster id, and the topics asked for (auto-creating missing ones when
//! `auto.create.topics.enable` and the request allow it).

use super::super::topics::{TopicError, ensure_topic};
use super::super::{Broker, LEADER_EPOCH};
use super::{Reply, authorized, decode, respond, str_bytes};
use crate::cluster::{ClusterState, NO_LEADER, TopicMeta};
use crate::protocol::RequestFrame;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use std::sync::Arc;

/// The response entry for an existing topic: each partition's leader, leader epoch, replicas,
/// ISR and offline replicas (those on brokers that are fenced or gone), as this broker's
/// metadata has them. A partition without a leader answers LEADER_NOT_AVAILABLE.
pub fn topic_entry(broker: &Broker, state: &ClusterState, t: &TopicMeta) -> MetadataResponseTopic {
    let node = broker.config.node_id;
    let partitions = (0..t.partitions)
        .map(|p| {
            let (leader, epoch, replicas, isr) = match t.parts.get(&p) {
                Some(m) => (m.leader, m.leader_epoch, m.replicas.clone(), m.isr.clone()),
                None => (node, LEADER_EPOCH, vec![node], vec![node]),
            };
            let offline: Vec<BrokerId> = replicas
                .iter()
                .filter(|r| **r != node && state.brokers.get(r).is_none_or(|b| b.fenced))
                .map(|r| BrokerId(*r))
                .collect();
            let ids = |v: Vec<i32>| v.into_iter().map(BrokerId).collect::<Vec<_>>();
            let entry = MetadataResponsePartition::default()
                .with_partition_index(p)
                .with_leader_id(BrokerId(leader))
                .with_leader_epoch(epoch)
                .with_replica_nodes(ids(replicas))
                .with_isr_nodes(ids(isr))
                .with_offline_replicas(offline);
            if leader == NO_LEADER {
                entry.with_error_code(ResponseError::LeaderNotAvailable.code())
            } else {
                entry
            }
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(t.name.clone()))))
        .with_topic_id(t.id)
        // As Kafka marks it: clients leave it out of regex subscriptions and listings.
        .with_is_internal(t.name == crate::group::OFFSETS_TOPIC)
        .with_partitions(partitions)
}

/// A broker as clients see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveBroker {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

/// The brokers clients may use: every registered, unfenced broker's client endpoint (and
/// this broker, even before its own registration shows in its metadata), by id.
pub fn live_brokers(broker: &Broker, state: &ClusterState) -> Vec<LiveBroker> {
    let mut out: Vec<LiveBroker> = state
        .brokers
        .values()
        .filter(|b| !b.fenced)
        .filter_map(|b| {
            let e = b
                .endpoints
                .iter()
                .find(|e| e.name == "PLAINTEXT")
                .or_else(|| b.endpoints.first())?;
            Some(LiveBroker {
                id: b.id,
                host: e.host.clone(),
                port: i32::from(e.port),
                rack: b.rack.clone(),
            })
        })
        .collect();
    let node = broker.config.node_id;
    if broker.config.roles.broker && !out.iter().any(|b| b.id == node) {
        let (host, port) = broker.advertised();
        out.push(LiveBroker {
            id: node,
            host,
            port,
            rack: None,
        });
        out.sort_by_key(|b| b.id);
    }
    out
}

/// The controller id clients are told: the active controller if it is also a broker they
/// can reach, else the lowest live broker (as KRaft brokers answer, since clients cannot
/// reach a controller-only node).
pub fn client_controller_id(broker: &Broker, brokers: &[LiveBroker]) -> i32 {
    match broker.metadata.controller_id() {
        Some(c) if brokers.iter().any(|b| b.id == c) => c,
        _ => brokers.first().map_or(-1, |b| b.id),
    }
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
        topics.extend(
            state
                .topics
                .values()
                .map(|t| topic_entry(broker, &state, t)),
        );
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
                Ok(Some(t)) => topic_entry(broker, &broker.metadata.state(), &t),
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
    // Asked for (v8+), every operation a topic and the cluster support: there is no
    // authorizer. The cluster's field exists in v8 to v10 only.
    let topic_ops = authorized::if_asked(r.include_topic_authorized_operations, authorized::TOPIC);
    for t in &mut topics {
        t.topic_authorized_operations = topic_ops;
    }
    let cluster_ops = authorized::if_asked(
        r.include_cluster_authorized_operations && req.api_version <= 10,
        authorized::CLUSTER,
    );
    let state = broker.metadata.state();
    let brokers = live_brokers(broker, &state);
    let resp = MetadataResponse::default()
        .with_cluster_authorized_operations(cluster_ops)
        .with_controller_id(BrokerId(client_controller_id(broker, &brokers)))
        .with_brokers(
            brokers
                .into_iter()
                .map(|b| {
                    MetadataResponseBroker::default()
                        .with_node_id(BrokerId(b.id))
                        .with_host(str_bytes(b.host))
                        .with_port(b.port)
                        .with_rack(b.rack.map(str_bytes))
                })
                .collect(),
        )
        .with_cluster_id(state.cluster_id.clone().map(str_bytes))
        .with_topics(topics);
    respond(req, &resp)
}
