//! Sending IPFIX, NetFlow v9 or v5 over UDP to one collector: one socket with
//! a fixed source port, templates at start and every `template_refresh`, and
//! a count of every record that could not be sent or carried. A dead
//! collector costs a failed non-blocking send, never a stall.

use std::{
    io,
    net::UdpSocket,
    time::{Duration, Instant, SystemTime},
};

use super::{
    ExportContext, RecordSink, SinkError,
    collector::{Collector, unspecified_for},
    encode::{Batch, Encode, encoder},
    sink_stats::SinkStats,
    throttle::Throttle,
};
use crate::{clock::unix_ms, record::FlowRecord};

/// How often a failing collector is logged, at most.
const ERROR_LOG_INTERVAL: Duration = Duration::from_mins(1);

pub struct UdpSink {
    collector: Collector,
    socket: UdpSocket,
    encoder: Box<dyn Encode>,
    templates_sent: Option<Instant>,
    /// Spreads a burst of messages so the collector's buffer keeps up.
    pacer: super::pacer::Pacer,
    stats: SinkStats,
    error_log: Throttle,
}

impl UdpSink {
    /// Opens the socket (its source port stays for the process's life).
    ///
    /// # Errors
    /// When no socket can be opened or the MTU is too small.
    pub fn new(collector: Collector, domain_id: u32) -> Result<Self, SinkError> {
        let socket_err = |source| SinkError::Socket { collector: collector.name.clone(), source };
        let socket = UdpSocket::bind(unspecified_for(collector.address)).map_err(socket_err)?;
        // Connected, so ICMP unreachable from the collector surfaces as an
        // error on a later send instead of vanishing.
        socket.connect(collector.address).map_err(socket_err)?;
        socket.set_nonblocking(true).map_err(socket_err)?;
        let encoder = encoder(collector.protocol, domain_id, collector.mtu, collector.engine)
            .map_err(|source| SinkError::Encoder { collector: collector.name.clone(), source })?;
        tracing::info!(
            collector = %collector,
            source = %socket.local_addr().map_or_else(|_| "?".into(), |a| a.to_string()),
            domain_id,
            "exporting"
        );
        Ok(Self {
            pacer: super::pacer::Pacer::new(collector.messages_per_second),
            collector,
            socket,
            encoder,
            templates_sent: None,
            stats: SinkStats::default(),
            error_log: Throttle::new(ERROR_LOG_INTERVAL),
        })
    }

    #[must_use]
    pub fn stats(&self) -> SinkStats {
        self.stats
    }

    #[must_use]
    pub fn collector(&self) -> &Collector {
        &self.collector
    }
}

impl RecordSink for UdpSink {
    /// Never fails: what cannot be sent is counted and logged.
    fn write(&mut self, records: &[FlowRecord], ctx: &mut ExportContext<'_>) -> io::Result<()> {
        let now = Instant::now();
        let with_templates =
            self.templates_sent.is_none_or(|t| now.duration_since(t) >= self.collector.template_refresh);
        if records.is_empty() && !with_templates && !ctx.last {
            return Ok(());
        }
        // Options go with the templates, and once more at the end with the
        // final counts.
        let options = (with_templates || ctx.last).then(|| ctx.option_values(self.stats.not_sent));
        let wall = SystemTime::now();
        let batch = Batch {
            records,
            clock: &ctx.clock,
            now: wall,
            templates: with_templates,
            options: options.as_ref(),
            sampling: ctx.sampling,
            metadata: Some(ctx.metadata),
        };
        let encoded = self.encoder.encode(&batch);
        let (messages, not_carried) = (encoded.messages, encoded.not_carried);
        if not_carried > 0 {
            if self.stats.records_not_carried == 0 {
                tracing::warn!(
                    collector = %self.collector,
                    "NetFlow v5 carries IPv4 flows only: IPv6 flows are counted as not carried \
                     (records_not_carried); use ipfix:// or netflow9:// to export them"
                );
            }
            self.stats.records_not_carried += not_carried;
        }
        let mut templates_ok = true;
        for m in &messages {
            self.pacer.wait();
            match self.socket.send(&m.bytes) {
                Ok(_) => self.stats.count_sent(m),
                Err(error) => {
                    self.stats.send_errors += 1;
                    self.stats.count_not_sent(m, unix_ms(wall));
                    templates_ok &= !m.templates;
                    if self.error_log.due(now) {
                        tracing::warn!(
                            collector = %self.collector,
                            %error,
                            records_failed = self.stats.not_sent.flows,
                            "cannot send to collector; records are counted as not sent"
                        );
                    }
                }
            }
        }
        if with_templates && templates_ok {
            self.templates_sent = Some(now);
        }
        Ok(())
    }

    fn own_sockets(&self) -> Vec<vxflow_common::user::SocketTuple> {
        match (self.socket.local_addr(), self.socket.peer_addr()) {
            (Ok(local), Ok(remote)) => vec![vxflow_common::user::SocketTuple { protocol: 17, local, remote }],
            _ => Vec::new(),
        }
    }

    fn stats(&self) -> Option<SinkStats> {
        Some(UdpSink::stats(self))
    }

    fn log_stats(&self) {
        self.stats.log(&self.collector);
    }
}
