//! The nemesis: applies the seed's faults to hosts and pairs of hosts, crashes brokers that
//! reached an armed crash point, and heals everything at the end of the fault phase. Every
//! crash hands the state checker the ground truth: the durable image of the broker's disk at a
//! power loss, and the image its next process recovers from.

use crate::checks::state::StateChecker;
use crate::cluster::Broker;
use crate::config::{Fault, SimConfig, named_seed};
use crate::history::{Event, Micros};
use crate::journal::JournalRef;
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// What the nemesis has done and not undone yet.
pub struct Nemesis {
    /// Pairs partitioned both ways.
    partitioned: Vec<(String, String)>,
    /// One-way cuts (from, to).
    cut: Vec<(String, String)>,
    /// Pairs whose messages are held.
    held: Vec<(String, String)>,
    /// The node `IsolateLeader` cut off, until it rejoins.
    isolated: Option<usize>,
    /// Paused brokers.
    paused: Vec<String>,
    /// Nodes asked to stop cleanly whose process has not exited yet.
    stopping: Vec<usize>,
    /// Per broker: whether its armed crash point cuts the power.
    armed_power: Vec<bool>,
    /// Per broker: the stream (`crash/<name>`) that decides which unsynced writes a power
    /// loss tears and how.
    crash_rngs: Vec<StdRng>,
}

/// Removes the pair (a, b) from `list`: whether it was there (only a fault that was applied
/// is undone).
fn take(list: &mut Vec<(String, String)>, a: &str, b: &str) -> bool {
    let before = list.len();
    list.retain(|(x, y)| !(x == a && y == b));
    list.len() < before
}

impl Nemesis {
    pub fn new(cfg: &SimConfig) -> Nemesis {
        Nemesis {
            partitioned: Vec::new(),
            cut: Vec::new(),
            held: Vec::new(),
            paused: Vec::new(),
            stopping: Vec::new(),
            isolated: None,
            armed_power: vec![false; cfg.nodes.len()],
            crash_rngs: cfg
                .nodes
                .iter()
                .map(|b| StdRng::seed_from_u64(named_seed(cfg.seed, &format!("crash/{}", b.name))))
                .collect(),
        }
    }

    /// Whether a pair already carries a network fault (turmoil cannot combine holds with
    /// one-way cuts, so a second fault on a busy pair is skipped).
    fn busy(&self, a: &str, b: &str) -> bool {
        let hit = |(x, y): &(String, String)| (x == a && y == b) || (x == b && y == a);
        self.partitioned.iter().any(hit) || self.cut.iter().any(hit) || self.held.iter().any(hit)
    }

    /// Applies one fault and records it.
    pub fn apply(
        &mut self,
        sim: &mut turmoil::Sim<'_>,
        fault: &Fault,
        brokers: &[Broker],
        journal: &JournalRef,
        checker: &mut StateChecker,
    ) {
        let at = sim.elapsed().as_micros() as Micros;
        let index = |host: &str| brokers.iter().position(|b| b.name == host);
        let mut note = String::new();
        match fault {
            Fault::Partition { a, b } | Fault::Hold { a, b } | Fault::Cut { from: a, to: b }
                if self.busy(a, b) =>
            {
                note = " (skipped: the pair already has a network fault)".into();
            }
            Fault::Partition { a, b } => {
                sim.partition(a.as_str(), b.as_str());
                self.partitioned.push((a.clone(), b.clone()));
            }
            Fault::Repair { a, b } => {
                if take(&mut self.partitioned, a, b) {
                    sim.repair(a.as_str(), b.as_str());
                }
            }
            Fault::Cut { from, to } => {
                sim.partition_oneway(from.as_str(), to.as_str());
                self.cut.push((from.clone(), to.clone()));
            }
            Fault::Restore { from, to } => {
                if take(&mut self.cut, from, to) {
                    sim.repair_oneway(from.as_str(), to.as_str());
                }
            }
            Fault::Hold { a, b } => {
                sim.hold(a.as_str(), b.as_str());
                self.held.push((a.clone(), b.clone()));
            }
            Fault::Release { a, b } => {
                if take(&mut self.held, a, b) {
                    sim.release(a.as_str(), b.as_str());
                }
            }
            Fault::Slow { max_latency_ms } => {
                if *max_latency_ms > 0 {
                    sim.set_max_message_latency(Duration::from_millis(*max_latency_ms));
                }
            }
            Fault::Restart { host } => {
                if let Some(i) = index(host) {
                    self.restart(sim, i, brokers, checker);
                }
            }
            Fault::PowerLoss { host } => {
                if let Some(i) = index(host) {
                    self.power_loss(sim, i, brokers, journal, checker, at);
                }
            }
            Fault::Stop { host } => match index(host) {
                Some(i) if *brokers[i].control.run.borrow() => {
                    brokers[i].control.run.send_replace(false);
                    self.stopping.push(i);
                }
                Some(_) => note = " (skipped: stopped already)".into(),
                None => {}
            },
            Fault::Start { host } => {
                if let Some(i) = index(host) {
                    note = self.start(sim, i, brokers, checker);
                }
            }
            Fault::Pause { host } => {
                sim.pause(host.as_str());
                self.paused.push(host.clone());
            }
            Fault::Resume { host } => {
                sim.resume(host.as_str());
                self.paused.retain(|h| h != host);
            }
            Fault::KillLeader { power } => match checker.quorum_leader() {
                Some(i) => {
                    note = format!(" ({})", brokers[i].name);
                    if *power {
                        self.power_loss(sim, i, brokers, journal, checker, at);
                    } else {
                        self.restart(sim, i, brokers, checker);
                    }
                }
                None => note = " (skipped: no leader known)".into(),
            },
            Fault::IsolateLeader => match checker.quorum_leader() {
                Some(i) if self.isolated.is_none() => {
                    let me = brokers[i].name.clone();
                    note = format!(" ({me})");
                    for b in brokers.iter().filter(|b| b.name != me) {
                        if !self.busy(&me, &b.name) {
                            sim.partition(me.as_str(), b.name.as_str());
                            self.partitioned.push((me.clone(), b.name.clone()));
                        }
                    }
                    self.isolated = Some(i);
                }
                Some(_) => note = " (skipped: a node is isolated already)".into(),
                None => note = " (skipped: no leader known)".into(),
            },
            Fault::Rejoin { restart } => {
                if let Some(i) = self.isolated.take() {
                    let me = brokers[i].name.clone();
                    note = format!(" ({me})");
                    if *restart {
                        self.restart(sim, i, brokers, checker);
                    }
                    for b in brokers.iter().filter(|b| b.name != me) {
                        if take(&mut self.partitioned, &me, &b.name) {
                            sim.repair(me.as_str(), b.name.as_str());
                        }
                    }
                }
            }
            Fault::CrashAt { host, crash, power } => {
                if let Some(i) = index(host) {
                    *brokers[i]
                        .switches
                        .armed
                        .lock()
                        .unwrap_or_else(|e| e.into_inner()) = Some(*crash);
                    self.armed_power[i] = *power;
                }
            }
            Fault::IoErrors { host, per_mille } => {
                if let Some(i) = index(host) {
                    brokers[i]
                        .switches
                        .io_error_per_mille
                        .store(*per_mille, Ordering::SeqCst);
                }
            }
            Fault::DiskFull { host, full } => {
                if let Some(i) = index(host) {
                    brokers[i].switches.full.store(*full, Ordering::SeqCst);
                }
            }
        }
        journal.lock().record(
            at,
            Event::Fault {
                description: format!("{fault}{note}"),
            },
        );
    }

    /// Kills broker `i`'s process and starts it again; the page cache (unsynced writes)
    /// survives, so the new process recovers from the live image.
    fn restart(
        &mut self,
        sim: &mut turmoil::Sim<'_>,
        i: usize,
        brokers: &[Broker],
        checker: &mut StateChecker,
    ) {
        let name = brokers[i].name.as_str();
        checker.restarting(i, sim.fs_image(name, true));
        self.resume_if_paused(sim, name);
        self.stopping.retain(|s| *s != i);
        brokers[i].control.stopped.store(false, Ordering::SeqCst);
        sim.bounce(name);
        brokers[i].switches.tripped.store(false, Ordering::SeqCst);
    }

    /// Cuts broker `i`'s power and starts it again: the state checker sees the durable image
    /// at that instant, then the image after unsynced writes were lost or torn.
    fn power_loss(
        &mut self,
        sim: &mut turmoil::Sim<'_>,
        i: usize,
        brokers: &[Broker],
        journal: &JournalRef,
        checker: &mut StateChecker,
        at: Micros,
    ) {
        let name = brokers[i].name.as_str();
        checker.power_loss(i, &sim.fs_image(name, false), at);
        sim.crash_with_rng(name, &mut self.crash_rngs[i]);
        checker.restarting(i, sim.fs_image(name, false));
        self.stopping.retain(|s| *s != i);
        brokers[i].control.stopped.store(false, Ordering::SeqCst);
        journal.lock().record(
            at,
            Event::PowerLoss {
                host: name.to_string(),
            },
        );
        self.resume_if_paused(sim, name);
        sim.bounce(name);
        brokers[i].switches.tripped.store(false, Ordering::SeqCst);
    }

    /// Starts node `i` again if it was stopped: one still stopping is killed first (its
    /// controlled shutdown outlasted the supervisor's patience). Returns a note for the
    /// journal.
    fn start(
        &mut self,
        sim: &mut turmoil::Sim<'_>,
        i: usize,
        brokers: &[Broker],
        checker: &mut StateChecker,
    ) -> String {
        let control = &brokers[i].control;
        if *control.run.borrow() {
            return " (skipped: running)".into();
        }
        control.run.send_replace(true);
        if self.stopping.contains(&i) {
            self.restart(sim, i, brokers, checker);
            " (it was still stopping: killed first)".into()
        } else {
            String::new()
        }
    }

    /// Ends the process of every node that has stopped cleanly since the last step, as its
    /// exit does: the state checker learns the image its next process recovers from, and the
    /// host restarts into a process that waits to be started.
    pub fn exit_if_stopped(
        &mut self,
        sim: &mut turmoil::Sim<'_>,
        brokers: &[Broker],
        journal: &JournalRef,
        checker: &mut StateChecker,
    ) {
        let stopping = std::mem::take(&mut self.stopping);
        for i in stopping {
            if !brokers[i].control.stopped.load(Ordering::SeqCst) {
                self.stopping.push(i);
                continue;
            }
            let at = sim.elapsed().as_micros() as Micros;
            self.restart(sim, i, brokers, checker);
            journal.lock().record(
                at,
                Event::Fault {
                    description: format!("{} stopped cleanly; its process exited", brokers[i].name),
                },
            );
        }
    }

    /// A restarted machine is no longer paused.
    fn resume_if_paused(&mut self, sim: &mut turmoil::Sim<'_>, name: &str) {
        if self.paused.iter().any(|h| h == name) {
            sim.resume(name);
            self.paused.retain(|h| h != name);
        }
    }

    /// Kills every broker that reached its armed crash point there (its disk has refused
    /// everything since) and starts it again, with or without the power.
    pub fn crash_if_tripped(
        &mut self,
        sim: &mut turmoil::Sim<'_>,
        brokers: &[Broker],
        journal: &JournalRef,
        checker: &mut StateChecker,
    ) {
        for (i, b) in brokers.iter().enumerate() {
            if !b.switches.tripped.load(Ordering::SeqCst) {
                continue;
            }
            let at = sim.elapsed().as_micros() as Micros;
            let power = self.armed_power[i];
            if power {
                self.power_loss(sim, i, brokers, journal, checker, at);
            } else {
                self.restart(sim, i, brokers, checker);
            }
            journal.lock().record(
                at,
                Event::Fault {
                    description: format!(
                        "armed {} reached: {} {}",
                        if power { "power loss" } else { "crash" },
                        b.name,
                        if power {
                            "lost power and restarted"
                        } else {
                            "killed and restarted"
                        }
                    ),
                },
            );
        }
    }

    /// Ends every fault: networks repaired, holds released, brokers resumed, latency back to
    /// the seed's, disk faults off, armed crashes disarmed.
    pub fn heal(
        &mut self,
        sim: &mut turmoil::Sim<'_>,
        cfg: &SimConfig,
        brokers: &[Broker],
        checker: &mut StateChecker,
    ) {
        self.isolated = None;
        for i in 0..brokers.len() {
            self.start(sim, i, brokers, checker);
        }
        for (a, b) in self.partitioned.drain(..) {
            sim.repair(a.as_str(), b.as_str());
        }
        for (from, to) in self.cut.drain(..) {
            sim.repair_oneway(from.as_str(), to.as_str());
        }
        for (a, b) in self.held.drain(..) {
            sim.release(a.as_str(), b.as_str());
        }
        for h in self.paused.drain(..) {
            sim.resume(h.as_str());
        }
        sim.set_max_message_latency(cfg.max_latency);
        for b in brokers {
            b.switches.io_error_per_mille.store(0, Ordering::SeqCst);
            b.switches.full.store(false, Ordering::SeqCst);
            *b.switches.armed.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }
}
