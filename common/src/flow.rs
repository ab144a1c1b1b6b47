//! Flow identity and per-flow counters as the kernel writes them.

/// Key flag: the packet was a non-first IP fragment, so it carried no ports.
pub const KEY_FLAG_FRAGMENT: u8 = 1 << 0;
/// Key flag: the L4 header was cut short, so ports and TCP flags are unknown.
pub const KEY_FLAG_L4_TRUNCATED: u8 = 1 << 1;
/// Key flag: the IPv6 extension-header walk hit `MAX_IPV6_EXT_HEADERS` before
/// reaching a transport header; `protocol` is the last next-header seen.
pub const KEY_FLAG_EXT_LIMIT: u8 = 1 << 2;

/// `FlowKey::encap` for plain (non-tunnelled) traffic.
pub const ENCAP_NONE: u8 = 0;
/// `FlowKey::encap` for VXLAN (RFC 7348): `tunnel_id` is the 24-bit VNI,
/// the `outer_*` fields the UDP tuple between the tunnel endpoints.
pub const ENCAP_VXLAN: u8 = 1;
/// Geneve (RFC 8926): `tunnel_id` is the 24-bit VNI; outer tuple UDP.
pub const ENCAP_GENEVE: u8 = 2;
/// IP in IP: IPv4 or IPv6 directly in IPv4 or IPv6 (IP protocol 4 or 41,
/// as the inner `ip_version` says); no tunnel id, outer ports 0.
pub const ENCAP_IPIP: u8 = 3;
/// GRE (RFC 2784/2890, IP protocol 47): `tunnel_id` is the key when
/// [`TUNNEL_FLAG_KEY`] is set (NVGRE's 24-bit VSID in its top 24 bits when
/// the payload is Ethernet); outer ports 0.
pub const ENCAP_GRE: u8 = 4;
/// The highest `ENCAP_*` value.
pub const ENCAP_MAX: u8 = ENCAP_GRE;

/// `FlowKey::tunnel_flags`: the tunnel header carried an id (always for
/// VXLAN and Geneve; for GRE when the K bit was set).
pub const TUNNEL_FLAG_KEY: u8 = 1 << 0;
/// `FlowKey::tunnel_flags`: the tunnel carried an Ethernet frame (VXLAN,
/// Geneve with protocol type 0x6558, GRE transparent Ethernet bridging)
/// rather than an IP packet directly.
pub const TUNNEL_FLAG_ETHERNET: u8 = 1 << 1;

/// `FlowKey::direction` values (IPFIX flowDirection, IE 61: 0 ingress, 1 egress).
pub const DIRECTION_INGRESS: u8 = 0;
pub const DIRECTION_EGRESS: u8 = 1;

/// What identifies a flow. For a tunnel the plain tuple fields hold the
/// **inner** packet and the `outer_*` fields the tunnel endpoints' tuple.
///
/// Addresses are in network byte order; an IPv4 address fills the first four
/// bytes and the rest stay zero. Ports are in host byte order.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FlowKey {
    /// sourceIPv4Address (IE 8) / sourceIPv6Address (IE 27).
    pub src_addr: [u8; 16],
    /// destinationIPv4Address (IE 12) / destinationIPv6Address (IE 28).
    pub dst_addr: [u8; 16],
    /// Outer (tunnel endpoint) source address, ntop 35632.114 / 35632.396.
    pub outer_src_addr: [u8; 16],
    /// Outer (tunnel endpoint) destination address, ntop 35632.116 / 35632.397.
    pub outer_dst_addr: [u8; 16],
    /// ingressInterface (IE 10) or egressInterface (IE 14), by `direction`.
    pub ifindex: u32,
    /// The tunnel's id: the VXLAN or Geneve VNI (24 bits), the GRE key
    /// (32 bits); 0 for IP in IP or a GRE header without a key.
    pub tunnel_id: u32,
    /// sourceTransportPort (IE 7).
    pub src_port: u16,
    /// destinationTransportPort (IE 11); for ICMP and ICMPv6 `type << 8 | code`
    /// (icmpTypeCodeIPv4, IE 32 / icmpTypeCodeIPv6, IE 139), as NetFlow does.
    pub dst_port: u16,
    /// Outer UDP source port (VXLAN, Geneve), ntop 35632.115; 0 otherwise.
    pub outer_src_port: u16,
    /// Outer UDP destination port (VXLAN, Geneve), ntop 35632.117; 0 otherwise.
    pub outer_dst_port: u16,
    /// vlanId (IE 58) of the outermost tag, 0 when untagged.
    pub vlan_id: u16,
    /// protocolIdentifier (IE 4).
    pub protocol: u8,
    /// ipVersion (IE 60): 4 or 6.
    pub ip_version: u8,
    /// Outer IP version for tunnelled flows (4 or 6), 0 otherwise.
    pub outer_ip_version: u8,
    /// flowDirection (IE 61): [`DIRECTION_INGRESS`] or [`DIRECTION_EGRESS`].
    pub direction: u8,
    /// The tunnel the flow was seen in: an `ENCAP_*` value.
    pub encap: u8,
    /// `KEY_FLAG_*` bits.
    pub flags: u8,
    /// ipClassOfService (IE 5): IPv4 TOS or IPv6 traffic class, of the inner
    /// packet for a tunnel.
    pub tos: u8,
    /// `TUNNEL_FLAG_*` bits, 0 without a tunnel.
    pub tunnel_flags: u8,
    pub _pad: [u8; 2],
}

const _: () = assert!(core::mem::size_of::<FlowKey>() == 92);

/// Counters of one flow since its entry was created in the current map
/// generation, as the datapath keeps them: updated with atomic adds, so one
/// entry serves every CPU. Its times are jiffies, which the kernel reads
/// with one load where a clock read is a helper call (about 11 ns a packet
/// here, on a kernel with return-thunk mitigations); userspace converts
/// them to [`FlowStats`] as it drains (`probe/src/datapath/ticks.rs`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct DatapathStats {
    /// As in [`FlowStats`].
    pub packets: u64,
    pub bytes: u64,
    pub outer_bytes: u64,
    /// `bpf_jiffies64` at the first packet.
    pub first_seen_jiffies: u64,
    /// `bpf_jiffies64` at the latest packet (last writer wins).
    pub last_seen_jiffies: u64,
    /// OR of the TCP flag bytes (tcpControlBits, IE 6). A full `u64` because
    /// the BPF "generic" CPU that bpf-linker targets has a 64-bit atomic OR
    /// only.
    pub tcp_flags: u64,
}

const _: () = assert!(core::mem::size_of::<DatapathStats>() == 48);

/// Counters of one flow over one drain, with its times on the kernel's
/// monotonic clock: what the flow cache takes in.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FlowStats {
    /// packetDeltaCount (IE 2): GSO/GRO super-packets count as their segments.
    pub packets: u64,
    /// octetDeltaCount (IE 1): IP header and payload as on the wire; for
    /// tunnelled flows the **inner** IP packet.
    pub bytes: u64,
    /// For tunnelled flows, the outer IP bytes on the wire; 0 otherwise.
    pub outer_bytes: u64,
    /// `CLOCK_MONOTONIC` nanoseconds at the start of the tick (jiffy) in
    /// which the first packet was seen: the resolution is the kernel's tick
    /// (4 ms at `CONFIG_HZ=250`), as for `CLOCK_MONOTONIC_COARSE`.
    pub first_seen_ns: u64,
    /// The same for the latest packet.
    pub last_seen_ns: u64,
    /// OR of the TCP flag bytes (tcpControlBits, IE 6).
    pub tcp_flags: u64,
}

const _: () = assert!(core::mem::size_of::<FlowStats>() == 48);

/// One packet the datapath could not insert into a full flow map, sent to
/// userspace through the fallback ring buffer and merged into the cache there.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FallbackRecord {
    pub key: FlowKey,
    pub stats: DatapathStats,
}

const _: () = assert!(core::mem::size_of::<FallbackRecord>() == 144);

/// A packet of the exporter's own traffic, as a flow tuple and the direction
/// it is seen in: packets matching one (inner tuple for VXLAN) are not
/// accounted. Userspace lists only what the exporter sends (egress) and, on
/// a TCP connection, what the collector answers (ingress), so other traffic
/// that reuses the tuple, in the other direction, is still counted.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ExportTuple {
    pub src_addr: [u8; 16],
    pub dst_addr: [u8; 16],
    pub src_port: u16,
    pub dst_port: u16,
    pub protocol: u8,
    /// [`DIRECTION_INGRESS`] or [`DIRECTION_EGRESS`].
    pub direction: u8,
    pub _pad: [u8; 2],
}

const _: () = assert!(core::mem::size_of::<ExportTuple>() == 40);
