//! Topic administration: create, delete, add partitions, auto-create. The active controller
//! decides and commits the records (a broker that is not it forwards the request to it, as
//! KRaft brokers do); each broker then opens or deletes its own replicas' logs as its
//! metadata shows them ([`Broker::sync_logs`]), and start-up repairs the directories if a
//! crash lands in between.

use super::Broker;
use super::controller::CallError;
use crate::cluster::{METADATA_TOPIC, MetadataError, TopicMeta, controller};
use crate::config;
use crate::group::OFFSETS_TOPIC;
use crate::log::LogError;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsTopic,
};
use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::{
    BrokerId, CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;

/// Kafka's longest topic name.
pub const TOPIC_NAME_MAX: usize = 249;

/// Why a topic operation failed, with the Kafka error it maps to.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error("topic '{0}' already exists")]
    Exists(String),
    #[error("topic '{0}' does not exist")]
    Unknown(String),
    #[error("{0}")]
    InvalidName(String),
    #[error("{0}")]
    InvalidPartitions(String),
    #[error("{0}")]
    InvalidReplicationFactor(String),
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    #[error("{0}")]
    InvalidConfig(String),
    #[error("topic deletion is disabled (delete.topic.enable=false)")]
    DeletionDisabled,
    #[error("{0}")]
    Storage(String),
    /// Any other refusal by the controller, with its Kafka error.
    #[error("{1}")]
    Controller(ResponseError, String),
}

impl TopicError {
    /// The Kafka error code.
    pub fn code(&self) -> ResponseError {
        match self {
            TopicError::Exists(_) => ResponseError::TopicAlreadyExists,
            TopicError::Unknown(_) => ResponseError::UnknownTopicOrPartition,
            TopicError::InvalidName(_) => ResponseError::InvalidTopicException,
            TopicError::InvalidPartitions(_) => ResponseError::InvalidPartitions,
            TopicError::InvalidReplicationFactor(_) => ResponseError::InvalidReplicationFactor,
            TopicError::InvalidReplicaAssignment(_) => ResponseError::InvalidReplicaAssignment,
            TopicError::InvalidConfig(_) => ResponseError::InvalidConfig,
            TopicError::DeletionDisabled => ResponseError::TopicDeletionDisabled,
            TopicError::Storage(_) => ResponseError::KafkaStorageError,
            TopicError::Controller(code, _) => *code,
        }
    }

    /// The error a controller answered for topic `name`, with its message (or, if it gave
    /// none, the error's name).
    pub fn from_code(code: ResponseError, name: &str, message: String) -> TopicError {
        let message = if message.is_empty() {
            format!("{code:?}")
        } else {
            message
        };
        match code {
            ResponseError::TopicAlreadyExists => TopicError::Exists(name.to_string()),
            ResponseError::UnknownTopicOrPartition => TopicError::Unknown(name.to_string()),
            ResponseError::InvalidTopicException => TopicError::InvalidName(message),
            ResponseError::InvalidPartitions => TopicError::InvalidPartitions(message),
            ResponseError::InvalidReplicationFactor => {
                TopicError::InvalidReplicationFactor(message)
            }
            ResponseError::InvalidReplicaAssignment => {
                TopicError::InvalidReplicaAssignment(message)
            }
            ResponseError::InvalidConfig => TopicError::InvalidConfig(message),
            ResponseError::TopicDeletionDisabled => TopicError::DeletionDisabled,
            other => TopicError::Controller(other, message),
        }
    }
}

impl From<controller::ControllerError> for TopicError {
    fn from(e: controller::ControllerError) -> Self {
        let name = match &e {
            controller::ControllerError::TopicAlreadyExists(n) => n.clone(),
            _ => String::new(),
        };
        match TopicError::from_code(e.code(), &name, e.to_string()) {
            TopicError::Unknown(_) => {
                TopicError::Controller(ResponseError::UnknownTopicOrPartition, e.to_string())
            }
            other => other,
        }
    }
}

impl From<super::BrokerError> for TopicError {
    fn from(e: super::BrokerError) -> Self {
        TopicError::Storage(e.to_string())
    }
}

impl From<CallError> for TopicError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Controller(e) => e.into(),
            other => TopicError::Controller(other.code(), other.to_string()),
        }
    }
}

impl From<MetadataError> for TopicError {
    fn from(e: MetadataError) -> Self {
        TopicError::Storage(e.to_string())
    }
}

impl From<LogError> for TopicError {
    fn from(e: LogError) -> Self {
        TopicError::Storage(e.to_string())
    }
}

/// Checks a topic name against Kafka's rules: 1 to 249 characters of `[a-zA-Z0-9._-]`, not
/// `.` or `..`, and not the metadata log's name.
pub fn validate_topic_name(name: &str) -> Result<(), TopicError> {
    let bad = |why: String| {
        Err(TopicError::InvalidName(format!(
            "invalid topic name '{name}': {why}"
        )))
    };
    if name.is_empty() {
        return bad("it is empty".into());
    }
    if name == "." || name == ".." {
        return bad("'.' and '..' are not allowed".into());
    }
    if name.len() > TOPIC_NAME_MAX {
        return bad(format!("longer than {TOPIC_NAME_MAX} characters"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return bad(format!("'{c}' is not one of [a-zA-Z0-9._-]"));
    }
    if name == METADATA_TOPIC {
        return bad("the name is reserved".into());
    }
    Ok(())
}

/// What to create.
#[derive(Debug, Clone, Default)]
pub struct NewTopic {
    pub name: String,
    /// -1 for `num.partitions`.
    pub partitions: i32,
    /// -1 for `default.replication.factor`.
    pub replication_factor: i16,
    /// Manual assignment: partition -> broker ids, the preferred leader first.
    pub assignments: BTreeMap<i32, Vec<i32>>,
    /// Topic-level config overrides.
    pub configs: BTreeMap<String, String>,
}

/// Creates a topic (or, with `validate_only`, checks that it could be created). The checks
/// that need no cluster state are made here; the active controller places the replicas and
/// writes the records. `forwarded` marks a request that reached this node on its controller
/// listener: it is never forwarded again.
pub async fn create_topic(
    broker: &Broker,
    t: NewTopic,
    validate_only: bool,
    forwarded: bool,
) -> Result<TopicMeta, TopicError> {
    validate_topic_name(&t.name)?;
    if t.name == OFFSETS_TOPIC && !forwarded {
        return Err(TopicError::InvalidName(format!(
            "{OFFSETS_TOPIC} is internal: the broker creates it when a group first needs it"
        )));
    }
    let t = resolve_shape(broker, t)?;
    // `__consumer_offsets` (forwarded by the broker that needs it) is compacted, which
    // clients' topics cannot be yet: its other settings are checked as any topic's.
    let mut checked = t.configs.clone();
    if t.name == OFFSETS_TOPIC {
        checked.retain(|k, v| !(k == "cleanup.policy" && v == "compact"));
    }
    config::validate_topic_configs(&checked)
        .map_err(|e| TopicError::InvalidConfig(e.to_string()))?;
    create_resolved(broker, t, validate_only, forwarded).await
}

/// Creates `__consumer_offsets` if it does not exist, with Kafka's settings for it
/// (`cleanup.policy=compact`, `offsets.topic.num.partitions`, `offsets.topic.segment.bytes`,
/// `offsets.topic.replication.factor` capped at the live brokers), and `write.caching=false`.
pub async fn ensure_offsets_topic(broker: &Broker) -> Result<(), TopicError> {
    if broker.metadata.state().topics.contains_key(OFFSETS_TOPIC) {
        return Ok(());
    }
    let cfg = &broker.config;
    let configs = BTreeMap::from([
        ("cleanup.policy".to_string(), "compact".to_string()),
        // Group records are durable on every in-sync replica before they are answered,
        // whatever the broker's default: followers sync before they report their ends.
        ("write.caching".to_string(), "false".to_string()),
        (
            "segment.bytes".to_string(),
            cfg.offsets_topic_segment_bytes.to_string(),
        ),
    ]);
    let live = broker
        .metadata
        .state()
        .brokers
        .values()
        .filter(|b| b.is_active())
        .count()
        .max(1);
    let rf = cfg
        .offsets_topic_replication_factor
        .min(i16::try_from(live).unwrap_or(i16::MAX));
    let t = NewTopic {
        name: OFFSETS_TOPIC.to_string(),
        partitions: cfg.group.num_partitions,
        replication_factor: rf,
        configs,
        ..NewTopic::default()
    };
    match create_resolved(broker, t, false, false).await {
        Ok(_) | Err(TopicError::Exists(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Creates a topic whose name, shape and configs were checked: on this node if it is the
/// active controller, else by CreateTopics to the active controller; then waits until this
/// node's metadata has the topic and its logs here are open.
async fn create_resolved(
    broker: &Broker,
    t: NewTopic,
    validate_only: bool,
    forwarded: bool,
) -> Result<TopicMeta, TopicError> {
    if broker.controller.is_active(broker) {
        let topic = controller::NewTopic {
            name: t.name.clone(),
            topic_id: broker.metadata.new_topic_id(),
            partitions: t.partitions,
            replication_factor: t.replication_factor,
            assignments: t.assignments,
            configs: t.configs,
        };
        let mut results = broker
            .controller
            .create_topics(broker, &[topic], validate_only)
            .await?;
        let meta = results
            .pop()
            .ok_or_else(|| TopicError::Storage("the controller gave no answer".into()))??;
        if !validate_only {
            broker.sync_logs().await?;
            tracing::info!(topic = %meta.name, partitions = meta.partitions, "created topic");
        }
        return Ok(meta);
    }
    if forwarded {
        return Err(not_controller(broker));
    }
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(FORWARD_TIMEOUT_MS)
        .with_validate_only(validate_only)
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_string(t.name.clone())))
                .with_num_partitions(t.partitions)
                .with_replication_factor(t.replication_factor)
                .with_assignments(
                    t.assignments
                        .iter()
                        .map(|(p, brokers)| {
                            CreatableReplicaAssignment::default()
                                .with_partition_index(*p)
                                .with_broker_ids(brokers.iter().copied().map(BrokerId).collect())
                        })
                        .collect(),
                )
                .with_configs(
                    t.configs
                        .iter()
                        .map(|(k, v)| {
                            CreatableTopicConfig::default()
                                .with_name(StrBytes::from_string(k.clone()))
                                .with_value(Some(StrBytes::from_string(v.clone())))
                        })
                        .collect(),
                ),
        ]);
    let resp = broker
        .controller
        .send_remote(broker, &req, CREATE_TOPICS_VERSION)
        .await?;
    let r = forwarded_result(
        resp.topics,
        |r| {
            (
                r.error_code,
                r.error_message.as_ref().map(|m| m.to_string()),
            )
        },
        &t.name,
    )?;
    if validate_only {
        return Ok(TopicMeta {
            name: t.name,
            id: r.topic_id,
            partitions: r.num_partitions,
            replication_factor: r.replication_factor,
            configs: t.configs,
            parts: BTreeMap::new(),
        });
    }
    let meta = wait_for_topic(broker, &t.name, |m| m.id == r.topic_id).await;
    broker.sync_logs().await?;
    Ok(meta.unwrap_or(TopicMeta {
        name: t.name,
        id: r.topic_id,
        partitions: r.num_partitions,
        replication_factor: r.replication_factor,
        configs: t.configs,
        parts: BTreeMap::new(),
    }))
}

/// CreateTopics' version spoken between runnel nodes.
const CREATE_TOPICS_VERSION: i16 = 7;
/// DeleteTopics'.
const DELETE_TOPICS_VERSION: i16 = 6;
/// CreatePartitions'.
const CREATE_PARTITIONS_VERSION: i16 = 3;
/// How long a forwarded admin request may take at the controller.
const FORWARD_TIMEOUT_MS: i32 = 30_000;
/// How long a broker waits for its own metadata to show what the controller committed.
const CATCH_UP_MS: i64 = 5_000;

/// NOT_CONTROLLER, naming the controller this node knows of.
pub(super) fn not_controller(broker: &Broker) -> TopicError {
    let known = broker
        .metadata
        .controller_id()
        .map_or("none is known yet".to_string(), |id| {
            format!("it is node {id}")
        });
    TopicError::Controller(
        ResponseError::NotController,
        format!(
            "node {} is not the active controller ({known})",
            broker.config.node_id
        ),
    )
}

/// Waits (up to [`CATCH_UP_MS`]) until this node's metadata has topic `name` in a state
/// `ready` accepts; `None` if it does not within that time.
async fn wait_for_topic(
    broker: &Broker,
    name: &str,
    ready: impl Fn(&TopicMeta) -> bool,
) -> Option<TopicMeta> {
    let mut changes = broker.metadata.subscribe();
    let deadline = broker.env.clock.now_ms() + CATCH_UP_MS;
    loop {
        if let Some(t) = broker.metadata.state().topics.get(name)
            && ready(t)
        {
            return Some(t.clone());
        }
        let left = deadline - broker.env.clock.now_ms();
        if left <= 0 {
            return None;
        }
        let wait = std::time::Duration::from_millis(u64::try_from(left).unwrap_or(0));
        match tokio::time::timeout(wait, changes.changed()).await {
            Ok(Ok(())) => {}
            _ => return None,
        }
    }
}

/// Waits (up to [`CATCH_UP_MS`]) until this node's metadata no longer has topic `id`.
async fn wait_for_deletion(broker: &Broker, name: &str, id: uuid::Uuid) {
    let mut changes = broker.metadata.subscribe();
    let deadline = broker.env.clock.now_ms() + CATCH_UP_MS;
    while broker
        .metadata
        .state()
        .topics
        .get(name)
        .is_some_and(|t| t.id == id)
    {
        let left = deadline - broker.env.clock.now_ms();
        if left <= 0 {
            return;
        }
        let wait = std::time::Duration::from_millis(u64::try_from(left).unwrap_or(0));
        if !matches!(
            tokio::time::timeout(wait, changes.changed()).await,
            Ok(Ok(()))
        ) {
            return;
        }
    }
}

/// A request's shape with the broker's defaults applied: `num.partitions` and
/// `default.replication.factor` for -1; an explicit assignment instead of both.
fn resolve_shape(broker: &Broker, mut t: NewTopic) -> Result<NewTopic, TopicError> {
    let cfg = &broker.config;
    if !t.assignments.is_empty() {
        if t.partitions != -1 || t.replication_factor != -1 {
            return Err(TopicError::InvalidReplicaAssignment(
                "give either a replica assignment or a partition count and replication factor"
                    .into(),
            ));
        }
        return Ok(t);
    }
    if t.partitions == -1 {
        t.partitions = cfg.num_partitions;
    }
    if t.partitions < 1 {
        return Err(TopicError::InvalidPartitions(format!(
            "number of partitions must be at least 1, got {}",
            t.partitions
        )));
    }
    if t.replication_factor == -1 {
        t.replication_factor = cfg.default_replication_factor;
    }
    if t.replication_factor < 1 {
        return Err(TopicError::InvalidReplicationFactor(format!(
            "replication factor must be at least 1, got {}",
            t.replication_factor
        )));
    }
    Ok(t)
}

/// Deletes a topic and its data.
pub async fn delete_topic(
    broker: &Broker,
    name: &str,
    forwarded: bool,
) -> Result<TopicMeta, TopicError> {
    if !broker.config.delete_topic_enable {
        return Err(TopicError::DeletionDisabled);
    }
    if name == OFFSETS_TOPIC {
        return Err(TopicError::InvalidName(format!(
            "{OFFSETS_TOPIC} is internal and cannot be deleted"
        )));
    }
    let meta = if broker.controller.is_active(broker) {
        broker.controller.delete_topic(broker, name).await?
    } else if forwarded {
        return Err(not_controller(broker));
    } else {
        let known = broker.metadata.state().topics.get(name).cloned();
        let req = DeleteTopicsRequest::default()
            .with_timeout_ms(FORWARD_TIMEOUT_MS)
            .with_topics(vec![
                DeleteTopicState::default()
                    .with_name(Some(TopicName(StrBytes::from_string(name.to_string())))),
            ]);
        let resp = broker
            .controller
            .send_remote(broker, &req, DELETE_TOPICS_VERSION)
            .await?;
        let r = forwarded_result(
            resp.responses,
            |r| {
                (
                    r.error_code,
                    r.error_message.as_ref().map(|m| m.to_string()),
                )
            },
            name,
        )?;
        wait_for_deletion(broker, name, r.topic_id).await;
        known.unwrap_or(TopicMeta {
            name: name.to_string(),
            id: r.topic_id,
            partitions: 0,
            replication_factor: 0,
            configs: BTreeMap::new(),
            parts: BTreeMap::new(),
        })
    };
    broker.sync_logs().await?;
    tracing::info!(topic = %name, "deleted topic");
    Ok(meta)
}

/// Grows a topic to `count` partitions (placed by the controller, or as `assignments` says:
/// one broker list per new partition).
pub async fn create_partitions(
    broker: &Broker,
    name: &str,
    count: i32,
    assignments: &[Vec<i32>],
    validate_only: bool,
    forwarded: bool,
) -> Result<TopicMeta, TopicError> {
    if broker.controller.is_active(broker) {
        let grown = broker
            .controller
            .create_partitions(broker, name, count, assignments, validate_only)
            .await?;
        if !validate_only {
            broker.sync_logs().await?;
        }
        return Ok(grown);
    }
    if forwarded {
        return Err(not_controller(broker));
    }
    let req = CreatePartitionsRequest::default()
        .with_timeout_ms(FORWARD_TIMEOUT_MS)
        .with_validate_only(validate_only)
        .with_topics(vec![
            CreatePartitionsTopic::default()
                .with_name(TopicName(StrBytes::from_string(name.to_string())))
                .with_count(count)
                .with_assignments((!assignments.is_empty()).then(|| {
                    assignments
                        .iter()
                        .map(|a| {
                            CreatePartitionsAssignment::default()
                                .with_broker_ids(a.iter().copied().map(BrokerId).collect())
                        })
                        .collect()
                })),
        ]);
    let resp = broker
        .controller
        .send_remote(broker, &req, CREATE_PARTITIONS_VERSION)
        .await?;
    forwarded_result(
        resp.results,
        |r| {
            (
                r.error_code,
                r.error_message.as_ref().map(|m| m.to_string()),
            )
        },
        name,
    )?;
    let grown = if validate_only {
        broker
            .metadata
            .state()
            .topics
            .get(name)
            .cloned()
            .map(|mut t| {
                t.partitions = count;
                t
            })
    } else {
        let grown = wait_for_topic(broker, name, |t| t.partitions >= count).await;
        broker.sync_logs().await?;
        grown
    };
    grown.ok_or_else(|| TopicError::Unknown(name.to_string()))
}

/// Auto-creates `name` if it is missing and `auto.create.topics.enable` is on. Returns the
/// topic if it exists afterwards.
pub async fn ensure_topic(
    broker: &Broker,
    name: &str,
    allow_auto_create: bool,
) -> Result<Option<TopicMeta>, TopicError> {
    if let Some(t) = broker.metadata.state().topics.get(name) {
        return Ok(Some(t.clone()));
    }
    if !(allow_auto_create && broker.config.auto_create_topics_enable) {
        return Ok(None);
    }
    validate_topic_name(name)?;
    let t = NewTopic {
        name: name.to_string(),
        partitions: -1,
        replication_factor: -1,
        ..NewTopic::default()
    };
    match create_topic(broker, t, false, false).await {
        Ok(meta) => Ok(Some(meta)),
        // Another request created it meanwhile.
        Err(TopicError::Exists(_)) => Ok(broker.metadata.state().topics.get(name).cloned()),
        Err(e) => Err(e),
    }
}

/// The one result the active controller sent back for a forwarded topic request, or the
/// error it carries (`code_of` gives its error code and message).
fn forwarded_result<T>(
    results: Vec<T>,
    code_of: impl Fn(&T) -> (i16, Option<String>),
    name: &str,
) -> Result<T, TopicError> {
    let r = results
        .into_iter()
        .next()
        .ok_or_else(|| TopicError::Storage("the controller answered no topic".into()))?;
    let (code, message) = code_of(&r);
    match ResponseError::try_from_code(code) {
        Some(code) => Err(TopicError::from_code(
            code,
            name,
            message.unwrap_or_default(),
        )),
        None => Ok(r),
    }
}
