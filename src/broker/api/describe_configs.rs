//! DescribeConfigs: topic and broker configs with their real values, sources and synonyms.

use super::super::Broker;
use super::{Reply, decode, respond, str_bytes};
use crate::config::{ConfigEntry, ConfigSource};
use crate::protocol::RequestFrame;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_response::CreatableTopicConfigs;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use std::sync::Arc;

/// Kafka's resource types.
const TOPIC: i8 = 2;
const BROKER: i8 = 4;

fn to_result(e: ConfigEntry, synonyms: bool, docs: bool) -> DescribeConfigsResourceResult {
    DescribeConfigsResourceResult::default()
        .with_name(str_bytes(e.name))
        .with_value(e.value.map(str_bytes))
        .with_read_only(e.read_only)
        .with_config_source(e.source as i8)
        .with_is_sensitive(e.sensitive)
        .with_config_type(e.config_type as i8)
        .with_documentation(docs.then(|| str_bytes(e.documentation)))
        .with_synonyms(if synonyms {
            e.synonyms
                .into_iter()
                .map(|s| {
                    DescribeConfigsSynonym::default()
                        .with_name(str_bytes(s.name))
                        .with_value(s.value.map(str_bytes))
                        .with_source(s.source as i8)
                })
                .collect()
        } else {
            Vec::new()
        })
}

/// A described config as CreateTopics v5+ reports it.
pub fn entry_to_create_config(e: ConfigEntry) -> CreatableTopicConfigs {
    CreatableTopicConfigs::default()
        .with_name(str_bytes(e.name))
        .with_value(e.value.map(str_bytes))
        .with_read_only(e.read_only)
        .with_config_source(e.source as i8)
        .with_is_sensitive(e.sensitive)
}

pub fn handle(broker: &Arc<Broker>, req: &RequestFrame) -> Reply {
    let r: DescribeConfigsRequest = match decode(req) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    let state = broker.metadata.state();
    let config = broker.effective_config();
    let results = r
        .resources
        .into_iter()
        .map(|res| {
            let name = res.resource_name.to_string();
            let keys: Option<Vec<String>> = res
                .configuration_keys
                .map(|k| k.iter().map(|s| s.to_string()).collect());
            let base = DescribeConfigsResult::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            let entries = match res.resource_type {
                TOPIC => match state.topics.get(&name) {
                    Some(t) => Ok(config.describe_topic(&t.configs, keys.as_deref())),
                    None => Err((
                        ResponseError::UnknownTopicOrPartition,
                        format!("topic '{name}' does not exist"),
                    )),
                },
                // As Kafka: the resource "" holds the cluster-wide dynamic defaults only,
                // whatever this broker's own configs say.
                BROKER if name.is_empty() => Ok(broker
                    .config
                    .with_dynamic(&state.dynamic.default, &Default::default())
                    .describe(keys.as_deref())
                    .into_iter()
                    .filter(|e| e.source == ConfigSource::DynamicDefaultBrokerConfig)
                    .collect()),
                BROKER if name == broker.config.node_id.to_string() => {
                    Ok(config.describe(keys.as_deref()))
                }
                BROKER => Err((
                    ResponseError::InvalidRequest,
                    format!("this is broker {}, not '{name}'", broker.config.node_id),
                )),
                other => Err((
                    ResponseError::InvalidRequest,
                    format!("resource type {other} is not supported"),
                )),
            };
            match entries {
                Ok(entries) => base.with_configs(
                    entries
                        .into_iter()
                        .map(|e| to_result(e, r.include_synonyms, r.include_documentation))
                        .collect(),
                ),
                Err((code, msg)) => base
                    .with_error_code(code.code())
                    .with_error_message(Some(str_bytes(msg))),
            }
        })
        .collect();
    respond(
        req,
        &DescribeConfigsResponse::default().with_results(results),
    )
}
