//! Reading and writing the one-frame pcap files in `fixtures/`.

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
