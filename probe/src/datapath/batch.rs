//! `BPF_MAP_LOOKUP_AND_DELETE_BATCH` on a flow-map generation: thousands of
//! entries per syscall instead of three syscalls (next key, lookup, delete)
//! per flow. aya 0.14 has no wrapper, so this issues the syscall itself.
//!
//! Exactly once: the drained generation is quiescent (see `kernel.rs`), and
//! the kernel returns in `count` exactly the elements it copied out and
//! deleted (`__htab_map_lookup_and_delete_batch`, kernel/bpf/hashtab.c,
//! Linux 5.6+), even when the call ends in an error.

use std::{
    io,
    os::fd::{AsRawFd as _, BorrowedFd},
};

use vxflow_common::{DatapathStats, FlowKey};

use super::ticks::TickClock;
use crate::drain::FlowDelta;

/// `BPF_MAP_LOOKUP_AND_DELETE_BATCH` in `enum bpf_cmd` (include/uapi/linux/bpf.h).
const BPF_MAP_LOOKUP_AND_DELETE_BATCH: libc::c_long = 25;

/// Elements asked for per call. A hash-map call returns whole buckets, so the
/// buffer must hold the fullest bucket; `ENOSPC` with nothing copied grows it.
/// Small enough that a range's last call runs little past its end.
const CHUNK: usize = 2048;

/// The `batch` member of `union bpf_attr` (include/uapi/linux/bpf.h).
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

const _: () = assert!(size_of::<BatchAttr>() == 56);

/// Moves every entry of the map behind `fd`, a hash map of `buckets`
/// buckets, into `out`, emptying the map, with its times converted by
/// `ticks`. `threads` threads each take one range of buckets at once: the
/// kernel's cost is per entry (about 350 ns here, mostly locking and
/// copying out per bucket), and buckets are locked one at a time, so the
/// ranges drain side by side. An entry is in exactly one call's output
/// whichever thread reaches its bucket (each is deleted under the bucket's
/// lock as it is copied), so a range that runs past its end takes nothing
/// twice.
///
/// # Errors
/// The syscall's error; what was copied and deleted before it is in `out`.
pub fn take_all(
    fd: BorrowedFd<'_>,
    buckets: u32,
    threads: usize,
    ticks: &TickClock,
    out: &mut Vec<FlowDelta>,
) -> io::Result<()> {
    let threads = u32::try_from(threads.clamp(1, 64)).unwrap_or(1).min(buckets.max(1));
    if threads == 1 {
        return take_range(fd, 0, u32::MAX, ticks, out);
    }
    let step = buckets.div_ceil(threads);
    let results = std::thread::scope(|scope| {
        let others: Vec<_> = (1..threads)
            .map(|i| {
                // The last range runs to the end of the map, whatever its
                // real bucket count.
                let end = if i + 1 == threads { u32::MAX } else { (i + 1) * step };
                scope.spawn(move || {
                    let mut part = Vec::new();
                    let result = take_range(fd, i * step, end, ticks, &mut part);
                    (result, part)
                })
            })
            .collect();
        let first = take_range(fd, 0, step, ticks, out);
        let mut results = vec![first];
        for handle in others {
            let (result, part) = handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            out.extend(part);
            results.push(result);
        }
        results
    });
    results.into_iter().collect()
}

/// Takes the entries of buckets `start` up to at least `end` (a call may
/// run a little past it).
fn take_range(fd: BorrowedFd<'_>, start: u32, end: u32, ticks: &TickClock, out: &mut Vec<FlowDelta>) -> io::Result<()> {
    let mut capacity = CHUNK;
    let mut keys = vec![FlowKey::default(); capacity];
    let mut values = vec![DatapathStats::default(); capacity];
    // Hash maps use a u32 bucket index as the batch token.
    let mut token: u32 = start;
    loop {
        let mut next_token: u32 = 0;
        let mut attr = BatchAttr {
            in_batch: (&raw const token) as u64,
            out_batch: (&raw mut next_token) as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: u32::try_from(capacity).unwrap_or(u32::MAX),
            map_fd: u32::try_from(fd.as_raw_fd()).unwrap_or(u32::MAX),
            ..BatchAttr::default()
        };
        // SAFETY: `attr` is a valid bpf_attr prefix of the size passed; the
        // key and value buffers hold `capacity` elements of the map's key and
        // value types; the token pointers are valid u32s for the call.
        let rc = unsafe {
            libc::syscall(libc::SYS_bpf, BPF_MAP_LOOKUP_AND_DELETE_BATCH, &raw mut attr, size_of::<BatchAttr>())
        };
        let err = (rc < 0).then(io::Error::last_os_error);
        let n = (attr.count as usize).min(capacity);
        out.extend(
            keys[..n].iter().zip(&values[..n]).map(|(&key, stats)| FlowDelta { key, stats: ticks.stats(stats) }),
        );
        match err {
            None if next_token >= end => return Ok(()),
            None => token = next_token,
            // ENOENT: the walk reached the end of the map.
            Some(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
            Some(e) if e.raw_os_error() == Some(libc::ENOSPC) && n == 0 => {
                capacity *= 2;
                keys.resize(capacity, FlowKey::default());
                values.resize(capacity, DatapathStats::default());
            }
            Some(e) => return Err(e),
        }
    }
}
