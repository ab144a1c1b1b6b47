//! What a sink asks of an export protocol: the messages for one batch of
//! records. Sinks carry bytes; only the encoders know a format, so a sink
//! holds a `Box<dyn Encode>` whatever the protocol.

use std::time::SystemTime;

use super::{
    builder::EncodeError, collector::Protocol, ipfix::IpfixEncoder, message::Encoded, netflow5::Netflow5Encoder,
    netflow9::Netflow9Encoder, options::OptionValues,
};
use crate::{
    clock::{WallClock, unix_ms},
    record::FlowRecord,
};

/// One export's records and what goes with them.
pub struct Batch<'a> {
    pub records: &'a [FlowRecord],
    pub clock: &'a WallClock,
    /// The export time.
    pub now: SystemTime,
    /// Every template and options template first (template protocols).
    pub templates: bool,
    /// The options records, after the templates (template protocols).
    pub options: Option<&'a OptionValues>,
    /// 1 in this many packets counted, for a format that states it in its
    /// header (v5).
    pub sampling: u32,
    /// Who held the records' addresses, for a format that carries names.
    pub metadata: Option<&'a crate::metadata::IpMap>,
}

/// A batch's messages, and the records the protocol cannot carry.
#[derive(Debug, Default)]
pub struct Encodings {
    pub messages: Vec<Encoded>,
    /// Records left out because the format has no room for them (IPv6 in v5).
    pub not_carried: u64,
}

/// Rewrites a message's export time and sequence number for a stream that
/// sends it later than it was encoded, and returns the stream's sequence
/// number after it: IPFIX over TCP, where each connection is a new stream
/// starting at zero.
pub type Restamp = fn(&mut Encoded, u32, SystemTime) -> u32;

pub trait Encode: Send {
    fn encode(&mut self, batch: &Batch<'_>) -> Encodings;
}

/// The encoder of `protocol` for observation domain (source id) `domain_id`
/// and messages of at most `mtu` bytes; v5 takes its engine type and id.
///
/// # Errors
/// When `mtu` is too small for the protocol's largest template or record.
pub fn encoder(
    protocol: Protocol,
    domain_id: u32,
    mtu: usize,
    engine: (u8, u8),
) -> Result<Box<dyn Encode>, EncodeError> {
    Ok(match protocol {
        Protocol::Ipfix => Box::new(IpfixEncoder::new(domain_id, mtu)?),
        Protocol::Netflow9 => Box::new(Netflow9Encoder::new(domain_id, mtu)?),
        Protocol::Netflow5 => Box::new(Netflow5Encoder::new(engine.0, engine.1)),
    })
}

impl Encode for IpfixEncoder {
    fn encode(&mut self, b: &Batch<'_>) -> Encodings {
        let secs = u32::try_from(unix_ms(b.now) / 1000).unwrap_or(u32::MAX);
        let messages = match b.metadata {
            Some(m) => IpfixEncoder::encode_named(self, b.records, b.clock, secs, b.templates, b.options, m),
            None => IpfixEncoder::encode(self, b.records, b.clock, secs, b.templates, b.options),
        };
        Encodings { messages, not_carried: 0 }
    }
}

impl Encode for Netflow9Encoder {
    fn encode(&mut self, b: &Batch<'_>) -> Encodings {
        let messages = Netflow9Encoder::encode(self, b.records, b.clock, unix_ms(b.now), b.templates, b.options);
        Encodings { messages, not_carried: 0 }
    }
}

impl Encode for Netflow5Encoder {
    fn encode(&mut self, b: &Batch<'_>) -> Encodings {
        let out = Netflow5Encoder::encode(self, b.records, b.clock, unix_ms(b.now), b.sampling);
        Encodings { messages: out.packets, not_carried: out.not_carried }
    }
}
