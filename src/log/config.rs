//! One partition log's configuration, with Kafka's defaults. The broker resolves it from its
//! own `log.*` settings and the topic's overrides; the field docs name both keys.

/// Kafka's "forever" for the flush settings.
pub const NEVER: i64 = i64::MAX;

/// How a partition log rolls, retains, indexes and flushes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Roll to a new segment before the active one would exceed this many bytes.
    /// Topic `segment.bytes`, broker `log.segment.bytes`; default 1 GiB.
    pub segment_bytes: u64,
    /// Roll when the active segment's first record is this old.
    /// Topic `segment.ms`, broker `log.roll.ms`; default 7 days.
    pub segment_ms: i64,
    /// Largest offset index file; the segment rolls when it is full.
    /// Topic `segment.index.bytes`, broker `log.index.size.max.bytes`; default 10 MiB.
    pub segment_index_bytes: u64,
    /// Add an index entry after this many bytes of batches.
    /// Topic `index.interval.bytes`, broker `log.index.interval.bytes`; default 4096.
    pub index_interval_bytes: u64,
    /// Delete closed segments whose newest record is older than this; -1 keeps them forever.
    /// Topic `retention.ms`, broker `log.retention.ms`; default 7 days.
    pub retention_ms: i64,
    /// Delete the oldest closed segments while the log is larger than this; -1 for no limit.
    /// Topic `retention.bytes`, broker `log.retention.bytes`; default -1.
    pub retention_bytes: i64,
    /// Sync after this many records have been appended since the last sync.
    /// Topic `flush.messages`, broker `log.flush.interval.messages`; default never.
    pub flush_messages: i64,
    /// Sync when the oldest unsynced append is this old.
    /// Topic `flush.ms`, broker `log.flush.interval.ms`; default never.
    pub flush_ms: i64,
    /// Largest record batch accepted.
    /// Topic `max.message.bytes`, broker `message.max.bytes`; default 1048588.
    pub max_message_bytes: u64,
    /// Off (runnel's default): an append that asks for durability (acks=all) returns only once
    /// synced, and consumers see only synced records. On: Kafka's page-cache behaviour.
    /// Topic `write.caching`, broker `write.caching`; default false.
    pub write_caching: bool,
    /// What a leader does to a producer's batches before appending them: `compression.type`,
    /// `compression.gzip.level`, `message.timestamp.type` and the timestamp bounds
    /// `message.timestamp.before.max.ms` / `after.max.ms`. Default: batches kept as sent.
    pub records: crate::record::validator::Rules,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            segment_index_bytes: 10 << 20,
            index_interval_bytes: 4096,
            retention_ms: 7 * 24 * 60 * 60 * 1000,
            retention_bytes: -1,
            flush_messages: NEVER,
            flush_ms: NEVER,
            max_message_bytes: 1_048_588,
            write_caching: false,
            // Kafka 4's message.timestamp.after.max.ms: an hour.
            records: crate::record::validator::Rules {
                timestamp_after_max_ms: 3_600_000,
                ..crate::record::validator::Rules::DEFAULT
            },
        }
    }
}

impl LogConfig {
    /// Positions in a segment are u32 and Kafka caps segments at 2 GiB; this is the effective
    /// segment size.
    pub fn segment_bytes_effective(&self) -> u64 {
        self.segment_bytes.clamp(1, i32::MAX as u64)
    }
}
