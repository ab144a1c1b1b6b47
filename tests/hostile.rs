//! What a hostile pod or host can send, through real interfaces to the real
//! programs: forged VXLAN inside a pod's UDP, tenants that reuse one tuple on
//! other VNIs and VLANs, and traffic that reuses the export tuple. Each
//! asserts the records hold exactly what was sent. Needs root.

use std::{
    fmt::Write as _,
    net::{IpAddr, SocketAddr},
    os::unix::ffi::OsStrExt as _,
};

use vxflow_testkit::{
    netns::RawSender,
    packets,
    probe::{Finished, Record, Vxflow},
    require_root,
    topology::{Flannel, Offloads, Options},
    traffic::udp_datagrams,
    unique_prefix,
};

/// An inner Ethernet/IPv4/UDP frame with the given tuple, for a forged
/// VXLAN payload.
fn inner_udp(src: IpAddr, dst: IpAddr, sport: u16, dport: u16) -> Vec<u8> {
    let (IpAddr::V4(s), IpAddr::V4(d)) = (src, dst) else { panic!("IPv4 pods only") };
    let mut f = Vec::new();
    etherparse::PacketBuilder::ethernet2(packets::MAC_A, packets::MAC_B)
        .ipv4(s.octets(), d.octets(), 64)
        .udp(sport, dport)
        .write(&mut f, &[0x42; 64])
        .unwrap();
    f
}

fn records_of(done: &Finished, src: IpAddr, dst_port: u16) -> Vec<&Record> {
    done.records.iter().filter(|r| r.src_addr == src && r.dst_port == Some(dst_port)).collect()
}

fn packets_of(records: &[&Record]) -> u64 {
    records.iter().map(|r| r.packets).sum()
}

/// A pod sends UDP to another pod's port 4789 whose payload is a VXLAN
/// header (VNI 999) and a copy of a victim pod flow's header, while the
/// victim's flow runs. Under `auto`, with every interface of the node, and
/// per interface: no record carries VNI 999, the victim's flow is reported
/// whole, and the forger's packets are reported as the plain UDP they are.
#[test]
#[ignore = "needs root: scripts/test.sh runs it"]
fn a_pod_cannot_forge_a_tunnel_or_hide_a_flow() {
    require_root();
    let topo = Flannel::build(&unique_prefix("forge"), Options::default());
    topo.set_offloads(Offloads::Off);
    let [n1, n2] = &topo.nodes;
    n1.ns.ip(&format!("route add default via {} dev eth0", n2.addr));
    let (attacker, victim) = (&n1.pods[0], &n1.pods[1]);
    let (target, victim_peer) = (&n2.pods[0], &n2.pods[1]);
    let common = ["--poll-interval", "100ms", "--inactive-timeout", "60s"];
    let selections: [&[&str]; 3] = [
        &["-i", "auto"],
        &["-i", "eth0", "-i", "flannel.*", "-i", "cni0", "-i", "veth*"],
        &["-i", "eth0", "-i", "flannel.*", "-i", "cni0", "-i", "veth*", "--per-interface-records"],
    ];
    for (round, select) in (0u16..).zip(selections) {
        let args: Vec<&str> = select.iter().chain(&common).copied().collect();
        let vxflow = Vxflow::start(&n1.ns, &args);
        let (victim_from, victim_to) = (41000 + round, 9300 + round);
        let mut forged = packets::vxlan_header(0x08, 999).to_vec();
        forged.extend(inner_udp(victim.addr, victim_peer.addr, victim_from, victim_to));
        let (sent_victim, sent_forged) = std::thread::scope(|s| {
            let v = s.spawn(|| {
                let src = SocketAddr::new(victim.addr, victim_from);
                let dst = SocketAddr::new(victim_peer.addr, victim_to);
                udp_datagrams(&victim.ns, src, &victim_peer.ns, dst, 300, &[7; 100])
            });
            let a = s.spawn(|| {
                let src = SocketAddr::new(attacker.addr, 42000 + round);
                udp_datagrams(&attacker.ns, src, &target.ns, SocketAddr::new(target.addr, 4789), 60, &forged)
            });
            (v.join().unwrap(), a.join().unwrap())
        });
        assert_eq!((sent_victim, sent_forged), (300, 60));
        let done = vxflow.stop();
        let forged_records: Vec<&Record> = done.records.iter().filter(|r| r.vni == Some(999)).collect();
        assert!(forged_records.is_empty(), "{select:?}: a forged VNI was exported: {forged_records:#?}");
        let victim_records = records_of(&done, victim.addr, victim_to);
        let want = if select.contains(&"--per-interface-records") { 300 * 4 } else { 300 };
        assert_eq!(packets_of(&victim_records), want, "{select:?}: the victim's flow: {victim_records:#?}");
        let attack = records_of(&done, attacker.addr, 4789);
        let want = if select.contains(&"--per-interface-records") { 60 * 4 } else { 60 };
        assert_eq!(packets_of(&attack), want, "{select:?}: the forger's flow: {attack:#?}");
        assert!(attack.iter().all(|r| r.protocol == "udp"), "{attack:#?}");
        // Each forged datagram is noted once per pod-facing interface it
        // crossed: flannel.1 under auto; the pod's veth, cni0 and flannel.1
        // with every interface.
        let crossed = if select.contains(&"auto") { 1 } else { 3 };
        assert_eq!(done.counter("tunnel_untrusted_packets"), 60 * crossed, "{select:?}: {}", done.stderr);
    }
}

/// Sends `count` IPv4 packets of IP protocol `protocol` carrying `payload`
/// from `ns` to `dst` through a raw socket (the kernel writes the IP
/// header and routes them like any other packet of the pod).
fn raw_ip(ns: &vxflow_testkit::netns::Netns, protocol: i32, dst: IpAddr, payload: &[u8], count: u32) {
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    std::thread::scope(|s| {
        s.spawn(|| {
            ns.enter_thread();
            let sock = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(protocol))).unwrap();
            let to = SockAddr::from(SocketAddr::new(dst, 0));
            for i in 0..count {
                sock.send_to(payload, &to).unwrap();
                if i % 8 == 7 {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
        });
    });
}

/// A pod sends what would pass for Geneve, GRE (NVGRE) and IP in IP on
/// the underlay, each around a copy of a victim pod flow's header, to a pod
/// on the other node while the victim's flow runs. On the pod-facing
/// interfaces they are pod data; on eth0 they are inside VXLAN, a tunnel in
/// a tunnel, which is accounted at VXLAN's inner header. No record carries
/// a Geneve, GRE or IP-in-IP tunnel, the victim's flow is whole, and each
/// forgery is the plain flow of its protocol, every packet of it.
#[test]
#[ignore = "needs root: scripts/test.sh runs it"]
fn a_pod_cannot_forge_geneve_gre_or_ip_in_ip() {
    use vxflow_testkit::tunnel_frames::{GRE_K, geneve_header, gre_header};
    require_root();
    let topo = Flannel::build(&unique_prefix("forgeip"), Options::default());
    topo.set_offloads(Offloads::Off);
    let [n1, n2] = &topo.nodes;
    n1.ns.ip(&format!("route add default via {} dev eth0", n2.addr));
    let (attacker, victim) = (&n1.pods[0], &n1.pods[1]);
    let (target, victim_peer) = (&n2.pods[0], &n2.pods[1]);
    let vxflow = Vxflow::start(&n1.ns, &["-i", "auto", "--poll-interval", "100ms", "--inactive-timeout", "60s"]);
    let (victim_from, victim_to) = (41500, 9400);
    let copy = inner_udp(victim.addr, victim_peer.addr, victim_from, victim_to);
    let geneve = [geneve_header(0, false, 0x6558, 4242, &[], None), copy.clone()].concat();
    let nvgre = [gre_header(GRE_K, 0x6558, 4242 << 8), copy.clone()].concat();
    let ipip = copy[14..].to_vec();
    let (sent_victim, sent_geneve) = std::thread::scope(|s| {
        let v = s.spawn(|| {
            let src = SocketAddr::new(victim.addr, victim_from);
            let dst = SocketAddr::new(victim_peer.addr, victim_to);
            udp_datagrams(&victim.ns, src, &victim_peer.ns, dst, 300, &[7; 100])
        });
        let a = s.spawn(|| {
            let src = SocketAddr::new(attacker.addr, 42500);
            let dst = SocketAddr::new(target.addr, 6081);
            let geneve = udp_datagrams(&attacker.ns, src, &target.ns, dst, 60, &geneve);
            raw_ip(&attacker.ns, 47, target.addr, &nvgre, 60);
            raw_ip(&attacker.ns, 4, target.addr, &ipip, 60);
            geneve
        });
        (v.join().unwrap(), a.join().unwrap())
    });
    assert_eq!((sent_victim, sent_geneve), (300, 60));
    std::thread::sleep(std::time::Duration::from_millis(300));
    let done = vxflow.stop();
    let forged: Vec<&Record> =
        done.records.iter().filter(|r| r.tunnel.as_deref().is_some_and(|t| t != "vxlan")).collect();
    assert!(forged.is_empty(), "a forged tunnel was exported: {forged:#?}");
    assert_eq!(packets_of(&records_of(&done, victim.addr, victim_to)), 300, "the victim's flow");
    let from_attacker = |protocol: &str| -> Vec<&Record> {
        done.records.iter().filter(|r| r.src_addr == attacker.addr && r.protocol == protocol).collect()
    };
    assert_eq!(packets_of(&records_of(&done, attacker.addr, 6081)), 60, "the Geneve forgery");
    assert_eq!(packets_of(&from_attacker("gre")), 60, "the GRE forgery");
    assert_eq!(packets_of(&from_attacker("4")), 60, "the IP-in-IP forgery");
    // Each forged packet crossed flannel.1 (a pod-facing tunnel device:
    // untrusted) and eth0 (inside VXLAN: nested) once.
    assert_eq!(done.counter("tunnel_untrusted_packets"), 180, "{}", done.stderr);
    assert_eq!(done.counter("nested_tunnel_packets"), 180, "{}", done.stderr);
    for counter in ["geneve_packets", "gre_packets", "ipip_packets"] {
        assert_eq!(done.counter(counter), 0, "{counter}");
    }
}

/// Two tenants reuse one inner tuple on two VNIs, and two VLANs reuse one
/// tuple, all on one interface: four flows, each with every packet.
#[test]
#[ignore = "needs root: scripts/test.sh runs it"]
fn tenants_that_reuse_a_tuple_are_not_merged() {
    require_root();
    let (a, b) = vxflow_testkit::topology::veth_pair("tenant");
    let vxflow = Vxflow::start(&a, &["--interface", "v0", "--tunnel-interface", "v0", "--poll-interval", "100ms"]);
    let inner = inner_udp("10.244.0.2".parse().unwrap(), "10.244.1.2".parse().unwrap(), 5000, 6000);
    let frame = |vni| packets::vxlan(&packets::NODE_B, &packets::NODE_A, 50000, 4789, 0x08, vni, &inner);
    let tagged = |vlan: u16| {
        let mut f = inner_udp("10.1.0.2".parse().unwrap(), "10.1.0.3".parse().unwrap(), 5000, 6000);
        let [hi, lo] = vlan.to_be_bytes();
        let tag = [0x81, 0x00, hi, lo];
        f.splice(12..12, tag);
        f
    };
    let sent = [(frame(1), 200u64), (frame(2), 100), (tagged(10), 50), (tagged(20), 70)];
    std::thread::scope(|s| {
        s.spawn(|| {
            b.enter_thread();
            let sender = RawSender::new("v1");
            for (f, n) in &sent {
                for _ in 0..*n {
                    sender.send(f);
                }
            }
        });
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    let done = vxflow.stop();
    let on = |pred: &dyn Fn(&Record) -> bool| done.records.iter().filter(|r| pred(r)).map(|r| r.packets).sum::<u64>();
    assert_eq!(on(&|r| r.vni == Some(1) && r.dst_port == Some(6000)), 200, "{:#?}", done.records);
    assert_eq!(on(&|r| r.vni == Some(2) && r.dst_port == Some(6000)), 100, "{:#?}", done.records);
    assert_eq!(on(&|r| r.vlan == Some(10) && r.dst_port == Some(6000)), 50, "{:#?}", done.records);
    assert_eq!(on(&|r| r.vlan == Some(20) && r.dst_port == Some(6000)), 70, "{:#?}", done.records);
    assert_eq!((done.counter("duplicate_packets"), done.counter("flows_created")), (0, 4));
}

/// A host that sends from the collector's address and port to the export
/// socket's port is counted like any traffic: only what the exporter itself
/// sends is left out.
#[test]
#[ignore = "needs root: scripts/test.sh runs it"]
fn traffic_that_reuses_the_export_tuple_is_counted() {
    require_root();
    let (a, b) = vxflow_testkit::topology::veth_pair("reuse");
    let mut vxflow = Vxflow::start(
        &a,
        &["--interface", "v0", "--poll-interval", "100ms", "--collector", "ipfix://10.9.0.2:4739", "--json", "-"],
    );
    vxflow.wait_for_log("exporting", std::time::Duration::from_secs(5));
    let log = vxflow.log();
    let source = log
        .split("source=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|s| s.parse::<SocketAddr>().ok())
        .unwrap_or_else(|| panic!("no export source in the log:\n{log}"));
    let from = SocketAddr::new("10.9.0.2".parse().unwrap(), 4739);
    // Datagrams to the export socket itself: the kernel delivers them to it
    // (it is connected to exactly that peer); vxflow never reads them.
    std::thread::scope(|s| {
        s.spawn(|| {
            b.enter_thread();
            let sock = std::net::UdpSocket::bind(from).unwrap();
            for i in 0..1000 {
                sock.send_to(&[1; 1000], source).unwrap();
                if i % 8 == 7 {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
        });
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    let done = vxflow.stop();
    let reused: Vec<&Record> = done
        .records
        .iter()
        .filter(|r| r.src_port == Some(4739) && r.dst_port == Some(source.port()) && r.direction == "ingress")
        .collect();
    assert_eq!(packets_of(&reused), 1000, "{reused:#?}\n{}", done.stderr);
    assert_eq!(reused.iter().map(|r| r.bytes).sum::<u64>(), 1000 * 1028);
    assert!(done.counter("self_export_packets") > 0, "the exporter's own packets are still left out");
}

/// Raises this test process's soft file limit to its hard one, so it can
/// hold the connections it opens.
fn raise_own_file_limit() {
    let mut l = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with valid pointers.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut l), 0);
        l.rlim_cur = l.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &raw const l), 0);
    }
}

fn open_fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

/// 1,100 idle connections to the metrics endpoint of a vxflow held to 1,024
/// file descriptors: it keeps its descriptors, answers `ctl`, attaches a new
/// interface and counts it exactly, and the idle connections are closed
/// within the header timeout, after which a scrape answers.
#[test]
#[ignore = "needs root: scripts/test.sh runs it"]
fn idle_metrics_connections_cannot_exhaust_the_daemon() {
    require_root();
    raise_own_file_limit();
    let (a, b) = vxflow_testkit::topology::veth_pair("exhaust");
    let launch = vxflow_testkit::probe::Launch {
        args: &["--interface", "v*", "--poll-interval", "100ms", "--inactive-timeout", "60s"],
        wrapper: &["prlimit", "--nofile=1024:1024", "--"],
        ..Default::default()
    };
    let mut vxflow = Vxflow::launch(&a, &launch);
    let metrics: SocketAddr = "127.0.0.1:9739".parse().unwrap();
    let idle: Vec<std::net::TcpStream> = {
        let name = a.name().to_owned();
        std::thread::spawn(move || {
            vxflow_testkit::netns::enter(&name);
            (0..1100).filter_map(|_| std::net::TcpStream::connect(metrics).ok()).collect()
        })
        .join()
        .unwrap()
    };
    assert!(idle.len() >= 1000, "only {} connections opened", idle.len());
    std::thread::sleep(std::time::Duration::from_millis(500));
    let fds = open_fds(vxflow.pid());
    assert!(fds < 300, "vxflow holds {fds} descriptors with 1,100 idle clients");
    assert_eq!(vxflow.ctl(&["stats"])["stats"]["attached"], serde_json::json!(["v0"]));
    // A new interface while the clients idle: attached and counted.
    vxflow_testkit::topology::add_veth(&a, &b, ("v2", "v3"), 2);
    vxflow.wait_for_log("iface=\"v2\" direction=egress", std::time::Duration::from_secs(10));
    a.exec(&["ping", "-q", "-c", "5", "-i", "0.05", "10.9.2.2"]);
    // The header timeout (5 s) closes every idle connection.
    std::thread::sleep(std::time::Duration::from_secs(6));
    let (status, body) = vxflow_testkit::netns::http_get(&a, metrics, "/metrics");
    assert_eq!(status, 200, "{body}");
    drop(idle);
    let done = vxflow.stop();
    assert!(!done.stderr.contains("does not exist"), "{}", done.stderr);
    assert!(done.stderr.contains("metrics endpoint busy"), "{}", done.stderr);
    let pings: u64 =
        done.records.iter().filter(|r| r.interface == "v2" && r.protocol == "icmp").map(|r| r.packets).sum();
    assert_eq!(pings, 10, "{:#?}", done.records);
}

/// `control.socket` naming a file that is not a socket is refused and the
/// file kept; a stale socket (nobody listening) is replaced.
#[test]
#[ignore = "needs root: scripts/test.sh runs it"]
fn the_control_socket_replaces_only_a_stale_socket() {
    require_root();
    let (a, _b) = vxflow_testkit::topology::veth_pair("ctlfile");
    let dir = vxflow_testkit::TempDir::new("ctlfile");
    let file = dir.join("precious");
    std::fs::write(&file, "keep me").unwrap();
    let bin = vxflow_testkit::probe::binary();
    let run = |socket: &std::path::Path| {
        let argv =
            [bin.to_str().unwrap(), "run", "-i", "v0", "--no-metrics", "--control-socket", socket.to_str().unwrap()];
        let child = a.command(&argv).stderr(std::process::Stdio::piped()).spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_secs(2));
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(i32::try_from(child.id()).unwrap(), libc::SIGTERM) };
        let out = child.wait_with_output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, stderr) = run(&file);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("not a socket"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");

    let stale = dir.join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let (code, stderr) = run(&stale);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("control socket ready"), "{stderr}");
    assert!(!stale.exists(), "the socket is removed at exit");
}

/// An interface whose name is not UTF-8 (which rtnetlink cannot decode and
/// aya cannot name) is watched under `-i '*'` through a TCX link made by
/// index, counted exactly, and shown escaped; in clsact mode, which names
/// interfaces, it is refused with a reason, and the rest are watched.
#[test]
#[ignore = "needs root: scripts/test.sh runs it"]
fn an_interface_whose_name_is_not_utf8_is_watched_by_index() {
    require_root();
    let (a, b) = vxflow_testkit::topology::veth_pair("utf8");
    let bad = std::ffi::OsStr::from_bytes(b"bad\xff");
    let ip = |args: &[&std::ffi::OsStr]| {
        let status = a.command(&["ip"]).args(args).status().unwrap();
        assert!(status.success(), "ip {args:?}");
    };
    let os = std::ffi::OsStr::new;
    ip(&[
        os("link"),
        os("add"),
        bad,
        os("type"),
        os("veth"),
        os("peer"),
        os("name"),
        os("okpeer"),
        os("netns"),
        os(b.name()),
    ]);
    ip(&[os("addr"), os("add"), os("10.9.7.1/24"), os("dev"), bad]);
    ip(&[os("link"), os("set"), bad, os("up")]);
    b.ip("addr add 10.9.7.2/24 dev okpeer");
    b.ip("link set okpeer up");
    for mode in ["tcx", "clsact"] {
        let mut vxflow =
            Vxflow::start(&a, &["-i", "*", "-i", "!lo", "--attach-mode", mode, "--poll-interval", "100ms"]);
        vxflow.wait_for_log("interface name is not UTF-8", std::time::Duration::from_secs(5));
        let attached = vxflow.ctl(&["stats"])["stats"]["attached"].clone();
        let want = if mode == "tcx" { serde_json::json!(["bad\\xff", "v0"]) } else { serde_json::json!(["v0"]) };
        assert_eq!(attached, want, "{mode}");
        a.exec(&["ping", "-q", "-c", "5", "-i", "0.05", "10.9.7.2"]);
        a.exec(&["ping", "-q", "-c", "3", "-i", "0.05", "10.9.0.2"]);
        let done = vxflow.stop();
        assert!(done.stderr.contains("name=bad\\xff"), "{}", done.stderr);
        assert_eq!(done.stderr.matches("interface name is not UTF-8").count(), 1, "reported once");
        let icmp = |iface: &str| -> u64 {
            done.records.iter().filter(|r| r.interface == iface && r.protocol == "icmp").map(|r| r.packets).sum()
        };
        assert_eq!(icmp("v0"), 6, "{mode}");
        if mode == "tcx" {
            assert_eq!(icmp("bad\\xff"), 10, "{:#?}", done.records);
        } else {
            assert!(done.stderr.contains("only TCX"), "{}", done.stderr);
        }
    }
}

/// A flow map the kernel cannot allocate (here a memory cgroup of 100 MB
/// against the largest allowed map, whose two bucket arrays alone take 128
/// MiB) is reported as that, naming the keys to lower, not as a privilege or
/// BTF problem.
#[test]
#[ignore = "needs root: scripts/test.sh runs it"]
fn a_map_too_large_for_the_kernel_names_the_keys_to_lower() {
    require_root();
    let (a, _b) = vxflow_testkit::topology::veth_pair("bigmap");
    let cgroup = std::path::PathBuf::from(format!("/sys/fs/cgroup/memory/{}", a.name()));
    assert!(cgroup.parent().unwrap().exists(), "this test needs the cgroup v1 memory controller");
    std::fs::create_dir(&cgroup).unwrap();
    std::fs::write(cgroup.join("memory.limit_in_bytes"), "100M").unwrap();
    let bin = vxflow_testkit::probe::binary();
    let script = format!(
        "echo $$ > {}/cgroup.procs && exec ip netns exec {} {} run -i v0 --no-metrics --no-control --flow-map-entries 4194304",
        cgroup.display(),
        a.name(),
        bin.display()
    );
    let out = std::process::Command::new("timeout").args(["60", "sh", "-c", &script]).output().unwrap();
    let _ = std::fs::remove_dir(&cgroup);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("could not create map") && stderr.contains("kernel.flow_map_entries"), "{stderr}");
    assert!(!stderr.contains("needs root"), "{stderr}");
}

/// A deterministic stream of bytes for the configuration generator.
fn xorshift_bytes(mut state: u64, n: usize) -> Vec<u8> {
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect()
}

/// Generated configuration files (tests/src/configgen.rs, the config fuzz
/// target's generator): each either fails `check-config` with one log line,
/// or starts vxflow, takes a SIGHUP to another such file, and stops cleanly.
#[test]
#[ignore = "needs root: scripts/test.sh runs it"]
fn generated_configs_fail_on_one_line_or_start_and_reload_cleanly() {
    use arbitrary::Arbitrary as _;
    require_root();
    let (a, _b) = vxflow_testkit::topology::veth_pair("cfggen");
    let dir = vxflow_testkit::TempDir::new("cfggen");
    let bin = vxflow_testkit::probe::binary();
    let (mut valid, mut invalid) = (Vec::new(), 0);
    for seed in 1..=400u64 {
        let bytes = xorshift_bytes(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15), 512);
        let Ok(generated) = vxflow_testkit::configgen::GenConfig::arbitrary(&mut arbitrary::Unstructured::new(&bytes))
        else {
            continue;
        };
        let text = generated.render();
        let path = dir.join(&format!("{seed}.toml"));
        std::fs::write(&path, &text).unwrap();
        let out =
            a.command(&[bin.to_str().unwrap(), "check-config", "--quiet", path.to_str().unwrap()]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            valid.push(text);
        } else {
            invalid += 1;
            assert_eq!(out.status.code(), Some(1), "{text}\n{stderr}");
            assert_eq!(stderr.trim_end().lines().count(), 1, "not one line:\n{text}\n{stderr}");
            assert!(stderr.contains("vxflow failed"), "{stderr}");
        }
    }
    assert!(
        valid.len() >= 6 && invalid >= 100,
        "{} valid, {invalid} invalid: the generator lost its balance",
        valid.len()
    );
    let config = dir.join("vxflow.toml");
    for pair in valid.chunks(2).take(6) {
        std::fs::write(&config, &pair[0]).unwrap();
        let mut vxflow = Vxflow::start(&a, &["--config", config.to_str().unwrap()]);
        if let Some(next) = pair.get(1) {
            std::fs::write(&config, next).unwrap();
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(vxflow.pid(), libc::SIGHUP) };
            vxflow.wait_for_log("configuration reloaded", std::time::Duration::from_secs(15));
        }
        let done = vxflow.stop();
        assert!(done.stderr.contains("final counters"), "{}\n{}", pair[0], done.stderr);
        assert!(!done.stderr.contains("panicked"), "{}", done.stderr);
    }
}

/// Reloads that cannot be applied whole are refused whole, and the daemon
/// runs on under its old configuration: 40 collectors (more than the
/// datapath can leave out of accounting), timeouts that overflow a clock.
#[test]
#[ignore = "needs root: scripts/test.sh runs it"]
fn a_reload_that_cannot_apply_is_refused_whole() {
    require_root();
    let (a, _b) = vxflow_testkit::topology::veth_pair("refuse");
    let dir = vxflow_testkit::TempDir::new("refuse");
    let config = dir.join("vxflow.toml");
    let base = "interfaces = [\"v0\"]\n[kernel]\npoll_interval = \"100ms\"\n";
    let one = format!("{base}[[collector]]\naddress = \"10.9.0.2:4739\"\nprotocol = \"ipfix\"\n");
    std::fs::write(&config, &one).unwrap();
    let mut vxflow = Vxflow::start(&a, &["--config", config.to_str().unwrap()]);
    let mut forty = String::new();
    for port in 5000..5040 {
        let _ = writeln!(forty, "[[collector]]\naddress = \"10.9.0.2:{port}\"\nprotocol = \"ipfix\"");
    }
    let overflow = one.replace(
        "poll_interval = \"100ms\"",
        "poll_interval = \"100ms\"\n[cache]\ninactive_timeout = \"300000000000y\"",
    );
    for (i, bad) in [format!("{base}{forty}"), overflow].iter().enumerate() {
        std::fs::write(&config, bad).unwrap();
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(vxflow.pid(), libc::SIGHUP) };
        vxflow.wait_for_log_count("configuration rejected", i + 1, std::time::Duration::from_secs(10));
        assert!(vxflow.running(), "a rejected reload stopped vxflow");
    }
    let stats = vxflow.ctl(&["stats"]);
    assert_eq!(stats["stats"]["collectors"].as_array().map(Vec::len), Some(1), "{stats}");
    let done = vxflow.stop();
    assert!(!done.stderr.contains("cannot exclude"), "{}", done.stderr);
    assert!(done.stderr.contains("at most 32 collectors"), "{}", done.stderr);
    assert!(done.stderr.contains("cache.inactive_timeout"), "{}", done.stderr);
    // v0 carried the export, left out, and the absent collector's ICMP
    // port-unreachable answers, which are not export.
    assert!(done.counter("self_export_packets") > 0, "{}", done.stderr);
    assert!(done.records.iter().all(|r| r.protocol == "icmp"), "export was accounted: {:#?}", done.records);
}
