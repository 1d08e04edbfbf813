//! A partition's log: ordered segments; appends that assign offsets; reads of whole batches;
//! rolling, retention, the flush policy, group commit and checkpoints.
//!
//! Concurrency: all state sits behind one mutex that is never held across an `.await`. Slow
//! work (fsync, checkpoint writes, reading batch bytes) happens outside it. Syncs are serialised
//! by an async mutex: whoever holds it syncs everything appended so far, and everyone waiting
//! behind it finds their data already covered (group commit).

use super::checkpoint::{self, LogCheckpoint};
use super::config::LogConfig;
use super::leader_epoch::{self, EpochEntry, EpochFileError, LeaderEpochCache};
use super::producer_state::{BatchMeta, ProducerError, ProducerStates, Verdict};
use super::recovery::{self, RecoveryReport};
use super::segment::{AppendedBatch, Segment, SegmentReadError, SyncMark};
use super::snapshot;
use super::write_counter::WriteCounter;
use crate::env::disk::{Disk, DiskFile, read_exact_at};
use crate::env::probe::{BatchId, PartitionState, ProbeEvent};
use crate::env::{Clock, Env, Probe};
use crate::record::batch::{self, BatchError, HEADER_LEN};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::watch;

/// The offsets a log publishes whenever they change (for long-polling fetches).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOffsets {
    /// First offset in the log.
    pub log_start: i64,
    /// Offset after the last batch.
    pub log_end: i64,
    /// Every batch below this offset is synced.
    pub durable_end: i64,
    /// The high watermark replication set (see [`PartitionLog::set_high_watermark`]), or -1
    /// for a log replication does not manage.
    pub high_watermark: i64,
}

/// An append failed; nothing of it was written.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("invalid record batch: {0}")]
    InvalidBatch(#[from] BatchError),
    #[error("{0}")]
    Producer(#[from] ProducerError),
    #[error("leader epoch {epoch} is older than the log's latest epoch {latest}")]
    StaleLeaderEpoch { epoch: i32, latest: i32 },
    #[error("storage error: {0}")]
    Storage(String),
}

/// A follower's append failed; nothing of it was written.
#[derive(Debug, thiserror::Error)]
pub enum FollowerAppendError {
    #[error("invalid record batch: {0}")]
    InvalidBatch(#[from] BatchError),
    #[error("the first batch starts at offset {first}, but the log ends at {log_end}")]
    UnexpectedOffset { first: i64, log_end: i64 },
    #[error("a batch starts at offset {offset}, but the one before it ends before {expected}")]
    OffsetsOutOfOrder { offset: i64, expected: i64 },
    #[error("the batch at offset {offset} has leader epoch {epoch}, older than {latest} before it")]
    EpochGoesBack {
        offset: i64,
        epoch: i32,
        latest: i32,
    },
    #[error("storage error: {0}")]
    Storage(String),
}

/// A truncation failed.
#[derive(Debug, thiserror::Error)]
pub enum TruncateError {
    #[error("cannot truncate to offset {offset}, below the log start {log_start}")]
    BelowLogStart { offset: i64, log_start: i64 },
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    #[error("the log is offline: {0}")]
    Offline(String),
}

impl From<LogError> for TruncateError {
    fn from(e: LogError) -> Self {
        match e {
            LogError::Io(e) => TruncateError::Io(e),
            LogError::Offline(why) => TruncateError::Offline(why),
            LogError::Truncated { .. } => TruncateError::Offline(e.to_string()),
        }
    }
}

/// A read failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReadError {
    #[error("offset {offset} is outside the log's range {log_start}..{log_end}")]
    OffsetOutOfRange {
        offset: i64,
        log_start: i64,
        log_end: i64,
    },
    #[error("storage error: {0}")]
    Storage(String),
}

/// A log operation other than append or read failed.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    #[error("the log is offline: {0}")]
    Offline(String),
    /// A wait for offsets to be synced found them truncated away.
    #[error("offset {offset} was truncated away; the log now ends at {log_end}")]
    Truncated { offset: i64, log_end: i64 },
}

impl From<SegmentReadError> for ReadError {
    fn from(e: SegmentReadError) -> Self {
        ReadError::Storage(e.to_string())
    }
}

/// What an append did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset given to the first record.
    pub first_offset: i64,
    /// Offset given to the last record.
    pub last_offset: i64,
    /// Largest timestamp among the records.
    pub max_timestamp: i64,
    /// The log start offset after the append.
    pub log_start_offset: i64,
    /// Records appended.
    pub record_count: i64,
    /// The flush policy (`flush.messages`) asks for a sync before the append is answered; or
    /// the append is a duplicate whose original is not durable yet, so its answer waits for
    /// the sync the original's answer waits for (a retry must not be told sooner, seed 130).
    pub flush_due: bool,
    /// An idempotent producer's retry of batches already written: nothing was appended and
    /// the offsets are those the batch was first given.
    pub duplicate: bool,
    /// With `message.timestamp.type=LogAppendTime`, the time the batches were stamped with;
    /// else -1 (Produce's `log_append_time_ms`).
    pub log_append_time: i64,
    /// The batches appended, as the probe knows them; only while a probe observes (the
    /// simulator), else empty. Empty for a duplicate.
    pub batches: Vec<BatchId>,
}

/// Batches read from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadResult {
    /// Whole batches, as stored. Empty if there was nothing to read.
    pub records: Vec<u8>,
    /// The log start offset when read.
    pub log_start_offset: i64,
    /// The log end offset when read.
    pub log_end_offset: i64,
}

/// A partition log. Shared as `Arc<PartitionLog>`.
pub struct PartitionLog {
    /// The partition directory.
    dir: PathBuf,
    /// Where the files are.
    disk: Arc<dyn Disk>,
    /// Wall clock for timestamps of rolls and retention.
    clock: Arc<dyn Clock>,
    /// Everything that changes.
    state: Mutex<LogState>,
    /// Held by the task that is syncing; the others queue behind it.
    sync_lock: tokio::sync::Mutex<()>,
    /// Serialises checkpoint writes; holds the last checkpoint written.
    checkpoint_lock: tokio::sync::Mutex<Option<LogCheckpoint>>,
    /// Published offsets.
    offsets_tx: watch::Sender<LogOffsets>,
    /// Where the log declares its state (for the simulator's checker).
    probe: Arc<dyn Probe>,
}

/// The mutable state of a log.
struct LogState {
    /// Current configuration.
    config: LogConfig,
    /// Segments by base offset; the last is the active one. Never empty.
    segments: BTreeMap<i64, Segment>,
    /// First offset in the log.
    log_start_offset: i64,
    /// Offset the next record gets (the log end offset).
    next_offset: i64,
    /// Every batch below this is synced, with its directory entry.
    durable_offset: i64,
    /// Creations and removals of files in the directory against what syncs covered.
    dir_writes: WriteCounter,
    /// Records appended since the log opened.
    appended_records: i64,
    /// `appended_records` as of the start of the last completed sync.
    synced_records: i64,
    /// Wall-clock time of the last completed sync.
    last_sync_ms: i64,
    /// Whether a background sync task is queued and has not started yet.
    background_sync_queued: bool,
    /// Set when the log must take no more writes (an fsync failed, or it was closed).
    offline: Option<String>,
    /// Sync rounds completed since the log opened.
    sync_rounds: u64,
    /// Idempotent producers' sequence state.
    producers: ProducerStates,
    /// Snapshot files written since the last sync round; the next one syncs them.
    unsynced_snapshots: Vec<snapshot::PendingSnapshot>,
    /// Each leader epoch in the log and the offset where it starts.
    epochs: LeaderEpochCache,
    /// The epoch cache changed since the `leader-epoch-checkpoint` was last written; the next
    /// sync round writes it, before it declares anything more durable, so that the file always
    /// describes every batch below the durable end (and below the checkpoint's recovery point).
    epochs_dirty: bool,
    /// The high watermark, once replication manages the log (a partition with followers);
    /// `None` for a single replica, whose visible end the log decides alone.
    high_watermark: Option<i64>,
}

/// What one sync covers.
struct SyncPlan {
    /// Files to sync, with the segment and what to mark afterwards.
    files: Vec<(i64, Arc<dyn DiskFile>, SyncMark)>,
    /// Producer snapshot files to sync.
    snapshots: Vec<snapshot::PendingSnapshot>,
    /// The directory's write count to mark, if the directory needs a sync.
    dir: Option<u64>,
    /// The log end offset when the plan was made: durable once the plan completes.
    upto: i64,
    /// `appended_records` when the plan was made.
    records: i64,
    /// The epoch cache's entries to write, if they changed.
    epochs: Option<Vec<EpochEntry>>,
}

impl LogState {
    fn active(&self) -> &Segment {
        self.segments
            .values()
            .next_back()
            .expect("a log always has an active segment")
    }

    fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .values_mut()
            .next_back()
            .expect("a log always has an active segment")
    }

    fn check_online(&self) -> Result<(), String> {
        match &self.offline {
            Some(why) => Err(why.clone()),
            None => Ok(()),
        }
    }

    fn offsets(&self) -> LogOffsets {
        LogOffsets {
            log_start: self.log_start_offset,
            log_end: self.next_offset,
            durable_end: self.durable_offset,
            high_watermark: self.high_watermark.unwrap_or(-1),
        }
    }

    fn prepare_sync(&mut self, with_active_indexes: bool) -> SyncPlan {
        let active_base = self.active().base_offset;
        let mut files = Vec::new();
        for (base, seg) in self.segments.iter_mut() {
            let with_indexes = with_active_indexes || *base != active_base;
            match seg.take_unsynced(with_indexes) {
                Ok(f) => files.extend(f.into_iter().map(|(file, mark)| (*base, file, mark))),
                Err(e) => {
                    // Index files are caches; the log's data is what must be synced.
                    tracing::warn!(segment = %seg.log_path().display(), error = %e, "could not write index entries");
                    if let Ok(f) = seg.take_unsynced(false) {
                        files.extend(f.into_iter().map(|(file, mark)| (*base, file, mark)));
                    }
                }
            }
        }
        SyncPlan {
            files,
            snapshots: std::mem::take(&mut self.unsynced_snapshots),
            dir: self
                .dir_writes
                .is_dirty()
                .then(|| self.dir_writes.snapshot()),
            upto: self.next_offset,
            records: self.appended_records,
            epochs: std::mem::take(&mut self.epochs_dirty).then(|| self.epochs.entries().to_vec()),
        }
    }
}

/// Puts a sync round's claim on the epoch cache's file back if the round ends before writing
/// it (see [`PartitionLog::sync_locked`]).
struct EpochsPending<'a> {
    log: &'a PartitionLog,
    armed: bool,
}

impl Drop for EpochsPending<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.log.lock().epochs_dirty = true;
        }
    }
}

impl PartitionLog {
    /// Opens the log in `dir`, creating the directory if needed and recovering what is there.
    /// Everything recovered is synced before this returns.
    pub async fn open(
        env: &Env,
        dir: &Path,
        config: LogConfig,
    ) -> Result<Arc<PartitionLog>, LogError> {
        crate::env::disk::create_dir_durable(&*env.disk, dir).await?;
        let now = env.clock.now_ms();
        let mut recovered = recovery::recover(&*env.disk, dir, &config, now)?;
        // What was not known to be synced before (at or past the checkpoint's recovery
        // point) may still sit in the page cache after a process crash: sync it now.
        let rp = recovered.report.checkpoint_recovery_point;
        for seg in recovered.segments.values_mut() {
            if seg.next_offset() > rp || seg.is_empty() {
                seg.mark_dirty();
            }
        }
        let producers = if env.disk.planted_bugs().forget_producer_state {
            ProducerStates::default()
        } else {
            recover_producers(
                &*env.disk,
                dir,
                &recovered.segments,
                recovered.log_start_offset,
                recovered.next_offset,
                now,
            )?
        };
        let (epochs, epochs_dirty) = recover_epochs(&*env.disk, dir, &recovered)?;
        let state = LogState {
            config,
            segments: recovered.segments,
            log_start_offset: recovered.log_start_offset,
            next_offset: recovered.next_offset,
            durable_offset: recovered.log_start_offset,
            // Recovery may have created or deleted files: sync the directory with the data.
            dir_writes: WriteCounter::dirty(),
            appended_records: 0,
            synced_records: 0,
            last_sync_ms: now,
            background_sync_queued: false,
            offline: None,
            sync_rounds: 0,
            producers,
            unsynced_snapshots: Vec::new(),
            epochs,
            epochs_dirty,
            // A replicated log's high watermark as last checkpointed: committed, so a
            // replica that restarts serves and bounds retention by it at once.
            high_watermark: recovered.high_watermark,
        };
        let offsets = state.offsets();
        env.probe.event(ProbeEvent::Recovered {
            dir,
            state: probe_state(&offsets),
            producers: &state.producers.summary(),
        });
        let log = Arc::new(PartitionLog {
            dir: dir.to_path_buf(),
            disk: env.disk.clone(),
            clock: env.clock.clone(),
            state: Mutex::new(state),
            sync_lock: tokio::sync::Mutex::new(()),
            checkpoint_lock: tokio::sync::Mutex::new(None),
            offsets_tx: watch::channel(offsets).0,
            probe: env.probe.clone(),
        });
        // Make everything that survived durable, then record that as the recovery point.
        log.sync_all(true).await?;
        log.checkpoint().await?;
        log.set_last_recovery_report(recovered.report);
        Ok(log)
    }

    fn set_last_recovery_report(&self, report: RecoveryReport) {
        if report.bytes_truncated > 0 || report.segments_deleted > 0 {
            tracing::info!(dir = %self.dir.display(), ?report, "log recovery changed the log");
        }
    }

    fn lock(&self) -> MutexGuard<'_, LogState> {
        // A panic while holding the lock is a bug that already failed loudly; the state
        // itself is updated so that it stays consistent at every step.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish(&self, st: &LogState) {
        let offsets = st.offsets();
        self.probe.event(ProbeEvent::State {
            dir: &self.dir,
            state: probe_state(&offsets),
        });
        self.offsets_tx.send_replace(offsets);
    }

    /// The bugs the simulator planted (none in the real world).
    pub fn planted_bugs(&self) -> crate::env::PlantedBugs {
        self.disk.planted_bugs()
    }

    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The current configuration.
    pub fn config(&self) -> LogConfig {
        self.lock().config.clone()
    }

    /// Replaces the configuration (applies to later appends, rolls and retention checks).
    pub fn set_config(&self, config: LogConfig) {
        self.lock().config = config;
    }

    /// The current offsets.
    pub fn offsets(&self) -> LogOffsets {
        self.lock().offsets()
    }

    /// First offset in the log.
    pub fn log_start_offset(&self) -> i64 {
        self.lock().log_start_offset
    }

    /// Offset after the last batch.
    pub fn log_end_offset(&self) -> i64 {
        self.lock().next_offset
    }

    /// Every batch below this offset is synced.
    pub fn durable_offset(&self) -> i64 {
        self.lock().durable_offset
    }

    /// What a consumer may read up to: the high watermark replication set (never past the
    /// log's end). The broker's replication sets it for every partition it leads or follows,
    /// a partition's only replica included. A log no replication manages (the log on its own,
    /// in tests, or a broker's log before its role is known) falls back to the log end with
    /// write caching on, otherwise to what is synced, so no consumer ever sees a record that
    /// a power loss could take back.
    pub fn visible_end_offset(&self) -> i64 {
        let st = self.lock();
        if let Some(hw) = st.high_watermark {
            return hw.clamp(st.log_start_offset, st.next_offset);
        }
        if st.config.write_caching {
            st.next_offset
        } else {
            st.durable_offset
        }
    }

    /// Sets the high watermark, which replication decides (the leader from its in-sync
    /// replicas' ends, a follower from its leader's): from here on consumers read below it.
    /// It never goes back, except to the log end after a truncation below it.
    pub fn set_high_watermark(&self, hw: i64) {
        let mut st = self.lock();
        let hw = hw.min(st.next_offset);
        if st.high_watermark.is_some_and(|old| old >= hw) {
            return;
        }
        st.high_watermark = Some(hw);
        self.publish(&st);
    }

    /// Hands the visible end back to the log (the partition has no followers any more).
    pub fn clear_high_watermark(&self) {
        let mut st = self.lock();
        if st.high_watermark.take().is_some() {
            self.publish(&st);
        }
    }

    /// The high watermark replication set, if it manages this log.
    pub fn high_watermark(&self) -> Option<i64> {
        self.lock().high_watermark
    }

    /// Watches the log's offsets.
    pub fn subscribe(&self) -> watch::Receiver<LogOffsets> {
        self.offsets_tx.subscribe()
    }

    /// Total bytes of all segments.
    pub fn size_bytes(&self) -> u64 {
        self.lock().segments.values().map(Segment::size).sum()
    }

    /// Sync rounds completed since the log opened (each covers every append before it).
    pub fn sync_rounds(&self) -> u64 {
        self.lock().sync_rounds
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_bases(&self) -> Vec<i64> {
        self.lock().segments.keys().copied().collect()
    }

    /// Whether an answered append must wait for a sync: the flush policy says so, or the
    /// producer asked for durability (acks=all) and write caching is off.
    pub fn must_sync(&self, info: &AppendInfo, wants_durability: bool) -> bool {
        info.flush_due || (wants_durability && !self.lock().config.write_caching)
    }

    /// Validates and appends a producer's record set (one or more v2 batches, as received),
    /// assigning offsets and stamping `leader_epoch` into each batch header. All or nothing.
    /// An epoch older than the log's latest is refused ([`AppendError::StaleLeaderEpoch`]); a
    /// newer one starts a new entry in the epoch cache at the first batch's offset.
    /// The data is written but not synced: see [`PartitionLog::sync_to`] and
    /// [`PartitionLog::must_sync`].
    pub fn append(
        self: &Arc<Self>,
        records: &mut Vec<u8>,
        leader_epoch: i32,
    ) -> Result<AppendInfo, AppendError> {
        assert!(
            leader_epoch >= 0,
            "a leader appends with its epoch, got {leader_epoch}"
        );
        let (max_bytes, rules) = {
            let st = self.lock();
            (st.config.max_message_bytes, st.config.records)
        };
        let max_bytes = usize::try_from(max_bytes).unwrap_or(usize::MAX);
        let batches = batch::validate_record_set(records, max_bytes)?;
        let now = self.clock.now_ms();
        // The topic's rules (compression.type, message.timestamp.*), as Kafka's LogValidator
        // applies them before the append.
        let batches = crate::record::validator::apply(records, batches, &rules, now, max_bytes)?;
        let st = self.lock();
        st.check_online().map_err(AppendError::Storage)?;
        if let Some(latest) = st.epochs.latest_epoch().filter(|l| leader_epoch < *l) {
            return Err(AppendError::StaleLeaderEpoch {
                epoch: leader_epoch,
                latest,
            });
        }
        if let Some(dup) = check_producers(&st.producers, &batches)? {
            return Ok(AppendInfo {
                first_offset: dup.first_offset,
                last_offset: dup.last_offset,
                max_timestamp: batch::NO_TIMESTAMP,
                log_start_offset: st.log_start_offset,
                record_count: 0,
                flush_due: dup.last_offset >= st.durable_offset,
                duplicate: true,
                log_append_time: batch::NO_TIMESTAMP,
                batches: Vec::new(),
            });
        }
        let mut next = st.next_offset;
        let mut headers = Vec::with_capacity(batches.len());
        for b in &batches {
            let len = b.header.total_len();
            batch::set_base_offset_and_epoch(
                &mut records[b.position..b.position + len],
                next,
                leader_epoch,
            );
            let mut h = b.header;
            h.base_offset = next;
            h.partition_leader_epoch = leader_epoch;
            next = h.next_offset();
            headers.push(h);
        }
        let mut info = self
            .write_batches(st, records, &headers, now)
            .map_err(AppendError::Storage)?;
        if rules.log_append_time {
            info.log_append_time = now;
        }
        Ok(info)
    }

    /// Appends a follower's copy of the leader's batches (one or more whole v2 batches, as the
    /// leader stored them): the offsets and leader epochs they carry are kept, not assigned.
    /// Checked first, all or nothing: every batch whole and CRC-valid; the first starting at
    /// the log end; each starting where the one before it ends; leader epochs never below the
    /// log's latest epoch or the batch before. The idempotent producers' state and the epoch
    /// cache take the batches in (without sequence checks: the leader made them), so a
    /// follower that becomes leader deduplicates retries. Written but not synced, as
    /// [`PartitionLog::append`].
    pub fn append_as_follower(
        self: &Arc<Self>,
        records: &[u8],
    ) -> Result<AppendInfo, FollowerAppendError> {
        // The leader accepted these batches under its own size limit.
        let batches = batch::validate_replicated_set(records)?;
        let now = self.clock.now_ms();
        let st = self.lock();
        st.check_online().map_err(FollowerAppendError::Storage)?;
        let mut expected = st.next_offset;
        let mut latest = st.epochs.latest_epoch();
        for (i, b) in batches.iter().enumerate() {
            let h = &b.header;
            if h.base_offset != expected {
                return Err(if i == 0 {
                    FollowerAppendError::UnexpectedOffset {
                        first: h.base_offset,
                        log_end: st.next_offset,
                    }
                } else {
                    FollowerAppendError::OffsetsOutOfOrder {
                        offset: h.base_offset,
                        expected,
                    }
                });
            }
            let epoch = h.partition_leader_epoch;
            if epoch < 0 || latest.is_some_and(|l| epoch < l) {
                return Err(FollowerAppendError::EpochGoesBack {
                    offset: h.base_offset,
                    epoch,
                    latest: latest.unwrap_or(leader_epoch::UNDEFINED_EPOCH),
                });
            }
            latest = Some(epoch);
            expected = h.next_offset();
        }
        let headers: Vec<batch::BatchHeader> = batches.iter().map(|b| b.header).collect();
        self.write_batches(st, records, &headers, now)
            .map_err(FollowerAppendError::Storage)
    }

    /// Writes checked batches whose headers (`headers`, with their final offsets and epochs,
    /// the first at the log end) describe `records`, then updates the offsets, the producers'
    /// state and the epoch cache, and publishes. Nothing is synced here: see
    /// [`PartitionLog::queue_sync`].
    fn write_batches(
        self: &Arc<Self>,
        mut st: MutexGuard<'_, LogState>,
        records: &[u8],
        headers: &[batch::BatchHeader],
        now: i64,
    ) -> Result<AppendInfo, String> {
        let first_offset = st.next_offset;
        debug_assert_eq!(headers.first().map(|h| h.base_offset), Some(first_offset));
        let mut appended = Vec::with_capacity(headers.len());
        let mut max_timestamp = batch::NO_TIMESTAMP;
        let mut record_count = 0i64;
        for h in headers {
            appended.push(AppendedBatch {
                last_offset: h.last_offset(),
                max_timestamp: h.max_timestamp,
                len: h.total_len() as u64,
            });
            max_timestamp = max_timestamp.max(h.max_timestamp);
            record_count += i64::from(h.records_count);
        }
        let next = headers.last().map_or(first_offset, |h| h.next_offset());
        let cfg = st.config.clone();
        if st
            .active()
            .should_roll(&cfg, records.len() as u64, max_timestamp, next - 1, now)
        {
            self.roll(&mut st, now).map_err(|e| e.to_string())?;
        }
        if let Err(e) = st.active_mut().append(records, &appended, &cfg) {
            if !e.trimmed {
                st.offline = Some(format!("a failed write could not be cut back: {}", e.error));
            }
            return Err(e.error.to_string());
        }
        let mut ids = Vec::new();
        if self.probe.observing() {
            ids = headers
                .iter()
                .map(|h| BatchId {
                    base_offset: h.base_offset,
                    last_offset: h.last_offset(),
                    crc: h.crc,
                    leader_epoch: h.partition_leader_epoch,
                })
                .collect();
            self.probe.event(ProbeEvent::Appended {
                dir: &self.dir,
                batches: &ids,
            });
        }
        st.next_offset = next;
        st.appended_records += record_count;
        for h in headers {
            record_producer_batch(&mut st.producers, h, now);
            if st.epochs.assign(h.partition_leader_epoch, h.base_offset) {
                st.epochs_dirty = true;
            }
        }
        let flush_due = st.appended_records - st.synced_records >= cfg.flush_messages;
        let info = AppendInfo {
            first_offset,
            last_offset: next - 1,
            max_timestamp,
            log_start_offset: st.log_start_offset,
            record_count,
            flush_due,
            duplicate: false,
            log_append_time: batch::NO_TIMESTAMP,
            batches: ids,
        };
        self.publish(&st);
        Ok(info)
    }

    /// Queues the one background sync of this log that its owner runs (see
    /// [`PartitionLog::start_queued_sync`]): true if none was queued, and the caller must now
    /// run it. The log decides nothing here; it only keeps the flag, so a busy log has at most
    /// one sync waiting however many appends ask.
    pub fn queue_sync(&self) -> bool {
        !std::mem::replace(&mut self.lock().background_sync_queued, true)
    }

    /// The queued sync starts: it syncs to the returned offset (the log end now), and later
    /// appends queue the next one.
    pub fn start_queued_sync(&self) -> i64 {
        let mut st = self.lock();
        st.background_sync_queued = false;
        st.next_offset
    }

    /// Starts a new active segment at the log end.
    fn roll(&self, st: &mut LogState, now: i64) -> io::Result<()> {
        let base = st.next_offset;
        let seg = Segment::create(&*self.disk, &self.dir, base, &st.config, now)?;
        st.active_mut().seal();
        // A snapshot at each roll bounds what recovery replays to the active segment.
        match snapshot::write(&*self.disk, &self.dir, base, &st.producers) {
            Ok(file) => {
                st.unsynced_snapshots.push(file);
                st.dir_writes.touch();
            }
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "could not write a producer snapshot")
            }
        }
        tracing::debug!(dir = %self.dir.display(), base, "rolled a new segment");
        st.segments.insert(base, seg);
        st.dir_writes.touch();
        Ok(())
    }

    /// Rolls to a new segment now if the active one holds any batch (for tests and tools).
    pub fn force_roll(&self) -> io::Result<()> {
        let now = self.clock.now_ms();
        let mut st = self.lock();
        if st.active().is_empty() {
            return Ok(());
        }
        self.roll(&mut st, now)
    }

    /// Waits until every batch below `offset` is synced, syncing if nobody else is.
    pub async fn sync_to(&self, offset: i64) -> Result<(), LogError> {
        loop {
            {
                let st = self.lock();
                if st.durable_offset >= offset {
                    return Ok(());
                }
                st.check_online().map_err(LogError::Offline)?;
                if offset > st.next_offset {
                    return Err(LogError::Truncated {
                        offset,
                        log_end: st.next_offset,
                    });
                }
            }
            let _turn = self.sync_lock.lock().await;
            // Appenders woken by the previous sync are about to append: let them, so this
            // sync covers them too instead of leaving them for another round.
            tokio::task::yield_now().await;
            {
                let st = self.lock();
                if st.durable_offset >= offset {
                    return Ok(());
                }
                st.check_online().map_err(LogError::Offline)?;
            }
            self.sync_locked(false).await?;
        }
    }

    /// Syncs everything written so far; with `with_indexes`, the active segment's index files
    /// too (at shutdown).
    pub async fn sync_all(&self, with_indexes: bool) -> Result<(), LogError> {
        let _turn = self.sync_lock.lock().await;
        self.sync_locked(with_indexes).await
    }

    /// One sync round; the caller holds `sync_lock`.
    async fn sync_locked(&self, with_active_indexes: bool) -> Result<(), LogError> {
        let plan = self.lock().prepare_sync(with_active_indexes);
        // The round took the epoch cache's dirty flag: if it ends before the cache's file is
        // written (its task aborted, at shutdown say), the flag goes back, so the next sync
        // (the close's) writes it.
        let mut epochs_pending = EpochsPending {
            log: self,
            armed: plan.epochs.is_some(),
        };
        // Data first, then the directory: when a new segment's name becomes durable, the
        // segments before it are already complete on disk.
        let snapshot_files = plan.snapshots.iter().map(|s| &s.file);
        for file in plan.files.iter().map(|(_, f, _)| f).chain(snapshot_files) {
            if let Err(e) = file.clone().sync().await {
                let why = format!("fsync failed: {e}");
                tracing::error!(dir = %self.dir.display(), error = %e, "fsync failed; the log goes offline");
                self.lock().offline = Some(why.clone());
                return Err(LogError::Offline(why));
            }
        }
        // Producer snapshots, synced, take their names now; the directory sync makes it last.
        let published: Vec<&snapshot::PendingSnapshot> = plan
            .snapshots
            .iter()
            .filter(|snap| match snapshot::publish(&*self.disk, snap) {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(dir = %self.dir.display(), error = %e, "could not publish a producer snapshot");
                    false
                }
            })
            .collect();
        if plan.dir.is_some() || !plan.snapshots.is_empty() {
            if let Err(e) = self.disk.sync_dir(&self.dir).await {
                let why = format!("directory fsync failed: {e}");
                self.lock().offline = Some(why.clone());
                return Err(LogError::Offline(why));
            }
        }
        for snap in &published {
            self.probe.event(ProbeEvent::FileDurable {
                path: snap.path(),
                bytes: snap.bytes(),
            });
        }
        // The epoch cache describes batches this round made durable: its file is durable
        // before they are declared so.
        if let Some(entries) = &plan.epochs {
            match leader_epoch::write(&*self.disk, &self.dir, entries).await {
                Ok(bytes) => {
                    epochs_pending.armed = false;
                    self.probe.event(ProbeEvent::FileDurable {
                        path: &self.dir.join(leader_epoch::FILE_NAME),
                        bytes: &bytes,
                    })
                }
                Err(e) => {
                    // Not a reason to go offline: the checkpoint is replaced whole by a rename,
                    // so a failed write (EIO, ENOSPC) leaves the old file, and the data synced
                    // above is fine. The round fails without declaring anything durable, and
                    // the next one writes the checkpoint again (seed 9200978: a transient
                    // disk fault took __consumer_offsets offline for good, and its group
                    // never finished after the heal).
                    // `epochs_pending`, still armed, marks the cache dirty again.
                    tracing::warn!(dir = %self.dir.display(), error = %e, "could not write the leader epoch checkpoint; the next sync tries again");
                    return Err(LogError::Io(e));
                }
            }
        }
        // Old snapshots go only once the new ones are durable (and declared): their removal
        // is made durable by the next directory sync.
        if !published.is_empty() {
            match snapshot::remove_old(&*self.disk, &self.dir) {
                Ok(()) => self.lock().dir_writes.touch(),
                Err(e) => {
                    tracing::warn!(dir = %self.dir.display(), error = %e, "could not list old producer snapshots")
                }
            }
        }
        let now = self.clock.now_ms();
        let mut st = self.lock();
        for (base, _, mark) in plan.files {
            if let Some(seg) = st.segments.get_mut(&base) {
                seg.mark_synced(mark);
            }
        }
        if let Some(snap) = plan.dir {
            st.dir_writes.mark_synced(snap);
        }
        // Truncation (by recovery or a follower) may have moved the end below the plan.
        let upto = plan.upto.min(st.next_offset);
        if upto > st.durable_offset {
            st.durable_offset = upto;
        }
        st.synced_records = st.synced_records.max(plan.records);
        st.last_sync_ms = now;
        st.sync_rounds += 1;
        self.publish(&st);
        Ok(())
    }

    /// Syncs if `flush.ms` has passed since the last sync and something is unsynced.
    pub async fn flush_if_due(&self) -> Result<bool, LogError> {
        let now = self.clock.now_ms();
        let target = {
            let st = self.lock();
            let dirty = st.next_offset > st.durable_offset;
            let due = now.saturating_sub(st.last_sync_ms) >= st.config.flush_ms;
            if !(dirty && due) {
                return Ok(false);
            }
            st.next_offset
        };
        self.sync_to(target).await?;
        Ok(true)
    }

    /// Writes the checkpoint (recovery point = what is synced now, log start offset) if it
    /// changed since the last one written.
    pub async fn checkpoint(&self) -> Result<(), LogError> {
        let mut last = self.checkpoint_lock.lock().await;
        let c = {
            let st = self.lock();
            LogCheckpoint {
                recovery_point: st.durable_offset,
                log_start_offset: st.log_start_offset,
                high_watermark: st.high_watermark,
            }
        };
        self.write_checkpoint(&mut last, c).await
    }

    /// Writes `c` unless it is the last checkpoint written (`last`, guarded by
    /// `checkpoint_lock`), and declares it durable.
    async fn write_checkpoint(
        &self,
        last: &mut Option<LogCheckpoint>,
        c: LogCheckpoint,
    ) -> Result<(), LogError> {
        if *last == Some(c) {
            return Ok(());
        }
        let bytes = checkpoint::write(&*self.disk, &self.dir, &c).await?;
        self.probe.event(ProbeEvent::FileDurable {
            path: &self.dir.join(checkpoint::FILE_NAME),
            bytes: &bytes,
        });
        *last = Some(c);
        Ok(())
    }

    /// Reads whole batches starting with the one that holds `offset`, up to `max_bytes`
    /// (but at least one batch if `min_one`), none at or past `max_offset` (the high
    /// watermark). Every batch returned has passed its CRC check.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        max_offset: i64,
        min_one: bool,
    ) -> Result<ReadResult, ReadError> {
        let (plan, result) = {
            let st = self.lock();
            let result = ReadResult {
                records: Vec::new(),
                log_start_offset: st.log_start_offset,
                log_end_offset: st.next_offset,
            };
            if offset < st.log_start_offset || offset > st.next_offset {
                return Err(ReadError::OffsetOutOfRange {
                    offset,
                    log_start: st.log_start_offset,
                    log_end: st.next_offset,
                });
            }
            if offset >= max_offset.min(st.next_offset) {
                return Ok(result);
            }
            let mut plan = None;
            let first = st
                .segments
                .range(..=offset)
                .next_back()
                .map_or(i64::MIN, |(b, _)| *b);
            for seg in st.segments.range(first..).map(|(_, s)| s) {
                if let Some((pos, header)) = seg.locate(offset)? {
                    plan = Some((seg.log_file(), pos, seg.size(), header));
                    break;
                }
            }
            (plan, result)
        };
        let Some((file, pos, end, header)) = plan else {
            return Ok(result);
        };
        let records = read_batches(&*file, pos, end, &header, max_bytes, max_offset, min_one)?;
        Ok(ReadResult { records, ..result })
    }

    /// The first record at or after `timestamp` below `max_offset`: its offset and timestamp.
    pub fn offset_for_timestamp(
        &self,
        timestamp: i64,
        max_offset: i64,
    ) -> Result<Option<(i64, i64)>, ReadError> {
        let st = self.lock();
        for seg in st.segments.values() {
            if seg.max_timestamp() < timestamp {
                continue;
            }
            if let Some((offset, ts)) = seg.find_offset_by_timestamp(timestamp)? {
                if offset >= max_offset || offset < st.log_start_offset {
                    return Ok(None);
                }
                return Ok(Some((offset, ts)));
            }
        }
        Ok(None)
    }

    /// The first record with the log's largest timestamp, below `max_offset` (ListOffsets -3).
    pub fn offset_of_max_timestamp(
        &self,
        max_offset: i64,
    ) -> Result<Option<(i64, i64)>, ReadError> {
        let max = self
            .lock()
            .segments
            .values()
            .map(Segment::max_timestamp)
            .max();
        match max {
            Some(ts) if ts >= 0 => self.offset_for_timestamp(ts, max_offset),
            _ => Ok(None),
        }
    }

    /// The newest leader epoch in the log, if any batch carries one.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.lock().epochs.latest_epoch()
    }

    /// The epoch a one-node broker appends in: `epoch`, or the log's latest if that is newer.
    /// Until the controller assigns leader epochs (the cluster issue), the broker is the only
    /// writer of its logs, so it leads in whatever epoch a log has reached; a log whose batches
    /// carry a higher epoch (written by hostile or damaged bytes, since the CRC does not cover
    /// the epoch) would otherwise refuse every append as stale.
    pub fn sole_leader_epoch(&self, epoch: i32) -> i32 {
        self.latest_epoch().map_or(epoch, |l| l.max(epoch))
    }

    /// The epoch cache's entries (epoch, start offset), oldest first.
    pub fn epoch_entries(&self) -> Vec<EpochEntry> {
        self.lock().epochs.entries().to_vec()
    }

    /// Kafka's `endOffsetForEpoch`: the largest epoch in the log at most `epoch` and the offset
    /// where it ends, as [`LeaderEpochCache::end_offset_for`] answers it for this log's end;
    /// `(UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)` when the log knows no such epoch.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        let st = self.lock();
        st.epochs.end_offset_for(epoch, st.next_offset)
    }

    /// Cuts the log's tail so that it ends at `offset` (Kafka's `truncateTo`; a follower does
    /// it where its log diverges from its leader's). If `offset` falls inside a batch, the whole
    /// batch goes: the log then ends at that batch's base offset. Returns the new log end.
    ///
    /// A no-op at or above the log end; refused below the log start. Deletes the segments past
    /// the cut, cuts the last one kept with its index files, rebuilds the idempotent producers'
    /// state (the newest snapshot at or below the cut, then the batches after it; snapshots
    /// past the cut are deleted), cuts the epoch cache, and lowers the checkpoint's recovery
    /// point to the cut. Durable before it returns; declared to the probe
    /// ([`ProbeEvent::Truncated`]) before the first file is cut, so the durable end goes back
    /// only here.
    pub async fn truncate_to(&self, offset: i64) -> Result<i64, TruncateError> {
        // Held throughout: no checkpoint may write the old recovery point back, and no sync
        // round may be working from a plan made before the cut.
        let mut last = self.checkpoint_lock.lock().await;
        let _turn = self.sync_lock.lock().await;
        let now = self.clock.now_ms();
        let (new_end, removed, checkpoint) = {
            let mut st = self.lock();
            st.check_online().map_err(TruncateError::Offline)?;
            if offset < st.log_start_offset {
                return Err(TruncateError::BelowLogStart {
                    offset,
                    log_start: st.log_start_offset,
                });
            }
            if offset >= st.next_offset {
                return Ok(st.next_offset);
            }
            match self.cut_tail(&mut st, offset, now) {
                Ok((new_end, removed)) => {
                    let checkpoint = LogCheckpoint {
                        recovery_point: st.durable_offset,
                        log_start_offset: st.log_start_offset,
                        high_watermark: st.high_watermark,
                    };
                    (new_end, removed, checkpoint)
                }
                Err(e) => {
                    let why = format!("a truncation failed half-way: {e}");
                    tracing::error!(dir = %self.dir.display(), error = %e, "a truncation failed; the log goes offline");
                    st.offline = Some(why.clone());
                    return Err(TruncateError::Offline(why));
                }
            }
        };
        for seg in &removed {
            recovery::delete_segment_files(&*self.disk, &self.dir, seg.base_offset)?;
        }
        // Recovery must check everything past the cut again: what is written there next is not
        // what the old recovery point vouched for.
        self.write_checkpoint(&mut last, checkpoint).await?;
        self.sync_locked(true).await?;
        tracing::info!(dir = %self.dir.display(), offset, new_end, segments_deleted = removed.len(), "truncated the log");
        Ok(new_end)
    }

    /// The in-memory part of [`PartitionLog::truncate_to`] (`offset` is inside the log): cuts
    /// segments, snapshots, producers and epochs back, publishes. Returns the new end and the
    /// segments whose files are to be deleted.
    fn cut_tail(
        &self,
        st: &mut LogState,
        offset: i64,
        now: i64,
    ) -> Result<(i64, Vec<Segment>), LogError> {
        let io_err = |e: SegmentReadError| LogError::Io(io::Error::other(e.to_string()));
        // The batch holding `offset` goes whole: the cut is at its base offset.
        let holder = st
            .segments
            .range(..=offset)
            .next_back()
            .map(|(_, seg)| seg.locate(offset))
            .transpose()
            .map_err(io_err)?
            .flatten();
        let new_end = holder.map_or(offset, |(_, h)| h.base_offset.min(offset));
        let doomed: Vec<i64> = st.segments.range(new_end + 1..).map(|(b, _)| *b).collect();
        let keep_first = st.segments.keys().next().is_some_and(|b| *b > new_end);
        assert!(
            !keep_first,
            "the first segment starts at or below the log start"
        );
        // Declared before the first file is cut (a crash may stop the cut half-way, and the
        // part already made must not read as synced data lost: seed 72009). The checkers see
        // a cut of committed batches here all the same.
        self.probe.event(ProbeEvent::Truncated {
            dir: &self.dir,
            offset: new_end,
        });
        let removed: Vec<Segment> = doomed
            .iter()
            .filter_map(|b| st.segments.remove(b))
            .collect();
        let cfg = st.config.clone();
        st.active_mut()
            .truncate_to_offset(new_end, &cfg)
            .map_err(io_err)?;
        st.next_offset = new_end;
        st.durable_offset = st.durable_offset.min(new_end);
        if let Some(hw) = st.high_watermark.as_mut() {
            // Only a follower truncates, and only above what it knew committed; clamp anyway.
            *hw = (*hw).min(new_end);
        }
        // Snapshots past the cut describe batches that are gone.
        let (keep, drop): (Vec<_>, Vec<_>) = std::mem::take(&mut st.unsynced_snapshots)
            .into_iter()
            .partition(|s| s.offset().is_some_and(|o| o <= new_end));
        st.unsynced_snapshots = keep;
        for snap in drop {
            snap.discard(&*self.disk);
        }
        st.producers = recover_producers(
            &*self.disk,
            &self.dir,
            &st.segments,
            st.log_start_offset,
            new_end,
            now,
        )?;
        if st.epochs.truncate_from_end(new_end) {
            st.epochs_dirty = true;
        }
        st.dir_writes.touch();
        self.publish(st);
        Ok((new_end, removed))
    }

    /// Applies retention: deletes the oldest closed segments while they are older than
    /// `retention.ms` or the log is larger than `retention.bytes`. Never the active segment.
    /// Returns how many segments were deleted.
    pub async fn delete_expired_segments(&self) -> Result<usize, LogError> {
        let now = self.clock.now_ms();
        // Held until the new log start is published, so no periodic checkpoint writes the old
        // one back in between.
        let mut last = self.checkpoint_lock.lock().await;
        let (doomed, checkpoint) = {
            let st = self.lock();
            st.check_online().map_err(LogError::Offline)?;
            let cfg = st.config.clone();
            let mut total: i64 = st.segments.values().map(|s| s.size() as i64).sum();
            let closed: Vec<i64> = st.segments.keys().rev().skip(1).rev().copied().collect();
            let mut doomed = Vec::new();
            for base in closed {
                let seg = &st.segments[&base];
                // Never past the high watermark, as Kafka's deletableSegments: the log start
                // must not pass what is committed, nor the point where a new leader may find
                // this log diverging (seed 40867: a cut-off leader's retention moved its start
                // past that point, and the truncation a later leader asked for was refused).
                let upper = st
                    .segments
                    .range(base + 1..)
                    .next()
                    .map_or(st.next_offset, |(b, _)| *b);
                if st.high_watermark.is_some_and(|hw| upper > hw) {
                    break;
                }
                let by_time = cfg.retention_ms >= 0
                    && seg.max_timestamp() >= 0
                    && now.saturating_sub(seg.max_timestamp()) > cfg.retention_ms;
                let by_size =
                    cfg.retention_bytes >= 0 && total - seg.size() as i64 >= cfg.retention_bytes;
                if !(by_time || by_size) {
                    break;
                }
                total -= seg.size() as i64;
                doomed.push(base);
            }
            // The active segment is never doomed, so a segment remains after them.
            let first_kept = st
                .segments
                .keys()
                .find(|b| !doomed.contains(*b))
                .copied()
                .unwrap_or(st.next_offset);
            let log_start = st.log_start_offset.max(first_kept);
            let checkpoint = LogCheckpoint {
                recovery_point: st.durable_offset.max(log_start),
                log_start_offset: log_start,
                high_watermark: st.high_watermark.map(|h| h.max(log_start)),
            };
            (doomed, checkpoint)
        };
        if doomed.is_empty() {
            return Ok(0);
        }
        // The new log start is durable before anyone is told of it and before the files go:
        // a crash can then bring back neither the old start nor segments below the new one.
        self.write_checkpoint(&mut last, checkpoint).await?;
        let removed: Vec<Segment> = {
            let mut st = self.lock();
            let removed: Vec<Segment> = doomed
                .iter()
                .filter_map(|b| st.segments.remove(b))
                .collect();
            st.log_start_offset = st.log_start_offset.max(checkpoint.log_start_offset);
            st.durable_offset = st.durable_offset.max(st.log_start_offset);
            let log_start = st.log_start_offset;
            if st.epochs.truncate_from_start(log_start) {
                st.epochs_dirty = true;
            }
            let expired = st.producers.expire_below(log_start);
            if expired > 0 {
                tracing::info!(dir = %self.dir.display(), expired, "producers whose batches retention deleted are forgotten");
            }
            st.dir_writes.touch();
            self.publish(&st);
            removed
        };
        drop(last);
        for seg in &removed {
            tracing::info!(segment = %seg.log_path().display(), "retention deletes segment");
            recovery::delete_segment_files(&*self.disk, &self.dir, seg.base_offset)?;
        }
        self.sync_all(false).await?;
        Ok(removed.len())
    }

    /// Kafka's `deleteRecords`: moves the log start up to `offset` (at most the log end) and
    /// deletes the segments wholly below it. The new start is durable (in the checkpoint)
    /// before anyone is told of it and before any file goes. Returns the log start.
    pub async fn delete_records_below(&self, offset: i64) -> Result<i64, LogError> {
        let mut last = self.checkpoint_lock.lock().await;
        let checkpoint = {
            let st = self.lock();
            st.check_online().map_err(LogError::Offline)?;
            let log_start = offset.min(st.next_offset);
            if log_start <= st.log_start_offset {
                return Ok(st.log_start_offset);
            }
            LogCheckpoint {
                recovery_point: st.durable_offset.max(log_start),
                log_start_offset: log_start,
                high_watermark: st.high_watermark.map(|h| h.max(log_start)),
            }
        };
        self.write_checkpoint(&mut last, checkpoint).await?;
        let removed: Vec<Segment> = {
            let mut st = self.lock();
            let log_start = checkpoint.log_start_offset;
            // A segment goes when the next one starts at or below the new start.
            let bases: Vec<i64> = st.segments.keys().copied().collect();
            let doomed: Vec<i64> = bases
                .windows(2)
                .filter(|w| w[1] <= log_start)
                .map(|w| w[0])
                .collect();
            let removed = doomed
                .iter()
                .filter_map(|b| st.segments.remove(b))
                .collect();
            st.log_start_offset = st.log_start_offset.max(log_start);
            st.durable_offset = st.durable_offset.max(st.log_start_offset);
            if st.epochs.truncate_from_start(log_start) {
                st.epochs_dirty = true;
            }
            st.producers.expire_below(log_start);
            st.dir_writes.touch();
            self.publish(&st);
            removed
        };
        drop(last);
        for seg in &removed {
            recovery::delete_segment_files(&*self.disk, &self.dir, seg.base_offset)?;
        }
        self.sync_all(false).await?;
        Ok(checkpoint.log_start_offset)
    }

    /// Kafka's `truncateFullyAndStartAt`: empties the log and starts it again at `offset`
    /// (a replica that installs a snapshot ending there). The new start is durable (in the
    /// checkpoint) before the old segments go, so a crash in between recovers an empty log
    /// at `offset`.
    pub async fn truncate_fully_and_start_at(&self, offset: i64) -> Result<(), TruncateError> {
        self.start_again_at(offset, false).await
    }

    /// Kafka's `truncateTo` below the first segment: a follower whose whole log lies past the
    /// point where it diverges from its leader's empties it and starts again there, even below
    /// its own log start (its retention may have moved that past the divergence).
    pub async fn truncate_fully_and_start_below(&self, offset: i64) -> Result<(), TruncateError> {
        self.start_again_at(offset, true).await
    }

    async fn start_again_at(&self, offset: i64, may_go_back: bool) -> Result<(), TruncateError> {
        let mut last = self.checkpoint_lock.lock().await;
        let _turn = self.sync_lock.lock().await;
        let now = self.clock.now_ms();
        let managed = {
            let st = self.lock();
            st.check_online().map_err(TruncateError::Offline)?;
            if offset < st.log_start_offset && !may_go_back {
                return Err(TruncateError::BelowLogStart {
                    offset,
                    log_start: st.log_start_offset,
                });
            }
            st.high_watermark.is_some()
        };
        let checkpoint = LogCheckpoint {
            recovery_point: offset,
            log_start_offset: offset,
            high_watermark: managed.then_some(offset),
        };
        self.write_checkpoint(&mut last, checkpoint).await?;
        {
            let mut st = self.lock();
            if offset < st.log_start_offset {
                // Starting again below its own start is no retention and no ordinary cut: it
                // is declared as what it is, every batch cut and the log begun afresh, once
                // the checkpoint that says so is durable.
                self.probe.event(ProbeEvent::Truncated {
                    dir: &self.dir,
                    offset: st.log_start_offset,
                });
                self.probe.event(ProbeEvent::Deleted { dir: &self.dir });
            }
            let old = std::mem::take(&mut st.segments);
            let pending = std::mem::take(&mut st.unsynced_snapshots);
            for snap in pending {
                snap.discard(&*self.disk);
            }
            let gone = || -> io::Result<Segment> {
                for base in old.keys() {
                    recovery::delete_segment_files(&*self.disk, &self.dir, *base)?;
                }
                // The idempotent producers' snapshots describe batches that are gone.
                for at in snapshot::list(&*self.disk, &self.dir)? {
                    self.disk
                        .remove_file(&self.dir.join(snapshot::file_name(at)))?;
                }
                Segment::create(&*self.disk, &self.dir, offset, &st.config, now)
            };
            let fresh = match gone() {
                Ok(seg) => seg,
                Err(e) => {
                    // The checkpoint already says the log starts empty at `offset`: recovery
                    // finishes the job.
                    let why = format!("could not start the log again at {offset}: {e}");
                    st.offline = Some(why.clone());
                    return Err(TruncateError::Offline(why));
                }
            };
            st.segments.insert(offset, fresh);
            st.log_start_offset = offset;
            st.next_offset = offset;
            st.durable_offset = offset;
            if st.high_watermark.is_some() {
                st.high_watermark = Some(offset);
            }
            st.epochs = LeaderEpochCache::from_entries(&[]);
            st.epochs_dirty = true;
            st.producers = ProducerStates::default();
            st.dir_writes.touch();
            self.publish(&st);
        }
        drop(last);
        self.sync_locked(true).await?;
        tracing::info!(dir = %self.dir.display(), offset, "emptied the log; it starts again at the offset");
        Ok(())
    }

    /// Forgets idempotent producers idle for longer than `expiration_ms`
    /// (`producer.id.expiration.ms`). Returns how many.
    pub fn expire_idle_producers(&self, expiration_ms: i64) -> usize {
        let now = self.clock.now_ms();
        self.lock().producers.expire_idle(now, expiration_ms)
    }

    /// A copy of the idempotent producers' state (for tests and tools).
    pub fn producer_states(&self) -> ProducerStates {
        self.lock().producers.clone()
    }

    /// Syncs everything, writes the checkpoint and stops taking writes.
    pub async fn close(&self) -> Result<(), LogError> {
        {
            let mut st = self.lock();
            match snapshot::write(&*self.disk, &self.dir, st.next_offset, &st.producers) {
                Ok(file) => {
                    st.unsynced_snapshots.push(file);
                    st.dir_writes.touch();
                }
                Err(e) => {
                    tracing::warn!(dir = %self.dir.display(), error = %e, "could not write a producer snapshot")
                }
            }
        }
        self.sync_all(true).await?;
        self.checkpoint().await?;
        self.lock().offline = Some("the log is closed".into());
        Ok(())
    }

    /// False once a failure took the log offline (it then refuses reads and writes until it
    /// is opened again).
    pub fn is_online(&self) -> bool {
        self.lock().offline.is_none()
    }

    /// Marks the log offline with `reason` without syncing (a crash of this log alone, or
    /// the first step of deleting it).
    pub fn take_offline(&self, reason: &str) {
        self.lock().offline = Some(reason.to_string());
    }
}

/// The offsets as the probe declares them.
fn probe_state(o: &LogOffsets) -> PartitionState {
    PartitionState {
        log_start: o.log_start,
        log_end: o.log_end,
        durable_end: o.durable_end,
        high_watermark: o.high_watermark,
    }
}

/// Checks every idempotent batch of a record set against the producers' state, in order
/// (a set may hold several batches of one producer). Returns the first duplicate, if any:
/// Kafka answers the whole append with it.
fn check_producers(
    producers: &ProducerStates,
    batches: &[batch::ValidBatch],
) -> Result<Option<BatchMeta>, ProducerError> {
    let idempotent = batches.iter().filter(|b| b.header.producer_id >= 0).count();
    if idempotent == 0 {
        return Ok(None);
    }
    // Later batches must follow earlier ones of the same set: check against a staged copy.
    let mut staged = (idempotent > 1).then(|| producers.clone());
    for b in batches.iter().filter(|b| b.header.producer_id >= 0) {
        let h = &b.header;
        let view = staged.as_ref().unwrap_or(producers);
        match view.check(
            h.producer_id,
            h.producer_epoch,
            h.base_sequence,
            h.records_count,
        )? {
            Verdict::Duplicate(meta) => return Ok(Some(meta)),
            Verdict::Append => {
                if let Some(s) = staged.as_mut() {
                    // Offsets are not assigned yet; only the sequence matters for the next check.
                    record_producer_batch(s, h, 0);
                }
            }
        }
    }
    Ok(None)
}

/// Records a written batch (`h` with its final offsets) of an idempotent producer.
fn record_producer_batch(producers: &mut ProducerStates, h: &batch::BatchHeader, now_ms: i64) {
    if h.producer_id < 0 {
        return;
    }
    let ts = if h.max_timestamp >= 0 {
        h.max_timestamp
    } else {
        now_ms
    };
    producers.replay(h, ts);
}

/// Rebuilds the producers' state of the log made of `segments` from `log_start` to `log_end`
/// (at recovery, and after a truncation): the newest snapshot the log still covers, then every
/// batch after it; snapshots past the end are deleted; producers whose batches are all below
/// the log start are gone.
fn recover_producers(
    disk: &dyn Disk,
    dir: &Path,
    segments: &BTreeMap<i64, Segment>,
    log_start: i64,
    log_end: i64,
    now_ms: i64,
) -> Result<ProducerStates, LogError> {
    let (from, mut producers) = match snapshot::load_for_recovery(disk, dir, log_start, log_end)? {
        Some((offset, states)) => (offset, states),
        None => (log_start, ProducerStates::default()),
    };
    for seg in segments.values() {
        if seg.next_offset() <= from {
            continue;
        }
        seg.for_each_header(from, |h| {
            if h.base_offset < log_end {
                record_producer_batch(&mut producers, h, now_ms);
            }
        })
        .map_err(|e| LogError::Io(io::Error::other(e.to_string())))?;
    }
    producers.expire_below(log_start);
    Ok(producers)
}

/// Loads the epoch cache at open: the `leader-epoch-checkpoint`, cut back to the recovered log
/// (its end and its start), then brought up to date from the headers of the batches from the
/// checkpoint's recovery point on (the file describes every batch below it: see
/// `LogState::epochs_dirty`). A missing file (a log from before epochs were kept) or a damaged
/// one is rebuilt from every batch's header. Returns the cache and whether the file must be
/// rewritten.
fn recover_epochs(
    disk: &dyn Disk,
    dir: &Path,
    recovered: &recovery::Recovered,
) -> Result<(LeaderEpochCache, bool), LogError> {
    let (log_start, log_end) = (recovered.log_start_offset, recovered.next_offset);
    let (loaded, damaged) = match leader_epoch::read(disk, dir) {
        Ok(entries) => (entries, false),
        Err(EpochFileError::Io(e)) => return Err(LogError::Io(e)),
        Err(e @ EpochFileError::Damaged(_)) => {
            tracing::warn!(dir = %dir.display(), error = %e, "rebuilding the leader epoch cache from the log's batches");
            (None, true)
        }
    };
    let from = match &loaded {
        Some(_) => recovered.report.checkpoint_recovery_point,
        None => log_start,
    };
    let mut cache = LeaderEpochCache::from_entries(loaded.as_deref().unwrap_or_default());
    cache.truncate_from_end(log_end);
    cache.truncate_from_start(log_start);
    let from = from.clamp(log_start, log_end);
    let mut disagrees = !replay_epochs(&mut cache, &recovered.segments, from, log_start)?;
    if disagrees && from > log_start {
        tracing::warn!(dir = %dir.display(), "the leader epoch checkpoint disagrees with the log's batches; rebuilding it from them");
        cache = LeaderEpochCache::default();
        disagrees = !replay_epochs(&mut cache, &recovered.segments, log_start, log_start)?;
    }
    if disagrees {
        tracing::warn!(dir = %dir.display(), "the log's batches carry leader epochs that go back; the cache keeps the newest");
    }
    let dirty = damaged || cache.entries() != loaded.as_deref().unwrap_or_default();
    Ok((cache, dirty))
}

/// Brings `cache` up to date with the headers of the batches from `from` on: a batch of a
/// newer epoch than the latest starts an entry; one of an older epoch must be where the cache
/// already puts it. Returns false if some batch disagreed with the cache (it was not applied:
/// Kafka's `assign` would let an older epoch remove the newer entries).
fn replay_epochs(
    cache: &mut LeaderEpochCache,
    segments: &BTreeMap<i64, Segment>,
    from: i64,
    log_start: i64,
) -> Result<bool, LogError> {
    let mut agrees = true;
    for seg in segments.values() {
        if seg.next_offset() <= from {
            continue;
        }
        seg.for_each_header(from, |h| {
            let (epoch, base) = (h.partition_leader_epoch, h.base_offset.max(log_start));
            if epoch < 0 {
                return;
            }
            match cache.latest_epoch() {
                Some(latest) if epoch <= latest => {
                    agrees &= cache.epoch_for_offset(base) == Some(epoch);
                }
                _ => {
                    cache.assign(epoch, base);
                }
            }
        })
        .map_err(|e| LogError::Io(io::Error::other(e.to_string())))?;
    }
    Ok(agrees)
}

/// Reads batches from `file` starting at `pos` (whose header is `first`), stopping at `end`,
/// at `max_bytes` (unless the first batch alone is larger and `min_one`), or at the first batch
/// at or past `max_offset`. Verifies every batch's CRC; a damaged first batch is an error, a
/// damaged later one ends the read before it.
fn read_batches(
    file: &dyn DiskFile,
    pos: u64,
    end: u64,
    first: &batch::BatchHeader,
    max_bytes: usize,
    max_offset: i64,
    min_one: bool,
) -> Result<Vec<u8>, ReadError> {
    if first.base_offset >= max_offset {
        return Ok(Vec::new());
    }
    let available = usize::try_from(end - pos).unwrap_or(usize::MAX);
    let first_len = first.total_len();
    if first_len > available {
        return Err(ReadError::Storage(format!(
            "batch at position {pos} claims {first_len} bytes, {available} remain"
        )));
    }
    let want = if max_bytes >= first_len {
        max_bytes.min(available)
    } else if min_one {
        first_len
    } else {
        return Ok(Vec::new());
    };
    let mut buf = vec![0u8; want];
    read_exact_at(file, &mut buf, pos).map_err(|e| ReadError::Storage(e.to_string()))?;
    let mut p = 0usize;
    while p + HEADER_LEN <= buf.len() {
        let h = match batch::BatchHeader::parse(&buf[p..]) {
            Ok(h) => h,
            Err(e) if p == 0 => return Err(ReadError::Storage(format!("at position {pos}: {e}"))),
            Err(_) => break,
        };
        if h.base_offset >= max_offset || p + h.total_len() > buf.len() {
            break;
        }
        if let Err(e) = batch::check_integrity(&buf[p..p + h.total_len()]) {
            if p == 0 {
                return Err(ReadError::Storage(format!("at position {pos}: {e}")));
            }
            break;
        }
        p += h.total_len();
    }
    buf.truncate(p);
    Ok(buf)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod replication_tests;
