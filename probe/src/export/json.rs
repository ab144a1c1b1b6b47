//! JSON lines: one object per record, with plain field names. The output when
//! no collector is configured, so a first run shows flows.

use std::{
    io::{BufWriter, Write},
    net::IpAddr,
};

use serde::Serialize;
use vxflow_common::{
    flow::{KEY_FLAG_EXT_LIMIT, KEY_FLAG_FRAGMENT, KEY_FLAG_L4_TRUNCATED},
    user::Tunnel,
};

use super::{ExportContext, RecordSink};
use crate::{
    metadata::{OwnerKind, Resolved},
    record::FlowRecord,
    tunnel_ids::IdKind,
};

/// One record as printed.
#[derive(Serialize, Debug)]
pub struct JsonRecord<'a> {
    /// First packet, RFC 3339 with milliseconds, UTC.
    pub start: String,
    /// Last packet.
    pub end: String,
    pub interface: &'a str,
    pub ifindex: u32,
    pub direction: &'static str,
    pub ip_version: u8,
    pub protocol: String,
    pub protocol_number: u8,
    /// IPv4 TOS or IPv6 traffic class (DSCP and ECN), of the inner packet
    /// for a tunnel.
    pub tos: u8,
    pub src_addr: IpAddr,
    pub dst_addr: IpAddr,
    /// Who held the (inner) source address when the flow's last packet was
    /// seen (`[metadata]`): a pod with its namespace, node and workload, a
    /// node, or a named host. Absent when no source names it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_pod: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_node: Option<String>,
    /// `Kind/name`, as `Deployment/web`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_workload: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_host: Option<String>,
    /// The same for the destination address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst_pod: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst_namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst_node: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst_workload: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst_host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icmp_type: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icmp_code: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vlan: Option<u16>,
    /// `vxlan`, `geneve`, `ipip` or `gre`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<&'static str>,
    /// The tunnel header's id: the VNI (VXLAN, Geneve) or the GRE key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tunnel_id: Option<u32>,
    /// The VNI again, for VXLAN and Geneve, where it names a segment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vni: Option<u32>,
    /// The VNI again where it is the sender's Cilium security identity
    /// (`[vni_meaning]`), instead of `vni`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cilium_identity: Option<u32>,
    /// NVGRE's virtual subnet id: the top 24 bits of the GRE key around
    /// an Ethernet frame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vsid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outer_src_addr: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outer_dst_addr: Option<IpAddr>,
    /// The nodes the tunnel's outer addresses belong to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outer_src_node: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outer_dst_node: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outer_src_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outer_dst_port: Option<u16>,
    pub packets: u64,
    /// IP bytes; for tunnelled flows the inner packets'.
    pub bytes: u64,
    /// For tunnelled flows, the outer IP bytes on the wire.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outer_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_flags: Option<Vec<&'static str>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub fragment: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub l4_truncated: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub ipv6_ext_limit: bool,
    /// Absent for flows still in the cache (`vxflow ctl flows`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<&'static str>,
    /// With `kernel.sampling` N above 1: N. `packets` and `bytes` are then
    /// what the sample holds; multiply by N for an estimate of the traffic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sampling: Option<u32>,
}

/// IANA protocol name for the common protocols, the number otherwise.
#[must_use]
pub fn protocol_name(protocol: u8) -> String {
    match protocol {
        1 => "icmp".into(),
        2 => "igmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        47 => "gre".into(),
        50 => "esp".into(),
        51 => "ah".into(),
        58 => "ipv6-icmp".into(),
        89 => "ospf".into(),
        132 => "sctp".into(),
        n => n.to_string(),
    }
}

/// The names one address resolved to, as the JSON fields give them.
#[derive(Default)]
struct EndNames {
    pod: Option<String>,
    namespace: Option<String>,
    node: Option<String>,
    workload: Option<String>,
    host: Option<String>,
}

impl EndNames {
    fn of(resolved: &Resolved) -> Self {
        let Resolved::Owner(o) = resolved else { return Self::default() };
        let text = |t: &Option<crate::metadata::ipmap::Text>| t.as_deref().map(str::to_owned);
        let mut n = Self {
            namespace: text(&o.namespace),
            workload: o.workload.as_ref().map(|w| format!("{}/{}", w.kind, w.name)),
            ..Self::default()
        };
        let name = Some(o.name.to_string());
        match o.kind {
            OwnerKind::Pod => (n.pod, n.node) = (name, text(&o.node)),
            OwnerKind::Node => n.node = name,
            OwnerKind::Host => (n.host, n.node) = (name, text(&o.node)),
        }
        n
    }

    /// The node an address is, or runs on.
    fn node_of(resolved: &Resolved) -> Option<String> {
        Self::of(resolved).node
    }
}

/// TCP flag names, lowest bit first (tcpControlBits, IE 6).
const TCP_FLAG_NAMES: [&str; 8] = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"];

impl<'a> JsonRecord<'a> {
    #[must_use]
    pub fn new(r: &FlowRecord, interface: &'a str, ctx: &ExportContext<'_>) -> Self {
        let k = &r.key;
        let has_ports = matches!(k.protocol, 6 | 17)
            && k.flags & (KEY_FLAG_FRAGMENT | KEY_FLAG_L4_TRUNCATED | KEY_FLAG_EXT_LIMIT) == 0;
        let has_icmp = k.is_icmp() && k.flags & (KEY_FLAG_FRAGMENT | KEY_FLAG_L4_TRUNCATED) == 0;
        let tunnel = k.tunnel();
        let udp_tunnel = tunnel.is_some_and(Tunnel::is_udp);
        let id_kind = ctx.vni_meanings.of_key(k);
        let id_as = |kind| k.tunnel_id().filter(|_| id_kind == Some(kind));
        let outer = k.outer_ips();
        let ts = |ns| humantime::format_rfc3339_millis(ctx.clock.to_system_time(ns)).to_string();
        // Named by who held each address when the last packet was seen.
        let at = r.end_ns;
        let (src, dst) = (k.src_ip(), k.dst_ip());
        let src_names = EndNames::of(&ctx.metadata.resolve(&src, at));
        let dst_names = EndNames::of(&ctx.metadata.resolve(&dst, at));
        let outer_node = |ip: IpAddr| EndNames::node_of(&ctx.metadata.resolve(&ip, at));
        Self {
            start: ts(r.start_ns),
            end: ts(r.end_ns),
            interface,
            ifindex: k.ifindex,
            direction: if k.is_ingress() { "ingress" } else { "egress" },
            ip_version: k.ip_version,
            protocol: protocol_name(k.protocol),
            protocol_number: k.protocol,
            tos: k.tos,
            src_addr: src,
            dst_addr: dst,
            src_pod: src_names.pod,
            src_namespace: src_names.namespace,
            src_node: src_names.node,
            src_workload: src_names.workload,
            src_host: src_names.host,
            dst_pod: dst_names.pod,
            dst_namespace: dst_names.namespace,
            dst_node: dst_names.node,
            dst_workload: dst_names.workload,
            dst_host: dst_names.host,
            outer_src_node: outer.and_then(|(s, _)| outer_node(s)),
            outer_dst_node: outer.and_then(|(_, d)| outer_node(d)),
            src_port: has_ports.then_some(k.src_port),
            dst_port: has_ports.then_some(k.dst_port),
            icmp_type: has_icmp.then(|| k.dst_port.to_be_bytes()[0]),
            icmp_code: has_icmp.then(|| k.dst_port.to_be_bytes()[1]),
            vlan: (k.vlan_id != 0).then_some(k.vlan_id),
            tunnel: tunnel.map(Tunnel::name),
            tunnel_id: k.tunnel_id(),
            vni: id_as(IdKind::Vni),
            cilium_identity: id_as(IdKind::CiliumIdentity),
            vsid: k.nvgre_vsid(),
            outer_src_addr: outer.map(|(src, _)| src),
            outer_dst_addr: outer.map(|(_, dst)| dst),
            outer_src_port: udp_tunnel.then_some(k.outer_src_port),
            outer_dst_port: udp_tunnel.then_some(k.outer_dst_port),
            packets: r.packets,
            bytes: r.bytes,
            outer_bytes: tunnel.map(|_| r.outer_bytes),
            tcp_flags: (k.protocol == 6 && has_ports)
                .then(|| (0..8).filter(|b| r.tcp_flags & (1 << b) != 0).map(|b| TCP_FLAG_NAMES[b]).collect()),
            fragment: k.flags & KEY_FLAG_FRAGMENT != 0,
            l4_truncated: k.flags & KEY_FLAG_L4_TRUNCATED != 0,
            ipv6_ext_limit: k.flags & KEY_FLAG_EXT_LIMIT != 0,
            end_reason: Some(r.end_reason.name()),
            sampling: (ctx.sampling > 1).then_some(ctx.sampling),
        }
    }
}

/// Writes records as JSON lines to any writer (stdout by default).
pub struct JsonLines<W: Write> {
    out: BufWriter<W>,
}

impl JsonLines<std::io::Stdout> {
    #[must_use]
    pub fn stdout() -> Self {
        Self::new(std::io::stdout())
    }
}

impl<W: Write> JsonLines<W> {
    pub fn new(w: W) -> Self {
        Self { out: BufWriter::new(w) }
    }
}

impl<W: Write> RecordSink for JsonLines<W> {
    fn write(&mut self, records: &[FlowRecord], ctx: &mut ExportContext<'_>) -> std::io::Result<()> {
        for r in records {
            let name = ctx.names.name(r.key.ifindex).to_owned();
            let rec = JsonRecord::new(r, &name, ctx);
            serde_json::to_writer(&mut self.out, &rec)?;
            self.out.write_all(b"\n")?;
        }
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use vxflow_common::{
        FlowKey,
        flow::{ENCAP_GENEVE, ENCAP_GRE, ENCAP_IPIP, TUNNEL_FLAG_ETHERNET, TUNNEL_FLAG_KEY},
    };

    use super::*;
    use crate::{
        clock::WallClock,
        ifaces::NameCache,
        record::EndReason,
        tunnel_ids::{VniMeaning, VniMeaningSpec},
    };

    fn json(key: FlowKey, meanings: &crate::tunnel_ids::VniMeanings) -> serde_json::Value {
        json_named(key, meanings, &crate::metadata::IpMap::default())
    }

    fn json_named(
        key: FlowKey,
        meanings: &crate::tunnel_ids::VniMeanings,
        metadata: &crate::metadata::IpMap,
    ) -> serde_json::Value {
        let r = FlowRecord {
            key,
            start_ns: 5,
            end_ns: 10,
            packets: 1,
            bytes: 84,
            outer_bytes: 134,
            tcp_flags: 0,
            end_reason: EndReason::IdleTimeout,
        };
        let mut names = NameCache::default();
        let ctx = ExportContext {
            clock: WallClock::with_offset_ns(0),
            names: &mut names,
            ignored: super::super::options::Losses::default(),
            last: false,
            sampling: 1,
            vni_meanings: meanings,
            metadata,
        };
        serde_json::to_value(JsonRecord::new(&r, "eth0", &ctx)).unwrap()
    }

    fn tunnelled(encap: u8, id: u32, flags: u8, port: u16) -> FlowKey {
        FlowKey {
            encap,
            tunnel_id: id,
            tunnel_flags: flags,
            ip_version: 4,
            outer_ip_version: 4,
            outer_src_port: if port == 0 { 0 } else { 40000 },
            outer_dst_port: port,
            ..FlowKey::default()
        }
    }

    /// Each tunnel's fields: its name and id, the VNI under the name of what
    /// it is, NVGRE's VSID, outer ports only for UDP tunnels.
    #[test]
    fn tunnel_fields_name_what_they_carry() {
        let segment = crate::tunnel_ids::VniMeanings::default();
        let g = json(tunnelled(ENCAP_GENEVE, 5001, TUNNEL_FLAG_KEY, 6081), &segment);
        assert_eq!(
            (g["tunnel"].as_str(), g["tunnel_id"].as_u64(), g["vni"].as_u64()),
            (Some("geneve"), Some(5001), Some(5001))
        );
        assert_eq!((g["outer_dst_port"].as_u64(), g["outer_bytes"].as_u64()), (Some(6081), Some(134)));
        assert!(g.get("cilium_identity").is_none() && g.get("vsid").is_none());

        let table = [("6081".to_owned(), VniMeaning::CiliumIdentity)].into_iter().collect();
        let cilium = VniMeaningSpec::parse(&table).unwrap().resolve(std::iter::empty(), false);
        let c = json(tunnelled(ENCAP_GENEVE, 5001, TUNNEL_FLAG_KEY, 6081), &cilium);
        assert_eq!((c["cilium_identity"].as_u64(), c.get("vni")), (Some(5001), None));

        let nvgre = json(tunnelled(ENCAP_GRE, 0xabcd_ef01, TUNNEL_FLAG_KEY | TUNNEL_FLAG_ETHERNET, 0), &segment);
        assert_eq!((nvgre["tunnel"].as_str(), nvgre["vsid"].as_u64()), (Some("gre"), Some(0x00ab_cdef)));
        assert_eq!(
            (nvgre["tunnel_id"].as_u64(), nvgre.get("vni"), nvgre.get("outer_dst_port")),
            (Some(0xabcd_ef01), None, None)
        );

        let keyless = json(tunnelled(ENCAP_GRE, 0, 0, 0), &segment);
        assert_eq!((keyless["tunnel"].as_str(), keyless.get("tunnel_id")), (Some("gre"), None));
        let ipip = json(tunnelled(ENCAP_IPIP, 0, 0, 0), &segment);
        assert_eq!(
            (ipip["tunnel"].as_str(), ipip.get("tunnel_id"), ipip["outer_bytes"].as_u64()),
            (Some("ipip"), None, Some(134))
        );
        let plain = json(FlowKey { ip_version: 4, ..FlowKey::default() }, &segment);
        assert!(plain.get("tunnel").is_none() && plain.get("outer_bytes").is_none());
    }

    /// Both ends and both nodes named by who held each address at the
    /// record's last packet: a pod, a named network, two nodes.
    #[test]
    fn addresses_are_named_by_their_owner_then() {
        use crate::metadata::{IpMap, Owner, OwnerKind, ipmap::Workload};
        let mut map = IpMap::new(std::time::Duration::from_mins(2));
        let owner = |kind, name: &str| Owner {
            kind,
            name: name.into(),
            namespace: (kind == OwnerKind::Pod).then(|| "shop".into()),
            node: (kind == OwnerKind::Pod).then(|| "node-1".into()),
            workload: (kind == OwnerKind::Pod).then(|| Workload { kind: "Deployment".into(), name: "web".into() }),
            labels: crate::metadata::ipmap::Labels::default(),
        };
        map.set(&"pod/1".into(), owner(OwnerKind::Pod, "web-1"), &["10.244.0.2".parse().unwrap()], 1);
        map.set(&"node/1".into(), owner(OwnerKind::Node, "node-1"), &["192.168.56.11".parse().unwrap()], 1);
        map.set(&"node/2".into(), owner(OwnerKind::Node, "node-2"), &["192.168.56.12".parse().unwrap()], 1);
        map.set_networks(&"file/corp".into(), &owner(OwnerKind::Host, "corp"), &["10.9.0.0/16".parse().unwrap()]);
        let mut key = tunnelled(vxflow_common::flow::ENCAP_VXLAN, 1, TUNNEL_FLAG_KEY | TUNNEL_FLAG_ETHERNET, 8472);
        key.src_addr[..4].copy_from_slice(&[10, 244, 0, 2]);
        key.dst_addr[..4].copy_from_slice(&[10, 9, 0, 7]);
        key.outer_src_addr[..4].copy_from_slice(&[192, 168, 56, 11]);
        key.outer_dst_addr[..4].copy_from_slice(&[192, 168, 56, 12]);
        let j = json_named(key, &crate::tunnel_ids::VniMeanings::default(), &map);
        let field = |f: &str| j[f].as_str().map(str::to_owned);
        assert_eq!(field("src_pod").as_deref(), Some("web-1"));
        assert_eq!(field("src_namespace").as_deref(), Some("shop"));
        assert_eq!(field("src_node").as_deref(), Some("node-1"));
        assert_eq!(field("src_workload").as_deref(), Some("Deployment/web"));
        assert_eq!((field("dst_host").as_deref(), field("dst_pod")), (Some("corp"), None));
        assert_eq!(field("outer_src_node").as_deref(), Some("node-1"));
        assert_eq!(field("outer_dst_node").as_deref(), Some("node-2"));
        // Before the pod held its address (the record's last packet at 0):
        // its network's name or nothing, never the pod's.
        map.remove(&"pod/1".into(), 8);
        let j = json_named(key, &crate::tunnel_ids::VniMeanings::default(), &map);
        assert!(j.get("src_pod").is_none(), "{j}");
    }
}
