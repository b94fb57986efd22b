//! systemd's readiness protocol (`Type=notify`, `WatchdogSec=`) through the sd-notify crate.
//!
//! Every function is a no-op when `NOTIFY_SOCKET` is unset (development, tests, another init),
//! and failures are logged, never returned: a daemon must not stop archiving because systemd
//! could not be told something. The environment is left in place (`unset_env = false`) because
//! the watchdog keeps needing it.

use std::time::Duration;

use sd_notify::NotifyState;

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!(error = %e, "sd_notify");
    }
}

/// The service is up: listeners bound, archive open. `status` is what `systemctl status` shows.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A one-line state for `systemctl status` without changing readiness.
pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

/// Shutdown has begun; systemd stops expecting watchdog pings.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// "Still alive". Send it from the code whose liveness matters (the async runtime), not from
/// a thread of its own that would keep pinging while the service is wedged.
pub fn watchdog() {
    send(&[NotifyState::Watchdog]);
}

/// How often to ping: half of `WatchdogSec=`, as sd_watchdog_enabled(3) advises; `None` when
/// systemd runs no watchdog for us.
pub fn watchdog_interval() -> Option<Duration> {
    let mut usec = 0u64;
    if sd_notify::watchdog_enabled(false, &mut usec) && usec > 0 {
        Some(Duration::from_micros(usec / 2))
    } else {
        None
    }
}
