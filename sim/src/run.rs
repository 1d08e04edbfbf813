//! One simulated run: a broker host and client hosts on turmoil, the workload, the nemesis
//! applying the seed's faults, the final read, and the checker's verdict.
//!
//! Timeline (simulated): the broker starts; a setup client creates the topics; producers and
//! consumers run while the nemesis applies faults until the fault phase ends; then everything
//! is healed and the workload runs fault-free for [`CALM`]; producers stop and wait for their
//! outstanding sends; consumers read every partition to its end. If, after the heal, no client
//! operation succeeds for [`LIVENESS_BOUND`] before everything is done (or it is not done
//! within [`RUN_CAP`]), the run fails as a liveness violation.

use crate::checks::replication::TopicRules;
use crate::checks::state::StateChecker;
use crate::checks::{self, Anomaly, Verdict};
use crate::cluster::{self, Broker, DATA_DIR};
use crate::config::{Fault, ProducerSpec, SimConfig};
use crate::env::{DiskFaults, Writeback, epoch};
use crate::history::{Event, History, Micros};
use crate::journal::JournalRef;
use crate::nemesis::Nemesis;
use crate::workload::{self, effective};
use runnel::env::probe::PlantedBugs;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Fault-free workload after the heal, before producers stop.
pub const CALM: Duration = Duration::from_secs(3);
/// After the heal, until the run is done (every send answered, every partition read to its
/// end), some client operation must succeed at least this often: writes and reads go on
/// succeeding once faults end. (A bound on progress, not on the whole run: a consumer that
/// fetches 200 bytes at a time takes long to read a big log, and that is not a failure.)
pub const LIVENESS_BOUND: Duration = Duration::from_secs(30);
/// After the heal, the run must be done within this long however steady its progress.
pub const RUN_CAP: Duration = Duration::from_secs(600);

/// A bug planted on purpose, to show the checker catches it. Each may steer what the seed
/// draws toward the faults and workload that expose it ([`steer`]); the run stays a pure
/// function of the seed and the flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlantedBug {
    /// fsync of a topic's segment reports success but syncs nothing.
    LyingFsync,
    /// A directory fsync (after a create or a rename) reports success but does nothing.
    LyingDirSync,
    /// acks=all is answered before its sync completes.
    EarlyAck,
    /// A checkpoint is renamed into place before its contents are synced.
    RenameBeforeSync,
    /// The idempotent producers' state is not rebuilt when a log is opened.
    ForgetProducerState,
    /// Recovery keeps a batch whose CRC fails.
    KeepTornBatch,
    /// The group coordinator answers an offset commit before it is durable.
    CommitBeforeSync,
    /// The quorum-state (epoch, vote) is not fsynced before the vote goes out.
    VoteNotSynced,
    /// A quorum follower told its log diverges truncates to its high watermark instead of by
    /// epoch.
    RaftTruncateToHw,
    /// The controller elects a partition leader outside the ISR.
    ElectOutsideIsr,
    /// A metadata snapshot holds the state from before the last entries applied.
    StaleSnapshot,
    /// A partition leader's high watermark ignores its followers.
    HwIgnoresFollowers,
    /// acks=all is answered after the leader's own write, before the ISR has it.
    AckBeforeIsr,
    /// A partition follower truncates to its high watermark instead of by epoch.
    ReplicaTruncateToHw,
    /// A follower joins the ISR below the start of the leader's epoch.
    IsrJoinWithoutEpochStart,
    /// The high watermark counts followers' unsynced ends under the durable default.
    HwFromUnsyncedOffset,
    /// The leader ignores a follower's synced end and counts its fetch offset.
    SyncedEndIgnored,
    /// A partition's only replica makes its log end the high watermark, synced or not.
    Rf1HwFromLogEnd,
    /// A broker follows a partition before it resigns the leadership the metadata ended, and
    /// answers acks=all from the log's high watermark.
    FollowBeforeResign,
    /// The group coordinator serves whatever its controller session lease says.
    LeaseIgnored,
    /// An ISR change with no answer is taken as refused, though it may be committed.
    UnknownIsrAnswerAsRefused,
}

impl PlantedBug {
    /// The name `--planted-bug` takes.
    pub fn name(self) -> &'static str {
        match self {
            PlantedBug::LyingFsync => "lying-fsync",
            PlantedBug::LyingDirSync => "lying-dir-sync",
            PlantedBug::EarlyAck => "early-ack",
            PlantedBug::RenameBeforeSync => "rename-before-sync",
            PlantedBug::ForgetProducerState => "forget-producer-state",
            PlantedBug::KeepTornBatch => "keep-torn-batch",
            PlantedBug::CommitBeforeSync => "commit-before-sync",
            PlantedBug::VoteNotSynced => "vote-not-synced",
            PlantedBug::RaftTruncateToHw => "raft-truncate-to-hw",
            PlantedBug::ElectOutsideIsr => "elect-outside-isr",
            PlantedBug::StaleSnapshot => "stale-snapshot",
            PlantedBug::HwIgnoresFollowers => "hw-ignores-followers",
            PlantedBug::AckBeforeIsr => "ack-before-isr",
            PlantedBug::ReplicaTruncateToHw => "replica-truncate-to-hw",
            PlantedBug::IsrJoinWithoutEpochStart => "isr-join-without-epoch-start",
            PlantedBug::HwFromUnsyncedOffset => "hw-from-unsynced-offset",
            PlantedBug::SyncedEndIgnored => "synced-end-ignored",
            PlantedBug::Rf1HwFromLogEnd => "rf1-hw-from-log-end",
            PlantedBug::FollowBeforeResign => "follow-before-resign",
            PlantedBug::LeaseIgnored => "lease-ignored",
            PlantedBug::UnknownIsrAnswerAsRefused => "unknown-isr-answer-as-refused",
        }
    }

    /// A bug of one node's storage (its logs, checkpoints, group offsets), rather than of the
    /// quorum or the controller: steered onto a one-node cluster.
    pub fn is_storage(self) -> bool {
        !matches!(
            self,
            PlantedBug::VoteNotSynced
                | PlantedBug::RaftTruncateToHw
                | PlantedBug::ElectOutsideIsr
                | PlantedBug::StaleSnapshot
                | PlantedBug::HwIgnoresFollowers
                | PlantedBug::AckBeforeIsr
                | PlantedBug::ReplicaTruncateToHw
                | PlantedBug::IsrJoinWithoutEpochStart
                | PlantedBug::HwFromUnsyncedOffset
                | PlantedBug::SyncedEndIgnored
                | PlantedBug::FollowBeforeResign
                | PlantedBug::LeaseIgnored
                | PlantedBug::UnknownIsrAnswerAsRefused
        )
    }

    pub const ALL: [PlantedBug; 21] = [
        PlantedBug::LyingFsync,
        PlantedBug::LyingDirSync,
        PlantedBug::EarlyAck,
        PlantedBug::RenameBeforeSync,
        PlantedBug::ForgetProducerState,
        PlantedBug::KeepTornBatch,
        PlantedBug::CommitBeforeSync,
        PlantedBug::VoteNotSynced,
        PlantedBug::RaftTruncateToHw,
        PlantedBug::ElectOutsideIsr,
        PlantedBug::StaleSnapshot,
        PlantedBug::HwIgnoresFollowers,
        PlantedBug::AckBeforeIsr,
        PlantedBug::ReplicaTruncateToHw,
        PlantedBug::IsrJoinWithoutEpochStart,
        PlantedBug::HwFromUnsyncedOffset,
        PlantedBug::SyncedEndIgnored,
        PlantedBug::Rf1HwFromLogEnd,
        PlantedBug::FollowBeforeResign,
        PlantedBug::LeaseIgnored,
        PlantedBug::UnknownIsrAnswerAsRefused,
    ];
}

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub planted_bug: Option<PlantedBug>,
    /// Steer as for `planted_bug` without planting it.
    pub steer_only: bool,
    /// Anomaly kinds to pass over (`metadata-invariant`...): the run goes on past them, to
    /// show what else a bug breaks.
    pub ignore: Vec<String>,
    /// Print the whole event trace.
    pub verbose: bool,
    /// Print nothing but failures (for ranges).
    pub quiet: bool,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    Pass,
    /// The checker found anomalies the system's promises forbid.
    Safety(Vec<Anomaly>),
    /// The system did not make progress after the faults ended.
    Liveness(String),
    /// Simulated code panicked.
    Panic(String),
}

impl Outcome {
    /// The process exit code for this outcome.
    pub fn exit_code(&self) -> u8 {
        match self {
            Outcome::Pass => 0,
            Outcome::Safety(_) => 2,
            Outcome::Liveness(_) => 3,
            Outcome::Panic(_) => 4,
        }
    }

    /// One line saying what happened.
    pub fn summary(&self) -> String {
        match self {
            Outcome::Pass => "pass".into(),
            Outcome::Safety(v) => format!(
                "safety violation: {}",
                v.iter()
                    .map(|a| a.kind.to_string())
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Outcome::Liveness(why) => format!("liveness violation: {why}"),
            Outcome::Panic(why) => format!("panic: {why}"),
        }
    }
}

/// `writeln!` into a report string (writing to a `String` cannot fail).
macro_rules! outln {
    ($out:expr, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($out, $($arg)*);
    }};
}

/// What a run produced.
pub struct RunResult {
    pub seed: u64,
    pub outcome: Outcome,
    pub trace_hash: u64,
    pub history: History,
    pub verdict: Verdict,
    /// Simulated time the run took.
    pub simulated: Duration,
    /// Where the state checker stopped the run (step, simulated time), if it did.
    pub stopped: Option<(u64, Micros)>,
    /// What to print for this run: the verdict, or the failure report (empty for a pass
    /// in quiet mode).
    pub report: String,
}

/// One seed's result in a sweep: what [`RunResult`] says, without the history.
#[derive(Debug, Clone)]
pub struct SeedResult {
    pub seed: u64,
    pub outcome: Outcome,
    pub trace_hash: u64,
    pub simulated: Duration,
    pub report: String,
    /// With the determinism check: the second run's trace hash, when it differed.
    pub second_hash: Option<u64>,
}

impl SeedResult {
    /// The exit code: 5 for two different traces from one seed, else the outcome's.
    pub fn exit_code(&self) -> u8 {
        match self.second_hash {
            Some(_) => 5,
            None => self.outcome.exit_code(),
        }
    }

    /// One line saying what happened.
    pub fn summary(&self) -> String {
        match self.second_hash {
            Some(h) => format!(
                "nondeterminism: trace hash {:016x} then {h:016x} ({} the first time)",
                self.trace_hash,
                self.outcome.summary()
            ),
            None => self.outcome.summary(),
        }
    }
}

/// Runs seeds on `jobs` threads (each seed is its own simulation, so they are independent)
/// and hands each result to `each` in seed order. With `check_determinism`, each seed runs
/// twice and a different second trace hash is recorded.
pub fn run_seeds(
    seeds: &[u64],
    opts: &RunOptions,
    jobs: usize,
    check_determinism: bool,
    mut each: impl FnMut(SeedResult),
) {
    use std::sync::atomic::AtomicUsize;
    use std::sync::mpsc;
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<(usize, SeedResult)>();
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1).min(seeds.len().max(1)) {
            let tx = tx.clone();
            let next = &next;
            scope.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&seed) = seeds.get(i) else { break };
                    let r = run_seed(seed, opts);
                    let mut second_hash = None;
                    if check_determinism {
                        let again = run_seed(
                            seed,
                            &RunOptions {
                                quiet: true,
                                verbose: false,
                                ..opts.clone()
                            },
                        );
                        if again.trace_hash != r.trace_hash {
                            second_hash = Some(again.trace_hash);
                        }
                    }
                    let result = SeedResult {
                        seed,
                        outcome: r.outcome,
                        trace_hash: r.trace_hash,
                        simulated: r.simulated,
                        report: r.report,
                        second_hash,
                    };
                    if tx.send((i, result)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        // Hand results over in seed order, holding back those that finish early.
        let mut pending = BTreeMap::new();
        let mut want = 0;
        for (i, r) in rx {
            pending.insert(i, r);
            while let Some(r) = pending.remove(&want) {
                each(r);
                want += 1;
            }
        }
    });
}

/// Shrinks the seed's cluster to one combined node (`broker-1`), dropping the faults of the
/// hosts that are gone: a storage bug is exposed where every partition, and the group
/// offsets, live on the node whose power the steering cuts.
fn one_node(cfg: &mut SimConfig) {
    cfg.nodes.truncate(1);
    cfg.nodes[0].broker = true;
    cfg.nodes[0].controller = true;
    cfg.elect_topic.replication_factor = 1;
    for t in &mut cfg.topics {
        t.replication_factor = 1;
        t.configs.retain(|(k, _)| k != "min.insync.replicas");
    }
    let mut known: Vec<String> = cfg.node_names();
    known.extend(cfg.producers.iter().map(|p| p.name.clone()));
    known.extend(cfg.consumers.iter().map(|c| c.name.clone()));
    known.extend(cfg.groups.iter().flat_map(|g| g.members.iter().cloned()));
    let ok = |h: &String| known.contains(h);
    cfg.faults.retain(|(_, f)| match f {
        Fault::Partition { a, b }
        | Fault::Repair { a, b }
        | Fault::Hold { a, b }
        | Fault::Release { a, b }
        | Fault::Cut { from: a, to: b }
        | Fault::Restore { from: a, to: b } => ok(a) && ok(b),
        Fault::Restart { host }
        | Fault::PowerLoss { host }
        | Fault::Stop { host }
        | Fault::Start { host }
        | Fault::Pause { host }
        | Fault::Resume { host }
        | Fault::IoErrors { host, .. }
        | Fault::DiskFull { host, .. }
        | Fault::CrashAt { host, .. } => ok(host),
        // One node is always its own quorum's leader, and has no one to be cut off from.
        Fault::IsolateLeader | Fault::Rejoin { .. } => false,
        Fault::Slow { .. } | Fault::KillLeader { .. } => true,
    });
}

/// Producers that keep several batches in flight all the time, so a failover always finds
/// records written but not yet committed, or committed but not yet known so by followers.
fn busy_producers(cfg: &mut SimConfig) {
    for p in &mut cfg.producers {
        p.pace = p.pace.min(Duration::from_millis(1));
        p.max_in_flight = p.max_in_flight.max(5);
        p.batch_records = p.batch_records.max(4);
        p.linger_ms = p.linger_ms.min(5);
    }
}

/// No faults, and a fault phase long enough for the workload to write for a while once the
/// topics exist, whatever the seed drew.
fn no_faults(cfg: &mut SimConfig) {
    cfg.faults.clear();
    cfg.fault_phase = cfg.fault_phase.max(Duration::from_secs(10));
}

/// Every client topic on three replicas (or as many as there are brokers), with
/// `min.insync.replicas` if given, every producer on acks=all, under the durable default, and
/// broker sessions short enough that faults move leaders within the fault phase.
fn replicated(cfg: &mut SimConfig, brokers: &[String], min_insync: Option<i32>) {
    cfg.broker_overrides
        .retain(|o| !o.starts_with("write.caching="));
    cfg.broker_overrides.push("write.caching=false".into());
    let replicas = i32::try_from(brokers.len()).unwrap_or(1).min(3);
    for t in &mut cfg.topics {
        t.replication_factor = replicas;
        t.configs.retain(|(k, _)| k != "write.caching");
        if let Some(m) = min_insync {
            t.configs.retain(|(k, _)| k != "min.insync.replicas");
            t.configs
                .push(("min.insync.replicas".into(), m.min(replicas).to_string()));
        }
    }
    for p in &mut cfg.producers {
        p.acks = -1;
    }
    set_override(cfg, "broker.session.timeout.ms", "1500");
    set_override(cfg, "broker.heartbeat.interval.ms", "375");
}

/// A group (the seed's, or one of two members) whose members commit after every poll.
fn group_committing_often(cfg: &mut SimConfig) {
    if cfg.groups.is_empty() {
        cfg.groups.push(crate::config::GroupSpec {
            name: "group-0".into(),
            members: vec!["group-0-member-0".into(), "group-0-member-1".into()],
            assignor: "cooperative-sticky".into(),
            session_timeout_ms: 3_000,
            commit_every: 1,
            churn: false,
        });
        cfg.broker_overrides.extend([
            "group.initial.rebalance.delay.ms=0".to_string(),
            "group.min.session.timeout.ms=1000".to_string(),
            "offsets.topic.num.partitions=1".to_string(),
        ]);
    }
    for g in &mut cfg.groups {
        g.commit_every = 1;
    }
}

/// Makes the seed's cluster run its controllers apart from its brokers: the brokers keep their
/// names and ids but lose the controller role, and three controller-only nodes are added if
/// none run apart already.
fn separate_controllers(cfg: &mut SimConfig) {
    if cfg.nodes.iter().any(|n| n.controller && !n.broker) {
        return;
    }
    for n in &mut cfg.nodes {
        n.controller = false;
    }
    for i in 1..=3 {
        cfg.nodes.push(crate::config::NodeSpec {
            name: format!("controller-{i}"),
            id: 100 + i,
            broker: false,
            controller: true,
        });
    }
}

/// The names of the nodes that `role` picks (`|n| n.broker`, say), in node order.
fn names_of(cfg: &SimConfig, role: impl Fn(&crate::config::NodeSpec) -> bool) -> Vec<String> {
    cfg.nodes
        .iter()
        .filter(|n| role(n))
        .map(|n| n.name.clone())
        .collect()
}

/// Sets broker setting `key` to `value` in place of the seed's.
fn set_override(cfg: &mut SimConfig, key: &str, value: &str) {
    let prefix = format!("{key}=");
    cfg.broker_overrides.retain(|o| !o.starts_with(&prefix));
    cfg.broker_overrides.push(format!("{key}={value}"));
}

/// Points the seed's choices at what exposes a planted bug: the faults that reveal it and the
/// settings under which the broker relies on the broken step.
pub fn steer(cfg: &mut SimConfig, bug: PlantedBug) {
    let phase = cfg.fault_phase;
    if bug.is_storage() {
        one_node(cfg);
    }
    let brokers: Vec<String> = names_of(cfg, |n| n.broker);
    let power_losses = |cfg: &mut SimConfig, n: u32| {
        for k in 1..=n {
            let at = phase * k / (n + 1);
            for host in &brokers {
                cfg.faults
                    .push((at, Fault::PowerLoss { host: host.clone() }));
            }
        }
    };
    // Under the durable default the broker declares (and relies on) its syncs all the time.
    let durable_default = |cfg: &mut SimConfig| {
        cfg.broker_overrides
            .retain(|o| !o.starts_with("write.caching="));
        cfg.broker_overrides.push("write.caching=false".into());
        for t in &mut cfg.topics {
            t.configs.retain(|(k, _)| k != "write.caching");
        }
    };
    match bug {
        PlantedBug::LyingFsync | PlantedBug::LyingDirSync => {
            durable_default(cfg);
            // No writeback to make the lie come true by chance.
            cfg.writeback = Writeback {
                dirty_writes: None,
                sync_per_million: 0,
            };
            power_losses(cfg, 2);
        }
        PlantedBug::EarlyAck | PlantedBug::Rf1HwFromLogEnd => {
            // One broker (a storage bug's steering), acks=all under the durable default.
            durable_default(cfg);
            for p in &mut cfg.producers {
                p.acks = -1;
            }
            // Slower fsyncs: the early answer then reaches the client before the sync is done.
            cfg.fsync_latency = Duration::from_millis(2)..Duration::from_millis(10);
        }
        PlantedBug::RenameBeforeSync => {
            cfg.broker_overrides
                .retain(|o| !o.starts_with("log.flush.offset.checkpoint.interval.ms="));
            cfg.broker_overrides
                .push("log.flush.offset.checkpoint.interval.ms=100".into());
            power_losses(cfg, 3);
        }
        PlantedBug::ForgetProducerState => {
            if let Some(p) = cfg.producers.first_mut() {
                p.idempotent = true;
                p.acks = -1;
            }
            power_losses(cfg, 2);
            for host in &brokers {
                cfg.faults
                    .push((phase / 2, Fault::Restart { host: host.clone() }));
            }
        }
        PlantedBug::CommitBeforeSync => {
            durable_default(cfg);
            // A group whose members commit after every poll, and slow fsyncs, so an answer
            // given before the sync reaches the member before any sync could.
            group_committing_often(cfg);
            cfg.fsync_latency = Duration::from_millis(2)..Duration::from_millis(10);
            power_losses(cfg, 2);
        }
        PlantedBug::VoteNotSynced => {
            // Power losses of voters after elections, with no writeback to save the
            // quorum-state by chance.
            cfg.writeback = Writeback {
                dirty_writes: None,
                sync_per_million: 0,
            };
            let voters: Vec<String> = names_of(cfg, |n| n.controller);
            for (k, host) in voters.iter().enumerate() {
                let at = phase * (k as u32 + 1) / (voters.len() as u32 + 1);
                cfg.faults
                    .push((at, Fault::PowerLoss { host: host.clone() }));
            }
            cfg.faults
                .push((phase / 3, Fault::KillLeader { power: true }));
        }
        PlantedBug::RaftTruncateToHw => {
            // Leaders cut off long enough to fence brokers (and so append what the majority
            // never sees), then restarted (their high watermark starts again from zero) and
            // reconnected: their first fetch is told their log diverges.
            set_override(cfg, "broker.session.timeout.ms", "1500");
            set_override(cfg, "broker.heartbeat.interval.ms", "375");
            cfg.fault_phase = Duration::from_secs(24);
            cfg.faults.clear();
            for k in 0..5u64 {
                let at = Duration::from_millis(1_500 + k * 4_500);
                cfg.faults.push((at, Fault::IsolateLeader));
                cfg.faults.push((
                    at + Duration::from_millis(3_500),
                    Fault::Rejoin { restart: true },
                ));
            }
        }
        PlantedBug::HwIgnoresFollowers | PlantedBug::ReplicaTruncateToHw => {
            // Every topic on three replicas, acks=all under the durable default, and brokers
            // cut off from the other servers (not from clients) one after another. With
            // `hw-ignores-followers`, a cut-off leader keeps acknowledging alone until it is
            // fenced, a follower is elected in its place, and when it comes back it truncates
            // what it acknowledged. With `replica-truncate-to-hw`, the followers that move to
            // the new leader cut their logs to their high watermarks, which lag the old
            // leader's: committed batches go.
            replicated(cfg, &brokers, None);
            busy_producers(cfg);
            cfg.fault_phase = Duration::from_secs(25);
            cfg.faults.clear();
            let servers = cfg.node_names();
            for (k, host) in brokers.iter().cycle().take(5).enumerate() {
                let at = Duration::from_millis(2_000 + k as u64 * 4_500);
                for other in servers.iter().filter(|s| *s != host) {
                    cfg.faults.push((
                        at,
                        Fault::Partition {
                            a: host.clone(),
                            b: other.clone(),
                        },
                    ));
                    cfg.faults.push((
                        at + Duration::from_millis(3_000),
                        Fault::Repair {
                            a: host.clone(),
                            b: other.clone(),
                        },
                    ));
                }
            }
            cfg.faults.sort_by_key(|(t, _)| *t);
        }
        PlantedBug::AckBeforeIsr => {
            // Three replicas and min.insync.replicas=2: every acks=all answer must wait for a
            // follower, and the leader's own sync is not enough. Fast fsyncs and a slow
            // network: the leader's early answer reaches the client before a follower has
            // fetched and synced the records.
            replicated(cfg, &brokers, Some(2));
            no_faults(cfg);
            cfg.fsync_latency = Duration::from_micros(100)..Duration::from_millis(1);
            cfg.min_latency = Duration::from_millis(5);
            cfg.max_latency = Duration::from_millis(25);
        }
        PlantedBug::HwFromUnsyncedOffset | PlantedBug::SyncedEndIgnored => {
            // As for `ack-before-isr`, with slow fsyncs and no writeback: a follower's fetch
            // offset runs ahead of what it has synced (it never syncs first with
            // `hw-from-unsynced-offset`; it syncs beside its next fetch, which the leader
            // takes for synced, with `synced-end-ignored`).
            replicated(cfg, &brokers, Some(2));
            no_faults(cfg);
            // No flush policy that syncs followers on its own.
            cfg.broker_overrides
                .retain(|o| !o.starts_with("log.flush.interval."));
            for t in &mut cfg.topics {
                t.configs
                    .retain(|(k, _)| k != "flush.messages" && k != "flush.ms");
            }
            cfg.writeback = Writeback {
                dirty_writes: None,
                sync_per_million: 0,
            };
            cfg.fsync_latency = Duration::from_millis(2)..Duration::from_millis(10);
            cfg.min_latency = Duration::ZERO;
            cfg.max_latency = Duration::from_millis(1);
        }
        PlantedBug::IsrJoinWithoutEpochStart => {
            // Three replicas with min.insync.replicas=2 and controllers apart. A broker is cut
            // off from every other server long enough to be fenced (it leaves the ISRs and
            // falls behind while the other two go on), then every broker's power is cut at
            // once. Each restarted broker leaves the ISRs it can leave; the last member of
            // each ISR leads it again in a new epoch, knowing no high watermark, which stays
            // at the log start while it is alone in the ISR. The broker that fell behind must
            // catch up to the new epoch's start before it rejoins.
            replicated(cfg, &brokers, Some(2));
            // On every broker, so the one cut off holds a replica of every partition; and
            // producers that keep writing, so it falls well behind.
            for t in &mut cfg.topics {
                t.replication_factor = i32::try_from(brokers.len()).unwrap_or(3);
            }
            busy_producers(cfg);
            separate_controllers(cfg);
            // The topics exist some 7 s in, with controllers apart.
            cfg.fault_phase = Duration::from_secs(28);
            cfg.faults.clear();
            for k in 0..3u64 {
                let at = Duration::from_millis(10_000 + k * 6_000);
                for host in &brokers {
                    cfg.faults
                        .push((at, Fault::PowerLoss { host: host.clone() }));
                }
            }
            cfg.faults.sort_by_key(|(t, _)| *t);
        }
        PlantedBug::LeaseIgnored => {
            // Three brokers, and groups of two members or more on one offsets partition on
            // all three, committing after every poll, with controllers apart. Each broker in
            // turn is cut off from every other server for a while. For the first part of it,
            // each group's first member cannot reach it either: the controller fences the
            // broker and moves its leaderships, so that member finds the new coordinator and
            // commits there. Then the member can reach only the broker cut off, which still
            // believes it coordinates the group: it must not serve the member's offsets from
            // its memory once its lease is over.
            replicated(cfg, &brokers, None);
            separate_controllers(cfg);
            // Three brokers, so cutting each off once cuts off the coordinator.
            let mut kept = 0;
            cfg.nodes.retain(|n| {
                kept += usize::from(n.broker);
                !n.broker || kept <= 3
            });
            let brokers: Vec<String> = brokers.iter().take(3).cloned().collect();
            cfg.elect_topic.replication_factor = cfg.elect_topic.replication_factor.min(3);
            group_committing_often(cfg);
            // Sessions long enough that the broker cut off has not expired the member when it
            // comes back.
            for g in &mut cfg.groups {
                g.churn = false;
                g.session_timeout_ms = 20_000;
                // Eager: one rebalance gives a new member its share (a cooperative one takes
                // two, each a few heartbeats long).
                g.assignor = "roundrobin".into();
                // Committing with every fourth poll, right after the member reads its
                // offsets: a commit to a broker that cannot replicate it waits out the
                // request timeout, and the read must not wait behind it.
                g.commit_every = 4;
                if g.members.len() < 2 {
                    g.members
                        .push(format!("{}-member-{}", g.name, g.members.len() + 10));
                }
            }
            set_override(cfg, "offsets.topic.num.partitions", "1");
            let rf = brokers.len().to_string();
            set_override(cfg, "offsets.topic.replication.factor", &rf);
            let servers = cfg.node_names();
            let firsts: Vec<String> = cfg.groups.iter().map(|g| g.members[0].clone()).collect();
            // The groups form some 9 s in, with controllers apart, and take their second
            // member within a few heartbeats (a third of the session).
            cfg.fault_phase = Duration::from_secs(62);
            cfg.faults.clear();
            let ms = Duration::from_millis;
            let mut cut = |at: Duration, until: Duration, a: &String, b: &String| {
                let (a, b) = (a.clone(), b.clone());
                cfg.faults.push((
                    at,
                    Fault::Partition {
                        a: a.clone(),
                        b: b.clone(),
                    },
                ));
                cfg.faults.push((until, Fault::Repair { a, b }));
            };
            // The first part outlasts a client request's timeout (3 s) and a broker's
            // session; the second, the timeouts of the member's open connections to the
            // brokers it can no longer reach.
            for (k, host) in brokers.iter().cycle().take(3).enumerate() {
                let at = ms(20_000 + k as u64 * 14_000);
                let (moved, back) = (at + ms(4_000), at + ms(13_000));
                for other in servers.iter().filter(|s| *s != host) {
                    cut(at, back, host, other);
                }
                for m in &firsts {
                    cut(at, moved, host, m);
                    for other in brokers.iter().filter(|b| *b != host) {
                        cut(moved, back, other, m);
                    }
                }
            }
        }
        PlantedBug::UnknownIsrAnswerAsRefused => {
            // Three replicas under acks=all, controllers apart, followers dropped from the
            // ISRs quickly. Each broker in turn pauses long enough to leave the ISRs (not
            // long enough to be fenced). As it comes back and catches up, its leaders ask the
            // controller to add it again, and the controller's answers to them are lost for
            // longer than they wait: the change is committed, its answer never comes. Then
            // it is cut off from the other brokers (still heartbeating), so its end stays
            // put while its leaders take more records: the high watermark must wait for it.
            // Last, the other brokers pause long enough to be fenced: the one left, in the
            // ISRs, leads, and they follow it from its end.
            replicated(cfg, &brokers, Some(2));
            busy_producers(cfg);
            separate_controllers(cfg);
            set_override(cfg, "replica.lag.time.max.ms", "600");
            let controllers: Vec<String> = names_of(cfg, |n| n.controller);
            cfg.fault_phase = Duration::from_secs(36);
            cfg.faults.clear();
            let ms = Duration::from_millis;
            for (k, host) in brokers.iter().cycle().take(4).enumerate() {
                let at = ms(8_000 + k as u64 * 7_000);
                let back = at + ms(1_000);
                cfg.faults.push((at, Fault::Pause { host: host.clone() }));
                cfg.faults
                    .push((back, Fault::Resume { host: host.clone() }));
                for leader in brokers.iter().filter(|b| *b != host) {
                    for c in &controllers {
                        let (from, to) = (c.clone(), leader.clone());
                        cfg.faults.push((back, Fault::Cut { from, to }));
                        let (from, to) = (c.clone(), leader.clone());
                        cfg.faults
                            .push((back + ms(2_000), Fault::Restore { from, to }));
                    }
                    let (a, b) = (host.clone(), leader.clone());
                    cfg.faults.push((back + ms(300), Fault::Partition { a, b }));
                    let (a, b) = (host.clone(), leader.clone());
                    cfg.faults.push((back + ms(4_500), Fault::Repair { a, b }));
                    let h = leader.clone();
                    cfg.faults
                        .push((back + ms(2_000), Fault::Pause { host: h }));
                    let h = leader.clone();
                    cfg.faults
                        .push((back + ms(4_000), Fault::Resume { host: h }));
                }
            }
        }
        PlantedBug::StaleSnapshot => {
            // Snapshots every few records, and nodes that come back from their snapshot
            // (restarts) or fetch the leader's (isolated past a snapshot).
            set_override(
                cfg,
                "metadata.log.max.record.bytes.between.snapshots",
                "300",
            );
            set_override(cfg, "broker.session.timeout.ms", "1500");
            set_override(cfg, "broker.heartbeat.interval.ms", "375");
            cfg.fault_phase = Duration::from_secs(20);
            cfg.faults.clear();
            for k in 0..3u64 {
                let at = Duration::from_millis(2_000 + k * 6_000);
                cfg.faults.push((at, Fault::IsolateLeader));
                cfg.faults.push((
                    at + Duration::from_millis(4_000),
                    Fault::Rejoin { restart: k == 1 },
                ));
            }
        }
        PlantedBug::FollowBeforeResign => {
            // As seed 80275: a leader's process paused with acks=all answers waiting, longer
            // than its session (it is fenced, another replica leads), shorter than the
            // clients' request timeout (3 s), so the answers still wait when it resumes and
            // learns the leadership moved. Controllers apart, so the quorum stays up.
            set_override(cfg, "broker.session.timeout.ms", "1500");
            set_override(cfg, "broker.heartbeat.interval.ms", "375");
            replicated(cfg, &brokers, Some(2));
            busy_producers(cfg);
            // One producer waits for acks=all; another writes acks=1 all the time, so the new
            // leader's high watermark moves past the old leader's waiting offsets.
            if let Some(first) = cfg.producers.first().cloned() {
                cfg.producers.truncate(1);
                cfg.producers[0].acks = -1;
                cfg.producers.push(ProducerSpec {
                    name: "producer-1".into(),
                    acks: 1,
                    idempotent: false,
                    ..first
                });
            }
            cfg.fault_phase = Duration::from_secs(24);
            cfg.faults.clear();
            separate_controllers(cfg);
            let brokers: Vec<String> = names_of(cfg, |n| n.broker);
            for (k, host) in brokers.iter().cycle().take(8).enumerate() {
                let at = Duration::from_millis(1_500 + k as u64 * 2_700);
                cfg.faults.push((at, Fault::Pause { host: host.clone() }));
                cfg.faults.push((
                    at + Duration::from_millis(2_200),
                    Fault::Resume { host: host.clone() },
                ));
            }
            cfg.faults.sort_by_key(|(t, _)| *t);
        }
        PlantedBug::ElectOutsideIsr => {
            // Brokers fenced one after another. Each comes back cut off from the other brokers
            // (its followers cannot fetch, so it stays outside the ISRs, as data replication
            // would otherwise put it back at once) but still heartbeating to the controllers,
            // which run apart: eligible to lead, outside the ISR, when the next one's
            // partitions need new leaders.
            set_override(cfg, "broker.session.timeout.ms", "1500");
            set_override(cfg, "broker.heartbeat.interval.ms", "375");
            cfg.elect_topic.partitions = 6;
            // Client topics on three replicas under acks=all, written all the time: a leader
            // elected from outside the ISR lacks committed records, which then go.
            replicated(cfg, &brokers, None);
            busy_producers(cfg);
            cfg.fault_phase = Duration::from_secs(20);
            cfg.faults.clear();
            separate_controllers(cfg);
            let brokers: Vec<String> = names_of(cfg, |n| n.broker);
            // Each pause outlasts an election of a new controller plus the session.
            for (k, host) in brokers.iter().take(3).enumerate() {
                let at = Duration::from_millis(1_500 + k as u64 * 6_000);
                cfg.faults.push((at, Fault::Pause { host: host.clone() }));
                let back = at + Duration::from_millis(5_000);
                for other in brokers.iter().filter(|b| *b != host) {
                    cfg.faults.push((
                        back,
                        Fault::Partition {
                            a: host.clone(),
                            b: other.clone(),
                        },
                    ));
                }
                cfg.faults
                    .push((back, Fault::Resume { host: host.clone() }));
            }
        }
        PlantedBug::KeepTornBatch => {
            // Unsynced writes pile up, so a power loss tears one and keeps a later one.
            cfg.broker_overrides
                .retain(|o| !o.starts_with("write.caching=") && !o.starts_with("log.flush."));
            cfg.broker_overrides.push("write.caching=true".into());
            for t in &mut cfg.topics {
                t.configs
                    .retain(|(k, _)| k != "write.caching" && k != "flush.messages");
            }
            cfg.writeback = Writeback {
                dirty_writes: None,
                sync_per_million: 0,
            };
            // Blocks smaller than a batch, so a torn batch keeps its header and loses its body.
            if cfg.block_size > 64 {
                cfg.block_size = 64;
            }
            power_losses(cfg, 8);
        }
    }
    cfg.faults.sort_by_key(|(t, _)| *t);
}

/// Runs one seed.
pub fn run_seed(seed: u64, opts: &RunOptions) -> RunResult {
    let mut cfg = SimConfig::from_seed(seed);
    if let Some(bug) = opts.planted_bug {
        steer(&mut cfg, bug);
    }
    if !opts.quiet {
        println!("seed: {seed}");
        if let Some(bug) = opts.planted_bug {
            let how = if opts.steer_only {
                "steered as for (not planted)"
            } else {
                "planted bug"
            };
            println!("{how}: {}", bug.name());
        }
        print!("{cfg}");
    }
    let mut b = turmoil::Builder::new();
    b.rng_seed(seed)
        .epoch(epoch())
        .simulation_duration(cfg.fault_phase + CALM + RUN_CAP)
        .tick_duration(Duration::from_millis(1))
        .min_message_latency(cfg.min_latency)
        .max_message_latency(cfg.max_latency);
    // The disk's own writeback is drawn by runnel-sim from each host's stream; turmoil's
    // random syncs stay off.
    b.fs().block_size(cfg.block_size).sync_probability(0.0);
    let mut sim = b.build();

    let journal = JournalRef::default();
    {
        let mut j = journal.lock();
        for p in &cfg.producers {
            j.history.idempotent.insert(p.name.clone(), p.idempotent);
            j.history
                .ordered
                .insert(p.name.clone(), p.max_in_flight == 1);
        }
        for t in &cfg.topics {
            let caching = effective(&cfg, &t.name, "write.caching", "write.caching").as_deref()
                == Some("true");
            j.history.write_caching.insert(t.name.clone(), caching);
            j.history
                .replicated
                .insert(t.name.clone(), t.replication_factor > 1);
        }
        for g in &cfg.groups {
            for m in &g.members {
                j.history.group_of.insert(m.clone(), g.name.clone());
            }
        }
    }
    let bug = opts.planted_bug.filter(|_| !opts.steer_only);
    let disk = DiskFaults {
        lying_fsync: bug == Some(PlantedBug::LyingFsync),
        lying_dir_sync: bug == Some(PlantedBug::LyingDirSync),
        planted: PlantedBugs {
            early_ack: bug == Some(PlantedBug::EarlyAck),
            rename_before_sync: bug == Some(PlantedBug::RenameBeforeSync),
            forget_producer_state: bug == Some(PlantedBug::ForgetProducerState),
            keep_torn_batch: bug == Some(PlantedBug::KeepTornBatch),
            commit_before_sync: bug == Some(PlantedBug::CommitBeforeSync),
            vote_not_synced: bug == Some(PlantedBug::VoteNotSynced),
            raft_truncate_to_hw: bug == Some(PlantedBug::RaftTruncateToHw),
            elect_outside_isr: bug == Some(PlantedBug::ElectOutsideIsr),
            stale_snapshot: bug == Some(PlantedBug::StaleSnapshot),
            hw_ignores_followers: bug == Some(PlantedBug::HwIgnoresFollowers),
            ack_before_isr: bug == Some(PlantedBug::AckBeforeIsr),
            replica_truncate_to_hw: bug == Some(PlantedBug::ReplicaTruncateToHw),
            isr_join_without_epoch_start: bug == Some(PlantedBug::IsrJoinWithoutEpochStart),
            hw_from_unsynced_offset: bug == Some(PlantedBug::HwFromUnsyncedOffset),
            synced_end_ignored: bug == Some(PlantedBug::SyncedEndIgnored),
            rf1_hw_from_log_end: bug == Some(PlantedBug::Rf1HwFromLogEnd),
            follow_before_resign: bug == Some(PlantedBug::FollowBeforeResign),
            lease_ignored: bug == Some(PlantedBug::LeaseIgnored),
            unknown_isr_answer_as_refused: bug == Some(PlantedBug::UnknownIsrAnswerAsRefused),
        },
        ..DiskFaults::default()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let brokers = cluster::add_nodes(&mut sim, &cfg, &disk, &journal);
    workload::add_setup(&mut sim, &cfg, journal.clone());
    for (i, _) in cfg.producers.iter().enumerate() {
        workload::add_producer(&mut sim, &cfg, i, journal.clone(), stop.clone());
    }
    for (i, _) in cfg.consumers.iter().enumerate() {
        workload::add_consumer(&mut sim, &cfg, i, journal.clone(), stop.clone());
    }
    for (g, spec) in cfg.groups.iter().enumerate() {
        for m in 0..spec.members.len() {
            workload::add_group_member(&mut sim, &cfg, g, m, journal.clone(), stop.clone());
        }
    }

    let mut checker = StateChecker::new(
        cfg.node_names(),
        cfg.nodes.iter().map(|n| n.id).collect(),
        cfg.voters(),
        std::path::Path::new(DATA_DIR),
    );
    checker.set_topics(
        cfg.topics
            .iter()
            .map(|t| {
                let rules = TopicRules {
                    replication_factor: t.replication_factor,
                    min_insync_replicas: effective(
                        &cfg,
                        &t.name,
                        "min.insync.replicas",
                        "min.insync.replicas",
                    )
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(1),
                    write_caching: effective(&cfg, &t.name, "write.caching", "write.caching")
                        .as_deref()
                        == Some("true"),
                };
                (t.name.clone(), rules)
            })
            .collect(),
    );
    checker.ignore(opts.ignore.clone());
    let (outcome, stopped) = drive(&mut sim, &cfg, &brokers, &journal, &mut checker, &stop);
    let simulated = sim.elapsed();
    let (history, trace) = {
        let mut j = journal.lock();
        (std::mem::take(&mut j.history), j.trace())
    };
    // A run the state checker stopped has an unfinished history: check it anyway, but its
    // verdict stands on the state checker's findings.
    let mut verdict = checks::check(&history);
    verdict
        .violations
        .retain(|a| !opts.ignore.contains(&a.kind.to_string()));
    // A broken promise outranks a run that did not finish (which may be its consequence).
    let outcome = match outcome {
        Outcome::Panic(why) => Outcome::Panic(why),
        Outcome::Safety(v) => Outcome::Safety(v),
        _ if !verdict.violations.is_empty() => Outcome::Safety(verdict.violations.clone()),
        other => other,
    };
    let trace_hash = history.hash() ^ trace.rotate_left(17) ^ simulated.as_micros() as u64;
    let mut result = RunResult {
        seed,
        outcome,
        trace_hash,
        history,
        verdict,
        simulated,
        stopped,
        report: String::new(),
    };
    result.report = report(&result, opts);
    result
}

/// Whether a history event is a client operation that succeeded (what liveness counts).
fn succeeded(e: &Event) -> bool {
    match e {
        Event::SendOk { .. } => true,
        Event::Poll { records, .. } => !records.is_empty(),
        _ => false,
    }
}

/// Hands the state checker what happened in the last step, in the order it happened: the
/// brokers' observations and the clients' acknowledgements. Returns how many client operations
/// succeeded.
fn check_step(journal: &JournalRef, cursor: &mut usize, checker: &mut StateChecker) -> usize {
    let mut j = journal.lock();
    let observations = std::mem::take(&mut j.observations);
    let entries = &j.history.entries[*cursor..];
    *cursor = j.history.entries.len();
    let successes = entries.iter().filter(|e| succeeded(&e.event)).count();
    let mut obs = observations.iter().peekable();
    for e in entries {
        while let Some(o) = obs.next_if(|o| o.seq < e.seq) {
            checker.observe(o);
        }
        match &e.event {
            Event::SendOk {
                tp,
                offset,
                promise,
                ..
            } => checker.acknowledged(tp, *offset, *promise, e.at),
            Event::CommitOk { group, offsets, .. } => {
                checker.commit_acknowledged(group, offsets, e.at)
            }
            Event::Assigned {
                process,
                group,
                generation,
                member,
                partitions,
            } => checker.assigned(group, *generation, member, partitions, process, e.at),
            _ => {}
        }
    }
    for o in obs {
        checker.observe(o);
    }
    checker.drop_ignored();
    successes
}

/// Steps the simulation, applying faults on schedule and checking every step, until every
/// client finishes. Returns how it ended and, if the state checker stopped it, where.
fn drive(
    sim: &mut turmoil::Sim<'_>,
    cfg: &SimConfig,
    brokers: &[Broker],
    journal: &JournalRef,
    checker: &mut StateChecker,
    stop: &AtomicBool,
) -> (Outcome, Option<(u64, Micros)>) {
    let mut faults: VecDeque<(Duration, Fault)> = cfg.faults.iter().cloned().collect();
    let mut nemesis = Nemesis::new(cfg);
    let mut healed = false;
    // Progress after the heal: when a client operation last succeeded.
    let mut last_success = Duration::ZERO;
    let mut cursor = 0usize;
    let mut step = 0u64;
    loop {
        let successes = check_step(journal, &mut cursor, checker);
        if !checker.violations.is_empty() {
            let at = sim.elapsed().as_micros() as Micros;
            return (
                Outcome::Safety(checker.violations.clone()),
                Some((step, at)),
            );
        }
        let t = sim.elapsed();
        if successes > 0 {
            last_success = t;
        }
        nemesis.crash_if_tripped(sim, brokers, journal, checker);
        nemesis.exit_if_stopped(sim, brokers, journal, checker);
        while let Some((at, _)) = faults.front() {
            if *at > t || healed {
                break;
            }
            let (_, fault) = faults.pop_front().expect("a fault");
            nemesis.apply(sim, &fault, brokers, journal, checker);
        }
        checker.drop_ignored();
        if !checker.violations.is_empty() {
            // A crash just now showed what the disk really held.
            continue;
        }
        if !healed && t >= cfg.fault_phase {
            nemesis.heal(sim, cfg, brokers, checker);
            journal
                .lock()
                .record(t.as_micros() as Micros, Event::Healed);
            healed = true;
            last_success = t;
        }
        if healed && t >= cfg.fault_phase + CALM {
            stop.store(true, Ordering::SeqCst);
        }
        if healed && t - last_success > LIVENESS_BOUND {
            let j = journal.lock();
            return (
                Outcome::Liveness(format!(
                    "no client operation succeeded for {LIVENESS_BOUND:?} after the heal (last at {:.3}s): {} of {} producers, {} of {} consumers and {} of {} group members finished",
                    last_success.as_secs_f64(),
                    j.producers_done,
                    cfg.producers.len(),
                    j.consumers_done,
                    cfg.consumers.len(),
                    j.group_members_done,
                    cfg.groups.iter().map(|g| g.members.len()).sum::<usize>(),
                )),
                None,
            );
        }
        step += 1;
        match sim.step() {
            Ok(true) => {
                check_step(journal, &mut cursor, checker);
                if !checker.violations.is_empty() {
                    let at = sim.elapsed().as_micros() as Micros;
                    return (
                        Outcome::Safety(checker.violations.clone()),
                        Some((step, at)),
                    );
                }
                return (Outcome::Pass, None);
            }
            Ok(false) => {}
            Err(e) => {
                let msg = e.to_string();
                let j = journal.lock();
                let outcome = if msg.contains("panicked") || msg.contains("panic") {
                    Outcome::Panic(msg)
                } else {
                    Outcome::Liveness(format!(
                        "{msg}: {} of {} producers, {} of {} consumers and {} of {} group members finished within {:?} of the heal",
                        j.producers_done,
                        cfg.producers.len(),
                        j.consumers_done,
                        cfg.consumers.len(),
                        j.group_members_done,
                        cfg.groups.iter().map(|g| g.members.len()).sum::<usize>(),
                        RUN_CAP
                    ))
                };
                return (outcome, None);
            }
        }
    }
}

/// Prints the history's operations on the values an anomaly names: their sends and answers,
/// and each read that returned one of them (with the offset it was read at), plus the faults
/// that could explain it (power losses, restarts).
fn print_operations_involved(out: &mut String, h: &History, a: &Anomaly) {
    outln!(out, "operations involved in {} on {}:", a.kind, a.tp);
    let mut shown = 0;
    for e in &h.entries {
        let line = match &e.event {
            Event::SendInvoke { value, tp, .. }
            | Event::SendOk { value, tp, .. }
            | Event::SendFail { value, tp, .. }
            | Event::SendInfo { value, tp, .. }
                if *tp == a.tp && a.detail.contains(value.as_str()) =>
            {
                Some(e.to_string())
            }
            Event::Poll {
                process,
                tp,
                records,
            } if *tp == a.tp => {
                let hits: Vec<String> = records
                    .iter()
                    .filter(|(_, v)| a.detail.contains(v.as_str()))
                    .map(|(o, v)| format!("{v}@{o}"))
                    .collect();
                (!hits.is_empty()).then(|| {
                    format!(
                        "{:10.6} {process} read {tp} {}",
                        e.at as f64 / 1e6,
                        hits.join(" ")
                    )
                })
            }
            Event::PowerLoss { .. } | Event::Healed => Some(e.to_string()),
            Event::Fault { description } if description.contains("restart") => Some(e.to_string()),
            _ => None,
        };
        if let Some(line) = line {
            shown += 1;
            if shown > 40 {
                outln!(out, "  ... (--verbose prints the whole history)");
                break;
            }
            outln!(out, "  {line}");
        }
    }
}

/// Prints the outcome: PASS and the trace hash, or the failure report.
fn report(r: &RunResult, opts: &RunOptions) -> String {
    let mut out = String::new();
    if opts.verbose {
        for e in &r.history.entries {
            outln!(out, "{e}");
        }
    }
    let quiet_pass = opts.quiet && matches!(r.outcome, Outcome::Pass);
    if quiet_pass {
        return out;
    }
    if opts.quiet {
        outln!(out, "seed: {}", r.seed);
    }
    match &r.outcome {
        Outcome::Pass => {
            let commits = r
                .history
                .entries
                .iter()
                .filter(|e| matches!(e.event, Event::CommitOk { .. }))
                .count();
            let groups = if r.history.groups_complete.is_empty() {
                String::new()
            } else {
                format!(
                    ", {} group(s) read everything with {commits} acknowledged commits",
                    r.history.groups_complete.len()
                )
            };
            outln!(
                out,
                "PASS ({} acknowledged sends, {} records read{groups}, {} anomalies allowed by the promises, {:.1} simulated s)",
                r.verdict.acknowledged,
                r.verdict.records_read,
                r.verdict.allowed.len(),
                r.simulated.as_secs_f64()
            );
            outln!(out, "trace hash: {:016x}", r.trace_hash);
        }
        other => {
            outln!(out, "FAIL: {}", other.summary());
            if let Some((step, at)) = r.stopped {
                outln!(
                    out,
                    "the state checker stopped the run at step {step} ({:.6} s simulated)",
                    at as f64 / 1e6
                );
            }
            if let Outcome::Safety(anomalies) = other {
                for a in anomalies.iter().take(20) {
                    outln!(out, "  {a}");
                }
                if anomalies.len() > 20 {
                    outln!(out, "  ... and {} more", anomalies.len() - 20);
                }
                for a in anomalies.iter().take(3) {
                    print_operations_involved(&mut out, &r.history, a);
                }
                let at = anomalies
                    .iter()
                    .map(|a| a.at)
                    .filter(|t| *t > 0)
                    .min()
                    .unwrap_or(0);
                outln!(out, "last events before it:");
                let before: Vec<_> = r
                    .history
                    .entries
                    .iter()
                    .filter(|e| e.at <= at.max(1))
                    .collect();
                for e in before.iter().rev().take(15).rev() {
                    outln!(out, "  {e}");
                }
            }
            outln!(out, "trace hash: {:016x}", r.trace_hash);
        }
    }
    out
}
