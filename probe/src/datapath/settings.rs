//! What the datapath is told while it runs: the exporter's own sockets to
//! leave out, the interfaces where tunnels are parsed, which tunnels it
//! decodes and the sampling rate, each written to its map so no packet sees
//! a half-made set.

use std::collections::BTreeMap;

use aya::{
    Ebpf,
    maps::{Array, HashMap, MapData, MapError},
};
use vxflow_common::{
    ExportTuple, MAP_EXPORT_PORTS, MAP_EXPORT_TUPLES, MAP_IP_TUNNELS_OFF, MAP_UDP_TUNNEL_PORTS,
    flow::{ENCAP_GENEVE, ENCAP_GRE, ENCAP_IPIP, ENCAP_VXLAN},
    ports,
    user::addr16,
};

use super::{Datapath, LoadError};

/// The tunnels the datapath decodes, on the interfaces where tunnels are
/// parsed: the UDP ports of VXLAN and of Geneve, and whether IP in IP and
/// GRE are decoded. Built only through [`TunnelDecoding::new`], so its
/// port lists are sorted, without repeats, and never share a port.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TunnelDecoding {
    vxlan_ports: Vec<u16>,
    geneve_ports: Vec<u16>,
    ipip: bool,
    gre: bool,
}

/// Why a set of tunnel ports cannot be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TunnelPortError {
    #[error("port 0 cannot carry a tunnel")]
    Zero,
    #[error("port {0} is both a VXLAN and a Geneve port")]
    Both(u16),
}

impl TunnelDecoding {
    /// # Errors
    /// When a port is 0 or in both lists.
    pub fn new(
        mut vxlan_ports: Vec<u16>,
        mut geneve_ports: Vec<u16>,
        ipip: bool,
        gre: bool,
    ) -> Result<Self, TunnelPortError> {
        for ports in [&mut vxlan_ports, &mut geneve_ports] {
            ports.sort_unstable();
            ports.dedup();
            if ports.first() == Some(&0) {
                return Err(TunnelPortError::Zero);
            }
        }
        if let Some(p) = vxlan_ports.iter().find(|p| geneve_ports.binary_search(p).is_ok()) {
            return Err(TunnelPortError::Both(*p));
        }
        Ok(Self { vxlan_ports, geneve_ports, ipip, gre })
    }

    /// UDP destination ports parsed as VXLAN, ascending.
    #[must_use]
    pub fn vxlan_ports(&self) -> &[u16] {
        &self.vxlan_ports
    }

    /// UDP destination ports parsed as Geneve, ascending.
    #[must_use]
    pub fn geneve_ports(&self) -> &[u16] {
        &self.geneve_ports
    }

    /// Whether IP in IP (protocols 4 and 41) is decoded.
    #[must_use]
    pub fn ipip(&self) -> bool {
        self.ipip
    }

    /// Whether GRE (protocol 47) is decoded.
    #[must_use]
    pub fn gre(&self) -> bool {
        self.gre
    }

    /// These settings with `vxlan` and `geneve` ports added (ports that
    /// discovered devices use), leaving out any the other list already has,
    /// and returning those as conflicts: the configured kind wins.
    #[must_use]
    pub fn with_ports(&self, vxlan: &[u16], geneve: &[u16]) -> (Self, Vec<u16>) {
        let mut next = self.clone();
        let mut conflicts = Vec::new();
        for (&port, geneve_port) in vxlan.iter().map(|p| (p, false)).chain(geneve.iter().map(|p| (p, true))) {
            let (mine, other) = if geneve_port {
                (&mut next.geneve_ports, &next.vxlan_ports)
            } else {
                (&mut next.vxlan_ports, &next.geneve_ports)
            };
            if port == 0 {
                continue;
            }
            if other.binary_search(&port).is_ok() {
                conflicts.push(port);
            } else if let Err(at) = mine.binary_search(&port) {
                mine.insert(at, port);
            }
        }
        (next, conflicts)
    }

    /// Each port with its `ENCAP_*` kind, as the port-kind map holds them.
    pub fn port_kinds(&self) -> Vec<(u16, u8)> {
        let vxlan = self.vxlan_ports.iter().map(|&p| (p, ENCAP_VXLAN));
        vxlan.chain(self.geneve_ports.iter().map(|&p| (p, ENCAP_GENEVE))).collect()
    }

    /// The `IP_TUNNELS_OFF` word: a bit set for each IP tunnel not decoded.
    pub fn ip_tunnels_off(&self) -> u32 {
        (if self.ipip { 0 } else { 1 << ENCAP_IPIP }) | (if self.gre { 0 } else { 1 << ENCAP_GRE })
    }
}

impl Datapath {
    /// Leaves traffic of the exporter's own sockets out of accounting, and
    /// only theirs (see [`export_tuples`]), with the port each tuple has on
    /// this host's side in the bitmap the datapath checks first. Tuples of sockets no longer
    /// named (a collector dropped by a reload) are removed.
    ///
    /// # Errors
    /// When the maps cannot be written (more than [`MAX_EXPORT_TUPLES`]).
    pub fn exclude_own_sockets(&mut self, sockets: &[vxflow_common::user::SocketTuple]) -> Result<(), LoadError> {
        let name = MAP_EXPORT_TUPLES;
        let map = self.ebpf.map_mut(name).ok_or(LoadError::MissingMap(name))?;
        let mut tuples: HashMap<&mut MapData, ExportTuple, u8> =
            HashMap::try_from(map).map_err(|source| LoadError::Map { name, source })?;
        let wanted = export_tuples(sockets);
        // New tuples first, stale ones after, so no moment leaves a live
        // socket's traffic accounted.
        let removed = replace_set(&mut tuples, &wanted).map_err(|source| LoadError::Map { name, source })?;
        // The datapath looks up the port a listed tuple has on this host's
        // side of its direction: the source port going out, the destination
        // port coming in (both ends' ports when the collector is local).
        let ports: Vec<u16> = wanted
            .iter()
            .map(|t| if t.direction == vxflow_common::flow::DIRECTION_EGRESS { t.src_port } else { t.dst_port })
            .collect();
        set_port_bitmap(&mut self.ebpf, MAP_EXPORT_PORTS, &ports)?;
        tracing::debug!(
            sockets = sockets.len(),
            tuples = wanted.len(),
            removed,
            "own export traffic excluded from accounting"
        );
        Ok(())
    }

    /// Makes `ifindexes` the interfaces where tunnel headers are parsed;
    /// everywhere else UDP to a VXLAN port is plain UDP. New ones are added
    /// before old ones go.
    ///
    /// # Errors
    /// When the map cannot be written (more than 256 interfaces).
    pub fn set_tunnel_interfaces(&mut self, ifindexes: &std::collections::BTreeSet<u32>) -> Result<(), LoadError> {
        let name = vxflow_common::MAP_TUNNEL_IFACES;
        let map = self.ebpf.map_mut(name).ok_or(LoadError::MissingMap(name))?;
        let mut trusted: HashMap<&mut MapData, u32, u8> =
            HashMap::try_from(map).map_err(|source| LoadError::Map { name, source })?;
        let wanted: Vec<u32> = ifindexes.iter().copied().collect();
        replace_set(&mut trusted, &wanted).map_err(|source| LoadError::Map { name, source })?;
        // The slots after the hash, so a slot marked shared finds its
        // interfaces there.
        let slots = tunnel_slots(ifindexes);
        let name = vxflow_common::MAP_TUNNEL_SLOTS;
        let map = self.ebpf.map_mut(name).ok_or(LoadError::MissingMap(name))?;
        let mut array: Array<&mut MapData, u32> =
            Array::try_from(map).map_err(|source| LoadError::Map { name, source })?;
        for slot in self.tunnel_slots.keys().chain(slots.keys()) {
            let value = slots.get(slot).copied().unwrap_or(0);
            if self.tunnel_slots.get(slot) != Some(&value) {
                array.set(*slot, value, 0).map_err(|source| LoadError::Map { name, source })?;
            }
        }
        self.tunnel_slots = slots;
        Ok(())
    }

    /// Replaces what tunnels are decoded. Each word of the port map is
    /// written whole, so a packet sees either the old or the new kind of a
    /// port.
    ///
    /// # Errors
    /// When a map cannot be written.
    pub fn set_tunnel_decoding(&mut self, tunnels: &TunnelDecoding) -> Result<(), LoadError> {
        set_tunnel_decoding(&mut self.ebpf, tunnels)
    }

    /// Counts 1 in `n` IP packets from now on (1: every packet).
    ///
    /// # Errors
    /// When the sampling map cannot be written.
    pub fn set_sampling(&mut self, n: u32) -> Result<(), LoadError> {
        set_sampling(&mut self.ebpf, n)
    }
}

/// Makes the keys of a set-like map (values unused) exactly `wanted`: the
/// new keys go in before the stale ones go out, so no moment lacks a key
/// that stays. Returns how many were removed.
fn replace_set<K: aya::Pod + PartialEq>(
    map: &mut HashMap<&mut MapData, K, u8>,
    wanted: &[K],
) -> Result<usize, MapError> {
    for key in wanted {
        map.insert(key, 1, 0)?;
    }
    let stale: Vec<K> = map.keys().filter_map(Result::ok).filter(|k| !wanted.contains(k)).collect();
    for key in &stale {
        map.remove(key)?;
    }
    Ok(stale.len())
}

/// Export tuples one configuration may need: four per TCP socket to a
/// collector on this host, fewer otherwise, so 32 collectors always fit. The
/// kernel map holds twice as many, for the moment of a reload when the new
/// set is in and the old not yet out.
pub const MAX_EXPORT_TUPLES: usize = 128;

/// Collectors one configuration may name (each has one socket).
pub const MAX_COLLECTORS: usize = MAX_EXPORT_TUPLES / 4;

/// The packets of the exporter's own sockets, as the datapath sees them:
/// what each socket sends, on egress; on a TCP connection, the collector's
/// answers, on ingress; and for a collector on this host, which the packets
/// reach through loopback, the same packets in the other direction too.
/// Nothing else: a host that sends from the collector's address and port to
/// the export port is counted like any other traffic.
#[must_use]
pub fn export_tuples(sockets: &[vxflow_common::user::SocketTuple]) -> Vec<ExportTuple> {
    use vxflow_common::flow::{DIRECTION_EGRESS, DIRECTION_INGRESS};
    let mut out = Vec::new();
    for s in sockets {
        let (local, remote) = (addr16(s.local.ip()), addr16(s.remote.ip()));
        let sent = ExportTuple {
            src_addr: local,
            dst_addr: remote,
            src_port: s.local.port(),
            dst_port: s.remote.port(),
            protocol: s.protocol,
            direction: DIRECTION_EGRESS,
            _pad: [0; 2],
        };
        let answer = ExportTuple {
            src_addr: remote,
            dst_addr: local,
            src_port: s.remote.port(),
            dst_port: s.local.port(),
            direction: DIRECTION_INGRESS,
            ..sent
        };
        let tcp = i32::from(s.protocol) == libc::IPPROTO_TCP;
        let on_this_host = s.remote.ip().is_loopback() || s.remote.ip() == s.local.ip();
        out.push(sent);
        if on_this_host {
            out.push(ExportTuple { direction: DIRECTION_INGRESS, ..sent });
        }
        if tcp {
            out.push(answer);
            if on_this_host {
                out.push(ExportTuple { direction: DIRECTION_EGRESS, ..answer });
            }
        }
    }
    out
}

/// Writes the sampling map: 1 in `n` IP packets counted.
pub(super) fn set_sampling(ebpf: &mut Ebpf, n: u32) -> Result<(), LoadError> {
    let name = vxflow_common::MAP_SAMPLING;
    let map = ebpf.map_mut(name).ok_or(LoadError::MissingMap(name))?;
    let mut sampling: Array<&mut MapData, u32> =
        Array::try_from(map).map_err(|source| LoadError::Map { name, source })?;
    sampling.set(0, vxflow_common::sampling_skip_below(n), 0).map_err(|source| LoadError::Map { name, source })
}

/// Writes the UDP tunnel port map and the IP tunnel switches.
pub(super) fn set_tunnel_decoding(ebpf: &mut Ebpf, tunnels: &TunnelDecoding) -> Result<(), LoadError> {
    let name = MAP_UDP_TUNNEL_PORTS;
    let map = ebpf.map_mut(name).ok_or(LoadError::MissingMap(name))?;
    let mut kinds: Array<&mut MapData, u64> = Array::try_from(map).map_err(|source| LoadError::Map { name, source })?;
    for (i, word) in (0u32..).zip(ports::kind_map(&tunnels.port_kinds())) {
        kinds.set(i, word, 0).map_err(|source| LoadError::Map { name, source })?;
    }
    let name = MAP_IP_TUNNELS_OFF;
    let map = ebpf.map_mut(name).ok_or(LoadError::MissingMap(name))?;
    let mut off: Array<&mut MapData, u32> = Array::try_from(map).map_err(|source| LoadError::Map { name, source })?;
    off.set(0, tunnels.ip_tunnels_off(), 0).map_err(|source| LoadError::Map { name, source })
}

/// Writes a one-bit-per-port bitmap map.
fn set_port_bitmap(ebpf: &mut Ebpf, name: &'static str, ports: &[u16]) -> Result<(), LoadError> {
    let map = ebpf.map_mut(name).ok_or(LoadError::MissingMap(name))?;
    let mut bitmap: Array<&mut MapData, u64> =
        Array::try_from(map).map_err(|source| LoadError::Map { name, source })?;
    for (i, word) in (0u32..).zip(ports::bitmap(ports)) {
        bitmap.set(i, word, 0).map_err(|source| LoadError::Map { name, source })?;
    }
    Ok(())
}

/// The `TUNNEL_SLOTS` values for a set of trusted interfaces: each used
/// slot holds its interface's index, or `TUNNEL_SLOT_SHARED` when several
/// map to it.
fn tunnel_slots(ifindexes: &std::collections::BTreeSet<u32>) -> BTreeMap<u32, u32> {
    let mut slots = BTreeMap::new();
    for &ifindex in ifindexes {
        slots
            .entry(vxflow_common::tunnel_slot(ifindex))
            .and_modify(|v| *v = vxflow_common::TUNNEL_SLOT_SHARED)
            .or_insert(ifindex);
    }
    slots
}

#[cfg(test)]
mod tests {
    use vxflow_common::flow::{DIRECTION_EGRESS, DIRECTION_INGRESS};

    /// Ports come out sorted and once; 0 and a port of both kinds are
    /// refused; discovered ports join their list unless the other has them.
    #[test]
    fn tunnel_decoding_keeps_its_port_lists_apart() {
        let t = TunnelDecoding::new(vec![8472, 4789, 8472], vec![6081], true, false).unwrap();
        assert_eq!((t.vxlan_ports(), t.geneve_ports()), (&[4789, 8472][..], &[6081][..]));
        assert_eq!(t.ip_tunnels_off(), 1 << ENCAP_GRE);
        assert_eq!(TunnelDecoding::new(vec![0], vec![], true, true), Err(TunnelPortError::Zero));
        assert_eq!(TunnelDecoding::new(vec![6081], vec![6081], true, true), Err(TunnelPortError::Both(6081)));
        let (next, conflicts) = t.with_ports(&[4790, 6081, 0], &[6082, 4789]);
        assert_eq!(next.vxlan_ports(), [4789, 4790, 8472]);
        assert_eq!(next.geneve_ports(), [6081, 6082]);
        assert_eq!(conflicts, [6081, 4789]);
        assert_eq!(next.port_kinds().len(), 5);
    }

    use super::*;
    use vxflow_common::user::SocketTuple;

    fn socket(protocol: i32, local: &str, remote: &str) -> SocketTuple {
        SocketTuple {
            protocol: u8::try_from(protocol).unwrap(),
            local: local.parse().unwrap(),
            remote: remote.parse().unwrap(),
        }
    }

    /// (source port, destination port, direction) of each tuple.
    fn shape(tuples: &[ExportTuple]) -> Vec<(u16, u16, u8)> {
        tuples.iter().map(|t| (t.src_port, t.dst_port, t.direction)).collect()
    }

    /// Only what the exporter sends, and a TCP collector's answers: never
    /// the export tuple reversed on a UDP socket, which another host can
    /// send to hide its traffic.
    #[test]
    fn export_tuples_are_what_the_exporter_sends_and_its_tcp_answers() {
        let udp = export_tuples(&[socket(libc::IPPROTO_UDP, "10.0.0.1:40000", "10.0.0.9:4739")]);
        assert_eq!(shape(&udp), [(40000, 4739, DIRECTION_EGRESS)]);
        let tcp = export_tuples(&[socket(libc::IPPROTO_TCP, "10.0.0.1:40001", "10.0.0.9:4739")]);
        assert_eq!(shape(&tcp), [(40001, 4739, DIRECTION_EGRESS), (4739, 40001, DIRECTION_INGRESS)]);
        // A collector on this host: loopback shows each packet both ways.
        let local = export_tuples(&[socket(libc::IPPROTO_TCP, "127.0.0.1:40002", "127.0.0.1:4739")]);
        assert_eq!(local.len(), 4);
        let local_udp = export_tuples(&[socket(libc::IPPROTO_UDP, "10.0.0.1:40003", "10.0.0.1:4739")]);
        assert_eq!(shape(&local_udp), [(40003, 4739, DIRECTION_EGRESS), (40003, 4739, DIRECTION_INGRESS)]);
        // The most a configuration may need fits the map.
        let many: Vec<SocketTuple> = (0..u16::try_from(MAX_COLLECTORS).unwrap())
            .map(|i| socket(libc::IPPROTO_TCP, &format!("127.0.0.1:{}", 40000 + i), "127.0.0.1:4739"))
            .collect();
        assert_eq!(export_tuples(&many).len(), MAX_EXPORT_TUPLES);
    }
}
