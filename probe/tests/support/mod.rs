//! Running the loaded classifier through `BPF_PROG_TEST_RUN`.

use aya::programs::{SchedClassifier, TestRun as _, TestRunOptions};

/// Size of `struct __sk_buff` (include/uapi/linux/bpf.h) and the offsets of the
/// fields a test run may set; checked against aya-ebpf-bindings' layout.
const SKB_SIZE: usize = 192;
const SKB_GSO_SEGS: usize = 164;
const SKB_GSO_SIZE: usize = 176;

/// Runs `prog` once on `frame`, with `gso` as `(gso_segs, gso_size)` in the
/// skb when given. Returns the program's return value.
pub fn test_run(prog: &SchedClassifier, frame: &[u8], gso: Option<(u32, u32)>) -> i32 {
    let len = frame.len();
    try_test_run(prog, frame, gso)
        .unwrap_or_else(|e| panic!("BPF_PROG_TEST_RUN of {len} bytes, gso {gso:?}: {}", vxflow::error_chain(&e)))
}

/// [`test_run`], or why the kernel refused the run (it refuses a frame
/// whose IP header is cut inside its fixed part).
pub fn try_test_run(
    prog: &SchedClassifier,
    frame: &[u8],
    gso: Option<(u32, u32)>,
) -> Result<i32, aya::programs::ProgramError> {
    let mut ctx = [0u8; SKB_SIZE];
    if let Some((segs, size)) = gso {
        ctx[SKB_GSO_SEGS..SKB_GSO_SEGS + 4].copy_from_slice(&segs.to_ne_bytes());
        ctx[SKB_GSO_SIZE..SKB_GSO_SIZE + 4].copy_from_slice(&size.to_ne_bytes());
    }
    let opts =
        TestRunOptions { data_in: Some(frame), ctx_in: gso.is_some().then_some(&ctx[..]), ..TestRunOptions::default() };
    let result = prog.test_run(opts)?;
    Ok(i32::from_ne_bytes(result.return_value.to_ne_bytes()))
}
