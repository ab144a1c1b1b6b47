//! Records and expected element values shared by the encoders' tests.

use vxflow_common::{
    FlowKey,
    flow::{DIRECTION_EGRESS, DIRECTION_INGRESS, ENCAP_VXLAN},
    user::addr16,
};

use super::{
    fields::NTOP_PEN,
    options::{Losses, OptionValues},
    shape::{Family, Shape},
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
        Shape::Vxlan { outer, inner } => (inner == Family::V6, Some(outer == Family::V6)),
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
    if let Some(outer_v6) = outer {
        key.encap = ENCAP_VXLAN;
        key.vni = 0x00ab_cdef;
        key.outer_ip_version = if outer_v6 { 6 } else { 4 };
        (key.outer_src_addr, key.outer_dst_addr) = if outer_v6 {
            (
                addr16([0xfd, 0, 0, 0x56, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x11].into()),
                addr16([0xfd, 0, 0, 0x56, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x12].into()),
            )
        } else {
            (addr16([192, 168, 56, 11].into()), addr16([192, 168, 56, 12].into()))
        };
        key.outer_src_port = 40000 + id;
        key.outer_dst_port = 8472;
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
    if k.encap == ENCAP_VXLAN {
        let ov6 = k.outer_ip_version == 6;
        let olen = if ov6 { 16 } else { 4 };
        e.extend([
            (351, None, vec![0x01, 0, 0, 0, 0, 0xab, 0xcd, 0xef]),
            (106, Some(NTOP_PEN), vec![0, 0xab, 0xcd, 0xef]),
            (113, Some(NTOP_PEN), vec![17]),
            (if ov6 { 396 } else { 114 }, Some(NTOP_PEN), k.outer_src_addr[..olen].to_vec()),
            (115, Some(NTOP_PEN), n(u64::from(k.outer_src_port), 2)),
            (if ov6 { 397 } else { 116 }, Some(NTOP_PEN), k.outer_dst_addr[..olen].to_vec()),
            (117, Some(NTOP_PEN), vec![0x21, 0x18]),
        ]);
    }
    e
}

/// Every shape with TCP egress, UDP ingress and ICMP (or ICMPv6) ingress,
/// each record's packet count unique.
pub fn one_of_each() -> Vec<FlowRecord> {
    let mut records = Vec::new();
    let mut id = 1;
    for shape in Shape::ALL {
        let v6 = matches!(shape, Shape::Plain(Family::V6) | Shape::Vxlan { inner: Family::V6, .. });
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
