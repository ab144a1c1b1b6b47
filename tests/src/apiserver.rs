//! A stand-in for the Kubernetes API server, for the `kubernetes` source's
//! tests (no API server can run here): plain HTTP/1.1 on loopback, serving
//! what the test queued, in order, for each resource: list answers (a JSON
//! body, or an error status) and watch streams (chunked, one JSON event a
//! line, fed by the test while the client reads, ended when it says). It
//! records every request, so a test can check what the client asked for
//! (selectors, the resource version a watch resumed from, a relist after
//! `410 Gone`).
//!
//! A request with nothing queued for it waits for the test to queue one,
//! for at most 30 s.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    io::{BufRead as _, BufReader, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    path::Path,
    sync::{
        Arc, Condvar, Mutex,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    time::{Duration, Instant},
};

/// One request the server answered (or tried to).
#[derive(Clone, Debug)]
pub struct Request {
    /// `pods`, `nodes`: the path's last segment.
    pub resource: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub headers: BTreeMap<String, String>,
}

impl Request {
    #[must_use]
    pub fn is_watch(&self) -> bool {
        self.query.get("watch").is_some_and(|w| w == "true" || w == "1")
    }
}

enum Reply {
    Body { status: u16, body: String },
    Watch(mpsc::Receiver<Option<String>>),
}

#[derive(Default)]
struct State {
    lists: HashMap<String, VecDeque<Reply>>,
    watches: HashMap<String, VecDeque<Reply>>,
    requests: Vec<Request>,
}

/// The feeding end of one queued watch stream.
pub struct Watch(mpsc::Sender<Option<String>>);

impl Watch {
    /// Sends one event line (a watch event object).
    pub fn send(&self, event: &str) {
        let line: String = event.lines().map(str::trim).collect();
        let _ = self.0.send(Some(line));
    }

    /// Sends each line of a `.jsonl` text, skipping blank lines.
    pub fn send_lines(&self, text: &str) {
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            self.send(line);
        }
    }

    /// Ends the stream: the response completes, as a server's watch timeout does.
    pub fn end(self) {
        let _ = self.0.send(None);
    }
}

/// The server; stops when dropped.
pub struct ApiServer {
    addr: SocketAddr,
    state: Arc<(Mutex<State>, Condvar)>,
    stop: Arc<AtomicBool>,
}

impl ApiServer {
    /// Listens on a free loopback port.
    #[must_use]
    pub fn start() -> Self {
        Self::serve(TcpListener::bind("127.0.0.1:0").unwrap())
    }

    /// Listens on a free port of `ns`'s loopback, for a vxflow running there.
    #[must_use]
    pub fn start_in(ns: &crate::netns::Netns) -> Self {
        let name = ns.name().to_owned();
        // A socket stays in the namespace it was made in; the thread that
        // made it may go.
        let listener = std::thread::spawn(move || {
            crate::netns::enter(&name);
            TcpListener::bind("127.0.0.1:0").unwrap()
        })
        .join()
        .unwrap();
        Self::serve(listener)
    }

    fn serve(listener: TcpListener) -> Self {
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new((Mutex::new(State::default()), Condvar::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (state.clone(), stop.clone());
        std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (s, st) = (s.clone(), st.clone());
                        std::thread::spawn(move || serve(conn, &s, &st));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self { addr, state, stop }
    }

    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Writes a kubeconfig for this server, with a bearer token, to `path`.
    pub fn write_kubeconfig(&self, path: &Path, token: &str) {
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\ncontexts:\n- name: fake\n  \
             context:\n    cluster: fake\n    user: fake\ncurrent-context: fake\nusers:\n- name: fake\n  user:\n    token: {token}\n",
            self.url()
        );
        std::fs::write(path, text).unwrap();
    }

    fn queue(&self, watch: bool, resource: &str, reply: Reply) {
        let (lock, cv) = &*self.state;
        let mut s = lock.lock().unwrap();
        let queues = if watch { &mut s.watches } else { &mut s.lists };
        queues.entry(resource.to_owned()).or_default().push_back(reply);
        cv.notify_all();
    }

    /// Queues a list answer for `resource` (a `PodList`, `NodeList` body).
    pub fn list(&self, resource: &str, body: &str) {
        self.queue(false, resource, Reply::Body { status: 200, body: body.to_owned() });
    }

    /// Queues an error answer (a `Status` body) for the next list of `resource`.
    pub fn list_fails(&self, resource: &str, status: u16, reason: &str) {
        let body = status_body(status, reason);
        self.queue(false, resource, Reply::Body { status, body });
    }

    /// Queues a watch stream for `resource`; the test feeds it.
    #[must_use]
    pub fn watch(&self, resource: &str) -> Watch {
        let (tx, rx) = mpsc::channel();
        self.queue(true, resource, Reply::Watch(rx));
        Watch(tx)
    }

    /// Every request so far.
    #[must_use]
    pub fn requests(&self) -> Vec<Request> {
        self.state.0.lock().unwrap().requests.clone()
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.state.1.notify_all();
    }
}

/// A `Status` object as the API server sends with an error.
#[must_use]
pub fn status_body(code: u16, reason: &str) -> String {
    serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("{reason} (from the test's API server)"), "reason": reason, "code": code
    })
    .to_string()
}

/// A watch `ERROR` event: `410 Gone` when the resource version expired.
#[must_use]
pub fn watch_error(code: u16, reason: &str, message: &str) -> String {
    serde_json::json!({
        "type": "ERROR",
        "object": {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                   "message": message, "reason": reason, "code": code}
    })
    .to_string()
}

fn serve(conn: TcpStream, state: &Arc<(Mutex<State>, Condvar)>, stop: &AtomicBool) {
    conn.set_nonblocking(false).unwrap();
    conn.set_read_timeout(Some(Duration::from_mins(1))).unwrap();
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut out = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let target = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
        let mut headers = BTreeMap::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
            }
        }
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let query: BTreeMap<String, String> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (decode(k), decode(v))
            })
            .collect();
        let request = Request {
            resource: path.rsplit('/').next().unwrap_or_default().to_owned(),
            path: path.to_owned(),
            query,
            headers,
        };
        let reply = next_reply(state, stop, &request);
        let ok = match reply {
            None => respond(&mut out, 500, &status_body(500, "NothingQueued")),
            Some(Reply::Body { status, body }) => respond(&mut out, status, &body),
            Some(Reply::Watch(events)) => stream(&mut out, &events, stop),
        };
        if !ok {
            return;
        }
    }
}

fn next_reply(state: &Arc<(Mutex<State>, Condvar)>, stop: &AtomicBool, request: &Request) -> Option<Reply> {
    let (lock, cv) = &**state;
    let mut s = lock.lock().unwrap();
    s.requests.push(request.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let queues = if request.is_watch() { &mut s.watches } else { &mut s.lists };
        if let Some(reply) = queues.get_mut(&request.resource).and_then(VecDeque::pop_front) {
            return Some(reply);
        }
        if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
            return None;
        }
        s = cv.wait_timeout(s, Duration::from_millis(50)).unwrap().0;
    }
}

fn respond(out: &mut TcpStream, status: u16, body: &str) -> bool {
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        if status == 200 { "OK" } else { "Error" },
        body.len()
    );
    out.write_all(head.as_bytes()).and_then(|()| out.write_all(body.as_bytes())).is_ok()
}

/// A chunked watch response: each event a chunk, until the test ends it
/// (or the client goes, or the server stops).
fn stream(out: &mut TcpStream, events: &mpsc::Receiver<Option<String>>, stop: &AtomicBool) -> bool {
    let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    if out.write_all(head.as_bytes()).is_err() {
        return false;
    }
    loop {
        match events.recv_timeout(Duration::from_millis(50)) {
            Ok(Some(line)) => {
                let data = format!("{line}\n");
                if out.write_all(format!("{:x}\r\n{data}\r\n", data.len()).as_bytes()).is_err() {
                    return false;
                }
            }
            Ok(None) | Err(mpsc::RecvTimeoutError::Disconnected) => return out.write_all(b"0\r\n\r\n").is_ok(),
            Err(mpsc::RecvTimeoutError::Timeout) if stop.load(Ordering::Relaxed) => return false,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
    }
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                if let Some(b) = hex {
                    out.push(b);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The recording replayed as if it happened now: every RFC 3339 time in
/// `text` (one JSON document, or JSON lines) (`2026-11-30T04:00:10Z`) moved by `by_secs`, so the times a
/// recorded pod was ready or deleted fall inside this test's run.
#[must_use]
pub fn shift_times(text: &str, by_secs: i64) -> String {
    fn walk(v: &mut serde_json::Value, by: i64) {
        match v {
            serde_json::Value::String(s) => {
                if let Some(t) = parse_time(s) {
                    *s = format_time(t + by);
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(|v| walk(v, by)),
            serde_json::Value::Object(o) => o.values_mut().for_each(|v| walk(v, by)),
            _ => {}
        }
    }
    if let Ok(mut whole) = serde_json::from_str::<serde_json::Value>(text) {
        walk(&mut whole, by_secs);
        return whole.to_string();
    }
    text.lines()
        .map(|line| {
            if line.trim().is_empty() {
                return String::new();
            }
            let mut v: serde_json::Value = serde_json::from_str(line).unwrap_or(serde_json::Value::Null);
            if v.is_null() {
                return line.to_owned();
            }
            walk(&mut v, by_secs);
            v.to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Seconds since the epoch of `YYYY-MM-DDTHH:MM:SSZ`.
#[must_use]
#[expect(clippy::many_single_char_names, reason = "the civil-date algorithm's own names")]
pub fn parse_time(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' || b[19] != b'Z'
    {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (hh, mm, ss) = (n(11..13)?, n(14..16)?, n(17..19)?);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// `YYYY-MM-DDTHH:MM:SSZ` of seconds since the epoch.
#[must_use]
#[expect(clippy::many_single_char_names, reason = "the civil-date algorithm's own names")]
pub fn format_time(t: i64) -> String {
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs % 3600 / 60, secs % 60)
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_round_trip() {
        for s in ["1970-01-01T00:00:00Z", "2026-11-30T04:00:10Z", "2000-02-29T23:59:59Z", "2100-03-01T00:00:00Z"] {
            let t = super::parse_time(s).unwrap();
            assert_eq!(super::format_time(t), s);
        }
        assert_eq!(super::parse_time("2026-11-30T04:00:10Z"), Some(1_796_011_210));
        assert_eq!(super::parse_time("2026-11-30T04:00:10.5Z"), None);
    }
}
