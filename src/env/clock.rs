//! Time: wall-clock milliseconds for record timestamps, and the monotonic clock for timers.

/// The wall clock, as Kafka uses it: milliseconds since the Unix epoch. Record timestamps,
/// time-based segment rolling and time-based retention read it; nothing else should.
pub trait Clock: Send + Sync {
    /// Milliseconds since 1970-01-01T00:00:00Z.
    fn now_ms(&self) -> i64;
}

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        // seam: the one place the real wall clock is read.
        let now = std::time::SystemTime::now();
        match now.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Err(_) => 0,
        }
    }
}

/// A clock that always reads the same value until it is moved: for unit tests of time-based
/// rolling and retention.
#[derive(Debug, Default)]
pub struct ManualClock {
    /// The current reading in milliseconds since the epoch.
    now_ms: std::sync::atomic::AtomicI64,
}

impl ManualClock {
    /// A clock reading `now_ms`.
    pub fn new(now_ms: i64) -> ManualClock {
        ManualClock {
            now_ms: std::sync::atomic::AtomicI64::new(now_ms),
        }
    }

    /// Moves the clock forward (or back) by `delta_ms`.
    pub fn advance(&self, delta_ms: i64) {
        self.now_ms
            .fetch_add(delta_ms, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.now_ms.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Monotonic time for timeouts and intervals. It goes through tokio's clock, which turmoil
/// drives in the simulator and the OS drives in the real broker.
pub fn monotonic_now() -> tokio::time::Instant {
    tokio::time::Instant::now() // seam: tokio's clock is simulated under turmoil
}
