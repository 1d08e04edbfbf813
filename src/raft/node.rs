//! The Raft node: its settings, its persisted quorum-state, its roles and their timers, and the
//! RawNode contract (`tick`, `step`, `propose`, `ready`, `advance`). Elections live in
//! [`super::election`], log replication and the high watermark in [`super::replication`].

use super::NodeId;
use super::log::{Entry, EntryKind, Epoch, LogError, Offset, OffsetAndEpoch, RaftLog, Snapshot};
use super::message::{
    EndQuorumEpoch, Fetch, FetchResponse, LeaderAndEpoch, Message, Outgoing, RaftError,
};
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use thiserror::Error;

/// The smallest unit of Kafka's exponential election backoff (`RETRY_BACKOFF_BASE_MS`).
const BACKOFF_BASE_MS: i64 = 50;

/// A node's settings, with KRaft's names and defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `node.id`.
    pub node_id: NodeId,
    /// The voters (`controller.quorum.voters`, static for now). A node outside them is an
    /// observer: it fetches but never votes, stands, or counts toward a majority.
    pub voters: BTreeSet<NodeId>,
    /// `controller.quorum.election.timeout.ms` (1000): the base of the randomized time a voter
    /// waits without a leader before it stands; a draw in `[0, base)` is added to it.
    pub election_timeout_ms: i64,
    /// `controller.quorum.election.backoff.max.ms` (1000): the cap of the exponential backoff
    /// after a lost election.
    pub election_backoff_max_ms: i64,
    /// `controller.quorum.fetch.timeout.ms` (2000): a follower that has not fetched from its
    /// leader for this long stands; a leader that has not been fetched from by a majority for
    /// 1.5 times this long resigns (Kafka's check-quorum factor, KAFKA-15489).
    pub fetch_timeout_ms: i64,
    /// `controller.quorum.request.timeout.ms` (2000): when an unanswered request is sent again.
    pub request_timeout_ms: i64,
    /// `controller.quorum.retry.backoff.ms` (20): the pause before fetching again after an error.
    pub retry_backoff_ms: i64,
    /// How long the leader holds a fetch that has nothing new (Kafka's fetch max wait, 500).
    pub fetch_max_wait_ms: i64,
    /// The most payload bytes in one fetch response (one entry is always sent).
    pub fetch_max_bytes: usize,
    /// A bug planted on purpose, to show the simulation's checker catches it.
    pub planted_bug: Option<PlantedBug>,
}

impl Config {
    /// KRaft's defaults for node `node_id` among `voters`.
    pub fn new(node_id: NodeId, voters: impl IntoIterator<Item = NodeId>) -> Config {
        Config {
            node_id,
            voters: voters.into_iter().collect(),
            election_timeout_ms: 1000,
            election_backoff_max_ms: 1000,
            fetch_timeout_ms: 2000,
            request_timeout_ms: 2000,
            retry_backoff_ms: 20,
            fetch_max_wait_ms: 500,
            fetch_max_bytes: 8 * 1024 * 1024,
            planted_bug: None,
        }
    }
}

/// Bugs the simulation's checker must catch (see `sim_tests`, and runnel-sim's `--planted-bug`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlantedBug {
    /// The quorum-state naming a granted vote (and the epoch it moved to) is not fsynced before
    /// the grant goes out, so a voter that crashes after granting forgets it and may vote again
    /// in that epoch (the issue's `vote-not-synced`).
    VoteWithoutPersist,
    /// The leader counts only its own log for the high watermark.
    HwWithoutMajority,
    /// A follower told its log diverges truncates to its high watermark instead of by epoch
    /// (the issue's `raft-truncate-to-hw`).
    TruncateToHw,
}

/// The `quorum-state` file: what a node must remember across a crash to never vote twice in an
/// epoch nor lead an epoch twice. The driver fsyncs it before sending anything of the same
/// [`Ready`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QuorumState {
    /// The latest epoch the node knows.
    pub epoch: Epoch,
    /// The candidate it voted for in that epoch.
    pub voted_for: Option<NodeId>,
    /// The leader of that epoch, once known (itself if it led it).
    pub leader_id: Option<NodeId>,
}

/// A node's role (Kafka's `EpochState`s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// No leader known in the epoch (and, for a voter, not standing).
    Unattached,
    /// Asking for pre-votes without bumping the epoch (KIP-996).
    Prospective,
    /// Standing in a new epoch, having voted for itself.
    Candidate,
    /// Leading the epoch.
    Leader,
    /// Fetching from the epoch's leader.
    Follower,
    /// Led the epoch and stepped down (or restarted): may not lead it again nor vote in it.
    Resigned,
}

/// What the driver must do, in this order: fsync `quorum_state`; write `snapshot` durably;
/// restart the log empty at `reset_log`, or move its start up to `log_start`; cut the log back
/// to `truncate_to`; append `entries`; make the log durable; call [`RaftNode::advance`] with
/// `number`; only then send `messages`; restore the application's state from `restore`, then
/// apply `committed` (in order, any time after writing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ready {
    /// Passed back to [`RaftNode::advance`] once everything above is durable.
    pub number: u64,
    /// The quorum-state to write and fsync, if it changed.
    pub quorum_state: Option<QuorumState>,
    /// The new log end, if the log must be cut back before `entries` are appended.
    pub truncate_to: Option<Offset>,
    /// Entries to append (their offsets follow the log end after truncation).
    pub entries: Vec<Entry>,
    /// Messages to send once the quorum-state and the entries above are durable.
    pub messages: Vec<Outgoing>,
    /// Newly committed entries (below the high watermark), to apply in order.
    pub committed: Vec<Entry>,
    /// A snapshot to write durably (taken here, or fetched from the leader), before the log
    /// changes below.
    pub snapshot: Option<Snapshot>,
    /// The log's entries below this offset are gone (the snapshot stands for them): delete
    /// them.
    pub log_start: Option<Offset>,
    /// A snapshot fetched from the leader replaces the whole log: it restarts empty at this
    /// offset.
    pub reset_log: Option<OffsetAndEpoch>,
    /// The application's state is this snapshot's (at start, or a fetched one), before
    /// `committed` is applied on top.
    pub restore: Option<Snapshot>,
}

impl Ready {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.quorum_state.is_none()
            && self.truncate_to.is_none()
            && self.entries.is_empty()
            && self.messages.is_empty()
            && self.committed.is_empty()
            && self.snapshot.is_none()
            && self.log_start.is_none()
            && self.reset_log.is_none()
            && self.restore.is_none()
    }
}

/// A proposal reached a node that does not lead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("not the leader (epoch {epoch}, leader {leader_id:?})")]
pub struct NotLeader {
    /// The leader the node knows, to redirect to.
    pub leader_id: Option<NodeId>,
    /// The node's epoch.
    pub epoch: Epoch,
}

/// Why a node cannot start from what the driver read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StartError {
    #[error("the log: {0}")]
    Log(#[from] LogError),
    #[error("the configuration has no voters")]
    NoVoters,
    #[error("timeouts must be positive")]
    Timeouts,
}

/// Why [`RaftNode::snapshot`] took no snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SnapshotError {
    /// Only committed entries that were handed out to apply, and are durable here, can be in
    /// a snapshot.
    #[error("offset {offset} is past what is applied ({applied}) or durable ({durable})")]
    NotApplied {
        offset: Offset,
        applied: Offset,
        durable: Offset,
    },
    /// The latest snapshot already covers it.
    #[error("offset {offset} is not past the latest snapshot's {latest}")]
    Stale { offset: Offset, latest: Offset },
}

/// A snapshot being fetched from the leader, chunk by chunk.
#[derive(Debug, Clone)]
pub(super) struct SnapshotFetch {
    /// The snapshot the leader named.
    pub(super) id: OffsetAndEpoch,
    /// The bytes fetched so far.
    pub(super) bytes: Vec<u8>,
    /// The request sent and not answered yet: its position, and when.
    pub(super) in_flight: Option<(i64, i64)>,
}

/// A candidate's or prospective's tally.
#[derive(Debug, Clone, Default)]
pub(super) struct Election {
    /// Voters that granted (the node itself included).
    pub(super) granted: BTreeSet<NodeId>,
    /// Voters that refused.
    pub(super) rejected: BTreeSet<NodeId>,
    /// When each unanswered voter was last asked.
    pub(super) asked_ms: BTreeMap<NodeId, i64>,
    /// When the election ends without a result (or the backoff after a lost one).
    pub(super) deadline_ms: i64,
}

/// What the leader knows about one replica in its epoch.
#[derive(Debug, Clone, Default)]
pub(super) struct Replica {
    /// The replica's durable log end, from its last fetch on the leader's log.
    pub(super) end_offset: Option<Offset>,
    /// When it last fetched (for check-quorum).
    pub(super) last_fetch_ms: Option<i64>,
    /// When it last fetched at the leader's log end (for DescribeQuorum).
    pub(super) last_caught_up_ms: Option<i64>,
}

/// One replica's progress as the leader sees it (DescribeQuorum's `ReplicaState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaProgress {
    /// The replica.
    pub id: NodeId,
    /// Whether it votes.
    pub voter: bool,
    /// Its log end offset, from its last fetch (-1 if it has not fetched in this epoch).
    pub log_end_offset: Offset,
    /// When it last fetched, ms (-1 if never in this epoch).
    pub last_fetch_ms: i64,
    /// When it last fetched at the leader's log end, ms (-1 if never in this epoch).
    pub last_caught_up_ms: i64,
}

/// The leader's state for its epoch.
#[derive(Debug, Clone)]
pub(super) struct Leading {
    /// The offset of its LeaderChange entry; the high watermark must pass it.
    pub(super) epoch_start_offset: Offset,
    /// Every replica that fetched in this epoch, voters and observers.
    pub(super) replicas: BTreeMap<NodeId, Replica>,
    /// Voters that acknowledged the epoch (by BeginQuorumEpoch's answer or a fetch).
    pub(super) acked: BTreeSet<NodeId>,
    /// When BeginQuorumEpoch is next sent to voters that have not acknowledged it or do not
    /// fetch.
    pub(super) next_begin_ms: i64,
    /// When the epoch started (check-quorum gives the majority a full timeout first).
    pub(super) since_ms: i64,
    /// Fetches with nothing new, held until data, a new high watermark, or their deadline.
    pub(super) parked: BTreeMap<NodeId, (Fetch, i64)>,
}

impl Leading {
    /// Whether replica `v` fetched in this epoch less than `window_ms` before `now`.
    pub(super) fn fetched_within(&self, v: NodeId, now: i64, window_ms: i64) -> bool {
        self.replicas
            .get(&v)
            .and_then(|r| r.last_fetch_ms)
            .is_some_and(|t| now - t < window_ms)
    }
}

/// The role with its role-specific state.
#[derive(Debug, Clone)]
pub(super) enum State {
    Unattached {
        /// Voter: when to stand. Observer: when to ask a voter who leads.
        deadline_ms: i64,
    },
    Prospective(Election),
    Candidate(Election),
    Leader(Leading),
    Follower {
        leader_id: NodeId,
        /// When the leader is given up for lost unless a fetch succeeds.
        fetch_deadline_ms: i64,
        /// When the leader was last heard from (a pre-vote is refused within the fetch timeout).
        last_contact_ms: Option<i64>,
        /// The fetch sent and not answered yet, and when.
        in_flight: Option<(Fetch, i64)>,
        /// When to fetch again if nothing is in flight.
        next_fetch_ms: i64,
    },
    Resigned {
        /// When to stand.
        deadline_ms: i64,
        /// Voters that acknowledged EndQuorumEpoch.
        acked: BTreeSet<NodeId>,
        /// When EndQuorumEpoch is next sent to the others.
        next_end_ms: i64,
        /// The successors to name.
        successors: Vec<NodeId>,
    },
}

/// The Ready handed out and not yet acknowledged.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    number: u64,
    /// The log end it makes durable (cut back if the log is truncated meanwhile).
    log_end: Offset,
}

/// A quorum member: a pure, deterministic state machine.
#[derive(Debug)]
pub struct RaftNode {
    pub(super) config: Config,
    /// Election jitter and the observer's choice of voter, seeded by the driver.
    pub(super) rng: StdRng,
    /// The time of the last tick.
    pub(super) now_ms: i64,
    /// The quorum-state the node acts on (persisted, or to be, before anything is sent).
    pub(super) quorum: QuorumState,
    /// The role.
    pub(super) state: State,
    /// The log (written, not necessarily durable).
    pub(super) log: RaftLog,
    /// Entries below it are committed; it never goes back while the node runs.
    pub(super) high_watermark: Offset,
    /// Lost elections in a row, for the exponential backoff.
    pub(super) election_retries: u32,
    /// The quorum-state changed since the last Ready.
    quorum_dirty: bool,
    /// Messages for the next Ready.
    pub(super) out: Vec<Outgoing>,
    /// The log end the driver has written (as of the last Ready).
    handed_end: Offset,
    /// The first offset the driver has not been handed (cut back by truncation).
    unstable_from: Offset,
    /// The log end the driver reported durable (cut back by truncation).
    pub(super) durable_end: Offset,
    /// Committed entries below it were handed out to apply.
    applied: Offset,
    in_flight: Option<InFlight>,
    next_ready: u64,
    /// The latest snapshot this node holds (the log starts at or below its end).
    pub(super) latest_snapshot: Option<Snapshot>,
    /// For the next Ready: a snapshot to write, the log start to move to, the log to reset,
    /// the state to restore.
    snapshot_to_write: Option<Snapshot>,
    log_start_to_move: Option<Offset>,
    reset_log: Option<OffsetAndEpoch>,
    restore: Option<Snapshot>,
    /// A follower fetching its leader's snapshot.
    pub(super) snapshot_fetch: Option<SnapshotFetch>,
}

impl RaftNode {
    /// A node starting at `now_ms` from its quorum-state and durable log as read from disk,
    /// its randomness seeded with `seed`. A node whose quorum-state names itself leader comes
    /// back Resigned in that epoch. With a snapshot, the log starts at its end (entries below
    /// are dropped), everything below it counts as committed, and the first Ready hands it out
    /// to restore the application's state from.
    pub fn new(
        config: Config,
        persisted: QuorumState,
        snapshot: Option<Snapshot>,
        log: Vec<Entry>,
        now_ms: i64,
        seed: u64,
    ) -> Result<RaftNode, StartError> {
        if config.voters.is_empty() {
            return Err(StartError::NoVoters);
        }
        if config.election_timeout_ms <= 0
            || config.fetch_timeout_ms <= 0
            || config.request_timeout_ms <= 0
        {
            return Err(StartError::Timeouts);
        }
        let start = snapshot.as_ref().map_or(
            OffsetAndEpoch {
                offset: 0,
                epoch: 0,
            },
            |s| s.id,
        );
        let log = RaftLog::starting_at(start, log)?;
        let end = log.end_offset();
        let mut node = RaftNode {
            config,
            rng: StdRng::seed_from_u64(seed),
            now_ms,
            quorum: persisted,
            state: State::Unattached { deadline_ms: 0 },
            log,
            high_watermark: start.offset,
            election_retries: 0,
            quorum_dirty: false,
            out: Vec::new(),
            handed_end: end,
            unstable_from: end,
            durable_end: end,
            applied: start.offset,
            in_flight: None,
            next_ready: 1,
            latest_snapshot: snapshot.clone(),
            snapshot_to_write: None,
            log_start_to_move: None,
            reset_log: None,
            restore: snapshot,
            snapshot_fetch: None,
        };
        node.start();
        Ok(node)
    }

    /// Picks the starting role from the quorum-state.
    fn start(&mut self) {
        let me = self.config.node_id;
        if self.log.last_epoch() > self.quorum.epoch {
            // The log is ahead of the quorum-state (Kafka's QuorumState.initialize does the
            // same): start unattached in the log's epoch.
            let epoch = self.log.last_epoch();
            self.become_unattached(epoch);
        } else if self.quorum.leader_id == Some(me) {
            self.become_resigned(Vec::new());
        } else if let Some(leader) = self.quorum.leader_id {
            let epoch = self.quorum.epoch;
            self.become_follower(epoch, leader, false);
        } else {
            self.state = State::Unattached {
                deadline_ms: self.election_deadline(),
            };
        }
    }

    // ----- accessors -----

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.config.node_id
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The current role.
    pub fn role(&self) -> Role {
        match self.state {
            State::Unattached { .. } => Role::Unattached,
            State::Prospective(_) => Role::Prospective,
            State::Candidate(_) => Role::Candidate,
            State::Leader(_) => Role::Leader,
            State::Follower { .. } => Role::Follower,
            State::Resigned { .. } => Role::Resigned,
        }
    }

    /// The current epoch.
    pub fn epoch(&self) -> Epoch {
        self.quorum.epoch
    }

    /// The quorum-state the node acts on (not necessarily durable yet).
    pub fn quorum_state(&self) -> QuorumState {
        self.quorum
    }

    /// The leader this node follows or is, in its epoch.
    pub fn leader_id(&self) -> Option<NodeId> {
        match &self.state {
            State::Leader(_) => Some(self.config.node_id),
            State::Follower { leader_id, .. } => Some(*leader_id),
            _ => None,
        }
    }

    /// Entries below it are committed.
    pub fn high_watermark(&self) -> Offset {
        self.high_watermark
    }

    /// The log (written by the driver or about to be).
    pub fn log(&self) -> &RaftLog {
        &self.log
    }

    /// The log end the driver reported durable.
    pub fn durable_end_offset(&self) -> Offset {
        self.durable_end
    }

    /// The id of the latest snapshot this node holds.
    pub fn latest_snapshot_id(&self) -> Option<OffsetAndEpoch> {
        self.latest_snapshot.as_ref().map(|s| s.id)
    }

    /// Takes a snapshot at `offset` from the application's state `data` there (it has applied
    /// every entry below `offset`, and none after): written with the next Ready, and the log
    /// below it deleted after it. `offset` must be handed out to apply, durable here, and past
    /// the latest snapshot. Returns the snapshot's id.
    pub fn snapshot(
        &mut self,
        offset: Offset,
        data: Bytes,
    ) -> Result<OffsetAndEpoch, SnapshotError> {
        let latest = self.latest_snapshot.as_ref().map_or(0, |s| s.id.offset);
        if offset <= latest || offset <= self.log.start_offset() {
            return Err(SnapshotError::Stale { offset, latest });
        }
        let not_applied = SnapshotError::NotApplied {
            offset,
            applied: self.applied,
            durable: self.durable_end,
        };
        if offset > self.applied || offset > self.durable_end || offset > self.high_watermark {
            return Err(not_applied);
        }
        let epoch = self.log.epoch_before(offset).ok_or(not_applied)?;
        let snapshot = Snapshot {
            id: OffsetAndEpoch { offset, epoch },
            data,
        };
        self.log.compact(offset);
        self.latest_snapshot = Some(snapshot.clone());
        self.snapshot_to_write = Some(snapshot);
        self.log_start_to_move = Some(offset);
        Ok(OffsetAndEpoch { offset, epoch })
    }

    /// A follower installs the snapshot it fetched: the log restarts empty at its end, the
    /// application's state becomes the snapshot's. Refused (false) if it would drop entries
    /// this node knows to be committed.
    pub(super) fn install_snapshot(&mut self, snapshot: Snapshot) -> bool {
        let id = snapshot.id;
        if id.offset < self.high_watermark || id.offset < self.applied {
            return false;
        }
        self.log.reset(id);
        self.high_watermark = id.offset;
        self.applied = id.offset;
        self.unstable_from = id.offset;
        self.handed_end = id.offset;
        self.durable_end = self.durable_end.min(id.offset);
        if let Some(f) = &mut self.in_flight {
            f.log_end = f.log_end.min(id.offset);
        }
        self.latest_snapshot = Some(snapshot.clone());
        self.snapshot_to_write = Some(snapshot.clone());
        self.log_start_to_move = None;
        self.reset_log = Some(id);
        self.restore = Some(snapshot);
        true
    }

    /// On the leader, every voter's progress and that of each observer that fetched in this
    /// epoch, by id (the leader itself at its durable end, caught up now); `None` elsewhere.
    pub fn replication(&self) -> Option<Vec<ReplicaProgress>> {
        let State::Leader(l) = &self.state else {
            return None;
        };
        let me = self.config.node_id;
        let ids: BTreeSet<NodeId> = self
            .config
            .voters
            .iter()
            .chain(l.replicas.keys())
            .copied()
            .collect();
        Some(
            ids.into_iter()
                .map(|id| {
                    let r = l.replicas.get(&id).cloned().unwrap_or_default();
                    let mine = id == me;
                    ReplicaProgress {
                        id,
                        voter: self.config.voters.contains(&id),
                        log_end_offset: if mine {
                            self.durable_end
                        } else {
                            r.end_offset.unwrap_or(-1)
                        },
                        last_fetch_ms: if mine {
                            self.now_ms
                        } else {
                            r.last_fetch_ms.unwrap_or(-1)
                        },
                        last_caught_up_ms: if mine {
                            self.now_ms
                        } else {
                            r.last_caught_up_ms.unwrap_or(-1)
                        },
                    }
                })
                .collect(),
        )
    }

    /// Whether this node is a voter.
    pub fn is_voter(&self) -> bool {
        self.config.voters.contains(&self.config.node_id)
    }

    // ----- the RawNode contract -----

    /// Moves the clock to `now_ms` (which never goes back) and fires what is due: elections,
    /// fetch timeouts, check-quorum, resends.
    pub fn tick(&mut self, now_ms: i64) {
        assert!(now_ms >= self.now_ms, "time went back");
        self.now_ms = now_ms;
        match &self.state {
            State::Unattached { deadline_ms } => {
                if now_ms >= *deadline_ms {
                    self.on_unattached_timeout();
                }
            }
            State::Prospective(_) | State::Candidate(_) => self.tick_election(),
            State::Follower { .. } => self.tick_follower(),
            State::Leader(_) => self.tick_leader(),
            State::Resigned { .. } => self.tick_resigned(),
        }
    }

    /// Takes in a message from `from`.
    pub fn step(&mut self, from: NodeId, message: Message) {
        match message {
            Message::Vote(v) => self.on_vote(from, v),
            Message::VoteResponse(r) => self.on_vote_response(from, r),
            Message::BeginQuorumEpoch(b) => self.on_begin_quorum_epoch(from, b),
            Message::BeginQuorumEpochResponse(r) => self.on_begin_response(from, r),
            Message::EndQuorumEpoch(e) => self.on_end_quorum_epoch(from, e),
            Message::EndQuorumEpochResponse(r) => self.on_end_response(from, r),
            Message::Fetch(f) => self.on_fetch(from, f),
            Message::FetchResponse(r) => self.on_fetch_response(from, r),
            Message::FetchSnapshot(f) => self.on_fetch_snapshot(from, f),
            Message::FetchSnapshotResponse(r) => self.on_fetch_snapshot_response(from, r),
        }
    }

    /// Appends `payload` as one entry if this node leads; returns its offset. It is committed
    /// once the high watermark passes it.
    pub fn propose(&mut self, payload: Bytes) -> Result<Offset, NotLeader> {
        if !matches!(self.state, State::Leader(_)) {
            return Err(NotLeader {
                leader_id: self.leader_id(),
                epoch: self.quorum.epoch,
            });
        }
        let offset = self.log.end_offset();
        self.append(Entry {
            offset,
            epoch: self.quorum.epoch,
            kind: EntryKind::Data,
            payload,
        });
        self.answer_parked();
        Ok(offset)
    }

    /// Steps down gracefully (before a clean shutdown): a leader resigns and tells the voters,
    /// most caught-up first, so they elect a successor without waiting for their timeouts.
    pub fn resign(&mut self) {
        if let State::Leader(l) = &self.state {
            let mut successors: Vec<(Offset, NodeId)> = l
                .replicas
                .iter()
                .filter(|(id, _)| self.config.voters.contains(id))
                .map(|(id, r)| (r.end_offset.unwrap_or(-1), *id))
                .collect();
            successors.sort_by(|a, b| b.cmp(a));
            let successors = successors.into_iter().map(|(_, id)| id).collect();
            self.become_resigned(successors);
        }
    }

    /// Whether [`RaftNode::ready`] has something and may be called (it may not while a Ready
    /// is unacknowledged).
    pub fn has_ready(&self) -> bool {
        self.in_flight.is_none()
            && (self.quorum_dirty
                || self.unstable_from < self.log.end_offset()
                || self.unstable_from < self.handed_end
                || self.applied < self.high_watermark
                || !self.out.is_empty()
                || self.snapshot_to_write.is_some()
                || self.log_start_to_move.is_some()
                || self.reset_log.is_some()
                || self.restore.is_some())
    }

    /// Takes what the driver must do next (see [`Ready`]). The driver calls
    /// [`RaftNode::advance`] before the next call.
    pub fn ready(&mut self) -> Ready {
        assert!(self.in_flight.is_none(), "ready() before advance()");
        let end = self.log.end_offset();
        let reset_log = self.reset_log.take();
        let truncate_to = (reset_log.is_none() && self.unstable_from < self.handed_end)
            .then_some(self.unstable_from);
        let entries = self.log.slice(self.unstable_from, end).to_vec();
        let committed = self.log.slice(self.applied, self.high_watermark).to_vec();
        self.applied = self.high_watermark;
        self.handed_end = end;
        self.unstable_from = end;
        let number = self.next_ready;
        self.next_ready += 1;
        self.in_flight = Some(InFlight {
            number,
            log_end: end,
        });
        Ready {
            number,
            quorum_state: std::mem::take(&mut self.quorum_dirty).then_some(self.quorum),
            truncate_to,
            entries,
            messages: std::mem::take(&mut self.out),
            committed,
            snapshot: self.snapshot_to_write.take(),
            log_start: self.log_start_to_move.take(),
            reset_log,
            restore: self.restore.take(),
        }
    }

    /// The driver made Ready `number` durable (its quorum-state fsynced, its log writes
    /// synced); its messages may now go out.
    pub fn advance(&mut self, number: u64) {
        let in_flight = self.in_flight.take().expect("advance() without ready()");
        assert_eq!(in_flight.number, number, "advance() of another Ready");
        self.durable_end = in_flight.log_end;
        if matches!(self.state, State::Leader(_)) {
            self.maybe_advance_high_watermark();
        }
    }

    // ----- log changes, through which the Ready is kept -----

    pub(super) fn append(&mut self, entry: Entry) {
        self.log.append(entry);
    }

    /// Cuts the log back to `end`, never below the high watermark.
    pub(super) fn truncate(&mut self, end: Offset) {
        assert!(
            end >= self.high_watermark,
            "node {}: truncation to {end} below the high watermark {}",
            self.config.node_id,
            self.high_watermark
        );
        self.log.truncate(end);
        self.unstable_from = self.unstable_from.min(end);
        self.durable_end = self.durable_end.min(end);
        if let Some(f) = &mut self.in_flight {
            f.log_end = f.log_end.min(end);
        }
    }

    /// Raises the high watermark (it never goes back while the node runs).
    pub(super) fn set_high_watermark(&mut self, hw: Offset) {
        assert!(hw <= self.log.end_offset(), "high watermark beyond the log");
        self.high_watermark = self.high_watermark.max(hw);
    }

    // ----- quorum-state and roles -----

    /// Sets the quorum-state to persist before anything else of the next Ready goes out.
    pub(super) fn set_quorum(&mut self, q: QuorumState) {
        assert!(q.epoch >= self.quorum.epoch, "epoch went back");
        if q != self.quorum {
            self.quorum = q;
            self.quorum_dirty = true;
        }
    }

    /// Records a granted vote.
    pub(super) fn record_vote(&mut self, candidate: NodeId) {
        let q = QuorumState {
            voted_for: Some(candidate),
            ..self.quorum
        };
        self.set_quorum(q);
        if self.config.planted_bug == Some(PlantedBug::VoteWithoutPersist) {
            // The grant goes out with no quorum-state (epoch and vote) made durable first.
            self.quorum_dirty = false;
        }
    }

    pub(super) fn send(&mut self, to: NodeId, message: Message) {
        self.out.push(Outgoing { to, message });
    }

    /// Changes the role; a leader stepping down answers the fetches it holds.
    pub(super) fn set_state(&mut self, state: State) {
        self.snapshot_fetch = None;
        let old = std::mem::replace(&mut self.state, state);
        if let State::Leader(l) = old {
            let current = self.current_leader();
            for (id, (f, _)) in l.parked {
                let response = FetchResponse {
                    error: Some(RaftError::NotLeaderOrFollower),
                    current_leader: current,
                    high_watermark: self.high_watermark,
                    diverging_epoch: None,
                    snapshot_id: None,
                    records: Vec::new(),
                    fetch_offset: f.fetch_offset,
                    last_fetched_epoch: f.last_fetched_epoch,
                };
                self.send(id, Message::FetchResponse(response));
            }
        }
        if matches!(self.state, State::Leader(_) | State::Follower { .. }) {
            self.election_retries = 0;
        }
    }

    /// Who leads, as this node knows, for its answers.
    pub(super) fn current_leader(&self) -> LeaderAndEpoch {
        LeaderAndEpoch {
            leader_id: self.leader_id(),
            leader_epoch: self.quorum.epoch,
        }
    }

    /// A new, higher epoch with no leader known.
    pub(super) fn become_unattached(&mut self, epoch: Epoch) {
        assert!(epoch > self.quorum.epoch, "unattached in an old epoch");
        self.set_quorum(QuorumState {
            epoch,
            voted_for: None,
            leader_id: None,
        });
        let deadline_ms = self.election_deadline();
        self.set_state(State::Unattached { deadline_ms });
    }

    /// Follows `leader` in `epoch` (the current one or a higher one); `heard` when the leader
    /// itself said so. A vote given in the same epoch is kept.
    pub(super) fn become_follower(&mut self, epoch: Epoch, leader: NodeId, heard: bool) {
        assert!(epoch >= self.quorum.epoch && leader != self.config.node_id);
        let voted_for = if epoch == self.quorum.epoch {
            self.quorum.voted_for
        } else {
            None
        };
        self.set_quorum(QuorumState {
            epoch,
            voted_for,
            leader_id: Some(leader),
        });
        let now = self.now_ms;
        self.set_state(State::Follower {
            leader_id: leader,
            fetch_deadline_ms: now + self.config.fetch_timeout_ms,
            last_contact_ms: heard.then_some(now),
            in_flight: None,
            next_fetch_ms: now,
        });
        self.send_fetch();
    }

    /// Gives up the epoch it led: EndQuorumEpoch to the voters, a new election later.
    pub(super) fn become_resigned(&mut self, successors: Vec<NodeId>) {
        let deadline_ms = self.election_deadline();
        let mut acked = BTreeSet::new();
        acked.insert(self.config.node_id);
        self.set_state(State::Resigned {
            deadline_ms,
            acked,
            next_end_ms: self.now_ms,
            successors,
        });
        self.tick_resigned();
    }

    /// An observer without a leader asks a voter; a voter without a leader stands.
    fn on_unattached_timeout(&mut self) {
        if self.is_voter() {
            self.become_prospective();
        } else {
            let voters: Vec<NodeId> = self.config.voters.iter().copied().collect();
            let to = voters[self.rng.random_range(0..voters.len())];
            self.send(to, Message::Fetch(self.fetch_request()));
            let deadline_ms = self.now_ms + self.config.request_timeout_ms;
            self.state = State::Unattached { deadline_ms };
        }
    }

    fn tick_resigned(&mut self) {
        let now = self.now_ms;
        let State::Resigned {
            deadline_ms,
            acked,
            next_end_ms,
            successors,
        } = &mut self.state
        else {
            return;
        };
        if now >= *deadline_ms {
            self.become_prospective();
            return;
        }
        if now < *next_end_ms {
            return;
        }
        *next_end_ms = now + self.config.request_timeout_ms;
        let message = EndQuorumEpoch {
            leader_id: self.config.node_id,
            leader_epoch: self.quorum.epoch,
            preferred_successors: successors.clone(),
        };
        let to: Vec<NodeId> = self
            .config
            .voters
            .iter()
            .filter(|v| !acked.contains(v))
            .copied()
            .collect();
        for v in to {
            self.send(v, Message::EndQuorumEpoch(message.clone()));
        }
    }

    // ----- timers -----

    /// Now plus the election timeout plus a jitter in `[0, timeout)` (Kafka's
    /// `randomElectionTimeoutMs`).
    pub(super) fn election_deadline(&mut self) -> i64 {
        if self.config.voters.len() == 1 && self.is_voter() {
            // A lone voter has no one to wait for or compete with (Kafka's KafkaRaftClient
            // stands at once too).
            return self.now_ms;
        }
        let base = self.config.election_timeout_ms;
        self.now_ms + base + self.rng.random_range(0..base)
    }

    /// Kafka's binary exponential backoff after `retries` lost elections.
    pub(super) fn election_backoff_ms(&mut self) -> i64 {
        let exponent = self.election_retries.clamp(1, 20) - 1;
        let draw = self.rng.random_range(0..(2i64 << exponent));
        (BACKOFF_BASE_MS * draw).min(self.config.election_backoff_max_ms)
    }

    /// Kafka's strict exponential backoff for the voter at `position` among a resigning
    /// leader's preferred successors: the first stands at once.
    pub(super) fn successor_backoff_ms(&mut self, position: usize) -> i64 {
        if position == 0 {
            return 0;
        }
        let exponent = (position - 1).min(20) as u32;
        let draw = self.rng.random_range(0..(2i64 << exponent));
        (BACKOFF_BASE_MS * draw).min(self.config.election_backoff_max_ms)
    }

    /// A majority of the voters.
    pub(super) fn majority(&self) -> usize {
        self.config.voters.len() / 2 + 1
    }
}
