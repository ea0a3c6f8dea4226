//! The meshfs file server: protocols.md §1 over TCP (default port 4044).
//!
//! One tokio task per connection ([`session`]), each with its own open file and position;
//! [`connection`] frames lines and payloads. The server owns no files: it calls
//! [`meshfs_core::Share`] for everything.
//!
//! Shutdown: when the token is cancelled, the accept loop stops and every session closes as soon
//! as its current request is answered. The caller waits on the [`TaskTracker`] for up to its
//! grace period.

mod connection;
mod sendfile;
mod session;
mod subscription;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use meshfs_core::Share;
use meshfs_core::access::Access;
use meshfs_core::events::Events;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use connection::Connection;
use session::Session;

/// Settings of one file server.
#[derive(Debug, Clone)]
pub struct Config {
    /// Node name announced by `hello`.
    pub name: String,
    /// A connection with no complete request for this long is closed.
    pub idle_timeout: Duration,
    /// Connections served at once; more are answered `9` and closed.
    pub max_connections: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            name: "meshfs".into(),
            idle_timeout: Duration::from_secs(600),
            max_connections: 16_384,
        }
    }
}

/// A bound file server, ready to [`run`](FileServer::run).
pub struct FileServer {
    listener: TcpListener,
    share: Share,
    config: Arc<Config>,
    events: Option<Events>,
    access: Access,
}

impl FileServer {
    /// Bind `addr` (port 0 picks a free port; see [`FileServer::local_addr`]).
    pub async fn bind(addr: &str, share: Share, config: Config) -> io::Result<FileServer> {
        let listener = TcpListener::bind(addr).await?;
        Ok(FileServer {
            listener,
            share,
            config: Arc::new(config),
            events: None,
            access: Access::open(),
        })
    }

    /// Enforce these passwords (`auth`); without it nothing is protected.
    pub fn with_access(mut self, access: Access) -> FileServer {
        self.access = access;
        self
    }

    /// Serve `subscribe` from this change log (without it, `subscribe` answers code 5).
    pub fn with_events(mut self, events: Events) -> FileServer {
        self.events = Some(events);
        self
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accept connections until `shutdown` is cancelled. Each session is spawned on `tracker`.
    pub async fn run(self, shutdown: CancellationToken, tracker: TaskTracker) {
        let slots = Arc::new(Semaphore::new(self.config.max_connections));
        loop {
            let accepted = tokio::select! {
                res = self.listener.accept() => res,
                _ = shutdown.cancelled() => break,
            };
            let (stream, peer) = match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                tracker.spawn(refuse(stream));
                continue;
            };
            let _ = stream.set_nodelay(true);
            let session = Session::new(
                Connection::new(stream, self.config.idle_timeout),
                self.share.clone(),
                self.config.clone(),
                self.events.clone(),
                self.access.clone(),
            );
            let shutdown = shutdown.clone();
            tracker.spawn(async move {
                tracing::debug!(%peer, "connected");
                if let Err(e) = session.run(shutdown).await {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                drop(permit);
            });
        }
    }
}

/// Tell a client over the connection limit why it is turned away.
async fn refuse(mut stream: TcpStream) {
    use tokio::io::AsyncWriteExt;
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        stream.write_all(b"9 too many connections\n"),
    )
    .await;
}
