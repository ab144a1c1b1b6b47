//! Collectors for the end-to-end tests, one file each: nfcapd from Debian's
//! nfdump package (`nfcapd`), pmacct's nfacctd (`nfacctd`), an IPFIX-over-TCP
//! collector decoded with `netflow_parser` (`tcp`), and a packet capture of
//! the export for tshark (`capture`); here, what they share.

use std::{
    net::IpAddr,
    process::Child,
    time::{Duration, Instant},
};

use crate::netns::Netns;

mod capture;
mod nfacctd;
mod nfcapd;
mod tcp;

pub use self::{
    capture::{Capture, Frame, PcapFile},
    nfacctd::{Nfacctd, PmacctFlow},
    nfcapd::Nfcapd,
    tcp::{TcpCollector, ipfix_messages, ipfix_stream_flows},
};

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
