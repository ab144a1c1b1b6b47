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

fn main() {
    let opts = LoadOptions {
        flow_entries: 65_536,
        fallback_ring_bytes: 1 << 20,
        vxlan_ports: vec![4789, 8472],
        attach: loader::AttachPreference::Auto,
    };
    let (datapath, mut maps) = loader::load(&opts).expect("loading the datapath (run as root)");
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
