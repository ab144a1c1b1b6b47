//! Parsing one layer of a packet: Ethernet and VLAN tags (or none, for a
//! tunnel that carries IP directly), IPv4 or IPv6 with its extension
//! headers, and TCP, UDP or ICMP; on the outermost layer also whether it
//! carries a tunnel this node terminates (`tunnel`). The flow key is
//! written in place; what the counts need goes in a [`Layer`]. `frame`
//! puts the layers of a packet together.

use core::mem::offset_of;

use super::{
    layer::Layer,
    packet::{Bytes, Packet as _, Span as _},
    tunnel::{find_tunnel, is_nested_tunnel},
};
use crate::{
    Counter, FlowKey,
    flow::{ENCAP_NONE, KEY_FLAG_EXT_LIMIT, KEY_FLAG_FRAGMENT, KEY_FLAG_L4_TRUNCATED},
    ipproto,
};
use network_types::{
    eth::EthHdr,
    icmp::Icmpv4Hdr,
    ip::{Ipv4Hdr, Ipv6Hdr},
    tcp::TcpHdr,
    udp::UdpHdr,
    vlan::VlanHdr,
};

pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86DD;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_8021AD: u16 = 0x88A8;

/// VLAN tags parsed in the frame (802.1Q and 802.1ad, any order). A frame with
/// more is counted as malformed rather than guessed at.
const MAX_VLAN_TAGS: usize = 2;
/// IPv6 extension headers walked before giving up on finding the transport
/// header. Real traffic rarely has more than two.
const MAX_IPV6_EXT_HEADERS: usize = 8;
/// Where a layer may start: far beyond any real stack of headers, and small
/// enough that every offset the parser computes stays within the 64 KiB the
/// verifier allows for a packet pointer's offset.
pub const MAX_LAYER_OFFSET: usize = 1024;

/// The TCP header's data offset (top nibble) and flags: bytes 12 and 13,
/// a bitfield in `TcpHdr`.
const TCP_DATA_OFFSET: usize = 12;
const TCP_FLAGS: usize = 13;

/// Why a layer has no flow, as `frame` returns it: negative.
pub type Status = i64;
pub const NON_IP: Status = -1;
pub const MALFORMED: Status = -2;
pub const VLAN_TOO_DEEP: Status = -3;
/// Only from the in-place parse: the skb is not linear, or a layer is IPv6
/// with extension headers, whose walk's offsets, used as packet pointers,
/// the verifier would track exactly (about 200,000 instructions); parse it
/// with `bpf_skb_load_bytes`, where they are helper arguments.
pub const SLOW: Status = -4;

/// Parses one layer into the key's plain fields and `out`: an Ethernet
/// frame at `off`, or, when `ip_ethertype` is not 0, an IP packet of that
/// Ethernet type (a tunnel's payload). For the outer layer, `begin`
/// readies the key once the frame proves to carry IP, so a frame that does
/// not costs no more than its Ethernet header.
#[inline(always)]
#[expect(clippy::too_many_arguments, reason = "inlined into its two callers, which pass constants for most")]
pub fn parse_layer<'a, B: Bytes<'a>>(
    packet: &'a B::Packet,
    b: &B,
    off: usize,
    ip_ethertype: u16,
    inner: bool,
    key: &mut FlowKey,
    out: &mut Layer,
    begin: impl FnOnce(&mut FlowKey),
) -> Result<(), Status> {
    // Inner VLAN tags are skipped but not recorded: vlan_id is the outer one.
    let mut vlan_id = 0u16;
    let mut stripped = false;
    if !inner {
        // The receive path strips the outermost tag into skb->vlan_tci
        // before TC ingress (skb_vlan_untag in __netif_receive_skb_core);
        // egress may carry it there too when the device offloads tagging.
        if let Some(tci) = packet.offloaded_vlan() {
            vlan_id = tci & 0x0fff;
            stripped = true;
        }
    }
    let (l3_off, ethertype) =
        if ip_ethertype == 0 { parse_l2(b, off, &mut vlan_id, stripped)? } else { (off, ip_ethertype) };
    if ethertype != ETH_P_IP && ethertype != ETH_P_IPV6 {
        return Err(NON_IP);
    }
    if !inner {
        begin(key);
        key.vlan_id = vlan_id;
    }
    let ip = parse_ip(b, packet.frame_len(), l3_off, ethertype, key)?;
    key.protocol = ip.protocol;
    let l4 = parse_l4(b, &ip);
    set_l4(key, &ip, &l4);
    *out = Layer {
        l3_off: ip.l3_off as u32,
        ip_len: ip.ip_len as u32,
        hdr_end: l4.hdr_end as u32,
        notes: 0,
        inner_off: 0,
        tunnel_id: 0,
        tcp_flags: l4.tcp_flags,
        tunnel: ENCAP_NONE,
        tunnel_flags: 0,
        protocol: ip.protocol,
        inner_ethertype: 0,
        _pad: [0; 2],
    };
    let whole = !ip.non_first_fragment && !l4.truncated;
    if inner {
        // One level of tunnel: a tunnel in the tunnel is the plain flow it
        // looks like, noted.
        if whole && is_nested_tunnel(packet, ip.protocol, l4.dst_port) {
            out.notes = Counter::NestedTunnel.bit();
        }
    } else if whole {
        find_tunnel(packet, b, &ip, l4.dst_port, out);
    }
    Ok(())
}

/// Where the IP layer of one (outer or inner) packet sits, and its length.
#[derive(Clone, Copy)]
pub struct IpLayer {
    /// Offset of the IP header.
    pub l3_off: usize,
    /// Offset of the transport header.
    pub l4_off: usize,
    /// Length from the IP header as the header states it (clamped to the skb).
    pub ip_len: usize,
    pub protocol: u8,
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

/// Skips the Ethernet header and its VLAN tags: at most [`MAX_VLAN_TAGS`]
/// in all, counting one the receive path already `stripped` into the skb,
/// so a frame is judged the same whether or not its outer tag was
/// offloaded. Returns the offset of the L3 header and its ethertype.
/// `vlan_id` gets the first tag's id if it is still 0.
#[inline(always)]
fn parse_l2<'a, B: Bytes<'a>>(b: &B, off: usize, vlan_id: &mut u16, stripped: bool) -> Result<(usize, u16), Status> {
    // Only the Ethernet type is needed; its end is the header's end.
    let mut ethertype = b.span::<{ EthHdr::LEN }>(off).ok_or(MALFORMED)?.be16::<{ offset_of!(EthHdr, ether_type) }>();
    let mut off = off + EthHdr::LEN;
    let in_frame = MAX_VLAN_TAGS - usize::from(stripped);
    for i in 0..MAX_VLAN_TAGS {
        if ethertype != ETH_P_8021Q && ethertype != ETH_P_8021AD {
            return Ok((off, ethertype));
        }
        if i == in_frame {
            return Err(VLAN_TOO_DEEP);
        }
        let tag = b.span::<{ VlanHdr::LEN }>(off).ok_or(MALFORMED)?;
        if *vlan_id == 0 {
            *vlan_id = tag.be16::<{ offset_of!(VlanHdr, tci) }>() & 0x0fff;
        }
        ethertype = tag.be16::<{ offset_of!(VlanHdr, ether_type) }>();
        off += VlanHdr::LEN;
    }
    if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
        return Err(VLAN_TOO_DEEP);
    }
    Ok((off, ethertype))
}

/// Parses the IP header at `off` into the key's plain address, version and
/// TOS fields.
#[inline(always)]
fn parse_ip<'a, B: Bytes<'a>>(
    b: &B,
    skb_len: usize,
    off: usize,
    ethertype: u16,
    key: &mut FlowKey,
) -> Result<IpLayer, Status> {
    let avail = skb_len.saturating_sub(off);
    match ethertype {
        ETH_P_IP => {
            let h = b.span::<{ Ipv4Hdr::LEN }>(off).ok_or(MALFORMED)?;
            let version_ihl = h.u8::<{ offset_of!(Ipv4Hdr, vihl) }>();
            let ihl = usize::from(version_ihl & 0x0f) * 4;
            if version_ihl >> 4 != 4 || ihl < Ipv4Hdr::LEN || ihl > avail {
                return Err(MALFORMED);
            }
            let tot_len = usize::from(h.be16::<{ offset_of!(Ipv4Hdr, tot_len) }>());
            // BIG TCP GSO packets carry tot_len 0 (kernel 6.3+); their length
            // comes from the skb, as for any super-packet.
            let ip_len = if tot_len == 0 {
                avail
            } else if tot_len < ihl {
                return Err(MALFORMED);
            } else {
                tot_len.min(avail)
            };
            set_v4_addrs(
                key,
                h.raw32::<{ offset_of!(Ipv4Hdr, src_addr) }>(),
                h.raw32::<{ offset_of!(Ipv4Hdr, dst_addr) }>(),
            );
            key.ip_version = 4;
            key.tos = h.u8::<{ offset_of!(Ipv4Hdr, tos) }>();
            let frag_offset = h.be16::<{ offset_of!(Ipv4Hdr, frags) }>() & 0x1fff;
            Ok(IpLayer {
                l3_off: off,
                l4_off: off + ihl,
                ip_len,
                protocol: h.u8::<{ offset_of!(Ipv4Hdr, proto) }>(),
                non_first_fragment: frag_offset != 0,
                ext_limit: false,
                chain_truncated: false,
            })
        }
        ETH_P_IPV6 => {
            let h = b.span::<{ Ipv6Hdr::LEN }>(off).ok_or(MALFORMED)?;
            // Version, then traffic class, in the first 12 bits.
            let vcf = h.be16::<{ offset_of!(Ipv6Hdr, vcf) }>();
            if vcf >> 12 != 6 {
                return Err(MALFORMED);
            }
            set_v6_addrs(key, [h.raw64::<8>(), h.raw64::<16>()], [h.raw64::<24>(), h.raw64::<32>()]);
            key.ip_version = 6;
            // Traffic class: the 8 bits after the version nibble.
            key.tos = (vcf >> 4) as u8;
            let payload = usize::from(h.be16::<{ offset_of!(Ipv6Hdr, payload_len) }>());
            // payload_len 0 means a jumbogram or a BIG TCP super-packet.
            let ip_len = if payload == 0 { avail } else { (Ipv6Hdr::LEN + payload).min(avail) };
            let mut layer = IpLayer {
                l3_off: off,
                l4_off: off + Ipv6Hdr::LEN,
                ip_len,
                protocol: h.u8::<{ offset_of!(Ipv6Hdr, next_hdr) }>(),
                non_first_fragment: false,
                ext_limit: false,
                chain_truncated: false,
            };
            if is_ipv6_ext(layer.protocol) {
                if !B::WALKS_IPV6_EXTENSIONS {
                    return Err(SLOW);
                }
                walk_ipv6_ext(b, &mut layer);
            }
            Ok(layer)
        }
        _ => Err(NON_IP),
    }
}

/// Writes IPv4 addresses (as they lie in the packet) into the first four
/// bytes of the key's 16-byte address fields, whose other twelve the caller
/// has zeroed (`frame`: a fresh key, or the plain fields cleared when a
/// tunnel moved them out). Assigning arrays compiles to calls of
/// aya-ebpf's byte-at-a-time `memset`.
#[inline(always)]
fn set_v4_addrs(key: &mut FlowKey, src: u32, dst: u32) {
    const _: () = assert!(core::mem::offset_of!(FlowKey, src_addr) % 4 == 0);
    const _: () = assert!(core::mem::offset_of!(FlowKey, dst_addr) % 4 == 0);
    // SAFETY: `key` is a valid, 4-aligned `FlowKey` (it has u32 fields)
    // and both fields start at multiples of 4.
    unsafe {
        core::ptr::write_volatile((&raw mut key.src_addr).cast::<u32>(), src);
        core::ptr::write_volatile((&raw mut key.dst_addr).cast::<u32>(), dst);
    }
}

/// Writes IPv6 addresses, each as two words as they lie in the packet.
#[inline(always)]
fn set_v6_addrs(key: &mut FlowKey, src: [u64; 2], dst: [u64; 2]) {
    for (field, addr) in [(&raw mut key.src_addr, src), (&raw mut key.dst_addr, dst)] {
        let words = field.cast::<u64>();
        // SAFETY: the key parsed into is always the first field of the
        // 8-aligned scratch value, and its address fields start at offsets
        // 0 and 16 (asserted in `maps`), so each is two aligned words.
        unsafe {
            core::ptr::write_volatile(words, addr[0]);
            core::ptr::write_volatile(words.add(1), addr[1]);
        }
    }
}

#[inline(always)]
const fn is_ipv6_ext(nh: u8) -> bool {
    matches!(
        nh,
        ipproto::HOPOPTS
            | ipproto::ROUTING
            | ipproto::FRAGMENT
            | ipproto::AH
            | ipproto::DSTOPTS
            | ipproto::MH
            | ipproto::HIP
            | ipproto::SHIM6
    )
}

/// Follows the extension-header chain to the transport header, bounded by
/// [`MAX_IPV6_EXT_HEADERS`]. A chain cut short leaves `protocol` at the last
/// next-header read and marks the layer `chain_truncated`.
#[inline(always)]
fn walk_ipv6_ext<'a, B: Bytes<'a>>(b: &B, layer: &mut IpLayer) {
    for _ in 0..MAX_IPV6_EXT_HEADERS {
        let nh = layer.protocol;
        if !is_ipv6_ext(nh) {
            return;
        }
        // The whole header must be inside the packet, not just its first bytes.
        let Some(ext) = b.span::<8>(layer.l4_off) else {
            layer.chain_truncated = true;
            return;
        };
        layer.protocol = ext.u8::<0>();
        let ext_len = usize::from(ext.u8::<1>());
        if nh == ipproto::FRAGMENT {
            layer.l4_off += 8;
            // RFC 8200 4.5: offset in the top 13 bits of bytes 2-3. A non-first
            // fragment's payload is not a header chain: stop here.
            if ext.be16::<2>() & 0xfff8 != 0 {
                layer.non_first_fragment = true;
                return;
            }
        } else if nh == ipproto::AH {
            // RFC 4302: length in 4-octet units, minus 2.
            layer.l4_off += (ext_len + 2) * 4;
        } else {
            // RFC 8200: length in 8-octet units, not counting the first 8.
            layer.l4_off += (ext_len + 1) * 8;
        }
    }
    if is_ipv6_ext(layer.protocol) {
        layer.ext_limit = true;
    }
}

#[inline(always)]
fn parse_l4<'a, B: Bytes<'a>>(b: &B, ip: &IpLayer) -> L4 {
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
        ipproto::TCP => match b.span::<{ TcpHdr::LEN }>(ip.l4_off) {
            Some(t) if ip.l4_off + TcpHdr::LEN <= ip_end => {
                l4.src_port = t.be16::<{ offset_of!(TcpHdr, source) }>();
                l4.dst_port = t.be16::<{ offset_of!(TcpHdr, dest) }>();
                l4.tcp_flags = t.u8::<TCP_FLAGS>();
                let doff = usize::from(t.u8::<TCP_DATA_OFFSET>() >> 4) * 4;
                l4.hdr_end = ip.l4_off + doff.max(TcpHdr::LEN);
            }
            _ => l4.truncated = true,
        },
        ipproto::UDP => match b.span::<{ UdpHdr::LEN }>(ip.l4_off) {
            Some(u) if ip.l4_off + UdpHdr::LEN <= ip_end => {
                l4.src_port = u.be16::<{ offset_of!(UdpHdr, src) }>();
                l4.dst_port = u.be16::<{ offset_of!(UdpHdr, dst) }>();
                l4.hdr_end = ip.l4_off + UdpHdr::LEN;
            }
            _ => l4.truncated = true,
        },
        ipproto::ICMP | ipproto::ICMPV6 => match b.span::<2>(ip.l4_off) {
            Some(i) if ip.l4_off + 2 <= ip_end => {
                // NetFlow convention: type and code in the destination port.
                l4.dst_port = i.be16::<{ offset_of!(Icmpv4Hdr, type_) }>();
            }
            _ => l4.truncated = true,
        },
        _ => {}
    }
    l4
}
