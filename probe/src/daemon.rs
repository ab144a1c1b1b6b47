//! The `vxflow run` loop: drain the kernel every poll interval, merge into the
//! cache, export what expired; on SIGTERM/SIGINT detach, drain to the last
//! packet, export every cached flow, and return.

use tokio::{
    signal::unix::{SignalKind, signal},
    time::{MissedTickBehavior, interval},
};
use vxflow_common::Counter;

use crate::{
    cache::FlowCache,
    clock::{WallClock, boot_ns},
    config::RuntimeConfig,
    drain::{CounterSnapshot, DeltaSource, FlowDelta},
    export::{ExportContext, RecordSink, options::Losses},
    ifaces::NameCache,
    loader::{self, LoadError},
    pressure::PressureWatch,
    record::{EndReason, FlowRecord},
};

/// Most one fallback or loss report per this long; each carries the counts
/// since the previous one.
const PRESSURE_REPORT_INTERVAL: std::time::Duration = std::time::Duration::from_mins(1);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("installing the signal handler")]
    Signal(#[source] std::io::Error),
    #[error("writing flow records")]
    Output(#[source] std::io::Error),
}

/// What the loop moved, for the final summary and for tests.
#[derive(Debug, Default, Clone)]
pub struct Totals {
    pub drains: u64,
    pub drain_errors: u64,
    /// Packets and bytes taken from the kernel (map and fallback ring).
    pub drained_packets: u64,
    pub drained_bytes: u64,
}

/// The state one drain cycle works on.
struct Pipeline<'a, S: DeltaSource> {
    source: S,
    cache: FlowCache,
    sink: &'a mut dyn RecordSink,
    names: NameCache,
    deltas: Vec<FlowDelta>,
    records: Vec<FlowRecord>,
    totals: Totals,
    pressure: PressureWatch,
    /// Packets the datapath could not account, as the options records say.
    ignored: Losses,
}

impl<S: DeltaSource> Pipeline<'_, S> {
    /// Drains the source into the cache; with `expire`, also exports what is due.
    fn cycle(&mut self, expire: bool) -> Result<(), DaemonError> {
        self.deltas.clear();
        let started = std::time::Instant::now();
        if let Err(error) = self.source.drain(&mut self.deltas) {
            // What was taken is in `deltas` and is used; the rest waits.
            self.totals.drain_errors += 1;
            tracing::error!(error = %crate::error_chain(&error), "drain failed; retrying next interval");
        }
        self.totals.drains += 1;
        self.report_pressure();
        for d in &self.deltas {
            self.totals.drained_packets += d.stats.packets;
            self.totals.drained_bytes += d.stats.bytes;
        }
        let now = boot_ns();
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

    /// Tells the operator when packets took the fallback ring or were lost.
    fn report_pressure(&mut self) {
        let Ok(counters) = self.source.counters() else {
            return;
        };
        let lost = counters.get(Counter::Lost).saturating_sub(self.ignored.packets);
        let lost_bytes = counters.get(Counter::LostBytes).saturating_sub(self.ignored.octets);
        self.ignored.add(0, lost, lost_bytes, WallClock::now().to_unix_ms(boot_ns()));
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
        let mut ctx = ExportContext { clock: WallClock::now(), names: &mut self.names, ignored: self.ignored, last };
        let result = self.sink.write(&self.records, &mut ctx).map_err(DaemonError::Output);
        self.records.clear();
        result
    }

    /// After the programs are detached: two drains, so both generations are
    /// empty (the flip's RCU wait covers programs still in flight at detach),
    /// then every cached flow is exported.
    fn finish(&mut self) -> Result<(), DaemonError> {
        self.cycle(false)?;
        self.cycle(false)?;
        self.cache.flush(&mut self.records);
        let exported = self.export(true);
        self.sink.close();
        exported
    }
}

/// Runs until SIGTERM or SIGINT, writing records to `sink`.
///
/// # Errors
/// When the programs cannot be loaded or attached, or the output fails.
pub async fn run(config: RuntimeConfig, sink: &mut dyn RecordSink) -> Result<Totals, DaemonError> {
    let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Signal)?;
    let (mut datapath, maps) = loader::load_and_attach(&config.load, &config.interfaces)?;
    // Before the first export: the probe's own export traffic is not a flow.
    datapath.exclude_own_sockets(&sink.own_sockets())?;
    let memory = maps.generation_memory();
    tracing::info!(
        interfaces = ?config.interfaces,
        vxlan_ports = ?config.load.vxlan_ports,
        poll_interval = %humantime::format_duration(config.poll_interval),
        active_timeout = %humantime::format_duration(config.cache.active_timeout),
        inactive_timeout = %humantime::format_duration(config.cache.inactive_timeout),
        max_flows = config.cache.max_flows,
        flow_map_entries = config.load.flow_entries,
        kernel_bytes_per_flow = memory.map(|m| m.bytes_per_flow()),
        "vxflow running"
    );
    let mut names = NameCache::default();
    for iface in &config.interfaces {
        if let Some(index) = crate::ifaces::index_of(iface) {
            names.remember(index, iface);
        }
    }
    let mut pipeline = Pipeline {
        source: maps,
        cache: FlowCache::new(config.cache.clone()),
        sink,
        names,
        deltas: Vec::new(),
        records: Vec::new(),
        totals: Totals::default(),
        pressure: PressureWatch::new(PRESSURE_REPORT_INTERVAL),
        ignored: Losses::default(),
    };
    let mut tick = interval(config.poll_interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tick.tick().await;
    let outcome = loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = pipeline.cycle(true) {
                    break Err(e);
                }
            }
            _ = term.recv() => { tracing::info!(signal = "SIGTERM", "shutting down"); break Ok(()); }
            _ = int.recv() => { tracing::info!(signal = "SIGINT", "shutting down"); break Ok(()); }
        }
    };
    datapath.detach_all();
    let finished = pipeline.finish();
    log_summary(&pipeline.source.counters().unwrap_or_default(), &pipeline.totals, &pipeline.cache);
    pipeline.sink.log_stats();
    outcome.and(finished).map(|()| pipeline.totals)
}

/// One line with every datapath counter and what the cache exported, so an
/// operator (and the tests) can check `seen = accounted + fallback + lost +
/// non_ip + malformed` and that every drained packet was exported.
fn log_summary(c: &CounterSnapshot, t: &Totals, cache: &FlowCache) {
    let s = cache.stats();
    tracing::info!(
        seen_packets = c.get(Counter::Seen),
        accounted_packets = c.get(Counter::Accounted),
        fallback_packets = c.get(Counter::Fallback),
        lost_packets = c.get(Counter::Lost),
        lost_bytes = c.get(Counter::LostBytes),
        non_ip_packets = c.get(Counter::NonIp),
        malformed_packets = c.get(Counter::Malformed),
        fragment_packets = c.get(Counter::Fragment),
        l4_truncated_packets = c.get(Counter::L4Truncated),
        ipv6_ext_limit_packets = c.get(Counter::Ipv6ExtLimit),
        vxlan_packets = c.get(Counter::Vxlan),
        vxlan_invalid_packets = c.get(Counter::VxlanInvalid),
        vxlan_inner_not_ip_packets = c.get(Counter::VxlanInnerNotIp),
        vlan_too_deep_packets = c.get(Counter::VlanTooDeep),
        self_export_packets = c.get(Counter::SelfExport),
        gso_skbs = c.get(Counter::GsoSkbs),
        drains = t.drains,
        drain_errors = t.drain_errors,
        drained_packets = t.drained_packets,
        exported_packets = s.packets,
        exported_bytes = s.bytes,
        flows_created = s.created,
        records_idle = s.records_for(EndReason::IdleTimeout),
        records_active = s.records_for(EndReason::ActiveTimeout),
        records_end_of_flow = s.records_for(EndReason::EndOfFlow),
        records_forced = s.records_for(EndReason::ForcedEnd),
        records_lack_of_resources = s.records_for(EndReason::LackOfResources),
        "final counters"
    );
}
