//! Accounting: parses a packet (see `frame`), then adds it to the current
//! flow-map generation, or to the fallback ring when the map
//! is full, and counts every packet in exactly one bucket counter (see
//! `vxflow_common::counter`).

use core::intrinsics::{AtomicOrdering, atomic_or, atomic_xadd};

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::{bpf_get_prandom_u32, bpf_get_smp_processor_id, bpf_jiffies64},
    programs::TcContext,
};
use vxflow_common::{
    Counter, Counters, DatapathStats, ExportTuple, FlowKey, NON_IP_CPUS, NonIpSlot,
    classify::{
        Counted, NON_IP, SLOW, VLAN_TOO_DEEP, Wire, counted, layers,
        parse::{ETH_P_8021AD, ETH_P_8021Q, ETH_P_IP, ETH_P_IPV6},
    },
    flow::DIRECTION_EGRESS,
    ports::PortBit,
};

use crate::{
    bytes::ethertype,
    frame::{frame_linear, vxflow_frame_skb},
    maps::{COUNTERS, EXPORT_PORTS, EXPORT_TUPLES, FALLBACK, FLOW_GEN, NON_IP_FRAMES, SAMPLING, SCRATCH},
    packet::Tc,
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
    let skb = ctx.skb.skb;
    if surely_not_ip(ctx) {
        // SAFETY: reading a context field the kernel exposes to sched_cls.
        let segs = u64::from(unsafe { (*skb).gso_segs }).max(1);
        count_non_ip(segs);
        return;
    }
    let Some(counters) = COUNTERS.get_ptr_mut(0) else { return };
    // SAFETY: this CPU's slot, and TC programs do not nest on one CPU.
    let mut tally = Tally(unsafe { &mut *counters });
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else { return };
    // SAFETY: this CPU's slot; TC programs do not nest on one CPU. The
    // reference ends before the slow parse writes the slot its own way.
    let mut status = frame_linear(ctx, unsafe { &mut *scratch }, direction);
    if status == SLOW {
        tally.add(Counter::SlowParse, 1);
        // SAFETY: as above.
        status = unsafe { vxflow_frame_skb(skb, u64::from(direction)) };
    }
    // SAFETY: this CPU's slot, written by the parse; no other reference
    // to it is live.
    let scratch = unsafe { &*scratch };
    let layers = layers(status, scratch);
    let key = &scratch.key;
    match layers.map(|layers| counted(&Tc(ctx), key, &layers)) {
        Ok(p) if is_own_export(key) => {
            tally.add(Counter::SelfExport, p.wire.packets);
            tally.add(Counter::Seen, p.wire.packets);
        }
        Ok(p) => {
            // Drawn after the parse, which every IP packet gets anyway (an
            // unsampled TCP SYN, FIN or RST must reach its flow), and not
            // carried across it, so the verifier does not walk the parse
            // once per outcome of the draw.
            let p = if sampled_out() {
                tally.add(Counter::Unsampled, p.wire.packets);
                tally.add(Counter::Seen, p.wire.packets);
                if p.tcp_flags & TCP_CONTROL == 0 {
                    return;
                }
                // Flags and times only: the counts stay an unbiased sample.
                Counted { wire: Wire { packets: 0, bytes: 0, outer_bytes: 0 }, notes: 0, ..p }
            } else {
                p
            };
            account(key, &p, &mut tally);
        }
        Err(status) => {
            // SAFETY: reading a context field the kernel exposes to sched_cls.
            let segs = u64::from(unsafe { (*skb).gso_segs }).max(1);
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

/// Counts a non-IP frame of `segs` segments in this CPU's slot of
/// `NON_IP_FRAMES`, or in `COUNTERS` on a CPU past the array.
#[inline(always)]
fn count_non_ip(segs: u64) {
    // SAFETY: helper with no preconditions.
    let cpu = unsafe { bpf_get_smp_processor_id() } as usize;
    if cpu < NON_IP_CPUS {
        // SAFETY: this CPU's slot, in bounds; TC programs do not nest on one
        // CPU and no other CPU writes it.
        unsafe { (*(&raw mut NON_IP_FRAMES).cast::<NonIpSlot>().add(cpu)).frames += segs };
    } else if let Some(counters) = COUNTERS.get_ptr_mut(0) {
        // SAFETY: as for `on_packet`'s tally.
        let mut tally = Tally(unsafe { &mut *counters });
        tally.add(Counter::NonIp, segs);
        tally.add(Counter::Seen, segs);
    }
}

/// TCP SYN, FIN and RST: kept whatever the sampling, so no connection's
/// start or end is lost from view.
const TCP_CONTROL: u64 = 0x01 | 0x02 | 0x04;

/// Whether sampling leaves this packet out: never when `kernel.sampling` is
/// 1, the default, which costs one array load and no random number.
#[inline(always)]
fn sampled_out() -> bool {
    let skip_below = SAMPLING.get(0).copied().unwrap_or(0);
    // SAFETY: helper with no preconditions.
    skip_below != 0 && unsafe { bpf_get_prandom_u32() } < skip_below
}

/// A frame whose Ethernet type, in the linear area, is neither IP nor a
/// VLAN tag: ARP, LLDP and the like are counted without a parse. Anything
/// else, including a frame too short to tell, goes to the parser.
#[inline(always)]
fn surely_not_ip(ctx: &TcContext) -> bool {
    ethertype(ctx).is_some_and(|t| !matches!(t, ETH_P_IP | ETH_P_IPV6 | ETH_P_8021Q | ETH_P_8021AD))
}

/// Whether the packet is one of the exporter's own sockets' in the
/// direction userspace listed it for: the port bitmap rules out almost every
/// packet before the exact lookup. Listed tuples go out from a local port
/// (egress) or come back to one (ingress), so only that port is looked up.
#[inline(always)]
fn is_own_export(key: &FlowKey) -> bool {
    if key.protocol != 6 && key.protocol != 17 {
        return false;
    }
    let local = if key.direction == DIRECTION_EGRESS { key.src_port } else { key.dst_port };
    let bit = PortBit::of(local);
    if !EXPORT_PORTS.get(bit.word).is_some_and(|w| bit.is_set_in(*w)) {
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
fn account(key: &FlowKey, p: &Counted, tally: &mut Tally<'_>) {
    // Jiffies: the verifier inlines bpf_jiffies64 as one load, where
    // bpf_ktime_get_coarse_ns is a call into the kernel (about 11 ns a
    // packet with return-thunk mitigations). Userspace maps a jiffy to the
    // monotonic time its tick began (`probe/src/datapath/ticks.rs`): records keep the tick's
    // resolution (4 ms at CONFIG_HZ=250), as with the coarse clock before.
    // SAFETY: helper with no preconditions.
    let now = unsafe { bpf_jiffies64() };
    tally.add(Counter::Seen, p.wire.packets);
    count_notes(p, tally);
    if p.wire.packets > 1 {
        tally.add(Counter::GsoSkbs, 1);
    }
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
/// one entry is shared by every CPU; `last_seen_jiffies` is a plain store (last
/// writer wins, off by at most the time between two CPUs' clock reads).
#[inline(always)]
fn add(stats: *mut DatapathStats, p: &Counted, now: u64) {
    // SAFETY: `stats` comes from a successful hash-map lookup in this program
    // run; the entry cannot be freed before the program returns (RCU).
    unsafe {
        atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(&raw mut (*stats).packets, p.wire.packets);
        atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(&raw mut (*stats).bytes, p.wire.bytes);
        if p.wire.outer_bytes != 0 {
            atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(&raw mut (*stats).outer_bytes, p.wire.outer_bytes);
        }
        core::ptr::write_volatile(&raw mut (*stats).last_seen_jiffies, now);
        // Skip the locked op in the common case where the flags are known.
        if p.tcp_flags & !core::ptr::read_volatile(&raw const (*stats).tcp_flags) != 0 {
            atomic_or::<u64, u64, { AtomicOrdering::Relaxed }>(&raw mut (*stats).tcp_flags, p.tcp_flags);
        }
    }
}

/// The flow map is full: hand the packet to userspace through the ring, or,
/// if the ring is full too, count it as lost.
#[inline(always)]
fn fallback(key: &FlowKey, p: &Counted, now: u64, tally: &mut Tally<'_>) {
    match FALLBACK.reserve(0) {
        Some(mut entry) => {
            // Written field by field into the reservation: building the
            // 144-byte record on the stack first would not fit beside the rest.
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

/// Adds the packet to each annotation counter parsing flagged: nothing for
/// most packets, one add for a VXLAN one (without a walk of the other
/// notes' bits). The branches rejoin at once, so the verifier prunes each
/// instead of multiplying paths.
#[inline(always)]
fn count_notes(p: &Counted, tally: &mut Tally<'_>) {
    if p.notes == 0 {
        return;
    }
    if p.notes == Counter::Vxlan.bit() {
        tally.add(Counter::Vxlan, p.wire.packets);
        return;
    }
    for c in Counter::NOTES {
        if p.notes & c.bit() != 0 {
            tally.add(c, p.wire.packets);
        }
    }
}

#[inline(always)]
fn lost(p: &Counted, tally: &mut Tally<'_>) {
    tally.add(Counter::Lost, p.wire.packets);
    tally.add(Counter::LostBytes, p.wire.bytes);
}
