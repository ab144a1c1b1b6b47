//! Record shapes: what a record carries decides its template, in IPFIX and
//! NetFlow v9 alike. Each shape's template id never changes and is never
//! redefined, so collectors can cache it for good.

use vxflow_common::{FlowKey, user::Tunnel};

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

/// The tunnel of a tunnelled shape. NVGRE (GRE with a key around
/// Ethernet) is apart from GRE because only it has a layer2SegmentId.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TunnelShape {
    Vxlan,
    Geneve,
    Gre,
    Nvgre,
    Ipip,
}

impl TunnelShape {
    /// In template-id order.
    const ALL: [TunnelShape; 5] =
        [TunnelShape::Vxlan, TunnelShape::Geneve, TunnelShape::Gre, TunnelShape::Nvgre, TunnelShape::Ipip];

    const fn of(key: &FlowKey) -> Option<Self> {
        Some(match key.tunnel() {
            None => return None,
            Some(Tunnel::Vxlan) => TunnelShape::Vxlan,
            Some(Tunnel::Geneve) => TunnelShape::Geneve,
            Some(Tunnel::Ipip) => TunnelShape::Ipip,
            Some(Tunnel::Gre) if key.nvgre_vsid().is_some() => TunnelShape::Nvgre,
            Some(Tunnel::Gre) => TunnelShape::Gre,
        })
    }

    /// The elements that describe the tunnel, after the inner flow's. The
    /// VXLAN ones are as they were before other tunnels existed.
    fn fields(self, outer: Family) -> Vec<Field> {
        let (osrc, odst) = match outer {
            Family::V4 => (Field::NtopOuterSrcIpv4, Field::NtopOuterDstIpv4),
            Family::V6 => (Field::NtopOuterSrcIpv6, Field::NtopOuterDstIpv6),
        };
        let udp = [Field::NtopOuterProtocol, osrc, Field::NtopOuterSrcPort, odst, Field::NtopOuterDstPort];
        let ip = [Field::NtopOuterProtocol, osrc, odst];
        let (kind, id) = (Field::VmwareTunnelType, Field::NtopTunnelId);
        match self {
            TunnelShape::Vxlan => [&[Field::Layer2SegmentId, id][..], &udp].concat(),
            TunnelShape::Geneve => [&[kind, id][..], &udp].concat(),
            TunnelShape::Gre => [&[kind, id][..], &ip].concat(),
            TunnelShape::Nvgre => [&[Field::Layer2SegmentId, kind, id][..], &ip].concat(),
            TunnelShape::Ipip => ip.to_vec(),
        }
    }
}

/// What a record carries, which decides its template.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Shape {
    Plain(Family),
    Tunnel { tunnel: TunnelShape, outer: Family, inner: Family },
}

/// (outer, inner) families in template-id order.
const PAIRS: [(Family, Family); 4] =
    [(Family::V4, Family::V4), (Family::V4, Family::V6), (Family::V6, Family::V4), (Family::V6, Family::V6)];

impl Shape {
    /// Every shape, in template-id order.
    pub const ALL: [Shape; 22] = {
        let mut all = [Shape::Plain(Family::V4); 22];
        all[1] = Shape::Plain(Family::V6);
        let mut t = 0;
        while t < TunnelShape::ALL.len() {
            let mut p = 0;
            while p < PAIRS.len() {
                all[2 + t * 4 + p] =
                    Shape::Tunnel { tunnel: TunnelShape::ALL[t], outer: PAIRS[p].0, inner: PAIRS[p].1 };
                p += 1;
            }
            t += 1;
        }
        all
    };

    /// A VXLAN shape (the tunnel shapes the first versions had).
    #[must_use]
    pub const fn vxlan(outer: Family, inner: Family) -> Self {
        Shape::Tunnel { tunnel: TunnelShape::Vxlan, outer, inner }
    }

    #[must_use]
    pub const fn of(key: &FlowKey) -> Self {
        let inner = Family::of(key.ip_version);
        match TunnelShape::of(key) {
            Some(tunnel) => Shape::Tunnel { tunnel, outer: Family::of(key.outer_ip_version), inner },
            None => Shape::Plain(inner),
        }
    }

    /// The inner (or only) layer's family.
    #[must_use]
    pub const fn inner(self) -> Family {
        match self {
            Shape::Plain(f) | Shape::Tunnel { inner: f, .. } => f,
        }
    }

    /// The template id: 256 and up (RFC 7011 3.4.1), fixed per shape:
    /// 256 and 257 plain IPv4 and IPv6; then four per tunnel type, by outer
    /// and inner family (VXLAN 258 to 261, Geneve 262 to 265, GRE 266 to
    /// 269, NVGRE 270 to 273, IP in IP 274 to 277).
    #[must_use]
    pub const fn template_id(self) -> u16 {
        match self {
            Shape::Plain(Family::V4) => 256,
            Shape::Plain(Family::V6) => 257,
            Shape::Tunnel { tunnel, outer, inner } => {
                let pair = match (outer, inner) {
                    (Family::V4, Family::V4) => 0,
                    (Family::V4, Family::V6) => 1,
                    (Family::V6, Family::V4) => 2,
                    (Family::V6, Family::V6) => 3,
                };
                258 + 4 * tunnel as u16 + pair
            }
        }
    }

    /// The template's elements, in order.
    #[must_use]
    pub fn fields(self) -> Vec<Field> {
        let (src, dst, icmp) = match self.inner() {
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
        if let Shape::Tunnel { tunnel, outer, .. } = self {
            fields.extend(tunnel.fields(outer));
        }
        fields
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ids are unique, in order, and the VXLAN ones are those of the
    /// versions before other tunnels.
    #[test]
    fn template_ids_are_stable_and_unique() {
        let ids: Vec<u16> = Shape::ALL.iter().map(|s| s.template_id()).collect();
        assert_eq!(ids, (256..278).collect::<Vec<_>>());
        assert_eq!(Shape::vxlan(Family::V4, Family::V4).template_id(), 258);
        assert_eq!(Shape::vxlan(Family::V6, Family::V6).template_id(), 261);
        let vxlan = Shape::vxlan(Family::V4, Family::V6).fields();
        let tail: Vec<Field> = vxlan[17..].to_vec();
        assert_eq!(
            tail,
            [
                Field::Layer2SegmentId,
                Field::NtopTunnelId,
                Field::NtopOuterProtocol,
                Field::NtopOuterSrcIpv4,
                Field::NtopOuterSrcPort,
                Field::NtopOuterDstIpv4,
                Field::NtopOuterDstPort
            ]
        );
    }
}
