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
pub mod server;
pub mod topics;

use crate::cluster::{METADATA_TOPIC, MetadataError, MetadataLog};
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
    /// Flips to true when the broker starts shutting down.
    pub shutdown: watch::Receiver<bool>,
    /// Serialises topic creation, deletion and growth.
    pub admin: tokio::sync::Mutex<()>,
    /// Producer ids for idempotent producers.
    pub producer_ids: producer_ids::ProducerIds,
    /// The group coordinator.
    pub groups: Arc<GroupService>,
    /// True once the metadata has caught up and clients are served.
    pub ready: watch::Sender<bool>,
    /// The controller's decisions, used when this node is the active controller.
    pub controller: Arc<controller::ControllerService>,
    /// This broker's registration with the active controller.
    pub lifecycle: watch::Sender<controller::Lifecycle>,
}

/// The controller's settings from the broker's.
pub fn controller_config(config: &BrokerConfig) -> crate::cluster::ControllerConfig {
    crate::cluster::ControllerConfig {
        broker_session_timeout_ms: i64::try_from(config.broker_session_timeout_ms).unwrap_or(9000),
        ..crate::cluster::ControllerConfig::default()
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
    }
}

/// How often the group coordinator looks at sessions, join and sync phases and offset expiry.
const GROUP_TICK_MS: u64 = 100;

/// The leader epoch of every partition on a single node (replication will move it).
pub const LEADER_EPOCH: i32 = 0;

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
        let metadata = MetadataLog::open(
            &env,
            &config.log_dir,
            quorum_config(&config),
            config.cluster_id.clone(),
        )
        .await?;
        let groups = Arc::new(GroupService::new(
            env.clone(),
            logs.clone(),
            config.group.clone(),
        ));
        let config_for_controller = config.clone();
        Ok(Arc::new(Broker {
            env,
            config: Arc::new(config),
            logs,
            metadata,
            shutdown,
            admin: tokio::sync::Mutex::new(()),
            producer_ids: producer_ids::ProducerIds::default(),
            groups,
            ready: watch::Sender::new(false),
            controller: Arc::new(controller::ControllerService::new(controller_config(
                &config_for_controller,
            ))),
            lifecycle: watch::Sender::new(controller::Lifecycle::Starting),
        }))
    }

    /// Waits until the metadata has caught up with what this node held before, then opens
    /// the partition logs it names, removes the directories of partitions it does not know
    /// (topics deleted while the broker was down, or half-created ones), and from then on
    /// follows every committed change. Clients are served from here on.
    pub async fn load(self: &Arc<Self>) -> Result<(), BrokerError> {
        self.metadata.wait_caught_up().await?;
        let mut synced = BTreeMap::new();
        self.sync_partitions(&mut synced).await?;
        for tp in self.logs.partitions_on_disk()? {
            if tp.topic == METADATA_TOPIC {
                continue;
            }
            let state = self.metadata.state();
            let known = state
                .topics
                .get(&tp.topic)
                .is_some_and(|t| tp.partition < t.partitions);
            if !known {
                tracing::info!(partition = %tp, "removing the directory of a partition the metadata does not know");
                self.logs.delete_log(&tp).await?;
            }
        }
        self.ready.send_replace(true);
        tracing::info!(
            node = self.config.node_id,
            "metadata caught up; serving clients"
        );
        Ok(())
    }

    /// Follows the metadata: after every committed change, opens the logs of new partitions
    /// and deletes those of deleted topics.
    pub async fn follow_metadata(self: Arc<Self>) {
        let mut changes = self.metadata.subscribe();
        let mut synced = BTreeMap::new();
        loop {
            if let Err(e) = self.sync_partitions(&mut synced).await {
                tracing::error!(error = %e, "could not bring the partition logs in line with the metadata");
            }
            if changes.changed().await.is_err() {
                return;
            }
        }
    }

    /// Brings the open logs in line with the metadata: `synced` holds each topic's id as of
    /// the last call.
    async fn sync_partitions(
        &self,
        synced: &mut BTreeMap<String, (uuid::Uuid, i32)>,
    ) -> Result<(), BrokerError> {
        let state = self.metadata.state();
        for (name, (id, partitions)) in synced.clone() {
            let same = state.topics.get(&name).is_some_and(|t| t.id == id);
            if !same {
                for p in 0..partitions {
                    self.logs
                        .delete_log(&TopicPartition::new(name.clone(), p))
                        .await?;
                }
                synced.remove(&name);
            }
        }
        for t in state.topics.values() {
            let from = synced.get(&t.name).map_or(0, |(_, n)| *n);
            if from >= t.partitions {
                continue;
            }
            let cfg = self.config.topic_log_config(&t.configs);
            for p in from..t.partitions {
                self.logs
                    .open_log(&TopicPartition::new(t.name.clone(), p), cfg.clone())
                    .await?;
                if t.name == OFFSETS_TOPIC && !self.groups.serves(p) {
                    self.groups.load(p);
                }
            }
            synced.insert(t.name.clone(), (t.id, t.partitions));
        }
        Ok(())
    }

    /// Waits until the broker serves clients (false if it shut down first).
    pub async fn wait_ready(&self) -> bool {
        let mut ready = self.ready.subscribe();
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
    let (listener, local_addr) = if config.listen.is_empty() {
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
            if b.wait_ready().await {
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
                let background = tokio::spawn(
                    b.logs
                        .clone()
                        .run_background(b.config.background_intervals()),
                );
                let ticks = tokio::spawn(b.groups.clone().run_ticks(GROUP_TICK_MS));
                let follow = tokio::spawn(b.clone().follow_metadata());
                Some([background, ticks, follow])
            })
        };
        match controller {
            Some(c) => {
                tokio::join!(
                    server::serve(b.clone(), listener),
                    server::serve(b.clone(), c)
                );
            }
            None => server::serve(b.clone(), listener).await,
        }
        if let Some(l) = lifecycle {
            let _ = l.await;
        }
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
