//! What interfaces the node has, through rtnetlink: every link with its
//! VXLAN settings (VNI, UDP port), the interfaces default routes leave by,
//! and a stream of link and route changes so vxflow follows interfaces that
//! come and go (pod veths, a re-created `flannel.1`).

use std::collections::BTreeSet;

use futures_util::{StreamExt as _, TryStreamExt as _};
use netlink_packet_route::{
    link::{InfoData, InfoKind, InfoVxlan, LinkAttribute, LinkInfo, LinkMessage},
    route::{RouteAttribute, RouteHeader, RouteMessage},
};
use netlink_sys::{AsyncSocket as _, SocketAddr};
use rtnetlink::{
    Handle, RouteMessageBuilder,
    constants::{RTMGRP_IPV4_ROUTE, RTMGRP_IPV6_ROUTE, RTMGRP_LINK},
};

/// A VXLAN device's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VxlanDevice {
    /// VXLAN network identifier (`IFLA_VXLAN_ID`).
    pub vni: u32,
    /// UDP destination port (`IFLA_VXLAN_PORT`).
    pub port: u16,
    /// The interface it sends and receives through (`IFLA_VXLAN_LINK`,
    /// `dev` in iproute2), 0 when not set: an underlay.
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
    /// Set for VXLAN devices.
    pub vxlan: Option<VxlanDevice>,
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
    /// The VXLAN devices.
    pub fn vxlan_devices(&self) -> impl Iterator<Item = (&Link, VxlanDevice)> {
        self.links.iter().filter_map(|l| l.vxlan.map(|v| (l, v)))
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
                links.push(Link { index, name: escaped, name_is_escaped: true, vxlan: None });
            }
        }
        Ok(Inventory { links, default_route })
    }
}

fn link_of(msg: &LinkMessage) -> Option<Link> {
    let mut name = None;
    let mut vxlan = None;
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => name = Some(n.clone()),
            LinkAttribute::LinkInfo(infos) => vxlan = vxlan_of(infos),
            _ => {}
        }
    }
    Some(Link { index: msg.header.index, name: name?, name_is_escaped: false, vxlan })
}

fn vxlan_of(infos: &[LinkInfo]) -> Option<VxlanDevice> {
    if !infos.iter().any(|i| matches!(i, LinkInfo::Kind(InfoKind::Vxlan))) {
        return None;
    }
    let mut device = VxlanDevice { vni: 0, port: 0, lower: 0 };
    for info in infos {
        if let LinkInfo::Data(InfoData::Vxlan(attrs)) = info {
            for a in attrs {
                match a {
                    InfoVxlan::Id(vni) => device.vni = *vni,
                    InfoVxlan::Port(port) => device.port = *port,
                    InfoVxlan::Link(index) => device.lower = *index,
                    _ => {}
                }
            }
        }
    }
    Some(device)
}

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
