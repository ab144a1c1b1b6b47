//! Running totals of drained traffic per interface and direction and per
//! VNI, for `vxflow ctl stats` and the metrics endpoint. Taken from the
//! deltas as they are drained, so they cost nothing on the packet path.

use std::collections::BTreeMap;

use crate::{drain::FlowDelta, tunnel_ids::TunnelRef};

/// Packets and bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Traffic {
    pub packets: u64,
    pub bytes: u64,
}

#[derive(Debug, Default)]
pub(super) struct Tally {
    /// By (ifindex, direction is ingress): wire IP bytes (outer for a tunnel).
    pub interfaces: BTreeMap<(u32, bool), Traffic>,
    /// By tunnel type, id and port: inner packets and inner IP bytes.
    pub tunnels: BTreeMap<TunnelRef, Traffic>,
}

impl Tally {
    pub fn add(&mut self, deltas: &[FlowDelta]) {
        for d in deltas {
            let (k, s) = (&d.key, &d.stats);
            let tunnel = TunnelRef::of(k);
            let iface = self.interfaces.entry((k.ifindex, k.is_ingress())).or_default();
            iface.packets += s.packets;
            iface.bytes += if tunnel.is_some() { s.outer_bytes } else { s.bytes };
            if let Some(tunnel) = tunnel {
                let t = self.tunnels.entry(tunnel).or_default();
                t.packets += s.packets;
                t.bytes += s.bytes;
            }
        }
    }
}
