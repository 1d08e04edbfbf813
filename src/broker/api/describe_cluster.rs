//! DescribeCluster: the cluster id, the controller and the brokers.

use super::super::Broker;
use super::{Reply, decode, respond, str_bytes};
use crate::protocol::RequestFrame;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use std::sync::Arc;

pub fn handle(broker: &Arc<Broker>, req: &RequestFrame) -> Reply {
    let r: DescribeClusterRequest = match decode(req) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    let (host, port) = broker.advertised();
    let node = BrokerId(broker.config.node_id);
    let mut resp = DescribeClusterResponse::default();
    if req.api_version >= 1 {
        resp.endpoint_type = r.endpoint_type;
    }
    let resp = resp
        .with_cluster_id(str_bytes(
            broker
                .metadata
                .state()
                .cluster_id
                .clone()
                .unwrap_or_default(),
        ))
        .with_controller_id(node)
        .with_brokers(vec![
            DescribeClusterBroker::default()
                .with_broker_id(node)
                .with_host(str_bytes(host))
                .with_port(port),
        ]);
    respond(req, &resp)
}
