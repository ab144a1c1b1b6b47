//! The connection thread of one TCP collector: connect, send the templates
//! then the queue, reconnect with backoff, and at close count what is left
//! as not sent.

use std::{
    io::{self, Write as _},
    net::{SocketAddr, TcpStream, UdpSocket},
    os::fd::AsRawFd as _,
    sync::PoisonError,
    time::{Duration, Instant, SystemTime},
};

use socket2::{Domain, SockRef, Socket, Type};

use super::{ERROR_LOG_INTERVAL, queue::Shared};
use crate::{
    clock::unix_ms,
    export::{
        collector::{Collector, unspecified_for},
        encode::Restamp,
        message::Encoded,
        throttle::Throttle,
    },
};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A collector that takes no bytes for this long is treated as gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

const MIN_BACKOFF: Duration = Duration::from_secs(1);

const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How often an idle connection checks that the collector is still there.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// The address the kernel would send from to reach `remote`: a connected
/// UDP socket asks the routing table without sending anything.
pub(super) fn source_address(remote: SocketAddr) -> io::Result<std::net::IpAddr> {
    let probe = UdpSocket::bind(unspecified_for(remote))?;
    probe.connect(remote)?;
    Ok(probe.local_addr()?.ip())
}

/// The thread: connect, serve, reconnect, until closed; then count what is
/// left as not sent.
pub(super) fn connection_loop(
    shared: &Shared,
    collector: &Collector,
    local: SocketAddr,
    templates: &[Encoded],
    restamp: Restamp,
) {
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
                let outcome = serve(shared, &stream, templates, restamp);
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
fn serve(shared: &Shared, stream: &TcpStream, templates: &[Encoded], restamp: Restamp) -> io::Result<()> {
    let mut sequence = 0u32;
    let mut out = stream;
    for t in templates {
        let mut t = t.clone();
        sequence = restamp(&mut t, sequence, SystemTime::now());
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
        let next = restamp(&mut m, sequence, SystemTime::now());
        if let Err(e) = out.write_all(&m.bytes) {
            shared.lock().push_front(m);
            return Err(e);
        }
        sequence = next;
        shared.lock().stats.count_sent(&m);
    }
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
