//! IPFIX messages decoded by an independent parser (`netflow_parser`): every
//! shape's elements carry the record's values, messages respect the MTU, and
//! sequence numbers count data records.

use netflow_parser::{
    IpfixField, NetflowPacket,
    variable_versions::ipfix::{FlowSetBody, IPFix},
};
use vxflow_common::flow::DIRECTION_EGRESS;

use super::{IpfixEncoder, Shape};
use crate::{
    export::testing::{CLOCK, expected, one_of_each, option_values, parse_all, record, wire_bytes},
    record::FlowRecord,
};

/// A decoded data record: each element with its value's wire bytes.
type Decoded = Vec<(IpfixField, Vec<u8>)>;

/// Every message decoded, and each data record.
fn decode(messages: &[super::Encoded]) -> (Vec<IPFix>, Vec<Decoded>) {
    let (headers, records, options) = decode_all(messages);
    assert!(options.is_empty(), "no options records unless asked");
    (headers, records)
}

/// Every message decoded, each flow record, and each options record with
/// its set id.
fn decode_all(messages: &[super::Encoded]) -> (Vec<IPFix>, Vec<Decoded>, Vec<(u16, Decoded)>) {
    let (mut headers, mut records, mut options) = (Vec::new(), Vec::new(), Vec::new());
    let pairs = |rec: &Vec<(IpfixField, netflow_parser::FieldValue)>| -> Decoded {
        rec.iter().map(|(f, v)| (*f, wire_bytes(v))).collect()
    };
    for packet in parse_all(messages) {
        let NetflowPacket::IPFix(ipfix) = packet else { panic!("not IPFIX: {packet:?}") };
        for set in &ipfix.flowsets {
            match &set.body {
                FlowSetBody::Data(data) => records.extend(data.fields.iter().map(pairs)),
                FlowSetBody::OptionsData(data) => {
                    options.extend(data.fields.iter().map(|rec| (set.header.header_id, pairs(rec))));
                }
                FlowSetBody::Template(_)
                | FlowSetBody::Templates(_)
                | FlowSetBody::OptionsTemplate(_)
                | FlowSetBody::OptionsTemplates(_) => {}
                other => panic!("unexpected set {other:?}"),
            }
        }
        headers.push(ipfix);
    }
    (headers, records, options)
}

#[test]
fn every_shape_round_trips_through_netflow_parser() {
    let records = one_of_each();
    let mut enc = IpfixEncoder::new(0x0102_0304, 1400).unwrap();
    let messages = enc.encode(&records, &CLOCK, 1_767_225_700, true, None);
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
        (0..1000u16).map(|i| record(i, Shape::ALL[usize::from(i) % Shape::ALL.len()], 6, DIRECTION_EGRESS)).collect();
    let mut enc = IpfixEncoder::new(9, 1400).unwrap();
    let mut messages = enc.encode(&records[..400], &CLOCK, 1, true, None);
    messages.extend(enc.encode(&records[400..], &CLOCK, 2, false, None));
    assert_eq!(enc.sequence(), 1000);
    for m in &messages {
        let b = &m.bytes;
        assert!(b.len() <= 1400, "message of {} bytes", b.len());
        assert_eq!(usize::from(u16::from_be_bytes([b[2], b[3]])), b.len());
    }
    assert_eq!(messages.iter().map(|m| m.records).sum::<u32>(), 1000, "record counts per message add up");
    // The templates lead (more than one message holds), then none.
    let leading = messages.iter().take_while(|m| m.templates).count();
    assert!(leading >= 1 && messages[leading..].iter().all(|m| !m.templates));
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

/// Both dialects refuse an MTU that cannot hold their largest template or
/// record, and accept the smallest a collector may configure.
#[test]
fn too_small_an_mtu_is_refused() {
    use crate::export::{collector::MIN_MTU, netflow9::Netflow9Encoder};
    assert!(IpfixEncoder::new(1, 100).is_err());
    assert!(Netflow9Encoder::new(1, 100).is_err());
    assert!(IpfixEncoder::new(1, MIN_MTU).is_ok());
    assert!(Netflow9Encoder::new(1, MIN_MTU).is_ok());
}

/// Template ids are a wire contract: collectors cache them.
#[test]
fn template_ids_are_fixed_per_shape() {
    let ids: Vec<u16> = Shape::ALL.iter().map(|s| s.template_id()).collect();
    assert_eq!(ids, (256..278).collect::<Vec<u16>>());
}

#[test]
fn options_records_round_trip_with_their_templates() {
    let values = option_values();
    let records = one_of_each();
    let mut enc = IpfixEncoder::new(77, 1400).unwrap();
    let messages = enc.encode(&records, &CLOCK, 1_767_225_700, true, Some(&values));
    let (headers, flows, options) = decode_all(&messages);
    assert_eq!(flows.len(), records.len());
    let n = |v: u64, len: usize| v.to_be_bytes()[8 - len..].to_vec();
    let f = |id| IpfixField::new(id, None);
    let pid = u64::from(std::process::id());
    let name = |s: &str| {
        let mut b = s.as_bytes().to_vec();
        b.resize(16, 0);
        b
    };
    let want: Vec<(u16, Decoded)> = vec![
        (512, vec![(f(149), n(77, 4)), (f(34), n(1, 4)), (f(304), n(1, 2)), (f(305), n(1, 4)), (f(306), n(0, 4))]),
        (
            513,
            vec![
                (f(144), n(pid, 4)),
                (f(166), n(3, 8)),
                (f(167), n(300, 8)),
                (f(168), n(45_000, 8)),
                (f(323), n(1_767_225_601_000, 8)),
                (f(323), n(1_767_225_602_000, 8)),
            ],
        ),
        (
            514,
            vec![
                (f(149), n(77, 4)),
                (f(164), n(70, 8)),
                (f(165), n(7_000, 8)),
                (f(323), n(1_767_225_603_000, 8)),
                (f(323), n(1_767_225_604_000, 8)),
            ],
        ),
        (515, vec![(f(10), n(2, 4)), (f(82), name("eth0"))]),
        (515, vec![(f(10), n(5, 4)), (f(82), name("flannel.1"))]),
    ];
    assert_eq!(options, want);
    // Options records are data records: they count in the sequence.
    assert_eq!(enc.sequence(), u32::try_from(records.len() + want.len()).unwrap());
    assert_eq!(messages.iter().map(|m| m.options).sum::<u32>(), 5);
    assert_eq!(headers[0].header.sequence_number, 0);
}

/// Records whose ends a source names go in their shape's named template
/// (the shape's id + 768) with Antrea's six string elements after the
/// shape's; a record with no known end stays in its plain template; a
/// named record too long for the MTU goes unnamed rather than not at all.
#[test]
fn named_records_carry_antreas_elements() {
    use crate::{
        export::{builder::NAMED_TEMPLATE_OFFSET, fields::ANTREA_PEN, shape::Family},
        metadata::{IpMap, Owner, OwnerKind},
    };
    let mut map = IpMap::new(std::time::Duration::from_mins(2));
    let pod = |name: &str, node: &str| Owner {
        kind: OwnerKind::Pod,
        name: name.into(),
        namespace: Some("shop".into()),
        node: Some(node.into()),
        workload: None,
        labels: crate::metadata::ipmap::Labels::default(),
    };
    // testing::record's IPv4 pods: 10.244.0.2 to 10.244.1.3.
    map.set(&"pod/a".into(), pod("web-1", "node-1"), &["10.244.0.2".parse().unwrap()], 0);
    let long = "p".repeat(300);
    map.set(&"pod/b".into(), pod(&long, "node-2"), &["10.244.1.3".parse().unwrap()], 0);
    let named = record(1, Shape::vxlan(Family::V4, Family::V4), 6, DIRECTION_EGRESS);
    let plain = record(2, Shape::Plain(Family::V6), 17, DIRECTION_EGRESS);
    let records = [named.clone(), plain.clone()];
    let mut enc = IpfixEncoder::new(7, 1400).unwrap();
    let messages = enc.encode_named(&records, &CLOCK, 1_767_225_700, true, None, &map);
    let (headers, decoded) = decode(&messages);
    assert_eq!(decoded.len(), 2);
    let sets: Vec<u16> = headers
        .iter()
        .flat_map(|h| h.flowsets.iter())
        .filter(|s| matches!(s.body, FlowSetBody::Data(_)))
        .map(|s| s.header.header_id)
        .collect();
    assert_eq!(sets, [257, 258 + NAMED_TEMPLATE_OFFSET], "plain IPv6 unnamed, VXLAN named");
    let got = decoded.iter().find(|d| packets_of(d) == named.packets).unwrap();
    let string = |id: u16| {
        let f = IpfixField::new(id, Some(ANTREA_PEN));
        got.iter().find(|(g, _)| *g == f).map(|(_, v)| String::from_utf8(v.clone()).unwrap())
    };
    assert_eq!(string(100).as_deref(), Some("shop"));
    assert_eq!(string(101).as_deref(), Some("web-1"));
    assert_eq!(string(102).as_deref(), Some("shop"));
    assert_eq!(string(103).as_deref(), Some(long.as_str()), "300 bytes: a three-byte length");
    assert_eq!((string(104).as_deref(), string(105).as_deref()), (Some("node-1"), Some("node-2")));
    for (id, pen, bytes) in expected(&named) {
        let value = got.iter().find(|(f, _)| *f == IpfixField::new(id, pen)).unwrap();
        assert_eq!(value.1, bytes, "{id} beside the names");
    }
    // A name the MTU cannot hold: the record goes unnamed.
    map.set(&"pod/b".into(), pod(&"p".repeat(600), "node-2"), &["10.244.1.3".parse().unwrap()], 0);
    let mut small = IpfixEncoder::new(7, 512).unwrap();
    let messages = small.encode_named(&[named], &CLOCK, 1_767_225_700, true, None, &map);
    let (_, decoded) = decode(&messages);
    assert_eq!(decoded.len(), 1);
    assert!(decoded[0].iter().all(|(f, _)| *f != IpfixField::new(101, Some(ANTREA_PEN))));
}
