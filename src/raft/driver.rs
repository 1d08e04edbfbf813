//! The thin async shell that drives a [`RaftNode`] over the seam.
//!
//! One task ([`Quorum::run`]) ticks the core with the seam's clock, takes each [`Ready`],
//! makes its durable half durable through the [`RaftStore`], advances the core, and only then
//! lets its messages out: answers to requests that came in go back to the connection that is
//! waiting for them ([`Quorum::handle`]), requests to other members go out on per-peer lanes
//! (one for Fetch, one for the rest, so a fetch the leader holds never delays a vote), each a
//! Kafka connection to the peer's controller listener. Committed entries are handed to the
//! [`Apply`] in order, and proposals made here learn whether they were committed as proposed.
//!
//! Nothing here decides anything: elections, replication and the high watermark are the
//! core's; the driver only moves bytes and time.

use super::log::{Entry, EntryKind, Epoch, Offset, Snapshot};
use super::message::{Message, Outgoing};
use super::node::{Config, NotLeader, RaftNode, Ready, Role, StartError};
use super::store::{RaftStore, StoreError};
use super::{NodeId, wire};
use crate::client::ClientConfig;
use crate::client::connection::BrokerConnection;
use crate::env::Env;
use bytes::Bytes;
use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{Notify, mpsc, oneshot, watch};

/// Versions the quorum speaks to its peers (the versions `wire` fills in).
pub const VOTE_VERSION: i16 = 2;
/// BeginQuorumEpoch's.
pub const BEGIN_QUORUM_EPOCH_VERSION: i16 = 1;
/// EndQuorumEpoch's.
pub const END_QUORUM_EPOCH_VERSION: i16 = 1;
/// Fetch's, for `__cluster_metadata-0`.
pub const FETCH_VERSION: i16 = 18;
/// FetchSnapshot's.
pub const FETCH_SNAPSHOT_VERSION: i16 = 1;

/// Requests waiting per peer lane; older ones are dropped when it is full (the core resends).
const LANE_DEPTH: usize = 16;

/// The quorum's settings beyond the core's.
#[derive(Debug, Clone)]
pub struct QuorumConfig {
    /// The core's settings (node id, voters, timeouts).
    pub raft: Config,
    /// Each voter's controller listener, `host:port` (`controller.quorum.voters`).
    pub voter_addresses: BTreeMap<NodeId, String>,
    /// How often the core is ticked.
    pub tick_ms: u64,
    /// `metadata.log.max.record.bytes.between.snapshots` (20 MiB): a snapshot is taken once
    /// this many bytes of entries were applied since the last one.
    pub snapshot_max_bytes: u64,
    /// `metadata.log.max.snapshot.interval.ms` (one hour): a snapshot is taken this long
    /// after the last one if anything was applied since (0: never by time).
    pub snapshot_interval_ms: i64,
}

impl QuorumConfig {
    /// A quorum of one: `node_id` is its only voter and needs no controller listener.
    pub fn lone_voter(node_id: NodeId) -> QuorumConfig {
        QuorumConfig {
            raft: Config::new(node_id, [node_id]),
            voter_addresses: BTreeMap::new(),
            tick_ms: 10,
            snapshot_max_bytes: 20 << 20,
            snapshot_interval_ms: 3_600_000,
        }
    }
}

/// Takes committed entries, in log order, once each.
pub trait Apply: Send + Sync {
    /// Applies `entries` (committed, in order, following the ones applied before).
    fn apply(&self, entries: &[Entry]);
    /// Replaces the state with the one `snapshot` holds: every entry below its end offset
    /// applied (at start, or a snapshot fetched from the leader).
    fn restore(&self, snapshot: &Snapshot);
    /// The state as applied so far, serialised for a snapshot.
    fn snapshot(&self) -> Bytes;
}

/// A proposal did not make it into the log as proposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProposalError {
    /// This node does not lead (or no longer serves) the quorum.
    #[error("not the active controller (leader {leader_id:?}, epoch {epoch})")]
    NotLeader {
        leader_id: Option<NodeId>,
        epoch: Epoch,
    },
    /// Leadership was lost before the entry committed: it may or may not commit later.
    #[error("leadership was lost before the proposal committed")]
    Lost,
    /// The quorum stopped.
    #[error("the quorum is shut down")]
    Stopped,
}

impl From<NotLeader> for ProposalError {
    fn from(e: NotLeader) -> Self {
        ProposalError::NotLeader {
            leader_id: e.leader_id,
            epoch: e.epoch,
        }
    }
}

/// What the quorum looks like from this node, published after every Ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// The node's role.
    pub role: Role,
    /// Its epoch.
    pub epoch: Epoch,
    /// The leader it knows in that epoch.
    pub leader_id: Option<NodeId>,
    /// The high watermark it knows.
    pub high_watermark: Offset,
    /// Entries below it are applied.
    pub applied: Offset,
    /// The log end offset.
    pub log_end: Offset,
    /// This node leads and has applied its own epoch's first entry, so its applied state is
    /// the whole committed state and it may decide from it (Kafka: a new leader commits a
    /// record of its epoch before it serves).
    pub serving: bool,
    /// The quorum stopped on this node (shut down, or its storage failed).
    pub stopped: bool,
}

/// The four request kinds, to match answers to the requests waiting for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Vote,
    Begin,
    End,
    Fetch,
    FetchSnapshot,
}

fn request_kind(m: &Message) -> Option<Kind> {
    match m {
        Message::FetchSnapshot(_) => Some(Kind::FetchSnapshot),
        Message::Vote(_) => Some(Kind::Vote),
        Message::BeginQuorumEpoch(_) => Some(Kind::Begin),
        Message::EndQuorumEpoch(_) => Some(Kind::End),
        Message::Fetch(_) => Some(Kind::Fetch),
        _ => None,
    }
}

fn response_kind(m: &Message) -> Option<Kind> {
    match m {
        Message::FetchSnapshotResponse(_) => Some(Kind::FetchSnapshot),
        Message::VoteResponse(_) => Some(Kind::Vote),
        Message::BeginQuorumEpochResponse(_) => Some(Kind::Begin),
        Message::EndQuorumEpochResponse(_) => Some(Kind::End),
        Message::FetchResponse(_) => Some(Kind::Fetch),
        _ => None,
    }
}

/// A proposal waiting to learn its fate.
struct Waiter {
    epoch: Epoch,
    tx: oneshot::Sender<Result<(), ProposalError>>,
}

struct Inner {
    node: RaftNode,
    /// Requests from peers waiting for the core's answer, oldest first.
    inbound: BTreeMap<(NodeId, Kind), VecDeque<oneshot::Sender<Message>>>,
    /// Proposals by offset.
    waiters: BTreeMap<Offset, Waiter>,
    /// Entries below it are applied.
    applied: Offset,
    /// The epoch whose LeaderChange this node, as leader, has applied.
    serving_epoch: Option<Epoch>,
    stopped: bool,
    /// Payload bytes applied since the last snapshot, and when that was taken.
    applied_since_snapshot: u64,
    last_snapshot_ms: i64,
}

/// One peer's two lanes.
struct Peer {
    fetch: mpsc::Sender<Message>,
    other: mpsc::Sender<Message>,
}

/// A quorum member: the core, its storage and its connections.
pub struct Quorum {
    env: Env,
    config: QuorumConfig,
    store: RaftStore,
    inner: Mutex<Inner>,
    wake: Notify,
    status: watch::Sender<Status>,
    apply: Arc<dyn Apply>,
    /// Set once, by [`Quorum::start`]: the lanes to each other voter.
    peers: Mutex<BTreeMap<NodeId, Peer>>,
    /// The cluster id to stamp on requests, once known.
    cluster_id: Mutex<String>,
}

/// Why the quorum could not start.
#[derive(Debug, thiserror::Error)]
pub enum QuorumError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("the quorum: {0}")]
    Start(#[from] StartError),
}

impl Quorum {
    /// Reads the quorum's storage in `data_dir` and builds the core from it. Nothing runs
    /// until [`Quorum::start`].
    pub async fn open(
        env: &Env,
        data_dir: &Path,
        config: QuorumConfig,
        apply: Arc<dyn Apply>,
    ) -> Result<Arc<Quorum>, QuorumError> {
        let (store, persisted, snapshot, entries) = RaftStore::open(env, data_dir).await?;
        env.probe.event(crate::env::ProbeEvent::QuorumOpened {
            quorum: persisted,
            snapshot: snapshot.as_ref().map(|s| s.id),
            entries: &entries,
        });
        let seed = env.rng.next_u64();
        let node = RaftNode::new(
            config.raft.clone(),
            persisted,
            snapshot,
            entries,
            env.clock.now_ms(),
            seed,
        )?;
        let status = watch::Sender::new(status_of(&node, 0, false, false));
        let now = env.clock.now_ms();
        Ok(Arc::new(Quorum {
            env: env.clone(),
            config,
            store,
            inner: Mutex::new(Inner {
                node,
                inbound: BTreeMap::new(),
                waiters: BTreeMap::new(),
                applied: 0,
                serving_epoch: None,
                stopped: false,
                applied_since_snapshot: 0,
                last_snapshot_ms: now,
            }),
            wake: Notify::new(),
            status,
            apply,
            peers: Mutex::new(BTreeMap::new()),
            cluster_id: Mutex::new(String::new()),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.config.raft.node_id
    }

    /// The settings.
    pub fn config(&self) -> &QuorumConfig {
        &self.config
    }

    /// The latest status.
    pub fn status(&self) -> Status {
        *self.status.borrow()
    }

    /// The status with, on the leader, each replica's progress (for DescribeQuorum).
    pub fn describe(&self) -> (Status, Option<Vec<super::node::ReplicaProgress>>) {
        let inner = self.lock();
        (
            status_of(
                &inner.node,
                inner.applied,
                inner.serving_epoch == Some(inner.node.epoch()),
                inner.stopped,
            ),
            inner.node.replication(),
        )
    }

    /// Follows the status.
    pub fn subscribe(&self) -> watch::Receiver<Status> {
        self.status.subscribe()
    }

    /// The quorum's log (for status and the simulator's probe).
    pub fn store(&self) -> &RaftStore {
        &self.store
    }

    /// Sets the cluster id requests carry.
    pub fn set_cluster_id(&self, id: &str) {
        *self.cluster_id.lock().unwrap_or_else(|e| e.into_inner()) = id.to_string();
    }

    fn cluster_id(&self) -> String {
        self.cluster_id
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Starts the lanes to the other voters and the driving loop; returns the loop's task.
    /// It runs until [`Quorum::stop`].
    pub fn start(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = self.node_id();
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        for (&id, addr) in &self.config.voter_addresses {
            if id == me {
                continue;
            }
            let (fetch, fetch_rx) = mpsc::channel(LANE_DEPTH);
            let (other, other_rx) = mpsc::channel(LANE_DEPTH);
            tokio::spawn(self.clone().lane(id, addr.clone(), fetch_rx));
            tokio::spawn(self.clone().lane(id, addr.clone(), other_rx));
            peers.insert(id, Peer { fetch, other });
        }
        drop(peers);
        tokio::spawn(self.clone().run())
    }

    /// Proposes `payload` and waits until it is committed and applied, or known not to be
    /// (leadership lost, or `timeout_ms` passed: then it may still commit).
    pub async fn propose_and_wait(
        &self,
        payload: Bytes,
        timeout_ms: u64,
    ) -> Result<Offset, ProposalError> {
        let rx = {
            let mut inner = self.lock();
            if inner.stopped {
                return Err(ProposalError::Stopped);
            }
            let epoch = inner.node.epoch();
            if inner.serving_epoch != Some(epoch) {
                return Err(ProposalError::NotLeader {
                    leader_id: inner.node.leader_id(),
                    epoch,
                });
            }
            let offset = inner.node.propose(payload)?;
            let (tx, rx) = oneshot::channel();
            inner.waiters.insert(offset, Waiter { epoch, tx });
            (offset, rx)
        };
        self.wake.notify_one();
        let (offset, rx) = rx;
        match tokio::time::timeout(Duration::from_millis(timeout_ms), rx).await {
            Ok(Ok(Ok(()))) => Ok(offset),
            Ok(Ok(Err(e))) => Err(e),
            Ok(Err(_)) => Err(ProposalError::Stopped),
            Err(_) => Err(ProposalError::Lost),
        }
    }

    /// Takes in a request from a peer and waits for the core's answer (None if it gives none
    /// within the request timeout, or the quorum stops).
    pub async fn handle(&self, from: NodeId, request: Message) -> Option<Message> {
        let kind = request_kind(&request)?;
        let rx = {
            let mut inner = self.lock();
            if inner.stopped {
                return None;
            }
            let (tx, rx) = oneshot::channel();
            inner.inbound.entry((from, kind)).or_default().push_back(tx);
            inner.node.step(from, request);
            rx
        };
        self.wake.notify_one();
        let wait = Duration::from_millis(
            u64::try_from(self.config.raft.request_timeout_ms).unwrap_or(2000),
        );
        tokio::time::timeout(wait, rx).await.ok()?.ok()
    }

    /// Resigns leadership (telling the voters, so they elect a successor at once) and stops
    /// after at most `linger_ms`, long enough for EndQuorumEpoch to go out.
    pub async fn resign_and_stop(&self, linger_ms: u64) {
        self.lock().node.resign();
        self.wake.notify_one();
        tokio::time::sleep(Duration::from_millis(linger_ms)).await;
        self.stop();
    }

    /// Stops the loop; waiting proposals fail.
    pub fn stop(&self) {
        let mut inner = self.lock();
        inner.stopped = true;
        for (_, w) in std::mem::take(&mut inner.waiters) {
            let _ = w.tx.send(Err(ProposalError::Stopped));
        }
        inner.inbound.clear();
        let status = status_of(&inner.node, inner.applied, false, true);
        drop(inner);
        self.status.send_replace(status);
        self.wake.notify_one();
    }

    /// The driving loop.
    async fn run(self: Arc<Self>) {
        let tick = Duration::from_millis(self.config.tick_ms.max(1));
        loop {
            {
                let mut inner = self.lock();
                if inner.stopped {
                    break;
                }
                let now = self.env.clock.now_ms().max(inner.node.now_ms);
                inner.node.tick(now);
            }
            self.drain().await;
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(tick) => {}
            }
        }
        if let Err(e) = self.store.close().await {
            tracing::warn!(error = %e, "closing the quorum's log failed");
        }
    }

    /// Handles every Ready the core has. A Ready whose storage fails is retried (the log
    /// reopened if it went offline) until it is durable: the core waits for it meanwhile.
    async fn drain(&self) {
        loop {
            let ready = {
                let mut inner = self.lock();
                if inner.stopped || !inner.node.has_ready() {
                    return;
                }
                inner.node.ready()
            };
            let mut backoff = Duration::from_millis(50);
            while let Err(e) = self.store.persist(&ready).await {
                tracing::warn!(error = %e, "the quorum's storage failed; retrying");
                if self.lock().stopped {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                if let Err(e) = self.store.reopen_if_offline().await {
                    tracing::warn!(error = %e, "the quorum's log cannot be reopened yet");
                }
            }
            let Ready {
                number,
                messages,
                committed,
                quorum_state,
                truncate_to,
                entries,
                snapshot,
                log_start,
                reset_log,
                restore,
            } = ready;
            let outgoing = {
                let mut inner = self.lock();
                inner.node.advance(number);
                // Declared before any message of this Ready goes out: what a peer learns
                // from them was declared here first.
                self.env.probe.event(crate::env::ProbeEvent::QuorumReady {
                    persisted: quorum_state,
                    snapshot: snapshot.as_ref().map(|s| s.id),
                    log_start,
                    reset_log,
                    truncated_to: truncate_to,
                    appended: &entries,
                    leader: inner.node.role() == Role::Leader,
                    epoch: inner.node.epoch(),
                    high_watermark: inner.node.high_watermark(),
                });
                self.route(&mut inner, messages)
            };
            for o in outgoing {
                self.send(o);
            }
            if let Some(s) = &restore {
                self.apply.restore(s);
                let mut inner = self.lock();
                inner.applied = s.id.offset;
                inner.applied_since_snapshot = 0;
                inner.last_snapshot_ms = self.env.clock.now_ms();
            }
            self.apply_committed(committed);
            self.maybe_snapshot();
        }
    }

    /// Takes a snapshot of the applied state when enough was applied since the last one
    /// (`metadata.log.max.record.bytes.between.snapshots`) or it is old enough
    /// (`metadata.log.max.snapshot.interval.ms`); the core writes it with its next Ready and
    /// deletes the log below it.
    fn maybe_snapshot(&self) {
        let now = self.env.clock.now_ms();
        let mut inner = self.lock();
        let by_bytes = inner.applied_since_snapshot >= self.config.snapshot_max_bytes;
        let by_time = self.config.snapshot_interval_ms > 0
            && inner.applied_since_snapshot > 0
            && now - inner.last_snapshot_ms >= self.config.snapshot_interval_ms;
        if !(by_bytes || by_time) {
            return;
        }
        let offset = inner.applied;
        let data = self.apply.snapshot();
        match inner.node.snapshot(offset, data) {
            Ok(id) => {
                tracing::info!(
                    offset = id.offset,
                    epoch = id.epoch,
                    "took a metadata snapshot"
                );
                inner.applied_since_snapshot = 0;
                inner.last_snapshot_ms = now;
                drop(inner);
                self.wake.notify_one();
            }
            Err(e) => tracing::debug!(error = %e, "no metadata snapshot yet"),
        }
    }

    /// Answers go to the requests waiting for them; requests are returned for the lanes.
    fn route(&self, inner: &mut Inner, messages: Vec<Outgoing>) -> Vec<Outgoing> {
        let mut requests = Vec::new();
        for o in messages {
            if let Some(kind) = response_kind(&o.message) {
                // Requests whose handler gave up waiting take no answer: the oldest one
                // still waiting takes it.
                let waiting = inner.inbound.get_mut(&(o.to, kind));
                let open = waiting.and_then(|q| {
                    while q.front().is_some_and(oneshot::Sender::is_closed) {
                        q.pop_front();
                    }
                    q.pop_front()
                });
                match open {
                    Some(tx) => {
                        let _ = tx.send(o.message);
                    }
                    None => tracing::trace!(to = o.to, ?kind, "an answer nobody waits for"),
                }
            } else {
                requests.push(o);
            }
        }
        inner.inbound.retain(|_, q| {
            q.retain(|tx| !tx.is_closed());
            !q.is_empty()
        });
        requests
    }

    /// Queues a request on the peer's lane, dropping it if the lane is full.
    fn send(&self, o: Outgoing) {
        let peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        let Some(peer) = peers.get(&o.to) else {
            tracing::debug!(to = o.to, "a message to a node with no known address");
            return;
        };
        let lane = if matches!(o.message, Message::Fetch(_) | Message::FetchSnapshot(_)) {
            &peer.fetch
        } else {
            &peer.other
        };
        if lane.try_send(o.message).is_err() {
            tracing::debug!(to = o.to, "the lane is full; the core will resend");
        }
    }

    /// Applies committed entries, then tells their proposers.
    fn apply_committed(&self, committed: Vec<Entry>) {
        if !committed.is_empty() {
            self.apply.apply(&committed);
        }
        let mut inner = self.lock();
        let me = self.node_id();
        for e in &committed {
            inner.applied = e.offset + 1;
            inner.applied_since_snapshot += e.payload.len() as u64;
            if e.kind == (EntryKind::LeaderChange { leader_id: me })
                && e.epoch == inner.node.epoch()
                && inner.node.role() == Role::Leader
            {
                inner.serving_epoch = Some(e.epoch);
            }
            let fates: Vec<Offset> = inner.waiters.range(..=e.offset).map(|(o, _)| *o).collect();
            for o in fates {
                if let Some(w) = inner.waiters.remove(&o) {
                    let fate = if o == e.offset && w.epoch == e.epoch {
                        Ok(())
                    } else {
                        Err(ProposalError::Lost)
                    };
                    let _ = w.tx.send(fate);
                }
            }
        }
        if inner.node.role() != Role::Leader {
            inner.serving_epoch = None;
        }
        if inner.serving_epoch != Some(inner.node.epoch()) {
            for (_, w) in std::mem::take(&mut inner.waiters) {
                let _ = w.tx.send(Err(ProposalError::Lost));
            }
        }
        let status = status_of(
            &inner.node,
            inner.applied,
            inner.serving_epoch == Some(inner.node.epoch()),
            inner.stopped,
        );
        drop(inner);
        self.status.send_if_modified(|s| {
            if (s.role, s.epoch, s.leader_id) != (status.role, status.epoch, status.leader_id) {
                // Kafka's "Completed transition to ..." line.
                tracing::info!(
                    role = ?status.role,
                    epoch = status.epoch,
                    leader = ?status.leader_id,
                    high_watermark = status.high_watermark,
                    log_end = status.log_end,
                    "the metadata quorum changed state"
                );
            }
            let changed = *s != status;
            *s = status;
            changed
        });
    }

    /// One lane to peer `to`: sends its requests one at a time on a Kafka connection to the
    /// peer's controller listener and steps the core with each answer.
    async fn lane(self: Arc<Self>, to: NodeId, addr: String, mut rx: mpsc::Receiver<Message>) {
        let client = ClientConfig {
            client_id: format!("runnel-raft-{}", self.node_id()),
            request_timeout_ms: u64::try_from(self.config.raft.request_timeout_ms).unwrap_or(2000),
            connect_timeout_ms: u64::try_from(self.config.raft.request_timeout_ms).unwrap_or(2000),
            ..ClientConfig::default()
        };
        let mut conn: Option<BrokerConnection> = None;
        while let Some(message) = rx.recv().await {
            if self.lock().stopped {
                break;
            }
            if conn.as_ref().is_none_or(|c| !c.is_alive()) {
                conn = match BrokerConnection::open(&self.env, &addr, &client).await {
                    Ok(c) => Some(c),
                    Err(e) => {
                        tracing::debug!(peer = to, %addr, error = %e, "cannot reach a quorum peer");
                        tokio::time::sleep(Duration::from_millis(
                            u64::try_from(self.config.raft.retry_backoff_ms).unwrap_or(20),
                        ))
                        .await;
                        continue;
                    }
                };
            }
            let Some(c) = conn.as_ref() else { continue };
            tracing::trace!(peer = to, ?message, "quorum request");
            let cluster_id = self.cluster_id();
            let answer = exchange(c, &cluster_id, to, &message, &self.config).await;
            match answer {
                Ok(reply) => {
                    {
                        let mut inner = self.lock();
                        if inner.stopped {
                            break;
                        }
                        inner.node.step(to, reply);
                    }
                    self.wake.notify_one();
                }
                Err(e) => {
                    tracing::debug!(peer = to, error = %e, "a quorum request failed");
                    conn = None;
                }
            }
        }
    }
}

fn status_of(node: &RaftNode, applied: Offset, serving: bool, stopped: bool) -> Status {
    Status {
        role: node.role(),
        epoch: node.epoch(),
        leader_id: node.leader_id(),
        high_watermark: node.high_watermark(),
        applied,
        log_end: node.log().end_offset(),
        serving: serving && !stopped,
        stopped,
    }
}

/// Sends one request and converts its answer back into a core message.
async fn exchange(
    c: &BrokerConnection,
    cluster_id: &str,
    to: NodeId,
    message: &Message,
    config: &QuorumConfig,
) -> Result<Message, String> {
    let e = |e: crate::client::ClientError| e.to_string();
    let w = |e: wire::WireError| e.to_string();
    Ok(match message {
        Message::Vote(v) => {
            let req = wire::vote_request(cluster_id, to, v);
            let resp = c
                .start_at(&req, VOTE_VERSION)
                .await
                .map_err(e)?
                .wait()
                .await
                .map_err(e)?;
            Message::VoteResponse(wire::vote_from_response(&resp, v).map_err(w)?)
        }
        Message::BeginQuorumEpoch(b) => {
            let req = wire::begin_request(cluster_id, to, b);
            let resp = c
                .start_at(&req, BEGIN_QUORUM_EPOCH_VERSION)
                .await
                .map_err(e)?
                .wait()
                .await
                .map_err(e)?;
            Message::BeginQuorumEpochResponse(wire::begin_from_response(&resp).map_err(w)?)
        }
        Message::EndQuorumEpoch(x) => {
            let req = wire::end_request(cluster_id, x);
            let resp = c
                .start_at(&req, END_QUORUM_EPOCH_VERSION)
                .await
                .map_err(e)?
                .wait()
                .await
                .map_err(e)?;
            Message::EndQuorumEpochResponse(wire::end_from_response(&resp).map_err(w)?)
        }
        Message::Fetch(f) => {
            let wait = i32::try_from(config.raft.fetch_max_wait_ms).unwrap_or(500);
            let req = wire::fetch_request(cluster_id, f, wait);
            let resp = c
                .start_at(&req, FETCH_VERSION)
                .await
                .map_err(e)?
                .with_timeout(Duration::from_millis(
                    u64::try_from(config.raft.request_timeout_ms + config.raft.fetch_max_wait_ms)
                        .unwrap_or(2500),
                ))
                .wait()
                .await
                .map_err(e)?;
            Message::FetchResponse(wire::fetch_from_response(&resp, f).map_err(w)?)
        }
        Message::FetchSnapshot(f) => {
            let req = wire::fetch_snapshot_request(cluster_id, f);
            let resp = c
                .start_at(&req, FETCH_SNAPSHOT_VERSION)
                .await
                .map_err(e)?
                .wait()
                .await
                .map_err(e)?;
            Message::FetchSnapshotResponse(wire::fetch_snapshot_from_response(&resp, f).map_err(w)?)
        }
        other => return Err(format!("{other:?} is not a request")),
    })
}
