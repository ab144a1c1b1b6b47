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
    collections::VecDeque,
    io::{self, Write as _},
    net::{SocketAddr, TcpStream, UdpSocket},
    os::fd::AsRawFd as _,
    sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError},
    thread::JoinHandle,
    time::{Duration, Instant, SystemTime},
};

use socket2::{Domain, SockRef, Socket, Type};
use vxflow_common::user::SocketTuple;

use super::{
    ExportContext, RecordSink, collector::Collector, ipfix::IpfixEncoder, message::Encoded, sink_stats::SinkStats,
    throttle::Throttle, udp::SinkError,
};
use crate::{
    clock::{WallClock, unix_ms},
    record::FlowRecord,
};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A collector that takes no bytes for this long is treated as gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
const MIN_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// While closing, connection attempts repeat this often until the deadline.
const CLOSING_RETRY: Duration = Duration::from_millis(200);
/// How long `close` lets the queue drain to the collector.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// How often an idle connection checks that the collector is still there.
const IDLE_CHECK: Duration = Duration::from_secs(1);
const ERROR_LOG_INTERVAL: Duration = Duration::from_mins(1);

/// Messages waiting for the collector, and what became of the others.
#[derive(Default)]
struct Queue {
    messages: VecDeque<Encoded>,
    bytes: usize,
    /// Set by `close`: send until then, then stop.
    deadline: Option<Instant>,
    stats: SinkStats,
    connected: bool,
    /// A handle on the live connection, so `close` can break a write the
    /// collector does not take at the deadline.
    live: Option<TcpStream>,
}

impl Queue {
    fn push_front(&mut self, m: Encoded) {
        self.bytes += m.bytes.len();
        self.messages.push_front(m);
    }

    fn pop_front(&mut self) -> Option<Encoded> {
        let m = self.messages.pop_front()?;
        self.bytes -= m.bytes.len();
        Some(m)
    }
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    /// Most bytes the queue holds.
    bound: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panicking holder cannot leave the queue inconsistent: every
        // update is a few plain assignments.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits `backoff` before the next connection attempt; false once the
    /// close deadline has passed.
    fn pause(&self, backoff: Duration) -> bool {
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

pub struct TcpSink {
    collector: Collector,
    encoder: IpfixEncoder,
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
        let mut encoder = IpfixEncoder::new(domain_id, collector.mtu)
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
        let templates = encoder.encode(&[], &WallClock::now(), 0, true, None);
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
            .spawn(move || connection_loop(&shared, &collector, local, &templates))
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
        let secs = u32::try_from(wall / 1000).unwrap_or(u32::MAX);
        let messages = self.encoder.encode(records, &ctx.clock, secs, false, values.as_ref());
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

/// The address the kernel would send from to reach `remote`: a connected
/// UDP socket asks the routing table without sending anything.
fn source_address(remote: SocketAddr) -> io::Result<std::net::IpAddr> {
    let any: SocketAddr = if remote.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" }
        .parse()
        .unwrap_or_else(|_| unreachable!("literal addresses"));
    let probe = UdpSocket::bind(any)?;
    probe.connect(remote)?;
    Ok(probe.local_addr()?.ip())
}

/// The thread: connect, serve, reconnect, until closed; then count what is
/// left as not sent.
fn connection_loop(shared: &Shared, collector: &Collector, local: SocketAddr, templates: &[Encoded]) {
    let mut backoff = MIN_BACKOFF;
    let mut error_log = Throttle::new(ERROR_LOG_INTERVAL);
    loop {
        // While closing, no attempt may outlast the deadline.
        let timeout = match shared.lock().deadline {
            Some(deadline) => CONNECT_TIMEOUT.min(deadline.saturating_duration_since(Instant::now())),
            None => CONNECT_TIMEOUT,
        };
        if timeout.is_zero() {
            break;
        }
        match connect(local, collector.address, timeout) {
            Ok(stream) => {
                backoff = MIN_BACKOFF;
                tracing::info!(collector = %collector, source = %local, "connected to collector");
                {
                    let mut q = shared.lock();
                    q.connected = true;
                    q.live = stream.try_clone().ok();
                }
                let outcome = serve(shared, &stream, templates);
                {
                    let mut q = shared.lock();
                    q.connected = false;
                    q.live = None;
                }
                match outcome {
                    Ok(()) => break,
                    Err(error) => {
                        let mut q = shared.lock();
                        q.stats.send_errors += 1;
                        let queued = q.messages.len();
                        drop(q);
                        tracing::warn!(
                            collector = %collector,
                            %error,
                            queued_messages = queued,
                            "lost the connection to the collector; reconnecting, records wait in the buffer"
                        );
                        // Reset, not FIN: what was in flight is resent on the
                        // next connection, and no TIME_WAIT holds our port.
                        let _ = SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                    }
                }
            }
            Err(error) => {
                if error_log.due(Instant::now()) {
                    tracing::warn!(
                        collector = %collector,
                        %error,
                        retry_in = %humantime::format_duration(backoff),
                        "cannot connect to collector; records wait in the buffer"
                    );
                }
            }
        }
        if !shared.pause(backoff) {
            break;
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    let at = unix_ms(SystemTime::now());
    let mut q = shared.lock();
    while let Some(m) = q.pop_front() {
        q.stats.count_not_sent(&m, at);
    }
}

fn connect(local: SocketAddr, remote: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let socket = Socket::new(Domain::for_address(remote), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&local.into())?;
    socket.connect_timeout(&remote.into(), timeout)?;
    socket.set_nodelay(true)?;
    socket.set_write_timeout(Some(WRITE_TIMEOUT))?;
    socket.set_keepalive(true)?;
    // Unacknowledged data older than this breaks the connection.
    socket.set_tcp_user_timeout(Some(WRITE_TIMEOUT * 3))?;
    Ok(socket.into())
}

/// Sends the templates, then the queue, until closing (`Ok`) or the
/// connection breaks (`Err`; the message in hand goes back to the queue).
fn serve(shared: &Shared, stream: &TcpStream, templates: &[Encoded]) -> io::Result<()> {
    let mut sequence = 0u32;
    let mut out = stream;
    for t in templates {
        let mut t = t.clone();
        stamp(&mut t.bytes, sequence);
        out.write_all(&t.bytes)?;
    }
    loop {
        let next = {
            let mut q = shared.lock();
            loop {
                if q.deadline.is_some_and(|d| Instant::now() >= d) {
                    break None;
                }
                if let Some(m) = q.pop_front() {
                    break Some(m);
                }
                if q.deadline.is_some() {
                    break None;
                }
                let (guard, waited) = shared.wake.wait_timeout(q, IDLE_CHECK).unwrap_or_else(PoisonError::into_inner);
                q = guard;
                if waited.timed_out() && peer_closed(stream) {
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "the collector closed the connection",
                    ));
                }
            }
        };
        let Some(mut m) = next else {
            let _ = stream.shutdown(std::net::Shutdown::Write);
            return Ok(());
        };
        if peer_closed(stream) {
            shared.lock().push_front(m);
            return Err(io::Error::new(io::ErrorKind::ConnectionAborted, "the collector closed the connection"));
        }
        stamp(&mut m.bytes, sequence);
        if let Err(e) = out.write_all(&m.bytes) {
            shared.lock().push_front(m);
            return Err(e);
        }
        sequence = sequence.wrapping_add(m.data_records());
        shared.lock().stats.count_sent(&m);
    }
}

/// Writes the export time (now) and this stream's sequence number into an
/// IPFIX message header (RFC 7011 3.1).
fn stamp(message: &mut [u8], sequence: u32) {
    let secs = u32::try_from(unix_ms(SystemTime::now()) / 1000).unwrap_or(u32::MAX);
    message[4..8].copy_from_slice(&secs.to_be_bytes());
    message[8..12].copy_from_slice(&sequence.to_be_bytes());
}

/// Whether the collector closed its end (IPFIX collectors never send, so
/// readable means end of stream or an error).
fn peer_closed(stream: &TcpStream) -> bool {
    let mut byte = 0u8;
    // SAFETY: a one-byte buffer on the stack, for a non-blocking peek on a
    // socket we own.
    let n = unsafe { libc::recv(stream.as_raw_fd(), (&raw mut byte).cast(), 1, libc::MSG_PEEK | libc::MSG_DONTWAIT) };
    match n {
        0 => true,
        n if n > 0 => false,
        _ => io::Error::last_os_error().kind() != io::ErrorKind::WouldBlock,
    }
}
