//! Which files are still being written, so retention never deletes one.
//!
//! Two sources, both consulted before any deletion:
//! - the share's event log ([`Writers`]): a file reported `modified` after its last `closed`
//!   (or `created` by a write, and then `modified`) is being written, however old its
//!   modification time looks. `closed` makes it complete again; `deleted` forgets it; a
//!   `resync` (events were lost) forgets everything, leaving the other rules to decide;
//! - the kernel ([`open_for_writing`]): any process holding the file open for writing, seen in
//!   `/proc/PID/fd` and `fdinfo`. This catches a writer that created a file and has not
//!   written long enough to be reported `modified`, or one whose events were lost. Processes of
//!   other users are invisible unless the node runs as root; the event rule still applies.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::events::{Event, EventKind, Events};

/// What the event log last said of a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// `created` (a rename into place, or the start of a write): complete unless open.
    Created,
    /// `modified` after the last `closed`: being written, never deleted.
    Modified,
    /// `closed`: a writer finished it.
    Closed,
}

/// Most paths remembered; beyond it the completed ones are forgotten first.
const MAX_PATHS: usize = 200_000;

/// The event log's view of every path it reported since the node started (or the last
/// `resync`).
#[derive(Debug, Default)]
pub struct Writers {
    paths: HashMap<String, Seen>,
}

impl Writers {
    /// Take one event into account.
    pub fn note(&mut self, event: &Event) {
        let seen = match event.kind {
            EventKind::Created => Seen::Created,
            EventKind::Modified => Seen::Modified,
            EventKind::Closed => Seen::Closed,
            EventKind::Deleted => {
                self.paths.remove(&event.path);
                return;
            }
            EventKind::Resync => {
                self.forget();
                return;
            }
        };
        if self.paths.len() >= MAX_PATHS && !self.paths.contains_key(&event.path) {
            self.paths.retain(|_, s| *s == Seen::Modified);
            if self.paths.len() >= MAX_PATHS {
                return;
            }
        }
        self.paths.insert(event.path.clone(), seen);
    }

    /// Events were lost: what was known may be stale.
    pub fn forget(&mut self) {
        if !self.paths.is_empty() {
            tracing::debug!("retention: events lost, relying on open files and ages");
        }
        self.paths.clear();
    }

    /// What the log last said of `path`, if anything.
    pub fn seen(&self, path: &str) -> Option<Seen> {
        self.paths.get(path).copied()
    }
}

/// [`Writers`] kept up to date from a share's live events, shared with whoever asks.
#[derive(Clone, Default)]
pub struct Tracked {
    inner: Arc<Mutex<Writers>>,
}

impl Tracked {
    /// Follow `events` until `shutdown` (subscribed before returning: nothing is missed),
    /// waking `on_closed` (if any) whenever a file is `closed` or events were lost.
    pub fn follow(
        events: &Events,
        on_closed: Option<Arc<Notify>>,
        shutdown: CancellationToken,
        tracker: &TaskTracker,
    ) -> Tracked {
        let me = Tracked::default();
        let mut live = events.subscribe(None).live;
        let tracked = me.clone();
        tracker.spawn(async move {
            loop {
                let event = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    e = live.recv() => e,
                };
                let wake = match event {
                    Ok(e) => {
                        tracked.lock().note(&e);
                        e.kind == EventKind::Closed
                    }
                    Err(RecvError::Lagged(_)) => {
                        tracked.lock().forget();
                        true
                    }
                    Err(RecvError::Closed) => return,
                };
                if let (true, Some(n)) = (wake, &on_closed) {
                    n.notify_one();
                }
            }
        });
        me
    }

    pub fn lock(&self) -> MutexGuard<'_, Writers> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `(device, inode)` of every regular file under `root` that some process has open for
/// writing. Only descriptors whose link names a path under `root` are looked at closely.
pub fn open_for_writing(root: &Path) -> HashSet<(u64, u64)> {
    let mut out = HashSet::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for proc_entry in procs.flatten() {
        let pid = proc_entry.file_name();
        if !pid
            .to_str()
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
        {
            continue;
        }
        let fd_dir = proc_entry.path().join("fd");
        let Ok(fds) = std::fs::read_dir(&fd_dir) else {
            continue; // gone, or another user's
        };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            if !target.starts_with(root) {
                continue;
            }
            let info = proc_entry.path().join("fdinfo").join(fd.file_name());
            let Ok(info) = std::fs::read_to_string(info) else {
                continue;
            };
            let writable = info
                .lines()
                .find_map(|l| l.strip_prefix("flags:"))
                .and_then(|f| u32::from_str_radix(f.trim(), 8).ok())
                .is_some_and(|flags| {
                    let mode = flags & libc::O_ACCMODE as u32;
                    mode == libc::O_WRONLY as u32 || mode == libc::O_RDWR as u32
                });
            if !writable {
                continue;
            }
            // Through the descriptor itself: the file it holds, even if renamed since.
            if let Ok(md) = std::fs::metadata(fd.path())
                && md.is_file()
            {
                out.insert((md.dev(), md.ino()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_say_what_is_being_written() {
        let mut w = Writers::default();
        let ev = |kind, path: &str| Event::new(1, kind, path);
        w.note(&ev(EventKind::Created, "a"));
        w.note(&ev(EventKind::Modified, "a"));
        assert_eq!(w.seen("a"), Some(Seen::Modified));
        w.note(&ev(EventKind::Closed, "a"));
        assert_eq!(w.seen("a"), Some(Seen::Closed));
        w.note(&ev(EventKind::Modified, "a"));
        assert_eq!(w.seen("a"), Some(Seen::Modified));
        w.note(&ev(EventKind::Deleted, "a"));
        assert_eq!(w.seen("a"), None);
        w.note(&ev(EventKind::Created, "b"));
        w.note(&ev(EventKind::Resync, ""));
        assert_eq!(w.seen("b"), None);
    }

    #[test]
    fn open_writers_are_found_in_proc() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let writing = std::fs::File::create(root.join("w")).unwrap();
        std::fs::write(root.join("r"), b"x").unwrap();
        let reading = std::fs::File::open(root.join("r")).unwrap();
        let open = open_for_writing(&root);
        let id = |f: &std::fs::File| {
            let md = f.metadata().unwrap();
            (md.dev(), md.ino())
        };
        assert!(open.contains(&id(&writing)));
        assert!(!open.contains(&id(&reading)));
    }
}
