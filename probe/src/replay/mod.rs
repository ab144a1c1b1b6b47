//! `vxflow replay`: packet captures turned into the same flow records
//! `vxflow run` makes live, through the kernel's own classifier compiled
//! for the host (`classify`).

pub mod classify;
