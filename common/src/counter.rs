//! Datapath counters, one slot each in a per-CPU array.
//!
//! Every packet a program sees lands in exactly one of the buckets
//! (`Counter::BUCKETS`) `Accounted`, `Fallback`, `Lost`, `NonIp`, `Malformed`, `SelfExport` or
//! `Unsampled`, so `Seen` is their sum at all times; tests rely on it. The remaining
//! counters annotate accounted packets.
//!
//! Non-IP frames on CPUs below [`NON_IP_CPUS`] are counted apart, in
//! [`NonIpSlot`]s; userspace adds them to `NonIp` and `Seen`, so a snapshot
//! reads as if every packet were counted here.

/// All counters of one CPU, the single value of the per-CPU counter map: one
/// lookup per packet serves every counter.
pub type Counters = [u64; Counter::COUNT as usize];

/// CPUs that count their non-IP frames in a [`NonIpSlot`] of the global
/// array `NON_IP_FRAMES` (the `.bss` section), by CPU number; frames on
/// higher CPUs go to `Counters` like every other packet. The slot is a
/// fixed address plus the CPU number, where the per-CPU map is a lookup
/// with a chain of dependent loads: about 1 ns of a non-IP frame's 28.
pub const NON_IP_CPUS: usize = 1024;

/// One CPU's count of non-IP frames (segments, as `Seen` counts them),
/// alone in its cache line so that CPUs never write one line.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NonIpSlot {
    pub frames: u64,
    pub _pad: [u64; 7],
}

const _: () = assert!(core::mem::size_of::<NonIpSlot>() == 64);

/// The whole `.bss` section of the datapath object: the non-IP slots.
pub type NonIpSlots = [NonIpSlot; NON_IP_CPUS];

/// Defines [`Counter`] from one list, so the enum, [`Counter::ALL`],
/// [`Counter::COUNT`] and the names cannot disagree: a counter added to the
/// list is in all of them.
macro_rules! counters {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)+) => {
        /// Index of a datapath counter. Used only as an array index, never
        /// read from packet bytes.
        #[repr(u32)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Counter {
            $($(#[$doc])* $variant,)+
        }

        impl Counter {
            /// Every counter, in index order.
            pub const ALL: [Counter; Counter::COUNT as usize] = [$(Counter::$variant,)+];

            /// Number of counters, the length of the per-CPU array.
            #[expect(clippy::cast_possible_truncation, reason = "a few dozen counters")]
            pub const COUNT: u32 = [$($name,)+].len() as u32;

            /// Stable snake_case name, used in logs and metrics.
            #[must_use]
            pub const fn name(self) -> &'static str {
                match self {
                    $(Counter::$variant => $name,)+
                }
            }
        }
    };
}

counters! {
    /// Packets seen (GSO/GRO super-packets count as their segments).
    Seen => "seen_packets",
    /// Packets added to the current flow-map generation.
    Accounted => "accounted_packets",
    /// Packets sent to userspace through the fallback ring (flow map full).
    Fallback => "fallback_packets",
    /// Packets that could not be accounted at all (map and ring both full).
    Lost => "lost_packets",
    /// IP bytes of the `Lost` packets.
    LostBytes => "lost_bytes",
    /// Frames that carry no IPv4/IPv6 packet (ARP, LLDP, ...).
    NonIp => "non_ip_packets",
    /// Packets whose Ethernet, VLAN or IP header is cut short or invalid.
    Malformed => "malformed_packets",
    /// Accounted packets that were non-first IP fragments (no ports).
    Fragment => "fragment_packets",
    /// Accounted packets whose L4 header was cut short (no ports).
    L4Truncated => "l4_truncated_packets",
    /// Accounted packets whose IPv6 extension-header chain was too long.
    Ipv6ExtLimit => "ipv6_ext_limit_packets",
    /// Packets parsed as VXLAN down to the inner IP packet.
    Vxlan => "vxlan_packets",
    /// Packets parsed as Geneve down to the inner IP packet.
    Geneve => "geneve_packets",
    /// Packets parsed as IP in IP (IPv4 or IPv6 in IPv4 or IPv6).
    Ipip => "ipip_packets",
    /// Packets parsed as GRE down to the inner IP packet.
    Gre => "gre_packets",
    /// Packets to a tunnel (a VXLAN or Geneve port, GRE) whose tunnel header
    /// is cut short or breaks its specification (VXLAN's I flag clear,
    /// Geneve version not 0, GRE's reserved bits set); accounted as the
    /// outer flow.
    TunnelInvalid => "tunnel_invalid_packets",
    /// Tunnel packets whose payload is not an IP packet vxflow decodes (a
    /// non-IP or malformed inner frame, a Geneve control message, a GRE
    /// payload of another type or version); accounted as the outer flow.
    TunnelInnerNotIp => "tunnel_inner_not_ip_packets",
    /// Tunnelled packets whose inner packet is itself a tunnel (IP in IP,
    /// GRE, UDP to a tunnel port): accounted at the first tunnel's inner
    /// header as a plain flow of that protocol, not decoded further.
    NestedTunnel => "nested_tunnel_packets",
    /// Frames with more VLAN tags than `MAX_VLAN_TAGS` (counted in `Malformed`).
    VlanTooDeep => "vlan_too_deep_packets",
    /// Accounted GSO/GRO super-packets (one per skb, not per segment).
    GsoSkbs => "gso_skbs",
    /// Packets of the probe's own export traffic, not accounted.
    SelfExport => "self_export_packets",
    /// A tunnel (UDP to a tunnel port, IP in IP, GRE) on an interface where
    /// tunnels are not parsed (a pod-facing one): accounted as the plain
    /// flow it is.
    TunnelUntrusted => "tunnel_untrusted_packets",
    /// skbs (not packets) parsed through `bpf_skb_load_bytes` instead of
    /// in place: non-linear ones (GSO/GRO super-packets, frames a NIC split
    /// into header and pages) and IPv6 with extension headers.
    SlowParse => "slow_parse_skbs",
    /// IP packets that sampling (`kernel.sampling` > 1) left out. A TCP
    /// SYN, FIN or RST among them still adds its flags to its flow, with no
    /// packets or bytes.
    Unsampled => "unsampled_packets",
}

impl Counter {
    /// The buckets of the conservation law: every packet seen lands in
    /// exactly one, so `Seen` is their sum.
    pub const BUCKETS: [Counter; 7] = [
        Counter::Accounted,
        Counter::Fallback,
        Counter::Lost,
        Counter::NonIp,
        Counter::Malformed,
        Counter::SelfExport,
        Counter::Unsampled,
    ];

    /// The annotation counters: they describe accounted packets (by packet,
    /// not by skb) and are not buckets of the conservation law.
    pub const NOTES: [Counter; 11] = [
        Counter::Fragment,
        Counter::L4Truncated,
        Counter::Ipv6ExtLimit,
        Counter::Vxlan,
        Counter::Geneve,
        Counter::Ipip,
        Counter::Gre,
        Counter::TunnelInvalid,
        Counter::TunnelInnerNotIp,
        Counter::NestedTunnel,
        Counter::TunnelUntrusted,
    ];

    /// The counter of packets decoded through a tunnel of type `encap`
    /// (an `ENCAP_*` value).
    #[must_use]
    pub const fn of_tunnel(encap: u8) -> Option<Counter> {
        match encap {
            crate::flow::ENCAP_VXLAN => Some(Counter::Vxlan),
            crate::flow::ENCAP_GENEVE => Some(Counter::Geneve),
            crate::flow::ENCAP_IPIP => Some(Counter::Ipip),
            crate::flow::ENCAP_GRE => Some(Counter::Gre),
            _ => None,
        }
    }

    /// This counter's bit in a `1 << counter` set (the datapath's notes).
    #[must_use]
    pub const fn bit(self) -> u32 {
        1 << self as u32
    }
}

const _: () = assert!(Counter::COUNT <= 32, "the datapath's notes are a u32 of counter bits");

#[cfg(test)]
mod tests {
    use super::Counter;

    #[test]
    fn all_is_in_index_order() {
        for (i, c) in Counter::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i);
        }
    }

    /// Every counter is `Seen`, a bucket, a note, or one of the details
    /// below: a new counter must be placed, or the sum tests and the metrics
    /// would silently leave it out.
    #[test]
    fn every_counter_has_one_place() {
        // Bytes, a subset of Malformed, and two per-skb counts.
        let details = [Counter::LostBytes, Counter::VlanTooDeep, Counter::GsoSkbs, Counter::SlowParse];
        for c in Counter::ALL {
            let places = usize::from(c == Counter::Seen)
                + usize::from(Counter::BUCKETS.contains(&c))
                + usize::from(Counter::NOTES.contains(&c))
                + usize::from(details.contains(&c));
            assert_eq!(places, 1, "{c:?} is in {places} places");
        }
    }
}
