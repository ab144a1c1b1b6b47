//! Sets inside an export message, shared by IPFIX and NetFlow v9: both frame
//! templates and records in sets of `id, length, contents` (RFC 7011 3.3.2,
//! RFC 3954 5.2), under a protocol-specific header.

use crate::record::FlowRecord;

const SET_HEADER_LEN: usize = 4;

/// An encoded message (an IPFIX message, a v9 or v5 export packet) and what
/// it carries, so a sink can count what it could not send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Encoded {
    pub bytes: Vec<u8>,
    /// Flow records in the message.
    pub records: u32,
    /// Options data records in the message (they count in IPFIX sequence
    /// numbers, not in flow totals).
    pub options: u32,
    /// Packets and octets of the flow records.
    pub packets: u64,
    pub octets: u64,
    /// Whether the message carries templates.
    pub templates: bool,
}

impl Encoded {
    /// Counts one flow record in this message.
    pub fn add_flow(&mut self, r: &FlowRecord) {
        self.records += 1;
        self.packets += r.packets;
        self.octets += r.bytes;
    }

    /// Data records of any kind: what an IPFIX sequence number counts.
    #[must_use]
    pub fn data_records(&self) -> u32 {
        self.records + self.options
    }
}

/// A message body being filled, with at most one open set.
pub struct SetWriter {
    pub buf: Vec<u8>,
    /// The open set: its id and where its header starts.
    set: Option<(u16, usize)>,
    /// Sets are padded to this many bytes (NetFlow v9 asks for 4; IPFIX 1).
    align: usize,
}

impl SetWriter {
    /// A writer whose first `header_len` bytes are the protocol header.
    #[must_use]
    pub fn new(header: Vec<u8>, align: usize) -> Self {
        Self { buf: header, set: None, align }
    }

    /// The size of the message if `len` more bytes went into set `set_id`.
    #[must_use]
    pub fn size_with(&self, set_id: u16, len: usize) -> usize {
        let framing = match self.set {
            Some((id, _)) if id == set_id => 0,
            _ => SET_HEADER_LEN + self.align,
        };
        self.buf.len() + len + framing + self.align
    }

    /// Appends to set `set_id`, opening it (and closing another) as needed.
    pub fn append(&mut self, set_id: u16, bytes: impl FnOnce(&mut Vec<u8>)) {
        if !matches!(self.set, Some((id, _)) if id == set_id) {
            self.close_set();
            self.set = Some((set_id, self.buf.len()));
            self.buf.extend_from_slice(&set_id.to_be_bytes());
            self.buf.extend_from_slice(&[0, 0]);
        }
        bytes(&mut self.buf);
    }

    /// Pads and closes the open set, filling in its length.
    pub fn close_set(&mut self) {
        if let Some((_, start)) = self.set.take() {
            while !(self.buf.len() - start).is_multiple_of(self.align) {
                self.buf.push(0);
            }
            let len = u16::try_from(self.buf.len() - start).unwrap_or(u16::MAX);
            self.buf[start + 2..start + 4].copy_from_slice(&len.to_be_bytes());
        }
    }
}
