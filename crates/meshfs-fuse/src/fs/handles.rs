//! Open file and directory handles: what `open`/`opendir` handed the kernel, looked up by the
//! `read`/`readdir` calls that follow, and dropped at `release`/`releasedir`.
//!
//! Also remembers each file's size and mtime at its last open, which is how the kernel's page
//! cache is kept across opens of an unchanged file (`FOPEN_KEEP_CACHE`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::listing::Listing;
use super::read::OpenFile;

/// Every open handle of the mount.
#[derive(Debug)]
pub(super) struct Handles {
    files: Mutex<HashMap<u64, Arc<OpenFile>>>,
    /// An open directory's listing, once its first `readdir` read it.
    dirs: Mutex<HashMap<u64, Option<Arc<Listing>>>>,
    /// `(size, mtime)` at the last open of each inode: unchanged means the kernel's page cache
    /// of the file is still good.
    opened: Mutex<HashMap<u64, (u64, i64)>>,
    next_fh: AtomicU64,
}

impl Default for Handles {
    fn default() -> Self {
        Handles {
            files: Mutex::default(),
            dirs: Mutex::default(),
            opened: Mutex::default(),
            next_fh: AtomicU64::new(1),
        }
    }
}

impl Handles {
    fn next(&self) -> u64 {
        self.next_fh.fetch_add(1, Ordering::Relaxed)
    }

    /// A new handle on `file`.
    pub(super) fn open_file(&self, file: Arc<OpenFile>) -> u64 {
        let fh = self.next();
        self.files.lock().expect("files lock").insert(fh, file);
        fh
    }

    pub(super) fn file(&self, fh: u64) -> Option<Arc<OpenFile>> {
        self.files.lock().expect("files lock").get(&fh).cloned()
    }

    /// An open handle of inode `ino`, if any.
    pub(super) fn open_inode(&self, ino: u64) -> Option<Arc<OpenFile>> {
        let files = self.files.lock().expect("files lock");
        files.values().find(|f| f.ino == ino).cloned()
    }

    pub(super) fn release_file(&self, fh: u64) -> Option<Arc<OpenFile>> {
        self.files.lock().expect("files lock").remove(&fh)
    }

    /// Record that inode `ino` was opened as `(size, mtime)`; true when its last open saw the
    /// same, so the kernel may keep its cached pages.
    pub(super) fn reopened_unchanged(&self, ino: u64, signature: (u64, i64)) -> bool {
        self.opened
            .lock()
            .expect("opened lock")
            .insert(ino, signature)
            == Some(signature)
    }

    /// Whether inode `ino` was last opened as `(size, mtime)`.
    pub(super) fn opened_as(&self, ino: u64, signature: (u64, i64)) -> bool {
        self.opened.lock().expect("opened lock").get(&ino) == Some(&signature)
    }

    /// The kernel holds `ino` no more.
    pub(super) fn forget_inode(&self, ino: u64) {
        self.opened.lock().expect("opened lock").remove(&ino);
    }

    /// A new directory handle, without a listing until its first `readdir`.
    pub(super) fn open_dir(&self) -> u64 {
        let fh = self.next();
        self.dirs.lock().expect("dirs lock").insert(fh, None);
        fh
    }

    /// The listing an open directory handle already read (so later `readdir` calls with an
    /// offset continue the same snapshot instead of a fresh, possibly shifted, one).
    pub(super) fn held_listing(&self, fh: u64) -> Option<Arc<Listing>> {
        self.dirs
            .lock()
            .expect("dirs lock")
            .get(&fh)
            .cloned()
            .flatten()
    }

    /// Remember `listing` for the open directory handle `fh` (if it is still open).
    pub(super) fn hold_listing(&self, fh: u64, listing: Arc<Listing>) {
        if let Some(slot) = self.dirs.lock().expect("dirs lock").get_mut(&fh) {
            *slot = Some(listing);
        }
    }

    pub(super) fn release_dir(&self, fh: u64) {
        self.dirs.lock().expect("dirs lock").remove(&fh);
    }
}
