//! The checks: the history checker (Jepsen's anomalies in what clients saw), the state
//! checker (what brokers declared, checked at every step), and the durable-image checks (what
//! the simulated disks really held at each crash). None draws randomness.

pub mod groups;
pub mod history;
pub mod image;
pub mod quorum;
pub mod replication;
pub mod state;

pub use history::{Verdict, check};

use crate::history::{Micros, Tp};
use std::fmt;

/// Which check found an anomaly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Check {
    /// The history checker, after the run.
    History,
    /// The state checker, at the step it happened.
    State,
    /// A durable-image check, at a crash or at the recovery after it.
    DurableImage,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Check::History => "history",
            Check::State => "state checker",
            Check::DurableImage => "durable image",
        })
    }
}

/// The kinds of anomaly, with Jepsen's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// An acknowledged write that no consumer ever saw (and that was required to survive).
    LostWrite,
    /// One offset holding two different values, as seen by consumers.
    InconsistentOffsets,
    /// One value at two offsets.
    Duplicate,
    /// A value read at an offset other than the one its send was acknowledged with.
    UnexpectedOffset,
    /// A producer's later acknowledged send at a lower offset in the same partition.
    NonmonotonicSend,
    /// A consumer's successive reads skipped offsets without a seek.
    PollSkip,
    /// A consumer's successive reads went back without a seek.
    NonmonotonicPoll,
    /// A value whose send definitely failed is visible (Jepsen's G1a).
    AbortedRead,
    /// A record whose content does not match its checksum.
    Corrupted,
    /// A broker's published state moved where it may not (durable end or log start
    /// backwards, an end below another).
    StateRegression,
    /// Recovery kept a batch that is damaged in the image it recovered from.
    TornBatchKept,
    /// A file the broker declared durable is missing or damaged in the durable image.
    DamagedFile,
    /// A recovered log's idempotent producers do not match the batches it holds.
    ProducerStateLost,
    /// A write promised durable was acknowledged before the broker declared it durable.
    UnsyncedAck,
    /// One partition assigned to two members of a group in one generation.
    DoubleAssignment,
    /// An acknowledged offset commit missing from a later fetch of the group's offsets.
    LostCommit,
    /// A group's acknowledged commits of a partition went backwards.
    NonmonotonicCommit,
    /// A record in the final log that no member of a group ever received.
    Undelivered,
    /// An offset commit was acknowledged before the broker declared it durable.
    UnsyncedCommit,
    /// Two leaders of one quorum epoch, or of one partition's leader epoch.
    TwoLeaders,
    /// A node's durable epoch or vote, or its high watermark, went back.
    EpochRegression,
    /// A committed quorum entry differs between nodes, was cut by a node that held it, or
    /// committed without a majority holding it.
    CommittedLost,
    /// A node's applied metadata broke an invariant (a leader outside the ISR, a leader
    /// epoch going back...).
    MetadataInvariant,
    /// Two replicas hold different batches at an offset below a high watermark.
    ReplicasDiverge,
    /// A replica cut a committed batch (one below a published high watermark) from its log.
    CommittedTruncated,
    /// An acks=all write acknowledged while fewer than `min.insync.replicas` replicas held it.
    UnderReplicatedAck,
    /// A follower joined an ISR short of the leader's epoch start or of what is committed.
    EarlyIsrJoin,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::LostWrite => "lost-write",
            Kind::InconsistentOffsets => "inconsistent-offsets",
            Kind::Duplicate => "duplicate",
            Kind::UnexpectedOffset => "unexpected-offset",
            Kind::NonmonotonicSend => "nonmonotonic-send",
            Kind::PollSkip => "poll-skip",
            Kind::NonmonotonicPoll => "nonmonotonic-poll",
            Kind::AbortedRead => "aborted-read",
            Kind::Corrupted => "corrupted-record",
            Kind::StateRegression => "state-regression",
            Kind::TornBatchKept => "torn-batch-kept",
            Kind::DamagedFile => "damaged-file",
            Kind::ProducerStateLost => "producer-state-lost",
            Kind::UnsyncedAck => "unsynced-ack",
            Kind::DoubleAssignment => "double-assignment",
            Kind::LostCommit => "lost-commit",
            Kind::NonmonotonicCommit => "nonmonotonic-commit",
            Kind::Undelivered => "undelivered",
            Kind::UnsyncedCommit => "unsynced-commit",
            Kind::TwoLeaders => "two-leaders",
            Kind::EpochRegression => "epoch-regression",
            Kind::CommittedLost => "committed-lost",
            Kind::MetadataInvariant => "metadata-invariant",
            Kind::ReplicasDiverge => "replicas-diverge",
            Kind::CommittedTruncated => "committed-truncated",
            Kind::UnderReplicatedAck => "under-replicated-ack",
            Kind::EarlyIsrJoin => "early-isr-join",
        })
    }
}

/// One anomaly found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anomaly {
    pub kind: Kind,
    /// Which check found it.
    pub check: Check,
    pub tp: Tp,
    /// What happened, naming values, offsets and processes.
    pub detail: String,
    /// The simulated time that locates it in the history (for the failure report).
    pub at: Micros,
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} on {} [{}]: {}",
            self.kind, self.tp, self.check, self.detail
        )
    }
}
