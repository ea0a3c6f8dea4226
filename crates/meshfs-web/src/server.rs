//! `WebServer`: the routes, bound to a socket and served until shutdown.

use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;
use meshfs_core::Share;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::WebError;
use crate::events::{self, EventHub};
use crate::nodes::NodeDirectory;
use crate::pool::Pools;
use crate::state::AppState;
use crate::{api, assets, files};

/// Every route of the UI (see the crate docs for the API).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(assets::index))
        .route("/app.js", get(assets::app_js))
        .route("/style.css", get(assets::style))
        .route("/favicon.svg", get(assets::favicon))
        .route("/favicon.ico", get(assets::favicon))
        .route("/api/nodes", get(api::nodes))
        .route("/api/events", get(events::feed))
        .route("/api/ls/{*rest}", get(api::ls))
        .route("/api/stat/{*rest}", get(api::stat))
        // `get` also answers HEAD; the handler then sends headers only.
        .route("/files/{*rest}", get(files::serve))
        .fallback(|| async { WebError::NotFound("no such page".into()) })
        .with_state(state)
}

/// A bound, not yet running, web UI.
#[derive(Debug)]
pub struct WebServer {
    listener: TcpListener,
    share: Share,
    nodes: NodeDirectory,
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
            nodes,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serve until `shutdown`; the node watchers run on `tracker`.
    pub async fn run(self, shutdown: CancellationToken, tracker: TaskTracker) {
        let state = AppState {
            share: self.share,
            nodes: self.nodes,
            pools: Pools::default(),
            hub: EventHub::default(),
            shutdown: shutdown.clone(),
        };
        events::spawn_watchers(state.clone(), tracker);
        let app = router(state);
        if let Err(e) = axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
        {
            tracing::error!(error = %e, "web UI stopped");
        }
    }
}
