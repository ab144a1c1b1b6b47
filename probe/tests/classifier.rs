//! The real classifier, loaded into the kernel and run on crafted packets
//! through `BPF_PROG_TEST_RUN`, then drained through the real generation flip.
//! Needs root.

use crate::support;

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use vxflow::{
    datapath::{self, Direction, LoadOptions},
    drain::{CounterSnapshot, DeltaSource, FlowDelta},
};
use vxflow_common::{Counter, flow::DIRECTION_EGRESS, flow::DIRECTION_INGRESS};
use vxflow_testkit::{
    netns::{Netns, RawSender},
    packets::{self, Case, Expect, Runner},
    pcap, require_root, unique_prefix,
};

/// The interface a `BPF_PROG_TEST_RUN` packet arrives on: the test netns's
/// loopback.
const TEST_RUN_IFINDEX: u32 = 1;

/// `TC_ACT_UNSPEC`: the programs never change a packet's fate.
const TC_ACT_UNSPEC: i32 = -1;

fn options(flow_entries: u32, fallback_ring_bytes: u32) -> LoadOptions {
    LoadOptions {
        flow_entries,
        fallback_ring_bytes,
        tunnels: datapath::TunnelDecoding::new(
            vec![4789, 8472],
            vec![vxflow_testkit::tunnel_frames::GENEVE_PORT],
            true,
            true,
        )
        .unwrap(),
        attach: datapath::AttachPreference::Auto,
        sampling: 1,
    }
}

fn diff(before: &CounterSnapshot, after: &CounterSnapshot) -> BTreeMap<&'static str, u64> {
    after
        .iter()
        .filter_map(|(c, v)| {
            let d = v - before.get(c);
            (d != 0).then_some((c.name(), d))
        })
        .collect()
}

/// Checks what one frame of `case` produced. `slow` says whether the frame
/// took the datapath's slow parse (`slow_parse_skbs` rises by one).
fn check(case: &Case, slow: bool, deltas: &[FlowDelta], counted: &BTreeMap<&'static str, u64>) -> Result<(), String> {
    match &case.expect {
        Expect::Flow { key, packets, bytes, outer_bytes, tcp_flags, .. } => {
            let [d] = deltas else {
                return Err(format!("want one flow delta, got {deltas:#?}"));
            };
            let mut want_key = *key;
            want_key.ifindex = d.key.ifindex;
            want_key.direction = DIRECTION_INGRESS;
            if d.key != want_key {
                return Err(format!("key\n got {:?}\nwant {want_key:?}", d.key));
            }
            let s = &d.stats;
            let got = (s.packets, s.bytes, s.outer_bytes, s.tcp_flags);
            let expected = (*packets, *bytes, *outer_bytes, *tcp_flags);
            if got != expected {
                return Err(format!("(packets, bytes, outer_bytes, tcp_flags) got {got:?} want {expected:?}"));
            }
            if s.first_seen_ns == 0 || s.last_seen_ns < s.first_seen_ns {
                return Err(format!("timestamps {} .. {}", s.first_seen_ns, s.last_seen_ns));
            }
        }
        Expect::NoFlow { .. } => {
            if !deltas.is_empty() {
                return Err(format!("want no flow, got {deltas:#?}"));
            }
        }
    }
    let mut want = case.expect.counters();
    if slow {
        want.insert(Counter::SlowParse.name(), 1);
    }
    if *counted != want {
        return Err(format!("counters rose by {counted:?}, want {want:?}"));
    }
    Ok(())
}

fn fixture(case: &Case) -> Vec<u8> {
    pcap::read(&pcap::classifier_dir().join(format!("{}.pcap", case.name)))
}

/// The committed pcaps are what `packets.rs` builds. Set
/// `VXFLOW_UPDATE_FIXTURES=1` to rewrite them after changing a packet.
#[test]
fn fixtures_match_their_builders() {
    let update = std::env::var_os("VXFLOW_UPDATE_FIXTURES").is_some();
    let dir = pcap::classifier_dir();
    for case in packets::cases() {
        let path = dir.join(format!("{}.pcap", case.name));
        if update {
            pcap::write(&path, &case.frame);
        }
        assert_eq!(pcap::read(&path), case.frame, "{} is stale: rerun with VXFLOW_UPDATE_FIXTURES=1", path.display());
    }
}

#[test]
#[ignore = "needs root: scripts/test.sh runs it"]
fn classifier_accounts_crafted_packets() {
    require_root();
    let (mut datapath, mut maps) = datapath::load(&options(1024, 1 << 16)).unwrap();
    datapath.set_tunnel_interfaces(&BTreeSet::from([TEST_RUN_IFINDEX])).unwrap();
    let prog = datapath.program(Direction::Ingress).unwrap();
    let mut failures = Vec::new();
    let cases: Vec<Case> = packets::cases().into_iter().filter(|c| c.runner == Runner::TestRun).collect();
    for case in &cases {
        let frame = fixture(case);
        let before = maps.counters().unwrap();
        let verdict = support::test_run(prog, &frame, case.gso);
        let mut deltas = Vec::new();
        maps.drain(&mut deltas).unwrap();
        let counted = diff(&before, &maps.counters().unwrap());
        if verdict != TC_ACT_UNSPEC {
            failures.push(format!("{}: returned {verdict}, want TC_ACT_UNSPEC", case.name));
        }
        if let Err(e) = check(case, packets::leaves_fast_parse(&case.frame), &deltas, &counted) {
            failures.push(format!("{}: {e}", case.name));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n\n"));
}

/// Sends `frame` out of `sender`'s veth and waits until the programs on its
/// peer counted it (veth delivers through the backlog); the counters from
/// before it.
fn inject(maps: &mut impl DeltaSource, sender: &RawSender, frame: &[u8], name: &str) -> CounterSnapshot {
    let before = maps.counters().unwrap();
    sender.send(frame);
    let deadline = Instant::now() + Duration::from_secs(2);
    while maps.counters().unwrap().get(Counter::Seen) == before.get(Counter::Seen) {
        assert!(Instant::now() < deadline, "{name}: frame never reached the program");
        std::thread::sleep(Duration::from_millis(1));
    }
    before
}

/// Frames cut inside the fixed IP header, delivered by a real veth to the
/// programs attached on its peer's ingress.
#[test]
#[ignore = "needs root: scripts/test.sh runs it"]
fn classifier_accounts_injected_frames() {
    require_root();
    let cases: Vec<Case> = packets::cases().into_iter().filter(|c| c.runner == Runner::Inject).collect();
    assert!(!cases.is_empty());
    let ns = Netns::new(&unique_prefix("inject"));
    // No IPv6 on the veths: nothing but the injected frames crosses them.
    ns.exec(&["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"]);
    ns.ip("link add inj0 type veth peer name inj1");
    ns.ip("link set inj0 up");
    ns.ip("link set inj1 up");
    let failures = std::thread::scope(|s| {
        s.spawn(|| {
            ns.enter_thread();
            let (mut datapath, mut maps) = datapath::load(&options(1024, 1 << 16)).unwrap();
            datapath.attach("inj1").unwrap();
            let inj1 = vxflow::ifaces::index_of("inj1").unwrap().unwrap();
            datapath.set_tunnel_interfaces(&BTreeSet::from([inj1])).unwrap();
            let sender = RawSender::new("inj0");
            let mut failures = Vec::new();
            for case in &cases {
                let before = inject(&mut maps, &sender, &fixture(case), &case.name);
                let mut deltas = Vec::new();
                maps.drain(&mut deltas).unwrap();
                let counted = diff(&before, &maps.counters().unwrap());
                if let Err(e) = check(case, packets::leaves_fast_parse(&case.frame), &deltas, &counted) {
                    failures.push(format!("{}: {e}", case.name));
                }
            }
            failures
        })
        .join()
        .unwrap()
    });
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Every test-run case again, received on a TAP as a non-linear skb (its
/// Ethernet header linear, the rest in page fragments, see
/// `vxflow_testkit::tap`): the slow parse must give the same flows and
/// counters as the fast one, and be taken once per frame that is parsed. The TAP pads
/// frames past a page, so the truncation cases, whose point is a short
/// frame, are left to the test runs above (where IPv6 extension headers
/// take the slow parse too).
#[test]
#[ignore = "needs root: scripts/test.sh runs it"]
fn classifier_parses_nonlinear_frames() {
    require_root();
    let cases: Vec<Case> = packets::cases()
        .into_iter()
        .filter(|c| c.runner == Runner::TestRun && c.gso.is_none() && !c.name.starts_with("truncated-"))
        .collect();
    let ns = Netns::new(&unique_prefix("paged"));
    ns.exec(&["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"]);
    let failures = std::thread::scope(|s| {
        s.spawn(|| {
            ns.enter_thread();
            let mut tap = vxflow_testkit::tap::Tap::new("vxtap0");
            ns.ip("link set vxtap0 up");
            let (mut datapath, mut maps) = datapath::load(&options(1024, 1 << 16)).unwrap();
            datapath.attach("vxtap0").unwrap();
            let index = vxflow::ifaces::index_of("vxtap0").unwrap().unwrap();
            datapath.set_tunnel_interfaces(&BTreeSet::from([index])).unwrap();
            let mut failures = Vec::new();
            for case in &cases {
                let before = maps.counters().unwrap();
                tap.receive(&case.frame);
                let deadline = Instant::now() + Duration::from_secs(2);
                while maps.counters().unwrap().get(Counter::Seen) == before.get(Counter::Seen) {
                    if Instant::now() > deadline {
                        failures.push(format!("{}: frame never reached the program", case.name));
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
                let mut deltas = Vec::new();
                maps.drain(&mut deltas).unwrap();
                let counted = diff(&before, &maps.counters().unwrap());
                let parsed = vxflow_testkit::tap::parsed_on_receive(&case.frame);
                if let Err(e) = check(case, parsed, &deltas, &counted) {
                    failures.push(format!("{}: {e}", case.name));
                }
            }
            failures
        })
        .join()
        .unwrap()
    });
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n\n"));
}

#[test]
#[ignore = "needs root: scripts/test.sh runs it"]
fn egress_program_records_egress_direction() {
    require_root();
    let (datapath, mut maps) = datapath::load(&options(1024, 1 << 16)).unwrap();
    let prog = datapath.program(Direction::Egress).unwrap();
    assert_eq!(support::test_run(prog, &packets::ipv4_tcp_syn(), None), TC_ACT_UNSPEC);
    let mut deltas = Vec::new();
    maps.drain(&mut deltas).unwrap();
    assert_eq!(deltas.len(), 1);
    assert_eq!(deltas[0].key.direction, DIRECTION_EGRESS);
}

/// The datapath stamps packets with jiffies; the drain turns them into the
/// `CLOCK_MONOTONIC` time their tick began. A flow's first and last packet,
/// sent apart, must come out inside the tick that held each: never after the
/// packet, at most one tick before it.
#[test]
#[ignore = "needs root: scripts/test.sh runs it"]
fn timestamps_are_the_monotonic_start_of_their_tick() {
    require_root();
    let (datapath, mut maps) = datapath::load(&options(1024, 1 << 16)).unwrap();
    let ticks = maps.ticks();
    assert!(
        [100, 250, 300, 1000].contains(&ticks.hz()),
        "CONFIG_HZ measured as {} (tick {} ns)",
        ticks.hz(),
        ticks.tick_ns()
    );
    let mono = || {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: valid clock id and pointer.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
        u64::try_from(ts.tv_sec).unwrap() * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap()
    };
    let prog = datapath.program(Direction::Ingress).unwrap();
    let frame = packets::ipv4_tcp_syn();
    let mut sent = Vec::new();
    for pause_ms in [0, 30, 7] {
        std::thread::sleep(Duration::from_millis(pause_ms));
        let before = mono();
        assert_eq!(support::test_run(prog, &frame, None), TC_ACT_UNSPEC);
        sent.push((before, mono()));
    }
    let mut deltas = Vec::new();
    maps.drain(&mut deltas).unwrap();
    let [d] = deltas.as_slice() else { panic!("one flow expected: {deltas:#?}") };
    assert_eq!(d.stats.packets, 3);
    for (stamp, (before, after)) in [(d.stats.first_seen_ns, sent[0]), (d.stats.last_seen_ns, sent[2])] {
        assert!(
            stamp <= after && stamp + ticks.tick_ns() > before,
            "stamp {stamp} for a packet sent between {before} and {after} (tick {} ns)",
            ticks.tick_ns()
        );
    }
    // Measured again later, the mapping is the same: a tick length off by
    // even 0.1 % would move the origin by 300 us over these 300 ms.
    std::thread::sleep(Duration::from_millis(300));
    let again = datapath.measure_ticks().unwrap();
    assert_eq!(again.tick_ns(), ticks.tick_ns());
    let (j, k) = (4_300_000_000, 4_300_000_075);
    for jiffy in [j, k] {
        let drift = again.to_ns(jiffy).abs_diff(ticks.to_ns(jiffy));
        assert!(drift < 100_000, "the two measurements place jiffy {jiffy} {drift} ns apart");
    }
    // 37 ms apart at least: the two stamps are that far apart too, to a tick.
    let apart = d.stats.last_seen_ns - d.stats.first_seen_ns;
    let sent_apart = sent[2].0 - sent[0].1;
    assert!(apart + ticks.tick_ns() >= sent_apart, "{apart} ns between stamps, {sent_apart} between sends");
}

/// Distinct UDP flows (60 IP bytes each), differing in source port.
fn udp_frames(n: u16) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let mut f = Vec::new();
            etherparse::PacketBuilder::ethernet2(packets::MAC_A, packets::MAC_B)
                .ipv4(packets::POD_A, packets::POD_B, 64)
                .udp(10_000 + i, 53)
                .write(&mut f, &[0u8; 32])
                .unwrap();
            f
        })
        .collect()
}

/// A full flow map sends packets through the fallback ring; a full ring
/// counts them as lost, with their bytes. Nothing disappears unaccounted.
#[test]
#[ignore = "needs root: scripts/test.sh runs it"]
fn full_map_falls_back_to_ring_then_counts_losses() {
    require_root();
    // One page of ring holds 4096 / (record + 8-byte ring header) records.
    let ring_slots = 4096 / (size_of::<vxflow_common::FallbackRecord>() as u64 + 8);
    let (datapath, mut maps) = datapath::load(&options(4, 4096)).unwrap();
    let prog = datapath.program(Direction::Ingress).unwrap();
    let frames = udp_frames(60);
    for f in &frames {
        support::test_run(prog, f, None);
    }
    let c = maps.counters().unwrap();
    let (accounted, fallback, lost) = (c.get(Counter::Accounted), c.get(Counter::Fallback), c.get(Counter::Lost));
    assert_eq!(accounted, 4, "the map holds 4 flows");
    assert_eq!(fallback, ring_slots, "one page of ring holds {ring_slots} records");
    assert_eq!(lost, 60 - 4 - ring_slots);
    assert_eq!(c.get(Counter::LostBytes), lost * 60);
    assert_eq!(c.get(Counter::Seen), 60);

    let mut deltas = Vec::new();
    maps.drain(&mut deltas).unwrap();
    assert_eq!(deltas.len() as u64, 4 + ring_slots, "map entries and ring records are both drained");
    assert_eq!(deltas.iter().map(|d| d.stats.packets).sum::<u64>(), accounted + fallback);
    let mut ports: Vec<u16> = deltas.iter().map(|d| d.key.src_port).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len() as u64, 4 + ring_slots, "each drained packet is a different flow, none twice");

    // Drained, the map and ring take new flows again.
    for f in &frames[..10] {
        support::test_run(prog, f, None);
    }
    let mut again = Vec::new();
    maps.drain(&mut again).unwrap();
    assert_eq!(again.iter().map(|d| d.stats.packets).sum::<u64>(), 10);
    assert_eq!(maps.counters().unwrap().get(Counter::Lost), lost, "no new losses");
}

/// A generation of 16,384 slots is drained by several threads, each taking
/// a range of buckets: 12,000 distinct flows come out once each, with their
/// counts, and the emptied map takes a second round the same way.
#[test]
#[ignore = "needs root: scripts/test.sh runs it"]
fn parallel_drain_takes_every_flow_once() {
    require_root();
    let (datapath, mut maps) = datapath::load(&options(16_384, 1 << 16)).unwrap();
    let prog = datapath.program(Direction::Ingress).unwrap();
    let frames = udp_frames(12_000);
    for round in 0..2u32 {
        for f in &frames {
            run_repeated(prog, f, 1 + round);
        }
        let mut deltas = Vec::new();
        maps.drain(&mut deltas).unwrap();
        let mut ports: Vec<u16> = deltas.iter().map(|d| d.key.src_port).collect();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!((deltas.len(), ports.len()), (12_000, 12_000), "round {round}: every flow once, none twice");
        assert!(deltas.iter().all(|d| d.stats.packets == u64::from(1 + round)), "round {round}: each flow's own count");
        assert_eq!(maps.last_map_entries(), 12_000);
        assert_eq!(maps.counters().unwrap().get(Counter::Fallback), 0);
    }
}

/// Packets counted across many generation flips sum exactly to what was sent,
/// and repeated packets of one flow merge into one entry per generation.
#[test]
#[ignore = "needs root: scripts/test.sh runs it"]
fn counts_survive_generation_flips() {
    require_root();
    let (datapath, mut maps) = datapath::load(&options(1024, 1 << 16)).unwrap();
    let prog = datapath.program(Direction::Ingress).unwrap();
    let frame = packets::ipv4_udp();
    let (mut packets_seen, mut bytes_seen, mut deltas_seen) = (0u64, 0u64, 0usize);
    for round in 1..=25u64 {
        for _ in 0..round {
            support::test_run(prog, &frame, None);
        }
        let mut deltas = Vec::new();
        maps.drain(&mut deltas).unwrap();
        deltas_seen += deltas.len();
        packets_seen += deltas.iter().map(|d| d.stats.packets).sum::<u64>();
        bytes_seen += deltas.iter().map(|d| d.stats.bytes).sum::<u64>();
    }
    assert_eq!(deltas_seen, 25, "one entry per flow per generation");
    assert_eq!(packets_seen, 25 * 26 / 2);
    assert_eq!(bytes_seen, 60 * 25 * 26 / 2);
}

/// A VXLAN header is parsed only on an interface trusted with tunnels (the
/// underlay); elsewhere the same frame is the plain UDP flow it is, noted as
/// `tunnel_untrusted`, so a pod cannot forge a tunnel's inner tuple or VNI.
#[test]
#[ignore = "needs root: scripts/test.sh runs it"]
fn tunnels_are_parsed_only_on_trusted_interfaces() {
    require_root();
    let (mut datapath, mut maps) = datapath::load(&options(1024, 1 << 16)).unwrap();
    let frame = packets::vxlan(&packets::NODE_A, &packets::NODE_B, 50000, 4789, 0x08, 999, &packets::ipv4_tcp_syn());
    let mut run = |datapath: &datapath::Datapath| {
        let before = maps.counters().unwrap();
        support::test_run(datapath.program(Direction::Ingress).unwrap(), &frame, None);
        let mut deltas = Vec::new();
        maps.drain(&mut deltas).unwrap();
        let after = maps.counters().unwrap();
        let [d] = deltas.as_slice() else { panic!("{deltas:#?}") };
        (d.key, after.get(Counter::TunnelUntrusted) - before.get(Counter::TunnelUntrusted))
    };
    let (key, untrusted) = run(&datapath);
    assert_eq!((key.encap, key.tunnel_id, key.protocol, key.dst_port), (0, 0, 17, 4789), "{key:?}");
    assert_eq!(&key.src_addr[..4], &packets::NODE_A[..]);
    assert_eq!(untrusted, 1);

    datapath.set_tunnel_interfaces(&BTreeSet::from([TEST_RUN_IFINDEX])).unwrap();
    let (key, untrusted) = run(&datapath);
    assert_eq!((key.encap, key.tunnel_id, key.protocol), (vxflow_common::flow::ENCAP_VXLAN, 999, 6), "{key:?}");
    assert_eq!(untrusted, 0);

    datapath.set_tunnel_interfaces(&BTreeSet::new()).unwrap();
    assert_eq!(run(&datapath).0.encap, 0, "trust taken back");

    // The direct-mapped slots: an interface whose index shares the test
    // run's slot is not the test run's interface; two sharing a slot defer
    // to the exact set.
    let alias = TEST_RUN_IFINDEX + vxflow_common::TUNNEL_SLOT_COUNT;
    datapath.set_tunnel_interfaces(&BTreeSet::from([alias])).unwrap();
    assert_eq!(run(&datapath).0.encap, 0, "slot holds another interface");
    datapath.set_tunnel_interfaces(&BTreeSet::from([TEST_RUN_IFINDEX, alias])).unwrap();
    assert_eq!(run(&datapath).0.encap, vxflow_common::flow::ENCAP_VXLAN, "shared slot, in the set");
    datapath.set_tunnel_interfaces(&BTreeSet::from([alias, alias + vxflow_common::TUNNEL_SLOT_COUNT])).unwrap();
    assert_eq!(run(&datapath).0.encap, 0, "shared slot, not in the set");
    datapath.set_tunnel_interfaces(&BTreeSet::from([TEST_RUN_IFINDEX])).unwrap();
    assert_eq!(run(&datapath).0.encap, vxflow_common::flow::ENCAP_VXLAN, "slot back to one interface");
}

/// Each tunnel's decoding follows its setting live: Geneve by port (moved,
/// then taken away), IP in IP and GRE by their switches; and none of them is
/// decoded on an interface where tunnels are not trusted.
#[test]
#[ignore = "needs root: scripts/test.sh runs it"]
fn tunnel_decoding_follows_its_settings_live() {
    use vxflow_common::flow::{ENCAP_GENEVE, ENCAP_GRE, ENCAP_IPIP};
    use vxflow_testkit::tunnel_frames::GENEVE_PORT;
    require_root();
    let (mut datapath, mut maps) = datapath::load(&options(1024, 1 << 16)).unwrap();
    datapath.set_tunnel_interfaces(&BTreeSet::from([TEST_RUN_IFINDEX])).unwrap();
    let case = |name: &str| fixture(&packets::named(name));
    let (geneve, ipip, gre) = (case("geneve-ipv4-tcp"), case("ipip-4in4-tcp"), case("gre-key-ipv6"));
    // The encap of the one flow a frame makes, and the untrusted note's rise.
    let mut run = |datapath: &datapath::Datapath, frame: &[u8]| {
        let before = maps.counters().unwrap();
        support::test_run(datapath.program(Direction::Ingress).unwrap(), frame, None);
        let mut deltas = Vec::new();
        maps.drain(&mut deltas).unwrap();
        let after = maps.counters().unwrap();
        let [d] = deltas.as_slice() else { panic!("{deltas:#?}") };
        (d.key.encap, after.get(Counter::TunnelUntrusted) - before.get(Counter::TunnelUntrusted))
    };
    let set = |datapath: &mut datapath::Datapath, geneve: Vec<u16>, ipip, gre| {
        let t = datapath::TunnelDecoding::new(vec![4789, 8472], geneve, ipip, gre).unwrap();
        datapath.set_tunnel_decoding(&t).unwrap();
    };
    assert_eq!(run(&datapath, &geneve), (ENCAP_GENEVE, 0));
    assert_eq!(run(&datapath, &ipip), (ENCAP_IPIP, 0));
    assert_eq!(run(&datapath, &gre), (ENCAP_GRE, 0));

    set(&mut datapath, vec![GENEVE_PORT + 1], true, false);
    assert_eq!(run(&datapath, &geneve), (0, 0), "Geneve moved to another port");
    assert_eq!(run(&datapath, &ipip), (ENCAP_IPIP, 0));
    assert_eq!(run(&datapath, &gre), (0, 0), "GRE off");

    set(&mut datapath, vec![], false, true);
    assert_eq!(run(&datapath, &geneve), (0, 0), "no Geneve port");
    assert_eq!(run(&datapath, &ipip), (0, 0), "IP in IP off");
    assert_eq!(run(&datapath, &gre), (ENCAP_GRE, 0));

    set(&mut datapath, vec![GENEVE_PORT], true, true);
    datapath.set_tunnel_interfaces(&BTreeSet::new()).unwrap();
    for frame in [&geneve, &ipip, &gre] {
        assert_eq!(run(&datapath, frame), (0, 1), "untrusted: the plain flow, noted");
    }
}

/// Geneve with every options length a header can state, 0 to 252 bytes in
/// 4-byte words, each around an IPv4 TCP SYN: the inner tuple and VNI, the
/// outer bytes growing by each word; and stating one word more than the
/// packet holds: the outer UDP flow, `tunnel_invalid`.
#[test]
#[ignore = "needs root: scripts/test.sh runs it"]
fn geneve_every_options_length() {
    use vxflow_common::flow::ENCAP_GENEVE;
    use vxflow_testkit::tunnel_frames::{geneve_header, geneve_options, over_geneve_port};
    require_root();
    let (mut datapath, mut maps) = datapath::load(&options(1024, 1 << 16)).unwrap();
    datapath.set_tunnel_interfaces(&BTreeSet::from([TEST_RUN_IFINDEX])).unwrap();
    let prog = datapath.program(Direction::Ingress).unwrap();
    let syn = packets::ipv4_tcp_syn();
    for words in 0..=63u8 {
        let opts = geneve_options(usize::from(words) * 4);
        // 63 words is the most the 6-bit field can state: no lie beyond it.
        for lie in [false, true].into_iter().filter(|&lie| !lie || words < 63) {
            let stated = if lie { Some(words + 1) } else { None };
            let payload =
                [geneve_header(0, false, 0x6558, u32::from(words) + 100, &opts, stated), syn.clone()].concat();
            // Cut the inner frame off when lying, so the stated options
            // reach past the packet's end.
            let payload = if lie { payload[..8 + opts.len() + 2].to_vec() } else { payload };
            let frame = over_geneve_port(&packets::NODE_A, &packets::NODE_B, 50000, &payload);
            let before = maps.counters().unwrap();
            support::test_run(prog, &frame, None);
            let mut deltas = Vec::new();
            maps.drain(&mut deltas).unwrap();
            let counted = diff(&before, &maps.counters().unwrap());
            let [d] = deltas.as_slice() else { panic!("{words} words, lie {lie}: {deltas:#?}") };
            let outer = 20 + 8 + payload.len() as u64;
            if lie {
                assert_eq!((d.key.encap, d.key.protocol, d.key.dst_port), (0, 17, 6081), "{words} words, lie");
                assert_eq!(d.stats.bytes, outer, "{words} words, lie");
                assert_eq!(counted.get("tunnel_invalid_packets"), Some(&1), "{words} words, lie: {counted:?}");
            } else {
                assert_eq!((d.key.encap, d.key.tunnel_id, d.key.protocol), (ENCAP_GENEVE, u32::from(words) + 100, 6));
                assert_eq!((d.stats.bytes, d.stats.outer_bytes), (40, outer), "{words} words");
                assert_eq!(counted.get("geneve_packets"), Some(&1), "{words} words: {counted:?}");
            }
        }
    }
}

/// Runs `prog` on `frame` `repeat` times in one test run: each run draws
/// its own sampling decision.
fn run_repeated(prog: &aya::programs::SchedClassifier, frame: &[u8], repeat: u32) {
    use aya::programs::{TestRun as _, TestRunOptions};
    let opts = TestRunOptions { data_in: Some(frame), repeat, ..TestRunOptions::default() };
    prog.test_run(opts).expect("BPF_PROG_TEST_RUN");
}

/// With `kernel.sampling` N, about 1 in N IP packets is counted and the rest
/// are `unsampled`, together every packet; an unsampled TCP SYN still
/// reaches its flow, with its flag and no count; sampling changes live and
/// back to exact.
#[test]
#[ignore = "needs root: scripts/test.sh runs it"]
fn sampling_counts_one_in_n_and_keeps_tcp_control_flags() {
    require_root();
    let (mut datapath, mut maps) = datapath::load(&LoadOptions { sampling: 10, ..options(1024, 1 << 16) }).unwrap();
    datapath.set_tunnel_interfaces(&std::collections::BTreeSet::from([TEST_RUN_IFINDEX])).unwrap();
    let runs: u64 = 20_000;
    run_repeated(datapath.program(Direction::Ingress).unwrap(), &packets::ipv4_udp(), u32::try_from(runs).unwrap());
    let c = maps.counters().unwrap();
    let (counted, unsampled) = (c.get(Counter::Accounted), c.get(Counter::Unsampled));
    assert_eq!(counted + unsampled, runs, "every packet counted or unsampled");
    assert_eq!(c.get(Counter::Seen), runs);
    // Binomial(20,000, 1/10): mean 2,000, standard deviation 42; 300 is
    // seven of them.
    assert!((1_700..=2_300).contains(&counted), "1 in 10 of {runs} gave {counted}");
    let mut deltas = Vec::new();
    maps.drain(&mut deltas).unwrap();
    assert_eq!(deltas.len(), 1);
    assert_eq!(deltas[0].stats.packets, counted);
    assert_eq!(deltas[0].stats.bytes, counted * 60);

    // Nearly every SYN left out of the counts, none of the flags.
    datapath.set_sampling(vxflow::config::limits::MAX_SAMPLING).unwrap();
    let before = maps.counters().unwrap();
    run_repeated(datapath.program(Direction::Ingress).unwrap(), &packets::ipv4_tcp_syn(), 1_000);
    let counted_syn = maps.counters().unwrap().get(Counter::Accounted) - before.get(Counter::Accounted);
    let mut deltas = Vec::new();
    maps.drain(&mut deltas).unwrap();
    assert_eq!(deltas.len(), 1, "the SYNs' flow is there whatever the draw");
    assert_eq!(deltas[0].stats.tcp_flags & 0x02, 0x02, "with its SYN");
    assert_eq!(deltas[0].stats.packets, counted_syn);
    assert!(counted_syn < 10, "1 in 16,383 of 1,000 SYNs counted {counted_syn}");
    // A UDP packet left out leaves nothing behind.
    let before = maps.counters().unwrap();
    run_repeated(datapath.program(Direction::Ingress).unwrap(), &packets::ipv4_udp(), 1_000);
    let counted_udp = maps.counters().unwrap().get(Counter::Accounted) - before.get(Counter::Accounted);
    let mut deltas = Vec::new();
    maps.drain(&mut deltas).unwrap();
    assert_eq!(deltas.iter().map(|d| d.stats.packets).sum::<u64>(), counted_udp);
    assert_eq!(deltas.is_empty(), counted_udp == 0);

    // Back to every packet.
    datapath.set_sampling(1).unwrap();
    let before = maps.counters().unwrap();
    run_repeated(datapath.program(Direction::Ingress).unwrap(), &packets::ipv4_udp(), 500);
    let after = maps.counters().unwrap();
    assert_eq!(after.get(Counter::Accounted) - before.get(Counter::Accounted), 500);
    assert_eq!(after.get(Counter::Unsampled), before.get(Counter::Unsampled));
}

/// A frame's name, bytes and GSO metadata.
type Named = (String, Vec<u8>, Option<(u32, u32)>);

/// One parser: the host build of the classifier (`vxflow replay`'s) and the
/// loaded kernel programs give the same key, counts and counters for every
/// fixture and every frame of the hostile suite (cut at every byte, lying
/// lengths, forged and nested tunnels, random bytes). Frames the kernel's
/// test run refuses (an IP header cut inside its fixed part) are sent
/// through a veth to the programs instead, as a NIC would deliver them.
#[test]
#[ignore = "needs root: scripts/test.sh runs it"]
fn the_host_build_agrees_with_the_kernel_on_every_frame() {
    require_root();
    let mut frames: Vec<Named> = packets::cases().into_iter().map(|c| (c.name, c.frame, c.gso)).collect();
    frames.extend(vxflow_testkit::hostile_frames::frames(0xd1ff).into_iter().map(|(n, f)| (n, f, None)));
    let (mut datapath, mut maps) = datapath::load(&options(1024, 1 << 16)).unwrap();
    datapath.set_tunnel_interfaces(&BTreeSet::from([TEST_RUN_IFINDEX])).unwrap();
    let prog = datapath.program(Direction::Ingress).unwrap();
    let (mut failures, mut refused) = (Vec::new(), Vec::new());
    for (name, frame, gso) in &frames {
        let before = maps.counters().unwrap();
        if support::try_test_run(prog, frame, *gso).is_err() {
            refused.push((name.clone(), frame.clone()));
            continue;
        }
        if let Err(e) = agree(&mut maps, &before, frame, *gso, TEST_RUN_IFINDEX) {
            failures.push(format!("{name}: {e}"));
        }
    }
    let run = frames.len() - refused.len();
    // The rest through a veth, in a namespace of their own.
    let ns = Netns::new(&unique_prefix("agree"));
    ns.exec(&["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"]);
    ns.ip("link add agr0 type veth peer name agr1");
    ns.ip("link set agr0 up");
    ns.ip("link set agr1 up");
    let injected = std::thread::scope(|s| {
        s.spawn(|| {
            ns.enter_thread();
            let (mut datapath, mut maps) = datapath::load(&options(1024, 1 << 16)).unwrap();
            datapath.attach("agr1").unwrap();
            let agr1 = vxflow::ifaces::index_of("agr1").unwrap().unwrap();
            datapath.set_tunnel_interfaces(&BTreeSet::from([agr1])).unwrap();
            let sender = RawSender::new("agr0");
            let mut failures = Vec::new();
            for (name, frame) in &refused {
                let before = inject(&mut maps, &sender, frame, name);
                if let Err(e) = agree(&mut maps, &before, frame, None, agr1) {
                    failures.push(format!("{name} (injected): {e}"));
                }
            }
            failures
        })
        .join()
        .unwrap()
    });
    failures.extend(injected);
    eprintln!("{} frames compared: {run} by test run, {} injected", frames.len(), refused.len());
    assert!(frames.len() > 3000, "{}", frames.len());
    assert!(failures.is_empty(), "{} of {} frames differ:\n{}", failures.len(), frames.len(), failures.join("\n\n"));
}

/// Whether what the kernel made of `frame` (drained from `maps`, counters
/// since `before`) is what the host build makes of it.
fn agree(
    maps: &mut impl DeltaSource,
    before: &CounterSnapshot,
    frame: &[u8],
    gso: Option<(u32, u32)>,
    ifindex: u32,
) -> Result<(), String> {
    use vxflow::replay::classify::{Captured, Classified, Settings, classify};
    let mut deltas = Vec::new();
    maps.drain(&mut deltas).unwrap();
    let mut kernel = diff(before, &maps.counters().unwrap());
    kernel.remove(Counter::SlowParse.name());
    let settings = Settings::new(&options(1, 1).tunnels, true);
    let packet =
        Captured { frame, len: frame.len(), vlan: None, ifindex, gso: gso.unwrap_or((0, 0)), settings: &settings };
    let host = classify(&packet, DIRECTION_INGRESS);
    let mut host_counters = BTreeMap::new();
    host.tally(|c, n| *host_counters.entry(c.name()).or_insert(0) += n);
    let host_flows: Vec<_> = match host {
        Classified::Flow(key, c) => vec![(key, c.wire.packets, c.wire.bytes, c.wire.outer_bytes, c.tcp_flags)],
        Classified::NoFlow { .. } => Vec::new(),
    };
    let kernel_flows: Vec<_> = deltas
        .iter()
        .map(|d| (d.key, d.stats.packets, d.stats.bytes, d.stats.outer_bytes, d.stats.tcp_flags))
        .collect();
    if host_flows == kernel_flows && host_counters == kernel {
        Ok(())
    } else {
        Err(format!("\n kernel {kernel_flows:?} {kernel:?}\n host   {host_flows:?} {host_counters:?}"))
    }
}
