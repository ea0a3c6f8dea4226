//! Counting transfers in flight, so that shutdown can wait for them and no longer.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

/// Number of running transfers (downloads and uploads) of one FTP server.
#[derive(Debug, Clone, Default)]
pub(crate) struct Busy {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    count: AtomicUsize,
    idle: Notify,
}

/// Held for the duration of one transfer.
#[derive(Debug)]
pub(crate) struct BusyGuard {
    inner: Arc<Inner>,
}

impl Busy {
    pub(crate) fn start(&self) -> BusyGuard {
        self.inner.count.fetch_add(1, Ordering::SeqCst);
        BusyGuard {
            inner: self.inner.clone(),
        }
    }

    pub(crate) fn count(&self) -> usize {
        self.inner.count.load(Ordering::SeqCst)
    }

    /// Resolve once no transfer is running.
    pub(crate) async fn idle(&self) {
        loop {
            let notified = self.inner.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.count() == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        if self.inner.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.inner.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn idle_waits_for_the_last_guard() {
        let busy = Busy::default();
        busy.idle().await;
        let a = busy.start();
        let b = busy.start();
        let waiter = tokio::spawn({
            let busy = busy.clone();
            async move { busy.idle().await }
        });
        drop(a);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), busy.idle())
                .await
                .is_err()
        );
        drop(b);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
    }
}
