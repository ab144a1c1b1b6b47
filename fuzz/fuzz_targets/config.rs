//! Configuration files, as raw text or generated from every key vxflow knows
//! with values at and past their limits (tests/src/configgen.rs): validation
//! either refuses with an error that fits on one log line, or accepts a
//! configuration the daemon can run and reload: its clock arithmetic cannot
//! overflow, its export sockets fit the datapath's exclusion map, its cache
//! runs every timeout, and validating it again gives the same result.
#![no_main]

#[path = "../../tests/src/configgen.rs"]
mod configgen;

use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use vxflow::{
    cache::FlowCache,
    config::{FileConfig, Overrides, RuntimeConfig, limits},
    datapath::{MAX_EXPORT_TUPLES, export_tuples},
    drain::FlowDelta,
};
use vxflow_common::{FlowKey, FlowStats, user::SocketTuple};

fn check(text: &str) {
    let resolved =
        FileConfig::parse(text).and_then(|f| f.resolve(&Overrides::default()).map_err(|e| vxflow::error_chain(&e)));
    match resolved {
        Err(message) => {
            assert!(!message.is_empty());
            assert!(!message.contains('\n'), "a config error spans lines: {message:?}");
        }
        Ok(config) => {
            runs(&config);
            let again = FileConfig::parse(text).unwrap().resolve(&Overrides::default()).unwrap();
            assert_eq!(format!("{again:?}"), format!("{config:?}"), "validation is not deterministic");
        }
    }
}

/// What start and reload do with the numbers, without a kernel.
fn runs(c: &RuntimeConfig) {
    let durations = [c.cache.active_timeout, c.cache.inactive_timeout, c.cache.tcp_end_timeout, c.poll_interval];
    for d in durations {
        assert!(!d.is_zero());
        assert!(Instant::now().checked_add(d * 4).is_some(), "{d:?} overflows the clock");
    }
    assert!(c.poll_interval <= c.cache.inactive_timeout);
    assert!(c.poll_interval <= limits::MAX_POLL_INTERVAL);
    assert!(c.load.flow_entries >= 1 && c.load.flow_entries <= limits::MAX_FLOW_MAP_ENTRIES);
    assert!(c.load.fallback_ring_bytes.is_power_of_two());
    for collector in &c.collectors {
        assert_ne!(collector.address.port(), 0);
        assert!(collector.template_refresh > Duration::ZERO);
    }
    // Every collector a TCP socket to this host: the most tuples it needs.
    let sockets: Vec<SocketTuple> = c
        .collectors
        .iter()
        .enumerate()
        .map(|(i, col)| SocketTuple {
            protocol: 6,
            local: std::net::SocketAddr::new(col.address.ip(), 40000 + u16::try_from(i).unwrap()),
            remote: col.address,
        })
        .collect();
    assert!(export_tuples(&sockets).len() <= MAX_EXPORT_TUPLES);
    // The cache through every timeout, at a kernel clock far from zero.
    let mut cache = FlowCache::new(c.cache.clone());
    let now = 1u64 << 62;
    let key = FlowKey { protocol: 6, ip_version: 4, ifindex: 1, ..FlowKey::default() };
    let stats = FlowStats {
        packets: 1,
        bytes: 60,
        first_seen_ns: now,
        last_seen_ns: now,
        tcp_flags: 0x11,
        ..FlowStats::default()
    };
    let mut out = Vec::new();
    cache.ingest(&[FlowDelta { key, stats }], now, &mut out);
    for d in durations {
        let later = now + u64::try_from(d.as_nanos()).unwrap();
        cache.expire(later, &mut out);
    }
    cache.flush(&mut out);
    assert_eq!(out.iter().map(|r| r.packets).sum::<u64>(), 1);
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    match u.arbitrary::<bool>() {
        Ok(true) => {
            if let Ok(generated) = configgen::GenConfig::arbitrary(&mut u) {
                check(&generated.render());
            }
        }
        _ => {
            if let Ok(text) = std::str::from_utf8(u.take_rest()) {
                check(text);
            }
        }
    }
});
