//! The `vxflow run` loop: drain the kernel every poll interval, merge into the
//! cache, export what expired; reload the configuration on SIGHUP; on
//! SIGTERM/SIGINT detach, drain to the last packet, export every cached flow,
//! and return.

mod early_drain;
mod interfaces;
mod pipeline;
mod reload;
mod report;
mod summary;
mod tally;

use std::{sync::Arc, time::Duration};

use tokio::{
    signal::unix::{Signal, SignalKind, signal},
    sync::mpsc,
    time::{Interval, MissedTickBehavior, interval},
};

use self::pipeline::Pipeline;
use crate::{
    cache::FlowCache,
    config::{ConfigSource, RuntimeConfig},
    control::{self, Query},
    datapath::{self, Datapath, LoadError, kernel::KernelMaps},
    drain::DeltaSource as _,
    export::{OpenError, Outputs, RecordSink as _},
    ifaces::NameCache,
    ifaces::netlink::{Discovery, DiscoveryError},
    metrics::{self, server::Health},
    notify::Notifier,
};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error(transparent)]
    Control(#[from] control::server::ControlError),
    #[error(transparent)]
    Metrics(#[from] metrics::server::MetricsError),
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    #[error("watching the fallback ring for a full flow map")]
    Ring(#[source] std::io::Error),
    #[error("installing the signal handler")]
    Signal(#[source] std::io::Error),
    #[error("writing flow records")]
    Output(#[source] std::io::Error),
}

/// What the loop moved, for the final summary and for tests.
#[derive(Debug, Default, Clone)]
pub struct Totals {
    pub drains: u64,
    /// Drains before the poll interval was up, because the flow map filled.
    pub early_drains: u64,
    pub drain_errors: u64,
    /// Packets and bytes taken from the kernel (map and fallback ring).
    pub drained_packets: u64,
    pub drained_bytes: u64,
}

/// Everything the running daemon owns.
struct Daemon {
    source: ConfigSource,
    config: RuntimeConfig,
    datapath: Datapath,
    pipeline: Pipeline<KernelMaps>,
    notifier: Notifier,
    started: std::time::Instant,
    interfaces: interfaces::InterfaceState,
}

/// The signals the loop answers.
struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    fn install() -> Result<Self, DaemonError> {
        let on = |kind| signal(kind).map_err(DaemonError::Signal);
        Ok(Self {
            term: on(SignalKind::terminate())?,
            int: on(SignalKind::interrupt())?,
            hup: on(SignalKind::hangup())?,
        })
    }
}

/// Runs until SIGTERM or SIGINT. `config` is `source` as loaded at start;
/// SIGHUP loads `source` again.
///
/// # Errors
/// When the programs cannot be loaded or attached, an output cannot be
/// opened, or the output fails.
pub async fn run(source: ConfigSource, config: RuntimeConfig) -> Result<Totals, DaemonError> {
    let mut signals = Signals::install()?;
    let notifier = Notifier::from_env();
    crate::datapath::raise_file_limit();
    // The endpoints first: a port or socket in use fails before the kernel
    // is touched.
    let (query_sender, mut queries) = mpsc::channel::<Query>(16);
    let health = Arc::new(Health::new(config.poll_interval));
    let _control =
        config.control.as_deref().map(|path| control::server::serve(path, query_sender.clone())).transpose()?;
    if let Some(addr) = config.metrics {
        metrics::server::serve(addr, query_sender.clone(), Arc::clone(&health)).await?;
    }
    drop(query_sender);
    let mut daemon = Daemon::start(source, config, notifier)?;
    let mut discovery = Discovery::open()?;
    daemon.rescan(&discovery).await;
    daemon.log_running();
    health.cycle_done();
    let mut rescan = interval_after(RESCAN_INTERVAL);
    let mut tick = interval_after(daemon.config.poll_interval);
    let mut keepalive = daemon.notifier.keepalive_interval().map(interval);
    let mut early = early_drain::EarlyDrain::watch(daemon.pipeline.source.fallback_fd()).map_err(DaemonError::Ring)?;
    daemon.notifier.ready(&daemon.status());
    let outcome = loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = daemon.pipeline.cycle(true) {
                    break Err(e);
                }
                health.cycle_done();
            }
            drained = early.run(|| daemon.pipeline.cycle(false)) => {
                match drained {
                    Ok(()) => {
                        daemon.pipeline.totals.early_drains += 1;
                        tracing::debug!(early_drains = daemon.pipeline.totals.early_drains, "the flow map filled up: drained early");
                    }
                    Err(early_drain::EarlyDrainError::Drain(e)) => break Err(e),
                    Err(early_drain::EarlyDrainError::Ring(e)) => break Err(DaemonError::Ring(e)),
                }
            }
            Some((request, reply)) = queries.recv() => {
                let answer = daemon.answer(request);
                // The asker may have given up; nothing to do then.
                let _ = reply.send(answer);
            }
            Some(()) = async { match keepalive.as_mut() { Some(k) => { k.tick().await; Some(()) } None => None } } => {
                daemon.notifier.watchdog();
            }
            () = discovery.changed() => daemon.rescan(&discovery).await,
            _ = rescan.tick() => daemon.rescan(&discovery).await,
            _ = signals.hup.recv() => {
                let poll = daemon.config.poll_interval;
                if daemon.reload_and_report() {
                    daemon.rescan(&discovery).await;
                }
                daemon.notifier.ready(&daemon.status());
                if daemon.config.poll_interval != poll {
                    tick = interval_after(daemon.config.poll_interval);
                    health.set_poll_interval(daemon.config.poll_interval);
                }
            }
            _ = signals.term.recv() => { tracing::info!(signal = "SIGTERM", "shutting down"); break Ok(()); }
            _ = signals.int.recv() => { tracing::info!(signal = "SIGINT", "shutting down"); break Ok(()); }
        }
    };
    daemon.notifier.stopping();
    daemon.stop(outcome)
}

/// A rescan of the node's interfaces this often, besides the one each
/// netlink change triggers: a notification lost to a full socket buffer is
/// made good here.
const RESCAN_INTERVAL: Duration = Duration::from_secs(30);

/// A timer whose first tick is one `period` from now.
fn interval_after(period: Duration) -> Interval {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tick
}

impl Daemon {
    fn start(source: ConfigSource, config: RuntimeConfig, notifier: Notifier) -> Result<Self, DaemonError> {
        let outputs = Outputs::open(&config.outputs())?;
        let (mut datapath, maps) = datapath::load(&config.load)?;
        // Before the first export: the probe's own export traffic is not a flow.
        datapath.exclude_own_sockets(&outputs.own_sockets())?;
        let mut pipeline = Pipeline::new(maps, FlowCache::new(config.cache.clone()), outputs, NameCache::default());
        pipeline.sampling = config.load.sampling;
        // The table's ports until the first rescan adds the devices'.
        pipeline.vni_meanings = config.vni_meaning.resolve(std::iter::empty(), false);
        pipeline.metadata = crate::metadata::Metadata::new(&config.metadata);
        pipeline.pod_stats = config
            .metadata
            .pod_metrics
            .then(|| crate::metadata::pod_stats::PodStats::new(config.metadata.pod_metrics_max));
        let interfaces = interfaces::InterfaceState::new(&config.load.tunnels);
        Ok(Self { source, config, datapath, pipeline, notifier, started: std::time::Instant::now(), interfaces })
    }

    /// The start-up line, once the first interfaces are attached.
    fn log_running(&self) {
        let c = &self.config;
        tracing::info!(
            interfaces = ?c.interfaces,
            attached = ?self.datapath.interfaces(),
            vxlan_ports = ?self.interfaces.tunnels.vxlan_ports(),
            geneve_ports = ?self.interfaces.tunnels.geneve_ports(),
            ipip = self.interfaces.tunnels.ipip(),
            gre = self.interfaces.tunnels.gre(),
            per_interface_records = !c.cache.dedup,
            poll_interval = %humantime::format_duration(c.poll_interval),
            active_timeout = %humantime::format_duration(c.cache.active_timeout),
            inactive_timeout = %humantime::format_duration(c.cache.inactive_timeout),
            max_flows = c.cache.max_flows,
            sampling = c.load.sampling,
            flow_map_entries = c.load.flow_entries,
            kernel_bytes_per_flow = self.pipeline.source.generation_memory().map(|m| m.bytes_per_flow()),
            "vxflow running"
        );
    }

    /// One line for `systemctl status`.
    fn status(&self) -> String {
        format!(
            "watching {} interface(s), exporting to {} output(s)",
            self.datapath.interfaces().len(),
            self.pipeline.outputs.len()
        )
    }

    /// Detaches, drains to the last packet, exports every cached flow.
    fn stop(mut self, outcome: Result<(), DaemonError>) -> Result<Totals, DaemonError> {
        self.datapath.detach_all();
        let finished = self.pipeline.finish();
        let p = &self.pipeline;
        summary::log_summary(&p.source.counters().unwrap_or_default(), &p.totals, &p.cache);
        p.outputs.log_stats();
        outcome.and(finished).map(|()| self.pipeline.totals.clone())
    }
}
