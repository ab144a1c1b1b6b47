//! What an accounted packet adds to its flow, from the parse's status and
//! layers: its wire packets and bytes, its TCP flags, and the annotation
//! counters it adds to. The kernel adds this to its flow map; the host
//! (`vxflow replay`) to its own.

use super::{
    frame::{PLAIN, TUNNEL, TUNNEL_INNER_NOT_IP},
    layer::{Layer, Scratch},
    packet::Packet,
    parse::Status,
    wire::{Wire, wire},
};
use crate::{
    Counter, DatapathStats, FlowKey,
    flow::{KEY_FLAG_EXT_LIMIT, KEY_FLAG_FRAGMENT, KEY_FLAG_L4_TRUNCATED},
};

/// What an accounted packet adds to its flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counted {
    pub wire: Wire,
    pub tcp_flags: u64,
    /// `1 << Counter` bits of the annotation counters it adds to.
    pub notes: u32,
}

impl Counted {
    /// A flow entry holding just this packet, seen at `now`.
    #[inline(always)]
    #[must_use]
    pub fn stats(&self, now: u64) -> DatapathStats {
        DatapathStats {
            packets: self.wire.packets,
            bytes: self.wire.bytes,
            outer_bytes: self.wire.outer_bytes,
            first_seen_jiffies: now,
            last_seen_jiffies: now,
            tcp_flags: self.tcp_flags,
        }
    }
}

/// The layers a packet was parsed into.
pub struct Layers {
    /// The layer whose tuple is the flow's (the inner one for a tunnel).
    pub counted: Layer,
    /// The tunnel's outer layer, all zero without a tunnel. Not an
    /// `Option`: LLVM may move values of a `None`'s undefined payload
    /// between registers, which the verifier rejects as reading an
    /// uninitialized register.
    pub outer: Layer,
    pub tunnelled: bool,
    pub notes: u32,
}

/// The layers the parse that returned `status` wrote to `scratch`, or the
/// status when it found no flow.
#[inline(always)]
pub fn layers(status: Status, scratch: &Scratch) -> Result<Layers, Status> {
    match status {
        PLAIN => {
            let outer = scratch.outer;
            Ok(Layers { counted: outer, outer: Layer::default(), tunnelled: false, notes: outer.notes })
        }
        TUNNEL => {
            let (outer, inner) = (scratch.outer, scratch.inner);
            // The outer layer's note is its tunnel type's counter.
            Ok(Layers { counted: inner, outer, tunnelled: true, notes: outer.notes | inner.notes })
        }
        TUNNEL_INNER_NOT_IP => Ok(Layers {
            counted: scratch.outer,
            outer: Layer::default(),
            tunnelled: false,
            notes: Counter::TunnelInnerNotIp.bit(),
        }),
        other => Err(other),
    }
}

/// What `packet`, parsed into `key` and `layers`, adds to its flow.
#[inline(always)]
pub fn counted(packet: &impl Packet, key: &FlowKey, layers: &Layers) -> Counted {
    let wire = wire(packet, &layers.counted, layers.tunnelled.then_some(&layers.outer));
    let mut notes = layers.notes;
    if key.flags != 0 {
        for (flag, counter) in [
            (KEY_FLAG_FRAGMENT, Counter::Fragment),
            (KEY_FLAG_L4_TRUNCATED, Counter::L4Truncated),
            (KEY_FLAG_EXT_LIMIT, Counter::Ipv6ExtLimit),
        ] {
            if key.flags & flag != 0 {
                notes |= counter.bit();
            }
        }
    }
    Counted { wire, tcp_flags: u64::from(layers.counted.tcp_flags), notes }
}
