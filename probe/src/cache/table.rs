//! A map for a million entries: the keys and values in dense, chunked slots,
//! found through a hash index of 4-byte slot numbers.
//!
//! A `HashMap<K, V>` keeps its entries in the table itself, at most 7/8 full
//! and, after it doubles, half empty: with the cache's 148-byte flow entries,
//! about 330 bytes a flow at 10^6 flows. Here only the index (5 bytes a
//! bucket) has that slack; the slots are filled in chunks of [`CHUNK`] that
//! never move, and freed slots are reused first. A slot number stays valid
//! while its entry is in the map, so other structures can link entries by it
//! (the cache's TCP conversations do).

use std::hash::{BuildHasher, Hash, RandomState};

use hashbrown::HashTable;

/// Slots a full chunk holds. The last chunk grows as a `Vec` does, so a
/// small map stays small; a large one wastes at most one chunk's growth.
const CHUNK: usize = 4096;

/// A slot number.
pub type SlotId = u32;

pub struct SlabMap<K, V, S = RandomState> {
    chunks: Vec<Vec<(K, V)>>,
    /// One bit per slot: in use.
    used: Vec<u64>,
    /// Slots freed, reused before the last chunk grows.
    free: Vec<SlotId>,
    index: HashTable<SlotId>,
    /// Seeded per process, so nobody outside can aim collisions at it.
    hasher: S,
    len: usize,
}

impl<K, V, S> std::fmt::Debug for SlabMap<K, V, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlabMap").field("len", &self.len).field("chunks", &self.chunks.len()).finish_non_exhaustive()
    }
}

impl<K, V, S: Default> Default for SlabMap<K, V, S> {
    fn default() -> Self {
        Self {
            chunks: Vec::new(),
            used: Vec::new(),
            free: Vec::new(),
            index: HashTable::new(),
            hasher: S::default(),
            len: 0,
        }
    }
}

impl<K: Hash + Eq + Copy + Default, V: Default, S: BuildHasher + Default> SlabMap<K, V, S> {
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `key`'s hash, for a caller that looks it up more than once.
    pub fn hash(&self, key: &K) -> u64 {
        self.hasher.hash_one(key)
    }

    fn slot(&self, id: SlotId) -> &(K, V) {
        let id = id as usize;
        &self.chunks[id / CHUNK][id % CHUNK]
    }

    fn slot_mut(&mut self, id: SlotId) -> &mut (K, V) {
        let id = id as usize;
        &mut self.chunks[id / CHUNK][id % CHUNK]
    }

    /// The slot holding `key`.
    #[must_use]
    pub fn find(&self, key: &K) -> Option<SlotId> {
        self.find_hashed(self.hash(key), key)
    }

    /// The slot holding `key`, whose [`SlabMap::hash`] is `hash`.
    #[must_use]
    pub fn find_hashed(&self, hash: u64, key: &K) -> Option<SlotId> {
        self.index.find(hash, |&id| self.slot(id).0 == *key).copied()
    }

    #[must_use]
    pub fn contains_key(&self, key: &K) -> bool {
        self.find(key).is_some()
    }

    /// The key and value in slot `id`, which must be in use.
    #[must_use]
    pub fn at(&self, id: SlotId) -> (&K, &V) {
        debug_assert!(self.is_used(id));
        let (k, v) = self.slot(id);
        (k, v)
    }

    /// The value in slot `id`, which must be in use.
    pub fn at_mut(&mut self, id: SlotId) -> &mut V {
        debug_assert!(self.is_used(id));
        &mut self.slot_mut(id).1
    }

    fn is_used(&self, id: SlotId) -> bool {
        let id = id as usize;
        self.used.get(id / 64).is_some_and(|w| w & (1 << (id % 64)) != 0)
    }

    fn set_used(&mut self, id: SlotId, used: bool) {
        let id = id as usize;
        if self.used.len() <= id / 64 {
            self.used.resize(id / 64 + 1, 0);
        }
        if used {
            self.used[id / 64] |= 1 << (id % 64);
        } else {
            self.used[id / 64] &= !(1 << (id % 64));
        }
    }

    /// Inserts `key`, which must not be in the map, and returns its slot.
    pub fn insert_new(&mut self, key: K, value: V) -> SlotId {
        self.insert_new_hashed(self.hash(&key), key, value)
    }

    /// As [`SlabMap::insert_new`], `hash` being `key`'s [`SlabMap::hash`].
    pub fn insert_new_hashed(&mut self, hash: u64, key: K, value: V) -> SlotId {
        debug_assert!(!self.contains_key(&key));
        debug_assert_eq!(hash, self.hash(&key));
        let id = if let Some(id) = self.free.pop() {
            *self.slot_mut(id) = (key, value);
            id
        } else {
            if self.chunks.last().is_none_or(|c| c.len() == CHUNK) {
                self.chunks.push(Vec::new());
            }
            let full = (self.chunks.len() - 1) * CHUNK;
            let last = self.chunks.last_mut().expect("a chunk was pushed");
            let id = SlotId::try_from(full + last.len()).expect("fewer than 2^32 slots");
            if last.len() == last.capacity() {
                // Doubling, as Vec does, but never past a chunk.
                last.reserve_exact(last.capacity().max(16).min(CHUNK - last.len()));
            }
            last.push((key, value));
            id
        };
        self.set_used(id, true);
        let Self { index, chunks, hasher, .. } = self;
        index.insert_unique(hash, id, |&other| {
            let other = other as usize;
            hasher.hash_one(chunks[other / CHUNK][other % CHUNK].0)
        });
        self.len += 1;
        id
    }

    /// Removes the entry in slot `id`, which must be in use.
    pub fn remove_at(&mut self, id: SlotId) -> (K, V) {
        let key = *self.at(id).0;
        let hash = self.hash(&key);
        match self.index.find_entry(hash, |&other| other == id) {
            Ok(found) => {
                found.remove();
            }
            Err(_) => unreachable!("slot {id} in use is indexed"),
        }
        (key, self.vacate(id))
    }

    fn vacate(&mut self, id: SlotId) -> V {
        self.set_used(id, false);
        self.free.push(id);
        self.len -= 1;
        std::mem::take(self.slot_mut(id)).1
    }

    /// Every entry with its slot, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (SlotId, &K, &V)> {
        self.chunks.iter().flatten().zip(0..).filter(|&(_, id)| self.is_used(id)).map(|((k, v), id)| (id, k, v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.iter().map(|(_, k, _)| k)
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.iter_mut().map(|(_, v)| v)
    }

    /// Every entry in use, its value mutable, in slot order.
    fn iter_mut(&mut self) -> impl Iterator<Item = (&K, &mut V)> {
        let used = &self.used;
        self.chunks
            .iter_mut()
            .flatten()
            .zip(0usize..)
            .filter(|&(_, id)| used[id / 64] & (1 << (id % 64)) != 0)
            .map(|((k, v), _)| (&*k, v))
    }

    pub fn clear(&mut self) {
        *self = Self { hasher: std::mem::take(&mut self.hasher), ..Self::default() };
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// Against std's `HashMap` over a long random mix of inserts and removals
    /// that crosses several chunks and reuses freed slots.
    #[test]
    fn behaves_as_a_hash_map() {
        let mut ours: SlabMap<u32, u64> = SlabMap::default();
        let mut theirs: HashMap<u32, u64> = HashMap::new();
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for step in 0..200_000u64 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let key = u32::try_from(state % 20_000).unwrap();
            if state.is_multiple_of(3) {
                let removed = ours.find(&key).map(|id| ours.remove_at(id).1);
                assert_eq!(removed, theirs.remove(&key), "step {step}");
            } else if let Some(v) = theirs.get_mut(&key) {
                *v += 1;
                let id = ours.find(&key).unwrap();
                *ours.at_mut(id) += 1;
            } else {
                theirs.insert(key, step);
                ours.insert_new(key, step);
            }
            assert_eq!(ours.len(), theirs.len());
        }
        let mut a: Vec<(u32, u64)> = ours.iter().map(|(_, k, v)| (*k, *v)).collect();
        let mut b: Vec<(u32, u64)> = theirs.into_iter().collect();
        a.sort_unstable();
        b.sort_unstable();
        assert_eq!(a, b);
        assert!(ours.keys().eq(ours.iter().map(|(_, k, _)| k)));
        ours.clear();
        assert!(ours.is_empty() && ours.iter().next().is_none());
    }

    #[test]
    fn slot_numbers_stay_while_entries_stay() {
        let mut m: SlabMap<u32, u32> = SlabMap::default();
        let ids: Vec<SlotId> = (0..10_000).map(|k| m.insert_new(k, k * 2)).collect();
        for k in (0..10_000).step_by(2) {
            m.remove_at(m.find(&k).unwrap());
        }
        for (k, &id) in (0..10_000u32).zip(&ids).skip(1).step_by(2) {
            assert_eq!(m.find(&k), Some(id));
            assert_eq!(m.at(id), (&k, &(k * 2)));
        }
        // Freed slots are reused before the map grows.
        let reused = m.insert_new(50_000, 0);
        assert!(reused < 10_000);
    }
}
