//! The probe's integration tests, one module per subject, linked into one
//! binary: each test binary links the whole dependency tree (kube, tonic,
//! aya), and one of them instead of eight saves the link time and most of
//! the disk the tests take. `cargo test -p vxflow --test integration
//! replay::` runs one module.

mod classifier;
mod cli;
mod export_tshark;
mod host_classifier;
mod kubernetes;
mod metadata_hostile;
mod replay;
mod support;
mod tcp_export;
