//! The attribute and directory cache: what a node said about a path, kept for a short time.
//!
//! Why short: files on a camera node appear, grow and vanish while the mount is up. Until
//! change events are available from every node, freshness comes only from asking again, so
//! entries live for a fraction of a second — long enough that `ls -l` or a video player's burst
//! of `stat`s costs one round trip, short enough that a new file appears within a second.
//! The cache is bounded: past [`MAX_ENTRIES`] stale entries are dropped (and if all are fresh,
//! everything is), so a huge tree cannot grow it without end.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use meshfs_core::Entry;

/// Most entries one cache map holds.
pub const MAX_ENTRIES: usize = 100_000;

/// A map whose values expire `ttl` after they were stored.
#[derive(Debug)]
pub struct TtlMap<K, V> {
    ttl: Duration,
    map: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + Hash, V: Clone> TtlMap<K, V> {
    pub fn new(ttl: Duration) -> Self {
        TtlMap {
            ttl,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// The value for `key` if it is still fresh.
    pub fn get(&self, key: &K) -> Option<V> {
        let map = self.map.lock().expect("cache lock");
        map.get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, v)| v.clone())
    }

    pub fn insert(&self, key: K, value: V) {
        let mut map = self.map.lock().expect("cache lock");
        if map.len() >= MAX_ENTRIES {
            let ttl = self.ttl;
            map.retain(|_, (at, _)| at.elapsed() < ttl);
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
        }
        map.insert(key, (Instant::now(), value));
    }

    /// Forget everything (events were missed: nothing cached can be trusted).
    pub fn clear(&self) {
        self.map.lock().expect("cache lock").clear();
    }

    pub fn remove(&self, key: &K) {
        self.map.lock().expect("cache lock").remove(key);
    }

    pub fn len(&self) -> usize {
        self.map.lock().expect("cache lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Attributes by inode and listings by directory inode.
#[derive(Debug)]
pub struct MetaCache {
    pub attrs: TtlMap<u64, Entry>,
    pub dirs: TtlMap<u64, Arc<Vec<Entry>>>,
}

impl MetaCache {
    pub fn new(ttl: Duration) -> MetaCache {
        MetaCache {
            attrs: TtlMap::new(ttl),
            dirs: TtlMap::new(ttl),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_expire_after_the_ttl() {
        let m = TtlMap::new(Duration::from_millis(30));
        m.insert(1u64, "a");
        assert_eq!(m.get(&1), Some("a"));
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(40) {
            std::hint::spin_loop();
        }
        assert_eq!(m.get(&1), None);
        m.insert(1, "b");
        m.remove(&1);
        assert_eq!(m.get(&1), None);
    }

    #[test]
    fn the_map_stays_bounded() {
        let m = TtlMap::new(Duration::from_secs(60));
        for i in 0..(MAX_ENTRIES as u64 + 10) {
            m.insert(i, ());
        }
        assert!(m.len() <= MAX_ENTRIES);
        assert_eq!(m.get(&(MAX_ENTRIES as u64 + 9)), Some(()));
    }
}
