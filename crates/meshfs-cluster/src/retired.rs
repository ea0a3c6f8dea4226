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
    when: HashMap<String, i64>,
    /// Paths in the order they were removed, for forgetting the oldest.
    order: VecDeque<String>,
    /// Lines in the file, rewritten compact when it holds twice what is remembered.
    lines: usize,
}

impl Retired {
    /// The record kept in `file` (created when needed), as far as it can be read.
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
        inner.file = Some(file);
        if inner.lines > 2 * inner.when.len().max(1) {
            inner.rewrite();
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
        self.lock().when.get(path).is_some_and(|&t| mtime_secs <= t)
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
        if self.when.remove(path).is_some() {
            self.order.retain(|p| p != path);
        }
    }

    fn insert(&mut self, path: &str, secs: i64) {
        if self.when.insert(path.to_owned(), secs).is_some() {
            self.order.retain(|p| p != path);
        }
        self.order.push_back(path.to_owned());
        while self.order.len() > MAX_RETIRED {
            if let Some(old) = self.order.pop_front() {
                self.when.remove(&old);
            }
        }
    }

    fn append(&mut self, line: &str) {
        let Some(file) = &self.file else { return };
        let written = (|| {
            if let Some(dir) = file.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(file)?;
            writeln!(f, "{line}")
        })();
        match written {
            Ok(()) => self.lines += 1,
            Err(e) => {
                tracing::warn!(file = %file.display(), error = %e, "cannot keep what retention removed: a restart may fetch it again");
            }
        }
        if self.lines > 2 * self.when.len().max(MAX_RETIRED / 100) {
            self.rewrite();
        }
    }

    /// The file holds exactly what is remembered (written aside, then renamed).
    fn rewrite(&mut self) {
        let Some(file) = &self.file else { return };
        let tmp = file.with_extension("tmp");
        let body: String = self
            .order
            .iter()
            .map(|p| format!("{} {p}\n", self.when[p]))
            .collect();
        match std::fs::write(&tmp, body).and_then(|()| std::fs::rename(&tmp, file)) {
            Ok(()) => self.lines = self.order.len(),
            Err(e) => {
                tracing::warn!(file = %file.display(), error = %e, "cannot rewrite the retention record")
            }
        }
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
}
