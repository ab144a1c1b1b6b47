//! `vxflow-bench-peers`: vxflow beside softflowd and pmacct's pmacctd
//! (nfprobe), and beside no probe at all, on the Flannel topology. Each
//! probe watches node 1's `eth0` and exports to nfcapd on node 1's loopback;
//! pods on node 2 send to pods on node 1 across the VXLAN overlay. Run it
//! through `scripts/bench-peers.sh`, which builds everything first.
//!
//! Per workload and probe it prints, as the median of interleaved rounds:
//! the packets the collector holds against `eth0`'s counters, the flows,
//! whether pod addresses are visible, the generator's packet rate against
//! the same round with no probe, the whole machine's CPU per million packets
//! above that no-probe run (the kernel's share of a probe, its TC programs
//! or its packet socket, is not charged to the probe's process), and the
//! probe's own CPU time and peak memory.

use std::{
    net::IpAddr,
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use vxflow_testkit::{
    collectors::Nfcapd,
    netns::Netns,
    topology::{Flannel, Offloads, Options},
    traffic, unique_prefix,
};

const COLLECTOR_PORT: u16 = 9995;
/// Flow-cache size given to softflowd and pmacctd, whose defaults (8,192)
/// would end most of the 100,000 flows early; vxflow's default is 10^6.
const PEER_MAX_FLOWS: &str = "200000";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Probe {
    None,
    Softflowd,
    Pmacctd,
    Vxflow,
}

impl Probe {
    const ALL: [Probe; 4] = [Probe::None, Probe::Softflowd, Probe::Pmacctd, Probe::Vxflow];

    fn name(self) -> &'static str {
        match self {
            Probe::None => "no probe",
            Probe::Softflowd => "softflowd 1.1",
            Probe::Pmacctd => "pmacctd (nfprobe)",
            Probe::Vxflow => "vxflow",
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Workload {
    /// Small UDP packets as fast as two senders go, one a core: what a
    /// probe costs shows as a lower rate (both cores are busy anyway).
    MaxRate,
    /// Small UDP packets at a fixed 100,000 a second, below what the machine
    /// carries: what a probe costs shows as CPU time.
    Steady,
    /// 100,000 distinct flows of two packets, at 100,000 packets a second.
    ManyFlows,
    /// TCP (iperf3), a UDP train and ping at once.
    Mix,
}

impl Workload {
    const ALL: [Workload; 4] = [Workload::MaxRate, Workload::Steady, Workload::ManyFlows, Workload::Mix];

    fn name(self) -> &'static str {
        match self {
            Workload::MaxRate => "small UDP at the maximum rate (2 senders x 8,000 flows x 128 packets, unpaced)",
            Workload::Steady => "small UDP at 100,000 packets a second (2 senders x 4,000 flows x 125 packets)",
            Workload::ManyFlows => "100,000 distinct flows (2 packets each, 100,000 packets a second)",
            Workload::Mix => "TCP/UDP/ICMP mix (iperf3 100 MB, 20,000 UDP datagrams, 200 pings, at once)",
        }
    }

    /// Runs the workload; returns how long the generators took.
    fn run(self, topo: &Flannel) -> Duration {
        let (node1, node2) = (&topo.nodes[0], &topo.nodes[1]);
        let started = Instant::now();
        match self {
            Workload::MaxRate | Workload::Steady | Workload::ManyFlows => {
                // Per sender: flows, packets a flow, packets a second.
                let (flows, packets, rate) = match self {
                    Workload::MaxRate => (8_000, 128, 10_000_000),
                    Workload::Steady => (4_000, 125, 50_000),
                    _ => (50_000, 2, 50_000),
                };
                std::thread::scope(|s| {
                    for i in 0..2 {
                        let (from, to) = (&node2.pods[i].ns, node1.pods[i].addr);
                        s.spawn(move || traffic::flowgen(from, to, flows, packets, 18, rate, Duration::from_mins(1)));
                    }
                });
            }
            Workload::Mix => {
                let (p1a, p1b, p2a, p2b) = (&node1.pods[0], &node1.pods[1], &node2.pods[0], &node2.pods[1]);
                std::thread::scope(|s| {
                    s.spawn(|| traffic::iperf3(&p2a.ns, &p1a.ns, p1a.addr, &["-n", "100M"]));
                    s.spawn(|| traffic::udp_train(&p2b.ns, &p1b.ns, p1b.addr, 9999, 20_000, 200));
                    s.spawn(|| traffic::ping(&p2b.ns, p1a.addr, 200, 100));
                });
            }
        }
        started.elapsed()
    }
}

/// A running probe.
struct Running {
    child: Option<Child>,
    dir: std::path::PathBuf,
}

impl Running {
    fn start(probe: Probe, ns: &Netns, vxflow: &std::path::Path) -> Self {
        let dir = std::env::temp_dir().join(unique_prefix("peers"));
        std::fs::create_dir_all(&dir).unwrap();
        let collector = format!("127.0.0.1:{COLLECTOR_PORT}");
        let child = match probe {
            Probe::None => None,
            Probe::Softflowd => {
                let pid = dir.join("softflowd.pid");
                let ctl = dir.join("softflowd.ctl");
                let (pid, ctl) = (pid.to_str().unwrap(), ctl.to_str().unwrap());
                let argv = [
                    "softflowd",
                    "-d",
                    "-i",
                    "eth0",
                    "-n",
                    &collector,
                    "-v",
                    "9",
                    "-m",
                    PEER_MAX_FLOWS,
                    "-p",
                    pid,
                    "-c",
                    ctl,
                ];
                Some(spawn(ns, &argv, &dir.join("probe.log")))
            }
            Probe::Pmacctd => {
                let conf = dir.join("pmacctd.conf");
                std::fs::write(
                    &conf,
                    format!(
                        "daemonize: false\npcap_interface: eth0\nplugins: nfprobe\nnfprobe_receiver: {collector}\n\
                         nfprobe_version: 9\nnfprobe_maxflows: {PEER_MAX_FLOWS}\n\
                         aggregate: src_host, dst_host, src_port, dst_port, proto, tos\n"
                    ),
                )
                .unwrap();
                Some(spawn(ns, &["pmacctd", "-f", conf.to_str().unwrap()], &dir.join("probe.log")))
            }
            Probe::Vxflow => Some(spawn(
                ns,
                &[
                    vxflow.to_str().unwrap(),
                    "run",
                    "--interface",
                    "eth0",
                    "--collector",
                    &format!("ipfix://{collector}"),
                    "--no-metrics",
                    "--no-control",
                ],
                &dir.join("probe.log"),
            )),
        };
        // Every probe gets the same head start to open its capture or load.
        std::thread::sleep(Duration::from_secs(2));
        Self { child, dir }
    }

    fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| i32::try_from(c.id()).unwrap())
    }

    /// Stops the probe so it exports what it holds, and waits for it:
    /// softflowd through `softflowctl shutdown` (on SIGTERM it exits
    /// without exporting), the others on SIGTERM.
    fn stop(mut self, probe: Probe, ns: &Netns) {
        if let Some(mut c) = self.child.take() {
            if probe == Probe::Softflowd {
                let ctl = self.dir.join("softflowd.ctl");
                let _ = ns
                    .command(&["softflowctl", "-c", ctl.to_str().unwrap(), "shutdown"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            } else {
                // SAFETY: kill(2) on our own child.
                unsafe { libc::kill(i32::try_from(c.id()).unwrap(), libc::SIGTERM) };
            }
            let deadline = Instant::now() + Duration::from_secs(30);
            while c.try_wait().unwrap().is_none() {
                if Instant::now() > deadline {
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        if std::env::var_os("VXFLOW_PEER_LOGS").is_some() {
            let log = std::fs::read_to_string(self.dir.join("probe.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(8).collect();
            for line in tail.iter().rev() {
                eprintln!("    | {line}");
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Spawns `argv` in `ns`, its output in `log` (shown with
/// `VXFLOW_PEER_LOGS=1`).
fn spawn(ns: &Netns, argv: &[&str], log: &std::path::Path) -> Child {
    let out = std::fs::File::create(log).unwrap();
    ns.command(argv)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {argv:?}: {e}"))
}

/// Busy CPU seconds of the whole machine so far (`/proc/stat`).
fn host_cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let cpu: Vec<u64> = stat.lines().next().unwrap().split_whitespace().skip(1).map(|v| v.parse().unwrap()).collect();
    // user nice system idle iowait irq softirq (steal, the hypervisor's, is
    // not this machine's work)
    let busy = cpu[0] + cpu[1] + cpu[2] + cpu[5] + cpu[6];
    ticks_to_s(busy)
}

fn ticks_to_s(ticks: u64) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    #[expect(clippy::cast_precision_loss, reason = "seconds for display")]
    let s = ticks as f64 / hz as f64;
    s
}

/// CPU seconds and peak resident bytes of `pid` and its descendants
/// (pmacctd runs its plugin in a child).
fn tree_usage(pid: i32) -> (f64, u64) {
    let mut pids = vec![pid];
    let mut i = 0;
    while i < pids.len() {
        let parent = pids[i];
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(p) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else { continue };
            let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split_whitespace().collect();
            if fields[1].parse::<i32>() == Ok(parent) && !pids.contains(&p) {
                pids.push(p);
            }
        }
        i += 1;
    }
    let (mut cpu, mut peak) = (0.0, 0);
    for p in pids {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else { continue };
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split_whitespace().collect();
        cpu += ticks_to_s(fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap());
        let status = std::fs::read_to_string(format!("/proc/{p}/status")).unwrap_or_default();
        peak += status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
            * 1024;
    }
    (cpu, peak)
}

/// One probe's run of one workload.
#[derive(Clone, Debug, Default)]
struct Measured {
    wire_packets: u64,
    exported_packets: u64,
    flows: u64,
    pods_visible: bool,
    sequence_failures: u64,
    generator_s: f64,
    host_cpu_s: f64,
    probe_cpu_s: f64,
    probe_peak: u64,
    /// vxflow's programs: time in them and runs, from the kernel's BPF
    /// statistics (`kernel.bpf_stats_enabled`).
    bpf_ns: u64,
    bpf_runs: u64,
}

/// Total run time and runs of the loaded programs named `vxflow_*`.
fn bpf_stats() -> (u64, u64) {
    let out = std::process::Command::new("bpftool").args(["prog", "show", "--json"]).output().expect("bpftool");
    let progs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let mut total = (0, 0);
    for p in progs.as_array().into_iter().flatten() {
        if p["name"].as_str().is_some_and(|n| n.starts_with("vxflow_")) {
            total.0 += p["run_time_ns"].as_u64().unwrap_or(0);
            total.1 += p["run_cnt"].as_u64().unwrap_or(0);
        }
    }
    total
}

fn measure(topo: &Flannel, probe: Probe, workload: Workload, vxflow: &std::path::Path) -> Measured {
    let node1 = &topo.nodes[0];
    let nfcapd = Nfcapd::start(&node1.ns, COLLECTOR_PORT);
    let running = Running::start(probe, &node1.ns, vxflow);
    topo.settle(Duration::from_millis(300));
    let before = node1.ns.counters("eth0");
    let cpu_before = host_cpu_s();
    let bpf_before = bpf_stats();
    let took = workload.run(topo);
    let host_cpu = host_cpu_s() - cpu_before;
    let bpf_after = bpf_stats();
    topo.settle(Duration::from_millis(500));
    let wire = node1.ns.counters("eth0").since(&before);
    let (probe_cpu, probe_peak) = running.pid().map_or((0.0, 0), tree_usage);
    running.stop(probe, &node1.ns);
    let collected = nfcapd.stop();
    let pods: Vec<IpAddr> = topo.nodes.iter().flat_map(|n| n.pods.iter().map(|p| p.addr)).collect();
    Measured {
        wire_packets: wire.rx_packets + wire.tx_packets,
        exported_packets: collected.flows.iter().map(|f| f.packets).sum(),
        flows: collected.flows.len() as u64,
        pods_visible: collected.flows.iter().any(|f| pods.contains(&f.src) || pods.contains(&f.dst)),
        sequence_failures: collected.sequence_failures,
        generator_s: took.as_secs_f64(),
        host_cpu_s: host_cpu,
        probe_cpu_s: probe_cpu,
        probe_peak,
        bpf_ns: bpf_after.0 - bpf_before.0,
        bpf_runs: bpf_after.1 - bpf_before.1,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[expect(clippy::cast_precision_loss, reason = "figures for display")]
fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "vxflow-bench-peers creates network namespaces and loads eBPF programs: run scripts/bench-peers.sh as root"
        );
        std::process::exit(1);
    }
    let vxflow = std::path::PathBuf::from(
        std::env::var("VXFLOW_RELEASE_BIN")
            .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release/vxflow").to_owned()),
    );
    let rounds: usize = std::env::var("VXFLOW_PEER_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(4);
    // The kernel's per-program time, for vxflow's datapath cost in the real
    // path; set back on exit.
    let stats_were = std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled").unwrap_or_default();
    std::fs::write("/proc/sys/kernel/bpf_stats_enabled", "1").expect("enabling kernel.bpf_stats_enabled");
    let topo = Flannel::build(&unique_prefix("peers"), Options::default());
    topo.set_offloads(Offloads::Off);
    topo.settle(Duration::from_millis(1500));
    println!("{rounds} interleaved rounds; medians. Host CPU: the whole machine's busy time during the workload.");
    // VXFLOW_PEER_WORKLOADS=1,3 runs only those (1: maximum rate, 2:
    // steady rate, 3: many flows, 4: the mix).
    let only: Option<Vec<usize>> = std::env::var("VXFLOW_PEER_WORKLOADS")
        .ok()
        .map(|v| v.split(',').filter_map(|w| w.trim().parse().ok()).collect());
    // VXFLOW_PEER_PROBES=3 runs only those beside no probe (1: softflowd,
    // 2: pmacctd, 3: vxflow).
    let probes: Option<Vec<usize>> =
        std::env::var("VXFLOW_PEER_PROBES").ok().map(|v| v.split(',').filter_map(|w| w.trim().parse().ok()).collect());
    for (n, workload) in (1..).zip(Workload::ALL) {
        if only.as_ref().is_some_and(|o| !o.contains(&n)) {
            continue;
        }
        let mut runs: Vec<Vec<Measured>> = vec![Vec::new(); Probe::ALL.len()];
        for round in 0..rounds {
            // Interleaved, in an order that rotates each round.
            for k in 0..Probe::ALL.len() {
                let i = (k + round) % Probe::ALL.len();
                if Probe::ALL[i] != Probe::None && probes.as_ref().is_some_and(|p| !p.contains(&i)) {
                    continue;
                }
                let m = measure(&topo, Probe::ALL[i], workload, &vxflow);
                eprintln!("  round {round} {:<18} {m:?}", Probe::ALL[i].name());
                runs[i].push(m);
            }
        }
        println!();
        println!("{}", workload.name());
        println!(
            "| probe | packets on eth0 | packets at the collector | accounted | flows | nfcapd sequence failures | pod addresses | generator rate vs no probe | host CPU s per 10^6 packets above no probe | the same per 10^6 packets accounted | probe CPU s | probe peak MB |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
        let none = &runs[0];
        for (i, probe) in Probe::ALL.iter().enumerate() {
            let r = &runs[i];
            if r.is_empty() {
                continue;
            }
            let med = |f: &dyn Fn(&Measured) -> f64| median(r.iter().map(f).collect());
            let wire = med(&|m| m.wire_packets as f64);
            let exported = med(&|m| m.exported_packets as f64);
            let rate = median(
                r.iter()
                    .zip(none)
                    .map(|(m, n)| (m.wire_packets as f64 / m.generator_s) / (n.wire_packets as f64 / n.generator_s))
                    .collect(),
            );
            let cpu_above = median(
                r.iter()
                    .zip(none)
                    .map(|(m, n)| (m.host_cpu_s - n.host_cpu_s) / (m.wire_packets as f64 / 1e6))
                    .collect(),
            );
            let cpu_accounted = median(
                r.iter()
                    .zip(none)
                    .map(|(m, n)| (m.host_cpu_s - n.host_cpu_s) / (m.exported_packets.max(1) as f64 / 1e6))
                    .collect(),
            );
            if *probe == Probe::None {
                println!(
                    "| {} | {wire:.0} | | | | | | 1.00 | 0 (baseline {:.2} s) | | | |",
                    probe.name(),
                    med(&|m| m.host_cpu_s)
                );
                continue;
            }
            println!(
                "| {} | {wire:.0} | {exported:.0} | {:.2} % | {:.0} | {:.0} | {} | {rate:.3} | {cpu_above:.2} | {cpu_accounted:.2} | {:.2} | {:.0} |",
                probe.name(),
                100.0 * exported / wire.max(1.0),
                med(&|m| m.flows as f64),
                med(&|m| m.sequence_failures as f64),
                if r.iter().all(|m| m.pods_visible) { "yes" } else { "no" },
                med(&|m| m.probe_cpu_s),
                med(&|m| m.probe_peak as f64) / 1e6,
            );
        }
        let v = &runs[3];
        if !v.is_empty() {
            let ns = median(v.iter().map(|m| m.bpf_ns as f64 / m.bpf_runs.max(1) as f64).collect());
            println!();
            println!("vxflow's TC programs in this path (kernel BPF statistics): {ns:.0} ns a run");
        }
    }
    let _ = std::fs::write("/proc/sys/kernel/bpf_stats_enabled", stats_were.trim());
}
