//! IPFIX over TCP (RFC 7011 10.4) to one collector.
//!
//! A thread per collector owns the connection, so a collector that is slow,
//! down or unreachable never stalls the datapath or the other collectors:
//! `write` only encodes and queues. The thread connects, backing off from
//! 1 s to 30 s between attempts, and on every connection sends each template
//! and options template first, then the queue in order. A connection is a
//! new stream, so its sequence numbers start at zero; the thread writes them
//! (and the export time) into each message as it leaves.
//!
//! The queue is bounded in bytes (`buffer_bytes`): a message that does not
//! fit is counted as not sent, and the exporting-process reliability options
//! report it. Every connection leaves from the same local address and port,
//! so the datapath can leave the probe's own export traffic out by its exact
//! tuple.
//!
//! TCP acknowledges bytes, not messages: what the kernel accepted before the
//! collector vanished without closing (a host crash, a cut cable) can be lost
//! unnoticed. A collector that closes its end is noticed before the next
//! write, and within a second when idle.

use std::{
    io,
    net::SocketAddr,
    sync::{Arc, Condvar, Mutex},
    thread::JoinHandle,
    time::{Duration, Instant, SystemTime},
};

use socket2::{Domain, Socket, Type};
use vxflow_common::user::SocketTuple;

use super::{
    ExportContext, RecordSink, SinkError,
    collector::Collector,
    collector::Protocol,
    encode::{Batch, Encode, encoder},
    ipfix,
    message::Encoded,
    sink_stats::SinkStats,
    throttle::Throttle,
};
use crate::{
    clock::{WallClock, unix_ms},
    record::FlowRecord,
};

mod connection;
mod queue;

use self::{
    connection::{connection_loop, source_address},
    queue::{Queue, Shared},
};

/// How long `close` lets the queue drain to the collector.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

const ERROR_LOG_INTERVAL: Duration = Duration::from_mins(1);

pub struct TcpSink {
    collector: Collector,
    /// IPFIX, the one protocol RFC 7011 defines over TCP.
    encoder: Box<dyn Encode>,
    local: SocketAddr,
    /// Holds the local port between connections, so every connection has
    /// the tuple the datapath excludes.
    _reservation: Socket,
    shared: Arc<Shared>,
    /// The template messages every connection starts with, until the
    /// thread starts and takes them.
    templates: Option<Vec<Encoded>>,
    thread: Option<JoinHandle<()>>,
    options_sent: Option<Instant>,
    overflow_log: Throttle,
}

impl TcpSink {
    /// Picks the local address and port and starts the connection thread.
    ///
    /// # Errors
    /// When no socket can be opened, no route leads to the collector, or the
    /// MTU is too small.
    pub fn new(collector: Collector, domain_id: u32) -> Result<Self, SinkError> {
        let name = collector.name.clone();
        let socket_err = |source| SinkError::Socket { collector: name.clone(), source };
        let mut encoder = encoder(Protocol::Ipfix, domain_id, collector.mtu, collector.engine)
            .map_err(|source| SinkError::Encoder { collector: collector.name.clone(), source })?;
        let local_ip = source_address(collector.address).map_err(socket_err)?;
        let reservation =
            Socket::new(Domain::for_address(collector.address), Type::STREAM, None).map_err(socket_err)?;
        reservation.set_reuse_address(true).map_err(socket_err)?;
        reservation.bind(&SocketAddr::new(local_ip, 0).into()).map_err(socket_err)?;
        let local = reservation
            .local_addr()
            .map_err(socket_err)?
            .as_socket()
            .ok_or_else(|| socket_err(io::Error::other("local address is not IP")))?;
        let batch = Batch {
            records: &[],
            clock: &WallClock::now(),
            now: SystemTime::UNIX_EPOCH,
            templates: true,
            options: None,
            sampling: 1,
            metadata: None,
        };
        let templates = encoder.encode(&batch).messages;
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            bound: collector.buffer_bytes,
        });
        tracing::info!(collector = %collector, source = %local, domain_id, buffer_bytes = collector.buffer_bytes, "exporting");
        Ok(Self {
            collector,
            encoder,
            local,
            _reservation: reservation,
            shared,
            templates: Some(templates),
            thread: None,
            options_sent: None,
            overflow_log: Throttle::new(ERROR_LOG_INTERVAL),
        })
    }

    #[must_use]
    pub fn stats(&self) -> SinkStats {
        self.shared.lock().stats
    }

    /// Whether a connection is up now.
    #[must_use]
    pub fn connected(&self) -> bool {
        self.shared.lock().connected
    }

    /// Bytes waiting for the collector.
    #[must_use]
    pub fn queued_bytes(&self) -> usize {
        self.shared.lock().bytes
    }

    /// Starts the connection thread, at the first write: by then the
    /// datapath excludes the export's tuple, so not one export packet is
    /// accounted.
    fn start(&mut self) {
        let Some(templates) = self.templates.take() else { return };
        let (shared, collector, local) = (Arc::clone(&self.shared), self.collector.clone(), self.local);
        match std::thread::Builder::new()
            .name("vxflow-tcp-export".into())
            .spawn(move || connection_loop(&shared, &collector, local, &templates, ipfix::restamp))
        {
            Ok(thread) => self.thread = Some(thread),
            // Records then stay in the buffer and, past it, are counted as not sent.
            Err(error) => tracing::error!(collector = %self.collector, %error, "cannot start the export thread"),
        }
    }

    /// Sets the flush deadline (once) and wakes the thread.
    fn begin_stop(&self) -> Instant {
        let deadline = *self.shared.lock().deadline.get_or_insert_with(|| Instant::now() + FLUSH_TIMEOUT);
        self.shared.wake.notify_all();
        deadline
    }

    fn stop(&mut self) {
        let Some(thread) = self.thread.take() else { return };
        let deadline = self.begin_stop();
        while !thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if !thread.is_finished() {
            // Blocked in a write a collector that reads nothing never
            // completes: break the connection, so the deadline holds.
            if let Some(live) = self.shared.lock().live.take() {
                let _ = live.shutdown(std::net::Shutdown::Both);
            }
        }
        if thread.join().is_err() {
            tracing::error!(collector = %self.collector, "the export thread panicked");
        }
    }
}

impl RecordSink for TcpSink {
    /// Never fails and never blocks on the network: what does not fit in
    /// the buffer is counted and logged.
    fn write(&mut self, records: &[FlowRecord], ctx: &mut ExportContext<'_>) -> io::Result<()> {
        self.start();
        let now = Instant::now();
        let options_due =
            ctx.last || self.options_sent.is_none_or(|t| now.duration_since(t) >= self.collector.template_refresh);
        if records.is_empty() && !options_due {
            return Ok(());
        }
        let values = options_due.then(|| ctx.option_values(self.shared.lock().stats.not_sent));
        let wall = unix_ms(SystemTime::now());
        let batch = Batch {
            records,
            clock: &ctx.clock,
            now: SystemTime::now(),
            templates: false,
            options: values.as_ref(),
            sampling: ctx.sampling,
            metadata: Some(ctx.metadata),
        };
        let messages = self.encoder.encode(&batch).messages;
        if options_due {
            self.options_sent = Some(now);
        }
        let mut q = self.shared.lock();
        let mut overflowed = 0u64;
        for m in messages {
            if q.bytes + m.bytes.len() > self.shared.bound {
                overflowed += u64::from(m.records);
                q.stats.count_not_sent(&m, wall);
            } else {
                q.bytes += m.bytes.len();
                q.messages.push_back(m);
            }
        }
        let (failed, connected) = (q.stats.not_sent.flows, q.connected);
        drop(q);
        self.shared.wake.notify_all();
        if overflowed > 0 && self.overflow_log.due(now) {
            tracing::warn!(
                collector = %self.collector,
                connected,
                buffer_bytes = self.shared.bound,
                records_failed = failed,
                "the collector's buffer is full: records are counted as not sent; raise buffer_bytes \
                 or bring the collector back"
            );
        }
        Ok(())
    }

    fn begin_close(&mut self) {
        if self.thread.is_some() {
            self.begin_stop();
        }
    }

    fn close(&mut self) {
        self.stop();
    }

    fn own_sockets(&self) -> Vec<SocketTuple> {
        vec![SocketTuple { protocol: 6, local: self.local, remote: self.collector.address }]
    }

    fn stats(&self) -> Option<SinkStats> {
        Some(TcpSink::stats(self))
    }

    fn log_stats(&self) {
        self.stats().log(&self.collector);
    }
}

impl Drop for TcpSink {
    fn drop(&mut self) {
        self.stop();
    }
}
