//! nfcapd from Debian's nfdump package, read back with `nfdump -o csv`.

use std::{
    net::IpAddr,
    path::PathBuf,
    process::{Child, Stdio},
};

use super::{Collected, NfdumpFlow, signal_and_wait, wait_for_udp_listener};
use crate::{cmd, netns::Netns};

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
