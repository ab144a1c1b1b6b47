//! IPFIX messages decoded by an independent parser (`netflow_parser`): every
//! shape's elements carry the record's values, messages respect the MTU, and
//! sequence numbers count data records.

use netflow_parser::{
    IpfixField, NetflowPacket, NetflowParser,
    variable_versions::ipfix::{FlowSetBody, IPFix},
};
use vxflow_common::{
    FlowKey,
    flow::{DIRECTION_EGRESS, DIRECTION_INGRESS, ENCAP_VXLAN},
};

use super::{IpfixEncoder, Shape, fields::NTOP_PEN};
use crate::{
    clock::WallClock,
    record::{EndReason, FlowRecord},
};

/// 2026-01-01T00:00:00Z at boot-clock 0.
const CLOCK: WallClock = WallClock::with_offset_ns(1_767_225_600_000_000_000);
const MS: u64 = 1_000_000;

fn addr(v: &[u8]) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[..v.len()].copy_from_slice(v);
    a
}

/// A record whose source port identifies it in the decoded output.
fn record(id: u16, shape: Shape, protocol: u8, direction: u8) -> FlowRecord {
    let (inner_v6, outer) = match shape {
        Shape::Plain(f) => (f == super::template::Family::V6, None),
        Shape::Vxlan { outer, inner } => {
            (inner == super::template::Family::V6, Some(outer == super::template::Family::V6))
        }
    };
    let (src, dst) = if inner_v6 {
        (
            addr(&[0xfd, 0, 2, 0x44, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]),
            addr(&[0xfd, 0, 2, 0x44, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3]),
        )
    } else {
        (addr(&[10, 244, 0, 2]), addr(&[10, 244, 1, 3]))
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
                addr(&[0xfd, 0, 0, 0x56, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x11]),
                addr(&[0xfd, 0, 0, 0x56, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x12]),
            )
        } else {
            (addr(&[192, 168, 56, 11]), addr(&[192, 168, 56, 12]))
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
fn expected(r: &FlowRecord) -> Vec<(u16, Option<u32>, Vec<u8>)> {
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

/// A decoded data record: each element with its value's wire bytes.
type Decoded = Vec<(IpfixField, Vec<u8>)>;

/// Every message decoded, and each data record.
fn decode(messages: &[super::Encoded]) -> (Vec<IPFix>, Vec<Decoded>) {
    let mut parser = NetflowParser::default();
    let (mut headers, mut records) = (Vec::new(), Vec::new());
    for m in messages {
        let result = parser.parse_bytes(&m.bytes);
        assert!(result.error.is_none(), "netflow_parser rejected a message: {:?}", result.error);
        for packet in result.packets {
            let NetflowPacket::IPFix(ipfix) = packet else { panic!("not IPFIX: {packet:?}") };
            for set in &ipfix.flowsets {
                match &set.body {
                    FlowSetBody::Data(data) => {
                        for rec in &data.fields {
                            records.push(
                                rec.iter()
                                    .map(|(f, v)| {
                                        let mut b = Vec::new();
                                        v.write_be_bytes(&mut b).unwrap();
                                        (*f, b)
                                    })
                                    .collect(),
                            );
                        }
                    }
                    FlowSetBody::Template(_) | FlowSetBody::Templates(_) => {}
                    other => panic!("unexpected set {other:?}"),
                }
            }
            headers.push(ipfix);
        }
    }
    (headers, records)
}

#[test]
fn every_shape_round_trips_through_netflow_parser() {
    let mut records = Vec::new();
    let mut id = 1;
    for shape in Shape::ALL {
        for (protocol, direction) in [(6, DIRECTION_EGRESS), (17, DIRECTION_INGRESS), (1, DIRECTION_INGRESS)] {
            let protocol = if protocol == 1
                && matches!(
                    shape,
                    Shape::Plain(super::template::Family::V6) | Shape::Vxlan { inner: super::template::Family::V6, .. }
                ) {
                58
            } else {
                protocol
            };
            records.push(record(id, shape, protocol, direction));
            id += 1;
        }
    }
    let mut enc = IpfixEncoder::new(0x0102_0304, 1400).unwrap();
    let messages = enc.encode(&records, &CLOCK, 1_767_225_700, true);
    let (headers, decoded) = decode(&messages);
    assert_eq!(decoded.len(), records.len(), "every record decoded once");
    assert!(
        headers.iter().all(|h| h.header.observation_domain_id == 0x0102_0304 && h.header.export_time == 1_767_225_700)
    );
    for r in &records {
        let want = expected(r);
        // Packet counts are unique per test record: they identify it.
        let got = decoded
            .iter()
            .find(|d| packets_of(d) == r.packets)
            .unwrap_or_else(|| panic!("record {} not decoded", r.key.src_port));
        assert_eq!(got.len(), want.len(), "element count of {:?}", Shape::of(&r.key));
        for (id, pen, bytes) in want {
            let field = IpfixField::new(id, pen);
            let value = got.iter().find(|(f, _)| *f == field).unwrap_or_else(|| panic!("{field:?} missing"));
            assert_eq!(value.1, bytes, "{field:?} of {:?} {}", Shape::of(&r.key), r.key.protocol);
        }
    }
}

fn packets_of(d: &[(IpfixField, Vec<u8>)]) -> u64 {
    let b = &d.iter().find(|(f, _)| *f == IpfixField::new(2, None)).expect("packetDeltaCount").1;
    u64::from_be_bytes(b.as_slice().try_into().expect("8-byte packetDeltaCount"))
}

#[test]
fn messages_fit_the_mtu_and_sequence_numbers_count_data_records() {
    let records: Vec<FlowRecord> =
        (0..1000u16).map(|i| record(i, Shape::ALL[usize::from(i) % 6], 6, DIRECTION_EGRESS)).collect();
    let mut enc = IpfixEncoder::new(9, 1400).unwrap();
    let mut messages = enc.encode(&records[..400], &CLOCK, 1, true);
    messages.extend(enc.encode(&records[400..], &CLOCK, 2, false));
    assert_eq!(enc.sequence(), 1000);
    for m in &messages {
        let b = &m.bytes;
        assert!(b.len() <= 1400, "message of {} bytes", b.len());
        assert_eq!(usize::from(u16::from_be_bytes([b[2], b[3]])), b.len());
    }
    assert_eq!(messages.iter().map(|m| m.records).sum::<u32>(), 1000, "record counts per message add up");
    assert!(messages[0].templates && messages[1..].iter().all(|m| !m.templates));
    let (headers, decoded) = decode(&messages);
    assert_eq!(decoded.len(), 1000);
    // Each header's sequence is the data records sent before it.
    let mut sent = 0u32;
    for h in &headers {
        assert_eq!(h.header.sequence_number, sent);
        sent += h
            .flowsets
            .iter()
            .map(|s| match &s.body {
                FlowSetBody::Data(d) => u32::try_from(d.fields.len()).unwrap(),
                _ => 0,
            })
            .sum::<u32>();
    }
    assert_eq!(sent, 1000);
}

#[test]
fn too_small_an_mtu_is_refused() {
    assert!(IpfixEncoder::new(1, 100).is_err());
    assert!(IpfixEncoder::new(1, 512).is_ok());
}

/// Template ids are a wire contract: collectors cache them.
#[test]
fn template_ids_are_fixed_per_shape() {
    let ids: Vec<u16> = Shape::ALL.iter().map(|s| s.template_id()).collect();
    assert_eq!(ids, [256, 257, 258, 259, 260, 261]);
}
