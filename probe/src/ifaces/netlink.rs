//! What interfaces the node has, through rtnetlink: every link with its
//! tunnel settings (VXLAN or Geneve VNI and UDP port, GRE key, the
//! underlay it sends through), the interfaces default routes leave by,
//! and a stream of link and route changes so vxflow follows interfaces that
//! come and go (pod veths, a re-created `flannel.1`).

use std::collections::BTreeSet;

use futures_util::{StreamExt as _, TryStreamExt as _};
use netlink_packet_route::{
    link::{
        InfoData, InfoGeneve, InfoGre, InfoGre6, InfoIpTunnel, InfoKind, InfoVxlan, LinkAttribute, LinkInfo,
        LinkMessage,
    },
    route::{RouteAttribute, RouteHeader, RouteMessage},
};
use netlink_sys::{AsyncSocket as _, SocketAddr};
use rtnetlink::{
    Handle, RouteMessageBuilder,
    constants::{RTMGRP_IPV4_ROUTE, RTMGRP_IPV6_ROUTE, RTMGRP_LINK},
};
use vxflow_common::user::Tunnel;

/// A tunnel device's settings: a VXLAN, Geneve, IP-in-IP (ipip, sit,
/// ip6tnl) or GRE (gre, gretap, ip6gre, ip6gretap) device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TunnelDevice {
    pub tunnel: Tunnel,
    /// The VNI (`IFLA_VXLAN_ID`, `IFLA_GENEVE_ID`) or the GRE input key
    /// (`IFLA_GRE_IKEY`), where the device has one.
    pub id: Option<u32>,
    /// UDP destination port (VXLAN, Geneve), 0 otherwise.
    pub port: u16,
    /// The interface it sends and receives through (`dev` in iproute2),
    /// 0 when not set: an underlay.
    pub lower: u32,
}

/// One interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    /// The name; for one that is not UTF-8, its bytes escaped (`bad\xff`),
    /// see `name_is_escaped`.
    pub name: String,
    /// The name is not UTF-8: tools that name interfaces (aya, tc) cannot
    /// reach it, only its index can.
    pub name_is_escaped: bool,
    /// Set for tunnel devices.
    pub tunnel: Option<TunnelDevice>,
}

/// The node's interfaces at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inventory {
    pub links: Vec<Link>,
    /// Interfaces a default route (IPv4 or IPv6, main table) leaves by: the
    /// underlay.
    pub default_route: BTreeSet<u32>,
}

impl Inventory {
    /// The tunnel devices.
    pub fn tunnel_devices(&self) -> impl Iterator<Item = (&Link, TunnelDevice)> {
        self.links.iter().filter_map(|l| l.tunnel.map(|t| (l, t)))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("opening a netlink socket (vxflow needs AF_NETLINK to find interfaces)")]
    Socket(#[source] std::io::Error),
    #[error("listing interfaces and routes over netlink")]
    Dump(#[source] rtnetlink::Error),
}

/// A netlink connection that lists interfaces and hears of changes.
pub struct Discovery {
    handle: Handle,
    events: futures_channel::mpsc::UnboundedReceiver<(
        netlink_packet_core::NetlinkMessage<netlink_packet_route::RouteNetlinkMessage>,
        SocketAddr,
    )>,
}

impl Discovery {
    /// Opens the connection on the current tokio runtime and subscribes to
    /// link and route changes.
    ///
    /// # Errors
    /// When no netlink socket can be opened or bound.
    pub fn open() -> Result<Self, DiscoveryError> {
        let (mut connection, handle, events) = rtnetlink::new_connection().map_err(DiscoveryError::Socket)?;
        let groups = RTMGRP_LINK | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE;
        connection.socket_mut().socket_mut().bind(&SocketAddr::new(0, groups)).map_err(DiscoveryError::Socket)?;
        tokio::spawn(connection);
        Ok(Self { handle, events })
    }

    /// Waits for the next link or route change, then takes every change
    /// already queued with it, so a burst costs one rescan.
    pub async fn changed(&mut self) {
        if self.events.next().await.is_none() {
            // The connection ended; never report a change again.
            std::future::pending::<()>().await;
        }
        while self.events.try_recv().is_ok() {}
    }

    /// Lists every link and the default routes.
    ///
    /// # Errors
    /// When a netlink dump fails.
    pub async fn inventory(&self) -> Result<Inventory, DiscoveryError> {
        let links: Vec<LinkMessage> =
            self.handle.link().get().execute().try_collect().await.map_err(DiscoveryError::Dump)?;
        let mut default_route = BTreeSet::new();
        for request in [
            RouteMessageBuilder::<std::net::Ipv4Addr>::new().build(),
            RouteMessageBuilder::<std::net::Ipv6Addr>::new().build(),
        ] {
            let routes: Vec<RouteMessage> =
                self.handle.route().get(request).execute().try_collect().await.map_err(DiscoveryError::Dump)?;
            default_route.extend(routes.iter().flat_map(default_route_interfaces));
        }
        let mut links: Vec<Link> = links.iter().filter_map(link_of).collect();
        // rtnetlink cannot decode a link whose name is not UTF-8 and leaves
        // it out; the kernel's index list has it.
        for (index, name) in crate::ifaces::all_names() {
            if let Err(escaped) = name
                && !links.iter().any(|l| l.index == index)
            {
                links.push(Link { index, name: escaped, name_is_escaped: true, tunnel: None });
            }
        }
        Ok(Inventory { links, default_route })
    }
}

fn link_of(msg: &LinkMessage) -> Option<Link> {
    let mut name = None;
    let mut tunnel = None;
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => name = Some(n.clone()),
            LinkAttribute::LinkInfo(infos) => tunnel = tunnel_of(infos),
            _ => {}
        }
    }
    Some(Link { index: msg.header.index, name: name?, name_is_escaped: false, tunnel })
}

/// The tunnel settings of a link's `IFLA_LINKINFO`, if it is a tunnel.
pub(crate) fn tunnel_of(infos: &[LinkInfo]) -> Option<TunnelDevice> {
    let kind = infos.iter().find_map(|i| if let LinkInfo::Kind(k) = i { Some(k) } else { None })?;
    let tunnel = match kind {
        InfoKind::Vxlan => Tunnel::Vxlan,
        InfoKind::Geneve => Tunnel::Geneve,
        InfoKind::IpIp | InfoKind::SitTun | InfoKind::Ip6Tnl => Tunnel::Ipip,
        InfoKind::GreTun | InfoKind::GreTap | InfoKind::GreTun6 | InfoKind::GreTap6 => Tunnel::Gre,
        _ => return None,
    };
    let mut device = TunnelDevice { tunnel, id: None, port: 0, lower: 0 };
    for info in infos {
        let LinkInfo::Data(data) = info else { continue };
        match data {
            InfoData::Vxlan(attrs) => {
                for a in attrs {
                    match a {
                        InfoVxlan::Id(vni) => device.id = Some(*vni),
                        InfoVxlan::Port(port) => device.port = *port,
                        InfoVxlan::Link(index) => device.lower = *index,
                        _ => {}
                    }
                }
            }
            InfoData::Geneve(attrs) => {
                // A Geneve device has no lower device: it sends by route.
                for a in attrs {
                    match a {
                        InfoGeneve::Id(vni) => device.id = Some(*vni),
                        InfoGeneve::Port(port) => device.port = *port,
                        _ => {}
                    }
                }
            }
            InfoData::GreTun(attrs) | InfoData::GreTap(attrs) => {
                for a in attrs {
                    match a {
                        InfoGre::IKey(key) => device.id = Some(*key),
                        InfoGre::Link(index) => device.lower = *index,
                        _ => {}
                    }
                }
            }
            InfoData::GreTun6(attrs) | InfoData::GreTap6(attrs) => {
                for a in attrs {
                    match a {
                        InfoGre6::IKey(key) => device.id = Some(*key),
                        InfoGre6::Link(index) => device.lower = *index,
                        _ => {}
                    }
                }
            }
            InfoData::IpTunnel(attrs) => {
                for a in attrs {
                    if let InfoIpTunnel::Link(index) = a {
                        device.lower = *index;
                    }
                }
            }
            _ => {}
        }
    }
    // Geneve's port attribute is absent when it is the default.
    if tunnel == Tunnel::Geneve && device.port == 0 {
        device.port = GENEVE_DEFAULT_PORT;
    }
    Some(device)
}

/// The kernel's Geneve port when the device was made without one.
const GENEVE_DEFAULT_PORT: u16 = 6081;

/// The interfaces a default route in the main table leaves by (one, or
/// several for a multipath route).
fn default_route_interfaces(route: &RouteMessage) -> Vec<u32> {
    if route.header.destination_prefix_length != 0 {
        return Vec::new();
    }
    let table = route
        .attributes
        .iter()
        .find_map(|a| if let RouteAttribute::Table(t) = a { Some(*t) } else { None })
        .unwrap_or(u32::from(route.header.table));
    if table != u32::from(RouteHeader::RT_TABLE_MAIN) {
        return Vec::new();
    }
    route
        .attributes
        .iter()
        .flat_map(|a| match a {
            RouteAttribute::Oif(index) => vec![*index],
            RouteAttribute::MultiPath(hops) => hops.iter().map(|h| h.interface_index).collect(),
            _ => Vec::new(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use netlink_packet_route::link::{InfoData, InfoGeneve, InfoGre, InfoIpTunnel, InfoKind, InfoVxlan, LinkInfo};
    use vxflow_common::user::Tunnel;

    use super::{TunnelDevice, tunnel_of};

    /// What the kernel says of each tunnel device kind, as rtnetlink
    /// decodes it: its type, id, port and lower device.
    #[test]
    fn every_tunnel_device_kind_is_read() {
        let vxlan = [
            LinkInfo::Kind(InfoKind::Vxlan),
            LinkInfo::Data(InfoData::Vxlan(vec![InfoVxlan::Id(1), InfoVxlan::Port(8472), InfoVxlan::Link(2)])),
        ];
        assert_eq!(tunnel_of(&vxlan), Some(TunnelDevice { tunnel: Tunnel::Vxlan, id: Some(1), port: 8472, lower: 2 }));
        // Geneve without a port attribute: the kernel's default.
        let geneve = [LinkInfo::Kind(InfoKind::Geneve), LinkInfo::Data(InfoData::Geneve(vec![InfoGeneve::Id(5000)]))];
        assert_eq!(
            tunnel_of(&geneve),
            Some(TunnelDevice { tunnel: Tunnel::Geneve, id: Some(5000), port: 6081, lower: 0 })
        );
        let gretap = [
            LinkInfo::Kind(InfoKind::GreTap),
            LinkInfo::Data(InfoData::GreTap(vec![InfoGre::IKey(0x1234), InfoGre::Link(3)])),
        ];
        assert_eq!(tunnel_of(&gretap), Some(TunnelDevice { tunnel: Tunnel::Gre, id: Some(0x1234), port: 0, lower: 3 }));
        let tunl = [LinkInfo::Kind(InfoKind::IpIp), LinkInfo::Data(InfoData::IpTunnel(vec![InfoIpTunnel::Link(4)]))];
        assert_eq!(tunnel_of(&tunl), Some(TunnelDevice { tunnel: Tunnel::Ipip, id: None, port: 0, lower: 4 }));
        for kind in [InfoKind::SitTun, InfoKind::Ip6Tnl] {
            assert_eq!(tunnel_of(&[LinkInfo::Kind(kind)]).map(|d| d.tunnel), Some(Tunnel::Ipip));
        }
        assert_eq!(tunnel_of(&[LinkInfo::Kind(InfoKind::Veth)]), None);
        assert_eq!(tunnel_of(&[]), None);
    }
}
