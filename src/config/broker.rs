//! The broker's configuration: loading it from `server.properties`, overrides and flags, and
//! resolving a topic's effective settings from the broker's defaults and its overrides.

use super::error::{ConfigError, Scope};
use super::keys::{self, Key, Sets};
use super::listener::{self, Listener};
use super::properties;
use super::value::{self, ConfigType, Value, split_list};
use crate::log::LogConfig;
use crate::log::manager::BackgroundIntervals;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Checked settings by key name.
pub(super) type Settings = BTreeMap<&'static str, Value>;

/// The command-line flags that set what `listeners`, `advertised.listeners` and `log.dirs`
/// set. They win over the file and over `--override`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CliOverrides {
    /// `--listen HOST:PORT`: where to listen for clients (`listeners=PLAINTEXT://HOST:PORT`).
    pub listen: Option<String>,
    /// `--advertised HOST:PORT`: the address clients are told to connect to
    /// (`advertised.listeners=PLAINTEXT://HOST:PORT`).
    pub advertised: Option<String>,
    /// `--data-dir DIR`: the data directory (`log.dirs=DIR`).
    pub data_dir: Option<PathBuf>,
}

impl CliOverrides {
    /// The settings the flags stand for.
    fn settings(&self) -> Result<Vec<(&'static str, String)>, ConfigError> {
        let mut out = Vec::new();
        if let Some(listen) = &self.listen {
            out.push(("listeners", host_port_flag("listen", listen)?));
        }
        if let Some(advertised) = &self.advertised {
            out.push((
                "advertised.listeners",
                host_port_flag("advertised", advertised)?,
            ));
        }
        if let Some(dir) = &self.data_dir {
            out.push(("log.dirs", data_dir_flag(dir)?));
        }
        Ok(out)
    }
}

/// `HOST:PORT` as a PLAINTEXT listener.
fn host_port_flag(flag: &'static str, value: &str) -> Result<String, ConfigError> {
    let url = format!("PLAINTEXT://{value}");
    match listener::parse(&url) {
        Ok(_) => Ok(url),
        Err(_) => Err(ConfigError::BadFlag {
            flag,
            value: value.to_owned(),
            reason: "expected HOST:PORT".to_owned(),
        }),
    }
}

fn data_dir_flag(dir: &std::path::Path) -> Result<String, ConfigError> {
    let bad = |reason: &str| ConfigError::BadFlag {
        flag: "data-dir",
        value: dir.display().to_string(),
        reason: reason.to_owned(),
    };
    let text = dir.to_str().ok_or_else(|| bad("not valid UTF-8"))?;
    // log.dirs is a comma-separated list, so a comma cannot be part of one directory's name.
    if text.contains(',') {
        return Err(bad("a comma cannot be part of the data directory's name"));
    }
    Ok(text.to_owned())
}

/// `process.roles`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    /// Serves clients and hosts partitions.
    pub broker: bool,
    /// Votes in the metadata quorum.
    pub controller: bool,
}

/// The metadata quorum's settings, with Kafka's names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumSettings {
    /// `controller.quorum.voters`: id to controller listener `host:port`. Empty: this node
    /// alone.
    pub voters: BTreeMap<i32, String>,
    /// `controller.quorum.election.timeout.ms`.
    pub election_timeout_ms: i64,
    /// `controller.quorum.election.backoff.max.ms`.
    pub election_backoff_max_ms: i64,
    /// `controller.quorum.fetch.timeout.ms`.
    pub fetch_timeout_ms: i64,
    /// `controller.quorum.request.timeout.ms`.
    pub request_timeout_ms: i64,
    /// `controller.quorum.retry.backoff.ms`.
    pub retry_backoff_ms: i64,
    /// `metadata.log.max.record.bytes.between.snapshots`.
    pub snapshot_max_bytes: i64,
    /// `metadata.log.max.snapshot.interval.ms`.
    pub snapshot_interval_ms: i64,
}

/// The broker's configuration, resolved. Built by [`BrokerConfig::load`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerConfig {
    /// This broker's id (`node.id`, or `broker.id`).
    pub node_id: i32,
    /// `process.roles`.
    pub roles: Roles,
    /// The controller listener's `host:port`, if this node has one (`listeners`,
    /// `controller.listener.names`).
    pub controller_listen: Option<String>,
    /// The metadata quorum (`controller.quorum.*`).
    pub quorum: QuorumSettings,
    /// `cluster.id`, if pinned.
    pub cluster_id: Option<String>,
    /// `broker.heartbeat.interval.ms`.
    pub broker_heartbeat_interval_ms: u64,
    /// `broker.session.timeout.ms`.
    pub broker_session_timeout_ms: u64,
    /// `replica.lag.time.max.ms`.
    pub replica_lag_time_max_ms: u64,
    /// `replica.fetch.wait.max.ms`.
    pub replica_fetch_wait_max_ms: u64,
    /// `replica.fetch.max.bytes`.
    pub replica_fetch_max_bytes: i32,
    /// `replica.fetch.response.max.bytes`.
    pub replica_fetch_response_max_bytes: i32,
    /// `replica.fetch.backoff.ms`.
    pub replica_fetch_backoff_ms: u64,
    /// `replica.socket.timeout.ms`.
    pub replica_socket_timeout_ms: u64,
    /// `offsets.commit.timeout.ms`.
    pub offsets_commit_timeout_ms: u64,
    /// `auto.leader.rebalance.enable`.
    pub auto_leader_rebalance_enable: bool,
    /// `leader.imbalance.check.interval.seconds`.
    pub leader_imbalance_check_interval_seconds: u64,
    /// `leader.imbalance.per.broker.percentage`.
    pub leader_imbalance_per_broker_percentage: u32,
    /// The data directory (`log.dirs`, or `log.dir`).
    pub log_dir: PathBuf,
    /// `host:port` to listen on for clients (from `listeners`); `0.0.0.0` for every interface.
    pub listen: String,
    /// `host:port` clients are told to connect to (from `advertised.listeners`, else
    /// `listen`); never a wildcard. Port 0 here (listening on port 0 with nothing advertised)
    /// means the port the broker is bound to.
    pub advertised: String,
    /// Partitions of a topic created without a count (`num.partitions`).
    pub num_partitions: i32,
    /// Replicas of a topic created without a factor (`default.replication.factor`).
    pub default_replication_factor: i16,
    /// Whether requests for an unknown topic create it (`auto.create.topics.enable`).
    pub auto_create_topics_enable: bool,
    /// Whether DeleteTopics is allowed (`delete.topic.enable`).
    pub delete_topic_enable: bool,
    /// The largest request accepted, in bytes (`socket.request.max.bytes`).
    pub socket_request_max_bytes: u32,
    /// `broker.rack`, registered with the controller and shown in Metadata.
    pub rack: Option<String>,
    /// The most live client connections (`max.connections`); at the limit the broker stops
    /// accepting until one closes (KIP-402).
    pub max_connections: u32,
    /// The most live connections from one IP address (`max.connections.per.ip`), beyond
    /// which a new one is closed at once; `max.connections.per.ip.overrides` sets it per host.
    pub max_connections_per_ip: u32,
    /// Per-address limits from `max.connections.per.ip.overrides` (`host:count,...`).
    pub max_connections_per_ip_overrides: BTreeMap<String, u32>,
    /// A connection with no request for this long is closed (`connections.max.idle.ms`).
    pub connections_max_idle_ms: u64,
    /// How often retention runs (`log.retention.check.interval.ms`).
    pub retention_check_interval_ms: u64,
    /// How often `flush.ms` is checked (`log.flush.scheduler.interval.ms`).
    pub flush_scheduler_interval_ms: u64,
    /// How often recovery points are checkpointed (`log.flush.offset.checkpoint.interval.ms`).
    pub offset_checkpoint_interval_ms: u64,
    /// How often log start offsets are checkpointed
    /// (`log.flush.start.offset.checkpoint.interval.ms`).
    pub start_offset_checkpoint_interval_ms: u64,
    /// How long an idle producer id is remembered (`producer.id.expiration.ms`).
    pub producer_id_expiration_ms: u64,
    /// The group coordinator's settings (`group.*`, `offsets.*`, `offset.metadata.max.bytes`).
    pub group: crate::group::Config,
    /// `offsets.topic.replication.factor`.
    pub offsets_topic_replication_factor: i16,
    /// `offsets.topic.segment.bytes`.
    pub offsets_topic_segment_bytes: i32,
    /// The log settings of a topic without overrides: the broker-level defaults.
    pub log_defaults: LogConfig,
    /// The keys set explicitly (file, overrides, flags), parsed and checked.
    pub(super) explicit: Settings,
    /// Every topic-level key's broker-level default (synonyms resolved, hours made ms).
    pub(super) topic_defaults: Settings,
    /// The Kafka keys set that runnel accepts with no effect, as given.
    pub(super) ignored: BTreeMap<String, String>,
    /// The Kafka keys accepted with no effect set dynamically: cluster-wide, then this
    /// broker's own, as given (see [`inert_dynamic`]).
    pub(super) dynamic_ignored: (BTreeMap<String, String>, BTreeMap<String, String>),
    /// Dynamic cluster-wide defaults in effect (see [`BrokerConfig::with_dynamic`]).
    pub(super) dynamic_default: Settings,
    /// This broker's own dynamic configs in effect, over the cluster-wide ones.
    pub(super) dynamic_broker: Settings,
}

/// The broker settings (not topics' defaults) that runnel changes while it runs, as Kafka
/// does: the client listener reads its connection limits at each accept, and the log manager
/// `producer.id.expiration.ms` at each expiry check.
const LIVE_BROKER_SETTINGS: [&str; 4] = [
    "max.connections",
    "max.connections.per.ip",
    "max.connections.per.ip.overrides",
    "producer.id.expiration.ms",
];

/// The broker key `name` if runnel changes it while it runs: one Kafka calls dynamic
/// (per-broker or cluster-wide) that sets topics' default, so it takes effect as topic
/// configs do (the next retention check, roll or append), or a connection limit
/// ([`LIVE_BROKER_SETTINGS`]). `unclean.leader.election.enable` is one too, but only
/// cluster-wide: the controller reads it (see [`cluster_wide_only`]). Otherwise why not.
pub(crate) fn dynamic_broker_key(name: &str) -> Result<&'static Key, String> {
    let Some(key) = keys::broker_key(name) else {
        return Err(match keys::kafka_update_mode(name) {
            Some("read-only") => format!(
                "{name} is read-only: Kafka changes it only with a restart (server.properties)"
            ),
            Some(_) if keys::inert_broker_keys().any(|k| k.name == name) => format!(
                "{name} is a password: runnel takes it (with no effect) in server.properties \
                 only, for Kafka encrypts dynamic passwords with a secret runnel does not have"
            ),
            Some(_) => format!("runnel does not support {name} yet"),
            None => format!("{name} is not a broker config"),
        });
    };
    let mode = keys::kafka_update_mode(name).unwrap_or("read-only");
    if mode == "read-only" {
        return Err(format!(
            "{name} is read-only: Kafka changes it only with a restart (server.properties)"
        ));
    }
    match key.sets {
        Sets::Broker(b) if !LIVE_BROKER_SETTINGS.contains(&b) => Err(format!(
            "runnel cannot change {name} while it runs yet: set it in server.properties (or \
             with --override) and restart the broker"
        )),
        Sets::Topic(_) | Sets::Broker(_) => Ok(key),
    }
}

/// Why dynamic broker key `name` may not be set for one broker, if it may be set only as the
/// cluster-wide default: `unclean.leader.election.enable`, which the active controller reads
/// (a topic's override, else the cluster-wide dynamic default, else its own static config).
pub fn cluster_wide_only(name: &str) -> Option<String> {
    (keys::broker_key(name)?.sets == Sets::Topic("unclean.leader.election.enable")).then(|| {
        format!(
            "{name} is read by the controller, so runnel takes it only as the cluster-wide \
             default (--entity-default), or as a topic config"
        )
    })
}

/// The topic key whose default dynamic broker key `name` sets, if runnel changes it at run
/// time.
pub fn dynamic_broker_topic_key(name: &str) -> Option<&'static str> {
    match dynamic_broker_key(name).ok()?.sets {
        Sets::Topic(t) => Some(t),
        Sets::Broker(_) => None,
    }
}

/// Checks a dynamic broker config as AlterConfigs on a BROKER resource must: a key runnel
/// changes at run time ([`dynamic_broker_key`]) with a value of its type and range, or a
/// Kafka-dynamic key runnel accepts with no effect ([`inert_dynamic`]).
pub fn validate_dynamic_broker_config(name: &str, text: &str) -> Result<(), ConfigError> {
    if let Some(checked) = inert_dynamic(name, text) {
        return checked;
    }
    dynamic_value(name, text).map(|_| ())
}

/// Whether AlterConfigs may set broker key `name` (DescribeConfigs' read-only flag is the
/// opposite; its tests check that it is).
#[cfg(test)]
pub(crate) fn dynamic_broker_config_allowed(name: &str) -> bool {
    dynamic_broker_key(name).is_ok() || inert_dynamic_key(name).is_some()
}

/// Whether inert key `key` (one runnel accepts with no effect) is taken as a dynamic config
/// too: Kafka lets it change at run time (per broker or cluster-wide), and it is not a
/// password (Kafka encrypts dynamic passwords with a secret runnel does not have). Stored and
/// described, still with no effect.
pub(crate) fn inert_key_is_dynamic(key: &keys::InertKey) -> bool {
    key.kafka_dynamic && key.config_type != ConfigType::Password
}

/// The inert key `name`, if [`inert_key_is_dynamic`].
fn inert_dynamic_key(name: &str) -> Option<keys::InertKey> {
    keys::inert_broker_keys()
        .find(|k| k.name == name)
        .filter(inert_key_is_dynamic)
}

/// For a key [`inert_dynamic_key`] takes, whether `text` is a value of its Kafka type (and
/// off, for one accepted only when off); None for any other key.
fn inert_dynamic(name: &str, text: &str) -> Option<Result<(), ConfigError>> {
    let key = inert_dynamic_key(name)?;
    let t = text.trim();
    let bad = |reason: String| ConfigError::BadValue {
        key: name.to_owned(),
        value: t.to_owned(),
        reason,
    };
    if let Some((off, why)) = keys::only_off(name) {
        return Some(if t.eq_ignore_ascii_case(off) {
            Ok(())
        } else {
            Err(bad(format!("{why}; only {off:?} is accepted")))
        });
    }
    let ok = match key.config_type {
        ConfigType::Boolean => t.eq_ignore_ascii_case("true") || t.eq_ignore_ascii_case("false"),
        ConfigType::Int | ConfigType::Short | ConfigType::Long => t.parse::<i64>().is_ok(),
        ConfigType::Double => t.parse::<f64>().is_ok(),
        _ => true,
    };
    Some(if ok {
        Ok(())
    } else {
        Err(bad(format!(
            "expected a value of type {:?}",
            key.config_type
        )))
    })
}

/// The configs of `configs` that [`inert_dynamic`] takes, as given.
fn inert_dynamic_configs(configs: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    configs
        .iter()
        .filter(|(k, v)| matches!(inert_dynamic(k, v), Some(Ok(()))))
        .map(|(k, v)| (k.clone(), v.trim().to_owned()))
        .collect()
}

/// A dynamic broker config parsed and checked: its key's name and value.
fn dynamic_value(name: &str, text: &str) -> Result<(&'static str, Value), ConfigError> {
    let key = dynamic_broker_key(name).map_err(|reason| ConfigError::BadValue {
        key: name.to_owned(),
        value: text.trim().to_owned(),
        reason,
    })?;
    Ok((key.name, checked(name, key, text)?))
}

/// Parses the dynamic configs runnel takes (others, written by another version, are
/// skipped with a log line).
fn dynamic_settings(configs: &BTreeMap<String, String>) -> Settings {
    let mut out = Settings::new();
    for (name, text) in configs {
        if inert_dynamic(name, text).is_some() {
            continue;
        }
        match dynamic_value(name, text) {
            Ok((name, value)) => {
                out.insert(name, value);
            }
            Err(e) => tracing::warn!(error = %e, "skipping a dynamic broker config"),
        }
    }
    out
}

impl BrokerConfig {
    /// Loads the configuration from a `server.properties` text (None: no file), then
    /// `--override KEY=VALUE` strings, then the command-line flags, each winning over the
    /// ones before. Returns it with the warnings to log (ignored Kafka keys, repeated keys).
    /// An unknown key or a bad value is an error naming it.
    pub fn load(
        properties: Option<&str>,
        overrides: &[String],
        cli: &CliOverrides,
    ) -> Result<(BrokerConfig, Vec<String>), ConfigError> {
        let mut warnings = Vec::new();
        let given = gather(properties, overrides, cli, &mut warnings)?;
        let (explicit, ignored) = classify(given, &mut warnings)?;
        let mut config = resolve(explicit)?;
        config.ignored = ignored;
        Ok((config, warnings))
    }

    /// This configuration with dynamic broker configs over it: the cluster-wide `default`,
    /// then this broker's own `mine` (each from the metadata log), over the static keys.
    /// Only keys [`dynamic_broker_key`] allows are taken.
    pub fn with_dynamic(
        &self,
        default: &BTreeMap<String, String>,
        mine: &BTreeMap<String, String>,
    ) -> BrokerConfig {
        let layered = BrokerConfig {
            dynamic_default: dynamic_settings(default),
            dynamic_broker: dynamic_settings(mine),
            dynamic_ignored: (inert_dynamic_configs(default), inert_dynamic_configs(mine)),
            ..self.clone()
        };
        match resolve(layered.effective_settings()) {
            Ok(resolved) => BrokerConfig {
                // The keys' values come from every layer; each layer stays apart, for
                // DescribeConfigs' sources.
                explicit: layered.explicit,
                ignored: layered.ignored,
                dynamic_ignored: layered.dynamic_ignored,
                dynamic_default: layered.dynamic_default,
                dynamic_broker: layered.dynamic_broker,
                ..resolved
            },
            Err(e) => {
                tracing::warn!(error = %e, "dynamic broker configs not taken");
                self.clone()
            }
        }
    }

    /// Every key in effect: the static ones with the dynamic ones over them.
    pub(super) fn effective_settings(&self) -> Settings {
        let mut merged = self.explicit.clone();
        merged.extend(self.dynamic_default.iter().map(|(k, v)| (*k, v.clone())));
        merged.extend(self.dynamic_broker.iter().map(|(k, v)| (*k, v.clone())));
        merged
    }

    /// The keys set explicitly, normalised (`TRUE` reads `true`), sorted.
    pub fn settings(&self) -> BTreeMap<String, String> {
        self.explicit
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The keys set explicitly to something other than their default, sorted: what the
    /// start-up log line shows.
    pub fn non_default_settings(&self) -> Vec<(String, String)> {
        let differs = |(name, value): &(&&str, &Value)| {
            keys::broker_key(name).and_then(Key::default_value).as_ref() != Some(*value)
        };
        self.explicit
            .iter()
            .filter(differs)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The largest record batch accepted by default (`message.max.bytes`).
    pub fn message_max_bytes(&self) -> u64 {
        self.log_defaults.max_message_bytes
    }

    /// The intervals of the log manager's background work.
    pub fn background_intervals(&self) -> BackgroundIntervals {
        BackgroundIntervals {
            retention_check_ms: self.retention_check_interval_ms,
            flush_check_ms: self.flush_scheduler_interval_ms,
            checkpoint_ms: self.offset_checkpoint_interval_ms,
            ..BackgroundIntervals::default()
        }
    }

    /// A topic's effective log settings: its overrides over the broker's defaults. The
    /// overrides were checked by [`validate_topic_configs`] when the topic was created; one
    /// that no longer parses (written by another version, say) is skipped with a log line.
    pub fn topic_log_config(&self, overrides: &BTreeMap<String, String>) -> LogConfig {
        let mut config = log_config(&self.topic_values(overrides));
        if overrides
            .get("cleanup.policy")
            .is_some_and(|p| is_compact(p))
        {
            // A compacted topic keeps every key's latest value: nothing expires by time or
            // size. (The cleaner that removes older values is not written yet, so such a
            // topic only grows.)
            config.retention_ms = -1;
            config.retention_bytes = -1;
        }
        config
    }

    /// The broker-wide `unclean.leader.election.enable` (a topic may override it).
    pub fn unclean_leader_election_enable(&self) -> bool {
        self.topic_defaults
            .get("unclean.leader.election.enable")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// A topic's effective `min.insync.replicas`.
    pub fn topic_min_insync_replicas(&self, overrides: &BTreeMap<String, String>) -> i32 {
        let values = self.topic_values(overrides);
        let n = values.get("min.insync.replicas").and_then(Value::as_int);
        n.and_then(|n| i32::try_from(n).ok()).unwrap_or(1)
    }

    /// Every topic-level key's effective value for a topic with these overrides.
    pub(super) fn topic_values(&self, overrides: &BTreeMap<String, String>) -> Settings {
        let mut values = self.topic_defaults.clone();
        for (name, text) in overrides {
            // An internal topic's `cleanup.policy=compact`, which clients cannot set: see
            // `topic_log_config`.
            if name == "cleanup.policy" && is_compact(text) {
                continue;
            }
            match topic_value(name, text) {
                Ok((name, value)) => {
                    values.insert(name, value);
                }
                Err(e) => tracing::warn!(error = %e, "skipping a topic config override"),
            }
        }
        values
    }
}

/// Whether a `cleanup.policy` value is compaction alone (internal topics such as
/// `__consumer_offsets` carry it).
pub fn is_compact(policy: &str) -> bool {
    policy.trim() == "compact"
}

/// Checks one topic-level setting (CreateTopics, `runnel topic create --config`).
pub fn validate_topic_config(key: &str, value: &str) -> Result<(), ConfigError> {
    topic_value(key, value).map(drop)
}

/// If topic-level `key` is a list (such as `cleanup.policy`), its default as text.
pub fn topic_list_default(key: &str) -> Option<&'static str> {
    let (_, k) = keys::topic_keys().find(|(t, _)| *t == key)?;
    if k.config_type != super::value::ConfigType::List {
        return None;
    }
    Some(keys::synonyms(k.sets).find_map(|s| s.default).unwrap_or(""))
}

/// Checks a topic's settings; the first refused one is the error.
pub fn validate_topic_configs(configs: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    configs
        .iter()
        .try_for_each(|(k, v)| validate_topic_config(k, v))
}

/// Parses and checks topic-level `name=text`, giving the key's static name.
pub(super) fn topic_value(name: &str, text: &str) -> Result<(&'static str, Value), ConfigError> {
    let (topic_name, key) = keys::topic_keys()
        .find(|(t, _)| *t == name)
        .ok_or_else(|| unknown(name, Scope::Topic))?;
    Ok((topic_name, checked(topic_name, key, text)?))
}

/// Parses `text` as a value of `key`'s type and checks it; errors name `name`.
fn checked(name: &str, key: &Key, text: &str) -> Result<Value, ConfigError> {
    value::parse(key.config_type, text)
        .and_then(|v| key.check.check(&v).map(|()| v))
        .map_err(|reason| ConfigError::BadValue {
            key: name.to_owned(),
            value: text.trim().to_owned(),
            reason,
        })
}

/// An unknown key, with a hint when it belongs to the other scope.
fn unknown(name: &str, scope: Scope) -> ConfigError {
    let hint = match scope {
        Scope::Topic => keys::broker_key(name).map(|k| match k.sets {
            Sets::Topic(t) => format!("{name} is a broker key; the topic-level key is {t}"),
            Sets::Broker(_) => format!("{name} is a broker key"),
        }),
        Scope::Broker => {
            keys::topic_keys()
                .find(|(t, _)| *t == name)
                .map(|(_, k)| match k.broker {
                    true => format!("{name} is a topic-level key; the broker key is {}", k.name),
                    false => format!("{name} is a topic-level key, with no broker default"),
                })
        }
    };
    ConfigError::UnknownKey {
        key: name.to_owned(),
        scope,
        hint,
    }
}

/// The `listeners` value `flag` (one PLAINTEXT listener) with the listeners of `old` that are
/// not PLAINTEXT.
fn keep_other_listeners(old: &str, flag: String) -> String {
    let others = split_list(old)
        .into_iter()
        .filter(|e| listener::parse(e).is_ok_and(|l| l.name != "PLAINTEXT"));
    std::iter::once(flag)
        .chain(others)
        .collect::<Vec<_>>()
        .join(",")
}

/// The file's entries, then the overrides, then the flags, later ones winning.
fn gather(
    properties: Option<&str>,
    overrides: &[String],
    cli: &CliOverrides,
    warnings: &mut Vec<String>,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut given = BTreeMap::new();
    for p in properties
        .map(properties::parse)
        .transpose()?
        .unwrap_or_default()
    {
        if given.insert(p.key.clone(), p.value).is_some() {
            warnings.push(format!(
                "line {}: {} is set again; the last value wins",
                p.line, p.key
            ));
        }
    }
    for text in overrides {
        let (key, value) = properties::parse_override(text)?;
        given.insert(key, value);
    }
    for (key, value) in cli.settings()? {
        // --listen replaces the PLAINTEXT listener only: a controller listener stays.
        let value = match (key, given.get(key)) {
            ("listeners", Some(old)) => keep_other_listeners(old, value),
            _ => value,
        };
        given.insert(key.to_owned(), value);
    }
    Ok(given)
}

/// Parses and checks every known key; ignored Kafka keys become warnings (their values are
/// kept for `controller.listener.names`); any other key is an error.
fn classify(
    given: BTreeMap<String, String>,
    warnings: &mut Vec<String>,
) -> Result<(Settings, BTreeMap<String, String>), ConfigError> {
    let mut explicit = BTreeMap::new();
    let mut ignored = BTreeMap::new();
    for (name, text) in given {
        if let Some(key) = keys::broker_key(&name) {
            explicit.insert(key.name, checked(key.name, key, &text)?);
        } else if let Some(why) = keys::ignored(&name) {
            warnings.push(format!("ignoring {name}={text}: {why}"));
            ignored.insert(name, text);
        } else if let Some((off, why)) = keys::only_off(&name) {
            if !text.trim().eq_ignore_ascii_case(off) {
                return Err(ConfigError::BadValue {
                    key: name,
                    value: text.trim().to_owned(),
                    reason: format!("{why}; only {off:?} is accepted"),
                });
            }
            warnings.push(format!("ignoring {name}={text}: {why}"));
            ignored.insert(name, text);
        } else {
            return Err(unknown(&name, Scope::Broker));
        }
    }
    Ok((explicit, ignored))
}

/// The value of `sets`: from the first of its keys set explicitly, else the first with a
/// default, scaled into the unit of what it sets.
pub(super) fn resolve_setting(explicit: &Settings, sets: Sets) -> Option<Value> {
    let scaled = |key: &Key, value: Value| match value {
        // Kafka: a negative retention in any unit means "no limit" and stays -1.
        Value::Int(n) if n >= 0 => Value::Int(n.saturating_mul(key.scale)),
        other => other,
    };
    let set = keys::synonyms(sets).find_map(|k| explicit.get(k.name).map(|v| scaled(k, v.clone())));
    set.or_else(|| keys::synonyms(sets).find_map(|k| k.default_value().map(|v| scaled(k, v))))
}

/// Builds the typed configuration from the checked settings.
fn resolve(explicit: Settings) -> Result<BrokerConfig, ConfigError> {
    check_node_ids(&explicit)?;
    let roles = roles(&explicit);
    let (client, controller) = listeners(&explicit, roles)?;
    let node_id: i32 = narrow(
        resolve_setting(&explicit, Sets::Broker("node.id"))
            .as_ref()
            .and_then(Value::as_int)
            .unwrap_or_default(),
    );
    let voters = voters(&explicit, node_id, roles, controller.as_ref())?;
    let (listen, advertised) = match client {
        Some((l, a)) => (l.address(), a.address()),
        None => (String::new(), String::new()),
    };
    let setting = |name: &'static str| resolve_setting(&explicit, Sets::Broker(name));
    let int = |name| {
        setting(name)
            .as_ref()
            .and_then(Value::as_int)
            .unwrap_or_default()
    };
    let flag = |name| {
        setting(name)
            .as_ref()
            .and_then(Value::as_bool)
            .unwrap_or_default()
    };
    let log_dir = setting("log.dirs")
        .map(|v| v.to_string())
        .unwrap_or_default();
    let topic_defaults: BTreeMap<_, _> = keys::topic_keys()
        .filter_map(|(t, _)| Some((t, resolve_setting(&explicit, Sets::Topic(t))?)))
        .collect();
    Ok(BrokerConfig {
        node_id,
        roles,
        controller_listen: controller.map(|c| c.address()),
        quorum: QuorumSettings {
            voters,
            election_timeout_ms: int("controller.quorum.election.timeout.ms"),
            election_backoff_max_ms: int("controller.quorum.election.backoff.max.ms"),
            fetch_timeout_ms: int("controller.quorum.fetch.timeout.ms"),
            request_timeout_ms: int("controller.quorum.request.timeout.ms"),
            retry_backoff_ms: int("controller.quorum.retry.backoff.ms"),
            snapshot_max_bytes: int("metadata.log.max.record.bytes.between.snapshots"),
            snapshot_interval_ms: int("metadata.log.max.snapshot.interval.ms"),
        },
        cluster_id: setting("cluster.id").map(|v| v.to_string()),
        broker_heartbeat_interval_ms: narrow(int("broker.heartbeat.interval.ms")),
        broker_session_timeout_ms: narrow(int("broker.session.timeout.ms")),
        replica_lag_time_max_ms: narrow(int("replica.lag.time.max.ms")),
        replica_fetch_wait_max_ms: narrow(int("replica.fetch.wait.max.ms")),
        replica_fetch_max_bytes: narrow(int("replica.fetch.max.bytes")),
        replica_fetch_response_max_bytes: narrow(int("replica.fetch.response.max.bytes")),
        replica_fetch_backoff_ms: narrow(int("replica.fetch.backoff.ms")),
        replica_socket_timeout_ms: narrow(int("replica.socket.timeout.ms")),
        offsets_commit_timeout_ms: narrow(int("offsets.commit.timeout.ms")),
        auto_leader_rebalance_enable: flag("auto.leader.rebalance.enable"),
        leader_imbalance_check_interval_seconds: narrow(int(
            "leader.imbalance.check.interval.seconds",
        )),
        leader_imbalance_per_broker_percentage: narrow(int(
            "leader.imbalance.per.broker.percentage",
        )),
        log_dir: split_list(&log_dir)
            .into_iter()
            .next()
            .unwrap_or_default()
            .into(),
        listen,
        advertised,
        num_partitions: narrow(int("num.partitions")),
        default_replication_factor: narrow(int("default.replication.factor")),
        auto_create_topics_enable: flag("auto.create.topics.enable"),
        delete_topic_enable: flag("delete.topic.enable"),
        socket_request_max_bytes: narrow(int("socket.request.max.bytes")),
        rack: setting("broker.rack")
            .as_ref()
            .and_then(Value::as_str)
            .map(str::to_owned),
        max_connections: narrow(int("max.connections")),
        max_connections_per_ip: narrow(int("max.connections.per.ip")),
        max_connections_per_ip_overrides: setting("max.connections.per.ip.overrides")
            .as_ref()
            .and_then(Value::as_str)
            .map(|text| super::keys::per_ip_overrides(text).unwrap_or_default())
            .unwrap_or_default(),
        connections_max_idle_ms: narrow(int("connections.max.idle.ms")),
        retention_check_interval_ms: narrow(int("log.retention.check.interval.ms")),
        flush_scheduler_interval_ms: narrow(int("log.flush.scheduler.interval.ms")),
        offset_checkpoint_interval_ms: narrow(int("log.flush.offset.checkpoint.interval.ms")),
        start_offset_checkpoint_interval_ms: narrow(int(
            "log.flush.start.offset.checkpoint.interval.ms",
        )),
        producer_id_expiration_ms: narrow(int("producer.id.expiration.ms")),
        group: crate::group::Config {
            num_partitions: narrow(int("offsets.topic.num.partitions")),
            min_session_timeout_ms: narrow(int("group.min.session.timeout.ms")),
            max_session_timeout_ms: narrow(int("group.max.session.timeout.ms")),
            initial_rebalance_delay_ms: narrow(int("group.initial.rebalance.delay.ms")),
            max_size: narrow(int("group.max.size")),
            offsets_retention_ms: int("offsets.retention.minutes").saturating_mul(60_000),
            offsets_retention_check_interval_ms: int("offsets.retention.check.interval.ms"),
            offset_metadata_max_bytes: narrow(int("offset.metadata.max.bytes")),
        },
        offsets_topic_replication_factor: narrow(int("offsets.topic.replication.factor")),
        offsets_topic_segment_bytes: narrow(int("offsets.topic.segment.bytes")),
        log_defaults: log_config(&topic_defaults),
        explicit,
        topic_defaults,
        ignored: BTreeMap::new(),
        dynamic_ignored: Default::default(),
        dynamic_default: Settings::new(),
        dynamic_broker: Settings::new(),
    })
}

/// Narrows a value its key's type and check already bounded.
fn narrow<T: TryFrom<i64> + Default>(n: i64) -> T {
    T::try_from(n).unwrap_or_default()
}

/// Kafka refuses a `broker.id` that differs from `node.id`.
fn check_node_ids(explicit: &Settings) -> Result<(), ConfigError> {
    match (explicit.get("node.id"), explicit.get("broker.id")) {
        (Some(node), Some(broker)) if node != broker => Err(ConfigError::BadValue {
            key: "broker.id".to_owned(),
            value: broker.to_string(),
            reason: format!("must equal node.id ({node}) when both are set"),
        }),
        _ => Ok(()),
    }
}

/// The client listener to serve and the one to advertise (none on a controller-only node),
/// and the controller listener.
type Listeners = (Option<(Listener, Listener)>, Option<Listener>);

/// The client listener to serve and the one to advertise (none on a controller-only node),
/// and the controller listener.
fn listeners(explicit: &Settings, roles: Roles) -> Result<Listeners, ConfigError> {
    let text = |name| resolve_setting(explicit, Sets::Broker(name)).map(|v| v.to_string());
    let controllers = listener::controller_names(text("controller.listener.names").as_deref());
    let listens = text("listeners").unwrap_or_default();
    let controller = listener::controller("listeners", &listens, &controllers)?;
    let listen = if roles.broker {
        listener::select("listeners", &listens, &controllers)?
    } else {
        match listener::select_optional("listeners", &listens, &controllers)? {
            Some(l) => l,
            None => return Ok((None, controller)),
        }
    };
    let Some(list) = text("advertised.listeners") else {
        if listen.is_wildcard() {
            return Err(ConfigError::NoAdvertisedAddress {
                listen: listen.address(),
            });
        }
        return Ok((Some((listen.clone(), listen)), controller));
    };
    let advertised = listener::select("advertised.listeners", &list, &controllers)?;
    let reason = if advertised.is_wildcard() {
        "a wildcard address is no address to connect to: advertise a name or address clients \
         can reach"
    } else if advertised.port == 0 {
        "port 0 is no port to connect to"
    } else {
        return Ok((Some((listen, advertised)), controller));
    };
    let (key, value) = ("advertised.listeners".to_owned(), list);
    Err(ConfigError::BadValue {
        key,
        value,
        reason: reason.to_owned(),
    })
}

/// `process.roles`.
fn roles(explicit: &Settings) -> Roles {
    let text = resolve_setting(explicit, Sets::Broker("process.roles"))
        .map(|v| v.to_string())
        .unwrap_or_default();
    let list = split_list(&text);
    Roles {
        broker: list.iter().any(|r| r == "broker"),
        controller: list.iter().any(|r| r == "controller"),
    }
}

/// The quorum's voters, checked against this node's roles and listeners as Kafka checks them.
fn voters(
    explicit: &Settings,
    node_id: i32,
    roles: Roles,
    controller: Option<&Listener>,
) -> Result<BTreeMap<i32, String>, ConfigError> {
    let text = resolve_setting(explicit, Sets::Broker("controller.quorum.voters"))
        .map(|v| v.to_string())
        .unwrap_or_default();
    let bad = |reason: String| ConfigError::BadValue {
        key: "controller.quorum.voters".to_owned(),
        value: text.clone(),
        reason,
    };
    let mut voters = BTreeMap::new();
    for entry in split_list(&text) {
        let (id, addr) = keys::parse_voter(&entry).map_err(bad)?;
        if voters.insert(id, addr).is_some() {
            return Err(bad(format!("voter {id} is listed twice")));
        }
    }
    if voters.is_empty() {
        if !roles.controller {
            return Err(bad(
                "a node without the controller role needs the quorum's voters".to_owned(),
            ));
        }
        return Ok(voters);
    }
    let listed = voters.contains_key(&node_id);
    if roles.controller && !listed {
        return Err(bad(format!(
            "this node (node.id={node_id}) has the controller role but is not a voter"
        )));
    }
    if !roles.controller && listed {
        return Err(bad(format!(
            "this node (node.id={node_id}) is a voter but process.roles has no controller"
        )));
    }
    if listed && voters.len() > 1 && controller.is_none() {
        return Err(ConfigError::BadValue {
            key: "listeners".to_owned(),
            value: resolve_setting(explicit, Sets::Broker("listeners"))
                .map(|v| v.to_string())
                .unwrap_or_default(),
            reason: "a voter needs a controller listener (CONTROLLER://HOST:PORT, named in \
                     controller.listener.names)"
                .to_owned(),
        });
    }
    Ok(voters)
}

/// A [`LogConfig`] from topic-level values; a missing one keeps `LogConfig`'s default.
fn log_config(values: &Settings) -> LogConfig {
    use crate::record::compression::Compression;
    use crate::record::validator::Rules;
    let d = LogConfig::default();
    let int = |key: &str| values.get(key).and_then(Value::as_int);
    let long = |key: &str, fallback: i64| int(key).unwrap_or(fallback);
    let size = |key: &str, fallback: u64| int(key).map_or(fallback, narrow);
    LogConfig {
        segment_bytes: size("segment.bytes", d.segment_bytes),
        segment_ms: long("segment.ms", d.segment_ms),
        segment_index_bytes: size("segment.index.bytes", d.segment_index_bytes),
        index_interval_bytes: size("index.interval.bytes", d.index_interval_bytes),
        retention_ms: long("retention.ms", d.retention_ms),
        retention_bytes: long("retention.bytes", d.retention_bytes),
        flush_messages: long("flush.messages", d.flush_messages),
        flush_ms: long("flush.ms", d.flush_ms),
        max_message_bytes: size("max.message.bytes", d.max_message_bytes),
        write_caching: values
            .get("write.caching")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        records: Rules {
            compression: values
                .get("compression.type")
                .and_then(Value::as_str)
                .and_then(Compression::from_config),
            gzip_level: int("compression.gzip.level")
                .and_then(|l| i32::try_from(l).ok())
                .unwrap_or(-1),
            log_append_time: values.get("message.timestamp.type").and_then(Value::as_str)
                == Some("LogAppendTime"),
            timestamp_before_max_ms: long("message.timestamp.before.max.ms", i64::MAX),
            timestamp_after_max_ms: long("message.timestamp.after.max.ms", i64::MAX),
        },
    }
}

#[cfg(test)]
mod tests;
