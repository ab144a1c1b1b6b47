//! The end-to-end tests, one module per subject, linked into one binary:
//! each test binary links the whole dependency tree, and one of them
//! instead of sixteen saves the link time and most of the disk the tests
//! take. `cargo test -p vxflow-tests --test e2e flannel:: -- --include-ignored`
//! runs one module.

mod adversarial;
mod cri;
mod flannel;
mod hostile;
mod interfaces;
mod ipip;
mod lifecycle;
mod metadata;
mod operate;
mod overlays;
mod packaging;
mod replay;
mod restart;
mod sampling;
mod scale;
mod service;
