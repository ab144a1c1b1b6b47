//! Packet captures made by real tools (tcpdump, dumpcap) in a namespace:
//! of the export, for tshark; of an interface, for `vxflow replay`.

use std::{
    net::IpAddr,
    path::PathBuf,
    process::{Child, Stdio},
};

use super::signal_and_wait;
use crate::netns::Netns;

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
        let path = std::env::temp_dir().join(format!("{}-{dev}.pcap", ns.name()));
        let p = path.to_str().unwrap().to_owned();
        Self::start_tool(
            ns,
            &["tcpdump", "-i", dev, "--immediate-mode", "-U", "-n", "-s", "0", "-w", &p, filter],
            path,
            "listening on",
        )
    }

    /// Starts `argv` (a capture tool writing to `path`) in `ns`; returns
    /// once its first line of stderr says `ready`.
    #[must_use]
    pub fn start_tool(ns: &Netns, argv: &[&str], path: PathBuf, ready: &str) -> Self {
        use std::io::BufRead as _;
        let mut child = ns
            .command(argv)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {argv:?} (scripts/setup.sh installs tcpdump and tshark): {e}"));
        let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        while !line.contains(ready) {
            line.clear();
            assert!(stderr.read_line(&mut line).unwrap() > 0, "{argv:?} ended before it was ready");
        }
        // Keep draining so the tool never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        Self { child: Some(child), path }
    }

    /// Stops the tool (SIGINT flushes the file); returns the capture.
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
