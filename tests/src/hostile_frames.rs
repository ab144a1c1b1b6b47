//! Malformed and hostile Ethernet frames, as a pod, a broken NIC or an
//! attacker on the underlay sends them: every classifier fixture (truncated
//! at every header boundary among them), each well-formed frame cut at every
//! byte, length fields that lie, IHL and TCP offsets at every value, VLAN
//! stacks past the limit, long IPv6 extension chains, VXLAN with the I flag
//! clear, nested two and three deep, or wrapped around garbage; Geneve with
//! every options length over one frame, GRE with every flag combination,
//! tunnels of every kind nested in each other; and seeded random bytes and
//! bit flips. Every frame is addressed to a MAC no host
//! has, so the receiving stack drops it after TC and answers nothing.

use etherparse::PacketBuilder;

use crate::{
    packets::{self, MAC_A, NODE_A, NODE_B, POD_A, POD_B},
    tunnel_frames::{GRE_C, GRE_K, GRE_S, geneve_header, geneve_options, gre_header, over_geneve_port, over_ip},
};

/// The destination MAC of every frame: no interface has it.
const NOBODY: [u8; 6] = [0x02, 0, 0, 0, 0, 0x99];
/// Shortest frame sent: an Ethernet header (`AF_PACKET` refuses less).
const MIN_FRAME: usize = 14;

/// Deterministic pseudo-random numbers (xorshift64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n).unwrap_or(1)).unwrap_or(0)
    }
}

fn eth() -> etherparse::PacketBuilderStep<etherparse::Ethernet2Header> {
    PacketBuilder::ethernet2(MAC_A, NOBODY)
}

fn udp4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    eth().ipv4(src, dst, 64).udp(sport, dport).write(&mut f, payload).unwrap();
    f
}

fn tcp4(payload: usize) -> Vec<u8> {
    let mut f = Vec::new();
    eth().ipv4(POD_A, POD_B, 64).tcp(40000, 80, 1, 65535).syn().write(&mut f, &vec![0x61; payload]).unwrap();
    f
}

fn tcp6() -> Vec<u8> {
    let mut f = Vec::new();
    eth().ipv6(packets::POD6_A, packets::POD6_B, 64).tcp(40000, 80, 1, 65535).syn().write(&mut f, &[]).unwrap();
    f
}

/// `inner` wrapped in VXLAN over IPv4 UDP to `dport`.
fn vxlan(dport: u16, flags: u8, vni: u32, inner: &[u8]) -> Vec<u8> {
    let mut payload = packets::vxlan_header(flags, vni).to_vec();
    payload.extend_from_slice(inner);
    udp4(NODE_A, NODE_B, 50000, dport, &payload)
}

/// The frame with its destination MAC replaced by [`NOBODY`].
fn to_nobody(mut frame: Vec<u8>) -> Vec<u8> {
    frame[..6].copy_from_slice(&NOBODY);
    frame
}

/// `inner` in Geneve (16 bytes of options) to port 6081.
fn geneve(protocol: u16, vni: u32, inner: &[u8]) -> Vec<u8> {
    let payload = [geneve_header(0, false, protocol, vni, &geneve_options(16), None), inner.to_vec()].concat();
    to_nobody(over_geneve_port(&NODE_A, &NODE_B, 50000, &payload))
}

/// `inner` in GRE with `flags` (key 77) and protocol type `protocol`.
fn gre(flags: u16, protocol: u16, inner: &[u8]) -> Vec<u8> {
    to_nobody(over_ip(&NODE_A, &NODE_B, 47, &[gre_header(flags, protocol, 77), inner.to_vec()].concat()))
}

/// `inner`'s IP packet (an Ethernet frame's) in IPv4, protocol 4 or 41.
fn ipip(inner: &[u8]) -> Vec<u8> {
    let protocol = if inner[12..14] == [0x86, 0xdd] { 41 } else { 4 };
    to_nobody(over_ip(&NODE_A, &NODE_B, protocol, &inner[14..]))
}

/// Well-formed frames of every shape the parser knows.
fn well_formed() -> Vec<(String, Vec<u8>)> {
    let inner = udp4(POD_A, POD_B, 1000, 2000, &[1; 32]);
    let nested = vxlan(4789, 0x08, 2, &vxlan(4789, 0x08, 1, &inner));
    let all_gre = gre(GRE_C | GRE_K | GRE_S, 0x0800, &inner[14..]);
    vec![
        ("ipv4-udp".into(), inner.clone()),
        ("ipv4-tcp".into(), tcp4(40)),
        ("ipv6-tcp".into(), tcp6()),
        ("ipv6-ext".into(), to_nobody(packets::ipv6_ext_udp())),
        ("ipv4-options".into(), to_nobody(packets::ipv4_options_tcp())),
        ("qinq".into(), to_nobody(packets::qinq_tcp())),
        ("vxlan".into(), vxlan(4789, 0x08, 42, &inner)),
        ("vxlan-8472-v6-inner".into(), vxlan(8472, 0x08, 1, &tcp6())),
        ("vxlan-nested".into(), nested.clone()),
        ("vxlan-nested-3".into(), vxlan(8472, 0x08, 3, &nested)),
        ("geneve".into(), geneve(0x6558, 5, &inner)),
        ("geneve-ip".into(), geneve(0x86dd, 6, &tcp6()[14..])),
        ("gre-checksum-key-sequence".into(), all_gre.clone()),
        ("nvgre".into(), gre(GRE_K, 0x6558, &inner)),
        ("ipip".into(), ipip(&inner)),
        ("ipip-6in4".into(), ipip(&tcp6())),
        ("ipip-in-gre-in-geneve".into(), geneve(0x6558, 7, &gre(GRE_K, 0x0800, &ipip(&inner)[14..]))),
        ("geneve-in-ipip".into(), ipip(&geneve(0x6558, 8, &inner))),
    ]
}

/// Sets bytes `at..at + value.len()` of a copy of `frame`.
fn patched(frame: &[u8], at: usize, value: &[u8]) -> Vec<u8> {
    let mut f = frame.to_vec();
    if at + value.len() <= f.len() {
        f[at..at + value.len()].copy_from_slice(value);
    }
    f
}

/// Every frame of the suite, with a name saying what it is.
#[must_use]
pub fn frames(seed: u64) -> Vec<(String, Vec<u8>)> {
    let mut rng = Rng(seed | 1);
    let mut out: Vec<(String, Vec<u8>)> =
        packets::cases().into_iter().map(|c| (format!("fixture {}", c.name), to_nobody(c.frame))).collect();
    let base = well_formed();
    for (name, frame) in &base {
        out.push((name.clone(), frame.clone()));
        for len in MIN_FRAME..frame.len() {
            out.push((format!("{name} cut at {len}"), frame[..len].to_vec()));
        }
    }
    // Length fields that lie, and every IHL, on IPv4 UDP (IP header at 14).
    let udp = &base[0].1;
    for tot_len in [0u16, 1, 19, 20, 27, 28, 29, 59, 61, 1500, 0xffff] {
        out.push((format!("ipv4 tot_len {tot_len}"), patched(udp, 16, &tot_len.to_be_bytes())));
    }
    for ihl in 0u8..16 {
        out.push((format!("ipv4 ihl {ihl}"), patched(udp, 14, &[0x40 | ihl])));
    }
    for version in [0u8, 5, 6, 15] {
        out.push((format!("ipv4 ethertype, version {version}"), patched(udp, 14, &[version << 4 | 5])));
    }
    for udp_len in [0u16, 7, 8, 9, 0xffff] {
        out.push((format!("udp length {udp_len}"), patched(udp, 38, &udp_len.to_be_bytes())));
    }
    let tcp = &base[1].1;
    for doff in 0u8..16 {
        out.push((format!("tcp data offset {doff}"), patched(tcp, 46, &[doff << 4])));
    }
    let v6 = &base[2].1;
    for payload_len in [0u16, 1, 19, 20, 21, 0xffff] {
        out.push((format!("ipv6 payload_len {payload_len}"), patched(v6, 18, &payload_len.to_be_bytes())));
    }
    // VXLAN: I flag clear, other flag bits, inner garbage, inner lies.
    let inner = udp4(POD_A, POD_B, 1000, 2000, &[1; 32]);
    for flags in [0x00u8, 0x01, 0x08, 0x0c, 0xff] {
        out.push((format!("vxlan flags {flags:#x}"), vxlan(4789, flags, 7, &inner)));
    }
    for n in [0usize, 1, 13, 14, 15, 33, 300] {
        let garbage: Vec<u8> = (0..n).map(|_| rng.next().to_le_bytes()[0]).collect();
        out.push((format!("vxlan around {n} random bytes"), vxlan(8472, 0x08, 9, &garbage)));
    }
    let lying_inner = patched(&inner, 16, &0xffffu16.to_be_bytes());
    out.push(("vxlan inner tot_len 65535".into(), vxlan(4789, 0x08, 1, &lying_inner)));
    // Geneve stating every options length (and every version and flag
    // byte) over one frame; GRE with every flag and version combination.
    let g = geneve(0x6558, 5, &inner);
    let all_gre = gre(GRE_C | GRE_K | GRE_S, 0x0800, &inner[14..]);
    let geneve_at = 14 + 20 + 8;
    for first in 0..=255u8 {
        out.push((format!("geneve first byte {first:#x}"), patched(&g, geneve_at, &[first])));
    }
    for second in [0x40u8, 0x80, 0xff] {
        out.push((format!("geneve flags {second:#x}"), patched(&g, geneve_at + 1, &[second])));
    }
    let gre_at = 14 + 20;
    for high in 0..=0xffu8 {
        // The flag bits, and the version in the low three bits.
        let word = (u16::from(high) << 8) | u16::from(high & 7);
        out.push((format!("gre flags {word:#06x}"), patched(&all_gre, gre_at, &word.to_be_bytes())));
    }
    // VLAN stacks of 1 to 4 tags around IPv4 UDP.
    for depth in 1..=4 {
        let mut f = udp.clone();
        for _ in 0..depth {
            f.splice(12..12, [0x81, 0x00, 0x00, 0x0a]);
        }
        out.push((format!("{depth} vlan tags"), f));
    }
    // An IPv6 chain of 12 destination-options headers.
    let mut chain = Vec::new();
    for _ in 0..12 {
        chain.extend_from_slice(&[60, 0, 1, 4, 0, 0, 0, 0]);
    }
    chain[11 * 8] = 17;
    chain.extend_from_slice(&[0x03, 0xe8, 0x07, 0xd0, 0, 8, 0, 0]);
    let mut long_chain = v6[..54].to_vec();
    long_chain[20] = 60; // next header: destination options
    let len = u16::try_from(chain.len()).unwrap_or(0);
    long_chain[18..20].copy_from_slice(&len.to_be_bytes());
    long_chain.extend_from_slice(&chain);
    out.push(("ipv6 12 extension headers".into(), long_chain));
    // Bit flips of every well-formed frame, and random frames.
    for _ in 0..300 {
        let (name, frame) = &base[rng.below(base.len())];
        let mut f = frame.clone();
        for _ in 0..=rng.below(4) {
            let at = MIN_FRAME - 2 + rng.below(f.len() - (MIN_FRAME - 2));
            f[at] ^= 1 << rng.below(8);
        }
        out.push((format!("{name} with bits flipped"), f));
    }
    for i in 0..100 {
        let len = MIN_FRAME + rng.below(1500);
        let mut f: Vec<u8> = (0..len).map(|_| rng.next().to_le_bytes()[0]).collect();
        f[..6].copy_from_slice(&NOBODY);
        f[6..12].copy_from_slice(&MAC_A);
        if i % 2 == 0 {
            // Half claim to be IPv4 or IPv6, so the parser goes further.
            f[12..14].copy_from_slice(if i % 4 == 0 { &[0x08, 0x00] } else { &[0x86, 0xdd] });
        }
        out.push((format!("random {i}"), f));
    }
    out.retain(|(_, f)| f.len() >= MIN_FRAME && !kernel_drops_before_tc(f));
    out
}

/// A tagged frame too short to untag: `skb_vlan_untag` (called from
/// `__netif_receive_skb_core`) must pull the tag and the ethertype after it,
/// 6 bytes past the Ethernet header, and frees the frame before any TC
/// program runs, so no classifier can see it (`BPF_PROG_TEST_RUN` tests
/// those instead; seen on 6.18).
fn kernel_drops_before_tc(frame: &[u8]) -> bool {
    matches!(frame[12..14], [0x81, 0x00] | [0x88, 0xa8]) && frame.len() < 20
}
