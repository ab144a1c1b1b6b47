//! IP in IP end to end. No tunnel implementation here has it (no ipip or
//! sit device, none in Open vSwitch), so the test sends the frames itself:
//! Calico-style IPv4-in-IPv4 and the three other pairings, TCP flows of
//! packets of every size, raw out of a veth into the node's watched `eth0`.
//! What was sent is the ground truth: each flow's packets, inner and outer
//! IP bytes in its record, `eth0`'s counters equal, nfcapd holding the
//! JSON's flows and tshark decoding the export with nothing malformed.
//! Needs root.

use std::{collections::BTreeMap, net::IpAddr, time::Duration};

use etherparse::PacketBuilder;
use vxflow_testkit::{
    collectors::{Capture, Nfcapd},
    netns::{Netns, RawSender},
    packets::{MAC_A, MAC_B, NODE_A, NODE_B, NODE6_A, NODE6_B, POD_A, POD_B, POD6_A, POD6_B},
    probe::Vxflow,
    require_root, tunnel_frames, unique_prefix,
};

const COLLECTOR_PORT: u16 = 9995;
const IPIP: u8 = 4;
const IPV6: u8 = 41;
/// Frames sent per flow, each with a payload of a different size.
const PER_FLOW: usize = 150;

/// One IP-in-IP flow: the outer nodes and the inner TCP tuple.
struct Flow {
    outer: (&'static [u8], &'static [u8]),
    inner: (&'static [u8], &'static [u8]),
    sport: u16,
}

impl Flow {
    /// Frame `i` of the flow: TCP with `i * 7 % 1200` payload bytes, and its
    /// inner and outer IP lengths.
    fn frame(&self, i: usize) -> (Vec<u8>, u64, u64) {
        let payload = vec![0x5a; i * 7 % 1200];
        let mut inner = Vec::new();
        let b = PacketBuilder::ethernet2(MAC_A, MAC_B);
        let tcp = |b: etherparse::PacketBuilderStep<etherparse::IpHeaders>| {
            b.tcp(self.sport, 443, u32::try_from(i).unwrap(), 64000).ack(1)
        };
        if self.inner.0.len() == 4 {
            tcp(b.ipv4(self.inner.0.try_into().unwrap(), self.inner.1.try_into().unwrap(), 64))
                .write(&mut inner, &payload)
                .unwrap();
        } else {
            tcp(b.ipv6(self.inner.0.try_into().unwrap(), self.inner.1.try_into().unwrap(), 64))
                .write(&mut inner, &payload)
                .unwrap();
        }
        let ip = &inner[14..];
        let protocol = if self.inner.0.len() == 4 { IPIP } else { IPV6 };
        let frame = tunnel_frames::over_ip(self.outer.0, self.outer.1, protocol, ip);
        let outer_len = (frame.len() - 14) as u64;
        (frame, ip.len() as u64, outer_len)
    }
}

fn addr(bytes: &[u8]) -> IpAddr {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).unwrap().into(),
        _ => <[u8; 16]>::try_from(bytes).unwrap().into(),
    }
}

#[test]
#[ignore = "needs root: scripts/test.sh runs it"]
fn ip_in_ip_in_all_four_pairings_is_counted_exactly() {
    require_root();
    let prefix = unique_prefix("ipip");
    let (node, wire) = (Netns::new(&format!("{prefix}-node")), Netns::new(&format!("{prefix}-wire")));
    node.ip(&format!("link add eth0 type veth peer name wire0 netns {}", wire.name()));
    for (ns, dev) in [(&node, "eth0"), (&wire, "wire0")] {
        ns.ip("link set lo up");
        ns.disable_ipv6(dev);
        ns.ip(&format!("link set {dev} up"));
    }
    let flows = [
        Flow { outer: (&NODE_A, &NODE_B), inner: (&POD_A, &POD_B), sport: 40001 },
        Flow { outer: (&NODE_A, &NODE_B), inner: (&POD6_A, &POD6_B), sport: 40002 },
        Flow { outer: (&NODE6_A, &NODE6_B), inner: (&POD_A, &POD_B), sport: 40003 },
        Flow { outer: (&NODE6_A, &NODE6_B), inner: (&POD6_A, &POD6_B), sport: 40004 },
    ];
    let nfcapd = Nfcapd::start(&node, COLLECTOR_PORT);
    let capture = Capture::start(&node, "lo", &format!("udp port {COLLECTOR_PORT}"));
    let collector = format!("ipfix://127.0.0.1:{COLLECTOR_PORT}");
    // No route leaves by eth0 for `auto` to find: it is named.
    let args = ["-i", "eth0", "--tunnel-interface", "eth0", "--poll-interval", "100ms", "--collector", &collector];
    let vxflow = Vxflow::start(&node, &[&args[..], &["--json", "-"]].concat());
    let before = node.counters("eth0");
    // By source port: packets, inner and outer IP bytes sent.
    let mut sent: BTreeMap<u16, (u64, u64, u64)> = BTreeMap::new();
    let mut frame_bytes = 0;
    std::thread::scope(|s| {
        s.spawn(|| {
            wire.enter_thread();
            let sender = RawSender::new("wire0");
            for i in 0..PER_FLOW {
                for f in &flows {
                    let (frame, inner, outer) = f.frame(i);
                    sender.send(&frame);
                    let t = sent.entry(f.sport).or_default();
                    *t = (t.0 + 1, t.1 + inner, t.2 + outer);
                    frame_bytes += frame.len() as u64;
                }
            }
        });
    });
    std::thread::sleep(Duration::from_millis(300));
    let truth = node.counters("eth0").since(&before);
    let done = vxflow.stop();
    let collected = nfcapd.stop();
    let pcap = capture.stop();

    let total = (flows.len() * PER_FLOW) as u64;
    assert_eq!((truth.rx_packets, truth.rx_bytes), (total, frame_bytes), "eth0 received what was sent");
    assert_eq!(done.records.len(), flows.len(), "{:#?}", done.records);
    for f in &flows {
        let r = done.records.iter().find(|r| r.src_port == Some(f.sport)).expect("a record per flow");
        assert_eq!(r.tunnel.as_deref(), Some("ipip"), "{r:#?}");
        assert_eq!((r.tunnel_id, r.vni, r.outer_src_port, r.outer_dst_port), (None, None, None, None), "{r:#?}");
        assert_eq!((r.src_addr, r.dst_addr), (addr(f.inner.0), addr(f.inner.1)), "{r:#?}");
        assert_eq!((r.outer_src_addr, r.outer_dst_addr), (Some(addr(f.outer.0)), Some(addr(f.outer.1))), "{r:#?}");
        let (packets, inner, outer) = sent[&f.sport];
        assert_eq!((r.packets, r.bytes, r.outer_bytes), (packets, inner, Some(outer)), "{r:#?}");
    }
    assert_eq!(done.counter("ipip_packets"), total);
    assert_eq!(done.counter("lost_packets"), 0);

    assert_eq!(collected.sequence_failures, 0);
    let mut from_nfdump = collected.flows;
    from_nfdump.sort();
    assert_eq!(from_nfdump, done.nfdump_flows(), "nfdump and the JSON records disagree");

    let decode = format!("udp.port=={COLLECTOR_PORT},cflow");
    let out = vxflow_testkit::cmd::run(&["tshark", "-r", pcap.path(), "-V", "-d", &decode]);
    for bad in ["Malformed", "Expert Info (Error"] {
        assert!(!out.contains(bad), "tshark reports {bad}");
    }
    for want in [
        "Untunneled IP protocol byte: 4".to_owned(),
        "Untunneled IP protocol byte: 41".to_owned(),
        format!("Untunneled IPv4 source address: {}", addr(&NODE_A)),
        format!("Untunneled IPv6 destination address: {}", addr(&NODE6_B)),
        "Template Id: 274".to_owned(),
        "Template Id: 277".to_owned(),
    ] {
        assert!(out.contains(&want), "tshark does not show {want:?}");
    }
    assert!(!out.contains("Upstream tunnel identifier"), "IP in IP has no tunnel id to show");
}
