//! Running totals of drained traffic per interface and direction and per
//! VNI, for `vxflow ctl stats` and the metrics endpoint. Taken from the
//! deltas as they are drained, so they cost nothing on the packet path.

use std::collections::BTreeMap;

use vxflow_common::user::Tunnel;

use crate::drain::FlowDelta;

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
    /// By tunnel type and id: inner packets and inner IP bytes.
    pub tunnels: BTreeMap<(Tunnel, Option<u32>), Traffic>,
}

impl Tally {
    pub fn add(&mut self, deltas: &[FlowDelta]) {
        for d in deltas {
            let (k, s) = (&d.key, &d.stats);
            let tunnel = k.tunnel();
            let iface = self.interfaces.entry((k.ifindex, k.is_ingress())).or_default();
            iface.packets += s.packets;
            iface.bytes += if tunnel.is_some() { s.outer_bytes } else { s.bytes };
            if let Some(tunnel) = tunnel {
                let t = self.tunnels.entry((tunnel, k.tunnel_id())).or_default();
                t.packets += s.packets;
                t.bytes += s.bytes;
            }
        }
    }
}
