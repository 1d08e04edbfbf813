//! The broker's configuration, with Apache Kafka's key names, types, defaults and meaning.
//!
//! - `keys`: the registry, one table of every key (and the Kafka keys runnel ignores).
//! - [`value`]: Kafka's value types: parsing and checking a setting's text.
//! - `properties`: the Java properties format of `server.properties`, and `--override`.
//! - `listener`: `PLAINTEXT://HOST:PORT` listeners and which one runnel serves.
//! - [`broker`]: [`BrokerConfig`]: loading, and a topic's effective [`LogConfig`].
//! - [`describe`]: DescribeConfigs entries for the broker and for a topic.
//!
//! Where runnel differs from Kafka, on purpose:
//!
//! - One data directory: `log.dirs` with more than one entry is an error.
//! - One PLAINTEXT listener for clients; a controller listener is skipped with a warning; TLS,
//!   SASL and other listener names are errors. The advertised address defaults to the listen
//!   address, and a wildcard listen address (`PLAINTEXT://:9092`, `0.0.0.0`) with nothing
//!   advertised is an error asking for `advertised.listeners` (or `--advertised`), rather than
//!   a guess that would send remote clients to the wrong host.
//! - `log.flush.scheduler.interval.ms` defaults to 1000 (Kafka: never), so `flush.ms` is
//!   honoured; `log.flush.interval.ms` defaults to never by itself instead of falling back to
//!   the scheduler interval as Kafka's does.
//! - `cleanup.policy=compact`, `message.timestamp.type=LogAppendTime` and any
//!   `compression.type` but `producer` are refused, with the reason.
//! - `write.caching` (Redpanda's name) is runnel's durability switch, off by default.
//!
//! [`LogConfig`]: crate::log::LogConfig

pub mod broker;
pub mod describe;
pub mod error;
pub(crate) mod keys;
pub(crate) mod listener;
pub(crate) mod properties;
pub mod value;

pub use broker::{
    BrokerConfig, CliOverrides, cluster_wide_only, dynamic_broker_topic_key, topic_list_default,
    validate_dynamic_broker_config, validate_topic_config, validate_topic_configs,
};
pub use describe::{ConfigEntry, ConfigSource, ConfigSynonym};
pub use error::{ConfigError, Scope};
pub use value::ConfigType;
