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
