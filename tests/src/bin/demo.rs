//! `vxflow-demo`: vxflow on a Flannel-like two-node overlay, end to end.
//! Run it through `scripts/demo.sh`, which builds everything first.

use std::time::Duration;

use vxflow_testkit::{
    cmd,
    collectors::{Capture, Nfcapd},
    probe::{Record, Vxflow},
    topology::{Flannel, Offloads, Options},
    traffic, unique_prefix,
};

fn human(bytes: u64) -> String {
    #[expect(clippy::cast_precision_loss, reason = "display only")]
    let b = bytes as f64;
    match bytes {
        0..1_000 => format!("{bytes} B"),
        1_000..1_000_000 => format!("{:.1} kB", b / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} MB", b / 1e6),
        _ => format!("{:.2} GB", b / 1e9),
    }
}

fn endpoint(addr: std::net::IpAddr, port: Option<u16>) -> String {
    match (addr, port) {
        (std::net::IpAddr::V6(a), Some(p)) => format!("[{a}]:{p}"),
        (a, Some(p)) => format!("{a}:{p}"),
        (a, None) => a.to_string(),
    }
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("vxflow-demo creates network namespaces and loads eBPF programs: run scripts/demo.sh as root");
        std::process::exit(1);
    }
    let options = Options::default();
    println!("== Building a Flannel-like cluster in network namespaces");
    println!("   two nodes joined by an underlay veth (eth0: 192.168.56.11 and .12),");
    println!(
        "   flannel.1 VXLAN devices (VNI {}, UDP {}), a cni0 bridge and two pods per node",
        options.vni, options.vxlan_port
    );
    let topo = Flannel::build(&unique_prefix("demo"), options);
    topo.set_offloads(Offloads::On);
    topo.settle(Duration::from_secs(1));
    let (node1, node2) = (&topo.nodes[0], &topo.nodes[1]);

    println!("== Starting nfcapd (nfdump's collector) on node1, 127.0.0.1:4739");
    let nfcapd = Nfcapd::start(&node1.ns, 4739);
    let capture = Capture::start(&node1.ns, "lo", "udp port 4739");
    println!("== Starting vxflow on node1: vxflow run --interface eth0 --collector ipfix://127.0.0.1:4739 --json -");
    let vxflow = Vxflow::start(
        &node1.ns,
        &["--interface", "eth0", "--poll-interval", "200ms", "--collector", "ipfix://127.0.0.1:4739", "--json", "-"],
    );
    let before = node1.ns.counters("eth0");

    let (p1a, p1b, p2a, p2b) = (&node1.pods[0], &node1.pods[1], &node2.pods[0], &node2.pods[1]);
    println!("== Traffic between pods on different nodes");
    println!("   TCP  {} -> {} (iperf3, 2 s at 1 Gbit/s)", p1a.addr, p2a.addr);
    // Rate-limited so the underlay veth drops nothing after TC and its
    // counters stay an exact reference.
    let tcp = traffic::iperf3(&p1a.ns, &p2a.ns, p2a.addr, &["-t", "2", "-b", "1G"]);
    println!("        server read {}", human(tcp.received));
    println!("   UDP  {} -> {} (1000 datagrams of 500 bytes)", p2b.addr, p1b.addr);
    let got = traffic::udp_train(&p2b.ns, &p1b.ns, p1b.addr, 9999, 1000, 500);
    println!("        {got} arrived");
    println!("   ICMP {} -> {} (ping, 10 echoes)", p1b.addr, p2a.addr);
    traffic::ping(&p1b.ns, p2a.addr, 10, 56);
    topo.settle(Duration::from_millis(500));
    let truth = node1.ns.counters("eth0").since(&before);

    println!("== Stopping vxflow (SIGTERM): it drains the kernel and prints every flow");
    let done = vxflow.stop();
    println!();
    println!(
        "{:<8} {:<9} {:<22} {:<22} {:>4}  {:<44} {:>8} {:>10}",
        "DIR", "PROTO", "POD SRC", "POD DST", "VNI", "OUTER (node VTEPs)", "PACKETS", "BYTES"
    );
    let mut records: Vec<&Record> = done.records.iter().collect();
    records.sort_by_key(|r| std::cmp::Reverse(r.bytes));
    for r in &records {
        let outer = format!(
            "{} -> {}",
            endpoint(r.outer_src_addr.unwrap_or(r.src_addr), r.outer_src_port),
            endpoint(r.outer_dst_addr.unwrap_or(r.dst_addr), r.outer_dst_port)
        );
        println!(
            "{:<8} {:<9} {:<22} {:<22} {:>4}  {:<44} {:>8} {:>10}",
            r.direction,
            r.protocol,
            endpoint(r.src_addr, r.src_port),
            endpoint(r.dst_addr, r.dst_port),
            r.vni.map_or_else(|| "-".into(), |v| v.to_string()),
            outer,
            r.packets,
            human(r.bytes)
        );
    }
    if let Some((i, _)) = done.records.iter().enumerate().max_by_key(|(_, r)| r.bytes) {
        println!("\nThe biggest flow as vxflow printed it (one JSON line per expired flow):");
        println!("{}", done.lines[i]);
    }

    let l2 = Offloads::On.veth_l2_bytes();
    let sum = |dir: &str| -> (u64, u64) {
        let rs = done.records.iter().filter(|r| r.direction == dir);
        rs.fold((0, 0), |(p, b), r| (p + r.packets, b + r.wire_ip_bytes() + l2 * r.packets))
    };
    let (rx, tx) = (sum("ingress"), sum("egress"));
    println!("\n== Totals against node1 eth0's own counters");
    println!("   ingress: vxflow {} packets / {} bytes, eth0 {} / {}", rx.0, rx.1, truth.rx_packets, truth.rx_bytes);
    println!("   egress:  vxflow {} packets / {} bytes, eth0 {} / {}", tx.0, tx.1, truth.tx_packets, truth.tx_bytes);
    let exact = rx == (truth.rx_packets, truth.rx_bytes) && tx == (truth.tx_packets, truth.tx_bytes);
    if exact {
        println!("   exact match");
    } else {
        println!(
            "   MISMATCH (eth0 dropped {} packets on transmit after vxflow saw them, {} on receive)",
            truth.tx_dropped, truth.rx_dropped
        );
    }
    println!(
        "   kernel: {} packets seen, {} accounted, {} lost; {} GSO/GRO super-packets counted as their segments",
        done.counter("seen_packets"),
        done.counter("accounted_packets"),
        done.counter("lost_packets"),
        done.counter("gso_skbs")
    );
    show_collectors(nfcapd, capture);
    println!("== Cleaning up the namespaces");
    drop(topo);
    if !exact {
        std::process::exit(1);
    }
}

/// What the collectors made of the same flows: nfdump's listing, and
/// Wireshark's decoding of one VXLAN record (the elements nfdump does not show).
fn show_collectors(nfcapd: Nfcapd, capture: Capture) {
    let collected = nfcapd.stop();
    println!(
        "\n== The same flows as nfdump shows them (nfdump -o line; {} sequence failures)",
        collected.sequence_failures
    );
    for line in collected.listing.lines().take_while(|l| !l.starts_with("Summary")) {
        println!("   {line}");
    }
    let pcap = capture.stop();
    let decoded =
        cmd::run(&["tshark", "-r", pcap.path(), "-d", "udp.port==4739,cflow", "-V", "-Y", "cflow.flowset_id == 258"]);
    println!("\n== One VXLAN record as tshark decodes the IPFIX (template 258: IPv4 over IPv4)");
    let wanted = [
        "SrcAddr",
        "DstAddr",
        "SrcPort",
        "DstPort",
        "Protocol:",
        "Octets:",
        "Packets:",
        "Layer2 Segment Id",
        "Upstream tunnel",
        "Untunneled",
    ];
    // The first record of the first data set of template 258.
    let set = decoded.split("FlowSet Id: (Data) (258)").nth(1).unwrap_or_default();
    let record = set.split("Flow 1").nth(1).unwrap_or_default();
    for line in
        record.lines().take_while(|l| !l.trim_start().starts_with("Flow 2") && !l.trim_start().starts_with("Set "))
    {
        if wanted.iter().any(|w| line.trim_start().starts_with(w)) {
            println!("   {}", line.trim());
        }
    }
}
