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
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "metrics endpoint stopped");
        }
    });
    tracing::info!(address = %bound, "metrics endpoint ready (/metrics, /healthz)");
    Ok(bound)
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
