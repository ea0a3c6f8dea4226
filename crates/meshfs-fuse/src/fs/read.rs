//! Opens and reads: an open file, and the glue between the kernel's opens and reads and
//! [`crate::readahead`] and [`crate::folder_ahead`].
//!
//! An open of a small file starts fetching it whole (or takes it from what the folder
//! read-ahead fetched before the open), and may fetch the folder's next files ahead.
//! Each read asks the file's [`ReadAhead`] for a plan: chunks to start fetching now (each its
//! own task, so several are in flight), and where this read's bytes come from — fetched chunks,
//! or the node directly (random reads). A read that one chunk holds is replied from that chunk
//! without a copy.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use fuser::{Errno, FopenFlags, ReplyData};
use meshfs_core::proto::MAX_READ;
use meshfs_core::{ClientError, Entry, Kind, Pool};
use tokio::runtime::Handle;

use super::Shared;
use super::page_cache::ReadSizes;
use crate::cache::Trust;
use crate::direct::{Lanes, NodeLane};
use crate::error::errno;
use crate::inodes;
use crate::nodes::Node;
use crate::readahead::{CHUNK, Chunk, ReadAhead, Source};
use crate::requests;

/// An open file: where it lives and how it is being read.
#[derive(Debug)]
pub(super) struct OpenFile {
    /// Unique for the life of the mount (a lane holding the file open on the node names it so).
    pub(super) id: u64,
    /// The file's inode.
    pub(super) ino: u64,
    /// Opened past the kernel's page cache (`FOPEN_DIRECT_IO`, see [`super::page_cache`]).
    pub(super) direct: bool,
    /// The sizes of its reads, while `direct` (how it is opened next time depends on them).
    pub(super) sizes: ReadSizes,
    /// The node as it was at `open`: if its folder is later given to the same name at another
    /// address (see [`crate::nodes::Nodes::add`]), this file keeps reading from where it was
    /// opened.
    node: Arc<Node>,
    path: String,
    /// Largest size seen (at open, or by reads): read-ahead stops there.
    size: AtomicU64,
    /// The attributes the node last gave (at open, then at each `stat`): what `fstat`
    /// answers while the node cannot be reached.
    seen: Mutex<Entry>,
    readahead: Mutex<ReadAhead>,
}

impl OpenFile {
    /// `path` on `node` (inode `ino`), as `entry` described it at open.
    pub(super) fn new(
        shared: &Shared,
        ino: u64,
        node: Arc<Node>,
        path: String,
        entry: &Entry,
    ) -> OpenFile {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        OpenFile {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            ino,
            direct: shared.page_cache.direct(ino, entry.size),
            sizes: ReadSizes::default(),
            node,
            path,
            size: AtomicU64::new(entry.size),
            seen: Mutex::new(entry.clone()),
            readahead: Mutex::new(ReadAhead::new(
                shared.config.max_readahead,
                shared.budget.clone(),
            )),
        }
    }

    /// One read of at most `size` bytes at `offset` (fewer at end of file, or where the node
    /// caps a reply), through `via`.
    async fn pread(
        &self,
        via: &mut Via<'_>,
        offset: u64,
        size: u64,
    ) -> Result<Vec<u8>, ClientError> {
        match via {
            Via::Pool(pool) => requests::pread(pool, &self.path, offset, size).await,
            Via::Lane(lane) => lane.read(self.id, &self.path, offset, size).await,
        }
    }

    /// The node described the file as `entry`.
    pub(super) fn saw(&self, entry: &Entry) {
        self.size.fetch_max(entry.size, Ordering::Relaxed);
        *self.seen.lock().expect("seen lock") = entry.clone();
    }

    /// A reply that stopped short at `end` is the end of the file, unless the node said the
    /// file is longer (it grew since; or the node capped the reply): then the rest is asked.
    fn ends_at(&self, end: u64) -> bool {
        end >= self.size.load(Ordering::Relaxed)
    }

    /// What the node last said of the file, at least as long as what was read of it.
    pub(super) fn last_seen(&self) -> Entry {
        let mut e = self.seen.lock().expect("seen lock").clone();
        e.size = e.size.max(self.size.load(Ordering::Relaxed));
        e
    }

    /// The bytes of `[offset, offset + size)` if one chunk already fetched holds them all,
    /// or holds all there is up to the end of the file.
    fn served_now(&self, offset: u64, size: u64, source: &Source) -> Option<Served> {
        let Source::Chunks(chunks) = source else {
            return None;
        };
        let [chunk] = chunks.as_slice() else {
            return None;
        };
        let data = chunk.fetched()?;
        let from = (offset - chunk.start()) as usize;
        let to = from + size as usize;
        if to <= data.len() {
            return Some(Served::Chunk(data, from..to));
        }
        let end = chunk.start() + data.len() as u64;
        if from > data.len() || (data.len() as u64) == CHUNK || !self.ends_at(end) {
            return None; // past a chunk's end, or a file that has grown: ask the node
        }
        // End of file when fetched, and still the end as far as we know: a short read, as
        // `Shared::serve` would give; the chunk is not served again (the file may grow).
        self.discard(chunk);
        let to = data.len();
        Some(Served::Chunk(data, from..to))
    }

    fn discard(&self, chunk: &Arc<Chunk>) {
        self.readahead
            .lock()
            .expect("readahead lock")
            .discard(chunk);
    }
}

impl Shared {
    /// Open `path` on `node` (inode `ino`), which the node or the cache describes as `e`: the
    /// new handle and its flags. Spawns its fetches on `rt` (this may run on the dispatch
    /// thread, outside the runtime).
    pub(super) fn open_file(
        self: &Arc<Self>,
        rt: &Handle,
        ino: u64,
        node: usize,
        path: String,
        e: &Entry,
    ) -> Result<(u64, FopenFlags), Errno> {
        if e.kind == Kind::Dir {
            return Err(Errno::EISDIR);
        }
        let unchanged = self.handles.reopened_unchanged(ino, (e.size, e.mtime_ns));
        let file = Arc::new(OpenFile::new(self, ino, self.nodes.get(node), path, e));
        // Nothing to flush on a read-only mount: `close` then costs no request.
        let mut flags = FopenFlags::FOPEN_NOFLUSH;
        if file.direct {
            flags |= FopenFlags::FOPEN_DIRECT_IO;
        }
        if unchanged {
            // The kernel's page cache of the file is still good.
            flags |= FopenFlags::FOPEN_KEEP_CACHE;
        } else {
            match self.ahead.take(node, &file.path, e) {
                Some(chunk) => file
                    .readahead
                    .lock()
                    .expect("readahead lock")
                    .adopt_first(chunk),
                None => self.prefetch_at_open(rt, &file),
            }
            self.fetch_folder_ahead(rt, node, &file.path);
        }
        Ok((self.handles.open_file(file), flags))
    }

    /// `path` on `node` is being opened: fetch the next files of its folder ahead if the
    /// reader goes through the folder in order (see [`crate::folder_ahead`]).
    fn fetch_folder_ahead(&self, rt: &Handle, node: usize, path: &str) {
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        let fresh = self
            .inodes
            .find(node, dir)
            .and_then(|dir_ino| self.cache.dirs.get(&dir_ino))
            .map(|(listing, _)| listing);
        // What is fetched now is trusted as long as any answer the node gives now.
        let trust = match self.cache.trust(&self.cache.ticket(node)) {
            Trust::Ttl => self.config.ttl,
            Trust::Events => self.config.events_ttl,
        };
        // A file opened before and unchanged since is in the kernel's page cache already.
        let cached = |path: &str, e: &Entry| {
            self.inodes
                .find(node, path)
                .is_some_and(|ino| self.handles.opened_as(ino, (e.size, e.mtime_ns)))
        };
        let (listing, fetches) = self.ahead.opened(node, dir, name, fresh, trust, cached);
        if fetches.is_empty() {
            return;
        }
        // One task and one connection for the batch (see `folder_ahead`'s "Batches").
        let node = self.nodes.get(node);
        let paths: Vec<String> = fetches
            .iter()
            .map(|f| inodes::join(dir, &listing[f.index].name))
            .collect();
        rt.spawn(async move {
            match requests::pread_batch(&node.pool, paths.clone(), CHUNK).await {
                Ok(replies) => {
                    for ((fetch, path), res) in fetches.iter().zip(&paths).zip(replies) {
                        fetch.chunk.complete(fetched(path, 0, res));
                    }
                }
                Err(e) => {
                    tracing::debug!(files = paths.len(), error = %e, "folder read-ahead failed");
                    let err = errno(&e, Errno::EISDIR);
                    for fetch in &fetches {
                        fetch.chunk.complete(Err(err));
                    }
                }
            }
        });
    }

    /// Answer a read of `size` bytes at `offset` of `file`, starting whatever read-ahead the
    /// plan asks for.
    pub(super) fn read(
        self: &Arc<Self>,
        rt: &tokio::runtime::Handle,
        lanes: &Lanes,
        file: Arc<OpenFile>,
        offset: u64,
        size: u32,
        reply: ReplyData,
    ) {
        if file.direct {
            file.sizes.record(size);
        }
        let size = u64::from(size).min(MAX_READ);
        let known = file.size.load(Ordering::Relaxed);
        let plan = file
            .readahead
            .lock()
            .expect("readahead lock")
            .plan(offset, size, known);
        for chunk in plan.fetch {
            let (shared, file) = (self.clone(), file.clone());
            rt.spawn(async move { shared.fetch_chunk(&file, &chunk).await });
        }
        if let Some(served) = file.served_now(offset, size, &plan.source) {
            // Here already (a small file fetched at or before its open): reply on this
            // thread, without a hop to the runtime.
            return reply.data(served.bytes());
        }
        if matches!(plan.source, Source::Direct)
            && let Some(mut lane) = lanes.take()
        {
            // One request and nothing to wait on but its reply: answered on this thread.
            let read = lane.run_on(&file.node, |node| async {
                self.pread(&mut Via::Lane(node), &file, offset, size).await
            });
            // Free before the reply: the reader's next read may reach another FUSE thread
            // at once, and should find the lane free.
            drop(lane);
            match read {
                Ok(data) => return reply.data(&data),
                // The lane could not connect just now (refused, or held down since its own
                // last failure) while the node's pool may be connected again: that pool,
                // which every other request uses, decides.
                Err(e) if refused_at_once(&e) => {
                    tracing::debug!(path = %file.path, error = %e, "lane cannot connect: asking through the node's pool");
                }
                Err(e) => return reply.error(errno(&e, Errno::EISDIR)),
            }
        }
        let shared = self.clone();
        rt.spawn(async move {
            match shared.serve(&file, offset, size, plan.source).await {
                Ok(data) => reply.data(data.bytes()),
                Err(e) => reply.error(e),
            }
        });
    }

    /// Start fetching a small file whole as it is opened (see [`ReadAhead::at_open`]).
    fn prefetch_at_open(self: &Arc<Self>, rt: &Handle, file: &Arc<OpenFile>) {
        let known = file.size.load(Ordering::Relaxed);
        let chunk = file
            .readahead
            .lock()
            .expect("readahead lock")
            .at_open(known);
        if let Some(chunk) = chunk {
            let (shared, file) = (self.clone(), file.clone());
            rt.spawn(async move { shared.fetch_chunk(&file, &chunk).await });
        }
    }

    /// Fetch one read-ahead chunk and hand it to whoever waits on it.
    async fn fetch_chunk(&self, file: &OpenFile, chunk: &Chunk) {
        let res = file
            .pread(&mut Via::Pool(&file.node.pool), chunk.start(), CHUNK)
            .await;
        if let Ok(data) = &res {
            file.size
                .fetch_max(chunk.start() + data.len() as u64, Ordering::Relaxed);
        }
        chunk.complete(fetched(&file.path, chunk.start(), res));
    }

    /// `[offset, offset + size)` read directly through `via`, fewer bytes only at end of file:
    /// a node may cap one reply (at 16 MiB, or less), and a short reply in the middle of a
    /// file would read as end of file to the kernel.
    async fn pread(
        &self,
        via: &mut Via<'_>,
        file: &OpenFile,
        offset: u64,
        size: u64,
    ) -> Result<Vec<u8>, ClientError> {
        let mut out: Vec<u8> = Vec::new();
        while (out.len() as u64) < size {
            let pos = offset + out.len() as u64;
            let data = match file.pread(via, pos, size - out.len() as u64).await {
                Ok(data) => data,
                // Past everything known of the file, an unreachable node is the end of it
                // for now (as `fstat` says: see `Shared::attributes`); `tail -f` waits.
                Err(e) if e.is_connection() && pos >= file.size.load(Ordering::Relaxed) => {
                    tracing::debug!(path = %file.path, offset = pos, error = %e, "node unreachable at the end of an open file");
                    break;
                }
                Err(e) => {
                    tracing::debug!(path = %file.path, offset = pos, error = %e, "read failed");
                    return Err(e);
                }
            };
            if data.is_empty() {
                break;
            }
            let short = (data.len() as u64) < size - out.len() as u64;
            if out.is_empty() {
                out = data;
            } else {
                out.extend_from_slice(&data);
            }
            if short && file.ends_at(offset + out.len() as u64) {
                break; // no second request only to hear "end of file"
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
            Source::Direct => {
                let via = &mut Via::Pool(&file.node.pool);
                let data = self.pread(via, file, offset, size).await;
                return data
                    .map(Served::Owned)
                    .map_err(|e| errno(&e, Errno::EISDIR));
            }
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
                    file.discard(&chunk);
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
                    file.discard(&chunk);
                }
                break;
            }
        }
        if hit_end && pos < end && !file.ends_at(pos) {
            // A growing file: ask for what lies past the old end.
            let via = &mut Via::Pool(&file.node.pool);
            let rest = self.pread(via, file, pos, end - pos).await;
            out.extend_from_slice(&rest.map_err(|e| errno(&e, Errno::EISDIR))?);
        }
        Ok(Served::Owned(out))
    }
}

/// Where a read goes: the node's pool (`pread` by path), or a lane's connection to the node.
enum Via<'a> {
    Pool(&'a Pool),
    Lane(&'a mut NodeLane),
}

/// A connection that failed at once (refused, or not tried while its pool holds the node
/// down), not one that timed out: asking again elsewhere costs nothing.
fn refused_at_once(e: &ClientError) -> bool {
    matches!(e, ClientError::Connect { source, .. } if source.kind() != std::io::ErrorKind::TimedOut)
}

/// A chunk's outcome from the `pread` that fetched it.
fn fetched(
    path: &str,
    offset: u64,
    res: Result<Vec<u8>, ClientError>,
) -> Result<Arc<Vec<u8>>, Errno> {
    res.map(Arc::new).map_err(|e| {
        tracing::debug!(path, offset, error = %e, "read-ahead failed");
        errno(&e, Errno::EISDIR)
    })
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
