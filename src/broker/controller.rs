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
use crate::cluster::controller::{BrokerRegistration, Heartbeat, HeartbeatReply};
use crate::cluster::{Controller, ControllerConfig, ControllerError, Endpoint, MetadataError};
use crate::raft::Epoch;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    BrokerHeartbeatRequest, BrokerId, BrokerRegistrationRequest,
    broker_registration_request::Listener,
};
use kafka_protocol::protocol::StrBytes;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// BrokerRegistration's version spoken between runnel nodes.
pub const BROKER_REGISTRATION_VERSION: i16 = 4;
/// BrokerHeartbeat's.
pub const BROKER_HEARTBEAT_VERSION: i16 = 1;

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
    #[error("cannot reach the active controller: {0}")]
    Unreachable(String),
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
        }
    }
}

/// The controller's decisions and the epoch it last became active in.
pub struct ControllerService {
    inner: Mutex<(Controller, Option<Epoch>)>,
}

impl ControllerService {
    /// A service with the broker's settings.
    pub fn new(config: ControllerConfig) -> ControllerService {
        ControllerService {
            inner: Mutex::new((Controller::new(config), None)),
        }
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

/// A broker's link to the active controller: local when this node is it, else a connection
/// to its controller listener.
struct Link {
    conn: Option<(i32, BrokerConnection)>,
}

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
        let conn = self.connect(b, leader).await?;
        let resp = conn
            .start_at(&req, BROKER_REGISTRATION_VERSION)
            .await
            .map_err(|e| self.broken(e))?
            .wait()
            .await
            .map_err(|e| self.broken(e))?;
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
        let conn = self.connect(b, leader).await?;
        let resp = conn
            .start_at(&req, BROKER_HEARTBEAT_VERSION)
            .await
            .map_err(|e| self.broken(e))?
            .wait()
            .await
            .map_err(|e| self.broken(e))?;
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

    fn broken(&mut self, e: crate::client::ClientError) -> CallError {
        self.conn = None;
        CallError::Unreachable(e.to_string())
    }

    async fn connect(&mut self, b: &Broker, leader: i32) -> Result<&BrokerConnection, CallError> {
        let stale = match &self.conn {
            Some((id, c)) => *id != leader || !c.is_alive(),
            None => true,
        };
        if stale {
            let addr =
                b.config.quorum.voters.get(&leader).ok_or_else(|| {
                    CallError::Unreachable(format!("no address for node {leader}"))
                })?;
            let config = ClientConfig {
                client_id: format!("runnel-broker-{}", b.config.node_id),
                ..ClientConfig::default()
            };
            let c = BrokerConnection::open(&b.env, addr, &config)
                .await
                .map_err(|e| CallError::Unreachable(e.to_string()))?;
            self.conn = Some((leader, c));
        }
        match &self.conn {
            Some((_, c)) => Ok(c),
            None => Err(CallError::Unreachable("no connection".into())),
        }
    }
}

/// The active controller this node knows of.
fn active_controller(b: &Broker) -> Result<i32, CallError> {
    b.metadata
        .controller_id()
        .ok_or_else(|| CallError::Unreachable("no active controller is known yet".into()))
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
        rack: None,
    }
}

/// Registers this broker and heartbeats until shutdown; then asks for a controlled shutdown
/// (bounded by the session timeout) before returning.
pub async fn run_lifecycle(b: Arc<Broker>) {
    let mut incarnation = [0u8; 16];
    incarnation[..8].copy_from_slice(&b.env.rng.next_u64().to_le_bytes());
    incarnation[8..].copy_from_slice(&b.env.rng.next_u64().to_le_bytes());
    let reg = registration(&b, incarnation);
    let interval = Duration::from_millis(b.config.broker_heartbeat_interval_ms.max(1));
    let retry = Duration::from_millis(100);
    let mut link = Link { conn: None };
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
                match link.heartbeat(&b, hb).await {
                    Ok(reply) => {
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
    let deadline =
        b.env.clock.now_ms() + i64::try_from(b.config.broker_session_timeout_ms).unwrap_or(9000);
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
