//! The controller's decisions, as pure functions of the applied metadata state.
//!
//! The active controller decides from the latest applied [`ClusterState`], proposes the
//! records, and waits for them to commit before deciding again; every node applies them. Each
//! call here takes the state (and `now_ms`, and a seeded RNG where placement needs one) and
//! returns the records to propose with the reply to give once they commit, or an error that
//! proposes nothing. Nothing here does I/O.
//!
//! What follows Kafka's KRaft controller (`ClusterControlManager`, `BrokerHeartbeatManager`,
//! `ReplicationControlManager`, `PartitionChangeBuilder`):
//!
//! - **Registration.** A broker registers with an incarnation id (new each process run). A new
//!   incarnation gets a new broker epoch and starts fenced; before it is recorded, the broker
//!   id is removed from every ISR it can leave and from leadership (a restarted process may
//!   have lost what it had). A different incarnation of a broker id whose session is still
//!   valid (unfenced, heard from within `broker.session.timeout.ms`) is refused with
//!   DUPLICATE_BROKER_REGISTRATION. Repeating the registration of the same incarnation keeps
//!   its epoch.
//! - **Heartbeats** renew the session. A fenced broker is unfenced by a heartbeat that does not
//!   ask to stay fenced and reports `current_metadata_offset` at or past its registration
//!   record's offset (known when the state was built with [`ClusterState::apply_at`]; when it
//!   is not known, the broker's own `want_fence` is the only test). Unfencing elects leaders for
//!   partitions that have none. `want_fence` fences an unfenced broker.
//! - **Controlled shutdown** (KIP-631). `want_shutdown` from a broker that leads something
//!   records that it is shutting down and, in the same batch, moves its leaderships to other
//!   ISR members (or to no leader) and removes it from ISRs; `should_shutdown` is answered
//!   once it leads nothing and has applied that record (its offset, when known), and it is then
//!   fenced. A broker that leads nothing, or is fenced, may shut down at once.
//! - **Sessions** live in controller memory, not in the log: [`Controller::activate`] starts
//!   every unfenced broker's session at `now` when a controller becomes active. [`Controller::tick`]
//!   fences brokers not heard from for longer than the session timeout.
//! - **Elections** pick the current leader if it is still eligible, else the first replica (in
//!   replica order) that is in the ISR and active. With `unclean.leader.election.enable`
//!   (broker default or topic override) and no such replica, the first active replica leads and
//!   the ISR becomes just it. A fenced broker leaves the ISR unless it is its last member.
//!   Every election bumps the leader epoch, every change the partition epoch.
//! - **Preferred leaders** are restored by `tick` every `leader.imbalance.check.interval.seconds`
//!   for each broker whose share of preferred partitions it does not lead exceeds
//!   `leader.imbalance.per.broker.percentage` (the ZooKeeper controller's rule).
//! - **Topics** are placed by [`super::placement`]; AlterPartition is checked as Kafka does.

use super::placement::{self, UsableBroker};
use super::records::{Endpoint, MetadataRecord, NO_LEADER};
use super::state::{BrokerMeta, ClusterState, PartitionMeta, TopicMeta};
use kafka_protocol::error::ResponseError;
use rand::Rng;
use std::borrow::Cow;
use std::collections::BTreeMap;

/// The topic config that overrides [`ControllerConfig::unclean_leader_election_enable`].
pub const UNCLEAN_LEADER_ELECTION_ENABLE: &str = "unclean.leader.election.enable";

/// A bug the controller can be told to have, so the simulator can show its checker finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlantedBug {
    /// Elections (on fencing, in `tick`, on shutdown) pick an active replica outside the ISR
    /// when the leader must change and there is one, without resetting the ISR.
    ElectOutsideIsr,
}

/// The controller's settings, with Kafka's names and defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerConfig {
    /// `broker.session.timeout.ms`: a broker not heard from for longer is fenced.
    pub broker_session_timeout_ms: i64,
    /// `unclean.leader.election.enable`: elect outside the ISR when nothing in it can lead.
    pub unclean_leader_election_enable: bool,
    /// `auto.leader.rebalance.enable`: move leadership back to preferred replicas.
    pub auto_leader_rebalance_enable: bool,
    /// `leader.imbalance.check.interval.seconds`, in milliseconds.
    pub leader_imbalance_check_interval_ms: i64,
    /// `leader.imbalance.per.broker.percentage`.
    pub leader_imbalance_per_broker_percentage: u32,
    /// A bug to plant (simulator only); `None` in every real configuration.
    pub planted_bug: Option<PlantedBug>,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            broker_session_timeout_ms: 9000,
            unclean_leader_election_enable: false,
            auto_leader_rebalance_enable: true,
            leader_imbalance_check_interval_ms: 300_000,
            leader_imbalance_per_broker_percentage: 10,
            planted_bug: None,
        }
    }
}

/// Why the controller refused a request, with the Kafka error it maps to ([`Self::code`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControllerError {
    #[error("cluster id {got} does not match this cluster's {expected}")]
    InconsistentClusterId { expected: String, got: String },
    #[error("another broker is registered with broker id {0}")]
    DuplicateBrokerRegistration(i32),
    #[error("broker {0} is not registered")]
    BrokerIdNotRegistered(i32),
    #[error("broker {broker_id} has epoch {expected}, not {got}")]
    StaleBrokerEpoch {
        broker_id: i32,
        expected: i64,
        got: i64,
    },
    #[error("topic '{0}' already exists")]
    TopicAlreadyExists(String),
    #[error("{0}")]
    UnknownTopicOrPartition(String),
    #[error("no topic has id {0}")]
    UnknownTopicId(uuid::Uuid),
    #[error("{0}")]
    InvalidPartitions(String),
    #[error("{0}")]
    InvalidReplicationFactor(String),
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    #[error("leader epoch {got} is older than the current {current}")]
    FencedLeaderEpoch { current: i32, got: i32 },
    #[error("partition epoch {got} is older than the current {current}")]
    InvalidUpdateVersion { current: i32, got: i32 },
    #[error("{0}")]
    NotController(String),
    #[error("broker {broker_id} does not lead the partition (leader {leader})")]
    NotLeaderOrFollower { broker_id: i32, leader: i32 },
    #[error("{0}")]
    IneligibleReplica(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    InvalidConfig(String),
}

impl ControllerError {
    /// The Kafka error code.
    pub fn code(&self) -> ResponseError {
        use ControllerError as E;
        match self {
            E::InconsistentClusterId { .. } => ResponseError::InconsistentClusterId,
            E::DuplicateBrokerRegistration(_) => ResponseError::DuplicateBrokerRegistration,
            E::BrokerIdNotRegistered(_) => ResponseError::BrokerIdNotRegistered,
            E::StaleBrokerEpoch { .. } => ResponseError::StaleBrokerEpoch,
            E::TopicAlreadyExists(_) => ResponseError::TopicAlreadyExists,
            E::UnknownTopicOrPartition(_) => ResponseError::UnknownTopicOrPartition,
            E::UnknownTopicId(_) => ResponseError::UnknownTopicId,
            E::InvalidPartitions(_) => ResponseError::InvalidPartitions,
            E::InvalidReplicationFactor(_) => ResponseError::InvalidReplicationFactor,
            E::InvalidReplicaAssignment(_) => ResponseError::InvalidReplicaAssignment,
            E::FencedLeaderEpoch { .. } => ResponseError::FencedLeaderEpoch,
            E::InvalidUpdateVersion { .. } => ResponseError::InvalidUpdateVersion,
            E::NotController(_) => ResponseError::NotController,
            E::NotLeaderOrFollower { .. } => ResponseError::NotLeaderOrFollower,
            E::IneligibleReplica(_) => ResponseError::IneligibleReplica,
            E::InvalidRequest(_) => ResponseError::InvalidRequest,
            E::InvalidConfig(_) => ResponseError::InvalidConfig,
        }
    }
}

/// One change IncrementalAlterConfigs asks for (Kafka's `AlterConfigOp.OpType`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOp {
    /// SET (0): the key takes this value.
    Set(String),
    /// DELETE (1): the override is removed; the key falls back to its default.
    Delete,
    /// APPEND (2): these comma-separated items join the list (its default if unset).
    Append(String),
    /// SUBTRACT (3): these items leave the list.
    Subtract(String),
}

/// `ops` applied to `configs`, each key set checked by `validate`; `list_default` gives a list
/// key's default (APPEND and SUBTRACT apply to lists only). A key named twice is refused.
fn apply_config_ops(
    mut configs: BTreeMap<String, String>,
    ops: &[(String, ConfigOp)],
    list_default: impl Fn(&str) -> Option<&'static str>,
    validate: impl Fn(&str, &str) -> Result<(), String>,
) -> Result<BTreeMap<String, String>, ControllerError> {
    let mut seen = std::collections::BTreeSet::new();
    if let Some((k, _)) = ops.iter().find(|(k, _)| !seen.insert(k.as_str())) {
        return Err(ControllerError::InvalidRequest(format!(
            "config '{k}' appears more than once in the request"
        )));
    }
    let items = |text: &str| -> Vec<String> {
        text.split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    };
    for (key, op) in ops {
        let value = match op {
            ConfigOp::Delete => {
                configs.remove(key);
                continue;
            }
            ConfigOp::Set(v) => v.clone(),
            ConfigOp::Append(v) | ConfigOp::Subtract(v) => {
                let default = list_default(key).ok_or_else(|| {
                    ControllerError::InvalidConfig(format!(
                        "config '{key}' is not a list: APPEND and SUBTRACT apply to lists only"
                    ))
                })?;
                let current = configs.get(key).map_or(default, String::as_str);
                let mut now = items(current);
                for item in items(v) {
                    match op {
                        ConfigOp::Append(_) if !now.contains(&item) => now.push(item),
                        ConfigOp::Subtract(_) => now.retain(|x| *x != item),
                        _ => {}
                    }
                }
                now.join(",")
            }
        };
        validate(key, &value).map_err(ControllerError::InvalidConfig)?;
        configs.insert(key.clone(), value);
    }
    Ok(configs)
}

/// A BrokerRegistration request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerRegistration {
    /// `node.id`.
    pub broker_id: i32,
    /// The cluster the broker believes it belongs to, if it knows.
    pub cluster_id: Option<String>,
    /// Random per process run.
    pub incarnation_id: [u8; 16],
    /// Its listeners.
    pub endpoints: Vec<Endpoint>,
    /// `broker.rack`.
    pub rack: Option<String>,
}

/// A BrokerHeartbeat request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    /// The broker's id.
    pub broker_id: i32,
    /// The epoch its registration got.
    pub broker_epoch: i64,
    /// It asks to be (or stay) fenced: it has not caught up yet.
    pub want_fence: bool,
    /// It asks to shut down.
    pub want_shutdown: bool,
    /// The offset of the last metadata record it has applied.
    pub current_metadata_offset: i64,
}

/// The answer to a heartbeat, once its records (if any) committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatReply {
    /// It has applied its registration record.
    pub is_caught_up: bool,
    /// It is fenced.
    pub is_fenced: bool,
    /// It is in controlled shutdown.
    pub in_controlled_shutdown: bool,
    /// It may shut down now.
    pub should_shutdown: bool,
}

/// A topic to create (name and configs already validated by the caller).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewTopic {
    /// Its name.
    pub name: String,
    /// Its id (fresh, random, not nil).
    pub topic_id: uuid::Uuid,
    /// Partition count (ignored with `assignments`).
    pub partitions: i32,
    /// Replicas per partition (ignored with `assignments`).
    pub replication_factor: i16,
    /// Explicit assignment: partition -> brokers, preferred leader first; empty to place.
    pub assignments: BTreeMap<i32, Vec<i32>>,
    /// Topic-level config overrides.
    pub configs: BTreeMap<String, String>,
}

/// One member of the ISR an AlterPartition asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IsrMember {
    /// The broker.
    pub broker_id: i32,
    /// Its epoch as the leader knows it (KIP-903), or -1 not to check.
    pub broker_epoch: i64,
}

/// An AlterPartition request for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterPartition {
    /// The leader sending it.
    pub broker_id: i32,
    /// The leader's broker epoch.
    pub broker_epoch: i64,
    /// The topic.
    pub topic_id: uuid::Uuid,
    /// The partition.
    pub partition: i32,
    /// The leader epoch the leader is in.
    pub leader_epoch: i32,
    /// The partition epoch the leader last saw.
    pub partition_epoch: i32,
    /// The ISR it wants.
    pub new_isr: Vec<IsrMember>,
}

/// The controller: its settings and what it keeps in memory (sessions and the rebalance timer).
#[derive(Debug, Clone)]
pub struct Controller {
    /// Settings.
    config: ControllerConfig,
    /// Broker id -> when it was last heard from (ms). Not replicated: a new active controller
    /// starts them afresh ([`Controller::activate`]).
    last_contact_ms: BTreeMap<i32, i64>,
    /// When the next preferred-leader check is due.
    next_rebalance_ms: Option<i64>,
    /// The broker of this same process (combined roles): its id and incarnation. Its earlier
    /// incarnations are certainly dead (they were this process's predecessors), so a
    /// restarted combined node re-registers at once instead of waiting out the session its
    /// previous life left in the metadata.
    local_broker: Option<(i32, [u8; 16])>,
}

/// Records decided so far, and the state they lead to (cloned on the first record only), so
/// each later decision in the same batch sees the earlier ones.
struct Changes<'a> {
    /// The state with `records` applied.
    state: Cow<'a, ClusterState>,
    /// The records.
    records: Vec<MetadataRecord>,
}

impl<'a> Changes<'a> {
    fn new(state: &'a ClusterState) -> Self {
        Changes {
            state: Cow::Borrowed(state),
            records: Vec::new(),
        }
    }

    fn push(&mut self, record: MetadataRecord) {
        self.state.to_mut().apply(&record);
        self.records.push(record);
    }
}

/// How to pick a leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Election {
    /// Keep the leader if eligible, else the first eligible replica.
    Any,
    /// The first replica, if eligible.
    Preferred,
}

impl Controller {
    /// A controller with `config` and no sessions yet.
    pub fn new(config: ControllerConfig) -> Controller {
        Controller {
            config,
            last_contact_ms: BTreeMap::new(),
            next_rebalance_ms: None,
            local_broker: None,
        }
    }

    /// Tells the controller which broker incarnation runs in its own process.
    pub fn set_local_broker(&mut self, broker_id: i32, incarnation_id: [u8; 16]) {
        self.local_broker = Some((broker_id, incarnation_id));
    }

    /// Its settings.
    pub fn config(&self) -> &ControllerConfig {
        &self.config
    }

    /// Call when this node becomes the active controller: every registered unfenced broker's
    /// session starts now (sessions are not replicated), and the rebalance timer restarts.
    pub fn activate(&mut self, state: &ClusterState, now_ms: i64) {
        self.last_contact_ms = state.brokers_alive().map(|b| (b.id, now_ms)).collect();
        self.next_rebalance_ms = None;
    }

    /// When `broker` was last heard from; a broker never seen by this controller counts from
    /// `now_ms`.
    fn last_contact(&mut self, broker: i32, now_ms: i64) -> i64 {
        *self.last_contact_ms.entry(broker).or_insert(now_ms)
    }

    /// Kafka's `hasValidSession`: unfenced and heard from within the session timeout.
    fn has_valid_session(&mut self, b: &BrokerMeta, now_ms: i64) -> bool {
        !b.fenced
            && now_ms - self.last_contact(b.id, now_ms) <= self.config.broker_session_timeout_ms
    }

    /// BrokerRegistration: the records and the broker's epoch.
    pub fn register_broker(
        &mut self,
        state: &ClusterState,
        reg: &BrokerRegistration,
        now_ms: i64,
    ) -> Result<(Vec<MetadataRecord>, i64), ControllerError> {
        if let (Some(expected), Some(got)) = (&state.cluster_id, &reg.cluster_id) {
            if expected != got {
                return Err(ControllerError::InconsistentClusterId {
                    expected: expected.clone(),
                    got: got.clone(),
                });
            }
        }
        let id = reg.broker_id;
        let mut ch = Changes::new(state);
        let epoch = match state.brokers.get(&id) {
            Some(b) if b.incarnation_id == reg.incarnation_id => {
                if b.endpoints != reg.endpoints || b.rack != reg.rack {
                    ch.push(MetadataRecord::BrokerRegistered {
                        broker_id: id,
                        incarnation_id: reg.incarnation_id,
                        broker_epoch: b.epoch,
                        endpoints: reg.endpoints.clone(),
                        rack: reg.rack.clone(),
                        fenced: b.fenced,
                    });
                }
                b.epoch
            }
            existing => {
                let local = self.local_broker == Some((id, reg.incarnation_id));
                if let Some(b) = existing.filter(|_| !local) {
                    if self.has_valid_session(b, now_ms) {
                        return Err(ControllerError::DuplicateBrokerRegistration(id));
                    }
                }
                let epoch = state.next_broker_epoch;
                self.move_off(&mut ch, id);
                ch.push(MetadataRecord::BrokerRegistered {
                    broker_id: id,
                    incarnation_id: reg.incarnation_id,
                    broker_epoch: epoch,
                    endpoints: reg.endpoints.clone(),
                    rack: reg.rack.clone(),
                    fenced: true,
                });
                epoch
            }
        };
        self.last_contact_ms.insert(id, now_ms);
        Ok((ch.records, epoch))
    }

    /// BrokerHeartbeat: renews the session and moves the broker through fenced, unfenced,
    /// controlled shutdown and shutdown.
    pub fn heartbeat(
        &mut self,
        state: &ClusterState,
        hb: &Heartbeat,
        now_ms: i64,
    ) -> Result<(Vec<MetadataRecord>, HeartbeatReply), ControllerError> {
        let id = hb.broker_id;
        let b = state
            .brokers
            .get(&id)
            .ok_or(ControllerError::BrokerIdNotRegistered(id))?;
        if b.epoch != hb.broker_epoch {
            return Err(ControllerError::StaleBrokerEpoch {
                broker_id: id,
                expected: b.epoch,
                got: hb.broker_epoch,
            });
        }
        self.last_contact_ms.insert(id, now_ms);
        let reached = |offset: Option<i64>| offset.is_none_or(|o| hb.current_metadata_offset >= o);
        let is_caught_up = reached(b.registered_offset);
        let mut ch = Changes::new(state);
        let mut should_shutdown = false;
        if b.fenced {
            if hb.want_shutdown {
                should_shutdown = true;
            } else if !hb.want_fence && is_caught_up {
                ch.push(MetadataRecord::BrokerUnfenced {
                    broker_id: id,
                    broker_epoch: b.epoch,
                });
                self.elect_leaderless(&mut ch);
            }
        } else if b.in_controlled_shutdown {
            if leads_any(&ch.state, id) {
                self.move_off(&mut ch, id);
            } else if reached(b.controlled_shutdown_offset) {
                self.fence(&mut ch, id);
                should_shutdown = true;
            }
        } else if hb.want_fence {
            self.fence(&mut ch, id);
            should_shutdown = hb.want_shutdown;
        } else if hb.want_shutdown {
            if leads_any(state, id) {
                ch.push(MetadataRecord::BrokerControlledShutdown {
                    broker_id: id,
                    broker_epoch: b.epoch,
                });
                self.move_off(&mut ch, id);
            } else {
                self.fence(&mut ch, id);
                should_shutdown = true;
            }
        }
        let after = &ch.state.brokers[&id];
        let reply = HeartbeatReply {
            is_caught_up,
            is_fenced: after.fenced,
            in_controlled_shutdown: after.in_controlled_shutdown,
            should_shutdown,
        };
        Ok((ch.records, reply))
    }

    /// UnregisterBroker: removes the broker from leadership and ISRs, then its registration.
    pub fn unregister_broker(
        &mut self,
        state: &ClusterState,
        broker_id: i32,
    ) -> Result<Vec<MetadataRecord>, ControllerError> {
        let b = state
            .brokers
            .get(&broker_id)
            .ok_or(ControllerError::BrokerIdNotRegistered(broker_id))?;
        let mut ch = Changes::new(state);
        self.move_off(&mut ch, broker_id);
        ch.push(MetadataRecord::BrokerUnregistered {
            broker_id,
            broker_epoch: b.epoch,
        });
        self.last_contact_ms.remove(&broker_id);
        Ok(ch.records)
    }

    /// The periodic work: fences brokers whose session expired (electing new leaders for what
    /// they led), elects leaders where an eligible replica has appeared, and restores
    /// preferred leaders when the rebalance check is due.
    pub fn tick(&mut self, state: &ClusterState, now_ms: i64) -> Vec<MetadataRecord> {
        let mut ch = Changes::new(state);
        self.last_contact_ms
            .retain(|id, _| state.brokers.contains_key(id));
        let alive: Vec<i32> = state.brokers_alive().map(|b| b.id).collect();
        for id in alive {
            if now_ms - self.last_contact(id, now_ms) > self.config.broker_session_timeout_ms {
                tracing::info!(broker = id, "broker session expired; fencing it");
                self.fence(&mut ch, id);
            }
        }
        self.elect_leaderless(&mut ch);
        if self.config.auto_leader_rebalance_enable {
            let interval = self.config.leader_imbalance_check_interval_ms;
            let due = *self.next_rebalance_ms.get_or_insert(now_ms + interval);
            if now_ms >= due {
                self.next_rebalance_ms = Some(now_ms + interval);
                self.rebalance(&mut ch);
            }
        }
        ch.records
    }

    /// CreateTopics: one result per topic, and the records for those that succeed. Later
    /// topics see the earlier ones (a name given twice fails the second time).
    pub fn create_topics(
        &self,
        state: &ClusterState,
        topics: &[NewTopic],
        rng: &mut impl Rng,
    ) -> (Vec<MetadataRecord>, Vec<Result<TopicMeta, ControllerError>>) {
        let mut ch = Changes::new(state);
        let results = topics
            .iter()
            .map(|t| {
                let records = self.create_topic(&ch.state, t, rng)?;
                for r in records {
                    ch.push(r);
                }
                Ok(ch.state.topics[&t.name].clone())
            })
            .collect();
        (ch.records, results)
    }

    /// One topic of CreateTopics: `TopicCreated` and a `PartitionRecord` per partition.
    pub fn create_topic(
        &self,
        state: &ClusterState,
        t: &NewTopic,
        rng: &mut impl Rng,
    ) -> Result<Vec<MetadataRecord>, ControllerError> {
        if state.topics.contains_key(&t.name) || state.topic_names.contains_key(&t.topic_id) {
            return Err(ControllerError::TopicAlreadyExists(t.name.clone()));
        }
        let assignment = if t.assignments.is_empty() {
            if t.partitions < 1 {
                return Err(ControllerError::InvalidPartitions(format!(
                    "number of partitions must be at least 1, got {}",
                    t.partitions
                )));
            }
            place(
                state,
                t.partitions as usize,
                i32::from(t.replication_factor),
                rng,
            )?
        } else {
            let n = t.assignments.len() as i32;
            if t.assignments.keys().copied().ne(0..n) {
                return Err(ControllerError::InvalidReplicaAssignment(format!(
                    "partitions must be numbered 0..{n}"
                )));
            }
            let lists: Vec<Vec<i32>> = t.assignments.values().cloned().collect();
            check_assignment(state, &lists, None)?;
            lists
        };
        let rf = assignment[0].len() as i16;
        let mut records = vec![MetadataRecord::TopicCreated {
            name: t.name.clone(),
            topic_id: *t.topic_id.as_bytes(),
            partitions: assignment.len() as i32,
            replication_factor: rf,
            configs: t.configs.clone(),
        }];
        records.extend(partition_records(state, t.topic_id, 0, &assignment));
        Ok(records)
    }

    /// CreatePartitions: grows `name` to `count` partitions, placed (or as `assignments` says,
    /// one list per new partition). Returns the records and the grown topic.
    pub fn create_partitions(
        &self,
        state: &ClusterState,
        name: &str,
        count: i32,
        assignments: &[Vec<i32>],
        rng: &mut impl Rng,
    ) -> Result<(Vec<MetadataRecord>, TopicMeta), ControllerError> {
        let t = state.topics.get(name).ok_or_else(|| {
            ControllerError::UnknownTopicOrPartition(format!("topic '{name}' does not exist"))
        })?;
        if count <= t.partitions {
            return Err(ControllerError::InvalidPartitions(
                if count == t.partitions {
                    format!("topic already has {count} partitions")
                } else {
                    format!(
                        "topic has {} partitions; the count can only grow, not to {count}",
                        t.partitions
                    )
                },
            ));
        }
        let rf = t
            .parts
            .get(&0)
            .map_or(i32::from(t.replication_factor), |p| p.replicas.len() as i32);
        let added = (count - t.partitions) as usize;
        let assignment = if assignments.is_empty() {
            place(state, added, rf, rng)?
        } else {
            if assignments.len() != added {
                return Err(ControllerError::InvalidReplicaAssignment(format!(
                    "adding {added} partitions needs {added} assignments, not {}",
                    assignments.len()
                )));
            }
            check_assignment(state, assignments, Some(rf as usize))?;
            assignments.to_vec()
        };
        let mut ch = Changes::new(state);
        ch.push(MetadataRecord::PartitionsCreated {
            name: name.to_string(),
            partitions: count,
        });
        for r in partition_records(state, t.id, t.partitions, &assignment) {
            ch.push(r);
        }
        let grown = ch.state.topics[name].clone();
        Ok((ch.records, grown))
    }

    /// AlterConfigs (`replace_all`: the keys named are set, every other override removed) or
    /// IncrementalAlterConfigs (each key changed by its operation) of one topic: the
    /// `TopicConfigsSet` record (none if nothing changes) and the overrides it leaves. Every
    /// key set is checked as CreateTopics checks it; keys that are only kept are not (the
    /// internal `__consumer_offsets` carries `cleanup.policy=compact`, which a client topic
    /// may not ask for).
    pub fn alter_topic_configs(
        &self,
        state: &ClusterState,
        name: &str,
        ops: &[(String, ConfigOp)],
        replace_all: bool,
    ) -> Result<(Vec<MetadataRecord>, BTreeMap<String, String>), ControllerError> {
        let t = state.topics.get(name).ok_or_else(|| {
            ControllerError::UnknownTopicOrPartition(format!("topic '{name}' does not exist"))
        })?;
        let base = if replace_all {
            BTreeMap::new()
        } else {
            t.configs.clone()
        };
        let configs = apply_config_ops(base, ops, crate::config::topic_list_default, |k, v| {
            crate::config::validate_topic_config(k, v).map_err(|e| e.to_string())
        })?;
        if configs == t.configs {
            return Ok((Vec::new(), configs));
        }
        let record = MetadataRecord::TopicConfigsSet {
            name: name.to_string(),
            configs: configs.clone(),
        };
        Ok((vec![record], configs))
    }

    /// AlterConfigs or IncrementalAlterConfigs of dynamic broker configs: one broker's
    /// (`Some(id)`, a registered broker) or the cluster-wide defaults (`None`). The
    /// `BrokerConfigsSet` record (none if nothing changes) and the configs it leaves. Only
    /// keys runnel changes at run time are taken (see
    /// [`crate::config::validate_dynamic_broker_config`]).
    pub fn alter_broker_configs(
        &self,
        state: &ClusterState,
        broker_id: Option<i32>,
        ops: &[(String, ConfigOp)],
        replace_all: bool,
    ) -> Result<(Vec<MetadataRecord>, BTreeMap<String, String>), ControllerError> {
        let current = match broker_id {
            None => state.dynamic.default.clone(),
            Some(id) if state.brokers.contains_key(&id) => state.dynamic.of(id).clone(),
            Some(id) => {
                return Err(ControllerError::InvalidRequest(format!(
                    "broker {id} is not registered"
                )));
            }
        };
        let base = if replace_all {
            BTreeMap::new()
        } else {
            current.clone()
        };
        let list_default = |key: &str| {
            crate::config::dynamic_broker_topic_key(key).and_then(crate::config::topic_list_default)
        };
        let configs = apply_config_ops(base, ops, list_default, |k, v| {
            if broker_id.is_some()
                && let Some(why) = crate::config::cluster_wide_only(k)
            {
                return Err(why);
            }
            crate::config::validate_dynamic_broker_config(k, v).map_err(|e| e.to_string())
        })?;
        if configs == current {
            return Ok((Vec::new(), configs));
        }
        let record = MetadataRecord::BrokerConfigsSet {
            broker_id,
            configs: configs.clone(),
        };
        Ok((vec![record], configs))
    }

    /// DeleteTopics, one topic: the record and the topic as it was.
    pub fn delete_topic(
        &self,
        state: &ClusterState,
        name: &str,
    ) -> Result<(Vec<MetadataRecord>, TopicMeta), ControllerError> {
        let t = state.topics.get(name).ok_or_else(|| {
            ControllerError::UnknownTopicOrPartition(format!("topic '{name}' does not exist"))
        })?;
        let record = MetadataRecord::TopicDeleted {
            name: name.to_string(),
            topic_id: *t.id.as_bytes(),
        };
        Ok((vec![record], t.clone()))
    }

    /// AlterPartition from a partition leader: checked as Kafka's controller does, then a
    /// `PartitionChange` of the ISR (none if it is unchanged). Returns the partition as it will
    /// be once committed.
    pub fn alter_partition(
        &self,
        state: &ClusterState,
        req: &AlterPartition,
    ) -> Result<(Vec<MetadataRecord>, PartitionMeta), ControllerError> {
        match state.brokers.get(&req.broker_id) {
            Some(b) if b.epoch == req.broker_epoch => {}
            b => {
                return Err(ControllerError::StaleBrokerEpoch {
                    broker_id: req.broker_id,
                    expected: b.map_or(-1, |b| b.epoch),
                    got: req.broker_epoch,
                });
            }
        }
        let t = state
            .topic_by_id(req.topic_id)
            .ok_or(ControllerError::UnknownTopicId(req.topic_id))?;
        let p = t.parts.get(&req.partition).ok_or_else(|| {
            ControllerError::UnknownTopicOrPartition(format!(
                "topic '{}' has no partition {}",
                t.name, req.partition
            ))
        })?;
        if req.leader_epoch > p.leader_epoch || req.partition_epoch > p.partition_epoch {
            return Err(ControllerError::NotController(format!(
                "the request's epochs (leader {}, partition {}) are ahead of this controller's ({}, {})",
                req.leader_epoch, req.partition_epoch, p.leader_epoch, p.partition_epoch
            )));
        }
        if req.leader_epoch < p.leader_epoch {
            return Err(ControllerError::FencedLeaderEpoch {
                current: p.leader_epoch,
                got: req.leader_epoch,
            });
        }
        if req.broker_id != p.leader {
            return Err(ControllerError::NotLeaderOrFollower {
                broker_id: req.broker_id,
                leader: p.leader,
            });
        }
        if req.partition_epoch < p.partition_epoch {
            return Err(ControllerError::InvalidUpdateVersion {
                current: p.partition_epoch,
                got: req.partition_epoch,
            });
        }
        let isr: Vec<i32> = req.new_isr.iter().map(|m| m.broker_id).collect();
        check_isr(state, p, &req.new_isr)?;
        if isr == p.isr {
            return Ok((vec![], p.clone()));
        }
        let record = MetadataRecord::PartitionChange {
            topic_id: *t.id.as_bytes(),
            partition: req.partition,
            isr: Some(isr),
            leader: None,
            replicas: None,
        };
        let mut ch = Changes::new(state);
        ch.push(record);
        let after = ch.state.topics[&t.name].parts[&req.partition].clone();
        Ok((ch.records, after))
    }

    /// Fences `id`: its leaderships move and it leaves the ISRs it can leave, then it is
    /// recorded fenced (Kafka's `handleBrokerFenced`).
    fn fence(&self, ch: &mut Changes, id: i32) {
        let Some(epoch) = ch.state.brokers.get(&id).map(|b| b.epoch) else {
            return;
        };
        self.move_off(ch, id);
        ch.push(MetadataRecord::BrokerFenced {
            broker_id: id,
            broker_epoch: epoch,
        });
    }

    /// Removes `id` from every ISR (unless it is the last member) and from leadership.
    fn move_off(&self, ch: &mut Changes, id: i32) {
        let touched: Vec<(String, i32)> = ch
            .state
            .partitions()
            .filter(|(_, _, p)| p.isr.contains(&id) || p.leader == id)
            .map(|(t, n, _)| (t.name.clone(), n))
            .collect();
        for (topic, n) in touched {
            if let Some(r) = self.change(&ch.state, &topic, n, Some(id), Election::Any) {
                ch.push(r);
            }
        }
    }

    /// Elects a leader for every partition without one, where a replica is eligible.
    fn elect_leaderless(&self, ch: &mut Changes) {
        let leaderless: Vec<(String, i32)> = ch
            .state
            .partitions()
            .filter(|(_, _, p)| p.leader == NO_LEADER)
            .map(|(t, n, _)| (t.name.clone(), n))
            .collect();
        for (topic, n) in leaderless {
            if let Some(r) = self.change(&ch.state, &topic, n, None, Election::Any) {
                ch.push(r);
            }
        }
    }

    /// Preferred leader election for every broker whose share of preferred partitions it does
    /// not lead is above `leader.imbalance.per.broker.percentage`.
    fn rebalance(&self, ch: &mut Changes) {
        // Preferred broker -> (partitions it is preferred for, those it does not lead).
        let mut by_broker: BTreeMap<i32, (usize, Vec<(String, i32)>)> = BTreeMap::new();
        for (t, n, p) in ch.state.partitions() {
            let Some(&preferred) = p.replicas.first() else {
                continue;
            };
            let e = by_broker.entry(preferred).or_default();
            e.0 += 1;
            if p.leader != preferred {
                e.1.push((t.name.clone(), n));
            }
        }
        let pct = u64::from(self.config.leader_imbalance_per_broker_percentage);
        for (broker, (total, imbalanced)) in by_broker {
            if imbalanced.len() as u64 * 100 <= pct * total as u64 || !ch.state.is_active(broker) {
                continue;
            }
            for (topic, n) in imbalanced {
                if let Some(r) = self.change(&ch.state, &topic, n, None, Election::Preferred) {
                    ch.push(r);
                }
            }
        }
    }

    /// Whether unclean election is on for `topic`: its override, else the cluster-wide dynamic
    /// default (AlterConfigs of the default broker resource), else this controller's static
    /// config.
    fn unclean_enabled(&self, state: &ClusterState, topic: &TopicMeta) -> bool {
        let parse = |v: &String| v.trim().parse().ok();
        topic
            .configs
            .get(UNCLEAN_LEADER_ELECTION_ENABLE)
            .and_then(parse)
            .or_else(|| {
                state
                    .dynamic
                    .default
                    .get(UNCLEAN_LEADER_ELECTION_ENABLE)
                    .and_then(parse)
            })
            .unwrap_or(self.config.unclean_leader_election_enable)
    }

    /// The change to partition `n` of `topic` after removing `remove` from its ISR and from
    /// leader eligibility, with a new leader elected if needed (Kafka's
    /// `PartitionChangeBuilder`); `None` if nothing changes.
    fn change(
        &self,
        state: &ClusterState,
        topic: &str,
        n: i32,
        remove: Option<i32>,
        election: Election,
    ) -> Option<MetadataRecord> {
        let t = state.topics.get(topic)?;
        let p = t.parts.get(&n)?;
        let eligible = |r: i32| Some(r) != remove && state.is_active(r);
        let target_isr: Vec<i32> = p
            .isr
            .iter()
            .copied()
            .filter(|r| Some(*r) != remove)
            .collect();
        let valid = |r: i32| target_isr.contains(&r) && eligible(r);
        let mut unclean = false;
        let preferred = p.replicas.first().copied().filter(|r| valid(*r));
        let leader = if let (Election::Preferred, Some(r)) = (election, preferred) {
            r
        } else if p.leader != NO_LEADER && valid(p.leader) {
            p.leader
        } else if let Some(r) = self.planted_outside_isr(p, &target_isr, eligible) {
            r
        } else if let Some(r) = p.replicas.iter().copied().find(|r| valid(*r)) {
            r
        } else if let Some(r) = p
            .replicas
            .iter()
            .copied()
            .find(|r| eligible(*r))
            .filter(|_| self.unclean_enabled(state, t))
        {
            tracing::warn!(topic, partition = n, leader = r, "unclean leader election");
            unclean = true;
            r
        } else {
            NO_LEADER
        };
        let isr = if unclean {
            Some(vec![leader])
        } else {
            Some(target_isr).filter(|i| !i.is_empty() && *i != p.isr)
        };
        let leader = Some(leader).filter(|l| *l != p.leader);
        if isr.is_none() && leader.is_none() {
            return None;
        }
        Some(MetadataRecord::PartitionChange {
            topic_id: *t.id.as_bytes(),
            partition: n,
            isr,
            leader,
            replicas: None,
        })
    }

    /// With [`PlantedBug::ElectOutsideIsr`]: an active replica outside the ISR.
    fn planted_outside_isr(
        &self,
        p: &PartitionMeta,
        isr: &[i32],
        eligible: impl Fn(i32) -> bool,
    ) -> Option<i32> {
        if self.config.planted_bug != Some(PlantedBug::ElectOutsideIsr) {
            return None;
        }
        p.replicas
            .iter()
            .copied()
            .find(|r| !isr.contains(r) && eligible(*r))
    }
}

/// Whether `broker` leads any partition.
fn leads_any(state: &ClusterState, broker: i32) -> bool {
    state.partitions().any(|(_, _, p)| p.leader == broker)
}

/// Places `partitions` partitions of `rf` replicas on the active brokers.
fn place(
    state: &ClusterState,
    partitions: usize,
    rf: i32,
    rng: &mut impl Rng,
) -> Result<Vec<Vec<i32>>, ControllerError> {
    let usable: Vec<UsableBroker> = state
        .brokers
        .values()
        .filter(|b| b.is_active())
        .map(|b| UsableBroker {
            id: b.id,
            rack: b.rack.clone(),
        })
        .collect();
    placement::place(&usable, partitions, rf, rng)
        .map_err(|e| ControllerError::InvalidReplicationFactor(e.to_string()))
}

/// Checks an explicit assignment: every list non-empty, without repeats, of `rf` replicas (or
/// all of one length), naming registered brokers of which at least one is active.
fn check_assignment(
    state: &ClusterState,
    lists: &[Vec<i32>],
    rf: Option<usize>,
) -> Result<(), ControllerError> {
    let bad = |why: String| Err(ControllerError::InvalidReplicaAssignment(why));
    let rf = rf.unwrap_or_else(|| lists.first().map_or(0, Vec::len));
    for (i, replicas) in lists.iter().enumerate() {
        if replicas.is_empty() {
            return bad(format!("assignment {i} names no broker"));
        }
        if replicas.len() != rf {
            return bad(format!(
                "assignment {i} has {} replicas; every partition must have {rf}",
                replicas.len()
            ));
        }
        let mut sorted = replicas.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != replicas.len() {
            return bad(format!("assignment {i} names a broker twice: {replicas:?}"));
        }
        if let Some(b) = replicas.iter().find(|b| !state.brokers.contains_key(b)) {
            return bad(format!(
                "assignment {i} names broker {b}, which is not registered"
            ));
        }
        if !replicas.iter().any(|b| state.is_active(*b)) {
            return bad(format!(
                "every broker of assignment {i} ({replicas:?}) is fenced or shutting down"
            ));
        }
    }
    Ok(())
}

/// Checks an AlterPartition's new ISR against partition `p`.
fn check_isr(
    state: &ClusterState,
    p: &PartitionMeta,
    new_isr: &[IsrMember],
) -> Result<(), ControllerError> {
    let ids: Vec<i32> = new_isr.iter().map(|m| m.broker_id).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted.len() != ids.len() {
        return Err(ControllerError::InvalidRequest(format!(
            "the new ISR {ids:?} names a broker twice"
        )));
    }
    if !ids.contains(&p.leader) {
        return Err(ControllerError::InvalidRequest(format!(
            "the new ISR {ids:?} does not include the leader {}",
            p.leader
        )));
    }
    for m in new_isr {
        let why = if !p.replicas.contains(&m.broker_id) {
            "is not a replica"
        } else {
            match state.brokers.get(&m.broker_id) {
                None => "is not registered",
                Some(b) if b.fenced => "is fenced",
                Some(b) if b.in_controlled_shutdown => "is shutting down",
                Some(b) if m.broker_epoch != -1 && m.broker_epoch != b.epoch => {
                    "has another broker epoch"
                }
                Some(_) => continue,
            }
        };
        return Err(ControllerError::IneligibleReplica(format!(
            "broker {} {why}",
            m.broker_id
        )));
    }
    Ok(())
}

/// One `PartitionRecord` per list of `assignment`, numbered from `first`: the ISR is the
/// active replicas, the leader the first of them.
fn partition_records(
    state: &ClusterState,
    topic_id: uuid::Uuid,
    first: i32,
    assignment: &[Vec<i32>],
) -> Vec<MetadataRecord> {
    assignment
        .iter()
        .enumerate()
        .map(|(i, replicas)| {
            let isr: Vec<i32> = replicas
                .iter()
                .copied()
                .filter(|b| state.is_active(*b))
                .collect();
            MetadataRecord::PartitionRecord {
                topic_id: *topic_id.as_bytes(),
                partition: first + i as i32,
                replicas: replicas.clone(),
                leader: isr[0],
                isr,
                leader_epoch: 0,
                partition_epoch: 0,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
