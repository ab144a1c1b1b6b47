//! Which interfaces to watch, as the operator writes it: names, shell-style
//! patterns (`eth*`, `veth?*`), exclusions (`!veth*`), and `auto` for the
//! node's underlay (the default-route interface) and its VXLAN devices.

use glob::Pattern;

use super::netlink::{Inventory, Link};

/// The `interfaces` setting, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceSpec {
    auto: bool,
    include: Vec<Pattern>,
    exclude: Vec<Pattern>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    #[error(
        "no interfaces to watch: set `interfaces` in the config file (\"auto\", names or patterns) or pass --interface NAME"
    )]
    Empty,
    #[error("interfaces: {entry:?} excludes only; add what to watch, e.g. \"auto\" or \"eth*\"")]
    OnlyExclusions { entry: String },
    #[error("interfaces: {entry:?} is not a valid pattern ({why}); use names, * and ?, or [abc]")]
    Pattern { entry: String, why: String },
    #[error("interfaces: {entry:?} is not a valid interface name (1 to 15 characters, no '/' or space)")]
    Name { entry: String },
}

/// The keyword for discovery.
pub const AUTO: &str = "auto";

impl InterfaceSpec {
    /// Parses the entries in order; `!` before an entry excludes it.
    ///
    /// # Errors
    /// When there is nothing to watch or an entry is not a name or pattern.
    pub fn parse(entries: &[String]) -> Result<Self, SpecError> {
        let mut spec = Self { auto: false, include: Vec::new(), exclude: Vec::new() };
        for entry in entries {
            let (negated, body) = match entry.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, entry.as_str()),
            };
            if body == AUTO && !negated {
                spec.auto = true;
                continue;
            }
            if body.is_empty() || body.contains(['/', ' ']) || (!is_pattern(body) && !is_interface_name(body)) {
                return Err(SpecError::Name { entry: entry.clone() });
            }
            let pattern =
                Pattern::new(body).map_err(|e| SpecError::Pattern { entry: entry.clone(), why: e.msg.to_owned() })?;
            if negated { spec.exclude.push(pattern) } else { spec.include.push(pattern) }
        }
        if !spec.auto && spec.include.is_empty() {
            return match entries.first() {
                Some(entry) => Err(SpecError::OnlyExclusions { entry: entry.clone() }),
                None => Err(SpecError::Empty),
            };
        }
        Ok(spec)
    }

    /// Whether discovery (`auto`) is on.
    #[must_use]
    pub fn is_auto(&self) -> bool {
        self.auto
    }

    /// Whether `link` is to be watched, given what the node has.
    #[must_use]
    pub fn wants(&self, link: &Link, inventory: &Inventory) -> bool {
        let discovered = self.auto && (inventory.default_route.contains(&link.index) || link.tunnel.is_some());
        let named = self.include.iter().any(|p| p.matches(&link.name));
        (discovered || named) && !self.exclude.iter().any(|p| p.matches(&link.name))
    }

    /// Whether tunnel headers on `link` are to be parsed, `self` being the
    /// `tunnel_interfaces` setting: with `auto`, on the underlay (the
    /// default-route interfaces and the devices tunnel devices send through);
    /// else on what the names and patterns select. Never on a tunnel device:
    /// what crosses it is already decapsulated, pod traffic.
    #[must_use]
    pub fn trusts_tunnels(&self, link: &Link, inventory: &Inventory) -> bool {
        let underlay = inventory.default_route.contains(&link.index)
            || inventory.tunnel_devices().any(|(_, t)| t.lower == link.index);
        let named = self.include.iter().any(|p| p.matches(&link.name));
        link.tunnel.is_none()
            && ((self.auto && underlay) || named)
            && !self.exclude.iter().any(|p| p.matches(&link.name))
    }

    /// Parses `tunnel_interfaces`, where an empty list is allowed: tunnels
    /// are parsed nowhere.
    ///
    /// # Errors
    /// As [`InterfaceSpec::parse`], but for emptiness.
    pub fn parse_tunnel(entries: &[String]) -> Result<Self, SpecError> {
        if entries.is_empty() {
            return Ok(Self { auto: false, include: Vec::new(), exclude: Vec::new() });
        }
        Self::parse(entries)
    }

    /// Plain names (no wildcard) in the setting: each should exist, so one
    /// that does not is worth a warning.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.include.iter().map(Pattern::as_str).filter(|p| !is_pattern(p))
    }
}

/// Whether `text` can name a Linux interface: 1 to 15 bytes, no `/`, no
/// whitespace.
#[must_use]
pub fn is_interface_name(text: &str) -> bool {
    !text.is_empty() && text.len() < libc::IF_NAMESIZE && !text.contains(['/', ' ', '\t', '\n'])
}

fn is_pattern(text: &str) -> bool {
    text.contains(['*', '?', '['])
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use vxflow_common::user::Tunnel;

    use crate::ifaces::netlink::TunnelDevice;

    fn link(index: u32, name: &str, vxlan: bool) -> Link {
        Link {
            index,
            name: name.into(),
            name_is_escaped: false,
            tunnel: vxlan.then_some(TunnelDevice { tunnel: Tunnel::Vxlan, id: Some(1), port: 8472, lower: 3 }),
        }
    }

    fn node() -> Inventory {
        Inventory {
            links: vec![
                link(1, "lo", false),
                link(2, "eth0", false),
                link(3, "eth1", false),
                link(4, "flannel.1", true),
                link(5, "cni0", false),
                link(6, "veth1234", false),
                link(7, "vethabcd", false),
            ],
            default_route: BTreeSet::from([2]),
        }
    }

    fn watched(entries: &[&str]) -> Vec<String> {
        let spec = InterfaceSpec::parse(&entries.iter().map(|&e| e.to_owned()).collect::<Vec<_>>()).unwrap();
        let inv = node();
        inv.links.iter().filter(|l| spec.wants(l, &inv)).map(|l| l.name.clone()).collect()
    }

    #[test]
    fn names_patterns_exclusions_and_auto() {
        assert_eq!(watched(&["eth0"]), ["eth0"]);
        assert_eq!(watched(&["eth*"]), ["eth0", "eth1"]);
        assert_eq!(watched(&["auto"]), ["eth0", "flannel.1"]);
        assert_eq!(watched(&["auto", "cni0"]), ["eth0", "flannel.1", "cni0"]);
        assert_eq!(watched(&["*", "!veth*", "!lo"]), ["eth0", "eth1", "flannel.1", "cni0"]);
        assert_eq!(watched(&["auto", "!flannel.*"]), ["eth0"]);
        assert_eq!(watched(&["veth????"]), ["veth1234", "vethabcd"]);
    }

    fn trusted(entries: &[&str], default_route: bool) -> Vec<String> {
        let spec = InterfaceSpec::parse_tunnel(&entries.iter().map(|&e| e.to_owned()).collect::<Vec<_>>()).unwrap();
        let mut inv = node();
        if !default_route {
            inv.default_route.clear();
        }
        inv.links.iter().filter(|l| spec.trusts_tunnels(l, &inv)).map(|l| l.name.clone()).collect()
    }

    /// Tunnels are parsed on the underlay only: the default-route interface
    /// and flannel.1's lower device (eth1 here), never on flannel.1 itself
    /// or the pod-facing interfaces, unless named.
    #[test]
    fn tunnels_are_trusted_on_the_underlay_only() {
        assert_eq!(trusted(&["auto"], true), ["eth0", "eth1"]);
        assert_eq!(trusted(&["auto"], false), ["eth1"]);
        assert_eq!(trusted(&[], true), Vec::<String>::new());
        assert_eq!(trusted(&["eth0"], false), ["eth0"]);
        assert_eq!(trusted(&["*", "!veth*", "!lo"], false), ["eth0", "eth1", "cni0"]);
        assert_eq!(trusted(&["auto", "!eth1"], true), ["eth0"]);
    }

    /// A GRE or IP-in-IP device is discovered like a VXLAN one: watched
    /// with `auto`, its lower device trusted, never itself.
    #[test]
    fn other_tunnel_devices_are_discovered_too() {
        let mut inv = node();
        inv.default_route.clear();
        inv.links.push(Link {
            index: 8,
            name: "tunl0".into(),
            name_is_escaped: false,
            tunnel: Some(TunnelDevice { tunnel: Tunnel::Ipip, id: None, port: 0, lower: 5 }),
        });
        let auto = InterfaceSpec::parse(&["auto".to_owned()]).unwrap();
        let watched: Vec<&str> = inv.links.iter().filter(|l| auto.wants(l, &inv)).map(|l| l.name.as_str()).collect();
        assert_eq!(watched, ["flannel.1", "tunl0"]);
        let trusted: Vec<&str> =
            inv.links.iter().filter(|l| auto.trusts_tunnels(l, &inv)).map(|l| l.name.as_str()).collect();
        assert_eq!(trusted, ["eth1", "cni0"]);
    }

    #[test]
    fn bad_entries_are_named() {
        let parse = |e: &[&str]| InterfaceSpec::parse(&e.iter().map(|&e| e.to_owned()).collect::<Vec<_>>());
        assert_eq!(parse(&[]), Err(SpecError::Empty));
        assert!(matches!(parse(&["!veth*"]), Err(SpecError::OnlyExclusions { .. })));
        assert!(matches!(parse(&["eth[0"]), Err(SpecError::Pattern { .. })));
        assert!(matches!(parse(&["a-name-far-too-long"]), Err(SpecError::Name { .. })));
        assert!(matches!(parse(&[""]), Err(SpecError::Name { .. })));
        assert!(matches!(parse(&["eth 0"]), Err(SpecError::Name { .. })));
        let spec = parse(&["eth0", "veth*", "!lo"]).unwrap();
        assert_eq!(spec.names().collect::<Vec<_>>(), ["eth0"]);
    }
}
