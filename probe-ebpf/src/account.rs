//! Accounting: parses a packet layer by layer (see `parse`), then adds it
//! to the current flow-map generation, or to the fallback ring when the map
//! is full, and counts every packet in exactly one bucket counter (see
//! `vxflow_common::counter`).

use core::{
    intrinsics::{AtomicOrdering, atomic_or, atomic_xadd},
    ptr::read_volatile,
};

use aya_ebpf::{
    bindings::{__sk_buff, BPF_NOEXIST},
    helpers::bpf_ktime_get_coarse_ns,
    programs::TcContext,
};
use vxflow_common::{
    Counter, Counters, ExportTuple, FlowKey, FlowStats,
    flow::{ENCAP_VXLAN, KEY_FLAG_EXT_LIMIT, KEY_FLAG_FRAGMENT, KEY_FLAG_L4_TRUNCATED},
    vxlan_port_slot,
};

use crate::{
    maps::{COUNTERS, EXPORT_PORTS, EXPORT_TUPLES, FALLBACK, FLOW_GEN, SCRATCH, Scratch},
    parse::{
        IPPROTO_UDP, Layer, NON_IP, PARSED, SLOW, Status, TUNNEL_VXLAN, VLAN_TOO_DEEP, vxflow_parse_linear,
        vxflow_parse_skb,
    },
    wire::{Wire, wire},
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

/// What an accounted packet adds to its flow.
struct Parsed {
    wire: Wire,
    tcp_flags: u64,
    /// `1 << Counter` bits of the annotation counters it adds to.
    notes: u32,
}

impl Parsed {
    /// A flow entry holding just this packet, seen at `now`.
    #[inline(always)]
    fn stats(&self, now: u64) -> FlowStats {
        FlowStats {
            packets: self.wire.packets,
            bytes: self.wire.bytes,
            outer_bytes: self.wire.outer_bytes,
            first_seen_ns: now,
            last_seen_ns: now,
            tcp_flags: self.tcp_flags,
        }
    }
}

#[inline(always)]
const fn note(c: Counter) -> u32 {
    1 << c as u32
}

/// Entry point shared by both directions.
#[inline(always)]
pub fn on_packet(ctx: &TcContext, direction: u8) {
    let (Some(scratch), Some(counters)) = (SCRATCH.get_ptr_mut(0), COUNTERS.get_ptr_mut(0)) else {
        return;
    };
    // SAFETY: this CPU's slot, and TC programs do not nest on one CPU.
    let mut tally = Tally(unsafe { &mut *counters });
    {
        // SAFETY: as above; the reference ends before the parse writes the key.
        let key = unsafe { &mut (*scratch).key };
        clear_key(key);
        key.direction = direction;
        // SAFETY: reading the context field the kernel exposes to sched_cls.
        key.ifindex = unsafe { (*ctx.skb.skb).ifindex };
    }
    let mut slow = false;
    let layers = parse(ctx.skb.skb, scratch, &mut slow);
    if slow {
        tally.add(Counter::SlowParse, 1);
    }
    // SAFETY: as above; the parse is over.
    let key = unsafe { &(*scratch).key };
    match layers.map(|layers| counted(ctx, key, &layers)) {
        Ok(p) if is_own_export(key) => {
            tally.add(Counter::SelfExport, p.wire.packets);
            tally.add(Counter::Seen, p.wire.packets);
        }
        Ok(p) => account(key, &p, &mut tally),
        Err(status) => {
            // SAFETY: as above.
            let segs = u64::from(unsafe { (*ctx.skb.skb).gso_segs }).max(1);
            let bucket = match status {
                NON_IP => Counter::NonIp,
                VLAN_TOO_DEEP => {
                    tally.add(Counter::VlanTooDeep, segs);
                    Counter::Malformed
                }
                _ => Counter::Malformed,
            };
            tally.add(bucket, segs);
            tally.add(Counter::Seen, segs);
        }
    }
}

/// The layers a packet was parsed into.
struct Layers {
    /// The layer whose tuple is the flow's (the inner one for a tunnel).
    counted: Layer,
    /// The tunnel's outer layer, all zero without a tunnel. Not an
    /// `Option`: LLVM may move values of a `None`'s undefined payload
    /// between registers, which the verifier rejects as reading an
    /// uninitialized register.
    outer: Layer,
    tunnelled: bool,
    notes: u32,
}

/// Parses the frame, and the inner frame of a tunnel this node terminates,
/// into the scratch key. `slow` is set when a layer was parsed through
/// `bpf_skb_load_bytes`.
#[inline(always)]
fn parse(skb: *mut __sk_buff, scratch: *mut Scratch, slow: &mut bool) -> Result<Layers, Status> {
    let status = parse_layer(skb, 0, false, slow);
    if status != PARSED {
        return Err(status);
    }
    // SAFETY: `scratch` is this CPU's slot, written by the parse above;
    // volatile because the parse wrote it through a pointer of its own.
    let outer = unsafe { read_volatile(&raw const (*scratch).layer) };
    if outer.tunnel != TUNNEL_VXLAN {
        return Ok(Layers { counted: outer, outer: Layer::default(), tunnelled: false, notes: outer.notes });
    }
    // SAFETY: as above; no other reference to the key is live.
    move_tuple_to_outer(unsafe { &mut (*scratch).key }, outer.vni);
    if parse_layer(skb, outer.inner_off.into(), true, slow) == PARSED {
        // SAFETY: as above.
        let inner = unsafe { read_volatile(&raw const (*scratch).layer) };
        // SAFETY: as above.
        unsafe { (*scratch).key.encap = ENCAP_VXLAN };
        return Ok(Layers { counted: inner, outer, tunnelled: true, notes: note(Counter::Vxlan) | inner.notes });
    }
    // The inner frame is not IP: the packet is the outer UDP flow.
    // SAFETY: as above.
    restore_outer_tuple(unsafe { &mut (*scratch).key });
    Ok(Layers { counted: outer, outer: Layer::default(), tunnelled: false, notes: note(Counter::VxlanInnerNotIp) })
}

/// One layer, read in place, or through `bpf_skb_load_bytes` when the
/// fast parse leaves it (a non-linear skb, IPv6 extension headers).
#[inline(always)]
fn parse_layer(skb: *mut __sk_buff, eth_off: u64, inner: bool, slow: &mut bool) -> Status {
    // SAFETY: `skb` is this program's context.
    let status = unsafe { vxflow_parse_linear(skb, eth_off, u64::from(inner)) };
    if status != SLOW {
        return status;
    }
    *slow = true;
    // SAFETY: as above.
    unsafe { vxflow_parse_skb(skb, eth_off, u64::from(inner)) }
}

#[inline(always)]
fn counted(ctx: &TcContext, key: &FlowKey, layers: &Layers) -> Parsed {
    let wire = wire(ctx, &layers.counted, layers.tunnelled.then_some(&layers.outer));
    let mut notes = layers.notes;
    if key.flags != 0 {
        for (flag, counter) in [
            (KEY_FLAG_FRAGMENT, Counter::Fragment),
            (KEY_FLAG_L4_TRUNCATED, Counter::L4Truncated),
            (KEY_FLAG_EXT_LIMIT, Counter::Ipv6ExtLimit),
        ] {
            if key.flags & flag != 0 {
                notes |= note(counter);
            }
        }
    }
    Parsed { wire, tcp_flags: u64::from(layers.counted.tcp_flags), notes }
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

/// Copies the 16-byte address at `src` to `dst` (both fields of the key)
/// as two eight-byte words, and zeroes `src` when `clear`.
#[inline(always)]
fn move_addr(dst: *mut [u8; 16], src: *mut [u8; 16], clear: bool) {
    let (d, s) = (dst.cast::<u64>(), src.cast::<u64>());
    // SAFETY: the four address fields start at offsets 0, 16, 32 and 48 of
    // the key, which starts the 8-aligned scratch value (asserted in maps).
    unsafe {
        core::ptr::write_volatile(d, core::ptr::read_volatile(s));
        core::ptr::write_volatile(d.add(1), core::ptr::read_volatile(s.add(1)));
        if clear {
            core::ptr::write_volatile(s, 0);
            core::ptr::write_volatile(s.add(1), 0);
        }
    }
}

/// A tunnel was found: its tuple moves to the `outer_*` fields, and the
/// plain ones wait for the inner packet's.
#[inline(always)]
fn move_tuple_to_outer(key: &mut FlowKey, vni: u32) {
    move_addr(&raw mut key.outer_src_addr, &raw mut key.src_addr, false);
    move_addr(&raw mut key.outer_dst_addr, &raw mut key.dst_addr, false);
    key.outer_src_port = key.src_port;
    key.outer_dst_port = key.dst_port;
    key.outer_ip_version = key.ip_version;
    key.vni = vni;
}

/// The inner frame was not IP: the plain fields get the outer tuple back
/// (a UDP flow), and the tunnel fields are cleared.
#[inline(always)]
fn restore_outer_tuple(key: &mut FlowKey) {
    move_addr(&raw mut key.src_addr, &raw mut key.outer_src_addr, true);
    move_addr(&raw mut key.dst_addr, &raw mut key.outer_dst_addr, true);
    key.ip_version = key.outer_ip_version;
    key.protocol = IPPROTO_UDP;
    key.src_port = key.outer_src_port;
    key.dst_port = key.outer_dst_port;
    key.outer_ip_version = 0;
    key.outer_src_port = 0;
    key.outer_dst_port = 0;
    key.vni = 0;
    // A tunnel was only considered for a complete, unfragmented UDP header.
    key.flags = 0;
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
    // The coarse clock (CLOCK_MONOTONIC_COARSE) is the last tick's time, a
    // load, where the boot clock reads the clocksource through an indirect
    // call: about 25 ns a packet here. Records carry the tick's resolution
    // (4 ms at CONFIG_HZ=250), finer than the milliseconds they export.
    // SAFETY: helper with no preconditions.
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    tally.add(Counter::Seen, p.wire.packets);
    count_notes(p, tally);
    tally.add(Counter::GsoSkbs, u64::from(p.wire.packets > 1));
    let Some(flows) = FLOW_GEN.get(0) else {
        // Slot 0 is filled before any program is attached, so this is a
        // broken invariant, not a runtime condition; still never silent.
        lost(p, tally);
        return;
    };
    if let Some(stats) = flows.get_ptr_mut(key) {
        add(stats, p, now);
        tally.add(Counter::Accounted, p.wire.packets);
        return;
    }
    match flows.insert(key, p.stats(now), u64::from(BPF_NOEXIST)) {
        Ok(()) => tally.add(Counter::Accounted, p.wire.packets),
        Err(e) if e == -EEXIST => match flows.get_ptr_mut(key) {
            Some(stats) => {
                add(stats, p, now);
                tally.add(Counter::Accounted, p.wire.packets);
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
        atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(&raw mut (*stats).packets, p.wire.packets);
        atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(&raw mut (*stats).bytes, p.wire.bytes);
        if p.wire.outer_bytes != 0 {
            atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(&raw mut (*stats).outer_bytes, p.wire.outer_bytes);
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
            tally.add(Counter::Fallback, p.wire.packets);
        }
        None => lost(p, tally),
    }
}

/// Adds the packet to each annotation counter parsing flagged, without a
/// branch per counter (branches here multiply the verifier's paths).
#[inline(always)]
fn count_notes(p: &Parsed, tally: &mut Tally<'_>) {
    if p.notes == 0 {
        return;
    }
    for c in Counter::NOTES {
        tally.add(c, p.wire.packets * u64::from((p.notes >> c as u32) & 1));
    }
}

#[inline(always)]
fn lost(p: &Parsed, tally: &mut Tally<'_>) {
    tally.add(Counter::Lost, p.wire.packets);
    tally.add(Counter::LostBytes, p.wire.bytes);
}
