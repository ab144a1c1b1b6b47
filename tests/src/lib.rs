//! vxflow's test kit: network namespaces and topologies built with iproute2,
//! a handle on a running `vxflow`, crafted packets and pcap files. Used by the
//! probe's kernel tests, the end-to-end tests in this directory, and the demo.
//!
//! Everything a test creates has a unique name and is removed on drop, so
//! tests run in parallel and leave nothing behind, even when they fail.

#![expect(
    clippy::missing_panics_doc,
    reason = "a test kit: panicking with a clear message is how it reports a failed step"
)]

pub mod apiserver;
pub mod cmd;
pub mod collectors;
pub mod configgen;
pub mod containerd;
pub mod hostile_frames;
pub mod metrics;
pub mod names;
pub mod netns;
pub mod ovs;
pub mod packets;
pub mod pcap;
pub mod probe;
pub mod tap;
pub mod topology;
pub mod traffic;
pub mod tunnel_frames;
pub mod unit;

/// Panics with a clear message unless running as root.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this test creates network namespaces and loads eBPF programs: run it as root (scripts/test.sh runs every \
         test; scripts/check.sh those that need no root)"
    );
}

/// A name prefix unique to this process and call, short enough that
/// `<prefix>-<role>` stays a valid namespace name.
#[must_use]
pub fn unique_prefix(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("vxt{}{}-{tag}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Makes a FIFO at `path`: what a hostile input path may point at, where a
/// reader that opens it blindly blocks forever.
pub fn mkfifo(path: &std::path::Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo has no other preconditions.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo {}", path.display());
}

/// A directory of a test's own under the system temp dir, removed when
/// dropped, even when the test fails.
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    #[must_use]
    pub fn new(tag: &str) -> Self {
        let path = std::env::temp_dir().join(unique_prefix(tag));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    /// `name` inside the directory.
    #[must_use]
    pub fn join(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
