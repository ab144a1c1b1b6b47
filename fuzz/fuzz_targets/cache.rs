//! Any sequence of kernel deltas, clock steps, expiry passes and shutdowns
//! through the flow cache keeps its promises: every packet and byte ingested
//! is exported exactly once (or, with dedup, counted as a duplicate of
//! another interface's record), the cache never holds more than `max_flows`,
//! no record is empty, and no record ends before it starts. Dedup hides
//! nothing: for every packet tuple, what is exported is at least what any
//! one sighting of it brought, whatever the other sightings (other VNIs,
//! VLANs, forged tunnels) claim.
#![no_main]

use std::{collections::HashMap, time::Duration};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use vxflow::{
    cache::{CacheConfig, FlowCache, dedup::packet_key},
    drain::FlowDelta,
};
use vxflow_common::{FlowKey, FlowStats};

#[derive(Arbitrary, Debug)]
struct Delta {
    /// Few distinct flows, so they meet again.
    src: u8,
    dst: u8,
    sport: u8,
    tcp: bool,
    egress: bool,
    /// Which of a few interfaces saw it, so dedup has sightings to merge.
    ifindex: u8,
    vxlan_src_port: u8,
    /// The tunnel type (`ENCAP_*`, 0 plain), its id and flags.
    tunnel: u8,
    vni: u8,
    tunnel_flags: u8,
    vlan: u8,
    packets: u16,
    bytes_per_packet: u16,
    flags: u8,
    /// Offset of the packets' time before "now", in ms.
    age_ms: u16,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Drain(Vec<Delta>),
    Wait(u16),
    Expire,
}

#[derive(Arbitrary, Debug)]
struct Case {
    active_s: u8,
    inactive_s: u8,
    tcp_end_s: u8,
    max_flows: u8,
    dedup: bool,
    ops: Vec<Op>,
}

fn key(d: &Delta) -> FlowKey {
    let mut k = FlowKey {
        protocol: if d.tcp { 6 } else { 17 },
        ip_version: 4,
        src_port: u16::from(d.sport % 4),
        dst_port: 80,
        direction: u8::from(d.egress),
        ifindex: u32::from(d.ifindex % 3) + 1,
        vlan_id: u16::from(d.vlan % 3),
        ..FlowKey::default()
    };
    k.encap = d.tunnel % (vxflow_common::flow::ENCAP_MAX + 1);
    if let Some(tunnel) = k.tunnel() {
        k.tunnel_id = u32::from(d.vni % 3);
        k.tunnel_flags = d.tunnel_flags % 4;
        k.outer_ip_version = 4;
        if tunnel.is_udp() {
            k.outer_src_port = u16::from(d.vxlan_src_port % 3);
        }
    }
    k.src_addr[..4].copy_from_slice(&[10, 0, 0, d.src % 6]);
    k.dst_addr[..4].copy_from_slice(&[10, 0, 0, d.dst % 6]);
    k
}

fuzz_target!(|case: Case| {
    // The cache's hash tables are seeded per instance, so the order it
    // walks tuples in differs from run to run: a few runs of each case catch
    // what depends on that order.
    for _ in 0..RUNS {
        check(&case);
    }
});

const RUNS: usize = 8;

fn check(case: &Case) {
    let secs = |s: u8| Duration::from_secs(u64::from(s % 30) + 1);
    let max_flows = usize::from(case.max_flows % 16) + 1;
    let mut cache = FlowCache::new(CacheConfig {
        active_timeout: secs(case.active_s),
        inactive_timeout: secs(case.inactive_s),
        tcp_end_timeout: secs(case.tcp_end_s),
        max_flows,
        dedup: case.dedup,
    });
    let mut now: u64 = 1_000_000_000_000;
    let (mut in_packets, mut in_bytes) = (0u64, 0u64);
    let mut per_key: HashMap<FlowKey, u64> = HashMap::new();
    let mut records = Vec::new();
    for op in &case.ops {
        match op {
            Op::Drain(ds) => {
                let deltas: Vec<FlowDelta> = ds
                    .iter()
                    .filter(|d| d.packets > 0)
                    .map(|d| {
                        let at = now - u64::from(d.age_ms) * 1_000_000;
                        let packets = u64::from(d.packets);
                        let bytes = packets * u64::from(d.bytes_per_packet);
                        in_packets += packets;
                        in_bytes += bytes;
                        *per_key.entry(key(d)).or_default() += packets;
                        FlowDelta {
                            key: key(d),
                            stats: FlowStats {
                                packets,
                                bytes,
                                first_seen_ns: at,
                                last_seen_ns: at,
                                tcp_flags: u64::from(d.flags),
                                ..FlowStats::default()
                            },
                        }
                    })
                    .collect();
                cache.ingest(&deltas, now, &mut records);
            }
            Op::Wait(ms) => now += u64::from(*ms) * 1_000_000,
            Op::Expire => cache.expire(now, &mut records),
        }
        assert!(cache.len() <= max_flows, "{} flows held, max {max_flows}", cache.len());
    }
    cache.flush(&mut records);
    assert!(cache.is_empty());
    let stats = cache.stats();
    assert_eq!(records.iter().map(|r| r.packets).sum::<u64>() + stats.duplicate_packets, in_packets);
    assert_eq!(records.iter().map(|r| r.bytes).sum::<u64>() + stats.duplicate_bytes, in_bytes);
    if !case.dedup {
        assert_eq!(stats.duplicate_packets, 0);
    }
    let mut per_tuple: HashMap<FlowKey, u64> = HashMap::new();
    for r in &records {
        *per_tuple.entry(packet_key(&r.key)).or_default() += r.packets;
    }
    for (k, packets) in &per_key {
        let exported = per_tuple.get(&packet_key(k)).copied().unwrap_or(0);
        assert!(exported >= *packets, "{k:?} brought {packets} packets, its tuple exported {exported}");
    }
    for r in &records {
        assert!(r.packets > 0, "empty record {r:?}");
        assert!(r.start_ns <= r.end_ns, "record ends before it starts: {r:?}");
    }
}
