//! The local file versions known to be in step with a peer: the only ones a peer's version
//! may replace, and the only ones a peer's deletion may remove.
//!
//! Bounded: past the cap the oldest half (by when each path was last marked) is forgotten at
//! once. Forgetting is not free: a later difference on a forgotten path becomes a conflict
//! copy, and a peer's deletion of it is not followed here (the next catch-up fetches it back
//! to the peer that deleted it). Dropping the oldest half, not everything, keeps that to paths
//! untouched for the longest, and costs O(n) once per n/2 marks.

use std::collections::HashMap;

/// Most file versions remembered as in step with a peer.
pub const MAX_IN_STEP: usize = 200_000;

/// Per path: size, modification time (ns) and when it was marked (a sequence number).
pub(crate) struct InStep {
    versions: HashMap<String, (u64, i64, u64)>,
    next: u64,
    cap: usize,
}

impl Default for InStep {
    fn default() -> InStep {
        InStep::with_cap(MAX_IN_STEP)
    }
}

impl InStep {
    fn with_cap(cap: usize) -> InStep {
        InStep {
            versions: HashMap::new(),
            next: 0,
            cap: cap.max(2),
        }
    }

    /// The version of `path` of this `size` and `mtime_ns` is in step.
    pub(crate) fn mark(&mut self, path: &str, size: u64, mtime_ns: i64) {
        if self.versions.len() >= self.cap && !self.versions.contains_key(path) {
            self.forget_oldest_half();
        }
        let seq = self.next;
        self.next += 1;
        self.versions.insert(path.to_owned(), (size, mtime_ns, seq));
    }

    /// Whether the version of `path` of this `size` and `mtime_ns` is known in step.
    pub(crate) fn is(&self, path: &str, size: u64, mtime_ns: i64) -> bool {
        self.versions
            .get(path)
            .is_some_and(|&(s, m, _)| (s, m) == (size, mtime_ns))
    }

    pub(crate) fn remove(&mut self, path: &str) {
        self.versions.remove(path);
    }

    fn forget_oldest_half(&mut self) {
        let mut seqs: Vec<u64> = self.versions.values().map(|&(_, _, seq)| seq).collect();
        let mid = seqs.len() / 2;
        let (_, &mut newest_kept_from, _) = seqs.select_nth_unstable(mid);
        self.versions
            .retain(|_, &mut (_, _, seq)| seq >= newest_kept_from);
        tracing::info!(
            forgotten = mid,
            "forgot the oldest half of the file versions known in step with the peers: a peer's deletion of one of them is not followed here"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_cap_the_oldest_half_is_forgotten() {
        let mut s = InStep::with_cap(10);
        for i in 0..10 {
            s.mark(&format!("{i}"), i, 0);
        }
        s.mark("0", 0, 1); // marked again: now the newest
        s.mark("new", 5, 5);
        assert!(s.is("new", 5, 5));
        assert!(s.is("0", 0, 1), "marked again late: kept");
        assert!(!s.is("0", 0, 0), "a different version is not in step");
        for i in 1..=5 {
            assert!(!s.is(&format!("{i}"), i, 0), "{i}: among the oldest");
        }
        for i in 6..10 {
            assert!(s.is(&format!("{i}"), i, 0), "{i}: among the newest");
        }
        s.remove("new");
        assert!(!s.is("new", 5, 5));
    }
}
