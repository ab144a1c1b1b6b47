//! TCX links made by interface index, for the interfaces aya cannot name:
//! aya 0.14 attaches by `&str` name, and a Linux interface name may be any
//! bytes but `/`, `:` and white space, not only UTF-8. The link is the
//! kernel's `BPF_LINK_CREATE` with `BPF_TCX_INGRESS`/`BPF_TCX_EGRESS`
//! (Linux 6.6, commit e420bed02507), appended after the programs already
//! there, as aya's default `LinkOrder` does; closing its descriptor detaches
//! it.

use std::os::fd::{AsFd, AsRawFd as _, FromRawFd as _, OwnedFd};

/// `BPF_LINK_CREATE` (include/uapi/linux/bpf.h, `enum bpf_cmd`).
const BPF_LINK_CREATE: libc::c_long = 28;
/// `BPF_TCX_INGRESS` and `BPF_TCX_EGRESS` (`enum bpf_attach_type`).
pub const BPF_TCX_INGRESS: u32 = 46;
pub const BPF_TCX_EGRESS: u32 = 47;

/// The `link_create` member of `union bpf_attr`, as far as TCX uses it:
/// program, interface, attach type, flags, then `tcx.relative_fd` and
/// `tcx.expected_revision`, all zero here (append, any revision).
#[repr(C)]
#[derive(Default)]
struct LinkCreate {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
    relative_fd: u32,
    _pad: u32,
    expected_revision: u64,
}

const _: () = assert!(size_of::<LinkCreate>() == 32);

/// Attaches `program` to interface `ifindex` as a TCX link of
/// `attach_type`; the link lives as long as the returned descriptor.
///
/// # Errors
/// The kernel's refusal (no such interface, no TCX before 6.6, privileges).
pub fn attach(program: impl AsFd, ifindex: u32, attach_type: u32) -> std::io::Result<OwnedFd> {
    let attr = LinkCreate {
        prog_fd: u32::try_from(program.as_fd().as_raw_fd()).map_err(|_| std::io::ErrorKind::InvalidInput)?,
        target_ifindex: ifindex,
        attach_type,
        ..LinkCreate::default()
    };
    // SAFETY: bpf(2) with a pointer to an initialised attribute struct and
    // its size; the kernel checks that it knows every non-zero byte.
    let fd = unsafe {
        libc::syscall(libc::SYS_bpf, BPF_LINK_CREATE, (&raw const attr).cast::<libc::c_void>(), size_of::<LinkCreate>())
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let fd = i32::try_from(fd).map_err(|_| std::io::ErrorKind::InvalidData)?;
    // SAFETY: a new descriptor the kernel just gave us and nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
