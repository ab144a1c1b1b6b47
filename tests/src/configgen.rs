//! Configuration files as a careless operator or a hostile template writes
//! them: every key vxflow knows (and some it does not), with values at and
//! past their limits, in forms that parse and forms that do not. Used by the
//! config fuzz target (which includes this file by path) and by the
//! end-to-end test that starts and reloads vxflow on generated files.

use std::fmt::Write as _;

use arbitrary::{Arbitrary, Result, Unstructured};

/// One generated file: each entry sets one key. Half the files are written
/// by a careful operator (every value valid, so the daemon starts and
/// reloads on them), half by a careless one or an attacker (any value).
#[derive(Debug)]
pub struct GenConfig {
    top: Vec<(String, String)>,
    sections: Vec<(&'static str, Vec<(String, String)>)>,
    collectors: Vec<Vec<(String, String)>>,
}

const NAMES: &[&str] = &[
    "auto",
    "v0",
    "eth0",
    "eth*",
    "!veth*",
    "*",
    "!lo",
    "flannel.1",
    "",
    "a-name-far-too-long",
    "[",
    "bad/name",
    "v?",
    "!auto",
    "e th0",
];
const ADDRESSES: &[&str] = &[
    "127.0.0.1:4739",
    "127.0.0.1:2055",
    "10.9.0.2:4739",
    "[::1]:4739",
    "::1:4739",
    "127.0.0.1:0",
    "127.0.0.1",
    "127.0.0.1:65536",
    ":4739",
    "[]:1",
    "localhost:4739",
    "",
];
const LISTEN: &[&str] = &["127.0.0.1:9739", "0.0.0.0:9739", "[::1]:9740", "127.0.0.1:0", "localhost:9739", "9739"];
const UNITS: &[&str] = &["ms", "s", "m", "h", "days", "weeks", "y", "ns", "us", "", "parsecs"];
const INTEGERS: &[i128] = &[
    0,
    1,
    2,
    100,
    1400,
    4095,
    4096,
    65_535,
    65_536,
    1 << 20,
    1 << 22,
    (1 << 22) + 1,
    1 << 30,
    1 << 31,
    10_000_000,
    10_000_001,
    u32::MAX as i128,
    u64::MAX as i128,
    -1,
    i64::MIN as i128,
];

fn pick<'a>(u: &mut Unstructured<'_>, from: &[&'a str]) -> Result<&'a str> {
    Ok(*u.choose(from)?)
}

fn quoted(s: &str) -> String {
    format!("{s:?}")
}

fn integer(u: &mut Unstructured<'_>) -> Result<String> {
    if u.ratio(1, 4)? {
        return Ok(u.arbitrary::<u16>()?.to_string());
    }
    Ok(u.choose(INTEGERS)?.to_string())
}

/// A duration: mostly a number and a unit humantime knows, sometimes not a
/// duration at all.
fn duration(u: &mut Unstructured<'_>) -> Result<String> {
    let value = match u.int_in_range(0..=4)? {
        0 => 0u64,
        1 => u64::from(u.int_in_range(1..=120u8)?),
        2 => u64::from(u.arbitrary::<u16>()?),
        3 => 300_000_000_000,
        _ => u64::MAX,
    };
    let text = format!("{value}{}", pick(u, UNITS)?);
    Ok(if u.ratio(1, 20)? { text.replace(char::is_numeric, "") } else { quoted(&text) })
}

fn names(u: &mut Unstructured<'_>) -> Result<String> {
    let n = u.int_in_range(0..=3)?;
    let list: Vec<String> = (0..n).map(|_| pick(u, NAMES).map(quoted)).collect::<Result<_>>()?;
    Ok(format!("[{}]", list.join(", ")))
}

fn ports(u: &mut Unstructured<'_>) -> Result<String> {
    let n = u.int_in_range(0..=3)?;
    let list: Vec<String> = (0..n).map(|_| integer(u)).collect::<Result<_>>()?;
    Ok(format!("[{}]", list.join(", ")))
}

fn collector(u: &mut Unstructured<'_>) -> Result<Vec<(String, String)>> {
    let mut c = vec![("address".to_owned(), quoted(pick(u, ADDRESSES)?))];
    let protocol = pick(u, &["ipfix", "netflow9", "netflow5", "sflow"])?;
    c.push(("protocol".into(), quoted(protocol)));
    if u.ratio(1, 3)? {
        c.push(("transport".into(), quoted(pick(u, &["udp", "tcp", "sctp"])?)));
    }
    if u.ratio(1, 4)? {
        c.push(("template_refresh".into(), duration(u)?));
    }
    if u.ratio(1, 4)? {
        c.push(("mtu".into(), integer(u)?));
    }
    if u.ratio(1, 5)? {
        c.push(("buffer_bytes".into(), integer(u)?));
    }
    if u.ratio(1, 5)? {
        c.push(("messages_per_second".into(), integer(u)?));
    }
    if u.ratio(1, 6)? {
        c.push(("engine_type".into(), integer(u)?));
        c.push(("engine_id".into(), integer(u)?));
    }
    Ok(c)
}

/// A section's keys and values, in order.
type Entries = Vec<(String, String)>;

/// Paths a metadata source might be pointed at: absent, a directory, a
/// device that never ends, a FIFO's kind, empty, not UTF-8 friendly.
const PATHS: &[&str] =
    &["/nonexistent", "/", "/dev/zero", "/dev/stdin", "/proc/self/mem", "", "/etc/hostname", "a\u{0}b"];

/// `[metadata]` and `[metadata.kubernetes]` as anyone writes them: wrong
/// types, values past their limits, paths that are not files, selectors
/// with control characters or of 5,000 bytes.
fn metadata(u: &mut Unstructured<'_>) -> Result<(Entries, Entries)> {
    let mut m = Vec::new();
    for key in ["file", "cri"] {
        if u.ratio(1, 4)? {
            m.push((key.to_owned(), quoted(pick(u, PATHS)?)));
        }
    }
    for key in ["cri_interval", "grace"] {
        if u.ratio(1, 4)? {
            m.push((key.to_owned(), duration(u)?));
        }
    }
    if u.ratio(1, 5)? {
        m.push(("pod_metrics".into(), pick(u, &["true", "false", "\"yes\"", "1"])?.to_owned()));
    }
    if u.ratio(1, 4)? {
        m.push(("pod_metrics_max".into(), integer(u)?));
    }
    if u.ratio(1, 6)? {
        m.push(("node".into(), quoted(pick(u, &["node-1", "", "a\nb"])?)));
    }
    if u.ratio(1, 20)? {
        m.push(("kubernetes".into(), pick(u, &["true", "\"yes\"", "{}"])?.to_owned()));
    }
    let mut k = Vec::new();
    if u.ratio(1, 4)? {
        if u.ratio(1, 2)? {
            k.push(("kubeconfig".to_owned(), quoted(pick(u, PATHS)?)));
        }
        for key in ["field_selector", "label_selector"] {
            if u.ratio(1, 3)? {
                let long = "x".repeat(5000);
                let value = pick(u, &["spec.nodeName=node-1", "app=web", "", "a\nb", "\u{7}", "=,=!", long.as_str()])?;
                k.push((key.to_owned(), quoted(value)));
            }
        }
        if u.ratio(1, 3)? {
            k.push(("nodes".into(), pick(u, &["true", "false", "0"])?.to_owned()));
        }
        if u.ratio(1, 10)? {
            k.push(("watch_everything".into(), "true".into()));
        }
    }
    Ok((m, k))
}

/// Values a careful operator writes, key by key.
mod sane {
    use arbitrary::{Result, Unstructured};

    use super::Entries;

    pub fn names(u: &mut Unstructured<'_>) -> Result<String> {
        let include = *u.choose(&["auto", "v0", "eth*", "*", "flannel.1"])?;
        let exclude = if u.ratio(1, 3)? { ", \"!veth*\"" } else { "" };
        Ok(format!("[\"{include}\"{exclude}]"))
    }

    /// VXLAN ports: one of below 60000 and a usual one.
    pub fn ports(u: &mut Unstructured<'_>) -> Result<String> {
        Ok(format!("[{}, {}]", u.int_in_range(1..=59999u16)?, *u.choose(&[4789, 8472])?))
    }

    /// Geneve ports: from 60000 up, so never a VXLAN port too, or 6081.
    pub fn geneve_ports(u: &mut Unstructured<'_>) -> Result<String> {
        Ok(format!("[{}]", u.int_in_range(60000..=65535u16)?))
    }

    /// A `[vni_meaning]` entry: a port or a device, and a meaning.
    pub fn vni_meaning(u: &mut Unstructured<'_>) -> Result<(String, String)> {
        let key = *u.choose(&["8472", "4789", "cilium_vxlan", "flannel.1"])?;
        let value = *u.choose(&["segment", "cilium_identity"])?;
        Ok((format!("{key:?}"), format!("{value:?}")))
    }

    pub fn timeout(u: &mut Unstructured<'_>) -> Result<String> {
        Ok(format!("{:?}", *u.choose(&["5s", "15s", "1m", "2h", "7days"])?))
    }

    /// `[metadata]` and `[metadata.kubernetes]`: sources that are absent
    /// here (the daemon retries them in the background), valid values.
    pub fn metadata(u: &mut Unstructured<'_>) -> Result<(Entries, Entries)> {
        let mut m = Vec::new();
        if u.ratio(1, 3)? {
            m.push(("file".to_owned(), "\"/nonexistent/vxflow-names.toml\"".to_owned()));
        }
        if u.ratio(1, 3)? {
            m.push(("cri".into(), "\"/nonexistent/containerd.sock\"".into()));
            m.push(("cri_interval".into(), format!("{:?}", *u.choose(&["100ms", "2s", "10m"])?)));
        }
        if u.ratio(1, 3)? {
            m.push(("grace".into(), format!("{:?}", *u.choose(&["0s", "2m", "7days"])?)));
        }
        if u.ratio(1, 4)? {
            m.push(("pod_metrics".into(), "true".into()));
            m.push(("pod_metrics_max".into(), int(u, 1, 100_000)?));
        }
        if u.ratio(1, 4)? {
            m.push(("node".into(), "\"node-1\"".into()));
        }
        let mut k = Vec::new();
        if u.ratio(1, 3)? {
            k.push(("kubeconfig".to_owned(), "\"/nonexistent/kubeconfig\"".to_owned()));
            if u.ratio(1, 2)? {
                k.push(("field_selector".into(), "\"spec.nodeName=node-1\"".into()));
            }
            if u.ratio(1, 2)? {
                k.push(("label_selector".into(), "\"app in (web, db)\"".into()));
            }
            if u.ratio(1, 2)? {
                k.push(("nodes".into(), (*u.choose(&["true", "false"])?).to_owned()));
            }
        }
        Ok((m, k))
    }

    pub fn poll(u: &mut Unstructured<'_>) -> Result<String> {
        Ok(format!("{:?}", *u.choose(&["10ms", "100ms", "500ms", "1s"])?))
    }

    pub fn int(u: &mut Unstructured<'_>, min: u64, max: u64) -> Result<String> {
        Ok(u.int_in_range(min..=max)?.to_string())
    }

    pub fn collector(u: &mut Unstructured<'_>) -> Result<Vec<(String, String)>> {
        let address = *u.choose(&["127.0.0.1:4739", "[::1]:4739", "10.9.0.2:2055", "localhost:9995"])?;
        let protocol = *u.choose(&["ipfix", "netflow9", "netflow5"])?;
        let mut c = vec![("address".to_owned(), format!("{address:?}")), ("protocol".into(), format!("{protocol:?}"))];
        if protocol == "ipfix" && u.ratio(1, 3)? {
            c.push(("transport".into(), "\"tcp\"".into()));
            c.push(("buffer_bytes".into(), int(u, 65_536, 1 << 20)?));
        }
        if (protocol != "ipfix" || c.len() == 2) && u.ratio(1, 4)? {
            c.push(("messages_per_second".into(), int(u, 1, 10_000_000)?));
        }
        if protocol == "netflow5" && u.ratio(1, 2)? {
            c.push(("engine_type".into(), int(u, 0, 255)?));
            c.push(("engine_id".into(), int(u, 0, 255)?));
        }
        if u.ratio(1, 3)? {
            c.push(("mtu".into(), int(u, 512, 9000)?));
        }
        if u.ratio(1, 3)? {
            c.push(("template_refresh".into(), format!("{:?}", *u.choose(&["10s", "1m", "24h"])?)));
        }
        Ok(c)
    }
}

impl GenConfig {
    fn sane(u: &mut Unstructured<'_>) -> Result<Self> {
        let mut top = vec![("interfaces".to_owned(), sane::names(u)?)];
        if u.ratio(1, 3)? {
            top.push(("vxlan_ports".into(), sane::ports(u)?));
        }
        if u.ratio(1, 3)? {
            top.push(("geneve_ports".into(), sane::geneve_ports(u)?));
        }
        for key in ["ipip_tunnels", "gre_tunnels"] {
            if u.ratio(1, 4)? {
                top.push((key.into(), (*u.choose(&["true", "false"])?).to_owned()));
            }
        }
        let mut vni_meaning = Vec::new();
        if u.ratio(1, 4)? {
            vni_meaning.push(sane::vni_meaning(u)?);
        }
        if u.ratio(1, 3)? {
            top.push(("tunnel_interfaces".into(), sane::names(u)?));
        }
        if u.ratio(1, 4)? {
            top.push(("per_interface_records".into(), (*u.choose(&["true", "false"])?).to_owned()));
        }
        let mut cache = Vec::new();
        for key in ["active_timeout", "inactive_timeout", "tcp_end_timeout"] {
            if u.ratio(1, 2)? {
                cache.push((key.to_owned(), sane::timeout(u)?));
            }
        }
        if u.ratio(1, 3)? {
            cache.push(("max_flows".into(), sane::int(u, 1, 10_000_000)?));
        }
        let mut kernel = Vec::new();
        if u.ratio(1, 2)? {
            kernel.push(("poll_interval".to_owned(), sane::poll(u)?));
        }
        if u.ratio(1, 3)? {
            kernel.push(("flow_map_entries".into(), sane::int(u, 1, 65_536)?));
        }
        if u.ratio(1, 3)? {
            let ring = 4096u64 << u.int_in_range(0..=8u32)?;
            kernel.push(("fallback_ring_bytes".into(), ring.to_string()));
        }
        if u.ratio(1, 3)? {
            kernel.push(("attach_mode".into(), format!("{:?}", *u.choose(&["auto", "tcx", "clsact"])?)));
        }
        if u.ratio(1, 4)? {
            kernel.push(("sampling".into(), sane::int(u, 1, 16_383)?));
        }
        let mut export = Vec::new();
        if u.ratio(1, 3)? {
            export.push(("observation_domain_id".to_owned(), sane::int(u, 0, u64::from(u32::MAX))?));
        }
        let mut metrics = Vec::new();
        if u.ratio(1, 3)? {
            metrics.push(("listen".to_owned(), format!("{:?}", *u.choose(&["127.0.0.1:9739", "0.0.0.0:9740"])?)));
        }
        let mut collectors = Vec::new();
        for _ in 0..u.int_in_range(0..=3)? {
            collectors.push(sane::collector(u)?);
        }
        let (metadata, kubernetes) = sane::metadata(u)?;
        Ok(Self {
            top,
            sections: vec![
                ("cache", cache),
                ("kernel", kernel),
                ("export", export),
                ("metrics", metrics),
                ("vni_meaning", vni_meaning),
                ("metadata", metadata),
                ("metadata.kubernetes", kubernetes),
            ],
            collectors,
        })
    }
}

impl<'a> Arbitrary<'a> for GenConfig {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        if u.arbitrary::<bool>()? {
            return Self::sane(u);
        }
        let mut top = Vec::new();
        if u.ratio(9, 10)? {
            top.push(("interfaces".to_owned(), names(u)?));
        }
        if u.ratio(1, 3)? {
            top.push(("vxlan_ports".into(), ports(u)?));
        }
        if u.ratio(1, 4)? {
            top.push(("geneve_ports".into(), ports(u)?));
        }
        for key in ["ipip_tunnels", "gre_tunnels"] {
            if u.ratio(1, 5)? {
                top.push((key.into(), pick(u, &["true", "false", "\"no\"", "0"])?.to_owned()));
            }
        }
        if u.ratio(1, 3)? {
            top.push(("tunnel_interfaces".into(), names(u)?));
        }
        if u.ratio(1, 4)? {
            top.push(("per_interface_records".into(), pick(u, &["true", "false", "\"yes\""])?.to_owned()));
        }
        let mut vni_meaning = Vec::new();
        if u.ratio(1, 5)? {
            // Keys that are ports, devices, neither, or out of range.
            let key = pick(u, &["8472", "0", "65536", "cilium_vxlan", "bad name", "", "a-name-far-too-long"])?;
            let value = pick(u, &["\"segment\"", "\"cilium_identity\"", "\"vni\"", "1"])?;
            vni_meaning.push((quoted(key), value.to_owned()));
        }
        if u.ratio(1, 20)? {
            top.push(("no_such_key".into(), "1".into()));
        }
        let mut cache = Vec::new();
        for key in ["active_timeout", "inactive_timeout", "tcp_end_timeout"] {
            if u.ratio(1, 3)? {
                cache.push((key.to_owned(), duration(u)?));
            }
        }
        if u.ratio(1, 4)? {
            cache.push(("max_flows".into(), integer(u)?));
        }
        let mut kernel = Vec::new();
        if u.ratio(1, 3)? {
            kernel.push(("poll_interval".to_owned(), duration(u)?));
        }
        if u.ratio(1, 4)? {
            kernel.push(("flow_map_entries".into(), integer(u)?));
        }
        if u.ratio(1, 5)? {
            kernel.push(("fallback_ring_bytes".into(), integer(u)?));
        }
        if u.ratio(1, 4)? {
            kernel.push(("attach_mode".into(), quoted(pick(u, &["auto", "tcx", "clsact", "xdp"])?)));
        }
        if u.ratio(1, 5)? {
            kernel.push(("sampling".into(), integer(u)?));
        }
        let mut export = Vec::new();
        if u.ratio(1, 5)? {
            export.push(("observation_domain_id".to_owned(), integer(u)?));
        }
        let mut metrics = Vec::new();
        if u.ratio(1, 4)? {
            metrics.push(("listen".to_owned(), quoted(pick(u, LISTEN)?)));
        }
        if u.ratio(1, 6)? {
            metrics.push(("enabled".into(), pick(u, &["true", "false"])?.to_owned()));
        }
        let mut collectors = Vec::new();
        let n = if u.ratio(1, 30)? { 33 } else { u.int_in_range(0..=3)? };
        for _ in 0..n {
            collectors.push(collector(u)?);
        }
        let (metadata, kubernetes) = metadata(u)?;
        Ok(Self {
            top,
            sections: vec![
                ("cache", cache),
                ("kernel", kernel),
                ("export", export),
                ("metrics", metrics),
                ("vni_meaning", vni_meaning),
                ("metadata", metadata),
                ("metadata.kubernetes", kubernetes),
            ],
            collectors,
        })
    }
}

impl GenConfig {
    /// The file's text.
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (k, v) in &self.top {
            let _ = writeln!(out, "{k} = {v}");
        }
        for (name, entries) in &self.sections {
            if entries.is_empty() {
                continue;
            }
            let _ = writeln!(out, "[{name}]");
            for (k, v) in entries {
                let _ = writeln!(out, "{k} = {v}");
            }
        }
        for c in &self.collectors {
            out.push_str("[[collector]]\n");
            for (k, v) in c {
                let _ = writeln!(out, "{k} = {v}");
            }
        }
        out
    }
}
