//! Which interfaces vxflow watches: `auto` finds the underlay and the VXLAN
//! devices (and parses their UDP port as VXLAN), patterns select and
//! exclude, a packet crossing several watched interfaces is counted once
//! (or once per interface on request), and interfaces that appear, vanish
//! and return are followed. Needs root.

use std::time::Duration;

use vxflow_testkit::{
    metrics::Scrape,
    netns::{Netns, http_get},
    probe::{Finished, Record, Vxflow},
    require_root,
    topology::{Flannel, Offloads, Options, add_veth, veth_pair},
    traffic::{ping, udp_train},
    unique_prefix,
};

/// The records of UDP flows to `port`.
fn to_port(done: &Finished, port: u16) -> Vec<&Record> {
    done.records.iter().filter(|r| r.protocol == "udp" && r.dst_port == Some(port)).collect()
}

fn sum(records: &[&Record]) -> u64 {
    records.iter().map(|r| r.packets).sum()
}

#[test]
#[ignore = "needs root: scripts/test.sh runs it"]
fn auto_watches_the_underlay_and_vxlan_device_and_counts_each_packet_once() {
    require_root();
    // Port 4790 is in neither default: only discovery makes it VXLAN.
    let topo = Flannel::build(&unique_prefix("auto"), Options { vni: 7, vxlan_port: 4790, ..Options::default() });
    topo.set_offloads(Offloads::Off);
    let [n1, n2] = &topo.nodes;
    n1.ns.ip(&format!("route add default via {} dev eth0", n2.addr));
    let mut vxflow =
        Vxflow::start(&n1.ns, &["--interface", "auto", "--poll-interval", "100ms", "--inactive-timeout", "60s"]);
    let stats = vxflow.ctl(&["stats"]);
    let s = &stats["stats"];
    assert_eq!(s["attached"], serde_json::json!(["eth0", "flannel.1"]), "{stats}");
    assert_eq!(
        s["tunnel_devices"],
        serde_json::json!([{"device": "flannel.1", "tunnel": "vxlan", "id": 7, "port": 4790}])
    );
    assert!(s["vxlan_ports"].as_array().unwrap().contains(&4790.into()), "{stats}");

    let inbound = udp_train(&n2.pods[0].ns, &n1.pods[0].ns, n1.pods[0].addr, 9101, 200, 300);
    let outbound = udp_train(&n1.pods[0].ns, &n2.pods[0].ns, n2.pods[0].addr, 9102, 150, 300);
    assert_eq!((inbound, outbound), (200, 150));
    std::thread::sleep(Duration::from_millis(300));
    let duplicates = vxflow.ctl(&["stats"])["stats"]["flows"]["duplicate_packets"].as_u64().unwrap();

    // The CNI re-creates flannel.1: it is let go, found again under its new
    // index, and traffic through it is counted as before.
    let attached = "attached iface=\"flannel.1\" direction=egress";
    let before = vxflow.log().matches(attached).count();
    topo.recreate_vxlan_device(0);
    vxflow.wait_for_log_count(attached, before + 1, Duration::from_secs(10));
    assert!(vxflow.log().contains("interface vanished"), "{}", vxflow.log());
    assert_eq!(udp_train(&n2.pods[0].ns, &n1.pods[0].ns, n1.pods[0].addr, 9103, 100, 300), 100);
    let s = &vxflow.ctl(&["stats"])["stats"];
    assert_eq!(s["attached"], serde_json::json!(["eth0", "flannel.1"]), "{s}");
    let done = vxflow.stop();

    for (port, sent, direction) in [(9101, 200, "ingress"), (9102, 150, "egress"), (9103, 100, "ingress")] {
        let records = to_port(&done, port);
        assert_eq!(sum(&records), sent, "port {port}: {records:#?}");
        // Seen on eth0 (as VXLAN) and on flannel.1 (decapsulated): kept on
        // the VXLAN sighting, with its VNI and nodes.
        for r in &records {
            assert_eq!((r.interface.as_str(), r.direction.as_str()), ("eth0", direction), "{r:#?}");
            assert_eq!((r.tunnel.as_deref(), r.vni), (Some("vxlan"), Some(7)), "{r:#?}");
            assert_eq!(r.outer_dst_port, Some(4790));
        }
    }
    assert!(duplicates >= 350, "flannel.1's sightings of both trains are duplicates: {duplicates}");
}

#[test]
#[ignore = "needs root: scripts/test.sh runs it"]
fn patterns_select_and_each_packet_counts_once_unless_per_interface_records() {
    require_root();
    let topo = Flannel::build(&unique_prefix("pattern"), Options::default());
    topo.set_offloads(Offloads::Off);
    let [n1, n2] = &topo.nodes;
    let select = ["-i", "eth*", "-i", "flannel.*", "-i", "cni0", "-i", "veth*", "-i", "!veth1"];
    let common = ["--poll-interval", "100ms", "--inactive-timeout", "60s"];

    // Per interface: the train crosses veth0, cni0, flannel.1 and eth0.
    let args: Vec<&str> = select.iter().chain(&common).chain(&["--per-interface-records"]).copied().collect();
    let vxflow = Vxflow::start(&n1.ns, &args);
    assert_eq!(vxflow.ctl(&["stats"])["stats"]["attached"], serde_json::json!(["cni0", "eth0", "flannel.1", "veth0"]));
    assert_eq!(udp_train(&n1.pods[0].ns, &n2.pods[0].ns, n2.pods[0].addr, 9201, 100, 200), 100);
    let done = vxflow.stop();
    let records = to_port(&done, 9201);
    let mut per_iface: Vec<(String, u64)> = Vec::new();
    for r in &records {
        match per_iface.iter_mut().find(|(i, _)| *i == r.interface) {
            Some((_, n)) => *n += r.packets,
            None => per_iface.push((r.interface.clone(), r.packets)),
        }
    }
    per_iface.sort();
    let want: Vec<(String, u64)> =
        ["cni0", "eth0", "flannel.1", "veth0"].iter().map(|i| ((*i).to_owned(), 100)).collect();
    assert_eq!(per_iface, want, "{records:#?}");

    // Deduplicated (the default): one flow, on eth0, with every packet once.
    let args: Vec<&str> = select.iter().chain(&common).copied().collect();
    let vxflow = Vxflow::start(&n1.ns, &args);
    assert_eq!(udp_train(&n1.pods[0].ns, &n2.pods[0].ns, n2.pods[0].addr, 9202, 100, 200), 100);
    let done = vxflow.stop();
    let records = to_port(&done, 9202);
    assert_eq!(sum(&records), 100, "{records:#?}");
    assert!(records.iter().all(|r| r.interface == "eth0" && r.vni == Some(1)), "{records:#?}");
}

fn attached(v: &Vxflow) -> serde_json::Value {
    v.ctl(&["stats"])["stats"]["attached"].clone()
}

#[test]
#[ignore = "needs root: scripts/test.sh runs it"]
fn interfaces_that_appear_vanish_and_return_are_followed() {
    require_root();
    let (a, b): (Netns, Netns) = veth_pair("churn");
    let args = ["-i", "w*", "-i", "!w9", "--poll-interval", "100ms", "--inactive-timeout", "60s"];
    let mut vxflow = Vxflow::start(&a, &args);
    assert!(vxflow.log().contains("no interface matches; waiting for one to appear"), "{}", vxflow.log());

    add_veth(&a, &b, ("w0", "w1"), 1);
    vxflow.wait_for_log_count("attached iface=\"w0\" direction=egress", 1, Duration::from_secs(10));
    ping(&a, "10.9.1.2".parse().unwrap(), 5, 56);
    // Excluded by pattern.
    add_veth(&a, &b, ("w9", "w8"), 9);
    ping(&a, "10.9.9.2".parse().unwrap(), 3, 56);
    assert_eq!(attached(&vxflow), serde_json::json!(["w0"]));

    // Gone, then back under a new index (as a re-created flannel.1 is).
    a.ip("link del w0");
    vxflow.wait_for_log_count("interface vanished", 1, Duration::from_secs(10));
    assert_eq!(attached(&vxflow), serde_json::json!([]));
    add_veth(&a, &b, ("w0", "w1"), 1);
    vxflow.wait_for_log_count("attached iface=\"w0\" direction=egress", 2, Duration::from_secs(10));
    ping(&a, "10.9.1.2".parse().unwrap(), 5, 56);
    assert_eq!(attached(&vxflow), serde_json::json!(["w0"]));

    let done = vxflow.stop();
    let icmp: Vec<&Record> = done.records.iter().filter(|r| r.protocol == "icmp").collect();
    assert!(icmp.iter().all(|r| r.interface == "w0"), "w9 was excluded: {icmp:#?}");
    assert_eq!(sum(&icmp), 20, "two rounds of 5 echoes and 5 replies on w0: {icmp:#?}\n{}", done.stderr);
    assert_eq!(done.counter("seen_packets"), 20);
    // The first w0's flows kept its name after it was gone.
    let ifindexes: std::collections::BTreeSet<u32> = icmp.iter().map(|r| r.ifindex).collect();
    assert_eq!(ifindexes.len(), 2, "one ifindex per incarnation of w0");
}

/// Cilium carries the sender's security identity in the VNI. With `auto`,
/// a VXLAN device of Cilium's name makes its port's VNIs identities: the
/// records say `cilium_identity`, not `vni`, and so do `ctl stats` and the
/// metrics. The configuration's `[vni_meaning]` overrides that by port.
#[test]
#[ignore = "needs root: scripts/test.sh runs it"]
fn cilium_vnis_are_named_identities() {
    require_root();
    let topo = Flannel::build(&unique_prefix("cilium"), Options::default());
    topo.set_offloads(Offloads::Off);
    let [n1, n2] = &topo.nodes;
    n1.ns.ip(&format!("route add default via {} dev eth0", n2.addr));
    // Cilium's device, as its VXLAN mode names it, on Flannel's port; left
    // down, so flannel.1 keeps the socket.
    n1.ns.ip("link add cilium_vxlan type vxlan id 99 dstport 8472 dev eth0");
    let dir = vxflow_testkit::TempDir::new("cilium");
    let config = dir.join("vxflow.toml");
    for (round, table, kind) in [(0u16, "", "cilium_identity"), (1, "[vni_meaning]\n8472 = \"segment\"\n", "vni")] {
        let metrics = format!("127.0.0.1:{}", 9750 + round);
        let text = format!(
            "interfaces = [\"auto\"]\n[kernel]\npoll_interval = \"100ms\"\n[metrics]\nlisten = \"{metrics}\"\n{table}"
        );
        std::fs::write(&config, text).unwrap();
        let vxflow = Vxflow::start(&n1.ns, &["--config", config.to_str().unwrap(), "--json", "-"]);
        let port = 9500 + round;
        let sent = udp_train(&n1.pods[0].ns, &n2.pods[0].ns, n2.pods[0].addr, port, 50, 200);
        assert_eq!(sent, 50);
        std::thread::sleep(Duration::from_millis(300));
        let tunnels = vxflow.ctl(&["stats"])["stats"]["tunnels"].as_array().unwrap().clone();
        let (status, body) = http_get(&n1.ns, metrics.parse().unwrap(), "/metrics");
        assert_eq!(status, 200, "{body}");
        let done = vxflow.stop();
        let records = to_port(&done, port);
        assert_eq!(sum(&records), 50, "{records:#?}");
        for r in &records {
            assert_eq!(r.tunnel_id, Some(1), "{r:#?}");
            let (identity, vni) = if kind == "vni" { (None, Some(1)) } else { (Some(1), None) };
            assert_eq!((r.cilium_identity, r.vni), (identity, vni), "round {round}: {r:#?}");
        }
        assert!(
            tunnels.iter().any(|t| t["id_kind"] == kind && t["id"] == 1 && t["tunnel"] == "vxlan"),
            "round {round}: {tunnels:#?}"
        );
        let labels = [("tunnel", "vxlan"), ("id_kind", kind), ("id", "1")];
        assert!(Scrape::parse(&body).value("vxflow_tunnel_packets_total", &labels) >= 50, "round {round}");
    }
}
