//! What the classifier reads a packet through, so one parser serves the
//! kernel programs and the host (`vxflow replay`): a [`Packet`] is the
//! packet with what is known of it besides its bytes (its length, a VLAN
//! tag the receive path took out, where it arrived, the tunnel settings);
//! a [`Bytes`] reads its bytes at offsets. The kernel has two readers (in
//! place for a linear skb, `bpf_skb_load_bytes` for any), the host one.
//!
//! A header is read field by field, as integers, rather than copied into a
//! header struct: the header types are alignment-1 byte arrays, so in BPF a
//! copy went through the stack and every field came back a byte at a time.

/// One packet as the classifier sees it.
pub trait Packet {
    /// Its length in bytes from the start of the frame (`skb->len`).
    fn frame_len(&self) -> usize;
    /// The VLAN tag the receive path moved out of the frame into metadata
    /// (`skb->vlan_tci`), if any.
    fn offloaded_vlan(&self) -> Option<u16>;
    /// The interface it was seen on.
    fn ifindex(&self) -> u32;
    /// GSO segments and segment size (`skb->gso_segs`, `gso_size`): zero
    /// for a packet that is one wire packet.
    fn gso(&self) -> (u32, u32);
    /// Whether a tunnel this node terminates can arrive where this packet
    /// did: only then is a tunnel header decoded.
    fn tunnel_trusted(&self) -> bool;
    /// The tunnel (an `ENCAP_*` value) UDP destination port `port`
    /// carries, `ENCAP_NONE` for none.
    fn udp_tunnel(&self, port: u16) -> u8;
    /// Whether decoding of `tunnel` (`ENCAP_IPIP` or `ENCAP_GRE`) is on.
    fn ip_tunnel_on(&self, tunnel: u8) -> bool;
}

/// A reader of a packet's bytes at offsets from the start of the frame.
pub trait Bytes<'a>: Sized {
    /// The packet it reads.
    type Packet: Packet + 'a;
    /// `N` bytes of the packet, checked to be there.
    type Span<const N: usize>: Span<N>;

    /// A reader of `packet`, if this kind can read it.
    fn open(packet: &'a Self::Packet) -> Option<Self>;

    /// The `N` bytes at `off`, or `None` when they are not all in what
    /// this reader can see.
    fn span<const N: usize>(&self, off: usize) -> Option<Self::Span<N>>;

    /// Whether the parser walks IPv6 extension headers with this reader,
    /// or leaves such packets to another ([`crate::classify::SLOW`]).
    const WALKS_IPV6_EXTENSIONS: bool;
}

/// Fields of an `N`-byte header, at offsets `I` checked against `N` when
/// the parser is compiled. Multi-byte fields are loaded whole.
pub trait Span<const N: usize> {
    fn u8<const I: usize>(&self) -> u8;
    /// A big-endian 16-bit field.
    fn be16<const I: usize>(&self) -> u16;
    /// Four bytes as they lie in the packet (an IPv4 address): stored back
    /// to memory, they are the same bytes.
    fn raw32<const I: usize>(&self) -> u32;
    /// Eight bytes as they lie in the packet (half an IPv6 address).
    fn raw64<const I: usize>(&self) -> u64;
}

/// `N` bytes copied out of a packet: the span of a reader that copies
/// (`bpf_skb_load_bytes`, or a slice on the host).
pub struct CopiedSpan<const N: usize>(pub [u8; N]);

impl<const N: usize> CopiedSpan<N> {
    #[inline(always)]
    fn bytes<const I: usize, const W: usize>(&self) -> [u8; W] {
        const { assert!(I + W <= N) };
        let mut out = [0; W];
        out.copy_from_slice(&self.0[I..I + W]);
        out
    }
}

impl<const N: usize> Span<N> for CopiedSpan<N> {
    #[inline(always)]
    fn u8<const I: usize>(&self) -> u8 {
        self.bytes::<I, 1>()[0]
    }

    #[inline(always)]
    fn be16<const I: usize>(&self) -> u16 {
        u16::from_be_bytes(self.bytes::<I, 2>())
    }

    #[inline(always)]
    fn raw32<const I: usize>(&self) -> u32 {
        u32::from_ne_bytes(self.bytes::<I, 4>())
    }

    #[inline(always)]
    fn raw64<const I: usize>(&self) -> u64 {
        u64::from_ne_bytes(self.bytes::<I, 8>())
    }
}
