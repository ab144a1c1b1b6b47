//! IP protocol numbers (IANA's "Assigned Internet Protocol Numbers"), one
//! list for the classifier, the cache and the exporters.

pub const HOPOPTS: u8 = 0;
pub const ICMP: u8 = 1;
/// IPv4 in IP (RFC 2003), also as an IPv6 next header.
pub const IPIP: u8 = 4;
pub const TCP: u8 = 6;
pub const UDP: u8 = 17;
/// IPv6 in IP (RFC 4213).
pub const IPV6: u8 = 41;
pub const ROUTING: u8 = 43;
pub const FRAGMENT: u8 = 44;
pub const GRE: u8 = 47;
pub const AH: u8 = 51;
pub const ICMPV6: u8 = 58;
pub const DSTOPTS: u8 = 60;
pub const MH: u8 = 135;
pub const HIP: u8 = 139;
pub const SHIM6: u8 = 140;
