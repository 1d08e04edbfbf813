//! A client's view of the cluster: the bootstrap servers, one connection per broker (opened on
//! demand, reopened after failures), and the metadata cache that says who leads what.
//!
//! Requests for a partition go to its leader as the metadata names it; nothing assumes the
//! bootstrap server leads anything. The cache is refreshed when it is older than
//! `metadata.max.age.ms`, when a caller marks it stale (after NOT_LEADER_OR_FOLLOWER,
//! UNKNOWN_TOPIC_OR_PARTITION or a connection error), or when a topic is missing from it.

use super::connection::BrokerConnection;
use super::error::ClientError;
use super::metadata::{ClusterMetadata, TopicMetadata, metadata_request};
use super::{ClientConfig, TopicPartition};
use crate::env::{Env, monotonic_now};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, MetadataRequest};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;

/// The connection to one address, and when dialling it last failed.
#[derive(Default)]
struct Slot {
    /// The open connection, if any.
    conn: Option<Arc<BrokerConnection>>,
    /// When the last dial failed, for `reconnect.backoff.ms`.
    failed_at: Option<Instant>,
}

/// The metadata cache.
struct MetaState {
    /// The current view; replaced whole on refresh, so readers hold a consistent snapshot.
    current: Arc<ClusterMetadata>,
    /// When it was last refreshed.
    fetched_at: Option<Instant>,
    /// Set by callers that saw it is wrong.
    stale: bool,
    /// Counts refreshes, so a caller that waited for another's refresh can skip its own.
    generation: u64,
    /// The topics this client uses; each refresh asks for all of them.
    interest: BTreeSet<String>,
    /// The highest leader epoch seen per partition, in metadata, fetched batches or committed
    /// offsets (Kafka's `lastSeenLeaderEpochs`): metadata naming an older epoch came from a
    /// broker that has not heard of the newer leader, and is not taken.
    epochs: BTreeMap<TopicPartition, i32>,
    /// The last answer named an older epoch than one already seen: the next refresh asks
    /// another broker than the one with an open connection, which may be that stale one.
    ask_elsewhere: bool,
}

/// Connections and metadata, shared by one client's tasks.
pub struct Cluster {
    /// The seam.
    env: Env,
    /// Shared client settings.
    config: ClientConfig,
    /// Whether Metadata requests may auto-create topics (the producer's behaviour; the admin
    /// client and the CLI's consumer say no).
    allow_auto_create: bool,
    /// Connections by address.
    slots: Mutex<BTreeMap<String, Arc<tokio::sync::Mutex<Slot>>>>,
    /// The metadata cache.
    meta: Mutex<MetaState>,
    /// One refresh at a time.
    refreshing: tokio::sync::Mutex<()>,
}

impl Cluster {
    /// A cluster reached through `config.bootstrap_servers`; nothing is dialled yet.
    pub fn new(
        env: Env,
        config: ClientConfig,
        allow_auto_create: bool,
    ) -> Result<Arc<Cluster>, ClientError> {
        config.validate()?;
        Ok(Arc::new(Cluster {
            env,
            config,
            allow_auto_create,
            slots: Mutex::new(BTreeMap::new()),
            meta: Mutex::new(MetaState {
                current: Arc::new(ClusterMetadata::default()),
                fetched_at: None,
                stale: true,
                generation: 0,
                interest: BTreeSet::new(),
                epochs: BTreeMap::new(),
                ask_elsewhere: false,
            }),
            refreshing: tokio::sync::Mutex::new(()),
        }))
    }

    /// The client settings.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The seam.
    pub fn env(&self) -> &Env {
        &self.env
    }

    fn meta(&self) -> MutexGuard<'_, MetaState> {
        self.meta.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current metadata snapshot (possibly empty or stale).
    pub fn metadata(&self) -> Arc<ClusterMetadata> {
        self.meta().current.clone()
    }

    /// Says the cached metadata is wrong; the next lookup refreshes it.
    pub fn mark_stale(&self) {
        self.meta().stale = true;
    }

    /// Whether the cache should be refreshed before it is trusted.
    pub fn needs_refresh(&self) -> bool {
        let m = self.meta();
        let max_age = Duration::from_millis(self.config.metadata_max_age_ms);
        m.stale || m.fetched_at.is_none_or(|t| t + max_age <= monotonic_now())
    }

    /// Adds topics to those every refresh asks for.
    pub fn add_interest(&self, topics: &[String]) {
        self.meta().interest.extend(topics.iter().cloned());
    }

    /// Refreshes the metadata for every topic of interest plus `topics`. If another caller's
    /// refresh finished while this one waited for its turn, and it covered `topics`, its result
    /// is used instead of asking again.
    pub async fn refresh(&self, topics: &[String]) -> Result<Arc<ClusterMetadata>, ClientError> {
        let seen = self.meta().generation;
        let _turn = self.refreshing.lock().await;
        {
            let mut m = self.meta();
            let covered = topics.iter().all(|t| m.interest.contains(t));
            if m.generation != seen && !m.stale && covered {
                return Ok(m.current.clone());
            }
            m.interest.extend(topics.iter().cloned());
        }
        let wanted: Vec<String> = self.meta().interest.iter().cloned().collect();
        let resp = self.fetch_metadata(Some(&wanted)).await?;
        Ok(self.install(resp, false))
    }

    /// Refreshes the metadata of every topic in the cluster (for listing).
    pub async fn refresh_all(&self) -> Result<Arc<ClusterMetadata>, ClientError> {
        let _turn = self.refreshing.lock().await;
        let resp = self.fetch_metadata(None).await?;
        Ok(self.install(resp, true))
    }

    fn install(&self, mut newer: ClusterMetadata, all_topics: bool) -> Arc<ClusterMetadata> {
        let mut m = self.meta();
        let m = &mut *m;
        let outdated = newer.keep_newest_epochs(&m.current, &mut m.epochs);
        if outdated {
            tracing::debug!("metadata named leader epochs older than ones seen; kept the newer");
        }
        let mut merged = (*m.current).clone();
        merged.merge(newer, all_topics);
        m.current = Arc::new(merged);
        m.fetched_at = Some(monotonic_now());
        m.stale = outdated;
        m.ask_elsewhere = outdated;
        m.generation += 1;
        m.current.clone()
    }

    /// Records that `epoch` of `tp` exists (a fetched batch or a committed offset carried it,
    /// as Kafka's `updateLastSeenEpochIfNewer`). Metadata older than it is refreshed and, until
    /// a newer answer comes, not taken.
    pub fn note_epoch(&self, tp: &TopicPartition, epoch: i32) {
        if epoch < 0 {
            return;
        }
        let mut m = self.meta();
        let known = m.current.leader_epoch(tp);
        let seen = m.epochs.entry(tp.clone()).or_insert(epoch);
        *seen = (*seen).max(epoch);
        if known < epoch {
            m.stale = true;
        }
    }

    async fn fetch_metadata(
        &self,
        topics: Option<&[String]>,
    ) -> Result<ClusterMetadata, ClientError> {
        let elsewhere = self.meta().ask_elsewhere;
        let conn = match elsewhere {
            true => self.some_broker().await?,
            false => self.any_broker().await?,
        };
        let version = conn.version_for(ApiKey::Metadata)?;
        let req: MetadataRequest = metadata_request(version, topics, self.allow_auto_create);
        let resp = conn.start_at(&req, version).await?.wait().await?;
        Ok(ClusterMetadata::from_response(&resp))
    }

    /// A topic's metadata, refreshing the cache if the topic is missing or the cache stale.
    /// Waits (up to `default.api.timeout.ms`) while the topic has no leaders yet or the
    /// cluster is unreachable; a topic that a fresh answer says does not exist is an error at
    /// once (Kafka calls UNKNOWN_TOPIC_OR_PARTITION retriable, but asking again will not
    /// create it).
    pub async fn topic(&self, name: &str) -> Result<TopicMetadata, ClientError> {
        let names = [name.to_string()];
        let what = format!("metadata for topic '{name}'");
        let found = self.retrying(&what, true, || async {
            let md = if self.needs_refresh() || !self.metadata().topics.contains_key(name) {
                self.refresh(&names).await?
            } else {
                self.metadata()
            };
            if let Some(t) = md.topics.get(name) {
                return Ok(Ok(t.clone()));
            }
            self.mark_stale();
            match md.topic_errors.get(name).copied() {
                None | Some(ResponseError::UnknownTopicOrPartition) => Ok(Err(ClientError::kafka(
                    ResponseError::UnknownTopicOrPartition,
                    format!("topic '{name}' does not exist"),
                    None,
                ))),
                Some(code) => Err(ClientError::kafka(code, format!("topic '{name}'"), None)),
            }
        });
        found.await?
    }

    /// Runs `op` until it succeeds, fails for good, or `default.api.timeout.ms` passes,
    /// pausing `retry.backoff.ms` between attempts. Only retriable errors are retried, and
    /// with `idempotent` false not those whose outcome is unknown (the operation may have
    /// happened). Errors that mean stale metadata mark it stale.
    pub async fn retrying<T, F, Fut>(
        &self,
        what: &str,
        idempotent: bool,
        mut op: F,
    ) -> Result<T, ClientError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let limit = Duration::from_millis(self.config.default_api_timeout_ms);
        let deadline = monotonic_now() + limit;
        let backoff = Duration::from_millis(self.config.retry_backoff_ms);
        let mut last: Option<ClientError> = None;
        loop {
            let attempt = tokio::time::timeout_at(deadline, op()).await;
            let err = match attempt {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) => e,
                // The error that kept the operation from succeeding says more than the clock.
                Err(_) => {
                    return Err(last.unwrap_or_else(|| ClientError::TimedOut {
                        what: what.to_string(),
                        timeout_ms: self.config.default_api_timeout_ms,
                    }));
                }
            };
            if err.needs_metadata_refresh() {
                self.mark_stale();
            }
            let retry = err.is_retriable() && (idempotent || !err.outcome_unknown());
            if !retry || monotonic_now() + backoff >= deadline {
                return Err(err);
            }
            tracing::debug!(%what, error = %err, "retrying");
            last = Some(err);
            tokio::time::sleep(backoff).await;
        }
    }

    /// The connection to `addr`, dialling it if there is none or the last one broke. A dial
    /// soon after a failed one first waits out `reconnect.backoff.ms`.
    pub async fn connect(&self, addr: &str) -> Result<Arc<BrokerConnection>, ClientError> {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            slots.entry(addr.to_string()).or_default().clone()
        };
        let mut slot = slot.lock().await;
        if let Some(c) = slot.conn.as_ref().filter(|c| c.is_alive()) {
            return Ok(c.clone());
        }
        slot.conn = None;
        if let Some(failed) = slot.failed_at {
            let backoff = Duration::from_millis(self.config.reconnect_backoff_ms);
            tokio::time::sleep_until(failed + backoff).await;
        }
        match BrokerConnection::open(&self.env, addr, &self.config).await {
            Ok(c) => {
                let c = Arc::new(c);
                slot.conn = Some(c.clone());
                slot.failed_at = None;
                Ok(c)
            }
            Err(e) => {
                slot.failed_at = Some(monotonic_now());
                Err(e)
            }
        }
    }

    /// The connection to a broker by id, as the metadata gives its address.
    pub async fn broker(&self, id: i32) -> Result<Arc<BrokerConnection>, ClientError> {
        let addr = self.metadata().brokers.get(&id).map(|b| b.addr());
        match addr {
            Some(a) => self.connect(&a).await,
            None => {
                self.mark_stale();
                Err(ClientError::kafka(
                    ResponseError::BrokerNotAvailable,
                    format!("broker {id} is not in the metadata"),
                    None,
                ))
            }
        }
    }

    /// The connection to the leader of `tp`, refreshing metadata if it is not known.
    pub async fn leader(&self, tp: &TopicPartition) -> Result<Arc<BrokerConnection>, ClientError> {
        let mut leader = self.metadata().leader_id(tp);
        if leader.is_none() || self.needs_refresh() {
            leader = self
                .refresh(std::slice::from_ref(&tp.topic))
                .await?
                .leader_id(tp);
        }
        match leader {
            Some(id) => self.broker(id).await,
            None => {
                self.mark_stale();
                Err(ClientError::kafka(
                    ResponseError::LeaderNotAvailable,
                    format!("partition {tp} has no leader"),
                    None,
                ))
            }
        }
    }

    /// The controller if the metadata names one, else any broker. Admin changes go there.
    pub async fn controller(&self) -> Result<Arc<BrokerConnection>, ClientError> {
        if self.metadata().controller_id.is_none() || self.needs_refresh() {
            // Learn who the controller is (again, after NOT_CONTROLLER marked the cache
            // stale); without it any broker will do.
            let _ = self.refresh(&[]).await;
        }
        match self.metadata().controller_id {
            Some(id) => match self.broker(id).await {
                Ok(c) => Ok(c),
                Err(_) => self.any_broker().await,
            },
            None => self.any_broker().await,
        }
    }

    /// Any reachable broker: an open connection if there is one, else the known brokers and
    /// then the bootstrap servers, starting at a random one so clients spread out.
    pub async fn any_broker(&self) -> Result<Arc<BrokerConnection>, ClientError> {
        if let Some(c) = self.open_connection() {
            return Ok(c);
        }
        self.some_broker().await
    }

    /// A broker chosen at random among the known ones and the bootstrap servers, trying the
    /// others in turn if it is unreachable.
    async fn some_broker(&self) -> Result<Arc<BrokerConnection>, ClientError> {
        let mut candidates: Vec<String> =
            self.metadata().brokers.values().map(|b| b.addr()).collect();
        for b in &self.config.bootstrap_servers {
            if !candidates.contains(b) {
                candidates.push(b.clone());
            }
        }
        let n = candidates.len();
        let start = self.env.rng.gen_range(0..n.max(1) as u64) as usize;
        candidates.rotate_left(start.min(n));
        let mut last = None;
        for addr in candidates {
            match self.connect(&addr).await {
                Ok(c) => return Ok(c),
                Err(e) => {
                    tracing::debug!(%addr, error = %e, "broker unreachable");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or(ClientError::Config("no brokers to connect to".into())))
    }

    /// A live connection already open, without waiting on any lock.
    fn open_connection(&self) -> Option<Arc<BrokerConnection>> {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.values().find_map(|s| {
            let s = s.try_lock().ok()?;
            s.conn.as_ref().filter(|c| c.is_alive()).cloned()
        })
    }
}
