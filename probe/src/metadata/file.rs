//! The `file` metadata source: a TOML or JSON file naming addresses and
//! networks (VMs, bare-metal services, pods in a test), re-read when it
//! changes. An entry names one address or one network:
//!
//! ```toml
//! [[host]]
//! address = "10.0.5.7"          # or a network: "10.0.5.0/24"
//! name = "billing-db"
//! kind = "host"                 # "pod", "node" or "host" (the default)
//! namespace = "finance"         # optional, as are node, workload, labels
//! workload = "StatefulSet/billing-db"
//! labels = { team = "finance" }
//! ```
//!
//! Entries with the same kind, namespace and name are one owner with
//! several addresses. A renamed entry is a new owner: flows seen before the
//! change keep the old name.

use std::{
    collections::BTreeMap,
    net::IpAddr,
    path::{Path, PathBuf},
};

use serde::Deserialize;

use super::{
    claim::{Claim, Claimed},
    ipmap::{IpMap, Owner, OwnerId, OwnerKind, Workload},
};

/// Largest metadata file read: about 100,000 entries.
const MAX_FILE_BYTES: u64 = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("reading {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: entry {index} ({address}): {why}")]
    Entry { path: String, index: usize, address: String, why: &'static str },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NamesFile {
    #[serde(default, rename = "host")]
    hosts: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    address: String,
    name: String,
    #[serde(default)]
    kind: EntryKind,
    namespace: Option<String>,
    node: Option<String>,
    /// `Kind/name`, as `Deployment/web`.
    workload: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
enum EntryKind {
    Pod,
    Node,
    #[default]
    Host,
}

/// What the file says: owners with their addresses, and named networks.
#[derive(Debug, Default, PartialEq)]
pub struct Names {
    pub owners: BTreeMap<OwnerId, (Owner, Vec<IpAddr>)>,
    pub networks: Vec<(ipnet::IpNet, Owner)>,
}

impl Names {
    /// Parses the text of `path` (JSON when it ends in `.json`, else TOML).
    ///
    /// # Errors
    /// The parser's message, or the first entry whose address or workload
    /// is not one.
    pub fn parse(path: &Path, text: &str) -> Result<Self, FileError> {
        let shown = path.display().to_string();
        let file: NamesFile = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(text).map_err(|e| FileError::Parse { path: shown.clone(), message: e.to_string() })?
        } else {
            toml::from_str(text).map_err(|e| FileError::Parse {
                path: shown.clone(),
                message: e.to_string().lines().map(str::trim).collect::<Vec<_>>().join(" "),
            })?
        };
        let mut names = Names::default();
        for (index, e) in file.hosts.into_iter().enumerate() {
            let bad = |why| FileError::Entry { path: shown.clone(), index, address: e.address.clone(), why };
            let workload = match &e.workload {
                None => None,
                Some(w) => match w.split_once('/') {
                    Some((kind, name)) if !kind.is_empty() && !name.is_empty() => {
                        Some(Workload { kind: kind.into(), name: name.into() })
                    }
                    _ => return Err(bad("workload is not Kind/name")),
                },
            };
            if e.name.is_empty() {
                return Err(bad("no name"));
            }
            let kind = match e.kind {
                EntryKind::Pod => OwnerKind::Pod,
                EntryKind::Node => OwnerKind::Node,
                EntryKind::Host => OwnerKind::Host,
            };
            let id: OwnerId = format!("file/{kind:?}/{}/{}@file", e.namespace.as_deref().unwrap_or(""), e.name).into();
            let owner = Owner {
                kind,
                name: e.name.into(),
                namespace: e.namespace.map(Into::into),
                node: e.node.map(Into::into),
                workload,
                labels: e.labels.into_iter().map(|(k, v)| (k.into(), v.into())).collect(),
            };
            if let Ok(ip) = e.address.parse::<IpAddr>() {
                let (known, ips) = names.owners.entry(id).or_insert_with(|| (owner.clone(), Vec::new()));
                if *known != owner {
                    return Err(bad("the same kind, namespace and name differ in node, workload or labels"));
                }
                ips.push(ip);
            } else if let Ok(net) = e.address.parse::<ipnet::IpNet>() {
                names.networks.push((net.trunc(), owner));
            } else {
                return Err(bad("not an address or a network (10.0.0.0/24)"));
            }
        }
        Ok(names)
    }
}

/// The file and what of it the map holds.
#[derive(Debug)]
pub struct FileSource {
    path: PathBuf,
    /// What the file was (modified time, length, inode) when last read.
    stamp: Option<(std::time::SystemTime, u64, u64)>,
    claimed: Claimed,
}

impl FileSource {
    #[must_use]
    pub fn new(path: PathBuf) -> Self {
        Self { path, stamp: None, claimed: Claimed::default() }
    }

    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file is no longer a source: what it named is gone at `now`.
    pub fn clear(&mut self, map: &mut IpMap, now: u64) {
        self.claimed.clear(map, now);
    }

    /// Reads the file again if it changed (or `force`), and makes the map
    /// say what it says from `now` on. Returns the owners and networks it
    /// now names, or `None` when it had not changed.
    ///
    /// # Errors
    /// When the file cannot be read or parsed; the map keeps what it had.
    pub fn refresh(&mut self, map: &mut IpMap, now: u64, force: bool) -> Result<Option<(usize, usize)>, FileError> {
        use std::os::unix::fs::MetadataExt as _;
        let read_err = |source| FileError::Read { path: self.path.display().to_string(), source };
        let meta = std::fs::metadata(&self.path).map_err(read_err)?;
        let stamp = (meta.modified().map_err(read_err)?, meta.len(), meta.ino());
        if !force && self.stamp == Some(stamp) {
            return Ok(None);
        }
        let text =
            crate::regular_file::read_bounded(&self.path, MAX_FILE_BYTES, "a metadata file").map_err(read_err)?;
        let names = Names::parse(&self.path, &text)?;
        self.stamp = Some(stamp);
        let counts = (names.owners.len(), names.networks.len());
        let owners = names.owners.into_iter().map(|(id, (owner, ips))| Claim::new(id, owner, ips));
        let networks = names.networks.into_iter().map(|(net, owner)| Claim {
            networks: vec![net],
            ..Claim::new(format!("file/network/{net}@file").into(), owner, Vec::new())
        });
        self.claimed.replace_all(map, owners.chain(networks), now);
        Ok(Some(counts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::ipmap::Resolved;

    const S: u64 = 1_000_000_000;

    fn name_at(map: &IpMap, ip: &str, at: u64) -> Option<String> {
        match map.resolve(&ip.parse().unwrap(), at) {
            Resolved::Owner(o) => Some(o.name.to_string()),
            _ => None,
        }
    }

    #[test]
    fn toml_and_json_name_addresses_and_networks() {
        let toml = r#"
            [[host]]
            address = "10.244.0.5"
            name = "web-1"
            kind = "pod"
            namespace = "shop"
            node = "node-1"
            workload = "Deployment/web"
            labels = { app = "web" }
            [[host]]
            address = "fd00::5"
            name = "web-1"
            kind = "pod"
            namespace = "shop"
            node = "node-1"
            workload = "Deployment/web"
            labels = { app = "web" }
            [[host]]
            address = "10.9.0.0/16"
            name = "corp"
        "#;
        let names = Names::parse(Path::new("n.toml"), toml).unwrap();
        assert_eq!(names.owners.len(), 1, "one pod, two addresses");
        let (owner, ips) = names.owners.values().next().unwrap();
        assert_eq!((&*owner.workload.as_ref().unwrap().kind, ips.len()), ("Deployment", 2));
        assert_eq!(names.networks.len(), 1);
        let json = r#"{"host": [{"address": "10.0.0.1", "name": "vm-1", "labels": {"os": "linux"}}]}"#;
        let names = Names::parse(Path::new("n.json"), json).unwrap();
        assert_eq!(names.owners.values().next().unwrap().0.kind, OwnerKind::Host);
    }

    #[test]
    fn bad_entries_are_named() {
        let cases = [
            ("[[host]]\naddress = \"10.0.0.300\"\nname = \"x\"", "not an address"),
            ("[[host]]\naddress = \"10.0.0.1\"\nname = \"\"", "no name"),
            ("[[host]]\naddress = \"10.0.0.1\"\nname = \"x\"\nworkload = \"web\"", "Kind/name"),
            ("[[host]]\naddress = \"10.0.0.1\"\nname = \"x\"\ncolour = \"red\"", "colour"),
            ("[[host]]\naddress = \"10.0.0.1\"\nname = \"x\"\nkind = \"vm\"", "vm"),
            (
                "[[host]]\naddress = \"10.0.0.1\"\nname = \"x\"\nnode = \"a\"\n[[host]]\naddress = \"10.0.0.2\"\nname = \"x\"\nnode = \"b\"",
                "differ",
            ),
        ];
        for (text, want) in cases {
            let err = Names::parse(Path::new("n.toml"), text).unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    /// The file is read again when it changes: a pod's address given to
    /// another pod renames only what comes after; a dropped entry ends.
    #[test]
    fn a_changed_file_ends_and_starts_tenures() {
        let dir = std::env::temp_dir().join(format!("vxflow-names-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("names.toml");
        let entry = |name: &str| format!("[[host]]\naddress = \"10.244.0.5\"\nname = \"{name}\"\nkind = \"pod\"\n");
        std::fs::write(&path, entry("web-1")).unwrap();
        let mut map = IpMap::new(std::time::Duration::from_mins(2));
        let mut source = FileSource::new(path.clone());
        assert_eq!(source.refresh(&mut map, S, false).unwrap(), Some((1, 0)));
        assert_eq!(source.refresh(&mut map, 2 * S, false).unwrap(), None, "unchanged");
        std::fs::write(&path, entry("db-1")).unwrap();
        assert_eq!(source.refresh(&mut map, 3 * S, true).unwrap(), Some((1, 0)));
        assert_eq!(name_at(&map, "10.244.0.5", 2 * S).as_deref(), Some("web-1"));
        assert_eq!(name_at(&map, "10.244.0.5", 4 * S).as_deref(), Some("db-1"));
        std::fs::write(&path, "").unwrap();
        source.refresh(&mut map, 5 * S, true).unwrap();
        assert_eq!(name_at(&map, "10.244.0.5", 6 * S), None);
        std::fs::write(&path, "not toml [").unwrap();
        assert!(source.refresh(&mut map, 7 * S, true).is_err());
        assert_eq!(name_at(&map, "10.244.0.5", 4 * S).as_deref(), Some("db-1"), "a bad file changes nothing");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
