//! The shipped systemd unit, read as the tests need it: its path and the
//! values of its keys, so the tests and the other deployments (the
//! Kubernetes `DaemonSet`) are held to the capabilities it grants.

use std::path::{Path, PathBuf};

/// `systemd/vxflow.service` in the repository.
#[must_use]
pub fn unit_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd/vxflow.service")
}

/// The whitespace-separated values of every `key=` line in the unit.
#[must_use]
pub fn unit_values(key: &str) -> Vec<String> {
    let text = std::fs::read_to_string(unit_file()).unwrap();
    let prefix = format!("{key}=");
    text.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .flat_map(|v| v.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .collect()
}

/// The capabilities the unit grants (`CAP_BPF`, ...), checked to be the same
/// in its bounding and ambient sets.
#[must_use]
pub fn unit_capabilities() -> Vec<String> {
    let caps = unit_values("CapabilityBoundingSet");
    assert_eq!(caps, unit_values("AmbientCapabilities"), "the unit's bounding and ambient sets differ");
    caps
}
