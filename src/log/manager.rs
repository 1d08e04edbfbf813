//! All the partition logs of one data directory (Kafka's `log.dirs`, one directory here), and
//! the background work over them: retention checks, time-based flushes, checkpoints.

use super::config::LogConfig;
use super::partition_log::{LogError, PartitionLog};
use crate::env::Env;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A topic's partition.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: i32) -> TopicPartition {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }

    /// The directory name, `<topic>-<partition>`, as Kafka names it.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.topic, self.partition)
    }

    /// Parses a partition directory name; None for anything else (including directories
    /// being deleted, `<topic>-<partition>.<id>-delete`).
    pub fn parse_dir_name(name: &str) -> Option<TopicPartition> {
        let (topic, partition) = name.rsplit_once('-')?;
        if topic.is_empty()
            || partition.is_empty()
            || !partition.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let partition: i32 = partition.parse().ok()?;
        Some(TopicPartition::new(topic, partition))
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// Suffix of a partition directory renamed for deletion.
const DELETE_SUFFIX: &str = "-delete";

/// How often the background work runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackgroundIntervals {
    /// `log.retention.check.interval.ms` (Kafka default 5 minutes).
    pub retention_check_ms: u64,
    /// `log.flush.scheduler.interval.ms`: how often `flush.ms` is checked.
    pub flush_check_ms: u64,
    /// `log.flush.offset.checkpoint.interval.ms` (Kafka default 1 minute).
    pub checkpoint_ms: u64,
    /// `producer.id.expiration.check.interval.ms` (Kafka default 10 minutes).
    pub producer_expiration_check_ms: u64,
}

impl Default for BackgroundIntervals {
    fn default() -> Self {
        BackgroundIntervals {
            retention_check_ms: 300_000,
            flush_check_ms: 1_000,
            checkpoint_ms: 60_000,
            producer_expiration_check_ms: 600_000,
        }
    }
}

/// The logs of one data directory.
pub struct LogManager {
    /// The seam.
    env: Env,
    /// The data directory.
    data_dir: PathBuf,
    /// Open logs.
    logs: Mutex<BTreeMap<TopicPartition, Arc<PartitionLog>>>,
    /// Serialises opening, creating and deleting logs.
    admin: tokio::sync::Mutex<()>,
}

impl LogManager {
    /// A manager for `data_dir`, which is created if missing. Directories left half-deleted by
    /// a crash are removed. No partition is opened until asked for.
    pub async fn new(env: Env, data_dir: &Path) -> Result<Arc<LogManager>, LogError> {
        crate::env::disk::create_dir_durable(&*env.disk, data_dir).await?;
        let mut removed = false;
        for entry in env.disk.list_dir(data_dir)? {
            if entry.is_dir && entry.name.ends_with(DELETE_SUFFIX) {
                tracing::info!(dir = %entry.name, "finishing the deletion of a partition directory");
                env.disk.remove_dir_all(&data_dir.join(&entry.name))?;
                removed = true;
            }
        }
        if removed {
            env.disk.sync_dir(data_dir).await?;
        }
        Ok(Arc::new(LogManager {
            env,
            data_dir: data_dir.to_path_buf(),
            logs: Mutex::new(BTreeMap::new()),
            admin: tokio::sync::Mutex::new(()),
        }))
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<TopicPartition, Arc<PartitionLog>>> {
        self.logs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The partition directories present on disk, sorted.
    pub fn partitions_on_disk(&self) -> Result<Vec<TopicPartition>, LogError> {
        Ok(self
            .env
            .disk
            .list_dir(&self.data_dir)?
            .into_iter()
            .filter(|e| e.is_dir)
            .filter_map(|e| TopicPartition::parse_dir_name(&e.name))
            .collect())
    }

    /// The open log of `tp`, if any.
    pub fn get(&self, tp: &TopicPartition) -> Option<Arc<PartitionLog>> {
        self.lock().get(tp).cloned()
    }

    /// All open logs, sorted by partition.
    pub fn all(&self) -> Vec<(TopicPartition, Arc<PartitionLog>)> {
        self.lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Opens (recovering) or creates the log of `tp`.
    pub async fn open_log(
        &self,
        tp: &TopicPartition,
        config: LogConfig,
    ) -> Result<Arc<PartitionLog>, LogError> {
        let _admin = self.admin.lock().await;
        if let Some(log) = self.get(tp) {
            return Ok(log);
        }
        let dir = self.data_dir.join(tp.dir_name());
        let log = PartitionLog::open(&self.env, &dir, config).await?;
        self.lock().insert(tp.clone(), log.clone());
        Ok(log)
    }

    /// Deletes the log of `tp` and its directory (open or not). The directory is first renamed
    /// to `<topic>-<partition>.<n>-delete`, so a crash midway cannot leave a half-deleted
    /// partition that looks like a damaged one.
    pub async fn delete_log(&self, tp: &TopicPartition) -> Result<(), LogError> {
        let _admin = self.admin.lock().await;
        if let Some(log) = self.lock().remove(tp) {
            log.take_offline("the partition was deleted");
        }
        let dir = self.data_dir.join(tp.dir_name());
        self.env
            .probe
            .event(crate::env::ProbeEvent::Deleted { dir: &dir });
        if !self.env.disk.exists(&dir) {
            return Ok(());
        }
        let doomed = self.data_dir.join(format!(
            "{}.{:016x}{DELETE_SUFFIX}",
            tp.dir_name(),
            self.env.rng.next_u64()
        ));
        self.env.disk.rename(&dir, &doomed)?;
        self.env.disk.sync_dir(&self.data_dir).await?;
        self.env.disk.remove_dir_all(&doomed)?;
        self.env.disk.sync_dir(&self.data_dir).await?;
        Ok(())
    }

    /// Runs retention checks, time-based flushes, checkpoints and the expiry of idle
    /// producers forever, at `intervals`. `producer_id_expiration_ms` says, at each expiry
    /// check, how long an idle idempotent producer is remembered (`producer.id.expiration.ms`,
    /// a dynamic config: the owner reads it from the configs in effect).
    pub async fn run_background(
        self: Arc<Self>,
        intervals: BackgroundIntervals,
        producer_id_expiration_ms: impl Fn() -> u64 + Send + 'static,
    ) {
        let start = crate::env::monotonic_now();
        // An interval whose first tick is one period from now (not at once).
        let every = |ms: u64| {
            let period = Duration::from_millis(ms.max(1));
            let mut i = tokio::time::interval_at(start + period, period);
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        };
        let mut retention = every(intervals.retention_check_ms);
        let mut flush = every(intervals.flush_check_ms);
        let mut checkpoint = every(intervals.checkpoint_ms);
        let mut producers = every(intervals.producer_expiration_check_ms);
        loop {
            tokio::select! {
                biased;
                _ = retention.tick() => self.retention_round().await,
                _ = flush.tick() => self.flush_round().await,
                _ = checkpoint.tick() => self.checkpoint_round().await,
                _ = producers.tick() => self.expire_producers(producer_id_expiration_ms()),
            }
        }
    }

    /// Applies retention to every log once.
    pub async fn retention_round(&self) {
        for (tp, log) in self.all() {
            match log.delete_expired_segments().await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(partition = %tp, segments = n, "retention deleted segments")
                }
                Err(e) => tracing::warn!(partition = %tp, error = %e, "retention check failed"),
            }
        }
    }

    /// Syncs every log whose `flush.ms` has passed.
    pub async fn flush_round(&self) {
        for (tp, log) in self.all() {
            if let Err(e) = log.flush_if_due().await {
                tracing::warn!(partition = %tp, error = %e, "time-based flush failed");
            }
        }
    }

    /// Forgets idempotent producers idle for longer than `expiration_ms`, in every log.
    pub fn expire_producers(&self, expiration_ms: u64) {
        let ms = i64::try_from(expiration_ms).unwrap_or(i64::MAX);
        for (tp, log) in self.all() {
            let n = log.expire_idle_producers(ms);
            if n > 0 {
                tracing::info!(partition = %tp, producers = n, "expired idle producer ids");
            }
        }
    }

    /// Writes every log's checkpoint.
    pub async fn checkpoint_round(&self) {
        for (tp, log) in self.all() {
            if let Err(e) = log.checkpoint().await {
                tracing::warn!(partition = %tp, error = %e, "checkpoint failed");
            }
        }
    }

    /// Closes every log: syncs it, writes its checkpoint. Used at shutdown.
    pub async fn close_all(&self) {
        for (tp, log) in self.all() {
            if let Err(e) = log.close().await {
                tracing::error!(partition = %tp, error = %e, "closing the log failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_names_round_trip() {
        let tp = TopicPartition::new("my-topic.v2", 12);
        assert_eq!(tp.dir_name(), "my-topic.v2-12");
        assert_eq!(TopicPartition::parse_dir_name("my-topic.v2-12"), Some(tp));
        assert_eq!(
            TopicPartition::parse_dir_name("my-topic.v2-12.00ab-delete"),
            None
        );
        assert_eq!(TopicPartition::parse_dir_name("-3"), None);
        assert_eq!(TopicPartition::parse_dir_name("t-"), None);
        assert_eq!(TopicPartition::parse_dir_name("t-99999999999"), None);
    }
}
