//! Crafted Geneve, GRE (with and without a key, NVGRE) and IP-in-IP
//! frames, with what the classifier must make of each: the inner tuple,
//! the tunnel's type, id and outer tuple, and every way a header can be
//! invalid, lie about its length or be cut short. Part of
//! [`packets::cases`](crate::packets::cases), so they are fixtures and
//! classifier cases like the rest.
//!
//! Byte counts are written out from header sizes.

use etherparse::IpNumber;
use vxflow_common::{
    Counter, FlowKey,
    flow::{ENCAP_GENEVE, ENCAP_GRE, ENCAP_IPIP, KEY_FLAG_L4_TRUNCATED, TUNNEL_FLAG_ETHERNET, TUNNEL_FLAG_KEY},
};

use crate::packets::{
    Case, Expect, NODE_A, NODE_B, NODE6_A, NODE6_B, POD_A, POD_B, POD6_A, POD6_B, arp_request, case, eth, flow,
    ipv4_tcp_syn, ipv4_udp, ipv6_tcp_syn, key, over_udp,
};

const TCP: u8 = 6;
const UDP: u8 = 17;
const IPIP: u8 = 4;
const IPV6: u8 = 41;
const GRE: u8 = 47;
/// IANA's Geneve port, which the classifier tests configure.
pub const GENEVE_PORT: u16 = 6081;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_TEB: u16 = 0x6558;
const ETH_P_ERSPAN: u16 = 0x88be;

/// GRE flag bits (RFC 2784, RFC 2890).
pub const GRE_C: u16 = 0x8000;
pub const GRE_R: u16 = 0x4000;
pub const GRE_K: u16 = 0x2000;
pub const GRE_S: u16 = 0x1000;

/// The IP packet of an Ethernet frame built by `packets`.
fn ip(frame: &[u8]) -> Vec<u8> {
    frame[14..].to_vec()
}

/// A Geneve header (RFC 8926) with `options` (a multiple of 4 bytes, at
/// most 252), or with `opt_words` lying about them when given.
#[must_use]
pub fn geneve_header(
    version: u8,
    o_flag: bool,
    protocol: u16,
    vni: u32,
    options: &[u8],
    opt_words: Option<u8>,
) -> Vec<u8> {
    let words = opt_words.unwrap_or_else(|| u8::try_from(options.len() / 4).unwrap());
    let v = vni.to_be_bytes();
    let p = protocol.to_be_bytes();
    let mut h = vec![(version << 6) | (words & 0x3f), if o_flag { 0x80 } else { 0 }, p[0], p[1], v[1], v[2], v[3], 0];
    h.extend_from_slice(options);
    h
}

/// Geneve options: TLVs of class 0x0102, each 4 + 4 * `len` bytes, filling
/// `total` bytes (a multiple of 4).
#[must_use]
pub fn geneve_options(total: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while out.len() < total {
        let len = ((total - out.len() - 4) / 4).min(31);
        out.extend_from_slice(&[0x01, 0x02, 0x80, u8::try_from(len).unwrap()]);
        out.extend(std::iter::repeat_n(0x5a, len * 4));
    }
    out
}

/// A GRE header: the flags word (version in the low 3 bits), protocol
/// type, then checksum and reserved, key and sequence number as the flags
/// say.
#[must_use]
pub fn gre_header(flags: u16, protocol: u16, key: u32) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&flags.to_be_bytes());
    h.extend_from_slice(&protocol.to_be_bytes());
    if flags & GRE_C != 0 {
        h.extend_from_slice(&[0, 0, 0, 0]);
    }
    if flags & GRE_K != 0 {
        h.extend_from_slice(&key.to_be_bytes());
    }
    if flags & GRE_S != 0 {
        h.extend_from_slice(&7u32.to_be_bytes());
    }
    h
}

/// `payload` as IP protocol `protocol` between two nodes (IPv6 when the
/// addresses are 16 bytes).
#[must_use]
pub fn over_ip(outer_src: &[u8], outer_dst: &[u8], protocol: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    if outer_src.len() == 4 {
        eth()
            .ipv4(outer_src.try_into().unwrap(), outer_dst.try_into().unwrap(), 64)
            .write(&mut f, IpNumber(protocol), payload)
            .unwrap();
    } else {
        eth()
            .ipv6(outer_src.try_into().unwrap(), outer_dst.try_into().unwrap(), 64)
            .write(&mut f, IpNumber(protocol), payload)
            .unwrap();
    }
    f
}

/// `payload` in UDP from `sport` to the Geneve port between two nodes.
#[must_use]
pub fn over_geneve_port(outer_src: &[u8], outer_dst: &[u8], sport: u16, payload: &[u8]) -> Vec<u8> {
    over_udp(outer_src, outer_dst, sport, GENEVE_PORT, payload)
}

/// `inner` as seen through a tunnel of type `encap` between two nodes.
#[must_use]
pub fn tunnel_key(inner: FlowKey, encap: u8, id: u32, flags: u8, outer: (&[u8], &[u8]), ports: (u16, u16)) -> FlowKey {
    let o = key(outer.0, outer.1, 0, 0, 0);
    FlowKey {
        encap,
        tunnel_id: id,
        tunnel_flags: flags,
        outer_src_addr: o.src_addr,
        outer_dst_addr: o.dst_addr,
        outer_src_port: ports.0,
        outer_dst_port: ports.1,
        outer_ip_version: o.ip_version,
        ..inner
    }
}

fn tunnelled(key: FlowKey, bytes: u64, outer_bytes: u64, tcp_flags: u64, notes: Vec<Counter>) -> Expect {
    Expect::Flow { key, packets: 1, bytes, outer_bytes, tcp_flags, notes }
}

fn cut(base: &str, frame: &[u8], len: usize, expect: Expect) -> Case {
    case(&format!("truncated-{base}-{len}"), frame[..len].to_vec(), expect)
}

/// Every tunnel case: Geneve, IP in IP, GRE, nested tunnels, and cuts at
/// every header boundary of one frame of each.
#[must_use]
#[expect(clippy::too_many_lines, reason = "a table of cases reads best as one list")]
pub fn cases() -> Vec<Case> {
    let v4_tcp = key(&POD_A, &POD_B, 40000, 80, TCP);
    let v4_udp = key(&POD_A, &POD_B, 5353, 53, UDP);
    let v6_tcp = key(&POD6_A, &POD6_B, 40000, 80, TCP);
    let nodes = (&NODE_A[..], &NODE_B[..]);
    let nodes6 = (&NODE6_A[..], &NODE6_B[..]);
    let geneve_eth = TUNNEL_FLAG_KEY | TUNNEL_FLAG_ETHERNET;
    let gport = (50000, GENEVE_PORT);
    let outer_udp = |sport| key(&NODE_A, &NODE_B, sport, GENEVE_PORT, UDP);
    let plain_ip = |protocol| key(&NODE_A, &NODE_B, 0, 0, protocol);

    // Geneve: 8 bytes and its options after UDP.
    let geneve = |h: Vec<u8>, inner: &[u8]| over_geneve_port(&NODE_A, &NODE_B, 50000, &[h, inner.to_vec()].concat());
    let g_tcp = geneve(geneve_header(0, false, ETH_P_TEB, 5001, &[], None), &ipv4_tcp_syn());
    let g_opts = geneve(geneve_header(0, false, ETH_P_TEB, 0x00ff_ffff, &geneve_options(252), None), &ipv6_tcp_syn());
    let g_ip = geneve(geneve_header(0, false, ETH_P_IP, 7, &[], None), &ip(&ipv4_tcp_syn()));
    let g_ip6 = {
        let h = geneve_header(0, false, ETH_P_IPV6, 7, &geneve_options(8), None);
        over_geneve_port(&NODE6_A, &NODE6_B, 50001, &[h, ip(&ipv6_tcp_syn())].concat())
    };
    let g_cut_base = geneve(geneve_header(0, false, ETH_P_TEB, 9, &geneve_options(16), None), &ipv4_udp());

    // IP in IP: the inner IP packet right after the outer header.
    let i44 = over_ip(&NODE_A, &NODE_B, IPIP, &ip(&ipv4_tcp_syn()));
    let i64_ = over_ip(&NODE_A, &NODE_B, IPV6, &ip(&ipv6_tcp_syn()));
    let i46 = over_ip(&NODE6_A, &NODE6_B, IPIP, &ip(&ipv4_tcp_syn()));
    let i66 = over_ip(&NODE6_A, &NODE6_B, IPV6, &ip(&ipv6_tcp_syn()));

    // GRE.
    let gre = |flags, protocol, gre_key, inner: &[u8]| {
        over_ip(&NODE_A, &NODE_B, GRE, &[gre_header(flags, protocol, gre_key), inner.to_vec()].concat())
    };
    let gre_plain = gre(0, ETH_P_IP, 0, &ip(&ipv4_tcp_syn()));
    let gre_key = gre(GRE_K, ETH_P_IPV6, 0x1234_5678, &ip(&ipv6_tcp_syn()));
    let gre_cks = gre(GRE_C | GRE_K | GRE_S, ETH_P_IP, 42, &ip(&ipv4_udp()));
    // NVGRE: VSID 0xabcdef, flow id 0x01.
    let nvgre = gre(GRE_K, ETH_P_TEB, 0xabcd_ef01, &ipv4_tcp_syn());
    let gre6 = over_ip(&NODE6_A, &NODE6_B, GRE, &[gre_header(GRE_K, ETH_P_IP, 99), ip(&ipv4_tcp_syn())].concat());

    // Tunnels in tunnels: accounted at the first tunnel's inner header.
    let vxlan_in_geneve = {
        let mut inner = Vec::new();
        eth().ipv4(POD_A, POD_B, 64).udp(40000, 4789).write(&mut inner, &[0x08, 0, 0, 0, 0, 0, 1, 0]).unwrap();
        geneve(geneve_header(0, false, ETH_P_TEB, 3, &[], None), &inner)
    };
    let ipip_in_gre = gre(0, ETH_P_IP, 0, &ip(&i44));

    let mut cases = vec![
        // Outer 20 + 8 + 8 + 14 + 40 = 90.
        case(
            "geneve-ipv4-tcp",
            g_tcp,
            tunnelled(
                tunnel_key(v4_tcp, ENCAP_GENEVE, 5001, geneve_eth, nodes, gport),
                40,
                90,
                0x02,
                vec![Counter::Geneve],
            ),
        ),
        // The most options a header can have, 252 bytes: 20 + 8 + 8 + 252 + 14 + 60.
        case(
            "geneve-252-option-bytes-ipv6-tcp",
            g_opts,
            tunnelled(
                tunnel_key(v6_tcp, ENCAP_GENEVE, 0x00ff_ffff, geneve_eth, nodes, gport),
                60,
                362,
                0x02,
                vec![Counter::Geneve],
            ),
        ),
        // IP directly (protocol type 0x0800): 20 + 8 + 8 + 40.
        case(
            "geneve-ip-payload",
            g_ip,
            tunnelled(
                tunnel_key(v4_tcp, ENCAP_GENEVE, 7, TUNNEL_FLAG_KEY, nodes, gport),
                40,
                76,
                0x02,
                vec![Counter::Geneve],
            ),
        ),
        // IPv6 underlay, IPv6 directly, 8 bytes of options: 40 + 8 + 8 + 8 + 60.
        case(
            "geneve-ipv6-outer-ipv6-payload",
            g_ip6,
            tunnelled(
                tunnel_key(v6_tcp, ENCAP_GENEVE, 7, TUNNEL_FLAG_KEY, nodes6, (50001, GENEVE_PORT)),
                60,
                124,
                0x02,
                vec![Counter::Geneve],
            ),
        ),
        case(
            "geneve-version-1",
            geneve(geneve_header(1, false, ETH_P_TEB, 1, &[], None), &ipv4_tcp_syn()),
            flow(outer_udp(50000), 90, 0, vec![Counter::TunnelInvalid]),
        ),
        case(
            "geneve-control-message",
            geneve(geneve_header(0, true, ETH_P_TEB, 1, &[], None), &ipv4_tcp_syn()),
            flow(outer_udp(50000), 90, 0, vec![Counter::TunnelInnerNotIp]),
        ),
        case(
            "geneve-unknown-protocol",
            geneve(geneve_header(0, false, 0x88cc, 1, &[], None), &ipv4_tcp_syn()),
            flow(outer_udp(50000), 90, 0, vec![Counter::TunnelInnerNotIp]),
        ),
        case(
            "geneve-inner-arp",
            geneve(geneve_header(0, false, ETH_P_TEB, 1, &[], None), &arp_request()),
            // 20 + 8 + 8 + 42.
            flow(outer_udp(50000), 78, 0, vec![Counter::TunnelInnerNotIp]),
        ),
        // Options claimed: 63 words; present: 8 bytes and a 40-byte packet.
        // The header lies about its length: nothing is read from past it.
        case(
            "geneve-options-longer-than-packet",
            geneve(geneve_header(0, false, ETH_P_IP, 1, &geneve_options(8), Some(63)), &ip(&ipv4_tcp_syn())),
            flow(outer_udp(50000), 84, 0, vec![Counter::TunnelInvalid]),
        ),
        // IP in IP, all four ways.
        case(
            "ipip-4in4-tcp",
            i44,
            tunnelled(tunnel_key(v4_tcp, ENCAP_IPIP, 0, 0, nodes, (0, 0)), 40, 60, 0x02, vec![Counter::Ipip]),
        ),
        case(
            "ipip-6in4-tcp",
            i64_,
            tunnelled(tunnel_key(v6_tcp, ENCAP_IPIP, 0, 0, nodes, (0, 0)), 60, 80, 0x02, vec![Counter::Ipip]),
        ),
        case(
            "ipip-4in6-tcp",
            i46,
            tunnelled(tunnel_key(v4_tcp, ENCAP_IPIP, 0, 0, nodes6, (0, 0)), 40, 80, 0x02, vec![Counter::Ipip]),
        ),
        case(
            "ipip-6in6-tcp",
            i66,
            tunnelled(tunnel_key(v6_tcp, ENCAP_IPIP, 0, 0, nodes6, (0, 0)), 60, 100, 0x02, vec![Counter::Ipip]),
        ),
        // Protocol 4 around an IPv6 packet: not what it claims, the outer flow.
        case(
            "ipip-version-mismatch",
            over_ip(&NODE_A, &NODE_B, IPIP, &ip(&ipv6_tcp_syn())),
            flow(plain_ip(IPIP), 80, 0, vec![Counter::TunnelInnerNotIp]),
        ),
        // GRE: 20 + 4 + 40.
        case(
            "gre-ipv4-no-key",
            gre_plain.clone(),
            tunnelled(tunnel_key(v4_tcp, ENCAP_GRE, 0, 0, nodes, (0, 0)), 40, 64, 0x02, vec![Counter::Gre]),
        ),
        // 20 + 8 + 60.
        case(
            "gre-key-ipv6",
            gre_key,
            tunnelled(
                tunnel_key(v6_tcp, ENCAP_GRE, 0x1234_5678, TUNNEL_FLAG_KEY, nodes, (0, 0)),
                60,
                88,
                0x02,
                vec![Counter::Gre],
            ),
        ),
        // Checksum, key and sequence number: 20 + 16 + 60.
        case(
            "gre-checksum-key-sequence",
            gre_cks.clone(),
            tunnelled(tunnel_key(v4_udp, ENCAP_GRE, 42, TUNNEL_FLAG_KEY, nodes, (0, 0)), 60, 96, 0, vec![Counter::Gre]),
        ),
        // NVGRE: 20 + 8 + 14 + 40.
        case(
            "nvgre-ipv4-tcp",
            nvgre,
            tunnelled(
                tunnel_key(v4_tcp, ENCAP_GRE, 0xabcd_ef01, TUNNEL_FLAG_KEY | TUNNEL_FLAG_ETHERNET, nodes, (0, 0)),
                40,
                82,
                0x02,
                vec![Counter::Gre],
            ),
        ),
        // ip6gre: 40 + 8 + 40.
        case(
            "gre-ipv6-outer",
            gre6,
            tunnelled(
                tunnel_key(v4_tcp, ENCAP_GRE, 99, TUNNEL_FLAG_KEY, nodes6, (0, 0)),
                40,
                88,
                0x02,
                vec![Counter::Gre],
            ),
        ),
        // RFC 1701's routing bit: a receiver of RFC 2784 GRE discards it.
        case(
            "gre-routing-bit",
            gre(GRE_R, ETH_P_IP, 0, &ip(&ipv4_tcp_syn())),
            flow(plain_ip(GRE), 64, 0, vec![Counter::TunnelInvalid]),
        ),
        // PPTP's enhanced GRE (version 1) carries PPP: not decoded.
        case(
            "gre-version-1",
            gre(1, 0x880b, 0, &ip(&ipv4_tcp_syn())),
            flow(plain_ip(GRE), 64, 0, vec![Counter::TunnelInnerNotIp]),
        ),
        case(
            "gre-erspan",
            gre(GRE_S, ETH_P_ERSPAN, 0, &ipv4_tcp_syn()),
            // 20 + 8 + 54.
            flow(plain_ip(GRE), 82, 0, vec![Counter::TunnelInnerNotIp]),
        ),
        // A VXLAN packet in Geneve is the inner UDP flow to 4789, noted.
        case(
            "nested-vxlan-in-geneve",
            vxlan_in_geneve,
            tunnelled(
                tunnel_key(key(&POD_A, &POD_B, 40000, 4789, UDP), ENCAP_GENEVE, 3, geneve_eth, nodes, gport),
                36,
                86,
                0,
                vec![Counter::Geneve, Counter::NestedTunnel],
            ),
        ),
        // IP in IP in GRE: the inner IPv4 flow of protocol 4, noted.
        case(
            "nested-ipip-in-gre",
            ipip_in_gre,
            tunnelled(
                tunnel_key(key(&NODE_A, &NODE_B, 0, 0, IPIP), ENCAP_GRE, 0, 0, nodes, (0, 0)),
                60,
                84,
                0,
                vec![Counter::Gre, Counter::NestedTunnel],
            ),
        ),
    ];
    cases.extend(geneve_cuts(&g_cut_base));
    cases.extend(gre_cuts(&gre_cks));
    cases.extend(ipip_cuts(&over_ip(&NODE_A, &NODE_B, IPIP, &ip(&ipv4_udp()))));
    cases
}

/// A Geneve frame with 16 bytes of options around Ethernet IPv4 UDP (60),
/// cut at each boundary: 14 | 20 IP | 8 UDP | 8 Geneve | 16 options | 14
/// Ethernet | 20 IP | 8 UDP | 32 payload.
fn geneve_cuts(frame: &[u8]) -> Vec<Case> {
    let base = "geneve-options-ipv4-udp";
    let outer = key(&NODE_A, &NODE_B, 50000, GENEVE_PORT, UDP);
    let flags = TUNNEL_FLAG_KEY | TUNNEL_FLAG_ETHERNET;
    let nodes = (&NODE_A[..], &NODE_B[..]);
    let mut inner_cut = tunnel_key(key(&POD_A, &POD_B, 0, 0, UDP), ENCAP_GENEVE, 9, flags, nodes, (50000, GENEVE_PORT));
    inner_cut.flags = KEY_FLAG_L4_TRUNCATED;
    let full = tunnel_key(key(&POD_A, &POD_B, 5353, 53, UDP), ENCAP_GENEVE, 9, flags, nodes, (50000, GENEVE_PORT));
    let at = |n: usize| 14 + n;
    vec![
        // No Geneve header, or half of one: invalid, the outer UDP flow.
        cut(base, frame, at(28), flow(outer, 28, 0, vec![Counter::TunnelInvalid])),
        cut(base, frame, at(35), flow(outer, 35, 0, vec![Counter::TunnelInvalid])),
        // The header but not all its options.
        cut(base, frame, at(36), flow(outer, 36, 0, vec![Counter::TunnelInvalid])),
        cut(base, frame, at(51), flow(outer, 51, 0, vec![Counter::TunnelInvalid])),
        // Options complete, inner frame missing or cut before its IP header ends.
        cut(base, frame, at(52), flow(outer, 52, 0, vec![Counter::TunnelInnerNotIp])),
        cut(base, frame, at(65), flow(outer, 65, 0, vec![Counter::TunnelInnerNotIp])),
        cut(base, frame, at(85), flow(outer, 85, 0, vec![Counter::TunnelInnerNotIp])),
        // Inner IP complete, its UDP header not.
        cut(base, frame, at(86), tunnelled(inner_cut, 20, 86, 0, vec![Counter::Geneve, Counter::L4Truncated])),
        cut(base, frame, at(94), tunnelled(full, 28, 94, 0, vec![Counter::Geneve])),
    ]
}

/// A GRE frame with checksum, key and sequence number around IPv4 UDP
/// (60), cut at each boundary: 14 | 20 IP | 4 GRE | 4 checksum | 4 key |
/// 4 sequence | 20 IP | 8 UDP | 32 payload.
fn gre_cuts(frame: &[u8]) -> Vec<Case> {
    let base = "gre-checksum-key-sequence";
    let outer = key(&NODE_A, &NODE_B, 0, 0, GRE);
    let nodes = (&NODE_A[..], &NODE_B[..]);
    let mut inner_cut = tunnel_key(key(&POD_A, &POD_B, 0, 0, UDP), ENCAP_GRE, 42, TUNNEL_FLAG_KEY, nodes, (0, 0));
    inner_cut.flags = KEY_FLAG_L4_TRUNCATED;
    let at = |n: usize| 14 + n;
    vec![
        cut(base, frame, at(20), flow(outer, 20, 0, vec![Counter::TunnelInvalid])),
        cut(base, frame, at(23), flow(outer, 23, 0, vec![Counter::TunnelInvalid])),
        cut(base, frame, at(24), flow(outer, 24, 0, vec![Counter::TunnelInvalid])),
        // Into the key.
        cut(base, frame, at(30), flow(outer, 30, 0, vec![Counter::TunnelInvalid])),
        // Into the sequence number.
        cut(base, frame, at(34), flow(outer, 34, 0, vec![Counter::TunnelInvalid])),
        cut(base, frame, at(36), flow(outer, 36, 0, vec![Counter::TunnelInnerNotIp])),
        cut(base, frame, at(55), flow(outer, 55, 0, vec![Counter::TunnelInnerNotIp])),
        cut(base, frame, at(56), tunnelled(inner_cut, 20, 56, 0, vec![Counter::Gre, Counter::L4Truncated])),
    ]
}

/// IPv4 UDP (60) in IPv4, cut at each boundary: 14 | 20 IP | 20 IP | 8 UDP
/// | 32 payload.
fn ipip_cuts(frame: &[u8]) -> Vec<Case> {
    let base = "ipip-4in4-udp";
    let outer = key(&NODE_A, &NODE_B, 0, 0, IPIP);
    let nodes = (&NODE_A[..], &NODE_B[..]);
    let mut inner_cut = tunnel_key(key(&POD_A, &POD_B, 0, 0, UDP), ENCAP_IPIP, 0, 0, nodes, (0, 0));
    inner_cut.flags = KEY_FLAG_L4_TRUNCATED;
    let at = |n: usize| 14 + n;
    vec![
        cut(base, frame, at(20), flow(outer, 20, 0, vec![Counter::TunnelInnerNotIp])),
        cut(base, frame, at(39), flow(outer, 39, 0, vec![Counter::TunnelInnerNotIp])),
        cut(base, frame, at(40), tunnelled(inner_cut, 20, 40, 0, vec![Counter::Ipip, Counter::L4Truncated])),
        cut(base, frame, at(47), tunnelled(inner_cut, 27, 47, 0, vec![Counter::Ipip, Counter::L4Truncated])),
    ]
}
