//! Open vSwitch's userspace datapath (`datapath_type=netdev`) in network
//! namespaces: real Geneve, GRE, ERSPAN and ip6gre implementations on a
//! kernel that has no modules for them. Each node runs its own
//! `ovsdb-server` and `ovs-vswitchd` from a private directory; dropping the
//! node's namespace kills both, and the directory goes with its `TempDir`.
//!
//! A node is laid out as OVS's userspace tunnelling wants it: the underlay
//! veth `eth0` is a port of the netdev bridge `br-phy`, which holds the node
//! address; `br-int` holds the tunnel port and the pod's internal port
//! `pod0`. Pods share one subnet, so their frames cross the tunnel.

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

    /// `ovs-vsctl` against this node's database.
    pub fn vsctl(&self, args: &[&str]) -> String {
        let database = format!("--db=unix:{}", self.dir.join("db.sock").to_str().unwrap());
        let mut command = vec!["ovs-vsctl", database.as_str()];
        command.extend_from_slice(args);
        self.ns.exec(&command)
    }
}

/// Two nodes joined by a veth underlay, their pods by a tunnel.
pub struct OvsTunnel {
    pub nodes: [OvsNode; 2],
}

impl OvsTunnel {
    /// Geneve (RFC 8926) with VNI `vni` between two nodes on IPv4.
    #[must_use]
    pub fn geneve(tag: &str, vni: u32) -> Self {
        Self::build(tag, "geneve", vni)
    }

    /// Two nodes whose pods talk through an OVS tunnel port of `kind` with
    /// key `key`.
    fn build(tag: &str, kind: &str, key: u32) -> Self {
        let prefix = unique_prefix(tag);
        let (a, b) = (Netns::new(&format!("{prefix}-n1")), Netns::new(&format!("{prefix}-n2")));
        a.ip(&format!("link add eth0 type veth peer name eth0 netns {}", b.name()));
        let node = |ns: Netns, n: u8| {
            ns.ip("link set lo up");
            ns.disable_ipv6("eth0");
            let addr: IpAddr = [192, 168, 77, n].into();
            OvsNode::start(ns, addr, [10, 244, 0, n].into())
        };
        let nodes = [node(a, 1), node(b, 2)];
        for (i, n) in nodes.iter().enumerate() {
            let peer = nodes[1 - i].addr;
            n.ns.ip("link set eth0 up");
            n.vsctl(&["add-br", "br-phy", "--", "set", "bridge", "br-phy", "datapath_type=netdev"]);
            n.vsctl(&["add-port", "br-phy", "eth0"]);
            n.ns.ip(&format!("addr add {}/24 dev br-phy", n.addr));
            n.ns.ip("link set br-phy up");
            n.vsctl(&["add-br", "br-int", "--", "set", "bridge", "br-int", "datapath_type=netdev"]);
            let (remote, key) = (format!("options:remote_ip={peer}"), format!("options:key={key}"));
            let ty = format!("type={kind}");
            n.vsctl(&["add-port", "br-int", "tun0", "--", "set", "interface", "tun0", &ty, &remote, &key]);
            n.vsctl(&["add-port", "br-int", "pod0", "--", "set", "interface", "pod0", "type=internal"]);
            n.ns.disable_ipv6("pod0");
            n.ns.ip(&format!("addr add {}/24 dev pod0", n.pod));
            n.ns.ip("link set pod0 up");
        }
        Self { nodes }
    }
}
