//! The metadata quorum's Raft, KRaft's way (KIP-595), as a pure state machine in raft-rs's
//! `RawNode` shape: [`RaftNode::tick`] takes the time, [`RaftNode::step`] a message,
//! [`RaftNode::propose`] a record batch; [`RaftNode::ready`] hands out, in the order to honour,
//! the quorum-state to fsync, the log truncation and entries to write, the messages to send
//! once those are durable, and the committed entries to apply; [`RaftNode::advance`] reports
//! them durable. It does no I/O, reads no clock and draws randomness only from a generator
//! seeded by the driver, so the same inputs give the same outputs.
//!
//! What it does, as Kafka's `KafkaRaftClient` does:
//! - Roles Unattached, Prospective (pre-vote, KIP-996), Candidate, Leader, Follower and
//!   Resigned; static voters (`controller.quorum.voters`) and observers, which fetch but never
//!   vote nor count.
//! - Pull replication: Fetch(`fetch_offset`, `last_fetched_epoch`), answered with entries or a
//!   diverging epoch from the leader's epoch cache; the follower truncates by epoch (never to
//!   its high watermark alone, never below it) and fetches again, over as many rounds as
//!   back-to-back failovers need.
//! - A vote is granted only to a candidate whose log is at least as up to date, once per
//!   epoch, and goes out only after the quorum-state naming it is fsynced; a pre-vote changes
//!   nothing and is refused by a follower that heard from its leader within the fetch timeout.
//! - The high watermark is the offset a majority of voters hold durably (followers fetch from
//!   their durable end; the leader's own log counts once the driver reports it durable), only
//!   rises, and first passes the LeaderChange entry a new leader writes in its epoch.
//! - Check-quorum: a leader not fetched from by a majority for 1.5 × the fetch timeout resigns
//!   (KAFKA-15489); a restarted leader comes back Resigned in its epoch; [`RaftNode::resign`]
//!   sends EndQuorumEpoch with preferred successors for a clean shutdown.
//!
//! - Snapshots (KIP-630): the application snapshots its state at an applied, committed and
//!   durable offset ([`RaftNode::snapshot`], by `metadata.log.max.record.bytes.between.snapshots`
//!   and `metadata.log.max.snapshot.interval.ms`); the snapshot is written durably, then the log
//!   below it is deleted. A fetch below the leader's log start is answered with the snapshot's
//!   id; the follower fetches it in chunks (FetchSnapshot), writes it, restarts its log empty at
//!   its end, and restores its state from it. A node starts from its newest snapshot and the
//!   entries after it, so replay is bounded.
//!
//! Not built yet: dynamic voters (KIP-853) and `controller.quorum.bootstrap.servers`; a cap on
//! entries proposed but not yet committed; keeping log entries below a snapshot for a while
//! (Kafka's `metadata.max.retention.bytes`), so a follower just behind a new snapshot fetches
//! the snapshot rather than the few entries it lacks.
//!
//! - [`log`]: entries, offsets, epochs and the epoch cache.
//! - [`message`]: Vote, BeginQuorumEpoch, EndQuorumEpoch, Fetch and their answers.
//! - [`node`]: the node, its settings, quorum-state, roles and the Ready/advance contract.
//! - `election`, `replication`: the node's handling of elections and of fetches.
//! - [`store`]: the quorum-state file and the log `__cluster_metadata-0` on disk.
//! - [`driver`]: the async shell that ticks the core, persists each Ready, sends and receives
//!   its messages over Kafka connections, and applies what commits.
//! - [`wire`]: messages as Kafka's Vote, BeginQuorumEpoch, EndQuorumEpoch, Fetch and FetchSnapshot of
//!   `__cluster_metadata-0`, entries as RecordBatch v2 batches.

pub mod driver;
mod election;
pub mod log;
pub mod message;
pub mod node;
mod replication;
pub mod store;
pub mod wire;

#[cfg(test)]
mod sim_tests;
#[cfg(test)]
mod tests;

/// A node's id (Kafka's `node.id`, a replica id).
pub type NodeId = i32;

pub use log::{Entry, EntryKind, Epoch, Offset, OffsetAndEpoch, RaftLog, Snapshot};
pub use message::{Message, Outgoing};
pub use node::PlantedBug;
pub use node::{Config, NotLeader, QuorumState, RaftNode, Ready, Role, SnapshotError, StartError};
