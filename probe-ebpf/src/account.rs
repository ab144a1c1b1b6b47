//! Accounting: adds a parsed packet to the current flow-map generation, or to
//! the fallback ring when the map is full, and counts every packet in exactly
//! one bucket counter (see `vxflow_common::counter`).

use core::intrinsics::{AtomicOrdering, atomic_or, atomic_xadd};

use aya_ebpf::{bindings::BPF_NOEXIST, helpers::bpf_ktime_get_boot_ns, programs::TcContext};
use vxflow_common::{Counter, Counters, ExportTuple, FlowKey, FlowStats, vxlan_port_slot};

use crate::{
    maps::{COUNTERS, EXPORT_PORTS, EXPORT_TUPLES, FALLBACK, FLOW_GEN, SCRATCH},
    parse::{NoFlow, Parsed, parse},
};

/// This CPU's counters for the current packet.
struct Tally<'a>(&'a mut Counters);

impl Tally<'_> {
    /// Plain `+=` is safe: the slot is this CPU's and TC programs do not nest
    /// on one CPU.
    #[inline(always)]
    fn add(&mut self, counter: Counter, n: u64) {
        self.0[counter as usize] += n;
    }
}

/// `-EEXIST` from `bpf_map_update_elem` with `BPF_NOEXIST`: another CPU
/// inserted the same key first.
const EEXIST: i32 = 17;

/// Entry point shared by both directions.
#[inline(always)]
pub fn on_packet(ctx: &TcContext, direction: u8) {
    let (Some(scratch), Some(counters)) = (SCRATCH.get_ptr_mut(0), COUNTERS.get_ptr_mut(0)) else {
        return;
    };
    // SAFETY: both slots are this CPU's and TC programs do not nest on one
    // CPU, so nothing else holds a reference to them during this run.
    let (scratch, mut tally) = unsafe { (&mut *scratch, Tally(&mut *counters)) };
    let key = &mut scratch.key;
    clear_key(key);
    key.direction = direction;
    // SAFETY: reading the context field the kernel exposes to sched_cls.
    key.ifindex = unsafe { (*ctx.skb.skb).ifindex };
    match parse(ctx, key, &mut scratch.stash) {
        Ok(parsed) if is_own_export(key) => {
            tally.add(Counter::SelfExport, parsed.packets);
            tally.add(Counter::Seen, parsed.packets);
        }
        Ok(parsed) => account(key, &parsed, &mut tally),
        Err(no_flow) => {
            // SAFETY: as above.
            let segs = u64::from(unsafe { (*ctx.skb.skb).gso_segs }).max(1);
            let bucket = match no_flow {
                NoFlow::NonIp => Counter::NonIp,
                NoFlow::Malformed => Counter::Malformed,
                NoFlow::VlanTooDeep => {
                    tally.add(Counter::VlanTooDeep, segs);
                    Counter::Malformed
                }
            };
            tally.add(bucket, segs);
            tally.add(Counter::Seen, segs);
        }
    }
}

/// Zeroes the key with eight-byte stores. A struct assignment compiles to a
/// call of aya-ebpf's `memset`, which stores one byte at a time.
#[inline(always)]
fn clear_key(key: &mut FlowKey) {
    const WORDS: usize = size_of::<FlowKey>() / 8;
    const _: () = assert!(size_of::<FlowKey>() == WORDS * 8 + 4);
    let words = core::ptr::from_mut(key).cast::<u64>();
    // SAFETY: the key is the first field of the 8-aligned `Scratch` map
    // value (`repr(C)`), so its first 88 bytes are 11 aligned words and its
    // last 4 an aligned `u32`; every bit pattern is a valid `FlowKey`.
    unsafe {
        for i in 0..WORDS {
            core::ptr::write_volatile(words.add(i), 0);
        }
        core::ptr::write_volatile(words.add(WORDS).cast::<u32>(), 0);
    }
}

/// Whether the packet is one of the exporter's own sockets' in the
/// direction userspace listed it for: the port bitmap rules out almost every
/// packet before the exact lookup.
#[inline(always)]
fn is_own_export(key: &FlowKey) -> bool {
    if key.protocol != 6 && key.protocol != 17 {
        return false;
    }
    let marked = |port: u16| {
        let (word, bit) = vxlan_port_slot(port);
        EXPORT_PORTS.get(word).is_some_and(|w| *w & bit != 0)
    };
    if !marked(key.src_port) && !marked(key.dst_port) {
        return false;
    }
    let tuple = ExportTuple {
        src_addr: key.src_addr,
        dst_addr: key.dst_addr,
        src_port: key.src_port,
        dst_port: key.dst_port,
        protocol: key.protocol,
        direction: key.direction,
        _pad: [0; 2],
    };
    EXPORT_TUPLES.get_ptr(tuple).is_some()
}

#[inline(always)]
fn account(key: &FlowKey, p: &Parsed, tally: &mut Tally<'_>) {
    // SAFETY: helper with no preconditions.
    let now = unsafe { bpf_ktime_get_boot_ns() };
    tally.add(Counter::Seen, p.packets);
    count_notes(p, tally);
    tally.add(Counter::GsoSkbs, u64::from(p.packets > 1));
    let Some(flows) = FLOW_GEN.get(0) else {
        // Slot 0 is filled before any program is attached, so this is a
        // broken invariant, not a runtime condition; still never silent.
        lost(p, tally);
        return;
    };
    if let Some(stats) = flows.get_ptr_mut(key) {
        add(stats, p, now);
        tally.add(Counter::Accounted, p.packets);
        return;
    }
    match flows.insert(key, p.stats(now), u64::from(BPF_NOEXIST)) {
        Ok(()) => tally.add(Counter::Accounted, p.packets),
        Err(e) if e == -EEXIST => match flows.get_ptr_mut(key) {
            Some(stats) => {
                add(stats, p, now);
                tally.add(Counter::Accounted, p.packets);
            }
            None => fallback(key, p, now, tally),
        },
        // E2BIG (map full) or ENOMEM.
        Err(_) => fallback(key, p, now, tally),
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
fn fallback(key: &FlowKey, p: &Parsed, now: u64, tally: &mut Tally<'_>) {
    match FALLBACK.reserve(0) {
        Some(mut entry) => {
            // Written field by field into the reservation: building the
            // 136-byte record on the stack first would not fit beside the rest.
            let rec = entry.as_mut_ptr();
            // SAFETY: `rec` points at a reserved, writable FallbackRecord.
            unsafe {
                (&raw mut (*rec).key).write(*key);
                (&raw mut (*rec).stats).write(p.stats(now));
            }
            entry.submit(0);
            tally.add(Counter::Fallback, p.packets);
        }
        None => lost(p, tally),
    }
}

/// Adds the packet to each annotation counter parsing flagged, without a
/// branch per counter (branches here multiply the verifier's paths).
#[inline(always)]
fn count_notes(p: &Parsed, tally: &mut Tally<'_>) {
    for c in Counter::NOTES {
        tally.add(c, p.packets * u64::from((p.notes >> c as u32) & 1));
    }
}

#[inline(always)]
fn lost(p: &Parsed, tally: &mut Tally<'_>) {
    tally.add(Counter::Lost, p.packets);
    tally.add(Counter::LostBytes, p.bytes);
}
