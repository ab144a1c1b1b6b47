//! Sampling end to end (`--sampling 10`) on the Flannel topology: about 1 in
//! 10 packets is counted, every packet is counted or unsampled, every TCP
//! flow still shows its SYN and its FIN or RST, and the collectors scale the
//! sampled counts by 10 from what vxflow tells them: nfcapd from the IPFIX
//! and NetFlow v9 options records and the v5 header, pmacct's nfacctd with
//! `nfacctd_renormalize`. Needs root.

use std::{collections::BTreeMap, net::IpAddr, time::Duration};

use vxflow_testkit::{
    TempDir,
    collectors::{Nfacctd, Nfcapd},
    probe::Vxflow,
    require_root,
    topology::{Flannel, Offloads, Options, veth_pair},
    traffic, unique_prefix,
};

const N: u64 = 10;
const UDP_COUNT: u32 = 5000;

#[test]
#[ignore = "needs root: scripts/test.sh runs it"]
fn one_in_ten_is_counted_scaled_by_the_collectors_and_no_connection_is_lost() {
    require_root();
    let topo = Flannel::build(&unique_prefix("sample"), Options::default());
    topo.set_offloads(Offloads::Off);
    topo.settle(Duration::from_millis(1500));
    let (node1, node2) = (&topo.nodes[0], &topo.nodes[1]);
    let ipfix = Nfcapd::start(&node1.ns, 9991);
    let v9 = Nfcapd::start(&node1.ns, 9992);
    let v5 = Nfcapd::start(&node1.ns, 9993);
    let pmacct = Nfacctd::start_with(&node1.ns, 9994, "nfacctd_renormalize: true\n");
    let vxflow = Vxflow::start(
        &node1.ns,
        &[
            "--interface",
            "eth0",
            "--sampling",
            "10",
            "--poll-interval",
            "200ms",
            "--collector",
            "ipfix://127.0.0.1:9991",
            "--collector",
            "netflow9://127.0.0.1:9992",
            "--collector",
            "netflow5://127.0.0.1:9993",
            "--collector",
            "ipfix://127.0.0.1:9994",
            "--json",
            "-",
        ],
    );
    let (p1a, p1b, p2a, p2b) = (&node1.pods[0], &node1.pods[1], &node2.pods[0], &node2.pods[1]);
    let iperf = traffic::iperf3(&p1a.ns, &p2a.ns, p2a.addr, &["-n", "4M"]);
    assert!(iperf.received > 0);
    assert_eq!(traffic::udp_train(&p2b.ns, &p1b.ns, p1b.addr, 9999, UDP_COUNT, 100), UDP_COUNT);
    topo.settle(Duration::from_millis(700));
    let done = vxflow.stop();

    // Every packet counted or left out, and the sample about 1 in 10.
    let c = |name: &str| done.counter(name);
    assert_eq!(c("seen_packets"), c("accounted_packets") + c("fallback_packets") + c("unsampled_packets"));
    assert_eq!(c("exported_packets"), c("accounted_packets") + c("fallback_packets"));
    assert!(done.records.iter().all(|r| r.sampling == Some(10)), "every JSON record says 1 in 10");
    let udp = |src: IpAddr, dst: IpAddr| {
        done.records
            .iter()
            .filter(|r| r.src_addr == src && r.dst_addr == dst && r.dst_port == Some(9999))
            .map(|r| r.packets)
            .sum::<u64>()
    };
    let counted = udp(p2b.addr, p1b.addr);
    // Binomial(5,000, 1/10): mean 500, standard deviation 21; 150 is seven.
    assert!((350..=650).contains(&counted), "1 in 10 of {UDP_COUNT} gave {counted}");

    // No TCP connection lost from view: each direction of each connection
    // shows its SYN (or SYN-ACK), and each connection its FIN or RST,
    // though only 1 in 10 of those packets was counted. (iperf3's server
    // resets the data connection, so its client sends no FIN.)
    let mut flags: BTreeMap<(IpAddr, IpAddr, u16, u16), Vec<String>> = BTreeMap::new();
    for r in done.records.iter().filter(|r| r.protocol == "tcp") {
        let key = (r.src_addr, r.dst_addr, r.src_port.unwrap_or(0), r.dst_port.unwrap_or(0));
        flags.entry(key).or_default().extend(r.tcp_flags.clone().unwrap_or_default());
    }
    assert!(flags.len() >= 4, "iperf3's control and data connections, both ways: {flags:?}");
    for ((src, dst, sport, dport), f) in &flags {
        let back = flags.get(&(*dst, *src, *dport, *sport)).unwrap_or_else(|| panic!("no reverse of {flags:?}"));
        let has = |set: &[String], n: &str| set.iter().any(|x| x == n);
        assert!(has(f, "SYN"), "{src}:{sport} > {dst}:{dport} shows {f:?}");
        let ended = ["FIN", "RST"].iter().any(|n| has(f, n) || has(back, n));
        assert!(ended, "{src}:{sport} > {dst}:{dport} shows {f:?}, its reverse {back:?}");
    }

    // The collectors multiply by 10.
    for (name, collected) in [("IPFIX", ipfix.stop()), ("NetFlow v9", v9.stop()), ("NetFlow v5", v5.stop())] {
        let scaled: u64 = collected
            .flows
            .iter()
            .filter(|f| f.src == p2b.addr && f.dst == p1b.addr && f.dst_port == 9999)
            .map(|f| f.packets)
            .sum();
        assert_eq!(scaled, N * counted, "nfcapd over {name}:\n{}", collected.listing);
    }
    let renormalized: u64 = pmacct
        .stop()
        .iter()
        .filter(|f| f.src == p2b.addr && f.dst == p1b.addr && f.dst_port == 9999)
        .map(|f| f.packets)
        .sum();
    assert_eq!(renormalized, N * counted, "nfacctd with nfacctd_renormalize");
}

/// A reload changes the rate live: every packet counted before it, about 1
/// in 100 after, every packet in one of the two counters throughout, and the
/// log names the change.
#[test]
#[ignore = "needs root: scripts/test.sh runs it"]
fn a_reload_changes_the_rate_live() {
    require_root();
    let (a, b) = veth_pair("resample");
    let dir = TempDir::new("resample");
    let config = dir.join("vxflow.toml");
    let body = |n: u32| format!("interfaces = [\"v0\"]\n[kernel]\npoll_interval = \"100ms\"\nsampling = {n}\n");
    std::fs::write(&config, body(1)).unwrap();
    let mut vxflow = Vxflow::start(&a, &["--config", config.to_str().unwrap(), "--json", "-"]);
    let train = |port| traffic::udp_train(&a, &b, "10.9.0.2".parse().unwrap(), port, 3000, 64);
    assert_eq!(train(7001), 3000);
    std::fs::write(&config, body(100)).unwrap();
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(vxflow.pid(), libc::SIGHUP) };
    vxflow.wait_for_log("configuration reloaded", Duration::from_secs(10));
    assert_eq!(vxflow.ctl(&["stats"])["stats"]["kernel"]["sampling"], 100, "ctl stats says the new rate");
    assert_eq!(train(7002), 3000);
    std::thread::sleep(Duration::from_millis(300));
    let done = vxflow.stop();
    assert!(done.stderr.contains("kernel.sampling"), "the reload does not name the change:\n{}", done.stderr);
    let on = |port| done.records.iter().filter(|r| r.dst_port == Some(port)).map(|r| r.packets).sum::<u64>();
    assert_eq!(on(7001), 3000, "every packet before the reload");
    // Binomial(3,000, 1/100): mean 30, standard deviation 5.4; 0 to 70 is
    // beyond seven of them on the high side, and a rate change that did not
    // apply gives 3,000.
    assert!(on(7002) <= 70, "1 in 100 of 3,000 gave {}", on(7002));
    let c = |name: &str| done.counter(name);
    assert_eq!(c("seen_packets"), c("accounted_packets") + c("unsampled_packets"));
    assert!(c("unsampled_packets") >= 2_930, "{}", c("unsampled_packets"));
}
