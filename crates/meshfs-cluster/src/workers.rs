//! The master's workers: round-robin over the healthy ones, health checked with `hello`.
//!
//! A fixed list, not fed by the core's `Peers` table of discovered nodes: which nodes serve a
//! cluster is configuration (`--worker`), not discovery. A node that appears on the LAN has not
//! agreed to take a cluster's clients, nor does it hold the cluster's files; and the
//! round-robin cursor is an index into this list, which must not shift as nodes come and go.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use meshfs_core::Client;
use tokio_util::sync::CancellationToken;

/// One worker: its `host:port` and whether its last health check passed.
#[derive(Debug)]
struct Worker {
    addr: String,
    healthy: AtomicBool,
}

/// The workers of a cluster. A worker starts unhealthy until its first check passes.
#[derive(Debug)]
pub struct Workers {
    workers: Vec<Worker>,
    /// Index where the next round-robin search starts.
    next: Mutex<usize>,
}

impl Workers {
    pub fn new(addrs: impl IntoIterator<Item = String>) -> Workers {
        Workers {
            workers: addrs
                .into_iter()
                .map(|addr| Worker {
                    addr,
                    healthy: AtomicBool::new(false),
                })
                .collect(),
            next: Mutex::new(0),
        }
    }

    pub fn len(&self) -> usize {
        self.workers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }

    /// The next healthy worker after the previous assignment, or `None` if all are down.
    /// Skipping an unhealthy worker does not disturb the rotation of the others.
    pub fn assign(&self) -> Option<String> {
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        let n = self.workers.len();
        for step in 0..n {
            let i = (*next + step) % n;
            if self.workers[i].healthy.load(Ordering::SeqCst) {
                *next = (i + 1) % n;
                return Some(self.workers[i].addr.clone());
            }
        }
        None
    }

    /// Addresses of the workers that passed their last check.
    pub fn healthy(&self) -> Vec<String> {
        self.workers
            .iter()
            .filter(|w| w.healthy.load(Ordering::SeqCst))
            .map(|w| w.addr.clone())
            .collect()
    }

    /// Check every worker once, concurrently: a worker is healthy when it answers `hello` as a
    /// meshfs node within `timeout`.
    pub async fn check_all(&self, timeout: Duration) {
        let checks = self.workers.iter().map(|w| async move {
            let ok = matches!(
                tokio::time::timeout(timeout, hello(&w.addr)).await,
                Ok(Ok(()))
            );
            let was = w.healthy.swap(ok, Ordering::SeqCst);
            if ok != was {
                if ok {
                    tracing::info!(worker = %w.addr, "worker healthy");
                } else {
                    tracing::warn!(worker = %w.addr, "worker failed its health check: skipped");
                }
            }
        });
        join_all(checks).await;
    }

    /// Check every `interval` until `shutdown`.
    pub async fn check_forever(&self, interval: Duration, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
            self.check_all(interval.max(Duration::from_millis(200)))
                .await;
        }
    }
}

async fn hello(addr: &str) -> Result<(), meshfs_core::ClientError> {
    let mut client = Client::connect(addr).await?;
    client.hello().await?;
    let _ = client.quit().await;
    Ok(())
}

/// Await all futures concurrently (a handful of workers: no need for a crate).
async fn join_all<F: std::future::Future<Output = ()>>(futures: impl Iterator<Item = F>) {
    let mut set = Vec::new();
    for f in futures {
        set.push(Box::pin(f));
    }
    std::future::poll_fn(|cx| {
        set.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if set.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(workers: &Workers, i: usize, ok: bool) {
        workers.workers[i].healthy.store(ok, Ordering::SeqCst);
    }

    #[test]
    fn round_robin_skips_the_unhealthy() {
        let w = Workers::new(["a", "b", "c"].map(String::from));
        assert_eq!(w.assign(), None);
        for i in 0..3 {
            set(&w, i, true);
        }
        let got: Vec<_> = (0..6).map(|_| w.assign().unwrap()).collect();
        assert_eq!(got, ["a", "b", "c", "a", "b", "c"]);
        set(&w, 1, false);
        let got: Vec<_> = (0..4).map(|_| w.assign().unwrap()).collect();
        assert_eq!(got, ["a", "c", "a", "c"]);
        set(&w, 1, true);
        let got: Vec<_> = (0..3).map(|_| w.assign().unwrap()).collect();
        assert_eq!(got, ["a", "b", "c"]);
    }

    #[tokio::test]
    async fn unreachable_workers_fail_the_check() {
        // A port that was just free: nothing listens there.
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().to_string()
        };
        let w = Workers::new([addr]);
        set(&w, 0, true);
        w.check_all(Duration::from_secs(2)).await;
        assert!(w.healthy().is_empty());
    }
}
