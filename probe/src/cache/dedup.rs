//! Counting each packet once per flow when several watched interfaces see it
//! (a pod's veth, `cni0`, `flannel.1` and `eth0` on a Flannel node).
//!
//! Sightings of one packet tuple (see [`packet_key`]) are grouped. In each
//! group some sightings are *owners*, whose counts are kept, and the others
//! *follow* one owner: their packets are duplicates of the owner's. Three
//! rules keep one flow from hiding another, whatever a pod sends:
//!
//! - **Only another interface can duplicate.** Two sightings on one interface
//!   (same tuple, another VNI, VLAN or outer tuple) are different packets:
//!   both are owners.
//! - **Only a compatible sighting can duplicate.** Sightings whose VLAN ids,
//!   VNIs or outer tuples disagree are different packets, whichever
//!   interfaces saw them.
//! - **A duplicate needs a packet to duplicate.** A follower's packets are
//!   matched one for one against its owner's packets of the same batch, or
//!   of the batch before or after when the two were seen moments apart (a
//!   packet can cross the two interfaces on either side of a generation
//!   flip). What finds no owner packet is not a duplicate: it is kept, as a
//!   flow of its own on the follower's interface. So a forged or spoofed
//!   packet can at most stand for one real packet, never a whole flow, and
//!   traffic the owner does not see (a path that moved, spoofed packets that
//!   joined on the way) is counted.
//!
//! A follower whose packets outrun its owner's follows another compatible
//! owner if there is one, else owns its packets from then on; an owner that
//! saw nothing meanwhile (the path moved) follows it in turn, so a path that
//! moves back is matched, not counted twice.
//!
//! An owner is a cached flow, so a group stores it as the flow's slot in the
//! cache's table (see [`FlowSlots`]) rather than a second copy of its key:
//! a tuple seen on one interface costs its group 40 bytes.

use std::collections::HashMap;

use nohash_hasher::BuildNoHashHasher;
use smallvec::{SmallVec, smallvec};

use vxflow_common::{FlowKey, FlowStats};

use super::table::{SlabMap, SlotId};
use crate::drain::FlowDelta;

/// How many batches in a row an owner may see nothing of its tuple while
/// followers do before it gives the tuple up (the path moved). Its
/// followers' packets are kept in the meantime, not dropped.
const OWNER_PATIENCE: u8 = 3;

/// How far apart in time two sightings of one packet may be: a packet
/// crosses a node's interfaces in microseconds; a generation flip between
/// them only splits the two sightings across batches. Owner packets of one
/// batch match a follower's of the next only this close to each other, so a
/// path that moves (one interface's last packets, then another's first) is
/// not taken for one packet seen twice.
const SIGHTING_WINDOW_NS: u64 = 50_000_000;

/// What the deduplication of one batch gives.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Indexes, in the batch, of the deltas to merge into the cache whole
    /// (owners').
    pub kept: Vec<u32>,
    /// Deltas to merge besides: followers' packets that matched no owner
    /// packet, and those freed since the last batch.
    pub extra: Vec<FlowDelta>,
    pub duplicate_packets: u64,
    pub duplicate_bytes: u64,
}

/// A packet tuple, hashed: groups are keyed by this 8-byte id instead of
/// the 92-byte tuple. Two tuples with one id share a group, safely: owners
/// and followers are matched by their full keys.
type TupleId = u64;

/// Tables of tuple ids hash them as they are: a keyed hash already, uniform
/// and secret.
type ById = BuildNoHashHasher<TupleId>;

/// The cache's flows, where each owner's key is: an owner is its flow's
/// slot, which stays while the flow is cached.
pub(super) trait FlowSlots {
    /// The key of the flow in `slot`, which is in use.
    fn key(&self, slot: SlotId) -> &FlowKey;
    /// The slot of `key`'s flow, made (with no packets yet, last seen at
    /// `seen_ns`) if the cache has none: the owner's deltas are merged into
    /// it next.
    fn slot_for(&mut self, key: &FlowKey, seen_ns: u64) -> SlotId;
}

#[derive(Debug, Default)]
pub struct Dedup {
    /// Keys the tuple hash per process, so nobody outside can aim
    /// collisions at it.
    hasher: std::hash::RandomState,
    /// In dense slots (see [`SlabMap`]): 48 bytes a tuple, where a
    /// `HashMap` would hold twice that at its usual fill.
    groups: SlabMap<TupleId, Stored, ById>,
    /// Follower packets freed outside a batch (an owner's interface went
    /// away), kept at the next batch.
    loose: Vec<FlowDelta>,
    /// Tuples with a follower's packets waiting for the next batch.
    waiting: Vec<TupleId>,
}

/// A tuple's sightings as they are kept between batches. Nearly every tuple
/// has one owner and no follower: that owner is stored inline, so such a
/// tuple costs one map entry and no allocation.
#[derive(Debug, Default)]
enum Stored {
    /// Only while its [`Group`] is taken out to be worked on.
    #[default]
    Out,
    One(StoredOwner),
    Many(Box<Members>),
}

#[derive(Debug)]
struct Members {
    owners: Vec<StoredOwner>,
    followers: Vec<Follower>,
}

// A tuple seen on one interface costs its group this much, beside the
// index: what the cache's bytes per flow are held to.
const _: () = assert!(size_of::<(TupleId, Stored)>() == 40);

/// An [`Owner`] between batches: its key is its flow's, in the cache.
#[derive(Debug)]
struct StoredOwner {
    slot: SlotId,
    missed: u8,
    previous: u64,
    previous_last_ns: u64,
}

/// A tuple's sightings, with the owners' keys, while a batch or a change of
/// interface works on them.
#[derive(Debug, Default)]
struct Group {
    owners: SmallVec<[Owner; 1]>,
    followers: Vec<Follower>,
}

/// One key's deltas in this batch, summed, and where they are in it.
#[derive(Debug)]
struct Sighting {
    key: FlowKey,
    stats: FlowStats,
    indexes: SmallVec<[u32; 1]>,
}

/// End of a chain of delta indexes.
const END: u32 = u32::MAX;

#[derive(Debug)]
struct Owner {
    key: FlowKey,
    /// Its flow's slot in the cache; `None` for an owner new in this batch,
    /// whose flow is made when the group is stored.
    slot: Option<SlotId>,
    /// Packets it saw in the previous batch: what a follower that shows up
    /// one batch late may match.
    previous: u64,
    /// When the last of those was seen.
    previous_last_ns: u64,
    /// Batches in a row with followers' packets but none of its own.
    missed: u8,
}

#[derive(Debug)]
struct Follower {
    key: FlowKey,
    owner: FlowKey,
    /// The owner's packets of the previous batch this follower has not
    /// matched yet.
    spare: u64,
    /// Packets of ours first seen later than this cannot be the spare ones.
    spare_until_ns: u64,
    /// This follower's packets of the previous batch that matched no owner
    /// packet yet: one more batch to find one, else they are kept.
    pending: Option<FlowStats>,
}

impl Dedup {
    /// Splits one drain's deltas into kept ones and duplicates. Every owner
    /// gets a flow in `flows`, so the kept deltas of a new owner find it.
    pub(super) fn batch(&mut self, deltas: &[FlowDelta], flows: &mut impl FlowSlots) -> Outcome {
        let mut out = Outcome { extra: std::mem::take(&mut self.loose), ..Outcome::default() };
        // The batch's deltas by tuple, without copying them: the last index
        // per tuple, and from each index the previous one of its tuple.
        let mut heads: HashMap<TupleId, u32, ById> = HashMap::with_capacity_and_hasher(deltas.len(), ById::default());
        let mut chain: Vec<u32> = vec![END; deltas.len()];
        for ((i, d), link) in (0u32..).zip(deltas).zip(&mut chain) {
            let head = heads.entry(self.tuple_id(&d.key)).or_insert(END);
            *link = *head;
            *head = i;
        }
        // Groups with a follower waiting for its owner's packets settle even
        // when this batch has nothing of their tuple.
        for tuple in std::mem::take(&mut self.waiting) {
            heads.entry(tuple).or_insert(END);
        }
        let mut sightings: Vec<Sighting> = Vec::new();
        for (tuple, head) in heads {
            sightings.clear();
            let mut i = head;
            while i != END {
                let d = &deltas[i as usize];
                // The fallback ring can bring a key more than once.
                match sightings.iter_mut().find(|s| s.key == d.key) {
                    Some(s) => {
                        s.stats = merged(s.stats, d.stats);
                        s.indexes.push(i);
                    }
                    None => sightings.push(Sighting { key: d.key, stats: d.stats, indexes: smallvec![i] }),
                }
                i = chain[i as usize];
            }
            if let [only] = sightings.as_slice()
                && self.sole_owner(tuple, only, flows, &mut out)
            {
                continue;
            }
            sightings.sort_unstable_by_key(preference);
            let (at, mut group) = self.take(tuple, flows);
            group.batch(&sightings, &mut out);
            if group.followers.iter().any(|f| f.pending.is_some()) {
                self.waiting.push(tuple);
            }
            self.put(tuple, at, group, flows);
        }
        out
    }

    /// The common case, settled without taking the group out: the only
    /// sighting of a tuple this batch is its only owner, or the tuple is new.
    /// Does what [`Group::batch`] would, and returns whether it applied.
    fn sole_owner(&mut self, tuple: TupleId, s: &Sighting, flows: &mut impl FlowSlots, out: &mut Outcome) -> bool {
        let Some(at) = self.groups.find(&tuple) else {
            let slot = flows.slot_for(&s.key, s.stats.last_seen_ns);
            let owner =
                StoredOwner { slot, missed: 0, previous: s.stats.packets, previous_last_ns: s.stats.last_seen_ns };
            self.groups.insert_new(tuple, Stored::One(owner));
            out.kept.extend_from_slice(&s.indexes);
            return true;
        };
        let owner = match self.groups.at_mut(at) {
            Stored::One(o) if *flows.key(o.slot) == s.key => o,
            _ => return false,
        };
        owner.previous = s.stats.packets;
        owner.previous_last_ns = s.stats.last_seen_ns;
        if s.stats.packets > 0 {
            owner.missed = 0;
        }
        out.kept.extend_from_slice(&s.indexes);
        true
    }

    /// The group of `tuple` (empty if it has none), taken out of the map
    /// until [`Dedup::put`] returns it, and where it was.
    fn take(&mut self, tuple: TupleId, flows: &impl FlowSlots) -> (Option<SlotId>, Group) {
        let Some(at) = self.groups.find(&tuple) else {
            return (None, Group::default());
        };
        let stored = std::mem::take(self.groups.at_mut(at));
        (Some(at), Group::load(stored, flows))
    }

    /// Stores `group` as `tuple`'s (at `at` if it was there), or removes the
    /// tuple if nothing is left of it.
    fn put(&mut self, tuple: TupleId, at: Option<SlotId>, group: Group, flows: &mut impl FlowSlots) {
        match (group.store(flows), at) {
            (Some(stored), Some(at)) => *self.groups.at_mut(at) = stored,
            (Some(stored), None) => {
                self.groups.insert_new(tuple, stored);
            }
            (None, Some(at)) => {
                self.groups.remove_at(at);
            }
            (None, None) => {}
        }
    }

    /// `key` no longer owns its tuple (its flow is leaving the cache, and is
    /// still in `flows`). Its followers' waiting packets are kept at the next
    /// batch.
    ///
    /// If another owner it could duplicate remains, `key` follows that one
    /// from now on, with nothing spare: it may have matched that owner's last
    /// batch already (as a follower promoted this batch), and as a newcomer
    /// it would be offered those packets again, so one owner packet could
    /// hide two of its packets.
    pub(super) fn forget(&mut self, key: &FlowKey, flows: &mut impl FlowSlots) {
        let tuple = self.tuple_id(key);
        let (at, mut group) = self.take(tuple, flows);
        let was_owner = group.owners.iter().any(|o| o.key == *key);
        group.drop_owners(|o| o == key, &mut self.loose);
        let other = group.owners.iter().find(|o| compatible(&o.key, key)).map(|o| o.key);
        if let Some(owner) = other.filter(|_| was_owner) {
            group.followers.push(Follower { key: *key, owner, spare: 0, spare_until_ns: 0, pending: None });
        }
        self.put(tuple, at, group, flows);
    }

    /// Interface `ifindex` went away: its sightings own and follow nothing.
    pub(super) fn release_interface(&mut self, ifindex: u32, flows: &mut impl FlowSlots) {
        let tuples: Vec<TupleId> = self.groups.keys().copied().collect();
        for tuple in tuples {
            let (at, mut group) = self.take(tuple, flows);
            group.drop_owners(|o| o.ifindex == ifindex, &mut self.loose);
            group.followers.retain_mut(|f| {
                if f.key.ifindex != ifindex {
                    return true;
                }
                if let Some(stats) = f.pending.take() {
                    self.loose.push(FlowDelta { key: f.key, stats });
                }
                false
            });
            self.put(tuple, at, group, flows);
        }
    }

    fn tuple_id(&self, key: &FlowKey) -> TupleId {
        std::hash::BuildHasher::hash_one(&self.hasher, packet_key(key))
    }

    /// Forgets every owner (dedup switched off or on); waiting packets are
    /// kept at the next batch.
    pub fn release_all(&mut self) {
        let waiting = self.take_all();
        self.loose = waiting;
    }

    /// Every follower packet still waiting for an owner packet, to be kept
    /// (shutdown), and nothing owned any more.
    pub fn take_all(&mut self) -> Vec<FlowDelta> {
        let mut out = std::mem::take(&mut self.loose);
        for stored in self.groups.values_mut() {
            if let Stored::Many(members) = stored {
                for f in &mut members.followers {
                    if let Some(stats) = f.pending.take() {
                        out.push(FlowDelta { key: f.key, stats });
                    }
                }
            }
        }
        self.groups.clear();
        self.waiting.clear();
        out
    }
}

impl Group {
    fn load(stored: Stored, flows: &impl FlowSlots) -> Self {
        let owner = |o: StoredOwner| Owner {
            key: *flows.key(o.slot),
            slot: Some(o.slot),
            previous: o.previous,
            previous_last_ns: o.previous_last_ns,
            missed: o.missed,
        };
        match stored {
            Stored::Out => unreachable!("a group is taken out once at a time"),
            Stored::One(o) => Self { owners: smallvec![owner(o)], followers: Vec::new() },
            Stored::Many(members) => {
                let Members { owners, followers } = *members;
                Self { owners: owners.into_iter().map(owner).collect(), followers }
            }
        }
    }

    /// The group as it is kept, each new owner's flow made in `flows`;
    /// `None` when nothing is left of it.
    fn store(self, flows: &mut impl FlowSlots) -> Option<Stored> {
        let mut owner = |o: Owner| StoredOwner {
            slot: o.slot.unwrap_or_else(|| flows.slot_for(&o.key, o.previous_last_ns)),
            previous: o.previous,
            previous_last_ns: o.previous_last_ns,
            missed: o.missed,
        };
        let Self { mut owners, followers } = self;
        if followers.is_empty() && owners.len() <= 1 {
            return owners.pop().map(|o| Stored::One(owner(o)));
        }
        Some(Stored::Many(Box::new(Members { owners: owners.into_iter().map(owner).collect(), followers })))
    }

    fn batch(&mut self, sightings: &[Sighting], out: &mut Outcome) {
        // Owners keep everything they saw.
        let mut seen: Vec<Option<FlowStats>> = vec![None; self.owners.len()];
        let mut rest = Vec::new();
        for s in sightings {
            match self.owners.iter().position(|o| o.key == s.key) {
                Some(i) => {
                    seen[i] = Some(s.stats);
                    out.kept.extend_from_slice(&s.indexes);
                }
                None => rest.push(s),
            }
        }
        // Each other sighting follows the owner it followed, else a
        // compatible owner on another interface, else it owns.
        let mut follower_seen: Vec<Option<FlowStats>> = vec![None; self.followers.len()];
        for s in rest {
            if let Some(i) = self.followers.iter().position(|f| f.key == s.key) {
                follower_seen[i] = Some(s.stats);
                continue;
            }
            if let Some(o) = self.owners.iter().find(|o| compatible(&o.key, &s.key)) {
                self.followers.push(Follower {
                    key: s.key,
                    owner: o.key,
                    spare: o.previous,
                    spare_until_ns: o.previous_last_ns.saturating_add(SIGHTING_WINDOW_NS),
                    pending: None,
                });
                follower_seen.push(Some(s.stats));
            } else {
                self.owners.push(Owner { key: s.key, slot: None, previous: 0, previous_last_ns: 0, missed: 0 });
                seen.push(Some(s.stats));
                out.kept.extend_from_slice(&s.indexes);
            }
        }
        let mut overflowed = Vec::new();
        for (i, (f, now)) in self.followers.iter_mut().zip(follower_seen).enumerate() {
            let owner_now = self.owners.iter().position(|o| o.key == f.owner).and_then(|i| seen[i]);
            if let Some(overflow) = f.settle(owner_now, now, out) {
                overflowed.push((i, now, overflow));
            }
        }
        self.regroup(&overflowed, &mut seen, out);
        // Followers stay as long as their owner, so the owner's packets they
        // matched are never offered to them again as a late follower's.
        // An owner that sees nothing while its followers do has lost the path.
        let followed: Vec<FlowKey> = self.followers.iter().filter(|f| f.pending.is_some()).map(|f| f.owner).collect();
        for (o, now) in self.owners.iter_mut().zip(&seen) {
            o.previous = packets(*now);
            o.previous_last_ns = now.map_or(0, |s| s.last_seen_ns);
            if o.previous > 0 {
                o.missed = 0;
            } else if followed.contains(&o.key) {
                o.missed += 1;
            }
        }
        let lost: Vec<FlowKey> = self.owners.iter().filter(|o| o.missed >= OWNER_PATIENCE).map(|o| o.key).collect();
        self.drop_owners(|o| lost.contains(o), &mut out.extra);
    }

    /// Followers whose packets outran their owner's (`(index, packets seen
    /// this batch, last batch's packets no owner packet matched)`) do not
    /// see the owner's packets: each follows another compatible owner if
    /// there is one (the victim's own flow, when a forged sighting owned the
    /// tuple), else it owns its packets from now on.
    fn regroup(
        &mut self,
        overflowed: &[(usize, Option<FlowStats>, FlowStats)],
        seen: &mut Vec<Option<FlowStats>>,
        out: &mut Outcome,
    ) {
        // What a re-attached follower's overflow may match: the overflow a
        // follower promoted in this pass kept (the same packets, seen on
        // the promoted one's interface). An existing owner's previous
        // packets may have been matched by this follower already, when it
        // followed that owner, so they are not offered again.
        let mut previous: Vec<u64> = vec![0; self.owners.len()];
        let mut promoted = Vec::new();
        // (old owner, new owner): a path that moved.
        let mut demoted: Vec<(FlowKey, FlowKey)> = Vec::new();
        for &(i, now, overflow) in overflowed {
            let f = &mut self.followers[i];
            let other = self.owners.iter().position(|o| o.key != f.owner && compatible(&o.key, &f.key));
            let Some(j) = other else {
                out.extra.push(FlowDelta { key: f.key, stats: overflow });
                if let Some(stats) = f.pending.take() {
                    out.extra.push(FlowDelta { key: f.key, stats });
                }
                // An owner that saw nothing this batch lost the path to its
                // follower: it follows the new owner, so the path moving
                // back is matched, not counted twice. One that still sees
                // packets sees other packets (a forged sighting, one side
                // of a split path) and stays an owner.
                let old = self.owners.iter().position(|o| o.key == f.owner);
                if let Some(o) = old.filter(|&o| seen[o].is_none() && !demoted.iter().any(|(d, _)| *d == f.owner)) {
                    demoted.push((self.owners[o].key, f.key));
                }
                self.owners.push(Owner { key: f.key, slot: None, previous: 0, previous_last_ns: 0, missed: 0 });
                seen.push(now);
                previous.push(overflow.packets);
                promoted.push(f.key);
                continue;
            };
            f.owner = self.owners[j].key;
            // Last batch's overflow against what the new owner kept of its
            // last batch, this batch's pending against its packets now.
            let (dup, rest) = split(overflow, overflow.packets.min(previous[j]));
            count_duplicate(&dup, out);
            if let Some(rest) = rest {
                out.extra.push(FlowDelta { key: f.key, stats: rest });
            }
            f.spare = packets(seen[j]);
            f.spare_until_ns = seen[j].map_or(0, |s| s.last_seen_ns.saturating_add(SIGHTING_WINDOW_NS));
            if let Some(pending) = f.pending.take() {
                let matched = pending.packets.min(packets(seen[j]));
                let (dup, rest) = split(pending, matched);
                count_duplicate(&dup, out);
                f.spare -= matched;
                f.pending = rest;
            }
        }
        self.followers.retain(|f| !promoted.contains(&f.key));
        for (old, new) in demoted {
            if let Some(o) = self.owners.iter().position(|o| o.key == old) {
                self.owners.remove(o);
                seen.remove(o);
            }
            for f in self.followers.iter_mut().filter(|f| f.owner == old) {
                f.owner = new;
                f.spare = 0;
            }
            self.followers.push(Follower { key: old, owner: new, spare: 0, spare_until_ns: 0, pending: None });
        }
    }

    /// Removes the owners `gone` selects, and their followers, whose waiting
    /// packets go to `freed`.
    fn drop_owners(&mut self, gone: impl Fn(&FlowKey) -> bool, freed: &mut Vec<FlowDelta>) {
        let removed: Vec<FlowKey> = self.owners.iter().filter(|o| gone(&o.key)).map(|o| o.key).collect();
        if removed.is_empty() {
            return;
        }
        self.owners.retain(|o| !removed.contains(&o.key));
        self.followers.retain_mut(|f| {
            if !removed.contains(&f.owner) {
                return true;
            }
            if let Some(stats) = f.pending.take() {
                freed.push(FlowDelta { key: f.key, stats });
            }
            false
        });
    }
}

impl Follower {
    /// Matches this batch's packets (`now`) and the ones pending from the
    /// previous batch against the owner's packets of this batch
    /// (`owner_now`) and what is left of its previous batch.
    /// Returns the packets of the previous batch that found no owner packet;
    /// the caller keeps them.
    fn settle(&mut self, owner: Option<FlowStats>, now: Option<FlowStats>, out: &mut Outcome) -> Option<FlowStats> {
        let mut overflow = None;
        let mut owner_left = packets(owner);
        // Last batch's packets get one more batch: the owner may have seen
        // them after the flip, moments later.
        if let Some(pending) = self.pending.take() {
            let close =
                owner.is_some_and(|o| o.first_seen_ns <= pending.last_seen_ns.saturating_add(SIGHTING_WINDOW_NS));
            let matched = if close { pending.packets.min(owner_left) } else { 0 };
            owner_left -= matched;
            let (dup, kept) = split(pending, matched);
            count_duplicate(&dup, out);
            overflow = kept;
        }
        // What is left of the owner's previous batch is used first, if it
        // was moments ago, then this batch's; the rest of the previous
        // batch expires here.
        let spare = std::mem::take(&mut self.spare);
        if let Some(stats) = now {
            let spare = if stats.first_seen_ns <= self.spare_until_ns { spare } else { 0 };
            let matched = stats.packets.min(spare + owner_left);
            owner_left -= matched - matched.min(spare);
            let (dup, pending) = split(stats, matched);
            count_duplicate(&dup, out);
            self.pending = pending;
        }
        // Owner packets of this batch no packet of ours matched yet: ours
        // may come in the next batch, moments later. Older ones expire.
        self.spare = owner_left;
        self.spare_until_ns = owner.map_or(0, |o| o.last_seen_ns.saturating_add(SIGHTING_WINDOW_NS));
        overflow
    }
}

/// Splits `stats` into the part of `matched` packets and the rest (`None`
/// when nothing is left), bytes in proportion.
fn split(stats: FlowStats, matched: u64) -> (FlowStats, Option<FlowStats>) {
    if matched >= stats.packets {
        return (stats, None);
    }
    let matched_bytes = scale(stats.bytes, matched, stats.packets);
    let matched_outer = scale(stats.outer_bytes, matched, stats.packets);
    let dup = FlowStats { packets: matched, bytes: matched_bytes, outer_bytes: matched_outer, ..stats };
    let rest = FlowStats {
        packets: stats.packets - matched,
        bytes: stats.bytes - matched_bytes,
        outer_bytes: stats.outer_bytes - matched_outer,
        ..stats
    };
    (dup, Some(rest))
}

fn packets(stats: Option<FlowStats>) -> u64 {
    stats.map_or(0, |s| s.packets)
}

fn scale(value: u64, part: u64, whole: u64) -> u64 {
    u64::try_from(u128::from(value) * u128::from(part) / u128::from(whole.max(1))).unwrap_or(value)
}

fn count_duplicate(dup: &FlowStats, out: &mut Outcome) {
    out.duplicate_packets += dup.packets;
    out.duplicate_bytes += dup.bytes;
}

fn merged(a: FlowStats, b: FlowStats) -> FlowStats {
    FlowStats {
        packets: a.packets + b.packets,
        bytes: a.bytes + b.bytes,
        outer_bytes: a.outer_bytes + b.outer_bytes,
        first_seen_ns: a.first_seen_ns.min(b.first_seen_ns),
        last_seen_ns: a.last_seen_ns.max(b.last_seen_ns),
        tcp_flags: a.tcp_flags | b.tcp_flags,
    }
}

/// Which sighting of a new tuple owns it: a tunnelled one (it carries the
/// tunnel id and the nodes), else the one that saw the first packet.
fn preference(s: &Sighting) -> (bool, u64, u32, u8) {
    (s.key.tunnel().is_none(), s.stats.first_seen_ns, s.key.ifindex, s.key.direction)
}

/// Whether `b` can be the same packets as `a` seen on another interface.
fn compatible(a: &FlowKey, b: &FlowKey) -> bool {
    // Tuples that share a group by a hash collision never match.
    if packet_key(a) != packet_key(b) {
        return false;
    }
    let vlan = a.vlan_id == 0 || b.vlan_id == 0 || a.vlan_id == b.vlan_id;
    let tunnel = a.tunnel().is_none()
        || b.tunnel().is_none()
        || (a.encap == b.encap
            && a.tunnel_id == b.tunnel_id
            && a.tunnel_flags == b.tunnel_flags
            && a.outer_src_addr == b.outer_src_addr
            && a.outer_dst_addr == b.outer_dst_addr
            && a.outer_src_port == b.outer_src_port
            && a.outer_dst_port == b.outer_dst_port);
    a.ifindex != b.ifindex && vlan && tunnel
}

/// What one packet looks like wherever it is seen: the (inner) IP tuple,
/// without the interface, direction, VLAN or tunnel a sighting adds.
#[must_use]
pub fn packet_key(key: &FlowKey) -> FlowKey {
    FlowKey {
        ifindex: 0,
        direction: 0,
        encap: 0,
        tunnel_id: 0,
        tunnel_flags: 0,
        vlan_id: 0,
        outer_src_addr: [0; 16],
        outer_dst_addr: [0; 16],
        outer_src_port: 0,
        outer_dst_port: 0,
        outer_ip_version: 0,
        ..*key
    }
}
