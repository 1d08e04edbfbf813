//! The cluster's nodes: one turmoil host each (`broker-1`, ..., and `controller-1`, ... when
//! the controllers run apart), each with its own name, addresses, disk and fault switches,
//! running runnel's real node (broker, controller, or both) on the simulated seam, configured
//! as a Kafka user would: `node.id`, `process.roles`, `listeners`, `controller.quorum.voters`. A broker that fails
//! to start (a disk fault during recovery) is started again, as a supervisor would; `bounce`
//! restarts it. Each start is an *incarnation*: its disk reports and its probe declarations
//! carry it, so the checker knows which process said what.

use crate::config::{SimConfig, named_seed};
use crate::env::{DiskFaults, DiskOwner, DiskSwitches, sim_env};
use crate::journal::JournalRef;
use runnel::config::{BrokerConfig, CliOverrides};
use runnel::env::SharedRng;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

/// Where every broker keeps its data.
pub const DATA_DIR: &str = "/data";

/// What the driver holds of each node.
pub struct Broker {
    pub name: String,
    /// The disk faults the nemesis switches.
    pub switches: Arc<DiskSwitches>,
    /// Starts so far (the next incarnation's number).
    pub starts: Arc<AtomicU32>,
    /// A clean stop, and a start again.
    pub control: Arc<NodeControl>,
}

/// What the nemesis tells a node's process beside faults: to stop cleanly (SIGTERM) and to
/// start again; and what the node says back: that it has stopped.
pub struct NodeControl {
    /// Whether the node should run. Set to false, a running node shuts down cleanly and its
    /// process then does nothing (the nemesis then ends it, as the process exits); a
    /// process started while it is false waits for it before it starts the node.
    pub run: tokio::sync::watch::Sender<bool>,
    /// Set by the node once it has shut down cleanly.
    pub stopped: AtomicBool,
}

impl Default for NodeControl {
    fn default() -> NodeControl {
        NodeControl {
            run: tokio::sync::watch::Sender::new(true),
            stopped: AtomicBool::new(false),
        }
    }
}

/// Adds the seed's nodes to the simulation. Each gets the planted bugs of `disk`, the seed's
/// writeback and fsync latency, and fault switches of its own.
pub fn add_nodes(
    sim: &mut turmoil::Sim<'_>,
    cfg: &SimConfig,
    disk: &DiskFaults,
    journal: &JournalRef,
) -> Vec<Broker> {
    (0..cfg.nodes.len())
        .map(|i| add_node(sim, cfg, i, disk, journal))
        .collect()
}

fn add_node(
    sim: &mut turmoil::Sim<'_>,
    cfg: &SimConfig,
    i: usize,
    disk: &DiskFaults,
    journal: &JournalRef,
) -> Broker {
    let name = cfg.nodes[i].name.clone();
    let broker = Broker {
        name: name.clone(),
        switches: Arc::new(DiskSwitches::default()),
        starts: Arc::new(AtomicU32::new(0)),
        control: Arc::new(NodeControl::default()),
    };
    let mut overrides = cfg.broker_overrides.clone();
    overrides.extend(cfg.node_overrides(i));
    let seed = cfg.seed;
    let faults = DiskFaults {
        fsync_latency: cfg.fsync_latency.clone(),
        writeback: cfg.writeback,
        switches: broker.switches.clone(),
        ..disk.clone()
    };
    let (starts, journal, control) = (
        broker.starts.clone(),
        journal.clone(),
        broker.control.clone(),
    );
    let host = name.clone();
    sim.host(host.as_str(), move || {
        let (overrides, faults, starts, journal, name, control) = (
            overrides.clone(),
            faults.clone(),
            starts.clone(),
            journal.clone(),
            name.clone(),
            control.clone(),
        );
        async move {
            let cli = CliOverrides {
                listen: None,
                advertised: None,
                data_dir: Some(DATA_DIR.into()),
            };
            let (config, _) =
                BrokerConfig::load(None, &overrides, &cli).map_err(|e| e.to_string())?;
            let mut run = control.run.subscribe();
            loop {
                // A node stopped cleanly stays down until it is started again.
                let _ = run.wait_for(|r| *r).await;
                let n = starts.fetch_add(1, Ordering::SeqCst);
                let owner = DiskOwner {
                    journal: journal.clone(),
                    host: i,
                    incarnation: n,
                };
                let env = sim_env(
                    faults.clone(),
                    SharedRng::seeded(named_seed(seed, &format!("broker/{name}/{n}"))),
                    SharedRng::seeded(named_seed(seed, &format!("disk/{name}/{n}"))),
                    Some(owner),
                );
                match runnel::broker::start(env, config.clone()).await {
                    Ok(running) => {
                        let shutdown = running.shutdown_handle();
                        let stopped = running.wait();
                        tokio::pin!(stopped);
                        // (The watch's guard is dropped before the shutdown, whose wait the
                        // nemesis's next write to the watch must not block.)
                        let asked = async {
                            let _ = run.wait_for(|r| !*r).await;
                        };
                        tokio::select! {
                            _ = &mut stopped => {}
                            _ = asked => {
                                tracing::info!("stopping cleanly, as on SIGTERM");
                                let _ = shutdown.send(true);
                                stopped.await;
                                tracing::info!("stopped cleanly");
                                control.stopped.store(true, Ordering::SeqCst);
                                // The process has exited: the nemesis ends what is left of it.
                                std::future::pending::<()>().await;
                            }
                        }
                    }
                    Err(e) => {
                        tracing::info!(error = %e, "broker failed to start; retrying");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }
    });
    broker
}
