//! Record shapes: what a record carries decides its template, in IPFIX and
//! NetFlow v9 alike. Each shape's template id never changes and is never
//! redefined, so collectors can cache it for good.

use vxflow_common::{FlowKey, flow::ENCAP_VXLAN};

use super::fields::Field;

/// An IP version of one layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    const fn of(version: u8) -> Self {
        if version == 6 { Family::V6 } else { Family::V4 }
    }
}

/// What a record carries, which decides its template.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Shape {
    Plain(Family),
    Vxlan { outer: Family, inner: Family },
}

impl Shape {
    /// Every shape, in template-id order.
    pub const ALL: [Shape; 6] = [
        Shape::Plain(Family::V4),
        Shape::Plain(Family::V6),
        Shape::Vxlan { outer: Family::V4, inner: Family::V4 },
        Shape::Vxlan { outer: Family::V4, inner: Family::V6 },
        Shape::Vxlan { outer: Family::V6, inner: Family::V4 },
        Shape::Vxlan { outer: Family::V6, inner: Family::V6 },
    ];

    #[must_use]
    pub const fn of(key: &FlowKey) -> Self {
        let inner = Family::of(key.ip_version);
        if key.encap == ENCAP_VXLAN {
            Shape::Vxlan { outer: Family::of(key.outer_ip_version), inner }
        } else {
            Shape::Plain(inner)
        }
    }

    /// The template id: 256 and up (RFC 7011 3.4.1), fixed per shape.
    #[must_use]
    pub const fn template_id(self) -> u16 {
        match self {
            Shape::Plain(Family::V4) => 256,
            Shape::Plain(Family::V6) => 257,
            Shape::Vxlan { outer: Family::V4, inner: Family::V4 } => 258,
            Shape::Vxlan { outer: Family::V4, inner: Family::V6 } => 259,
            Shape::Vxlan { outer: Family::V6, inner: Family::V4 } => 260,
            Shape::Vxlan { outer: Family::V6, inner: Family::V6 } => 261,
        }
    }

    /// The template's elements, in order.
    #[must_use]
    pub fn fields(self) -> Vec<Field> {
        let inner = match self {
            Shape::Plain(f) | Shape::Vxlan { inner: f, .. } => f,
        };
        let (src, dst, icmp) = match inner {
            Family::V4 => (Field::SourceIpv4Address, Field::DestinationIpv4Address, Field::IcmpTypeCodeIpv4),
            Family::V6 => (Field::SourceIpv6Address, Field::DestinationIpv6Address, Field::IcmpTypeCodeIpv6),
        };
        let mut fields = vec![
            src,
            dst,
            Field::SourceTransportPort,
            Field::DestinationTransportPort,
            Field::ProtocolIdentifier,
            Field::IpClassOfService,
            Field::TcpControlBits,
            icmp,
            Field::IpVersion,
            Field::IngressInterface,
            Field::EgressInterface,
            Field::FlowDirection,
            Field::FlowStartMilliseconds,
            Field::FlowEndMilliseconds,
            Field::OctetDeltaCount,
            Field::PacketDeltaCount,
            Field::FlowEndReason,
        ];
        if let Shape::Vxlan { outer, .. } = self {
            let (osrc, odst) = match outer {
                Family::V4 => (Field::NtopOuterSrcIpv4, Field::NtopOuterDstIpv4),
                Family::V6 => (Field::NtopOuterSrcIpv6, Field::NtopOuterDstIpv6),
            };
            fields.extend([
                Field::Layer2SegmentId,
                Field::NtopVni,
                Field::NtopOuterProtocol,
                osrc,
                Field::NtopOuterSrcPort,
                odst,
                Field::NtopOuterDstPort,
            ]);
        }
        fields
    }
}
