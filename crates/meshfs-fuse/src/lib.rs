//! The meshfs FUSE mount: every node's share under one read-only folder,
//! `DIR/<node-name>/<path>`, read fast enough to play a video from another node.
//!
//! - [`inodes`]: inode numbers ⇄ (node, path);
//! - [`pool`]: per-node connection pools (parallel requests, fast failure, reconnection);
//! - [`cache`]: short-lived attributes and listings;
//! - [`readahead`]: sequential read-ahead with a doubling window, off for random reads;
//! - [`fs`]: the `fuser::Filesystem` tying them together;
//! - [`events`]: each node's `subscribe` stream invalidating caches as files change;
//! - this file: naming the nodes and mounting/unmounting.
//!
//! Mounting uses fuser's pure-Rust mount (no libfuse at build time): as root it calls
//! `mount(2)` itself, otherwise it needs `fusermount3` (Debian `fuse3`). To unmount from outside:
//! `fusermount3 -u DIR` (the `meshfs mount` process then exits 0).

pub mod cache;
pub mod error;
pub mod events;
pub mod fs;
pub mod inodes;
pub mod pool;
pub mod readahead;

use std::path::{Path, PathBuf};
use std::time::Duration;

use fuser::{BackgroundSession, MountOption, SessionACL};

pub use error::MountError;
pub use fs::{FsConfig, MeshFs, Node};
pub use pool::{NodePool, PoolConfig};

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
                max_readahead: readahead::DEFAULT_MAX_WINDOW,
                readahead_budget: readahead::DEFAULT_BUDGET,
            },
            pool: PoolConfig::default(),
            allow_other: false,
            live_events: true,
        }
    }
}

/// Ask every node its name (all at once) and build its pool. A node that does not answer is
/// still mounted, named after its address, so it can come back later; names are made safe as
/// folder names and unique (`cam`, `cam-2`, …).
pub async fn connect_nodes(addrs: &[String], config: PoolConfig) -> Vec<Node> {
    let mut tasks = Vec::new();
    for addr in addrs {
        let pool = NodePool::new(addr.clone(), config);
        tasks.push(tokio::spawn(async move {
            let name = match pool.hello().await {
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
        let base = folder_name(&name, pool.addr());
        let mut name = base.clone();
        let mut n = 2;
        while nodes.iter().any(|node| node.name == name) {
            name = format!("{base}-{n}");
            n += 1;
        }
        nodes.push(Node { name, pool });
    }
    nodes
}

/// A node name usable as one folder name (falls back to the address).
fn folder_name(name: &str, addr: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| if c == '/' || c.is_control() { '_' } else { c })
            .take(200)
            .collect()
    };
    let name = clean(name);
    if name.is_empty() || name == "." || name == ".." {
        clean(&addr.replace(':', "_"))
    } else {
        name
    }
}

/// A live mount. Unmount with [`Mount::unmount`]; dropping it unmounts too.
#[derive(Debug)]
pub struct Mount {
    session: Option<BackgroundSession>,
    /// Dropped before the session, so no notification races the unmount.
    watchers: Option<events::Watchers>,
    dir: PathBuf,
    ended: tokio::sync::oneshot::Receiver<()>,
}

/// Mount `nodes` on `dir` (blocking until the kernel has answered the FUSE handshake).
/// Requests are served on the runtime of `rt`.
pub fn mount(
    dir: &Path,
    nodes: Vec<Node>,
    options: &MountOptions,
    rt: tokio::runtime::Handle,
) -> Result<Mount, MountError> {
    if nodes.is_empty() {
        return Err(MountError::NoNodes);
    }
    let (alive, ended) = tokio::sync::oneshot::channel();
    let fs = MeshFs::new(nodes, options.fs, rt.clone(), alive);
    let invalidator = fs.invalidator();
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
    let session = fuser::spawn_mount(fs, dir, &config).map_err(|source| MountError::Mount {
        dir: dir.display().to_string(),
        source,
    })?;
    let watchers = options
        .live_events
        .then(|| events::start(invalidator, session.notifier(), &rt));
    Ok(Mount {
        session: Some(session),
        watchers,
        dir: dir.to_owned(),
        ended,
    })
}

impl Mount {
    /// Where the mount is.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Resolves when the session ends by itself (someone ran `fusermount3 -u DIR`).
    pub async fn ended(&mut self) {
        let _ = (&mut self.ended).await;
    }

    /// Unmount (blocking). If the mount is busy (a process works inside it), detach it lazily:
    /// it disappears from the namespace now and goes away when the last user leaves.
    pub fn unmount(mut self) -> Result<(), MountError> {
        self.unmount_inner()
    }

    fn unmount_inner(&mut self) -> Result<(), MountError> {
        drop(self.watchers.take());
        let Some(session) = self.session.take() else {
            return Ok(());
        };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_names_are_safe() {
        assert_eq!(folder_name("cam2", "h:1"), "cam2");
        assert_eq!(folder_name("a/b", "h:1"), "a_b");
        assert_eq!(folder_name("", "10.0.0.7:4044"), "10.0.0.7_4044");
        assert_eq!(folder_name("..", "h:1"), "h_1");
    }
}
