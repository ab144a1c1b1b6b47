//! An IPFIX-over-TCP collector that keeps each connection's byte stream,
//! decoded with `netflow_parser`.

use std::{
    net::IpAddr,
    time::{Duration, Instant},
};

use super::NfdumpFlow;
use crate::netns::Netns;

/// An IPFIX-over-TCP collector in a namespace: a thread inside it accepts
/// connections one at a time and keeps each one's bytes.
pub struct TcpCollector {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<Vec<u8>>>>,
}

impl TcpCollector {
    /// Listens on `addr` inside `ns` (the listener is up when this returns).
    #[must_use]
    pub fn start(ns: &Netns, addr: std::net::SocketAddr) -> Self {
        Self::spawn(addr, Some(ns.name().to_owned()))
    }

    /// Listens on `addr` in the caller's namespace (loopback tests).
    #[must_use]
    pub fn start_here(addr: std::net::SocketAddr) -> Self {
        Self::spawn(addr, None)
    }

    fn spawn(addr: std::net::SocketAddr, ns: Option<String>) -> Self {
        use std::{io::Read as _, sync::atomic::Ordering};
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&stop);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            if let Some(name) = ns {
                crate::netns::enter(&name);
            }
            let listener = std::net::TcpListener::bind(addr).expect("TCP collector listens");
            listener.set_nonblocking(true).unwrap();
            ready_tx.send(()).unwrap();
            let deadline = Instant::now() + Duration::from_mins(5);
            let mut connections = Vec::new();
            while Instant::now() < deadline {
                // A connection still in the backlog is taken even when stopping.
                let Ok((mut conn, _)) = listener.accept() else {
                    if flag.load(Ordering::Relaxed) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                conn.set_nonblocking(false).unwrap();
                conn.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
                let (mut bytes, mut buf) = (Vec::new(), vec![0u8; 65536]);
                loop {
                    match conn.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => bytes.extend_from_slice(&buf[..n]),
                        Err(_) if flag.load(Ordering::Relaxed) || Instant::now() > deadline => break,
                        Err(_) => {}
                    }
                }
                connections.push(bytes);
            }
            connections
        });
        ready_rx.recv_timeout(Duration::from_secs(10)).expect("TCP collector did not start");
        Self { stop, thread: Some(thread) }
    }

    /// Stops listening; returns each connection's bytes.
    #[must_use]
    pub fn stop(mut self) -> Vec<Vec<u8>> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for TcpCollector {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The IPFIX messages of a TCP stream, split by their length fields.
#[must_use]
pub fn ipfix_messages(bytes: &[u8]) -> Vec<&[u8]> {
    let mut messages = Vec::new();
    let mut rest = bytes;
    while rest.len() >= 4 {
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        assert!(len >= 16 && len <= rest.len(), "a cut or corrupt IPFIX message of length {len}");
        let (message, tail) = rest.split_at(len);
        messages.push(message);
        rest = tail;
    }
    assert!(rest.is_empty(), "{} stray bytes at the end of the stream", rest.len());
    messages
}

/// The flow records in one IPFIX TCP stream, decoded with a parser of its
/// own (so templates must come first on the connection).
#[must_use]
pub fn ipfix_stream_flows(bytes: &[u8]) -> Vec<NfdumpFlow> {
    use netflow_parser::{NetflowPacket, variable_versions::ipfix::FlowSetBody};
    let mut parser = netflow_parser::NetflowParser::default();
    let mut flows = Vec::new();
    for message in ipfix_messages(bytes) {
        let result = parser.parse_bytes(message);
        assert!(result.error.is_none(), "netflow_parser: {:?}", result.error);
        for packet in result.packets {
            let NetflowPacket::IPFix(ipfix) = packet else { panic!("not IPFIX") };
            for set in ipfix.flowsets {
                match set.body {
                    FlowSetBody::Data(d) => flows.extend(d.fields.iter().map(|rec| flow_of(rec))),
                    FlowSetBody::NoTemplate(_) => panic!("data before its template on a connection"),
                    _ => {}
                }
            }
        }
    }
    flows
}

/// A decoded IPFIX record as nfdump would print it.
fn flow_of(rec: &[(netflow_parser::IpfixField, netflow_parser::FieldValue)]) -> NfdumpFlow {
    let get = |id: u16| -> Option<Vec<u8>> {
        let (_, v) = rec.iter().find(|(f, _)| *f == netflow_parser::IpfixField::new(id, None))?;
        let mut b = Vec::new();
        v.write_be_bytes(&mut b).ok()?;
        Some(b)
    };
    let uint = |id: u16| get(id).map_or(0, |b| b.iter().fold(0u64, |acc, &x| acc << 8 | u64::from(x)));
    let ip = |v4: u16, v6: u16| -> IpAddr {
        match (get(v4), get(v6)) {
            (Some(b), _) => IpAddr::from(<[u8; 4]>::try_from(b.as_slice()).unwrap()),
            (_, Some(b)) => IpAddr::from(<[u8; 16]>::try_from(b.as_slice()).unwrap()),
            _ => panic!("a record without addresses"),
        }
    };
    let protocol = u8::try_from(uint(4)).unwrap();
    let icmp = uint(32).max(uint(139));
    NfdumpFlow {
        src: ip(8, 27),
        dst: ip(12, 28),
        src_port: u16::try_from(uint(7)).unwrap(),
        dst_port: u16::try_from(if matches!(protocol, 1 | 58) { icmp } else { uint(11) }).unwrap(),
        protocol: match protocol {
            1 => "ICMP".into(),
            6 => "TCP".into(),
            17 => "UDP".into(),
            58 => "ICMP6".into(),
            n => n.to_string(),
        },
        packets: uint(2),
        bytes: uint(1),
    }
}
