//! Network namespaces that delete themselves.

use std::{fs::File, os::fd::AsRawFd as _};

use crate::cmd;

/// A named network namespace, deleted (with every interface in it) on drop.
pub struct Netns {
    name: String,
}

/// An interface's kernel counters (`/sys/class/net/*/statistics`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkCounters {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Packets the device dropped. TC egress runs before the device, so a
    /// packet veth drops after it (its peer's ring full) was seen by vxflow
    /// but is not in `tx_packets`.
    pub tx_dropped: u64,
    pub rx_dropped: u64,
}

impl LinkCounters {
    /// What changed from `before` to `self`.
    #[must_use]
    pub fn since(&self, before: &LinkCounters) -> LinkCounters {
        LinkCounters {
            rx_packets: self.rx_packets - before.rx_packets,
            rx_bytes: self.rx_bytes - before.rx_bytes,
            tx_packets: self.tx_packets - before.tx_packets,
            tx_bytes: self.tx_bytes - before.tx_bytes,
            tx_dropped: self.tx_dropped - before.tx_dropped,
            rx_dropped: self.rx_dropped - before.rx_dropped,
        }
    }
}

impl Netns {
    /// Creates `name` with loopback up and IPv6 router solicitations, DAD
    /// and duplicate ND noise turned off, so the only traffic is the test's.
    #[must_use]
    pub fn new(name: &str) -> Self {
        let _ = cmd::output(&["ip", "netns", "del", name]);
        cmd::run(&["ip", "netns", "add", name]);
        let ns = Self { name: name.to_owned() };
        ns.ip("link set lo up");
        for (key, value) in [
            ("net.ipv6.conf.default.router_solicitations", "0"),
            ("net.ipv6.conf.default.accept_dad", "0"),
            ("net.ipv6.conf.default.dad_transmits", "0"),
            ("net.ipv6.conf.default.accept_ra", "0"),
            ("net.ipv6.conf.all.accept_ra", "0"),
        ] {
            ns.exec(&["sysctl", "-qw", &format!("{key}={value}")]);
        }
        ns
    }

    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n <ns> <args>`.
    pub fn ip(&self, args: &str) -> String {
        let mut cmdline = vec!["ip", "-n", &self.name];
        cmdline.extend(args.split_whitespace());
        cmd::run(&cmdline)
    }

    /// Runs a command inside the namespace.
    pub fn exec(&self, argv: &[&str]) -> String {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(argv);
        cmd::run(&full)
    }

    /// `argv` prefixed to run inside the namespace, for spawning.
    #[must_use]
    pub fn command(&self, argv: &[&str]) -> std::process::Command {
        let mut c = std::process::Command::new("ip");
        c.args(["netns", "exec", &self.name]).args(argv);
        c
    }

    /// Disables IPv6 on `dev` (no link-local address, no MLD, no ND noise).
    pub fn disable_ipv6(&self, dev: &str) {
        self.exec(&["sysctl", "-qw", &format!("net.ipv6.conf.{dev}.disable_ipv6=1")]);
    }

    /// Sets offloads on `dev` (`ethtool -K dev <features...>`).
    pub fn ethtool_k(&self, dev: &str, features: &str) {
        let mut argv = vec!["ethtool", "-K", dev];
        argv.extend(features.split_whitespace());
        self.exec(&argv);
    }

    /// The counters of `dev`.
    #[must_use]
    pub fn counters(&self, dev: &str) -> LinkCounters {
        let read = |name: &str| -> u64 {
            self.exec(&["cat", &format!("/sys/class/net/{dev}/statistics/{name}")]).trim().parse().unwrap()
        };
        LinkCounters {
            rx_packets: read("rx_packets"),
            rx_bytes: read("rx_bytes"),
            tx_packets: read("tx_packets"),
            tx_bytes: read("tx_bytes"),
            tx_dropped: read("tx_dropped"),
            rx_dropped: read("rx_dropped"),
        }
    }

    /// The MAC address of `dev`.
    #[must_use]
    pub fn mac(&self, dev: &str) -> String {
        self.exec(&["cat", &format!("/sys/class/net/{dev}/address")]).trim().to_owned()
    }

    /// Moves the calling thread into this namespace. Sockets and netlink
    /// calls the thread makes afterwards live there. Use a dedicated thread.
    pub fn enter_thread(&self) {
        enter(&self.name);
    }
}

/// Moves the calling thread into namespace `name` (for a thread that cannot
/// borrow the `Netns`).
pub fn enter(name: &str) {
    let f = File::open(format!("/run/netns/{name}")).unwrap();
    // SAFETY: setns on a valid namespace fd; affects only this thread.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns into {name}: {}", std::io::Error::last_os_error());
}

impl Drop for Netns {
    /// Kills what still runs inside (a failed test's iperf3, say), then
    /// deletes the namespace and with it every interface in it.
    fn drop(&mut self) {
        let pids = cmd::output(&["ip", "netns", "pids", &self.name]);
        for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
            if let Ok(pid) = pid.parse::<i32>() {
                // SAFETY: kill(2) has no memory-safety preconditions.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        let _ = cmd::output(&["ip", "netns", "del", &self.name]);
    }
}

/// Sends raw Ethernet frames out of an interface of the caller's namespace
/// (`AF_PACKET`), as a NIC would deliver them to its peer, malformed or not.
pub struct RawSender {
    fd: std::os::fd::OwnedFd,
    ifindex: i32,
}

impl RawSender {
    #[must_use]
    pub fn new(dev: &str) -> Self {
        use std::os::fd::FromRawFd as _;
        let name = std::ffi::CString::new(dev).unwrap();
        // SAFETY: valid NUL-terminated name.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        assert_ne!(ifindex, 0, "no interface {dev}");
        // SAFETY: plain socket(2) call; the fd is owned below.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
        assert!(fd >= 0, "AF_PACKET socket: {}", std::io::Error::last_os_error());
        Self {
            // SAFETY: fd is a fresh, valid descriptor we own.
            fd: unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) },
            ifindex: i32::try_from(ifindex).unwrap(),
        }
    }

    pub fn send(&self, frame: &[u8]) {
        // SAFETY: zeroed sockaddr_ll is a valid starting value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = u16::try_from(libc::AF_PACKET).unwrap();
        addr.sll_ifindex = self.ifindex;
        addr.sll_halen = 6;
        addr.sll_addr[..6].copy_from_slice(&frame[..6]);
        // SAFETY: buffer and address are valid for the given lengths.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&raw const addr).cast(),
                u32::try_from(std::mem::size_of::<libc::sockaddr_ll>()).unwrap(),
            )
        };
        assert_eq!(n, isize::try_from(frame.len()).unwrap(), "sendto: {}", std::io::Error::last_os_error());
    }
}

/// `GET path` over HTTP/1.1 from inside namespace `ns` (on a thread of its
/// own), returning the status code and body.
#[must_use]
pub fn http_get(ns: &Netns, addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use std::io::{Read as _, Write as _};
    let (name, path) = (ns.name().to_owned(), path.to_owned());
    std::thread::spawn(move || {
        enter(&name);
        let mut s = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        s.set_read_timeout(Some(std::time::Duration::from_secs(15))).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
        let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        // axum answers with a length or chunks; undo chunking if needed.
        let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
            unchunk(body)
        } else {
            body.to_owned()
        };
        (status, body)
    })
    .join()
    .unwrap()
}

fn unchunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}
