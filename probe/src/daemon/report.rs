//! Builds the [`Snapshot`] of the running daemon, for `vxflow ctl stats` and
//! the metrics endpoint.

use std::collections::BTreeMap;

use vxflow_common::Counter;

use super::Daemon;
use crate::{
    clock::WallClock,
    control::{Request, Response},
    drain::DeltaSource as _,
    export::{ExportContext, json::JsonRecord, options::Losses},
    record::EndReason,
    snapshot::{CollectorCounts, DrainCounts, FlowCounts, InterfaceTraffic, KernelFill, Snapshot, TunnelTraffic},
    tunnel_ids::IdKind,
};

impl Daemon {
    pub(super) fn snapshot(&mut self) -> Snapshot {
        let p = &mut self.pipeline;
        let counters = p.source.counters().unwrap_or_default();
        let interfaces = p
            .tally
            .interfaces
            .iter()
            .map(|(&(ifindex, ingress), t)| InterfaceTraffic {
                interface: p.names.name(ifindex).to_owned(),
                direction: if ingress { "ingress" } else { "egress" }.to_owned(),
                packets: t.packets,
                bytes: t.bytes,
            })
            .collect();
        let mut active = p.cache.flows_per_tunnel();
        // By tunnel, what its id is, and id: tunnels on several ports whose
        // ids mean the same add up.
        let mut by_id: BTreeMap<(&'static str, Option<&'static str>, Option<u32>), TunnelTraffic> = BTreeMap::new();
        for (tunnel, t) in &p.tally.tunnels {
            let kind = p.vni_meanings.id_kind(tunnel).map(IdKind::name);
            let e = by_id.entry((tunnel.tunnel.name(), kind, tunnel.id)).or_insert_with(|| TunnelTraffic {
                tunnel: tunnel.tunnel.name().to_owned(),
                id_kind: kind.map(str::to_owned),
                id: tunnel.id,
                ..TunnelTraffic::default()
            });
            e.packets += t.packets;
            e.bytes += t.bytes;
            e.active_flows += active.remove(tunnel).unwrap_or(0);
        }
        debug_assert!(active.is_empty(), "a cached tunnelled flow whose tunnel was never drained");
        let tunnels: Vec<TunnelTraffic> = by_id.into_values().collect();
        let stats = p.cache.stats();
        let flows = FlowCounts {
            active: p.cache.len() as u64,
            max: self.config.cache.max_flows as u64,
            created: stats.created,
            records: EndReason::ALL.iter().map(|&r| (r.name().to_owned(), stats.records_for(r))).collect(),
            exported_packets: stats.packets,
            exported_bytes: stats.bytes,
            duplicate_packets: stats.duplicate_packets,
            duplicate_bytes: stats.duplicate_bytes,
        };
        let collectors = p
            .outputs
            .collector_stats()
            .into_iter()
            .map(|c| CollectorCounts {
                collector: c.name,
                records_sent: c.stats.records_sent,
                records_failed: c.stats.not_sent.flows,
                packets_failed: c.stats.not_sent.packets,
                octets_failed: c.stats.not_sent.octets,
                records_not_carried: c.stats.records_not_carried,
                messages_sent: c.stats.messages_sent,
                send_errors: c.stats.send_errors,
            })
            .collect();
        Snapshot {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            uptime_seconds: self.started.elapsed().as_secs_f64(),
            attached: self.datapath.interfaces(),
            attach_errors: self.interfaces.attach_errors,
            vxlan_ports: self.interfaces.tunnels.vxlan_ports().to_vec(),
            geneve_ports: self.interfaces.tunnels.geneve_ports().to_vec(),
            ipip_tunnels: self.interfaces.tunnels.ipip(),
            gre_tunnels: self.interfaces.tunnels.gre(),
            tunnel_devices: self.interfaces.tunnel_devices.clone(),
            tunnel_interfaces: self.interfaces.tunnel_interfaces.values().cloned().collect(),
            interfaces,
            tunnels,
            pods: p.pod_stats.as_ref().map(crate::metadata::pod_stats::PodStats::rows).unwrap_or_default(),
            flows,
            datapath: Counter::ALL.iter().map(|&c| (c.name().to_owned(), counters.get(c))).collect(),
            collectors,
            kernel: KernelFill {
                flow_map_capacity: u64::from(self.config.load.flow_entries),
                flow_map_used: p.source.last_map_entries() as u64,
                fallback_ring_bytes: u64::from(self.config.load.fallback_ring_bytes),
                sampling: self.config.load.sampling,
            },
            drains: DrainCounts {
                count: p.totals.drains,
                early: p.totals.early_drains,
                errors: p.totals.drain_errors,
                last_seconds: p.last_drain.as_secs_f64(),
                total_seconds: p.drain_time.as_secs_f64(),
            },
        }
    }
}

impl Daemon {
    /// Answers a `vxflow ctl` request or a metrics scrape, between cycles.
    pub(super) fn answer(&mut self, request: Request) -> Response {
        match request {
            Request::Stats => Response::Stats(Box::new(self.snapshot())),
            Request::Flows { limit } => {
                let flows = self.pipeline.cache.peek(limit);
                let ctx = ExportContext {
                    clock: WallClock::now(),
                    names: &mut self.pipeline.names,
                    ignored: Losses::default(),
                    last: false,
                    sampling: self.config.load.sampling,
                    vni_meanings: &self.pipeline.vni_meanings,
                    metadata: self.pipeline.metadata.map(),
                };
                let mut out = Vec::with_capacity(flows.len());
                for r in &flows {
                    let name = ctx.names.name(r.key.ifindex).to_owned();
                    let mut json = JsonRecord::new(r, &name, &ctx);
                    json.end_reason = None;
                    out.push(serde_json::to_value(&json).unwrap_or_default());
                }
                Response::Flows(out)
            }
            Request::Pods => {
                let clock = WallClock::now();
                let ts = |ns| humantime::format_rfc3339_millis(clock.to_system_time(ns)).to_string();
                let mut pods: Vec<crate::control::PodEntry> = self
                    .pipeline
                    .metadata
                    .map()
                    .entries()
                    .map(|(ip, id, owner, since, until)| crate::control::PodEntry {
                        ip,
                        kind: owner.map_or("-", |o| o.kind.name()).to_owned(),
                        name: owner.map_or_else(String::new, |o| o.name.to_string()),
                        namespace: owner.and_then(|o| o.namespace.as_deref().map(str::to_owned)),
                        node: owner.and_then(|o| o.node.as_deref().map(str::to_owned)),
                        workload: owner.and_then(|o| o.workload.as_ref().map(|w| format!("{}/{}", w.kind, w.name))),
                        source: crate::metadata::ipmap::source(id).to_owned(),
                        since: ts(since),
                        until: until.map(ts),
                    })
                    .collect();
                pods.sort_by(|a, b| (a.ip, &a.since).cmp(&(b.ip, &b.since)));
                let mut networks: Vec<crate::control::NetworkEntry> = self
                    .pipeline
                    .metadata
                    .map()
                    .network_entries()
                    .map(|(network, id, owner)| crate::control::NetworkEntry {
                        network,
                        kind: owner.kind.name().to_owned(),
                        name: owner.name.to_string(),
                        namespace: owner.namespace.as_deref().map(str::to_owned),
                        node: owner.node.as_deref().map(str::to_owned),
                        source: crate::metadata::ipmap::source(id).to_owned(),
                    })
                    .collect();
                networks.sort_by_key(|n| n.network);
                Response::Pods(crate::control::Names { addresses: pods, networks })
            }
            Request::ExpireAll => match self.pipeline.expire_all() {
                Ok(records) => {
                    tracing::info!(records, "every cached flow expired on request (vxflow ctl expire-all)");
                    Response::Expired { records }
                }
                Err(error) => Response::Error(crate::error_chain(&error)),
            },
        }
    }
}
