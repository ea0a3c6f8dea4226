//! Which block each source fetches next in a multi-source download: work stealing, so fast
//! sources take more blocks, and at the end a block still held by one source may be asked of
//! another too (the first verified copy wins).

use std::collections::{BTreeMap, BTreeSet};

/// The blocks of one download: done, waiting, or being fetched (and by which sources).
#[derive(Debug)]
pub(super) struct Schedule {
    done: Vec<bool>,
    /// Not done and fetched by no source, lowest first.
    waiting: BTreeSet<u64>,
    /// Being fetched: block → the sources fetching it (two at most, at the end).
    fetching: BTreeMap<u64, Vec<usize>>,
    remaining: u64,
}

impl Schedule {
    /// `done[k]`: block `k` is already on disk and verified.
    pub(super) fn new(done: Vec<bool>) -> Schedule {
        let waiting: BTreeSet<u64> = (0..done.len() as u64)
            .filter(|&k| !done[k as usize])
            .collect();
        Schedule {
            remaining: waiting.len() as u64,
            done,
            waiting,
            fetching: BTreeMap::new(),
        }
    }

    /// Blocks not done yet.
    pub(super) fn remaining(&self) -> u64 {
        self.remaining
    }

    pub(super) fn done(&self) -> &[bool] {
        &self.done
    }

    pub(super) fn is_done(&self, k: u64) -> bool {
        self.done[k as usize]
    }

    /// The next block for `source`: the lowest waiting one; when none waits, the lowest block
    /// only one other source is fetching (its copy may be slow: whichever arrives first and
    /// verifies is kept). `None`: nothing this source can help with now.
    pub(super) fn next(&mut self, source: usize) -> Option<u64> {
        if let Some(k) = self.waiting.pop_first() {
            self.fetching.insert(k, vec![source]);
            return Some(k);
        }
        let (&k, holders) = self
            .fetching
            .iter_mut()
            .find(|(_, holders)| holders.len() == 1 && holders[0] != source)?;
        holders.push(source);
        Some(k)
    }

    /// `source` verified and wrote block `k`. True if it is the first copy (counted), false
    /// if another source's copy came first.
    pub(super) fn complete(&mut self, k: u64, source: usize) -> bool {
        self.release(k, source);
        if self.done[k as usize] {
            return false;
        }
        self.done[k as usize] = true;
        self.waiting.remove(&k);
        self.fetching.remove(&k);
        self.remaining -= 1;
        true
    }

    /// `source` will not bring block `k` (it failed, lied, or is gone): the block waits again
    /// unless another source still fetches it or it is done.
    pub(super) fn give_back(&mut self, k: u64, source: usize) {
        self.release(k, source);
        if !self.done[k as usize] && !self.fetching.contains_key(&k) {
            self.waiting.insert(k);
        }
    }

    fn release(&mut self, k: u64, source: usize) {
        if let Some(holders) = self.fetching.get_mut(&k) {
            holders.retain(|&s| s != source);
            if holders.is_empty() {
                self.fetching.remove(&k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_take_the_lowest_waiting_block_then_help_with_slow_ones() {
        let mut s = Schedule::new(vec![true, false, false, false]);
        assert_eq!(s.remaining(), 3);
        assert_eq!(s.next(0), Some(1));
        assert_eq!(s.next(1), Some(2));
        assert_eq!(s.next(0), Some(3));
        // Nothing waits: source 1 helps with block 1 (held by 0 alone), never its own.
        assert_eq!(s.next(1), Some(1));
        assert_eq!(s.next(1), Some(3));
        assert_eq!(s.next(1), None);
        assert!(s.complete(1, 1));
        assert!(!s.complete(1, 0), "the second copy is not counted");
        assert_eq!(s.remaining(), 2);
    }

    #[test]
    fn a_block_given_back_waits_again_unless_another_source_has_it() {
        let mut s = Schedule::new(vec![false, false]);
        assert_eq!(s.next(0), Some(0));
        s.give_back(0, 0);
        assert_eq!(s.next(1), Some(0), "waiting again");
        assert_eq!(s.next(2), Some(1));
        assert_eq!(s.next(0), Some(0), "helping source 1");
        s.give_back(0, 1);
        assert_eq!(
            s.next(3),
            Some(0),
            "block 0 is fetched by source 0 alone again"
        );
        assert!(s.complete(0, 0));
        s.give_back(0, 3);
        s.give_back(1, 2);
        assert_eq!(s.next(0), Some(1), "given back, nobody else had it");
        assert!(s.complete(1, 0));
        assert_eq!((s.remaining(), s.next(1)), (0, None));
    }
}
