//! What a tunnel's id means, so records and metrics name it right. A GRE
//! key is a key. A VXLAN or Geneve VNI names a virtual network segment,
//! except under Cilium, whose VXLAN and Geneve modes carry the sending
//! endpoint's security identity in it: there the configuration (or, with
//! `auto`, Cilium's own device names) says so, per UDP port.

use std::collections::BTreeMap;

use serde::Deserialize;
use vxflow_common::{FlowKey, user::Tunnel};

/// What a VXLAN or Geneve VNI means (`[vni_meaning]` values).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VniMeaning {
    /// A virtual network segment (RFC 7348, RFC 8926).
    #[default]
    Segment,
    /// The sender's Cilium security identity.
    CiliumIdentity,
}

/// What a record's tunnel id is, as JSON fields and metric labels name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IdKind {
    Vni,
    Key,
    CiliumIdentity,
}

impl IdKind {
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            IdKind::Vni => "vni",
            IdKind::Key => "key",
            IdKind::CiliumIdentity => "cilium_identity",
        }
    }
}

/// A tunnel as the daemon tallies it: type, id, and the UDP port that
/// decides what a VNI means (0 for GRE and IP in IP).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TunnelRef {
    pub tunnel: Tunnel,
    pub id: Option<u32>,
    pub port: u16,
}

impl TunnelRef {
    /// The tunnel a flow was seen in, `None` for plain traffic.
    #[must_use]
    pub fn of(key: &FlowKey) -> Option<Self> {
        let tunnel = key.tunnel()?;
        let port = if tunnel.is_udp() { key.outer_dst_port } else { 0 };
        Some(Self { tunnel, id: key.tunnel_id(), port })
    }
}

/// The VNI's meaning on each UDP tunnel port where it is not a segment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VniMeanings {
    ports: BTreeMap<u16, VniMeaning>,
}

impl VniMeanings {
    /// What the id of tunnel `t` is; `None` when it has none.
    #[must_use]
    pub fn id_kind(&self, t: &TunnelRef) -> Option<IdKind> {
        t.id?;
        Some(match t.tunnel {
            Tunnel::Gre => IdKind::Key,
            Tunnel::Ipip => return None,
            Tunnel::Vxlan | Tunnel::Geneve => match self.ports.get(&t.port) {
                Some(VniMeaning::CiliumIdentity) => IdKind::CiliumIdentity,
                _ => IdKind::Vni,
            },
        })
    }

    /// What the id of the tunnel `key` was seen in is.
    #[must_use]
    pub fn of_key(&self, key: &FlowKey) -> Option<IdKind> {
        TunnelRef::of(key).and_then(|t| self.id_kind(&t))
    }

    /// The ports whose VNI is not a segment, for logs.
    #[must_use]
    pub fn ports(&self) -> &BTreeMap<u16, VniMeaning> {
        &self.ports
    }
}

/// The configuration's `[vni_meaning]`: by UDP port (`8472 = ...`) or by
/// tunnel device name (`cilium_vxlan = ...`, followed to its port).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VniMeaningSpec {
    ports: BTreeMap<u16, VniMeaning>,
    devices: BTreeMap<String, VniMeaning>,
}

/// The name prefix of Cilium's tunnel devices (`cilium_vxlan`,
/// `cilium_geneve`).
const CILIUM_DEVICE_PREFIX: &str = "cilium_";

impl VniMeaningSpec {
    /// Reads the table as written.
    ///
    /// # Errors
    /// The first key that is neither a port (1 to 65535) nor an interface
    /// name.
    pub fn parse(table: &BTreeMap<String, VniMeaning>) -> Result<Self, String> {
        let mut spec = Self::default();
        for (key, &meaning) in table {
            if key.bytes().all(|b| b.is_ascii_digit()) {
                match key.parse::<u16>() {
                    Ok(port) if port != 0 => spec.ports.insert(port, meaning),
                    _ => return Err(key.clone()),
                };
            } else if crate::ifaces::spec::is_interface_name(key) {
                spec.devices.insert(key.clone(), meaning);
            } else {
                return Err(key.clone());
            }
        }
        Ok(spec)
    }

    /// The meanings in force given the node's VXLAN and Geneve devices
    /// (name, UDP port): a device named in the table gives its port that
    /// meaning; with `auto`, Cilium's devices mean identities unless the
    /// table names them; a port in the table is that meaning whatever the
    /// devices.
    #[must_use]
    pub fn resolve<'a>(&self, devices: impl Iterator<Item = (&'a str, u16)>, auto: bool) -> VniMeanings {
        let mut ports = BTreeMap::new();
        for (name, port) in devices {
            let meaning = match self.devices.get(name) {
                Some(&m) => m,
                None if auto && name.starts_with(CILIUM_DEVICE_PREFIX) => VniMeaning::CiliumIdentity,
                None => continue,
            };
            ports.insert(port, meaning);
        }
        ports.extend(&self.ports);
        ports.retain(|_, m| *m != VniMeaning::Segment);
        VniMeanings { ports }
    }
}

#[cfg(test)]
mod tests {
    use vxflow_common::flow::{ENCAP_GENEVE, ENCAP_GRE, ENCAP_IPIP, ENCAP_VXLAN, TUNNEL_FLAG_KEY};

    use super::*;

    fn table(entries: &[(&str, VniMeaning)]) -> BTreeMap<String, VniMeaning> {
        entries.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    }

    fn key(encap: u8, port: u16, flags: u8) -> FlowKey {
        FlowKey { encap, tunnel_id: 7, tunnel_flags: flags, outer_dst_port: port, ..FlowKey::default() }
    }

    #[test]
    fn ports_devices_and_cilium_by_name() {
        use VniMeaning::{CiliumIdentity as Id, Segment};
        let spec = VniMeaningSpec::parse(&table(&[("4789", Id), ("flannel.1", Segment), ("vx0", Id)])).unwrap();
        let devices = [("cilium_geneve", 6081), ("flannel.1", 8472), ("vx0", 4790)];
        let m = spec.resolve(devices.into_iter(), true);
        assert_eq!(m.ports().keys().copied().collect::<Vec<_>>(), [4789, 4790, 6081]);
        // Without auto, Cilium's device name is not trusted to mean anything.
        let m = spec.resolve(devices.into_iter(), false);
        assert_eq!(m.ports().keys().copied().collect::<Vec<_>>(), [4789, 4790]);
        // The table's port wins over a device's meaning.
        let spec = VniMeaningSpec::parse(&table(&[("6081", Segment)])).unwrap();
        assert!(spec.resolve(devices.into_iter(), true).ports().is_empty());
    }

    #[test]
    fn ids_are_named_by_tunnel_and_port() {
        let spec = VniMeaningSpec::parse(&table(&[("8472", VniMeaning::CiliumIdentity)])).unwrap();
        let m = spec.resolve(std::iter::empty(), false);
        assert_eq!(m.of_key(&key(ENCAP_VXLAN, 8472, TUNNEL_FLAG_KEY)), Some(IdKind::CiliumIdentity));
        assert_eq!(m.of_key(&key(ENCAP_VXLAN, 4789, TUNNEL_FLAG_KEY)), Some(IdKind::Vni));
        assert_eq!(m.of_key(&key(ENCAP_GENEVE, 6081, TUNNEL_FLAG_KEY)), Some(IdKind::Vni));
        assert_eq!(m.of_key(&key(ENCAP_GRE, 0, TUNNEL_FLAG_KEY)), Some(IdKind::Key));
        assert_eq!(m.of_key(&key(ENCAP_GRE, 0, 0)), None, "GRE without a key");
        assert_eq!(m.of_key(&key(ENCAP_IPIP, 0, 0)), None);
        assert_eq!(m.of_key(&FlowKey::default()), None);
    }

    #[test]
    fn bad_keys_are_refused() {
        for bad in ["0", "65536", "99999999999", "", "a b", "name-far-too-long-for-linux"] {
            let t = table(&[(bad, VniMeaning::Segment)]);
            assert_eq!(VniMeaningSpec::parse(&t), Err(bad.to_owned()), "{bad:?}");
        }
    }
}
