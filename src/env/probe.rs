//! The probe: what runnel's storage declares about itself, for an observer that knows the truth.
//!
//! A partition log publishes its offsets on every change, says what it recovered when it opens,
//! and names each file it has made durable. The real broker hands these to [`NoProbe`]; the
//! simulator records them and checks them, at every step, against what its simulated disk
//! really holds: a durable end offset that a power loss takes back, a recovered log that keeps
//! a torn batch, or a checkpoint damaged in the durable image is a bug, whatever the clients
//! happened to see.
//!
//! Calls come from inside the log's critical sections: an implementation must be quick and must
//! not call back into runnel.

use crate::cluster::ClusterState;
use crate::raft::{Entry, OffsetAndEpoch, QuorumState};
use std::path::Path;

/// A partition log's offsets, as it publishes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionState {
    /// First offset in the log.
    pub log_start: i64,
    /// Offset after the last batch.
    pub log_end: i64,
    /// Every batch below this offset is synced, with its directory entry: a power loss must
    /// not take it back.
    pub durable_end: i64,
    /// The high watermark replication set (a leader's from its in-sync replicas, a follower's
    /// from its leader's), or -1 for a log replication does not manage.
    pub high_watermark: i64,
}

/// A batch as a log holds it: what tells two copies of one offset apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchId {
    pub base_offset: i64,
    pub last_offset: i64,
    /// The CRC-32C of the batch header (from its attributes to its end).
    pub crc: u32,
    /// The `partitionLeaderEpoch` it was appended in.
    pub leader_epoch: i32,
}

/// What a log knows of one idempotent producer: its last batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ProducerSummary {
    pub producer_id: i64,
    pub epoch: i16,
    /// Sequence number of the last record of its last batch.
    pub last_seq: i32,
    /// Offset of the last record of its last batch.
    pub last_offset: i64,
}

/// One declaration.
#[derive(Debug, Clone, Copy)]
pub enum ProbeEvent<'a> {
    /// A log in `dir` was recovered and is about to serve: its offsets (`durable_end` is the
    /// log start until the first sync) and the idempotent producers it rebuilt.
    Recovered {
        dir: &'a Path,
        state: PartitionState,
        producers: &'a [ProducerSummary],
    },
    /// A log's offsets changed (an append, a sync, retention).
    State {
        dir: &'a Path,
        state: PartitionState,
    },
    /// A log was deleted with its directory; a log created there later starts afresh.
    Deleted { dir: &'a Path },
    /// Batches were appended to a log (by its leader or as a follower's copy), before the
    /// [`ProbeEvent::State`] that shows the new end. Only sent when [`Probe::observing`].
    Appended {
        dir: &'a Path,
        batches: &'a [BatchId],
    },
    /// The leader of the partition in `dir`, in `leader_epoch`, asks the controller to add
    /// `added` (broker ids) to its ISR, as their fetches showed them caught up.
    IsrExpanding {
        dir: &'a Path,
        leader_epoch: i32,
        added: &'a [i32],
    },
    /// This broker leads the partition in `dir`, with followers, in `leader_epoch`, which
    /// starts at `epoch_start` (its log end when it took the lead).
    Leading {
        dir: &'a Path,
        leader_epoch: i32,
        epoch_start: i64,
    },
    /// A log's tail was cut on request (a follower truncating to where it agrees with its
    /// leader): its log end, and its durable end if above, move back to exactly `offset`.
    /// Declared before the cut is synced; the call that made it returns once it is.
    Truncated { dir: &'a Path, offset: i64 },
    /// The leader of the partition in `dir` answers an acks=all produce of `batches` as
    /// written (its high watermark passed them): they must be on at least
    /// `min.insync.replicas` replicas' synced logs, these very batches, not others at their
    /// offsets.
    AcksAllAnswered {
        dir: &'a Path,
        batches: &'a [BatchId],
    },
    /// `path` now holds `bytes`, synced with its directory entry (a checkpoint, a snapshot):
    /// until it is replaced or removed, a power loss must leave it whole.
    FileDurable { path: &'a Path, bytes: &'a [u8] },
    /// The group coordinator appended offset commits to the log in `dir`, in a batch that
    /// ends before `end`: each is durable once the log's durable end reaches `end`.
    OffsetsAppended {
        dir: &'a Path,
        end: i64,
        commits: &'a [CommitWritten],
    },
    /// A group's generation got its assignment (the leader's, as members will receive it):
    /// each member with the partitions it was given.
    GroupAssigned {
        group: &'a str,
        generation: i32,
        members: &'a [(String, Vec<(String, i32)>)],
    },
    /// A group was deleted (DeleteGroups, or an empty group whose offsets all expired): its
    /// tombstone is durable and the coordinator forgot it. A group created under the same id
    /// later starts again at generation 0, as in Kafka; its member ids are new.
    GroupDeleted { group: &'a str },
    /// The metadata quorum opened its storage: the quorum-state it read (epoch, vote, leader)
    /// and the log it recovered, from its start (the end of `snapshot`, the newest snapshot it
    /// read back, or 0; entries below it may still be listed and count for nothing).
    QuorumOpened {
        quorum: QuorumState,
        snapshot: Option<OffsetAndEpoch>,
        entries: &'a [Entry],
    },
    /// The metadata quorum made one `Ready` durable and advanced its core, before sending any
    /// of its messages: the quorum-state it fsynced (if it wrote one), the log cut back to
    /// `truncated_to` and `appended` synced after it, and then, as the core stands, whether it
    /// leads, its epoch and its high watermark. `snapshot` is a snapshot it wrote durably (its
    /// own, or one fetched from the leader, which then replaced the whole log: `reset_log`);
    /// `log_start` is where its log now starts after a snapshot of its own.
    QuorumReady {
        persisted: Option<QuorumState>,
        snapshot: Option<OffsetAndEpoch>,
        log_start: Option<i64>,
        reset_log: Option<OffsetAndEpoch>,
        truncated_to: Option<i64>,
        appended: &'a [Entry],
        leader: bool,
        epoch: i32,
        high_watermark: i64,
    },
    /// A node applied the committed metadata entry at `offset` (one controller batch, applied
    /// whole): its metadata state after it.
    MetadataApplied {
        offset: i64,
        state: &'a ClusterState,
    },
    /// A node's metadata state was restored from a snapshot ending at `offset` (at start, or
    /// fetched from the quorum's leader): every entry below `offset` applied.
    MetadataRestored {
        offset: i64,
        state: &'a ClusterState,
    },
}

/// An offset commit as written to `__consumer_offsets`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitWritten {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// Receives declarations.
pub trait Probe: Send + Sync {
    fn event(&self, event: ProbeEvent<'_>);

    /// Whether anyone listens to the events that cost work to prepare (the group events):
    /// the real broker's probe does not.
    fn observing(&self) -> bool {
        false
    }
}

/// The real world's probe: nobody listens.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProbe;

impl Probe for NoProbe {
    fn event(&self, _event: ProbeEvent<'_>) {}
}

/// Bugs the simulator plants on purpose, to prove that its checker catches each broken promise.
/// All off in the real world: only the simulated disk reports any ([`super::Disk::planted_bugs`]),
/// because the disk is the one seam object that every storage path holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlantedBugs {
    /// acks=all is answered once the append is written, without waiting for its sync.
    pub early_ack: bool,
    /// An atomic file write (checkpoint) renames its temp file into place before syncing it.
    pub rename_before_sync: bool,
    /// Opening a log does not rebuild its idempotent producers' state.
    pub forget_producer_state: bool,
    /// Recovery keeps a batch whose CRC fails instead of cutting the log before it.
    pub keep_torn_batch: bool,
    /// The group coordinator answers an offset commit once it is appended, without syncing
    /// it.
    pub commit_before_sync: bool,
    /// The quorum-state file is written in place and not fsynced before the vote it records
    /// goes out (the cluster issue's `vote-not-synced`).
    pub vote_not_synced: bool,
    /// A quorum follower told its log diverges truncates to its high watermark instead of to
    /// where the leader's epoch ends (`raft-truncate-to-hw`).
    pub raft_truncate_to_hw: bool,
    /// The controller elects a partition leader from outside the ISR when an active replica
    /// there is eligible (`elect-outside-isr`).
    pub elect_outside_isr: bool,
    /// A metadata snapshot holds the state from before the last entries applied, under the
    /// id of the applied offset (`stale-snapshot`).
    pub stale_snapshot: bool,
    /// A partition leader's high watermark counts only its own end, not its followers'
    /// (`hw-ignores-followers`): acks=all is answered before any follower has the batch.
    pub hw_ignores_followers: bool,
    /// acks=all on a partition with followers is answered once the leader's own append (and
    /// its sync, under the durable default) is done, without waiting for the high watermark
    /// (`ack-before-isr`).
    pub ack_before_isr: bool,
    /// A partition follower truncates its log to its high watermark when it starts following
    /// a leader epoch and when told its log diverges, instead of by epoch
    /// (`replica-truncate-to-hw`, the bug KIP-101 fixed).
    pub replica_truncate_to_hw: bool,
    /// A partition leader lets a follower into the ISR once it reaches the high watermark,
    /// even below the start of the leader's epoch (`isr-join-without-epoch-start`).
    pub isr_join_without_epoch_start: bool,
    /// Partition followers fetch without syncing first under the durable default, so the
    /// leader's high watermark counts unsynced ends (`hw-from-unsynced-offset`).
    pub hw_from_unsynced_offset: bool,
    /// A partition leader counts a follower's fetch offset as synced, ignoring the synced end
    /// the fetch carries, so the high watermark passes data the follower is still syncing
    /// (`synced-end-ignored`).
    pub synced_end_ignored: bool,
    /// A partition's only replica counts its log end for the high watermark under the
    /// durable default, so acks=all is answered before the sync (`rf1-hw-from-log-end`).
    pub rf1_hw_from_log_end: bool,
    /// A broker's fetchers follow a partition the metadata moved away from it while it still
    /// leads it in the old epoch, and it resigns that leadership only some time after the
    /// change (`follow-before-resign`, seed 80275's bug), and its acks=all waiters watch the
    /// log's high watermark rather than their leadership's (as they did when the seed
    /// failed): waiters of the old epoch are answered by the high watermark the follower
    /// learns. runnel now guards against each half, so either alone would be prevented by
    /// the other guard.
    pub follow_before_resign: bool,
    /// The group coordinator serves (answers from memory, expires members, writes) whatever
    /// its controller session lease says, so a coordinator cut off from the controller goes
    /// on after its partitions moved (`lease-ignored`, seed 31631).
    pub lease_ignored: bool,
    /// A partition leader takes an AlterPartition with no answer (a timeout, a lost
    /// connection) as refused, though the controller may have committed it
    /// (`unknown-isr-answer-as-refused`, seed 31956).
    pub unknown_isr_answer_as_refused: bool,
}
