//! What a seed chooses: swarm testing, so every seed runs a different mix of topics, broker
//! settings, clients and faults. Each part draws from its own RNG stream (derived from the
//! seed and the part's name), so changing how one part draws does not shift the others.

use crate::env::{ArmedCrash, CrashPoint, Writeback};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::fmt;
use std::time::Duration;

/// A topic to create.
#[derive(Debug, Clone)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i32,
    /// Topic-level configs (Kafka names).
    pub configs: Vec<(String, String)>,
}

/// A producer client.
#[derive(Debug, Clone)]
pub struct ProducerSpec {
    pub name: String,
    /// Topics it writes to.
    pub topics: Vec<String>,
    /// -1 (all), 1 or 0.
    pub acks: i16,
    pub idempotent: bool,
    pub linger_ms: u64,
    /// `max.in.flight.requests.per.connection`.
    pub max_in_flight: usize,
    /// Records per batch at most.
    pub batch_records: usize,
    /// Pause between sends.
    pub pace: Duration,
}

/// A consumer client.
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    pub name: String,
    pub topics: Vec<String>,
    /// Fetch `max_bytes` per partition.
    pub partition_max_bytes: i32,
}

/// A consumer group: members (each its own host) that subscribe to every topic, commit what
/// they read and fetch the group's offsets as they go, and read everything to the end after
/// the heal.
#[derive(Debug, Clone)]
pub struct GroupSpec {
    /// The group id (`group-0`).
    pub name: String,
    /// The members' host names (`group-0-member-1`).
    pub members: Vec<String>,
    /// `partition.assignment.strategy`.
    pub assignor: String,
    /// `session.timeout.ms` (heartbeats every third of it).
    pub session_timeout_ms: u64,
    /// A member commits its positions every this many polls.
    pub commit_every: u32,
    /// Members leave, crash and stall during the fault phase.
    pub churn: bool,
}

/// One fault, applied at a time in the fault phase. Hosts are named: brokers `broker-N`,
/// clients by their role (`producer-0`, `consumer-1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Cut the network between two hosts, both ways.
    Partition {
        a: String,
        b: String,
    },
    /// Restore it.
    Repair {
        a: String,
        b: String,
    },
    /// Drop every message from one host to another (the other way still works).
    Cut {
        from: String,
        to: String,
    },
    /// Restore that direction.
    Restore {
        from: String,
        to: String,
    },
    /// Hold messages between two hosts (delivered on release).
    Hold {
        a: String,
        b: String,
    },
    Release {
        a: String,
        b: String,
    },
    /// Raise the maximum message latency to this many milliseconds (0 restores the default).
    Slow {
        max_latency_ms: u64,
    },
    /// Kill a broker process and start it again (the page cache survives).
    Restart {
        host: String,
    },
    /// Cut a broker's power: unsynced writes are lost or torn; then start it again.
    PowerLoss {
        host: String,
    },
    /// Stop a node cleanly, as an operator's SIGTERM does (a broker's controlled shutdown
    /// moves its leaderships first); its process exits and stays down until `Start`.
    Stop {
        host: String,
    },
    /// Start a stopped node again; one still stopping is killed first, as a supervisor whose
    /// stop timeout ran out does.
    Start {
        host: String,
    },
    /// Freeze a broker (SIGSTOP, a long GC pause): it runs nothing and messages to it wait.
    Pause {
        host: String,
    },
    /// Let it run again.
    Resume {
        host: String,
    },
    /// Transient disk I/O errors on a broker at this per mille rate (0 turns them off).
    IoErrors {
        host: String,
        per_mille: u32,
    },
    /// A broker's disk is full (or no longer).
    DiskFull {
        host: String,
        full: bool,
    },
    /// Kill (or cut the power of) whichever node leads the metadata quorum now, and start it
    /// again.
    KillLeader {
        power: bool,
    },
    /// Cut the quorum's leader off from every other node (clients still reach it).
    IsolateLeader,
    /// Reconnect the node `IsolateLeader` cut off, killing and restarting it first if
    /// `restart`.
    Rejoin {
        restart: bool,
    },
    /// Arm a crash at a point of a broker's disk work (mid-append, mid-roll,
    /// mid-checkpoint...): when the broker reaches it, the process dies there, with the power
    /// (unsynced writes lost or torn) or without.
    CrashAt {
        host: String,
        crash: ArmedCrash,
        power: bool,
    },
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Partition { a, b } => write!(f, "partition {a} <-> {b}"),
            Fault::Repair { a, b } => write!(f, "repair {a} <-> {b}"),
            Fault::Cut { from, to } => write!(f, "cut {from} -> {to}"),
            Fault::Restore { from, to } => write!(f, "restore {from} -> {to}"),
            Fault::Hold { a, b } => write!(f, "hold {a} <-> {b}"),
            Fault::Release { a, b } => write!(f, "release {a} <-> {b}"),
            Fault::Slow { max_latency_ms } => write!(f, "max message latency {max_latency_ms} ms"),
            Fault::Restart { host } => write!(f, "restart {host}"),
            Fault::PowerLoss { host } => write!(f, "power loss on {host}"),
            Fault::Stop { host } => write!(f, "stop {host} cleanly (SIGTERM)"),
            Fault::Start { host } => write!(f, "start {host} again"),
            Fault::Pause { host } => write!(f, "pause {host}"),
            Fault::Resume { host } => write!(f, "resume {host}"),
            Fault::IoErrors { host, per_mille } => {
                write!(f, "disk I/O errors on {host} at {per_mille}/1000")
            }
            Fault::DiskFull { host, full } => write!(
                f,
                "disk of {host} {}",
                if *full { "full" } else { "no longer full" }
            ),
            Fault::KillLeader { power } => write!(
                f,
                "{} the quorum's leader",
                if *power { "power loss on" } else { "restart" }
            ),
            Fault::IsolateLeader => write!(f, "isolate the quorum's leader from the other nodes"),
            Fault::Rejoin { restart } => write!(
                f,
                "{}reconnect the isolated node",
                if *restart { "restart and " } else { "" }
            ),
            Fault::CrashAt { host, crash, power } => write!(
                f,
                "arm {} on {host} {} the {} {} from here",
                if *power { "power loss" } else { "crash" },
                if crash.after { "after" } else { "before" },
                ordinal(crash.skip + 1),
                crash.point.name()
            ),
        }
    }
}

/// The kinds of fault a seed may enable (swarm testing: each seed enables a random subset,
/// each with a random weight).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    Partition,
    OneWay,
    Hold,
    Slow,
    Restart,
    PowerLoss,
    Pause,
    IoErrors,
    DiskFull,
    CrashPoint,
    /// Kill the quorum's leader, sometimes twice within one election (back-to-back
    /// failovers).
    LeaderFailover,
    /// Cut the quorum's leader off from the other nodes for a while.
    IsolateLeader,
}

impl FaultKind {
    pub const ALL: [FaultKind; 12] = [
        FaultKind::Partition,
        FaultKind::OneWay,
        FaultKind::Hold,
        FaultKind::Slow,
        FaultKind::Restart,
        FaultKind::PowerLoss,
        FaultKind::Pause,
        FaultKind::IoErrors,
        FaultKind::DiskFull,
        FaultKind::CrashPoint,
        FaultKind::LeaderFailover,
        FaultKind::IsolateLeader,
    ];
}

/// One server process of the cluster: a broker, a controller (a voter of the metadata
/// quorum), or both.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// Its host name: `broker-N` for a broker (combined or not), `controller-N` for a
    /// controller only.
    pub name: String,
    /// Its `node.id`.
    pub id: i32,
    pub broker: bool,
    pub controller: bool,
}

/// Everything a seed chooses.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub seed: u64,
    /// The server hosts, each with a disk: brokers listen on port 9092, controllers on 9093.
    pub nodes: Vec<NodeSpec>,
    pub topics: Vec<TopicSpec>,
    /// A topic nobody writes to, replicated on up to 3 brokers, whose leaders the controller
    /// moves as brokers come and go (until data replication lands, leadership is all that
    /// a replicated topic exercises).
    pub elect_topic: TopicSpec,
    /// Broker settings (`--override` strings).
    pub broker_overrides: Vec<String>,
    pub producers: Vec<ProducerSpec>,
    pub consumers: Vec<ConsumerSpec>,
    pub groups: Vec<GroupSpec>,
    /// Torn-write block size of the simulated disk.
    pub block_size: u64,
    /// The simulated kernel's writeback.
    pub writeback: Writeback,
    /// How long an fsync takes.
    pub fsync_latency: std::ops::Range<Duration>,
    /// Network latency range.
    pub min_latency: Duration,
    pub max_latency: Duration,
    /// How long the workload runs with faults.
    pub fault_phase: Duration,
    /// The fault kinds this seed enabled, with their weights.
    pub fault_kinds: Vec<(FaultKind, u32)>,
    /// Faults by time from the start.
    pub faults: Vec<(Duration, Fault)>,
}

impl SimConfig {
    /// A broker's address.
    pub fn broker_addr(name: &str) -> String {
        format!("{name}:9092")
    }

    /// Every server host's name, by index.
    pub fn node_names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }

    /// The brokers' addresses, for clients to bootstrap from.
    pub fn bootstrap(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.broker)
            .map(|n| Self::broker_addr(&n.name))
            .collect()
    }

    /// The quorum's voters' node ids.
    pub fn voters(&self) -> Vec<i32> {
        self.nodes
            .iter()
            .filter(|n| n.controller)
            .map(|n| n.id)
            .collect()
    }

    /// The number of brokers.
    pub fn broker_count(&self) -> usize {
        self.nodes.iter().filter(|n| n.broker).count()
    }

    /// The overrides every node shares: the voters and the controller listener's name.
    pub fn quorum_overrides(&self) -> Vec<String> {
        let voters: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| n.controller)
            .map(|n| format!("{}@{}:9093", n.id, n.name))
            .collect();
        vec![
            format!("controller.quorum.voters={}", voters.join(",")),
            "controller.listener.names=CONTROLLER".to_string(),
        ]
    }

    /// One node's own overrides: its id, roles and listeners.
    pub fn node_overrides(&self, i: usize) -> Vec<String> {
        let n = &self.nodes[i];
        let roles = match (n.broker, n.controller) {
            (true, true) => "broker,controller",
            (true, false) => "broker",
            _ => "controller",
        };
        let mut listeners = Vec::new();
        if n.broker {
            listeners.push("PLAINTEXT://0.0.0.0:9092".to_string());
        }
        if n.controller {
            listeners.push("CONTROLLER://0.0.0.0:9093".to_string());
        }
        let mut out = vec![
            format!("node.id={}", n.id),
            format!("process.roles={roles}"),
            format!("listeners={}", listeners.join(",")),
        ];
        if n.broker {
            out.push(format!(
                "advertised.listeners=PLAINTEXT://{}",
                Self::broker_addr(&n.name)
            ));
        }
        out.extend(self.quorum_overrides());
        out
    }
}

/// The cluster a seed runs: 3 to 5 brokers; most often combined nodes of which 3 (or, with
/// 5, sometimes all 5) are voters, the rest brokers only; sometimes 3 controllers of their
/// own beside brokers that are brokers only.
fn draw_nodes(r: &mut StdRng) -> Vec<NodeSpec> {
    let brokers = r.random_range(3..=5);
    let separate = r.random_bool(0.3);
    let voters = if !separate && brokers == 5 && r.random_bool(0.5) {
        5
    } else {
        3
    };
    let mut nodes: Vec<NodeSpec> = (1..=brokers)
        .map(|i| NodeSpec {
            name: format!("broker-{i}"),
            id: i,
            broker: true,
            controller: !separate && i <= voters,
        })
        .collect();
    if separate {
        nodes.extend((1..=3).map(|i| NodeSpec {
            name: format!("controller-{i}"),
            id: 100 + i,
            broker: false,
            controller: true,
        }));
    }
    nodes
}

/// The seed of the RNG stream named `name`: every random stream of a run (the configuration's
/// parts, each host's disk, each client, the broker processes, torn writes) is derived from
/// the seed by its name, never by the order things were built in, so adding a client or a
/// fault leaves every other stream where it was.
pub fn named_seed(seed: u64, name: &str) -> u64 {
    let mut h = seed ^ 0x5eed_5eed_5eed_5eed;
    for b in name.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A RNG stream for one part of the configuration.
fn stream(seed: u64, part: &str) -> StdRng {
    StdRng::seed_from_u64(named_seed(seed, part))
}

fn pick<T: Clone>(rng: &mut StdRng, choices: &[T]) -> T {
    choices[rng.random_range(0..choices.len())].clone()
}

impl SimConfig {
    /// The configuration seed `seed` chooses.
    pub fn from_seed(seed: u64) -> SimConfig {
        let mut r = stream(seed, "topics");
        let topics: Vec<TopicSpec> = (0..r.random_range(1..=3))
            .map(|i| {
                let mut configs = Vec::new();
                if r.random_bool(0.3) {
                    configs.push((
                        "write.caching".to_string(),
                        pick(&mut r, &["true", "false"]).to_string(),
                    ));
                }
                if r.random_bool(0.3) {
                    configs.push((
                        "segment.bytes".to_string(),
                        r.random_range(2_000..40_000).to_string(),
                    ));
                }
                if r.random_bool(0.15) {
                    configs.push((
                        "flush.messages".to_string(),
                        pick(&mut r, &["1", "3", "10"]).to_string(),
                    ));
                }
                TopicSpec {
                    name: format!("t{i}"),
                    partitions: r.random_range(1..=4),
                    // One replica unless the `replication` stream below gives it more.
                    replication_factor: 1,
                    configs,
                }
            })
            .collect();
        let names: Vec<String> = topics.iter().map(|t| t.name.clone()).collect();

        let mut r = stream(seed, "broker");
        let mut broker_overrides = vec![
            format!("log.segment.bytes={}", r.random_range(1_000..64_000)),
            format!(
                "log.index.interval.bytes={}",
                pick(&mut r, &[1, 128, 1024, 4096])
            ),
            format!("write.caching={}", r.random_bool(0.35)),
            format!(
                "log.flush.offset.checkpoint.interval.ms={}",
                pick(&mut r, &[100, 1000, 60_000])
            ),
            format!(
                "log.retention.check.interval.ms={}",
                pick(&mut r, &[500, 5_000])
            ),
            "auto.create.topics.enable=false".to_string(),
        ];
        match r.random_range(0..4) {
            0 => broker_overrides.push("log.flush.interval.messages=1".into()),
            1 => broker_overrides.push(format!(
                "log.flush.interval.messages={}",
                r.random_range(2..50)
            )),
            2 => broker_overrides.push(format!(
                "log.flush.interval.ms={}",
                pick(&mut r, &[10, 100, 1000])
            )),
            _ => {}
        }
        if r.random_bool(0.2) {
            broker_overrides.push(format!(
                "log.retention.bytes={}",
                r.random_range(20_000..200_000)
            ));
        }

        let mut r = stream(seed, "clients");
        let producers: Vec<ProducerSpec> = (0..r.random_range(1..=3))
            .map(|i| {
                let idempotent = r.random_bool(0.7);
                ProducerSpec {
                    name: format!("producer-{i}"),
                    topics: names.clone(),
                    acks: if idempotent {
                        -1
                    } else {
                        pick(&mut r, &[-1, 1])
                    },
                    idempotent,
                    linger_ms: pick(&mut r, &[0, 1, 5, 20]),
                    max_in_flight: pick(&mut r, &[1, 2, 5]),
                    batch_records: pick(&mut r, &[1, 4, 16, 64]),
                    pace: Duration::from_micros(pick(&mut r, &[200, 1_000, 5_000])),
                }
            })
            .collect();
        let consumers: Vec<ConsumerSpec> = (0..r.random_range(1..=2))
            .map(|i| ConsumerSpec {
                name: format!("consumer-{i}"),
                topics: names.clone(),
                partition_max_bytes: pick(&mut r, &[200, 4_096, 1 << 20]),
            })
            .collect();

        let mut r = stream(seed, "groups");
        let groups: Vec<GroupSpec> = (0..pick(&mut r, &[0, 0, 1, 1, 2]))
            .map(|i| GroupSpec {
                name: format!("group-{i}"),
                members: (0..r.random_range(1..=3))
                    .map(|m| format!("group-{i}-member-{m}"))
                    .collect(),
                assignor: pick(&mut r, &["cooperative-sticky", "range", "roundrobin"]).to_string(),
                session_timeout_ms: pick(&mut r, &[1_500, 3_000, 6_000]),
                commit_every: pick(&mut r, &[1, 3, 10]),
                churn: r.random_bool(0.5),
            })
            .collect();
        if !groups.is_empty() {
            broker_overrides.push(format!(
                "group.initial.rebalance.delay.ms={}",
                pick(&mut r, &[0, 100, 3_000])
            ));
            broker_overrides.push("group.min.session.timeout.ms=1000".into());
            broker_overrides.push(format!(
                "offsets.topic.num.partitions={}",
                pick(&mut r, &[1, 2, 5])
            ));
        }

        let mut r = stream(seed, "disk+net");
        let block_size = pick(&mut r, &[1, 64, 512, 4096]);
        let writeback = Writeback {
            dirty_writes: pick(&mut r, &[None, Some(16), Some(64), Some(256)]),
            sync_per_million: pick(&mut r, &[0, 0, 2_000, 10_000, 100_000]),
        };
        let min_latency = Duration::from_micros(pick(&mut r, &[0, 100, 500]));
        let max_latency = min_latency + Duration::from_micros(pick(&mut r, &[100, 2_000, 10_000]));
        let fault_phase = Duration::from_secs(r.random_range(5..=15));

        let mut r = stream(seed, "cluster");
        let nodes = draw_nodes(&mut r);
        let hosts: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
        let brokers = nodes.iter().filter(|n| n.broker).count() as i32;
        let elect_topic = TopicSpec {
            name: "elect".into(),
            partitions: r.random_range(2..=6),
            replication_factor: brokers.min(3),
            configs: Vec::new(),
        };
        // Sessions short enough that brokers are fenced and partitions change leaders
        // within the fault phase (Kafka's heartbeat is about a quarter of the session).
        let session: u64 = pick(&mut r, &[1_500, 3_000, 6_000]);
        broker_overrides.extend([
            format!("broker.session.timeout.ms={session}"),
            format!("broker.heartbeat.interval.ms={}", session / 4),
            format!(
                "leader.imbalance.check.interval.seconds={}",
                pick(&mut r, &[1, 5, 300])
            ),
            format!("auto.leader.rebalance.enable={}", r.random_bool(0.8)),
            // A follower's fetch held by a network fault is given up after 3 s, not Kafka's 30.
            "replica.socket.timeout.ms=3000".to_string(),
            format!(
                "replica.lag.time.max.ms={}",
                crate::workload::REPLICA_LAG_TIME_MAX_MS
            ),
        ]);
        // Metadata snapshots (KIP-630): most seeds snapshot every few records, so logs are
        // cut below snapshots and nodes that fall behind fetch one (FetchSnapshot).
        let mut r = stream(seed, "metadata");
        let snapshot_bytes: u64 = pick(&mut r, &[300, 1_000, 4_000, 20 << 20]);
        broker_overrides.push(format!(
            "metadata.log.max.record.bytes.between.snapshots={snapshot_bytes}"
        ));
        // The group offsets: in half the multi-broker seeds on as many replicas as Kafka's
        // default (3, or every broker), so commits survive a coordinator's failover only
        // through replication (stream `offsets-replication`).
        let mut r = stream(seed, "offsets-replication");
        let offsets_rf = if brokers >= 2 && r.random_bool(0.5) {
            brokers.min(3)
        } else {
            1
        };
        broker_overrides.push(format!("offsets.topic.replication.factor={offsets_rf}"));
        // Data replication: in half the seeds the client topics get several replicas (stream
        // `replication`, so every other draw stays as it was), some with min.insync.replicas=2.
        let mut r = stream(seed, "replication");
        let mut topics = topics;
        if brokers >= 2 && r.random_bool(0.5) {
            for t in &mut topics {
                t.replication_factor = r.random_range(1..=brokers.min(3));
                if t.replication_factor >= 2 && r.random_bool(0.3) {
                    t.configs
                        .push(("min.insync.replicas".to_string(), "2".to_string()));
                }
            }
        }
        let clients: Vec<String> = producers
            .iter()
            .map(|p| p.name.clone())
            .chain(consumers.iter().map(|c| c.name.clone()))
            .chain(groups.iter().flat_map(|g| g.members.iter().cloned()))
            .collect();
        let mut r = stream(seed, "nemesis");
        let mut fault_kinds: Vec<(FaultKind, u32)> = Vec::new();
        for k in FaultKind::ALL {
            if r.random_bool(0.6) {
                fault_kinds.push((k, r.random_range(1..=4)));
            }
        }
        let mut faults = draw_faults(&mut r, &fault_kinds, &hosts, &clients, fault_phase);
        // Jepsen's bridge, from a stream of its own (so the other faults stay as they were):
        // the servers split into two halves that only one server still joins.
        let mut r = stream(seed, "bridge");
        if hosts.len() >= 3 && r.random_bool(0.3) {
            faults.extend(draw_bridge(&mut r, &hosts, fault_phase));
            faults.sort_by_key(|(t, _)| *t);
        }
        // Clean restarts (a rolling restart's SIGTERM), from a stream of their own too.
        let mut r = stream(seed, "sigterm");
        if r.random_bool(0.35) {
            faults.extend(draw_clean_restarts(&mut r, &hosts, fault_phase));
            faults.sort_by_key(|(t, _)| *t);
        }
        SimConfig {
            seed,
            nodes,
            topics,
            elect_topic,
            broker_overrides,
            producers,
            consumers,
            groups,
            block_size,
            writeback,
            fsync_latency: Duration::from_micros(100)..Duration::from_millis(2),
            min_latency,
            max_latency,
            fault_phase,
            fault_kinds,
            faults,
        }
    }
}

fn ordinal(n: u32) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// One to three clean restarts: a node stopped as SIGTERM stops it, started again 0.3 to 6 s
/// later (a node still stopping then is killed).
fn draw_clean_restarts(
    r: &mut StdRng,
    hosts: &[String],
    phase: Duration,
) -> Vec<(Duration, Fault)> {
    let phase_ms = phase.as_millis() as u64;
    let mut out = Vec::new();
    for _ in 0..r.random_range(1..=3) {
        let host = pick(r, hosts);
        let at = Duration::from_millis(r.random_range(200..phase_ms.max(201)));
        let down = Duration::from_millis(r.random_range(300..6_000));
        out.push((at, Fault::Stop { host: host.clone() }));
        out.push((at + down, Fault::Start { host }));
    }
    out
}

/// The fault schedule: faults of the enabled kinds (drawn by weight) at random times during
/// the fault phase, each undone after a while (partitions repaired, holds released, paused
/// brokers resumed, disk faults turned off).
/// A bridge: one server (the bridge) sees both halves of the others, which cannot see each
/// other, for 1 to 4 s; a partition of every pair across the halves, repaired together.
fn draw_bridge(r: &mut StdRng, servers: &[String], phase: Duration) -> Vec<(Duration, Fault)> {
    let mut order: Vec<String> = servers.to_vec();
    // Fisher-Yates, from the seed's stream.
    for i in (1..order.len()).rev() {
        let j = r.random_range(0..=i);
        order.swap(i, j);
    }
    let rest = &order[1..];
    let split = r.random_range(1..rest.len());
    let (left, right) = rest.split_at(split);
    let phase_ms = phase.as_millis() as u64;
    let at = Duration::from_millis(r.random_range(200..phase_ms.max(201)));
    let until = (at + Duration::from_millis(r.random_range(1_000..4_000))).min(phase);
    let mut out = Vec::new();
    for a in left {
        for b in right {
            out.push((
                at,
                Fault::Partition {
                    a: a.clone(),
                    b: b.clone(),
                },
            ));
            out.push((
                until,
                Fault::Repair {
                    a: a.clone(),
                    b: b.clone(),
                },
            ));
        }
    }
    out
}

fn draw_faults(
    r: &mut StdRng,
    kinds: &[(FaultKind, u32)],
    brokers: &[String],
    clients: &[String],
    phase: Duration,
) -> Vec<(Duration, Fault)> {
    let mut out = Vec::new();
    let total: u32 = kinds.iter().map(|(_, w)| w).sum();
    if total == 0 {
        return out;
    }
    let phase_ms = phase.as_millis() as u64;
    // Pairs of hosts a network fault may cut: each client with each broker, and (with more
    // than one) each pair of brokers.
    let mut pairs: Vec<(String, String)> = Vec::new();
    for c in clients {
        // Clients talk to brokers only.
        for b in brokers.iter().filter(|b| !b.starts_with("controller-")) {
            pairs.push((c.clone(), b.clone()));
        }
    }
    for (i, a) in brokers.iter().enumerate() {
        for b in &brokers[i + 1..] {
            pairs.push((a.clone(), b.clone()));
        }
    }
    let count = r.random_range(0..=10);
    for _ in 0..count {
        let mut w = r.random_range(0..total);
        let kind = kinds
            .iter()
            .find(|(_, weight)| {
                if w < *weight {
                    true
                } else {
                    w -= weight;
                    false
                }
            })
            .map_or(kinds[0].0, |(k, _)| *k);
        let at = Duration::from_millis(r.random_range(200..phase_ms));
        let lasts = Duration::from_millis(r.random_range(50..3_000));
        let (a, b) = pick(r, &pairs);
        let host = pick(r, brokers);
        let (start, end) = match kind {
            FaultKind::Partition => (
                Fault::Partition {
                    a: a.clone(),
                    b: b.clone(),
                },
                Some(Fault::Repair { a, b }),
            ),
            FaultKind::OneWay => {
                let (from, to) = if r.random_bool(0.5) { (a, b) } else { (b, a) };
                (
                    Fault::Cut {
                        from: from.clone(),
                        to: to.clone(),
                    },
                    Some(Fault::Restore { from, to }),
                )
            }
            FaultKind::Hold => (
                Fault::Hold {
                    a: a.clone(),
                    b: b.clone(),
                },
                Some(Fault::Release { a, b }),
            ),
            FaultKind::Slow => (
                Fault::Slow {
                    max_latency_ms: r.random_range(20..500),
                },
                Some(Fault::Slow { max_latency_ms: 0 }),
            ),
            FaultKind::Restart => (Fault::Restart { host }, None),
            FaultKind::PowerLoss => (Fault::PowerLoss { host }, None),
            FaultKind::Pause => (
                Fault::Pause { host: host.clone() },
                Some(Fault::Resume { host }),
            ),
            FaultKind::IoErrors => (
                Fault::IoErrors {
                    host: host.clone(),
                    per_mille: r.random_range(1..50),
                },
                Some(Fault::IoErrors { host, per_mille: 0 }),
            ),
            FaultKind::DiskFull => (
                Fault::DiskFull {
                    host: host.clone(),
                    full: true,
                },
                Some(Fault::DiskFull { host, full: false }),
            ),
            FaultKind::CrashPoint => {
                let crash = ArmedCrash {
                    point: pick(r, &CrashPoint::ALL),
                    after: r.random_bool(0.5),
                    skip: pick(r, &[0, 0, 1, 3, 10, 30]),
                };
                let power = r.random_bool(0.5);
                (Fault::CrashAt { host, crash, power }, None)
            }
            FaultKind::LeaderFailover => {
                let power = r.random_bool(0.5);
                if r.random_bool(0.5) {
                    // The next leader too, before or just after it is elected.
                    let gap = Duration::from_millis(r.random_range(1..1_500));
                    out.push((
                        (at + gap).min(phase),
                        Fault::KillLeader {
                            power: r.random_bool(0.5),
                        },
                    ));
                }
                (Fault::KillLeader { power }, None)
            }
            FaultKind::IsolateLeader => (
                Fault::IsolateLeader,
                Some(Fault::Rejoin {
                    restart: r.random_bool(0.3),
                }),
            ),
        };
        out.push((at, start));
        if let Some(end) = end {
            out.push(((at + lasts).min(phase), end));
        }
    }
    out.sort_by_key(|(t, _)| *t);
    out
}

impl fmt::Display for SimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "topics:")?;
        for t in &self.topics {
            writeln!(
                f,
                "  {} partitions={} replication factor {} {:?}",
                t.name, t.partitions, t.replication_factor, t.configs
            )?;
        }
        writeln!(
            f,
            "  {} partitions={} replication factor {} (not written)",
            self.elect_topic.name, self.elect_topic.partitions, self.elect_topic.replication_factor
        )?;
        writeln!(f, "broker: {}", self.broker_overrides.join(" "))?;
        for p in &self.producers {
            writeln!(
                f,
                "{}: acks={} idempotent={} linger.ms={} max.in.flight={} batch<={} pace={:?}",
                p.name, p.acks, p.idempotent, p.linger_ms, p.max_in_flight, p.batch_records, p.pace
            )?;
        }
        for c in &self.consumers {
            writeln!(
                f,
                "{}: partition max bytes {}",
                c.name, c.partition_max_bytes
            )?;
        }
        for g in &self.groups {
            writeln!(
                f,
                "{}: {} assignor={} session.timeout.ms={} commit every {} polls{}",
                g.name,
                g.members.join(" "),
                g.assignor,
                g.session_timeout_ms,
                g.commit_every,
                if g.churn { ", members churn" } else { "" }
            )?;
        }
        writeln!(
            f,
            "nodes: {}",
            self.nodes
                .iter()
                .map(|n| format!(
                    "{}(id {}{}{})",
                    n.name,
                    n.id,
                    if n.broker { " broker" } else { "" },
                    if n.controller { " voter" } else { "" }
                ))
                .collect::<Vec<_>>()
                .join(" ")
        )?;
        writeln!(
            f,
            "disk: block_size={} writeback {} fsync {:?}..{:?}; network latency {:?}..{:?}",
            self.block_size,
            self.writeback,
            self.fsync_latency.start,
            self.fsync_latency.end,
            self.min_latency,
            self.max_latency
        )?;
        writeln!(
            f,
            "fault kinds: {}",
            self.fault_kinds
                .iter()
                .map(|(k, w)| format!("{k:?}x{w}"))
                .collect::<Vec<_>>()
                .join(" ")
        )?;
        writeln!(f, "faults during the first {:?}:", self.fault_phase)?;
        for (t, fault) in &self.faults {
            writeln!(f, "  at {:>8.3}s {fault}", t.as_secs_f64())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_always_chooses_the_same() {
        assert_eq!(
            SimConfig::from_seed(42).to_string(),
            SimConfig::from_seed(42).to_string()
        );
        assert_ne!(
            SimConfig::from_seed(42).to_string(),
            SimConfig::from_seed(43).to_string()
        );
    }

    #[test]
    fn seeds_cover_every_fault() {
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..300 {
            for (_, f) in SimConfig::from_seed(seed).faults {
                seen.insert(
                    f.to_string()
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_string(),
                );
            }
        }
        // partition, repair, cut, restore, hold, release, max (latency), restart, power, pause,
        // resume, disk (io/full x2), arm (crash points), isolate and reconnect (the quorum's
        // leader; killing it shares restart and power), stop and start (a clean restart).
        assert_eq!(
            seen.len(),
            17,
            "every kind of fault appears in 300 seeds: {seen:?}"
        );
    }
}
