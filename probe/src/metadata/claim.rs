//! What a source says one owner holds (`Claim`), and the owners one source
//! put in the map (`Claimed`), so that a source's full list (the runtime's
//! answer, the file, the API server's relist) ends the owners it no longer
//! names.

use std::{collections::HashSet, net::IpAddr};

use ipnet::IpNet;

use super::ipmap::{IpMap, Owner, OwnerId};
use crate::clock::WallClock;

/// One owner as a source reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct Claim {
    pub id: OwnerId,
    pub owner: Owner,
    pub addresses: Vec<IpAddr>,
    /// Networks that resolve to the owner where no owner holds the address
    /// (a node's pod CIDRs, a named network in the file).
    pub networks: Vec<IpNet>,
    /// When the owner began to hold its addresses, nanoseconds since the
    /// epoch, where the source knows; else from when it is seen.
    pub since_unix_ns: Option<i128>,
    /// On its way out (a terminating pod): gives its addresses up to the
    /// next owner that claims them.
    pub releasing: bool,
}

impl Claim {
    /// `owner` holding `addresses`, from when it is seen.
    #[must_use]
    pub fn new(id: OwnerId, owner: Owner, addresses: Vec<IpAddr>) -> Self {
        Self { id, owner, addresses, networks: Vec::new(), since_unix_ns: None, releasing: false }
    }
}

/// The owners one source has in the map.
#[derive(Debug, Default)]
pub struct Claimed(HashSet<OwnerId>);

impl Claimed {
    /// Puts `claim` in the map at `now` (kernel nanoseconds; `clock` maps
    /// the claim's wall-clock start onto that clock). Conflicts are logged
    /// and counted by the map.
    pub fn apply(&mut self, map: &mut IpMap, claim: Claim, now: u64, clock: &WallClock) {
        let since = claim.since_unix_ns.map_or(now, |t| clock.to_kernel_ns(t));
        map.set_networks(&claim.id, &claim.owner, &claim.networks);
        let conflicts = map.set_since(&claim.id, claim.owner.clone(), &claim.addresses, now, since);
        map.set_releasing(&claim.id, claim.releasing);
        if !conflicts.is_empty() {
            tracing::warn!(
                owner = %claim.owner.name,
                namespace = claim.owner.namespace.as_deref().unwrap_or(""),
                id = %claim.id,
                ?conflicts,
                "addresses another live owner holds: not named while both do"
            );
        }
        self.0.insert(claim.id);
    }

    /// `id` is gone at `now`.
    pub fn remove(&mut self, map: &mut IpMap, id: &OwnerId, now: u64) {
        map.remove(id, now);
        self.0.remove(id);
    }

    /// `claims` are everything the source names now: each is applied, and
    /// the owners it named before and not now are gone.
    pub fn replace_all(&mut self, map: &mut IpMap, claims: impl IntoIterator<Item = Claim>, now: u64) {
        let clock = WallClock::now();
        let before = std::mem::take(&mut self.0);
        for claim in claims {
            self.apply(map, claim, now, &clock);
        }
        for gone in before.difference(&self.0) {
            map.remove(gone, now);
        }
    }

    /// The source is dropped: everything it named is gone at `now`.
    pub fn clear(&mut self, map: &mut IpMap, now: u64) {
        for id in self.0.drain() {
            map.remove(&id, now);
        }
    }

    /// How many owners the source names.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
