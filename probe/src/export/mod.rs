//! Outputs for expired flow records: JSON lines, and IPFIX, `NetFlow` v9
//! and v5 collectors over UDP or (IPFIX) TCP.

pub mod collector;
pub mod fields;
pub mod ipfix;
pub mod json;
pub mod message;
pub mod netflow5;
pub mod netflow9;
pub mod options;
pub mod shape;
pub mod sink_stats;
pub mod tcp;
#[cfg(test)]
mod testing;
pub mod throttle;
pub mod udp;
pub mod uptime;

use crate::{
    clock::WallClock,
    config::{JsonTarget, RuntimeConfig},
    ifaces::NameCache,
    record::FlowRecord,
};

/// What every output needs besides the records: wall-clock conversion,
/// interface names, and what the options records report.
pub struct ExportContext<'a> {
    pub clock: WallClock,
    pub names: &'a mut NameCache,
    /// Packets the datapath saw but could not account (metering-process
    /// reliability).
    pub ignored: options::Losses,
    /// The exporter's last export: options records go out once more, with
    /// the final counts.
    pub last: bool,
}

impl ExportContext<'_> {
    /// The options values every collector shares; each adds its own
    /// `not_sent`.
    #[must_use]
    pub fn option_values(&self, not_sent: options::Losses) -> options::OptionValues {
        options::OptionValues { not_sent, ignored: self.ignored, interfaces: self.names.known() }
    }
}

/// A destination for flow records.
pub trait RecordSink {
    /// Writes a batch of records, possibly empty (a chance to refresh
    /// templates).
    ///
    /// # Errors
    /// When the destination fails; the caller reports it and goes on.
    fn write(&mut self, records: &[FlowRecord], ctx: &mut ExportContext<'_>) -> std::io::Result<()>;

    /// Stops the sink, sending what it still holds if it can; called once,
    /// after the last `write`.
    fn close(&mut self) {}

    /// Logs what this sink did, at shutdown.
    fn log_stats(&self) {}

    /// The sockets this sink sends from, so the datapath leaves the probe's
    /// own export traffic out.
    fn own_sockets(&self) -> Vec<OwnSocket> {
        Vec::new()
    }
}

/// A socket of the exporter: protocol number and both ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OwnSocket {
    pub protocol: u8,
    pub local: std::net::SocketAddr,
    pub remote: std::net::SocketAddr,
}

/// Every sink gets every record; one failing does not stop the others.
#[derive(Default)]
pub struct Fanout {
    sinks: Vec<Box<dyn RecordSink>>,
}

impl Fanout {
    pub fn push(&mut self, sink: Box<dyn RecordSink>) {
        self.sinks.push(sink);
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

impl RecordSink for Fanout {
    fn write(&mut self, records: &[FlowRecord], ctx: &mut ExportContext<'_>) -> std::io::Result<()> {
        let mut first_error = None;
        for sink in &mut self.sinks {
            if let Err(e) = sink.write(records, ctx) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn close(&mut self) {
        for sink in &mut self.sinks {
            sink.close();
        }
    }

    fn log_stats(&self) {
        for sink in &self.sinks {
            sink.log_stats();
        }
    }

    fn own_sockets(&self) -> Vec<OwnSocket> {
        self.sinks.iter().flat_map(|s| s.own_sockets()).collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("opening JSON output {path}")]
    Json {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Sink(#[from] udp::SinkError),
}

/// Opens every output the configuration names.
///
/// # Errors
/// When an output cannot be opened.
pub fn open_sinks(config: &RuntimeConfig) -> Result<Fanout, OpenError> {
    let mut fanout = Fanout::default();
    match &config.json {
        Some(JsonTarget::Stdout) => fanout.push(Box::new(json::JsonLines::stdout())),
        Some(JsonTarget::File(path)) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|source| OpenError::Json { path: path.display().to_string(), source })?;
            fanout.push(Box::new(json::JsonLines::new(file)));
        }
        None => {}
    }
    for c in &config.collectors {
        let domain = config.observation_domain_id;
        match c.transport {
            collector::Transport::Udp => fanout.push(Box::new(udp::UdpSink::new(c.clone(), domain)?)),
            collector::Transport::Tcp => fanout.push(Box::new(tcp::TcpSink::new(c.clone(), domain)?)),
        }
    }
    Ok(fanout)
}
