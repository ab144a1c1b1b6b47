//! Pods and Nodes as the `kubernetes` source reads them: only the fields it
//! uses are decoded (serde skips the rest of each object as it reads, so a
//! pod's managed fields, spec and annotations are never held), and each
//! becomes a [`Claim`] for the map.
//!
//! kube's watcher needs a `metadata` to follow resource versions; the one
//! kept holds the name, namespace, UID, resource version, times, labels,
//! owner references and the one annotation used (Flannel's public IP).

use std::{borrow::Cow, collections::BTreeMap, net::IpAddr};

use ipnet::IpNet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use serde::{Deserialize, Deserializer};

use crate::metadata::{
    claim::Claim,
    ipmap::{Owner, OwnerId, OwnerKind, Workload},
};

/// Flannel's annotation with the address a node's VXLAN traffic leaves
/// from (its VTEP), where that differs from the node's `InternalIP`.
pub const FLANNEL_PUBLIC_IP: &str = "flannel.alpha.coreos.com/public-ip";

/// The source's suffix on the ids it gives owners.
const SOURCE: &str = "kubernetes";

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SlimMeta {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    creation_timestamp: Option<Time>,
    deletion_timestamp: Option<Time>,
    labels: Option<BTreeMap<String, String>>,
    annotations: Option<KnownAnnotations>,
    owner_references: Option<Vec<OwnerReference>>,
}

#[derive(Default, Deserialize)]
struct KnownAnnotations {
    #[serde(rename = "flannel.alpha.coreos.com/public-ip")]
    flannel_public_ip: Option<String>,
}

/// `metadata`, with only the fields above.
fn slim_meta<'de, D: Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    let m = Option::<SlimMeta>::deserialize(d)?.unwrap_or_default();
    let annotations =
        m.annotations.and_then(|a| a.flannel_public_ip).map(|ip| BTreeMap::from([(FLANNEL_PUBLIC_IP.to_owned(), ip)]));
    Ok(ObjectMeta {
        name: m.name,
        namespace: m.namespace,
        uid: m.uid,
        resource_version: m.resource_version,
        creation_timestamp: m.creation_timestamp,
        deletion_timestamp: m.deletion_timestamp,
        labels: m.labels,
        annotations,
        owner_references: m.owner_references,
        ..ObjectMeta::default()
    })
}

/// A Pod: metadata, `spec.nodeName`, `spec.hostNetwork`, `status.phase`,
/// `status.podIPs` and the conditions that date its sandbox.
#[derive(Clone, Debug, Deserialize)]
pub struct PodObject {
    #[serde(default, deserialize_with = "slim_meta")]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: Option<PodSpec>,
    #[serde(default)]
    status: Option<PodStatus>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodSpec {
    node_name: Option<String>,
    host_network: Option<bool>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodStatus {
    phase: Option<String>,
    #[serde(rename = "podIP")]
    pod_ip: Option<String>,
    #[serde(rename = "podIPs")]
    pod_ips: Option<Vec<PodIp>>,
    conditions: Option<Vec<Condition>>,
}

#[derive(Clone, Debug, Deserialize)]
struct PodIp {
    ip: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Condition {
    #[serde(rename = "type")]
    kind: String,
    status: String,
    last_transition_time: Option<Time>,
}

/// A Node: metadata (with Flannel's annotation), `spec.podCIDRs` and
/// `status.addresses`.
#[derive(Clone, Debug, Deserialize)]
pub struct NodeObject {
    #[serde(default, deserialize_with = "slim_meta")]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: Option<NodeSpec>,
    #[serde(default)]
    status: Option<NodeStatus>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NodeSpec {
    #[serde(rename = "podCIDR")]
    pod_cidr: Option<String>,
    #[serde(rename = "podCIDRs")]
    pod_cidrs: Option<Vec<String>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
struct NodeStatus {
    addresses: Option<Vec<NodeAddress>>,
}

#[derive(Clone, Debug, Deserialize)]
struct NodeAddress {
    #[serde(rename = "type")]
    kind: String,
    address: String,
}

macro_rules! core_v1_resource {
    ($ty:ty, $kind:literal, $plural:literal, $scope:ty) => {
        impl kube::Resource for $ty {
            type DynamicType = ();
            type Scope = $scope;

            fn kind((): &()) -> Cow<'_, str> {
                Cow::Borrowed($kind)
            }

            fn group((): &()) -> Cow<'_, str> {
                Cow::Borrowed("")
            }

            fn version((): &()) -> Cow<'_, str> {
                Cow::Borrowed("v1")
            }

            fn plural((): &()) -> Cow<'_, str> {
                Cow::Borrowed($plural)
            }

            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }

            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

core_v1_resource!(PodObject, "Pod", "pods", k8s_openapi::NamespaceResourceScope);
core_v1_resource!(NodeObject, "Node", "nodes", k8s_openapi::ClusterResourceScope);

fn unix_ns(t: &Time) -> i128 {
    t.0.as_nanosecond()
}

/// A pod's sandbox is ready (its address assigned) no later than these
/// conditions turned true; the API keeps whole seconds, hence the second
/// added: a pod is named from no earlier than it could hold its address.
const SANDBOX_CONDITIONS: [&str; 3] = ["PodReadyToStartContainers", "ContainersReady", "Ready"];

impl PodObject {
    /// The owner id the source gives this pod, when it has a UID.
    #[must_use]
    pub fn id(&self) -> Option<OwnerId> {
        self.metadata.uid.as_deref().filter(|u| !u.is_empty()).map(|uid| format!("pod/{uid}@{SOURCE}").into())
    }

    /// The pod as the map takes it: its addresses unless it shares its
    /// node's (host network) or has finished (a finished pod's addresses
    /// stay in its status, but it no longer holds them).
    #[must_use]
    pub fn claim(&self) -> Option<Claim> {
        let id = self.id()?;
        let m = &self.metadata;
        let spec = self.spec.clone().unwrap_or_default();
        let status = self.status.clone().unwrap_or_default();
        let finished = matches!(status.phase.as_deref(), Some("Succeeded" | "Failed"));
        let addresses = if spec.host_network.unwrap_or(false) || finished {
            Vec::new()
        } else {
            let listed = status.pod_ips.iter().flatten().map(|p| p.ip.as_str());
            let mut ips: Vec<IpAddr> = listed.chain(status.pod_ip.as_deref()).filter_map(|s| s.parse().ok()).collect();
            ips.sort_unstable();
            ips.dedup();
            ips
        };
        let labels = m.labels.clone().unwrap_or_default();
        let name = m.name.clone().unwrap_or_default();
        let workload = workload_of(m.owner_references.as_deref().unwrap_or_default(), &labels);
        let owner = Owner {
            kind: OwnerKind::Pod,
            name: name.into(),
            namespace: m.namespace.as_deref().map(Into::into),
            node: spec.node_name.as_deref().map(Into::into),
            workload,
            labels: labels.into_iter().map(|(k, v)| (k.into(), v.into())).collect(),
        };
        let since = status
            .conditions
            .iter()
            .flatten()
            .filter(|c| c.status == "True" && SANDBOX_CONDITIONS.contains(&c.kind.as_str()))
            .filter_map(|c| c.last_transition_time.as_ref().map(unix_ns))
            .min()
            .map(|t| t + 1_000_000_000);
        Some(Claim {
            since_unix_ns: since,
            releasing: m.deletion_timestamp.is_some(),
            ..Claim::new(id, owner, addresses)
        })
    }
}

impl NodeObject {
    /// The owner id the source gives this node.
    #[must_use]
    pub fn id(&self) -> Option<OwnerId> {
        self.metadata.name.as_deref().filter(|n| !n.is_empty()).map(|name| format!("node/{name}@{SOURCE}").into())
    }

    /// The node as the map takes it: its internal and external addresses
    /// and Flannel's public IP, which host-network pods share; its pod
    /// CIDRs name the addresses in them no pod holds (the node's own bridge
    /// and tunnel addresses, pods not yet seen).
    #[must_use]
    pub fn claim(&self) -> Option<Claim> {
        let id = self.id()?;
        let m = &self.metadata;
        let name = m.name.clone().unwrap_or_default();
        let listed = self.status.iter().flat_map(|s| s.addresses.iter().flatten());
        let flannel = m.annotations.as_ref().and_then(|a| a.get(FLANNEL_PUBLIC_IP)).map(String::as_str);
        let mut addresses: Vec<IpAddr> = listed
            .filter(|a| a.kind == "InternalIP" || a.kind == "ExternalIP")
            .map(|a| a.address.as_str())
            .chain(flannel)
            .filter_map(|s| s.parse().ok())
            .collect();
        addresses.sort_unstable();
        addresses.dedup();
        let spec = self.spec.clone().unwrap_or_default();
        let mut networks: Vec<IpNet> = spec
            .pod_cidrs
            .iter()
            .flatten()
            .chain(spec.pod_cidr.as_ref())
            .filter_map(|s| s.parse::<IpNet>().ok())
            .map(|n| n.trunc())
            .collect();
        networks.sort_unstable();
        networks.dedup();
        let owner = Owner {
            kind: OwnerKind::Node,
            name: name.as_str().into(),
            namespace: None,
            node: Some(name.into()),
            workload: None,
            labels: Box::default(),
        };
        Some(Claim {
            networks,
            since_unix_ns: m.creation_timestamp.as_ref().map(unix_ns),
            ..Claim::new(id, owner, addresses)
        })
    }
}

/// The workload a pod belongs to, from its controller's owner reference: a
/// `ReplicaSet` named `<deployment>-<pod-template-hash>` is its Deployment's
/// (the name a Deployment gives the sets it makes), other owners are
/// themselves. A Job's `CronJob` is not known: Jobs are not watched.
fn workload_of(owners: &[OwnerReference], labels: &BTreeMap<String, String>) -> Option<Workload> {
    let owner = owners.iter().find(|o| o.controller == Some(true)).or_else(|| owners.first())?;
    if owner.kind == "ReplicaSet"
        && let Some(hash) = labels.get("pod-template-hash")
        && let Some(deployment) = owner.name.strip_suffix(hash.as_str()).and_then(|p| p.strip_suffix('-'))
        && !deployment.is_empty()
    {
        return Some(Workload { kind: "Deployment".into(), name: deployment.into() });
    }
    Some(Workload { kind: owner.kind.as_str().into(), name: owner.name.as_str().into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(json: serde_json::Value) -> PodObject {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_deployment_pod_with_two_addresses() {
        let p = pod(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": "web-7d9f8b6c5-x2k9p", "namespace": "shop", "uid": "u-1", "resourceVersion": "7",
                "labels": {"app": "web", "pod-template-hash": "7d9f8b6c5"},
                "annotations": {"kubectl.kubernetes.io/restartedAt": "x"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9f8b6c5",
                                     "uid": "rs", "controller": true, "blockOwnerDeletion": true}],
                "managedFields": [{"manager": "kubelet", "operation": "Update", "fieldsV1": {"f:status": {}}}]
            },
            "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "nginx"}]},
            "status": {"phase": "Running", "podIP": "10.244.1.5",
                       "podIPs": [{"ip": "10.244.1.5"}, {"ip": "fd00:10:244:1::5"}, {"ip": "bogus"}],
                       "conditions": [
                           {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": "2026-11-30T04:00:10Z"},
                           {"type": "Ready", "status": "True", "lastTransitionTime": "2026-11-30T04:00:12Z"},
                           {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-11-30T04:00:01Z"}]}
        }));
        assert!(p.metadata.annotations.is_none(), "only Flannel's annotation is kept");
        let c = p.claim().unwrap();
        assert_eq!(&*c.id, "pod/u-1@kubernetes");
        assert_eq!(c.addresses, ["10.244.1.5".parse::<IpAddr>().unwrap(), "fd00:10:244:1::5".parse().unwrap()]);
        assert_eq!(c.owner.node.as_deref(), Some("node-1"));
        assert_eq!(c.owner.workload, Some(Workload { kind: "Deployment".into(), name: "web".into() }));
        let ready: k8s_openapi::jiff::Timestamp = "2026-11-30T04:00:11Z".parse().unwrap();
        assert_eq!(c.since_unix_ns, Some(ready.as_nanosecond()));
        assert!(!c.releasing);
    }

    #[test]
    fn host_network_finished_and_terminating_pods() {
        let base = |extra: serde_json::Value| {
            let mut v = serde_json::json!({
                "metadata": {"name": "p", "namespace": "kube-system", "uid": "u"},
                "spec": {"nodeName": "node-1"},
                "status": {"phase": "Running", "podIPs": [{"ip": "192.168.56.11"}]}
            });
            json_merge(&mut v, extra);
            pod(v).claim().unwrap()
        };
        assert!(base(serde_json::json!({"spec": {"hostNetwork": true}})).addresses.is_empty());
        assert!(base(serde_json::json!({"status": {"phase": "Succeeded"}})).addresses.is_empty());
        assert!(base(serde_json::json!({"status": {"phase": "Failed"}})).addresses.is_empty());
        let t = base(serde_json::json!({"metadata": {"deletionTimestamp": "2026-11-30T04:00:00Z"}}));
        assert!(t.releasing && t.addresses.len() == 1);
        assert_eq!(base(serde_json::json!({})).since_unix_ns, None, "no condition dates it");
        let no_uid = pod(serde_json::json!({"metadata": {"name": "p"}}));
        assert!(no_uid.claim().is_none());
        let nulls = pod(serde_json::json!({"metadata": {"name": "p", "uid": "u"}, "spec": null, "status": null}));
        assert!(nulls.claim().unwrap().addresses.is_empty());
    }

    fn json_merge(a: &mut serde_json::Value, b: serde_json::Value) {
        match (a, b) {
            (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                for (k, v) in b {
                    json_merge(a.entry(k).or_insert(serde_json::Value::Null), v);
                }
            }
            (a, b) => *a = b,
        }
    }

    #[test]
    fn a_node_with_flannel_and_two_families() {
        let n: NodeObject = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "node-2", "uid": "n2", "creationTimestamp": "2026-11-01T00:00:00Z",
                         "annotations": {FLANNEL_PUBLIC_IP: "203.0.113.12", "node.alpha.kubernetes.io/ttl": "0"}},
            "spec": {"podCIDR": "10.244.2.0/24", "podCIDRs": ["10.244.2.0/24", "fd00:10:244:2::/64"]},
            "status": {"addresses": [{"type": "InternalIP", "address": "192.168.56.12"},
                                      {"type": "Hostname", "address": "node-2"},
                                      {"type": "ExternalIP", "address": "198.51.100.2"}]}
        }))
        .unwrap();
        let c = n.claim().unwrap();
        assert_eq!(&*c.id, "node/node-2@kubernetes");
        let ips: Vec<String> = c.addresses.iter().map(ToString::to_string).collect();
        assert_eq!(ips, ["192.168.56.12", "198.51.100.2", "203.0.113.12"]);
        let nets: Vec<String> = c.networks.iter().map(ToString::to_string).collect();
        assert_eq!(nets, ["10.244.2.0/24", "fd00:10:244:2::/64"]);
        assert_eq!(c.owner.kind, OwnerKind::Node);
    }

    #[test]
    fn workloads_from_owner_references() {
        let r = |kind: &str, name: &str, controller| OwnerReference {
            api_version: "apps/v1".into(),
            kind: kind.into(),
            name: name.into(),
            uid: "x".into(),
            controller,
            block_owner_deletion: None,
        };
        let labels = BTreeMap::from([("pod-template-hash".to_owned(), "5f7b".to_owned())]);
        let name = |w: Option<Workload>| w.map(|w| format!("{}/{}", w.kind, w.name));
        assert_eq!(name(workload_of(&[r("ReplicaSet", "api-5f7b", Some(true))], &labels)).unwrap(), "Deployment/api");
        assert_eq!(
            name(workload_of(&[r("ReplicaSet", "api-other", Some(true))], &labels)).unwrap(),
            "ReplicaSet/api-other"
        );
        assert_eq!(name(workload_of(&[r("ReplicaSet", "5f7b", Some(true))], &labels)).unwrap(), "ReplicaSet/5f7b");
        let two = [r("ConfigMap", "c", None), r("StatefulSet", "db", Some(true))];
        assert_eq!(name(workload_of(&two, &BTreeMap::new())).unwrap(), "StatefulSet/db");
        assert_eq!(workload_of(&[], &labels), None);
    }
}
