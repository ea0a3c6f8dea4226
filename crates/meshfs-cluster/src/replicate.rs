//! Change propagation between workers: each worker follows its peers' file events and pulls
//! what changed into its own share (or deletes what was deleted), so the cluster converges.
//!
//! Rules, chosen so that an outage never destroys data:
//! - `created`/`closed` on a peer: pull the file unless ours already has the same size and
//!   BLAKE3 (which also stops echoes: a copy we pulled raises `created` here, and the peer finds
//!   it identical). Downloads use `transfer::download` (temporary `.part`, BLAKE3 verified, then
//!   renamed); folders are created.
//! - `deleted` on a peer: delete ours only after the peer itself confirms, by `stat`, that the
//!   path is gone, and only if ours is a version known to be in step with a peer (see
//!   Conflicts): a file written here is never lost to a deletion there. Nothing is ever
//!   deleted because a peer was unreachable.
//! - at start (our first connection to each peer): catch up by walking the peer's listing;
//!   files we lack are pulled, files that differ are pulled when the peer's copy is newer.
//! - `resync` from a peer (it restarted, or its event log overflowed): walk its listing again,
//!   but only to pull newer versions of files we have: a file we lack may be one we deleted.
//!
//! Archive replicas (`--archive`): everything above but the deletions. A camera's retention
//! (or its owner) deleting a clip never empties the archive, which has its own retention.
//! What that retention removes is never fetched back from a peer that still has it
//! ([`crate::retired`]): not at the next catch-up, nor after a restart.
//!
//! Conflicts: a local file is replaced only if it is a version known to be in step with a
//! peer (we pulled it, or found it identical to the peer's: [`Replicator`] remembers each
//! file's size and modification time then). A local file that differs and is *not* known to
//! be in step was written here while the peer wrote its own: two writers of one path at once.
//! Both versions are kept: the newer (by modification time to the second, ties broken by
//! hash) keeps the name, the other goes under `NAME.sync-conflict-YYYYMMDD-HHMMSS-HASH7.ext`
//! (Syncthing's convention: the date is that version's modification time in UTC, the id the
//! first seven hex digits of its BLAKE3), logged as a warning and announced as
//! `created:conflict`. Both nodes decide alike, so they converge on the same two files. The
//! peer's version is decided about by its `hash`; should the peer write yet another version
//! before the download, the copy that lands is that one (the download says which: its
//! verified hash), so it is dropped and the conflict decided again: a copy's name never
//! tells another version than the bytes it holds. A local file still being
//! written here (modified since its last `closed`, or open for writing) is never replaced:
//! its `closed` will propagate it. Only versions seen since this node started are known to be
//! in step, so a file that changed on both sides while a node was down also becomes a
//! conflict copy, never a silent loss.
//!
//! Bandwidth (`--max-replication-rate`, [`Replicator::with_rate`]): one bucket for every pull
//! from every peer, charged as the bytes arrive, so replication never takes more than its
//! share of this node's link however many files and peers change at once. It limits what this
//! node pulls; what it serves to its peers counts under its upload limits like any client's
//! download ([`meshfs_core::rate`]).
//!
//! Writes into the share are confined like every other write: `Share` creates and opens the
//! parent folder beneath its root, the download lands by name inside that open folder
//! (`transfer::download_into`), deletions go through `Share::remove_file`/`remove_dir`. No
//! `std::fs` call here. Download leftovers and temporary files (`transfer::is_leftover`) are
//! never propagated.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use meshfs_core::dir::TEMP_PREFIX;
use meshfs_core::events::{EventKind, Events, Reason};
use meshfs_core::follow::{Follower, Notice};
use meshfs_core::rate::Limiter;
use meshfs_core::retention::writers::{Seen, Tracked, open_for_writing};
use meshfs_core::transfer::{self, DownloadOptions};
use meshfs_core::{Client, Credentials, Dir, Entry, Kind, RemotePath, Share, ShareError};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::in_step::InStep;
use crate::retired::Retired;

/// Most entries walked in one catch-up of one peer.
const MAX_WALK: usize = 100_000;

/// Most peer versions remembered as losers of a conflict.
const MAX_LOSERS: usize = 200_000;

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
    /// The peer's version changed between its `hash` and the download of a conflict copy:
    /// what landed is another version than the one decided about, so it was dropped.
    #[error(
        "{path} changed on the peer while its conflict copy was fetched (asked {asked}, got {got})"
    )]
    Raced {
        path: String,
        asked: String,
        got: String,
    },
}

/// Times a conflict is decided again when the peer's version changed during its download.
const RACE_RETRIES: usize = 3;

/// Keeps one share in step with its peers.
#[derive(Clone)]
pub struct Replicator {
    share: Share,
    /// One lock per path, so two peers announcing the same file do not download it twice into
    /// the same `.part`.
    locks: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    /// Never propagate a deletion (`--archive`).
    archive: bool,
    /// This share's own event log: reasons for conflict copies, and (once started) which
    /// files are being written here.
    events: Option<Events>,
    writing: Option<Tracked>,
    /// The local file versions known to be in step with a peer: the only versions a peer's
    /// may replace, or its deletion remove.
    synced: Arc<Mutex<InStep>>,
    /// BLAKE3 of the peer's version of a path that lost a conflict here (kept under the
    /// conflict name), until the path changes: the peer may go on announcing that version
    /// until it decided the conflict its side, and it must not replace the winner.
    losers: Arc<Mutex<HashMap<String, String>>>,
    /// What every connection to a peer proves (a protected cluster shares one password).
    credentials: Credentials,
    /// What every pull from every peer is charged to (`--max-replication-rate`).
    limiter: Limiter,
    /// What this node's retention removed: never fetched back ([`crate::retired`]).
    retired: Retired,
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
            archive: false,
            events: None,
            writing: None,
            synced: Arc::default(),
            losers: Arc::default(),
            credentials: Credentials::none(),
            limiter: Limiter::unlimited(),
            retired: Retired::default(),
        }
    }

    /// Keep what retention removes here in `retired` (loaded from the node's state), so that
    /// no catch-up fetches it back from a peer that still has it.
    pub fn with_retired(mut self, retired: Retired) -> Replicator {
        self.retired = retired;
        self
    }

    /// Pull at most `rate` bytes per second, all peers together (`--max-replication-rate`).
    pub fn with_rate(mut self, rate: Option<u64>) -> Replicator {
        self.limiter = rate.map_or_else(Limiter::unlimited, Limiter::shared);
        self
    }

    /// How every pull downloads: the cluster's password, the replication limit.
    fn download_options(&self) -> DownloadOptions {
        DownloadOptions {
            credentials: self.credentials.clone(),
            limiter: self.limiter.clone(),
            ..DownloadOptions::default()
        }
    }

    /// Prove `credentials` on every connection to a peer (`--cluster-password-file`).
    pub fn with_credentials(mut self, credentials: Credentials) -> Replicator {
        self.credentials = credentials;
        self
    }

    /// An archive replica copies new and changed files but never deletes.
    pub fn archive(mut self, on: bool) -> Replicator {
        self.archive = on;
        self
    }

    /// The share's own event log (when it is watched): conflict copies are announced in it,
    /// and files it reports as being written are never replaced.
    pub fn with_events(mut self, events: Events) -> Replicator {
        self.events = Some(events);
        self
    }

    /// Follow every peer (`host:port`) until `shutdown`.
    pub fn start(&self, peers: Vec<String>, shutdown: CancellationToken, tracker: &TaskTracker) {
        let mut this = self.clone();
        if let Some(events) = &self.events {
            this.writing = Some(Tracked::follow(events, None, shutdown.clone(), tracker));
            this.note_retention(events, shutdown.clone(), tracker);
        }
        for peer in peers {
            let me = this.clone();
            let shutdown = shutdown.clone();
            tracker.spawn(async move {
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = me.follow(peer) => {}
                }
            });
        }
    }

    /// Record every file this node's retention removes (its `deleted:retention` events).
    fn note_retention(&self, events: &Events, shutdown: CancellationToken, tracker: &TaskTracker) {
        let mut live = events.subscribe(None).live;
        let retired = self.retired.clone();
        tracker.spawn(async move {
            loop {
                let event = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    e = live.recv() => e,
                };
                match event {
                    Ok(e)
                        if e.kind == EventKind::Deleted && e.reason == Some(Reason::Retention) =>
                    {
                        let now = std::time::SystemTime::now()
                            .duration_since(UNIX_EPOCH)
                            .map_or(0, |d| d.as_secs() as i64);
                        retired.add(&e.path, now);
                    }
                    Ok(_) => {}
                    // Missed events cost at worst a fetch that retention undoes again.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }

    async fn follow(&self, peer: String) {
        let mut follower =
            Follower::new(peer.clone(), None).with_credentials(self.credentials.clone());
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
                    EventKind::Deleted if self.archive => {
                        tracing::debug!(%peer, path = %e.path, "archive: deletion not propagated");
                        Ok(())
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
        let mut client = Client::connect_with(peer, &self.credentials).await?;
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
        let mut client = Client::connect_with(peer, &self.credentials).await?;
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
            (None, _) if self.retired.removed(path, second(remote.mtime_ns)) => {
                tracing::debug!(%peer, %path, "removed here by retention: not fetched again");
                return Ok(false);
            }
            (Some(l), _) if l.kind == Kind::Dir => return Ok(false),
            // Newer here by a second or more: the peer pulls ours (or keeps both) instead.
            // Within one second the versions go on to the comparison of [`Self::keep_both`],
            // so both sides of a conflict decide it alike.
            (Some(l), Want::MissingOrNewer | Want::NewerOnly)
                if second(l.mtime_ns) > second(remote.mtime_ns) =>
            {
                return Ok(false);
            }
            _ => {}
        }
        let mut theirs = None;
        if let Some(l) = &local {
            if l.size == remote.size {
                let hash = client.hash(path).await?;
                if self.local_hash(path).await? == hash {
                    self.mark_synced(path);
                    return Ok(false);
                }
                theirs = Some(hash);
            }
            if self.being_written_here(path) {
                tracing::debug!(%peer, %path, "being written here: its close will propagate it");
                return Ok(false);
            }
            if !self.is_synced(path, l) {
                let theirs = match theirs {
                    Some(h) => h,
                    None => client.hash(path).await?,
                };
                return self.keep_both(peer, client, path, l, remote, theirs).await;
            }
            // The version a conflict here kept as the older copy, announced again by the
            // peer (its later events for it, before it decided the conflict its side): not
            // a change, and never to replace the version that won.
            if let Some(lost) = self.lost(path) {
                let theirs = match theirs {
                    Some(h) => h,
                    None => client.hash(path).await?,
                };
                if theirs == lost {
                    tracing::debug!(%peer, %path, "the peer's version is the conflict copy kept here");
                    return Ok(false);
                }
            }
        }
        let (dir, name) = self.share.parent_dir_creating(path)?;
        let src = RemotePath {
            addr: peer.to_owned(),
            path: path.to_owned(),
        };
        let mut opts = self.download_options();
        // Missing here when we looked: a recorder may create it while we download, and its
        // version must not be replaced by ours (the peer still holds its own, so the two meet
        // as a conflict when the recorder's `closed` propagates).
        opts.no_clobber = local.is_none();
        if let Err(e) = transfer::download_into(&src, &dir, &name, &opts, &()).await {
            // No half-copies left in the share: the next event or catch-up starts over.
            transfer::discard_partial(&dir, &name);
            if matches!(e, transfer::TransferError::Exists(_)) {
                tracing::info!(%peer, %path, "written here during the download: kept; its close settles it");
                return Ok(false);
            }
            return Err(e.into());
        }
        self.mark_synced(path);
        self.set_loser(path, None);
        self.retired.forget(path);
        tracing::info!(%peer, %path, "pulled");
        Ok(true)
    }

    /// BLAKE3 (hex) of a local file, on the blocking pool.
    async fn local_hash(&self, path: &str) -> Result<String, SyncError> {
        let share = self.share.clone();
        let p = path.to_owned();
        let hash = tokio::task::spawn_blocking(move || share.hash(&p))
            .await
            .map_err(std::io::Error::other)??;
        Ok(hash.to_hex().to_string())
    }

    /// Two versions of `path`, ours (`local`, not known to be in step) and the peer's
    /// (`remote`, BLAKE3 `theirs`): keep both, the older under a conflict name. A copy that
    /// proved to be another version than `theirs` ([`SyncError::Raced`]) is decided again
    /// against the peer's version as it is now, a few times; then the error is logged and the
    /// peer's next event for the path settles it.
    async fn keep_both(
        &self,
        peer: &str,
        client: &mut Client,
        path: &str,
        local: &Entry,
        remote: &Entry,
        theirs: String,
    ) -> Result<bool, SyncError> {
        let ours = self.local_hash(path).await?;
        let (mut remote, mut theirs) = (remote.clone(), theirs);
        let mut tries = 0;
        loop {
            if ours == theirs {
                self.mark_synced(path);
                return Ok(false);
            }
            match self
                .land_conflict(peer, path, local, &remote, &ours, &theirs)
                .await
            {
                Err(e @ SyncError::Raced { .. }) if tries < RACE_RETRIES => {
                    tries += 1;
                    tracing::info!(%peer, error = %e, "deciding the conflict again");
                    remote = match client.stat(path).await {
                        Ok(e) if e.kind == Kind::File => e,
                        // Gone or a folder now: its own event follows.
                        Ok(_) => return Ok(false),
                        Err(e) if e.remote_code().is_some() => return Ok(false),
                        Err(e) => return Err(e.into()),
                    };
                    theirs = client.hash(path).await?;
                }
                other => return other,
            }
        }
    }

    /// [`Self::keep_both`] once, the versions' hashes known and different.
    async fn land_conflict(
        &self,
        peer: &str,
        path: &str,
        local: &Entry,
        remote: &Entry,
        ours: &str,
        theirs: &str,
    ) -> Result<bool, SyncError> {
        let ours_win = (second(local.mtime_ns), ours) > (second(remote.mtime_ns), theirs);
        let (dir, name) = self.share.parent_dir_creating(path)?;
        let (loser_mtime, loser_hash) = if ours_win {
            (remote.mtime_ns, theirs)
        } else {
            (local.mtime_ns, ours)
        };
        let conflict = conflict_name(&name, loser_mtime, loser_hash);
        let conflict_path = match path.rsplit_once('/') {
            Some((parent, _)) => format!("{parent}/{conflict}"),
            None => conflict.clone(),
        };
        let src = RemotePath {
            addr: peer.to_owned(),
            path: path.to_owned(),
        };
        let opts = self.download_options();
        // Theirs lands under a temporary name (never propagated), and takes its place only
        // once known to be the version decided about: a copy dropped never shows as a file
        // created and deleted, which a peer would follow by deleting its own.
        let landing = format!("{TEMP_PREFIX}conflict-{}", &theirs[..16]);
        self.announce(&conflict_path);
        let got = match transfer::download_into(&src, &dir, &landing, &opts, &()).await {
            Ok(outcome) => outcome.hash,
            Err(e) => {
                transfer::discard_partial(&dir, &landing);
                self.unannounce(&conflict_path);
                return Err(e.into());
            }
        };
        // The download checked what landed against the node's hash of that moment: if the
        // peer wrote another version since its `hash`, the copy is that one, and kept under
        // this name it would lie about its content. Dropped; decided again.
        if got.as_deref() != Some(theirs) {
            let _ = dir.remove_file(&landing);
            self.unannounce(&conflict_path);
            return Err(SyncError::Raced {
                path: path.to_owned(),
                asked: theirs.to_owned(),
                got: got.unwrap_or_default(),
            });
        }
        let moved = if ours_win {
            dir.rename_new(&landing, &dir, &conflict)
        } else {
            // Ours gets the conflict name as a second name (a hard link), then theirs
            // replaces it under the name in one rename: the name is never missing, so a
            // peer never sees it deleted (and never deletes its own version for it).
            // A file system without hard links (FAT, exFAT: SD cards) refuses (`EPERM`,
            // `EOPNOTSUPP`): ours is renamed aside instead, the name then missing an instant.
            // A try whose link was made and whose rename then failed left the conflict name
            // on ours already (the same file): taken as made, or the conflict would never be
            // decided.
            dir.hard_link(&name, &conflict)
                .or_else(|e| match e.kind() {
                    std::io::ErrorKind::Unsupported | std::io::ErrorKind::PermissionDenied => {
                        dir.rename(&name, &dir, &conflict)
                    }
                    std::io::ErrorKind::AlreadyExists if same_file(&dir, &name, &conflict) => {
                        Ok(())
                    }
                    _ => Err(e),
                })
                .and_then(|()| dir.rename(&landing, &dir, &name))
        };
        if let Err(e) = moved {
            let _ = dir.remove_file(&landing);
            self.unannounce(&conflict_path);
            return Err(e.into());
        }
        self.mark_synced(path);
        self.mark_synced(&conflict_path);
        if ours_win {
            self.set_loser(path, Some(theirs));
        }
        tracing::warn!(
            %peer,
            %path,
            kept = %conflict_path,
            "conflict: {path} was written here and on {peer} at once; both versions kept, the \
             older as {conflict}"
        );
        Ok(true)
    }

    /// Tell the share's log that the conflict copy about to appear is one.
    fn announce(&self, path: &str) {
        if let Some(events) = &self.events {
            events.annotate(EventKind::Created, path, Reason::Conflict);
        }
    }

    fn unannounce(&self, path: &str) {
        if let Some(events) = &self.events {
            events.forget(EventKind::Created, path);
        }
    }

    /// Whether `path` is being written here: reported modified since its last close, or held
    /// open for writing by some process.
    fn being_written_here(&self, path: &str) -> bool {
        if let Some(w) = &self.writing
            && w.lock().seen(path) == Some(Seen::Modified)
        {
            return true;
        }
        let Ok((dir, name)) = self.share.parent_dir(path) else {
            return false;
        };
        let Ok(st) = dir.stat(&name, false) else {
            return false;
        };
        open_for_writing(self.share.root()).contains(&(st.st_dev, st.st_ino))
    }

    fn synced(&self) -> std::sync::MutexGuard<'_, InStep> {
        self.synced.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Remember the local version of `path` as in step with the peers.
    fn mark_synced(&self, path: &str) {
        let Ok(e) = self.share.stat(path) else {
            return;
        };
        // Past its cap the oldest half is forgotten: see `in_step` for what that costs.
        self.synced().mark(path, e.size, e.mtime_ns);
    }

    /// Remember (or forget, `None`) the peer's version of `path` that lost a conflict here.
    fn set_loser(&self, path: &str, hash: Option<&str>) {
        let mut losers = self.losers.lock().unwrap_or_else(|e| e.into_inner());
        match hash {
            Some(h) => {
                if losers.len() >= MAX_LOSERS {
                    // Forgetting costs at worst the winner replaced by the loser, which is
                    // still kept under its conflict name.
                    losers.clear();
                }
                losers.insert(path.to_owned(), h.to_owned());
            }
            None => {
                losers.remove(path);
            }
        }
    }

    fn lost(&self, path: &str) -> Option<String> {
        let losers = self.losers.lock().unwrap_or_else(|e| e.into_inner());
        losers.get(path).cloned()
    }

    fn is_synced(&self, path: &str, local: &Entry) -> bool {
        self.synced().is(path, local.size, local.mtime_ns)
    }

    /// Delete `path` here once `peer` confirms it is gone there.
    async fn delete(&self, peer: &str, path: &str) -> Result<(), SyncError> {
        let mut client = Client::connect_with(peer, &self.credentials).await?;
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
        if local.kind == Kind::File && !self.is_synced(path, &local) {
            // Written here and never in step with the peer's version (a conflict being
            // decided, whose renames the peer's deletion caught between two steps; or a
            // recording of ours): a deletion there is no reason to lose it.
            tracing::info!(%peer, %path, "deleted there, kept here: this version was never in step with the peer's");
            return Ok(());
        }
        let removed = match local.kind {
            Kind::File => self.share.remove_file(path),
            // Only empty folders: files inside get their own events.
            Kind::Dir => self.share.remove_dir(path),
        };
        self.synced().remove(path);
        self.set_loser(path, None);
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

/// Whether `a` and `b` in `dir` are names of one file (not following symlinks).
fn same_file(dir: &Dir, a: &str, b: &str) -> bool {
    match (dir.stat(a, false), dir.stat(b, false)) {
        (Ok(a), Ok(b)) => (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino),
        _ => false,
    }
}

/// A modification time to the second, as versions are compared: `stat` (how the file of an
/// event is looked at) tells a peer's time to the second, `ls` (a catch-up) to the nanosecond,
/// and our own is known to the nanosecond. Both sides of a conflict must decide alike however
/// each learned of the other's version, or each keeps its own under the name (seen live with
/// two running workers: 5 paths of 5).
fn second(mtime_ns: i64) -> i64 {
    mtime_ns.div_euclid(1_000_000_000)
}

/// Syncthing's conflict name for a version of `name` modified at `mtime_ns` with BLAKE3
/// `hash` (hex): `NAME.sync-conflict-YYYYMMDD-HHMMSS-HASH7.ext`.
pub fn conflict_name(name: &str, mtime_ns: i64, hash: &str) -> String {
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => name.split_at(i),
        _ => (name, ""),
    };
    // Stay well within a file name's 255 bytes.
    let mut stem = stem;
    while stem.len() + ext.len() > 200 {
        let mut cut = stem.len() - 1;
        while !stem.is_char_boundary(cut) {
            cut -= 1;
        }
        stem = &stem[..cut];
    }
    let when = UNIX_EPOCH + Duration::from_nanos(mtime_ns.max(0) as u64);
    let digits: String = humantime::format_rfc3339_seconds(when)
        .to_string()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let id: String = hash.chars().take(7).collect();
    format!(
        "{stem}.sync-conflict-{}-{}-{id}{ext}",
        &digits[..8],
        &digits[8..14]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_names_follow_syncthing() {
        let t = 1_780_000_000_000_000_000; // 2026-05-28T20:26:40Z
        assert_eq!(
            conflict_name("clip.mp4", t, "abcdef0123"),
            "clip.sync-conflict-20260528-202640-abcdef0.mp4"
        );
        assert_eq!(
            conflict_name("README", t, "abcdef0123"),
            "README.sync-conflict-20260528-202640-abcdef0"
        );
        assert_eq!(
            conflict_name(".hidden", t, "abcdef0123"),
            ".hidden.sync-conflict-20260528-202640-abcdef0"
        );
        assert_eq!(
            conflict_name("a.tar.gz", t, "abcdef0123"),
            "a.tar.sync-conflict-20260528-202640-abcdef0.gz"
        );
        assert!(conflict_name(&"é".repeat(120), t, "ab").len() < 255);
    }

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
