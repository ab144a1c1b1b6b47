//! Packs records into NetFlow v9 export packets of at most `mtu` bytes.

use crate::{
    clock::WallClock,
    export::{
        fields::{Field, NTOP_PEN},
        ipfix::Encoded,
        message::SetWriter,
        shape::Shape,
        uptime::Uptime,
    },
    record::FlowRecord,
};

const VERSION: u16 = 9;
const HEADER_LEN: usize = 20;
/// FlowSet id of a Template FlowSet (RFC 3954 5.2).
const TEMPLATE_SET_ID: u16 = 0;
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

    /// Encodes `records` into export packets, templates first when asked;
    /// `now_ms` is the wall clock now (Unix ms).
    pub fn encode(
        &mut self,
        records: &[FlowRecord],
        clock: &WallClock,
        now_ms: u64,
        with_templates: bool,
    ) -> Vec<Encoded> {
        let epoch = self.uptime.epoch(now_ms);
        let header = |sequence: u32| {
            let mut h = Vec::with_capacity(self.mtu);
            h.extend_from_slice(&VERSION.to_be_bytes());
            h.extend_from_slice(&[0, 0]); // count, filled at the end
            h.extend_from_slice(&Uptime::since(epoch, now_ms).to_be_bytes());
            h.extend_from_slice(&u32::try_from(now_ms / 1000).unwrap_or(u32::MAX).to_be_bytes());
            h.extend_from_slice(&sequence.to_be_bytes());
            h.extend_from_slice(&self.source_id.to_be_bytes());
            h
        };
        let mut out = Vec::new();
        let mut sets = SetWriter::new(header(self.sequence), 4);
        // (template records, data records) in the packet being built.
        let mut counts = (0u32, 0u32);
        let finish = |sets: SetWriter, counts: (u32, u32), out: &mut Vec<Encoded>, seq: &mut u32| {
            let mut s = sets;
            s.close_set();
            let mut bytes = s.buf;
            let count = u16::try_from(counts.0 + counts.1).unwrap_or(u16::MAX);
            bytes[2..4].copy_from_slice(&count.to_be_bytes());
            out.push(Encoded { bytes, records: counts.1, templates: counts.0 > 0 });
            *seq = seq.wrapping_add(1);
        };
        if with_templates {
            for layout in &self.layouts {
                if sets.size_with(TEMPLATE_SET_ID, layout.template.len()) > self.mtu {
                    finish(sets, counts, &mut out, &mut self.sequence);
                    sets = SetWriter::new(header(self.sequence), 4);
                    counts = (0, 0);
                }
                sets.append(TEMPLATE_SET_ID, |b| b.extend_from_slice(&layout.template));
                counts.0 += 1;
            }
        }
        let mut order: Vec<(u16, &FlowRecord)> = records.iter().map(|r| (Shape::of(&r.key).template_id(), r)).collect();
        order.sort_by_key(|(id, _)| *id);
        for (set_id, record) in order {
            let shape = Shape::of(&record.key);
            let layout =
                self.layouts.iter().find(|l| l.shape == shape).unwrap_or_else(|| unreachable!("a layout per shape"));
            if sets.size_with(set_id, layout.record_len) > self.mtu {
                finish(sets, counts, &mut out, &mut self.sequence);
                sets = SetWriter::new(header(self.sequence), 4);
                counts = (0, 0);
            }
            sets.append(set_id, |b| {
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
            counts.1 += 1;
        }
        if sets.buf.len() > HEADER_LEN {
            finish(sets, counts, &mut out, &mut self.sequence);
        }
        out
    }
}
