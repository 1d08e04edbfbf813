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
    /// Whether a broker may set it (false: a topic-level key with no broker default, as
    /// `remote.storage.enable`).
    pub(crate) broker: bool,
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
        broker: true,
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

/// A topic-level key that has no broker default in Kafka.
const fn topic_only(
    name: &'static str,
    config_type: ConfigType,
    default: Option<&'static str>,
    check: Check,
    doc: &'static str,
) -> Key {
    Key {
        broker: false,
        ..topic(name, name, config_type, default, check, doc)
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

use ConfigType::{Boolean, Double, Int, List, Long, String as Str};

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
        Some("3600000"), at_least(0),
        "Refuse a batch whose timestamp is more than this many milliseconds after the \
         broker's clock."),
    topic("log.cleaner.delete.retention.ms", "delete.retention.ms", Long, Some("86400000"),
        at_least(0),
        "How long a compacted topic keeps delete tombstones. Stored and described; it takes \
         effect with compaction, which runnel does not have yet."),
    topic("log.cleaner.min.compaction.lag.ms", "min.compaction.lag.ms", Long, Some("0"),
        at_least(0),
        "The least time a record stays uncompacted. Stored and described; it takes effect \
         with compaction, which runnel does not have yet."),
    topic("log.cleaner.max.compaction.lag.ms", "max.compaction.lag.ms", Long, Some(LONG_MAX),
        at_least(1),
        "The most time a record stays uncompacted. Stored and described; it takes effect with \
         compaction, which runnel does not have yet."),
    topic("log.cleaner.min.cleanable.ratio", "min.cleanable.dirty.ratio", Double, Some("0.5"),
        Check::Custom(ratio),
        "The share of a log that must be uncompacted before it is compacted. Stored and \
         described; it takes effect with compaction, which runnel does not have yet."),
    topic("log.local.retention.ms", "local.retention.ms", Long, Some("-2"), at_least(-2),
        "Tiered storage's local retention. Accepted with no effect: runnel has no tiered \
         storage, so retention.ms applies to the whole log."),
    topic("log.local.retention.bytes", "local.retention.bytes", Long, Some("-2"), at_least(-2),
        "Tiered storage's local retention. Accepted with no effect: runnel has no tiered \
         storage, so retention.bytes applies to the whole log."),
    topic_only("remote.storage.enable", Boolean, Some("false"), Check::Custom(no_tiering),
        "Tiered storage for the topic; runnel has none, so only false is accepted."),
    topic_only("remote.log.copy.disable", Boolean, Some("false"), Check::Any,
        "Tiered storage's copy switch. Accepted with no effect: runnel has no tiered storage."),
    topic_only("remote.log.delete.on.disable", Boolean, Some("false"), Check::Any,
        "Tiered storage's delete switch. Accepted with no effect: runnel has no tiered \
         storage."),
    topic_only("leader.replication.throttled.replicas", List, Some(""), Check::Any,
        "Replicas whose leader-side replication is throttled. Accepted with no effect: runnel \
         has no replication quotas."),
    topic_only("follower.replication.throttled.replicas", List, Some(""), Check::Any,
        "Replicas whose follower-side replication is throttled. Accepted with no effect: \
         runnel has no replication quotas."),
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
    broker("broker.rack", Str, None, Check::Any,
        "The rack of the broker, registered with the controller and shown to clients in \
         Metadata. runnel does not yet place replicas by rack."),
    broker("max.connections", Int, Some("2147483647"), at_least(0),
        "The most live client connections; at the limit the broker stops accepting until one \
         closes (KIP-402)."),
    broker("max.connections.per.ip", Int, Some("2147483647"), at_least(0),
        "The most live connections from one IP address; a connection beyond it is closed at \
         once."),
    broker("max.connections.per.ip.overrides", Str, Some(""), Check::Custom(per_ip_list),
        "Per-address limits that replace max.connections.per.ip: HOST:COUNT, comma \
         separated, with IP addresses as hosts."),
    broker("connections.max.idle.ms", Long, Some("600000"), at_least(1),
        "A connection with no request in flight and none received for this long is closed."),
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

const PLAINTEXT_ONLY: &str = "runnel supports only PLAINTEXT listeners (no TLS)";
const NO_SASL: &str = "runnel supports only PLAINTEXT listeners (no SASL authentication)";
const NO_TOKENS: &str = "runnel has no delegation tokens";
const TIERED: &str = "runnel has no tiered storage";
const TXN: &str = "runnel has no transactions yet";
const SHARE: &str = "runnel has no share groups (KIP-932)";
const STREAMS: &str = "runnel has no streams groups (KIP-1071)";
const KIP848: &str = "runnel's groups speak the classic protocol only (KIP-848's consumer protocol is not supported yet)";
const CLEANER: &str = "runnel has no log cleaner (compaction) yet";
const PURGATORY: &str = "runnel keeps no purgatories to purge";
const QUOTAS: &str = "runnel has no quotas";
const METRICS: &str = "runnel has no metrics reporters";
const NO_CLASSES: &str = "runnel loads no Java classes";
const ONE_DIR: &str = "runnel uses one log directory";
const METADATA_LOG: &str =
    "runnel keeps its metadata log in log.dirs and deletes it below each snapshot";
const SOCKETS: &str = "runnel uses the operating system's socket settings";
const TELEMETRY: &str = "runnel has no client telemetry (KIP-714)";
const FETCH_SESSIONS: &str =
    "runnel has no incremental fetch sessions (KIP-227): every fetch is a full one";
const TASKS: &str = "runnel sizes its own tasks";
const QUORUM: &str = "runnel takes its voters from controller.quorum.voters (KIP-853 bootstrap servers are not supported yet)";

/// Kafka keys that real `server.properties` files carry and runnel accepts with a warning,
/// each with the reason it is ignored.
#[rustfmt::skip]
const IGNORED: &[(&str, &str)] = &[
    ("controller.quorum.bootstrap.servers", QUORUM),
    ("inter.broker.listener.name", "runnel serves brokers and clients on one listener"),
    ("listener.security.protocol.map", "runnel supports only PLAINTEXT"),
    ("num.network.threads", TASKS),
    ("num.io.threads", TASKS),
    ("socket.send.buffer.bytes", "runnel uses the operating system's socket buffer sizes"),
    ("socket.receive.buffer.bytes", "runnel uses the operating system's socket buffer sizes"),
    ("num.recovery.threads.per.data.dir", TASKS),
    ("transaction.state.log.replication.factor", TXN),
    ("transaction.state.log.min.isr", TXN),
    ("share.coordinator.state.topic.replication.factor", SHARE),
    ("share.coordinator.state.topic.min.isr", SHARE),
    ("zookeeper.connect", "runnel has no ZooKeeper"),
    ("zookeeper.connection.timeout.ms", "runnel has no ZooKeeper"),
    // The rest of Kafka 4.1's broker keys (src/config/kafka/broker-keys-4.1.tsv).
    ("add.partitions.to.txn.retry.backoff.max.ms", TXN),
    ("add.partitions.to.txn.retry.backoff.ms", TXN),
    ("alter.config.policy.class.name", NO_CLASSES),
    ("alter.log.dirs.replication.quota.window.num", QUOTAS),
    ("alter.log.dirs.replication.quota.window.size.seconds", QUOTAS),
    ("background.threads", TASKS),
    ("client.quota.callback.class", QUOTAS),
    ("connection.failed.authentication.delay.ms", NO_SASL),
    ("connections.max.reauth.ms", NO_SASL),
    ("controlled.shutdown.enable", "a runnel broker always shuts down in a controlled way when stopped"),
    ("controller.quorum.append.linger.ms", TASKS),
    ("controller.quota.window.num", QUOTAS),
    ("controller.quota.window.size.seconds", QUOTAS),
    ("controller.socket.timeout.ms", SOCKETS),
    ("create.topic.policy.class.name", NO_CLASSES),
    ("delegation.token.expiry.check.interval.ms", NO_TOKENS),
    ("delegation.token.expiry.time.ms", NO_TOKENS),
    ("delegation.token.max.lifetime.ms", NO_TOKENS),
    ("delegation.token.secret.key", NO_TOKENS),
    ("delete.records.purgatory.purge.interval.requests", PURGATORY),
    ("early.start.listeners", SOCKETS),
    ("fetch.max.bytes", "runnel bounds a fetch response by the request's own max_bytes"),
    ("fetch.purgatory.purge.interval.requests", PURGATORY),
    ("group.consumer.assignors", KIP848),
    ("group.consumer.heartbeat.interval.ms", KIP848),
    ("group.consumer.max.heartbeat.interval.ms", KIP848),
    ("group.consumer.max.session.timeout.ms", KIP848),
    ("group.consumer.max.size", KIP848),
    ("group.consumer.migration.policy", KIP848),
    ("group.consumer.min.heartbeat.interval.ms", KIP848),
    ("group.consumer.min.session.timeout.ms", KIP848),
    ("group.consumer.session.timeout.ms", KIP848),
    ("group.coordinator.append.linger.ms", TASKS),
    ("group.coordinator.rebalance.protocols", KIP848),
    ("group.coordinator.threads", TASKS),
    ("group.share.assignors", SHARE),
    ("group.share.delivery.count.limit", SHARE),
    ("group.share.heartbeat.interval.ms", SHARE),
    ("group.share.max.heartbeat.interval.ms", SHARE),
    ("group.share.max.record.lock.duration.ms", SHARE),
    ("group.share.max.session.timeout.ms", SHARE),
    ("group.share.max.share.sessions", SHARE),
    ("group.share.max.size", SHARE),
    ("group.share.min.heartbeat.interval.ms", SHARE),
    ("group.share.min.record.lock.duration.ms", SHARE),
    ("group.share.min.session.timeout.ms", SHARE),
    ("group.share.partition.max.record.locks", SHARE),
    ("group.share.record.lock.duration.ms", SHARE),
    ("group.share.session.timeout.ms", SHARE),
    ("group.streams.heartbeat.interval.ms", STREAMS),
    ("group.streams.max.heartbeat.interval.ms", STREAMS),
    ("group.streams.max.session.timeout.ms", STREAMS),
    ("group.streams.max.size", STREAMS),
    ("group.streams.max.standby.replicas", STREAMS),
    ("group.streams.min.heartbeat.interval.ms", STREAMS),
    ("group.streams.min.session.timeout.ms", STREAMS),
    ("group.streams.num.standby.replicas", STREAMS),
    ("group.streams.session.timeout.ms", STREAMS),
    ("initial.broker.registration.timeout.ms", "a runnel broker keeps trying to register until it is stopped"),
    ("kafka.metrics.polling.interval.secs", METRICS),
    ("kafka.metrics.reporters", METRICS),
    ("log.cleaner.backoff.ms", CLEANER),
    ("log.cleaner.dedupe.buffer.size", CLEANER),
    ("log.cleaner.enable", "runnel has no log cleaner (compaction) yet"),
    ("log.cleaner.io.buffer.load.factor", CLEANER),
    ("log.cleaner.io.buffer.size", CLEANER),
    ("log.cleaner.io.max.bytes.per.second", CLEANER),
    ("log.cleaner.threads", CLEANER),
    ("log.dir.failure.timeout.ms", ONE_DIR),
    ("max.connection.creation.rate", SOCKETS),
    ("max.incremental.fetch.session.cache.slots", FETCH_SESSIONS),
    ("max.request.partition.size.limit", "runnel does not limit the partitions of a request"),
    ("metadata.log.dir", METADATA_LOG),
    ("metadata.log.segment.bytes", METADATA_LOG),
    ("metadata.log.segment.ms", METADATA_LOG),
    ("metadata.max.idle.interval.ms", METADATA_LOG),
    ("metadata.max.retention.bytes", METADATA_LOG),
    ("metadata.max.retention.ms", METADATA_LOG),
    ("metric.reporters", METRICS),
    ("metrics.num.samples", METRICS),
    ("metrics.recording.level", METRICS),
    ("metrics.sample.window.ms", METRICS),
    ("num.replica.alter.log.dirs.threads", ONE_DIR),
    ("num.replica.fetchers", TASKS),
    ("offsets.load.buffer.size", "runnel loads __consumer_offsets with its own buffers"),
    ("offsets.topic.compression.codec", "runnel writes __consumer_offsets uncompressed"),
    ("principal.builder.class", NO_SASL),
    ("producer.purgatory.purge.interval.requests", PURGATORY),
    ("queued.max.request.bytes", "runnel bounds each connection instead: no further request is read while 16 MiB of its answers wait to be written, one Fetch at a time, and each request by socket.request.max.bytes"),
    ("queued.max.requests", "runnel bounds each connection instead: at most 64 answers wait per connection, in order, and no further request is read while 16 MiB of them wait to be written"),
    ("quota.window.num", QUOTAS),
    ("quota.window.size.seconds", QUOTAS),
    ("remote.fetch.max.wait.ms", TIERED),
    ("remote.list.offsets.request.timeout.ms", TIERED),
    ("remote.log.index.file.cache.total.size.bytes", TIERED),
    ("remote.log.manager.copier.thread.pool.size", TIERED),
    ("remote.log.manager.copy.max.bytes.per.second", TIERED),
    ("remote.log.manager.copy.quota.window.num", TIERED),
    ("remote.log.manager.copy.quota.window.size.seconds", TIERED),
    ("remote.log.manager.expiration.thread.pool.size", TIERED),
    ("remote.log.manager.fetch.max.bytes.per.second", TIERED),
    ("remote.log.manager.fetch.quota.window.num", TIERED),
    ("remote.log.manager.fetch.quota.window.size.seconds", TIERED),
    ("remote.log.manager.task.interval.ms", TIERED),
    ("remote.log.manager.thread.pool.size", TIERED),
    ("remote.log.metadata.custom.metadata.max.bytes", TIERED),
    ("remote.log.metadata.manager.class.name", TIERED),
    ("remote.log.metadata.manager.class.path", TIERED),
    ("remote.log.metadata.manager.impl.prefix", TIERED),
    ("remote.log.metadata.manager.listener.name", TIERED),
    ("remote.log.reader.max.pending.tasks", TIERED),
    ("remote.log.reader.threads", TIERED),
    ("remote.log.storage.manager.class.name", TIERED),
    ("remote.log.storage.manager.class.path", TIERED),
    ("remote.log.storage.manager.impl.prefix", TIERED),
    ("replica.fetch.min.bytes", "a follower's fetch is answered as soon as any data is there"),
    ("replica.high.watermark.checkpoint.interval.ms", "runnel keeps a replicated partition's high watermark in the partition's own checkpoint, written every log.flush.offset.checkpoint.interval.ms and at shutdown"),
    ("replica.selector.class", NO_CLASSES),
    ("replica.socket.receive.buffer.bytes", SOCKETS),
    ("replication.quota.window.num", QUOTAS),
    ("replication.quota.window.size.seconds", QUOTAS),
    ("request.timeout.ms", "a runnel broker bounds its requests to the controller by broker.session.timeout.ms"),
    ("sasl.client.callback.handler.class", NO_SASL),
    ("sasl.enabled.mechanisms", NO_SASL),
    ("sasl.jaas.config", NO_SASL),
    ("sasl.kerberos.kinit.cmd", NO_SASL),
    ("sasl.kerberos.min.time.before.relogin", NO_SASL),
    ("sasl.kerberos.principal.to.local.rules", NO_SASL),
    ("sasl.kerberos.service.name", NO_SASL),
    ("sasl.kerberos.ticket.renew.jitter", NO_SASL),
    ("sasl.kerberos.ticket.renew.window.factor", NO_SASL),
    ("sasl.login.callback.handler.class", NO_SASL),
    ("sasl.login.class", NO_SASL),
    ("sasl.login.connect.timeout.ms", NO_SASL),
    ("sasl.login.read.timeout.ms", NO_SASL),
    ("sasl.login.refresh.buffer.seconds", NO_SASL),
    ("sasl.login.refresh.min.period.seconds", NO_SASL),
    ("sasl.login.refresh.window.factor", NO_SASL),
    ("sasl.login.refresh.window.jitter", NO_SASL),
    ("sasl.login.retry.backoff.max.ms", NO_SASL),
    ("sasl.login.retry.backoff.ms", NO_SASL),
    ("sasl.mechanism.controller.protocol", NO_SASL),
    ("sasl.mechanism.inter.broker.protocol", NO_SASL),
    ("sasl.oauthbearer.assertion.algorithm", NO_SASL),
    ("sasl.oauthbearer.assertion.claim.aud", NO_SASL),
    ("sasl.oauthbearer.assertion.claim.exp.seconds", NO_SASL),
    ("sasl.oauthbearer.assertion.claim.iss", NO_SASL),
    ("sasl.oauthbearer.assertion.claim.jti.include", NO_SASL),
    ("sasl.oauthbearer.assertion.claim.nbf.seconds", NO_SASL),
    ("sasl.oauthbearer.assertion.claim.sub", NO_SASL),
    ("sasl.oauthbearer.assertion.file", NO_SASL),
    ("sasl.oauthbearer.assertion.private.key.file", NO_SASL),
    ("sasl.oauthbearer.assertion.private.key.passphrase", NO_SASL),
    ("sasl.oauthbearer.assertion.template.file", NO_SASL),
    ("sasl.oauthbearer.client.credentials.client.id", NO_SASL),
    ("sasl.oauthbearer.client.credentials.client.secret", NO_SASL),
    ("sasl.oauthbearer.clock.skew.seconds", NO_SASL),
    ("sasl.oauthbearer.expected.audience", NO_SASL),
    ("sasl.oauthbearer.expected.issuer", NO_SASL),
    ("sasl.oauthbearer.jwks.endpoint.refresh.ms", NO_SASL),
    ("sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms", NO_SASL),
    ("sasl.oauthbearer.jwks.endpoint.retry.backoff.ms", NO_SASL),
    ("sasl.oauthbearer.jwks.endpoint.url", NO_SASL),
    ("sasl.oauthbearer.jwt.retriever.class", NO_SASL),
    ("sasl.oauthbearer.jwt.validator.class", NO_SASL),
    ("sasl.oauthbearer.scope", NO_SASL),
    ("sasl.oauthbearer.scope.claim.name", NO_SASL),
    ("sasl.oauthbearer.sub.claim.name", NO_SASL),
    ("sasl.oauthbearer.token.endpoint.url", NO_SASL),
    ("sasl.server.callback.handler.class", NO_SASL),
    ("sasl.server.max.receive.size", NO_SASL),
    ("security.providers", PLAINTEXT_ONLY),
    ("share.coordinator.append.linger.ms", SHARE),
    ("share.coordinator.load.buffer.size", SHARE),
    ("share.coordinator.snapshot.update.records.per.snapshot", SHARE),
    ("share.coordinator.state.topic.compression.codec", SHARE),
    ("share.coordinator.state.topic.num.partitions", SHARE),
    ("share.coordinator.state.topic.segment.bytes", SHARE),
    ("share.coordinator.threads", SHARE),
    ("share.coordinator.write.timeout.ms", SHARE),
    ("share.fetch.purgatory.purge.interval.requests", SHARE),
    ("socket.connection.setup.timeout.max.ms", SOCKETS),
    ("socket.connection.setup.timeout.ms", SOCKETS),
    ("socket.listen.backlog.size", SOCKETS),
    ("ssl.allow.dn.changes", PLAINTEXT_ONLY),
    ("ssl.allow.san.changes", PLAINTEXT_ONLY),
    ("ssl.cipher.suites", PLAINTEXT_ONLY),
    ("ssl.client.auth", PLAINTEXT_ONLY),
    ("ssl.enabled.protocols", PLAINTEXT_ONLY),
    ("ssl.endpoint.identification.algorithm", PLAINTEXT_ONLY),
    ("ssl.engine.factory.class", PLAINTEXT_ONLY),
    ("ssl.key.password", PLAINTEXT_ONLY),
    ("ssl.keymanager.algorithm", PLAINTEXT_ONLY),
    ("ssl.keystore.certificate.chain", PLAINTEXT_ONLY),
    ("ssl.keystore.key", PLAINTEXT_ONLY),
    ("ssl.keystore.location", PLAINTEXT_ONLY),
    ("ssl.keystore.password", PLAINTEXT_ONLY),
    ("ssl.keystore.type", PLAINTEXT_ONLY),
    ("ssl.principal.mapping.rules", PLAINTEXT_ONLY),
    ("ssl.protocol", PLAINTEXT_ONLY),
    ("ssl.provider", PLAINTEXT_ONLY),
    ("ssl.secure.random.implementation", PLAINTEXT_ONLY),
    ("ssl.trustmanager.algorithm", PLAINTEXT_ONLY),
    ("ssl.truststore.certificates", PLAINTEXT_ONLY),
    ("ssl.truststore.location", PLAINTEXT_ONLY),
    ("ssl.truststore.password", PLAINTEXT_ONLY),
    ("ssl.truststore.type", PLAINTEXT_ONLY),
    ("telemetry.max.bytes", TELEMETRY),
    ("transaction.abort.timed.out.transaction.cleanup.interval.ms", TXN),
    ("transaction.max.timeout.ms", TXN),
    ("transaction.partition.verification.enable", TXN),
    ("transaction.remove.expired.transaction.cleanup.interval.ms", TXN),
    ("transaction.state.log.load.buffer.size", TXN),
    ("transaction.state.log.num.partitions", TXN),
    ("transaction.state.log.segment.bytes", TXN),
    ("transactional.id.expiration.ms", TXN),
];

/// Kafka keys runnel accepts, with no effect, only at the value that means "off": anything
/// else would promise what runnel does not do (an authorizer, tiered storage).
#[rustfmt::skip]
const ONLY_OFF: &[(&str, &str, &str)] = &[
    ("authorizer.class.name", "", "runnel has no authorizer: every client may do everything, so an authorizer cannot be configured"),
    ("remote.log.storage.system.enable", "false", "runnel has no tiered storage"),
    ("transaction.two.phase.commit.enable", "false", "runnel has no transactions yet"),
    ("security.inter.broker.protocol", "PLAINTEXT", "runnel supports only PLAINTEXT listeners"),
];

/// The broker key `name`.
pub(crate) fn broker_key(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name && k.broker)
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

/// Kafka 4.1's documented broker keys (name, type, default, dynamic, importance), from the
/// "Broker Configs" page.
const KAFKA_BROKER_KEYS: &str = include_str!("kafka/broker-keys-4.1.tsv");

/// A Kafka broker key that runnel accepts without using it (or accepts only when off): what
/// DescribeConfigs reports for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InertKey {
    pub name: &'static str,
    /// Its type in Kafka.
    pub config_type: ConfigType,
    /// Kafka's default, as Kafka describes it (None: no default).
    pub default: Option<&'static str>,
    /// Why it has no effect in runnel.
    pub why: &'static str,
    /// Whether Kafka lets it change at run time (per broker or cluster-wide).
    pub kafka_dynamic: bool,
}

/// Every Kafka 4.1 broker key runnel accepts with no effect, by name.
pub(crate) fn inert_broker_keys() -> impl Iterator<Item = InertKey> {
    KAFKA_BROKER_KEYS.lines().skip(1).filter_map(|line| {
        let mut cols = line.split('\t');
        let (name, kind, default) = (cols.next()?, cols.next()?, cols.next()?);
        let kafka_dynamic = cols.next().is_some_and(|mode| mode != "read-only");
        let why = ignored(name).or_else(|| only_off(name).map(|(_, why)| why))?;
        let config_type = match kind {
            "boolean" => ConfigType::Boolean,
            "int" => ConfigType::Int,
            "short" => ConfigType::Short,
            "long" => ConfigType::Long,
            "double" => ConfigType::Double,
            "list" => ConfigType::List,
            "class" => ConfigType::Class,
            "password" => ConfigType::Password,
            _ => ConfigType::String,
        };
        // "604800000 (7 days)", "null", "\"\"".
        let default = match default.split(" (").next().unwrap_or_default() {
            "null" => None,
            "\"\"" => Some(""),
            d => Some(d),
        };
        Some(InertKey {
            name,
            config_type,
            default,
            why,
            kafka_dynamic,
        })
    })
}

/// How Kafka 4.1 lets broker key `name` change at run time: `read-only`, `per-broker` or
/// `cluster-wide` (None for a key Kafka does not document).
pub(crate) fn kafka_update_mode(name: &str) -> Option<&'static str> {
    KAFKA_BROKER_KEYS.lines().skip(1).find_map(|line| {
        let mut cols = line.split('\t');
        (cols.next()? == name).then_some(())?;
        cols.nth(2)
    })
}

/// For a Kafka key accepted only when off: the values that mean off, and why others are
/// refused.
pub(crate) fn only_off(name: &str) -> Option<(&'static str, &'static str)> {
    ONLY_OFF
        .iter()
        .find(|(k, _, _)| *k == name)
        .map(|(_, off, why)| (*off, *why))
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

/// `min.cleanable.dirty.ratio`: a share, 0 to 1.
fn ratio(value: &Value) -> Result<(), String> {
    match value.as_str().and_then(|t| t.parse::<f64>().ok()) {
        Some(r) if (0.0..=1.0).contains(&r) => Ok(()),
        _ => Err("expected a number from 0 to 1".to_owned()),
    }
}

/// `remote.storage.enable`: runnel has no tiered storage.
fn no_tiering(value: &Value) -> Result<(), String> {
    match value.as_bool() {
        Some(true) => Err("runnel has no tiered storage".to_owned()),
        _ => Ok(()),
    }
}

/// `max.connections.per.ip.overrides`: HOST:COUNT, comma separated.
fn per_ip_list(value: &Value) -> Result<(), String> {
    per_ip_overrides(value.as_str().unwrap_or_default()).map(drop)
}

/// Parses `max.connections.per.ip.overrides`.
pub(crate) fn per_ip_overrides(
    text: &str,
) -> Result<std::collections::BTreeMap<String, u32>, String> {
    let mut out = std::collections::BTreeMap::new();
    for entry in split_list(text) {
        let bad = || format!("{entry:?} is not HOST:COUNT");
        let (host, count) = entry.rsplit_once(':').ok_or_else(bad)?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        out.insert(host.trim().to_owned(), count);
    }
    Ok(out)
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
                has_default
                    || ["advertised.listeners", "cluster.id", "broker.rack"].contains(&key.name),
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
        assert_eq!(names.len(), 34, "{names:?}");
    }

    /// Kafka 4.1's documented keys (`src/config/kafka/*.tsv`, from the "Broker Configs" and
    /// "Topic-Level Configs" pages): runnel knows every one, as a key of its own, or as one it
    /// accepts with no effect (logged), or accepts only when off. None is "unknown".
    #[test]
    fn every_kafka_4_1_key_is_known_ignored_or_accepted_only_off() {
        let rows = |tsv: &'static str| {
            tsv.lines()
                .skip(1)
                .map(|l| l.split('\t').collect::<Vec<_>>())
                .collect::<Vec<_>>()
        };
        let broker = rows(KAFKA_BROKER_KEYS);
        assert_eq!(broker.len(), 316);
        let mut unknown = Vec::new();
        for row in &broker {
            let name = row[0];
            let known = broker_key(name).is_some();
            let ignored = ignored(name).is_some() || only_off(name).is_some();
            if known == ignored {
                unknown.push(name);
            }
        }
        assert!(unknown.is_empty(), "unknown or both: {unknown:?}");
        let topic = rows(include_str!("kafka/topic-keys-4.1.tsv"));
        assert_eq!(topic.len(), 33);
        let ours: BTreeSet<_> = topic_keys().map(|(t, _)| t).collect();
        let missing: Vec<_> = topic
            .iter()
            .map(|r| r[0])
            .filter(|n| !ours.contains(n))
            .collect();
        assert!(missing.is_empty(), "topic keys unknown: {missing:?}");
        // Each topic key's broker default is Kafka's (its server default property).
        for row in &topic {
            let (name, server) = (row[0], row[3]);
            let (_, primary) = topic_keys().find(|(t, _)| *t == name).unwrap();
            if server != "null" {
                assert!(
                    synonyms(Sets::Topic(name)).any(|k| k.name == server),
                    "{name}: Kafka's broker default is {server}"
                );
            } else {
                assert!(!primary.broker, "{name} has no broker key in Kafka");
            }
        }
    }

    /// Where runnel's default differs from Kafka 4.1's, it is on purpose and listed here; every
    /// other key with a default has Kafka's.
    #[test]
    fn defaults_are_kafka_4_1_s_but_for_the_listed_differences() {
        const DIFFERENT: &[&str] = &[
            // runnel starts as a single node on localhost with its own data directory.
            "listeners",
            "log.dirs",
            "log.dir",
            "process.roles",
            "node.id",
            "controller.listener.names",
            // Checked every second, so flush.ms takes effect.
            "log.flush.scheduler.interval.ms",
            "log.flush.interval.ms",
        ];
        let tsv = KAFKA_BROKER_KEYS;
        let mut wrong = Vec::new();
        for line in tsv.lines().skip(1) {
            let row: Vec<&str> = line.split('\t').collect();
            let (name, kafka) = (row[0], row[2].split(" (").next().unwrap_or_default());
            let Some(key) = broker_key(name) else {
                continue;
            };
            let ours = key.default.unwrap_or("null");
            let kafka = if kafka == "\"\"" { "" } else { kafka };
            let same = ours == kafka
                || (key.default.is_none() && (kafka.is_empty() || kafka == "-1"))
                || (ours.is_empty() && kafka == "null");
            if !same && !DIFFERENT.contains(&name) {
                wrong.push(format!("{name}: runnel {ours}, Kafka {kafka}"));
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    /// `docs/configuration.md` names every key runnel knows (regenerate it with
    /// `python3 docs/configuration.py` after changing the tables).
    #[test]
    fn the_configuration_doc_lists_every_key() {
        let doc = include_str!("../../docs/configuration.md");
        let named = |k: &str| doc.contains(&format!("| `{k}` |"));
        let mut missing: Vec<&str> = KEYS.iter().map(|k| k.name).filter(|k| !named(k)).collect();
        missing.extend(topic_keys().map(|(t, _)| t).filter(|t| !named(t)));
        missing.extend(IGNORED.iter().map(|(k, _)| *k).filter(|k| !named(k)));
        missing.extend(ONLY_OFF.iter().map(|(k, _, _)| *k).filter(|k| !named(k)));
        assert!(
            missing.is_empty(),
            "not in docs/configuration.md: {missing:?}"
        );
    }
}
