//! The requests the mount makes of a node, each one [`Pool::run`] on the node's pool (so a
//! stale pooled connection is retried once on a fresh one).
//!
//! Why functions and not closures at each call site: the futures are spawned on the runtime,
//! which needs them `Send`, and rustc cannot yet prove that for an async closure's future
//! awaited inside another future ("implementation of `Send` is not general enough"); a
//! function whose opaque return type says `Send` proves it once, here. The closures own their
//! path for the same reason (borrowed, the proof asks for `'static`).

use std::future::Future;

use meshfs_core::client::NodeInfo;
use meshfs_core::{ClientError, Entry, Pool};

/// `hello`: the node's name and version.
pub fn hello(pool: &Pool) -> impl Future<Output = Result<NodeInfo, ClientError>> + Send + '_ {
    pool.run(async |c| c.hello().await)
}

/// `stat <path>`.
pub fn stat<'a>(
    pool: &'a Pool,
    path: &'a str,
) -> impl Future<Output = Result<Entry, ClientError>> + Send + 'a {
    let path = path.to_owned();
    pool.run(async move |c| c.stat(&path).await)
}

/// `ls <dir>`: a whole folder with metadata in one round trip.
pub fn ls<'a>(
    pool: &'a Pool,
    dir: &'a str,
) -> impl Future<Output = Result<Vec<Entry>, ClientError>> + Send + 'a {
    let dir = dir.to_owned();
    pool.run(async move |c| c.ls(&dir).await)
}

/// `pread <offset> <size> <path>`: at most `size` bytes (fewer at end of file, or where the
/// node caps one reply). The buffer is sized by the reply, not by `size`: a small file fetched
/// with a 1 MiB request holds only its own bytes.
pub fn pread<'a>(
    pool: &'a Pool,
    path: &'a str,
    offset: u64,
    size: u64,
) -> impl Future<Output = Result<Vec<u8>, ClientError>> + Send + 'a {
    let path = path.to_owned();
    pool.run(async move |c| {
        let mut buf = Vec::new();
        c.pread(&path, offset, size, &mut buf).await.map(|_| buf)
    })
}

/// `pread 0 <size> <path>` for each of `paths`, pipelined on one connection: one write for
/// all, and their replies read as they come (mostly one wake-up for several small files).
/// The outer error is the connection's (every file failed); the inner ones are each file's
/// own (a file gone since its listing).
pub fn pread_batch(
    pool: &Pool,
    paths: Vec<String>,
    size: u64,
) -> impl Future<Output = Result<Vec<Result<Vec<u8>, ClientError>>, ClientError>> + Send + '_ {
    pool.run(async move |c| {
        for path in &paths {
            c.send(&format!("pread 0 {size} {path}"));
        }
        let mut replies = Vec::with_capacity(paths.len());
        for _ in &paths {
            match c.data_header(size).await {
                Ok(n) => {
                    let mut buf = Vec::new();
                    c.payload_into(n, &mut buf).await?;
                    replies.push(Ok(buf));
                }
                // The node's answer for this file; the connection goes on.
                Err(e @ ClientError::Remote { .. }) => replies.push(Err(e)),
                Err(e) => return Err(e),
            }
        }
        Ok(replies)
    })
}
