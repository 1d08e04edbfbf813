//! The metadata log: a partition log of [`MetadataRecord`]s, replayed into a
//! [`ClusterState`] at start, appended (and synced) for every change.

use super::records::{MetadataRecord, RECORD_VERSION};
use super::state::ClusterState;
use crate::codec;
use crate::env::Env;
use crate::log::batch::{self, NewRecord, ProducerFields};
use crate::log::{AppendError, LogConfig, LogError, PartitionLog, ReadError};
use std::path::Path;
use std::sync::{Arc, RwLock};

/// The metadata log's topic name, as in Kafka's KRaft mode: its directory is
/// `<data dir>/__cluster_metadata-0`. User topics cannot take this name.
pub const METADATA_TOPIC: &str = "__cluster_metadata";

/// Largest metadata record frame accepted on replay.
const RECORD_BYTES_MAX: usize = 8 << 20;

/// Why the metadata log failed.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("metadata log: {0}")]
    Log(#[from] LogError),
    #[error("metadata log append: {0}")]
    Append(#[from] AppendError),
    #[error("metadata log read: {0}")]
    Read(#[from] ReadError),
    #[error("metadata log record at offset {offset} is damaged: {reason}")]
    Damaged { offset: i64, reason: String },
    #[error(
        "metadata log record at offset {offset} has version {version}, newer than this runnel knows ({RECORD_VERSION}); upgrade runnel"
    )]
    TooNew { offset: i64, version: u16 },
}

/// The metadata log and the state it replays to.
pub struct MetadataLog {
    /// The underlying partition log.
    log: Arc<PartitionLog>,
    /// For record timestamps and ids.
    env: Env,
    /// The current state; readers take a cheap snapshot.
    state: RwLock<Arc<ClusterState>>,
    /// Serialises changes: check, append, sync, apply.
    write: tokio::sync::Mutex<()>,
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 64 << 20,
        retention_ms: -1,
        retention_bytes: -1,
        max_message_bytes: 16 << 20,
        write_caching: false,
        ..LogConfig::default()
    }
}

impl MetadataLog {
    /// Opens (recovering and replaying) the metadata log in `data_dir`; a new log gets a
    /// `ClusterCreated` record with a fresh cluster id.
    pub async fn open(
        env: &Env,
        data_dir: &Path,
        node_id: i32,
    ) -> Result<Arc<MetadataLog>, MetadataError> {
        let dir = data_dir.join(format!("{METADATA_TOPIC}-0"));
        let log = PartitionLog::open(env, &dir, config()).await?;
        let state = replay(&log)?;
        let fresh = state.cluster_id.is_none();
        let ml = Arc::new(MetadataLog {
            log,
            env: env.clone(),
            state: RwLock::new(Arc::new(state)),
            write: tokio::sync::Mutex::new(()),
        });
        if fresh {
            let cluster_id = new_cluster_id(env);
            tracing::info!(%cluster_id, "formatting a new cluster");
            ml.append(vec![MetadataRecord::ClusterCreated {
                cluster_id,
                node_id,
            }])
            .await?;
        }
        Ok(ml)
    }

    /// A snapshot of the current state.
    pub fn state(&self) -> Arc<ClusterState> {
        self.state.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Appends `records` as one batch (all or nothing, even across a crash), waits until it is
    /// synced, then applies it. Returns the new state.
    pub async fn append(
        &self,
        records: Vec<MetadataRecord>,
    ) -> Result<Arc<ClusterState>, MetadataError> {
        self.update(|_| Ok::<_, MetadataError>((records, ())))
            .await
            .map(|(s, ())| s)
    }

    /// Decides what to append from the current state, with no other change in between:
    /// `decide` returns the records (possibly none) and a value for the caller, or an error
    /// that appends nothing.
    pub async fn update<R, E>(
        &self,
        decide: impl FnOnce(&ClusterState) -> Result<(Vec<MetadataRecord>, R), E>,
    ) -> Result<(Arc<ClusterState>, R), E>
    where
        E: From<MetadataError>,
    {
        let _turn = self.write.lock().await;
        let current = self.state();
        let (records, out) = decide(&current)?;
        if records.is_empty() {
            return Ok((current, out));
        }
        let now = self.env.clock.now_ms();
        let new: Vec<NewRecord> = records
            .iter()
            .map(|r| NewRecord {
                timestamp: now,
                key: None,
                value: Some(codec::encode(RECORD_VERSION, r)),
                headers: vec![],
            })
            .collect();
        let mut bytes = batch::encode_batch(&new, ProducerFields::NONE);
        let info = self
            .log
            .append(&mut bytes, 0)
            .map_err(MetadataError::from)?;
        self.log
            .sync_to(info.last_offset + 1)
            .await
            .map_err(MetadataError::from)?;
        let mut next = (*current).clone();
        for r in &records {
            next.apply(r);
        }
        let next = Arc::new(next);
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = next.clone();
        Ok((next, out))
    }

    /// A fresh random topic id (never nil).
    pub fn new_topic_id(&self) -> uuid::Uuid {
        loop {
            let mut b = [0u8; 16];
            b[..8].copy_from_slice(&self.env.rng.next_u64().to_le_bytes());
            b[8..].copy_from_slice(&self.env.rng.next_u64().to_le_bytes());
            let id = uuid::Builder::from_random_bytes(b).into_uuid();
            if !id.is_nil() {
                return id;
            }
        }
    }

    /// Syncs and closes the log.
    pub async fn close(&self) -> Result<(), MetadataError> {
        Ok(self.log.close().await?)
    }
}

/// Kafka's cluster id format: a random UUID in unpadded base64url.
fn new_cluster_id(env: &Env) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bits = (u128::from(env.rng.next_u64()) << 64) | u128::from(env.rng.next_u64());
    let mut out = String::with_capacity(22);
    for _ in 0..22 {
        out.push(ALPHABET[(bits & 63) as usize] as char);
        bits >>= 6;
    }
    out
}

/// Replays every record of the log into a state.
fn replay(log: &PartitionLog) -> Result<ClusterState, MetadataError> {
    let mut state = ClusterState::default();
    let end = log.log_end_offset();
    let mut offset = log.log_start_offset();
    while offset < end {
        let read = log.read(offset, 1 << 20, end, true)?;
        let mut p = 0;
        while p < read.records.len() {
            let damaged = |reason: String| MetadataError::Damaged { offset, reason };
            let h =
                batch::check_integrity(&read.records[p..]).map_err(|e| damaged(e.to_string()))?;
            let bytes = &read.records[p..p + h.total_len()];
            let body = batch::records_body(&h, bytes).map_err(|e| damaged(e.to_string()))?;
            for rec in batch::RecordIter::new(&h, &body) {
                let rec = rec.map_err(|e| damaged(e.to_string()))?;
                let offset = h.base_offset + i64::from(rec.offset_delta);
                let value = rec.value.ok_or_else(|| MetadataError::Damaged {
                    offset,
                    reason: "record without a value".into(),
                })?;
                let frame = codec::read_frame(value, RECORD_BYTES_MAX).map_err(|e| {
                    MetadataError::Damaged {
                        offset,
                        reason: e.to_string(),
                    }
                })?;
                if frame.version > RECORD_VERSION {
                    return Err(MetadataError::TooNew {
                        offset,
                        version: frame.version,
                    });
                }
                let record: MetadataRecord =
                    codec::decode_payload(&frame).map_err(|e| MetadataError::Damaged {
                        offset,
                        reason: e.to_string(),
                    })?;
                state.apply(&record);
            }
            offset = h.next_offset();
            p += h.total_len();
        }
        if read.records.is_empty() {
            break;
        }
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::{MemDisk, SharedRng};
    use std::collections::BTreeMap;

    fn env(disk: &MemDisk) -> Env {
        Env {
            disk: Arc::new(disk.clone()),
            net: Arc::new(crate::env::RealNetwork),
            clock: Arc::new(crate::env::clock::ManualClock::new(1)),
            rng: SharedRng::seeded(3),
            probe: Arc::new(crate::env::NoProbe),
        }
    }

    #[tokio::test]
    async fn changes_survive_a_power_loss_and_replay() {
        let disk = MemDisk::new();
        let ml = MetadataLog::open(&env(&disk), Path::new("/data"), 0)
            .await
            .unwrap();
        let cluster = ml.state().cluster_id.clone().unwrap();
        assert_eq!(cluster.len(), 22);
        let id = ml.new_topic_id();
        ml.append(vec![MetadataRecord::TopicCreated {
            name: "t".into(),
            topic_id: *id.as_bytes(),
            partitions: 3,
            replication_factor: 1,
            configs: BTreeMap::from([("retention.ms".into(), "1000".into())]),
        }])
        .await
        .unwrap();
        drop(ml);
        disk.crash(Some(16), 9);
        let ml = MetadataLog::open(&env(&disk), Path::new("/data"), 0)
            .await
            .unwrap();
        let s = ml.state();
        assert_eq!(s.cluster_id.as_deref(), Some(cluster.as_str()));
        assert_eq!(s.topics["t"].partitions, 3);
        assert_eq!(s.topics["t"].id, id);
        assert_eq!(s.topics["t"].configs["retention.ms"], "1000");
    }

    #[tokio::test]
    async fn update_decides_from_the_current_state() {
        let disk = MemDisk::new();
        let ml = MetadataLog::open(&env(&disk), Path::new("/data"), 0)
            .await
            .unwrap();
        let r: Result<_, MetadataError> = ml
            .update(|s| {
                Ok((
                    vec![MetadataRecord::ProducerIdsAllocated {
                        next: s.next_producer_id + 10,
                    }],
                    5,
                ))
            })
            .await;
        let (s, five) = r.unwrap();
        assert_eq!((s.next_producer_id, five), (10, 5));
    }
}
