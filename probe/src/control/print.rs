//! `vxflow ctl`'s text output.

use std::fmt::Write as _;

use super::Response;
use crate::snapshot::Snapshot;

/// The answer as text for a terminal. Control characters (an interface
/// name may hold an escape sequence) are shown escaped, never sent to the
/// terminal.
#[must_use]
pub fn text(response: &Response) -> String {
    escape_controls(&raw_text(response))
}

fn escape_controls(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let escape = c.is_control() && c != '\n';
            let (escaped, plain) = if escape { (Some(c.escape_default()), None) } else { (None, Some(c)) };
            escaped.into_iter().flatten().chain(plain)
        })
        .collect()
}

fn raw_text(response: &Response) -> String {
    match response {
        Response::Stats(s) => stats(s),
        Response::Flows(flows) if flows.is_empty() => "no flows in the cache\n".into(),
        Response::Flows(flows) => flows.iter().map(flow_line).collect(),
        Response::Expired { records } => format!("expired every cached flow: {records} records exported\n"),
        Response::Pods(names) if names.addresses.is_empty() && names.networks.is_empty() => {
            "no names: no metadata source, or none named anything yet\n".into()
        }
        Response::Pods(names) => pods_text(names),
        Response::Error(why) => format!("error: {why}\n"),
    }
}

/// A table of the addresses, one line an address and owner: the owner,
/// its namespace and node, the source, and since and until when it held
/// the address; then a table of the named networks, which hold no history.
fn pods_text(names: &crate::control::Names) -> String {
    let mut o = String::new();
    let or = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let mut row = |cells: [&str; 7]| {
        let [first, kind, name, namespace, node, source, held] = cells;
        let line = format!("{first:<39} {kind:<5} {name:<40} {namespace:<20} {node:<20} {source:<10} {held}");
        let _ = writeln!(o, "{}", line.trim_end());
    };
    if !names.addresses.is_empty() {
        row(["ADDRESS", "KIND", "NAME", "NAMESPACE", "NODE", "SOURCE", "HELD"]);
    }
    for p in &names.addresses {
        let held = format!("{} .. {}", p.since, p.until.as_deref().unwrap_or("now"));
        let (ip, namespace, node) = (p.ip.to_string(), or(&p.namespace), or(&p.node));
        row([&ip, &p.kind, &p.name, &namespace, &node, &p.source, &held]);
    }
    if !names.networks.is_empty() {
        row(["NETWORK", "KIND", "NAME", "NAMESPACE", "NODE", "SOURCE", ""]);
    }
    for n in &names.networks {
        let (net, namespace, node) = (n.network.to_string(), or(&n.namespace), or(&n.node));
        row([&net, &n.kind, &n.name, &namespace, &node, &n.source, ""]);
    }
    o
}

#[expect(clippy::many_single_char_names, reason = "one short name per section keeps the lines readable")]
fn stats(s: &Snapshot) -> String {
    let mut o = String::new();
    let up = humantime::format_duration(std::time::Duration::from_secs_f64(s.uptime_seconds.floor()));
    let _ = writeln!(o, "vxflow {}, up {up}", s.version);
    let _ = writeln!(o, "interfaces attached: {}", s.attached.join(", "));
    let f = &s.flows;
    let _ = writeln!(o, "flows: {} active (max {}), {} created", f.active, f.max, f.created);
    let records: Vec<String> = f.records.iter().map(|(r, n)| format!("{r} {n}")).collect();
    let _ = writeln!(o, "records exported: {}", records.join(", "));
    let _ = writeln!(o, "exported: {} packets, {} bytes", f.exported_packets, f.exported_bytes);
    if f.duplicate_packets > 0 {
        let _ = writeln!(o, "not counted twice (seen on several interfaces): {} packets", f.duplicate_packets);
    }
    let list = |ports: &[u16]| ports.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
    let on = |b: bool| if b { "on" } else { "off" };
    let _ = writeln!(
        o,
        "tunnels decoded: VXLAN ports {}; Geneve ports {}; IP in IP {}; GRE {}",
        list(&s.vxlan_ports),
        list(&s.geneve_ports),
        on(s.ipip_tunnels),
        on(s.gre_tunnels)
    );
    let _ = writeln!(o, "tunnels parsed on: {}", s.tunnel_interfaces.join(", "));
    for d in &s.tunnel_devices {
        let id = d.id.map_or_else(|| "none".to_owned(), |id| id.to_string());
        let _ = writeln!(o, "{} device {}: id {id}, port {}", d.tunnel, d.device, d.port);
    }
    let datapath: Vec<String> = s.datapath.iter().filter(|(_, v)| **v > 0).map(|(k, v)| format!("{k} {v}")).collect();
    let _ = writeln!(o, "datapath (non-zero): {}", datapath.join(", "));
    if !s.interfaces.is_empty() {
        let _ = writeln!(o, "per interface (IP packets, wire IP bytes):");
        for i in &s.interfaces {
            let _ =
                writeln!(o, "  {:<16} {:<8} {:>14} packets {:>18} bytes", i.interface, i.direction, i.packets, i.bytes);
        }
    }
    if !s.tunnels.is_empty() {
        let _ = writeln!(o, "per tunnel (inner packets and bytes):");
        for t in &s.tunnels {
            let id = t.id.map_or_else(|| "-".to_owned(), |id| id.to_string());
            let _ = writeln!(
                o,
                "  {:<7} id {:<10} {:>14} packets {:>18} bytes {:>8} flows",
                t.tunnel, id, t.packets, t.bytes, t.active_flows
            );
        }
    }
    for c in &s.collectors {
        let _ = writeln!(
            o,
            "collector {}: {} records sent, {} failed, {} not carried, {} messages, {} send errors",
            c.collector, c.records_sent, c.records_failed, c.records_not_carried, c.messages_sent, c.send_errors
        );
    }
    let k = &s.kernel;
    let _ = writeln!(
        o,
        "kernel: flow map {} of {} entries used in the last poll interval, fallback ring {} bytes, counting 1 in {} packets",
        k.flow_map_used,
        k.flow_map_capacity,
        k.fallback_ring_bytes,
        k.sampling.max(1)
    );
    let d = &s.drains;
    let _ = writeln!(
        o,
        "drains: {} ({} early, {} failed), last took {:.3} ms, {:.3} s in all",
        d.count,
        d.early,
        d.errors,
        d.last_seconds * 1e3,
        d.total_seconds
    );
    o
}

/// One cached flow on one line.
fn flow_line(v: &serde_json::Value) -> String {
    let s = |k: &str| v.get(k).map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned));
    let end = |addr: &str, port: &str| match s(port) {
        Some(p) if s(addr).is_some_and(|a| a.contains(':')) => format!("[{}]:{p}", s(addr).unwrap_or_default()),
        Some(p) => format!("{}:{p}", s(addr).unwrap_or_default()),
        None => s(addr).unwrap_or_default(),
    };
    let mut line = format!(
        "{} {} {} {} -> {}",
        s("interface").unwrap_or_default(),
        s("direction").unwrap_or_default(),
        s("protocol").unwrap_or_default(),
        end("src_addr", "src_port"),
        end("dst_addr", "dst_port"),
    );
    if let Some(vni) = s("vni") {
        let _ = write!(
            line,
            " vni {vni} via {} -> {}",
            end("outer_src_addr", "outer_src_port"),
            end("outer_dst_addr", "outer_dst_port")
        );
    }
    let _ = writeln!(line, " {} packets {} bytes", s("packets").unwrap_or_default(), s("bytes").unwrap_or_default());
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An interface named with an escape sequence (`ip link set dev x name
    /// $'e\e[2J'`) reaches the terminal escaped.
    #[test]
    fn control_characters_are_escaped() {
        let snapshot = Snapshot { attached: vec!["e\u{1b}[2J".into(), "bell\u{7}".into()], ..Snapshot::default() };
        let out = text(&Response::Stats(Box::new(snapshot)));
        assert!(!out.chars().any(|c| c.is_control() && c != '\n'), "{out:?}");
        assert!(out.contains("e\\u{1b}[2J, bell\\u{7}"), "{out}");
    }
}
