//! vxflow as a systemd service: the shipped unit verifies, the notify
//! protocol runs against a real `NOTIFY_SOCKET`, and vxflow works with only the
//! capabilities the unit grants, as an unprivileged user. Needs root.

use std::{
    os::unix::net::UnixDatagram,
    time::{Duration, Instant},
};

use vxflow_testkit::{
    TempDir,
    probe::{Launch, Vxflow, binary},
    require_root,
    topology::veth_pair,
    traffic::ping,
    unit::{unit_capabilities, unit_file, unit_values},
};

/// The unit's capabilities in setpriv's spelling: `+bpf,+net_admin,...`.
fn unit_caps_for_setpriv() -> String {
    unit_capabilities()
        .iter()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn the_unit_verifies_and_names_its_hardening() {
    // systemd-analyze checks that ExecStart's binary exists; point it at the
    // binary under test instead of the packaged /usr/bin/vxflow.
    let text = std::fs::read_to_string(unit_file()).unwrap();
    let dir = TempDir::new("unit");
    let unit = dir.join("vxflow.service");
    std::fs::write(&unit, text.replace("/usr/bin/vxflow", binary().to_str().unwrap())).unwrap();
    let out = std::process::Command::new("systemd-analyze").arg("verify").arg(&unit).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "systemd-analyze verify:\n{stderr}");
    for (key, want) in [
        ("Type", "notify"),
        ("Restart", "on-failure"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
    ] {
        assert_eq!(unit_values(key), [want], "{key}=");
    }
    assert_eq!(unit_values("RestrictAddressFamilies"), ["AF_UNIX", "AF_NETLINK", "AF_INET", "AF_INET6"]);
    assert!(unit_values("ExecStart").iter().any(|v| v == "/etc/vxflow/vxflow.toml"));
    assert_eq!(unit_caps_for_setpriv(), "+bpf,+net_admin,+perfmon");
}

/// Reads notify datagrams until one contains `needle`; returns all read.
fn read_until(sock: &UnixDatagram, needle: &str, timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            let done = msg.lines().any(|l| l == needle);
            got.push(msg);
            if done {
                return got;
            }
        }
    }
    panic!("no {needle} within {timeout:?}; got {got:?}");
}

#[test]
#[ignore = "needs root: scripts/test.sh runs it"]
fn notify_protocol_ready_after_attach_watchdog_reload_and_stopping() {
    require_root();
    let (a, _b) = veth_pair("notify");
    let dir = TempDir::new("notify");
    let path = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let config = dir.join("vxflow.toml");
    std::fs::write(&config, "interfaces = [\"v0\"]\n").unwrap();
    let env = [("NOTIFY_SOCKET", path.to_str().unwrap()), ("WATCHDOG_USEC", "400000")];
    let args = ["--config", config.to_str().unwrap(), "--poll-interval", "100ms"];
    let mut vxflow = Vxflow::launch(&a, &Launch { args: &args, env: &env, ..Launch::default() });

    let first = read_until(&sock, "READY=1", Duration::from_secs(10));
    let ready = first.last().unwrap();
    assert!(ready.contains("STATUS=watching 1 interface(s)"), "{ready}");
    // Ready means attached: vxflow holds a TCX link on v0 per direction
    // now, and a ping sent at once is counted.
    let ifindex = a.exec(&["cat", "/sys/class/net/v0/ifindex"]).trim().to_owned();
    assert_eq!(tcx_links(vxflow.pid(), &ifindex), 2, "READY before both programs were attached");
    ping(&a, "10.9.0.2".parse().unwrap(), 1, 56);

    // A 400 ms watchdog: a keep-alive every 200 ms from the drain loop.
    let started = Instant::now();
    let mut pings = 0;
    while started.elapsed() < Duration::from_millis(1500) {
        let msgs = read_until(&sock, "WATCHDOG=1", Duration::from_secs(2));
        pings += msgs.iter().filter(|m| m.lines().any(|l| l == "WATCHDOG=1")).count();
    }
    assert!((5..=10).contains(&pings), "{pings} keep-alives in 1.5 s with a 400 ms watchdog");

    // SIGHUP: RELOADING=1 with the monotonic time, then READY=1 again.
    std::fs::write(&config, "interfaces = [\"v0\"]\n[cache]\ninactive_timeout = \"30s\"\n").unwrap();
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(vxflow.pid(), libc::SIGHUP) };
    let reload = read_until(&sock, "RELOADING=1", Duration::from_secs(5));
    assert!(reload.last().unwrap().contains("MONOTONIC_USEC="), "{reload:?}");
    read_until(&sock, "READY=1", Duration::from_secs(5));
    vxflow.wait_for_log("configuration reloaded", Duration::from_secs(5));

    // SIGTERM: STOPPING=1, then a clean exit.
    unsafe { libc::kill(vxflow.pid(), libc::SIGTERM) };
    read_until(&sock, "STOPPING=1", Duration::from_secs(10));
    let done = vxflow.stop();
    assert!(done.stderr.contains("systemd watchdog enabled"), "{}", done.stderr);
    let icmp: u64 = done.records.iter().filter(|r| r.protocol == "icmp").map(|r| r.packets).sum();
    assert_eq!(icmp, 2, "the ping right after READY was not counted");
}

/// TCX links process `pid` holds on interface `ifindex`, from the kernel's
/// fdinfo of its file descriptors (`link_type: tcx`, `ifindex:`).
fn tcx_links(pid: i32, ifindex: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fdinfo"))
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
        .filter(|info| {
            info.lines().any(|l| l.split_whitespace().eq(["link_type:", "tcx"]))
                && info.lines().any(|l| l.split_whitespace().eq(["ifindex:", ifindex]))
        })
        .count()
}

/// The capability mask of `pid` (`CapEff` in /proc/PID/status).
fn effective_caps(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:")).unwrap().trim();
    u64::from_str_radix(hex, 16).unwrap()
}

/// Capability numbers (include/uapi/linux/capability.h).
const CAP_NET_ADMIN: u32 = 12;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

#[test]
#[ignore = "needs root: scripts/test.sh runs it"]
fn runs_as_nobody_with_only_the_units_capabilities() {
    require_root();
    let (a, b) = veth_pair("caps");
    let caps = unit_caps_for_setpriv();
    let (inh, amb, bound) = (
        format!("--inh-caps=-all,{caps}"),
        format!("--ambient-caps=-all,{caps}"),
        format!("--bounding-set=-all,{caps}"),
    );
    let wrapper = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--no-new-privs", &inh, &amb, &bound];
    let args = ["--interface", "v0", "--poll-interval", "100ms", "--inactive-timeout", "60s"];
    let vxflow = Vxflow::launch(&a, &Launch { args: &args, wrapper: &wrapper, ..Launch::default() });
    // setpriv execs vxflow, so the child's pid is vxflow's.
    let status = std::fs::read_to_string(format!("/proc/{}/status", vxflow.pid())).unwrap();
    assert!(status.lines().any(|l| l.starts_with("Uid:") && l.contains("65534")), "{status}");
    let want = (1u64 << CAP_NET_ADMIN) | (1 << CAP_PERFMON) | (1 << CAP_BPF);
    assert_eq!(effective_caps(vxflow.pid()), want, "vxflow runs with other capabilities than the unit's");

    ping(&a, "10.9.0.2".parse().unwrap(), 10, 56);
    let answer = vxflow.ctl(&["stats"]);
    assert_eq!(answer["stats"]["attached"], serde_json::json!(["v0"]), "{answer}");
    let done = vxflow.stop();
    let packets: u64 = done.records.iter().filter(|r| r.protocol == "icmp").map(|r| r.packets).sum();
    assert_eq!(packets, 20, "10 echoes and 10 replies");
    assert_eq!(done.counter("seen_packets"), 20);
    drop(b);

    // Without CAP_PERFMON the kernel refuses the programs, and vxflow says why.
    let caps = caps.replace(",+perfmon", "");
    let (inh, amb, bound) = (
        format!("--inh-caps=-all,{caps}"),
        format!("--ambient-caps=-all,{caps}"),
        format!("--bounding-set=-all,{caps}"),
    );
    let bin = binary();
    let out = a
        .command(&[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            &inh,
            &amb,
            &bound,
            bin.to_str().unwrap(),
            "run",
            "--interface",
            "v0",
            "--no-control",
            "--no-metrics",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("permission denied") && stderr.contains("CAP_PERFMON"), "{stderr}");
}

/// Every syscall in the unit's `SystemCallFilter=` groups and names.
fn allowed_syscalls() -> std::collections::BTreeSet<String> {
    fn expand(item: &str, out: &mut std::collections::BTreeSet<String>) {
        if !item.starts_with('@') {
            out.insert(item.to_owned());
            return;
        }
        let listing = std::process::Command::new("systemd-analyze").args(["syscall-filter", item]).output().unwrap();
        assert!(listing.status.success(), "systemd-analyze syscall-filter {item}");
        let text = String::from_utf8_lossy(&listing.stdout).into_owned();
        for line in text.lines().skip(1).map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            expand(line, out);
        }
    }
    let mut allowed = std::collections::BTreeSet::new();
    for item in unit_values("SystemCallFilter") {
        expand(&item, &mut allowed);
    }
    allowed
}

/// The pid of `parent`'s only child (vxflow, under strace).
fn child_of(parent: i32) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let children = std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children")).unwrap_or_default();
        if let Some(pid) = children.split_whitespace().next() {
            return pid.parse().unwrap();
        }
        assert!(Instant::now() < deadline, "no child of {parent}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The unit's system-call filter would refuse (EPERM) any call outside it:
/// vxflow, traced through start, traffic, `ctl`, a scrape, a reload,
/// interface churn and shutdown, makes none.
#[test]
#[ignore = "needs root: scripts/test.sh runs it"]
fn every_syscall_vxflow_makes_is_allowed_by_the_units_filter() {
    require_root();
    let allowed = allowed_syscalls();
    assert!(allowed.contains("read") && allowed.contains("setsockopt"), "{allowed:?}");
    let (a, b) = veth_pair("syscalls");
    let dir = TempDir::new("syscalls");
    let trace = dir.join("strace.out");
    let config = dir.join("vxflow.toml");
    std::fs::write(&config, "interfaces = [\"v0\", \"w*\"]\n[metrics]\nlisten = \"127.0.0.1:9741\"\n").unwrap();
    let wrapper = ["strace", "-f", "-qq", "-o", trace.to_str().unwrap()];
    let args =
        ["--config", config.to_str().unwrap(), "--poll-interval", "100ms", "--collector", "ipfix+tcp://127.0.0.1:9"];
    let vxflow = Vxflow::launch(&a, &Launch { args: &args, wrapper: &wrapper, ..Launch::default() });
    let pid = child_of(vxflow.pid());
    ping(&a, "10.9.0.2".parse().unwrap(), 3, 56);
    let _ = vxflow.ctl(&["stats"]);
    let _ = vxflow.ctl(&["flows"]);
    let (code, _) = vxflow_testkit::netns::http_get(&a, "127.0.0.1:9741".parse().unwrap(), "/metrics");
    assert_eq!(code, 200);
    vxflow_testkit::topology::add_veth(&a, &b, ("w0", "w1"), 1);
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: kill(2) on vxflow, a child of our strace.
    unsafe { libc::kill(pid, libc::SIGHUP) };
    std::thread::sleep(Duration::from_millis(500));
    a.ip("link del w0");
    std::thread::sleep(Duration::from_millis(500));
    let _ = vxflow.ctl(&["expire-all"]);
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let done = vxflow.stop_with(0);
    assert!(
        done.stderr.contains("configuration reloaded") && done.stderr.contains("interface vanished"),
        "{}",
        done.stderr
    );

    let text = std::fs::read_to_string(&trace).unwrap();
    let mut made = std::collections::BTreeSet::new();
    for line in text.lines() {
        // "PID name(args..." ; resumed calls and signals are not new calls.
        let Some((_, rest)) = line.split_once(' ') else { continue };
        let rest = rest.trim_start();
        if rest.starts_with('<') || rest.starts_with("---") || rest.starts_with("+++") {
            continue;
        }
        if let Some((name, _)) = rest.split_once('(') {
            made.insert(name.to_owned());
        }
    }
    assert!(made.contains("bpf") && made.len() > 20, "{made:?}");
    let refused: Vec<&String> = made.iter().filter(|s| !allowed.contains(*s)).collect();
    assert!(refused.is_empty(), "syscalls the unit's SystemCallFilter= refuses: {refused:?}");
    // And every socket is of a family RestrictAddressFamilies= allows.
    let families: std::collections::BTreeSet<&str> =
        text.lines().filter_map(|l| l.split_once(" socket(")).filter_map(|(_, rest)| rest.split(',').next()).collect();
    let permitted = unit_values("RestrictAddressFamilies");
    assert!(families.contains("AF_NETLINK") && families.contains("AF_UNIX"), "{families:?}");
    assert!(families.iter().all(|f| permitted.iter().any(|p| p == f)), "{families:?} against {permitted:?}");
}
