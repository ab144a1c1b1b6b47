//! What the running daemon has done, as one plain value: `vxflow ctl stats`
//! prints it and the metrics endpoint renders it in Prometheus text format.
//! Taken by the drain loop between cycles, so its parts agree.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The daemon's state at one moment.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Snapshot {
    pub version: String,
    pub uptime_seconds: f64,
    /// Interfaces the programs are attached to.
    pub attached: Vec<String>,
    /// Attach attempts the kernel refused.
    pub attach_errors: u64,
    /// UDP ports parsed as VXLAN (configured, and with `auto` discovered).
    pub vxlan_ports: Vec<u16>,
    /// UDP ports parsed as Geneve (likewise).
    #[serde(default)]
    pub geneve_ports: Vec<u16>,
    /// Whether IP in IP and GRE are decoded.
    #[serde(default)]
    pub ipip_tunnels: bool,
    #[serde(default)]
    pub gre_tunnels: bool,
    /// The node's tunnel devices.
    #[serde(default)]
    pub tunnel_devices: Vec<TunnelDeviceInfo>,
    /// Attached interfaces where tunnel headers are parsed.
    #[serde(default)]
    pub tunnel_interfaces: Vec<String>,
    /// IP packets and bytes accounted per interface and direction (wire IP
    /// bytes: the outer packet for a tunnel).
    pub interfaces: Vec<InterfaceTraffic>,
    /// Inner packets, inner IP bytes and cached flows per tunnel type and id.
    #[serde(default)]
    pub tunnels: Vec<TunnelTraffic>,
    /// Per-pod traffic (`metadata.pod_metrics`), the rest under `other`.
    #[serde(default)]
    pub pods: Vec<PodTraffic>,
    pub flows: FlowCounts,
    /// Every datapath counter by name (`seen_packets`, `lost_packets`, ...).
    pub datapath: BTreeMap<String, u64>,
    pub collectors: Vec<CollectorCounts>,
    pub kernel: KernelFill,
    pub drains: DrainCounts,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct InterfaceTraffic {
    pub interface: String,
    pub direction: String,
    pub packets: u64,
    pub bytes: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TunnelDeviceInfo {
    pub device: String,
    /// `vxlan`, `geneve`, `ipip` or `gre`.
    pub tunnel: String,
    /// The VNI or GRE key, where the device has one.
    pub id: Option<u32>,
    /// The UDP port (VXLAN, Geneve), 0 otherwise.
    pub port: u16,
}

/// One pod's traffic in the records: TCP connections it took part in that
/// opened (SYN) and closed (FIN, RST), and what it sent and received.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PodTraffic {
    pub namespace: String,
    pub pod: String,
    #[serde(flatten)]
    pub counts: PodCounts,
}

/// What one pod (or `other`) counted.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PodCounts {
    pub tcp_opened: u64,
    pub tcp_closed: u64,
    pub sent_packets: u64,
    pub sent_bytes: u64,
    pub received_packets: u64,
    pub received_bytes: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TunnelTraffic {
    /// `vxlan`, `geneve`, `ipip` or `gre`.
    pub tunnel: String,
    /// What `id` is: `vni`, `key` or `cilium_identity`.
    #[serde(default)]
    pub id_kind: Option<String>,
    /// The VNI or GRE key; none for IP in IP and GRE without a key.
    pub id: Option<u32>,
    pub packets: u64,
    pub bytes: u64,
    pub active_flows: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct FlowCounts {
    /// Flows in the cache now.
    pub active: u64,
    /// The cache's limit (`cache.max_flows`).
    pub max: u64,
    pub created: u64,
    /// Records exported, by end reason (`idle_timeout`, ...).
    pub records: BTreeMap<String, u64>,
    pub exported_packets: u64,
    pub exported_bytes: u64,
    /// Packets and bytes not counted again: another watched interface's
    /// record holds them (dedup).
    pub duplicate_packets: u64,
    pub duplicate_bytes: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct CollectorCounts {
    pub collector: String,
    pub records_sent: u64,
    pub records_failed: u64,
    pub packets_failed: u64,
    pub octets_failed: u64,
    pub records_not_carried: u64,
    pub messages_sent: u64,
    pub send_errors: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct KernelFill {
    /// Entries each flow-map generation holds.
    pub flow_map_capacity: u64,
    /// Entries the last drained generation held: the distinct flows of one
    /// poll interval.
    pub flow_map_used: u64,
    pub fallback_ring_bytes: u64,
    /// 1 in this many IP packets is counted (`kernel.sampling`).
    #[serde(default)]
    pub sampling: u32,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct DrainCounts {
    pub count: u64,
    /// Of `count`, drains before the poll interval was up: the flow map
    /// had filled.
    pub early: u64,
    pub errors: u64,
    pub last_seconds: f64,
    pub total_seconds: f64,
}
