//! Loads the embedded eBPF object, sizes its maps, and attaches the TC
//! programs: TCX links on kernels that have them (6.6+; they detach when the
//! process dies), clsact + `cls_bpf` otherwise, after removing filters a crashed
//! earlier run may have left behind.

use std::collections::BTreeMap;

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, ArrayOfMaps, HashMap, Map, MapData, MapError},
    programs::{
        LinkOrder, ProgramError, SchedClassifier, TcAttachType,
        tc::{self, NlOptions, SchedClassifierLinkId, TcAttachOptions},
    },
    util::KernelVersion,
};
use vxflow_common::{
    DatapathStats, ExportTuple, FlowKey, MAP_EXPORT_PORTS, MAP_EXPORT_TUPLES, MAP_FLOW_GEN, MAP_FLOWS, MAP_VXLAN_PORTS,
    VXLAN_PORT_WORDS, vxlan_port_slot,
};

use crate::{
    drain::kernel::KernelMaps,
    ebpf_object::EBPF_OBJECT,
    ticks::{CalibrateError, Sample, TickClock},
};

/// One generation of the kernel flow map (a `FlowKey` to `DatapathStats` hash),
/// kept as raw map data: it is drained with batch syscalls aya does not wrap.
pub(crate) type FlowMap = MapData;
/// The one-slot array of maps that selects the generation being written.
pub(crate) type GenMap = ArrayOfMaps<MapData, FlowMap>;

/// Program names in the object, one per direction.
const PROG_INGRESS: &str = "vxflow_ingress";
const PROG_EGRESS: &str = "vxflow_egress";

/// How to size the datapath's maps and what to parse as VXLAN.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Entries in each of the two flow-map generations.
    pub flow_entries: u32,
    /// Size of the fallback ring in bytes (power of two, multiple of a page).
    pub fallback_ring_bytes: u32,
    /// UDP destination ports parsed as VXLAN.
    pub vxlan_ports: Vec<u16>,
    /// How to attach to interfaces.
    pub attach: AttachPreference,
    /// 1 in this many IP packets is counted (1: every packet).
    pub sampling: u32,
}

/// How the operator wants programs attached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttachPreference {
    /// TCX on kernels that have it (6.6+), clsact otherwise.
    #[default]
    Auto,
    Tcx,
    Clsact,
}

impl std::str::FromStr for AttachPreference {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "tcx" => Ok(Self::Tcx),
            "clsact" => Ok(Self::Clsact),
            other => Err(format!("{other:?} is not an attach mode: use auto, tcx or clsact")),
        }
    }
}

/// A traffic direction on an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    pub const BOTH: [Direction; 2] = [Direction::Ingress, Direction::Egress];

    const fn program(self) -> &'static str {
        match self {
            Direction::Ingress => PROG_INGRESS,
            Direction::Egress => PROG_EGRESS,
        }
    }

    const fn tc(self) -> TcAttachType {
        match self {
            Direction::Ingress => TcAttachType::Ingress,
            Direction::Egress => TcAttachType::Egress,
        }
    }
}

impl std::fmt::Display for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        })
    }
}

/// How a program is attached to an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    Tcx,
    Clsact,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "loading the eBPF object failed (vxflow needs root or CAP_BPF+CAP_NET_ADMIN+CAP_PERFMON, and a kernel with BTF, 5.15 or newer)"
    )]
    Load(#[source] aya::EbpfError),
    #[error(
        "the kernel could not create map {name} with kernel.flow_map_entries = {flow_entries} and \
         kernel.fallback_ring_bytes = {ring_bytes} (the flow maps take about 416 bytes of kernel memory per entry): \
         lower them"
    )]
    MapTooLarge {
        name: String,
        flow_entries: u32,
        ring_bytes: u32,
        #[source]
        source: Box<aya::EbpfError>,
    },
    #[error("the eBPF object has no program {0} (build mismatch)")]
    MissingProgram(&'static str),
    #[error("the eBPF object has no map {0} (build mismatch)")]
    MissingMap(&'static str),
    #[error(
        "the kernel refused program {name}: permission denied. vxflow needs CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON \
         (or root); under systemd see CapabilityBoundingSet= in vxflow.service"
    )]
    Permission {
        name: &'static str,
        #[source]
        source: ProgramError,
    },
    #[error("the kernel rejected program {name}; run with RUST_LOG=debug for the verifier log")]
    Verify {
        name: &'static str,
        #[source]
        source: ProgramError,
    },
    #[error("setting up map {name}")]
    Map {
        name: &'static str,
        #[source]
        source: MapError,
    },
    #[error("mapping the datapath's jiffies to time")]
    Clock(#[source] CalibrateError<ProgramError>),
    #[error("interface {iface} does not exist (see `ip link`)")]
    NoSuchInterface { iface: String },
    #[error("looking up interface {iface}")]
    Lookup {
        iface: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "interface {iface}: its name is not UTF-8, so only TCX (kernel 6.6+, attach_mode auto or tcx) can attach to it, by index; clsact filters are made by name"
    )]
    NameNotUtf8 { iface: String },
    #[error("attaching {direction} program to interface {iface} by index (TCX)")]
    AttachByIndex {
        iface: String,
        direction: Direction,
        #[source]
        source: std::io::Error,
    },
    #[error("attaching {direction} program to interface {iface}")]
    Attach {
        iface: String,
        direction: Direction,
        #[source]
        source: ProgramError,
    },
}

/// What keeps a program attached to one interface and direction.
enum Link {
    /// Made by aya, by interface name (TCX link or clsact filter).
    Aya(SchedClassifierLinkId),
    /// A TCX link made by index, for a name aya cannot take; closing the
    /// descriptor detaches it.
    TcxByIndex(std::os::fd::OwnedFd),
}

/// The loaded programs and the links that keep them attached.
pub struct Datapath {
    ebpf: Ebpf,
    attach_mode: AttachMode,
    /// By interface name and direction: the interface's index when
    /// attached (a re-created interface gets a new one) and the link.
    attached: BTreeMap<(String, Direction), (u32, Link)>,
    /// The non-zero `TUNNEL_SLOTS` values as last written.
    tunnel_slots: BTreeMap<u32, u32>,
    /// This run's standing among vxflows of the network namespace, held
    /// for the run's life.
    #[expect(dead_code, reason = "held, never read: dropping it frees the namespace")]
    claim: crate::filters::Claim,
}

/// Loads the object and prepares its maps, without attaching anything.
/// Tests use this directly to run the classifier through `BPF_PROG_TEST_RUN`.
///
/// # Errors
/// When the kernel refuses the object, a program or a map.
pub fn load(opts: &LoadOptions) -> Result<(Datapath, KernelMaps), LoadError> {
    raise_memlock_limit();
    let mut ebpf = EbpfLoader::new()
        .map_max_entries(MAP_FLOWS[0], opts.flow_entries)
        .map_max_entries(MAP_FLOWS[1], opts.flow_entries)
        .map_max_entries(vxflow_common::MAP_FALLBACK, opts.fallback_ring_bytes)
        .load(EBPF_OBJECT)
        .map_err(|source| match &source {
            aya::EbpfError::MapError(MapError::CreateError { name, io_error })
                if matches!(io_error.raw_os_error(), Some(libc::ENOMEM | libc::E2BIG | libc::EINVAL)) =>
            {
                LoadError::MapTooLarge {
                    name: name.clone(),
                    flow_entries: opts.flow_entries,
                    ring_bytes: opts.fallback_ring_bytes,
                    source: Box::new(source),
                }
            }
            _ => LoadError::Load(source),
        })?;

    for dir in Direction::BOTH {
        let name = dir.program();
        classifier_mut(&mut ebpf, dir)?.load().map_err(|source| match &source {
            ProgramError::LoadError { io_error, .. }
                if matches!(io_error.raw_os_error(), Some(libc::EPERM | libc::EACCES)) =>
            {
                LoadError::Permission { name, source }
            }
            _ => LoadError::Verify { name, source },
        })?;
    }

    set_vxlan_ports(&mut ebpf, &opts.vxlan_ports)?;
    set_sampling(&mut ebpf, opts.sampling)?;
    let ticks = calibrate_ticks(&mut ebpf)?;
    tracing::info!(
        hz = ticks.hz(),
        tick_ns = ticks.tick_ns(),
        "datapath clock: packets are stamped with jiffies, so records carry the tick's resolution"
    );
    let maps = KernelMaps::take(&mut ebpf, ticks)?;
    let tcx_available = || KernelVersion::current().is_ok_and(|v| v >= KernelVersion::new(6, 6, 0));
    let attach_mode = match opts.attach {
        AttachPreference::Tcx => AttachMode::Tcx,
        AttachPreference::Auto if tcx_available() => AttachMode::Tcx,
        AttachPreference::Clsact | AttachPreference::Auto => AttachMode::Clsact,
    };
    let claim = claim_namespace();
    Ok((Datapath { ebpf, attach_mode, attached: BTreeMap::new(), tunnel_slots: BTreeMap::new(), claim }, maps))
}

impl Datapath {
    /// Measures the mapping of jiffies to time again, as the load did: the
    /// same tick and origin, unless the kernel's tick is not what the load
    /// measured.
    ///
    /// # Errors
    /// When the clock program cannot be run or no steady ticks are seen.
    pub fn measure_ticks(&self) -> Result<TickClock, LoadError> {
        measure_ticks(&self.ebpf)
    }

    /// Attaches the ingress and egress programs to `iface`.
    ///
    /// # Errors
    /// When the interface does not exist or the kernel refuses the attachment.
    pub fn attach(&mut self, iface: &str) -> Result<(), LoadError> {
        let index = match crate::ifaces::index_of(iface) {
            Ok(Some(index)) => index,
            Ok(None) => return Err(LoadError::NoSuchInterface { iface: iface.to_owned() }),
            Err(source) => return Err(LoadError::Lookup { iface: iface.to_owned(), source }),
        };
        for direction in Direction::BOTH {
            if self.attached.contains_key(&(iface.to_owned(), direction)) {
                continue;
            }
            let attach_err = |source| LoadError::Attach { iface: iface.to_owned(), direction, source };
            let options = match self.attach_mode {
                AttachMode::Tcx => TcAttachOptions::TcxOrder(LinkOrder::default()),
                AttachMode::Clsact => {
                    // EEXIST (clsact already there) is the normal case.
                    // Stale filters of ours went in the sweep at load.
                    let _ = tc::qdisc_add_clsact(iface);
                    TcAttachOptions::Netlink(NlOptions::default())
                }
            };
            let prog = self.program_mut(direction)?;
            let link = prog.attach_with_options(iface, direction.tc(), options).map_err(attach_err)?;
            self.attached.insert((iface.to_owned(), direction), (index, Link::Aya(link)));
            tracing::info!(iface, %direction, mode = ?self.attach_mode, "attached");
        }
        Ok(())
    }

    /// Attaches both programs to interface `index`, whose name is not UTF-8
    /// (`shown` is it escaped): a TCX link made by index, as aya attaches by
    /// name only. clsact filters cannot be made that way.
    ///
    /// # Errors
    /// In clsact mode, or when the kernel refuses the link.
    pub fn attach_by_index(&mut self, shown: &str, index: u32) -> Result<(), LoadError> {
        if self.attach_mode == AttachMode::Clsact {
            return Err(LoadError::NameNotUtf8 { iface: shown.to_owned() });
        }
        for direction in Direction::BOTH {
            if self.attached.contains_key(&(shown.to_owned(), direction)) {
                continue;
            }
            let attach_type = match direction {
                Direction::Ingress => crate::tcx_by_index::BPF_TCX_INGRESS,
                Direction::Egress => crate::tcx_by_index::BPF_TCX_EGRESS,
            };
            let prog = self.program(direction)?;
            let prog_fd =
                prog.fd().map_err(|source| LoadError::Attach { iface: shown.to_owned(), direction, source })?;
            let link = crate::tcx_by_index::attach(prog_fd, index, attach_type)
                .map_err(|source| LoadError::AttachByIndex { iface: shown.to_owned(), direction, source })?;
            self.attached.insert((shown.to_owned(), direction), (index, Link::TcxByIndex(link)));
            tracing::info!(iface = shown, ifindex = index, %direction, mode = ?self.attach_mode, "attached by index");
        }
        Ok(())
    }

    /// Detaches everything. Links also go when the process exits; this makes
    /// the moment explicit so the final drain sees every counted packet.
    pub fn detach_all(&mut self) {
        let attached = std::mem::take(&mut self.attached);
        for ((iface, direction), (_, link)) in attached {
            self.detach_link(&iface, direction, link);
        }
    }

    fn detach_link(&mut self, iface: &str, direction: Direction, link: Link) {
        let link = match link {
            Link::Aya(link) => link,
            Link::TcxByIndex(fd) => {
                drop(fd);
                tracing::info!(iface, %direction, "detached");
                return;
            }
        };
        let result = self.program_mut(direction).and_then(|p| {
            p.detach(link).map_err(|source| LoadError::Attach { iface: iface.to_owned(), direction, source })
        });
        match result {
            Ok(()) => tracing::info!(iface, %direction, "detached"),
            // An interface that vanished took its link with it.
            Err(error) => tracing::warn!(iface, %direction, error = %crate::error_chain(&error), "detach failed"),
        }
    }

    /// Leaves traffic of the exporter's own sockets out of accounting, and
    /// only theirs (see [`export_tuples`]), with the port each tuple has on
    /// this host's side in the bitmap the datapath checks first. Tuples of sockets no longer
    /// named (a collector dropped by a reload) are removed.
    ///
    /// # Errors
    /// When the maps cannot be written (more than [`MAX_EXPORT_TUPLES`]).
    pub fn exclude_own_sockets(&mut self, sockets: &[crate::export::OwnSocket]) -> Result<(), LoadError> {
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

    /// Replaces the set of UDP destination ports parsed as VXLAN. Each
    /// bitmap word is written whole, so a packet sees either the old or the
    /// new setting of a port.
    ///
    /// # Errors
    /// When the map cannot be written.
    pub fn set_vxlan_ports(&mut self, ports: &[u16]) -> Result<(), LoadError> {
        set_vxlan_ports(&mut self.ebpf, ports)
    }

    /// Counts 1 in `n` IP packets from now on (1: every packet).
    ///
    /// # Errors
    /// When the sampling map cannot be written.
    pub fn set_sampling(&mut self, n: u32) -> Result<(), LoadError> {
        set_sampling(&mut self.ebpf, n)
    }

    /// Detaches both programs from `iface`. An interface that vanished took
    /// its links with it; that is not an error.
    pub fn detach(&mut self, iface: &str) {
        for direction in Direction::BOTH {
            let Some((_, link)) = self.attached.remove(&(iface.to_owned(), direction)) else { continue };
            self.detach_link(iface, direction, link);
        }
    }

    /// Forgets the links of an interface that vanished: the kernel removed
    /// the programs with the device, so detaching can only fail; dropping
    /// the link closes it and ignores that failure, which is all there is
    /// left to do.
    pub fn forget(&mut self, iface: &str) {
        for direction in Direction::BOTH {
            let Some((_, link)) = self.attached.remove(&(iface.to_owned(), direction)) else { continue };
            match link {
                Link::Aya(link) => {
                    if let Ok(program) = self.program_mut(direction) {
                        drop(program.take_link(link));
                    }
                }
                Link::TcxByIndex(fd) => drop(fd),
            }
        }
    }

    /// The interfaces programs are attached to.
    #[must_use]
    pub fn interfaces(&self) -> Vec<String> {
        self.attached().into_iter().map(|(name, _)| name).collect()
    }

    /// The interfaces programs are attached to, with their index at attach.
    #[must_use]
    pub fn attached(&self) -> Vec<(String, u32)> {
        let mut links: Vec<(String, u32)> =
            self.attached.iter().map(|((name, _), (index, _))| (name.clone(), *index)).collect();
        links.dedup();
        links
    }

    #[must_use]
    pub fn attach_mode(&self) -> AttachMode {
        self.attach_mode
    }

    /// The program for `direction`, for `BPF_PROG_TEST_RUN`.
    ///
    /// # Errors
    /// Only on a build mismatch.
    pub fn program(&self, direction: Direction) -> Result<&SchedClassifier, LoadError> {
        let name = direction.program();
        self.ebpf
            .program(name)
            .ok_or(LoadError::MissingProgram(name))?
            .try_into()
            .map_err(|source| LoadError::Verify { name, source })
    }

    fn program_mut(&mut self, direction: Direction) -> Result<&mut SchedClassifier, LoadError> {
        classifier_mut(&mut self.ebpf, direction)
    }
}

/// The program for `direction` in `ebpf`, mutable (to load or attach it).
fn classifier_mut(ebpf: &mut Ebpf, direction: Direction) -> Result<&mut SchedClassifier, LoadError> {
    let name = direction.program();
    ebpf.program_mut(name)
        .ok_or(LoadError::MissingProgram(name))?
        .try_into()
        .map_err(|source| LoadError::Verify { name, source })
}

impl Drop for Datapath {
    fn drop(&mut self) {
        self.detach_all();
    }
}

/// An address as the datapath stores it: IPv4 in the first four bytes.
fn addr16(ip: std::net::IpAddr) -> [u8; 16] {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let mut a = [0u8; 16];
            a[..4].copy_from_slice(&v4.octets());
            a
        }
        std::net::IpAddr::V6(v6) => v6.octets(),
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

/// Claims the network namespace for this run and, if no other vxflow runs
/// in it, removes the filters runs that died left behind, whatever this
/// run's attach mode (see [`crate::filters`]).
fn claim_namespace() -> crate::filters::Claim {
    use crate::filters::{Claim, claim, sweep};
    match claim() {
        Ok(Claim::Sole(held)) => {
            sweep(Direction::BOTH.map(|d| (d.program(), d.tc())));
            Claim::Sole(held)
        }
        Ok(Claim::Shared) => {
            tracing::warn!(
                "another vxflow runs in this network namespace: its programs stay attached, and where both watch \
                 an interface both count its packets; stop one of them unless that is what you want"
            );
            Claim::Shared
        }
        Err(error) => {
            tracing::warn!(%error, "cannot tell whether another vxflow runs here; no filter is removed");
            Claim::Shared
        }
    }
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
pub fn export_tuples(sockets: &[crate::export::OwnSocket]) -> Vec<ExportTuple> {
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
fn set_sampling(ebpf: &mut Ebpf, n: u32) -> Result<(), LoadError> {
    let name = vxflow_common::MAP_SAMPLING;
    let map = ebpf.map_mut(name).ok_or(LoadError::MissingMap(name))?;
    let mut sampling: Array<&mut MapData, u32> =
        Array::try_from(map).map_err(|source| LoadError::Map { name, source })?;
    sampling.set(0, vxflow_common::sampling_skip_below(n), 0).map_err(|source| LoadError::Map { name, source })
}

/// Writes the VXLAN port bitmap.
fn set_vxlan_ports(ebpf: &mut Ebpf, ports: &[u16]) -> Result<(), LoadError> {
    set_port_bitmap(ebpf, MAP_VXLAN_PORTS, ports)
}

/// Writes a one-bit-per-port bitmap map.
fn set_port_bitmap(ebpf: &mut Ebpf, name: &'static str, ports: &[u16]) -> Result<(), LoadError> {
    let map = ebpf.map_mut(name).ok_or(LoadError::MissingMap(name))?;
    let mut bitmap: Array<&mut MapData, u64> =
        Array::try_from(map).map_err(|source| LoadError::Map { name, source })?;
    let mut words = vec![0u64; VXLAN_PORT_WORDS as usize];
    for &port in ports {
        let (word, bit) = vxlan_port_slot(port);
        words[word as usize] |= bit;
    }
    for (i, word) in (0u32..).zip(words) {
        bitmap.set(i, word, 0).map_err(|source| LoadError::Map { name, source })?;
    }
    Ok(())
}

/// Loads `vxflow_clock` and, running it back to back, maps the datapath's
/// jiffies to `CLOCK_MONOTONIC` (see `ticks`).
fn calibrate_ticks(ebpf: &mut Ebpf) -> Result<TickClock, LoadError> {
    let name = vxflow_common::PROGRAM_CLOCK;
    let prog: &mut SchedClassifier = ebpf
        .program_mut(name)
        .ok_or(LoadError::MissingProgram(name))?
        .try_into()
        .map_err(|source| LoadError::Verify { name, source })?;
    prog.load().map_err(|source| LoadError::Verify { name, source })?;
    measure_ticks(ebpf)
}

/// Runs the loaded `vxflow_clock` back to back to map jiffies to time.
fn measure_ticks(ebpf: &Ebpf) -> Result<TickClock, LoadError> {
    use aya::programs::{TestRun as _, TestRunOptions};
    let name = vxflow_common::PROGRAM_CLOCK;
    let prog: &SchedClassifier = ebpf
        .program(name)
        .ok_or(LoadError::MissingProgram(name))?
        .try_into()
        .map_err(|source| LoadError::Verify { name, source })?;
    // The smallest frame a classifier test run takes: an Ethernet header.
    let frame = [0u8; 14];
    // `struct __sk_buff` as the run leaves it.
    let mut ctx = [0u8; 192];
    let sample = || -> Result<Sample, ProgramError> {
        prog.test_run(TestRunOptions { data_in: Some(&frame), ctx_out: Some(&mut ctx), ..TestRunOptions::default() })?;
        let word = |i: usize| {
            let at = vxflow_common::CLOCK_SAMPLE_CB + 4 * i;
            u64::from(u32::from_ne_bytes([ctx[at], ctx[at + 1], ctx[at + 2], ctx[at + 3]]))
        };
        Ok(Sample { jiffies: word(0) | word(1) << 32, mono_ns: word(2) | word(3) << 32 })
    };
    TickClock::calibrate(sample, std::time::Duration::from_secs(1)).map_err(LoadError::Clock)
}

/// Takes the flow-generation maps out of `ebpf` and points the datapath at
/// generation A.
pub(crate) fn take_flow_maps(ebpf: &mut Ebpf) -> Result<(GenMap, [FlowMap; 2]), LoadError> {
    let take = |ebpf: &mut Ebpf, name: &'static str| ebpf.take_map(name).ok_or(LoadError::MissingMap(name));
    let mut gen_map: GenMap = ArrayOfMaps::try_from(take(ebpf, MAP_FLOW_GEN)?)
        .map_err(|source| LoadError::Map { name: MAP_FLOW_GEN, source })?;
    let mut flows = Vec::with_capacity(2);
    for name in MAP_FLOWS {
        let map = take(ebpf, name)?;
        // Checks the map is a FlowKey -> DatapathStats hash; kept as its data.
        HashMap::<&MapData, FlowKey, DatapathStats>::try_from(&map)
            .map_err(|source| LoadError::Map { name, source })?;
        let Map::HashMap(data) = map else {
            return Err(LoadError::MissingMap(name));
        };
        flows.push(data);
    }
    let [a, b]: [FlowMap; 2] = flows.try_into().unwrap_or_else(|_| unreachable!("two flow maps were pushed"));
    gen_map.set(0, &a, 0).map_err(|source| LoadError::Map { name: MAP_FLOW_GEN, source })?;
    Ok((gen_map, [a, b]))
}

/// Raises the soft file-descriptor limit to the hard one (1,024 soft is the
/// usual default; an eBPF link per interface and direction on a node with
/// hundreds of pods needs more), as Go's runtime does for every program.
pub fn raise_file_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid pointer to an rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit) != 0 || limit.rlim_cur >= limit.rlim_max {
            return;
        }
        let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raw const raised) != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "could not raise RLIMIT_NOFILE");
        }
    }
}

/// Kernels before 5.11 charge BPF maps to `RLIMIT_MEMLOCK`; later ones to the
/// memory cgroup, where this is harmless.
fn raise_memlock_limit() {
    let limit = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: setrlimit with a valid pointer to an initialised struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &raw const limit) } != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "could not raise RLIMIT_MEMLOCK");
    }
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

    use super::*;
    use crate::export::OwnSocket;

    fn socket(protocol: i32, local: &str, remote: &str) -> OwnSocket {
        OwnSocket {
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
        let many: Vec<OwnSocket> = (0..u16::try_from(MAX_COLLECTORS).unwrap())
            .map(|i| socket(libc::IPPROTO_TCP, &format!("127.0.0.1:{}", 40000 + i), "127.0.0.1:4739"))
            .collect();
        assert_eq!(export_tuples(&many).len(), MAX_EXPORT_TUPLES);
    }
}
