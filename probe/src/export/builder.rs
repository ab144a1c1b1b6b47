//! The one template and message builder of IPFIX (RFC 7011) and NetFlow v9
//! (RFC 3954): templates, options records and flow records packed into
//! messages of at most `mtu` bytes, flow records grouped by template so each
//! data set holds as many as fit. What differs between the two protocols is
//! data, a [`Dialect`]: the header, the set ids, the padding, the field
//! specifiers, the time fields, and what the sequence number counts.

use super::{
    fields::Field,
    message::{Encoded, SetWriter},
    names::RecordNames,
    options::{self, OptionSet, OptionValues},
    shape::Shape,
};
use crate::{clock::WallClock, metadata::IpMap, record::FlowRecord};

/// A named shape's template id is its shape's plus this: 1024 to 1045,
/// clear of the options templates (512 to 515).
pub const NAMED_TEMPLATE_OFFSET: u16 = 768;

/// The names a named shape carries after its shape's fields.
const NAME_FIELDS: [Field; 6] = [
    Field::SourcePodNamespace,
    Field::SourcePodName,
    Field::DestinationPodNamespace,
    Field::DestinationPodName,
    Field::SourceNodeName,
    Field::DestinationNodeName,
];

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
    /// Whether records can carry names (variable-length strings): IPFIX
    /// can, NetFlow v9 has no interoperable way to.
    const CARRIES_NAMES: bool;

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

    /// Appends `f`'s value for `r` (with `names`, for a named shape).
    fn write_field(
        f: Field,
        r: &FlowRecord,
        names: Option<&RecordNames>,
        clock: &WallClock,
        stamp: &Self::Stamp,
        out: &mut Vec<u8>,
    ) {
        let _ = stamp;
        f.write(r, clock, names, out);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error(
        "mtu {mtu} is too small: a {protocol} message needs at least {min} bytes for the largest template or record"
    )]
    MtuTooSmall { protocol: &'static str, mtu: usize, min: usize },
}

/// A shape's template, named or not, ready to use.
struct Layout {
    shape: Shape,
    named: bool,
    id: u16,
    fields: Vec<Field>,
    /// A record's length with every name empty.
    record_len: usize,
    template: Vec<u8>,
}

impl Layout {
    fn new<D: Dialect>(shape: Shape, named: bool) -> Self {
        let mut fields: Vec<Field> = shape.fields().into_iter().filter(|&f| D::carries(f)).collect();
        let mut id = shape.template_id();
        if named {
            fields.extend(NAME_FIELDS);
            id += NAMED_TEMPLATE_OFFSET;
        }
        let template = template_record::<D>(id, &fields);
        let record_len = fields.iter().map(|&f| f.encoded_len(None)).sum();
        Self { shape, named, id, fields, record_len, template }
    }

    /// The length of a record with `names`.
    fn len_with(&self, names: Option<&RecordNames>) -> usize {
        self.fields.iter().map(|&f| f.encoded_len(names)).sum()
    }
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
        let named: &[bool] = if D::CARRIES_NAMES { &[false, true] } else { &[false] };
        let layouts: Vec<Layout> =
            named.iter().flat_map(|&n| Shape::ALL.iter().map(move |&shape| Layout::new::<D>(shape, n))).collect();
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
    /// with `options`, the options records follow. With `metadata`, a
    /// record with a known pod or node at either end goes in its shape's
    /// named template (where the dialect carries names).
    pub(super) fn build(
        &mut self,
        records: &[FlowRecord],
        clock: &WallClock,
        stamp: &D::Stamp,
        with_templates: bool,
        options: Option<&OptionValues>,
        metadata: Option<&IpMap>,
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
        // The largest record a message holds: a named one that would not
        // fit (names of hundreds of bytes, a small MTU) goes unnamed.
        let room = out.mtu.saturating_sub(SetWriter::new(vec![0; D::HEADER_LEN], D::ALIGN).size_with(256, 0));
        let layout_of = |shape: Shape, named: bool| {
            layouts
                .iter()
                .find(|l| l.shape == shape && l.named == named)
                .unwrap_or_else(|| unreachable!("a layout per shape"))
        };
        let mut order: Vec<(&Layout, &FlowRecord, Option<RecordNames>)> = records
            .iter()
            .map(|r| {
                let shape = Shape::of(&r.key);
                let names = metadata.filter(|_| D::CARRIES_NAMES).and_then(|m| RecordNames::of(m, r));
                match names {
                    Some(n) if layout_of(shape, true).len_with(Some(&n)) <= room => {
                        (layout_of(shape, true), r, Some(n))
                    }
                    _ => (layout_of(shape, false), r, None),
                }
            })
            .collect();
        order.sort_by_key(|(layout, _, _)| layout.id);
        for (layout, record, names) in order {
            let m = out.room(layout.id, layout.len_with(names.as_ref()));
            m.sets.append(layout.id, |b| {
                for &f in &layout.fields {
                    D::write_field(f, record, names.as_ref(), clock, stamp, b);
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
fn template_record<D: Dialect>(id: u16, fields: &[Field]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&id.to_be_bytes());
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
