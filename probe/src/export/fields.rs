//! The information elements vxflow exports, with their IANA (or ntop, PEN
//! 35632, or VMware, PEN 6876) ids and lengths, and how each is written
//! from a flow record.

use vxflow_common::{
    flow::{DIRECTION_EGRESS, DIRECTION_INGRESS},
    ipproto,
    user::Tunnel,
};

use super::names::RecordNames;
use crate::{clock::WallClock, record::FlowRecord};

/// The length prefix of a variable-length value of `len` bytes (RFC 7011
/// section 7): one byte below 255, else 255 and two bytes.
const fn variable_prefix(len: usize) -> usize {
    if len < 255 { 1 } else { 3 }
}

/// Appends `value` with its length before it (RFC 7011 section 7),
/// truncated to the 65,535 bytes a length can say.
fn write_variable(value: &[u8], out: &mut Vec<u8>) {
    let value = &value[..value.len().min(usize::from(u16::MAX))];
    match u8::try_from(value.len()) {
        Ok(len) if len < 255 => out.push(len),
        _ => {
            out.push(255);
            out.extend_from_slice(&u16::try_from(value.len()).unwrap_or(u16::MAX).to_be_bytes());
        }
    }
    out.extend_from_slice(value);
}

/// ntop's private enterprise number; nProbe, ntopng and Wireshark decode its
/// VXLAN elements.
pub const NTOP_PEN: u32 = 35632;

/// VMware's private enterprise number, under which Open vSwitch exports its
/// tunnel elements (`ofproto/ipfix-enterprise-entities.def`).
pub const VMWARE_PEN: u32 = 6876;

/// Antrea's private enterprise number (`vmware/go-ipfix`,
/// `pkg/registry/registry_antrea.csv`), under which its flow exporter
/// defines pod and node names as strings.
pub const ANTREA_PEN: u32 = 56506;

/// A template field length that says the value carries its own length
/// (RFC 7011 section 7).
pub const VARIABLE_LENGTH: u16 = 65535;

/// Open vSwitch's tunnelType values (`enum dpif_ipfix_tunnel_type`,
/// `ofproto/ofproto-dpif-ipfix.c`). It has none for IP in IP.
const OVS_TUNNEL_VXLAN: u8 = 0x01;
const OVS_TUNNEL_GRE: u8 = 0x02;
const OVS_TUNNEL_GENEVE: u8 = 0x07;

/// RFC 7133 section 4.4.5 (layer2SegmentId): the top byte names the
/// segment's type, 0x01 VXLAN, 0x02 NVGRE; Geneve has none.
const SEGMENT_VXLAN: u64 = 0x01 << 56;
const SEGMENT_NVGRE: u64 = 0x02 << 56;

/// One information element in a template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// octetDeltaCount (IE 1), unsigned64.
    OctetDeltaCount,
    /// packetDeltaCount (IE 2), unsigned64.
    PacketDeltaCount,
    /// protocolIdentifier (IE 4).
    ProtocolIdentifier,
    /// ipClassOfService (IE 5).
    IpClassOfService,
    /// tcpControlBits (IE 6), unsigned16 (RFC 7125).
    TcpControlBits,
    /// sourceTransportPort (IE 7).
    SourceTransportPort,
    /// sourceIPv4Address (IE 8).
    SourceIpv4Address,
    /// ingressInterface (IE 10).
    IngressInterface,
    /// destinationTransportPort (IE 11).
    DestinationTransportPort,
    /// destinationIPv4Address (IE 12).
    DestinationIpv4Address,
    /// egressInterface (IE 14).
    EgressInterface,
    /// sourceIPv6Address (IE 27).
    SourceIpv6Address,
    /// destinationIPv6Address (IE 28).
    DestinationIpv6Address,
    /// icmpTypeCodeIPv4 (IE 32).
    IcmpTypeCodeIpv4,
    /// ipVersion (IE 60).
    IpVersion,
    /// flowDirection (IE 61): 0 ingress, 1 egress.
    FlowDirection,
    /// flowEndReason (IE 136).
    FlowEndReason,
    /// icmpTypeCodeIPv6 (IE 139).
    IcmpTypeCodeIpv6,
    /// flowStartMilliseconds (IE 152), dateTimeMilliseconds.
    FlowStartMilliseconds,
    /// flowEndMilliseconds (IE 153).
    FlowEndMilliseconds,
    /// layer2SegmentId (IE 351): `0x01 << 56 | VNI` for VXLAN, `0x02 << 56 |
    /// VSID` for NVGRE (RFC 7133); pmacct decodes it. Never for other
    /// tunnels, which RFC 7133 gives no type.
    Layer2SegmentId,
    /// ntop 35632.106, "upstream tunnel identifier": the VNI or GRE key, 0
    /// for a GRE header without one.
    NtopTunnelId,
    /// ntop 35632.113: outer (tunnel) IP protocol: 17 for VXLAN and Geneve,
    /// 47 for GRE, 4 or 41 for IP in IP.
    NtopOuterProtocol,
    /// ntop 35632.114: outer source IPv4 address.
    NtopOuterSrcIpv4,
    /// ntop 35632.115: outer source port.
    NtopOuterSrcPort,
    /// ntop 35632.116: outer destination IPv4 address.
    NtopOuterDstIpv4,
    /// ntop 35632.117: outer destination port.
    NtopOuterDstPort,
    /// ntop 35632.396: outer source IPv6 address.
    NtopOuterSrcIpv6,
    /// ntop 35632.397: outer destination IPv6 address.
    NtopOuterDstIpv6,
    /// VMware 6876.891 tunnelType, as Open vSwitch exports it: 0x01 VXLAN,
    /// 0x02 GRE, 0x07 Geneve.
    VmwareTunnelType,
    /// Antrea 56506.100 to .105, variable-length strings (see
    /// [`super::names`]).
    SourcePodNamespace,
    SourcePodName,
    DestinationPodNamespace,
    DestinationPodName,
    SourceNodeName,
    DestinationNodeName,
}

impl Field {
    /// The element id (without the enterprise bit).
    #[must_use]
    pub const fn id(self) -> u16 {
        match self {
            Field::OctetDeltaCount => 1,
            Field::PacketDeltaCount => 2,
            Field::ProtocolIdentifier => 4,
            Field::IpClassOfService => 5,
            Field::TcpControlBits => 6,
            Field::SourceTransportPort => 7,
            Field::SourceIpv4Address => 8,
            Field::IngressInterface => 10,
            Field::DestinationTransportPort => 11,
            Field::DestinationIpv4Address => 12,
            Field::EgressInterface => 14,
            Field::SourceIpv6Address => 27,
            Field::DestinationIpv6Address => 28,
            Field::IcmpTypeCodeIpv4 => 32,
            Field::IpVersion => 60,
            Field::FlowDirection => 61,
            Field::FlowEndReason => 136,
            Field::IcmpTypeCodeIpv6 => 139,
            Field::FlowStartMilliseconds => 152,
            Field::FlowEndMilliseconds => 153,
            Field::Layer2SegmentId => 351,
            Field::NtopTunnelId => 106,
            Field::NtopOuterProtocol => 113,
            Field::NtopOuterSrcIpv4 => 114,
            Field::NtopOuterSrcPort => 115,
            Field::NtopOuterDstIpv4 => 116,
            Field::NtopOuterDstPort => 117,
            Field::NtopOuterSrcIpv6 => 396,
            Field::NtopOuterDstIpv6 => 397,
            Field::VmwareTunnelType => 891,
            Field::SourcePodNamespace => 100,
            Field::SourcePodName => 101,
            Field::DestinationPodNamespace => 102,
            Field::DestinationPodName => 103,
            Field::SourceNodeName => 104,
            Field::DestinationNodeName => 105,
        }
    }

    /// The private enterprise number, for enterprise-specific elements.
    #[must_use]
    pub const fn enterprise(self) -> Option<u32> {
        match self {
            Field::NtopTunnelId
            | Field::NtopOuterProtocol
            | Field::NtopOuterSrcIpv4
            | Field::NtopOuterSrcPort
            | Field::NtopOuterDstIpv4
            | Field::NtopOuterDstPort
            | Field::NtopOuterSrcIpv6
            | Field::NtopOuterDstIpv6 => Some(NTOP_PEN),
            Field::VmwareTunnelType => Some(VMWARE_PEN),
            Field::SourcePodNamespace
            | Field::SourcePodName
            | Field::DestinationPodNamespace
            | Field::DestinationPodName
            | Field::SourceNodeName
            | Field::DestinationNodeName => Some(ANTREA_PEN),
            _ => None,
        }
    }

    /// Encoded length in bytes; [`VARIABLE_LENGTH`] for a value that
    /// carries its own length.
    #[must_use]
    pub const fn width(self) -> u16 {
        match self {
            Field::SourcePodNamespace
            | Field::SourcePodName
            | Field::DestinationPodNamespace
            | Field::DestinationPodName
            | Field::SourceNodeName
            | Field::DestinationNodeName => VARIABLE_LENGTH,
            Field::ProtocolIdentifier
            | Field::IpClassOfService
            | Field::IpVersion
            | Field::FlowDirection
            | Field::FlowEndReason
            | Field::NtopOuterProtocol
            | Field::VmwareTunnelType => 1,
            Field::TcpControlBits
            | Field::SourceTransportPort
            | Field::DestinationTransportPort
            | Field::IcmpTypeCodeIpv4
            | Field::IcmpTypeCodeIpv6
            | Field::NtopOuterSrcPort
            | Field::NtopOuterDstPort => 2,
            Field::SourceIpv4Address
            | Field::DestinationIpv4Address
            | Field::IngressInterface
            | Field::EgressInterface
            | Field::NtopTunnelId
            | Field::NtopOuterSrcIpv4
            | Field::NtopOuterDstIpv4 => 4,
            Field::OctetDeltaCount
            | Field::PacketDeltaCount
            | Field::FlowStartMilliseconds
            | Field::FlowEndMilliseconds
            | Field::Layer2SegmentId => 8,
            Field::SourceIpv6Address
            | Field::DestinationIpv6Address
            | Field::NtopOuterSrcIpv6
            | Field::NtopOuterDstIpv6 => 16,
        }
    }

    /// The names this element carries, for a variable-length one.
    fn name(self, n: &RecordNames) -> Option<&str> {
        Some(match self {
            Field::SourcePodNamespace => &n.src_namespace,
            Field::SourcePodName => &n.src_pod,
            Field::DestinationPodNamespace => &n.dst_namespace,
            Field::DestinationPodName => &n.dst_pod,
            Field::SourceNodeName => &n.src_node,
            Field::DestinationNodeName => &n.dst_node,
            _ => return None,
        })
    }

    /// The bytes this element takes for `names`: its width, or for a
    /// variable-length one its value with the length before it.
    #[must_use]
    pub fn encoded_len(self, names: Option<&RecordNames>) -> usize {
        match names.and_then(|n| self.name(n)) {
            Some(s) => variable_prefix(s.len()) + s.len(),
            None if self.width() == VARIABLE_LENGTH => 1,
            None => usize::from(self.width()),
        }
    }

    /// Appends this element's value for `r` (its names, for a name):
    /// exactly [`Field::encoded_len`] bytes.
    pub fn write(self, r: &FlowRecord, clock: &WallClock, names: Option<&RecordNames>, out: &mut Vec<u8>) {
        if self.width() == VARIABLE_LENGTH {
            write_variable(names.and_then(|n| self.name(n)).unwrap_or("").as_bytes(), out);
            return;
        }
        let k = &r.key;
        let icmp = k.is_icmp();
        let ports = if icmp { (0, 0) } else { (k.src_port, k.dst_port) };
        let icmp_type_code = if icmp { k.dst_port } else { 0 };
        let ifindex_if = |dir: u8| if k.direction == dir { k.ifindex } else { 0 };
        match self {
            Field::OctetDeltaCount => out.extend_from_slice(&r.bytes.to_be_bytes()),
            Field::PacketDeltaCount => out.extend_from_slice(&r.packets.to_be_bytes()),
            Field::ProtocolIdentifier => out.push(k.protocol),
            Field::IpClassOfService => out.push(k.tos),
            Field::TcpControlBits => out.extend_from_slice(&u16::from(r.tcp_flags).to_be_bytes()),
            Field::SourceTransportPort => out.extend_from_slice(&ports.0.to_be_bytes()),
            Field::DestinationTransportPort => out.extend_from_slice(&ports.1.to_be_bytes()),
            Field::SourceIpv4Address => out.extend_from_slice(&k.src_addr[..4]),
            Field::DestinationIpv4Address => out.extend_from_slice(&k.dst_addr[..4]),
            Field::SourceIpv6Address => out.extend_from_slice(&k.src_addr),
            Field::DestinationIpv6Address => out.extend_from_slice(&k.dst_addr),
            Field::IngressInterface => out.extend_from_slice(&ifindex_if(DIRECTION_INGRESS).to_be_bytes()),
            Field::EgressInterface => out.extend_from_slice(&ifindex_if(DIRECTION_EGRESS).to_be_bytes()),
            Field::IcmpTypeCodeIpv4 | Field::IcmpTypeCodeIpv6 => out.extend_from_slice(&icmp_type_code.to_be_bytes()),
            Field::IpVersion => out.push(k.ip_version),
            Field::FlowDirection => out.push(k.direction),
            Field::FlowEndReason => out.push(r.end_reason as u8),
            Field::FlowStartMilliseconds => out.extend_from_slice(&clock.to_unix_ms(r.start_ns).to_be_bytes()),
            Field::FlowEndMilliseconds => out.extend_from_slice(&clock.to_unix_ms(r.end_ns).to_be_bytes()),
            Field::Layer2SegmentId => {
                let segment = match k.nvgre_vsid() {
                    Some(vsid) => SEGMENT_NVGRE | u64::from(vsid),
                    None => SEGMENT_VXLAN | u64::from(k.tunnel_id),
                };
                out.extend_from_slice(&segment.to_be_bytes());
            }
            Field::NtopTunnelId => out.extend_from_slice(&k.tunnel_id.to_be_bytes()),
            Field::NtopOuterProtocol => out.push(match k.tunnel() {
                Some(Tunnel::Gre) => ipproto::GRE,
                Some(Tunnel::Ipip) if k.ip_version == 6 => ipproto::IPV6,
                Some(Tunnel::Ipip) => ipproto::IPIP,
                _ => ipproto::UDP,
            }),
            Field::SourcePodNamespace
            | Field::SourcePodName
            | Field::DestinationPodNamespace
            | Field::DestinationPodName
            | Field::SourceNodeName
            | Field::DestinationNodeName => unreachable!("written above"),
            Field::VmwareTunnelType => out.push(match k.tunnel() {
                Some(Tunnel::Vxlan) => OVS_TUNNEL_VXLAN,
                Some(Tunnel::Gre) => OVS_TUNNEL_GRE,
                Some(Tunnel::Geneve) => OVS_TUNNEL_GENEVE,
                _ => 0,
            }),
            Field::NtopOuterSrcIpv4 => out.extend_from_slice(&k.outer_src_addr[..4]),
            Field::NtopOuterDstIpv4 => out.extend_from_slice(&k.outer_dst_addr[..4]),
            Field::NtopOuterSrcIpv6 => out.extend_from_slice(&k.outer_src_addr),
            Field::NtopOuterDstIpv6 => out.extend_from_slice(&k.outer_dst_addr),
            Field::NtopOuterSrcPort => out.extend_from_slice(&k.outer_src_port.to_be_bytes()),
            Field::NtopOuterDstPort => out.extend_from_slice(&k.outer_dst_port.to_be_bytes()),
        }
    }
}
