//! The metadata log: [`MetadataRecord`]s replicated by the controller quorum's Raft log
//! (`__cluster_metadata-0`, as in Kafka's KRaft mode), applied to a [`ClusterState`] on every
//! node once committed, never before.
//!
//! A change is proposed by the active controller (the quorum's leader, once it serves its
//! epoch), from the state it has applied, which then is the whole committed state; it is
//! applied here when the quorum commits it, on the leader and on every follower and observer
//! alike. Each entry of the quorum's log is one batch of records, applied whole.

use super::records::{MetadataRecord, RECORD_VERSION};
use super::state::ClusterState;
use crate::codec;
use crate::env::Env;
use crate::raft::driver::{Apply, ProposalError, Quorum, QuorumConfig, QuorumError, Status};
use crate::raft::{Entry, EntryKind, NodeId};
use bytes::Bytes;
use std::path::Path;
use std::sync::{Arc, RwLock};
use tokio::sync::watch;

/// The metadata log's topic name, as in Kafka's KRaft mode: its directory is
/// `<data dir>/__cluster_metadata-0`. User topics cannot take this name.
pub const METADATA_TOPIC: &str = "__cluster_metadata";

/// Largest metadata entry frame accepted.
const ENTRY_BYTES_MAX: usize = 16 << 20;

/// How long a change waits to commit before its caller is told the outcome is unknown.
const COMMIT_TIMEOUT_MS: u64 = 30_000;

/// Why the metadata log failed.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("the controller quorum: {0}")]
    Quorum(#[from] QuorumError),
    #[error("{0}")]
    Proposal(#[from] ProposalError),
    #[error("the metadata log's entry at offset {offset} cannot be applied: {reason}")]
    Damaged { offset: i64, reason: String },
    #[error(
        "this node's metadata belongs to cluster {found}, but cluster.id is {configured}: point \
         --data-dir at this cluster's data, or remove cluster.id to join {found}"
    )]
    OtherCluster { found: String, configured: String },
}

impl MetadataError {
    /// Whether another node leads the quorum (the change must go to the active controller).
    pub fn is_not_controller(&self) -> bool {
        matches!(
            self,
            MetadataError::Proposal(ProposalError::NotLeader { .. })
        )
    }
}

/// The applied state, shared with the quorum's applier.
struct Applied {
    state: RwLock<Arc<ClusterState>>,
    /// Bumped after every applied entry, for followers of the state.
    version: watch::Sender<u64>,
    /// The first entry that could not be applied: the state stops there.
    fault: RwLock<Option<MetadataError>>,
    /// Told the state after every applied entry (the simulator checks it).
    probe: Arc<dyn crate::env::Probe>,
    /// The planted `stale-snapshot`: snapshots take the state from before the last entries
    /// applied.
    stale_snapshot: bool,
    /// The state before the last entries applied (for `stale-snapshot` only).
    previous: RwLock<Arc<ClusterState>>,
}

impl Apply for Applied {
    fn apply(&self, entries: &[Entry]) {
        if self
            .fault
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
        {
            return;
        }
        let mut next = (**self.state.read().unwrap_or_else(|e| e.into_inner())).clone();
        let mut applied = 0u64;
        for e in entries {
            if e.kind != EntryKind::Data {
                continue;
            }
            match decode_entry(e) {
                Ok(records) => {
                    for r in &records {
                        next.apply_at(e.offset, r);
                    }
                    applied += 1;
                    if self.probe.observing() {
                        self.probe.event(crate::env::ProbeEvent::MetadataApplied {
                            offset: e.offset,
                            state: &next,
                        });
                    }
                }
                Err(err) => {
                    tracing::error!(error = %err, "the metadata log cannot be applied past this entry; this node's metadata stops here");
                    *self.fault.write().unwrap_or_else(|e| e.into_inner()) = Some(err);
                    break;
                }
            }
        }
        if applied > 0 {
            let old = std::mem::replace(
                &mut *self.state.write().unwrap_or_else(|e| e.into_inner()),
                Arc::new(next),
            );
            if self.stale_snapshot {
                *self.previous.write().unwrap_or_else(|e| e.into_inner()) = old;
            }
            self.version.send_modify(|v| *v += applied);
        }
    }

    fn restore(&self, snapshot: &crate::raft::Snapshot) {
        let state = match ClusterState::from_snapshot(&snapshot.data) {
            Ok(s) => s,
            Err(reason) => {
                let err = MetadataError::Damaged {
                    offset: snapshot.id.offset,
                    reason: format!("its snapshot cannot be read: {reason}"),
                };
                tracing::error!(error = %err, "this node's metadata stops here");
                *self.fault.write().unwrap_or_else(|e| e.into_inner()) = Some(err);
                return;
            }
        };
        tracing::info!(
            offset = snapshot.id.offset,
            epoch = snapshot.id.epoch,
            "the metadata state is restored from a snapshot"
        );
        if self.probe.observing() {
            self.probe.event(crate::env::ProbeEvent::MetadataRestored {
                offset: snapshot.id.offset,
                state: &state,
            });
        }
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(state);
        self.version.send_modify(|v| *v += 1);
    }

    fn snapshot(&self) -> Bytes {
        let of = match self.stale_snapshot {
            true => &self.previous,
            false => &self.state,
        };
        let state = of.read().unwrap_or_else(|e| e.into_inner()).clone();
        Bytes::from(state.to_snapshot())
    }
}

/// The records of one committed entry.
fn decode_entry(e: &Entry) -> Result<Vec<MetadataRecord>, MetadataError> {
    let damaged = |reason: String| MetadataError::Damaged {
        offset: e.offset,
        reason,
    };
    let frame =
        codec::read_frame(&e.payload, ENTRY_BYTES_MAX).map_err(|x| damaged(x.to_string()))?;
    if frame.version > RECORD_VERSION {
        return Err(damaged(format!(
            "its records have version {}, newer than this runnel knows ({RECORD_VERSION}); upgrade runnel",
            frame.version
        )));
    }
    codec::decode_payload(&frame).map_err(|x| damaged(x.to_string()))
}

/// The metadata log and the state it applies to.
pub struct MetadataLog {
    /// The quorum that replicates it.
    quorum: Arc<Quorum>,
    /// For record ids.
    env: Env,
    /// What has been applied.
    applied: Arc<Applied>,
    /// Serialises changes proposed here: decide, propose, wait for the commit.
    write: tokio::sync::Mutex<()>,
    /// `cluster.id`, if the configuration pins it.
    cluster_id: Option<String>,
}

impl MetadataLog {
    /// Opens the quorum's storage in `data_dir`. Nothing is applied until [`MetadataLog::start`]
    /// and the quorum commits.
    pub async fn open(
        env: &Env,
        data_dir: &Path,
        quorum: QuorumConfig,
        cluster_id: Option<String>,
    ) -> Result<Arc<MetadataLog>, MetadataError> {
        let applied = Arc::new(Applied {
            state: RwLock::new(Arc::new(ClusterState::default())),
            version: watch::Sender::new(0),
            fault: RwLock::new(None),
            probe: env.probe.clone(),
            stale_snapshot: env.disk.planted_bugs().stale_snapshot,
            previous: RwLock::new(Arc::new(ClusterState::default())),
        });
        let quorum = Quorum::open(env, data_dir, quorum, applied.clone()).await?;
        Ok(Arc::new(MetadataLog {
            quorum,
            env: env.clone(),
            applied,
            write: tokio::sync::Mutex::new(()),
            cluster_id,
        }))
    }

    /// Starts the quorum, and the duties of the active controller (the cluster id of a new
    /// cluster). Returns the tasks to stop at shutdown.
    pub fn start(self: &Arc<Self>) -> [tokio::task::JoinHandle<()>; 2] {
        let quorum = self.quorum.start();
        let duties = tokio::spawn(self.clone().run_duties());
        [quorum, duties]
    }

    /// The active controller's standing duties: a new cluster gets its id.
    async fn run_duties(self: Arc<Self>) {
        let mut status = self.quorum.subscribe();
        loop {
            let serving = status.borrow_and_update().serving;
            if serving && self.state().cluster_id.is_none() {
                let cluster_id = self
                    .cluster_id
                    .clone()
                    .unwrap_or_else(|| new_cluster_id(&self.env));
                let node_id = self.quorum.node_id();
                let r = self
                    .update(|s| {
                        let records = if s.cluster_id.is_none() {
                            vec![MetadataRecord::ClusterCreated {
                                cluster_id: cluster_id.clone(),
                                node_id,
                            }]
                        } else {
                            vec![]
                        };
                        Ok::<_, MetadataError>((records, ()))
                    })
                    .await;
                match r {
                    Ok(_) => tracing::info!(%cluster_id, "formatted a new cluster"),
                    Err(e) => tracing::debug!(error = %e, "could not record the cluster id yet"),
                }
            }
            if let Some(id) = &self.state().cluster_id {
                self.quorum.set_cluster_id(id);
            }
            if status.changed().await.is_err() {
                return;
            }
        }
    }

    /// Waits until this node has applied everything its quorum log held when it opened, and
    /// the cluster has an id: its state is then no older than the one it had before.
    pub async fn wait_caught_up(&self) -> Result<(), MetadataError> {
        let target = self.quorum.status().log_end;
        let mut status = self.quorum.subscribe();
        let mut version = self.applied.version.subscribe();
        loop {
            if let Some(e) = self.fault() {
                return Err(e);
            }
            let s: Status = *status.borrow_and_update();
            if s.stopped {
                return Err(ProposalError::Stopped.into());
            }
            if s.applied >= target
                && let Some(found) = self.state().cluster_id.clone()
            {
                return match &self.cluster_id {
                    Some(configured) if *configured != found => Err(MetadataError::OtherCluster {
                        found,
                        configured: configured.clone(),
                    }),
                    _ => Ok(()),
                };
            }
            tokio::select! {
                r = status.changed() => if r.is_err() { return Err(ProposalError::Stopped.into()) },
                _ = version.changed() => {}
            }
        }
    }

    /// Why the state stopped applying, if it did.
    fn fault(&self) -> Option<MetadataError> {
        self.applied
            .fault
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|e| MetadataError::Damaged {
                offset: match e {
                    MetadataError::Damaged { offset, .. } => *offset,
                    _ => -1,
                },
                reason: e.to_string(),
            })
    }

    /// The quorum.
    pub fn quorum(&self) -> &Arc<Quorum> {
        &self.quorum
    }

    /// Follows applied changes: the value is bumped after each.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.applied.version.subscribe()
    }

    /// The active controller as this node knows it, if any.
    pub fn controller_id(&self) -> Option<NodeId> {
        self.quorum.status().leader_id
    }

    /// A snapshot of the applied state.
    pub fn state(&self) -> Arc<ClusterState> {
        self.applied
            .state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Proposes `records` as one entry (all or nothing, even across a crash), waits until the
    /// quorum commits it and it is applied here. Returns the new state.
    pub async fn append(
        &self,
        records: Vec<MetadataRecord>,
    ) -> Result<Arc<ClusterState>, MetadataError> {
        self.update(|_| Ok::<_, MetadataError>((records, ())))
            .await
            .map(|(s, ())| s)
    }

    /// Decides what to propose from the current state, with no other change in between:
    /// `decide` returns the records (possibly none) and a value for the caller, or an error
    /// that proposes nothing. Only the active controller can change the metadata; elsewhere
    /// this fails with [`ProposalError::NotLeader`] (see [`MetadataError::is_not_controller`]).
    pub async fn update<R, E>(
        &self,
        decide: impl FnOnce(&ClusterState) -> Result<(Vec<MetadataRecord>, R), E>,
    ) -> Result<(Arc<ClusterState>, R), E>
    where
        E: From<MetadataError>,
    {
        let _turn = self.write.lock().await;
        if let Some(e) = self.fault() {
            return Err(e.into());
        }
        let status = self.quorum.status();
        if !status.serving {
            return Err(MetadataError::from(ProposalError::NotLeader {
                leader_id: status.leader_id,
                epoch: status.epoch,
            })
            .into());
        }
        let current = self.state();
        let (records, out) = decide(&current)?;
        if records.is_empty() {
            return Ok((current, out));
        }
        let payload = Bytes::from(codec::encode(RECORD_VERSION, &records));
        self.quorum
            .propose_and_wait(payload, COMMIT_TIMEOUT_MS)
            .await
            .map_err(MetadataError::from)?;
        Ok((self.state(), out))
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

    /// Stops the quorum, resigning first if this node leads it (so the others elect a
    /// successor at once).
    pub async fn close(&self) {
        let leads = self.quorum.status().leader_id == Some(self.quorum.node_id());
        if leads && self.quorum.config().voter_addresses.len() > 1 {
            self.quorum.resign_and_stop(100).await;
        } else {
            self.quorum.stop();
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::{MemDisk, SharedRng};
    use crate::raft::driver::QuorumConfig;
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

    async fn open(disk: &MemDisk) -> Arc<MetadataLog> {
        let ml = MetadataLog::open(
            &env(disk),
            Path::new("/data"),
            QuorumConfig::lone_voter(0),
            None,
        )
        .await
        .unwrap();
        ml.start();
        ml.wait_caught_up().await.unwrap();
        ml
    }

    #[tokio::test]
    async fn changes_survive_a_power_loss_and_replay() {
        let disk = MemDisk::new();
        let ml = open(&disk).await;
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
        ml.close().await;
        drop(ml);
        disk.crash(Some(16), 9);
        let ml = open(&disk).await;
        let s = ml.state();
        assert_eq!(s.cluster_id.as_deref(), Some(cluster.as_str()));
        assert_eq!(s.topics["t"].partitions, 3);
        assert_eq!(s.topics["t"].id, id);
        assert_eq!(s.topics["t"].configs["retention.ms"], "1000");
    }

    #[tokio::test]
    async fn a_pinned_cluster_id_refuses_another_clusters_data() {
        let disk = MemDisk::new();
        let ml = open(&disk).await;
        let found = ml.state().cluster_id.clone().unwrap();
        ml.close().await;
        drop(ml);
        let pinned = "AAAAAAAAAAAAAAAAAAAAAA".to_string();
        let ml = MetadataLog::open(
            &env(&disk),
            Path::new("/data"),
            QuorumConfig::lone_voter(0),
            Some(pinned.clone()),
        )
        .await
        .unwrap();
        ml.start();
        let err = ml.wait_caught_up().await.unwrap_err();
        assert!(
            matches!(&err, MetadataError::OtherCluster { found: f, configured } if *f == found && *configured == pinned),
            "{err}"
        );
    }

    #[tokio::test]
    async fn update_decides_from_the_current_state() {
        let disk = MemDisk::new();
        let ml = open(&disk).await;
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

    #[tokio::test]
    async fn a_node_that_does_not_lead_refuses_changes() {
        let disk = MemDisk::new();
        // Voter 0 of three, with no peers running: it never leads.
        let mut config = QuorumConfig::lone_voter(0);
        config.raft.voters = [0, 1, 2].into_iter().collect();
        let ml = MetadataLog::open(&env(&disk), Path::new("/data"), config, None)
            .await
            .unwrap();
        ml.start();
        let err = ml
            .append(vec![MetadataRecord::ProducerIdsAllocated { next: 1 }])
            .await
            .unwrap_err();
        assert!(err.is_not_controller(), "{err}");
    }
}
