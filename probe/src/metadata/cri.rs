//! The `cri` metadata source: the pod sandboxes on this node, from the
//! container runtime's CRI API (containerd's `/run/containerd/containerd.sock`
//! by default), polled: each ready sandbox's pod name, namespace, UID,
//! addresses and labels, and its workload where the labels say it. Needs
//! no API server and no credentials; a DaemonSet mounts the socket.
//!
//! A host-network pod's address is its node's: it names no address here.

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use hyper_util::rt::TokioIo;
use k8s_cri::v1::{
    ListPodSandboxRequest, NamespaceMode, PodSandboxFilter, PodSandboxState, PodSandboxStateValue,
    PodSandboxStatusRequest, runtime_service_client::RuntimeServiceClient,
};
use tonic::transport::{Channel, Endpoint, Uri};

use super::{
    claim::Claim,
    ipmap::{Owner, OwnerKind, Workload},
};

/// How long one call to the runtime may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum CriError {
    #[error("connecting to the container runtime at {path}")]
    Connect {
        path: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("the container runtime's {call} failed")]
    Call {
        call: &'static str,
        #[source]
        source: tonic::Status,
    },
    #[error("the container runtime's {call} took more than {CALL_TIMEOUT:?}")]
    Timeout { call: &'static str },
}

/// A connection to the runtime's CRI socket.
pub struct Cri {
    client: RuntimeServiceClient<Channel>,
}

impl Cri {
    /// Connects to the runtime's socket at `path`.
    ///
    /// # Errors
    /// When nothing answers there.
    pub async fn connect(path: PathBuf) -> Result<Self, CriError> {
        let shown = path.display().to_string();
        // The URI is not used: the connector opens the socket.
        let channel = Endpoint::from_static("http://[::]:50051")
            .connect_timeout(CALL_TIMEOUT)
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?)) }
            }))
            .await
            .map_err(|source| CriError::Connect { path: shown, source })?;
        Ok(Self { client: RuntimeServiceClient::new(channel) })
    }

    /// Every ready pod sandbox on this node running on `node`, with its
    /// addresses.
    ///
    /// # Errors
    /// When a call fails or takes too long.
    pub async fn pods(&mut self, node: &str) -> Result<Vec<Claim>, CriError> {
        let ready = PodSandboxFilter {
            state: Some(PodSandboxStateValue { state: PodSandboxState::SandboxReady as i32 }),
            ..PodSandboxFilter::default()
        };
        let request = ListPodSandboxRequest { filter: Some(ready) };
        let list = call("ListPodSandbox", self.client.list_pod_sandbox(request)).await?.items;
        let mut pods = Vec::with_capacity(list.len());
        for sandbox in list {
            let Some(meta) = sandbox.metadata else { continue };
            let request = PodSandboxStatusRequest { pod_sandbox_id: sandbox.id.clone(), verbose: false };
            let status = match call("PodSandboxStatus", self.client.pod_sandbox_status(request)).await {
                Ok(r) => r.status,
                // Gone between the two calls.
                Err(CriError::Call { source, .. }) if source.code() == tonic::Code::NotFound => continue,
                Err(e) => return Err(e),
            };
            let Some(status) = status else { continue };
            let host_network = status
                .linux
                .as_ref()
                .and_then(|l| l.namespaces.as_ref())
                .and_then(|n| n.options.as_ref())
                .is_some_and(|o| o.network == NamespaceMode::Node as i32);
            let addresses = if host_network {
                Vec::new()
            } else {
                status
                    .network
                    .iter()
                    .flat_map(|n| std::iter::once(n.ip.as_str()).chain(n.additional_ips.iter().map(|i| i.ip.as_str())))
                    .filter_map(|ip| ip.parse().ok())
                    .collect()
            };
            let labels: BTreeMap<String, String> = sandbox.labels.into_iter().collect();
            let workload = workload_of(&meta.name, &labels);
            let owner = Owner {
                kind: OwnerKind::Pod,
                name: meta.name.into(),
                namespace: Some(meta.namespace.into()),
                node: Some(node.into()),
                workload,
                labels: labels
                    .into_iter()
                    .filter(|(k, _)| !k.starts_with("io.kubernetes."))
                    .map(|(k, v)| (k.into(), v.into()))
                    .collect(),
            };
            // The pod's UID, as the API server names it too: the two
            // sources then agree on one pod rather than conflict.
            let id = if meta.uid.is_empty() { sandbox.id } else { meta.uid };
            pods.push(Claim {
                since_unix_ns: Some(i128::from(sandbox.created_at)),
                ..Claim::new(format!("pod/{id}@cri").into(), owner, addresses)
            });
        }
        Ok(pods)
    }
}

async fn call<T>(
    name: &'static str,
    request: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, CriError> {
    match tokio::time::timeout(CALL_TIMEOUT, request).await {
        Ok(Ok(r)) => Ok(r.into_inner()),
        Ok(Err(source)) => Err(CriError::Call { call: name, source }),
        Err(_) => Err(CriError::Timeout { call: name }),
    }
}

/// The workload a pod belongs to, from the labels its controller gives it
/// (the runtime knows no owner references): a Deployment's pods carry
/// `pod-template-hash` and are named `<deployment>-<hash>-<suffix>`, a
/// StatefulSet's `statefulset.kubernetes.io/pod-name` and are named
/// `<set>-<ordinal>`, a DaemonSet's `pod-template-generation` and are named
/// `<set>-<suffix>`, a Job's `batch.kubernetes.io/job-name`.
#[must_use]
pub fn workload_of(pod: &str, labels: &BTreeMap<String, String>) -> Option<Workload> {
    let w = |kind: &str, name: &str| Some(Workload { kind: kind.into(), name: name.into() });
    if let Some(job) = labels.get("batch.kubernetes.io/job-name").or_else(|| labels.get("job-name")) {
        return w("Job", job);
    }
    if let Some(hash) = labels.get("pod-template-hash") {
        let (prefix, _) = pod.rsplit_once('-')?;
        return match prefix.strip_suffix(hash.as_str()).and_then(|p| p.strip_suffix('-')) {
            Some(deployment) => w("Deployment", deployment),
            None => w("ReplicaSet", prefix),
        };
    }
    if labels.contains_key("statefulset.kubernetes.io/pod-name") {
        let (set, ordinal) = pod.rsplit_once('-')?;
        return ordinal
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| Workload { kind: "StatefulSet".into(), name: set.into() });
    }
    if labels.contains_key("pod-template-generation") && labels.contains_key("controller-revision-hash") {
        let (set, _) = pod.rsplit_once('-')?;
        return w("DaemonSet", set);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn workloads_from_controller_labels() {
        let name = |w: Option<Workload>| w.map(|w| format!("{}/{}", w.kind, w.name));
        let d = workload_of("web-7d9f8b6c5-x2k9p", &labels(&[("pod-template-hash", "7d9f8b6c5")]));
        assert_eq!(name(d).as_deref(), Some("Deployment/web"));
        let rs = workload_of("web-abc-x2k9p", &labels(&[("pod-template-hash", "7d9f8b6c5")]));
        assert_eq!(name(rs).as_deref(), Some("ReplicaSet/web-abc"));
        let s = workload_of("db-12", &labels(&[("statefulset.kubernetes.io/pod-name", "db-12")]));
        assert_eq!(name(s).as_deref(), Some("StatefulSet/db"));
        let ds = workload_of(
            "node-exporter-q8v2m",
            &labels(&[("pod-template-generation", "3"), ("controller-revision-hash", "6b9c")]),
        );
        assert_eq!(name(ds).as_deref(), Some("DaemonSet/node-exporter"));
        let job = workload_of("backup-28591-abcde", &labels(&[("batch.kubernetes.io/job-name", "backup-28591")]));
        assert_eq!(name(job).as_deref(), Some("Job/backup-28591"));
        assert_eq!(workload_of("lonely", &labels(&[("app", "x")])), None);
        assert_eq!(workload_of("nodash", &labels(&[("pod-template-hash", "x")])), None);
    }
}
