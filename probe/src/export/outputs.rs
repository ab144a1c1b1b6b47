//! The set of outputs the configuration names, each kept under its identity
//! so a reload keeps the outputs it still names (same socket, sequence
//! numbers and template state: a collector sees no gap) and opens or closes
//! only what changed.

use std::fmt;

use vxflow_common::user::SocketTuple;

use super::{
    ExportContext, OpenError, RecordSink, collector::Collector, collector::Transport, json, sink_stats::SinkStats, tcp,
    udp,
};
use crate::record::FlowRecord;

/// Where JSON lines are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonTarget {
    Stdout,
    File(std::path::PathBuf),
}

/// The outputs a configuration names: what of it the output set reads.
#[derive(Clone, Copy, Debug)]
pub struct OutputSpec<'a> {
    pub json: Option<&'a JsonTarget>,
    pub collectors: &'a [Collector],
    /// The observation domain (source id) every collector's stream states.
    pub domain: u32,
}

/// What makes an output the same output across a reload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutputId {
    Json(JsonTarget),
    Collector { collector: Collector, domain: u32 },
}

impl fmt::Display for OutputId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutputId::Json(JsonTarget::Stdout) => f.write_str("json:stdout"),
            OutputId::Json(JsonTarget::File(path)) => write!(f, "json:{}", path.display()),
            OutputId::Collector { collector, .. } => write!(f, "{collector}"),
        }
    }
}

/// An output a reload no longer names, to be closed by the caller.
pub type Retired = (OutputId, Box<dyn RecordSink>);

/// What [`Outputs::reconcile`] changed.
pub struct Reconciled {
    /// Outputs opened, in configuration order.
    pub opened: Vec<OutputId>,
    /// Outputs no longer named, for the caller to close.
    pub retired: Vec<Retired>,
}

/// Every output the configuration names. Every output gets every record;
/// one failing does not stop the others.
#[derive(Default)]
pub struct Outputs {
    sinks: Vec<(OutputId, Box<dyn RecordSink>)>,
}

/// One collector's export counts, by its name.
#[derive(Clone, Debug)]
pub struct CollectorStats {
    pub name: String,
    pub stats: SinkStats,
}

impl Outputs {
    /// One sink standing for a JSON output on stdout (the daemon's tests).
    #[cfg(test)]
    pub(crate) fn with_sink(sink: Box<dyn RecordSink>) -> Self {
        Self { sinks: vec![(OutputId::Json(JsonTarget::Stdout), sink)] }
    }

    /// Opens every output `spec` names.
    ///
    /// # Errors
    /// When an output cannot be opened.
    pub fn open(spec: &OutputSpec<'_>) -> Result<Self, OpenError> {
        let mut outputs = Self::default();
        let changed = outputs.reconcile(spec)?;
        debug_assert!(changed.retired.is_empty());
        Ok(outputs)
    }

    /// Makes the set match `spec`: keeps outputs it still names, opens the
    /// new ones, and hands back those it no longer names for the caller to
    /// close once it no longer needs them. On error nothing has changed.
    ///
    /// # Errors
    /// When a new output cannot be opened.
    pub fn reconcile(&mut self, spec: &OutputSpec<'_>) -> Result<Reconciled, OpenError> {
        let wanted = wanted(spec);
        let mut opened = Vec::new();
        for id in &wanted {
            if !self.sinks.iter().any(|(have, _)| have == id) {
                opened.push((id.clone(), open(id)?));
            }
        }
        let mut kept = Vec::with_capacity(wanted.len());
        let mut retired = Vec::new();
        for (id, sink) in self.sinks.drain(..) {
            if wanted.contains(&id) { kept.push((id, sink)) } else { retired.push((id, sink)) }
        }
        let opened_ids = opened.iter().map(|(id, _)| id.clone()).collect();
        kept.extend(opened);
        // In the configuration's order, so logs and metrics read as written.
        kept.sort_by_key(|(id, _)| wanted.iter().position(|w| w == id));
        self.sinks = kept;
        Ok(Reconciled { opened: opened_ids, retired })
    }

    /// Export counts of each collector.
    #[must_use]
    pub fn collector_stats(&self) -> Vec<CollectorStats> {
        self.sinks
            .iter()
            .filter_map(|(id, sink)| sink.stats().map(|stats| CollectorStats { name: id.to_string(), stats }))
            .collect()
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.sinks.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.sinks.is_empty()
    }
}

/// The outputs `spec` names, JSON first.
fn wanted(spec: &OutputSpec<'_>) -> Vec<OutputId> {
    let json = spec.json.cloned().map(OutputId::Json);
    let collectors = spec.collectors.iter().map(|c| OutputId::Collector { collector: c.clone(), domain: spec.domain });
    json.into_iter().chain(collectors).collect()
}

fn open(id: &OutputId) -> Result<Box<dyn RecordSink>, OpenError> {
    Ok(match id {
        OutputId::Json(JsonTarget::Stdout) => Box::new(json::JsonLines::stdout()),
        OutputId::Json(JsonTarget::File(path)) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|source| OpenError::Json { path: path.display().to_string(), source })?;
            Box::new(json::JsonLines::new(file))
        }
        OutputId::Collector { collector, domain } => match collector.transport {
            Transport::Udp => Box::new(udp::UdpSink::new(collector.clone(), *domain)?),
            Transport::Tcp => Box::new(tcp::TcpSink::new(collector.clone(), *domain)?),
        },
    })
}

impl RecordSink for Outputs {
    fn write(&mut self, records: &[FlowRecord], ctx: &mut ExportContext<'_>) -> std::io::Result<()> {
        let mut first_error = None;
        for (_, sink) in &mut self.sinks {
            if let Err(e) = sink.write(records, ctx) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn close(&mut self) {
        for (_, sink) in &mut self.sinks {
            sink.begin_close();
        }
        for (_, sink) in &mut self.sinks {
            sink.close();
        }
    }

    fn log_stats(&self) {
        for (_, sink) in &self.sinks {
            sink.log_stats();
        }
    }

    fn own_sockets(&self) -> Vec<SocketTuple> {
        self.sinks.iter().flat_map(|(_, s)| s.own_sockets()).collect()
    }
}
