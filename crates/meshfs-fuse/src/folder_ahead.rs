//! Read-ahead across the files of a folder.
//!
//! A folder of small files read one after the other (`cat DIR/*`, `cp -r`, `tar`, a photo
//! viewer stepping through camera snapshots) opens its files in listing order, one at a time:
//! each file's fetch would cost a full round trip to the node while the reader waits. Once two
//! files of a folder are opened in a row (the second one right after the first in the folder's
//! listing), the next small files of the listing are fetched whole ahead of the reader, several
//! in flight at once, so the reader's open finds its file already on the way or here.
//!
//! Bounds: at most [`FILES_AHEAD`] files and [`BYTES_AHEAD`] bytes ahead; only files of at most
//! one chunk; each fetched file is a read-ahead chunk counted in the mount's [`Budget`].
//!
//! Batches: the window is refilled only once [`REFILL`] files of it are missing, and the
//! caller fetches a batch with one pipelined write on one connection. On a reader's core
//! (`cat`, the mount and the kernel's FUSE work share it) each fetch started alone cost two
//! thread wake-ups (the runtime woken for it, then again for its reply); a batch pays them once.
//!
//! Freshness: a fetched file is kept with the size and modification time its listing gave and
//! is used only by an open that sees the same (so a file changed since is fetched again), for
//! at most `trust` from its fetch (how long the node's answers are trusted, [`crate::cache`]);
//! an event about its path drops it at once ([`FolderAhead::forget_path`]), and any open in
//! the mount drops what has expired (a reader that stopped holds its files no longer).
//!
//! This module only decides and holds; the filesystem runs the fetches.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use meshfs_core::{Entry, Kind};

use crate::readahead::{Budget, CHUNK, Chunk};

/// Most files fetched ahead of the reader in one folder.
pub const FILES_AHEAD: usize = 8;
/// Most bytes fetched ahead of the reader in one folder.
pub const BYTES_AHEAD: u64 = 4 * CHUNK;
/// Files missing from the window before it is refilled (in one batch).
pub const REFILL: usize = FILES_AHEAD / 2;
/// Most folders whose reader is followed (and most files held, times `FILES_AHEAD`).
const MAX_FOLDERS: usize = 16;

/// A file fetched ahead, waiting for its open.
#[derive(Debug)]
struct Held {
    chunk: Arc<Chunk>,
    /// `(size, mtime_ns)` in the listing it was chosen from.
    signature: (u64, i64),
    until: Instant,
}

/// A file to fetch ahead now: its index in the listing, and the chunk to complete with its
/// bytes (`CHUNK` at offset 0: the whole file).
#[derive(Debug)]
pub struct Fetch {
    pub index: usize,
    pub chunk: Arc<Chunk>,
}

/// Folder read-ahead state of a mount: where the reader of each folder is, and the files
/// fetched ahead by `(node, path)`.
#[derive(Debug)]
pub struct FolderAhead {
    state: Mutex<State>,
    budget: Arc<Budget>,
}

#[derive(Debug, Default)]
struct State {
    /// By folder `(node, folder path)`.
    folders: HashMap<(usize, String), Reader>,
    held: HashMap<(usize, String), Held>,
}

/// Where a folder's reader is.
#[derive(Debug)]
struct Reader {
    /// The listing the reader's order is followed in: the freshest one seen. It only orders
    /// the fetches; each fetched file is checked against what its open sees, so a listing
    /// that a change on the node made stale is still a good guess of what comes next (on a
    /// camera node, a new snapshot drops the folder's cached listing every second).
    listing: Arc<Vec<Entry>>,
    /// Index of the file last opened in `listing`.
    index: usize,
}

impl FolderAhead {
    pub fn new(budget: Arc<Budget>) -> FolderAhead {
        FolderAhead {
            state: Mutex::default(),
            budget,
        }
    }

    /// The file at `path` on `node` is being opened and the node says it is `entry`: its bytes,
    /// if they were fetched ahead from a listing that described it the same way and are still
    /// trusted.
    pub fn take(&self, node: usize, path: &str, entry: &Entry) -> Option<Arc<Chunk>> {
        let held = self.lock().held.remove(&(node, path.to_owned()))?;
        let fresh = held.until > Instant::now()
            && held.signature == (entry.size, entry.mtime_ns)
            && !held.chunk.failed();
        if !fresh {
            tracing::debug!(
                path,
                expired = held.until <= Instant::now(),
                failed = held.chunk.failed(),
                "a file fetched ahead is stale"
            );
        }
        fresh.then_some(held.chunk)
    }

    /// The file `name` of folder `dir` on `node` was opened; `listing` is the folder's
    /// listing if a fresh one is cached. Returns the files to fetch ahead now: none unless the
    /// previous open in this folder was the file just before this one, and none that
    /// `cached(path, entry)` says the kernel holds already (a reader whose order differs from
    /// the listing's would otherwise have the files behind it fetched again); and none until
    /// [`REFILL`] files of the window are missing, or the window reaches the listing's end.
    /// Each is held for `trust` (how long an answer the node gives now may be trusted); the
    /// caller fetches each [`Fetch::chunk`], the file at [`Fetch::index`] of the returned
    /// listing, best all in one batch.
    pub fn opened(
        &self,
        node: usize,
        dir: &str,
        name: &str,
        listing: Option<Arc<Vec<Entry>>>,
        trust: Duration,
        cached: impl Fn(&str, &Entry) -> bool,
    ) -> (Arc<Vec<Entry>>, Vec<Fetch>) {
        let mut state = self.lock();
        let now = Instant::now();
        state.held.retain(|_, h| h.until > now);
        let folder = (node, dir.to_owned());
        let reader = state.folders.remove(&folder);
        let previous = reader.as_ref().map(|r| r.index);
        let Some(listing) = listing.or_else(|| reader.map(|r| r.listing)) else {
            return (Arc::default(), Vec::new());
        };
        // The next file in order is the likely one: look there first.
        let index = previous
            .map(|p| p + 1)
            .filter(|&i| listing.get(i).is_some_and(|e| e.name == name))
            .or_else(|| listing.iter().position(|e| e.name == name));
        let Some(index) = index else {
            return (listing, Vec::new());
        };
        if state.folders.len() >= MAX_FOLDERS {
            state.folders.clear();
        }
        let reader = Reader {
            listing: listing.clone(),
            index,
        };
        state.folders.insert(folder, reader);
        if previous.is_none_or(|p| p + 1 != index) {
            return (listing, Vec::new());
        }
        // The files of the window not held yet, within the bounds.
        let mut missing = Vec::new();
        let (mut bytes, mut held_ahead) = (0, 0);
        let window = listing.iter().enumerate().skip(index + 1).take(FILES_AHEAD);
        let to_the_end = index + 1 + FILES_AHEAD >= listing.len();
        for (i, e) in window {
            if e.kind != Kind::File || e.size == 0 || e.size > CHUNK {
                continue;
            }
            bytes += e.size;
            if bytes > BYTES_AHEAD || state.held.len() + missing.len() >= MAX_FOLDERS * FILES_AHEAD
            {
                break;
            }
            let key = (node, crate::inodes::join(dir, &e.name));
            if state.held.contains_key(&key) {
                held_ahead += 1;
            } else if !cached(&key.1, e) {
                missing.push((i, key, (e.size, e.mtime_ns)));
            }
        }
        // Refill when half the window is missing, when nothing of it is on the way (a reader
        // just started, or the kernel holds the rest), or at the listing's end.
        if missing.len() < REFILL && held_ahead > 0 && !to_the_end {
            return (listing, Vec::new());
        }
        let until = now + trust;
        let mut fetch = Vec::new();
        for (i, key, signature) in missing {
            if !self.budget.has_room() {
                break;
            }
            let chunk = Chunk::new(0, &self.budget);
            let held = Held {
                chunk: chunk.clone(),
                signature,
                until,
            };
            state.held.insert(key, held);
            fetch.push(Fetch { index: i, chunk });
        }
        (listing, fetch)
    }

    /// `path` on `node` changed (an event): whatever was fetched of it is stale.
    pub fn forget_path(&self, node: usize, path: &str) {
        self.lock().held.remove(&(node, path.to_owned()));
    }

    /// Events of a node may have been missed: drop everything held.
    pub fn forget_all(&self) {
        self.lock().held.clear();
    }

    /// Files held (fetched or in flight).
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.lock().held.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("folder read-ahead lock")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(10);

    fn file(name: &str, size: u64) -> Entry {
        Entry {
            name: name.into(),
            kind: Kind::File,
            size,
            mtime_ns: 7,
            mode: 0o644,
        }
    }

    fn folder(n: usize) -> Arc<Vec<Entry>> {
        Arc::new((0..n).map(|i| file(&name(i), 64 << 10)).collect())
    }

    fn name(i: usize) -> String {
        format!("s{i:03}.jpg")
    }

    /// Open file `i` of `l` in folder "d" of node 0: the indices fetched ahead.
    fn open(ahead: &FolderAhead, l: &Arc<Vec<Entry>>, i: usize, trust: Duration) -> Vec<usize> {
        let (_, f) = ahead.opened(0, "d", &name(i), Some(l.clone()), trust, |_, _| false);
        f.iter().map(|f| f.index).collect()
    }

    #[test]
    fn a_single_open_fetches_nothing_ahead() {
        let ahead = FolderAhead::new(Budget::new(256));
        let l = folder(20);
        assert!(open(&ahead, &l, 5, LONG).is_empty());
        // Not the next one: still nothing.
        assert!(open(&ahead, &l, 9, LONG).is_empty());
        assert_eq!(ahead.held(), 0);
    }

    #[test]
    fn files_held_past_their_trust_are_dropped_by_any_later_open() {
        let ahead = FolderAhead::new(Budget::new(256));
        let l = folder(20);
        open(&ahead, &l, 0, Duration::ZERO);
        assert!(!open(&ahead, &l, 1, Duration::ZERO).is_empty());
        assert!(ahead.held() > 0);
        // The reader stopped; an open elsewhere, out of any order, frees what it left.
        let other = folder(3);
        ahead.opened(0, "e", &name(2), Some(other), LONG, |_, _| false);
        assert_eq!(ahead.held(), 0);
    }

    #[test]
    fn opens_in_listing_order_fetch_the_next_files_once() {
        let ahead = FolderAhead::new(Budget::new(256));
        let l = folder(20);
        assert!(open(&ahead, &l, 0, LONG).is_empty());
        assert_eq!(
            open(&ahead, &l, 1, LONG),
            (2..2 + FILES_AHEAD).collect::<Vec<_>>()
        );
        // The next opens take their files; the window is refilled in one batch once
        // REFILL files of it are missing.
        for i in 2..1 + REFILL {
            assert!(ahead.take(0, &format!("d/{}", name(i)), &l[i]).is_some());
            assert!(open(&ahead, &l, i, LONG).is_empty(), "open {i}");
        }
        let i = 1 + REFILL;
        assert!(ahead.take(0, &format!("d/{}", name(i)), &l[i]).is_some());
        assert_eq!(
            open(&ahead, &l, i, LONG),
            (2 + FILES_AHEAD..i + 1 + FILES_AHEAD).collect::<Vec<_>>()
        );
        assert_eq!(ahead.held(), FILES_AHEAD);
        // Near the end of the listing, what is missing is fetched at once.
        for i in i + 1..20 {
            ahead.take(0, &format!("d/{}", name(i)), &l[i]);
            open(&ahead, &l, i, LONG);
        }
        assert_eq!(ahead.held(), 0, "everything was fetched and taken");
        // Another node's folder of the same name is another folder.
        let (_, f) = ahead.opened(1, "d", &name(3), Some(l.clone()), LONG, |_, _| false);
        assert!(f.is_empty());
    }

    #[test]
    fn without_a_fresh_listing_the_last_one_orders_the_reads() {
        let ahead = FolderAhead::new(Budget::new(256));
        let l = folder(20);
        open(&ahead, &l, 0, LONG);
        let (_, f) = ahead.opened(0, "d", &name(1), None, LONG, |_, _| false);
        assert_eq!(f.len(), FILES_AHEAD);
        // A folder never listed: nothing to go by.
        let (_, f) = ahead.opened(0, "other", &name(1), None, LONG, |_, _| false);
        assert!(f.is_empty());
    }

    #[test]
    fn files_the_kernel_holds_are_not_fetched_again() {
        let ahead = FolderAhead::new(Budget::new(256));
        let l = folder(20);
        open(&ahead, &l, 0, LONG);
        let (_, f) = ahead.opened(0, "d", &name(1), Some(l), LONG, |path, _| {
            path != "d/s005.jpg"
        });
        assert_eq!(f.iter().map(|f| f.index).collect::<Vec<_>>(), vec![5]);
    }

    #[test]
    fn a_changed_expired_or_forgotten_file_is_not_used() {
        let ahead = FolderAhead::new(Budget::new(256));
        let l = folder(20);
        open(&ahead, &l, 0, LONG);
        assert_eq!(open(&ahead, &l, 1, LONG).len(), FILES_AHEAD);
        let mut changed = l[2].clone();
        changed.mtime_ns += 1;
        assert!(
            ahead.take(0, "d/s002.jpg", &changed).is_none(),
            "mtime differs"
        );
        assert!(
            ahead.take(0, "d/s002.jpg", &l[2]).is_none(),
            "taken once, then gone"
        );
        ahead.forget_path(0, "d/s003.jpg");
        assert!(
            ahead.take(0, "d/s003.jpg", &l[3]).is_none(),
            "an event dropped it"
        );
        ahead.forget_all();
        assert!(ahead.take(0, "d/s004.jpg", &l[4]).is_none());
        assert_eq!(ahead.held(), 0);

        let ahead = FolderAhead::new(Budget::new(256));
        open(&ahead, &l, 0, Duration::ZERO);
        assert!(!open(&ahead, &l, 1, Duration::ZERO).is_empty());
        assert!(ahead.take(0, "d/s002.jpg", &l[2]).is_none(), "expired");
    }

    #[test]
    fn only_small_files_within_the_byte_bound_and_the_budget() {
        let ahead = FolderAhead::new(Budget::new(256));
        let mut l: Vec<Entry> = folder(20).to_vec();
        l[2].size = CHUNK + 1; // too big to fetch whole
        l[3].kind = Kind::Dir;
        l[4].size = 0;
        for e in &mut l[5..] {
            e.size = CHUNK; // four of these fill BYTES_AHEAD
        }
        let l = Arc::new(l);
        open(&ahead, &l, 0, LONG);
        assert_eq!(open(&ahead, &l, 1, LONG), vec![5, 6, 7, 8]);

        let budget = Budget::new(2);
        let ahead = FolderAhead::new(budget.clone());
        let l = folder(20);
        open(&ahead, &l, 0, LONG);
        assert_eq!(open(&ahead, &l, 1, LONG).len(), 2);
        assert_eq!(budget.live(), 2);
    }
}
