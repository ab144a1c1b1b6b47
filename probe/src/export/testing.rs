//! Records and expected element values shared by the encoders' tests.

use vxflow_common::{
    FlowKey,
    flow::{
        DIRECTION_EGRESS, DIRECTION_INGRESS, ENCAP_GENEVE, ENCAP_GRE, ENCAP_IPIP, ENCAP_VXLAN, TUNNEL_FLAG_ETHERNET,
        TUNNEL_FLAG_KEY,
    },
    user::{Tunnel, addr16},
};

use super::{
    fields::{NTOP_PEN, VMWARE_PEN},
    options::{Losses, OptionValues},
    shape::{Family, Shape, TunnelShape},
};
use crate::{
    clock::WallClock,
    record::{EndReason, FlowRecord},
};

/// 2026-01-01T00:00:00Z at kernel-clock 0.
pub const CLOCK: WallClock = WallClock::with_offset_ns(1_767_225_600_000_000_000);
pub const MS: u64 = 1_000_000;

/// A record whose source port identifies it in the decoded output.
pub fn record(id: u16, shape: Shape, protocol: u8, direction: u8) -> FlowRecord {
    let (inner_v6, outer) = match shape {
        Shape::Plain(f) => (f == Family::V6, None),
        Shape::Tunnel { tunnel, outer, inner } => (inner == Family::V6, Some((tunnel, outer == Family::V6))),
    };
    let (src, dst) = if inner_v6 {
        (
            addr16([0xfd, 0, 2, 0x44, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2].into()),
            addr16([0xfd, 0, 2, 0x44, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3].into()),
        )
    } else {
        (addr16([10, 244, 0, 2].into()), addr16([10, 244, 1, 3].into()))
    };
    let mut key = FlowKey {
        src_addr: src,
        dst_addr: dst,
        src_port: id,
        dst_port: if matches!(protocol, 1 | 58) { 0x0800 } else { 5201 },
        protocol,
        ip_version: if inner_v6 { 6 } else { 4 },
        direction,
        ifindex: 7,
        tos: 0xb8,
        ..FlowKey::default()
    };
    if let Some((tunnel, outer_v6)) = outer {
        let eth = TUNNEL_FLAG_KEY | TUNNEL_FLAG_ETHERNET;
        (key.encap, key.tunnel_id, key.tunnel_flags) = match tunnel {
            TunnelShape::Vxlan => (ENCAP_VXLAN, 0x00ab_cdef, eth),
            TunnelShape::Geneve => (ENCAP_GENEVE, 0x0012_3456, eth),
            TunnelShape::Gre => (ENCAP_GRE, 0xfedc_ba98, TUNNEL_FLAG_KEY),
            TunnelShape::Nvgre => (ENCAP_GRE, 0x0065_4321 << 8 | 0x7f, eth),
            TunnelShape::Ipip => (ENCAP_IPIP, 0, 0),
        };
        key.outer_ip_version = if outer_v6 { 6 } else { 4 };
        (key.outer_src_addr, key.outer_dst_addr) = if outer_v6 {
            (
                addr16([0xfd, 0, 0, 0x56, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x11].into()),
                addr16([0xfd, 0, 0, 0x56, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x12].into()),
            )
        } else {
            (addr16([192, 168, 56, 11].into()), addr16([192, 168, 56, 12].into()))
        };
        if matches!(tunnel, TunnelShape::Vxlan | TunnelShape::Geneve) {
            key.outer_src_port = 40000 + id;
            key.outer_dst_port = if tunnel == TunnelShape::Vxlan { 8472 } else { 6081 };
        }
    }
    FlowRecord {
        key,
        start_ns: 1_000 * MS,
        end_ns: 2_500 * MS,
        packets: 1_000_000 + u64::from(id),
        bytes: 5_000_000_000 + u64::from(id),
        outer_bytes: 0,
        tcp_flags: 0x1b,
        end_reason: EndReason::ActiveTimeout,
    }
}

/// A tunnel's layer2SegmentId, tunnelType, tunnel id and outer protocol.
type TunnelValues = (Option<[u8; 8]>, Option<u8>, Option<[u8; 4]>, u8);

/// What each element must carry for `r`, written out independently of
/// `fields.rs`: (element id, enterprise, big-endian bytes).
pub fn expected(r: &FlowRecord) -> Vec<(u16, Option<u32>, Vec<u8>)> {
    let k = &r.key;
    let v6 = k.ip_version == 6;
    let icmp = matches!(k.protocol, 1 | 58);
    let n = |v: u64, len: usize| v.to_be_bytes()[8 - len..].to_vec();
    let mut e = vec![
        (if v6 { 27 } else { 8 }, None, k.src_addr[..if v6 { 16 } else { 4 }].to_vec()),
        (if v6 { 28 } else { 12 }, None, k.dst_addr[..if v6 { 16 } else { 4 }].to_vec()),
        (7, None, n(if icmp { 0 } else { u64::from(k.src_port) }, 2)),
        (11, None, n(if icmp { 0 } else { u64::from(k.dst_port) }, 2)),
        (4, None, vec![k.protocol]),
        (5, None, vec![0xb8]),
        (6, None, vec![0, 0x1b]),
        (if v6 { 139 } else { 32 }, None, n(if icmp { 0x0800 } else { 0 }, 2)),
        (60, None, vec![k.ip_version]),
        (10, None, n(if k.direction == DIRECTION_INGRESS { 7 } else { 0 }, 4)),
        (14, None, n(if k.direction == DIRECTION_EGRESS { 7 } else { 0 }, 4)),
        (61, None, vec![k.direction]),
        (152, None, n(1_767_225_601_000, 8)),
        (153, None, n(1_767_225_602_500, 8)),
        (1, None, n(r.bytes, 8)),
        (2, None, n(r.packets, 8)),
        (136, None, vec![2]),
    ];
    let Some(tunnel) = k.tunnel() else { return e };
    let ov6 = k.outer_ip_version == 6;
    let olen = if ov6 { 16 } else { 4 };
    let nvgre = tunnel == Tunnel::Gre && k.tunnel_flags & TUNNEL_FLAG_ETHERNET != 0;
    // Written out per tunnel, from the values `record` gives.
    let (segment, kind, id, outer_protocol): TunnelValues = match tunnel {
        Tunnel::Vxlan => (Some([0x01, 0, 0, 0, 0, 0xab, 0xcd, 0xef]), None, Some([0, 0xab, 0xcd, 0xef]), 17),
        Tunnel::Geneve => (None, Some(0x07), Some([0, 0x12, 0x34, 0x56]), 17),
        Tunnel::Gre if nvgre => {
            (Some([0x02, 0, 0, 0, 0, 0x65, 0x43, 0x21]), Some(0x02), Some([0x65, 0x43, 0x21, 0x7f]), 47)
        }
        Tunnel::Gre => (None, Some(0x02), Some([0xfe, 0xdc, 0xba, 0x98]), 47),
        Tunnel::Ipip => (None, None, None, if v6 { 41 } else { 4 }),
    };
    if let Some(segment) = segment {
        e.push((351, None, segment.to_vec()));
    }
    if let Some(kind) = kind {
        e.push((891, Some(VMWARE_PEN), vec![kind]));
    }
    if let Some(id) = id {
        e.push((106, Some(NTOP_PEN), id.to_vec()));
    }
    e.push((113, Some(NTOP_PEN), vec![outer_protocol]));
    e.push((if ov6 { 396 } else { 114 }, Some(NTOP_PEN), k.outer_src_addr[..olen].to_vec()));
    if tunnel.is_udp() {
        e.push((115, Some(NTOP_PEN), n(u64::from(k.outer_src_port), 2)));
    }
    e.push((if ov6 { 397 } else { 116 }, Some(NTOP_PEN), k.outer_dst_addr[..olen].to_vec()));
    if tunnel.is_udp() {
        e.push((117, Some(NTOP_PEN), n(u64::from(k.outer_dst_port), 2)));
    }
    e
}

/// Every shape with TCP egress, UDP ingress and ICMP (or ICMPv6) ingress,
/// each record's packet count unique.
pub fn one_of_each() -> Vec<FlowRecord> {
    let mut records = Vec::new();
    let mut id = 1;
    for shape in Shape::ALL {
        let v6 = shape.inner() == Family::V6;
        for (protocol, direction) in
            [(6, DIRECTION_EGRESS), (17, DIRECTION_INGRESS), (if v6 { 58 } else { 1 }, DIRECTION_INGRESS)]
        {
            records.push(record(id, shape, protocol, direction));
            id += 1;
        }
    }
    records
}

/// Every packet in `messages`, decoded by `netflow_parser`; fails on any
/// parse error.
pub fn parse_all(messages: &[super::message::Encoded]) -> Vec<netflow_parser::NetflowPacket> {
    let mut parser = netflow_parser::NetflowParser::default();
    let mut packets = Vec::new();
    for m in messages {
        let result = parser.parse_bytes(&m.bytes);
        assert!(result.error.is_none(), "netflow_parser rejected a message: {:?}", result.error);
        packets.extend(result.packets);
    }
    packets
}

/// A decoded value as it was on the wire.
pub fn wire_bytes(value: &netflow_parser::FieldValue) -> Vec<u8> {
    let mut b = Vec::new();
    value.write_be_bytes(&mut b).unwrap();
    b
}

/// Options values with every field distinct.
pub fn option_values() -> OptionValues {
    OptionValues {
        not_sent: Losses {
            flows: 3,
            packets: 300,
            octets: 45_000,
            first_ms: 1_767_225_601_000,
            last_ms: 1_767_225_602_000,
        },
        ignored: Losses {
            flows: 0,
            packets: 70,
            octets: 7_000,
            first_ms: 1_767_225_603_000,
            last_ms: 1_767_225_604_000,
        },
        interfaces: vec![(2, "eth0".into()), (5, "flannel.1".into())],
        sampling: 1,
    }
}
