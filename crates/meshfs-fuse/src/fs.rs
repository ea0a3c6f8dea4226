//! The FUSE filesystem: kernel requests in, node requests out.
//!
//! FUSE callbacks are synchronous and arrive on one dispatch thread, so anything that talks to
//! a node is spawned on the tokio runtime and replies from there: many requests (reads of
//! several files, read-ahead chunks, `stat`s) are in flight at once and a slow node never
//! blocks the others. Only answers known locally (the root, fresh cache hits) reply inline.
//!
//! The mount is read-only by construction (`ro` mount option) and by answer: every writing
//! operation that could still reach us gets `EROFS`.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, OpenAccMode, OpenFlags, RenameFlags, ReplyAttr, ReplyData,
    ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite,
    Request, TimeOrNow, WriteFlags,
};
use meshfs_core::proto::MAX_READ;
use meshfs_core::share::MAX_PATH_LEN;
use meshfs_core::{Entry, Kind};

use crate::cache::MetaCache;
use crate::error::errno;
use crate::inodes::{self, Inode, InodeTable, ROOT};
use crate::nodes::{Node, Nodes, NotAdded};
use crate::pool::NodePool;
use crate::readahead::{Budget, CHUNK, Chunk, ReadAhead, Source};

/// Tunables of the filesystem.
#[derive(Debug, Clone, Copy)]
pub struct FsConfig {
    /// How long the kernel and our cache trust attributes and listings.
    pub ttl: Duration,
    /// Largest read-ahead window per open file.
    pub max_readahead: u64,
    /// Most read-ahead chunks (1 MiB each) held by the whole mount at once.
    pub readahead_budget: usize,
}

/// An open file: where it lives and how it is being read.
#[derive(Debug)]
struct OpenFile {
    /// The node as it was at `open`: if its folder is later given to the same name at another
    /// address (see [`Nodes::add`]), this file keeps reading from where it was opened.
    node: Arc<Node>,
    path: String,
    /// Largest size seen (at open, or by reads): read-ahead stops there.
    size: AtomicU64,
    readahead: Mutex<ReadAhead>,
}

/// A directory listing held by an open directory handle, so that a `readdir` continued at an
/// offset sees the same entries as its start.
#[derive(Debug)]
struct Listing {
    /// `None` for the mount root (whose entries are the nodes).
    node: Option<usize>,
    path: String,
    entries: Arc<Vec<Entry>>,
    /// For the mount root: the folder inode of each entry's node.
    node_inos: Vec<u64>,
}

/// State shared by the dispatch thread and the tasks it spawns.
#[derive(Debug)]
struct Shared {
    nodes: Nodes,
    inodes: InodeTable,
    cache: MetaCache,
    config: FsConfig,
    uid: u32,
    gid: u32,
    mounted_at: SystemTime,
    files: Mutex<HashMap<u64, Arc<OpenFile>>>,
    dirs: Mutex<HashMap<u64, Option<Arc<Listing>>>>,
    /// `(size, mtime)` at the last open of each inode: unchanged means the kernel's page cache
    /// of the file is still good (`FOPEN_KEEP_CACHE`).
    opened: Mutex<HashMap<u64, (u64, i64)>>,
    next_fh: AtomicU64,
    budget: Arc<Budget>,
}

/// The meshfs FUSE filesystem.
#[derive(Debug)]
pub struct MeshFs {
    shared: Arc<Shared>,
    rt: tokio::runtime::Handle,
    /// Dropped with the filesystem, which tells the mount owner the session ended.
    _alive: tokio::sync::oneshot::Sender<()>,
}

/// A handle on the filesystem from outside its callbacks: the event followers
/// ([`crate::events`]) drop stale caches through it, the mount owner adds and hides nodes.
#[derive(Debug, Clone)]
pub struct FsHandle(Arc<Shared>);

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

    /// Show a node (see [`Nodes::add`]); returns its index and folder name.
    pub fn add_node(&self, name: &str, pool: NodePool) -> Result<(usize, String), NotAdded> {
        let (node, folder) = self
            .0
            .nodes
            .add(name, pool, |i| self.0.inodes.add_node(i))?;
        // Whatever was cached under this folder may be another node's (same name, new address).
        self.forget_node(node);
        Ok((node, folder))
    }

    /// Hide the node at `addr` (see [`Nodes::hide`]); returns its index and folder name.
    pub fn hide_node(&self, addr: &str) -> Option<(usize, String)> {
        self.0.nodes.hide(addr)
    }

    /// Events of a node may have been missed: drop every cached attribute and listing (of all
    /// nodes: the caches are short-lived anyway, and this is rare).
    pub fn forget_node(&self, node: usize) {
        tracing::debug!(node = %self.0.nodes.get(node).name, "caches dropped");
        self.0.cache.attrs.clear();
        self.0.cache.dirs.clear();
    }

    /// `path` on `node` was created, changed or deleted: drop what we cached about it and
    /// its folder, and say what the kernel should drop.
    pub fn path_changed(&self, node: usize, path: &str) -> Stale {
        let shared = &self.0;
        let path = path.trim_matches('/');
        let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
        let parent_ino = shared.inodes.find(node, parent);
        let child = shared.inodes.find(node, path);
        for ino in child.iter().chain(parent_ino.iter()) {
            shared.cache.attrs.remove(ino);
            shared.cache.dirs.remove(ino);
        }
        Stale {
            inode: child,
            entry: parent_ino.map(|p| (p, name.to_owned())),
        }
    }
}

/// A name the protocol can carry as one path component (no separators, no line breaks).
fn component(name: &OsStr) -> Option<&str> {
    let s = name.to_str()?;
    let bad = s.is_empty() || s == "." || s == ".." || s.contains(['/', '\n', '\r', '\0']);
    (!bad).then_some(s)
}

impl MeshFs {
    pub fn new(
        nodes: Vec<Node>,
        config: FsConfig,
        rt: tokio::runtime::Handle,
        alive: tokio::sync::oneshot::Sender<()>,
    ) -> MeshFs {
        // SAFETY: plain getters without failure modes.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let shared = Shared {
            inodes: InodeTable::new(),
            nodes: Nodes::default(),
            cache: MetaCache::new(config.ttl),
            config,
            uid,
            gid,
            mounted_at: SystemTime::now(),
            files: Mutex::default(),
            dirs: Mutex::default(),
            opened: Mutex::default(),
            next_fh: AtomicU64::new(1),
            budget: Budget::new(config.readahead_budget),
        };
        let fs = MeshFs {
            shared: Arc::new(shared),
            rt,
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

    fn dir_attr(&self, ino: u64) -> FileAttr {
        FileAttr {
            ino: INodeNo(ino),
            size: 0,
            blocks: 0,
            atime: self.mounted_at,
            mtime: self.mounted_at,
            ctime: self.mounted_at,
            crtime: self.mounted_at,
            kind: FileType::Directory,
            perm: 0o555,
            nlink: 2,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: CHUNK as u32,
            flags: 0,
        }
    }

    fn attr(&self, ino: u64, e: &Entry) -> FileAttr {
        let mtime = e.modified();
        let (kind, nlink) = match e.kind {
            Kind::File => (FileType::RegularFile, 1),
            Kind::Dir => (FileType::Directory, 2),
        };
        FileAttr {
            ino: INodeNo(ino),
            size: e.size,
            blocks: e.size.div_ceil(512),
            atime: mtime,
            mtime,
            ctime: mtime,
            crtime: mtime,
            kind,
            // Read-only mount: show the node's read and execute bits, never write.
            perm: (e.mode & 0o555) as u16,
            nlink,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            // A large block size makes `cp`, `cat` and players read in big requests.
            blksize: CHUNK as u32,
            flags: 0,
        }
    }

    /// The synthetic entry of a node folder in the root listing.
    fn node_entry(&self, node: &Node) -> Entry {
        let mtime_ns = self
            .mounted_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64);
        Entry {
            name: node.name.clone(),
            kind: Kind::Dir,
            size: 0,
            mtime_ns,
            mode: 0o555,
        }
    }

    /// Attributes of `path` on `node` (inode `ino`), from the cache when fresh.
    async fn stat(&self, ino: u64, node: usize, path: &str) -> Result<Entry, Errno> {
        if let Some(e) = self.cache.attrs.get(&ino) {
            return Ok(e);
        }
        let node = self.nodes.get(node);
        match node.pool.stat(path).await {
            Ok(e) => {
                self.cache.attrs.insert(ino, e.clone());
                Ok(e)
            }
            Err(err) => {
                self.cache.attrs.remove(&ino);
                tracing::debug!(node = %node.name, path, error = %err, "stat failed");
                Err(errno(&err, Errno::EIO))
            }
        }
    }

    /// The listing of directory `path` on `node` (inode `ino`), from the cache when fresh.
    async fn list(&self, ino: u64, node: usize, path: &str) -> Result<Arc<Vec<Entry>>, Errno> {
        if let Some(l) = self.cache.dirs.get(&ino) {
            return Ok(l);
        }
        let node = self.nodes.get(node);
        match node.pool.ls(path).await {
            Ok(entries) => {
                let entries = Arc::new(entries);
                self.cache.dirs.insert(ino, entries.clone());
                Ok(entries)
            }
            Err(err) => {
                tracing::debug!(node = %node.name, path, error = %err, "ls failed");
                Err(errno(&err, Errno::ENOTDIR))
            }
        }
    }

    /// The listing an open directory handle already read (so later `readdir` calls with an
    /// offset continue the same snapshot instead of a fresh, possibly shifted, one).
    fn held_listing(&self, fh: u64) -> Option<Arc<Listing>> {
        self.dirs
            .lock()
            .expect("dirs lock")
            .get(&fh)
            .cloned()
            .flatten()
    }

    /// Remember `listing` for the open directory handle `fh` (if it is still open).
    fn hold_listing(&self, fh: u64, listing: Arc<Listing>) {
        if let Some(slot) = self.dirs.lock().expect("dirs lock").get_mut(&fh) {
            *slot = Some(listing);
        }
    }

    async fn listing(&self, ino: u64) -> Result<Arc<Listing>, Errno> {
        match self.inodes.get(ino) {
            None => Err(Errno::ENOENT),
            Some(Inode::Root) => {
                let shown = self.nodes.shown();
                Ok(Arc::new(Listing {
                    node: None,
                    path: String::new(),
                    entries: Arc::new(shown.iter().map(|(_, n)| self.node_entry(n)).collect()),
                    node_inos: shown
                        .iter()
                        .map(|(i, _)| InodeTable::node_root(*i))
                        .collect(),
                }))
            }
            Some(Inode::Remote { node, path }) => {
                let entries = self.list(ino, node, &path).await?;
                Ok(Arc::new(Listing {
                    node: Some(node),
                    path,
                    entries,
                    node_inos: Vec::new(),
                }))
            }
        }
    }

    /// Fill a `readdir` reply from `offset` (0: `.`, 1: `..`, then the entries).
    fn fill_dir(&self, dir_ino: u64, listing: &Listing, offset: u64, reply: &mut ReplyDirectory) {
        let dots = [(dir_ino, "."), (ROOT, "..")];
        for (i, (ino, name)) in dots.iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(*ino), i as u64 + 1, FileType::Directory, name) {
                return;
            }
        }
        let skip = (offset as usize).saturating_sub(2);
        for (i, e) in listing.entries.iter().enumerate().skip(skip) {
            let kind = match e.kind {
                Kind::File => FileType::RegularFile,
                Kind::Dir => FileType::Directory,
            };
            // Plain readdir does not hand out lookups: a placeholder number is fine for d_ino.
            let ino = match listing.node {
                None => listing.node_inos[i],
                Some(_) => u64::MAX - i as u64,
            };
            if reply.add(INodeNo(ino), i as u64 + 3, kind, &e.name) {
                return;
            }
        }
    }

    /// Fill a `readdirplus` reply: entries with attributes, each counting as a lookup.
    fn fill_dir_plus(
        &self,
        dir_ino: u64,
        listing: &Listing,
        offset: u64,
        reply: &mut ReplyDirectoryPlus,
    ) {
        let ttl = self.ttl();
        let dots = [(dir_ino, "."), (ROOT, "..")];
        for (i, (ino, name)) in dots.iter().enumerate().skip(offset as usize) {
            // The kernel takes no lookup for `.` and `..`.
            if reply.add(
                INodeNo(*ino),
                i as u64 + 1,
                name,
                &ttl,
                &self.dir_attr(*ino),
                Generation(0),
            ) {
                return;
            }
        }
        let skip = (offset as usize).saturating_sub(2);
        for (i, e) in listing.entries.iter().enumerate().skip(skip) {
            let (ino, attr, counted) = match listing.node {
                None => {
                    let ino = listing.node_inos[i];
                    (ino, self.dir_attr(ino), false)
                }
                Some(node) => {
                    let ino = self
                        .inodes
                        .lookup(node, &inodes::join(&listing.path, &e.name));
                    self.cache.attrs.insert(ino, e.clone());
                    (ino, self.attr(ino, e), true)
                }
            };
            if reply.add(
                INodeNo(ino),
                i as u64 + 3,
                &e.name,
                &ttl,
                &attr,
                Generation(0),
            ) {
                if counted {
                    self.forget(ino, 1); // not sent: the kernel does not hold it
                }
                return;
            }
        }
    }

    fn forget(&self, ino: u64, n: u64) {
        if self.inodes.forget(ino, n) {
            self.opened.lock().expect("opened lock").remove(&ino);
            self.cache.attrs.remove(&ino);
            self.cache.dirs.remove(&ino);
        }
    }

    /// Fetch one read-ahead chunk and hand it to whoever waits on it.
    async fn fetch_chunk(&self, file: &OpenFile, chunk: &Chunk) {
        let pool = &file.node.pool;
        let res = match pool.pread(&file.path, chunk.start(), CHUNK).await {
            Ok(data) => {
                file.size
                    .fetch_max(chunk.start() + data.len() as u64, Ordering::Relaxed);
                Ok(Arc::new(data))
            }
            Err(e) => {
                tracing::debug!(path = %file.path, offset = chunk.start(), error = %e, "read-ahead failed");
                Err(errno(&e, Errno::EISDIR))
            }
        };
        chunk.complete(res);
    }

    /// `[offset, offset + size)` read directly, fewer bytes only at end of file: a node may
    /// cap one reply (at 16 MiB, or less), and a short reply in the middle of a file would
    /// read as end of file to the kernel.
    async fn pread(&self, file: &OpenFile, offset: u64, size: u64) -> Result<Vec<u8>, Errno> {
        let pool = &file.node.pool;
        let mut out: Vec<u8> = Vec::new();
        while (out.len() as u64) < size {
            let pos = offset + out.len() as u64;
            let data = match pool.pread(&file.path, pos, size - out.len() as u64).await {
                Ok(data) => data,
                Err(e) => {
                    tracing::debug!(path = %file.path, offset = pos, error = %e, "read failed");
                    return Err(errno(&e, Errno::EISDIR));
                }
            };
            if data.is_empty() {
                break;
            }
            if out.is_empty() {
                out = data;
            } else {
                out.extend_from_slice(&data);
            }
        }
        file.size
            .fetch_max(offset + out.len() as u64, Ordering::Relaxed);
        Ok(out)
    }

    /// The bytes of `[offset, offset + size)` (fewer at end of file), from `source`.
    async fn serve(
        &self,
        file: &OpenFile,
        offset: u64,
        size: u64,
        source: Source,
    ) -> Result<Served, Errno> {
        let chunks = match source {
            Source::Direct => return self.pread(file, offset, size).await.map(Served::Owned),
            Source::Chunks(chunks) => chunks,
        };
        let end = offset + size;
        if let [chunk] = chunks.as_slice() {
            // The common case: one fetched chunk holds the whole read; reply from it, no copy.
            if let Ok(data) = chunk.wait().await {
                let from = (offset - chunk.start()) as usize;
                if from + size as usize <= data.len() {
                    return Ok(Served::Chunk(data, from..from + size as usize));
                }
            }
        }
        let mut out = Vec::with_capacity(size as usize);
        let mut pos = offset;
        let mut hit_end = false;
        for chunk in chunks {
            let data = match chunk.wait().await {
                Ok(data) => data,
                Err(e) => {
                    file.readahead
                        .lock()
                        .expect("readahead lock")
                        .discard(&chunk);
                    return Err(e);
                }
            };
            let from = (pos - chunk.start()) as usize;
            if from < data.len() {
                let take = ((end - pos) as usize).min(data.len() - from);
                out.extend_from_slice(&data[from..from + take]);
                pos += take as u64;
            }
            if (data.len() as u64) < CHUNK {
                hit_end = true;
                if pos < end {
                    // End of file when fetched; it may have grown since: never serve it again.
                    file.readahead
                        .lock()
                        .expect("readahead lock")
                        .discard(&chunk);
                }
                break;
            }
        }
        if hit_end && pos < end {
            // A growing file: ask for what lies past the old end.
            out.extend_from_slice(&self.pread(file, pos, end - pos).await?);
        }
        Ok(Served::Owned(out))
    }
}

/// The bytes of a read reply.
enum Served {
    /// A range of a fetched read-ahead chunk, replied without a copy.
    Chunk(Arc<Vec<u8>>, std::ops::Range<usize>),
    Owned(Vec<u8>),
}

impl Served {
    fn bytes(&self) -> &[u8] {
        match self {
            Served::Chunk(data, range) => &data[range.clone()],
            Served::Owned(data) => data,
        }
    }
}

const EROFS: Errno = Errno::EROFS;

impl Filesystem for MeshFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // 1 MiB requests: the kernel's largest read is max_pages, derived from max_write.
        let _ = config.set_max_write(CHUNK as u32);
        // The kernel's own read-ahead window: 4 MiB keeps several 1 MiB reads in flight behind
        // the one a reader waits for (+15% sequential here). fuser derives max_pages from
        // max(max_write, max_readahead), but the kernel caps it at 256 pages
        // (`fs.fuse.max_pages_limit`), so reads stay at 1 MiB; larger ones would still be
        // served, chunk by chunk.
        let _ = config.set_max_readahead(4 * CHUNK as u32);
        // Let many reads (ours are async) be queued in the kernel before it throttles.
        let _ = config.set_max_background(64);
        let _ = config.set_congestion_threshold(48);
        for cap in [
            // Size or mtime changed at getattr: drop the file's page cache (correct caching).
            InitFlags::FUSE_AUTO_INVAL_DATA,
            // Listings come with attributes: `ls -l` costs one `ls`, not one `stat` per entry.
            InitFlags::FUSE_DO_READDIRPLUS,
            InitFlags::FUSE_READDIRPLUS_AUTO,
            InitFlags::FUSE_PARALLEL_DIROPS,
        ] {
            if config.add_capabilities(cap).is_err() {
                tracing::debug!(?cap, "kernel lacks a FUSE capability");
            }
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let shared = &self.shared;
        let ttl = shared.ttl();
        let Some(name) = component(name) else {
            return reply.error(Errno::ENOENT);
        };
        match shared.inodes.get(parent.0) {
            None => reply.error(Errno::ENOENT),
            Some(Inode::Root) => match shared.nodes.find_shown(name) {
                Some(i) => {
                    let ino = InodeTable::node_root(i);
                    reply.entry(&ttl, &shared.dir_attr(ino), Generation(0));
                }
                None => reply.error(Errno::ENOENT),
            },
            Some(Inode::Remote { node, path }) => {
                let child = inodes::join(&path, name);
                if child.len() > MAX_PATH_LEN {
                    return reply.error(Errno::ENAMETOOLONG);
                }
                // A fresh listing of the parent answers without a round trip, even "no such file".
                if let Some(entries) = shared.cache.dirs.get(&parent.0) {
                    return match entries.iter().find(|e| e.name == name) {
                        Some(e) => {
                            let ino = shared.inodes.lookup(node, &child);
                            shared.cache.attrs.insert(ino, e.clone());
                            reply.entry(&ttl, &shared.attr(ino, e), Generation(0));
                        }
                        None => reply.error(Errno::ENOENT),
                    };
                }
                let shared = self.shared.clone();
                self.spawn(async move {
                    match shared.nodes.get(node).pool.stat(&child).await {
                        Ok(e) => {
                            let ino = shared.inodes.lookup(node, &child);
                            shared.cache.attrs.insert(ino, e.clone());
                            reply.entry(&ttl, &shared.attr(ino, &e), Generation(0));
                        }
                        // Code 7 here is a FIFO or device the node never serves: listings
                        // hide those, so a lookup does not find them either.
                        Err(err) => reply.error(errno(&err, Errno::ENOENT)),
                    }
                });
            }
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.shared.forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let ttl = self.shared.ttl();
        match self.shared.inodes.get(ino.0) {
            None => reply.error(Errno::ENOENT),
            Some(Inode::Root) => reply.attr(&ttl, &self.shared.dir_attr(ino.0)),
            Some(Inode::Remote { path, .. }) if path.is_empty() => {
                reply.attr(&ttl, &self.shared.dir_attr(ino.0))
            }
            Some(Inode::Remote { node, path }) => {
                let shared = self.shared.clone();
                self.spawn(async move {
                    match shared.stat(ino.0, node, &path).await {
                        Ok(e) => reply.attr(&ttl, &shared.attr(ino.0, &e)),
                        Err(e) => reply.error(e),
                    }
                });
            }
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.acc_mode() != OpenAccMode::O_RDONLY || flags.0 & libc::O_TRUNC != 0 {
            return reply.error(EROFS);
        }
        let (node, path) = match self.shared.inodes.get(ino.0) {
            None => return reply.error(Errno::ENOENT),
            Some(Inode::Root) => return reply.error(Errno::EISDIR),
            Some(Inode::Remote { path, .. }) if path.is_empty() => {
                return reply.error(Errno::EISDIR);
            }
            Some(Inode::Remote { node, path }) => (node, path),
        };
        let shared = self.shared.clone();
        self.spawn(async move {
            let e = match shared.stat(ino.0, node, &path).await {
                Ok(e) => e,
                Err(e) => return reply.error(e),
            };
            if e.kind == Kind::Dir {
                return reply.error(Errno::EISDIR);
            }
            let signature = (e.size, e.mtime_ns);
            let unchanged = shared
                .opened
                .lock()
                .expect("opened lock")
                .insert(ino.0, signature)
                == Some(signature);
            let fh = shared.next_fh.fetch_add(1, Ordering::Relaxed);
            let file = OpenFile {
                node: shared.nodes.get(node),
                path,
                size: AtomicU64::new(e.size),
                readahead: Mutex::new(ReadAhead::new(
                    shared.config.max_readahead,
                    shared.budget.clone(),
                )),
            };
            shared
                .files
                .lock()
                .expect("files lock")
                .insert(fh, Arc::new(file));
            let flags = if unchanged {
                FopenFlags::FOPEN_KEEP_CACHE
            } else {
                FopenFlags::empty()
            };
            reply.opened(FileHandle(fh), flags);
        });
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let Some(file) = self
            .shared
            .files
            .lock()
            .expect("files lock")
            .get(&fh.0)
            .cloned()
        else {
            return reply.error(Errno::EBADF);
        };
        let size = u64::from(size).min(MAX_READ);
        let known = file.size.load(Ordering::Relaxed);
        let plan = file
            .readahead
            .lock()
            .expect("readahead lock")
            .plan(offset, size, known);
        for chunk in plan.fetch {
            let (shared, file) = (self.shared.clone(), file.clone());
            self.spawn(async move { shared.fetch_chunk(&file, &chunk).await });
        }
        let shared = self.shared.clone();
        self.spawn(async move {
            match shared.serve(&file, offset, size, plan.source).await {
                Ok(data) => reply.data(data.bytes()),
                Err(e) => reply.error(e),
            }
        });
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.shared.files.lock().expect("files lock").remove(&fh.0);
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        if self.shared.inodes.get(ino.0).is_none() {
            return reply.error(Errno::ENOENT);
        }
        let fh = self.shared.next_fh.fetch_add(1, Ordering::Relaxed);
        self.shared.dirs.lock().expect("dirs lock").insert(fh, None);
        reply.opened(FileHandle(fh), FopenFlags::empty());
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let held = self.shared.held_listing(fh.0);
        if let (Some(listing), true) = (held, offset > 0) {
            self.shared.fill_dir(ino.0, &listing, offset, &mut reply);
            return reply.ok();
        }
        let shared = self.shared.clone();
        self.spawn(async move {
            match shared.listing(ino.0).await {
                Ok(listing) => {
                    shared.fill_dir(ino.0, &listing, offset, &mut reply);
                    shared.hold_listing(fh.0, listing);
                    reply.ok();
                }
                Err(e) => reply.error(e),
            }
        });
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let held = self.shared.held_listing(fh.0);
        if let (Some(listing), true) = (held, offset > 0) {
            self.shared
                .fill_dir_plus(ino.0, &listing, offset, &mut reply);
            return reply.ok();
        }
        let shared = self.shared.clone();
        self.spawn(async move {
            match shared.listing(ino.0).await {
                Ok(listing) => {
                    shared.fill_dir_plus(ino.0, &listing, offset, &mut reply);
                    shared.hold_listing(fh.0, listing);
                    reply.ok();
                }
                Err(e) => reply.error(e),
            }
        });
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.shared.dirs.lock().expect("dirs lock").remove(&fh.0);
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        reply.statfs(0, 0, 0, 0, 0, CHUNK as u32, 255, CHUNK as u32);
    }

    // Everything below would write: the mount is read-only.

    fn setattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        reply.error(EROFS);
    }

    fn mknod(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        reply.error(EROFS);
    }

    fn mkdir(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        reply.error(EROFS);
    }

    fn unlink(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(EROFS);
    }

    fn rmdir(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(EROFS);
    }

    fn symlink(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _link_name: &OsStr,
        _target: &Path,
        reply: ReplyEntry,
    ) {
        reply.error(EROFS);
    }

    fn rename(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _newparent: INodeNo,
        _newname: &OsStr,
        _flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        reply.error(EROFS);
    }

    fn link(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _newparent: INodeNo,
        _newname: &OsStr,
        reply: ReplyEntry,
    ) {
        reply.error(EROFS);
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        reply.error(EROFS);
    }

    fn create(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: fuser::ReplyCreate,
    ) {
        reply.error(EROFS);
    }

    fn setxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(EROFS);
    }

    fn removexattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(EROFS);
    }
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
