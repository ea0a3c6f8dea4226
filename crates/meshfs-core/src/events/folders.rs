//! `Folders`: which folders of the share are watched, one inotify watch each.
//!
//! A recursive watch that gives up on the whole share at the first folder it cannot watch (a
//! `chmod 000` folder, a root-owned `lost+found`, the inotify watch limit) left a node with no
//! file events at all. So the share is walked here and every folder is watched on its own:
//! what can be watched is, and what cannot is reported once, by path, with why.
//!
//! Every folder watched on its own also reports its own deletion and move (`DELETE_SELF`,
//! `MOVE_SELF`), beside its parent's report of the same change; [`Folders::forget`] is how the
//! ingest thread reports a folder's deletion exactly once.
//!
//! The kernel names the folder of each change by its watch number: [`Folders::path_of`] turns
//! it back into a path. Watches are added only here, on the ingest thread, which handles changes
//! in order, so a watch is always known before any change it reports.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use inotify::{WatchDescriptor, Watches};

/// Most unwatchable folders remembered (and so reported) one by one.
const MAX_UNWATCHED: usize = 10_000;

/// The share's folders, as the ingest thread knows them.
pub(super) struct Folders {
    watches: Watches,
    /// Every folder seen (watched or not), so that a folder's deletion, reported by its parent
    /// and by itself, is logged once; with its watch number when watched.
    known: BTreeMap<PathBuf, Option<i32>>,
    /// The folder each watch number stands for, and its descriptor (to remove it).
    watched: HashMap<i32, (PathBuf, WatchDescriptor)>,
    /// Folders that could not be watched: reported once each, retried when their permissions
    /// change (`chmod`), forgotten when they go.
    unwatched: BTreeSet<PathBuf>,
    /// The inotify watch limit was reached (said once).
    limit_reported: bool,
}

impl Folders {
    pub(super) fn new(watches: Watches) -> Folders {
        Folders {
            watches,
            known: BTreeMap::new(),
            watched: HashMap::new(),
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
            let watched = self.watch_one(&d).is_ok();
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
        self.known.entry(dir.to_owned()).or_insert(None);
    }

    /// The folder watched as `wd`, if that watch is still ours.
    pub(super) fn path_of(&self, wd: i32) -> Option<&Path> {
        self.watched.get(&wd).map(|(path, _)| path.as_path())
    }

    /// The kernel dropped watch `wd` (its folder is gone, or it was removed here).
    pub(super) fn watch_ended(&mut self, wd: i32) {
        if let Some((path, _)) = self.watched.remove(&wd)
            && let Some(known) = self.known.get_mut(&path)
            && *known == Some(wd)
        {
            *known = None;
        }
    }

    /// Whether `dir` is a folder that could not be watched (its permissions changed: it may be
    /// watchable now).
    pub(super) fn is_unwatched(&self, dir: &Path) -> bool {
        self.unwatched.contains(dir)
    }

    /// `dir` left the share (deleted or moved out): forget it and what was beneath it, and
    /// remove their watches (a folder moved away would otherwise still report, under its old
    /// name). Returns whether it was a folder known here, so that its deletion, reported twice
    /// by the kernel, is logged once.
    pub(super) fn forget(&mut self, dir: &Path) -> bool {
        let was_known = self.known.contains_key(dir);
        // Path order is by component: everything beneath `dir` sorts right after it.
        let beneath: Vec<(PathBuf, Option<i32>)> = self
            .known
            .range(dir.to_owned()..)
            .take_while(|(p, _)| p.starts_with(dir))
            .map(|(p, wd)| (p.clone(), *wd))
            .collect();
        for (path, wd) in beneath {
            self.known.remove(&path);
            // The number may stand for another path by now (the same folder watched again
            // under a new name): that watch stays.
            if let Some(wd) = wd
                && self.watched.get(&wd).is_some_and(|(p, _)| *p == path)
                && let Some((_, descriptor)) = self.watched.remove(&wd)
            {
                // Fails for a folder already deleted (the kernel dropped its watch): fine.
                let _ = self.watches.remove(descriptor);
            }
        }
        let beneath: Vec<PathBuf> = self
            .unwatched
            .range(dir.to_owned()..)
            .take_while(|p| p.starts_with(dir))
            .cloned()
            .collect();
        for p in beneath {
            self.unwatched.remove(&p);
        }
        was_known
    }

    /// Watch the share's own folder: the one watch that must succeed (its failure is the
    /// caller's to report).
    pub(super) fn watch_root(&mut self, root: &Path) -> std::io::Result<()> {
        self.add(root)
    }

    /// Add one inotify watch for `dir` alone; reports (once) why not.
    fn watch_one(&mut self, dir: &Path) -> std::io::Result<()> {
        self.add(dir).inspect_err(|e| match e.raw_os_error() {
            // Gone already (its deletion is on its way), or no longer a folder (a symlink or a
            // file now: never watched).
            Some(libc::ENOENT | libc::ENOTDIR) => {}
            Some(libc::ENOSPC) => self.limit_reached(dir),
            _ => self.cannot_watch(dir, &e.to_string()),
        })
    }

    /// Watch `dir`, and know it. Never through a symlink (`IN_DONT_FOLLOW`), never anything but
    /// a folder (`IN_ONLYDIR`).
    fn add(&mut self, dir: &Path) -> std::io::Result<()> {
        let res = self.watches.add(dir, super::watcher::MASK);
        let known = self.known.entry(dir.to_owned()).or_insert(None);
        let descriptor = res?;
        let wd = descriptor.get_watch_descriptor_id();
        *known = Some(wd);
        // The same folder watched again (the share itself, a folder moved whose old name was
        // not seen leaving) keeps its number: it now stands for this path.
        self.watched.insert(wd, (dir.to_owned(), descriptor));
        if self.unwatched.remove(dir) {
            tracing::info!(folder = %dir.display(), "watching a folder that could not be watched before");
        }
        Ok(())
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
