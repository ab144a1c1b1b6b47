//! The information elements vxflow exports, with their IANA (or ntop, PEN
//! 35632) ids and lengths, and how each is written from a flow record.

use vxflow_common::flow::{DIRECTION_EGRESS, DIRECTION_INGRESS};

use crate::{clock::WallClock, record::FlowRecord};

/// ntop's private enterprise number; nProbe, ntopng and Wireshark decode its
/// VXLAN elements.
pub const NTOP_PEN: u32 = 35632;

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
    /// layer2SegmentId (IE 351): `0x01 << 56 | VNI` (RFC 7133: type 0x01 is
    /// VXLAN); pmacct decodes it.
    Layer2SegmentId,
    /// ntop 35632.106: the VNI.
    NtopVni,
    /// ntop 35632.113: outer (tunnel) protocol, 17.
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
            Field::NtopVni => 106,
            Field::NtopOuterProtocol => 113,
            Field::NtopOuterSrcIpv4 => 114,
            Field::NtopOuterSrcPort => 115,
            Field::NtopOuterDstIpv4 => 116,
            Field::NtopOuterDstPort => 117,
            Field::NtopOuterSrcIpv6 => 396,
            Field::NtopOuterDstIpv6 => 397,
        }
    }

    /// The private enterprise number, for enterprise-specific elements.
    #[must_use]
    pub const fn enterprise(self) -> Option<u32> {
        match self {
            Field::NtopVni
            | Field::NtopOuterProtocol
            | Field::NtopOuterSrcIpv4
            | Field::NtopOuterSrcPort
            | Field::NtopOuterDstIpv4
            | Field::NtopOuterDstPort
            | Field::NtopOuterSrcIpv6
            | Field::NtopOuterDstIpv6 => Some(NTOP_PEN),
            _ => None,
        }
    }

    /// Encoded length in bytes.
    #[must_use]
    pub const fn width(self) -> u16 {
        match self {
            Field::ProtocolIdentifier
            | Field::IpClassOfService
            | Field::IpVersion
            | Field::FlowDirection
            | Field::FlowEndReason
            | Field::NtopOuterProtocol => 1,
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
            | Field::NtopVni
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

    /// Appends this element's value for `r`, exactly `width()` bytes.
    pub fn write(self, r: &FlowRecord, clock: &WallClock, out: &mut Vec<u8>) {
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
            Field::Layer2SegmentId => out.extend_from_slice(&((1u64 << 56) | u64::from(k.vni)).to_be_bytes()),
            Field::NtopVni => out.extend_from_slice(&k.vni.to_be_bytes()),
            Field::NtopOuterProtocol => out.push(17),
            Field::NtopOuterSrcIpv4 => out.extend_from_slice(&k.outer_src_addr[..4]),
            Field::NtopOuterDstIpv4 => out.extend_from_slice(&k.outer_dst_addr[..4]),
            Field::NtopOuterSrcIpv6 => out.extend_from_slice(&k.outer_src_addr),
            Field::NtopOuterDstIpv6 => out.extend_from_slice(&k.outer_dst_addr),
            Field::NtopOuterSrcPort => out.extend_from_slice(&k.outer_src_port.to_be_bytes()),
            Field::NtopOuterDstPort => out.extend_from_slice(&k.outer_dst_port.to_be_bytes()),
        }
    }
}
