//! Unit tests of the flow cache: end reasons, and conservation of counts.

use std::time::Duration;

use vxflow_common::{
    FlowKey, FlowStats,
    flow::{DIRECTION_EGRESS, DIRECTION_INGRESS, ENCAP_VXLAN},
};

use super::{CacheConfig, FlowCache};
use crate::{
    drain::FlowDelta,
    record::{EndReason, FlowRecord},
};

const S: u64 = 1_000_000_000;

fn config() -> CacheConfig {
    CacheConfig {
        active_timeout: Duration::from_mins(1),
        inactive_timeout: Duration::from_secs(15),
        tcp_end_timeout: Duration::from_secs(5),
        max_flows: 1000,
    }
}

fn key(src: u8, dst: u8, sport: u16, dport: u16, protocol: u8, direction: u8) -> FlowKey {
    let mut k = FlowKey {
        src_port: sport,
        dst_port: dport,
        protocol,
        ip_version: 4,
        direction,
        ifindex: 2,
        ..FlowKey::default()
    };
    k.src_addr[..4].copy_from_slice(&[10, 0, 0, src]);
    k.dst_addr[..4].copy_from_slice(&[10, 0, 0, dst]);
    k
}

fn delta(key: FlowKey, at_s: u64, packets: u64, flags: u8) -> FlowDelta {
    FlowDelta {
        key,
        stats: FlowStats {
            packets,
            bytes: packets * 100,
            outer_bytes: 0,
            first_seen_ns: at_s * S,
            last_seen_ns: at_s * S,
            tcp_flags: u64::from(flags),
        },
    }
}

fn run(cache: &mut FlowCache, deltas: &[FlowDelta], now_s: u64) -> Vec<FlowRecord> {
    let mut out = Vec::new();
    cache.ingest(deltas, now_s * S, &mut out);
    cache.expire(now_s * S, &mut out);
    out
}

#[test]
fn idle_flow_ends_after_inactive_timeout() {
    let mut c = FlowCache::new(config());
    let k = key(1, 2, 1000, 53, 17, DIRECTION_EGRESS);
    assert!(run(&mut c, &[delta(k, 10, 3, 0)], 10).is_empty());
    assert!(run(&mut c, &[], 24).is_empty(), "14 s idle is not yet 15");
    let out = run(&mut c, &[], 25);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].end_reason, EndReason::IdleTimeout);
    assert_eq!((out[0].packets, out[0].bytes), (3, 300));
    assert_eq!((out[0].start_ns, out[0].end_ns), (10 * S, 10 * S));
    assert!(c.is_empty());
}

#[test]
fn long_flow_is_reexported_as_deltas() {
    let mut c = FlowCache::new(config());
    let k = key(1, 2, 1000, 80, 6, DIRECTION_EGRESS);
    let mut records = Vec::new();
    for t in 0..=130 {
        records.extend(run(&mut c, &[delta(k, t, 1, 0x10)], t));
    }
    let mut tail = Vec::new();
    c.flush(&mut tail);
    let active: Vec<_> = records.iter().filter(|r| r.end_reason == EndReason::ActiveTimeout).collect();
    assert_eq!(active.len(), 2, "{records:?}");
    assert_eq!((active[0].start_ns, active[0].end_ns, active[0].packets), (0, 60 * S, 61));
    assert_eq!((active[1].start_ns, active[1].end_ns, active[1].packets), (61 * S, 121 * S, 61));
    assert_eq!(tail.len(), 1);
    assert_eq!((tail[0].end_reason, tail[0].packets), (EndReason::ForcedEnd, 9));
}

#[test]
fn tcp_fin_both_ways_ends_both_flows_after_grace() {
    let mut c = FlowCache::new(config());
    let ab = key(1, 2, 40000, 80, 6, DIRECTION_EGRESS);
    let ba = key(2, 1, 80, 40000, 6, DIRECTION_INGRESS);
    assert!(run(&mut c, &[delta(ab, 1, 5, 0x02 | 0x10), delta(ba, 1, 5, 0x12)], 1).is_empty());
    assert!(run(&mut c, &[delta(ab, 2, 1, 0x11)], 2).is_empty(), "FIN one way only");
    assert!(run(&mut c, &[delta(ba, 3, 1, 0x11)], 3).is_empty(), "grace period");
    let out = run(&mut c, &[delta(ab, 4, 1, 0x10)], 8);
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(out.iter().all(|r| r.end_reason == EndReason::EndOfFlow));
    let ab_rec = out.iter().find(|r| r.key == ab).unwrap();
    assert_eq!(ab_rec.packets, 7, "the last ACK joins the ended flow");
    assert_eq!(ab_rec.tcp_flags, 0x13);
}

#[test]
fn tcp_rst_ends_both_directions_of_vxlan_conversation() {
    let mut c = FlowCache::new(config());
    let mut ab = key(1, 2, 40000, 80, 6, DIRECTION_EGRESS);
    let mut ba = key(2, 1, 80, 40000, 6, DIRECTION_INGRESS);
    for (k, outer_src, outer_dst, sport) in [(&mut ab, 100, 200, 51111), (&mut ba, 200, 100, 37777)] {
        k.encap = ENCAP_VXLAN;
        k.vni = 1;
        k.outer_ip_version = 4;
        k.outer_src_addr[..4].copy_from_slice(&[192, 168, 0, outer_src]);
        k.outer_dst_addr[..4].copy_from_slice(&[192, 168, 0, outer_dst]);
        // Each node hashes the inner flow to its own source port.
        k.outer_src_port = sport;
        k.outer_dst_port = 8472;
    }
    run(&mut c, &[delta(ab, 1, 2, 0x10), delta(ba, 1, 2, 0x10)], 1);
    run(&mut c, &[delta(ba, 2, 1, 0x04)], 2);
    let out = run(&mut c, &[], 7);
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(out.iter().all(|r| r.end_reason == EndReason::EndOfFlow));
}

#[test]
fn full_cache_expires_least_recently_seen_first() {
    let mut c = FlowCache::new(CacheConfig { max_flows: 3, ..config() });
    let keys: Vec<FlowKey> = (1..=5).map(|i| key(i, 9, 1000, 53, 17, DIRECTION_EGRESS)).collect();
    run(&mut c, &[delta(keys[0], 1, 1, 0), delta(keys[1], 3, 1, 0), delta(keys[2], 2, 1, 0)], 3);
    let out = run(&mut c, &[delta(keys[3], 4, 1, 0), delta(keys[4], 4, 1, 0)], 4);
    let evicted: Vec<FlowKey> = out.iter().map(|r| r.key).collect();
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|r| r.end_reason == EndReason::LackOfResources));
    assert!(evicted.contains(&keys[0]) && evicted.contains(&keys[2]), "oldest two go");
    assert_eq!(c.len(), 3);
}

#[test]
fn batch_larger_than_cache_exports_the_rest_on_their_own() {
    let mut c = FlowCache::new(CacheConfig { max_flows: 2, ..config() });
    let deltas: Vec<FlowDelta> = (1..=5).map(|i| delta(key(i, 9, 1, 2, 17, 0), 1, 1, 0)).collect();
    let out = run(&mut c, &deltas, 1);
    assert_eq!(c.len(), 2);
    assert_eq!(out.len(), 3);
    assert_eq!(c.stats().records_for(EndReason::LackOfResources), 3);
}

/// Every packet of every delta leaves in exactly one record, whatever mix of
/// timeouts, TCP ends, evictions and the final flush ends its flow.
#[test]
fn counts_are_conserved_across_every_end_reason() {
    let mut cache = FlowCache::new(CacheConfig {
        active_timeout: Duration::from_secs(7),
        inactive_timeout: Duration::from_secs(3),
        tcp_end_timeout: Duration::from_secs(1),
        max_flows: 40,
    });
    // A small deterministic generator (xorshift), so the test is repeatable.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut sent_packets, mut sent_bytes) = (0u64, 0u64);
    let mut records = Vec::new();
    for t in 0..200u64 {
        // One steady flow, so active timeouts happen too.
        let mut batch = vec![delta(key(200, 201, 7, 7, 17, 0), t, 2, 0)];
        sent_packets += 2;
        sent_bytes += 200;
        for _ in 0..(next() % 30) {
            let rnd = next();
            let (a, b) = (u8::try_from(rnd % 50).unwrap(), u8::try_from((rnd >> 8) % 3).unwrap());
            let flags = [0x10, 0x11, 0x04, 0x02][usize::try_from((rnd >> 16) % 4).unwrap()];
            let proto = if rnd >> 24 & 1 == 0 { 6 } else { 17 };
            let d =
                delta(key(a, b, 1, 2, proto, u8::try_from((rnd >> 32) & 1).unwrap()), t, 1 + (rnd >> 40) % 9, flags);
            sent_packets += d.stats.packets;
            sent_bytes += d.stats.bytes;
            batch.push(d);
        }
        records.extend(run(&mut cache, &batch, t));
    }
    cache.flush(&mut records);
    assert_eq!(records.iter().map(|r| r.packets).sum::<u64>(), sent_packets);
    assert_eq!(records.iter().map(|r| r.bytes).sum::<u64>(), sent_bytes);
    for reason in EndReason::ALL {
        assert!(cache.stats().records_for(reason) > 0, "{reason:?} never happened, test too weak");
    }
    assert!(records.iter().all(|r| r.packets > 0), "no empty records");
}
