//! AlterConfigs (v0–v2) and IncrementalAlterConfigs (v0–v1): topic configs changed live.
//!
//! The active controller checks each change as CreateTopics checks a config and commits a
//! `TopicConfigsSet` record; every broker applies it to its open logs as the metadata reaches
//! it ([`crate::broker::Broker::sync_logs`]): a new `retention.ms` at the next retention
//! check, a new `segment.bytes` at the next roll. A broker that is not the controller
//! forwards the request whole, as KRaft brokers do. A BROKER resource (a broker id, or "" for
//! the cluster-wide defaults) changes dynamic broker configs, `BrokerConfigsSet`, for the keys
//! that set topics' defaults (`log.retention.ms`, `compression.type`, ...), which take effect
//! on live partitions the same way; other broker keys are refused with a message saying why.

use super::super::Broker;
use super::{Reply, decode, respond, str_bytes};
use crate::broker::controller::ConfigTarget;
use crate::cluster::controller::ConfigOp;
use crate::protocol::RequestFrame;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse, alter_configs_response, incremental_alter_configs_response,
};
use kafka_protocol::protocol::{Request, StrBytes};
use std::sync::Arc;

/// Kafka's resource types.
const TOPIC: i8 = 2;
const BROKER: i8 = 4;

/// One resource's changes, from either request.
struct Change {
    resource_type: i8,
    name: StrBytes,
    /// `(key, operation)`, or the reason the request itself is malformed.
    ops: Result<Vec<(String, ConfigOp)>, String>,
}

/// One resource's outcome.
struct Outcome {
    resource_type: i8,
    name: StrBytes,
    /// The error code, 0 for none.
    code: i16,
    message: Option<String>,
}

pub async fn handle_alter(broker: &Arc<Broker>, req: &RequestFrame, forwarded: bool) -> Reply {
    let r: AlterConfigsRequest = match decode(req) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    if let Some(reply) = forward(broker, req, &r, forwarded).await {
        return reply;
    }
    let changes = r
        .resources
        .iter()
        .map(|res| Change {
            resource_type: res.resource_type,
            name: res.resource_name.clone(),
            ops: res
                .configs
                .iter()
                .map(|c| {
                    let key = c.name.to_string();
                    match &c.value {
                        Some(v) => Ok((key, ConfigOp::Set(v.to_string()))),
                        None => Err(format!("config '{key}' has a null value")),
                    }
                })
                .collect(),
        })
        .collect();
    let outcomes = apply(broker, changes, true, r.validate_only).await;
    respond(req, &AlterConfigsResponse::from_outcomes(outcomes))
}

pub async fn handle_incremental(
    broker: &Arc<Broker>,
    req: &RequestFrame,
    forwarded: bool,
) -> Reply {
    let r: IncrementalAlterConfigsRequest = match decode(req) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    if let Some(reply) = forward(broker, req, &r, forwarded).await {
        return reply;
    }
    let changes = r
        .resources
        .iter()
        .map(|res| Change {
            resource_type: res.resource_type,
            name: res.resource_name.clone(),
            ops: res
                .configs
                .iter()
                .map(|c| {
                    let key = c.name.to_string();
                    let value = || {
                        c.value
                            .as_ref()
                            .map(|v| v.to_string())
                            .ok_or_else(|| format!("config '{key}' has a null value"))
                    };
                    let op = match c.config_operation {
                        0 => ConfigOp::Set(value()?),
                        1 => ConfigOp::Delete,
                        2 => ConfigOp::Append(value()?),
                        3 => ConfigOp::Subtract(value()?),
                        other => return Err(format!("config operation {other} is not known")),
                    };
                    Ok((key, op))
                })
                .collect(),
        })
        .collect();
    let outcomes = apply(broker, changes, false, r.validate_only).await;
    respond(
        req,
        &IncrementalAlterConfigsResponse::from_outcomes(outcomes),
    )
}

/// The broker a BROKER resource names: `None` for "" (the cluster-wide defaults, Kafka's
/// `--entity-default`), else a broker id.
fn broker_target(name: &str) -> Result<Option<i32>, String> {
    if name.is_empty() {
        return Ok(None);
    }
    name.parse::<i32>()
        .ok()
        .filter(|id| *id >= 0)
        .map(Some)
        .ok_or_else(|| format!("'{name}' is not a broker id (nor \"\" for every broker)"))
}

/// On a broker that is not the active controller: the controller's answer to the same request
/// (or, if the controller cannot be asked, the reason as every resource's error). `None` on
/// the active controller, which answers itself.
async fn forward<R>(
    broker: &Arc<Broker>,
    req: &RequestFrame,
    r: &R,
    forwarded: bool,
) -> Option<Reply>
where
    R: Request + kafka_protocol::protocol::Encodable,
    R::Response: kafka_protocol::protocol::Encodable + Errors<Req = R>,
{
    if broker.controller.is_active(broker) {
        return None;
    }
    let resources = R::Response::resources_of(r);
    let failed = |code: ResponseError, message: String| {
        let outcomes = resources
            .iter()
            .map(|(t, n)| Outcome {
                resource_type: *t,
                name: n.clone(),
                code: code.code(),
                message: Some(message.clone()),
            })
            .collect();
        respond(req, &R::Response::from_outcomes(outcomes))
    };
    if forwarded {
        let e = super::super::topics::not_controller(broker);
        return Some(failed(e.code(), e.to_string()));
    }
    Some(
        match broker
            .controller
            .send_remote(broker, r, req.api_version)
            .await
        {
            Ok(resp) => respond(req, &resp),
            Err(e) => failed(e.code(), e.to_string()),
        },
    )
}

/// What the two requests and responses have in common, for forwarding.
trait Errors: Sized {
    type Req;
    fn resources_of(r: &Self::Req) -> Vec<(i8, StrBytes)>;
    fn from_outcomes(outcomes: Vec<Outcome>) -> Self;
}

impl Errors for AlterConfigsResponse {
    type Req = AlterConfigsRequest;
    fn resources_of(r: &AlterConfigsRequest) -> Vec<(i8, StrBytes)> {
        let each = |x: &kafka_protocol::messages::alter_configs_request::AlterConfigsResource| {
            (x.resource_type, x.resource_name.clone())
        };
        r.resources.iter().map(each).collect()
    }
    fn from_outcomes(outcomes: Vec<Outcome>) -> Self {
        AlterConfigsResponse::default().with_responses(
            outcomes
                .into_iter()
                .map(|o| {
                    alter_configs_response::AlterConfigsResourceResponse::default()
                        .with_resource_type(o.resource_type)
                        .with_resource_name(o.name)
                        .with_error_code(o.code)
                        .with_error_message(o.message.map(str_bytes))
                })
                .collect(),
        )
    }
}

impl Errors for IncrementalAlterConfigsResponse {
    type Req = IncrementalAlterConfigsRequest;
    fn resources_of(r: &IncrementalAlterConfigsRequest) -> Vec<(i8, StrBytes)> {
        r.resources
            .iter()
            .map(|x| (x.resource_type, x.resource_name.clone()))
            .collect()
    }
    fn from_outcomes(outcomes: Vec<Outcome>) -> Self {
        IncrementalAlterConfigsResponse::default().with_responses(
            outcomes
                .into_iter()
                .map(|o| {
                    incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                        .with_resource_type(o.resource_type)
                        .with_resource_name(o.name)
                        .with_error_code(o.code)
                        .with_error_message(o.message.map(str_bytes))
                })
                .collect(),
        )
    }
}

/// Applies each resource's changes on the active controller, one committed record each.
async fn apply(
    broker: &Arc<Broker>,
    changes: Vec<Change>,
    replace_all: bool,
    validate_only: bool,
) -> Vec<Outcome> {
    let mut out = Vec::with_capacity(changes.len());
    for c in changes {
        let result = match (c.resource_type, c.ops) {
            (_, Err(why)) => Err((ResponseError::InvalidRequest, why)),
            (TOPIC, Ok(ops)) => broker
                .controller
                .alter_configs(
                    broker,
                    ConfigTarget::Topic(c.name.as_str()),
                    &ops,
                    replace_all,
                    validate_only,
                )
                .await
                .map_err(|e| (e.code(), e.to_string())),
            (BROKER, Ok(ops)) => match broker_target(c.name.as_str()) {
                Ok(target) => broker
                    .controller
                    .alter_configs(
                        broker,
                        ConfigTarget::Brokers(target),
                        &ops,
                        replace_all,
                        validate_only,
                    )
                    .await
                    .map_err(|e| (e.code(), e.to_string())),
                Err(why) => Err((ResponseError::InvalidRequest, why)),
            },
            (other, Ok(_)) => Err((
                ResponseError::InvalidRequest,
                format!("resource type {other} is not supported"),
            )),
        };
        let (code, message) = match result {
            Ok(()) => (0, None),
            Err((code, message)) => (code.code(), Some(message)),
        };
        if code == 0 && !validate_only {
            match c.resource_type {
                TOPIC => tracing::info!(topic = %c.name.as_str(), "topic configs changed"),
                _ => tracing::info!(broker = %c.name.as_str(), "dynamic broker configs changed"),
            }
            // This node's own logs take the change now, as after CreatePartitions; the
            // others (and this one, if this fails) as their metadata follows.
            if let Err(e) = broker.sync_logs().await {
                tracing::warn!(error = %e, "applying changed topic configs failed; retried as the metadata follows");
            }
        }
        out.push(Outcome {
            resource_type: c.resource_type,
            name: c.name,
            code,
            message,
        });
    }
    out
}
