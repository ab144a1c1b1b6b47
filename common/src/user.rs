//! Userspace-only glue: `aya::Pod` for the shared structs, and hashing the
//! flow key.

use core::{
    hash::{Hash, Hasher},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
};

use crate::{
    DatapathStats, ExportTuple, FallbackRecord, FlowKey, FlowStats,
    flow::{DIRECTION_INGRESS, ENCAP_VXLAN},
};

/// IP protocol numbers whose "ports" the datapath fills with the ICMP type
/// (high byte of `dst_port`) and code.
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_ICMPV6: u8 = 58;

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

    /// The tunnel's outer source and destination addresses, for a VXLAN flow.
    #[must_use]
    pub fn outer_ips(&self) -> Option<(IpAddr, IpAddr)> {
        self.is_vxlan().then(|| {
            (ip_from(self.outer_ip_version, &self.outer_src_addr), ip_from(self.outer_ip_version, &self.outer_dst_addr))
        })
    }

    /// Seen inside VXLAN: `vni` and the `outer_*` fields are set.
    #[must_use]
    pub fn is_vxlan(&self) -> bool {
        self.encap == ENCAP_VXLAN
    }

    /// ICMP or ICMPv6, whose `dst_port` holds the type and code, as the
    /// datapath reads them whatever the IP version.
    #[must_use]
    pub fn is_icmp(&self) -> bool {
        matches!(self.protocol, IPPROTO_ICMP | IPPROTO_ICMPV6)
    }

    /// Seen arriving on the interface (otherwise leaving it).
    #[must_use]
    pub fn is_ingress(&self) -> bool {
        self.direction == DIRECTION_INGRESS
    }
}

/// The fields' sizes: with them adding up to the struct's, `FlowKey` has no
/// padding the compiler could leave uninitialised, so its bytes are its value.
const FLOW_KEY_FIELDS: usize = 4 * 16 + 2 * 4 + 5 * 2 + 7 + 3;
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
