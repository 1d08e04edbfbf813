//! The broker: connection handling and request dispatch, the glue that turns Kafka requests
//! into calls on the log and the metadata.
//!
//! - [`server`]: the accept loop and one task per connection; requests are handled in the
//!   order they arrive and answered in that order, while slow answers (a produce waiting for
//!   its fsync, a fetch waiting for data) proceed concurrently.
//! - [`api`]: one file per Kafka API: decode, validate, apply, build the response.
//! - [`topics`]: topic administration shared by the admin APIs and auto-creation.

pub mod api;
pub mod controller;
pub mod producer_ids;
pub mod replicas;
pub mod server;
pub mod topics;

use crate::cluster::{METADATA_TOPIC, MetadataError, MetadataLog, TopicMeta};
use crate::config::BrokerConfig;
use crate::env::Env;
use crate::group::{GroupService, OFFSETS_TOPIC};
use crate::log::{LogError, LogManager, PartitionLog, TopicPartition};
use crate::raft::driver::QuorumConfig;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::watch;

/// Why the broker could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("{0}")]
    Log(#[from] LogError),
    #[error("{0}")]
    Metadata(#[from] MetadataError),
    #[error("cannot listen on {addr}: {error}")]
    Bind { addr: String, error: std::io::Error },
}

/// A running broker's shared state.
pub struct Broker {
    /// The seam.
    pub env: Env,
    /// Configuration.
    pub config: Arc<BrokerConfig>,
    /// The partition logs.
    pub logs: Arc<LogManager>,
    /// The cluster metadata.
    pub metadata: Arc<MetadataLog>,
    /// Flips to true when the broker starts shutting down: a broker then settles its
    /// leaderships and asks for a controlled shutdown, still serving meanwhile.
    pub shutdown: watch::Receiver<bool>,
    /// Flips to true once the broker stops serving (after its controlled shutdown): the
    /// listeners stop accepting, connections stop reading and are drained, fetchers and
    /// long polls end.
    pub stop_serving: watch::Receiver<bool>,
    stop_serving_tx: watch::Sender<bool>,
    /// Serialises topic creation, deletion and growth.
    pub admin: tokio::sync::Mutex<()>,
    /// Producer ids for idempotent producers.
    pub producer_ids: producer_ids::ProducerIds,
    /// The group coordinator.
    pub groups: Arc<GroupService>,
    /// True once the metadata has caught up and the partition logs are open.
    pub loaded: watch::Sender<bool>,
    /// True once clients are served: loaded, and (for a broker) registered and unfenced.
    pub ready: watch::Sender<bool>,
    /// The partition logs opened to match the metadata, with their topic's id.
    synced: tokio::sync::Mutex<BTreeMap<TopicPartition, uuid::Uuid>>,
    /// The controller's decisions, used when this node is the active controller.
    pub controller: Arc<controller::ControllerService>,
    /// This broker's registration with the active controller.
    pub lifecycle: watch::Sender<controller::Lifecycle>,
    /// Until when (ms, the seam's clock) the controller cannot have fenced this broker: the
    /// send time of the last heartbeat answered unfenced, plus the session timeout (the
    /// controller counts the session from when the heartbeat arrived, which is later).
    pub session_lease_until: std::sync::atomic::AtomicI64,
    /// The partitions it leads with followers, and its fetchers.
    pub replicas: replicas::Replicas,
    /// The configuration in effect with the dynamic broker configs it was built from (see
    /// [`Broker::effective_config`]).
    effective: std::sync::Mutex<Option<(DynamicPair, Arc<BrokerConfig>)>>,
}

/// The dynamic broker configs one broker takes: the cluster-wide defaults and its own.
type DynamicPair = (BTreeMap<String, String>, BTreeMap<String, String>);

/// The controller's settings from the broker's.
pub fn controller_config(config: &BrokerConfig) -> crate::cluster::ControllerConfig {
    crate::cluster::ControllerConfig {
        broker_session_timeout_ms: i64::try_from(config.broker_session_timeout_ms).unwrap_or(9000),
        unclean_leader_election_enable: config.unclean_leader_election_enable(),
        auto_leader_rebalance_enable: config.auto_leader_rebalance_enable,
        leader_imbalance_check_interval_ms: i64::try_from(
            config.leader_imbalance_check_interval_seconds,
        )
        .unwrap_or(300)
        .saturating_mul(1000),
        leader_imbalance_per_broker_percentage: config.leader_imbalance_per_broker_percentage,
        planted_bug: None,
    }
}

/// The quorum's settings from the broker's.
pub fn quorum_config(config: &BrokerConfig) -> QuorumConfig {
    let q = &config.quorum;
    let voters: Vec<i32> = if q.voters.is_empty() {
        vec![config.node_id]
    } else {
        q.voters.keys().copied().collect()
    };
    let mut raft = crate::raft::Config::new(config.node_id, voters);
    raft.election_timeout_ms = q.election_timeout_ms;
    raft.election_backoff_max_ms = q.election_backoff_max_ms;
    raft.fetch_timeout_ms = q.fetch_timeout_ms;
    raft.request_timeout_ms = q.request_timeout_ms;
    raft.retry_backoff_ms = q.retry_backoff_ms;
    QuorumConfig {
        raft,
        voter_addresses: q.voters.clone(),
        tick_ms: 10,
        snapshot_max_bytes: u64::try_from(q.snapshot_max_bytes).unwrap_or(1),
        snapshot_interval_ms: q.snapshot_interval_ms,
    }
}

/// How often the group coordinator looks at sessions, join and sync phases and offset expiry.
const GROUP_TICK_MS: u64 = 100;

/// The leader epoch of a partition the metadata has no leader record for (a topic written
/// before placement existed, led by its only node).
pub const LEADER_EPOCH: i32 = 0;

/// Who leads a partition, as a broker's metadata has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leadership {
    /// No such topic or partition.
    Unknown,
    /// This broker leads it in `epoch`.
    Leader { epoch: i32 },
    /// Another broker leads it (or none: `leader` is -1).
    Other { leader: i32, epoch: i32 },
}

impl Broker {
    /// Opens the data directory's metadata quorum and partition manager. The broker serves
    /// the quorum at once; everything else waits for [`Broker::load`], which follows the
    /// metadata until it has caught up.
    pub async fn open(
        env: Env,
        config: BrokerConfig,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Arc<Broker>, BrokerError> {
        let logs = LogManager::new(env.clone(), &config.log_dir).await?;
        // Planted bugs come only from the simulated disk; the real one reports none.
        let planted = env.disk.planted_bugs();
        let mut quorum = quorum_config(&config);
        if planted.raft_truncate_to_hw {
            quorum.raft.planted_bug = Some(crate::raft::PlantedBug::TruncateToHw);
        }
        let mut controller_settings = controller_config(&config);
        if planted.elect_outside_isr {
            controller_settings.planted_bug = Some(crate::cluster::PlantedBug::ElectOutsideIsr);
        }
        let metadata =
            MetadataLog::open(&env, &config.log_dir, quorum, config.cluster_id.clone()).await?;
        let groups = Arc::new(GroupService::new(
            env.clone(),
            logs.clone(),
            config.group.clone(),
        ));
        let (stop_serving_tx, stop_serving) = watch::channel(false);
        let broker = Arc::new(Broker {
            env,
            config: Arc::new(config),
            logs,
            metadata,
            shutdown,
            stop_serving,
            stop_serving_tx,
            admin: tokio::sync::Mutex::new(()),
            producer_ids: producer_ids::ProducerIds::default(),
            groups,
            loaded: watch::Sender::new(false),
            ready: watch::Sender::new(false),
            synced: tokio::sync::Mutex::new(BTreeMap::new()),
            controller: Arc::new(controller::ControllerService::new(controller_settings)),
            lifecycle: watch::Sender::new(controller::Lifecycle::Starting),
            session_lease_until: std::sync::atomic::AtomicI64::new(0),
            replicas: replicas::Replicas::default(),
            effective: std::sync::Mutex::new(None),
        });
        let replication: Arc<dyn crate::group::OffsetsReplication> = broker.clone();
        broker.groups.set_replication(Arc::downgrade(&replication));
        Ok(broker)
    }

    /// Waits until the metadata has caught up with what this node held before, then opens
    /// the logs of the partitions it holds replicas of, and removes the directories of
    /// partitions it does not (topics deleted while the broker was down, half-created ones,
    /// replicas placed elsewhere). A controller-only node is ready from here on; a broker
    /// becomes ready once the controller unfences it ([`controller::run_lifecycle`]).
    pub async fn load(self: &Arc<Self>) -> Result<(), BrokerError> {
        self.metadata.wait_caught_up().await?;
        self.sync_logs().await?;
        self.sync_replication();
        for tp in self.logs.partitions_on_disk()? {
            if tp.topic == METADATA_TOPIC {
                continue;
            }
            let state = self.metadata.state();
            let known = state
                .topics
                .get(&tp.topic)
                .is_some_and(|t| self.hosts(t, tp.partition));
            if !known {
                tracing::info!(partition = %tp, "removing the directory of a partition this node holds no replica of");
                self.logs.delete_log(&tp).await?;
            }
        }
        self.loaded.send_replace(true);
        if !self.config.roles.broker {
            self.ready.send_replace(true);
        }
        tracing::info!(node = self.config.node_id, "metadata caught up");
        Ok(())
    }

    /// Follows the metadata: after every committed change, brings the logs in line with it.
    /// A failure (a full disk, an I/O error) is retried with a backoff, not only at the next
    /// change: the metadata may not change again (seed 9704238: a disk full while a broker
    /// opened its replicas left them closed for good, and every client stalled).
    pub async fn follow_metadata(self: Arc<Self>) {
        const RETRY_FIRST: std::time::Duration = std::time::Duration::from_millis(200);
        const RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(5);
        let mut changes = self.metadata.subscribe();
        let mut retry = RETRY_FIRST;
        loop {
            match self.sync_logs().await {
                Ok(()) => {
                    // The planted bug `follow-before-resign`: a resignation waits (for slow
                    // work, say) while the fetchers already follow.
                    if self.env.disk.planted_bugs().follow_before_resign && self.leadership_ending()
                    {
                        self.fetch_planted_early();
                        tokio::time::sleep(std::time::Duration::from_millis(1_000)).await;
                    }
                    self.sync_replication();
                    retry = RETRY_FIRST;
                    if changes.changed().await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, retry_in = ?retry, "could not bring the partition logs in line with the metadata");
                    tokio::select! {
                        r = changes.changed() => if r.is_err() { return },
                        _ = tokio::time::sleep(retry) => {}
                    }
                    retry = (retry * 2).min(RETRY_MAX);
                }
            }
        }
    }

    /// Whether this node holds a replica of partition `p` of `t`. A partition the metadata
    /// has no replica list for (a topic written before placement existed) is held here.
    pub fn hosts(&self, t: &TopicMeta, p: i32) -> bool {
        p >= 0
            && p < t.partitions
            && t.parts
                .get(&p)
                .is_none_or(|m| m.replicas.contains(&self.config.node_id))
    }

    /// Whether partition `p` of `topic` has more than one replica (replication manages it).
    pub fn has_followers(&self, topic: &str, p: i32) -> bool {
        let state = self.metadata.state();
        state
            .topics
            .get(topic)
            .and_then(|t| t.parts.get(&p))
            .is_some_and(|m| m.replicas.len() > 1)
    }

    /// `min.insync.replicas` of `topic` (its override, else the broker's default).
    pub fn min_insync_replicas(&self, topic: &str) -> i32 {
        let state = self.metadata.state();
        let empty = BTreeMap::new();
        let configs = state.topics.get(topic).map_or(&empty, |t| &t.configs);
        self.effective_config().topic_min_insync_replicas(configs)
    }

    /// The configuration in effect: the static one with the dynamic broker configs of the
    /// metadata over it (the cluster-wide defaults, then this broker's own). Topics' defaults
    /// come from here, so a dynamic `log.retention.ms` reaches every live partition without
    /// an override of its own.
    pub fn effective_config(&self) -> Arc<BrokerConfig> {
        let state = self.metadata.state();
        let wanted = (
            state.dynamic.default.clone(),
            state.dynamic.of(self.config.node_id).clone(),
        );
        if wanted.0.is_empty() && wanted.1.is_empty() {
            return self.config.clone();
        }
        let mut cached = self.effective.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((pair, config)) = cached.as_ref()
            && *pair == wanted
        {
            return config.clone();
        }
        let config = Arc::new(self.config.with_dynamic(&wanted.0, &wanted.1));
        *cached = Some((wanted, config.clone()));
        config
    }

    /// Who leads partition `p` of `topic` as this node's metadata has it.
    pub fn leadership(&self, topic: &str, p: i32) -> Leadership {
        let state = self.metadata.state();
        let Some(t) = state.topics.get(topic) else {
            return Leadership::Unknown;
        };
        if p < 0 || p >= t.partitions {
            return Leadership::Unknown;
        }
        match t.parts.get(&p) {
            None => Leadership::Leader {
                epoch: LEADER_EPOCH,
            },
            Some(m) if m.leader == self.config.node_id => Leadership::Leader {
                epoch: m.leader_epoch,
            },
            Some(m) => Leadership::Other {
                leader: m.leader,
                epoch: m.leader_epoch,
            },
        }
    }

    /// The log of partition `p` of `topic` if this broker leads it, with its leader epoch,
    /// checked against the epoch a client sent (-1 for none), as Kafka checks it (KIP-320):
    /// UNKNOWN_TOPIC_OR_PARTITION, NOT_LEADER_OR_FOLLOWER, FENCED_LEADER_EPOCH (the client's
    /// is older) or UNKNOWN_LEADER_EPOCH (newer than this broker knows).
    pub fn leader_log(
        &self,
        topic: &str,
        p: i32,
        current_leader_epoch: i32,
    ) -> Result<(Arc<PartitionLog>, i32), kafka_protocol::error::ResponseError> {
        use kafka_protocol::error::ResponseError;
        let epoch = match self.leadership(topic, p) {
            Leadership::Unknown => return Err(ResponseError::UnknownTopicOrPartition),
            Leadership::Other { .. } => return Err(ResponseError::NotLeaderOrFollower),
            Leadership::Leader { epoch } => epoch,
        };
        match current_leader_epoch {
            -1 => {}
            e if e < epoch => return Err(ResponseError::FencedLeaderEpoch),
            e if e > epoch => return Err(ResponseError::UnknownLeaderEpoch),
            _ => {}
        }
        // Led here but not open yet: the metadata is a step ahead of the logs.
        let log = self
            .partition(topic, p)
            .ok_or(ResponseError::NotLeaderOrFollower)?;
        // A partition with followers is served only once replication leads it in this epoch:
        // before that the log alone would decide what is visible and acknowledged.
        if self.has_followers(topic, p) {
            let tp = TopicPartition::new(topic, p);
            let led = self.replicas.led(&tp);
            if !led.is_some_and(|l| {
                l.is_current() && l.leader_epoch == epoch && Arc::ptr_eq(&l.log, &log)
            }) {
                return Err(ResponseError::NotLeaderOrFollower);
            }
        }
        Ok((log, epoch))
    }

    /// Brings the open logs in line with the metadata: opens the logs of this node's replicas,
    /// deletes those of partitions it no longer holds (or whose topic was deleted, or deleted
    /// and created again), and serves the groups of the `__consumer_offsets` partitions it
    /// leads.
    pub async fn sync_logs(&self) -> Result<(), BrokerError> {
        let mut synced = self.synced.lock().await;
        let state = self.metadata.state();
        let mut wanted = BTreeMap::new();
        for t in state.topics.values() {
            for p in 0..t.partitions {
                if self.hosts(t, p) {
                    wanted.insert(TopicPartition::new(t.name.clone(), p), t);
                }
            }
        }
        for (tp, id) in synced.clone() {
            if wanted.get(&tp).is_none_or(|t| t.id != id) {
                if tp.topic == OFFSETS_TOPIC {
                    self.groups.unload(tp.partition);
                }
                self.logs.delete_log(&tp).await?;
                synced.remove(&tp);
            }
        }
        let effective = self.effective_config();
        for (tp, t) in &wanted {
            if synced.contains_key(tp) {
                // A topic's configs changed (AlterConfigs): the open log takes them at once;
                // they apply from its next append, roll and retention check.
                if let Some(log) = self.logs.get(tp) {
                    let cfg = effective.topic_log_config(&t.configs);
                    if log.config() != cfg {
                        tracing::info!(partition = %tp, "applying changed topic configs");
                        log.set_config(cfg);
                    }
                }
                continue;
            }
            let cfg = effective.topic_log_config(&t.configs);
            self.logs.open_log(tp, cfg).await?;
            synced.insert(tp.clone(), t.id);
        }
        if let Some(t) = state.topics.get(OFFSETS_TOPIC) {
            for p in 0..t.partitions {
                let leads = matches!(self.leadership(OFFSETS_TOPIC, p), Leadership::Leader { .. });
                if leads && !self.groups.serves(p) {
                    self.groups.load(p);
                } else if !leads && self.groups.serves(p) {
                    self.groups.unload(p);
                }
            }
        }
        Ok(())
    }

    /// Waits until the broker serves clients (false if it shut down first).
    pub async fn wait_ready(&self) -> bool {
        self.wait_for(&self.ready).await
    }

    /// Waits until the metadata has caught up and the logs are open (false if it shut down
    /// first).
    pub async fn wait_loaded(&self) -> bool {
        self.wait_for(&self.loaded).await
    }

    async fn wait_for(&self, flag: &watch::Sender<bool>) -> bool {
        let mut ready = flag.subscribe();
        let mut shutdown = self.shutdown.clone();
        loop {
            if *ready.borrow_and_update() {
                return true;
            }
            if *shutdown.borrow_and_update() {
                return false;
            }
            tokio::select! {
                r = ready.changed() => if r.is_err() { return false },
                r = shutdown.changed() => if r.is_err() { return false },
            }
        }
    }

    /// The log of a partition, if the topic and partition exist.
    pub fn partition(&self, topic: &str, partition: i32) -> Option<Arc<PartitionLog>> {
        self.logs.get(&TopicPartition::new(topic, partition))
    }

    /// The advertised host and port.
    pub fn advertised(&self) -> (String, i32) {
        split_host_port(&self.config.advertised)
    }

    /// Syncs and closes every log (after the connections are done).
    pub async fn close(&self) {
        self.replicas.stop();
        self.logs.close_all().await;
        self.metadata.close().await;
    }
}

/// Splits `host:port` (the port is 0 if absent or bad; IPv6 hosts may be bracketed).
pub fn split_host_port(addr: &str) -> (String, i32) {
    match addr.rsplit_once(':') {
        Some((h, p)) => (
            h.trim_start_matches('[').trim_end_matches(']').to_string(),
            p.parse().unwrap_or(0),
        ),
        None => (addr.to_string(), 0),
    }
}

/// A broker started by [`start`].
pub struct RunningBroker {
    /// The address the listener is bound to.
    pub local_addr: SocketAddr,
    /// The broker's state.
    pub broker: Arc<Broker>,
    /// Set to true to shut down.
    shutdown_tx: watch::Sender<bool>,
    /// The serving task.
    task: tokio::task::JoinHandle<()>,
}

impl RunningBroker {
    /// Shuts down cleanly: stop accepting, answer or fail in-flight requests, sync and
    /// checkpoint every log.
    pub async fn shutdown(self) {
        let _ = self.shutdown_tx.send(true);
        let _ = self.task.await;
    }

    /// Waits until the broker stops (it stops only when shut down).
    pub async fn wait(self) {
        let _ = self.task.await;
    }

    /// A handle that can trigger shutdown from elsewhere.
    pub fn shutdown_handle(&self) -> watch::Sender<bool> {
        self.shutdown_tx.clone()
    }
}

/// Binds the client listener (and the controller listener, if the node has one), opens the
/// broker and starts serving: the quorum at once, clients once the metadata has caught up
/// (in the background: this returns before). With port 0, the advertised address gets the
/// port actually bound.
pub async fn start(env: Env, mut config: BrokerConfig) -> Result<RunningBroker, BrokerError> {
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let bind = |addr: String| {
        let env = env.clone();
        async move {
            let bind_error = |error| BrokerError::Bind {
                addr: addr.clone(),
                error,
            };
            let listener = env.net.bind(&addr).await.map_err(bind_error)?;
            let local = listener.local_addr().map_err(bind_error)?;
            Ok::<_, BrokerError>((listener, local))
        }
    };
    let controller_only = config.listen.is_empty();
    let (listener, local_addr) = if controller_only {
        let addr = config.controller_listen.clone().unwrap_or_default();
        bind(addr).await?
    } else {
        bind(config.listen.clone()).await?
    };
    let controller = match &config.controller_listen {
        Some(addr) if !config.listen.is_empty() => Some(bind(addr.clone()).await?.0),
        _ => None,
    };
    let (host, port) = split_host_port(&config.advertised);
    if port == 0 && !config.listen.is_empty() {
        config.advertised = format!("{}:{}", bracket(&host), local_addr.port());
    }
    let broker = Broker::open(env.clone(), config, shutdown_rx).await?;
    let quorum_tasks = broker.metadata.start();
    let controller_ticks = broker
        .config
        .roles
        .controller
        .then(|| tokio::spawn(broker.controller.clone().run_ticks(broker.clone())));
    let lifecycle = broker.config.roles.broker.then(|| {
        let b = broker.clone();
        tokio::spawn(async move {
            if b.wait_loaded().await {
                controller::run_lifecycle(b).await;
            }
        })
    });
    let b = broker.clone();
    let task = tokio::spawn(async move {
        let load = {
            let b = b.clone();
            tokio::spawn(async move {
                let mut backoff = std::time::Duration::from_millis(100);
                while let Err(e) = b.load().await {
                    if *b.shutdown.borrow() {
                        return None;
                    }
                    tracing::error!(error = %e, "the broker could not load its partitions; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(std::time::Duration::from_secs(5));
                }
                let expiration = {
                    let b = b.clone();
                    move || b.effective_config().producer_id_expiration_ms
                };
                let background = tokio::spawn(
                    b.logs
                        .clone()
                        .run_background(b.config.background_intervals(), expiration),
                );
                let ticks = tokio::spawn(b.groups.clone().run_ticks(GROUP_TICK_MS));
                let follow = tokio::spawn(b.clone().follow_metadata());
                Some([background, ticks, follow])
            })
        };
        let main_role = if controller_only {
            server::ListenerRole::Controller
        } else {
            server::ListenerRole::Client
        };
        let serving = async {
            match controller {
                Some(c) => {
                    tokio::join!(
                        server::serve(b.clone(), listener, main_role),
                        server::serve(b.clone(), c, server::ListenerRole::Controller)
                    );
                }
                None => server::serve(b.clone(), listener, main_role).await,
            }
        };
        // Kafka's order: the controlled shutdown first, while this node still serves (its
        // followers fetch, and a combined node's controller listener carries the quorum that
        // commits the leaderships moving away); only then do the listeners stop.
        let stopping = async {
            let mut shutdown = b.shutdown.clone();
            let _ = shutdown.wait_for(|s| *s).await;
            if let Some(l) = lifecycle {
                let _ = l.await;
            }
            b.stop_serving_tx.send_replace(true);
        };
        tokio::join!(serving, stopping);
        if let Some(t) = controller_ticks {
            t.abort();
        }
        load.abort();
        if let Ok(Some(tasks)) = load.await {
            for t in tasks {
                t.abort();
            }
        }
        b.close().await;
        let [quorum, duties] = quorum_tasks;
        duties.abort();
        let _ = quorum.await;
    });
    Ok(RunningBroker {
        local_addr,
        broker,
        shutdown_tx,
        task,
    })
}

/// An IPv6 host in brackets, as `host:port` needs it.
fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// Under the durable default (`write.caching=false`), records are made durable promptly even
/// when nobody waits for them (acks 0 and 1, group records), so consumers see them and a
/// leader's high watermark can pass them: a task syncs the log soon, one queued per log
/// however many appends ask. The broker owns this policy; the log only syncs when asked.
pub(crate) fn sync_soon(log: &Arc<PartitionLog>) {
    if log.config().write_caching || !log.queue_sync() {
        return;
    }
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        log.start_queued_sync();
        return;
    };
    let log = log.clone();
    handle.spawn(async move {
        let target = log.start_queued_sync();
        if let Err(e) = log.sync_to(target).await {
            tracing::warn!(dir = %log.dir().display(), error = %e, "background sync failed");
        }
    });
}

impl crate::group::OffsetsReplication for Broker {
    fn may_serve(&self) -> bool {
        if self.env.disk.planted_bugs().lease_ignored {
            return true;
        }
        let until = self
            .session_lease_until
            .load(std::sync::atomic::Ordering::Relaxed);
        self.env.clock.now_ms() < until
    }

    fn leader_epoch(&self, partition: i32) -> Option<i32> {
        match self.leadership(OFFSETS_TOPIC, partition) {
            Leadership::Leader { epoch } => Some(epoch),
            _ => None,
        }
    }

    fn replicated(
        self: Arc<Self>,
        partition: i32,
        upto: i64,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<(), kafka_protocol::error::ResponseError>>
                + Send,
        >,
    > {
        use kafka_protocol::error::ResponseError;
        Box::pin(async move {
            if !self.has_followers(OFFSETS_TOPIC, partition) {
                return Ok(());
            }
            let tp = TopicPartition::new(OFFSETS_TOPIC, partition);
            let timeout = std::time::Duration::from_millis(self.config.offsets_commit_timeout_ms);
            let wait = async {
                loop {
                    let Some(epoch) =
                        crate::group::OffsetsReplication::leader_epoch(&*self, partition)
                    else {
                        return Err(ResponseError::NotLeaderOrFollower);
                    };
                    // Right after the coordinator starts serving a partition, replication may
                    // not lead it in the metadata's epoch yet: wait for it.
                    match self.replicas.led(&tp) {
                        Some(led) if led.is_current() && led.leader_epoch == epoch => {
                            return led.wait_for_high_watermark(upto).await;
                        }
                        _ => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
                    }
                }
            };
            match tokio::time::timeout(timeout, wait).await {
                Ok(r) => r,
                Err(_) => Err(ResponseError::RequestTimedOut),
            }
        })
    }
}
