//! Datapath and memory figures: `cargo bench -p vxflow --bench datapath`
//! (as root). Prints, for the real classifier loaded in the kernel, the mean
//! time per packet through `BPF_PROG_TEST_RUN` for a plain IPv4 TCP packet, a
//! VXLAN (IPv4 in IPv4) TCP packet and an IPv6 TCP packet; the kernel bytes
//! per flow slot; and the userspace cache's resident bytes per flow.

use std::time::Duration;

use aya::programs::{TestRun as _, TestRunOptions};
use vxflow::{
    cache::{CacheConfig, FlowCache},
    drain::{DeltaSource as _, FlowDelta},
    loader::{self, Direction, LoadOptions},
};
use vxflow_common::{FlowKey, FlowStats};
use vxflow_testkit::pcap;

/// Runs per measurement; the kernel reports the mean.
const REPEAT: u32 = 1_000_000;
/// Measurements per packet; the median is printed.
const ROUNDS: usize = 7;

fn ns_per_packet(prog: &aya::programs::SchedClassifier, frame: &[u8]) -> f64 {
    let mut samples: Vec<Duration> = (0..ROUNDS)
        .map(|_| {
            let opts = TestRunOptions { data_in: Some(frame), repeat: REPEAT, ..TestRunOptions::default() };
            prog.test_run(opts).expect("BPF_PROG_TEST_RUN (run as root)").duration
        })
        .collect();
    samples.sort();
    #[expect(clippy::cast_precision_loss, reason = "display only")]
    let ns = samples[ROUNDS / 2].as_nanos() as f64;
    ns
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    // SAFETY: sysconf has no preconditions.
    let page = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap();
    pages * page
}

/// Resident bytes per flow of a cache holding `n` distinct TCP flows.
fn cache_bytes_per_flow(n: u32) -> u64 {
    let deltas: Vec<FlowDelta> = (0..n)
        .map(|i| {
            let mut key = FlowKey { protocol: 6, ip_version: 4, src_port: 40000, dst_port: 80, ..FlowKey::default() };
            key.src_addr[..4].copy_from_slice(&i.to_be_bytes());
            key.dst_addr[..4].copy_from_slice(&[10, 0, 0, 1]);
            FlowDelta {
                key,
                stats: FlowStats { packets: 1, bytes: 60, first_seen_ns: 1, last_seen_ns: 1, ..FlowStats::default() },
            }
        })
        .collect();
    let before = rss_bytes();
    let mut cache = FlowCache::new(CacheConfig { max_flows: n as usize, ..CacheConfig::default() });
    let mut out = Vec::new();
    cache.ingest(&deltas, 1, &mut out);
    assert_eq!(cache.len(), n as usize);
    let grown = rss_bytes() - before;
    drop(cache);
    grown / u64::from(n)
}

/// Fills one generation with distinct flows, then times the drain (flip,
/// read, delete) that empties it.
fn drain_full_generation(
    prog: &aya::programs::SchedClassifier,
    maps: &mut vxflow::drain::kernel::KernelMaps,
    flows: u32,
) {
    for i in 0..flows {
        let mut frame = Vec::new();
        let octets = i.to_be_bytes();
        etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([10, octets[1], octets[2], octets[3]], [10, 255, 0, octets[0].wrapping_add(1)], 64)
            .udp(1000, 53)
            .write(&mut frame, &[0; 16])
            .unwrap();
        let opts = TestRunOptions { data_in: Some(&frame), ..TestRunOptions::default() };
        prog.test_run(opts).unwrap();
    }
    let mut drained = Vec::with_capacity(flows as usize);
    let started = std::time::Instant::now();
    maps.drain(&mut drained).unwrap();
    let took = started.elapsed();
    assert_eq!(drained.len(), flows as usize, "every flow drained once");
    #[expect(clippy::cast_precision_loss, reason = "display only")]
    let per_flow = took.as_nanos() as f64 / f64::from(flows);
    println!(
        "drain of a full generation: {flows} flows in {:.1} ms ({per_flow:.0} ns per flow)",
        took.as_secs_f64() * 1e3
    );
}

fn main() {
    let opts = LoadOptions {
        flow_entries: 65_536,
        fallback_ring_bytes: 1 << 20,
        vxlan_ports: vec![4789, 8472],
        attach: loader::AttachPreference::Auto,
    };
    let (mut datapath, mut maps) = loader::load(&opts).expect("loading the datapath (run as root)");
    // BPF_PROG_TEST_RUN packets arrive on loopback: trust it with tunnels,
    // as the underlay is in production.
    datapath.set_tunnel_interfaces(&std::collections::BTreeSet::from([1])).unwrap();
    let prog = datapath.program(Direction::Ingress).unwrap();
    println!("vxflow datapath, BPF_PROG_TEST_RUN, mean of {REPEAT} runs, median of {ROUNDS} rounds");
    println!("(steady state: the packet's flow is already in the map, as for all but a flow's first packet)");
    for (label, fixture) in [
        ("plain IPv4 TCP", "ipv4-tcp-syn"),
        ("VXLAN IPv4-in-IPv4 TCP", "vxlan-4789-ipv4-tcp"),
        ("IPv6 TCP", "ipv6-tcp-syn"),
    ] {
        let frame = pcap::read(&pcap::classifier_dir().join(format!("{fixture}.pcap")));
        let ns = ns_per_packet(prog, &frame);
        println!("  {label:<24} {ns:>6.1} ns/packet  ({} B frame, fixtures/classifier/{fixture}.pcap)", frame.len());
        let mut drained = Vec::new();
        maps.drain(&mut drained).unwrap();
    }
    // The floor: a frame the parser gives up on at the Ethernet header still
    // pays for the test run itself, the program call and the counters.
    let arp = pcap::read(&pcap::classifier_dir().join("arp.pcap"));
    println!("  {:<24} {:>6.1} ns/packet  (non-IP: the cost floor of a run)", "ARP", ns_per_packet(prog, &arp));

    drain_full_generation(prog, &mut maps, opts.flow_entries);

    if let Some(m) = maps.generation_memory() {
        println!(
            "kernel flow map: {} B for {} entries per generation; {} B per flow slot for both generations",
            m.bytes,
            m.max_entries,
            m.bytes_per_flow()
        );
    }
    for n in [10_000, 100_000, 1_000_000] {
        println!("userspace cache: {} B resident per flow at {n} flows", cache_bytes_per_flow(n));
    }
}
