//! The quorum's durable state on one node, through the seam: the `quorum-state` file (epoch,
//! vote, leader), written atomically and fsynced, and the log `__cluster_metadata-0`, a
//! partition log like any other whose batches are the core's entries (one entry per batch, at
//! the offset and leader epoch the core gave it), and snapshots of the application's state
//! (KIP-630), one file per snapshot named as Kafka names them
//! (`<end offset, 20 digits>-<epoch, 10 digits>.checkpoint`), written atomically; only the
//! newest is kept once it is durable. [`RaftStore::persist`] carries out the durable half of a
//! [`Ready`] in the order the core requires.

use super::log::{Entry, OffsetAndEpoch, Snapshot};
use super::node::{QuorumState, Ready};
use super::wire::{self, METADATA_PARTITION, METADATA_TOPIC};
use crate::codec;
use crate::env::Env;
use crate::env::disk::{FileMode, read_exact_at, write_atomic};
use crate::log::{
    FollowerAppendError, LogConfig, LogError, PartitionLog, ReadError, TruncateError,
};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The quorum-state file's name, in the metadata log's directory (as in Kafka).
pub const QUORUM_STATE_FILE: &str = "quorum-state";
/// Its frame version.
const QUORUM_STATE_VERSION: u16 = 1;
/// Largest quorum-state file read.
const QUORUM_STATE_BYTES_MAX: u64 = 4096;
/// A snapshot file's suffix (Kafka's).
const SNAPSHOT_SUFFIX: &str = ".checkpoint";
/// Its frame version.
const SNAPSHOT_VERSION: u16 = 1;
/// Largest snapshot file read.
const SNAPSHOT_BYTES_MAX: u64 = 1 << 30;

/// A snapshot as stored: its id again (checked against the name) and the application's bytes.
#[derive(Debug, Serialize, Deserialize)]
struct StoredSnapshot {
    end_offset: i64,
    epoch: i32,
    data: Vec<u8>,
}

/// Kafka's snapshot file name for `id`.
pub fn snapshot_file_name(id: OffsetAndEpoch) -> String {
    format!("{:020}-{:010}{SNAPSHOT_SUFFIX}", id.offset, id.epoch)
}

/// The snapshot id a file name stands for, if it is one.
fn parse_snapshot_name(name: &str) -> Option<OffsetAndEpoch> {
    let stem = name.strip_suffix(SNAPSHOT_SUFFIX)?;
    let (offset, epoch) = stem.split_once('-')?;
    if offset.len() != 20 || epoch.len() != 10 {
        return None;
    }
    Some(OffsetAndEpoch {
        offset: offset.parse().ok()?,
        epoch: epoch.parse().ok()?,
    })
}

/// Why the quorum's storage failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the quorum's log: {0}")]
    Log(#[from] LogError),
    #[error("reading the quorum's log: {0}")]
    Read(#[from] ReadError),
    #[error("appending to the quorum's log: {0}")]
    Append(#[from] FollowerAppendError),
    #[error("truncating the quorum's log: {0}")]
    Truncate(#[from] TruncateError),
    #[error("the quorum's log at offset {offset} is damaged: {reason}")]
    Damaged { offset: i64, reason: String },
    #[error("the quorum-state file {path}: {reason}")]
    QuorumState { path: PathBuf, reason: String },
    #[error("the quorum-state file: {0}")]
    Io(#[from] std::io::Error),
    #[error(
        "the quorum's log starts at offset {log_start}, past its newest readable snapshot \
         (ending at {snapshot_end}): the entries in between are lost on this node; move \
         {dir} aside so that the node fetches the metadata from the quorum again"
    )]
    SnapshotGap {
        log_start: i64,
        snapshot_end: i64,
        dir: PathBuf,
    },
}

/// The quorum-state as stored: Kafka's fields (`leaderEpoch`, `votedId`, `leaderId`), -1 for
/// none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct StoredQuorumState {
    leader_epoch: i32,
    voted_id: i32,
    leader_id: i32,
}

/// The quorum's log and quorum-state file of one node.
pub struct RaftStore {
    env: Env,
    dir: PathBuf,
    /// Replaced by [`RaftStore::reopen`] after the log went offline.
    log: std::sync::Mutex<Arc<PartitionLog>>,
}

/// The metadata log's settings: large segments, kept until a snapshot stands for them (the
/// core moves the log start), synced when the core asks.
fn log_config() -> LogConfig {
    LogConfig {
        segment_bytes: 64 << 20,
        retention_ms: -1,
        retention_bytes: -1,
        max_message_bytes: 16 << 20,
        write_caching: false,
        ..LogConfig::default()
    }
}

impl RaftStore {
    /// Opens (recovering) `<data_dir>/__cluster_metadata-0` and reads back the quorum-state, the
    /// newest readable snapshot and every entry from the log start, to start the core from. A
    /// log that ends below the snapshot (a crash while a fetched snapshot replaced it) starts
    /// again empty at the snapshot's end.
    pub async fn open(
        env: &Env,
        data_dir: &Path,
    ) -> Result<(RaftStore, QuorumState, Option<Snapshot>, Vec<Entry>), StoreError> {
        let dir = data_dir.join(format!("{METADATA_TOPIC}-{METADATA_PARTITION}"));
        let log = PartitionLog::open(env, &dir, log_config()).await?;
        let store = RaftStore {
            env: env.clone(),
            dir,
            log: std::sync::Mutex::new(log),
        };
        let quorum = store.read_quorum_state()?;
        let snapshot = store.read_latest_snapshot()?;
        let log = store.log();
        let snapshot_end = snapshot.as_ref().map_or(0, |s| s.id.offset);
        if log.log_start_offset() > snapshot_end {
            return Err(StoreError::SnapshotGap {
                log_start: log.log_start_offset(),
                snapshot_end,
                dir: store.dir.clone(),
            });
        }
        if log.log_end_offset() < snapshot_end {
            tracing::info!(dir = %store.dir.display(), snapshot_end, log_end = log.log_end_offset(), "the quorum's log ends below its snapshot; it starts again at the snapshot");
            log.truncate_fully_and_start_at(snapshot_end).await?;
        }
        let entries = store.read_entries()?;
        Ok((store, quorum, snapshot, entries))
    }

    /// The newest snapshot that reads back whole; damaged ones are skipped, with a warning.
    fn read_latest_snapshot(&self) -> Result<Option<Snapshot>, StoreError> {
        let disk = &*self.env.disk;
        let mut ids: Vec<OffsetAndEpoch> = disk
            .list_dir(&self.dir)?
            .into_iter()
            .filter(|e| !e.is_dir)
            .filter_map(|e| parse_snapshot_name(&e.name))
            .collect();
        ids.sort_by_key(|id| std::cmp::Reverse((id.offset, id.epoch)));
        for id in ids {
            let path = self.dir.join(snapshot_file_name(id));
            match self.read_snapshot(&path, id) {
                Ok(s) => return Ok(Some(s)),
                Err(reason) => {
                    tracing::warn!(path = %path.display(), %reason, "skipping a damaged metadata snapshot");
                }
            }
        }
        Ok(None)
    }

    fn read_snapshot(&self, path: &Path, id: OffsetAndEpoch) -> Result<Snapshot, String> {
        let disk = &*self.env.disk;
        let file = disk.open(path, FileMode::Read).map_err(|e| e.to_string())?;
        let len = file.len().map_err(|e| e.to_string())?;
        if len > SNAPSHOT_BYTES_MAX {
            return Err(format!("{len} bytes is too large"));
        }
        let mut buf = vec![0u8; len as usize];
        read_exact_at(&*file, &mut buf, 0).map_err(|e| e.to_string())?;
        let frame =
            codec::read_frame(&buf, SNAPSHOT_BYTES_MAX as usize).map_err(|e| e.to_string())?;
        if frame.version > SNAPSHOT_VERSION {
            return Err(format!(
                "version {} is newer than this runnel knows",
                frame.version
            ));
        }
        let s: StoredSnapshot = codec::decode_payload(&frame).map_err(|e| e.to_string())?;
        if (s.end_offset, s.epoch) != (id.offset, id.epoch) {
            return Err(format!(
                "it holds snapshot {}-{}, not the one its name says",
                s.end_offset, s.epoch
            ));
        }
        Ok(Snapshot {
            id,
            data: bytes::Bytes::from(s.data),
        })
    }

    /// Writes `snapshot` durably (atomically, under its name), then deletes the older ones.
    async fn write_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        let stored = StoredSnapshot {
            end_offset: snapshot.id.offset,
            epoch: snapshot.id.epoch,
            data: snapshot.data.to_vec(),
        };
        let bytes = codec::encode(SNAPSHOT_VERSION, &stored);
        let path = self.dir.join(snapshot_file_name(snapshot.id));
        write_atomic(&*self.env.disk, &path, &bytes).await?;
        self.env.probe.event(crate::env::ProbeEvent::FileDurable {
            path: &path,
            bytes: &bytes,
        });
        let disk = &*self.env.disk;
        for e in disk.list_dir(&self.dir)? {
            if let Some(id) = parse_snapshot_name(&e.name)
                && (id.offset, id.epoch) < (snapshot.id.offset, snapshot.id.epoch)
                && let Err(err) = disk.remove_file(&self.dir.join(&e.name))
            {
                tracing::debug!(file = %e.name, error = %err, "could not delete an old metadata snapshot");
            }
        }
        Ok(())
    }

    /// The log (for the probe and for status).
    pub fn log(&self) -> Arc<PartitionLog> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// After a failure that took the log offline (a write that could not be cut back), opens
    /// it again from disk, recovering it as at start. Entries the core was told are durable
    /// were synced, so recovery keeps them.
    pub async fn reopen_if_offline(&self) -> Result<(), StoreError> {
        let log = self.log();
        if log.is_online() {
            return Ok(());
        }
        tracing::warn!(dir = %self.dir.display(), "reopening the quorum's log after it went offline");
        let fresh = PartitionLog::open(&self.env, &self.dir, log_config()).await?;
        *self.log.lock().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }

    fn quorum_state_path(&self) -> PathBuf {
        self.dir.join(QUORUM_STATE_FILE)
    }

    fn read_quorum_state(&self) -> Result<QuorumState, StoreError> {
        let path = self.quorum_state_path();
        let disk = &*self.env.disk;
        if !disk.exists(&path) {
            return Ok(QuorumState::default());
        }
        let bad = |reason: String| StoreError::QuorumState {
            path: path.clone(),
            reason,
        };
        let file = disk.open(&path, FileMode::Read)?;
        let len = file.len()?;
        if len > QUORUM_STATE_BYTES_MAX {
            return Err(bad(format!("{len} bytes is too large")));
        }
        let mut buf = vec![0u8; len as usize];
        read_exact_at(&*file, &mut buf, 0)?;
        let frame = codec::read_frame(&buf, QUORUM_STATE_BYTES_MAX as usize)
            .map_err(|e| bad(e.to_string()))?;
        if frame.version > QUORUM_STATE_VERSION {
            return Err(bad(format!(
                "version {} is newer than this runnel knows",
                frame.version
            )));
        }
        let s: StoredQuorumState = codec::decode_payload(&frame).map_err(|e| bad(e.to_string()))?;
        if s.leader_epoch < 0 {
            return Err(bad(format!("negative epoch {}", s.leader_epoch)));
        }
        let id = |n: i32| (n >= 0).then_some(n);
        Ok(QuorumState {
            epoch: s.leader_epoch,
            voted_for: id(s.voted_id),
            leader_id: id(s.leader_id),
        })
    }

    /// Every entry of the log, checked (whole batches, one entry each, dense offsets, epochs
    /// never decreasing).
    fn read_entries(&self) -> Result<Vec<Entry>, StoreError> {
        let log = self.log();
        let end = log.log_end_offset();
        let mut offset = log.log_start_offset();
        let mut out: Vec<Entry> = Vec::new();
        while offset < end {
            let read = log.read(offset, 1 << 20, end, true)?;
            if read.records.is_empty() {
                break;
            }
            let entries = wire::decode_entries(&read.records).map_err(|e| StoreError::Damaged {
                offset,
                reason: e.to_string(),
            })?;
            let Some(last) = entries.last() else { break };
            offset = last.offset + 1;
            out.extend(entries);
        }
        Ok(out)
    }

    /// Makes the durable half of `ready` durable, in the order the core requires: the
    /// quorum-state fsynced, the log cut back, the entries appended, the log synced. The
    /// caller then advances the core and sends the messages. Idempotent, so a Ready that
    /// failed halfway is retried whole: what is already written is not written again.
    pub async fn persist(&self, ready: &Ready) -> Result<(), StoreError> {
        if let Some(q) = ready.quorum_state {
            let stored = StoredQuorumState {
                leader_epoch: q.epoch,
                voted_id: q.voted_for.unwrap_or(-1),
                leader_id: q.leader_id.unwrap_or(-1),
            };
            let bytes = codec::encode(QUORUM_STATE_VERSION, &stored);
            if self.env.disk.planted_bugs().vote_not_synced {
                // The planted bug: the new quorum-state is written but not made durable.
                self.write_unsynced(&bytes)?;
            } else {
                write_atomic(&*self.env.disk, &self.quorum_state_path(), &bytes).await?;
            }
            // What the node now counts on surviving a power loss (the simulator checks it).
            self.env.probe.event(crate::env::ProbeEvent::FileDurable {
                path: &self.quorum_state_path(),
                bytes: &bytes,
            });
        }
        if let Some(snapshot) = &ready.snapshot {
            self.write_snapshot(snapshot).await?;
        }
        let log = self.log();
        if let Some(start) = ready.reset_log {
            // Idempotent on a retry: only if the log is not already empty there.
            if log.log_start_offset() != start.offset || log.log_end_offset() != start.offset {
                log.truncate_fully_and_start_at(start.offset).await?;
            }
        }
        if let Some(start) = ready.log_start {
            log.delete_records_below(start).await?;
        }
        if let Some(end) = ready.truncate_to
            && log.log_end_offset() > end
        {
            log.truncate_to(end).await?;
        }
        if let Some(last) = ready.entries.last() {
            let written = log.log_end_offset();
            let new: Vec<Entry> = ready
                .entries
                .iter()
                .filter(|e| e.offset >= written)
                .cloned()
                .collect();
            if !new.is_empty() {
                log.append_as_follower(&wire::encode_entries(&new))?;
            }
            log.sync_to(last.offset + 1).await?;
        }
        Ok(())
    }

    /// `vote-not-synced`: overwrites the quorum-state in place with no fsync.
    fn write_unsynced(&self, bytes: &[u8]) -> Result<(), StoreError> {
        let file = self
            .env
            .disk
            .open(&self.quorum_state_path(), FileMode::CreateTruncate)?;
        file.write_at(bytes, 0)?;
        Ok(())
    }

    /// Syncs and closes the log.
    pub async fn close(&self) -> Result<(), StoreError> {
        Ok(self.log().close().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::{MemDisk, SharedRng};
    use crate::raft::{EntryKind, Outgoing};
    use bytes::Bytes;

    fn env(disk: &MemDisk) -> Env {
        Env {
            disk: Arc::new(disk.clone()),
            net: Arc::new(crate::env::RealNetwork),
            clock: Arc::new(crate::env::clock::ManualClock::new(1)),
            rng: SharedRng::seeded(3),
            probe: Arc::new(crate::env::NoProbe),
        }
    }

    fn entry(offset: i64, epoch: i32) -> Entry {
        Entry {
            offset,
            epoch,
            kind: if offset == 0 {
                EntryKind::LeaderChange { leader_id: 1 }
            } else {
                EntryKind::Data
            },
            payload: if offset == 0 {
                Bytes::new()
            } else {
                Bytes::from(format!("e{offset}"))
            },
        }
    }

    #[tokio::test]
    async fn what_a_ready_makes_durable_survives_a_power_loss() {
        let disk = MemDisk::new();
        let data = Path::new("/data");
        let (store, q, _, entries) = RaftStore::open(&env(&disk), data).await.unwrap();
        assert_eq!(q, QuorumState::default());
        assert!(entries.is_empty());
        let quorum = QuorumState {
            epoch: 3,
            voted_for: Some(2),
            leader_id: Some(2),
        };
        let ready = Ready {
            number: 1,
            quorum_state: Some(quorum),
            truncate_to: None,
            entries: (0..4).map(|o| entry(o, 3)).collect(),
            messages: Vec::<Outgoing>::new(),
            committed: Vec::new(),
            ..Ready::default()
        };
        store.persist(&ready).await.unwrap();
        // Cut back and rewritten in a later epoch.
        let ready = Ready {
            number: 2,
            quorum_state: Some(QuorumState {
                epoch: 4,
                voted_for: None,
                leader_id: Some(1),
            }),
            truncate_to: Some(2),
            entries: vec![entry(2, 4)],
            ..Ready::default()
        };
        store.persist(&ready).await.unwrap();
        drop(store);
        disk.crash(Some(16), 9);
        let (_store, q, _, entries) = RaftStore::open(&env(&disk), data).await.unwrap();
        assert_eq!(q.epoch, 4);
        assert_eq!(q.leader_id, Some(1));
        assert_eq!(q.voted_for, None);
        let want: Vec<Entry> = vec![entry(0, 3), entry(1, 3), entry(2, 4)];
        assert_eq!(entries, want);
    }

    #[tokio::test]
    async fn a_damaged_quorum_state_is_an_error_not_a_fresh_start() {
        let disk = MemDisk::new();
        let data = Path::new("/data");
        let (store, _, _, _) = RaftStore::open(&env(&disk), data).await.unwrap();
        store
            .persist(&Ready {
                number: 1,
                quorum_state: Some(QuorumState {
                    epoch: 7,
                    voted_for: Some(1),
                    leader_id: None,
                }),
                ..Ready::default()
            })
            .await
            .unwrap();
        let path = store.quorum_state_path();
        drop(store);
        let f = crate::env::Disk::open(&disk, &path, FileMode::ReadWrite).unwrap();
        f.write_at(&[0xff; 4], 6).unwrap();
        let err = RaftStore::open(&env(&disk), data).await.err().unwrap();
        assert!(matches!(err, StoreError::QuorumState { .. }), "got {err}");
    }

    #[tokio::test]
    async fn a_snapshot_bounds_the_log_and_survives_a_power_loss_with_the_entries_after_it() {
        let disk = MemDisk::new();
        let data = Path::new("/data");
        let (store, _, snapshot, _) = RaftStore::open(&env(&disk), data).await.unwrap();
        assert!(snapshot.is_none());
        let ready = Ready {
            number: 1,
            entries: (0..6).map(|o| entry(o, 1)).collect(),
            ..Ready::default()
        };
        store.persist(&ready).await.unwrap();
        let first = Snapshot {
            id: OffsetAndEpoch {
                offset: 3,
                epoch: 1,
            },
            data: Bytes::from_static(b"three"),
        };
        let ready = Ready {
            number: 2,
            snapshot: Some(first.clone()),
            log_start: Some(3),
            entries: vec![entry(6, 2)],
            ..Ready::default()
        };
        store.persist(&ready).await.unwrap();
        // Retried whole (as after a failure half-way): nothing changes.
        store.persist(&ready).await.unwrap();
        let newer = Snapshot {
            id: OffsetAndEpoch {
                offset: 5,
                epoch: 1,
            },
            data: Bytes::from_static(b"five"),
        };
        store
            .persist(&Ready {
                number: 3,
                snapshot: Some(newer.clone()),
                log_start: Some(5),
                ..Ready::default()
            })
            .await
            .unwrap();
        drop(store);
        disk.crash(Some(16), 9);
        let (store, _, snapshot, entries) = RaftStore::open(&env(&disk), data).await.unwrap();
        assert_eq!(snapshot, Some(newer.clone()));
        assert_eq!(
            entries.iter().filter(|e| e.offset >= 5).count(),
            2,
            "{entries:?}"
        );
        // The older snapshot is gone.
        let names: Vec<String> = crate::env::Disk::list_dir(&disk, &store.dir)
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .filter(|n| parse_snapshot_name(n).is_some())
            .collect();
        assert_eq!(names, vec![snapshot_file_name(newer.id)]);
        // A fetched snapshot replaces the whole log.
        let fetched = Snapshot {
            id: OffsetAndEpoch {
                offset: 20,
                epoch: 3,
            },
            data: Bytes::from_static(b"twenty"),
        };
        store
            .persist(&Ready {
                number: 4,
                snapshot: Some(fetched.clone()),
                reset_log: Some(fetched.id),
                entries: vec![entry(20, 3)],
                ..Ready::default()
            })
            .await
            .unwrap();
        drop(store);
        disk.crash(Some(16), 10);
        let (_, _, snapshot, entries) = RaftStore::open(&env(&disk), data).await.unwrap();
        assert_eq!(snapshot, Some(fetched));
        assert_eq!(entries, vec![entry(20, 3)]);
    }

    #[tokio::test]
    async fn a_damaged_newest_snapshot_falls_back_to_an_older_one_or_says_what_is_lost() {
        let disk = MemDisk::new();
        let data = Path::new("/data");
        let (store, _, _, _) = RaftStore::open(&env(&disk), data).await.unwrap();
        store
            .persist(&Ready {
                number: 1,
                entries: (0..4).map(|o| entry(o, 1)).collect(),
                ..Ready::default()
            })
            .await
            .unwrap();
        let snap = |offset: i64| Snapshot {
            id: OffsetAndEpoch { offset, epoch: 1 },
            data: Bytes::from(format!("at {offset}")),
        };
        // Two snapshots on disk (the older one written back by hand), the newest damaged.
        store.write_snapshot(&snap(3)).await.unwrap();
        let older = store.dir.join(snapshot_file_name(snap(2).id));
        let bytes = codec::encode(
            SNAPSHOT_VERSION,
            &StoredSnapshot {
                end_offset: 2,
                epoch: 1,
                data: b"at 2".to_vec(),
            },
        );
        write_atomic(&disk, &older, &bytes).await.unwrap();
        let newest = store.dir.join(snapshot_file_name(snap(3).id));
        let f = crate::env::Disk::open(&disk, &newest, FileMode::ReadWrite).unwrap();
        f.write_at(&[0xff; 4], 12).unwrap();
        drop(store);
        let (store, _, snapshot, entries) = RaftStore::open(&env(&disk), data).await.unwrap();
        assert_eq!(snapshot, Some(snap(2)));
        assert_eq!(entries.len(), 4);
        // The log cut past the only readable snapshot: the node refuses, naming the directory.
        store.log().delete_records_below(3).await.unwrap();
        drop(store);
        let err = RaftStore::open(&env(&disk), data).await.err().unwrap();
        assert!(
            matches!(
                err,
                StoreError::SnapshotGap {
                    log_start: 3,
                    snapshot_end: 2,
                    ..
                }
            ),
            "{err}"
        );
    }
}
