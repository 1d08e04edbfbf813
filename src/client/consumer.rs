//! The consumer: reads assigned partitions from their leaders, from a position it keeps.
//!
//! There are no consumer groups yet: the caller assigns partitions ([`Consumer::assign`]) and
//! positions them ([`Consumer::seek`] and friends, or `auto.offset.reset`). [`Consumer::poll`]
//! fetches from every leader at once with a long poll (`fetch.max.wait.ms`,
//! `fetch.min.bytes`), checks every batch's CRC, and returns records in offset order per
//! partition. A partition whose fetched records are not all returned yet is not fetched
//! again until they are, so the position is always the next record the caller will see.

pub mod assignor;
pub mod group;
pub mod records;

use super::admin::{OffsetSpec, list_offsets};
use super::cluster::Cluster;
use super::error::ClientError;
use super::{ClientConfig, RecordHeader, TopicPartition};
use crate::env::{Env, monotonic_now};
use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// `auto.offset.reset`: where to start when there is no position, or it is out of range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetReset {
    /// The log start.
    Earliest,
    /// The log end: only records produced from now on.
    Latest,
    /// Fail instead.
    None,
}

impl FromStr for OffsetReset {
    type Err = ClientError;

    fn from_str(s: &str) -> Result<OffsetReset, ClientError> {
        match s {
            "earliest" => Ok(OffsetReset::Earliest),
            "latest" => Ok(OffsetReset::Latest),
            "none" => Ok(OffsetReset::None),
            other => Err(ClientError::Config(format!(
                "auto.offset.reset must be earliest, latest or none, not '{other}'"
            ))),
        }
    }
}

/// The consumer's settings, named after the Java client's.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Settings shared by every client.
    pub client: ClientConfig,
    /// `auto.offset.reset`. Default latest.
    pub auto_offset_reset: OffsetReset,
    /// `fetch.min.bytes`: the broker waits for this much data (up to `fetch.max.wait.ms`).
    /// Default 1.
    pub fetch_min_bytes: i32,
    /// `fetch.max.bytes`: the most data one fetch returns (at least one batch is always
    /// returned). Default 52428800.
    pub fetch_max_bytes: i32,
    /// `fetch.max.wait.ms`: how long the broker may hold a fetch waiting for data. Default 500.
    pub fetch_max_wait_ms: u64,
    /// `max.partition.fetch.bytes`: the most data per partition per fetch. Default 1048576.
    pub max_partition_fetch_bytes: i32,
    /// `max.poll.records`: the most records one poll returns. Default 500.
    pub max_poll_records: usize,
    /// `allow.auto.create.topics`: whether looking up a missing topic may create it (if the
    /// broker allows). Default false here: a consumer that creates what it reads hides typos.
    pub allow_auto_create_topics: bool,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            client: ClientConfig::default(),
            auto_offset_reset: OffsetReset::Latest,
            fetch_min_bytes: 1,
            fetch_max_bytes: 52_428_800,
            fetch_max_wait_ms: 500,
            max_partition_fetch_bytes: 1_048_576,
            max_poll_records: 500,
            allow_auto_create_topics: false,
        }
    }
}

/// A record read from a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// Its topic (shared by the records of a partition).
    pub topic: Arc<str>,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// The leader epoch its batch was written in (KIP-320), if the broker stamped one.
    pub leader_epoch: Option<i32>,
    /// Its timestamp, ms since the epoch (-1 if none).
    pub timestamp: i64,
    /// Its key (`None` is null).
    pub key: Option<Bytes>,
    /// Its value (`None` is null).
    pub value: Option<Bytes>,
    /// Its headers.
    pub headers: Vec<RecordHeader>,
}

/// One assigned partition.
#[derive(Debug)]
struct PartitionState {
    /// The topic name, shared with its records.
    topic: Arc<str>,
    /// The next offset to return; `None` until reset.
    position: Option<i64>,
    /// The leader epoch of the record before `position` (of the last batch read, or of the
    /// committed offset it started from), if known (KIP-320's offset epoch).
    position_epoch: Option<i32>,
    /// How to find the position when it is `None` (a seek to the start or end, or an
    /// automatic reset); `None` means `auto.offset.reset`.
    reset: Option<OffsetSpec>,
    /// Records fetched and not yet returned.
    buffer: VecDeque<ConsumerRecord>,
    /// The position once the buffer is returned (after the last batch fetched).
    buffer_end: i64,
    /// The leader epoch of the last batch fetched.
    buffer_end_epoch: Option<i32>,
}

/// A consumer of assigned partitions.
pub struct Consumer {
    /// Connections and metadata.
    cluster: Arc<Cluster>,
    /// The settings.
    config: ConsumerConfig,
    /// Assigned partitions.
    assigned: BTreeMap<TopicPartition, PartitionState>,
    /// Rotates which partitions come first in polls, so none starves.
    poll_rotation: usize,
    /// Rotates which partitions come first in fetches, on its own: sharing one counter with
    /// polls moved it by two per cycle, so with four partitions one always came before
    /// another of the same leader, and a leader answers a batch larger than the partition's
    /// budget only to the first partition with data (seed 9700062 starved a partition for
    /// 220 s that way).
    fetch_rotation: usize,
    /// Fetches sent and not yet answered, at most one per leader, each a task of its own. They
    /// outlive the poll that sent them: a poll that returns (with records from another leader,
    /// or at its timeout) leaves them to be taken in by a later one. Tasks, not futures kept
    /// here: a future left unpolled between polls could hold the cluster's connection lock
    /// while the caller commits (seed 9200530 deadlocked a group member so). Dropping the
    /// consumer aborts them.
    in_flight: tokio::task::JoinSet<(i32, FetchParts, Result<FetchResponse, ClientError>)>,
    /// The leaders (broker ids) with a fetch in flight.
    fetching_from: BTreeSet<i32>,
}

/// What one fetch asked for: (partition, position, leader epoch) per partition.
type FetchParts = Vec<(TopicPartition, i64, i32)>;

/// The byte limits of a fetch request, from the consumer's settings.
#[derive(Debug, Clone, Copy)]
struct FetchLimits {
    min_bytes: i32,
    max_bytes: i32,
    partition_max_bytes: i32,
}

impl Consumer {
    /// A consumer with its own connections; nothing is dialled until it is used.
    pub fn new(env: Env, config: ConsumerConfig) -> Result<Consumer, ClientError> {
        let cluster = Cluster::new(env, config.client.clone(), config.allow_auto_create_topics)?;
        Ok(Consumer {
            cluster,
            config,
            assigned: BTreeMap::new(),
            poll_rotation: 0,
            fetch_rotation: 0,
            in_flight: tokio::task::JoinSet::new(),
            fetching_from: BTreeSet::new(),
        })
    }

    /// Replaces the assignment. Partitions kept keep their position.
    pub fn assign(&mut self, partitions: impl IntoIterator<Item = TopicPartition>) {
        let mut next = BTreeMap::new();
        for tp in partitions {
            let state = self.assigned.remove(&tp).unwrap_or_else(|| PartitionState {
                topic: Arc::from(tp.topic.as_str()),
                position: None,
                position_epoch: None,
                reset: None,
                buffer: VecDeque::new(),
                buffer_end: 0,
                buffer_end_epoch: None,
            });
            next.insert(tp, state);
        }
        let topics: Vec<String> = next.keys().map(|tp| tp.topic.clone()).collect();
        self.cluster.add_interest(&topics);
        self.assigned = next;
    }

    /// Changes `max.poll.records` (at least 1) for the polls that follow.
    pub fn set_max_poll_records(&mut self, n: usize) {
        self.config.max_poll_records = n.max(1);
    }

    /// The assigned partitions.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.assigned.keys().cloned().collect()
    }

    fn state(&mut self, tp: &TopicPartition) -> Result<&mut PartitionState, ClientError> {
        self.assigned
            .get_mut(tp)
            .ok_or_else(|| ClientError::InvalidArgument(format!("partition {tp} is not assigned")))
    }

    /// Sets the next offset to read.
    pub fn seek(&mut self, tp: &TopicPartition, offset: i64) -> Result<(), ClientError> {
        self.seek_with_epoch(tp, offset, None)
    }

    /// Sets the next offset to read, and the leader epoch of the record before it if known
    /// (as a committed offset carries it): metadata older than that epoch is then not
    /// trusted to say who leads.
    pub fn seek_with_epoch(
        &mut self,
        tp: &TopicPartition,
        offset: i64,
        leader_epoch: Option<i32>,
    ) -> Result<(), ClientError> {
        if offset < 0 {
            return Err(ClientError::InvalidArgument(format!(
                "offset {offset} is negative"
            )));
        }
        let st = self.state(tp)?;
        st.position = Some(offset);
        st.position_epoch = leader_epoch.filter(|e| *e >= 0);
        st.reset = None;
        st.buffer.clear();
        if let Some(e) = st.position_epoch {
            self.cluster.note_epoch(tp, e);
        }
        Ok(())
    }

    /// The position of `tp` and the leader epoch of the record before it, if known (what a
    /// commit of the position carries).
    pub fn position_and_epoch(&self, tp: &TopicPartition) -> Option<(i64, Option<i32>)> {
        let st = self.assigned.get(tp)?;
        Some((st.position?, st.position_epoch))
    }

    /// Moves to the log start of `partitions` (all assigned ones if empty), looked up at the
    /// next poll or position call.
    pub fn seek_to_beginning(&mut self, partitions: &[TopicPartition]) -> Result<(), ClientError> {
        self.seek_lazily(partitions, OffsetSpec::Earliest)
    }

    /// Moves to the log end of `partitions` (all assigned ones if empty).
    pub fn seek_to_end(&mut self, partitions: &[TopicPartition]) -> Result<(), ClientError> {
        self.seek_lazily(partitions, OffsetSpec::Latest)
    }

    fn seek_lazily(
        &mut self,
        partitions: &[TopicPartition],
        spec: OffsetSpec,
    ) -> Result<(), ClientError> {
        let all = self.assignment();
        let chosen = if partitions.is_empty() {
            &all[..]
        } else {
            partitions
        };
        for tp in chosen {
            let st = self.state(tp)?;
            st.position = None;
            st.position_epoch = None;
            st.reset = Some(spec);
            st.buffer.clear();
        }
        Ok(())
    }

    /// The offset of the next record `poll` will return for `tp`, looking it up if a seek or
    /// reset is pending.
    pub async fn position(&mut self, tp: &TopicPartition) -> Result<i64, ClientError> {
        self.state(tp)?;
        self.update_positions().await?;
        self.state(tp)?
            .position
            .ok_or_else(|| ClientError::InvalidArgument(format!("partition {tp} has no position")))
    }

    /// The partitions of `topic`; an error if it does not exist.
    pub async fn partitions_for(&self, topic: &str) -> Result<Vec<i32>, ClientError> {
        let t = self.cluster.topic(topic).await?;
        Ok(t.partitions.iter().map(|p| p.partition).collect())
    }

    /// The log end offsets (high watermarks) of `partitions`.
    pub async fn end_offsets(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>, ClientError> {
        let wanted: Vec<(TopicPartition, OffsetSpec)> = partitions
            .iter()
            .map(|tp| (tp.clone(), OffsetSpec::Latest))
            .collect();
        let found = list_offsets(&self.cluster, &wanted).await?;
        Ok(found.into_iter().map(|(tp, o)| (tp, o.offset)).collect())
    }

    /// Looks up the positions of partitions that have none.
    async fn update_positions(&mut self) -> Result<(), ClientError> {
        let mut wanted = Vec::new();
        for (tp, st) in &self.assigned {
            if st.position.is_some() {
                continue;
            }
            let spec = match (st.reset, self.config.auto_offset_reset) {
                (Some(s), _) => s,
                (None, OffsetReset::Earliest) => OffsetSpec::Earliest,
                (None, OffsetReset::Latest) => OffsetSpec::Latest,
                (None, OffsetReset::None) => {
                    return Err(ClientError::InvalidArgument(format!(
                        "partition {tp} has no position and auto.offset.reset is none; seek first"
                    )));
                }
            };
            wanted.push((tp.clone(), spec));
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let found = list_offsets(&self.cluster, &wanted).await?;
        for (tp, listed) in found {
            if let Some(st) = self.assigned.get_mut(&tp) {
                if st.position.is_none() && listed.offset >= 0 {
                    st.position = Some(listed.offset);
                    st.position_epoch = Some(listed.leader_epoch).filter(|e| *e >= 0);
                    st.reset = None;
                }
            }
        }
        Ok(())
    }

    /// Returns records fetched from the assigned partitions: at once if some are already
    /// buffered, else after waiting up to `timeout` for some to arrive (an empty list then).
    /// Network trouble is retried within the timeout; errors are returned only for what
    /// retrying cannot fix (corruption, an out-of-range position with no reset, a topic that
    /// no longer exists).
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>, ClientError> {
        let deadline = monotonic_now() + timeout;
        loop {
            if self.assigned.values().any(|s| !s.buffer.is_empty()) {
                return Ok(self.take_buffered());
            }
            let step = async {
                self.update_positions().await?;
                let left = deadline.saturating_duration_since(monotonic_now());
                let wait = left.min(Duration::from_millis(self.config.fetch_max_wait_ms));
                self.fetch_once(wait).await
            };
            // The request timeout bounds a fetch; the poll timeout bounds the lookups.
            match tokio::time::timeout_at(deadline, step).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) if e.is_retriable() => {
                    tracing::debug!(error = %e, "fetch failed; retrying");
                    if e.needs_metadata_refresh() {
                        self.cluster.mark_stale();
                    }
                    let pause = Duration::from_millis(self.config.client.retry_backoff_ms);
                    tokio::time::sleep_until(deadline.min(monotonic_now() + pause)).await;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => {}
            }
            if monotonic_now() >= deadline && self.assigned.values().all(|s| s.buffer.is_empty()) {
                return Ok(Vec::new());
            }
        }
    }

    /// Takes up to `max.poll.records` buffered records, partition by partition, advancing
    /// each partition's position past what it returns.
    fn take_buffered(&mut self) -> Vec<ConsumerRecord> {
        let mut out = Vec::new();
        let limit = self.config.max_poll_records.max(1);
        let order = self.rotated_assignment(false);
        for tp in order {
            let Some(st) = self.assigned.get_mut(&tp) else {
                continue;
            };
            let mut took = false;
            while out.len() < limit {
                let Some(r) = st.buffer.pop_front() else {
                    break;
                };
                st.position = Some(r.offset.saturating_add(1));
                st.position_epoch = r.leader_epoch;
                out.push(r);
                took = true;
            }
            if took && st.buffer.is_empty() {
                // Past the whole fetched batch, including control records after the last
                // record returned.
                if st.position.is_some_and(|p| p < st.buffer_end) {
                    st.position = Some(st.buffer_end);
                    st.position_epoch = st.buffer_end_epoch;
                }
            }
        }
        out
    }

    /// The assigned partitions, starting one further along each call (of fetches, or of
    /// polls: each has its own counter), so no partition is always first (in a fetch's byte
    /// budget) or last (in a poll's record budget).
    fn rotated_assignment(&mut self, for_fetch: bool) -> Vec<TopicPartition> {
        let mut tps = self.assignment();
        if !tps.is_empty() {
            let counter = match for_fetch {
                true => &mut self.fetch_rotation,
                false => &mut self.poll_rotation,
            };
            *counter = counter.wrapping_add(1);
            let start = *counter % tps.len();
            tps.rotate_left(start);
        }
        tps
    }

    /// One round of fetches: a request to every leader that has none in flight (each waiting
    /// up to `wait` for data), then the first answer to arrive, and any others already there.
    /// Cancelled (by the poll's timeout) while waiting, it loses nothing: the fetches stay in
    /// flight.
    async fn fetch_once(&mut self, wait: Duration) -> Result<(), ClientError> {
        if self.cluster.needs_refresh() {
            let topics: Vec<String> = self.assigned.keys().map(|tp| tp.topic.clone()).collect();
            self.cluster.refresh(&topics).await?;
        }
        let limits = FetchLimits {
            min_bytes: self.config.fetch_min_bytes,
            max_bytes: self.config.fetch_max_bytes,
            partition_max_bytes: self.config.max_partition_fetch_bytes,
        };
        for (leader, parts) in self.fetch_plan() {
            self.fetching_from.insert(leader);
            let cluster = self.cluster.clone();
            self.in_flight
                .spawn(fetch_from(cluster, limits, leader, parts, wait));
        }
        if self.in_flight.is_empty() {
            // Nothing to fetch (every leader unknown): look again after a pause.
            self.cluster.mark_stale();
            let pause = Duration::from_millis(self.config.client.retry_backoff_ms);
            tokio::time::sleep(pause.min(wait)).await;
            return Ok(());
        }
        // `join_next` is cancel-safe: a poll timing out here leaves the answer in the set.
        let Some(first) = self.in_flight.join_next().await else {
            return Ok(());
        };
        let mut first_error = None;
        let mut answer = Some(first);
        while let Some(joined) = answer.take() {
            let (leader, parts, result) = match joined {
                Ok(done) => done,
                Err(e) => {
                    // A fetch task panicked: drop (and so abort) every fetch in flight, so no
                    // leader stays marked busy, and fetch again.
                    tracing::warn!(error = %e, "a fetch task failed");
                    self.fetching_from.clear();
                    self.in_flight = tokio::task::JoinSet::new();
                    continue;
                }
            };
            self.fetching_from.remove(&leader);
            let outcome = match result {
                Ok(resp) => self.absorb(&parts, resp),
                Err(e) => Err(e),
            };
            if let Err(e) = outcome {
                first_error.get_or_insert(e);
            }
            answer = self.in_flight.try_join_next();
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The partitions to fetch, grouped by leader: those with a position and nothing
    /// buffered whose leader has no fetch in flight, in an order that rotates between rounds.
    fn fetch_plan(&mut self) -> BTreeMap<i32, FetchParts> {
        let md = self.cluster.metadata();
        let mut plan: BTreeMap<i32, Vec<(TopicPartition, i64, i32)>> = BTreeMap::new();
        for tp in self.rotated_assignment(true) {
            let Some(st) = self.assigned.get(&tp) else {
                continue;
            };
            let Some(position) = st.position.filter(|_| st.buffer.is_empty()) else {
                continue;
            };
            match md.leader_id(&tp) {
                Some(leader) if self.fetching_from.contains(&leader) => {}
                Some(leader) => {
                    let epoch = md.leader_epoch(&tp);
                    plan.entry(leader).or_default().push((tp, position, epoch));
                }
                None => self.cluster.mark_stale(),
            }
        }
        plan
    }

    /// Takes in a fetch response: records into the partition buffers, resets where the
    /// position fell out of range.
    fn absorb(
        &mut self,
        asked: &[(TopicPartition, i64, i32)],
        resp: FetchResponse,
    ) -> Result<(), ClientError> {
        super::error::check_code(resp.error_code, || "fetch".to_string(), None)?;
        let mut result = Ok(());
        for t in resp.responses {
            for p in t.partitions {
                let tp = TopicPartition::new(t.topic.0.as_str(), p.partition_index);
                let Some((_, position, _)) = asked.iter().find(|(a, _, _)| *a == tp) else {
                    continue;
                };
                if let Err(e) = self.absorb_partition(&tp, *position, p.error_code, p.records) {
                    if result.is_ok() {
                        result = Err(e);
                    }
                }
            }
        }
        result
    }

    fn absorb_partition(
        &mut self,
        tp: &TopicPartition,
        asked_at: i64,
        error_code: i16,
        data: Option<Bytes>,
    ) -> Result<(), ClientError> {
        let reset = self.config.auto_offset_reset;
        let Some(st) = self.assigned.get_mut(tp) else {
            return Ok(());
        };
        // A seek while the fetch was out makes its answer moot.
        if st.position != Some(asked_at) || !st.buffer.is_empty() {
            return Ok(());
        }
        match ResponseError::try_from_code(error_code) {
            None => {}
            Some(ResponseError::OffsetOutOfRange) if reset != OffsetReset::None => {
                tracing::debug!(partition = %tp, offset = asked_at, ?reset, "offset out of range; resetting");
                st.position = None;
                st.position_epoch = None;
                st.reset = Some(if reset == OffsetReset::Earliest {
                    OffsetSpec::Earliest
                } else {
                    OffsetSpec::Latest
                });
                return Ok(());
            }
            Some(code) => {
                return Err(ClientError::kafka(
                    code,
                    format!("fetching {tp} at offset {asked_at}"),
                    None,
                ));
            }
        }
        let data = data.unwrap_or_default();
        let decoded = records::decode(&st.topic, tp.partition, &data, asked_at)?;
        st.buffer.extend(decoded.records);
        st.buffer_end = decoded.next_offset;
        st.buffer_end_epoch = decoded.next_epoch;
        if st.buffer.is_empty() && decoded.next_offset > asked_at {
            // Only control records or records before the position: move past them.
            st.position = Some(decoded.next_offset);
            st.position_epoch = decoded.next_epoch;
        }
        if let Some(e) = decoded.next_epoch {
            self.cluster.note_epoch(tp, e);
        }
        Ok(())
    }
}

/// Sends one fetch to a leader and waits for its answer.
async fn fetch_from(
    cluster: Arc<Cluster>,
    limits: FetchLimits,
    leader: i32,
    parts: FetchParts,
    wait: Duration,
) -> (i32, FetchParts, Result<FetchResponse, ClientError>) {
    let result = async {
        let conn = cluster.broker(leader).await?;
        let version = conn.version_for(ApiKey::Fetch)?;
        let req = fetch_request(limits, &parts, wait, version);
        conn.start_at(&req, version).await?.wait().await
    }
    .await;
    (leader, parts, result)
}

/// A fetch request's topics: the partitions grouped under their topic, in first-seen order.
pub fn fetch_topics<'a>(
    parts: impl IntoIterator<Item = (&'a str, FetchPartition)>,
) -> Vec<FetchTopic> {
    let mut topics: Vec<FetchTopic> = Vec::new();
    for (topic, partition) in parts {
        match topics.iter_mut().find(|t| t.topic.0.as_str() == topic) {
            Some(t) => t.partitions.push(partition),
            None => topics.push(
                FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partitions(vec![partition]),
            ),
        }
    }
    topics
}

/// A full (sessionless) fetch of `parts`.
fn fetch_request(
    limits: FetchLimits,
    parts: &[(TopicPartition, i64, i32)],
    wait: Duration,
    version: i16,
) -> FetchRequest {
    let topics = fetch_topics(parts.iter().map(|(tp, offset, epoch)| {
        let partition = FetchPartition::default()
            .with_partition(tp.partition)
            .with_fetch_offset(*offset)
            .with_partition_max_bytes(limits.partition_max_bytes)
            // The leader epoch field exists from v9; it lets the leader fence stale readers.
            .with_current_leader_epoch(if version >= 9 { *epoch } else { -1 });
        (tp.topic.as_str(), partition)
    }));
    FetchRequest::default()
        .with_max_wait_ms(i32::try_from(wait.as_millis()).unwrap_or(i32::MAX))
        .with_min_bytes(limits.min_bytes)
        .with_max_bytes(limits.max_bytes)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(topics)
}
