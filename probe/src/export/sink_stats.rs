//! What a collector sink did, shared by the UDP and TCP sinks: sent and
//! failed records, the losses the reliability options report, and the
//! shutdown log line.

use std::fmt::Display;

use super::{message::Encoded, options::Losses};

/// Counts of one collector's export, for logs and options records.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SinkStats {
    pub records_sent: u64,
    pub messages_sent: u64,
    pub send_errors: u64,
    /// Records in messages that never reached the collector (refused by the
    /// socket, or past a full TCP buffer), with their packets and octets and
    /// when the first and last were lost.
    pub not_sent: Losses,
    /// Records the protocol cannot carry (IPv6 in NetFlow v5).
    pub records_not_carried: u64,
}

impl SinkStats {
    /// Counts message `m` as sent.
    pub fn count_sent(&mut self, m: &Encoded) {
        self.messages_sent += 1;
        self.records_sent += u64::from(m.records);
    }

    /// Counts message `m` as not sent, lost at `at_ms` (Unix ms).
    pub fn count_not_sent(&mut self, m: &Encoded, at_ms: u64) {
        self.not_sent.add(u64::from(m.records), m.packets, m.octets, at_ms);
    }

    /// The `export totals` line, at shutdown.
    pub fn log(&self, collector: &dyn Display) {
        tracing::info!(
            collector = %collector,
            records_sent = self.records_sent,
            records_failed = self.not_sent.flows,
            packets_failed = self.not_sent.packets,
            octets_failed = self.not_sent.octets,
            messages_sent = self.messages_sent,
            send_errors = self.send_errors,
            records_not_carried = self.records_not_carried,
            "export totals"
        );
    }
}
