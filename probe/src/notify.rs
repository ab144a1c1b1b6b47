//! Tells systemd (`Type=notify`) how the service is doing: READY=1 once the
//! programs are attached and the outputs open, RELOADING=1/READY=1 around a
//! reload, STOPPING=1 at shutdown, STATUS= lines for `systemctl status`, and
//! the watchdog keep-alive. Without `$NOTIFY_SOCKET` every call does nothing.

use std::time::Duration;

use sd_notify::NotifyState;

/// The service manager's notification socket, if vxflow runs under one.
#[derive(Debug)]
pub struct Notifier {
    enabled: bool,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// Reads `$NOTIFY_SOCKET` and `$WATCHDOG_USEC` (and `$WATCHDOG_PID`).
    #[must_use]
    pub fn from_env() -> Self {
        let enabled = std::env::var_os("NOTIFY_SOCKET").is_some();
        let watchdog = if enabled { sd_notify::watchdog_enabled() } else { None };
        if let Some(period) = watchdog {
            tracing::info!(period = %humantime::format_duration(period), "systemd watchdog enabled");
        }
        Self { enabled, watchdog }
    }

    /// How often to send the keep-alive: half the watchdog period, as
    /// `sd_watchdog_enabled(3)` advises. `None` without a watchdog.
    #[must_use]
    pub fn keepalive_interval(&self) -> Option<Duration> {
        self.watchdog.map(|p| (p / 2).max(Duration::from_millis(1)))
    }

    pub fn ready(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// Before a reload; `ready` follows when it is done (`sd_notify(3)` asks
    /// for the monotonic time with RELOADING=1 since systemd 253).
    pub fn reloading(&self) {
        let now = NotifyState::monotonic_usec_now().ok();
        let mut states = vec![NotifyState::Reloading, NotifyState::Status("reloading the configuration")];
        states.extend(now);
        self.send(&states);
    }

    pub fn stopping(&self) {
        self.send(&[NotifyState::Stopping, NotifyState::Status("stopping: exporting every cached flow")]);
    }

    pub fn status(&self, status: &str) {
        self.send(&[NotifyState::Status(status)]);
    }

    /// The keep-alive, sent from the drain loop so a stuck loop is noticed.
    pub fn watchdog(&self) {
        if self.watchdog.is_some() {
            self.send(&[NotifyState::Watchdog]);
        }
    }

    fn send(&self, states: &[NotifyState<'_>]) {
        if !self.enabled {
            return;
        }
        if let Err(error) = sd_notify::notify(states) {
            tracing::warn!(%error, "cannot notify the service manager ($NOTIFY_SOCKET)");
        }
    }
}
