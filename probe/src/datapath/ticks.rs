//! Mapping the datapath's timestamps, jiffies, to `CLOCK_MONOTONIC`.
//!
//! The kernel advances jiffies by whole ticks of exactly `TICK_NSEC`
//! monotonic nanoseconds, counted from a fixed start
//! (`tick_do_update_jiffies64`, kernel/time/tick-sched.c: `last_jiffies_update`
//! steps by `TICK_NSEC`, and it and `tick_next_period` are monotonic
//! times), so jiffy `j` began at `origin + j * tick_ns` for the life of the
//! kernel: neither `CLOCK_MONOTONIC` nor jiffies ever steps. Both numbers
//! are found once, at load, from pairs (jiffies, monotonic ns) that the
//! `vxflow_clock` program reads at one instant.
//!
//! Jiffies never advance early: the tick that starts jiffy `j` runs at or
//! after its nominal time, by the timer interrupt's latency. So when one
//! sample reads `j - 1` at `m0` and the next reads `j` at `m1`, jiffy `j`
//! began within `[m0 - latency, m1]`. Two such starts `n` ticks apart bound
//! the tick length to their widths over `n`; sampling goes on until one
//! `CONFIG_HZ` alone fits (about 30 ms back to back; longer when samples
//! are slow, as under `strace`). The origin is then the smallest
//! `m - j * tick` over the starts: late by the latency and the sampling
//! gap, microseconds back to back, and in any case well under a tick.

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
    #[error("taking a clock sample (running vxflow_clock with BPF_PROG_TEST_RUN)")]
    Sample(#[source] E),
    #[error(
        "the kernel's jiffies did not fit one CONFIG_HZ within {0:?} (too few tick starts seen, or ticks \
         later than {LATENCY_NS} ns); cannot map the datapath's timestamps to time"
    )]
    NoTick(Duration),
}

/// Every `CONFIG_HZ` a Linux architecture offers (the `HZ_*` choices in
/// kernel/Kconfig.hz and the architectures' own Kconfig): each at least 2 %
/// from the next.
const CONFIG_HZ: [u64; 15] = [24, 32, 48, 64, 100, 128, 200, 250, 256, 300, 500, 512, 1000, 1024, 1200];

/// `TICK_NSEC` for `hz`, as include/vdso/jiffies.h computes it.
const fn tick_nsec(hz: u64) -> u64 {
    (1_000_000_000 + hz / 2) / hz
}

/// How late a tick's interrupt may run after its nominal time. A later one
/// gives bounds that fit no `CONFIG_HZ`; sampling then starts over.
const LATENCY_NS: u64 = 200_000;
/// Monotonic time between the first and last tick start used, at least.
const MIN_SPAN_NS: u64 = 30_000_000;

/// Jiffy `jiffies` began within `[lo, hi]` monotonic nanoseconds.
#[derive(Clone, Copy, Debug)]
struct Start {
    jiffies: u64,
    lo: u64,
    hi: u64,
}

impl TickClock {
    /// A clock with known parameters, for tests.
    #[must_use]
    pub const fn new(tick_ns: u64, origin_ns: i128) -> Self {
        Self { tick_ns, origin_ns }
    }

    /// Finds the tick length and origin from samples taken back to back by
    /// `sample`, giving up after `budget` of monotonic time.
    ///
    /// # Errors
    /// When a sample cannot be read or no single `CONFIG_HZ` fits in time.
    pub fn calibrate<E: std::error::Error + 'static>(
        mut sample: impl FnMut() -> Result<Sample, E>,
        budget: Duration,
    ) -> Result<Self, CalibrateError<E>> {
        let mut prev = sample().map_err(CalibrateError::Sample)?;
        let deadline = prev.mono_ns.saturating_add(u64::try_from(budget.as_nanos()).unwrap_or(u64::MAX));
        let mut starts: Vec<Start> = Vec::new();
        loop {
            let s = sample().map_err(CalibrateError::Sample)?;
            if s.jiffies == prev.jiffies + 1 {
                starts.push(Start { jiffies: s.jiffies, lo: prev.mono_ns.saturating_sub(LATENCY_NS), hi: s.mono_ns });
                match fitting_tick(&starts) {
                    Fit::One(tick_ns) => {
                        let origin_ns = starts
                            .iter()
                            .map(|t| i128::from(t.hi) - i128::from(t.jiffies) * i128::from(tick_ns))
                            .min()
                            .unwrap_or_default();
                        return Ok(Self { tick_ns, origin_ns });
                    }
                    Fit::Several => {}
                    // A tick later than LATENCY_NS: its bounds are wrong.
                    Fit::None => starts.clear(),
                }
            }
            prev = s;
            if s.mono_ns > deadline {
                return Err(CalibrateError::NoTick(budget));
            }
        }
    }

    /// The kernel's tick, `TICK_NSEC`.
    #[must_use]
    pub const fn tick_ns(&self) -> u64 {
        self.tick_ns
    }

    /// `CONFIG_HZ` of the running kernel.
    #[must_use]
    pub const fn hz(&self) -> u64 {
        (1_000_000_000 + self.tick_ns / 2) / self.tick_ns
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

/// Which `CONFIG_HZ` ticks the starts allow.
enum Fit {
    One(u64),
    Several,
    None,
}

/// The ticks every pair of `starts` allows: for starts `n` jiffies apart,
/// the tick lies between the closest and the farthest their bounds can be,
/// over `n`. Undecided until the starts span [`MIN_SPAN_NS`].
fn fitting_tick(starts: &[Start]) -> Fit {
    let (Some(first), Some(last)) = (starts.first(), starts.last()) else { return Fit::Several };
    if last.hi.saturating_sub(first.lo) < MIN_SPAN_NS {
        return Fit::Several;
    }
    let (mut lo, mut hi) = (0f64, f64::INFINITY);
    for (i, a) in starts.iter().enumerate() {
        for b in &starts[i + 1..] {
            #[expect(clippy::cast_precision_loss, reason = "tick bounds to well under a part per million")]
            let n = (b.jiffies - a.jiffies) as f64;
            #[expect(clippy::cast_precision_loss, reason = "as above")]
            let (near, far) = (b.lo.saturating_sub(a.hi) as f64, (b.hi - a.lo) as f64);
            lo = lo.max(near / n);
            hi = hi.min(far / n);
        }
    }
    #[expect(clippy::cast_precision_loss, reason = "as above")]
    let mut fits = CONFIG_HZ.iter().map(|&hz| tick_nsec(hz)).filter(|&t| (lo..=hi).contains(&(t as f64)));
    match (fits.next(), fits.next()) {
        (Some(t), None) => Fit::One(t),
        (Some(_), Some(_)) => Fit::Several,
        (None, _) => Fit::None,
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use super::*;

    /// A kernel with `hz` ticking from `origin_ns`, sampled after each of
    /// `steps` in turn (nanoseconds), from `start_ns` on.
    fn fake(hz: u64, origin_ns: i128, start_ns: u64, steps: Vec<u64>) -> impl FnMut() -> Result<Sample, Infallible> {
        let tick = tick_nsec(hz);
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
        -i128::from((1u64 << 32) - 300 * hz) * i128::from(tick_nsec(hz)) + 12_345
    }

    #[test]
    fn finds_the_tick_and_origin_of_common_kernels() {
        for hz in [100, 250, 300, 1000] {
            let o = origin(hz);
            let c = TickClock::calibrate(fake(hz, o, 7_000_000_000, vec![1_700, 2_300, 900]), Duration::from_secs(1))
                .unwrap();
            assert_eq!(c.hz(), hz);
            assert_eq!(c.tick_ns(), tick_nsec(hz));
            // Within one sampling step of the truth, never before it.
            assert!(c.origin_ns >= o && c.origin_ns - o <= 2_300, "hz {hz}: {} vs {o}", c.origin_ns);
            let j = 4_400_000_000;
            let start = u64::try_from(o + i128::from(j) * i128::from(c.tick_ns())).unwrap();
            assert!(c.to_ns(j) >= start && c.to_ns(j) - start <= 2_300);
        }
    }

    #[test]
    fn slow_or_uneven_samples_still_fit() {
        // As under strace or on a loaded node: samples 250 us to 2 ms apart,
        // with a 9 ms pause (two ticks at once) among them.
        for hz in [100, 250, 256, 1000, 1024] {
            let o = origin(hz);
            let steps = vec![250_000, 1_100_000, 9_000_000, 400_000, 2_000_000, 700_000];
            let c = TickClock::calibrate(fake(hz, o, 1_000_000_000, steps), Duration::from_secs(2)).unwrap();
            assert_eq!(c.hz(), hz, "{c:?}");
            assert!(c.origin_ns >= o && c.origin_ns - o <= 2_000_000, "hz {hz}: {}", c.origin_ns - o);
        }
    }

    #[test]
    fn ticks_seen_late_still_name_their_hz() {
        // Each tick's interrupt comes 0 to 45 us late, by tick number: 250
        // Hz must not come out as 256 (or 251), nor 1000 as 1024.
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
            assert!(c.origin_ns >= o && c.origin_ns - o <= 1_000);
        }
    }

    #[test]
    fn gives_up_without_tick_starts() {
        // Samples 100 ms apart: no start is bounded to a tick.
        let err =
            TickClock::calibrate(fake(250, origin(250), 0, vec![100_000_000]), Duration::from_millis(500)).unwrap_err();
        assert!(matches!(err, CalibrateError::NoTick(_)), "{err}");
        // Jiffies that never move.
        let mut t = 0;
        let frozen = move || {
            t += 10_000;
            Ok::<_, Infallible>(Sample { jiffies: 4_294_000_000, mono_ns: t })
        };
        let err = TickClock::calibrate(frozen, Duration::from_secs(1)).unwrap_err();
        assert!(matches!(err, CalibrateError::NoTick(_)), "{err}");
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
