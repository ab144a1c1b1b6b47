//! Converting the datapath's timestamps to wall-clock time. The datapath
//! stamps packets with jiffies, which the drain turns into the
//! `CLOCK_MONOTONIC` time at which their tick began (`ticks`): the kernel
//! clock as of the last tick, like `CLOCK_MONOTONIC_COARSE`. The offset is
//! read once per drain, so a clock step (NTP) shows from the next drain on
//! and never reorders the timestamps within one.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid clock id and a valid pointer to a timespec.
    unsafe { libc::clock_gettime(clock, &raw mut ts) };
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}

/// Nanoseconds on `CLOCK_MONOTONIC_COARSE`: the monotonic clock as of the
/// last tick, as the datapath's drained stamps are, so ages and timeouts
/// compare like with like.
#[must_use]
pub fn kernel_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC_COARSE)
}

/// `t` as milliseconds since the Unix epoch.
#[must_use]
pub fn unix_ms(t: SystemTime) -> u64 {
    u64::try_from(t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis()).unwrap_or(u64::MAX)
}

/// Maps kernel-clock nanoseconds to wall-clock time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WallClock {
    /// `CLOCK_REALTIME` minus `CLOCK_MONOTONIC`, in nanoseconds. A stamp is
    /// the start of its tick, so it maps to at most one tick before the
    /// instant it stands for.
    offset_ns: i128,
}

impl WallClock {
    /// Reads both clocks now.
    #[must_use]
    pub fn now() -> Self {
        // Bracket the realtime read with two monotonic reads and use their
        // middle.
        let before = clock_ns(libc::CLOCK_MONOTONIC);
        let real = clock_ns(libc::CLOCK_REALTIME);
        let after = clock_ns(libc::CLOCK_MONOTONIC);
        let mono = before / 2 + after / 2;
        Self { offset_ns: i128::from(real) - i128::from(mono) }
    }

    /// A clock with a fixed offset, for tests.
    #[must_use]
    pub const fn with_offset_ns(offset_ns: i128) -> Self {
        Self { offset_ns }
    }

    /// The wall-clock time of kernel-clock instant `kernel_ns`.
    #[must_use]
    pub fn to_system_time(&self, kernel_ns: u64) -> SystemTime {
        let ns = (i128::from(kernel_ns) + self.offset_ns).max(0);
        UNIX_EPOCH + Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
    }

    /// The kernel-clock time of `unix_ns` (nanoseconds since the epoch), 0
    /// for a time before the kernel clock began.
    #[must_use]
    pub fn to_kernel_ns(&self, unix_ns: i128) -> u64 {
        u64::try_from((unix_ns - self.offset_ns).max(0)).unwrap_or(u64::MAX)
    }

    /// Milliseconds since the Unix epoch (flowStartMilliseconds, IE 152).
    #[must_use]
    pub fn to_unix_ms(&self, kernel_ns: u64) -> u64 {
        let ns = (i128::from(kernel_ns) + self.offset_ns).max(0);
        u64::try_from(ns / 1_000_000).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_with_offset() {
        let c = WallClock::with_offset_ns(1_700_000_000_000_000_000);
        assert_eq!(c.to_unix_ms(5_000_000), 1_700_000_000_005);
    }

    #[test]
    fn real_offset_is_near_now() {
        let c = WallClock::now();
        let ms = c.to_unix_ms(kernel_ns());
        let real = u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap();
        assert!(ms.abs_diff(real) < 1_000, "{ms} vs {real}");
    }
}
