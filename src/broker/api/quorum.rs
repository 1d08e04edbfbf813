//! The metadata quorum's APIs, served to the other quorum members: Vote, BeginQuorumEpoch,
//! EndQuorumEpoch, Fetch and FetchSnapshot of `__cluster_metadata-0` (Fetch v13 to v18, which name topics by
//! id; clients fetch data with v12 or older). Each request is handed to the quorum's core and
//! answered with what the core answers; a request from another cluster gets
//! INCONSISTENT_CLUSTER_ID, as in Kafka.

use super::super::Broker;
use super::{Reply, ReplyTo, decode};
use crate::protocol::RequestFrame;
use crate::raft::driver::{
    BEGIN_QUORUM_EPOCH_VERSION, END_QUORUM_EPOCH_VERSION, FETCH_SNAPSHOT_VERSION, FETCH_VERSION,
    VOTE_VERSION,
};
use crate::raft::{Message, NodeId, wire};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    ApiKey, BeginQuorumEpochRequest, BeginQuorumEpochResponse, EndQuorumEpochRequest,
    EndQuorumEpochResponse, FetchRequest, FetchResponse, FetchSnapshotRequest,
    FetchSnapshotResponse, VoteRequest, VoteResponse,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use std::sync::Arc;

/// Whether `req` is one of the quorum's requests, in a version the quorum speaks.
pub fn is_quorum_request(req: &RequestFrame) -> bool {
    match req.api_key {
        ApiKey::Vote => req.api_version == VOTE_VERSION,
        ApiKey::BeginQuorumEpoch => req.api_version == BEGIN_QUORUM_EPOCH_VERSION,
        ApiKey::EndQuorumEpoch => req.api_version == END_QUORUM_EPOCH_VERSION,
        ApiKey::Fetch => (13..=FETCH_VERSION).contains(&req.api_version),
        ApiKey::FetchSnapshot => (0..=FETCH_SNAPSHOT_VERSION).contains(&req.api_version),
        _ => false,
    }
}

/// Answers a quorum request (see [`is_quorum_request`]).
pub fn handle(broker: &Arc<Broker>, req: &RequestFrame) -> Reply {
    match req.api_key {
        ApiKey::Vote => {
            let r: VoteRequest = match decode(req) {
                Ok(r) => r,
                Err(reply) => return reply,
            };
            let mismatch = foreign(broker, r.cluster_id.as_ref());
            let parsed = wire::vote_from_request(&r).map(|v| (v.candidate_id, Message::Vote(v)));
            answer(
                broker,
                req,
                mismatch,
                parsed,
                |m| match m {
                    Some(Message::VoteResponse(v)) => Some(wire::vote_response(&v)),
                    _ => None,
                },
                |code| VoteResponse::default().with_error_code(code),
            )
        }
        ApiKey::BeginQuorumEpoch => {
            let r: BeginQuorumEpochRequest = match decode(req) {
                Ok(r) => r,
                Err(reply) => return reply,
            };
            let mismatch = foreign(broker, r.cluster_id.as_ref());
            let parsed =
                wire::begin_from_request(&r).map(|b| (b.leader_id, Message::BeginQuorumEpoch(b)));
            answer(
                broker,
                req,
                mismatch,
                parsed,
                |m| match m {
                    Some(Message::BeginQuorumEpochResponse(e)) => Some(wire::begin_response(&e)),
                    _ => None,
                },
                |code| BeginQuorumEpochResponse::default().with_error_code(code),
            )
        }
        ApiKey::EndQuorumEpoch => {
            let r: EndQuorumEpochRequest = match decode(req) {
                Ok(r) => r,
                Err(reply) => return reply,
            };
            let mismatch = foreign(broker, r.cluster_id.as_ref());
            let parsed =
                wire::end_from_request(&r).map(|e| (e.leader_id, Message::EndQuorumEpoch(e)));
            answer(
                broker,
                req,
                mismatch,
                parsed,
                |m| match m {
                    Some(Message::EndQuorumEpochResponse(e)) => Some(wire::end_response(&e)),
                    _ => None,
                },
                |code| EndQuorumEpochResponse::default().with_error_code(code),
            )
        }
        ApiKey::Fetch => {
            let r: FetchRequest = match decode(req) {
                Ok(r) => r,
                Err(reply) => return reply,
            };
            let mismatch = foreign(broker, r.cluster_id.as_ref());
            let parsed = wire::fetch_from_request(&r).map(|f| (f.replica_id, Message::Fetch(f)));
            answer(
                broker,
                req,
                mismatch,
                parsed,
                |m| match m {
                    Some(Message::FetchResponse(f)) => Some(wire::fetch_response(&f)),
                    _ => None,
                },
                |code| FetchResponse::default().with_error_code(code),
            )
        }
        ApiKey::FetchSnapshot => {
            let r: FetchSnapshotRequest = match decode(req) {
                Ok(r) => r,
                Err(reply) => return reply,
            };
            let mismatch = foreign(broker, r.cluster_id.as_ref());
            let parsed = wire::fetch_snapshot_from_request(&r)
                .map(|f| (f.replica_id, Message::FetchSnapshot(f)));
            answer(
                broker,
                req,
                mismatch,
                parsed,
                |m| match m {
                    Some(Message::FetchSnapshotResponse(f)) => {
                        Some(wire::fetch_snapshot_response(&f))
                    }
                    _ => None,
                },
                |code| FetchSnapshotResponse::default().with_error_code(code),
            )
        }
        other => Reply::Close(format!("{other:?} is not a quorum request")),
    }
}

/// INCONSISTENT_CLUSTER_ID if the request names a cluster other than this node's.
fn foreign(broker: &Broker, theirs: Option<&StrBytes>) -> bool {
    let theirs = theirs.map(|s| s.as_str()).unwrap_or("");
    let ours = broker
        .metadata
        .state()
        .cluster_id
        .clone()
        .unwrap_or_default();
    !theirs.is_empty() && !ours.is_empty() && theirs != ours
}

/// Steps the core with the request and answers with its answer, later; an error response
/// (with `code`) if the request is from another cluster, names no `__cluster_metadata-0`, or
/// the core gives no answer in time.
fn answer<T: Encodable + Send + 'static>(
    broker: &Arc<Broker>,
    req: &RequestFrame,
    foreign: bool,
    parsed: Result<(NodeId, Message), wire::WireError>,
    to_response: impl FnOnce(Option<Message>) -> Option<T> + Send + 'static,
    error: impl FnOnce(i16) -> T + Send + 'static,
) -> Reply {
    let to = ReplyTo::of(req);
    if foreign {
        return to
            .encode(&error(ResponseError::InconsistentClusterId.code()))
            .map_or_else(|| Reply::Close("could not encode".into()), Reply::Ready);
    }
    let (from, message) = match parsed {
        Ok(p) => p,
        Err(e) => {
            tracing::debug!(error = %e, "a quorum request the quorum cannot read");
            return to
                .encode(&error(ResponseError::InvalidRequest.code()))
                .map_or_else(|| Reply::Close("could not encode".into()), Reply::Ready);
        }
    };
    let quorum = broker.metadata.quorum().clone();
    Reply::Later(Box::pin(async move {
        let answer = quorum.handle(from, message).await;
        match to_response(answer) {
            Some(body) => to.encode(&body),
            None => to.encode(&error(ResponseError::RequestTimedOut.code())),
        }
    }))
}
