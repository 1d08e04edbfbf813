//! DescribeQuorum (v0 to v2), as `kafka-metadata-quorum describe` sends it: the metadata
//! quorum's leader, epoch and high watermark, and each voter's and observer's log end offset
//! and fetch times, as the leader sees them. Only the leader knows the replicas' progress, so
//! a broker that does not lead the quorum forwards the request to the active controller, as
//! Kafka's brokers do; a request that reached a controller that does not lead (or that was
//! already forwarded) is answered NOT_LEADER_OR_FOLLOWER with the leader it knows.

use super::super::Broker;
use super::{Reply, ReplyTo, decode, respond, str_bytes};
use crate::cluster::METADATA_TOPIC;
use crate::protocol::RequestFrame;
use crate::raft::node::ReplicaProgress;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{
    BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, TopicName,
};
use std::sync::Arc;

pub async fn handle(broker: &Arc<Broker>, req: &RequestFrame, forwarded: bool) -> Reply {
    let r: DescribeQuorumRequest = match decode(req) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    let asks_metadata = r.topics.len() == 1
        && r.topics[0].topic_name.0.as_str() == METADATA_TOPIC
        && r.topics[0].partitions.len() == 1
        && r.topics[0].partitions[0].partition_index == 0;
    if !asks_metadata {
        // Kafka's answer to anything but `__cluster_metadata-0`.
        let resp = DescribeQuorumResponse::default()
            .with_error_code(ResponseError::UnknownTopicOrPartition.code())
            .with_error_message(Some(str_bytes(format!(
                "only {METADATA_TOPIC}-0 has a quorum to describe"
            ))));
        return respond(req, &resp);
    }
    let (status, replication) = broker.metadata.quorum().describe();
    if let Some(replicas) = replication {
        return respond(
            req,
            &answer(broker, req.api_version, &status, &replicas, None),
        );
    }
    let not_leader = |why: String| Some((ResponseError::NotLeaderOrFollower, why));
    if forwarded || broker.metadata.controller_id().is_none() {
        let why = "this node does not lead the metadata quorum".to_string();
        return respond(
            req,
            &answer(broker, req.api_version, &status, &[], not_leader(why)),
        );
    }
    let version = req.api_version;
    let reply_to = ReplyTo::of(req);
    let broker = broker.clone();
    Reply::Later(Box::pin(async move {
        match broker.controller.send_remote(&broker, &r, version).await {
            Ok(resp) => reply_to.encode(&resp),
            Err(e) => {
                let (status, _) = broker.metadata.quorum().describe();
                reply_to.encode(&answer(
                    &broker,
                    version,
                    &status,
                    &[],
                    not_leader(e.to_string()),
                ))
            }
        }
    }))
}

/// The response for `__cluster_metadata-0`: with the replicas' progress on the leader, or
/// with `error` (its message only from v2, which has the field) and the leader this node
/// knows.
fn answer(
    broker: &Broker,
    version: i16,
    status: &crate::raft::driver::Status,
    replicas: &[ReplicaProgress],
    error: Option<(ResponseError, String)>,
) -> DescribeQuorumResponse {
    let state = |r: &ReplicaProgress| {
        let mut s = ReplicaState::default()
            .with_replica_id(BrokerId(r.id))
            .with_log_end_offset(r.log_end_offset);
        if version >= 1 {
            s = s
                .with_last_fetch_timestamp(r.last_fetch_ms)
                .with_last_caught_up_timestamp(r.last_caught_up_ms);
        }
        s
    };
    let voters = replicas.iter().filter(|r| r.voter).map(state).collect();
    let observers = replicas.iter().filter(|r| !r.voter).map(state).collect();
    let mut partition = PartitionData::default()
        .with_partition_index(0)
        .with_leader_id(BrokerId(status.leader_id.unwrap_or(-1)))
        .with_leader_epoch(status.epoch)
        .with_high_watermark(status.high_watermark)
        .with_current_voters(voters)
        .with_observers(observers);
    if let Some((e, why)) = error {
        partition = partition.with_error_code(e.code());
        if version >= 2 {
            partition = partition.with_error_message(Some(str_bytes(why)));
        }
    }
    let mut resp = DescribeQuorumResponse::default().with_topics(vec![
        TopicData::default()
            .with_topic_name(TopicName(str_bytes(METADATA_TOPIC.to_string())))
            .with_partitions(vec![partition]),
    ]);
    if version >= 2 {
        let listener = "CONTROLLER".to_string();
        resp.nodes = broker
            .config
            .quorum
            .voters
            .iter()
            .filter_map(|(id, addr)| {
                let (host, port) = addr.rsplit_once(':')?;
                Some(
                    Node::default()
                        .with_node_id(BrokerId(*id))
                        .with_listeners(vec![
                            Listener::default()
                                .with_name(str_bytes(listener.clone()))
                                .with_host(str_bytes(host.to_string()))
                                .with_port(port.parse().ok()?),
                        ]),
                )
            })
            .collect();
    }
    resp
}
