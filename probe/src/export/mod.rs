//! Outputs for expired flow records: JSON lines, and IPFIX, `NetFlow` v9
//! and v5 collectors over UDP or (IPFIX) TCP.

pub mod builder;
pub mod collector;
pub mod encode;
pub mod fields;
pub mod ipfix;
pub mod json;
pub mod message;
pub mod names;
pub mod netflow5;
pub mod netflow9;
pub mod options;
pub mod outputs;
pub mod pacer;
pub mod shape;
pub mod sink_stats;
pub mod tcp;
#[cfg(test)]
mod testing;
pub mod throttle;
pub mod udp;
pub mod uptime;

pub use outputs::Outputs;

use vxflow_common::user::SocketTuple;

use crate::{clock::WallClock, ifaces::NameCache, record::FlowRecord};

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
    /// 1 in this many IP packets is counted (`kernel.sampling`).
    pub sampling: u32,
    /// What VXLAN and Geneve VNIs mean, by port.
    pub vni_meanings: &'a crate::tunnel_ids::VniMeanings,
    /// Who held the records' addresses, and when.
    pub metadata: &'a crate::metadata::IpMap,
}

impl ExportContext<'_> {
    /// The options values every collector shares; each adds its own
    /// `not_sent`.
    #[must_use]
    pub fn option_values(&self, not_sent: options::Losses) -> options::OptionValues {
        options::OptionValues {
            not_sent,
            ignored: self.ignored,
            interfaces: self.names.known(),
            sampling: self.sampling,
        }
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

    /// Starts closing without waiting, so several sinks flush at once and
    /// shutdown takes the longest flush, not their sum; `close` follows.
    fn begin_close(&mut self) {}

    /// Stops the sink, sending what it still holds if it can; called once,
    /// after the last `write`.
    fn close(&mut self) {}

    /// Logs what this sink did, at shutdown.
    fn log_stats(&self) {}

    /// The sockets this sink sends from, so the datapath leaves the probe's
    /// own export traffic out.
    fn own_sockets(&self) -> Vec<SocketTuple> {
        Vec::new()
    }

    /// What a collector sink has sent and failed to send so far; `None`
    /// for outputs that are not collectors.
    fn stats(&self) -> Option<sink_stats::SinkStats> {
        None
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
    Sink(#[from] SinkError),
}

/// Why a collector's sink could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("collector {collector}: opening a socket")]
    Socket {
        collector: String,
        #[source]
        source: std::io::Error,
    },
    #[error("collector {collector}")]
    Encoder {
        collector: String,
        #[source]
        source: builder::EncodeError,
    },
}
