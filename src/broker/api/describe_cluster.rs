//! DescribeCluster: the cluster id, the controller and the live brokers.

use super::super::Broker;
use super::metadata::{client_controller_id, live_brokers};
use super::{Reply, authorized, decode, respond, str_bytes};
use crate::protocol::RequestFrame;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use std::sync::Arc;

pub fn handle(broker: &Arc<Broker>, req: &RequestFrame) -> Reply {
    let r: DescribeClusterRequest = match decode(req) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    let state = broker.metadata.state();
    let brokers = live_brokers(broker, &state);
    let mut resp = DescribeClusterResponse::default();
    if req.api_version >= 1 {
        resp.endpoint_type = r.endpoint_type;
    }
    let resp = resp
        .with_cluster_id(str_bytes(state.cluster_id.clone().unwrap_or_default()))
        .with_controller_id(BrokerId(client_controller_id(broker, &brokers)))
        .with_cluster_authorized_operations(authorized::if_asked(
            r.include_cluster_authorized_operations,
            authorized::CLUSTER,
        ))
        .with_brokers(
            brokers
                .into_iter()
                .map(|b| {
                    DescribeClusterBroker::default()
                        .with_broker_id(BrokerId(b.id))
                        .with_host(str_bytes(b.host))
                        .with_port(b.port)
                        .with_rack(b.rack.map(str_bytes))
                })
                .collect(),
        );
    respond(req, &resp)
}
