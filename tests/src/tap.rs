//! A TAP device whose frames reach the kernel as **non-linear** skbs: with
//! `IFF_VNET_HDR`, a blocking descriptor and a virtio-net header whose
//! `hdr_len` is 14, `tun_get_user` puts the Ethernet header in the linear
//! area and everything after it in page fragments (`tun_alloc_skb`), for a
//! frame of a page or more (smaller ones it keeps linear, so `receive` pads
//! them). That is the shape of a frame a NIC split into header and pages,
//! which `BPF_PROG_TEST_RUN` (always linear) cannot make.

use std::{io::Write as _, os::fd::AsRawFd as _};

const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_VNET_HDR: libc::c_short = 0x4000;
/// `_IOW('T', 202, int)`.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
/// `struct virtio_net_hdr`: `flags`, `gso_type`, `hdr_len`, `gso_size`,
/// `csum_start`, `csum_offset` (little-endian on x86).
const VNET_HDR_LEN: usize = 10;
/// Bytes the kernel puts in the linear area: the Ethernet header only.
const LINEAR: u16 = 14;
/// Frames are padded to this length: tun keeps anything under a page
/// (less its headroom) linear.
pub const PADDED_LEN: usize = 4200;

#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// An open TAP device in the calling thread's network namespace.
pub struct Tap {
    file: std::fs::File,
}

impl Tap {
    /// Creates TAP `name`. The caller brings it up (`ip link set NAME up`).
    ///
    /// # Panics
    /// When `/dev/net/tun` or the ioctl fails.
    #[must_use]
    pub fn new(name: &str) -> Self {
        // Blocking on purpose: a non-blocking writer lets tun build a
        // linear skb (tun_can_build_skb).
        let file = std::fs::OpenOptions::new().read(true).write(true).open("/dev/net/tun").expect("/dev/net/tun");
        let mut req = IfReq { name: [0; libc::IFNAMSIZ], flags: IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, _pad: [0; 22] };
        assert!(name.len() < libc::IFNAMSIZ);
        req.name[..name.len()].copy_from_slice(name.as_bytes());
        // SAFETY: TUNSETIFF reads a `struct ifreq`, which `IfReq` lays out.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF, &raw mut req) };
        assert_eq!(rc, 0, "TUNSETIFF {name}: {}", std::io::Error::last_os_error());
        Self { file }
    }

    /// Hands `frame` (at least 14 bytes) to the kernel as received on the
    /// TAP, its Ethernet header linear and the rest in fragments, padded
    /// with zeros to [`PADDED_LEN`] (link padding after the IP packet, as
    /// an IP parser sees it; a frame cut short on purpose is no longer).
    ///
    /// # Panics
    /// When the write fails.
    pub fn receive(&mut self, frame: &[u8]) {
        assert!(frame.len() >= usize::from(LINEAR));
        let mut buf = vec![0u8; VNET_HDR_LEN];
        buf[2..4].copy_from_slice(&LINEAR.to_le_bytes());
        buf.extend_from_slice(frame);
        buf.resize(VNET_HDR_LEN + PADDED_LEN.max(frame.len()), 0);
        let n = self.file.write(&buf).expect("write to the TAP");
        assert_eq!(n, buf.len());
    }
}

/// Whether vxflow parses `frame` once the TAP delivered it (rather than
/// counting it as non-IP from its Ethernet type): the receive path moves
/// the first VLAN tag into the skb, and vxflow parses a frame whose Ethernet
/// type is then IP or a further VLAN tag. Bytes past the frame are the
/// zero padding `Tap::receive` adds.
#[must_use]
pub fn parsed_on_receive(frame: &[u8]) -> bool {
    let byte = |i: usize| frame.get(i).copied().unwrap_or(0);
    let at = |i: usize| u16::from_be_bytes([byte(i), byte(i + 1)]);
    let mut ethertype = at(12);
    if matches!(ethertype, 0x8100 | 0x88a8) {
        ethertype = at(16);
    }
    matches!(ethertype, 0x0800 | 0x86dd | 0x8100 | 0x88a8)
}
