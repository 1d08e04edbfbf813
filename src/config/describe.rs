//! DescribeConfigs: a topic's or the broker's settings, each with its value, where it comes
//! from and the synonyms behind it, as Kafka reports them.
//!
//! Synonyms follow Kafka's order: the topic's override, then the broker keys that were set, then
//! the broker keys' defaults, each group in precedence order (`log.retention.ms`,
//! `log.retention.minutes`, `log.retention.hours`). An entry's source is its first synonym's.
//!
//! Two differences, both so that an entry shows where its value really comes from. For a topic
//! key, Kafka drops the synonyms before the primary broker key, so its `retention.ms` lists no
//! `log.retention.hours` (and calls an explicit `log.retention.hours` a default); runnel keeps
//! them. And the primary key of a group of broker synonyms (`log.retention.ms`, `node.id`,
//! `log.dirs`) shows the value the broker uses, from whichever synonym supplied it, where Kafka
//! shows that key's own value (null for an unset `log.retention.ms`). Other synonyms show their
//! own value, as in Kafka.

use super::broker::{BrokerConfig, Settings, resolve_setting, topic_value};
use super::keys::{self, Key, Sets};
use super::value::{ConfigType, Value};
use std::collections::BTreeMap;

/// Where a value comes from: Kafka's `ConfigSource`, the five that runnel produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(i8)]
pub enum ConfigSource {
    /// Set on the topic (CreateTopics or, later, AlterConfigs).
    DynamicTopicConfig = 1,
    /// Set on this broker at run time (AlterConfigs on the BROKER resource named by its id).
    DynamicBrokerConfig = 2,
    /// Set for every broker at run time (the BROKER resource named "", `--entity-default`).
    DynamicDefaultBrokerConfig = 3,
    /// Set in the broker's `server.properties`, an override or a flag.
    StaticBrokerConfig = 4,
    /// Nobody set it: Kafka's default.
    DefaultConfig = 5,
}

impl ConfigSource {
    /// The id on the wire (DescribeConfigs `config_source`).
    pub fn id(self) -> i8 {
        self as i8
    }
}

/// One source of an entry's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSynonym {
    /// The key that supplies it (a topic key or a broker key).
    pub name: String,
    /// Its value there.
    pub value: Option<String>,
    /// Where that value comes from.
    pub source: ConfigSource,
}

/// One DescribeConfigs result entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    /// The key.
    pub name: String,
    /// Its effective value; None for a broker key that has no default and was not set.
    pub value: Option<String>,
    /// Where the value comes from.
    pub source: ConfigSource,
    /// Whether it cannot be altered at run time: every broker key, no topic key.
    pub read_only: bool,
    /// Whether the value is a secret; runnel has none.
    pub sensitive: bool,
    /// The key's Kafka type.
    pub config_type: ConfigType,
    /// What it means.
    pub documentation: String,
    /// The sources of the value, the one in effect first.
    pub synonyms: Vec<ConfigSynonym>,
}

impl BrokerConfig {
    /// Every broker key (or those in `keys`: None or empty for all, unknown names skipped),
    /// sorted by name.
    pub fn describe(&self, keys: Option<&[String]>) -> Vec<ConfigEntry> {
        let entries = keys::KEYS
            .iter()
            .filter(|k| k.broker && wanted(keys, k.name));
        let inert = keys::inert_broker_keys().filter(|k| wanted(keys, k.name));
        let effective = self.effective_settings();
        sorted(
            entries
                .map(|k| self.broker_entry(k, &effective))
                .chain(inert.map(|k| self.inert_entry(&k)))
                .collect(),
        )
    }

    /// A Kafka key runnel accepts with no effect: the value given, or Kafka's default, and
    /// a documentation that says so. A password's value is never shown, as in Kafka.
    fn inert_entry(&self, key: &keys::InertKey) -> ConfigEntry {
        let sensitive = key.config_type == ConfigType::Password;
        let shown = |v: &str| (!sensitive).then(|| v.to_owned());
        let layers = [
            (&self.dynamic_ignored.1, ConfigSource::DynamicBrokerConfig),
            (
                &self.dynamic_ignored.0,
                ConfigSource::DynamicDefaultBrokerConfig,
            ),
            (&self.ignored, ConfigSource::StaticBrokerConfig),
        ];
        let given = layers.into_iter().filter_map(|(set, source)| {
            set.get(key.name).map(|v| ConfigSynonym {
                name: key.name.to_owned(),
                value: shown(v),
                source,
            })
        });
        let default = key.default.map(|v| ConfigSynonym {
            name: key.name.to_owned(),
            value: shown(v),
            source: ConfigSource::DefaultConfig,
        });
        let synonyms: Vec<_> = given.into_iter().chain(default).collect();
        ConfigEntry {
            name: key.name.to_owned(),
            value: synonyms.first().and_then(|s| s.value.clone()),
            source: synonyms
                .first()
                .map_or(ConfigSource::DefaultConfig, |s| s.source),
            read_only: !super::broker::inert_key_is_dynamic(key),
            sensitive,
            config_type: key.config_type,
            documentation: format!(
                "A Kafka key that runnel accepts with no effect: {}.",
                key.why
            ),
            synonyms,
        }
    }

    /// Every topic-level key (or those in `keys`, as for [`BrokerConfig::describe`]) for a topic
    /// with these overrides, sorted by name.
    pub fn describe_topic(
        &self,
        overrides: &BTreeMap<String, String>,
        keys: Option<&[String]>,
    ) -> Vec<ConfigEntry> {
        let entries = keys::topic_keys().filter(|(name, _)| wanted(keys, name));
        sorted(
            entries
                .map(|(name, key)| self.topic_entry(name, key, overrides))
                .collect(),
        )
    }

    /// `key`'s entry; `effective` is [`BrokerConfig::effective_settings`].
    fn broker_entry(&self, key: &Key, effective: &Settings) -> ConfigEntry {
        let mut synonyms = self.broker_synonyms(key.sets);
        let primary = keys::synonyms(key.sets)
            .next()
            .is_some_and(|p| p.name == key.name);
        let value = if primary {
            // What the broker uses, wherever it came from: node.id shows a broker.id.
            resolve_setting(effective, key.sets)
        } else {
            // As Kafka does: a synonym's own value, and its synonyms from itself on, so
            // describing log.retention.hours does not list log.retention.ms.
            let own = synonyms.iter().position(|s| s.name == key.name);
            synonyms.drain(..own.unwrap_or(synonyms.len()));
            effective
                .get(key.name)
                .cloned()
                .or_else(|| key.default_value())
        };
        // Kafka's read-only flag: false for a key AlterConfigs may change while runnel runs.
        let read_only = super::broker::dynamic_broker_key(key.name).is_err();
        let documentation = match key.sets {
            Sets::Topic(t) => format!("{} The broker-wide default of topic key {t}.", key.doc),
            Sets::Broker(_) => key.doc.to_owned(),
        };
        entry(key.name, value, key, read_only, documentation, synonyms)
    }

    fn topic_entry(
        &self,
        name: &'static str,
        key: &Key,
        overrides: &BTreeMap<String, String>,
    ) -> ConfigEntry {
        let own = overrides
            .get(name)
            .and_then(|text| topic_value(name, text).ok());
        let own = own.map(|(_, value)| value);
        let mut synonyms: Vec<_> = own
            .iter()
            .map(|v| synonym(name, v, ConfigSource::DynamicTopicConfig))
            .collect();
        synonyms.extend(self.broker_synonyms(Sets::Topic(name)));
        let value = own.or_else(|| self.topic_defaults.get(name).cloned());
        entry(name, value, key, false, key.doc.to_owned(), synonyms)
    }

    /// The keys of `sets` that were set (on this broker at run time, for every broker at run
    /// time, then statically), then those with a default, in precedence order: Kafka's order.
    fn broker_synonyms(&self, sets: Sets) -> Vec<ConfigSynonym> {
        let layers = [
            (&self.dynamic_broker, ConfigSource::DynamicBrokerConfig),
            (
                &self.dynamic_default,
                ConfigSource::DynamicDefaultBrokerConfig,
            ),
            (&self.explicit, ConfigSource::StaticBrokerConfig),
        ];
        let set = layers.into_iter().flat_map(|(settings, source)| {
            keys::synonyms(sets)
                .filter_map(move |k| Some(synonym(k.name, settings.get(k.name)?, source)))
        });
        let defaults = keys::synonyms(sets).filter(|k| k.broker).filter_map(|k| {
            Some(synonym(
                k.name,
                &k.default_value()?,
                ConfigSource::DefaultConfig,
            ))
        });
        set.chain(defaults).collect()
    }
}

fn entry(
    name: &str,
    value: Option<Value>,
    key: &Key,
    read_only: bool,
    documentation: String,
    synonyms: Vec<ConfigSynonym>,
) -> ConfigEntry {
    ConfigEntry {
        name: name.to_owned(),
        value: value.map(|v| v.to_string()),
        source: synonyms
            .first()
            .map_or(ConfigSource::DefaultConfig, |s| s.source),
        read_only,
        sensitive: false,
        config_type: key.config_type,
        documentation,
        synonyms,
    }
}

fn synonym(name: &str, value: &Value, source: ConfigSource) -> ConfigSynonym {
    ConfigSynonym {
        name: name.to_owned(),
        value: Some(value.to_string()),
        source,
    }
}

/// Kafka's filter: no keys, or an empty list, means every key.
fn wanted(keys: Option<&[String]>, name: &str) -> bool {
    keys.is_none_or(|keys| keys.is_empty() || keys.iter().any(|k| k == name))
}

fn sorted(mut entries: Vec<ConfigEntry>) -> Vec<ConfigEntry> {
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    entries
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CliOverrides;
    use ConfigSource::{DefaultConfig, DynamicTopicConfig, StaticBrokerConfig};

    fn config(text: &str) -> BrokerConfig {
        BrokerConfig::load(Some(text), &[], &CliOverrides::default())
            .unwrap()
            .0
    }

    fn find<'a>(entries: &'a [ConfigEntry], name: &str) -> &'a ConfigEntry {
        entries
            .iter()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("no {name}"))
    }

    fn synonyms<'a>(entry: &'a ConfigEntry) -> Vec<(&'a str, &'a str, ConfigSource)> {
        let row = |s: &'a ConfigSynonym| {
            (
                s.name.as_str(),
                s.value.as_deref().unwrap_or("null"),
                s.source,
            )
        };
        entry.synonyms.iter().map(row).collect()
    }

    fn overrides(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn dynamic_broker_configs_take_effect_and_are_described_with_their_sources() {
        let c = config("log.retention.hours=24\n").with_dynamic(
            &overrides(&[
                ("log.retention.ms", "60000"),
                ("log.segment.bytes", "2000000"),
            ]),
            &overrides(&[
                ("log.retention.ms", "30000"),
                ("num.partitions", "9"),
                ("producer.id.expiration.ms", "5000"),
            ]),
        );
        // The broker's own over the cluster-wide default over the static key; a key runnel
        // does not change at run time (num.partitions) is not taken.
        assert_eq!(c.topic_log_config(&BTreeMap::new()).retention_ms, 30_000);
        assert_eq!(
            c.topic_log_config(&BTreeMap::new()).segment_bytes,
            2_000_000
        );
        assert_eq!(c.num_partitions, 1);
        // A broker setting runnel changes at run time.
        assert_eq!(c.producer_id_expiration_ms, 5_000);
        let broker = c.describe(None);
        assert!(!find(&broker, "producer.id.expiration.ms").read_only);
        let e = find(&broker, "log.retention.ms");
        assert_eq!(
            (e.value.as_deref(), e.source, e.read_only),
            (Some("30000"), ConfigSource::DynamicBrokerConfig, false)
        );
        assert_eq!(
            synonyms(e)[..3],
            [
                (
                    "log.retention.ms",
                    "30000",
                    ConfigSource::DynamicBrokerConfig
                ),
                (
                    "log.retention.ms",
                    "60000",
                    ConfigSource::DynamicDefaultBrokerConfig
                ),
                ("log.retention.hours", "24", StaticBrokerConfig),
            ]
        );
        assert!(find(&broker, "num.partitions").read_only);
        let topic = c.describe_topic(&overrides(&[]), None);
        let e = find(&topic, "segment.bytes");
        assert_eq!(
            (e.value.as_deref(), e.source),
            (Some("2000000"), ConfigSource::DynamicDefaultBrokerConfig)
        );
        // Without dynamic configs, the static ones again.
        let plain = config("log.retention.hours=24\n");
        assert_eq!(
            plain.topic_log_config(&BTreeMap::new()).retention_ms,
            24 * 3_600_000
        );
    }

    #[test]
    fn wire_ids_are_kafkas() {
        let sources = [
            DynamicTopicConfig,
            ConfigSource::DynamicBrokerConfig,
            ConfigSource::DynamicDefaultBrokerConfig,
            StaticBrokerConfig,
            DefaultConfig,
        ]
        .map(ConfigSource::id);
        assert_eq!(sources, [1, 2, 3, 4, 5]);
        let types = [
            ConfigType::Boolean,
            ConfigType::String,
            ConfigType::Int,
            ConfigType::Short,
            ConfigType::Long,
            ConfigType::Double,
            ConfigType::List,
            ConfigType::Class,
            ConfigType::Password,
        ];
        assert_eq!(types.map(ConfigType::id), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    }

    #[test]
    fn a_topic_entry_comes_from_its_override_then_the_broker_then_the_default() {
        let c = config("log.segment.bytes=5000\nlog.retention.minutes=2");
        let topic = overrides(&[("segment.bytes", " 2000 "), ("cleanup.policy", "delete")]);
        let entries = c.describe_topic(&topic, None);
        assert_eq!(entries.len(), 34);
        assert!(
            entries.windows(2).all(|w| w[0].name < w[1].name),
            "sorted by name"
        );
        assert!(
            entries
                .iter()
                .all(|e| !e.read_only && !e.sensitive && !e.documentation.is_empty())
        );

        let segment = find(&entries, "segment.bytes");
        assert_eq!(
            (segment.value.as_deref(), segment.source),
            (Some("2000"), DynamicTopicConfig)
        );
        assert_eq!(segment.config_type, ConfigType::Int);
        assert_eq!(
            synonyms(segment),
            [
                ("segment.bytes", "2000", DynamicTopicConfig),
                ("log.segment.bytes", "5000", StaticBrokerConfig),
                ("log.segment.bytes", "1073741824", DefaultConfig),
            ]
        );

        let retention = find(&entries, "retention.ms");
        assert_eq!(
            (retention.value.as_deref(), retention.source),
            (Some("120000"), StaticBrokerConfig)
        );
        assert_eq!(retention.config_type, ConfigType::Long);
        assert_eq!(
            synonyms(retention),
            [
                ("log.retention.minutes", "2", StaticBrokerConfig),
                ("log.retention.hours", "168", DefaultConfig),
            ]
        );

        let policy = find(&entries, "cleanup.policy");
        assert_eq!(
            (policy.config_type, policy.source),
            (ConfigType::List, DynamicTopicConfig)
        );

        let segment_ms = find(&entries, "segment.ms");
        assert_eq!(
            (segment_ms.value.as_deref(), segment_ms.source),
            (Some("604800000"), DefaultConfig)
        );
        assert_eq!(
            synonyms(segment_ms),
            [("log.roll.hours", "168", DefaultConfig)]
        );

        let caching = find(&entries, "write.caching");
        assert_eq!(
            (caching.config_type, caching.value.as_deref()),
            (ConfigType::Boolean, Some("false"))
        );
        assert_eq!(
            find(&entries, "compression.type").config_type,
            ConfigType::String
        );
    }

    #[test]
    fn describe_can_be_limited_to_some_keys() {
        let c = config("");
        let keys = [
            "retention.ms".to_string(),
            "no.such.key".into(),
            "flush.ms".into(),
        ];
        let names: Vec<_> = c
            .describe_topic(&BTreeMap::new(), Some(&keys))
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["flush.ms", "retention.ms"]);
        assert_eq!(c.describe_topic(&BTreeMap::new(), Some(&[])).len(), 34);
        let keys = ["num.partitions".to_string()];
        assert_eq!(c.describe(Some(&keys)).len(), 1);
    }

    /// Kafka's stock keys that runnel accepts with no effect are described too: the value
    /// given (or Kafka's default), Kafka's type, a documentation that says runnel does not use
    /// it, and never a password.
    #[test]
    fn keys_accepted_with_no_effect_are_described_as_such() {
        let c = config("num.io.threads=16\nssl.keystore.password=secret\nauthorizer.class.name=");
        let entries = c.describe(None);
        let kafka: Vec<&str> = include_str!("kafka/broker-keys-4.1.tsv")
            .lines()
            .skip(1)
            .filter_map(|l| l.split('\t').next())
            .collect();
        assert_eq!(kafka.len(), 316);
        for name in &kafka {
            assert!(
                entries.iter().any(|e| e.name == *name),
                "{name} not described"
            );
        }

        let io = find(&entries, "num.io.threads");
        assert_eq!(
            (io.value.as_deref(), io.source, io.config_type),
            (Some("16"), StaticBrokerConfig, ConfigType::Int)
        );
        assert_eq!(
            synonyms(io),
            [
                ("num.io.threads", "16", StaticBrokerConfig),
                ("num.io.threads", "8", DefaultConfig)
            ]
        );
        assert!(
            io.documentation.contains("no effect"),
            "{}",
            io.documentation
        );

        let network = find(&entries, "num.network.threads");
        assert_eq!(
            (network.value.as_deref(), network.source),
            (Some("3"), DefaultConfig)
        );
        let password = find(&entries, "ssl.keystore.password");
        assert!(password.sensitive);
        assert_eq!(
            (password.value.as_deref(), password.source),
            (None, StaticBrokerConfig)
        );
        assert!(password.synonyms.iter().all(|s| s.value.is_none()));
        let authorizer = find(&entries, "authorizer.class.name");
        assert_eq!(
            (authorizer.value.as_deref(), authorizer.config_type),
            (Some(""), ConfigType::String)
        );
        let keys = ["num.io.threads".to_string()];
        assert_eq!(c.describe(Some(&keys)).len(), 1);
    }

    /// Kafka-dynamic keys runnel accepts with no effect are taken as dynamic configs too
    /// (stored and described with their sources, still with no effect); passwords are not.
    #[test]
    fn inert_keys_are_taken_as_dynamic_configs_with_no_effect() {
        let c = config("num.io.threads=16\n").with_dynamic(
            &overrides(&[("background.threads", "20"), ("num.io.threads", "24")]),
            &overrides(&[("num.io.threads", "32"), ("ssl.keystore.password", "x")]),
        );
        let entries = c.describe(None);
        let io = find(&entries, "num.io.threads");
        assert_eq!(
            (io.value.as_deref(), io.source, io.read_only),
            (Some("32"), ConfigSource::DynamicBrokerConfig, false)
        );
        assert_eq!(
            synonyms(io),
            [
                ("num.io.threads", "32", ConfigSource::DynamicBrokerConfig),
                (
                    "num.io.threads",
                    "24",
                    ConfigSource::DynamicDefaultBrokerConfig
                ),
                ("num.io.threads", "16", StaticBrokerConfig),
                ("num.io.threads", "8", DefaultConfig),
            ]
        );
        assert!(io.documentation.contains("no effect"));
        let background = find(&entries, "background.threads");
        assert_eq!(
            (background.value.as_deref(), background.source),
            (Some("20"), ConfigSource::DynamicDefaultBrokerConfig)
        );
        let password = find(&entries, "ssl.keystore.password");
        assert!(password.read_only);
        assert_eq!(password.source, DefaultConfig);
        use super::super::broker::validate_dynamic_broker_config as valid;
        assert!(valid("num.io.threads", "16").is_ok());
        assert!(valid("num.io.threads", "many").is_err());
        assert!(valid("ssl.keystore.password", "x").is_err());
        assert!(valid("num.partitions", "3").is_err(), "read-only in Kafka");
    }

    #[test]
    fn broker_entries_show_what_was_set_else_the_default() {
        let c = config("num.partitions=3\nlog.retention.hours=24\nbroker.id=4");
        let entries = c.describe(None);
        assert_eq!(
            entries.len(),
            keys::KEYS.iter().filter(|k| k.broker).count() + keys::inert_broker_keys().count()
        );
        assert!(
            entries.windows(2).all(|w| w[0].name < w[1].name),
            "sorted by name"
        );
        // Read-only but for the topic defaults AlterConfigs may change at run time.
        assert!(
            entries.iter().all(
                |e| e.read_only != super::super::broker::dynamic_broker_config_allowed(&e.name)
            )
        );
        assert!(!find(&entries, "log.retention.ms").read_only);
        assert!(find(&entries, "log.retention.hours").read_only);
        assert!(
            entries
                .iter()
                .all(|e| e.sensitive == (e.config_type == ConfigType::Password))
        );

        let partitions = find(&entries, "num.partitions");
        assert_eq!(
            (partitions.value.as_deref(), partitions.source),
            (Some("3"), StaticBrokerConfig)
        );
        assert_eq!(
            synonyms(partitions),
            [
                ("num.partitions", "3", StaticBrokerConfig),
                ("num.partitions", "1", DefaultConfig)
            ]
        );

        let hours = find(&entries, "log.retention.hours");
        assert_eq!(
            (hours.value.as_deref(), hours.config_type),
            (Some("24"), ConfigType::Int)
        );
        assert!(
            hours.documentation.contains("topic key retention.ms"),
            "{}",
            hours.documentation
        );

        // A primary key shows what the broker uses, and every synonym behind it.
        let ms = find(&entries, "log.retention.ms");
        assert_eq!(
            (ms.value.as_deref(), ms.source),
            (Some("86400000"), StaticBrokerConfig)
        );
        let retention_synonyms = [
            ("log.retention.hours", "24", StaticBrokerConfig),
            ("log.retention.hours", "168", DefaultConfig),
        ];
        assert_eq!(synonyms(ms), retention_synonyms);
        assert_eq!(synonyms(hours), retention_synonyms);
        // A synonym without a default that nobody set is null, as in Kafka.
        let minutes = find(&entries, "log.retention.minutes");
        assert_eq!(
            (minutes.value.as_deref(), minutes.source),
            (None, DefaultConfig)
        );
        assert!(minutes.synonyms.is_empty(), "{:?}", minutes.synonyms);

        let node = find(&entries, "node.id");
        assert_eq!(
            (node.value.as_deref(), node.source),
            (Some("4"), StaticBrokerConfig)
        );
        let expected = [
            ("broker.id", "4", StaticBrokerConfig),
            ("node.id", "0", DefaultConfig),
        ];
        assert_eq!(synonyms(node), expected);
        // Kafka drops only the synonyms before the key itself.
        assert_eq!(synonyms(find(&entries, "broker.id")), expected);
        assert_eq!(find(&entries, "advertised.listeners").value, None);
        let listeners = find(&entries, "listeners");
        assert_eq!(
            listeners.value.as_deref(),
            Some("PLAINTEXT://127.0.0.1:9092")
        );
    }
}
