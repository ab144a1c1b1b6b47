//! Builds `probe-ebpf` for the bpf target with the nightly toolchain and
//! leaves the object in `OUT_DIR`, where `src/datapath/object.rs` embeds it.
//! aya-build emits `rerun-if-changed` for the eBPF crate's directory.
use anyhow::anyhow;
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or_else(|| anyhow!("probe crate has no parent directory"))?
        .join("probe-ebpf");
    let root = root.to_str().ok_or_else(|| anyhow!("non-UTF-8 path {}", root.display()))?;
    println!("cargo:rerun-if-changed=../common/src");
    aya_build::build_ebpf([Package { name: "vxflow-ebpf", root_dir: root, ..Package::default() }], Toolchain::default())
}
