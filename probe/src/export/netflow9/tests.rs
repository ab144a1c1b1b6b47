//! NetFlow v9 packets decoded by an independent parser (`netflow_parser`):
//! the same element values as IPFIX under v9's type numbers, timestamps as
//! sysUptime offsets, a count of records per packet, a sequence that counts
//! packets, and uptime that never wraps across a record.

use netflow_parser::{
    NetflowPacket,
    variable_versions::v9::{FlowSetBody, ScopeDataField, V9},
};

use super::Netflow9Encoder;
use crate::export::{
    fields::{NTOP_PEN, VMWARE_PEN},
    message::Encoded,
    testing::{CLOCK, expected, one_of_each, option_values, parse_all, wire_bytes},
};

/// 2026-01-01T00:00:05Z: the records start at 00:00:01 and end at 00:00:02.5.
const NOW_MS: u64 = 1_767_225_605_000;

type Decoded = Vec<(u16, Vec<u8>)>;

fn decode(packets: &[Encoded]) -> (Vec<V9>, Vec<Decoded>) {
    let (mut headers, mut records) = (Vec::new(), Vec::new());
    for packet in parse_all(packets) {
        let NetflowPacket::V9(v9) = packet else { panic!("not NetFlow v9: {packet:?}") };
        for set in &v9.flowsets {
            if let FlowSetBody::Data(data) = &set.body {
                for rec in &data.fields {
                    records.push(rec.iter().map(|(f, v)| (u16::from(*f), wire_bytes(v))).collect());
                }
            }
        }
        headers.push(v9);
    }
    (headers, records)
}

#[test]
fn every_shape_round_trips_with_v9_types_and_uptime_timestamps() {
    let records = one_of_each();
    let mut enc = Netflow9Encoder::new(0x0a0b_0c0d, 1400).unwrap();
    let packets = enc.encode(&records, &CLOCK, NOW_MS, true, None);
    let (headers, decoded) = decode(&packets);
    assert_eq!(decoded.len(), records.len());
    for h in &headers {
        assert_eq!(h.header.source_id, 0x0a0b_0c0d);
        assert_eq!(h.header.unix_secs, 1_767_225_605);
    }
    // Every record counts in its header: 22 templates, 2 options
    // templates, and the data records.
    let counted: u32 = headers.iter().map(|h| u32::from(h.header.count)).sum();
    let data: u32 = packets.iter().map(|p| p.records).sum();
    assert_eq!(counted, 22 + 2 + data, "count is every record in the packet");
    let uptime = headers[0].header.sys_up_time;
    for r in &records {
        let got = decoded
            .iter()
            .find(|d| d.iter().any(|(t, b)| *t == 2 && *b == r.packets.to_be_bytes()))
            .expect("record decoded");
        // v9 has no enterprise numbers: VMware's elements are left out.
        for (id, pen, bytes) in expected(r).into_iter().filter(|(_, pen, _)| *pen != Some(VMWARE_PEN)) {
            let (ty, want) = match (id, pen) {
                // Absolute ms become sysUptime offsets: now - start, now - end.
                (152, None) => (22, (uptime - 4_000).to_be_bytes().to_vec()),
                (153, None) => (21, (uptime - 2_500).to_be_bytes().to_vec()),
                (n, Some(NTOP_PEN)) => (57_472 + n, bytes),
                (n, _) => (n, bytes),
            };
            let value = got.iter().find(|(t, _)| *t == ty).unwrap_or_else(|| panic!("type {ty} missing"));
            assert_eq!(value.1, want, "type {ty}");
        }
    }
    assert!(uptime > 4_000, "the epoch precedes the records");
}

#[test]
fn sequence_counts_packets_and_uptime_is_rebased_before_it_wraps() {
    let records = one_of_each();
    let mut enc = Netflow9Encoder::new(1, 600).unwrap();
    let first = enc.encode(&records, &CLOCK, NOW_MS, true, None);
    assert!(first.len() > 1, "a small MTU splits the export");
    assert_eq!(enc.sequence(), u32::try_from(first.len()).unwrap());
    let (headers, _) = decode(&first);
    for (i, h) in headers.iter().enumerate() {
        assert_eq!(h.header.sequence_number, u32::try_from(i).unwrap());
        assert!(first[i].bytes.len() <= 600);
    }
    // 30 days on, uptime would exceed 2^31 ms: the epoch moves, and the
    // uptime stays well inside a u32.
    let later = NOW_MS + 30 * 24 * 3600 * 1000;
    let clock = crate::clock::WallClock::with_offset_ns(i128::from(later - 10_000) * 1_000_000);
    let again = enc.encode(&records, &clock, later, true, None);
    let (headers, decoded) = decode(&again);
    let uptime = headers[0].header.sys_up_time;
    assert!(uptime < 1 << 31, "uptime {uptime}");
    // FIRST_SWITCHED is 10 s + 1 s before now: still consistent after the rebase.
    let first_switched = decoded[0].iter().find(|(t, _)| *t == 22).unwrap();
    assert_eq!(u32::from_be_bytes(first_switched.1.clone().try_into().unwrap()), uptime - 9_000);
}

#[test]
fn options_carry_sampling_and_interface_names() {
    let mut enc = Netflow9Encoder::new(0x0a0b_0c0d, 1400).unwrap();
    let packets = enc.encode(&[], &CLOCK, NOW_MS, true, Some(&option_values()));
    let mut got = Vec::new();
    for packet in parse_all(&packets) {
        let NetflowPacket::V9(v9) = packet else { panic!("not NetFlow v9") };
        for set in &v9.flowsets {
            if let FlowSetBody::OptionsData(data) = &set.body {
                for rec in &data.fields {
                    let fields: Vec<(u16, Vec<u8>)> =
                        rec.options_fields.iter().map(|(f, v)| (u16::from(*f), wire_bytes(v))).collect();
                    got.push((set.header.flowset_id, rec.scope_fields.clone(), fields));
                }
            }
        }
    }
    let name = |s: &str| {
        let mut b = s.as_bytes().to_vec();
        b.resize(16, 0);
        b
    };
    assert_eq!(
        got,
        vec![
            (512, vec![ScopeDataField::System(vec![0x0a, 0x0b, 0x0c, 0x0d])], vec![(34, vec![0, 0, 0, 1])]),
            (515, vec![ScopeDataField::Interface(vec![0, 0, 0, 2])], vec![(82, name("eth0"))]),
            (515, vec![ScopeDataField::Interface(vec![0, 0, 0, 5])], vec![(82, name("flannel.1"))]),
        ]
    );
    // A v9 header counts every record: 22 templates, 2 options templates, 3 options records.
    let count: u32 = packets.iter().map(|p| u32::from(u16::from_be_bytes([p.bytes[2], p.bytes[3]]))).sum();
    assert_eq!(count, 27);
}
