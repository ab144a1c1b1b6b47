//! IPFIX (RFC 7011) as a dialect of the message builder: a 16-byte header
//! with the message length, export time and observation domain; template
//! sets 2 and 3; no padding; enterprise elements with their PEN; and a
//! sequence number that counts data records.

use crate::{
    clock::WallClock,
    export::{
        builder::{Builder, Dialect},
        fields::Field,
        message::Encoded,
        options::{self, OptionValues},
    },
    metadata::IpMap,
    record::FlowRecord,
};

pub use crate::export::builder::EncodeError;

/// IPFIX version number (RFC 7011 3.1).
const VERSION: u16 = 10;
/// The enterprise bit of a field specifier (RFC 7011 3.2): a PEN follows.
const ENTERPRISE_BIT: u16 = 0x8000;

/// IPFIX to one collector from observation domain `domain_id`.
pub struct Ipfix {
    domain_id: u32,
}

/// One exporting process's IPFIX stream to one collector.
pub type IpfixEncoder = Builder<Ipfix>;

impl Dialect for Ipfix {
    /// The export time, Unix seconds.
    type Stamp = u32;
    const NAME: &'static str = "IPFIX";
    const HEADER_LEN: usize = 16;
    /// Template Set and Options Template Set (RFC 7011 3.3.2).
    const TEMPLATE_SET: u16 = 2;
    const OPTIONS_TEMPLATE_SET: u16 = 3;
    const ALIGN: usize = 1;
    const OPTIONS: options::Dialect = options::Dialect::Ipfix;
    /// Data records sent before the message, templates not counted (RFC
    /// 7011 3.1).
    const SEQUENCE_COUNTS_RECORDS: bool = true;
    const CARRIES_NAMES: bool = true;

    fn domain(&self) -> u32 {
        self.domain_id
    }

    fn header(&self, export_secs: &u32, sequence: u32, out: &mut Vec<u8>) {
        out.extend_from_slice(&VERSION.to_be_bytes());
        out.extend_from_slice(&[0, 0]); // length, filled when the message is done
        out.extend_from_slice(&export_secs.to_be_bytes());
        out.extend_from_slice(&sequence.to_be_bytes());
        out.extend_from_slice(&self.domain_id.to_be_bytes());
    }

    fn size_field(bytes: &[u8], _records: u32) -> u16 {
        u16::try_from(bytes.len()).unwrap_or(u16::MAX)
    }

    fn field_spec(f: Field) -> (u16, u16, Option<u32>) {
        let pen = f.enterprise();
        let bit = if pen.is_some() { ENTERPRISE_BIT } else { 0 };
        (bit | f.id(), f.width(), pen)
    }
}

/// Writes `m`'s export time (`now`) and its stream's `sequence` into its
/// header (RFC 7011 3.1), for a stream that sends it later than it was
/// encoded; returns the sequence number after it, which counts its data
/// records. An [`crate::export::encode::Restamp`].
pub fn restamp(m: &mut Encoded, sequence: u32, now: std::time::SystemTime) -> u32 {
    let secs = u32::try_from(crate::clock::unix_ms(now) / 1000).unwrap_or(u32::MAX);
    m.bytes[4..8].copy_from_slice(&secs.to_be_bytes());
    m.bytes[8..12].copy_from_slice(&sequence.to_be_bytes());
    sequence.wrapping_add(m.data_records())
}

impl Builder<Ipfix> {
    /// An encoder for observation domain `domain_id` whose messages are at
    /// most `mtu` bytes.
    ///
    /// # Errors
    /// When `mtu` cannot hold the largest template or record.
    pub fn new(domain_id: u32, mtu: usize) -> Result<Self, EncodeError> {
        Self::with_dialect(Ipfix { domain_id }, mtu)
    }

    /// Encodes `records` into messages. With `with_templates`, every
    /// template and options template goes first; with `options`, the options
    /// records follow. `export_secs` is the export time (Unix seconds).
    pub fn encode(
        &mut self,
        records: &[FlowRecord],
        clock: &WallClock,
        export_secs: u32,
        with_templates: bool,
        options: Option<&OptionValues>,
    ) -> Vec<Encoded> {
        self.build(records, clock, &export_secs, with_templates, options, None)
    }

    /// [`Builder::<Ipfix>::encode`], naming the records' ends from
    /// `metadata` (Antrea's elements, in the named templates).
    pub fn encode_named(
        &mut self,
        records: &[FlowRecord],
        clock: &WallClock,
        export_secs: u32,
        with_templates: bool,
        options: Option<&OptionValues>,
        metadata: &IpMap,
    ) -> Vec<Encoded> {
        self.build(records, clock, &export_secs, with_templates, options, Some(metadata))
    }
}
