//! Directory listings: the root's (one folder per shown node) and a node folder's (one `ls`),
//! and the one loop that writes them into the kernel's `readdir` and `readdirplus` replies.
//!
//! The two replies differ in what an entry carries: `readdirplus` hands out attributes and a
//! lookup per entry (so `ls -l` costs one `ls`, not a `stat` per file), plain `readdir` only a
//! name, a type and a placeholder inode number. [`DirReply`] is that difference.

use std::sync::Arc;
use std::time::Duration;

use fuser::{Errno, FileAttr, Generation, ReplyDirectory, ReplyDirectoryPlus};
use meshfs_core::Entry;

use super::Shared;
use crate::cache::Ticket;
use crate::inodes::{self, Inode, InodeTable, ROOT};

/// A directory listing held by an open directory handle, so that a `readdir` continued at an
/// offset sees the same entries as its start.
#[derive(Debug)]
pub(super) struct Listing {
    /// `None` for the mount root (whose entries are the nodes).
    node: Option<usize>,
    path: String,
    entries: Arc<Vec<Entry>>,
    /// What the entries were asked under (`None` for the root): how far to trust them.
    ticket: Option<Ticket>,
    /// For the mount root: the folder inode of each entry's node.
    node_inos: Vec<u64>,
}

/// A kernel reply a listing is written into.
pub(super) trait DirReply: Send + 'static {
    /// Entries count as lookups (so they need real inodes, and their attributes are cached).
    const PLUS: bool;
    /// Add one entry; true when the reply is full (the entry was not added).
    fn push(&mut self, offset: u64, name: &str, attr: &FileAttr, ttl: &Duration) -> bool;
    fn ok(self);
    fn error(self, e: Errno);
}

impl DirReply for ReplyDirectory {
    const PLUS: bool = false;
    fn push(&mut self, offset: u64, name: &str, attr: &FileAttr, _ttl: &Duration) -> bool {
        self.add(attr.ino, offset, attr.kind, name)
    }
    fn ok(self) {
        ReplyDirectory::ok(self)
    }
    fn error(self, e: Errno) {
        ReplyDirectory::error(self, e)
    }
}

impl DirReply for ReplyDirectoryPlus {
    const PLUS: bool = true;
    fn push(&mut self, offset: u64, name: &str, attr: &FileAttr, ttl: &Duration) -> bool {
        self.add(attr.ino, offset, name, ttl, attr, Generation(0))
    }
    fn ok(self) {
        ReplyDirectoryPlus::ok(self)
    }
    fn error(self, e: Errno) {
        ReplyDirectoryPlus::error(self, e)
    }
}

impl Shared {
    /// The listing of folder `ino`: the shown nodes for the root, else the node's `ls`.
    pub(super) async fn listing(&self, ino: u64) -> Result<Arc<Listing>, Errno> {
        match self.inodes.get(ino) {
            None => Err(Errno::ENOENT),
            Some(Inode::Root) => {
                let shown = self.nodes.shown();
                Ok(Arc::new(Listing {
                    node: None,
                    ticket: None,
                    path: String::new(),
                    entries: Arc::new(
                        shown
                            .iter()
                            .map(|(_, n)| self.attrs.node_entry(&n.name))
                            .collect(),
                    ),
                    node_inos: shown
                        .iter()
                        .map(|(i, _)| InodeTable::node_root(*i))
                        .collect(),
                }))
            }
            Some(Inode::Remote { node, path }) => {
                let (entries, ticket) = self.list(ino, node, &path).await?;
                Ok(Arc::new(Listing {
                    node: Some(node),
                    ticket: Some(ticket),
                    path,
                    entries,
                    node_inos: Vec::new(),
                }))
            }
        }
    }

    /// Fill a listing reply from `offset` (0: `.`, 1: `..`, then the entries).
    pub(super) fn fill_dir<R: DirReply>(
        &self,
        dir_ino: u64,
        listing: &Listing,
        offset: u64,
        reply: &mut R,
    ) {
        let ttl = self.ttl();
        // The kernel takes no lookup for `.` and `..`.
        let dots = [(dir_ino, "."), (ROOT, "..")];
        for (i, (ino, name)) in dots.iter().enumerate().skip(offset as usize) {
            if reply.push(i as u64 + 1, name, &self.attrs.dir(*ino), &ttl) {
                return;
            }
        }
        let skip = (offset as usize).saturating_sub(2);
        for (i, e) in listing.entries.iter().enumerate().skip(skip) {
            let (attr, counted) = match listing.node {
                None => (self.attrs.dir(listing.node_inos[i]), false),
                Some(node) if R::PLUS => {
                    let ino = self
                        .inodes
                        .lookup(node, &inodes::join(&listing.path, &e.name));
                    match &listing.ticket {
                        Some(ticket) => self.remember(ino, e, ticket),
                        None => self.cache.attrs.insert(ino, e.clone()),
                    }
                    (self.attrs.of(ino, e), true)
                }
                // Plain readdir hands out no lookups: a placeholder number is fine for d_ino.
                Some(_) => (self.attrs.of(u64::MAX - i as u64, e), false),
            };
            if reply.push(i as u64 + 3, &e.name, &attr, &ttl) {
                if counted {
                    self.forget(attr.ino.0, 1); // not sent: the kernel does not hold it
                }
                return;
            }
        }
    }

    /// Answer `readdir`/`readdirplus` on handle `fh` of folder `ino` from `offset`: a
    /// continued listing from the snapshot the handle holds, else a fresh listing (which the
    /// handle then holds).
    pub(super) fn readdir<R: DirReply>(
        self: &Arc<Self>,
        rt: &tokio::runtime::Handle,
        ino: u64,
        fh: u64,
        offset: u64,
        mut reply: R,
    ) {
        let held = self.handles.held_listing(fh);
        if let (Some(listing), true) = (held, offset > 0) {
            self.fill_dir(ino, &listing, offset, &mut reply);
            return reply.ok();
        }
        let shared = self.clone();
        rt.spawn(async move {
            match shared.listing(ino).await {
                Ok(listing) => {
                    shared.fill_dir(ino, &listing, offset, &mut reply);
                    shared.handles.hold_listing(fh, listing);
                    reply.ok();
                }
                Err(e) => reply.error(e),
            }
        });
    }
}
