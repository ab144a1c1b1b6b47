//! TCP end detection over a whole conversation: FIN seen from both sides, or
//! an RST, ends every flow of the conversation (each direction, on every
//! interface that records it) after `tcp_end_timeout`.
//!
//! A conversation is a ring of its flows' slots, linked through their cache
//! entries, and found by its key in an index of slot numbers: it costs no
//! allocation of its own, only the index's 5 bytes a bucket.

use std::hash::{BuildHasher as _, RandomState};

use hashbrown::HashTable;
use vxflow_common::FlowKey;

use super::{
    Entry,
    dedup::packet_key,
    table::{SlabMap, SlotId},
};

pub(super) const TCP_FIN: u8 = 0x01;
pub(super) const TCP_RST: u8 = 0x04;

/// `Entry::conv_next` of a flow in no conversation.
pub(super) const NO_CONVERSATION: SlotId = SlotId::MAX;

/// Both sides' FIN bits in `Entry::conv_fin`.
const BOTH_FIN: u8 = 0b11;

#[derive(Default)]
pub(super) struct Conversations {
    /// One slot of each conversation's ring, by conversation key.
    index: HashTable<SlotId>,
    hasher: RandomState,
}

impl Conversations {
    /// Adds the flow in `slot` to its conversation, if it is not in one yet,
    /// and records its TCP `flags`. Returns whether the conversation has
    /// ended (an RST now, or FIN from both sides so far).
    pub fn track(&mut self, flows: &mut SlabMap<FlowKey, Entry>, slot: SlotId, flags: u8) -> bool {
        let (key, entry) = flows.at(slot);
        let (conv_key, side) = conversation_key(key);
        if entry.conv_next == NO_CONVERSATION {
            let hash = self.hasher.hash_one(conv_key);
            let found = self.index.find(hash, |&id| conversation_key(flows.at(id).0).0 == conv_key).copied();
            if let Some(member) = found {
                // Joins the ring after `member`, with the FINs seen so far.
                let (next, fin) = {
                    let m = flows.at(member).1;
                    (m.conv_next, m.conv_fin)
                };
                flows.at_mut(member).conv_next = slot;
                let e = flows.at_mut(slot);
                e.conv_next = next;
                e.conv_fin = fin;
            } else {
                let hasher = &self.hasher;
                let flows_ref: &SlabMap<FlowKey, Entry> = flows;
                self.index.insert_unique(hash, slot, |&id| hasher.hash_one(conversation_key(flows_ref.at(id).0).0));
                let e = flows.at_mut(slot);
                e.conv_next = slot;
                e.conv_fin = 0;
            }
        }
        if flags & TCP_FIN != 0 {
            let bit = 1 << side;
            for_each_member(flows, slot, |e| e.conv_fin |= bit);
        }
        flags & TCP_RST != 0 || flows.at(slot).1.conv_fin == BOTH_FIN
    }

    /// Takes the flow in `slot` out of its conversation (before it leaves
    /// the cache); the conversation's FINs stay with the others.
    pub fn leave(&mut self, flows: &mut SlabMap<FlowKey, Entry>, slot: SlotId) {
        let next = flows.at(slot).1.conv_next;
        if next == NO_CONVERSATION {
            return;
        }
        let hash = self.hasher.hash_one(conversation_key(flows.at(slot).0).0);
        let mut before = next;
        while flows.at(before).1.conv_next != slot {
            before = flows.at(before).1.conv_next;
        }
        if let Ok(mut indexed) = self.index.find_entry(hash, |&id| id == slot) {
            if before == slot {
                indexed.remove();
            } else {
                *indexed.get_mut() = before;
            }
        }
        flows.at_mut(before).conv_next = next;
        flows.at_mut(slot).conv_next = NO_CONVERSATION;
    }
}

/// Runs `f` on every flow of the conversation of the flow in `slot`.
pub(super) fn for_each_member(flows: &mut SlabMap<FlowKey, Entry>, slot: SlotId, mut f: impl FnMut(&mut Entry)) {
    let mut at = slot;
    loop {
        let e = flows.at_mut(at);
        f(e);
        at = e.conv_next;
        if at == slot || at == NO_CONVERSATION {
            return;
        }
    }
}

/// The key both directions of a TCP conversation share, and which side `key`
/// is: the packet key (so the two directions pair up even when they are
/// recorded on different interfaces, as dedup may do), in one orientation.
pub(super) fn conversation_key(key: &FlowKey) -> (FlowKey, usize) {
    let mut k = packet_key(key);
    let forward = (k.src_addr, k.src_port) <= (k.dst_addr, k.dst_port);
    if forward {
        (k, 0)
    } else {
        std::mem::swap(&mut k.src_addr, &mut k.dst_addr);
        std::mem::swap(&mut k.src_port, &mut k.dst_port);
        (k, 1)
    }
}
