//! The inode table: FUSE speaks in inode numbers, the nodes speak in paths.
//!
//! Layout of the mount: inode 1 is the mount root, whose children are the nodes (one folder per
//! node, named from its `hello`); under a node folder, `DIR/<node>/<path>` maps to `<path>` in
//! that node's share. Inode numbers are never reused while the mount lives, so a stale number
//! from the kernel can never name another file. Entries the kernel has forgotten (lookup count
//! back to zero) are dropped, so the table stays as small as what the kernel holds.

use std::collections::HashMap;
use std::sync::Mutex;

/// The root of the mount.
pub const ROOT: u64 = 1;

/// Most nodes one mount shows over its lifetime (given and discovered). Their folder inodes
/// are reserved up front, `2..2 + MAX_NODES`, so a node found later still gets a fixed number
/// and file inodes never collide with it.
pub const MAX_NODES: usize = 4096;

/// What an inode number stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inode {
    /// The mount root: one folder per node.
    Root,
    /// A path in a node's share (`path` is empty for the node folder itself).
    Remote { node: usize, path: String },
}

#[derive(Debug)]
struct Slot {
    node: usize,
    path: String,
    /// How many lookups the kernel holds on this inode (see FUSE `forget`).
    lookups: u64,
}

#[derive(Debug)]
struct Inner {
    by_ino: HashMap<u64, Slot>,
    by_path: HashMap<(usize, String), u64>,
    next: u64,
}

/// Inode numbers ⇄ (node, path).
#[derive(Debug)]
pub struct InodeTable {
    inner: Mutex<Inner>,
}

impl Default for InodeTable {
    fn default() -> Self {
        Self::new()
    }
}

impl InodeTable {
    /// An empty table: the root only, no node folder yet.
    pub fn new() -> InodeTable {
        InodeTable {
            inner: Mutex::new(Inner {
                by_ino: HashMap::new(),
                by_path: HashMap::new(),
                next: 2 + MAX_NODES as u64,
            }),
        }
    }

    /// Give node `node` (below [`MAX_NODES`]) its folder inode, [`InodeTable::node_root`].
    /// Node folders are permanent: a node that leaves keeps its number should it come back.
    pub fn add_node(&self, node: usize) {
        assert!(node < MAX_NODES, "node index {node} past MAX_NODES");
        let ino = Self::node_root(node);
        let mut inner = self.inner.lock().expect("inode lock");
        inner.by_ino.insert(
            ino,
            Slot {
                node,
                path: String::new(),
                lookups: 0,
            },
        );
        inner.by_path.insert((node, String::new()), ino);
    }

    /// The folder inode of node `node`.
    pub fn node_root(node: usize) -> u64 {
        2 + node as u64
    }

    /// What `ino` stands for, if the kernel still holds it.
    pub fn get(&self, ino: u64) -> Option<Inode> {
        if ino == ROOT {
            return Some(Inode::Root);
        }
        let inner = self.inner.lock().expect("inode lock");
        inner.by_ino.get(&ino).map(|s| Inode::Remote {
            node: s.node,
            path: s.path.clone(),
        })
    }

    /// The inode of `path` on `node` if the kernel holds one (no lookup counted).
    pub fn find(&self, node: usize, path: &str) -> Option<u64> {
        let inner = self.inner.lock().expect("inode lock");
        inner.by_path.get(&(node, path.to_owned())).copied()
    }

    /// The inode of `path` on `node`, allocated if new, with one more kernel lookup counted
    /// (call this exactly when replying an entry to the kernel).
    pub fn lookup(&self, node: usize, path: &str) -> u64 {
        let mut inner = self.inner.lock().expect("inode lock");
        let key = (node, path.to_owned());
        if let Some(&ino) = inner.by_path.get(&key) {
            if let Some(slot) = inner.by_ino.get_mut(&ino) {
                slot.lookups += 1;
            }
            return ino;
        }
        let ino = inner.next;
        inner.next += 1;
        inner.by_ino.insert(
            ino,
            Slot {
                node,
                path: path.to_owned(),
                lookups: 1,
            },
        );
        inner.by_path.insert(key, ino);
        ino
    }

    /// The kernel dropped `n` lookups of `ino`; forget it when none remain (returns true
    /// when it was forgotten).
    pub fn forget(&self, ino: u64, n: u64) -> bool {
        let mut inner = self.inner.lock().expect("inode lock");
        if ino < 2 + MAX_NODES as u64 {
            return false; // the root and node folders are permanent
        }
        let Some(slot) = inner.by_ino.get_mut(&ino) else {
            return false;
        };
        slot.lookups = slot.lookups.saturating_sub(n);
        if slot.lookups > 0 {
            return false;
        }
        let slot = inner.by_ino.remove(&ino).expect("slot present");
        inner.by_path.remove(&(slot.node, slot.path));
        true
    }

    /// Number of inodes held (for tests and logs).
    pub fn len(&self) -> usize {
        self.inner.lock().expect("inode lock").by_ino.len()
    }

    /// True when no node and no remote inode is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `parent/name` as a share path (`name` alone under a node folder).
pub fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_folders_are_fixed_and_paths_get_stable_numbers() {
        let t = InodeTable::new();
        t.add_node(0);
        t.add_node(1);
        assert_eq!(t.get(ROOT), Some(Inode::Root));
        assert_eq!(
            t.get(InodeTable::node_root(1)),
            Some(Inode::Remote {
                node: 1,
                path: String::new()
            })
        );
        let a = t.lookup(0, "a/b");
        assert!(
            a >= 2 + MAX_NODES as u64,
            "file inodes never collide with node folders"
        );
        assert_eq!(t.lookup(0, "a/b"), a);
        assert_eq!(t.find(0, "a/b"), Some(a));
        assert_eq!(t.find(0, "nope"), None);
        assert_eq!(t.find(1, ""), Some(InodeTable::node_root(1)));
        let other = t.lookup(1, "a/b");
        assert_ne!(other, a, "same path on another node is another file");
        assert_eq!(
            t.get(a),
            Some(Inode::Remote {
                node: 0,
                path: "a/b".into()
            })
        );
    }

    #[test]
    fn forget_drops_an_inode_only_when_every_lookup_is_gone_and_never_reuses_numbers() {
        let t = InodeTable::new();
        t.add_node(0);
        let a = t.lookup(0, "x");
        t.lookup(0, "x");
        assert!(!t.forget(a, 1));
        assert!(t.get(a).is_some());
        assert!(t.forget(a, 1));
        assert_eq!(t.get(a), None);
        let again = t.lookup(0, "x");
        assert_ne!(again, a);
        t.forget(InodeTable::node_root(0), 100);
        assert!(
            t.get(InodeTable::node_root(0)).is_some(),
            "node folders are permanent"
        );
    }

    #[test]
    fn join_builds_share_paths() {
        assert_eq!(join("", "a"), "a");
        assert_eq!(join("a", "b"), "a/b");
    }
}
