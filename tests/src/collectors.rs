//! Collectors for the end-to-end tests: nfcapd from Debian's nfdump
//! package, read back with `nfdump -o csv`; an IPFIX-over-TCP collector that
//! keeps each connection's byte stream, decoded with `netflow_parser`; and a
//! packet capture of the export for tshark.

use std::{
    net::IpAddr,
    path::PathBuf,
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use crate::{cmd, netns::Netns};

/// Waits until something in `ns` listens on UDP `port`.
fn wait_for_udp_listener(ns: &Netns, port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ns.exec(&["ss", "-Hlun", "sport", "=", &format!(":{port}")]).contains(&port.to_string()) {
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends `signal` to a child of ours (the collectors flush their files on
/// it) and reaps it.
fn signal_and_wait(child: &mut Child, signal: i32) {
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(i32::try_from(child.id()).unwrap(), signal) };
    let _ = child.wait();
}

/// One flow as nfdump prints it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct NfdumpFlow {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    /// For ICMP, `type << 8 | code`.
    pub dst_port: u16,
    pub protocol: String,
    pub packets: u64,
    pub bytes: u64,
}

/// What nfcapd stored, read back.
pub struct Collected {
    pub flows: Vec<NfdumpFlow>,
    pub sequence_failures: u64,
    /// nfdump's own listing (`-o line`), for people.
    pub listing: String,
}

/// An nfcapd listening on UDP in a namespace, writing into its own directory.
pub struct Nfcapd {
    child: Option<Child>,
    dir: PathBuf,
}

impl Nfcapd {
    /// Starts nfcapd on `127.0.0.1:port` inside `ns` and waits for its socket.
    #[must_use]
    pub fn start(ns: &Netns, port: u16) -> Self {
        Self::start_on(ns, "127.0.0.1".parse().unwrap(), port)
    }

    /// Starts nfcapd on `addr:port` inside `ns` and waits for its socket.
    #[must_use]
    pub fn start_on(ns: &Netns, addr: IpAddr, port: u16) -> Self {
        let dir = std::env::temp_dir().join(format!("{}-nfcapd-{port}", ns.name()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let child = ns
            .command(&[
                "nfcapd",
                "-w",
                dir.to_str().unwrap(),
                "-b",
                &addr.to_string(),
                "-p",
                &port.to_string(),
                "-t",
                "3600",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nfcapd (Debian package nfdump, installed by scripts/setup.sh)");
        wait_for_udp_listener(ns, port, "nfcapd");
        Self { child: Some(child), dir }
    }

    /// Stops nfcapd (SIGTERM: it writes its file out) and reads every flow.
    #[must_use]
    pub fn stop(mut self) -> Collected {
        let mut child = self.child.take().unwrap();
        signal_and_wait(&mut child, libc::SIGTERM);
        let files: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("nfcapd.")))
            .collect();
        assert_eq!(files.len(), 1, "nfcapd files: {files:?}");
        let file = files[0].to_str().unwrap();
        let csv = cmd::run(&["nfdump", "-r", file, "-o", "csv"]);
        let flows = csv.lines().skip(1).filter_map(parse_csv_row).collect();
        let info = cmd::run(&["nfdump", "-r", file, "-I"]);
        let sequence_failures = info
            .lines()
            .find_map(|l| l.strip_prefix("Sequence failures:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no sequence failures line in:\n{info}"));
        let listing = cmd::run(&["nfdump", "-r", file, "-o", "line"]);
        Collected { flows, sequence_failures, listing }
    }
}

impl Drop for Nfcapd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `ts,te,td,sa,da,sp,dp,pr,flg,fwd,stos,ipkt,ibyt,...`; the summary lines
/// nfdump appends do not parse and are skipped.
fn parse_csv_row(line: &str) -> Option<NfdumpFlow> {
    let f: Vec<&str> = line.split(',').collect();
    if f.len() < 13 {
        return None;
    }
    Some(NfdumpFlow {
        src: f[3].trim().parse().ok()?,
        dst: f[4].trim().parse().ok()?,
        src_port: f[5].trim().parse().ok()?,
        dst_port: f[6].trim().parse().ok()?,
        protocol: f[7].trim().to_owned(),
        packets: f[11].trim().parse().ok()?,
        bytes: f[12].trim().parse().ok()?,
    })
}

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

/// tcpdump writing what crosses an interface in a namespace to a pcap.
pub struct Capture {
    child: Option<Child>,
    path: PathBuf,
}

/// One captured frame: its length on the wire and its IPv4/IPv6 source.
pub struct Frame {
    pub len: u64,
    pub src: IpAddr,
}

impl Capture {
    /// Starts capturing `filter` on `dev` in `ns`; returns once tcpdump listens.
    #[must_use]
    pub fn start(ns: &Netns, dev: &str, filter: &str) -> Self {
        use std::io::BufRead as _;
        let path = std::env::temp_dir().join(format!("{}-{dev}.pcap", ns.name()));
        let mut child = ns
            .command(&[
                "tcpdump",
                "-i",
                dev,
                "--immediate-mode",
                "-U",
                "-n",
                "-s",
                "0",
                "-w",
                path.to_str().unwrap(),
                filter,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tcpdump (Debian package tcpdump, installed by scripts/setup.sh)");
        let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        stderr.read_line(&mut line).unwrap();
        assert!(line.contains("listening on"), "tcpdump: {line}");
        // Keep draining so tcpdump never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        Self { child: Some(child), path }
    }

    /// Stops tcpdump (SIGINT flushes the file); returns the pcap.
    #[must_use]
    pub fn stop(mut self) -> PcapFile {
        let mut child = self.child.take().unwrap();
        signal_and_wait(&mut child, libc::SIGINT);
        PcapFile(std::mem::take(&mut self.path))
    }
}

/// A capture file, deleted when dropped.
pub struct PcapFile(PathBuf);

impl PcapFile {
    #[must_use]
    pub fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }

    /// Every Ethernet frame in the file.
    #[must_use]
    pub fn frames(&self) -> Vec<Frame> {
        let mut reader = pcap_file::pcap::PcapReader::new(std::fs::File::open(&self.0).unwrap()).unwrap();
        let mut frames = Vec::new();
        while let Some(p) = reader.next_packet() {
            let p = p.unwrap();
            let d = &p.data;
            let src = match u16::from_be_bytes([d[12], d[13]]) {
                0x0800 => IpAddr::from(<[u8; 4]>::try_from(&d[26..30]).unwrap()),
                0x86dd => IpAddr::from(<[u8; 16]>::try_from(&d[22..38]).unwrap()),
                other => panic!("captured a non-IP frame, ethertype {other:#x}"),
            };
            frames.push(Frame { len: u64::from(p.orig_len), src });
        }
        frames
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Drop for PcapFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// pmacct's nfacctd (Debian package pmacct) on `127.0.0.1:port` in a
/// namespace, aggregating by the pod tuple and the VNI into CSV.
pub struct Nfacctd {
    child: Option<Child>,
    dir: PathBuf,
}

/// One nfacctd aggregate.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PmacctFlow {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    pub protocol: String,
    pub vni: u32,
    pub packets: u64,
    pub bytes: u64,
}

impl Nfacctd {
    #[must_use]
    pub fn start(ns: &Netns, port: u16) -> Self {
        Self::start_with(ns, port, "")
    }

    /// As [`Nfacctd::start`], with more configuration lines (`key: value`).
    #[must_use]
    pub fn start_with(ns: &Netns, port: u16, extra: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("{}-nfacctd-{port}", ns.name()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("nfacctd.conf");
        let csv = dir.join("flows.csv");
        std::fs::write(
            &conf,
            format!(
                "daemonize: false\nnfacctd_ip: 127.0.0.1\nnfacctd_port: {port}\nplugins: print[flows]\n\
                 aggregate[flows]: src_host, dst_host, src_port, dst_port, proto, vxlan\n\
                 print_output[flows]: csv\nprint_output_file[flows]: {}\nprint_output_file_append[flows]: true\n\
                 print_refresh_time[flows]: 1\n{extra}",
                csv.display()
            ),
        )
        .unwrap();
        let child = ns
            .command(&["nfacctd", "-f", conf.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nfacctd (Debian package pmacct, installed by scripts/setup.sh)");
        wait_for_udp_listener(ns, port, "nfacctd");
        Self { child: Some(child), dir }
    }

    /// Stops nfacctd (SIGINT purges its cache) and returns every aggregate
    /// row written, in order.
    #[must_use]
    pub fn stop(mut self) -> Vec<PmacctFlow> {
        let mut child = self.child.take().unwrap();
        signal_and_wait(&mut child, libc::SIGINT);
        let csv = std::fs::read_to_string(self.dir.join("flows.csv")).unwrap_or_default();
        let mut lines = csv.lines();
        let Some(header) = lines.next() else { return Vec::new() };
        let cols: Vec<&str> = header.split(',').collect();
        let col = |name: &str| cols.iter().position(|c| *c == name).unwrap_or_else(|| panic!("{name} in {header}"));
        let (sa, da, sp, dp, pr, vx, pk, by) = (
            col("SRC_IP"),
            col("DST_IP"),
            col("SRC_PORT"),
            col("DST_PORT"),
            col("PROTOCOL"),
            col("VXLAN"),
            col("PACKETS"),
            col("BYTES"),
        );
        lines
            .filter(|l| !l.starts_with("SRC_IP"))
            .map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                PmacctFlow {
                    src: f[sa].parse().unwrap(),
                    dst: f[da].parse().unwrap(),
                    src_port: f[sp].parse().unwrap(),
                    dst_port: f[dp].parse().unwrap(),
                    protocol: f[pr].to_owned(),
                    vni: f[vx].parse().unwrap(),
                    packets: f[pk].parse().unwrap(),
                    bytes: f[by].parse().unwrap(),
                }
            })
            .collect()
    }
}

impl Drop for Nfacctd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
