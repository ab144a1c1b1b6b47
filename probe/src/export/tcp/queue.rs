//! The messages waiting for one TCP collector, shared by the sink that
//! fills them and the connection thread that sends them.

use std::{
    collections::VecDeque,
    net::TcpStream,
    sync::{Condvar, Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

use crate::export::{message::Encoded, sink_stats::SinkStats};

/// While closing, connection attempts repeat this often until the deadline.
const CLOSING_RETRY: Duration = Duration::from_millis(200);

/// Messages waiting for the collector, and what became of the others.
#[derive(Default)]
pub(super) struct Queue {
    pub(super) messages: VecDeque<Encoded>,
    pub(super) bytes: usize,
    /// Set by `close`: send until then, then stop.
    pub(super) deadline: Option<Instant>,
    pub(super) stats: SinkStats,
    pub(super) connected: bool,
    /// A handle on the live connection, so `close` can break a write the
    /// collector does not take at the deadline.
    pub(super) live: Option<TcpStream>,
}

impl Queue {
    pub(super) fn push_front(&mut self, m: Encoded) {
        self.bytes += m.bytes.len();
        self.messages.push_front(m);
    }

    pub(super) fn pop_front(&mut self) -> Option<Encoded> {
        let m = self.messages.pop_front()?;
        self.bytes -= m.bytes.len();
        Some(m)
    }
}

pub(super) struct Shared {
    pub(super) queue: Mutex<Queue>,
    pub(super) wake: Condvar,
    /// Most bytes the queue holds.
    pub(super) bound: usize,
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panicking holder cannot leave the queue inconsistent: every
        // update is a few plain assignments.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits `backoff` before the next connection attempt; false once the
    /// close deadline has passed.
    pub(super) fn pause(&self, backoff: Duration) -> bool {
        let q = self.lock();
        if let Some(deadline) = q.deadline {
            drop(q);
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            std::thread::sleep(backoff.min(CLOSING_RETRY).min(deadline - now));
        } else {
            // Woken early by `close`, for a last attempt.
            let _ = self.wake.wait_timeout_while(q, backoff, |q| q.deadline.is_none());
        }
        true
    }
}
