//! The broker: connection handling and request dispatch, the glue that turns Kafka requests
//! into calls on the log and the metadata.
//!
//! - [`server`]: the accept loop and one task per connection; requests are handled in the
//!   order they arrive and answered in that order, while slow answers (a produce waiting for
//!   its fsync, a fetch waiting for data) proceed concurrently.
//! - [`api`]: one file per Kafka API: decode, validate, apply, build the response.
//! - [`topics`]: topic administration shared by the admin APIs and auto-creation.

pub mod api;
pub mod producer_ids;
pub mod server;
pub mod topics;

use crate::cluster::{METADATA_TOPIC, MetadataError, MetadataLog};
use crate::config::BrokerConfig;
use crate::env::Env;
use crate::group::{GroupService, OFFSETS_TOPIC};
use crate::log::{LogError, LogManager, PartitionLog, TopicPartition};
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
}

/// How often the group coordinator looks at sessions, join and sync phases and offset expiry.
const GROUP_TICK_MS: u64 = 100;

/// The leader epoch of every partition on a single node (replication will move it).
pub const LEADER_EPOCH: i32 = 0;

impl Broker {
    /// Opens the data directory: replays the metadata, recovers every partition log, and
    /// removes partition directories the metadata no longer knows (topics deleted while the
    /// broker was down, or half-created ones).
    pub async fn open(
        env: Env,
        config: BrokerConfig,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Arc<Broker>, BrokerError> {
        let logs = LogManager::new(env.clone(), &config.log_dir).await?;
        let metadata = MetadataLog::open(&env, &config.log_dir, config.node_id).await?;
        let state = metadata.state();
        for t in state.topics.values() {
            let cfg = config.topic_log_config(&t.configs);
            for p in 0..t.partitions {
                logs.open_log(&TopicPartition::new(t.name.clone(), p), cfg.clone())
                    .await?;
            }
        }
        for tp in logs.partitions_on_disk()? {
            if tp.topic == METADATA_TOPIC {
                continue;
            }
            let known = state
                .topics
                .get(&tp.topic)
                .is_some_and(|t| tp.partition < t.partitions);
            if !known {
                tracing::info!(partition = %tp, "removing the directory of a partition the metadata does not know");
                logs.delete_log(&tp).await?;
            }
        }
        let groups = Arc::new(GroupService::new(
            env.clone(),
            logs.clone(),
            config.group.clone(),
        ));
        if let Some(t) = state.topics.get(OFFSETS_TOPIC) {
            for p in 0..t.partitions {
                groups.load(p);
            }
        }
        Ok(Arc::new(Broker {
            env,
            config: Arc::new(config),
            logs,
            metadata,
            shutdown,
            admin: tokio::sync::Mutex::new(()),
            producer_ids: producer_ids::ProducerIds::default(),
            groups,
        }))
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
        if let Err(e) = self.metadata.close().await {
            tracing::error!(error = %e, "closing the metadata log failed");
        }
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

/// Binds `config.listen`, opens the broker and starts serving. With port 0, the advertised
/// address gets the port actually bound.
pub async fn start(env: Env, mut config: BrokerConfig) -> Result<RunningBroker, BrokerError> {
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let listen = config.listen.clone();
    let bind_error = |error| BrokerError::Bind {
        addr: listen.clone(),
        error,
    };
    let listener = env.net.bind(&listen).await.map_err(bind_error)?;
    let local_addr = listener.local_addr().map_err(bind_error)?;
    let (host, port) = split_host_port(&config.advertised);
    if port == 0 {
        config.advertised = format!("{}:{}", bracket(&host), local_addr.port());
    }
    let broker = Broker::open(env.clone(), config, shutdown_rx).await?;
    let background = tokio::spawn(
        broker
            .logs
            .clone()
            .run_background(broker.config.background_intervals()),
    );
    let ticks = tokio::spawn(broker.groups.clone().run_ticks(GROUP_TICK_MS));
    let b = broker.clone();
    let task = tokio::spawn(async move {
        server::serve(b.clone(), listener).await;
        background.abort();
        ticks.abort();
        b.close().await;
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
