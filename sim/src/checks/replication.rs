//! The replication invariants of the state checker, asserted at every step from what the
//! brokers declare: each replica's batches (appended, recovered, cut), its high watermark,
//! the leader epochs it leads, and the ISRs of the applied metadata.
//!
//! - one leader per partition and leader epoch, and a broker's leader epochs of a partition
//!   never go back within one process;
//! - a replica's high watermark never goes back, except with a truncation it declared;
//! - replicas agree on every batch below any replica's high watermark: the committed log
//!   (the batches below the high watermarks published so far) is one log;
//! - nothing committed is ever truncated;
//! - a follower joins an ISR only once its synced end has reached the start of the leader's
//!   epoch and everything committed;
//! - an acknowledged acks=all write is on at least `min.insync.replicas` replicas' synced
//!   logs when the client is told.
//!
//! The checks of what is committed hold for topics under the durable default: with write
//! caching, replicas that all lose power may lose committed records, as in Kafka (KIP-966).

use super::{Anomaly, Check, Kind};
use crate::history::{Micros, Tp};
use crate::journal::AppliedState;
use runnel::env::probe::{BatchId, PartitionState};
use std::collections::BTreeMap;

use super::state::tp_of;

/// What the checker must know of a client topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicRules {
    pub replication_factor: i32,
    pub min_insync_replicas: i32,
    pub write_caching: bool,
}

impl TopicRules {
    /// Whether what is committed must survive anything: replicated, under the durable default.
    fn durable(&self) -> bool {
        self.replication_factor > 1 && !self.write_caching
    }
}

/// One replica: a partition's log on one broker, as declared.
#[derive(Debug, Clone, Default)]
struct Replica {
    incarnation: u32,
    /// Its batches by base offset (those it recovered, appended and did not cut since).
    batches: BTreeMap<i64, BatchId>,
    log_start: i64,
    /// Its high watermark (-1: none).
    high_watermark: i64,
    /// Batches below this offset were compared with the committed log.
    checked: i64,
}

/// The committed log of a partition: every batch below a high watermark some replica
/// published, as that replica held it.
#[derive(Debug, Clone, Default)]
struct Committed {
    batches: BTreeMap<i64, BatchId>,
    /// The highest high watermark published, and who published it.
    high_watermark: i64,
    by: String,
}

/// The replication part of the state checker.
#[derive(Debug, Default)]
pub struct ReplicationChecker {
    hosts: Vec<String>,
    node_ids: Vec<i32>,
    topics: BTreeMap<String, TopicRules>,
    replicas: BTreeMap<(usize, String), Replica>,
    committed: BTreeMap<String, Committed>,
    /// (partition directory, leader epoch) → (host, epoch start).
    leaders: BTreeMap<(String, i32), (usize, i64)>,
    /// (host, partition directory) → (process, the last leader epoch it led in).
    led: BTreeMap<(usize, String), (u32, i32)>,
    /// Per partition directory, the topic id and ISR of the latest metadata applied.
    isrs: BTreeMap<String, (u128, Vec<i32>)>,
    applied: i64,
    pub found: Vec<Anomaly>,
}

fn describe(b: &BatchId) -> String {
    format!(
        "{}..={} (epoch {}, crc {:08x})",
        b.base_offset, b.last_offset, b.leader_epoch, b.crc
    )
}

impl ReplicationChecker {
    pub fn new(hosts: Vec<String>, node_ids: Vec<i32>) -> ReplicationChecker {
        ReplicationChecker {
            hosts,
            node_ids,
            applied: -1,
            ..ReplicationChecker::default()
        }
    }

    /// The client topics' rules (topics not named are not checked for what is committed).
    pub fn set_topics(&mut self, topics: BTreeMap<String, TopicRules>) {
        self.topics = topics;
    }

    /// The rules of the partition in `dir`, if it is a client topic.
    pub fn rules(&self, dir: &str) -> Option<TopicRules> {
        self.topics.get(&tp_of(dir).topic).copied()
    }

    fn durable(&self, dir: &str) -> bool {
        self.rules(dir).is_some_and(|r| r.durable())
    }

    fn host(&self, i: usize) -> String {
        self.hosts.get(i).cloned().unwrap_or_else(|| "?".into())
    }

    fn fail(&mut self, kind: Kind, dir: &str, at: Micros, detail: String) {
        self.found.push(Anomaly {
            kind,
            check: Check::State,
            tp: tp_of(dir),
            detail,
            at,
        });
    }

    /// A replica's log opened (a new process): it holds `batches`, as recovered.
    pub fn recovered(
        &mut self,
        host: usize,
        incarnation: u32,
        dir: &str,
        state: &PartitionState,
        batches: impl IntoIterator<Item = BatchId>,
    ) {
        if self.rules(dir).is_none() {
            return;
        }
        let batches = batches
            .into_iter()
            .filter(|b| b.base_offset >= state.log_start && b.last_offset < state.log_end)
            .map(|b| (b.base_offset, b))
            .collect();
        self.replicas.insert(
            (host, dir.to_string()),
            Replica {
                incarnation,
                batches,
                log_start: state.log_start,
                high_watermark: state.high_watermark,
                checked: state.log_start,
            },
        );
    }

    /// A replica appended `batches`.
    pub fn appended(&mut self, host: usize, incarnation: u32, dir: &str, batches: &[BatchId]) {
        if self.rules(dir).is_none() {
            return;
        }
        let r = self.replicas.entry((host, dir.to_string())).or_default();
        r.incarnation = incarnation;
        for b in batches {
            r.batches.insert(b.base_offset, *b);
        }
    }

    /// A replica cut its log to `offset`: nothing committed may go.
    pub fn truncated(&mut self, host: usize, dir: &str, offset: i64, at: Micros) {
        let Some(r) = self.replicas.get_mut(&(host, dir.to_string())) else {
            return;
        };
        let cut = r.batches.split_off(&offset);
        r.high_watermark = r.high_watermark.min(offset);
        r.checked = r.checked.min(offset);
        if !self.durable(dir) {
            return;
        }
        let Some(c) = self.committed.get(dir) else {
            return;
        };
        let lost: Vec<&BatchId> = cut
            .values()
            .filter(|b| c.batches.get(&b.base_offset) == Some(*b))
            .collect();
        if let (Some(first), Some(last)) = (lost.first(), lost.last()) {
            let detail = format!(
                "{} truncated its log to {offset}, cutting {} committed batch(es) from {} to {} (committed up to {} by {})",
                self.host(host),
                lost.len(),
                describe(first),
                describe(last),
                c.high_watermark,
                c.by
            );
            self.fail(Kind::CommittedTruncated, dir, at, detail);
        }
    }

    /// A replica published its offsets.
    pub fn state(
        &mut self,
        host: usize,
        incarnation: u32,
        dir: &str,
        s: &PartitionState,
        at: Micros,
    ) {
        if self.rules(dir).is_none() {
            return;
        }
        let name = self.host(host);
        let durable = self.durable(dir);
        let key = (host, dir.to_string());
        let r = self.replicas.entry(key.clone()).or_default();
        let mut wrong = None;
        if r.incarnation == incarnation
            && s.high_watermark >= 0
            && s.high_watermark < r.high_watermark
            && s.log_start == r.log_start
        {
            wrong = Some(format!(
                "{name} published high watermark {}, back from {} without a truncation",
                s.high_watermark, r.high_watermark
            ));
        }
        r.incarnation = incarnation;
        // Retention, or a log started again elsewhere (a follower far behind its leader).
        r.batches.retain(|_, b| b.last_offset >= s.log_start);
        let _ = r.batches.split_off(&s.log_end);
        r.checked = r.checked.min(s.log_end);
        r.log_start = s.log_start;
        r.high_watermark = s.high_watermark;
        if let Some(detail) = wrong {
            self.fail(Kind::EpochRegression, dir, at, detail);
        }
        let r = &self.replicas[&key];
        if !durable || s.high_watermark <= r.checked {
            return;
        }
        let below: Vec<BatchId> = r
            .batches
            .range(r.checked.max(0)..s.high_watermark)
            .map(|(_, b)| *b)
            .collect();
        let hw = s.high_watermark;
        let c = self.committed.entry(dir.to_string()).or_default();
        let mut diverged = None;
        for b in below {
            // The committed batch covering b's first offset, or else one starting inside b.
            let covering = c
                .batches
                .range(..=b.base_offset)
                .next_back()
                .map(|(_, x)| *x)
                .filter(|x| x.last_offset >= b.base_offset)
                .or_else(|| {
                    c.batches
                        .range(b.base_offset..=b.last_offset)
                        .next()
                        .map(|(_, x)| *x)
                });
            match covering {
                Some(x) if x != b => {
                    diverged.get_or_insert((b, x));
                }
                Some(_) => {}
                None => {
                    c.batches.insert(b.base_offset, b);
                }
            }
        }
        if hw > c.high_watermark {
            c.high_watermark = hw;
            c.by = name.clone();
        }
        if let Some(r) = self.replicas.get_mut(&key) {
            r.checked = hw;
        }
        if let Some((b, x)) = diverged {
            let detail = format!(
                "{name} holds batch {} below its high watermark {hw}, where the committed log holds {}",
                describe(&b),
                describe(&x)
            );
            self.fail(Kind::ReplicasDiverge, dir, at, detail);
        }
    }

    /// A replica's log was deleted.
    pub fn deleted(&mut self, host: usize, dir: &str) {
        self.replicas.remove(&(host, dir.to_string()));
    }

    /// A broker leads the partition in `dir` in `epoch` from `epoch_start`.
    pub fn leading(
        &mut self,
        host: usize,
        incarnation: u32,
        dir: &str,
        epoch: i32,
        epoch_start: i64,
        at: Micros,
    ) {
        let name = self.host(host);
        match self.leaders.get(&(dir.to_string(), epoch)).copied() {
            Some((other, _)) if other != host => {
                let detail = format!(
                    "{name} leads in leader epoch {epoch}, which {} led already",
                    self.host(other)
                );
                self.fail(Kind::TwoLeaders, dir, at, detail);
            }
            Some(_) => {}
            None => {
                self.leaders
                    .insert((dir.to_string(), epoch), (host, epoch_start));
            }
        }
        let key = (host, dir.to_string());
        if let Some((inc, last)) = self.led.get(&key).copied()
            && inc == incarnation
            && epoch < last
        {
            let detail = format!("{name} leads in leader epoch {epoch} after leading in {last}");
            self.fail(Kind::EpochRegression, dir, at, detail);
        }
        self.led.insert(key, (incarnation, epoch));
    }

    /// The leader on `host` asks to add `added` to the ISR of the partition in `dir` in
    /// leader `epoch`: each must have synced its log (`durable_floor(host, dir)`) to the
    /// epoch's start and to everything committed, now, as the leader decides.
    pub fn isr_expanding(
        &mut self,
        host: usize,
        dir: &str,
        epoch: i32,
        added: &[i32],
        durable_floor: &dyn Fn(usize, &str) -> i64,
        at: Micros,
    ) {
        if !self.durable(dir) {
            return;
        }
        let start = self
            .leaders
            .get(&(dir.to_string(), epoch))
            .filter(|(h, _)| *h == host)
            .map(|(_, s)| *s);
        // Once a later leader epoch has begun, what it committed is nothing this leader can
        // know, and the controller fences this request (FENCED_LEADER_EPOCH), so a resend of
        // an expansion decided in its own epoch is held only to that epoch's start (seed
        // 39550: the next leader, alone in the ISR, committed its tail before the old leader
        // resent). Joins that happen are checked again in `metadata_applied`.
        let key = dir.to_string();
        let superseded = self
            .leaders
            .range((key.clone(), epoch.saturating_add(1))..=(key, i32::MAX))
            .next()
            .is_some();
        let committed = match superseded {
            true => 0,
            false => self.committed.get(dir).map_or(0, |c| c.high_watermark),
        };
        for joined in added {
            let Some(follower) = self.node_ids.iter().position(|id| id == joined) else {
                continue;
            };
            let end = durable_floor(follower, dir);
            let short_of_start = start.filter(|s| end < *s);
            if short_of_start.is_some() || end < committed {
                let detail = format!(
                    "{} asked to add {} to the ISR in leader epoch {epoch} with its log synced to {end}, short of {}",
                    self.host(host),
                    self.host(follower),
                    match short_of_start {
                        Some(s) => format!("the epoch's start {s}"),
                        None => format!("the committed offset {committed}"),
                    }
                );
                self.fail(Kind::EarlyIsrJoin, dir, at, detail);
            }
        }
    }

    /// The metadata entry at `offset` was applied (by some node; each entry is checked once):
    /// every follower it adds to an ISR must have reached the start of the leader's epoch and
    /// everything committed, by its synced end (`durable_floor(host, dir)`).
    pub fn metadata_applied(
        &mut self,
        offset: i64,
        state: &AppliedState,
        durable_floor: &dyn Fn(usize, &str) -> i64,
        at: Micros,
    ) {
        if offset <= self.applied {
            return;
        }
        self.applied = offset;
        let mut found = Vec::new();
        for (t, n, p) in state.0.partitions() {
            let dir = format!("{}-{n}", t.name);
            let id = t.id.as_u128();
            let before = self.isrs.insert(dir.clone(), (id, p.isr.clone()));
            let Some((_, old)) = before.filter(|(was, _)| *was == id) else {
                continue;
            };
            if !self.durable(&dir) {
                continue;
            }
            let start = self
                .leaders
                .get(&(dir.clone(), p.leader_epoch))
                .map(|(_, s)| *s);
            let committed = self.committed.get(&dir).map_or(0, |c| c.high_watermark);
            for joined in p.isr.iter().filter(|r| !old.contains(r)) {
                let Some(host) = self.node_ids.iter().position(|id| id == joined) else {
                    continue;
                };
                let end = durable_floor(host, &dir);
                let short_of_start = start.filter(|s| end < *s);
                if short_of_start.is_some() || end < committed {
                    found.push((
                        dir.clone(),
                        format!(
                            "{} joined the ISR in leader epoch {} at metadata offset {offset} with its log synced to {end}, short of {}",
                            self.host(host),
                            p.leader_epoch,
                            match short_of_start {
                                Some(s) => format!("the epoch's start {s}"),
                                None => format!("the committed offset {committed}"),
                            }
                        ),
                    ));
                }
            }
        }
        for (dir, detail) in found {
            self.fail(Kind::EarlyIsrJoin, &dir, at, detail);
        }
    }

    /// A metadata snapshot ending at `offset` was restored: its ISRs are the latest known.
    pub fn metadata_restored(&mut self, offset: i64, state: &AppliedState) {
        if offset <= self.applied {
            return;
        }
        self.applied = offset - 1;
        for (t, n, p) in state.0.partitions() {
            self.isrs
                .insert(format!("{}-{n}", t.name), (t.id.as_u128(), p.isr.clone()));
        }
    }

    /// The leader on `host` answers an acks=all produce of `batches` as written: each must be
    /// on at least `min.insync.replicas` replicas' synced logs (`durable_floor(host, dir)`),
    /// that very batch (its CRC and leader epoch) at its offsets. The client-side check
    /// ([`ReplicationChecker::acknowledged`]) counts offsets only; this one sees a leader that
    /// answers for batches its replicas replaced (seed 80275: a broker that went on leading an
    /// old epoch answered from the high watermark it learnt as a follower of the new one).
    pub fn acks_all_answered(
        &mut self,
        host: usize,
        dir: &str,
        batches: &[BatchId],
        durable_floor: &dyn Fn(usize, &str) -> i64,
        at: Micros,
    ) {
        let Some(rules) = self.rules(dir).filter(|r| r.durable()) else {
            return;
        };
        let need = rules.min_insync_replicas.clamp(1, rules.replication_factor);
        let mut found = Vec::new();
        for b in batches {
            let holding: Vec<String> = self
                .replicas
                .iter()
                .filter(|((h, d), r)| {
                    d == dir
                        && r.batches.get(&b.base_offset) == Some(b)
                        && durable_floor(*h, d) > b.last_offset
                })
                .map(|((h, _), _)| self.host(*h))
                .collect();
            if (holding.len() as i32) < need {
                found.push(format!(
                    "{} answered an acks=all produce of the batch at offsets {}..={} (leader epoch {}, crc {:08x}) while only {} replica(s) held that batch in their synced logs ({}), below min.insync.replicas {need}",
                    self.host(host),
                    b.base_offset,
                    b.last_offset,
                    b.leader_epoch,
                    b.crc,
                    holding.len(),
                    holding.join(", ")
                ));
            }
        }
        for detail in found {
            self.fail(Kind::UnderReplicatedAck, dir, at, detail);
        }
    }

    /// A client was told its acks=all write to `tp` is at `offset`: it must be on at least
    /// `min.insync.replicas` replicas, counted by `holds(host, dir)`, the offset each replica
    /// holds below (its synced end).
    pub fn acknowledged(
        &mut self,
        tp: &Tp,
        offset: i64,
        holders: impl Iterator<Item = (usize, i64)>,
        at: Micros,
    ) {
        let dir = tp.to_string();
        // Under the durable default only: with write caching a follower may lose its copy
        // to a power loss between the leader's answer and the client's receipt of it, which
        // Kafka allows.
        let Some(rules) = self.rules(&dir).filter(|r| r.durable()) else {
            return;
        };
        let need = rules.min_insync_replicas.clamp(1, rules.replication_factor);
        let holding: Vec<String> = holders
            .filter(|(_, end)| *end > offset)
            .map(|(h, _)| self.host(h))
            .collect();
        if (holding.len() as i32) < need {
            let detail = format!(
                "an acks=all write was acknowledged at offset {offset} while only {} replica(s) held it in their synced logs ({}), below min.insync.replicas {need}",
                holding.len(),
                holding.join(", ")
            );
            self.fail(Kind::UnderReplicatedAck, &dir, at, detail);
        }
    }
}
