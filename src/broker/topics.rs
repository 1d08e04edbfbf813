//! Topic administration: create, delete, add partitions, auto-create. The metadata record is
//! appended (and synced) first, then the partition directories follow; start-up repairs the
//! directories if a crash lands in between.

use super::Broker;
use crate::cluster::{ClusterState, METADATA_TOPIC, MetadataError, MetadataRecord, TopicMeta};
use crate::config;
use crate::group::OFFSETS_TOPIC;
use crate::log::{LogError, TopicPartition};
use kafka_protocol::error::ResponseError;
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
    /// Manual assignment: partition -> broker ids (only this broker exists).
    pub assignments: BTreeMap<i32, Vec<i32>>,
    /// Topic-level config overrides.
    pub configs: BTreeMap<String, String>,
}

/// Creates a topic (or, with `validate_only`, checks that it could be created).
pub async fn create_topic(
    broker: &Broker,
    t: NewTopic,
    validate_only: bool,
) -> Result<TopicMeta, TopicError> {
    validate_topic_name(&t.name)?;
    if t.name == OFFSETS_TOPIC {
        return Err(TopicError::InvalidName(format!(
            "{OFFSETS_TOPIC} is internal: the broker creates it when a group first needs it"
        )));
    }
    let (partitions, rf) = resolve_shape(broker, &t)?;
    config::validate_topic_configs(&t.configs)
        .map_err(|e| TopicError::InvalidConfig(e.to_string()))?;
    create_checked(broker, t, partitions, rf, validate_only).await
}

/// Creates `__consumer_offsets` if it does not exist, with Kafka's settings for it
/// (`cleanup.policy=compact`, `offsets.topic.num.partitions`, `offsets.topic.segment.bytes`,
/// `offsets.topic.replication.factor` capped at the live brokers), and loads every partition of
/// it into the group coordinator.
pub async fn ensure_offsets_topic(broker: &Broker) -> Result<(), TopicError> {
    if !broker.metadata.state().topics.contains_key(OFFSETS_TOPIC) {
        let cfg = &broker.config;
        let configs = BTreeMap::from([
            ("cleanup.policy".to_string(), "compact".to_string()),
            (
                "segment.bytes".to_string(),
                cfg.offsets_topic_segment_bytes.to_string(),
            ),
        ]);
        // One live broker: the replication factor is capped at 1.
        let rf = cfg.offsets_topic_replication_factor.min(1);
        let t = NewTopic {
            name: OFFSETS_TOPIC.to_string(),
            partitions: cfg.group.num_partitions,
            replication_factor: rf,
            configs,
            ..NewTopic::default()
        };
        match create_checked(broker, t, cfg.group.num_partitions, rf, false).await {
            Ok(_) | Err(TopicError::Exists(_)) => {}
            Err(e) => return Err(e),
        }
    }
    let n = broker
        .metadata
        .state()
        .topics
        .get(OFFSETS_TOPIC)
        .map_or(0, |t| t.partitions);
    for p in 0..n {
        if !broker.groups.serves(p) {
            broker.groups.load(p);
        }
    }
    Ok(())
}

/// Creates a topic whose name, shape and configs were checked.
async fn create_checked(
    broker: &Broker,
    t: NewTopic,
    partitions: i32,
    rf: i16,
    validate_only: bool,
) -> Result<TopicMeta, TopicError> {
    let _admin = broker.admin.lock().await;
    let id = broker.metadata.new_topic_id();
    let meta = TopicMeta {
        name: t.name.clone(),
        id,
        partitions,
        replication_factor: rf,
        configs: t.configs.clone(),
        parts: BTreeMap::new(),
    };
    let record = MetadataRecord::TopicCreated {
        name: t.name.clone(),
        topic_id: *id.as_bytes(),
        partitions,
        replication_factor: rf,
        configs: t.configs.clone(),
    };
    broker
        .metadata
        .update(|s: &ClusterState| {
            if s.topics.contains_key(&t.name) {
                return Err(TopicError::Exists(t.name.clone()));
            }
            Ok::<_, TopicError>((if validate_only { vec![] } else { vec![record] }, ()))
        })
        .await?;
    if !validate_only {
        open_partitions(broker, &meta, 0).await?;
        tracing::info!(topic = %meta.name, partitions, "created topic");
    }
    Ok(meta)
}

/// The partition count and replication factor a request asks for, defaults applied.
fn resolve_shape(broker: &Broker, t: &NewTopic) -> Result<(i32, i16), TopicError> {
    let cfg = &broker.config;
    let node = cfg.node_id;
    if !t.assignments.is_empty() {
        if t.partitions != -1 || t.replication_factor != -1 {
            return Err(TopicError::InvalidReplicaAssignment(
                "give either a replica assignment or a partition count and replication factor"
                    .into(),
            ));
        }
        let n = t.assignments.len() as i32;
        for (p, brokers) in &t.assignments {
            if *p < 0 || *p >= n {
                return Err(TopicError::InvalidReplicaAssignment(format!(
                    "partitions must be numbered 0..{n}"
                )));
            }
            if brokers.is_empty() || brokers.iter().any(|b| *b != node) {
                return Err(TopicError::InvalidReplicaAssignment(format!(
                    "partition {p} names brokers {brokers:?}; this cluster has only broker {node}"
                )));
            }
        }
        let rf = t.assignments.values().map(Vec::len).max().unwrap_or(1);
        if rf > 1 {
            return Err(TopicError::InvalidReplicationFactor(format!(
                "replication factor {rf} is larger than the 1 available broker"
            )));
        }
        return Ok((n, 1));
    }
    let partitions = if t.partitions == -1 {
        cfg.num_partitions
    } else {
        t.partitions
    };
    if partitions < 1 {
        return Err(TopicError::InvalidPartitions(format!(
            "number of partitions must be at least 1, got {partitions}"
        )));
    }
    let rf = if t.replication_factor == -1 {
        cfg.default_replication_factor
    } else {
        t.replication_factor
    };
    if rf < 1 {
        return Err(TopicError::InvalidReplicationFactor(format!(
            "replication factor must be at least 1, got {rf}"
        )));
    }
    if rf > 1 {
        return Err(TopicError::InvalidReplicationFactor(format!(
            "replication factor {rf} is larger than the 1 available broker"
        )));
    }
    Ok((partitions, rf))
}

/// Opens (creating) the partition logs `from..` of a topic.
async fn open_partitions(broker: &Broker, meta: &TopicMeta, from: i32) -> Result<(), TopicError> {
    let cfg = broker.config.topic_log_config(&meta.configs);
    for p in from..meta.partitions {
        broker
            .logs
            .open_log(&TopicPartition::new(meta.name.clone(), p), cfg.clone())
            .await?;
    }
    Ok(())
}

/// Deletes a topic and its data.
pub async fn delete_topic(broker: &Broker, name: &str) -> Result<TopicMeta, TopicError> {
    if !broker.config.delete_topic_enable {
        return Err(TopicError::DeletionDisabled);
    }
    if name == OFFSETS_TOPIC {
        return Err(TopicError::InvalidName(format!(
            "{OFFSETS_TOPIC} is internal and cannot be deleted"
        )));
    }
    let _admin = broker.admin.lock().await;
    let (_, meta) = broker
        .metadata
        .update(|s: &ClusterState| {
            let t = s
                .topics
                .get(name)
                .ok_or_else(|| TopicError::Unknown(name.to_string()))?;
            let record = MetadataRecord::TopicDeleted {
                name: name.to_string(),
                topic_id: *t.id.as_bytes(),
            };
            Ok::<_, TopicError>((vec![record], t.clone()))
        })
        .await?;
    for p in 0..meta.partitions {
        broker
            .logs
            .delete_log(&TopicPartition::new(name, p))
            .await?;
    }
    tracing::info!(topic = %name, "deleted topic");
    Ok(meta)
}

/// Grows a topic to `count` partitions.
pub async fn create_partitions(
    broker: &Broker,
    name: &str,
    count: i32,
    validate_only: bool,
) -> Result<TopicMeta, TopicError> {
    let _admin = broker.admin.lock().await;
    let (_, grown_from) = broker
        .metadata
        .update(|s: &ClusterState| {
            let t = s
                .topics
                .get(name)
                .ok_or_else(|| TopicError::Unknown(name.to_string()))?;
            if count <= t.partitions {
                let why = if count == t.partitions {
                    format!("topic already has {count} partitions")
                } else {
                    format!(
                        "topic has {} partitions; the count can only grow, not to {count}",
                        t.partitions
                    )
                };
                return Err(TopicError::InvalidPartitions(why));
            }
            let mut grown = t.clone();
            grown.partitions = count;
            let records = if validate_only {
                vec![]
            } else {
                vec![MetadataRecord::PartitionsCreated {
                    name: name.to_string(),
                    partitions: count,
                }]
            };
            Ok::<_, TopicError>((records, (t.partitions, grown)))
        })
        .await?;
    let (old, grown) = grown_from;
    if !validate_only {
        open_partitions(broker, &grown, old).await?;
    }
    Ok(grown)
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
    match create_topic(broker, t, false).await {
        Ok(meta) => Ok(Some(meta)),
        // Another request created it meanwhile.
        Err(TopicError::Exists(_)) => Ok(broker.metadata.state().topics.get(name).cloned()),
        Err(e) => Err(e),
    }
}
