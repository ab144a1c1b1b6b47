//! The parse's output: each layer's offsets, lengths and tunnel, and the
//! flow key, together in a [`Scratch`].

use crate::FlowKey;

/// What the counts need from a parsed layer, and the tunnel it carries.
/// In the kernel, kept in per-CPU map memory beside the key, written by the
/// parse and read by its caller.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Layer {
    /// Offset of the IP header.
    pub l3_off: u32,
    /// IP length as the header states it, clamped to the skb.
    pub ip_len: u32,
    /// Offset just past the transport header: what every segment of a
    /// GSO/GRO super-packet repeats.
    pub hdr_end: u32,
    /// `1 << Counter` bits of the annotation counters this layer adds to.
    pub notes: u32,
    /// For a tunnel: the offset of its payload, an Ethernet frame or, when
    /// `inner_ethertype` is set, an IP packet of that type.
    pub inner_off: u32,
    /// For a tunnel: its VNI or key (`FlowKey::tunnel_id`).
    pub tunnel_id: u32,
    pub tcp_flags: u8,
    /// The tunnel this layer carries: an `ENCAP_*` value, `ENCAP_NONE`
    /// for none.
    pub tunnel: u8,
    /// For a tunnel: `TUNNEL_FLAG_*` bits.
    pub tunnel_flags: u8,
    /// The IP protocol (the last next header for IPv6), so the outer flow
    /// can be given back its own when the tunnel's payload is not IP.
    pub protocol: u8,
    /// For a tunnel that carries IP directly, the payload's Ethernet type
    /// (0x0800 or 0x86DD); 0 for an Ethernet payload.
    pub inner_ethertype: u16,
    pub _pad: [u8; 2],
}

const _: () = assert!(size_of::<Layer>() == 32);

/// The packet being parsed: the flow key, which the parse writes in place,
/// and the parsed [`Layer`]s. In the kernel a per-CPU map value: passing
/// them through map memory lets the parse be a global function, checked
/// once by the verifier, and lets the paths inside it meet (the verifier
/// does not track map memory).
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default)]
pub struct Scratch {
    /// First, so its address fields (offsets 0, 16, 32, 48) are 8-aligned.
    pub key: FlowKey,
    /// The frame's outermost layer.
    pub outer: Layer,
    /// A tunnel's inner layer.
    pub inner: Layer,
}

const _: () = assert!(core::mem::offset_of!(Scratch, key) == 0);
const _: () = assert!(core::mem::offset_of!(FlowKey, outer_dst_addr) == 48);
