//! Which pod, node or named host owned an IP address, and when. Entries are
//! kept by owner (a pod's UID, a node's name, a file entry), each with the
//! times it held each of its addresses, so an address a new pod reuses
//! does not rename an older flow: a record is named by whoever held the
//! address when its last packet was seen. An owner that is gone stays
//! resolvable for a grace period, so late records still get its name. Two
//! live owners of one address are a conflict: counted, and never resolved
//! to either.
//!
//! Several sources may name one owner (the runtime and the API server both
//! know a pod): an owner's id ends in `@source`, and ids that differ only
//! there are one subject, never a conflict with itself.
//!
//! Times are the kernel's monotonic clock in nanoseconds, the clock flow
//! records carry.

use std::{
    cmp::Reverse,
    collections::{BTreeMap, HashMap, HashSet},
    net::IpAddr,
    sync::Arc,
};

use ipnet::IpNet;

use smallvec::SmallVec;

/// A name, shared: the many pods of one namespace, node or workload hold
/// one copy of its name (the map interns them).
pub type Text = Arc<str>;

/// Labels, key and value, in the order given.
pub type Labels = Box<[(Text, Text)]>;

/// What an owner is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OwnerKind {
    Pod,
    /// A node, which host-network pods resolve to as well.
    Node,
    /// A named address or network from the `file` source (a VM, a service).
    Host,
}

impl OwnerKind {
    /// Lower-case name, as `vxflow ctl pods` gives it.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            OwnerKind::Pod => "pod",
            OwnerKind::Node => "node",
            OwnerKind::Host => "host",
        }
    }
}

/// A workload owning a pod: the top of its owner chain (a Deployment
/// rather than its `ReplicaSet`, where the source says so).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Workload {
    pub kind: Text,
    pub name: Text,
}

/// Who an address belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub kind: OwnerKind,
    pub name: Text,
    pub namespace: Option<Text>,
    pub node: Option<Text>,
    pub workload: Option<Workload>,
    pub labels: Labels,
}

/// One copy of each name many owners share (namespaces, nodes, workloads,
/// label keys and values): at 100,000 pods the map would otherwise hold the
/// same few hundred strings 100,000 times.
#[derive(Debug, Default)]
struct Interner(HashSet<Text>);

impl Interner {
    fn intern(&mut self, s: &Text) -> Text {
        if let Some(known) = self.0.get(s) {
            return known.clone();
        }
        self.0.insert(s.clone());
        s.clone()
    }

    /// The owner with its shared names interned; its own name is its own.
    fn owner(&mut self, o: Owner) -> Owner {
        Owner {
            namespace: o.namespace.as_ref().map(|s| self.intern(s)),
            node: o.node.as_ref().map(|s| self.intern(s)),
            workload: o.workload.as_ref().map(|w| Workload { kind: self.intern(&w.kind), name: self.intern(&w.name) }),
            labels: o.labels.iter().map(|(k, v)| (self.intern(k), self.intern(v))).collect(),
            ..o
        }
    }

    /// Forgets names no owner uses any more.
    fn sweep(&mut self) {
        self.0.retain(|s| Arc::strong_count(s) > 1);
    }
}

/// An owner's identity: `pod/<uid>@cri`, `node/<name>@kubernetes`,
/// `file/<entry>@file`. Stable for the owner's life; a new pod is a new id.
pub type OwnerId = Arc<str>;

/// What `id` names whichever source said it: the id without its `@source`.
fn subject(id: &str) -> &str {
    id.rsplit_once('@').map_or(id, |(s, _)| s)
}

/// The source that named `id`: `cri`, `kubernetes`, `file`.
#[must_use]
pub fn source(id: &str) -> &str {
    id.rsplit_once('@').map_or("", |(_, s)| s)
}

/// One owner's hold on one address: from `since` to `until` (still held
/// when `None`).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Tenure {
    owner: OwnerId,
    since: u64,
    until: Option<u64>,
}

impl Tenure {
    fn covers(&self, at: u64) -> bool {
        self.since <= at && self.until.is_none_or(|u| at <= u)
    }
}

/// An owner and the addresses it holds now (none once gone).
#[derive(Debug)]
struct Known {
    owner: Arc<Owner>,
    /// A pod's one or two addresses, inline.
    held: SmallVec<[IpAddr; 2]>,
    /// On its way out (a terminating pod): it gives an address up as soon
    /// as another owner claims it, rather than conflict.
    releasing: bool,
}

/// A network's owner: its id (to remove it by) and description.
type Named = (OwnerId, Arc<Owner>);

/// Named networks: what an address no owner held resolves to. By prefix
/// length, longest first, each an exact table of networks, so a lookup is
/// one hash probe per length in use (a cluster's podCIDRs share one or
/// two), not a scan of every node's network.
#[derive(Debug, Default)]
struct Networks {
    by_length: BTreeMap<Reverse<u8>, HashMap<IpNet, Named>>,
    of_owner: HashMap<OwnerId, SmallVec<[IpNet; 2]>>,
}

impl Networks {
    fn set(&mut self, id: &OwnerId, owner: &Arc<Owner>, nets: &[IpNet]) {
        self.remove(id);
        for net in nets {
            let net = net.trunc();
            self.by_length.entry(Reverse(net.prefix_len())).or_default().insert(net, (id.clone(), owner.clone()));
        }
        self.of_owner.insert(id.clone(), nets.iter().map(IpNet::trunc).collect());
    }

    fn remove(&mut self, id: &OwnerId) {
        for net in self.of_owner.remove(id).unwrap_or_default() {
            let len = Reverse(net.prefix_len());
            if let Some(table) = self.by_length.get_mut(&len) {
                // Another owner may have named the same network since.
                if table.get(&net).is_some_and(|(holder, _)| holder == id) {
                    table.remove(&net);
                }
                if table.is_empty() {
                    self.by_length.remove(&len);
                }
            }
        }
    }

    fn find(&self, ip: &IpAddr) -> Option<&Arc<Owner>> {
        self.by_length.iter().find_map(|(Reverse(len), table)| {
            let net = IpNet::new(*ip, *len).ok()?.trunc();
            table.get(&net).map(|(_, owner)| owner)
        })
    }

    fn len(&self) -> usize {
        self.by_length.values().map(HashMap::len).sum()
    }

    fn iter(&self) -> impl Iterator<Item = (&IpNet, &Named)> {
        self.by_length.values().flatten()
    }
}

/// What an address resolves to at one time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolved {
    Owner(Arc<Owner>),
    /// Nobody held it then, as far as the sources said.
    Unknown,
    /// Several owners held it at once: no name is given.
    Conflict,
}

/// The map, with the addresses and owners its sources reported.
#[derive(Debug, Default)]
pub struct IpMap {
    /// Every owner a kept tenure names, live or gone.
    owners: HashMap<OwnerId, Known>,
    /// By address, every tenure still kept, oldest first: almost always
    /// one, held inline.
    tenures: HashMap<IpAddr, SmallVec<[Tenure; 1]>>,
    names: Interner,
    /// Named networks (the `file` source's, nodes' pod CIDRs): what an
    /// address no owner held resolves to. They hold no history.
    networks: Networks,
    /// How long an ended tenure is kept for late records.
    grace_ns: u64,
    conflicts: u64,
}

impl IpMap {
    #[must_use]
    pub fn new(grace: std::time::Duration) -> Self {
        Self { grace_ns: u64::try_from(grace.as_nanos()).unwrap_or(u64::MAX), ..Self::default() }
    }

    /// How long an ended tenure is kept for late records, from now on.
    pub fn set_grace(&mut self, grace: std::time::Duration) {
        self.grace_ns = u64::try_from(grace.as_nanos()).unwrap_or(u64::MAX);
    }

    /// `id` is `owner` and holds exactly `ips` from `now` on: addresses it
    /// did not hold start a tenure, addresses it no longer lists end theirs.
    /// Returns the addresses another owner held live at the same time
    /// (conflicts, counted).
    pub fn set(&mut self, id: &OwnerId, owner: Owner, ips: &[IpAddr], now: u64) -> Vec<IpAddr> {
        self.set_since(id, owner, ips, now, now)
    }

    /// [`IpMap::set`], with addresses it did not hold held from `since`
    /// (at most `now`): when the source knows the owner began then (a pod
    /// sandbox's creation time), before it could report it. An owner that
    /// ended its hold after `since` had given the address up by then (an
    /// address is assigned only once released): its end moves back.
    pub fn set_since(&mut self, id: &OwnerId, owner: Owner, ips: &[IpAddr], now: u64, since: u64) -> Vec<IpAddr> {
        let since = since.min(now);
        let before = if let Some(known) = self.owners.get_mut(id) {
            if *known.owner != owner {
                known.owner = Arc::new(self.names.owner(owner));
            }
            std::mem::take(&mut known.held)
        } else {
            let owner = Arc::new(self.names.owner(owner));
            self.owners.insert(id.clone(), Known { owner, held: SmallVec::new(), releasing: false });
            SmallVec::new()
        };
        for ip in before.iter().filter(|ip| !ips.contains(ip)) {
            self.end(ip, id, now);
        }
        let mut conflicts = Vec::new();
        for ip in ips.iter().filter(|ip| !before.contains(ip)) {
            let list = self.tenures.entry(*ip).or_default();
            let mut conflict = false;
            for t in list.iter_mut().filter(|t| subject(&t.owner) != subject(id)) {
                let releasing = self.owners.get(&t.owner).is_some_and(|k| k.releasing);
                match &mut t.until {
                    // An owner on its way out had let the address go.
                    None if releasing => t.until = Some(since.saturating_sub(1).max(t.since)),
                    None => conflict = true,
                    Some(until) => *until = (*until).min(since.saturating_sub(1)).max(t.since),
                }
            }
            if conflict {
                conflicts.push(*ip);
            }
            list.push(Tenure { owner: id.clone(), since, until: None });
        }

        self.conflicts += conflicts.len() as u64;
        let mut now_held: SmallVec<[IpAddr; 2]> = ips.iter().copied().collect();
        now_held.sort_unstable();
        now_held.dedup();
        if let Some(known) = self.owners.get_mut(id) {
            known.held = now_held;
        }
        conflicts
    }

    /// Whether `id` is on its way out (a terminating pod): then another
    /// owner's claim to one of its addresses ends its hold rather than
    /// conflicting with it.
    pub fn set_releasing(&mut self, id: &OwnerId, releasing: bool) {
        if let Some(known) = self.owners.get_mut(id) {
            known.releasing = releasing;
        }
    }

    /// `id` names exactly `nets` from now on (none: no network); each
    /// resolves to `owner` whenever no owner held the address itself.
    pub fn set_networks(&mut self, id: &OwnerId, owner: &Owner, nets: &[IpNet]) {
        if nets.is_empty() {
            // Most owners (every pod) name none: no owner to intern.
            self.networks.remove(id);
            return;
        }
        let owner = Arc::new(self.names.owner(owner.clone()));
        self.networks.set(id, &owner, nets);
    }

    /// `id` is gone at `now`: its tenures end; it stays resolvable for what
    /// happened before, until the grace period after `now`. Its networks,
    /// which hold no history, go now.
    pub fn remove(&mut self, id: &OwnerId, now: u64) {
        self.networks.remove(id);
        let held = self.owners.get_mut(id).map(|k| std::mem::take(&mut k.held)).unwrap_or_default();
        for ip in held {
            self.end(&ip, id, now);
        }
    }

    fn end(&mut self, ip: &IpAddr, id: &OwnerId, now: u64) {
        if let Some(list) = self.tenures.get_mut(ip) {
            for t in list.iter_mut().filter(|t| t.owner == *id && t.until.is_none()) {
                t.until = Some(now);
            }
        }
    }

    /// The owners `self` knows now, by id, and what each holds.
    pub fn live(&self) -> impl Iterator<Item = (&OwnerId, &[IpAddr])> {
        self.owners.iter().filter(|(_, k)| !k.held.is_empty()).map(|(id, k)| (id, k.held.as_slice()))
    }

    /// Drops tenures that ended more than the grace period before `now`,
    /// and owners with nothing left.
    pub fn expire(&mut self, now: u64) {
        let keep_after = now.saturating_sub(self.grace_ns);
        self.tenures.retain(|_, list| {
            list.retain(|t| t.until.is_none_or(|u| u >= keep_after));
            !list.is_empty()
        });
        let referenced: HashSet<OwnerId> = self.tenures.values().flatten().map(|t| t.owner.clone()).collect();
        self.owners.retain(|id, k| !k.held.is_empty() || referenced.contains(id));
        self.names.sweep();
    }

    /// Who held `ip` at `at`: the one owner whose tenure covers it (one
    /// subject, whichever sources named it), else the longest named network
    /// holding it.
    #[must_use]
    pub fn resolve(&self, ip: &IpAddr, at: u64) -> Resolved {
        let network = || self.networks.find(ip).map_or(Resolved::Unknown, |o| Resolved::Owner(o.clone()));
        let Some(list) = self.tenures.get(ip) else { return network() };
        let mut found = list.iter().filter(|t| t.covers(at));
        let Some(first) = found.next() else { return network() };
        if found.any(|t| subject(&t.owner) != subject(&first.owner)) {
            return Resolved::Conflict;
        }
        self.owner(&first.owner)
    }

    /// Every address with each owner it had, oldest first, for `vxflow ctl
    /// pods`: the address, the owner's id and description, and its hold
    /// (`until` none while it lasts).
    pub fn entries(&self) -> impl Iterator<Item = (IpAddr, &OwnerId, Option<&Owner>, u64, Option<u64>)> {
        self.tenures.iter().flat_map(move |(ip, list)| {
            list.iter().map(move |t| (*ip, &t.owner, self.owners.get(&t.owner).map(|k| &*k.owner), t.since, t.until))
        })
    }

    /// Every named network with its owner's id and description, for
    /// `vxflow ctl pods`.
    pub fn network_entries(&self) -> impl Iterator<Item = (IpNet, &OwnerId, &Owner)> {
        self.networks.iter().map(|(net, (id, owner))| (*net, id, &**owner))
    }

    fn owner(&self, id: &OwnerId) -> Resolved {
        self.owners.get(id).map_or(Resolved::Unknown, |k| Resolved::Owner(k.owner.clone()))
    }

    /// Addresses another live owner already held when an owner claimed them.
    #[must_use]
    pub fn conflicts(&self) -> u64 {
        self.conflicts
    }

    /// Named networks.
    #[must_use]
    pub fn networks(&self) -> usize {
        self.networks.len()
    }

    /// Owners known, live or within their grace period.
    #[must_use]
    pub fn owners(&self) -> usize {
        self.owners.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn pod(name: &str) -> Owner {
        Owner {
            kind: OwnerKind::Pod,
            name: name.into(),
            namespace: Some("default".into()),
            node: Some("node-1".into()),
            workload: None,
            labels: Labels::default(),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn name(r: &Resolved) -> Option<&str> {
        match r {
            Resolved::Owner(o) => Some(&o.name),
            _ => None,
        }
    }

    /// A pod deleted and its address given to a new one: flows seen before
    /// keep the old name, later ones get the new; between the two nobody.
    #[test]
    fn a_reused_address_does_not_rename_older_flows() {
        let mut m = IpMap::new(std::time::Duration::from_mins(2));
        let (old, new): (OwnerId, OwnerId) = ("pod/a".into(), "pod/b".into());
        m.set(&old, pod("web-1"), &[ip("10.244.0.5")], 10 * S);
        m.remove(&old, 20 * S);
        m.set(&new, pod("db-1"), &[ip("10.244.0.5")], 25 * S);
        assert_eq!(name(&m.resolve(&ip("10.244.0.5"), 15 * S)), Some("web-1"));
        assert_eq!(m.resolve(&ip("10.244.0.5"), 22 * S), Resolved::Unknown);
        assert_eq!(name(&m.resolve(&ip("10.244.0.5"), 30 * S)), Some("db-1"));
        assert_eq!(m.resolve(&ip("10.244.0.5"), 5 * S), Resolved::Unknown, "before anyone held it");
        assert_eq!(m.conflicts(), 0);
    }

    /// A deleted pod resolves for the grace period after its end, then is
    /// forgotten, owner and all.
    #[test]
    fn the_grace_period_keeps_late_records_named_then_frees() {
        let mut m = IpMap::new(std::time::Duration::from_mins(2));
        let id: OwnerId = "pod/a".into();
        m.set(&id, pod("web-1"), &[ip("10.244.0.5"), ip("fd00::5")], 10 * S);
        m.remove(&id, 20 * S);
        m.expire(100 * S);
        assert_eq!(name(&m.resolve(&ip("fd00::5"), 15 * S)), Some("web-1"));
        m.expire(141 * S);
        assert_eq!(m.resolve(&ip("fd00::5"), 15 * S), Resolved::Unknown);
        assert_eq!(m.owners(), 0);
    }

    /// Two live owners of one address: counted, and resolved to neither
    /// while both hold it.
    #[test]
    fn two_live_owners_are_a_conflict_not_a_guess() {
        let mut m = IpMap::new(std::time::Duration::from_mins(2));
        let (a, b): (OwnerId, OwnerId) = ("pod/a".into(), "pod/b".into());
        m.set(&a, pod("a"), &[ip("10.0.0.1")], S);
        assert_eq!(m.set(&b, pod("b"), &[ip("10.0.0.1")], 2 * S), [ip("10.0.0.1")]);
        assert_eq!(m.conflicts(), 1);
        assert_eq!(name(&m.resolve(&ip("10.0.0.1"), S + 1)), Some("a"));
        assert_eq!(m.resolve(&ip("10.0.0.1"), 3 * S), Resolved::Conflict);
        m.remove(&a, 4 * S);
        assert_eq!(name(&m.resolve(&ip("10.0.0.1"), 5 * S)), Some("b"));
    }

    /// An address no owner held falls to the longest named network.
    #[test]
    fn networks_name_what_no_owner_holds() {
        let mut m = IpMap::new(std::time::Duration::from_mins(2));
        let host = |n: &str| Owner { kind: OwnerKind::Host, ..pod(n) };
        m.set_networks(&"file/corp".into(), &host("corp"), &["10.0.0.0/8".parse().unwrap()]);
        m.set_networks(&"file/lab".into(), &host("lab"), &["10.1.0.0/16".parse().unwrap()]);
        let id: OwnerId = "pod/a".into();
        m.set(&id, pod("web-1"), &[ip("10.1.0.5")], S);
        assert_eq!(name(&m.resolve(&ip("10.1.0.5"), 2 * S)), Some("web-1"));
        assert_eq!(name(&m.resolve(&ip("10.1.0.5"), 0)), Some("lab"), "before the pod held it");
        assert_eq!(name(&m.resolve(&ip("10.2.0.5"), 0)), Some("corp"));
        assert_eq!(m.resolve(&ip("192.168.0.1"), 0), Resolved::Unknown);
        m.remove(&"file/lab".into(), 3 * S);
        assert_eq!(name(&m.resolve(&ip("10.1.0.6"), 0)), Some("corp"), "a removed network goes at once");
        assert_eq!(m.networks(), 1);
    }

    /// The runtime and the API server naming one pod agree; its id differs
    /// only in the source.
    #[test]
    fn two_sources_naming_one_pod_are_no_conflict() {
        let mut m = IpMap::new(std::time::Duration::from_mins(2));
        let (cri, api): (OwnerId, OwnerId) = ("pod/u1@cri".into(), "pod/u1@kubernetes".into());
        m.set(&cri, pod("web-1"), &[ip("10.0.0.5")], S);
        assert!(m.set(&api, pod("web-1"), &[ip("10.0.0.5")], 2 * S).is_empty());
        assert_eq!(name(&m.resolve(&ip("10.0.0.5"), 3 * S)), Some("web-1"));
        assert_eq!(m.conflicts(), 0);
        let other: OwnerId = "pod/u2@kubernetes".into();
        assert_eq!(m.set(&other, pod("web-2"), &[ip("10.0.0.5")], 4 * S), [ip("10.0.0.5")]);
        assert_eq!(m.resolve(&ip("10.0.0.5"), 5 * S), Resolved::Conflict);
    }

    /// A terminating pod still lists its address; a new pod given it is
    /// its owner from its start, no conflict.
    #[test]
    fn a_releasing_owner_gives_way() {
        let mut m = IpMap::new(std::time::Duration::from_mins(2));
        let (old, new): (OwnerId, OwnerId) = ("pod/a@kubernetes".into(), "pod/b@kubernetes".into());
        m.set(&old, pod("web-1"), &[ip("10.0.0.5")], S);
        m.set_releasing(&old, true);
        assert!(m.set_since(&new, pod("web-2"), &[ip("10.0.0.5")], 10 * S, 8 * S).is_empty());
        assert_eq!(name(&m.resolve(&ip("10.0.0.5"), 7 * S)), Some("web-1"));
        assert_eq!(name(&m.resolve(&ip("10.0.0.5"), 9 * S)), Some("web-2"));
        m.remove(&old, 12 * S);
        assert_eq!(name(&m.resolve(&ip("10.0.0.5"), 13 * S)), Some("web-2"));
        assert_eq!(m.conflicts(), 0);
    }

    /// Networks of one prefix length are found by one probe each length;
    /// the longest wins, across lengths and families.
    #[test]
    fn networks_by_length_and_family() {
        let mut m = IpMap::new(std::time::Duration::from_mins(2));
        let node = |n: &str| Owner { kind: OwnerKind::Node, ..pod(n) };
        for i in 0..200u32 {
            let net: IpNet = format!("10.244.{i}.0/24").parse().unwrap();
            let v6: IpNet = format!("fd00:10:244:{i:x}::/64").parse().unwrap();
            m.set_networks(&format!("node/n{i}@kubernetes").into(), &node(&format!("n{i}")), &[net, v6]);
        }
        assert_eq!(m.networks(), 400);
        assert_eq!(name(&m.resolve(&ip("10.244.77.9"), 0)), Some("n77"));
        assert_eq!(name(&m.resolve(&ip("fd00:10:244:4d::9"), 0)), Some("n77"));
        assert_eq!(m.resolve(&ip("10.245.0.1"), 0), Resolved::Unknown);
        m.set_networks(&"node/n77@kubernetes".into(), &node("n77"), &[]);
        assert_eq!(m.resolve(&ip("10.244.77.9"), 0), Resolved::Unknown);
        assert_eq!(m.networks(), 398);
    }

    /// A source that learns of a new owner late says when it began: the
    /// address is its from then, and the owner before it, whose end was
    /// seen late too, gave it up by then.
    #[test]
    fn a_known_start_time_moves_the_handover_back() {
        let mut m = IpMap::new(std::time::Duration::from_mins(2));
        let (old, new): (OwnerId, OwnerId) = ("pod/a".into(), "pod/b".into());
        m.set(&old, pod("web-1"), &[ip("10.0.0.5")], S);
        // Both changes seen at 10 s; the new pod began at 7 s.
        m.remove(&old, 10 * S);
        assert!(m.set_since(&new, pod("db-1"), &[ip("10.0.0.5")], 10 * S, 7 * S).is_empty());
        assert_eq!(name(&m.resolve(&ip("10.0.0.5"), 6 * S)), Some("web-1"));
        assert_eq!(name(&m.resolve(&ip("10.0.0.5"), 8 * S)), Some("db-1"));
        assert_eq!(m.conflicts(), 0);
    }

    /// Setting an owner again with a changed address list ends what it
    /// dropped and starts what it gained; the same list changes nothing.
    #[test]
    fn set_follows_an_owners_addresses() {
        let mut m = IpMap::new(std::time::Duration::from_mins(2));
        let id: OwnerId = "node/n1".into();
        m.set(&id, pod("n1"), &[ip("192.168.0.1")], S);
        m.set(&id, pod("n1"), &[ip("192.168.0.1")], 2 * S);
        m.set(&id, pod("n1"), &[ip("192.168.0.2")], 3 * S);
        assert_eq!(name(&m.resolve(&ip("192.168.0.1"), 2 * S)), Some("n1"));
        assert_eq!(m.resolve(&ip("192.168.0.1"), 4 * S), Resolved::Unknown);
        assert_eq!(name(&m.resolve(&ip("192.168.0.2"), 4 * S)), Some("n1"));
        assert_eq!(m.conflicts(), 0);
    }
}
