//! The `kubernetes` metadata source: Pods (cluster-wide, or as a field or
//! label selector narrows them) and Nodes from the API server, through
//! kube's watcher: a list, then a watch from its resource version, resumed
//! from the last bookmark, listed again after `410 Gone`, backing off on
//! errors (0.8 s doubling to 30 s). The watch runs in a task of its own and
//! hands changes over a channel, so a slow or absent API server never holds
//! up accounting or export; what it said last stands meanwhile.

pub mod objects;

use std::{fmt, path::PathBuf, pin::pin};

use futures_util::StreamExt as _;
use kube::{
    Api, Client,
    runtime::{WatchStreamExt as _, watcher},
};
use tokio::sync::mpsc;

pub use self::objects::{NodeObject, PodObject};
use super::{claim::Claim, ipmap::OwnerId};

/// Largest kubeconfig read.
const MAX_KUBECONFIG_BYTES: u64 = 1 << 20;

/// Changes waiting for the map before the watch waits for the map.
const CHANNEL_DEPTH: usize = 1024;

/// The `[metadata.kubernetes]` settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KubernetesConfig {
    /// A kubeconfig; none: `$KUBECONFIG` or `~/.kube/config`, else the
    /// in-cluster service account.
    pub kubeconfig: Option<PathBuf>,
    /// Narrow the pods watched (`spec.nodeName=node-1`, `app=web`).
    pub field_selector: Option<String>,
    pub label_selector: Option<String>,
    /// Watch Nodes too (their addresses and pod CIDRs).
    pub nodes: bool,
}

/// What is watched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Pods,
    Nodes,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Pods => "pods",
            Kind::Nodes => "nodes",
        })
    }
}

/// What the watch saw, for the map.
#[derive(Debug)]
pub enum Change {
    /// A full list: everything of the kind not in it is gone.
    Listed(Kind, Vec<Claim>),
    /// One object added or changed.
    Applied(Kind, Claim),
    /// One object deleted.
    Deleted(Kind, OwnerId),
}

impl Change {
    fn kind(&self) -> Kind {
        match self {
            Change::Listed(k, _) | Change::Applied(k, _) | Change::Deleted(k, _) => *k,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KubernetesError {
    #[error("reading the kubeconfig {path}")]
    ReadKubeconfig {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the kubeconfig {path}")]
    Kubeconfig {
        path: String,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("no kubeconfig ($KUBECONFIG, ~/.kube/config) and not in a cluster; set metadata.kubernetes.kubeconfig")]
    Infer(#[source] kube::config::InferConfigError),
    #[error("making the Kubernetes client")]
    Client(#[source] kube::Error),
}

/// The client `config` names.
///
/// # Errors
/// When the kubeconfig cannot be read or used, or there is none and no
/// in-cluster service account.
pub async fn client(config: &KubernetesConfig) -> Result<Client, KubernetesError> {
    let kube_config = match &config.kubeconfig {
        Some(path) => {
            let shown = path.display().to_string();
            let text = crate::regular_file::read_bounded(path, MAX_KUBECONFIG_BYTES, "a kubeconfig")
                .map_err(|source| KubernetesError::ReadKubeconfig { path: shown.clone(), source })?;
            let kc = kube::config::Kubeconfig::from_yaml(&text)
                .map_err(|source| KubernetesError::Kubeconfig { path: shown.clone(), source })?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|source| KubernetesError::Kubeconfig { path: shown, source })?
        }
        None => kube::Config::infer().await.map_err(KubernetesError::Infer)?,
    };
    Client::try_from(kube_config).map_err(KubernetesError::Client)
}

/// Watches what `config` names until `tx` closes. Not reaching the API
/// server is logged and retried; it is never fatal.
pub async fn run(config: KubernetesConfig, tx: mpsc::Sender<Change>) {
    let mut backoff = std::time::Duration::from_secs(1);
    let client = loop {
        match client(&config).await {
            Ok(c) => break c,
            Err(error) => {
                tracing::warn!(error = %crate::error_chain(&error), retry_in = ?backoff, "no Kubernetes API client");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(std::time::Duration::from_mins(1));
            }
        }
    };
    // Lists come in pages of 500 (kube's default, as client-go's), so a
    // cluster of 100,000 pods is never one response held whole.
    let mut pods = watcher::Config::default();
    if let Some(f) = &config.field_selector {
        pods = pods.fields(f);
    }
    if let Some(l) = &config.label_selector {
        pods = pods.labels(l);
    }
    let pod_watch = watch(Api::<PodObject>::all(client.clone()), pods, Kind::Pods, tx.clone(), |p| (p.id(), p.claim()));
    if config.nodes {
        let node_watch =
            watch(Api::<NodeObject>::all(client), watcher::Config::default(), Kind::Nodes, tx, |n| (n.id(), n.claim()));
        tokio::join!(pod_watch, node_watch);
    } else {
        pod_watch.await;
    }
}

/// Follows one kind's watch: a (re)list is buffered whole and handed over
/// as one change, so the map never sees half a list; each later event as
/// it comes.
async fn watch<K>(
    api: Api<K>,
    config: watcher::Config,
    kind: Kind,
    tx: mpsc::Sender<Change>,
    read: impl Fn(&K) -> (Option<OwnerId>, Option<Claim>),
) where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + fmt::Debug + Send + 'static,
{
    let mut events = pin!(watcher(api, config).default_backoff());
    let mut listing: Option<Vec<Claim>> = None;
    let mut failing = false;
    let mut unnamed = 0u64;
    while let Some(event) = events.next().await {
        let change = match event {
            Err(error) => {
                if matches!(&error, watcher::Error::WatchError(s) if s.code == 410) {
                    tracing::info!(%kind, "the watch's resource version expired (410 Gone); listing again");
                } else {
                    if !failing {
                        tracing::warn!(
                            %kind,
                            error = %crate::error_chain(&error),
                            "the Kubernetes API failed; retrying with backoff (the names it gave stay)"
                        );
                    }
                    failing = true;
                }
                continue;
            }
            Ok(watcher::Event::Init) => {
                listing = Some(Vec::new());
                unnamed = 0;
                continue;
            }
            Ok(watcher::Event::InitApply(object)) => {
                match (read(&object).1, &mut listing) {
                    (Some(claim), Some(list)) => list.push(claim),
                    (None, _) => unnamed += 1,
                    (Some(_), None) => {}
                }
                continue;
            }
            Ok(watcher::Event::InitDone) => {
                let list = listing.take().unwrap_or_default();
                tracing::info!(%kind, objects = list.len(), without_id = unnamed, "listed from the Kubernetes API");
                Change::Listed(kind, list)
            }
            Ok(watcher::Event::Apply(object)) => match read(&object).1 {
                Some(claim) => Change::Applied(kind, claim),
                None => continue,
            },
            Ok(watcher::Event::Delete(object)) => match read(&object).0 {
                Some(id) => Change::Deleted(kind, id),
                None => continue,
            },
        };
        if failing {
            tracing::info!(%kind, "the Kubernetes API answers again");
            failing = false;
        }
        if tx.send(change).await.is_err() {
            return;
        }
    }
}

/// The running watch and what it put in the map.
#[derive(Debug)]
pub struct KubernetesFeed {
    pub config: KubernetesConfig,
    pub changes: mpsc::Receiver<Change>,
    pub pods: super::claim::Claimed,
    pub nodes: super::claim::Claimed,
    task: tokio::task::JoinHandle<()>,
}

impl KubernetesFeed {
    /// Starts the watch on the current tokio runtime.
    #[must_use]
    pub fn spawn(config: &KubernetesConfig) -> Self {
        let (tx, changes) = mpsc::channel(CHANNEL_DEPTH);
        let task = tokio::spawn(run(config.clone(), tx));
        Self {
            config: config.clone(),
            changes,
            pods: super::claim::Claimed::default(),
            nodes: super::claim::Claimed::default(),
            task,
        }
    }

    /// Applies every change waiting, at `now`.
    pub fn apply(&mut self, map: &mut super::IpMap, now: u64) {
        let clock = crate::clock::WallClock::now();
        while let Ok(change) = self.changes.try_recv() {
            let kind = change.kind();
            let claimed = self.claimed(kind);
            match change {
                Change::Listed(_, claims) => {
                    claimed.replace_all(map, claims, now);
                    tracing::debug!(%kind, owners = claimed.len(), "Kubernetes list applied");
                }
                Change::Applied(_, claim) => claimed.apply(map, claim, now, &clock),
                Change::Deleted(_, id) => claimed.remove(map, &id, now),
            }
        }
    }

    /// What the watch of `kind` put in the map.
    fn claimed(&mut self, kind: Kind) -> &mut super::claim::Claimed {
        match kind {
            Kind::Pods => &mut self.pods,
            Kind::Nodes => &mut self.nodes,
        }
    }

    /// The source is dropped: what it named is gone at `now`.
    pub fn clear(&mut self, map: &mut super::IpMap, now: u64) {
        self.pods.clear(map, now);
        self.nodes.clear(map, now);
    }
}

impl Drop for KubernetesFeed {
    fn drop(&mut self) {
        self.task.abort();
    }
}
