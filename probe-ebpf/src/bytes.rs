//! How the classifier (`vxflow_common::classify`, written once against
//! its `Bytes` trait) reads an skb's bytes. [`Linear`] reads a linear skb
//! in place (direct packet access: one bounds check per header, then a
//! load per field); [`Skb`] copies each header through
//! `bpf_skb_load_bytes`, which also reaches the paged part of a non-linear
//! skb (a GSO/GRO super-packet, or a frame the NIC split into header and
//! pages).

use core::mem::offset_of;

use aya_ebpf::programs::TcContext;
use network_types::eth::EthHdr;
use vxflow_common::classify::{Bytes, CopiedSpan, Span};

use crate::packet::Tc;

/// A linear skb: every byte is in `[data, data_end)`, so a read past
/// `data_end` is past the packet, as for `bpf_skb_load_bytes`.
pub struct Linear {
    data: usize,
    end: usize,
}

impl<'a> Bytes<'a> for Linear {
    type Packet = Tc<'a>;
    type Span<const N: usize> = LinearSpan<N>;

    /// The skb read in place, if it is linear. The context is read with
    /// volatile loads so that each open gives the verifier fresh packet
    /// pointers (see `frame`), not a register LLVM kept.
    #[inline(always)]
    fn open(packet: &'a Tc<'a>) -> Option<Self> {
        // SAFETY: reading context fields the kernel exposes to sched_cls.
        let (data, end, len) = unsafe {
            let skb = packet.0.skb.skb;
            (
                core::ptr::read_volatile(&raw const (*skb).data) as usize,
                core::ptr::read_volatile(&raw const (*skb).data_end) as usize,
                core::ptr::read_volatile(&raw const (*skb).len) as usize,
            )
        };
        (end - data == len).then_some(Self { data, end })
    }

    #[inline(always)]
    fn span<const N: usize>(&self, off: usize) -> Option<LinearSpan<N>> {
        let start = self.data + off;
        (start + N <= self.end).then_some(LinearSpan(start))
    }

    const WALKS_IPV6_EXTENSIONS: bool = false;
}

/// The Ethernet type of the frame, if its Ethernet header is in the linear
/// area (as it is for all but a malformed frame), whether or not the rest
/// of the skb is linear.
#[inline(always)]
pub fn ethertype(ctx: &TcContext) -> Option<u16> {
    let (data, end) = (ctx.data(), ctx.data_end());
    (data + EthHdr::LEN <= end)
        .then(|| LinearSpan::<{ EthHdr::LEN }>(data).be16::<{ offset_of!(EthHdr, ether_type) }>())
}

/// `N` bytes of a linear skb at a packet address the verifier has seen
/// checked against `data_end`.
pub struct LinearSpan<const N: usize>(usize);

impl<const N: usize> Span<N> for LinearSpan<N> {
    #[inline(always)]
    fn u8<const I: usize>(&self) -> u8 {
        const { assert!(I < N) };
        // SAFETY: byte I of the checked span.
        unsafe { word::<1>(self.0 + I) as u8 }
    }

    #[inline(always)]
    fn be16<const I: usize>(&self) -> u16 {
        const { assert!(I + 2 <= N) };
        // SAFETY: bytes I..I+2 of the checked span.
        u16::from_be(unsafe { word::<2>(self.0 + I) } as u16)
    }

    #[inline(always)]
    fn raw32<const I: usize>(&self) -> u32 {
        const { assert!(I + 4 <= N) };
        // SAFETY: bytes I..I+4 of the checked span.
        unsafe { word::<4>(self.0 + I) as u32 }
    }

    #[inline(always)]
    fn raw64<const I: usize>(&self) -> u64 {
        const { assert!(I + 8 <= N) };
        // SAFETY: bytes I..I+8 of the checked span.
        unsafe { word::<8>(self.0 + I) }
    }
}

/// Any skb, linear or not, read with `bpf_skb_load_bytes`.
pub struct Skb<'a>(pub &'a TcContext);

impl<'a> Bytes<'a> for Skb<'a> {
    type Packet = Tc<'a>;
    type Span<const N: usize> = CopiedSpan<N>;

    #[inline(always)]
    fn open(packet: &'a Tc<'a>) -> Option<Self> {
        Some(Self(packet.0))
    }

    #[inline(always)]
    fn span<const N: usize>(&self, off: usize) -> Option<CopiedSpan<N>> {
        self.0.load::<[u8; N]>(off).ok().map(CopiedSpan)
    }

    const WALKS_IPV6_EXTENSIONS: bool = true;
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
            2 => {
                core::arch::asm!("{0} = *(u16 *)({1} + 0)", lateout(reg) v, in(reg) p, options(pure, readonly, nostack, preserves_flags))
            }
            _ => {
                core::arch::asm!("{0} = *(u8 *)({1} + 0)", lateout(reg) v, in(reg) p, options(pure, readonly, nostack, preserves_flags))
            }
        }
    }
    v
}
