//! The replay loop: packets from the captures in time order, classified by
//! the kernel's code, gathered as the kernel's flow map gathers them for a
//! poll interval of the packets' own time, then into the same flow cache
//! and outputs `vxflow run` uses. Every time is the packets' time: first
//! and last seen, the active, inactive and TCP-end timeouts, the exported
//! flowStart and flowEnd. At the end of the captures every flow left is
//! exported as a forced end.

use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
    time::{Duration, Instant},
};

use vxflow_common::{FlowKey, FlowStats};

use super::{
    capture::{Capture, CaptureError, CapturedPacket},
    classify::{Captured, Classified, Settings, classify},
};
use crate::{
    cache::FlowCache,
    clock::WallClock,
    config::RuntimeConfig,
    drain::FlowDelta,
    export::{ExportContext, Outputs, RecordSink as _, options::Losses},
    ifaces::NameCache,
    metadata::{IpMap, MetadataConfig, file::FileError, file::FileSource},
    record::FlowRecord,
};

/// How fast packets are replayed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Speed {
    /// As fast as they can be read.
    AsFast,
    /// At this many times the pace they were captured at (1: real time).
    Times(f64),
}

impl std::str::FromStr for Speed {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?}: want as-fast, realtime or a factor such as 10x");
        match s {
            "as-fast" => Ok(Speed::AsFast),
            "realtime" => Ok(Speed::Times(1.0)),
            _ => {
                let factor: f64 = s.strip_suffix('x').ok_or_else(bad)?.parse().map_err(|_| bad())?;
                if factor.is_finite() && (0.001..=1_000_000.0).contains(&factor) {
                    Ok(Speed::Times(factor))
                } else {
                    Err(format!("{s:?}: a factor from 0.001x to 1000000x"))
                }
            }
        }
    }
}

/// What a replay did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub captures: usize,
    /// Packets read from the captures.
    pub packets: u64,
    /// Packets in a flow.
    pub accounted: u64,
    /// Packets in no flow, by why (`non_ip_packets`, `malformed_packets`).
    pub skipped: BTreeMap<&'static str, u64>,
    /// Packets stamped earlier than one before them (in one capture or
    /// across several): replayed at the later time.
    pub backwards: u64,
    /// Packets with no time of their own (pcapng simple packets): replayed
    /// at the time before them.
    pub untimed: u64,
    pub records: u64,
    /// Of the records, those of flows still open when the captures ended,
    /// exported then as forced ends.
    pub at_end: u64,
    /// Every datapath counter the packets added to, as `ctl stats` names them.
    pub counters: BTreeMap<&'static str, u64>,
    /// The first and last packet's time, nanoseconds since the epoch.
    pub first_ns: Option<u64>,
    pub last_ns: Option<u64>,
    /// A capture that ended early (cut short, malformed): the packets
    /// before stand.
    pub stopped: Option<String>,
}

impl Summary {
    /// The one line printed at the end.
    #[must_use]
    pub fn line(&self) -> String {
        let skipped: Vec<String> = self.skipped.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let span = match (self.first_ns, self.last_ns) {
            (Some(a), Some(b)) => format!(", {:.3} s of capture", Duration::from_nanos(b - a).as_secs_f64()),
            _ => String::new(),
        };
        format!(
            "replayed {} captures: {} packets read, {} accounted, skipped: {}; {} backwards in time, {} without a time; {} records ({} at end of file, as forced ends){span}{}",
            self.captures,
            self.packets,
            self.accounted,
            if skipped.is_empty() { "none".to_owned() } else { skipped.join(", ") },
            self.backwards,
            self.untimed,
            self.records,
            self.at_end,
            self.stopped.as_ref().map_or(String::new(), |s| format!("; stopped early: {s}")),
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error("opening the outputs")]
    Outputs(#[source] crate::export::OpenError),
    #[error("writing records")]
    Write(#[source] std::io::Error),
    #[error("the metadata file")]
    Names(#[source] FileError),
}

/// The captures, merged in time order: the earliest next packet first.
struct Merged {
    captures: Vec<Capture>,
    heads: Vec<Option<CapturedPacket>>,
    /// The first error a capture gave; it reads no further.
    stopped: Option<CaptureError>,
}

impl Merged {
    fn new(mut captures: Vec<Capture>) -> Self {
        let mut stopped = None;
        let heads = captures.iter_mut().map(|c| next(c, &mut stopped)).collect();
        Self { captures, heads, stopped }
    }

    /// The next packet, and which capture it came from.
    fn pop(&mut self) -> Option<(usize, CapturedPacket)> {
        let i = (0..self.heads.len())
            .filter(|&i| self.heads[i].is_some())
            .min_by_key(|&i| self.heads[i].as_ref().map_or(i128::MAX, |p| p.unix_ns))?;
        let packet = self.heads[i].take()?;
        self.heads[i] = next(&mut self.captures[i], &mut self.stopped);
        Some((i, packet))
    }
}

fn next(capture: &mut Capture, stopped: &mut Option<CaptureError>) -> Option<CapturedPacket> {
    match capture.next_packet() {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %crate::error_chain(&e), "a capture ends early; the packets before it stand");
            stopped.get_or_insert(e);
            None
        }
    }
}

/// Replays `paths` under `config` (its cache timeouts, tunnels, outputs),
/// at `speed`; with `trusted`, tunnel headers are decoded as on a node's
/// underlay, else counted as the plain flows they carry.
///
/// # Errors
/// When a capture cannot be opened, or the outputs not opened or written.
pub fn replay(config: &RuntimeConfig, paths: &[PathBuf], speed: Speed, trusted: bool) -> Result<Summary, ReplayError> {
    let captures: Vec<Capture> = paths.iter().map(|p| Capture::open(p)).collect::<Result<_, _>>()?;
    let metadata = names(&config.metadata)?;
    let mut outputs = Outputs::open(&config.outputs()).map_err(ReplayError::Outputs)?;
    let mut run = Run {
        cache: FlowCache::new(config.cache.clone()),
        settings: Settings::new(&config.load.tunnels, trusted),
        pending: HashMap::new(),
        records: Vec::new(),
        names: NameCache::default(),
        vni_meanings: config.vni_meaning.resolve(std::iter::empty(), false),
        metadata,
        summary: Summary { captures: captures.len(), ..Summary::default() },
    };
    let mut merged = Merged::new(captures);
    let poll = u64::try_from(config.poll_interval.as_nanos()).unwrap_or(u64::MAX).max(1);
    let (mut now, mut tick_end) = (0u64, 0u64);
    let started = Instant::now();
    let mut interfaces: HashMap<(usize, u32), u32> = HashMap::new();
    while let Some((from, packet)) = merged.pop() {
        let at = if packet.unix_ns == i128::MIN {
            run.summary.untimed += 1;
            now
        } else {
            let t = u64::try_from(packet.unix_ns.max(0)).unwrap_or(u64::MAX);
            if t < now {
                run.summary.backwards += 1;
                now
            } else {
                t
            }
        };
        now = at;
        let first = *run.summary.first_ns.get_or_insert(now);
        if let Speed::Times(factor) = speed {
            let due = Duration::from_nanos(now - first).div_f64(factor);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        if now >= tick_end {
            if tick_end != 0 {
                run.cycle(now, &mut outputs, false)?;
            }
            tick_end = now.saturating_add(poll);
        }
        // An interface of the capture: numbered in order of appearance from 1.
        let next_index = u32::try_from(interfaces.len() + 1).unwrap_or(u32::MAX);
        let ifindex = *interfaces.entry((from, packet.interface)).or_insert_with(|| {
            // The capture's own name for the interface (pcapng's if_name),
            // else the file's, numbered past the first.
            let capture = &merged.captures[from];
            let name = match capture.interface_name(packet.interface) {
                Some(n) => format!("{}:{n}", capture.name()),
                None if packet.interface == 0 => capture.name().to_owned(),
                None => format!("{}#{}", capture.name(), packet.interface),
            };
            run.names.remember(next_index, &name);
            next_index
        });
        run.packet(&packet, ifindex, now);
    }
    run.summary.last_ns = run.summary.first_ns.map(|_| now);
    run.cycle(now, &mut outputs, false)?;
    run.finish(&mut outputs)?;
    run.summary.stopped = merged.stopped.map(|e| crate::error_chain(&e));
    Ok(run.summary)
}

/// The names a replay gives addresses: the metadata file's, held for every
/// packet time (from 0), since a file says who an address is, not since
/// when. The live sources are left out: they know today's pods.
fn names(config: &MetadataConfig) -> Result<IpMap, ReplayError> {
    if config.cri.is_some() || config.kubernetes.is_some() {
        tracing::info!(
            "replay names addresses from the metadata file only: the container runtime and the Kubernetes API \
             know today's pods, not those of the capture"
        );
    }
    let mut map = IpMap::new(config.grace);
    if let Some(path) = &config.file {
        let (owners, networks) =
            FileSource::new(path.clone()).refresh(&mut map, 0, true).map_err(ReplayError::Names)?.unwrap_or_default();
        tracing::info!(path = %path.display(), owners, networks, "metadata file read; its names hold at every packet time");
    }
    Ok(map)
}

/// The replay's state between packets.
struct Run {
    cache: FlowCache,
    settings: Settings,
    /// The flows of this poll interval, as the kernel's map holds them.
    pending: HashMap<FlowKey, FlowStats>,
    records: Vec<FlowRecord>,
    names: NameCache,
    vni_meanings: crate::tunnel_ids::VniMeanings,
    metadata: IpMap,
    summary: Summary,
}

impl Run {
    fn packet(&mut self, p: &CapturedPacket, ifindex: u32, now: u64) {
        self.summary.packets += 1;
        let captured =
            Captured { frame: &p.frame, len: p.wire_len, vlan: None, ifindex, gso: (0, 0), settings: &self.settings };
        let classified = classify(&captured, p.direction);
        let counters = &mut self.summary.counters;
        classified.tally(|c, n| *counters.entry(c.name()).or_default() += n);
        match classified {
            Classified::Flow(key, counted) => {
                self.summary.accounted += counted.wire.packets;
                let s = self.pending.entry(key).or_insert(FlowStats { first_seen_ns: now, ..FlowStats::default() });
                s.packets += counted.wire.packets;
                s.bytes += counted.wire.bytes;
                s.outer_bytes += counted.wire.outer_bytes;
                s.tcp_flags |= counted.tcp_flags;
                s.last_seen_ns = now;
            }
            Classified::NoFlow { bucket, .. } => {
                *self.summary.skipped.entry(bucket.name()).or_default() += 1;
            }
        }
    }

    /// The interval's flows into the cache at `now`, what is due out.
    fn cycle(&mut self, now: u64, outputs: &mut Outputs, last: bool) -> Result<(), ReplayError> {
        let deltas: Vec<FlowDelta> = self.pending.drain().map(|(key, stats)| FlowDelta { key, stats }).collect();
        self.cache.ingest(&deltas, now, &mut self.records);
        self.cache.expire(now, &mut self.records);
        self.export(outputs, last)
    }

    fn export(&mut self, outputs: &mut Outputs, last: bool) -> Result<(), ReplayError> {
        self.summary.records += self.records.len() as u64;
        let mut ctx = ExportContext {
            // Times are the packets': nanoseconds since the epoch already.
            clock: WallClock::with_offset_ns(0),
            names: &mut self.names,
            ignored: Losses::default(),
            last,
            sampling: 1,
            vni_meanings: &self.vni_meanings,
            metadata: &self.metadata,
        };
        let result = outputs.write(&self.records, &mut ctx).map_err(ReplayError::Write);
        self.records.clear();
        result
    }

    /// Every flow left, as a forced end (the captures ended), and the
    /// outputs closed.
    fn finish(&mut self, outputs: &mut Outputs) -> Result<(), ReplayError> {
        self.cache.flush(&mut self.records);
        self.summary.at_end = self.records.len() as u64;
        let result = self.export(outputs, true);
        outputs.close();
        result
    }
}
