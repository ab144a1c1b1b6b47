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
        let size = size_of::<T>();
        if start + size > self.end {
            return None;
        }
        let mut out = core::mem::MaybeUninit::<T>::uninit();
        let dst = out.as_mut_ptr().cast::<u8>();
        let mut i = 0;
        // SAFETY: `[start, start + size)` is inside the linear area, which
        // the verifier has just seen checked against data_end; every byte
        // of `out` is written before it is read, and `T` is a plain header
        // type (any bit pattern valid).
        unsafe {
            while i + 8 <= size {
                dst.add(i).cast::<u64>().write_unaligned(word::<8>(start + i));
                i += 8;
            }
            if i + 4 <= size {
                dst.add(i).cast::<u32>().write_unaligned(word::<4>(start + i) as u32);
                i += 4;
            }
            if i + 2 <= size {
                dst.add(i).cast::<u16>().write_unaligned(word::<2>(start + i) as u16);
                i += 2;
            }
            if i < size {
                *dst.add(i) = *((start + i) as *const u8);
            }
            Some(out.assume_init())
        }
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

/// One `N`-byte load from packet address `p`, whatever its alignment: BPF's
/// LLVM backend splits an align-1 load into byte loads and shifts, while
/// the machine and the verifier (which checks packet alignment only on
/// architectures without efficient unaligned access, or when asked to)
/// take it whole.
///
/// # Safety
/// `[p, p + N)` is packet memory the verifier has seen bounds-checked.
#[inline(always)]
unsafe fn word<const N: usize>(p: usize) -> u64 {
    let v: u64;
    // SAFETY: the caller's contract; the asm only loads.
    unsafe {
        match N {
            8 => {
                core::arch::asm!("{0} = *(u64 *)({1} + 0)", lateout(reg) v, in(reg) p, options(pure, readonly, nostack, preserves_flags))
            }
            4 => {
                core::arch::asm!("{0} = *(u32 *)({1} + 0)", lateout(reg) v, in(reg) p, options(pure, readonly, nostack, preserves_flags))
            }
            _ => {
                core::arch::asm!("{0} = *(u16 *)({1} + 0)", lateout(reg) v, in(reg) p, options(pure, readonly, nostack, preserves_flags))
            }
        }
    }
    v
}
