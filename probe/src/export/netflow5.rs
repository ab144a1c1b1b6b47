//! NetFlow version 5: a fixed 48-byte record, at most 30 a packet, IPv4 only.
//! For VXLAN flows it carries the IPv4 inner tuple (the VNI and outer tuple
//! have no place in it). A flow with an IPv6 inner tuple cannot be carried:
//! the encoder returns it as not carried, for the sink to count. Counts
//! beyond 32 bits are spread over several records so totals stay exact.

use vxflow_common::flow::{DIRECTION_EGRESS, DIRECTION_INGRESS};

use super::{message::Encoded, uptime::Uptime};
use crate::{clock::WallClock, record::FlowRecord};

const VERSION: u16 = 5;
const HEADER_LEN: usize = 24;
const RECORD_LEN: usize = 48;
/// The most records a v5 packet holds.
pub const MAX_RECORDS: usize = 30;

/// What one encode produced.
pub struct V5Export {
    pub packets: Vec<Encoded>,
    /// Records that v5 cannot carry (IPv6 inner tuple).
    pub not_carried: u64,
}

pub struct Netflow5Encoder {
    engine_type: u8,
    engine_id: u8,
    /// Flows sent so far (the v5 header's `flow_sequence`).
    flow_sequence: u32,
    uptime: Uptime,
}

impl Netflow5Encoder {
    #[must_use]
    pub fn new(engine_type: u8, engine_id: u8) -> Self {
        Self { engine_type, engine_id, flow_sequence: 0, uptime: Uptime::default() }
    }

    /// Encodes `records` at wall-clock `now_ms`, counted 1 in `sampling`
    /// packets (1: every packet).
    pub fn encode(&mut self, records: &[FlowRecord], clock: &WallClock, now_ms: u64, sampling: u32) -> V5Export {
        // Two bits of mode (01 deterministic, 10 random), 14 of interval.
        let sampling_field: u16 = match u16::try_from(sampling) {
            Ok(0 | 1) => 0,
            Ok(n) if n < 1 << 14 => 0b10 << 14 | n,
            _ => 0b10 << 14 | ((1 << 14) - 1),
        };
        let epoch = self.uptime.epoch(now_ms);
        // Each record's bytes, packets and octets.
        let mut body: Vec<([u8; RECORD_LEN], u64, u64)> = Vec::new();
        let mut not_carried = 0;
        for r in records {
            if r.key.ip_version != 4 {
                not_carried += 1;
                continue;
            }
            for (packets, bytes) in split_u32(r.packets, r.bytes) {
                body.push((record(r, clock, epoch, packets, bytes), u64::from(packets), u64::from(bytes)));
            }
        }
        let packets = body
            .chunks(MAX_RECORDS)
            .map(|chunk| {
                let mut b = Vec::with_capacity(HEADER_LEN + chunk.len() * RECORD_LEN);
                let count = u16::try_from(chunk.len()).unwrap_or(u16::MAX);
                b.extend_from_slice(&VERSION.to_be_bytes());
                b.extend_from_slice(&count.to_be_bytes());
                b.extend_from_slice(&Uptime::since(epoch, now_ms).to_be_bytes());
                b.extend_from_slice(&u32::try_from(now_ms / 1000).unwrap_or(u32::MAX).to_be_bytes());
                b.extend_from_slice(&u32::try_from((now_ms % 1000) * 1_000_000).unwrap_or(0).to_be_bytes());
                b.extend_from_slice(&self.flow_sequence.to_be_bytes());
                b.push(self.engine_type);
                b.push(self.engine_id);
                b.extend_from_slice(&sampling_field.to_be_bytes());
                for (rec, _, _) in chunk {
                    b.extend_from_slice(rec);
                }
                self.flow_sequence = self.flow_sequence.wrapping_add(u32::from(count));
                Encoded {
                    bytes: b,
                    records: u32::from(count),
                    packets: chunk.iter().map(|c| c.1).sum(),
                    octets: chunk.iter().map(|c| c.2).sum(),
                    ..Encoded::default()
                }
            })
            .collect();
        V5Export { packets, not_carried }
    }
}

/// `packets` and `bytes` as the fewest (packets, bytes) pairs that each fit
/// in 32 bits and sum exactly to the inputs.
fn split_u32(packets: u64, bytes: u64) -> Vec<(u32, u32)> {
    let max = u64::from(u32::MAX);
    let n = packets.div_ceil(max).max(bytes.div_ceil(max)).max(1);
    (0..n)
        .map(|i| {
            let share = |total: u64| total / n + u64::from(i < total % n);
            (u32::try_from(share(packets)).unwrap_or(u32::MAX), u32::try_from(share(bytes)).unwrap_or(u32::MAX))
        })
        .collect()
}

/// One 48-byte v5 record.
fn record(r: &FlowRecord, clock: &WallClock, epoch: u64, packets: u32, bytes: u32) -> [u8; RECORD_LEN] {
    let k = &r.key;
    let mut b = [0u8; RECORD_LEN];
    b[0..4].copy_from_slice(&k.src_addr[..4]);
    b[4..8].copy_from_slice(&k.dst_addr[..4]);
    // next hop (8..12) unknown: zero. SNMP indexes are 16 bits in v5.
    let if16 = |dir| if k.direction == dir { u16::try_from(k.ifindex).unwrap_or(u16::MAX) } else { 0 };
    b[12..14].copy_from_slice(&if16(DIRECTION_INGRESS).to_be_bytes());
    b[14..16].copy_from_slice(&if16(DIRECTION_EGRESS).to_be_bytes());
    b[16..20].copy_from_slice(&packets.to_be_bytes());
    b[20..24].copy_from_slice(&bytes.to_be_bytes());
    b[24..28].copy_from_slice(&Uptime::since(epoch, clock.to_unix_ms(r.start_ns)).to_be_bytes());
    b[28..32].copy_from_slice(&Uptime::since(epoch, clock.to_unix_ms(r.end_ns)).to_be_bytes());
    let icmp = k.is_icmp();
    let (sport, dport) = if icmp { (0, k.dst_port) } else { (k.src_port, k.dst_port) };
    b[32..34].copy_from_slice(&sport.to_be_bytes());
    b[34..36].copy_from_slice(&dport.to_be_bytes());
    b[37] = r.tcp_flags;
    b[38] = k.protocol;
    b[39] = k.tos;
    // AS numbers and masks (40..46) unknown: zero; 46..48 padding.
    b
}

#[cfg(test)]
mod tests {
    use netflow_parser::NetflowPacket;

    use super::*;
    use crate::export::{
        shape::{Family, Shape},
        testing::{CLOCK, one_of_each, parse_all, record as test_record},
    };

    const NOW_MS: u64 = 1_767_225_605_000;

    /// Test records with counts that fit one v5 record each.
    fn small(mut records: Vec<FlowRecord>) -> Vec<FlowRecord> {
        for r in &mut records {
            r.packets %= 1 << 20;
            r.bytes %= 1 << 30;
        }
        records
    }

    #[test]
    fn carries_ipv4_inner_tuples_and_counts_the_rest() {
        let records = small(one_of_each());
        let mut enc = Netflow5Encoder::new(7, 42);
        let out = enc.encode(&records, &CLOCK, NOW_MS, 1);
        let v4: Vec<&FlowRecord> = records.iter().filter(|r| r.key.ip_version == 4).collect();
        assert_eq!(out.not_carried, (records.len() - v4.len()) as u64);
        let mut decoded = Vec::new();
        for p in parse_all(&out.packets) {
            let NetflowPacket::V5(v5) = p else { panic!("not v5") };
            assert_eq!((v5.header.engine_type, v5.header.engine_id), (7, 42));
            assert_eq!(v5.header.sampling_interval, 0, "every packet");
            decoded.extend(v5.flowsets.into_iter().map(|f| (v5.header.sys_up_time, f)));
        }
        assert_eq!(decoded.len(), v4.len());
        for r in v4 {
            let (uptime, f) = decoded.iter().find(|(_, f)| u64::from(f.d_pkts) == r.packets).expect("record decoded");
            assert_eq!(f.src_addr.octets(), r.key.src_addr[..4]);
            assert_eq!(f.dst_addr.octets(), r.key.dst_addr[..4]);
            assert_eq!((f.protocol_number, f.tos, f.tcp_flags), (r.key.protocol, 0xb8, r.tcp_flags));
            assert_eq!(u64::from(f.d_octets), r.bytes);
            // Records start 4 s and end 2.5 s before now.
            assert_eq!((uptime - f.first, uptime - f.last), (4_000, 2_500));
            let (input, output) = if r.key.direction == DIRECTION_INGRESS { (7, 0) } else { (0, 7) };
            assert_eq!((f.input, f.output), (input, output));
            if r.key.protocol == 1 {
                assert_eq!((f.src_port, f.dst_port), (0, 0x0800));
            } else {
                assert_eq!((f.src_port, f.dst_port), (r.key.src_port, r.key.dst_port));
            }
        }
    }

    /// The header's sampling field: mode 2 (random) in the top two bits,
    /// the interval in the other 14, as nfdump reads it.
    #[test]
    fn states_the_sampling_in_the_header() {
        let records = small(vec![test_record(1, Shape::Plain(Family::V4), 17, 0)]);
        for (n, field) in [(1, 0), (100, 0x8064), (16_383, 0xbfff)] {
            let out = Netflow5Encoder::new(0, 0).encode(&records, &CLOCK, NOW_MS, n);
            let NetflowPacket::V5(v5) = &parse_all(&out.packets)[0] else { panic!("not v5") };
            assert_eq!(v5.header.sampling_interval, field, "1 in {n}");
        }
    }

    #[test]
    fn packs_thirty_records_a_packet_and_sequences_flows() {
        let records = small((0..75).map(|i| test_record(i, Shape::Plain(Family::V4), 17, 0)).collect());
        let mut enc = Netflow5Encoder::new(0, 0);
        let out = enc.encode(&records, &CLOCK, NOW_MS, 1);
        let counts: Vec<u32> = out.packets.iter().map(|p| p.records).collect();
        assert_eq!(counts, [30, 30, 15]);
        let sequences: Vec<u32> = parse_all(&out.packets)
            .into_iter()
            .map(|p| match p {
                NetflowPacket::V5(v5) => v5.header.flow_sequence,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(sequences, [0, 30, 60]);
    }

    #[test]
    fn counts_past_32_bits_are_split_exactly() {
        // 10 GB in 10 packets: three records whose sums are exact.
        let mut r = test_record(1, Shape::Plain(Family::V4), 6, 0);
        (r.packets, r.bytes) = (10, 10_000_000_000);
        let out = Netflow5Encoder::new(0, 0).encode(&[r], &CLOCK, NOW_MS, 1);
        let flows: Vec<_> = parse_all(&out.packets)
            .into_iter()
            .flat_map(|p| match p {
                NetflowPacket::V5(v5) => v5.flowsets,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(flows.len(), 3);
        assert_eq!(flows.iter().map(|f| u64::from(f.d_pkts)).sum::<u64>(), 10);
        assert_eq!(flows.iter().map(|f| u64::from(f.d_octets)).sum::<u64>(), 10_000_000_000);
        let parts = split_u32(10, 10_000_000_000);
        assert_eq!(parts.len(), 3);
        assert_eq!(parts.iter().map(|p| u64::from(p.0)).sum::<u64>(), 10);
        assert_eq!(parts.iter().map(|p| u64::from(p.1)).sum::<u64>(), 10_000_000_000);
        assert_eq!(split_u32(5, 100), [(5, 100)]);
    }
}
