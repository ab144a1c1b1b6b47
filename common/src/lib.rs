//! Types shared by the kernel programs (`vxflow-ebpf`) and the userspace daemon.
//!
//! Every struct here crosses the kernel/user boundary as raw bytes, so each is
//! `#[repr(C)]` with explicit padding, holds no `bool` and no data-carrying
//! enum, and has its size pinned by a `const` assertion.
#![no_std]

pub mod classify;
pub mod counter;
pub mod flow;
pub mod ipproto;
pub mod ports;

#[cfg(feature = "user")]
pub mod user;

pub use counter::{Counter, Counters, NON_IP_CPUS, NonIpSlot, NonIpSlots};
pub use flow::{DatapathStats, ExportTuple, FallbackRecord, FlowKey, FlowStats};

/// Name of the one-slot `ARRAY_OF_MAPS` whose slot 0 holds the flow map the
/// datapath currently writes.
pub const MAP_FLOW_GEN: &str = "FLOW_GEN";
/// The two flow-map generations userspace flips between.
pub const MAP_FLOWS: [&str; 2] = ["FLOWS_A", "FLOWS_B"];
/// The program userspace runs (never attaches) to read jiffies and
/// `CLOCK_MONOTONIC` at one instant.
pub const PROGRAM_CLOCK: &str = "vxflow_clock";
/// Where its sample comes back: the context's `cb` words, from this byte of
/// `struct __sk_buff`: jiffies (low word first), then monotonic ns.
pub const CLOCK_SAMPLE_CB: usize = 48;
/// Ring buffer carrying per-packet deltas when the flow map is full.
pub const MAP_FALLBACK: &str = "FALLBACK";
/// The object's `.bss` section, as the loader names its map: the
/// [`NonIpSlots`] of `NON_IP_FRAMES`, the datapath's one global variable.
pub const MAP_NON_IP: &str = ".bss";
/// Per-CPU array with one [`Counters`] value.
pub const MAP_COUNTERS: &str = "COUNTERS";
/// The UDP destination ports parsed as a tunnel: a [`ports`] kind map whose
/// kind is the tunnel's `ENCAP_*` value ([`flow::ENCAP_VXLAN`] or
/// [`flow::ENCAP_GENEVE`]), 0 for a port that carries none.
pub const MAP_UDP_TUNNEL_PORTS: &str = "UDP_TUNNEL_PORTS";
/// One `u32`: bit `1 << ENCAP_IPIP` set turns IP-in-IP decoding off, bit
/// `1 << ENCAP_GRE` GRE's. Zero, as the map starts, decodes both, as the
/// configuration does by default.
pub const MAP_IP_TUNNELS_OFF: &str = "IP_TUNNELS_OFF";
/// Interfaces (by ifindex) whose packets may carry a tunnel this node
/// terminates: only there are tunnel headers parsed.
pub const MAP_TUNNEL_IFACES: &str = "TUNNEL_IFACES";
/// The tunnel interfaces again, direct-mapped for a lookup the verifier
/// inlines: slot [`tunnel_slot`] of an interface holds its ifindex, 0 when
/// no trusted interface maps there, or [`TUNNEL_SLOT_SHARED`] when several
/// do (then `TUNNEL_IFACES` decides).
pub const MAP_TUNNEL_SLOTS: &str = "TUNNEL_SLOTS";
/// Slots in `TUNNEL_SLOTS`.
pub const TUNNEL_SLOT_COUNT: u32 = 4096;
/// A `TUNNEL_SLOTS` value: more than one trusted interface maps here.
pub const TUNNEL_SLOT_SHARED: u32 = u32::MAX;

/// The `TUNNEL_SLOTS` slot of interface `ifindex`.
#[must_use]
pub const fn tunnel_slot(ifindex: u32) -> u32 {
    ifindex % TUNNEL_SLOT_COUNT
}

/// Sampling: one `u32`, the value below which a random `u32` leaves a packet
/// out (see [`sampling_skip_below`]). Zero, as the map starts, keeps every
/// packet, so a loader that never writes it cannot blind the datapath.
pub const MAP_SAMPLING: &str = "SAMPLING";

/// The value of [`MAP_SAMPLING`] that keeps 1 packet in `n` on average: a
/// random `u32` is at or above it with probability `floor(2^32 / n) / 2^32`.
/// Zero for `n` of 0 or 1.
#[must_use]
pub const fn sampling_skip_below(n: u32) -> u32 {
    if n <= 1 {
        return 0;
    }
    // 2^32 - floor(2^32 / n) is below 2^32 for n >= 2.
    ((1u64 << 32) - (1u64 << 32) / n as u64) as u32
}

/// Bitmap (same layout) of the port each exporter tuple has on this host's
/// side of its direction: source port for egress, destination port for
/// ingress. A cheap prefilter before the exact lookup.
pub const MAP_EXPORT_PORTS: &str = "EXPORT_PORTS";
/// The exporter's own packets, as [`ExportTuple`]s: tuple and direction.
pub const MAP_EXPORT_TUPLES: &str = "EXPORT_TUPLES";
