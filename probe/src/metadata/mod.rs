//! Names for the addresses in flow records: which pod, node or named host
//! held an address when a flow's packets were seen (`ipmap`), fed by the
//! configured sources, each optional and any together: a file (`file`),
//! the container runtime (`cri`, polled by a task of its own) and the
//! Kubernetes API (`kubernetes`, watched by a task of its own). Each source
//! reports owners as claims (`claim`). No source configured: records carry
//! no names, as before.

pub mod claim;
pub mod cri;
pub mod file;
pub mod ipmap;
pub mod kubernetes;
pub mod pod_stats;

use std::{path::PathBuf, sync::Arc, time::Duration};

pub use self::ipmap::{IpMap, Owner, OwnerKind, Resolved};
use self::{
    claim::{Claim, Claimed},
    file::FileSource,
    kubernetes::{KubernetesConfig, KubernetesFeed},
};

/// How often ended tenures past their grace period are dropped.
const EXPIRE_EVERY_NS: u64 = 10_000_000_000;

/// The `[metadata]` settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetadataConfig {
    /// The `file` source's path.
    pub file: Option<PathBuf>,
    /// The `cri` source: the runtime's socket, and how often it is asked.
    pub cri: Option<PathBuf>,
    pub cri_interval: Duration,
    /// The `kubernetes` source.
    pub kubernetes: Option<KubernetesConfig>,
    /// This node's name, for the pods the runtime runs here.
    pub node: String,
    /// How long a gone owner still names late records.
    pub grace: Duration,
    /// Per-pod metrics, and how many pods may have series of their own.
    pub pod_metrics: bool,
    pub pod_metrics_max: usize,
}

impl Default for MetadataConfig {
    fn default() -> Self {
        Self {
            file: None,
            cri: None,
            cri_interval: DEFAULT_CRI_INTERVAL,
            kubernetes: None,
            node: String::new(),
            grace: DEFAULT_GRACE,
            pod_metrics: false,
            pod_metrics_max: DEFAULT_POD_METRICS_MAX,
        }
    }
}

/// Pods with series of their own in the per-pod metrics, by default.
pub const DEFAULT_POD_METRICS_MAX: usize = 1000;

/// containerd's CRI socket.
pub const DEFAULT_CRI_SOCKET: &str = "/run/containerd/containerd.sock";
/// How often the runtime is asked for its pods.
pub const DEFAULT_CRI_INTERVAL: Duration = Duration::from_secs(2);

/// What the `cri` task has told the map, and the task.
#[derive(Debug)]
struct CriFeed {
    pods: tokio::sync::watch::Receiver<Option<Arc<Vec<Claim>>>>,
    claimed: Claimed,
    socket: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for CriFeed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Asks the runtime at `socket` for its pods every `interval`, for as long
/// as the feed lives: each answer replaces the last. An unreachable or
/// failing runtime is logged once until it answers again; the last answer
/// stands meanwhile.
async fn poll_cri(
    socket: PathBuf,
    node: String,
    interval: Duration,
    tx: tokio::sync::watch::Sender<Option<Arc<Vec<Claim>>>>,
) {
    let mut cri = None;
    let mut failing = false;
    loop {
        if cri.is_none() {
            match cri::Cri::connect(socket.clone()).await {
                Ok(c) => cri = Some(c),
                Err(error) if !failing => {
                    tracing::warn!(error = %crate::error_chain(&error), "cannot reach the container runtime; retrying");
                    failing = true;
                }
                Err(_) => {}
            }
        }
        if let Some(c) = &mut cri {
            match c.pods(&node).await {
                Ok(pods) => {
                    if failing || tx.borrow().is_none() {
                        tracing::info!(socket = %socket.display(), pods = pods.len(), "the container runtime answers");
                    }
                    failing = false;
                    tx.send_replace(Some(Arc::new(pods)));
                }
                Err(error) => {
                    if !failing {
                        tracing::warn!(error = %crate::error_chain(&error), "the container runtime failed; retrying");
                    }
                    failing = true;
                    cri = None;
                }
            }
        }
        tokio::time::sleep(interval).await;
    }
}

/// A deleted pod's name serves late records this long.
pub const DEFAULT_GRACE: Duration = Duration::from_mins(2);

/// The map and the sources that feed it.
#[derive(Debug, Default)]
pub struct Metadata {
    map: IpMap,
    file: Option<FileSource>,
    cri: Option<CriFeed>,
    kubernetes: Option<KubernetesFeed>,
    last_expiry: u64,
}

impl Metadata {
    /// The map, and the sources `config` names; the `cri` task is spawned
    /// on the current tokio runtime.
    #[must_use]
    pub fn new(config: &MetadataConfig) -> Self {
        let mut m =
            Self { map: IpMap::new(config.grace), file: config.file.clone().map(FileSource::new), ..Self::default() };
        m.cri = config.cri.as_ref().map(|socket| spawn_cri(socket, config));
        m.kubernetes = config.kubernetes.as_ref().map(KubernetesFeed::spawn);
        m
    }

    /// Takes a new configuration: a new file is read at the next refresh,
    /// a new runtime socket asked; what a dropped source named ends now
    /// (still naming records seen before, for the grace period).
    pub fn reconfigure(&mut self, config: &MetadataConfig, now: u64) {
        self.map.set_grace(config.grace);
        if self.file.as_ref().map(FileSource::path) != config.file.as_deref() {
            if let Some(mut old) = self.file.take() {
                old.clear(&mut self.map, now);
            }
            self.file = config.file.clone().map(FileSource::new);
        }
        if self.cri.as_ref().map(|c| c.socket.as_path()) != config.cri.as_deref() {
            if let Some(mut old) = self.cri.take() {
                old.claimed.clear(&mut self.map, now);
            }
            self.cri = config.cri.as_ref().map(|socket| spawn_cri(socket, config));
        }
        if self.kubernetes.as_ref().map(|k| &k.config) != config.kubernetes.as_ref() {
            if let Some(mut old) = self.kubernetes.take() {
                old.clear(&mut self.map, now);
            }
            self.kubernetes = config.kubernetes.as_ref().map(KubernetesFeed::spawn);
        }
    }

    /// Applies the runtime's latest answer, if a new one came.
    fn apply_cri(&mut self, now: u64) {
        let Some(feed) = &mut self.cri else { return };
        if !feed.pods.has_changed().unwrap_or(false) {
            return;
        }
        let Some(pods) = feed.pods.borrow_and_update().clone() else { return };
        feed.claimed.replace_all(&mut self.map, pods.iter().cloned(), now);
    }

    /// Brings the map up to date at `now`: the file re-read if it changed
    /// (or when `force`, as on SIGHUP), expired tenures dropped. Problems
    /// are logged; the map keeps what it had.
    pub fn refresh(&mut self, now: u64, force: bool) {
        self.apply_cri(now);
        if let Some(k) = &mut self.kubernetes {
            k.apply(&mut self.map, now);
        }
        if let Some(file) = &mut self.file {
            match file.refresh(&mut self.map, now, force) {
                Ok(Some((owners, networks))) => tracing::info!(
                    path = %file.path().display(),
                    owners,
                    networks,
                    conflicts = self.map.conflicts(),
                    "metadata file read"
                ),
                Ok(None) => {}
                Err(error) => tracing::warn!(
                    error = %crate::error_chain(&error),
                    "cannot use the metadata file; the names it gave before stay"
                ),
            }
        }
        if now.saturating_sub(self.last_expiry) >= EXPIRE_EVERY_NS {
            self.map.expire(now);
            self.last_expiry = now;
        }
    }

    /// The map, to resolve addresses.
    #[must_use]
    pub fn map(&self) -> &IpMap {
        &self.map
    }
}

fn spawn_cri(socket: &std::path::Path, config: &MetadataConfig) -> CriFeed {
    let (tx, rx) = tokio::sync::watch::channel(None);
    let task = tokio::spawn(poll_cri(socket.to_owned(), config.node.clone(), config.cri_interval, tx));
    CriFeed { pods: rx, claimed: Claimed::default(), socket: socket.to_owned(), task }
}
