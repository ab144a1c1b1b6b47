//! Pacing of UDP export. UDP has no flow control: a collector's receive
//! buffer (Linux's default holds about 150 datagrams of 1,400 bytes) drops
//! what arrives faster than the collector reads, and the exporter never
//! knows. When many flows end at once (an idle timeout after a burst, or
//! shutdown), vxflow would send thousands of datagrams within a millisecond;
//! nfcapd got 68 % of 100,000 such records on this machine. Sends are spread
//! instead: bursts of at most [`BURST`] messages, at most `per_second` on
//! average. The wait blocks the export, which the kernel's flow map rides
//! out (it keeps counting into the current generation).

use std::time::{Duration, Instant};

/// Messages sent back to back before the rate applies: well inside a
/// default receive buffer.
pub const BURST: f64 = 64.0;

#[derive(Debug)]
pub struct Pacer {
    per_second: f64,
    /// Messages that may go now, up to [`BURST`].
    tokens: f64,
    last: Instant,
}

impl Pacer {
    #[must_use]
    pub fn new(per_second: u32) -> Self {
        Self { per_second: f64::from(per_second.max(1)), tokens: BURST, last: Instant::now() }
    }

    /// Waits, if needed, until one more message may go.
    pub fn wait(&mut self) {
        self.refill();
        if self.tokens < 1.0 {
            std::thread::sleep(Duration::from_secs_f64((1.0 - self.tokens) / self.per_second));
            self.refill();
        }
        self.tokens -= 1.0;
    }

    fn refill(&mut self) {
        let now = Instant::now();
        let earned = now.duration_since(self.last).as_secs_f64() * self.per_second;
        self.tokens = (self.tokens + earned).min(BURST);
        self.last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1,064 messages at 10,000 a second: the first 64 at once, the other
    /// 1,000 over about 100 ms (sleeps only ever run long, and this machine
    /// is shared, so the upper bound is loose).
    #[test]
    fn spreads_sends_at_the_rate_after_a_burst() {
        let mut p = Pacer::new(10_000);
        let started = Instant::now();
        for _ in 0..64 {
            p.wait();
        }
        assert!(started.elapsed() < Duration::from_millis(20), "the burst waited");
        for _ in 0..1_000 {
            p.wait();
        }
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(95), "1,000 messages in {took:?}");
        assert!(took < Duration::from_secs(1), "1,000 messages in {took:?}");
    }
}
