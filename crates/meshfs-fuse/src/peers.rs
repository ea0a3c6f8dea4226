//! Showing the nodes of a `meshfs_core::Peers` watch: a node folder appears when its node is
//! heard of and leaves when it goes, so the mount follows the LAN (or any other discovery that
//! feeds the table) without knowing how nodes are found.
//!
//! Rules, on top of [`crate::nodes`] (hidden, never renumbered):
//! - a node given at mount time (`--node`) is never hidden by what discovery says;
//! - a node that restarted at another address (a new lease, no `bye`) keeps its folder: the
//!   old address is hidden before the new one is shown, so no dead `cam` sits beside `cam-2`;
//! - after missed changes ([`PeerEvent::Resync`]) exactly the table's nodes are shown.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

use meshfs_core::{Credentials, Peer, PeerEvent};

use crate::Mount;

/// A node folder that appeared or left, for the caller to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FolderChange {
    Up { folder: String, addr: SocketAddr },
    Down { folder: String },
}

/// What [`PeerFolders`] needs of a mount (a trait so the rules are tested without one).
pub trait Folders {
    /// See [`Mount::add_node`] (the credentials are the implementation's business).
    fn add_node(&self, name: &str, addr: &str) -> Option<String>;
    /// See [`Mount::hide_node`].
    fn hide_node(&self, addr: &str) -> Option<String>;
}

/// A mount and the credentials of the nodes about to be shown, by address (those it lacks
/// are shown proving nothing): the caller learns which nodes ask for a password before
/// applying a change of the table.
pub struct WithCredentials<'a> {
    pub mount: &'a Mount,
    pub credentials: &'a HashMap<SocketAddr, Credentials>,
}

impl Folders for WithCredentials<'_> {
    fn add_node(&self, name: &str, addr: &str) -> Option<String> {
        let credentials = addr
            .parse()
            .ok()
            .and_then(|a| self.credentials.get(&a))
            .cloned()
            .unwrap_or_default();
        self.mount.add_node(name, addr, credentials)
    }
    fn hide_node(&self, addr: &str) -> Option<String> {
        self.mount.hide_node(addr)
    }
}

/// The discovered nodes a mount shows, kept in step with a `Peers` watch.
#[derive(Debug, Default)]
pub struct PeerFolders {
    /// Addresses given at mount time: shown for good, whatever discovery says.
    given: HashSet<SocketAddr>,
    /// Addresses of the discovered nodes shown now.
    shown: HashSet<SocketAddr>,
}

impl PeerFolders {
    /// `given`: the addresses of the nodes given at mount time, as discovery names them.
    pub fn new(given: impl IntoIterator<Item = SocketAddr>) -> PeerFolders {
        PeerFolders {
            given: given.into_iter().collect(),
            shown: HashSet::new(),
        }
    }

    /// Apply one change of the table.
    pub fn apply(&mut self, mount: &impl Folders, event: PeerEvent) -> Vec<FolderChange> {
        let mut out = Vec::new();
        match event {
            PeerEvent::Up(peer) => self.up(mount, &peer, &mut out),
            PeerEvent::Changed { old, new } => {
                if old.addr != new.addr
                    && let Some(folder) = self.down(mount, &old)
                {
                    // Not reported as down: the folder stays, at the new address.
                    tracing::info!(%folder, old = %old.addr, addr = %new.addr, "node moved");
                }
                self.up(mount, &new, &mut out);
            }
            PeerEvent::Down { peer, why } => {
                if let Some(folder) = self.down(mount, &peer) {
                    tracing::info!(%folder, why = why.as_str(), "node gone");
                    out.push(FolderChange::Down { folder });
                }
            }
            PeerEvent::Resync(peers) => return self.resync(mount, &peers),
        }
        out
    }

    /// Show exactly `peers` (a watch's snapshot, or the whole table after missed changes).
    pub fn resync(&mut self, mount: &impl Folders, peers: &[Peer]) -> Vec<FolderChange> {
        let mut out = Vec::new();
        let now: HashSet<SocketAddr> = peers.iter().map(|p| p.addr).collect();
        let gone: Vec<SocketAddr> = self.shown.difference(&now).copied().collect();
        for addr in gone {
            self.shown.remove(&addr);
            if let Some(folder) = mount.hide_node(&addr.to_string()) {
                out.push(FolderChange::Down { folder });
            }
        }
        for peer in peers {
            self.up(mount, peer, &mut out);
        }
        out
    }

    fn up(&mut self, mount: &impl Folders, peer: &Peer, out: &mut Vec<FolderChange>) {
        if self.given.contains(&peer.addr) {
            return;
        }
        if let Some(folder) = mount.add_node(&peer.name, &peer.addr.to_string()) {
            tracing::info!(%folder, addr = %peer.addr, "node discovered");
            out.push(FolderChange::Up {
                folder,
                addr: peer.addr,
            });
        }
        self.shown.insert(peer.addr);
    }

    /// Hide `peer`'s folder if this watch showed it; its folder name.
    fn down(&mut self, mount: &impl Folders, peer: &Peer) -> Option<String> {
        if !self.shown.remove(&peer.addr) {
            return None;
        }
        mount.hide_node(&peer.addr.to_string())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use meshfs_core::peers::{Gone, Source};

    use super::*;
    use crate::nodes::{Nodes, folder_name};

    /// The real node table, without a kernel.
    #[derive(Default)]
    struct Fake(Nodes);

    impl Folders for Fake {
        fn add_node(&self, name: &str, addr: &str) -> Option<String> {
            let pool = meshfs_core::Pool::new(addr, Default::default());
            let added = self.0.add(&folder_name(name, addr), pool, drop);
            added.ok().map(|(_, folder)| folder)
        }
        fn hide_node(&self, addr: &str) -> Option<String> {
            self.0.hide(addr).map(|(_, folder)| folder)
        }
    }

    fn peer(name: &str, id: &str, addr: &str) -> Peer {
        Peer {
            name: name.into(),
            id: id.into(),
            node_id: None,
            addr: addr.parse().unwrap(),
            web: None,
            source: Source::Multicast,
            last_seen: Instant::now(),
        }
    }

    fn up(folder: &str, addr: &str) -> FolderChange {
        FolderChange::Up {
            folder: folder.into(),
            addr: addr.parse().unwrap(),
        }
    }

    fn down(folder: &str) -> FolderChange {
        FolderChange::Down {
            folder: folder.into(),
        }
    }

    #[test]
    fn folders_follow_the_table_and_keep_their_names() {
        let mount = Fake::default();
        let given: SocketAddr = "10.0.0.9:4044".parse().unwrap();
        let mut f = PeerFolders::new([given]);
        let (a, a2, b) = ("10.0.0.1:4044", "10.0.0.1:5000", "10.0.0.2:4044");

        assert_eq!(
            f.apply(&mount, PeerEvent::Up(peer("cam", "1", a))),
            [up("cam", a)]
        );
        assert_eq!(
            f.apply(&mount, PeerEvent::Up(peer("given", "1", "10.0.0.9:4044"))),
            []
        );
        // Moved without a bye: the same folder, at the new address; nothing reported down.
        let moved = PeerEvent::Changed {
            old: peer("cam", "1", a),
            new: peer("cam", "2", a2),
        };
        assert_eq!(f.apply(&mount, moved), [up("cam", a2)]);
        // Restarted at the same address: still shown, nothing to report.
        let restarted = PeerEvent::Changed {
            old: peer("cam", "2", a2),
            new: peer("cam", "3", a2),
        };
        assert_eq!(f.apply(&mount, restarted), []);
        // A given node is never hidden by discovery.
        let given_down = PeerEvent::Down {
            peer: peer("given", "1", "10.0.0.9:4044"),
            why: Gone::Bye,
        };
        assert_eq!(f.apply(&mount, given_down), []);
        let gone = PeerEvent::Down {
            peer: peer("cam", "3", a2),
            why: Gone::Expired,
        };
        assert_eq!(f.apply(&mount, gone), [down("cam")]);

        // After missed changes: exactly the table, old folders reused.
        assert_eq!(
            f.apply(&mount, PeerEvent::Up(peer("other", "1", b))),
            [up("other", b)]
        );
        let table = vec![peer("cam", "4", a2)];
        assert_eq!(
            f.apply(&mount, PeerEvent::Resync(table)),
            [down("other"), up("cam", a2)]
        );
    }
}
