//! Randomness: one seeded generator handed down to whatever needs it.

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use std::sync::{Arc, Mutex};

/// A cloneable handle on one seeded random generator. Clones share the same stream, so the
/// order of draws is the order of calls, which in the simulator is deterministic.
#[derive(Clone)]
pub struct SharedRng {
    /// The generator; a mutex because brokers share it across tasks.
    inner: Arc<Mutex<StdRng>>,
}

impl SharedRng {
    /// A generator whose whole stream is fixed by `seed`.
    pub fn seeded(seed: u64) -> SharedRng {
        SharedRng {
            inner: Arc::new(Mutex::new(StdRng::seed_from_u64(seed))),
        }
    }

    /// A generator seeded from the operating system: for the real broker only.
    pub fn from_os_entropy() -> SharedRng {
        SharedRng {
            inner: Arc::new(Mutex::new(StdRng::from_os_rng())),
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&self) -> u64 {
        self.lock().next_u64()
    }

    /// A uniform draw from `range` (which must not be empty).
    pub fn gen_range(&self, range: std::ops::Range<u64>) -> u64 {
        self.lock().random_range(range)
    }

    /// True with probability `p` (clamped to [0, 1]).
    pub fn gen_bool(&self, p: f64) -> bool {
        self.lock().random_bool(p.clamp(0.0, 1.0))
    }

    /// A new independent generator seeded from this one: gives a subsystem its own stream, so
    /// its draws do not shift everyone else's.
    pub fn fork(&self) -> SharedRng {
        SharedRng::seeded(self.next_u64())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StdRng> {
        // A panic while holding this lock cannot leave the generator in a broken state.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl std::fmt::Debug for SharedRng {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedRng")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let a = SharedRng::seeded(7);
        let b = SharedRng::seeded(7);
        let xs: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(SharedRng::seeded(8).next_u64(), xs[0]);
    }
}
