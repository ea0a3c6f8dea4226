//! Waiting for the signals that ask a process to stop.

use std::future::Future;

/// Install SIGINT and SIGTERM handlers now, and return a future that resolves on the first
/// of them. Call it before announcing readiness: a signal that arrives between the readiness
/// line and the first poll of the future is then still caught, instead of killing the process
/// before it cleans up.
pub fn terminate() -> impl Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let handlers = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    );
    async move {
        let (Ok(mut int), Ok(mut term)) = handlers else {
            // Without signal handlers the default action (exit) still applies.
            return std::future::pending().await;
        };
        tokio::select! {
            _ = int.recv() => tracing::info!("SIGINT received, shutting down"),
            _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
        }
    }
}
