//! The one template and message builder of IPFIX (RFC 7011) and NetFlow v9
//! (RFC 3954): templates, options records and flow records packed into
//! messages of at most `mtu` bytes, flow records grouped by template so each
//! data set holds as many as fit. What differs between the two protocols is
//! data, a [`Dialect`]: the header, the set ids, the padding, the field
//! specifiers, the time fields, and what the sequence number counts.

use super::{
    fields::Field,
    message::{Encoded, SetWriter},
    options::{self, OptionSet, OptionValues},
    shape::Shape,
};
use crate::{clock::WallClock, record::FlowRecord};

/// What makes a template-based export protocol what it is.
pub trait Dialect {
    /// What one `encode` call stamps every message with: the export time.
    type Stamp;
    /// The protocol's name, for errors.
    const NAME: &'static str;
    const HEADER_LEN: usize;
    /// Set ids of template and options template sets.
    const TEMPLATE_SET: u16;
    const OPTIONS_TEMPLATE_SET: u16;
    /// Sets are padded to a multiple of this many bytes.
    const ALIGN: usize;
    /// The options records' dialect.
    const OPTIONS: options::Dialect;
    /// Whether the header's sequence number counts data records (IPFIX);
    /// otherwise it counts messages (NetFlow v9).
    const SEQUENCE_COUNTS_RECORDS: bool;

    /// The observation domain (IPFIX) or source id (v9).
    fn domain(&self) -> u32;

    /// Appends a message header, with its length or count left zero.
    fn header(&self, stamp: &Self::Stamp, sequence: u32, out: &mut Vec<u8>);

    /// The header's length or count field (bytes 2..4 in both): the
    /// finished message is `bytes` and holds `records` template and data
    /// records.
    fn size_field(bytes: &[u8], records: u32) -> u16;

    /// Field type, length and enterprise number of `f` in a template.
    fn field_spec(f: Field) -> (u16, u16, Option<u32>);

    /// Whether this dialect can carry `f` at all (a shape's templates
    /// leave out what it cannot).
    fn carries(f: Field) -> bool {
        let _ = f;
        true
    }

    /// Appends `f`'s value for `r`.
    fn write_field(f: Field, r: &FlowRecord, clock: &WallClock, stamp: &Self::Stamp, out: &mut Vec<u8>) {
        let _ = stamp;
        f.write(r, clock, out);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error(
        "mtu {mtu} is too small: a {protocol} message needs at least {min} bytes for the largest template or record"
    )]
    MtuTooSmall { protocol: &'static str, mtu: usize, min: usize },
}

/// A shape's template, ready to use.
struct Layout {
    shape: Shape,
    fields: Vec<Field>,
    record_len: usize,
    template: Vec<u8>,
}

/// One exporting process's stream to one collector in dialect `D`.
pub struct Builder<D: Dialect> {
    dialect: D,
    mtu: usize,
    /// What the header's sequence number counts, so far, modulo 2^32.
    sequence: u32,
    layouts: Vec<Layout>,
}

impl<D: Dialect> Builder<D> {
    /// A builder whose messages are at most `mtu` bytes.
    ///
    /// # Errors
    /// When `mtu` cannot hold the largest template or record in a message.
    pub fn with_dialect(dialect: D, mtu: usize) -> Result<Self, EncodeError> {
        let layouts: Vec<Layout> = Shape::ALL
            .iter()
            .map(|&shape| {
                let fields: Vec<Field> = shape.fields().into_iter().filter(|&f| D::carries(f)).collect();
                let template = template_record::<D>(shape, &fields);
                let record_len = fields.iter().map(|&f| usize::from(D::field_spec(f).1)).sum();
                Layout { shape, fields, record_len, template }
            })
            .collect();
        let largest = layouts.iter().map(|l| l.record_len.max(l.template.len())).max().unwrap_or(0);
        let min = SetWriter::new(vec![0; D::HEADER_LEN], D::ALIGN).size_with(D::TEMPLATE_SET, largest);
        if mtu < min {
            return Err(EncodeError::MtuTooSmall { protocol: D::NAME, mtu, min });
        }
        Ok(Self { dialect, mtu, sequence: 0, layouts })
    }

    /// The sequence number the next message would carry.
    #[must_use]
    pub fn sequence(&self) -> u32 {
        self.sequence
    }

    pub(super) fn dialect_mut(&mut self) -> &mut D {
        &mut self.dialect
    }

    /// Encodes `records` into messages stamped `stamp`. With
    /// `with_templates`, every template and options template goes first;
    /// with `options`, the options records follow.
    pub(super) fn build(
        &mut self,
        records: &[FlowRecord],
        clock: &WallClock,
        stamp: &D::Stamp,
        with_templates: bool,
        options: Option<&OptionValues>,
    ) -> Vec<Encoded> {
        let Self { dialect, mtu, sequence, layouts } = self;
        let mut out = Messages { dialect, stamp, sequence, mtu: *mtu, done: Vec::new(), open: None };
        if with_templates {
            for layout in layouts.iter() {
                out.room(D::TEMPLATE_SET, layout.template.len()).add_template(D::TEMPLATE_SET, &layout.template);
            }
            for set in OptionSet::of(D::OPTIONS) {
                let template = set.template(D::OPTIONS);
                out.room(D::OPTIONS_TEMPLATE_SET, template.len()).add_template(D::OPTIONS_TEMPLATE_SET, &template);
            }
        }
        if let Some(values) = options {
            for set in OptionSet::of(D::OPTIONS) {
                for record in set.records(D::OPTIONS, values, out.dialect.domain()) {
                    let m = out.room(set.template_id(), record.len());
                    m.sets.append(set.template_id(), |b| b.extend_from_slice(&record));
                    m.encoded.options += 1;
                    out.count_record();
                }
            }
        }
        let mut order: Vec<(u16, &FlowRecord)> = records.iter().map(|r| (Shape::of(&r.key).template_id(), r)).collect();
        order.sort_by_key(|(id, _)| *id);
        for (set_id, record) in order {
            let shape = Shape::of(&record.key);
            let layout =
                layouts.iter().find(|l| l.shape == shape).unwrap_or_else(|| unreachable!("a layout per shape"));
            let m = out.room(set_id, layout.record_len);
            m.sets.append(set_id, |b| {
                for &f in &layout.fields {
                    D::write_field(f, record, clock, stamp, b);
                }
            });
            m.encoded.add_flow(record);
            out.count_record();
        }
        out.finish()
    }
}

/// The template record of `shape` (RFC 7011 3.4.1, RFC 3954 5.2): id, field
/// count, then each field's type and length, and its enterprise number where
/// it has one.
fn template_record<D: Dialect>(shape: Shape, fields: &[Field]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&shape.template_id().to_be_bytes());
    out.extend_from_slice(&u16::try_from(fields.len()).unwrap_or(u16::MAX).to_be_bytes());
    for &f in fields {
        let (ty, len, pen) = D::field_spec(f);
        out.extend_from_slice(&ty.to_be_bytes());
        out.extend_from_slice(&len.to_be_bytes());
        if let Some(pen) = pen {
            out.extend_from_slice(&pen.to_be_bytes());
        }
    }
    out
}

/// A message under construction.
struct Message {
    sets: SetWriter,
    /// Template records in it.
    records: u32,
    encoded: Encoded,
}

impl Message {
    fn add_template(&mut self, set_id: u16, template: &[u8]) {
        self.sets.append(set_id, |b| b.extend_from_slice(template));
        self.records += 1;
        self.encoded.templates = true;
    }
}

/// One `build` call's messages: the finished ones and the open one, and
/// the stream's sequence number they take.
struct Messages<'a, D: Dialect> {
    dialect: &'a D,
    stamp: &'a D::Stamp,
    sequence: &'a mut u32,
    mtu: usize,
    done: Vec<Encoded>,
    open: Option<Message>,
}

impl<D: Dialect> Messages<'_, D> {
    /// The open message with room for `len` bytes in set `set_id`; a full
    /// one is finished first, and a new one takes the current sequence
    /// number.
    fn room(&mut self, set_id: u16, len: usize) -> &mut Message {
        if self.open.as_ref().is_some_and(|m| m.sets.size_with(set_id, len) > self.mtu) {
            self.close();
        }
        let (dialect, stamp, sequence, mtu) = (self.dialect, self.stamp, *self.sequence, self.mtu);
        self.open.get_or_insert_with(|| {
            let mut header = Vec::with_capacity(mtu);
            dialect.header(stamp, sequence, &mut header);
            debug_assert_eq!(header.len(), D::HEADER_LEN);
            Message { sets: SetWriter::new(header, D::ALIGN), records: 0, encoded: Encoded::default() }
        })
    }

    /// One more data record in the stream.
    fn count_record(&mut self) {
        if D::SEQUENCE_COUNTS_RECORDS {
            *self.sequence = self.sequence.wrapping_add(1);
        }
    }

    fn close(&mut self) {
        let Some(mut m) = self.open.take() else { return };
        m.sets.close_set();
        let mut bytes = m.sets.buf;
        let size = D::size_field(&bytes, m.records + m.encoded.data_records());
        bytes[2..4].copy_from_slice(&size.to_be_bytes());
        self.done.push(Encoded { bytes, ..m.encoded });
        if !D::SEQUENCE_COUNTS_RECORDS {
            *self.sequence = self.sequence.wrapping_add(1);
        }
    }

    fn finish(mut self) -> Vec<Encoded> {
        self.close();
        self.done
    }
}
