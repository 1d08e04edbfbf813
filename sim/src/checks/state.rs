//! The state checker, in the manner of TigerBeetle's `state_checker`: after every simulation
//! step the driver hands it what the brokers declared (through runnel's probe) and what the
//! clients were told, in the order it happened, and at every crash the durable image of the
//! host's disk. It asserts, at once:
//!
//! - per broker and partition, within one process: `log_start <= durable_end <= log_end`, and
//!   none of the three moves backwards, except the log end and the durable end to exactly the
//!   offset of a truncation the log declared (never below its log start); the offsets a
//!   truncation cuts are no longer owed to a later recovery;
//! - across a restart or a power loss: the recovered log ends at or above the highest offset
//!   ever declared durable there, its log start has not moved back (only a delete may), it
//!   keeps no batch that is not whole and valid in the image it recovered from, and it rebuilt
//!   every idempotent producer whose batches it holds;
//! - at a power loss: the durable image holds, as valid batches, everything the broker had
//!   declared durable, and every file it had declared durable (a checkpoint, a snapshot)
//!   whole, as declared or as a later version renamed over it;
//! - a write promised durable (acks=all without write caching, or a flush policy that syncs
//!   every message) is acknowledged only once the broker has declared its offset durable;
//! - an offset commit is acknowledged only once the broker has declared durable the
//!   `__consumer_offsets` batch that holds it;
//! - no partition has two owners in one generation of a group, whether as the coordinator
//!   published the generation's assignment or as the members reported receiving it (of one
//!   incarnation of the group: generations count from 1 again after the coordinator deletes
//!   it, as in Kafka).

use super::image::{self, Image};
use super::quorum::QuorumChecker;
use super::replication::{ReplicationChecker, TopicRules};
use super::{Anomaly, Check, Kind};
use crate::history::{Micros, Promise, Tp};
use crate::journal::{Observation, Observed};
use runnel::env::probe::{BatchId, PartitionState};
use runnel::log::manager::TopicPartition;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What the checker knows of one partition on one broker.
#[derive(Debug, Clone, Copy, Default)]
struct Partition {
    /// The process the last declaration came from.
    incarnation: u32,
    /// The last declared offsets of that process.
    last: Option<PartitionState>,
    /// The highest offset ever declared durable here (by any process since the partition was
    /// created): no crash may take back what is below it.
    durable_floor: i64,
    /// The highest log start ever declared.
    log_start_floor: i64,
}

/// What the checker knows of one file a broker declared durable.
#[derive(Debug, Clone, Default)]
struct DeclaredFile {
    /// (CRC-32, length) of the declared contents.
    declared: (u32, usize),
    /// Versions renamed over it since (not yet declared, but whole).
    later: Vec<(u32, usize)>,
}

/// A generation of one incarnation of a group: (group, incarnation, generation).
type GenerationKey = (String, u32, i32);

/// The state checker of one run.
pub struct StateChecker {
    /// The brokers' names, by index.
    hosts: Vec<String>,
    /// Where each broker keeps its logs.
    data_dir: PathBuf,
    partitions: BTreeMap<(usize, String), Partition>,
    files: BTreeMap<(usize, PathBuf), DeclaredFile>,
    /// Per broker, the image its next process recovers from (set at each crash or restart).
    recover_from: BTreeMap<usize, Image>,
    /// Per group, incarnation and generation, each partition's owner (member id) and who
    /// said so.
    generations: BTreeMap<GenerationKey, BTreeMap<Tp, (String, String)>>,
    /// Per group, how many times the coordinator deleted it: a group joined under the id
    /// afterwards is a new incarnation whose generations count from 1 again, as in Kafka.
    group_incarnations: BTreeMap<String, u32>,
    /// The incarnation each member id belongs to: the one in which the coordinator published
    /// an assignment naming it (before any member can receive it).
    member_incarnations: BTreeMap<(String, String), u32>,
    /// The latest write of each commit (group, partition, offset): the broker, the log and
    /// the offset its batch ends before.
    commits_written: BTreeMap<(String, Tp, i64), (usize, String, i64)>,
    /// The metadata quorum's and the applied metadata's invariants.
    quorum: QuorumChecker,
    /// The partitions' replication invariants.
    replication: ReplicationChecker,
    /// What it found; the driver stops the run at the first step that adds to it.
    pub violations: Vec<Anomaly>,
    /// Kinds of anomaly it passes over.
    ignored: Vec<String>,
}

/// The highest offset broker `host` ever declared durable in `dir` (0 if nothing yet).
fn durable_floor(parts: &BTreeMap<(usize, String), Partition>, host: usize, dir: &str) -> i64 {
    parts
        .get(&(host, dir.to_string()))
        .map_or(0, |p| p.durable_floor)
}

/// The partition a directory name (`t0-1`) stands for.
pub(crate) fn tp_of(dir: &str) -> Tp {
    match TopicPartition::parse_dir_name(dir) {
        Some(tp) => Tp {
            topic: tp.topic,
            partition: tp.partition,
        },
        None => Tp {
            topic: dir.to_string(),
            partition: -1,
        },
    }
}

impl StateChecker {
    /// A checker of the hosts `hosts` (with `node.id`s `node_ids`), whose quorum's voters
    /// are `voters`, keeping their data in `data_dir`.
    pub fn new(
        hosts: Vec<String>,
        node_ids: Vec<i32>,
        voters: Vec<i32>,
        data_dir: &Path,
    ) -> StateChecker {
        StateChecker {
            quorum: QuorumChecker::new(hosts.clone(), node_ids.clone(), voters),
            replication: ReplicationChecker::new(hosts.clone(), node_ids),
            hosts,
            data_dir: data_dir.to_path_buf(),
            partitions: BTreeMap::new(),
            files: BTreeMap::new(),
            recover_from: BTreeMap::new(),
            generations: BTreeMap::new(),
            group_incarnations: BTreeMap::new(),
            member_incarnations: BTreeMap::new(),
            commits_written: BTreeMap::new(),
            violations: Vec::new(),
            ignored: Vec::new(),
        }
    }

    /// `member` holds `partitions` in `generation` of `group`, as `source` says: no other
    /// member may hold any of them in that generation.
    ///
    /// Of the same incarnation of the group: Kafka deletes an empty group once its offsets
    /// have expired (`GroupMetadataManager.cleanupGroupMetadata`: Empty with no offsets left,
    /// a tombstone), and a member joining the id afterwards creates a new group whose
    /// generations count from 1 again. That is safe because members are fenced by member id
    /// and generation together, and member ids are never reused: no member of the deleted
    /// group can heartbeat, sync or commit in the new one. What Kafka promises, and what is
    /// checked, is one owner per partition in each generation of one incarnation (seeds
    /// 9200023 and 9201875: an empty group without offsets was deleted at the first expiry
    /// check after the broker restarted, and its next member got generation 1 again).
    pub fn assigned(
        &mut self,
        group: &str,
        generation: i32,
        member: &str,
        partitions: &[Tp],
        source: &str,
        at: Micros,
    ) {
        let current = self.group_incarnations.get(group).copied().unwrap_or(0);
        let incarnation = self
            .member_incarnations
            .get(&(group.to_string(), member.to_string()))
            .copied()
            .unwrap_or(current);
        let owners = self
            .generations
            .entry((group.to_string(), incarnation, generation))
            .or_default();
        let mut clashes = Vec::new();
        for tp in partitions {
            match owners.get(tp) {
                Some((m, said)) if m != member => clashes.push((
                    tp.clone(),
                    format!(
                        "group {group} generation {generation}: {source} gives it to {member}, {said} to {m}"
                    ),
                )),
                Some(_) => {}
                None => {
                    owners.insert(tp.clone(), (member.to_string(), source.to_string()));
                }
            }
        }
        for (tp, detail) in clashes {
            self.violations.push(Anomaly {
                kind: Kind::DoubleAssignment,
                check: Check::State,
                tp,
                detail,
                at,
            });
        }
    }

    /// A group member was told its commit of `offsets` is done: each must be in a batch the
    /// broker had declared durable.
    pub fn commit_acknowledged(&mut self, group: &str, offsets: &[(Tp, i64)], at: Micros) {
        let mut found = Vec::new();
        for (tp, offset) in offsets {
            let Some((host, dir, end)) =
                self.commits_written
                    .get(&(group.to_string(), tp.clone(), *offset))
            else {
                continue;
            };
            let durable = self.partition(*host, dir).durable_floor;
            if durable < *end {
                found.push((
                    tp.clone(),
                    format!(
                        "group {group}'s commit of offset {offset} was acknowledged, but {} had declared {dir} durable only below {durable}, and the commit is in the batch ending before {end}",
                        self.host(*host)
                    ),
                ));
            }
        }
        for (tp, detail) in found {
            self.violations.push(Anomaly {
                kind: Kind::UnsyncedCommit,
                check: Check::State,
                tp,
                detail,
                at,
            });
        }
    }

    /// What the checker knows of `dir` on broker `host` (nothing yet if it is new).
    fn partition(&self, host: usize, dir: &str) -> Partition {
        self.partitions
            .get(&(host, dir.to_string()))
            .copied()
            .unwrap_or_default()
    }

    /// Remembers what broker process `o` just declared for `dir`: its offsets, and, unless the
    /// log only recovered them (whose durable end is not declared yet), its durable end.
    fn remember(&mut self, o: &Observation, dir: &str, state: &PartitionState, durable: bool) {
        let p = self
            .partitions
            .entry((o.host, dir.to_string()))
            .or_default();
        p.incarnation = o.incarnation;
        p.last = Some(*state);
        if durable {
            p.durable_floor = p.durable_floor.max(state.durable_end);
        }
        p.log_start_floor = p.log_start_floor.max(state.log_start);
    }

    fn host(&self, i: usize) -> &str {
        self.hosts.get(i).map_or("?", String::as_str)
    }

    fn fail(&mut self, kind: Kind, check: Check, dir: &str, at: Micros, detail: String) {
        self.violations.push(Anomaly {
            kind,
            check,
            tp: tp_of(dir),
            detail,
            at,
        });
    }

    /// Passes over anomalies of these kinds from here on (their names, as reported).
    pub fn ignore(&mut self, kinds: Vec<String>) {
        self.ignored = kinds;
    }

    /// Drops what it found of the kinds it passes over.
    pub fn drop_ignored(&mut self) {
        if !self.ignored.is_empty() {
            let ignored = &self.ignored;
            self.violations
                .retain(|a| !ignored.contains(&a.kind.to_string()));
        }
    }

    /// The host that leads the metadata quorum, as far as the nodes have said.
    pub fn quorum_leader(&self) -> Option<usize> {
        self.quorum.current_leader()
    }

    /// Takes one observation.
    pub fn observe(&mut self, o: &Observation) {
        let host = o.host;
        match &o.what {
            Observed::Recovered {
                dir,
                state,
                producers,
            } => self.recovered(o, dir, state, producers),
            Observed::State { dir, state } => {
                self.state(o, dir, state);
                self.replication
                    .state(host, o.incarnation, dir, state, o.at);
            }
            Observed::Truncated { dir, offset } => {
                self.truncated(o, dir, *offset);
                self.replication.truncated(host, dir, *offset, o.at);
            }
            Observed::Appended { dir, batches } => {
                self.replication.appended(host, o.incarnation, dir, batches);
            }
            Observed::AcksAllAnswered { dir, batches } => {
                let floor = |h: usize, d: &str| durable_floor(&self.partitions, h, d);
                self.replication
                    .acks_all_answered(host, dir, batches, &floor, o.at);
            }
            Observed::IsrExpanding {
                dir,
                leader_epoch,
                added,
            } => {
                let floor = |h: usize, d: &str| durable_floor(&self.partitions, h, d);
                self.replication
                    .isr_expanding(host, dir, *leader_epoch, added, &floor, o.at);
            }
            Observed::Leading {
                dir,
                leader_epoch,
                epoch_start,
            } => {
                self.replication.leading(
                    host,
                    o.incarnation,
                    dir,
                    *leader_epoch,
                    *epoch_start,
                    o.at,
                );
            }
            Observed::Deleted { dir } => {
                self.replication.deleted(host, dir);
                self.partitions.remove(&(host, dir.clone()));
                let prefix = self.data_dir.join(dir);
                self.files
                    .retain(|(h, p), _| *h != host || !p.starts_with(&prefix));
            }
            Observed::FileDurable { path, crc, len } => {
                self.files.insert(
                    (host, path.clone()),
                    DeclaredFile {
                        declared: (*crc, *len),
                        later: Vec::new(),
                    },
                );
            }
            Observed::Renamed { to, crc, len } => {
                if let Some(f) = self.files.get_mut(&(host, to.clone())) {
                    f.later.push((*crc, *len));
                }
            }
            Observed::Removed { path } => {
                self.files.remove(&(host, path.clone()));
            }
            Observed::OffsetsAppended { dir, end, commits } => {
                for (group, tp, offset) in commits {
                    self.commits_written.insert(
                        (group.clone(), tp.clone(), *offset),
                        (host, dir.clone(), *end),
                    );
                }
            }
            Observed::GroupAssigned {
                group,
                generation,
                members,
            } => {
                let source = format!("the coordinator on {}", self.host(host));
                let current = self.group_incarnations.get(group).copied().unwrap_or(0);
                for (member, tps) in members {
                    self.member_incarnations
                        .insert((group.clone(), member.clone()), current);
                    self.assigned(group, *generation, member, tps, &source, o.at);
                }
            }
            Observed::GroupDeleted { group } => {
                *self.group_incarnations.entry(group.clone()).or_default() += 1;
            }
            Observed::QuorumOpened { .. }
            | Observed::QuorumReady { .. }
            | Observed::MetadataRestored { .. }
            | Observed::MetadataApplied { .. } => {
                self.quorum.observe(o);
                self.violations.append(&mut self.quorum.found);
                match &o.what {
                    Observed::MetadataApplied { offset, state } => {
                        let floor = |h: usize, d: &str| durable_floor(&self.partitions, h, d);
                        self.replication
                            .metadata_applied(*offset, state, &floor, o.at);
                    }
                    Observed::MetadataRestored { offset, state } => {
                        self.replication.metadata_restored(*offset, state);
                    }
                    _ => {}
                }
            }
        }
        self.violations.append(&mut self.replication.found);
    }

    fn recovered(
        &mut self,
        o: &Observation,
        dir: &str,
        state: &PartitionState,
        producers: &[runnel::env::probe::ProducerSummary],
    ) {
        let name = self.host(o.host).to_string();
        let p = self.partition(o.host, dir);
        if state.log_end < p.durable_floor {
            self.fail(
                Kind::LostWrite,
                Check::State,
                dir,
                o.at,
                format!(
                    "{name} recovered the log to offset {}, below offset {} it had declared durable",
                    state.log_end, p.durable_floor
                ),
            );
        }
        if state.log_start < p.log_start_floor {
            self.fail(
                Kind::StateRegression,
                Check::State,
                dir,
                o.at,
                format!(
                    "{name} recovered the log start at {}, back from {} (only a delete may move it back)",
                    state.log_start, p.log_start_floor
                ),
            );
        }
        let mut recovered_batches = Vec::new();
        if let Some(img) = self.recover_from.get(&o.host) {
            let chain = image::chain(img, &self.data_dir.join(dir), state.log_start);
            recovered_batches = chain
                .batches
                .iter()
                .map(|b| BatchId {
                    base_offset: b.base_offset,
                    last_offset: b.last_offset,
                    crc: b.crc,
                    leader_epoch: b.leader_epoch,
                })
                .collect();
            let valid_end = chain.end.unwrap_or(state.log_start);
            if state.log_end > state.log_start && valid_end < state.log_end {
                let detail = format!(
                    "{name} recovered the log to offset {}, but the image it recovered from holds valid batches only to {valid_end} ({})",
                    state.log_end,
                    chain.stopped.as_deref().unwrap_or("no more data")
                );
                self.fail(Kind::TornBatchKept, Check::DurableImage, dir, o.at, detail);
            }
            let restored: BTreeMap<i64, (i16, i32)> = producers
                .iter()
                .map(|s| (s.producer_id, (s.epoch, s.last_seq)))
                .collect();
            let wanted = chain.producers(state.log_start, state.log_end.min(valid_end));
            let wrong: Vec<String> = wanted
                .iter()
                .filter(|(id, want)| restored.get(id) != Some(want))
                .map(|(id, (epoch, seq))| {
                    format!(
                        "producer {id} (epoch {epoch}, last sequence {seq} in the log; rebuilt: {:?})",
                        restored.get(id)
                    )
                })
                .collect();
            if !wrong.is_empty() {
                let detail = format!(
                    "{name} recovered the log without its idempotent producers' state: {}",
                    wrong.join(", ")
                );
                self.fail(
                    Kind::ProducerStateLost,
                    Check::DurableImage,
                    dir,
                    o.at,
                    detail,
                );
            }
        }
        self.remember(o, dir, state, false);
        self.replication
            .recovered(o.host, o.incarnation, dir, state, recovered_batches);
    }

    /// A log declared that it cut its tail to `offset`: the next published offsets may come
    /// back to exactly there, and a crash no longer owes what lay above it.
    fn truncated(&mut self, o: &Observation, dir: &str, offset: i64) {
        let name = self.host(o.host).to_string();
        let p = self
            .partitions
            .entry((o.host, dir.to_string()))
            .or_default();
        let mut wrong = None;
        if let Some(last) = p.last.as_mut().filter(|_| p.incarnation == o.incarnation) {
            if offset < last.log_start || offset > last.log_end {
                wrong = Some(format!(
                    "{name} declared a truncation to {offset}, outside its log {}..{}",
                    last.log_start, last.log_end
                ));
            }
            last.log_end = last.log_end.min(offset);
            last.durable_end = last.durable_end.min(offset);
        }
        p.durable_floor = p.durable_floor.min(offset);
        if let Some(detail) = wrong {
            self.fail(Kind::StateRegression, Check::State, dir, o.at, detail);
        }
    }

    fn state(&mut self, o: &Observation, dir: &str, s: &PartitionState) {
        let name = self.host(o.host).to_string();
        let p = self.partition(o.host, dir);
        let mut wrong = Vec::new();
        if !(s.log_start <= s.durable_end && s.durable_end <= s.log_end) {
            wrong.push("log start <= durable end <= log end does not hold".to_string());
        }
        if s.log_start < p.log_start_floor {
            wrong.push(format!("log start back from {}", p.log_start_floor));
        }
        if let Some(prev) = p.last.filter(|_| p.incarnation == o.incarnation) {
            if s.durable_end < prev.durable_end {
                wrong.push(format!("durable end back from {}", prev.durable_end));
            }
            if s.log_end < prev.log_end {
                wrong.push(format!("log end back from {}", prev.log_end));
            }
        }
        if !wrong.is_empty() {
            let detail = format!(
                "{name} published log start {}, durable end {}, log end {}: {}",
                s.log_start,
                s.durable_end,
                s.log_end,
                wrong.join("; ")
            );
            self.fail(Kind::StateRegression, Check::State, dir, o.at, detail);
        }
        self.remember(o, dir, s, true);
    }

    /// The client topics' replication factors, `min.insync.replicas` and write caching.
    pub fn set_topics(&mut self, topics: BTreeMap<String, TopicRules>) {
        self.replication.set_topics(topics);
    }

    /// A client was told its write is at `offset` of `tp`: `promise` says whether it was
    /// promised a sync and whether it is committed (acks=all, on a replicated topic).
    pub fn acknowledged(&mut self, tp: &Tp, offset: i64, promise: Promise, at: Micros) {
        let dir = tp.to_string();
        if promise.committed {
            // What each replica holds synced (the check applies under the durable default).
            let holders = self
                .partitions
                .iter()
                .filter(|((_, d), _)| *d == dir)
                .map(|((h, _), p)| (*h, p.durable_floor));
            self.replication.acknowledged(tp, offset, holders, at);
            self.violations.append(&mut self.replication.found);
        }
        if !promise.durable {
            return;
        }
        let floor = self
            .partitions
            .iter()
            .filter(|((_, d), _)| *d == dir)
            .map(|(_, p)| p.durable_floor)
            .max();
        if let Some(floor) = floor.filter(|f| *f <= offset) {
            let detail = format!(
                "a write promised durable was acknowledged at offset {offset}, but the broker had declared only offsets below {floor} durable"
            );
            self.fail(Kind::UnsyncedAck, Check::State, &dir, at, detail);
        }
    }

    /// A broker lost power: `durable` is what its disk held synced at that instant. Then
    /// `recover_from` is the image its next process starts from.
    pub fn power_loss(&mut self, host: usize, durable: &Image, at: Micros) {
        let name = self.host(host).to_string();
        let mut found = Vec::new();
        for ((h, dir), p) in &self.partitions {
            let Some(last) = p.last.filter(|_| *h == host) else {
                continue;
            };
            let floor = p.durable_floor;
            if floor <= last.log_start {
                continue;
            }
            let chain = image::chain(durable, &self.data_dir.join(dir), last.log_start);
            let end = chain.end.unwrap_or(-1);
            let first = chain.first_base.unwrap_or(i64::MAX);
            if end < floor || first > last.log_start {
                found.push((
                    Kind::LostWrite,
                    dir.clone(),
                    format!(
                        "{name} had declared offsets {}..{floor} durable; at its power loss the durable image holds valid batches only over {}..{} ({})",
                        last.log_start,
                        chain.first_base.map_or("none".to_string(), |b| b.to_string()),
                        chain.end.map_or("none".to_string(), |e| e.to_string()),
                        chain.stopped.as_deref().unwrap_or("no more data")
                    ),
                ));
            }
        }
        for ((h, path), f) in &self.files {
            if *h != host {
                continue;
            }
            let dir = path
                .parent()
                .and_then(|d| d.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let held = durable.get(path).map(|b| (crc32fast::hash(b), b.len()));
            let fine = held.is_some_and(|h| h == f.declared || f.later.contains(&h));
            if !fine {
                found.push((
                    Kind::DamagedFile,
                    dir,
                    format!(
                        "{name} had declared {} durable ({} bytes, crc {:08x}); at its power loss the durable image holds {}",
                        path.display(),
                        f.declared.1,
                        f.declared.0,
                        match held {
                            None => "no such file".to_string(),
                            Some((crc, len)) => format!("{len} bytes, crc {crc:08x}"),
                        }
                    ),
                ));
            }
        }
        for (kind, dir, detail) in found {
            self.fail(kind, Check::DurableImage, &dir, at, detail);
        }
    }

    /// A broker's process is about to start again from `image` (after a crash with or without
    /// the power).
    pub fn restarting(&mut self, host: usize, image: Image) {
        self.recover_from.insert(host, image);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(seq: u64, incarnation: u32, what: Observed) -> Observation {
        Observation {
            seq,
            at: seq,
            host: 0,
            incarnation,
            what,
        }
    }

    fn state(dir: &str, log_start: i64, durable_end: i64, log_end: i64) -> Observed {
        Observed::State {
            dir: dir.to_string(),
            state: PartitionState {
                log_start,
                log_end,
                durable_end,
                high_watermark: -1,
            },
        }
    }

    fn truncated(dir: &str, offset: i64) -> Observed {
        Observed::Truncated {
            dir: dir.to_string(),
            offset,
        }
    }

    fn checker() -> StateChecker {
        StateChecker::new(vec!["b0".into()], vec![1], vec![1], Path::new("/data"))
    }

    /// A follower's truncation moves its log end and durable end back to exactly the declared
    /// offset: accepted, and a crash afterwards no longer owes the offsets above it.
    #[test]
    fn a_declared_truncation_may_move_the_ends_back_to_its_offset() {
        let mut c = checker();
        c.observe(&obs(1, 0, state("t-0", 0, 10, 12)));
        c.observe(&obs(2, 0, truncated("t-0", 6)));
        c.observe(&obs(3, 0, state("t-0", 0, 6, 6)));
        c.observe(&obs(4, 0, state("t-0", 0, 8, 9)));
        assert!(c.violations.is_empty(), "{:?}", c.violations);
        assert_eq!(c.partition(0, "t-0").durable_floor, 8);
    }

    /// Any other move back is still a regression: below the declared truncation point, or
    /// without a declaration at all.
    #[test]
    fn other_moves_back_are_still_flagged() {
        let mut c = checker();
        c.observe(&obs(1, 0, state("t-0", 0, 10, 12)));
        c.observe(&obs(2, 0, truncated("t-0", 6)));
        c.observe(&obs(3, 0, state("t-0", 0, 5, 5)));
        assert_eq!(c.violations.len(), 1);
        assert_eq!(c.violations[0].kind, Kind::StateRegression);
        let mut c = checker();
        c.observe(&obs(1, 0, state("t-0", 0, 10, 12)));
        c.observe(&obs(2, 0, state("t-0", 0, 10, 11)));
        assert_eq!(c.violations.len(), 1);
        // A truncation below the log start is itself wrong.
        let mut c = checker();
        c.observe(&obs(1, 0, state("t-0", 4, 10, 12)));
        c.observe(&obs(2, 0, truncated("t-0", 3)));
        assert_eq!(c.violations.len(), 1);
    }

    fn published(group: &str, generation: i32, member: &str) -> Observed {
        Observed::GroupAssigned {
            group: group.to_string(),
            generation,
            members: vec![(
                member.to_string(),
                vec![Tp {
                    topic: "t".into(),
                    partition: 0,
                }],
            )],
        }
    }

    /// Seeds 9200023 and 9201875: after a restart, the coordinator deleted an empty group
    /// without offsets (Kafka's expiry) and gave generation 1 of the new group to a new
    /// member id. Not a double assignment; a member of the old group reporting its old
    /// assignment late still counts in the old one, and the new group is held to the rule.
    #[test]
    fn generations_start_over_after_the_group_is_deleted() {
        let tp = Tp {
            topic: "t".into(),
            partition: 0,
        };
        let mut c = checker();
        c.observe(&obs(1, 0, published("g", 1, "old")));
        c.observe(&obs(2, 1, Observed::GroupDeleted { group: "g".into() }));
        c.observe(&obs(3, 1, published("g", 1, "new")));
        c.assigned("g", 1, "old", std::slice::from_ref(&tp), "member-a", 4);
        c.assigned("g", 1, "new", std::slice::from_ref(&tp), "member-b", 5);
        assert!(c.violations.is_empty(), "{:?}", c.violations);
        c.observe(&obs(6, 1, published("g", 1, "other")));
        assert_eq!(c.violations.len(), 1);
        assert_eq!(c.violations[0].kind, Kind::DoubleAssignment);
        // Without a deletion, a generation handed out again is a double assignment.
        let mut c = checker();
        c.observe(&obs(1, 0, published("g", 1, "old")));
        c.observe(&obs(2, 1, published("g", 1, "new")));
        assert_eq!(c.violations.len(), 1);
    }
}
