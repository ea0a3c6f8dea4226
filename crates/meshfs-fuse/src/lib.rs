//! The meshfs FUSE mount: every node's share under one read-only folder,
//! `DIR/<node-name>/<path>`, read fast enough to play a video from another node.
//!
//! - [`inodes`]: inode numbers ⇄ (node, path);
//! - [`nodes`]: the nodes shown (given, or discovered while mounted), never renumbered, each
//!   with its `meshfs_core::Pool` (parallel requests, fast failure, reconnection);
//! - [`peers`]: node folders kept in step with a `meshfs_core::Peers` watch (discovery);
//! - [`requests`]: the requests made of a node, each on its pool;
//! - [`cache`]: short-lived attributes and listings;
//! - [`direct`]: random reads answered on the FUSE thread that received them;
//! - [`readahead`]: sequential read-ahead with a doubling window, off for random reads;
//! - [`folder_ahead`]: the next small files of a folder fetched while a reader opens its
//!   files one after the other;
//! - [`fs`]: the `fuser::Filesystem` tying them together;
//! - [`events`]: each node's `subscribe` stream invalidating caches as files change, and the
//!   kernel notifications (also when a node folder leaves);
//! - this file: naming the nodes, mounting/unmounting, adding and hiding nodes while mounted.
//!
//! Mounting uses fuser's pure-Rust mount (no libfuse at build time): as root it calls
//! `mount(2)` itself, otherwise it needs `fusermount3` (Debian `fuse3`). To unmount from outside:
//! `fusermount3 -u DIR` (the `meshfs mount` process then exits 0).
#![deny(unsafe_code)]

pub mod cache;
pub mod direct;
pub mod error;
pub mod events;
pub mod folder_ahead;
pub mod fs;
pub mod inodes;
pub mod nodes;
pub mod peers;
pub mod readahead;
pub mod requests;

use std::path::{Path, PathBuf};
use std::time::Duration;

use fuser::{BackgroundSession, MountOption, SessionACL};
use meshfs_core::{Credentials, Pool, PoolConfig};

pub use error::MountError;
pub use fs::{FsConfig, FsHandle, MeshFs};
pub use nodes::{Node, NotAdded};
pub use peers::{FolderChange, PeerFolders, WithCredentials};

/// How long an answer is trusted while the node's events would have told of a change: long
/// enough for any burst of work on a folder, short enough to bound what a change the node
/// cannot see (a folder it cannot watch) costs.
pub const DEFAULT_EVENTS_TTL: Duration = Duration::from_secs(10);

/// Files at least this large are read past the kernel's page cache: recordings, read through
/// once, not the pictures and short clips a gallery shows again (see `fs/page_cache.rs`).
pub const DEFAULT_DIRECT_IO_MIN: u64 = 16 << 20;

/// Everything tunable about a mount.
#[derive(Debug, Clone, Copy)]
pub struct MountOptions {
    pub fs: FsConfig,
    pub pool: PoolConfig,
    /// Let other users than the mounting one read the mount (`allow_other`).
    pub allow_other: bool,
    /// Follow each node's events to drop stale caches at once (the TTL still applies).
    pub live_events: bool,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            fs: FsConfig {
                ttl: Duration::from_millis(500),
                events_ttl: DEFAULT_EVENTS_TTL,
                max_readahead: readahead::DEFAULT_MAX_WINDOW,
                readahead_budget: readahead::DEFAULT_BUDGET,
                direct_io_min: DEFAULT_DIRECT_IO_MIN,
            },
            pool: PoolConfig {
                // A player waits on reads: a stalled node must answer EIO in seconds.
                request_timeout: Duration::from_secs(5),
                // Keep every connection the bound allows: the kernel reads several files at
                // once, each with read-ahead in flight.
                max_idle: 8,
                ..PoolConfig::default()
            },
            allow_other: false,
            live_events: true,
        }
    }
}

/// Ask every node its name (all at once) and build its pool, which proves the node's
/// credentials (a protected node's password) on each connection. A node that does not answer
/// is still mounted, named after its address, so it can come back later; names are made safe
/// as folder names (and unique once mounted: `cam`, `cam-2`, …).
pub async fn connect_nodes(nodes: &[(String, Credentials)], config: PoolConfig) -> Vec<Node> {
    let mut tasks = Vec::new();
    for (addr, credentials) in nodes {
        let pool = node_pool(addr, config, credentials.clone());
        tasks.push(tokio::spawn(async move {
            let name = match requests::hello(&pool).await {
                Ok(info) => info.name,
                Err(e) => {
                    tracing::warn!(addr = %pool.addr(), error = %e, "node unreachable: named after its address");
                    String::new()
                }
            };
            (name, pool)
        }));
    }
    let mut nodes: Vec<Node> = Vec::new();
    for task in tasks {
        let (name, pool) = task.await.expect("hello task does not panic");
        let name = nodes::folder_name(&name, pool.addr());
        nodes.push(Node { name, pool });
    }
    nodes
}

/// The pool of the node at `addr`. Its TLS records are opened by `meshfs_core::tls::Records`
/// rather than rustls's reader: the mount moves every byte through the client's core twice
/// more than `meshfs cat` (into `/dev/fuse`, out to the reader), and rustls's 4 KiB socket
/// reads and second copy were 15 % of the mount's CPU in a sequential read (`perf`).
pub fn node_pool(addr: &str, config: PoolConfig, credentials: Credentials) -> Pool {
    Pool::with_credentials(addr, config, credentials).with_records()
}

/// A live mount. Unmount with [`Mount::unmount`]; dropping it unmounts too.
#[derive(Debug)]
pub struct Mount {
    session: Option<BackgroundSession>,
    /// Dropped before the session, so no notification races the unmount.
    live: Option<events::Live>,
    fs: FsHandle,
    pool: PoolConfig,
    dir: PathBuf,
    ended: tokio::sync::oneshot::Receiver<()>,
}

/// Mount `nodes` on `dir` (blocking until the kernel has answered the FUSE handshake).
/// Requests are served on the runtime of `rt`. `nodes` may be empty: nodes can be added while
/// mounted ([`Mount::add_node`]).
pub fn mount(
    dir: &Path,
    nodes: Vec<Node>,
    options: &MountOptions,
    rt: tokio::runtime::Handle,
) -> Result<Mount, MountError> {
    let (alive, ended) = tokio::sync::oneshot::channel();
    let fs = MeshFs::new(nodes, options.fs, rt.clone(), alive);
    let handle = fs.handle();
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        MountOption::FSName("meshfs".into()),
        MountOption::Subtype("meshfs".into()),
        MountOption::RO,
        MountOption::NoDev,
        MountOption::NoSuid,
        MountOption::NoAtime,
    ];
    if options.allow_other {
        config.acl = SessionACL::All;
    }
    // Several threads read `/dev/fuse`, so one can wait on a node for a random read while
    // another takes the next request (see [`direct`]).
    config.n_threads = Some(direct::FUSE_THREADS);
    let session = fuser::spawn_mount(fs, dir, &config).map_err(|source| MountError::Mount {
        dir: dir.display().to_string(),
        source,
    })?;
    let live = events::Live::start(handle.clone(), session.notifier(), &rt, options.live_events);
    Ok(Mount {
        session: Some(session),
        live: Some(live),
        fs: handle,
        pool: options.pool,
        dir: dir.to_owned(),
        ended,
    })
}

impl Mount {
    /// The folder names of the nodes shown now.
    pub fn folders(&self) -> Vec<String> {
        self.fs.shown_folders()
    }

    /// Show the node at `addr` (called `name`, e.g. from its announcement) under the root,
    /// proving `credentials` on each connection to it; returns its folder name, or `None` if
    /// it is shown already (or too many nodes were).
    pub fn add_node(&self, name: &str, addr: &str, credentials: Credentials) -> Option<String> {
        let pool = node_pool(addr, self.pool, credentials);
        match self.fs.add_node(&nodes::folder_name(name, addr), pool) {
            Ok((node, folder)) => {
                if let Some(live) = &self.live {
                    live.node_shown(node);
                }
                Some(folder)
            }
            Err(NotAdded::Present) => None,
            Err(NotAdded::Full) => {
                tracing::warn!(%addr, max = inodes::MAX_NODES, "too many nodes: not shown");
                None
            }
        }
    }

    /// Take the node at `addr` out of the root (its folder disappears at once); returns its
    /// folder name if it was shown. Its files already open keep talking to its address.
    pub fn hide_node(&self, addr: &str) -> Option<String> {
        let (node, folder) = self.fs.hide_node(addr)?;
        if let Some(live) = &self.live {
            live.node_hidden(node, &folder);
        }
        Some(folder)
    }

    /// Where the mount is.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Resolves when the session ends by itself (someone ran `fusermount3 -u DIR`).
    pub async fn ended(&mut self) {
        let _ = (&mut self.ended).await;
    }

    /// Whether the session already ended by itself (the filesystem was dropped by its
    /// thread, which only happens once the kernel unmounted it).
    fn ended_by_itself(&mut self) -> bool {
        matches!(
            self.ended.try_recv(),
            Err(tokio::sync::oneshot::error::TryRecvError::Closed)
        )
    }

    /// Unmount (blocking). If the mount is busy (a process works inside it), detach it lazily:
    /// it disappears from the namespace now and goes away when the last user leaves.
    pub fn unmount(mut self) -> Result<(), MountError> {
        self.unmount_inner()
    }

    fn unmount_inner(&mut self) -> Result<(), MountError> {
        drop(self.live.take());
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        if self.ended_by_itself() {
            // Unmounted from outside (`fusermount3 -u DIR`): the kernel already let go, and
            // there is nothing left to unmount. fuser 0.18 would still try (its "is it
            // mounted?" poll reads `POLLERR`, which means *gone*, as *mounted*), failing with
            // `EINVAL` — or, worse, unmounting whatever was mounted on DIR since. So the
            // session is not dropped: its thread has ended; what stays is one closed
            // `/dev/fuse` descriptor, and the process ends right after in `meshfs mount`.
            std::mem::forget(session);
            return Ok(());
        }
        match session.umount_and_join() {
            Ok(()) => Ok(()),
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "unmount failed: detaching lazily");
                lazy_unmount(&self.dir).map_err(|source| MountError::Unmount {
                    dir: self.dir.display().to_string(),
                    source,
                })
            }
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Err(e) = self.unmount_inner() {
            tracing::warn!(error = %e, "unmount at drop failed");
        }
    }
}

/// `fusermount3 -u -z DIR`, or `umount2(MNT_DETACH)` where fusermount3 is missing.
#[allow(unsafe_code)] // umount2(2), which std does not wrap
fn lazy_unmount(dir: &Path) -> std::io::Result<()> {
    match std::process::Command::new("fusermount3")
        .arg("-u")
        .arg("-z")
        .arg(dir)
        .status()
    {
        Ok(status) if status.success() => return Ok(()),
        Ok(status) => tracing::debug!(%status, "fusermount3 -u -z failed"),
        Err(e) => tracing::debug!(error = %e, "fusermount3 not runnable"),
    }
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    // SAFETY: a valid NUL-terminated path; umount2 has no other preconditions.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
