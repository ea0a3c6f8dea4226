//! The meshfs file server: protocols.md §1 over TCP (default port 4044).
//!
//! One tokio task per connection ([`session`]), each with its own open file and position;
//! [`connection`] frames lines and payloads. The server owns no files: it calls
//! [`meshfs_core::Share`] for everything.
//!
//! TLS shares the port: with [`Transport::tls`] set, a connection whose first byte opens a TLS
//! handshake (0x16, which no text command starts with) is served inside TLS, any other in
//! clear, so `nc` and the seeds' clients keep working while meshfs programs encrypt.
//! [`Transport::require_tls`] limits clear text to `hello`, `help` and `quit`;
//! [`Transport::plaintext_auth`] decides whether `auth <password>` is accepted in clear.
//!
//! Upload limits ([`FileServer::with_upload`]): every file payload is charged to the node's
//! bucket and to the client's, the client being the ID its TLS certificate proves, else its IP
//! address ([`meshfs_core::rate`]).
//!
//! Shutdown: when the token is cancelled, the accept loop stops and every session closes as soon
//! as its current request is answered. The caller waits on the [`TaskTracker`] for up to its
//! grace period.
#![deny(unsafe_code)]

mod connection;
mod sendfile;
mod session;
mod subscription;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use meshfs_core::accept::{Door, accept_loop};
use meshfs_core::access::Access;
use meshfs_core::events::Events;
use meshfs_core::rate::{ClientKey, UploadLimits};
use meshfs_core::retention::DiskStatus;
use meshfs_core::stream::accept;
use meshfs_core::tls::TlsAcceptor;
use meshfs_core::{NodeId, Share};
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
    /// The nodes this one keeps in step with (`--cluster-peer`, as `host:port`), told by
    /// `cluster-peers`; at most [`MAX_CLUSTER_PEERS`] are told.
    pub cluster_peers: Vec<String>,
}

/// Most addresses a `cluster-peers` reply holds (and a client reads).
pub const MAX_CLUSTER_PEERS: usize = meshfs_core::client::MAX_CLUSTER_PEERS;

impl Default for Config {
    fn default() -> Self {
        Config {
            name: "meshfs".into(),
            idle_timeout: Duration::from_secs(600),
            max_connections: 16_384,
            cluster_peers: Vec::new(),
        }
    }
}

/// What the server speaks and accepts in clear ([`FileServer::with_transport`]).
#[derive(Debug, Clone)]
pub struct Transport {
    /// TLS on the same port (`None`: clear text only).
    pub tls: Option<Tls>,
    /// Refuse every request in clear but `hello`, `help` and `quit` (`--require-tls`).
    pub require_tls: bool,
    /// Accept `auth <password>` in clear, where anyone on the LAN can read the password
    /// (`--allow-plaintext-auth`; inside TLS `auth` is always accepted).
    pub plaintext_auth: bool,
}

impl Default for Transport {
    /// Clear text as before TLS (the binary turns TLS on and `plaintext_auth` off).
    fn default() -> Self {
        Transport {
            tls: None,
            require_tls: false,
            plaintext_auth: true,
        }
    }
}

/// The node's TLS side: built from its identity with [`meshfs_core::tls::server_config`].
#[derive(Clone)]
pub struct Tls {
    pub config: Arc<meshfs_core::tls::ServerConfig>,
    /// The node's ID, which `pake` proofs are bound to.
    pub id: NodeId,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("id", &self.id).finish()
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
    transport: Arc<Transport>,
    upload: UploadLimits,
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
            transport: Arc::new(Transport::default()),
            upload: UploadLimits::unlimited(),
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

    /// Speak TLS beside the text protocol, and set what is accepted in clear.
    pub fn with_transport(mut self, transport: Transport) -> FileServer {
        self.transport = Arc::new(transport);
        self
    }

    /// Send file content under these limits (default: none).
    pub fn with_upload(mut self, upload: UploadLimits) -> FileServer {
        self.upload = upload;
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
        let (share, config, events, access) = (self.share, self.config, self.events, self.access);
        let disk = self.disk;
        let (transport, upload) = (self.transport, self.upload);
        accept_loop(&self.listener, door, &shutdown, &tracker, |tcp, peer| {
            let _ = tcp.set_nodelay(true);
            let (share, config, events, access, disk) = (
                share.clone(),
                config.clone(),
                events.clone(),
                access.clone(),
                disk.clone(),
            );
            let (transport, upload) = (transport.clone(), upload.clone());
            let shutdown = shutdown.clone();
            async move {
                let acceptor = transport.tls.as_ref().map(|t| TlsAcceptor::from(t.config.clone()));
                let stream = tokio::select! {
                    s = accept(tcp, acceptor.as_ref(), config.idle_timeout) => s,
                    _ = shutdown.cancelled() => return,
                };
                let stream = match stream {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "no session");
                        return;
                    }
                };
                tracing::debug!(%peer, tls = stream.is_tls(), client = ?stream.peer_id(), "connected");
                let client = ClientKey::of(stream.peer_id(), peer.ip());
                let conn = Connection::new(stream, config.idle_timeout)
                    .with_limiter(upload.client(client));
                let session = Session::new(conn, share, config, transport, events, access, disk);
                if let Err(e) = session.run(shutdown).await {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
            }
        })
        .await;
    }
}
