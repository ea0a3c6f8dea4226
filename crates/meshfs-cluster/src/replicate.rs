//! Change propagation between workers: each worker follows its peers' file events and pulls
//! what changed into its own share (or deletes what was deleted), so the cluster converges.
//!
//! Rules, chosen so that an outage never destroys data:
//! - `created`/`closed` on a peer: pull the file unless ours already has the same size and
//!   BLAKE3 (which also stops echoes: a copy we pulled raises `created` here, and the peer finds
//!   it identical). Downloads use `transfer::download` (temporary `.part`, BLAKE3 verified, then
//!   renamed); folders are created.
//! - `deleted` on a peer: delete ours only after the peer itself confirms, by `stat`, that the
//!   path is gone. Nothing is ever deleted because a peer was unreachable.
//! - at start (our first connection to each peer): catch up by walking the peer's listing;
//!   files we lack are pulled, files that differ are pulled when the peer's copy is newer.
//! - `resync` from a peer (it restarted, or its event log overflowed): walk its listing again,
//!   but only to pull newer versions of files we have: a file we lack may be one we deleted.
//!
//! Writes into the share are confined like every other write: `Share` creates and opens the
//! parent folder beneath its root, the download lands by name inside that open folder
//! (`transfer::download_into`), deletions go through `Share::remove_file`/`remove_dir`. No
//! `std::fs` call here. Download leftovers and temporary files (`transfer::is_leftover`) are
//! never propagated.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use meshfs_core::events::EventKind;
use meshfs_core::follow::{Follower, Notice};
use meshfs_core::transfer::{self, DownloadOptions};
use meshfs_core::{Client, Entry, Kind, RemotePath, Share, ShareError};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Most entries walked in one catch-up of one peer.
const MAX_WALK: usize = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Client(#[from] meshfs_core::ClientError),
    #[error(transparent)]
    Share(#[from] ShareError),
    #[error(transparent)]
    Transfer(#[from] transfer::TransferError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Keeps one share in step with its peers.
#[derive(Clone)]
pub struct Replicator {
    share: Share,
    /// One lock per path, so two peers announcing the same file do not download it twice into
    /// the same `.part`.
    locks: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

/// When to pull a file the peer has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// It changed there: pull unless identical.
    Changed,
    /// Catch-up at start: pull if missing here, or different and newer there.
    MissingOrNewer,
    /// Catch-up after a resync: pull only if we have it and theirs is different and newer.
    NewerOnly,
}

/// Paths that are transient by-products of transfers and uploads, never propagated.
fn transient(path: &str) -> bool {
    transfer::is_leftover(path.rsplit('/').next().unwrap_or(path))
}

impl Replicator {
    pub fn new(share: Share) -> Replicator {
        Replicator {
            share,
            locks: Arc::default(),
        }
    }

    /// Follow every peer (`host:port`) until `shutdown`.
    pub fn start(&self, peers: Vec<String>, shutdown: CancellationToken, tracker: &TaskTracker) {
        for peer in peers {
            let me = self.clone();
            let shutdown = shutdown.clone();
            tracker.spawn(async move {
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = me.follow(peer) => {}
                }
            });
        }
    }

    async fn follow(&self, peer: String) {
        let mut follower = Follower::new(peer.clone(), None);
        let mut first = true;
        loop {
            let result = match follower.next().await {
                Notice::Connected { name } => {
                    tracing::info!(%peer, %name, "following peer");
                    if first {
                        // Retried at the next connection until one walk succeeds.
                        let r = self.catch_up(&peer, Want::MissingOrNewer).await;
                        first = r.is_err();
                        r
                    } else {
                        // The follower replays what we missed since the last event.
                        Ok(())
                    }
                }
                Notice::Disconnected { error } => {
                    tracing::warn!(%peer, %error, "peer unreachable: nothing is deleted meanwhile");
                    Ok(())
                }
                Notice::Event(e) if transient(&e.path) => Ok(()),
                Notice::Event(e) => match e.kind {
                    EventKind::Created | EventKind::Closed => {
                        self.pull(&peer, &e.path, Want::Changed).await
                    }
                    EventKind::Deleted => self.delete(&peer, &e.path).await,
                    EventKind::Modified => Ok(()),
                    EventKind::Resync => self.catch_up(&peer, Want::NewerOnly).await,
                },
            };
            if let Err(e) = result {
                tracing::warn!(%peer, error = %e, "propagation step failed");
            }
        }
    }

    fn lock(&self, path: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        if locks.len() > 10_000 {
            locks.retain(|_, l| Arc::strong_count(l) > 1);
        }
        locks.entry(path.to_owned()).or_default().clone()
    }

    /// Walk the peer's whole share and pull what `want` asks for.
    async fn catch_up(&self, peer: &str, want: Want) -> Result<(), SyncError> {
        let mut client = Client::connect(peer).await?;
        let mut dirs = vec![String::new()];
        let mut walked = 0usize;
        let mut pulled = 0usize;
        while let Some(dir) = dirs.pop() {
            for entry in client.ls(&dir).await? {
                walked += 1;
                if walked > MAX_WALK {
                    tracing::warn!(%peer, "catch-up stopped after {MAX_WALK} entries");
                    return Ok(());
                }
                let path = if dir.is_empty() {
                    entry.name.clone()
                } else {
                    format!("{dir}/{}", entry.name)
                };
                if transient(&path) {
                    continue;
                }
                match entry.kind {
                    Kind::Dir => {
                        if want != Want::NewerOnly {
                            self.ensure_dir(&path)?;
                        }
                        dirs.push(path);
                    }
                    Kind::File => {
                        match self
                            .pull_entry(peer, &mut client, &path, &entry, want)
                            .await
                        {
                            Ok(true) => pulled += 1,
                            Ok(false) => {}
                            Err(e) => {
                                tracing::warn!(%peer, %path, error = %e, "catch-up pull failed")
                            }
                        }
                    }
                }
            }
        }
        tracing::info!(%peer, walked, pulled, "caught up");
        Ok(())
    }

    /// Pull `path` from `peer` if `want` says so.
    async fn pull(&self, peer: &str, path: &str, want: Want) -> Result<(), SyncError> {
        let mut client = Client::connect(peer).await?;
        let entry = match client.stat(path).await {
            Ok(e) => e,
            // Gone again already (a temporary file, say): its `deleted` event follows.
            Err(e) if e.remote_code().is_some() => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        match entry.kind {
            Kind::Dir => self.ensure_dir(path).map(|_| ()),
            Kind::File => self
                .pull_entry(peer, &mut client, path, &entry, want)
                .await
                .map(|_| ()),
        }
    }

    /// Returns whether the file was downloaded.
    async fn pull_entry(
        &self,
        peer: &str,
        client: &mut Client,
        path: &str,
        remote: &Entry,
        want: Want,
    ) -> Result<bool, SyncError> {
        let lock = self.lock(path);
        let _held = lock.lock().await;
        let local = match self.share.stat(path) {
            Ok(e) => Some(e),
            Err(ShareError::NotFound) => None,
            Err(e) => return Err(e.into()),
        };
        match (&local, want) {
            (None, Want::NewerOnly) => return Ok(false),
            (Some(l), _) if l.kind == Kind::Dir => return Ok(false),
            (Some(l), Want::MissingOrNewer | Want::NewerOnly) if l.mtime_ns >= remote.mtime_ns => {
                return Ok(false);
            }
            _ => {}
        }
        if let Some(l) = &local
            && l.size == remote.size
        {
            let share = self.share.clone();
            let p = path.to_owned();
            let ours = tokio::task::spawn_blocking(move || share.hash(&p))
                .await
                .map_err(std::io::Error::other)??;
            if ours.to_hex().as_str() == client.hash(path).await? {
                return Ok(false);
            }
        }
        let (dir, name) = self.share.parent_dir_creating(path)?;
        let src = RemotePath {
            addr: peer.to_owned(),
            path: path.to_owned(),
        };
        let opts = DownloadOptions::default();
        if let Err(e) = transfer::download_into(&src, &dir, &name, &opts, &()).await {
            // No half-copies left in the share: the next event or catch-up starts over.
            transfer::discard_partial(&dir, &name);
            return Err(e.into());
        }
        tracing::info!(%peer, %path, "pulled");
        Ok(true)
    }

    /// Delete `path` here once `peer` confirms it is gone there.
    async fn delete(&self, peer: &str, path: &str) -> Result<(), SyncError> {
        let mut client = Client::connect(peer).await?;
        match client.stat(path).await {
            Ok(_) => return Ok(()), // it is back (replaced): its `created` follows
            Err(e) if e.remote_code() == Some(meshfs_core::proto::Code::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
        let lock = self.lock(path);
        let _held = lock.lock().await;
        let local = match self.share.stat(path) {
            Ok(e) => e,
            Err(ShareError::NotFound) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let removed = match local.kind {
            Kind::File => self.share.remove_file(path),
            // Only empty folders: files inside get their own events.
            Kind::Dir => self.share.remove_dir(path),
        };
        match removed {
            Ok(()) => tracing::info!(%peer, %path, "deleted"),
            Err(e) => tracing::debug!(%path, error = %e, "not deleted"),
        }
        Ok(())
    }

    /// Make sure folder `dir` exists in the share (creating it and its parents, confined).
    fn ensure_dir(&self, dir: &str) -> Result<(), SyncError> {
        self.share.create_dir_all(dir)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_names() {
        assert!(transient("a/b.mp4.part"));
        assert!(transient("b.mp4.part.resume"));
        assert!(transient("x/.meshfs-tmp-12-3"));
        assert!(!transient("clips/a.mp4"));
    }

    #[test]
    fn local_folders_are_confined_and_parents_created() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("share")).unwrap();
        std::os::unix::fs::symlink(dir.path(), dir.path().join("share/up")).unwrap();
        let share = Share::open(dir.path().join("share")).unwrap();
        let r = Replicator::new(share.clone());
        let (folder, name) = share.parent_dir_creating("a/b/c.txt").unwrap();
        assert!(folder.path().ends_with("share/a/b") && name == "c.txt");
        assert!(dir.path().join("share/a/b").is_dir());
        assert!(share.parent_dir_creating("../x").is_err());
        assert!(share.parent_dir_creating("up/x").is_err());
        assert!(r.ensure_dir("up/new").is_err());
        assert!(!dir.path().join("new").exists());
    }

    /// A peer serving `clips/a.mp4`; our share has `clips/` too, and `outside/` lies beside it.
    async fn peer_and_local() -> (tempfile::TempDir, String, CancellationToken) {
        let dir = tempfile::tempdir().unwrap();
        for d in ["peer/clips", "local/clips", "outside"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        std::fs::write(dir.path().join("peer/clips/a.mp4"), b"pulled").unwrap();
        let server = meshfs_server::FileServer::bind(
            "127.0.0.1:0",
            Share::open(dir.path().join("peer")).unwrap(),
            meshfs_server::Config::default(),
        )
        .await
        .unwrap();
        let addr = server.local_addr().unwrap().to_string();
        let shutdown = CancellationToken::new();
        tokio::spawn(server.run(shutdown.clone(), TaskTracker::new()));
        (dir, addr, shutdown)
    }

    fn swap_clips(local: &std::path::Path, outside: &std::path::Path) {
        if !local.join("clips").is_symlink() {
            std::fs::rename(local.join("clips"), local.join("clips.old")).unwrap();
            std::os::unix::fs::symlink(outside, local.join("clips")).unwrap();
        }
    }

    /// Replication into a share whose folder was swapped for a symlink out of it: before the
    /// pull it is refused; right after the share resolved the folder, the file lands in the
    /// folder that was resolved. Nothing is ever written outside.
    #[tokio::test]
    async fn a_pull_into_a_folder_swapped_for_a_symlink_never_writes_outside() {
        for walking in [false, true] {
            let (dir, peer, shutdown) = peer_and_local().await;
            let (local, outside) = (dir.path().join("local"), dir.path().join("outside"));
            let share = if walking {
                Share::open_walking(&local).unwrap()
            } else {
                Share::open(&local).unwrap()
            };
            let r = Replicator::new(share.clone());

            swap_clips(&local, &outside);
            assert!(r.pull(&peer, "clips/a.mp4", Want::Changed).await.is_err());
            assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
            std::fs::remove_file(local.join("clips")).unwrap();
            std::fs::rename(local.join("clips.old"), local.join("clips")).unwrap();

            let (l, o) = (local.clone(), outside.clone());
            share.set_resolve_hook(Some(Arc::new(move |_: &str| swap_clips(&l, &o))));
            r.pull(&peer, "clips/a.mp4", Want::Changed).await.unwrap();
            assert_eq!(
                std::fs::read_dir(&outside).unwrap().count(),
                0,
                "walk {walking}"
            );
            assert_eq!(
                std::fs::read(local.join("clips.old/a.mp4")).unwrap(),
                b"pulled"
            );
            shutdown.cancel();
        }
    }
}
