//! Draining before the poll interval is up, when a burst of new flows has
//! filled the kernel's flow map.
//!
//! The datapath writes to the fallback ring only when the flow map has no
//! room, so a readable ring is the signal: a drain then flips to the empty
//! generation at once, instead of letting the ring (about 7,000 packets a
//! MiB) absorb the rest of the interval and overflow. The ring's wakeups are
//! adaptive (the kernel wakes the reader when it had caught up), so a flood
//! costs one wakeup per drain, and drains are spaced at least
//! [`MIN_GAP`] apart: each flip waits for an RCU grace period.

use std::{
    os::fd::{BorrowedFd, OwnedFd},
    time::Duration,
};

use tokio::{
    io::{Interest, unix::AsyncFd},
    time::Instant,
};

/// Least time between two early drains, as for the shortest poll interval.
pub const MIN_GAP: Duration = crate::config::limits::MIN_POLL_INTERVAL;

/// Readiness of the fallback ring, rate-limited.
pub struct EarlyDrain {
    ring: AsyncFd<OwnedFd>,
    last: Option<Instant>,
}

impl EarlyDrain {
    /// Watches the ring behind `ring` (a duplicate of the descriptor is
    /// registered, so the ring's owner keeps reading it as before).
    ///
    /// # Errors
    /// When the descriptor cannot be duplicated or registered with epoll.
    pub fn watch(ring: BorrowedFd<'_>) -> std::io::Result<Self> {
        let owned = ring.try_clone_to_owned()?;
        // SAFETY: an OwnedFd is open, refers to one file description and
        // returns the same descriptor until it is dropped with the AsyncFd.
        let ring =
            unsafe { AsyncFd::register_with_interest(owned, Interest::READABLE) }.map_err(std::io::Error::from)?;
        Ok(Self { ring, last: None })
    }

    /// Waits until the ring holds records and the last early drain is
    /// [`MIN_GAP`] ago, then runs `drain`, which must empty the ring.
    ///
    /// # Errors
    /// `drain`'s error, or the ring's readiness failing (logged by the caller).
    pub async fn run<E>(&mut self, drain: impl FnOnce() -> Result<(), E>) -> Result<(), EarlyDrainError<E>> {
        let mut guard = self.ring.readable().await.map_err(EarlyDrainError::Ring)?;
        if let Some(last) = self.last {
            tokio::time::sleep_until(last + MIN_GAP).await;
        }
        self.last = Some(Instant::now());
        let drained = drain();
        // Records that arrive after the drain emptied the ring wake the
        // reader again; clear_ready keeps that newer readiness.
        guard.clear_ready();
        drained.map_err(EarlyDrainError::Drain)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EarlyDrainError<E> {
    #[error("waiting for the fallback ring")]
    Ring(#[source] std::io::Error),
    #[error(transparent)]
    Drain(E),
}
