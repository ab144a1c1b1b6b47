//! IPFIX and NetFlow v9 from the encoders, decoded by Wireshark's cflow
//! dissector (`tshark`): no malformed packet, and the VNI and outer addresses
//! of every shape visible among the decoded fields, and the options records
//! (sampling, reliability, interface names) decoded with their values.

use std::{net::Ipv4Addr, process::Command};

use vxflow::{
    clock::WallClock,
    export::{
        ipfix::IpfixEncoder,
        netflow9::Netflow9Encoder,
        options::{Losses, OptionValues},
    },
    record::{EndReason, FlowRecord},
};
use vxflow_common::{
    FlowKey,
    flow::{ENCAP_GENEVE, ENCAP_GRE, ENCAP_IPIP, ENCAP_VXLAN, TUNNEL_FLAG_ETHERNET, TUNNEL_FLAG_KEY},
    user::addr16,
};

const POD_A: [u8; 16] = [0xfd, 0, 2, 0x44, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
const NODE6_A: [u8; 16] = [0xfd, 0, 0, 0x56, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x11];

/// A tunnel around a record: outer IPv6, type, id and flags.
#[derive(Clone, Copy)]
struct Around {
    outer_v6: bool,
    encap: u8,
    id: u32,
    flags: u8,
}

fn record(inner_v6: bool, outer: Option<Around>) -> FlowRecord {
    let mut key = FlowKey {
        src_addr: if inner_v6 { POD_A } else { addr16([10, 244, 0, 2].into()) },
        dst_addr: if inner_v6 { POD_A } else { addr16([10, 244, 1, 3].into()) },
        src_port: 40000,
        dst_port: 5201,
        protocol: 6,
        ip_version: if inner_v6 { 6 } else { 4 },
        ifindex: 2,
        ..FlowKey::default()
    };
    if let Some(Around { outer_v6, encap, id, flags }) = outer {
        let udp = matches!(encap, ENCAP_VXLAN | ENCAP_GENEVE);
        key.encap = encap;
        key.tunnel_id = id;
        key.tunnel_flags = flags;
        key.outer_ip_version = if outer_v6 { 6 } else { 4 };
        key.outer_src_addr = if outer_v6 { NODE6_A } else { addr16([192, 168, 56, 11].into()) };
        key.outer_dst_addr = if outer_v6 { NODE6_A } else { addr16([192, 168, 56, 12].into()) };
        key.outer_src_port = if udp { 51234 } else { 0 };
        key.outer_dst_port = match encap {
            ENCAP_VXLAN => 8472,
            ENCAP_GENEVE => 6081,
            _ => 0,
        };
    }
    FlowRecord {
        key,
        start_ns: 1_000_000_000,
        end_ns: 2_000_000_000,
        packets: 10,
        bytes: 1000,
        outer_bytes: 0,
        tcp_flags: 0x12,
        end_reason: EndReason::IdleTimeout,
    }
}

/// Every shape: plain, VXLAN, Geneve, GRE, NVGRE and IP in IP, each
/// tunnel with all four pairs of outer and inner IP versions.
fn records() -> Vec<FlowRecord> {
    let mut records = vec![record(false, None), record(true, None)];
    let tunnels = [
        (ENCAP_VXLAN, 1, TUNNEL_FLAG_KEY | TUNNEL_FLAG_ETHERNET),
        (ENCAP_GENEVE, 5001, TUNNEL_FLAG_KEY | TUNNEL_FLAG_ETHERNET),
        (ENCAP_GRE, 0x1234_5678, TUNNEL_FLAG_KEY),
        (ENCAP_GRE, 0x00ab_cdef << 8 | 1, TUNNEL_FLAG_KEY | TUNNEL_FLAG_ETHERNET),
        (ENCAP_IPIP, 0, 0),
    ];
    for (encap, id, flags) in tunnels {
        for (outer_v6, inner_v6) in [(false, false), (false, true), (true, false), (true, true)] {
            // The VXLAN VNIs 1 to 4, as before other tunnels.
            let id = if encap == ENCAP_VXLAN { u32::from(outer_v6) * 2 + u32::from(inner_v6) + 1 } else { id };
            records.push(record(inner_v6, Some(Around { outer_v6, encap, id, flags })));
        }
    }
    records
}

/// Options values tshark must show.
fn options() -> OptionValues {
    options_sampled(1)
}

/// The same, counting 1 in `sampling` packets.
fn options_sampled(sampling: u32) -> OptionValues {
    OptionValues {
        not_sent: Losses {
            flows: 3,
            packets: 333,
            octets: 44_444,
            first_ms: 1_767_225_601_000,
            last_ms: 1_767_225_602_000,
        },
        ignored: Losses {
            flows: 0,
            packets: 55,
            octets: 6_666,
            first_ms: 1_767_225_603_000,
            last_ms: 1_767_225_604_000,
        },
        interfaces: vec![(2, "eth0".into()), (7, "flannel.1".into())],
        sampling,
    }
}

const CLOCK: WallClock = WallClock::with_offset_ns(1_767_225_600_000_000_000);

/// Wraps each message in a UDP datagram to `port`, writes a pcap, and returns
/// tshark's verbose decoding of it as cflow.
fn tshark(messages: &[Vec<u8>], port: u16) -> String {
    // One directory a call: tests decoding to one port run at once.
    static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("vxflow-tshark-{}-{port}-{call}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pcap = dir.join("export.pcap");
    let mut w = pcap_file::pcap::PcapWriter::new(std::fs::File::create(&pcap).unwrap()).unwrap();
    for m in messages {
        let mut frame = Vec::new();
        etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4(Ipv4Addr::LOCALHOST.octets(), Ipv4Addr::LOCALHOST.octets(), 64)
            .udp(50000, port)
            .write(&mut frame, m)
            .unwrap();
        let len = u32::try_from(frame.len()).unwrap();
        w.write_packet(&pcap_file::pcap::PcapPacket::new(std::time::Duration::ZERO, len, &frame)).unwrap();
    }
    drop(w);
    let decode_as = format!("udp.port=={port},cflow");
    let out = Command::new("tshark")
        .args(["-r", pcap.to_str().unwrap(), "-V", "-d", &decode_as])
        .output()
        .expect("tshark (Debian package tshark, installed by scripts/setup.sh)");
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    for bad in ["Malformed", "Expert Info (Error", "Expert Info (Warning"] {
        assert!(!text.contains(bad), "tshark reports {bad}:\n{text}");
    }
    text
}

/// What tshark must show of the shapes, in either protocol: the tunnel ids
/// (VNI, GRE key, NVGRE's whole key), the outer protocols that tell GRE
/// (47) and IP in IP (4, 41) from the UDP tunnels, the Geneve port.
const VISIBLE: [&str; 16] = [
    "Upstream tunnel identifier (e.g. GTP TEID, VXLAN VNI) or 0 if unknown: 5001",
    "Upstream tunnel identifier (e.g. GTP TEID, VXLAN VNI) or 0 if unknown: 305419896",
    "Upstream tunnel identifier (e.g. GTP TEID, VXLAN VNI) or 0 if unknown: 2882400001",
    "Untunneled IP protocol byte: 17",
    "Untunneled IP protocol byte: 47",
    "Untunneled IP protocol byte: 4",
    "Untunneled IP protocol byte: 41",
    "Untunneled IPv4 destination port: 6081",
    "Upstream tunnel identifier (e.g. GTP TEID, VXLAN VNI) or 0 if unknown: 1",
    "Upstream tunnel identifier (e.g. GTP TEID, VXLAN VNI) or 0 if unknown: 4",
    "Untunneled IPv4 source address: 192.168.56.11",
    "Untunneled IPv4 destination address: 192.168.56.12",
    "Untunneled IPv6 source address: fd00:56::11",
    "Untunneled IPv4 destination port: 8472",
    "SrcAddr: 10.244.0.2",
    "SrcAddr: fd00:244::2",
];

/// Open vSwitch's tunnelType (VMware 6876.891), which tshark shows raw:
/// Geneve 0x07, GRE (and NVGRE) 0x02.
const GENEVE_TYPE: &str = "Enterprise Private entry: (VMware Inc.) Type 891: Value (hex bytes): 07";
const GRE_TYPE: &str = "Enterprise Private entry: (VMware Inc.) Type 891: Value (hex bytes): 02";

/// layer2SegmentId of VXLAN VNI 1: type 0x01 in the top byte.
const LAYER2_VXLAN_1: &str = "Layer2 Segment Id: 72057594037927937";
/// Of NVGRE VSID 0xabcdef: type 0x02 in the top byte.
const LAYER2_NVGRE: &str = "Layer2 Segment Id: 144115188087115247";

#[test]
fn tshark_decodes_ipfix_of_every_shape_with_vni_and_outer_addresses() {
    let mut enc = IpfixEncoder::new(77, 1400).unwrap();
    let messages: Vec<Vec<u8>> =
        enc.encode(&records(), &CLOCK, 1_767_225_700, true, Some(&options())).into_iter().map(|m| m.bytes).collect();
    let text = tshark(&messages, 4739);
    for id in 256..=277 {
        assert!(text.contains(&format!("Template Id: {id}")), "template {id} not decoded");
    }
    let options = [
        "Selector Algorithm: Systematic count-based Sampling (1)",
        "Sampling Packet Interval: 1",
        "Sampling Packet Space: 0",
        "Not Sent Flows: 3",
        "Not Sent Packets: 333",
        "Not Sent Octets: 44444",
        "Observation Time Milliseconds: Jan  1, 2026 00:00:02.000000000 UTC",
        "Ignored Packets: 55",
        "Ignored Octets: 6666",
        "IfName: flannel.1",
    ];
    for want in VISIBLE
        .iter()
        .chain(&[LAYER2_VXLAN_1, LAYER2_NVGRE, "Observation Domain Id: 77", GENEVE_TYPE, GRE_TYPE])
        .chain(&options)
    {
        assert!(text.contains(want), "tshark does not show {want:?}");
    }
}

#[test]
fn tshark_decodes_netflow9_of_every_shape_with_vni_and_outer_addresses() {
    let mut enc = Netflow9Encoder::new(78, 1400).unwrap();
    let messages: Vec<Vec<u8>> = enc
        .encode(&records(), &CLOCK, 1_767_225_700_000, true, Some(&options()))
        .into_iter()
        .map(|m| m.bytes)
        .collect();
    let text = tshark(&messages, 2055);
    assert!(text.contains("Version: 9"), "not decoded as NetFlow v9");
    let options = ["Sampling interval: 1", "ScopeInterface: 7", "IfName: flannel.1"];
    for want in VISIBLE.iter().chain(&["SourceId: 78"]).chain(&options) {
        assert!(text.contains(want), "tshark does not show {want:?}");
    }
}

/// 1 in 100: IPFIX says interval 100, and random n-out-of-N, one packet per
/// 99 skipped; v9 says interval 100.
#[test]
fn tshark_decodes_the_sampling_rate() {
    let mut enc = IpfixEncoder::new(77, 1400).unwrap();
    let messages: Vec<Vec<u8>> = enc
        .encode(&records(), &CLOCK, 1_767_225_700, true, Some(&options_sampled(100)))
        .into_iter()
        .map(|m| m.bytes)
        .collect();
    let text = tshark(&messages, 4739);
    for want in [
        "Selector Algorithm: Random n-out-of-N Sampling (3)",
        "Sampling Packet Interval: 1",
        "Sampling Packet Space: 99",
    ] {
        assert!(text.contains(want), "tshark does not show {want:?}");
    }
    let mut enc = Netflow9Encoder::new(78, 1400).unwrap();
    let messages: Vec<Vec<u8>> = enc
        .encode(&records(), &CLOCK, 1_767_225_700_000, true, Some(&options_sampled(100)))
        .into_iter()
        .map(|m| m.bytes)
        .collect();
    let text = tshark(&messages, 2055);
    assert!(text.contains("Sampling interval: 100"), "tshark does not show the v9 sampling interval");
}

/// Named records (Antrea's string elements, in template 1026 for VXLAN
/// over IPv4) decode with nothing malformed; tshark 4.0 knows no Antrea
/// elements and shows their bytes, which spell the names.
#[test]
fn tshark_decodes_named_ipfix_records() {
    use vxflow::metadata::{IpMap, Owner, OwnerKind};
    let mut map = IpMap::new(std::time::Duration::from_mins(2));
    let pod = |name: &str| Owner {
        kind: OwnerKind::Pod,
        name: name.into(),
        namespace: Some("shop".into()),
        node: Some("node-1".into()),
        workload: None,
        labels: vxflow::metadata::ipmap::Labels::default(),
    };
    map.set(&"pod/a".into(), pod("web-1"), &["10.244.0.2".parse().unwrap()], 0);
    map.set(&"pod/b".into(), pod(&"d".repeat(260)), &["10.244.1.3".parse().unwrap()], 0);
    let records = [record(
        false,
        Some(Around { outer_v6: false, encap: ENCAP_VXLAN, id: 1, flags: TUNNEL_FLAG_KEY | TUNNEL_FLAG_ETHERNET }),
    )];
    let mut enc = IpfixEncoder::new(77, 1400).unwrap();
    let messages: Vec<Vec<u8>> =
        enc.encode_named(&records, &CLOCK, 1_767_225_700, true, None, &map).into_iter().map(|m| m.bytes).collect();
    let text = tshark(&messages, 4739);
    assert!(text.contains("Template Id: 1026"), "the named VXLAN template");
    // "web-1" and "shop", as the hex bytes tshark shows of an unknown element.
    for want in ["77:65:62:2d:31", "73:68:6f:70"] {
        assert!(text.replace(' ', ":").contains(want), "tshark does not show {want}:\n{text}");
    }
}
