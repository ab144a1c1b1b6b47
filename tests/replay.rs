//! `vxflow replay` against `vxflow run`: on the Flannel topology, tcpdump
//! captures node 1's `eth0` while `vxflow run` watches it live; pods on the
//! two nodes send UDP both ways and ping across the VXLAN overlay. The
//! capture replayed gives the same records: tuples, VNI, outer tuple,
//! packets, bytes, at the packets' own times; nfcapd, sent the replay's
//! IPFIX, holds them too. Needs root.

use std::{collections::BTreeMap, time::Duration};

use vxflow_testkit::{
    TempDir,
    apiserver::parse_time,
    collectors::{Capture, Nfcapd},
    names::entry,
    probe::{Record, Vxflow, binary, nfdump_flows},
    require_root,
    topology::{Flannel, Offloads, Options},
    traffic, unique_prefix,
};

/// Milliseconds since the epoch of a record's `2026-11-30T05:00:00.123Z`.
fn ms(s: &str) -> i64 {
    let secs = parse_time(&format!("{}Z", &s[..19])).unwrap_or_else(|| panic!("{s}"));
    secs * 1000 + s[20..23].parse::<i64>().unwrap()
}

/// What must be equal between a live and a replayed record.
type Shape = (String, String, Option<u16>, Option<u16>, u8, Option<u32>, Option<String>, Option<String>);

fn shape(r: &Record) -> Shape {
    (
        r.src_addr.to_string(),
        r.dst_addr.to_string(),
        r.src_port,
        r.dst_port,
        r.protocol_number,
        r.tunnel_id,
        r.outer_src_addr.map(|a| a.to_string()),
        r.outer_dst_addr.map(|a| a.to_string()),
    )
}

/// Who a record names: both pods and the tunnel's nodes.
type Names = [Option<String>; 4];

fn names(r: &Record) -> Names {
    [r.src_pod.clone(), r.dst_pod.clone(), r.outer_src_node.clone(), r.outer_dst_node.clone()]
}

/// The names each flow's records give.
type NamesByFlow = BTreeMap<Shape, std::collections::BTreeSet<Names>>;

/// `records`' names, by flow.
fn names_by_flow(records: &[Record]) -> NamesByFlow {
    let mut out = NamesByFlow::new();
    for r in records {
        out.entry(shape(r)).or_default().insert(names(r));
    }
    out
}

/// A flow's packets, bytes, outer bytes, first start and last end (ms).
type Counts = (u64, u64, Option<u64>, i64, i64);

/// Records by what identifies their flow, each with its counts and times.
fn by_flow(records: &[Record]) -> BTreeMap<Shape, Counts> {
    let mut out = BTreeMap::new();
    for r in records {
        let e = out.entry(shape(r)).or_insert((0, 0, None, i64::MAX, i64::MIN));
        e.0 += r.packets;
        e.1 += r.bytes;
        e.2 = match (e.2, r.outer_bytes) {
            (None, b) | (b, None) => b,
            (Some(a), Some(b)) => Some(a + b),
        };
        e.3 = e.3.min(ms(&r.start));
        e.4 = e.4.max(ms(&r.end));
    }
    out
}

#[test]
#[ignore = "needs root: scripts/test.sh runs it"]
fn a_capture_replays_to_the_records_run_made_live() {
    require_root();
    let topo = Flannel::build(&unique_prefix("replay"), Options::default());
    // Off: a capture holds what crossed as it crossed; with offloads on it
    // would hold super-packets, whose segments only the kernel knows.
    topo.set_offloads(Offloads::Off);
    let [n1, n2] = &topo.nodes;
    let (a, b) = (&n1.pods[0], &n2.pods[0]);
    traffic::ping(&a.ns, b.addr, 2, 56);
    // Three captures at once, by the tools operators use: tcpdump's pcap of
    // eth0, dumpcap's pcapng of eth0, and tcpdump's Linux cooked v2 of every
    // interface ("any": the records of eth0's ifindex are compared; its
    // buffer raised, as five interfaces' bursts overflowed the default 2 MB
    // and the kernel dropped packets from the capture).
    let capture = Capture::start(&n1.ns, "eth0", "");
    let dir = TempDir::new("replay");
    let (ng_path, any_path) = (dir.join("eth0.pcapng"), dir.join("any.pcap"));
    let pcapng = Capture::start_tool(
        &n1.ns,
        &["dumpcap", "-i", "eth0", "-w", ng_path.to_str().unwrap()],
        ng_path.clone(),
        "Capturing on",
    );
    let tcpdump_any = ["tcpdump", "-i", "any", "-y", "LINUX_SLL2", "-B", "16384", "--immediate-mode", "-U", "-n", "-w"];
    let any = Capture::start_tool(
        &n1.ns,
        &[&tcpdump_any[..], &[any_path.to_str().unwrap()]].concat(),
        any_path.clone(),
        "listening on",
    );
    // Both runs name the pods and nodes from one metadata file: live from
    // the config, the replay from --metadata-file (and the config, below).
    let (names_file, config) = write_names(&dir, &topo);
    let config = config.to_str().unwrap();
    let mut live =
        Vxflow::start(&n1.ns, &["-i", "eth0", "--poll-interval", "100ms", "--json", "-", "--config", config]);
    live.wait_for_log("datapath clock", Duration::from_secs(5));
    live.wait_for_log("metadata file read", Duration::from_secs(5));
    assert_eq!(traffic::udp_train(&a.ns, &b.ns, b.addr, 9701, 50, 300), 50);
    assert_eq!(traffic::udp_train(&b.ns, &a.ns, a.addr, 9702, 30, 900), 30);
    traffic::ping(&a.ns, b.addr, 20, 120);
    std::thread::sleep(Duration::from_millis(300));
    let done = live.stop();
    let (pcap, pcapng, any) = (capture.stop(), pcapng.stop(), any.stop());
    let tick_ms = tick_ms(&done.stderr);

    // Replayed into nfcapd (IPFIX over UDP) and JSON at once.
    let json = dir.join("replayed.json");
    let nfcapd = Nfcapd::start(&n1.ns, 9995);
    let out = n1
        .ns
        .command(&[
            binary().to_str().unwrap(),
            "replay",
            pcap.path(),
            "--collector",
            "ipfix://127.0.0.1:9995",
            "--json",
            json.to_str().unwrap(),
            "--poll-interval",
            "100ms",
            "--metadata-file",
            names_file.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let collected = nfcapd.stop();
    let replayed: Vec<Record> =
        std::fs::read_to_string(&json).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(collected.sequence_failures, 0);
    let mut from_nfdump = collected.flows;
    from_nfdump.sort();
    assert_eq!(from_nfdump, nfdump_flows(&replayed), "nfdump and the replayed JSON disagree");

    let (live, again) = (by_flow(&done.records), by_flow(&replayed));
    // The pods' traffic, tunnelled: every flow of it in both.
    let tunnelled: Vec<&Shape> = live.keys().filter(|s| s.5.is_some()).collect();
    assert!(tunnelled.len() >= 4, "{live:#?}");
    let mut widest = 0;
    for s in live.keys() {
        let (l, r) = (live[s], again.get(s).copied().unwrap_or_else(|| panic!("{s:?} not replayed: {again:#?}")));
        assert_eq!((l.0, l.1, l.2), (r.0, r.1, r.2), "{s:?}: live (packets, bytes, outer) against replayed");
        // Live times are the start of the datapath's tick (at most one tick
        // before the packet); tcpdump's are the packet's. Both in ms.
        for (what, live_ms, replay_ms) in [("start", l.3, r.3), ("end", l.4, r.4)] {
            assert!(
                (replay_ms - tick_ms - 1..=replay_ms + 1).contains(&live_ms),
                "{s:?}: {what} live {live_ms} against replayed {replay_ms} (tick {tick_ms} ms)"
            );
            widest = widest.max((replay_ms - live_ms).abs());
        }
    }
    let live_names = names_by_flow(&done.records);
    same_names(&tunnelled, &live_names, &names_by_flow(&replayed));
    // Nothing the live run did not see, but for packets that crossed before
    // it attached or after it detached (the capture ran longer).
    let extra: Vec<_> = again.keys().filter(|s| !live.contains_key(*s)).collect();
    assert!(extra.iter().all(|s| s.5.is_none()), "replayed tunnelled flows the live run did not see: {extra:#?}");
    assert!(stderr.contains("0 backwards in time"), "{stderr}");
    // dumpcap's pcapng and tcpdump's cooked capture give the same.
    let eth0 = n1.ns.exec(&["cat", "/sys/class/net/eth0/ifindex"]).trim().to_owned();
    // dumpcap names the interface (if_name): records say file:eth0.
    same_as_live(&dir, pcapng.path(), &format!("{}:eth0", pcapng.path()), &live, tick_ms, (config, &live_names));
    same_as_live(&dir, any.path(), &format!("{}#{eth0}", any.path()), &live, tick_ms, (config, &live_names));
    eprintln!(
        "{} flows equal live and replayed; times at most {widest} ms apart (tick {tick_ms} ms); replay: {}",
        live.len(),
        stderr.trim()
    );
}

/// A metadata file naming the topology's nodes and first pods (`a`, `b`),
/// and a config whose `[metadata] file` it is.
fn write_names(dir: &TempDir, topo: &Flannel) -> (std::path::PathBuf, std::path::PathBuf) {
    let [n1, n2] = &topo.nodes;
    let (names, config) = (dir.join("names.toml"), dir.join("vxflow.toml"));
    let owners = [(n1.addr, "node-1", "node"), (n2.addr, "node-2", "node")]
        .into_iter()
        .chain([(n1.pods[0].addr, "a", "pod"), (n2.pods[0].addr, "b", "pod")]);
    std::fs::write(&names, owners.map(|(addr, name, kind)| entry(addr, name, kind, "")).collect::<String>()).unwrap();
    std::fs::write(&config, format!("[metadata]\nfile = \"{}\"\n", names.display())).unwrap();
    (names, config)
}

/// The pods' tunnelled flows name both pods and both nodes, live, and the
/// replay names each flow as the live run did.
fn same_names(tunnelled: &[&Shape], live: &NamesByFlow, replayed: &NamesByFlow) {
    let want: Names = [Some("a"), Some("b"), Some("node-1"), Some("node-2")].map(|n| n.map(str::to_owned));
    let swapped: Names = [Some("b"), Some("a"), Some("node-2"), Some("node-1")].map(|n| n.map(str::to_owned));
    for s in tunnelled {
        let got = &live[*s];
        assert!(got.iter().all(|n| *n == want || *n == swapped), "{s:?} live names {got:?}");
        assert_eq!(replayed.get(*s), Some(got), "{s:?}: names live and replayed");
    }
}

/// Replays `file` (each interface its own records) under `config` and
/// checks the records of `interface` against the live ones: counts and
/// names equal, starts within the tick.
fn same_as_live(
    dir: &TempDir,
    file: &str,
    interface: &str,
    live: &BTreeMap<Shape, Counts>,
    tick_ms: i64,
    (config, live_names): (&str, &NamesByFlow),
) {
    let json = dir.join("other.json");
    let out = std::process::Command::new(binary())
        .args(["replay", file, "--per-interface-records", "--json", json.to_str().unwrap(), "--poll-interval", "100ms"])
        .args(["--config", config])
        .output()
        .unwrap();
    assert!(out.status.success(), "{file}: {}", String::from_utf8_lossy(&out.stderr));
    let other: Vec<Record> = std::fs::read_to_string(&json)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Record>(l).unwrap())
        .filter(|r| r.interface == interface)
        .collect();
    let other_names = names_by_flow(&other);
    let other = by_flow(&other);
    for (s, l) in live {
        assert_eq!(other_names.get(s), live_names.get(s), "{file}: {s:?} names");
        let o = other.get(s).copied().unwrap_or_else(|| panic!("{file}: {s:?} missing: {other:#?}"));
        assert_eq!((l.0, l.1, l.2), (o.0, o.1, o.2), "{file}: {s:?}");
        assert!((o.3 - tick_ms - 1..=o.3 + 1).contains(&l.3), "{file}: {s:?} start {} against {}", l.3, o.3);
    }
}

/// The datapath's tick in whole milliseconds (rounded up), from vxflow's log.
fn tick_ms(stderr: &str) -> i64 {
    stderr
        .split("tick_ns=")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|t| t.parse::<i64>().ok())
        .map(|ns| (ns + 999_999) / 1_000_000)
        .expect("the datapath clock's tick")
}
