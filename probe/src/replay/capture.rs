//! Packet captures read one packet at a time (memory bounded by a packet,
//! not the file): pcap (microsecond or nanosecond) and pcapng (each
//! interface's own time resolution), from a file or standard input, with
//! link types Ethernet, Linux cooked v1 and v2, and raw IP. Each packet
//! comes out as the Ethernet frame the classifier reads: a cooked or raw
//! packet gets an Ethernet header made for it, of its protocol.
//!
//! A cooked capture says which way a packet went (outgoing: egress) and,
//! v2, on which interface; a pcapng says on which of its interfaces.

use std::{
    fs::File,
    io::{BufReader, Read},
    os::unix::fs::FileTypeExt as _,
    path::Path,
};

use pcap_file::{
    DataLink, PcapError,
    pcap::PcapReader,
    pcapng::{Block, PcapNgReader, blocks::interface_description::InterfaceDescriptionOption},
};
use vxflow_common::flow::{DIRECTION_EGRESS, DIRECTION_INGRESS};

/// Largest packet taken from a capture; larger is a lying length field.
pub const MAX_PACKET: usize = 256 * 1024;
/// Largest snap length a pcap may state (tcpdump's is 262,144).
const MAX_SNAPLEN: usize = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("opening {path}")]
    Open {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a packet capture (pcap or pcapng): it starts with {magic}")]
    NotACapture { path: String, magic: String },
    #[error("{path}: {what}")]
    Format { path: String, what: String },
    #[error("{path} is cut short after {packets} packets: {what}")]
    Truncated { path: String, packets: u64, what: String },
    #[error("{path}: link type {link:?} is not one vxflow reads (Ethernet, Linux cooked v1 or v2, raw IP)")]
    LinkType { path: String, link: DataLink },
}

/// One packet of a capture, as the classifier takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapturedPacket {
    /// When it was captured, nanoseconds since the epoch.
    pub unix_ns: i128,
    /// The packet as an Ethernet frame.
    pub frame: Vec<u8>,
    /// Its length as an Ethernet frame on the wire: more than `frame`
    /// when the capture kept only its start (a snap length).
    pub wire_len: usize,
    pub direction: u8,
    /// Which interface of the capture saw it: pcapng's interface number, a
    /// cooked v2 capture's ifindex, else 0.
    pub interface: u32,
}

/// What a packet's bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Link {
    Ethernet,
    Cooked,
    Cooked2,
    RawIp,
}

impl Link {
    fn of(link: DataLink, path: &str) -> Result<Self, CaptureError> {
        Ok(match link {
            DataLink::ETHERNET => Link::Ethernet,
            DataLink::LINUX_SLL => Link::Cooked,
            DataLink::LINUX_SLL2 => Link::Cooked2,
            DataLink::RAW | DataLink::IPV4 | DataLink::IPV6 => Link::RawIp,
            other => return Err(CaptureError::LinkType { path: path.to_owned(), link: other }),
        })
    }
}

/// A pcapng interface: its link type, time unit and name.
struct Interface {
    link: Link,
    /// `if_name`, as the capturing tool recorded it (`eth0`).
    name: Option<String>,
    /// Nanoseconds per timestamp unit, as numerator and denominator.
    unit: (u128, u128),
}

enum Format {
    Pcap(PcapReader<Box<dyn Read>>, Link),
    PcapNg(PcapNgReader<Box<dyn Read>>, Vec<Interface>),
}

/// An open capture.
pub struct Capture {
    path: String,
    format: Format,
    packets: u64,
}

impl Capture {
    /// Opens `path`, or standard input for `-`.
    ///
    /// # Errors
    /// When it cannot be opened or is not a capture vxflow reads.
    pub fn open(path: &Path) -> Result<Self, CaptureError> {
        let shown = if path == Path::new("-") { "standard input".to_owned() } else { path.display().to_string() };
        let input: Box<dyn Read> = if path == Path::new("-") {
            Box::new(BufReader::with_capacity(1 << 16, std::io::stdin()))
        } else {
            let file = open_regular(path).map_err(|source| CaptureError::Open { path: shown.clone(), source })?;
            Box::new(BufReader::with_capacity(1 << 16, file))
        };
        Self::from_reader(shown, input)
    }

    /// Reads a capture from `input`, named `shown` in errors.
    ///
    /// # Errors
    /// When it is not a capture vxflow reads.
    pub fn from_reader(shown: String, mut input: Box<dyn Read>) -> Result<Self, CaptureError> {
        let mut magic = [0u8; 4];
        let got =
            read_full(&mut input, &mut magic).map_err(|source| CaptureError::Open { path: shown.clone(), source })?;
        let input: Box<dyn Read> = Box::new(std::io::Cursor::new(magic[..got].to_vec()).chain(input));
        let format_err = |e: PcapError| CaptureError::Format { path: shown.clone(), what: e.to_string() };
        let format = match magic {
            [0x0a, 0x0d, 0x0d, 0x0a] => Format::PcapNg(PcapNgReader::new(input).map_err(format_err)?, Vec::new()),
            [0xd4, 0xc3, 0xb2, 0xa1]
            | [0xa1, 0xb2, 0xc3, 0xd4]
            | [0x4d, 0x3c, 0xb2, 0xa1]
            | [0xa1, 0xb2, 0x3c, 0x4d] => {
                let reader = PcapReader::new(input).map_err(format_err)?;
                // A record may be as long as the snap length says, and is
                // read whole: a lying header must not make it gigabytes.
                let snaplen = reader.header().snaplen;
                if snaplen as usize > MAX_SNAPLEN {
                    return Err(CaptureError::Format {
                        path: shown,
                        what: format!("a snap length of {snaplen} bytes, more than any packet (at most {MAX_SNAPLEN})"),
                    });
                }
                let link = Link::of(reader.header().datalink, &shown)?;
                Format::Pcap(reader, link)
            }
            _ => {
                let magic = magic[..got].iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ");
                return Err(CaptureError::NotACapture {
                    path: shown,
                    magic: if got == 0 { "nothing".into() } else { magic },
                });
            }
        };
        Ok(Self { path: shown, format, packets: 0 })
    }

    /// The capture's name, as errors give it.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.path
    }

    /// The name a pcapng capture gave its interface `id` (`if_name`), if
    /// it gave one.
    #[must_use]
    pub fn interface_name(&self, id: u32) -> Option<&str> {
        match &self.format {
            Format::PcapNg(_, interfaces) => interfaces.get(id as usize)?.name.as_deref(),
            Format::Pcap(..) => None,
        }
    }

    /// The next packet, or `None` at the end.
    ///
    /// # Errors
    /// When the file is cut short or malformed; the packets before stand.
    pub fn next_packet(&mut self) -> Result<Option<CapturedPacket>, CaptureError> {
        loop {
            let packet = match &mut self.format {
                Format::Pcap(reader, link) => match reader.next_packet() {
                    None => return Ok(None),
                    Some(Err(e)) => return Err(self.error(&e)),
                    Some(Ok(p)) => {
                        let unix_ns = i128::try_from(p.timestamp.as_nanos()).unwrap_or(i128::MAX);
                        make(*link, unix_ns, &p.data, p.orig_len as usize, 0)
                    }
                },
                Format::PcapNg(reader, interfaces) => match reader.next_block() {
                    None => return Ok(None),
                    Some(Err(e)) => return Err(self.error(&e)),
                    Some(Ok(Block::InterfaceDescription(idb))) => {
                        let link = Link::of(idb.linktype, &self.path)?;
                        let unit = idb
                            .options
                            .iter()
                            .find_map(|o| match o {
                                InterfaceDescriptionOption::IfTsResol(r) => Some(*r),
                                _ => None,
                            })
                            .map_or((1000, 1), unit_of);
                        let name = idb.options.iter().find_map(|o| match o {
                            InterfaceDescriptionOption::IfName(n) => Some(n.to_string()),
                            _ => None,
                        });
                        interfaces.push(Interface { link, name, unit });
                        continue;
                    }
                    Some(Ok(Block::EnhancedPacket(epb))) => {
                        let Some(iface) = interfaces.get(epb.interface_id as usize) else {
                            return Err(CaptureError::Format {
                                path: self.path.clone(),
                                what: format!("a packet of interface {}, which was never described", epb.interface_id),
                            });
                        };
                        // pcap-file reads the raw count into nanoseconds; scale it by the interface's unit.
                        let raw = epb.timestamp.as_nanos();
                        let unix_ns =
                            i128::try_from(raw.saturating_mul(iface.unit.0) / iface.unit.1).unwrap_or(i128::MAX);
                        make(iface.link, unix_ns, &epb.data, epb.original_len as usize, epb.interface_id)
                    }
                    Some(Ok(Block::SimplePacket(spb))) => {
                        let Some(iface) = interfaces.first() else { continue };
                        // No timestamp: the previous packet's time stands.
                        make(iface.link, i128::MIN, &spb.data, spb.original_len as usize, 0)
                    }
                    Some(Ok(Block::SectionHeader(_))) => {
                        // A new section's interfaces are its own.
                        interfaces.clear();
                        continue;
                    }
                    Some(Ok(_)) => continue,
                },
            };
            self.packets += 1;
            match packet {
                Some(p) => return Ok(Some(p)),
                // Too short to be its link type's header: an empty frame
                // the classifier counts as malformed.
                None => {
                    return Ok(Some(CapturedPacket {
                        unix_ns: i128::MIN,
                        frame: Vec::new(),
                        wire_len: 0,
                        direction: DIRECTION_INGRESS,
                        interface: 0,
                    }));
                }
            }
        }
    }

    fn error(&self, e: &PcapError) -> CaptureError {
        match e {
            PcapError::IncompleteBuffer | PcapError::IoError(_) => CaptureError::Truncated {
                path: self.path.clone(),
                packets: self.packets,
                what: "the next record runs past the end".into(),
            },
            _ => CaptureError::Format { path: self.path.clone(), what: format!("after {} packets: {e}", self.packets) },
        }
    }
}

/// Nanoseconds per unit of pcapng's `if_tsresol`: 10^-n seconds, or 2^-n
/// with the top bit set.
fn unit_of(resol: u8) -> (u128, u128) {
    let n = u32::from(resol & 0x7f);
    if resol & 0x80 == 0 {
        if n <= 9 { (10u128.pow(9 - n), 1) } else { (1, 10u128.pow((n - 9).min(30))) }
    } else {
        (1_000_000_000, 1u128 << n.min(100))
    }
}

/// The packet of link type `link` as an Ethernet frame; `None` when it is
/// shorter than its link header.
fn make(link: Link, unix_ns: i128, data: &[u8], orig_len: usize, interface: u32) -> Option<CapturedPacket> {
    let data = &data[..data.len().min(MAX_PACKET)];
    let eth = |ethertype: u16, payload: &[u8]| {
        let mut frame = Vec::with_capacity(14 + payload.len());
        frame.extend_from_slice(&[0; 12]);
        frame.extend_from_slice(&ethertype.to_be_bytes());
        frame.extend_from_slice(payload);
        frame
    };
    // The frame, which way and where, and how many link bytes the capture
    // had before the packet and the frame has before it.
    let (frame, direction, interface, dropped, added) = match link {
        Link::Ethernet => (data.to_vec(), DIRECTION_INGRESS, interface, 0, 0),
        // struct sll_header: packet type, ARPHRD, address length, 8 address
        // bytes, protocol.
        Link::Cooked => {
            let h = data.get(..16)?;
            let direction = if u16::from_be_bytes([h[0], h[1]]) == 4 { DIRECTION_EGRESS } else { DIRECTION_INGRESS };
            (eth(u16::from_be_bytes([h[14], h[15]]), &data[16..]), direction, interface, 16, 14)
        }
        // struct sll2_header: protocol, reserved, ifindex, ARPHRD, packet
        // type, address length, 8 address bytes.
        Link::Cooked2 => {
            let h = data.get(..20)?;
            let direction = if h[10] == 4 { DIRECTION_EGRESS } else { DIRECTION_INGRESS };
            let ifindex = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
            (eth(u16::from_be_bytes([h[0], h[1]]), &data[20..]), direction, ifindex, 20, 14)
        }
        Link::RawIp => {
            let ethertype = match data.first()? >> 4 {
                6 => 0x86dd,
                _ => 0x0800,
            };
            (eth(ethertype, data), DIRECTION_INGRESS, interface, 0, 14)
        }
    };
    // A capture with a snap length keeps the start of each packet; the
    // classifier reads its headers there and its length from here, as the
    // kernel reads an skb's.
    // The stated length is the capture's word: held to the largest packet
    // kept, so a lie cannot swell a flow's bytes past any real frame.
    let wire_len = (orig_len.saturating_sub(dropped) + added).clamp(frame.len(), MAX_PACKET + added);
    Some(CapturedPacket { unix_ns, frame, wire_len, direction, interface })
}

/// Opens a file refusing what is not a regular file or a FIFO's read end
/// would block forever on: a regular file or a FIFO (`tcpdump -w fifo`)
/// both stream; a directory or device is refused.
fn open_regular(path: &Path) -> std::io::Result<File> {
    let meta = std::fs::metadata(path)?;
    let kind = meta.file_type();
    if !(kind.is_file() || kind.is_fifo()) {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file or a FIFO"));
    }
    File::open(path)
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}
