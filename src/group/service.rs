//! The async shell around the [`Coordinator`]: it feeds requests and time into the pure state
//! machine, appends what it asks to write to `__consumer_offsets`, asks the log to sync those
//! records (the coordinator owns that policy: a commit is answered only once durable), reports
//! the outcome back, and routes each answer to the request waiting for it.
//!
//! Appends happen while the coordinator's lock is held, in the order the coordinator emitted
//! them, so the log holds its writes in the order it applies them; only the syncs are awaited
//! outside the lock.

use super::coordinator::{Config, Coordinator, ReqId, Request, Response, Write, WriteId};
use super::records;
use crate::env::Env;
use crate::env::probe::{CommitWritten, ProbeEvent};
use crate::log::{LogManager, PartitionLog, TopicPartition};
use crate::record::batch::{self, NewRecord, ProducerFields};
use kafka_protocol::error::ResponseError;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// Kafka's internal topic of group metadata and committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// The leader epoch stamped on the coordinator's batches when no replication tells it one.
const LEADER_EPOCH: i32 = 0;

/// What replication tells the coordinator about a `__consumer_offsets` partition it leads:
/// the leader epoch to stamp on its batches, and when the in-sync replicas hold what it wrote.
/// A commit is answered only then, as Kafka answers one once `acks=all` would be (with
/// replicas, a commit the leader alone holds would be lost with it).
pub trait OffsetsReplication: Send + Sync {
    /// The partition's leader epoch if this broker leads it.
    fn leader_epoch(&self, partition: i32) -> Option<i32>;
    /// Waits until the partition's high watermark reaches `upto` (at once for a partition
    /// without followers): NOT_LEADER_OR_FOLLOWER if leadership moves first, REQUEST_TIMED_OUT
    /// after `offsets.commit.timeout.ms`.
    fn replicated(
        self: Arc<Self>,
        partition: i32,
        upto: i64,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), ResponseError>> + Send>>;
    /// Whether this broker may still lead as far as the controller is concerned: its last
    /// acknowledged heartbeat was sent less than a session timeout ago, so the controller
    /// cannot have fenced it and moved its leaderships yet.
    fn may_serve(&self) -> bool {
        true
    }
}

/// The group coordinator of one broker.
pub struct GroupService {
    core: Mutex<Coordinator>,
    waiters: Mutex<BTreeMap<ReqId, oneshot::Sender<Response>>>,
    next_req: AtomicU64,
    env: Env,
    logs: Arc<LogManager>,
    /// The broker's replication (a weak reference: the broker owns this service).
    replication: std::sync::OnceLock<std::sync::Weak<dyn OffsetsReplication>>,
}

/// A request stepped through the coordinator, its answer still to come.
pub struct Call {
    rx: oneshot::Receiver<Response>,
    appended: Vec<Appended>,
}

/// A write appended to the log, waiting for its sync.
struct Appended {
    id: WriteId,
    partition: i32,
    outcome: Result<(Arc<PartitionLog>, i64), i16>,
}

impl GroupService {
    pub fn new(env: Env, logs: Arc<LogManager>, config: Config) -> GroupService {
        GroupService {
            core: Mutex::new(Coordinator::new(config)),
            waiters: Mutex::new(BTreeMap::new()),
            next_req: AtomicU64::new(1),
            env,
            logs,
            replication: std::sync::OnceLock::new(),
        }
    }

    /// Connects the broker's replication (once, when the broker is built).
    pub fn set_replication(&self, replication: std::sync::Weak<dyn OffsetsReplication>) {
        let _ = self.replication.set(replication);
    }

    fn replication(&self) -> Option<Arc<dyn OffsetsReplication>> {
        self.replication.get().and_then(std::sync::Weak::upgrade)
    }

    fn core(&self) -> std::sync::MutexGuard<'_, Coordinator> {
        // A panic while the lock was held leaves the state as the panic found it; the
        // coordinator has no invariant that a half-done step breaks worse than the panic did.
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The `__consumer_offsets` partition count.
    pub fn num_partitions(&self) -> i32 {
        self.core().config().num_partitions
    }

    /// The `__consumer_offsets` partition of `group`.
    pub fn partition_for(&self, group: &str) -> i32 {
        self.core().partition_for(group)
    }

    /// Whether `partition` has been loaded (or is loading).
    pub fn serves(&self, partition: i32) -> bool {
        self.core().has_partition(partition)
    }

    /// Loads a `__consumer_offsets` partition: replays its records up to its visible end
    /// (what is durable), then serves its groups. A record that does not decode is logged and
    /// skipped, as Kafka does. If the log cannot be read to its end (an I/O error, a damaged
    /// batch below the durable end), nothing of it is served: its groups get
    /// COORDINATOR_LOAD_IN_PROGRESS and the load is tried again by the ticks, since serving
    /// part of the log would answer with offsets older than those acknowledged.
    pub fn load(&self, partition: i32) {
        let tp = TopicPartition::new(OFFSETS_TOPIC, partition);
        let Some(log) = self.logs.get(&tp) else {
            return;
        };
        let mut core = self.core();
        if core.is_loaded(partition) {
            return;
        }
        core.begin_load(partition);
        let now = self.env.clock.now_ms();
        // To the log end, as Kafka's loader reads: this broker leads the partition, so its log
        // is the one the followers copy. (Its visible end may still be far below: a leader
        // that just started knows no high watermark yet, and one that was a follower knows
        // its leader's from one fetch ago.)
        let end = log.log_end_offset();
        let mut offset = log.log_start_offset();
        let mut replayed = 0usize;
        while offset < end {
            let read = match log.read(offset, 1 << 20, end, true) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(partition = %tp, offset, error = %e, "cannot read the group log; its groups wait for the next attempt");
                    core.abort_load(partition);
                    return;
                }
            };
            if read.records.is_empty() {
                // Nothing more to read below the end (Kafka's loader stops here too).
                break;
            }
            let mut pos = 0;
            let before = offset;
            while pos < read.records.len() {
                let header = match batch::check_integrity(&read.records[pos..]) {
                    Ok(h) => h,
                    Err(e) => {
                        tracing::error!(partition = %tp, offset, error = %e, "a damaged batch in the group log; its groups wait for the next attempt");
                        core.abort_load(partition);
                        return;
                    }
                };
                let len = header.total_len();
                let bytes = &read.records[pos..pos + len];
                pos += len;
                offset = header.next_offset();
                if header.is_control() {
                    continue;
                }
                let body = match batch::records_body(&header, bytes) {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::warn!(partition = %tp, base = header.base_offset, error = %e, "skipping a group-log batch that does not decode");
                        continue;
                    }
                };
                for rec in batch::RecordIter::new(&header, &body) {
                    let rec = match rec {
                        Ok(r) => r,
                        Err(e) => {
                            tracing::warn!(partition = %tp, base = header.base_offset, error = %e, "skipping the rest of a malformed group-log batch");
                            break;
                        }
                    };
                    let Some(key) = rec.key else {
                        continue;
                    };
                    if let Err(e) = core.replay(now, key, rec.value) {
                        tracing::warn!(partition = %tp, base = header.base_offset, error = %e, "skipping a group-log record");
                    } else {
                        replayed += 1;
                    }
                }
            }
            if offset <= before {
                tracing::error!(partition = %tp, offset, "the group log does not advance; its groups wait for the next attempt");
                core.abort_load(partition);
                return;
            }
        }
        core.loaded(partition, now);
        if replayed > 0 {
            tracing::info!(partition = %tp, records = replayed, "loaded group metadata and offsets");
        }
    }

    /// Stops serving a `__consumer_offsets` partition whose leadership moved away.
    pub fn unload(&self, partition: i32) {
        let mut core = self.core();
        if core.has_partition(partition) {
            core.unload(partition);
            tracing::info!(
                partition,
                "no longer the group coordinator of this partition"
            );
        }
    }

    /// Steps `request` through the coordinator now (so requests from one connection are
    /// applied in the order they arrived) and appends what it writes; the answer is awaited
    /// with [`GroupService::complete`].
    pub fn submit(&self, request: Request) -> Call {
        let id = self.next_req.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.waiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, tx);
        let serving = self.replication().is_none_or(|r| r.may_serve());
        let appended = {
            let mut core = self.core();
            core.set_serving(serving);
            core.step(self.env.clock.now_ms(), id, request);
            self.drain(&mut core)
        };
        Call { rx, appended }
    }

    /// Makes a submitted request's writes durable and waits for its answer.
    pub async fn complete(&self, call: Call) -> Response {
        self.finish(call.appended).await;
        match call.rx.await {
            Ok(r) => r,
            // The coordinator dropped the request (it cannot: every request is answered);
            // the client retries on this.
            Err(_) => Response::Heartbeat(ResponseError::CoordinatorNotAvailable.code()),
        }
    }

    /// Sends `request` through the coordinator and waits for its answer.
    pub async fn call(&self, request: Request) -> Response {
        let call = self.submit(request);
        self.complete(call).await
    }

    /// Advances the coordinator's time: sessions, join and sync phases, offset expiry; and
    /// tries again the loads that failed.
    pub async fn tick(&self) {
        let unloaded = self.core().unloaded();
        for p in unloaded {
            self.load(p);
        }
        // A broker whose leadership may have moved neither expires members nor writes.
        if self.replication().is_some_and(|r| !r.may_serve()) {
            self.core().set_serving(false);
            return;
        }
        let appended = {
            let mut core = self.core();
            core.set_serving(true);
            core.tick(self.env.clock.now_ms());
            self.drain(&mut core)
        };
        self.finish(appended).await;
    }

    /// Runs [`GroupService::tick`] every `interval_ms` until the task is dropped.
    pub async fn run_ticks(self: Arc<Self>, interval_ms: u64) {
        let mut every = tokio::time::interval(std::time::Duration::from_millis(interval_ms.max(1)));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            self.tick().await;
        }
    }

    /// Takes the coordinator's output: appends its writes (under the lock, in order) and
    /// delivers its answers.
    fn drain(&self, core: &mut Coordinator) -> Vec<Appended> {
        let ready = core.ready();
        self.deliver(ready.responses);
        if self.env.probe.observing() {
            for a in &ready.assigned {
                let members: Vec<(String, Vec<(String, i32)>)> = a
                    .members
                    .iter()
                    .map(|(id, bytes)| {
                        let parts = records::assigned_partitions(bytes)
                            .unwrap_or_default()
                            .into_iter()
                            .flat_map(|(t, ps)| ps.into_iter().map(move |p| (t.clone(), p)))
                            .collect();
                        (id.clone(), parts)
                    })
                    .collect();
                self.env.probe.event(ProbeEvent::GroupAssigned {
                    group: &a.group,
                    generation: a.generation,
                    members: &members,
                });
            }
            for group in &ready.deleted {
                self.env.probe.event(ProbeEvent::GroupDeleted { group });
            }
        }
        ready.writes.into_iter().map(|w| self.append(w)).collect()
    }

    fn deliver(&self, responses: Vec<(ReqId, Response)>) {
        if responses.is_empty() {
            return;
        }
        let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        for (id, r) in responses {
            if let Some(tx) = waiters.remove(&id) {
                let _ = tx.send(r);
            }
        }
    }

    fn append(&self, w: Write) -> Appended {
        let tp = TopicPartition::new(OFFSETS_TOPIC, w.partition);
        let Some(log) = self.logs.get(&tp) else {
            return Appended {
                id: w.id,
                partition: w.partition,
                outcome: Err(ResponseError::NotCoordinator.code()),
            };
        };
        let now = self.env.clock.now_ms();
        let records: Vec<NewRecord> = w
            .records
            .into_iter()
            .map(|(key, value)| NewRecord {
                timestamp: now,
                key: Some(key),
                value,
                headers: Vec::new(),
            })
            .collect();
        if records.is_empty() {
            return Appended {
                id: w.id,
                partition: w.partition,
                outcome: Err(ResponseError::UnknownServerError.code()),
            };
        }
        let mut buf = batch::encode_batch(&records, ProducerFields::NONE);
        // The partition's leader epoch, as every leader stamps its batches, so followers'
        // epoch caches tell where their logs diverge after a coordinator failover.
        let epoch = self
            .replication()
            .and_then(|r| r.leader_epoch(w.partition))
            .map_or_else(
                || log.sole_leader_epoch(LEADER_EPOCH),
                |e| log.sole_leader_epoch(e),
            );
        let outcome = match log.append(&mut buf, epoch) {
            Ok(info) => {
                crate::broker::sync_soon(&log);
                if self.env.probe.observing() {
                    self.declare_commits(&log, &records, info.last_offset + 1);
                }
                Ok((log, info.last_offset + 1))
            }
            Err(e) => {
                tracing::warn!(partition = %tp, error = %e, "a group-log append failed");
                // Kafka maps a failed append of the group log to these codes for the client.
                let code = match e {
                    crate::log::AppendError::InvalidBatch(_) => {
                        ResponseError::InvalidCommitOffsetSize.code()
                    }
                    _ => ResponseError::CoordinatorNotAvailable.code(),
                };
                Err(code)
            }
        };
        Appended {
            id: w.id,
            partition: w.partition,
            outcome,
        }
    }

    /// Tells the probe which offset commits a batch ending before `end` holds.
    fn declare_commits(&self, log: &PartitionLog, written: &[NewRecord], end: i64) {
        let commits: Vec<CommitWritten> = written
            .iter()
            .filter_map(|r| {
                let key = records::decode_key(r.key.as_deref()?).ok()?;
                let records::Key::Offset {
                    group,
                    topic,
                    partition,
                } = key
                else {
                    return None;
                };
                let value = records::decode_offset_value(r.value.as_deref()?).ok()?;
                Some(CommitWritten {
                    group,
                    topic,
                    partition,
                    offset: value.offset,
                })
            })
            .collect();
        if !commits.is_empty() {
            self.env.probe.event(ProbeEvent::OffsetsAppended {
                dir: log.dir(),
                end,
                commits: &commits,
            });
        }
    }

    /// Waits for the appended writes to be durable, reports them, and repeats for whatever
    /// the coordinator writes in turn.
    async fn finish(&self, mut appended: Vec<Appended>) {
        while !appended.is_empty() {
            let mut results = Vec::with_capacity(appended.len());
            for a in appended {
                let r = match a.outcome {
                    // The planted bug answers without syncing.
                    Ok((log, _)) if log.planted_bugs().commit_before_sync => Ok(()),
                    Ok((log, upto)) => match log.sync_to(upto).await {
                        Ok(()) => self.replicated(a.partition, upto).await,
                        Err(e) => {
                            tracing::warn!(error = %e, "a group-log sync failed");
                            Err(ResponseError::CoordinatorNotAvailable.code())
                        }
                    },
                    Err(code) => Err(code),
                };
                results.push((a.id, r));
            }
            appended = {
                let mut core = self.core();
                core.advance(self.env.clock.now_ms(), results);
                self.drain(&mut core)
            };
        }
    }

    /// Waits until the in-sync replicas of the partition hold its log below `upto`, with the
    /// codes Kafka's coordinator answers when they do not: NOT_COORDINATOR if leadership
    /// moved, COORDINATOR_NOT_AVAILABLE otherwise (both retried by clients).
    async fn replicated(&self, partition: i32, upto: i64) -> Result<(), i16> {
        let Some(replication) = self.replication() else {
            return Ok(());
        };
        match replication.replicated(partition, upto).await {
            Ok(()) => Ok(()),
            Err(ResponseError::NotLeaderOrFollower) => Err(ResponseError::NotCoordinator.code()),
            Err(e) => {
                tracing::debug!(partition, upto, error = ?e, "a group-log write was not replicated");
                Err(ResponseError::CoordinatorNotAvailable.code())
            }
        }
    }

    /// Checks the coordinator's invariants.
    pub fn check_invariants(&self) -> Result<(), String> {
        self.core().check_invariants()
    }
}
