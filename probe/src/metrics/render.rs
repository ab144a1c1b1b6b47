//! A [`Snapshot`] as metrics in the `OpenMetrics` text format (which Prometheus
//! scrapes): counters get their `_total` suffix from the encoder.

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric as _},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
    registry::Registry,
};
use vxflow_common::Counter;

use crate::snapshot::Snapshot;

/// The content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Renders `snapshot` as `OpenMetrics` text.
///
/// # Errors
/// Only if formatting fails, which writing to a `String` does not.
pub fn render(snapshot: Snapshot) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SnapshotMetrics(snapshot)));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)?;
    Ok(text)
}

#[derive(Debug)]
struct SnapshotMetrics(Snapshot);

/// Writes one metric family: a descriptor, then one sample per label set.
struct Family<'e, 'a> {
    encoder: &'e mut DescriptorEncoder<'a>,
}

type Labels<'l> = Vec<(&'static str, String)>;

/// Reads one counter of a collector.
type Pick = fn(&crate::snapshot::CollectorCounts) -> u64;

impl Family<'_, '_> {
    fn counter(&mut self, name: &str, help: &str, samples: &[(Labels<'_>, u64)]) -> std::fmt::Result {
        let mut m = self.encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
        for (labels, value) in samples {
            ConstCounter::new(*value).encode(m.encode_family(labels)?)?;
        }
        Ok(())
    }

    fn counter_f64(&mut self, name: &str, help: &str, value: f64) -> std::fmt::Result {
        let m = self.encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
        ConstCounter::new(value).encode(m)
    }

    fn counter1(&mut self, name: &str, help: &str, value: u64) -> std::fmt::Result {
        let m = self.encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
        ConstCounter::new(value).encode(m)
    }

    fn gauge1(&mut self, name: &str, help: &str, value: f64) -> std::fmt::Result {
        let m = self.encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
        ConstGauge::new(value).encode(m)
    }

    fn gauge(&mut self, name: &str, help: &str, samples: &[(Labels<'_>, f64)]) -> std::fmt::Result {
        let mut m = self.encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
        for (labels, value) in samples {
            ConstGauge::new(*value).encode(m.encode_family(labels)?)?;
        }
        Ok(())
    }
}

#[expect(clippy::cast_precision_loss, reason = "gauges are f64 in OpenMetrics; counts below 2^53 are exact")]
fn f(value: u64) -> f64 {
    value as f64
}

impl Collector for SnapshotMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let s = &self.0;
        let mut w = Family { encoder: &mut encoder };
        interfaces(&mut w, s)?;
        traffic(&mut w, s)?;
        flows(&mut w, s)?;
        datapath(&mut w, s)?;
        collectors(&mut w, s)?;
        kernel(&mut w, s)
    }
}

/// Build, uptime, attached interfaces and VXLAN settings.
fn interfaces(w: &mut Family<'_, '_>, s: &Snapshot) -> std::fmt::Result {
    w.gauge("vxflow_build_info", "vxflow's version; always 1", &[(vec![("version", s.version.clone())], 1.0)])?;
    w.gauge1("vxflow_uptime_seconds", "Seconds since vxflow started", s.uptime_seconds)?;

    let attached: Vec<_> = s.attached.iter().map(|i| (vec![("interface", i.clone())], 1.0)).collect();
    w.gauge("vxflow_interface_attached", "1 for each interface the TC programs are attached to", &attached)?;
    w.counter1("vxflow_interface_attach_errors", "Attach attempts the kernel refused", s.attach_errors)?;
    let ports: Vec<_> = (s.vxlan_ports.iter().map(|p| ("vxlan", p)))
        .chain(s.geneve_ports.iter().map(|p| ("geneve", p)))
        .map(|(t, p)| (vec![("tunnel", t.to_owned()), ("port", p.to_string())], 1.0))
        .collect();
    w.gauge("vxflow_tunnel_port", "1 for each UDP port parsed as a tunnel, by tunnel type", &ports)?;
    let devices: Vec<_> = s
        .tunnel_devices
        .iter()
        .map(|d| {
            let id = d.id.map(|id| id.to_string()).unwrap_or_default();
            let labels = vec![
                ("device", d.device.clone()),
                ("tunnel", d.tunnel.clone()),
                ("id", id),
                ("port", d.port.to_string()),
            ];
            (labels, 1.0)
        })
        .collect();
    w.gauge("vxflow_tunnel_device_info", "The node's tunnel devices, with VNI or key and UDP port", &devices)?;
    Ok(())
}

/// Packets and bytes per interface and per VNI.
fn traffic(w: &mut Family<'_, '_>, s: &Snapshot) -> std::fmt::Result {
    let by_iface = |pick: fn(&crate::snapshot::InterfaceTraffic) -> u64| -> Vec<(Labels<'_>, u64)> {
        s.interfaces
            .iter()
            .map(|i| (vec![("interface", i.interface.clone()), ("direction", i.direction.clone())], pick(i)))
            .collect()
    };
    w.counter(
        "vxflow_interface_packets",
        "IP packets accounted per interface and direction (GSO super-packets as their segments)",
        &by_iface(|i| i.packets),
    )?;
    w.counter(
        "vxflow_interface_bytes",
        "IP bytes accounted per interface and direction, as on the wire (the outer packet for VXLAN)",
        &by_iface(|i| i.bytes),
    )?;

    // The id label is empty for tunnels without one (IP in IP, GRE with no
    // key), which Prometheus reads as no label.
    let by_tunnel = |pick: fn(&crate::snapshot::TunnelTraffic) -> u64| -> Vec<(Labels<'_>, u64)> {
        s.tunnels
            .iter()
            .map(|t| {
                let id = t.id.map(|id| id.to_string()).unwrap_or_default();
                let kind = t.id_kind.clone().unwrap_or_default();
                (vec![("tunnel", t.tunnel.clone()), ("id_kind", kind), ("id", id)], pick(t))
            })
            .collect()
    };
    w.counter(
        "vxflow_tunnel_packets",
        "Inner packets of tunnelled flows per tunnel type and id (id_kind: vni, key or cilium_identity)",
        &by_tunnel(|t| t.packets),
    )?;
    w.counter(
        "vxflow_tunnel_bytes",
        "Inner IP bytes of tunnelled flows per tunnel type and id",
        &by_tunnel(|t| t.bytes),
    )?;
    let tunnel_flows: Vec<_> = by_tunnel(|t| t.active_flows).into_iter().map(|(l, v)| (l, f(v))).collect();
    w.gauge("vxflow_tunnel_active_flows", "Tunnelled flows in the flow cache per tunnel type and id", &tunnel_flows)?;

    let pod = |p: &crate::snapshot::PodTraffic| vec![("namespace", p.namespace.clone()), ("pod", p.pod.clone())];
    let by_pod = |pick: fn(&crate::snapshot::PodTraffic) -> u64| -> Vec<(Labels<'_>, u64)> {
        s.pods.iter().map(|p| (pod(p), pick(p))).collect()
    };
    let each_way = |sent: fn(&crate::snapshot::PodTraffic) -> u64,
                    received: fn(&crate::snapshot::PodTraffic) -> u64| {
        s.pods
            .iter()
            .flat_map(|p| {
                let mut out = pod(p);
                out.push(("direction", "sent".to_owned()));
                let mut back = pod(p);
                back.push(("direction", "received".to_owned()));
                [(out, sent(p)), (back, received(p))]
            })
            .collect::<Vec<_>>()
    };
    w.counter(
        "vxflow_pod_tcp_opened",
        "TCP connections a pod took part in that opened (its flow with SYN), per namespace and pod",
        &by_pod(|p| p.counts.tcp_opened),
    )?;
    w.counter(
        "vxflow_pod_tcp_closed",
        "Its flows with FIN or RST, per namespace and pod",
        &by_pod(|p| p.counts.tcp_closed),
    )?;
    w.counter(
        "vxflow_pod_packets",
        "Packets a pod sent and received, per namespace, pod and direction",
        &each_way(|p| p.counts.sent_packets, |p| p.counts.received_packets),
    )?;
    w.counter(
        "vxflow_pod_bytes",
        "IP bytes a pod sent and received, per namespace, pod and direction",
        &each_way(|p| p.counts.sent_bytes, |p| p.counts.received_bytes),
    )?;

    Ok(())
}

/// The flow cache.
fn flows(w: &mut Family<'_, '_>, s: &Snapshot) -> std::fmt::Result {
    let fl = &s.flows;
    w.gauge1("vxflow_flows_active", "Flows in the userspace flow cache", f(fl.active))?;
    w.gauge1("vxflow_flows_max", "The flow cache's limit (cache.max_flows)", f(fl.max))?;
    w.counter1("vxflow_flows_created", "Flows created in the flow cache", fl.created)?;
    let expired: Vec<_> = fl.records.iter().map(|(r, n)| (vec![("reason", r.clone())], *n)).collect();
    w.counter("vxflow_flow_records", "Flow records exported, by flowEndReason", &expired)?;
    w.counter1("vxflow_exported_packets", "Packets in exported flow records", fl.exported_packets)?;
    w.counter1("vxflow_exported_bytes", "IP bytes in exported flow records", fl.exported_bytes)?;
    w.counter1(
        "vxflow_duplicate_packets",
        "Packets not counted again because another watched interface's record holds them (dedup)",
        fl.duplicate_packets,
    )?;
    w.counter1("vxflow_duplicate_bytes", "IP bytes of the duplicate packets", fl.duplicate_bytes)?;

    Ok(())
}

/// Datapath counters: outcomes, losses, notes.
fn datapath(w: &mut Family<'_, '_>, s: &Snapshot) -> std::fmt::Result {
    let dp = |c: Counter| s.datapath.get(c.name()).copied().unwrap_or(0);
    w.counter1("vxflow_datapath_seen_packets", "Packets the TC programs saw", dp(Counter::Seen))?;
    let outcomes: Vec<_> = Counter::BUCKETS
        .iter()
        .map(|&c| (vec![("outcome", c.name().trim_end_matches("_packets").to_owned())], dp(c)))
        .collect();
    w.counter(
        "vxflow_datapath_packets",
        "Packets the TC programs saw, by outcome: accounted in the flow map, fallback (flow map full, sent \
             through the ring), lost (map and ring full), non_ip, malformed, self_export (vxflow's own export), \
             unsampled (left out by sampling)",
        &outcomes,
    )?;
    w.counter1("vxflow_datapath_lost_bytes", "IP bytes of packets lost (map and ring full)", dp(Counter::LostBytes))?;
    let notes: Vec<_> = Counter::NOTES
        .iter()
        .chain(&[Counter::VlanTooDeep])
        .map(|&c| (vec![("note", c.name().trim_end_matches("_packets").to_owned())], dp(c)))
        .collect();
    w.counter("vxflow_datapath_noted_packets", "Packets with a notable property, by note", &notes)?;
    w.counter1("vxflow_datapath_gso_skbs", "GSO/GRO super-packets accounted", dp(Counter::GsoSkbs))?;
    w.counter1(
        "vxflow_datapath_slow_parse_skbs",
        "skbs parsed through bpf_skb_load_bytes instead of in place: non-linear ones (GSO/GRO super-packets, frames \
             split into pages) and IPv6 with extension headers",
        dp(Counter::SlowParse),
    )?;

    Ok(())
}

/// Export per collector.
fn collectors(w: &mut Family<'_, '_>, s: &Snapshot) -> std::fmt::Result {
    let per_collector: [(&str, &str, Pick); 7] = [
        ("vxflow_collector_records_sent", "Flow records sent to the collector", |c| c.records_sent),
        ("vxflow_collector_records_failed", "Flow records not sent (socket error or full TCP buffer)", |c| {
            c.records_failed
        }),
        ("vxflow_collector_packets_failed", "Packets in flow records not sent", |c| c.packets_failed),
        ("vxflow_collector_octets_failed", "Octets in flow records not sent", |c| c.octets_failed),
        ("vxflow_collector_records_not_carried", "Flow records the protocol cannot carry (IPv6 in NetFlow v5)", |c| {
            c.records_not_carried
        }),
        ("vxflow_collector_messages_sent", "Export messages sent", |c| c.messages_sent),
        ("vxflow_collector_send_errors", "Failed sends", |c| c.send_errors),
    ];
    for (name, help, pick) in per_collector {
        let samples: Vec<_> =
            s.collectors.iter().map(|c| (vec![("collector", c.collector.clone())], pick(c))).collect();
        w.counter(name, help, &samples)?;
    }

    Ok(())
}

/// Kernel map fill and drains.
fn kernel(w: &mut Family<'_, '_>, s: &Snapshot) -> std::fmt::Result {
    let k = &s.kernel;
    w.gauge1("vxflow_kernel_flow_map_capacity", "Entries in each kernel flow-map generation", f(k.flow_map_capacity))?;
    w.gauge1(
        "vxflow_kernel_flow_map_used",
        "Entries the last drained generation held (distinct flows of one poll interval)",
        f(k.flow_map_used),
    )?;
    w.gauge1("vxflow_kernel_fallback_ring_bytes", "Size of the fallback ring", f(k.fallback_ring_bytes))?;
    w.gauge1(
        "vxflow_sampling",
        "1 in this many IP packets is counted (kernel.sampling); records carry the sampled counts",
        f(u64::from(k.sampling.max(1))),
    )?;

    let d = &s.drains;
    w.counter1("vxflow_drains", "Drains of the kernel flow maps", d.count)?;
    w.counter1(
        "vxflow_drains_early",
        "Drains before the poll interval was up, because a burst of new flows filled the flow map",
        d.early,
    )?;
    w.counter1("vxflow_drain_errors", "Drains that failed (retried next interval)", d.errors)?;
    w.gauge1("vxflow_drain_last_seconds", "How long the last drain took", d.last_seconds)?;
    w.counter_f64("vxflow_drain_seconds", "Time spent draining, all drains together", d.total_seconds)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{CollectorCounts, InterfaceTraffic, TunnelTraffic};

    fn sample() -> Snapshot {
        let mut s = Snapshot {
            version: "9.9.9".into(),
            uptime_seconds: 12.5,
            attached: vec!["eth0".into()],
            ..Snapshot::default()
        };
        s.interfaces.push(InterfaceTraffic {
            interface: "eth0".into(),
            direction: "ingress".into(),
            packets: 7,
            bytes: 700,
        });
        let vxlan = TunnelTraffic {
            tunnel: "vxlan".into(),
            id_kind: Some("cilium_identity".into()),
            id: Some(42),
            packets: 5,
            bytes: 400,
            active_flows: 2,
        };
        s.tunnels.push(vxlan);
        let ipip =
            TunnelTraffic { tunnel: "ipip".into(), packets: 3, bytes: 300, active_flows: 1, ..Default::default() };
        s.tunnels.push(ipip);
        s.flows.active = 3;
        s.flows.records.insert("idle_timeout".into(), 11);
        s.datapath.insert("seen_packets".into(), 9);
        s.datapath.insert("lost_packets".into(), 1);
        s.collectors.push(CollectorCounts {
            collector: "ipfix://10.0.0.5:4739".into(),
            records_sent: 10,
            records_failed: 1,
            ..Default::default()
        });
        s
    }

    /// Parses the text with an independent parser and reads samples back.
    #[test]
    fn rendered_text_parses_and_carries_every_value() {
        let text = render(sample()).unwrap();
        let scrape = vxflow_testkit::metrics::Scrape::parse(&text);
        let value = |name: &str, labels: &[(&str, &str)]| scrape.value(name, labels);
        assert_eq!(value("vxflow_interface_packets_total", &[("interface", "eth0"), ("direction", "ingress")]), 7);
        assert_eq!(value("vxflow_interface_bytes_total", &[("interface", "eth0")]), 700);
        let identity = [("tunnel", "vxlan"), ("id_kind", "cilium_identity"), ("id", "42")];
        assert_eq!(value("vxflow_tunnel_packets_total", &identity), 5);
        // No id: the label is empty, which is no label.
        assert_eq!(value("vxflow_tunnel_packets_total", &[("tunnel", "ipip")]), 3);
        assert_eq!(value("vxflow_tunnel_active_flows", &[("tunnel", "vxlan"), ("id", "42")]), 2);
        assert_eq!(value("vxflow_flows_active", &[]), 3);
        assert_eq!(value("vxflow_flow_records_total", &[("reason", "idle_timeout")]), 11);
        assert_eq!(value("vxflow_datapath_seen_packets_total", &[]), 9);
        assert_eq!(value("vxflow_datapath_packets_total", &[("outcome", "lost")]), 1);
        assert_eq!(value("vxflow_collector_records_failed_total", &[("collector", "ipfix://10.0.0.5:4739")]), 1);
        assert_eq!(value("vxflow_build_info", &[("version", "9.9.9")]), 1);
        assert!(text.ends_with("# EOF\n"), "OpenMetrics text ends with # EOF");
        // Every family has HELP and TYPE lines.
        let families = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
        assert_eq!(families, text.lines().filter(|l| l.starts_with("# HELP ")).count());
        assert!(families >= 30, "{families} families");
    }
}
