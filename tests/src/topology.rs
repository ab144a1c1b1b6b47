//! A Flannel-like two-node topology in network namespaces:
//!
//! ```text
//!  pod a ─┐                                                         ┌─ pod a
//!  pod b ─┴ cni0 ─ flannel.1 (VXLAN) ─ eth0 ══ underlay ══ eth0 ─ flannel.1 ─ cni0 ┬ pod b
//!          node1                                                     node2
//! ```
//!
//! As Flannel's vxlan backend sets it up: each node's `flannel.1` holds the
//! `.0` address of its pod subnet, routes the other node's subnet via that
//! node's `.0` on-link, with a permanent neighbour entry for it and an FDB
//! entry sending its MAC to the other node's underlay address. Every address
//! the underlay needs is resolved statically, so no ARP or ND crosses `eth0`
//! and its counters hold only the test's traffic.

use std::{
    net::IpAddr,
    time::{Duration, Instant},
};

use crate::{cmd, netns::Netns};

/// The address family of a layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

/// What to build.
#[derive(Clone, Debug)]
pub struct Options {
    pub vni: u32,
    pub vxlan_port: u16,
    pub underlay: Family,
    pub pods: Family,
}

impl Default for Options {
    /// Flannel's defaults: VNI 1, port 8472, IPv4 everywhere.
    fn default() -> Self {
        Self { vni: 1, vxlan_port: 8472, underlay: Family::V4, pods: Family::V4 }
    }
}

/// Offload settings for a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offloads {
    /// TSO/GSO on pods, bridge and VXLAN device; GRO on the node NICs. The
    /// node NICs segment in software (like a NIC without VXLAN TSO), so TC
    /// sees super-packets while the NIC counters count wire segments.
    On,
    /// Every offload off: one skb is one packet everywhere.
    Off,
}

pub struct Node {
    pub ns: Netns,
    /// Underlay address.
    pub addr: IpAddr,
    pub pods: Vec<Pod>,
}

pub struct Pod {
    pub ns: Netns,
    pub addr: IpAddr,
}

pub struct Flannel {
    pub options: Options,
    pub nodes: [Node; 2],
}

fn underlay_addr(f: Family, node: usize) -> (String, u8) {
    match f {
        Family::V4 => (format!("192.168.56.{}", 11 + node), 24),
        Family::V6 => (format!("fd00:56::{}", 11 + node), 64),
    }
}

/// Pod subnet of `node`, its `.0` (flannel.1) and `.1` (cni0) addresses.
fn pod_net(f: Family, node: usize) -> (String, String, String, u8) {
    match f {
        Family::V4 => (format!("10.244.{node}.0/24"), format!("10.244.{node}.0"), format!("10.244.{node}.1"), 24),
        Family::V6 => {
            (format!("fd00:244:{node}::/64"), format!("fd00:244:{node}::"), format!("fd00:244:{node}::1"), 64)
        }
    }
}

fn pod_addr(f: Family, node: usize, pod: usize) -> String {
    match f {
        Family::V4 => format!("10.244.{node}.{}", 2 + pod),
        Family::V6 => format!("fd00:244:{node}::{}", 2 + pod),
    }
}

/// `nodad` where iproute2 accepts it (IPv6 only).
fn nodad(f: Family) -> &'static str {
    match f {
        Family::V4 => "",
        Family::V6 => " nodad",
    }
}

fn ip_flag(f: Family) -> &'static str {
    match f {
        Family::V4 => "-4",
        Family::V6 => "-6",
    }
}

impl Offloads {
    /// Link-layer bytes per packet in the underlay veths' byte counters.
    /// With GRO on, veth receives through NAPI and `veth_xdp_rcv` counts
    /// `skb->len` after `eth_type_trans` pulled the Ethernet header; without,
    /// `veth_xmit` counts the whole frame. A veth's tx counters are its peer's
    /// rx counters (`veth_get_stats64`), so both directions follow the peer.
    /// (drivers/net/veth.c, Linux 6.x.)
    #[must_use]
    pub const fn veth_l2_bytes(self) -> u64 {
        match self {
            Offloads::On => 0,
            Offloads::Off => 14,
        }
    }
}

/// `flannel.1` on node `n`, with its `.0` address, as Flannel creates it.
fn create_vxlan_device(ns: &Netns, n: usize, o: &Options, mtu: u32) {
    let (local, _) = underlay_addr(o.underlay, n);
    ns.ip(&format!(
        "link add flannel.1 type vxlan id {} local {local} dev eth0 dstport {} nolearning",
        o.vni, o.vxlan_port
    ));
    ns.ip(&format!("link set flannel.1 mtu {mtu} up"));
    let (_, zero, _, _) = pod_net(o.pods, n);
    let host_len = if o.pods == Family::V4 { 32 } else { 128 };
    ns.ip(&format!("addr add {zero}/{host_len} dev flannel.1{}", nodad(o.pods)));
}

/// Node `n`'s route, neighbour and FDB entry for the peer's pod network
/// through `flannel.1`, as Flannel's VXLAN backend programs them.
fn route_to_peer(ns: &Netns, peer_ns: &Netns, n: usize, o: &Options) {
    let peer = 1 - n;
    let (peer_net, peer_zero, _, _) = pod_net(o.pods, peer);
    let peer_vtep_mac = peer_ns.mac("flannel.1");
    let (peer_underlay, _) = underlay_addr(o.underlay, peer);
    ns.ip(&format!("{} route add {peer_net} via {peer_zero} dev flannel.1 onlink", ip_flag(o.pods)));
    ns.ip(&format!("neigh replace {peer_zero} lladdr {peer_vtep_mac} dev flannel.1 nud permanent"));
    ns.exec(&["bridge", "fdb", "append", &peer_vtep_mac, "dev", "flannel.1", "dst", &peer_underlay]);
}

fn overlay_mtu(o: &Options) -> u32 {
    match o.underlay {
        Family::V4 => 1450,
        Family::V6 => 1430,
    }
}

impl Flannel {
    /// Deletes node `n`'s `flannel.1` and creates it again (as a restarted
    /// CNI may), with its routes; it gets a new interface index.
    pub fn recreate_vxlan_device(&self, n: usize) {
        let (ns, peer) = (&self.nodes[n].ns, &self.nodes[1 - n].ns);
        ns.ip("link del flannel.1");
        create_vxlan_device(ns, n, &self.options, overlay_mtu(&self.options));
        route_to_peer(ns, peer, n, &self.options);
        // The peer's FDB and neighbour entries name this node's VTEP MAC.
        let (zero, mac) = (pod_net(self.options.pods, n).1, ns.mac("flannel.1"));
        peer.ip(&format!("neigh replace {zero} lladdr {mac} dev flannel.1 nud permanent"));
        let (underlay, _) = underlay_addr(self.options.underlay, n);
        peer.exec(&["bridge", "fdb", "append", &mac, "dev", "flannel.1", "dst", &underlay]);
    }

    /// Builds the topology under a unique name prefix.
    #[must_use]
    pub fn build(prefix: &str, options: Options) -> Self {
        let o = &options;
        let node_ns: Vec<Netns> = (0..2).map(|n| Netns::new(&format!("{prefix}-n{}", n + 1))).collect();
        let mtu = overlay_mtu(o);
        // Underlay: one veth pair, eth0 on both sides.
        node_ns[0].ip(&format!("link add eth0 type veth peer name eth0 netns {}", node_ns[1].name()));
        for (n, ns) in node_ns.iter().enumerate() {
            ns.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
            ns.exec(&["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
            if o.underlay == Family::V4 {
                ns.disable_ipv6("eth0");
            } else {
                // No link-local address: fewer multicast groups, less MLD.
                ns.ip("link set eth0 addrgenmode none");
            }
            let (addr, len) = underlay_addr(o.underlay, n);
            ns.ip(&format!("addr add {addr}/{len} dev eth0{}", nodad(o.underlay)));
            ns.ip("link set eth0 up");
        }
        for n in 0..2 {
            let peer = 1 - n;
            let (peer_addr, _) = underlay_addr(o.underlay, peer);
            let peer_mac = node_ns[peer].mac("eth0");
            node_ns[n].ip(&format!("neigh replace {peer_addr} lladdr {peer_mac} dev eth0 nud permanent"));
        }
        // flannel.1 on each node.
        for (n, ns) in node_ns.iter().enumerate() {
            create_vxlan_device(ns, n, o, mtu);
        }
        for n in 0..2 {
            route_to_peer(&node_ns[n], &node_ns[1 - n], n, o);
        }
        // cni0 and the pods.
        let mut nodes = Vec::new();
        for (n, ns) in node_ns.into_iter().enumerate() {
            let (_, _, gw, len) = pod_net(o.pods, n);
            ns.ip("link add cni0 type bridge");
            ns.ip(&format!("link set cni0 mtu {mtu} up"));
            ns.ip(&format!("addr add {gw}/{len} dev cni0"));
            let mut pods = Vec::new();
            for p in 0..2 {
                let pod = Netns::new(&format!("{prefix}-p{}{}", n + 1, ['a', 'b'][p]));
                let host_if = format!("veth{p}");
                ns.ip(&format!("link add {host_if} mtu {mtu} type veth peer name eth0 netns {}", pod.name()));
                ns.ip(&format!("link set {host_if} master cni0 up"));
                let addr = pod_addr(o.pods, n, p);
                pod.ip(&format!("link set eth0 mtu {mtu} up"));
                pod.ip(&format!("addr add {addr}/{len} dev eth0"));
                pod.ip(&format!("{} route add default via {gw}", ip_flag(o.pods)));
                pods.push(Pod { ns: pod, addr: addr.parse().unwrap() });
            }
            let (a, _) = underlay_addr(o.underlay, n);
            nodes.push(Node { ns, addr: a.parse().unwrap(), pods });
        }
        let [n1, n2]: [Node; 2] = nodes.try_into().unwrap_or_else(|_| unreachable!());
        let topo = Self { options, nodes: [n1, n2] };
        topo.wait_reachable();
        topo
    }

    /// Waits until every pod answers one ping from the other node's first pod,
    /// so IPv6 addresses are usable and neighbour entries on the bridges exist.
    fn wait_reachable(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        for n in 0..2 {
            let from = &self.nodes[n].pods[0];
            for to in self.nodes[1 - n].pods.iter().chain(&self.nodes[n].pods[1..]) {
                let dst = to.addr.to_string();
                loop {
                    let out = cmd::output(&["ip", "netns", "exec", from.ns.name(), "ping", "-c", "1", "-W", "1", &dst]);
                    if out.status.success() {
                        break;
                    }
                    assert!(Instant::now() < deadline, "{} cannot reach {dst}", from.addr);
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }

    /// Applies an offload setting to every device on the path.
    pub fn set_offloads(&self, offloads: Offloads) {
        for node in &self.nodes {
            let ns = &node.ns;
            match offloads {
                Offloads::Off => {
                    for dev in ["eth0", "flannel.1", "cni0", "veth0", "veth1"] {
                        ns.ethtool_k(dev, "tso off gso off gro off tx off rx off");
                    }
                    for pod in &node.pods {
                        pod.ns.ethtool_k("eth0", "tso off gso off gro off tx off rx off");
                    }
                }
                Offloads::On => {
                    for pod in &node.pods {
                        pod.ns.ethtool_k("eth0", "tso on gso on tx on");
                    }
                    // The NIC segments in software after TC egress, and
                    // aggregates with GRO before TC ingress.
                    ns.ethtool_k(
                        "eth0",
                        "tso off gso off tx-udp_tnl-segmentation off tx-udp_tnl-csum-segmentation off gro on",
                    );
                }
            }
        }
    }

    /// Waits until `eth0` of node 1 has carried nothing for `quiet`, so a
    /// counter reading is not in the middle of a burst.
    pub fn settle(&self, quiet: Duration) {
        let ns = &self.nodes[0].ns;
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut last = ns.counters("eth0");
        let mut since = Instant::now();
        while since.elapsed() < quiet {
            assert!(Instant::now() < deadline, "eth0 of {} never went quiet", ns.name());
            std::thread::sleep(Duration::from_millis(100));
            let now = ns.counters("eth0");
            if now != last {
                last = now;
                since = Instant::now();
            }
        }
    }
}

/// Two namespaces joined by a veth: `v0` (10.9.0.1/24) in the first, `v1`
/// (10.9.0.2/24) in the second. IPv6 is off and the neighbours are static,
/// so only the traffic a test sends crosses it.
#[must_use]
pub fn veth_pair(tag: &str) -> (Netns, Netns) {
    let prefix = crate::unique_prefix(tag);
    let (a, b) = (Netns::new(&format!("{prefix}-a")), Netns::new(&format!("{prefix}-b")));
    add_veth(&a, &b, ("v0", "v1"), 0);
    (a, b)
}

/// A veth from `a` to `b` named `names`, with 10.9.`subnet`.1/24 on the
/// first end and .2 on the second, IPv6 off and static neighbours.
pub fn add_veth(a: &Netns, b: &Netns, names: (&str, &str), subnet: u8) {
    let (na, nb) = names;
    a.ip(&format!("link add {na} type veth peer name {nb} netns {}", b.name()));
    a.disable_ipv6(na);
    b.disable_ipv6(nb);
    a.ip(&format!("addr add 10.9.{subnet}.1/24 dev {na}"));
    b.ip(&format!("addr add 10.9.{subnet}.2/24 dev {nb}"));
    a.ip(&format!("link set {na} up"));
    b.ip(&format!("link set {nb} up"));
    a.ip(&format!("neigh replace 10.9.{subnet}.2 lladdr {} dev {na} nud permanent", b.mac(nb)));
    b.ip(&format!("neigh replace 10.9.{subnet}.1 lladdr {} dev {nb} nud permanent", a.mac(na)));
}
