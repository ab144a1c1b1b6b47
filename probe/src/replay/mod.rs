//! `vxflow replay`: packet captures turned into the same flow records
//! `vxflow run` makes live, through the kernel's own classifier compiled
//! for the host (`classify`), timed by the packets' own timestamps.

pub mod capture;
pub mod classify;
pub mod engine;

pub use self::engine::{ReplayError, Speed, Summary, replay};
