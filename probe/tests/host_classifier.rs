//! The classifier built for the host (`vxflow::replay::classify`, the
//! kernel programs' own source) on every classifier fixture, held to the
//! same expectations the kernel's test holds the loaded programs to, and on
//! the hostile frame suite, where it must neither panic nor lose a packet.
//! No root needed; `classifier.rs` runs both builds side by side.

use std::collections::BTreeMap;

use vxflow::{
    datapath::TunnelDecoding,
    replay::classify::{Captured, Classified, Settings, classify},
};
use vxflow_common::{Counter, flow::DIRECTION_INGRESS};
use vxflow_testkit::{
    hostile_frames,
    packets::{self, Expect},
    tunnel_frames::GENEVE_PORT,
};

fn settings() -> Settings {
    Settings::new(&TunnelDecoding::new(vec![4789, 8472], vec![GENEVE_PORT], true, true).unwrap(), true)
}

fn counters(c: &Classified) -> BTreeMap<&'static str, u64> {
    let mut out = BTreeMap::new();
    c.tally(|counter, n| *out.entry(counter.name()).or_default() += n);
    out
}

#[test]
fn every_fixture_classifies_as_the_kernel_is_expected_to() {
    let settings = settings();
    let mut failures = Vec::new();
    let cases = packets::cases();
    for case in &cases {
        let packet = Captured {
            frame: &case.frame,
            len: case.frame.len(),
            vlan: None,
            ifindex: 1,
            gso: case.gso.unwrap_or((0, 0)),
            settings: &settings,
        };
        let got = classify(&packet, DIRECTION_INGRESS);
        match (&case.expect, got) {
            (Expect::Flow { key, packets, bytes, outer_bytes, tcp_flags, .. }, Classified::Flow(k, c)) => {
                let want_key = vxflow_common::FlowKey { ifindex: 1, direction: DIRECTION_INGRESS, ..*key };
                if k != want_key {
                    failures.push(format!("{}: key\n got {k:?}\nwant {want_key:?}", case.name));
                }
                let got = (c.wire.packets, c.wire.bytes, c.wire.outer_bytes, c.tcp_flags);
                if got != (*packets, *bytes, *outer_bytes, *tcp_flags) {
                    failures.push(format!("{}: counts {got:?}", case.name));
                }
            }
            (Expect::NoFlow { .. }, Classified::NoFlow { .. }) => {}
            (want, got) => {
                failures.push(format!("{}: got {got:?}, want {want:?}", case.name));
                continue;
            }
        }
        let want_counters = case.expect.counters();
        let got_counters = counters(&got);
        if got_counters != want_counters {
            failures.push(format!("{}: counters {got_counters:?}, want {want_counters:?}", case.name));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases:\n{}", failures.len(), cases.len(), failures.join("\n\n"));
}

/// Every hostile frame (cut at every byte, lying lengths, nested and
/// forged tunnels, random bytes): classified without a panic, each counted
/// once, and a flow's bytes never more than the frame holds.
#[test]
fn hostile_frames_are_each_counted_once_and_never_panic() {
    let settings = settings();
    let frames = hostile_frames::frames(0x5eed);
    assert!(frames.len() > 3000, "{}", frames.len());
    for (name, frame) in &frames {
        let packet = Captured { frame, len: frame.len(), vlan: None, ifindex: 1, gso: (0, 0), settings: &settings };
        let c = classify(&packet, DIRECTION_INGRESS);
        let counted = counters(&c);
        assert_eq!(counted.get(Counter::Seen.name()), Some(&1), "{name}: {counted:?}");
        if let Classified::Flow(_, c) = c {
            assert_eq!(c.wire.packets, 1, "{name}");
            assert!(c.wire.bytes <= frame.len() as u64 && c.wire.outer_bytes <= frame.len() as u64, "{name}: {c:?}");
        }
    }
}
