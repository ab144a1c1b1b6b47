//! Outputs for expired flow records. JSON lines now; IPFIX and `NetFlow`
//! collectors come as one folder per protocol.

pub mod ipfix;
pub mod json;

use crate::{clock::WallClock, ifaces::NameCache, record::FlowRecord};

/// What every output needs besides the records: wall-clock conversion and
/// interface names.
pub struct ExportContext<'a> {
    pub clock: WallClock,
    pub names: &'a mut NameCache,
}

/// A destination for flow records.
pub trait RecordSink {
    /// Writes a batch of records.
    ///
    /// # Errors
    /// When the destination fails; the caller reports it and goes on.
    fn write(&mut self, records: &[FlowRecord], ctx: &mut ExportContext<'_>) -> std::io::Result<()>;
}
