//! `Source`: where a node's files come from — this node's [`Share`] or a remote node's file
//! server through [`Client`] — behind one small interface (stat, list, open, read at).
//!
//! Local calls block on the file system, so they run on tokio's blocking threads. Remote calls
//! go through the node's [`Pool`] (meshfs-core's, shared with every door): a pooled connection
//! found dead (the node closed it while it was idle) is retried once on a fresh one.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use meshfs_core::access::{Access, Keys, ReadError};
use meshfs_core::{Entry, Kind, Lease, Pool, Share, ShareFile};

use crate::error::WebError;

/// Largest chunk read at once (one `pread`, one blocking read, one HTTP body frame).
pub const CHUNK: u64 = 256 << 10;

/// Most entries a listing returns to the browser.
pub const MAX_LIST: usize = 100_000;

/// A node's files.
#[derive(Debug, Clone)]
pub enum Source {
    /// This node's share, with its passwords and the ones the request's session proved:
    /// whatever a password protects and the session has not unlocked is `401` (log in).
    Local(Share, Access, Keys),
    Remote(Pool),
}

impl Source {
    /// Metadata of a file or folder.
    pub async fn stat(&self, path: &str) -> Result<Entry, WebError> {
        match self {
            Source::Local(share, access, keys) => {
                browsable(access, keys)?;
                let share = share.clone();
                let path = path.to_owned();
                blocking(move || share.stat(&path).map_err(WebError::from)).await
            }
            Source::Remote(pool) => {
                let path = path.to_owned();
                Ok(pool.run(async move |c| c.stat(&path).await).await?)
            }
        }
    }

    /// A folder's entries, sorted by name, at most [`MAX_LIST`] (the flag says if cut).
    pub async fn list(&self, path: &str) -> Result<(Vec<Entry>, bool), WebError> {
        let mut entries = match self {
            Source::Local(share, access, keys) => {
                browsable(access, keys)?;
                let share = share.clone();
                let path = path.to_owned();
                blocking(move || share.list(&path).map_err(WebError::from)).await?
            }
            Source::Remote(pool) => {
                let path = path.to_owned();
                pool.run(async move |c| c.ls(&path).await).await?
            }
        };
        let truncated = entries.len() > MAX_LIST;
        entries.truncate(MAX_LIST);
        Ok((entries, truncated))
    }

    /// Open a regular file for ranged reads; returns it with its current metadata.
    pub async fn open(&self, path: &str) -> Result<(Reader, Entry), WebError> {
        match self {
            Source::Local(share, access, keys) => {
                // One resolution: the password rule is judged on the file actually opened, so
                // a folder swapped for a symlink after a check cannot unlock another file.
                let (share, access, keys) = (share.clone(), access.clone(), keys.clone());
                let path = path.to_owned();
                blocking(move || {
                    let file = access
                        .open_file(&share, &path, &keys)
                        .map_err(|e| match e {
                            ReadError::Locked => {
                                WebError::Unauthorized("this file is protected by a password")
                            }
                            ReadError::Share(e) => WebError::from(e),
                        })?;
                    let md = file
                        .metadata()
                        .map_err(|e| WebError::Internal(e.to_string()))?;
                    let entry = entry_of(&path, &md);
                    Ok((Reader::Local(Arc::new(file)), entry))
                })
                .await
            }
            Source::Remote(pool) => {
                let owned = path.to_owned();
                let (entry, conn) = pool.run_leased(async move |c| c.stat(&owned).await).await?;
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

/// A share-wide password hides the whole share until the session holds it.
fn browsable(access: &Access, keys: &Keys) -> Result<(), WebError> {
    if access.may_browse(keys) {
        Ok(())
    } else {
        Err(WebError::Unauthorized(
            "this node's share is protected by a password",
        ))
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
        conn: Lease,
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

#[cfg(test)]
mod tests {
    use super::*;
    use meshfs_server::{Config, FileServer};
    use tokio_util::sync::CancellationToken;
    use tokio_util::task::TaskTracker;

    /// A real file server on `addr`; returns its address and what stops it.
    async fn server(share: &Share, addr: &str) -> (String, CancellationToken, TaskTracker) {
        let config = Config {
            name: "t".into(),
            idle_timeout: std::time::Duration::from_secs(60),
            max_connections: 16,
            ..Config::default()
        };
        let server = FileServer::bind(addr, share.clone(), config).await.unwrap();
        let addr = server.local_addr().unwrap().to_string();
        let (stop, tracker) = (CancellationToken::new(), TaskTracker::new());
        tracker.spawn(server.run(stop.clone(), tracker.clone()));
        (addr, stop, tracker)
    }

    async fn stop((_, stop, tracker): (String, CancellationToken, TaskTracker)) {
        stop.cancel();
        tracker.close();
        tracker.wait().await;
    }

    #[tokio::test]
    async fn pooled_connections_survive_a_node_restart_and_a_vanished_node_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), b"hello").unwrap();
        let share = Share::open(dir.path()).unwrap();
        let first = server(&share, "127.0.0.1:0").await;
        let addr = first.0.clone();
        let src = Source::Remote(Pool::new(&addr, crate::state::pool_config()));
        assert_eq!(src.stat("a.txt").await.unwrap().size, 5);

        // The node restarts on the same address: the pooled connection is dead, the request
        // is retried on a fresh one.
        stop(first).await;
        let second = server(&share, &addr).await;
        assert_eq!(src.stat("a.txt").await.unwrap().size, 5);
        let (mut reader, entry) = src.open("a.txt").await.unwrap();
        assert_eq!(entry.size, 5);
        assert_eq!(&reader.read_at(1, 100).await.unwrap()[..], b"ello");
        let (listing, cut) = src.list("").await.unwrap();
        assert_eq!((listing.len(), cut), (1, false));
        assert!(matches!(src.stat("nope").await, Err(WebError::NotFound(_))));
        assert!(matches!(
            src.open("").await,
            Err(WebError::IsDir(_)) | Err(WebError::BadRequest(_))
        ));

        // The node vanishes, with a reader open: errors, never a hang.
        stop(second).await;
        assert!(reader.read_at(0, 5).await.is_err());
        assert!(matches!(
            src.stat("a.txt").await,
            Err(WebError::Unreachable(_))
        ));
    }

    #[tokio::test]
    async fn local_reads_stop_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), b"hello").unwrap();
        let src = Source::Local(
            Share::open(dir.path()).unwrap(),
            Access::open(),
            Keys::default(),
        );
        let (mut reader, entry) = src.open("a.txt").await.unwrap();
        assert_eq!(entry.size, 5);
        assert_eq!(&reader.read_at(3, 100).await.unwrap()[..], b"lo");
        assert!(reader.read_at(5, 100).await.unwrap().is_empty());
        assert!(matches!(
            src.open("../x").await,
            Err(WebError::Forbidden(_))
        ));
    }
}
