//! runnel's deterministic simulator: runnel's real code on turmoil hosts, through the
//! simulated seam in [`env`], with faults chosen from a seed.
//!
//! - [`env`]: the simulated seam (disk, network, clock).
//! - [`config`]: what a seed chooses: topics, settings, clients, faults.
//! - [`history`]: every client operation, Jepsen-style, and every fault.
//! - [`run`]: one seeded run: hosts, workload, nemesis, verdict.
//! - [`checker`]: the anomalies a history shows.

pub mod checker;
pub mod config;
pub mod env;
pub mod history;
pub mod run;
