//! The datapath, and the one owner of every kernel object vxflow makes: the
//! embedded eBPF object (`object`), loading it and sizing its maps (here),
//! attaching its TC programs (`attach`: TCX links on kernels that have them,
//! 6.6+, which detach when the process dies; clsact + `cls_bpf` otherwise,
//! after removing filters a crashed earlier run may have left behind), what
//! it is told while it runs (`settings`), its clock (`ticks`), and reading
//! its maps (`kernel`, `batch`). Nothing else in vxflow talks to aya.

use std::collections::BTreeMap;

use aya::{
    Ebpf, EbpfLoader,
    maps::MapError,
    programs::{ProgramError, SchedClassifier, TcAttachType, tc::SchedClassifierLinkId},
    util::KernelVersion,
};
use vxflow_common::MAP_FLOWS;

use self::{
    kernel::KernelMaps,
    object::EBPF_OBJECT,
    ticks::{CalibrateError, Sample, TickClock},
};

mod attach;
mod batch;
mod filters;
pub mod kernel;
mod object;
mod settings;
mod tcx;
pub mod ticks;

pub use self::settings::{MAX_COLLECTORS, MAX_EXPORT_TUPLES, TunnelDecoding, TunnelPortError, export_tuples};
use self::{
    attach::claim_namespace,
    settings::{set_sampling, set_tunnel_decoding},
};

/// Program names in the object, one per direction.
const PROG_INGRESS: &str = "vxflow_ingress";
const PROG_EGRESS: &str = "vxflow_egress";

/// How to size the datapath's maps and what tunnels to decode.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Entries in each of the two flow-map generations.
    pub flow_entries: u32,
    /// Size of the fallback ring in bytes (power of two, multiple of a page).
    pub fallback_ring_bytes: u32,
    /// The tunnels decoded.
    pub tunnels: TunnelDecoding,
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

/// An attach mode vxflow does not know.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not an attach mode: use auto, tcx or clsact")]
pub struct UnknownAttachMode(String);

impl std::str::FromStr for AttachPreference {
    type Err = UnknownAttachMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "tcx" => Ok(Self::Tcx),
            "clsact" => Ok(Self::Clsact),
            other => Err(UnknownAttachMode(other.to_owned())),
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
    #[error("program {name} in the eBPF object is not of the type vxflow runs it as (build mismatch)")]
    NotClassifier {
        name: &'static str,
        #[source]
        source: ProgramError,
    },
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
    claim: filters::Claim,
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

    set_tunnel_decoding(&mut ebpf, &opts.tunnels)?;
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
            .map_err(|source| LoadError::NotClassifier { name, source })
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
        .map_err(|source| LoadError::NotClassifier { name, source })
}

impl Drop for Datapath {
    fn drop(&mut self) {
        self.detach_all();
    }
}

/// Loads `vxflow_clock` and, running it back to back, maps the datapath's
/// jiffies to `CLOCK_MONOTONIC` (see `ticks`).
fn calibrate_ticks(ebpf: &mut Ebpf) -> Result<TickClock, LoadError> {
    let name = vxflow_common::PROGRAM_CLOCK;
    let prog: &mut SchedClassifier = ebpf
        .program_mut(name)
        .ok_or(LoadError::MissingProgram(name))?
        .try_into()
        .map_err(|source| LoadError::NotClassifier { name, source })?;
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
        .map_err(|source| LoadError::NotClassifier { name, source })?;
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
