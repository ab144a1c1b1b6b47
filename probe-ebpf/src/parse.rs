//! Packet parsing: Ethernet, VLAN tags, IPv4/IPv6, TCP/UDP/ICMP, and VXLAN
//! down to the inner packet. Produces the flow key and the packet's wire
//! counts; never touches a map except the VXLAN port bitmap.
//!
//! Every header is read with `bpf_skb_load_bytes` (`ctx.load`), which copies
//! to the stack and checks bounds at run time, so non-linear skbs (GRO, GSO)
//! parse the same as linear ones and the verifier sees no packet pointers.

use core::ptr::{read_volatile, write_volatile};

use aya_ebpf::programs::TcContext;
use network_types::{eth::EthHdr, ip::Ipv4Hdr, ip::Ipv6Hdr};
use vxflow_common::{
    Counter, FlowKey, FlowStats,
    flow::{ENCAP_VXLAN, KEY_FLAG_EXT_LIMIT, KEY_FLAG_FRAGMENT, KEY_FLAG_L4_TRUNCATED},
    vxlan_port_slot,
};

use crate::maps::{TUNNEL_IFACES, VXLAN_PORTS};

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88A8;

const IPPROTO_HOPOPTS: u8 = 0;
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ROUTING: u8 = 43;
const IPPROTO_FRAGMENT: u8 = 44;
const IPPROTO_AH: u8 = 51;
const IPPROTO_ICMPV6: u8 = 58;
const IPPROTO_DSTOPTS: u8 = 60;
const IPPROTO_MH: u8 = 135;
const IPPROTO_HIP: u8 = 139;
const IPPROTO_SHIM6: u8 = 140;

/// VLAN tags parsed in the frame (802.1Q and 802.1ad, any order). A frame with
/// more is counted as malformed rather than guessed at.
const MAX_VLAN_TAGS: usize = 2;
/// IPv6 extension headers walked before giving up on finding the transport
/// header. Real traffic rarely has more than two.
const MAX_IPV6_EXT_HEADERS: usize = 8;

const UDP_HDR_LEN: usize = 8;
const TCP_MIN_HDR_LEN: usize = 20;
const VXLAN_HDR_LEN: usize = 8;
/// RFC 7348 section 5: the I flag says the VNI is valid.
const VXLAN_FLAG_I: u8 = 0x08;

/// Why a packet produced no flow. Each maps to one counter.
#[derive(Clone, Copy)]
pub enum NoFlow {
    NonIp,
    Malformed,
    VlanTooDeep,
}

/// What a parsed packet adds to its flow's counters (the key is filled in
/// place by [`parse`]).
pub struct Parsed {
    pub packets: u64,
    pub bytes: u64,
    pub outer_bytes: u64,
    pub tcp_flags: u64,
    /// Annotation counters this packet adds to (bit `1 << Counter`), counted
    /// with `packets` once the packet is accounted.
    pub notes: u32,
}

impl Parsed {
    /// A flow entry holding just this packet, seen at `now`.
    #[inline(always)]
    pub fn stats(&self, now: u64) -> FlowStats {
        FlowStats {
            packets: self.packets,
            bytes: self.bytes,
            outer_bytes: self.outer_bytes,
            first_seen_ns: now,
            last_seen_ns: now,
            tcp_flags: self.tcp_flags,
        }
    }
}

#[inline(always)]
const fn note(c: Counter) -> u32 {
    1 << c as u32
}

/// Where the IP layer of one (outer or inner) packet sits, and its length.
#[derive(Clone, Copy)]
struct IpLayer {
    /// Offset of the IP header.
    l3_off: usize,
    /// Offset of the transport header.
    l4_off: usize,
    /// Length from the IP header as the header states it (clamped to the skb).
    ip_len: usize,
    protocol: u8,
    non_first_fragment: bool,
    ext_limit: bool,
    /// The extension-header chain was cut short before the transport header.
    chain_truncated: bool,
}

/// What the transport header gave.
#[derive(Clone, Copy)]
struct L4 {
    src_port: u16,
    dst_port: u16,
    tcp_flags: u8,
    /// Offset just past the transport header: the headers before it repeat in
    /// every segment of a GSO/GRO super-packet.
    hdr_end: usize,
    truncated: bool,
}

#[inline(always)]
fn load<T>(ctx: &TcContext, off: usize) -> Option<T> {
    ctx.load::<T>(off).ok()
}

/// Outer-layer values the VXLAN stage needs, kept in per-CPU map memory.
///
/// Verifier workaround: the verifier tracks registers and stack exactly but
/// treats map memory as unknown. Passing these through map memory (volatile,
/// so LLVM cannot forward them in registers) makes every outer-parse path
/// reach the inner parse in the same state; the verifier then prunes, and the
/// inner parse adds to the outer one's cost instead of multiplying it
/// (without this the program exceeds the 1M-instruction limit).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Stash {
    outer_l3_off: u64,
    outer_ip_len: u64,
    outer_hdr_end: u64,
    inner_eth: u64,
}

/// Fields of the skb the byte and packet counts need.
#[derive(Clone, Copy)]
struct SkbInfo {
    len: usize,
    gso_segs: u32,
    gso_size: u32,
}

#[inline(always)]
fn skb_info(ctx: &TcContext) -> SkbInfo {
    // SAFETY: `skb` is the context pointer the kernel passed in; gso_* are
    // readable by sched_cls programs since 5.7.
    let (gso_segs, gso_size) = unsafe {
        let skb = &*ctx.skb.skb;
        (skb.gso_segs, skb.gso_size)
    };
    SkbInfo { len: ctx.len() as usize, gso_segs, gso_size }
}

/// Parses the whole packet. `key.direction` and `key.ifindex` are the
/// caller's; everything else is set here.
#[inline(always)]
pub fn parse(ctx: &TcContext, key: &mut FlowKey, stash: &mut Stash) -> Result<Parsed, NoFlow> {
    // SAFETY: as in skb_info; vlan_* are readable since 4.x.
    let (vlan_present, vlan_tci) = unsafe {
        let skb = &*ctx.skb.skb;
        (skb.vlan_present, skb.vlan_tci)
    };
    // The receive path strips the outermost tag into skb->vlan_tci before TC
    // ingress (skb_vlan_untag in __netif_receive_skb_core); egress may carry it
    // there too when the device offloads tagging.
    key.vlan_id = if vlan_present != 0 { (vlan_tci & 0x0fff) as u16 } else { 0 };

    let (l3_off, ethertype) = parse_l2(ctx, 0, &mut key.vlan_id)?;
    let outer = parse_ip(ctx, l3_off, ethertype, key)?;
    key.protocol = outer.protocol;
    let outer_l4 = parse_l4(ctx, &outer);
    set_l4(key, &outer, &outer_l4);

    let mut notes = 0u32;
    if outer.protocol == IPPROTO_UDP
        && !outer.non_first_fragment
        && !outer_l4.truncated
        && is_vxlan_port(outer_l4.dst_port)
    {
        // A tunnel header is pod data except where a tunnel this node
        // terminates can arrive: one lookup, on VXLAN-port packets only.
        if !tunnel_trusted(key.ifindex) {
            notes |= note(Counter::VxlanUntrusted);
        } else if let Some(vni) = vxlan_vni(ctx, outer.l4_off + UDP_HDR_LEN) {
            // The outer tuple moves to the outer_* fields and the inner packet
            // takes the plain ones; on failure the plain ones are restored.
            key.outer_src_addr = key.src_addr;
            key.outer_dst_addr = key.dst_addr;
            key.outer_src_port = key.src_port;
            key.outer_dst_port = key.dst_port;
            key.outer_ip_version = key.ip_version;
            key.vni = vni;
            // SAFETY: `stash` is a valid, exclusively borrowed map value.
            unsafe {
                write_volatile(&raw mut stash.outer_l3_off, outer.l3_off as u64);
                write_volatile(&raw mut stash.outer_ip_len, outer.ip_len as u64);
                write_volatile(&raw mut stash.outer_hdr_end, outer_l4.hdr_end as u64);
                write_volatile(&raw mut stash.inner_eth, (outer.l4_off + UDP_HDR_LEN + VXLAN_HDR_LEN) as u64);
            }
            return Ok(parse_vxlan_inner(ctx, key, stash));
        } else {
            notes |= note(Counter::VxlanInvalid);
        }
    }
    Ok(counts(ctx, key, outer.l3_off, outer.ip_len, outer_l4.hdr_end, outer_l4.tcp_flags, notes, None))
}

/// The VXLAN stage: parses the inner frame, or, when it is not IP, restores
/// the outer UDP flow. Reads the outer layer only from the stash.
#[inline(always)]
fn parse_vxlan_inner(ctx: &TcContext, key: &mut FlowKey, stash: &Stash) -> Parsed {
    // SAFETY: `stash` is a valid map value written by `parse` in this run.
    let (outer_l3_off, outer_ip_len, outer_hdr_end, inner_eth) = unsafe {
        (
            read_volatile(&raw const stash.outer_l3_off) as usize,
            read_volatile(&raw const stash.outer_ip_len) as usize,
            read_volatile(&raw const stash.outer_hdr_end) as usize,
            read_volatile(&raw const stash.inner_eth) as usize,
        )
    };
    if let Some((inner, l4)) = parse_inner(ctx, inner_eth, key) {
        key.encap = ENCAP_VXLAN;
        let outer = Some((outer_l3_off, outer_ip_len));
        return counts(ctx, key, inner.l3_off, inner.ip_len, l4.hdr_end, l4.tcp_flags, note(Counter::Vxlan), outer);
    }
    key.src_addr = key.outer_src_addr;
    key.dst_addr = key.outer_dst_addr;
    key.ip_version = key.outer_ip_version;
    key.protocol = IPPROTO_UDP;
    key.src_port = key.outer_src_port;
    key.dst_port = key.outer_dst_port;
    key.outer_src_addr = [0; 16];
    key.outer_dst_addr = [0; 16];
    key.outer_ip_version = 0;
    key.outer_src_port = 0;
    key.outer_dst_port = 0;
    key.vni = 0;
    // A VXLAN port was only considered for a complete, unfragmented UDP header.
    key.flags = 0;
    counts(ctx, key, outer_l3_off, outer_ip_len, outer_hdr_end, 0, note(Counter::VxlanInnerNotIp), None)
}

/// Packet, byte and annotation counts of the packet whose counted IP layer
/// starts at `l3_off`; `outer` is the tunnel's `(l3_off, ip_len)` if any.
#[inline(always)]
#[expect(clippy::too_many_arguments, reason = "one call per parse outcome; a struct would only move them")]
fn counts(
    ctx: &TcContext,
    key: &FlowKey,
    l3_off: usize,
    ip_len: usize,
    hdr_end: usize,
    tcp_flags: u8,
    mut notes: u32,
    outer: Option<(usize, usize)>,
) -> Parsed {
    let skb = skb_info(ctx);
    let segs = segments(skb.gso_segs, skb.gso_size, skb.len, hdr_end);
    let bytes = wire_bytes(l3_off, ip_len, segs, skb.len, hdr_end);
    let outer_bytes = match outer {
        Some((o_off, o_len)) => wire_bytes(o_off, o_len, segs, skb.len, hdr_end),
        None => 0,
    };
    if key.flags & KEY_FLAG_FRAGMENT != 0 {
        notes |= note(Counter::Fragment);
    }
    if key.flags & KEY_FLAG_L4_TRUNCATED != 0 {
        notes |= note(Counter::L4Truncated);
    }
    if key.flags & KEY_FLAG_EXT_LIMIT != 0 {
        notes |= note(Counter::Ipv6ExtLimit);
    }
    Parsed { packets: segs, bytes, outer_bytes, tcp_flags: u64::from(tcp_flags), notes }
}

/// The number of wire packets this skb stands for: a GSO/GRO super-packet
/// counts as its segments. Some drivers (virtio from a host) leave gso_segs 0
/// with gso_size set; then the segments are computed from the payload.
#[inline(always)]
fn segments(gso_segs: u32, gso_size: u32, skb_len: usize, hdr_end: usize) -> u64 {
    if gso_segs > 1 {
        return u64::from(gso_segs);
    }
    if gso_segs == 0 && gso_size > 0 && skb_len > hdr_end {
        let payload = (skb_len - hdr_end) as u64;
        let size = u64::from(gso_size);
        return payload.div_ceil(size).max(1);
    }
    1
}

/// IP-layer bytes on the wire for the IP packet at `l3_off`. For one packet that is the length
/// in its IP header; for a super-packet of `segs` segments, every segment
/// repeats the headers from the IP header to the end of the transport header.
#[inline(always)]
fn wire_bytes(l3_off: usize, ip_len: usize, segs: u64, skb_len: usize, hdr_end: usize) -> u64 {
    if segs <= 1 {
        return ip_len as u64;
    }
    let present = skb_len.saturating_sub(l3_off) as u64;
    let headers = hdr_end.saturating_sub(l3_off) as u64;
    present + (segs - 1) * headers
}

#[inline(always)]
fn set_l4(key: &mut FlowKey, ip: &IpLayer, l4: &L4) {
    key.src_port = l4.src_port;
    key.dst_port = l4.dst_port;
    let mut flags = 0;
    if ip.non_first_fragment {
        flags |= KEY_FLAG_FRAGMENT;
    }
    if l4.truncated {
        flags |= KEY_FLAG_L4_TRUNCATED;
    }
    if ip.ext_limit {
        flags |= KEY_FLAG_EXT_LIMIT;
    }
    key.flags = flags;
}

/// Parses the frame inside a VXLAN header into the key's plain fields.
/// `None` when the inner frame is not IP or its headers are malformed.
#[inline(always)]
fn parse_inner(ctx: &TcContext, eth_off: usize, key: &mut FlowKey) -> Option<(IpLayer, L4)> {
    // Inner VLAN tags are skipped but not recorded: vlan_id is the outer one.
    let mut inner_vlan = 0u16;
    let (l3_off, ethertype) = parse_l2(ctx, eth_off, &mut inner_vlan).ok()?;
    let inner = parse_ip(ctx, l3_off, ethertype, key).ok()?;
    key.protocol = inner.protocol;
    let l4 = parse_l4(ctx, &inner);
    set_l4(key, &inner, &l4);
    Some((inner, l4))
}

/// Skips the Ethernet header and up to [`MAX_VLAN_TAGS`] tags. Returns the
/// offset of the L3 header and its ethertype. `vlan_id` gets the first tag's
/// id if it is still 0.
#[inline(always)]
fn parse_l2(ctx: &TcContext, off: usize, vlan_id: &mut u16) -> Result<(usize, u16), NoFlow> {
    let eth: EthHdr = load(ctx, off).ok_or(NoFlow::Malformed)?;
    let mut ethertype = u16::from_be(eth.ether_type);
    let mut off = off + EthHdr::LEN;
    for _ in 0..MAX_VLAN_TAGS {
        if ethertype != ETH_P_8021Q && ethertype != ETH_P_8021AD {
            return Ok((off, ethertype));
        }
        let tag: [u8; 4] = load(ctx, off).ok_or(NoFlow::Malformed)?;
        if *vlan_id == 0 {
            *vlan_id = u16::from_be_bytes([tag[0], tag[1]]) & 0x0fff;
        }
        ethertype = u16::from_be_bytes([tag[2], tag[3]]);
        off += 4;
    }
    if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
        return Err(NoFlow::VlanTooDeep);
    }
    Ok((off, ethertype))
}

/// Parses the IP header at `off` into the key's plain address, version and
/// TOS fields.
#[inline(always)]
fn parse_ip(ctx: &TcContext, off: usize, ethertype: u16, key: &mut FlowKey) -> Result<IpLayer, NoFlow> {
    let avail = (ctx.len() as usize).saturating_sub(off);
    match ethertype {
        ETH_P_IP => {
            let h: Ipv4Hdr = load(ctx, off).ok_or(NoFlow::Malformed)?;
            // ihl() in network-types 0.2 is already in bytes.
            let ihl = usize::from(h.ihl());
            if h.version() != 4 || ihl < Ipv4Hdr::LEN || ihl > avail {
                return Err(NoFlow::Malformed);
            }
            let tot_len = usize::from(u16::from_be_bytes(h.tot_len));
            // BIG TCP GSO packets carry tot_len 0 (kernel 6.3+); their length
            // comes from the skb, as for any super-packet.
            let ip_len = if tot_len == 0 {
                avail
            } else if tot_len < ihl {
                return Err(NoFlow::Malformed);
            } else {
                tot_len.min(avail)
            };
            set_v4_addrs(key, h.src_addr, h.dst_addr);
            key.ip_version = 4;
            key.tos = h.tos;
            let frag_offset = u16::from_be_bytes(h.frags) & 0x1fff;
            Ok(IpLayer {
                l3_off: off,
                l4_off: off + ihl,
                ip_len,
                protocol: h.proto,
                non_first_fragment: frag_offset != 0,
                ext_limit: false,
                chain_truncated: false,
            })
        }
        ETH_P_IPV6 => {
            let h: Ipv6Hdr = load(ctx, off).ok_or(NoFlow::Malformed)?;
            if h.vcf[0] >> 4 != 6 {
                return Err(NoFlow::Malformed);
            }
            key.src_addr = h.src_addr;
            key.dst_addr = h.dst_addr;
            key.ip_version = 6;
            // Traffic class: the 8 bits after the version nibble.
            key.tos = (h.vcf[0] << 4) | (h.vcf[1] >> 4);
            let payload = usize::from(u16::from_be_bytes(h.payload_len));
            // payload_len 0 means a jumbogram or a BIG TCP super-packet.
            let ip_len = if payload == 0 { avail } else { (Ipv6Hdr::LEN + payload).min(avail) };
            let mut layer = IpLayer {
                l3_off: off,
                l4_off: off + Ipv6Hdr::LEN,
                ip_len,
                protocol: h.next_hdr,
                non_first_fragment: false,
                ext_limit: false,
                chain_truncated: false,
            };
            walk_ipv6_ext(ctx, &mut layer);
            Ok(layer)
        }
        _ => Err(NoFlow::NonIp),
    }
}

/// Writes IPv4 addresses into the key's 16-byte address fields: four bytes
/// each, then twelve zero bytes as three `u32` stores. Building the arrays
/// and assigning them compiles to calls of aya-ebpf's byte-at-a-time
/// `memset`.
#[inline(always)]
fn set_v4_addrs(key: &mut FlowKey, src: [u8; 4], dst: [u8; 4]) {
    const _: () = assert!(core::mem::offset_of!(FlowKey, src_addr) % 4 == 0);
    const _: () = assert!(core::mem::offset_of!(FlowKey, dst_addr) % 4 == 0);
    for (field, addr) in [(&raw mut key.src_addr, src), (&raw mut key.dst_addr, dst)] {
        let words = field.cast::<u32>();
        // SAFETY: `key` is a valid, 4-aligned `FlowKey` (it has u32 fields)
        // and both fields start at multiples of 4, so each is four aligned
        // u32 words inside it.
        unsafe {
            core::ptr::write_volatile(words, u32::from_ne_bytes(addr));
            core::ptr::write_volatile(words.add(1), 0);
            core::ptr::write_volatile(words.add(2), 0);
            core::ptr::write_volatile(words.add(3), 0);
        }
    }
}

#[inline(always)]
const fn is_ipv6_ext(nh: u8) -> bool {
    matches!(
        nh,
        IPPROTO_HOPOPTS
            | IPPROTO_ROUTING
            | IPPROTO_FRAGMENT
            | IPPROTO_AH
            | IPPROTO_DSTOPTS
            | IPPROTO_MH
            | IPPROTO_HIP
            | IPPROTO_SHIM6
    )
}

/// Follows the extension-header chain to the transport header, bounded by
/// [`MAX_IPV6_EXT_HEADERS`]. A chain cut short leaves `protocol` at the last
/// next-header read and marks the layer `chain_truncated`.
#[inline(always)]
fn walk_ipv6_ext(ctx: &TcContext, layer: &mut IpLayer) {
    for _ in 0..MAX_IPV6_EXT_HEADERS {
        let nh = layer.protocol;
        if !is_ipv6_ext(nh) {
            return;
        }
        // The whole header must be inside the packet, not just its first bytes.
        let Some(ext) = load::<[u8; 8]>(ctx, layer.l4_off) else {
            layer.chain_truncated = true;
            return;
        };
        layer.protocol = ext[0];
        if nh == IPPROTO_FRAGMENT {
            layer.l4_off += 8;
            // RFC 8200 4.5: offset in the top 13 bits of bytes 2-3. A non-first
            // fragment's payload is not a header chain: stop here.
            if u16::from_be_bytes([ext[2], ext[3]]) & 0xfff8 != 0 {
                layer.non_first_fragment = true;
                return;
            }
        } else if nh == IPPROTO_AH {
            // RFC 4302: length in 4-octet units, minus 2.
            layer.l4_off += (usize::from(ext[1]) + 2) * 4;
        } else {
            // RFC 8200: length in 8-octet units, not counting the first 8.
            layer.l4_off += (usize::from(ext[1]) + 1) * 8;
        }
    }
    if is_ipv6_ext(layer.protocol) {
        layer.ext_limit = true;
    }
}

#[inline(always)]
fn parse_l4(ctx: &TcContext, ip: &IpLayer) -> L4 {
    let mut l4 = L4 { src_port: 0, dst_port: 0, tcp_flags: 0, hdr_end: ip.l4_off, truncated: false };
    if ip.non_first_fragment || ip.ext_limit {
        return l4;
    }
    if ip.chain_truncated {
        l4.truncated = true;
        return l4;
    }
    // A transport header must lie within the IP packet, not in link padding.
    let ip_end = ip.l3_off + ip.ip_len;
    match ip.protocol {
        IPPROTO_TCP => match load::<[u8; TCP_MIN_HDR_LEN]>(ctx, ip.l4_off) {
            Some(t) if ip.l4_off + TCP_MIN_HDR_LEN <= ip_end => {
                l4.src_port = u16::from_be_bytes([t[0], t[1]]);
                l4.dst_port = u16::from_be_bytes([t[2], t[3]]);
                l4.tcp_flags = t[13];
                let doff = usize::from(t[12] >> 4) * 4;
                l4.hdr_end = ip.l4_off + doff.max(TCP_MIN_HDR_LEN);
            }
            _ => l4.truncated = true,
        },
        IPPROTO_UDP => match load::<[u8; UDP_HDR_LEN]>(ctx, ip.l4_off) {
            Some(u) if ip.l4_off + UDP_HDR_LEN <= ip_end => {
                l4.src_port = u16::from_be_bytes([u[0], u[1]]);
                l4.dst_port = u16::from_be_bytes([u[2], u[3]]);
                l4.hdr_end = ip.l4_off + UDP_HDR_LEN;
            }
            _ => l4.truncated = true,
        },
        IPPROTO_ICMP | IPPROTO_ICMPV6 => match load::<[u8; 2]>(ctx, ip.l4_off) {
            Some(i) if ip.l4_off + 2 <= ip_end => {
                // NetFlow convention: type and code in the destination port.
                l4.dst_port = u16::from_be_bytes([i[0], i[1]]);
            }
            _ => l4.truncated = true,
        },
        _ => {}
    }
    l4
}

#[inline(always)]
fn is_vxlan_port(port: u16) -> bool {
    let (word, bit) = vxlan_port_slot(port);
    VXLAN_PORTS.get(word).is_some_and(|w| *w & bit != 0)
}

#[inline(always)]
fn tunnel_trusted(ifindex: u32) -> bool {
    TUNNEL_IFACES.get_ptr(ifindex).is_some()
}

/// The VNI of a valid VXLAN header at `off`, or `None` if the header is short
/// or its I flag is clear (RFC 7348: then the packet is not valid VXLAN).
#[inline(always)]
fn vxlan_vni(ctx: &TcContext, off: usize) -> Option<u32> {
    let h: [u8; VXLAN_HDR_LEN] = load(ctx, off)?;
    if h[0] & VXLAN_FLAG_I == 0 {
        return None;
    }
    Some(u32::from_be_bytes([0, h[4], h[5], h[6]]))
}
