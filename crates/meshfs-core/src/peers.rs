//! `Peers`: the one table of the nodes this node knows, however it learned of them (multicast
//! hellos, DNS-SD, static `--peer`/`--node`s polled with `hello`, the central directory), and
//! the one place the web's node list, the mount, `find_node` and the cluster read them from.
//!
//! Rules:
//! - **one entry per node process**: entries are keyed by name *and* process id (the random
//!   `id` of a node's hellos). A hello of a known name with a new process id is that node
//!   restarted, and replaces the old entry, when it is the same node: the same announced
//!   [`NodeId`] (the hash of its key), or, without IDs, the same address or no ID on either
//!   side. Another ID under a known name is another node claiming it: both stay, never one
//!   at random, and [`Peers::conflict`] / [`Peers::find_all`] show it (issue 15). So is a
//!   process taken for restarted that speaks again from another address: two live nodes
//!   with one name and one key (two nodes of one machine sharing a state folder);
//! - **bounded** ([`MAX_PEERS`]): anyone on the LAN can announce names; hellos of further new
//!   nodes are refused ([`Seen::Full`]), refreshes of known ones never are;
//! - **a late answer never rolls back a restart** ([`Peers::touch`] refreshes only the very
//!   process at the very address it asked), and only the process that said hello may say
//!   `bye` for it;
//! - **expiry**: entries silent longer than the caller's limit go ([`Peers::expire`]);
//! - **a watch with no gap**: [`Peers::watch`] takes the snapshot and subscribes under the
//!   table's lock, and every change is broadcast under that same lock, so a watcher sees each
//!   change exactly once after its snapshot, in order. A watcher that falls behind gets the
//!   whole table again ([`PeerEvent::Resync`]) rather than a silent hole.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

use crate::identity::NodeId;
use crate::remote::NodeAddr;

/// Most peers kept; hellos of further new nodes are dropped (and logged by the caller).
pub const MAX_PEERS: usize = 1024;
/// How the process id of a peer known only by polling its address begins (`static:ADDR`):
/// one node may be polled at one address and heard by multicast at another, which is no twin.
pub const STATIC_ID: &str = "static:";
/// Silence after which a peer is forgotten (protocols.md §4).
pub const DEFAULT_EXPIRY: Duration = Duration::from_secs(90);
/// Changes a watcher may fall behind by before it is resynchronised.
const WATCH_BACKLOG: usize = 256;

/// How a peer was first heard of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// A hello on the LAN group.
    Multicast,
    /// A `_meshfs._tcp` service resolved by DNS-SD.
    DnsSd,
    /// An address given on the command line (`--peer`, `--node`), answering `hello`.
    Static,
    /// The central directory.
    Directory,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Multicast => "multicast",
            Source::DnsSd => "dns-sd",
            Source::Static => "static",
            Source::Directory => "directory",
        }
    }
}

/// One known node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub name: String,
    /// Process id: the random `id` of its hellos (`static:ADDR` for a static peer learned
    /// over TCP): a restart is a new one.
    pub id: String,
    /// The node's ID (the hash of its key) when it announced one: what tells two nodes of
    /// one name apart, and what a client reaching it by name demands in the handshake.
    pub node_id: Option<NodeId>,
    /// Its file server.
    pub addr: SocketAddr,
    /// Its web UI's port, when it announced one.
    pub web: Option<u16>,
    /// How it was first heard of (kept when heard again another way).
    pub source: Source,
    pub last_seen: Instant,
}

impl Peer {
    /// Its file server as a [`NodeAddr`].
    pub fn node_addr(&self) -> NodeAddr {
        NodeAddr::from(self.addr)
    }

    /// True when `self` and `other` (of one name) are the same node, so a new process of it
    /// replaces the old: the same announced ID; without an ID on one side, the same address;
    /// without IDs on either side (nodes older than IDs), always, as before IDs.
    fn same_node(&self, other: &Peer) -> bool {
        match (self.node_id, other.node_id) {
            (Some(a), Some(b)) => a == b,
            (None, None) => true,
            _ => self.addr == other.addr,
        }
    }
}

/// What a hello changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// A node not known before, or known under another id or address (restarted, moved).
    New,
    /// A refresh of a known peer.
    Known,
    /// Ignored: the table is full.
    Full,
}

/// Why a peer left the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gone {
    /// It said `bye` (or DNS-SD said goodbye).
    Bye,
    /// It stayed silent too long.
    Expired,
    /// Removed by hand (a static peer that stopped answering).
    Removed,
}

impl Gone {
    /// `bye`, `expired`, `removed`: the word `peer down NAME WHY` lines use.
    pub fn as_str(self) -> &'static str {
        match self {
            Gone::Bye => "bye",
            Gone::Expired => "expired",
            Gone::Removed => "removed",
        }
    }
}

/// A change of the table, as [`Peers::watch`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerEvent {
    /// A node is known now.
    Up(Peer),
    /// A known node restarted (new id), moved (new address) or changed its web port: drop
    /// what was keyed by `old`'s address.
    Changed {
        old: Peer,
        new: Peer,
    },
    Down {
        peer: Peer,
        why: Gone,
    },
    /// The watcher fell behind and missed changes: this is the whole table now, replacing
    /// everything the watcher knew.
    Resync(Vec<Peer>),
}

/// The table itself: plain data, every rule, no locking (see [`Peers`] for the shared handle).
#[derive(Debug, Default)]
struct Table {
    /// (name, id) → peer.
    entries: HashMap<(String, String), Peer>,
    /// Processes a new one of the same node replaced (taken for a restart): one heard again,
    /// at another address, was not dead but a twin ([`Table::hello`]). Bounded like the
    /// entries, and pruned with them.
    replaced: HashMap<(String, String), Replaced>,
    /// A table filled by one lookup ([`Peers::for_lookup`]): no process replaces another.
    every_process: bool,
}

/// A process taken for restarted when another one of its node spoke.
#[derive(Debug)]
struct Replaced {
    /// Where the process that replaced it spoke from.
    by: SocketAddr,
    /// That process was a poll of an address (`--peer`), not a process's own hello.
    by_poll: bool,
    /// When the replaced process was last heard.
    last_seen: Instant,
}

impl Table {
    fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Peer> + 'a {
        self.entries.values().filter(move |p| p.name == name)
    }

    fn hello(&mut self, peer: Peer, changes: &mut Vec<PeerEvent>) -> Seen {
        let key = (peer.name.clone(), peer.id.clone());
        if let Some(known) = self.entries.get_mut(&key) {
            known.last_seen = known.last_seen.max(peer.last_seen);
            // A process's ID never changes; one way of hearing it may not carry it (a poll
            // in clear), which must not erase what another way said.
            let node_id = peer.node_id.or(known.node_id);
            if known.addr == peer.addr && known.web == peer.web && known.node_id == node_id {
                return Seen::Known;
            }
            let old = known.clone();
            known.addr = peer.addr;
            known.web = peer.web;
            known.node_id = node_id;
            let new = known.clone();
            let moved = old.addr != new.addr;
            changes.push(PeerEvent::Changed { old, new });
            return if moved { Seen::New } else { Seen::Known };
        }
        // A process taken for restarted that speaks again, from elsewhere than the one that
        // replaced it, is alive: two processes with one name and one key (two nodes sharing
        // a state folder). Both stay, a conflict like two IDs, never one of them at random.
        // A node polled by address and also heard on the LAN speaks from two addresses
        // without being two processes: either side being a poll is no twin.
        let twin = self
            .replaced
            .remove(&key)
            .is_some_and(|r| r.by != peer.addr && !r.by_poll && !peer.id.starts_with(STATIC_ID));
        // Earlier processes of the same node: a restart. Other nodes of that name stay.
        let earlier: Vec<(String, String)> = match twin || self.every_process {
            true => Vec::new(),
            false => self
                .named(&peer.name)
                .filter(|p| p.same_node(&peer))
                .map(|p| (p.name.clone(), p.id.clone()))
                .collect(),
        };
        if earlier.is_empty() && self.entries.len() >= MAX_PEERS {
            return Seen::Full;
        }
        // A restart: the new process inherits how the node was first heard of.
        let removed: Vec<Peer> = earlier
            .iter()
            .filter_map(|k| self.entries.remove(k))
            .collect();
        if self.replaced.len() < MAX_PEERS {
            for p in &removed {
                let replaced = Replaced {
                    by: peer.addr,
                    by_poll: peer.id.starts_with(STATIC_ID),
                    last_seen: p.last_seen,
                };
                self.replaced
                    .insert((p.name.clone(), p.id.clone()), replaced);
            }
        }
        let old = removed.into_iter().max_by_key(|p| p.last_seen);
        let mut peer = peer;
        match old {
            Some(old) => {
                peer.source = old.source;
                if peer.addr == old.addr {
                    peer.node_id = peer.node_id.or(old.node_id);
                }
                changes.push(PeerEvent::Changed {
                    old,
                    new: peer.clone(),
                });
            }
            None => changes.push(PeerEvent::Up(peer.clone())),
        }
        self.entries.insert(key, peer);
        Seen::New
    }

    fn touch(&mut self, name: &str, id: &str, addr: SocketAddr, now: Instant) -> bool {
        match self.entries.get_mut(&(name.to_owned(), id.to_owned())) {
            Some(known) if known.addr == addr => {
                known.last_seen = known.last_seen.max(now);
                true
            }
            _ => false,
        }
    }

    fn take(
        &mut self,
        keys: Vec<(String, String)>,
        why: Gone,
        changes: &mut Vec<PeerEvent>,
    ) -> Vec<Peer> {
        let mut gone: Vec<Peer> = keys.iter().filter_map(|k| self.entries.remove(k)).collect();
        gone.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
        for peer in &gone {
            changes.push(PeerEvent::Down {
                peer: peer.clone(),
                why,
            });
        }
        gone
    }

    fn list(&self) -> Vec<Peer> {
        let mut v: Vec<Peer> = self.entries.values().cloned().collect();
        v.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
        v
    }
}

/// The shared table of known nodes. Cheap to clone; every clone is the same table.
#[derive(Debug, Clone)]
pub struct Peers {
    table: Arc<Mutex<Table>>,
    /// Changes, sent under the table's lock (so they are in order, and a watch's snapshot and
    /// subscription meet with no gap).
    changes: broadcast::Sender<PeerEvent>,
}

impl Default for Peers {
    fn default() -> Self {
        Peers::new()
    }
}

impl Peers {
    /// An empty table.
    pub fn new() -> Peers {
        Peers {
            table: Arc::new(Mutex::new(Table::default())),
            changes: broadcast::channel(WATCH_BACKLOG).0,
        }
    }

    /// An empty table for one lookup (`meshfs cat NAME:PATH`, `meshfs peers`): every answer
    /// to it comes from a live process, so no process replaces another of the same node. In
    /// a lookup of a second or so, two processes of one key are two nodes sharing a state
    /// folder far likelier than a restart, and choosing between them must not be left to the
    /// order of their answers.
    pub fn for_lookup() -> Peers {
        let peers = Peers::new();
        peers.lock().every_process = true;
        peers
    }

    /// Lock the table, apply `f`, broadcast what it changed.
    fn change<T>(&self, f: impl FnOnce(&mut Table, &mut Vec<PeerEvent>) -> T) -> T {
        let mut table = self.lock();
        let mut changes = Vec::new();
        let out = f(&mut table, &mut changes);
        for c in changes {
            // No watcher: nothing to tell.
            let _ = self.changes.send(c);
        }
        out
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Record a sign of life.
    pub fn hello(&self, peer: Peer) -> Seen {
        let seen = self.change(|t, c| t.hello(peer, c));
        if seen == Seen::New {
            crate::metrics::metrics().peers_seen_total.inc();
        }
        seen
    }

    /// A poll answered for `name`, asked of the process `id` at `addr`: refresh it only if the
    /// table still holds that very process there. The answer may come long after the question
    /// (a poll waits up to its timeout): if the node restarted meanwhile (a hello of a new id
    /// or address landed), the old snapshot must not roll the entry back. Never adds. False
    /// when nothing was refreshed.
    pub fn touch(&self, name: &str, id: &str, addr: SocketAddr, now: Instant) -> bool {
        self.lock().touch(name, id, addr, now)
    }

    /// A `bye`: forget `name` at once, if it is the same process that said hello.
    pub fn bye(&self, name: &str, id: &str) -> Option<Peer> {
        let key = (name.to_owned(), id.to_owned());
        self.change(|t, c| t.take(vec![key], Gone::Bye, c).pop())
    }

    /// Forget every entry called `name`, whatever its id (a static peer that stopped
    /// answering).
    pub fn remove(&self, name: &str) -> Vec<Peer> {
        self.change(|t, c| {
            let keys = t
                .named(name)
                .map(|p| (p.name.clone(), p.id.clone()))
                .collect();
            t.take(keys, Gone::Removed, c)
        })
    }

    /// Forget peers silent for longer than `after`; returns them.
    pub fn expire(&self, now: Instant, after: Duration) -> Vec<Peer> {
        self.change(|t, c| {
            t.replaced
                .retain(|_, r| now.saturating_duration_since(r.last_seen) <= after);
            let keys = t
                .entries
                .values()
                .filter(|p| now.saturating_duration_since(p.last_seen) > after)
                .map(|p| (p.name.clone(), p.id.clone()))
                .collect();
            t.take(keys, Gone::Expired, c)
        })
    }

    /// The node called `name` (the most recently heard, if several claim it).
    pub fn find(&self, name: &str) -> Option<Peer> {
        self.lock().named(name).max_by_key(|p| p.last_seen).cloned()
    }

    /// Every entry called `name`, sorted by node ID then process id: more than one is a
    /// conflict (see [`Peers::conflict`]).
    pub fn find_all(&self, name: &str) -> Vec<Peer> {
        let mut v: Vec<Peer> = self.lock().named(name).cloned().collect();
        v.sort_by(|a, b| (a.node_id, &a.id).cmp(&(b.node_id, &b.id)));
        v
    }

    /// The nodes claiming `name` when more than one does (different IDs, an ID and a node
    /// without one elsewhere, or two live processes with one ID at two addresses): what
    /// `meshfs peers` marks and the web UI shows. Empty
    /// when the name is unclaimed or uncontested.
    pub fn conflict(&self, name: &str) -> Vec<Peer> {
        let all = self.find_all(name);
        if all.len() > 1 { all } else { Vec::new() }
    }

    /// The node whose file server is at `addr`.
    pub fn find_addr(&self, addr: SocketAddr) -> Option<Peer> {
        self.lock()
            .entries
            .values()
            .find(|p| p.addr == addr)
            .cloned()
    }

    /// All peers, sorted by name (then id).
    pub fn list(&self) -> Vec<Peer> {
        self.lock().list()
    }

    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().entries.is_empty()
    }

    /// The table now, and every change after it, with no gap and no overlap.
    pub fn watch(&self) -> PeerWatch {
        let table = self.lock();
        PeerWatch {
            snapshot: table.list(),
            changes: self.changes.subscribe(),
            peers: self.clone(),
        }
    }
}

/// A view of [`Peers`] kept current: [`PeerWatch::snapshot`] first, then [`PeerWatch::next`].
#[derive(Debug)]
pub struct PeerWatch {
    snapshot: Vec<Peer>,
    changes: broadcast::Receiver<PeerEvent>,
    peers: Peers,
}

impl PeerWatch {
    /// The table when the watch began (sorted by name); changes after it come from `next`.
    pub fn snapshot(&self) -> &[Peer] {
        &self.snapshot
    }

    /// The next change. Never ends (the watch holds the table alive); a watcher that fell
    /// more than a backlog behind gets [`PeerEvent::Resync`].
    pub async fn next(&mut self) -> PeerEvent {
        match self.changes.recv().await {
            Ok(event) => event,
            Err(broadcast::error::RecvError::Lagged(_)) => {
                let table = self.peers.lock();
                self.changes = self.peers.changes.subscribe();
                PeerEvent::Resync(table.list())
            }
            Err(broadcast::error::RecvError::Closed) => {
                unreachable!("the watch holds a sender through its Peers")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(name: &str, id: &str, at: Instant) -> Peer {
        Peer {
            name: name.into(),
            id: id.into(),
            node_id: None,
            addr: "127.0.0.1:4044".parse().unwrap(),
            web: None,
            source: Source::Multicast,
            last_seen: at,
        }
    }

    /// The change a watcher sees next, or a failure if there is none.
    async fn next(w: &mut PeerWatch) -> PeerEvent {
        tokio::time::timeout(Duration::from_secs(5), w.next())
            .await
            .expect("a change")
    }

    #[test]
    fn hello_bye_expiry() {
        let t0 = Instant::now();
        let p = Peers::default();
        assert_eq!(p.hello(peer("a", "1", t0)), Seen::New);
        assert_eq!(p.hello(peer("a", "1", t0)), Seen::Known);
        assert_eq!(p.hello(peer("a", "2", t0)), Seen::New, "restart");
        assert_eq!(p.find_all("a").len(), 1, "a restart replaces");
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
        assert_eq!(p.remove("c").len(), 1);
        assert!(p.is_empty());
    }

    #[test]
    fn a_late_poll_answer_never_rolls_back_a_restart() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(10);
        let p = Peers::default();
        let old = peer("a", "1", t0);
        assert!(
            !p.touch("a", "1", old.addr, t1),
            "unknown: nothing to touch"
        );
        assert!(p.find("a").is_none(), "touch never adds");
        p.hello(old.clone());
        assert!(p.touch("a", "1", old.addr, t1));
        assert_eq!(p.find("a").unwrap().last_seen, t1);

        // The node restarted (new id) while a poll of the old process was out.
        assert_eq!(p.hello(peer("a", "2", t1)), Seen::New);
        assert!(!p.touch("a", "1", old.addr, t1 + Duration::from_secs(1)));
        let now = p.find("a").unwrap();
        assert_eq!((now.id.as_str(), now.last_seen), ("2", t1));
        assert!(p.bye("a", "2").is_some());

        // Same id, another address: not the entry the poll asked about either.
        p.hello(old.clone());
        let moved = Peer {
            addr: "127.0.0.2:4044".parse().unwrap(),
            ..peer("a", "1", t1)
        };
        assert_eq!(p.hello(moved.clone()), Seen::New, "moved");
        assert!(!p.touch("a", "1", old.addr, t1 + Duration::from_secs(2)));
        assert_eq!(p.find("a").unwrap(), moved);
        assert_eq!(p.find_addr(moved.addr).unwrap().name, "a");
        assert!(p.find_addr(old.addr).is_none());
    }

    #[test]
    fn bounded() {
        let t0 = Instant::now();
        let p = Peers::default();
        for i in 0..MAX_PEERS {
            assert_eq!(p.hello(peer(&format!("n{i}"), "1", t0)), Seen::New);
        }
        assert_eq!(p.hello(peer("extra", "1", t0)), Seen::Full);
        assert_eq!(p.len(), MAX_PEERS);
        // A known node may still restart, and refresh.
        assert_eq!(p.hello(peer("n0", "2", t0)), Seen::New);
        assert_eq!(p.hello(peer("n1", "1", t0)), Seen::Known);
        assert_eq!(p.len(), MAX_PEERS);
    }

    #[test]
    fn two_identities_under_one_name_are_a_conflict() {
        let t0 = Instant::now();
        let p = Peers::new();
        let (a, b) = (NodeId::from_bytes([1; 32]), NodeId::from_bytes([2; 32]));
        let mut real = peer("cam", "proc-1", t0);
        real.node_id = Some(a);
        let mut other = peer("cam", "proc-2", t0 + Duration::from_secs(1));
        other.node_id = Some(b);
        other.addr = "10.0.0.9:4044".parse().unwrap();
        assert_eq!(p.hello(real.clone()), Seen::New);
        assert!(p.conflict("cam").is_empty());
        assert_eq!(p.hello(other.clone()), Seen::New);
        let both = p.conflict("cam");
        assert_eq!(both.len(), 2, "{both:?}");
        assert_eq!((both[0].node_id, both[1].node_id), (Some(a), Some(b)));

        // The real node restarting (its ID, a new process) replaces only itself.
        let mut restarted = peer("cam", "proc-3", t0 + Duration::from_secs(2));
        restarted.node_id = Some(a);
        p.hello(restarted);
        let ids: Vec<_> = p.find_all("cam").iter().map(|x| x.id.clone()).collect();
        assert_eq!(ids, ["proc-3", "proc-2"]);

        // A hello without an ID elsewhere is a claim too; at the same address, the same node
        // (a poll in clear), which keeps the ID it announced. Two without IDs are one node
        // restarted, as before IDs.
        let mut bare = peer("cam", "proc-4", t0);
        bare.addr = "10.0.0.10:4044".parse().unwrap();
        p.hello(bare);
        assert_eq!(p.conflict("cam").len(), 3);
        let mut poll = peer("cam", "static:10.0.0.9:4044", t0 + Duration::from_secs(3));
        poll.addr = other.addr;
        p.hello(poll);
        let all = p.find_all("cam");
        assert_eq!(all.len(), 2, "{all:?}");
        let at_9: Vec<_> = all.iter().filter(|x| x.addr == other.addr).collect();
        assert_eq!(
            at_9[0].node_id,
            Some(b),
            "the ID is kept when a poll in clear replaces"
        );
        assert_eq!(p.remove("cam").len(), 2);
    }

    /// Two live processes with one name and one key (a shared state folder) alternate their
    /// hellos: each would replace the other as a restart, and `NAME:PATH` would reach one at
    /// random. The one that speaks again from another address makes both stay; a restart at
    /// the same address, or a process polled by address, does not.
    #[test]
    fn one_key_speaking_from_two_live_processes_is_a_conflict() {
        let t0 = Instant::now();
        let id = NodeId::from_spki(b"one key");
        let at = |proc: &str, addr: &str, secs: u64| {
            let mut x = peer("cam", proc, t0 + Duration::from_secs(secs));
            x.node_id = Some(id);
            x.addr = addr.parse().unwrap();
            x
        };
        let p = Peers::default();
        p.hello(at("p1", "127.0.0.1:4000", 0));
        p.hello(at("p2", "127.0.0.1:5000", 1));
        assert_eq!(p.find_all("cam").len(), 1, "first taken for a restart");
        p.hello(at("p1", "127.0.0.1:4000", 2));
        let ports: Vec<u16> = p.find_all("cam").iter().map(|x| x.addr.port()).collect();
        assert_eq!(ports, [4000, 5000], "both stay");
        assert_eq!(p.conflict("cam").len(), 2);
        // Heard again, each refreshes itself only.
        p.hello(at("p2", "127.0.0.1:5000", 3));
        p.hello(at("p1", "127.0.0.1:4000", 4));
        assert_eq!(p.conflict("cam").len(), 2);

        // A restart at the same address: a late hello of the old process is no twin.
        let q = Peers::default();
        q.hello(at("old", "127.0.0.1:4044", 0));
        q.hello(at("new", "127.0.0.1:4044", 1));
        q.hello(at("old", "127.0.0.1:4044", 1));
        assert_eq!(q.find_all("cam").len(), 1);
        // Nor is a node polled at one address and heard by multicast at another.
        let r = Peers::default();
        r.hello(at("static:10.0.0.9:4044", "10.0.0.9:4044", 0));
        r.hello(at("m1", "192.168.1.9:4044", 1));
        r.hello(at("static:10.0.0.9:4044", "10.0.0.9:4044", 2));
        assert_eq!(r.conflict("cam").len(), 0);
        // In either order: heard first, then polled, then heard again.
        let r = Peers::default();
        r.hello(at("m1", "192.168.1.9:4044", 0));
        r.hello(at("static:10.0.0.9:4044", "10.0.0.9:4044", 1));
        r.hello(at("m1", "192.168.1.9:4044", 2));
        assert_eq!(r.conflict("cam").len(), 0);
        // A lookup's table keeps every process that answered it.
        let l = Peers::for_lookup();
        l.hello(at("p1", "127.0.0.1:4000", 0));
        l.hello(at("p2", "127.0.0.1:5000", 0));
        assert_eq!(l.conflict("cam").len(), 2);
        // Once its memory expired, a process that comes back is a restart again.
        let s = Peers::default();
        s.hello(at("p1", "127.0.0.1:4000", 0));
        s.hello(at("p2", "127.0.0.1:5000", 0));
        // p2 stays in the table; only the memory of p1 expires.
        s.hello(at("p2", "127.0.0.1:5000", 90));
        s.expire(t0 + Duration::from_secs(95), DEFAULT_EXPIRY);
        assert_eq!(s.find_all("cam").len(), 1, "p2 is still there");
        s.hello(at("p1", "127.0.0.1:4000", 96));
        assert_eq!(s.find_all("cam").len(), 1);
    }

    #[tokio::test]
    async fn the_watch_sees_every_change_after_its_snapshot_once() {
        let t0 = Instant::now();
        let p = Peers::default();
        p.hello(peer("a", "1", t0));
        let mut w = p.watch();
        assert_eq!(w.snapshot().len(), 1);
        p.hello(peer("a", "1", t0 + Duration::from_secs(1))); // a refresh: no change
        p.hello(peer("b", "1", t0));
        assert!(matches!(next(&mut w).await, PeerEvent::Up(b) if b.name == "b"));
        // A restart is one change from the old process to the new one, keeping the source.
        let mut restarted = peer("a", "2", t0);
        restarted.source = Source::DnsSd;
        p.hello(restarted);
        match next(&mut w).await {
            PeerEvent::Changed { old, new } => {
                assert_eq!((old.id.as_str(), new.id.as_str()), ("1", "2"));
                assert_eq!(new.source, Source::Multicast);
            }
            e => panic!("{e:?}"),
        }
        // A new web port is a change too, though the hello says Known.
        let mut web = peer("b", "1", t0);
        web.web = Some(8044);
        assert_eq!(p.hello(web), Seen::Known);
        assert!(
            matches!(next(&mut w).await, PeerEvent::Changed { new, .. } if new.web == Some(8044))
        );
        p.bye("b", "1");
        assert!(
            matches!(next(&mut w).await, PeerEvent::Down { peer, why: Gone::Bye } if peer.name == "b")
        );
        p.expire(t0 + Duration::from_secs(100), DEFAULT_EXPIRY);
        assert!(matches!(
            next(&mut w).await,
            PeerEvent::Down {
                why: Gone::Expired,
                ..
            }
        ));
        assert!(p.is_empty());
    }

    #[tokio::test]
    async fn a_watcher_that_falls_behind_is_resynchronised() {
        let t0 = Instant::now();
        let p = Peers::default();
        let mut w = p.watch();
        for i in 0..WATCH_BACKLOG + 10 {
            p.hello(peer(&format!("n{i}"), "1", t0));
        }
        match next(&mut w).await {
            PeerEvent::Resync(all) => assert_eq!(all.len(), WATCH_BACKLOG + 10),
            e => panic!("{e:?}"),
        }
        p.hello(peer("late", "1", t0));
        assert!(matches!(next(&mut w).await, PeerEvent::Up(l) if l.name == "late"));
    }

    #[test]
    fn watches_start_where_their_snapshot_ends_under_concurrent_hellos() {
        // Hellos race with watches started on other threads: every watcher's snapshot plus
        // its changes must add up to the final table, with no name missing or repeated.
        let p = Peers::default();
        let t0 = Instant::now();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let writer = {
            let p = p.clone();
            std::thread::spawn(move || {
                for i in 0..200 {
                    p.hello(peer(&format!("n{i}"), "1", t0));
                }
            })
        };
        let watches: Vec<PeerWatch> = (0..20).map(|_| p.watch()).collect();
        writer.join().unwrap();
        for mut w in watches {
            let mut names: Vec<String> = w.snapshot().iter().map(|p| p.name.clone()).collect();
            while names.len() < 200 {
                match rt.block_on(next(&mut w)) {
                    PeerEvent::Up(p) => names.push(p.name),
                    e => panic!("{e:?}"),
                }
            }
            names.sort();
            names.dedup();
            assert_eq!(names.len(), 200);
        }
    }
}
