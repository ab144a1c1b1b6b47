//! Self-metrics over HTTP: `/metrics` in the `OpenMetrics` text format that
//! Prometheus scrapes, and `/healthz` for liveness probes.

pub mod render;
pub mod server;

/// Where the endpoint listens unless configured otherwise (9739 is free in
/// Prometheus' default port allocations list).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9739";
