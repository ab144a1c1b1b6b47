//! Crashes, restarts and a second instance, in every attach mode: a run
//! killed with SIGKILL (sampling or not) and restarted in any mode counts
//! exactly and leaves no filter behind; a second vxflow on the same interface neither removes the
//! first's programs nor hides from the operator that both count. Needs root.

use vxflow_testkit::{netns::Netns, probe::Vxflow, require_root, topology::veth_pair};

/// vxflow's clsact filters on `dev`, ingress and egress.
fn filters(ns: &Netns, dev: &str) -> (usize, usize) {
    let count = |dir: &str| {
        let out = ns.exec(&["tc", "filter", "show", "dev", dev, dir]);
        out.lines().filter(|l| l.contains(&format!("vxflow_{dir}"))).count()
    };
    (count("ingress"), count("egress"))
}

/// `count` pings from `ns` to the veth peer: `2 * count` packets on v0.
fn ping(ns: &Netns, count: u32) {
    ns.exec(&["ping", "-q", "-c", &count.to_string(), "-i", "0.02", "10.9.0.2"]);
}

const MODES: [&str; 3] = ["tcx", "clsact", "auto"];

#[test]
#[ignore = "needs root: scripts/test.sh runs it"]
fn a_killed_run_restarted_in_any_mode_counts_exactly_and_leaves_nothing() {
    require_root();
    for killed_mode in ["tcx", "clsact"] {
        for next_mode in MODES {
            let (a, _b) = veth_pair("restart");
            let killed = Vxflow::start(&a, &["-i", "v0", "--attach-mode", killed_mode]);
            ping(&a, 2);
            drop(killed); // SIGKILL: no detach, no drain
            let left = filters(&a, "v0");
            let want_left = if killed_mode == "clsact" { (1, 1) } else { (0, 0) };
            assert_eq!(left, want_left, "{killed_mode}: what the killed run left");

            let next = Vxflow::start(&a, &["-i", "v0", "--attach-mode", next_mode, "--poll-interval", "100ms"]);
            ping(&a, 10);
            let done = next.stop();
            let context = format!("killed in {killed_mode}, restarted in {next_mode}");
            assert_eq!(done.counter("seen_packets"), 20, "{context}: {}", done.stderr);
            let icmp: u64 = done.records.iter().filter(|r| r.protocol == "icmp").map(|r| r.packets).sum();
            assert_eq!(icmp, 20, "{context}: {:#?}", done.records);
            if killed_mode == "clsact" {
                assert!(done.stderr.contains("removed a stale vxflow filter"), "{context}: {}", done.stderr);
            }
            assert_eq!(filters(&a, "v0"), (0, 0), "{context}: filters left after a clean exit");
        }
    }
}

/// A run that sampled 1 in 1,000 and was killed leaves nothing of its rate
/// behind: the filter it left in clsact mode is replaced, and the next run,
/// with the default of every packet, counts each one.
#[test]
#[ignore = "needs root: scripts/test.sh runs it"]
fn a_run_killed_while_sampling_leaves_no_sampling_behind() {
    require_root();
    for killed_mode in ["tcx", "clsact"] {
        let (a, _b) = veth_pair("sampled");
        let killed = Vxflow::start(&a, &["-i", "v0", "--attach-mode", killed_mode, "--sampling", "1000"]);
        ping(&a, 2);
        drop(killed);
        let next = Vxflow::start(&a, &["-i", "v0", "--poll-interval", "100ms"]);
        ping(&a, 10);
        let done = next.stop();
        let context = format!("killed in {killed_mode} while sampling");
        assert_eq!(done.counter("seen_packets"), 20, "{context}: {}", done.stderr);
        let icmp: u64 = done.records.iter().filter(|r| r.protocol == "icmp").map(|r| r.packets).sum();
        assert_eq!(icmp, 20, "{context}: {:#?}", done.records);
        assert!(done.records.iter().all(|r| r.sampling.is_none_or(|n| n == 1)), "{context}: {:#?}", done.records);
        assert_eq!(filters(&a, "v0"), (0, 0), "{context}: filters left after a clean exit");
    }
}

#[test]
#[ignore = "needs root: scripts/test.sh runs it"]
fn a_second_instance_leaves_the_first_counting_and_says_so() {
    require_root();
    for (first_mode, second_mode) in [("clsact", "clsact"), ("tcx", "clsact"), ("clsact", "tcx")] {
        let (a, _b) = veth_pair("second");
        let first = Vxflow::start(&a, &["-i", "v0", "--attach-mode", first_mode, "--poll-interval", "100ms"]);
        let second =
            Vxflow::start(&a, &["-i", "v0", "--attach-mode", second_mode, "--poll-interval", "100ms", "--no-metrics"]);
        ping(&a, 10);
        let second = second.stop();
        ping(&a, 5);
        let first = first.stop();
        let context = format!("first {first_mode}, second {second_mode}");
        assert!(
            second.stderr.contains("another vxflow runs in this network namespace"),
            "{context}: {}",
            second.stderr
        );
        assert!(!second.stderr.contains("removed a stale"), "{context}: {}", second.stderr);
        assert_eq!(second.counter("seen_packets"), 20, "{context}: {}", second.stderr);
        assert_eq!(first.counter("seen_packets"), 30, "{context}: the first run was blinded: {}", first.stderr);
        assert_eq!(filters(&a, "v0"), (0, 0), "{context}: filters left");
    }
}
