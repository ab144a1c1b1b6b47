//! How the parser reads packet bytes. [`Linear`] reads a linear skb in
//! place (direct packet access: a bounds check and a load); [`Skb`] copies
//! through `bpf_skb_load_bytes`, which also reaches the paged part of a
//! non-linear skb (a GSO/GRO super-packet, or a frame the NIC split into
//! header and pages). The parser is written once, generic over [`Bytes`].

use aya_ebpf::programs::TcContext;

/// A source of packet bytes at offsets from the start of the frame.
pub trait Bytes<'a>: Sized {
    /// A reader of the skb, if this kind can read it.
    fn open(ctx: &'a TcContext) -> Option<Self>;

    /// The `T` at `off`, or `None` when those bytes are past what this
    /// reader can see. `T` is a plain header type (any bit pattern valid).
    fn load<T: Copy>(&self, off: usize) -> Option<T>;

    /// Whether the parser walks IPv6 extension headers with this reader,
    /// or leaves such packets to [`Skb`].
    const WALKS_IPV6_EXTENSIONS: bool;
}

/// A linear skb: every byte is in `[data, data_end)`, so a read past
/// `data_end` is past the packet, as for `bpf_skb_load_bytes`.
pub struct Linear {
    data: usize,
    end: usize,
}

impl Bytes<'_> for Linear {
    /// The skb read in place, if it is linear. The context is read with
    /// volatile loads so that each open gives the verifier fresh packet
    /// pointers (see `frame`), not a register LLVM kept.
    #[inline(always)]
    fn open(ctx: &TcContext) -> Option<Self> {
        // SAFETY: reading context fields the kernel exposes to sched_cls.
        let (data, end, len) = unsafe {
            let skb = ctx.skb.skb;
            (
                core::ptr::read_volatile(&raw const (*skb).data) as usize,
                core::ptr::read_volatile(&raw const (*skb).data_end) as usize,
                core::ptr::read_volatile(&raw const (*skb).len) as usize,
            )
        };
        (end - data == len).then_some(Self { data, end })
    }

    const WALKS_IPV6_EXTENSIONS: bool = false;

    #[inline(always)]
    fn load<T: Copy>(&self, off: usize) -> Option<T> {
        let start = self.data + off;
        if start + size_of::<T>() > self.end {
            return None;
        }
        // SAFETY: `[start, start + size_of::<T>())` is inside the linear
        // area, which the verifier has just seen checked against data_end;
        // `T` is a plain header type and the read is unaligned.
        Some(unsafe { (start as *const T).read_unaligned() })
    }
}

/// Any skb, linear or not, read with `bpf_skb_load_bytes`.
pub struct Skb<'a>(pub &'a TcContext);

impl<'a> Bytes<'a> for Skb<'a> {
    #[inline(always)]
    fn open(ctx: &'a TcContext) -> Option<Self> {
        Some(Self(ctx))
    }

    const WALKS_IPV6_EXTENSIONS: bool = true;

    #[inline(always)]
    fn load<T: Copy>(&self, off: usize) -> Option<T> {
        self.0.load::<T>(off).ok()
    }
}
