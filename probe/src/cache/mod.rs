//! The flow cache: merges kernel deltas into flows and decides when each flow
//! ends. Pure state, no kernel and no clock of its own: callers pass `now` in
//! kernel-clock nanoseconds (`CLOCK_MONOTONIC_COARSE`), the clock the
//! datapath stamps packets with.
//!
//! Every counted packet leaves in exactly one record: records carry the counts
//! since the flow's previous record, and an entry's counts are zeroed when
//! they are exported.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use vxflow_common::{FlowKey, flow::ENCAP_VXLAN};

use self::dedup::{Dedup, packet_key};
use crate::{
    drain::FlowDelta,
    record::{EndReason, FlowRecord},
};

pub mod dedup;

const IPPROTO_TCP: u8 = 6;
const TCP_FIN: u8 = 0x01;
const TCP_RST: u8 = 0x04;

/// Timeouts and size of the cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    /// A flow active this long is exported and goes on (flowEndReason 2).
    pub active_timeout: Duration,
    /// A flow with no packet for this long ends (flowEndReason 1).
    pub inactive_timeout: Duration,
    /// Wait after FIN both ways or RST before ending a TCP flow, so the last
    /// ACK and retransmitted RSTs join it instead of starting a new flow.
    pub tcp_end_timeout: Duration,
    /// Most flows held; past it the least recently seen end early (reason 5).
    pub max_flows: usize,
    /// Count each packet once per flow when several watched interfaces see
    /// it (a pod's veth, `cni0`, `flannel.1`, `eth0`): the flow is kept on
    /// one interface, its owner, and the others' counts are dropped as
    /// duplicates. `false` gives one record per interface.
    pub dedup: bool,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            active_timeout: Duration::from_mins(1),
            inactive_timeout: Duration::from_secs(15),
            tcp_end_timeout: Duration::from_secs(5),
            max_flows: 1_000_000,
            dedup: true,
        }
    }
}

/// Running totals of what the cache did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Flows created (entries inserted).
    pub created: u64,
    /// Records exported, by end reason (index `reason as usize - 1`).
    pub records: [u64; 5],
    /// Packets exported in records.
    pub packets: u64,
    /// Bytes exported in records.
    pub bytes: u64,
    /// Packets and bytes another interface's record already holds (dedup).
    pub duplicate_packets: u64,
    pub duplicate_bytes: u64,
}

impl CacheStats {
    #[must_use]
    pub fn records_for(&self, reason: EndReason) -> u64 {
        self.records[reason as usize - 1]
    }
}

#[derive(Clone, Debug)]
struct Entry {
    /// First packet of the current reporting period (valid when packets > 0).
    start_ns: u64,
    /// Latest packet seen, in any period.
    last_ns: u64,
    packets: u64,
    bytes: u64,
    outer_bytes: u64,
    tcp_flags: u8,
    /// When a TCP flow that ended (FIN both ways, or RST) is to be exported.
    end_at_ns: Option<u64>,
}

/// One TCP conversation, both directions, for FIN/RST tracking.
#[derive(Clone, Debug, Default)]
struct Conversation {
    fin: [bool; 2],
    /// The cached flows of each side: one per interface that records it.
    keys: [Vec<FlowKey>; 2],
}

pub struct FlowCache {
    config: CacheConfig,
    flows: HashMap<FlowKey, Entry>,
    conversations: HashMap<FlowKey, Conversation>,
    /// With dedup: which sightings of each packet tuple are kept.
    dedup: Dedup,
    stats: CacheStats,
}

impl FlowCache {
    #[must_use]
    pub fn new(config: CacheConfig) -> Self {
        Self {
            config,
            flows: HashMap::new(),
            conversations: HashMap::new(),
            dedup: Dedup::default(),
            stats: CacheStats::default(),
        }
    }

    /// Flows in the cache.
    #[must_use]
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    #[must_use]
    pub fn stats(&self) -> &CacheStats {
        &self.stats
    }

    #[must_use]
    pub fn config(&self) -> &CacheConfig {
        &self.config
    }

    /// Replaces the timeouts and size; takes effect at the next expiry pass.
    /// Switching dedup forgets the owners: flows cached so far keep their
    /// counts and are exported as they are, and packets waiting for an
    /// owner's are kept at the next ingest.
    pub fn set_config(&mut self, config: CacheConfig) {
        if config.dedup != self.config.dedup {
            self.dedup.release_all();
        }
        self.config = config;
    }

    /// Cached flows per VXLAN VNI (VXLAN flows only).
    #[must_use]
    pub fn flows_per_vni(&self) -> std::collections::BTreeMap<u32, u64> {
        let mut per = std::collections::BTreeMap::new();
        for key in self.flows.keys().filter(|k| k.encap == ENCAP_VXLAN) {
            *per.entry(key.vni).or_insert(0) += 1;
        }
        per
    }

    /// Up to `limit` cached flows with the most bytes since their previous
    /// record, as records (reason: what shutdown would give them), without
    /// changing anything.
    #[must_use]
    pub fn peek(&self, limit: usize) -> Vec<FlowRecord> {
        let mut all: Vec<FlowRecord> = self
            .flows
            .iter()
            .map(|(key, e)| {
                let mut r = record_of(key, e, EndReason::ForcedEnd);
                // An entry emptied by an active-timeout export has no start.
                if e.packets == 0 {
                    r.start_ns = r.end_ns;
                }
                r
            })
            .collect();
        all.sort_unstable_by(|a, b| b.bytes.cmp(&a.bytes).then(b.packets.cmp(&a.packets)));
        all.truncate(limit);
        all
    }

    /// Merges one drain's deltas. When they would overflow `max_flows`, the
    /// least recently seen flows are exported first (reason 5); a delta that
    /// still finds no room is exported on its own, never dropped.
    pub fn ingest(&mut self, deltas: &[FlowDelta], now_ns: u64, out: &mut Vec<FlowRecord>) {
        let (kept, extra) = if self.config.dedup {
            let outcome = self.dedup.batch(deltas);
            self.stats.duplicate_packets += outcome.duplicate_packets;
            self.stats.duplicate_bytes += outcome.duplicate_bytes;
            let kept: Vec<&FlowDelta> = outcome.kept.iter().map(|&i| &deltas[i as usize]).collect();
            (kept, outcome.extra)
        } else {
            (deltas.iter().collect(), self.dedup.take_all())
        };
        let all = || kept.iter().copied().chain(&extra);
        let new_keys: HashSet<&FlowKey> = all().map(|d| &d.key).filter(|k| !self.flows.contains_key(*k)).collect();
        let excess = (self.flows.len() + new_keys.len()).saturating_sub(self.config.max_flows);
        if excess > 0 {
            self.evict_oldest(excess.min(self.flows.len()), out);
        }
        for delta in all() {
            self.merge(delta, now_ns, out);
        }
    }

    /// Flows seen on interface `ifindex` stop owning their tuples (it was
    /// detached or vanished); their cached counts are exported as usual.
    pub fn release_interface(&mut self, ifindex: u32) {
        self.dedup.release_interface(ifindex);
    }

    fn merge(&mut self, delta: &FlowDelta, now_ns: u64, out: &mut Vec<FlowRecord>) {
        let s = &delta.stats;
        let flags = u8::try_from(s.tcp_flags & 0xff).unwrap_or(0);
        if let Some(e) = self.flows.get_mut(&delta.key) {
            if e.packets == 0 {
                e.start_ns = s.first_seen_ns;
            } else {
                e.start_ns = e.start_ns.min(s.first_seen_ns);
            }
            e.last_ns = e.last_ns.max(s.last_seen_ns);
            e.packets += s.packets;
            e.bytes += s.bytes;
            e.outer_bytes += s.outer_bytes;
            e.tcp_flags |= flags;
        } else if self.flows.len() < self.config.max_flows {
            self.flows.insert(
                delta.key,
                Entry {
                    start_ns: s.first_seen_ns,
                    last_ns: s.last_seen_ns,
                    packets: s.packets,
                    bytes: s.bytes,
                    outer_bytes: s.outer_bytes,
                    tcp_flags: flags,
                    end_at_ns: None,
                },
            );
            self.stats.created += 1;
        } else {
            // Only when one drain brings more new flows than max_flows.
            let record = FlowRecord {
                key: delta.key,
                start_ns: s.first_seen_ns,
                end_ns: s.last_seen_ns,
                packets: s.packets,
                bytes: s.bytes,
                outer_bytes: s.outer_bytes,
                tcp_flags: flags,
                end_reason: EndReason::LackOfResources,
            };
            self.dedup.forget(&delta.key);
            self.emit(record, out);
            return;
        }
        if delta.key.protocol == IPPROTO_TCP {
            self.track_tcp(&delta.key, flags, now_ns);
        }
    }

    /// Records FIN/RST for the flow's conversation and, once it has ended,
    /// schedules every flow of the conversation for export.
    fn track_tcp(&mut self, key: &FlowKey, flags: u8, now_ns: u64) {
        let (conv_key, side) = conversation_key(key);
        let conv = self.conversations.entry(conv_key).or_default();
        let keys = &mut conv.keys[side];
        if !keys.contains(key) {
            // Nearly always one key a side (more only when several watched
            // interfaces record it): grown one at a time, not to Vec's
            // first capacity of four 92-byte keys.
            keys.reserve_exact(1);
            keys.push(*key);
        }
        if flags & TCP_FIN != 0 {
            conv.fin[side] = true;
        }
        let ended = flags & TCP_RST != 0 || conv.fin == [true, true];
        if !ended {
            return;
        }
        let end_at = now_ns + nanos(self.config.tcp_end_timeout);
        for k in conv.keys.iter().flatten() {
            if let Some(e) = self.flows.get_mut(k) {
                e.end_at_ns.get_or_insert(end_at);
            }
        }
    }

    /// Exports what is due at `now_ns`: ended TCP flows, idle flows, and the
    /// counts of flows active for `active_timeout`.
    pub fn expire(&mut self, now_ns: u64, out: &mut Vec<FlowRecord>) {
        let inactive = nanos(self.config.inactive_timeout);
        let active = nanos(self.config.active_timeout);
        let mut due: Vec<(FlowKey, EndReason)> = Vec::new();
        for (key, e) in &self.flows {
            let reason = if e.end_at_ns.is_some_and(|t| now_ns >= t) {
                EndReason::EndOfFlow
            } else if now_ns.saturating_sub(e.last_ns) >= inactive {
                EndReason::IdleTimeout
            } else if e.packets > 0 && now_ns.saturating_sub(e.start_ns) >= active {
                EndReason::ActiveTimeout
            } else {
                continue;
            };
            due.push((*key, reason));
        }
        for (key, reason) in due {
            if reason == EndReason::ActiveTimeout {
                if let Some(e) = self.flows.get_mut(&key) {
                    let record = take_record(&key, e, reason);
                    self.emit(record, out);
                }
            } else {
                self.remove(&key, reason, out);
            }
        }
    }

    /// Exports every flow (shutdown), reason 4.
    pub fn flush(&mut self, out: &mut Vec<FlowRecord>) {
        // Packets still waiting to be matched as duplicates are counted.
        for delta in self.dedup.take_all() {
            self.merge(&delta, delta.stats.last_seen_ns, out);
        }
        let keys: Vec<FlowKey> = self.flows.keys().copied().collect();
        for key in keys {
            self.remove(&key, EndReason::ForcedEnd, out);
        }
    }

    /// Exports and removes the `n` least recently seen flows (reason 5).
    fn evict_oldest(&mut self, n: usize, out: &mut Vec<FlowRecord>) {
        if n == 0 {
            return;
        }
        let mut by_age: Vec<(u64, FlowKey)> = self.flows.iter().map(|(k, e)| (e.last_ns, *k)).collect();
        by_age.select_nth_unstable_by_key(n - 1, |(last, _)| *last);
        for (_, key) in by_age.into_iter().take(n) {
            self.remove(&key, EndReason::LackOfResources, out);
        }
    }

    fn remove(&mut self, key: &FlowKey, reason: EndReason, out: &mut Vec<FlowRecord>) {
        let Some(mut e) = self.flows.remove(key) else {
            return;
        };
        if key.protocol == IPPROTO_TCP {
            let (conv_key, side) = conversation_key(key);
            if let Some(conv) = self.conversations.get_mut(&conv_key) {
                conv.keys[side].retain(|k| k != key);
                if conv.keys.iter().all(Vec::is_empty) {
                    self.conversations.remove(&conv_key);
                }
            }
        }
        self.dedup.forget(key);
        // An entry emptied by an active-timeout export has nothing to report.
        if e.packets > 0 {
            let record = take_record(key, &mut e, reason);
            self.emit(record, out);
        }
    }

    fn emit(&mut self, record: FlowRecord, out: &mut Vec<FlowRecord>) {
        self.stats.records[record.end_reason as usize - 1] += 1;
        self.stats.packets += record.packets;
        self.stats.bytes += record.bytes;
        out.push(record);
    }
}

/// An entry's counts as a record.
fn record_of(key: &FlowKey, e: &Entry, end_reason: EndReason) -> FlowRecord {
    FlowRecord {
        key: *key,
        start_ns: e.start_ns,
        end_ns: e.last_ns,
        packets: e.packets,
        bytes: e.bytes,
        outer_bytes: e.outer_bytes,
        tcp_flags: e.tcp_flags,
        end_reason,
    }
}

/// Moves an entry's counts into a record, leaving the entry empty.
fn take_record(key: &FlowKey, e: &mut Entry, end_reason: EndReason) -> FlowRecord {
    let record = record_of(key, e, end_reason);
    e.packets = 0;
    e.bytes = 0;
    e.outer_bytes = 0;
    e.tcp_flags = 0;
    record
}

/// The key both directions of a TCP conversation share, and which side `key`
/// is: the packet key (so the two directions pair up even when they are
/// recorded on different interfaces, as dedup may do), in one orientation.
fn conversation_key(key: &FlowKey) -> (FlowKey, usize) {
    let mut k = packet_key(key);
    let forward = (k.src_addr, k.src_port) <= (k.dst_addr, k.dst_port);
    if forward {
        (k, 0)
    } else {
        std::mem::swap(&mut k.src_addr, &mut k.dst_addr);
        std::mem::swap(&mut k.src_port, &mut k.dst_port);
        (k, 1)
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
