//! Crafted packets for the classifier tests and the benchmark, each with what
//! the classifier must make of it. The frames are also kept as pcap files in
//! `fixtures/classifier/`, so tools (tshark, tcpdump) and later tests can
//! reuse them; `classifier.rs` checks the files match what is built here.
//!
//! Expected byte counts are written out from header sizes, not computed by
//! the code under test.

use etherparse::{
    IpFragOffset, IpHeaders, IpNumber, Ipv4Header, Ipv4Options, Ipv6Extensions, Ipv6FragmentHeader, Ipv6Header,
    Ipv6RawExtHeader, Ipv6RoutingExtensions, PacketBuilder,
};
use vxflow_common::{
    Counter, FlowKey,
    flow::{ENCAP_VXLAN, KEY_FLAG_FRAGMENT, KEY_FLAG_L4_TRUNCATED, TUNNEL_FLAG_ETHERNET, TUNNEL_FLAG_KEY},
};

pub const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
pub const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];
pub const POD_A: [u8; 4] = [10, 244, 0, 2];
pub const POD_B: [u8; 4] = [10, 244, 1, 3];
pub const NODE_A: [u8; 4] = [192, 168, 56, 11];
pub const NODE_B: [u8; 4] = [192, 168, 56, 12];
pub const POD6_A: [u8; 16] = [0xfd, 0, 2, 0x44, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
pub const POD6_B: [u8; 16] = [0xfd, 0, 2, 0x44, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3];
pub const NODE6_A: [u8; 16] = [0xfd, 0, 0, 0x56, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x11];
pub const NODE6_B: [u8; 16] = [0xfd, 0, 0, 0x56, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x12];

const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMP: u8 = 1;
const ICMPV6: u8 = 58;

/// What the classifier must do with a frame.
#[derive(Clone, Debug)]
pub enum Expect {
    /// Exactly one flow delta with this key (ifindex and direction are the
    /// test's) and these counts; `notes` are the annotation counters that must
    /// rise (by the packet count) and no others.
    Flow { key: FlowKey, packets: u64, bytes: u64, outer_bytes: u64, tcp_flags: u64, notes: Vec<Counter> },
    /// No flow; `bucket` rises by one, and so do `notes`.
    NoFlow { bucket: Counter, notes: Vec<Counter> },
}

impl Expect {
    /// The datapath counters one frame must raise, and by how much (the
    /// slow parse aside).
    #[must_use]
    pub fn counters(&self) -> std::collections::BTreeMap<&'static str, u64> {
        let mut want = std::collections::BTreeMap::new();
        match self {
            Expect::Flow { packets, notes, .. } => {
                want.insert(Counter::Seen.name(), *packets);
                want.insert(Counter::Accounted.name(), *packets);
                if *packets > 1 {
                    want.insert(Counter::GsoSkbs.name(), 1);
                }
                for n in notes {
                    want.insert(n.name(), *packets);
                }
            }
            Expect::NoFlow { bucket, notes } => {
                want.insert(Counter::Seen.name(), 1);
                want.insert(bucket.name(), 1);
                for n in notes {
                    want.insert(n.name(), 1);
                }
            }
        }
        want
    }
}

/// How a case reaches the classifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runner {
    /// `BPF_PROG_TEST_RUN` with the frame as data.
    TestRun,
    /// Sent with `AF_PACKET` out of a veth whose peer has the programs on
    /// ingress. For frames whose fixed IP header is cut short: the kernel's
    /// test run (6.18) refuses those, while a NIC can still deliver them.
    Inject,
}

/// One crafted frame.
#[derive(Clone, Debug)]
pub struct Case {
    /// File stem under `fixtures/classifier/`.
    pub name: String,
    pub frame: Vec<u8>,
    /// `(gso_segs, gso_size)` to set in the test run's `__sk_buff`.
    pub gso: Option<(u32, u32)>,
    pub expect: Expect,
    pub runner: Runner,
}

/// A plain key; addresses of 4 bytes are IPv4, of 16 IPv6.
#[must_use]
pub fn key(src: &[u8], dst: &[u8], sport: u16, dport: u16, protocol: u8) -> FlowKey {
    let to16 = |a: &[u8]| {
        let ip: std::net::IpAddr = match a.len() {
            4 => <[u8; 4]>::try_from(a).unwrap().into(),
            _ => <[u8; 16]>::try_from(a).unwrap().into(),
        };
        vxflow_common::user::addr16(ip)
    };
    FlowKey {
        src_addr: to16(src),
        dst_addr: to16(dst),
        src_port: sport,
        dst_port: dport,
        protocol,
        ip_version: if src.len() == 4 { 4 } else { 6 },
        ..FlowKey::default()
    }
}

/// `inner` as carried in VXLAN between two VTEPs.
#[must_use]
pub fn vxlan_key(inner: FlowKey, vni: u32, outer_src: &[u8], outer_dst: &[u8], sport: u16, dport: u16) -> FlowKey {
    let outer = key(outer_src, outer_dst, sport, dport, UDP);
    FlowKey {
        encap: ENCAP_VXLAN,
        tunnel_id: vni,
        tunnel_flags: TUNNEL_FLAG_KEY | TUNNEL_FLAG_ETHERNET,
        outer_src_addr: outer.src_addr,
        outer_dst_addr: outer.dst_addr,
        outer_src_port: sport,
        outer_dst_port: dport,
        outer_ip_version: outer.ip_version,
        ..inner
    }
}

pub(crate) fn flow(key: FlowKey, bytes: u64, tcp_flags: u64, notes: Vec<Counter>) -> Expect {
    Expect::Flow { key, packets: 1, bytes, outer_bytes: 0, tcp_flags, notes }
}

fn vxlan_flow(key: FlowKey, bytes: u64, outer_bytes: u64, tcp_flags: u64) -> Expect {
    Expect::Flow { key, packets: 1, bytes, outer_bytes, tcp_flags, notes: vec![Counter::Vxlan] }
}

pub(crate) fn eth() -> etherparse::PacketBuilderStep<etherparse::Ethernet2Header> {
    PacketBuilder::ethernet2(MAC_A, MAC_B)
}

/// IPv4 TCP SYN, no payload: 20 + 20 = 40 IP bytes.
#[must_use]
pub fn ipv4_tcp_syn() -> Vec<u8> {
    let mut f = Vec::new();
    eth().ipv4(POD_A, POD_B, 64).tcp(40000, 80, 1, 64240).syn().write(&mut f, &[]).unwrap();
    f
}

/// IPv4 UDP with 32 bytes of payload: 20 + 8 + 32 = 60.
#[must_use]
pub fn ipv4_udp() -> Vec<u8> {
    let mut f = Vec::new();
    eth().ipv4(POD_A, POD_B, 64).udp(5353, 53).write(&mut f, &[0x55; 32]).unwrap();
    f
}

/// An inner frame for VXLAN, built like a plain one.
fn inner_ipv4_udp() -> Vec<u8> {
    ipv4_udp()
}

/// IPv4 TCP whose header has 12 bytes of options (IHL 8): 32 + 20 + 10 = 62.
/// Read at a fixed offset of 20, the options would pass for ports.
#[must_use]
pub fn ipv4_options_tcp() -> Vec<u8> {
    let mut ip = Ipv4Header::new(0, 64, IpNumber::TCP, POD_A, POD_B).unwrap();
    // Router Alert (RFC 2113) then eight NOPs: 12 bytes.
    ip.options = Ipv4Options::try_from(&[0x94, 0x04, 0x00, 0x00, 1, 1, 1, 1, 1, 1, 1, 1][..]).unwrap();
    let mut f = Vec::new();
    eth()
        .ip(IpHeaders::Ipv4(ip, etherparse::Ipv4Extensions::default()))
        .tcp(40001, 443, 7, 502)
        .psh()
        .ack(9)
        .write(&mut f, &[0xaa; 10])
        .unwrap();
    f
}

/// IPv6 with hop-by-hop, destination-options and routing headers (8 bytes
/// each), then UDP with 16 bytes: 40 + 24 + 8 + 16 = 88.
#[must_use]
pub fn ipv6_ext_udp() -> Vec<u8> {
    let ip = Ipv6Header { source: POD6_A, destination: POD6_B, hop_limit: 64, ..Default::default() };
    let exts = Ipv6Extensions {
        hop_by_hop_options: Some(Ipv6RawExtHeader::new_raw(IpNumber::UDP, &[1, 4, 0, 0, 0, 0]).unwrap()),
        destination_options: Some(Ipv6RawExtHeader::new_raw(IpNumber::UDP, &[1, 4, 0, 0, 0, 0]).unwrap()),
        routing: Some(Ipv6RoutingExtensions {
            routing: Ipv6RawExtHeader::new_raw(IpNumber::UDP, &[0, 0, 0, 0, 0, 0]).unwrap(),
            final_destination_options: None,
        }),
        fragment: None,
        auth: None,
    };
    let mut f = Vec::new();
    eth().ip(IpHeaders::Ipv6(ip, exts)).udp(33000, 4000).write(&mut f, &[0x66; 16]).unwrap();
    f
}

/// IPv6 TCP SYN: 40 + 20 = 60.
#[must_use]
pub fn ipv6_tcp_syn() -> Vec<u8> {
    let mut f = Vec::new();
    eth().ipv6(POD6_A, POD6_B, 64).tcp(40000, 80, 1, 64800).syn().write(&mut f, &[]).unwrap();
    f
}

fn ipv6_icmp_echo(src: [u8; 16], dst: [u8; 16]) -> Vec<u8> {
    let mut f = Vec::new();
    eth().ipv6(src, dst, 64).icmpv6_echo_request(1, 1).write(&mut f, &[0x77; 8]).unwrap();
    f
}

/// IPv4 fragment: `offset` in 8-byte units; the payload starts with bytes that
/// would read as ports 1111 -> 2222 if misparsed.
fn ipv4_fragment(offset: u16, more: bool, udp: bool) -> Vec<u8> {
    let mut ip = Ipv4Header::new(0, 64, IpNumber::UDP, POD_A, POD_B).unwrap();
    ip.fragment_offset = IpFragOffset::try_new(offset).unwrap();
    ip.more_fragments = more;
    ip.identification = 0x1234;
    let mut f = Vec::new();
    let b = eth().ip(IpHeaders::Ipv4(ip, etherparse::Ipv4Extensions::default()));
    if udp {
        b.udp(5000, 6000).write(&mut f, &[0x11; 24]).unwrap();
    } else {
        let mut payload = vec![0x04, 0x57, 0x08, 0xae, 0, 32, 0, 0];
        payload.extend_from_slice(&[0x22; 24]);
        b.write(&mut f, IpNumber::UDP, &payload).unwrap();
    }
    f
}

fn ipv6_fragment(offset: u16, more: bool, udp: bool) -> Vec<u8> {
    let ip = Ipv6Header { source: POD6_A, destination: POD6_B, hop_limit: 64, ..Default::default() };
    let exts = Ipv6Extensions {
        fragment: Some(Ipv6FragmentHeader::new(IpNumber::UDP, IpFragOffset::try_new(offset).unwrap(), more, 0xbeef)),
        ..Default::default()
    };
    let mut f = Vec::new();
    let b = eth().ip(IpHeaders::Ipv6(ip, exts));
    if udp {
        b.udp(5000, 6000).write(&mut f, &[0x11; 24]).unwrap();
    } else {
        let mut payload = vec![0x04, 0x57, 0x08, 0xae, 0, 32, 0, 0];
        payload.extend_from_slice(&[0x22; 16]);
        b.write(&mut f, IpNumber::UDP, &payload).unwrap();
    }
    // etherparse 0.18.2 (Ipv6FragmentHeader::to_bytes) swaps the M flag and
    // the offset's low bits; write the field as RFC 8200 4.5 lays it out:
    // 13 bits of offset, 2 reserved, M.
    let field = (offset << 3) | u16::from(more);
    f[14 + 40 + 2..14 + 40 + 4].copy_from_slice(&field.to_be_bytes());
    f
}

/// 802.1ad outer tag 200, 802.1Q inner tag 100, IPv4 TCP SYN (40 IP bytes).
#[must_use]
pub fn qinq_tcp() -> Vec<u8> {
    let mut f = Vec::new();
    eth()
        .double_vlan(etherparse::VlanId::try_new(200).unwrap(), etherparse::VlanId::try_new(100).unwrap())
        .ipv4(POD_A, POD_B, 64)
        .tcp(40000, 80, 1, 64240)
        .syn()
        .write(&mut f, &[])
        .unwrap();
    f
}

/// Inserts VLAN tags (TPID, id) after the MAC addresses of `frame`.
fn with_tags(frame: &[u8], tags: &[(u16, u16)]) -> Vec<u8> {
    let mut f = frame[..12].to_vec();
    for &(tpid, id) in tags {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&id.to_be_bytes());
    }
    f.extend_from_slice(&frame[12..]);
    f
}

pub(crate) fn arp_request() -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&MAC_A);
    f.extend_from_slice(&0x0806u16.to_be_bytes());
    // htype 1, ptype IPv4, hlen 6, plen 4, op request.
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&MAC_A);
    f.extend_from_slice(&NODE_A);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&NODE_B);
    f
}

/// A VXLAN header (RFC 7348): flags, 3 reserved, VNI, 1 reserved.
#[must_use]
pub fn vxlan_header(flags: u8, vni: u32) -> [u8; 8] {
    let v = vni.to_be_bytes();
    [flags, 0, 0, 0, v[1], v[2], v[3], 0]
}

/// `inner` in VXLAN over IPv4 (or IPv6 if the addresses are 16 bytes) UDP.
#[must_use]
pub fn vxlan(outer_src: &[u8], outer_dst: &[u8], sport: u16, dport: u16, flags: u8, vni: u32, inner: &[u8]) -> Vec<u8> {
    let mut payload = vxlan_header(flags, vni).to_vec();
    payload.extend_from_slice(inner);
    over_udp(outer_src, outer_dst, sport, dport, &payload)
}

/// `payload` in UDP between two nodes, over IPv4 (or IPv6 if the addresses
/// are 16 bytes).
#[must_use]
pub fn over_udp(outer_src: &[u8], outer_dst: &[u8], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    if outer_src.len() == 4 {
        eth()
            .ipv4(outer_src.try_into().unwrap(), outer_dst.try_into().unwrap(), 64)
            .udp(sport, dport)
            .write(&mut f, payload)
            .unwrap();
    } else {
        eth()
            .ipv6(outer_src.try_into().unwrap(), outer_dst.try_into().unwrap(), 64)
            .udp(sport, dport)
            .write(&mut f, payload)
            .unwrap();
    }
    f
}

/// IPv4 TCP ACK with `payload` bytes, for GSO super-packets.
fn ipv4_tcp_payload(payload: usize) -> Vec<u8> {
    let mut f = Vec::new();
    eth().ipv4(POD_A, POD_B, 64).tcp(40000, 5201, 1000, 502).ack(1).write(&mut f, &vec![0x33; payload]).unwrap();
    f
}

pub(crate) fn case(name: &str, frame: Vec<u8>, expect: Expect) -> Case {
    Case { name: name.to_owned(), frame, gso: None, expect, runner: Runner::TestRun }
}

/// The case named `name` (its fixture's file stem).
#[must_use]
pub fn named(name: &str) -> Case {
    cases().into_iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no classifier case named {name}"))
}

/// Every single-frame case.
#[must_use]
#[expect(clippy::too_many_lines, reason = "a table of cases reads best as one list")]
pub fn cases() -> Vec<Case> {
    let v4_tcp = key(&POD_A, &POD_B, 40000, 80, TCP);
    let v4_udp = key(&POD_A, &POD_B, 5353, 53, UDP);
    let v6_tcp = key(&POD6_A, &POD6_B, 40000, 80, TCP);
    let vx_inner_v4_udp = vxlan(&NODE_A, &NODE_B, 50000, 8472, 0x08, 1, &inner_ipv4_udp());
    let mut frag4 = key(&POD_A, &POD_B, 0, 0, UDP);
    frag4.flags = KEY_FLAG_FRAGMENT;
    let mut frag6 = key(&POD6_A, &POD6_B, 0, 0, UDP);
    frag6.flags = KEY_FLAG_FRAGMENT;
    let mut vlan_udp = v4_udp;
    vlan_udp.vlan_id = 100;
    let mut qinq = v4_tcp;
    qinq.vlan_id = 200;

    let mut cases = vec![
        case("ipv4-tcp-syn", ipv4_tcp_syn(), flow(v4_tcp, 40, 0x02, vec![])),
        case("ipv4-udp", ipv4_udp(), flow(v4_udp, 60, 0, vec![])),
        case(
            "ipv4-icmp-echo",
            {
                let mut f = Vec::new();
                eth().ipv4(POD_A, POD_B, 64).icmpv4_echo_request(1, 1).write(&mut f, &[0x77; 56]).unwrap();
                f
            },
            // 20 + 8 + 56; echo request is type 8 code 0.
            flow(key(&POD_A, &POD_B, 0, 0x0800, ICMP), 84, 0, vec![]),
        ),
        case("ipv4-options-tcp", ipv4_options_tcp(), flow(key(&POD_A, &POD_B, 40001, 443, TCP), 62, 0x18, vec![])),
        case(
            "ipv4-gre",
            {
                let mut f = Vec::new();
                eth().ipv4(POD_A, POD_B, 64).write(&mut f, IpNumber::GRE, &[0, 0, 0x65, 0x58]).unwrap();
                f
            },
            // A GRE header for Ethernet with no frame after it: the GRE
            // flow itself, 20 + 4 bytes, its payload noted as not decoded.
            flow(key(&POD_A, &POD_B, 0, 0, 47), 24, 0, vec![Counter::TunnelInnerNotIp]),
        ),
        case("ipv6-tcp-syn", ipv6_tcp_syn(), flow(v6_tcp, 60, 0x02, vec![])),
        case("ipv6-ext-udp", ipv6_ext_udp(), flow(key(&POD6_A, &POD6_B, 33000, 4000, UDP), 88, 0, vec![])),
        case(
            "ipv6-icmpv6-echo",
            ipv6_icmp_echo(POD6_A, POD6_B),
            // 40 + 8 + 8; echo request is type 128.
            flow(key(&POD6_A, &POD6_B, 0, 0x8000, ICMPV6), 56, 0, vec![]),
        ),
        case(
            "ipv4-fragment-first",
            ipv4_fragment(0, true, true),
            flow(key(&POD_A, &POD_B, 5000, 6000, UDP), 52, 0, vec![]),
        ),
        case(
            "ipv4-fragment-later",
            ipv4_fragment(185, false, false),
            // 20 + 32 bytes of payload; no ports.
            flow(frag4, 52, 0, vec![Counter::Fragment]),
        ),
        case(
            "ipv6-fragment-first",
            ipv6_fragment(0, true, true),
            flow(key(&POD6_A, &POD6_B, 5000, 6000, UDP), 80, 0, vec![]),
        ),
        case(
            "ipv6-fragment-later",
            ipv6_fragment(8, false, false),
            // 40 + 8 + 24.
            flow(frag6, 72, 0, vec![Counter::Fragment]),
        ),
        case("vlan-udp", with_tags(&ipv4_udp(), &[(0x8100, 100)]), flow(vlan_udp, 60, 0, vec![])),
        case("qinq-tcp", qinq_tcp(), flow(qinq, 40, 0x02, vec![])),
        case(
            "vlan-three-tags",
            with_tags(&ipv4_udp(), &[(0x88a8, 300), (0x8100, 200), (0x8100, 100)]),
            Expect::NoFlow { bucket: Counter::Malformed, notes: vec![Counter::VlanTooDeep] },
        ),
        case("arp", arp_request(), Expect::NoFlow { bucket: Counter::NonIp, notes: vec![] }),
        case(
            "vxlan-4789-ipv4-tcp",
            vxlan(&NODE_A, &NODE_B, 50000, 4789, 0x08, 42, &ipv4_tcp_syn()),
            // Inner 40; outer 20 + 8 + 8 + 14 + 40 = 90.
            vxlan_flow(vxlan_key(v4_tcp, 42, &NODE_A, &NODE_B, 50000, 4789), 40, 90, 0x02),
        ),
        case(
            "vxlan-8472-ipv4-udp",
            vx_inner_v4_udp.clone(),
            // Inner 60; outer 20 + 8 + 8 + 14 + 60 = 110.
            vxlan_flow(vxlan_key(v4_udp, 1, &NODE_A, &NODE_B, 50000, 8472), 60, 110, 0),
        ),
        case(
            "vxlan-8472-ipv6-tcp",
            vxlan(&NODE_A, &NODE_B, 50001, 8472, 0x08, 1, &ipv6_tcp_syn()),
            // Inner 60; outer 20 + 8 + 8 + 14 + 60 = 110.
            vxlan_flow(vxlan_key(v6_tcp, 1, &NODE_A, &NODE_B, 50001, 8472), 60, 110, 0x02),
        ),
        case(
            "vxlan-4789-ipv6-outer-icmpv6",
            vxlan(&NODE6_A, &NODE6_B, 50002, 4789, 0x08, 7, &ipv6_icmp_echo(POD6_A, POD6_B)),
            // Inner 56; outer 40 + 8 + 8 + 14 + 56 = 126.
            vxlan_flow(
                vxlan_key(key(&POD6_A, &POD6_B, 0, 0x8000, ICMPV6), 7, &NODE6_A, &NODE6_B, 50002, 4789),
                56,
                126,
                0,
            ),
        ),
        case(
            "vxlan-unconfigured-port",
            vxlan(&NODE_A, &NODE_B, 50000, 4790, 0x08, 1, &inner_ipv4_udp()),
            // Plain UDP between the nodes: 20 + 8 + 8 + 14 + 60 = 110.
            flow(key(&NODE_A, &NODE_B, 50000, 4790, UDP), 110, 0, vec![]),
        ),
        case(
            "vxlan-i-flag-clear",
            vxlan(&NODE_A, &NODE_B, 50000, 4789, 0x00, 1, &inner_ipv4_udp()),
            flow(key(&NODE_A, &NODE_B, 50000, 4789, UDP), 110, 0, vec![Counter::TunnelInvalid]),
        ),
        case(
            "vxlan-inner-arp",
            vxlan(&NODE_A, &NODE_B, 50000, 8472, 0x08, 1, &arp_request()),
            // 20 + 8 + 8 + 42.
            flow(key(&NODE_A, &NODE_B, 50000, 8472, UDP), 78, 0, vec![Counter::TunnelInnerNotIp]),
        ),
    ];

    // TOS / traffic class: DSCP EF (46 << 2 = 0xb8) is part of the key; for
    // VXLAN the inner packet's, not the outer's.
    let mut ef = Ipv4Header::new(0, 64, IpNumber::UDP, POD_A, POD_B).unwrap();
    ef.dscp = etherparse::IpDscp::try_new(46).unwrap();
    let ipv4_ef = {
        let mut f = Vec::new();
        eth()
            .ip(IpHeaders::Ipv4(ef, etherparse::Ipv4Extensions::default()))
            .udp(5353, 53)
            .write(&mut f, &[0x55; 32])
            .unwrap();
        f
    };
    let mut v4_ef = v4_udp;
    v4_ef.tos = 0xb8;
    cases.push(case("ipv4-dscp-ef-udp", ipv4_ef.clone(), flow(v4_ef, 60, 0, vec![])));
    let ipv6_tclass = {
        let ip = Ipv6Header {
            source: POD6_A,
            destination: POD6_B,
            hop_limit: 64,
            traffic_class: 0xb8,
            ..Default::default()
        };
        let mut f = Vec::new();
        eth()
            .ip(IpHeaders::Ipv6(ip, Ipv6Extensions::default()))
            .tcp(40000, 80, 1, 64800)
            .syn()
            .write(&mut f, &[])
            .unwrap();
        f
    };
    let mut v6_ef = v6_tcp;
    v6_ef.tos = 0xb8;
    cases.push(case("ipv6-traffic-class-tcp", ipv6_tclass, flow(v6_ef, 60, 0x02, vec![])));
    cases.push(case(
        "vxlan-inner-dscp-ef",
        vxlan(&NODE_A, &NODE_B, 50000, 8472, 0x08, 1, &ipv4_ef),
        vxlan_flow(vxlan_key(v4_ef, 1, &NODE_A, &NODE_B, 50000, 8472), 60, 110, 0),
    ));

    // GSO/GRO super-packets: counts are those of the segments on the wire.
    // BPF_PROG_TEST_RUN takes at most about a page of data, so 4 x 800.
    let mut gso = case(
        "ipv4-tcp-gso-4x800",
        ipv4_tcp_payload(3200),
        Expect::Flow {
            key: key(&POD_A, &POD_B, 40000, 5201, TCP),
            packets: 4,
            bytes: 4 * (20 + 20 + 800),
            outer_bytes: 0,
            tcp_flags: 0x10,
            notes: vec![],
        },
    );
    gso.gso = Some((4, 800));
    cases.push(gso);
    let mut gso_size_only = case(
        "ipv4-tcp-gso-size-only",
        ipv4_tcp_payload(2500),
        Expect::Flow {
            key: key(&POD_A, &POD_B, 40000, 5201, TCP),
            // gso_segs left 0 by the driver: ceil(2500 / 1000) segments.
            packets: 3,
            bytes: 2500 + 3 * 40,
            outer_bytes: 0,
            tcp_flags: 0x10,
            notes: vec![],
        },
    );
    gso_size_only.gso = Some((0, 1000));
    cases.push(gso_size_only);
    let mut vx_gso = case(
        "vxlan-tcp-gso-3x500",
        vxlan(&NODE_A, &NODE_B, 50000, 8472, 0x08, 1, &ipv4_tcp_payload(1500)),
        Expect::Flow {
            key: vxlan_key(key(&POD_A, &POD_B, 40000, 5201, TCP), 1, &NODE_A, &NODE_B, 50000, 8472),
            packets: 3,
            // Each segment: inner 20 + 20 + 500; outer adds 20 + 8 + 8 + 14.
            bytes: 3 * 540,
            outer_bytes: 3 * (540 + 50),
            tcp_flags: 0x10,
            notes: vec![Counter::Vxlan],
        },
    );
    vx_gso.gso = Some((3, 500));
    cases.push(vx_gso);

    cases.extend(truncations("ipv4-options-tcp", &ipv4_options_tcp()));
    cases.extend(truncations("ipv6-ext-udp", &ipv6_ext_udp()));
    cases.extend(truncations("qinq-tcp", &qinq_tcp()));
    cases.extend(truncations("vxlan-8472-ipv4-udp", &vx_inner_v4_udp));
    cases.extend(crate::tunnel_frames::cases());
    cases
}

/// The frame cut at each header boundary (and one byte into the transport
/// header), with what each cut must give. The shortest cut is 15 bytes, one
/// into the header after Ethernet (an `AF_PACKET` socket will not send less).
fn truncations(base: &str, frame: &[u8]) -> Vec<Case> {
    let cut = |len: usize, expect: Expect| case(&format!("truncated-{base}-{len}"), frame[..len].to_vec(), expect);
    let malformed = || Expect::NoFlow { bucket: Counter::Malformed, notes: vec![] };
    // Cut inside the fixed IPv4/IPv6 header: injected on a veth instead.
    let inject = |mut c: Case| {
        c.runner = Runner::Inject;
        c
    };
    let l4_cut = |mut k: FlowKey, bytes| {
        k.src_port = 0;
        k.dst_port = 0;
        k.flags = KEY_FLAG_L4_TRUNCATED;
        flow(k, bytes, 0, vec![Counter::L4Truncated])
    };
    match base {
        "ipv4-options-tcp" => {
            let k = key(&POD_A, &POD_B, 40001, 443, TCP);
            vec![
                inject(cut(15, malformed())),
                // The fixed header is there, its options are not.
                cut(14 + 20, malformed()),
                cut(14 + 32, l4_cut(k, 32)),
                cut(14 + 32 + 19, l4_cut(k, 51)),
                // Header complete, payload cut: a normal flow of what is there.
                cut(14 + 32 + 20, flow(k, 52, 0x18, vec![])),
            ]
        }
        "ipv6-ext-udp" => {
            let k = |proto| key(&POD6_A, &POD6_B, 0, 0, proto);
            vec![
                inject(cut(15, malformed())),
                inject(cut(14 + 39, malformed())),
                // The chain cut before each header: protocol is the next-header
                // that points at the missing one.
                cut(14 + 40, l4_cut(k(0), 40)),
                cut(14 + 48, l4_cut(k(60), 48)),
                cut(14 + 56, l4_cut(k(43), 56)),
                cut(14 + 64, l4_cut(k(UDP), 64)),
                cut(14 + 71, l4_cut(k(UDP), 71)),
                cut(14 + 72, flow(key(&POD6_A, &POD6_B, 33000, 4000, UDP), 72, 0, vec![])),
            ]
        }
        "qinq-tcp" => {
            let mut k = key(&POD_A, &POD_B, 40000, 80, TCP);
            k.vlan_id = 200;
            vec![
                cut(15, malformed()),
                cut(18, malformed()),
                cut(22, malformed()),
                cut(22 + 20, l4_cut(k, 20)),
                cut(22 + 39, l4_cut(k, 39)),
            ]
        }
        "vxlan-8472-ipv4-udp" => {
            let outer = key(&NODE_A, &NODE_B, 50000, 8472, UDP);
            let inner = vxlan_key(key(&POD_A, &POD_B, 0, 0, UDP), 1, &NODE_A, &NODE_B, 50000, 8472);
            let mut inner_cut = inner;
            inner_cut.flags = KEY_FLAG_L4_TRUNCATED;
            vec![
                inject(cut(15, malformed())),
                cut(14 + 20, l4_cut(outer, 20)),
                cut(14 + 27, l4_cut(outer, 27)),
                // No VXLAN header: plain UDP to 8472.
                cut(14 + 28, flow(outer, 28, 0, vec![Counter::TunnelInvalid])),
                // VXLAN header but no inner frame: the outer UDP flow.
                cut(14 + 36, flow(outer, 36, 0, vec![Counter::TunnelInnerNotIp])),
                cut(14 + 50, flow(outer, 50, 0, vec![Counter::TunnelInnerNotIp])),
                cut(14 + 69, flow(outer, 69, 0, vec![Counter::TunnelInnerNotIp])),
                // Inner IP complete, inner UDP missing.
                cut(
                    14 + 70,
                    Expect::Flow {
                        key: inner_cut,
                        packets: 1,
                        bytes: 20,
                        outer_bytes: 70,
                        tcp_flags: 0,
                        notes: vec![Counter::Vxlan, Counter::L4Truncated],
                    },
                ),
                cut(
                    14 + 78,
                    vxlan_flow(
                        vxlan_key(key(&POD_A, &POD_B, 5353, 53, UDP), 1, &NODE_A, &NODE_B, 50000, 8472),
                        28,
                        78,
                        0,
                    ),
                ),
            ]
        }
        _ => unreachable!("no truncation plan for {base}"),
    }
}

/// Whether the datapath leaves `frame` (as one linear skb) to its slow
/// parse, `bpf_skb_load_bytes`: when, after the Ethernet header and its VLAN
/// tags, a whole IPv6 header names an extension header next. The classifier
/// tests expect `slow_parse_skbs` to rise by one for exactly these.
#[must_use]
pub fn leaves_fast_parse(frame: &[u8]) -> bool {
    let mut off = 12;
    while frame.len() >= off + 2 && matches!(u16::from_be_bytes([frame[off], frame[off + 1]]), 0x8100 | 0x88a8) {
        off += 4;
    }
    let ipv6 = frame.len() >= off + 2 && u16::from_be_bytes([frame[off], frame[off + 1]]) == 0x86dd;
    let l3 = off + 2;
    ipv6 && frame.len() >= l3 + 40 && matches!(frame[l3 + 6], 0 | 43 | 44 | 51 | 60 | 135 | 139 | 140)
}
