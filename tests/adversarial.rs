//! The standing adversarial suite: about 1,500 malformed and hostile frames
//! (`tests/src/hostile_frames.rs`) through a watched interface that parses
//! tunnels, interleaved with a well-formed UDP flow. vxflow must survive,
//! put every frame in exactly one outcome (the outcome counters sum to the
//! frames seen, which equal the frames sent), export every packet it
//! accounted, and count the well-formed flow exactly. Needs root.

use std::net::SocketAddr;

use vxflow_testkit::{
    hostile_frames, netns::RawSender, probe::Vxflow, require_root, topology::veth_pair, traffic::udp_datagrams,
};

const CONTROL: u32 = 500;

/// The outcome counters' sum: every frame lands in exactly one.
fn outcomes(done: &vxflow_testkit::probe::Finished) -> u64 {
    ["accounted", "fallback", "lost", "non_ip", "malformed", "self_export", "unsampled"]
        .iter()
        .map(|o| done.counter(&format!("{o}_packets")))
        .sum()
}

fn sent_frames(frames: &[(String, Vec<u8>)]) -> u64 {
    u64::try_from(frames.len()).unwrap() + u64::from(CONTROL)
}

#[test]
#[ignore = "needs root: scripts/test.sh runs it"]
fn hostile_frames_are_each_counted_once_and_leave_good_flows_exact() {
    require_root();
    let (a, b) = veth_pair("adversary");
    // Jumbo frames too (the GSO fixtures are 3 kB).
    a.ip("link set v0 mtu 9000");
    b.ip("link set v1 mtu 9000");
    for seed in [1u64, 0x5eed] {
        let frames = hostile_frames::frames(seed);
        assert!(frames.len() > 1000, "{} frames", frames.len());
        let vxflow = Vxflow::start(&a, &["-i", "v0", "--tunnel-interface", "v0", "--poll-interval", "100ms"]);
        let before = a.counters("v0");
        let control = std::thread::scope(|s| {
            let control = s.spawn(|| {
                let src: SocketAddr = "10.9.0.2:5555".parse().unwrap();
                udp_datagrams(&b, src, &a, "10.9.0.1:7777".parse().unwrap(), CONTROL, &[0x11; 200])
            });
            s.spawn(|| {
                b.enter_thread();
                let sender = RawSender::new("v1");
                for (i, (_, frame)) in frames.iter().enumerate() {
                    sender.send(frame);
                    if i % 16 == 15 {
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                }
            });
            control.join().unwrap()
        });
        assert_eq!(control, CONTROL);
        std::thread::sleep(std::time::Duration::from_millis(300));
        let done = vxflow.stop();
        assert_eq!(a.counters("v0").since(&before).rx_packets, sent_frames(&frames), "seed {seed}: v0 received");
        let c = |name| done.counter(name);
        let buckets = outcomes(&done);
        let sent = sent_frames(&frames);
        assert_eq!(c("seen_packets"), buckets, "seed {seed}: the outcomes do not sum: {}", done.stderr);
        assert_eq!(c("seen_packets"), sent, "seed {seed}: frames seen != frames sent: {}", done.stderr);
        assert_eq!(c("lost_packets"), 0);
        assert!(c("malformed_packets") > 100 && c("vxlan_packets") > 10, "seed {seed}: {}", done.stderr);
        let exported: u64 = done.records.iter().map(|r| r.packets).sum();
        assert_eq!(exported, c("accounted_packets") + c("fallback_packets"), "seed {seed}: accounted but not exported");
        let good: u64 = done
            .records
            .iter()
            .filter(|r| r.src_port == Some(5555) && r.dst_port == Some(7777) && r.tunnel.is_none())
            .map(|r| r.packets)
            .sum();
        assert_eq!(good, u64::from(CONTROL), "seed {seed}: the well-formed flow");
    }
}

/// The parse of a non-linear skb against the same hostile frames: each is
/// received on a TAP with only its Ethernet header linear (see
/// `vxflow_testkit::tap`; frames are zero-padded past a page, so lies in
/// length fields now point into padding rather than past the end), which
/// sends every frame that may be IP to the `bpf_skb_load_bytes` parse.
/// vxflow must put each frame in exactly one outcome, take the slow parse
/// once for each frame it parses, and export everything it accounted.
#[test]
#[ignore = "needs root: scripts/test.sh runs it"]
fn hostile_frames_as_nonlinear_skbs_are_each_counted_once() {
    require_root();
    let ns = vxflow_testkit::netns::Netns::new(&vxflow_testkit::unique_prefix("adv-tap"));
    ns.exec(&["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"]);
    let frames: Vec<Vec<u8>> =
        hostile_frames::frames(7).into_iter().map(|(_, f)| f).filter(|f| f.len() >= 14).collect();
    let parsed = frames.iter().filter(|f| vxflow_testkit::tap::parsed_on_receive(f)).count();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let (sent_tx, sent_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|s| {
        let (ns, frames) = (&ns, &frames);
        s.spawn(move || {
            ns.enter_thread();
            let mut tap = vxflow_testkit::tap::Tap::new("vxtap0");
            ns.ip("link set vxtap0 up");
            ready_tx.send(()).unwrap();
            go_rx.recv().unwrap();
            for (i, frame) in frames.iter().enumerate() {
                tap.receive(frame);
                if i % 16 == 15 {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
            sent_tx.send(()).unwrap();
            // The device lives as long as its descriptor: until vxflow stopped.
            stop_rx.recv().unwrap();
        });
        ready_rx.recv().unwrap();
        let vxflow = Vxflow::start(ns, &["-i", "vxtap0", "--tunnel-interface", "vxtap0", "--poll-interval", "100ms"]);
        let before = ns.counters("vxtap0");
        go_tx.send(()).unwrap();
        sent_rx.recv().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        let done = vxflow.stop();
        let received = ns.counters("vxtap0").since(&before).rx_packets;
        stop_tx.send(()).unwrap();
        let sent = u64::try_from(frames.len()).unwrap();
        assert_eq!(received, sent, "the TAP received every frame");
        let c = |name| done.counter(name);
        let buckets = outcomes(&done);
        assert_eq!(c("seen_packets"), buckets, "the outcomes do not sum: {}", done.stderr);
        assert_eq!(c("seen_packets"), sent, "frames seen != frames sent: {}", done.stderr);
        assert_eq!(c("slow_parse_skbs"), u64::try_from(parsed).unwrap(), "{}", done.stderr);
        // Fewer malformed than over the veth: padding makes cut frames whole.
        assert!(c("malformed_packets") > 50 && c("vxlan_packets") > 10, "{}", done.stderr);
        let exported: u64 = done.records.iter().map(|r| r.packets).sum();
        assert_eq!(exported, c("accounted_packets") + c("fallback_packets"), "accounted but not exported");
    });
}
