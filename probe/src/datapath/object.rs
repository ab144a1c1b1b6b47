//! The eBPF object built by `build.rs`, embedded with its BTF.

/// The compiled `probe-ebpf` crate (ELF, bpfel).
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/vxflow"));
