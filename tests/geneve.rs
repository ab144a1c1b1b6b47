//! vxflow on a real Geneve underlay (Open vSwitch's userspace datapath, see
//! `vxflow_testkit::ovs`): two nodes whose pods talk through Geneve VNI
//! 5000. Until the classifier parses Geneve (issue 12), a Geneve packet is
//! the node-to-node UDP flow to port 6081 it is on the wire, and that must
//! already be counted exactly. Needs root.

use std::time::Duration;

use vxflow_testkit::{ovs::OvsTunnel, probe::Vxflow, require_root, traffic};

const GENEVE_PORT: u16 = 6081;

#[test]
#[ignore = "needs root: scripts/test.sh runs it"]
fn a_geneve_underlay_is_counted_exactly() {
    require_root();
    let topo = OvsTunnel::geneve("geneve", 5000);
    let [n1, n2] = &topo.nodes;
    // The pods' and the nodes' neighbours resolved before counting.
    traffic::ping(&n1.ns, n2.pod, 2, 56);
    let vxflow = Vxflow::start(&n1.ns, &["-i", "eth0", "--poll-interval", "100ms"]);
    let before = n1.ns.counters("eth0");
    traffic::ping(&n1.ns, n2.pod, 20, 56);
    std::thread::sleep(Duration::from_millis(300));
    let truth = n1.ns.counters("eth0").since(&before);
    let done = vxflow.stop();

    let geneve = |r: &&vxflow_testkit::probe::Record| {
        r.protocol == "udp" && (r.dst_port == Some(GENEVE_PORT) || r.src_port == Some(GENEVE_PORT))
    };
    let tunnel: Vec<_> = done.records.iter().filter(geneve).collect();
    let packets: u64 = tunnel.iter().map(|r| r.packets).sum();
    assert_eq!(packets, 40, "20 echo requests and 20 replies, each in Geneve: {:#?}", done.records);
    assert!(
        tunnel.iter().all(|r| [n1.addr, n2.addr].contains(&r.src_addr) && [n1.addr, n2.addr].contains(&r.dst_addr)),
        "the Geneve flows are between the nodes: {tunnel:#?}"
    );
    // Every packet eth0 carried is counted once: IP ones in records, the
    // others (ARP) as non-IP.
    let recorded: u64 = done.records.iter().map(|r| r.packets).sum();
    assert_eq!(
        recorded + done.counter("non_ip_packets"),
        truth.rx_packets + truth.tx_packets,
        "records against eth0 {truth:?}: {:#?}",
        done.records
    );
    assert_eq!(done.counter("lost_packets"), 0);
}
