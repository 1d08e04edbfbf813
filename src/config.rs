//! PLACEHOLDER until the config registry lands (branch `config`): just the shape the broker
//! uses.

use crate::log::LogConfig;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// A config problem, naming the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("unknown configuration key '{key}'")]
    UnknownKey { key: String },
    #[error("invalid value '{value}' for '{key}': {reason}")]
    BadValue {
        key: String,
        value: String,
        reason: String,
    },
}

/// Where a config value came from (Kafka's ConfigSource codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    DynamicTopic = 1,
    StaticBroker = 4,
    Default = 5,
}

/// Kafka's config types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Short = 4,
    Long = 5,
    Double = 6,
    List = 7,
}

/// A synonym of a config entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSynonym {
    pub name: String,
    pub value: Option<String>,
    pub source: ConfigSource,
}

/// One described config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    pub value: Option<String>,
    pub source: ConfigSource,
    pub read_only: bool,
    pub sensitive: bool,
    pub config_type: ConfigType,
    pub documentation: String,
    pub synonyms: Vec<ConfigSynonym>,
}

/// The broker's configuration.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub node_id: i32,
    pub log_dir: PathBuf,
    pub listen: String,
    pub advertised: String,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
    pub auto_create_topics_enable: bool,
    pub delete_topic_enable: bool,
    pub socket_request_max_bytes: u64,
    pub retention_check_interval_ms: u64,
    pub flush_scheduler_interval_ms: u64,
    pub offset_checkpoint_interval_ms: u64,
    pub log_defaults: LogConfig,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            node_id: 0,
            log_dir: PathBuf::from("./runnel-data"),
            listen: "127.0.0.1:9092".into(),
            advertised: "127.0.0.1:9092".into(),
            num_partitions: 1,
            default_replication_factor: 1,
            auto_create_topics_enable: true,
            delete_topic_enable: true,
            socket_request_max_bytes: 104_857_600,
            retention_check_interval_ms: 300_000,
            flush_scheduler_interval_ms: 1000,
            offset_checkpoint_interval_ms: 60_000,
            log_defaults: LogConfig::default(),
        }
    }
}

impl BrokerConfig {
    pub fn topic_log_config(&self, _overrides: &BTreeMap<String, String>) -> LogConfig {
        self.log_defaults.clone()
    }
    pub fn describe(&self, _keys: Option<&[String]>) -> Vec<ConfigEntry> {
        Vec::new()
    }
    pub fn describe_topic(
        &self,
        _o: &BTreeMap<String, String>,
        _keys: Option<&[String]>,
    ) -> Vec<ConfigEntry> {
        Vec::new()
    }
}

pub fn validate_topic_configs(_c: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    Ok(())
}
