//! The FUSE filesystem: kernel requests in, node requests out.
//!
//! FUSE callbacks are synchronous and arrive on a few dispatch threads
//! ([`crate::direct::FUSE_THREADS`]), so anything that talks to a node is spawned on the tokio
//! runtime and replies from there: many requests (reads of several files, read-ahead chunks,
//! `stat`s) are in flight at once and a slow node never blocks the others. Answers known
//! locally (the root, fresh cache hits, bytes already fetched) reply inline, and so does a
//! random read while another dispatch thread is free ([`crate::direct`]).
//!
//! The mount is read-only by construction (`ro` mount option) and by answer: every writing
//! operation that could still reach us gets `EROFS`.
//!
//! - this file: the state shared by the callbacks and their tasks, and the cached `stat`/`ls`;
//! - [`attr`]: what the kernel is told about a folder or file (owner, mode, times);
//! - [`handles`]: open file and directory handles;
//! - [`listing`]: directory listings, and one filler for `readdir` and `readdirplus`;
//! - [`read`]: opens and reads, served from read-ahead chunks or straight from the node;
//! - [`page_cache`]: which opens go past the kernel's page cache (`FOPEN_DIRECT_IO`);
//! - [`fs_handle`]: [`FsHandle`], the filesystem seen from outside its callbacks;
//! - [`dispatch`]: the `fuser::Filesystem` callbacks themselves.

mod attr;
mod dispatch;
mod fs_handle;
mod handles;
mod listing;
mod page_cache;
mod read;

use std::ffi::OsStr;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use fuser::Errno;
use meshfs_core::Entry;

use crate::cache::{MetaCache, Ticket};
use crate::direct::Lanes;
use crate::error::errno;
use crate::folder_ahead::FolderAhead;
use crate::inodes::InodeTable;
use crate::nodes::{Node, Nodes};
use crate::readahead::Budget;
use crate::requests;

pub use fs_handle::{FsHandle, Stale};

/// Tunables of the filesystem.
#[derive(Debug, Clone, Copy)]
pub struct FsConfig {
    /// How long the kernel and our cache trust attributes and listings.
    pub ttl: Duration,
    /// How long our cache trusts an answer while the node's events would have told us of a
    /// change (see [`crate::cache`]).
    pub events_ttl: Duration,
    /// Largest read-ahead window per open file.
    pub max_readahead: u64,
    /// Most read-ahead chunks (1 MiB each) held by the whole mount at once.
    pub readahead_budget: usize,
    /// Files at least this large are read past the kernel's page cache (see
    /// [`page_cache`]); `u64::MAX`: none.
    pub direct_io_min: u64,
}

/// State shared by the dispatch threads and the tasks they spawn.
#[derive(Debug)]
struct Shared {
    nodes: Nodes,
    inodes: InodeTable,
    cache: MetaCache,
    config: FsConfig,
    attrs: attr::Attrs,
    handles: handles::Handles,
    page_cache: page_cache::PageCache,
    budget: Arc<Budget>,
    ahead: FolderAhead,
}

/// The meshfs FUSE filesystem.
#[derive(Debug)]
pub struct MeshFs {
    shared: Arc<Shared>,
    rt: tokio::runtime::Handle,
    /// Where a FUSE thread answers a random read itself (see [`crate::direct`]); here, not in
    /// `Shared`, so their runtimes drop with the filesystem on the session's thread.
    lanes: Lanes,
    /// Dropped with the filesystem, which tells the mount owner the session ended.
    _alive: tokio::sync::oneshot::Sender<()>,
}

impl MeshFs {
    pub fn new(
        nodes: Vec<Node>,
        config: FsConfig,
        rt: tokio::runtime::Handle,
        alive: tokio::sync::oneshot::Sender<()>,
    ) -> MeshFs {
        let budget = Budget::new(config.readahead_budget);
        let shared = Shared {
            inodes: InodeTable::new(),
            nodes: Nodes::default(),
            cache: MetaCache::new(config.ttl, config.events_ttl),
            config,
            attrs: attr::Attrs::now(),
            handles: handles::Handles::default(),
            page_cache: page_cache::PageCache::new(config.direct_io_min),
            budget: budget.clone(),
            ahead: FolderAhead::new(budget),
        };
        let fs = MeshFs {
            shared: Arc::new(shared),
            rt,
            lanes: Lanes::default(),
            _alive: alive,
        };
        for node in nodes {
            let _ = fs.handle().add_node(&node.name, node.pool);
        }
        fs
    }

    /// A handle on the filesystem, for code outside the FUSE callbacks.
    pub fn handle(&self) -> FsHandle {
        FsHandle(self.shared.clone())
    }

    fn spawn(&self, f: impl Future<Output = ()> + Send + 'static) {
        self.rt.spawn(f);
    }
}

impl Shared {
    fn ttl(&self) -> Duration {
        self.config.ttl
    }

    /// Attributes of `path` on `node` (inode `ino`), from the cache when fresh.
    async fn stat(&self, ino: u64, node: usize, path: &str) -> Result<Entry, Errno> {
        self.stat_or_unreachable(ino, node, path)
            .await
            .map_err(|(e, _)| e)
    }

    /// [`Shared::stat`] for a file that may be open: while its node cannot be reached (down,
    /// restarting), an open file keeps the attributes it was last seen with, so `tail -f` or
    /// a player polling `fstat` waits for the node instead of failing, and carries on when
    /// the node is back. A node that answers (even "no such file"), or one that is not the
    /// node pinned for the address (another ID), is believed at once.
    async fn attributes(&self, ino: u64, node: usize, path: &str) -> Result<Entry, Errno> {
        match self.stat_or_unreachable(ino, node, path).await {
            Ok(e) => Ok(e),
            Err((e, true)) => match self.handles.open_inode(ino) {
                Some(file) => {
                    tracing::debug!(path, "node unreachable: an open file keeps its attributes");
                    Ok(file.last_seen())
                }
                None => Err(e),
            },
            Err((e, false)) => Err(e),
        }
    }

    /// The node's `stat` (or the fresh cached one); a failure says whether the node was
    /// unreachable (rather than answering an error). Every answer is also what the open
    /// handles of the inode last saw.
    async fn stat_or_unreachable(
        &self,
        ino: u64,
        node: usize,
        path: &str,
    ) -> Result<Entry, (Errno, bool)> {
        if let Some(e) = self.cache.attrs.get(&ino) {
            return Ok(e);
        }
        let ticket = self.cache.ticket(node);
        let node = self.nodes.get(node);
        match requests::stat(&node.pool, path).await {
            Ok(e) => {
                self.remember(ino, &e, &ticket);
                Ok(e)
            }
            Err(err) => {
                self.cache.attrs.remove(&ino);
                tracing::debug!(node = %node.name, path, error = %err, "stat failed");
                Err((errno(&err, Errno::EIO), err.is_connection()))
            }
        }
    }

    /// What a node answered about inode `ino` (asked under `ticket`): cached, and what its
    /// open handles last saw (their end of file, and `fstat` while the node is away).
    fn remember(&self, ino: u64, e: &Entry, ticket: &Ticket) {
        self.cache
            .attrs
            .insert_trusted(ino, e.clone(), self.cache.trust(ticket));
        if let Some(file) = self.handles.open_inode(ino) {
            file.saw(e);
        }
    }

    /// The listing of directory `path` on `node` (inode `ino`), from the cache when fresh.
    async fn list(
        &self,
        ino: u64,
        node: usize,
        path: &str,
    ) -> Result<(Arc<Vec<Entry>>, Ticket), Errno> {
        if let Some(l) = self.cache.dirs.get(&ino) {
            return Ok(l);
        }
        let ticket = self.cache.ticket(node);
        let node = self.nodes.get(node);
        match requests::ls(&node.pool, path).await {
            Ok(entries) => {
                let listed = (Arc::new(entries), ticket);
                let trust = self.cache.trust(&ticket);
                self.cache.dirs.insert_trusted(ino, listed.clone(), trust);
                Ok(listed)
            }
            Err(err) => {
                tracing::debug!(node = %node.name, path, error = %err, "ls failed");
                Err(errno(&err, Errno::ENOTDIR))
            }
        }
    }

    /// The kernel dropped `n` lookups of `ino`: once it holds none, forget all about it.
    fn forget(&self, ino: u64, n: u64) {
        if self.inodes.forget(ino, n) {
            self.handles.forget_inode(ino);
            self.page_cache.forget(ino);
            self.cache.attrs.remove(&ino);
            self.cache.dirs.remove(&ino);
        }
    }
}

/// A name the protocol can carry as one path component (no separators, no line breaks).
fn component(name: &OsStr) -> Option<&str> {
    let s = name.to_str()?;
    let bad = s.is_empty() || s == "." || s == ".." || s.contains(['/', '\n', '\r', '\0']);
    (!bad).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_components_reach_the_protocol() {
        assert_eq!(component(OsStr::new("clip.mp4")), Some("clip.mp4"));
        assert_eq!(component(OsStr::new("with space")), Some("with space"));
        for bad in ["", ".", "..", "a/b", "x\nstat /etc", "cr\r", "nul\0"] {
            assert_eq!(component(OsStr::new(bad)), None, "{bad:?}");
        }
        use std::os::unix::ffi::OsStrExt;
        assert_eq!(component(OsStr::from_bytes(b"\xff")), None, "not UTF-8");
    }
}
