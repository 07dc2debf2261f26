//! The broker's only source of time.
//!
//! Broker code never reads `std::time` directly: it asks a [`Clock`]. Wall time
//! is the system clock plus an offset that the simulation can skew or jump per
//! node; monotonic time is tokio's `Instant`, which madsim simulates.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A handle on wall and monotonic time. Cloning shares the offset.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// Added to the system's wall time; changed by clock-skew faults.
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    /// A clock with no offset.
    pub fn new() -> Clock {
        Clock::default()
    }

    /// Wall time in milliseconds since the Unix epoch, offset applied.
    pub fn now_ms(&self) -> u64 {
        let base = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_millis() as i64;
        (base + self.offset_ms.load(Ordering::Relaxed)).max(0) as u64
    }

    /// Monotonic time, for timeouts and intervals; never skewed.
    pub fn instant(&self) -> tokio::time::Instant {
        tokio::time::Instant::now()
    }

    /// The current wall-time offset in milliseconds.
    pub fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::Relaxed)
    }

    /// Sets the wall-time offset (a skew), in milliseconds.
    pub fn set_offset_ms(&self, offset_ms: i64) {
        self.offset_ms.store(offset_ms, Ordering::Relaxed);
    }

    /// Moves wall time by `delta_ms` at once (a jump), forwards or back.
    pub fn jump_ms(&self, delta_ms: i64) {
        self.offset_ms.fetch_add(delta_ms, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_moves_wall_time_only() {
        let clock = Clock::new();
        let before = clock.now_ms();
        clock.set_offset_ms(10_000);
        assert!(clock.now_ms() >= before + 10_000);
        clock.jump_ms(-20_000);
        assert_eq!(clock.offset_ms(), -10_000);
        assert!(clock.now_ms() < before);
    }
}
