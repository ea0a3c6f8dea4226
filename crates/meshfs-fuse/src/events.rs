//! Live events: each node's `subscribe` stream drops the cached facts it makes stale, ours and
//! the kernel's, so a new, deleted or changed file shows at once instead of after the TTL.
//!
//! The TTL stays the safety net (a node without `subscribe`, a stream that is down): events only
//! ever shorten how long something stale is seen.
//!
//! Kernel notifications are written to `/dev/fuse` synchronously and may wait for locks the
//! kernel holds while it waits for *our* reply to some other request; so they are sent from a
//! dedicated thread, never from a runtime worker that a reply might need.

use std::ffi::OsString;
use std::sync::Arc;
use std::sync::mpsc;

use fuser::{INodeNo, Notifier};
use meshfs_core::events::EventKind;
use meshfs_core::follow::{Follower, Notice};

use crate::fs::Invalidator;

/// What to tell the kernel.
#[derive(Debug)]
enum KernelNote {
    /// Attributes of an inode are stale (its data follows through `auto_inval_data`).
    Inode(u64),
    /// A name in a folder is stale (deleted, or replaced).
    Entry(u64, OsString),
}

/// The running followers of a mount; dropping it stops them.
#[derive(Debug)]
pub struct Watchers {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Watchers {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Follow every node's events for the mount's lifetime.
pub fn start(
    invalidator: Invalidator,
    notifier: Notifier,
    rt: &tokio::runtime::Handle,
) -> Watchers {
    let (tx, rx) = mpsc::channel::<KernelNote>();
    std::thread::Builder::new()
        .name("meshfs-fuse-notify".into())
        .spawn(move || {
            // Ends when every follower (every sender) is gone.
            for note in rx {
                // ENOENT (the kernel does not hold it) is the common, harmless answer.
                let _ = match note {
                    KernelNote::Inode(ino) => notifier.inval_inode(INodeNo(ino), -1, 0),
                    KernelNote::Entry(parent, name) => notifier.inval_entry(INodeNo(parent), &name),
                };
            }
        })
        .expect("spawn the notification thread");
    let invalidator = Arc::new(invalidator);
    let tasks = (0..invalidator.nodes())
        .map(|node| {
            let (invalidator, tx) = (invalidator.clone(), tx.clone());
            rt.spawn(follow(node, invalidator, tx))
        })
        .collect();
    Watchers { tasks }
}

async fn follow(node: usize, inv: Arc<Invalidator>, tx: mpsc::Sender<KernelNote>) {
    let mut follower = Follower::new(inv.addr(node), None);
    loop {
        match follower.next().await {
            // Events may have been missed while disconnected: forget everything of this node.
            Notice::Connected { .. } | Notice::Disconnected { .. } => inv.forget_node(node),
            Notice::Event(event) if event.kind == EventKind::Resync => inv.forget_node(node),
            Notice::Event(event) => {
                let stale = inv.path_changed(node, &event.path);
                if let Some(ino) = stale.inode {
                    let _ = tx.send(KernelNote::Inode(ino));
                }
                if let Some((parent, name)) = stale.entry
                    && matches!(event.kind, EventKind::Deleted | EventKind::Created)
                {
                    let _ = tx.send(KernelNote::Entry(parent, name.into()));
                }
            }
        }
    }
}
