//! NetFlow v9 (RFC 3954) as a dialect of the message builder: a 20-byte
//! header with the record count, sysUptime and source id; template
//! `FlowSet`s 0 and 1; sets padded to 4 bytes; times as sysUptime; ntop's
//! elements as field types 57472 + n, as nProbe does; and a sequence number
//! that counts export packets.

use crate::{
    clock::WallClock,
    export::{
        builder::{Builder, Dialect, EncodeError},
        fields::{Field, NTOP_PEN},
        message::Encoded,
        names::RecordNames,
        options::{self, OptionValues},
        uptime::Uptime,
    },
    record::FlowRecord,
};

const VERSION: u16 = 9;
/// nProbe's base for ntop elements in NetFlow v9: PEN element n is 57472 + n.
const NTOP_V9_BASE: u16 = 57472;
/// `FIRST_SWITCHED` and `LAST_SWITCHED`: sysUptime in ms of the first and last packet.
const FIRST_SWITCHED: u16 = 22;
const LAST_SWITCHED: u16 = 21;

/// NetFlow v9 to one collector from source id `source_id`.
pub struct Netflow9 {
    source_id: u32,
    uptime: Uptime,
}

/// One NetFlow v9 stream to one collector.
pub type Netflow9Encoder = Builder<Netflow9>;

/// The export time as every packet of one `encode` call states it.
pub struct Stamp {
    /// The sysUptime epoch, Unix ms.
    epoch_ms: u64,
    uptime_ms: u32,
    unix_secs: u32,
}

impl Dialect for Netflow9 {
    type Stamp = Stamp;
    const NAME: &'static str = "NetFlow v9";
    const HEADER_LEN: usize = 20;
    /// Template FlowSet (RFC 3954 5.2) and Options Template FlowSet (6.1).
    const TEMPLATE_SET: u16 = 0;
    const OPTIONS_TEMPLATE_SET: u16 = 1;
    const ALIGN: usize = 4;
    const OPTIONS: options::Dialect = options::Dialect::Netflow9;
    /// Export packets sent before this one (RFC 3954 5.1).
    const SEQUENCE_COUNTS_RECORDS: bool = false;
    const CARRIES_NAMES: bool = false;

    fn domain(&self) -> u32 {
        self.source_id
    }

    fn header(&self, stamp: &Stamp, sequence: u32, out: &mut Vec<u8>) {
        out.extend_from_slice(&VERSION.to_be_bytes());
        out.extend_from_slice(&[0, 0]); // count, filled when the packet is done
        out.extend_from_slice(&stamp.uptime_ms.to_be_bytes());
        out.extend_from_slice(&stamp.unix_secs.to_be_bytes());
        out.extend_from_slice(&sequence.to_be_bytes());
        out.extend_from_slice(&self.source_id.to_be_bytes());
    }

    /// Every template and data record in the packet (RFC 3954 5.1).
    fn size_field(_bytes: &[u8], records: u32) -> u16 {
        u16::try_from(records).unwrap_or(u16::MAX)
    }

    /// NetFlow v9 has no enterprise numbers: ntop's elements have v9 ids
    /// of their own, VMware's and Antrea's none.
    fn carries(f: Field) -> bool {
        f.enterprise().is_none_or(|pen| pen == NTOP_PEN)
    }

    fn field_spec(f: Field) -> (u16, u16, Option<u32>) {
        let (ty, len) = match f {
            Field::FlowStartMilliseconds => (FIRST_SWITCHED, 4),
            Field::FlowEndMilliseconds => (LAST_SWITCHED, 4),
            f if f.enterprise() == Some(NTOP_PEN) => (NTOP_V9_BASE + f.id(), f.width()),
            f => (f.id(), f.width()),
        };
        (ty, len, None)
    }

    fn write_field(
        f: Field,
        r: &FlowRecord,
        names: Option<&RecordNames>,
        clock: &WallClock,
        stamp: &Stamp,
        out: &mut Vec<u8>,
    ) {
        let uptime = |ns| Uptime::since(stamp.epoch_ms, clock.to_unix_ms(ns)).to_be_bytes();
        match f {
            Field::FlowStartMilliseconds => out.extend_from_slice(&uptime(r.start_ns)),
            Field::FlowEndMilliseconds => out.extend_from_slice(&uptime(r.end_ns)),
            f => f.write(r, clock, names, out),
        }
    }
}

impl Builder<Netflow9> {
    /// An encoder for source id `source_id` whose packets are at most `mtu`
    /// bytes.
    ///
    /// # Errors
    /// When `mtu` cannot hold the largest template or record.
    pub fn new(source_id: u32, mtu: usize) -> Result<Self, EncodeError> {
        Self::with_dialect(Netflow9 { source_id, uptime: Uptime::default() }, mtu)
    }

    /// Encodes `records` into export packets: with `with_templates`, every
    /// template and options template first; with `options`, the options
    /// records next. `now_ms` is the wall clock now (Unix ms).
    pub fn encode(
        &mut self,
        records: &[FlowRecord],
        clock: &WallClock,
        now_ms: u64,
        with_templates: bool,
        options: Option<&OptionValues>,
    ) -> Vec<Encoded> {
        let epoch_ms = self.dialect_mut().uptime.epoch(now_ms);
        let stamp = Stamp {
            epoch_ms,
            uptime_ms: Uptime::since(epoch_ms, now_ms),
            unix_secs: u32::try_from(now_ms / 1000).unwrap_or(u32::MAX),
        };
        self.build(records, clock, &stamp, with_templates, options, None)
    }
}
