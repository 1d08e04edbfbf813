//! ApiVersions: which APIs and versions runnel answers.
//!
//! A request in a version runnel does not know gets the v0 response with UNSUPPORTED_VERSION
//! and the full list (KIP-511), so the client can retry in a version both sides know.

use super::{Reply, decode, respond};
use crate::protocol::{RequestFrame, SUPPORTED_APIS, encode_response, supported_range};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};

fn api_keys() -> Vec<ApiVersion> {
    SUPPORTED_APIS
        .iter()
        .map(|(k, lo, hi)| {
            ApiVersion::default()
                .with_api_key(*k as i16)
                .with_min_version(*lo)
                .with_max_version(*hi)
        })
        .collect()
}

pub fn handle(req: &RequestFrame) -> Reply {
    let (lo, hi) = supported_range(ApiKey::ApiVersions).expect("ApiVersions is supported");
    if req.api_version < lo || req.api_version > hi {
        let resp = ApiVersionsResponse::default()
            .with_error_code(ResponseError::UnsupportedVersion.code())
            .with_api_keys(api_keys());
        return match encode_response(ApiKey::ApiVersions, 0, req.correlation_id, &resp) {
            Ok(b) => Reply::Ready(b),
            Err(e) => Reply::Close(format!("could not encode ApiVersions: {e}")),
        };
    }
    let error = match decode::<ApiVersionsRequest>(req) {
        Ok(_) => 0,
        // Kafka answers a v3+ request whose client software fields do not parse with
        // INVALID_REQUEST rather than closing, so the client learns why.
        Err(_) => ResponseError::InvalidRequest.code(),
    };
    let resp = ApiVersionsResponse::default()
        .with_error_code(error)
        .with_api_keys(api_keys());
    respond(req, &resp)
}
