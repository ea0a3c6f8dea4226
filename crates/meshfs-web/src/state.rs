//! `AppState`: what every handler shares — the local share, the node directory, the
//! connection pools and the event feed.

use meshfs_core::Share;
use tokio_util::sync::CancellationToken;

use crate::error::WebError;
use crate::events::EventHub;
use crate::nodes::{NodeDirectory, NodeInfo};
use crate::pool::Pools;
use crate::source::Source;

/// Shared by all handlers (cheap to clone).
#[derive(Debug, Clone)]
pub struct AppState {
    pub share: Share,
    pub nodes: NodeDirectory,
    pub pools: Pools,
    pub hub: EventHub,
    /// Cancelled on shutdown: endless responses (the event feed) end with it.
    pub shutdown: CancellationToken,
}

impl AppState {
    /// The node a URL names and where its files come from.
    pub fn node(&self, key: &str) -> Result<(NodeInfo, Source), WebError> {
        let node = self
            .nodes
            .find(key)
            .ok_or_else(|| WebError::NotFound(format!("no node named {key:?}")))?;
        let source = if node.local {
            Source::Local(self.share.clone())
        } else {
            Source::Remote(self.pools.get(&node.addr))
        };
        Ok((node, source))
    }

    /// Where a node's files come from.
    pub fn source(&self, key: &str) -> Result<Source, WebError> {
        self.node(key).map(|(_, s)| s)
    }
}
