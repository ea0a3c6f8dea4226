//! What this node's own retention removed, so replication does not fetch it back.
//!
//! An archive (`--archive --max-size …`) pulls every clip of its camera; its retention then
//! removes the oldest. The camera may still hold them, and a catch-up (each time the archive
//! starts) pulls every file it lacks: without this record, every restart fetched back what
//! retention had removed, with fresh modification times, so retention then removed the
//! archive's own older clips in their place — the ones the camera no longer has.
//!
//! Kept per path: when retention removed it (this node's clock, seconds). A peer's version
//! of that path modified before then (or in that second) is one this node had and let go;
//! one modified later is
//! a new recording and is pulled as usual (which forgets the record). Clocks that disagree by
//! more than the time between a deletion and a new recording of the same name could hold such
//! a recording back until its next change; names of recordings carry their time, so that
//! does not happen with cameras.
//!
//! The record survives restarts: one line per removal (`SECONDS PATH`), and one per path
//! pulled again (`- PATH`), appended to a file in the node's state folder and read at start;
//! at most [`MAX_RETIRED`] paths (the oldest forgotten first; forgetting costs one fetch and
//! one more deletion, never data). The file is rewritten compact only when it holds twice
//! what is remembered, so a camera that reuses its clip names costs one line per pull.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Most paths remembered.
pub const MAX_RETIRED: usize = 100_000;

/// The paths retention removed here, and when. Cheap to clone.
#[derive(Clone, Default)]
pub struct Retired {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    /// Where the record is kept (`None`: in memory only).
    file: Option<PathBuf>,
    /// The record open for appending (opened at load, again after a rewrite).
    out: Option<std::fs::File>,
    /// Per path: when retention removed it, and the sequence number of that entry in `order`.
    when: HashMap<String, (i64, u64)>,
    /// Paths in the order they were removed, for forgetting the oldest, each with the
    /// sequence number it had when pushed. An entry whose number is not the one in `when`
    /// (the path was forgotten, or removed again since) is stale: skipped when popped, and
    /// swept when stale entries outnumber live ones, so a removal costs O(1) amortised
    /// instead of a scan of up to [`MAX_RETIRED`] paths.
    order: VecDeque<(u64, String)>,
    /// The next sequence number.
    seq: u64,
    /// Lines in the file, rewritten compact when it holds twice what is remembered.
    lines: usize,
}

impl Retired {
    /// The record kept in `file` (its folder created here), as far as it can be read.
    pub fn load(file: PathBuf) -> Retired {
        let mut inner = Inner::default();
        if let Ok(f) = std::fs::File::open(&file) {
            for line in std::io::BufReader::new(f).lines().map_while(Result::ok) {
                inner.lines += 1;
                match line.split_once(' ') {
                    Some(("-", path)) => inner.remove(path),
                    Some((secs, path)) => {
                        if let Ok(secs) = secs.parse() {
                            inner.insert(path, secs);
                        }
                    }
                    None => {}
                }
            }
        }
        if let Some(dir) = file.parent()
            && let Err(e) = std::fs::create_dir_all(dir)
        {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot make the folder of the retention record");
        }
        inner.file = Some(file);
        if inner.wants_compaction() {
            inner.rewrite();
        } else {
            inner.open();
        }
        Retired {
            inner: Arc::new(Mutex::new(inner)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Retention removed `path` at `secs` (seconds since the epoch).
    pub fn add(&self, path: &str, secs: i64) {
        let mut inner = self.lock();
        inner.insert(path, secs);
        inner.append(&format!("{secs} {path}"));
    }

    /// Whether a peer's version of `path` modified at `mtime_secs` is one retention removed
    /// here (modified before the removal, or in its second).
    pub fn removed(&self, path: &str, mtime_secs: i64) -> bool {
        self.lock()
            .when
            .get(path)
            .is_some_and(|&(t, _)| mtime_secs <= t)
    }

    /// `path` is here again (a newer version pulled): the record no longer applies.
    pub fn forget(&self, path: &str) {
        let mut inner = self.lock();
        if inner.when.contains_key(path) {
            inner.remove(path);
            inner.append(&format!("- {path}"));
        }
    }
}

impl Inner {
    fn remove(&mut self, path: &str) {
        // Its entry in `order` is now stale.
        if self.when.remove(path).is_some() {
            self.sweep();
        }
    }

    fn insert(&mut self, path: &str, secs: i64) {
        let seq = self.seq;
        self.seq += 1;
        // A path removed again leaves its older entry in `order` stale.
        self.when.insert(path.to_owned(), (secs, seq));
        self.order.push_back((seq, path.to_owned()));
        while self.when.len() > MAX_RETIRED {
            let Some((seq, old)) = self.order.pop_front() else {
                break;
            };
            if self.when.get(&old).is_some_and(|&(_, s)| s == seq) {
                self.when.remove(&old);
            }
        }
        self.sweep();
    }

    /// Drop the stale entries of `order` once they outnumber the live ones (plus a floor),
    /// so `order` stays within about twice what is remembered at O(1) amortised cost.
    fn sweep(&mut self) {
        if self.order.len() <= 2 * self.when.len() + 64 {
            return;
        }
        let when = &self.when;
        self.order
            .retain(|(seq, p)| when.get(p).is_some_and(|&(_, s)| s == *seq));
    }

    /// The entries remembered, oldest first.
    fn live(&self) -> impl Iterator<Item = (i64, &str)> {
        self.order.iter().filter_map(|(seq, p)| {
            let &(secs, s) = self.when.get(p)?;
            (s == *seq).then_some((secs, p.as_str()))
        })
    }

    /// Whether the file holds more than twice what is remembered (or a floor, so a few
    /// entries re-pulled again and again do not rewrite it every other line); the one
    /// threshold for load and append.
    fn wants_compaction(&self) -> bool {
        self.lines > 2 * self.when.len().max(MAX_RETIRED / 100)
    }

    /// Open the file for appending (kept open between lines).
    fn open(&mut self) {
        let Some(file) = &self.file else { return };
        match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)
        {
            Ok(f) => self.out = Some(f),
            Err(e) => {
                self.out = None;
                tracing::warn!(file = %file.display(), error = %e, "cannot open the retention record: a restart may fetch back what retention removed");
            }
        }
    }

    fn append(&mut self, line: &str) {
        if self.file.is_none() {
            return;
        }
        if self.out.is_none() {
            self.open();
        }
        let Some(out) = &mut self.out else { return };
        match writeln!(out, "{line}") {
            Ok(()) => self.lines += 1,
            Err(e) => {
                if let Some(file) = &self.file {
                    tracing::warn!(file = %file.display(), error = %e, "cannot keep what retention removed: a restart may fetch it again");
                }
            }
        }
        if self.wants_compaction() {
            self.rewrite();
        }
    }

    /// The file holds exactly what is remembered (replaced atomically and durably), then is
    /// open again for appending.
    fn rewrite(&mut self) {
        let Some(file) = self.file.clone() else {
            return;
        };
        let body: String = self
            .live()
            .map(|(secs, p)| format!("{secs} {p}\n"))
            .collect();
        // The old file's handle would append to the replaced inode.
        self.out = None;
        match meshfs_core::identity::replace_file(&file, body.as_bytes(), 0o600) {
            Ok(()) => self.lines = self.when.len(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot rewrite the retention record")
            }
        }
        self.open();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removals_survive_a_restart_and_newer_versions_pass() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("state/removed.txt");
        let r = Retired::load(file.clone());
        r.add("clips/a.mp4", 1000);
        r.add("b.mp4", 2000);
        let r = Retired::load(file.clone());
        assert!(r.removed("clips/a.mp4", 1000));
        assert!(
            !r.removed("clips/a.mp4", 1001),
            "modified after the removal"
        );
        assert!(r.removed("b.mp4", 10));
        assert!(!r.removed("c.mp4", 10));
        r.forget("b.mp4");
        let r = Retired::load(file.clone());
        assert!(!r.removed("b.mp4", 10));
        assert!(r.removed("clips/a.mp4", 999));
        // A reused name pulled again and again appends a line each time, and the file is
        // compacted before it holds more than twice what is remembered (or a floor).
        for i in 0..5_000 {
            r.add("reused.mp4", i);
            r.forget("reused.mp4");
        }
        let lines = std::fs::read_to_string(&file).unwrap().lines().count();
        assert!(lines <= 2 * (MAX_RETIRED / 100) + 1, "{lines} lines");
        let r = Retired::load(file);
        assert!(!r.removed("reused.mp4", 0));
        assert!(r.removed("clips/a.mp4", 999));
    }

    #[test]
    fn the_oldest_removal_is_forgotten_first_and_a_renewed_one_counts_as_new() {
        let r = Retired::default();
        r.add("renewed.mp4", 1);
        r.add("oldest.mp4", 1);
        r.add("renewed.mp4", 2);
        for i in 0..MAX_RETIRED - 2 {
            r.add(&format!("{i}.mp4"), 3);
        }
        assert!(r.removed("oldest.mp4", 1), "still within the cap");
        r.add("one-more.mp4", 3);
        assert!(!r.removed("oldest.mp4", 1), "the oldest is forgotten");
        assert!(
            r.removed("renewed.mp4", 2),
            "removed again later: not the oldest"
        );
        assert!(r.removed("0.mp4", 3));
        let inner = r.lock();
        assert_eq!(inner.when.len(), MAX_RETIRED);
        assert!(inner.order.len() <= 2 * MAX_RETIRED + 64);
    }
}
