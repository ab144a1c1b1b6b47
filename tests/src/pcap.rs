//! Reading and writing the one-frame pcap files in `fixtures/`, and pcap
//! bytes of many timed frames for `vxflow replay`.

use std::{
    fs::File,
    path::{Path, PathBuf},
};

use pcap_file::pcap::{PcapPacket, PcapReader, PcapWriter};

/// `fixtures/classifier/` in the source tree.
#[must_use]
pub fn classifier_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/classifier")
}

/// Writes one frame with a fixed timestamp, so the file is reproducible.
pub fn write(path: &Path, frame: &[u8]) {
    let mut w = PcapWriter::new(File::create(path).unwrap()).unwrap();
    let len = u32::try_from(frame.len()).unwrap();
    w.write_packet(&PcapPacket::new(std::time::Duration::ZERO, len, frame)).unwrap();
}

/// The first frame of a pcap file.
#[must_use]
pub fn read(path: &Path) -> Vec<u8> {
    let file = File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut r = PcapReader::new(file).unwrap();
    r.next_packet().expect("pcap file holds no packet").unwrap().data.into_owned()
}

/// A pcap file header: nanosecond timestamps, snap length 65,535, link
/// type `link` (1 Ethernet, 113 Linux cooked, 276 cooked v2, 101 raw IP).
#[must_use]
pub fn header(link: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(24);
    out.extend_from_slice(&0xa1b2_3c4d_u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65_535u32.to_le_bytes());
    out.extend_from_slice(&link.to_le_bytes());
    out
}

/// One pcap record: `frame`, captured whole at `unix_ns`.
#[must_use]
pub fn record(unix_ns: u64, frame: &[u8]) -> Vec<u8> {
    let len = u32::try_from(frame.len()).unwrap();
    let mut out = Vec::with_capacity(16 + frame.len());
    out.extend_from_slice(&u32::try_from(unix_ns / 1_000_000_000).unwrap().to_le_bytes());
    out.extend_from_slice(&u32::try_from(unix_ns % 1_000_000_000).unwrap().to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(frame);
    out
}

/// A whole pcap of `frames`, each `(unix_ns, frame)`, of link type `link`.
#[must_use]
pub fn capture(frames: &[(u64, Vec<u8>)], link: u32) -> Vec<u8> {
    let mut out = header(link);
    for (ns, frame) in frames {
        out.extend(record(*ns, frame));
    }
    out
}
