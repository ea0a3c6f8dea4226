//! `WebServer`: the routes, bound to a socket and served until shutdown.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use meshfs_core::retention::DiskStatus;
use meshfs_core::tls::{TlsAcceptor, TlsError};
use meshfs_core::{Identity, NodeId, Share};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::chat::ChatSetting;
use crate::error::WebError;
use crate::feed::{self, EventHub};
use crate::listener::{self, Conn, Https, WebListener};
use crate::nodes::NodeDirectory;
use crate::state::{AppState, Limits};
use crate::{api, assets, chat, files, json_body, login, metrics, transport, watch, zip};

/// Every route of the UI (see the crate docs for the API).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(assets::index))
        .route("/app.js", get(assets::app_js))
        .route("/style.css", get(assets::style))
        .route("/favicon.svg", get(assets::favicon))
        .route("/favicon.ico", get(assets::favicon))
        .route("/api/nodes", get(api::nodes))
        .route("/api/events", get(feed::feed))
        .route("/api/ls/{*rest}", get(api::ls))
        .route("/api/stat/{*rest}", get(api::stat))
        .route("/api/session", get(login::session))
        .route("/api/login", post(login::login))
        .route("/api/logout", post(login::logout))
        .route("/api/chat", get(chat::status).post(chat::send))
        // `get` also answers HEAD; the handler then sends headers only.
        .route("/files/{*rest}", get(files::serve))
        .route("/api/zip/{*rest}", get(zip::serve))
        .route("/metrics", get(metrics::serve))
        .fallback(|| async { WebError::NotFound("no such page".into()) })
        .layer(DefaultBodyLimit::max(json_body::MAX_BODY))
        .layer(axum::middleware::from_fn(metrics::count))
        // Outermost: plain HTTP's rules apply before anything else sees the request.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            transport::layer,
        ))
        .with_state(state)
}

/// A bound, not yet running, web UI.
pub struct WebServer {
    listener: TcpListener,
    share: Share,
    access: meshfs_core::access::Access,
    nodes: NodeDirectory,
    chat: ChatSetting,
    /// The node's ID and, unless HTTPS is off, the TLS side made from its certificate.
    identity: Option<(NodeId, Option<TlsAcceptor>)>,
    https: Https,
    disk: DiskStatus,
    upload: meshfs_core::rate::UploadLimits,
}

impl std::fmt::Debug for WebServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebServer")
            .field("listener", &self.listener)
            .field("id", &self.identity.as_ref().map(|(id, _)| id))
            .field("https", &self.https)
            .finish_non_exhaustive()
    }
}

impl WebServer {
    pub async fn bind(
        addr: &str,
        share: Share,
        nodes: NodeDirectory,
    ) -> std::io::Result<WebServer> {
        let listener = TcpListener::bind(addr).await?;
        Ok(WebServer {
            listener,
            share,
            access: meshfs_core::access::Access::open(),
            nodes,
            chat: ChatSetting::default(),
            identity: None,
            https: Https::Off,
            disk: DiskStatus::default(),
            upload: Default::default(),
        })
    }

    /// Serve HTTPS with the node's certificate as `https` says (alone or beside plain
    /// HTTP), and show the node's ID; without this, plain HTTP only and no ID.
    pub fn with_identity(
        mut self,
        identity: &Identity,
        https: Https,
    ) -> Result<WebServer, TlsError> {
        let acceptor = match https {
            Https::Off => None,
            Https::Offer | Https::Only => Some(listener::acceptor(identity)?),
        };
        self.identity = Some((identity.id(), acceptor));
        self.https = https;
        Ok(self)
    }

    /// Protect what these passwords protect: the page asks for them (`/api/login`).
    pub fn with_access(mut self, access: meshfs_core::access::Access) -> WebServer {
        self.access = access;
        self
    }

    /// Say on the page when this disk is full (retention measures it).
    pub fn with_disk(mut self, disk: DiskStatus) -> WebServer {
        self.disk = disk;
        self
    }

    /// Send file and zip bodies under these upload limits (default: none).
    pub fn with_upload(mut self, upload: meshfs_core::rate::UploadLimits) -> WebServer {
        self.upload = upload;
        self
    }

    /// Show the group chat (or say why not).
    pub fn with_chat(mut self, chat: ChatSetting) -> WebServer {
        self.chat = chat;
        self
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Which protocols it will speak.
    pub fn https(&self) -> Https {
        self.https
    }

    /// Serve until `shutdown`; the node watchers run on `tracker`.
    pub async fn run(self, shutdown: CancellationToken, tracker: TaskTracker) {
        let state = AppState {
            share: self.share,
            access: self.access,
            nodes: self.nodes,
            pools: meshfs_core::Pools::new(crate::state::pool_config()),
            hub: EventHub::default(),
            shutdown: shutdown.clone(),
            limits: Limits::default(),
            sessions: Default::default(),
            chat: self.chat,
            node_id: self.identity.as_ref().map(|(id, _)| *id),
            https: self.https,
            disk: self.disk,
            upload: self.upload,
        };
        watch::spawn_watchers(state.clone(), tracker.clone());
        let acceptor = self.identity.and_then(|(_, acceptor)| acceptor);
        let listener = match WebListener::start(self.listener, acceptor, shutdown.clone(), &tracker)
        {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "web UI not started");
                return;
            }
        };
        // The client's address is what failed logins are counted by; whether it came over
        // TLS decides what it may do.
        let app = router(state).into_make_service_with_connect_info::<Conn>();
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
        {
            tracing::error!(error = %e, "web UI stopped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// Send a request and read until the status line is complete; returns the status and the
    /// open stream (its body unread).
    async fn request(addr: SocketAddr, target: &str) -> (u16, TcpStream) {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n") {
            assert_eq!(s.read(&mut byte).await.unwrap(), 1, "connection closed");
            head.push(byte[0]);
        }
        let line = String::from_utf8(head).unwrap();
        (line.split(' ').nth(1).unwrap().parse().unwrap(), s)
    }

    #[tokio::test]
    async fn long_responses_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        // Far larger than socket buffers: its body stays in flight while unread.
        std::fs::File::create(dir.path().join("big.bin"))
            .unwrap()
            .set_len(64 << 20)
            .unwrap();
        let share = Share::open(dir.path()).unwrap();
        let state = AppState {
            share,
            access: meshfs_core::access::Access::open(),
            nodes: NodeDirectory::new("me", "127.0.0.1:1"),
            pools: meshfs_core::Pools::new(crate::state::pool_config()),
            hub: EventHub::default(),
            shutdown: CancellationToken::new(),
            limits: Limits::new(1, 1),
            sessions: Default::default(),
            chat: Default::default(),
            node_id: None,
            https: Https::Off,
            disk: Default::default(),
            upload: Default::default(),
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = state.shutdown.clone();
        let server = tokio::spawn(async move {
            axum::serve(listener, router(state))
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await
        });

        let (status, feed) = request(addr, "/api/events").await;
        assert_eq!(status, 200);
        assert_eq!(request(addr, "/api/events").await.0, 503);
        let (status, download) = request(addr, "/files/me/big.bin").await;
        assert_eq!(status, 200);
        assert_eq!(request(addr, "/files/me/big.bin").await.0, 503);
        // Metadata is never refused.
        assert_eq!(request(addr, "/api/ls/me/").await.0, 200);

        // Closing the first ones frees their slots (as soon as the server notices).
        drop(feed);
        drop(download);
        let freed = async {
            loop {
                let (a, _) = request(addr, "/files/me/big.bin").await;
                let (b, _) = request(addr, "/api/events").await;
                if a == 200 && b == 200 {
                    return;
                }
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), freed)
            .await
            .expect("slots were not freed");
        server.abort();
        let _ = server.await;
    }
}
