//! `Skipped`: the entries a listing leaves out, logged once per path with the reason.
//!
//! Some names cannot be served, and were left out of every listing without a word: a name
//! with a line break (every protocol here is line-based), a name that is not UTF-8, a symlink
//! leading out of the share (or nowhere), a FIFO, socket or device. The owner of the share then
//! saw files on disk that no door showed. Each is now logged the first time a listing meets
//! it, naming the path and what to do; a share listed again and again logs it once. At most
//! [`MAX_REMEMBERED`] paths are remembered (a folder of a million odd names must not grow the
//! node's memory): past that, one line says that further ones are not logged, the paths are
//! forgotten, and a skipped entry costs nothing more.

use std::collections::HashSet;
use std::sync::Mutex;

/// Most skipped paths remembered (and so logged).
pub const MAX_REMEMBERED: usize = 4096;

/// Why an entry is not served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// `\n` or `\r` in the name.
    LineBreak,
    NotUtf8,
    /// A symlink whose target is outside the share, or does not exist.
    LeadsOut,
    /// A FIFO, socket or device.
    NotAFile,
}

impl Reason {
    fn explain(self) -> &'static str {
        match self {
            Reason::LineBreak => {
                "its name holds a line break, which the line-based protocols cannot carry; \
                 rename it"
            }
            Reason::NotUtf8 => "its name is not UTF-8; rename it (e.g. with convmv)",
            Reason::LeadsOut => {
                "a symlink leading out of the share (or to nothing): only links that stay \
                 inside are followed"
            }
            Reason::NotAFile => "not a regular file or folder (a FIFO, socket or device)",
        }
    }
}

/// The paths already logged.
#[derive(Debug, Default)]
pub struct Skipped {
    seen: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    paths: HashSet<Vec<u8>>,
    /// [`MAX_REMEMBERED`] paths were logged, and that nothing more will be: from then on a
    /// skipped entry costs one check, not a path built and looked up.
    full: bool,
}

impl Skipped {
    /// Log the entry `name` of the folder `dir` (both relative to the share; `name` raw bytes)
    /// as not served for `why`, unless it was already. Returns whether it was logged now.
    pub fn note(&self, dir: &str, name: &[u8], why: Reason) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.full {
            return false;
        }
        let mut path = Vec::with_capacity(dir.len() + 1 + name.len());
        if !dir.is_empty() {
            path.extend_from_slice(dir.as_bytes());
            path.push(b'/');
        }
        path.extend_from_slice(name);
        if seen.paths.contains(&path) {
            return false;
        }
        if seen.paths.len() == MAX_REMEMBERED {
            seen.full = true;
            seen.paths = HashSet::new();
            tracing::warn!(
                "{MAX_REMEMBERED} entries of the share are not served (logged above); further \
                 ones are not logged"
            );
            return false;
        }
        // `{:?}` of the lossy text: a line break or control character shows escaped.
        tracing::warn!(
            "not served: {:?}: {}",
            String::from_utf8_lossy(&path),
            why.explain()
        );
        seen.paths.insert(path);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_path_is_logged_once_and_memory_is_bounded() {
        let s = Skipped::default();
        assert!(s.note("", b"a\nb", Reason::LineBreak));
        assert!(!s.note("", b"a\nb", Reason::LineBreak));
        assert!(s.note("a", b"b", Reason::NotUtf8), "a/b is another path");
        assert!(
            !s.note("", b"a/b", Reason::NotUtf8),
            "the same path, said once"
        );
        assert!(s.note("clips", b"caf\xe9", Reason::NotUtf8));
        let mut logged = 3;
        for i in 0..MAX_REMEMBERED * 2 {
            logged += usize::from(s.note("links", format!("link{i}").as_bytes(), Reason::LeadsOut));
        }
        assert_eq!(logged, MAX_REMEMBERED);
        let seen = s.seen.lock().unwrap();
        assert!(seen.full && seen.paths.is_empty(), "nothing kept once full");
        drop(seen);
        assert!(!s.note("", b"one more", Reason::NotAFile));
    }
}
