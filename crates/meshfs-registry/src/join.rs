//! A node joining a directory by itself (`meshfs node --registry HOST:PORT`).
//!
//! At start the node binds its peer `GET_FILE` listener, then a task registers the user (a
//! name already in use is taken to be ours from an earlier run), connects with the listener's
//! port, and makes the directory's list of its files match the share: it publishes every file
//! of the share not yet listed (description `"<size> bytes <type>"`) and deletes the listed
//! ones that are gone. If the directory cannot be reached the node keeps serving and the task
//! retries with exponential back-off. On shutdown it sends `DISCONNECT`.
//!
//! With the share's [`Events`], the task then follows changes: a file created publishes it, a
//! file closed after writing is published again with its final size, a file or folder deleted
//! (or renamed away) is deleted from the directory. Whenever events were lost (the watcher's
//! `resync`, a subscriber that fell behind) or the directory stopped answering, it starts over
//! with the full reconciliation, with back-off.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use meshfs_core::events::{Event, EventKind, Events};
use meshfs_core::{Kind, Share};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::client::{Answer, ClientError, DirectoryClient, Stamp};
use crate::describe::describe;
use crate::op::{OK, Refusal};
use crate::peer::{PeerConfig, PeerServer};
use crate::wire::MAX_FIELD;

/// Most files a node publishes (a bound on the walk of a huge share).
pub const MAX_PUBLISHED: usize = 100_000;
/// Deepest folder nesting walked.
const MAX_DEPTH: usize = 32;
/// Longest wait between two attempts to join.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// First wait after a failed attempt.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// How a node joins a directory (`meshfs node --registry`, built by the binary's flags).
#[derive(Debug, Clone)]
pub struct JoinConfig {
    /// The directory, `HOST:PORT`.
    pub registry: String,
    /// The node's user name in the directory.
    pub user: String,
    /// Address of the peer `GET_FILE` listener announced to the directory (port 0: any free
    /// port).
    pub peer_listen: String,
    /// The date field sent after each operation name (`--date`: the local time), which the
    /// course's later directories require.
    pub date: Stamp,
    /// The node's upload limits: `GET_FILE` transfers count against them.
    pub upload: meshfs_core::rate::UploadLimits,
}

/// Why a node could not start joining.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("cannot listen for GET_FILE on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("user name {0:?} is not valid in the directory (empty, spaces, or over 256 bytes)")]
    BadUser(String),
}

/// What a node announced once it joined.
#[derive(Debug, Clone)]
pub struct Joined {
    pub registry: String,
    pub user: String,
    /// Where the peer listener accepts `GET_FILE`.
    pub peer: SocketAddr,
    /// Files now listed in the directory for this user.
    pub files: usize,
}

impl fmt::Display for Joined {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "joined directory {} as {} (GET_FILE on {}, {} files published)",
            self.registry, self.user, self.peer, self.files
        )
    }
}

/// Start the peer listener and the join task on `tracker`. With `events` (the share's change
/// log), the task keeps the directory up to date as files come and go. `on_joined` is called
/// once the share is published. Returns the peer listener's address.
pub async fn start(
    config: JoinConfig,
    share: Share,
    events: Option<Events>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    on_joined: impl FnOnce(&Joined) + Send + 'static,
) -> Result<SocketAddr, JoinError> {
    let JoinConfig {
        registry,
        user,
        peer_listen,
        date,
        upload,
    } = config;
    if user.is_empty()
        || user.len() > MAX_FIELD
        || user.contains(char::is_whitespace)
        || user.contains('\0')
    {
        return Err(JoinError::BadUser(user));
    }
    let peer_config = PeerConfig {
        upload,
        ..PeerConfig::default()
    };
    let peer = PeerServer::bind(&peer_listen, share.clone(), peer_config)
        .await
        .map_err(|source| JoinError::Listen {
            addr: peer_listen.clone(),
            source,
        })?;
    let peer_addr = peer.local_addr().map_err(|source| JoinError::Listen {
        addr: peer_listen,
        source,
    })?;
    tracker.spawn(peer.run(shutdown.clone(), tracker.clone()));
    let client = DirectoryClient::new(registry)
        .with_timeout(Duration::from_secs(5))
        .with_date(date);
    // Subscribe before the first listing of the share, so no change falls in between.
    let live = events.map(|e| e.subscribe(None).live);
    let member = Member {
        client,
        user,
        peer: peer_addr,
        share,
        unpublishable: Unpublishable::default(),
    };
    tracker.spawn(member.stay_joined(live, shutdown, on_joined));
    Ok(peer_addr)
}

/// What the directory lists for this node: file name → size when published by this run (None
/// for names found already listed).
type Published = BTreeMap<String, Option<u64>>;

/// How following the events ended.
enum FollowEnd {
    Shutdown,
    /// Events were lost or the directory failed: reconcile everything again.
    Resync,
}

/// One node's membership in the directory.
struct Member {
    client: DirectoryClient,
    user: String,
    peer: SocketAddr,
    share: Share,
    unpublishable: Unpublishable,
}

/// Most names [`Unpublishable`] remembers; past that, one last warning says so.
const MAX_REPORTED: usize = 10_000;

/// The share's names the directory cannot hold, each logged once per run however often the
/// share is walked again.
#[derive(Default)]
struct Unpublishable {
    logged: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl Unpublishable {
    fn report(&self, path: &str) {
        let mut logged = self.logged.lock().unwrap_or_else(|e| e.into_inner());
        if logged.len() > MAX_REPORTED || logged.contains(path) {
            return;
        }
        if logged.len() == MAX_REPORTED {
            logged.insert(String::new());
            tracing::warn!("more names cannot be published; not logging them");
            return;
        }
        logged.insert(path.to_owned());
        tracing::warn!(
            path,
            bytes = path.len(),
            "not published in the directory: a name there holds at most {MAX_FIELD} bytes"
        );
    }
}

impl Member {
    /// Join, follow the share's changes (rejoining after any loss), disconnect on shutdown.
    async fn stay_joined(
        self,
        mut live: Option<broadcast::Receiver<Event>>,
        shutdown: CancellationToken,
        on_joined: impl FnOnce(&Joined) + Send + 'static,
    ) {
        let mut on_joined = Some(on_joined);
        // `meshfs_directory_connected` (issue 21): 1 while joined.
        let link = &meshfs_core::metrics::metrics().directory;
        loop {
            link.set(0);
            let Some(mut published) = self.join_with_backoff(&shutdown).await else {
                return; // shut down before joining: nothing to disconnect
            };
            link.set(1);
            if let Some(notify) = on_joined.take() {
                let joined = Joined {
                    registry: self.client.addr().to_owned(),
                    user: self.user.clone(),
                    peer: self.peer,
                    files: published.len(),
                };
                tracing::info!(registry = %joined.registry, user = %joined.user, peer = %joined.peer, files = joined.files, "joined the directory");
                notify(&joined);
            }
            let Some(receiver) = live.as_mut() else {
                shutdown.cancelled().await;
                break;
            };
            match self.follow(receiver, &mut published, &shutdown).await {
                FollowEnd::Shutdown => break,
                // Start from the present; the reconciliation covers what came before.
                FollowEnd::Resync => *receiver = receiver.resubscribe(),
            }
        }
        link.set(0);
        match self.client.disconnect(&self.user).await {
            Ok(OK) => {
                tracing::info!(registry = self.client.addr(), user = %self.user, "disconnected from the directory")
            }
            Ok(code) => {
                tracing::warn!(registry = self.client.addr(), user = %self.user, code, "DISCONNECT refused")
            }
            Err(e) => {
                tracing::warn!(registry = self.client.addr(), error = %e, "DISCONNECT failed")
            }
        }
    }

    /// [`join_once`] until it succeeds (None if shut down first).
    async fn join_with_backoff(&self, shutdown: &CancellationToken) -> Option<Published> {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let joined = join_once(
                &self.client,
                &self.user,
                self.peer.port(),
                &self.share,
                &self.unpublishable,
            );
            match joined.await {
                Ok(published) => return Some(published),
                Err(e) => {
                    tracing::warn!(registry = self.client.addr(), error = %e, retry_in = ?backoff, "cannot join the directory");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.cancelled() => return None,
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Apply share events to the directory until shutdown or a loss.
    async fn follow(
        &self,
        live: &mut broadcast::Receiver<Event>,
        published: &mut Published,
        shutdown: &CancellationToken,
    ) -> FollowEnd {
        loop {
            let received = tokio::select! {
                r = live.recv() => r,
                _ = shutdown.cancelled() => return FollowEnd::Shutdown,
            };
            let event = match received {
                Ok(event) => event,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "fell behind the share's events: republishing");
                    return FollowEnd::Resync;
                }
                Err(broadcast::error::RecvError::Closed) => {
                    shutdown.cancelled().await;
                    return FollowEnd::Shutdown;
                }
            };
            if let Err(e) = self.apply(&event, published).await {
                tracing::warn!(%event, error = %e, "cannot update the directory: rejoining");
                return FollowEnd::Resync;
            }
        }
    }

    /// Bring the directory in line with one event.
    async fn apply(&self, event: &Event, published: &mut Published) -> Result<(), AttemptError> {
        let (client, user, path) = (&self.client, self.user.as_str(), event.path.as_str());
        match event.kind {
            EventKind::Resync => Err(AttemptError::Resync),
            EventKind::Deleted => {
                // A file, or a folder: everything listed under it goes too.
                let under = format!("{path}/");
                let gone: Vec<String> = published
                    .keys()
                    .filter(|name| name.as_str() == path || name.starts_with(&under))
                    .cloned()
                    .collect();
                for name in gone {
                    let code = client.delete(user, &name).await?;
                    expect("DELETE", code, &[OK, Refusal::NotPublished.code()])?;
                    published.remove(&name);
                }
                Ok(())
            }
            EventKind::Created | EventKind::Modified | EventKind::Closed => {
                if !publishable_name(path) {
                    self.unpublishable.report(path);
                    return Ok(());
                }
                let share = self.share.clone();
                let owned = path.to_owned();
                let size = match tokio::task::spawn_blocking(move || share.stat(&owned)).await {
                    Ok(Ok(entry)) if entry.kind == Kind::File => entry.size,
                    // Gone again, or a folder (its files get events of their own).
                    _ => return Ok(()),
                };
                let refresh = event.kind == EventKind::Closed
                    && published
                        .get(path)
                        .is_some_and(|known| *known != Some(size));
                if refresh {
                    // The writer finished: list the file again with its final size.
                    let code = client.delete(user, path).await?;
                    expect("DELETE", code, &[OK, Refusal::NotPublished.code()])?;
                    published.remove(path);
                }
                if !published.contains_key(path) {
                    let code = client.publish(user, path, &describe(path, size)).await?;
                    expect("PUBLISH", code, &[OK, Refusal::AlreadyPublished.code()])?;
                    published.insert(path.to_owned(), Some(size));
                }
                Ok(())
            }
        }
    }
}

/// Why one attempt to join failed.
#[derive(Debug, thiserror::Error)]
enum AttemptError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{op} answered {code}")]
    Code { op: &'static str, code: u8 },
    #[error("file events were lost")]
    Resync,
}

fn expect(op: &'static str, code: u8, fine: &[u8]) -> Result<(), AttemptError> {
    if fine.contains(&code) {
        Ok(())
    } else {
        Err(AttemptError::Code { op, code })
    }
}

/// One attempt: register, connect, reconcile the published list with the share.
async fn join_once(
    client: &DirectoryClient,
    user: &str,
    port: u16,
    share: &Share,
    unpublishable: &Unpublishable,
) -> Result<Published, AttemptError> {
    expect(
        "REGISTER",
        client.register(user).await?,
        &[OK, Refusal::NameInUse.code()],
    )?;
    let code = client.connect(user, port).await?;
    if code == Refusal::AlreadyConnected.code() {
        // Left connected by an earlier run that died: reconnect with the current port.
        expect("DISCONNECT", client.disconnect(user).await?, &[OK])?;
        expect("CONNECT", client.connect(user, port).await?, &[OK])?;
    } else {
        expect("CONNECT", code, &[OK])?;
    }
    let listed: BTreeSet<String> = match client.list_content(user, user).await? {
        Answer::Ok(files) => files.into_iter().collect(),
        Answer::Failed(code) => {
            return Err(AttemptError::Code {
                op: "LIST_CONTENT",
                code,
            });
        }
    };
    let walk_share = share.clone();
    let walk = tokio::task::spawn_blocking(move || publishable_files(&walk_share))
        .await
        .unwrap_or_default();
    for name in &walk.unpublishable {
        unpublishable.report(name);
    }
    let files = walk.files;
    let present: BTreeSet<&str> = files.iter().map(|(name, _)| name.as_str()).collect();
    for gone in listed
        .iter()
        .filter(|name| !present.contains(name.as_str()))
    {
        let code = client.delete(user, gone).await?;
        expect("DELETE", code, &[OK, Refusal::NotPublished.code()])?;
    }
    let mut published = Published::new();
    for (name, size) in &files {
        if listed.contains(name) {
            published.insert(name.clone(), None);
            continue;
        }
        let code = client.publish(user, name, &describe(name, *size)).await?;
        expect("PUBLISH", code, &[OK, Refusal::AlreadyPublished.code()])?;
        published.insert(name.clone(), Some(*size));
    }
    Ok(published)
}

/// Whether a path of the share can be named in the directory: a field carries any UTF-8
/// text without NUL (which no file name holds) of at most 256 bytes. Spaces are fine; the
/// share already leaves out names that are not UTF-8 or hold line breaks.
fn publishable_name(path: &str) -> bool {
    !path.is_empty() && path.len() <= MAX_FIELD && !path.contains('\0')
}

/// What a walk of the share found.
#[derive(Debug, Default)]
pub struct ShareWalk {
    /// Every regular file that can be named in the directory, with its size, sorted; at most
    /// [`MAX_PUBLISHED`].
    pub files: Vec<(String, u64)>,
    /// Files whose path cannot be (longer than a field).
    pub unpublishable: Vec<String>,
}

/// Walk the share for the files to publish (relative paths).
pub fn publishable_files(share: &Share) -> ShareWalk {
    let mut unpublishable = Vec::new();
    let mut out = Vec::new();
    let mut dirs = vec![(String::new(), 0usize)];
    // Folders already walked, by real path: a symlink to an ancestor is not a new folder.
    let mut seen = std::collections::HashSet::new();
    while let Some((dir, depth)) = dirs.pop() {
        if !share.resolve(&dir).is_ok_and(|real| seen.insert(real)) {
            continue;
        }
        let entries = match share.list(&dir) {
            Ok(entries) => entries,
            Err(e) => {
                tracing::debug!(%dir, error = %e, "cannot list");
                continue;
            }
        };
        for entry in entries {
            let path = if dir.is_empty() {
                entry.name.clone()
            } else {
                format!("{dir}/{}", entry.name)
            };
            match entry.kind {
                Kind::Dir if depth + 1 < MAX_DEPTH => dirs.push((path, depth + 1)),
                Kind::Dir => {}
                Kind::File => {
                    if !publishable_name(&path) {
                        unpublishable.push(path);
                        continue;
                    }
                    out.push((path, entry.size));
                    if out.len() >= MAX_PUBLISHED {
                        tracing::warn!(
                            max = MAX_PUBLISHED,
                            "share too large: publishing only the first files"
                        );
                        out.sort();
                        return ShareWalk {
                            files: out,
                            unpublishable,
                        };
                    }
                }
            }
        }
    }
    out.sort();
    ShareWalk {
        files: out,
        unpublishable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Collects what tracing writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn each_unpublishable_name_is_logged_once() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let long = "d/".repeat(130);
        tracing::subscriber::with_default(subscriber, || {
            let reported = Unpublishable::default();
            // As a share walked again and again (rejoins) and events about the same file.
            for _ in 0..3 {
                reported.report(&long);
                reported.report("other/too/long");
            }
        });
        let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            log.matches("not published in the directory").count(),
            2,
            "{log}"
        );
        assert_eq!(log.matches(long.as_str()).count(), 1, "{log}");
    }

    #[test]
    fn names_with_spaces_are_publishable() {
        assert!(publishable_name("front door/clip 1.mp4"));
        assert!(publishable_name(&"x".repeat(MAX_FIELD)));
        assert!(!publishable_name(&"x".repeat(MAX_FIELD + 1)));
        assert!(!publishable_name(""));
    }
}
