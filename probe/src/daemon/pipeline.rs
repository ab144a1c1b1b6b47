//! One drain cycle: kernel deltas into the cache, expired flows out to every
//! output, and the pressure and loss bookkeeping around it.

use vxflow_common::Counter;

use super::{DaemonError, Totals, tally::Tally};
use crate::{
    cache::{FlowCache, RecordOut},
    clock::{WallClock, kernel_ns},
    drain::{DeltaSource, FlowDelta},
    export::{ExportContext, Outputs, RecordSink as _, options::Losses},
    ifaces::NameCache,
    metadata::{Metadata, pod_stats::PodStats},
    pressure::PressureWatch,
    record::FlowRecord,
    tunnel_ids::VniMeanings,
};

/// Most one fallback or loss report per this long; each carries the counts
/// since the previous one.
const PRESSURE_REPORT_INTERVAL: std::time::Duration = std::time::Duration::from_mins(1);

/// Records handed to the outputs at once when one pass ends many flows (an
/// expiry or a shutdown at a million flows): they and their encoded messages
/// stay a few megabytes instead of growing to a copy of the cache.
const EXPORT_CHUNK: usize = 16_384;

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
    /// What VXLAN and Geneve VNIs mean, as records and metrics name them.
    pub vni_meanings: VniMeanings,
    /// Names for the records' addresses.
    pub metadata: Metadata,
    /// Per-pod traffic, when the metrics ask for it.
    pub pod_stats: Option<PodStats>,
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
            vni_meanings: VniMeanings::default(),
            metadata: Metadata::default(),
            pod_stats: None,
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
        // Before the records of this cycle are named.
        self.metadata.refresh(now, false);
        let deltas = std::mem::take(&mut self.deltas);
        let (records, chunked) = self.pass(|cache, out| {
            cache.ingest(&deltas, now, out);
            if expire {
                cache.expire(now, out);
            }
        });
        self.deltas = deltas;
        tracing::debug!(
            deltas = self.deltas.len(),
            records,
            flows = self.cache.len(),
            drain_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            "drained"
        );
        let last = self.export(false);
        chunked.and(last)
    }

    /// Ends every cached flow now (`vxflow ctl expire-all`), as forced ends,
    /// and exports them. Returns how many records left.
    pub fn expire_all(&mut self) -> Result<usize, DaemonError> {
        self.cycle(false)?;
        let (n, chunked) = self.pass(|cache, out| cache.flush(out));
        let last = self.export(false);
        chunked.and(last).map(|()| n)
    }

    /// Runs one cache call, its records going to the outputs every
    /// [`EXPORT_CHUNK`]; the last partial chunk is left for
    /// [`Pipeline::export`]. Returns how many records the call made, and
    /// the first output error.
    fn pass(&mut self, call: impl FnOnce(&mut FlowCache, &mut Chunked<'_>)) -> (usize, Result<(), DaemonError>) {
        let Self { cache, outputs, names, records, ignored, sampling, vni_meanings, metadata, pod_stats, .. } = self;
        let mut out = Chunked {
            records,
            outputs,
            pod_stats: pod_stats.as_mut(),
            ctx: ExportContext {
                clock: WallClock::now(),
                names,
                ignored: *ignored,
                last: false,
                sampling: *sampling,
                vni_meanings,
                metadata: metadata.map(),
            },
            handed: 0,
            error: None,
        };
        call(cache, &mut out);
        let made = out.handed + out.records.len();
        (made, out.error.map_or(Ok(()), |e| Err(DaemonError::Output(e))))
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
        if let Some(stats) = &mut self.pod_stats {
            stats.add(&self.records, self.metadata.map());
        }
        let mut ctx = ExportContext {
            clock: WallClock::now(),
            names: &mut self.names,
            ignored: self.ignored,
            last,
            sampling: self.sampling,
            vni_meanings: &self.vni_meanings,
            metadata: self.metadata.map(),
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
        let (_, chunked) = self.pass(|cache, out| cache.flush(out));
        let exported = self.export(true);
        self.outputs.close();
        chunked.and(exported)
    }
}

/// The pipeline's records as the cache fills them: every [`EXPORT_CHUNK`]
/// they go to the outputs.
struct Chunked<'a> {
    records: &'a mut Vec<FlowRecord>,
    outputs: &'a mut Outputs,
    pod_stats: Option<&'a mut PodStats>,
    ctx: ExportContext<'a>,
    /// Records already handed to the outputs.
    handed: usize,
    error: Option<std::io::Error>,
}

impl RecordOut for Chunked<'_> {
    fn put(&mut self, record: FlowRecord) {
        self.records.push(record);
        if self.records.len() >= EXPORT_CHUNK {
            if let Some(stats) = &mut self.pod_stats {
                stats.add(self.records, self.ctx.metadata);
            }
            if let Err(e) = self.outputs.write(self.records, &mut self.ctx) {
                self.error.get_or_insert(e);
            }
            self.handed += self.records.len();
            self.records.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{cell::RefCell, rc::Rc, time::Duration};

    use vxflow_common::{FlowKey, FlowStats};

    use super::*;
    use crate::{cache::CacheConfig, drain::testing::FakeSource, export::RecordSink};

    /// Notes how many records each write brings, and their packets.
    #[derive(Clone, Default)]
    struct Writes(Rc<RefCell<Vec<(usize, u64)>>>);

    impl RecordSink for Writes {
        fn write(&mut self, records: &[FlowRecord], _: &mut ExportContext<'_>) -> std::io::Result<()> {
            self.0.borrow_mut().push((records.len(), records.iter().map(|r| r.packets).sum()));
            Ok(())
        }
    }

    /// `n` deltas of distinct UDP flows, `packets` each, the flows numbered
    /// from `first`.
    fn deltas(first: u32, n: u32, packets: u64) -> Vec<FlowDelta> {
        (first..first + n)
            .map(|i| {
                let mut key = FlowKey { protocol: 17, ip_version: 4, ..FlowKey::default() };
                key.src_addr[..4].copy_from_slice(&i.to_be_bytes());
                let stats = FlowStats { packets, bytes: 60 * packets, ..FlowStats::default() };
                FlowDelta { key, stats }
            })
            .collect()
    }

    fn pipeline(source: FakeSource, config: CacheConfig, writes: &Writes) -> Pipeline<FakeSource> {
        let outputs = Outputs::with_sink(Box::new(writes.clone()));
        Pipeline::new(source, FlowCache::new(config), outputs, NameCache::default())
    }

    /// Drain to export over several cycles, with flows ending at every
    /// expiry pass and the rest at shutdown: every drained packet leaves in
    /// exactly one record, and every cycle writes (so templates are
    /// refreshed on time) even when it has no record.
    #[test]
    fn every_drained_packet_leaves_in_one_record() {
        let batches = [deltas(0, 300, 2), deltas(100, 300, 3), Vec::new(), deltas(1000, 50, 1)];
        let drained: u64 = batches.iter().flatten().map(|d| d.stats.packets).sum();
        let writes = Writes::default();
        let config = CacheConfig { inactive_timeout: Duration::ZERO, ..CacheConfig::default() };
        let mut p = pipeline(FakeSource::new(batches), config, &writes);
        for _ in 0..3 {
            p.cycle(true).unwrap();
        }
        p.finish().unwrap();
        assert_eq!(p.source.drains(), 5, "three cycles and shutdown's two drains");
        let writes = writes.0.borrow();
        assert_eq!(writes.len(), 6, "one write a cycle, shutdown's drains included, and the last: {writes:?}");
        assert_eq!(writes.iter().map(|w| w.1).sum::<u64>(), drained);
        assert_eq!(p.cache.stats().packets, drained);
        assert!(p.cache.is_empty());
    }

    /// A shutdown that ends more flows than a chunk hands them to the
    /// outputs a chunk at a time, every one of them.
    #[test]
    fn a_shutdown_exports_many_flows_a_chunk_at_a_time() {
        let n = 2 * EXPORT_CHUNK + 100;
        let writes = Writes::default();
        let source = FakeSource::new([deltas(0, u32::try_from(n).unwrap(), 1)]);
        let mut p = pipeline(source, CacheConfig::default(), &writes);
        p.cycle(false).unwrap();
        assert_eq!(p.cache.len(), n);
        p.finish().unwrap();
        let sizes: Vec<usize> = writes.0.borrow().iter().map(|w| w.0).collect();
        assert_eq!(sizes.iter().sum::<usize>(), n, "{sizes:?}");
        assert_eq!(sizes, [0, 0, 0, EXPORT_CHUNK, EXPORT_CHUNK, 100], "the ingest, two drains, three chunks");
        assert!(p.records.capacity() <= EXPORT_CHUNK, "{}", p.records.capacity());
    }
}
