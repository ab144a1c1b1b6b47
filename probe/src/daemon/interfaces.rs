//! Keeps the attached interfaces equal to what the configuration selects on
//! what the node has now: attaches to interfaces that appear (pod veths, a
//! re-created `flannel.1`), lets go of those that vanish, and parses the UDP
//! ports of discovered VXLAN and Geneve devices as their tunnels.

use std::collections::{BTreeMap, BTreeSet};

use vxflow_common::user::Tunnel;

use super::Daemon;
use crate::{
    datapath::TunnelDecoding,
    ifaces::netlink::{Discovery, Inventory},
    snapshot::TunnelDeviceInfo,
};

/// What the daemon tracks about interfaces between rescans.
#[derive(Debug, Default)]
pub(super) struct InterfaceState {
    /// Named interfaces (no wildcard) already reported missing.
    missing: BTreeSet<String>,
    /// Attach attempts the kernel refused.
    pub attach_errors: u64,
    /// The tunnels the datapath decodes now.
    pub tunnels: TunnelDecoding,
    /// The node's tunnel devices at the last rescan.
    pub tunnel_devices: Vec<TunnelDeviceInfo>,
    /// Discovered ports already reported as taken by the other tunnel kind.
    port_conflicts: BTreeSet<u16>,
    /// Watched interfaces where tunnel headers are parsed, by index, with
    /// their names.
    pub tunnel_interfaces: BTreeMap<u32, String>,
    /// Whether the last rescan found nothing to watch (reported once).
    idle: bool,
    /// Interfaces whose names are not UTF-8, already reported.
    escaped_names: BTreeSet<u32>,
}

impl InterfaceState {
    /// Starts with the tunnels the datapath was loaded with.
    pub fn new(configured: &TunnelDecoding) -> Self {
        Self { tunnels: configured.clone(), ..Self::default() }
    }
}

impl Daemon {
    /// Lists the node's interfaces and reconciles; a failed listing is
    /// logged and retried at the next change or periodic rescan.
    pub(super) async fn rescan(&mut self, discovery: &Discovery) {
        match discovery.inventory().await {
            Ok(inventory) => self.reconcile(&inventory),
            Err(error) => tracing::warn!(error = %crate::error_chain(&error), "cannot list interfaces; retrying later"),
        }
    }

    fn reconcile(&mut self, inv: &Inventory) {
        let spec = &self.config.watch;
        let wanted: Vec<(String, u32)> =
            inv.links.iter().filter(|l| spec.wants(l, inv)).map(|l| (l.name.clone(), l.index)).collect();
        let escaped: BTreeSet<u32> = inv.links.iter().filter(|l| l.name_is_escaped).map(|l| l.index).collect();
        let mut released = Vec::new();
        for (name, index) in self.datapath.attached() {
            if wanted.contains(&(name.clone(), index)) {
                continue;
            }
            released.push(index);
            if inv.links.iter().any(|l| l.index == index && l.name == name) {
                self.datapath.detach(&name);
            } else {
                // Gone (or re-created under a new index): the kernel took
                // the programs with the device.
                self.datapath.forget(&name);
                tracing::info!(iface = %name, ifindex = index, "interface vanished; its flows stay in the cache");
            }
        }
        if !released.is_empty() {
            // What those interfaces counted before they went is still in the
            // kernel map: take it in first, so a late delta does not claim
            // its flow back after the release.
            if let Err(error) = self.pipeline.cycle(false) {
                tracing::error!(error = %crate::error_chain(&error), "drain before releasing interfaces failed");
            }
            for index in released {
                self.pipeline.cache.release_interface(index);
            }
        }
        // Trust is set before attaching, so a new underlay's first packets
        // are parsed as tunnels already.
        self.follow_tunnel_trust(inv, &wanted);
        let attached = self.datapath.attached();
        for (name, index) in &wanted {
            if attached.contains(&(name.clone(), *index)) {
                continue;
            }
            let attached = if escaped.contains(index) {
                self.datapath.attach_by_index(name, *index)
            } else {
                self.datapath.attach(name)
            };
            match attached {
                Ok(()) => self.pipeline.names.remember(*index, name),
                Err(error) => {
                    self.interfaces.attach_errors += 1;
                    tracing::error!(iface = %name, error = %crate::error_chain(&error), "cannot attach; retrying at the next interface change");
                }
            }
        }
        self.report_missing(inv);
        self.report_escaped_names(inv);
        self.follow_tunnel_ports(inv);
        let idle = self.datapath.attached().is_empty();
        if idle && !self.interfaces.idle {
            tracing::warn!(interfaces = ?self.config.interfaces, "no interface matches; waiting for one to appear");
        }
        self.interfaces.idle = idle;
    }

    /// Parses tunnel headers on the watched interfaces `tunnel_interfaces`
    /// trusts, and nowhere else.
    fn follow_tunnel_trust(&mut self, inv: &Inventory, wanted: &[(String, u32)]) {
        let trusted: BTreeMap<u32, String> = inv
            .links
            .iter()
            .filter(|l| wanted.iter().any(|(_, i)| *i == l.index) && self.config.tunnels.trusts_tunnels(l, inv))
            .map(|l| (l.index, l.name.clone()))
            .collect();
        if trusted == self.interfaces.tunnel_interfaces {
            return;
        }
        let indexes: BTreeSet<u32> = trusted.keys().copied().collect();
        match self.datapath.set_tunnel_interfaces(&indexes) {
            Ok(()) => {
                let names: Vec<&String> = trusted.values().collect();
                tracing::info!(interfaces = ?names, "tunnel headers parsed on these interfaces only");
                self.interfaces.tunnel_interfaces = trusted;
            }
            Err(error) => tracing::error!(error = %crate::error_chain(&error), "cannot set where tunnels are parsed"),
        }
    }

    /// Says once about each interface whose name is not UTF-8 that records
    /// and logs show it escaped; such an interface is attached by index
    /// (TCX only).
    fn report_escaped_names(&mut self, inv: &Inventory) {
        for link in inv.links.iter().filter(|l| l.name_is_escaped) {
            if self.interfaces.escaped_names.insert(link.index) {
                tracing::warn!(
                    ifindex = link.index,
                    name = %link.name,
                    "interface name is not UTF-8: records and logs show it escaped; it can be watched with TCX only"
                );
            }
        }
    }

    /// Warns once about each named interface the node lacks, and says when
    /// it appears.
    fn report_missing(&mut self, inv: &Inventory) {
        let names: Vec<String> = self.config.watch.names().map(str::to_owned).collect();
        for name in names {
            let present = inv.links.iter().any(|l| l.name == name);
            if !present && self.interfaces.missing.insert(name.clone()) {
                tracing::warn!(iface = %name, "interface does not exist (yet); it will be attached when it appears");
            } else if present && self.interfaces.missing.remove(&name) {
                tracing::info!(iface = %name, "interface appeared");
            }
        }
    }

    /// What each VXLAN and Geneve port's VNI means, from `[vni_meaning]`
    /// and the node's devices; logged when it changes.
    fn follow_vni_meanings(&mut self, inv: &Inventory) {
        let devices = inv.tunnel_devices().filter(|(_, t)| t.tunnel.is_udp()).map(|(l, t)| (l.name.as_str(), t.port));
        let meanings = self.config.vni_meaning.resolve(devices, self.config.watch.is_auto());
        if meanings != self.pipeline.vni_meanings {
            tracing::info!(
                ports = ?meanings.ports(),
                "VNI meanings set: VNIs on these UDP ports are not segments (JSON and metrics name them so)"
            );
            self.pipeline.vni_meanings = meanings;
        }
    }

    /// With `auto`, the UDP ports of the node's VXLAN and Geneve devices
    /// join the configured ones, so an overlay on any port is parsed. A
    /// discovered port the other kind is configured with stays that kind,
    /// reported once.
    fn follow_tunnel_ports(&mut self, inv: &Inventory) {
        self.interfaces.tunnel_devices = inv
            .tunnel_devices()
            .map(|(l, t)| TunnelDeviceInfo {
                device: l.name.clone(),
                tunnel: t.tunnel.name().to_owned(),
                id: t.id,
                port: t.port,
            })
            .collect();
        self.follow_vni_meanings(inv);
        let configured = &self.config.load.tunnels;
        let (wanted, conflicts) = if self.config.watch.is_auto() {
            let ports = |kind| inv.tunnel_devices().filter(|(_, t)| t.tunnel == kind).map(|(_, t)| t.port).collect();
            let (vxlan, geneve): (Vec<u16>, Vec<u16>) = (ports(Tunnel::Vxlan), ports(Tunnel::Geneve));
            configured.with_ports(&vxlan, &geneve)
        } else {
            (configured.clone(), Vec::new())
        };
        for port in conflicts {
            if self.interfaces.port_conflicts.insert(port) {
                tracing::warn!(
                    port,
                    "a tunnel device uses a UDP port configured for the other tunnel type; the configuration wins"
                );
            }
        }
        if wanted == self.interfaces.tunnels {
            return;
        }
        match self.datapath.set_tunnel_decoding(&wanted) {
            Ok(()) => {
                tracing::info!(
                    vxlan_ports = ?wanted.vxlan_ports(),
                    geneve_ports = ?wanted.geneve_ports(),
                    devices = ?self.interfaces.tunnel_devices,
                    "tunnel ports set"
                );
                self.interfaces.tunnels = wanted;
            }
            Err(error) => tracing::error!(error = %crate::error_chain(&error), "cannot set the tunnel ports"),
        }
    }
}
