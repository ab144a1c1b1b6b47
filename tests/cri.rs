//! The `cri` metadata source against a real containerd (`tests/src/containerd.rs`):
//! pod sandboxes made through the CRI API, as the kubelet makes them, and
//! the records of one pod's traffic to another naming both pods, their
//! namespace, node and workloads exactly; then one pod removed and another
//! given its address: old and new flows keep their own names. Needs root.

use std::time::Duration;

use vxflow_testkit::{
    containerd::Containerd,
    netns::Netns,
    probe::{Record, Vxflow},
    require_root, unique_prefix,
};

/// Sends `count` UDP datagrams to `to`, port `port`, from one socket in
/// the network namespace of process `pid` (a pod's): one flow.
/// The pod's neighbour table is flushed first (the address may have
/// changed hands) and a datagram to the discard port resolves it, so none
/// of the `count` waits on ARP (the kernel queues only a few): every one
/// leaves.
fn udp_from_pod(pid: u32, to: std::net::IpAddr, port: u16, count: u32) {
    // An unconnected socket: a connected one would fail a send after the
    // port-unreachable answer to the one before (nobody listens).
    let script = format!(
        "import socket, time\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.sendto(b'warm', ('{to}', 9)); time.sleep(0.2)\n\
         for i in range({count}):\n    s.sendto(b'datagram', ('{to}', {port})); time.sleep(0.01)\n"
    );
    vxflow_testkit::cmd::run(&["nsenter", "--target", &pid.to_string(), "--net", "sh", "-c", "ip neigh flush all"]);
    vxflow_testkit::cmd::run(&["nsenter", "--target", &pid.to_string(), "--net", "python3", "-c", &script]);
}

fn to_port(records: &[Record], port: u16) -> Vec<&Record> {
    records.iter().filter(|r| r.protocol == "udp" && r.dst_port == Some(port)).collect()
}

#[test]
#[ignore = "needs root: scripts/test.sh runs it"]
fn cri_names_pods_through_address_reuse() {
    require_root();
    let node = Netns::new(&unique_prefix("cri"));
    node.ip("link set lo up");
    let mut containerd = Containerd::start(&node, "cri");
    let web = containerd.run_pod("web-7d9f8b6c5-x2k9p", "shop", "uid-web", &[("pod-template-hash", "7d9f8b6c5")]);
    let db0 = containerd.run_pod("db-0", "shop", "uid-db0", &[("statefulset.kubernetes.io/pod-name", "db-0")]);
    let config = format!(
        "interfaces = [\"veth*\"]\n[kernel]\npoll_interval = \"100ms\"\n[cache]\ninactive_timeout = \"60s\"\n\
         [metadata]\ncri = \"{}\"\ncri_interval = \"200ms\"\nnode = \"node-1\"\n",
        containerd.socket().display()
    );
    let dir = vxflow_testkit::TempDir::new("cri");
    std::fs::write(dir.join("vxflow.toml"), config).unwrap();
    let mut vxflow = Vxflow::start(&node, &["--config", dir.join("vxflow.toml").to_str().unwrap(), "--json", "-"]);
    vxflow.wait_for_log("the container runtime answers", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(300));
    udp_from_pod(web.pid, db0.ip, 9701, 20);
    std::thread::sleep(Duration::from_millis(300));
    // db-0 goes; db-1 gets its address.
    containerd.remove_pod(&db0.id);
    let db1 = containerd.run_pod("db-1", "shop", "uid-db1", &[("statefulset.kubernetes.io/pod-name", "db-1")]);
    assert_eq!(db1.ip, db0.ip, "the two-address range gives db-1 db-0's address");
    std::thread::sleep(Duration::from_millis(600));
    udp_from_pod(web.pid, db1.ip, 9702, 20);
    std::thread::sleep(Duration::from_millis(300));
    let done = vxflow.stop();
    for (port, db) in [(9701, "db-0"), (9702, "db-1")] {
        let records = to_port(&done.records, port);
        assert_eq!(records.iter().map(|r| r.packets).sum::<u64>(), 20, "{records:#?}");
        for r in records {
            assert_eq!((r.src_addr, r.dst_addr), (web.ip, db0.ip), "{r:#?}");
            assert_eq!((r.src_pod.as_deref(), r.dst_pod.as_deref()), (Some("web-7d9f8b6c5-x2k9p"), Some(db)), "{r:#?}");
            assert_eq!((r.src_namespace.as_deref(), r.dst_namespace.as_deref()), (Some("shop"), Some("shop")));
            assert_eq!((r.src_node.as_deref(), r.dst_node.as_deref()), (Some("node-1"), Some("node-1")));
            assert_eq!(
                (r.src_workload.as_deref(), r.dst_workload.as_deref()),
                (Some("Deployment/web"), Some("StatefulSet/db"))
            );
        }
    }
}
