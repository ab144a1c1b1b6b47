//! Attaching the programs to interfaces and letting them go: TCX links where
//! the kernel has them, clsact filters otherwise, and the claim on the
//! network namespace that decides whether stale filters may be removed.

use aya::programs::{
    LinkOrder,
    tc::{self, NlOptions, TcAttachOptions},
};

use super::{AttachMode, Datapath, Direction, Link, LoadError, tcx};

impl Datapath {
    /// Attaches the ingress and egress programs to `iface`.
    ///
    /// # Errors
    /// When the interface does not exist or the kernel refuses the attachment.
    pub fn attach(&mut self, iface: &str) -> Result<(), LoadError> {
        let index = match crate::ifaces::index_of(iface) {
            Ok(Some(index)) => index,
            Ok(None) => return Err(LoadError::NoSuchInterface { iface: iface.to_owned() }),
            Err(source) => return Err(LoadError::Lookup { iface: iface.to_owned(), source }),
        };
        for direction in Direction::BOTH {
            if self.attached.contains_key(&(iface.to_owned(), direction)) {
                continue;
            }
            let attach_err = |source| LoadError::Attach { iface: iface.to_owned(), direction, source };
            let options = match self.attach_mode {
                AttachMode::Tcx => TcAttachOptions::TcxOrder(LinkOrder::default()),
                AttachMode::Clsact => {
                    // EEXIST (clsact already there) is the normal case.
                    // Stale filters of ours went in the sweep at load.
                    let _ = tc::qdisc_add_clsact(iface);
                    TcAttachOptions::Netlink(NlOptions::default())
                }
            };
            let prog = self.program_mut(direction)?;
            let link = prog.attach_with_options(iface, direction.tc(), options).map_err(attach_err)?;
            self.attached.insert((iface.to_owned(), direction), (index, Link::Aya(link)));
            tracing::info!(iface, %direction, mode = ?self.attach_mode, "attached");
        }
        Ok(())
    }

    /// Attaches both programs to interface `index`, whose name is not UTF-8
    /// (`shown` is it escaped): a TCX link made by index, as aya attaches by
    /// name only. clsact filters cannot be made that way.
    ///
    /// # Errors
    /// In clsact mode, or when the kernel refuses the link.
    pub fn attach_by_index(&mut self, shown: &str, index: u32) -> Result<(), LoadError> {
        if self.attach_mode == AttachMode::Clsact {
            return Err(LoadError::NameNotUtf8 { iface: shown.to_owned() });
        }
        for direction in Direction::BOTH {
            if self.attached.contains_key(&(shown.to_owned(), direction)) {
                continue;
            }
            let attach_type = match direction {
                Direction::Ingress => tcx::BPF_TCX_INGRESS,
                Direction::Egress => tcx::BPF_TCX_EGRESS,
            };
            let prog = self.program(direction)?;
            let prog_fd =
                prog.fd().map_err(|source| LoadError::Attach { iface: shown.to_owned(), direction, source })?;
            let link = tcx::attach(prog_fd, index, attach_type).map_err(|source| LoadError::AttachByIndex {
                iface: shown.to_owned(),
                direction,
                source,
            })?;
            self.attached.insert((shown.to_owned(), direction), (index, Link::TcxByIndex(link)));
            tracing::info!(iface = shown, ifindex = index, %direction, mode = ?self.attach_mode, "attached by index");
        }
        Ok(())
    }

    /// Detaches everything. Links also go when the process exits; this makes
    /// the moment explicit so the final drain sees every counted packet.
    pub fn detach_all(&mut self) {
        let attached = std::mem::take(&mut self.attached);
        for ((iface, direction), (_, link)) in attached {
            self.detach_link(&iface, direction, link);
        }
    }

    fn detach_link(&mut self, iface: &str, direction: Direction, link: Link) {
        let link = match link {
            Link::Aya(link) => link,
            Link::TcxByIndex(fd) => {
                drop(fd);
                tracing::info!(iface, %direction, "detached");
                return;
            }
        };
        let result = self.program_mut(direction).and_then(|p| {
            p.detach(link).map_err(|source| LoadError::Attach { iface: iface.to_owned(), direction, source })
        });
        match result {
            Ok(()) => tracing::info!(iface, %direction, "detached"),
            // An interface that vanished took its link with it.
            Err(error) => tracing::warn!(iface, %direction, error = %crate::error_chain(&error), "detach failed"),
        }
    }

    /// Detaches both programs from `iface`. An interface that vanished took
    /// its links with it; that is not an error.
    pub fn detach(&mut self, iface: &str) {
        for direction in Direction::BOTH {
            let Some((_, link)) = self.attached.remove(&(iface.to_owned(), direction)) else { continue };
            self.detach_link(iface, direction, link);
        }
    }

    /// Forgets the links of an interface that vanished: the kernel removed
    /// the programs with the device, so detaching can only fail; dropping
    /// the link closes it and ignores that failure, which is all there is
    /// left to do.
    pub fn forget(&mut self, iface: &str) {
        for direction in Direction::BOTH {
            let Some((_, link)) = self.attached.remove(&(iface.to_owned(), direction)) else { continue };
            match link {
                Link::Aya(link) => {
                    if let Ok(program) = self.program_mut(direction) {
                        drop(program.take_link(link));
                    }
                }
                Link::TcxByIndex(fd) => drop(fd),
            }
        }
    }

    /// The interfaces programs are attached to.
    #[must_use]
    pub fn interfaces(&self) -> Vec<String> {
        self.attached().into_iter().map(|(name, _)| name).collect()
    }

    /// The interfaces programs are attached to, with their index at attach.
    #[must_use]
    pub fn attached(&self) -> Vec<(String, u32)> {
        let mut links: Vec<(String, u32)> =
            self.attached.iter().map(|((name, _), (index, _))| (name.clone(), *index)).collect();
        links.dedup();
        links
    }

    #[must_use]
    pub fn attach_mode(&self) -> AttachMode {
        self.attach_mode
    }
}

/// Claims the network namespace for this run and, if no other vxflow runs
/// in it, removes the filters runs that died left behind, whatever this
/// run's attach mode (see `filters`).
pub(super) fn claim_namespace() -> super::filters::Claim {
    use super::filters::{Claim, claim, sweep};
    match claim() {
        Ok(Claim::Sole(held)) => {
            sweep(Direction::BOTH.map(|d| (d.program(), d.tc())));
            Claim::Sole(held)
        }
        Ok(Claim::Shared) => {
            tracing::warn!(
                "another vxflow runs in this network namespace: its programs stay attached, and where both watch \
                 an interface both count its packets; stop one of them unless that is what you want"
            );
            Claim::Shared
        }
        Err(error) => {
            tracing::warn!(%error, "cannot tell whether another vxflow runs here; no filter is removed");
            Claim::Shared
        }
    }
}
