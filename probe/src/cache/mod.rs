//! The flow cache: merges kernel deltas into flows and decides when each flow
//! ends. Pure state, no kernel and no clock of its own: callers pass `now` in
//! kernel-clock nanoseconds (`CLOCK_MONOTONIC` as of the last tick), the
//! clock the datapath's stamps are converted to.
//!
//! Every counted packet leaves in exactly one record: records carry the counts
//! since the flow's previous record, and an entry's counts are zeroed when
//! they are exported.

use std::{collections::HashSet, num::NonZeroU64, time::Duration};

use vxflow_common::FlowKey;

use self::{
    dedup::{Dedup, FlowSlots},
    table::{SlabMap, SlotId},
    tcp_end::{Conversations, NO_CONVERSATION},
};
use crate::{
    drain::FlowDelta,
    record::{EndReason, FlowRecord},
    tunnel_ids::TunnelRef,
};

pub mod dedup;
mod table;
mod tcp_end;

/// Where the cache puts the records a call ends: a `Vec`, or the daemon's
/// outputs, which take them in chunks so that a pass ending a million flows
/// (an expiry, a shutdown) never holds them all at once.
pub trait RecordOut {
    fn put(&mut self, record: FlowRecord);
}

impl RecordOut for Vec<FlowRecord> {
    fn put(&mut self, record: FlowRecord) {
        self.push(record);
    }
}

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
            // A long flow shows in a record at least once a minute, and an
            // idle one ends 15 s after its last packet: a collector sees
            // connections while they last, at one record a minute per flow.
            active_timeout: Duration::from_mins(1),
            inactive_timeout: Duration::from_secs(15),
            // Long enough for the last ACK and a retransmitted FIN or RST.
            tcp_end_timeout: Duration::from_secs(5),
            // About 220 MB of cache at 223 bytes a flow.
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

/// A cached flow: 56 bytes beside its 92-byte key.
#[derive(Clone, Debug)]
struct Entry {
    /// First packet of the current reporting period (valid unless
    /// [`Entry::is_empty`]).
    start_ns: u64,
    /// Latest packet seen, in any period.
    last_ns: u64,
    packets: u64,
    bytes: u64,
    outer_bytes: u64,
    /// When a TCP flow that ended (FIN both ways, or RST) is to be exported.
    end_at_ns: Option<NonZeroU64>,
    tcp_flags: u8,
    /// FIN seen from each side of the flow's TCP conversation (bit 0 the
    /// side whose key is in order), the same in every flow of it.
    conv_fin: u8,
    /// The next flow of its TCP conversation, in a ring;
    /// [`NO_CONVERSATION`] when it is in none.
    conv_next: SlotId,
}

impl Entry {
    /// Nothing to report since the last record: no packet counted, and no
    /// TCP flag (sampling leaves a SYN, FIN or RST uncounted but adds its
    /// flag, so a connection is never lost from view).
    fn is_empty(&self) -> bool {
        self.packets == 0 && self.tcp_flags == 0
    }
}

impl Default for Entry {
    fn default() -> Self {
        Self {
            start_ns: 0,
            last_ns: 0,
            packets: 0,
            bytes: 0,
            outer_bytes: 0,
            end_at_ns: None,
            tcp_flags: 0,
            conv_fin: 0,
            conv_next: NO_CONVERSATION,
        }
    }
}

pub struct FlowCache {
    config: CacheConfig,
    flows: SlabMap<FlowKey, Entry>,
    conversations: Conversations,
    /// With dedup: which sightings of each packet tuple are kept.
    dedup: Dedup,
    stats: CacheStats,
}

impl FlowCache {
    #[must_use]
    pub fn new(config: CacheConfig) -> Self {
        Self {
            config,
            flows: SlabMap::default(),
            conversations: Conversations::default(),
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

    /// Cached tunnelled flows per tunnel type, id and port.
    #[must_use]
    pub fn flows_per_tunnel(&self) -> std::collections::BTreeMap<TunnelRef, u64> {
        let mut per = std::collections::BTreeMap::new();
        for tunnel in self.flows.keys().filter_map(TunnelRef::of) {
            *per.entry(tunnel).or_insert(0) += 1;
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
            .map(|(_, key, e)| {
                let mut r = record_of(key, e, EndReason::ForcedEnd);
                // An entry emptied by an active-timeout export has no start.
                if e.is_empty() {
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
    pub fn ingest(&mut self, deltas: &[FlowDelta], now_ns: u64, out: &mut impl RecordOut) {
        let (kept, extra) = if self.config.dedup {
            let outcome = self.dedup.batch(deltas, &mut Table::of(&mut self.flows, &mut self.stats));
            self.stats.duplicate_packets += outcome.duplicate_packets;
            self.stats.duplicate_bytes += outcome.duplicate_bytes;
            let kept: Vec<&FlowDelta> = outcome.kept.iter().map(|&i| &deltas[i as usize]).collect();
            (kept, outcome.extra)
        } else {
            (deltas.iter().collect(), self.dedup.take_all())
        };
        let all = || kept.iter().copied().chain(&extra);
        // Each delta's key hashed and looked up once, here.
        let mut found: Vec<(u64, Option<SlotId>)> = all()
            .map(|d| {
                let hash = self.flows.hash(&d.key);
                (hash, self.flows.find_hashed(hash, &d.key))
            })
            .collect();
        let new_keys: HashSet<&FlowKey> =
            all().zip(&found).filter(|(_, (_, slot))| slot.is_none()).map(|(d, _)| &d.key).collect();
        let excess = (self.flows.len() + new_keys.len()).saturating_sub(self.config.max_flows);
        if excess > 0 {
            self.evict_oldest(excess.min(self.flows.len()), out);
            // Evicted slots are free, and may be given to other keys.
            for (_, slot) in &mut found {
                *slot = None;
            }
        }
        // Merging only adds flows, so a slot found above still holds its key.
        for (delta, (hash, slot)) in all().zip(found) {
            self.merge(delta, hash, slot, now_ns, out);
        }
    }

    /// Flows seen on interface `ifindex` stop owning their tuples (it was
    /// detached or vanished); their cached counts are exported as usual.
    pub fn release_interface(&mut self, ifindex: u32) {
        self.dedup.release_interface(ifindex, &mut Table::of(&mut self.flows, &mut self.stats));
    }

    /// Merges `delta`, whose key hashes to `hash` and, if `slot` is given,
    /// is in that slot.
    fn merge(&mut self, delta: &FlowDelta, hash: u64, slot: Option<SlotId>, now_ns: u64, out: &mut impl RecordOut) {
        let s = &delta.stats;
        let flags = u8::try_from(s.tcp_flags & 0xff).unwrap_or(0);
        let slot = if let Some(slot) = slot.or_else(|| self.flows.find_hashed(hash, &delta.key)) {
            let e = self.flows.at_mut(slot);
            if e.is_empty() {
                e.start_ns = s.first_seen_ns;
            } else {
                e.start_ns = e.start_ns.min(s.first_seen_ns);
            }
            e.last_ns = e.last_ns.max(s.last_seen_ns);
            e.packets += s.packets;
            e.bytes += s.bytes;
            e.outer_bytes += s.outer_bytes;
            e.tcp_flags |= flags;
            slot
        } else if self.flows.len() < self.config.max_flows {
            self.stats.created += 1;
            self.flows.insert_new_hashed(
                hash,
                delta.key,
                Entry {
                    start_ns: s.first_seen_ns,
                    last_ns: s.last_seen_ns,
                    packets: s.packets,
                    bytes: s.bytes,
                    outer_bytes: s.outer_bytes,
                    tcp_flags: flags,
                    ..Entry::default()
                },
            )
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
            self.dedup.forget(&delta.key, &mut Table::of(&mut self.flows, &mut self.stats));
            self.emit(record, out);
            return;
        };
        // Once its conversation has ended, every flow of it is scheduled
        // for export.
        if delta.key.protocol == vxflow_common::ipproto::TCP && self.conversations.track(&mut self.flows, slot, flags) {
            let end_at = NonZeroU64::new(now_ns.saturating_add(nanos(self.config.tcp_end_timeout)).max(1));
            tcp_end::for_each_member(&mut self.flows, slot, |e| {
                e.end_at_ns = e.end_at_ns.or(end_at);
            });
        }
    }

    /// Exports what is due at `now_ns`: ended TCP flows, idle flows, and the
    /// counts of flows active for `active_timeout`.
    pub fn expire(&mut self, now_ns: u64, out: &mut impl RecordOut) {
        let inactive = nanos(self.config.inactive_timeout);
        let active = nanos(self.config.active_timeout);
        let mut due: Vec<(SlotId, EndReason)> = Vec::new();
        for (slot, _, e) in self.flows.iter() {
            let reason = if e.end_at_ns.is_some_and(|t| now_ns >= t.get()) {
                EndReason::EndOfFlow
            } else if now_ns.saturating_sub(e.last_ns) >= inactive {
                EndReason::IdleTimeout
            } else if !e.is_empty() && now_ns.saturating_sub(e.start_ns) >= active {
                EndReason::ActiveTimeout
            } else {
                continue;
            };
            due.push((slot, reason));
        }
        for (slot, reason) in due {
            if reason == EndReason::ActiveTimeout {
                let key = *self.flows.at(slot).0;
                let record = take_record(&key, self.flows.at_mut(slot), reason);
                self.emit(record, out);
            } else {
                self.remove(slot, reason, out);
            }
        }
    }

    /// Exports every flow (shutdown), reason 4.
    pub fn flush(&mut self, out: &mut impl RecordOut) {
        // Packets still waiting to be matched as duplicates are counted.
        for delta in self.dedup.take_all() {
            let hash = self.flows.hash(&delta.key);
            self.merge(&delta, hash, None, delta.stats.last_seen_ns, out);
        }
        let slots: Vec<SlotId> = self.flows.iter().map(|(slot, _, _)| slot).collect();
        for slot in slots {
            self.remove(slot, EndReason::ForcedEnd, out);
        }
    }

    /// Exports and removes the `n` least recently seen flows (reason 5).
    fn evict_oldest(&mut self, n: usize, out: &mut impl RecordOut) {
        if n == 0 {
            return;
        }
        let mut by_age: Vec<(u64, SlotId)> = self.flows.iter().map(|(slot, _, e)| (e.last_ns, slot)).collect();
        by_age.select_nth_unstable_by_key(n - 1, |(last, _)| *last);
        for (_, slot) in by_age.into_iter().take(n) {
            self.remove(slot, EndReason::LackOfResources, out);
        }
    }

    /// Removes the flow in `slot`, which must be in use, exporting what it holds.
    fn remove(&mut self, slot: SlotId, reason: EndReason, out: &mut impl RecordOut) {
        self.conversations.leave(&mut self.flows, slot);
        let key = *self.flows.at(slot).0;
        self.dedup.forget(&key, &mut Table::of(&mut self.flows, &mut self.stats));
        let (_, mut e) = self.flows.remove_at(slot);
        // An entry emptied by an active-timeout export has nothing to report.
        if !e.is_empty() {
            let record = take_record(&key, &mut e, reason);
            self.emit(record, out);
        }
    }

    fn emit(&mut self, record: FlowRecord, out: &mut impl RecordOut) {
        self.stats.records[record.end_reason as usize - 1] += 1;
        self.stats.packets += record.packets;
        self.stats.bytes += record.bytes;
        out.put(record);
    }
}

/// The flow table as dedup sees it: owners' flows by slot, made on demand.
struct Table<'a> {
    flows: &'a mut SlabMap<FlowKey, Entry>,
    stats: &'a mut CacheStats,
}

impl<'a> Table<'a> {
    fn of(flows: &'a mut SlabMap<FlowKey, Entry>, stats: &'a mut CacheStats) -> Self {
        Self { flows, stats }
    }
}

impl FlowSlots for Table<'_> {
    fn key(&self, slot: SlotId) -> &FlowKey {
        self.flows.at(slot).0
    }

    fn slot_for(&mut self, key: &FlowKey, seen_ns: u64) -> SlotId {
        let hash = self.flows.hash(key);
        if let Some(slot) = self.flows.find_hashed(hash, key) {
            return slot;
        }
        self.stats.created += 1;
        // No packets yet, so `merge` takes its start from the first delta;
        // last seen as the owner was, so eviction ranks it as recent.
        self.flows.insert_new_hashed(hash, *key, Entry { start_ns: seen_ns, last_ns: seen_ns, ..Entry::default() })
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

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
