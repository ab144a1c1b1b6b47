//! An exported flow record: what the cache hands to every output.

use vxflow_common::FlowKey;

/// Why a record was exported, with IPFIX flowEndReason (IE 136) values.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EndReason {
    /// No packet for `inactive_timeout`.
    IdleTimeout = 1,
    /// Active for `active_timeout`; the flow goes on and later records carry
    /// the counts since this one.
    ActiveTimeout = 2,
    /// TCP FIN seen in both directions, or RST.
    EndOfFlow = 3,
    /// The probe is shutting down.
    ForcedEnd = 4,
    /// The cache was full (`max_flows`) and this was its least recently seen flow.
    LackOfResources = 5,
}

impl EndReason {
    pub const ALL: [EndReason; 5] = [
        EndReason::IdleTimeout,
        EndReason::ActiveTimeout,
        EndReason::EndOfFlow,
        EndReason::ForcedEnd,
        EndReason::LackOfResources,
    ];

    /// `snake_case` name, as printed in JSON and logs.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            EndReason::IdleTimeout => "idle_timeout",
            EndReason::ActiveTimeout => "active_timeout",
            EndReason::EndOfFlow => "end_of_flow",
            EndReason::ForcedEnd => "forced_end",
            EndReason::LackOfResources => "lack_of_resources",
        }
    }
}

/// Counts of one flow over one reporting period, in kernel-clock time
/// (`CLOCK_MONOTONIC` as of the last tick).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowRecord {
    pub key: FlowKey,
    /// Kernel-clock ns of the first packet in this record.
    pub start_ns: u64,
    /// Kernel-clock ns of the last packet in this record.
    pub end_ns: u64,
    pub packets: u64,
    pub bytes: u64,
    pub outer_bytes: u64,
    pub tcp_flags: u8,
    pub end_reason: EndReason,
}
