//! At most one log line per interval for a condition that can repeat on
//! every export (a collector that stays unreachable).

use std::time::{Duration, Instant};

/// A once-per-interval gate.
#[derive(Debug)]
pub struct Throttle {
    interval: Duration,
    last: Option<Instant>,
}

impl Throttle {
    #[must_use]
    pub const fn new(interval: Duration) -> Self {
        Self { interval, last: None }
    }

    /// Whether to log now: the first time, then once `interval` has passed.
    pub fn due(&mut self, now: Instant) -> bool {
        let due = self.last.is_none_or(|t| now.duration_since(t) >= self.interval);
        if due {
            self.last = Some(now);
        }
        due
    }
}
