//! vxflow's userspace: load and attach the TC programs, drain per-flow deltas
//! from the kernel, keep flow state, and export expired flows.

pub mod cache;
pub mod cli;
pub mod clock;
pub mod config;
pub mod control;
pub mod daemon;
pub mod datapath;
pub mod drain;
pub mod export;
pub mod ifaces;
pub mod metadata;
pub mod metrics;
pub mod notify;
pub mod pressure;
pub mod record;
pub mod regular_file;
pub mod replay;
pub mod snapshot;
pub mod tunnel_ids;

/// An error and its causes on one line, `outer: inner: root`, for logs.
#[must_use]
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
