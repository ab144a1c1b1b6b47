//! Names in the records, from the `file` metadata source, on the Flannel
//! topology: both ends of each pod flow, and the nodes of its tunnel, named
//! by who held each address when the flow's packets were seen; through IP
//! reuse, the older flow keeps the old pod's name. In the JSON lines, and
//! in IPFIX to nfcapd (which reads every record, names or not) and to
//! pmacct's nfacctd (which shows the names through custom primitives).
//! Needs root.

use std::time::Duration;

use vxflow_testkit::{
    TempDir,
    collectors::{Capture, Nfacctd, Nfcapd},
    names::entry,
    probe::{Record, Vxflow},
    require_root,
    topology::{Flannel, Offloads, Options},
    traffic::udp_train,
    unique_prefix,
};

fn to_port(records: &[Record], port: u16) -> Vec<&Record> {
    records.iter().filter(|r| r.protocol == "udp" && r.dst_port == Some(port)).collect()
}

#[test]
#[ignore = "needs root: scripts/test.sh runs it"]
fn file_names_both_ends_and_nodes_through_ip_reuse() {
    require_root();
    let topo = Flannel::build(&unique_prefix("names"), Options::default());
    topo.set_offloads(Offloads::Off);
    let [n1, n2] = &topo.nodes;
    let (web, db) = (&n1.pods[0], &n2.pods[0]);
    let dir = TempDir::new("names");
    let (names, config) = (dir.join("names.toml"), dir.join("vxflow.toml"));
    let pod = |ns: &str, node: &str, workload: &str| {
        format!("namespace = \"{ns}\"\nnode = \"{node}\"\nworkload = \"{workload}\"\n")
    };
    let nodes = entry(n1.addr, "node-1", "node", "") + &entry(n2.addr, "node-2", "node", "");
    let web_entry = entry(web.addr, "web-1", "pod", &pod("shop", "node-1", "Deployment/web"));
    let with_db = |name: &str| {
        let db_entry = entry(db.addr, name, "pod", &pod("shop", "node-2", "StatefulSet/db"));
        format!("{nodes}{web_entry}{db_entry}")
    };
    std::fs::write(&names, with_db("db-0")).unwrap();
    let nfcapd = Nfcapd::start(&n1.ns, 9995);
    let capture = Capture::start(&n1.ns, "lo", "udp dst port 9995");
    let pmacct = Nfacctd::start_named(&n1.ns, 9996);
    let collectors = "[[collector]]\naddress = \"127.0.0.1:9995\"\nprotocol = \"ipfix\"\n\
                      [[collector]]\naddress = \"127.0.0.1:9996\"\nprotocol = \"ipfix\"\n";
    let body = format!(
        "interfaces = [\"eth0\"]\n[kernel]\npoll_interval = \"100ms\"\n[cache]\ninactive_timeout = \"60s\"\n[metadata]\nfile = \"{}\"\npod_metrics = true\npod_metrics_max = 2\n{collectors}",
        names.display()
    );
    std::fs::write(&config, body).unwrap();
    let mut vxflow = Vxflow::start(&n1.ns, &["--config", config.to_str().unwrap(), "--json", "-"]);
    vxflow.wait_for_log("metadata file read", Duration::from_secs(5));
    assert_eq!(udp_train(&web.ns, &db.ns, db.addr, 9601, 40, 100), 40);
    std::thread::sleep(Duration::from_millis(300));
    // db-0 is deleted and its address given to a new pod, db-1.
    std::fs::write(&names, with_db("db-1")).unwrap();
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(vxflow.pid(), libc::SIGHUP) };
    vxflow.wait_for_log_count("metadata file read", 2, Duration::from_secs(5));
    assert_eq!(udp_train(&web.ns, &db.ns, db.addr, 9602, 40, 100), 40);
    std::thread::sleep(Duration::from_millis(300));
    // Per-pod metrics, from the records (expired now), two pods at most:
    // web-1 and db-0 have series of their own; db-1, the third, counts
    // under other.
    let expired = vxflow.ctl(&["expire-all"]);
    assert!(expired["expired"]["records"].as_u64().is_some_and(|n| n > 0), "{expired}");
    let (status, body) = vxflow_testkit::netns::http_get(&n1.ns, "127.0.0.1:9739".parse().unwrap(), "/metrics");
    assert_eq!(status, 200, "{body}");
    let m = vxflow_testkit::metrics::Scrape::parse(&body);
    let packets = |ns: &str, pod: &str, dir: &str| {
        m.value("vxflow_pod_packets_total", &[("namespace", ns), ("pod", pod), ("direction", dir)])
    };
    assert_eq!(packets("shop", "web-1", "sent"), 80);
    assert_eq!(packets("shop", "db-0", "received"), 40);
    assert_eq!(packets("other", "other", "received"), 40, "db-1, past the bound");
    // `vxflow ctl pods`: db's address held by db-0, then by db-1.
    let pods = vxflow.ctl(&["pods"]);
    let holders: Vec<(String, bool)> = pods["pods"]["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["ip"] == db.addr.to_string())
        .map(|p| (p["name"].as_str().unwrap().to_owned(), p["until"].is_null()))
        .collect();
    assert_eq!(holders, [("db-0".to_owned(), false), ("db-1".to_owned(), true)], "{pods}");
    let done = vxflow.stop();
    let collected = nfcapd.stop();
    let pcap = capture.stop();
    let rows = pmacct.stop_rows();

    for (port, db_name) in [(9601, "db-0"), (9602, "db-1")] {
        let records = to_port(&done.records, port);
        assert_eq!(records.iter().map(|r| r.packets).sum::<u64>(), 40, "{records:#?}");
        for r in records {
            let ends = (r.src_pod.as_deref(), r.dst_pod.as_deref());
            assert_eq!(ends, (Some("web-1"), Some(db_name)), "port {port}: {r:#?}");
            assert_eq!((r.src_namespace.as_deref(), r.dst_namespace.as_deref()), (Some("shop"), Some("shop")));
            assert_eq!((r.src_node.as_deref(), r.dst_node.as_deref()), (Some("node-1"), Some("node-2")));
            assert_eq!(
                (r.src_workload.as_deref(), r.dst_workload.as_deref()),
                (Some("Deployment/web"), Some("StatefulSet/db"))
            );
            assert_eq!(r.tunnel.as_deref(), Some("vxlan"));
            assert_eq!((r.outer_src_node.as_deref(), r.outer_dst_node.as_deref()), (Some("node-1"), Some("node-2")));
        }
    }

    // nfcapd reads every record: the names' elements do not trouble it.
    assert_eq!(collected.sequence_failures, 0);
    let mut from_nfdump = collected.flows;
    from_nfdump.sort();
    assert_eq!(from_nfdump, done.nfdump_flows(), "nfdump and the JSON records disagree");
    check_tshark_names(pcap.path());
    check_pmacct_names(&rows);
}

/// tshark decodes every message, the named template's included, with
/// nothing malformed; it knows no Antrea elements and shows their bytes,
/// which spell the names.
fn check_tshark_names(pcap: &str) {
    let out = vxflow_testkit::cmd::run(&["tshark", "-r", pcap, "-V", "-d", "udp.port==9995,cflow"]);
    for bad in ["Malformed", "Expert Info (Error"] {
        assert!(!out.contains(bad), "tshark reports {bad}");
    }
    assert!(out.contains("Template Id: 1026"), "no named VXLAN record (template 1026) in the capture");
    let hex = out.replace(' ', ":");
    for name in ["web-1", "db-0", "db-1", "shop", "node-1", "node-2"] {
        let bytes: Vec<String> = name.bytes().map(|b| format!("{b:02x}")).collect();
        assert!(hex.contains(&bytes.join(":")), "tshark does not show {name}");
    }
}

/// pmacct shows the names through its custom primitives, and counts each
/// flow's 40 packets.
fn check_pmacct_names(rows: &[std::collections::BTreeMap<String, String>]) {
    for row in rows {
        let col = |c: &str| row.get(c).map_or("-", String::as_str);
        eprintln!(
            "pmacct: {} {} -> {} {} {} src_pod_ns={} src_pod={} dst_pod_ns={} dst_pod={} src_node={} dst_node={} packets={} bytes={}",
            col("SRC_IP"),
            col("SRC_PORT"),
            col("DST_IP"),
            col("DST_PORT"),
            col("PROTOCOL"),
            col("src_pod_ns"),
            col("src_pod"),
            col("dst_pod_ns"),
            col("dst_pod"),
            col("src_node"),
            col("dst_node"),
            col("PACKETS"),
            col("BYTES")
        );
    }
    for (port, db_name) in [("9601", "db-0"), ("9602", "db-1")] {
        let row = rows
            .iter()
            .find(|r| r.get("DST_PORT").map(String::as_str) == Some(port))
            .unwrap_or_else(|| panic!("no pmacct row to {port}: {rows:#?}"));
        let col = |c: &str| row.get(c).map(String::as_str);
        assert_eq!((col("src_pod"), col("dst_pod")), (Some("web-1"), Some(db_name)), "{row:?}");
        assert_eq!((col("src_pod_ns"), col("dst_pod_ns")), (Some("shop"), Some("shop")), "{row:?}");
        assert_eq!((col("src_node"), col("dst_node")), (Some("node-1"), Some("node-2")), "{row:?}");
        let packets: u64 = rows
            .iter()
            .filter(|r| r.get("DST_PORT").map(String::as_str) == Some(port))
            .map(|r| r["PACKETS"].parse::<u64>().unwrap())
            .sum();
        assert_eq!(packets, 40, "pmacct's count to {port}");
    }
}

/// A pod as the API server lists it (the fields the source reads, and a
/// few it skips), ready since `ready`.
fn api_pod(
    name: &str,
    uid: &str,
    node: &str,
    ip: std::net::IpAddr,
    owner: (&str, &str),
    ready: &str,
) -> serde_json::Value {
    let mut labels = serde_json::json!({"app": name.split('-').next().unwrap()});
    if owner.0 == "ReplicaSet" {
        labels["pod-template-hash"] = owner.1.rsplit('-').next().unwrap().into();
    }
    serde_json::json!({
        "kind": "Pod", "apiVersion": "v1",
        "metadata": {"name": name, "namespace": "shop", "uid": uid, "resourceVersion": "1",
                     "creationTimestamp": ready, "labels": labels,
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": owner.0, "name": owner.1, "uid": "o",
                                          "controller": true}]},
        "spec": {"nodeName": node, "containers": [{"name": "main", "image": "app"}]},
        "status": {"phase": "Running", "podIP": ip.to_string(), "podIPs": [{"ip": ip.to_string()}],
                   "conditions": [{"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": ready}]}
    })
}

fn with_version(mut object: serde_json::Value, rv: u32) -> serde_json::Value {
    object["metadata"]["resourceVersion"] = rv.to_string().into();
    object
}

/// A pod's /24, as its node's pod CIDR.
fn cidr(pod: std::net::IpAddr) -> String {
    format!("{}.0/24", pod.to_string().rsplit_once('.').unwrap().0)
}

/// A `NodeList` of `(name, address, a pod's address)`: each node's pod CIDR
/// is its pod's /24.
fn api_nodes(nodes: &[(&str, std::net::IpAddr, std::net::IpAddr)], created: &str) -> serde_json::Value {
    let node = |&(name, ip, pod): &(&str, std::net::IpAddr, std::net::IpAddr)| {
        serde_json::json!({"metadata": {"name": name, "uid": name, "resourceVersion": "5", "creationTimestamp": created},
                           "spec": {"podCIDRs": [cidr(pod)]},
                           "status": {"addresses": [{"type": "InternalIP", "address": ip.to_string()}]}})
    };
    serde_json::json!({"kind": "NodeList", "apiVersion": "v1", "metadata": {"resourceVersion": "10"},
                       "items": nodes.iter().map(node).collect::<Vec<_>>()})
}

/// The named networks `vxflow ctl pods` lists: network, name, source.
fn networks(vxflow: &Vxflow) -> Vec<(String, String, String)> {
    vxflow.ctl(&["pods"])["pods"]["networks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let s = |k: &str| n[k].as_str().unwrap().to_owned();
            (s("network"), s("name"), s("source"))
        })
        .collect()
}

/// The `kubernetes` source end to end: `vxflow run` on node-1 watches the
/// test kit's API server (in node-1's namespace) through a kubeconfig, and
/// names both pods and both nodes in every record; db-0 terminates and its
/// address goes to db-1 through watch events, and each flow keeps its own;
/// `vxflow ctl pods` lists both nodes' pod CIDRs.
#[test]
#[ignore = "needs root: scripts/test.sh runs it"]
fn kubernetes_names_both_ends_and_nodes_through_ip_reuse() {
    use vxflow_testkit::apiserver::{ApiServer, format_time};
    require_root();
    let topo = Flannel::build(&unique_prefix("kapi"), Options::default());
    topo.set_offloads(Offloads::Off);
    let [n1, n2] = &topo.nodes;
    let (web, db) = (&n1.pods[0], &n2.pods[0]);
    let dir = TempDir::new("kapi");
    let api = ApiServer::start_in(&n1.ns);
    let kubeconfig = dir.join("kubeconfig");
    api.write_kubeconfig(&kubeconfig, "node-token");
    let secs = || {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        i64::try_from(t).unwrap()
    };
    let now = || format_time(secs());
    let earlier = format_time(secs() - 30);
    let web_pod =
        api_pod("web-7c9d8b6f5-k2x9q", "uid-web", "node-1", web.addr, ("ReplicaSet", "web-7c9d8b6f5"), &earlier);
    let db0 = api_pod("db-0", "uid-db-0", "node-2", db.addr, ("StatefulSet", "db"), &earlier);
    let pods = serde_json::json!({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "10"},
                                  "items": [web_pod, db0]});
    let nodes = api_nodes(&[("node-1", n1.addr, web.addr), ("node-2", n2.addr, db.addr)], &earlier);
    api.list("pods", &pods.to_string());
    api.list("nodes", &nodes.to_string());
    let watch = api.watch("pods");
    let _nodes_watch = api.watch("nodes");

    let config = dir.join("vxflow.toml");
    let body = format!(
        "interfaces = [\"eth0\"]\n[kernel]\npoll_interval = \"100ms\"\n[cache]\ninactive_timeout = \"60s\"\n\
         [metadata.kubernetes]\nkubeconfig = \"{}\"\n",
        kubeconfig.display()
    );
    std::fs::write(&config, body).unwrap();
    let mut vxflow = Vxflow::start(&n1.ns, &["--config", config.to_str().unwrap(), "--json", "-"]);
    vxflow.wait_for_log_count("listed from the Kubernetes API", 2, Duration::from_secs(15));
    let holders = |vxflow: &Vxflow| -> Vec<(String, bool)> {
        let pods = vxflow.ctl(&["pods"]);
        pods["pods"]["addresses"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["ip"] == db.addr.to_string() && p["source"] == "kubernetes")
            .map(|p| (p["name"].as_str().unwrap().to_owned(), p["until"].is_null()))
            .collect()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while holders(&vxflow).is_empty() {
        assert!(std::time::Instant::now() < deadline, "db-0 never reached the map");
        std::thread::sleep(Duration::from_millis(50));
    }
    let kubernetes = |net: String, name: &str| (net, name.to_owned(), "kubernetes".to_owned());
    assert_eq!(networks(&vxflow), [kubernetes(cidr(web.addr), "node-1"), kubernetes(cidr(db.addr), "node-2")]);
    assert_eq!(udp_train(&web.ns, &db.ns, db.addr, 9601, 40, 100), 40);
    std::thread::sleep(Duration::from_millis(300));

    // db-0 terminates; db-1 is given its address; db-0 goes.
    let mut terminating =
        with_version(api_pod("db-0", "uid-db-0", "node-2", db.addr, ("StatefulSet", "db"), &earlier), 11);
    terminating["metadata"]["deletionTimestamp"] = now().into();
    watch.send(&serde_json::json!({"type": "MODIFIED", "object": terminating}).to_string());
    let db1 = with_version(api_pod("db-1", "uid-db-1", "node-2", db.addr, ("StatefulSet", "db"), &now()), 12);
    watch.send(&serde_json::json!({"type": "ADDED", "object": db1}).to_string());
    watch.send(&serde_json::json!({"type": "DELETED", "object": with_version(terminating, 13)}).to_string());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while holders(&vxflow) != [("db-0".to_owned(), false), ("db-1".to_owned(), true)] {
        assert!(std::time::Instant::now() < deadline, "the handover never reached the map: {:?}", holders(&vxflow));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(udp_train(&web.ns, &db.ns, db.addr, 9602, 40, 100), 40);
    std::thread::sleep(Duration::from_millis(300));
    let done = vxflow.stop();

    for (port, db_name) in [(9601, "db-0"), (9602, "db-1")] {
        let records = to_port(&done.records, port);
        assert_eq!(records.iter().map(|r| r.packets).sum::<u64>(), 40, "{records:#?}");
        for r in records {
            assert_eq!(
                (r.src_pod.as_deref(), r.dst_pod.as_deref()),
                (Some("web-7c9d8b6f5-k2x9q"), Some(db_name)),
                "{r:#?}"
            );
            assert_eq!((r.src_namespace.as_deref(), r.dst_namespace.as_deref()), (Some("shop"), Some("shop")));
            assert_eq!((r.src_node.as_deref(), r.dst_node.as_deref()), (Some("node-1"), Some("node-2")));
            assert_eq!(
                (r.src_workload.as_deref(), r.dst_workload.as_deref()),
                (Some("Deployment/web"), Some("StatefulSet/db"))
            );
            assert_eq!((r.outer_src_node.as_deref(), r.outer_dst_node.as_deref()), (Some("node-1"), Some("node-2")));
        }
    }
    assert!(!done.stderr.contains("not named while both do"), "a conflict was logged:\n{}", done.stderr);
    let requests = api.requests();
    assert!(requests.iter().all(|r| r.headers.get("authorization").map(String::as_str) == Some("Bearer node-token")));
    assert_eq!(
        requests.iter().filter(|r| r.resource == "pods" && !r.is_watch()).count(),
        1,
        "one list, then the watch"
    );
}
