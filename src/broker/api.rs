//! Request dispatch: one module per Kafka API, each holding validate, apply and build-response.

pub mod alter_configs;
pub mod api_versions;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_quorum;
pub mod fetch;
pub mod groups;
pub mod init_producer_id;
pub mod lifecycle;
pub mod list_offsets;
pub mod metadata;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod quorum;

use super::Broker;
use super::server::ListenerRole;
use crate::env::BoxFuture;
use crate::protocol::{RequestFrame, encode_response, supported_range};
use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use std::net::SocketAddr;
use std::sync::Arc;

/// What the connection does with a request.
pub enum Reply {
    /// Send this response now (in turn).
    Ready(Bytes),
    /// Send what this future yields, in turn; `None` closes the connection.
    Later(BoxFuture<'static, Option<Bytes>>),
    /// Send nothing (a produce with acks=0 that succeeded).
    None,
    /// Close the connection after the responses before this request, for this reason.
    Close(String),
}

/// Where a late response goes: enough of the request to encode it.
#[derive(Debug, Clone, Copy)]
pub struct ReplyTo {
    pub api_key: ApiKey,
    pub api_version: i16,
    pub correlation_id: i32,
}

impl ReplyTo {
    pub fn of(req: &RequestFrame) -> ReplyTo {
        ReplyTo {
            api_key: req.api_key,
            api_version: req.api_version,
            correlation_id: req.correlation_id,
        }
    }

    /// Encodes `body` as this request's response; None (close the connection) if that fails.
    pub fn encode<T: Encodable>(&self, body: &T) -> Option<Bytes> {
        match encode_response(self.api_key, self.api_version, self.correlation_id, body) {
            Ok(b) => Some(b),
            Err(e) => {
                tracing::error!(api = ?self.api_key, version = self.api_version, error = %e, "could not encode a response");
                None
            }
        }
    }
}

/// Handles one request in arrival order. Admin requests that reach a node on its controller
/// listener were forwarded by a broker; they are answered here or refused with
/// NOT_CONTROLLER, never forwarded again.
pub async fn dispatch(
    broker: &Arc<Broker>,
    req: RequestFrame,
    peer: SocketAddr,
    role: ListenerRole,
) -> Reply {
    let forwarded = role == ListenerRole::Controller;
    tracing::trace!(%peer, api = ?req.api_key, version = req.api_version, correlation_id = req.correlation_id, client = ?req.client_id, "request");
    if req.api_key == ApiKey::ApiVersions {
        return api_versions::handle(&req);
    }
    if quorum::is_quorum_request(&req) {
        return quorum::handle(broker, &req);
    }
    if lifecycle::is_lifecycle_request(&req) {
        return lifecycle::handle(broker, &req);
    }
    if !*broker.ready.borrow() && !broker.wait_ready().await {
        return Reply::Close("the broker is shutting down".into());
    }
    let Some((lo, hi)) = supported_range(req.api_key) else {
        return Reply::Close(format!(
            "{:?} (key {}) is not supported",
            req.api_key, req.api_key as i16
        ));
    };
    if req.api_version < lo || req.api_version > hi {
        return Reply::Close(format!(
            "{:?} v{} is outside the supported versions {lo}..={hi}",
            req.api_key, req.api_version
        ));
    }
    match req.api_key {
        ApiKey::Produce => produce::handle(broker, &req).await,
        ApiKey::Fetch => fetch::handle(broker, &req),
        ApiKey::ListOffsets => list_offsets::handle(broker, &req),
        ApiKey::OffsetForLeaderEpoch => offset_for_leader_epoch::handle(broker, &req),
        ApiKey::Metadata => metadata::handle(broker, &req).await,
        ApiKey::CreateTopics => create_topics::handle(broker, &req, forwarded).await,
        ApiKey::DeleteTopics => delete_topics::handle(broker, &req, forwarded).await,
        ApiKey::CreatePartitions => create_partitions::handle(broker, &req, forwarded).await,
        ApiKey::DescribeConfigs => describe_configs::handle(broker, &req),
        ApiKey::AlterConfigs => alter_configs::handle_alter(broker, &req, forwarded).await,
        ApiKey::IncrementalAlterConfigs => {
            alter_configs::handle_incremental(broker, &req, forwarded).await
        }
        ApiKey::DescribeCluster => describe_cluster::handle(broker, &req),
        ApiKey::DescribeQuorum => describe_quorum::handle(broker, &req, forwarded).await,
        ApiKey::InitProducerId => init_producer_id::handle(broker, &req).await,
        ApiKey::FindCoordinator => groups::find_coordinator(broker, &req).await,
        ApiKey::JoinGroup => groups::join_group(broker, &req, peer),
        ApiKey::SyncGroup => groups::sync_group(broker, &req),
        ApiKey::Heartbeat => groups::heartbeat(broker, &req),
        ApiKey::LeaveGroup => groups::leave_group(broker, &req),
        ApiKey::OffsetCommit => groups::offset_commit(broker, &req),
        ApiKey::OffsetFetch => groups::offset_fetch(broker, &req),
        ApiKey::ListGroups => groups::list_groups(broker, &req),
        ApiKey::DescribeGroups => groups::describe_groups(broker, &req),
        ApiKey::DeleteGroups => groups::delete_groups(broker, &req),
        ApiKey::OffsetDelete => groups::offset_delete(broker, &req),
        other => Reply::Close(format!("{other:?} is not supported")),
    }
}

/// Decodes a request body; a body that does not decode closes the connection, as in Kafka.
/// The codec is not trusted never to panic on hostile bytes: a panic is caught and treated
/// the same way.
pub fn decode<T: Decodable>(req: &RequestFrame) -> Result<T, Reply> {
    let mut body = req.body.clone();
    let version = req.api_version;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        T::decode(&mut body, version)
    }));
    match result {
        Ok(Ok(t)) => Ok(t),
        Ok(Err(e)) => Err(Reply::Close(format!(
            "{:?} v{} request body does not decode: {e}",
            req.api_key, req.api_version
        ))),
        Err(_) => Err(Reply::Close(format!(
            "{:?} v{} request body made the decoder panic",
            req.api_key, req.api_version
        ))),
    }
}

/// The response to `req`, ready now.
pub fn respond<T: Encodable>(req: &RequestFrame, body: &T) -> Reply {
    match ReplyTo::of(req).encode(body) {
        Some(b) => Reply::Ready(b),
        None => Reply::Close("could not encode the response".into()),
    }
}

/// A string for a response field.
/// The operations Kafka reports as authorized when a client asks (Metadata v8+,
/// DescribeCluster, DescribeGroups) and no authorizer is configured: every operation the
/// resource type supports, as bits numbered by Kafka's `AclOperation` codes.
pub mod authorized {
    const READ: i32 = 3;
    const WRITE: i32 = 4;
    const CREATE: i32 = 5;
    const DELETE: i32 = 6;
    const ALTER: i32 = 7;
    const DESCRIBE: i32 = 8;
    const CLUSTER_ACTION: i32 = 9;
    const DESCRIBE_CONFIGS: i32 = 10;
    const ALTER_CONFIGS: i32 = 11;
    const IDEMPOTENT_WRITE: i32 = 12;

    const fn bits(ops: &[i32]) -> i32 {
        let mut out = 0;
        let mut i = 0;
        while i < ops.len() {
            out |= 1 << ops[i];
            i += 1;
        }
        out
    }

    /// A topic's: READ, WRITE, CREATE, DESCRIBE, DELETE, ALTER, DESCRIBE_CONFIGS, ALTER_CONFIGS.
    pub const TOPIC: i32 = bits(&[
        READ,
        WRITE,
        CREATE,
        DESCRIBE,
        DELETE,
        ALTER,
        DESCRIBE_CONFIGS,
        ALTER_CONFIGS,
    ]);
    /// The cluster's: CREATE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS,
    /// IDEMPOTENT_WRITE, ALTER, DESCRIBE.
    pub const CLUSTER: i32 = bits(&[
        CREATE,
        CLUSTER_ACTION,
        DESCRIBE_CONFIGS,
        ALTER_CONFIGS,
        IDEMPOTENT_WRITE,
        ALTER,
        DESCRIBE,
    ]);
    /// A group's: READ, DELETE, DESCRIBE.
    pub const GROUP: i32 = bits(&[READ, DELETE, DESCRIBE]);
    /// What a response carries: `ops` if the client asked, else Kafka's "not requested"
    /// (`i32::MIN`).
    pub fn if_asked(asked: bool, ops: i32) -> i32 {
        if asked { ops } else { i32::MIN }
    }
}

pub fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

#[cfg(test)]
mod tests;
