//! Mapping the datapath's timestamps, jiffies, to `CLOCK_MONOTONIC`.
//!
//! The kernel advances jiffies by whole ticks of exactly `TICK_NSEC`
//! monotonic nanoseconds, counted from a fixed start
//! (`tick_do_update_jiffies64`, kernel/time/tick-sched.c: `last_jiffies_update`
//! steps by `TICK_NSEC`, and it and `tick_next_period` are monotonic
//! times), so jiffy `j` began at `origin + j * tick_ns` for the life of the
//! kernel: neither `CLOCK_MONOTONIC` nor jiffies ever steps. Both numbers
//! are found once, at load, from pairs (jiffies, monotonic ns) that the
//! `vxflow_clock` program reads at one instant: sampled back to back, the
//! first sample of a new jiffy comes within microseconds of the tick that
//! began it.

use std::time::Duration;

/// Jiffies and `CLOCK_MONOTONIC` nanoseconds read at one instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    pub jiffies: u64,
    pub mono_ns: u64,
}

/// Converts jiffies to the monotonic time at which that tick began.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TickClock {
    /// `TICK_NSEC` of the running kernel: `(1e9 + HZ / 2) / HZ`.
    tick_ns: u64,
    /// Monotonic nanoseconds at jiffy 0 (negative: jiffies start at
    /// `INITIAL_JIFFIES`, five minutes before wrapping 32 bits).
    origin_ns: i128,
}

#[derive(Debug, thiserror::Error)]
pub enum CalibrateError<E: std::error::Error + 'static> {
    #[error("reading the clock sample (running vxflow_clock)")]
    Sample(#[source] E),
    #[error(
        "the kernel's jiffies did not advance in steady ticks within {0:?} (samples too far apart, or no \
         tick on this CPU); cannot map the datapath's timestamps to time"
    )]
    NoSteadyTicks(Duration),
    #[error("the kernel's tick measured {measured_ns} ns, which is no CONFIG_HZ Linux offers")]
    OddTick { measured_ns: u64 },
}

/// Every `CONFIG_HZ` a Linux architecture offers (the `HZ_*` choices in
/// kernel/Kconfig.hz and the architectures' own Kconfig): each at least 2 %
/// from the next, so a tick measured to 1 % names one.
const CONFIG_HZ: [u64; 15] = [24, 32, 48, 64, 100, 128, 200, 250, 256, 300, 500, 512, 1000, 1024, 1200];

/// `TICK_NSEC` for `hz`, as include/vdso/jiffies.h computes it.
const fn tick_nsec(hz: u64) -> u64 {
    (1_000_000_000 + hz / 2) / hz
}

/// Samples further apart than this cannot place a tick's start precisely
/// enough: the boundary between them is not used.
const MAX_GAP_NS: u64 = 50_000;
/// Tick starts found before deciding, at least; the first and last give the
/// tick length.
const BOUNDARIES: usize = 3;
/// Monotonic time the first and last start span, at least: a start seen
/// 50 us late then moves the measured tick by 0.25 %.
const MIN_SPAN_NS: u64 = 20_000_000;

impl TickClock {
    /// A clock with known parameters, for tests.
    #[must_use]
    pub const fn new(tick_ns: u64, origin_ns: i128) -> Self {
        Self { tick_ns, origin_ns }
    }

    /// Finds the tick length and origin from samples taken back to back by
    /// `sample`, for at most `budget` of monotonic time (about 20 ms and
    /// three ticks are enough: 24 ms at `CONFIG_HZ=250`, 30 ms at 100).
    ///
    /// # Errors
    /// When a sample cannot be read, or no steady ticks were seen.
    pub fn calibrate<E: std::error::Error + 'static>(
        mut sample: impl FnMut() -> Result<Sample, E>,
        budget: Duration,
    ) -> Result<Self, CalibrateError<E>> {
        let first = sample().map_err(CalibrateError::Sample)?;
        let deadline = first.mono_ns.saturating_add(u64::try_from(budget.as_nanos()).unwrap_or(u64::MAX));
        let mut prev = first;
        // Tick starts, each as the first sample of its jiffy.
        let mut starts: Vec<Sample> = Vec::new();
        while starts.len() < BOUNDARIES || starts[starts.len() - 1].mono_ns - starts[0].mono_ns < MIN_SPAN_NS {
            let s = sample().map_err(CalibrateError::Sample)?;
            if s.mono_ns > deadline {
                return Err(CalibrateError::NoSteadyTicks(budget));
            }
            // A new jiffy right after a sample of the previous one places
            // its tick's start; after several ticks at once (a catch-up
            // after idle) or a long gap (the sampler was preempted) it does
            // not, and is skipped.
            if s.jiffies == prev.jiffies + 1 && s.mono_ns.saturating_sub(prev.mono_ns) <= MAX_GAP_NS {
                starts.push(s);
            }
            prev = s;
        }
        let (a, b) = (starts[0], starts[starts.len() - 1]);
        let measured_ns = (b.mono_ns - a.mono_ns) / (b.jiffies - a.jiffies);
        // A tick is seen late by the timer interrupt's latency (tens of
        // microseconds in a VM), so the measured length is only within a
        // percent or so; it picks the one `CONFIG_HZ` it can be. Exactness
        // matters: a stamp's error grows by the tick's error every tick.
        let tick_ns = CONFIG_HZ
            .iter()
            .map(|&hz| tick_nsec(hz))
            .find(|&tick| measured_ns.abs_diff(tick) <= tick / 100)
            .ok_or(CalibrateError::OddTick { measured_ns })?;
        // Each start is at or after its tick's true start; the earliest
        // estimate is the best.
        let origin_ns = starts
            .iter()
            .map(|s| i128::from(s.mono_ns) - i128::from(s.jiffies) * i128::from(tick_ns))
            .min()
            .unwrap_or_default();
        Ok(Self { tick_ns, origin_ns })
    }

    /// The kernel's tick, `TICK_NSEC`.
    #[must_use]
    pub const fn tick_ns(&self) -> u64 {
        self.tick_ns
    }

    /// `CONFIG_HZ` of the running kernel.
    #[must_use]
    pub const fn hz(&self) -> u64 {
        1_000_000_000 / self.tick_ns
    }

    /// Monotonic nanoseconds at which jiffy `jiffies` began.
    #[must_use]
    pub fn to_ns(&self, jiffies: u64) -> u64 {
        let ns = self.origin_ns + i128::from(jiffies) * i128::from(self.tick_ns);
        u64::try_from(ns.max(0)).unwrap_or(u64::MAX)
    }

    /// The datapath's view of a flow, with its times converted.
    #[must_use]
    pub fn stats(&self, s: &vxflow_common::DatapathStats) -> vxflow_common::FlowStats {
        vxflow_common::FlowStats {
            packets: s.packets,
            bytes: s.bytes,
            outer_bytes: s.outer_bytes,
            first_seen_ns: self.to_ns(s.first_seen_jiffies),
            last_seen_ns: self.to_ns(s.last_seen_jiffies),
            tcp_flags: s.tcp_flags,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use super::*;

    /// A kernel with `hz` ticking from `origin_ns`, sampled every `step_ns`
    /// (plus `jitter` pattern), starting at `start_ns`.
    fn fake(hz: u64, origin_ns: i128, start_ns: u64, steps: Vec<u64>) -> impl FnMut() -> Result<Sample, Infallible> {
        let tick = (1_000_000_000 + hz / 2) / hz;
        let mut t = start_ns;
        let mut i = 0;
        move || {
            t += steps[i % steps.len()];
            i += 1;
            let jiffies = u64::try_from((i128::from(t) - origin_ns) / i128::from(tick)).unwrap();
            Ok(Sample { jiffies, mono_ns: t })
        }
    }

    /// Jiffies as Linux starts them: five minutes before 2^32.
    fn origin(hz: u64) -> i128 {
        let tick = (1_000_000_000 + hz / 2) / hz;
        -i128::from((1u64 << 32) - 300 * hz) * i128::from(tick) + 12_345
    }

    #[test]
    fn finds_the_tick_and_origin_of_common_kernels() {
        for hz in [100, 250, 300, 1000] {
            let o = origin(hz);
            let c = TickClock::calibrate(fake(hz, o, 7_000_000_000, vec![1_700, 2_300, 900]), Duration::from_secs(1))
                .unwrap();
            assert_eq!(c.hz(), hz);
            assert_eq!(c.tick_ns(), (1_000_000_000 + hz / 2) / hz);
            // Within one sampling step of the truth, never before it.
            assert!(c.origin_ns >= o && c.origin_ns - o <= 2_300, "hz {hz}: {} vs {o}", c.origin_ns);
            let j = 4_400_000_000;
            let start = u64::try_from(o + i128::from(j) * i128::from(c.tick_ns())).unwrap();
            assert!(c.to_ns(j) >= start && c.to_ns(j) - start <= 2_300);
        }
    }

    #[test]
    fn a_gap_or_a_catch_up_is_not_used() {
        let o = origin(250);
        // Samples 1 us apart, but for a 100 us gap and a 9 ms pause (two or
        // three ticks at once) early on: the starts after them are skipped.
        let mut steps = vec![1_000; 20_000];
        steps[3_000] = 100_000;
        steps[6_000] = 9_000_000;
        let c = TickClock::calibrate(fake(250, o, 1_000_000_000, steps), Duration::from_secs(2)).unwrap();
        assert_eq!(c.hz(), 250);
        assert!(c.origin_ns >= o && c.origin_ns - o <= 1_000);
    }

    #[test]
    fn ticks_seen_late_still_name_their_hz() {
        // Each tick's interrupt comes 0 to 45 us late, by tick number, so
        // the tick measured over two of them is off by up to 0.6 %: 250 Hz
        // must not come out as 251.
        for hz in [250, 1000] {
            let tick = tick_nsec(hz);
            let o = origin(hz);
            let mut t = 3_000_000_000u64;
            let sample = move || {
                t += 1_000;
                let nominal = u64::try_from((i128::from(t) - o) / i128::from(tick)).unwrap();
                let late = (nominal % 4) * 15_000;
                let since = u64::try_from((i128::from(t) - o) % i128::from(tick)).unwrap();
                let jiffies = if since < late { nominal - 1 } else { nominal };
                Ok::<_, Infallible>(Sample { jiffies, mono_ns: t })
            };
            let c = TickClock::calibrate(sample, Duration::from_secs(1)).unwrap();
            assert_eq!(c.hz(), hz);
            assert!(c.origin_ns >= o && c.origin_ns - o <= 1_000 + 45_000);
        }
    }

    #[test]
    fn gives_up_when_ticks_never_show() {
        // Samples 6 ms apart: every boundary is too far from its samples.
        let err =
            TickClock::calibrate(fake(250, origin(250), 0, vec![6_000_000]), Duration::from_millis(200)).unwrap_err();
        assert!(matches!(err, CalibrateError::NoSteadyTicks(_)), "{err}");
    }

    #[test]
    fn converts_stats() {
        let c = TickClock::new(4_000_000, -1_000);
        let s = vxflow_common::DatapathStats {
            packets: 3,
            bytes: 180,
            outer_bytes: 0,
            first_seen_jiffies: 10,
            last_seen_jiffies: 12,
            tcp_flags: 2,
        };
        let f = c.stats(&s);
        assert_eq!((f.packets, f.bytes, f.tcp_flags), (3, 180, 2));
        assert_eq!((f.first_seen_ns, f.last_seen_ns), (39_999_000, 47_999_000));
        assert_eq!(c.to_ns(0), 0, "times before the clock's zero clamp to it");
    }
}
