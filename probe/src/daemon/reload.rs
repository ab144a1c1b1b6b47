//! SIGHUP: read the configuration again and apply what changed, keeping every
//! cached flow and every counted packet. The new configuration is applied
//! whole or not at all; what cannot change without reloading the eBPF
//! programs (map sizes, attach mode) or rebinding the endpoints keeps its old
//! value, with a warning.

use super::Daemon;
use crate::{
    config::{ConfigError, RuntimeConfig},
    export::{OpenError, RecordSink as _},
};

#[derive(Debug, thiserror::Error)]
pub(super) enum ReloadError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Open(#[from] OpenError),
}

/// What a reload changed, for its log line.
#[derive(Debug, Default)]
struct Changes {
    /// Which of `interfaces`, the tunnel keys, `tunnel_interfaces`, `cache`,
    /// `poll_interval` changed.
    changed: Vec<&'static str>,
    opened: Vec<String>,
    closed: Vec<String>,
    /// Keys whose new value needs a restart; their old value stays.
    needs_restart: Vec<&'static str>,
}

impl Daemon {
    /// Reloads and logs the outcome; tells systemd it is reloading (the
    /// caller says ready when done). True when the new configuration took:
    /// the interfaces are then to be rescanned under it.
    pub(super) fn reload_and_report(&mut self) -> bool {
        tracing::info!(signal = "SIGHUP", file = ?self.source.file, "reloading the configuration");
        self.notifier.reloading();
        match self.reload() {
            Ok(c) => {
                for key in &c.needs_restart {
                    tracing::warn!(
                        key,
                        "changing this setting needs a restart (systemctl restart vxflow); the old value stays"
                    );
                }
                tracing::info!(
                    changed = ?c.changed,
                    outputs_opened = ?c.opened,
                    outputs_closed = ?c.closed,
                    flows_kept = self.pipeline.cache.len(),
                    "configuration reloaded"
                );
                true
            }
            Err(error) => {
                tracing::error!(
                    error = %crate::error_chain(&error),
                    "configuration rejected; the running configuration stays in force"
                );
                false
            }
        }
    }

    fn reload(&mut self) -> Result<Changes, ReloadError> {
        let mut new = self.source.load()?;
        let old = &self.config.clone();
        let mut c = Changes::default();
        keep_restart_only(old, &mut new, &mut c.needs_restart);

        let outputs = self.pipeline.outputs.reconcile(&new.outputs())?;
        // From here on nothing fails the reload: validation bounded the
        // collectors so that the old and the new sockets' tuples together
        // fit the kernel's export map.
        let mut sockets = self.pipeline.outputs.own_sockets();
        sockets.extend(outputs.retired.iter().flat_map(|(_, s)| s.own_sockets()));
        self.exclude(&sockets);
        for (id, mut sink) in outputs.retired {
            sink.close();
            sink.log_stats();
            c.closed.push(id.to_string());
        }
        let live = self.pipeline.outputs.own_sockets();
        self.exclude(&live);
        c.opened = outputs.opened.iter().map(ToString::to_string).collect();

        // Interfaces and tunnel decoding follow at the rescan after the reload.
        for (key, differs) in [
            ("interfaces", new.interfaces != old.interfaces),
            ("vxlan_ports", new.load.tunnels.vxlan_ports() != old.load.tunnels.vxlan_ports()),
            ("geneve_ports", new.load.tunnels.geneve_ports() != old.load.tunnels.geneve_ports()),
            ("ipip_tunnels", new.load.tunnels.ipip() != old.load.tunnels.ipip()),
            ("gre_tunnels", new.load.tunnels.gre() != old.load.tunnels.gre()),
            ("tunnel_interfaces", new.tunnels != old.tunnels),
            ("vni_meaning", new.vni_meaning != old.vni_meaning),
            ("metadata", new.metadata != old.metadata),
            ("cache", new.cache != old.cache),
            ("poll_interval", new.poll_interval != old.poll_interval),
        ] {
            if differs {
                c.changed.push(key);
            }
        }
        if c.changed.contains(&"cache") {
            self.pipeline.cache.set_config(new.cache.clone());
        }
        // The metadata file is read again on every SIGHUP, changed or not.
        let now = crate::clock::kernel_ns();
        self.pipeline.metadata.reconfigure(&new.metadata, now);
        if (new.metadata.pod_metrics, new.metadata.pod_metrics_max)
            != (old.metadata.pod_metrics, old.metadata.pod_metrics_max)
        {
            // Counts start again under the new bound.
            self.pipeline.pod_stats = new
                .metadata
                .pod_metrics
                .then(|| crate::metadata::pod_stats::PodStats::new(new.metadata.pod_metrics_max));
        }
        self.pipeline.metadata.refresh(now, true);
        if new.load.sampling != old.load.sampling {
            // Records exported from here on say the new rate, including
            // counts of the old one still in the cache: a change of rate
            // is best made rarely, and is logged.
            match self.datapath.set_sampling(new.load.sampling) {
                Ok(()) => {
                    self.pipeline.sampling = new.load.sampling;
                    c.changed.push("kernel.sampling");
                }
                Err(error) => {
                    tracing::error!(error = %crate::error_chain(&error), "cannot change the sampling; the old rate stays");
                    new.load.sampling = old.load.sampling;
                }
            }
        }
        self.config = new;
        Ok(c)
    }

    fn exclude(&mut self, sockets: &[vxflow_common::user::SocketTuple]) {
        if let Err(error) = self.datapath.exclude_own_sockets(sockets) {
            tracing::error!(error = %crate::error_chain(&error), "cannot exclude the export sockets; export traffic may be accounted");
        }
    }
}

/// Keeps the old value of settings the loaded programs fix, noting each
/// that the new file changes.
fn keep_restart_only(old: &RuntimeConfig, new: &mut RuntimeConfig, changed: &mut Vec<&'static str>) {
    if new.load.flow_entries != old.load.flow_entries {
        changed.push("kernel.flow_map_entries");
        new.load.flow_entries = old.load.flow_entries;
    }
    if new.load.fallback_ring_bytes != old.load.fallback_ring_bytes {
        changed.push("kernel.fallback_ring_bytes");
        new.load.fallback_ring_bytes = old.load.fallback_ring_bytes;
    }
    if new.load.attach != old.load.attach {
        changed.push("kernel.attach_mode");
        new.load.attach = old.load.attach;
    }
    if new.metrics != old.metrics {
        changed.push("metrics");
        new.metrics = old.metrics;
    }
    if new.control != old.control {
        changed.push("control");
        new.control.clone_from(&old.control);
    }
}
