//! The one accept loop every TCP door of a node runs (file server, FTP, directory, `GET_FILE`,
//! cluster master), so that they share one overload rule and one reaction to accept errors.
//!
//! **Overload policy: refuse when full.** The loop accepts whenever the kernel has a
//! connection; if the door already serves [`Door::max_connections`], the newcomer is told so
//! in the door's own words ([`Door::refusal`]: `9 too many connections` for the file server,
//! `421` for FTP, nothing for the directory, whose protocol has no such reply) and closed.
//! We chose this over letting clients wait in the listen backlog because:
//! - a waiting client cannot tell an overloaded node from a dead one: it sees a connect that
//!   succeeds (the kernel completes the handshake) and then silence until its own timeout,
//!   and the client pool then holds a healthy node *down*;
//! - a refusal is immediate and explicit, so a client retries or picks another node at once,
//!   and the backlog never fills with connections nobody will serve before they time out;
//! - how long a busy door makes clients wait is otherwise set by the kernel's backlog, not by
//!   anything meshfs states.
//!
//! Refusals are themselves bounded ([`MAX_REFUSING`] at once, each written within
//! [`REFUSAL_TIMEOUT`]): past that, a flood's connections are closed without a word rather
//! than costing a task and a descriptor each.
//!
//! **Accept errors** (`EMFILE`, `ENFILE`, `ENOBUFS`…) are usually the process running out of
//! something that only finishing connections give back: the loop waits [`ACCEPT_BACKOFF`]
//! instead of spinning on the error.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Pause after a failed `accept`, so a process out of descriptors does not spin.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Refusals being written at once; connections beyond are closed silently.
pub const MAX_REFUSING: usize = 64;
/// Longest time spent telling one refused client why.
pub const REFUSAL_TIMEOUT: Duration = Duration::from_secs(1);

/// What a door tells the accept loop about itself.
#[derive(Debug, Clone, Copy)]
pub struct Door {
    /// The door's name, for logs (`"file server"`, `"FTP"`, …).
    pub name: &'static str,
    /// Connections served at once (at least 1).
    pub max_connections: usize,
    /// Bytes written to a connection refused because the door is full, before closing it;
    /// empty when the door's protocol has no way to say it.
    pub refusal: &'static [u8],
}

/// Accept connections on `listener` until `shutdown` is cancelled, serving at most
/// `door.max_connections` at once (see the module doc for the overload rule). Each accepted
/// connection runs `handle(stream, peer)` as a task on `tracker`, holding its slot until that
/// future ends. `handle` itself runs on the loop, so it should only prepare the future.
pub async fn accept_loop<F, Fut>(
    listener: &TcpListener,
    door: Door,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
    mut handle: F,
) where
    F: FnMut(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(door.max_connections.max(1)));
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    loop {
        let accepted = tokio::select! {
            res = listener.accept() => res,
            _ = shutdown.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(door = door.name, error = %e, "accept failed");
                tokio::select! {
                    _ = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                    _ = shutdown.cancelled() => break,
                }
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(door = door.name, %peer, "full: connection refused");
            // Without a refusal slot the stream is dropped here: closed without a word.
            if let Ok(refusal) = refusing.clone().try_acquire_owned() {
                tracker.spawn(async move {
                    refuse(stream, door.refusal).await;
                    drop(refusal);
                });
            }
            continue;
        };
        let counted = crate::metrics::Door::from_accept_name(door.name)
            .map(|d| crate::metrics::metrics().door(d).connection());
        // Boxed: an `async` block stores a future it captures twice (once captured, once
        // being awaited; rustc does not overlap the two), which doubled the memory of every
        // idle connection (11.8 KiB each, measured with heaptrack). Boxed, the block holds a
        // pointer and the connection's state is stored once.
        let connection = Box::pin(handle(stream, peer));
        tracker.spawn(async move {
            connection.await;
            drop((slot, counted));
        });
    }
}

/// Say `why` (if anything) and close.
async fn refuse(mut stream: TcpStream, why: &[u8]) {
    if !why.is_empty() {
        let _ = tokio::time::timeout(REFUSAL_TIMEOUT, async {
            stream.write_all(why).await?;
            stream.shutdown().await
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::sync::oneshot;

    const WAIT: Duration = Duration::from_secs(10);

    async fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
        let mut got = Vec::new();
        tokio::time::timeout(WAIT, stream.read_to_end(&mut got))
            .await
            .expect("closed in time")
            .expect("read");
        got
    }

    /// One connection slot: the second client is refused with the door's bytes at once, and
    /// a third is served once the first has gone.
    #[tokio::test]
    async fn full_door_refuses_then_serves_again() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let door = Door {
            name: "test",
            max_connections: 1,
            refusal: b"9 full\n",
        };
        // Each served connection says "hi\n" and then holds its slot until told to go.
        let (release_tx, mut release_rx) =
            tokio::sync::mpsc::unbounded_channel::<oneshot::Sender<()>>();
        let served = tokio::spawn({
            let (shutdown, tracker) = (shutdown.clone(), tracker.clone());
            async move {
                accept_loop(&listener, door, &shutdown, &tracker, |mut stream, _| {
                    let (tx, rx) = oneshot::channel::<()>();
                    let _ = release_tx.send(tx);
                    async move {
                        let _ = stream.write_all(b"hi\n").await;
                        let _ = rx.await;
                    }
                })
                .await
            }
        });

        let mut first = TcpStream::connect(addr).await.unwrap();
        let mut hi = [0u8; 3];
        tokio::time::timeout(WAIT, first.read_exact(&mut hi))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&hi, b"hi\n");
        let release_first = release_rx.recv().await.unwrap();

        let mut second = TcpStream::connect(addr).await.unwrap();
        assert_eq!(read_to_close(&mut second).await, b"9 full\n");

        release_first.send(()).unwrap();
        drop(first);
        // The slot comes back when the first handler ends; retry until then (bounded).
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let mut third = TcpStream::connect(addr).await.unwrap();
            let mut got = [0u8; 3];
            tokio::time::timeout(WAIT, third.read_exact(&mut got))
                .await
                .unwrap()
                .unwrap();
            if &got == b"hi\n" {
                break;
            }
            assert_eq!(&got, b"9 f", "served neither nor refused");
            assert!(tokio::time::Instant::now() < deadline, "slot never freed");
            tokio::task::yield_now().await;
        }

        shutdown.cancel();
        tokio::time::timeout(WAIT, served).await.unwrap().unwrap();
        drop(release_rx);
        tracker.close();
        tokio::time::timeout(WAIT, tracker.wait()).await.unwrap();
    }

    /// A door with nothing to say closes the refused connection without a byte.
    #[tokio::test]
    async fn silent_refusal_closes() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let door = Door {
            name: "test",
            max_connections: 1,
            refusal: b"",
        };
        let hold = CancellationToken::new();
        let served = tokio::spawn({
            let (shutdown, tracker, hold) = (shutdown.clone(), tracker.clone(), hold.clone());
            async move {
                accept_loop(&listener, door, &shutdown, &tracker, |mut stream, _| {
                    let hold = hold.clone();
                    async move {
                        let _ = stream.write_all(b"x").await;
                        hold.cancelled().await;
                    }
                })
                .await
            }
        });
        let mut first = TcpStream::connect(addr).await.unwrap();
        let mut x = [0u8; 1];
        tokio::time::timeout(WAIT, first.read_exact(&mut x))
            .await
            .unwrap()
            .unwrap();
        let mut second = TcpStream::connect(addr).await.unwrap();
        assert_eq!(read_to_close(&mut second).await, b"");
        hold.cancel();
        shutdown.cancel();
        tokio::time::timeout(WAIT, served).await.unwrap().unwrap();
        tracker.close();
        tokio::time::timeout(WAIT, tracker.wait()).await.unwrap();
    }
}
