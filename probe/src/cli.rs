//! Command-line interface (clap). `main.rs` parses it and wires the rest.

use std::{path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand};

use crate::{
    config::{Overrides, TunnelOverrides},
    datapath::AttachPreference,
    export::collector::CollectorSection,
};

/// vxflow: a NetFlow/IPFIX exporter probe that accounts flows in TC eBPF,
/// seeing inside VXLAN overlays (Flannel, Cilium, RFC 7348).
///
/// With no collector configured each expired flow is printed as one JSON line
/// on stdout; logs go to stderr (set `RUST_LOG=debug` for more).
#[derive(Parser, Debug)]
#[command(name = "vxflow", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Attach to interfaces and export flows until SIGTERM or SIGINT; SIGHUP
    /// reloads the config file.
    ///
    /// Example: vxflow run --interface eth0 --vxlan-port 8472 --active-timeout 30s
    Run(Box<RunArgs>),
    /// Ask a running vxflow for its counters or flows, or make it export
    /// every cached flow now (like softflowctl). Needs root or the service's
    /// user.
    ///
    /// Example: vxflow ctl stats; vxflow ctl flows --limit 20; vxflow ctl expire-all
    Ctl(CtlArgs),
    /// Turn packet captures (pcap, pcapng; Ethernet, Linux cooked, raw IP)
    /// into the flow records `run` would have made of the same packets, at
    /// the packets' own times (the timeouts run on packet time), through
    /// the kernel programs' own parser. Needs no root.
    ///
    /// Example: tcpdump -i eth0 -w - | vxflow replay - --json -
    Replay(Box<ReplayArgs>),
    /// Parse and validate a config file, print the resolved settings, exit.
    CheckConfig {
        /// The TOML file to check.
        file: PathBuf,
        /// Print nothing when the file is valid (for systemd's `ExecStartPre=`).
        #[arg(short, long)]
        quiet: bool,
    },
}

/// Which tunnels `run` decodes.
#[derive(Args, Debug)]
pub struct TunnelArgs {
    /// UDP destination port to parse as VXLAN; repeat for several
    /// [default: 4789 and 8472].
    #[arg(long = "vxlan-port", value_name = "N")]
    pub vxlan_ports: Vec<u16>,
    /// UDP destination port to parse as Geneve (Antrea, OVN-Kubernetes,
    /// Cilium's Geneve mode); repeat for several [default: 6081].
    #[arg(long = "geneve-port", value_name = "N")]
    pub geneve_ports: Vec<u16>,
    /// Do not decode IP in IP (IP protocols 4 and 41, Calico's default
    /// overlay): count it as the node-to-node flow it is.
    #[arg(long)]
    pub no_ipip: bool,
    /// Do not decode GRE (IP protocol 47, with a key or NVGRE's Ethernet):
    /// count it as the node-to-node flow it is.
    #[arg(long)]
    pub no_gre: bool,
}

impl TunnelArgs {
    #[must_use]
    pub fn overrides(&self) -> TunnelOverrides {
        TunnelOverrides {
            vxlan_ports: self.vxlan_ports.clone(),
            geneve_ports: self.geneve_ports.clone(),
            no_ipip: self.no_ipip,
            no_gre: self.no_gre,
        }
    }
}

/// The flow cache's settings, for run and replay (whose durations are of
/// packet time).
#[derive(Args, Debug)]
pub struct CacheArgs {
    /// Export a long-lived flow's counts after this long [default: 60s].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub active_timeout: Option<Duration>,
    /// End a flow after this long without a packet [default: 15s].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub inactive_timeout: Option<Duration>,
    /// End a TCP flow this long after FIN both ways or RST [default: 5s].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub tcp_end_timeout: Option<Duration>,
    /// Most flows in the cache; past it the least recently seen end early
    /// [default: 1000000].
    #[arg(long, value_name = "N")]
    pub max_flows: Option<usize>,
    /// How often the kernel's flow counts are drained into the cache; a
    /// replay gathers this much packet time as the kernel's map would
    /// [default: 1s].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub poll_interval: Option<Duration>,
}

/// Where records go, for run and replay.
#[derive(Args, Debug)]
pub struct OutputArgs {
    /// Send records to a collector; repeat for several. SCHEME is ipfix,
    /// ipfix+tcp, netflow9 or netflow5, e.g. ipfix://10.0.0.5:4739 or
    /// netflow9://[2001:db8::5]:2055. Adds to the config file's collectors.
    #[arg(long = "collector", value_name = "SCHEME://HOST:PORT")]
    #[expect(clippy::doc_markdown, reason = "clap prints this as --help text, where backticks would show")]
    pub collectors: Vec<CollectorSection>,
    /// Also write JSON lines to FILE, or to stdout with "-" (the default when
    /// no collector is configured).
    #[arg(long, value_name = "FILE|-")]
    pub json: Option<String>,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// TOML config file (see config/vxflow.toml); flags override its values.
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Interface to watch, ingress and egress; repeat for several. A name,
    /// a pattern ('eth*'), an exclusion ('!veth*'), or auto: the interface
    /// the default route leaves by and every VXLAN device, followed as
    /// interfaces come and go.
    #[arg(short, long = "interface", value_name = "NAME")]
    pub interfaces: Vec<String>,
    #[command(flatten)]
    pub tunnels: TunnelArgs,
    /// Interface where tunnel headers are parsed; repeat for several. Names,
    /// patterns and exclusions as for --interface; auto (the default): the
    /// underlay, i.e. the default-route interface and the devices VXLAN
    /// devices send through. Elsewhere (pod veths, cni0, flannel.1) a tunnel
    /// header is pod data, counted as the plain flow it is: a pod cannot
    /// forge a tunnel there.
    #[arg(long = "tunnel-interface", value_name = "NAME")]
    pub tunnel_interfaces: Vec<String>,
    /// One record per interface that saw a flow. By default a packet that
    /// crosses several watched interfaces (pod veth, cni0, flannel.1, eth0)
    /// is counted once, on the interface that owns its flow.
    #[arg(long)]
    pub per_interface_records: bool,
    #[command(flatten)]
    pub cache: CacheArgs,
    /// Entries in each of the two kernel flow-map generations [default:
    /// 65536]. Past it, packets take the fallback ring and vxflow drains
    /// early.
    #[arg(long, value_name = "N")]
    pub flow_map_entries: Option<u32>,
    /// Count 1 in N IP packets, picked at random, for nodes past what exact
    /// accounting can afford; TCP SYN, FIN and RST always reach their flow
    /// (their flags, not their counts). Records carry sampled counts and
    /// collectors scale them by N from the options records [default: 1,
    /// every packet; at most 16383].
    #[arg(long, value_name = "N")]
    pub sampling: Option<u32>,
    /// How to attach: tcx (kernel 6.6+; links go with the process), clsact
    /// (tc filters, any kernel; stale ones from a crashed run are removed),
    /// or auto [default: auto, TCX where the kernel has it].
    #[arg(long, value_name = "MODE")]
    pub attach_mode: Option<AttachPreference>,
    #[command(flatten)]
    pub outputs: OutputArgs,
    /// Serve Prometheus metrics (/metrics) and /healthz on ADDR:PORT
    /// [default: 127.0.0.1:9739].
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics_listen: Option<String>,
    /// Serve no metrics endpoint.
    #[arg(long, conflicts_with = "metrics_listen")]
    pub no_metrics: bool,
    /// Unix socket for `vxflow ctl` [default: /run/vxflow/vxflow.sock].
    #[arg(long, value_name = "PATH")]
    pub control_socket: Option<PathBuf>,
    /// Open no control socket.
    #[arg(long, conflicts_with = "control_socket")]
    pub no_control: bool,
    /// Name addresses in records from this metadata file (replaces
    /// [metadata] file): addresses and networks to pod, namespace, node;
    /// read again when it changes and on SIGHUP.
    #[arg(long, value_name = "FILE")]
    pub metadata_file: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// Captures to replay, together in time order; "-" reads one from
    /// standard input (tcpdump -w - | vxflow replay -).
    #[arg(required = true, value_name = "FILE")]
    pub captures: Vec<PathBuf>,
    /// TOML config file for the timeouts, tunnels and outputs (its
    /// interfaces, metrics and control socket are not used); flags override.
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub tunnels: TunnelArgs,
    /// Count tunnel headers as the plain node-to-node flows they are, as
    /// on an interface where tunnels are not trusted. By default they are
    /// decoded, as on a node's underlay.
    #[arg(long)]
    pub untrusted_tunnels: bool,
    /// One record per interface that saw a flow (a capture of several
    /// interfaces: pcapng, tcpdump -i any). By default a packet seen on
    /// several is counted once, as run counts it.
    #[arg(long)]
    pub per_interface_records: bool,
    /// as-fast (the default), realtime, or a factor of the captured pace
    /// (10x). Records and their times are the same at every speed.
    #[arg(long, value_name = "SPEED", default_value = "as-fast")]
    pub speed: crate::replay::Speed,
    // Its durations are of packet time.
    #[command(flatten)]
    pub cache: CacheArgs,
    #[command(flatten)]
    pub outputs: OutputArgs,
    /// Name the capture's addresses from this metadata file (the format of
    /// [metadata] file: addresses and networks to pod, namespace, node),
    /// for every packet time [default: the config's [metadata] file]. The
    /// container runtime and the Kubernetes API are not asked: they know
    /// today's pods, not the capture's.
    #[arg(long, value_name = "FILE")]
    pub metadata_file: Option<PathBuf>,
}

impl ReplayArgs {
    #[must_use]
    pub fn overrides(&self) -> Overrides {
        let CacheArgs { active_timeout, inactive_timeout, tcp_end_timeout, max_flows, poll_interval } = self.cache;
        Overrides {
            // Not watched: a replay reads captures. Named so a config
            // without interfaces validates.
            interfaces: vec!["auto".into()],
            tunnels: self.tunnels.overrides(),
            per_interface_records: self.per_interface_records,
            active_timeout,
            inactive_timeout,
            tcp_end_timeout,
            max_flows,
            poll_interval,
            collectors: self.outputs.collectors.clone(),
            json: self.outputs.json.clone(),
            no_metrics: true,
            no_control: true,
            metadata_file: self.metadata_file.clone(),
            ..Overrides::default()
        }
    }
}

#[derive(Args, Debug)]
pub struct CtlArgs {
    /// The running vxflow's control socket.
    #[arg(long, value_name = "PATH", default_value = crate::control::DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Print the answer as JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(subcommand)]
    pub command: CtlCommand,
}

#[derive(Subcommand, Debug, Clone, Copy)]
pub enum CtlCommand {
    /// Counters: datapath, flow cache, per interface, per VNI, per collector.
    Stats,
    /// The cached flows with the most bytes since their last record.
    Flows {
        /// Most flows to list.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// End every cached flow now and export it (flowEndReason 4, forced end).
    ExpireAll,
    /// The names the metadata sources gave addresses: each address with its
    /// pod (or node, or host), namespace, node, source, and since and until
    /// when it held it; then the named networks (nodes' pod CIDRs, the
    /// file's networks), which name addresses nobody holds.
    Pods,
}

impl RunArgs {
    #[must_use]
    pub fn overrides(&self) -> Overrides {
        // Every field named, the cache's too: a new setting must be
        // decided here, not defaulted unseen.
        let CacheArgs { active_timeout, inactive_timeout, tcp_end_timeout, max_flows, poll_interval } = self.cache;
        Overrides {
            interfaces: self.interfaces.clone(),
            tunnels: self.tunnels.overrides(),
            tunnel_interfaces: self.tunnel_interfaces.clone(),
            per_interface_records: self.per_interface_records,
            active_timeout,
            inactive_timeout,
            tcp_end_timeout,
            max_flows,
            poll_interval,
            flow_map_entries: self.flow_map_entries,
            sampling: self.sampling,
            attach_mode: self.attach_mode,
            collectors: self.outputs.collectors.clone(),
            json: self.outputs.json.clone(),
            metrics_listen: self.metrics_listen.clone(),
            no_metrics: self.no_metrics,
            control_socket: self.control_socket.clone(),
            no_control: self.no_control,
            metadata_file: self.metadata_file.clone(),
        }
    }
}
