//! A [`DeltaSource`] with no kernel behind it, for the daemon's tests: each
//! drain hands over the next batch it was given, then nothing.

use std::collections::VecDeque;

use std::convert::Infallible;

use super::{CounterSnapshot, DeltaSource, FlowDelta};

#[derive(Debug, Default)]
pub struct FakeSource {
    batches: VecDeque<Vec<FlowDelta>>,
    drains: usize,
}

impl FakeSource {
    /// A source whose drains give `batches` in order.
    pub fn new(batches: impl IntoIterator<Item = Vec<FlowDelta>>) -> Self {
        Self { batches: batches.into_iter().collect(), drains: 0 }
    }

    /// Drains so far, with or without deltas.
    #[must_use]
    pub fn drains(&self) -> usize {
        self.drains
    }
}

impl DeltaSource for FakeSource {
    type Error = Infallible;

    fn drain(&mut self, out: &mut Vec<FlowDelta>) -> Result<(), Infallible> {
        self.drains += 1;
        out.extend(self.batches.pop_front().unwrap_or_default());
        Ok(())
    }

    fn counters(&self) -> Result<CounterSnapshot, Infallible> {
        Ok(CounterSnapshot::default())
    }
}
