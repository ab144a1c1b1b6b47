//! Who owns vxflow's tc filters in this network namespace, and removing
//! those a run that died left behind.
//!
//! clsact filters are netlink objects: unlike TCX links they outlive the
//! process that attached them, so a run killed with SIGKILL leaves its
//! programs counting (and, with a new run's, counting twice). A filter may
//! only be removed when its owner is gone. The owner is whoever holds an
//! abstract unix socket name: the kernel frees the name the moment its
//! holder dies, abstract names belong to one network namespace (as the
//! filters do), and nothing is left on disk. The holder sweeps the
//! namespace's interfaces once at start, in every attach mode, so filters
//! of a killed clsact run go even when the next run uses TCX. A run that
//! finds the name taken leaves every filter alone and says so.

use std::os::{linux::net::SocketAddrExt as _, unix::net::UnixListener};

use aya::programs::{TcAttachType, tc};

/// The abstract socket name the namespace's owning vxflow holds.
const CLAIM_NAME: &[u8] = b"vxflow-tc-owner";

/// This process's standing in its network namespace.
pub enum Claim {
    /// No other vxflow runs here; holding the name keeps it so.
    Sole(UnixListener),
    /// Another vxflow holds the name: its filters are live.
    Shared,
}

/// Takes the namespace's claim if it is free.
///
/// # Errors
/// When the socket cannot be created for another reason than the name
/// being taken.
pub fn claim() -> std::io::Result<Claim> {
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(CLAIM_NAME)?;
    match UnixListener::bind_addr(&addr) {
        Ok(listener) => Ok(Claim::Sole(listener)),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Ok(Claim::Shared),
        Err(e) => Err(e),
    }
}

/// Removes the filters named `programs` (ingress, egress) from every
/// interface of the namespace, each with a warning. Only the holder of
/// [`Claim::Sole`] may call this: every such filter is then stale. Names that
/// are not UTF-8 are skipped: no filter of ours can be on them (clsact
/// filters are made by name).
pub fn sweep(programs: [(&str, TcAttachType); 2]) {
    for name in crate::ifaces::all_names().into_iter().filter_map(|(_, n)| n.ok()) {
        for (program, attach_type) in programs {
            // Fails when the interface has no clsact qdisc or no such
            // filter: the common case, nothing to do.
            if tc::qdisc_detach_program(&name, attach_type, program).is_ok() {
                tracing::warn!(iface = %name, program, "removed a stale vxflow filter left by a run that died");
            }
        }
    }
}
