//! Bounded traffic between namespaces: exact UDP datagram trains, ping, and
//! iperf3. Every generator stops after a fixed count or size and a deadline.

use std::{
    net::{IpAddr, SocketAddr, UdpSocket},
    process::Stdio,
    time::{Duration, Instant},
};

use crate::netns::Netns;

/// Sends `count` datagrams of `payload` bytes from `from` to `to:port`, with
/// a receiver in `to_ns`. Returns how many arrived (all, on a quiet link).
#[must_use]
pub fn udp_train(from: &Netns, to_ns: &Netns, to: IpAddr, port: u16, count: u32, payload: usize) -> u32 {
    let any: IpAddr = match to {
        IpAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
        IpAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
    };
    udp_datagrams(from, SocketAddr::new(any, 0), to_ns, SocketAddr::new(to, port), count, &vec![0x5au8; payload])
}

/// Sends `count` copies of `payload` from `src` (an address and port of
/// `from`; port 0 for any) to `dst`, with a receiver bound to `dst` in
/// `to_ns`. Returns how many arrived.
#[must_use]
pub fn udp_datagrams(from: &Netns, src: SocketAddr, to_ns: &Netns, dst: SocketAddr, count: u32, payload: &[u8]) -> u32 {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        let receiver = s.spawn(|| {
            to_ns.enter_thread();
            let sock = UdpSocket::bind(dst).expect("bind receiver");
            set_rcvbuf(&sock, 8 << 20);
            sock.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
            ready_tx.send(()).unwrap();
            let mut got = 0;
            let mut buf = vec![0u8; 65536];
            while got < count {
                match sock.recv(&mut buf) {
                    Ok(_) => got += 1,
                    Err(_) => break,
                }
            }
            got
        });
        ready_rx.recv_timeout(Duration::from_secs(5)).expect("receiver ready");
        s.spawn(|| {
            from.enter_thread();
            let sock = UdpSocket::bind(src).unwrap();
            for i in 0..count {
                sock.send_to(payload, dst).unwrap();
                // Pace the train so no queue on the path overflows.
                if i % 8 == 7 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        })
        .join()
        .unwrap();
        receiver.join().unwrap()
    })
}

/// TOS the pings carry (DSCP EF), so records show it.
pub const PING_TOS: u8 = 0xb8;

/// `ping -c count -s size -Q 0xb8` from `from` to `to`; asserts every echo
/// came back.
pub fn ping(from: &Netns, to: IpAddr, count: u32, size: usize) {
    let out = from.exec(&[
        "ping",
        "-q",
        "-Q",
        &PING_TOS.to_string(),
        "-c",
        &count.to_string(),
        "-i",
        "0.01",
        "-s",
        &size.to_string(),
        "-W",
        "2",
        &to.to_string(),
    ]);
    assert!(out.contains(&format!("{count} received")), "ping lost packets:\n{out}");
}

/// What an iperf3 run reported.
#[derive(Clone, Copy, Debug)]
pub struct Iperf {
    /// Payload bytes the client wrote.
    pub sent: u64,
    /// Payload bytes the server read.
    pub received: u64,
}

/// Runs an iperf3 TCP transfer from `client` to a one-shot server in `server`
/// at `addr`. `limit` bounds it: `["-n", "30M"]` or `["-t", "3", "-b", "300M"]`.
#[must_use]
pub fn iperf3(client: &Netns, server: &Netns, addr: IpAddr, limit: &[&str]) -> Iperf {
    let addr_s = addr.to_string();
    let mut srv = server
        .command(&["iperf3", "-s", "-1", "-B", &addr_s, "-p", "5201"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn iperf3 server");
    // Wait for the server's socket.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.exec(&["ss", "-Hltn", "sport", "=", ":5201"]).contains("5201") {
        assert!(Instant::now() < deadline, "iperf3 server did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut argv = vec!["timeout", "60", "iperf3", "-c", &addr_s, "-p", "5201", "-J"];
    argv.extend_from_slice(limit);
    let out = client.exec(&argv);
    let _ = srv.wait();
    let v: serde_json::Value = serde_json::from_str(&out).expect("iperf3 JSON");
    let field = |k: &str| v["end"][k]["bytes"].as_u64().unwrap_or_else(|| panic!("iperf3 output has no {k}: {out}"));
    Iperf { sent: field("sum_sent"), received: field("sum_received") }
}

/// A receive buffer big enough that a burst never overflows it.
fn set_rcvbuf(sock: &UdpSocket, bytes: i32) {
    use std::os::fd::AsRawFd as _;
    // SAFETY: setsockopt with a valid fd and a pointer to an int.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&raw const bytes).cast(),
            u32::try_from(std::mem::size_of::<i32>()).unwrap(),
        )
    };
    assert_eq!(rc, 0, "SO_RCVBUFFORCE: {}", std::io::Error::last_os_error());
}

/// What `flowgen` (tests/tools/flowgen.c) sent: flow `i` goes from
/// `src_ports[i % S]` to `first_dst_port + i / S`, `S = src_ports.len()`.
#[derive(Clone, Debug)]
pub struct FlowgenReport {
    pub datagrams: u64,
    pub flows: u64,
    pub first_dst_port: u16,
    pub src_ports: Vec<u16>,
}

impl FlowgenReport {
    /// The (source port, destination port) of flow `i`.
    #[must_use]
    pub fn ports_of(&self, i: u64) -> (u16, u16) {
        let s = self.src_ports.len() as u64;
        let src = self.src_ports[usize::try_from(i % s).unwrap()];
        (src, self.first_dst_port + u16::try_from(i / s).unwrap())
    }
}

/// Sends `flows` distinct UDP flows of `packets` datagrams of `payload`
/// bytes each from `from` to `to`, `rate` datagrams a second, with the C
/// generator (`sendmmsg`), which this compiles once. Panics unless every
/// flow went out within `deadline`.
#[must_use]
pub fn flowgen(
    from: &Netns,
    to: IpAddr,
    flows: u64,
    packets: u32,
    payload: usize,
    rate: u64,
    deadline: Duration,
) -> FlowgenReport {
    let bin = flowgen_binary();
    let args = [
        bin.to_str().unwrap().to_owned(),
        to.to_string(),
        flows.to_string(),
        packets.to_string(),
        payload.to_string(),
        rate.to_string(),
        deadline.as_secs().max(1).to_string(),
    ];
    let out = from.exec(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let field = |name: &str| -> &str {
        out.split_whitespace()
            .find_map(|w| w.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
            .unwrap_or_else(|| panic!("flowgen printed no {name}: {out}"))
    };
    let report = FlowgenReport {
        datagrams: field("sent").parse().unwrap(),
        flows: field("flows").parse().unwrap(),
        first_dst_port: field("first_dst_port").parse().unwrap(),
        src_ports: field("src_ports").split(',').map(|p| p.parse().unwrap()).collect(),
    };
    assert_eq!(report.flows, flows, "flowgen ran out of time: {out}");
    assert_eq!(report.datagrams, flows * u64::from(packets), "{out}");
    report
}

/// The generator, compiled from `tests/tools/flowgen.c` into the target
/// directory when missing or older than its source.
fn flowgen_binary() -> std::path::PathBuf {
    static BIN: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let src = root.join("tools/flowgen.c");
        let bin = root.join("../target/flowgen");
        let modified = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        if modified(&bin) < modified(&src) {
            // Built under a name of this process's own, then renamed: test
            // binaries running at once never see a half-written file.
            let tmp = bin.with_extension(format!("tmp{}", std::process::id()));
            let status = std::process::Command::new("cc")
                .args(["-O2", "-Wall", "-Werror", "-o"])
                .arg(&tmp)
                .arg(&src)
                .status()
                .expect("running cc");
            assert!(status.success(), "cc failed on {}", src.display());
            std::fs::rename(&tmp, &bin).unwrap();
        }
        bin
    })
    .clone()
}
