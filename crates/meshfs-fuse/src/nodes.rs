//! The nodes a mount shows: those given at mount time and those discovered later.
//!
//! A node keeps its index (and so its folder inode, see [`crate::inodes`]) for the life of the
//! mount: a node that leaves is only *hidden* (its folder disappears from the root), so an
//! inode the kernel still holds never names another node's file. A node that comes back (same
//! address, or same name at a new address: a camera that got a new DHCP lease) is shown again
//! under its old folder.

use std::sync::{Arc, RwLock};

use crate::inodes::MAX_NODES;
use meshfs_core::Pool;

/// One node shown under the mount root.
#[derive(Debug)]
pub struct Node {
    /// Folder name under the mount root (the node's name from `hello`).
    pub name: String,
    pub pool: Pool,
}

#[derive(Debug)]
struct Slot {
    node: Arc<Node>,
    shown: bool,
}

/// Every node the mount has shown, by index.
#[derive(Debug, Default)]
pub struct Nodes {
    slots: RwLock<Vec<Slot>>,
}

/// Why a node was not added.
#[derive(Debug, PartialEq, Eq)]
pub enum NotAdded {
    /// It is shown already.
    Present,
    /// [`MAX_NODES`] nodes were shown over the mount's life.
    Full,
}

impl Nodes {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Slot>> {
        self.slots.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Node `i` (shown or hidden). Indices come from the inode table, which only holds indices
    /// handed out by [`Nodes::add`].
    pub fn get(&self, i: usize) -> Arc<Node> {
        self.read()[i].node.clone()
    }

    /// The shown nodes, by index.
    pub fn shown(&self) -> Vec<(usize, Arc<Node>)> {
        self.read()
            .iter()
            .enumerate()
            .filter(|(_, s)| s.shown)
            .map(|(i, s)| (i, s.node.clone()))
            .collect()
    }

    /// The shown node whose folder is `name`.
    pub fn find_shown(&self, name: &str) -> Option<usize> {
        self.read()
            .iter()
            .position(|s| s.shown && s.node.name == name)
    }

    /// Show the node named `name` (a folder-safe name) at `pool`'s address; returns its index
    /// and folder name. Names are made unique (`cam`, `cam-2`, …). `register` gets the index
    /// before the node is visible (its folder inode must exist before a lookup can find it).
    pub fn add(
        &self,
        name: &str,
        pool: Pool,
        register: impl FnOnce(usize),
    ) -> Result<(usize, String), NotAdded> {
        let mut slots = self.slots.write().unwrap_or_else(|e| e.into_inner());
        // The same address: the same node (back after a `bye`, or given twice).
        if let Some(i) = slots.iter().position(|s| s.node.pool.addr() == pool.addr()) {
            if slots[i].shown {
                return Err(NotAdded::Present);
            }
            register(i);
            slots[i].shown = true;
            return Ok((i, slots[i].node.name.clone()));
        }
        // The same name, hidden: that node at a new address.
        if let Some(i) = slots.iter().position(|s| !s.shown && s.node.name == name) {
            register(i);
            slots[i] = Slot {
                node: Arc::new(Node {
                    name: name.to_owned(),
                    pool,
                }),
                shown: true,
            };
            return Ok((i, name.to_owned()));
        }
        if slots.len() >= MAX_NODES {
            return Err(NotAdded::Full);
        }
        let mut unique = name.to_owned();
        let mut n = 2;
        while slots.iter().any(|s| s.node.name == unique) {
            unique = format!("{name}-{n}");
            n += 1;
        }
        register(slots.len());
        slots.push(Slot {
            node: Arc::new(Node {
                name: unique.clone(),
                pool,
            }),
            shown: true,
        });
        Ok((slots.len() - 1, unique))
    }

    /// Hide the shown node at `addr`; returns its index and folder name.
    pub fn hide(&self, addr: &str) -> Option<(usize, String)> {
        let mut slots = self.slots.write().unwrap_or_else(|e| e.into_inner());
        let i = slots
            .iter()
            .position(|s| s.shown && s.node.pool.addr() == addr)?;
        slots[i].shown = false;
        Some((i, slots[i].node.name.clone()))
    }
}

/// A node name usable as one folder name (falls back to the address).
pub fn folder_name(name: &str, addr: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| if c == '/' || c.is_control() { '_' } else { c })
            .take(200)
            .collect()
    };
    let name = clean(name);
    if name.is_empty() || name == "." || name == ".." {
        clean(&addr.replace(':', "_"))
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshfs_core::PoolConfig;

    fn pool(addr: &str) -> Pool {
        Pool::new(addr, PoolConfig::default())
    }

    #[test]
    fn folder_names_are_safe() {
        assert_eq!(folder_name("cam2", "h:1"), "cam2");
        assert_eq!(folder_name("a/b", "h:1"), "a_b");
        assert_eq!(folder_name("", "10.0.0.7:4044"), "10.0.0.7_4044");
        assert_eq!(folder_name("..", "h:1"), "h_1");
    }

    #[test]
    fn nodes_keep_their_index_and_folder_when_they_leave_and_return() {
        let nodes = Nodes::default();
        assert_eq!(nodes.add("cam", pool("a:1"), drop), Ok((0, "cam".into())));
        assert_eq!(nodes.add("cam", pool("b:1"), drop), Ok((1, "cam-2".into())));
        assert_eq!(nodes.add("cam", pool("a:1"), drop), Err(NotAdded::Present));
        assert_eq!(nodes.find_shown("cam-2"), Some(1));

        assert_eq!(nodes.hide("a:1"), Some((0, "cam".into())));
        assert_eq!(nodes.hide("a:1"), None);
        assert_eq!(nodes.find_shown("cam"), None);
        assert_eq!(nodes.shown().len(), 1);
        // Back at the same address.
        assert_eq!(nodes.add("cam", pool("a:1"), drop), Ok((0, "cam".into())));
        // Gone, then back at a new address under the same name.
        nodes.hide("b:1");
        assert_eq!(
            nodes.add("cam-2", pool("c:1"), drop),
            Ok((1, "cam-2".into()))
        );
        assert_eq!(nodes.get(1).pool.addr(), "c:1");
        assert_eq!(nodes.shown().len(), 2, "no third slot");
    }
}
