//! `Peers`: the nodes this node knows, learned from announcements or static `--peer`s.
//!
//! Bounded ([`MAX_PEERS`]) because anyone on the LAN can announce names.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Most peers kept; hellos of further new names are dropped (and logged).
pub const MAX_PEERS: usize = 1024;
/// Silence after which a peer is forgotten (protocols.md §4).
pub const DEFAULT_EXPIRY: Duration = Duration::from_secs(90);

/// One known node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub name: String,
    /// Process id from its hello (empty for a static peer learned over TCP).
    pub id: String,
    /// Its file server: the datagram's source address with the announced port.
    pub addr: SocketAddr,
    pub web: Option<u16>,
    pub last_seen: Instant,
}

/// What a hello changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// A name not known before (or known under another process id or address: restarted).
    New,
    /// A refresh of a known peer.
    Known,
    /// Ignored: the table is full.
    Full,
}

/// name → peer.
#[derive(Debug, Default)]
pub struct Peers {
    by_name: HashMap<String, Peer>,
}

impl Peers {
    /// Record a sign of life.
    pub fn hello(&mut self, peer: Peer) -> Seen {
        let full = self.by_name.len() >= MAX_PEERS;
        match self.by_name.get_mut(&peer.name) {
            Some(known) if known.id == peer.id && known.addr == peer.addr => {
                known.last_seen = peer.last_seen;
                known.web = peer.web;
                Seen::Known
            }
            Some(known) => {
                *known = peer;
                Seen::New
            }
            None if full => Seen::Full,
            None => {
                self.by_name.insert(peer.name.clone(), peer);
                Seen::New
            }
        }
    }

    /// A poll answered for `name`, asked of the process `id` at `addr`: refresh it only if the
    /// table still holds that very process there. The answer may come long after the question
    /// (a poll waits up to its timeout): if the node restarted meanwhile (a hello of a new id
    /// or address landed), the old snapshot must not roll the entry back. False when nothing
    /// was refreshed.
    pub fn touch(&mut self, name: &str, id: &str, addr: SocketAddr, now: Instant) -> bool {
        match self.by_name.get_mut(name) {
            Some(known) if known.id == id && known.addr == addr => {
                known.last_seen = known.last_seen.max(now);
                true
            }
            _ => false,
        }
    }

    /// A `bye`: forget `name` at once, if it is the same process that said hello.
    pub fn bye(&mut self, name: &str, id: &str) -> Option<Peer> {
        if self.by_name.get(name).is_some_and(|p| p.id == id) {
            self.by_name.remove(name)
        } else {
            None
        }
    }

    /// Forget `name` whatever its id (a static peer that stopped answering).
    pub fn remove(&mut self, name: &str) -> Option<Peer> {
        self.by_name.remove(name)
    }

    /// Forget peers silent for longer than `after`; returns them.
    pub fn expire(&mut self, now: Instant, after: Duration) -> Vec<Peer> {
        let gone: Vec<String> = self
            .by_name
            .values()
            .filter(|p| now.saturating_duration_since(p.last_seen) > after)
            .map(|p| p.name.clone())
            .collect();
        gone.iter().filter_map(|n| self.by_name.remove(n)).collect()
    }

    pub fn get(&self, name: &str) -> Option<&Peer> {
        self.by_name.get(name)
    }

    /// All peers, sorted by name.
    pub fn list(&self) -> Vec<Peer> {
        let mut v: Vec<Peer> = self.by_name.values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(name: &str, id: &str, at: Instant) -> Peer {
        Peer {
            name: name.into(),
            id: id.into(),
            addr: "127.0.0.1:4044".parse().unwrap(),
            web: None,
            last_seen: at,
        }
    }

    #[test]
    fn hello_bye_expiry() {
        let t0 = Instant::now();
        let mut p = Peers::default();
        assert_eq!(p.hello(peer("a", "1", t0)), Seen::New);
        assert_eq!(p.hello(peer("a", "1", t0)), Seen::Known);
        assert_eq!(p.hello(peer("a", "2", t0)), Seen::New, "restart");
        assert_eq!(p.hello(peer("b", "1", t0)), Seen::New);
        assert!(
            p.bye("a", "1").is_none(),
            "old process cannot say bye for the new one"
        );
        assert!(p.bye("a", "2").is_some());
        p.hello(peer("c", "1", t0 + Duration::from_secs(50)));
        let gone = p.expire(t0 + Duration::from_secs(91), DEFAULT_EXPIRY);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].name, "b");
        assert_eq!(p.list().len(), 1);
    }

    #[test]
    fn a_late_poll_answer_never_rolls_back_a_restart() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(10);
        let mut p = Peers::default();
        let old = peer("a", "1", t0);
        assert!(
            !p.touch("a", "1", old.addr, t1),
            "unknown: nothing to touch"
        );
        assert!(p.get("a").is_none(), "touch never adds");
        p.hello(old.clone());
        assert!(p.touch("a", "1", old.addr, t1));
        assert_eq!(p.get("a").unwrap().last_seen, t1);

        // The node restarted (new id) while a poll of the old process was out.
        assert_eq!(p.hello(peer("a", "2", t1)), Seen::New);
        assert!(!p.touch("a", "1", old.addr, t1 + Duration::from_secs(1)));
        let now = p.get("a").unwrap();
        assert_eq!((now.id.as_str(), now.last_seen), ("2", t1));
        // So the new process's bye is still its own.
        assert!(p.bye("a", "2").is_some());

        // Same id, another address: not the entry the poll asked about either.
        let moved = Peer {
            addr: "127.0.0.2:4044".parse().unwrap(),
            ..peer("a", "1", t1)
        };
        p.hello(moved.clone());
        assert!(!p.touch("a", "1", old.addr, t1 + Duration::from_secs(2)));
        assert_eq!(p.get("a").unwrap(), &moved);
    }

    #[test]
    fn bounded() {
        let t0 = Instant::now();
        let mut p = Peers::default();
        for i in 0..MAX_PEERS {
            assert_eq!(p.hello(peer(&format!("n{i}"), "1", t0)), Seen::New);
        }
        assert_eq!(p.hello(peer("extra", "1", t0)), Seen::Full);
        assert_eq!(p.len(), MAX_PEERS);
    }
}
