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
use meshfs_core::accept::{Door, accept_loop};
use meshfs_core::access::Access;
use meshfs_core::events::Events;
use meshfs_core::retention::DiskStatus;
use tokio::net::TcpListener;
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
    disk: Option<DiskStatus>,
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
            disk: None,
        })
    }

    /// Enforce these passwords (`auth`); without it nothing is protected.
    pub fn with_access(mut self, access: Access) -> FileServer {
        self.access = access;
        self
    }

    /// Say `disk=full` in `hello` while `disk` says so.
    pub fn with_disk(mut self, disk: DiskStatus) -> FileServer {
        self.disk = Some(disk);
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
    /// Over `max_connections`, a client is told `9 too many connections` and closed (the
    /// node-wide overload rule of [`meshfs_core::accept`]).
    pub async fn run(self, shutdown: CancellationToken, tracker: TaskTracker) {
        let door = Door {
            name: "file server",
            max_connections: self.config.max_connections,
            refusal: b"9 too many connections\n",
        };
        let (share, config, events, access, disk) =
            (self.share, self.config, self.events, self.access, self.disk);
        accept_loop(&self.listener, door, &shutdown, &tracker, |stream, peer| {
            let _ = stream.set_nodelay(true);
            let session = Session::new(
                Connection::new(stream, config.idle_timeout),
                share.clone(),
                config.clone(),
                events.clone(),
                access.clone(),
                disk.clone(),
            );
            let shutdown = shutdown.clone();
            async move {
                tracing::debug!(%peer, "connected");
                if let Err(e) = session.run(shutdown).await {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
            }
        })
        .await;
    }
}
