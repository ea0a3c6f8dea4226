//! [`FsHandle`]: the filesystem seen from outside its callbacks. The event followers
//! ([`crate::events`]) drop stale caches through it; the mount owner adds and hides nodes.

use std::sync::Arc;

use super::Shared;
use crate::nodes::NotAdded;
use meshfs_core::{Credentials, Pool};

/// A handle on the filesystem from outside its callbacks.
#[derive(Debug, Clone)]
pub struct FsHandle(pub(super) Arc<Shared>);

/// What a changed path made stale in the kernel.
#[derive(Debug, Default)]
pub struct Stale {
    /// The path's inode, if the kernel holds one.
    pub inode: Option<u64>,
    /// The path's parent inode and last component.
    pub entry: Option<(u64, String)>,
}

impl FsHandle {
    /// The shown nodes' indices.
    pub fn shown_nodes(&self) -> Vec<usize> {
        self.0.nodes.shown().into_iter().map(|(i, _)| i).collect()
    }

    /// Folder names of the shown nodes.
    pub fn shown_folders(&self) -> Vec<String> {
        self.0
            .nodes
            .shown()
            .into_iter()
            .map(|(_, n)| n.name.clone())
            .collect()
    }

    /// `host:port` of node `node`.
    pub fn addr(&self, node: usize) -> String {
        self.0.nodes.get(node).pool.addr().to_owned()
    }

    /// What connections to node `node` prove.
    pub fn credentials(&self, node: usize) -> Credentials {
        self.0.nodes.get(node).pool.credentials().clone()
    }

    /// Show a node (see [`crate::nodes::Nodes::add`]); returns its index and folder name.
    pub fn add_node(&self, name: &str, pool: Pool) -> Result<(usize, String), NotAdded> {
        let (node, folder) = self
            .0
            .nodes
            .add(name, pool, |i| self.0.inodes.add_node(i))?;
        // Whatever was cached under this folder may be another node's (same name, new address).
        self.forget_node(node);
        Ok((node, folder))
    }

    /// Hide the node at `addr` (see [`crate::nodes::Nodes::hide`]); returns its index and
    /// folder name.
    pub fn hide_node(&self, addr: &str) -> Option<(usize, String)> {
        self.0.nodes.hide(addr)
    }

    /// The event stream of `node` connected (`live`) or went down: from now on, answers are
    /// trusted for long only while it is up. Events may have been missed: everything cached
    /// is dropped.
    pub fn stream_changed(&self, node: usize, live: bool) {
        self.0.cache.set_live(node, live);
        self.forget_node(node);
    }

    /// Events of a node may have been missed: drop every cached attribute and listing (of all
    /// nodes: this is rare).
    pub fn forget_node(&self, node: usize) {
        self.0.cache.event(node);
        tracing::debug!(node = %self.0.nodes.get(node).name, "caches dropped");
        self.0.cache.attrs.clear();
        self.0.cache.dirs.clear();
        self.0.ahead.forget_all();
    }

    /// `path` on `node` was created, changed or deleted: drop what we cached about it and
    /// its folder, and say what the kernel should drop.
    pub fn path_changed(&self, node: usize, path: &str) -> Stale {
        let shared = &self.0;
        // First: an answer in flight now may predate this change (see `cache::Ticket`).
        shared.cache.event(node);
        let path = path.trim_matches('/');
        let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
        let parent_ino = shared.inodes.find(node, parent);
        let child = shared.inodes.find(node, path);
        for ino in child.iter().chain(parent_ino.iter()) {
            shared.cache.attrs.remove(ino);
            shared.cache.dirs.remove(ino);
        }
        shared.ahead.forget_path(node, path);
        Stale {
            inode: child,
            entry: parent_ino.map(|p| (p, name.to_owned())),
        }
    }
}
