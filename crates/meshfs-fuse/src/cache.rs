//! The attribute and directory cache: what a node said about a path, kept for a while.
//!
//! Why it may be short: files on a camera node appear, grow and vanish while the mount is up.
//! Without news from the node, freshness comes only from asking again, so an entry lives for
//! `--ttl` (a fraction of a second) — long enough that `ls -l` or a video player's burst of
//! `stat`s costs one round trip, short enough that a new file appears within a second.
//!
//! Why it may be long: while the node's change events reach us ([`crate::events`]), every
//! change drops what it makes stale the moment it happens, so an answer that no event has
//! touched since is still the truth; it is then trusted for `--events-ttl` (a safety net for
//! changes a node cannot see, such as a folder it cannot watch). That is what lets a folder of
//! small files be read with one round trip per file: `readdirplus` answers every later
//! `lookup`, `getattr` and `open`. The race is closed with a [`Ticket`]: taken before a request
//! is sent, it earns the long trust only if the node's stream stayed up and delivered no event
//! between the request and storing its answer (an event in between could be about it).
//!
//! The cache is bounded: past [`MAX_ENTRIES`] stale entries are dropped (and if all are fresh,
//! everything is), so a huge tree cannot grow it without end.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use meshfs_core::Entry;

/// Most entries one cache map holds.
pub const MAX_ENTRIES: usize = 100_000;

/// How long a stored value may be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// `ttl`: nothing would tell us it changed.
    Ttl,
    /// `events_ttl`: the node's events would have dropped it.
    Events,
}

/// A map whose values expire `ttl` (or `events_ttl`, see [`Trust`]) after they were stored.
#[derive(Debug)]
pub struct TtlMap<K, V> {
    ttl: Duration,
    events_ttl: Duration,
    map: Mutex<HashMap<K, (Instant, Trust, V)>>,
}

impl<K: Eq + Hash, V: Clone> TtlMap<K, V> {
    pub fn new(ttl: Duration, events_ttl: Duration) -> Self {
        TtlMap {
            ttl,
            events_ttl: events_ttl.max(ttl),
            map: Mutex::new(HashMap::new()),
        }
    }

    fn fresh(&self, at: Instant, trust: Trust) -> bool {
        at.elapsed()
            < match trust {
                Trust::Ttl => self.ttl,
                Trust::Events => self.events_ttl,
            }
    }

    /// The value for `key` if it is still fresh.
    pub fn get(&self, key: &K) -> Option<V> {
        self.get_trusted(key).map(|(v, _)| v)
    }

    /// The value for `key` if it is still fresh, with the trust it was stored with.
    pub fn get_trusted(&self, key: &K) -> Option<(V, Trust)> {
        let map = self.map.lock().expect("cache lock");
        map.get(key)
            .filter(|(at, trust, _)| self.fresh(*at, *trust))
            .map(|(_, trust, v)| (v.clone(), *trust))
    }

    /// Store `value`, trusted for the short `ttl`.
    pub fn insert(&self, key: K, value: V) {
        self.insert_trusted(key, value, Trust::Ttl);
    }

    pub fn insert_trusted(&self, key: K, value: V, trust: Trust) {
        let mut map = self.map.lock().expect("cache lock");
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, (at, trust, _)| self.fresh(*at, *trust));
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
        }
        map.insert(key, (Instant::now(), trust, value));
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

/// Attributes by inode and listings by directory inode, and the state of each node's event
/// stream that decides how long they are trusted.
#[derive(Debug)]
pub struct MetaCache {
    pub attrs: TtlMap<u64, Entry>,
    /// A folder's entries, with the ticket they were asked under: copying them into `attrs`
    /// later earns long trust only if nothing happened on the node since.
    pub dirs: TtlMap<u64, (Arc<Vec<Entry>>, Ticket)>,
    streams: Mutex<HashMap<usize, Stream>>,
}

/// A node's event stream as the cache sees it.
#[derive(Debug, Default, Clone, Copy)]
struct Stream {
    /// Connected: every change on the node reaches us as an event.
    live: bool,
    /// Bumped by every event and every connect or disconnect.
    epoch: u64,
}

/// Taken before asking a node: see [`MetaCache::trust`].
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    node: usize,
    stream: Stream,
}

impl MetaCache {
    pub fn new(ttl: Duration, events_ttl: Duration) -> MetaCache {
        MetaCache {
            attrs: TtlMap::new(ttl, events_ttl),
            dirs: TtlMap::new(ttl, events_ttl),
            streams: Mutex::default(),
        }
    }

    fn stream(&self, node: usize) -> Stream {
        let streams = self.streams.lock().expect("streams lock");
        streams.get(&node).copied().unwrap_or_default()
    }

    /// Take before sending a request to `node` whose answer will be cached.
    pub fn ticket(&self, node: usize) -> Ticket {
        Ticket {
            node,
            stream: self.stream(node),
        }
    }

    /// How far the answer to a request sent under `ticket` can be trusted now: for long only
    /// if the node's stream was up then and nothing happened on it since.
    pub fn trust(&self, ticket: &Ticket) -> Trust {
        let now = self.stream(ticket.node);
        if ticket.stream.live && now.live && now.epoch == ticket.stream.epoch {
            Trust::Events
        } else {
            Trust::Ttl
        }
    }

    /// An event of `node` arrived (the caller then drops what it names).
    pub fn event(&self, node: usize) {
        let mut streams = self.streams.lock().expect("streams lock");
        streams.entry(node).or_default().epoch += 1;
    }

    /// `node`'s stream connected (`live`) or went down. The caller drops everything cached:
    /// events may have been missed.
    pub fn set_live(&self, node: usize, live: bool) {
        let mut streams = self.streams.lock().expect("streams lock");
        let s = streams.entry(node).or_default();
        s.live = live;
        s.epoch += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_expire_after_the_ttl() {
        let m = TtlMap::new(Duration::from_millis(30), Duration::ZERO);
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
    fn values_the_events_vouch_for_live_longer() {
        let m = TtlMap::new(Duration::ZERO, Duration::from_secs(60));
        m.insert(1u64, "a");
        m.insert_trusted(2u64, "b", Trust::Events);
        assert_eq!(m.get(&1), None);
        assert_eq!(m.get_trusted(&2), Some(("b", Trust::Events)));
    }

    #[test]
    fn only_an_answer_no_event_raced_is_trusted_for_long() {
        let c = MetaCache::new(Duration::ZERO, Duration::from_secs(60));
        let before_stream = c.ticket(0);
        c.set_live(0, true);
        assert_eq!(
            c.trust(&before_stream),
            Trust::Ttl,
            "asked before the stream was up"
        );
        let t = c.ticket(0);
        assert_eq!(c.trust(&t), Trust::Events);
        c.event(1);
        assert_eq!(c.trust(&t), Trust::Events, "another node's event");
        c.event(0);
        assert_eq!(c.trust(&t), Trust::Ttl, "an event arrived while asking");
        let t = c.ticket(0);
        c.set_live(0, false);
        assert_eq!(c.trust(&t), Trust::Ttl, "the stream went down");
        assert_eq!(c.trust(&c.ticket(0)), Trust::Ttl, "no stream");
    }

    #[test]
    fn the_map_stays_bounded() {
        let m = TtlMap::new(Duration::from_secs(60), Duration::ZERO);
        for i in 0..(MAX_ENTRIES as u64 + 10) {
            m.insert(i, ());
        }
        assert!(m.len() <= MAX_ENTRIES);
        assert_eq!(m.get(&(MAX_ENTRIES as u64 + 9)), Some(()));
    }
}
