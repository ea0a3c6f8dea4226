//! `AppState`: what every handler shares — the local share, the node directory, the
//! connection pools and the event feed.

use std::sync::Arc;

use meshfs_core::rate::{ClientKey, UploadLimits};
use meshfs_core::retention::DiskStatus;
use meshfs_core::{NodeId, PoolConfig, Pools, Share};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::chat::ChatSetting;
use crate::error::WebError;
use crate::feed::EventHub;
use crate::listener::{Conn, Https};
use crate::nodes::{NodeDirectory, NodeInfo};
use crate::session::{Grant, Sessions};
use crate::source::Source;

/// Shared by all handlers (cheap to clone).
#[derive(Debug, Clone)]
pub struct AppState {
    pub share: Share,
    /// The share's passwords (see `Source::Local`).
    pub access: meshfs_core::access::Access,
    pub nodes: NodeDirectory,
    pub pools: Pools,
    pub hub: EventHub,
    /// Cancelled on shutdown: endless responses (the event feed) end with it.
    pub shutdown: CancellationToken,
    /// Bounded load: file bodies and event feeds streaming at once.
    pub limits: Limits,
    /// Who logged in, with which passwords.
    pub sessions: Sessions,
    /// The LAN group chat (on when discovery is on).
    pub chat: ChatSetting,
    /// This node's ID, shown on the page to compare with `meshfs id --node`.
    pub node_id: Option<NodeId>,
    /// Which protocols the port speaks (the login form is offered over HTTPS only).
    pub https: Https,
    /// This node's disk, as its retention measures it: the page says when it is full.
    pub disk: DiskStatus,
    /// The node's upload limits: file and zip bodies count against them.
    pub upload: UploadLimits,
}

/// Most file responses streaming at once (each may hold a connection to a remote node).
pub const MAX_FILE_STREAMS: usize = 256;
/// Most event feeds open at once.
pub const MAX_FEEDS: usize = 128;

/// How the web reaches remote nodes: a file body holds its connection for as long as the
/// browser reads, so the per-node bound leaves room for every body at once plus metadata
/// requests beside them; otherwise meshfs-core's defaults (2 s connect, 15 s per wait).
pub fn pool_config() -> PoolConfig {
    PoolConfig {
        max_connections: MAX_FILE_STREAMS + 32,
        ..PoolConfig::default()
    }
}

/// Permits for long-lived responses; a request beyond them gets `503`.
#[derive(Debug, Clone)]
pub struct Limits {
    files: Arc<Semaphore>,
    feeds: Arc<Semaphore>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits::new(MAX_FILE_STREAMS, MAX_FEEDS)
    }
}

impl Limits {
    pub fn new(files: usize, feeds: usize) -> Limits {
        Limits {
            files: Arc::new(Semaphore::new(files)),
            feeds: Arc::new(Semaphore::new(feeds)),
        }
    }

    /// A slot for one file body, held until the body is dropped.
    pub fn file(&self) -> Result<OwnedSemaphorePermit, WebError> {
        self.files
            .clone()
            .try_acquire_owned()
            .map_err(|_| WebError::Busy("too many downloads at once"))
    }

    /// A slot for one event feed.
    pub fn feed(&self) -> Result<OwnedSemaphorePermit, WebError> {
        self.feeds
            .clone()
            .try_acquire_owned()
            .map_err(|_| WebError::Busy("too many event feeds open"))
    }
}

impl AppState {
    /// The node a URL names and where its files come from, for a request whose session
    /// holds `grant`: this node's files its keys unlock; a remote node through the session's
    /// authenticated connections when it logged in there, else the shared anonymous ones.
    pub fn node(&self, key: &str, grant: &Grant) -> Result<(NodeInfo, Source), WebError> {
        let node = self
            .nodes
            .find(key)
            .ok_or_else(|| WebError::NotFound(format!("no node named {key:?}")))?;
        let source = if node.local {
            Source::Local(self.share.clone(), self.access.clone(), grant.keys.clone())
        } else {
            let pool = grant.remote.get(&node.addr).cloned();
            Source::Remote(pool.unwrap_or_else(|| self.pools.get(&node.addr)))
        };
        Ok((node, source))
    }

    /// The upload limiter of a file or zip body sent to `conn` (by its IP address: browsers
    /// show no certificate). Served without connection info (tests), the node's limit alone.
    pub fn upload_limiter(&self, conn: Option<&Conn>) -> meshfs_core::rate::Limiter {
        let ip = conn.map_or(std::net::Ipv4Addr::UNSPECIFIED.into(), |c| c.addr.ip());
        self.upload.client(ClientKey::of(None, ip))
    }

    /// Where a node's files come from (see [`AppState::node`]).
    pub fn source(&self, key: &str, grant: &Grant) -> Result<Source, WebError> {
        self.node(key, grant).map(|(_, s)| s)
    }
}
