//! The two parses of a frame (`vxflow_common::classify::parse_frame`):
//! [`frame_linear`] reads a linear skb in place and is inlined into the
//! programs (a call costs about 10 ns a packet); [`vxflow_frame_skb`], the
//! same code over `bpf_skb_load_bytes`, parses what the first leaves
//! ([`SLOW`]) and is a global function (BTF linkage global), which the
//! verifier checks once, on its own.

use aya_ebpf::{bindings::__sk_buff, programs::TcContext};
use vxflow_common::classify::{Bytes as _, MALFORMED, SLOW, Scratch, Status, parse_frame};

use crate::{
    bytes::{Linear, Skb},
    maps::SCRATCH,
    packet::Tc,
};

/// Parses the frame of `ctx` seen in `direction` into `scratch`, reading a
/// linear skb in place; [`SLOW`] when it cannot.
#[inline(always)]
pub fn frame_linear(ctx: &TcContext, scratch: &mut Scratch, direction: u8) -> Status {
    let packet = Tc(ctx);
    match Linear::open(&packet) {
        Some(bytes) => parse_frame(&packet, &bytes, scratch, u64::from(direction)),
        None => SLOW,
    }
}

/// [`frame_linear`] over `bpf_skb_load_bytes`.
///
/// # Safety
/// `skb` is the program's context; called only from the TC programs.
#[unsafe(no_mangle)]
#[inline(never)]
pub unsafe extern "C" fn vxflow_frame_skb(skb: *mut __sk_buff, direction: u64) -> Status {
    let ctx = TcContext::new(skb);
    let packet = Tc(&ctx);
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else { return MALFORMED };
    // SAFETY: this CPU's slot; TC programs do not nest on one CPU and the
    // caller holds no reference into it during this call.
    let scratch = unsafe { &mut *scratch };
    match Skb::open(&packet) {
        Some(bytes) => parse_frame(&packet, &bytes, scratch, direction),
        None => MALFORMED,
    }
}
