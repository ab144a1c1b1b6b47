//! The `kubernetes` metadata source against API server responses written
//! in the server's own shapes (`fixtures/kubernetes/`: lists, watch streams
//! with resource versions, a bookmark, `410 Gone`, a relist, a pod deleted
//! and its address reused),
//! served over HTTP by the test kit's stand-in API server and read through
//! kube's client and watcher, as in a cluster: the test only queues answers
//! and reads the names the map gives. No API server can run on this
//! machine; this is the closest real path.
//!
//! The recording's times are moved so that its 04:00:50 is now.

use std::{
    net::IpAddr,
    time::{Duration, Instant, SystemTime},
};

use vxflow::{
    clock::{WallClock, kernel_ns},
    metadata::{Metadata, MetadataConfig, Resolved, kubernetes::KubernetesConfig},
};
use vxflow_testkit::{
    TempDir,
    apiserver::{ApiServer, Request, parse_time, shift_times, watch_error},
};

const RECORDED_NOW: &str = "2026-11-30T04:00:50Z";

fn fixture(name: &str) -> String {
    let path = format!("{}/../fixtures/kubernetes/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The recording, replayed now.
struct Replay {
    shift: i64,
    wall: WallClock,
}

impl Replay {
    fn new() -> Self {
        let now = i64::try_from(SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs()).unwrap();
        Self { shift: now - parse_time(RECORDED_NOW).unwrap(), wall: WallClock::now() }
    }

    fn fixture(&self, name: &str) -> String {
        shift_times(&fixture(name), self.shift)
    }

    /// The kernel time of a recorded moment.
    fn at(&self, recorded: &str) -> u64 {
        let unix = parse_time(recorded).unwrap() + self.shift;
        self.wall.to_kernel_ns(i128::from(unix) * 1_000_000_000)
    }
}

/// `kind/namespace/name` of who held `ip` at `at`.
fn who(md: &Metadata, ip: &str, at: u64) -> String {
    let ip: IpAddr = ip.parse().unwrap();
    match md.map().resolve(&ip, at) {
        Resolved::Owner(o) => {
            format!("{}/{}/{}", o.kind.name(), o.namespace.as_deref().unwrap_or("-"), o.name)
        }
        Resolved::Unknown => "unknown".into(),
        Resolved::Conflict => "conflict".into(),
    }
}

/// Refreshes the map until `done` holds, for at most 20 s.
async fn until(md: &mut Metadata, what: &str, done: impl Fn(&Metadata) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        md.refresh(kernel_ns(), false);
        if done(md) {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The requests for `resource` once there are `n`, or after 20 s, while
/// the runtime runs the watch.
async fn requests(api: &ApiServer, resource: &str, n: usize) -> Vec<Request> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let of: Vec<Request> = api.requests().into_iter().filter(|r| r.resource == resource).collect();
        if of.len() >= n || Instant::now() > deadline {
            return of;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

#[test]
fn the_watcher_follows_lists_watches_bookmarks_and_relists_after_410() {
    let dir = TempDir::new("kube");
    let api = ApiServer::start();
    let kubeconfig = dir.join("kubeconfig");
    api.write_kubeconfig(&kubeconfig, "test-token");
    let r = Replay::new();

    // Nodes: the first list is refused (RBAC not yet granted), the next answered.
    api.list_fails("nodes", 403, "Forbidden");
    api.list("nodes", &r.fixture("nodes-list.json"));
    let _nodes = api.watch("nodes");
    api.list("pods", &r.fixture("pods-list.json"));
    let first = api.watch("pods");

    let config = MetadataConfig {
        kubernetes: Some(KubernetesConfig {
            kubeconfig: Some(kubeconfig),
            field_selector: Some("spec.nodeName!=node-9".into()),
            label_selector: Some("tier!=test".into()),
            nodes: true,
        }),
        ..MetadataConfig::default()
    };
    runtime().block_on(async {
        let mut md = Metadata::new(&config);
        let during = r.at("2026-11-30T04:00:20Z");

        // The lists: pods by their addresses, nodes by theirs and by their pod CIDRs.
        until(&mut md, "the first lists", |md| {
            who(md, "10.244.1.5", during) == "pod/shop/web-5d8f7c9b6-x2k9p"
                && who(md, "203.0.113.12", kernel_ns()) == "node/-/node-2"
        })
        .await;
        assert_eq!(who(&md, "10.244.2.7", during), "pod/shop/db-0");
        assert_eq!(who(&md, "192.168.56.11", during), "node/-/node-1", "kube-proxy is host-network: its node");
        assert_eq!(who(&md, "10.244.2.9", during), "node/-/node-2", "a Succeeded Job pod holds no address");
        assert_eq!(who(&md, "10.244.1.1", during), "node/-/node-1", "an address in node-1's pod CIDR");
        assert_eq!(who(&md, "10.245.0.1", during), "unknown");
        let web = match md.map().resolve(&"10.244.1.5".parse().unwrap(), during) {
            Resolved::Owner(o) => o,
            other => panic!("{other:?}"),
        };
        let workload = web.workload.as_ref().map(|w| format!("{}/{}", w.kind, w.name));
        assert_eq!(workload.as_deref(), Some("Deployment/web"));
        assert_eq!(web.node.as_deref(), Some("node-1"));
        assert!(web.labels.iter().any(|(k, v)| &**k == "app" && &**v == "web"));

        // A watch that ends after a bookmark: the next resumes from it.
        first.send_lines(&r.fixture("pods-watch-1.jsonl"));
        first.end();
        let second = api.watch("pods");
        let pods = requests(&api, "pods", 3).await;
        assert_eq!(pods.len(), 3, "list, watch, watch again: {pods:#?}");
        assert_eq!(pods[2].query.get("resourceVersion").map(String::as_str), Some("1050"), "resumed at the bookmark");

        // Lines that are not events (garbage, a wrong type) are skipped;
        // then web-1 terminates, web-2 is given its address, web-1 goes.
        second.send("this is not a watch event");
        second.send(r#"{"type":"ADDED","object":{"kind":"Pod","apiVersion":"v1","metadata":{"uid":7}}}"#);
        second.send_lines(&r.fixture("pods-watch-2.jsonl"));
        until(&mut md, "the address handed over", |md| {
            who(md, "10.244.1.5", kernel_ns()) == "pod/shop/web-5d8f7c9b6-m4n8b"
                && md.map().entries().filter(|e| e.0 == "10.244.1.5".parse::<IpAddr>().unwrap()).count() == 2
                && md.map().entries().any(|e| e.0 == "10.244.1.5".parse::<IpAddr>().unwrap() && e.4.is_some())
        })
        .await;
        assert_eq!(md.map().conflicts(), 0, "a terminating pod gives its address up");

        // The watch's resource version expires: 410 Gone, then a relist,
        // which no longer has db-0 (deleted while the watch was away).
        second.send(&watch_error(410, "Expired", "too old resource version: 1072 (2000)"));
        api.list("pods", &r.fixture("pods-relist.json"));
        let _third = api.watch("pods");
        until(&mut md, "the relist", |md| who(md, "10.244.2.7", kernel_ns()) == "node/-/node-2").await;

        // Each flow keeps the pod that held the address when it was seen.
        assert_eq!(who(&md, "10.244.1.5", r.at("2026-11-30T04:00:20Z")), "pod/shop/web-5d8f7c9b6-x2k9p");
        assert_eq!(who(&md, "10.244.1.5", r.at("2026-11-30T04:00:45Z")), "pod/shop/web-5d8f7c9b6-m4n8b");
        assert_eq!(who(&md, "10.244.1.5", kernel_ns()), "pod/shop/web-5d8f7c9b6-m4n8b");
        assert_eq!(who(&md, "10.244.2.7", during), "pod/shop/db-0", "a deleted pod still names earlier flows");
        assert_eq!(md.map().conflicts(), 0);

        let pods = requests(&api, "pods", 5).await;
        let shape: Vec<(bool, Option<&str>)> =
            pods.iter().map(|p| (p.is_watch(), p.query.get("resourceVersion").map(String::as_str))).collect();
        assert_eq!(
            shape,
            [(false, None), (true, Some("1000")), (true, Some("1050")), (false, None), (true, Some("2000"))],
            "list, watch, resume at the bookmark, relist after 410, watch from the relist"
        );
        for p in &pods {
            assert_eq!(p.path, "/api/v1/pods", "cluster-wide");
            assert_eq!(p.query.get("fieldSelector").map(String::as_str), Some("spec.nodeName!=node-9"));
            assert_eq!(p.query.get("labelSelector").map(String::as_str), Some("tier!=test"));
            assert_eq!(p.headers.get("authorization").map(String::as_str), Some("Bearer test-token"));
        }
        let watches = pods.iter().filter(|p| p.is_watch());
        assert!(watches.into_iter().all(|p| p.query.get("allowWatchBookmarks").is_some_and(|b| b == "true")));
        let nodes = requests(&api, "nodes", 3).await;
        let shape: Vec<bool> = nodes.iter().map(Request::is_watch).collect();
        assert_eq!(shape, [false, false, true], "refused, listed again after backoff, watched");
        assert!(nodes.iter().all(|n| !n.query.contains_key("fieldSelector")), "the pod selector is the pods' only");
    });
}

/// No API server (nothing listens), or no usable kubeconfig (garbage, a
/// FIFO, a directory): the source retries in its task and the map answers
/// at once, naming nothing; the probe is never held up.
#[test]
fn an_absent_api_server_or_a_bad_kubeconfig_holds_nothing_up() {
    let dir = TempDir::new("kubebad");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let unreachable = dir.join("unreachable");
    std::fs::write(
        &unreachable,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: x\n  cluster:\n    server: http://127.0.0.1:{port}\n\
             contexts:\n- name: x\n  context:\n    cluster: x\n    user: x\ncurrent-context: x\nusers:\n- name: x\n  user: {{}}\n"
        ),
    )
    .unwrap();
    let garbage = dir.join("garbage");
    std::fs::write(&garbage, "clusters: [[[\n\0\u{1}").unwrap();
    let fifo = dir.join("fifo");
    vxflow_testkit::mkfifo(&fifo);
    for path in [unreachable, garbage, fifo, dir.join("missing"), dir.join("")] {
        let config = MetadataConfig {
            kubernetes: Some(KubernetesConfig {
                kubeconfig: Some(path.clone()),
                nodes: true,
                ..KubernetesConfig::default()
            }),
            ..MetadataConfig::default()
        };
        runtime().block_on(async {
            let mut md = Metadata::new(&config);
            let started = Instant::now();
            for _ in 0..50 {
                md.refresh(kernel_ns(), false);
                assert_eq!(who(&md, "10.244.1.5", kernel_ns()), "unknown");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            // 50 rounds of 20 ms: the source never held a refresh up.
            assert!(started.elapsed() < Duration::from_secs(3), "{}: {:?}", path.display(), started.elapsed());
        });
    }
}
