//! Telling systemd how the node is doing (`Type=notify`): READY once the
//! actor tree is up, STATUS lines, STOPPING on shutdown, and WATCHDOG pings
//! while the root supervisor is alive. Outside systemd (no NOTIFY_SOCKET)
//! every call is a no-op.

use ractor::{ActorCell, ActorStatus};
use sd_notify::NotifyState;
use tracing::debug;

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        debug!("sd_notify: {e}");
    }
}

pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

pub fn send_reloading() {
    send(&[
        NotifyState::Reloading,
        NotifyState::Status("reloading the configuration"),
    ]);
}

pub fn stopping(status: &str) {
    send(&[NotifyState::Stopping, NotifyState::Status(status)]);
}

pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

/// Pings the watchdog at half its interval for as long as the root
/// supervisor runs; a wedged or dead tree stops the pings and systemd
/// restarts the service.
pub fn spawn_watchdog(root: ActorCell) {
    let Some(interval) = sd_notify::watchdog_enabled() else {
        return;
    };
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval / 2);
        loop {
            tick.tick().await;
            if root.get_status() != ActorStatus::Running {
                return;
            }
            send(&[NotifyState::Watchdog]);
        }
    });
}
