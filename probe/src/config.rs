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
    export::collector::{Collector, CollectorError, CollectorSection, default_observation_domain},
    ifaces::spec::{InterfaceSpec, SpecError},
    loader::{AttachPreference, LoadOptions},
};

/// Defaults, in one place.
pub mod defaults {
    use std::time::Duration;

    pub const VXLAN_PORTS: [u16; 2] = [4789, 8472];
    pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
    pub const ACTIVE_TIMEOUT: Duration = Duration::from_mins(1);
    pub const INACTIVE_TIMEOUT: Duration = Duration::from_secs(15);
    pub const TCP_END_TIMEOUT: Duration = Duration::from_secs(5);
    pub const MAX_FLOWS: usize = 1_000_000;
    pub const FLOW_MAP_ENTRIES: u32 = 65_536;
    pub const FALLBACK_RING_BYTES: u32 = 1 << 20;
}

/// The TOML file as written. Every key is optional.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Interfaces to watch, ingress and egress.
    pub interfaces: Option<Vec<String>>,
    /// UDP destination ports parsed as VXLAN.
    pub vxlan_ports: Option<Vec<u16>>,
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

/// Where JSON lines are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonTarget {
    Stdout,
    File(std::path::PathBuf),
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
}

/// Settings given on the command line; each replaces the file's value.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub interfaces: Vec<String>,
    pub vxlan_ports: Vec<u16>,
    pub per_interface_records: bool,
    pub active_timeout: Option<Duration>,
    pub inactive_timeout: Option<Duration>,
    pub tcp_end_timeout: Option<Duration>,
    pub max_flows: Option<usize>,
    pub poll_interval: Option<Duration>,
    pub flow_map_entries: Option<u32>,
    pub attach_mode: Option<AttachPreference>,
    /// Added to the file's collectors.
    pub collectors: Vec<CollectorSection>,
    pub json: Option<String>,
    pub metrics_listen: Option<String>,
    pub no_metrics: bool,
    pub control_socket: Option<PathBuf>,
    pub no_control: bool,
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
        let text = std::fs::read_to_string(path)
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
                format!("line {line}, column {column} ({source}): {}", e.message().trim_end())
            }
            None => e.message().trim_end().to_owned(),
        })
    }

    /// Applies CLI overrides and validates the result.
    ///
    /// # Errors
    /// The first invalid setting, by its config key.
    pub fn resolve(self, o: &Overrides) -> Result<RuntimeConfig, ConfigError> {
        let interfaces =
            if o.interfaces.is_empty() { self.interfaces.unwrap_or_default() } else { o.interfaces.clone() };
        let vxlan_ports = if o.vxlan_ports.is_empty() {
            self.vxlan_ports.unwrap_or_else(|| defaults::VXLAN_PORTS.to_vec())
        } else {
            o.vxlan_ports.clone()
        };
        let cache = CacheConfig {
            active_timeout: o.active_timeout.or(self.cache.active_timeout).unwrap_or(defaults::ACTIVE_TIMEOUT),
            inactive_timeout: o.inactive_timeout.or(self.cache.inactive_timeout).unwrap_or(defaults::INACTIVE_TIMEOUT),
            tcp_end_timeout: o.tcp_end_timeout.or(self.cache.tcp_end_timeout).unwrap_or(defaults::TCP_END_TIMEOUT),
            max_flows: o.max_flows.or(self.cache.max_flows).unwrap_or(defaults::MAX_FLOWS),
            dedup: !(o.per_interface_records || self.per_interface_records.unwrap_or(false)),
        };
        let poll_interval = o.poll_interval.or(self.kernel.poll_interval).unwrap_or(defaults::POLL_INTERVAL);
        let load = LoadOptions {
            flow_entries: o.flow_map_entries.or(self.kernel.flow_map_entries).unwrap_or(defaults::FLOW_MAP_ENTRIES),
            fallback_ring_bytes: self.kernel.fallback_ring_bytes.unwrap_or(defaults::FALLBACK_RING_BYTES),
            vxlan_ports,
            attach: o.attach_mode.or(self.kernel.attach_mode).unwrap_or_default(),
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
        let config = RuntimeConfig {
            interfaces,
            watch,
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

impl RuntimeConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, value: String, why| Err(ConfigError::Invalid { key, value, why });
        if self.load.vxlan_ports.contains(&0) {
            return invalid("vxlan_ports", "0".into(), "port 0 cannot carry VXLAN");
        }
        let c = &self.cache;
        for (key, d) in [
            ("cache.active_timeout", c.active_timeout),
            ("cache.inactive_timeout", c.inactive_timeout),
            ("cache.tcp_end_timeout", c.tcp_end_timeout),
            ("kernel.poll_interval", self.poll_interval),
        ] {
            if d.is_zero() {
                return invalid(key, "0s".into(), "must be longer than zero");
            }
        }
        if self.poll_interval > c.inactive_timeout {
            return invalid(
                "kernel.poll_interval",
                humantime::format_duration(self.poll_interval).to_string(),
                "must not exceed cache.inactive_timeout, or flows would idle out between drains",
            );
        }
        if c.max_flows == 0 {
            return invalid("cache.max_flows", "0".into(), "must be at least 1");
        }
        if self.load.flow_entries == 0 {
            return invalid("kernel.flow_map_entries", "0".into(), "must be at least 1");
        }
        let ring = self.load.fallback_ring_bytes;
        if !ring.is_power_of_two() || ring < 4096 {
            return invalid("kernel.fallback_ring_bytes", ring.to_string(), "must be a power of two of at least 4096");
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
        assert_eq!(c.load.vxlan_ports, defaults::VXLAN_PORTS);
        assert_eq!(c.cache.active_timeout, defaults::ACTIVE_TIMEOUT);
        assert_eq!(c.cache.inactive_timeout, defaults::INACTIVE_TIMEOUT);
        assert_eq!(c.poll_interval, defaults::POLL_INTERVAL);
    }

    #[test]
    fn flags_override_the_file() {
        let file = FileConfig::parse("interfaces = [\"eth0\"]\n[cache]\nactive_timeout = \"30s\"\n").unwrap();
        let o = Overrides {
            interfaces: vec!["eth1".into()],
            active_timeout: Some(Duration::from_secs(5)),
            vxlan_ports: vec![4790],
            ..Overrides::default()
        };
        let c = file.resolve(&o).unwrap();
        assert_eq!(c.interfaces, ["eth1"]);
        assert_eq!(c.cache.active_timeout, Duration::from_secs(5));
        assert_eq!(c.load.vxlan_ports, [4790]);
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
            ("interfaces = [\"eth0\"]\n[kernel]\npoll_interval = \"20s\"", "kernel.poll_interval"),
            ("interfaces = [\"eth0\"]\n[kernel]\nfallback_ring_bytes = 5000", "kernel.fallback_ring_bytes"),
            ("interfaces = [\"eth0\"]\n[cache]\nmax_flows = 0", "cache.max_flows"),
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

    #[test]
    fn bad_duration_is_a_parse_error() {
        let err = FileConfig::parse("[cache]\nactive_timeout = \"sixty\"").unwrap_err();
        assert!(err.contains("active_timeout"), "{err}");
    }
}
