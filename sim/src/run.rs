//! One simulated run: a broker host and client hosts on turmoil, the workload, the nemesis
//! applying the seed's faults, the final read, and the checker's verdict.
//!
//! Timeline (simulated): the broker starts; a setup client creates the topics; producers and
//! consumers run while the nemesis applies faults until the fault phase ends; then everything
//! is healed and the workload runs fault-free for [`CALM`]; producers stop and wait for their
//! outstanding sends; consumers read every partition to its end. If, after the heal, no client
//! operation succeeds for [`LIVENESS_BOUND`] before everything is done (or it is not done
//! within [`RUN_CAP`]), the run fails as a liveness violation.

use crate::checker::{self, Anomaly, Verdict};
use crate::config::{Fault, SimConfig};
use crate::env::{DiskFaults, DiskSwitches, epoch, sim_env};
use crate::history::{Event, History, Micros, Promise, Tp};
use kafka_protocol::error::ResponseError;
use runnel::client::admin::{Admin, NewTopic, OffsetSpec};
use runnel::client::consumer::{Consumer, ConsumerConfig, OffsetReset};
use runnel::client::producer::{Acks, Producer, ProducerConfig, ProducerRecord};
use runnel::client::{ClientConfig, ClientError, TopicPartition};
use runnel::config::{BrokerConfig, CliOverrides};
use runnel::env::SharedRng;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
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

const BROKER: &str = "broker";
const BROKER_ADDR: &str = "broker:9092";

/// A bug planted on purpose, to show the checker catches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlantedBug {
    /// fsync reports success but syncs nothing.
    LyingFsync,
}

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub planted_bug: Option<PlantedBug>,
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
    /// The exit code: the outcome's, or 5 for two different traces from one seed.
    pub fn exit_code(&self) -> u8 {
        match self.second_hash {
            Some(_) if matches!(self.outcome, Outcome::Pass) => 5,
            _ => self.outcome.exit_code(),
        }
    }

    /// One line saying what happened.
    pub fn summary(&self) -> String {
        match self.second_hash {
            Some(h) if matches!(self.outcome, Outcome::Pass) => format!(
                "nondeterminism: trace hash {:016x} then {h:016x}",
                self.trace_hash
            ),
            _ => self.outcome.summary(),
        }
    }
}

/// Runs seeds on `jobs` threads (each seed is its own simulation, so they are independent)
/// and hands each result to `each` in seed order. With `check_determinism`, each passing seed
/// runs twice and a different second trace hash is recorded.
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
                    if check_determinism && matches!(r.outcome, Outcome::Pass) {
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

/// What the hosts share with the driver.
#[derive(Default)]
struct Shared {
    history: History,
    /// Producers that finished (all their sends answered).
    producers_done: usize,
    /// Consumers that read everything to the end.
    consumers_done: usize,
    /// Set once the topics exist.
    topics_ready: bool,
}

type SharedRef = Arc<Mutex<Shared>>;

fn now() -> Micros {
    turmoil::sim_elapsed().map_or(0, |d| d.as_micros() as Micros)
}

fn record(shared: &SharedRef, event: Event) {
    record_at(shared, now(), event);
}

/// Records an event at `at`: the driver, outside every host, must give the time itself.
fn record_at(shared: &SharedRef, at: Micros, event: Event) {
    shared
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .history
        .push(at, event);
}

/// A record value that carries its own checksum, so corruption is visible to consumers.
fn value_for(producer: &str, n: u64) -> String {
    let body = format!("{producer}-{n}");
    format!("{body}-{:08x}", crc32fast::hash(body.as_bytes()))
}

/// Whether a value's checksum matches.
fn value_ok(v: &str) -> bool {
    match v.rsplit_once('-') {
        Some((body, sum)) => format!("{:08x}", crc32fast::hash(body.as_bytes())) == sum,
        None => false,
    }
}

fn client_config(name: &str) -> ClientConfig {
    let mut c = ClientConfig::new([BROKER_ADDR]);
    c.client_id = name.to_string();
    c.request_timeout_ms = 3_000;
    c.connect_timeout_ms = 1_000;
    c.retry_backoff_ms = 50;
    c.reconnect_backoff_ms = 50;
    c
}

/// The broker's effective value of a topic setting: the topic's own, else the broker's.
fn effective(cfg: &SimConfig, topic: &str, topic_key: &str, broker_key: &str) -> Option<String> {
    cfg.topics
        .iter()
        .find(|t| t.name == topic)
        .and_then(|t| {
            t.configs
                .iter()
                .find(|(k, _)| k == topic_key)
                .map(|(_, v)| v.clone())
        })
        .or_else(|| {
            cfg.broker_overrides.iter().find_map(|o| {
                o.strip_prefix(&format!("{broker_key}="))
                    .map(str::to_string)
            })
        })
}

/// Runs one seed.
pub fn run_seed(seed: u64, opts: &RunOptions) -> RunResult {
    let mut cfg = SimConfig::from_seed(seed);
    if opts.planted_bug == Some(PlantedBug::LyingFsync)
        && !cfg.faults.iter().any(|(_, f)| *f == Fault::PowerLoss)
    {
        // The lie only shows when the power goes: make sure it does.
        let at = cfg.fault_phase / 2;
        cfg.faults.push((at, Fault::PowerLoss));
        cfg.faults.sort_by_key(|(t, _)| *t);
    }
    if !opts.quiet {
        println!("seed: {seed}");
        print!("{cfg}");
    }
    let mut b = turmoil::Builder::new();
    b.rng_seed(seed)
        .epoch(epoch())
        .simulation_duration(cfg.fault_phase + CALM + RUN_CAP)
        .tick_duration(Duration::from_millis(1))
        .min_message_latency(cfg.min_latency)
        .max_message_latency(cfg.max_latency);
    b.fs()
        .block_size(cfg.block_size)
        .sync_probability(cfg.sync_probability);
    let mut sim = b.build();

    let shared: SharedRef = Arc::new(Mutex::new(Shared::default()));
    {
        let mut s = shared.lock().unwrap();
        for p in &cfg.producers {
            s.history.idempotent.insert(p.name.clone(), p.idempotent);
            s.history
                .ordered
                .insert(p.name.clone(), p.max_in_flight == 1);
        }
        for t in &cfg.topics {
            let caching = effective(&cfg, &t.name, "write.caching", "write.caching").as_deref()
                == Some("true");
            s.history.write_caching.insert(t.name.clone(), caching);
        }
    }
    let switches = Arc::new(DiskSwitches::default());
    let starts = Arc::new(AtomicU32::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    add_broker(
        &mut sim,
        &cfg,
        opts,
        switches.clone(),
        starts.clone(),
        shared.clone(),
    );
    add_setup(&mut sim, &cfg, shared.clone());
    for (i, _) in cfg.producers.iter().enumerate() {
        add_producer(&mut sim, &cfg, i, shared.clone(), stop.clone());
    }
    for (i, _) in cfg.consumers.iter().enumerate() {
        add_consumer(&mut sim, &cfg, i, shared.clone(), stop.clone());
    }

    let outcome = drive(&mut sim, &cfg, &switches, &shared, &stop);
    let simulated = sim.elapsed();
    let history = std::mem::take(&mut shared.lock().unwrap_or_else(|e| e.into_inner()).history);
    let verdict = checker::check(&history);
    // A broken promise outranks a run that did not finish (which may be its consequence).
    let outcome = match outcome {
        Outcome::Panic(why) => Outcome::Panic(why),
        _ if !verdict.violations.is_empty() => Outcome::Safety(verdict.violations.clone()),
        other => other,
    };
    let trace_hash = history.hash() ^ simulated.as_micros() as u64;
    let mut result = RunResult {
        seed,
        outcome,
        trace_hash,
        history,
        verdict,
        simulated,
        report: String::new(),
    };
    result.report = report(&result, opts);
    result
}

/// Steps the simulation, applying faults on schedule, until every client finishes.
fn drive(
    sim: &mut turmoil::Sim<'_>,
    cfg: &SimConfig,
    switches: &DiskSwitches,
    shared: &SharedRef,
    stop: &AtomicBool,
) -> Outcome {
    let mut faults: VecDeque<(Duration, Fault)> = cfg.faults.iter().cloned().collect();
    let mut healed = false;
    let mut held: Vec<String> = Vec::new();
    let mut partitioned: Vec<String> = Vec::new();
    // Whether the armed crash point cuts the power.
    let armed_power = AtomicBool::new(false);
    // Progress after the heal: the history's length, and when it last grew.
    let mut progress = (0usize, Duration::ZERO);
    loop {
        crash_if_tripped(sim, switches, &armed_power, shared);
        let t = sim.elapsed();
        while let Some((at, _)) = faults.front() {
            if *at > t || healed {
                break;
            }
            let (_, fault) = faults.pop_front().expect("a fault");
            apply(
                sim,
                &fault,
                switches,
                shared,
                &mut held,
                &mut partitioned,
                &armed_power,
            );
        }
        if !healed && t >= cfg.fault_phase {
            for c in partitioned.drain(..) {
                sim.repair(c.as_str(), BROKER);
            }
            for c in held.drain(..) {
                sim.release(c.as_str(), BROKER);
            }
            sim.set_max_message_latency(cfg.max_latency);
            switches.io_error_per_mille.store(0, Ordering::SeqCst);
            switches.full.store(false, Ordering::SeqCst);
            *switches.armed.lock().unwrap_or_else(|e| e.into_inner()) = None;
            record_at(shared, t.as_micros() as Micros, Event::Healed);
            healed = true;
        }
        if healed && t >= cfg.fault_phase + CALM {
            stop.store(true, Ordering::SeqCst);
        }
        if healed {
            let s = shared.lock().unwrap_or_else(|e| e.into_inner());
            let len = s.history.entries.len();
            if len != progress.0 {
                progress = (len, t);
            } else if t - progress.1 > LIVENESS_BOUND {
                return Outcome::Liveness(format!(
                    "no client operation succeeded for {LIVENESS_BOUND:?} after the heal (last at {:.3}s): {} of {} producers and {} of {} consumers finished",
                    progress.1.as_secs_f64(),
                    s.producers_done,
                    cfg.producers.len(),
                    s.consumers_done,
                    cfg.consumers.len(),
                ));
            }
        }
        match sim.step() {
            Ok(true) => return Outcome::Pass,
            Ok(false) => {}
            Err(e) => {
                let msg = e.to_string();
                return if msg.contains("panicked") || msg.contains("panic") {
                    Outcome::Panic(msg)
                } else {
                    let s = shared.lock().unwrap_or_else(|e| e.into_inner());
                    Outcome::Liveness(format!(
                        "{msg}: {} of {} producers and {} of {} consumers finished within {:?} of the heal",
                        s.producers_done,
                        cfg.producers.len(),
                        s.consumers_done,
                        cfg.consumers.len(),
                        RUN_CAP
                    ))
                };
            }
        }
    }
}

/// Cuts the broker's power and starts it again: unsynced writes are lost or torn.
fn power_loss(sim: &mut turmoil::Sim<'_>, shared: &SharedRef, at: Micros) {
    sim.crash(BROKER);
    record_at(
        shared,
        at,
        Event::PowerLoss {
            host: BROKER.into(),
        },
    );
    sim.bounce(BROKER);
}

/// If the broker reached an armed crash point, kills it there (its disk refuses everything
/// since) and starts it again.
fn crash_if_tripped(
    sim: &mut turmoil::Sim<'_>,
    switches: &DiskSwitches,
    armed_power: &AtomicBool,
    shared: &SharedRef,
) {
    if !switches.tripped.load(Ordering::SeqCst) {
        return;
    }
    let at = sim.elapsed().as_micros() as Micros;
    let power = armed_power.load(Ordering::SeqCst);
    if power {
        power_loss(sim, shared, at);
    } else {
        sim.bounce(BROKER);
    }
    switches.tripped.store(false, Ordering::SeqCst);
    record_at(
        shared,
        at,
        Event::Fault {
            description: format!(
                "armed {} reached: broker {}",
                if power { "power loss" } else { "crash" },
                if power {
                    "lost power and restarted"
                } else {
                    "killed and restarted"
                }
            ),
        },
    );
}

/// Applies one fault and records it.
fn apply(
    sim: &mut turmoil::Sim<'_>,
    fault: &Fault,
    switches: &DiskSwitches,
    shared: &SharedRef,
    held: &mut Vec<String>,
    partitioned: &mut Vec<String>,
    armed_power: &AtomicBool,
) {
    let at = sim.elapsed().as_micros() as Micros;
    match fault {
        Fault::Partition { client } => {
            sim.partition(client.as_str(), BROKER);
            partitioned.push(client.clone());
        }
        Fault::Repair { client } => {
            sim.repair(client.as_str(), BROKER);
            partitioned.retain(|c| c != client);
        }
        Fault::Hold { client } => {
            sim.hold(client.as_str(), BROKER);
            held.push(client.clone());
        }
        Fault::Release { client } => {
            sim.release(client.as_str(), BROKER);
            held.retain(|c| c != client);
        }
        Fault::Slow { max_latency_ms } => {
            if *max_latency_ms > 0 {
                sim.set_max_message_latency(Duration::from_millis(*max_latency_ms));
            }
        }
        Fault::Restart => {
            sim.bounce(BROKER);
            switches.tripped.store(false, Ordering::SeqCst);
        }
        Fault::PowerLoss => {
            power_loss(sim, shared, at);
            switches.tripped.store(false, Ordering::SeqCst);
        }
        Fault::CrashAt { crash, power } => {
            *switches.armed.lock().unwrap_or_else(|e| e.into_inner()) = Some(*crash);
            armed_power.store(*power, Ordering::SeqCst);
        }
        Fault::IoErrors { per_mille } => switches
            .io_error_per_mille
            .store(*per_mille, Ordering::SeqCst),
        Fault::DiskFull { full } => switches.full.store(*full, Ordering::SeqCst),
    }
    record_at(
        shared,
        at,
        Event::Fault {
            description: fault.to_string(),
        },
    );
}

/// The broker host: starts the real broker on the simulated seam, and starts it again if it
/// fails to start (as a supervisor would). Restarted by `bounce`.
fn add_broker(
    sim: &mut turmoil::Sim<'_>,
    cfg: &SimConfig,
    opts: &RunOptions,
    switches: Arc<DiskSwitches>,
    starts: Arc<AtomicU32>,
    shared: SharedRef,
) {
    let overrides = cfg.broker_overrides.clone();
    let seed = cfg.seed;
    let lying = opts.planted_bug == Some(PlantedBug::LyingFsync);
    sim.host(BROKER, move || {
        let (overrides, switches, starts, _shared) = (
            overrides.clone(),
            switches.clone(),
            starts.clone(),
            shared.clone(),
        );
        async move {
            let cli = CliOverrides {
                listen: Some("0.0.0.0:9092".into()),
                advertised: Some(BROKER_ADDR.into()),
                data_dir: Some("/data".into()),
            };
            let (config, _) =
                BrokerConfig::load(None, &overrides, &cli).map_err(|e| e.to_string())?;
            loop {
                let n = starts.fetch_add(1, Ordering::SeqCst);
                let faults = DiskFaults {
                    lying_fsync: lying,
                    switches: switches.clone(),
                    ..DiskFaults::default()
                };
                let env = sim_env(faults, SharedRng::seeded(seed ^ (u64::from(n) << 40)));
                match runnel::broker::start(env, config.clone()).await {
                    Ok(running) => running.wait().await,
                    Err(e) => {
                        tracing::info!(error = %e, "broker failed to start; retrying");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }
    });
}

/// The setup client: creates the topics, retrying until the broker takes them.
fn add_setup(sim: &mut turmoil::Sim<'_>, cfg: &SimConfig, shared: SharedRef) {
    let topics = cfg.topics.clone();
    let seed = cfg.seed;
    sim.client("setup", async move {
        let env = sim_env(DiskFaults::default(), SharedRng::seeded(seed ^ 0x5e7));
        let admin = Admin::new(env, client_config("setup"))?;
        for t in &topics {
            let mut nt = NewTopic::new(t.name.clone());
            nt.partitions = t.partitions;
            nt.replication_factor = 1;
            nt.configs = t.configs.iter().cloned().collect();
            loop {
                match admin.create_topic(&nt).await {
                    Ok(_) => break,
                    Err(e) if e.to_string().contains("TOPIC_ALREADY_EXISTS") => break,
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        }
        shared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .topics_ready = true;
        Ok(())
    });
}

async fn wait_for_topics(shared: &SharedRef) {
    while !shared
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .topics_ready
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A producer client: sends numbered values to random partitions, up to `max_in_flight`
/// outstanding, recording every invocation and outcome.
fn add_producer(
    sim: &mut turmoil::Sim<'_>,
    cfg: &SimConfig,
    i: usize,
    shared: SharedRef,
    stop: Arc<AtomicBool>,
) {
    let spec = cfg.producers[i].clone();
    let topics: Vec<(String, i32, bool)> = cfg
        .topics
        .iter()
        .map(|t| {
            let caching = effective(cfg, &t.name, "write.caching", "write.caching").as_deref()
                == Some("true");
            let flush_each = effective(
                cfg,
                &t.name,
                "flush.messages",
                "log.flush.interval.messages",
            )
            .as_deref()
                == Some("1");
            let durable = flush_each || (spec.acks == -1 && !caching);
            (t.name.clone(), t.partitions, durable)
        })
        .collect();
    let seed = cfg.seed;
    sim.client(spec.name.clone(), async move {
        wait_for_topics(&shared).await;
        let rng = SharedRng::seeded(seed ^ (0x9f0d << 8) ^ i as u64);
        let env = sim_env(DiskFaults::default(), rng.fork());
        let mut pc = ProducerConfig {
            client: client_config(&spec.name),
            ..ProducerConfig::default()
        };
        pc.acks = match spec.acks {
            -1 => Acks::All,
            0 => Acks::None,
            _ => Acks::Leader,
        };
        pc.enable_idempotence = spec.idempotent;
        pc.linger_ms = spec.linger_ms;
        pc.client.max_in_flight = spec.max_in_flight;
        pc.batch_size = spec.batch_records * 120;
        pc.delivery_timeout_ms = 20_000;
        let producer = Producer::new(env, pc)?;
        let mut outstanding = futures_util::stream::FuturesUnordered::new();
        let mut n = 0u64;
        while !stop.load(Ordering::SeqCst) {
            let (topic, partitions, durable) =
                &topics[rng.gen_range(0..topics.len() as u64) as usize];
            let partition = rng.gen_range(0..*partitions as u64) as i32;
            let value = value_for(&spec.name, n);
            n += 1;
            let tp = Tp {
                topic: topic.clone(),
                partition,
            };
            record(
                &shared,
                Event::SendInvoke {
                    process: spec.name.clone(),
                    tp: tp.clone(),
                    value: value.clone(),
                },
            );
            let rec = ProducerRecord::new(topic.clone(), value.clone().into_bytes())
                .with_partition(partition);
            match producer.submit(rec).await {
                Ok(delivery) => {
                    let promise = Promise { durable: *durable };
                    outstanding.push(async move { (tp, value, promise, delivery.wait().await) });
                }
                Err(e) => record_outcome(
                    &shared,
                    &spec.name,
                    tp,
                    value,
                    Promise { durable: *durable },
                    Err(e),
                ),
            }
            while outstanding.len() >= spec.max_in_flight * spec.batch_records.max(1) {
                use futures_util::StreamExt;
                if let Some((tp, value, promise, result)) = outstanding.next().await {
                    record_outcome(&shared, &spec.name, tp, value, promise, result);
                }
            }
            tokio::time::sleep(spec.pace).await;
        }
        use futures_util::StreamExt;
        while let Some((tp, value, promise, result)) = outstanding.next().await {
            record_outcome(&shared, &spec.name, tp, value, promise, result);
        }
        producer.close().await;
        shared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .producers_done += 1;
        Ok(())
    });
}

fn record_outcome(
    shared: &SharedRef,
    process: &str,
    tp: Tp,
    value: String,
    promise: Promise,
    result: Result<runnel::client::producer::RecordMetadata, ClientError>,
) {
    let process = process.to_string();
    let event = match result {
        Ok(md) => Event::SendOk {
            process,
            tp,
            value,
            offset: md.offset,
            promise,
        },
        Err(e) if definitely_not_written(&e) => Event::SendFail {
            process,
            tp,
            value,
            error: e.to_string(),
        },
        Err(e) => Event::SendInfo {
            process,
            tp,
            value,
            error: e.to_string(),
        },
    };
    record(shared, event);
}

/// Whether a failed send certainly left nothing in the log. Only a batch the broker refused
/// as invalid qualifies: for any other error an earlier attempt of the same send, retried by
/// the client, may have been written.
fn definitely_not_written(e: &ClientError) -> bool {
    matches!(
        e.code(),
        Some(
            ResponseError::MessageTooLarge
                | ResponseError::CorruptMessage
                | ResponseError::InvalidRecord
                | ResponseError::InvalidTimestamp
                | ResponseError::RecordListTooLarge
        )
    )
}

/// A consumer client: reads every partition of its topics from the start while the workload
/// runs, then, once every producer is done, reads each partition to its end.
fn add_consumer(
    sim: &mut turmoil::Sim<'_>,
    cfg: &SimConfig,
    i: usize,
    shared: SharedRef,
    stop: Arc<AtomicBool>,
) {
    let spec = cfg.consumers[i].clone();
    let topics: Vec<(String, i32)> = cfg
        .topics
        .iter()
        .map(|t| (t.name.clone(), t.partitions))
        .collect();
    let producers = cfg.producers.len();
    let seed = cfg.seed;
    sim.client(spec.name.clone(), async move {
        wait_for_topics(&shared).await;
        let env = sim_env(
            DiskFaults::default(),
            SharedRng::seeded(seed ^ (0xc0 << 8) ^ i as u64),
        );
        let admin = Admin::new(env.clone(), client_config(&spec.name))?;
        let mut cc = ConsumerConfig {
            client: client_config(&spec.name),
            ..ConsumerConfig::default()
        };
        cc.auto_offset_reset = OffsetReset::None;
        cc.max_partition_fetch_bytes = spec.partition_max_bytes;
        cc.fetch_max_wait_ms = 100;
        let mut consumer = Consumer::new(env, cc)?;
        let tps: Vec<TopicPartition> = topics
            .iter()
            .flat_map(|(t, n)| (0..*n).map(move |p| TopicPartition::new(t.clone(), p)))
            .collect();
        consumer.assign(tps.clone());
        let mut next: BTreeMap<TopicPartition, i64> = BTreeMap::new();
        reposition(&admin, &mut consumer, &tps, &mut next, &shared, &spec.name).await;
        let mut final_ends: Option<BTreeMap<TopicPartition, i64>> = None;
        loop {
            let done_producing = stop.load(Ordering::SeqCst)
                && shared
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .producers_done
                    == producers;
            if done_producing && final_ends.is_none() {
                let (Ok(starts), Ok(ends)) = (
                    admin
                        .list_offsets(&with_spec(&tps, OffsetSpec::Earliest))
                        .await,
                    admin
                        .list_offsets(&with_spec(&tps, OffsetSpec::Latest))
                        .await,
                ) else {
                    continue;
                };
                // The final read starts over from the log start: after a power loss took back
                // cached writes, new ones reuse their offsets, below where this consumer was.
                record(
                    &shared,
                    Event::FinalRead {
                        process: spec.name.clone(),
                    },
                );
                for tp in &tps {
                    let start = starts[tp].offset;
                    if consumer.seek(tp, start).is_ok() {
                        next.insert(tp.clone(), start);
                        let t = Tp {
                            topic: tp.topic.to_string(),
                            partition: tp.partition,
                        };
                        record(
                            &shared,
                            Event::Seek {
                                process: spec.name.clone(),
                                tp: t,
                                offset: start,
                            },
                        );
                    }
                }
                final_ends = Some(ends.into_iter().map(|(tp, l)| (tp, l.offset)).collect());
            }
            if let Some(ends) = &final_ends {
                if tps
                    .iter()
                    .all(|tp| next.get(tp).copied().unwrap_or(0) >= ends[tp])
                {
                    break;
                }
            }
            match consumer.poll(Duration::from_millis(200)).await {
                Ok(records) => record_polls(&shared, &spec.name, records, &mut next),
                Err(e) => {
                    tracing::debug!(error = %e, "poll failed; repositioning");
                    reposition(&admin, &mut consumer, &tps, &mut next, &shared, &spec.name).await;
                }
            }
        }
        // Records below the log start were deleted by retention, not lost.
        if let Ok(starts) = admin
            .list_offsets(&with_spec(&tps, OffsetSpec::Earliest))
            .await
        {
            let mut s = shared.lock().unwrap_or_else(|e| e.into_inner());
            for (tp, l) in starts {
                let key = Tp {
                    topic: tp.topic.to_string(),
                    partition: tp.partition,
                };
                let e = s.history.log_start.entry(key).or_insert(l.offset);
                *e = (*e).max(l.offset);
            }
            s.consumers_done += 1;
            s.history.final_readers.insert(spec.name.clone());
        }
        Ok(())
    });
}

fn with_spec(tps: &[TopicPartition], spec: OffsetSpec) -> Vec<(TopicPartition, OffsetSpec)> {
    tps.iter().map(|tp| (tp.clone(), spec)).collect()
}

/// Puts every partition whose position is unknown or outside the log at the log start, and
/// records the seeks.
async fn reposition(
    admin: &Admin,
    consumer: &mut Consumer,
    tps: &[TopicPartition],
    next: &mut BTreeMap<TopicPartition, i64>,
    shared: &SharedRef,
    name: &str,
) {
    loop {
        let (Ok(starts), Ok(ends)) = (
            admin
                .list_offsets(&with_spec(tps, OffsetSpec::Earliest))
                .await,
            admin
                .list_offsets(&with_spec(tps, OffsetSpec::Latest))
                .await,
        ) else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        for tp in tps {
            let (start, end) = (starts[tp].offset, ends[tp].offset);
            let pos = next.get(tp).copied();
            if pos.is_none_or(|p| p < start || p > end) {
                let to = start;
                if consumer.seek(tp, to).is_ok() {
                    next.insert(tp.clone(), to);
                    let t = Tp {
                        topic: tp.topic.to_string(),
                        partition: tp.partition,
                    };
                    record(
                        shared,
                        Event::Seek {
                            process: name.into(),
                            tp: t,
                            offset: to,
                        },
                    );
                }
            }
        }
        return;
    }
}

fn record_polls(
    shared: &SharedRef,
    name: &str,
    records: Vec<runnel::client::consumer::ConsumerRecord>,
    next: &mut BTreeMap<TopicPartition, i64>,
) {
    let mut by_tp: BTreeMap<Tp, Vec<(i64, String)>> = BTreeMap::new();
    for r in records {
        let tp = Tp {
            topic: r.topic.to_string(),
            partition: r.partition,
        };
        let value = r
            .value
            .as_ref()
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default();
        if !value_ok(&value) {
            record(
                shared,
                Event::Corrupt {
                    process: name.into(),
                    tp: tp.clone(),
                    offset: r.offset,
                    detail: format!("value {value:?}"),
                },
            );
        }
        next.insert(
            TopicPartition::new(r.topic.to_string(), r.partition),
            r.offset + 1,
        );
        by_tp.entry(tp).or_default().push((r.offset, value));
    }
    for (tp, records) in by_tp {
        record(
            shared,
            Event::Poll {
                process: name.into(),
                tp,
                records,
            },
        );
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
            outln!(
                out,
                "PASS ({} acknowledged sends, {} records read, {} anomalies allowed by the promises, {:.1} simulated s)",
                r.verdict.acknowledged,
                r.verdict.records_read,
                r.verdict.allowed.len(),
                r.simulated.as_secs_f64()
            );
            outln!(out, "trace hash: {:016x}", r.trace_hash);
        }
        other => {
            outln!(out, "FAIL: {}", other.summary());
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
