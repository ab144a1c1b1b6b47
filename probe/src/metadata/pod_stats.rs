//! Per-pod traffic for the metrics (`metadata.pod_metrics`): for each pod
//! the records name, TCP connections it took part in that opened (a flow of
//! it with SYN) and closed (FIN or RST), and packets and bytes it sent and
//! received. At most `max` pods have series of their own; past that a pod
//! counts under `namespace="other", pod="other"`, and a pod no record has
//! named for ten minutes gives its series up to a new one (its counts going
//! to `other`, so every total only grows).

use std::{collections::HashMap, net::IpAddr};

use super::{IpMap, OwnerKind, Resolved, ipmap::Text};
use crate::{
    record::FlowRecord,
    snapshot::{PodCounts as Counts, PodTraffic},
};

/// A pod whose records stopped this long ago may give its series up.
const IDLE_NS: u64 = 600_000_000_000;
/// The series full, idle ones are looked for at most this often.
const SCAN_EVERY_NS: u64 = 1_000_000_000;

/// TCP flag bits (tcpControlBits).
const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;

impl Counts {
    fn fold(&mut self, o: &Counts) {
        self.tcp_opened += o.tcp_opened;
        self.tcp_closed += o.tcp_closed;
        self.sent_packets += o.sent_packets;
        self.sent_bytes += o.sent_bytes;
        self.received_packets += o.received_packets;
        self.received_bytes += o.received_bytes;
    }
}

#[derive(Debug)]
struct Entry {
    counts: Counts,
    /// The end of the last record that named the pod (kernel ns).
    last: u64,
}

/// The counts, by namespace and pod, bounded.
#[derive(Debug)]
pub struct PodStats {
    max: usize,
    pods: HashMap<(Text, Text), Entry>,
    other: Counts,
    next_scan: u64,
}

impl PodStats {
    #[must_use]
    pub fn new(max: usize) -> Self {
        Self { max, pods: HashMap::new(), other: Counts::default(), next_scan: 0 }
    }

    /// Counts `records` for the pods `map` names at their ends.
    pub fn add(&mut self, records: &[FlowRecord], map: &IpMap) {
        for r in records {
            let k = &r.key;
            let flags = r.tcp_flags;
            let tcp = k.protocol == 6;
            if let Some(counts) = self.slot(map, &k.src_ip(), r.end_ns) {
                counts.sent_packets += r.packets;
                counts.sent_bytes += r.bytes;
                if tcp && flags & SYN != 0 {
                    counts.tcp_opened += 1;
                }
                if tcp && flags & (FIN | RST) != 0 {
                    counts.tcp_closed += 1;
                }
            }
            if let Some(counts) = self.slot(map, &k.dst_ip(), r.end_ns) {
                counts.received_packets += r.packets;
                counts.received_bytes += r.bytes;
            }
        }
    }

    /// The counts of the pod that held `ip` at `at`, if a pod did.
    fn slot(&mut self, map: &IpMap, ip: &IpAddr, at: u64) -> Option<&mut Counts> {
        let Resolved::Owner(o) = map.resolve(ip, at) else { return None };
        if o.kind != OwnerKind::Pod {
            return None;
        }
        let key = (o.namespace.clone().unwrap_or_else(|| "".into()), o.name.clone());
        if !self.pods.contains_key(&key) && self.pods.len() >= self.max && !self.evict_idle(at) {
            return Some(&mut self.other);
        }
        let entry = self.pods.entry(key).or_insert(Entry { counts: Counts::default(), last: at });
        entry.last = entry.last.max(at);
        Some(&mut entry.counts)
    }

    /// Gives up the series of the pod named longest ago, if that was more
    /// than [`IDLE_NS`] before `now`; its counts go to `other`.
    fn evict_idle(&mut self, now: u64) -> bool {
        if now < self.next_scan {
            return false;
        }
        self.next_scan = now + SCAN_EVERY_NS;
        let Some(oldest) = self.pods.iter().min_by_key(|(_, e)| e.last).map(|(k, e)| (k.clone(), e.last)) else {
            return false;
        };
        if now.saturating_sub(oldest.1) < IDLE_NS {
            return false;
        }
        if let Some(e) = self.pods.remove(&oldest.0) {
            self.other.fold(&e.counts);
        }
        true
    }

    /// Every series, `other` last when it has counted anything.
    #[must_use]
    pub fn rows(&self) -> Vec<PodTraffic> {
        let row = |namespace: &str, pod: &str, c: &Counts| PodTraffic {
            namespace: namespace.to_owned(),
            pod: pod.to_owned(),
            counts: *c,
        };
        let mut rows: Vec<PodTraffic> = self.pods.iter().map(|((ns, pod), e)| row(ns, pod, &e.counts)).collect();
        rows.sort_by(|a, b| (&a.namespace, &a.pod).cmp(&(&b.namespace, &b.pod)));
        if self.other != Counts::default() {
            rows.push(row("other", "other", &self.other));
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use vxflow_common::FlowKey;

    use super::*;
    use crate::{
        metadata::{Owner, ipmap::Labels},
        record::EndReason,
    };

    fn pod(name: &str) -> Owner {
        Owner {
            kind: OwnerKind::Pod,
            name: name.into(),
            namespace: Some("shop".into()),
            node: None,
            workload: None,
            labels: Labels::default(),
        }
    }

    fn record(src: [u8; 4], dst: [u8; 4], flags: u8, packets: u64) -> FlowRecord {
        let mut key = FlowKey { protocol: 6, ip_version: 4, ..FlowKey::default() };
        key.src_addr[..4].copy_from_slice(&src);
        key.dst_addr[..4].copy_from_slice(&dst);
        FlowRecord {
            key,
            start_ns: 10,
            end_ns: 20,
            packets,
            bytes: packets * 100,
            outer_bytes: 0,
            tcp_flags: flags,
            end_reason: EndReason::IdleTimeout,
        }
    }

    /// Both ends counted, connections by their flags; past the bound, the
    /// rest under other; every total kept.
    #[test]
    fn counts_both_ends_within_a_bound() {
        let mut map = IpMap::new(std::time::Duration::from_mins(2));
        for (i, name) in ["a", "b", "c"].iter().enumerate() {
            let ip = std::net::Ipv4Addr::new(10, 0, 0, u8::try_from(i).unwrap() + 1);
            map.set(&format!("pod/{name}").into(), pod(name), &[ip.into()], 1);
        }
        let mut stats = PodStats::new(2);
        stats.add(
            &[
                record([10, 0, 0, 1], [10, 0, 0, 2], SYN | 0x10, 5),
                record([10, 0, 0, 2], [10, 0, 0, 1], SYN | 0x10 | FIN, 4),
                record([10, 0, 0, 3], [10, 0, 0, 1], RST, 1),
                record([192, 168, 0, 1], [10, 0, 0, 1], 0, 7),
            ],
            &map,
        );
        let rows = stats.rows();
        let get = |pod: &str| rows.iter().find(|r| r.pod == pod).unwrap();
        let (a, b, other) = (get("a").counts, get("b").counts, get("other").counts);
        assert_eq!((a.tcp_opened, a.sent_packets, a.received_packets), (1, 5, 4 + 1 + 7));
        assert_eq!((b.tcp_opened, b.tcp_closed, b.received_packets), (1, 1, 5));
        assert_eq!((other.tcp_closed, other.sent_packets), (1, 1), "c, past the bound");
        assert_eq!(rows.len(), 3);
    }
}
