//! The kernel's classifier (`vxflow_common::classify`, the same source the
//! TC programs are built from) run on the host over captured bytes: a
//! [`Captured`] packet with the tunnel settings the kernel's maps would
//! hold ([`Settings`]), read by [`Slice`]. The kernel reads in place first
//! and copies for what that leaves (IPv6 extension headers, non-linear
//! skbs); the host copies always, which is what the kernel's second read
//! gives, so the two agree on every packet (the differential test checks).

use vxflow_common::{
    Counter, FlowKey,
    classify::{self, Bytes, CopiedSpan, Counted, NON_IP, Packet, Scratch, VLAN_TOO_DEEP},
    flow::ENCAP_NONE,
    ports::{self, PORT_KIND_WORDS, PortKind},
};

use crate::datapath::TunnelDecoding;

/// What the kernel's tunnel maps would hold: which UDP ports carry which
/// tunnel, which IP tunnels are off, and whether the capture's interface is
/// one where tunnels this node terminates arrive.
#[derive(Clone, Debug)]
pub struct Settings {
    udp_ports: [u64; PORT_KIND_WORDS as usize],
    ip_tunnels_off: u32,
    trusted: bool,
}

impl Settings {
    #[must_use]
    pub fn new(tunnels: &TunnelDecoding, trusted: bool) -> Self {
        Self { udp_ports: ports::kind_map(&tunnels.port_kinds()), ip_tunnels_off: tunnels.ip_tunnels_off(), trusted }
    }
}

/// One captured frame, as the classifier sees it.
pub struct Captured<'a> {
    /// The bytes captured: all of the frame, or its start.
    pub frame: &'a [u8],
    /// The frame's length on the wire (`skb->len`), at least `frame`'s.
    pub len: usize,
    /// A VLAN tag the capture kept outside the frame (a Linux cooked
    /// capture's, or pcapng metadata), as the kernel keeps an offloaded one.
    pub vlan: Option<u16>,
    pub ifindex: u32,
    /// `(gso_segs, gso_size)`: `(0, 0)` for a captured packet, which is one
    /// wire packet; set to compare with the kernel on a super-packet.
    pub gso: (u32, u32),
    pub settings: &'a Settings,
}

impl Packet for Captured<'_> {
    fn frame_len(&self) -> usize {
        self.len.max(self.frame.len())
    }

    fn offloaded_vlan(&self) -> Option<u16> {
        self.vlan
    }

    fn ifindex(&self) -> u32 {
        self.ifindex
    }

    fn gso(&self) -> (u32, u32) {
        self.gso
    }

    fn tunnel_trusted(&self) -> bool {
        self.settings.trusted
    }

    fn udp_tunnel(&self, port: u16) -> u8 {
        let at = PortKind::of(port);
        self.settings.udp_ports.get(at.word as usize).map_or(ENCAP_NONE, |w| at.in_word(*w))
    }

    fn ip_tunnel_on(&self, tunnel: u8) -> bool {
        self.settings.ip_tunnels_off & (1 << tunnel) == 0
    }
}

/// A captured frame's bytes, copied out a header at a time.
pub struct Slice<'a>(&'a [u8]);

impl<'a> Bytes<'a> for Slice<'a> {
    type Packet = Captured<'a>;
    type Span<const N: usize> = CopiedSpan<N>;

    fn open(packet: &'a Captured<'a>) -> Option<Self> {
        Some(Self(packet.frame))
    }

    fn span<const N: usize>(&self, off: usize) -> Option<CopiedSpan<N>> {
        let bytes = self.0.get(off..off.checked_add(N)?)?;
        Some(CopiedSpan(bytes.try_into().ok()?))
    }

    const WALKS_IPV6_EXTENSIONS: bool = true;
}

/// What one packet is, as the kernel would account it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Classified {
    /// A flow's packet: its key and what it adds.
    Flow(FlowKey, Counted),
    /// No flow: the counter it goes in, and a note beside it.
    NoFlow { bucket: Counter, note: Option<Counter> },
}

/// Classifies `packet`, seen in `direction`, with the kernel's code.
#[must_use]
pub fn classify(packet: &Captured<'_>, direction: u8) -> Classified {
    let mut scratch = Scratch::default();
    let status = match Slice::open(packet) {
        Some(bytes) => classify::parse_frame(packet, &bytes, &mut scratch, u64::from(direction)),
        None => classify::MALFORMED,
    };
    match classify::layers(status, &scratch) {
        Ok(layers) => Classified::Flow(scratch.key, classify::counted(packet, &scratch.key, &layers)),
        // As the kernel's accounting buckets a packet without a flow.
        Err(NON_IP) => Classified::NoFlow { bucket: Counter::NonIp, note: None },
        Err(VLAN_TOO_DEEP) => Classified::NoFlow { bucket: Counter::Malformed, note: Some(Counter::VlanTooDeep) },
        Err(_) => Classified::NoFlow { bucket: Counter::Malformed, note: None },
    }
}

impl Classified {
    /// Adds the packet to the datapath counters as the kernel's accounting
    /// does (`Seen`, `Accounted` or its bucket, its notes, `GsoSkbs`), by
    /// calling `add` for each.
    pub fn tally(&self, mut add: impl FnMut(Counter, u64)) {
        match self {
            Classified::Flow(_, c) => {
                let packets = c.wire.packets;
                add(Counter::Seen, packets);
                add(Counter::Accounted, packets);
                if packets > 1 {
                    add(Counter::GsoSkbs, 1);
                }
                for note in Counter::NOTES {
                    if c.notes & note.bit() != 0 {
                        add(note, packets);
                    }
                }
            }
            Classified::NoFlow { bucket, note } => {
                add(Counter::Seen, 1);
                add(*bucket, 1);
                if let Some(n) = note {
                    add(*n, 1);
                }
            }
        }
    }
}
