//! One drain cycle: kernel deltas into the cache, expired flows out to every
//! output, and the pressure and loss bookkeeping around it.

use vxflow_common::Counter;

use super::{DaemonError, Totals, tally::Tally};
use crate::{
    cache::FlowCache,
    clock::{WallClock, kernel_ns},
    drain::{DeltaSource, FlowDelta},
    export::{ExportContext, Outputs, RecordSink as _, options::Losses},
    ifaces::NameCache,
    pressure::PressureWatch,
    record::FlowRecord,
};

/// Most one fallback or loss report per this long; each carries the counts
/// since the previous one.
const PRESSURE_REPORT_INTERVAL: std::time::Duration = std::time::Duration::from_mins(1);

/// The state one drain cycle works on.
pub(super) struct Pipeline<S: DeltaSource> {
    pub source: S,
    pub cache: FlowCache,
    pub outputs: Outputs,
    pub names: NameCache,
    deltas: Vec<FlowDelta>,
    records: Vec<FlowRecord>,
    pub totals: Totals,
    pressure: PressureWatch,
    /// Packets the datapath could not account, as the options records say.
    ignored: Losses,
    pub tally: Tally,
    /// How long the last drain took, and all of them together.
    pub last_drain: std::time::Duration,
    pub drain_time: std::time::Duration,
    /// 1 in this many IP packets is counted, as records and options say.
    pub sampling: u32,
}

impl<S: DeltaSource> Pipeline<S> {
    pub fn new(source: S, cache: FlowCache, outputs: Outputs, names: NameCache) -> Self {
        Self {
            source,
            cache,
            outputs,
            names,
            deltas: Vec::new(),
            records: Vec::new(),
            totals: Totals::default(),
            pressure: PressureWatch::new(PRESSURE_REPORT_INTERVAL),
            ignored: Losses::default(),
            tally: Tally::default(),
            last_drain: std::time::Duration::ZERO,
            drain_time: std::time::Duration::ZERO,
            sampling: 1,
        }
    }

    /// Drains the source into the cache; with `expire`, also exports what is due.
    pub fn cycle(&mut self, expire: bool) -> Result<(), DaemonError> {
        self.deltas.clear();
        let started = std::time::Instant::now();
        if let Err(error) = self.source.drain(&mut self.deltas) {
            // What was taken is in `deltas` and is used; the rest waits.
            self.totals.drain_errors += 1;
            tracing::error!(error = %crate::error_chain(&error), "drain failed; retrying next interval");
        }
        self.totals.drains += 1;
        self.last_drain = started.elapsed();
        self.drain_time += self.last_drain;
        self.report_pressure();
        self.tally.add(&self.deltas);
        for d in &self.deltas {
            self.totals.drained_packets += d.stats.packets;
            self.totals.drained_bytes += d.stats.bytes;
        }
        let now = kernel_ns();
        self.cache.ingest(&self.deltas, now, &mut self.records);
        if expire {
            self.cache.expire(now, &mut self.records);
        }
        tracing::debug!(
            deltas = self.deltas.len(),
            records = self.records.len(),
            flows = self.cache.len(),
            drain_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            "drained"
        );
        self.export(false)
    }

    /// Ends every cached flow now (`vxflow ctl expire-all`), as forced ends,
    /// and exports them. Returns how many records left.
    pub fn expire_all(&mut self) -> Result<usize, DaemonError> {
        self.cycle(false)?;
        self.cache.flush(&mut self.records);
        let n = self.records.len();
        self.export(false)?;
        Ok(n)
    }

    /// Tells the operator when packets took the fallback ring or were lost.
    fn report_pressure(&mut self) {
        let Ok(counters) = self.source.counters() else {
            return;
        };
        let lost = counters.get(Counter::Lost).saturating_sub(self.ignored.packets);
        let lost_bytes = counters.get(Counter::LostBytes).saturating_sub(self.ignored.octets);
        self.ignored.add(0, lost, lost_bytes, WallClock::now().to_unix_ms(kernel_ns()));
        let Some(p) = self.pressure.observe(std::time::Instant::now(), &counters) else {
            return;
        };
        if p.lost_packets > 0 {
            tracing::error!(
                lost_packets = p.lost_packets,
                lost_bytes = p.lost_bytes,
                fallback_packets = p.fallback_packets,
                "packets not accounted: the flow map and the fallback ring were both full; raise \
                 kernel.flow_map_entries or kernel.fallback_ring_bytes, or shorten kernel.poll_interval"
            );
        } else {
            tracing::warn!(
                fallback_packets = p.fallback_packets,
                "the kernel flow map filled up: packets took the slower fallback ring (still counted); \
                 raise kernel.flow_map_entries or shorten kernel.poll_interval"
            );
        }
    }

    /// Hands this cycle's records to every output; called even with none,
    /// so UDP collectors get their template refresh on time.
    fn export(&mut self, last: bool) -> Result<(), DaemonError> {
        let mut ctx = ExportContext {
            clock: WallClock::now(),
            names: &mut self.names,
            ignored: self.ignored,
            last,
            sampling: self.sampling,
        };
        let result = self.outputs.write(&self.records, &mut ctx).map_err(DaemonError::Output);
        self.records.clear();
        result
    }

    /// After the programs are detached: two drains, so both generations are
    /// empty (the flip's RCU wait covers programs still in flight at detach),
    /// then every cached flow is exported.
    pub fn finish(&mut self) -> Result<(), DaemonError> {
        self.cycle(false)?;
        self.cycle(false)?;
        self.cache.flush(&mut self.records);
        let exported = self.export(true);
        self.outputs.close();
        exported
    }
}
