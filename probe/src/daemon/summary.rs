//! The "final counters" log line at shutdown.

use vxflow_common::Counter;

use super::Totals;
use crate::{cache::FlowCache, drain::CounterSnapshot, record::EndReason};

/// One line with every datapath counter and what the cache exported, so an
/// operator (and the tests) can check that `seen` is the sum of the buckets
/// (`Counter::BUCKETS`: `accounted`, `fallback`, `lost`, `non_ip`,
/// `malformed`, `self_export` and `unsampled`) and that every drained packet
/// was exported.
pub(super) fn log_summary(c: &CounterSnapshot, t: &Totals, cache: &FlowCache) {
    let s = cache.stats();
    tracing::info!(
        seen_packets = c.get(Counter::Seen),
        accounted_packets = c.get(Counter::Accounted),
        fallback_packets = c.get(Counter::Fallback),
        lost_packets = c.get(Counter::Lost),
        lost_bytes = c.get(Counter::LostBytes),
        non_ip_packets = c.get(Counter::NonIp),
        malformed_packets = c.get(Counter::Malformed),
        fragment_packets = c.get(Counter::Fragment),
        l4_truncated_packets = c.get(Counter::L4Truncated),
        ipv6_ext_limit_packets = c.get(Counter::Ipv6ExtLimit),
        vxlan_packets = c.get(Counter::Vxlan),
        geneve_packets = c.get(Counter::Geneve),
        ipip_packets = c.get(Counter::Ipip),
        gre_packets = c.get(Counter::Gre),
        tunnel_invalid_packets = c.get(Counter::TunnelInvalid),
        tunnel_inner_not_ip_packets = c.get(Counter::TunnelInnerNotIp),
        nested_tunnel_packets = c.get(Counter::NestedTunnel),
        vlan_too_deep_packets = c.get(Counter::VlanTooDeep),
        self_export_packets = c.get(Counter::SelfExport),
        tunnel_untrusted_packets = c.get(Counter::TunnelUntrusted),
        gso_skbs = c.get(Counter::GsoSkbs),
        slow_parse_skbs = c.get(Counter::SlowParse),
        unsampled_packets = c.get(Counter::Unsampled),
        drains = t.drains,
        early_drains = t.early_drains,
        drain_errors = t.drain_errors,
        drained_packets = t.drained_packets,
        exported_packets = s.packets,
        exported_bytes = s.bytes,
        flows_created = s.created,
        duplicate_packets = s.duplicate_packets,
        duplicate_bytes = s.duplicate_bytes,
        records_idle = s.records_for(EndReason::IdleTimeout),
        records_active = s.records_for(EndReason::ActiveTimeout),
        records_end_of_flow = s.records_for(EndReason::EndOfFlow),
        records_forced = s.records_for(EndReason::ForcedEnd),
        records_lack_of_resources = s.records_for(EndReason::LackOfResources),
        "final counters"
    );
}

#[cfg(test)]
mod tests {
    use vxflow_common::Counter;

    /// tracing wants its field names written out, so the line lists the
    /// counters by hand: each must be there, under its own name.
    #[test]
    fn the_line_has_every_datapath_counter() {
        let source = include_str!("summary.rs");
        for c in Counter::ALL {
            let field = format!("{} = c.get(Counter::{c:?})", c.name());
            assert!(source.contains(&field), "the final counters line lacks {}", c.name());
        }
    }
}
