//! The share's size, file count and free space, measured in the background so that a scrape
//! or a `status` request only reads atomics.
//!
//! Free space is one `fstatvfs` every [`DISK_EVERY`]. Size and file count need a walk of the
//! whole share, which is repeated only when events were logged since the last one, and then
//! no sooner than [`MIN_REWALK`] after it nor sooner than ten times its own duration after
//! it: a share of a million files that takes a second to walk is walked at most every ten
//! seconds, so the measurement never costs more than a tenth of one core.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::retention::disk::DiskUsage;
use crate::share::Share;

/// How often free space is measured.
pub const DISK_EVERY: Duration = Duration::from_secs(5);
/// Shortest time between two walks of the share.
pub const MIN_REWALK: Duration = Duration::from_secs(2);
/// Entries looked at by one walk at most (a bound on its time and memory).
pub const MAX_WALK: usize = 5_000_000;

/// The last measurements (all 0 until the first).
#[derive(Debug)]
pub struct ShareUsage {
    files: AtomicU64,
    bytes: AtomicU64,
    available: AtomicU64,
    total: AtomicU64,
    /// 0 until the first walk ended.
    walked: AtomicU64,
}

/// One reading of [`ShareUsage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UsageSnapshot {
    /// Regular files in the share.
    pub files: u64,
    /// Their sizes added up (apparent size, as `ls` shows).
    pub bytes: u64,
    /// Free space an unprivileged writer can use on the share's file system.
    pub available: u64,
    /// That file system's size.
    pub total: u64,
    /// Whether `files` and `bytes` have been measured yet.
    pub walked: bool,
}

impl UsageSnapshot {
    /// Disk nearly full: less than 5 % free.
    pub fn nearly_full(&self) -> bool {
        self.total > 0 && self.available < self.total / 20
    }
}

impl Default for ShareUsage {
    fn default() -> Self {
        Self::new()
    }
}

impl ShareUsage {
    pub const fn new() -> ShareUsage {
        ShareUsage {
            files: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            available: AtomicU64::new(0),
            total: AtomicU64::new(0),
            walked: AtomicU64::new(0),
        }
    }

    pub fn snapshot(&self) -> UsageSnapshot {
        UsageSnapshot {
            files: self.files.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            available: self.available.load(Ordering::Relaxed),
            total: self.total.load(Ordering::Relaxed),
            walked: self.walked.load(Ordering::Relaxed) != 0,
        }
    }

    fn set_disk(&self, disk: DiskUsage) {
        self.available.store(disk.available, Ordering::Relaxed);
        self.total.store(disk.total, Ordering::Relaxed);
    }

    fn set_walk(&self, files: u64, bytes: u64) {
        self.files.store(files, Ordering::Relaxed);
        self.bytes.store(bytes, Ordering::Relaxed);
        self.walked.store(1, Ordering::Relaxed);
    }

    pub(super) fn render(&self, out: &mut String) {
        let s = self.snapshot();
        let mut family = |name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        };
        if s.walked {
            family("meshfs_share_files", "Regular files in the share.", s.files);
            family(
                "meshfs_share_bytes",
                "Size of the files in the share.",
                s.bytes,
            );
        }
        if s.total > 0 {
            family(
                "meshfs_disk_available_bytes",
                "Free space on the share's file system (for an unprivileged writer).",
                s.available,
            );
            family(
                "meshfs_disk_size_bytes",
                "Size of the share's file system.",
                s.total,
            );
        }
    }

    /// Measure `share` into this until `shutdown`, on a thread of the blocking pool (walks
    /// block on the file system). `changes` tells whether anything changed since it was last
    /// asked; `None` (an unwatched share) re-walks every [`MIN_REWALK`].
    pub async fn follow(&'static self, share: Share, shutdown: CancellationToken) {
        let events = super::metrics();
        let mut walked: Option<(Instant, Duration, u64)> = None;
        let mut next_disk = Instant::now();
        loop {
            let now = Instant::now();
            if now >= next_disk {
                let s = share.clone();
                if let Ok(Ok(disk)) = tokio::task::spawn_blocking(move || {
                    let root = s.parent_dir("x")?.0;
                    DiskUsage::of(&root).map_err(crate::ShareError::from)
                })
                .await
                {
                    self.set_disk(disk);
                }
                next_disk = now + DISK_EVERY;
            }
            let seen = events.events_total.get();
            let due = match walked {
                None => true,
                Some((at, took, count)) => count != seen && now >= at + MIN_REWALK.max(took * 10),
            };
            if due {
                let s = share.clone();
                let start = Instant::now();
                if let Ok((files, bytes)) = tokio::task::spawn_blocking(move || walk(&s)).await {
                    self.set_walk(files, bytes);
                }
                walked = Some((start, start.elapsed(), seen));
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }
}

/// Regular files and their bytes, walking folders beneath the root without following
/// symlinks (a link to a parent cannot make it loop). Bounded by [`MAX_WALK`] entries.
pub fn walk(share: &Share) -> (u64, u64) {
    let (mut files, mut bytes, mut seen) = (0u64, 0u64, 0usize);
    let mut dirs = vec![String::new()];
    while let Some(dir) = dirs.pop() {
        let join = |name: &str| crate::share::join_path(&dir, name);
        let Ok((folder, _)) = share.parent_dir(&join("x")) else {
            continue;
        };
        let Ok(entries) = share.list(&dir) else {
            continue;
        };
        for name in entries.into_iter().map(|e| e.name) {
            seen += 1;
            if seen > MAX_WALK {
                tracing::warn!("share usage: more than {MAX_WALK} entries, counting the first");
                return (files, bytes);
            }
            let Ok(st) = folder.stat(&name, false) else {
                continue;
            };
            match st.st_mode & libc::S_IFMT {
                libc::S_IFDIR => dirs.push(join(&name)),
                libc::S_IFREG => {
                    files += 1;
                    bytes = bytes.saturating_add(st.st_size as u64);
                }
                _ => {}
            }
        }
    }
    (files, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walk_counts_files_in_folders_and_skips_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::write(dir.path().join("one"), b"12345").unwrap();
        std::fs::write(dir.path().join("a/b/two"), vec![0u8; 1000]).unwrap();
        std::os::unix::fs::symlink("..", dir.path().join("a/up")).unwrap();
        std::os::unix::fs::symlink("one", dir.path().join("link")).unwrap();
        let share = Share::open(dir.path()).unwrap();
        assert_eq!(walk(&share), (2, 1005));
    }
}
