//! The HTTP side of the metrics endpoint (axum, on the daemon's runtime).

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Router,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};

use super::render;
use crate::control::{QuerySender, Request, Response as Answer, ask};

/// How long a scrape waits for the drain loop.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one connection may live, keep-alive included: longer than a
/// scrape can take, short enough that idle connections cannot pile up.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(30);
/// Connections served at once; more are closed at once. Prometheus needs
/// one per scraper.
pub const MAX_CONNECTIONS: usize = 64;

#[derive(Debug, thiserror::Error)]
#[error("metrics endpoint {addr}: cannot listen; set metrics.listen to a free address or metrics.enabled = false")]
pub struct MetricsError {
    addr: SocketAddr,
    #[source]
    source: std::io::Error,
}

/// Whether the drain loop is alive: it stamps every cycle here, and
/// `/healthz` fails when no cycle came for three poll intervals.
#[derive(Debug)]
pub struct Health {
    started: Instant,
    /// Milliseconds after `started` of the last cycle.
    last_cycle_ms: AtomicU64,
    poll_interval_ms: AtomicU64,
}

impl Health {
    #[must_use]
    pub fn new(poll_interval: Duration) -> Self {
        let h = Self { started: Instant::now(), last_cycle_ms: AtomicU64::new(0), poll_interval_ms: AtomicU64::new(0) };
        h.set_poll_interval(poll_interval);
        h
    }

    pub fn cycle_done(&self) {
        self.last_cycle_ms.store(millis(self.started.elapsed()), Ordering::Relaxed);
    }

    pub fn set_poll_interval(&self, poll_interval: Duration) {
        self.poll_interval_ms.store(millis(poll_interval), Ordering::Relaxed);
    }

    /// `Ok` with how long ago the last cycle ran, or `Err` with why not healthy.
    fn check(&self) -> Result<String, String> {
        let since = millis(self.started.elapsed()).saturating_sub(self.last_cycle_ms.load(Ordering::Relaxed));
        let limit = 3 * self.poll_interval_ms.load(Ordering::Relaxed) + 1000;
        let text =
            format!("last drain {since} ms ago (poll interval {} ms)", self.poll_interval_ms.load(Ordering::Relaxed));
        if since <= limit { Ok(format!("ok: {text}\n")) } else { Err(format!("stalled: {text}\n")) }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[derive(Clone)]
struct Shared {
    queries: QuerySender,
    health: Arc<Health>,
}

/// Binds `addr` and serves the endpoint on the current runtime.
///
/// # Errors
/// When `addr` cannot be bound.
pub async fn serve(addr: SocketAddr, queries: QuerySender, health: Arc<Health>) -> Result<SocketAddr, MetricsError> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| MetricsError { addr, source })?;
    let bound = listener.local_addr().unwrap_or(addr);
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(Shared { queries, health });
    tokio::spawn(accept_loop(listener, app));
    tracing::info!(address = %bound, max_connections = MAX_CONNECTIONS, "metrics endpoint ready (/metrics, /healthz)");
    Ok(bound)
}

/// Serves each connection with a header timeout and a lifetime, at most
/// [`MAX_CONNECTIONS`] at once, so clients that connect and idle (on a
/// `DaemonSet`'s `0.0.0.0:9739`, anyone who can reach the node) cannot use up
/// the daemon's file descriptors.
async fn accept_loop(listener: tokio::net::TcpListener, app: Router) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut refused: u64 = 0;
    let mut errors = crate::export::throttle::Throttle::new(Duration::from_mins(1));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // EMFILE and ENFILE: wait for descriptors to come back
                // instead of spinning.
                if errors.due(Instant::now()) {
                    tracing::warn!(%error, "metrics endpoint cannot accept a connection");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            refused += 1;
            if errors.due(Instant::now()) {
                tracing::warn!(%peer, refused, limit = MAX_CONNECTIONS, "metrics endpoint busy; connection closed");
            }
            continue;
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT);
            let connection = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, connection).await;
            drop(slot);
        });
    }
}

async fn metrics(State(shared): State<Shared>) -> Response {
    match ask(&shared.queries, Request::Stats, SCRAPE_TIMEOUT).await {
        Ok(Answer::Stats(snapshot)) => match render::render(*snapshot) {
            Ok(text) => ([(header::CONTENT_TYPE, render::CONTENT_TYPE)], text).into_response(),
            Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "rendering failed\n").into_response(),
        },
        Ok(other) => (StatusCode::INTERNAL_SERVER_ERROR, format!("unexpected answer: {other:?}\n")).into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
    }
}

async fn healthz(State(shared): State<Shared>) -> Response {
    match shared.health.check() {
        Ok(text) => (StatusCode::OK, text).into_response(),
        Err(text) => (StatusCode::SERVICE_UNAVAILABLE, text).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Healthy while cycles come; stalled after three poll intervals (and a
    /// second of slack) without one.
    #[test]
    fn health_fails_when_the_drain_loop_stalls() {
        let h = Health::new(Duration::from_millis(10));
        h.cycle_done();
        assert!(h.check().unwrap().starts_with("ok: last drain"));
        std::thread::sleep(Duration::from_millis(1100));
        assert!(h.check().unwrap_err().starts_with("stalled: last drain"));
        h.cycle_done();
        assert!(h.check().is_ok());
    }
}
