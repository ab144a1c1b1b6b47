//! Operating a running vxflow: the metrics endpoint and `vxflow ctl` report
//! exactly what crossed the interface, and SIGHUP reloads change collectors,
//! timeouts, VXLAN ports and interfaces without losing a counted packet or a
//! cached flow. Needs root.

use std::{net::SocketAddr, path::Path, time::Duration};

use vxflow_testkit::{
    TempDir,
    collectors::Nfcapd,
    metrics::Scrape,
    netns::{Netns, http_get},
    probe::Vxflow,
    require_root,
    topology::{add_veth, veth_pair},
    traffic::ping,
};

/// Scrapes `/metrics` inside `ns`.
fn scrape(ns: &Netns, addr: SocketAddr) -> Scrape {
    let (status, body) = http_get(ns, addr, "/metrics");
    assert_eq!(status, 200, "{body}");
    Scrape::parse(&body)
}

#[test]
#[ignore = "needs root: scripts/test.sh runs it"]
fn metrics_and_ctl_agree_with_the_interface_counters() {
    require_root();
    let (a, _b) = veth_pair("metrics");
    let addr: SocketAddr = "127.0.0.1:9740".parse().unwrap();
    let before = a.counters("v0");
    let args = [
        "--interface",
        "v0",
        "--poll-interval",
        "100ms",
        "--inactive-timeout",
        "60s",
        "--metrics-listen",
        "127.0.0.1:9740",
    ];
    let vxflow = Vxflow::start(&a, &args);
    ping(&a, "10.9.0.2".parse().unwrap(), 25, 100);
    std::thread::sleep(Duration::from_millis(300));
    let link = a.counters("v0").since(&before);
    assert_eq!((link.tx_packets, link.rx_packets), (25, 25), "only the pings crossed v0");

    let m = scrape(&a, addr);
    let iface = |dir| [("interface", "v0"), ("direction", dir)];
    assert_eq!(m.value("vxflow_interface_packets_total", &iface("egress")), link.tx_packets);
    assert_eq!(m.value("vxflow_interface_packets_total", &iface("ingress")), link.rx_packets);
    // The link counts Ethernet frames; vxflow IP bytes: 14 bytes less each.
    assert_eq!(m.value("vxflow_interface_bytes_total", &iface("egress")), link.tx_bytes - 14 * link.tx_packets);
    assert_eq!(m.value("vxflow_interface_bytes_total", &iface("ingress")), link.rx_bytes - 14 * link.rx_packets);
    assert_eq!(m.value("vxflow_interface_attached", &[("interface", "v0")]), 1);
    assert_eq!(m.value("vxflow_datapath_seen_packets_total", &[]), 50);
    assert_eq!(m.value("vxflow_datapath_packets_total", &[("outcome", "accounted")]), 50);
    assert_eq!(m.value("vxflow_datapath_packets_total", &[("outcome", "lost")]), 0);
    assert_eq!(m.value("vxflow_flows_active", &[]), 2);
    assert_eq!(m.value("vxflow_flows_created_total", &[]), 2);
    assert_eq!(m.value("vxflow_kernel_flow_map_capacity", &[]), 65536);
    assert_eq!(m.value("vxflow_sampling", &[]), 1);
    assert!(m.value("vxflow_drains_total", &[]) >= 3);

    // ctl stats says the same, and lists the two cached flows.
    let stats = &vxflow.ctl(&["stats"])["stats"];
    let traffic = stats["interfaces"].as_array().unwrap();
    let egress = traffic.iter().find(|t| t["direction"] == "egress").unwrap();
    assert_eq!(egress["packets"], 25, "{stats}");
    assert_eq!(stats["datapath"]["seen_packets"], 50);
    let flows = vxflow.ctl(&["flows"]);
    let flows = flows["flows"].as_array().unwrap();
    assert_eq!(flows.len(), 2, "{flows:?}");
    assert!(flows.iter().all(|f| f["packets"] == 25 && f["protocol"] == "icmp" && f.get("end_reason").is_none()));

    // Only root or vxflow's own user may talk to it.
    let nobody = vxflow.ctl_as(&["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"], &["stats"]);
    assert!(!nobody.status.success());
    assert!(String::from_utf8_lossy(&nobody.stderr).contains("cannot reach vxflow"));

    // expire-all exports both flows at once, as forced ends.
    assert_eq!(vxflow.ctl(&["expire-all"]), serde_json::json!({"expired": {"records": 2}}));
    let m = scrape(&a, addr);
    assert_eq!(m.value("vxflow_flows_active", &[]), 0);
    assert_eq!(m.value("vxflow_flow_records_total", &[("reason", "forced_end")]), 2);
    assert_eq!(m.value("vxflow_exported_packets_total", &[]), 50);
    let (code, health) = http_get(&a, addr, "/healthz");
    assert_eq!(code, 200, "{health}");
    assert!(health.starts_with("ok: last drain"), "{health}");

    let done = vxflow.stop();
    assert_eq!(done.records.len(), 2, "expire-all exported them; nothing was left for shutdown");
    assert!(done.records.iter().all(|r| r.end_reason == "forced_end" && r.packets == 25));
}

fn write_config(path: &Path, body: &str) {
    std::fs::write(path, body).unwrap();
}

#[test]
#[ignore = "needs root: scripts/test.sh runs it"]
fn sighup_reload_keeps_every_packet_and_flow() {
    require_root();
    let (a, b) = veth_pair("reload");
    // A second link for the reload to attach and detach.
    add_veth(&a, &b, ("w0", "w1"), 1);
    let kept = Nfcapd::start(&a, 9301);
    let added = Nfcapd::start(&a, 9302);
    let dir = TempDir::new("reload");
    let config = dir.join("vxflow.toml");
    let kept_collector = "[[collector]]\naddress = \"127.0.0.1:9301\"\nprotocol = \"ipfix\"\n";
    let added_collector = "[[collector]]\naddress = \"127.0.0.1:9302\"\nprotocol = \"netflow9\"\n";
    let base = "[kernel]\npoll_interval = \"100ms\"\n[cache]\ninactive_timeout = \"60s\"\n";
    write_config(&config, &format!("interfaces = [\"v0\"]\n{base}{kept_collector}"));
    let before = a.counters("v0");
    let mut vxflow = Vxflow::start(&a, &["--config", config.to_str().unwrap(), "--json", "-"]);

    let pinger = |dst: &str| {
        let mut ping = a.command(&["ping", "-q", "-c", "300", "-i", "0.01", "-W", "2", dst]);
        std::thread::spawn(move || {
            let out = ping.output().unwrap();
            assert!(String::from_utf8_lossy(&out.stdout).contains("300 received"));
        })
    };
    let (p0, p1) = (pinger("10.9.0.2"), pinger("10.9.1.2"));
    let hup = |v: &mut Vxflow, body: String, expect: &str, nth: usize| {
        write_config(&config, &body);
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(v.pid(), libc::SIGHUP) };
        v.wait_for_log_count(expect, nth, Duration::from_secs(10));
    };
    std::thread::sleep(Duration::from_millis(400));
    // 1: attach w0, add a v9 collector, a 1 s active timeout, other VXLAN
    // ports, and a map size that needs a restart (kept, with a warning).
    let cache1 = "[cache]\ninactive_timeout = \"60s\"\nactive_timeout = \"1s\"\n";
    hup(
        &mut vxflow,
        format!(
            "interfaces = [\"v0\", \"w0\"]\nvxlan_ports = [4789]\n[kernel]\npoll_interval = \"100ms\"\nflow_map_entries = 1024\n{cache1}{kept_collector}{added_collector}"
        ),
        "configuration reloaded",
        1,
    );
    std::thread::sleep(Duration::from_millis(500));
    // 2: an invalid file is rejected and changes nothing.
    hup(&mut vxflow, "interfaces = [\"v0\"]\nnot_a_key = 1\n".into(), "configuration rejected", 1);
    std::thread::sleep(Duration::from_millis(500));
    // 3: detach w0, drop the v9 collector, a longer poll interval.
    hup(
        &mut vxflow,
        format!("interfaces = [\"v0\"]\n[kernel]\npoll_interval = \"250ms\"\n{cache1}{kept_collector}"),
        "configuration reloaded",
        2,
    );
    p0.join().unwrap();
    p1.join().unwrap();
    std::thread::sleep(Duration::from_millis(600));
    let link = a.counters("v0").since(&before);
    let done = vxflow.stop();

    let log = &done.stderr;
    assert!(log.contains("key=\"kernel.flow_map_entries\""), "no restart warning:\n{log}");
    assert!(log.contains("attached iface=\"w0\"") && log.contains("detached iface=\"w0\""), "{log}");
    assert!(log.contains("outputs_opened=[\"netflow9://127.0.0.1:9302\"]"), "{log}");
    assert!(log.contains("outputs_closed=[\"netflow9://127.0.0.1:9302\"]"), "{log}");
    assert!(log.contains("changed=[\"interfaces\", \"vxlan_ports\", \"cache\"]"), "{log}");
    assert!(log.contains("not_a_key"), "the rejection names the key:\n{log}");

    // v0 was watched throughout: its records hold every packet that crossed it.
    let on = |iface: &str| done.records.iter().filter(|r| r.interface == iface).map(|r| r.packets).sum::<u64>();
    assert_eq!(on("v0"), link.tx_packets + link.rx_packets, "v0 lost or doubled packets across reloads");
    assert_eq!(link.tx_packets, 300);
    // w0 was watched for a while; what was counted there was exported.
    assert!(on("w0") > 0, "w0 was never attached");
    let total: u64 = done.records.iter().map(|r| r.packets).sum();
    assert_eq!(total, done.counter("seen_packets"), "a counted packet was not exported");
    assert_eq!(done.counter("drained_packets"), done.counter("exported_packets"));
    // No reload dropped or re-created a cached flow: each flow was created
    // once, for the whole run.
    let flows: std::collections::BTreeSet<_> =
        done.records.iter().map(|r| (r.interface.clone(), r.direction.clone(), r.src_addr, r.dst_addr)).collect();
    assert_eq!(done.counter("flows_created"), flows.len() as u64, "{flows:?}");
    assert_eq!(flows.len(), 4, "echo and reply on v0 and on w0: {flows:?}");
    // The timeouts changed: long flows were cut every second.
    assert!(done.records.iter().any(|r| r.end_reason == "active_timeout"), "active_timeout not applied");

    // The kept collector saw every record, in one unbroken sequence.
    let k = kept.stop();
    assert_eq!(k.sequence_failures, 0, "{}", k.listing);
    assert_eq!(k.flows.iter().map(|f| f.packets).sum::<u64>(), total, "{}", k.listing);
    // The added one saw records only while configured, and closed cleanly.
    let v9 = added.stop();
    let v9_packets: u64 = v9.flows.iter().map(|f| f.packets).sum();
    assert!(v9_packets > 0 && v9_packets < total, "v9 collector got {v9_packets} of {total}");
    assert_eq!(v9.sequence_failures, 0);
}

/// A second vxflow on a node is refused with an error naming what is taken:
/// the control socket, or the metrics address.
#[test]
#[ignore = "needs root: scripts/test.sh runs it"]
fn a_second_instance_is_refused_with_a_clear_error() {
    require_root();
    let (a, _b) = veth_pair("twice");
    let first = Vxflow::start(&a, &["--interface", "v0"]);
    let socket = first.control_socket().unwrap().to_str().unwrap().to_owned();
    let run = |extra: &[&str]| {
        let bin = vxflow_testkit::probe::binary();
        let mut argv = vec![bin.to_str().unwrap(), "run", "--interface", "v0"];
        argv.extend_from_slice(extra);
        let out = a.command(&argv).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, stderr) = run(&["--control-socket", &socket]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("another vxflow answers there"), "{stderr}");
    let (code, stderr) = run(&["--no-control"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("metrics endpoint 127.0.0.1:9739: cannot listen"), "{stderr}");
    // The first one is unharmed, its socket still there.
    assert!(first.ctl(&["stats"])["stats"]["attached"] == serde_json::json!(["v0"]));
    let _ = first.stop();
}
