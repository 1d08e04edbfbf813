//! The group consumer: subscribes to topics, joins a consumer group through the classic
//! protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup), reads the partitions the group's
//! leader assigns it, and commits its positions to the group, as Kafka's consumers do.
//!
//! - **Membership.** [`GroupConsumer::poll`] does the group's work before it fetches: finds
//!   the coordinator, joins (answering MEMBER_ID_REQUIRED, KIP-394), computes the assignment
//!   when it is the leader ([`super::assignor`]), syncs, and heartbeats every
//!   `heartbeat.interval.ms`. There is no background thread: a consumer that stops polling
//!   stops heartbeating and is removed after `session.timeout.ms`, so poll at least that
//!   often. A poll may outlast its timeout while the group rebalances (at most
//!   `max.poll.interval.ms`, the rebalance timeout).
//! - **Protocols.** With `cooperative-sticky` (the default, KIP-429) a member keeps
//!   consuming what it owns during a rebalance and gives up only what moves; with `range` or
//!   `roundrobin` (eager) it gives up everything before it rejoins. A member that learns it is
//!   no longer in the group (UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION, no successful heartbeat
//!   for a session timeout) treats its partitions as lost: it stops reading them and cannot
//!   commit them.
//! - **Offsets.** A newly assigned partition starts at the group's committed offset, or by
//!   `auto.offset.reset` when there is none. With `enable.auto.commit` (default) the
//!   positions are committed every `auto.commit.interval.ms`, before partitions are revoked
//!   and on close; [`GroupConsumer::commit_sync`] commits them on demand. A commit carries
//!   the generation and member id, so a member fenced by a rebalance cannot overwrite the
//!   new owner's progress (the commit fails and the member rejoins).
//! - **Callbacks.** A [`RebalanceListener`] hears of revoked, assigned and lost partitions
//!   and of every generation's full assignment.

use super::assignor::{self, Assignor, Member};
use super::{Consumer, ConsumerConfig, ConsumerRecord};
use crate::client::TopicPartition;
use crate::client::connection::BrokerConnection;
use crate::client::coordinator::{self, CommittedOffset, Committer, group_id};
use crate::client::error::ClientError;
use crate::env::{Env, monotonic_now};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiKey, ConsumerProtocolAssignment, ConsumerProtocolSubscription, HeartbeatRequest,
    JoinGroupRequest, LeaveGroupRequest, SyncGroupRequest, TopicName, consumer_protocol_assignment,
    consumer_protocol_subscription,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The group settings, named after the Java consumer's.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// `group.id`.
    pub group_id: String,
    /// `group.instance.id`: makes the member static (KIP-345): it keeps its place and its
    /// partitions across restarts within the session timeout, without a rebalance.
    pub group_instance_id: Option<String>,
    /// `session.timeout.ms`: without a heartbeat this long, the coordinator removes the
    /// member. Default 45000.
    pub session_timeout_ms: u64,
    /// `heartbeat.interval.ms`. Default 3000.
    pub heartbeat_interval_ms: u64,
    /// `max.poll.interval.ms`: the rebalance timeout, how long the group waits for members
    /// to rejoin. Default 300000.
    pub max_poll_interval_ms: u64,
    /// `enable.auto.commit`. Default true.
    pub enable_auto_commit: bool,
    /// `auto.commit.interval.ms`. Default 5000.
    pub auto_commit_interval_ms: u64,
    /// `partition.assignment.strategy`, most preferred first. Default cooperative-sticky.
    pub assignors: Vec<Assignor>,
}

impl GroupConfig {
    /// The defaults for group `group_id`.
    pub fn new(group_id: impl Into<String>) -> GroupConfig {
        GroupConfig {
            group_id: group_id.into(),
            group_instance_id: None,
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 3_000,
            max_poll_interval_ms: 300_000,
            enable_auto_commit: true,
            auto_commit_interval_ms: 5_000,
            assignors: vec![Assignor::CooperativeSticky],
        }
    }

    /// Checks what cannot work.
    pub fn validate(&self) -> Result<(), ClientError> {
        let bad = |m: &str| Err(ClientError::Config(m.to_string()));
        if self.group_id.is_empty() {
            return bad("group.id is empty");
        }
        if self.assignors.is_empty() {
            return bad("partition.assignment.strategy is empty");
        }
        // Java's rule: all assignors must support the protocol in use.
        let cooperative = self.assignors.iter().filter(|a| a.is_cooperative()).count();
        if cooperative != 0 && cooperative != self.assignors.len() {
            return bad(
                "partition.assignment.strategy mixes cooperative-sticky with eager assignors",
            );
        }
        if self.heartbeat_interval_ms == 0 || self.heartbeat_interval_ms >= self.session_timeout_ms
        {
            return bad("heartbeat.interval.ms must be positive and below session.timeout.ms");
        }
        if i32::try_from(self.session_timeout_ms).is_err()
            || i32::try_from(self.max_poll_interval_ms).is_err()
        {
            return bad("session.timeout.ms and max.poll.interval.ms must fit in an int32");
        }
        Ok(())
    }

    fn cooperative(&self) -> bool {
        self.assignors.iter().all(|a| a.is_cooperative())
    }
}

/// A generation of the group, as this member joined it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    pub generation_id: i32,
    pub member_id: String,
    /// The assignor the group chose.
    pub protocol: String,
}

/// Hears of the group's decisions. Every method has a default that does nothing.
pub trait RebalanceListener: Send {
    /// Partitions this member gives up (after their positions were committed, with auto
    /// commit), before anyone else may be given them.
    fn on_partitions_revoked(&mut self, _partitions: &[TopicPartition]) {}
    /// Partitions newly given to this member (called after every rebalance, even if empty,
    /// as Java's consumer does).
    fn on_partitions_assigned(&mut self, _partitions: &[TopicPartition]) {}
    /// Partitions this member lost without giving them up: it fell out of the group, and
    /// someone else may already own them. By default, as revoked.
    fn on_partitions_lost(&mut self, partitions: &[TopicPartition]) {
        self.on_partitions_revoked(partitions);
    }
    /// Every generation this member completes, with its whole assignment in it and where
    /// each partition will be read from next (the committed offset or the reset for a new
    /// one; `None` while a reset is still to be looked up).
    fn on_generation(
        &mut self,
        _generation: &Generation,
        _assignment: &[(TopicPartition, Option<i64>)],
    ) {
    }
}

/// A consumer in a consumer group.
pub struct GroupConsumer {
    /// Fetching, positions and the connections.
    consumer: Consumer,
    /// The group settings.
    group: GroupConfig,
    /// The subscribed topics.
    topics: Vec<String>,
    /// Told of rebalances.
    listener: Option<Box<dyn RebalanceListener>>,
    /// The coordinator's connection, once found.
    coordinator: Option<Arc<BrokerConnection>>,
    /// The member id the coordinator gave ("" before the first join).
    member_id: String,
    /// The generation joined and synced; `None` while (re)joining or out of the group.
    generation: Option<Generation>,
    /// A rebalance is under way: rejoin at the next poll.
    rejoin: bool,
    /// When the next heartbeat is due.
    next_heartbeat: Instant,
    /// When a heartbeat last succeeded (or the generation began).
    heartbeat_ok: Instant,
    /// When the next auto commit is due.
    next_auto_commit: Instant,
    /// The offsets last committed, so unchanged positions are not committed again.
    committed: BTreeMap<TopicPartition, i64>,
}

impl GroupConsumer {
    /// A group consumer with its own connections; nothing is dialled until it polls.
    pub fn new(
        env: Env,
        config: ConsumerConfig,
        group: GroupConfig,
    ) -> Result<GroupConsumer, ClientError> {
        group.validate()?;
        let consumer = Consumer::new(env, config)?;
        let now = monotonic_now();
        Ok(GroupConsumer {
            consumer,
            group,
            topics: Vec::new(),
            listener: None,
            coordinator: None,
            member_id: String::new(),
            generation: None,
            rejoin: false,
            next_heartbeat: now,
            heartbeat_ok: now,
            next_auto_commit: now,
            committed: BTreeMap::new(),
        })
    }

    /// Subscribes to `topics` (replacing any earlier subscription), with an optional
    /// listener; takes effect at the next poll, with a rebalance if already in the group.
    pub fn subscribe(
        &mut self,
        topics: impl IntoIterator<Item = impl Into<String>>,
        listener: Option<Box<dyn RebalanceListener>>,
    ) {
        let mut topics: Vec<String> = topics.into_iter().map(Into::into).collect();
        topics.sort();
        topics.dedup();
        self.consumer.cluster.add_interest(&topics);
        self.topics = topics;
        self.listener = listener;
        if self.generation.is_some() {
            self.rejoin = true;
        }
    }

    /// The partitions assigned to this member now.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.consumer.assignment()
    }

    /// The generation this member is in, if it is in one.
    pub fn generation(&self) -> Option<&Generation> {
        self.generation.as_ref()
    }

    /// The position (next offset to return) of an assigned partition, if known.
    pub fn position(&self, tp: &TopicPartition) -> Option<i64> {
        self.consumer.assigned.get(tp).and_then(|s| s.position)
    }

    /// Changes `max.poll.records` (at least 1) for the polls that follow.
    pub fn set_max_poll_records(&mut self, n: usize) {
        self.consumer.set_max_poll_records(n);
    }

    /// Sets the next offset to read of an assigned partition.
    pub fn seek(&mut self, tp: &TopicPartition, offset: i64) -> Result<(), ClientError> {
        self.consumer.seek(tp, offset)
    }

    /// Takes part in the group and returns records of the assigned partitions: at once if
    /// some are buffered, else after up to `timeout` (longer while the group rebalances).
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>, ClientError> {
        if self.topics.is_empty() {
            return Err(ClientError::InvalidArgument(
                "poll before subscribe: no topics".into(),
            ));
        }
        let deadline = monotonic_now() + timeout;
        loop {
            match self.ensure_active().await {
                Ok(()) => {
                    self.heartbeat_if_due().await?;
                    self.auto_commit_if_due().await;
                }
                Err(e) if e.is_retriable() => {
                    tracing::debug!(group = %self.group.group_id, error = %e, "group not joined yet; retrying");
                    let pause = Duration::from_millis(self.consumer.config.client.retry_backoff_ms);
                    tokio::time::sleep(pause).await;
                }
                Err(e) => return Err(e),
            }
            let now = monotonic_now();
            if self.generation.is_some() && !self.rejoin {
                let next =
                    deadline
                        .min(self.next_heartbeat)
                        .min(if self.group.enable_auto_commit {
                            self.next_auto_commit
                        } else {
                            deadline
                        });
                let records = self
                    .consumer
                    .poll(next.saturating_duration_since(now))
                    .await?;
                if !records.is_empty() {
                    return Ok(records);
                }
            }
            if monotonic_now() >= deadline && !self.rejoin {
                return Ok(Vec::new());
            }
        }
    }

    /// Commits the positions of every assigned partition, waiting until the coordinator has
    /// made them durable. Fails (and the member rejoins) if a rebalance fenced this member.
    pub async fn commit_sync(&mut self) -> Result<(), ClientError> {
        let offsets = self.positions(None);
        self.commit_offsets(offsets).await
    }

    /// Commits `offsets` (per partition, the next offset to read).
    pub async fn commit_offsets(
        &mut self,
        offsets: BTreeMap<TopicPartition, i64>,
    ) -> Result<(), ClientError> {
        if offsets.is_empty() {
            return Ok(());
        }
        let Some(g) = self.generation.clone() else {
            return Err(ClientError::kafka(
                ResponseError::RebalanceInProgress,
                format!(
                    "committing for group '{}': not in a generation",
                    self.group.group_id
                ),
                None,
            ));
        };
        let by = Committer {
            generation: g.generation_id,
            member_id: g.member_id.clone(),
            group_instance_id: self.group.group_instance_id.clone(),
        };
        let group = self.group.group_id.clone();
        let cluster = self.consumer.cluster.clone();
        // A position committed carries the leader epoch of the record before it (KIP-320),
        // so whoever starts from it next does not trust metadata older than that.
        let with_epochs: BTreeMap<TopicPartition, CommittedOffset> = offsets
            .iter()
            .map(|(tp, &offset)| {
                let leader_epoch = self
                    .consumer
                    .position_and_epoch(tp)
                    .filter(|(p, _)| *p == offset)
                    .and_then(|(_, e)| e);
                let c = CommittedOffset {
                    offset,
                    leader_epoch,
                };
                (tp.clone(), c)
            })
            .collect();
        // Retried only where the commit surely did not happen, so an error says whether it
        // may have: `outcome_unknown` (a timeout, a lost connection) or not. A coordinator
        // that answers NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE or REQUEST_TIMED_OUT may
        // have appended the commit before it lost its partition (Kafka maps a failed append to
        // these), and the commit can survive on the next coordinator; such an answer is
        // retried, but if the retries then fail, the outcome is unknown, not "not applied".
        let what = format!("committing for group '{group}'");
        let earlier: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);
        let result = cluster
            .retrying(&what, false, || async {
                let conn = coordinator::find(&cluster, &group).await?;
                let r = coordinator::commit_offsets(&conn, &group, &by, &with_epochs).await;
                if let Err(e) = &r {
                    if commit_may_have_applied(e) {
                        *earlier.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                    }
                }
                r
            })
            .await;
        match result {
            Ok(()) => {
                self.committed.extend(offsets);
                Ok(())
            }
            Err(e) => {
                if let Some(code) = e.code() {
                    self.fenced(code);
                }
                match earlier.into_inner().unwrap_or_else(|p| p.into_inner()) {
                    Some(earlier) if !e.outcome_unknown() => Err(ClientError::MaybeApplied {
                        what,
                        earlier,
                        last: Box::new(e),
                    }),
                    _ => Err(e),
                }
            }
        }
    }

    /// The group's committed offsets of `partitions` (absent: none committed).
    pub async fn committed(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>, ClientError> {
        let found = self.committed_with_epochs(partitions).await?;
        Ok(found.into_iter().map(|(tp, c)| (tp, c.offset)).collect())
    }

    /// The group's committed offsets of `partitions`, with their leader epochs.
    async fn committed_with_epochs(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, CommittedOffset>, ClientError> {
        let group = &self.group.group_id;
        let cluster = &self.consumer.cluster;
        cluster
            .retrying(
                &format!("fetching offsets of group '{group}'"),
                true,
                || async {
                    let conn = coordinator::find(cluster, group).await?;
                    coordinator::fetch_offsets(&conn, group, Some(partitions)).await
                },
            )
            .await
    }

    /// Leaves the group: commits (with auto commit), revokes, and sends LeaveGroup, unless
    /// the member is static (KIP-345: it keeps its place until its session times out).
    pub async fn close(mut self) -> Result<(), ClientError> {
        let mut result = Ok(());
        if self.generation.is_some() {
            if self.group.enable_auto_commit {
                result = self.commit_sync().await;
            }
            let all = self.consumer.assignment();
            if let Some(l) = self.listener.as_mut() {
                l.on_partitions_revoked(&all);
            }
        }
        self.consumer.assign(Vec::new());
        if self.group.group_instance_id.is_none() && !self.member_id.is_empty() {
            if let Some(conn) = self.coordinator.clone() {
                let leave = self.leave(&conn).await;
                result = result.and(leave);
            }
        }
        result
    }

    async fn leave(&self, conn: &BrokerConnection) -> Result<(), ClientError> {
        let version = conn.version_for(ApiKey::LeaveGroup)?;
        let mut req = LeaveGroupRequest::default().with_group_id(group_id(&self.group.group_id));
        let member = StrBytes::from_string(self.member_id.clone());
        if version >= 3 {
            req.members = vec![MemberIdentity::default().with_member_id(member)];
        } else {
            req.member_id = member;
        }
        let resp = conn.start_at(&req, version).await?.wait().await?;
        crate::client::error::check_code(resp.error_code, || "leaving the group".into(), None)
    }

    /// The known positions of `only` (all assigned partitions if `None`) that differ from
    /// what was last committed.
    fn positions(&self, only: Option<&[TopicPartition]>) -> BTreeMap<TopicPartition, i64> {
        self.consumer
            .assigned
            .iter()
            .filter(|(tp, _)| only.is_none_or(|o| o.contains(tp)))
            .filter_map(|(tp, s)| s.position.map(|p| (tp.clone(), p)))
            .filter(|(tp, p)| self.committed.get(tp) != Some(p))
            .collect()
    }

    /// Reacts to a group error in an answer: a rebalance means rejoin; being fenced means
    /// the partitions are lost; a moved coordinator must be found again.
    fn fenced(&mut self, code: ResponseError) {
        match code {
            ResponseError::RebalanceInProgress => self.rejoin = true,
            ResponseError::IllegalGeneration => self.lose_partitions(),
            ResponseError::UnknownMemberId => {
                self.member_id.clear();
                self.lose_partitions();
            }
            ResponseError::NotCoordinator
            | ResponseError::CoordinatorNotAvailable
            | ResponseError::CoordinatorLoadInProgress => self.coordinator = None,
            _ => {}
        }
    }

    /// Drops the assignment without committing: the member is out of its generation.
    fn lose_partitions(&mut self) {
        let lost = self.consumer.assignment();
        self.consumer.assign(Vec::new());
        self.generation = None;
        if let Some(l) = self.listener.as_mut() {
            l.on_partitions_lost(&lost);
        }
    }

    /// Gives up `partitions`: commits their positions (auto commit), tells the listener, and
    /// stops reading them.
    async fn revoke(&mut self, partitions: &[TopicPartition]) {
        if partitions.is_empty() {
            return;
        }
        if self.group.enable_auto_commit {
            let offsets = self.positions(Some(partitions));
            if let Err(e) = self.commit_offsets(offsets).await {
                tracing::info!(group = %self.group.group_id, error = %e, "commit before revoking failed");
            }
        }
        if let Some(l) = self.listener.as_mut() {
            l.on_partitions_revoked(partitions);
        }
        let keep: Vec<TopicPartition> = self
            .consumer
            .assignment()
            .into_iter()
            .filter(|tp| !partitions.contains(tp))
            .collect();
        self.consumer.assign(keep);
    }

    /// Joins (or rejoins) until in a generation. Errors are those of one attempt.
    async fn ensure_active(&mut self) -> Result<(), ClientError> {
        if self.generation.is_some()
            && monotonic_now().saturating_duration_since(self.heartbeat_ok)
                > Duration::from_millis(self.group.session_timeout_ms)
        {
            tracing::info!(group = %self.group.group_id, "no heartbeat for a session timeout; partitions lost");
            self.lose_partitions();
            self.coordinator = None;
        }
        while self.generation.is_none() || self.rejoin {
            let conn = match self.coordinator.clone() {
                Some(c) if c.is_alive() => c,
                _ => {
                    let c = coordinator::find(&self.consumer.cluster, &self.group.group_id).await?;
                    self.coordinator = Some(c.clone());
                    c
                }
            };
            if let Err(e) = self.join_and_sync(&conn).await {
                if let Some(code) = e.code() {
                    self.fenced(code);
                } else {
                    self.coordinator = None;
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// One JoinGroup and SyncGroup round.
    async fn join_and_sync(&mut self, conn: &BrokerConnection) -> Result<(), ClientError> {
        if !self.group.cooperative() {
            // Eager: give up everything before joining.
            let all = self.consumer.assignment();
            self.revoke(&all).await;
        }
        self.generation = None;
        self.rejoin = true;
        let owned = self.consumer.assignment();
        let join_version = conn.version_for(ApiKey::JoinGroup)?;
        let mut join = JoinGroupRequest::default()
            .with_group_id(group_id(&self.group.group_id))
            .with_session_timeout_ms(self.group.session_timeout_ms as i32)
            .with_member_id(StrBytes::from_string(self.member_id.clone()))
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(
                self.group
                    .assignors
                    .iter()
                    .map(|a| {
                        JoinGroupRequestProtocol::default()
                            .with_name(StrBytes::from_static_str(a.name()))
                            .with_metadata(encode_subscription(&self.topics, &owned, -1))
                    })
                    .collect(),
            );
        if join_version >= 1 {
            join.rebalance_timeout_ms = self.group.max_poll_interval_ms as i32;
        }
        if join_version >= 5 {
            join.group_instance_id = self
                .group
                .group_instance_id
                .clone()
                .map(StrBytes::from_string);
        } else if self.group.group_instance_id.is_some() {
            return Err(ClientError::Config(
                "group.instance.id needs JoinGroup v5, which the coordinator lacks".into(),
            ));
        }
        // The coordinator holds a join until the group has gathered.
        let patience = Duration::from_millis(
            self.consumer
                .config
                .client
                .request_timeout_ms
                .max(self.group.max_poll_interval_ms + 5_000),
        );
        let resp = conn
            .start_at(&join, join_version)
            .await?
            .with_timeout(patience)
            .wait()
            .await?;
        match ResponseError::try_from_code(resp.error_code) {
            None => {}
            Some(ResponseError::MemberIdRequired) => {
                // KIP-394: join again with the id the coordinator chose.
                self.member_id = resp.member_id.to_string();
                return Ok(());
            }
            Some(code) => {
                return Err(ClientError::kafka(
                    code,
                    format!("joining group '{}'", self.group.group_id),
                    None,
                ));
            }
        }
        self.member_id = resp.member_id.to_string();
        let protocol = resp
            .protocol_name
            .as_ref()
            .map(|p| p.to_string())
            .unwrap_or_default();
        let generation = Generation {
            generation_id: resp.generation_id,
            member_id: self.member_id.clone(),
            protocol: protocol.clone(),
        };
        let assignments = if resp.leader == resp.member_id && !resp.skip_assignment {
            self.lead(&protocol, &resp.members).await?
        } else {
            Vec::new()
        };
        let sync_version = conn.version_for(ApiKey::SyncGroup)?;
        let mut sync = SyncGroupRequest::default()
            .with_group_id(group_id(&self.group.group_id))
            .with_generation_id(generation.generation_id)
            .with_member_id(StrBytes::from_string(self.member_id.clone()))
            .with_assignments(assignments);
        if sync_version >= 3 {
            sync.group_instance_id = self
                .group
                .group_instance_id
                .clone()
                .map(StrBytes::from_string);
        }
        if sync_version >= 5 {
            sync.protocol_type = Some(StrBytes::from_static_str("consumer"));
            sync.protocol_name = Some(StrBytes::from_string(protocol.clone()));
        }
        let resp = conn
            .start_at(&sync, sync_version)
            .await?
            .with_timeout(patience)
            .wait()
            .await?;
        if let Some(code) = ResponseError::try_from_code(resp.error_code) {
            return Err(ClientError::kafka(
                code,
                format!("syncing group '{}'", self.group.group_id),
                None,
            ));
        }
        let assigned =
            decode_assignment(&resp.assignment).ok_or_else(|| ClientError::Protocol {
                addr: conn.addr().to_string(),
                reason: format!(
                    "group '{}' sent an assignment that does not decode",
                    self.group.group_id
                ),
            })?;
        self.take_assignment(generation, assigned).await
    }

    /// As the leader: the assignment of every member, by the chosen assignor.
    async fn lead(
        &mut self,
        protocol: &str,
        members: &[kafka_protocol::messages::join_group_response::JoinGroupResponseMember],
    ) -> Result<Vec<SyncGroupRequestAssignment>, ClientError> {
        let assignor = Assignor::by_name(protocol).ok_or_else(|| {
            ClientError::Config(format!(
                "the group chose assignor '{protocol}', unknown here"
            ))
        })?;
        let mut subscriptions = Vec::new();
        let mut versions = BTreeMap::new();
        for m in members {
            let (version, topics, owned, generation) = decode_subscription(&m.metadata)
                .ok_or_else(|| ClientError::Protocol {
                    addr: "the coordinator".into(),
                    reason: format!(
                        "member {} sent a subscription that does not decode",
                        m.member_id
                    ),
                })?;
            versions.insert(m.member_id.to_string(), version);
            subscriptions.push(Member {
                member_id: m.member_id.to_string(),
                group_instance_id: m.group_instance_id.as_ref().map(|s| s.to_string()),
                topics,
                owned,
                generation,
            });
        }
        let topics: BTreeSet<String> = subscriptions
            .iter()
            .flat_map(|m| m.topics.iter().cloned())
            .collect();
        let topics: Vec<String> = topics.into_iter().collect();
        let md = self.consumer.cluster.refresh(&topics).await?;
        let counts: BTreeMap<String, i32> = topics
            .iter()
            .filter_map(|t| {
                md.topics
                    .get(t)
                    .map(|tm| (t.clone(), tm.partitions.len() as i32))
            })
            .collect();
        let plan = assignor::assign(assignor, &subscriptions, &counts);
        Ok(plan
            .into_iter()
            .map(|(member, tps)| {
                let version = versions.get(&member).copied().unwrap_or(0);
                SyncGroupRequestAssignment::default()
                    .with_member_id(StrBytes::from_string(member))
                    .with_assignment(encode_assignment(&tps, version))
            })
            .collect())
    }

    /// Applies a generation's assignment: revokes what this member lost (cooperative) and
    /// positions what it gained at the committed offsets.
    async fn take_assignment(
        &mut self,
        generation: Generation,
        assigned: Vec<TopicPartition>,
    ) -> Result<(), ClientError> {
        let owned = self.consumer.assignment();
        let revoked: Vec<TopicPartition> = owned
            .iter()
            .filter(|tp| !assigned.contains(tp))
            .cloned()
            .collect();
        let added: Vec<TopicPartition> = assigned
            .iter()
            .filter(|tp| !owned.contains(tp))
            .cloned()
            .collect();
        // The generation is ours before revoking, so the revoked positions can be committed.
        self.generation = Some(generation.clone());
        self.rejoin = false;
        let now = monotonic_now();
        self.heartbeat_ok = now;
        self.next_heartbeat = now + Duration::from_millis(self.group.heartbeat_interval_ms);
        if !revoked.is_empty() {
            self.revoke(&revoked).await;
            // KIP-429: what was given up may now go to another member in a new round.
            self.rejoin = true;
        }
        let start = if added.is_empty() {
            BTreeMap::new()
        } else {
            match self.committed_with_epochs(&added).await {
                Ok(offsets) => offsets,
                Err(e) => {
                    // Without the committed offsets the new partitions cannot start right.
                    self.lose_partitions();
                    return Err(e);
                }
            }
        };
        self.consumer.assign(assigned.clone());
        for (tp, c) in &start {
            self.consumer
                .seek_with_epoch(tp, c.offset, c.leader_epoch)?;
            self.committed.insert(tp.clone(), c.offset);
        }
        for tp in &revoked {
            self.committed.remove(tp);
        }
        // Where there is no commit, look up the reset now, so the listener hears where each
        // partition starts; on failure the first poll tries again.
        if let Err(e) = self.consumer.update_positions().await {
            tracing::debug!(group = %self.group.group_id, error = %e, "resetting positions failed; the next poll retries");
        }
        // Looking up the committed offsets and positions sends no heartbeats: if it outlasted
        // the session, the coordinator has dropped this member and the generation is no
        // longer its own (Java's heartbeat thread would have learned so). Rejoin rather than
        // adopt it (seed 9700438: a member adopted a generation 9 s late, after its group was
        // deleted).
        if monotonic_now().saturating_duration_since(self.heartbeat_ok)
            > Duration::from_millis(self.group.session_timeout_ms)
        {
            tracing::info!(group = %self.group.group_id, generation = generation.generation_id, "positioning the assignment outlasted the session; rejoining");
            let kept: Vec<TopicPartition> = owned
                .iter()
                .filter(|tp| !revoked.contains(tp))
                .cloned()
                .collect();
            self.consumer.assign(Vec::new());
            self.generation = None;
            self.coordinator = None;
            if let Some(l) = self.listener.as_mut() {
                l.on_partitions_lost(&kept);
            }
            return Ok(());
        }
        if let Some(l) = self.listener.as_mut() {
            let at: Vec<(TopicPartition, Option<i64>)> = assigned
                .iter()
                .map(|tp| {
                    let p = self.consumer.assigned.get(tp).and_then(|s| s.position);
                    (tp.clone(), p)
                })
                .collect();
            l.on_generation(&generation, &at);
            l.on_partitions_assigned(&added);
        }
        tracing::debug!(group = %self.group.group_id, generation = generation.generation_id, member = %generation.member_id, assigned = assigned.len(), "joined");
        Ok(())
    }

    async fn heartbeat_if_due(&mut self) -> Result<(), ClientError> {
        let now = monotonic_now();
        let Some(g) = self.generation.clone() else {
            return Ok(());
        };
        if now < self.next_heartbeat {
            return Ok(());
        }
        self.next_heartbeat = now + Duration::from_millis(self.group.heartbeat_interval_ms);
        let Some(conn) = self.coordinator.clone() else {
            return Ok(());
        };
        let version = match conn.version_for(ApiKey::Heartbeat) {
            Ok(v) => v,
            Err(e) => return Err(e),
        };
        let mut req = HeartbeatRequest::default()
            .with_group_id(group_id(&self.group.group_id))
            .with_generation_id(g.generation_id)
            .with_member_id(StrBytes::from_string(g.member_id.clone()));
        if version >= 3 {
            req.group_instance_id = self
                .group
                .group_instance_id
                .clone()
                .map(StrBytes::from_string);
        }
        let sent = async { conn.start_at(&req, version).await?.wait().await }.await;
        match sent {
            Ok(resp) => match ResponseError::try_from_code(resp.error_code) {
                None => self.heartbeat_ok = monotonic_now(),
                Some(ResponseError::FencedInstanceId) => {
                    self.lose_partitions();
                    return Err(ClientError::kafka(
                        ResponseError::FencedInstanceId,
                        format!(
                            "group '{}': another member took group.instance.id",
                            self.group.group_id
                        ),
                        None,
                    ));
                }
                Some(code) => {
                    tracing::debug!(group = %self.group.group_id, ?code, "heartbeat answered with an error");
                    self.fenced(code);
                }
            },
            Err(e) => {
                tracing::debug!(group = %self.group.group_id, error = %e, "heartbeat failed");
                self.coordinator = None;
            }
        }
        Ok(())
    }

    async fn auto_commit_if_due(&mut self) {
        let now = monotonic_now();
        if !self.group.enable_auto_commit || now < self.next_auto_commit {
            return;
        }
        self.next_auto_commit = now + Duration::from_millis(self.group.auto_commit_interval_ms);
        let offsets = self.positions(None);
        if let Err(e) = self.commit_offsets(offsets).await {
            tracing::info!(group = %self.group.group_id, error = %e, "auto commit failed");
        }
    }
}

/// The member metadata of protocol type `consumer`: ConsumerProtocolSubscription v3.
pub fn encode_subscription(topics: &[String], owned: &[TopicPartition], generation: i32) -> Bytes {
    let by_topic = crate::client::partitions_by_topic(owned);
    let sub = ConsumerProtocolSubscription::default()
        .with_topics(
            topics
                .iter()
                .map(|t| StrBytes::from_string(t.clone()))
                .collect(),
        )
        .with_owned_partitions(
            by_topic
                .into_iter()
                .map(|(t, ps)| {
                    consumer_protocol_subscription::TopicPartition::default()
                        .with_topic(TopicName(StrBytes::from_string(t.to_string())))
                        .with_partitions(ps)
                })
                .collect(),
        )
        .with_generation_id(generation);
    encode_versioned(&sub, 3)
}

/// Version, topics, owned partitions and generation of a subscription; `None` if it does not
/// decode. Versions above 3 decode as 3 (later versions only append fields).
pub fn decode_subscription(bytes: &[u8]) -> Option<(i16, Vec<String>, Vec<TopicPartition>, i32)> {
    let (version, sub): (i16, ConsumerProtocolSubscription) = decode_versioned(bytes)?;
    let owned = sub
        .owned_partitions
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| TopicPartition::new(t.topic.0.as_str(), *p))
        })
        .collect();
    let topics = sub.topics.iter().map(|t| t.to_string()).collect();
    Some((version, topics, owned, sub.generation_id))
}

/// A member's assignment of protocol type `consumer` in `version` (the member's
/// subscription version, at most 3).
pub fn encode_assignment(tps: &[TopicPartition], version: i16) -> Bytes {
    let by_topic = crate::client::partitions_by_topic(tps);
    let a = ConsumerProtocolAssignment::default().with_assigned_partitions(
        by_topic
            .into_iter()
            .map(|(t, ps)| {
                consumer_protocol_assignment::TopicPartition::default()
                    .with_topic(TopicName(StrBytes::from_string(t.to_string())))
                    .with_partitions(ps)
            })
            .collect(),
    );
    encode_versioned(&a, version.clamp(0, 3))
}

/// The partitions of an assignment (an empty one is no partitions); `None` if it does not
/// decode.
pub fn decode_assignment(bytes: &[u8]) -> Option<Vec<TopicPartition>> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let (_, a): (i16, ConsumerProtocolAssignment) = decode_versioned(bytes)?;
    let mut out: Vec<TopicPartition> = a
        .assigned_partitions
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| TopicPartition::new(t.topic.0.as_str(), *p))
        })
        .collect();
    out.sort();
    out.dedup();
    Some(out)
}

fn encode_versioned<T: Encodable>(value: &T, version: i16) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(version);
    // Only fields this version has are set, so encoding cannot fail.
    if value.encode(&mut buf, version).is_err() {
        buf.truncate(2);
    }
    buf.freeze()
}

/// Decodes a version-prefixed consumer protocol struct. Another member's bytes are not
/// trusted: a decoder panic is caught and reported as `None`.
fn decode_versioned<T: Decodable>(bytes: &[u8]) -> Option<(i16, T)> {
    let mut buf = Bytes::copy_from_slice(bytes);
    if buf.remaining() < 2 {
        return None;
    }
    let version = buf.get_i16();
    if version < 0 {
        return None;
    }
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        T::decode(&mut buf, version.min(3))
    }));
    match decoded {
        Ok(Ok(v)) => Some((version, v)),
        _ => None,
    }
}

/// True when an OffsetCommit that failed with `e` may still have been applied: no answer
/// came, or the coordinator lost its partition while (perhaps after) appending it.
fn commit_may_have_applied(e: &ClientError) -> bool {
    e.outcome_unknown()
        || matches!(
            e.code(),
            Some(
                ResponseError::NotCoordinator
                    | ResponseError::CoordinatorNotAvailable
                    | ResponseError::RequestTimedOut
            )
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_answered_by_a_coordinator_losing_its_partition_may_have_applied() {
        let k = |code| ClientError::kafka(code, "commit", None);
        for code in [
            ResponseError::NotCoordinator,
            ResponseError::CoordinatorNotAvailable,
            ResponseError::RequestTimedOut,
        ] {
            assert!(commit_may_have_applied(&k(code)), "{code:?}");
        }
        let lost = ClientError::Disconnected {
            addr: "b".into(),
            reason: "reset".into(),
        };
        assert!(commit_may_have_applied(&lost));
        for code in [
            ResponseError::UnknownMemberId,
            ResponseError::IllegalGeneration,
            ResponseError::RebalanceInProgress,
        ] {
            assert!(!commit_may_have_applied(&k(code)), "{code:?}");
        }
        // What the workload and users see: an unknown outcome with no code to act on.
        let e = ClientError::MaybeApplied {
            what: "commit".into(),
            earlier: k(ResponseError::NotCoordinator).to_string(),
            last: Box::new(k(ResponseError::UnknownMemberId)),
        };
        assert!(e.outcome_unknown() && e.code().is_none() && !e.is_retriable());
    }

    #[test]
    fn subscriptions_and_assignments_round_trip() {
        let owned = vec![TopicPartition::new("t", 1), TopicPartition::new("t", 0)];
        let b = encode_subscription(&["t".into(), "u".into()], &owned, 7);
        let (v, topics, got, generation) = decode_subscription(&b).unwrap();
        assert_eq!((v, generation), (3, 7));
        assert_eq!(topics, vec!["t".to_string(), "u".to_string()]);
        assert_eq!(got.len(), 2);
        // The broker's own parser reads what the client writes.
        assert_eq!(
            crate::group::records::subscribed_topics(&b).unwrap(),
            vec!["t".to_string(), "u".to_string()]
        );
        for version in 0..=3 {
            let a = encode_assignment(&owned, version);
            let mut want = owned.clone();
            want.sort();
            assert_eq!(decode_assignment(&a).unwrap(), want);
            assert_eq!(
                crate::group::records::assigned_partitions(&a).unwrap(),
                vec![("t".to_string(), vec![1, 0])]
            );
        }
        assert_eq!(decode_assignment(&[]).unwrap(), vec![]);
    }

    #[test]
    fn hostile_consumer_protocol_bytes_are_refused_not_panicked_on() {
        for bad in [
            &b""[..],
            &b"\x00"[..],
            &b"\xff\xff"[..],
            &b"\x00\x00\x7f\xff\xff\xff"[..],
            &b"\x00\x01\x00\x00\x00\x01\x00\x05ab"[..],
        ] {
            assert!(decode_subscription(bad).is_none(), "{bad:?}");
        }
        assert!(decode_assignment(b"\x00\x00\xff\xff\xff\x00").is_none());
    }

    #[test]
    fn a_newer_version_decodes_as_the_newest_known() {
        let mut b = BytesMut::from(&encode_subscription(&["t".into()], &[], 1)[..]);
        b[1] = 9;
        b.extend_from_slice(b"future fields");
        let (v, topics, _, _) = decode_subscription(&b).unwrap();
        assert_eq!((v, topics), (9, vec!["t".to_string()]));
    }

    #[test]
    fn config_mixing_protocols_is_refused() {
        let mut c = GroupConfig::new("g");
        c.assignors = vec![Assignor::CooperativeSticky, Assignor::Range];
        assert!(c.validate().is_err());
        c.assignors = vec![Assignor::Range, Assignor::RoundRobin];
        assert!(c.validate().is_ok());
        assert!(GroupConfig::new("").validate().is_err());
    }
}
