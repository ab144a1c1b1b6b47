//! Packs records into NetFlow v9 export packets of at most `mtu` bytes.

use crate::{
    clock::WallClock,
    export::{
        fields::{Field, NTOP_PEN},
        message::{Encoded, SetWriter},
        options::{Dialect, OptionSet, OptionValues},
        shape::Shape,
        uptime::Uptime,
    },
    record::FlowRecord,
};

const VERSION: u16 = 9;
/// FlowSet id of a Template FlowSet (RFC 3954 5.2).
const TEMPLATE_SET_ID: u16 = 0;
/// FlowSet id of an Options Template FlowSet (RFC 3954 6.1).
const OPTIONS_TEMPLATE_SET_ID: u16 = 1;
/// nProbe's base for ntop elements in NetFlow v9: PEN element n is 57472 + n.
const NTOP_V9_BASE: u16 = 57472;
/// `FIRST_SWITCHED` and `LAST_SWITCHED`: sysUptime in ms of the first and last packet.
const FIRST_SWITCHED: u16 = 22;
const LAST_SWITCHED: u16 = 21;

/// The field type and length of an element in NetFlow v9.
fn v9_field(f: Field) -> (u16, u16) {
    match f {
        Field::FlowStartMilliseconds => (FIRST_SWITCHED, 4),
        Field::FlowEndMilliseconds => (LAST_SWITCHED, 4),
        f if f.enterprise() == Some(NTOP_PEN) => (NTOP_V9_BASE + f.id(), f.width()),
        f => (f.id(), f.width()),
    }
}

struct Layout {
    shape: Shape,
    fields: Vec<Field>,
    record_len: usize,
    template: Vec<u8>,
}

/// One NetFlow v9 stream to one collector.
pub struct Netflow9Encoder {
    source_id: u32,
    mtu: usize,
    /// Export packets sent (RFC 3954: the sequence counts packets).
    sequence: u32,
    uptime: Uptime,
    layouts: Vec<Layout>,
}

impl Netflow9Encoder {
    #[must_use]
    pub fn new(source_id: u32, mtu: usize) -> Self {
        let layouts = Shape::ALL
            .iter()
            .map(|&shape| {
                let fields = shape.fields();
                let mut template = Vec::new();
                template.extend_from_slice(&shape.template_id().to_be_bytes());
                template.extend_from_slice(&u16::try_from(fields.len()).unwrap_or(u16::MAX).to_be_bytes());
                let mut record_len = 0;
                for &f in &fields {
                    let (ty, len) = v9_field(f);
                    template.extend_from_slice(&ty.to_be_bytes());
                    template.extend_from_slice(&len.to_be_bytes());
                    record_len += usize::from(len);
                }
                Layout { shape, fields, record_len, template }
            })
            .collect();
        Self { source_id, mtu, sequence: 0, uptime: Uptime::default(), layouts }
    }

    /// Export packets encoded so far, modulo 2^32.
    #[must_use]
    pub fn sequence(&self) -> u32 {
        self.sequence
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
        let epoch = self.uptime.epoch(now_ms);
        let mut out = Output {
            packets: Vec::new(),
            open: None,
            header: Header {
                uptime_ms: Uptime::since(epoch, now_ms),
                unix_secs: now_ms / 1000,
                source_id: self.source_id,
            },
            mtu: self.mtu,
            sequence: &mut self.sequence,
        };
        if with_templates {
            for layout in &self.layouts {
                let p = out.room(TEMPLATE_SET_ID, layout.template.len());
                p.sets.append(TEMPLATE_SET_ID, |b| b.extend_from_slice(&layout.template));
                p.template_records += 1;
                p.encoded.templates = true;
            }
            for set in OptionSet::of(Dialect::Netflow9) {
                let template = set.template(Dialect::Netflow9);
                let p = out.room(OPTIONS_TEMPLATE_SET_ID, template.len());
                p.sets.append(OPTIONS_TEMPLATE_SET_ID, |b| b.extend_from_slice(&template));
                p.template_records += 1;
                p.encoded.templates = true;
            }
        }
        if let Some(values) = options {
            for set in OptionSet::of(Dialect::Netflow9) {
                for record in set.records(Dialect::Netflow9, values, self.source_id) {
                    let p = out.room(set.template_id(), record.len());
                    p.sets.append(set.template_id(), |b| b.extend_from_slice(&record));
                    p.encoded.options += 1;
                }
            }
        }
        let mut order: Vec<(u16, &FlowRecord)> = records.iter().map(|r| (Shape::of(&r.key).template_id(), r)).collect();
        order.sort_by_key(|(id, _)| *id);
        for (set_id, record) in order {
            let shape = Shape::of(&record.key);
            let layout =
                self.layouts.iter().find(|l| l.shape == shape).unwrap_or_else(|| unreachable!("a layout per shape"));
            let p = out.room(set_id, layout.record_len);
            p.sets.append(set_id, |b| {
                for &f in &layout.fields {
                    match f {
                        Field::FlowStartMilliseconds => {
                            b.extend_from_slice(&Uptime::since(epoch, clock.to_unix_ms(record.start_ns)).to_be_bytes());
                        }
                        Field::FlowEndMilliseconds => {
                            b.extend_from_slice(&Uptime::since(epoch, clock.to_unix_ms(record.end_ns)).to_be_bytes());
                        }
                        f => f.write(record, clock, b),
                    }
                }
            });
            p.encoded.add_flow(record);
        }
        out.finish()
    }
}

/// What every packet header of one `encode` call shares.
struct Header {
    uptime_ms: u32,
    unix_secs: u64,
    source_id: u32,
}

/// A packet under construction.
struct Packet {
    sets: SetWriter,
    template_records: u32,
    encoded: Encoded,
}

/// One `encode` call's packets; each packet takes the next sequence number.
struct Output<'a> {
    packets: Vec<Encoded>,
    open: Option<Packet>,
    header: Header,
    mtu: usize,
    sequence: &'a mut u32,
}

impl Output<'_> {
    /// The open packet with room for `len` bytes in set `set_id`.
    fn room(&mut self, set_id: u16, len: usize) -> &mut Packet {
        if self.open.as_ref().is_some_and(|p| p.sets.size_with(set_id, len) > self.mtu) {
            self.close();
        }
        let (header, mtu, sequence) = (&self.header, self.mtu, *self.sequence);
        self.open.get_or_insert_with(|| {
            let mut h = Vec::with_capacity(mtu);
            h.extend_from_slice(&VERSION.to_be_bytes());
            h.extend_from_slice(&[0, 0]); // count, filled by close()
            h.extend_from_slice(&header.uptime_ms.to_be_bytes());
            h.extend_from_slice(&u32::try_from(header.unix_secs).unwrap_or(u32::MAX).to_be_bytes());
            h.extend_from_slice(&sequence.to_be_bytes());
            h.extend_from_slice(&header.source_id.to_be_bytes());
            Packet { sets: SetWriter::new(h, 4), template_records: 0, encoded: Encoded::default() }
        })
    }

    /// Finishes the open packet: the header's count is every record in it.
    fn close(&mut self) {
        let Some(mut p) = self.open.take() else { return };
        p.sets.close_set();
        let mut bytes = p.sets.buf;
        let count = u16::try_from(p.template_records + p.encoded.data_records()).unwrap_or(u16::MAX);
        bytes[2..4].copy_from_slice(&count.to_be_bytes());
        self.packets.push(Encoded { bytes, ..p.encoded });
        *self.sequence = self.sequence.wrapping_add(1);
    }

    fn finish(mut self) -> Vec<Encoded> {
        self.close();
        self.packets
    }
}
