//! The admin client: topics, partitions, configs, offsets and the cluster's shape.
//!
//! Changes (create, delete, grow) go to the controller and are retried only when the request
//! surely did not reach it: after a timeout the change may have happened, and repeating it
//! would turn success into TOPIC_ALREADY_EXISTS. Lookups are retried on any retriable error
//! until `default.api.timeout.ms`.

mod groups;

pub use groups::{GroupDescription, GroupListing, GroupMember};

use super::cluster::Cluster;
use super::error::{ClientError, check_code};
use super::metadata::{BrokerInfo, PartitionMetadata};
use super::{ClientConfig, TopicPartition};
use crate::env::Env;
use futures_util::future::join_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest,
    DescribeClusterRequest, DescribeConfigsRequest, DescribeQuorumRequest, ListOffsetsRequest,
    ListOffsetsResponse, TopicName, describe_quorum_request, describe_quorum_response,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    /// Its name.
    pub name: String,
    /// Partitions; -1 for the broker's `num.partitions`.
    pub partitions: i32,
    /// Replication factor; -1 for the broker's `default.replication.factor`.
    pub replication_factor: i16,
    /// Topic configs (`retention.ms`, `cleanup.policy`, ...).
    pub configs: BTreeMap<String, String>,
}

impl NewTopic {
    /// A topic with the broker's default shape and no configs.
    pub fn new(name: impl Into<String>) -> NewTopic {
        NewTopic {
            name: name.into(),
            partitions: -1,
            replication_factor: -1,
            configs: BTreeMap::new(),
        }
    }
}

/// A topic in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicListing {
    /// Its name.
    pub name: String,
    /// Its id.
    pub topic_id: uuid::Uuid,
    /// Whether it is internal.
    pub internal: bool,
}

/// Everything `describe_topic` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDescription {
    /// Its name.
    pub name: String,
    /// Its id.
    pub topic_id: uuid::Uuid,
    /// Whether it is internal.
    pub internal: bool,
    /// Partitions with leader, replicas and ISR, by index.
    pub partitions: Vec<PartitionMetadata>,
    /// Its configs as DescribeConfigs reports them.
    pub configs: Vec<ConfigEntry>,
}

/// What to describe the configs of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigResource {
    /// A topic.
    Topic(String),
    /// A broker, by id.
    Broker(i32),
    /// The cluster-wide dynamic defaults of every broker (Kafka's resource "",
    /// `--entity-default`).
    BrokerDefault,
}

impl ConfigResource {
    /// Kafka's resource type code and the resource's name on the wire.
    fn wire(&self) -> (i8, String) {
        match self {
            ConfigResource::Topic(t) => (2, t.clone()),
            ConfigResource::Broker(id) => (4, id.to_string()),
            ConfigResource::BrokerDefault => (4, String::new()),
        }
    }

    /// How errors name it.
    fn label(&self) -> String {
        match self {
            ConfigResource::Topic(t) => format!("topic '{t}'"),
            ConfigResource::Broker(id) => format!("broker {id}"),
            ConfigResource::BrokerDefault => "the brokers' defaults".to_string(),
        }
    }
}

/// Kafka's ConfigSource codes, as names.
fn config_source_name(code: i8) -> &'static str {
    match code {
        1 => "DYNAMIC_TOPIC_CONFIG",
        2 => "DYNAMIC_BROKER_CONFIG",
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4 => "STATIC_BROKER_CONFIG",
        5 => "DEFAULT_CONFIG",
        6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
        7 => "CLIENT_METRICS_CONFIG",
        8 => "GROUP_CONFIG",
        _ => "UNKNOWN",
    }
}

/// One config of a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    /// The key.
    pub name: String,
    /// The value; `None` if unset or sensitive.
    pub value: Option<String>,
    /// Where the value comes from (`DYNAMIC_TOPIC_CONFIG` for a topic override,
    /// `DEFAULT_CONFIG`, ...).
    pub source: &'static str,
    /// Whether it cannot be changed.
    pub read_only: bool,
    /// Whether the value is hidden.
    pub sensitive: bool,
}

impl ConfigEntry {
    /// Whether the value was set on the topic itself (what `kafka-topics --describe` shows).
    pub fn is_topic_override(&self) -> bool {
        self.source == "DYNAMIC_TOPIC_CONFIG"
    }
}

/// Which offset to look up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start offset.
    Earliest,
    /// The log end offset (the high watermark).
    Latest,
    /// The offset of the record with the largest timestamp.
    MaxTimestamp,
    /// The first offset whose timestamp is at or after this (ms since the epoch).
    Timestamp(i64),
}

impl OffsetSpec {
    /// The ListOffsets timestamp field's value.
    fn wire(self) -> i64 {
        match self {
            OffsetSpec::Latest => -1,
            OffsetSpec::Earliest => -2,
            OffsetSpec::MaxTimestamp => -3,
            OffsetSpec::Timestamp(t) => t,
        }
    }
}

/// A looked-up offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedOffset {
    /// The offset; -1 if no record matches a timestamp lookup.
    pub offset: i64,
    /// The matching record's timestamp (-1 for earliest and latest).
    pub timestamp: i64,
    /// The leader epoch (-1 if unknown).
    pub leader_epoch: i32,
}

/// The cluster's id, controller and brokers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDescription {
    /// The cluster id.
    pub cluster_id: String,
    /// The controller's id, if any.
    pub controller_id: Option<i32>,
    /// The brokers.
    pub brokers: Vec<BrokerInfo>,
}

/// One replica of the metadata quorum, as its leader sees it (DescribeQuorum).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumReplica {
    /// Its node id.
    pub id: i32,
    /// Its log end offset (-1 if it has not fetched in this epoch).
    pub log_end_offset: i64,
    /// When it last fetched, ms since the epoch (-1 if unknown).
    pub last_fetch_ms: i64,
    /// When it last fetched at the leader's log end, ms since the epoch (-1 if unknown).
    pub last_caught_up_ms: i64,
}

/// The metadata quorum (DescribeQuorum of `__cluster_metadata-0`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumDescription {
    /// The leader (the active controller).
    pub leader_id: i32,
    /// Its epoch.
    pub leader_epoch: i32,
    /// The quorum's high watermark.
    pub high_watermark: i64,
    /// The voters.
    pub voters: Vec<QuorumReplica>,
    /// Observers that fetched in this epoch (brokers that are not voters).
    pub observers: Vec<QuorumReplica>,
}

/// An admin client.
pub struct Admin {
    /// Connections and metadata.
    cluster: Arc<Cluster>,
}

fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

impl Admin {
    /// An admin client with its own connections.
    pub fn new(env: Env, config: ClientConfig) -> Result<Admin, ClientError> {
        Ok(Admin {
            cluster: Cluster::new(env, config, false)?,
        })
    }

    fn timeout_ms(&self) -> i32 {
        i32::try_from(self.cluster.config().request_timeout_ms).unwrap_or(i32::MAX)
    }

    /// Creates a topic; returns its id (nil before CreateTopics v7).
    pub async fn create_topic(&self, topic: &NewTopic) -> Result<uuid::Uuid, ClientError> {
        let configs = topic
            .configs
            .iter()
            .map(|(k, v)| {
                CreatableTopicConfig::default()
                    .with_name(StrBytes::from_string(k.clone()))
                    .with_value(Some(StrBytes::from_string(v.clone())))
            })
            .collect();
        let req = CreateTopicsRequest::default()
            .with_timeout_ms(self.timeout_ms())
            .with_topics(vec![
                CreatableTopic::default()
                    .with_name(topic_name(&topic.name))
                    .with_num_partitions(topic.partitions)
                    .with_replication_factor(topic.replication_factor)
                    .with_configs(configs),
            ]);
        let what = format!("creating topic '{}'", topic.name);
        let resp = self
            .cluster
            .retrying(&what, false, || async {
                let resp = self.cluster.controller().await?.send(&req).await?;
                for t in &resp.topics {
                    not_controller(t.error_code, t.error_message.as_deref(), &what)?;
                }
                Ok(resp)
            })
            .await?;
        let r = resp
            .topics
            .into_iter()
            .find(|t| t.name.0.as_str() == topic.name);
        let r = r.ok_or_else(|| self.missing("CreateTopics", &topic.name))?;
        check_code(
            r.error_code,
            || format!("topic '{}'", topic.name),
            r.error_message.as_deref(),
        )?;
        self.cluster.mark_stale();
        Ok(r.topic_id)
    }

    /// Deletes a topic and its data.
    pub async fn delete_topic(&self, name: &str) -> Result<(), ClientError> {
        let what = format!("deleting topic '{name}'");
        let resp = self
            .cluster
            .retrying(&what, false, || async {
                let conn = self.cluster.controller().await?;
                let version = conn.version_for(ApiKey::DeleteTopics)?;
                let mut req = DeleteTopicsRequest::default().with_timeout_ms(self.timeout_ms());
                // v6 names topics in `topics` (by name or id); before, in `topic_names`.
                if version >= 6 {
                    req.topics =
                        vec![DeleteTopicState::default().with_name(Some(topic_name(name)))];
                } else {
                    req.topic_names = vec![topic_name(name)];
                }
                let resp = conn.start_at(&req, version).await?.wait().await?;
                for t in &resp.responses {
                    not_controller(t.error_code, t.error_message.as_deref(), &what)?;
                }
                Ok(resp)
            })
            .await?;
        let r = resp
            .responses
            .into_iter()
            .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == name));
        let r = r.ok_or_else(|| self.missing("DeleteTopics", name))?;
        let context = || format!("topic '{name}'");
        check_code(r.error_code, context, r.error_message.as_deref())?;
        self.cluster.mark_stale();
        Ok(())
    }

    /// Every topic in the cluster, sorted by name.
    pub async fn list_topics(&self) -> Result<Vec<TopicListing>, ClientError> {
        let md = self
            .cluster
            .retrying("listing topics", true, || self.cluster.refresh_all())
            .await?;
        Ok(md
            .topics
            .values()
            .map(|t| TopicListing {
                name: t.name.clone(),
                topic_id: t.topic_id,
                internal: t.internal,
            })
            .collect())
    }

    /// A topic's partitions (leader, replicas, ISR), id and configs.
    pub async fn describe_topic(&self, name: &str) -> Result<TopicDescription, ClientError> {
        self.cluster.mark_stale();
        let t = self.cluster.topic(name).await?;
        let configs = self
            .describe_configs(&ConfigResource::Topic(name.to_string()))
            .await?;
        Ok(TopicDescription {
            name: t.name,
            topic_id: t.topic_id,
            internal: t.internal,
            partitions: t.partitions,
            configs,
        })
    }

    /// Grows a topic to `total` partitions.
    pub async fn create_partitions(&self, name: &str, total: i32) -> Result<(), ClientError> {
        let req = CreatePartitionsRequest::default()
            .with_timeout_ms(self.timeout_ms())
            .with_topics(vec![
                CreatePartitionsTopic::default()
                    .with_name(topic_name(name))
                    .with_count(total)
                    .with_assignments(None),
            ]);
        let what = format!("adding partitions to '{name}'");
        let resp = self
            .cluster
            .retrying(&what, false, || async {
                let resp = self.cluster.controller().await?.send(&req).await?;
                for t in &resp.results {
                    not_controller(t.error_code, t.error_message.as_deref(), &what)?;
                }
                Ok(resp)
            })
            .await?;
        let r = resp.results.into_iter().find(|t| t.name.0.as_str() == name);
        let r = r.ok_or_else(|| self.missing("CreatePartitions", name))?;
        check_code(
            r.error_code,
            || format!("topic '{name}'"),
            r.error_message.as_deref(),
        )?;
        self.cluster.mark_stale();
        Ok(())
    }

    /// The configs of a topic or broker.
    pub async fn describe_configs(
        &self,
        resource: &ConfigResource,
    ) -> Result<Vec<ConfigEntry>, ClientError> {
        let (kind, name) = resource.wire();
        let req = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(kind)
                .with_resource_name(StrBytes::from_string(name.clone()))
                .with_configuration_keys(None),
        ]);
        let resp = self
            .cluster
            .retrying("describing configs", true, || async {
                // A broker's configs come from that broker; a topic's from any.
                let conn = match resource {
                    ConfigResource::Broker(id) => {
                        if self.cluster.metadata().brokers.is_empty() {
                            self.cluster.refresh(&[]).await?;
                        }
                        self.cluster.broker(*id).await?
                    }
                    ConfigResource::Topic(_) | ConfigResource::BrokerDefault => {
                        self.cluster.any_broker().await?
                    }
                };
                conn.send(&req).await
            })
            .await?;
        let r = resp
            .results
            .into_iter()
            .next()
            .ok_or_else(|| self.missing("DescribeConfigs", &name))?;
        let label = resource.label();
        check_code(r.error_code, || label, r.error_message.as_deref())?;
        Ok(r.configs
            .into_iter()
            .map(|c| ConfigEntry {
                name: c.name.to_string(),
                value: c.value.map(|v| v.to_string()),
                source: config_source_name(c.config_source),
                read_only: c.read_only,
                sensitive: c.is_sensitive,
            })
            .collect())
    }

    /// Changes `resource`'s configs as IncrementalAlterConfigs does: each `(key, op)` with
    /// `op` SET (`Some(value)`) or DELETE (`None`); with `validate_only` the broker only checks.
    pub async fn incremental_alter_configs(
        &self,
        resource: &ConfigResource,
        changes: &[(String, Option<String>)],
        validate_only: bool,
    ) -> Result<(), ClientError> {
        use kafka_protocol::messages::IncrementalAlterConfigsRequest;
        use kafka_protocol::messages::incremental_alter_configs_request::{
            AlterConfigsResource, AlterableConfig,
        };
        let (kind, name) = resource.wire();
        let configs = changes
            .iter()
            .map(|(k, v)| {
                AlterableConfig::default()
                    .with_name(StrBytes::from_string(k.clone()))
                    // SET 0, DELETE 1.
                    .with_config_operation(if v.is_some() { 0 } else { 1 })
                    .with_value(v.clone().map(StrBytes::from_string))
            })
            .collect();
        let req = IncrementalAlterConfigsRequest::default()
            .with_validate_only(validate_only)
            .with_resources(vec![
                AlterConfigsResource::default()
                    .with_resource_type(kind)
                    .with_resource_name(StrBytes::from_string(name.clone()))
                    .with_configs(configs),
            ]);
        // SET and DELETE are idempotent: an attempt whose outcome is unknown is tried again.
        let resp = self
            .cluster
            .retrying("altering configs", true, || async {
                let resp = self.cluster.controller().await?.send(&req).await?;
                for r in &resp.responses {
                    not_controller(r.error_code, r.error_message.as_deref(), "altering configs")?;
                }
                Ok(resp)
            })
            .await?;
        let r = resp
            .responses
            .into_iter()
            .next()
            .ok_or_else(|| self.missing("IncrementalAlterConfigs", &name))?;
        let label = resource.label();
        check_code(r.error_code, || label, r.error_message.as_deref())
    }

    /// Looks up offsets, asking each partition's leader.
    pub async fn list_offsets(
        &self,
        wanted: &[(TopicPartition, OffsetSpec)],
    ) -> Result<BTreeMap<TopicPartition, ListedOffset>, ClientError> {
        list_offsets(&self.cluster, wanted).await
    }

    /// The cluster's id, controller and brokers.
    pub async fn describe_cluster(&self) -> Result<ClusterDescription, ClientError> {
        let resp = self
            .cluster
            .retrying("describing the cluster", true, || async {
                self.cluster
                    .any_broker()
                    .await?
                    .send(&DescribeClusterRequest::default())
                    .await
            })
            .await?;
        check_code(
            resp.error_code,
            || "describing the cluster".into(),
            resp.error_message.as_deref(),
        )?;
        Ok(ClusterDescription {
            cluster_id: resp.cluster_id.to_string(),
            controller_id: Some(resp.controller_id.0).filter(|id| *id >= 0),
            brokers: resp
                .brokers
                .iter()
                .map(|b| BrokerInfo {
                    id: b.broker_id.0,
                    host: b.host.to_string(),
                    port: b.port,
                    rack: b.rack.as_ref().map(|r| r.to_string()),
                })
                .collect(),
        })
    }

    /// The metadata quorum: leader, epoch, high watermark and every replica's progress.
    pub async fn describe_quorum(&self) -> Result<QuorumDescription, ClientError> {
        let req = DescribeQuorumRequest::default().with_topics(vec![
            describe_quorum_request::TopicData::default()
                .with_topic_name(TopicName(StrBytes::from_static_str(
                    crate::cluster::METADATA_TOPIC,
                )))
                .with_partitions(vec![
                    describe_quorum_request::PartitionData::default().with_partition_index(0),
                ]),
        ]);
        let what = || "describing the metadata quorum".to_string();
        let resp = self
            .cluster
            .retrying("describing the metadata quorum", true, || async {
                let resp = self.cluster.any_broker().await?.send(&req).await?;
                check_code(resp.error_code, what, resp.error_message.as_deref())?;
                let p = resp
                    .topics
                    .first()
                    .and_then(|t| t.partitions.first())
                    .ok_or_else(|| {
                        self.missing("DescribeQuorum", crate::cluster::METADATA_TOPIC)
                    })?;
                check_code(p.error_code, what, p.error_message.as_deref())?;
                Ok(resp)
            })
            .await?;
        let p = resp
            .topics
            .first()
            .and_then(|t| t.partitions.first())
            .ok_or_else(|| self.missing("DescribeQuorum", crate::cluster::METADATA_TOPIC))?;
        let replicas = |v: &[describe_quorum_response::ReplicaState]| {
            v.iter()
                .map(|r| QuorumReplica {
                    id: r.replica_id.0,
                    log_end_offset: r.log_end_offset,
                    last_fetch_ms: r.last_fetch_timestamp,
                    last_caught_up_ms: r.last_caught_up_timestamp,
                })
                .collect()
        };
        Ok(QuorumDescription {
            leader_id: p.leader_id.0,
            leader_epoch: p.leader_epoch,
            high_watermark: p.high_watermark,
            voters: replicas(&p.current_voters),
            observers: replicas(&p.observers),
        })
    }

    fn missing(&self, api: &str, name: &str) -> ClientError {
        ClientError::Protocol {
            addr: "the controller".into(),
            reason: format!("the {api} response does not mention '{name}'"),
        }
    }
}

/// Looks up offsets of partitions on their leaders (one request per leader, all at once),
/// retrying while leaders move or brokers are unreachable.
pub async fn list_offsets(
    cluster: &Cluster,
    wanted: &[(TopicPartition, OffsetSpec)],
) -> Result<BTreeMap<TopicPartition, ListedOffset>, ClientError> {
    let topics: Vec<String> = wanted.iter().map(|(tp, _)| tp.topic.clone()).collect();
    cluster.add_interest(&topics);
    cluster
        .retrying("listing offsets", true, || async {
            if cluster.needs_refresh() {
                cluster.refresh(&topics).await?;
            }
            let md = cluster.metadata();
            let mut by_leader: BTreeMap<i32, Vec<(TopicPartition, OffsetSpec, i32)>> =
                BTreeMap::new();
            for (tp, spec) in wanted {
                let leader = md.leader_id(tp).ok_or_else(|| {
                    cluster.mark_stale();
                    match md.topics.get(&tp.topic) {
                        Some(_) => ClientError::kafka(
                            ResponseError::LeaderNotAvailable,
                            format!("partition {tp}"),
                            None,
                        ),
                        None => ClientError::kafka(
                            ResponseError::UnknownTopicOrPartition,
                            format!("partition {tp} does not exist"),
                            None,
                        ),
                    }
                })?;
                by_leader
                    .entry(leader)
                    .or_default()
                    .push((tp.clone(), *spec, md.leader_epoch(tp)));
            }
            let asks = by_leader
                .into_iter()
                .map(|(leader, parts)| list_offsets_on(cluster, leader, parts));
            let mut out = BTreeMap::new();
            for found in join_all(asks).await {
                out.extend(found?);
            }
            Ok(out)
        })
        .await
}

/// One ListOffsets request to one leader.
async fn list_offsets_on(
    cluster: &Cluster,
    leader: i32,
    parts: Vec<(TopicPartition, OffsetSpec, i32)>,
) -> Result<BTreeMap<TopicPartition, ListedOffset>, ClientError> {
    let conn = cluster.broker(leader).await?;
    let version = conn.version_for(ApiKey::ListOffsets)?;
    let mut topics: Vec<ListOffsetsTopic> = Vec::new();
    for (tp, spec, epoch) in &parts {
        let p = ListOffsetsPartition::default()
            .with_partition_index(tp.partition)
            .with_timestamp(spec.wire())
            // The leader epoch field exists from v4.
            .with_current_leader_epoch(if version >= 4 { *epoch } else { -1 });
        match topics.iter_mut().find(|t| t.name.0.as_str() == tp.topic) {
            Some(t) => t.partitions.push(p),
            None => topics.push(
                ListOffsetsTopic::default()
                    .with_name(topic_name(&tp.topic))
                    .with_partitions(vec![p]),
            ),
        }
    }
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(topics);
    let resp: ListOffsetsResponse = conn.start_at(&req, version).await?.wait().await?;
    let mut out = BTreeMap::new();
    for t in resp.topics {
        for p in t.partitions {
            let tp = TopicPartition::new(t.name.0.as_str(), p.partition_index);
            check_code(p.error_code, || format!("offsets of {tp}"), None)?;
            out.insert(
                tp,
                ListedOffset {
                    offset: p.offset,
                    timestamp: p.timestamp,
                    leader_epoch: p.leader_epoch,
                },
            );
        }
    }
    if let Some((tp, _, _)) = parts.iter().find(|(tp, _, _)| !out.contains_key(tp)) {
        return Err(ClientError::Protocol {
            addr: conn.addr().to_string(),
            reason: format!("the ListOffsets response does not mention {tp}"),
        });
    }
    Ok(out)
}

/// A change refused with NOT_CONTROLLER did not happen (the broker was not, or could not
/// reach, the active controller, say during an election), so it is safe to send again to
/// the controller the refreshed metadata names: an error [`Cluster::retrying`] retries, as
/// Kafka's admin client does.
fn not_controller(code: i16, message: Option<&str>, what: &str) -> Result<(), ClientError> {
    match ResponseError::try_from_code(code) {
        Some(ResponseError::NotController) => Err(ClientError::kafka(
            ResponseError::NotController,
            what,
            message,
        )),
        _ => Ok(()),
    }
}
