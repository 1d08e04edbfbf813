//! The I/O seam: everything runnel does that is not pure logic goes through these traits.
//!
//! A component is handed an [`Env`] when it is built. The real implementations here talk to the
//! operating system; the simulator (`sim/`, crate `runnel-sim`) implements the same traits on
//! turmoil's simulated hosts, network and filesystem. Nothing switches between the two worlds at
//! compile time: both are built in every build and chosen when the `Env` is constructed.
//!
//! Determinism rules for code under the seam: no real clock (use [`Clock`] for wall-clock
//! timestamps and [`monotonic_now`] / `tokio::time` for timers), no threads, no unseeded
//! randomness (use [`SharedRng`]), and no hash-ordered iteration that reaches the outside.

pub mod clock;
pub mod disk;
pub mod mem;
pub mod net;
pub mod probe;
pub mod rng;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use clock::{Clock, SystemClock, monotonic_now};
pub use disk::{Disk, DiskFile, FileMode, RealDisk};
pub use mem::MemDisk;
pub use net::{Connection, Listener, Network, RealNetwork};
pub use probe::{NoProbe, PlantedBugs, Probe, ProbeEvent};
pub use rng::SharedRng;

/// A boxed, sendable future: what the seam's asynchronous methods return, so the traits stay
/// object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The four capabilities a component may use to touch the world.
#[derive(Clone)]
pub struct Env {
    /// Files and directories.
    pub disk: Arc<dyn Disk>,
    /// Listening and connecting.
    pub net: Arc<dyn Network>,
    /// Wall-clock time for record timestamps and time-based retention.
    pub clock: Arc<dyn Clock>,
    /// The one random source handed down to everything that needs randomness.
    pub rng: SharedRng,
    /// Where storage declares its state (the simulator checks it; nobody listens in the real
    /// world).
    pub probe: Arc<dyn Probe>,
}

impl Env {
    /// The real world: the operating system's filesystem, TCP and clock, and a random seed drawn
    /// from the OS.
    pub fn real() -> Env {
        Env {
            disk: Arc::new(RealDisk),
            net: Arc::new(RealNetwork),
            clock: Arc::new(SystemClock),
            rng: SharedRng::from_os_entropy(),
            probe: Arc::new(NoProbe),
        }
    }

    /// The real network and clock over a given disk, with a fixed seed: for tests of the log
    /// and the broker that want a repeatable run on a [`MemDisk`] or a temp dir.
    pub fn with_disk(disk: Arc<dyn Disk>, seed: u64) -> Env {
        Env {
            disk,
            net: Arc::new(RealNetwork),
            clock: Arc::new(SystemClock),
            rng: SharedRng::seeded(seed),
            probe: Arc::new(NoProbe),
        }
    }
}
