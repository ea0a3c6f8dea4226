//! `NodeDirectory`: the nodes the web UI shows, and what it last learned about each.
//!
//! The UI starts with this node and the `--node` addresses, then shows every node of the
//! node's one peer table ([`Peers`], meshfs-core: fed by multicast, DNS-SD, static peers and
//! the directory) as it comes ([`NodeDirectory::follow_peers`]). This is a view, not a second
//! table: it keeps only what the page shows beside each address — status, events, version,
//! the last error — as the node watchers (`watch.rs`) learn it. Each node is known by its
//! file-server address; its name is the one it gives in `hello` (until then, the address).
//! URLs accept either, so a link keeps working before and after the name is learned. A node
//! that leaves the table (it said `bye`, or stayed silent past the expiry) is dropped from the
//! list, and its watcher stops; a node that stops answering but is still in the table stays
//! listed, shown offline by its watcher.

use std::sync::{Arc, RwLock};

use meshfs_core::{Peer, PeerEvent, Peers};
use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Most nodes one directory holds: a LAN of 2–50 nodes, with room to spare.
pub const MAX_NODES: usize = 1024;

/// Is the node answering?
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Not probed yet.
    Unknown,
    Online,
    Offline,
}

/// Can we follow the node's file events (`subscribe`)?
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Events {
    Unknown,
    /// Subscribed: events arrive live.
    Live,
    /// The node does not offer `subscribe` (or refused it).
    Unavailable,
}

/// What the UI knows about one node (also the JSON of `/api/nodes`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeInfo {
    /// The name shown and used in URLs: the node's own name, or its address until known.
    pub name: String,
    /// File-server address, `host:port`.
    pub addr: String,
    /// True for the node serving this web UI.
    pub local: bool,
    pub status: Status,
    pub events: Events,
    /// The meshfs version `hello` reported.
    pub version: Option<String>,
    /// The last error met talking to the node, for the status column.
    pub error: Option<String>,
    /// Why its events are `unavailable` (what `subscribe` answered), for the page to say.
    pub events_why: Option<String>,
    /// Its disk is full (its `hello` said `disk=full`; this node's own, as measured): it
    /// still serves, but recordings on it stop growing.
    pub disk_full: bool,
    /// The node's ID (the hash of its key, as `meshfs id --node` prints it) when known: this
    /// node's own, another's as it announced it on the LAN, and as a connection to it
    /// showed its key.
    pub id: Option<String>,
    /// A name this node announces that other nodes (with other IDs) announce too: never
    /// resolved at random (issue 15), so the page marks it; `meshfs trust NAME ID` chooses
    /// for `NAME:PATH`.
    pub conflict: Option<String>,
}

/// The set of known nodes. Cheap to clone; every clone sees the same set.
#[derive(Debug, Clone)]
pub struct NodeDirectory {
    nodes: Arc<RwLock<Vec<NodeInfo>>>,
    /// Bumped on every change, so the event feed can push a fresh node list.
    changed: Arc<watch::Sender<u64>>,
}

impl NodeDirectory {
    /// A directory holding only the local node.
    pub fn new(local_name: &str, local_addr: &str) -> NodeDirectory {
        let local = NodeInfo {
            name: local_name.to_owned(),
            addr: local_addr.to_owned(),
            local: true,
            status: Status::Online,
            events: Events::Unknown,
            version: Some(meshfs_core::VERSION.to_owned()),
            error: None,
            events_why: None,
            disk_full: false,
            id: None,
            conflict: None,
        };
        NodeDirectory {
            nodes: Arc::new(RwLock::new(vec![local])),
            changed: Arc::new(watch::channel(0).0),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<NodeInfo>> {
        self.nodes.read().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n += 1);
    }

    /// Add a remote node by file-server address (`host:port`). Returns false when it was
    /// already known or the directory is full.
    pub fn add(&self, addr: &str) -> bool {
        {
            let mut nodes = self.nodes.write().unwrap_or_else(|e| e.into_inner());
            if nodes.len() >= MAX_NODES || nodes.iter().any(|n| n.addr == addr) {
                return false;
            }
            nodes.push(NodeInfo {
                name: addr.to_owned(),
                addr: addr.to_owned(),
                local: false,
                status: Status::Unknown,
                events: Events::Unknown,
                version: None,
                error: None,
                events_why: None,
                disk_full: false,
                id: None,
                conflict: None,
            });
        }
        self.bump();
        true
    }

    /// Drop the remote node at `addr` (it left the peer table); this node is never dropped.
    pub fn remove(&self, addr: &str) {
        let removed = {
            let mut nodes = self.nodes.write().unwrap_or_else(|e| e.into_inner());
            let before = nodes.len();
            nodes.retain(|n| n.local || n.addr != addr);
            nodes.len() != before
        };
        if removed {
            self.bump();
        }
    }

    /// Every node, this one first.
    pub fn snapshot(&self) -> Vec<NodeInfo> {
        self.read().clone()
    }

    /// The node a URL names: by name first, then by address.
    pub fn find(&self, key: &str) -> Option<NodeInfo> {
        let nodes = self.read();
        nodes
            .iter()
            .find(|n| n.name == key)
            .or_else(|| nodes.iter().find(|n| n.addr == key))
            .cloned()
    }

    /// Change what we know about the node at `addr` (no-op if unknown); notifies on change.
    pub fn update(&self, addr: &str, f: impl FnOnce(&mut NodeInfo)) {
        let changed = {
            let mut nodes = self.nodes.write().unwrap_or_else(|e| e.into_inner());
            let Some(node) = nodes.iter_mut().find(|n| n.addr == addr) else {
                return;
            };
            let before = node.clone();
            f(node);
            *node != before
        };
        if changed {
            self.bump();
        }
    }

    /// Record the name a node gave in `hello`, unless another node already goes by it (then
    /// it stays known by its address, so URLs stay unambiguous).
    pub fn learn_name(&self, addr: &str, name: &str, version: &str) {
        let taken = self.read().iter().any(|n| n.name == name && n.addr != addr);
        self.update(addr, |n| {
            if !taken && !name.is_empty() && !n.local {
                n.name = name.to_owned();
            }
            n.version = Some(version.to_owned());
        });
    }

    /// Show `peer`, with the ID it announced, and mark the name it shares with other
    /// nodes of the table (each node claiming it, since the table changed for all).
    fn show_peer(&self, peers: &Peers, peer: &Peer) {
        self.add(&peer.addr.to_string());
        self.mark_claims(peers, &peer.name);
    }

    /// Mark (or unmark) every node of `peers` announcing `name`, and record the ID each
    /// announced where none is known yet.
    fn mark_claims(&self, peers: &Peers, name: &str) {
        let contested = peers.conflict(name).len() > 1;
        for p in peers.find_all(name) {
            self.update(&p.addr.to_string(), |n| {
                n.conflict = contested.then(|| name.to_owned());
                if n.id.is_none() {
                    n.id = p.node_id.map(|id| id.to_string());
                }
            });
        }
    }

    /// Show every node of `peers`, now and as they come, until `shutdown`.
    pub async fn follow_peers(self, peers: Peers, shutdown: CancellationToken) {
        let mut changes = peers.watch();
        for peer in changes.snapshot() {
            self.show_peer(&peers, peer);
        }
        loop {
            let event = tokio::select! {
                _ = shutdown.cancelled() => return,
                e = changes.next() => e,
            };
            match event {
                PeerEvent::Up(peer) => {
                    self.show_peer(&peers, &peer);
                }
                // A node at a new address is shown there, no longer at the old one.
                PeerEvent::Changed { old, new } => {
                    if old.addr != new.addr {
                        self.remove(&old.addr.to_string());
                    }
                    self.show_peer(&peers, &new);
                }
                // It said `bye` or expired: it is gone, not merely offline.
                PeerEvent::Down { peer, why } => {
                    tracing::debug!(addr = %peer.addr, ?why, "node left the list");
                    self.remove(&peer.addr.to_string());
                    // The others of its name may no longer be contested.
                    self.mark_claims(&peers, &peer.name);
                }
                PeerEvent::Resync(all) => {
                    for peer in all {
                        self.show_peer(&peers, &peer);
                    }
                }
            }
        }
    }

    /// A receiver that wakes on every change.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nodes already in the peer table and those that come later are shown; those that leave
    /// it (`bye`, expiry) are dropped.
    #[tokio::test]
    async fn peers_feed_the_directory() {
        let peer = |name: &str, port: u16| meshfs_core::Peer {
            name: name.into(),
            id: "1".into(),
            node_id: None,
            addr: std::net::SocketAddr::from(([10, 0, 0, 9], port)),
            web: None,
            source: meshfs_core::peers::Source::Multicast,
            last_seen: std::time::Instant::now(),
        };
        let peers = Peers::default();
        peers.hello(peer("early", 4044));
        let dir = NodeDirectory::new("me", "127.0.0.1:1");
        let stop = CancellationToken::new();
        let task = tokio::spawn(dir.clone().follow_peers(peers.clone(), stop.clone()));
        let mut changes = dir.watch();
        // Wait until `addr` is listed (`true`) or not (`false`).
        let listed = async |dir: &NodeDirectory, changes: &mut watch::Receiver<u64>, addr, want| {
            let wait = async {
                while dir.find(addr).is_some() != want {
                    changes.changed().await.unwrap();
                }
            };
            tokio::time::timeout(std::time::Duration::from_secs(5), wait)
                .await
                .unwrap_or_else(|_| panic!("{addr} listed should be {want}"));
        };
        // Shown from the table's snapshot; then a node that comes later.
        listed(&dir, &mut changes, "10.0.0.9:4044", true).await;
        peers.hello(peer("late", 4045));
        listed(&dir, &mut changes, "10.0.0.9:4045", true).await;
        // A node that says `bye` leaves the list; so does one that stays silent too long.
        peers.bye("late", "1");
        listed(&dir, &mut changes, "10.0.0.9:4045", false).await;
        peers.expire(
            std::time::Instant::now() + std::time::Duration::from_secs(3600),
            std::time::Duration::from_secs(60),
        );
        listed(&dir, &mut changes, "10.0.0.9:4044", false).await;
        assert!(dir.find("me").is_some(), "this node is never dropped");
        stop.cancel();
        task.await.unwrap();
    }

    #[test]
    fn add_find_rename() {
        let dir = NodeDirectory::new("me", "127.0.0.1:1");
        let mut w = dir.watch();
        assert!(dir.add("10.0.0.2:4044"));
        assert!(!dir.add("10.0.0.2:4044"));
        assert!(w.has_changed().unwrap());
        w.mark_unchanged();
        assert_eq!(dir.find("10.0.0.2:4044").unwrap().name, "10.0.0.2:4044");
        dir.learn_name("10.0.0.2:4044", "cam2", "0.1.0");
        assert!(w.has_changed().unwrap());
        assert_eq!(dir.find("cam2").unwrap().addr, "10.0.0.2:4044");
        assert_eq!(dir.find("10.0.0.2:4044").unwrap().name, "cam2");
        // A second node claiming a taken name keeps its address as name.
        dir.add("10.0.0.3:4044");
        dir.learn_name("10.0.0.3:4044", "me", "0.1.0");
        assert_eq!(dir.find("10.0.0.3:4044").unwrap().name, "10.0.0.3:4044");
        assert!(dir.find("me").unwrap().local);
        assert_eq!(dir.snapshot().len(), 3);
    }
}
