//! What a seed chooses: swarm testing, so every seed runs a different mix of topics, broker
//! settings, clients and faults. Each part draws from its own RNG stream (derived from the
//! seed and the part's name), so changing how one part draws does not shift the others.

use crate::env::{ArmedCrash, CrashPoint};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::fmt;
use std::time::Duration;

/// A topic to create.
#[derive(Debug, Clone)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
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

/// One fault, applied at a time in the fault phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Cut the network between a client host and the broker, both ways.
    Partition {
        client: String,
    },
    /// Restore it.
    Repair {
        client: String,
    },
    /// Hold messages between a client and the broker (delivered on release).
    Hold {
        client: String,
    },
    Release {
        client: String,
    },
    /// Raise the maximum message latency to this many milliseconds (0 restores the default).
    Slow {
        max_latency_ms: u64,
    },
    /// Kill the broker process and start it again (the page cache survives).
    Restart,
    /// Cut the broker's power: unsynced writes are lost or torn; then start it again.
    PowerLoss,
    /// Transient disk I/O errors at this per mille rate (0 turns them off).
    IoErrors {
        per_mille: u32,
    },
    /// The disk is full (or no longer).
    DiskFull {
        full: bool,
    },
    /// Arm a crash at a point of the broker's disk work (mid-append, mid-roll,
    /// mid-checkpoint...): when the broker reaches it, the process dies there, with the power
    /// (unsynced writes lost or torn) or without.
    CrashAt {
        crash: ArmedCrash,
        power: bool,
    },
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Partition { client } => write!(f, "partition {client} <-> broker"),
            Fault::Repair { client } => write!(f, "repair {client} <-> broker"),
            Fault::Hold { client } => write!(f, "hold {client} <-> broker"),
            Fault::Release { client } => write!(f, "release {client} <-> broker"),
            Fault::Slow { max_latency_ms } => write!(f, "max message latency {max_latency_ms} ms"),
            Fault::Restart => write!(f, "restart broker"),
            Fault::PowerLoss => write!(f, "power loss on broker"),
            Fault::IoErrors { per_mille } => write!(f, "disk I/O errors at {per_mille}/1000"),
            Fault::DiskFull { full } => {
                write!(f, "disk {}", if *full { "full" } else { "no longer full" })
            }
            Fault::CrashAt { crash, power } => write!(
                f,
                "arm {} {} the {} {} from here",
                if *power { "power loss" } else { "crash" },
                if crash.after { "after" } else { "before" },
                ordinal(crash.skip + 1),
                crash.point.name()
            ),
        }
    }
}

/// Everything a seed chooses.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub seed: u64,
    pub topics: Vec<TopicSpec>,
    /// Broker settings (`--override` strings).
    pub broker_overrides: Vec<String>,
    pub producers: Vec<ProducerSpec>,
    pub consumers: Vec<ConsumerSpec>,
    /// Torn-write block size of the simulated disk.
    pub block_size: u64,
    /// Chance that a write is synced on its own (random partial syncs).
    pub sync_probability: f64,
    /// Network latency range.
    pub min_latency: Duration,
    pub max_latency: Duration,
    /// How long the workload runs with faults.
    pub fault_phase: Duration,
    /// Faults by time from the start.
    pub faults: Vec<(Duration, Fault)>,
}

/// A RNG stream for one part of the configuration.
fn stream(seed: u64, part: &str) -> StdRng {
    let mut h = seed ^ 0x5eed_5eed_5eed_5eed;
    for b in part.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    StdRng::seed_from_u64(h)
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

        let mut r = stream(seed, "disk+net");
        let block_size = pick(&mut r, &[1, 64, 512, 4096]);
        // Never zero: a real OS writes dirty pages back within seconds, and turmoil's cost grows
        // with the writes left pending.
        let sync_probability = pick(&mut r, &[0.002, 0.01, 0.1]);
        let min_latency = Duration::from_micros(pick(&mut r, &[0, 100, 500]));
        let max_latency = min_latency + Duration::from_micros(pick(&mut r, &[100, 2_000, 10_000]));
        let fault_phase = Duration::from_secs(r.random_range(5..=15));

        let clients: Vec<String> = producers
            .iter()
            .map(|p| p.name.clone())
            .chain(consumers.iter().map(|c| c.name.clone()))
            .collect();
        let mut faults = draw_faults(&mut stream(seed, "nemesis"), &clients, fault_phase);
        faults.extend(draw_crash_points(
            &mut stream(seed, "crash-points"),
            fault_phase,
        ));
        faults.sort_by_key(|(t, _)| *t);
        SimConfig {
            seed,
            topics,
            broker_overrides,
            producers,
            consumers,
            block_size,
            sync_probability,
            min_latency,
            max_latency,
            fault_phase,
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

/// Crashes aimed at points of the broker's disk work, from their own RNG stream (so adding
/// them left every other fault of every seed where it was).
fn draw_crash_points(r: &mut StdRng, phase: Duration) -> Vec<(Duration, Fault)> {
    let phase_ms = phase.as_millis() as u64;
    (0..pick(r, &[0, 0, 1, 1, 2]))
        .map(|_| {
            let at = Duration::from_millis(r.random_range(200..phase_ms));
            let crash = ArmedCrash {
                point: pick(r, &CrashPoint::ALL),
                after: r.random_bool(0.5),
                skip: pick(r, &[0, 0, 1, 3, 10, 30]),
            };
            (
                at,
                Fault::CrashAt {
                    crash,
                    power: r.random_bool(0.5),
                },
            )
        })
        .collect()
}

/// The fault schedule: faults at random times during the fault phase, each undone after a
/// while (partitions repaired, holds released, disk faults turned off).
fn draw_faults(r: &mut StdRng, clients: &[String], phase: Duration) -> Vec<(Duration, Fault)> {
    let mut out = Vec::new();
    let phase_ms = phase.as_millis() as u64;
    let count = r.random_range(0..=8);
    for _ in 0..count {
        let at = Duration::from_millis(r.random_range(200..phase_ms));
        let lasts = Duration::from_millis(r.random_range(50..3_000));
        let client = pick(r, clients);
        let (start, end) = match r.random_range(0..9) {
            0 | 1 => (
                Fault::Partition {
                    client: client.clone(),
                },
                Some(Fault::Repair { client }),
            ),
            2 => (
                Fault::Hold {
                    client: client.clone(),
                },
                Some(Fault::Release { client }),
            ),
            3 => (
                Fault::Slow {
                    max_latency_ms: r.random_range(20..500),
                },
                Some(Fault::Slow { max_latency_ms: 0 }),
            ),
            4 => (Fault::Restart, None),
            5 | 6 => (Fault::PowerLoss, None),
            7 => (
                Fault::IoErrors {
                    per_mille: r.random_range(1..50),
                },
                Some(Fault::IoErrors { per_mille: 0 }),
            ),
            _ => (
                Fault::DiskFull { full: true },
                Some(Fault::DiskFull { full: false }),
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
                "  {} partitions={} {:?}",
                t.name, t.partitions, t.configs
            )?;
        }
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
        writeln!(
            f,
            "disk: block_size={} sync_probability={}; network latency {:?}..{:?}",
            self.block_size, self.sync_probability, self.min_latency, self.max_latency
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
        // partition, repair, hold, release, max (latency), restart, power, disk (io/full x2),
        // arm (crash points).
        assert_eq!(
            seen.len(),
            9,
            "every kind of fault appears in 300 seeds: {seen:?}"
        );
    }
}
