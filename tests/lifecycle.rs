//! vxflow's life around the traffic: an interface that vanishes while it runs,
//! and SIGINT. Needs root.

use vxflow_testkit::{netns::Netns, probe::Vxflow, require_root};

fn pair(tag: &str) -> (Netns, Netns) {
    vxflow_testkit::topology::veth_pair(tag)
}

#[test]
#[ignore = "needs root: scripts/test.sh runs it"]
fn an_interface_that_vanishes_is_survived_and_its_flows_kept() {
    require_root();
    let (a, _b) = pair("gone");
    let vxflow = Vxflow::start(&a, &["--interface", "v0", "--poll-interval", "100ms"]);
    a.exec(&["ping", "-q", "-c", "5", "-i", "0.05", "10.9.0.2"]);
    a.ip("link del v0");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let done = vxflow.stop();
    let icmp: Vec<_> = done.records.iter().filter(|r| r.protocol == "icmp").collect();
    assert_eq!(icmp.iter().map(|r| r.packets).sum::<u64>(), 10, "{icmp:#?}");
    assert!(icmp.iter().all(|r| r.interface == "v0"), "records lost the interface name: {icmp:#?}");
    assert_eq!(done.counter("seen_packets"), 10);
}

#[test]
#[ignore = "needs root: scripts/test.sh runs it"]
fn sigint_drains_and_exits_cleanly() {
    require_root();
    let (a, _b) = pair("int");
    let vxflow = Vxflow::start(&a, &["--interface", "v0", "--poll-interval", "10s", "--inactive-timeout", "60s"]);
    a.exec(&["ping", "-q", "-c", "3", "-i", "0.05", "10.9.0.2"]);
    // The poll interval is long: only the shutdown drain can report these.
    let done = vxflow.stop_with(libc::SIGINT);
    assert!(done.stderr.contains("SIGINT"), "{}", done.stderr);
    let packets: u64 = done.records.iter().map(|r| r.packets).sum();
    assert_eq!(packets, 6);
    assert!(done.records.iter().all(|r| r.end_reason == "forced_end"));
}
