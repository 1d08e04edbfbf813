//! The quorum's durable state on one node, through the seam: the `quorum-state` file (epoch,
//! vote, leader), written atomically and fsynced, and the log `__cluster_metadata-0`, a
//! partition log like any other whose batches are the core's entries (one entry per batch, at
//! the offset and leader epoch the core gave it). [`RaftStore::persist`] carries out the
//! durable half of a [`Ready`] in the order the core requires.

use super::log::Entry;
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

/// The metadata log's settings: large segments, kept forever (snapshots, which would let it
/// be cleaned, are not built yet), synced when the core asks.
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
    /// Opens (recovering) `<data_dir>/__cluster_metadata-0` and reads back the quorum-state and
    /// every entry, to start the core from.
    pub async fn open(
        env: &Env,
        data_dir: &Path,
    ) -> Result<(RaftStore, QuorumState, Vec<Entry>), StoreError> {
        let dir = data_dir.join(format!("{METADATA_TOPIC}-{METADATA_PARTITION}"));
        let log = PartitionLog::open(env, &dir, log_config()).await?;
        let store = RaftStore {
            env: env.clone(),
            dir,
            log: std::sync::Mutex::new(log),
        };
        let quorum = store.read_quorum_state()?;
        let entries = store.read_entries()?;
        Ok((store, quorum, entries))
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
        let log = self.log();
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
        let (store, q, entries) = RaftStore::open(&env(&disk), data).await.unwrap();
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
        let (_store, q, entries) = RaftStore::open(&env(&disk), data).await.unwrap();
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
        let (store, _, _) = RaftStore::open(&env(&disk), data).await.unwrap();
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
}
