//! `Source`: where a node's files come from — this node's [`Share`] or a remote node's file
//! server through [`Client`] — behind one small interface (stat, list, open, read at).
//!
//! Local calls block on the file system, so they run on tokio's blocking threads. Remote calls
//! borrow a pooled connection; a pooled connection that fails before any byte of the reply (the
//! node closed it while it was idle) is retried once on a fresh one.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use meshfs_core::{Client, ClientError, Entry, Kind, Share, ShareFile};

use crate::error::WebError;
use crate::pool::{Pool, Pooled};

/// Largest chunk read at once (one `pread`, one blocking read, one HTTP body frame).
pub const CHUNK: u64 = 256 << 10;

/// Most entries a listing returns to the browser.
pub const MAX_LIST: usize = 100_000;

/// A node's files.
#[derive(Debug, Clone)]
pub enum Source {
    Local(Share),
    Remote(Arc<Pool>),
}

/// Run `$op` (an expression using the client `$c`) on a pooled connection, retrying once on a
/// fresh connection when a reused one fails at the connection level.
macro_rules! with_conn {
    ($pool:expr, |$c:ident| $op:expr) => {{
        let mut conn = $pool.get().await?;
        let first = {
            let $c: &mut Client = conn.client();
            $op
        };
        match first {
            Ok(v) => {
                conn.done();
                Ok::<_, ClientError>((v, conn))
            }
            Err(e) if conn.reused && e.is_connection() => {
                tracing::debug!(addr = $pool.addr(), error = %e, "stale pooled connection");
                drop(conn);
                let mut conn = $pool.fresh().await?;
                let v = {
                    let $c: &mut Client = conn.client();
                    $op
                }?;
                conn.done();
                Ok((v, conn))
            }
            Err(e) => Err(e),
        }
    }};
}

impl Source {
    /// Metadata of a file or folder.
    pub async fn stat(&self, path: &str) -> Result<Entry, WebError> {
        match self {
            Source::Local(share) => {
                let share = share.clone();
                let path = path.to_owned();
                blocking(move || share.stat(&path).map_err(WebError::from)).await
            }
            Source::Remote(pool) => {
                let (entry, _conn) = with_conn!(pool, |c| c.stat(path).await)?;
                Ok(entry)
            }
        }
    }

    /// A folder's entries, sorted by name, at most [`MAX_LIST`] (the flag says if cut).
    pub async fn list(&self, path: &str) -> Result<(Vec<Entry>, bool), WebError> {
        let mut entries = match self {
            Source::Local(share) => {
                let share = share.clone();
                let path = path.to_owned();
                blocking(move || share.list(&path).map_err(WebError::from)).await?
            }
            Source::Remote(pool) => with_conn!(pool, |c| c.ls(path).await)?.0,
        };
        let truncated = entries.len() > MAX_LIST;
        entries.truncate(MAX_LIST);
        Ok((entries, truncated))
    }

    /// Open a regular file for ranged reads; returns it with its current metadata.
    pub async fn open(&self, path: &str) -> Result<(Reader, Entry), WebError> {
        match self {
            Source::Local(share) => {
                let share = share.clone();
                let path = path.to_owned();
                blocking(move || {
                    let file = share.open_file(&path)?;
                    let md = file
                        .metadata()
                        .map_err(|e| WebError::Internal(e.to_string()))?;
                    let entry = entry_of(&path, &md);
                    Ok((Reader::Local(Arc::new(file)), entry))
                })
                .await
            }
            Source::Remote(pool) => {
                let (entry, conn) = with_conn!(pool, |c| c.stat(path).await)?;
                if entry.kind != Kind::File {
                    return Err(WebError::IsDir(path.to_owned()));
                }
                Ok((
                    Reader::Remote {
                        conn,
                        path: path.to_owned(),
                    },
                    entry,
                ))
            }
        }
    }
}

fn entry_of(path: &str, md: &std::fs::Metadata) -> Entry {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    Entry {
        name: path.rsplit('/').next().unwrap_or_default().to_owned(),
        kind: Kind::File,
        size: md.len(),
        mtime_ns: md.mtime().saturating_mul(1_000_000_000) + md.mtime_nsec(),
        mode: md.permissions().mode() & 0o7777,
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, WebError> + Send + 'static,
) -> Result<T, WebError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| WebError::Internal(format!("blocking task failed: {e}")))?
}

/// An open file, read chunk by chunk at explicit offsets.
#[derive(Debug)]
pub enum Reader {
    Local(Arc<ShareFile>),
    /// The connection stays with the reader for the whole response (one `pread` at a time).
    Remote {
        conn: Pooled,
        path: String,
    },
}

impl Reader {
    /// Read up to `len` bytes (at most [`CHUNK`]) at `offset`; an empty result means end of
    /// file (the file shrank since it was opened).
    pub async fn read_at(&mut self, offset: u64, len: u64) -> Result<Bytes, WebError> {
        let len = len.min(CHUNK);
        match self {
            Reader::Local(file) => {
                let file = file.clone();
                blocking(move || {
                    let mut buf = BytesMut::zeroed(len as usize);
                    let mut filled = 0;
                    while filled < buf.len() {
                        let n = file
                            .read_at(&mut buf[filled..], offset + filled as u64)
                            .map_err(|e| WebError::Internal(e.to_string()))?;
                        if n == 0 {
                            break;
                        }
                        filled += n;
                    }
                    buf.truncate(filled);
                    Ok(buf.freeze())
                })
                .await
            }
            Reader::Remote { conn, path } => {
                let mut buf = Vec::with_capacity(len as usize);
                conn.client().pread(path, offset, len, &mut buf).await?;
                conn.done();
                Ok(Bytes::from(buf))
            }
        }
    }
}
