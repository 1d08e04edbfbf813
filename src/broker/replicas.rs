//! The broker's shell around replication ([`crate::replication`]): for each partition with
//! followers that this broker leads, a [`LedPartition`] drives the pure
//! [`PartitionLeader`] (its high watermark into the log, its ISR changes to the controller);
//! for each broker this one follows, a fetcher task pulls the partitions it follows from it
//! with Kafka's Fetch, as a replica (KIP-101 truncation by diverging epoch, never to the high
//! watermark alone).
//!
//! Durable by default: unless `write.caching` is on, a follower tells the leader its synced
//! end with each fetch (in runnel's tagged field, while it syncs what the last fetch brought;
//! or, with a Fetch version without tagged fields, by syncing before it fetches, so that its
//! fetch offset is its synced end), and the leader's high watermark is the least synced end
//! over the in-sync replicas.
//!
//! A partition's only replica is led here too, with an ISR of itself: its high watermark is
//! its own synced end (its log end with write caching).

use super::Broker;
use super::controller::{IsrState, Lifecycle, send_alter_partition};
use crate::client::ClientConfig;
use crate::client::connection::BrokerConnection;
use crate::cluster::controller::{AlterPartition, IsrMember};
use crate::env::probe::ProbeEvent;
use crate::log::{PartitionLog, TopicPartition};
use crate::replication::follower;
use crate::replication::leader::{Event, IsrAnswer, LeaderConfig, PartitionLeader, PartitionView};
use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, ReplicaState};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

/// The partitions this broker leads with followers, and its fetchers.
#[derive(Default)]
pub struct Replicas {
    led: Mutex<BTreeMap<TopicPartition, Arc<LedPartition>>>,
    fetchers: Mutex<BTreeMap<i32, JoinHandle<()>>>,
    /// The partitions a fetcher is applying a leader's answer to (an append, a truncation it
    /// awaits). This broker does not begin leading one of them until the answer is applied:
    /// its epoch starts at its log end, which the answer may still move (Kafka removes a
    /// partition from its fetcher under the partition lock before it becomes leader).
    applying: Mutex<BTreeSet<TopicPartition>>,
}

/// A partition this broker leads, with followers, in one leader epoch.
pub struct LedPartition {
    /// The partition.
    pub tp: TopicPartition,
    /// Its topic's id.
    pub topic_id: uuid::Uuid,
    /// The leader epoch it is led in.
    pub leader_epoch: i32,
    /// Its log.
    pub log: Arc<PartitionLog>,
    state: Mutex<PartitionLeader>,
    /// Wakes the partition's task (an ISR change to send).
    wake: Notify,
    /// Set once this broker no longer leads the partition in this epoch (under `state`'s
    /// lock, so no high watermark of this leadership reaches the log after it).
    resigned: watch::Sender<bool>,
    /// The high watermark this leadership published. acks=all waits on it, not on the log's:
    /// once this broker resigns, the log's comes from the leader it follows and says nothing
    /// of this epoch's appends.
    published: watch::Sender<i64>,
    task: Mutex<Option<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl LedPartition {
    /// Whether this broker still leads the partition in this epoch.
    pub fn is_current(&self) -> bool {
        !*self.resigned.borrow()
    }

    /// Waits until this leadership's high watermark reaches `offset` (an acks=all append is
    /// then acknowledged): NOT_LEADER_OR_FOLLOWER if this broker stops leading in this epoch
    /// first, for the offset may then be cut from its log. A high watermark published before
    /// the resignation counts even if the waiter sees both at once: it was computed in this
    /// epoch, from replicas that held the offset synced.
    pub async fn wait_for_high_watermark(&self, offset: i64) -> Result<(), ResponseError> {
        // The planted bug `follow-before-resign` waits on the log's high watermark, which a
        // follower's fetcher may set from another leader's.
        if self.log.planted_bugs().follow_before_resign {
            return self.wait_for_log_high_watermark(offset).await;
        }
        let mut hw = self.published.subscribe();
        let mut resigned = self.resigned.subscribe();
        loop {
            if *hw.borrow_and_update() >= offset {
                return Ok(());
            }
            if *resigned.borrow_and_update() {
                return Err(ResponseError::NotLeaderOrFollower);
            }
            tokio::select! {
                r = hw.changed() => if r.is_err() { return Err(ResponseError::NotLeaderOrFollower) },
                r = resigned.changed() => if r.is_err() { return Err(ResponseError::NotLeaderOrFollower) },
            }
        }
    }

    /// [`LedPartition::wait_for_high_watermark`] as the planted bug has it.
    async fn wait_for_log_high_watermark(&self, offset: i64) -> Result<(), ResponseError> {
        let mut offsets = self.log.subscribe();
        let mut resigned = self.resigned.subscribe();
        loop {
            if *resigned.borrow_and_update() {
                return Err(ResponseError::NotLeaderOrFollower);
            }
            if offsets.borrow_and_update().high_watermark >= offset {
                return Ok(());
            }
            tokio::select! {
                r = offsets.changed() => if r.is_err() { return Err(ResponseError::NotLeaderOrFollower) },
                r = resigned.changed() => if r.is_err() { return Err(ResponseError::NotLeaderOrFollower) },
            }
        }
    }

    /// Publishes `hw`, this leadership's high watermark, to its waiters, and to the log while
    /// it still leads. Called under `state`'s lock (`_st`), as [`LedPartition::resign`] is.
    fn publish(&self, _st: &MutexGuard<'_, PartitionLeader>, hw: i64) {
        if !self.is_current() {
            return;
        }
        self.log.set_high_watermark(hw);
        self.published.send_if_modified(|old| {
            let moved = hw > *old;
            if moved {
                *old = hw;
            }
            moved
        });
    }

    /// Steps the leader's own end into its state and publishes the high watermark that
    /// follows. Only the partition's task passes `take_isr_change`: it takes the ISR change
    /// due, if any, and must send it (one is in flight from then on).
    fn refresh(&self, take_isr_change: bool) -> Option<crate::replication::leader::IsrChange> {
        let mut st = lock(&self.state);
        let replicas = st.view().replicas.len();
        st.step(self.local_end(replicas));
        let mut ready = st.ready();
        if !take_isr_change {
            ready.isr_change = None;
        }
        st.advance(&ready);
        if let Some(hw) = ready.high_watermark {
            self.publish(&st, hw);
        }
        ready.isr_change
    }

    /// Whether an acks=all append may be taken (the ISR is at least `min.insync.replicas`).
    pub fn enough_replicas(&self) -> bool {
        lock(&self.state).enough_replicas()
    }

    /// Whether an acks=all append the high watermark passed is answered without an error
    /// (see [`PartitionLeader::enough_replicas_after_append`]).
    pub fn enough_replicas_after_append(&self) -> bool {
        lock(&self.state).enough_replicas_after_append()
    }

    /// A follower fetched from `fetch_offset` with everything below `synced_end` synced:
    /// counts it and publishes the high watermark at once. Refused for a broker that holds
    /// no replica.
    pub fn follower_fetched(
        &self,
        replica: i32,
        broker_epoch: i64,
        fetch_offset: i64,
        synced_end: i64,
        now_ms: i64,
    ) -> Result<(), ResponseError> {
        let mut st = lock(&self.state);
        if !st.view().replicas.contains(&replica) {
            return Err(ResponseError::NotLeaderOrFollower);
        }
        st.step(Event::FollowerFetch {
            replica,
            broker_epoch,
            fetch_offset,
            synced_end,
            now_ms,
        });
        let ready = st.ready();
        let hw = st.high_watermark();
        self.publish(&st, hw);
        drop(st);
        tracing::trace!(partition = %self.tp, replica, fetch_offset, synced_end, high_watermark = hw, "follower fetched");
        if ready.isr_change.is_some() {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// The leader's own end: its synced end under the durable default, its log end with write
    /// caching. `replicas` is the partition's replica count (for a planted bug).
    fn local_end(&self, replicas: usize) -> Event {
        let o = self.log.offsets();
        // The planted bug `rf1-hw-from-log-end`: a partition's only replica counts its log
        // end, synced or not, so acks=all is answered before the sync.
        let planted = replicas == 1 && self.log.planted_bugs().rf1_hw_from_log_end;
        let end = if self.log.config().write_caching || planted {
            o.log_end
        } else {
            o.durable_end
        };
        Event::LocalEnd {
            end,
            log_end: o.log_end,
        }
    }

    fn resign(&self) {
        {
            let _st = lock(&self.state);
            self.resigned.send_replace(true);
        }
        if let Some(task) = lock(&self.task).take() {
            task.abort();
        }
    }
}

impl Drop for LedPartition {
    fn drop(&mut self) {
        if let Some(task) = lock(&self.task).take() {
            task.abort();
        }
    }
}

impl Replicas {
    /// The partition this broker leads with followers, if it does.
    pub fn led(&self, tp: &TopicPartition) -> Option<Arc<LedPartition>> {
        lock(&self.led).get(tp).cloned()
    }

    /// Whether this broker still leads `tp` in some epoch: until `sync_replication` resigns
    /// it, no fetcher touches its log, even if the metadata already names another leader
    /// (seed 80275: a broker restored from a metadata snapshot that moved the leadership began
    /// following, and truncated its log, while its old leadership still waited for acks=all,
    /// which the high watermark it then learnt as a follower answered: acknowledged records
    /// that were gone).
    fn still_led(&self, tp: &TopicPartition) -> bool {
        lock(&self.led).contains_key(tp)
    }

    /// [`Replicas::still_led`], unless the planted bug `follow-before-resign` ignores it.
    fn guards_followers(&self, b: &Broker, tp: &TopicPartition) -> bool {
        !b.env.disk.planted_bugs().follow_before_resign && self.still_led(tp)
    }

    /// Stops everything (shutdown).
    pub fn stop(&self) {
        for (_, lp) in std::mem::take(&mut *lock(&self.led)) {
            lp.resign();
        }
        for (_, f) in std::mem::take(&mut *lock(&self.fetchers)) {
            f.abort();
        }
    }
}

impl Broker {
    /// Before a controlled shutdown moves its leaderships away: syncs the log of every
    /// partition this broker leads and publishes the high watermark that follows, so an
    /// acks=all append already on enough replicas is answered as written. Otherwise the
    /// resignation answers it NOT_LEADER_OR_FOLLOWER, which tells the producer the records
    /// were not written, and one without idempotence writes them again: a partition's only
    /// replica, whose high watermark is its own synced end, failed every append its last sync
    /// had not yet covered. The broker owns this policy; it asks each log to sync (a log under
    /// write caching counts its log end, so it is only published). With followers, the high
    /// watermark moves as far as the synced ends they have reported.
    pub async fn settle_leaderships(&self) {
        let led: Vec<Arc<LedPartition>> = lock(&self.replicas.led).values().cloned().collect();
        let settle = |lp: Arc<LedPartition>| async move {
            if !lp.log.config().write_caching {
                let end = lp.log.log_end_offset();
                if let Err(e) = lp.log.sync_to(end).await {
                    tracing::warn!(partition = %lp.tp, error = %e, "could not sync a led partition before the controlled shutdown");
                    return;
                }
            }
            lp.refresh(false);
        };
        futures_util::future::join_all(led.into_iter().map(settle)).await;
    }
}

/// This broker's epoch, once registered (-1 before).
fn broker_epoch(b: &Broker) -> i64 {
    match *b.lifecycle.borrow() {
        Lifecycle::Registered { epoch, .. } => epoch,
        Lifecycle::Starting => -1,
    }
}

impl Broker {
    /// Brings replication in line with the metadata (after [`Broker::sync_logs`]): leads the
    /// partitions with followers it leads, in their current epochs; resigns the others; runs a
    /// fetcher for every broker it follows.
    pub fn sync_replication(self: &Arc<Self>) {
        let state = self.metadata.state();
        let me = self.config.node_id;
        let now = self.env.clock.now_ms();
        let mut wanted = BTreeMap::new();
        let mut followed = BTreeSet::new();
        let ineligible: Vec<i32> = state
            .brokers
            .values()
            .filter(|b| b.fenced || b.in_controlled_shutdown)
            .map(|b| b.id)
            .collect();
        for t in state.topics.values() {
            for (p, m) in &t.parts {
                // Every replica, a partition's only one included: replication, not the log,
                // decides what consumers see and when acks=all is answered.
                if !m.replicas.contains(&me) {
                    continue;
                }
                let tp = TopicPartition::new(t.name.clone(), *p);
                if self.logs.get(&tp).is_none() {
                    continue;
                }
                if m.leader == me {
                    wanted.insert(tp, (t, m));
                } else if m.leader >= 0 {
                    followed.insert(m.leader);
                }
            }
        }
        let effective = self.effective_config();
        {
            let mut led = lock(&self.replicas.led);
            led.retain(|tp, lp| {
                let keep = wanted
                    .get(tp)
                    .is_some_and(|(t, m)| t.id == lp.topic_id && m.leader_epoch == lp.leader_epoch);
                if !keep {
                    lp.resign();
                }
                keep
            });
            for (tp, (t, m)) in wanted {
                let view = PartitionView {
                    replicas: m.replicas.clone(),
                    isr: m.isr.clone(),
                    leader_epoch: m.leader_epoch,
                    partition_epoch: m.partition_epoch,
                };
                let min_isr = effective.topic_min_insync_replicas(&t.configs);
                if let Some(lp) = led.get(&tp) {
                    let mut st = lock(&lp.state);
                    st.step(Event::Ineligible(ineligible.clone()));
                    st.step(Event::Metadata(view));
                    st.set_min_insync_replicas(usize::try_from(min_isr.max(1)).unwrap_or(1));
                    drop(st);
                    lp.wake.notify_one();
                    continue;
                }
                let Some(log) = self.logs.get(&tp) else {
                    continue;
                };
                // A fetcher is still applying its old leader's answer: leading starts once
                // it is done (the fetcher calls this again).
                if lock(&self.replicas.applying).contains(&tp) {
                    tracing::debug!(partition = %tp, "waiting for the fetcher to finish before leading");
                    continue;
                }
                let config = LeaderConfig {
                    broker_id: me,
                    min_insync_replicas: usize::try_from(min_isr.max(1)).unwrap_or(1),
                    replica_lag_time_max_ms: i64::try_from(self.config.replica_lag_time_max_ms)
                        .unwrap_or(30_000),
                    // Planted bugs come only from the simulated disk.
                    planted_hw_ignores_followers: self.env.disk.planted_bugs().hw_ignores_followers,
                    planted_isr_join_without_epoch_start: self
                        .env
                        .disk
                        .planted_bugs()
                        .isr_join_without_epoch_start,
                };
                let offsets = log.offsets();
                let local_end = if log.config().write_caching {
                    offsets.log_end
                } else {
                    offsets.durable_end
                };
                // A leader knows its high watermark only as a follower learnt it; from the log
                // start otherwise, and the followers' fetches raise it.
                let hw = log.high_watermark().unwrap_or(offsets.log_start);
                let mut leader =
                    PartitionLeader::new(config, view, offsets.log_end, local_end, hw, now);
                self.env.probe.event(ProbeEvent::Leading {
                    dir: log.dir(),
                    leader_epoch: m.leader_epoch,
                    epoch_start: offsets.log_end,
                });
                leader.step(Event::Ineligible(ineligible.clone()));
                tracing::info!(partition = %tp, leader_epoch = m.leader_epoch, isr = ?m.isr, high_watermark = leader.high_watermark(), "leading a partition");
                let initial_hw = leader.high_watermark();
                let lp = Arc::new(LedPartition {
                    tp: tp.clone(),
                    topic_id: t.id,
                    leader_epoch: m.leader_epoch,
                    log: log.clone(),
                    state: Mutex::new(leader),
                    wake: Notify::new(),
                    resigned: watch::Sender::new(false),
                    published: watch::Sender::new(initial_hw),
                    task: Mutex::new(None),
                });
                lp.publish(&lock(&lp.state), initial_hw);
                // What it fetched as a follower last may not be synced yet; its high watermark
                // counts its synced end.
                super::sync_soon(&log);
                let task = tokio::spawn(run_leader(self.clone(), lp.clone()));
                *lock(&lp.task) = Some(task);
                led.insert(tp, lp);
            }
        }
        self.start_fetchers(followed);
    }

    /// A fetcher for each of `leaders` that has none running.
    fn start_fetchers(self: &Arc<Self>, leaders: BTreeSet<i32>) {
        let mut fetchers = lock(&self.replicas.fetchers);
        fetchers.retain(|_, f| !f.is_finished());
        for leader in leaders {
            fetchers
                .entry(leader)
                .or_insert_with(|| tokio::spawn(run_fetcher(self.clone(), leader)));
        }
    }

    /// The planted bug `follow-before-resign`: the fetchers the metadata asks for start before
    /// the leaderships it ended are resigned.
    pub(super) fn fetch_planted_early(self: &Arc<Self>) {
        let state = self.metadata.state();
        let me = self.config.node_id;
        let leaders = state
            .topics
            .values()
            .flat_map(|t| t.parts.values())
            .filter(|m| m.replicas.contains(&me) && m.leader >= 0 && m.leader != me)
            .map(|m| m.leader)
            .collect();
        self.start_fetchers(leaders);
    }

    /// Whether the metadata ends a leadership this broker still holds (the planted bug
    /// `follow-before-resign` delays only those resignations).
    pub(super) fn leadership_ending(&self) -> bool {
        let led: Vec<(TopicPartition, i32)> = lock(&self.replicas.led)
            .iter()
            .map(|(tp, lp)| (tp.clone(), lp.leader_epoch))
            .collect();
        led.iter().any(|(tp, epoch)| {
            !matches!(self.leadership(&tp.topic, tp.partition),
                super::Leadership::Leader { epoch: e } if e == *epoch)
        })
    }

    /// The partitions this broker follows from `leader`: (partition, leader epoch, log).
    fn followed_from(&self, leader: i32) -> Vec<(TopicPartition, i32, Arc<PartitionLog>)> {
        let state = self.metadata.state();
        let me = self.config.node_id;
        let mut out = Vec::new();
        for t in state.topics.values() {
            for (p, m) in &t.parts {
                if m.leader != leader || leader == me || !m.replicas.contains(&me) {
                    continue;
                }
                let tp = TopicPartition::new(t.name.clone(), *p);
                if let Some(log) = self.logs.get(&tp) {
                    out.push((tp, m.leader_epoch, log));
                }
            }
        }
        out
    }

    /// The address of `broker`'s PLAINTEXT listener, as it registered it.
    fn broker_address(&self, broker: i32) -> Option<String> {
        let state = self.metadata.state();
        let b = state.brokers.get(&broker)?;
        let e = b.endpoints.iter().find(|e| e.name == "PLAINTEXT")?;
        Some(format!("{}:{}", super::bracket(&e.host), e.port))
    }
}

/// A led partition's task: publishes the high watermark as the leader's own end moves, ticks
/// the ISR's lag checks, and sends ISR changes to the controller one at a time.
async fn run_leader(b: Arc<Broker>, lp: Arc<LedPartition>) {
    let mut offsets = lp.log.subscribe();
    let lag = b.config.replica_lag_time_max_ms.max(2);
    let tick = Duration::from_millis((lag / 2).clamp(1, 1000));
    // It runs until this broker resigns the leadership, shutdown included: a controlled
    // shutdown moves leaderships only after this broker has settled them (see
    // `Broker::settle_leaderships`), and acks=all waiters are answered meanwhile.
    loop {
        if !lp.is_current() {
            return;
        }
        if let Some(change) = lp.refresh(true) {
            let req = AlterPartition {
                broker_id: b.config.node_id,
                broker_epoch: broker_epoch(&b),
                topic_id: lp.topic_id,
                partition: lp.tp.partition,
                leader_epoch: change.leader_epoch,
                partition_epoch: change.partition_epoch,
                new_isr: change
                    .isr
                    .iter()
                    .map(|(id, epoch)| IsrMember {
                        broker_id: *id,
                        broker_epoch: *epoch,
                    })
                    .collect(),
            };
            tracing::info!(partition = %lp.tp, isr = ?req.new_isr.iter().map(|m| m.broker_id).collect::<Vec<_>>(), "asking the controller to change the ISR");
            let added: Vec<i32> = {
                let st = lock(&lp.state);
                let isr = &st.view().isr;
                change
                    .isr
                    .iter()
                    .map(|(id, _)| *id)
                    .filter(|id| !isr.contains(id))
                    .collect()
            };
            if !added.is_empty() {
                b.env.probe.event(ProbeEvent::IsrExpanding {
                    dir: lp.log.dir(),
                    leader_epoch: lp.leader_epoch,
                    added: &added,
                });
            }
            let answer = match send_alter_partition(&b, req).await {
                Ok(IsrState {
                    isr,
                    leader_epoch,
                    partition_epoch,
                }) if leader_epoch == lp.leader_epoch => {
                    let replicas = lock(&lp.state).view().replicas.clone();
                    IsrAnswer::Committed(PartitionView {
                        replicas,
                        isr,
                        leader_epoch,
                        partition_epoch,
                    })
                }
                Ok(_) => IsrAnswer::Failed,
                Err(e) => {
                    // Refusals the controller decided on are sure; anything else (a timeout,
                    // a lost connection, a controller that moved, INVALID_UPDATE_VERSION after
                    // a resend) may hide a committed change.
                    let refused = matches!(
                        e.code(),
                        ResponseError::FencedLeaderEpoch
                            | ResponseError::IneligibleReplica
                            | ResponseError::NewLeaderElected
                            | ResponseError::NotLeaderOrFollower
                            | ResponseError::StaleBrokerEpoch
                            | ResponseError::UnknownTopicId
                            | ResponseError::UnknownTopicOrPartition
                            | ResponseError::OperationNotAttempted
                    );
                    tracing::info!(partition = %lp.tp, error = %e, refused, "the ISR change was not confirmed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    // The planted `unknown-isr-answer-as-refused` takes silence for a no.
                    if refused || b.env.disk.planted_bugs().unknown_isr_answer_as_refused {
                        IsrAnswer::Failed
                    } else {
                        IsrAnswer::Unknown
                    }
                }
            };
            lock(&lp.state).step(Event::Answer(answer));
            continue;
        }
        tokio::select! {
            r = offsets.changed() => if r.is_err() { return },
            _ = lp.wake.notified() => {}
            _ = tokio::time::sleep(tick) => {
                let now = b.env.clock.now_ms();
                lock(&lp.state).tick(now);
            }
        }
    }
}

/// A fetcher: pulls every partition this broker follows from `leader`, until it follows none
/// from it.
async fn run_fetcher(b: Arc<Broker>, leader: i32) {
    let backoff = Duration::from_millis(b.config.replica_fetch_backoff_ms.max(1));
    let mut conn: Option<BrokerConnection> = None;
    // Whether the leader on `conn` has shown it counts the synced end a fetch carries.
    let mut counts_synced_end = false;
    let mut stop = b.stop_serving.clone();
    // Partitions the leader refused (not its leader yet, another epoch): left out until then,
    // as Kafka's fetcher delays a failed partition without stopping the others.
    let mut delayed: BTreeMap<TopicPartition, tokio::time::Instant> = BTreeMap::new();
    // The leader epoch each partition was last fetched in (for a planted bug only).
    let mut started: BTreeMap<TopicPartition, i32> = BTreeMap::new();
    loop {
        if *stop.borrow() {
            return;
        }
        let mut parts = b.followed_from(leader);
        if parts.is_empty() {
            return;
        }
        let now = crate::env::monotonic_now();
        delayed.retain(|_, until| *until > now);
        parts.retain(|(tp, ..)| !delayed.contains_key(tp) && !b.replicas.guards_followers(&b, tp));
        if parts.is_empty() {
            let until = delayed.values().min().copied().unwrap_or(now + backoff);
            tokio::select! {
                _ = tokio::time::sleep_until(until) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        let planted = b.env.disk.planted_bugs();
        if planted.replica_truncate_to_hw {
            truncate_to_high_watermark(&parts, &mut started).await;
        }
        match fetch_round(&b, leader, &parts, &mut conn, &mut counts_synced_end).await {
            Ok(refused) => {
                for tp in refused {
                    delayed.insert(tp, crate::env::monotonic_now() + backoff);
                }
            }
            Err(why) => {
                tracing::debug!(leader, error = %why, "replica fetch failed; backing off");
                conn = None;
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    }
}

/// The simulator's planted bug `replica-truncate-to-hw` (what Kafka did before KIP-101): a
/// follower starting to follow a leader epoch cuts its log to its high watermark, which lags
/// the leader's, instead of asking the leader where their logs diverge.
async fn truncate_to_high_watermark(
    parts: &[(TopicPartition, i32, Arc<PartitionLog>)],
    started: &mut BTreeMap<TopicPartition, i32>,
) {
    for (tp, epoch, log) in parts {
        if started.insert(tp.clone(), *epoch) == Some(*epoch) {
            continue;
        }
        if let Some(hw) = log.high_watermark().filter(|hw| *hw < log.log_end_offset()) {
            tracing::info!(partition = %tp, high_watermark = hw, "planted bug: truncating to the high watermark");
            if let Err(e) = log.truncate_to(hw).await {
                tracing::warn!(partition = %tp, error = %e, "truncation failed");
            }
        }
    }
}

/// One fetch from `leader` for `parts`, then appends, truncates or restarts each log as
/// answered. Under the durable default (no write caching) a follower's fetch must tell the
/// leader what it has synced. Once the leader has shown it counts runnel's synced-end tag
/// (`counts_synced_end`: it echoes the tag in its answer), the fetch goes out at once from the
/// log end, carrying the synced end, while the data the last fetch brought is synced beside
/// it (the two overlap; the answer is applied once both are done). Until then (a new
/// connection, a leader of an older runnel, a Fetch version without tagged fields) each log
/// is synced first, so the fetch offset is the synced end whatever the leader counts.
/// Returns the partitions to leave out for a while (refused, offline, or failed locally);
/// an error for the fetch as a whole.
async fn fetch_round(
    b: &Arc<Broker>,
    leader: i32,
    parts: &[(TopicPartition, i32, Arc<PartitionLog>)],
    conn: &mut Option<BrokerConnection>,
    counts_synced_end: &mut bool,
) -> Result<Vec<TopicPartition>, String> {
    if conn.as_ref().is_none_or(|c| !c.is_alive()) {
        *counts_synced_end = false;
        let addr = b
            .broker_address(leader)
            .ok_or_else(|| format!("broker {leader} has no PLAINTEXT address"))?;
        // A fetch the leader holds up to `replica.fetch.wait.max.ms`; one not answered within
        // `replica.socket.timeout.ms` beyond that (a connection that died across a network
        // partition) is dropped and the connection dialled again.
        let timeout = b.config.replica_socket_timeout_ms.max(1);
        let config = ClientConfig {
            client_id: format!("runnel-replica-{}", b.config.node_id),
            request_timeout_ms: timeout + b.config.replica_fetch_wait_max_ms,
            connect_timeout_ms: timeout,
            ..ClientConfig::default()
        };
        *conn = Some(
            BrokerConnection::open(&b.env, &addr, &config)
                .await
                .map_err(|e| e.to_string())?,
        );
    }
    let c = conn.as_ref().expect("opened above");
    let version = c.version_for(ApiKey::Fetch).map_err(|e| e.to_string())?;
    let mut asked = Vec::with_capacity(parts.len());
    let mut refused = Vec::new();
    // The planted bug `hw-from-unsynced-offset`: the follower never syncs before it reports,
    // and reports its log end as synced.
    let skip_sync = b.env.disk.planted_bugs().hw_from_unsynced_offset;
    let tagged = version >= 12 && !skip_sync;
    let overlap = tagged && *counts_synced_end;
    // What to sync beside the fetch: (partition, log, to offset).
    let mut to_sync = Vec::new();
    for (tp, epoch, log) in parts {
        // An offline log (a failed fsync) fetches nothing until it is opened again: the
        // leader then stops hearing from it, and it leaves the ISR.
        if !log.is_online() {
            refused.push(tp.clone());
            continue;
        }
        let durable = !log.config().write_caching;
        if durable && !skip_sync && !overlap {
            let end = log.log_end_offset();
            if let Err(e) = log.sync_to(end).await {
                tracing::warn!(partition = %tp, error = %e, "a follower could not sync its log");
                refused.push(tp.clone());
                continue;
            }
        }
        let offset = log.log_end_offset();
        let synced = if durable && tagged {
            let synced = log.durable_offset().min(offset);
            if synced < offset {
                to_sync.push((tp.clone(), log.clone(), offset));
            }
            Some(synced)
        } else {
            None
        };
        let last_epoch = log.latest_epoch().unwrap_or(-1);
        asked.push((tp.clone(), *epoch, log.clone(), offset, last_epoch, synced));
    }
    if asked.is_empty() {
        return Ok(refused);
    }
    let me = b.config.node_id;
    // While a sync runs beside it, the fetch is not held at the leader for new data: the
    // leader learns the synced end only from the next fetch, and acks=all waits for it.
    let max_wait_ms = if to_sync.is_empty() {
        i32::try_from(b.config.replica_fetch_wait_max_ms).unwrap_or(500)
    } else {
        0
    };
    let mut req = FetchRequest::default()
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(b.config.replica_fetch_response_max_bytes)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1);
    if version >= 15 {
        req.replica_state = ReplicaState::default()
            .with_replica_id(BrokerId(me))
            .with_replica_epoch(broker_epoch(b));
    } else {
        req.replica_id = BrokerId(me);
    }
    let topics = crate::client::consumer::fetch_topics(asked.iter().map(
        |(tp, epoch, _, offset, last_epoch, synced)| {
            let mut p = FetchPartition::default()
                .with_partition(tp.partition)
                .with_fetch_offset(*offset)
                .with_last_fetched_epoch(*last_epoch)
                .with_current_leader_epoch(*epoch)
                .with_partition_max_bytes(b.config.replica_fetch_max_bytes);
            if let Some(synced) = synced {
                p.unknown_tagged_fields.insert(
                    follower::SYNCED_END_TAG,
                    follower::encode_synced_end(*synced),
                );
            }
            (tp.topic.as_str(), p)
        },
    ));
    req.topics = topics;
    let fetch = async {
        c.start_at(&req, version)
            .await
            .map_err(|e| e.to_string())?
            .wait()
            .await
            .map_err(|e| e.to_string())
    };
    let sync = async {
        let mut failed = Vec::new();
        for (tp, log, end) in &to_sync {
            if let Err(e) = log.sync_to(*end).await {
                tracing::warn!(partition = %tp, error = %e, "a follower could not sync its log");
                failed.push(tp.clone());
            }
        }
        failed
    };
    let (resp, failed): (Result<FetchResponse, String>, _) = tokio::join!(fetch, sync);
    let resp = resp?;
    if let Some(code) = ResponseError::try_from_code(resp.error_code) {
        return Err(format!("the leader answered {code:?}"));
    }
    if !*counts_synced_end
        && resp.responses.iter().any(|t| {
            t.partitions.iter().any(|p| {
                p.unknown_tagged_fields
                    .contains_key(&follower::SYNCED_END_TAG)
            })
        })
    {
        tracing::debug!(
            leader,
            "the leader counts synced ends: fetches now overlap syncs"
        );
        *counts_synced_end = true;
    }
    // Only what this broker still follows from `leader`, in the epoch it asked in: an answer
    // that arrives after leadership moved (to this broker, say) must not touch the log.
    let still = || -> BTreeSet<(TopicPartition, i32)> {
        b.followed_from(leader)
            .into_iter()
            .map(|(tp, epoch, _)| (tp, epoch))
            .collect()
    };
    for t in resp.responses {
        for p in t.partitions {
            let Some((tp, epoch, log, offset, _, _)) = asked
                .iter()
                .find(|a| a.0.topic == t.topic.0.as_str() && a.0.partition == p.partition_index)
            else {
                continue;
            };
            // Its sync failed: the log is offline or failing; leave it out for a while.
            if failed.contains(tp) {
                refused.push(tp.clone());
                continue;
            }
            // Checked again for each partition, right before its answer is applied: applying
            // the ones before it awaits, and leadership may move meanwhile (seed 46224: this
            // broker began leading while an earlier partition was truncated, and then cut its
            // own committed batch on an old leader's diverging-epoch answer).
            // The check and the claim are one step under `applying`, which
            // `sync_replication` also reads before it leads a partition: either this sees the
            // metadata that moved the leadership, or the move waits for the answer.
            let claim = {
                let mut applying = lock(&b.replicas.applying);
                if !still().contains(&(tp.clone(), *epoch)) {
                    tracing::debug!(partition = %tp, leader, "leadership moved while the fetch was out; its answer is dropped");
                    continue;
                }
                // Another fetcher (of the previous leader) is still applying to this log: one
                // at a time; this one tries again after its backoff.
                if !applying.insert(tp.clone()) {
                    refused.push(tp.clone());
                    continue;
                }
                Claim {
                    applying: &b.replicas.applying,
                    tp: tp.clone(),
                }
            };
            // Still led here in an older epoch (it resigns at the next `sync_replication`):
            // not touched until then. With the claim held, no leadership of it begins.
            if b.replicas.guards_followers(b, tp) {
                tracing::debug!(partition = %tp, leader, "still leading the partition in an older epoch; the answer is dropped");
                continue;
            }
            let taken = take_answer(tp, log, *offset, p).await;
            drop(claim);
            if let Err(e) = taken {
                tracing::debug!(partition = %tp, leader, error = %e, "replica fetch of a partition failed");
                refused.push(tp.clone());
            }
            // Leadership moved while the answer was applied: take it up now.
            if !still().contains(&(tp.clone(), *epoch)) {
                b.sync_replication();
            }
        }
    }
    Ok(refused)
}

/// A fetcher's claim on a partition it is applying an answer to (see
/// [`Replicas::applying`]), released when dropped, even if the fetch task is cancelled.
struct Claim<'a> {
    applying: &'a Mutex<BTreeSet<TopicPartition>>,
    tp: TopicPartition,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        lock(self.applying).remove(&self.tp);
    }
}

/// Applies a leader's answer for one partition fetched at `offset`.
async fn take_answer(
    tp: &TopicPartition,
    log: &Arc<PartitionLog>,
    offset: i64,
    p: kafka_protocol::messages::fetch_response::PartitionData,
) -> Result<(), String> {
    match ResponseError::try_from_code(p.error_code) {
        None => {}
        Some(ResponseError::OffsetOutOfRange) if offset < p.log_start_offset => {
            // The leader no longer has what this follower needs next: start over where it
            // starts (Kafka's `truncateFullyAndStartAt`).
            tracing::info!(partition = %tp, offset, leader_log_start = p.log_start_offset, "behind the leader's log start; starting the log again there");
            return log
                .truncate_fully_and_start_at(p.log_start_offset)
                .await
                .map_err(|e| e.to_string());
        }
        Some(code) => return Err(format!("{tp}: the leader answered {code:?}")),
    }
    if log.log_end_offset() != offset {
        // The log moved while the fetch was out (it cannot, with one fetcher; be safe).
        return Ok(());
    }
    if p.diverging_epoch.epoch >= 0 || p.diverging_epoch.end_offset >= 0 {
        let d = (p.diverging_epoch.epoch, p.diverging_epoch.end_offset);
        let local = log.end_offset_for_epoch(d.0);
        let mut to = follower::truncation_point(d, local, offset);
        if log.planted_bugs().replica_truncate_to_hw {
            to = log.high_watermark().unwrap_or(to).min(to);
        }
        tracing::info!(partition = %tp, diverging_epoch = d.0, leader_end = d.1, truncate_to = to, "the log diverges from the leader's; truncating");
        if to < log.log_start_offset() {
            // Everything this follower holds lies past the divergence: it empties its log and
            // starts again at the divergence (or the leader's start), even below its own start,
            // as Kafka does (seed 40867: the refusal kept a divergent tail).
            return log
                .truncate_fully_and_start_below(to.max(p.log_start_offset))
                .await
                .map_err(|e| e.to_string());
        }
        log.truncate_to(to).await.map_err(|e| e.to_string())?;
        return Ok(());
    }
    let records: Bytes = p.records.unwrap_or_default();
    if !records.is_empty() {
        let info = log
            .append_as_follower(&records)
            .map_err(|e| format!("{tp}: {e}"))?;
        // The flush policy (`flush.messages`) holds for a follower's appends too, as in Kafka;
        // with write caching this is the only sync before its next fetch reports the end.
        if info.flush_due {
            log.sync_to(info.last_offset + 1)
                .await
                .map_err(|e| format!("{tp}: {e}"))?;
        }
    }
    // A follower's high watermark: the leader's, bounded by what it holds.
    if p.high_watermark >= 0 {
        log.set_high_watermark(p.high_watermark.min(log.log_end_offset()));
    }
    Ok(())
}
