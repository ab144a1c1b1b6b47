//! vxflow on real Geneve and GRE underlays (Open vSwitch's userspace
//! datapath, see `vxflow_testkit::ovs`): two nodes whose pods talk through
//! the tunnel, vxflow watching node 1's underlay `eth0` and exporting IPFIX
//! to nfcapd on its loopback. Every record carries the pods' tuple, the
//! tunnel type and id and the nodes' addresses; the records count exactly
//! what `eth0`'s counters say; nfdump holds the same flows as the JSON; and
//! tshark decodes the captured export with nothing malformed. Needs root.

use std::{net::IpAddr, time::Duration};

use vxflow_testkit::{
    collectors::{Capture, Nfcapd},
    ovs::{OvsKind, OvsTunnel},
    probe::{Record, Vxflow},
    require_root, traffic,
};

const GENEVE_PORT: u16 = 6081;
const COLLECTOR_PORT: u16 = 9995;
/// Echo requests sent each way's worth: 20 requests, 20 replies.
const PINGS: u32 = 20;
/// ICMP payload bytes: each inner packet is 20 + 8 + 56 = 84 IP bytes.
const PING_BYTES: usize = 56;
/// An Ethernet header, which interface byte counters include.
const ETH: u64 = 14;

/// What a test expects of the records of one tunnel.
struct Want {
    tunnel: &'static str,
    id: u32,
    /// The outer UDP port (Geneve), none for GRE.
    port: Option<u16>,
    /// NVGRE's VSID, when GRE carries Ethernet.
    vsid: Option<u32>,
    /// What the outer IP protocol shows as in tshark.
    outer_protocol: u8,
}

fn run(topo: &OvsTunnel, want: &Want) {
    let [n1, n2] = &topo.nodes;
    // The pods' path warmed (OVS's flows installed) before counting.
    traffic::ping(&n1.ns, n2.pod, 2, PING_BYTES);
    let nfcapd = Nfcapd::start(&n1.ns, COLLECTOR_PORT);
    let capture = Capture::start(&n1.ns, "lo", &format!("udp port {COLLECTOR_PORT}"));
    let collector = format!("ipfix://127.0.0.1:{COLLECTOR_PORT}");
    // eth0 is an OVS port: no route leaves by it for `auto` to find, so
    // it is named as the interface where tunnels arrive.
    let args = ["-i", "eth0", "--tunnel-interface", "eth0", "--poll-interval", "100ms", "--collector", &collector];
    // eth0's counters around vxflow's start and stop, and inside them:
    // what crossed while vxflow attached or detached (an IPv6 underlay's
    // MLD report comes when it will) is in the outer count only.
    let outside = n1.ns.counters("eth0");
    let vxflow = Vxflow::start(&n1.ns, &[&args[..], &["--json", "-"]].concat());
    let before = n1.ns.counters("eth0");
    traffic::ping(&n1.ns, n2.pod, PINGS, PING_BYTES);
    std::thread::sleep(Duration::from_millis(300));
    let truth = n1.ns.counters("eth0").since(&before);
    let done = vxflow.stop();
    let around = n1.ns.counters("eth0").since(&outside);
    let collected = nfcapd.stop();
    let pcap = capture.stop();

    // The pods' traffic, seen through the tunnel: every echo, with the
    // pods' tuple, the tunnel and the nodes.
    let (nodes, pods) = ([n1.addr, n2.addr], [n1.pod, n2.pod]);
    let (tunnelled, plain): (Vec<&Record>, Vec<&Record>) = done.records.iter().partition(|r| r.tunnel.is_some());
    for r in &tunnelled {
        check_record(r, want, nodes, pods);
    }
    let packets: u64 = tunnelled.iter().map(|r| r.packets).sum();
    let inner: u64 = tunnelled.iter().map(|r| r.bytes).sum();
    assert_eq!(packets, 2 * u64::from(PINGS), "{:#?}", done.records);
    assert_eq!(inner, packets * (20 + 8 + PING_BYTES as u64), "inner IP bytes");
    let note = format!("{}_packets", want.tunnel);
    assert_eq!(done.counter(&note), packets, "{note}");
    // Besides the tunnel, only the IPv6 underlay's own link-local
    // signalling (MLD reports after its address came up) may cross eth0:
    // every neighbour is static, so there is no ARP or neighbour discovery.
    for r in &plain {
        let IpAddr::V6(src) = r.src_addr else { panic!("plain IPv4 on the underlay: {r:#?}") };
        assert!(src.is_unicast_link_local() && r.protocol == "ipv6-icmp", "not underlay signalling: {r:#?}");
    }
    // All of it exactly eth0's counters: between the inner and the outer
    // count, which are one when nothing crossed during start or stop (the
    // pods' echoes, checked exactly above, are all inside).
    assert_eq!(done.counter("non_ip_packets"), 0);
    let all: u64 = done.records.iter().map(|r| r.packets).sum();
    let wire: u64 = done.records.iter().map(Record::wire_ip_bytes).sum();
    let (least, most) = (truth.rx_packets + truth.tx_packets, around.rx_packets + around.tx_packets);
    assert!((least..=most).contains(&all), "records {all} against eth0 {truth:?} inside, {around:?} around");
    let least_bytes = (truth.rx_bytes + truth.tx_bytes).saturating_sub(ETH * least);
    let most_bytes = (around.rx_bytes + around.tx_bytes).saturating_sub(ETH * most);
    if least == most {
        assert_eq!(wire, least_bytes, "wire IP bytes against eth0 {truth:?}");
    } else {
        let extra = most - least;
        eprintln!("{extra} packets crossed eth0 while vxflow started or stopped; bounds checked");
        assert!((least_bytes..=most_bytes).contains(&wire), "wire IP bytes {wire} against eth0 {truth:?} / {around:?}");
    }
    assert_eq!(done.counter("lost_packets"), 0);

    // nfcapd holds the same flows.
    assert_eq!(collected.sequence_failures, 0);
    let mut from_nfdump = collected.flows;
    from_nfdump.sort();
    assert_eq!(from_nfdump, done.nfdump_flows(), "nfdump and the JSON records disagree");

    check_tshark(pcap.path(), want, nodes);
}

fn check_record(r: &Record, want: &Want, nodes: [IpAddr; 2], pods: [IpAddr; 2]) {
    assert_eq!(r.tunnel.as_deref(), Some(want.tunnel), "{r:#?}");
    assert_eq!(r.tunnel_id, Some(want.id), "{r:#?}");
    assert_eq!(r.vsid, want.vsid, "{r:#?}");
    assert!(pods.contains(&r.src_addr) && pods.contains(&r.dst_addr), "pod tuple: {r:#?}");
    assert_eq!(r.protocol, "icmp");
    let (src, dst) = (r.outer_src_addr.unwrap(), r.outer_dst_addr.unwrap());
    assert!(nodes.contains(&src) && nodes.contains(&dst) && src != dst, "node tuple: {r:#?}");
    // The pod on node 1 sends from node 1.
    assert_eq!(src == nodes[0], r.src_addr == pods[0], "outer follows inner: {r:#?}");
    match want.port {
        Some(port) => assert_eq!(r.outer_dst_port, Some(port), "{r:#?}"),
        None => assert_eq!((r.outer_src_port, r.outer_dst_port), (None, None), "{r:#?}"),
    }
}

/// tshark decodes the captured IPFIX: nothing malformed, and the tunnel
/// id, the outer protocol and the node addresses shown.
fn check_tshark(pcap: &str, want: &Want, nodes: [IpAddr; 2]) {
    let decode = format!("udp.port=={COLLECTOR_PORT},cflow");
    let out = vxflow_testkit::cmd::run(&["tshark", "-r", pcap, "-V", "-d", &decode]);
    for bad in ["Malformed", "Expert Info (Error"] {
        assert!(!out.contains(bad), "tshark reports {bad}");
    }
    let family = if nodes[0].is_ipv6() { "IPv6" } else { "IPv4" };
    let mut wants = vec![
        format!("Upstream tunnel identifier (e.g. GTP TEID, VXLAN VNI) or 0 if unknown: {}", want.id),
        format!("Untunneled IP protocol byte: {}", want.outer_protocol),
        format!("Untunneled {family} source address: {}", nodes[0]),
        format!("Untunneled {family} destination address: {}", nodes[1]),
    ];
    if let Some(vsid) = want.vsid {
        wants.push(format!("Layer2 Segment Id: {}", (2u64 << 56) | u64::from(vsid)));
    }
    for w in wants {
        assert!(out.contains(&w), "tshark does not show {w:?}");
    }
    assert!(want.vsid.is_some() || !out.contains("Layer2 Segment Id"), "a segment id where none is defined");
}

#[test]
#[ignore = "needs root: scripts/test.sh runs it"]
fn geneve_ipv4_underlay() {
    require_root();
    let topo = OvsTunnel::build("genev4", OvsKind::Geneve, 5000, false);
    run(&topo, &Want { tunnel: "geneve", id: 5000, port: Some(GENEVE_PORT), vsid: None, outer_protocol: 17 });
}

#[test]
#[ignore = "needs root: scripts/test.sh runs it"]
fn geneve_ipv6_underlay() {
    require_root();
    let topo = OvsTunnel::build("genev6", OvsKind::Geneve, 0x00ff_fffe, true);
    run(&topo, &Want { tunnel: "geneve", id: 0x00ff_fffe, port: Some(GENEVE_PORT), vsid: None, outer_protocol: 17 });
}

/// GRE around Ethernet with a key: NVGRE's framing, so the top 24 bits of
/// the key are a VSID and layer2SegmentId carries it.
#[test]
#[ignore = "needs root: scripts/test.sh runs it"]
fn gre_ethernet_with_key_ipv4_underlay() {
    require_root();
    let key = 0x0012_3456 << 8 | 0x01;
    let topo = OvsTunnel::build("gretap", OvsKind::GreEthernet, key, false);
    run(&topo, &Want { tunnel: "gre", id: key, port: None, vsid: Some(0x0012_3456), outer_protocol: 47 });
}

/// GRE carrying IP directly, as routed GRE tunnels do: no VSID.
#[test]
#[ignore = "needs root: scripts/test.sh runs it"]
fn gre_ip_with_key_ipv4_underlay() {
    require_root();
    let topo = OvsTunnel::build("grel3", OvsKind::GreIp, 77, false);
    run(&topo, &Want { tunnel: "gre", id: 77, port: None, vsid: None, outer_protocol: 47 });
}

/// ip6gre: GRE around Ethernet over an IPv6 underlay.
#[test]
#[ignore = "needs root: scripts/test.sh runs it"]
fn ip6gre_ipv6_underlay() {
    require_root();
    let key = 0x00ab_cdef << 8;
    let topo = OvsTunnel::build("ip6gre", OvsKind::GreEthernet, key, true);
    run(&topo, &Want { tunnel: "gre", id: key, port: None, vsid: Some(0x00ab_cdef), outer_protocol: 47 });
}

/// The tunnel settings change live, by SIGHUP, on a real underlay: Geneve
/// on another port, then on 6081; GRE switched off, then on. Before each
/// change the pods' echoes are the node-to-node flows of the wire; after
/// it, the pods' flows inside the tunnel; every packet counted once.
#[test]
#[ignore = "needs root: scripts/test.sh runs it"]
fn tunnel_settings_follow_a_reload() {
    require_root();
    for (kind, off, on, tunnel) in [
        (OvsKind::Geneve, "geneve_ports = [6082]", "geneve_ports = [6081]", "geneve"),
        (OvsKind::GreEthernet, "gre_tunnels = false", "gre_tunnels = true", "gre"),
    ] {
        let topo = OvsTunnel::build("reload", kind, 300, false);
        let [n1, n2] = &topo.nodes;
        traffic::ping(&n1.ns, n2.pod, 2, PING_BYTES);
        let dir = vxflow_testkit::TempDir::new("reload");
        let config = dir.join("vxflow.toml");
        let body = |setting: &str| {
            format!(
                "interfaces = [\"eth0\"]\ntunnel_interfaces = [\"eth0\"]\n{setting}\n[kernel]\npoll_interval = \"100ms\"\n"
            )
        };
        std::fs::write(&config, body(off)).unwrap();
        let mut vxflow = Vxflow::start(&n1.ns, &["--config", config.to_str().unwrap(), "--json", "-"]);
        let before = n1.ns.counters("eth0");
        traffic::ping(&n1.ns, n2.pod, PINGS, PING_BYTES);
        std::fs::write(&config, body(on)).unwrap();
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(vxflow.pid(), libc::SIGHUP) };
        vxflow.wait_for_log("configuration reloaded", Duration::from_secs(10));
        // The rescan after the reload applies it.
        std::thread::sleep(Duration::from_millis(300));
        traffic::ping(&n1.ns, n2.pod, PINGS, PING_BYTES);
        std::thread::sleep(Duration::from_millis(300));
        let truth = n1.ns.counters("eth0").since(&before);
        let done = vxflow.stop();
        let (inside, outside): (Vec<&Record>, Vec<&Record>) =
            done.records.iter().partition(|r| r.tunnel.as_deref() == Some(tunnel));
        let sum = |rs: &[&Record]| rs.iter().map(|r| r.packets).sum::<u64>();
        assert_eq!(sum(&inside), 2 * u64::from(PINGS), "{tunnel} after the reload: {inside:#?}");
        assert!(inside.iter().all(|r| r.protocol == "icmp" && r.src_addr != n1.addr), "{inside:#?}");
        assert_eq!(sum(&outside), 2 * u64::from(PINGS), "{tunnel} before it: {outside:#?}");
        assert!(
            outside.iter().all(|r| r.tunnel.is_none() && [n1.addr, n2.addr].contains(&r.src_addr)),
            "the node-to-node flows: {outside:#?}"
        );
        assert_eq!(sum(&inside) + sum(&outside), truth.rx_packets + truth.tx_packets, "eth0 {truth:?}");
    }
}

/// ERSPAN (GRE protocol 0x88be, as Open vSwitch sends a mirror session):
/// a GRE payload vxflow does not decode, so each packet is the
/// node-to-node GRE flow it is, noted `tunnel_inner_not_ip`, never a pod
/// flow made of a mirrored frame's header; exactly eth0's counters.
#[test]
#[ignore = "needs root: scripts/test.sh runs it"]
fn erspan_is_the_gre_flow_it_is() {
    require_root();
    let topo = OvsTunnel::build("erspan", OvsKind::Erspan, 9, false);
    let [n1, n2] = &topo.nodes;
    traffic::ping(&n1.ns, n2.pod, 2, PING_BYTES);
    let args = ["-i", "eth0", "--tunnel-interface", "eth0", "--poll-interval", "100ms", "--json", "-"];
    let vxflow = Vxflow::start(&n1.ns, &args);
    let before = n1.ns.counters("eth0");
    traffic::ping(&n1.ns, n2.pod, PINGS, PING_BYTES);
    std::thread::sleep(Duration::from_millis(300));
    let truth = n1.ns.counters("eth0").since(&before);
    let done = vxflow.stop();
    let packets: u64 = done.records.iter().map(|r| r.packets).sum();
    assert_eq!(packets, 2 * u64::from(PINGS), "{:#?}", done.records);
    for r in &done.records {
        assert_eq!((r.protocol.as_str(), r.tunnel.as_deref()), ("gre", None), "{r:#?}");
        assert!([n1.addr, n2.addr].contains(&r.src_addr) && [n1.addr, n2.addr].contains(&r.dst_addr), "{r:#?}");
    }
    assert_eq!(done.counter("tunnel_inner_not_ip_packets"), packets);
    assert_eq!(done.counter("gre_packets"), 0);
    let wire: u64 = done.records.iter().map(|r| r.bytes).sum();
    assert_eq!(packets, truth.rx_packets + truth.tx_packets, "eth0 {truth:?}");
    assert_eq!(wire, truth.rx_bytes + truth.tx_bytes - ETH * packets, "eth0 {truth:?}");
}
