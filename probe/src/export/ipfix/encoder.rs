//! Packs flow records into IPFIX messages (RFC 7011) of at most `mtu` bytes:
//! templates first when asked (at start and every refresh on UDP), then data
//! sets grouped by template.

use super::template::write_template_record;
use crate::export::{
    fields::Field,
    message::{Encoded, SetWriter},
    options::{Dialect, OptionSet, OptionValues},
    shape::Shape,
};
use crate::{clock::WallClock, record::FlowRecord};

/// IPFIX version number (RFC 7011 3.1).
const VERSION: u16 = 10;
const HEADER_LEN: usize = 16;
const SET_HEADER_LEN: usize = 4;
/// Set id of a Template Set (RFC 7011 3.3.2).
const TEMPLATE_SET_ID: u16 = 2;
/// Set id of an Options Template Set (RFC 7011 3.3.2).
const OPTIONS_TEMPLATE_SET_ID: u16 = 3;

#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("mtu {mtu} is too small: an IPFIX message needs at least {min} bytes for the largest template or record")]
    MtuTooSmall { mtu: usize, min: usize },
}

/// A shape's template, ready to use.
struct Layout {
    shape: Shape,
    fields: Vec<Field>,
    record_len: usize,
    template: Vec<u8>,
}

/// One exporting process's IPFIX stream to one collector.
pub struct IpfixEncoder {
    domain_id: u32,
    mtu: usize,
    /// Data records sent so far in this stream, modulo 2^32 (RFC 7011 3.1):
    /// templates do not count.
    sequence: u32,
    layouts: Vec<Layout>,
}

/// A message under construction.
struct Message {
    sets: SetWriter,
    encoded: Encoded,
}

impl Message {
    fn new(export_secs: u32, sequence: u32, domain_id: u32, mtu: usize) -> Self {
        let mut header = Vec::with_capacity(mtu);
        header.extend_from_slice(&VERSION.to_be_bytes());
        header.extend_from_slice(&[0, 0]); // length, filled by finish()
        header.extend_from_slice(&export_secs.to_be_bytes());
        header.extend_from_slice(&sequence.to_be_bytes());
        header.extend_from_slice(&domain_id.to_be_bytes());
        Self { sets: SetWriter::new(header, 1), encoded: Encoded::default() }
    }

    fn is_empty(&self) -> bool {
        self.sets.buf.len() == HEADER_LEN
    }

    fn finish(mut self) -> Encoded {
        self.sets.close_set();
        let mut bytes = self.sets.buf;
        let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
        bytes[2..4].copy_from_slice(&len.to_be_bytes());
        Encoded { bytes, ..self.encoded }
    }
}

/// One `encode` call's output: finished messages and the open one.
struct Output {
    messages: Vec<Encoded>,
    msg: Message,
    export_secs: u32,
    domain_id: u32,
    mtu: usize,
}

impl Output {
    /// Makes room for `len` bytes in set `set_id`, starting a message (whose
    /// header carries `sequence`) when the open one is full.
    fn room(&mut self, set_id: u16, len: usize, sequence: u32) -> &mut Message {
        if self.msg.sets.size_with(set_id, len) > self.mtu {
            let next = Message::new(self.export_secs, sequence, self.domain_id, self.mtu);
            let full = std::mem::replace(&mut self.msg, next);
            self.messages.push(full.finish());
        }
        &mut self.msg
    }

    fn finish(mut self) -> Vec<Encoded> {
        if !self.msg.is_empty() {
            self.messages.push(self.msg.finish());
        }
        self.messages
    }
}

impl IpfixEncoder {
    /// An encoder for observation domain `domain_id` whose messages are at
    /// most `mtu` bytes.
    ///
    /// # Errors
    /// When `mtu` cannot hold the largest template or record.
    pub fn new(domain_id: u32, mtu: usize) -> Result<Self, EncodeError> {
        let layouts: Vec<Layout> = Shape::ALL
            .iter()
            .map(|&shape| {
                let fields = shape.fields();
                let record_len = fields.iter().map(|f| usize::from(f.width())).sum();
                let mut template = Vec::new();
                write_template_record(shape, &mut template);
                Layout { shape, fields, record_len, template }
            })
            .collect();
        let largest = layouts.iter().map(|l| l.record_len.max(l.template.len())).max().unwrap_or(0);
        let min = HEADER_LEN + SET_HEADER_LEN + largest;
        if mtu < min {
            return Err(EncodeError::MtuTooSmall { mtu, min });
        }
        Ok(Self { domain_id, mtu, sequence: 0, layouts })
    }

    /// Data records encoded so far, modulo 2^32.
    #[must_use]
    pub fn sequence(&self) -> u32 {
        self.sequence
    }

    fn layout(&self, shape: Shape) -> &Layout {
        self.layouts.iter().find(|l| l.shape == shape).unwrap_or_else(|| unreachable!("a layout per shape"))
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
        let mut out = Output {
            messages: Vec::new(),
            msg: Message::new(export_secs, self.sequence, self.domain_id, self.mtu),
            export_secs,
            domain_id: self.domain_id,
            mtu: self.mtu,
        };
        if with_templates {
            for layout in &self.layouts {
                let msg = out.room(TEMPLATE_SET_ID, layout.template.len(), self.sequence);
                msg.sets.append(TEMPLATE_SET_ID, |b| b.extend_from_slice(&layout.template));
                msg.encoded.templates = true;
            }
            for set in OptionSet::of(Dialect::Ipfix) {
                let template = set.template(Dialect::Ipfix);
                let msg = out.room(OPTIONS_TEMPLATE_SET_ID, template.len(), self.sequence);
                msg.sets.append(OPTIONS_TEMPLATE_SET_ID, |b| b.extend_from_slice(&template));
                msg.encoded.templates = true;
            }
        }
        if let Some(values) = options {
            for set in OptionSet::of(Dialect::Ipfix) {
                for record in set.records(Dialect::Ipfix, values, self.domain_id) {
                    let msg = out.room(set.template_id(), record.len(), self.sequence);
                    msg.sets.append(set.template_id(), |b| b.extend_from_slice(&record));
                    msg.encoded.options += 1;
                    self.sequence = self.sequence.wrapping_add(1);
                }
            }
        }
        // Grouped by template, so each data set holds as many records as fit.
        let mut order: Vec<(u16, &FlowRecord)> = records.iter().map(|r| (Shape::of(&r.key).template_id(), r)).collect();
        order.sort_by_key(|(id, _)| *id);
        for (set_id, record) in order {
            let layout = self.layout(Shape::of(&record.key));
            let msg = out.room(set_id, layout.record_len, self.sequence);
            let fields = &layout.fields;
            msg.sets.append(set_id, |b| {
                for f in fields {
                    f.write(record, clock, b);
                }
            });
            msg.encoded.add_flow(record);
            self.sequence = self.sequence.wrapping_add(1);
        }
        out.finish()
    }
}
