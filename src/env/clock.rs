//! Wall-clock and monotonic time. Under madsim both are virtual (madsim overrides
//! `clock_gettime`), so reading them here is deterministic in the simulator.

#![allow(clippy::disallowed_methods)] // seam-ok: this is the seam's clock

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A clock with an adjustable skew, so the simulator can model nodes whose wall clocks
/// disagree. Monotonic time is never skewed: timeouts must not jump.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    skew_ms: Arc<AtomicI64>,
}

impl Clock {
    pub fn system() -> Self {
        Self::default()
    }

    /// Monotonic time, for deadlines and durations.
    pub fn now(&self) -> Instant {
        Instant::now()
    }

    /// Wall-clock time (with the injected skew), for TTLs, expiry and timestamps.
    pub fn wall(&self) -> SystemTime {
        let skew_ms = self.skew_ms.load(Ordering::Relaxed);
        let now = SystemTime::now();
        if skew_ms >= 0 {
            now + Duration::from_millis(skew_ms as u64)
        } else {
            now - Duration::from_millis(skew_ms.unsigned_abs())
        }
    }

    /// Seconds since the Unix epoch of [`Clock::wall`].
    pub fn unix_seconds(&self) -> i64 {
        self.unix_millis() / 1000
    }

    pub fn unix_millis(&self) -> i64 {
        match self.wall().duration_since(UNIX_EPOCH) {
            Ok(elapsed) => elapsed.as_millis() as i64,
            Err(before) => -(before.duration().as_millis() as i64),
        }
    }

    /// Nanoseconds since the Unix epoch of [`Clock::wall`] (audit timestamps).
    pub fn unix_nanos(&self) -> i128 {
        match self.wall().duration_since(UNIX_EPOCH) {
            Ok(elapsed) => elapsed.as_nanos() as i128,
            Err(before) => -(before.duration().as_nanos() as i128),
        }
    }

    /// Set the skew of this node's wall clock (simulation fault injection).
    pub fn set_skew_ms(&self, skew_ms: i64) {
        self.skew_ms.store(skew_ms, Ordering::Relaxed);
    }
}
