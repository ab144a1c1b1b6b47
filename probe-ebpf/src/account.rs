//! Accounting: adds a parsed packet to the current flow-map generation, or to
//! the fallback ring when the map is full, and counts every packet in exactly
//! one bucket counter (see `vxflow_common::counter`).

use core::intrinsics::{AtomicOrdering, atomic_or, atomic_xadd};

use aya_ebpf::{bindings::BPF_NOEXIST, helpers::bpf_ktime_get_boot_ns, programs::TcContext};
use vxflow_common::{Counter, FlowKey, FlowStats};

use crate::{
    maps::{FALLBACK, FLOW_GEN, KEY_SCRATCH},
    parse::{NoFlow, Parsed, count, parse},
};

/// `-EEXIST` from `bpf_map_update_elem` with `BPF_NOEXIST`: another CPU
/// inserted the same key first.
const EEXIST: i32 = 17;

/// Entry point shared by both directions.
#[inline(always)]
pub fn on_packet(ctx: &TcContext, direction: u8) {
    let Some(key) = KEY_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: the slot is this CPU's and TC programs do not nest on one CPU,
    // so nothing else holds a reference to it during this run.
    let key = unsafe { &mut *key };
    *key = FlowKey {
        direction,
        // SAFETY: reading the context field the kernel exposes to sched_cls.
        ifindex: unsafe { (*ctx.skb.skb).ifindex },
        ..FlowKey::default()
    };
    match parse(ctx, key) {
        Ok(parsed) => account(key, &parsed),
        Err(no_flow) => {
            // SAFETY: as above.
            let segs = u64::from(unsafe { (*ctx.skb.skb).gso_segs }).max(1);
            let bucket = match no_flow {
                NoFlow::NonIp => Counter::NonIp,
                NoFlow::Malformed => Counter::Malformed,
                NoFlow::VlanTooDeep => {
                    count(Counter::VlanTooDeep, segs);
                    Counter::Malformed
                }
            };
            count(bucket, segs);
            count(Counter::Seen, segs);
        }
    }
}

#[inline(always)]
fn account(key: &FlowKey, p: &Parsed) {
    // SAFETY: helper with no preconditions.
    let now = unsafe { bpf_ktime_get_boot_ns() };
    count(Counter::Seen, p.packets);
    count_notes(p);
    let Some(flows) = FLOW_GEN.get(0) else {
        // Slot 0 is filled before any program is attached, so this is a
        // broken invariant, not a runtime condition; still never silent.
        lost(p);
        return;
    };
    if let Some(stats) = flows.get_ptr_mut(key) {
        add(stats, p, now);
        count(Counter::Accounted, p.packets);
        return;
    }
    let fresh = FlowStats {
        packets: p.packets,
        bytes: p.bytes,
        outer_bytes: p.outer_bytes,
        first_seen_ns: now,
        last_seen_ns: now,
        tcp_flags: p.tcp_flags,
    };
    match flows.insert(key, &fresh, u64::from(BPF_NOEXIST)) {
        Ok(()) => count(Counter::Accounted, p.packets),
        Err(e) if e == -EEXIST => match flows.get_ptr_mut(key) {
            Some(stats) => {
                add(stats, p, now);
                count(Counter::Accounted, p.packets);
            }
            None => fallback(key, p, now),
        },
        // E2BIG (map full) or ENOMEM.
        Err(_) => fallback(key, p, now),
    }
}

/// Adds the packet to an existing entry. The counters use `lock xadd` because
/// one entry is shared by every CPU; `last_seen_ns` is a plain store (last
/// writer wins, off by at most the time between two CPUs' clock reads).
#[inline(always)]
fn add(stats: *mut FlowStats, p: &Parsed, now: u64) {
    // SAFETY: `stats` comes from a successful hash-map lookup in this program
    // run; the entry cannot be freed before the program returns (RCU).
    unsafe {
        atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(&raw mut (*stats).packets, p.packets);
        atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(&raw mut (*stats).bytes, p.bytes);
        if p.outer_bytes != 0 {
            atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(&raw mut (*stats).outer_bytes, p.outer_bytes);
        }
        core::ptr::write_volatile(&raw mut (*stats).last_seen_ns, now);
        // Skip the locked op in the common case where the flags are known.
        if p.tcp_flags & !core::ptr::read_volatile(&raw const (*stats).tcp_flags) != 0 {
            atomic_or::<u64, u64, { AtomicOrdering::Relaxed }>(&raw mut (*stats).tcp_flags, p.tcp_flags);
        }
    }
}

/// The flow map is full: hand the packet to userspace through the ring, or,
/// if the ring is full too, count it as lost.
#[inline(always)]
fn fallback(key: &FlowKey, p: &Parsed, now: u64) {
    match FALLBACK.reserve(0) {
        Some(mut entry) => {
            // Written field by field into the reservation: building the
            // 136-byte record on the stack first would not fit beside the rest.
            let rec = entry.as_mut_ptr();
            // SAFETY: `rec` points at a reserved, writable FallbackRecord.
            unsafe {
                (&raw mut (*rec).key).write(*key);
                (&raw mut (*rec).stats).write(FlowStats {
                    packets: p.packets,
                    bytes: p.bytes,
                    outer_bytes: p.outer_bytes,
                    first_seen_ns: now,
                    last_seen_ns: now,
                    tcp_flags: p.tcp_flags,
                });
            }
            entry.submit(0);
            count(Counter::Fallback, p.packets);
        }
        None => lost(p),
    }
}

/// Adds the packet to each annotation counter parsing flagged.
#[inline(always)]
fn count_notes(p: &Parsed) {
    const NOTES: [Counter; 6] = [
        Counter::Fragment,
        Counter::L4Truncated,
        Counter::Ipv6ExtLimit,
        Counter::Vxlan,
        Counter::VxlanInvalid,
        Counter::VxlanInnerNotIp,
    ];
    for c in NOTES {
        if p.notes & (1 << c as u32) != 0 {
            count(c, p.packets);
        }
    }
}

#[inline(always)]
fn lost(p: &Parsed) {
    count(Counter::Lost, p.packets);
    count(Counter::LostBytes, p.bytes);
}
