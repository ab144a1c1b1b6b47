//! Running the real `vxflow` binary inside a namespace and collecting what it
//! prints: JSON records on stdout, logs (with the final counters) on stderr.

use std::{
    collections::BTreeMap,
    io::{BufRead as _, BufReader, Read as _},
    net::IpAddr,
    path::PathBuf,
    process::{Child, Stdio},
    sync::{Arc, Mutex},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use serde::Deserialize;

use crate::netns::Netns;

/// The `vxflow` binary under test: `$VXFLOW_BIN`, else the workspace's
/// `target/debug/vxflow` (the test script builds it first).
#[must_use]
pub fn binary() -> PathBuf {
    let path = std::env::var_os("VXFLOW_BIN")
        .map_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/vxflow"), PathBuf::from);
    assert!(path.exists(), "{} missing: run `cargo build -p vxflow` first, or set VXFLOW_BIN", path.display());
    path
}

/// The optimised `vxflow` binary, for tests of throughput: `$VXFLOW_RELEASE_BIN`,
/// else the workspace's `target/release/vxflow` (the test script builds it).
#[must_use]
pub fn release_binary() -> PathBuf {
    let path = std::env::var_os("VXFLOW_RELEASE_BIN").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/vxflow"),
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "{} missing: run `cargo build --release -p vxflow` first, or set VXFLOW_RELEASE_BIN",
        path.display()
    );
    path
}

/// One JSON record as vxflow prints it, decoded independently of the probe's
/// own types.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Record {
    pub start: String,
    pub end: String,
    pub interface: String,
    pub ifindex: u32,
    pub direction: String,
    pub ip_version: u8,
    pub protocol: String,
    pub protocol_number: u8,
    pub tos: u8,
    pub src_addr: IpAddr,
    pub dst_addr: IpAddr,
    #[serde(default)]
    pub src_pod: Option<String>,
    #[serde(default)]
    pub src_namespace: Option<String>,
    #[serde(default)]
    pub src_node: Option<String>,
    #[serde(default)]
    pub src_workload: Option<String>,
    #[serde(default)]
    pub src_host: Option<String>,
    #[serde(default)]
    pub dst_pod: Option<String>,
    #[serde(default)]
    pub dst_namespace: Option<String>,
    #[serde(default)]
    pub dst_node: Option<String>,
    #[serde(default)]
    pub dst_workload: Option<String>,
    #[serde(default)]
    pub dst_host: Option<String>,
    #[serde(default)]
    pub outer_src_node: Option<String>,
    #[serde(default)]
    pub outer_dst_node: Option<String>,
    pub src_port: Option<u16>,
    pub dst_port: Option<u16>,
    pub icmp_type: Option<u8>,
    pub icmp_code: Option<u8>,
    pub vlan: Option<u16>,
    pub tunnel: Option<String>,
    #[serde(default)]
    pub tunnel_id: Option<u32>,
    pub vni: Option<u32>,
    #[serde(default)]
    pub cilium_identity: Option<u32>,
    #[serde(default)]
    pub vsid: Option<u32>,
    pub outer_src_addr: Option<IpAddr>,
    pub outer_dst_addr: Option<IpAddr>,
    pub outer_src_port: Option<u16>,
    pub outer_dst_port: Option<u16>,
    pub packets: u64,
    pub bytes: u64,
    pub outer_bytes: Option<u64>,
    pub tcp_flags: Option<Vec<String>>,
    #[serde(default)]
    pub fragment: bool,
    pub end_reason: String,
    /// N when 1 in N packets is counted.
    #[serde(default)]
    pub sampling: Option<u32>,
}

impl Record {
    /// IP bytes on the wire: the outer packet for a tunnel, else the packet.
    #[must_use]
    pub fn wire_ip_bytes(&self) -> u64 {
        self.outer_bytes.unwrap_or(self.bytes)
    }
}

/// A running vxflow. Killed on drop if not stopped.
pub struct Vxflow {
    child: Option<Child>,
    stdout: Option<JoinHandle<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
    stderr_thread: Option<JoinHandle<()>>,
    /// The control socket, if it has one.
    control: Option<PathBuf>,
}

/// How to start vxflow: `run` arguments, extra environment, and a command
/// to run it under (e.g. setpriv).
#[derive(Default)]
pub struct Launch<'a> {
    pub args: &'a [&'a str],
    pub env: &'a [(&'a str, &'a str)],
    pub wrapper: &'a [&'a str],
    /// Run the optimised build ([`release_binary`]), as operators do, for a
    /// test whose figures depend on speed.
    pub release: bool,
}

/// What a stopped vxflow printed.
pub struct Finished {
    /// CPU seconds (user and system) and peak resident bytes of the whole
    /// run, shutdown included (`wait4`'s accounting of the exited process).
    pub cpu_s: f64,
    pub peak_bytes: u64,
    pub records: Vec<Record>,
    /// The JSON lines as printed, in the order of `records`.
    pub lines: Vec<String>,
    pub stderr: String,
    /// The numeric fields of the "final counters" log line.
    pub counters: BTreeMap<String, u64>,
}

impl Finished {
    #[must_use]
    pub fn counter(&self, name: &str) -> u64 {
        *self.counters.get(name).unwrap_or_else(|| panic!("no {name} in final counters:\n{}", self.stderr))
    }

    /// The records as nfdump prints flows (inner tuples), sorted.
    #[must_use]
    pub fn nfdump_flows(&self) -> Vec<crate::collectors::NfdumpFlow> {
        nfdump_flows(&self.records)
    }
}

/// `records` as nfdump lists them (its protocol names, ICMP type and code
/// in the destination port), sorted.
#[must_use]
pub fn nfdump_flows(records: &[Record]) -> Vec<crate::collectors::NfdumpFlow> {
    let mut flows: Vec<crate::collectors::NfdumpFlow> = records
        .iter()
        .map(|r| crate::collectors::NfdumpFlow {
            src: r.src_addr,
            dst: r.dst_addr,
            src_port: r.src_port.unwrap_or(0),
            dst_port: match (r.icmp_type, r.icmp_code) {
                (Some(t), Some(c)) => u16::from(t) << 8 | u16::from(c),
                _ => r.dst_port.unwrap_or(0),
            },
            protocol: match r.protocol.as_str() {
                "ipv6-icmp" => "ICMP6".to_owned(),
                p => p.to_uppercase(),
            },
            packets: r.packets,
            bytes: r.bytes,
        })
        .collect();
    flows.sort();
    flows
}

impl Vxflow {
    /// Starts `vxflow run <args>` in `ns` and waits until it says it runs.
    /// Unless `args` say otherwise, its control socket is a path of its own
    /// (see [`Vxflow::ctl`]).
    #[must_use]
    pub fn start(ns: &Netns, args: &[&str]) -> Self {
        Self::launch(ns, &Launch { args, ..Launch::default() })
    }

    /// Starts vxflow as `launch` says and waits until it says it runs.
    #[must_use]
    pub fn launch(ns: &Netns, launch: &Launch<'_>) -> Self {
        let bin = if launch.release { release_binary() } else { binary() };
        let control = (!launch.args.iter().any(|a| *a == "--no-control" || *a == "--control-socket")).then(|| {
            let dir = std::env::temp_dir().join(crate::unique_prefix("vxflow-ctl"));
            std::fs::create_dir_all(&dir).unwrap();
            // Open to the unprivileged user some tests run vxflow as.
            std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
            dir.join("ctl.sock")
        });
        let mut cmdline: Vec<&str> = launch.wrapper.to_vec();
        cmdline.extend([bin.to_str().unwrap(), "run"]);
        cmdline.extend_from_slice(launch.args);
        let control_arg = control.as_ref().map(|p| p.to_str().unwrap().to_owned());
        if let Some(path) = &control_arg {
            cmdline.extend(["--control-socket", path.as_str()]);
        }
        let mut command = ns.command(&cmdline);
        command.env("RUST_LOG", "info");
        for (k, v) in launch.env {
            command.env(k, v);
        }
        let mut child =
            command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn vxflow");
        let out = child.stdout.take().unwrap();
        let stdout = std::thread::spawn(move || BufReader::new(out).lines().map_while(Result::ok).collect());
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err = child.stderr.take().unwrap();
        let sink = Arc::clone(&stderr);
        let stderr_thread = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let mut v =
            Self { child: Some(child), stdout: Some(stdout), stderr, stderr_thread: Some(stderr_thread), control };
        v.wait_for_log("vxflow running", Duration::from_secs(30));
        v
    }

    /// Runs `vxflow ctl --json <args>` against this vxflow and returns its
    /// answer, decoded. Panics if ctl fails.
    #[must_use]
    pub fn ctl(&self, args: &[&str]) -> serde_json::Value {
        let out = self.ctl_as(&[], args);
        assert!(out.status.success(), "vxflow ctl {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("ctl answer is not JSON ({e})"))
    }

    /// Runs `<wrapper> vxflow ctl --json <args>` (e.g. under setpriv as
    /// another user) and returns how it went.
    #[must_use]
    pub fn ctl_as(&self, wrapper: &[&str], args: &[&str]) -> std::process::Output {
        let socket = self.control.as_ref().expect("this vxflow has no control socket");
        let bin = binary();
        let mut command_line: Vec<&str> = wrapper.to_vec();
        command_line.extend([bin.to_str().unwrap(), "ctl", "--json", "--socket", socket.to_str().unwrap()]);
        command_line.extend_from_slice(args);
        std::process::Command::new(command_line[0]).args(&command_line[1..]).output().expect("run vxflow ctl")
    }

    /// The control socket's path.
    #[must_use]
    pub fn control_socket(&self) -> Option<&std::path::Path> {
        self.control.as_deref()
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    /// What vxflow has logged so far.
    #[must_use]
    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until stderr contains `needle`.
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) {
        self.wait_for_log_count(needle, 1, timeout);
    }

    /// Waits until stderr contains `needle` at least `n` times.
    pub fn wait_for_log_count(&mut self, needle: &str, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.stderr.lock().unwrap().matches(needle).count() >= n {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                panic!("vxflow exited ({status}) before logging {needle:?}:\n{}", self.stderr.lock().unwrap());
            }
            assert!(
                Instant::now() < deadline,
                "vxflow did not log {needle:?} {n} time(s):\n{}",
                self.stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The process id, for signals.
    #[must_use]
    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.as_ref().unwrap().id()).unwrap()
    }

    /// Sends SIGTERM and collects everything it printed; asserts exit 0.
    #[must_use]
    pub fn stop(self) -> Finished {
        self.stop_with(libc::SIGTERM)
    }

    /// Sends `signal` and collects everything it printed; asserts exit 0.
    #[must_use]
    pub fn stop_with(mut self, signal: i32) -> Finished {
        let pid = self.pid();
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(pid, signal) };
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        // Reaped with wait4 rather than `Child::try_wait`, for its resource
        // usage (`ip netns exec` and the wrappers exec, so the child is vxflow).
        let (status, usage) = loop {
            let mut raw = 0;
            // SAFETY: a zeroed rusage is valid, and wait4 fills it.
            let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: our own child, with valid pointers.
            let reaped = unsafe { libc::wait4(pid, &raw mut raw, libc::WNOHANG, &raw mut usage) };
            assert!(reaped >= 0, "wait4: {}", std::io::Error::last_os_error());
            if reaped > 0 {
                break (std::os::unix::process::ExitStatusExt::from_raw(raw), usage);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("vxflow did not exit within 30 s of signal {signal}:\n{}", self.stderr.lock().unwrap());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let status: std::process::ExitStatus = status;
        #[expect(clippy::cast_precision_loss, reason = "seconds of CPU, for display")]
        let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        let cpu_s = seconds(usage.ru_utime) + seconds(usage.ru_stime);
        let peak_bytes = u64::try_from(usage.ru_maxrss).unwrap_or(0) * 1024;
        drop(child);
        if let Some(dir) = self.control.as_ref().and_then(|p| p.parent()) {
            let _ = std::fs::remove_dir_all(dir);
        }
        let lines = self.stdout.take().unwrap().join().unwrap();
        self.stderr_thread.take().unwrap().join().unwrap();
        let stderr = self.stderr.lock().unwrap().clone();
        assert!(status.success(), "vxflow exited with {status}:\n{stderr}");
        let records = lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
            .collect();
        Finished { cpu_s, peak_bytes, records, lines, counters: final_counters(&stderr), stderr }
    }
}

impl Drop for Vxflow {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(dir) = self.control.as_ref().and_then(|p| p.parent()) {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Finished {
    /// The `key=number` fields of the "export totals" line of `collector`
    /// (as vxflow names it, e.g. `netflow5://127.0.0.1:9997`).
    #[must_use]
    pub fn export_totals(&self, collector: &str) -> BTreeMap<String, u64> {
        let needle = format!("collector={collector} ");
        let line = self
            .stderr
            .lines()
            .find(|l| l.contains("export totals") && l.contains(&needle))
            .unwrap_or_else(|| panic!("no export totals for {collector}:\n{}", self.stderr));
        number_fields(line)
    }
}

/// Parses `key=number` fields of the "final counters" log line.
fn final_counters(stderr: &str) -> BTreeMap<String, u64> {
    let Some(line) = stderr.lines().find(|l| l.contains("final counters")) else {
        return BTreeMap::new();
    };
    number_fields(line)
}

fn number_fields(line: &str) -> BTreeMap<String, u64> {
    line.split_whitespace()
        .filter_map(|w| {
            let (k, v) = w.split_once('=')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}
