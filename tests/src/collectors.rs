//! Real collectors for the end-to-end tests: nfcapd from Debian's nfdump
//! package, read back with `nfdump -o csv`.

use std::{
    net::IpAddr,
    path::PathBuf,
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use crate::{cmd, netns::Netns};

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
        let dir = std::env::temp_dir().join(format!("{}-nfcapd", ns.name()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let child = ns
            .command(&["nfcapd", "-w", dir.to_str().unwrap(), "-b", "127.0.0.1", "-p", &port.to_string(), "-t", "3600"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nfcapd (Debian package nfdump, installed by scripts/setup.sh)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ns.exec(&["ss", "-Hlun", "sport", "=", &format!(":{port}")]).contains(&port.to_string()) {
            assert!(Instant::now() < deadline, "nfcapd did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child: Some(child), dir }
    }

    /// Stops nfcapd (SIGTERM: it writes its file out) and reads every flow.
    #[must_use]
    pub fn stop(mut self) -> Collected {
        let mut child = self.child.take().unwrap();
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(i32::try_from(child.id()).unwrap(), libc::SIGTERM) };
        let _ = child.wait();
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
        Collected { flows, sequence_failures }
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
