//! BrokerRegistration, BrokerHeartbeat, AllocateProducerIds and AlterPartition, answered by the active controller (on its
//! controller listener, as in KRaft); any other node answers NOT_CONTROLLER.

use super::super::Broker;
use super::super::controller::{
    ALTER_PARTITION_VERSION, BROKER_HEARTBEAT_VERSION, BROKER_REGISTRATION_VERSION,
    PRODUCER_ID_BLOCK,
};
use super::super::producer_ids::ALLOCATE_PRODUCER_IDS_VERSION;
use super::{Reply, ReplyTo, decode};
use crate::cluster::Endpoint;
use crate::cluster::controller::{AlterPartition, BrokerRegistration, Heartbeat, IsrMember};
use crate::protocol::RequestFrame;
use kafka_protocol::messages::{
    AllocateProducerIdsRequest, AllocateProducerIdsResponse, AlterPartitionRequest,
    AlterPartitionResponse, ApiKey, BrokerHeartbeatRequest, BrokerHeartbeatResponse, BrokerId,
    BrokerRegistrationRequest, BrokerRegistrationResponse, ProducerId,
};
use std::sync::Arc;

/// Whether `req` is a broker lifecycle request in a version runnel speaks.
pub fn is_lifecycle_request(req: &RequestFrame) -> bool {
    match req.api_key {
        ApiKey::BrokerRegistration => (0..=BROKER_REGISTRATION_VERSION).contains(&req.api_version),
        ApiKey::BrokerHeartbeat => (0..=BROKER_HEARTBEAT_VERSION).contains(&req.api_version),
        ApiKey::AllocateProducerIds => {
            (0..=ALLOCATE_PRODUCER_IDS_VERSION).contains(&req.api_version)
        }
        ApiKey::AlterPartition => (2..=ALTER_PARTITION_VERSION).contains(&req.api_version),
        _ => false,
    }
}

/// AlterPartition on the active controller, one partition at a time (a leader sends one).
async fn alter_partition(b: &Arc<Broker>, r: AlterPartitionRequest) -> AlterPartitionResponse {
    use kafka_protocol::messages::alter_partition_response::{PartitionData, TopicData};
    let mut topics = Vec::with_capacity(r.topics.len());
    for t in r.topics {
        let mut parts = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            // v2 names the ISR without epochs; v3 with them.
            let new_isr: Vec<IsrMember> = if p.new_isr_with_epochs.is_empty() {
                p.new_isr
                    .iter()
                    .map(|id| IsrMember {
                        broker_id: id.0,
                        broker_epoch: -1,
                    })
                    .collect()
            } else {
                p.new_isr_with_epochs
                    .iter()
                    .map(|m| IsrMember {
                        broker_id: m.broker_id.0,
                        broker_epoch: m.broker_epoch,
                    })
                    .collect()
            };
            let req = AlterPartition {
                broker_id: r.broker_id.0,
                broker_epoch: r.broker_epoch,
                topic_id: t.topic_id,
                partition: p.partition_index,
                leader_epoch: p.leader_epoch,
                partition_epoch: p.partition_epoch,
                new_isr,
            };
            let out = PartitionData::default().with_partition_index(p.partition_index);
            parts.push(match b.controller.alter_partition(b, req).await {
                Ok(s) => out
                    .with_leader_id(BrokerId(r.broker_id.0))
                    .with_leader_epoch(s.leader_epoch)
                    .with_partition_epoch(s.partition_epoch)
                    .with_isr(s.isr.into_iter().map(BrokerId).collect()),
                Err(e) => out
                    .with_error_code(e.code().code())
                    .with_leader_id(BrokerId(-1))
                    .with_leader_epoch(-1)
                    .with_partition_epoch(-1),
            });
        }
        topics.push(
            TopicData::default()
                .with_topic_id(t.topic_id)
                .with_partitions(parts),
        );
    }
    AlterPartitionResponse::default().with_topics(topics)
}

/// Answers BrokerRegistration, BrokerHeartbeat or AllocateProducerIds once what it decides is committed.
pub fn handle(broker: &Arc<Broker>, req: &RequestFrame) -> Reply {
    let to = ReplyTo::of(req);
    let b = broker.clone();
    match req.api_key {
        ApiKey::BrokerRegistration => {
            let r: BrokerRegistrationRequest = match decode(req) {
                Ok(r) => r,
                Err(reply) => return reply,
            };
            let cluster_id = r.cluster_id.as_str();
            let reg = BrokerRegistration {
                broker_id: r.broker_id.0,
                cluster_id: (!cluster_id.is_empty()).then(|| cluster_id.to_string()),
                incarnation_id: *r.incarnation_id.as_bytes(),
                endpoints: r
                    .listeners
                    .iter()
                    .map(|l| Endpoint {
                        name: l.name.to_string(),
                        host: l.host.to_string(),
                        port: l.port,
                        security_protocol: l.security_protocol,
                    })
                    .collect(),
                rack: r.rack.as_ref().map(|s| s.to_string()),
            };
            Reply::Later(Box::pin(async move {
                let resp = match b.controller.register(&b, reg).await {
                    Ok(epoch) => BrokerRegistrationResponse::default().with_broker_epoch(epoch),
                    Err(e) => BrokerRegistrationResponse::default()
                        .with_error_code(e.code().code())
                        .with_broker_epoch(-1),
                };
                to.encode(&resp)
            }))
        }
        ApiKey::BrokerHeartbeat => {
            let r: BrokerHeartbeatRequest = match decode(req) {
                Ok(r) => r,
                Err(reply) => return reply,
            };
            let hb = Heartbeat {
                broker_id: r.broker_id.0,
                broker_epoch: r.broker_epoch,
                want_fence: r.want_fence,
                want_shutdown: r.want_shut_down,
                current_metadata_offset: r.current_metadata_offset,
            };
            Reply::Later(Box::pin(async move {
                let resp = match b.controller.heartbeat(&b, hb).await {
                    Ok(reply) => BrokerHeartbeatResponse::default()
                        .with_is_caught_up(reply.is_caught_up)
                        .with_is_fenced(reply.is_fenced)
                        .with_should_shut_down(reply.should_shutdown),
                    Err(e) => BrokerHeartbeatResponse::default()
                        .with_error_code(e.code().code())
                        .with_is_fenced(true),
                };
                to.encode(&resp)
            }))
        }
        ApiKey::AllocateProducerIds => {
            let r: AllocateProducerIdsRequest = match decode(req) {
                Ok(r) => r,
                Err(reply) => return reply,
            };
            Reply::Later(Box::pin(async move {
                let resp = match b
                    .controller
                    .allocate_producer_ids(&b, r.broker_id.0, r.broker_epoch)
                    .await
                {
                    Ok(start) => AllocateProducerIdsResponse::default()
                        .with_producer_id_start(ProducerId(start))
                        .with_producer_id_len(PRODUCER_ID_BLOCK as i32),
                    Err(e) => AllocateProducerIdsResponse::default()
                        .with_error_code(e.code().code())
                        .with_producer_id_start(ProducerId(-1)),
                };
                to.encode(&resp)
            }))
        }
        ApiKey::AlterPartition => {
            let r: AlterPartitionRequest = match decode(req) {
                Ok(r) => r,
                Err(reply) => return reply,
            };
            Reply::Later(Box::pin(async move {
                let resp = alter_partition(&b, r).await;
                to.encode(&resp)
            }))
        }
        other => Reply::Close(format!("{other:?} is not a broker lifecycle request")),
    }
}
