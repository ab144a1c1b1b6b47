//! What a parsed packet counts on the wire: a GSO/GRO super-packet stands
//! for its segments, and each segment repeats the headers.

use super::{layer::Layer, packet::Packet};

/// Packets and bytes of one skb.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wire {
    pub packets: u64,
    /// IP bytes of the counted layer (the inner one for a tunnel).
    pub bytes: u64,
    /// IP bytes of the tunnel's outer layer, 0 without a tunnel.
    pub outer_bytes: u64,
}

/// The wire counts of the packet whose counted layer is `counted`, inside
/// `outer` for a tunnel.
#[inline(always)]
pub fn wire(packet: &impl Packet, counted: &Layer, outer: Option<&Layer>) -> Wire {
    let (gso_segs, gso_size) = packet.gso();
    let skb_len = packet.frame_len();
    let hdr_end = counted.hdr_end as usize;
    let packets = segments(gso_segs, gso_size, skb_len, hdr_end);
    let bytes = wire_bytes(counted, packets, skb_len, hdr_end);
    let outer_bytes = outer.map_or(0, |o| wire_bytes(o, packets, skb_len, hdr_end));
    Wire { packets, bytes, outer_bytes }
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

/// IP-layer bytes on the wire for `layer`. For one packet that is the
/// length in its IP header; for a super-packet of `segs` segments, every
/// segment repeats the headers from the IP header to the end of the
/// transport header.
#[inline(always)]
fn wire_bytes(layer: &Layer, segs: u64, skb_len: usize, hdr_end: usize) -> u64 {
    if segs <= 1 {
        return u64::from(layer.ip_len);
    }
    let l3_off = layer.l3_off as usize;
    let present = skb_len.saturating_sub(l3_off) as u64;
    let headers = hdr_end.saturating_sub(l3_off) as u64;
    present + (segs - 1) * headers
}
