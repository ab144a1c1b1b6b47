//! The programs' maps. Names match `vxflow_common::MAP_*`; sizes given here
//! are defaults that the loader overrides from the configuration.

use aya_ebpf::{
    btf_maps::{Array, ArrayOfMaps, HashMap, PerCpuArray, RingBuf},
    macros::btf_map,
};
use vxflow_common::{
    Counters, DatapathStats, ExportTuple, FallbackRecord, FlowKey, NON_IP_CPUS, NonIpSlot, NonIpSlots,
    TUNNEL_SLOT_COUNT,
    classify::Scratch,
    ports::{PORT_KIND_WORDS, PORT_WORDS},
};

/// Default entries per flow-map generation (the loader sets the real value).
const DEFAULT_FLOW_ENTRIES: usize = 65_536;
/// Default fallback ring size in bytes (a power of two, a multiple of the
/// page): about 56,000 packets, what a burst of new flows sends while
/// userspace drains early.
const DEFAULT_FALLBACK_BYTES: usize = 8 << 20;

/// Preallocated, as hash maps are by default: a new flow's entry comes off
/// a free list. Allocating entries as flows arrive (`BPF_F_NO_PREALLOC`)
/// would make an idle generation cost 16 bytes a slot instead of 208, but a
/// new flow 1,088 ns instead of 635 and a drained one 743 ns instead of 368
/// (measured here), and a burst of new flows is when that counts.
type FlowMap = HashMap<FlowKey, DatapathStats, DEFAULT_FLOW_ENTRIES>;

/// Generation A of the flow map. Userspace puts A or B into `FLOW_GEN[0]`.
#[btf_map]
pub static FLOWS_A: FlowMap = HashMap::new();

/// Generation B of the flow map.
#[btf_map]
pub static FLOWS_B: FlowMap = HashMap::new();

/// Slot 0 is the flow map the datapath writes now. Userspace flips it to the
/// other generation; the kernel's map-in-map update waits for an RCU grace
/// period (`maybe_wait_bpf_programs`, kernel/bpf/syscall.c, since v4.20), so
/// once the update returns no program still writes the old generation and
/// userspace can drain it without racing the datapath.
#[btf_map]
pub static FLOW_GEN: ArrayOfMaps<FlowMap, 1> = ArrayOfMaps::new();

/// Per-packet deltas that did not fit in a full flow map.
#[btf_map]
pub static FALLBACK: RingBuf<FallbackRecord, DEFAULT_FALLBACK_BYTES> = RingBuf::new();

/// Datapath counters: one [`Counters`] array per CPU, see
/// `vxflow_common::Counter`.
#[btf_map]
pub static COUNTERS: PerCpuArray<Counters, 1> = PerCpuArray::new();

/// Non-IP frames of each CPU below `NON_IP_CPUS`, by CPU number: the
/// datapath's only global variable, so its `.bss` section. Written only by
/// the CPU a slot belongs to; userspace reads the section.
#[unsafe(no_mangle)]
pub static mut NON_IP_FRAMES: NonIpSlots = [NonIpSlot { frames: 0, _pad: [0; 7] }; NON_IP_CPUS];

#[btf_map]
pub static SCRATCH: PerCpuArray<Scratch, 1> = PerCpuArray::new();

/// One bit per port the exporter's tuples have on this host's side: the
/// source port of an egress tuple, the destination port of an ingress one.
/// A packet whose port on that side is not set is not export traffic,
/// without a hash lookup.
#[btf_map]
pub static EXPORT_PORTS: Array<u64, { PORT_WORDS as usize }> = Array::new();

/// The exporter's own packets, by tuple and direction: twice userspace's
/// `MAX_EXPORT_TUPLES`, since a reload adds the new set before it removes
/// the old.
#[btf_map]
pub static EXPORT_TUPLES: HashMap<ExportTuple, u8, 256> = HashMap::new();

/// Sampling (`vxflow_common::MAP_SAMPLING`): a random `u32` below this
/// leaves an IP packet out; 0 keeps every packet. An array, so the verifier
/// inlines the lookup; userspace changes it live.
#[btf_map]
pub static SAMPLING: Array<u32, 1> = Array::new();

/// Two bits per UDP destination port: the tunnel (`ENCAP_VXLAN`,
/// `ENCAP_GENEVE`) it carries, 0 for none (`vxflow_common::ports`). An
/// array rather than a hash so the verifier inlines the lookup, and one
/// lookup answers for every UDP tunnel; userspace changes it live.
#[btf_map]
pub static UDP_TUNNEL_PORTS: Array<u64, { PORT_KIND_WORDS as usize }> = Array::new();

/// IP tunnels not decoded: bit `1 << ENCAP_IPIP`, `1 << ENCAP_GRE`
/// (`vxflow_common::MAP_IP_TUNNELS_OFF`). Zero decodes both.
#[btf_map]
pub static IP_TUNNELS_OFF: Array<u32, 1> = Array::new();

/// Interfaces whose packets may carry a tunnel this node terminates (the
/// underlay): ifindex to 1. Elsewhere a tunnel header is pod data, parsed as
/// the plain UDP it is. Userspace keeps it equal to its trust decision.
#[btf_map]
pub static TUNNEL_IFACES: HashMap<u32, u8, 256> = HashMap::new();

/// The same set direct-mapped by `vxflow_common::tunnel_slot`: an array
/// lookup the verifier inlines, where the hash costs about 24 ns. A slot
/// several trusted interfaces share defers to [`TUNNEL_IFACES`].
#[btf_map]
pub static TUNNEL_SLOTS: Array<u32, { TUNNEL_SLOT_COUNT as usize }> = Array::new();
