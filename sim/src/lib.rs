//! runnel's deterministic simulator: runnel's real code on turmoil hosts, through the
//! simulated seam in [`env`], with faults chosen from a seed.
//!
//! - [`env`]: the simulated seam (disk, network, clock), reporting every disk operation.
//! - [`config`]: what a seed chooses: brokers, topics, settings, clients, faults.
//! - [`cluster`]: the broker hosts.
//! - [`workload`]: the setup client, producers and consumers.
//! - [`nemesis`]: faults applied to hosts and pairs of hosts; crashes with their ground truth.
//! - [`journal`]: what hosts report to the driver: history, observations, the trace.
//! - [`history`]: every client operation, Jepsen-style, and every fault.
//! - [`checks`]: the history checker, the state checker and the durable-image checks.
//! - [`run`]: one seeded run: the driver loop, the verdict, the report.

pub mod checks;
pub mod cluster;
pub mod config;
pub mod env;
pub mod history;
pub mod journal;
pub mod nemesis;
pub mod run;
pub mod workload;
