//! Names for the addresses in flow records: which pod, node or named host
//! held an address when a flow's packets were seen (`ipmap`), fed by the
//! configured sources (`file`; the container runtime and the Kubernetes
//! API come next). No source configured: records carry no names, as
//! before.

pub mod file;
pub mod ipmap;

use std::time::Duration;

use self::file::FileSource;
pub use self::ipmap::{IpMap, Owner, OwnerKind, Resolved};

/// How often ended tenures past their grace period are dropped.
const EXPIRE_EVERY_NS: u64 = 10_000_000_000;

/// The `[metadata]` settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetadataConfig {
    /// The `file` source's path.
    pub file: Option<std::path::PathBuf>,
    /// How long a gone owner still names late records.
    pub grace: Duration,
}

impl Default for MetadataConfig {
    fn default() -> Self {
        Self { file: None, grace: DEFAULT_GRACE }
    }
}

/// A deleted pod's name serves late records this long.
pub const DEFAULT_GRACE: Duration = Duration::from_mins(2);

/// The map and the sources that feed it.
#[derive(Debug, Default)]
pub struct Metadata {
    map: IpMap,
    file: Option<FileSource>,
    last_expiry: u64,
}

impl Metadata {
    #[must_use]
    pub fn new(config: &MetadataConfig) -> Self {
        Self { map: IpMap::new(config.grace), file: config.file.clone().map(FileSource::new), last_expiry: 0 }
    }

    /// Takes a new configuration: a new file is read at the next refresh,
    /// and what the old one named ends now (still naming records seen
    /// before, for the grace period).
    pub fn reconfigure(&mut self, config: &MetadataConfig, now: u64) {
        self.map.set_grace(config.grace);
        if self.file.as_ref().map(FileSource::path) != config.file.as_deref() {
            if self.file.take().is_some() {
                self.end_file(now);
            }
            self.file = config.file.clone().map(FileSource::new);
        }
    }

    fn end_file(&mut self, now: u64) {
        let ids: Vec<_> = self.map.live().map(|(id, _)| id.clone()).filter(|id| id.starts_with("file/")).collect();
        for id in ids {
            self.map.remove(&id, now);
        }
        self.map.set_networks(Vec::new());
    }

    /// Brings the map up to date at `now`: the file re-read if it changed
    /// (or when `force`, as on SIGHUP), expired tenures dropped. Problems
    /// are logged; the map keeps what it had.
    pub fn refresh(&mut self, now: u64, force: bool) {
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
