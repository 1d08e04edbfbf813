//! The controller's service on a node with the controller role, and every broker's side of
//! it (registration and heartbeats), as KRaft's `QuorumController` and `BrokerLifecycleManager`
//! do it.
//!
//! The decisions are the pure [`Controller`]'s; this module runs them on the active
//! controller (the quorum's leader once it serves), proposes what they decide through
//! [`crate::cluster::MetadataLog::update`], and answers once it is committed. Sessions live in
//! the active controller's memory: a node that becomes active starts every live broker's
//! session afresh ([`Controller::activate`]).
//!
//! Each broker registers with the active controller (a new incarnation id per process run),
//! then heartbeats every `broker.heartbeat.interval.ms` with the offset of the metadata it has
//! applied; it is unfenced once it has caught up. On a clean shutdown it asks for a controlled
//! shutdown, so its leaderships move before it goes.

use super::Broker;
use crate::client::ClientConfig;
use crate::client::connection::BrokerConnection;
use crate::cluster::controller::{AlterPartition, NewTopic};
use crate::cluster::controller::{BrokerRegistration, Heartbeat, HeartbeatReply};
use crate::cluster::{
    Controller, ControllerConfig, ControllerError, Endpoint, MetadataError, MetadataRecord,
    TopicMeta,
};
use crate::raft::Epoch;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    BrokerHeartbeatRequest, BrokerId, BrokerRegistrationRequest,
    broker_registration_request::Listener,
};
use kafka_protocol::protocol::{Request, StrBytes};
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// BrokerRegistration's version spoken between runnel nodes.
pub const BROKER_REGISTRATION_VERSION: i16 = 4;
/// BrokerHeartbeat's.
pub const BROKER_HEARTBEAT_VERSION: i16 = 1;

/// Producer ids reserved per AllocateProducerIds (Kafka's controller hands out 1000 too).
pub const PRODUCER_ID_BLOCK: i64 = 1000;

/// How often the active controller looks at sessions and leader balance.
const TICK_MS: u64 = 250;

/// Why a controller request failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("{0}")]
    Controller(#[from] ControllerError),
    #[error("{0}")]
    Metadata(#[from] MetadataError),
    #[error("the active controller answered {0:?}")]
    Code(ResponseError),
    /// The request never reached a controller (none is known, or it cannot be dialled), so
    /// it surely did not take effect and may be sent again.
    #[error("cannot reach the active controller: {0}")]
    Unreachable(String),
    /// The request was sent but no answer came: it may have taken effect.
    #[error("the active controller did not answer: {0}")]
    Lost(String),
}

impl CallError {
    /// The Kafka error to answer with.
    pub fn code(&self) -> ResponseError {
        match self {
            CallError::Controller(e) => e.code(),
            CallError::Metadata(e) if e.is_not_controller() => ResponseError::NotController,
            CallError::Metadata(_) => ResponseError::UnknownServerError,
            CallError::Code(c) => *c,
            CallError::Unreachable(_) => ResponseError::NotController,
            // Kafka's answer to a forwarded request that timed out: the client must not
            // assume it failed.
            CallError::Lost(_) => ResponseError::RequestTimedOut,
        }
    }
}

/// What AlterConfigs changes: a topic's configs, or dynamic broker configs (one broker's, or
/// with `None` the cluster-wide defaults).
#[derive(Debug, Clone, Copy)]
pub enum ConfigTarget<'a> {
    Topic(&'a str),
    Brokers(Option<i32>),
}

/// The controller's decisions and the epoch it last became active in, and this node's
/// connection to the active controller when that is another node.
pub struct ControllerService {
    inner: Mutex<(Controller, Option<Epoch>)>,
    remote: tokio::sync::Mutex<Option<(i32, Arc<BrokerConnection>)>>,
}

impl ControllerService {
    /// A service with the broker's settings.
    pub fn new(config: ControllerConfig) -> ControllerService {
        ControllerService {
            inner: Mutex::new((Controller::new(config), None)),
            remote: tokio::sync::Mutex::new(None),
        }
    }

    /// Whether this node is the active controller: a controller whose quorum it leads and
    /// serves.
    pub fn is_active(&self, broker: &Broker) -> bool {
        broker.config.roles.controller
            && broker.metadata.controller_id() == Some(broker.config.node_id)
            && broker.metadata.quorum().status().serving
    }

    /// Sends `req` in `version` to the active controller's controller listener and waits for
    /// the answer. A broken connection is dropped, to be opened afresh by the next call.
    pub async fn send_remote<R: Request>(
        &self,
        broker: &Broker,
        req: &R,
        version: i16,
    ) -> Result<R::Response, CallError> {
        self.send_remote_within(broker, req, version, None).await
    }

    /// [`Self::send_remote`], waiting at most `timeout` (else `request.timeout.ms`) for the
    /// answer; a request that times out breaks the connection, so the next one dials the
    /// controller afresh (a connection that silently died, say across a network partition,
    /// is not kept).
    pub async fn send_remote_within<R: Request>(
        &self,
        broker: &Broker,
        req: &R,
        version: i16,
        timeout: Option<Duration>,
    ) -> Result<R::Response, CallError> {
        // An election under way ends within a session, or the quorum has bigger trouble.
        let session = Duration::from_millis(broker.config.broker_session_timeout_ms.max(1));
        let leader = await_controller(broker, timeout.map_or(session, |t| t.min(session))).await?;
        let conn = {
            let mut slot = self.remote.lock().await;
            let stale = match &*slot {
                Some((id, c)) => *id != leader || !c.is_alive(),
                None => true,
            };
            if stale {
                let addr = broker.config.quorum.voters.get(&leader).ok_or_else(|| {
                    CallError::Unreachable(format!("no controller address for node {leader}"))
                })?;
                // A controller that cannot be reached within a session is as good as gone:
                // the dial and the ApiVersions handshake are bounded by it too (a handshake
                // sent into a partition waited out request.timeout.ms, 30 s, while the
                // controller had moved elsewhere: seed 30222).
                let session = broker.config.broker_session_timeout_ms.max(1);
                let defaults = ClientConfig::default();
                let config = ClientConfig {
                    client_id: format!("runnel-broker-{}", broker.config.node_id),
                    connect_timeout_ms: defaults.connect_timeout_ms.min(session),
                    request_timeout_ms: defaults.request_timeout_ms.min(session),
                    ..defaults
                };
                let c = BrokerConnection::open(&broker.env, addr, &config)
                    .await
                    .map_err(|e| CallError::Unreachable(e.to_string()))?;
                *slot = Some((leader, Arc::new(c)));
            }
            match &*slot {
                Some((_, c)) => c.clone(),
                None => return Err(CallError::Unreachable("no connection".into())),
            }
        };
        let answer = match conn.start_at(req, version).await {
            Ok(in_flight) => match timeout {
                Some(t) => in_flight.with_timeout(t).wait().await,
                None => in_flight.wait().await,
            }
            .map_err(|e| CallError::Lost(e.to_string())),
            Err(e) => Err(CallError::Unreachable(e.to_string())),
        };
        if answer.is_err() {
            let mut slot = self.remote.lock().await;
            if slot.as_ref().is_some_and(|(_, c)| Arc::ptr_eq(c, &conn)) {
                *slot = None;
            }
        }
        answer
    }

    /// CreateTopics on the active controller: one result per topic, in order (with
    /// `validate_only`, the checks and placement without the records).
    pub async fn create_topics(
        &self,
        broker: &Broker,
        topics: &[NewTopic],
        validate_only: bool,
    ) -> Result<Vec<Result<TopicMeta, ControllerError>>, CallError> {
        let mut rng = StdRng::seed_from_u64(broker.env.rng.next_u64());
        let (_, results) = broker
            .metadata
            .update(|s| {
                let (records, results) =
                    self.with(broker, s, |c, _| c.create_topics(s, topics, &mut rng));
                let records = if validate_only { vec![] } else { records };
                Ok::<_, CallError>((records, results))
            })
            .await?;
        Ok(results)
    }

    /// CreatePartitions for one topic on the active controller: the grown topic.
    pub async fn create_partitions(
        &self,
        broker: &Broker,
        name: &str,
        count: i32,
        assignments: &[Vec<i32>],
        validate_only: bool,
    ) -> Result<TopicMeta, CallError> {
        let mut rng = StdRng::seed_from_u64(broker.env.rng.next_u64());
        let (_, grown) = broker
            .metadata
            .update(|s| {
                let (records, grown) = self.with(broker, s, |c, _| {
                    c.create_partitions(s, name, count, assignments, &mut rng)
                })?;
                let records = if validate_only { vec![] } else { records };
                Ok::<_, CallError>((records, grown))
            })
            .await?;
        Ok(grown)
    }

    /// AlterConfigs or IncrementalAlterConfigs on the active controller, of one topic (see
    /// [`Controller::alter_topic_configs`]) or of dynamic broker configs (see
    /// [`Controller::alter_broker_configs`]); with `validate_only`, the checks alone.
    pub async fn alter_configs(
        &self,
        broker: &Broker,
        target: ConfigTarget<'_>,
        ops: &[(String, crate::cluster::controller::ConfigOp)],
        replace_all: bool,
        validate_only: bool,
    ) -> Result<(), CallError> {
        broker
            .metadata
            .update(|s| {
                let (records, _) = self.with(broker, s, |c, _| match target {
                    ConfigTarget::Topic(name) => c.alter_topic_configs(s, name, ops, replace_all),
                    ConfigTarget::Brokers(id) => c.alter_broker_configs(s, id, ops, replace_all),
                })?;
                let records = if validate_only { vec![] } else { records };
                Ok::<_, CallError>((records, ()))
            })
            .await?;
        Ok(())
    }

    /// DeleteTopics for one topic on the active controller: the topic as it was.
    pub async fn delete_topic(&self, broker: &Broker, name: &str) -> Result<TopicMeta, CallError> {
        let (_, meta) = broker
            .metadata
            .update(|s| {
                let (records, meta) = self.with(broker, s, |c, _| c.delete_topic(s, name))?;
                Ok::<_, CallError>((records, meta))
            })
            .await?;
        Ok(meta)
    }

    /// AllocateProducerIds on the active controller: the first id of a block of
    /// [`PRODUCER_ID_BLOCK`] reserved for `broker_id` in the metadata log.
    pub async fn allocate_producer_ids(
        &self,
        broker: &Broker,
        broker_id: i32,
        broker_epoch: i64,
    ) -> Result<i64, CallError> {
        let (_, start) = broker
            .metadata
            .update(|s| {
                match s.brokers.get(&broker_id) {
                    Some(b) if b.epoch == broker_epoch => {}
                    Some(b) => {
                        return Err(CallError::Controller(ControllerError::StaleBrokerEpoch {
                            broker_id,
                            expected: b.epoch,
                            got: broker_epoch,
                        }));
                    }
                    None => {
                        return Err(CallError::Controller(
                            ControllerError::BrokerIdNotRegistered(broker_id),
                        ));
                    }
                }
                let start = s.next_producer_id;
                let record = MetadataRecord::ProducerIdsAllocated {
                    next: start + PRODUCER_ID_BLOCK,
                };
                Ok((vec![record], start))
            })
            .await?;
        Ok(start)
    }

    /// Runs `f` on the controller, first activating it if this node became active in a new
    /// epoch since the last call.
    fn with<R>(
        &self,
        broker: &Broker,
        state: &crate::cluster::ClusterState,
        f: impl FnOnce(&mut Controller, i64) -> R,
    ) -> R {
        let now = broker.env.clock.now_ms();
        let epoch = broker.metadata.quorum().status().epoch;
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.1 != Some(epoch) {
            inner.0.activate(state, now);
            inner.1 = Some(epoch);
        }
        f(&mut inner.0, now)
    }

    /// AlterPartition on the active controller: the partition's ISR, leader epoch and
    /// partition epoch once the change is committed (or at once if it changes nothing).
    pub async fn alter_partition(
        &self,
        broker: &Broker,
        req: AlterPartition,
    ) -> Result<IsrState, CallError> {
        let (_, after) = broker
            .metadata
            .update(|s| {
                self.with(broker, s, |c, _| c.alter_partition(s, &req))
                    .map_err(CallError::from)
            })
            .await?;
        Ok(IsrState {
            isr: after.isr,
            leader_epoch: after.leader_epoch,
            partition_epoch: after.partition_epoch,
        })
    }

    /// Tells the controller of this process which broker incarnation runs beside it.
    pub fn set_local_broker(&self, broker_id: i32, incarnation_id: [u8; 16]) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.0.set_local_broker(broker_id, incarnation_id);
    }

    /// BrokerRegistration on the active controller: the broker's epoch once committed.
    pub async fn register(
        &self,
        broker: &Broker,
        reg: BrokerRegistration,
    ) -> Result<i64, CallError> {
        let (_, epoch) = broker
            .metadata
            .update(|s| {
                self.with(broker, s, |c, now| c.register_broker(s, &reg, now))
                    .map_err(CallError::from)
            })
            .await?;
        Ok(epoch)
    }

    /// BrokerHeartbeat on the active controller.
    pub async fn heartbeat(
        &self,
        broker: &Broker,
        hb: Heartbeat,
    ) -> Result<HeartbeatReply, CallError> {
        let (_, reply) = broker
            .metadata
            .update(|s| {
                self.with(broker, s, |c, now| c.heartbeat(s, &hb, now))
                    .map_err(CallError::from)
            })
            .await?;
        Ok(reply)
    }

    /// The active controller's standing duties: fence brokers whose sessions expired and move
    /// their leaderships; restore preferred leaders.
    pub async fn run_ticks(self: Arc<Self>, broker: Arc<Broker>) {
        loop {
            tokio::time::sleep(Duration::from_millis(TICK_MS)).await;
            if !broker.metadata.quorum().status().serving {
                continue;
            }
            let r = broker
                .metadata
                .update(|s| {
                    let records = self.with(&broker, s, |c, now| c.tick(s, now));
                    Ok::<_, MetadataError>((records, ()))
                })
                .await;
            if let Err(e) = r {
                tracing::debug!(error = %e, "controller tick");
            }
        }
    }
}

/// Where this broker's registration stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// Not registered yet.
    Starting,
    /// Registered with `epoch`; fenced or not.
    Registered { epoch: i64, fenced: bool },
}

/// A broker's link to the active controller: a local call when this node is it, else a
/// request to its controller listener.
struct Link;

impl Link {
    async fn register(&mut self, b: &Broker, reg: &BrokerRegistration) -> Result<i64, CallError> {
        let leader = active_controller(b)?;
        if leader == b.config.node_id && b.config.roles.controller {
            return b.controller.register(b, reg.clone()).await;
        }
        let req = BrokerRegistrationRequest::default()
            .with_broker_id(BrokerId(reg.broker_id))
            .with_cluster_id(StrBytes::from_string(
                reg.cluster_id.clone().unwrap_or_default(),
            ))
            .with_incarnation_id(uuid::Uuid::from_bytes(reg.incarnation_id))
            .with_listeners(
                reg.endpoints
                    .iter()
                    .map(|e| {
                        Listener::default()
                            .with_name(StrBytes::from_string(e.name.clone()))
                            .with_host(StrBytes::from_string(e.host.clone()))
                            .with_port(e.port)
                            .with_security_protocol(e.security_protocol)
                    })
                    .collect(),
            )
            .with_rack(reg.rack.clone().map(StrBytes::from_string))
            .with_previous_broker_epoch(-1);
        let resp = b
            .controller
            .send_remote_within(
                b,
                &req,
                BROKER_REGISTRATION_VERSION,
                Some(session_timeout(b)),
            )
            .await?;
        match ResponseError::try_from_code(resp.error_code) {
            None => Ok(resp.broker_epoch),
            Some(c) => Err(CallError::Code(c)),
        }
    }

    async fn heartbeat(&mut self, b: &Broker, hb: Heartbeat) -> Result<HeartbeatReply, CallError> {
        let leader = active_controller(b)?;
        if leader == b.config.node_id && b.config.roles.controller {
            return b.controller.heartbeat(b, hb).await;
        }
        let req = BrokerHeartbeatRequest::default()
            .with_broker_id(BrokerId(hb.broker_id))
            .with_broker_epoch(hb.broker_epoch)
            .with_current_metadata_offset(hb.current_metadata_offset)
            .with_want_fence(hb.want_fence)
            .with_want_shut_down(hb.want_shutdown);
        let resp = b
            .controller
            .send_remote_within(b, &req, BROKER_HEARTBEAT_VERSION, Some(session_timeout(b)))
            .await?;
        match ResponseError::try_from_code(resp.error_code) {
            None => Ok(HeartbeatReply {
                is_caught_up: resp.is_caught_up,
                is_fenced: resp.is_fenced,
                in_controlled_shutdown: false,
                should_shutdown: resp.should_shut_down,
            }),
            Some(c) => Err(CallError::Code(c)),
        }
    }
}

/// A partition's ISR and epochs, as an AlterPartition answer gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrState {
    pub isr: Vec<i32>,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
}

/// AlterPartition's version spoken between runnel nodes (v3: the ISR with broker epochs).
pub const ALTER_PARTITION_VERSION: i16 = 3;

/// Sends an ISR change for a partition this broker leads to the active controller: a local
/// call when this node is it, else AlterPartition v3 to its controller listener.
pub async fn send_alter_partition(b: &Broker, req: AlterPartition) -> Result<IsrState, CallError> {
    use kafka_protocol::messages::AlterPartitionRequest;
    use kafka_protocol::messages::alter_partition_request::{
        BrokerState, PartitionData, TopicData,
    };
    let leader = active_controller(b)?;
    if leader == b.config.node_id && b.config.roles.controller {
        return b.controller.alter_partition(b, req).await;
    }
    let wire = AlterPartitionRequest::default()
        .with_broker_id(BrokerId(req.broker_id))
        .with_broker_epoch(req.broker_epoch)
        .with_topics(vec![
            TopicData::default()
                .with_topic_id(req.topic_id)
                .with_partitions(vec![
                    PartitionData::default()
                        .with_partition_index(req.partition)
                        .with_leader_epoch(req.leader_epoch)
                        .with_partition_epoch(req.partition_epoch)
                        .with_new_isr_with_epochs(
                            req.new_isr
                                .iter()
                                .map(|m| {
                                    BrokerState::default()
                                        .with_broker_id(BrokerId(m.broker_id))
                                        .with_broker_epoch(m.broker_epoch)
                                })
                                .collect(),
                        ),
                ]),
        ]);
    let resp = b
        .controller
        .send_remote_within(b, &wire, ALTER_PARTITION_VERSION, Some(session_timeout(b)))
        .await?;
    if let Some(c) = ResponseError::try_from_code(resp.error_code) {
        return Err(CallError::Code(c));
    }
    let p = resp
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .find(|p| p.partition_index == req.partition)
        .ok_or_else(|| {
            CallError::Unreachable("the AlterPartition answer has no partition".into())
        })?;
    if let Some(c) = ResponseError::try_from_code(p.error_code) {
        return Err(CallError::Code(c));
    }
    Ok(IsrState {
        isr: p.isr.iter().map(|b| b.0).collect(),
        leader_epoch: p.leader_epoch,
        partition_epoch: p.partition_epoch,
    })
}

/// The active controller this node knows of.
fn active_controller(b: &Broker) -> Result<i32, CallError> {
    b.metadata
        .controller_id()
        .ok_or_else(|| CallError::Unreachable("no active controller is known yet".into()))
}

/// The active controller, waiting up to `within` for the quorum to name one while an
/// election is under way; as Kafka's brokers hold a forwarded request until they know the
/// controller, rather than bouncing it with NOT_CONTROLLER.
async fn await_controller(b: &Broker, within: Duration) -> Result<i32, CallError> {
    let mut status = b.metadata.quorum().subscribe();
    let known = tokio::time::timeout(within, async {
        loop {
            if let Some(id) = status.borrow_and_update().leader_id {
                return Some(id);
            }
            if status.changed().await.is_err() {
                return None;
            }
        }
    })
    .await;
    match known {
        Ok(Some(id)) => Ok(id),
        _ => active_controller(b),
    }
}

/// This broker's registration: a fresh incarnation, its advertised PLAINTEXT listener.
fn registration(b: &Broker, incarnation_id: [u8; 16]) -> BrokerRegistration {
    let (host, port) = b.advertised();
    BrokerRegistration {
        broker_id: b.config.node_id,
        cluster_id: b.metadata.state().cluster_id.clone(),
        incarnation_id,
        endpoints: vec![Endpoint {
            name: "PLAINTEXT".into(),
            host,
            port: u16::try_from(port).unwrap_or(0),
            security_protocol: 0,
        }],
        rack: b.config.rack.clone(),
    }
}

/// Registers this broker and heartbeats until shutdown; then asks for a controlled shutdown
/// (bounded by the session timeout) before returning.
pub async fn run_lifecycle(b: Arc<Broker>) {
    let mut incarnation = [0u8; 16];
    incarnation[..8].copy_from_slice(&b.env.rng.next_u64().to_le_bytes());
    incarnation[8..].copy_from_slice(&b.env.rng.next_u64().to_le_bytes());
    if b.config.roles.controller {
        b.controller.set_local_broker(b.config.node_id, incarnation);
    }
    let reg = registration(&b, incarnation);
    let interval = Duration::from_millis(b.config.broker_heartbeat_interval_ms.max(1));
    let retry = Duration::from_millis(100);
    let mut link = Link;
    let mut shutdown = b.shutdown.clone();
    loop {
        if *shutdown.borrow() {
            break;
        }
        let state = *b.lifecycle.borrow();
        let wait = match state {
            Lifecycle::Starting => match link.register(&b, &reg).await {
                Ok(epoch) => {
                    tracing::info!(
                        broker_epoch = epoch,
                        "registered with the active controller"
                    );
                    b.lifecycle.send_replace(Lifecycle::Registered {
                        epoch,
                        fenced: true,
                    });
                    Duration::ZERO
                }
                Err(e) => {
                    tracing::debug!(error = %e, "registration");
                    retry
                }
            },
            Lifecycle::Registered { epoch, fenced } => {
                let hb = heartbeat(&b, epoch, false);
                let sent = b.env.clock.now_ms();
                match link.heartbeat(&b, hb).await {
                    Ok(reply) => {
                        let session =
                            i64::try_from(b.config.broker_session_timeout_ms).unwrap_or(9000);
                        let lease = if reply.is_fenced { 0 } else { sent + session };
                        b.session_lease_until
                            .store(lease, std::sync::atomic::Ordering::Relaxed);
                        tracing::trace!(lease, fenced = reply.is_fenced, "heartbeat answered");
                        if reply.is_fenced != fenced {
                            tracing::info!(
                                fenced = reply.is_fenced,
                                "the controller changed this broker's fencing"
                            );
                        }
                        b.lifecycle.send_replace(Lifecycle::Registered {
                            epoch,
                            fenced: reply.is_fenced,
                        });
                        if !reply.is_fenced && !*b.ready.borrow() {
                            b.ready.send_replace(true);
                            tracing::info!(
                                node = b.config.node_id,
                                broker_epoch = epoch,
                                "unfenced by the controller; serving clients"
                            );
                        }
                        if reply.is_fenced { retry } else { interval }
                    }
                    Err(CallError::Code(
                        ResponseError::StaleBrokerEpoch | ResponseError::BrokerIdNotRegistered,
                    ))
                    | Err(CallError::Controller(
                        ControllerError::StaleBrokerEpoch { .. }
                        | ControllerError::BrokerIdNotRegistered(_),
                    )) => {
                        tracing::warn!(
                            "the controller no longer knows this registration; registering again"
                        );
                        b.session_lease_until
                            .store(0, std::sync::atomic::Ordering::Relaxed);
                        b.lifecycle.send_replace(Lifecycle::Starting);
                        Duration::ZERO
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "heartbeat");
                        retry
                    }
                }
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => {}
        }
    }
    controlled_shutdown(&b, &mut link).await;
}

fn heartbeat(b: &Broker, epoch: i64, want_shutdown: bool) -> Heartbeat {
    Heartbeat {
        broker_id: b.config.node_id,
        broker_epoch: epoch,
        want_fence: false,
        want_shutdown,
        current_metadata_offset: b.metadata.quorum().status().applied - 1,
    }
}

/// KIP-631's controlled shutdown: heartbeats asking to shut down until the controller has
/// moved this broker's leaderships away, for at most the session timeout.
async fn controlled_shutdown(b: &Broker, link: &mut Link) {
    let Lifecycle::Registered { epoch, .. } = *b.lifecycle.borrow() else {
        return;
    };
    tracing::info!(
        "controlled shutdown: syncing what this broker leads, then asking the controller to move it"
    );
    let session = i64::try_from(b.config.broker_session_timeout_ms).unwrap_or(9000);
    let deadline = b.env.clock.now_ms() + session;
    // Nothing heartbeats meanwhile, so the settling gets a third of the session at most.
    let settle = Duration::from_millis(u64::try_from(session / 3).unwrap_or(0));
    if tokio::time::timeout(settle, b.settle_leaderships())
        .await
        .is_err()
    {
        tracing::warn!(
            "the partitions this broker leads were not all synced in time; moving them anyway"
        );
    }
    while b.env.clock.now_ms() < deadline {
        match link.heartbeat(b, heartbeat(b, epoch, true)).await {
            Ok(r) if r.should_shutdown => {
                tracing::info!("controlled shutdown done: this broker leads nothing");
                return;
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "controlled shutdown heartbeat"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tracing::warn!("controlled shutdown did not finish in time; stopping anyway");
}

/// How long a broker waits for the controller to answer its registration or heartbeat: a
/// session (an answer later than that is moot; the connection is dropped and dialled again).
fn session_timeout(b: &Broker) -> Duration {
    Duration::from_millis(b.config.broker_session_timeout_ms.max(1))
}
