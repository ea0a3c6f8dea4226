//! Live events: each node's `subscribe` stream drops the cached facts it makes stale, ours and
//! the kernel's, so a new, deleted or changed file shows at once instead of after the TTL.
//!
//! The TTL stays the safety net (a node without `subscribe`, a stream that is down): events only
//! ever shorten how long something stale is seen.
//!
//! Kernel notifications are written to `/dev/fuse` synchronously and may wait for locks the
//! kernel holds while it waits for *our* reply to some other request; so they are sent from a
//! dedicated thread, never from a runtime worker that a reply might need.

use std::collections::HashMap;
use std::ffi::OsString;
use std::sync::{Arc, Mutex, mpsc};

use fuser::{INodeNo, Notifier};
use meshfs_core::events::EventKind;
use meshfs_core::follow::{Follower, Notice};

use crate::fs::FsHandle;
use crate::inodes::ROOT;

/// What to tell the kernel.
#[derive(Debug)]
enum KernelNote {
    /// Attributes of an inode are stale (its data follows through `auto_inval_data`).
    Inode(u64),
    /// A name in a folder is stale (deleted, or replaced).
    Entry(u64, OsString),
}

/// The mount's link to the kernel outside of replies, and the followers of each shown node's
/// events (when enabled). Dropping it stops the followers and, with them, the notification
/// thread.
#[derive(Debug)]
pub struct Live {
    fs: Arc<FsHandle>,
    tx: mpsc::Sender<KernelNote>,
    rt: tokio::runtime::Handle,
    /// Follow events (`false` with `--no-events`: only the TTL keeps things fresh).
    follow: bool,
    followers: Mutex<HashMap<usize, tokio::task::JoinHandle<()>>>,
}

impl Drop for Live {
    fn drop(&mut self) {
        for (_, t) in self
            .followers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
        {
            t.abort();
        }
    }
}

impl Live {
    /// Start the notification thread, and a follower per shown node when `follow`.
    pub fn start(
        fs: FsHandle,
        notifier: Notifier,
        rt: &tokio::runtime::Handle,
        follow: bool,
    ) -> Live {
        let (tx, rx) = mpsc::channel::<KernelNote>();
        std::thread::Builder::new()
            .name("meshfs-fuse-notify".into())
            .spawn(move || {
                // Ends when every sender (ours, every follower's) is gone.
                for note in rx {
                    // ENOENT (the kernel does not hold it) is the common, harmless answer.
                    let _ = match note {
                        KernelNote::Inode(ino) => notifier.inval_inode(INodeNo(ino), -1, 0),
                        KernelNote::Entry(parent, name) => {
                            notifier.inval_entry(INodeNo(parent), &name)
                        }
                    };
                }
            })
            .expect("spawn the notification thread");
        let live = Live {
            fs: Arc::new(fs),
            tx,
            rt: rt.clone(),
            follow,
            followers: Mutex::default(),
        };
        for node in live.fs.shown_nodes() {
            live.node_shown(node);
        }
        live
    }

    /// A node folder appeared in the root: follow its events. (The kernel holds no negative
    /// entry for it: FUSE does not cache our `ENOENT`s.)
    pub fn node_shown(&self, node: usize) {
        if !self.follow {
            return;
        }
        let task = self
            .rt
            .spawn(follow(node, self.fs.clone(), self.tx.clone()));
        let mut followers = self.followers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = followers.insert(node, task) {
            old.abort();
        }
    }

    /// A node folder left the root: stop following it, and make the kernel drop its entry so
    /// the folder disappears at once rather than after the TTL.
    pub fn node_hidden(&self, node: usize, folder: &str) {
        if let Some(t) = self
            .followers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&node)
        {
            t.abort();
            // Its events reach us no more: its answers are trusted for the short TTL again.
            self.fs.stream_changed(node, false);
        }
        let _ = self.tx.send(KernelNote::Entry(ROOT, folder.into()));
    }
}

async fn follow(node: usize, fs: Arc<FsHandle>, tx: mpsc::Sender<KernelNote>) {
    // The node's pool proves its password: so does the subscription beside it.
    let mut follower = Follower::new(fs.addr(node), None).with_credentials(fs.credentials(node));
    loop {
        match follower.next().await {
            // Events may have been missed while disconnected: forget everything of this node.
            Notice::Connected { .. } => fs.stream_changed(node, true),
            Notice::Disconnected { .. } => fs.stream_changed(node, false),
            Notice::Event(event) if event.kind == EventKind::Resync => fs.forget_node(node),
            Notice::Event(event) => {
                let stale = fs.path_changed(node, &event.path);
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
