//! sysUptime for NetFlow v5 and v9: milliseconds since an epoch the exporter
//! picks. A u32 of milliseconds wraps after 49.7 days, and collectors date a
//! flow as `unix_secs - (sysUptime - FIRST_SWITCHED)`, which breaks if a
//! record straddles a wrap. So the epoch starts a day back (every flow in an
//! export started after it) and moves forward before uptime reaches 2^31 ms.

/// Uptime past which the epoch is moved forward.
const REBASE_AFTER_MS: u64 = 1 << 31;
/// How far back an epoch is set: longer than any record's span.
const MARGIN_MS: u64 = 24 * 3600 * 1000;

#[derive(Debug, Default)]
pub struct Uptime {
    epoch_ms: Option<u64>,
}

impl Uptime {
    /// The epoch to use for an export at wall-clock `now_ms`, moving it when due.
    pub fn epoch(&mut self, now_ms: u64) -> u64 {
        match self.epoch_ms {
            Some(e) if now_ms.saturating_sub(e) < REBASE_AFTER_MS => e,
            _ => {
                let e = now_ms.saturating_sub(MARGIN_MS);
                self.epoch_ms = Some(e);
                e
            }
        }
    }

    /// `wall_ms` as milliseconds since `epoch`.
    #[must_use]
    pub fn since(epoch: u64, wall_ms: u64) -> u32 {
        u32::try_from(wall_ms.saturating_sub(epoch)).unwrap_or(u32::MAX)
    }
}
