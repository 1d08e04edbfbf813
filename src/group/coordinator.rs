//! The group coordinator as a pure state machine, in the shape of raft-rs's `RawNode`:
//! [`Coordinator::step`] takes a request, [`Coordinator::tick`] the time, [`Coordinator::ready`]
//! hands out what to write to `__consumer_offsets` and which requests to answer, and
//! [`Coordinator::advance`] reports which writes became durable. It does no I/O, reads no clock
//! and draws no randomness (new member ids come with the request), so the same inputs give the
//! same outputs; the async shell in [`super::service`] drives it over the seam.
//!
//! It speaks Kafka's classic group protocol as the broker side of Kafka 3.x does
//! (`GroupCoordinator.scala` / `ClassicGroup`): the states Empty, PreparingRebalance,
//! CompletingRebalance, Stable and Dead; generations; member ids handed out with
//! MEMBER_ID_REQUIRED (KIP-394); static members (KIP-345); the join phase ended by every member
//! rejoining or by the rebalance timeout, the first one delayed by
//! `group.initial.rebalance.delay.ms`; sessions; the leader's assignment passed through
//! SyncGroup untouched. A commit is answered only once its record is durable, and an assignment
//! is handed out only once the group's metadata record holding it is durable.

use super::records::{self, GroupValue, MemberValue, OffsetValue};
use kafka_protocol::error::ResponseError;
use std::collections::BTreeMap;

/// Identifies a request, chosen by the caller; its answer comes back with it.
pub type ReqId = u64;
/// Identifies a write handed out by [`Coordinator::ready`].
pub type WriteId = u64;

const NONE: i16 = 0;

fn code(e: ResponseError) -> i16 {
    e.code()
}

/// The coordinator's settings, with Kafka's names and defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `offsets.topic.num.partitions` (50).
    pub num_partitions: i32,
    /// `group.min.session.timeout.ms` (6000).
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms` (1800000).
    pub max_session_timeout_ms: i32,
    /// `group.initial.rebalance.delay.ms` (3000).
    pub initial_rebalance_delay_ms: i32,
    /// `group.max.size` (unbounded).
    pub max_size: usize,
    /// `offsets.retention.minutes` (7 days), in ms.
    pub offsets_retention_ms: i64,
    /// `offsets.retention.check.interval.ms` (600000).
    pub offsets_retention_check_interval_ms: i64,
    /// `offset.metadata.max.bytes` (4096).
    pub offset_metadata_max_bytes: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            num_partitions: 50,
            min_session_timeout_ms: 6000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: 3000,
            max_size: usize::MAX,
            offsets_retention_ms: 7 * 24 * 60 * 60 * 1000,
            offsets_retention_check_interval_ms: 600_000,
            offset_metadata_max_bytes: 4096,
        }
    }
}

/// The `__consumer_offsets` partition of a group: `Utils.abs(groupId.hashCode()) % n`, with
/// Java's `String.hashCode` over UTF-16 code units and Kafka's `Utils.abs` (which maps
/// `Integer.MIN_VALUE` to 0).
pub fn partition_for(group: &str, num_partitions: i32) -> i32 {
    let mut h: i32 = 0;
    for unit in group.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(i32::from(unit));
    }
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % num_partitions.max(1)
}

/// A group's state, as DescribeGroups and ListGroups name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// Kafka's name for the state.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// A request to the coordinator, decoded from any version of its Kafka API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Join {
        group: String,
        member_id: String,
        group_instance_id: Option<String>,
        client_id: String,
        client_host: String,
        session_timeout_ms: i32,
        /// -1 (JoinGroup v0): the session timeout.
        rebalance_timeout_ms: i32,
        protocol_type: String,
        /// (name, metadata) in the member's order of preference.
        protocols: Vec<(String, Vec<u8>)>,
        /// JoinGroup v4+: a member without an id gets one with MEMBER_ID_REQUIRED and must
        /// join again with it (KIP-394).
        require_known_member_id: bool,
        /// The id to give the member if it needs one (`client_id-<uuid>`, drawn by the caller).
        new_member_id: String,
    },
    Sync {
        group: String,
        generation: i32,
        member_id: String,
        group_instance_id: Option<String>,
        protocol_type: Option<String>,
        protocol_name: Option<String>,
        assignments: Vec<(String, Vec<u8>)>,
    },
    Heartbeat {
        group: String,
        generation: i32,
        member_id: String,
        group_instance_id: Option<String>,
    },
    /// Members leaving: (member id, group instance id).
    Leave {
        group: String,
        members: Vec<(String, Option<String>)>,
    },
    Commit {
        group: String,
        generation: i32,
        member_id: String,
        group_instance_id: Option<String>,
        /// OffsetCommit v2-v4's retention time; -1 for the broker's.
        retention_ms: i64,
        offsets: Vec<CommitOffset>,
    },
    /// Committed offsets of `partitions` (None: all the group has).
    FetchOffsets {
        group: String,
        partitions: Option<Vec<(String, i32)>>,
    },
    List {
        /// Kafka's state names, matched without case; empty: every state.
        states: Vec<String>,
        /// Group types (`classic`, `consumer`...), matched without case; empty: every type.
        types: Vec<String>,
    },
    Describe {
        groups: Vec<String>,
    },
    Delete {
        groups: Vec<String>,
    },
    DeleteOffsets {
        group: String,
        partitions: Vec<(String, i32)>,
    },
}

/// One partition's offset in a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    /// Set by the caller when the partition cannot be committed (an unknown topic): the
    /// coordinator answers it with this code and writes nothing for it.
    pub error: i16,
}

/// JoinGroup's answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JoinResult {
    pub error: i16,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// For the leader: every member's (id, instance id, metadata for the chosen protocol).
    pub members: Vec<(String, Option<String>, Vec<u8>)>,
    /// JoinGroup v9: the leader must not compute an assignment (a static leader's restart in
    /// a Stable group).
    pub skip_assignment: bool,
}

/// SyncGroup's answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncResult {
    pub error: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Vec<u8>,
}

/// A committed offset, as OffsetFetch answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedOffset {
    pub topic: String,
    pub partition: i32,
    /// -1 when nothing is committed.
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    pub error: i16,
}

/// A group as ListGroups lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedGroup {
    pub group: String,
    pub protocol_type: String,
    pub state: GroupState,
}

/// A member as DescribeGroups describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Vec<u8>,
    pub assignment: Vec<u8>,
}

/// A group as DescribeGroups describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedGroup {
    pub error: i16,
    pub group: String,
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<DescribedMember>,
}

/// The answer to a [`Request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Join(JoinResult),
    Sync(SyncResult),
    Heartbeat(i16),
    /// Top-level error, then per member (member id, instance id, error).
    Leave(i16, Vec<(String, Option<String>, i16)>),
    /// Per partition: (topic, partition, error).
    Commit(Vec<(String, i32, i16)>),
    /// Group-level error, then the offsets.
    FetchOffsets(i16, Vec<FetchedOffset>),
    List(Vec<ListedGroup>),
    Describe(Vec<DescribedGroup>),
    /// Per group: (group, error).
    Delete(Vec<(String, i16)>),
    /// Group-level error, then (topic, partition, error).
    DeleteOffsets(i16, Vec<(String, i32, i16)>),
}

/// Records to append to one `__consumer_offsets` partition and make durable, in order with
/// every other write to that partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub id: WriteId,
    pub partition: i32,
    /// (key, value); a None value is a tombstone.
    pub records: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// What the coordinator wants done: writes to make durable (then reported to
/// [`Coordinator::advance`]) and answers to send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ready {
    pub writes: Vec<Write>,
    pub responses: Vec<(ReqId, Response)>,
    /// Generations that got their assignment since the last `ready` (for the simulator's
    /// state checker).
    pub assigned: Vec<Assigned>,
    /// Groups deleted since the last `ready`: their tombstone is durable and the coordinator
    /// forgot them, so a group created under the same id starts again at generation 0, as in
    /// Kafka (for the simulator's checkers: generation numbers repeat across a deletion).
    pub deleted: Vec<String>,
}

/// A generation's assignment, as the members receive it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assigned {
    pub group: String,
    pub generation: i32,
    /// Each member's id and assignment bytes.
    pub members: Vec<(String, Vec<u8>)>,
}

impl Ready {
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty() && self.responses.is_empty()
    }
}

#[derive(Debug, Clone)]
struct Member {
    id: String,
    instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout_ms: i32,
    rebalance_timeout_ms: i32,
    protocol_type: String,
    protocols: Vec<(String, Vec<u8>)>,
    assignment: Vec<u8>,
    /// When the member's session ends unless it is heard from.
    session_deadline: i64,
    /// A JoinGroup waiting for the join phase to end.
    awaiting_join: Option<ReqId>,
    /// A SyncGroup waiting for the leader's assignment.
    awaiting_sync: Option<ReqId>,
    /// Joined in the current join phase and not yet answered (Kafka's `isNew`).
    is_new: bool,
    /// Order of joining: the earliest member still present leads.
    joined_seq: u64,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Vec<u8> {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
    fn same_protocols(&self, protocols: &[(String, Vec<u8>)]) -> bool {
        self.protocols == protocols
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Committed {
    /// The write that made it (0: replayed from the log). Writes complete in any order; a
    /// commit or removal takes effect in memory only over entries from earlier writes, so
    /// memory follows the log's order.
    write: WriteId,
    offset: i64,
    leader_epoch: i32,
    metadata: String,
    commit_timestamp: i64,
    expire_timestamp: Option<i64>,
}

#[derive(Debug, Clone)]
struct Group {
    id: String,
    state: GroupState,
    state_since: i64,
    generation: i32,
    protocol_type: Option<String>,
    protocol: Option<String>,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, until they join or their session ends.
    pending_members: BTreeMap<String, i64>,
    /// group.instance.id -> member id.
    static_members: BTreeMap<String, String>,
    offsets: BTreeMap<(String, i32), Committed>,
    /// When the join phase ends even if members are missing.
    join_deadline: Option<i64>,
    /// During the initial delay: how much longer the phase may be stretched.
    initial_delay_left: Option<i64>,
    /// When the sync phase ends for members that have not synced.
    sync_deadline: Option<i64>,
    /// The generation whose assignment is being written, if one is.
    assignment_in_flight: Option<i32>,
    /// Partitions with a commit being written (count of writes): offset expiry leaves them
    /// alone, so it cannot tombstone a commit about to be acknowledged.
    commits_in_flight: BTreeMap<(String, i32), u32>,
}

impl Group {
    fn new(id: &str, now: i64) -> Group {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            state_since: now,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            pending_members: BTreeMap::new(),
            static_members: BTreeMap::new(),
            offsets: BTreeMap::new(),
            join_deadline: None,
            initial_delay_left: None,
            sync_deadline: None,
            assignment_in_flight: None,
            commits_in_flight: BTreeMap::new(),
        }
    }

    fn transition(&mut self, state: GroupState, now: i64) {
        self.state = state;
        self.state_since = now;
    }

    fn is(&self, s: GroupState) -> bool {
        self.state == s
    }

    /// Whether every member supports one of `protocols` (an empty group supports all).
    fn supports(&self, protocol_type: &str, protocols: &[(String, Vec<u8>)]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols.iter().any(|(p, _)| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(q, _)| q == p))
            })
    }

    /// The protocol most members prefer among those all support; ties go to the leader's
    /// order of preference.
    fn select_protocol(&self) -> Option<String> {
        let common: Vec<&String> = match self.members.values().next() {
            Some(first) => first
                .protocols
                .iter()
                .map(|(p, _)| p)
                .filter(|p| {
                    self.members
                        .values()
                        .all(|m| m.protocols.iter().any(|(q, _)| q == *p))
                })
                .collect(),
            None => return None,
        };
        let mut votes: BTreeMap<&String, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some((p, _)) = m.protocols.iter().find(|(p, _)| common.contains(&p)) {
                *votes.entry(p).or_default() += 1;
            }
        }
        let leader_order: Vec<&String> = self
            .leader
            .as_ref()
            .and_then(|l| self.members.get(l))
            .or_else(|| self.members.values().min_by_key(|m| m.joined_seq))
            .map(|m| m.protocols.iter().map(|(p, _)| p).collect())
            .unwrap_or_default();
        let rank = |p: &String| {
            leader_order
                .iter()
                .position(|q| *q == p)
                .unwrap_or(usize::MAX)
        };
        votes
            .into_iter()
            .max_by(|(a, va), (b, vb)| va.cmp(vb).then(rank(b).cmp(&rank(a))))
            .map(|(p, _)| p.clone())
    }

    fn max_rebalance_timeout(&self) -> i64 {
        self.members
            .values()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0)
    }

    fn all_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(|m| m.awaiting_join.is_some())
    }

    fn metadata_value(&self, now: i64) -> GroupValue {
        let protocol = self.protocol.clone();
        GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: protocol.clone(),
            leader: self.leader.clone(),
            current_state_timestamp: now,
            members: self
                .members
                .values()
                .map(|m| MemberValue {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: protocol
                        .as_deref()
                        .map(|p| m.metadata_for(p))
                        .unwrap_or_default(),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// Whether any member subscribes to `topic` (consumer protocol only).
    fn subscribed_to(&self, topic: &str) -> bool {
        let Some(protocol) = self.protocol.as_deref() else {
            return false;
        };
        self.members.values().any(|m| {
            records::subscribed_topics(&m.metadata_for(protocol))
                .is_some_and(|ts| ts.iter().any(|t| t == topic))
        })
    }
}

/// What a write does once durable (or failed).
#[derive(Debug, Clone)]
enum Pending {
    Commit {
        req: ReqId,
        group: String,
        results: Vec<(String, i32, i16)>,
        offsets: Vec<((String, i32), Committed)>,
    },
    Assignment {
        group: String,
        generation: i32,
        assignments: BTreeMap<String, Vec<u8>>,
    },
    /// Group metadata whose durability nobody waits for (an emptied group).
    Metadata,
    /// A static member's new id, answered once durable.
    StaticRejoin {
        req: ReqId,
        result: JoinResult,
    },
    DeleteGroup {
        req: ReqId,
        group: String,
    },
    DeleteOffsets {
        req: ReqId,
        group: String,
        results: Vec<(String, i32, i16)>,
        removed: Vec<(String, i32)>,
    },
    Expire {
        group: String,
        removed: Vec<(String, i32)>,
        drop_group: bool,
    },
}

/// A DeleteGroups answer being gathered from one write per group.
#[derive(Debug, Clone)]
struct DeleteGather {
    results: Vec<(String, i16)>,
    outstanding: usize,
}

/// The group coordinator for the `__consumer_offsets` partitions this broker leads.
#[derive(Debug)]
pub struct Coordinator {
    config: Config,
    groups: BTreeMap<String, Group>,
    /// Partitions this coordinator serves, and whether each has finished loading.
    partitions: BTreeMap<i32, bool>,
    pending: BTreeMap<WriteId, Pending>,
    deletes: BTreeMap<ReqId, DeleteGather>,
    next_write: WriteId,
    next_join_seq: u64,
    last_retention_check: i64,
    /// Whether this broker may still be the partitions' leader as far as the controller is
    /// concerned (its session is known alive); when not, every request is NOT_COORDINATOR.
    serving: bool,
    out: Ready,
}

impl Coordinator {
    pub fn new(config: Config) -> Coordinator {
        Coordinator {
            config,
            groups: BTreeMap::new(),
            partitions: BTreeMap::new(),
            pending: BTreeMap::new(),
            deletes: BTreeMap::new(),
            next_write: 1,
            next_join_seq: 0,
            last_retention_check: i64::MIN,
            serving: true,
            out: Ready::default(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The `__consumer_offsets` partition of `group`.
    pub fn partition_for(&self, group: &str) -> i32 {
        partition_for(group, self.config.num_partitions)
    }

    /// Starts serving `partition`: its records are replayed next ([`Coordinator::replay`]),
    /// and until [`Coordinator::loaded`] its groups get COORDINATOR_LOAD_IN_PROGRESS.
    pub fn begin_load(&mut self, partition: i32) {
        self.partitions.insert(partition, false);
    }

    /// Ends the load of `partition`: its groups are served from now on. Members loaded with
    /// their group get a full session from `now`.
    pub fn loaded(&mut self, partition: i32, now: i64) {
        self.partitions.insert(partition, true);
        let n = self.config.num_partitions;
        for g in self.groups.values_mut() {
            if partition_for(&g.id, n) == partition {
                for m in g.members.values_mut() {
                    m.session_deadline = now + i64::from(m.session_timeout_ms);
                }
            }
        }
    }

    /// Replays one record of a partition being loaded, in log order.
    pub fn replay(
        &mut self,
        now: i64,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), records::RecordError> {
        match records::decode_key(key)? {
            records::Key::Offset {
                group,
                topic,
                partition,
            } => match value {
                Some(v) => {
                    let v = records::decode_offset_value(v)?;
                    let g = self
                        .groups
                        .entry(group.clone())
                        .or_insert_with(|| Group::new(&group, now));
                    g.offsets.insert(
                        (topic, partition),
                        Committed {
                            write: 0,
                            offset: v.offset,
                            leader_epoch: v.leader_epoch,
                            metadata: v.metadata,
                            commit_timestamp: v.commit_timestamp,
                            expire_timestamp: v.expire_timestamp,
                        },
                    );
                }
                None => {
                    if let Some(g) = self.groups.get_mut(&group) {
                        g.offsets.remove(&(topic, partition));
                    }
                }
            },
            records::Key::Group { group } => match value {
                Some(v) => {
                    let v = records::decode_group_value(v)?;
                    let mut g = self
                        .groups
                        .remove(&group)
                        .unwrap_or_else(|| Group::new(&group, now));
                    g.generation = v.generation;
                    g.protocol_type = Some(v.protocol_type).filter(|t| !t.is_empty());
                    g.protocol = v.protocol.clone();
                    g.leader = v.leader;
                    g.members.clear();
                    g.static_members.clear();
                    for m in v.members {
                        let seq = self.next_join_seq;
                        self.next_join_seq += 1;
                        if let Some(i) = &m.group_instance_id {
                            g.static_members.insert(i.clone(), m.member_id.clone());
                        }
                        let protocols = match &v.protocol {
                            Some(p) => vec![(p.clone(), m.subscription)],
                            None => Vec::new(),
                        };
                        g.members.insert(
                            m.member_id.clone(),
                            Member {
                                id: m.member_id,
                                instance_id: m.group_instance_id,
                                client_id: m.client_id,
                                client_host: m.client_host,
                                session_timeout_ms: m.session_timeout_ms,
                                rebalance_timeout_ms: m.rebalance_timeout_ms,
                                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                                protocols,
                                assignment: m.assignment,
                                session_deadline: now + i64::from(m.session_timeout_ms),
                                awaiting_join: None,
                                awaiting_sync: None,
                                is_new: false,
                                joined_seq: seq,
                            },
                        );
                    }
                    let state = if g.members.is_empty() {
                        GroupState::Empty
                    } else {
                        GroupState::Stable
                    };
                    let since = if v.current_state_timestamp >= 0 {
                        v.current_state_timestamp
                    } else {
                        now
                    };
                    g.transition(state, since);
                    self.groups.insert(group, g);
                }
                None => {
                    self.groups.remove(&group);
                }
            },
            records::Key::Other { .. } => {}
        }
        Ok(())
    }

    /// Whether `partition` is served (loaded or loading).
    pub fn has_partition(&self, partition: i32) -> bool {
        self.partitions.contains_key(&partition)
    }

    /// Whether `partition` has finished loading.
    pub fn is_loaded(&self, partition: i32) -> bool {
        self.partitions.get(&partition).copied().unwrap_or(false)
    }

    /// Partitions whose load began and has not finished (a load that failed part way, to be
    /// tried again).
    pub fn unloaded(&self) -> Vec<i32> {
        self.partitions
            .iter()
            .filter(|(_, loaded)| !**loaded)
            .map(|(p, _)| *p)
            .collect()
    }

    /// Gives up a load that could not read the whole partition: forgets what it replayed (a
    /// group served from part of its log would answer with offsets older than those it
    /// acknowledged), and keeps answering COORDINATOR_LOAD_IN_PROGRESS until a new load
    /// ([`Coordinator::begin_load`] again) succeeds.
    pub fn abort_load(&mut self, partition: i32) {
        let n = self.config.num_partitions;
        self.groups
            .retain(|id, _| partition_for(id, n) != partition);
        self.partitions.insert(partition, false);
    }

    /// Stops serving `partition` because its leadership moved to another broker: forgets its
    /// groups, whose requests get NOT_COORDINATOR from now on (clients look the coordinator up
    /// again). Writes in flight still answer as they complete.
    pub fn unload(&mut self, partition: i32) {
        let n = self.config.num_partitions;
        self.groups
            .retain(|id, _| partition_for(id, n) != partition);
        self.partitions.remove(&partition);
    }

    /// Whether anything is waiting in [`Coordinator::ready`].
    pub fn has_ready(&self) -> bool {
        !self.out.is_empty()
    }

    /// Takes what is to be written and answered.
    pub fn ready(&mut self) -> Ready {
        std::mem::take(&mut self.out)
    }

    /// The groups and their states (for the simulator's checker and tools).
    pub fn group_states(&self) -> Vec<(String, GroupState, i32)> {
        self.groups
            .values()
            .map(|g| (g.id.clone(), g.state, g.generation))
            .collect()
    }

    /// Every member of a group with the assignment it holds and the generation (for the
    /// simulator's checker).
    pub fn assignments(&self, group: &str) -> Vec<(String, Vec<u8>)> {
        self.groups
            .get(group)
            .map(|g| {
                g.members
                    .values()
                    .map(|m| (m.id.clone(), m.assignment.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn respond(&mut self, req: ReqId, r: Response) {
        self.out.responses.push((req, r));
    }

    fn write(&mut self, group: &str, records: Vec<(Vec<u8>, Option<Vec<u8>>)>, then: Pending) {
        let id = self.next_write;
        self.next_write += 1;
        let partition = self.partition_for(group);
        self.out.writes.push(Write {
            id,
            partition,
            records,
        });
        self.pending.insert(id, then);
    }

    /// Says whether this broker's controller session is known alive. While it is not, the
    /// controller may have fenced the broker and moved the partitions' leadership: answering
    /// from memory then would give out what another coordinator has since changed (seed 31631
    /// fetched offsets older than ones already committed elsewhere).
    pub fn set_serving(&mut self, serving: bool) {
        self.serving = serving;
    }

    /// The error for a request about `group` that this coordinator cannot serve now.
    fn unavailable(&self, group: &str) -> Option<i16> {
        if !self.serving {
            return Some(code(ResponseError::NotCoordinator));
        }
        match self.partitions.get(&self.partition_for(group)) {
            None => Some(code(ResponseError::NotCoordinator)),
            Some(false) => Some(code(ResponseError::CoordinatorLoadInProgress)),
            Some(true) => None,
        }
    }

    /// Handles one request at `now`.
    pub fn step(&mut self, now: i64, req: ReqId, request: Request) {
        match request {
            Request::Join {
                group,
                member_id,
                group_instance_id,
                client_id,
                client_host,
                session_timeout_ms,
                rebalance_timeout_ms,
                protocol_type,
                protocols,
                require_known_member_id,
                new_member_id,
            } => {
                let join = JoinArgs {
                    member_id,
                    instance_id: group_instance_id,
                    client_id,
                    client_host,
                    session_timeout_ms,
                    rebalance_timeout_ms: if rebalance_timeout_ms < 0 {
                        session_timeout_ms
                    } else {
                        rebalance_timeout_ms
                    },
                    protocol_type,
                    protocols,
                    require_known_member_id,
                    new_member_id,
                };
                self.join(now, req, &group, join);
            }
            Request::Sync {
                group,
                generation,
                member_id,
                group_instance_id,
                protocol_type,
                protocol_name,
                assignments,
            } => self.sync(
                now,
                req,
                &group,
                generation,
                &member_id,
                group_instance_id.as_deref(),
                (protocol_type, protocol_name),
                assignments,
            ),
            Request::Heartbeat {
                group,
                generation,
                member_id,
                group_instance_id,
            } => {
                let e = self.heartbeat(
                    now,
                    &group,
                    generation,
                    &member_id,
                    group_instance_id.as_deref(),
                );
                self.respond(req, Response::Heartbeat(e));
            }
            Request::Leave { group, members } => self.leave(now, req, &group, members),
            Request::Commit {
                group,
                generation,
                member_id,
                group_instance_id,
                retention_ms,
                offsets,
            } => self.commit(
                now,
                req,
                &group,
                generation,
                &member_id,
                group_instance_id.as_deref(),
                retention_ms,
                offsets,
            ),
            Request::FetchOffsets { group, partitions } => {
                let r = self.fetch_offsets(&group, partitions);
                self.respond(req, r);
            }
            Request::List { states, types } => {
                let r = self.list(&states, &types);
                self.respond(req, Response::List(r));
            }
            Request::Describe { groups } => {
                let r = groups.iter().map(|g| self.describe(g)).collect();
                self.respond(req, Response::Describe(r));
            }
            Request::Delete { groups } => self.delete_groups(req, groups),
            Request::DeleteOffsets { group, partitions } => {
                self.delete_offsets(req, &group, partitions)
            }
        }
    }

    // ---- JoinGroup ----

    fn join(&mut self, now: i64, req: ReqId, group_id: &str, j: JoinArgs) {
        let fail =
            |error: ResponseError, member_id: &str| join_error(code(error), member_id.to_string());
        if !valid_group_id(group_id, false) {
            return self.respond(req, fail(ResponseError::InvalidGroupId, &j.member_id));
        }
        if let Some(e) = self.unavailable(group_id) {
            let r = join_error(e, j.member_id.clone());
            return self.respond(req, r);
        }
        if j.session_timeout_ms < self.config.min_session_timeout_ms
            || j.session_timeout_ms > self.config.max_session_timeout_ms
        {
            return self.respond(
                req,
                fail(ResponseError::InvalidSessionTimeout, &j.member_id),
            );
        }
        if !j.member_id.is_empty() && !self.groups.contains_key(group_id) {
            return self.respond(req, fail(ResponseError::UnknownMemberId, &j.member_id));
        }
        let max_size = self.config.max_size;
        // Checked before the group exists, so a refused join leaves nothing behind.
        let supported = match self.groups.get(group_id) {
            Some(g) if g.is(GroupState::Dead) => {
                return self.respond(
                    req,
                    fail(ResponseError::CoordinatorNotAvailable, &j.member_id),
                );
            }
            Some(g) => g.supports(&j.protocol_type, &j.protocols),
            None => !j.protocol_type.is_empty() && !j.protocols.is_empty(),
        };
        if !supported {
            return self.respond(
                req,
                fail(ResponseError::InconsistentGroupProtocol, &j.member_id),
            );
        }
        self.groups
            .entry(group_id.to_string())
            .or_insert_with(|| Group::new(group_id, now));
        if j.member_id.is_empty() {
            self.join_unknown(now, req, group_id, j, max_size);
        } else {
            self.join_known(now, req, group_id, j);
        }
    }

    fn join_unknown(&mut self, now: i64, req: ReqId, group_id: &str, j: JoinArgs, max_size: usize) {
        let g = self.groups.get_mut(group_id).expect("group exists");
        // A static member coming back under a new id replaces its old one.
        if let Some(instance) = &j.instance_id
            && let Some(old_id) = g.static_members.get(instance).cloned()
            && let Some(mut old) = g.members.remove(&old_id)
        {
            let new_id = j.new_member_id.clone();
            let was_leader = g.leader.as_deref() == Some(old_id.as_str());
            if let Some(r) = old.awaiting_join.take() {
                self.out.responses.push((
                    r,
                    join_error(code(ResponseError::FencedInstanceId), old_id.clone()),
                ));
            }
            if let Some(r) = old.awaiting_sync.take() {
                self.out
                    .responses
                    .push((r, sync_error(code(ResponseError::FencedInstanceId))));
            }
            let unchanged = old.same_protocols(&j.protocols);
            old.id = new_id.clone();
            old.client_id = j.client_id.clone();
            old.client_host = j.client_host.clone();
            old.session_timeout_ms = j.session_timeout_ms;
            old.rebalance_timeout_ms = j.rebalance_timeout_ms;
            old.session_deadline = now + i64::from(j.session_timeout_ms);
            g.static_members.insert(instance.clone(), new_id.clone());
            if was_leader {
                g.leader = Some(new_id.clone());
            }
            if g.is(GroupState::Stable) && unchanged {
                // KIP-345: a static member's restart does not rebalance; it gets its old
                // assignment back through SyncGroup. As Kafka does, the answer names the
                // leader as it was (the old id if this member led), so a restarted leader does
                // not run an assignment a Stable group would not hand out, and it is sent once
                // the new member id is durable in the group's metadata.
                let old_leader = if was_leader {
                    old_id.clone()
                } else {
                    g.leader.clone().unwrap_or_default()
                };
                g.members.insert(new_id.clone(), old);
                let members = if was_leader {
                    Self::leader_members(g)
                } else {
                    Vec::new()
                };
                let result = JoinResult {
                    error: NONE,
                    generation: g.generation,
                    protocol_type: g.protocol_type.clone(),
                    protocol_name: g.protocol.clone(),
                    leader: old_leader,
                    member_id: new_id,
                    members,
                    skip_assignment: was_leader,
                };
                let value = records::group_value(&g.metadata_value(now));
                let key = records::group_key(group_id);
                self.write(
                    group_id,
                    vec![(key, Some(value))],
                    Pending::StaticRejoin { req, result },
                );
                return;
            }
            old.protocols = j.protocols;
            old.protocol_type = j.protocol_type;
            old.awaiting_join = Some(req);
            g.members.insert(new_id, old);
            self.prepare_rebalance(now, group_id);
            return self.check_join_complete(now, group_id);
        }
        let g = self.groups.get_mut(group_id).expect("group exists");
        if g.members.len() + g.pending_members.len() >= max_size {
            return self.respond(
                req,
                Response::Join(JoinResult {
                    error: code(ResponseError::GroupMaxSizeReached),
                    generation: -1,
                    ..JoinResult::default()
                }),
            );
        }
        let new_id = j.new_member_id.clone();
        if j.require_known_member_id && j.instance_id.is_none() {
            g.pending_members
                .insert(new_id.clone(), now + i64::from(j.session_timeout_ms));
            return self.respond(
                req,
                join_error(code(ResponseError::MemberIdRequired), new_id),
            );
        }
        self.add_member(now, req, group_id, new_id, j);
    }

    fn add_member(&mut self, now: i64, req: ReqId, group_id: &str, id: String, j: JoinArgs) {
        let seq = self.next_join_seq;
        self.next_join_seq += 1;
        let g = self.groups.get_mut(group_id).expect("group exists");
        g.pending_members.remove(&id);
        if g.members.is_empty() {
            g.protocol_type = Some(j.protocol_type.clone());
        }
        if let Some(i) = &j.instance_id {
            g.static_members.insert(i.clone(), id.clone());
        }
        g.members.insert(
            id.clone(),
            Member {
                id,
                instance_id: j.instance_id,
                client_id: j.client_id,
                client_host: j.client_host,
                session_timeout_ms: j.session_timeout_ms,
                rebalance_timeout_ms: j.rebalance_timeout_ms,
                protocol_type: j.protocol_type,
                protocols: j.protocols,
                assignment: Vec::new(),
                session_deadline: now + i64::from(j.session_timeout_ms),
                awaiting_join: Some(req),
                awaiting_sync: None,
                is_new: true,
                joined_seq: seq,
            },
        );
        if g.is(GroupState::PreparingRebalance) {
            // A new member during the initial delay stretches it, up to the rebalance timeout.
            if let (Some(left), Some(deadline)) = (g.initial_delay_left, g.join_deadline) {
                let delay = i64::from(self.config.initial_rebalance_delay_ms);
                if left > 0 {
                    let stretch = delay.min(left);
                    g.join_deadline = Some(deadline.max(now + stretch));
                    g.initial_delay_left = Some(left - stretch);
                }
            }
        } else {
            self.prepare_rebalance(now, group_id);
        }
        self.check_join_complete(now, group_id);
    }

    fn join_known(&mut self, now: i64, req: ReqId, group_id: &str, j: JoinArgs) {
        let g = self.groups.get_mut(group_id).expect("group exists");
        if g.pending_members.contains_key(&j.member_id) {
            let id = j.member_id.clone();
            return self.add_member(now, req, group_id, id, j);
        }
        let fenced = match (&j.instance_id, g.members.get(&j.member_id)) {
            (_, None) => Some(ResponseError::UnknownMemberId),
            (Some(i), Some(_)) if g.static_members.get(i) != Some(&j.member_id) => {
                Some(ResponseError::FencedInstanceId)
            }
            _ => None,
        };
        if let Some(e) = fenced {
            return self.respond(req, join_error(code(e), j.member_id));
        }
        let state = g.state;
        let is_leader = g.leader.as_deref() == Some(j.member_id.as_str());
        let m = g.members.get_mut(&j.member_id).expect("member exists");
        m.session_deadline = now + i64::from(j.session_timeout_ms);
        let unchanged = m.same_protocols(&j.protocols);
        match state {
            GroupState::PreparingRebalance => {
                if let Some(old) = m.awaiting_join.replace(req) {
                    // The member asked again; the older request is answered now.
                    self.out.responses.push((
                        old,
                        join_error(
                            code(ResponseError::RebalanceInProgress),
                            j.member_id.clone(),
                        ),
                    ));
                }
                update_member(m, &j);
                self.check_join_complete(now, group_id);
            }
            GroupState::CompletingRebalance | GroupState::Stable
                if unchanged && !(state == GroupState::Stable && is_leader) =>
            {
                // Nothing changed: the member lost our answer; send it again.
                let r = Self::join_answer(g, &j.member_id);
                self.respond(req, Response::Join(r));
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                update_member(m, &j);
                m.awaiting_join = Some(req);
                self.prepare_rebalance(now, group_id);
                self.check_join_complete(now, group_id);
            }
            GroupState::Empty | GroupState::Dead => self.respond(
                req,
                join_error(code(ResponseError::UnknownMemberId), j.member_id),
            ),
        }
    }

    /// What the leader's join answer lists: every member, in joining order, with its metadata
    /// for the chosen protocol.
    fn leader_members(g: &Group) -> Vec<(String, Option<String>, Vec<u8>)> {
        let protocol = g.protocol.clone().unwrap_or_default();
        let mut ms: Vec<&Member> = g.members.values().collect();
        ms.sort_by_key(|m| m.joined_seq);
        ms.into_iter()
            .map(|m| {
                (
                    m.id.clone(),
                    m.instance_id.clone(),
                    m.metadata_for(&protocol),
                )
            })
            .collect()
    }

    /// The join answer of the current generation for `member`.
    fn join_answer(g: &Group, member: &str) -> JoinResult {
        let leader = g.leader.clone().unwrap_or_default();
        let members = if leader == member {
            Self::leader_members(g)
        } else {
            Vec::new()
        };
        JoinResult {
            error: NONE,
            generation: g.generation,
            protocol_type: g.protocol_type.clone(),
            protocol_name: g.protocol.clone(),
            leader,
            member_id: member.to_string(),
            members,
            skip_assignment: false,
        }
    }

    /// Starts a join phase (from Empty, Stable or CompletingRebalance).
    fn prepare_rebalance(&mut self, now: i64, group_id: &str) {
        let delay = i64::from(self.config.initial_rebalance_delay_ms);
        let Some(g) = self.groups.get_mut(group_id) else {
            return;
        };
        if g.is(GroupState::PreparingRebalance) || g.is(GroupState::Dead) {
            return;
        }
        if g.is(GroupState::CompletingRebalance) {
            // The assignment being handed out is void: everyone rejoins.
            for m in g.members.values_mut() {
                m.assignment.clear();
                if let Some(r) = m.awaiting_sync.take() {
                    self.out
                        .responses
                        .push((r, sync_error(code(ResponseError::RebalanceInProgress))));
                }
            }
        }
        g.sync_deadline = None;
        let timeout = g.max_rebalance_timeout();
        if g.is(GroupState::Empty) {
            g.join_deadline = Some(now + delay.min(timeout.max(delay)));
            g.initial_delay_left = Some((timeout - delay).max(0));
        } else {
            g.join_deadline = Some(now + timeout);
            g.initial_delay_left = None;
        }
        g.transition(GroupState::PreparingRebalance, now);
    }

    /// Ends the join phase if every member has rejoined (and the initial delay is over).
    fn check_join_complete(&mut self, now: i64, group_id: &str) {
        let Some(g) = self.groups.get(group_id) else {
            return;
        };
        if !g.is(GroupState::PreparingRebalance) {
            return;
        }
        let delayed = g.initial_delay_left.is_some();
        let due = g.join_deadline.is_some_and(|d| now >= d);
        if due || (!delayed && g.all_joined()) {
            self.complete_join(now, group_id);
        }
    }

    fn complete_join(&mut self, now: i64, group_id: &str) {
        let Some(g) = self.groups.get_mut(group_id) else {
            return;
        };
        // Dynamic members that did not rejoin in time are gone; static ones stay until their
        // session ends (KIP-345), with the metadata they last joined with.
        let gone: Vec<String> = g
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none() && m.instance_id.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in gone {
            remove_member(g, &id, &mut self.out.responses);
        }
        g.pending_members.clear();
        g.join_deadline = None;
        g.initial_delay_left = None;
        g.generation += 1;
        if g.members.is_empty() {
            g.protocol = None;
            g.leader = None;
            g.transition(GroupState::Empty, now);
            let value = records::group_value(&g.metadata_value(now));
            let key = records::group_key(group_id);
            self.write(group_id, vec![(key, Some(value))], Pending::Metadata);
            return;
        }
        if g.leader.as_ref().is_none_or(|l| !g.members.contains_key(l)) {
            g.leader = g
                .members
                .values()
                .min_by_key(|m| m.joined_seq)
                .map(|m| m.id.clone());
        }
        g.protocol = g.select_protocol();
        g.transition(GroupState::CompletingRebalance, now);
        g.sync_deadline = Some(now + g.max_rebalance_timeout());
        let ids: Vec<String> = g.members.keys().cloned().collect();
        let mut answers = Vec::new();
        for id in ids {
            let answer = Self::join_answer(g, &id);
            let m = g.members.get_mut(&id).expect("member exists");
            m.is_new = false;
            if let Some(r) = m.awaiting_join.take() {
                m.session_deadline = now + i64::from(m.session_timeout_ms);
                answers.push((r, Response::Join(answer)));
            }
        }
        self.out.responses.extend(answers);
    }

    // ---- SyncGroup ----

    #[allow(clippy::too_many_arguments)]
    fn sync(
        &mut self,
        now: i64,
        req: ReqId,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        (protocol_type, protocol_name): (Option<String>, Option<String>),
        assignments: Vec<(String, Vec<u8>)>,
    ) {
        if !valid_group_id(group_id, false) {
            return self.respond(req, sync_error(code(ResponseError::InvalidGroupId)));
        }
        if let Some(e) = self.unavailable(group_id) {
            return self.respond(req, sync_error(e));
        }
        let Some(g) = self.groups.get_mut(group_id) else {
            return self.respond(req, sync_error(code(ResponseError::UnknownMemberId)));
        };
        if let Some(e) = validate_member(g, member_id, instance_id, generation) {
            return self.respond(req, sync_error(e));
        }
        if protocol_type
            .as_ref()
            .is_some_and(|t| Some(t) != g.protocol_type.as_ref())
            || protocol_name
                .as_ref()
                .is_some_and(|p| Some(p) != g.protocol.as_ref())
        {
            return self.respond(
                req,
                sync_error(code(ResponseError::InconsistentGroupProtocol)),
            );
        }
        match g.state {
            GroupState::Empty | GroupState::Dead => {
                self.respond(req, sync_error(code(ResponseError::UnknownMemberId)))
            }
            GroupState::PreparingRebalance => {
                self.respond(req, sync_error(code(ResponseError::RebalanceInProgress)))
            }
            GroupState::Stable => {
                let m = g.members.get_mut(member_id).expect("validated");
                m.session_deadline = now + i64::from(m.session_timeout_ms);
                let r = SyncResult {
                    error: NONE,
                    protocol_type: g.protocol_type.clone(),
                    protocol_name: g.protocol.clone(),
                    assignment: m.assignment.clone(),
                };
                self.respond(req, Response::Sync(r));
            }
            GroupState::CompletingRebalance => {
                let is_leader = g.leader.as_deref() == Some(member_id);
                let m = g.members.get_mut(member_id).expect("validated");
                m.session_deadline = now + i64::from(m.session_timeout_ms);
                if let Some(old) = m.awaiting_sync.replace(req) {
                    self.out
                        .responses
                        .push((old, sync_error(code(ResponseError::RebalanceInProgress))));
                }
                if is_leader && g.assignment_in_flight != Some(g.generation) {
                    // Members the leader left out get an empty assignment.
                    let mut given: BTreeMap<String, Vec<u8>> = g
                        .members
                        .keys()
                        .map(|id| (id.clone(), Vec::new()))
                        .collect();
                    for (id, a) in assignments {
                        if let Some(slot) = given.get_mut(&id) {
                            *slot = a;
                        }
                    }
                    let mut value = g.metadata_value(now);
                    for m in &mut value.members {
                        m.assignment = given.get(&m.member_id).cloned().unwrap_or_default();
                    }
                    g.assignment_in_flight = Some(g.generation);
                    let generation = g.generation;
                    let records = vec![(
                        records::group_key(group_id),
                        Some(records::group_value(&value)),
                    )];
                    self.write(
                        group_id,
                        records,
                        Pending::Assignment {
                            group: group_id.to_string(),
                            generation,
                            assignments: given,
                        },
                    );
                }
            }
        }
    }

    // ---- Heartbeat ----

    fn heartbeat(
        &mut self,
        now: i64,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> i16 {
        if !valid_group_id(group_id, false) {
            return code(ResponseError::InvalidGroupId);
        }
        if let Some(e) = self.unavailable(group_id) {
            return e;
        }
        let Some(g) = self.groups.get_mut(group_id) else {
            return code(ResponseError::UnknownMemberId);
        };
        if let Some(e) = validate_member(g, member_id, instance_id, generation) {
            return e;
        }
        let m = g.members.get_mut(member_id).expect("validated");
        m.session_deadline = now + i64::from(m.session_timeout_ms);
        match g.state {
            GroupState::Empty | GroupState::Dead => code(ResponseError::UnknownMemberId),
            GroupState::PreparingRebalance => code(ResponseError::RebalanceInProgress),
            GroupState::CompletingRebalance | GroupState::Stable => NONE,
        }
    }

    // ---- LeaveGroup ----

    fn leave(
        &mut self,
        now: i64,
        req: ReqId,
        group_id: &str,
        members: Vec<(String, Option<String>)>,
    ) {
        if !valid_group_id(group_id, false) {
            return self.respond(
                req,
                Response::Leave(code(ResponseError::InvalidGroupId), Vec::new()),
            );
        }
        if let Some(e) = self.unavailable(group_id) {
            return self.respond(req, Response::Leave(e, Vec::new()));
        }
        let Some(g) = self.groups.get_mut(group_id) else {
            let per = members
                .into_iter()
                .map(|(m, i)| (m, i, code(ResponseError::UnknownMemberId)))
                .collect();
            return self.respond(req, Response::Leave(NONE, per));
        };
        let mut results = Vec::new();
        let mut left = false;
        for (member_id, instance) in members {
            // A static member may leave by its instance id alone.
            let id = match (&instance, member_id.is_empty()) {
                (Some(i), true) => g.static_members.get(i).cloned().unwrap_or_default(),
                _ => member_id.clone(),
            };
            let error = if g.pending_members.remove(&id).is_some() {
                NONE
            } else if !g.members.contains_key(&id) {
                code(ResponseError::UnknownMemberId)
            } else if instance
                .as_ref()
                .is_some_and(|i| g.static_members.get(i) != Some(&id))
            {
                code(ResponseError::FencedInstanceId)
            } else {
                // Its waiting join or sync, if any, is answered UNKNOWN_MEMBER_ID.
                remove_member(g, &id, &mut self.out.responses);
                left = true;
                NONE
            };
            results.push((member_id, instance, error));
        }
        if left {
            self.members_changed(now, group_id);
        }
        self.respond(req, Response::Leave(NONE, results));
    }

    /// After members left or expired: rebalance, or end the join phase if the rest are in.
    fn members_changed(&mut self, now: i64, group_id: &str) {
        let Some(g) = self.groups.get(group_id) else {
            return;
        };
        match g.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                if g.members.is_empty() {
                    // Nobody is left to rejoin: the empty join phase ends at once.
                    self.prepare_rebalance(now, group_id);
                    self.complete_join(now, group_id);
                } else {
                    self.prepare_rebalance(now, group_id);
                }
            }
            GroupState::PreparingRebalance => {
                if g.members.is_empty() {
                    self.complete_join(now, group_id);
                } else {
                    self.check_join_complete(now, group_id);
                }
            }
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    // ---- OffsetCommit ----

    #[allow(clippy::too_many_arguments)]
    fn commit(
        &mut self,
        now: i64,
        req: ReqId,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        retention_ms: i64,
        offsets: Vec<CommitOffset>,
    ) {
        let all = |offsets: &[CommitOffset], e: i16| {
            Response::Commit(
                offsets
                    .iter()
                    .map(|o| (o.topic.clone(), o.partition, e))
                    .collect(),
            )
        };
        if !valid_group_id(group_id, true) {
            return self.respond(req, all(&offsets, code(ResponseError::InvalidGroupId)));
        }
        if let Some(e) = self.unavailable(group_id) {
            return self.respond(req, all(&offsets, e));
        }
        let group_error = match self.groups.get_mut(group_id) {
            None if generation < 0 => {
                // A commit outside group management (an admin tool, a simple consumer).
                self.groups
                    .insert(group_id.to_string(), Group::new(group_id, now));
                None
            }
            None => Some(code(ResponseError::IllegalGeneration)),
            Some(g) if g.is(GroupState::Dead) => Some(code(ResponseError::CoordinatorNotAvailable)),
            Some(g) if generation < 0 && g.is(GroupState::Empty) => None,
            Some(g) => match validate_member(g, member_id, instance_id, generation) {
                Some(e) => Some(e),
                None if g.is(GroupState::CompletingRebalance) => {
                    Some(code(ResponseError::RebalanceInProgress))
                }
                None => {
                    let m = g.members.get_mut(member_id).expect("validated");
                    m.session_deadline = now + i64::from(m.session_timeout_ms);
                    None
                }
            },
        };
        if let Some(e) = group_error {
            return self.respond(req, all(&offsets, e));
        }
        // The record's string holds at most 32767 bytes, whatever the setting.
        let max_md = self.config.offset_metadata_max_bytes.min(i16::MAX as usize);
        let expire = (retention_ms >= 0).then(|| now.saturating_add(retention_ms));
        let mut results = Vec::with_capacity(offsets.len());
        let mut records = Vec::new();
        let mut accepted = Vec::new();
        for o in offsets {
            let metadata = o.metadata.unwrap_or_default();
            let error = if o.error != NONE {
                o.error
            } else if metadata.len() > max_md {
                code(ResponseError::OffsetMetadataTooLarge)
            } else {
                NONE
            };
            results.push((o.topic.clone(), o.partition, error));
            if error != NONE {
                continue;
            }
            let c = Committed {
                write: 0,
                offset: o.offset,
                leader_epoch: o.leader_epoch,
                metadata,
                commit_timestamp: now,
                expire_timestamp: expire,
            };
            records.push((
                records::offset_key(group_id, &o.topic, o.partition),
                Some(records::offset_value(&OffsetValue {
                    offset: c.offset,
                    leader_epoch: c.leader_epoch,
                    metadata: c.metadata.clone(),
                    commit_timestamp: c.commit_timestamp,
                    expire_timestamp: c.expire_timestamp,
                })),
            ));
            accepted.push(((o.topic, o.partition), c));
        }
        if records.is_empty() {
            return self.respond(req, Response::Commit(results));
        }
        if let Some(g) = self.groups.get_mut(group_id) {
            for (k, _) in &accepted {
                *g.commits_in_flight.entry(k.clone()).or_default() += 1;
            }
        }
        self.write(
            group_id,
            records,
            Pending::Commit {
                req,
                group: group_id.to_string(),
                results,
                offsets: accepted,
            },
        );
    }

    // ---- OffsetFetch ----

    fn fetch_offsets(&self, group_id: &str, partitions: Option<Vec<(String, i32)>>) -> Response {
        if let Some(e) = self.unavailable(group_id) {
            return Response::FetchOffsets(e, Vec::new());
        }
        let g = self.groups.get(group_id);
        let fetched = |topic: &str, partition: i32, c: Option<&Committed>| match c {
            Some(c) => FetchedOffset {
                topic: topic.to_string(),
                partition,
                offset: c.offset,
                leader_epoch: c.leader_epoch,
                metadata: Some(c.metadata.clone()),
                error: NONE,
            },
            None => FetchedOffset {
                topic: topic.to_string(),
                partition,
                offset: -1,
                leader_epoch: -1,
                metadata: Some(String::new()),
                error: NONE,
            },
        };
        let offsets = match partitions {
            Some(ps) => ps
                .into_iter()
                .map(|(t, p)| {
                    let c = g.and_then(|g| g.offsets.get(&(t.clone(), p)));
                    fetched(&t, p, c)
                })
                .collect(),
            None => g
                .map(|g| {
                    g.offsets
                        .iter()
                        .map(|((t, p), c)| fetched(t, *p, Some(c)))
                        .collect()
                })
                .unwrap_or_default(),
        };
        Response::FetchOffsets(NONE, offsets)
    }

    // ---- ListGroups, DescribeGroups ----

    fn list(&self, states: &[String], types: &[String]) -> Vec<ListedGroup> {
        let served = |g: &Group| {
            self.partitions
                .get(&partition_for(&g.id, self.config.num_partitions))
                .copied()
                .unwrap_or(false)
        };
        self.groups
            .values()
            .filter(|g| served(g) && !g.is(GroupState::Dead))
            .filter(|g| {
                states.is_empty()
                    || states
                        .iter()
                        .any(|s| s.eq_ignore_ascii_case(g.state.name()))
            })
            .filter(|_| types.is_empty() || types.iter().any(|t| t.eq_ignore_ascii_case("classic")))
            .map(|g| ListedGroup {
                group: g.id.clone(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                state: g.state,
            })
            .collect()
    }

    fn describe(&self, group_id: &str) -> DescribedGroup {
        let mut d = DescribedGroup {
            error: NONE,
            group: group_id.to_string(),
            state: GroupState::Dead,
            protocol_type: String::new(),
            protocol: String::new(),
            members: Vec::new(),
        };
        if let Some(e) = self.unavailable(group_id) {
            d.error = e;
            return d;
        }
        let Some(g) = self.groups.get(group_id) else {
            return d;
        };
        d.state = g.state;
        d.protocol_type = g.protocol_type.clone().unwrap_or_default();
        let stable = g.is(GroupState::Stable);
        if stable {
            d.protocol = g.protocol.clone().unwrap_or_default();
        }
        let mut ms: Vec<&Member> = g.members.values().collect();
        ms.sort_by_key(|m| m.joined_seq);
        d.members = ms
            .into_iter()
            .map(|m| DescribedMember {
                member_id: m.id.clone(),
                group_instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                metadata: if stable {
                    m.metadata_for(g.protocol.as_deref().unwrap_or_default())
                } else {
                    Vec::new()
                },
                assignment: if stable {
                    m.assignment.clone()
                } else {
                    Vec::new()
                },
            })
            .collect();
        d
    }

    // ---- DeleteGroups, OffsetDelete ----

    fn delete_groups(&mut self, req: ReqId, groups: Vec<String>) {
        let mut results = Vec::with_capacity(groups.len());
        let mut doomed = Vec::new();
        for group in groups {
            let error = if !valid_group_id(&group, true) {
                code(ResponseError::InvalidGroupId)
            } else if let Some(e) = self.unavailable(&group) {
                e
            } else {
                match self.groups.get(&group) {
                    None => code(ResponseError::GroupIdNotFound),
                    Some(g) if g.is(GroupState::Dead) => code(ResponseError::GroupIdNotFound),
                    Some(g) if !g.members.is_empty() || !g.is(GroupState::Empty) => {
                        code(ResponseError::NonEmptyGroup)
                    }
                    Some(_) => NONE,
                }
            };
            if error == NONE && !doomed.contains(&group) {
                doomed.push(group.clone());
            }
            results.push((group, error));
        }
        if doomed.is_empty() {
            return self.respond(req, Response::Delete(results));
        }
        self.deletes.insert(
            req,
            DeleteGather {
                results,
                outstanding: doomed.len(),
            },
        );
        for group in doomed {
            let g = self.groups.get_mut(&group).expect("checked");
            // Dead from now on: nothing joins or commits while the tombstones are written.
            g.transition(GroupState::Dead, 0);
            // Offsets being committed too: their records are in the log before these.
            let keys: std::collections::BTreeSet<&(String, i32)> =
                g.offsets.keys().chain(g.commits_in_flight.keys()).collect();
            let mut records: Vec<(Vec<u8>, Option<Vec<u8>>)> = keys
                .into_iter()
                .map(|(t, p)| (records::offset_key(&group, t, *p), None))
                .collect();
            records.push((records::group_key(&group), None));
            self.write(
                &group,
                records,
                Pending::DeleteGroup {
                    req,
                    group: group.clone(),
                },
            );
        }
    }

    fn delete_offsets(&mut self, req: ReqId, group_id: &str, partitions: Vec<(String, i32)>) {
        if !valid_group_id(group_id, false) {
            return self.respond(
                req,
                Response::DeleteOffsets(code(ResponseError::InvalidGroupId), Vec::new()),
            );
        }
        if let Some(e) = self.unavailable(group_id) {
            return self.respond(req, Response::DeleteOffsets(e, Vec::new()));
        }
        let g = match self.groups.get(group_id) {
            Some(g) if !g.is(GroupState::Dead) => g,
            _ => {
                return self.respond(
                    req,
                    Response::DeleteOffsets(code(ResponseError::GroupIdNotFound), Vec::new()),
                );
            }
        };
        let consumer = g.protocol_type.as_deref() == Some("consumer");
        if !g.is(GroupState::Empty) && !consumer {
            return self.respond(
                req,
                Response::DeleteOffsets(code(ResponseError::NonEmptyGroup), Vec::new()),
            );
        }
        let mut results = Vec::new();
        let mut removed = Vec::new();
        let mut records = Vec::new();
        for (t, p) in partitions {
            let error = if !g.is(GroupState::Empty) && g.subscribed_to(&t) {
                code(ResponseError::GroupSubscribedToTopic)
            } else {
                NONE
            };
            if error == NONE && g.offsets.contains_key(&(t.clone(), p)) {
                records.push((records::offset_key(group_id, &t, p), None));
                removed.push((t.clone(), p));
            }
            results.push((t, p, error));
        }
        if records.is_empty() {
            return self.respond(req, Response::DeleteOffsets(NONE, results));
        }
        self.write(
            group_id,
            records,
            Pending::DeleteOffsets {
                req,
                group: group_id.to_string(),
                results,
                removed,
            },
        );
    }

    // ---- time ----

    /// Advances time to `now`: ends sessions, join and sync phases whose time is up, and
    /// expires offsets of empty groups past `offsets.retention.minutes`.
    pub fn tick(&mut self, now: i64) {
        let ids: Vec<String> = self.groups.keys().cloned().collect();
        for id in &ids {
            let Some(g) = self.groups.get_mut(id) else {
                continue;
            };
            if !self
                .partitions
                .get(&partition_for(id, self.config.num_partitions))
                .copied()
                .unwrap_or(false)
            {
                continue;
            }
            g.pending_members.retain(|_, deadline| *deadline > now);
            // Sessions: a member waiting in a join or sync phase is kept alive by it (a new
            // member only for a while: Kafka's 5-minute NewMemberJoinTimeout).
            let expired: Vec<String> = g
                .members
                .values()
                .filter(|m| {
                    let waiting = m.awaiting_sync.is_some()
                        || (m.awaiting_join.is_some()
                            && (!m.is_new || m.session_deadline + 300_000 > now));
                    !waiting && m.session_deadline <= now
                })
                .map(|m| m.id.clone())
                .collect();
            if !expired.is_empty() {
                for m in &expired {
                    remove_member(g, m, &mut self.out.responses);
                }
                self.members_changed(now, id);
            }
            let Some(g) = self.groups.get_mut(id) else {
                continue;
            };
            if g.is(GroupState::PreparingRebalance) {
                self.check_join_complete(now, id);
            } else if g.is(GroupState::CompletingRebalance)
                && g.assignment_in_flight != Some(g.generation)
                && g.sync_deadline.is_some_and(|d| now >= d)
            {
                // Members that never synced are gone; the rest rebalance.
                let unsynced: Vec<String> = g
                    .members
                    .values()
                    .filter(|m| m.awaiting_sync.is_none())
                    .map(|m| m.id.clone())
                    .collect();
                for m in &unsynced {
                    remove_member(g, m, &mut self.out.responses);
                }
                self.members_changed(now, id);
            }
        }
        if now.saturating_sub(self.last_retention_check)
            >= self.config.offsets_retention_check_interval_ms
        {
            self.last_retention_check = now;
            self.expire_offsets(now);
        }
    }

    fn expire_offsets(&mut self, now: i64) {
        let retention = self.config.offsets_retention_ms;
        let mut work = Vec::new();
        let mut silent = Vec::new();
        for g in self.groups.values() {
            if !g.is(GroupState::Empty) || g.assignment_in_flight.is_some() {
                continue;
            }
            let served = self
                .partitions
                .get(&partition_for(&g.id, self.config.num_partitions))
                .copied()
                .unwrap_or(false);
            if !served {
                continue;
            }
            // Kafka counts from when the group became empty; a group that never had members
            // counts from each commit.
            let base = |c: &Committed| {
                if g.protocol_type.is_some() {
                    g.state_since
                } else {
                    c.commit_timestamp
                }
            };
            let removed: Vec<(String, i32)> = g
                .offsets
                .iter()
                .filter(|(k, _)| !g.commits_in_flight.contains_key(*k))
                .filter(|(_, c)| {
                    c.expire_timestamp
                        .unwrap_or(base(c).saturating_add(retention))
                        <= now
                })
                .map(|(k, _)| k.clone())
                .collect();
            let drop_group = removed.len() == g.offsets.len()
                && g.members.is_empty()
                && g.commits_in_flight.is_empty();
            if removed.is_empty() && !drop_group {
                continue;
            }
            if removed.is_empty() && g.offsets.is_empty() && g.generation == 0 {
                // Never written to the log (no generation, no offsets): forgotten without a
                // tombstone, unless a member id handed out is still expected back.
                if g.pending_members.is_empty() && g.commits_in_flight.is_empty() {
                    silent.push(g.id.clone());
                }
                continue;
            }
            work.push((g.id.clone(), removed, drop_group));
        }
        for group in silent {
            self.groups.remove(&group);
        }
        for (group, removed, drop_group) in work {
            let mut records: Vec<(Vec<u8>, Option<Vec<u8>>)> = removed
                .iter()
                .map(|(t, p)| (records::offset_key(&group, t, *p), None))
                .collect();
            if drop_group {
                records.push((records::group_key(&group), None));
                if let Some(g) = self.groups.get_mut(&group) {
                    g.transition(GroupState::Dead, now);
                }
            }
            self.write(
                &group,
                records,
                Pending::Expire {
                    group: group.clone(),
                    removed,
                    drop_group,
                },
            );
        }
    }

    // ---- durability ----

    /// Reports the outcome of writes handed out by [`Coordinator::ready`]: Ok once durable,
    /// or the error code to answer with (the write's records may or may not be in the log).
    pub fn advance(&mut self, now: i64, results: Vec<(WriteId, Result<(), i16>)>) {
        for (id, result) in results {
            let Some(p) = self.pending.remove(&id) else {
                continue;
            };
            match p {
                Pending::Commit {
                    req,
                    group,
                    mut results,
                    offsets,
                } => {
                    if let Some(g) = self.groups.get_mut(&group) {
                        for (k, _) in &offsets {
                            if let Some(n) = g.commits_in_flight.get_mut(k) {
                                *n -= 1;
                                if *n == 0 {
                                    g.commits_in_flight.remove(k);
                                }
                            }
                        }
                    }
                    match result {
                        Ok(()) => {
                            if let Some(g) = self.groups.get_mut(&group) {
                                for (k, mut c) in offsets {
                                    c.write = id;
                                    // A later write to the same key completed first: it stays.
                                    if g.offsets.get(&k).is_none_or(|old| old.write < id) {
                                        g.offsets.insert(k, c);
                                    }
                                }
                            }
                        }
                        Err(e) => {
                            for r in results.iter_mut().filter(|r| r.2 == NONE) {
                                r.2 = e;
                            }
                        }
                    }
                    self.respond(req, Response::Commit(results));
                }
                Pending::Assignment {
                    group,
                    generation,
                    assignments,
                } => self.assignment_written(now, &group, generation, assignments, result),
                Pending::Metadata => {}
                Pending::StaticRejoin {
                    req,
                    result: mut answer,
                } => {
                    if let Err(e) = result {
                        answer = JoinResult {
                            error: e,
                            generation: -1,
                            member_id: answer.member_id,
                            ..JoinResult::default()
                        };
                    }
                    self.respond(req, Response::Join(answer));
                }
                Pending::DeleteGroup { req, group } => {
                    // Gone even if the tombstone's write was not confirmed: it may be
                    // committed, and a coordinator loading the log later would then drop the
                    // group unannounced (seed 31362 gave generation 1 twice so). Kafka's
                    // `cleanupGroupMetadata` also drops the group whatever the append does.
                    self.groups.remove(&group);
                    self.out.deleted.push(group.clone());
                    if let Some(gather) = self.deletes.get_mut(&req) {
                        if let Err(e) = result {
                            for r in gather.results.iter_mut().filter(|r| r.0 == group) {
                                r.1 = e;
                            }
                        }
                        gather.outstanding -= 1;
                        if gather.outstanding == 0 {
                            let done = self.deletes.remove(&req).expect("present");
                            self.respond(req, Response::Delete(done.results));
                        }
                    }
                }
                Pending::DeleteOffsets {
                    req,
                    group,
                    mut results,
                    removed,
                } => {
                    match result {
                        Ok(()) => {
                            if let Some(g) = self.groups.get_mut(&group) {
                                for k in removed {
                                    if g.offsets.get(&k).is_some_and(|old| old.write < id) {
                                        g.offsets.remove(&k);
                                    }
                                }
                            }
                        }
                        Err(e) => {
                            for r in results.iter_mut().filter(|r| r.2 == NONE) {
                                r.2 = e;
                            }
                        }
                    }
                    self.respond(req, Response::DeleteOffsets(NONE, results));
                }
                Pending::Expire {
                    group,
                    removed,
                    drop_group,
                } => {
                    // A group dropped stays dropped, as above; offsets kept on failure.
                    if result.is_err() && !drop_group {
                        continue;
                    }
                    if drop_group {
                        self.groups.remove(&group);
                        self.out.deleted.push(group);
                    } else if let Some(g) = self.groups.get_mut(&group) {
                        for k in removed {
                            if g.offsets.get(&k).is_some_and(|old| old.write < id) {
                                g.offsets.remove(&k);
                            }
                        }
                    }
                }
            }
        }
    }

    fn assignment_written(
        &mut self,
        now: i64,
        group: &str,
        generation: i32,
        assignments: BTreeMap<String, Vec<u8>>,
        result: Result<(), i16>,
    ) {
        let Some(g) = self.groups.get_mut(group) else {
            return;
        };
        if g.assignment_in_flight == Some(generation) {
            g.assignment_in_flight = None;
        }
        if g.generation != generation || !g.is(GroupState::CompletingRebalance) {
            // A rebalance began meanwhile; those waiting were answered by it.
            return;
        }
        let mut answers = Vec::new();
        match result {
            Ok(()) => {
                for m in g.members.values_mut() {
                    m.assignment = assignments.get(&m.id).cloned().unwrap_or_default();
                }
                g.sync_deadline = None;
                g.transition(GroupState::Stable, now);
                self.out.assigned.push(Assigned {
                    group: group.to_string(),
                    generation,
                    members: g
                        .members
                        .values()
                        .map(|m| (m.id.clone(), m.assignment.clone()))
                        .collect(),
                });
                for m in g.members.values_mut() {
                    if let Some(r) = m.awaiting_sync.take() {
                        answers.push((
                            r,
                            Response::Sync(SyncResult {
                                error: NONE,
                                protocol_type: g.protocol_type.clone(),
                                protocol_name: g.protocol.clone(),
                                assignment: m.assignment.clone(),
                            }),
                        ));
                    }
                }
            }
            Err(e) => {
                // As Kafka does: the members hear the error and rejoin.
                for m in g.members.values_mut() {
                    m.assignment.clear();
                    if let Some(r) = m.awaiting_sync.take() {
                        answers.push((r, sync_error(e)));
                    }
                }
                self.out.responses.extend(answers);
                return self.prepare_rebalance(now, group);
            }
        }
        self.out.responses.extend(answers);
    }

    /// Checks the coordinator's invariants (for tests and the simulator's state checker):
    /// every member of a Stable group holds an assignment decided in the current generation,
    /// a leader is a member, and no assignment-bearing state is outside its phase.
    pub fn check_invariants(&self) -> Result<(), String> {
        for g in self.groups.values() {
            if let Some(l) = &g.leader
                && !g.members.is_empty()
                && !g.members.contains_key(l)
                && g.is(GroupState::Stable)
            {
                return Err(format!("group {}: leader {l} is not a member", g.id));
            }
            if g.is(GroupState::Empty) && !g.members.is_empty() {
                return Err(format!(
                    "group {}: Empty with {} members",
                    g.id,
                    g.members.len()
                ));
            }
            for (instance, id) in &g.static_members {
                if !g.members.contains_key(id) {
                    return Err(format!(
                        "group {}: static member {instance} maps to unknown member {id}",
                        g.id
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A JoinGroup's member fields.
struct JoinArgs {
    member_id: String,
    instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout_ms: i32,
    rebalance_timeout_ms: i32,
    protocol_type: String,
    protocols: Vec<(String, Vec<u8>)>,
    require_known_member_id: bool,
    new_member_id: String,
}

fn update_member(m: &mut Member, j: &JoinArgs) {
    m.protocols = j.protocols.clone();
    m.protocol_type = j.protocol_type.clone();
    m.session_timeout_ms = j.session_timeout_ms;
    m.rebalance_timeout_ms = j.rebalance_timeout_ms;
    m.client_id = j.client_id.clone();
    m.client_host = j.client_host.clone();
}

/// Removes a member; a JoinGroup or SyncGroup it has waiting is answered UNKNOWN_MEMBER_ID.
fn remove_member(g: &mut Group, id: &str, out: &mut Vec<(ReqId, Response)>) {
    let Some(m) = g.members.remove(id) else {
        return;
    };
    if let Some(r) = m.awaiting_join {
        out.push((
            r,
            join_error(code(ResponseError::UnknownMemberId), id.to_string()),
        ));
    }
    if let Some(r) = m.awaiting_sync {
        out.push((r, sync_error(code(ResponseError::UnknownMemberId))));
    }
    if let Some(i) = m.instance_id
        && g.static_members.get(&i).map(String::as_str) == Some(id)
    {
        g.static_members.remove(&i);
    }
    if g.leader.as_deref() == Some(id) {
        g.leader = None;
    }
}

/// A JoinGroup answer that carries only an error.
fn join_error(error: i16, member_id: impl Into<String>) -> Response {
    Response::Join(JoinResult {
        error,
        generation: -1,
        member_id: member_id.into(),
        ..JoinResult::default()
    })
}

/// A SyncGroup answer that carries only an error.
fn sync_error(error: i16) -> Response {
    Response::Sync(SyncResult {
        error,
        ..SyncResult::default()
    })
}

/// Kafka's rule: every group API needs a group id, except that OffsetCommit, OffsetFetch,
/// DescribeGroups and DeleteGroups accept the empty one (`allow_empty`). runnel also refuses
/// an id longer than a record's string can hold.
fn valid_group_id(group: &str, allow_empty: bool) -> bool {
    (allow_empty || !group.is_empty()) && group.len() <= i16::MAX as usize
}

/// The error for a request naming `member_id` in `generation`, if it is not a member of it.
fn validate_member(
    g: &Group,
    member_id: &str,
    instance_id: Option<&str>,
    generation: i32,
) -> Option<i16> {
    if let Some(i) = instance_id
        && let Some(id) = g.static_members.get(i)
        && id != member_id
    {
        return Some(code(ResponseError::FencedInstanceId));
    }
    if !g.members.contains_key(member_id) {
        return Some(code(ResponseError::UnknownMemberId));
    }
    if generation != g.generation {
        return Some(code(ResponseError::IllegalGeneration));
    }
    None
}

#[cfg(test)]
mod tests;
