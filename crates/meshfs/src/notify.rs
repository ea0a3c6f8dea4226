//! The systemd notification protocol (`sd_notify(3)`), for `Type=notify` services: `READY=1`
//! once every door is bound, `WATCHDOG=1` pings while `WATCHDOG_USEC` asks for them, and
//! `STOPPING=1` when the drain starts.
//!
//! The protocol is one datagram of `KEY=VALUE` lines sent to the unix socket named by
//! `NOTIFY_SOCKET` (a path, or `@name` in the abstract namespace). std's `UnixDatagram` does
//! all of it in a few lines, so no crate (nor libsystemd) is linked for it. Outside systemd
//! (no `NOTIFY_SOCKET`) every call does nothing; a failed send is logged, never fatal: a node
//! that serves files but could not tell systemd is better than one that exits.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Send `state` (newline-separated `KEY=VALUE` lines) to the service manager, if any.
fn notify(state: &str) {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(e) = send(&socket, state) {
        tracing::warn!(socket = ?socket, error = %e, state, "cannot notify systemd");
    }
}

fn send(socket: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let sender = UnixDatagram::unbound()?;
    let bytes = socket.as_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        sender.send_to_addr(state.as_bytes(), &addr)?;
    } else {
        sender.send_to(state.as_bytes(), socket)?;
    }
    Ok(())
}

/// The service is up: every door is bound and accepting. `status` is shown by
/// `systemctl status`.
pub fn ready(status: &str) {
    notify(&format!("READY=1\nSTATUS={status}"));
}

/// The service is draining (SIGTERM/SIGINT received).
pub fn stopping() {
    notify("STOPPING=1");
}

/// The interval systemd asks pings at (`WATCHDOG_USEC`, for this process per
/// `WATCHDOG_PID` when set), if it asks.
fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.parse() != Ok(std::process::id())
    {
        return None;
    }
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// Ping the watchdog at half the interval systemd asks for, from the async runtime itself: a
/// runtime that stops making progress stops pinging, and systemd restarts the node.
pub fn start_watchdog(shutdown: CancellationToken, tracker: &TaskTracker) {
    let Some(interval) = watchdog_interval() else {
        return;
    };
    tracing::info!(?interval, "systemd watchdog on");
    tracker.spawn(async move {
        let mut tick = tokio::time::interval(interval / 2);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => notify("WATCHDOG=1"),
            }
        }
    });
}
