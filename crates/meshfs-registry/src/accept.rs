//! The accept loop both listeners of this crate share (directory and peer `GET_FILE`).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Accept connections until `shutdown`, serving at most `max` at once: a slot is taken before
/// accepting, so when all are busy new clients wait in the kernel's backlog. Each connection
/// runs `serve` as a task on `tracker`, holding its slot until it ends.
pub(crate) async fn accept_loop<F, Fut>(
    listener: &TcpListener,
    max: usize,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
    what: &'static str,
    mut serve: F,
) where
    F: FnMut(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(max.max(1)));
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p.expect("semaphore never closed"),
            _ = shutdown.cancelled() => break,
        };
        let accepted = tokio::select! {
            res = listener.accept() => res,
            _ = shutdown.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(error = %e, "{what}: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let connection = serve(stream, peer);
        tracker.spawn(async move {
            connection.await;
            drop(permit);
        });
    }
}
