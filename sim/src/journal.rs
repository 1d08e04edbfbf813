//! The journal: what the hosts tell the driver while a run goes on. Clients append to the
//! history, brokers' probes and simulated disks append observations, and every disk operation
//! and declaration is folded into the trace hash. One sequence number orders history entries
//! and observations together, so the state checker sees them in the order they happened even
//! when several land within one simulation step.

use crate::history::{Entry, Event, History, Micros, Tp};
use runnel::cluster::ClusterState;
use runnel::env::probe::{BatchId, PartitionState, ProducerSummary};
use runnel::raft::{OffsetAndEpoch, QuorumState};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

/// What a broker declared (through runnel's probe) or did to its disk that the checker tracks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// A log was recovered (`dir` is the partition directory's name, e.g. `t0-1`).
    Recovered {
        dir: String,
        state: PartitionState,
        producers: Vec<ProducerSummary>,
    },
    /// A log's offsets changed.
    State { dir: String, state: PartitionState },
    /// A log was deleted.
    Deleted { dir: String },
    /// Batches were appended to a log (before the state that shows its new end).
    Appended { dir: String, batches: Vec<BatchId> },
    /// The leader of the partition in `dir` asks to add `added` to its ISR.
    IsrExpanding {
        dir: String,
        leader_epoch: i32,
        added: Vec<i32>,
    },
    /// The broker leads the partition in `dir`, with followers, in `leader_epoch`, starting at
    /// `epoch_start`.
    Leading {
        dir: String,
        leader_epoch: i32,
        epoch_start: i64,
    },
    /// A log's tail was cut on request: its log end (and durable end) go back to `offset`.
    Truncated { dir: String, offset: i64 },
    /// The partition's leader answers an acks=all produce of `batches` as written.
    AcksAllAnswered { dir: String, batches: Vec<BatchId> },
    /// A file was declared durable with these contents.
    FileDurable { path: PathBuf, crc: u32, len: usize },
    /// A file was renamed over `to`, which now holds these contents (not yet durable).
    Renamed { to: PathBuf, crc: u32, len: usize },
    /// A file was removed.
    Removed { path: PathBuf },
    /// The group coordinator appended offset commits (group, partition, offset) to the log in
    /// `dir`, in a batch ending before `end`.
    OffsetsAppended {
        dir: String,
        end: i64,
        commits: Vec<(String, Tp, i64)>,
    },
    /// A group's generation got its assignment: each member with its partitions.
    GroupAssigned {
        group: String,
        generation: i32,
        members: Vec<(String, Vec<Tp>)>,
    },
    /// A group was deleted: a group created under its id later is a new one, whose
    /// generations count again from 1.
    GroupDeleted { group: String },
    /// The metadata quorum opened: the quorum-state it read and the log it recovered.
    QuorumOpened {
        quorum: QuorumState,
        snapshot: Option<OffsetAndEpoch>,
        entries: Vec<EntryId>,
    },
    /// The metadata quorum made a Ready durable: the quorum-state it fsynced, the log cut back
    /// and appended, then its role, epoch and high watermark.
    QuorumReady {
        persisted: Option<QuorumState>,
        snapshot: Option<OffsetAndEpoch>,
        log_start: Option<i64>,
        reset_log: Option<OffsetAndEpoch>,
        truncated_to: Option<i64>,
        appended: Vec<EntryId>,
        leader: bool,
        epoch: i32,
        high_watermark: i64,
    },
    /// A node applied the committed metadata entry at `offset`; its state after it.
    MetadataApplied { offset: i64, state: AppliedState },
    /// A node's metadata state was restored from a snapshot ending at `offset`.
    MetadataRestored { offset: i64, state: AppliedState },
}

/// A quorum log entry as the checker knows it: offset, epoch and a hash of its contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryId {
    pub offset: i64,
    pub epoch: i32,
    pub hash: u64,
}

impl EntryId {
    pub fn of(e: &runnel::raft::Entry) -> EntryId {
        let mut h = fnv(FNV_OFFSET, format!("{:?}", e.kind).as_bytes());
        h = fnv(h, &e.payload);
        EntryId {
            offset: e.offset,
            epoch: e.epoch,
            hash: h,
        }
    }
}

/// A node's applied metadata state. Its `Debug` (what the trace folds) names only the
/// partitions' leaders and epochs, which the offset and the run determine anyway.
#[derive(Clone, PartialEq, Eq)]
pub struct AppliedState(pub Arc<ClusterState>);

impl std::fmt::Debug for AppliedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (t, n, p) in self.0.partitions() {
            write!(f, "{}-{n}:{}@{} ", t.name, p.leader, p.leader_epoch)?;
        }
        Ok(())
    }
}

/// An observation with where and when it happened.
#[derive(Debug, Clone)]
pub struct Observation {
    /// Position in the one order of history entries and observations.
    pub seq: u64,
    pub at: Micros,
    /// The broker's index.
    pub host: usize,
    /// Which start of the broker process (0 for the first).
    pub incarnation: u32,
    pub what: Observed,
}

/// FNV-1a, the mixer of the trace and of the history's hash.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Folds `bytes` into an FNV-1a hash.
pub fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// An FNV-1a hash that text is written into.
struct Fold(u64);

impl std::fmt::Write for Fold {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0 = fnv(self.0, s.as_bytes());
        Ok(())
    }
}

/// Everything hosts report.
pub struct Journal {
    pub history: History,
    /// Observations the driver has not taken yet.
    pub observations: Vec<Observation>,
    /// The next sequence number.
    seq: u64,
    /// Broker-internal transitions folded together (disk operations with their outcomes,
    /// declarations), in the order they happened.
    trace: u64,
    /// Producers that finished (all their sends answered).
    pub producers_done: usize,
    /// Consumers that read everything to the end.
    pub consumers_done: usize,
    /// Set once the topics exist.
    pub topics_ready: bool,
    /// How far each group has read each partition (the furthest position of any member).
    pub group_progress: std::collections::BTreeMap<(String, crate::history::Tp), i64>,
    /// The log ends each group must read to after the heal.
    pub group_targets:
        std::collections::BTreeMap<String, std::collections::BTreeMap<crate::history::Tp, i64>>,
    /// Group members that finished.
    pub group_members_done: usize,
}

impl Default for Journal {
    fn default() -> Self {
        Journal {
            history: History::default(),
            observations: Vec::new(),
            seq: 0,
            trace: FNV_OFFSET,
            producers_done: 0,
            consumers_done: 0,
            topics_ready: false,
            group_progress: Default::default(),
            group_targets: Default::default(),
            group_members_done: 0,
        }
    }
}

impl Journal {
    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Appends a history event.
    pub fn record(&mut self, at: Micros, event: Event) {
        let seq = self.next_seq();
        self.history.entries.push(Entry { at, seq, event });
    }

    /// Appends an observation, folding it into the trace.
    pub fn observe(&mut self, at: Micros, host: usize, incarnation: u32, what: Observed) {
        let seq = self.next_seq();
        // Folded as it is formatted (the same bytes as formatting it into a string first).
        let mut fold = Fold(self.trace);
        let _ = write!(fold, "{host}/{incarnation} {what:?}");
        self.trace = fold.0;
        // A recovery is ground truth the history checker uses: what a power loss erased.
        if let Observed::Recovered { dir, state, .. } = &what {
            if let tp @ Tp { partition: 0.., .. } = crate::checks::state::tp_of(dir) {
                self.history.entries.push(Entry {
                    at,
                    seq,
                    event: Event::Recovered {
                        host,
                        tp,
                        log_end: state.log_end,
                    },
                });
            }
        }
        self.observations.push(Observation {
            seq,
            at,
            host,
            incarnation,
            what,
        });
    }

    /// Folds one disk operation into the trace.
    pub fn mix(&mut self, words: &[u64]) {
        for w in words {
            self.trace = fnv(self.trace, &w.to_le_bytes());
        }
    }

    /// The trace of broker-internal transitions so far.
    pub fn trace(&self) -> u64 {
        self.trace
    }
}

/// The journal, shared by every host and the driver.
#[derive(Clone, Default)]
pub struct JournalRef(Arc<Mutex<Journal>>);

impl JournalRef {
    pub fn lock(&self) -> MutexGuard<'_, Journal> {
        // A panic elsewhere already failed the run; the journal stays readable for its report.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a history event at the current simulated time (from inside a host).
    pub fn record(&self, event: Event) {
        self.lock().record(now(), event);
    }
}

/// The simulated time, from inside a host or the driver.
pub fn now() -> Micros {
    turmoil::sim_elapsed().map_or(0, |d| d.as_micros() as Micros)
}
