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
