//! vxflow's TC programs: one entry point per direction, each a thin wrapper
//! around [`account::on_packet`], and the clock sample userspace runs. Accounting never changes a packet's fate:
//! both always return `TC_ACT_UNSPEC` (TCX_NEXT), so any program after ours
//! (Cilium's, say) still decides.
#![no_std]
#![no_main]
#![feature(core_intrinsics)]
#![feature(asm_experimental_arch)]
#![expect(internal_features, reason = "atomic_xadd/atomic_or are the only way to emit BPF atomics")]

mod account;
mod bytes;
mod frame;
mod maps;
mod packet;

use aya_ebpf::{
    bindings::TC_ACT_UNSPEC,
    helpers::{bpf_jiffies64, bpf_ktime_get_ns},
    macros::classifier,
    programs::TcContext,
};
use vxflow_common::flow::{DIRECTION_EGRESS, DIRECTION_INGRESS};

#[classifier]
pub fn vxflow_ingress(ctx: TcContext) -> i32 {
    account::on_packet(&ctx, DIRECTION_INGRESS);
    TC_ACT_UNSPEC
}

#[classifier]
pub fn vxflow_egress(ctx: TcContext) -> i32 {
    account::on_packet(&ctx, DIRECTION_EGRESS);
    TC_ACT_UNSPEC
}

/// Not attached: userspace runs it with `BPF_PROG_TEST_RUN` to read the
/// jiffies counter and the monotonic clock at one instant, which is how it
/// maps the datapath's jiffies to time (`probe/src/datapath/ticks.rs`). The pair
/// comes back in the context's `cb` words (`vxflow_common::CLOCK_SAMPLE_CB`),
/// so a sample is one syscall.
#[classifier]
pub fn vxflow_clock(ctx: TcContext) -> i32 {
    // SAFETY: helpers with no preconditions.
    let (jiffies, mono) = unsafe { (bpf_jiffies64(), bpf_ktime_get_ns()) };
    // SAFETY: `cb` is the context's scratch area, writable by sched_cls.
    let cb = unsafe { &mut (*ctx.skb.skb).cb };
    *cb = [jiffies as u32, (jiffies >> 32) as u32, mono as u32, (mono >> 32) as u32, 0];
    TC_ACT_UNSPEC
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // Never reached: the verifier rejects programs that could get here.
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
