//! `Folders`: which folders of the share are watched, one inotify watch each.
//!
//! `notify`'s recursive watch gives up on the whole share at the first folder it cannot watch
//! (a `chmod 000` folder, a root-owned `lost+found`, the inotify watch limit), which left a
//! node with no file events at all. So the share is walked here and every folder is watched on
//! its own: what can be watched is, and what cannot is reported once, by path, with why.
//!
//! Every folder watched on its own also reports its own deletion and move (`DELETE_SELF`,
//! `MOVE_SELF`), beside its parent's report of the same change; [`Folders::forget`] is how the
//! ingest thread reports a folder's deletion exactly once.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, Weak};

use notify::{RecursiveMode, Watcher};

/// Most unwatchable folders remembered (and so reported) one by one.
const MAX_UNWATCHED: usize = 10_000;

/// The share's folders, as the ingest thread knows them.
pub(super) struct Folders {
    watcher: Weak<Mutex<notify::RecommendedWatcher>>,
    /// Every folder seen (watched or not), so that a folder's deletion, reported by its parent
    /// and by itself, is logged once.
    known: BTreeSet<PathBuf>,
    /// Folders that could not be watched: reported once each, retried when their permissions
    /// change (`chmod`), forgotten when they go.
    unwatched: BTreeSet<PathBuf>,
    /// The inotify watch limit was reached (said once).
    limit_reported: bool,
}

impl Folders {
    pub(super) fn new(watcher: Weak<Mutex<notify::RecommendedWatcher>>) -> Folders {
        Folders {
            watcher,
            known: BTreeSet::new(),
            unwatched: BTreeSet::new(),
            limit_reported: false,
        }
    }

    /// Watch `dir` and every folder beneath it (never through a symlink). `entry` is called
    /// for each folder once it is watched itself (or could not be), and for each other entry
    /// once the folder holding it is watched: whatever appears in a folder after it was
    /// reported is seen by the watch. (Reporting a folder when its parent was read, before its
    /// own watch existed, let a client that wrote into it at once miss that file's `closed`.)
    pub(super) fn watch_tree(&mut self, dir: &Path, mut entry: impl FnMut(&Path)) {
        let mut stack = vec![dir.to_owned()];
        while let Some(d) = stack.pop() {
            self.known.insert(d.clone());
            let watched = self.watch_one(&d);
            entry(&d);
            if !watched {
                continue;
            }
            let items = match std::fs::read_dir(&d) {
                Ok(items) => items,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    self.cannot_watch(&d, &e.to_string());
                    continue;
                }
            };
            for item in items.flatten() {
                let path = item.path();
                if item.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(path);
                } else {
                    entry(&path);
                }
            }
        }
    }

    /// Know `dir` as a folder of the share without watching it (it is gone already).
    pub(super) fn note(&mut self, dir: &Path) {
        self.known.insert(dir.to_owned());
    }

    /// Whether `dir` is a folder that could not be watched (its permissions changed: it may be
    /// watchable now).
    pub(super) fn is_unwatched(&self, dir: &Path) -> bool {
        self.unwatched.contains(dir)
    }

    /// `dir` left the share (deleted or moved out): forget it and what was beneath it. Returns
    /// whether it was a folder known here, so that its deletion, reported twice by the kernel,
    /// is logged once.
    pub(super) fn forget(&mut self, dir: &Path) -> bool {
        let was_known = self.known.contains(dir);
        for set in [&mut self.known, &mut self.unwatched] {
            // Path order is by component: everything beneath `dir` sorts right after it.
            let beneath: Vec<PathBuf> = set
                .range(dir.to_owned()..)
                .take_while(|p| p.starts_with(dir))
                .cloned()
                .collect();
            for p in beneath {
                set.remove(&p);
            }
        }
        was_known
    }

    /// Add one inotify watch for `dir` alone; reports (once) why not.
    fn watch_one(&mut self, dir: &Path) -> bool {
        let Some(watcher) = self.watcher.upgrade() else {
            return false;
        };
        let res = super::lock_watcher(&watcher).watch(dir, RecursiveMode::NonRecursive);
        match res {
            Ok(()) => {
                if self.unwatched.remove(dir) {
                    tracing::info!(folder = %dir.display(), "watching a folder that could not be watched before");
                }
                true
            }
            Err(e) => {
                match e.kind {
                    // Gone already: its deletion is on its way.
                    notify::ErrorKind::PathNotFound => {}
                    notify::ErrorKind::Io(ref io) if io.kind() == std::io::ErrorKind::NotFound => {}
                    notify::ErrorKind::MaxFilesWatch => self.limit_reached(dir),
                    _ => self.cannot_watch(dir, &io_reason(&e)),
                }
                false
            }
        }
    }

    fn cannot_watch(&mut self, dir: &Path, why: &str) {
        if self.unwatched.len() >= MAX_UNWATCHED || !self.unwatched.insert(dir.to_owned()) {
            return;
        }
        tracing::warn!(
            folder = %dir.display(),
            error = why,
            "cannot watch this folder: changes inside it are not reported (the rest of the \
             share is watched); make it readable by the node's user to have it watched"
        );
    }

    fn limit_reached(&mut self, dir: &Path) {
        if self.unwatched.len() < MAX_UNWATCHED {
            self.unwatched.insert(dir.to_owned());
        }
        if !std::mem::replace(&mut self.limit_reported, true) {
            tracing::warn!(
                folder = %dir.display(),
                "inotify watch limit reached: this folder and others are not watched, changes \
                 inside them are not reported; raise the limit (sysctl \
                 fs.inotify.max_user_watches) and restart the node"
            );
        }
    }
}

/// Why a watch failed, without `notify`'s list of paths (the log names the folder itself).
fn io_reason(e: &notify::Error) -> String {
    match &e.kind {
        notify::ErrorKind::Io(io) => io.to_string(),
        _ => {
            let mut e = e.to_string();
            if let Some(cut) = e.find(" about [") {
                e.truncate(cut);
            }
            e
        }
    }
}
