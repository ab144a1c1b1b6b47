//! Operator control, like softflowctl: `vxflow ctl stats|flows|expire-all`
//! over a unix socket only root and the service's own user may use. One JSON
//! request line, one JSON response line, then the connection closes.

pub mod client;
pub mod print;
pub mod server;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::snapshot::Snapshot;

/// Where the control socket is unless configured otherwise (systemd's
/// `RuntimeDirectory=vxflow` makes the directory).
pub const DEFAULT_SOCKET: &str = "/run/vxflow/vxflow.sock";

/// What a client asks.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "command", rename_all = "kebab-case")]
pub enum Request {
    /// Everything the daemon counts.
    Stats,
    /// The cached flows with the most bytes since their last record.
    Flows { limit: usize },
    /// End every cached flow now and export it (flowEndReason 4).
    ExpireAll,
    /// The names the metadata sources gave addresses, and when, and the
    /// networks they named.
    Pods,
}

/// What the daemon answers.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    Stats(Box<Snapshot>),
    /// Flows as JSON objects, the fields of the JSON-lines output without
    /// `end_reason`; counts are since each flow's previous record.
    Flows(Vec<serde_json::Value>),
    /// How many records `expire-all` exported.
    Expired {
        records: usize,
    },
    Pods(Names),
    Error(String),
}

/// What `vxflow ctl pods` lists.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Names {
    /// Each address with each owner it had, by address then time.
    pub addresses: Vec<PodEntry>,
    /// Named networks (nodes' pod CIDRs, the file's networks): what an
    /// address no owner holds resolves to. They hold no history.
    pub networks: Vec<NetworkEntry>,
}

/// One address's owner and its hold, as `vxflow ctl pods` lists it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PodEntry {
    pub ip: std::net::IpAddr,
    /// `pod`, `node` or `host`.
    pub kind: String,
    pub name: String,
    pub namespace: Option<String>,
    pub node: Option<String>,
    pub workload: Option<String>,
    /// `file`, `cri` or `kubernetes`: the source that named it.
    pub source: String,
    /// RFC 3339, UTC.
    pub since: String,
    /// When it ended; `None` while it holds the address.
    pub until: Option<String>,
}

/// One named network, as `vxflow ctl pods` lists it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct NetworkEntry {
    pub network: ipnet::IpNet,
    /// `pod`, `node` or `host`.
    pub kind: String,
    pub name: String,
    pub namespace: Option<String>,
    pub node: Option<String>,
    /// `file` or `kubernetes`: the source that named it.
    pub source: String,
}

/// A request on its way to the drain loop, with where the answer goes.
pub type Query = (Request, oneshot::Sender<Response>);

/// The sending end the control socket and the metrics endpoint share.
pub type QuerySender = mpsc::Sender<Query>;

/// Asks the drain loop and waits for its answer.
///
/// # Errors
/// When the loop has stopped, or does not answer within `timeout`.
pub async fn ask(
    queries: &QuerySender,
    request: Request,
    timeout: std::time::Duration,
) -> Result<Response, &'static str> {
    let (reply, answer) = oneshot::channel();
    queries.send((request, reply)).await.map_err(|_| "vxflow is shutting down")?;
    match tokio::time::timeout(timeout, answer).await {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(_)) => Err("vxflow is shutting down"),
        Err(_) => Err("the drain loop did not answer in time"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_answers_round_trip_as_json_lines() {
        for r in [Request::Stats, Request::Flows { limit: 7 }, Request::ExpireAll, Request::Pods] {
            let line = serde_json::to_string(&r).unwrap();
            assert!(!line.contains('\n'));
            assert_eq!(serde_json::from_str::<Request>(&line).unwrap(), r);
        }
        assert_eq!(serde_json::to_string(&Request::ExpireAll).unwrap(), r#"{"command":"expire-all"}"#);
        let answer = Response::Stats(Box::default());
        let line = serde_json::to_string(&answer).unwrap();
        assert_eq!(serde_json::from_str::<Response>(&line).unwrap(), answer);
        assert!(serde_json::from_str::<Request>(r#"{"command":"reboot"}"#).is_err());
    }

    /// `ctl pods` lists addresses with their holds, then the named networks.
    #[test]
    fn names_list_addresses_then_networks() {
        let names = Response::Pods(Names {
            addresses: vec![PodEntry {
                ip: "10.244.1.5".parse().unwrap(),
                kind: "pod".into(),
                name: "db-0".into(),
                namespace: Some("shop".into()),
                node: Some("node-2".into()),
                workload: Some("StatefulSet/db".into()),
                source: "kubernetes".into(),
                since: "2026-11-30T07:00:00.000Z".into(),
                until: None,
            }],
            networks: vec![NetworkEntry {
                network: "10.244.1.0/24".parse().unwrap(),
                kind: "node".into(),
                name: "node-2".into(),
                namespace: None,
                node: None,
                source: "kubernetes".into(),
            }],
        });
        let line = serde_json::to_string(&names).unwrap();
        assert!(line.contains(r#""network":"10.244.1.0/24""#), "{line}");
        assert_eq!(serde_json::from_str::<Response>(&line).unwrap(), names);
        let text = print::text(&names);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[0].starts_with("ADDRESS ") && lines[0].ends_with("SOURCE     HELD"), "{text}");
        assert!(lines[1].starts_with("10.244.1.5 ") && lines[1].contains("db-0") && lines[1].ends_with(".. now"));
        assert!(lines[2].starts_with("NETWORK ") && lines[2].ends_with("SOURCE"), "{text}");
        assert!(
            lines[3].starts_with("10.244.1.0/24 ") && lines[3].contains("node-2") && lines[3].ends_with("kubernetes")
        );
        // The columns line up: SOURCE starts where each row's source does.
        let at = lines[0].find("SOURCE").unwrap();
        assert_eq!((lines[1].find("kubernetes"), lines[3].find("kubernetes")), (Some(at), Some(at)), "{text}");
        let empty = print::text(&Response::Pods(Names::default()));
        assert!(empty.starts_with("no names"), "{empty}");
    }
}
