//! Userspace-only glue: `aya::Pod` for the shared structs, and hashing the
//! flow key.

use core::{
    hash::{Hash, Hasher},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
};

use crate::{
    DatapathStats, ExportTuple, FallbackRecord, FlowKey, FlowStats,
    flow::{
        DIRECTION_INGRESS, ENCAP_GENEVE, ENCAP_GRE, ENCAP_IPIP, ENCAP_VXLAN, TUNNEL_FLAG_ETHERNET, TUNNEL_FLAG_KEY,
    },
};

/// The tunnel a flow was seen in, as userspace names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tunnel {
    Vxlan,
    Geneve,
    Ipip,
    Gre,
}

impl Tunnel {
    /// Every tunnel type, in `ENCAP_*` order.
    pub const ALL: [Tunnel; 4] = [Tunnel::Vxlan, Tunnel::Geneve, Tunnel::Ipip, Tunnel::Gre];

    /// The tunnel of a key's `encap` value; `None` for plain traffic (and
    /// for a value no datapath writes).
    #[must_use]
    pub const fn of_encap(encap: u8) -> Option<Self> {
        match encap {
            ENCAP_VXLAN => Some(Tunnel::Vxlan),
            ENCAP_GENEVE => Some(Tunnel::Geneve),
            ENCAP_IPIP => Some(Tunnel::Ipip),
            ENCAP_GRE => Some(Tunnel::Gre),
            _ => None,
        }
    }

    /// The key's `encap` value.
    #[must_use]
    pub const fn encap(self) -> u8 {
        match self {
            Tunnel::Vxlan => ENCAP_VXLAN,
            Tunnel::Geneve => ENCAP_GENEVE,
            Tunnel::Ipip => ENCAP_IPIP,
            Tunnel::Gre => ENCAP_GRE,
        }
    }

    /// Lower-case name, as JSON, logs and metrics give it.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Tunnel::Vxlan => "vxlan",
            Tunnel::Geneve => "geneve",
            Tunnel::Ipip => "ipip",
            Tunnel::Gre => "gre",
        }
    }

    /// Whether the outer tuple is UDP with ports (VXLAN, Geneve); IP in IP
    /// and GRE have none.
    #[must_use]
    pub const fn is_udp(self) -> bool {
        matches!(self, Tunnel::Vxlan | Tunnel::Geneve)
    }
}

/// A socket of the exporter, as the datapath must recognise its packets:
/// IP protocol number and both ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketTuple {
    pub protocol: u8,
    pub local: SocketAddr,
    pub remote: SocketAddr,
}

/// An address as the flow key and the datapath's maps hold it: IPv4 in the
/// first four bytes, the rest zero.
#[must_use]
pub fn addr16(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => {
            let mut a = [0; 16];
            a[..4].copy_from_slice(&v4.octets());
            a
        }
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// The address `bytes` holds for IP version `version` (6; anything else is
/// read as IPv4).
#[must_use]
pub fn ip_from(version: u8, bytes: &[u8; 16]) -> IpAddr {
    if version == 6 {
        IpAddr::V6(Ipv6Addr::from(*bytes))
    } else {
        IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]))
    }
}

/// The key's fields as userspace reads them.
impl FlowKey {
    /// The (inner, for a tunnel) source address.
    #[must_use]
    pub fn src_ip(&self) -> IpAddr {
        ip_from(self.ip_version, &self.src_addr)
    }

    /// The (inner, for a tunnel) destination address.
    #[must_use]
    pub fn dst_ip(&self) -> IpAddr {
        ip_from(self.ip_version, &self.dst_addr)
    }

    /// The tunnel's outer source and destination addresses, for a
    /// tunnelled flow.
    #[must_use]
    pub fn outer_ips(&self) -> Option<(IpAddr, IpAddr)> {
        self.tunnel().map(|_| {
            (ip_from(self.outer_ip_version, &self.outer_src_addr), ip_from(self.outer_ip_version, &self.outer_dst_addr))
        })
    }

    /// The tunnel the flow was seen in, `None` for plain traffic.
    #[must_use]
    pub const fn tunnel(&self) -> Option<Tunnel> {
        Tunnel::of_encap(self.encap)
    }

    /// Seen inside VXLAN: `tunnel_id` is the VNI.
    #[must_use]
    pub fn is_vxlan(&self) -> bool {
        self.encap == ENCAP_VXLAN
    }

    /// The tunnel's id, where its header carried one: the VNI of VXLAN and
    /// Geneve, the key of GRE. `None` for plain traffic, IP in IP and GRE
    /// without a key.
    #[must_use]
    pub const fn tunnel_id(&self) -> Option<u32> {
        if self.encap != 0 && self.tunnel_flags & TUNNEL_FLAG_KEY != 0 { Some(self.tunnel_id) } else { None }
    }

    /// NVGRE (RFC 7637): GRE carrying Ethernet with a key, whose top 24
    /// bits are the virtual subnet id. Returns the VSID.
    #[must_use]
    pub const fn nvgre_vsid(&self) -> Option<u32> {
        let nvgre = TUNNEL_FLAG_KEY | TUNNEL_FLAG_ETHERNET;
        if self.encap == ENCAP_GRE && self.tunnel_flags & nvgre == nvgre { Some(self.tunnel_id >> 8) } else { None }
    }

    /// ICMP or ICMPv6, whose `dst_port` holds the type and code, as the
    /// datapath reads them whatever the IP version.
    #[must_use]
    pub fn is_icmp(&self) -> bool {
        matches!(self.protocol, crate::ipproto::ICMP | crate::ipproto::ICMPV6)
    }

    /// Seen arriving on the interface (otherwise leaving it).
    #[must_use]
    pub fn is_ingress(&self) -> bool {
        self.direction == DIRECTION_INGRESS
    }
}

/// The fields' sizes: with them adding up to the struct's, `FlowKey` has no
/// padding the compiler could leave uninitialised, so its bytes are its value.
const FLOW_KEY_FIELDS: usize = 4 * 16 + 2 * 4 + 5 * 2 + 8 + 2;
const _: () = assert!(size_of::<FlowKey>() == FLOW_KEY_FIELDS);

impl FlowKey {
    /// The key as the kernel's map stores and compares it.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; FLOW_KEY_FIELDS] {
        // SAFETY: `FlowKey` is `repr(C)` with no padding (checked above) and
        // alignment at least 1, so its bytes are initialised and the
        // reference lives no longer than `self`.
        unsafe { &*core::ptr::from_ref(self).cast::<[u8; FLOW_KEY_FIELDS]>() }
    }
}

/// The key's bytes in one write: a keyed hash over 92 bytes at once is about
/// twice as fast as one write per field, and the cache hashes every delta.
impl Hash for FlowKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(self.as_bytes());
    }
}

// SAFETY: plain `#[repr(C)]` data with explicit padding; every bit pattern is
// a valid value.
unsafe impl aya::Pod for FlowKey {}
// SAFETY: as above.
unsafe impl aya::Pod for FlowStats {}
// SAFETY: as above.
unsafe impl aya::Pod for DatapathStats {}
// SAFETY: as above.
unsafe impl aya::Pod for FallbackRecord {}
// SAFETY: as above.
unsafe impl aya::Pod for ExportTuple {}
// SAFETY: as above.
unsafe impl aya::Pod for crate::NonIpSlot {}
