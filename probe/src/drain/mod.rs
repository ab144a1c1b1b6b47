//! What the flow cache takes in: per-flow deltas and the datapath's
//! counters, from a [`DeltaSource`].
//!
//! The daemon's cycle depends only on that trait, so its tests drive drain,
//! cache and export with `testing::FakeSource` and no kernel;
//! `datapath::kernel::KernelMaps` is the real one.

#[cfg(test)]
pub mod testing;

use vxflow_common::{Counter, FlowKey, FlowStats};

/// Counts for one flow since the previous drain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowDelta {
    pub key: FlowKey,
    pub stats: FlowStats,
}

/// Totals of the datapath counters since load, summed over CPUs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CounterSnapshot {
    values: [u64; Counter::COUNT as usize],
}

impl CounterSnapshot {
    #[must_use]
    pub fn get(&self, counter: Counter) -> u64 {
        self.values[counter as usize]
    }

    pub fn set(&mut self, counter: Counter, value: u64) {
        self.values[counter as usize] = value;
    }

    /// Every counter with its name, in index order.
    pub fn iter(&self) -> impl Iterator<Item = (Counter, u64)> + '_ {
        Counter::ALL.iter().map(|&c| (c, self.get(c)))
    }
}

/// Where flow deltas come from.
pub trait DeltaSource {
    /// Why a drain or a counter read failed.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Appends every delta counted since the previous call to `out`. Each
    /// counted packet is in exactly one call's output.
    ///
    /// # Errors
    /// When the kernel maps cannot be read. What `out` holds then was taken
    /// from the kernel and must still be used; what was not taken stays in
    /// the kernel for the next call.
    fn drain(&mut self, out: &mut Vec<FlowDelta>) -> Result<(), Self::Error>;

    /// The datapath counters.
    ///
    /// # Errors
    /// When the counter map cannot be read.
    fn counters(&self) -> Result<CounterSnapshot, Self::Error>;
}
