//! The registry: every key runnel knows, with Apache Kafka's name, type, default and meaning,
//! and the Kafka keys it accepts but ignores.
//!
//! One table, [`KEYS`], holds the broker keys. A key either sets a broker setting or is the
//! broker-wide default of a topic-level key. Keys that set the same thing are synonyms, listed
//! in Kafka's precedence order: the first one set wins (`log.retention.ms` over
//! `log.retention.minutes` over `log.retention.hours`), else the first one with a default.
//! A topic-level key takes its type, check and documentation from its first broker key.

use super::listener;
use super::value::{Check, ConfigType, Value, at_least, split_list};

/// What a key sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sets {
    /// A broker setting, named by its primary key.
    Broker(&'static str),
    /// The broker-wide default of this topic-level key.
    Topic(&'static str),
}

/// One broker key.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Key {
    /// Kafka's name for it.
    pub(crate) name: &'static str,
    /// What it sets; keys that set the same thing are synonyms.
    pub(crate) sets: Sets,
    /// Its Kafka type.
    pub(crate) config_type: ConfigType,
    /// Kafka's default, as text; None where Kafka has none (a synonym supplies it).
    pub(crate) default: Option<&'static str>,
    /// Multiplier into the unit of what it sets (hours and minutes into milliseconds).
    pub(crate) scale: i64,
    /// What values it accepts beyond its type.
    pub(crate) check: Check,
    /// What it means, for DescribeConfigs.
    pub(crate) doc: &'static str,
}

/// A key that sets a broker setting of its own name.
const fn broker(
    name: &'static str,
    config_type: ConfigType,
    default: Option<&'static str>,
    check: Check,
    doc: &'static str,
) -> Key {
    let sets = Sets::Broker(name);
    Key {
        name,
        sets,
        config_type,
        default,
        scale: 1,
        check,
        doc,
    }
}

/// A key that is the broker-wide default of topic-level key `topic`.
const fn topic(
    name: &'static str,
    topic: &'static str,
    config_type: ConfigType,
    default: Option<&'static str>,
    check: Check,
    doc: &'static str,
) -> Key {
    Key {
        sets: Sets::Topic(topic),
        ..broker(name, config_type, default, check, doc)
    }
}

impl Key {
    /// This key is an older or coarser name for broker setting `primary`.
    const fn synonym_of(self, primary: &'static str) -> Key {
        Key {
            sets: Sets::Broker(primary),
            ..self
        }
    }

    /// This key's value is multiplied by `scale` (hours to milliseconds, say).
    const fn scaled(self, scale: i64) -> Key {
        Key { scale, ..self }
    }

    /// The default, parsed; None if the key has none.
    pub(crate) fn default_value(&self) -> Option<Value> {
        super::value::parse(self.config_type, self.default?).ok()
    }
}

use ConfigType::{Boolean, Int, List, Long, String as Str};

const HOUR_MS: i64 = 60 * 60 * 1000;
const MINUTE_MS: i64 = 60 * 1000;
const LONG_MAX: &str = "9223372036854775807";
/// Kafka's type for `default.replication.factor` is int, but CreateTopics carries an int16.
const SHORT_MAX: i64 = i16::MAX as i64;

const CLEANUP_POLICY: Check = Check::OneOf {
    supported: &["delete"],
    known: &["compact", "delete"],
    why: "compaction is not supported: runnel only deletes old segments (cleanup.policy=delete)",
};

const TIMESTAMP_TYPE: Check = Check::OneOf {
    supported: &["CreateTime", "LogAppendTime"],
    known: &["CreateTime", "LogAppendTime"],
    why: "",
};

const COMPRESSION_TYPE: Check = Check::OneOf {
    supported: &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"],
    known: &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"],
    why: "",
};

/// Every broker key, synonyms together in precedence order.
#[rustfmt::skip]
pub(crate) const KEYS: &[Key] = &[
    // Broker defaults of topic-level keys.
    topic("log.segment.bytes", "segment.bytes", Int, Some("1073741824"), at_least(14),
        "Roll to a new segment before the active one would exceed this many bytes."),
    topic("log.roll.ms", "segment.ms", Long, None, at_least(1),
        "Roll to a new segment once the active segment's first record is this many \
         milliseconds old, even if it is not full."),
    topic("log.roll.hours", "segment.ms", Int, Some("168"), at_least(1),
        "log.roll.ms in hours; used only when log.roll.ms is not set.")
        .scaled(HOUR_MS),
    topic("log.roll.jitter.ms", "segment.jitter.ms", Long, None, at_least(0),
        "The most random jitter subtracted from the roll time, to avoid thundering herds of \
         segment rolls. Accepted; runnel does not apply jitter yet."),
    topic("log.roll.jitter.hours", "segment.jitter.ms", Int, Some("0"), at_least(0),
        "log.roll.jitter.ms in hours; used only when log.roll.jitter.ms is not set.")
        .scaled(HOUR_MS),
    topic("log.index.size.max.bytes", "segment.index.bytes", Int, Some("10485760"), at_least(4),
        "The largest offset index file of a segment; the segment rolls when its index is full."),
    topic("log.index.interval.bytes", "index.interval.bytes", Int, Some("4096"), at_least(0),
        "Add an offset index entry after this many bytes of record batches: larger means a \
         smaller index and longer scans."),
    topic("log.retention.ms", "retention.ms", Long, None, Check::Unlimited,
        "Delete closed segments whose newest record is older than this many milliseconds; \
         -1 keeps them forever."),
    topic("log.retention.minutes", "retention.ms", Int, None, Check::Unlimited,
        "log.retention.ms in minutes; used only when log.retention.ms is not set.")
        .scaled(MINUTE_MS),
    topic("log.retention.hours", "retention.ms", Int, Some("168"), Check::Unlimited,
        "log.retention.ms in hours; used only when neither log.retention.ms nor \
         log.retention.minutes is set.")
        .scaled(HOUR_MS),
    topic("log.retention.bytes", "retention.bytes", Long, Some("-1"), Check::Any,
        "Delete the oldest closed segments while a partition is larger than this many bytes; \
         -1 for no size limit."),
    topic("log.flush.interval.messages", "flush.messages", Long, Some(LONG_MAX), at_least(1),
        "Sync a partition to disk once this many records were appended since the last sync."),
    topic("log.flush.interval.ms", "flush.ms", Long, Some(LONG_MAX), at_least(0),
        "Sync a partition to disk once its oldest unsynced record is this many milliseconds \
         old. Unlike Kafka, an unset value does not fall back to \
         log.flush.scheduler.interval.ms."),
    topic("message.max.bytes", "max.message.bytes", Int, Some("1048588"), at_least(0),
        "The largest record batch accepted, in bytes."),
    topic("write.caching", "write.caching", Boolean, Some("false"), Check::Any,
        "Off (the default): a produce with acks=all is answered only once its records are \
         synced to disk on the in-sync replicas. On: Kafka's behaviour, acknowledged from the \
         page cache. Redpanda's name for the switch."),
    topic("log.cleanup.policy", "cleanup.policy", List, Some("delete"), CLEANUP_POLICY,
        "What happens to old segments: delete, the only policy runnel supports."),
    topic("min.insync.replicas", "min.insync.replicas", Int, Some("1"), at_least(1),
        "A produce with acks=all fails with NOT_ENOUGH_REPLICAS when fewer replicas than this \
         are in sync."),
    topic("unclean.leader.election.enable", "unclean.leader.election.enable", Boolean,
        Some("false"), Check::Any,
        "Whether a replica outside the in-sync set may become leader as a last resort, at the \
         cost of losing acknowledged records."),
    topic("log.message.timestamp.type", "message.timestamp.type", Str, Some("CreateTime"),
        TIMESTAMP_TYPE,
        "Which timestamp records keep: CreateTime, the producer's; or LogAppendTime, the \
         leader's clock when it appends the batch (answered to the producer as \
         log_append_time_ms)."),
    topic("compression.type", "compression.type", Str, Some("producer"), COMPRESSION_TYPE,
        "How stored batches are compressed: producer keeps each batch as the producer \
         compressed it; uncompressed, gzip, snappy, lz4 or zstd make the leader recompress \
         every batch in another codec (keeping its offsets, timestamps and producer \
         sequence numbers)."),
    topic("compression.gzip.level", "compression.gzip.level", Int, Some("-1"),
        Check::Custom(gzip_level),
        "The gzip level the broker recompresses with when compression.type is gzip: 1 to 9, \
         or -1 for the codec's default (6)."),
    topic("compression.lz4.level", "compression.lz4.level", Int, Some("9"),
        Check::Range { min: 1, max: 17 },
        "The LZ4 level when the broker recompresses with lz4. Accepted; runnel's LZ4 encoder \
         has one (fast) level."),
    topic("compression.zstd.level", "compression.zstd.level", Int, Some("3"),
        Check::Range { min: -131_072, max: 22 },
        "The zstd level when the broker recompresses with zstd. Accepted; runnel's pure-Rust \
         zstd encoder has one level, about zstd's level 1."),
    topic("log.segment.delete.delay.ms", "file.delete.delay.ms", Long, Some("60000"),
        at_least(0),
        "How long a deleted segment's files wait before they are removed from disk."),
    topic("log.preallocate", "preallocate", Boolean, Some("false"), Check::Any,
        "Whether a new segment file is preallocated to its full size."),
    topic("log.message.timestamp.before.max.ms", "message.timestamp.before.max.ms", Long,
        Some(LONG_MAX), at_least(0),
        "Refuse a batch whose timestamp is more than this many milliseconds before the \
         broker's clock."),
    topic("log.message.timestamp.after.max.ms", "message.timestamp.after.max.ms", Long,
        Some(LONG_MAX), at_least(0),
        "Refuse a batch whose timestamp is more than this many milliseconds after the \
         broker's clock."),
    // Broker settings.
    broker("node.id", Int, Some("0"), at_least(0),
        "This broker's id in the cluster."),
    broker("broker.id", Int, None, at_least(0),
        "The older name of node.id; when both are set they must be equal.")
        .synonym_of("node.id"),
    broker("log.dirs", Str, Some("./runnel-data"), Check::Custom(one_directory),
        "The directory holding the partition logs. runnel uses exactly one directory."),
    broker("log.dir", Str, None, Check::Custom(one_directory),
        "The directory holding the partition logs; used only when log.dirs is not set.")
        .synonym_of("log.dirs"),
    broker("listeners", Str, Some("PLAINTEXT://127.0.0.1:9092"), Check::Custom(listener_list),
        "Where the node listens: one PLAINTEXT://HOST:PORT for clients and brokers (an empty \
         host is every interface), and, on a controller, one listener named in \
         controller.listener.names for the quorum (CONTROLLER://HOST:PORT)."),
    broker("process.roles", List, Some("broker,controller"), Check::Custom(roles_list),
        "The node's roles: broker (serves clients and hosts partitions), controller (a voter \
         of the metadata quorum), or both."),
    broker("controller.quorum.voters", List, Some(""), Check::Custom(voters_list),
        "The metadata quorum's voters, ID@HOST:PORT each, at their controller listeners. \
         Empty: this node alone is the quorum (it must have the controller role)."),
    broker("controller.listener.names", List, Some("CONTROLLER"), Check::Custom(names_list),
        "The names of the listeners the quorum speaks on; the first is the one a controller \
         serves."),
    broker("cluster.id", Str, None, Check::Custom(cluster_id),
        "Pins the cluster id (22 characters of base64url, as kafka-storage random-uuid \
         prints). When not set, the quorum's first leader picks one; a node whose data \
         directory belongs to another cluster refuses to start. runnel-specific: Kafka takes \
         the id from kafka-storage format instead."),
    broker("controller.quorum.election.timeout.ms", Int, Some("1000"), at_least(1),
        "How long a voter waits without a leader before it stands (plus a random share of \
         as much again)."),
    broker("controller.quorum.election.backoff.max.ms", Int, Some("1000"), at_least(1),
        "The most a voter waits after a lost election before it stands again."),
    broker("controller.quorum.fetch.timeout.ms", Int, Some("2000"), at_least(1),
        "A follower that has not heard from its leader for this long stands for election; a \
         leader not fetched from by a majority for 1.5 times this long resigns."),
    broker("controller.quorum.request.timeout.ms", Int, Some("2000"), at_least(1),
        "How long a quorum request waits for its answer."),
    broker("controller.quorum.retry.backoff.ms", Int, Some("20"), at_least(0),
        "The pause before a failed quorum request is tried again."),
    broker("metadata.log.max.record.bytes.between.snapshots", Long, Some("20971520"),
        at_least(1),
        "A node snapshots its metadata state once this many bytes of metadata records were \
         applied since its last snapshot; the quorum's log below a snapshot is deleted \
         (runnel deletes it at once; Kafka keeps it up to metadata.max.retention.bytes)."),
    broker("metadata.log.max.snapshot.interval.ms", Long, Some("3600000"), at_least(0),
        "A node snapshots its metadata state this long after its last snapshot if anything \
         was applied since (0: only by size)."),
    broker("broker.heartbeat.interval.ms", Int, Some("2000"), at_least(1),
        "How often a broker heartbeats to the active controller."),
    broker("broker.session.timeout.ms", Int, Some("9000"), at_least(1),
        "A broker that has not heartbeated for this long is fenced and its partitions get \
         other leaders."),
    broker("replica.lag.time.max.ms", Long, Some("30000"), at_least(1),
        "A follower that has not caught up with its leader's log end for this long leaves \
         the in-sync replicas."),
    broker("replica.fetch.wait.max.ms", Int, Some("500"), at_least(0),
        "How long a follower's fetch may wait at the leader for new data."),
    broker("replica.fetch.max.bytes", Int, Some("1048576"), at_least(0),
        "The most data a follower asks for per partition per fetch (at least one batch is \
         always sent)."),
    broker("replica.fetch.response.max.bytes", Int, Some("10485760"), at_least(0),
        "The most data a follower asks for per fetch."),
    broker("replica.socket.timeout.ms", Int, Some("30000"), at_least(1),
        "How long a follower waits for its leader to answer a fetch (or a connection) \
         before it drops the connection and fetches again."),
    broker("offsets.commit.timeout.ms", Int, Some("5000"), at_least(1),
        "How long an offset commit (or any group record) waits for the in-sync replicas of its \
         __consumer_offsets partition to hold it before it is answered \
         COORDINATOR_NOT_AVAILABLE."),
    broker("replica.fetch.backoff.ms", Int, Some("1000"), at_least(0),
        "How long a follower waits after a failed fetch before it fetches again."),
    broker("auto.leader.rebalance.enable", Boolean, Some("true"), Check::Any,
        "Whether the controller moves a partition's leadership back to its preferred (first) \
         replica once that one is eligible again, when a broker leads too few of the \
         partitions it prefers."),
    broker("leader.imbalance.check.interval.seconds", Long, Some("300"), at_least(1),
        "How often the controller checks the brokers' leader imbalance."),
    broker("leader.imbalance.per.broker.percentage", Int, Some("10"),
        Check::Range { min: 0, max: 100 },
        "The share of a broker's preferred partitions that it may fail to lead before the \
         controller rebalances them."),
    broker("advertised.listeners", Str, None, Check::Custom(listener_list),
        "The PLAINTEXT://HOST:PORT clients are told to connect to; when not set, the listen \
         address (which must then not be a wildcard)."),
    broker("num.partitions", Int, Some("1"), at_least(1),
        "The number of partitions of a topic created without one."),
    broker("default.replication.factor", Int, Some("1"), Check::Range { min: 1, max: SHORT_MAX },
        "The replication factor of a topic created without one."),
    broker("auto.create.topics.enable", Boolean, Some("true"), Check::Any,
        "Whether metadata and produce requests for an unknown topic create it."),
    broker("delete.topic.enable", Boolean, Some("true"), Check::Any,
        "Whether topics can be deleted."),
    broker("socket.request.max.bytes", Int, Some("104857600"), at_least(1),
        "The largest request accepted on a connection, in bytes."),
    broker("log.retention.check.interval.ms", Long, Some("300000"), at_least(1),
        "How often, in milliseconds, partitions are checked for segments to delete."),
    broker("log.flush.scheduler.interval.ms", Long, Some("1000"), at_least(1),
        "How often, in milliseconds, partitions are checked against flush.ms. Kafka's default \
         is never (Long.MAX), which leaves flush.ms unchecked; runnel checks every second."),
    broker("log.flush.offset.checkpoint.interval.ms", Int, Some("60000"), at_least(0),
        "How often, in milliseconds, the recovery points are checkpointed."),
    broker("log.flush.start.offset.checkpoint.interval.ms", Int, Some("60000"), at_least(0),
        "How often, in milliseconds, the log start offsets are checkpointed."),
    broker("producer.id.expiration.ms", Int, Some("86400000"), at_least(1),
        "How long, in milliseconds, the broker remembers an idle producer id."),
    // Consumer groups.
    broker("offsets.topic.num.partitions", Int, Some("50"), Check::Range { min: 1, max: 100_000 },
        "The number of partitions of __consumer_offsets, fixed when it is created: a group's \
         coordinator is the leader of partition abs(hash(group.id)) % this."),
    broker("offsets.topic.replication.factor", Int, Some("3"), Check::Range { min: 1, max: SHORT_MAX },
        "The replication factor of __consumer_offsets, capped at the live brokers (Kafka \
         refuses to create the topic with fewer; runnel gives one node groups)."),
    broker("offsets.topic.segment.bytes", Int, Some("104857600"), at_least(1),
        "The segment size of __consumer_offsets."),
    broker("offsets.retention.minutes", Int, Some("10080"), at_least(1),
        "How long a committed offset of a group without members is kept, counted from when \
         the group became empty (or from the commit, for groups that never had members)."),
    broker("offsets.retention.check.interval.ms", Long, Some("600000"), at_least(1),
        "How often, in milliseconds, expired committed offsets are looked for."),
    broker("offset.metadata.max.bytes", Int, Some("4096"), at_least(0),
        "The largest metadata string a committed offset may carry."),
    broker("group.initial.rebalance.delay.ms", Int, Some("3000"), at_least(0),
        "How long the first rebalance of an empty group waits for more members to join."),
    broker("group.min.session.timeout.ms", Int, Some("6000"), at_least(0),
        "The shortest session timeout a group member may ask for."),
    broker("group.max.session.timeout.ms", Int, Some("1800000"), at_least(0),
        "The longest session timeout a group member may ask for."),
    broker("group.max.size", Int, Some("2147483647"), at_least(1),
        "The most members a group may have."),
];

const QUORUM: &str = "runnel takes its voters from controller.quorum.voters (KIP-853 bootstrap servers are not supported yet)";

/// Kafka keys that real `server.properties` files carry and runnel accepts with a warning,
/// each with the reason it is ignored.
#[rustfmt::skip]
const IGNORED: &[(&str, &str)] = &[
    ("controller.quorum.bootstrap.servers", QUORUM),
    ("inter.broker.listener.name", "runnel serves brokers and clients on one listener"),
    ("listener.security.protocol.map", "runnel supports only PLAINTEXT"),
    ("num.network.threads", "runnel sizes its own tasks"),
    ("num.io.threads", "runnel sizes its own tasks"),
    ("socket.send.buffer.bytes", "runnel uses the operating system's socket buffer sizes"),
    ("socket.receive.buffer.bytes", "runnel uses the operating system's socket buffer sizes"),
    ("num.recovery.threads.per.data.dir", "runnel recovers partitions on its own tasks"),
    ("transaction.state.log.replication.factor", "runnel has no transactions"),
    ("transaction.state.log.min.isr", "runnel has no transactions"),
    ("share.coordinator.state.topic.replication.factor", "runnel has no share groups"),
    ("share.coordinator.state.topic.min.isr", "runnel has no share groups"),
    ("zookeeper.connect", "runnel has no ZooKeeper"),
    ("zookeeper.connection.timeout.ms", "runnel has no ZooKeeper"),
];

/// The broker key `name`.
pub(crate) fn broker_key(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}

/// The keys that set `sets`, in precedence order.
pub(crate) fn synonyms(sets: Sets) -> impl Iterator<Item = &'static Key> {
    KEYS.iter().filter(move |k| k.sets == sets)
}

/// Every topic-level key, each with its primary broker key (the first that sets it: its type,
/// check and documentation are the topic key's), in table order.
pub(crate) fn topic_keys() -> impl Iterator<Item = (&'static str, &'static Key)> {
    KEYS.iter().enumerate().filter_map(|(i, k)| match k.sets {
        Sets::Topic(t) if !KEYS[..i].iter().any(|e| e.sets == k.sets) => Some((t, k)),
        _ => None,
    })
}

/// Why Kafka key `name` is ignored, if it is one runnel accepts without using.
pub(crate) fn ignored(name: &str) -> Option<&'static str> {
    IGNORED
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, why)| *why)
}

/// `compression.gzip.level`: 1 to 9, or -1 for the default.
fn gzip_level(value: &Value) -> Result<(), String> {
    match value.as_int() {
        Some(-1 | 1..=9) => Ok(()),
        _ => Err("expected 1 to 9, or -1 for the codec's default".to_owned()),
    }
}

/// `log.dirs`: runnel keeps every partition in one directory.
fn one_directory(value: &Value) -> Result<(), String> {
    match split_list(value.as_str().unwrap_or_default()).len() {
        0 => Err("empty: expected a directory".to_owned()),
        1 => Ok(()),
        n => Err(format!(
            "{n} directories: runnel uses exactly one data directory"
        )),
    }
}

/// `listeners`, `advertised.listeners`: each entry is NAME://HOST:PORT.
fn roles_list(value: &Value) -> Result<(), String> {
    let roles = split_list(&value.to_string());
    if roles.is_empty() {
        return Err("empty: expected broker, controller, or broker,controller".to_owned());
    }
    for r in &roles {
        if r != "broker" && r != "controller" {
            return Err(format!(
                "{r:?} is not a role: expected broker or controller"
            ));
        }
    }
    Ok(())
}

fn voters_list(value: &Value) -> Result<(), String> {
    for v in split_list(&value.to_string()) {
        parse_voter(&v)?;
    }
    Ok(())
}

/// One `ID@HOST:PORT` of `controller.quorum.voters`.
pub(crate) fn parse_voter(entry: &str) -> Result<(i32, String), String> {
    let bad = || format!("{entry:?} is not ID@HOST:PORT");
    let (id, addr) = entry.split_once('@').ok_or_else(bad)?;
    let id: i32 = id.trim().parse().map_err(|_| bad())?;
    if id < 0 {
        return Err(format!("{entry:?}: a node id is not negative"));
    }
    let l = listener::parse(&format!("CONTROLLER://{addr}")).map_err(|_| bad())?;
    if l.is_wildcard() || l.port == 0 {
        return Err(format!("{entry:?}: a voter needs an address to connect to"));
    }
    Ok((id, l.address()))
}

fn names_list(value: &Value) -> Result<(), String> {
    if split_list(&value.to_string()).is_empty() {
        return Err("empty: expected a listener name such as CONTROLLER".to_owned());
    }
    Ok(())
}

fn cluster_id(value: &Value) -> Result<(), String> {
    let id = value.as_str().unwrap_or_default();
    let ok = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if id.len() != 22 || !id.chars().all(ok) {
        return Err(format!(
            "{id:?} is not a cluster id: expected 22 characters of base64url"
        ));
    }
    Ok(())
}

fn listener_list(value: &Value) -> Result<(), String> {
    let entries = split_list(value.as_str().unwrap_or_default());
    if entries.is_empty() {
        return Err("empty: expected PLAINTEXT://HOST:PORT".to_owned());
    }
    entries
        .iter()
        .try_for_each(|e| listener::parse(e).map(drop))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn names_are_unique_and_none_is_both_known_and_ignored() {
        let mut names = BTreeSet::new();
        for key in KEYS {
            assert!(names.insert(key.name), "{} twice", key.name);
            assert!(
                ignored(key.name).is_none(),
                "{} known and ignored",
                key.name
            );
            assert!(!key.doc.is_empty(), "{} has no doc", key.name);
        }
        for (name, _) in IGNORED {
            assert!(names.insert(name), "{name} twice");
        }
    }

    #[test]
    fn every_default_parses_and_passes_its_own_check() {
        for key in KEYS {
            assert!(
                key.check.applies_to(key.config_type),
                "{}: check vs type",
                key.name
            );
            let Some(text) = key.default else { continue };
            let value = super::super::value::parse(key.config_type, text);
            let value = value.unwrap_or_else(|e| panic!("{}: default {text}: {e}", key.name));
            key.check
                .check(&value)
                .unwrap_or_else(|e| panic!("{}: {e}", key.name));
        }
    }

    #[test]
    fn every_setting_but_advertised_listeners_has_a_default() {
        for key in KEYS {
            let has_default = synonyms(key.sets).any(|k| k.default.is_some());
            assert!(
                has_default || ["advertised.listeners", "cluster.id"].contains(&key.name),
                "{}",
                key.name
            );
            // Synonyms sit together, so precedence is table order within a run.
            let first = KEYS.iter().position(|k| k.sets == key.sets).unwrap();
            let count = synonyms(key.sets).count();
            assert!(
                KEYS[first..first + count]
                    .iter()
                    .all(|k| k.sets == key.sets)
            );
        }
    }

    #[test]
    fn a_topic_key_shares_its_type_with_every_unscaled_synonym() {
        for (name, primary) in topic_keys() {
            assert_eq!(primary.scale, 1, "{name}");
            for key in synonyms(Sets::Topic(name)).filter(|k| k.scale == 1) {
                assert_eq!(key.config_type, primary.config_type, "{}", key.name);
            }
        }
        let names: Vec<_> = topic_keys().map(|(t, _)| t).collect();
        assert_eq!(names.len(), 23, "{names:?}");
    }
}
