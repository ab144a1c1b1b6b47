//! Watches the datapath's fallback and loss counters and decides when to tell
//! the operator: the first time either rises, then at most once per interval,
//! with the counts since the previous report. Pure: the daemon logs.

use std::time::{Duration, Instant};

use vxflow_common::Counter;

use crate::drain::CounterSnapshot;

/// What rose since the previous report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pressure {
    /// Packets that found the flow map full and took the fallback ring.
    pub fallback_packets: u64,
    /// Packets that found the ring full too, and their IP bytes.
    pub lost_packets: u64,
    pub lost_bytes: u64,
}

pub struct PressureWatch {
    interval: Duration,
    reported: CounterSnapshot,
    last_report: Option<Instant>,
}

impl PressureWatch {
    #[must_use]
    pub fn new(interval: Duration) -> Self {
        Self { interval, reported: CounterSnapshot::default(), last_report: None }
    }

    /// Looks at the counters now; returns what to report, if anything is due.
    pub fn observe(&mut self, now: Instant, counters: &CounterSnapshot) -> Option<Pressure> {
        if self.last_report.is_some_and(|t| now.duration_since(t) < self.interval) {
            return None;
        }
        let rise = |c| counters.get(c).saturating_sub(self.reported.get(c));
        let pressure = Pressure {
            fallback_packets: rise(Counter::Fallback),
            lost_packets: rise(Counter::Lost),
            lost_bytes: rise(Counter::LostBytes),
        };
        if pressure.fallback_packets == 0 && pressure.lost_packets == 0 {
            return None;
        }
        self.reported = counters.clone();
        self.last_report = Some(now);
        Some(pressure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(fallback: u64, lost: u64) -> CounterSnapshot {
        let mut s = CounterSnapshot::default();
        s.set(Counter::Fallback, fallback);
        s.set(Counter::Lost, lost);
        s.set(Counter::LostBytes, lost * 100);
        s
    }

    #[test]
    fn reports_first_rise_then_at_most_once_per_interval_with_totals() {
        let t0 = Instant::now();
        let mut w = PressureWatch::new(Duration::from_mins(1));
        assert_eq!(w.observe(t0, &snap(0, 0)), None, "quiet: nothing to say");
        let first = w.observe(t0 + Duration::from_secs(1), &snap(5, 0)).unwrap();
        assert_eq!((first.fallback_packets, first.lost_packets), (5, 0));
        assert_eq!(w.observe(t0 + Duration::from_secs(30), &snap(9, 2)), None, "rate limited");
        let next = w.observe(t0 + Duration::from_secs(61), &snap(12, 3)).unwrap();
        assert_eq!(next, Pressure { fallback_packets: 7, lost_packets: 3, lost_bytes: 300 });
        assert_eq!(w.observe(t0 + Duration::from_secs(200), &snap(12, 3)), None, "no rise: nothing to say");
    }
}
