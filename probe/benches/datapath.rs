//! Datapath and memory figures: `cargo bench -p vxflow --bench datapath`
//! (as root; needs clang for the C reference). Prints, for the real programs
//! loaded in the kernel: the verifier's instruction counts and the CPU time
//! of loading; the time per packet through `BPF_PROG_TEST_RUN` beside a naive
//! C classifier (`benches/reference/naive_classifier.c`), interleaved, and
//! the ratio, per frame; one flow on one CPU and on two at once; the drain
//! rate; IPFIX encoding on one core; the kernel bytes per flow slot; and the
//! userspace cache's heap bytes per flow and CPU per delta merged.
//!
//! For profiling a change to the programs: `VXFLOW_BENCH_FRAMES_ONLY=1`
//! stops after the frame table, and `VXFLOW_BENCH_ONLY=<fixture>` (a pcap
//! name in `fixtures/classifier/`, say `vxlan-4789-ipv4-tcp`) times only
//! that frame. For a change to the cache: `VXFLOW_BENCH_CACHE_ONLY=1` prints
//! only its figures, and needs no root.

use std::time::Duration;

use aya::programs::{TestRun as _, TestRunOptions};
use vxflow::{
    cache::{CacheConfig, FlowCache},
    datapath::{self, Direction, LoadOptions},
    drain::{DeltaSource as _, FlowDelta},
};
use vxflow_common::{FlowKey, FlowStats};
use vxflow_testkit::pcap;

/// Runs per measurement; the kernel reports the mean.
const REPEAT: u32 = 1_000_000;
/// Measurements per packet; the median is printed.
const ROUNDS: usize = 11;

/// One measurement: the mean time of a run over `REPEAT` runs, from the
/// calling thread's CPU clock around the one syscall that makes them all.
/// The kernel's own figure is the same mean truncated to whole
/// nanoseconds, too coarse for a 28 ns frame; the thread's CPU time, like
/// the kernel's timer, leaves out time the thread is not running, and the
/// syscall's own cost is a few microseconds in 28 ms or more.
fn ns_per_packet(prog: &aya::programs::SchedClassifier, frame: &[u8]) -> f64 {
    let opts = TestRunOptions { data_in: Some(frame), repeat: REPEAT, ..TestRunOptions::default() };
    let started = thread_cpu_ns();
    prog.test_run(opts).expect("BPF_PROG_TEST_RUN (run as root)");
    #[expect(clippy::cast_precision_loss, reason = "display only")]
    let ns = (thread_cpu_ns() - started) as f64 / f64::from(REPEAT);
    ns
}

/// This thread's CPU time in nanoseconds.
fn thread_cpu_ns() -> u64 {
    // SAFETY: a zeroed timespec is valid and clock_gettime fills it.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    assert_eq!(unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut ts) }, 0);
    u64::try_from(ts.tv_sec).unwrap() * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap()
}

/// Heap bytes in use (glibc's arena plus its mmapped blocks). The resident
/// set would count memory freed by an earlier measurement and reused, so
/// later figures would come out too small.
fn heap_bytes() -> u64 {
    // SAFETY: mallinfo2 has no preconditions.
    let m = unsafe { libc::mallinfo2() };
    (m.uordblks + m.hblkhd) as u64
}

/// One delta each of `n` distinct TCP flows.
fn distinct_deltas(n: u32) -> Vec<FlowDelta> {
    (0..n)
        .map(|i| {
            let mut key = FlowKey { protocol: 6, ip_version: 4, src_port: 40000, dst_port: 80, ..FlowKey::default() };
            key.src_addr[..4].copy_from_slice(&i.to_be_bytes());
            key.dst_addr[..4].copy_from_slice(&[10, 0, 0, 1]);
            FlowDelta {
                key,
                stats: FlowStats { packets: 1, bytes: 60, first_seen_ns: 1, last_seen_ns: 1, ..FlowStats::default() },
            }
        })
        .collect()
}

/// Heap bytes per flow of a cache holding `n` distinct TCP flows.
fn cache_bytes_per_flow(n: u32) -> u64 {
    let deltas = distinct_deltas(n);
    let before = heap_bytes();
    let mut cache = FlowCache::new(CacheConfig { max_flows: n as usize, ..CacheConfig::default() });
    let mut out = Vec::new();
    cache.ingest(&deltas, 1, &mut out);
    assert_eq!(cache.len(), n as usize);
    let grown = heap_bytes() - before;
    drop(cache);
    grown / u64::from(n)
}

/// Fills one generation with distinct flows, then times the drain (flip,
/// read, delete) that empties it. The second of two rounds is timed: the
/// daemon reuses its delta buffer, so its pages are already faulted in, and
/// the kernel's element caches are warm.
fn drain_full_generation(
    prog: &aya::programs::SchedClassifier,
    maps: &mut vxflow::datapath::kernel::KernelMaps,
    flows: u32,
) {
    let mut drained = Vec::with_capacity(flows as usize);
    fill_generation(prog, flows);
    maps.drain(&mut drained).unwrap();
    maps.drain(&mut drained).unwrap();
    drained.clear();
    let insert_ns = fill_generation(prog, flows);
    println!("a packet of a new flow (the entry inserted): {insert_ns:.0} ns");
    let full = maps.active_generation_memory().expect("fdinfo of the flow map");
    let cpu = CpuClock::start();
    maps.drain(&mut drained).unwrap();
    let cpu_ms = cpu.elapsed_ms();
    let empty = maps.generation_memory().expect("fdinfo of the flow map");
    println!(
        "kernel flow map: {} B per generation when empty ({} B a slot, both generations), {} B more per flow held",
        empty.bytes,
        empty.bytes_per_flow(),
        (full.bytes - empty.bytes) / u64::from(flows)
    );
    let timing = maps.last_timing();
    assert_eq!(drained.len(), flows as usize, "every flow drained once");
    let per_flow = timing.read.as_secs_f64() * 1e9 / f64::from(flows);
    println!(
        "drain of a full generation: {flows} flows read and deleted in {:.1} ms by {} threads: {per_flow:.0} ns per \
         flow, {:.1} million flows a second; the flip before it (an RCU grace period, once per drain) {:.1} ms",
        timing.read.as_secs_f64() * 1e3,
        maps.drain_threads(),
        1e3 / per_flow,
        timing.flip.as_secs_f64() * 1e3,
    );
    println!(
        "  the process's CPU time over the whole drain, flip included: {cpu_ms:.1} ms, {:.0} ns a flow",
        cpu_ms * 1e6 / f64::from(flows)
    );
}

/// One packet each of `flows` distinct UDP flows through the program.
/// Returns the mean time of a run, as the kernel timed it: each packet is a
/// new flow, so this is what inserting an entry costs.
fn fill_generation(prog: &aya::programs::SchedClassifier, flows: u32) -> f64 {
    let mut total = Duration::ZERO;
    for i in 0..flows {
        let mut frame = Vec::new();
        let octets = i.to_be_bytes();
        etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([10, octets[1], octets[2], octets[3]], [10, 255, 0, octets[0].wrapping_add(1)], 64)
            .udp(1000, 53)
            .write(&mut frame, &[0; 16])
            .unwrap();
        let opts = TestRunOptions { data_in: Some(&frame), ..TestRunOptions::default() };
        total += prog.test_run(opts).unwrap().duration;
    }
    total.as_secs_f64() * 1e9 / f64::from(flows)
}

/// What a packet that sampling leaves out costs (1 in 16,383, so nearly
/// every run is one), beside the same packet counted, with the C reference
/// on it as the yardstick of the run; then sampling is set back to 1.
fn sampled_out_cost(datapath: &mut datapath::Datapath, naive: &aya::programs::SchedClassifier) {
    println!("sampling: a packet left out (1 in 16,383; still parsed for its TCP flags, no flow-map lookup)");
    println!("  {:<28} {:>9} {:>9} {:>9}", "frame", "left out", "counted", "C naive");
    for (label, fixture) in [("IPv4 UDP", "ipv4-udp"), ("VXLAN 8472 IPv4 UDP", "vxlan-8472-ipv4-udp")] {
        let frame = pcap::read(&pcap::classifier_dir().join(format!("{fixture}.pcap")));
        datapath.set_sampling(vxflow::config::limits::MAX_SAMPLING).unwrap();
        let (left_out, _, _) = interleaved(datapath.program(Direction::Ingress).unwrap(), naive, &frame);
        datapath.set_sampling(1).unwrap();
        let (counted, theirs, _) = interleaved(datapath.program(Direction::Ingress).unwrap(), naive, &frame);
        println!("  {label:<28} {left_out:>6.1} ns {counted:>6.1} ns {theirs:>6.1} ns");
    }
}

/// Compiles the naive C reference classifier (with `defines`) and loads it.
fn load_reference(defines: &[&str]) -> (aya::Ebpf, f64) {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/reference/naive_classifier.c");
    let out = std::env::temp_dir().join(format!("vxflow-naive-{}-{}.o", std::process::id(), defines.join("")));
    let arch = std::env::consts::ARCH;
    let status = std::process::Command::new("clang")
        .args(["-O2", "-g", "-target", "bpf", &format!("-I/usr/include/{arch}-linux-gnu"), "-c"])
        .args(defines)
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .status()
        .expect("clang (scripts/setup.sh installs it)");
    assert!(status.success(), "clang failed on {}", src.display());
    let cpu = CpuClock::start();
    let mut ebpf = aya::Ebpf::load_file(&out).expect("loading the C reference");
    let prog: &mut aya::programs::SchedClassifier = ebpf.program_mut("naive_ingress").unwrap().try_into().unwrap();
    prog.load().expect("verifying the C reference");
    let load_ms = cpu.elapsed_ms();
    let _ = std::fs::remove_file(&out);
    (ebpf, load_ms)
}

/// This process's user + system CPU time: program verification runs in
/// the kernel on the loading thread, so it is charged here.
struct CpuClock(Duration);

impl CpuClock {
    fn now() -> Duration {
        // SAFETY: getrusage fills the struct it is given.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        unsafe { libc::getrusage(libc::RUSAGE_SELF, &raw mut ru) };
        let tv = |t: libc::timeval| {
            Duration::from_secs(u64::try_from(t.tv_sec).unwrap())
                + Duration::from_micros(u64::try_from(t.tv_usec).unwrap())
        };
        tv(ru.ru_utime) + tv(ru.ru_stime)
    }

    fn start() -> Self {
        Self(Self::now())
    }

    fn elapsed_ms(&self) -> f64 {
        Self::now().saturating_sub(self.0).as_secs_f64() * 1e3
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Times `ours` and `reference` on `frame` in alternating rounds (which
/// goes first alternates too), after one run each that puts the frame's
/// flow in the map. Returns the median of each and the median of the
/// rounds' ratios: a round's two figures share the machine's state of the
/// moment, so their ratio drifts less than either figure.
fn interleaved(
    ours: &aya::programs::SchedClassifier,
    reference: &aya::programs::SchedClassifier,
    frame: &[u8],
) -> (f64, f64, f64) {
    for prog in [ours, reference] {
        prog.test_run(TestRunOptions { data_in: Some(frame), ..TestRunOptions::default() }).unwrap();
    }
    let (mut a, mut b, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let (x, y) = if round % 2 == 0 {
            let x = ns_per_packet(ours, frame);
            (x, ns_per_packet(reference, frame))
        } else {
            let y = ns_per_packet(reference, frame);
            (ns_per_packet(ours, frame), y)
        };
        a.push(x);
        b.push(y);
        ratios.push(x / y);
    }
    (median(a), median(b), median(ratios))
}

/// Pins the calling thread to `cpu`.
fn pin(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is empty; CPU_SET and sched_setaffinity
    // get valid pointers.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        assert_eq!(libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &raw const set), 0, "pinning to CPU {cpu}");
    }
}

/// Mean ns per run of `prog` on `frame`, on CPU 0 alone and then on CPUs 0
/// and 1 at once (both on the same flow): the median over rounds of each
/// round's slower CPU.
fn contention(prog: &aya::programs::SchedClassifier, frame: &[u8]) -> (f64, f64) {
    let barrier = std::sync::Barrier::new(2);
    let run_on = |cpu: usize, together: bool| {
        pin(cpu);
        (0..ROUNDS)
            .map(|_| {
                if together {
                    barrier.wait();
                }
                ns_per_packet(prog, frame)
            })
            .collect::<Vec<f64>>()
    };
    let alone = std::thread::scope(|s| s.spawn(|| median(run_on(0, false))).join().unwrap());
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| run_on(0, true));
        let b = s.spawn(|| run_on(1, true));
        (a.join().unwrap(), b.join().unwrap())
    });
    let together = median(a.iter().zip(&b).map(|(x, y)| x.max(*y)).collect());
    (alone, together)
}

fn verified(prog: &aya::programs::SchedClassifier) -> u32 {
    prog.info().ok().and_then(|i| i.verified_instruction_count()).unwrap_or(0)
}

/// IPFIX encoding on one core: records of distinct plain and VXLAN flows
/// into 1,400-byte messages.
fn ipfix_encoding() {
    const RECORDS: u32 = 1_000_000;
    let records: Vec<vxflow::record::FlowRecord> = (0..RECORDS)
        .map(|i| {
            let mut key = FlowKey { protocol: 6, ip_version: 4, src_port: 40000, dst_port: 80, ..FlowKey::default() };
            key.src_addr[..4].copy_from_slice(&i.to_be_bytes());
            key.dst_addr[..4].copy_from_slice(&[10, 0, 0, 1]);
            if i % 2 == 1 {
                key.encap = vxflow_common::flow::ENCAP_VXLAN;
                key.tunnel_id = 1;
                key.outer_ip_version = 4;
                key.outer_src_addr[..4].copy_from_slice(&[192, 168, 0, 1]);
                key.outer_dst_addr[..4].copy_from_slice(&[192, 168, 0, 2]);
                key.outer_dst_port = 8472;
            }
            vxflow::record::FlowRecord {
                key,
                start_ns: 1_000_000,
                end_ns: 2_000_000,
                packets: 10,
                bytes: 6000,
                outer_bytes: if i % 2 == 1 { 6500 } else { 0 },
                tcp_flags: 0x12,
                end_reason: vxflow::record::EndReason::IdleTimeout,
            }
        })
        .collect();
    let mut encoder = vxflow::export::ipfix::IpfixEncoder::new(1, 1400).unwrap();
    let clock = vxflow::clock::WallClock::with_offset_ns(1_700_000_000_000_000_000);
    let started = std::time::Instant::now();
    let mut bytes = 0;
    for chunk in records.chunks(10_000) {
        for m in encoder.encode(chunk, &clock, 1_700_000_000, false, None) {
            bytes += m.bytes.len();
        }
    }
    let took = started.elapsed().as_secs_f64();
    println!(
        "IPFIX encoding: {RECORDS} records (half VXLAN) in {:.0} ms on one core: {:.1} million records a second, {} B a record",
        took * 1e3,
        f64::from(RECORDS) / took / 1e6,
        bytes / RECORDS as usize
    );
}

/// CPU per delta of merging drains of `n` distinct flows into the cache
/// (default configuration, so dedup on), in the daemon's batches of a
/// generation, first as new flows and then again as known ones; against the
/// least a cache does, each delta added into a `HashMap<FlowKey, FlowStats>`.
fn cache_ingest(n: u32) {
    const BATCH: usize = 65_536;
    let deltas = distinct_deltas(n);
    let per_delta = |ns: u64| {
        #[expect(clippy::cast_precision_loss, reason = "display only")]
        let per = ns as f64 / f64::from(n);
        per
    };
    let mut cache = FlowCache::new(CacheConfig { max_flows: n as usize, ..CacheConfig::default() });
    let mut out = Vec::new();
    let mut timed = |round: u64| {
        let started = thread_cpu_ns();
        for batch in deltas.chunks(BATCH) {
            cache.ingest(batch, round, &mut out);
        }
        per_delta(thread_cpu_ns() - started)
    };
    let (new, known) = (timed(1), timed(2));
    assert_eq!((cache.len(), out.len()), (n as usize, 0));
    let mut map: std::collections::HashMap<FlowKey, FlowStats> = std::collections::HashMap::new();
    let mut reference = || {
        let started = thread_cpu_ns();
        for d in &deltas {
            let s = map.entry(d.key).or_default();
            s.packets += d.stats.packets;
            s.bytes += d.stats.bytes;
            s.last_seen_ns = s.last_seen_ns.max(d.stats.last_seen_ns);
        }
        per_delta(thread_cpu_ns() - started)
    };
    let (map_new, map_known) = (reference(), reference());
    println!(
        "userspace cache ingest at {n} flows: {new:.0} ns a new flow, {known:.0} a known one; a bare HashMap \
         {map_new:.0} and {map_known:.0}: x{:.2} and x{:.2}",
        new / map_new,
        known / map_known
    );
}

/// The userspace cache's figures.
fn cache_figures() {
    for n in [10_000, 100_000, 1_000_000] {
        println!("userspace cache: {} B of heap per flow at {n} flows", cache_bytes_per_flow(n));
    }
    for n in [100_000, 1_000_000] {
        cache_ingest(n);
    }
}

/// The time-aware IP map at 100,000 pods, each with names, a workload and
/// three labels of the lengths Kubernetes gives them, and one IPv4 address:
/// heap bytes per pod, and the time to resolve an address.
fn metadata_figures() {
    use vxflow::metadata::{
        IpMap, Owner, OwnerKind,
        claim::{Claim, Claimed},
        ipmap::Workload,
    };
    const PODS: u32 = 100_000;
    const NODES: u32 = 2000;
    let before = heap_bytes();
    let mut map = IpMap::new(Duration::from_mins(2));
    // As the kubernetes source holds them: pods by UID through its claimed
    // set, and the nodes, each with an address and a /24 pod CIDR.
    let (mut pods, mut nodes) = (Claimed::default(), Claimed::default());
    let node_name = |n: u32| format!("node-{n:04}.cluster.local");
    let pod_claims = || {
        (0..PODS).map(|i| {
            let owner = Owner {
                kind: OwnerKind::Pod,
                name: format!("web-{:08x}-{i:05}", i.wrapping_mul(2_654_435_761)).into(),
                namespace: Some(format!("team-{:03}", i % 500).into()),
                node: Some(node_name(i % NODES).into()),
                workload: Some(Workload { kind: "Deployment".into(), name: format!("web-{:04}", i % 5000).into() }),
                labels: [
                    ("app".into(), format!("web-{:04}", i % 5000).into()),
                    ("pod-template-hash".into(), format!("{i:010x}").into()),
                    ("tier".into(), "frontend".into()),
                ]
                .into(),
            };
            let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i);
            let uid =
                format!("{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}", i, i % 65_536, i % 4096, i % 4096, u64::from(i) * 7);
            Claim::new(format!("pod/{uid}@kubernetes").into(), owner, vec![ip.into()])
        })
    };
    let started = std::time::Instant::now();
    pods.replace_all(&mut map, pod_claims(), 1);
    let listed = started.elapsed();
    let node_claims = (0..NODES).map(|n| {
        let owner = Owner {
            kind: OwnerKind::Node,
            name: node_name(n).into(),
            namespace: None,
            node: Some(node_name(n).into()),
            workload: None,
            labels: Box::default(),
        };
        let ip = std::net::Ipv4Addr::from(0xc0a8_0000 + n);
        let cidr = ipnet::IpNet::new(std::net::Ipv4Addr::from(0x0b00_0000 + (n << 8)).into(), 24).unwrap();
        Claim {
            networks: vec![cidr],
            ..Claim::new(format!("node/{}@kubernetes", node_name(n)).into(), owner, vec![ip.into()])
        }
    });
    nodes.replace_all(&mut map, node_claims, 1);
    let per_pod = (heap_bytes() - before) / u64::from(PODS);
    println!(
        "metadata: {per_pod} B of heap per pod at {PODS} pods on {NODES} nodes, as the kubernetes source holds them \
         (names, workload, three labels, one address; the nodes' addresses and pod CIDRs counted in)"
    );
    let started = std::time::Instant::now();
    let mut found = 0u32;
    for i in 0..PODS {
        if matches!(
            map.resolve(&std::net::Ipv4Addr::from(0x0a00_0000 + i).into(), 2),
            vxflow::metadata::Resolved::Owner(_)
        ) {
            found += 1;
        }
    }
    assert_eq!(found, PODS);
    println!("metadata: {:.0} ns to resolve an address", started.elapsed().as_secs_f64() * 1e9 / f64::from(PODS));
    // A relist (after 410 Gone) hands every pod over again, in one step of
    // the daemon's loop: the time that step takes.
    let claims: Vec<Claim> = pod_claims().collect();
    let started = std::time::Instant::now();
    pods.replace_all(&mut map, claims, 3);
    println!(
        "metadata: {:.0} ms to apply the first list of {PODS} pods, {:.0} ms for a relist of the same pods",
        listed.as_secs_f64() * 1e3,
        started.elapsed().as_secs_f64() * 1e3
    );
    // Addresses no pod holds, found in a node's pod CIDR.
    let started = std::time::Instant::now();
    let mut in_cidr = 0u32;
    for i in 0..PODS {
        let ip = std::net::Ipv4Addr::from(0x0b00_0000 + ((i % NODES) << 8) + 7);
        if matches!(map.resolve(&ip.into(), 2), vxflow::metadata::Resolved::Owner(_)) {
            in_cidr += 1;
        }
    }
    assert_eq!(in_cidr, PODS);
    println!(
        "metadata: {:.0} ns to resolve an address by its node's pod CIDR ({NODES} CIDRs)",
        started.elapsed().as_secs_f64() * 1e9 / f64::from(PODS)
    );
}

fn main() {
    if std::env::var_os("VXFLOW_BENCH_METADATA_ONLY").is_some() {
        metadata_figures();
        return;
    }
    if std::env::var_os("VXFLOW_BENCH_CACHE_ONLY").is_some() {
        cache_figures();
        return;
    }
    let opts = LoadOptions {
        flow_entries: 65_536,
        fallback_ring_bytes: 1 << 20,
        tunnels: vxflow::datapath::TunnelDecoding::new(vec![4789, 8472], vec![6081], true, true).unwrap(),
        attach: datapath::AttachPreference::Auto,
        sampling: 1,
    };
    let cpu = CpuClock::start();
    let (mut datapath, mut maps) = datapath::load(&opts).expect("loading the datapath (run as root)");
    let load_ms = cpu.elapsed_ms();
    // BPF_PROG_TEST_RUN packets arrive on loopback: trust it with tunnels,
    // as the underlay is in production.
    datapath.set_tunnel_interfaces(&std::collections::BTreeSet::from([1])).unwrap();
    let (reference, ref_load_ms) = load_reference(&[]);
    let naive: &aya::programs::SchedClassifier = reference.program("naive_ingress").unwrap().try_into().unwrap();
    let prog = datapath.program(Direction::Ingress).unwrap();

    println!("verifier: instructions processed (limit 1,000,000 per program; budget 250,000 for vxflow)");
    let mut total = 0;
    for dir in Direction::BOTH {
        let n = verified(datapath.program(dir).unwrap());
        total += n;
        println!("  vxflow {dir:<8} {n:>8}");
    }
    println!("  vxflow total    {total:>8}  ({} left of the budget)", 250_000i64 - i64::from(total));
    println!("  C reference     {:>8}", verified(naive));
    println!("load and verify: vxflow {load_ms:.0} ms CPU, C reference {ref_load_ms:.0} ms CPU");

    println!(
        "datapath, BPF_PROG_TEST_RUN: mean of {REPEAT} runs (thread CPU time), median of {ROUNDS} rounds, vxflow and the C reference interleaved"
    );
    println!("(steady state: the packet's flow is already in the map, as for all but a flow's first packet)");
    println!("(each figure the median of its rounds; the ratio the median of the rounds' ratios)");
    println!("  {:<28} {:>9} {:>9} {:>6}", "frame", "vxflow", "C naive", "ratio");
    for (label, fixture) in [
        ("IPv4 TCP", "ipv4-tcp-syn"),
        ("VXLAN 4789 IPv4 TCP", "vxlan-4789-ipv4-tcp"),
        ("VXLAN 8472 IPv4 UDP", "vxlan-8472-ipv4-udp"),
        ("Geneve IPv4 TCP", "geneve-ipv4-tcp"),
        ("GRE key IPv6 TCP", "gre-key-ipv6"),
        ("IP in IP IPv4 TCP", "ipip-4in4-tcp"),
        ("IPv6 TCP", "ipv6-tcp-syn"),
        ("ARP (non-IP)", "arp"),
        // The slow parse, through bpf_skb_load_bytes, as a non-linear skb
        // takes it (a test run cannot make one).
        ("IPv6 UDP, extension headers", "ipv6-ext-udp"),
    ] {
        if std::env::var("VXFLOW_BENCH_ONLY").is_ok_and(|f| f != fixture) {
            continue;
        }
        let frame = pcap::read(&pcap::classifier_dir().join(format!("{fixture}.pcap")));
        let (ours, theirs, ratio) = interleaved(prog, naive, &frame);
        println!("  {label:<28} {ours:>6.1} ns {theirs:>6.1} ns {ratio:>6.2}");
        let mut drained = Vec::new();
        maps.drain(&mut drained).unwrap();
    }
    if std::env::var_os("VXFLOW_BENCH_FRAMES_ONLY").is_some() {
        return;
    }
    sampled_out_cost(&mut datapath, naive);
    let prog = datapath.program(Direction::Ingress).unwrap();

    println!(
        "contention: one flow (IPv4 TCP) on CPU 0 alone, then on CPUs 0 and 1 at once (the slower CPU's mean per run)"
    );
    let (percpu, _) = load_reference(&["-DPERCPU"]);
    let percpu: &aya::programs::SchedClassifier = percpu.program("naive_ingress").unwrap().try_into().unwrap();
    let frame = pcap::read(&pcap::classifier_dir().join("ipv4-tcp-syn.pcap"));
    for (label, p) in [
        ("vxflow (shared map, atomic adds)", prog),
        ("C, shared map, atomic adds", naive),
        ("C, per-CPU map, plain adds", percpu),
    ] {
        let (alone, together) = contention(p, &frame);
        println!("  {label:<34} {alone:>6.1} ns alone {together:>6.1} ns on two CPUs  x{:.2}", together / alone);
    }
    let mut drained = Vec::new();
    maps.drain(&mut drained).unwrap();

    drain_full_generation(prog, &mut maps, opts.flow_entries);

    ipfix_encoding();

    cache_figures();

    metadata_figures();
}
