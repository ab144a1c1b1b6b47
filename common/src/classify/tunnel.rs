//! Tunnel headers on the outermost layer: which tunnel a packet carries,
//! its id, and where its payload starts. VXLAN and Geneve by UDP
//! destination port, IP in IP and GRE by IP protocol, each only on an
//! interface where a tunnel this node terminates can arrive (the packet's
//! [`Packet`] settings: in the kernel, `UDP_TUNNEL_PORTS`, `IP_TUNNELS_OFF`
//! and `TUNNEL_IFACES`); elsewhere a tunnel header is pod data.
//!
//! Every tunnel writes the same few `Layer` fields, and `frame` reads them
//! back from map memory, so the inner parse is checked by the verifier
//! once for all tunnel types.

use core::mem::offset_of;

use network_types::{udp::UdpHdr, vxlan::VxlanHdr};

use super::{
    layer::Layer,
    packet::{Bytes, Packet, Span as _},
    parse::{ETH_P_IP, ETH_P_IPV6, IpLayer},
};
use crate::{
    Counter,
    flow::{ENCAP_GENEVE, ENCAP_GRE, ENCAP_IPIP, ENCAP_NONE, ENCAP_VXLAN, TUNNEL_FLAG_ETHERNET, TUNNEL_FLAG_KEY},
    ipproto,
};

/// Transparent Ethernet bridging: the payload is an Ethernet frame (Geneve's
/// and GRE's protocol type for it, RFC 8926 and RFC 7637).
const ETH_P_TEB: u16 = 0x6558;

/// RFC 7348 section 5: the I flag says the VNI is valid.
const VXLAN_FLAG_I: u8 = 0x08;

/// RFC 8926 section 3.4: version (2 bits) and options length (6 bits, in
/// 4-byte words, so at most 252 bytes) in the first byte; the O (control
/// message) flag tops the second.
const GENEVE_LEN: usize = 8;
const GENEVE_OPT_WORDS: u8 = 0x3f;
const GENEVE_FLAG_O: u8 = 0x80;

/// RFC 2784 and RFC 2890: the flags and version word. C, K and S add a
/// 4-byte field each (checksum and reserved, key, sequence number, in that
/// order). A receiver discards a packet with any of bits 1 to 5 set other
/// than K and S (routing present, strict source route, recursion's top
/// bit), which only RFC 1701 gave meaning; bits 6 to 12 are ignored.
const GRE_LEN: usize = 4;
const GRE_C: u16 = 0x8000;
const GRE_K: u16 = 0x2000;
const GRE_S: u16 = 0x1000;
const GRE_RESERVED: u16 = 0x4000 | 0x0800 | 0x0400;
const GRE_VERSION: u16 = 0x0007;

/// A tunnel header that checked out.
struct Found {
    /// Offset of the payload.
    inner_off: usize,
    /// The payload's Ethernet type when it is IP directly, 0 for Ethernet.
    ethertype: u16,
    id: u32,
    flags: u8,
}

/// Looks for a tunnel in the outer layer `ip` (whole and not a later
/// fragment; `dst_port` its UDP destination port) and writes what it finds
/// to `out`: the tunnel's fields, or a note of why there is none.
#[inline(always)]
pub fn find_tunnel<'a, B: Bytes<'a>>(packet: &B::Packet, b: &B, ip: &IpLayer, dst_port: u16, out: &mut Layer) {
    let tunnel = match ip.protocol {
        ipproto::UDP => packet.udp_tunnel(dst_port),
        ipproto::IPIP | ipproto::IPV6 => ip_tunnel(packet, ENCAP_IPIP),
        ipproto::GRE => ip_tunnel(packet, ENCAP_GRE),
        _ => ENCAP_NONE,
    };
    if tunnel == ENCAP_NONE {
        return;
    }
    if !packet.tunnel_trusted() {
        out.notes = Counter::TunnelUntrusted.bit();
        return;
    }
    let found = match tunnel {
        ENCAP_VXLAN => vxlan(b, ip.l4_off + UdpHdr::LEN),
        ENCAP_GENEVE => geneve(b, ip.l4_off + UdpHdr::LEN),
        ENCAP_GRE => gre(b, ip.l4_off),
        _ => Ok(Found {
            inner_off: ip.l4_off,
            ethertype: if ip.protocol == ipproto::IPIP { ETH_P_IP } else { ETH_P_IPV6 },
            id: 0,
            flags: 0,
        }),
    };
    match found {
        // A header whose options or fields reach past its IP packet lies
        // about its length, or was cut short.
        Ok(f) if f.inner_off > ip.l3_off + ip.ip_len => out.notes = Counter::TunnelInvalid.bit(),
        Ok(f) => {
            out.tunnel = tunnel;
            out.tunnel_id = f.id;
            out.tunnel_flags = f.flags;
            out.inner_off = f.inner_off as u32;
            out.inner_ethertype = f.ethertype;
            out.notes = match Counter::of_tunnel(tunnel) {
                Some(c) => c.bit(),
                None => 0,
            };
        }
        Err(note) => out.notes = note.bit(),
    }
}

/// Whether an inner packet of IP protocol `protocol` (and UDP destination
/// port `dst_port`) is itself a tunnel vxflow would decode on the outer
/// layer.
#[inline(always)]
pub fn is_nested_tunnel(packet: &impl Packet, protocol: u8, dst_port: u16) -> bool {
    match protocol {
        ipproto::IPIP | ipproto::IPV6 | ipproto::GRE => true,
        ipproto::UDP => packet.udp_tunnel(dst_port) != ENCAP_NONE,
        _ => false,
    }
}

/// `tunnel` (`ENCAP_IPIP` or `ENCAP_GRE`) if its decoding is on.
#[inline(always)]
fn ip_tunnel(packet: &impl Packet, tunnel: u8) -> u8 {
    if packet.ip_tunnel_on(tunnel) { tunnel } else { ENCAP_NONE }
}

/// The payload type a Geneve or GRE protocol type names, or why it is not
/// decoded.
#[inline(always)]
fn payload(protocol: u16) -> Result<(u16, u8), Counter> {
    match protocol {
        ETH_P_TEB => Ok((0, TUNNEL_FLAG_ETHERNET)),
        ETH_P_IP | ETH_P_IPV6 => Ok((protocol, 0)),
        _ => Err(Counter::TunnelInnerNotIp),
    }
}

/// A valid VXLAN header at `off`: cut short, or with its I flag clear, it
/// is not one (RFC 7348).
#[inline(always)]
fn vxlan<'a, B: Bytes<'a>>(b: &B, off: usize) -> Result<Found, Counter> {
    let h = b.span::<{ VxlanHdr::LEN }>(off).ok_or(Counter::TunnelInvalid)?;
    if h.u8::<{ offset_of!(VxlanHdr, flags) }>() & VXLAN_FLAG_I == 0 {
        return Err(Counter::TunnelInvalid);
    }
    // The VNI and the reserved byte after it: one load, then a shift.
    let vni = u32::from_be(h.raw32::<{ offset_of!(VxlanHdr, vni) }>()) >> 8;
    Ok(Found { inner_off: off + VxlanHdr::LEN, ethertype: 0, id: vni, flags: TUNNEL_FLAG_KEY | TUNNEL_FLAG_ETHERNET })
}

/// A Geneve header at `off` (RFC 8926): version 0 only; its options are
/// skipped whole by their stated length (at most 252 bytes), which must
/// lie in the packet (the caller checks); a control message (O flag) has
/// no payload to decode.
#[inline(always)]
fn geneve<'a, B: Bytes<'a>>(b: &B, off: usize) -> Result<Found, Counter> {
    let h = b.span::<GENEVE_LEN>(off).ok_or(Counter::TunnelInvalid)?;
    let first = h.u8::<0>();
    if first >> 6 != 0 {
        return Err(Counter::TunnelInvalid);
    }
    if h.u8::<1>() & GENEVE_FLAG_O != 0 {
        return Err(Counter::TunnelInnerNotIp);
    }
    let (ethertype, flags) = payload(h.be16::<2>())?;
    let options = usize::from(first & GENEVE_OPT_WORDS) * 4;
    Ok(Found {
        inner_off: off + GENEVE_LEN + options,
        ethertype,
        id: u32::from_be(h.raw32::<4>()) >> 8,
        flags: TUNNEL_FLAG_KEY | flags,
    })
}

/// A GRE header at `off` (RFC 2784, RFC 2890): version 0 (version 1 is
/// PPTP's, which carries PPP), the optional checksum, key and sequence
/// number skipped or read by their flags.
#[inline(always)]
fn gre<'a, B: Bytes<'a>>(b: &B, off: usize) -> Result<Found, Counter> {
    let h = b.span::<GRE_LEN>(off).ok_or(Counter::TunnelInvalid)?;
    let word = h.be16::<0>();
    if word & GRE_RESERVED != 0 {
        return Err(Counter::TunnelInvalid);
    }
    if word & GRE_VERSION != 0 {
        return Err(Counter::TunnelInnerNotIp);
    }
    let (ethertype, mut flags) = payload(h.be16::<2>())?;
    let mut inner_off = off + GRE_LEN;
    if word & GRE_C != 0 {
        inner_off += 4;
    }
    let mut id = 0;
    if word & GRE_K != 0 {
        let key = b.span::<4>(inner_off).ok_or(Counter::TunnelInvalid)?;
        id = u32::from_be(key.raw32::<0>());
        flags |= TUNNEL_FLAG_KEY;
        inner_off += 4;
    }
    if word & GRE_S != 0 {
        inner_off += 4;
    }
    Ok(Found { inner_off, ethertype, id, flags })
}
