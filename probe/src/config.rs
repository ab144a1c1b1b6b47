//! Configuration: the TOML file, CLI overrides, and validation into the
//! runtime settings the daemon uses. Defaults are documented in
//! `config/vxflow.toml`, which a test parses.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;

use crate::{
    cache::CacheConfig,
    datapath::{AttachPreference, LoadOptions, TunnelDecoding, TunnelPortError},
    export::{
        collector::{Collector, CollectorError, CollectorSection, default_observation_domain},
        outputs::{JsonTarget, OutputSpec},
    },
    ifaces::spec::{InterfaceSpec, SpecError},
    metadata::MetadataConfig,
    tunnel_ids::{VniMeaning, VniMeaningSpec},
};

/// Defaults, in one place (the cache's are `CacheConfig::default()`).
pub mod defaults {
    use std::time::Duration;

    /// IANA's VXLAN port, and the Linux kernel's (and Flannel's) default.
    pub const VXLAN_PORTS: [u16; 2] = [4789, 8472];
    /// IANA's Geneve port (Antrea, OVN-Kubernetes, Cilium).
    pub const GENEVE_PORTS: [u16; 1] = [6081];
    pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
    pub const FLOW_MAP_ENTRIES: u32 = 65_536;
    pub const FALLBACK_RING_BYTES: u32 = 8 << 20;
    /// Every packet.
    pub const SAMPLING: u32 = 1;
}

/// Bounds on every duration and size, checked by the one validation that
/// start, reload and `check-config` share, so no accepted value can overflow
/// a clock or exhaust memory later.
pub mod limits {
    use std::time::Duration;

    /// Longest cache timeout: a week.
    pub const MAX_TIMEOUT: Duration = Duration::from_hours(24 * 7);
    /// Longest poll interval: the kernel map must hold a poll interval's
    /// flows, and systemd's watchdog (30 s) is pinged from the drain loop.
    pub const MAX_POLL_INTERVAL: Duration = Duration::from_secs(10);
    /// Shortest poll interval.
    pub const MIN_POLL_INTERVAL: Duration = Duration::from_millis(10);
    /// Most flows the userspace cache may hold (about 10 GB).
    pub const MAX_FLOWS: usize = 10_000_000;
    /// Most entries per kernel flow-map generation (about 1.7 GB for both).
    pub const MAX_FLOW_MAP_ENTRIES: u32 = 1 << 22;
    /// Largest fallback ring (1 GiB).
    pub const MAX_FALLBACK_RING_BYTES: u32 = 1 << 30;
    /// Sparsest sampling, 1 in 16,383: the most NetFlow v5's 14-bit
    /// sampling interval can state.
    pub const MAX_SAMPLING: u32 = (1 << 14) - 1;
}

const _: () = assert!(crate::datapath::MAX_COLLECTORS == 32, "the collector error message says 32");

/// The TOML file as written. Every key is optional.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Interfaces to watch, ingress and egress.
    pub interfaces: Option<Vec<String>>,
    /// UDP destination ports parsed as VXLAN.
    pub vxlan_ports: Option<Vec<u16>>,
    /// UDP destination ports parsed as Geneve.
    pub geneve_ports: Option<Vec<u16>>,
    /// Decode IP in IP (IP protocols 4 and 41; default true).
    pub ipip_tunnels: Option<bool>,
    /// Decode GRE (IP protocol 47; default true).
    pub gre_tunnels: Option<bool>,
    /// What the VNI means, by UDP port or tunnel device: `segment` (the
    /// default) or `cilium_identity`.
    pub vni_meaning: Option<std::collections::BTreeMap<String, VniMeaning>>,
    /// Interfaces where tunnel headers are parsed (default `["auto"]`: the
    /// underlay).
    pub tunnel_interfaces: Option<Vec<String>>,
    /// One record per interface that saw a flow, instead of counting each
    /// packet once per flow (default false).
    pub per_interface_records: Option<bool>,
    #[serde(default)]
    pub cache: CacheSection,
    #[serde(default)]
    pub kernel: KernelSection,
    #[serde(default)]
    pub export: ExportSection,
    /// `[[collector]]` tables.
    #[serde(default, rename = "collector")]
    pub collectors: Vec<CollectorSection>,
    #[serde(default)]
    pub metrics: MetricsSection,
    #[serde(default)]
    pub control: ControlSection,
    #[serde(default)]
    pub metadata: MetadataSection,
}

/// `[metadata]`: where names for addresses come from.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MetadataSection {
    /// A TOML or JSON file naming addresses and networks.
    pub file: Option<PathBuf>,
    /// The container runtime's CRI socket, to ask for this node's pods.
    pub cri: Option<PathBuf>,
    /// How often the runtime is asked (default 2s).
    #[serde(default, with = "humantime_serde")]
    pub cri_interval: Option<Duration>,
    /// This node's name (default: `$NODE_NAME`, else the host name).
    pub node: Option<String>,
    /// Per-pod metrics (default false), for at most this many pods
    /// (default 1000; the rest under pod="other").
    pub pod_metrics: Option<bool>,
    pub pod_metrics_max: Option<usize>,
    /// How long a gone pod still names late records (default 2m).
    #[serde(default, with = "humantime_serde")]
    pub grace: Option<Duration>,
    /// The Kubernetes API (`[metadata.kubernetes]`, present: watched).
    pub kubernetes: Option<KubernetesSection>,
}

/// `[metadata.kubernetes]`: Pods and Nodes from the API server.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KubernetesSection {
    /// A kubeconfig (default: `$KUBECONFIG`, `~/.kube/config`, else the
    /// in-cluster service account).
    pub kubeconfig: Option<PathBuf>,
    /// Narrow the pods watched: a field selector (`spec.nodeName=node-1`)
    /// and a label selector (`app=web`); default: every pod.
    pub field_selector: Option<String>,
    pub label_selector: Option<String>,
    /// Watch Nodes too (default true): node addresses and pod CIDRs.
    pub nodes: Option<bool>,
}

/// `[metrics]`: the Prometheus endpoint.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// Serve `/metrics` and `/healthz` (default true).
    pub enabled: Option<bool>,
    /// Address and port to listen on (default 127.0.0.1:9739).
    pub listen: Option<String>,
}

/// `[control]`: the socket `vxflow ctl` talks to.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ControlSection {
    /// Listen for `vxflow ctl` (default true).
    pub enabled: Option<bool>,
    /// The unix socket's path (default /run/vxflow/vxflow.sock).
    pub socket: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ExportSection {
    /// IPFIX observation domain id / NetFlow v9 source id; unique per node.
    pub observation_domain_id: Option<u32>,
    /// Where JSON lines go: a file path, or "-" for stdout.
    pub json: Option<String>,
}

#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CacheSection {
    #[serde(default, with = "humantime_serde")]
    pub active_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub inactive_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub tcp_end_timeout: Option<Duration>,
    pub max_flows: Option<usize>,
}

#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KernelSection {
    #[serde(default, with = "humantime_serde")]
    pub poll_interval: Option<Duration>,
    pub flow_map_entries: Option<u32>,
    pub fallback_ring_bytes: Option<u32>,
    pub attach_mode: Option<AttachPreference>,
    pub sampling: Option<u32>,
}

/// Settings given on the command line; each replaces the file's value.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub interfaces: Vec<String>,
    pub tunnels: TunnelOverrides,
    pub tunnel_interfaces: Vec<String>,
    pub per_interface_records: bool,
    pub active_timeout: Option<Duration>,
    pub inactive_timeout: Option<Duration>,
    pub tcp_end_timeout: Option<Duration>,
    pub max_flows: Option<usize>,
    pub poll_interval: Option<Duration>,
    pub flow_map_entries: Option<u32>,
    pub attach_mode: Option<AttachPreference>,
    pub sampling: Option<u32>,
    /// Added to the file's collectors.
    pub collectors: Vec<CollectorSection>,
    pub json: Option<String>,
    pub metrics_listen: Option<String>,
    pub no_metrics: bool,
    pub control_socket: Option<PathBuf>,
    pub no_control: bool,
    /// Replaces `[metadata] file`.
    pub metadata_file: Option<PathBuf>,
}

/// The tunnel settings given on the command line.
#[derive(Debug, Default, Clone)]
pub struct TunnelOverrides {
    pub vxlan_ports: Vec<u16>,
    pub geneve_ports: Vec<u16>,
    pub no_ipip: bool,
    pub no_gre: bool,
}

/// Where the configuration comes from, kept so a reload (SIGHUP) can read
/// it again: the file, if any, and the command-line flags, which go on
/// overriding the file after a reload.
#[derive(Debug, Clone, Default)]
pub struct ConfigSource {
    pub file: Option<PathBuf>,
    pub overrides: Overrides,
}

impl ConfigSource {
    /// Reads the file (if any), applies the flags and validates.
    ///
    /// # Errors
    /// As [`FileConfig::load`] and [`FileConfig::resolve`].
    pub fn load(&self) -> Result<RuntimeConfig, ConfigError> {
        let file = match &self.file {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        file.resolve(&self.overrides)
    }
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// `interfaces` as written, for logs.
    pub interfaces: Vec<String>,
    /// What `interfaces` selects.
    pub watch: InterfaceSpec,
    /// Where tunnel headers are parsed (`tunnel_interfaces`).
    pub tunnels: InterfaceSpec,
    /// What VXLAN and Geneve VNIs mean (`[vni_meaning]`).
    pub vni_meaning: VniMeaningSpec,
    /// Where names for addresses come from (`[metadata]`).
    pub metadata: MetadataConfig,
    pub poll_interval: Duration,
    pub cache: CacheConfig,
    pub load: LoadOptions,
    pub collectors: Vec<Collector>,
    pub observation_domain_id: u32,
    /// JSON lines output: stdout when no collector is configured, unless set.
    pub json: Option<JsonTarget>,
    /// Where the metrics endpoint listens; `None` when switched off.
    pub metrics: Option<std::net::SocketAddr>,
    /// The control socket; `None` when switched off.
    pub control: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config file {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error(transparent)]
    Interfaces(#[from] SpecError),
    #[error("{key} = {value}: {why}")]
    Invalid { key: &'static str, value: String, why: &'static str },
    #[error(transparent)]
    Collector(#[from] CollectorError),
}

impl FileConfig {
    /// Reads and parses a config file.
    ///
    /// # Errors
    /// When the file cannot be read or is not valid TOML for this schema; the
    /// message names the line and the key.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = crate::regular_file::read_bounded(path, MAX_CONFIG_BYTES, "a config file")
            .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
        Self::parse(&text).map_err(|message| ConfigError::Parse { path: path.display().to_string(), message })
    }

    /// Parses TOML text.
    ///
    /// # Errors
    /// The parser's message on one line, naming the line, column and key.
    pub fn parse(text: &str) -> Result<Self, String> {
        // One line, "line L, column C: what", so a log line (journald, a
        // rejected reload) holds all of it.
        toml::from_str(text).map_err(|e| match e.span() {
            Some(span) => {
                let before = text.get(..span.start).unwrap_or_default();
                let line = before.matches('\n').count() + 1;
                let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                let source = text.lines().nth(line - 1).unwrap_or("").trim();
                format!("line {line}, column {column} ({source}): {}", one_line(e.message()))
            }
            None => one_line(e.message()),
        })
    }

    /// Applies CLI overrides and validates the result.
    ///
    /// # Errors
    /// The first invalid setting, by its config key.
    pub fn resolve(self, o: &Overrides) -> Result<RuntimeConfig, ConfigError> {
        let tunnels = self.tunnels(&o.tunnels)?;
        let vni_meaning = VniMeaningSpec::parse(&self.vni_meaning.clone().unwrap_or_default()).map_err(|key| {
            ConfigError::Invalid {
                key: "vni_meaning",
                value: format!("{key:?}"),
                why: "keys are UDP ports (1 to 65535) or tunnel device names",
            }
        })?;
        let interfaces =
            if o.interfaces.is_empty() { self.interfaces.unwrap_or_default() } else { o.interfaces.clone() };
        let d = CacheConfig::default();
        let cache = CacheConfig {
            active_timeout: o.active_timeout.or(self.cache.active_timeout).unwrap_or(d.active_timeout),
            inactive_timeout: o.inactive_timeout.or(self.cache.inactive_timeout).unwrap_or(d.inactive_timeout),
            tcp_end_timeout: o.tcp_end_timeout.or(self.cache.tcp_end_timeout).unwrap_or(d.tcp_end_timeout),
            max_flows: o.max_flows.or(self.cache.max_flows).unwrap_or(d.max_flows),
            dedup: !(o.per_interface_records || self.per_interface_records.unwrap_or(false)),
        };
        let poll_interval = o.poll_interval.or(self.kernel.poll_interval).unwrap_or(defaults::POLL_INTERVAL);
        let load = LoadOptions {
            flow_entries: o.flow_map_entries.or(self.kernel.flow_map_entries).unwrap_or(defaults::FLOW_MAP_ENTRIES),
            fallback_ring_bytes: self.kernel.fallback_ring_bytes.unwrap_or(defaults::FALLBACK_RING_BYTES),
            tunnels,
            attach: o.attach_mode.or(self.kernel.attach_mode).unwrap_or_default(),
            sampling: o.sampling.or(self.kernel.sampling).unwrap_or(defaults::SAMPLING),
        };
        let collectors = self
            .collectors
            .iter()
            .chain(&o.collectors)
            .map(CollectorSection::resolve)
            .collect::<Result<Vec<_>, _>>()?;
        let json = match o.json.clone().or(self.export.json) {
            Some(t) if t == "-" => Some(JsonTarget::Stdout),
            Some(path) => Some(JsonTarget::File(path.into())),
            None if collectors.is_empty() => Some(JsonTarget::Stdout),
            None => None,
        };
        let metrics = if o.no_metrics || self.metrics.enabled == Some(false) {
            None
        } else {
            let text = o
                .metrics_listen
                .clone()
                .or(self.metrics.listen)
                .unwrap_or_else(|| crate::metrics::DEFAULT_LISTEN.into());
            Some(text.parse().map_err(|_| ConfigError::Invalid {
                key: "metrics.listen",
                value: format!("{text:?}"),
                why: "not an ADDRESS:PORT such as 127.0.0.1:9739 or [::1]:9739",
            })?)
        };
        let control = if o.no_control || self.control.enabled == Some(false) {
            None
        } else {
            Some(
                o.control_socket
                    .clone()
                    .or(self.control.socket)
                    .unwrap_or_else(|| crate::control::DEFAULT_SOCKET.into()),
            )
        };
        let watch = InterfaceSpec::parse(&interfaces)?;
        let tunnel_entries = if o.tunnel_interfaces.is_empty() {
            self.tunnel_interfaces.unwrap_or_else(|| vec![crate::ifaces::spec::AUTO.to_owned()])
        } else {
            o.tunnel_interfaces.clone()
        };
        let tunnels = InterfaceSpec::parse_tunnel(&tunnel_entries).map_err(|e| ConfigError::Invalid {
            key: "tunnel_interfaces",
            value: format!("{tunnel_entries:?}"),
            why: match e {
                SpecError::OnlyExclusions { .. } => "excludes only; add what to parse tunnels on, e.g. \"auto\"",
                _ => "not names, patterns (eth*), exclusions (!veth*) or auto",
            },
        })?;
        let mut metadata = self.metadata.resolve();
        if let Some(file) = &o.metadata_file {
            metadata.file = Some(file.clone());
        }
        let config = RuntimeConfig {
            interfaces,
            watch,
            tunnels,
            vni_meaning,
            metadata,
            poll_interval,
            cache,
            load,
            collectors,
            observation_domain_id: self.export.observation_domain_id.unwrap_or_else(default_observation_domain),
            json,
            metrics,
            control,
        };
        config.validate()?;
        Ok(config)
    }
}

impl FileConfig {
    /// The tunnels to decode: the file's settings under the flags'.
    fn tunnels(&self, o: &TunnelOverrides) -> Result<TunnelDecoding, ConfigError> {
        let vxlan_given = (!o.vxlan_ports.is_empty()).then(|| o.vxlan_ports.clone()).or(self.vxlan_ports.clone());
        let geneve_given = (!o.geneve_ports.is_empty()).then(|| o.geneve_ports.clone()).or(self.geneve_ports.clone());
        // A kind's default leaves out a port the other kind is given, so
        // `vxlan_ports = [6081]` alone means VXLAN on 6081, not a conflict.
        let vxlan_ports = vxlan_given.clone().unwrap_or_else(|| {
            let taken = geneve_given.as_deref().unwrap_or_default();
            defaults::VXLAN_PORTS.into_iter().filter(|p| !taken.contains(p)).collect()
        });
        let geneve_ports = geneve_given.unwrap_or_else(|| {
            let taken = vxlan_given.as_deref().unwrap_or_default();
            defaults::GENEVE_PORTS.into_iter().filter(|p| !taken.contains(p)).collect()
        });
        let ipip = !o.no_ipip && self.ipip_tunnels.unwrap_or(true);
        let gre = !o.no_gre && self.gre_tunnels.unwrap_or(true);
        TunnelDecoding::new(vxlan_ports.clone(), geneve_ports, ipip, gre).map_err(|e| match e {
            TunnelPortError::Zero => ConfigError::Invalid {
                key: if vxlan_ports.contains(&0) { "vxlan_ports" } else { "geneve_ports" },
                value: "0".into(),
                why: "port 0 cannot carry a tunnel",
            },
            TunnelPortError::Both(port) => ConfigError::Invalid {
                key: "geneve_ports",
                value: port.to_string(),
                why: "also in vxlan_ports: a port carries one kind of tunnel",
            },
        })
    }
}

impl MetadataSection {
    fn resolve(self) -> MetadataConfig {
        use crate::metadata::{
            DEFAULT_CRI_INTERVAL, DEFAULT_GRACE, DEFAULT_POD_METRICS_MAX, kubernetes::KubernetesConfig,
        };
        MetadataConfig {
            file: self.file,
            cri: self.cri,
            cri_interval: self.cri_interval.unwrap_or(DEFAULT_CRI_INTERVAL),
            node: self.node.unwrap_or_else(node_name),
            grace: self.grace.unwrap_or(DEFAULT_GRACE),
            pod_metrics: self.pod_metrics.unwrap_or(false),
            pod_metrics_max: self.pod_metrics_max.unwrap_or(DEFAULT_POD_METRICS_MAX),
            kubernetes: self.kubernetes.map(|k| KubernetesConfig {
                kubeconfig: k.kubeconfig,
                field_selector: k.field_selector.filter(|s| !s.is_empty()),
                label_selector: k.label_selector.filter(|s| !s.is_empty()),
                nodes: k.nodes.unwrap_or(true),
            }),
        }
    }
}

/// This node's name when the configuration gives none: `$NODE_NAME` (the
/// `DaemonSet` sets it from `spec.nodeName`), else the host name.
fn node_name() -> String {
    if let Ok(name) = std::env::var("NODE_NAME")
        && !name.is_empty()
    {
        return name;
    }
    let mut buf = [0u8; 256];
    // SAFETY: the buffer and its length are valid; gethostname writes at
    // most that many bytes.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let len = buf.iter().position(|&b| b == 0).unwrap_or(0);
    if ok { String::from_utf8_lossy(&buf[..len]).into_owned() } else { String::new() }
}

/// The parser's message with its lines joined, so a log line holds it all.
fn one_line(message: &str) -> String {
    message.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ")
}

/// Largest config file read (a config is a few KiB).
const MAX_CONFIG_BYTES: u64 = 1 << 20;

impl RuntimeConfig {
    /// The outputs this configuration names.
    #[must_use]
    pub fn outputs(&self) -> OutputSpec<'_> {
        OutputSpec { json: self.json.as_ref(), collectors: &self.collectors, domain: self.observation_domain_id }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, value: String, why| Err(ConfigError::Invalid { key, value, why });
        if self.collectors.len() > crate::datapath::MAX_COLLECTORS {
            return invalid(
                "collector",
                format!("{} collectors", self.collectors.len()),
                "at most 32 collectors: the datapath leaves the export sockets out of accounting by an exact map of that size",
            );
        }
        let c = &self.cache;
        let text = |d: Duration| humantime::format_duration(d).to_string();
        if self.metadata.grace > limits::MAX_TIMEOUT {
            return invalid("metadata.grace", text(self.metadata.grace), "must be at most 7days");
        }
        if !(1..=100_000).contains(&self.metadata.pod_metrics_max) {
            return invalid(
                "metadata.pod_metrics_max",
                self.metadata.pod_metrics_max.to_string(),
                "must be from 1 to 100000: each pod is a few series",
            );
        }
        if self.metadata.node.len() > 253 || self.metadata.node.chars().any(char::is_control) {
            return invalid(
                "metadata.node",
                self.metadata.node.escape_debug().to_string(),
                "must be a node name: one line of at most 253 bytes",
            );
        }
        if let Some(k) = &self.metadata.kubernetes {
            for (key, selector) in [
                ("metadata.kubernetes.field_selector", &k.field_selector),
                ("metadata.kubernetes.label_selector", &k.label_selector),
            ] {
                if let Some(s) = selector
                    && (s.len() > 4096 || s.chars().any(char::is_control))
                {
                    return invalid(key, s.escape_debug().to_string(), "must be one line of at most 4096 bytes");
                }
            }
        }
        if !(Duration::from_millis(100)..=Duration::from_mins(10)).contains(&self.metadata.cri_interval) {
            return invalid("metadata.cri_interval", text(self.metadata.cri_interval), "must be from 100ms to 10m");
        }
        for (key, d) in [
            ("cache.active_timeout", c.active_timeout),
            ("cache.inactive_timeout", c.inactive_timeout),
            ("cache.tcp_end_timeout", c.tcp_end_timeout),
        ] {
            if d.is_zero() {
                return invalid(key, "0s".into(), "must be longer than zero");
            }
            if d > limits::MAX_TIMEOUT {
                return invalid(key, text(d), "must be at most 7days");
            }
        }
        if !(limits::MIN_POLL_INTERVAL..=limits::MAX_POLL_INTERVAL).contains(&self.poll_interval) {
            return invalid("kernel.poll_interval", text(self.poll_interval), "must be from 10ms to 10s");
        }
        if self.poll_interval > c.inactive_timeout {
            return invalid(
                "kernel.poll_interval",
                text(self.poll_interval),
                "must not exceed cache.inactive_timeout, or flows would idle out between drains",
            );
        }
        if c.max_flows == 0 || c.max_flows > limits::MAX_FLOWS {
            return invalid("cache.max_flows", c.max_flows.to_string(), "must be from 1 to 10000000");
        }
        if self.load.flow_entries == 0 || self.load.flow_entries > limits::MAX_FLOW_MAP_ENTRIES {
            return invalid(
                "kernel.flow_map_entries",
                self.load.flow_entries.to_string(),
                "must be from 1 to 4194304 (2^22)",
            );
        }
        if !(1..=limits::MAX_SAMPLING).contains(&self.load.sampling) {
            return invalid(
                "kernel.sampling",
                self.load.sampling.to_string(),
                "must be from 1 (every packet) to 16383 (the most NetFlow v5 can state)",
            );
        }
        let ring = self.load.fallback_ring_bytes;
        if !ring.is_power_of_two() || !(4096..=limits::MAX_FALLBACK_RING_BYTES).contains(&ring) {
            return invalid(
                "kernel.fallback_ring_bytes",
                ring.to_string(),
                "must be a power of two from 4096 to 1073741824 (1 GiB)",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_example_parses_and_validates() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/vxflow.toml");
        let file = FileConfig::load(&path).unwrap();
        let c = file.resolve(&Overrides::default()).unwrap();
        assert_eq!(c.interfaces, ["auto"]);
        assert!(c.watch.is_auto() && c.cache.dedup);
        assert_eq!(c.metrics, Some(crate::metrics::DEFAULT_LISTEN.parse().unwrap()));
        assert_eq!(c.control.as_deref(), Some(Path::new(crate::control::DEFAULT_SOCKET)));
        assert_eq!(c.load.tunnels.vxlan_ports(), defaults::VXLAN_PORTS);
        assert_eq!(c.load.tunnels.geneve_ports(), defaults::GENEVE_PORTS);
        assert!(c.load.tunnels.ipip() && c.load.tunnels.gre());
        assert_eq!(c.cache.active_timeout, CacheConfig::default().active_timeout);
        assert_eq!(c.cache.inactive_timeout, CacheConfig::default().inactive_timeout);
        assert_eq!(c.poll_interval, defaults::POLL_INTERVAL);
    }

    #[test]
    fn flags_override_the_file() {
        let file = FileConfig::parse("interfaces = [\"eth0\"]\n[cache]\nactive_timeout = \"30s\"\n").unwrap();
        let o = Overrides {
            interfaces: vec!["eth1".into()],
            active_timeout: Some(Duration::from_secs(5)),
            tunnels: TunnelOverrides { vxlan_ports: vec![4790], ..TunnelOverrides::default() },
            ..Overrides::default()
        };
        let c = file.resolve(&o).unwrap();
        assert_eq!(c.interfaces, ["eth1"]);
        assert_eq!(c.cache.active_timeout, Duration::from_secs(5));
        assert_eq!(c.load.tunnels.vxlan_ports(), [4790]);
    }

    /// IP tunnels are decoded unless switched off, in the file or by a
    /// flag; a port given to one tunnel kind leaves the other's default.
    #[test]
    fn tunnel_switches_and_ports() {
        let c = FileConfig::parse("interfaces = [\"eth0\"]\ngre_tunnels = false\n").unwrap();
        let c = c.resolve(&Overrides::default()).unwrap();
        assert!(c.load.tunnels.ipip() && !c.load.tunnels.gre());
        let c = FileConfig::parse("interfaces = [\"eth0\"]\n").unwrap();
        let o = Overrides {
            tunnels: TunnelOverrides { no_ipip: true, ..TunnelOverrides::default() },
            ..Overrides::default()
        };
        let c = c.resolve(&o).unwrap();
        assert!(!c.load.tunnels.ipip() && c.load.tunnels.gre());
        let c = FileConfig::parse("interfaces = [\"eth0\"]\nvxlan_ports = [6081]\n").unwrap();
        let c = c.resolve(&Overrides::default()).unwrap();
        assert_eq!((c.load.tunnels.vxlan_ports(), c.load.tunnels.geneve_ports()), (&[6081][..], &[][..]));
        let c = FileConfig::parse("interfaces = [\"eth0\"]\n").unwrap();
        let tunnels = TunnelOverrides { geneve_ports: vec![8472, 6081], ..TunnelOverrides::default() };
        let c = c.resolve(&Overrides { tunnels, ..Overrides::default() }).unwrap();
        assert_eq!((c.load.tunnels.vxlan_ports(), c.load.tunnels.geneve_ports()), (&[4789][..], &[6081, 8472][..]));
    }

    /// `--metadata-file` replaces `[metadata] file`, and names one where
    /// the file names none; the rest of `[metadata]` stays.
    #[test]
    fn the_metadata_file_flag_replaces_the_files() {
        let flag = Overrides { metadata_file: Some("/run/names.toml".into()), ..Overrides::default() };
        let text = "interfaces = [\"eth0\"]\n[metadata]\nfile = \"/etc/vxflow/names.toml\"\ngrace = \"30s\"\n";
        let c = FileConfig::parse(text).unwrap().resolve(&flag).unwrap();
        assert_eq!(c.metadata.file, Some("/run/names.toml".into()));
        assert_eq!(c.metadata.grace, Duration::from_secs(30));
        let c = FileConfig::parse(text).unwrap().resolve(&Overrides::default()).unwrap();
        assert_eq!(c.metadata.file, Some("/etc/vxflow/names.toml".into()));
        let c = FileConfig::parse("interfaces = [\"eth0\"]\n").unwrap().resolve(&flag).unwrap();
        assert_eq!(c.metadata.file, Some("/run/names.toml".into()));
    }

    /// `[metadata.kubernetes]`: present means watched, nodes by default;
    /// an empty selector is none; a selector or node name of more than
    /// one line is refused, naming the key.
    #[test]
    fn the_kubernetes_source_and_its_limits() {
        let resolve = |text: &str| {
            FileConfig::parse(text).and_then(|f| f.resolve(&Overrides::default()).map_err(|e| e.to_string()))
        };
        let c = resolve("interfaces = [\"eth0\"]\n").unwrap();
        assert_eq!(c.metadata.kubernetes, None);
        let c = resolve("interfaces = [\"eth0\"]\n[metadata.kubernetes]\n").unwrap();
        let k = c.metadata.kubernetes.unwrap();
        assert!(k.nodes && k.kubeconfig.is_none() && k.field_selector.is_none());
        let c = resolve(
            "interfaces = [\"eth0\"]\n[metadata.kubernetes]\nkubeconfig = \"/etc/vxflow/kubeconfig\"\n\
             field_selector = \"spec.nodeName=node-1\"\nlabel_selector = \"\"\nnodes = false\n",
        )
        .unwrap();
        let k = c.metadata.kubernetes.unwrap();
        assert_eq!(k.field_selector.as_deref(), Some("spec.nodeName=node-1"));
        assert_eq!((k.label_selector, k.nodes), (None, false));
        let err = resolve("interfaces = [\"eth0\"]\n[metadata.kubernetes]\nlabel_selector = \"a\\nb\"\n").unwrap_err();
        assert!(err.contains("metadata.kubernetes.label_selector") && !err.contains('\n'), "{err}");
        let long =
            format!("interfaces = [\"eth0\"]\n[metadata.kubernetes]\nfield_selector = \"{}\"\n", "x".repeat(4097));
        assert!(resolve(&long).unwrap_err().contains("field_selector"));
        let err = resolve("interfaces = [\"eth0\"]\n[metadata]\nnode = \"a\\u0007\"\n").unwrap_err();
        assert!(err.contains("metadata.node"), "{err}");
        assert!(resolve("interfaces = [\"eth0\"]\n[metadata.kubernetes]\nwatch = true\n").is_err());
    }

    #[test]
    fn sampling_defaults_to_every_packet_and_the_flag_overrides_the_file() {
        let file = FileConfig::parse("interfaces = [\"eth0\"]\n[kernel]\nsampling = 100\n").unwrap();
        assert_eq!(file.resolve(&Overrides::default()).unwrap().load.sampling, 100);
        let file = FileConfig::parse("interfaces = [\"eth0\"]\n[kernel]\nsampling = 100\n").unwrap();
        let o = Overrides { sampling: Some(16_383), ..Overrides::default() };
        assert_eq!(file.resolve(&o).unwrap().load.sampling, 16_383);
        let file = FileConfig::parse("interfaces = [\"eth0\"]\n").unwrap();
        assert_eq!(file.resolve(&Overrides::default()).unwrap().load.sampling, 1);
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let err = FileConfig::parse("interfaces = [\"eth0\"]\n\n[cache]\nactive_timout = \"30s\"\n").unwrap_err();
        assert!(err.contains("active_timout") && err.contains("line 4"), "{err}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            ("interfaces = []", "no interfaces"),
            ("interfaces = [\"eth0\"]\nvxlan_ports = [0]", "vxlan_ports"),
            ("interfaces = [\"eth0\"]\ngeneve_ports = [6081, 0]", "geneve_ports"),
            ("interfaces = [\"eth0\"]\nvxlan_ports = [4789]\ngeneve_ports = [4789]", "geneve_ports"),
            ("interfaces = [\"eth0\"]\n[kernel]\npoll_interval = \"20s\"", "kernel.poll_interval"),
            ("interfaces = [\"eth0\"]\n[kernel]\nfallback_ring_bytes = 5000", "kernel.fallback_ring_bytes"),
            ("interfaces = [\"eth0\"]\n[cache]\nmax_flows = 0", "cache.max_flows"),
            ("interfaces = [\"eth0\"]\n[cache]\nmax_flows = 100000000000", "cache.max_flows"),
            ("interfaces = [\"eth0\"]\n[cache]\ninactive_timeout = \"300000000000y\"", "cache.inactive_timeout"),
            ("interfaces = [\"eth0\"]\n[cache]\nactive_timeout = \"8days\"", "cache.active_timeout"),
            ("interfaces = [\"eth0\"]\n[kernel]\npoll_interval = \"1ms\"", "kernel.poll_interval"),
            ("interfaces = [\"eth0\"]\n[kernel]\nflow_map_entries = 2147483648", "kernel.flow_map_entries"),
            ("interfaces = [\"eth0\"]\n[kernel]\nfallback_ring_bytes = 2147483648", "kernel.fallback_ring_bytes"),
            ("interfaces = [\"eth0\"]\n[kernel]\nsampling = 0", "kernel.sampling"),
            ("interfaces = [\"eth0\"]\n[kernel]\nsampling = 16384", "kernel.sampling"),
            ("interfaces = [\"eth0\"]\ntunnel_interfaces = [\"!eth0\"]", "tunnel_interfaces"),
            ("interfaces = [\"eth0\"]\n[[collector]]\nprotocol = \"ipfix\"\naddress = \"::1:4739\"", "brackets"),
            ("interfaces = [\"eth0\"]\n[[collector]]\nprotocol = \"ipfix\"\naddress = \"127.0.0.1:0\"", "port 0"),
            ("interfaces = [\"eth0\"]\n[[collector]]\nprotocol = \"ipfix\"\naddress = \"127.0.0.1\"", "HOST:PORT"),
            (
                "interfaces = [\"eth0\"]\n[[collector]]\nprotocol = \"ipfix\"\naddress = \"127.0.0.1:1\"\ntemplate_refresh = \"400days\"",
                "template_refresh",
            ),
            (
                "interfaces = [\"eth0\"]\n[[collector]]\nprotocol = \"ipfix\"\naddress = \"127.0.0.1:1\"\ntransport = \"tcp\"\nbuffer_bytes = 4294967296",
                "buffer_bytes",
            ),
        ];
        for (text, want) in cases {
            let err = FileConfig::parse(text).unwrap().resolve(&Overrides::default()).unwrap_err();
            assert!(err.to_string().contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn collectors_come_from_file_and_flags_and_decide_json() {
        let file = FileConfig::parse(
            "interfaces = [\"eth0\"]\n[[collector]]\naddress = \"127.0.0.1:4739\"\nprotocol = \"ipfix\"\nmtu = 1200\n",
        )
        .unwrap();
        let o = Overrides { collectors: vec!["netflow5://127.0.0.1:2055".parse().unwrap()], ..Overrides::default() };
        let c = file.resolve(&o).unwrap();
        assert_eq!(c.collectors.len(), 2);
        assert_eq!(c.collectors[0].mtu, 1200);
        assert_eq!(c.json, None, "collectors configured: no JSON unless asked");
        let c = FileConfig::parse("interfaces = [\"eth0\"]").unwrap().resolve(&Overrides::default()).unwrap();
        assert_eq!(c.json, Some(JsonTarget::Stdout), "no collector: JSON on stdout");
        let err =
            FileConfig::parse("interfaces = [\"eth0\"]\n[[collector]]\naddress = \"x:1\"\nprotocol = \"sflow\"\n")
                .unwrap_err();
        assert!(err.contains("sflow") && err.contains("line 4"), "{err}");
    }

    use std::fmt::Write as _;

    /// Every duration and size is bounded by the validation start, reload
    /// and check-config share, and each error fits on one line.
    #[test]
    fn values_out_of_range_are_refused_on_one_line() {
        let mut text = String::from("interfaces = [\"eth0\"]\n");
        for port in 4000..4033 {
            let _ = writeln!(text, "[[collector]]\nprotocol = \"ipfix\"\naddress = \"127.0.0.1:{port}\"");
        }
        let err = FileConfig::parse(&text).unwrap().resolve(&Overrides::default()).unwrap_err().to_string();
        assert!(err.contains("at most 32 collectors"), "{err}");
        text.truncate(text.rfind("[[collector]]").unwrap());
        FileConfig::parse(&text).unwrap().resolve(&Overrides::default()).unwrap();

        let err = FileConfig::parse("interfaces = [\"eth0\"\n[cache]\n").unwrap_err();
        assert!(!err.contains('\n') && err.contains("line 2"), "{err}");
    }

    /// A FIFO or a device as the config file is refused at once instead of
    /// blocking start or reload.
    #[test]
    fn config_file_must_be_a_regular_file() {
        let dir = std::env::temp_dir().join(format!("vxflow-fifo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("vxflow.toml");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo(3) with a valid C string.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let started = std::time::Instant::now();
        let err = FileConfig::load(&fifo).unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(crate::error_chain(&err).contains("not a regular file"), "{}", crate::error_chain(&err));
        let err = FileConfig::load(Path::new("/dev/zero")).unwrap_err();
        assert!(crate::error_chain(&err).contains("not a regular file"));
    }

    #[test]
    fn bad_duration_is_a_parse_error() {
        let err = FileConfig::parse("[cache]\nactive_timeout = \"sixty\"").unwrap_err();
        assert!(err.contains("active_timeout"), "{err}");
    }
}
