//! Waiting for the signals that ask a process to stop, and the one shutdown sequence every
//! long-running command (`node`, `registry`, `cluster`, `mount`) ends with: cancel the token,
//! close the tracker, wait for the tasks for at most the grace period.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Install SIGINT and SIGTERM handlers now, and return a future that resolves on the first
/// of them. Call it before announcing readiness: a signal that arrives between the readiness
/// line and the first poll of the future is then still caught, instead of killing the process
/// before it cleans up.
pub fn terminate() -> impl Future<Output = ()> + Send + 'static {
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

/// A token cancelled by the first SIGINT or SIGTERM, for commands whose main loop watches a
/// token itself (the hub, the FIFO chat). The handlers are in place when this returns.
pub fn cancel_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let stop = terminate();
    let cancel = token.clone();
    tokio::spawn(async move {
        stop.await;
        cancel.cancel();
    });
    token
}

/// The life of a long-running command: what stops it, and what it waits for when stopping.
/// Create it before printing the readiness line (the signal handlers are installed then).
pub struct Lifetime {
    /// Resolves on the first SIGINT or SIGTERM.
    signal: Pin<Box<dyn Future<Output = ()> + Send>>,
    /// Whether `signal` has resolved (polling it again would be a bug).
    signalled: bool,
    /// Cancelled when the command stops; every long-running task watches it.
    pub shutdown: CancellationToken,
    /// Every task the command spawns; waited for, within the grace period, when stopping.
    pub tracker: TaskTracker,
}

impl Lifetime {
    pub fn new() -> Lifetime {
        Lifetime {
            signal: Box::pin(terminate()),
            signalled: false,
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
        }
    }

    /// Resolves on the first SIGINT or SIGTERM (at once if one was already seen). Safe to use
    /// in a `select!` loop beside other work.
    pub async fn signalled(&mut self) {
        if !self.signalled {
            (&mut self.signal).await;
            self.signalled = true;
        }
    }

    /// Cancel every task and wait for them for at most `grace`. Returns whether they all
    /// ended in time (a warning is logged if not).
    pub async fn shut_down(self, grace: Duration) -> bool {
        crate::notify::stopping();
        self.shutdown.cancel();
        self.tracker.close();
        let done = tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_ok();
        if !done {
            tracing::warn!(
                ?grace,
                "tasks still running after the grace period: closing them"
            );
        }
        done
    }

    /// Wait for SIGINT or SIGTERM, then [`shut_down`](Lifetime::shut_down) within `grace`.
    pub async fn run_until_signal(mut self, grace: Duration) -> bool {
        self.signalled().await;
        self.shut_down(grace).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A task that ignores the token is abandoned after the grace period; one that watches it
    /// ends in time.
    #[tokio::test]
    async fn shut_down_waits_at_most_grace() {
        let life = Lifetime::new();
        let token = life.shutdown.clone();
        life.tracker.spawn(async move { token.cancelled().await });
        assert!(life.shut_down(Duration::from_secs(10)).await);

        let life = Lifetime::new();
        life.tracker.spawn(std::future::pending::<()>());
        assert!(!life.shut_down(Duration::from_millis(50)).await);
    }
}
