//! Reads: an open file, and the glue between the kernel's reads and [`crate::readahead`].
//!
//! Each read asks the file's [`ReadAhead`] for a plan: chunks to start fetching now (each its
//! own task, so several are in flight), and where this read's bytes come from — fetched chunks,
//! or the node directly (random reads). A read that one chunk holds is replied from that chunk
//! without a copy.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use fuser::{Errno, ReplyData};
use meshfs_core::proto::MAX_READ;
use meshfs_core::{ClientError, Entry};

use super::Shared;
use crate::error::errno;
use crate::nodes::Node;
use crate::readahead::{CHUNK, Chunk, ReadAhead, Source};
use crate::requests;

/// An open file: where it lives and how it is being read.
#[derive(Debug)]
pub(super) struct OpenFile {
    /// The file's inode.
    pub(super) ino: u64,
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
        OpenFile {
            ino,
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

    /// One `pread` of at most `size` bytes at `offset` (fewer at end of file, or where the
    /// node caps a reply).
    async fn pread(&self, offset: u64, size: u64) -> Result<Vec<u8>, ClientError> {
        requests::pread(&self.node.pool, &self.path, offset, size).await
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

    fn discard(&self, chunk: &Arc<Chunk>) {
        self.readahead
            .lock()
            .expect("readahead lock")
            .discard(chunk);
    }
}

impl Shared {
    /// Answer a read of `size` bytes at `offset` of `file`, starting whatever read-ahead the
    /// plan asks for.
    pub(super) fn read(
        self: &Arc<Self>,
        rt: &tokio::runtime::Handle,
        file: Arc<OpenFile>,
        offset: u64,
        size: u32,
        reply: ReplyData,
    ) {
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
        let shared = self.clone();
        rt.spawn(async move {
            match shared.serve(&file, offset, size, plan.source).await {
                Ok(data) => reply.data(data.bytes()),
                Err(e) => reply.error(e),
            }
        });
    }

    /// Start fetching a small file whole as it is opened (see [`ReadAhead::at_open`]).
    pub(super) fn prefetch_at_open(self: &Arc<Self>, file: &Arc<OpenFile>) {
        let known = file.size.load(Ordering::Relaxed);
        let chunk = file
            .readahead
            .lock()
            .expect("readahead lock")
            .at_open(known);
        if let Some(chunk) = chunk {
            let (shared, file) = (self.clone(), file.clone());
            tokio::spawn(async move { shared.fetch_chunk(&file, &chunk).await });
        }
    }

    /// Fetch one read-ahead chunk and hand it to whoever waits on it.
    async fn fetch_chunk(&self, file: &OpenFile, chunk: &Chunk) {
        let res = match file.pread(chunk.start(), CHUNK).await {
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
        let mut out: Vec<u8> = Vec::new();
        while (out.len() as u64) < size {
            let pos = offset + out.len() as u64;
            let data = match file.pread(pos, size - out.len() as u64).await {
                Ok(data) => data,
                // Past everything known of the file, an unreachable node is the end of it
                // for now (as `fstat` says: see `Shared::attributes`); `tail -f` waits.
                Err(e) if e.is_connection() && pos >= file.size.load(Ordering::Relaxed) => {
                    tracing::debug!(path = %file.path, offset = pos, error = %e, "node unreachable at the end of an open file");
                    break;
                }
                Err(e) => {
                    tracing::debug!(path = %file.path, offset = pos, error = %e, "read failed");
                    return Err(errno(&e, Errno::EISDIR));
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
