//! The names IPFIX carries for a record: each end's pod namespace and name,
//! and each end's node, in Antrea's information elements (private
//! enterprise 56506, `vmware/go-ipfix`'s `registry_antrea.csv`: 100
//! sourcePodNamespace, 101 sourcePodName, 102 destinationPodNamespace, 103
//! destinationPodName, 104 sourceNodeName, 105 destinationNodeName, all
//! strings). No element of that registry carries a workload, labels or a
//! named host, so IPFIX leaves those out; JSON has them.

use std::net::IpAddr;

use crate::{
    metadata::{IpMap, OwnerKind, Resolved},
    record::FlowRecord,
};

/// A record's names as IPFIX carries them; an unknown one is empty.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordNames {
    pub src_namespace: String,
    pub src_pod: String,
    pub dst_namespace: String,
    pub dst_pod: String,
    pub src_node: String,
    pub dst_node: String,
}

/// A pod's namespace and name, and its node; a node's name.
fn end(map: &IpMap, ip: &IpAddr, at: u64) -> Option<(String, String, String)> {
    let Resolved::Owner(o) = map.resolve(ip, at) else { return None };
    match o.kind {
        OwnerKind::Pod => Some((
            o.namespace.as_deref().unwrap_or_default().to_owned(),
            o.name.to_string(),
            o.node.as_deref().unwrap_or_default().to_owned(),
        )),
        OwnerKind::Node => Some((String::new(), String::new(), o.name.to_string())),
        OwnerKind::Host => None,
    }
}

impl RecordNames {
    /// The names of `r`'s (inner) addresses, as held when its last packet
    /// was seen; `None` when neither end is a known pod or node.
    #[must_use]
    pub fn of(map: &IpMap, r: &FlowRecord) -> Option<Self> {
        let k = &r.key;
        let (src, dst) = (end(map, &k.src_ip(), r.end_ns), end(map, &k.dst_ip(), r.end_ns));
        if src.is_none() && dst.is_none() {
            return None;
        }
        let (src_namespace, src_pod, src_node) = src.unwrap_or_default();
        let (dst_namespace, dst_pod, dst_node) = dst.unwrap_or_default();
        Some(Self { src_namespace, src_pod, dst_namespace, dst_pod, src_node, dst_node })
    }
}
