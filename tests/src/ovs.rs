//! Open vSwitch's userspace datapath (`datapath_type=netdev`) in network
//! namespaces: real Geneve, GRE, ERSPAN and ip6gre implementations on a
//! kernel that has no modules for them. Each node runs its own
//! `ovsdb-server` and `ovs-vswitchd` from a private directory; dropping the
//! node's namespace kills both, and the directory goes with its `TempDir`.
//!
//! A node is laid out as OVS's userspace tunnelling wants it: the underlay
//! veth `eth0` is a port of the netdev bridge `br-phy`, which holds the node
//! address (IPv4 or IPv6); `br-int` holds the tunnel port and the pod's
//! internal port `pod0`. Pods share one IPv4 subnet, so their packets cross
//! the tunnel.
//!
//! Every neighbour is static (the kernel's, the pods', and OVS's tunnel
//! neighbour cache) and IPv6 is off where it is not the underlay, so the
//! underlay carries the pods' packets and nothing else: its interface
//! counters are the ground truth of a test.

use std::net::IpAddr;

use crate::{TempDir, netns::Netns, unique_prefix};

/// One node's Open vSwitch.
pub struct OvsNode {
    /// Declared before `dir`: the namespace (and the daemons in it) go first.
    pub ns: Netns,
    dir: TempDir,
    /// The node's underlay address, on `br-phy`.
    pub addr: IpAddr,
    /// The pod's address, on `pod0`.
    pub pod: IpAddr,
}

impl OvsNode {
    /// Starts `ovsdb-server` and `ovs-vswitchd` in `ns`.
    fn start(ns: Netns, addr: IpAddr, pod: IpAddr) -> Self {
        let dir = TempDir::new("ovs");
        let path = |name: &str| dir.join(name).to_str().unwrap().to_owned();
        let env = ["OVS_RUNDIR", "OVS_LOGDIR", "OVS_DBDIR"].map(|k| format!("{k}={}", path("")));
        let db = path("conf.db");
        let server = [
            format!("--remote=punix:{}", path("db.sock")),
            format!("--pidfile={}", path("ovsdb.pid")),
            format!("--log-file={}", path("ovsdb.log")),
        ];
        let switch = [
            format!("unix:{}", path("db.sock")),
            format!("--pidfile={}", path("vswitchd.pid")),
            format!("--log-file={}", path("vswitchd.log")),
        ];
        ns.exec(&["ovsdb-tool", "create", &db, "/usr/share/openvswitch/vswitch.ovsschema"]);
        let with_env = |program: &'static str, args: &[&str]| {
            let mut argv: Vec<&str> = vec!["env"];
            argv.extend(env.iter().map(String::as_str));
            argv.push(program);
            argv.extend_from_slice(args);
            ns.exec(&argv);
        };
        with_env("ovsdb-server", &[&db, &server[0], &server[1], &server[2], "--detach"]);
        let db_arg = format!("--db=unix:{}", path("db.sock"));
        ns.exec(&["ovs-vsctl", &db_arg, "--no-wait", "init"]);
        with_env("ovs-vswitchd", &[&switch[0], &switch[1], &switch[2], "--detach"]);
        Self { ns, dir, addr, pod }
    }

    /// `ovs-appctl` against this node's `ovs-vswitchd`.
    pub fn appctl(&self, args: &[&str]) -> String {
        let pid = std::fs::read_to_string(self.dir.join("vswitchd.pid")).unwrap();
        let target = self.dir.join(&format!("ovs-vswitchd.{}.ctl", pid.trim()));
        let target = format!("--target={}", target.to_str().unwrap());
        let mut command = vec!["ovs-appctl", target.as_str()];
        command.extend_from_slice(args);
        self.ns.exec(&command)
    }

    /// `ovs-ofctl add-flow` on one of this node's bridges, through its
    /// management socket.
    pub fn add_flow(&self, bridge: &str, flow: &str) {
        let socket = format!("unix:{}", self.dir.join(&format!("{bridge}.mgmt")).to_str().unwrap());
        self.ns.exec(&["ovs-ofctl", "add-flow", &socket, flow]);
    }

    /// `ovs-vsctl` against this node's database.
    pub fn vsctl(&self, args: &[&str]) -> String {
        let database = format!("--db=unix:{}", self.dir.join("db.sock").to_str().unwrap());
        let mut command = vec!["ovs-vsctl", database.as_str()];
        command.extend_from_slice(args);
        self.ns.exec(&command)
    }
}

/// A tunnel type Open vSwitch's userspace datapath implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OvsKind {
    /// Geneve (UDP 6081) carrying Ethernet, with a VNI.
    Geneve,
    /// GRE carrying Ethernet (transparent Ethernet bridging) with a key:
    /// NVGRE's framing.
    GreEthernet,
    /// GRE carrying IP directly (`packet_type=legacy_l3`) with a key, as
    /// routed GRE tunnels do.
    GreIp,
    /// ERSPAN type II (GRE protocol 0x88be, a sequence number): a mirror
    /// session's transport, whose frames vxflow does not decode.
    Erspan,
}

impl OvsKind {
    fn port_type(self, ipv6: bool) -> &'static str {
        match self {
            OvsKind::Geneve => "geneve",
            OvsKind::GreEthernet | OvsKind::GreIp if ipv6 => "ip6gre",
            OvsKind::GreEthernet | OvsKind::GreIp => "gre",
            OvsKind::Erspan if ipv6 => "ip6erspan",
            OvsKind::Erspan => "erspan",
        }
    }
}

/// Two nodes joined by a veth underlay, their pods by a tunnel.
pub struct OvsTunnel {
    pub nodes: [OvsNode; 2],
    pub kind: OvsKind,
    /// The VNI or key.
    pub key: u32,
}

impl OvsTunnel {
    /// Two nodes on an IPv4 (or, with `ipv6`, IPv6) underlay whose pods
    /// talk through an OVS tunnel of `kind` with key `key`.
    #[must_use]
    pub fn build(tag: &str, kind: OvsKind, key: u32, ipv6: bool) -> Self {
        let prefix = unique_prefix(tag);
        let (a, b) = (Netns::new(&format!("{prefix}-n1")), Netns::new(&format!("{prefix}-n2")));
        a.ip(&format!("link add eth0 type veth peer name eth0 netns {}", b.name()));
        let node = |ns: Netns, n: u8| {
            ns.ip("link set lo up");
            ns.disable_ipv6("eth0");
            let addr: IpAddr =
                if ipv6 { [0xfd00, 0x77, 0, 0, 0, 0, 0, u16::from(n)].into() } else { [192, 168, 77, n].into() };
            OvsNode::start(ns, addr, [10, 244, 0, n].into())
        };
        let nodes = [node(a, 1), node(b, 2)];
        for (i, n) in nodes.iter().enumerate() {
            let peer = nodes[1 - i].addr;
            n.ns.ip("link set eth0 up");
            n.vsctl(&["add-br", "br-phy", "--", "set", "bridge", "br-phy", "datapath_type=netdev"]);
            n.vsctl(&["add-port", "br-phy", "eth0"]);
            if ipv6 {
                n.ns.ip(&format!("addr add {}/64 dev br-phy nodad", n.addr));
            } else {
                n.ns.disable_ipv6("br-phy");
                n.ns.ip(&format!("addr add {}/24 dev br-phy", n.addr));
            }
            n.ns.ip("link set br-phy up");
            n.vsctl(&["add-br", "br-int", "--", "set", "bridge", "br-int", "datapath_type=netdev"]);
            n.ns.disable_ipv6("br-int");
            let (remote, key) = (format!("options:remote_ip={peer}"), format!("options:key={key}"));
            let ty = format!("type={}", kind.port_type(ipv6));
            let mut port = vec!["add-port", "br-int", "tun0", "--", "set", "interface", "tun0", &ty, &remote, &key];
            if kind == OvsKind::GreIp {
                port.push("options:packet_type=legacy_l3");
            }
            if kind == OvsKind::Erspan {
                port.extend(["options:erspan_ver=1", "options:erspan_idx=1"]);
            }
            n.vsctl(&port);
            n.vsctl(&["add-port", "br-int", "pod0", "--", "set", "interface", "pod0", "type=internal"]);
            n.ns.disable_ipv6("pod0");
            n.ns.ip(&format!("addr add {}/24 dev pod0", n.pod));
            n.ns.ip("link set pod0 up");
        }
        let topo = Self { nodes, kind, key };
        topo.pin_neighbours();
        topo
    }

    /// Makes every neighbour static, so no ARP or neighbour discovery
    /// crosses the underlay or the tunnel once the test counts: the
    /// kernel's entry for the peer node and the peer pod, and OVS's tunnel
    /// neighbour cache (which it would otherwise age and refresh).
    fn pin_neighbours(&self) {
        for (i, n) in self.nodes.iter().enumerate() {
            let peer = &self.nodes[1 - i];
            let phy_mac = peer.ns.mac("br-phy");
            n.ns.ip(&format!("neigh replace {} lladdr {phy_mac} nud permanent dev br-phy", peer.addr));
            n.appctl(&["tnl/neigh/set", "br-phy", &peer.addr.to_string(), &phy_mac]);
            n.appctl(&["tnl/neigh/aging", "3600"]);
            n.ns.ip("link set eth0 arp off");
            let pod_mac = peer.ns.mac("pod0");
            n.ns.ip(&format!("neigh replace {} lladdr {pod_mac} nud permanent dev pod0", peer.pod));
            if self.kind == OvsKind::GreIp {
                // An IP-only tunnel port: OVS gives what it receives a
                // dummy Ethernet header, which the pod's port must be told.
                let mac = n.ns.mac("pod0");
                n.add_flow("br-int", "priority=100,in_port=pod0,ip,actions=output:tun0");
                n.add_flow("br-int", &format!("priority=100,in_port=tun0,ip,actions=mod_dl_dst:{mac},output:pod0"));
            }
        }
    }
}
