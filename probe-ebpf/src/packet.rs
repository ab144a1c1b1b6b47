//! The packet a TC program runs on, as the classifier reads it
//! (`vxflow_common::classify::Packet`): the skb's fields, and the tunnel
//! settings userspace keeps in the maps.

use aya_ebpf::programs::TcContext;
use vxflow_common::{TUNNEL_SLOT_SHARED, classify::Packet, flow::ENCAP_NONE, ports::PortKind, tunnel_slot};

use crate::maps::{IP_TUNNELS_OFF, TUNNEL_IFACES, TUNNEL_SLOTS, UDP_TUNNEL_PORTS};

/// The program's context, classified.
pub struct Tc<'a>(pub &'a TcContext);

impl Packet for Tc<'_> {
    #[inline(always)]
    fn frame_len(&self) -> usize {
        self.0.len() as usize
    }

    #[inline(always)]
    fn offloaded_vlan(&self) -> Option<u16> {
        // SAFETY: reading context fields the kernel exposes to sched_cls.
        let (present, tci) = unsafe { ((*self.0.skb.skb).vlan_present, (*self.0.skb.skb).vlan_tci) };
        (present != 0).then_some(tci as u16)
    }

    #[inline(always)]
    fn ifindex(&self) -> u32 {
        // SAFETY: reading a context field the kernel exposes to sched_cls.
        unsafe { (*self.0.skb.skb).ifindex }
    }

    #[inline(always)]
    fn gso(&self) -> (u32, u32) {
        // SAFETY: gso_* are readable by sched_cls programs since 5.7.
        unsafe { ((*self.0.skb.skb).gso_segs, (*self.0.skb.skb).gso_size) }
    }

    #[inline(always)]
    fn tunnel_trusted(&self) -> bool {
        let ifindex = self.ifindex();
        match TUNNEL_SLOTS.get(tunnel_slot(ifindex)) {
            Some(&slot) if slot == ifindex => true,
            Some(&TUNNEL_SLOT_SHARED) => TUNNEL_IFACES.get_ptr(ifindex).is_some(),
            _ => false,
        }
    }

    #[inline(always)]
    fn udp_tunnel(&self, port: u16) -> u8 {
        let at = PortKind::of(port);
        UDP_TUNNEL_PORTS.get(at.word).map_or(ENCAP_NONE, |w| at.in_word(*w))
    }

    #[inline(always)]
    fn ip_tunnel_on(&self, tunnel: u8) -> bool {
        IP_TUNNELS_OFF.get(0).copied().unwrap_or(0) & (1 << tunnel) == 0
    }
}
