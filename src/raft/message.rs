//! The messages quorum members exchange: runnel's own plain-data mirror of Kafka's Raft APIs
//! (Vote, BeginQuorumEpoch, EndQuorumEpoch, Fetch), with Kafka's field names. The driver maps
//! them onto `kafka-protocol`'s request and response types, and keeps the request a response
//! answers by its correlation id; the few fields a Kafka response does not carry but the core
//! matches responses by (`pre_vote` and `candidate_epoch` on VoteResponse, `fetch_offset` and
//! `last_fetched_epoch` on FetchResponse) are the driver's to copy from that request.

use super::NodeId;
use super::log::{Entry, Epoch, Offset, OffsetAndEpoch};

/// A message from one quorum member (voter or observer) to another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Vote(Vote),
    VoteResponse(VoteResponse),
    BeginQuorumEpoch(BeginQuorumEpoch),
    BeginQuorumEpochResponse(EpochResponse),
    EndQuorumEpoch(EndQuorumEpoch),
    EndQuorumEpochResponse(EpochResponse),
    Fetch(Fetch),
    FetchResponse(FetchResponse),
    /// A chunk of the leader's snapshot, for a replica whose position is below the leader's
    /// log start (KIP-630).
    FetchSnapshot(FetchSnapshot),
    FetchSnapshotResponse(FetchSnapshotResponse),
}

/// The errors the Raft APIs answer with (Kafka's error codes of the same names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RaftError {
    /// The request's epoch is older than the receiver's.
    FencedLeaderEpoch,
    /// The request's epoch is newer than the receiver's.
    UnknownLeaderEpoch,
    /// The receiver does not lead the epoch.
    NotLeaderOrFollower,
    /// The request came from, or asked for, a node that is not a voter.
    InconsistentVoterSet,
    /// FetchSnapshot of a snapshot the leader no longer has (it took a newer one).
    SnapshotNotFound,
    /// FetchSnapshot at a position outside the snapshot.
    PositionOutOfRange,
}

/// Who leads which epoch, as far as the sender knows (Kafka's `CurrentLeader`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaderAndEpoch {
    /// The leader, if known.
    pub leader_id: Option<NodeId>,
    /// The sender's epoch.
    pub leader_epoch: Epoch,
}

/// A request for a vote (KIP-595), or for a pre-vote (KIP-996).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vote {
    /// The epoch the candidate stands in; for a pre-vote, the one it would stand in (its own
    /// epoch plus one).
    pub candidate_epoch: Epoch,
    /// The candidate.
    pub candidate_id: NodeId,
    /// The epoch of the candidate's last entry.
    pub last_offset_epoch: Epoch,
    /// The candidate's log end offset.
    pub last_offset: Offset,
    /// A pre-vote: granting it changes nothing on the voter and bumps no epoch.
    pub pre_vote: bool,
}

/// The answer to a [`Vote`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoteResponse {
    /// Why the vote could not be considered.
    pub error: Option<RaftError>,
    /// The leader the voter knows in its epoch.
    pub leader_id: Option<NodeId>,
    /// The voter's epoch.
    pub leader_epoch: Epoch,
    /// Whether the vote is granted.
    pub vote_granted: bool,
    /// The request's `pre_vote` (copied by the driver from the request).
    pub pre_vote: bool,
    /// The request's `candidate_epoch` (copied by the driver from the request).
    pub candidate_epoch: Epoch,
}

/// A new leader announcing itself to the voters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BeginQuorumEpoch {
    /// The new leader.
    pub leader_id: NodeId,
    /// Its epoch.
    pub leader_epoch: Epoch,
}

/// A leader stepping down, so the voters elect another without waiting for their fetch
/// timeout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndQuorumEpoch {
    /// The resigning leader.
    pub leader_id: NodeId,
    /// Its epoch.
    pub leader_epoch: Epoch,
    /// Voters in the order they should stand: the most caught-up first.
    pub preferred_successors: Vec<NodeId>,
}

/// The answer to BeginQuorumEpoch and EndQuorumEpoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochResponse {
    /// Why the request was refused.
    pub error: Option<RaftError>,
    /// The leader the receiver knows.
    pub leader_id: Option<NodeId>,
    /// The receiver's epoch.
    pub leader_epoch: Epoch,
}

/// A follower or observer pulling the log from the leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetch {
    /// The fetching node.
    pub replica_id: NodeId,
    /// The epoch the fetcher believes the leader leads.
    pub current_leader_epoch: Epoch,
    /// The fetcher's log end offset, which is durable on the fetcher when the request is sent.
    pub fetch_offset: Offset,
    /// The epoch of the fetcher's entry before `fetch_offset` (0 if none).
    pub last_fetched_epoch: Epoch,
    /// The fetcher's high watermark: the leader holds a fetch that has nothing new only if the
    /// fetcher already knows the leader's high watermark.
    pub high_watermark: Offset,
}

/// Where the fetcher's log parts from the leader's: the fetcher truncates to at most
/// `end_offset` and fetches again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DivergingEpoch {
    /// The largest epoch of the leader's log no greater than the fetcher's `last_fetched_epoch`.
    pub epoch: Epoch,
    /// Where that epoch ends in the leader's log.
    pub end_offset: Offset,
}

/// The answer to a [`Fetch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchResponse {
    /// Why nothing was fetched.
    pub error: Option<RaftError>,
    /// Who leads, as the responder knows.
    pub current_leader: LeaderAndEpoch,
    /// The leader's high watermark.
    pub high_watermark: Offset,
    /// Set when the fetch position is not on the leader's log.
    pub diverging_epoch: Option<DivergingEpoch>,
    /// Entries from `fetch_offset` on (none when diverging).
    pub records: Vec<Entry>,
    /// The request's `fetch_offset` (copied by the driver from the request).
    pub fetch_offset: Offset,
    /// The request's `last_fetched_epoch` (copied by the driver from the request).
    pub last_fetched_epoch: Epoch,
    /// Set instead of records when the position lies below the leader's log start: the
    /// snapshot to fetch (Kafka's `SnapshotId`).
    pub snapshot_id: Option<OffsetAndEpoch>,
}

/// A message to send, and to whom.
/// FetchSnapshot: `max_bytes` of snapshot `snapshot_id` from byte `position`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchSnapshot {
    /// The fetching replica.
    pub replica_id: NodeId,
    /// The epoch it knows.
    pub current_leader_epoch: Epoch,
    /// The snapshot the leader named in its Fetch answer.
    pub snapshot_id: OffsetAndEpoch,
    /// The byte to read from.
    pub position: i64,
    /// The most bytes to answer with.
    pub max_bytes: i32,
}

/// The leader's answer to a FetchSnapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchSnapshotResponse {
    /// Why it was refused.
    pub error: Option<RaftError>,
    /// The leader as the answering node knows it.
    pub current_leader: LeaderAndEpoch,
    /// The snapshot the bytes belong to.
    pub snapshot_id: OffsetAndEpoch,
    /// The snapshot's whole size in bytes.
    pub size: i64,
    /// Where `bytes` start in it.
    pub position: i64,
    /// The chunk.
    pub bytes: bytes::Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The receiver.
    pub to: NodeId,
    /// The message.
    pub message: Message,
}

impl Message {
    /// The epoch the sender was in when it sent the message (for a Vote, the candidate's).
    pub fn epoch(&self) -> Epoch {
        match self {
            Message::Vote(v) => v.candidate_epoch,
            Message::VoteResponse(r) => r.leader_epoch,
            Message::BeginQuorumEpoch(b) => b.leader_epoch,
            Message::EndQuorumEpoch(e) => e.leader_epoch,
            Message::BeginQuorumEpochResponse(r) | Message::EndQuorumEpochResponse(r) => {
                r.leader_epoch
            }
            Message::Fetch(f) => f.current_leader_epoch,
            Message::FetchResponse(r) => r.current_leader.leader_epoch,
            Message::FetchSnapshot(f) => f.current_leader_epoch,
            Message::FetchSnapshotResponse(r) => r.current_leader.leader_epoch,
        }
    }
}
